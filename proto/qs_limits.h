/*
 * qs_limits.h - every size and count limit of quorum-signer, with its reason.
 */
#ifndef QS_LIMITS_H
#define QS_LIMITS_H

/* Largest frame the daemon accepts (nng recv max): a batch of MAX_BATCH
 * 32-byte digests is ~40 KiB; blobs up to MAX_BLOB plus framing fit. */
#define QS_MAX_FRAME (4u * 1024 * 1024)
/* Largest blob payload for one Sign: TUF metadata and CSRs are far smaller;
 * anything bigger should be hashed by the caller and sent as a digest. */
#define QS_MAX_BLOB (1u * 1024 * 1024)
/* Payloads in one SignBatch: bounds the time one call holds a worker
 * (~0.1 s of SoftHSM ECDSA at 10k/s). */
#define QS_MAX_BATCH 1024
/* Method name length ("qsign.v1.Signer/SignBatch" is 25). */
#define QS_MAX_METHOD 64
/* Principal, role and key names: short identifiers, printable ASCII. */
#define QS_MAX_NAME 64
/* Server identity string in statements. */
#define QS_MAX_IDENTITY 128
/* Auth challenge size (bytes of randomness). */
#define QS_CHALLENGE_LEN 32
/* A challenge older than this is refused (seconds). */
#define QS_MAX_CHALLENGE_AGE_S 60
/* Outstanding challenges per connection: enough for retries, not a DoS. */
#define QS_MAX_CHALLENGES_PER_PIPE 4
/* Principal signature size (ECDSA P-256 DER ≤ 72, Ed25519 64). */
#define QS_MAX_PRINCIPAL_SIG 128
/* Policy / config JSON file size: hand-written by humans. */
#define QS_MAX_POLICY_BYTES (1u * 1024 * 1024)
/* Principals, keys and roles in one policy. */
#define QS_MAX_POLICY_ENTRIES 1024
/* Worker threads (each holds a token session). */
#define QS_MAX_WORKERS 64
/* Listen URLs in a config. */
#define QS_MAX_LISTEN 8
/* Connected, authenticated pipes tracked at once. */
#define QS_MAX_PIPES 4096

#endif
