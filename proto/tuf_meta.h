/*
 * tuf_meta.h - TUF metadata pieces both the daemon and its clients build or
 * check: key objects and keyids, signed envelopes, expiry timestamps, the
 * "targets" map. TUF specification 1.0.x, keys "ecdsa" /
 * "ecdsa-sha2-nistp256" with SPKI PEM public keys and hex-encoded DER
 * signatures, "ed25519" with hex public keys and hex raw signatures, and
 * "rsa"/"rsassa-pss-sha256" with PEM keys (the daemon's tokens only), over
 * the canonical JSON (proto/cjson.h) of "signed".
 */
#ifndef QS_TUF_META_H
#define QS_TUF_META_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define TUF_SPEC_VERSION "1.0.31"
/* "YYYY-MM-DDTHH:MM:SSZ" and its NUL. */
#define TUF_TIME_LEN 21
/* Targets per metadata file: a push or promote beyond that is a mistake. */
#define TUF_MAX_TARGETS 4096
/* Longest target path accepted (bytes). */
#define TUF_MAX_TARGET_PATH 255
/* Largest metadata file or request payload we build or parse. */
#define TUF_MAX_METADATA (1u * 1024 * 1024)

/* A new key object {"keytype":"ecdsa","scheme":"ecdsa-sha2-nistp256",
 * "keyval":{"public":pem}} (one reference), or NULL on allocation failure. */
json_t *tuf_key_ecdsa(const char *spki_pem);

/* keyid = lower-case hex SHA-256 of the canonical JSON of the key object.
 * Errors: as qs_cjson_encode. */
int tuf_keyid(const json_t *key, char out[65]);

/* The TUF key object of an SPKI PEM: "ecdsa"/"ecdsa-sha2-nistp256" with
 * the PEM for EC P-256, "ed25519"/"ed25519" with the hex public key for
 * Ed25519, "rsa"/"rsassa-pss-sha256" with the PEM for RSA (2048+ bits).
 * NULL for any other key (or no memory). */
json_t *tuf_key_from_pem(const char *pem);
/* Verify hex sig_hex over msg with a TUF key object (those three kinds).
 * 0, QS_ERR_BADSIG, QS_ERR_INVALID, QS_ERR_UNIMPLEMENTED (other kinds). */
int tuf_verify_key(const json_t *key, const uint8_t *msg, size_t len, const char *sig_hex);

/* An ECDSA P-256 or Ed25519 public key in PEM (SPKI, at most 4 KiB) re-encoded the
 * one way the daemon and the CLI write every key (PEM_write_bio_PUBKEY),
 * so that a key pasted into a policy gets the keyid its token gives it.
 * *out malloc'd. QS_ERR_INVALID (not PEM, neither EC P-256 nor Ed25519), QS_ERR_NOMEM. */
int tuf_pem_normalize(const char *pem, char **out);
/* keyid of the ecdsa key object of a (normalised) PEM. */
int tuf_keyid_pem(const char *spki_pem, char out[65]);

/* UTC time t as "YYYY-MM-DDTHH:MM:SSZ"; QS_ERR_INVALID if out of range. */
int tuf_time_format(int64_t t, char out[TUF_TIME_LEN]);
/* Strict parse of that exact format; QS_ERR_INVALID otherwise. */
int tuf_time_parse(const char *s, int64_t *t);

/* Canonical bytes of `signed` (*canon malloc'd) and their SHA-256. */
int tuf_signed_digest(const json_t *signed_part, char **canon, size_t *len, uint8_t dg[32]);

/* {"signatures":[],"signed":signed_part}; takes a reference to
 * signed_part. NULL on allocation failure. */
json_t *tuf_envelope_new(json_t *signed_part);
/* Append {"keyid":keyid,"sig":hex(der)}. QS_ERR_NOMEM. */
int tuf_envelope_add_sig(json_t *env, const char *keyid, const uint8_t *der, size_t der_len);

/*
 * Parse published metadata strictly: a JSON object of exactly "signatures"
 * (array of {keyid, sig} hex strings) and "signed" (object whose "_type" is
 * `type` when type is not NULL), no duplicate keys, at most
 * TUF_MAX_METADATA bytes. *out has one reference. QS_ERR_INVALID.
 */
int tuf_envelope_parse(const uint8_t *buf, size_t len, const char *type, json_t **out);

/* Verify one hex signature over msg with an SPKI PEM key: DER ECDSA P-256
 * over SHA-256(msg), Ed25519 over msg, or RSA-PSS-SHA256. 0, QS_ERR_BADSIG, or
 * QS_ERR_INVALID (bad PEM / hex / key type). */
int tuf_verify_ecdsa(const char *spki_pem, const uint8_t *msg, size_t len, const char *sig_hex);

/*
 * Check a TUF "targets" map: path -> {"length": int >= 0, "hashes":
 * {"sha256": 64 hex, ...}, "custom": object (optional)} and nothing else;
 * paths are 1..TUF_MAX_TARGET_PATH bytes of [A-Za-z0-9._+@-/], no leading
 * '/', no "." or ".." component, no "//"; at most TUF_MAX_TARGETS entries.
 * QS_ERR_INVALID with the offending path.
 */
int tuf_targets_check(const json_t *targets);

#endif
