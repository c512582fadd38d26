/*
 * privsep.h - privilege separation of qsignd: signer helper processes.
 *
 * The process that parses network input (the "front": nng, decoding,
 * authentication, policy, state, audit) never loads a PKCS#11 module, never
 * reads a PIN and holds no token session. Those live in N signer helpers
 * (config "signers", default one per online CPU; 0 keeps the tokens in
 * process, for debugging) that serve requests, and one more that signs only
 * the audit log's checkpoints and qsignd's challenge answers
 * (ps_keyref_reserve). A helper answers only
 * the requests in its permission table, over a socketpair, one request at
 * a time.
 *
 * Process tree (all forked in keyring_open, before any thread exists; nng,
 * the store writer and the audit writer start later):
 *
 *   qsignd (front) --ctl socketpair--> qsignd-launch --fork--> qsignd-signer xN+1
 *
 * The launcher is a tiny single-threaded process that never opens a token.
 * The front asks it (one byte on ctl) for a helper; it forks one, which
 * opens the tokens itself (reads the PIN, logs in), drops privileges,
 * installs its own seccomp filter and reports READY; the launcher passes
 * the front's end of the helper's socketpair back with SCM_RIGHTS. So a
 * helper that dies is replaced at any time, even once the front has
 * threads (forking a threaded nng process is unsafe; the launcher never
 * has threads). The launcher keeps the start-up credentials because a new
 * helper must read the PIN file; it reads nothing but one byte at a time
 * from the front, and dies with it (PR_SET_PDEATHSIG, EOF on ctl).
 *
 * The launcher's seccomp filter (harden_seccomp_launcher; "seccomp": false
 * and sanitizer builds go without, as for the other processes) is
 * installed once it is set up, before it forks a helper. A filter is
 * inherited by every child and cannot be lifted, so the launcher's must
 * let a new helper do all it does before it stacks its own allow-list:
 * load whichever PKCS#11 module the config names (SoftHSM; tpm2-pkcs11,
 * which starts threads, opens SQLite, dlopens TCTIs and reaches
 * tpm2-abrmd over D-Bus or a TPM over TCP), read the PIN, switch user.
 * That set is the module's to choose, so an allow-list would be either
 * as wide as the helper's start-up or break the next module. It is a
 * deny-list instead, of what no start-up needs and an attacker in the
 * launcher (still holding the start-up credentials, perhaps root) would
 * want: execve/execveat, ptrace, process_vm_*, mount and the other file
 * system and namespace calls, clone with CLONE_NEW*, module and kexec
 * loading, bpf, perf_event_open, the kernel keyring, userfaultfd,
 * personality, io_uring, reboot, swap, clock and host names, I/O ports,
 * TIOCSTI, and every call through another ABI (i386, x32), which the
 * x86_64 numbers of a deny-list do not cover. Each kills the process
 * (SIGSYS). The helpers' own allow-list then narrows what they inherited.
 *
 * Wire format (both directions):
 *   frame   = u32 length (big-endian, 1..QS_MAX_PRIVSEP_MSG) || body
 *   request = u8 type || fields
 *   reply   = u8 (type | 0x80) || u32 status (a QS_ERR_* code, 0 = OK)
 *             || (status == 0 ? fields : str detail)
 *   u8/u32 big-endian; str = u32 n || n bytes (no NUL, n <= QS_MAX_PRIVSEP_STR);
 *   bytes = u32 n || n bytes (n <= QS_MAX_PRIVSEP_MSG).
 * Decoding is strict: every field present, exact lengths, no trailing bytes
 * (privsep_wire.c, the one door for these bytes on both sides; fuzzed by
 * tests/fuzz/fuzz_privsep.c).
 *
 *   type          request fields              reply fields
 *   PS_INFO       -                           u32 ntok, ntok x (str label,
 *                                             u32 sessions, u32 reconnects)
 *   PS_FIND       str uri                     u32 handle, u8 keytype,
 *                                             u32 token index, bytes spki_der
 *   PS_SIGN       u32 handle, bytes input     bytes signature (hsm_sign's)
 *   PS_SIGN_MANY  u32 handle, u32 n (1..QS_MAX_BATCH), n x bytes input
 *                                             n x (u32 status, bytes signature)
 *                 (one round trip for a SignBatch slice; a failed item has
 *                 its QS_ERR_* status and an empty signature)
 *   PS_POLICY     evidence, bytes text        -
 *                 (a policy version after the first, with the approvals of
 *                 the policy change that made it; privsep_guard.h)
 *   PS_SIGN_QUORUM u32 handle, evidence,      bytes signature
 *                 bytes payload               (the helper derives the input)
 *   PS_SIGN_CHECKPOINT u32 handle, bytes text bytes signature
 *   PS_SIGN_TUF   u32 handle, str repo,       bytes signature
 *                 bytes signed, evidence,     (signed: the canonical JSON of a
 *                 bytes payload               TUF document's "signed" part,
 *                                             at most TUF_MAX_METADATA;
 *                                             evidence and payload: the
 *                                             quorum request of a root or
 *                                             production targets, else
 *                                             empty)
 *   PS_SIGN_X509  u32 handle, u8 kind,        bytes signature
 *                 bytes data, evidence,       (evidence and payload: the
 *                 bytes payload, bytes prev,  quorum request of a CA
 *                 bytes prev_sig              operation, else empty; prev:
 *                                             a CRL's or the CA list's
 *                                             predecessor, signed by the
 *                                             key (prev_sig: the list's
 *                                             signature), or empty;
 *                                             kind: 1 a DER certificate, 2
 *                                             a DER CRL -- any signature; the
 *                                             helper signs its TBS -- 3 the
 *                                             CA list; at most PS_MAX_X509)
 *   PS_KEYGEN     str token_uri, u8 keytype,  -
 *                 str label
 *   PS_PUBKEY     u32 handle                  bytes spki_der
 *   PS_TOKEN_FOR  str uri                     u32 token index or 0xffffffff
 *   PS_READY      (sent once by a new helper, unasked: a PS_INFO reply, or
 *                 the error that kept it from opening its tokens)
 *
 *   evidence = str id, str role, str kind, str submitter, u64 policy_version,
 *              u32 n (<= QS_MAX_PRIVSEP_VOTES), n x (str approver,
 *              u8 approve (0|1), u64 time, bytes sig)   (u64: two u32, high first)
 *
 * What a helper signs is judged by the key's purpose (privsep_guard.h): the
 * audit key only checkpoints (PS_SIGN_CHECKPOINT) that do not shrink; a
 * quorum key only PS_SIGN_QUORUM with a threshold of valid approvals under
 * the policy chain the helper verified (PS_POLICY); a TUF key only
 * PS_SIGN_TUF documents of its role and repository with a rising version
 * (online roles: expiry within the policy's bound; a root or production
 * targets only with the approved request that makes it, bound to its
 * payload); other keys PS_SIGN and
 * PS_SIGN_MANY (an online role's key within the role's rate); a CA key
 * only PS_SIGN_X509 certificates of its profiles within the policy's pki
 * constraints (a root or device CA only with its approved request), CRLs
 * and the CA list; PS_KEYGEN
 * only labels of the daemon's namespace, never a taken one. Each refusal: QS_ERR_DENIED and
 * "privsep.refused request=.. reason=..".
 *
 * Refusals, like sshd's monitor: a request type not in the table gets
 * QS_ERR_DENIED and a "privsep.refused" log line; so does a key handle
 * this helper did not hand out. A frame that does not decode (bad length,
 * missing or trailing bytes) makes the helper log "privsep.garbage" and
 * exit: it never guesses.
 *
 * Failure: a helper that dies (EOF/EPIPE on its socket) or does not answer
 * within QS_PRIVSEP_REPLY_TIMEOUT_S (environment QSIGND_SIGNER_TIMEOUT_MS
 * may shorten it) is killed and replaced on the
 * spot by the thread that noticed ("privsep.helper_restarted"), and the
 * call is retried once on the replacement (find, sign, public key are
 * idempotent); key generation is not retried and fails UNAVAILABLE.
 */
#ifndef QS_PRIVSEP_H
#define QS_PRIVSEP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hsm.h"
#include "privsep_wire.h" /* the message types, PS_NO_TOKEN */

struct ps_pool;
struct ps_keyref;

/* Fork the launcher and `n` helpers (1..QS_MAX_SIGNERS), plus one reserved
 * for ps_keyref_reserve, and wait until all
 * opened c's tokens. Must run before any thread exists. *labels (ntok
 * strings) are the tokens' labels, owned by the pool. Errors: those of
 * opening a token in the helper (QS_ERR_PIN, QS_ERR_NOT_FOUND, ...) with
 * its detail, QS_ERR_IO / QS_ERR_INTERNAL if a process cannot be started. */
int ps_pool_start(const struct config *c, unsigned n, struct ps_pool **out);
/* Close every helper (they exit on EOF), then the launcher; wait for it. */
void ps_pool_stop(struct ps_pool *p);
size_t ps_pool_ntokens(const struct ps_pool *p);
const char *ps_pool_token_label(const struct ps_pool *p, size_t i);

/* Find the key at uri: a reference valid on every helper (each resolves it
 * on first use), its type, token index and public key (*der malloc'd).
 * Errors as hsm_key_find, "no configured token matches" as NOT_FOUND. */
int ps_find(struct ps_pool *p, const char *uri, struct ps_keyref **ref, enum hsm_keytype *type,
            size_t *tok_index, uint8_t **der, size_t *der_len);
void ps_keyref_free(struct ps_keyref *ref);
/* Route ref's signatures to the pool's reserved helper (started beside the
 * `n` others): for the audit log's key, whose checkpoint signature is on
 * every commit's critical path. */
void ps_keyref_reserve(struct ps_keyref *ref);
/* hsm_sign through a helper (least busy first). sig holds HSM_SIG_MAX. */
int ps_sign(struct ps_keyref *ref, const uint8_t *in, size_t in_len, uint8_t *sig, size_t *sig_len);
/* A quorum key's signature of request ev's payload: the helper recomputes
 * the payload digest, counts ev's votes under its own verified policy chain
 * (privsep_guard.h) and signs only at the threshold. sig holds HSM_SIG_MAX
 * (hsm_sign's raw form). Errors: QS_ERR_DENIED with the helper's reason,
 * those of ps_sign. */
int ps_sign_quorum(struct ps_keyref *ref, const struct ps_evidence *ev, const uint8_t *payload,
                   size_t len, uint8_t *sig, size_t *sig_len);
/* The audit key's signature of a checkpoint note text: the helper signs
 * only checkpoints of the configured origin that do not shrink. */
int ps_sign_checkpoint(struct ps_keyref *ref, const uint8_t *text, size_t len, uint8_t *sig,
                       size_t *sig_len);
/* A TUF key's signature of the canonical "signed" JSON text of a document
 * of repository repo ("ci"|"prod"): the helper signs only documents of the
 * key's role, a version above the last it signed, an online role's expiry
 * within the policy's bound (privsep_guard.h); a root or production targets
 * only on ev (NULL: none), the quorum request whose payload is payload,
 * len plen, with its approvals. sig holds HSM_SIG_MAX. */
int ps_sign_tuf(struct ps_keyref *ref, const char *repo, const uint8_t *text, size_t len,
                const struct ps_evidence *ev, const uint8_t *payload, size_t plen, uint8_t *sig,
                size_t *sig_len);
/* A CA key's signature (hsm_sign's raw form) of the TBS structure of the
 * DER certificate or CRL data (kind PS_X509_CERT, PS_X509_CRL: its
 * signature is not looked at), or of the CA list text (PS_X509_CALIST):
 * the helper signs only what the key's CA may issue (privsep_guard.h); a
 * CA, device CA, revocation or disabling only on ev (NULL: none), the
 * quorum request whose payload is payload, len plen, with its approvals; a
 * CRL or the CA list with prev (prev_len; NULL/0: none), the one the key
 * signed before it (prev_sig: the CA list's signature), against which the
 * helper finds what the new one revokes or disables. */
int ps_sign_x509(struct ps_keyref *ref, enum ps_x509_kind kind, const uint8_t *data, size_t len,
                 const struct ps_evidence *ev, const uint8_t *payload, size_t plen,
                 const uint8_t *prev, size_t prev_len, const uint8_t *prev_sig, size_t prev_sig_len,
                 uint8_t *sig, size_t *sig_len);
/* Hand every helper (now, and every one started later) policy version
 * `text` with the approvals that made it (ev: the policy change request).
 * A helper verifies it against its chain before it takes it; one that
 * refuses logs privsep.refused and keeps its older version (the front
 * logs privsep.policy_refused). Errors: QS_ERR_EXHAUSTED, QS_ERR_NOMEM. */
int ps_policy_add(struct ps_pool *p, const struct ps_evidence *ev, const uint8_t *text, size_t len);
/* n signatures with one key in one round trip (inputs of at most 64 bytes:
 * digests). sigs holds n x HSM_SIG_MAX bytes; status[i] is 0 or the item's
 * QS_ERR_*. Returns non-zero only when the whole call failed. */
int ps_sign_many(struct ps_keyref *ref, const uint8_t *const *in, const size_t *in_len, size_t n,
                 uint8_t *sigs, size_t *sig_lens, int *status);
/* SubjectPublicKeyInfo DER of the key (*der malloc'd). */
int ps_pubkey(struct ps_keyref *ref, uint8_t **der, size_t *der_len);
/* hsm_keygen in the token token_uri selects. NOT_FOUND if none does. */
int ps_keygen(struct ps_pool *p, const char *token_uri, enum hsm_keytype type, const char *label);
/* Index of the token uri selects, or PS_NO_TOKEN. */
int ps_token_for(struct ps_pool *p, const char *uri, uint32_t *index);
/* Sessions and reconnects of token i, summed over the helpers. */
void ps_token_stats(struct ps_pool *p, size_t i, unsigned *sessions, unsigned *reconnects);

/* Test mode (qsignd --privsep-selftest): start one helper and talk to it
 * as a hostile front would: a valid find (of an online role's key in the
 * bootstrap policy, and of uri, the audit key), then an unknown request
 * type, a forged handle and a plain sign with the audit key (all must be
 * refused with DENIED while the helper lives on), then a malformed frame
 * (the helper must exit). Last,
 * if the launcher runs under its filter, have it make a forbidden call
 * (it must die by SIGSYS; only this mode's launcher takes that request).
 * Prints one line per check; 0 if all behaved, 1 otherwise. */
int ps_selftest(const struct config *c, const char *uri);

/* Implemented by keyring.c for the helper: the in-process keyring, whose
 * tokens the helper serves. */
struct keyring;
int keyring_open_local(const struct config *c, struct keyring **out);
hsm_token *const *keyring_local_tokens(struct keyring *kr, size_t *n);

#endif
