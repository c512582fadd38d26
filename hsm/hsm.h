/*
 * hsm.h - PKCS#11 token layer of quorum-signer.
 *
 * One hsm_token is one PKCS#11 module plus one token in it, selected by an
 * RFC 7512 URI, logged in with a PIN that is read from a file or an
 * environment variable (never argv). The PIN is kept only in a locked,
 * non-dumpable page inside the hsm_token, because a token restart needs a
 * fresh C_Login; hsm_close() wipes it. It is never logged or returned.
 *
 * Thread model: an hsm_token owns a pool of logged-in sessions. Every
 * operation borrows a session for its duration, so N threads signing at once
 * use N sessions and never share one. Session set-up (C_OpenSession,
 * C_Login, object lookup) is serialised by a token-wide lock because
 * tpm2-pkcs11 corrupts its state when those run in parallel; signing itself
 * runs in parallel.
 *
 * Recovery: when a call reports the session or device gone
 * (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
 * CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT, CKR_CRYPTOKI_NOT_INITIALIZED,
 * CKR_USER_NOT_LOGGED_IN), the layer drops the pool, re-initialises the
 * module if needed, logs in again, re-finds the key's objects by label/id and
 * retries the operation once. CKR_GENERAL_ERROR is treated the same way; if
 * the retry fails too, the error is returned.
 *
 * All functions return 0 or a negative QS_ERR_* code (qs_err.h) and leave a
 * detail message (with the CK_RV name) in qs_errdetail().
 */
#ifndef QS_HSM_H
#define QS_HSM_H

#include <stddef.h>
#include <stdint.h>

typedef struct hsm_token hsm_token;
typedef struct hsm_key hsm_key;

enum hsm_keytype {
	HSM_KEY_NONE = 0,
	HSM_KEY_EC_P256 = 1, /* CKM_ECDSA over a SHA-256 digest */
	HSM_KEY_ED25519 = 2, /* CKM_EDDSA (pure Ed25519) over the message */
	HSM_KEY_RSA3072 = 3, /* CKM_RSA_PKCS_PSS, SHA-256, MGF1-SHA256, salt 32 */
	/* CKM_RSA_PKCS (PKCS#1 v1.5) over a SHA-256 DigestInfo: what UEFI
	 * Authenticode, U-Boot FIT and i.MX HAB verify. The token object is
	 * restricted to CKM_RSA_PKCS by CKA_ALLOWED_MECHANISMS (and a PSS key
	 * we generate to CKM_RSA_PKCS_PSS): one key, one scheme. */
	HSM_KEY_RSA2048_PKCS1 = 4,
	HSM_KEY_RSA3072_PKCS1 = 5,
	HSM_KEY_RSA4096_PKCS1 = 6,
	HSM_KEY_EC_P384 = 7, /* CKM_ECDSA over a SHA-256/384/512 digest, secp384r1 */
};

#define HSM_LABEL_MAX 64 /* CKA_LABEL we accept / create, bytes */
#define HSM_ID_MAX 32    /* CKA_ID we accept / create, bytes */
#define HSM_SIG_MAX 512  /* largest signature we produce (RSA-3072 = 384) */
#define HSM_POOL_MAX 64  /* sessions kept per token */

/* Public description of a key, filled by hsm_key_info(). */
struct hsm_keyinfo {
	enum hsm_keytype type;
	char label[HSM_LABEL_MAX + 1];
	uint8_t id[HSM_ID_MAX];
	size_t id_len;
};

/* "ecdsa-p256", "ecdsa-p384", "ed25519", "rsa3072", "rsa2048-pkcs1",
 * "rsa3072-pkcs1", "rsa4096-pkcs1"; NULL for HSM_KEY_NONE. */
const char *hsm_keytype_name(enum hsm_keytype t);
/* Those names as one list for error messages: "ecdsa-p256, ecdsa-p384, ...
 * or rsa4096-pkcs1". */
const char *hsm_keytype_names(void);
/* 1 for the ECDSA types (P-256, P-384): raw r||s from the token, DER on the
 * wire. */
int hsm_keytype_is_ecdsa(enum hsm_keytype t);
/* 1 for the types that sign a digest (ECDSA and every RSA type; SHA-256/384/512),
 * 0 for Ed25519 (the message itself) and HSM_KEY_NONE. */
int hsm_keytype_signs_digest(enum hsm_keytype t);
/* 1 for the RSA types. */
int hsm_keytype_is_rsa(enum hsm_keytype t);
/* 1 for the RSA types that sign PKCS#1 v1.5 (rsa*-pkcs1); rsa3072 signs PSS. */
int hsm_keytype_is_pkcs1(enum hsm_keytype t);
/* Parse the names above (also accepts "ec", "p256", "rsa"). HSM_KEY_NONE on
 * anything else. */
enum hsm_keytype hsm_keytype_parse(const char *s);

/*
 * Open module_path (a .so) and the token that `uri` selects (token=, manuf=,
 * serial=, model= attributes are honoured; object/id are ignored here).
 * PIN source, first that applies:
 *   - pin_source argument: "file:/path" or "env:NAME" (NULL to skip),
 *   - the URI's pin-source=file:... attribute,
 *   - the URI's pin-value attribute is REFUSED (a PIN must not sit in a URI
 *     that may end up in argv or logs).
 * With no PIN source at all the token is opened without login (public
 * objects only). The PIN is logged in at once (a wrong PIN fails here) and
 * kept in locked memory for re-login after recovery; hsm_close() wipes it.
 * Exactly one initialised token must match the URI. The module is loaded
 * once per path per process and C_Initialize'd with CKF_OS_LOCKING_OK; it
 * is C_Finalize'd when the last hsm_token on it closes, unless someone else
 * in the process had initialised it first.
 * Errors: QS_ERR_INVALID (malformed URI, unknown URI attribute, pin-value in
 * the URI, bad PIN source syntax, URI matching several tokens),
 * QS_ERR_NOT_FOUND (no such token, module not loadable), QS_ERR_PIN (wrong or
 * locked PIN, unreadable or empty PIN file, unset PIN variable),
 * QS_ERR_PKCS11, QS_ERR_NOMEM.
 * On success *out owns the token; free with hsm_close().
 */
int hsm_open(const char *module_path, const char *uri, const char *pin_source, hsm_token **out);

/* Close all sessions, finalize the module if we were its last user, free. */
void hsm_close(hsm_token *t);

/* Label of the opened token (static storage inside t). */
const char *hsm_token_label(const hsm_token *t);

/* 1 if `uri`'s token attributes (token=, manuf=, serial=, model=) select
 * this token, 0 if not or if uri is malformed. */
int hsm_token_matches(const hsm_token *t, const char *uri);

/*
 * Find the private key that `uri` names by object= (CKA_LABEL) and/or id=
 * (CKA_ID); a bare label without "pkcs11:" is accepted as object=label.
 * Exactly one private key must match: none → QS_ERR_NOT_FOUND, several →
 * QS_ERR_INVALID. On success *out is a handle owned by the caller; free with
 * hsm_key_free(). The handle stays valid across token recovery.
 */
int hsm_key_find(hsm_token *t, const char *uri, hsm_key **out);

/*
 * Generate a key pair inside the token: private part CKA_TOKEN, CKA_PRIVATE,
 * CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN; public part CKA_VERIFY.
 * label is required (1..HSM_LABEL_MAX bytes); id may be NULL, then a random
 * 16-byte id is chosen. An existing private key with the same label →
 * QS_ERR_EXISTS (nothing is overwritten).
 */
int hsm_keygen(hsm_token *t, enum hsm_keytype type, const char *label, const uint8_t *id,
               size_t id_len, hsm_key **out);

/* List the private keys of the token. *out is a calloc'd array of *n
 * entries, free()d by the caller. Keys of unsupported types are listed with
 * type HSM_KEY_NONE. Works on tokens that hold EC, Ed25519 and RSA keys. */
int hsm_key_list(hsm_token *t, struct hsm_keyinfo **out, size_t *n);

void hsm_key_free(hsm_key *k);
void hsm_key_info(const hsm_key *k, struct hsm_keyinfo *out);
enum hsm_keytype hsm_key_type(const hsm_key *k);

/* SubjectPublicKeyInfo of the key as DER (*der malloc'd) or PEM (a
 * NUL-terminated malloc'd string). Read from the public object, or for EC
 * from CKA_EC_POINT/CKA_EC_PARAMS of whichever object carries them. */
int hsm_key_spki_der(hsm_token *t, const hsm_key *k, uint8_t **der, size_t *der_len);
int hsm_key_spki_pem(hsm_token *t, const hsm_key *k, char **pem);

/*
 * Sign with the key. `in` is:
 *   HSM_KEY_EC_P256: a digest                 → sig = raw r||s, 64 bytes
 *   HSM_KEY_EC_P384: a digest                 → sig = raw r||s, 96 bytes
 *   HSM_KEY_ED25519: the message itself       → sig = 64 bytes
 *   HSM_KEY_RSA3072: a digest                 → sig = 384 bytes (PSS, MGF1
 *                    of the same hash, salt of the digest's length)
 *   HSM_KEY_RSA*_PKCS1: a digest              → sig = modulus bytes
 *                    (PKCS#1 v1.5 over its DigestInfo)
 * where a digest is a SHA-256, SHA-384 or SHA-512 one, told apart by its
 * length (32, 48, 64 bytes).
 * sig must hold HSM_SIG_MAX bytes; *sig_len receives the length.
 * Errors: QS_ERR_INVALID (wrong input length), QS_ERR_PKCS11, QS_ERR_UNAVAILABLE
 * (token gone and recovery failed).
 */
int hsm_sign(hsm_token *t, const hsm_key *k, const uint8_t *in, size_t in_len, uint8_t *sig,
             size_t *sig_len);

/* The DER DigestInfo of a SHA-256, SHA-384 or SHA-512 digest of
 * digest_len (32, 48, 64) bytes up to the digest itself (RFC 8017 9.2 note
 * 1: PKCS#1 v1.5 signs it with the digest appended); *prefix_len set. NULL
 * for any other length. */
const uint8_t *hsm_digestinfo_prefix(size_t digest_len, size_t *prefix_len);

/* Convert a raw r||s ECDSA signature (2*n bytes) to DER ECDSA-Sig-Value.
 * der must hold at least raw_len + 9 bytes. Pure function, no token needed. */
int hsm_ecdsa_raw_to_der(const uint8_t *raw, size_t raw_len, uint8_t *der, size_t *der_len);

/* Sessions currently open in the pool and reconnects done so far
 * (for tests and metrics). */
void hsm_stats(const hsm_token *t, unsigned *sessions, unsigned *reconnects);

/*
 * Initialise a fresh token (qsign-token init): on the first slot whose token
 * is not initialised, C_InitToken with the SO PIN and label, then log in as
 * SO and C_InitPIN the user PIN. PIN sources as for hsm_open ("file:PATH",
 * "env:NAME"); both PINs are wiped before return.
 * Errors: QS_ERR_EXISTS (a token with that label exists), QS_ERR_NOT_FOUND
 * (no uninitialised token), QS_ERR_INVALID (label not 1..32 bytes),
 * QS_ERR_PIN, QS_ERR_PKCS11.
 */
int hsm_init_token(const char *module_path, const char *so_pin_source, const char *pin_source,
                   const char *label);

/* For tests: C_Finalize the module behind the pool's back, to simulate a
 * token restart. The next operation must recover. Not for production use;
 * call it only while no other thread uses a token on this module. */
void hsm_debug_finalize(hsm_token *t);

#endif
