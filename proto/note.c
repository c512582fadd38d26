#include "note.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

/* "— " : U+2014 EM DASH in UTF-8, then a space */
static const char sig_prefix[] = "\xe2\x80\x94 ";
#define SIG_PREFIX_LEN 4

/* DER SubjectPublicKeyInfo header of an uncompressed P-256 point
 * (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes). */
static const uint8_t p256_spki_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
#define P256_SPKI_LEN 91

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out must hold 4 * ceil(n / 3) + 1. */
static size_t
b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static int
b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict decode: length a multiple of 4, standard alphabet, '=' only as the
 * last one or two characters, unused bits zero (so every byte string has
 * exactly one accepted encoding). out must hold 3 * n / 4 bytes.
 */
static int
b64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
	size_t o = 0, pad = 0;

	*out_len = 0;
	if (n == 0 || n % 4 != 0)
		return qs_fail(QS_ERR_INVALID, "base64 length %zu is not a multiple of 4", n);
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int last = i + 4 == n;
		for (int j = 0; j < 4; j++) {
			if (last && j >= 4 - (int)pad)
				v[j] = 0;
			else if ((v[j] = b64_val(in[i + j])) < 0)
				return qs_fail(QS_ERR_INVALID, "bad base64 character");
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		out[o++] = (uint8_t)(w >> 16);
		if (!last || pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (!last || pad < 1)
			out[o++] = (uint8_t)w;
		if (last && ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))))
			return qs_fail(QS_ERR_INVALID, "non-canonical base64 (padding bits set)");
	}
	*out_len = o;
	return 0;
}

/*
 * Valid UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) without control characters other than "\n" (signed-note,
 * "Format"). DEL is refused too: it has no business in a note.
 */
static int
text_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		uint32_t cp;
		size_t k;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\n') || c == 0x7f)
				return qs_fail(QS_ERR_INVALID, "control character 0x%02x at %zu", c,
				               i);
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return qs_fail(QS_ERR_INVALID, "invalid UTF-8 at %zu", i);
		}
		if (n - i <= k)
			return qs_fail(QS_ERR_INVALID, "truncated UTF-8 at %zu", i);
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return qs_fail(QS_ERR_INVALID, "invalid UTF-8 at %zu", i);
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return qs_fail(QS_ERR_INVALID, "invalid UTF-8 at %zu", i);
		i += k + 1;
	}
	return 0;
}

/* Names and origins we produce: printable ASCII, no space, no '+'. */
static int
name_valid(const char *s)
{
	size_t n;

	if (s == NULL || (n = strnlen(s, QS_MAX_ORIGIN + 1)) == 0 || n > QS_MAX_ORIGIN)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '+')
			return 0;
	return 1;
}

int
qs_note_key_id(const char *name, EVP_PKEY *pub, uint8_t *type, uint32_t *key_id)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *dup = NULL;
	uint8_t raw[P256_SPKI_LEN + 1], h[32], t;
	unsigned char *p = raw;
	const char *alg;
	size_t rawlen = 0;
	unsigned int hl = 0;
	int n, r;

	if (type != NULL)
		*type = 0;
	if (key_id != NULL)
		*key_id = 0;
	if (!name_valid(name))
		return qs_fail(QS_ERR_INVALID, "invalid note key name");
	if ((alg = qs_pubkey_alg(pub)) == NULL)
		return qs_fail(QS_ERR_INVALID, "note keys must be Ed25519 or ECDSA P-256");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (strcmp(alg, "ed25519") == 0) {
		t = QS_NOTE_ED25519;
		rawlen = 32;
		if (EVP_PKEY_get_raw_public_key(pub, raw, &rawlen) != 1 || rawlen != 32) {
			r = qs_fail(QS_ERR_INVALID, "cannot read the Ed25519 public key");
			goto out;
		}
		/* SHA-256(name || 0x0A || 0x01 || key) -- signed-note, "Ed25519 signatures" */
		if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
		    EVP_DigestUpdate(ctx, "\n", 1) != 1 || EVP_DigestUpdate(ctx, &t, 1) != 1 ||
		    EVP_DigestUpdate(ctx, raw, rawlen) != 1 ||
		    EVP_DigestFinal_ex(ctx, h, &hl) != 1) {
			r = qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
			goto out;
		}
	} else {
		t = QS_NOTE_ECDSA;
		/* The point format is a property of the loaded key; the key ID
		 * is defined over the usual (uncompressed) SPKI encoding. */
		if ((dup = EVP_PKEY_dup(pub)) == NULL ||
		    EVP_PKEY_set_utf8_string_param(dup, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
		                                   "uncompressed") != 1 ||
		    (n = i2d_PUBKEY(dup, NULL)) != P256_SPKI_LEN ||
		    i2d_PUBKEY(dup, &p) != P256_SPKI_LEN ||
		    memcmp(raw, p256_spki_prefix, sizeof(p256_spki_prefix)) != 0) {
			r = qs_fail(QS_ERR_INVALID, "cannot encode the P-256 public key as SPKI");
			goto out;
		}
		/* SHA-256(DER SPKI) -- signed-note, "Signature types", 0x02: the
		 * key ID is the truncated hash of the DER SPKI alone. */
		if (EVP_Digest(raw, P256_SPKI_LEN, h, &hl, EVP_sha256(), NULL) != 1) {
			r = qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
			goto out;
		}
	}
	if (type != NULL)
		*type = t;
	if (key_id != NULL)
		*key_id = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	r = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(dup);
	EVP_MD_CTX_free(ctx);
	return r;
}

int
qs_note_signer_init(struct qs_note_signer *s, const char *name, EVP_PKEY *pub, qs_note_sign_fn sign,
                    void *arg)
{
	int r;

	memset(s, 0, sizeof(*s));
	if (sign == NULL)
		return qs_fail(QS_ERR_INVALID, "no signing function");
	if ((r = qs_note_key_id(name, pub, &s->type, &s->key_id)) != 0)
		return r;
	s->name = name;
	s->pub = pub;
	s->sign = sign;
	s->arg = arg;
	return 0;
}

int
qs_note_sign_evp(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	uint8_t buf[QS_MAX_PRINCIPAL_SIG];
	size_t n = 0;
	int r;

	/* Same algorithms as principal signatures: pure Ed25519, or ECDSA
	 * with SHA-256 and a DER signature. */
	if ((r = qs_sig_sign((EVP_PKEY *)arg, msg, len, buf, &n)) != 0)
		return r;
	if (n > *sig_len)
		return qs_fail(QS_ERR_INTERNAL, "signature buffer too small");
	memcpy(sig, buf, n);
	*sig_len = n;
	return 0;
}

static int
note_text_valid(const char *text, size_t len)
{
	int r;

	if (len == 0 || text[len - 1] != '\n')
		return qs_fail(QS_ERR_INVALID, "note text must end with a newline");
	if (len > QS_MAX_NOTE)
		return qs_fail(QS_ERR_INVALID, "note text too long");
	if ((r = text_valid((const uint8_t *)text, len)) != 0)
		return r;
	return 0;
}

int
qs_note_sign(const struct qs_note_signer *s, const char *text, size_t text_len, char **out,
             size_t *out_len)
{
	uint8_t sig[4 + QS_MAX_NOTE_SIG];
	size_t sig_len = QS_MAX_NOTE_SIG, cap, n;
	char *buf = NULL;
	int r;

	*out = NULL;
	*out_len = 0;
	if ((r = note_text_valid(text, text_len)) != 0)
		return r;
	if ((r = s->sign(s->arg, (const uint8_t *)text, text_len, sig + 4, &sig_len)) != 0)
		return qs_wrap(r, "signing note");
	if (sig_len == 0 || sig_len > QS_MAX_NOTE_SIG)
		return qs_fail(QS_ERR_INTERNAL, "signer returned %zu bytes", sig_len);
	if ((r = qs_sig_verify(s->pub, (const uint8_t *)text, text_len, sig + 4, sig_len)) != 0)
		return qs_fail(QS_ERR_BADSIG,
		               "note signature by %s does not verify with its "
		               "public key",
		               s->name);
	sig[0] = (uint8_t)(s->key_id >> 24);
	sig[1] = (uint8_t)(s->key_id >> 16);
	sig[2] = (uint8_t)(s->key_id >> 8);
	sig[3] = (uint8_t)s->key_id;
	cap = text_len + 1 + SIG_PREFIX_LEN + strlen(s->name) + 1 + 4 * ((sig_len + 4 + 2) / 3) + 2;
	if ((buf = malloc(cap)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(buf, text, text_len);
	n = text_len;
	buf[n++] = '\n';
	memcpy(buf + n, sig_prefix, SIG_PREFIX_LEN);
	n += SIG_PREFIX_LEN;
	memcpy(buf + n, s->name, strlen(s->name));
	n += strlen(s->name);
	buf[n++] = ' ';
	n += b64_encode(sig, sig_len + 4, buf + n);
	buf[n++] = '\n';
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return 0;
}

int
qs_note_open(const char *note, size_t len, const char *name, EVP_PKEY *pub, char **text,
             size_t *text_len)
{
	const uint8_t *u = (const uint8_t *)note;
	uint8_t *dec = NULL;
	char *t = NULL;
	size_t tlen = 0, pos, nsig = 0, dlen;
	uint8_t type;
	uint32_t key_id;
	int verified = 0, r;

	*text = NULL;
	*text_len = 0;
	if ((r = qs_note_key_id(name, pub, &type, &key_id)) != 0)
		return r;
	if (len > QS_MAX_NOTE)
		return qs_fail(QS_ERR_INVALID, "note larger than %u bytes", QS_MAX_NOTE);
	if (len < 2 || note[len - 1] != '\n')
		return qs_fail(QS_ERR_INVALID, "note must end with a newline");
	if ((r = text_valid(u, len)) != 0)
		return qs_wrap(r, "note");
	/* The text ends at the last empty line. */
	for (pos = len - 1; pos > 0; pos--)
		if (note[pos - 1] == '\n' && note[pos] == '\n')
			break;
	if (pos == 0)
		return qs_fail(QS_ERR_INVALID, "note has no signatures (no blank line)");
	tlen = pos; /* note[0..pos) ends with the text's final newline */
	pos++;
	if (pos >= len)
		return qs_fail(QS_ERR_INVALID, "note has no signature lines");
	if ((dec = malloc(len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	while (pos < len) {
		const char *line = note + pos, *nl = memchr(line, '\n', len - pos), *sp;
		size_t ll = (size_t)(nl - line), nlen;

		if (++nsig > QS_MAX_NOTE_SIGS) {
			r = qs_fail(QS_ERR_INVALID, "more than %d signatures", QS_MAX_NOTE_SIGS);
			goto out;
		}
		if (ll < SIG_PREFIX_LEN || memcmp(line, sig_prefix, SIG_PREFIX_LEN) != 0) {
			r = qs_fail(QS_ERR_INVALID,
			            "signature line %zu does not start with an "
			            "em dash and a space",
			            nsig);
			goto out;
		}
		sp = memchr(line + SIG_PREFIX_LEN, ' ', ll - SIG_PREFIX_LEN);
		nlen = sp ? (size_t)(sp - line) - SIG_PREFIX_LEN : 0;
		if (sp == NULL || nlen == 0 || memchr(line + SIG_PREFIX_LEN, '+', nlen) != NULL) {
			r = qs_fail(QS_ERR_INVALID, "signature line %zu: bad key name", nsig);
			goto out;
		}
		if ((r = b64_decode(sp + 1, (size_t)(nl - sp - 1), dec, &dlen)) != 0) {
			qs_wrap(r, "signature line %zu", nsig);
			goto out;
		}
		if (dlen < 5) {
			r = qs_fail(QS_ERR_INVALID, "signature line %zu: too short", nsig);
			goto out;
		}
		if (nlen == strlen(name) && memcmp(line + SIG_PREFIX_LEN, name, nlen) == 0 &&
		    ((uint32_t)dec[0] << 24 | (uint32_t)dec[1] << 16 | (uint32_t)dec[2] << 8 |
		     dec[3]) == key_id) {
			/* Ours: it must verify, else the whole note is refused. */
			if (qs_sig_verify(pub, u, tlen, dec + 4, dlen - 4) != 0) {
				r = qs_fail(QS_ERR_BADSIG, "note signature by %s does not verify",
				            name);
				goto out;
			}
			verified = 1;
		}
		pos += ll + 1;
	}
	if (!verified) {
		r = qs_fail(QS_ERR_BADSIG, "note has no signature by key %s (id %08x)", name,
		            key_id);
		goto out;
	}
	if ((t = malloc(tlen + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(t, note, tlen);
	t[tlen] = '\0';
	*text = t;
	*text_len = tlen;
	t = NULL;
	r = 0;
out:
	free(dec);
	free(t);
	return r;
}

int
qs_checkpoint_text(const char *origin, uint64_t size, const qs_hash root, char **out,
                   size_t *out_len)
{
	char b64[45];
	int n;

	*out = NULL;
	*out_len = 0;
	if (!name_valid(origin))
		return qs_fail(QS_ERR_INVALID, "invalid checkpoint origin");
	b64_encode(root, QS_MERKLE_HASH_LEN, b64);
	if ((n = asprintf(out, "%s\n%llu\n%s\n", origin, (unsigned long long)size, b64)) < 0) {
		*out = NULL;
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	*out_len = (size_t)n;
	return 0;
}

int
qs_checkpoint_parse(const char *text, size_t len, const char *origin, struct qs_checkpoint *out)
{
	const char *line[3], *end = text + len;
	size_t ll[3], dlen = 0;
	uint8_t root[33];
	uint64_t size = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > QS_MAX_NOTE || len == 0 || text[len - 1] != '\n')
		return qs_fail(QS_ERR_INVALID, "checkpoint must end with a newline");
	if ((r = text_valid((const uint8_t *)text, len)) != 0)
		return qs_wrap(r, "checkpoint");
	for (int i = 0; i < 3; i++) {
		const char *nl;
		line[i] = text;
		if (text >= end || (nl = memchr(text, '\n', (size_t)(end - text))) == NULL)
			return qs_fail(QS_ERR_INVALID, "checkpoint has fewer than 3 lines");
		ll[i] = (size_t)(nl - text);
		text = nl + 1;
	}
	if (text != end)
		return qs_fail(QS_ERR_INVALID, "checkpoint has extension lines");
	if (ll[0] == 0 || ll[0] > QS_MAX_ORIGIN)
		return qs_fail(QS_ERR_INVALID, "checkpoint origin empty or too long");
	if (origin != NULL && (strlen(origin) != ll[0] || memcmp(origin, line[0], ll[0]) != 0))
		return qs_fail(QS_ERR_INVALID, "checkpoint is for another log (origin differs)");
	if (ll[1] == 0 || ll[1] > 20 || (line[1][0] == '0' && ll[1] > 1))
		return qs_fail(QS_ERR_INVALID, "bad checkpoint tree size");
	for (size_t i = 0; i < ll[1]; i++) {
		unsigned d = (unsigned)(line[1][i] - '0');
		if (d > 9 || size > (UINT64_MAX - d) / 10)
			return qs_fail(QS_ERR_INVALID, "bad checkpoint tree size");
		size = size * 10 + d;
	}
	if (ll[2] != 44 || b64_decode(line[2], ll[2], root, &dlen) != 0 || dlen != 32)
		return qs_fail(QS_ERR_INVALID, "bad checkpoint root hash");
	memcpy(out->origin, line[0], ll[0]);
	out->origin[ll[0]] = '\0';
	out->size = size;
	memcpy(out->root, root, QS_MERKLE_HASH_LEN);
	return 0;
}
