/*
 * PostgreSQL backend of the state store, for replicated deployments: any
 * number of qsignd replicas share one database (its primary, found through
 * a multi-host conninfo with target_session_attrs=read-write).
 *
 * Durability: every session runs with synchronous_commit at least "on"
 * (raised if the server's default is weaker), so a COMMIT that returned is
 * flushed on the primary and, with a synchronous standby configured, on the
 * standby too. A write whose COMMIT did not return (the connection broke)
 * is reported as QS_ERR_UNAVAILABLE: never acknowledged, possibly done.
 *
 * Concurrency between replicas: every state change of a request is a
 * conditional UPDATE (compare-and-set on its state, under the row lock
 * PostgreSQL takes), so two replicas cannot both move a request out of a
 * state; policy versions are a primary key, so two replicas cannot both
 * add version N. The schema lives in its own PostgreSQL schema, "qsign",
 * created and versioned by qsignd under an advisory lock.
 *
 * Connections: a small pool for the workers (QS_PG_CONNS) plus one for the
 * group-committed signature records (as in the SQLite backend: callers
 * enqueue and wait; one writer thread inserts everything queued in one
 * transaction). A connection that broke is re-opened on next use; a
 * transaction whose BEGIN fails on a dead connection is retried once on a
 * new one, since nothing of it ran.
 */
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "qs_err.h"
#include "qs_limits.h"

#define PG_SCHEMA_VERSION 3    /* 2: the audit log (audit_head, audit_entry); 3: request.hash */
#define PG_LOCK_KEY 1903388465 /* 0x71736731, "qsg1": serialises schema creation */
#define PG_EXEC_KEY 1903388466 /* "qsg2": class of the execution claims */
#define STR_(x) #x
#define STR(x) STR_(x)
#define PGP_MAX 16 /* parameters of one statement (batches build their own) */
#define SIG_COLS 8
#define SIG_ROWS_PER_STMT 1000 /* 8000 parameters, far under libpq's 65535 */
#define LOG_ROWS_PER_STMT 1000 /* audit entries: 2000 parameters */
#define LOG_ROWS_PER_READ 4096

struct pg_conn {
	PGconn *c;
	int broken; /* re-open before next use */
	int busy;
};

struct gc_item {
	const struct store_sig *sigs;
	size_t n;
	int done;
	int rc;
	char detail[QS_ERRDETAIL_MAX];
	pthread_cond_t cv;
	struct gc_item *next;
};

struct pg_store {
	struct store base;
	char *conninfo;
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cv;
	struct pg_conn conns[QS_PG_CONNS];
	struct pg_conn sigconn;  /* the writer thread's own */
	struct pg_conn execconn; /* holds execution claims (pg_req_claim) */
	struct pg_conn logconn;  /* the audit log's transaction (pg_log_lock) */
	pthread_mutex_t log_mu;  /* held from pg_log_lock to its commit or abort */
	pthread_mutex_t exec_mu; /* held from a claim to its release */
	pthread_mutex_t q_mu;
	pthread_cond_t q_work;
	struct gc_item *head, **tail;
	int stopping;
	pthread_t writer;
	int writer_started;
};

/* Statement parameters: text or binary, with numbers formatted here. */
struct pgp {
	int n;
	const char *v[PGP_MAX];
	int len[PGP_MAX];
	int fmt[PGP_MAX];
	char num[PGP_MAX][24];
};

static void
pp_text(struct pgp *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void
pp_int(struct pgp *p, int64_t x)
{
	snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, x);
	pp_text(p, p->num[p->n]);
}

static void
pp_bytes(struct pgp *p, const void *b, size_t n)
{
	p->v[p->n] = n ? (const char *)b : "";
	p->len[p->n] = (int)n;
	p->fmt[p->n] = 1;
	p->n++;
}

static const char *const schema[] = {
        "CREATE SCHEMA qsign",
        "CREATE TABLE qsign.meta (k text PRIMARY KEY, v text NOT NULL)",
        "CREATE TABLE qsign.policy (version bigint PRIMARY KEY, text text NOT NULL,"
        " created_ms bigint NOT NULL)",
        "CREATE TABLE qsign.signature (id bigserial PRIMARY KEY,"
        " time_ms bigint NOT NULL, principal text NOT NULL, role text NOT NULL,"
        " key text NOT NULL, key_id text NOT NULL, kind text NOT NULL,"
        " digest bytea NOT NULL, policy_version bigint NOT NULL)",
        "CREATE INDEX signature_time ON qsign.signature(time_ms)",
        "CREATE TABLE qsign.request (id text PRIMARY KEY, role text NOT NULL, kind text NOT NULL,"
        " submitter text NOT NULL, client_token text, message text NOT NULL,"
        " payload bytea NOT NULL, digest bytea NOT NULL, state integer NOT NULL,"
        " created bigint NOT NULL, expires bigint NOT NULL,"
        " policy_version bigint NOT NULL, state_message text, result bytea,"
        " seq bigserial NOT NULL)",
        "CREATE UNIQUE INDEX request_token ON qsign.request(submitter, client_token)"
        " WHERE client_token IS NOT NULL",
        "CREATE INDEX request_state ON qsign.request(state)",
        "CREATE TABLE qsign.vote (request text NOT NULL REFERENCES qsign.request(id),"
        " approver text NOT NULL, approve integer NOT NULL, time bigint NOT NULL,"
        " signature bytea NOT NULL, reason text, seq integer NOT NULL,"
        " PRIMARY KEY (request, approver))",
        "CREATE TABLE qsign.request_sig (request text NOT NULL REFERENCES qsign.request(id),"
        " idx integer NOT NULL, key text NOT NULL, key_id text NOT NULL,"
        " algorithm text NOT NULL, signature bytea NOT NULL, PRIMARY KEY (request, idx))",
        "CREATE TABLE qsign.doc (ns text NOT NULL, name text NOT NULL, version bigint NOT NULL,"
        " data bytea NOT NULL, created_ms bigint NOT NULL, PRIMARY KEY (ns, name, version))",
        NULL,
};

/* Version 2: the audit log shared by the replicas (signer/audit/tlog.c).
 * One head row (the committed size and its signed checkpoint), locked by
 * each append; the entries by leaf index. The tree's hashes are not
 * stored: every replica recomputes them from the entries and checks them
 * against the signed checkpoint, so nothing in the database is trusted. */
static const char *const schema_v2[] = {
        "CREATE TABLE qsign.audit_head (id integer PRIMARY KEY CHECK (id = 1),"
        " size bigint NOT NULL CHECK (size >= 0), checkpoint text NOT NULL)",
        "CREATE TABLE qsign.audit_entry (seq bigint PRIMARY KEY CHECK (seq >= 0),"
        " data bytea NOT NULL)",
        NULL,
};

/* Version 3: the hash a request's signature uses (SubmitRequest.hash);
 * requests made before it are SHA-256 ones. */
static const char *const schema_v3[] = {
        "ALTER TABLE qsign.request ADD COLUMN IF NOT EXISTS hash text NOT NULL DEFAULT 'sha256'",
        NULL,
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's messages end in a newline (sometimes several lines, indented
 * with tabs): one line, single spaces. */
static void
flat(char *dst, size_t cap, const char *msg)
{
	size_t j = 0;

	for (size_t i = 0; msg != NULL && msg[i] != '\0' && j + 1 < cap; i++) {
		char ch = (msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t') ? ' ' : msg[i];
		if (ch == ' ' && (j == 0 || dst[j - 1] == ' '))
			continue;
		dst[j++] = ch;
	}
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

/* Map a failed statement to our error; marks the connection broken when
 * the failure means we may not be talking to a writable primary. */
static int
pgerr(struct pg_conn *pc, PGresult *res, const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char msg[QS_ERRDETAIL_MAX / 2];

	flat(msg, sizeof(msg), res ? PQresultErrorMessage(res) : PQerrorMessage(pc->c));
	if (msg[0] == '\0')
		flat(msg, sizeof(msg), PQerrorMessage(pc->c));
	if (PQstatus(pc->c) != CONNECTION_OK || state == NULL ||
	    strncmp(state, "08", 2) == 0 ||  /* connection exception */
	    strncmp(state, "57P", 3) == 0 || /* admin shutdown, crash shutdown */
	    strcmp(state, "25006") == 0 ||   /* read-only transaction: a standby now */
	    strcmp(state, "40001") == 0 ||   /* serialization failure */
	    strcmp(state, "40P01") == 0) {   /* deadlock detected */
		if (strncmp(state ? state : "08", "40", 2) != 0)
			pc->broken = 1;
		return qs_fail(QS_ERR_UNAVAILABLE, "postgresql unavailable: %s: %s", what, msg);
	}
	if (strcmp(state, "23505") == 0)
		return qs_fail(QS_ERR_EXISTS, "%s: %s", what, msg);
	if (strncmp(state, "22", 2) == 0) /* data exception: e.g. text not UTF-8 */
		return qs_fail(QS_ERR_INVALID, "%s: %s", what, msg);
	return qs_fail(QS_ERR_DB, "%s: %s (SQLSTATE %s)", what, msg, state);
}

/* Run one statement, its results in text (binary 0) or in binary; *out
 * (if not NULL) gets the result to PQclear. */
static int
pq_as(struct pg_conn *pc, const char *sql, const struct pgp *p, PGresult **out, const char *what,
      int binary)
{
	PGresult *res;
	ExecStatusType st;
	int r;

	if (out != NULL)
		*out = NULL;
	res = PQexecParams(pc->c, sql, p ? p->n : 0, NULL, p ? p->v : NULL, p ? p->len : NULL,
	                   p ? p->fmt : NULL, binary);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = pgerr(pc, res, what);
		PQclear(res);
		return r;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

static int
pq(struct pg_conn *pc, const char *sql, const struct pgp *p, PGresult **out, const char *what)
{
	return pq_as(pc, sql, p, out, what, 0);
}

static void
ignore_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Open a session on the primary and set it up. */
static int
pg_connect(struct pg_store *s, struct pg_conn *pc)
{
	/* Our defaults first: the conninfo (expanded from "dbname") overrides
	 * them, except that a standby is always refused below. */
	static const char *const keys[] = {"connect_timeout", "target_session_attrs",
	                                   "application_name", "dbname", NULL};
	const char *vals[] = {"5", "read-write", "qsignd", s->conninfo, NULL};
	PGresult *res = NULL;
	char msg[QS_ERRDETAIL_MAX / 2];
	int r;

	if (pc->c != NULL)
		PQfinish(pc->c);
	pc->broken = 0;
	pc->c = PQconnectdbParams(keys, vals, 1);
	if (pc->c == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (PQstatus(pc->c) != CONNECTION_OK) {
		flat(msg, sizeof(msg), PQerrorMessage(pc->c));
		pc->broken = 1;
		return qs_fail(QS_ERR_UNAVAILABLE, "postgresql unavailable: %s", msg);
	}
	PQsetNoticeProcessor(pc->c, ignore_notice, NULL);
	if ((r = pq(pc, "SET search_path = qsign", NULL, NULL, "set search_path")) != 0 ||
	    (r = pq(pc, "SELECT current_setting('synchronous_commit'), pg_is_in_recovery()::text",
	            NULL, &res, "session settings")) != 0)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 1), "false") != 0) {
		pc->broken = 1;
		r = qs_fail(QS_ERR_UNAVAILABLE,
		            "postgresql unavailable: connected to a standby (in recovery); set "
		            "target_session_attrs=read-write in the conninfo");
		goto out;
	}
	{
		/* "on" and "remote_apply" wait for the flush (and for a
		 * synchronous standby); the weaker settings do not. */
		const char *sc = PQgetvalue(res, 0, 0);
		if (strcmp(sc, "on") != 0 && strcmp(sc, "remote_apply") != 0 &&
		    (r = pq(pc, "SET synchronous_commit = on", NULL, NULL,
		            "set synchronous_commit")) != 0)
			goto out;
	}
	r = 0;
out:
	PQclear(res);
	if (r != 0)
		pc->broken = 1;
	return r;
}

/* BEGIN, on a fresh connection if the old one is (found) dead: nothing of
 * the transaction ran yet, so one retry is safe. */
static int
pg_begin(struct pg_store *s, struct pg_conn *pc, const char *begin)
{
	int r;

	if ((pc->c == NULL || pc->broken || PQstatus(pc->c) != CONNECTION_OK) &&
	    (r = pg_connect(s, pc)) != 0)
		return r;
	if ((r = pq(pc, begin, NULL, NULL, "begin")) == 0)
		return 0;
	if (!pc->broken)
		return r;
	if ((r = pg_connect(s, pc)) != 0)
		return r;
	return pq(pc, begin, NULL, NULL, "begin");
}

static int
pg_commit(struct pg_conn *pc)
{
	PGresult *res = NULL;
	int r;

	if ((r = pq(pc, "COMMIT", NULL, &res, "commit")) != 0)
		return r;
	/* COMMIT of a failed transaction answers "ROLLBACK" */
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
		r = qs_fail(QS_ERR_DB, "commit: transaction was rolled back");
	PQclear(res);
	return r;
}

static void
pg_rollback(struct pg_conn *pc)
{
	char why[QS_ERRDETAIL_MAX];

	if (pc->c == NULL || pc->broken)
		return;
	/* keep the caller's error, not ROLLBACK's */
	snprintf(why, sizeof(why), "%s", qs_errdetail());
	PQclear(PQexec(pc->c, "ROLLBACK"));
	qs_fail(QS_ERR_DB, "%s", why);
}

static struct pg_conn *
pool_get(struct pg_store *s)
{
	struct pg_conn *pc = NULL;

	pthread_mutex_lock(&s->pool_mu);
	for (;;) {
		for (size_t i = 0; i < QS_PG_CONNS && pc == NULL; i++)
			if (!s->conns[i].busy)
				pc = &s->conns[i];
		if (pc != NULL)
			break;
		pthread_cond_wait(&s->pool_cv, &s->pool_mu);
	}
	pc->busy = 1;
	pthread_mutex_unlock(&s->pool_mu);
	return pc;
}

static void
pool_put(struct pg_store *s, struct pg_conn *pc)
{
	pthread_mutex_lock(&s->pool_mu);
	pc->busy = 0;
	pthread_cond_signal(&s->pool_cv);
	pthread_mutex_unlock(&s->pool_mu);
}

/* Rollback on error and hand the connection back; returns r. */
static int
finish(struct pg_store *s, struct pg_conn *pc, int r)
{
	if (r != 0)
		pg_rollback(pc);
	pool_put(s, pc);
	return r;
}

#define BEGIN_RW "BEGIN"
#define BEGIN_RO "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

/* ------------------------------------------------------------ schema */

static int
migrate(struct pg_store *s, struct pg_conn *pc, int create)
{
	PGresult *res = NULL;
	int r, have_schema, have_meta;

	if ((r = pg_begin(s, pc, BEGIN_RW)) != 0)
		return r;
	if ((r = pq(pc, "SELECT pg_advisory_xact_lock(" STR(PG_LOCK_KEY) ")", NULL, NULL,
	            "schema lock")) != 0 ||
	    (r = pq(pc,
	            "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'qsign')::int,"
	            " (to_regclass('qsign.meta') IS NOT NULL)::int",
	            NULL, &res, "schema lookup")) != 0)
		goto out;
	have_schema = atoi(PQgetvalue(res, 0, 0));
	have_meta = atoi(PQgetvalue(res, 0, 1));
	PQclear(res);
	res = NULL;
	if (!have_schema) {
		if (!create) {
			r = qs_fail(QS_ERR_NOT_FOUND, "no quorum-signer state in this database");
			goto out;
		}
		for (size_t i = 0; schema[i] != NULL; i++)
			if ((r = pq(pc, schema[i], NULL, NULL, "create schema")) != 0)
				goto out;
		for (size_t i = 0; schema_v2[i] != NULL; i++)
			if ((r = pq(pc, schema_v2[i], NULL, NULL, "create schema")) != 0)
				goto out;
		for (size_t i = 0; schema_v3[i] != NULL; i++)
			if ((r = pq(pc, schema_v3[i], NULL, NULL, "create schema")) != 0)
				goto out;
		if ((r = pq(pc,
		            "INSERT INTO qsign.meta VALUES ('created_by', 'quorum-signer'),"
		            " ('schema_version', '" STR(PG_SCHEMA_VERSION) "')",
		            NULL, NULL, "schema version")) != 0)
			goto out;
		r = pg_commit(pc);
		goto out;
	}
	if (!have_meta) {
		r = qs_fail(QS_ERR_PRECONDITION, "the database has a schema \"qsign\" that was not "
		                                 "created by quorum-signer: refusing to use it");
		goto out;
	}
	if ((r = pq(pc,
	            "SELECT coalesce((SELECT v FROM qsign.meta WHERE k = 'created_by'), ''),"
	            " coalesce((SELECT v FROM qsign.meta WHERE k = 'schema_version'), '0')",
	            NULL, &res, "schema version")) != 0)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "quorum-signer") != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "schema \"qsign\" was not created by quorum-signer: "
		            "refusing to use it");
		goto out;
	}
	{
		long ver = strtol(PQgetvalue(res, 0, 1), NULL, 10);
		if (ver > PG_SCHEMA_VERSION) {
			r = qs_fail(
			        QS_ERR_PRECONDITION,
			        "the database has schema version %ld but this qsignd understands "
			        "up to %d: upgrade qsignd",
			        ver, PG_SCHEMA_VERSION);
			goto out;
		}
		if (ver < 1) {
			r = qs_fail(QS_ERR_PRECONDITION, "the database has no schema version");
			goto out;
		}
		if (ver < 2 && create) {
			/* 1 -> 2: the audit log moves into the database. */
			for (size_t i = 0; schema_v2[i] != NULL; i++)
				if ((r = pq(pc, schema_v2[i], NULL, NULL, "upgrade schema")) != 0)
					goto out;
			if ((r = pq(pc, "UPDATE qsign.meta SET v = '2' WHERE k = 'schema_version'",
			            NULL, NULL, "schema version")) != 0)
				goto out;
		}
		if (ver < 3 && create) {
			/* 2 -> 3: requests name their signature's hash. */
			for (size_t i = 0; schema_v3[i] != NULL; i++)
				if ((r = pq(pc, schema_v3[i], NULL, NULL, "upgrade schema")) != 0)
					goto out;
			if ((r = pq(pc, "UPDATE qsign.meta SET v = '3' WHERE k = 'schema_version'",
			            NULL, NULL, "schema version")) != 0)
				goto out;
		}
	}
	r = pg_commit(pc);
out:
	PQclear(res);
	if (r != 0)
		pg_rollback(pc);
	return r;
}

/* ------------------------------------------------------------ signatures */

static int
insert_sig_rows(struct pg_conn *pc, const struct store_sig *const *rows, size_t n)
{
	const char **v = NULL;
	int *len = NULL, *fmt = NULL;
	char(*num)[24] = NULL;
	char *sql = NULL;
	size_t cap, np = n * SIG_COLS, off;
	PGresult *res = NULL;
	ExecStatusType st;
	int r;

	cap = 128 + n * (SIG_COLS * 8 + 4);
	if ((v = calloc(np, sizeof(*v))) == NULL || (len = calloc(np, sizeof(*len))) == NULL ||
	    (fmt = calloc(np, sizeof(*fmt))) == NULL ||
	    (num = calloc(n * 2, sizeof(*num))) == NULL || (sql = malloc(cap)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	off = (size_t)snprintf(sql, cap,
	                       "INSERT INTO signature (time_ms, principal, role, key, key_id, kind,"
	                       " digest, policy_version) VALUES ");
	for (size_t i = 0; i < n; i++) {
		const struct store_sig *g = rows[i];
		size_t b = i * SIG_COLS;
		snprintf(num[2 * i], sizeof(num[0]), "%" PRId64, g->time_ms);
		snprintf(num[2 * i + 1], sizeof(num[0]), "%" PRIu64, g->policy_version);
		v[b] = num[2 * i];
		v[b + 1] = g->principal;
		v[b + 2] = g->role;
		v[b + 3] = g->key;
		v[b + 4] = g->key_id;
		v[b + 5] = g->kind;
		v[b + 6] = (const char *)g->digest;
		len[b + 6] = (int)g->digest_len;
		fmt[b + 6] = 1;
		v[b + 7] = num[2 * i + 1];
		off += (size_t)snprintf(sql + off, cap - off,
		                        "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu)", i ? "," : "",
		                        b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8);
	}
	res = PQexecParams(pc->c, sql, (int)np, NULL, v, len, fmt, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	r = st == PGRES_COMMAND_OK ? 0 : pgerr(pc, res, "insert signatures");
out:
	PQclear(res);
	free(v);
	free(len);
	free(fmt);
	free(num);
	free(sql);
	return r;
}

/* One transaction for everything in the batch. */
static int
write_batch(struct pg_store *s, struct gc_item *batch)
{
	const struct store_sig *rows[SIG_ROWS_PER_STMT];
	size_t k = 0;
	int r;

	if ((r = pg_begin(s, &s->sigconn, BEGIN_RW)) != 0)
		return r;
	for (struct gc_item *it = batch; it != NULL; it = it->next)
		for (size_t i = 0; i < it->n; i++) {
			rows[k++] = &it->sigs[i];
			if (k == SIG_ROWS_PER_STMT) {
				if ((r = insert_sig_rows(&s->sigconn, rows, k)) != 0)
					goto out;
				k = 0;
			}
		}
	if (k > 0 && (r = insert_sig_rows(&s->sigconn, rows, k)) != 0)
		goto out;
	r = pg_commit(&s->sigconn);
out:
	if (r != 0)
		pg_rollback(&s->sigconn);
	return r;
}

static void *
writer_main(void *arg)
{
	struct pg_store *s = arg;

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

		r = write_batch(s, batch);

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
	return NULL;
}

static int
pg_record_signatures(struct store *base, const struct store_sig *sigs, size_t n)
{
	struct pg_store *s = (struct pg_store *)base;
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

/* One integer that `sql` selects (a count, a maximum), read-only. */
static int
pg_int_query(struct pg_store *s, const char *sql, const char *what, uint64_t *out)
{
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0 || (r = pq(pc, sql, NULL, &res, what)) != 0)
		return finish(s, pc, r);
	*out = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return finish(s, pc, pg_commit(pc));
}

static int
pg_count_signatures(struct store *base, uint64_t *n)
{
	return pg_int_query((struct pg_store *)base, "SELECT count(*) FROM signature",
	                    "count signatures", n);
}

/* ------------------------------------------------------------ policy */

static int
policy_text(struct pg_store *s, const char *sql, const struct pgp *p, uint64_t *version,
            char **text)
{
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	int r;

	*text = NULL;
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0 || (r = pq(pc, sql, p, &res, "policy query")) != 0)
		goto out;
	if (PQntuples(res) == 0) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no such policy version");
		goto out;
	}
	if (version != NULL)
		*version = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	if ((*text = strdup(PQgetvalue(res, 0, 1))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = pg_commit(pc);
out:
	PQclear(res);
	if (r != 0) {
		free(*text);
		*text = NULL;
	}
	return finish(s, pc, r);
}

static int
pg_policy_current(struct store *base, uint64_t *version, char **text)
{
	return policy_text((struct pg_store *)base,
	                   "SELECT version, text FROM policy ORDER BY version DESC LIMIT 1", NULL,
	                   version, text);
}

static int
pg_policy_get(struct store *base, uint64_t version, char **text)
{
	struct pgp p = {0};

	if (version > INT64_MAX)
		return qs_fail(QS_ERR_NOT_FOUND, "no such policy version");
	pp_int(&p, (int64_t)version);
	return policy_text((struct pg_store *)base,
	                   "SELECT version, text FROM policy WHERE version = $1", &p, NULL, text);
}

static int
pg_policy_version(struct store *base, uint64_t *version)
{
	return pg_int_query((struct pg_store *)base, "SELECT coalesce(max(version), 0) FROM policy",
	                    "policy version", version);
}

/* Insert policy `version`, which must be current+1; inside a transaction.
 * Two replicas adding the same version: the primary key lets one win. */
static int
policy_insert(struct pg_conn *pc, uint64_t version, const char *text)
{
	PGresult *res = NULL;
	struct pgp p = {0};
	int64_t cur;
	int r;

	if ((r = pq(pc, "SELECT coalesce(max(version), 0) FROM policy", NULL, &res,
	            "policy version")) != 0)
		return r;
	cur = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (version != (uint64_t)cur + 1)
		return qs_fail(QS_ERR_PRECONDITION,
		               "policy version %llu is not the next one (current is %lld)",
		               (unsigned long long)version, (long long)cur);
	pp_int(&p, (int64_t)version);
	pp_text(&p, text);
	pp_int(&p, now_ms());
	r = pq(pc, "INSERT INTO policy VALUES ($1, $2, $3)", &p, NULL, "policy insert");
	if (r == QS_ERR_EXISTS)
		r = qs_fail(QS_ERR_PRECONDITION,
		            "policy version %llu is not the next one (added concurrently)",
		            (unsigned long long)version);
	return r;
}

static int
pg_policy_add(struct store *base, uint64_t version, const char *text)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RW)) == 0 && (r = policy_insert(pc, version, text)) == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

/* ------------------------------------------------------------ requests */

static void
copy_val(char *dst, size_t cap, const PGresult *res, int row, int col)
{
	snprintf(dst, cap, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* A bytea column (text result, hex format) into a malloc'd, NUL-terminated
 * copy. */
static int
get_bytes(const PGresult *res, int row, int col, uint8_t **out, size_t *len)
{
	unsigned char *b;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if ((b = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((*out = malloc(n + 1)) == NULL) {
		PQfreemem(b);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	memcpy(*out, b, n);
	(*out)[n] = '\0';
	*len = n;
	PQfreemem(b);
	return 0;
}

/* A bytea column into a fixed buffer (truncated at cap, as the SQLite
 * backend does). */
static int
get_fixed(const PGresult *res, int row, int col, uint8_t *dst, size_t cap, size_t *len)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int r;

	if ((r = get_bytes(res, row, col, &b, &n)) != 0)
		return r;
	if (n > cap)
		n = cap;
	memcpy(dst, b, n);
	*len = n;
	free(b);
	return 0;
}

#define REQ_COLS                                                                                   \
	"id, role, kind, submitter, client_token, message, digest, state, created, expires,"       \
	" policy_version, state_message, octet_length(payload), result, hash"

static int
row_to_req(const PGresult *res, int row, int with_payload, struct store_request *r)
{
	size_t dl = 0;
	int rc;

	copy_val(r->id, sizeof(r->id), res, row, 0);
	copy_val(r->role, sizeof(r->role), res, row, 1);
	copy_val(r->kind, sizeof(r->kind), res, row, 2);
	copy_val(r->submitter, sizeof(r->submitter), res, row, 3);
	copy_val(r->client_token, sizeof(r->client_token), res, row, 4);
	if ((r->message = strdup(PQgetvalue(res, row, 5))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	{
		uint8_t d[32];
		if ((rc = get_fixed(res, row, 6, d, sizeof(d), &dl)) != 0)
			return rc;
		if (dl == 32)
			memcpy(r->digest, d, 32);
	}
	r->state = atoi(PQgetvalue(res, row, 7));
	r->created = strtoll(PQgetvalue(res, row, 8), NULL, 10);
	r->expires = strtoll(PQgetvalue(res, row, 9), NULL, 10);
	r->policy_version = strtoull(PQgetvalue(res, row, 10), NULL, 10);
	if (!PQgetisnull(res, row, 11) &&
	    (r->state_message = strdup(PQgetvalue(res, row, 11))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	r->payload_len = strtoull(PQgetvalue(res, row, 12), NULL, 10);
	if (!PQgetisnull(res, row, 13) &&
	    (rc = get_bytes(res, row, 13, &r->result, &r->result_len)) != 0)
		return rc;
	copy_val(r->hash, sizeof(r->hash), res, row, 14);
	if (with_payload && (rc = get_bytes(res, row, 15, &r->payload, &r->payload_len)) != 0)
		return rc;
	return 0;
}

/* Votes and signatures of r, in the caller's transaction. */
static int
load_children(struct pg_conn *pc, struct store_request *r)
{
	PGresult *res = NULL;
	struct pgp p = {0};
	int rc, n;

	pp_text(&p, r->id);
	if ((rc = pq(pc,
	             "SELECT approver, approve, time, signature, reason FROM vote"
	             " WHERE request = $1 ORDER BY seq",
	             &p, &res, "votes")) != 0)
		return rc;
	n = PQntuples(res);
	if (n > 0 && (r->votes = calloc((size_t)n, sizeof(*r->votes))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct store_vote *v = &r->votes[r->nvotes++];
		copy_val(v->approver, sizeof(v->approver), res, i, 0);
		v->approve = atoi(PQgetvalue(res, i, 1));
		v->time = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		if ((rc = get_fixed(res, i, 3, v->sig, sizeof(v->sig), &v->sig_len)) != 0)
			goto out;
		if (!PQgetisnull(res, i, 4) &&
		    (v->reason = strdup(PQgetvalue(res, i, 4))) == NULL) {
			rc = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	PQclear(res);
	res = NULL;
	if ((rc = pq(pc,
	             "SELECT key, key_id, algorithm, signature FROM request_sig"
	             " WHERE request = $1 ORDER BY idx",
	             &p, &res, "request signatures")) != 0)
		return rc;
	n = PQntuples(res);
	if (n > 0 && (r->sigs = calloc((size_t)n, sizeof(*r->sigs))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		struct store_reqsig *g = &r->sigs[r->nsigs++];
		copy_val(g->key, sizeof(g->key), res, i, 0);
		copy_val(g->key_id, sizeof(g->key_id), res, i, 1);
		copy_val(g->algorithm, sizeof(g->algorithm), res, i, 2);
		if ((rc = get_fixed(res, i, 3, g->sig, sizeof(g->sig), &g->sig_len)) != 0)
			goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* The parameters $1..$12 of a request row (REQ_INSERT), in `state`. */
static void
req_params(struct pgp *p, const struct store_request *r, int state)
{
	pp_text(p, r->id);
	pp_text(p, r->role);
	pp_text(p, r->kind);
	pp_text(p, r->submitter);
	pp_text(p, r->client_token[0] != '\0' ? r->client_token : NULL);
	pp_text(p, r->message ? r->message : "");
	pp_bytes(p, r->payload, r->payload ? r->payload_len : 0);
	pp_bytes(p, r->digest, 32);
	pp_int(p, state);
	pp_int(p, r->created);
	pp_int(p, r->expires);
	pp_int(p, (int64_t)r->policy_version);
}

static int
pg_req_insert(struct store *base, const struct store_request *r)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	struct pgp p = {0};
	int rc;

	req_params(&p, r, REQ_PENDING);
	pp_text(&p, r->hash[0] ? r->hash : "sha256");
	if ((rc = pg_begin(s, pc, BEGIN_RW)) != 0)
		return finish(s, pc, rc);
	rc = pq(pc,
	        "INSERT INTO request (id, role, kind, submitter, client_token, message, payload,"
	        " digest, state, created, expires, policy_version, hash)"
	        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
	        &p, NULL, "request insert");
	if (rc == QS_ERR_EXISTS)
		rc = qs_fail(QS_ERR_EXISTS, "request already exists");
	if (rc == 0)
		rc = pg_commit(pc);
	return finish(s, pc, rc);
}

static int
pg_req_find_token(struct store *base, const char *submitter, const char *token, char *id)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	struct pgp p = {0};
	int r;

	pp_text(&p, submitter);
	pp_text(&p, token);
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0 ||
	    (r = pq(pc, "SELECT id FROM request WHERE submitter = $1 AND client_token = $2", &p,
	            &res, "token lookup")) != 0)
		return finish(s, pc, r);
	if (PQntuples(res) == 0)
		r = qs_fail(QS_ERR_NOT_FOUND, "no such request");
	else
		copy_val(id, STORE_ID_LEN + 1, res, 0, 0);
	PQclear(res);
	if (r == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

static int
pg_req_get(struct store *base, const char *id, int with_payload, struct store_request **out)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	struct store_request *r = NULL;
	PGresult *res = NULL;
	struct pgp p = {0};
	int rc;

	*out = NULL;
	pp_text(&p, id);
	if ((rc = pg_begin(s, pc, BEGIN_RO)) != 0 ||
	    (rc = pq(pc,
	             with_payload ? "SELECT " REQ_COLS ", payload FROM request WHERE id = $1"
	                          : "SELECT " REQ_COLS " FROM request WHERE id = $1",
	             &p, &res, "request get")) != 0)
		goto out;
	if (PQntuples(res) == 0) {
		rc = qs_fail(QS_ERR_NOT_FOUND, "no request %s", id);
		goto out;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = row_to_req(res, 0, with_payload, r)) != 0 || (rc = load_children(pc, r)) != 0 ||
	    (rc = pg_commit(pc)) != 0)
		goto out;
	*out = r;
	r = NULL;
	rc = 0;
out:
	PQclear(res);
	store_request_free(r);
	return finish(s, pc, rc);
}

static int
pg_req_list(struct store *base, int state, const char *role, size_t limit,
            struct store_request ***out, size_t *n)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	struct store_request **v = NULL;
	PGresult *res = NULL;
	struct pgp p = {0};
	size_t cnt = 0;
	int rc, rows;

	*out = NULL;
	*n = 0;
	if (limit == 0 || limit > 10000)
		limit = 10000;
	pp_int(&p, state);
	pp_text(&p, role);
	pp_int(&p, (int64_t)limit);
	if ((rc = pg_begin(s, pc, BEGIN_RO)) != 0 ||
	    (rc = pq(pc,
	             "SELECT " REQ_COLS " FROM request WHERE ($1::integer = 0 OR state = $1)"
	             " AND ($2::text IS NULL OR role = $2) ORDER BY created DESC, seq DESC"
	             " LIMIT $3",
	             &p, &res, "request list")) != 0)
		goto out;
	rows = PQntuples(res);
	if ((v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*v))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		if ((v[cnt] = calloc(1, sizeof(**v))) == NULL) {
			rc = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		cnt++;
		if ((rc = row_to_req(res, i, 0, v[cnt - 1])) != 0 ||
		    (rc = load_children(pc, v[cnt - 1])) != 0)
			goto out;
	}
	if ((rc = pg_commit(pc)) != 0)
		goto out;
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
out:
	PQclear(res);
	store_request_list_free(v, cnt);
	return finish(s, pc, rc);
}

/* Compare-and-set a request's state in the caller's transaction. A racing
 * replica's UPDATE of the same row waits for ours and then finds the state
 * changed: exactly one of them moves the request. */
static int
cas_state(struct pg_conn *pc, const char *id, int from, int to, const char *msg)
{
	PGresult *res = NULL;
	struct pgp p = {0};
	int r;

	pp_int(&p, to);
	pp_text(&p, msg);
	pp_text(&p, id);
	pp_int(&p, from);
	if ((r = pq(pc,
	            "UPDATE request SET state = $1, state_message = coalesce($2, state_message)"
	            " WHERE id = $3 AND state = $4",
	            &p, &res, "state update")) != 0)
		return r;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		r = qs_fail(QS_ERR_PRECONDITION, "request %s is not in the expected state", id);
	PQclear(res);
	return r;
}

static int
pg_req_vote(struct store *base, const char *id, const struct store_vote *v, int replace,
            int new_state, const char *msg)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	struct pgp p = {0};
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RW)) != 0 ||
	    (r = cas_state(pc, id, REQ_PENDING, new_state, msg)) != 0)
		return finish(s, pc, r);
	pp_text(&p, id);
	pp_text(&p, v->approver);
	pp_int(&p, v->approve ? 1 : 0);
	pp_int(&p, v->time);
	pp_bytes(&p, v->sig, v->sig_len);
	pp_text(&p, v->reason);
	/* replace: the approver's earlier vote no longer counts (its key was
	 * replaced); the new one takes its place (store.h). */
	r = pq(pc,
	       replace ? "UPDATE vote SET approve = $3, time = $4, signature = $5, reason = $6"
	                 " WHERE request = $1 AND approver = $2"
	               : "INSERT INTO vote (request, approver, approve, time, signature, reason, "
	                 "seq)"
	                 " VALUES ($1,$2,$3,$4,$5,$6, (SELECT count(*) FROM vote WHERE request = "
	                 "$1))",
	       &p, &res, "vote insert");
	if (r == QS_ERR_EXISTS)
		r = qs_fail(QS_ERR_EXISTS, "%s already voted on request %s", v->approver, id);
	if (r == 0 && replace && strcmp(PQcmdTuples(res), "1") != 0)
		r = qs_fail(QS_ERR_NOT_FOUND, "%s has no vote on request %s to replace",
		            v->approver, id);
	PQclear(res);
	if (r == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

/*
 * Execution claims are session-level advisory locks (class PG_EXEC_KEY,
 * the request id's hash) on a connection of their own: PostgreSQL drops
 * them when that session ends, so a replica killed mid-execution leaves no
 * stale claim behind and no lease needs to expire. Two ids with the same
 * hash only make one wait for the other's execution.
 */
static int
pg_req_claim(struct store *base, const char *id)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->execconn;
	PGresult *res = NULL;
	struct pgp p = {0};
	int r;

	pthread_mutex_lock(&s->exec_mu);
	if ((pc->c == NULL || pc->broken || PQstatus(pc->c) != CONNECTION_OK) &&
	    (r = pg_connect(s, pc)) != 0)
		goto out;
	pp_text(&p, id);
	if ((r = pq(pc, "SELECT pg_try_advisory_lock(" STR(PG_EXEC_KEY) ", hashtext($1))", &p, &res,
	            "claim execution")) != 0)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		r = qs_fail(QS_ERR_PRECONDITION, "request %s is being executed by another replica",
		            id);
out:
	PQclear(res);
	if (r != 0)
		pthread_mutex_unlock(&s->exec_mu);
	return r;
}

static void
pg_req_unclaim(struct store *base, const char *id)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->execconn;
	struct pgp p = {0};

	pp_text(&p, id);
	if (pc->c != NULL && !pc->broken &&
	    pq(pc, "SELECT pg_advisory_unlock(" STR(PG_EXEC_KEY) ", hashtext($1))", &p, NULL,
	       "release execution") != 0) {
		/* Ending the session releases the claim for certain. */
		PQfinish(pc->c);
		pc->c = NULL;
		qs_errclear();
	}
	pthread_mutex_unlock(&s->exec_mu);
}

static int
pg_req_transition(struct store *base, const char *id, int from, int to, const char *msg)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RW)) == 0 && (r = cas_state(pc, id, from, to, msg)) == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

static int
pg_req_finish(struct store *base, const char *id, const struct store_reqsig *sigs, size_t n,
              const uint8_t *result, size_t result_len, uint64_t policy_version,
              const char *policy_text)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RW)) != 0 ||
	    (r = cas_state(pc, id, REQ_APPROVED, REQ_SIGNED, NULL)) != 0)
		return finish(s, pc, r);
	if (result != NULL) {
		struct pgp p = {0};
		pp_bytes(&p, result, result_len);
		pp_text(&p, id);
		if ((r = pq(pc, "UPDATE request SET result = $1 WHERE id = $2", &p, NULL,
		            "store result")) != 0)
			return finish(s, pc, r);
	}
	for (size_t i = 0; i < n; i++) {
		struct pgp p = {0};
		pp_text(&p, id);
		pp_int(&p, (int64_t)i);
		pp_text(&p, sigs[i].key);
		pp_text(&p, sigs[i].key_id);
		pp_text(&p, sigs[i].algorithm);
		pp_bytes(&p, sigs[i].sig, sigs[i].sig_len);
		if ((r = pq(pc, "INSERT INTO request_sig VALUES ($1,$2,$3,$4,$5,$6)", &p, NULL,
		            "request_sig insert")) != 0)
			return finish(s, pc, r);
	}
	if (policy_text != NULL && (r = policy_insert(pc, policy_version, policy_text)) != 0)
		return finish(s, pc, r);
	return finish(s, pc, pg_commit(pc));
}

/* ------------------------------------------------------------ documents */

static int
doc_insert(struct pg_conn *pc, const char *ns, const char *name, uint64_t version,
           const uint8_t *data, size_t len)
{
	struct pgp p = {0};
	int r;

	if (version < 1 || version > INT64_MAX)
		return qs_fail(QS_ERR_INVALID, "document version must be >= 1");
	pp_text(&p, ns);
	pp_text(&p, name);
	pp_int(&p, (int64_t)version);
	pp_bytes(&p, data, len);
	pp_int(&p, now_ms());
	r = pq(pc, "INSERT INTO doc VALUES ($1,$2,$3,$4,$5)", &p, NULL, "doc insert");
	if (r == QS_ERR_EXISTS)
		r = qs_fail(QS_ERR_EXISTS, "%s/%s version %llu exists", ns, name,
		            (unsigned long long)version);
	return r;
}

static int
pg_doc_put_many(struct store *base, const char *ns, size_t n, const char *const *names,
                const uint64_t *versions, const uint8_t *const *data, const size_t *lens)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	int r;

	if ((r = pg_begin(s, pc, BEGIN_RW)) != 0)
		return finish(s, pc, r);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = doc_insert(pc, ns, names[i], versions[i], data[i], lens[i]);
	if (r == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

static int
pg_doc_put(struct store *base, const char *ns, const char *name, uint64_t version,
           const uint8_t *data, size_t len)
{
	return pg_doc_put_many(base, ns, 1, &name, &version, &data, &len);
}

static int
pg_doc_get(struct store *base, const char *ns, const char *name, uint64_t version, uint8_t **data,
           size_t *len, uint64_t *version_out)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	struct pgp p = {0};
	int r;

	*data = NULL;
	*len = 0;
	pp_text(&p, ns);
	pp_text(&p, name);
	if (version != 0)
		pp_int(&p, version > INT64_MAX ? -1 : (int64_t)version);
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0 ||
	    (r = pq(pc,
	            version == 0 ? "SELECT version, data FROM doc WHERE ns = $1 AND name = $2"
	                           " ORDER BY version DESC LIMIT 1"
	                         : "SELECT version, data FROM doc WHERE ns = $1 AND name = $2"
	                           " AND version = $3",
	            &p, &res, "doc get")) != 0)
		goto out;
	if (PQntuples(res) == 0) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no document %s/%s", ns, name);
		goto out;
	}
	if ((r = get_bytes(res, 0, 1, data, len)) != 0)
		goto out;
	if (version_out != NULL)
		*version_out = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	r = pg_commit(pc);
out:
	PQclear(res);
	if (r != 0) {
		free(*data);
		*data = NULL;
		*len = 0;
	}
	return finish(s, pc, r);
}

static int
pg_doc_list(struct store *base, const char *ns, char ***names, size_t *n)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	struct pgp p = {0};
	char **v = NULL;
	size_t cnt = 0;
	int r, rows;

	*names = NULL;
	*n = 0;
	pp_text(&p, ns);
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0 ||
	    (r = pq(pc, "SELECT DISTINCT name FROM doc WHERE ns = $1 ORDER BY name", &p, &res,
	            "doc list")) != 0)
		goto out;
	rows = PQntuples(res);
	if ((v = calloc(rows > 0 ? (size_t)rows : 1, sizeof(*v))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < rows; i++, cnt++)
		if ((v[cnt] = strdup(PQgetvalue(res, i, 0))) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	if ((r = pg_commit(pc)) != 0)
		goto out;
	*names = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
out:
	PQclear(res);
	for (size_t i = 0; i < cnt; i++)
		free(v[i]);
	free(v);
	return finish(s, pc, r);
}

/* ------------------------------------------------------------ audit log */

static int
head_row(PGresult *res, uint64_t *size, char **note, size_t *len)
{
	const char *c = PQgetvalue(res, 0, 1);

	*size = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	*len = strlen(c);
	if ((*note = strdup(c)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

#define HEAD_SELECT "SELECT size, checkpoint FROM audit_head WHERE id = 1"

static int
pg_log_lock(struct store *base, uint64_t *size, char **note, size_t *len)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->logconn;
	PGresult *res = NULL;
	int r;

	*size = 0;
	*note = NULL;
	*len = 0;
	pthread_mutex_lock(&s->log_mu);
	if ((r = pg_begin(s, pc, BEGIN_RW)) != 0)
		goto fail;
	if ((r = pq(pc, HEAD_SELECT " FOR UPDATE", NULL, &res, "lock the audit log head")) != 0)
		goto out;
	if (PQntuples(res) == 0) {
		/* A new log: its head row, which the first commit fills. */
		PQclear(res);
		res = NULL;
		if ((r = pq(pc,
		            "INSERT INTO audit_head VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
		            NULL, NULL, "create the audit log head")) != 0 ||
		    (r = pq(pc, HEAD_SELECT " FOR UPDATE", NULL, &res,
		            "lock the audit log head")) != 0)
			goto out;
		if (PQntuples(res) != 1) {
			r = qs_fail(QS_ERR_DB, "audit log head row missing");
			goto out;
		}
	}
	r = head_row(res, size, note, len);
out:
	PQclear(res);
	if (r == 0)
		return 0; /* log_mu stays held until the commit or abort */
	pg_rollback(pc);
fail:
	pthread_mutex_unlock(&s->log_mu);
	return r;
}

static void
pg_log_abort(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	pg_rollback(&s->logconn);
	pthread_mutex_unlock(&s->log_mu);
}

static int
insert_log_rows(struct pg_conn *pc, uint64_t first, const struct store_log_rec *recs, size_t n)
{
	const char **v = NULL;
	int *len = NULL, *fmt = NULL;
	char(*num)[24] = NULL;
	char *sql = NULL;
	size_t cap = 64 + n * 24, off;
	PGresult *res = NULL;
	ExecStatusType st;
	int r;

	if ((v = calloc(2 * n, sizeof(*v))) == NULL ||
	    (len = calloc(2 * n, sizeof(*len))) == NULL ||
	    (fmt = calloc(2 * n, sizeof(*fmt))) == NULL ||
	    (num = calloc(n, sizeof(*num))) == NULL || (sql = malloc(cap)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	off = (size_t)snprintf(sql, cap, "INSERT INTO audit_entry (seq, data) VALUES ");
	for (size_t i = 0; i < n; i++) {
		snprintf(num[i], sizeof(num[0]), "%" PRIu64, first + i);
		v[2 * i] = num[i];
		v[2 * i + 1] = (const char *)recs[i].data;
		len[2 * i + 1] = (int)recs[i].len;
		fmt[2 * i + 1] = 1;
		off += (size_t)snprintf(sql + off, cap - off, "%s($%zu,$%zu)", i ? "," : "",
		                        2 * i + 1, 2 * i + 2);
	}
	res = PQexecParams(pc->c, sql, (int)(2 * n), NULL, v, len, fmt, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	r = st == PGRES_COMMAND_OK ? 0 : pgerr(pc, res, "insert audit entries");
out:
	PQclear(res);
	free(v);
	free(len);
	free(fmt);
	free(num);
	free(sql);
	return r;
}

static int
pg_log_commit(struct store *base, uint64_t first, const struct store_log_rec *recs, size_t n,
              const char *note, size_t note_len)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->logconn;
	struct pgp p = {0};
	PGresult *res = NULL;
	char *text = strndup(note, note_len); /* a text parameter ends in NUL */
	int r = 0;

	if (text == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t off = 0; off < n && r == 0; off += LOG_ROWS_PER_STMT)
		r = insert_log_rows(pc, first + off, recs + off,
		                    n - off < LOG_ROWS_PER_STMT ? n - off : LOG_ROWS_PER_STMT);
	if (r != 0)
		goto out;
	pp_int(&p, (int64_t)(first + n));
	pp_text(&p, text);
	pp_int(&p, (int64_t)first);
	if ((r = pq(pc,
	            "UPDATE audit_head SET size = $1, checkpoint = $2 WHERE id = 1 AND size = $3",
	            &p, &res, "update the audit log head")) != 0)
		goto out;
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		r = qs_fail(QS_ERR_DB, "audit log head moved while locked");
		goto out;
	}
	if ((r = pg_commit(pc)) != 0) {
		/* Not acknowledged, whatever PostgreSQL did with it. */
		r = qs_fail(QS_ERR_UNAVAILABLE, "postgresql did not commit the audit entries: %s",
		            qs_errdetail());
		pc->broken = 1; /* the session's state is unknown: start afresh */
	}
out:
	PQclear(res);
	free(text);
	if (r != 0)
		pg_rollback(pc);
	pthread_mutex_unlock(&s->log_mu);
	return r;
}

/* A bigint column of a binary result (big-endian); UINT64_MAX if it is
 * not 8 bytes. */
static uint64_t
be64(const PGresult *res, int row, int col)
{
	const uint8_t *b = (const uint8_t *)PQgetvalue(res, row, col);
	uint64_t v = 0;

	if (PQgetlength(res, row, col) != 8)
		return UINT64_MAX;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static int
pg_log_read(struct store *base, int locked, uint64_t from, uint64_t to, store_log_fn fn, void *arg)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = locked ? &s->logconn : pool_get(s);
	PGresult *res = NULL;
	int r = 0;

	if (!locked && (r = pg_begin(s, pc, BEGIN_RO)) != 0) {
		pool_put(s, pc);
		return r;
	}
	for (uint64_t cur = from; cur < to && r == 0;) {
		uint64_t hi = to - cur < LOG_ROWS_PER_READ ? to : cur + LOG_ROWS_PER_READ;
		struct pgp p = {0};
		int rows;

		pp_int(&p, (int64_t)cur);
		pp_int(&p, (int64_t)hi);
		/* Binary results: the entries' bytes as they are (text would
		 * send them hex-encoded, twice the size, to be decoded here). */
		if ((r = pq_as(pc,
		               "SELECT seq, data FROM audit_entry WHERE seq >= $1 AND seq < $2"
		               " ORDER BY seq",
		               &p, &res, "read audit entries", 1)) != 0)
			break;
		rows = PQntuples(res);
		for (int i = 0; i < rows && r == 0; i++, cur++) {
			if (be64(res, i, 0) != cur) {
				r = qs_fail(QS_ERR_PRECONDITION,
				            "audit entry %" PRIu64 " is missing from the database",
				            cur);
				break;
			}
			r = fn(arg, cur, (const uint8_t *)PQgetvalue(res, i, 1),
			       (size_t)PQgetlength(res, i, 1));
		}
		PQclear(res);
		res = NULL;
		if (r == 0 && cur < hi)
			r = qs_fail(QS_ERR_PRECONDITION,
			            "audit entry %" PRIu64 " is missing from the database", cur);
	}
	if (locked)
		return r;
	if (r == 0)
		r = pg_commit(pc);
	return finish(s, pc, r);
}

static int
pg_log_head(struct store *base, uint64_t *size, char **note, size_t *len)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	PGresult *res = NULL;
	int r;

	*size = 0;
	*note = NULL;
	*len = 0;
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0) {
		pool_put(s, pc);
		return r;
	}
	if ((r = pq(pc, HEAD_SELECT, NULL, &res, "read the audit log head")) != 0)
		goto out;
	if (PQntuples(res) == 1 && (r = head_row(res, size, note, len)) != 0)
		goto out;
	if (*note == NULL && (*note = strdup("")) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = pg_commit(pc);
out:
	PQclear(res);
	if (r != 0) {
		free(*note);
		*note = NULL;
		*len = 0;
	}
	return finish(s, pc, r);
}

static int
pg_log_entry(struct store *base, uint64_t seq, uint8_t **data, size_t *len)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = pool_get(s);
	struct pgp p = {0};
	PGresult *res = NULL;
	int r;

	*data = NULL;
	*len = 0;
	if ((r = pg_begin(s, pc, BEGIN_RO)) != 0) {
		pool_put(s, pc);
		return r;
	}
	pp_int(&p, (int64_t)seq);
	if ((r = pq_as(pc, "SELECT data FROM audit_entry WHERE seq = $1", &p, &res,
	               "read an audit entry", 1)) != 0)
		goto out;
	if (PQntuples(res) != 1) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no audit entry %" PRIu64, seq);
		goto out;
	}
	*len = (size_t)PQgetlength(res, 0, 0);
	if ((*data = malloc(*len + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*data, PQgetvalue(res, 0, 0), *len);
	(*data)[*len] = '\0';
	r = pg_commit(pc);
out:
	PQclear(res);
	if (r != 0) {
		free(*data);
		*data = NULL;
		*len = 0;
	}
	return finish(s, pc, r);
}

/* ------------------------------------------------------------ migration */

/*
 * The import (qsignd migrate-store): one transaction on the log's
 * connection, under log_mu, from import_begin to import_commit or
 * import_abort. The tables are locked against every writer first (a
 * replica started meanwhile waits, then finds the imported state), and
 * the target must hold nothing yet: neither state nor an audit entry.
 */
#define IMPORT_TABLES "policy, signature, request, vote, request_sig, doc, audit_head, audit_entry"

static int
pg_import_begin(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->logconn;
	PGresult *res = NULL;
	uint64_t size;
	char *note = NULL;
	size_t len;
	int r;

	/* The log's transaction (log_mu held until commit or abort). */
	if ((r = pg_log_lock(base, &size, &note, &len)) != 0)
		return r;
	free(note);
	if ((r = pq(pc, "LOCK TABLE " IMPORT_TABLES " IN EXCLUSIVE MODE", NULL, NULL,
	            "lock the tables")) != 0 ||
	    (r = pq(pc,
	            "SELECT (SELECT count(*) FROM policy), (SELECT count(*) FROM signature),"
	            " (SELECT count(*) FROM request), (SELECT count(*) FROM doc),"
	            " (SELECT count(*) FROM audit_entry), (SELECT max(size) FROM audit_head)",
	            NULL, &res, "look at the target")) != 0)
		goto out;
	for (int i = 0; i < 6 && r == 0; i++)
		if (strcmp(PQgetvalue(res, 0, i), "0") != 0)
			r = qs_fail(QS_ERR_EXISTS,
			            "the target database already holds a quorum-signer state (%s "
			            "policy versions, %s signatures, %s requests, %s documents, %s "
			            "audit entries, an audit log of %s): nothing was changed",
			            PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			            PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3),
			            PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5));
out:
	PQclear(res);
	if (r != 0)
		pg_log_abort(base);
	return r;
}

static int
pg_import_policy(void *arg, uint64_t version, const char *text)
{
	return policy_insert(&((struct pg_store *)arg)->logconn, version, text);
}

static int
pg_import_signatures(void *arg, const struct store_sig *sigs, size_t n)
{
	struct pg_store *s = arg;
	const struct store_sig *rows[SIG_ROWS_PER_STMT];
	int r = 0;

	for (size_t off = 0; off < n && r == 0; off += SIG_ROWS_PER_STMT) {
		size_t k = n - off < SIG_ROWS_PER_STMT ? n - off : SIG_ROWS_PER_STMT;
		for (size_t i = 0; i < k; i++)
			rows[i] = &sigs[off + i];
		r = insert_sig_rows(&s->logconn, rows, k);
	}
	return r;
}

/* A request as it is: its state, votes (in their order), signatures and
 * result. */
static int
pg_import_request(void *arg, const struct store_request *q)
{
	struct pg_conn *pc = &((struct pg_store *)arg)->logconn;
	struct pgp p = {0};
	int r;

	req_params(&p, q, q->state);
	pp_text(&p, q->state_message);
	if (q->result != NULL)
		pp_bytes(&p, q->result, q->result_len);
	else
		pp_text(&p, NULL);
	pp_text(&p, q->hash[0] ? q->hash : "sha256");
	if ((r = pq(pc,
	            "INSERT INTO request (id, role, kind, submitter, client_token, message,"
	            " payload, digest, state, created, expires, policy_version, state_message,"
	            " result, hash)"
	            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
	            &p, NULL, "request import")) != 0)
		return r;
	for (size_t i = 0; i < q->nvotes; i++) {
		const struct store_vote *v = &q->votes[i];
		struct pgp pv = {0};
		pp_text(&pv, q->id);
		pp_text(&pv, v->approver);
		pp_int(&pv, v->approve ? 1 : 0);
		pp_int(&pv, v->time);
		pp_bytes(&pv, v->sig, v->sig_len);
		pp_text(&pv, v->reason);
		pp_int(&pv, (int64_t)i);
		if ((r = pq(pc, "INSERT INTO vote VALUES ($1,$2,$3,$4,$5,$6,$7)", &pv, NULL,
		            "vote import")) != 0)
			return r;
	}
	for (size_t i = 0; i < q->nsigs; i++) {
		struct pgp pg = {0};
		pp_text(&pg, q->id);
		pp_int(&pg, (int64_t)i);
		pp_text(&pg, q->sigs[i].key);
		pp_text(&pg, q->sigs[i].key_id);
		pp_text(&pg, q->sigs[i].algorithm);
		pp_bytes(&pg, q->sigs[i].sig, q->sigs[i].sig_len);
		if ((r = pq(pc, "INSERT INTO request_sig VALUES ($1,$2,$3,$4,$5,$6)", &pg, NULL,
		            "request signature import")) != 0)
			return r;
	}
	return 0;
}

static int
pg_import_doc(void *arg, const char *ns, const char *name, uint64_t version, const uint8_t *data,
              size_t len)
{
	return doc_insert(&((struct pg_store *)arg)->logconn, ns, name, version, data, len);
}

static const struct store_sink pg_import_sink = {
        .policy = pg_import_policy,
        .signatures = pg_import_signatures,
        .request = pg_import_request,
        .doc = pg_import_doc,
};

static int
pg_import_log(struct store *base, uint64_t first, const struct store_log_rec *recs, size_t n)
{
	struct pg_store *s = (struct pg_store *)base;
	int r = 0;

	for (size_t off = 0; off < n && r == 0; off += LOG_ROWS_PER_STMT)
		r = insert_log_rows(&s->logconn, first + off, recs + off,
		                    n - off < LOG_ROWS_PER_STMT ? n - off : LOG_ROWS_PER_STMT);
	return r;
}

static int
pg_import_commit(struct store *base, uint64_t size, const char *note, size_t note_len)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pg_conn *pc = &s->logconn;
	struct pgp p = {0};
	char *text = strndup(note, note_len); /* a text parameter ends in NUL */
	int r;

	if (text == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	pp_int(&p, (int64_t)size);
	pp_text(&p, text);
	if ((r = pq(pc, "UPDATE audit_head SET size = $1, checkpoint = $2 WHERE id = 1", &p, NULL,
	            "set the audit log head")) != 0)
		goto out;
	if ((r = pg_commit(pc)) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "postgresql did not commit the import: %s",
		            qs_errdetail());
		pc->broken = 1;
	}
out:
	free(text);
	if (r != 0)
		pg_rollback(pc);
	pthread_mutex_unlock(&s->log_mu);
	return r;
}

static void
pg_close(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	if (s->writer_started) {
		pthread_mutex_lock(&s->q_mu);
		s->stopping = 1;
		pthread_cond_signal(&s->q_work);
		pthread_mutex_unlock(&s->q_mu);
		pthread_join(s->writer, NULL);
	}
	for (size_t i = 0; i < QS_PG_CONNS; i++)
		if (s->conns[i].c != NULL)
			PQfinish(s->conns[i].c);
	if (s->sigconn.c != NULL)
		PQfinish(s->sigconn.c);
	if (s->execconn.c != NULL)
		PQfinish(s->execconn.c);
	if (s->logconn.c != NULL)
		PQfinish(s->logconn.c);
	if (s->conninfo != NULL) {
		/* it may hold a password */
		explicit_bzero(s->conninfo, strlen(s->conninfo));
		free(s->conninfo);
	}
	pthread_mutex_destroy(&s->pool_mu);
	pthread_cond_destroy(&s->pool_cv);
	pthread_mutex_destroy(&s->q_mu);
	pthread_cond_destroy(&s->q_work);
	pthread_mutex_destroy(&s->exec_mu);
	pthread_mutex_destroy(&s->log_mu);
	free(s);
}

static const struct store_ops pg_ops = {
        .name = "postgresql",
        .shared = 1,
        .close = pg_close,
        .policy_current = pg_policy_current,
        .policy_get = pg_policy_get,
        .policy_version = pg_policy_version,
        .policy_add = pg_policy_add,
        .record_signatures = pg_record_signatures,
        .count_signatures = pg_count_signatures,
        .req_insert = pg_req_insert,
        .req_find_token = pg_req_find_token,
        .req_get = pg_req_get,
        .req_list = pg_req_list,
        .req_vote = pg_req_vote,
        .req_claim = pg_req_claim,
        .req_unclaim = pg_req_unclaim,
        .req_transition = pg_req_transition,
        .req_finish = pg_req_finish,
        .doc_put = pg_doc_put,
        .doc_put_many = pg_doc_put_many,
        .doc_get = pg_doc_get,
        .doc_list = pg_doc_list,
        .log_lock = pg_log_lock,
        .log_read = pg_log_read,
        .log_commit = pg_log_commit,
        .log_abort = pg_log_abort,
        .log_head = pg_log_head,
        .log_entry = pg_log_entry,
        .import_begin = pg_import_begin,
        .import_sink = &pg_import_sink,
        .import_log = pg_import_log,
        .import_commit = pg_import_commit,
        .import_abort = pg_log_abort, /* the log transaction */
};

int
store_open_pg(const char *conninfo, int create, struct store **out)
{
	struct pg_store *s = NULL;
	int r;

	*out = NULL;
	if (conninfo == NULL || conninfo[0] == '\0')
		return qs_fail(QS_ERR_INVALID, "empty postgresql conninfo");
	{
		/* Refuse a malformed conninfo with libpq's own reason. */
		char *err = NULL;
		PQconninfoOption *o = PQconninfoParse(conninfo, &err);
		if (o == NULL) {
			char msg[QS_ERRDETAIL_MAX / 2];
			flat(msg, sizeof(msg), err ? err : "out of memory");
			PQfreemem(err);
			return qs_fail(QS_ERR_INVALID, "postgresql conninfo: %s", msg);
		}
		PQconninfoFree(o);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	s->base.ops = &pg_ops;
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_cond_init(&s->pool_cv, NULL);
	pthread_mutex_init(&s->q_mu, NULL);
	pthread_cond_init(&s->q_work, NULL);
	pthread_mutex_init(&s->exec_mu, NULL);
	pthread_mutex_init(&s->log_mu, NULL);
	s->tail = &s->head;
	if ((s->conninfo = strdup(conninfo)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* One connection now, so that a wrong conninfo or a foreign schema
	 * stops the start; the others open on first use. */
	if ((r = pg_connect(s, &s->conns[0])) != 0 || (r = migrate(s, &s->conns[0], create)) != 0)
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
		pg_close(&s->base);
	return r;
}
