/*
 * audit_bench - the auditor's side at scale: writes an audit export of N
 * signature entries (entries.jsonl, a checkpoint signed with an in-memory
 * ECDSA P-256 log key, log-key.pem, origin) for `qsign audit verify
 * --offline`, and measures inclusion proof size and time at N.
 *
 * usage: audit_bench N DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "merkle.h"
#include "note.h"
#include "qs_limits.h"

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
	unsigned long long n;
	struct qs_merkle_tree *t = NULL;
	struct qs_note_signer signer;
	qs_hash root, leaf, path[QS_MAX_MERKLE_PATH];
	EVP_PKEY *key = NULL;
	char file[4096], line[512], *text = NULL, *note = NULL;
	size_t tl = 0, nl = 0, plen = 0;
	FILE *f;
	double t0, t1;
	int iters = 10000;

	if (argc != 3 || (n = strtoull(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: audit_bench N DIR\n");
		return 2;
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
	for (unsigned long long i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line),
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
	return 0;
}
