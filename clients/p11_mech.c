/*
 * p11_mech.c - the mechanisms of libqsign-pkcs11.so.
 *
 * Every mechanism ends in one qsignd Sign of a SHA-256, SHA-384 or SHA-512
 * digest (kind DIGEST, SignRequest.hash naming the hash) or, for Ed25519
 * (and for hashing mechanisms of roles that take blobs only), of the
 * message itself (kind BLOB; the daemon hashes it with that hash). qsignd
 * signs with the one scheme the key is for (ecdsa-p256/p384: ECDSA; rsa3072:
 * PSS with MGF1 of the digest's hash and a salt of its length; rsa*-pkcs1:
 * PKCS#1 v1.5 over the digest's DigestInfo; ed25519: pure Ed25519), so a
 * mechanism is offered only for keys of that scheme and its parameters must
 * name exactly that scheme.
 * Multi-part operations (C_SignUpdate/C_SignFinal) hash locally with
 * OpenSSL's EVP; only the digest travels.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/bn.h>

#include "hsm.h"
#include "p11.h"
#include "statement.h"

static const CK_MECHANISM_TYPE mech_ec[] = {CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384,
                                            CKM_ECDSA_SHA512};
static const CK_MECHANISM_TYPE mech_ed[] = {CKM_EDDSA};
static const CK_MECHANISM_TYPE mech_pss[] = {CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS,
                                             CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS};
static const CK_MECHANISM_TYPE mech_pkcs1[] = {CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS,
                                               CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS};

/* The hashes qsignd signs (qs_hash_lookup's names) with their PKCS#11
 * names: the hash mechanism (PSS hashAlg) and MGF1. */
static const struct p11_hash {
	const char *name;
	size_t len;
	CK_MECHANISM_TYPE ck;
	CK_RSA_PKCS_MGF_TYPE mgf;
} hashes[] = {{"sha256", 32, CKM_SHA256, CKG_MGF1_SHA256},
              {"sha384", 48, CKM_SHA384, CKG_MGF1_SHA384},
              {"sha512", 64, CKM_SHA512, CKG_MGF1_SHA512}};

static const struct p11_hash *
hash_by_len(size_t len)
{
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++)
		if (hashes[i].len == len)
			return &hashes[i];
	return NULL;
}

static const struct p11_hash *
hash_by_ck(CK_MECHANISM_TYPE ck)
{
	for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++)
		if (hashes[i].ck == ck)
			return &hashes[i];
	return NULL;
}

/* The hash a hashing mechanism applies; NULL for the raw ones. */
static const struct p11_hash *
mech_hash(CK_MECHANISM_TYPE mech)
{
	switch (mech) {
	case CKM_ECDSA_SHA256:
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKM_SHA256_RSA_PKCS:
		return &hashes[0];
	case CKM_ECDSA_SHA384:
	case CKM_SHA384_RSA_PKCS_PSS:
	case CKM_SHA384_RSA_PKCS:
		return &hashes[1];
	case CKM_ECDSA_SHA512:
	case CKM_SHA512_RSA_PKCS_PSS:
	case CKM_SHA512_RSA_PKCS:
		return &hashes[2];
	default:
		return NULL;
	}
}

enum p11_keyfam
p11_keyfam_of(const char *a)
{
	if (a == NULL)
		return P11_FAM_NONE;
	if (strcmp(a, "ecdsa-p256") == 0 || strcmp(a, "ecdsa-p384") == 0)
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

int
p11_mech_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info)
{
	enum p11_keyfam fam = mech_family(mech);

	memset(info, 0, sizeof(*info));
	info->flags = CKF_SIGN;
	switch (fam) {
	case P11_FAM_EC:
		info->ulMinKeySize = 256;
		info->ulMaxKeySize = 384;
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

int
p11_mech_hash_allowed(CK_MECHANISM_TYPE mech, unsigned allowed)
{
	const struct p11_hash *h = mech_hash(mech);

	return h == NULL || (allowed & qs_hash_bit(h->name)) != 0;
}

/* The PSS schemes qsignd signs with: MGF1 of the hash, a salt of its
 * length; a hashing mechanism's own hash. *hp: the hash. */
static CK_RV
check_pss_params(const CK_MECHANISM *m, const struct p11_hash **hp)
{
	const struct p11_hash *h, *mh = mech_hash(m->mechanism);
	CK_RSA_PKCS_PSS_PARAMS p;

	if (m->pParameter == NULL || m->ulParameterLen != sizeof(p))
		return CKR_MECHANISM_PARAM_INVALID;
	memcpy(&p, m->pParameter, sizeof(p));
	if ((h = hash_by_ck(p.hashAlg)) == NULL || p.mgf != h->mgf || p.sLen != h->len ||
	    (mh != NULL && mh != h))
		return CKR_MECHANISM_PARAM_INVALID;
	*hp = h;
	return CKR_OK;
}

CK_RV
p11_op_init(struct p11_op *op, const CK_MECHANISM *m, enum p11_keyfam fam, size_t sig_len,
            unsigned allowed)
{
	const struct p11_hash *pss = NULL;
	CK_RV rv;

	memset(op, 0, sizeof(*op));
	if (m == NULL)
		return CKR_ARGUMENTS_BAD;
	if (mech_family(m->mechanism) != fam || fam == P11_FAM_NONE ||
	    !p11_mech_hash_allowed(m->mechanism, allowed))
		return CKR_MECHANISM_INVALID;
	switch (m->mechanism) {
	case CKM_RSA_PKCS_PSS:
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKM_SHA384_RSA_PKCS_PSS:
	case CKM_SHA512_RSA_PKCS_PSS:
		if ((rv = check_pss_params(m, &pss)) != CKR_OK)
			return rv;
		if (!(allowed & qs_hash_bit(pss->name)))
			return CKR_MECHANISM_PARAM_INVALID;
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
	op->hashing = mech_hash(m->mechanism) != NULL;
	/* Raw PSS: the parameters name the digest's hash */
	op->hash_len = op->hashing ? mech_hash(m->mechanism)->len : pss != NULL ? pss->len : 0;
	if (op->hashing) {
		const EVP_MD *md = NULL;
		if (qs_hash_lookup(mech_hash(m->mechanism)->name, NULL, &md) == NULL || md == NULL)
			return CKR_FUNCTION_FAILED;
		if ((op->md = EVP_MD_CTX_new()) == NULL)
			return CKR_HOST_MEMORY;
		if (EVP_DigestInit_ex(op->md, md, NULL) != 1) {
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

/* Raw mechanisms: the digest inside their input (SHA-256, SHA-384 or
 * SHA-512: qsignd signs nothing else), its length in pl->len. */
static CK_RV
raw_digest(const struct p11_op *op, const uint8_t *in, size_t len, struct p11_payload *pl)
{
	const uint8_t *prefix;
	size_t plen = 0;

	switch (op->mech) {
	case CKM_ECDSA:
		/* The digest's length tells its hash */
		if (hash_by_len(len) == NULL)
			return CKR_DATA_LEN_RANGE;
		break;
	case CKM_RSA_PKCS_PSS:
		/* The parameters named the hash */
		if (len != op->hash_len)
			return CKR_DATA_LEN_RANGE;
		break;
	case CKM_RSA_PKCS:
		/* A DigestInfo: its length tells the hash, its prefix must be
		 * that hash's */
		for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
			prefix = hsm_digestinfo_prefix(hashes[i].len, &plen);
			if (prefix != NULL && len == plen + hashes[i].len) {
				if (memcmp(in, prefix, plen) != 0)
					return CKR_DATA_INVALID;
				in += plen;
				len = hashes[i].len;
				goto found;
			}
		}
		return CKR_DATA_LEN_RANGE;
	default:
		return CKR_MECHANISM_INVALID;
	}
found:
	memcpy(pl->digest, in, len);
	pl->len = len;
	return CKR_OK;
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

/* The hash name of a digest payload of pl->len bytes. */
static void
payload_hash(struct p11_payload *pl)
{
	const struct p11_hash *h = hash_by_len(pl->len);

	pl->hash = h != NULL ? h->name : "sha256";
}

CK_RV
p11_op_payload(struct p11_op *op, const uint8_t *in, size_t in_len, int allow_digest,
               int allow_blob, struct p11_payload *pl)
{
	unsigned int dlen = 0;
	CK_RV rv;

	memset(pl, 0, sizeof(*pl));
	pl->hash = "sha256";
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
		if ((rv = raw_digest(op, in, in_len, pl)) != CKR_OK)
			return rv;
		if (!allow_digest)
			return CKR_FUNCTION_REJECTED;
	} else if (!op->updated && !allow_digest && allow_blob) {
		/* A role that takes blobs only: qsignd hashes the message with
		 * the mechanism's hash. */
		rv = blob_payload(in, in_len, pl);
		pl->hash = mech_hash(op->mech)->name;
		return rv;
	} else {
		if (!allow_digest)
			return CKR_FUNCTION_REJECTED;
		if (!op->updated && in_len > 0 && EVP_DigestUpdate(op->md, in, in_len) != 1)
			return CKR_FUNCTION_FAILED;
		if (EVP_DigestFinal_ex(op->md, pl->digest, &dlen) != 1 || dlen != op->hash_len)
			return CKR_FUNCTION_FAILED;
		pl->len = dlen;
	}
	payload_hash(pl);
	pl->kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
	pl->data = pl->digest;
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
