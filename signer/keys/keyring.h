/*
 * keyring.h - the tokens qsignd opened and the policy keys found in them.
 *
 * The one door through which the daemon uses tokens. With "signers" > 0
 * (the default) the tokens live in signer helper processes (privsep.h) and
 * this process never loads a PKCS#11 module or reads a PIN; with 0 they
 * are opened in process, for debugging. Callers cannot tell the difference.
 */
#ifndef QS_KEYRING_H
#define QS_KEYRING_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "hsm.h"
#include "policy.h"
#include "statement.h"

struct ps_keyref;

struct keyring_key {
	char *uri;
	hsm_token *tok;       /* in process only, else NULL */
	hsm_key *key;         /* in process only, else NULL */
	struct ps_keyref *ps; /* with signer helpers only, else NULL */
	const char *token;    /* label of the token holding it (keyring's) */
	enum hsm_keytype type;
	char *spki_pem;
	char key_id[65]; /* hex SHA-256 of the DER SubjectPublicKeyInfo */
};

struct keyring;

/* Open every configured token (PIN from its pin_file, which must be a
 * regular file not readable by group or others). Errors name the token.
 * With c->signers > 0 this forks the signer helpers, which open the
 * tokens: call it before any thread exists. */
int keyring_open(const struct config *c, struct keyring **out);
void keyring_close(struct keyring *kr);

/* Find every key of the policy in the opened tokens, check its algorithm,
 * and set p->bound. Keys already found (same URI) are reused. Errors name
 * the policy key: unknown token, missing object, algorithm mismatch. */
int keyring_bind(struct keyring *kr, struct policy *p);

/* Everything a policy must pass before it takes effect (bootstrap, every
 * start, a proposal at submission and again when applied): bind its keys
 * (keyring_bind), check its module sections (policy_ext_check), and refuse
 * a token object used for two purposes ("one key, one purpose": a signing
 * role, a TUF role, a CA, the audit log key of the config), compared by
 * public key, not by URI. The TUF and CA keys of the state store st (NULL:
 * none yet) count too. Errors: those of the steps, QS_ERR_INVALID naming
 * both uses. */
struct store;
int keyring_policy_check(struct keyring *kr, struct policy *p, struct store *st);

/* Sign with k: ECDSA (P-256, P-384) -> DER over digest, RSA -> over digest,
 * Ed25519 -> over blob (which must be given). sig holds HSM_SIG_MAX + 16. */
int keyring_sign(const struct keyring_key *k, const uint8_t digest[32], const uint8_t *blob,
                 size_t blob_len, uint8_t *sig, size_t *sig_len);
/* Sign a SHA-256, SHA-384 or SHA-512 digest (told apart by digest_len: 32,
 * 48, 64) with ECDSA or RSA key k (hsm_sign's schemes for that hash), the
 * signature in keyring_sign's form. QS_ERR_INVALID for an Ed25519 key or
 * another length; otherwise keyring_sign's errors. */
int keyring_sign_hashed(const struct keyring_key *k, const uint8_t *digest, size_t digest_len,
                        uint8_t *sig, size_t *sig_len);

struct store_request;

/*
 * Sign the payload of approved quorum request r ("digest" or "blob" kind,
 * payload loaded) with k, as keyring_sign would. With signer helpers the
 * helper is handed the request and its approving votes and signs only if
 * they count under the policy chain it verified itself (privsep_guard.h).
 * Errors: those of keyring_sign; QS_ERR_DENIED (the helper's reason).
 */
int keyring_sign_request(const struct keyring_key *k, const struct store_request *r, uint8_t *sig,
                         size_t *sig_len);

/* Sign a checkpoint note text with the audit log key k (note.h's form:
 * ECDSA over its SHA-256, Ed25519 over the text). A signer helper signs
 * only checkpoints of the configured origin that do not shrink. */
int keyring_sign_checkpoint(const struct keyring_key *k, const uint8_t *text, size_t len,
                            uint8_t *sig, size_t *sig_len);

/* Sign the canonical "signed" JSON (canon, len; dg its SHA-256) of a TUF
 * document of repository repo ("ci"|"prod") with TUF key k, as
 * keyring_sign would. A signer helper signs only documents of the key's
 * role and repository, version rising, an online role's expiry within the
 * policy's bound (privsep_guard.h); a root or production targets only
 * with rq, the approved quorum request (tuf-init, tuf-root, tuf-promote)
 * that makes it, whose payload and approvals the helper checks (NULL for
 * an online document). Errors: those of keyring_sign; QS_ERR_DENIED (the
 * helper's reason). */
int keyring_sign_tuf(const struct keyring_key *k, const char *repo, const char *canon, size_t len,
                     const uint8_t dg[32], const struct store_request *rq, uint8_t *sig,
                     size_t *sig_len);

/* Sign with CA key k (ECDSA P-256, DER) the digest dg of a certificate's or
 * CRL's TBS structure, data being the whole DER object (any signature), or
 * of the CA list text data (kind: enum ps_x509_kind, privsep_wire.h). A
 * signer helper signs only what the key's CA may issue under the policy's
 * pki section, computing the digest itself (privsep_guard.h); a new CA,
 * device CA, revocation or disabling only with rq, the approved quorum
 * request that makes it (NULL for routine certificates and CRLs); a CRL
 * or the CA list with prev (prev_len; NULL/0 for the first), the one k
 * signed before it (prev_sig: the list's signature): what the new one
 * revokes or disables needs rq's approvals. Errors:
 * those of keyring_sign; QS_ERR_DENIED (the helper's reason). */
int keyring_sign_x509(const struct keyring_key *k, uint8_t kind, const uint8_t *data, size_t len,
                      const uint8_t dg[32], const struct store_request *rq, const uint8_t *prev,
                      size_t prev_len, const uint8_t *prev_sig, size_t prev_sig_len, uint8_t *sig,
                      size_t *sig_len);

/* Hand the signer helpers policy version `text` and r, the policy change
 * request (with votes) that made it. No-op in process. Errors: QS_ERR_NOMEM,
 * QS_ERR_EXHAUSTED. */
int keyring_policy_add(struct keyring *kr, const char *text, const struct store_request *r);

/* With signer helpers, sign with k on a helper of its own (ps_keyref_reserve);
 * in process, nothing changes. */
void keyring_key_reserve(struct keyring_key *k);

/* Find (and keep) the key at uri in the opened tokens, e.g. the audit log
 * key, which the policy does not name. Errors as keyring_bind. */
int keyring_find_uri(struct keyring *kr, const char *uri, enum hsm_keytype want,
                     struct keyring_key **out);

/* Label of the opened token that `uri`'s token attributes select, or NULL.
 * Owned by the keyring. */
const char *keyring_token_label_for(struct keyring *kr, const char *uri);

/* Generate a key pair labelled `label` in the token token_uri selects (see
 * hsm_keygen). Find it afterwards with keyring_find_uri. Errors:
 * QS_ERR_NOT_FOUND (no such token), QS_ERR_EXISTS (label taken), those of
 * hsm_keygen, QS_ERR_UNAVAILABLE (the signer helper died meanwhile: the
 * key may or may not exist; not retried). */
int keyring_keygen(struct keyring *kr, const char *token_uri, enum hsm_keytype type,
                   const char *label);

/* SubjectPublicKeyInfo of k as DER, read from the token (*der malloc'd). */
int keyring_spki(const struct keyring_key *k, uint8_t **der, size_t *der_len);

/* Prometheus lines for every token: sessions and reconnects. */
void keyring_write_metrics(struct keyring *kr, FILE *f);

/* n digest signatures with an ECDSA (DER) or RSA key: one round
 * trip to a signer helper for all of them. Each digest is dg_len (32, 48,
 * 64: its hash) bytes at the start of its digests[] slot. sigs holds n x
 * (HSM_SIG_MAX + 16) bytes; rcs[i] is 0 or item i's error. Returns non-zero
 * when nothing could be signed. Ed25519 keys sign messages: use
 * keyring_sign. */
int keyring_sign_digests(const struct keyring_key *k, size_t n,
                         const uint8_t (*digests)[QS_DIGEST_MAX], size_t dg_len, uint8_t *sigs,
                         size_t *sig_lens, int *rcs);

/* Label of the token holding k. */
const char *keyring_token_label(const struct keyring_key *k);

#endif
