/*
 * keyring.h - the tokens qsignd opened and the policy keys found in them.
 */
#ifndef QS_KEYRING_H
#define QS_KEYRING_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "hsm.h"
#include "policy.h"

struct keyring_key {
	char *uri;
	hsm_token *tok;
	hsm_key *key;
	enum hsm_keytype type;
	char *spki_pem;
	char key_id[65]; /* hex SHA-256 of the DER SubjectPublicKeyInfo */
};

struct keyring;

/* Open every configured token (PIN from its pin_file, which must be a
 * regular file not readable by group or others). Errors name the token. */
int keyring_open(const struct config *c, struct keyring **out);
void keyring_close(struct keyring *kr);

/* Find every key of the policy in the opened tokens, check its algorithm,
 * and set p->bound. Keys already found (same URI) are reused. Errors name
 * the policy key: unknown token, missing object, algorithm mismatch. */
int keyring_bind(struct keyring *kr, struct policy *p);

/* Sign with k: ECDSA P-256 -> DER over digest, RSA-PSS -> over digest,
 * Ed25519 -> over blob (which must be given). sig holds HSM_SIG_MAX + 16. */
int keyring_sign(const struct keyring_key *k, const uint8_t digest[32], const uint8_t *blob,
		 size_t blob_len, uint8_t *sig, size_t *sig_len);

/* Find (and keep) the key at uri in the opened tokens, e.g. the audit log
 * key, which the policy does not name. Errors as keyring_bind. */
int keyring_find_uri(struct keyring *kr, const char *uri, enum hsm_keytype want,
		     struct keyring_key **out);

/* The opened token that `uri`'s token attributes select (for generating
 * keys in it), or NULL. Owned by the keyring. */
hsm_token *keyring_token_for(struct keyring *kr, const char *uri);

/* Prometheus lines for every token: sessions and reconnects. */
void keyring_write_metrics(struct keyring *kr, FILE *f);

/* Label of the token holding k. */
const char *keyring_token_label(const struct keyring_key *k);

#endif
