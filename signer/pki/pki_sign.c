/*
 * Signing certificates and CRLs with a key that lives in a PKCS#11 token.
 *
 * Why by hand: OpenSSL 3 can only sign an X509 / X509_CRL through an
 * EVP_PKEY, and an EVP_PKEY for a token key needs an engine or a provider
 * (pkcs11-provider, libp11) loaded into the daemon. We keep the PKCS#11
 * layer in hsm/ only (one session pool, audited key use, no second module
 * instance), so instead:
 *   1. sign once with a throwaway in-memory P-256 key: OpenSSL then fills
 *      both AlgorithmIdentifiers (tbs and outer) with ecdsa-with-SHA256;
 *   2. encode the TBS part (i2d_re_X509_tbs / i2d_re_X509_CRL_tbs), hash
 *      it with SHA-256 and have the token sign the digest (DER ECDSA);
 *   3. replace the signature BIT STRING with the token's signature;
 *   4. re-parse the DER and verify it against the token key's public key,
 *      so that nothing leaves here unless it verifies.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki.h"
#include "privsep_wire.h"
#include "qs_err.h"
#include "statement.h"

static int
ossl_fail(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160];

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return qs_fail(QS_ERR_CRYPTO, "%s: %s", what, e ? buf : "failed");
}

static int
public_key(const struct keyring_key *k, EVP_PKEY **out)
{
	BIO *b;

	*out = NULL;
	if (k->type != HSM_KEY_EC_P256)
		return qs_fail(QS_ERR_INVALID, "CA keys are ECDSA P-256");
	if ((b = BIO_new_mem_buf(k->spki_pem, -1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*out = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	return *out ? 0 : ossl_fail("CA public key");
}

/* The token's DER ECDSA signature over SHA-256(tbs) into bit string bs;
 * der (der_len) is the whole object of that kind (PS_X509_CERT or
 * PS_X509_CRL), from which a signer helper derives the TBS itself. */
static int
token_sign_into(const struct keyring_key *k, const struct store_request *rq, uint8_t kind,
                const uint8_t *der, int der_len, const uint8_t *prev, size_t prev_len,
                const uint8_t *tbs, size_t tbs_len, ASN1_BIT_STRING *bs)
{
	uint8_t dg[32], sig[HSM_SIG_MAX + 16];
	size_t sig_len = 0;
	int r;

	if (der_len <= 0)
		return ossl_fail("encode the object to sign");
	qs_sha256(tbs, tbs_len, dg);
	if ((r = keyring_sign_x509(k, kind, der, (size_t)der_len, dg, rq, prev, prev_len, NULL, 0,
	                           sig, &sig_len)) != 0)
		return r;
	if (!ASN1_BIT_STRING_set(bs, sig, (int)sig_len))
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	/* A DER signature is whole bytes: no unused bits. */
	bs->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bs->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	return 0;
}

int
pki_sign_cert(X509 **xp, const struct keyring_key *k, const struct store_request *rq)
{
	EVP_PKEY *tmp = NULL, *pub = NULL;
	const ASN1_BIT_STRING *psig;
	const X509_ALGOR *palg;
	unsigned char *tbs = NULL, *der = NULL;
	const unsigned char *dp;
	X509 *x2 = NULL;
	int r, tbs_len, der_len;

	if ((r = public_key(k, &pub)) != 0)
		goto out;
	if ((tmp = EVP_EC_gen("P-256")) == NULL || X509_sign(*xp, tmp, EVP_sha256()) <= 0) {
		r = ossl_fail("set the signature algorithm");
		goto out;
	}
	if ((tbs_len = i2d_re_X509_tbs(*xp, &tbs)) <= 0) {
		r = ossl_fail("encode the TBSCertificate");
		goto out;
	}
	X509_get0_signature(&psig, &palg, *xp);
	der_len = i2d_X509(*xp, &der);
	if ((r = token_sign_into(k, rq, PS_X509_CERT, der, der_len, NULL, 0, tbs, (size_t)tbs_len,
	                         (ASN1_BIT_STRING *)psig)) != 0)
		goto out;
	OPENSSL_free(der);
	der = NULL;
	if ((der_len = i2d_X509(*xp, &der)) <= 0) {
		r = ossl_fail("encode the certificate");
		goto out;
	}
	dp = der;
	if ((x2 = d2i_X509(NULL, &dp, der_len)) == NULL || dp != der + der_len) {
		r = ossl_fail("re-parse the signed certificate");
		goto out;
	}
	if (X509_verify(x2, pub) != 1) {
		r = ossl_fail("the token's signature does not verify with the CA key");
		goto out;
	}
	X509_free(*xp);
	*xp = x2;
	x2 = NULL;
	r = 0;
out:
	X509_free(x2);
	OPENSSL_free(tbs);
	OPENSSL_free(der);
	EVP_PKEY_free(tmp);
	EVP_PKEY_free(pub);
	return r;
}

int
pki_sign_crl(X509_CRL **cp, const struct keyring_key *k, const struct store_request *rq,
             const uint8_t *prev, size_t prev_len)
{
	EVP_PKEY *tmp = NULL, *pub = NULL;
	const ASN1_BIT_STRING *psig;
	const X509_ALGOR *palg;
	unsigned char *tbs = NULL, *der = NULL;
	const unsigned char *dp;
	X509_CRL *c2 = NULL;
	int r, tbs_len, der_len;

	if ((r = public_key(k, &pub)) != 0)
		goto out;
	if ((tmp = EVP_EC_gen("P-256")) == NULL || !X509_CRL_sort(*cp) ||
	    X509_CRL_sign(*cp, tmp, EVP_sha256()) <= 0) {
		r = ossl_fail("set the CRL signature algorithm");
		goto out;
	}
	if ((tbs_len = i2d_re_X509_CRL_tbs(*cp, &tbs)) <= 0) {
		r = ossl_fail("encode the TBSCertList");
		goto out;
	}
	X509_CRL_get0_signature(*cp, &psig, &palg);
	der_len = i2d_X509_CRL(*cp, &der);
	if ((r = token_sign_into(k, rq, PS_X509_CRL, der, der_len, prev, prev_len, tbs,
	                         (size_t)tbs_len, (ASN1_BIT_STRING *)psig)) != 0)
		goto out;
	OPENSSL_free(der);
	der = NULL;
	if ((der_len = i2d_X509_CRL(*cp, &der)) <= 0) {
		r = ossl_fail("encode the CRL");
		goto out;
	}
	dp = der;
	if ((c2 = d2i_X509_CRL(NULL, &dp, der_len)) == NULL || dp != der + der_len) {
		r = ossl_fail("re-parse the signed CRL");
		goto out;
	}
	if (X509_CRL_verify(c2, pub) != 1) {
		r = ossl_fail("the token's CRL signature does not verify with the CA key");
		goto out;
	}
	X509_CRL_free(*cp);
	*cp = c2;
	c2 = NULL;
	r = 0;
out:
	X509_CRL_free(c2);
	OPENSSL_free(tbs);
	OPENSSL_free(der);
	EVP_PKEY_free(tmp);
	EVP_PKEY_free(pub);
	return r;
}

int
pki_sign_blob(const struct keyring_key *k, const uint8_t *data, size_t len,
              const struct store_request *rq, const uint8_t *prev, size_t prev_len,
              const uint8_t *prev_sig, size_t prev_sig_len, uint8_t *sig, size_t *sig_len)
{
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *md = NULL;
	uint8_t dg[32];
	int r;

	*sig_len = 0;
	if ((r = public_key(k, &pub)) != 0)
		goto out;
	qs_sha256(data, len, dg);
	if ((r = keyring_sign_x509(k, PS_X509_CALIST, data, len, dg, rq, prev, prev_len, prev_sig,
	                           prev_sig_len, sig, sig_len)) != 0)
		goto out;
	/* What `openssl dgst -sha256 -verify` will check, checked here first. */
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) != 1 ||
	    EVP_DigestVerify(md, sig, *sig_len, data, len) != 1) {
		*sig_len = 0;
		r = ossl_fail("the token's signature does not verify with the CA key");
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	return r;
}
