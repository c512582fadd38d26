/*
 * identity.h - a principal's private key, in a PEM file or a PKCS#11 token
 * (private to the client library; not installed).
 *
 * The key only ever signs statements (proto/statement.h): Ed25519 over the
 * statement bytes, ECDSA P-256 over their SHA-256 with a DER signature, so
 * that qs_sig_verify() on the daemon accepts both kinds alike.
 */
#ifndef QSC_IDENTITY_H
#define QSC_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

struct qsc_options;
typedef struct qsc_identity qsc_identity;

/*
 * Load the identity that o->identity names (PEM path or pkcs11: URI).
 * On success *out owns the key; free with qsc_id_free().
 * Errors: QS_ERR_INVALID (not a key / other algorithm / file readable by
 * group or other), QS_ERR_IO, QS_ERR_PIN, QS_ERR_PKCS11, QS_ERR_NOT_FOUND.
 */
int qsc_id_load(const struct qsc_options *o, qsc_identity **out);

/* Sign a statement; sig must hold QS_MAX_PRINCIPAL_SIG bytes.
 * Errors: QS_ERR_CRYPTO, QS_ERR_PKCS11, QS_ERR_UNAVAILABLE. */
int qsc_id_sign(qsc_identity *id, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len);

/* The public key as SPKI PEM (PEM_write_bio_PUBKEY), *pem malloc'd. */
int qsc_id_public_pem(qsc_identity *id, char **pem);

/* "ed25519" or "ecdsa-p256". */
const char *qsc_id_alg(const qsc_identity *id);

/* Free the key (OpenSSL wipes private key material; the token keeps its
 * key). NULL is a no-op. */
void qsc_id_free(qsc_identity *id);

/* Return the value of query attribute `name` (module-path, pin-source) of a
 * pkcs11: URI, percent-decoded by p11-kit's parser, malloc'd; NULL if
 * absent. *err is set to a QS_ERR_* code on a URI p11-kit refuses, a %00
 * escape, or allocation failure, else 0. */
char *qsc_p11uri_query(const char *uri, const char *name, int *err);

#endif
