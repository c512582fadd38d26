/*
 * qsc_audit_test - the streaming audit verifier of the client library
 * (clients/qsc_audit.h) on its own: roots against proto/merkle.c for every
 * size up to 70 and at a size taken from the leaf callback, the canonical
 * scan never accepting what jansson refuses (duplicate keys, nested too;
 * leading zeros; trailing bytes; raw control characters) nor refusing what
 * jansson accepts (keys out of order, whitespace, escapes, reals), the
 * jsonl reader on truncated, empty and too long lines, and memory that does
 * not grow with the number of entries (RSS after 200,000 entries), and
 * approvals checked in parallel reporting exactly what one thread reports,
 * in the same order (test_parallel_votes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "merkle.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "qsc_audit.h"
#include "statement.h"

struct seen {
	int problems;
	char last[1024];
	uint64_t root_at;
	uint8_t root_at_hash[32];
	qsc_audit_verifier *v;
};

static void
on_problem(void *arg, const char *msg)
{
	struct seen *s = arg;

	s->problems++;
	snprintf(s->last, sizeof(s->last), "%s", msg);
}

static void
on_leaf(void *arg, uint64_t index, const uint8_t hash[32])
{
	struct seen *s = arg;

	(void)hash;
	if (index + 1 == s->root_at)
		CHECK(qsc_audit_verifier_root(s->v, s->root_at_hash) == 0);
}

static qsc_audit_verifier *
fresh(struct seen *s)
{
	struct qsc_audit_callbacks cb = {on_problem, on_leaf, s};
	qsc_audit_verifier *v = NULL;

	memset(s, 0, sizeof(*s));
	CHECK(qsc_audit_verifier_new(&cb, &v) == 0);
	s->v = v;
	return v;
}

static int
add(qsc_audit_verifier *v, const char *e)
{
	return qsc_audit_verifier_add(v, (const uint8_t *)e, strlen(e));
}

static void
test_roots(void)
{
	qs_hash leaves[70], want, got;
	struct seen s;
	qsc_audit_verifier *v = fresh(&s);
	char e[128];

	s.root_at = 37;
	CHECK(qsc_audit_verifier_root(v, got) == 0);
	CHECK(qs_merkle_root_of(leaves, 0, want) == 0);
	CHECK(memcmp(got, want, 32) == 0);
	for (int i = 0; i < 70; i++) {
		snprintf(e, sizeof(e), "{\"event\":\"signature\",\"seq\":%d,\"time\":%d}", i,
		         1000 + i);
		CHECK(qs_merkle_leaf_hash((const uint8_t *)e, strlen(e), leaves[i]) == 0);
		CHECK(add(v, e) == 0);
		CHECK(qsc_audit_verifier_root(v, got) == 0);
		CHECK(qs_merkle_root_of(leaves, (uint64_t)i + 1, want) == 0);
		CHECK(memcmp(got, want, 32) == 0);
	}
	CHECK(qs_merkle_root_of(leaves, 37, want) == 0);
	CHECK(memcmp(s.root_at_hash, want, 32) == 0);
	CHECK_EQ(s.problems, 0);
	qsc_audit_verifier_free(v);
}

/* One entry at seq 0: how many problems, and a part of the last one. */
static void
one(const char *entry, int problems, const char *says)
{
	struct seen s;
	qsc_audit_verifier *v = fresh(&s);
	struct qsc_audit_totals t;

	CHECK(add(v, entry) == 0);
	qsc_audit_verifier_totals(v, &t);
	if (s.problems != problems || (says != NULL && strstr(s.last, says) == NULL))
		fprintf(stderr, "entry %s: %d problems (want %d), last \"%s\"\n", entry, s.problems,
		        problems, s.last);
	CHECK_EQ(s.problems, problems);
	CHECK_EQ(t.problems, problems);
	CHECK_EQ(t.entries, 1);
	CHECK(says == NULL || strstr(s.last, says) != NULL);
	qsc_audit_verifier_free(v);
}

static void
test_scan(void)
{
	/* Accepted, canonical or not. */
	one("{\"event\":\"signature\",\"seq\":0,\"time\":5}", 0, NULL);
	one("{\"seq\":0,\"event\":\"signature\",\"time\":5}", 0, NULL);
	one("{ \"event\" : \"signature\", \"seq\": 0, \"time\": 5 }", 0, NULL);
	one("{\"a\":\"\\u00e9\\n\",\"event\":\"signature\",\"seq\":0,\"time\":5}", 0, NULL);
	one("{\"a\":1.5e3,\"b\":[true,false,null,{}],\"event\":\"x\",\"seq\":0,\"time\":5}", 0,
	    NULL);
	one("{\"a\":{\"x\":1,\"y\":{\"z\":[]}},\"event\":\"x\",\"seq\":-0,\"time\":5}", 0, NULL);
	/* Refused, by jansson's verdict. */
	one("{\"event\":\"x\",\"seq\":0,\"seq\":0,\"time\":5}", 1, "not a JSON object");
	one("{\"a\":{\"k\":1,\"k\":1},\"event\":\"x\",\"seq\":0,\"time\":5}", 1,
	    "duplicate object key");
	one("{\"a\":\"\\u0061\",\"a\\u0000\":1,\"event\":\"x\",\"seq\":0,\"time\":5}", 1,
	    "not a JSON object");
	one("{\"event\":\"x\",\"seq\":00,\"time\":5}", 1, "not a JSON object");
	one("{\"event\":\"x\",\"seq\":0,\"time\":5}x", 1, "not a JSON object");
	one("{\"event\":\"x\",\"seq\":0,\"time\":5,}", 1, "not a JSON object");
	one("{\"event\":\"a\tb\",\"seq\":0,\"time\":5}", 1, "not a JSON object");
	one("[1,2]", 1, "not a JSON object");
	/* The checks every entry gets, on either path. */
	one("{\"event\":\"x\",\"seq\":1,\"time\":5}", 1, "\"seq\": 1");
	one("{\"event\":\"x\",\"seq\":\"0\",\"time\":5}", 1, "\"seq\": -1");
	one("{\"event\":\"x\",\"seq\":0,\"time\":-5}", 1, "time -5 is before");
	one("{\"seq\":0,\"time\":5}", 1, "has no event");
	one("{\"event\":\"x\",\"seq\":12345678901234567890123,\"time\":5}", 1, "not a JSON object");
	/* Entries the approval checks read always get their fields read. */
	one("{\"event\":\"request.vote\",\"id\":\"r1\",\"seq\":0,\"time\":5}", 1,
	    "which no request.submitted entry precedes");
	one("{\"event\":\"policy\",\"seq\":0,\"time\":5}", 1, "without a version and text");
}

static void
test_order(void)
{
	struct seen s;
	qsc_audit_verifier *v = fresh(&s);
	struct qsc_audit_totals t;

	CHECK(add(v, "{\"event\":\"x\",\"seq\":0,\"time\":10}") == 0);
	CHECK(add(v, "{\"event\":\"x\",\"seq\":1,\"time\":9}") == 0);
	CHECK(strstr(s.last, "entry 1: time 9 is before the previous entry's 10") != NULL);
	CHECK(add(v, "{\"event\":\"x\",\"seq\":1,\"time\":11}") == 0);
	CHECK(strstr(s.last, "entry 2 has \"seq\": 1") != NULL);
	CHECK(qsc_audit_verifier_add(v, (const uint8_t *)"x", 0) == QS_ERR_INVALID);
	qsc_audit_verifier_totals(v, &t);
	CHECK_EQ(t.entries, 3);
	CHECK_EQ(t.problems, 2);
	qsc_audit_verifier_free(v);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs(text, f);
	fclose(f);
}

static void
test_jsonl(const char *dir)
{
	char path[4096];
	struct seen s;
	qsc_audit_verifier *v = fresh(&s);
	uint64_t n = 0;
	char *big;

	snprintf(path, sizeof(path), "%s/entries.jsonl", dir);
	write_file(path, "{\"event\":\"x\",\"seq\":0,\"time\":1}\n"
	                 "{\"event\":\"x\",\"seq\":1,\"time\":2}\n");
	CHECK(qsc_audit_verify_jsonl(v, path, &n) == 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(s.problems, 0);
	write_file(path, "{\"event\":\"x\",\"seq\":0,\"time\":1}\n{\"event\"");
	CHECK(qsc_audit_verify_jsonl(NULL, path, &n) == QS_ERR_INVALID);
	CHECK(strstr(qs_errdetail(), "line 2 does not end in a newline") != NULL);
	write_file(path, "{\"event\":\"x\",\"seq\":0,\"time\":1}\n\n");
	CHECK(qsc_audit_verify_jsonl(NULL, path, &n) == QS_ERR_INVALID);
	CHECK(strstr(qs_errdetail(), "line 2 is empty") != NULL);
	big = malloc(QS_MAX_AUDIT_ENTRY + 3);
	CHECK(big != NULL);
	if (big != NULL) {
		memset(big, 'a', QS_MAX_AUDIT_ENTRY + 1);
		big[QS_MAX_AUDIT_ENTRY + 1] = '\n';
		big[QS_MAX_AUDIT_ENTRY + 2] = '\0';
		write_file(path, big);
		CHECK(qsc_audit_verify_jsonl(NULL, path, &n) == QS_ERR_INVALID);
		CHECK(strstr(qs_errdetail(), "line 1 is too long") != NULL);
		free(big);
	}
	snprintf(path, sizeof(path), "%s/absent", dir);
	CHECK(qsc_audit_verify_jsonl(NULL, path, &n) == QS_ERR_IO);
	qsc_audit_verifier_free(v);
}

static long
max_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* 200,000 entries add no memory: the verifier keeps no entry. */
static void
test_bounded(void)
{
	struct seen s;
	qsc_audit_verifier *v = fresh(&s);
	char e[256];
	long before;

	for (int i = 0; i < 1000; i++) {
		snprintf(e, sizeof(e),
		         "{\"event\":\"signature\",\"principal\":\"ci\",\"seq\":%d,\"time\":%d}", i,
		         i);
		CHECK(add(v, e) == 0);
	}
	before = max_rss_kb();
	for (int i = 1000; i < 200000; i++) {
		snprintf(e, sizeof(e),
		         "{\"event\":\"signature\",\"principal\":\"ci\",\"seq\":%d,\"time\":%d}", i,
		         i);
		CHECK(add(v, e) == 0);
	}
#if defined(__SANITIZE_ADDRESS__)
	/* ASan keeps freed memory in quarantine: RSS says nothing here; the
	 * normal build checks it. */
	(void)before;
#else
	if (max_rss_kb() - before > 1024)
		fprintf(stderr, "RSS grew by %ld KB over 199,000 entries\n", max_rss_kb() - before);
	CHECK(max_rss_kb() - before <= 1024);
#endif
	CHECK_EQ(s.problems, 0);
	qsc_audit_verifier_free(v);
}

/* ------------------------------------------------------------ parallel approvals */

#define VOTE_REQUESTS 1500 /* two approvals each: 3,000 signatures to check */
#define VOTE_ENTRIES (1 + 4 * VOTE_REQUESTS)

/* Every problem, in the order reported. */
struct problems {
	char **msg;
	size_t n;
};

static void
collect_problem(void *arg, const char *msg)
{
	struct problems *p = arg;
	char **m = realloc(p->msg, (p->n + 1) * sizeof(*m));

	CHECK(m != NULL);
	if (m == NULL)
		return;
	p->msg = m;
	p->msg[p->n++] = strdup(msg);
}

static void
problems_free(struct problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->msg[i]);
	free(p->msg);
	memset(p, 0, sizeof(*p));
}

static char *
dump(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(o);
	CHECK(s != NULL);
	return s;
}

/*
 * A log as the daemon writes it: a policy of two principals, then per
 * request a request.submitted entry, an approval by each principal and a
 * signature entry. Entries bad_vote1 and bad_vote2 (approvals) get one hex
 * digit of their signature changed, and entry bad_vote1 + 2 (a signature
 * entry, after the second vote of that request) a time before its
 * predecessor's: a problem the reading thread finds while the first
 * tampered vote may still be in a checker's hands.
 */
static char **
vote_log(uint64_t bad_vote1, uint64_t bad_vote2)
{
	char **e = calloc(VOTE_ENTRIES, sizeof(*e));
	EVP_PKEY *keys[2] = {EVP_EC_gen("P-256"), EVP_EC_gen("P-256")};
	const char *names[2] = {"alice", "bob"};
	json_t *pr = json_object(), *pol;
	char *text;
	uint64_t i = 0;

	CHECK(e != NULL && keys[0] != NULL && keys[1] != NULL);
	for (int k = 0; k < 2; k++) {
		BIO *b = BIO_new(BIO_s_mem());
		char *pem = NULL;
		long n;
		CHECK(b != NULL && PEM_write_bio_PUBKEY(b, keys[k]) == 1);
		n = BIO_get_mem_data(b, &pem);
		json_object_set_new(pr, names[k],
		                    json_pack("{s:s%}", "public_key", pem, (size_t)n));
		BIO_free(b);
	}
	pol = json_pack("{s:I,s:o}", "version", (json_int_t)1, "principals", pr);
	text = dump(pol);
	e[i] = dump(json_pack("{s:s,s:I,s:s,s:I,s:I}", "event", "policy", "seq", (json_int_t)i,
	                      "text", text, "time", (json_int_t)1000, "version", (json_int_t)1));
	free(text);
	i++;
	for (int r = 0; r < VOTE_REQUESTS; r++) {
		char id[32], hx[65], sx[2 * QS_MAX_PRINCIPAL_SIG + 1];
		uint8_t dg[32], sig[QS_MAX_PRINCIPAL_SIG], *stmt = NULL;
		size_t stmt_len = 0, sig_len = 0;
		snprintf(id, sizeof(id), "req-%d", r);
		for (int k = 0; k < 32; k++) {
			dg[k] = (uint8_t)(r + k);
			snprintf(hx + 2 * k, 3, "%02x", dg[k]);
		}
		e[i] = dump(json_pack(
		        "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "event", "request.submitted", "id", id,
		        "role", "release", "kind", "digest", "payload_sha256", hx, "policy_version",
		        (json_int_t)1, "seq", (json_int_t)i, "time", (json_int_t)(1000 + i)));
		i++;
		for (int k = 0; k < 2; k++, i++) {
			CHECK(qs_stmt_approval("srv", id, "release", "digest", dg, 1, (int64_t)i,
			                       &stmt, &stmt_len) == 0);
			CHECK(qs_sig_sign(keys[k], stmt, stmt_len, sig, &sig_len) == 0);
			free(stmt);
			for (size_t b = 0; b < sig_len; b++)
				snprintf(sx + 2 * b, 3, "%02x", sig[b]);
			if (i == bad_vote1 || i == bad_vote2)
				sx[20] = sx[20] == '0' ? '1' : '0';
			e[i] = dump(json_pack(
			        "{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "event",
			        "request.vote", "id", id, "approver", names[k], "decision",
			        "approve", "vote_time", (json_int_t)i, "role", "release", "kind",
			        "digest", "payload_sha256", hx, "server", "srv", "signature", sx,
			        "seq", (json_int_t)i, "time", (json_int_t)(1000 + i)));
		}
		e[i] = dump(json_pack("{s:s,s:I,s:I}", "event", "signature", "seq", (json_int_t)i,
		                      "time", (json_int_t)(i == bad_vote1 + 2 ? 5 : 1000 + i)));
		i++;
	}
	CHECK_EQ(i, VOTE_ENTRIES);
	EVP_PKEY_free(keys[0]);
	EVP_PKEY_free(keys[1]);
	return e;
}

/* The problems of the log with threads (see qsc_audit_verifier_threads),
 * entry by entry or from a jsonl file (path != NULL). */
static void
verify_votes(char **e, int threads, const char *path, struct problems *p,
             struct qsc_audit_totals *t)
{
	struct qsc_audit_callbacks cb = {collect_problem, NULL, p};
	qsc_audit_verifier *v = NULL;

	memset(p, 0, sizeof(*p));
	CHECK(qsc_audit_verifier_new(&cb, &v) == 0);
	if (v == NULL)
		return;
	CHECK(qsc_audit_verifier_threads(v, threads) == 0);
	if (path != NULL) {
		CHECK(qsc_audit_verify_jsonl(v, path, NULL) == 0);
		/* Everything was reported before verify_jsonl returned. */
		CHECK_EQ(p->n, 3);
	} else {
		for (size_t i = 0; i < VOTE_ENTRIES; i++)
			CHECK(add(v, e[i]) == 0);
	}
	qsc_audit_verifier_totals(v, t);
	CHECK(qsc_audit_verifier_threads(v, 0) == QS_ERR_INVALID); /* too late */
	qsc_audit_verifier_free(v);
}

static void
test_parallel_votes(const char *dir)
{
	/* Deep in the log: the first of request 1200's votes, and the
	 * second of request 1210's. */
	const uint64_t bad1 = 1 + 4 * 1200 + 1, bad2 = 1 + 4 * 1210 + 2;
	char **e = vote_log(bad1, bad2), want[3][256], path[4096];
	const int modes[] = {0, 1, 4, -1};
	struct problems p;
	struct qsc_audit_totals t;
	FILE *f;

	snprintf(want[0], sizeof(want[0]),
	         "approval by alice on request req-1200 (entry %llu) does not verify with "
	         "alice's key in policy version 1",
	         (unsigned long long)bad1);
	snprintf(want[1], sizeof(want[1]), "entry %llu: time 5 is before the previous entry's %llu",
	         (unsigned long long)bad1 + 2, (unsigned long long)(1000 + bad1 + 1));
	snprintf(want[2], sizeof(want[2]),
	         "approval by bob on request req-1210 (entry %llu) does not verify with bob's "
	         "key in policy version 1",
	         (unsigned long long)bad2);
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		verify_votes(e, modes[m], NULL, &p, &t);
		if (p.n != 3)
			fprintf(stderr, "threads %d: %zu problems\n", modes[m], p.n);
		CHECK_EQ(p.n, 3);
		for (size_t k = 0; k < p.n && k < 3; k++) {
			if (strcmp(p.msg[k], want[k]) != 0)
				fprintf(stderr, "threads %d, problem %zu: \"%s\", want \"%s\"\n",
				        modes[m], k, p.msg[k], want[k]);
			CHECK(strcmp(p.msg[k], want[k]) == 0);
		}
		CHECK_EQ(t.entries, VOTE_ENTRIES);
		CHECK_EQ(t.problems, 3);
		CHECK_EQ(t.approvals, 2 * VOTE_REQUESTS - 2);
		problems_free(&p);
	}
	snprintf(path, sizeof(path), "%s/votes.jsonl", dir);
	CHECK((f = fopen(path, "w")) != NULL);
	for (size_t i = 0; f != NULL && i < VOTE_ENTRIES; i++)
		fprintf(f, "%s\n", e[i]);
	if (f != NULL)
		fclose(f);
	verify_votes(e, 4, path, &p, &t);
	for (size_t k = 0; k < p.n && k < 3; k++)
		CHECK(strcmp(p.msg[k], want[k]) == 0);
	CHECK_EQ(t.approvals, 2 * VOTE_REQUESTS - 2);
	problems_free(&p);
	for (size_t i = 0; i < VOTE_ENTRIES; i++)
		free(e[i]);
	free(e);
}

/* The problems collected, and the totals asked for from the problem
 * callback (as a caller showing progress might). */
struct reentrant {
	struct problems p;
	qsc_audit_verifier *v;
	uint64_t last_problems;
};

static void
reentrant_problem(void *arg, const char *msg)
{
	struct reentrant *re = arg;
	struct qsc_audit_totals t;

	collect_problem(&re->p, msg);
	qsc_audit_verifier_totals(re->v, &t);
	re->last_problems = t.problems;
}

/*
 * The pool's edges, with and without threads: a jsonl file whose last line
 * is cut short reports the problems of the entries before it before
 * verify_jsonl returns its error (the error's detail kept); a problem
 * callback that asks for the totals gets them, and the problems still come
 * once each, in order.
 */
static void
test_pool_edges(const char *dir)
{
	const uint64_t bad1 = 1 + 4 * 1200 + 1, bad2 = 1 + 4 * 1210 + 2;
	char **e = vote_log(bad1, bad2), path[4096];
	const int modes[] = {0, 4};
	FILE *f;

	snprintf(path, sizeof(path), "%s/cut.jsonl", dir);
	CHECK((f = fopen(path, "w")) != NULL);
	for (uint64_t i = 0; f != NULL && i <= bad1 + 1; i++)
		fprintf(f, "%s\n", e[i]);
	if (f != NULL) {
		fprintf(f, "{\"event\":\"signature\"");
		fclose(f);
	}
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		const char *order[3] = {"on request req-1200", "time 5 is before",
		                        "on request req-1210"};
		struct reentrant re = {0};
		struct qsc_audit_callbacks cb = {reentrant_problem, NULL, &re};
		struct qsc_audit_totals t;
		qsc_audit_verifier *v = NULL;

		CHECK(qsc_audit_verifier_new(&cb, &v) == 0);
		if (v == NULL)
			break;
		re.v = v;
		CHECK(qsc_audit_verifier_threads(v, modes[m]) == 0);
		CHECK(qsc_audit_verify_jsonl(v, path, NULL) == QS_ERR_INVALID);
		CHECK(strstr(qs_errdetail(), "does not end in a newline") != NULL);
		if (re.p.n != 1)
			fprintf(stderr,
			        "threads %d: %zu problems reported by a failed jsonl read\n",
			        modes[m], re.p.n);
		CHECK_EQ(re.p.n, 1);
		qsc_audit_verifier_free(v);
		problems_free(&re.p);

		CHECK(qsc_audit_verifier_new(&cb, &v) == 0);
		if (v == NULL)
			break;
		re.v = v;
		CHECK(qsc_audit_verifier_threads(v, modes[m]) == 0);
		for (size_t i = 0; i < VOTE_ENTRIES; i++)
			CHECK(add(v, e[i]) == 0);
		qsc_audit_verifier_totals(v, &t);
		CHECK_EQ(t.problems, 3);
		CHECK_EQ(re.p.n, 3);
		CHECK_EQ(re.last_problems, 3);
		for (size_t k = 0; k < re.p.n && k < 3; k++)
			CHECK(strstr(re.p.msg[k], order[k]) != NULL);
		qsc_audit_verifier_free(v);
		problems_free(&re.p);
	}
	for (size_t i = 0; i < VOTE_ENTRIES; i++)
		free(e[i]);
	free(e);
}

int
main(void)
{
	char dir[] = "/tmp/qsc_audit_test.XXXXXX";

	if (mkdtemp(dir) == NULL)
		return 1;
	test_roots();
	test_scan();
	test_order();
	test_jsonl(dir);
	test_bounded();
	test_parallel_votes(dir);
	test_pool_edges(dir);
	{
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			check_failures++;
	}
	if (check_failures == 0)
		printf("qsc_audit_test: ok\n");
	return check_failures == 0 ? 0 : 1;
}
