/*
 * statement.h - the byte strings principals sign, and how their signatures
 * are made and checked. Both sides (qsignd and every client) must produce
 * exactly these bytes, so they live here and nowhere else.
 *
 * Every statement starts with a distinct context line, so a signature made
 * for one purpose can never be replayed as another (domain separation).
 *
 * Principal keys are Ed25519 (pure EdDSA over the statement bytes) or ECDSA
 * P-256 (ECDSA over SHA-256 of the statement bytes, DER-encoded signature).
 */
#ifndef QS_STATEMENT_H
#define QS_STATEMENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define QS_STMT_AUTH_CONTEXT "quorum-signer/v1 auth"

/*
 * Build the authentication statement:
 *   "quorum-signer/v1 auth\n"
 *   "server " <server identity> "\n"
 *   "principal " <principal> "\n"
 *   "challenge " <lower-case hex of challenge> "\n"
 * Names must be 1..QS_MAX_NAME / QS_MAX_IDENTITY printable ASCII without
 * spaces; the challenge QS_CHALLENGE_LEN bytes. *out is malloc'd.
 * Errors: QS_ERR_INVALID, QS_ERR_NOMEM.
 */
int qs_stmt_auth(const char *server_identity, const char *principal, const uint8_t *challenge,
                 size_t challenge_len, uint8_t **out, size_t *out_len);

#define QS_STMT_SERVER_CONTEXT "quorum-signer/v1 server"

/*
 * Build the statement qsignd signs with its identity key (a key in its
 * token) when it answers a Challenge that carries a client nonce, proving
 * that it holds the key clients pinned for its address:
 *   "quorum-signer/v1 server\n"
 *   "server " <server identity> "\n"
 *   "challenge " <lower-case hex of the challenge> "\n"
 *   "client-nonce " <lower-case hex of the client's nonce> "\n"
 * Challenge and nonce are QS_CHALLENGE_LEN bytes. Signatures as for
 * principals (ECDSA P-256 DER over SHA-256, or Ed25519). *out malloc'd.
 */
int qs_stmt_server(const char *server_identity, const uint8_t *challenge, size_t challenge_len,
                   const uint8_t *client_nonce, size_t nonce_len, uint8_t **out, size_t *out_len);

/* "SHA256:" + unpadded base64 of SHA-256(DER SubjectPublicKeyInfo): how a
 * server key is shown and pinned. out holds QS_FINGERPRINT_MAX bytes. */
#define QS_FINGERPRINT_MAX 56
int qs_key_fingerprint(const uint8_t *spki_der, size_t len, char *out, size_t cap);

#define QS_STMT_APPROVAL_CONTEXT "quorum-signer/v1 approval"

/*
 * Build the approval statement an approver signs:
 *   "quorum-signer/v1 approval\n"
 *   "server " <server identity> "\n"
 *   "request " <request id> "\n"
 *   "role " <role> "\n"
 *   "kind " <kind> "\n"
 *   "payload-sha256 " <lower-case hex> "\n"
 *   ["signature-hash " ("sha384" | "sha512") "\n"]
 *   "decision " ("approve" | "reject") "\n"
 *   "time " <unix seconds, decimal> "\n"
 * The payload is always named by its SHA-256 (approvers approve the exact
 * bytes); the signature-hash line names the hash the role key signs with
 * when it is not SHA-256 (SubmitRequest.hash), so an approval of a SHA-256
 * signature is never one of a SHA-384 signature of the same payload. A
 * SHA-256 request's statement has no such line: the bytes every earlier
 * vote signed. Everything an auditor needs to re-verify the vote is in the
 * audit log.
 */
int qs_stmt_approval_hash(const char *server_identity, const char *request_id, const char *role,
                          const char *kind, const uint8_t digest[32], const char *sig_hash,
                          int approve, int64_t time, uint8_t **out, size_t *out_len);
/* The same for a SHA-256 signature (sig_hash NULL). */
int qs_stmt_approval(const char *server_identity, const char *request_id, const char *role,
                     const char *kind, const uint8_t digest[32], int approve, int64_t time,
                     uint8_t **out, size_t *out_len);

/* 1 if s is a valid name: 1..max bytes of [A-Za-z0-9._@:+-]. */
int qs_name_valid(const char *s, size_t max);

/* Parse a PEM SubjectPublicKeyInfo that must be Ed25519 or EC P-256.
 * Errors: QS_ERR_INVALID (not PEM / other algorithm / other curve). */
int qs_pubkey_from_pem(const char *pem, size_t len, EVP_PKEY **out);

/* "ed25519" or "ecdsa-p256" for a key accepted above, else NULL. */
const char *qs_pubkey_alg(EVP_PKEY *pk);

/* Verify a principal signature over msg. 0 if valid, QS_ERR_BADSIG if not. */
int qs_sig_verify(EVP_PKEY *pk, const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len);

/* Sign msg with a private principal key held in memory (PEM file keys).
 * sig must hold QS_MAX_PRINCIPAL_SIG bytes. */
int qs_sig_sign(EVP_PKEY *priv, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len);

/* Verify a signature made by a *role key* as qsignd returns it, over the
 * SHA-256 payload digest (ECDSA DER; RSA-PSS, or PKCS#1 v1.5 when rsa_pkcs1
 * says the key's algorithm is one of the rsa*-pkcs1 ones) or the blob
 * (Ed25519). Used by tests, clients and auditors. */
int qs_rolesig_verify(EVP_PKEY *pk, int rsa_pkcs1, const uint8_t *digest32, const uint8_t *blob,
                      size_t blob_len, const uint8_t *sig, size_t sig_len);
/* The same over a digest of hash (qs_hash_lookup's names) of digest_len
 * bytes: a quorum request's signature (SubmitRequest.hash). */
int qs_rolesig_verify_hash(EVP_PKEY *pk, int rsa_pkcs1, const char *hash, const uint8_t *digest,
                           size_t digest_len, const uint8_t *blob, size_t blob_len,
                           const uint8_t *sig, size_t sig_len);

/* Lower-case hex of buf into a malloc'd string. NULL on allocation failure. */
char *qs_hex(const uint8_t *buf, size_t len);
/* Lower-case hex of buf into out, which holds 2 * len + 1 bytes (NUL-terminated). */
void qs_hex_into(const uint8_t *buf, size_t len, char *out);
/* Strict hex decode of the whole NUL-terminated string: even length,
 * [0-9a-fA-F] only, at most cap bytes out. QS_ERR_INVALID otherwise. */
int qs_unhex(const char *s, uint8_t *out, size_t cap, size_t *out_len);

/* SHA-256 (OpenSSL one-shot). */
void qs_sha256(const uint8_t *in, size_t len, uint8_t out[32]);

/* Largest digest a Sign carries (SHA-512). */
#define QS_DIGEST_MAX 64

/* The hashes a Sign may name (qsign.proto SignRequest.hash): "sha256" (also
 * NULL or ""), "sha384", "sha512". Returns the canonical name and sets
 * *len to its digest length and *md to OpenSSL's EVP_MD (either may be
 * NULL); NULL for any other name. */
const char *qs_hash_lookup(const char *name, size_t *len, const EVP_MD **md);

/* A set of those hashes (a role's "hashes"): one bit each. */
#define QS_HASH_SHA256 0x1u
#define QS_HASH_SHA384 0x2u
#define QS_HASH_SHA512 0x4u
#define QS_HASHES_ALL 0x7u
/* The bit of the hash qs_hash_lookup knows by name (NULL and "" are
 * sha256), 0 for any other name. */
unsigned qs_hash_bit(const char *name);
/* The hash whose digests are len bytes (32, 48, 64), NULL otherwise. */
const char *qs_hash_of_len(size_t len);
/* The names of the hashes in set, in the order above: at most cap into
 * names (static strings); returns how many. */
size_t qs_hash_names(unsigned set, const char **names, size_t cap);
/* The same names as one string, "sha256, sha384" (truncated to cap). */
void qs_hash_list(unsigned set, char *buf, size_t cap);
/* The digest a role key signs for a quorum request with signature hash
 * `hash` (qs_hash_lookup's names): a "digest" payload (digest != 0) is it
 * and must be that hash's length; a blob is hashed. dg holds
 * QS_DIGEST_MAX. Errors: QS_ERR_INVALID (unknown hash, wrong length),
 * QS_ERR_CRYPTO. */
int qs_request_digest(const char *hash, int digest, const uint8_t *payload, size_t len, uint8_t *dg,
                      size_t *dg_len);

#endif
