/*
 * merkle.h - RFC 6962 / RFC 9162 Merkle tree hashes and proofs.
 *
 * Shared by the daemon (which builds the audit log's tree and serves proofs)
 * and by auditors (who recompute roots and verify proofs without trusting
 * the daemon). Hashes are SHA-256:
 *
 *   leaf hash  = SHA-256(0x00 || entry bytes)
 *   node hash  = SHA-256(0x01 || left || right)
 *   empty tree = SHA-256("")
 *
 * Proof generation follows RFC 9162 2.1.3.1 (PATH) and 2.1.4.1 (PROOF /
 * SUBPROOF); verification follows 2.1.3.2 and 2.1.4.2 step by step.
 *
 * struct qs_merkle_tree keeps every complete, aligned subtree hash (the leaf
 * hashes, their parents, and so on up): about 2 x 32 bytes per leaf (64 MB at
 * one million leaves). Appending is O(1) amortised, and the root of the tree
 * at *any* size, every subtree hash a proof needs, and truncation back to an
 * earlier size are O(log n). A tree is not locked: one writer, or many
 * readers of a tree nobody writes, at a time.
 */
#ifndef QS_MERKLE_H
#define QS_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define QS_MERKLE_HASH_LEN 32

typedef uint8_t qs_hash[QS_MERKLE_HASH_LEN];

/* SHA-256(0x00 || data). Errors: QS_ERR_NOMEM, QS_ERR_CRYPTO (libcrypto). */
int qs_merkle_leaf_hash(const uint8_t *data, size_t len, qs_hash out);

/* SHA-256(0x01 || left || right). Errors: as qs_merkle_leaf_hash. */
int qs_merkle_node_hash(const qs_hash left, const qs_hash right, qs_hash out);

/*
 * MTH of n leaf hashes (RFC 9162 2.1.1) without building a tree: O(n) time,
 * O(log n) memory. n == 0 gives SHA-256(""). Errors: as qs_merkle_leaf_hash.
 */
int qs_merkle_root_of(const qs_hash *leaves, uint64_t n, qs_hash out);

/*
 * Verify an inclusion proof exactly as RFC 9162 2.1.3.2: leaf_hash is the
 * leaf hash (not the entry) at index in the tree of tree_size leaves whose
 * root is root. path has path_len hashes, deepest first.
 * Returns 0 if it verifies, QS_ERR_BADSIG if not (detail says why).
 */
int qs_merkle_inclusion_verify(uint64_t index, uint64_t tree_size, const qs_hash leaf_hash,
                               const qs_hash *path, size_t path_len, const qs_hash root);

/*
 * Verify a consistency proof exactly as RFC 9162 2.1.4.2 that the tree of
 * size1 leaves with root1 is a prefix of the tree of size2 leaves with root2.
 * Special cases the RFC leaves to the caller: size1 == size2 needs an empty
 * path and root1 == root2; size1 == 0 needs an empty path (every tree
 * extends the empty tree); size1 > size2 never verifies.
 * Returns 0 if it verifies, QS_ERR_BADSIG if not.
 */
int qs_merkle_consistency_verify(uint64_t size1, uint64_t size2, const qs_hash root1,
                                 const qs_hash root2, const qs_hash *path, size_t path_len);

/* The incremental tree; opaque. */
struct qs_merkle_tree;

/* A new empty tree in *out (free with qs_merkle_tree_free).
 * Errors: QS_ERR_NOMEM, QS_ERR_CRYPTO (SHA-256 unavailable). */
int qs_merkle_tree_new(struct qs_merkle_tree **out);

/* Free a tree; NULL is fine. */
void qs_merkle_tree_free(struct qs_merkle_tree *t);

/* Number of leaves. */
uint64_t qs_merkle_tree_size(const struct qs_merkle_tree *t);

/*
 * Append one leaf hash (already hashed with qs_merkle_leaf_hash). On failure
 * the tree is unchanged. Errors: QS_ERR_NOMEM, QS_ERR_EXHAUSTED (2^63 leaves).
 */
int qs_merkle_tree_append(struct qs_merkle_tree *t, const qs_hash leaf_hash);

/* Drop every leaf at index >= size (size <= current size), e.g. to undo a
 * batch that did not become durable. Errors: QS_ERR_INVALID. */
int qs_merkle_tree_truncate(struct qs_merkle_tree *t, uint64_t size);

/* The leaf hash at index. Errors: QS_ERR_INVALID (index out of range). */
int qs_merkle_tree_leaf(const struct qs_merkle_tree *t, uint64_t index, qs_hash out);

/* Root of the tree at size leaves (size <= current size; 0 = empty tree).
 * Errors: QS_ERR_INVALID, QS_ERR_CRYPTO. */
int qs_merkle_tree_root(const struct qs_merkle_tree *t, uint64_t size, qs_hash out);

/*
 * Inclusion proof (RFC 9162 2.1.3.1) for the leaf at index in the tree of
 * tree_size leaves (index < tree_size <= current size). Writes at most cap
 * hashes to path, deepest first, and their count to *path_len.
 * QS_MAX_MERKLE_PATH is always enough.
 * Errors: QS_ERR_INVALID (range), QS_ERR_EXHAUSTED (cap), QS_ERR_CRYPTO.
 */
int qs_merkle_tree_inclusion_proof(const struct qs_merkle_tree *t, uint64_t index,
                                   uint64_t tree_size, qs_hash *path, size_t cap, size_t *path_len);

/*
 * Consistency proof (RFC 9162 2.1.4.1) between the trees of size1 and size2
 * leaves (size1 <= size2 <= current size; empty if size1 is 0 or equal to
 * size2). Output as above. Errors: QS_ERR_INVALID, QS_ERR_EXHAUSTED,
 * QS_ERR_CRYPTO.
 */
int qs_merkle_tree_consistency_proof(const struct qs_merkle_tree *t, uint64_t size1, uint64_t size2,
                                     qs_hash *path, size_t cap, size_t *path_len);

#endif
