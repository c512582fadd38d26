/*
 * note.h - C2SP signed notes (https://c2sp.org/signed-note) carrying
 * transparency log checkpoints (https://c2sp.org/tlog-checkpoint).
 *
 * A signed note is
 *
 *   <text, one or more lines, each ending in "\n">
 *   "\n"
 *   "— " <key name> " " base64(key ID (4 bytes, big-endian) || signature) "\n"
 *   ...                                   (U+2014 EM DASH, then a space)
 *
 * and a checkpoint's text is "<origin>\n<tree size>\n<base64 root hash>\n".
 * Base64 is the standard alphabet with padding (RFC 4648 section 4).
 *
 * Signature types we make and check (signed-note, "Signature types"):
 *   0x01 Ed25519: pure Ed25519 over the note text;
 *        key ID = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4].
 *   0x02 ECDSA P-256 (as github.com/transparency-dev/witness implements it):
 *        ASN.1 DER ECDSA signature over SHA-256(note text);
 *        key ID = SHA-256(DER SubjectPublicKeyInfo of the key)[:4] -- the
 *        spec says so explicitly for this type: neither the name nor the
 *        type byte is hashed.
 *
 * The private key never comes here: signing goes through a callback, so the
 * daemon can sign in its PKCS#11 token.
 */
#ifndef QS_NOTE_H
#define QS_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "merkle.h"
#include "qs_limits.h"

#define QS_NOTE_ED25519 0x01
#define QS_NOTE_ECDSA 0x02

/*
 * Sign msg (the whole note text) for the signer's type: Ed25519 over msg, or
 * ECDSA P-256 over SHA-256(msg) with a DER signature (the callback hashes).
 * On entry *sig_len is the capacity of sig (QS_MAX_NOTE_SIG); on success the
 * callback sets it to the signature length and returns 0, else a negative
 * QS_ERR_* code (with qs_fail detail).
 */
typedef int (*qs_note_sign_fn)(void *arg, const uint8_t *msg, size_t len, uint8_t *sig,
                               size_t *sig_len);

/* Who signs a note. Filled by qs_note_signer_init; the struct borrows the
 * name, the public key and arg, which must outlive it. */
struct qs_note_signer {
	const char *name; /* key name in signature lines */
	EVP_PKEY *pub;    /* public half; every signature is checked against it */
	uint8_t type;     /* QS_NOTE_ED25519 or QS_NOTE_ECDSA, from pub */
	uint32_t key_id;
	qs_note_sign_fn sign;
	void *arg;
};

/*
 * The signed-note key ID of pub (Ed25519 or EC P-256) under name, and the
 * signature type it implies (either out may be NULL).
 * Errors: QS_ERR_INVALID (bad name, other key type), QS_ERR_NOMEM.
 */
int qs_note_key_id(const char *name, EVP_PKEY *pub, uint8_t *type, uint32_t *key_id);

/*
 * Fill *s for signing as name with the key whose public half is pub, via
 * sign(arg, ...). Borrows all pointers. Errors: as qs_note_key_id.
 */
int qs_note_signer_init(struct qs_note_signer *s, const char *name, EVP_PKEY *pub,
                        qs_note_sign_fn sign, void *arg);

/*
 * A qs_note_sign_fn for an in-memory private key: arg is the EVP_PKEY
 * (Ed25519 or EC P-256). Used by tests and for file-held keys.
 */
int qs_note_sign_evp(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len);

/*
 * Sign text (a complete note text: valid, ending in "\n") and return the
 * signed note in *out (malloc'd, NUL-terminated; *out_len excludes the NUL).
 * The signature is verified with s->pub before it is returned, so a token
 * that signs wrongly cannot produce a checkpoint nobody can verify.
 * Errors: QS_ERR_INVALID (bad text), QS_ERR_NOMEM, QS_ERR_BADSIG (the
 * signature did not verify), or whatever the callback returned.
 */
int qs_note_sign(const struct qs_note_signer *s, const char *text, size_t text_len, char **out,
                 size_t *out_len);

/*
 * Parse a signed note strictly and verify it against one trusted key (name
 * + pub). Refused: more than QS_MAX_NOTE bytes, invalid UTF-8, control
 * characters other than "\n", no final newline, no blank line before the
 * signatures, a malformed signature line (no em dash, bad name, bad or
 * non-canonical base64, fewer than 5 bytes), more than QS_MAX_NOTE_SIGS
 * lines. Lines from other keys are ignored, as the spec requires; a line
 * from the trusted key (same name and key ID) that does not verify refuses
 * the note, and so does a note without a verified signature from it.
 * On success *text (malloc'd, NUL-terminated) is the note text including its
 * final newline, *text_len its length.
 * Errors: QS_ERR_INVALID (malformed), QS_ERR_BADSIG (no valid signature from
 * the key), QS_ERR_NOMEM.
 */
int qs_note_open(const char *note, size_t len, const char *name, EVP_PKEY *pub, char **text,
                 size_t *text_len);

/* A checkpoint body (tlog-checkpoint). */
struct qs_checkpoint {
	char origin[QS_MAX_ORIGIN + 1];
	uint64_t size;
	qs_hash root;
};

/*
 * Checkpoint text "<origin>\n<size>\n<base64 root>\n" in *out (malloc'd,
 * NUL-terminated). origin: 1..QS_MAX_ORIGIN bytes of printable ASCII
 * without spaces or '+'. Errors: QS_ERR_INVALID, QS_ERR_NOMEM.
 */
int qs_checkpoint_text(const char *origin, uint64_t size, const qs_hash root, char **out,
                       size_t *out_len);

/*
 * Parse a checkpoint text (as returned by qs_note_open): origin line, tree
 * size in decimal without leading zeros, canonical base64 of exactly 32
 * bytes; extension lines are refused (we never write them and the spec does
 * not recommend them). If origin is not NULL the origin line must equal it.
 * Errors: QS_ERR_INVALID.
 */
int qs_checkpoint_parse(const char *text, size_t len, const char *origin,
                        struct qs_checkpoint *out);

#endif
