/*
 * SQLite backend of the state store.
 *
 * WAL mode with synchronous=FULL: a COMMIT returns after the WAL is
 * fsync'ed, so anything we acknowledge survives power loss. Signature
 * records are group-committed by one writer thread: callers enqueue and
 * wait; the writer takes everything queued, writes it in one transaction
 * and wakes them all. One fsync then covers many signatures
 * (ENVIRONMENT.md: 32 records per fdatasync is ~18x the rate of one).
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "qs_err.h"
#include "statement.h"

#define SCHEMA_VERSION 1
#define APP_ID 0x71736731 /* "qsg1": marks a database as ours */

struct gc_item {
	const struct store_sig *sigs;
	size_t n;
	int done;
	int rc;
	char detail[160];
	struct gc_item *next;
};

struct sq_store {
	struct store base;
	sqlite3 *db;
	pthread_mutex_t db_mu; /* one statement sequence at a time on db */
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
	" digest BLOB NOT NULL, policy_version INTEGER NOT NULL)",
	"CREATE INDEX signature_time ON signature(time_ms)",
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
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APP_ID);
		if ((r = exec(db, sql)) != 0 ||
		    (r = exec(db, "PRAGMA user_version = 1")) != 0 ||
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
		sqlite3_bind_blob(st, 7, s[i].digest, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, (sqlite3_int64)s[i].policy_version);
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

		pthread_mutex_lock(&s->db_mu);
		r = 0;
		if (st == NULL &&
		    sqlite3_prepare_v2(s->db,
				       "INSERT INTO signature (time_ms, principal, role, key,"
				       " key_id, kind, digest, policy_version)"
				       " VALUES (?,?,?,?,?,?,?,?)",
				       -1, &st, NULL) != SQLITE_OK)
			r = dberr(s->db, "prepare insert signature");
		if (r == 0)
			r = exec(s->db, "BEGIN IMMEDIATE");
		for (it = batch; r == 0 && it != NULL; it = it->next)
			r = insert_sigs(s->db, st, it->sigs, it->n);
		if (r == 0)
			r = exec(s->db, "COMMIT");
		if (r != 0)
			exec(s->db, "ROLLBACK");
		pthread_mutex_unlock(&s->db_mu);

		pthread_mutex_lock(&s->q_mu);
		for (it = batch; it != NULL; it = it->next) {
			it->rc = r;
			if (r != 0)
				snprintf(it->detail, sizeof(it->detail), "%s", qs_errdetail());
			it->done = 1;
		}
		pthread_cond_broadcast(&s->q_done);
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

	pthread_mutex_lock(&s->q_mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->q_mu);
		return qs_fail(QS_ERR_UNAVAILABLE, "state store is shutting down");
	}
	*s->tail = &item;
	s->tail = &item.next;
	pthread_cond_signal(&s->q_work);
	while (!item.done)
		pthread_cond_wait(&s->q_done, &s->q_mu);
	pthread_mutex_unlock(&s->q_mu);
	if (item.rc != 0)
		return qs_fail(item.rc, "%s", item.detail);
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
	struct sq_store *s = (struct sq_store *)base;
	sqlite3_stmt *st = NULL;
	int r = 0;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM signature", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		r = dberr(s->db, "count signatures");
	else
		*n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
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
	if (s->db != NULL)
		sqlite3_close(s->db);
	pthread_mutex_destroy(&s->db_mu);
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
	.policy_add = sq_policy_add,
	.record_signatures = sq_record_signatures,
	.count_signatures = sq_count_signatures,
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
	    (r = exec(s->db, "PRAGMA foreign_keys = ON")) != 0 || (r = migrate(s->db)) != 0) {
		r = qs_wrap(r, "%s", path);
		goto out;
	}
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
