/*
 * SQLite backend of the state store.
 *
 * WAL mode, two connections on one file with different durability, by
 * design:
 *   - requests, votes, policies and documents (db) use synchronous=FULL: a
 *     COMMIT returns after the WAL is fsync'ed, so anything we acknowledge
 *     survives power loss;
 *   - the signature index (sigdb) uses synchronous=NORMAL: a commit survives
 *     a crash of the process but not necessarily a power loss. The
 *     power-loss-durable record of every signature is the audit log, which
 *     is appended and fsync'ed before a signature is released (sign.c,
 *     changes_signed); the index is for lookups and can lose its last
 *     entries without losing evidence.
 * Signature records are group-committed by one writer thread: callers
 * enqueue and wait; the writer takes everything queued, writes it in one
 * transaction and wakes them all, so one commit covers many signatures
 * (tests/bench/README.md, "Measured costs": 32 records per fdatasync give
 * 14-18x the rate of one).
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "qs_err.h"
#include "statement.h"

#define SCHEMA_VERSION 2  /* 2: request.hash */
#define APP_ID 0x71736731 /* "qsg1": marks a database as ours */

struct gc_item {
	const struct store_sig *sigs;
	size_t n;
	int done;
	int rc;
	char detail[160];
	pthread_cond_t cv; /* this caller's: wake exactly the callers of a batch */
	struct gc_item *next;
};

struct sq_store {
	struct store base;
	sqlite3 *db;
	/* The signature index gets its own connection with synchronous=NORMAL:
	 * in WAL mode a commit survives a process crash without an fsync, and
	 * the power-loss-durable record of every signature is the audit log,
	 * appended (and fsync'ed) before the signature is released. */
	sqlite3 *sigdb;
	pthread_mutex_t sig_mu; /* one transaction at a time on sigdb */
	pthread_mutex_t db_mu;  /* one statement sequence at a time on db */
	pthread_mutex_t q_mu;
	pthread_cond_t q_work, q_done;
	struct gc_item *head, **tail;
	int stopping;
	pthread_t writer;
	int writer_started;
};

static const char *const schema[] = {
        "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
        "CREATE TABLE policy (version INTEGER PRIMARY KEY, text TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL)",
        "CREATE TABLE signature (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " time_ms INTEGER NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL,"
        " key TEXT NOT NULL, key_id TEXT NOT NULL, kind TEXT NOT NULL,"
        " digest BLOB NOT NULL, policy_version INTEGER NOT NULL, seq INTEGER)",
        "CREATE INDEX signature_time ON signature(time_ms)",
        "CREATE UNIQUE INDEX signature_seq ON signature(seq)",
        "CREATE TABLE request (id TEXT PRIMARY KEY, role TEXT NOT NULL, kind TEXT NOT NULL,"
        " submitter TEXT NOT NULL, client_token TEXT, message TEXT NOT NULL,"
        " payload BLOB NOT NULL, digest BLOB NOT NULL, state INTEGER NOT NULL,"
        " created INTEGER NOT NULL, expires INTEGER NOT NULL,"
        " policy_version INTEGER NOT NULL, state_message TEXT, result BLOB)",
        "CREATE UNIQUE INDEX request_token ON request(submitter, client_token)"
        " WHERE client_token IS NOT NULL",
        "CREATE INDEX request_state ON request(state)",
        "CREATE TABLE vote (request TEXT NOT NULL REFERENCES request(id),"
        " approver TEXT NOT NULL, approve INTEGER NOT NULL, time INTEGER NOT NULL,"
        " signature BLOB NOT NULL, reason TEXT, seq INTEGER NOT NULL,"
        " PRIMARY KEY (request, approver))",
        "CREATE TABLE request_sig (request TEXT NOT NULL REFERENCES request(id),"
        " idx INTEGER NOT NULL, key TEXT NOT NULL, key_id TEXT NOT NULL,"
        " algorithm TEXT NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (request, idx))",
        "CREATE TABLE doc (ns TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,"
        " data BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (ns, name, version))",
        NULL,
};

/* Version 2: the hash a request's signature uses (SubmitRequest.hash);
 * requests made before it are SHA-256 ones. */
static const char *const schema_v2[] = {
        "ALTER TABLE request ADD COLUMN hash TEXT NOT NULL DEFAULT 'sha256'",
        NULL,
};

static int
dberr(sqlite3 *db, const char *what)
{
	return qs_fail(QS_ERR_DB, "%s: %s", what, sqlite3_errmsg(db));
}

static int
exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int r;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	r = qs_fail(QS_ERR_DB, "%s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
	return r;
}

static int
pragma_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return dberr(db, sql);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int(st, 0);
		r = 0;
	} else {
		r = dberr(db, sql);
	}
	sqlite3_finalize(st);
	return r;
}

static int
migrate(sqlite3 *db)
{
	int appid = 0, ver = 0, ntables = 0, r;

	if ((r = pragma_int(db, "PRAGMA application_id", &appid)) != 0 ||
	    (r = pragma_int(db, "PRAGMA user_version", &ver)) != 0 ||
	    (r = pragma_int(db, "SELECT count(*) FROM sqlite_master", &ntables)) != 0)
		return r;
	if (appid == 0 && ntables == 0) {
		if ((r = exec(db, "BEGIN IMMEDIATE")) != 0)
			return r;
		for (size_t i = 0; schema[i] != NULL; i++)
			if ((r = exec(db, schema[i])) != 0) {
				exec(db, "ROLLBACK");
				return r;
			}
		for (size_t i = 0; schema_v2[i] != NULL; i++)
			if ((r = exec(db, schema_v2[i])) != 0) {
				exec(db, "ROLLBACK");
				return r;
			}
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APP_ID);
		if ((r = exec(db, sql)) != 0 || (r = exec(db, "PRAGMA user_version = 2")) != 0 ||
		    (r = exec(db, "INSERT INTO meta VALUES ('created_by','quorum-signer')")) != 0 ||
		    (r = exec(db, "COMMIT")) != 0) {
			exec(db, "ROLLBACK");
			return r;
		}
		return 0;
	}
	if (appid != APP_ID)
		return qs_fail(QS_ERR_PRECONDITION,
		               "state.db was not created by quorum-signer (application_id "
		               "0x%08x): refusing to use it",
		               (unsigned)appid);
	if (ver > SCHEMA_VERSION)
		return qs_fail(QS_ERR_PRECONDITION,
		               "state.db has schema version %d but this qsignd understands up "
		               "to %d: upgrade qsignd",
		               ver, SCHEMA_VERSION);
	if (ver < 1)
		return qs_fail(QS_ERR_PRECONDITION, "state.db has no schema version");
	if (ver < 2) {
		/* 1 -> 2: requests name their signature's hash. */
		if ((r = exec(db, "BEGIN IMMEDIATE")) != 0)
			return r;
		for (size_t i = 0; schema_v2[i] != NULL; i++)
			if ((r = exec(db, schema_v2[i])) != 0) {
				exec(db, "ROLLBACK");
				return r;
			}
		if ((r = exec(db, "PRAGMA user_version = 2")) != 0 ||
		    (r = exec(db, "COMMIT")) != 0) {
			exec(db, "ROLLBACK");
			return r;
		}
	}
	return 0;
}

/* Insert one batch; caller holds db_mu and has begun a transaction. */
static int
insert_sigs(sqlite3 *db, sqlite3_stmt *st, const struct store_sig *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, s[i].time_ms);
		sqlite3_bind_text(st, 2, s[i].principal, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, s[i].role, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, s[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, s[i].key_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, s[i].kind, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 7, s[i].digest, (int)s[i].digest_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)s[i].policy_version);
		if (s[i].seq != 0)
			sqlite3_bind_int64(st, 9, (sqlite3_int64)s[i].seq);
		else
			sqlite3_bind_null(st, 9);
		if (sqlite3_step(st) != SQLITE_DONE)
			return dberr(db, "insert signature");
	}
	return 0;
}

static void *
writer_main(void *arg)
{
	struct sq_store *s = arg;
	sqlite3_stmt *st = NULL;

	for (;;) {
		struct gc_item *batch, *it;
		int r;

		pthread_mutex_lock(&s->q_mu);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->q_work, &s->q_mu);
		if (s->head == NULL && s->stopping) {
			pthread_mutex_unlock(&s->q_mu);
			break;
		}
		batch = s->head;
		s->head = NULL;
		s->tail = &s->head;
		pthread_mutex_unlock(&s->q_mu);

		/* Only this thread uses sigdb. */
		r = 0;
		if (st == NULL &&
		    sqlite3_prepare_v2(s->sigdb,
		                       "INSERT INTO signature (time_ms, principal, role, key,"
		                       " key_id, kind, digest, policy_version, seq)"
		                       " VALUES (?,?,?,?,?,?,?,?,?)",
		                       -1, &st, NULL) != SQLITE_OK)
			r = dberr(s->sigdb, "prepare insert signature");
		pthread_mutex_lock(&s->sig_mu);
		if (r == 0)
			r = exec(s->sigdb, "BEGIN IMMEDIATE");
		for (it = batch; r == 0 && it != NULL; it = it->next)
			r = insert_sigs(s->sigdb, st, it->sigs, it->n);
		if (r == 0)
			r = exec(s->sigdb, "COMMIT");
		if (r != 0)
			exec(s->sigdb, "ROLLBACK");
		pthread_mutex_unlock(&s->sig_mu);

		pthread_mutex_lock(&s->q_mu);
		for (it = batch; it != NULL;) {
			struct gc_item *next = it->next;
			it->rc = r;
			if (r != 0)
				snprintf(it->detail, sizeof(it->detail), "%s", qs_errdetail());
			it->done = 1;
			pthread_cond_signal(&it->cv);
			it = next;
		}
		pthread_mutex_unlock(&s->q_mu);
	}
	sqlite3_finalize(st);
	return NULL;
}

static int
sq_record_signatures(struct store *base, const struct store_sig *sigs, size_t n)
{
	struct sq_store *s = (struct sq_store *)base;
	struct gc_item item = {.sigs = sigs, .n = n};

	pthread_cond_init(&item.cv, NULL);
	pthread_mutex_lock(&s->q_mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->q_mu);
		pthread_cond_destroy(&item.cv);
		return qs_fail(QS_ERR_UNAVAILABLE, "state store is shutting down");
	}
	*s->tail = &item;
	s->tail = &item.next;
	pthread_cond_signal(&s->q_work);
	while (!item.done)
		pthread_cond_wait(&item.cv, &s->q_mu);
	pthread_mutex_unlock(&s->q_mu);
	pthread_cond_destroy(&item.cv);
	if (item.rc != 0)
		return qs_fail(item.rc, "%s", item.detail);
	return 0;
}

/* One integer that `sql` selects (a count, a maximum). */
static int
sq_int_query(struct sq_store *s, const char *sql, const char *what, uint64_t *out)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		r = dberr(s->db, what);
	else
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

#define INDEX_NEXT_KEY "signature_index_next"

/* The derived signature index (store.h: store_index_*), on sigdb:
 * synchronous=NORMAL is enough, the log it is derived from is durable and
 * the rows and the position commit together. */
static int
sq_index_next(struct store *base, uint64_t *next)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	*next = 0;
	pthread_mutex_lock(&s->sig_mu);
	if (sqlite3_prepare_v2(s->sigdb, "SELECT v FROM meta WHERE k = '" INDEX_NEXT_KEY "'", -1,
	                       &st, NULL) != SQLITE_OK) {
		r = dberr(s->sigdb, "prepare index position");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "end") == 0)
		*next = STORE_INDEX_AT_LOG_END;
	else if (rc == SQLITE_ROW)
		*next = strtoull((const char *)sqlite3_column_text(st, 0), NULL, 10);
	else if (rc != SQLITE_DONE)
		r = dberr(s->sigdb, "index position");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->sig_mu);
	return r;
}

static int
sq_index_apply(struct store *base, const struct store_sig *sigs, size_t n, const uint64_t *failed,
               size_t nfailed, uint64_t next, int detach)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *ins = NULL, *del = NULL, *pos = NULL;
	int r;

	pthread_mutex_lock(&s->sig_mu);
	if (sqlite3_prepare_v2(s->sigdb,
	                       "INSERT OR IGNORE INTO signature (time_ms, principal, role, key,"
	                       " key_id, kind, digest, policy_version, seq)"
	                       " VALUES (?,?,?,?,?,?,?,?,?)",
	                       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->sigdb, "DELETE FROM signature WHERE seq = ?", -1, &del, NULL) !=
	            SQLITE_OK ||
	    sqlite3_prepare_v2(
	            s->sigdb, "INSERT OR REPLACE INTO meta (k, v) VALUES ('" INDEX_NEXT_KEY "', ?)",
	            -1, &pos, NULL) != SQLITE_OK) {
		r = dberr(s->sigdb, "prepare index update");
		goto out;
	}
	if ((r = exec(s->sigdb, "BEGIN IMMEDIATE")) != 0)
		goto out;
	if (detach)
		r = exec(s->sigdb, "UPDATE signature SET seq = NULL");
	if (r == 0)
		r = insert_sigs(s->sigdb, ins, sigs, n);
	for (size_t i = 0; r == 0 && i < nfailed; i++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, (sqlite3_int64)failed[i]);
		if (sqlite3_step(del) != SQLITE_DONE)
			r = dberr(s->sigdb, "drop a failed signature");
	}
	if (r == 0) {
		char v[24];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)next);
		sqlite3_bind_text(pos, 1, v, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(pos) != SQLITE_DONE)
			r = dberr(s->sigdb, "index position");
	}
	if (r == 0)
		r = exec(s->sigdb, "COMMIT");
	if (r != 0)
		exec(s->sigdb, "ROLLBACK");
out:
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	sqlite3_finalize(pos);
	pthread_mutex_unlock(&s->sig_mu);
	return r;
}

/* A state.db from before the derived index: its signature rows get a seq
 * column (NULL for them) and the index of seqs; they were recorded on the
 * signing path up to now, so the index starts at the log's end ("end"). */
static int
add_seq_column(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int r;

	if (sqlite3_prepare_v2(db, "SELECT seq FROM signature LIMIT 0", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_finalize(st);
		return 0;
	}
	if ((r = exec(db, "BEGIN IMMEDIATE")) != 0)
		return r;
	if ((r = exec(db, "ALTER TABLE signature ADD COLUMN seq INTEGER")) != 0 ||
	    (r = exec(db, "CREATE UNIQUE INDEX signature_seq ON signature(seq)")) != 0 ||
	    (r = exec(db, "INSERT OR REPLACE INTO meta VALUES ('" INDEX_NEXT_KEY "', 'end')")) !=
	            0 ||
	    (r = exec(db, "COMMIT")) != 0) {
		exec(db, "ROLLBACK");
		return r;
	}
	return 0;
}

static int
sq_policy_text(struct sq_store *s, const char *sql, int64_t arg, uint64_t *version, char **text)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	*text = NULL;
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare policy query");
		goto out;
	}
	if (arg >= 0)
		sqlite3_bind_int64(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no such policy version");
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = dberr(s->db, "policy query");
		goto out;
	}
	if (version != NULL)
		*version = (uint64_t)sqlite3_column_int64(st, 0);
	if ((*text = strdup((const char *)sqlite3_column_text(st, 1))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_policy_current(struct store *base, uint64_t *version, char **text)
{
	return sq_policy_text((struct sq_store *)base,
	                      "SELECT version, text FROM policy ORDER BY version DESC LIMIT 1", -1,
	                      version, text);
}

static int
sq_policy_get(struct store *base, uint64_t version, char **text)
{
	if (version > INT64_MAX)
		return qs_fail(QS_ERR_NOT_FOUND, "no such policy version");
	return sq_policy_text((struct sq_store *)base,
	                      "SELECT version, text FROM policy WHERE version = ?",
	                      (int64_t)version, NULL, text);
}

static int
sq_policy_version(struct store *base, uint64_t *version)
{
	return sq_int_query((struct sq_store *)base, "SELECT coalesce(max(version), 0) FROM policy",
	                    "policy version", version);
}

static int
sq_policy_add(struct store *base, uint64_t version, const char *text)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	struct timespec ts;
	int64_t cur = 0;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version),0) FROM policy", -1, &st,
	                       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		r = dberr(s->db, "policy version");
		goto rollback;
	}
	cur = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (version != (uint64_t)cur + 1) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "policy version %llu is not the next one (current is %lld)",
		            (unsigned long long)version, (long long)cur);
		goto rollback;
	}
	if (sqlite3_prepare_v2(s->db, "INSERT INTO policy VALUES (?,?,?)", -1, &st, NULL) !=
	    SQLITE_OK) {
		r = dberr(s->db, "prepare policy insert");
		goto rollback;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = dberr(s->db, "policy insert");
		goto rollback;
	}
	if ((r = exec(s->db, "COMMIT")) != 0)
		goto rollback;
	r = 0;
	goto out;
rollback:
	exec(s->db, "ROLLBACK");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_count_signatures(struct store *base, uint64_t *n)
{
	return sq_int_query((struct sq_store *)base, "SELECT count(*) FROM signature",
	                    "count signatures", n);
}

/* ------------------------------------------------------------ requests */

static void
copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static char *
dup_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? strdup((const char *)t) : NULL;
}

#define REQ_COLS                                                                                   \
	"id, role, kind, submitter, client_token, message, digest, state, created, expires,"       \
	" policy_version, state_message, length(payload), result, hash"

/* Fill r from a row selected with REQ_COLS (+ payload as column 15 if
 * with_payload). */
static int
row_to_req(sqlite3_stmt *st, int with_payload, struct store_request *r)
{
	copy_text(r->id, sizeof(r->id), st, 0);
	copy_text(r->role, sizeof(r->role), st, 1);
	copy_text(r->kind, sizeof(r->kind), st, 2);
	copy_text(r->submitter, sizeof(r->submitter), st, 3);
	copy_text(r->client_token, sizeof(r->client_token), st, 4);
	r->message = dup_text(st, 5);
	if (sqlite3_column_bytes(st, 6) == 32)
		memcpy(r->digest, sqlite3_column_blob(st, 6), 32);
	r->state = sqlite3_column_int(st, 7);
	r->created = sqlite3_column_int64(st, 8);
	r->expires = sqlite3_column_int64(st, 9);
	r->policy_version = (uint64_t)sqlite3_column_int64(st, 10);
	r->state_message = dup_text(st, 11);
	r->payload_len = (size_t)sqlite3_column_int64(st, 12);
	if (sqlite3_column_type(st, 13) == SQLITE_BLOB) {
		size_t n = (size_t)sqlite3_column_bytes(st, 13);
		if ((r->result = malloc(n + 1)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		memcpy(r->result, sqlite3_column_blob(st, 13), n);
		r->result[n] = '\0';
		r->result_len = n;
	}
	copy_text(r->hash, sizeof(r->hash), st, 14);
	if (with_payload) {
		size_t n = (size_t)sqlite3_column_bytes(st, 15);
		if ((r->payload = malloc(n ? n : 1)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		if (n)
			memcpy(r->payload, sqlite3_column_blob(st, 15), n);
		r->payload_len = n;
	}
	if (r->message == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

static int
sq_req_insert(struct store *base, const struct store_request *r)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r2, rc;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
	                       "INSERT INTO request (id, role, kind, submitter, client_token,"
	                       " message, payload, digest, state, created, expires,"
	                       " policy_version, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		r2 = dberr(s->db, "prepare request insert");
		goto out;
	}
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->submitter, -1, SQLITE_STATIC);
	if (r->client_token[0] != '\0')
		sqlite3_bind_text(st, 5, r->client_token, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	sqlite3_bind_text(st, 6, r->message ? r->message : "", -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 7, r->payload ? (const void *)r->payload : "", (int)r->payload_len,
	                  SQLITE_STATIC);
	sqlite3_bind_blob(st, 8, r->digest, 32, SQLITE_STATIC);
	sqlite3_bind_int(st, 9, REQ_PENDING);
	sqlite3_bind_int64(st, 10, r->created);
	sqlite3_bind_int64(st, 11, r->expires);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)r->policy_version);
	sqlite3_bind_text(st, 13, r->hash[0] ? r->hash : "sha256", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT)
		r2 = qs_fail(QS_ERR_EXISTS, "request already exists");
	else if (rc != SQLITE_DONE)
		r2 = dberr(s->db, "request insert");
	else
		r2 = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r2;
}

static int
sq_req_find_token(struct store *base, const char *submitter, const char *token, char *id)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT id FROM request WHERE submitter = ? AND client_token = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare token lookup");
		goto out;
	}
	sqlite3_bind_text(st, 1, submitter, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, token, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		copy_text(id, STORE_ID_LEN + 1, st, 0);
		r = 0;
	} else {
		r = qs_fail(QS_ERR_NOT_FOUND, "no such request");
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

/* Room for one more of n elements of `size` bytes in arr, grown to double
 * its capacity *cap (first when empty) when full. Returns the array to use
 * (arr when there is room); NULL when out of memory (arr unchanged and
 * still the caller's to free). */
static void *
grow(void *arr, size_t n, size_t *cap, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap * 2 : first;
	void *na;

	if (n < *cap)
		return arr;
	if ((na = reallocarray(arr, ncap, size)) != NULL)
		*cap = ncap;
	return na;
}

/* Votes and signatures of r (caller holds db_mu). */
static int
load_children(sqlite3 *db, struct store_request *r)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT approver, approve, time, signature, reason FROM vote"
	                       " WHERE request = ? ORDER BY seq",
	                       -1, &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare votes");
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_vote *v, *nv;
		if ((nv = grow(r->votes, r->nvotes, &cap, sizeof(*r->votes), 4)) == NULL) {
			sqlite3_finalize(st);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		r->votes = nv;
		v = &r->votes[r->nvotes++];
		memset(v, 0, sizeof(*v));
		copy_text(v->approver, sizeof(v->approver), st, 0);
		v->approve = sqlite3_column_int(st, 1);
		v->time = sqlite3_column_int64(st, 2);
		v->sig_len = (size_t)sqlite3_column_bytes(st, 3);
		if (v->sig_len > sizeof(v->sig))
			v->sig_len = sizeof(v->sig);
		memcpy(v->sig, sqlite3_column_blob(st, 3), v->sig_len);
		v->reason = dup_text(st, 4);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dberr(db, "votes");
	cap = 0;
	if (sqlite3_prepare_v2(db,
	                       "SELECT key, key_id, algorithm, signature FROM request_sig"
	                       " WHERE request = ? ORDER BY idx",
	                       -1, &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare request signatures");
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_reqsig *g, *ng;
		if ((ng = grow(r->sigs, r->nsigs, &cap, sizeof(*r->sigs), 2)) == NULL) {
			sqlite3_finalize(st);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		r->sigs = ng;
		g = &r->sigs[r->nsigs++];
		memset(g, 0, sizeof(*g));
		copy_text(g->key, sizeof(g->key), st, 0);
		copy_text(g->key_id, sizeof(g->key_id), st, 1);
		copy_text(g->algorithm, sizeof(g->algorithm), st, 2);
		g->sig_len = (size_t)sqlite3_column_bytes(st, 3);
		if (g->sig_len > sizeof(g->sig))
			g->sig_len = sizeof(g->sig);
		memcpy(g->sig, sqlite3_column_blob(st, 3), g->sig_len);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dberr(db, "request signatures");
	return 0;
}

static int
sq_req_get(struct store *base, const char *id, int with_payload, struct store_request **out)
{
	struct sq_store *s = (struct sq_store *)base;
	struct store_request *r = NULL;
	sqlite3_stmt *st = NULL;
	int r2, rc;

	*out = NULL;
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
	                       with_payload ? "SELECT " REQ_COLS
	                                      ", payload FROM request WHERE id = ?"
	                                    : "SELECT " REQ_COLS " FROM request WHERE id = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		r2 = dberr(s->db, "prepare request get");
		goto out;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r2 = qs_fail(QS_ERR_NOT_FOUND, "no request %s", id);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r2 = dberr(s->db, "request get");
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		r2 = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r2 = row_to_req(st, with_payload, r)) != 0 || (r2 = load_children(s->db, r)) != 0)
		goto out;
	*out = r;
	r = NULL;
	r2 = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	store_request_free(r);
	return r2;
}

static int
sq_req_list(struct store *base, int state, const char *role, size_t limit,
            struct store_request ***out, size_t *n)
{
	struct sq_store *s = (struct sq_store *)base;
	struct store_request **v = NULL;
	sqlite3_stmt *st = NULL;
	size_t cnt = 0;
	int r = 0, rc;

	*out = NULL;
	*n = 0;
	if (limit == 0 || limit > 10000)
		limit = 10000;
	if ((v = calloc(limit, sizeof(*v))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
	                       "SELECT " REQ_COLS " FROM request WHERE (?1 = 0 OR state = ?1)"
	                       " AND (?2 IS NULL OR role = ?2) ORDER BY created DESC, rowid DESC"
	                       " LIMIT ?3",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare request list");
		goto out;
	}
	sqlite3_bind_int(st, 1, state);
	if (role != NULL)
		sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && cnt < limit) {
		if ((v[cnt] = calloc(1, sizeof(**v))) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		if ((r = row_to_req(st, 0, v[cnt])) != 0 ||
		    (r = load_children(s->db, v[cnt])) != 0) {
			cnt++;
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		r = dberr(s->db, "request list");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	if (r != 0) {
		store_request_list_free(v, cnt);
		return r;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* UPDATE request state if it is `from`; caller holds db_mu inside a txn. */
static int
cas_state(sqlite3 *db, const char *id, int from, int to, const char *msg)
{
	sqlite3_stmt *st = NULL;
	int r = 0;

	if (sqlite3_prepare_v2(
	            db,
	            "UPDATE request SET state = ?, state_message = coalesce(?, state_message)"
	            " WHERE id = ? AND state = ?",
	            -1, &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare state update");
	sqlite3_bind_int(st, 1, to);
	if (msg != NULL)
		sqlite3_bind_text(st, 2, msg, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, from);
	if (sqlite3_step(st) != SQLITE_DONE)
		r = dberr(db, "state update");
	else if (sqlite3_changes(db) != 1)
		r = qs_fail(QS_ERR_PRECONDITION, "request %s is not in the expected state", id);
	sqlite3_finalize(st);
	return r;
}

static int
sq_req_vote(struct store *base, const char *id, const struct store_vote *v, int replace,
            int new_state, const char *msg)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r, rc;

	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	if ((r = cas_state(s->db, id, REQ_PENDING, new_state, msg)) != 0)
		goto rollback;
	if (sqlite3_prepare_v2(s->db,
	                       replace ? "UPDATE vote SET approve = ?3, time = ?4, signature = ?5,"
	                                 " reason = ?6 WHERE request = ?1 AND approver = ?2"
	                               : "INSERT INTO vote (request, approver, approve, time,"
	                                 " signature, reason, seq) VALUES (?,?,?,?,?,?,"
	                                 " (SELECT count(*) FROM vote WHERE request = ?1))",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare vote insert");
		goto rollback;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, v->approver, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, v->approve ? 1 : 0);
	sqlite3_bind_int64(st, 4, v->time);
	sqlite3_bind_blob(st, 5, v->sig, (int)v->sig_len, SQLITE_STATIC);
	if (v->reason != NULL)
		sqlite3_bind_text(st, 6, v->reason, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT) {
		r = qs_fail(QS_ERR_EXISTS, "%s already voted on request %s", v->approver, id);
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		r = dberr(s->db, "vote insert");
		goto rollback;
	}
	if (replace && sqlite3_changes(s->db) != 1) {
		r = qs_fail(QS_ERR_NOT_FOUND, "%s has no vote on request %s to replace",
		            v->approver, id);
		goto rollback;
	}
	if ((r = exec(s->db, "COMMIT")) != 0)
		goto rollback;
	goto out;
rollback:
	exec(s->db, "ROLLBACK");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_req_transition(struct store *base, const char *id, int from, int to, const char *msg)
{
	struct sq_store *s = (struct sq_store *)base;
	int r;

	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN IMMEDIATE")) == 0) {
		if ((r = cas_state(s->db, id, from, to, msg)) == 0)
			r = exec(s->db, "COMMIT");
		if (r != 0)
			exec(s->db, "ROLLBACK");
	}
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_req_finish(struct store *base, const char *id, const struct store_reqsig *sigs, size_t n,
              const uint8_t *result, size_t result_len, uint64_t policy_version,
              const char *policy_text)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r;

	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN IMMEDIATE")) != 0)
		goto out;
	if ((r = cas_state(s->db, id, REQ_APPROVED, REQ_SIGNED, NULL)) != 0)
		goto rollback;
	if (result != NULL) {
		if (sqlite3_prepare_v2(s->db, "UPDATE request SET result = ? WHERE id = ?", -1, &st,
		                       NULL) != SQLITE_OK) {
			r = dberr(s->db, "prepare result");
			goto rollback;
		}
		sqlite3_bind_blob(st, 1, result, (int)result_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = dberr(s->db, "store result");
			goto rollback;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite3_prepare_v2(s->db, "INSERT INTO request_sig VALUES (?,?,?,?,?,?)", -1, &st,
	                       NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare request_sig insert");
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
		sqlite3_bind_text(st, 3, sigs[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, sigs[i].key_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, sigs[i].algorithm, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 6, sigs[i].sig, (int)sigs[i].sig_len, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = dberr(s->db, "request_sig insert");
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (policy_text != NULL) {
		int64_t cur = 0;
		if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version),0) FROM policy", -1,
		                       &st, NULL) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW) {
			r = dberr(s->db, "policy version");
			goto rollback;
		}
		cur = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		st = NULL;
		if (policy_version != (uint64_t)cur + 1) {
			r = qs_fail(QS_ERR_PRECONDITION,
			            "policy version %llu is not the next one (current is %lld)",
			            (unsigned long long)policy_version, (long long)cur);
			goto rollback;
		}
		if (sqlite3_prepare_v2(s->db, "INSERT INTO policy VALUES (?,?,?)", -1, &st, NULL) !=
		    SQLITE_OK) {
			r = dberr(s->db, "prepare policy insert");
			goto rollback;
		}
		sqlite3_bind_int64(st, 1, (sqlite3_int64)policy_version);
		sqlite3_bind_text(st, 2, policy_text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL) * 1000);
		if (sqlite3_step(st) != SQLITE_DONE) {
			r = dberr(s->db, "policy insert");
			goto rollback;
		}
	}
	if ((r = exec(s->db, "COMMIT")) != 0)
		goto rollback;
	goto out;
rollback:
	exec(s->db, "ROLLBACK");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

/* ------------------------------------------------------------ documents */

/* Insert one document; db_mu held. */
static int
doc_insert(struct sq_store *s, const char *ns, const char *name, uint64_t version,
           const uint8_t *data, size_t len)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (version < 1 || version > INT64_MAX)
		return qs_fail(QS_ERR_INVALID, "document version must be >= 1");
	if (sqlite3_prepare_v2(s->db, "INSERT INTO doc VALUES (?,?,?,?,?)", -1, &st, NULL) !=
	    SQLITE_OK)
		return dberr(s->db, "prepare doc insert");
	sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
	sqlite3_bind_blob(st, 4, len ? (const void *)data : "", (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL) * 1000);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT)
		r = qs_fail(QS_ERR_EXISTS, "%s/%s version %llu exists", ns, name,
		            (unsigned long long)version);
	else if (rc != SQLITE_DONE)
		r = dberr(s->db, "doc insert");
	else
		r = 0;
	sqlite3_finalize(st);
	return r;
}

static int
sq_doc_put(struct store *base, const char *ns, const char *name, uint64_t version,
           const uint8_t *data, size_t len)
{
	struct sq_store *s = (struct sq_store *)base;
	int r;

	pthread_mutex_lock(&s->db_mu);
	r = doc_insert(s, ns, name, version, data, len);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_doc_put_many(struct store *base, const char *ns, size_t n, const char *const *names,
                const uint64_t *versions, const uint8_t *const *data, const size_t *lens)
{
	struct sq_store *s = (struct sq_store *)base;
	int r;

	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN IMMEDIATE")) == 0) {
		for (size_t i = 0; r == 0 && i < n; i++)
			r = doc_insert(s, ns, names[i], versions[i], data[i], lens[i]);
		if (r == 0)
			r = exec(s->db, "COMMIT");
		if (r != 0) {
			char why[QS_ERRDETAIL_MAX];
			snprintf(why, sizeof(why), "%s", qs_errdetail());
			exec(s->db, "ROLLBACK");
			r = qs_fail(r, "%s", why);
		}
	}
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_doc_get(struct store *base, const char *ns, const char *name, uint64_t version, uint8_t **data,
           size_t *len, uint64_t *version_out)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r, rc;

	*data = NULL;
	*len = 0;
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
	                       version == 0
	                               ? "SELECT version, data FROM doc WHERE ns = ? AND name = ?"
	                                 " ORDER BY version DESC LIMIT 1"
	                               : "SELECT version, data FROM doc WHERE ns = ? AND name = ?"
	                                 " AND version = ?",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare doc get");
		goto out;
	}
	sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (version != 0)
		sqlite3_bind_int64(st, 3, (sqlite3_int64)version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no document %s/%s", ns, name);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = dberr(s->db, "doc get");
		goto out;
	}
	{
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		if ((*data = malloc(n + 1)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(*data, sqlite3_column_blob(st, 1), n);
		(*data)[n] = '\0';
		*len = n;
	}
	if (version_out != NULL)
		*version_out = (uint64_t)sqlite3_column_int64(st, 0);
	r = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static int
sq_doc_list(struct store *base, const char *ns, char ***names, size_t *n)
{
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	int r = 0, rc;

	*names = NULL;
	*n = 0;
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT DISTINCT name FROM doc WHERE ns = ? ORDER BY name",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = dberr(s->db, "prepare doc list");
		goto out;
	}
	sqlite3_bind_text(st, 1, ns, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char **nv = grow(v, cnt, &cap, sizeof(*v), 16);
		if (nv == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		v = nv;
		if ((v[cnt] = dup_text(st, 0)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		cnt++;
	}
	if (rc != SQLITE_DONE)
		r = dberr(s->db, "doc list");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	if (r != 0) {
		for (size_t i = 0; i < cnt; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*names = v;
	*n = cnt;
	return 0;
}

/* ------------------------------------------------------------ dump */

#define DUMP_SIGS 500 /* signature records per sink call */

static void
free_sig_strings(struct store_sig *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)v[i].principal);
		free((char *)v[i].role);
		free((char *)v[i].key);
		free((char *)v[i].key_id);
		free((char *)v[i].kind);
	}
}

/* Signature records, DUMP_SIGS at a time (the sink may keep nothing). */
static int
dump_signatures(sqlite3 *db, const struct store_sink *sink, void *arg)
{
	struct store_sig v[DUMP_SIGS];
	sqlite3_stmt *st = NULL;
	size_t n = 0;
	int r = 0, rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db,
	                       "SELECT time_ms, principal, role, key, key_id, kind, digest,"
	                       " policy_version, seq FROM signature ORDER BY id",
	                       -1, &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare signature dump");
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_sig *g = &v[n];
		memset(g, 0, sizeof(*g));
		g->time_ms = sqlite3_column_int64(st, 0);
		g->principal = dup_text(st, 1);
		g->role = dup_text(st, 2);
		g->key = dup_text(st, 3);
		g->key_id = dup_text(st, 4);
		g->kind = dup_text(st, 5);
		g->digest_len = (size_t)sqlite3_column_bytes(st, 6);
		if (g->digest_len > sizeof(g->digest))
			g->digest_len = sizeof(g->digest);
		memcpy(g->digest, sqlite3_column_blob(st, 6), g->digest_len);
		g->policy_version = (uint64_t)sqlite3_column_int64(st, 7);
		g->seq = (uint64_t)sqlite3_column_int64(st, 8);
		n++;
		if (g->principal == NULL || g->role == NULL || g->key == NULL ||
		    g->key_id == NULL || g->kind == NULL)
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
		else if (n == DUMP_SIGS)
			r = sink->signatures(arg, v, n);
		if (r != 0 || n == DUMP_SIGS) {
			free_sig_strings(v, n);
			n = 0;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(db, "signature dump");
	if (r == 0 && n > 0)
		r = sink->signatures(arg, v, n);
	free_sig_strings(v, n);
	sqlite3_finalize(st);
	return r;
}

static int
dump_policies(sqlite3 *db, const struct store_sink *sink, void *arg)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT version, text FROM policy ORDER BY version", -1, &st,
	                       NULL) != SQLITE_OK)
		return dberr(db, "prepare policy dump");
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = sink->policy(arg, (uint64_t)sqlite3_column_int64(st, 0),
		                 (const char *)sqlite3_column_text(st, 1));
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(db, "policy dump");
	sqlite3_finalize(st);
	return r;
}

/* Requests in the order they were made, each whole (payload, votes,
 * signatures, result). */
static int
dump_requests(sqlite3 *db, const struct store_sink *sink, void *arg)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT " REQ_COLS ", payload FROM request ORDER BY rowid", -1,
	                       &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare request dump");
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_request *q = calloc(1, sizeof(*q));
		if (q == NULL)
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
		else if ((r = row_to_req(st, 1, q)) == 0 && (r = load_children(db, q)) == 0)
			r = sink->request(arg, q);
		store_request_free(q);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(db, "request dump");
	sqlite3_finalize(st);
	return r;
}

static int
dump_docs(sqlite3 *db, const struct store_sink *sink, void *arg)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT ns, name, version, data FROM doc ORDER BY rowid", -1,
	                       &st, NULL) != SQLITE_OK)
		return dberr(db, "prepare document dump");
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = sink->doc(arg, (const char *)sqlite3_column_text(st, 0),
		              (const char *)sqlite3_column_text(st, 1),
		              (uint64_t)sqlite3_column_int64(st, 2), sqlite3_column_blob(st, 3),
		              (size_t)sqlite3_column_bytes(st, 3));
	if (r == 0 && rc != SQLITE_DONE)
		r = dberr(db, "document dump");
	sqlite3_finalize(st);
	return r;
}

/* Everything, in one read transaction: one consistent snapshot. */
static int
sq_dump(struct store *base, const struct store_sink *sink, void *arg)
{
	struct sq_store *s = (struct sq_store *)base;
	int r;

	pthread_mutex_lock(&s->db_mu);
	if ((r = exec(s->db, "BEGIN")) == 0) {
		if ((r = dump_policies(s->db, sink, arg)) == 0 &&
		    (r = dump_signatures(s->db, sink, arg)) == 0 &&
		    (r = dump_requests(s->db, sink, arg)) == 0)
			r = dump_docs(s->db, sink, arg);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* read only */
	}
	pthread_mutex_unlock(&s->db_mu);
	return r;
}

static void
sq_close(struct store *base)
{
	struct sq_store *s = (struct sq_store *)base;

	if (s->writer_started) {
		pthread_mutex_lock(&s->q_mu);
		s->stopping = 1;
		pthread_cond_signal(&s->q_work);
		pthread_mutex_unlock(&s->q_mu);
		pthread_join(s->writer, NULL);
	}
	if (s->sigdb != NULL)
		sqlite3_close(s->sigdb);
	if (s->db != NULL)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->db_mu);
	pthread_mutex_destroy(&s->sig_mu);
	pthread_mutex_destroy(&s->q_mu);
	pthread_cond_destroy(&s->q_work);
	pthread_cond_destroy(&s->q_done);
	free(s);
}

static const struct store_ops sq_ops = {
        .name = "sqlite",
        .close = sq_close,
        .policy_current = sq_policy_current,
        .policy_get = sq_policy_get,
        .policy_version = sq_policy_version,
        .policy_add = sq_policy_add,
        .record_signatures = sq_record_signatures,
        .count_signatures = sq_count_signatures,
        .index_next = sq_index_next,
        .index_apply = sq_index_apply,
        .req_insert = sq_req_insert,
        .req_find_token = sq_req_find_token,
        .req_get = sq_req_get,
        .req_list = sq_req_list,
        .req_vote = sq_req_vote,
        .req_transition = sq_req_transition,
        .req_finish = sq_req_finish,
        .doc_put = sq_doc_put,
        .doc_put_many = sq_doc_put_many,
        .doc_get = sq_doc_get,
        .doc_list = sq_doc_list,
        .dump = sq_dump,
};

int
store_open_sqlite(const char *state_dir, struct store **out)
{
	struct sq_store *s = NULL;
	char *path = NULL;
	int r;

	*out = NULL;
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return qs_fail(QS_ERR_IO, "create state directory %s: %s", state_dir,
		               strerror(errno));
	if (asprintf(&path, "%s/state.db", state_dir) < 0)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		free(path);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	s->base.ops = &sq_ops;
	pthread_mutex_init(&s->db_mu, NULL);
	pthread_mutex_init(&s->sig_mu, NULL);
	pthread_mutex_init(&s->q_mu, NULL);
	pthread_cond_init(&s->q_work, NULL);
	pthread_cond_init(&s->q_done, NULL);
	s->tail = &s->head;
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		r = qs_fail(QS_ERR_DB, "open %s: %s", path,
		            s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if ((r = exec(s->db, "PRAGMA journal_mode = WAL")) != 0 ||
	    (r = exec(s->db, "PRAGMA synchronous = FULL")) != 0 ||
	    (r = exec(s->db, "PRAGMA foreign_keys = ON")) != 0 || (r = migrate(s->db)) != 0 ||
	    (r = add_seq_column(s->db)) != 0) {
		r = qs_wrap(r, "%s", path);
		goto out;
	}
	if (sqlite3_open_v2(path, &s->sigdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		r = qs_fail(QS_ERR_DB, "open %s: %s", path,
		            s->sigdb ? sqlite3_errmsg(s->sigdb) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(s->sigdb, 10000);
	if ((r = exec(s->sigdb, "PRAGMA synchronous = NORMAL")) != 0)
		goto out;
	if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
		r = qs_fail(QS_ERR_INTERNAL, "cannot start store writer thread");
		goto out;
	}
	s->writer_started = 1;
	*out = &s->base;
	s = NULL;
	r = 0;
out:
	if (s != NULL)
		sq_close(&s->base);
	free(path);
	return r;
}
