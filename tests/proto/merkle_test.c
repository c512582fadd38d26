/*
 * merkle_test.c - RFC 6962 / 9162 tree hashes and proofs: the published
 * vectors, then properties over random trees (every proof verifies, any
 * flipped bit in a proof, root or leaf makes it fail).
 *
 * usage: merkle_test VECTORS.json [--bench]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "check.h"
#include "merkle.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
	/* xorshift64*: reproducible across runs and platforms */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
hex32(const char *s, qs_hash out)
{
	size_t n = 0;
	return s != NULL && qs_unhex(s, out, QS_MERKLE_HASH_LEN, &n) == 0 && n == 32 ? 0 : -1;
}

static size_t
load_path(json_t *arr, qs_hash *path)
{
	size_t i;
	json_t *v;

	CHECK(json_array_size(arr) <= QS_MAX_MERKLE_PATH);
	json_array_foreach(arr, i, v)
	{
		if (i >= QS_MAX_MERKLE_PATH)
			break;
		CHECK_EQ(hex32(json_string_value(v), path[i]), 0);
	}
	return json_array_size(arr) <= QS_MAX_MERKLE_PATH ? json_array_size(arr) : 0;
}

static void
test_vectors(const char *file)
{
	json_error_t err;
	json_t *doc = json_load_file(file, 0, &err), *v;
	struct qs_merkle_tree *t = NULL;
	qs_hash leaves[8], roots[9], h, path[QS_MAX_MERKLE_PATH], want[QS_MAX_MERKLE_PATH];
	size_t i, n, wn;
	int r;

	if (doc == NULL) {
		fprintf(stderr, "%s: %s\n", file, err.text);
		check_failures++;
		return;
	}
	CHECK_EQ(json_array_size(json_object_get(doc, "leaves_hex")), 8);
	json_array_foreach(json_object_get(doc, "leaves_hex"), i, v)
	{
		uint8_t buf[64];
		CHECK_EQ(qs_unhex(json_string_value(v), buf, sizeof(buf), &n), 0);
		CHECK_EQ(qs_merkle_leaf_hash(buf, n, leaves[i]), 0);
	}
	CHECK_EQ(hex32(json_string_value(json_object_get(doc, "empty_root")), roots[0]), 0);
	for (int s = 1; s <= 8; s++) {
		char key[4];
		snprintf(key, sizeof(key), "%d", s);
		CHECK_EQ(hex32(json_string_value(
		                       json_object_get(json_object_get(doc, "roots"), key)),
		               roots[s]),
		         0);
	}

	CHECK_EQ(qs_merkle_tree_new(&t), 0);
	for (int s = 0; s <= 8; s++) {
		CHECK_EQ(qs_merkle_root_of(leaves, (uint64_t)s, h), 0);
		CHECK(memcmp(h, roots[s], 32) == 0);
		if (s > 0)
			CHECK_EQ(qs_merkle_tree_append(t, leaves[s - 1]), 0);
		CHECK_EQ(qs_merkle_tree_root(t, (uint64_t)s, h), 0);
		CHECK(memcmp(h, roots[s], 32) == 0);
	}
	/* every earlier root from the full tree, too */
	for (int s = 0; s <= 8; s++) {
		CHECK_EQ(qs_merkle_tree_root(t, (uint64_t)s, h), 0);
		CHECK(memcmp(h, roots[s], 32) == 0);
	}

	CHECK_EQ(json_array_size(json_object_get(doc, "inclusion")), 36);
	json_array_foreach(json_object_get(doc, "inclusion"), i, v)
	{
		uint64_t idx = json_integer_value(json_object_get(v, "index"));
		uint64_t size = json_integer_value(json_object_get(v, "size"));
		qs_hash lh;

		CHECK_EQ(hex32(json_string_value(json_object_get(v, "leaf_hash")), lh), 0);
		CHECK(memcmp(lh, leaves[idx], 32) == 0);
		wn = load_path(json_object_get(v, "path"), want);
		CHECK_EQ(qs_merkle_tree_inclusion_proof(t, idx, size, path, QS_MAX_MERKLE_PATH, &n),
		         0);
		CHECK_EQ(n, wn);
		CHECK(memcmp(path, want, wn * 32) == 0);
		r = qs_merkle_inclusion_verify(idx, size, lh, want, wn, roots[size]);
		if (r != 0)
			fprintf(stderr, "inclusion %llu/%llu: %s\n", (unsigned long long)idx,
			        (unsigned long long)size, qs_errdetail());
		CHECK_EQ(r, 0);
	}

	CHECK_EQ(json_array_size(json_object_get(doc, "consistency")), 36);
	json_array_foreach(json_object_get(doc, "consistency"), i, v)
	{
		uint64_t s1 = json_integer_value(json_object_get(v, "first"));
		uint64_t s2 = json_integer_value(json_object_get(v, "second"));

		wn = load_path(json_object_get(v, "path"), want);
		CHECK_EQ(qs_merkle_tree_consistency_proof(t, s1, s2, path, QS_MAX_MERKLE_PATH, &n),
		         0);
		CHECK_EQ(n, wn);
		CHECK(memcmp(path, want, wn * 32) == 0);
		r = qs_merkle_consistency_verify(s1, s2, roots[s1], roots[s2], want, wn);
		if (r != 0)
			fprintf(stderr, "consistency %llu->%llu: %s\n", (unsigned long long)s1,
			        (unsigned long long)s2, qs_errdetail());
		CHECK_EQ(r, 0);
		if (s1 < s2) /* swapped roots must not verify */
			CHECK(qs_merkle_consistency_verify(s1, s2, roots[s2], roots[s1], want,
			                                   wn) == QS_ERR_BADSIG);
	}
	qs_merkle_tree_free(t);
	json_decref(doc);
}

static void
flip(qs_hash h, size_t bit)
{
	h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
}

/* Every proof of the leaf at idx in a tree of size verifies, and breaks with
 * any single flipped bit, a wrong index or size, or a cut/extended path. */
static void
check_inclusion(struct qs_merkle_tree *t, uint64_t idx, uint64_t size, int flip_all)
{
	qs_hash path[QS_MAX_MERKLE_PATH], root, leaf;
	size_t n = 0;

	CHECK_EQ(qs_merkle_tree_inclusion_proof(t, idx, size, path, QS_MAX_MERKLE_PATH, &n), 0);
	CHECK_EQ(qs_merkle_tree_root(t, size, root), 0);
	CHECK_EQ(qs_merkle_tree_leaf(t, idx, leaf), 0);
	CHECK_EQ(qs_merkle_inclusion_verify(idx, size, leaf, path, n, root), 0);
	if (!flip_all)
		return;
	for (size_t b = 0; b < 256; b++) {
		flip(leaf, b);
		CHECK(qs_merkle_inclusion_verify(idx, size, leaf, path, n, root) == QS_ERR_BADSIG);
		flip(leaf, b);
		flip(root, b);
		CHECK(qs_merkle_inclusion_verify(idx, size, leaf, path, n, root) == QS_ERR_BADSIG);
		flip(root, b);
		for (size_t p = 0; p < n; p++) {
			flip(path[p], b);
			CHECK(qs_merkle_inclusion_verify(idx, size, leaf, path, n, root) ==
			      QS_ERR_BADSIG);
			flip(path[p], b);
		}
	}
	/* the proof is for this size: the next tree's root does not verify.
	 * (The size itself is bound only through the root: a proof for size
	 * 3 also walks to the size-3 root when told size 4.) */
	if (size < qs_merkle_tree_size(t)) {
		qs_hash next;
		CHECK_EQ(qs_merkle_tree_root(t, size + 1, next), 0);
		CHECK(qs_merkle_inclusion_verify(idx, size + 1, leaf, path, n, next) ==
		      QS_ERR_BADSIG);
	}
	if (size > 1)
		CHECK(qs_merkle_inclusion_verify(idx ^ 1, size, leaf, path, n, root) ==
		              QS_ERR_BADSIG ||
		      (idx ^ 1) >= size);
	if (n > 0)
		CHECK(qs_merkle_inclusion_verify(idx, size, leaf, path, n - 1, root) ==
		      QS_ERR_BADSIG);
	if (n < QS_MAX_MERKLE_PATH) {
		memcpy(path[n], root, 32);
		CHECK(qs_merkle_inclusion_verify(idx, size, leaf, path, n + 1, root) ==
		      QS_ERR_BADSIG);
	}
}

static void
check_consistency(struct qs_merkle_tree *t, uint64_t s1, uint64_t s2, int flip_all)
{
	qs_hash path[QS_MAX_MERKLE_PATH], r1, r2;
	size_t n = 0;

	CHECK_EQ(qs_merkle_tree_consistency_proof(t, s1, s2, path, QS_MAX_MERKLE_PATH, &n), 0);
	CHECK_EQ(qs_merkle_tree_root(t, s1, r1), 0);
	CHECK_EQ(qs_merkle_tree_root(t, s2, r2), 0);
	CHECK_EQ(qs_merkle_consistency_verify(s1, s2, r1, r2, path, n), 0);
	if (!flip_all || s1 == 0)
		return; /* the empty tree is a prefix of anything: nothing to break */
	for (size_t b = 0; b < 256; b++) {
		flip(r1, b);
		CHECK(qs_merkle_consistency_verify(s1, s2, r1, r2, path, n) == QS_ERR_BADSIG);
		flip(r1, b);
		flip(r2, b);
		CHECK(qs_merkle_consistency_verify(s1, s2, r1, r2, path, n) == QS_ERR_BADSIG);
		flip(r2, b);
		for (size_t p = 0; p < n; p++) {
			flip(path[p], b);
			CHECK(qs_merkle_consistency_verify(s1, s2, r1, r2, path, n) ==
			      QS_ERR_BADSIG);
			flip(path[p], b);
		}
	}
	if (s1 < s2) {
		if (s2 < qs_merkle_tree_size(t)) {
			qs_hash next;
			CHECK_EQ(qs_merkle_tree_root(t, s2 + 1, next), 0);
			CHECK(qs_merkle_consistency_verify(s1, s2 + 1, r1, next, path, n) ==
			      QS_ERR_BADSIG);
		}
		CHECK(qs_merkle_consistency_verify(s2, s1, r2, r1, path, n) == QS_ERR_BADSIG);
		if (n > 0)
			CHECK(qs_merkle_consistency_verify(s1, s2, r1, r2, path, n - 1) ==
			      QS_ERR_BADSIG);
	}
}

static void
test_properties(void)
{
	struct qs_merkle_tree *t = NULL;
	qs_hash *leaves = calloc(320, sizeof(qs_hash)), h1, h2, path[4];
	size_t n;

	if (leaves == NULL)
		abort();
	CHECK_EQ(qs_merkle_tree_new(&t), 0);
	for (int i = 0; i < 320; i++) {
		uint64_t x = rnd();
		CHECK_EQ(qs_merkle_leaf_hash((const uint8_t *)&x, sizeof(x), leaves[i]), 0);
		CHECK_EQ(qs_merkle_tree_append(t, leaves[i]), 0);
	}
	/* the stored tree agrees with the stack computation at every size */
	for (uint64_t s = 0; s <= 320; s++) {
		CHECK_EQ(qs_merkle_root_of(leaves, s, h1), 0);
		CHECK_EQ(qs_merkle_tree_root(t, s, h2), 0);
		CHECK(memcmp(h1, h2, 32) == 0);
	}
	/* exhaustive for every size up to 64: all indices, all pairs */
	for (uint64_t s = 1; s <= 64; s++) {
		for (uint64_t i = 0; i < s; i++)
			check_inclusion(t, i, s, s <= 17);
		for (uint64_t s1 = 0; s1 <= s; s1++)
			check_consistency(t, s1, s, s <= 17);
	}
	/* random sizes up to 300: every index and a spread of first sizes,
	 * bit flips on a random sample */
	for (int round = 0; round < 12; round++) {
		uint64_t s = 65 + rnd() % 236;
		for (uint64_t i = 0; i < s; i++)
			check_inclusion(t, i, s, rnd() % 16 == 0);
		for (int j = 0; j < 40; j++)
			check_consistency(t, rnd() % (s + 1), s, j < 4);
	}

	/* bad arguments are refused, not computed */
	CHECK_EQ(qs_merkle_tree_inclusion_proof(t, 5, 5, path, 4, &n), QS_ERR_INVALID);
	CHECK_EQ(qs_merkle_tree_inclusion_proof(t, 0, 321, path, 4, &n), QS_ERR_INVALID);
	CHECK_EQ(qs_merkle_tree_inclusion_proof(t, 0, 320, path, 4, &n), QS_ERR_EXHAUSTED);
	CHECK_EQ(qs_merkle_tree_consistency_proof(t, 7, 6, path, 4, &n), QS_ERR_INVALID);
	CHECK_EQ(qs_merkle_tree_root(t, 321, h1), QS_ERR_INVALID);
	CHECK_EQ(qs_merkle_inclusion_verify(3, 3, h1, path, 0, h1), QS_ERR_BADSIG);
	CHECK_EQ(qs_merkle_consistency_verify(3, 5, h1, h2, path, 0), QS_ERR_BADSIG);

	/* truncation undoes appends exactly; appending after it rebuilds */
	CHECK_EQ(qs_merkle_tree_truncate(t, 100), 0);
	CHECK_EQ(qs_merkle_tree_size(t), 100);
	CHECK_EQ(qs_merkle_tree_truncate(t, 101), QS_ERR_INVALID);
	for (int i = 100; i < 200; i++) {
		uint64_t x = rnd();
		CHECK_EQ(qs_merkle_leaf_hash((const uint8_t *)&x, sizeof(x), leaves[i]), 0);
		CHECK_EQ(qs_merkle_tree_append(t, leaves[i]), 0);
	}
	for (uint64_t s = 90; s <= 200; s++) {
		CHECK_EQ(qs_merkle_root_of(leaves, s, h1), 0);
		CHECK_EQ(qs_merkle_tree_root(t, s, h2), 0);
		CHECK(memcmp(h1, h2, 32) == 0);
	}
	qs_merkle_tree_free(t);
	free(leaves);
}

static void
bench(void)
{
	const uint64_t n = 1000000;
	struct qs_merkle_tree *t = NULL;
	qs_hash *leaves = malloc(n * sizeof(qs_hash)), root, root2, path[QS_MAX_MERKLE_PATH];
	uint8_t entry[300];
	size_t plen = 0;
	double t0, t1, t2, t3;

	if (leaves == NULL)
		abort();
	memset(entry, 'x', sizeof(entry));
	t0 = now();
	for (uint64_t i = 0; i < n; i++) {
		memcpy(entry, &i, sizeof(i));
		CHECK_EQ(qs_merkle_leaf_hash(entry, sizeof(entry), leaves[i]), 0);
	}
	t1 = now();
	CHECK_EQ(qs_merkle_tree_new(&t), 0);
	for (uint64_t i = 0; i < n; i++)
		CHECK_EQ(qs_merkle_tree_append(t, leaves[i]), 0);
	CHECK_EQ(qs_merkle_tree_root(t, n, root), 0);
	t2 = now();
	CHECK_EQ(qs_merkle_root_of(leaves, n, root2), 0);
	t3 = now();
	CHECK(memcmp(root, root2, 32) == 0);
	printf("bench: 1M leaf hashes of 300 B: %.3f s; tree build + root: %.3f s; "
	       "stack root: %.3f s\n",
	       t1 - t0, t2 - t1, t3 - t2);
	t0 = now();
	for (int i = 0; i < 10000; i++)
		CHECK_EQ(qs_merkle_tree_inclusion_proof(t, rnd() % n, n, path, QS_MAX_MERKLE_PATH,
		                                        &plen),
		         0);
	t1 = now();
	printf("bench: inclusion proof at 1M: %zu hashes (%zu bytes), %.2f us to build\n", plen,
	       plen * 32, (t1 - t0) / 10000 * 1e6);
	t0 = now();
	for (int i = 0; i < 10000; i++)
		CHECK_EQ(qs_merkle_tree_consistency_proof(t, 1 + rnd() % (n - 1), n, path,
		                                          QS_MAX_MERKLE_PATH, &plen),
		         0);
	t1 = now();
	printf("bench: consistency proof at 1M: ~%zu hashes, %.2f us to build\n", plen,
	       (t1 - t0) / 10000 * 1e6);
	qs_merkle_tree_free(t);
	free(leaves);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s VECTORS.json [--bench]\n", argv[0]);
		return 2;
	}
	test_vectors(argv[1]);
	test_properties();
	if (argc > 2 && strcmp(argv[2], "--bench") == 0)
		bench();
	CHECK_DONE();
}
