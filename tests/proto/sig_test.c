/* sig_test.c - principal signatures: Ed25519 and ECDSA P-256 round trips,
 * and every other key kind refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "check.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

static char *
pubkey_pem(EVP_PKEY *pk, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b != NULL && PEM_write_bio_PUBKEY(b, pk) == 1 && (n = BIO_get_mem_data(b, &data)) > 0 &&
	    (out = malloc((size_t)n + 1)) != NULL) {
		memcpy(out, data, (size_t)n);
		out[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(b);
	return out;
}

static void
roundtrip(EVP_PKEY *priv, EVP_PKEY *other, const char *alg)
{
	static const uint8_t msg[] = "quorum-signer/v1 auth\nserver s\nprincipal p\n";
	uint8_t sig[QS_MAX_PRINCIPAL_SIG];
	size_t sig_len = 0, pem_len = 0;
	EVP_PKEY *pub = NULL;
	char *pem = pubkey_pem(priv, &pem_len);

	CHECK(pem != NULL);
	CHECK_EQ(qs_pubkey_from_pem(pem, pem_len, &pub), 0);
	CHECK_STR(qs_pubkey_alg(pub), alg);
	CHECK_EQ(qs_sig_sign(priv, msg, sizeof(msg), sig, &sig_len), 0);
	CHECK(sig_len > 0 && sig_len <= QS_MAX_PRINCIPAL_SIG);
	if (strcmp(alg, "ed25519") == 0)
		CHECK_EQ(sig_len, 64);
	CHECK_EQ(qs_sig_verify(pub, msg, sizeof(msg), sig, sig_len), 0);
	/* A different message, a flipped bit, a truncated signature, another
	 * key: all refused. */
	CHECK_EQ(qs_sig_verify(pub, msg, sizeof(msg) - 1, sig, sig_len), QS_ERR_BADSIG);
	sig[sig_len / 2] ^= 1;
	CHECK_EQ(qs_sig_verify(pub, msg, sizeof(msg), sig, sig_len), QS_ERR_BADSIG);
	sig[sig_len / 2] ^= 1;
	CHECK_EQ(qs_sig_verify(pub, msg, sizeof(msg), sig, sig_len - 1), QS_ERR_BADSIG);
	CHECK_EQ(qs_sig_verify(pub, msg, sizeof(msg), sig, 0), QS_ERR_BADSIG);
	CHECK_EQ(qs_sig_verify(other, msg, sizeof(msg), sig, sig_len), QS_ERR_BADSIG);
	EVP_PKEY_free(pub);
	free(pem);
}

static void
refused(EVP_PKEY *pk)
{
	static const uint8_t msg[] = "m";
	uint8_t sig[QS_MAX_PRINCIPAL_SIG];
	size_t sig_len = 99, pem_len = 0;
	EVP_PKEY *pub = (EVP_PKEY *)1;
	char *pem = pubkey_pem(pk, &pem_len);

	CHECK(qs_pubkey_alg(pk) == NULL);
	CHECK_EQ(qs_sig_sign(pk, msg, sizeof(msg), sig, &sig_len), QS_ERR_INVALID);
	CHECK_EQ(sig_len, 0);
	CHECK(pem != NULL);
	CHECK_EQ(qs_pubkey_from_pem(pem, pem_len, &pub), QS_ERR_INVALID);
	CHECK(pub == NULL);
	free(pem);
}

int
main(void)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
	EVP_PKEY *pub = NULL;

	CHECK(ed && ec && ec384 && rsa && ed448);
	roundtrip(ed, ec, "ed25519");
	roundtrip(ec, ed, "ecdsa-p256");
	refused(ec384);
	refused(rsa);
	refused(ed448);

	/* Not a public key at all. */
	CHECK_EQ(qs_pubkey_from_pem("hello", 5, &pub), QS_ERR_INVALID);
	CHECK_EQ(qs_pubkey_from_pem("", 0, &pub), QS_ERR_INVALID);
	CHECK(pub == NULL);

	/* Role signatures as qsignd returns them: ECDSA DER over the digest,
	 * Ed25519 over the blob. */
	{
		static const uint8_t blob[] = "targets.json bytes";
		uint8_t d[32], sig[256];
		size_t sl = sizeof(sig);
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(ec, NULL);
		EVP_MD_CTX *mc = EVP_MD_CTX_new();

		qs_sha256(blob, sizeof(blob), d);
		CHECK(pc && EVP_PKEY_sign_init(pc) == 1 &&
		      EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
		      EVP_PKEY_sign(pc, sig, &sl, d, 32) == 1);
		CHECK_EQ(qs_rolesig_verify(ec, 0, d, NULL, 0, sig, sl), 0);
		d[0] ^= 1;
		CHECK_EQ(qs_rolesig_verify(ec, 0, d, NULL, 0, sig, sl), QS_ERR_BADSIG);
		EVP_PKEY_CTX_free(pc);

		sl = sizeof(sig);
		CHECK(mc && EVP_DigestSignInit(mc, NULL, NULL, NULL, ed) == 1 &&
		      EVP_DigestSign(mc, sig, &sl, blob, sizeof(blob)) == 1);
		CHECK_EQ(qs_rolesig_verify(ed, 0, d, blob, sizeof(blob), sig, sl), 0);
		CHECK_EQ(qs_rolesig_verify(ed, 0, d, blob, sizeof(blob) - 1, sig, sl), QS_ERR_BADSIG);
		CHECK_EQ(qs_rolesig_verify(ed, 0, d, NULL, 0, sig, sl), QS_ERR_INVALID);
		EVP_MD_CTX_free(mc);

		/* RSA: PSS (rsa3072) and PKCS#1 v1.5 (rsa*-pkcs1), each verified
		 * only with its own padding. */
		qs_sha256(blob, sizeof(blob), d);
		for (int pkcs1 = 0; pkcs1 <= 1; pkcs1++) {
			EVP_PKEY_CTX *rc = EVP_PKEY_CTX_new(rsa, NULL);

			sl = sizeof(sig);
			CHECK(rc && EVP_PKEY_sign_init(rc) == 1 &&
			      EVP_PKEY_CTX_set_signature_md(rc, EVP_sha256()) == 1 &&
			      EVP_PKEY_CTX_set_rsa_padding(
			              rc, pkcs1 ? RSA_PKCS1_PADDING : RSA_PKCS1_PSS_PADDING) == 1 &&
			      (pkcs1 || EVP_PKEY_CTX_set_rsa_pss_saltlen(rc, 32) == 1) &&
			      EVP_PKEY_sign(rc, sig, &sl, d, 32) == 1);
			CHECK_EQ(qs_rolesig_verify(rsa, pkcs1, d, NULL, 0, sig, sl), 0);
			CHECK_EQ(qs_rolesig_verify(rsa, !pkcs1, d, NULL, 0, sig, sl), QS_ERR_BADSIG);
			EVP_PKEY_CTX_free(rc);
		}
	}

	EVP_PKEY_free(ed);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed448);
	CHECK_DONE();
}
