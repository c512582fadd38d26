/*
 * audit_bench - the auditor's side at scale: writes an audit export of N
 * signature entries (entries.jsonl, a checkpoint signed with an in-memory
 * ECDSA P-256 log key, log-key.pem, origin) for `qsign audit verify
 * --offline`, and measures inclusion proof size and time at N.
 *
 * With VOTES > 0, entry 0 is a policy of four principals (ECDSA P-256 keys
 * made here) and VOTES approvals spread evenly over the log: requests of two
 * approvals each (request.submitted, then two request.vote entries whose
 * signatures the verifier must check), the other entries signatures as
 * above. That is the log whose approvals the verifier checks in parallel.
 *
 * usage: audit_bench N DIR [VOTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "merkle.h"
#include "note.h"
#include "qs_limits.h"
#include "statement.h"

#define PRINCIPALS 4
#define BENCH_TIME 1795000000000ull

static const char *const names[PRINCIPALS] = {"alice", "bob", "carol", "dave"};

/* Append one entry (canonical form, as the daemon writes it) to f and the tree. */
static int
put_entry(FILE *f, struct qs_merkle_tree *t, json_t *o)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	qs_hash leaf;
	int r = -1;

	json_decref(o);
	if (line != NULL && qs_merkle_leaf_hash((const uint8_t *)line, strlen(line), leaf) == 0 &&
	    qs_merkle_tree_append(t, leaf) == 0 && fprintf(f, "%s\n", line) > 0)
		r = 0;
	free(line);
	return r;
}

/* Entry 0: a policy naming the principals' public keys. */
static int
put_policy(FILE *f, struct qs_merkle_tree *t, EVP_PKEY **keys)
{
	json_t *pr = json_object(), *pol;
	char *text;
	int r;

	for (int i = 0; i < PRINCIPALS; i++) {
		BIO *b = BIO_new(BIO_s_mem());
		char *pem = NULL;
		long n;
		if (b == NULL || PEM_write_bio_PUBKEY(b, keys[i]) != 1 ||
		    (n = BIO_get_mem_data(b, &pem)) <= 0) {
			BIO_free(b);
			return -1;
		}
		json_object_set_new(pr, names[i],
		                    json_pack("{s:s%,s:[s]}", "public_key", pem, (size_t)n, "roles",
		                              "approver"));
		BIO_free(b);
	}
	pol = json_pack("{s:I,s:o}", "version", (json_int_t)1, "principals", pr);
	text = json_dumps(pol, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(pol);
	if (text == NULL)
		return -1;
	r = put_entry(f, t,
	              json_pack("{s:s,s:I,s:s,s:I,s:I}", "event", "policy", "seq", (json_int_t)0,
	                        "text", text, "time", (json_int_t)BENCH_TIME, "version",
	                        (json_int_t)1));
	free(text);
	return r;
}

/* A request at seq *i and two approvals of it by principals a and a+1. */
static int
put_request(FILE *f, struct qs_merkle_tree *t, EVP_PKEY **keys, unsigned long long *i)
{
	char id[32], hx[65];
	uint8_t dg[32];
	int a = (int)(*i % PRINCIPALS);

	snprintf(id, sizeof(id), "req-%llu", *i);
	for (int k = 0; k < 32; k++)
		dg[k] = (uint8_t)(*i >> (k % 8) ^ (unsigned)k);
	for (int k = 0; k < 32; k++)
		snprintf(hx + 2 * k, 3, "%02x", dg[k]);
	if (put_entry(f, t,
	              json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:I,s:I}", "event",
	                        "request.submitted", "id", id, "role", "release", "kind", "digest",
	                        "payload_sha256", hx, "policy_version", (json_int_t)1, "seq",
	                        (json_int_t)*i, "submitter", "ci", "size", (json_int_t)32, "time",
	                        (json_int_t)(BENCH_TIME + *i))) != 0)
		return -1;
	(*i)++;
	for (int v = 0; v < 2; v++, (*i)++) {
		int who = (a + v) % PRINCIPALS;
		uint8_t *stmt = NULL, sig[QS_MAX_PRINCIPAL_SIG];
		size_t stmt_len = 0, sig_len = 0;
		char sx[2 * QS_MAX_PRINCIPAL_SIG + 1];
		json_int_t vt = (json_int_t)(BENCH_TIME / 1000 + *i);
		if (qs_stmt_approval("bench", id, "release", "digest", dg, 1, vt, &stmt,
		                     &stmt_len) != 0 ||
		    qs_sig_sign(keys[who], stmt, stmt_len, sig, &sig_len) != 0) {
			free(stmt);
			return -1;
		}
		free(stmt);
		for (size_t k = 0; k < sig_len; k++)
			snprintf(sx + 2 * k, 3, "%02x", sig[k]);
		if (put_entry(f, t,
		              json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I}",
		                        "event", "request.vote", "id", id, "approver", names[who],
		                        "decision", "approve", "vote_time", vt, "role", "release",
		                        "kind", "digest", "payload_sha256", hx, "server", "bench",
		                        "signature", sx, "seq", (json_int_t)*i, "time",
		                        (json_int_t)(BENCH_TIME + *i))) != 0)
			return -1;
	}
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	const char *origin = "bench.example/audit";
	unsigned long long n, votes = 0, gap = 0;
	EVP_PKEY *keys[PRINCIPALS] = {NULL};
	struct qs_merkle_tree *t = NULL;
	struct qs_note_signer signer;
	qs_hash root, leaf, path[QS_MAX_MERKLE_PATH];
	EVP_PKEY *key = NULL;
	char file[4096], line[512], *text = NULL, *note = NULL;
	size_t tl = 0, nl = 0, plen = 0;
	FILE *f;
	double t0, t1;
	int iters = 10000;

	if (argc < 3 || argc > 4 || (n = strtoull(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: audit_bench N DIR [VOTES]\n");
		return 2;
	}
	if (argc == 4 && (votes = strtoull(argv[3], NULL, 10)) > 0) {
		/* Requests of two votes (3 entries) every `gap` entries after the policy. */
		if (votes % 2 != 0 || (gap = (n - 1) / (votes / 2)) < 3) {
			fprintf(stderr, "VOTES must be even and at most 2 * (N - 1) / 3\n");
			return 2;
		}
		for (int i = 0; i < PRINCIPALS; i++)
			if ((keys[i] = EVP_EC_gen("P-256")) == NULL)
				return 1;
	}
	mkdir(argv[2], 0700);
	key = EVP_EC_gen("P-256");
	if (key == NULL || qs_merkle_tree_new(&t) != 0 ||
	    qs_note_signer_init(&signer, origin, key, qs_note_sign_evp, key) != 0)
		return 1;
	snprintf(file, sizeof(file), "%s/entries.jsonl", argv[2]);
	if ((f = fopen(file, "w")) == NULL)
		return 1;
	t0 = now_s();
	if (votes > 0 && put_policy(f, t, keys) != 0)
		return 1;
	for (unsigned long long i = votes > 0 ? 1 : 0; i < n; i++) {
		int len;
		if (votes > 0 && (i - 1) % gap == 0 && i + 3 <= n) {
			if (put_request(f, t, keys, &i) != 0)
				return 1;
			votes -= 2;
			i--;
			continue;
		}
		len = snprintf(line, sizeof(line),
		               "{\"digest\":\"%064llx\",\"event\":\"signature\",\"key\":\"ci-key\","
		               "\"key_id\":\"%064x\",\"kind\":\"digest\",\"policy_version\":1,"
		               "\"principal\":\"ci\",\"role\":\"ci-sign\",\"seq\":%llu,"
		               "\"time\":%llu}",
		               i * 2654435761ull, 7, i, 1795000000000ull + i);
		qs_merkle_leaf_hash((const uint8_t *)line, (size_t)len, leaf);
		if (qs_merkle_tree_append(t, leaf) != 0)
			return 1;
		fwrite(line, 1, (size_t)len, f);
		fputc('\n', f);
	}
	fclose(f);
	qs_merkle_tree_root(t, n, root);
	if (qs_checkpoint_text(origin, n, root, &text, &tl) != 0 ||
	    qs_note_sign(&signer, text, tl, &note, &nl) != 0)
		return 1;
	snprintf(file, sizeof(file), "%s/checkpoint", argv[2]);
	f = fopen(file, "w");
	fwrite(note, 1, nl, f);
	fclose(f);
	snprintf(file, sizeof(file), "%s/log-key.pem", argv[2]);
	f = fopen(file, "w");
	PEM_write_PUBKEY(f, key);
	fclose(f);
	snprintf(file, sizeof(file), "%s/origin", argv[2]);
	f = fopen(file, "w");
	fprintf(f, "%s\n", origin);
	fclose(f);
	t1 = now_s();
	printf("generated %llu entries in %.2f s\n", n, t1 - t0);

	t0 = now_s();
	for (int i = 0; i < iters; i++) {
		uint64_t idx = ((uint64_t)i * 7919u) % n;
		qs_merkle_tree_inclusion_proof(t, idx, n, path, QS_MAX_MERKLE_PATH, &plen);
	}
	t1 = now_s();
	printf("inclusion proof at %llu: %zu hashes = %zu bytes, %.2f us to make\n", n, plen,
	       plen * sizeof(qs_hash), (t1 - t0) * 1e6 / iters);
	qs_merkle_tree_leaf(t, 0, leaf);
	t0 = now_s();
	for (int i = 0; i < iters; i++)
		qs_merkle_inclusion_verify(0, n, leaf, path, plen, root);
	t1 = now_s();
	qs_merkle_tree_inclusion_proof(t, 0, n, path, QS_MAX_MERKLE_PATH, &plen);
	printf("inclusion proof verify: %s, %.2f us\n",
	       qs_merkle_inclusion_verify(0, n, leaf, path, plen, root) == 0 ? "ok" : "FAILED",
	       (t1 - t0) * 1e6 / iters);
	qs_merkle_tree_free(t);
	free(text);
	free(note);
	EVP_PKEY_free(key);
	for (int i = 0; i < PRINCIPALS; i++)
		EVP_PKEY_free(keys[i]);
	return 0;
}
