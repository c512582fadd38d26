/*
 * p11_objects.c - the objects of a token of libqsign-pkcs11.so.
 *
 * For each of a role's keys: a public key, a private key (CKA_SIGN,
 * sensitive, never extractable: the key stays in qsignd's token) and, when
 * the policy attaches one, the key's X.509 certificate, all three sharing
 * CKA_ID (the key id: SHA-256 of the DER SubjectPublicKeyInfo) and
 * CKA_LABEL (the policy's key name). Everything is built once from the
 * daemon's key listing; objects are read-only.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "p11.h"
#include "pki_payload.h"

/* OIDs of the curves, DER, as CKA_EC_PARAMS carries them. */
static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}; /* secp384r1 */

/* The NIST curves of the ECDSA key types: the uncompressed point's length
 * and CKA_EC_PARAMS. */
static const struct ec_curve {
	const char *algorithm;
	const char *desc;
	int nid; /* OpenSSL's */
	size_t point_len;
	const uint8_t *oid;
	size_t oid_len;
} ec_curves[] = {
        {"ecdsa-p256", "P-256", NID_X9_62_prime256v1, 65, oid_p256, sizeof(oid_p256)},
        {"ecdsa-p384", "P-384", NID_secp384r1, 97, oid_p384, sizeof(oid_p384)},
};

static const struct ec_curve *
ec_curve_of(const char *algorithm)
{
	for (size_t i = 0; i < sizeof(ec_curves) / sizeof(ec_curves[0]); i++)
		if (strcmp(ec_curves[i].algorithm, algorithm) == 0)
			return &ec_curves[i];
	return NULL;
}
static const uint8_t oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static const CK_OBJECT_CLASS class_of[P11_OBJ_KINDS] = {CKO_PUBLIC_KEY, CKO_PRIVATE_KEY,
                                                        CKO_CERTIFICATE};
static const CK_CERTIFICATE_TYPE cert_x509 = CKC_X_509;
static const CK_ULONG cert_category = 0; /* unspecified */

static int
dup_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t len)
{
	if ((*dst = malloc(len > 0 ? len : 1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(*dst, src, len);
	*dst_len = len;
	return 0;
}

/* DER OCTET STRING around a point (CKA_EC_POINT's form). */
static int
octet_string(uint8_t **dst, size_t *dst_len, const uint8_t *pt, size_t len)
{
	if (len > 127)
		return qs_fail(QS_ERR_INVALID, "EC point of %zu bytes", len);
	if ((*dst = malloc(len + 2)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	(*dst)[0] = 0x04;
	(*dst)[1] = (uint8_t)len;
	memcpy(*dst + 2, pt, len);
	*dst_len = len + 2;
	return 0;
}

/* pk is on curve c (OpenSSL's group name). */
static int
ec_group_is(EVP_PKEY *pk, const struct ec_curve *c)
{
	char group[64];
	size_t n = 0;
	int nid;

	if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   &n) != 1)
		return 0;
	nid = OBJ_sn2nid(group);
	return nid != NID_undef && nid == c->nid;
}

static int
bn_param(EVP_PKEY *pk, const char *name, uint8_t **dst, size_t *dst_len)
{
	BIGNUM *bn = NULL;
	int n, r;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		return qs_fail(QS_ERR_CRYPTO, "RSA key without %s", name);
	n = BN_num_bytes(bn);
	if ((*dst = malloc(n > 0 ? (size_t)n : 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	*dst_len = (size_t)BN_bn2bin(bn, *dst);
	r = 0;
out:
	BN_free(bn);
	return r;
}

static int
hex_id(struct p11_key *k, const char *hex)
{
	size_t n = hex != NULL ? strlen(hex) : 0;

	if (n == 0 || n % 2 != 0 || n / 2 > sizeof(k->id))
		return qs_fail(QS_ERR_INVALID, "key %s: bad key id", k->name);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return qs_fail(QS_ERR_INVALID, "key %s: bad key id", k->name);
		k->id[i] = (uint8_t)v;
	}
	k->id_len = n / 2;
	return 0;
}

int
p11_key_from_info(struct p11_key *k, const Qsign__V1__KeyInfo *ki)
{
	BIO *b = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *der = NULL;
	uint8_t pt[256];
	size_t ptlen = 0;
	int len, r;

	memset(k, 0, sizeof(*k));
	if ((k->name = strdup(ki->name)) == NULL ||
	    (k->algorithm = strdup(ki->algorithm)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((k->fam = p11_keyfam_of(ki->algorithm)) == P11_FAM_NONE) {
		r = qs_fail(QS_ERR_UNIMPLEMENTED, "key %s: algorithm %s not offered", ki->name,
		            ki->algorithm);
		goto out;
	}
	if ((r = hex_id(k, ki->key_id)) != 0)
		goto out;
	if ((b = BIO_new_mem_buf(ki->public_pem, -1)) == NULL ||
	    (pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL)) == NULL ||
	    (len = i2d_PUBKEY(pk, &der)) <= 0) {
		r = qs_fail(QS_ERR_INVALID, "key %s: public key is not PEM", ki->name);
		goto out;
	}
	if ((r = dup_bytes(&k->spki, &k->spki_len, der, (size_t)len)) != 0)
		goto out;
	switch (k->fam) {
	case P11_FAM_EC: {
		const struct ec_curve *c = ec_curve_of(ki->algorithm);
		if (c == NULL) {
			r = qs_fail(QS_ERR_UNIMPLEMENTED, "key %s: algorithm %s not offered",
			            ki->name, ki->algorithm);
			goto out;
		}
		/* The group is checked too: a P-384 point is not a P-256 one
		 * of another length only. */
		if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt,
		                                    sizeof(pt), &ptlen) != 1 ||
		    ptlen != c->point_len || !ec_group_is(pk, c)) {
			r = qs_fail(QS_ERR_INVALID, "key %s: not a %s point", ki->name, c->desc);
			goto out;
		}
		if ((r = dup_bytes(&k->ec_params, &k->ec_params_len, c->oid, c->oid_len)) != 0 ||
		    (r = octet_string(&k->ec_point, &k->ec_point_len, pt, ptlen)) != 0)
			goto out;
		k->sig_len = c->point_len - 1; /* r || s: two coordinates' length */
		break;
	}
	case P11_FAM_ED25519:
		ptlen = 32;
		if (EVP_PKEY_get_raw_public_key(pk, pt, &ptlen) != 1 || ptlen != 32) {
			r = qs_fail(QS_ERR_INVALID, "key %s: not an Ed25519 key", ki->name);
			goto out;
		}
		if ((r = dup_bytes(&k->ec_params, &k->ec_params_len, oid_ed25519,
		                   sizeof(oid_ed25519))) != 0 ||
		    (r = octet_string(&k->ec_point, &k->ec_point_len, pt, ptlen)) != 0)
			goto out;
		k->sig_len = 64;
		break;
	case P11_FAM_RSA_PSS:
	case P11_FAM_RSA_PKCS1:
		if ((r = bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &k->modulus, &k->modulus_len)) != 0 ||
		    (r = bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &k->exponent, &k->exponent_len)) != 0)
			goto out;
		k->sig_len = k->modulus_len;
		break;
	case P11_FAM_NONE:
		break;
	}
	if (ki->certificate_pem != NULL && ki->certificate_pem[0] != '\0') {
		/* The daemon checked it at policy load; checked again, since a
		 * wrong one would make tools embed a useless certificate. */
		uint8_t *cder = NULL;
		size_t clen = 0;
		if ((r = pki_key_cert_check(ki->certificate_pem, ki->public_pem, &cder, &clen)) !=
		    0) {
			r = qs_wrap(r, "key %s", ki->name);
			goto out;
		}
		r = dup_bytes(&k->cert, &k->cert_len, cder, clen);
		OPENSSL_free(cder);
		if (r != 0)
			goto out;
	}
	p11_key_set_hashes(k, QS_HASHES_ALL);
	r = 0;
out:
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	BIO_free(b);
	if (r != 0)
		p11_key_free(k);
	return r;
}

void
p11_key_set_hashes(struct p11_key *k, unsigned hashes)
{
	size_t n;
	const CK_MECHANISM_TYPE *m = p11_mech_list(k->fam, &n);

	k->hashes = hashes;
	k->nmechs = 0;
	for (size_t i = 0; i < n && k->nmechs < sizeof(k->mechs) / sizeof(k->mechs[0]); i++)
		if (p11_mech_hash_allowed(m[i], hashes))
			k->mechs[k->nmechs++] = m[i];
}

void
p11_key_free(struct p11_key *k)
{
	free(k->name);
	free(k->algorithm);
	free(k->spki);
	free(k->ec_params);
	free(k->ec_point);
	free(k->modulus);
	free(k->exponent);
	free(k->cert);
	memset(k, 0, sizeof(*k));
}

/* ---- attributes ---------------------------------------------------------- */

enum { ATTR_NONE = 0, ATTR_OK = 1, ATTR_SENSITIVE = 2 };

struct attr_val {
	const void *p;
	size_t len;
	CK_ULONG ul; /* storage for computed CK_ULONG values */
};

#define BOOL_ATTR(v)                                                                               \
	do {                                                                                       \
		out->p = (v) ? &yes : &no;                                                         \
		out->len = sizeof(CK_BBOOL);                                                       \
		return ATTR_OK;                                                                    \
	} while (0)
#define BYTES_ATTR(ptr, n)                                                                         \
	do {                                                                                       \
		out->p = (ptr);                                                                    \
		out->len = (n);                                                                    \
		return ATTR_OK;                                                                    \
	} while (0)

/* Attributes every object has. */
static int
attr_common(const struct p11_key *k, int kind, CK_ATTRIBUTE_TYPE t, struct attr_val *out)
{
	switch (t) {
	case CKA_CLASS:
		BYTES_ATTR(&class_of[kind], sizeof(CK_OBJECT_CLASS));
	case CKA_TOKEN:
		BOOL_ATTR(1);
	case CKA_PRIVATE: /* readable without C_Login: the identity key authenticates */
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
		BOOL_ATTR(0);
	case CKA_LABEL:
		BYTES_ATTR(k->name, strlen(k->name));
	case CKA_ID:
		BYTES_ATTR(k->id, k->id_len);
	default:
		return ATTR_NONE;
	}
}

/* Attributes of both key objects. */
static int
attr_key(const struct p11_key *k, CK_ATTRIBUTE_TYPE t, struct attr_val *out)
{

	switch (t) {
	case CKA_KEY_TYPE:
		out->ul = k->fam == P11_FAM_EC        ? CKK_EC
		          : k->fam == P11_FAM_ED25519 ? CKK_EC_EDWARDS
		                                      : CKK_RSA;
		BYTES_ATTR(&out->ul, sizeof(CK_ULONG));
	case CKA_LOCAL:
	case CKA_DERIVE:
		BOOL_ATTR(0);
	case CKA_ALLOWED_MECHANISMS:
		/* One key, one scheme: only the mechanisms of the scheme qsignd
		 * signs with for this key, and of the hashes its role allows. */
		BYTES_ATTR(k->mechs, k->nmechs * sizeof(CK_MECHANISM_TYPE));
	case CKA_PUBLIC_KEY_INFO:
		BYTES_ATTR(k->spki, k->spki_len);
	case CKA_START_DATE:
	case CKA_END_DATE:
		BYTES_ATTR("", 0);
	default:
		break;
	}
	if (k->fam == P11_FAM_EC || k->fam == P11_FAM_ED25519) {
		if (t == CKA_EC_PARAMS)
			BYTES_ATTR(k->ec_params, k->ec_params_len);
		if (t == CKA_EC_POINT)
			BYTES_ATTR(k->ec_point, k->ec_point_len);
	} else {
		if (t == CKA_MODULUS)
			BYTES_ATTR(k->modulus, k->modulus_len);
		if (t == CKA_PUBLIC_EXPONENT)
			BYTES_ATTR(k->exponent, k->exponent_len);
		if (t == CKA_MODULUS_BITS) {
			out->ul = k->modulus_len * 8;
			BYTES_ATTR(&out->ul, sizeof(CK_ULONG));
		}
	}
	return ATTR_NONE;
}

static int
attr_value(const struct p11_key *k, int kind, CK_ATTRIBUTE_TYPE t, struct attr_val *out)
{
	int r;

	if ((r = attr_common(k, kind, t, out)) != ATTR_NONE)
		return r;
	switch (kind) {
	case P11_OBJ_PUB:
		switch (t) {
		case CKA_VERIFY:
			BOOL_ATTR(1);
		case CKA_ENCRYPT:
		case CKA_WRAP:
		case CKA_VERIFY_RECOVER:
		case CKA_TRUSTED:
			BOOL_ATTR(0);
		}
		return attr_key(k, t, out);
	case P11_OBJ_PRIV:
		switch (t) {
		case CKA_SIGN:
		case CKA_SENSITIVE:
		case CKA_ALWAYS_SENSITIVE:
		case CKA_NEVER_EXTRACTABLE:
			BOOL_ATTR(1);
		case CKA_EXTRACTABLE:
		case CKA_DECRYPT:
		case CKA_UNWRAP:
		case CKA_SIGN_RECOVER:
		case CKA_ALWAYS_AUTHENTICATE:
		case CKA_WRAP_WITH_TRUSTED:
			BOOL_ATTR(0);
		case CKA_VALUE:
		case CKA_PRIVATE_EXPONENT:
		case CKA_PRIME_1:
		case CKA_PRIME_2:
		case CKA_EXPONENT_1:
		case CKA_EXPONENT_2:
		case CKA_COEFFICIENT:
			return ATTR_SENSITIVE;
		}
		return attr_key(k, t, out);
	case P11_OBJ_CERT:
		switch (t) {
		case CKA_CERTIFICATE_TYPE:
			BYTES_ATTR(&cert_x509, sizeof(cert_x509));
		case CKA_CERTIFICATE_CATEGORY:
			BYTES_ATTR(&cert_category, sizeof(cert_category));
		case CKA_TRUSTED:
			BOOL_ATTR(0);
		case CKA_VALUE:
			BYTES_ATTR(k->cert, k->cert_len);
		}
		return ATTR_NONE;
	}
	return ATTR_NONE;
}

/* Certificate fields as DER (CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER),
 * computed on demand; *der freed by the caller. */
static int
cert_field(const struct p11_key *k, CK_ATTRIBUTE_TYPE t, unsigned char **der)
{
	const unsigned char *p = k->cert;
	X509 *x = d2i_X509(NULL, &p, (long)k->cert_len);
	int len = -1;

	*der = NULL;
	if (x == NULL)
		return -1;
	if (t == CKA_SUBJECT)
		len = i2d_X509_NAME(X509_get_subject_name(x), der);
	else if (t == CKA_ISSUER)
		len = i2d_X509_NAME(X509_get_issuer_name(x), der);
	else if (t == CKA_SERIAL_NUMBER)
		len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), der);
	X509_free(x);
	return len;
}

static int
object_exists(const struct p11_key *k, int kind)
{
	return kind == P11_OBJ_PUB || kind == P11_OBJ_PRIV || (kind == P11_OBJ_CERT && k->cert);
}

/* Look up one attribute, certificate fields included. *owned is set when
 * the value was allocated for the caller. */
static int
lookup(const struct p11_key *k, int kind, CK_ATTRIBUTE_TYPE t, struct attr_val *v,
       unsigned char **owned)
{
	int r;

	*owned = NULL;
	if ((r = attr_value(k, kind, t, v)) != ATTR_NONE)
		return r;
	if (kind == P11_OBJ_CERT &&
	    (t == CKA_SUBJECT || t == CKA_ISSUER || t == CKA_SERIAL_NUMBER)) {
		int len = cert_field(k, t, owned);
		if (len < 0)
			return ATTR_NONE;
		v->p = *owned;
		v->len = (size_t)len;
		return ATTR_OK;
	}
	return ATTR_NONE;
}

int
p11_obj_match(const struct p11_key *k, int kind, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	if (!object_exists(k, kind))
		return 0;
	for (CK_ULONG i = 0; i < n; i++) {
		struct attr_val v = {0};
		unsigned char *owned;
		int r = lookup(k, kind, tmpl[i].type, &v, &owned), ok;

		ok = r == ATTR_OK && tmpl[i].ulValueLen == v.len &&
		     (v.len == 0 ||
		      (tmpl[i].pValue != NULL && memcmp(tmpl[i].pValue, v.p, v.len) == 0));
		OPENSSL_free(owned);
		if (!ok)
			return 0;
	}
	return 1;
}

CK_RV
p11_obj_get(const struct p11_key *k, int kind, CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	CK_RV rv = CKR_OK;

	if (!object_exists(k, kind))
		return CKR_OBJECT_HANDLE_INVALID;
	for (CK_ULONG i = 0; i < n; i++) {
		struct attr_val v = {0};
		unsigned char *owned;
		int r = lookup(k, kind, tmpl[i].type, &v, &owned);

		if (r == ATTR_SENSITIVE) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_SENSITIVE;
		} else if (r == ATTR_NONE) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
		} else if (tmpl[i].pValue == NULL) {
			tmpl[i].ulValueLen = v.len;
		} else if (tmpl[i].ulValueLen >= v.len) {
			if (v.len > 0)
				memcpy(tmpl[i].pValue, v.p, v.len);
			tmpl[i].ulValueLen = v.len;
		} else {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		}
		OPENSSL_free(owned);
	}
	return rv;
}
