/*
 * p11.h - internals of libqsign-pkcs11.so, the PKCS#11 module whose every
 * signature is a qsignd Sign (clients/README.md, "PKCS#11 module").
 *
 * Files, one job each:
 *   p11_module.c   the C_* entry points, the function list, slots, sessions,
 *                  locking (CKF_OS_LOCKING_OK: one pthread mutex), fork
 *                  detection (by pid), the pool of qsc_clients
 *   p11_objects.c  the object table of a token (public key, private key,
 *                  certificate per key), template matching, attributes
 *   p11_mech.c     mechanisms: parameters, what each sends to qsignd, local
 *                  hashing of multi-part operations, signature formats
 *   p11_config.c   the configuration (environment or a JSON file)
 *
 * The PKCS#11 types come from p11-kit's header, never a hand-copied one.
 */
#ifndef QS_P11_H
#define QS_P11_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include "qsclient.h"
#include "statement.h"

/* Largest signature qsignd returns (RSA-4096). */
#define P11_SIG_MAX 512

/* ------------------------------------------------------------ config */

struct p11_config {
	char *server;        /* QSIGN_SERVER / "server" */
	char *principal;     /* QSIGN_PRINCIPAL / "principal" */
	char *identity;      /* QSIGN_IDENTITY / "identity" (file or pkcs11: URI) */
	char *identity_pass; /* QSIGN_IDENTITY_PASS_FILE / "identity_pass_file" */
	char *pin_source;    /* QSIGN_PIN_FILE / "pin_source" (file:/env:) */
	char *pkcs11_module; /* QSIGN_PKCS11_MODULE / "pkcs11_module" */
	char *server_key;    /* QSIGN_SERVER_KEY / "server_key" */
	char *known_servers; /* "known_servers" (NULL: qsclient's default) */
	char *tls_cert, *tls_key, *tls_ca;
	int timeout_ms;   /* "timeout_seconds" * 1000; 0 = library default */
	int quorum_wait;  /* "quorum_wait_seconds" / QSIGN_PKCS11_QUORUM_WAIT; 0 = hide quorum roles
	                   */
	char source[300]; /* where it came from, for messages */
};

/* Read the configuration: the JSON file named by QSIGN_PKCS11_CONF, else
 * $XDG_CONFIG_HOME/qsign/pkcs11.conf (~/.config/...) when it exists; the
 * QSIGN_* variables override its fields. Missing principal or server, an
 * unreadable or malformed file, an unknown field: QS_ERR_INVALID / QS_ERR_IO
 * with the reason in qs_errdetail(). On success *out is filled; release
 * with p11_config_free(). */
int p11_config_load(struct p11_config *out);
/* Parse a configuration file's text (the JSON object) into c; fields not in
 * the text are left as they are. Exposed for the fuzz target. */
int p11_config_parse(struct p11_config *c, const char *text, size_t len);
void p11_config_free(struct p11_config *c);

/* ------------------------------------------------------------ mechanisms */

/* The family of a key, from KeyInfo.algorithm. */
enum p11_keyfam {
	P11_FAM_NONE = 0,
	P11_FAM_EC,        /* ecdsa-p256, ecdsa-p384 */
	P11_FAM_ED25519,   /* ed25519 */
	P11_FAM_RSA_PSS,   /* rsa3072 */
	P11_FAM_RSA_PKCS1, /* rsa2048-pkcs1, rsa3072-pkcs1, rsa4096-pkcs1 */
};

enum p11_keyfam p11_keyfam_of(const char *algorithm);

/* Mechanisms a key of that family offers (the CKA_ALLOWED_MECHANISMS of its
 * objects); *n set. */
const CK_MECHANISM_TYPE *p11_mech_list(enum p11_keyfam fam, size_t *n);
/* 1 if any key family offers mech; fills info for C_GetMechanismInfo. */
int p11_mech_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info);
/* 1 unless mech hashes with a hash outside hashes (QS_HASH_* bits of
 * statement.h: the role's RoleInfo.hashes). Raw mechanisms are allowed:
 * their input tells the hash, and qsignd refuses one the role does not
 * allow. */
int p11_mech_hash_allowed(CK_MECHANISM_TYPE mech, unsigned hashes);

/* A signing operation in progress (C_SignInit .. C_Sign/C_SignFinal). */
struct p11_op {
	CK_MECHANISM_TYPE mech;
	enum p11_keyfam fam;
	int hashing;     /* the mechanism hashes: Update feeds md */
	size_t hash_len; /* hashing, raw PSS: the digest's length (its hash) */
	EVP_MD_CTX *md;  /* when hashing */
	uint8_t *buf;    /* EdDSA multi-part: the message so far */
	size_t buf_len;
	size_t sig_len; /* length of the signature it produces */
	int updated;    /* C_SignUpdate called: C_Sign no longer allowed */
};

/*
 * Check mechanism m (type and parameters) for a key of family fam whose
 * signature is sig_len bytes, of a role that allows hashes (QS_HASH_*
 * bits), and start op. Errors as CK_RV: CKR_MECHANISM_INVALID (not offered
 * for this key, or its hash not allowed), CKR_MECHANISM_PARAM_INVALID
 * (parameters other than the one scheme the key signs with, or PSS
 * parameters naming a hash not allowed), CKR_HOST_MEMORY.
 */
CK_RV p11_op_init(struct p11_op *op, const CK_MECHANISM *m, enum p11_keyfam fam, size_t sig_len,
                  unsigned hashes);
/* Feed data to a multi-part operation. CKR_OK, CKR_DATA_LEN_RANGE (EdDSA
 * message beyond QS_MAX_BLOB), CKR_FUNCTION_FAILED, CKR_HOST_MEMORY. */
CK_RV p11_op_update(struct p11_op *op, const uint8_t *data, size_t len);
void p11_op_free(struct p11_op *op);

/* What to send to qsignd: kind and payload (payload points into in, op or
 * digest). */
struct p11_payload {
	Qsign__V1__PayloadKind kind;
	const char *hash; /* SignRequest.hash: "sha256", "sha384", "sha512" */
	const uint8_t *data;
	size_t len;
	uint8_t digest[64];
};

/*
 * The payload for the data of a single-part C_Sign (in, in_len) or, with
 * in == NULL, for the data fed to op so far (C_SignFinal). allow_digest /
 * allow_blob: what the role accepts. Raw mechanisms check their input:
 * CKM_ECDSA a SHA-256/384/512 digest (told by its length), CKM_RSA_PKCS_PSS
 * a digest of the parameters' hash, CKM_RSA_PKCS a DigestInfo of one of
 * those; anything else CKR_DATA_LEN_RANGE / CKR_DATA_INVALID.
 * A role that accepts neither form: CKR_FUNCTION_REJECTED.
 */
CK_RV p11_op_payload(struct p11_op *op, const uint8_t *in, size_t in_len, int allow_digest,
                     int allow_blob, struct p11_payload *pl);

/* The daemon's signature (ECDSA: DER) in the form PKCS#11 returns (ECDSA:
 * r||s of op->sig_len bytes). out holds op->sig_len bytes. CKR_OK or
 * CKR_DEVICE_ERROR (a reply of the wrong form). */
CK_RV p11_sig_format(const struct p11_op *op, const uint8_t *sig, size_t sig_len, uint8_t *out);

/* ------------------------------------------------------------ objects */

struct p11_key {
	char *name; /* policy key name: CKA_LABEL */
	char *algorithm;
	enum p11_keyfam fam;
	uint8_t id[32]; /* CKA_ID: the key id (SHA-256 of the SPKI) */
	size_t id_len;
	uint8_t *spki; /* DER SubjectPublicKeyInfo */
	size_t spki_len;
	uint8_t *ec_params, *ec_point; /* DER, for EC and EdDSA */
	size_t ec_params_len, ec_point_len;
	uint8_t *modulus, *exponent; /* RSA, big-endian */
	size_t modulus_len, exponent_len;
	uint8_t *cert; /* DER X.509, or NULL */
	size_t cert_len;
	size_t sig_len; /* raw signature length */
	/* The hashes its role allows (QS_HASH_* bits) and the mechanisms it
	 * offers for them (CKA_ALLOWED_MECHANISMS): p11_key_set_hashes. */
	unsigned hashes;
	CK_MECHANISM_TYPE mechs[8];
	size_t nmechs;
};

/* Object classes of a key's objects, the low bits of a handle. */
enum { P11_OBJ_PUB = 0, P11_OBJ_PRIV = 1, P11_OBJ_CERT = 2, P11_OBJ_KINDS = 3 };

/* Fill k from a KeyInfo (algorithm, key_id hex, public_pem, certificate PEM
 * when present). QS_ERR_INVALID for a key this module cannot offer. */
int p11_key_from_info(struct p11_key *k, const Qsign__V1__KeyInfo *ki);
void p11_key_free(struct p11_key *k);
/* Limit k's mechanisms to those its role's hashes allow (RoleInfo.hashes;
 * p11_key_from_info allows every hash). */
void p11_key_set_hashes(struct p11_key *k, unsigned hashes);

/* 1 if the object (key k, kind) exists and matches every attribute of
 * the template (values compared bytewise), 0 otherwise. */
int p11_obj_match(const struct p11_key *k, int kind, const CK_ATTRIBUTE *tmpl, CK_ULONG n);

/* C_GetAttributeValue for object (k, kind): the two-call pattern, with
 * CKR_ATTRIBUTE_SENSITIVE / CKR_ATTRIBUTE_TYPE_INVALID / CKR_BUFFER_TOO_SMALL
 * per attribute (ulValueLen = CK_UNAVAILABLE_INFORMATION) as the standard
 * says, every attribute processed. */
CK_RV p11_obj_get(const struct p11_key *k, int kind, CK_ATTRIBUTE *tmpl, CK_ULONG n);

#endif
