/*
 * State store, on both backends: schema creation and refusal, policy version
 * chain, documents, and group-committed signature records from many threads
 * with nothing lost or duplicated.
 *
 *   store_test                 SQLite in a temporary directory
 *   store_test --pg CONNINFO   PostgreSQL (an empty database; tests/signer/store/
 *                              store_pg_test.sh starts one), plus what only
 *                              a shared database has: two handles (two
 *                              replicas) racing the same state transitions
 *                              and policy versions, exactly one winning;
 *                              refusal of a foreign or newer schema; the
 *                              audit log kept in the store: appends from two
 *                              handles serialised by the head's lock, a
 *                              COMMIT PostgreSQL refuses leaves nothing;
 *                              a SQLite store moved into it (migrate-store).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../../proto/check.h"
#include "qs_err.h"
#include "store.h"

#define THREADS 8
#define PER_THREAD 200
#define RACERS 8  /* threads racing one transition, half on each handle */
#define ROUNDS 20 /* requests raced */

static struct store *st;
static const char *pg; /* conninfo, or NULL for SQLite */
static char dir[] = "/tmp/qs-store-test.XXXXXX";

static int
open_store(struct store **out)
{
	return pg ? store_open_pg(pg, 1, out) : store_open_sqlite(dir, out);
}

static void *
writer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct store_sig s = {.time_ms = 1, .principal = "ci", .role = "r", .key = "k",
				      .key_id = "00", .kind = "digest", .digest_len = 32, .policy_version = 1};
		s.digest[0] = (uint8_t)id;
		s.digest[1] = (uint8_t)i;
		if (store_record_signatures(st, &s, 1) != 0)
			return (void *)1;
	}
	return NULL;
}

/* ------------------------------------------------ two replicas racing */

enum race_op { RACE_FINISH, RACE_VOTE, RACE_POLICY };

struct racer {
	struct store *s;
	enum race_op op;
	const char *id;
	uint64_t policy_version;
	int idx;
	pthread_barrier_t *go;
	int rc;
};

static void *
race_main(void *arg)
{
	struct racer *x = arg;
	struct store_reqsig sig = {.key = "k", .key_id = "00", .algorithm = "ecdsa-p256",
				   .sig = {1, 2, 3}, .sig_len = 3};
	struct store_vote v = {.approve = 1, .time = 1, .sig = {9}, .sig_len = 1};

	snprintf(v.approver, sizeof(v.approver), "approver-%d", x->idx);
	pthread_barrier_wait(x->go);
	switch (x->op) {
	case RACE_FINISH:
		x->rc = store_req_finish(x->s, x->id, &sig, 1, NULL, 0, 0, NULL);
		break;
	case RACE_VOTE:
		x->rc = store_req_vote(x->s, x->id, &v, 0, REQ_APPROVED, NULL);
		break;
	case RACE_POLICY:
		x->rc = store_policy_add(x->s, x->policy_version, "{\"raced\":true}");
		break;
	}
	return NULL;
}

/* RACERS threads, alternating between handles a and b, do `op` at once:
 * returns how many succeeded; every loser must see QS_ERR_PRECONDITION. */
static int
race(struct store *a, struct store *b, enum race_op op, const char *id, uint64_t pv)
{
	pthread_t th[RACERS];
	struct racer x[RACERS];
	pthread_barrier_t go;
	int wins = 0;

	pthread_barrier_init(&go, NULL, RACERS);
	for (int i = 0; i < RACERS; i++) {
		x[i] = (struct racer){.s = i % 2 ? b : a, .op = op, .id = id, .policy_version = pv,
				      .idx = i, .go = &go};
		pthread_create(&th[i], NULL, race_main, &x[i]);
	}
	for (int i = 0; i < RACERS; i++) {
		pthread_join(th[i], NULL);
		if (x[i].rc == 0)
			wins++;
		else
			CHECK_EQ(x[i].rc, QS_ERR_PRECONDITION);
	}
	pthread_barrier_destroy(&go);
	return wins;
}

static void
new_request(struct store *s, const char *id, int approved)
{
	struct store_request r;

	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.role, sizeof(r.role), "release");
	snprintf(r.kind, sizeof(r.kind), "sign");
	snprintf(r.submitter, sizeof(r.submitter), "dev");
	r.message = "raced";
	r.payload = (uint8_t *)"payload";
	r.payload_len = 7;
	r.created = 1;
	r.expires = 4000000000;
	r.policy_version = 1;
	CHECK_EQ(store_req_insert(s, &r), 0);
	if (approved)
		CHECK_EQ(store_req_transition(s, id, REQ_PENDING, REQ_APPROVED, NULL), 0);
}

static void
pg_races(void)
{
	struct store *a = NULL, *b = NULL;
	struct store_request *r = NULL;
	char id[STORE_ID_LEN + 1];
	uint64_t cur = 0;
	char *text = NULL;

	CHECK_EQ(store_open_pg(pg, 1, &a), 0);
	CHECK_EQ(store_open_pg(pg, 1, &b), 0);
	if (a == NULL || b == NULL)
		goto out;
	for (int i = 0; i < ROUNDS; i++) {
		/* Execution claimed once: APPROVED -> SIGNED by one replica. */
		snprintf(id, sizeof(id), "%032x", 0x1000 + i);
		new_request(a, id, 1);
		CHECK_EQ(race(a, b, RACE_FINISH, id, 0), 1);
		CHECK_EQ(store_req_get(b, id, 0, &r), 0);
		if (r != NULL) {
			CHECK_EQ(r->state, REQ_SIGNED);
			CHECK_EQ(r->nsigs, 1);
		}
		store_request_free(r);
		r = NULL;
		/* The vote that reaches the threshold is recorded once. */
		snprintf(id, sizeof(id), "%032x", 0x2000 + i);
		new_request(b, id, 0);
		CHECK_EQ(race(a, b, RACE_VOTE, id, 0), 1);
		CHECK_EQ(store_req_get(a, id, 0, &r), 0);
		if (r != NULL) {
			CHECK_EQ(r->state, REQ_APPROVED);
			CHECK_EQ(r->nvotes, 1);
		}
		store_request_free(r);
		r = NULL;
		/* Policy versions are unique. */
		CHECK_EQ(store_policy_current(a, &cur, &text), 0);
		free(text);
		text = NULL;
		CHECK_EQ(race(a, b, RACE_POLICY, NULL, cur + 1), 1);
	}
	CHECK_EQ(store_policy_current(b, &cur, &text), 0);
	free(text);
out:
	store_close(a);
	store_close(b);
}

/* What store_log_read passes, joined with '|'. */
static int
collect(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	char *buf = arg;
	size_t n = strlen(buf);

	(void)seq;
	snprintf(buf + n, 256 - n, "%s%.*s", n ? "|" : "", (int)len, (const char *)data);
	return 0;
}

struct locker {
	struct store *s;
	uint64_t size;
	int rc;
};

static void *
lock_main(void *arg)
{
	struct locker *l = arg;
	char *note = NULL;
	size_t len = 0;
	const struct store_log_rec rec = {(const uint8_t *)"third", 5};

	l->rc = store_log_lock(l->s, &l->size, &note, &len);
	free(note);
	if (l->rc == 0)
		l->rc = store_log_commit(l->s, l->size, &rec, 1, "cp3\n", 4);
	return NULL;
}

/* The audit log kept in the store, from two handles (two replicas). */
static void
pg_log(void)
{
	struct store *a = NULL, *b = NULL;
	const struct store_log_rec two[] = {{(const uint8_t *)"first", 5},
	                                    {(const uint8_t *)"second", 6}};
	struct locker l = {0};
	pthread_t th;
	char got[256] = "", *note = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	uint64_t size = 0;
	PGconn *c = PQconnectdb(pg);

	CHECK(PQstatus(c) == CONNECTION_OK);
	CHECK_EQ(store_open_pg(pg, 1, &a), 0);
	CHECK_EQ(store_open_pg(pg, 1, &b), 0);
	if (a == NULL || b == NULL)
		goto out;
	CHECK(store_log_shared(a));
	CHECK_EQ(store_log_lock(a, &size, &note, &len), 0); /* a new log: no head yet */
	CHECK_EQ(size, 0);
	CHECK_STR(note, "");
	free(note);
	CHECK_EQ(store_log_commit(a, 0, two, 2, "cp2\n", 4), 0);
	/* While a holds the head, b's append waits for it. */
	CHECK_EQ(store_log_lock(a, &size, &note, &len), 0);
	free(note);
	l.s = b;
	pthread_create(&th, NULL, lock_main, &l);
	usleep(300 * 1000);
	CHECK_EQ(store_log_read(a, 1, 0, 2, collect, got), 0);
	CHECK_STR(got, "first|second");
	store_log_abort(a);
	pthread_join(th, NULL);
	CHECK_EQ(l.rc, 0);
	CHECK_EQ(l.size, 2);
	CHECK_EQ(store_log_head(a, &size, &note, &len), 0);
	CHECK_EQ(size, 3);
	CHECK_STR(note, "cp3\n");
	free(note);
	CHECK_EQ(store_log_entry(a, 2, &data, &len), 0);
	CHECK(len == 5 && memcmp(data, "third", 5) == 0);
	free(data);
	CHECK_EQ(store_log_entry(a, 3, &data, &len), QS_ERR_NOT_FOUND);
	got[0] = '\0';
	CHECK_EQ(store_log_read(b, 0, 1, 3, collect, got), 0);
	CHECK_STR(got, "second|third");
	/* A stale first index (another replica appended meanwhile) is refused. */
	CHECK_EQ(store_log_lock(a, &size, &note, &len), 0);
	free(note);
	CHECK(store_log_commit(a, 2, two, 1, "cpX\n", 4) != 0);
	/* A COMMIT that PostgreSQL refuses (a deferred check fails): nothing of
	 * it stays, and the caller is told UNAVAILABLE. */
	PQclear(PQexec(c, "CREATE FUNCTION qsign.no() RETURNS trigger LANGUAGE plpgsql AS "
	                  "$$BEGIN RAISE EXCEPTION 'refused'; END$$"));
	PQclear(PQexec(c, "CREATE CONSTRAINT TRIGGER no AFTER UPDATE ON qsign.audit_head "
	                  "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION qsign.no()"));
	CHECK_EQ(store_log_lock(a, &size, &note, &len), 0);
	free(note);
	CHECK_EQ(size, 3);
	CHECK_EQ(store_log_commit(a, 3, two, 2, "cp5\n", 4), QS_ERR_UNAVAILABLE);
	CHECK(strstr(qs_errdetail(), "did not commit") != NULL);
	CHECK_EQ(store_log_head(b, &size, &note, &len), 0);
	CHECK_EQ(size, 3);
	CHECK_STR(note, "cp3\n");
	free(note);
	CHECK_EQ(store_log_entry(b, 3, &data, &len), QS_ERR_NOT_FOUND);
	PQclear(PQexec(c, "DROP TRIGGER no ON qsign.audit_head"));
	CHECK_EQ(store_log_lock(a, &size, &note, &len), 0); /* the session recovered */
	free(note);
	CHECK_EQ(store_log_commit(a, 3, two, 2, "cp5\n", 4), 0);
	CHECK_EQ(store_log_head(b, &size, &note, &len), 0);
	CHECK_EQ(size, 5);
	free(note);
out:
	PQfinish(c);
	store_close(a);
	store_close(b);
}

/* A database whose "qsign" schema is not ours, or newer than ours. */
static void
pg_refusals(void)
{
	PGconn *c = PQconnectdb(pg);
	char *other = NULL;
	struct store *s = NULL;

	CHECK(PQstatus(c) == CONNECTION_OK);
	PQclear(PQexec(c, "DROP DATABASE IF EXISTS qs_other"));
	PQclear(PQexec(c, "CREATE DATABASE qs_other"));
	PQfinish(c);
	if (asprintf(&other, "%s dbname=qs_other", pg) < 0)
		return;
	CHECK_EQ(store_open_pg(other, 0, &s), QS_ERR_NOT_FOUND); /* --check: create nothing */
	c = PQconnectdb(other);
	PQclear(PQexec(c, "CREATE SCHEMA qsign; CREATE TABLE qsign.t (x int)"));
	CHECK_EQ(store_open_pg(other, 1, &s), QS_ERR_PRECONDITION);
	PQclear(PQexec(c, "DROP SCHEMA qsign CASCADE"));
	CHECK_EQ(store_open_pg(other, 1, &s), 0); /* creates ours */
	new_request(s, "made-by-v1", 0);
	store_close(s);
	s = NULL;
	{
		/* Version 1 (before the audit log moved in, and before requests
		 * named their signature's hash) is upgraded. */
		PGresult *res;
		struct store_request *rq = NULL;
		uint64_t size = 1;
		char *note = NULL;
		size_t len = 0;
		PQclear(PQexec(c, "DROP TABLE qsign.audit_entry, qsign.audit_head; ALTER TABLE "
		                  "qsign.request DROP COLUMN hash; UPDATE "
		                  "qsign.meta SET v = '1' WHERE k = 'schema_version'"));
		CHECK_EQ(store_open_pg(other, 0, &s), 0); /* --check: changes nothing */
		store_close(s);
		s = NULL;
		CHECK_EQ(store_open_pg(other, 1, &s), 0);
		CHECK_EQ(store_log_head(s, &size, &note, &len), 0);
		CHECK_EQ(size, 0);
		free(note);
		store_close(s);
		s = NULL;
		res = PQexec(c, "SELECT v FROM qsign.meta WHERE k = 'schema_version'");
		CHECK(PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "3") == 0);
		PQclear(res);
		/* A request made before version 3 is a SHA-256 one. */
		CHECK_EQ(store_open_pg(other, 1, &s), 0);
		CHECK_EQ(store_req_get(s, "made-by-v1", 0, &rq), 0);
		CHECK(rq != NULL && strcmp(rq->hash, "sha256") == 0);
		store_request_free(rq);
		store_close(s);
		s = NULL;
	}
	PQclear(PQexec(c, "UPDATE qsign.meta SET v = '99' WHERE k = 'schema_version'"));
	CHECK_EQ(store_open_pg(other, 1, &s), QS_ERR_PRECONDITION);
	CHECK(strstr(qs_errdetail(), "upgrade qsignd") != NULL);
	PQfinish(c);
	CHECK_EQ(store_open_pg("host=/nonexistent-qsign-test connect_timeout=2", 1, &s), QS_ERR_UNAVAILABLE);
	CHECK_EQ(store_open_pg("not a conninfo", 1, &s), QS_ERR_INVALID);
	free(other);
}

/* Two requests compared field by field (payload included). */
static void
same_request(const struct store_request *a, const struct store_request *b)
{
	CHECK_STR(a->id, b->id);
	CHECK_STR(a->role, b->role);
	CHECK_STR(a->kind, b->kind);
	CHECK_STR(a->submitter, b->submitter);
	CHECK_STR(a->client_token, b->client_token);
	CHECK_STR(a->message, b->message);
	CHECK(a->payload_len == b->payload_len &&
	      memcmp(a->payload, b->payload, a->payload_len) == 0);
	CHECK(memcmp(a->digest, b->digest, 32) == 0);
	CHECK_STR(a->hash, b->hash);
	CHECK_EQ(a->state, b->state);
	CHECK(a->created == b->created && a->expires == b->expires);
	CHECK_EQ(a->policy_version, b->policy_version);
	CHECK((a->state_message == NULL) == (b->state_message == NULL));
	if (a->state_message != NULL && b->state_message != NULL)
		CHECK_STR(a->state_message, b->state_message);
	CHECK(a->result_len == b->result_len &&
	      (a->result_len == 0 || memcmp(a->result, b->result, a->result_len) == 0));
	CHECK_EQ(a->nvotes, b->nvotes);
	for (size_t i = 0; i < a->nvotes && i < b->nvotes; i++) {
		CHECK_STR(a->votes[i].approver, b->votes[i].approver);
		CHECK_EQ(a->votes[i].approve, b->votes[i].approve);
		CHECK(a->votes[i].time == b->votes[i].time);
		CHECK(a->votes[i].sig_len == b->votes[i].sig_len &&
		      memcmp(a->votes[i].sig, b->votes[i].sig, a->votes[i].sig_len) == 0);
		CHECK_STR(a->votes[i].reason ? a->votes[i].reason : "",
		          b->votes[i].reason ? b->votes[i].reason : "");
	}
	CHECK_EQ(a->nsigs, b->nsigs);
	for (size_t i = 0; i < a->nsigs && i < b->nsigs; i++) {
		CHECK_STR(a->sigs[i].key, b->sigs[i].key);
		CHECK_STR(a->sigs[i].key_id, b->sigs[i].key_id);
		CHECK_STR(a->sigs[i].algorithm, b->sigs[i].algorithm);
		CHECK(a->sigs[i].sig_len == b->sigs[i].sig_len &&
		      memcmp(a->sigs[i].sig, b->sigs[i].sig, a->sigs[i].sig_len) == 0);
	}
}

/*
 * qsignd migrate-store's store part: a SQLite store dumped into a new
 * PostgreSQL database's import, every field of every request kept; a
 * target that holds anything refused, unchanged; an aborted import leaves
 * nothing.
 */
/* A state.db of schema version 1 (no request.hash) opens, is upgraded to
 * version 2, and its requests are SHA-256 ones; new requests keep theirs. */
static void
sqlite_schema_v1(void)
{
	char sdir[] = "/tmp/qs-store-v1.XXXXXX", cmd[512];
	struct store *s = NULL;
	struct store_request r, *got = NULL;

	if (mkdtemp(sdir) == NULL)
		return;
	CHECK_EQ(store_open_sqlite(sdir, &s), 0);
	new_request(s, "made-by-v1", 0);
	store_close(s);
	s = NULL;
	/* Back to version 1, as every state.db made before version 2. */
	snprintf(cmd, sizeof(cmd),
	         "sqlite3 %s/state.db 'ALTER TABLE request DROP COLUMN hash; "
	         "PRAGMA user_version = 1;'",
	         sdir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(store_open_sqlite(sdir, &s), 0);
	CHECK_EQ(store_req_get(s, "made-by-v1", 0, &got), 0);
	CHECK(got != NULL && strcmp(got->hash, "sha256") == 0);
	store_request_free(got);
	got = NULL;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "made-by-v2");
	snprintf(r.role, sizeof(r.role), "release");
	snprintf(r.kind, sizeof(r.kind), "blob");
	snprintf(r.submitter, sizeof(r.submitter), "dev");
	snprintf(r.hash, sizeof(r.hash), "sha384");
	r.message = "m";
	r.payload = (uint8_t *)"payload";
	r.payload_len = 7;
	r.expires = 4000000000;
	r.policy_version = 1;
	CHECK_EQ(store_req_insert(s, &r), 0);
	CHECK_EQ(store_req_get(s, "made-by-v2", 1, &got), 0);
	CHECK(got != NULL && strcmp(got->hash, "sha384") == 0 && got->payload_len == 7);
	store_request_free(got);
	store_close(s);
	snprintf(cmd, sizeof(cmd), "test \"$(sqlite3 %s/state.db 'PRAGMA user_version')\" = 2",
	         sdir);
	CHECK_EQ(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sdir);
	CHECK_EQ(system(cmd), 0);
}

static void
pg_migration(void)
{
	char sdir[] = "/tmp/qs-store-mig.XXXXXX", *other = NULL, cmd[128];
	struct store *src = NULL, *dst = NULL;
	struct store_request r, *a = NULL, *b = NULL;
	struct store_vote v;
	struct store_reqsig g;
	struct store_sig sig;
	struct store_log_rec recs[2] = {{(const uint8_t *)"e0", 2}, {(const uint8_t *)"e1", 2}};
	uint8_t *d = NULL;
	size_t dl = 0;
	uint64_t n = 0, size = 0;
	char *note = NULL;
	PGconn *c = PQconnectdb(pg);

	CHECK(PQstatus(c) == CONNECTION_OK);
	PQclear(PQexec(c, "DROP DATABASE IF EXISTS qs_mig"));
	PQclear(PQexec(c, "CREATE DATABASE qs_mig"));
	PQfinish(c);
	if (mkdtemp(sdir) == NULL || asprintf(&other, "%s dbname=qs_mig", pg) < 0)
		return;
	CHECK_EQ(store_open_sqlite(sdir, &src), 0);
	CHECK_EQ(store_policy_add(src, 1, "{\"v\":1}"), 0);
	CHECK_EQ(store_policy_add(src, 2, "{\"v\":2}"), 0);
	memset(&sig, 0, sizeof(sig));
	sig.time_ms = 1234;
	sig.principal = "ci";
	sig.role = "ci-sign";
	sig.key = "k";
	sig.key_id = "abcd";
	sig.kind = "digest";
	sig.digest_len = 48;
	memset(sig.digest, 7, sizeof(sig.digest));
	sig.policy_version = 2;
	CHECK_EQ(store_record_signatures(src, &sig, 1), 0);
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "m1");
	snprintf(r.role, sizeof(r.role), "release");
	snprintf(r.kind, sizeof(r.kind), "sign");
	snprintf(r.hash, sizeof(r.hash), "sha512"); /* moved with the request */
	snprintf(r.submitter, sizeof(r.submitter), "dev");
	snprintf(r.client_token, sizeof(r.client_token), "tok");
	r.message = "moved";
	r.payload = (uint8_t *)"pay\0load";
	r.payload_len = 8;
	memset(r.digest, 9, 32);
	r.created = 100;
	r.expires = 4000000000;
	r.policy_version = 2;
	CHECK_EQ(store_req_insert(src, &r), 0);
	memset(&v, 0, sizeof(v));
	snprintf(v.approver, sizeof(v.approver), "admin1");
	v.approve = 1;
	v.time = 111;
	v.sig_len = 64;
	memset(v.sig, 1, 64);
	v.reason = "looks right";
	CHECK_EQ(store_req_vote(src, "m1", &v, 0, REQ_PENDING, NULL), 0);
	snprintf(v.approver, sizeof(v.approver), "admin2");
	v.time = 112;
	v.reason = NULL;
	CHECK_EQ(store_req_vote(src, "m1", &v, 0, REQ_APPROVED, "approved"), 0);
	memset(&g, 0, sizeof(g));
	snprintf(g.key, sizeof(g.key), "release-key");
	snprintf(g.key_id, sizeof(g.key_id), "ef01");
	snprintf(g.algorithm, sizeof(g.algorithm), "ed25519");
	g.sig_len = 64;
	memset(g.sig, 3, 64);
	CHECK_EQ(store_req_finish(src, "m1", &g, 1, (const uint8_t *)"result", 6, 0, NULL), 0);
	snprintf(r.id, sizeof(r.id), "m2");
	r.client_token[0] = '\0';
	CHECK_EQ(store_req_insert(src, &r), 0);
	CHECK_EQ(store_req_transition(src, "m2", REQ_PENDING, REQ_FAILED, "token gone"), 0);
	CHECK_EQ(store_doc_put(src, "tuf", "root", 1, (const uint8_t *)"R1", 2), 0);
	CHECK_EQ(store_doc_put(src, "tuf", "root", 2, (const uint8_t *)"R2", 2), 0);

	CHECK_EQ(store_import_begin(src), QS_ERR_UNIMPLEMENTED); /* not a target */
	CHECK(store_import_sink(src) == NULL);
	CHECK_EQ(store_open_pg(other, 1, &dst), 0);
	CHECK_EQ(store_dump(dst, NULL, NULL), QS_ERR_UNIMPLEMENTED); /* not a source */
	/* An import rolled back leaves nothing. */
	CHECK_EQ(store_import_begin(dst), 0);
	CHECK_EQ(store_dump(src, store_import_sink(dst), dst), 0);
	store_import_abort(dst);
	CHECK_EQ(store_policy_version(dst, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_req_get(dst, "m1", 0, &b), QS_ERR_NOT_FOUND);
	/* The import. */
	CHECK_EQ(store_import_begin(dst), 0);
	CHECK_EQ(store_dump(src, store_import_sink(dst), dst), 0);
	CHECK_EQ(store_import_log(dst, 0, recs, 2), 0);
	CHECK_EQ(store_import_commit(dst, 2, "note\n", 5), 0);
	CHECK_EQ(store_policy_version(dst, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(store_count_signatures(dst, &n), 0);
	CHECK_EQ(n, 1);
	for (int i = 1; i <= 2; i++) {
		snprintf(cmd, sizeof(cmd), "m%d", i);
		CHECK_EQ(store_req_get(src, cmd, 1, &a), 0);
		CHECK_EQ(store_req_get(dst, cmd, 1, &b), 0);
		if (a != NULL && b != NULL)
			same_request(a, b);
		store_request_free(a);
		store_request_free(b);
		a = b = NULL;
	}
	CHECK_EQ(store_req_find_token(dst, "dev", "tok", cmd), 0);
	CHECK_STR(cmd, "m1");
	CHECK_EQ(store_doc_get(dst, "tuf", "root", 1, &d, &dl, NULL), 0);
	CHECK(dl == 2 && memcmp(d, "R1", 2) == 0);
	free(d);
	CHECK_EQ(store_doc_get(dst, "tuf", "root", 0, &d, &dl, &n), 0);
	CHECK(n == 2 && dl == 2 && memcmp(d, "R2", 2) == 0);
	free(d);
	CHECK_EQ(store_log_head(dst, &size, &note, &dl), 0);
	CHECK(size == 2 && note != NULL && strcmp(note, "note\n") == 0);
	free(note);
	CHECK_EQ(store_log_entry(dst, 1, &d, &dl), 0);
	CHECK(dl == 2 && memcmp(d, "e1", 2) == 0);
	free(d);
	/* A target that holds anything: refused, unchanged. */
	CHECK_EQ(store_import_begin(dst), QS_ERR_EXISTS);
	CHECK(strstr(qs_errdetail(), "already holds") != NULL);
	CHECK_EQ(store_policy_version(dst, &n), 0);
	CHECK_EQ(n, 2);
	store_close(dst);
	store_close(src);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", sdir);
	CHECK_EQ(system(cmd), 0);
	free(other);
}

int
main(int argc, char **argv)
{
	pthread_t th[THREADS];
	uint64_t v = 0, n = 0;
	char *text = NULL, cmd[256];
	void *ret;
	int bad = 0;

	if (argc == 3 && strcmp(argv[1], "--pg") == 0)
		pg = argv[2];
	else if (argc != 1)
		return 2;
	if (pg == NULL && mkdtemp(dir) == NULL)
		return 2;
	CHECK_EQ(open_store(&st), 0);
	CHECK_EQ(store_policy_current(st, &v, &text), QS_ERR_NOT_FOUND);
	CHECK_EQ(store_policy_add(st, 2, "{}"), QS_ERR_PRECONDITION); /* must start at 1 */
	CHECK_EQ(store_policy_add(st, 1, "{\"v\":1}"), 0);
	CHECK_EQ(store_policy_add(st, 1, "{\"v\":1}"), QS_ERR_PRECONDITION);
	CHECK_EQ(store_policy_add(st, 3, "{\"v\":3}"), QS_ERR_PRECONDITION); /* skipped 2 */
	CHECK_EQ(store_policy_add(st, 2, "{\"v\":2}"), 0);
	CHECK_EQ(store_policy_current(st, &v, &text), 0);
	CHECK_EQ(v, 2);
	CHECK_STR(text, "{\"v\":2}");
	free(text);
	CHECK_EQ(store_policy_get(st, 1, &text), 0);
	CHECK_STR(text, "{\"v\":1}");
	free(text);
	CHECK_EQ(store_policy_get(st, 9, &text), QS_ERR_NOT_FOUND);
	{
		/* Several documents at once: all or none. */
		const char *names[] = {"a", "b", "c"};
		const uint64_t vers[] = {1, 1, 1}, vers2[] = {2, 2, 1};
		const uint8_t *data[] = {(const uint8_t *)"A1", (const uint8_t *)"B1",
		                         (const uint8_t *)"C1"};
		const uint8_t *data2[] = {(const uint8_t *)"A2", (const uint8_t *)"B2",
		                          (const uint8_t *)"C2"};
		const size_t lens[] = {2, 2, 2};
		uint8_t *d = NULL;
		size_t dl = 0;
		uint64_t got = 0;
		CHECK_EQ(store_doc_put_many(st, "t", 3, names, vers, data, lens), 0);
		/* c version 1 exists: a and b version 2 must not be stored */
		CHECK_EQ(store_doc_put_many(st, "t", 3, names, vers2, data2, lens), QS_ERR_EXISTS);
		CHECK_EQ(store_doc_get(st, "t", "a", 0, &d, &dl, &got), 0);
		CHECK_EQ(got, 1);
		CHECK(dl == 2 && memcmp(d, "A1", 2) == 0);
		free(d);
		CHECK_EQ(store_doc_get(st, "t", "b", 2, &d, &dl, NULL), QS_ERR_NOT_FOUND);
		CHECK_EQ(store_doc_get(st, "t", "c", 0, &d, &dl, &got), 0);
		CHECK(got == 1 && dl == 2 && memcmp(d, "C1", 2) == 0);
		free(d);
	}

	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], &ret);
		bad += ret != NULL;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(store_count_signatures(st, &n), 0);
	CHECK_EQ(n, THREADS * PER_THREAD);
	store_close(st);

	/* Reopen: everything is still there. */
	CHECK_EQ(open_store(&st), 0);
	CHECK_EQ(store_count_signatures(st, &n), 0);
	CHECK_EQ(n, THREADS * PER_THREAD);
	store_close(st);

	if (pg != NULL) {
		pg_races();
		pg_log();
		pg_refusals();
		pg_migration();
	} else {
		sqlite_schema_v1();
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 2;
	}
	CHECK_DONE();
}
