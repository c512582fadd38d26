/*
 * p11_mech.c - the mechanisms of libqsign-pkcs11.so.
 *
 * Every mechanism ends in one qsignd Sign of a SHA-256 digest (kind DIGEST)
 * or, for Ed25519 (and for hashing mechanisms of roles that take blobs
 * only), of the message itself (kind BLOB). qsignd signs with the one
 * scheme the key is for (ecdsa-p256: ECDSA; rsa3072: PSS with SHA-256,
 * MGF1-SHA-256, 32-byte salt; rsa*-pkcs1: PKCS#1 v1.5 over a SHA-256
 * DigestInfo; ed25519: pure Ed25519), so a mechanism is offered only for
 * keys of that scheme and its parameters must name exactly that scheme.
 * Multi-part operations (C_SignUpdate/C_SignFinal) hash locally with
 * OpenSSL's EVP; only the digest travels.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/bn.h>

#include "p11.h"

static const CK_MECHANISM_TYPE mech_ec[] = {CKM_ECDSA, CKM_ECDSA_SHA256};
static const CK_MECHANISM_TYPE mech_ed[] = {CKM_EDDSA};
static const CK_MECHANISM_TYPE mech_pss[] = {CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS};
static const CK_MECHANISM_TYPE mech_pkcs1[] = {CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS};

/* DER DigestInfo of a SHA-256 digest up to the digest itself (RFC 8017
 * 9.2 note 1): the form OpenSSL, libp11 and every PKCS#11 caller send. */
static const uint8_t sha256_digestinfo[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                            0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                            0x01, 0x05, 0x00, 0x04, 0x20};

enum p11_keyfam
p11_keyfam_of(const char *a)
{
	if (a == NULL)
		return P11_FAM_NONE;
	if (strcmp(a, "ecdsa-p256") == 0)
		return P11_FAM_EC;
	if (strcmp(a, "ed25519") == 0)
		return P11_FAM_ED25519;
	if (strcmp(a, "rsa3072") == 0)
		return P11_FAM_RSA_PSS;
	if (strcmp(a, "rsa2048-pkcs1") == 0 || strcmp(a, "rsa3072-pkcs1") == 0 ||
	    strcmp(a, "rsa4096-pkcs1") == 0)
		return P11_FAM_RSA_PKCS1;
	return P11_FAM_NONE;
}

const CK_MECHANISM_TYPE *
p11_mech_list(enum p11_keyfam fam, size_t *n)
{
	switch (fam) {
	case P11_FAM_EC:
		*n = sizeof(mech_ec) / sizeof(mech_ec[0]);
		return mech_ec;
	case P11_FAM_ED25519:
		*n = sizeof(mech_ed) / sizeof(mech_ed[0]);
		return mech_ed;
	case P11_FAM_RSA_PSS:
		*n = sizeof(mech_pss) / sizeof(mech_pss[0]);
		return mech_pss;
	case P11_FAM_RSA_PKCS1:
		*n = sizeof(mech_pkcs1) / sizeof(mech_pkcs1[0]);
		return mech_pkcs1;
	case P11_FAM_NONE:
		break;
	}
	*n = 0;
	return NULL;
}

/* The family that offers mech (each mechanism belongs to one). */
static enum p11_keyfam
mech_family(CK_MECHANISM_TYPE mech)
{
	for (int f = P11_FAM_EC; f <= P11_FAM_RSA_PKCS1; f++) {
		size_t n;
		const CK_MECHANISM_TYPE *l = p11_mech_list((enum p11_keyfam)f, &n);
		for (size_t i = 0; i < n; i++)
			if (l[i] == mech)
				return (enum p11_keyfam)f;
	}
	return P11_FAM_NONE;
}

static int
mech_hashes(CK_MECHANISM_TYPE mech)
{
	return mech == CKM_ECDSA_SHA256 || mech == CKM_SHA256_RSA_PKCS_PSS ||
	       mech == CKM_SHA256_RSA_PKCS;
}

int
p11_mech_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info)
{
	enum p11_keyfam fam = mech_family(mech);

	memset(info, 0, sizeof(*info));
	info->flags = CKF_SIGN;
	switch (fam) {
	case P11_FAM_EC:
		info->ulMinKeySize = info->ulMaxKeySize = 256;
		info->flags |= CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
		break;
	case P11_FAM_ED25519:
		info->ulMinKeySize = info->ulMaxKeySize = 255;
		break;
	case P11_FAM_RSA_PSS:
		info->ulMinKeySize = info->ulMaxKeySize = 3072;
		break;
	case P11_FAM_RSA_PKCS1:
		info->ulMinKeySize = 2048;
		info->ulMaxKeySize = 4096;
		break;
	case P11_FAM_NONE:
		return 0;
	}
	return 1;
}

/* The one PSS scheme qsignd signs with. */
static CK_RV
check_pss_params(const CK_MECHANISM *m)
{
	CK_RSA_PKCS_PSS_PARAMS p;

	if (m->pParameter == NULL || m->ulParameterLen != sizeof(p))
		return CKR_MECHANISM_PARAM_INVALID;
	memcpy(&p, m->pParameter, sizeof(p));
	if (p.hashAlg != CKM_SHA256 || p.mgf != CKG_MGF1_SHA256 || p.sLen != 32)
		return CKR_MECHANISM_PARAM_INVALID;
	return CKR_OK;
}

CK_RV
p11_op_init(struct p11_op *op, const CK_MECHANISM *m, enum p11_keyfam fam, size_t sig_len)
{
	CK_RV rv;

	memset(op, 0, sizeof(*op));
	if (m == NULL)
		return CKR_ARGUMENTS_BAD;
	if (mech_family(m->mechanism) != fam || fam == P11_FAM_NONE)
		return CKR_MECHANISM_INVALID;
	switch (m->mechanism) {
	case CKM_RSA_PKCS_PSS:
	case CKM_SHA256_RSA_PKCS_PSS:
		if ((rv = check_pss_params(m)) != CKR_OK)
			return rv;
		break;
	default:
		/* ECDSA, PKCS#1 v1.5 and pure EdDSA take no parameters; an
		 * EdDSA context or pre-hash flag is a scheme qsignd does not
		 * sign with. */
		if (m->pParameter != NULL || m->ulParameterLen != 0)
			return CKR_MECHANISM_PARAM_INVALID;
	}
	op->mech = m->mechanism;
	op->fam = fam;
	op->sig_len = sig_len;
	op->hashing = mech_hashes(m->mechanism);
	if (op->hashing) {
		if ((op->md = EVP_MD_CTX_new()) == NULL)
			return CKR_HOST_MEMORY;
		if (EVP_DigestInit_ex(op->md, EVP_sha256(), NULL) != 1) {
			p11_op_free(op);
			return CKR_FUNCTION_FAILED;
		}
	}
	return CKR_OK;
}

CK_RV
p11_op_update(struct p11_op *op, const uint8_t *data, size_t len)
{
	op->updated = 1;
	if (op->hashing)
		return EVP_DigestUpdate(op->md, data, len) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
	/* Raw mechanisms: their "data" is a digest or a message signed whole;
	 * collected, bounded by what one Sign carries. */
	if (len > QS_MAX_BLOB - op->buf_len)
		return CKR_DATA_LEN_RANGE;
	if (len > 0) {
		uint8_t *nb = realloc(op->buf, op->buf_len + len);
		if (nb == NULL)
			return CKR_HOST_MEMORY;
		memcpy(nb + op->buf_len, data, len);
		op->buf = nb;
		op->buf_len += len;
	}
	return CKR_OK;
}

void
p11_op_free(struct p11_op *op)
{
	EVP_MD_CTX_free(op->md);
	free(op->buf);
	memset(op, 0, sizeof(*op));
}

/* Raw mechanisms: the SHA-256 digest inside their input. */
static CK_RV
raw_digest(const struct p11_op *op, const uint8_t *in, size_t len, uint8_t digest[32])
{
	switch (op->mech) {
	case CKM_ECDSA:
	case CKM_RSA_PKCS_PSS:
		/* Only SHA-256 digests: qsignd signs nothing else. */
		if (len != 32)
			return CKR_DATA_LEN_RANGE;
		memcpy(digest, in, 32);
		return CKR_OK;
	case CKM_RSA_PKCS:
		if (len != sizeof(sha256_digestinfo) + 32)
			return CKR_DATA_LEN_RANGE;
		if (memcmp(in, sha256_digestinfo, sizeof(sha256_digestinfo)) != 0)
			return CKR_DATA_INVALID;
		memcpy(digest, in + sizeof(sha256_digestinfo), 32);
		return CKR_OK;
	default:
		return CKR_MECHANISM_INVALID;
	}
}

/* The message itself, for qsignd to hash (or, Ed25519, sign whole). */
static CK_RV
blob_payload(const uint8_t *in, size_t in_len, struct p11_payload *pl)
{
	if (in_len > QS_MAX_BLOB)
		return CKR_DATA_LEN_RANGE;
	pl->kind = QSIGN__V1__PAYLOAD_KIND__BLOB;
	pl->data = in;
	pl->len = in_len;
	return CKR_OK;
}

CK_RV
p11_op_payload(struct p11_op *op, const uint8_t *in, size_t in_len, int allow_digest,
               int allow_blob, struct p11_payload *pl)
{
	unsigned int dlen = 0;
	CK_RV rv;

	memset(pl, 0, sizeof(*pl));
	if (in == NULL) { /* C_SignFinal: what Update collected */
		in = op->buf;
		in_len = op->buf_len;
	}
	if (op->fam == P11_FAM_ED25519) {
		if (!allow_blob)
			return CKR_FUNCTION_REJECTED;
		return blob_payload(in, in_len, pl);
	}
	if (!op->hashing) {
		if ((rv = raw_digest(op, in, in_len, pl->digest)) != CKR_OK)
			return rv;
		if (!allow_digest)
			return CKR_FUNCTION_REJECTED;
	} else if (!op->updated && !allow_digest && allow_blob) {
		/* A role that takes blobs only: qsignd hashes the message. */
		return blob_payload(in, in_len, pl);
	} else {
		if (!allow_digest)
			return CKR_FUNCTION_REJECTED;
		if (!op->updated && in_len > 0 && EVP_DigestUpdate(op->md, in, in_len) != 1)
			return CKR_FUNCTION_FAILED;
		if (EVP_DigestFinal_ex(op->md, pl->digest, &dlen) != 1 || dlen != 32)
			return CKR_FUNCTION_FAILED;
	}
	pl->kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
	pl->data = pl->digest;
	pl->len = 32;
	return CKR_OK;
}

CK_RV
p11_sig_format(const struct p11_op *op, const uint8_t *sig, size_t sig_len, uint8_t *out)
{
	const unsigned char *p = sig;
	const BIGNUM *r, *s;
	ECDSA_SIG *es;
	size_t half = op->sig_len / 2;
	CK_RV rv = CKR_DEVICE_ERROR;

	if (op->fam != P11_FAM_EC) {
		if (sig_len != op->sig_len)
			return CKR_DEVICE_ERROR;
		memcpy(out, sig, sig_len);
		return CKR_OK;
	}
	/* qsignd returns ECDSA signatures in DER; PKCS#11 wants r || s. */
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len)) == NULL)
		return CKR_DEVICE_ERROR;
	if (p != sig + sig_len)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, out, (int)half) != (int)half ||
	    BN_bn2binpad(s, out + half, (int)half) != (int)half)
		goto out;
	rv = CKR_OK;
out:
	ECDSA_SIG_free(es);
	return rv;
}
