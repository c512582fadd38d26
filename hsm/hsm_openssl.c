/*
 * hsm_openssl.c - the OpenSSL side of the token layer: public keys built
 * from PKCS#11 attributes, SubjectPublicKeyInfo encoding, and the ECDSA
 * raw r||s to DER conversion.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm_internal.h"
#include "qs_err.h"

#define P256_POINT_LEN 65 /* 0x04 || X || Y */
#define P384_POINT_LEN 97
#define ED25519_KEY_LEN 32
#define RSA3072_LEN 384

int
hsm_ossl_fail(const char *what)
{
	char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, sizeof(buf), "no OpenSSL error");
	else
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return qs_fail(QS_ERR_CRYPTO, "%s: %s", what, buf);
}

/*
 * CKA_EC_POINT is, per PKCS#11, a DER OCTET STRING around the point
 * (SoftHSM); some tokens (older tpm2-pkcs11) return the bare point. Accept
 * exactly those two shapes: anything else is refused, not guessed at.
 */
static int
unwrap_point(const uint8_t *a, size_t a_len, size_t want, uint8_t first, const uint8_t **p)
{
	*p = NULL;
	if (a_len == want && (first == 0 || a[0] == first)) {
		*p = a;
		return 0;
	}
	/* want < 128, so the DER length is a single byte */
	if (a_len == want + 2 && a[0] == 0x04 && a[1] == want && (first == 0 || a[2] == first)) {
		*p = a + 2;
		return 0;
	}
	return qs_fail(QS_ERR_INVALID, "CKA_EC_POINT: unexpected encoding (%zu bytes)", a_len);
}

/* A NIST curve public key: group is OpenSSL's name, point_len the
 * uncompressed point's length. */
static int
pkey_ec(const uint8_t *a, size_t a_len, const char *group, size_t point_len, EVP_PKEY **out)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	const uint8_t *pt;
	OSSL_PARAM params[3];
	int r;

	if ((r = unwrap_point(a, a_len, point_len, 0x04, &pt)) != 0)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] =
	        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, point_len);
	params[2] = OSSL_PARAM_construct_end();
	/* fromdata decodes the point with EC_POINT_oct2point, which rejects a
	 * point that is not on the curve. */
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		r = hsm_ossl_fail("EC public key from CKA_EC_POINT");
		goto out;
	}
	*out = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

static int
pkey_ed25519(const uint8_t *a, size_t a_len, EVP_PKEY **out)
{
	const uint8_t *pt;
	EVP_PKEY *pkey;
	int r;

	if ((r = unwrap_point(a, a_len, ED25519_KEY_LEN, 0, &pt)) != 0)
		return r;
	if ((pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt, ED25519_KEY_LEN)) ==
	    NULL)
		return hsm_ossl_fail("Ed25519 public key from CKA_EC_POINT");
	*out = pkey;
	return 0;
}

static int
pkey_rsa(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, size_t want_bits,
         EVP_PKEY **out)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	int r;

	if (e_len == 0 || e_len > 8) {
		r = qs_fail(QS_ERR_INVALID, "CKA_PUBLIC_EXPONENT: %zu bytes", e_len);
		goto out;
	}
	if ((bn_n = BN_bin2bn(n, (int)n_len, NULL)) == NULL ||
	    (bn_e = BN_bin2bn(e, (int)e_len, NULL)) == NULL) {
		r = hsm_ossl_fail("RSA public key numbers");
		goto out;
	}
	if ((size_t)BN_num_bits(bn_n) != want_bits) {
		r = qs_fail(QS_ERR_INVALID, "RSA modulus has %d bits, want %zu", BN_num_bits(bn_n),
		            want_bits);
		goto out;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
		r = hsm_ossl_fail("RSA public key from CKA_MODULUS");
		goto out;
	}
	*out = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	return r;
}

int
hsm_pkey_from_attrs(enum hsm_keytype type, const uint8_t *a, size_t a_len, const uint8_t *b,
                    size_t b_len, EVP_PKEY **out)
{
	*out = NULL;
	switch (type) {
	case HSM_KEY_EC_P256:
		return pkey_ec(a, a_len, "prime256v1", P256_POINT_LEN, out);
	case HSM_KEY_EC_P384:
		return pkey_ec(a, a_len, "secp384r1", P384_POINT_LEN, out);
	case HSM_KEY_ED25519:
		return pkey_ed25519(a, a_len, out);
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA3072_PKCS1:
		return pkey_rsa(a, a_len, b, b_len, RSA3072_LEN * 8, out);
	case HSM_KEY_RSA2048_PKCS1:
		return pkey_rsa(a, a_len, b, b_len, 2048, out);
	case HSM_KEY_RSA4096_PKCS1:
		return pkey_rsa(a, a_len, b, b_len, 4096, out);
	case HSM_KEY_NONE:
		break;
	}
	return qs_fail(QS_ERR_UNIMPLEMENTED, "unsupported key type %d", (int)type);
}

int
hsm_pkey_spki_der(EVP_PKEY *pkey, uint8_t **der, size_t *der_len)
{
	uint8_t *buf = NULL, *p;
	int n, r;

	*der = NULL;
	*der_len = 0;
	if ((n = i2d_PUBKEY(pkey, NULL)) <= 0) {
		r = hsm_ossl_fail("i2d_PUBKEY");
		goto out;
	}
	if ((buf = malloc((size_t)n)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "SPKI buffer");
		goto out;
	}
	p = buf;
	if (i2d_PUBKEY(pkey, &p) != n) {
		r = hsm_ossl_fail("i2d_PUBKEY");
		goto out;
	}
	*der = buf;
	*der_len = (size_t)n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

int
hsm_pkey_spki_pem(EVP_PKEY *pkey, char **pem)
{
	BIO *bio = NULL;
	char *data, *s = NULL;
	long n;
	int r;

	*pem = NULL;
	if ((bio = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_PUBKEY(bio, pkey)) {
		r = hsm_ossl_fail("PEM_write_bio_PUBKEY");
		goto out;
	}
	if ((n = BIO_get_mem_data(bio, &data)) <= 0) {
		r = hsm_ossl_fail("PEM buffer");
		goto out;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "PEM buffer");
		goto out;
	}
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	*pem = s;
	s = NULL;
	r = 0;
out:
	free(s);
	BIO_free(bio);
	return r;
}

int
hsm_ecdsa_raw_to_der(const uint8_t *raw, size_t raw_len, uint8_t *der, size_t *der_len)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *bn_r = NULL, *bn_s = NULL;
	unsigned char *p;
	size_t half;
	int n, r;

	*der_len = 0;
	/* P-521 is the largest curve with 66-byte scalars */
	if (raw == NULL || der == NULL || raw_len == 0 || raw_len % 2 != 0 || raw_len > 2 * 66) {
		r = qs_fail(QS_ERR_INVALID, "raw ECDSA signature: bad length %zu", raw_len);
		goto out;
	}
	half = raw_len / 2;
	if ((sig = ECDSA_SIG_new()) == NULL || (bn_r = BN_bin2bn(raw, (int)half, NULL)) == NULL ||
	    (bn_s = BN_bin2bn(raw + half, (int)half, NULL)) == NULL) {
		r = hsm_ossl_fail("ECDSA_SIG");
		goto out;
	}
	if (!ECDSA_SIG_set0(sig, bn_r, bn_s)) {
		r = hsm_ossl_fail("ECDSA_SIG_set0");
		goto out;
	}
	bn_r = bn_s = NULL; /* owned by sig now */
	if ((n = i2d_ECDSA_SIG(sig, NULL)) <= 0 || (size_t)n > raw_len + 9) {
		r = hsm_ossl_fail("i2d_ECDSA_SIG");
		goto out;
	}
	p = der;
	if (i2d_ECDSA_SIG(sig, &p) != n) {
		r = hsm_ossl_fail("i2d_ECDSA_SIG");
		goto out;
	}
	*der_len = (size_t)n;
	r = 0;
out:
	BN_free(bn_r);
	BN_free(bn_s);
	ECDSA_SIG_free(sig);
	return r;
}
