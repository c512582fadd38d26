#include "merkle.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "qs_err.h"
#include "qs_limits.h"

/* Levels of stored subtree hashes: level k holds the hashes of the aligned
 * perfect subtrees of 2^k leaves, so 64 levels cover any uint64_t size. */
#define LEVELS 64
/* First allocation of level 0; the others start at half their parent's. */
#define INITIAL_CAP 1024

struct qs_merkle_tree {
	qs_hash *lvl[LEVELS];
	uint64_t cap[LEVELS];
	uint64_t size;
	EVP_MD_CTX *ctx; /* for appends; readers bring their own (they may be concurrent) */
};

/*
 * One fetched SHA-256 for the process: EVP_Digest* with an implicitly
 * fetched EVP_sha256() costs a provider lookup per hash, which doubles the
 * time to rebuild a large tree.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static EVP_MD_CTX *
hasher_new(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	if (sha256_md == NULL)
		return NULL;
	return EVP_MD_CTX_new();
}

/* out = SHA-256(prefix || a || b) */
static int
hash3(EVP_MD_CTX *c, uint8_t prefix, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
      qs_hash out)
{
	unsigned int n = 0;

	if (EVP_DigestInit_ex2(c, sha256_md, NULL) != 1 || EVP_DigestUpdate(c, &prefix, 1) != 1 ||
	    EVP_DigestUpdate(c, a, alen) != 1 || (blen > 0 && EVP_DigestUpdate(c, b, blen) != 1) ||
	    EVP_DigestFinal_ex(c, out, &n) != 1 || n != QS_MERKLE_HASH_LEN) {
		ERR_clear_error();
		return qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
	}
	return 0;
}

static int
node(EVP_MD_CTX *c, const qs_hash l, const qs_hash r, qs_hash out)
{
	return hash3(c, 0x01, l, QS_MERKLE_HASH_LEN, r, QS_MERKLE_HASH_LEN, out);
}

int
qs_merkle_leaf_hash(const uint8_t *data, size_t len, qs_hash out)
{
	EVP_MD_CTX *c;
	int r;

	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	r = hash3(c, 0x00, data, len, NULL, 0, out);
	EVP_MD_CTX_free(c);
	return r;
}

int
qs_merkle_node_hash(const qs_hash left, const qs_hash right, qs_hash out)
{
	EVP_MD_CTX *c;
	int r;

	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	r = node(c, left, right, out);
	EVP_MD_CTX_free(c);
	return r;
}

static int
empty_root(EVP_MD_CTX *c, qs_hash out)
{
	unsigned int n = 0;

	if (EVP_DigestInit_ex2(c, sha256_md, NULL) != 1 || EVP_DigestFinal_ex(c, out, &n) != 1) {
		ERR_clear_error();
		return qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
	}
	return 0;
}

/* Largest power of two strictly below n (n >= 2): RFC 9162's k. */
static uint64_t
split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static int
is_pow2(uint64_t n)
{
	return n != 0 && (n & (n - 1)) == 0;
}

int
qs_merkle_root_of(const qs_hash *leaves, uint64_t n, qs_hash out)
{
	/* The right edge of the tree built so far: stack[i] is a perfect
	 * subtree, bigger ones below smaller ones (a compact range). */
	qs_hash stack[LEVELS + 1];
	EVP_MD_CTX *c;
	size_t sp = 0;
	int r;

	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	if (n == 0) {
		r = empty_root(c, out);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		memcpy(stack[sp++], leaves[i], QS_MERKLE_HASH_LEN);
		for (uint64_t j = i + 1; (j & 1) == 0; j >>= 1) {
			if ((r = node(c, stack[sp - 2], stack[sp - 1], stack[sp - 2])) != 0)
				goto out;
			sp--;
		}
	}
	/* Fold the right edge: RFC 6962 pairs the smallest trailing subtrees
	 * first, which is exactly right-to-left over the stack. */
	while (sp > 1) {
		if ((r = node(c, stack[sp - 2], stack[sp - 1], stack[sp - 2])) != 0)
			goto out;
		sp--;
	}
	memcpy(out, stack[0], QS_MERKLE_HASH_LEN);
	r = 0;
out:
	EVP_MD_CTX_free(c);
	return r;
}

int
qs_merkle_inclusion_verify(uint64_t index, uint64_t tree_size, const qs_hash leaf_hash,
                           const qs_hash *path, size_t path_len, const qs_hash root)
{
	EVP_MD_CTX *c = NULL;
	qs_hash h;
	uint64_t fn, sn;
	int r;

	/* 2.1.3.2 step 1 */
	if (index >= tree_size)
		return qs_fail(QS_ERR_BADSIG, "inclusion: index %llu not below tree size %llu",
		               (unsigned long long)index, (unsigned long long)tree_size);
	if (path_len > QS_MAX_MERKLE_PATH)
		return qs_fail(QS_ERR_BADSIG, "inclusion: proof too long");
	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	/* steps 2, 3 */
	fn = index;
	sn = tree_size - 1;
	memcpy(h, leaf_hash, QS_MERKLE_HASH_LEN);
	/* step 4 */
	for (size_t i = 0; i < path_len; i++) {
		if (sn == 0) {
			r = qs_fail(QS_ERR_BADSIG, "inclusion: proof too long for the tree");
			goto out;
		}
		if ((fn & 1) || fn == sn) {
			if ((r = node(c, path[i], h, h)) != 0)
				goto out;
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if ((r = node(c, h, path[i], h)) != 0)
				goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	/* step 5 */
	if (sn != 0) {
		r = qs_fail(QS_ERR_BADSIG, "inclusion: proof too short for the tree");
		goto out;
	}
	if (CRYPTO_memcmp(h, root, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_BADSIG, "inclusion: root mismatch");
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(c);
	return r;
}

int
qs_merkle_consistency_verify(uint64_t size1, uint64_t size2, const qs_hash root1,
                             const qs_hash root2, const qs_hash *path, size_t path_len)
{
	EVP_MD_CTX *c = NULL;
	qs_hash fr, sr;
	uint64_t fn, sn;
	size_t i = 0;
	int r;

	if (size1 > size2)
		return qs_fail(QS_ERR_BADSIG, "consistency: first size above second");
	if (size1 == size2) {
		if (path_len != 0)
			return qs_fail(QS_ERR_BADSIG,
			               "consistency: equal sizes need an empty proof");
		if (CRYPTO_memcmp(root1, root2, QS_MERKLE_HASH_LEN) != 0)
			return qs_fail(QS_ERR_BADSIG, "consistency: equal sizes, different roots");
		return 0;
	}
	if (size1 == 0) {
		if (path_len != 0)
			return qs_fail(QS_ERR_BADSIG,
			               "consistency: empty tree needs an empty proof");
		return 0;
	}
	/* 2.1.4.2 step 1 */
	if (path_len == 0)
		return qs_fail(QS_ERR_BADSIG, "consistency: empty proof");
	if (path_len > QS_MAX_MERKLE_PATH)
		return qs_fail(QS_ERR_BADSIG, "consistency: proof too long");
	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	/* step 2: a power-of-two first tree is itself a node of the second, so
	 * its root is (virtually) prepended to the path */
	/* steps 3, 4 */
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	/* step 5 */
	if (is_pow2(size1)) {
		memcpy(fr, root1, QS_MERKLE_HASH_LEN);
	} else {
		memcpy(fr, path[0], QS_MERKLE_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, QS_MERKLE_HASH_LEN);
	/* step 6 */
	for (; i < path_len; i++) {
		if (sn == 0) {
			r = qs_fail(QS_ERR_BADSIG, "consistency: proof too long for the trees");
			goto out;
		}
		if ((fn & 1) || fn == sn) {
			if ((r = node(c, path[i], fr, fr)) != 0 ||
			    (r = node(c, path[i], sr, sr)) != 0)
				goto out;
			if (!(fn & 1)) {
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
			}
		} else {
			if ((r = node(c, sr, path[i], sr)) != 0)
				goto out;
		}
		fn >>= 1;
		sn >>= 1;
	}
	/* step 7 */
	if (sn != 0) {
		r = qs_fail(QS_ERR_BADSIG, "consistency: proof too short for the trees");
		goto out;
	}
	if (CRYPTO_memcmp(fr, root1, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_BADSIG, "consistency: first root mismatch");
		goto out;
	}
	if (CRYPTO_memcmp(sr, root2, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_BADSIG, "consistency: second root mismatch");
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(c);
	return r;
}

int
qs_merkle_tree_new(struct qs_merkle_tree **out)
{
	struct qs_merkle_tree *t;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((t->ctx = hasher_new()) == NULL) {
		free(t);
		return qs_fail(QS_ERR_CRYPTO, "SHA-256 unavailable");
	}
	*out = t;
	return 0;
}

void
qs_merkle_tree_free(struct qs_merkle_tree *t)
{
	if (t == NULL)
		return;
	for (int k = 0; k < LEVELS; k++)
		free(t->lvl[k]);
	EVP_MD_CTX_free(t->ctx);
	free(t);
}

uint64_t
qs_merkle_tree_size(const struct qs_merkle_tree *t)
{
	return t->size;
}

/* Make room for `want` hashes at level k. */
static int
reserve(struct qs_merkle_tree *t, int k, uint64_t want)
{
	uint64_t ncap;
	qs_hash *p;

	if (want <= t->cap[k])
		return 0;
	ncap = t->cap[k] ? t->cap[k] * 2 : (uint64_t)INITIAL_CAP >> (k < 10 ? k : 10);
	if (ncap < want)
		ncap = want;
	if (ncap > SIZE_MAX / QS_MERKLE_HASH_LEN)
		return qs_fail(QS_ERR_NOMEM, "Merkle tree too large");
	if ((p = realloc(t->lvl[k], (size_t)ncap * QS_MERKLE_HASH_LEN)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory (Merkle level %d)", k);
	t->lvl[k] = p;
	t->cap[k] = ncap;
	return 0;
}

int
qs_merkle_tree_append(struct qs_merkle_tree *t, const qs_hash leaf_hash)
{
	uint64_t n = t->size + 1;
	int k, r;

	if (n > ((uint64_t)1 << 63))
		return qs_fail(QS_ERR_EXHAUSTED, "Merkle tree full");
	/* Reserve every level this leaf completes before touching any, so a
	 * failure leaves the tree as it was. */
	for (k = 0; k < LEVELS && (n & (((uint64_t)1 << k) - 1)) == 0; k++)
		if ((r = reserve(t, k, n >> k)) != 0)
			return r;
	memcpy(t->lvl[0][n - 1], leaf_hash, QS_MERKLE_HASH_LEN);
	for (k = 1; k < LEVELS && (n & (((uint64_t)1 << k) - 1)) == 0; k++) {
		uint64_t i = (n >> k) - 1;
		if ((r = node(t->ctx, t->lvl[k - 1][2 * i], t->lvl[k - 1][2 * i + 1],
		              t->lvl[k][i])) != 0)
			return r;
	}
	t->size = n;
	return 0;
}

int
qs_merkle_tree_truncate(struct qs_merkle_tree *t, uint64_t size)
{
	if (size > t->size)
		return qs_fail(QS_ERR_INVALID, "truncate: %llu above tree size %llu",
		               (unsigned long long)size, (unsigned long long)t->size);
	/* Level k only ever holds size >> k hashes, so nothing else to undo. */
	t->size = size;
	return 0;
}

int
qs_merkle_tree_leaf(const struct qs_merkle_tree *t, uint64_t index, qs_hash out)
{
	if (index >= t->size)
		return qs_fail(QS_ERR_INVALID, "leaf %llu out of range", (unsigned long long)index);
	memcpy(out, t->lvl[0][index], QS_MERKLE_HASH_LEN);
	return 0;
}

/*
 * MTH(D[a:b]) for a range RFC 9162's recursion produces: a is a multiple of
 * the largest power of two <= b - a, so the left part of every split is a
 * stored perfect subtree and only the right edge is hashed: O(log n).
 */
static int
subtree(const struct qs_merkle_tree *t, EVP_MD_CTX *c, uint64_t a, uint64_t b, qs_hash out)
{
	uint64_t n = b - a, k;
	qs_hash right;
	int r;

	if (a >= b || b > t->size)
		return qs_fail(QS_ERR_INTERNAL, "subtree [%llu, %llu) of %llu",
		               (unsigned long long)a, (unsigned long long)b,
		               (unsigned long long)t->size);
	if (is_pow2(n)) {
		int lg = __builtin_ctzll(n);
		if (a & (n - 1))
			return qs_fail(QS_ERR_INTERNAL, "unaligned subtree");
		memcpy(out, t->lvl[lg][a >> lg], QS_MERKLE_HASH_LEN);
		return 0;
	}
	k = split_point(n);
	if ((r = subtree(t, c, a + k, b, right)) != 0)
		return r;
	if ((r = subtree(t, c, a, a + k, out)) != 0)
		return r;
	return node(c, out, right, out);
}

int
qs_merkle_tree_root(const struct qs_merkle_tree *t, uint64_t size, qs_hash out)
{
	EVP_MD_CTX *c;
	int r;

	if (size > t->size)
		return qs_fail(QS_ERR_INVALID, "root: size %llu above tree size %llu",
		               (unsigned long long)size, (unsigned long long)t->size);
	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	r = size == 0 ? empty_root(c, out) : subtree(t, c, 0, size, out);
	EVP_MD_CTX_free(c);
	return r;
}

int
qs_merkle_tree_inclusion_proof(const struct qs_merkle_tree *t, uint64_t index, uint64_t tree_size,
                               qs_hash *path, size_t cap, size_t *path_len)
{
	EVP_MD_CTX *c = NULL;
	uint64_t a = 0, b = tree_size;
	size_t n = 0;
	int r;

	*path_len = 0;
	if (tree_size > t->size || index >= tree_size)
		return qs_fail(QS_ERR_INVALID, "inclusion proof: index %llu, size %llu, tree %llu",
		               (unsigned long long)index, (unsigned long long)tree_size,
		               (unsigned long long)t->size);
	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	/* PATH(m, D[a:b]) top-down; the RFC lists the siblings bottom-up. */
	while (b - a > 1) {
		uint64_t k = split_point(b - a);
		if (n == cap) {
			r = qs_fail(QS_ERR_EXHAUSTED, "inclusion proof longer than %zu", cap);
			goto out;
		}
		if (index < a + k) {
			r = subtree(t, c, a + k, b, path[n]);
			b = a + k;
		} else {
			r = subtree(t, c, a, a + k, path[n]);
			a = a + k;
		}
		if (r != 0)
			goto out;
		n++;
	}
	for (size_t i = 0; i < n / 2; i++) {
		qs_hash tmp;
		memcpy(tmp, path[i], QS_MERKLE_HASH_LEN);
		memcpy(path[i], path[n - 1 - i], QS_MERKLE_HASH_LEN);
		memcpy(path[n - 1 - i], tmp, QS_MERKLE_HASH_LEN);
	}
	*path_len = n;
	r = 0;
out:
	EVP_MD_CTX_free(c);
	return r;
}

/* SUBPROOF(m, D[a:b], whole) of RFC 9162 2.1.4.1, appending to path. */
static int
subproof(const struct qs_merkle_tree *t, EVP_MD_CTX *c, uint64_t m, uint64_t a, uint64_t b,
         int whole, qs_hash *path, size_t cap, size_t *n)
{
	uint64_t k;
	int r;

	if (m == b - a) {
		if (whole)
			return 0;
		if (*n == cap)
			return qs_fail(QS_ERR_EXHAUSTED, "consistency proof longer than %zu", cap);
		return subtree(t, c, a, b, path[(*n)++]);
	}
	k = split_point(b - a);
	if (m <= k) {
		if ((r = subproof(t, c, m, a, a + k, whole, path, cap, n)) != 0)
			return r;
		if (*n == cap)
			return qs_fail(QS_ERR_EXHAUSTED, "consistency proof longer than %zu", cap);
		return subtree(t, c, a + k, b, path[(*n)++]);
	}
	if ((r = subproof(t, c, m - k, a + k, b, 0, path, cap, n)) != 0)
		return r;
	if (*n == cap)
		return qs_fail(QS_ERR_EXHAUSTED, "consistency proof longer than %zu", cap);
	return subtree(t, c, a, a + k, path[(*n)++]);
}

int
qs_merkle_tree_consistency_proof(const struct qs_merkle_tree *t, uint64_t size1, uint64_t size2,
                                 qs_hash *path, size_t cap, size_t *path_len)
{
	EVP_MD_CTX *c = NULL;
	size_t n = 0;
	int r;

	*path_len = 0;
	if (size1 > size2 || size2 > t->size)
		return qs_fail(QS_ERR_INVALID, "consistency proof: sizes %llu, %llu, tree %llu",
		               (unsigned long long)size1, (unsigned long long)size2,
		               (unsigned long long)t->size);
	if (size1 == 0 || size1 == size2)
		return 0;
	if ((c = hasher_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "SHA-256 context");
	if ((r = subproof(t, c, size1, 0, size2, 1, path, cap, &n)) != 0)
		goto out;
	*path_len = n;
	r = 0;
out:
	EVP_MD_CTX_free(c);
	return r;
}
