#include "statement.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include "qs_err.h"
#include "qs_limits.h"

int
qs_name_valid(const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == ':' || c == '+' || c == '-'))
			return 0;
	}
	return 1;
}

void
qs_hex_into(const uint8_t *buf, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[len * 2] = '\0';
}

char *
qs_hex(const uint8_t *buf, size_t len)
{
	char *s = malloc(len * 2 + 1);

	if (s != NULL)
		qs_hex_into(buf, len, s);
	return s;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
qs_unhex(const char *s, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t n = strlen(s);

	*out_len = 0;
	if (n % 2 != 0)
		return qs_fail(QS_ERR_INVALID, "hex string has odd length %zu", n);
	if (n / 2 > cap)
		return qs_fail(QS_ERR_INVALID, "hex string too long (%zu bytes, max %zu)", n / 2,
		               cap);
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return qs_fail(QS_ERR_INVALID, "not a hex digit at offset %zu", i);
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	*out_len = n / 2;
	return 0;
}

void
qs_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
	SHA256(in, len, out);
}

/* The hashes a signature may use, in the order of their QS_HASH_* bits. */
static const struct {
	const char *name;
	size_t len;
} hashes[] = {{"sha256", 32}, {"sha384", 48}, {"sha512", 64}};
#define NHASHES (sizeof(hashes) / sizeof(hashes[0]))

const char *
qs_hash_lookup(const char *name, size_t *len, const EVP_MD **md)
{
	if (name == NULL || name[0] == '\0')
		name = "sha256";
	for (size_t i = 0; i < NHASHES; i++) {
		if (strcmp(name, hashes[i].name) != 0)
			continue;
		if (len != NULL)
			*len = hashes[i].len;
		if (md != NULL)
			*md = EVP_get_digestbyname(hashes[i].name);
		return hashes[i].name;
	}
	return NULL;
}

unsigned
qs_hash_bit(const char *name)
{
	const char *c = qs_hash_lookup(name, NULL, NULL);

	for (size_t i = 0; c != NULL && i < NHASHES; i++)
		if (hashes[i].name == c)
			return 1u << i;
	return 0;
}

const char *
qs_hash_of_len(size_t len)
{
	for (size_t i = 0; i < NHASHES; i++)
		if (hashes[i].len == len)
			return hashes[i].name;
	return NULL;
}

size_t
qs_hash_names(unsigned set, const char **names, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < NHASHES && n < cap; i++)
		if (set & (1u << i))
			names[n++] = hashes[i].name;
	return n;
}

void
qs_hash_list(unsigned set, char *buf, size_t cap)
{
	const char *names[NHASHES];
	size_t n = qs_hash_names(set, names, NHASHES), off = 0;

	if (cap > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < n && off < cap; i++) {
		int w = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", names[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

int
qs_request_digest(const char *hash, int digest, const uint8_t *payload, size_t len, uint8_t *dg,
                  size_t *dg_len)
{
	const EVP_MD *md = NULL;
	const char *h;
	unsigned int n = 0;
	size_t want = 0;

	*dg_len = 0;
	if ((h = qs_hash_lookup(hash, &want, &md)) == NULL || md == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown signature hash");
	if (digest) {
		if (len != want)
			return qs_fail(QS_ERR_INVALID,
			               "a digest payload is a %zu-byte %s digest, got %zu bytes",
			               want, h, len);
		memcpy(dg, payload, len);
	} else if (EVP_Digest(payload, len, dg, &n, md, NULL) != 1 || n != want) {
		ERR_clear_error();
		return qs_fail(QS_ERR_CRYPTO, "%s of the payload", h);
	}
	*dg_len = want;
	return 0;
}

int
qs_stmt_auth(const char *server_identity, const char *principal, const uint8_t *challenge,
             size_t challenge_len, uint8_t **out, size_t *out_len)
{
	char *hex = NULL, *buf = NULL;
	size_t cap;
	int n, r = QS_ERR_INTERNAL;

	*out = NULL;
	*out_len = 0;
	if (!qs_name_valid(server_identity, QS_MAX_IDENTITY))
		return qs_fail(QS_ERR_INVALID, "invalid server identity");
	if (!qs_name_valid(principal, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid principal name");
	if (challenge_len != QS_CHALLENGE_LEN)
		return qs_fail(QS_ERR_INVALID, "challenge must be %d bytes", QS_CHALLENGE_LEN);
	if ((hex = qs_hex(challenge, challenge_len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	cap = sizeof(QS_STMT_AUTH_CONTEXT) + strlen(server_identity) + strlen(principal) +
	      strlen(hex) + 64;
	if ((buf = malloc(cap)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	n = snprintf(buf, cap, "%s\nserver %s\nprincipal %s\nchallenge %s\n", QS_STMT_AUTH_CONTEXT,
	             server_identity, principal, hex);
	if (n < 0 || (size_t)n >= cap) {
		r = qs_fail(QS_ERR_INTERNAL, "statement overflow");
		goto out;
	}
	*out = (uint8_t *)buf;
	*out_len = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(hex);
	free(buf);
	return r;
}

int
qs_stmt_server(const char *server_identity, const uint8_t *challenge, size_t challenge_len,
               const uint8_t *client_nonce, size_t nonce_len, uint8_t **out, size_t *out_len)
{
	char *ch = NULL, *nn = NULL, *buf = NULL;
	size_t cap;
	int n, r = QS_ERR_INTERNAL;

	*out = NULL;
	*out_len = 0;
	if (!qs_name_valid(server_identity, QS_MAX_IDENTITY))
		return qs_fail(QS_ERR_INVALID, "invalid server identity");
	if (challenge_len != QS_CHALLENGE_LEN || nonce_len != QS_CHALLENGE_LEN)
		return qs_fail(QS_ERR_INVALID, "challenge and client nonce must be %d bytes",
		               QS_CHALLENGE_LEN);
	if ((ch = qs_hex(challenge, challenge_len)) == NULL ||
	    (nn = qs_hex(client_nonce, nonce_len)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	cap = sizeof(QS_STMT_SERVER_CONTEXT) + strlen(server_identity) + strlen(ch) + strlen(nn) +
	      64;
	if ((buf = malloc(cap)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	n = snprintf(buf, cap, "%s\nserver %s\nchallenge %s\nclient-nonce %s\n",
	             QS_STMT_SERVER_CONTEXT, server_identity, ch, nn);
	if (n < 0 || (size_t)n >= cap) {
		r = qs_fail(QS_ERR_INTERNAL, "statement overflow");
		goto out;
	}
	*out = (uint8_t *)buf;
	*out_len = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(ch);
	free(nn);
	free(buf);
	return r;
}

int
qs_key_fingerprint(const uint8_t *spki_der, size_t len, char *out, size_t cap)
{
	uint8_t dg[32];
	unsigned char b64[64];
	int n;

	if (cap < QS_FINGERPRINT_MAX)
		return qs_fail(QS_ERR_INTERNAL, "fingerprint buffer too small");
	qs_sha256(spki_der, len, dg);
	n = EVP_EncodeBlock(b64, dg, 32);
	while (n > 0 && b64[n - 1] == '=') /* unpadded, as OpenSSH prints it */
		n--;
	snprintf(out, cap, "SHA256:%.*s", n, (const char *)b64);
	return 0;
}

int
qs_pubkey_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
	BIO *bio = NULL;
	EVP_PKEY *pk = NULL;
	int r = QS_ERR_INVALID;

	*out = NULL;
	if (len > 16384)
		return qs_fail(QS_ERR_INVALID, "public key PEM too large");
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	ERR_clear_error();
	if (pk == NULL) {
		r = qs_fail(QS_ERR_INVALID, "not a PEM public key (SubjectPublicKeyInfo)");
		goto out;
	}
	if (qs_pubkey_alg(pk) == NULL) {
		r = qs_fail(QS_ERR_INVALID, "principal keys must be Ed25519 or ECDSA P-256");
		goto out;
	}
	*out = pk;
	pk = NULL;
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return r;
}

const char *
qs_pubkey_alg(EVP_PKEY *pk)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_is_a(pk, "ED25519"))
		return "ed25519";
	if (EVP_PKEY_is_a(pk, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), &glen) == 1 &&
	    strcmp(group, "prime256v1") == 0)
		return "ecdsa-p256";
	ERR_clear_error();
	return NULL;
}

int
qs_sig_verify(EVP_PKEY *pk, const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = NULL;
	const char *alg = qs_pubkey_alg(pk);
	int ok = 0;

	if (alg == NULL || sig_len == 0 || sig_len > QS_MAX_PRINCIPAL_SIG)
		return qs_fail(QS_ERR_BADSIG, "bad signature");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (strcmp(alg, "ed25519") == 0) {
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1 &&
		     EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? 0 : qs_fail(QS_ERR_BADSIG, "signature does not verify");
}

int
qs_sig_sign(EVP_PKEY *priv, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	EVP_MD_CTX *ctx = NULL;
	const char *alg = qs_pubkey_alg(priv);
	size_t n = QS_MAX_PRINCIPAL_SIG;
	int ok;

	*sig_len = 0;
	if (alg == NULL)
		return qs_fail(QS_ERR_INVALID, "principal keys must be Ed25519 or ECDSA P-256");
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	ok = EVP_DigestSignInit(ctx, NULL, strcmp(alg, "ed25519") == 0 ? NULL : EVP_sha256(), NULL,
	                        priv) == 1 &&
	     EVP_DigestSign(ctx, sig, &n, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		unsigned long e = ERR_get_error();
		ERR_clear_error();
		return qs_fail(QS_ERR_CRYPTO, "signing failed: %s", ERR_reason_error_string(e));
	}
	*sig_len = n;
	return 0;
}

int
qs_rolesig_verify(EVP_PKEY *pk, int rsa_pkcs1, const uint8_t *digest32, const uint8_t *blob,
                  size_t blob_len, const uint8_t *sig, size_t sig_len)
{
	return qs_rolesig_verify_hash(pk, rsa_pkcs1, "sha256", digest32, 32, blob, blob_len, sig,
	                              sig_len);
}

int
qs_rolesig_verify_hash(EVP_PKEY *pk, int rsa_pkcs1, const char *hash, const uint8_t *digest,
                       size_t digest_len, const uint8_t *blob, size_t blob_len, const uint8_t *sig,
                       size_t sig_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	const EVP_MD *md = NULL;
	size_t want = 0;
	int ok = 0;

	if (qs_hash_lookup(hash, &want, &md) == NULL || md == NULL || digest_len != want)
		return qs_fail(QS_ERR_INVALID, "no %zu-byte digest of a known hash", digest_len);

	if (EVP_PKEY_is_a(pk, "ED25519")) {
		if (blob == NULL)
			return qs_fail(QS_ERR_INVALID, "Ed25519 signs the message, not a digest");
		if ((mctx = EVP_MD_CTX_new()) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		ok = EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mctx, sig, sig_len, blob, blob_len) == 1;
		EVP_MD_CTX_free(mctx);
	} else {
		if ((pctx = EVP_PKEY_CTX_new(pk, NULL)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		/* PSS: salt of the digest's length, MGF1 with its hash (as the
		 * daemon signs). */
		ok = EVP_PKEY_verify_init(pctx) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(pctx, md) == 1;
		if (ok && EVP_PKEY_is_a(pk, "RSA") && rsa_pkcs1)
			ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
		else if (ok && EVP_PKEY_is_a(pk, "RSA"))
			ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)digest_len) == 1 &&
			     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
		ok = ok && EVP_PKEY_verify(pctx, sig, sig_len, digest, digest_len) == 1;
		EVP_PKEY_CTX_free(pctx);
	}
	ERR_clear_error();
	return ok ? 0 : qs_fail(QS_ERR_BADSIG, "signature does not verify");
}

int
qs_stmt_approval(const char *server_identity, const char *request_id, const char *role,
                 const char *kind, const uint8_t digest[32], int approve, int64_t time,
                 uint8_t **out, size_t *out_len)
{
	return qs_stmt_approval_hash(server_identity, request_id, role, kind, digest, NULL, approve,
	                             time, out, out_len);
}

int
qs_stmt_approval_hash(const char *server_identity, const char *request_id, const char *role,
                      const char *kind, const uint8_t digest[32], const char *sig_hash, int approve,
                      int64_t time, uint8_t **out, size_t *out_len)
{
	char *hex = NULL, *buf = NULL, hline[32] = "";
	const char *h;
	int n;

	*out = NULL;
	*out_len = 0;
	if (!qs_name_valid(server_identity, QS_MAX_IDENTITY) ||
	    !qs_name_valid(request_id, QS_MAX_NAME) || !qs_name_valid(role, QS_MAX_NAME) ||
	    !qs_name_valid(kind, QS_MAX_NAME))
		return qs_fail(QS_ERR_INVALID, "invalid name in approval statement");
	if ((h = qs_hash_lookup(sig_hash, NULL, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown signature hash in approval statement");
	if (time < 0)
		return qs_fail(QS_ERR_INVALID, "approval time before 1970");
	/* SHA-256 signatures keep the statement they always had (votes in
	 * existing logs still verify); any other hash adds its line. */
	if (strcmp(h, "sha256") != 0)
		snprintf(hline, sizeof(hline), "signature-hash %s\n", h);
	if ((hex = qs_hex(digest, 32)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	n = asprintf(&buf,
	             "%s\nserver %s\nrequest %s\nrole %s\nkind %s\npayload-sha256 %s\n"
	             "%sdecision %s\ntime %lld\n",
	             QS_STMT_APPROVAL_CONTEXT, server_identity, request_id, role, kind, hex, hline,
	             approve ? "approve" : "reject", (long long)time);
	free(hex);
	if (n < 0)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*out = (uint8_t *)buf;
	*out_len = (size_t)n;
	return 0;
}
