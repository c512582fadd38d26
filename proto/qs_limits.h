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
/* Connected pipes tracked at once (also capped below the fd limit, see
 * QS_FD_RESERVE). */
#define QS_MAX_PIPES 4096
/* File descriptors kept free for the state store, the audit log and token
 * modules: connections are refused before they could take these. */
#define QS_FD_RESERVE 128
/* A connection must authenticate within this time (seconds), or it is
 * closed: idle and slow-loris connections cannot pin fds and buffers. */
#define QS_AUTH_TIMEOUT_S 10
/* An authenticated connection without a complete call for this long is
 * closed (clients reconnect transparently). */
#define QS_IDLE_TIMEOUT_S 600

/* Hashes in one Merkle proof: a tree of up to 2^64 leaves needs at most 64
 * for inclusion and 65 for consistency (RFC 9162 2.1.3, 2.1.4). */
#define QS_MAX_MERKLE_PATH 66
/* Size of one signed note (checkpoint): three short lines plus signature
 * lines; signed-note asks verifiers to cap it and accept >= 16 signatures. */
#define QS_MAX_NOTE (16u * 1024)
/* Signature lines in one note: the spec's minimum of 16, doubled. */
#define QS_MAX_NOTE_SIGS 32
/* Raw signature bytes in a note line (ECDSA P-256 DER <= 72, Ed25519 64). */
#define QS_MAX_NOTE_SIG 256
/* Checkpoint origin / note key name: a schema-less URL by convention. */
#define QS_MAX_ORIGIN 256
/* One audit log entry (canonical JSON): a policy change carries a whole
 * policy document (QS_MAX_POLICY_BYTES) plus its framing. */
#define QS_MAX_AUDIT_ENTRY (2u * 1024 * 1024)
/* Entries in one tlog_append call: a SignBatch logs one entry per payload. */
#define QS_MAX_AUDIT_APPEND (4 * QS_MAX_BATCH)
/* Record bytes written in one group commit: bounds the writer's buffer; a
 * bigger backlog simply goes into the next batch. */
#define QS_MAX_AUDIT_BATCH_BYTES (16u * 1024 * 1024)
/* Rows (principal, event, method, status) in one "audit.summary" entry:
 * the summary of over-rate logins and refusals must be bounded itself;
 * rows beyond this are added up in its "other" count. */
#define QS_MAX_AUDIT_SUMMARY_ROWS 64
/* Approved requests kept in memory for a retry after a passing failure (a
 * full disk): each needed a quorum, so far more than will ever wait; the
 * rest are resumed by a restart. */
#define QS_MAX_STUCK_REQUESTS 256
/* Seconds between retries of such requests. */
#define QS_REQUEST_RETRY_S 5
/* Replicas: how often each looks for APPROVED requests that nobody
 * executes (their replica died mid-execution) -- signer/quorum/requests.c. */
#define QS_REQUEST_SWEEP_S 10

/* Audit entries per Entries call: bounds one reply (entries are small;
 * 1000 x a few hundred bytes stays far below QS_MAX_FRAME). */
#define QS_MAX_AUDIT_FETCH 1000
/* Request payloads (quorum): the largest of a blob and a policy document. */
#define QS_MAX_REQUEST_PAYLOAD QS_MAX_BLOB
/* Request message / vote reason text. */
#define QS_MAX_REQUEST_TEXT 1024

/* Signer helper processes (privilege separation): more than one per core
 * only adds context switches; 64 matches QS_MAX_WORKERS. */
#define QS_MAX_SIGNERS 64
/* One message between qsignd and a signer helper: the largest is a TUF
 * document (TUF_MAX_METADATA, 1 MiB) signed on the evidence of a quorum
 * request: the document, the request's payload (QS_MAX_REQUEST_PAYLOAD),
 * its approval statements' fields and QS_MAX_PRIVSEP_VOTES votes. */
#define QS_MAX_PRIVSEP_MSG (2u * QS_MAX_BLOB + 64u * 1024)
/* Votes handed to a signer helper with one request: a quorum's approvals
 * and rejections; far above any threshold an administrator can gather. */
#define QS_MAX_PRIVSEP_VOTES 64
/* One vote's signature (store_vote.sig: Ed25519 or DER ECDSA P-256). */
#define QS_MAX_PRIVSEP_VOTE_SIG 128
/* Key handles one helper hands out: every policy key, the audit key and the
 * TUF/PKI keys, each found once per URI; bounds the helper's table. */
#define QS_MAX_HELPER_KEYS 4096
/* URI, label or error text in a helper message. */
#define QS_MAX_PRIVSEP_STR 1024
/* Tokens a signer helper may report: far above any configuration; bounds
 * the front's table of token labels. */
#define QS_MAX_PRIVSEP_TOKENS 4096
/* One input of a PS_SIGN_MANY call: a digest (SHA-512's is the longest). */
#define QS_MAX_PRIVSEP_DIGEST 64
/* A key's certificate in the policy (PEM): a code-signing certificate is
 * 1-3 KiB; the policy itself is capped at QS_MAX_POLICY_BYTES. */
#define QS_MAX_CERT_PEM 16384
/* A signer helper that does not answer within this many seconds is killed
 * and replaced (a hung token must not hold a worker forever); generous
 * because RSA key generation in a TPM takes seconds. */
#define QS_PRIVSEP_REPLY_TIMEOUT_S 120
/* Connections one qsignd keeps to PostgreSQL for its workers (plus one for
 * signature records): transactions are short, and every replica's count
 * adds up against the server's max_connections. */
#define QS_PG_CONNS 4

#endif
