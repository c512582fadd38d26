/*
 * qsclient.h - the quorum-signer client library: the whole public API.
 *
 * A qsc_client is one nng req0 socket dialled to qsignd, authenticated as
 * one principal. Calls are synchronous: each sends one Call frame and waits
 * for its Reply (qsign.proto). Authentication is per connection; when nng
 * re-dials underneath and the daemon answers UNAUTHENTICATED, the library
 * authenticates again and retries that call once. A call whose connection
 * drops while it is outstanding is never re-sent (the daemon may have
 * executed it): it fails with QS_ERR_UNAVAILABLE.
 *
 * Thread model: a qsc_client is used by one thread at a time (like a
 * database connection); open one per thread for parallel work.
 *
 * Errors: every function that can fail returns 0 or a negative QS_ERR_*
 * code (qs_err.h) and leaves a detail in qs_errdetail():
 *   - the daemon refused the call: qs_status_err() of its status, and
 *     qsc_last_status()/qsc_last_message() tell the wire status and text;
 *   - transport failures (cannot connect, connection lost):
 *     QS_ERR_UNAVAILABLE, or QS_ERR_TIMEOUT when no reply came in time;
 *     the nng_strerror() text is in the detail and qsc_last_status() is -1;
 *   - a malformed reply: QS_ERR_INVALID.
 *
 * Response messages are protobuf-c messages owned by the caller; free them
 * with qsc_free().
 */
#ifndef QSCLIENT_H
#define QSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "qs_err.h"
#include "qs_limits.h"
#include "qsign.pb-c.h"
#include "pki.pb-c.h"
#include "tuf.pb-c.h"
#include "wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qsc_client qsc_client;

/* Default per-call timeout. */
#define QSC_DEFAULT_TIMEOUT_MS 30000
/* Server URLs one client may list (replicas). */
#define QSC_MAX_SERVERS 8
/* Default PKCS#11 module for pkcs11: identities. */
#define QSC_DEFAULT_PKCS11_MODULE "/usr/lib/softhsm/libsofthsm2.so"

struct qsc_options {
	/* ipc:///path, tls+tcp://host:port or tcp://127.0.0.1:port. Required.
	 * Replicas: several URLs separated by commas (up to QSC_MAX_SERVERS).
	 * The client uses one at a time, starting with the first, and moves
	 * to the next when its server cannot be reached (nothing sent) or
	 * goes away during a call: a call that changes nothing is then
	 * repeated there; any other call fails (it may have been executed)
	 * and the next call goes to the next server. All the servers must
	 * prove the same server key (replicas share their identity). */
	const char *url;
	/* Principal name as in the policy. NULL: do not authenticate (only
	 * useful to probe a daemon; every Signer call will be refused). */
	const char *principal;
	/* The principal's private key: a PEM file (PKCS#8 or traditional,
	 * Ed25519 or ECDSA P-256, mode 0600 or stricter) or a pkcs11: URI.
	 * Required with principal. */
	const char *identity;
	/* File holding the passphrase of an encrypted PEM identity (first
	 * line). NULL: an encrypted key is refused unless stdin is a terminal,
	 * then the passphrase is prompted for. */
	const char *identity_pass_file;
	/* pkcs11: identities. Module: the URI's module-path if present, else
	 * this, else QSC_DEFAULT_PKCS11_MODULE. PIN: the URI's pin-source if
	 * present, else this ("file:/path" or "env:NAME"), else no login. */
	const char *pkcs11_module;
	const char *pin_source;
	/* Mutual TLS for tls+tcp:// (all three required there): PEM client
	 * certificate, its private key, and the CA bundle that signed the
	 * server certificate. tls_server_name defaults to the URL's host. */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
	const char *tls_server_name;
	/* Per-call timeout in ms; <= 0 means QSC_DEFAULT_TIMEOUT_MS. Also the
	 * deadline sent to the daemon. */
	int timeout_ms;
	/*
	 * Server pinning. Before it authenticates, the client has the daemon
	 * prove possession of its identity key (a key in its token: Challenge
	 * with a client nonce, qs_stmt_server) and checks that key:
	 *  - server_key set ("SHA256:<base64>" fingerprint, as `qsign info`
	 *    prints it, or a PEM public key file): it must be that key;
	 *    known_servers is neither read nor written;
	 *  - else against known_servers, a file of "URL SHA256:<base64>
	 *    IDENTITY" lines (NULL: $XDG_CONFIG_HOME/qsign/known_servers, or
	 *    ~/.config/qsign/known_servers; "" = no file, the key is only held
	 *    for this client's lifetime). A URL listed with another key is
	 *    refused (QS_ERR_BADSIG, nothing sent but the Challenge). A URL
	 *    not listed is handled by trust_new: QSC_TRUST_NEW_ACCEPT (0, the
	 *    default: trust on first use, the line is appended),
	 *    QSC_TRUST_NEW_ASK (confirm_new decides: 1 = accept and append),
	 *    QSC_TRUST_NEW_REFUSE.
	 * Once a client has authenticated, re-authentication (after a
	 * re-dial) must meet the same key.
	 */
	const char *server_key;
	const char *known_servers;
	int trust_new;
	int (*confirm_new)(void *arg, const char *url, const char *server_identity,
	                   const char *fingerprint);
	void *confirm_arg;
};

#define QSC_TRUST_NEW_ACCEPT 0
#define QSC_TRUST_NEW_ASK 1
#define QSC_TRUST_NEW_REFUSE 2

/*
 * Create a client without touching the network: check the options, load
 * the identity (when o->principal is set) and set up the nng socket and
 * dialer (with mutual TLS for tls+tcp://). The options are copied. On
 * success *out owns the client; release it with qsc_close(). Connect with
 * qsc_connect().
 * Errors: QS_ERR_INVALID (bad URL or options, TLS files missing for
 * tls+tcp://, identity of another algorithm, identity file accessible by
 * group/other: detail says "chmod 600 FILE"; server_key neither a
 * fingerprint nor a readable public key), QS_ERR_IO (unreadable file),
 * QS_ERR_PIN / QS_ERR_PKCS11 / QS_ERR_NOT_FOUND (pkcs11: identity),
 * QS_ERR_NOMEM.
 */
int qsc_new(const struct qsc_options *o, qsc_client **out);

/*
 * Dial (synchronously, so that "nobody listens" is reported now) and, when
 * the client has a principal, authenticate (Challenge + Authenticate).
 * nng re-dials by itself afterwards. Calling it again once connected is a
 * no-op. On failure c stays valid: qsc_last_status() tells whether the
 * daemon answered.
 * Errors: QS_ERR_UNAVAILABLE (cannot connect, TLS handshake failed),
 * QS_ERR_TIMEOUT, the daemon's refusal of Authenticate (typically
 * QS_ERR_UNAUTH), QS_ERR_INVALID (malformed challenge), identity signing
 * errors (QS_ERR_CRYPTO, QS_ERR_PKCS11), QS_ERR_BADSIG (the server did not
 * prove the key pinned for it: see qsc_options.server_key; the detail says
 * what to check), QS_ERR_IO (known_servers unreadable or not writable).
 */
int qsc_connect(qsc_client *c);

/* qsc_new() + qsc_connect() in one; on failure nothing is left to free.
 * Errors: those of both. */
int qsc_open(const struct qsc_options *o, qsc_client **out);

/* Close the socket, free the identity (private key material is wiped) and
 * the client. NULL is a no-op. */
void qsc_close(qsc_client *c);

/*
 * Generic call: serialize req (NULL = empty body), call `method` (QS_M_*),
 * and on status OK unpack the reply body as resp_desc into *resp (caller
 * frees with qsc_free(); with resp_desc NULL the body is ignored and
 * *resp may be NULL). Re-authenticates once on UNAUTHENTICATED.
 * status/message (optional) receive the wire status and a copy of the
 * server's message (caller free()s; NULL when none); status is -1 when no
 * reply was received. Errors: as in the file comment.
 */
int qsc_call(qsc_client *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int *status,
             char **message);

/* Wire status of the last reply on c (QS_STATUS_*), -1 if the last call
 * got no reply (transport error) or no call was made yet. */
int qsc_last_status(const qsc_client *c);

/* Server message of the last reply ("" if none). Control characters are
 * replaced by '?' and the text is capped at 1024 bytes, so it is safe to
 * print. Valid until the next call on c. */
const char *qsc_last_message(const qsc_client *c);

/* The URL c dialled, the principal it authenticated as (NULL if none), the
 * server identity learned at authentication (NULL before), and the
 * principal's roles from AuthenticateResponse (*n entries; valid until the
 * next authentication). Pointers owned by c. */
const char *qsc_url(const qsc_client *c);
const char *qsc_principal(const qsc_client *c);
const char *qsc_server_identity(const qsc_client *c);
const char *const *qsc_principal_roles(const qsc_client *c, size_t *n);

/* The server key c verified at authentication ("SHA256:<base64>"; NULL
 * before), how it was trusted, and the known_servers file used (NULL when
 * none). Owned by c. */
#define QSC_SERVER_KEY_CONFIGURED 1 /* equal to options.server_key */
#define QSC_SERVER_KEY_KNOWN 2      /* listed for this URL in known_servers */
#define QSC_SERVER_KEY_NEW 3        /* first use: just appended to known_servers */
#define QSC_SERVER_KEY_UNSAVED 4    /* no known_servers file: held in memory only */
const char *qsc_server_key(const qsc_client *c, int *how, const char **known_servers);

/* Free a response message returned by this library. NULL is a no-op. */
void qsc_free(void *msg);

/* Signer/Metrics (admins, auditors): Prometheus text and readiness.
 * *out freed with qsc_free(). */
int qsc_metrics(qsc_client *c, Qsign__V1__MetricsResponse **out);

/* Signer/Info. *out: Qsign__V1__InfoResponse, freed with qsc_free(). */
int qsc_info(qsc_client *c, Qsign__V1__InfoResponse **out);

/* Signer/ListKeys. *out freed with qsc_free(). */
int qsc_list_keys(qsc_client *c, Qsign__V1__ListKeysResponse **out);

/*
 * Signer/Sign: one signature by `role` (key: one of the role's keys, NULL =
 * its first) over payload. kind DIGEST: payload is a 32-byte SHA-256 digest;
 * kind BLOB: payload is at most QS_MAX_BLOB bytes. The reply is checked:
 * digest 32 bytes, signature 1..512 bytes. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad arguments, malformed reply), the daemon's
 * refusal, transport errors.
 */
int qsc_sign(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
             const uint8_t *payload, size_t len, Qsign__V1__SignResponse **out);
/* qsc_sign with the signature's hash (qsign.proto SignRequest.hash):
 * "sha256" (also NULL), "sha384", "sha512". A DIGEST payload is a digest of
 * that length; the reply's digest and hash must be of that hash. ECDSA and
 * RSA keys only for sha384/sha512 (the daemon refuses Ed25519). */
int qsc_sign_hash(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
                  const char *hash, const uint8_t *payload, size_t len,
                  Qsign__V1__SignResponse **out);

/*
 * Signer/SignBatch: n (1..QS_MAX_BATCH) payloads of one kind in one call.
 * The reply must hold exactly n results, in order; each carries its own
 * status (QS_STATUS_OK with signature and digest, or a refusal with a
 * message). A refusal of the whole batch is returned as an error. Callers
 * with more than QS_MAX_BATCH items (or a frame beyond QS_MAX_FRAME) split
 * them into several calls. *out freed with qsc_free().
 */
int qsc_sign_batch(qsc_client *c, const char *role, const char *key, Qsign__V1__PayloadKind kind,
                   const ProtobufCBinaryData *payloads, size_t n,
                   Qsign__V1__SignBatchResponse **out);
/* qsc_sign_batch with the hash of every payload, as qsc_sign_hash: DIGEST
 * payloads are digests of that length; each result's digest and the reply's
 * hash must be of that hash. */
int qsc_sign_batch_hash(qsc_client *c, const char *role, const char *key,
                        Qsign__V1__PayloadKind kind, const char *hash,
                        const ProtobufCBinaryData *payloads, size_t n,
                        Qsign__V1__SignBatchResponse **out);

/* ------------------------------------------------------------ Requests
 *
 * Quorum-gated signing (qsign.proto, service Requests). Every RequestView
 * these functions hand back has been checked: id, role, kind, submitter and
 * every approver are valid names, payload_sha256 is 32 bytes, state is a
 * known RequestState, counts are within QS_MAX_POLICY_ENTRIES, vote
 * signatures within QS_MAX_PRINCIPAL_SIG and, when the payload is present,
 * its length is payload_size. Text fields (message, state_message, reasons)
 * are NOT filtered: escape control characters before printing them.
 * A reply that fails a check is QS_ERR_INVALID.
 */

/* Longest message / reason the library sends (bytes). */
#define QSC_MAX_REQUEST_TEXT QS_MAX_REQUEST_TEXT

/*
 * Requests/Submit: ask for a quorum signature by `role` (a quorum role, or
 * "policy" for a policy change) over payload, of payload kind `kind`
 * ("digest", "blob", "policy": see proto/payload.h). The payload is
 * validated with its kind's validate() before anything is sent. message
 * (NULL = none) tells approvers why; client_token (NULL = none; a name of
 * 1..QS_MAX_NAME characters) makes a retry return the request the first
 * attempt created instead of a second one. The reply must echo role, kind
 * and the SHA-256 of the payload sent. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad names, unknown kind, payload refused by its
 * kind, control characters or more than QSC_MAX_REQUEST_TEXT bytes in
 * message, malformed or mismatching reply), the daemon's refusal,
 * transport errors.
 */
int qsc_request_submit(qsc_client *c, const char *role, const char *kind, const uint8_t *payload,
                       size_t len, const char *message, const char *client_token,
                       Qsign__V1__RequestView **out);
/* The same with the hash the signature uses (SubmitRequest.hash: "sha256",
 * NULL or "" for it, "sha384", "sha512"); a "digest" payload is then one of
 * that hash's digests. The reply must echo it. */
int qsc_request_submit_hash(qsc_client *c, const char *role, const char *kind, const char *hash,
                            const uint8_t *payload, size_t len, const char *message,
                            const char *client_token, Qsign__V1__RequestView **out);

/*
 * Requests/List: requests visible to the caller, newest first as the daemon
 * orders them. state QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED = any;
 * role NULL = any; limit 0 = the daemon's default of 100. The reply may hold
 * at most that many. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad role name or state, malformed reply), the
 * daemon's refusal, transport errors.
 */
int qsc_request_list(qsc_client *c, Qsign__V1__RequestState state, const char *role, uint32_t limit,
                     Qsign__V1__ListRequestsResponse **out);

/*
 * Requests/Get: one request. With include_payload the reply must carry the
 * payload (payload_size bytes), and its SHA-256 is checked against
 * payload_sha256 here: a mismatch is QS_ERR_CRYPTO. The view's id must be
 * the one asked for. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad id, malformed reply), QS_ERR_CRYPTO, the
 * daemon's refusal (QS_ERR_NOT_FOUND, QS_ERR_DENIED), transport errors.
 */
int qsc_request_get(qsc_client *c, const char *id, int include_payload,
                    Qsign__V1__RequestView **out);

/*
 * Requests/Vote: approve (approve != 0) or reject request `id` as the
 * client's principal. The library never signs what it has not seen: it
 * Gets the request with its payload, recomputes the payload's SHA-256 and
 * refuses if it differs from the payload_sha256 the daemon reports, or
 * (when expect_sha256 is not NULL) from those 32 bytes, which pin the
 * payload the approver reviewed; for an approval the payload must also
 * pass its kind's validate() (a reject is allowed for a payload that does
 * not: that is what rejecting is for). It then signs the approval
 * statement (qs_stmt_approval_hash(): server identity, id, role, kind,
 * the locally computed SHA-256, the request's signature hash, decision,
 * now) with the principal's key and
 * sends it with `reason` (NULL = none). *out (the request after the vote)
 * freed with qsc_free().
 * Errors: QS_ERR_INVALID (no principal, bad id, reason too long or with
 * control characters, malformed reply), QS_ERR_CRYPTO (payload digest
 * mismatch: nothing was signed or sent), QS_ERR_UNIMPLEMENTED (a payload
 * kind this client cannot check), the kind's validate() error, identity
 * signing errors (QS_ERR_CRYPTO, QS_ERR_PKCS11), the daemon's refusal
 * (QS_ERR_DENIED not an approver, QS_ERR_PRECONDITION closed or expired,
 * QS_ERR_EXISTS a different vote already cast), transport errors.
 */
int qsc_request_vote(qsc_client *c, const char *id, int approve, const char *reason,
                     const uint8_t *expect_sha256, Qsign__V1__RequestView **out);

/*
 * Requests/Cancel: withdraw a pending request, or an approved one still
 * waiting (for external TUF signatures), by its submitter only.
 * *out (the request, now CANCELLED) freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad id, malformed reply), the daemon's refusal
 * (QS_ERR_DENIED, QS_ERR_PRECONDITION), transport errors.
 */
int qsc_request_cancel(qsc_client *c, const char *id, Qsign__V1__RequestView **out);

/*
 * Requests/Fetch: the signatures of a SIGNED request (none for a policy
 * request: a policy is applied, not signed). Each signature is 1..512
 * bytes with a valid key name. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad id, malformed reply), the daemon's refusal
 * (QS_ERR_PRECONDITION not signed yet, QS_ERR_DENIED), transport errors.
 */
int qsc_request_fetch(qsc_client *c, const char *id, Qsign__V1__FetchResponse **out);

/*
 * Policy/Show: policy version `version` (0 = the one in force). The reply's
 * version must be the one asked for (or, for 0, current_version), and the
 * text at most QS_MAX_POLICY_BYTES. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (malformed reply), the daemon's refusal
 * (QS_ERR_NOT_FOUND no such version), transport errors.
 */
int qsc_policy_show(qsc_client *c, uint64_t version, Qsign__V1__PolicyShowResponse **out);

/* ------------------------------------------------------------ Audit
 *
 * The tamper-evident audit log (audit.proto, service Audit), for principals
 * with the auditor or admin role. These helpers check the shape of each
 * reply; they do NOT establish trust: verify the checkpoint note with
 * qs_note_open() against a pinned log key, entries against its root with
 * proto/merkle.h, and proofs with qs_merkle_*_verify().
 */

/*
 * Audit/Checkpoint: the latest signed checkpoint. The reply must carry a
 * note of 1..QS_MAX_NOTE bytes without NUL, an origin of
 * 1..QS_MAX_ORIGIN bytes and a public key PEM of at most
 * QSC_MAX_LOG_KEY_PEM bytes (size is only a hint: the note's own size
 * counts). *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (malformed reply), the daemon's refusal
 * (QS_ERR_DENIED without the auditor role), transport errors.
 */
#define QSC_MAX_LOG_KEY_PEM 4096
int qsc_audit_checkpoint(qsc_client *c, Qsign__V1__CheckpointResponse **out);

/*
 * Audit/Entries: up to count (1..QS_MAX_AUDIT_FETCH) entries from index
 * start. The reply must echo start, hold at most count entries, each
 * 1..QS_MAX_AUDIT_ENTRY bytes; fewer than count means the log ends there
 * (none: start is the log size). *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (bad count, malformed reply), the daemon's
 * refusal, transport errors.
 */
int qsc_audit_entries(qsc_client *c, uint64_t start, uint32_t count,
                      Qsign__V1__EntriesResponse **out);

/*
 * Audit/Inclusion: the inclusion proof of entry index in the tree of
 * tree_size entries (0 = the daemon's latest; pass the size of the
 * checkpoint you verify against instead). The reply must name that
 * tree_size (index < it) and hold at most QS_MAX_MERKLE_PATH hashes of 32
 * bytes. *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (index >= tree_size, malformed reply), the
 * daemon's refusal, transport errors.
 */
int qsc_audit_inclusion(qsc_client *c, uint64_t index, uint64_t tree_size,
                        Qsign__V1__ProofResponse **out);

/*
 * Audit/Consistency: the consistency proof from the tree of size1 entries
 * to the tree of size2 (0 = latest). The reply must name that size2 (and
 * size1 <= it) and hold at most QS_MAX_MERKLE_PATH hashes of 32 bytes.
 * *out freed with qsc_free().
 * Errors: QS_ERR_INVALID (size1 > size2, malformed reply), the daemon's
 * refusal (QS_ERR_INVALID when a size is past the log), transport errors.
 */
int qsc_audit_consistency(qsc_client *c, uint64_t size1, uint64_t size2,
                          Qsign__V1__ProofResponse **out);

/* Lower-case name of a request state ("pending", ...), NULL if unknown. */
const char *qsc_request_state_name(int state);

/* The state called `name` (as above); STATE_UNSPECIFIED if none. */
Qsign__V1__RequestState qsc_request_state_from_name(const char *name);

/*
 * Create a new principal key locally (no daemon involved). alg is
 * "ed25519" or "ecdsa-p256" (NULL = "ecdsa-p256"). The PKCS#8 PEM is
 * written to path with O_CREAT|O_EXCL and mode 0600: an existing file is
 * never overwritten. *public_pem (optional) receives the SubjectPublicKeyInfo
 * PEM (malloc'd, NUL-terminated) to enter in the policy.
 * Errors: QS_ERR_INVALID (unknown algorithm), QS_ERR_EXISTS (path exists),
 * QS_ERR_IO, QS_ERR_CRYPTO, QS_ERR_NOMEM.
 */
int qsc_keygen(const char *alg, const char *path, char **public_pem);

/*
 * Tuf/PushTargets (online, CI repository): add or replace the targets of
 * the map targets_json (path -> {length, hashes{sha256}, custom}), with
 * the contents of nfiles of them (names[i], data[i], lens[i]) and remove
 * the nremove names. *out (optional) gets the versions produced; freed
 * with qsc_free(). Errors: the daemon's refusal, transport errors.
 */
int qsc_tuf_push_targets(qsc_client *c, const char *targets_json, char *const *names,
                         uint8_t *const *data, const size_t *lens, size_t nfiles,
                         char *const *remove, size_t nremove,
                         Qsign__V1__TufPushTargetsResponse **out);

/*
 * Tuf/GetMetadata: the signed envelope of repo ("ci" | "prod") role
 * (root, targets, snapshot, timestamp) at version (0 = current). The reply
 * is checked to be at most 1 MiB and of the version asked for.
 */
int qsc_tuf_get_metadata(qsc_client *c, const char *repo, const char *role, uint64_t version,
                         Qsign__V1__TufGetMetadataResponse **out);

/* Tuf/Review: findings about the current root. */
int qsc_tuf_review(qsc_client *c, Qsign__V1__TufReviewResponse **out);

/*
 * Tuf/Prepare: the documents TUF request `id` will publish, as canonical
 * "signed" bytes, with the external keys that may sign each. The reply is
 * checked: every document has a repo, a role and 1..1 MiB of bytes.
 */
int qsc_tuf_prepare(qsc_client *c, const char *id, Qsign__V1__TufPrepareResponse **out);

/* Tuf/AddSignatures: n signatures (doc index, keyid, DER) of one external
 * key; *out (optional) is the request as prepared afterwards. */
int qsc_tuf_add_signatures(qsc_client *c, const char *id, const uint32_t *docs,
                           const char *const *keyids, uint8_t *const *sigs, const size_t *sig_lens,
                           size_t n, Qsign__V1__TufPrepareResponse **out);

/* Pki/Show: root, TLS, EST and device CAs (with history: earlier TLS / EST
 * certificates too). *out freed with qsc_free(). Errors: the daemon's
 * refusal (FAILED_PRECONDITION without a pki policy section), transport. */
int qsc_pki_show(qsc_client *c, int include_history, Qsign__V1__PkiShowResponse **out);

/* Pki/IssueDevice: a device certificate for the PEM CSR csr (at most
 * PKI_MAX_CSR bytes) from the online device CA ca_serial (NULL/"" = the
 * newest). Errors: QS_ERR_INVALID (CSR too large), the daemon's refusal
 * (INVALID_ARGUMENT for a CSR it refuses, FAILED_PRECONDITION for a
 * disabled or revoked CA, PERMISSION_DENIED), transport. */
int qsc_pki_issue_device(qsc_client *c, const uint8_t *csr, size_t len, const char *ca_serial,
                         Qsign__V1__PkiIssueDeviceResponse **out);

/* Pki/Crl: the current CRLs (root and online device CAs). */
int qsc_pki_crl(qsc_client *c, Qsign__V1__PkiCrlResponse **out);

#ifdef __cplusplus
}
#endif

#endif
