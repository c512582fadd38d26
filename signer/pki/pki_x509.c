/*
 * Certificate and CRL profiles of the factory PKI. The profile, never the
 * CSR, decides usages: nothing a requester asks for besides the subject,
 * its key and (TLS) DNS names reaches a certificate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki.h"
#include "qs_err.h"
#include "statement.h"

/* Backdate notBefore a little: device clocks at first boot are rough. */
#define NOT_BEFORE_SKEW_S 300
/* Random serial bytes: 20 is RFC 5280's maximum; 159 random bits. */
#define SERIAL_BYTES 20

static int
ossl_fail(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[160];

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return qs_fail(QS_ERR_CRYPTO, "%s: %s", what, e ? buf : "failed");
}

int64_t
pki_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

char *
pki_name_str(const X509_NAME *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *s = NULL;

	if (b != NULL &&
	    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		BIO_get_mem_ptr(b, &bm);
		s = strndup(bm->data, bm->length);
	}
	BIO_free(b);
	return s;
}

static int
random_serial(ASN1_INTEGER **out, char hex[PKI_MAX_SERIAL_HEX + 1])
{
	uint8_t b[SERIAL_BYTES];
	BIGNUM *bn = NULL;
	char *h;

	*out = NULL;
	if (RAND_bytes(b, sizeof(b)) != 1)
		return qs_fail(QS_ERR_CRYPTO, "no randomness for a serial number");
	b[0] = (uint8_t)((b[0] & 0x7f) | 0x40); /* positive, always 20 bytes */
	if ((h = qs_hex(b, sizeof(b))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	snprintf(hex, PKI_MAX_SERIAL_HEX + 1, "%s", h);
	free(h);
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL ||
	    (*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		BN_free(bn);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	BN_free(bn);
	return 0;
}

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = e != NULL && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	if (!ok)
		return ossl_fail(OBJ_nid2sn(nid));
	return 0;
}

static int
add_sans(X509 *x, char *const *dns, size_t n)
{
	GENERAL_NAMES *gns = GENERAL_NAMES_new();
	int ok = gns != NULL;

	for (size_t i = 0; ok && i < n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ok = g != NULL && s != NULL && ASN1_STRING_set(s, dns[i], (int)strlen(dns[i]));
		if (ok) {
			GENERAL_NAME_set0_value(g, GEN_DNS, s);
			s = NULL;
			ok = sk_GENERAL_NAME_push(gns, g) > 0;
			if (ok)
				g = NULL;
		}
		ASN1_IA5STRING_free(s);
		GENERAL_NAME_free(g);
	}
	ok = ok && X509_add1_ext_i2d(x, NID_subject_alt_name, gns, 0, X509V3_ADD_DEFAULT) == 1;
	GENERAL_NAMES_free(gns);
	return ok ? 0 : ossl_fail("subjectAltName");
}

static int
extensions(X509 *x, const struct pki_tmpl *t)
{
	X509V3_CTX ctx;
	int r;

	X509V3_set_ctx(&ctx, t->issuer ? (X509 *)t->issuer : x, x, NULL, NULL, 0);
	switch (t->profile) {
	case PKI_P_ROOT:
		if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE")) != 0 ||
		    (r = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) != 0)
			return r;
		break;
	case PKI_P_DEVICE_CA:
		if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) !=
		            0 ||
		    (r = add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign")) != 0)
			return r;
		break;
	case PKI_P_TLS:
		if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
		    (r = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature")) != 0 ||
		    (r = add_ext(x, &ctx, NID_ext_key_usage, "serverAuth")) != 0 ||
		    (r = add_sans(x, t->dns, t->ndns)) != 0)
			return r;
		break;
	case PKI_P_DEVICE:
		if ((r = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
		    (r = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature")) != 0 ||
		    (r = add_ext(x, &ctx, NID_ext_key_usage, "clientAuth")) != 0)
			return r;
		break;
	}
	if ((r = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0)
		return r;
	if (t->issuer != NULL)
		return add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	return 0;
}

int
pki_x509_build(const struct pki_tmpl *t, X509 **out, char serial_hex[PKI_MAX_SERIAL_HEX + 1])
{
	ASN1_INTEGER *serial = NULL;
	X509 *x = NULL;
	int64_t now = (int64_t)time(NULL), nb = now - NOT_BEFORE_SKEW_S, na;
	int r;

	*out = NULL;
	if (t->days < 1)
		return qs_fail(QS_ERR_INVALID, "validity must be at least one day");
	na = now + t->days * 86400;
	if (t->issuer != NULL) {
		int64_t inb = pki_time(X509_get0_notBefore(t->issuer));
		int64_t ina = pki_time(X509_get0_notAfter(t->issuer));
		if (ina <= now)
			return qs_fail(QS_ERR_PRECONDITION, "the issuing CA has expired");
		if (na > ina)
			na = ina; /* never outlive the issuer */
		if (nb < inb)
			nb = inb;
	}
	if ((r = random_serial(&serial, serial_hex)) != 0)
		goto out;
	if ((x = X509_new()) == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !X509_set_serialNumber(x, serial) || !X509_set_subject_name(x, t->subject) ||
	    !X509_set_issuer_name(x, t->issuer ? X509_get_subject_name(t->issuer) : t->subject) ||
	    !X509_set_pubkey(x, t->pub) || ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL) {
		r = ossl_fail("build the certificate");
		goto out;
	}
	if ((r = extensions(x, t)) != 0)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	ASN1_INTEGER_free(serial);
	X509_free(x);
	return r;
}

/* ------------------------------------------------------------ checks */

/* The extensions profile pr may carry (extensions() writes them). */
static int
ext_allowed(enum pki_profile pr, int nid)
{
	return nid == NID_basic_constraints || nid == NID_key_usage ||
	       nid == NID_subject_key_identifier || nid == NID_authority_key_identifier ||
	       (nid == NID_ext_key_usage && (pr == PKI_P_TLS || pr == PKI_P_DEVICE)) ||
	       (nid == NID_subject_alt_name && pr == PKI_P_TLS);
}

int
pki_x509_profile_of(X509 *x, enum pki_profile *out)
{
	uint32_t fl = X509_get_extension_flags(x), ku = X509_get_key_usage(x);
	uint32_t xku = X509_get_extended_key_usage(x);
	long pl = X509_get_pathlen(x);
	enum pki_profile pr;

	if ((fl & EXFLAG_INVALID) || !(fl & EXFLAG_BCONS) || !(fl & EXFLAG_KUSAGE))
		return qs_fail(QS_ERR_INVALID, "no basicConstraints and keyUsage of a profile");
	if (fl & EXFLAG_CA) {
		if (ku != (KU_KEY_CERT_SIGN | KU_CRL_SIGN) || (fl & EXFLAG_XKUSAGE))
			return qs_fail(QS_ERR_INVALID, "a CA certificate with other key usages");
		if (pl == 0)
			pr = PKI_P_DEVICE_CA;
		else if (pl == -1 && (fl & EXFLAG_SS))
			pr = PKI_P_ROOT;
		else
			return qs_fail(QS_ERR_INVALID,
			               "a CA certificate of no profile (path length %ld)", pl);
	} else {
		if (ku != KU_DIGITAL_SIGNATURE || !(fl & EXFLAG_XKUSAGE))
			return qs_fail(QS_ERR_INVALID,
			               "an end-entity certificate with other key usages");
		if (xku == XKU_SSL_SERVER)
			pr = PKI_P_TLS;
		else if (xku == XKU_SSL_CLIENT)
			pr = PKI_P_DEVICE;
		else
			return qs_fail(QS_ERR_INVALID, "an extended key usage of no profile");
	}
	for (int i = 0; i < X509_get_ext_count(x); i++) {
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(x, i)));
		if (!ext_allowed(pr, nid))
			return qs_fail(QS_ERR_INVALID,
			               "an extension (%s) the profile does not have",
			               nid == NID_undef ? "unknown" : OBJ_nid2sn(nid));
	}
	*out = pr;
	return 0;
}

/* The single value of attribute nid in n (UTF-8 into out), or "" . */
static int
name_attr(const X509_NAME *n, int nid, char *out, size_t cap)
{
	int i = X509_NAME_get_index_by_NID(n, nid, -1);
	unsigned char *u = NULL;
	int len;

	out[0] = '\0';
	if (i < 0 || X509_NAME_get_index_by_NID(n, nid, i) >= 0)
		return -1;
	if ((len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)))) <
	            0 ||
	    (size_t)len >= cap || memchr(u, '\0', (size_t)len) != NULL) {
		OPENSSL_free(u);
		return -1;
	}
	memcpy(out, u, (size_t)len);
	out[len] = '\0';
	OPENSSL_free(u);
	return 0;
}

int
pki_x509_within(const X509 *x, enum pki_profile pr, const struct pki_conf *c)
{
	static const char *const names[] = {"root CA", "device CA", "TLS", "device"};
	int64_t days = pr == PKI_P_ROOT        ? c->days_root
	               : pr == PKI_P_DEVICE_CA ? c->days_device_ca
	               : pr == PKI_P_TLS       ? c->days_tls
	                                       : c->days_device;
	int64_t now = (int64_t)time(NULL);
	/* A minute of slack: the front built it a moment ago. */
	int64_t nb = pki_time(X509_get0_notBefore(x)), na = pki_time(X509_get0_notAfter(x));
	char cn[PKI_MAX_ATTR + 1], ou[PKI_MAX_ATTR + 1];
	const X509_NAME *subj = X509_get_subject_name(x);

	if (nb < now - NOT_BEFORE_SKEW_S - 60 || na > now + days * 86400 + 60 || na <= nb)
		return qs_fail(QS_ERR_INVALID,
		               "a %s certificate valid beyond the policy's %lld days from now",
		               names[pr], (long long)days);
	if (pr != PKI_P_DEVICE)
		return 0;
	if (X509_NAME_entry_count(subj) != 2 || name_attr(subj, NID_commonName, cn, sizeof(cn)) ||
	    name_attr(subj, NID_organizationalUnitName, ou, sizeof(ou)) || !pki_uuid_valid(cn) ||
	    strcmp(ou, c->factory) != 0)
		return qs_fail(QS_ERR_INVALID,
		               "a device certificate whose subject is not CN=<UUID>, OU=%s",
		               c->factory);
	return 0;
}

int
pki_crl_within(const X509_CRL *crl, const struct pki_conf *c)
{
	const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);

	if (nu == NULL || pki_time(nu) > (int64_t)time(NULL) + c->crl_days * 86400 + 60)
		return qs_fail(QS_ERR_INVALID,
		               "a CRL whose next update is beyond the policy's %lld days",
		               (long long)c->crl_days);
	return 0;
}

static int
serial_from_hex(const char *hex, ASN1_INTEGER **out)
{
	BIGNUM *bn = NULL;

	*out = NULL;
	if (!BN_hex2bn(&bn, hex) || (*out = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		BN_free(bn);
		return qs_fail(QS_ERR_INVALID, "bad serial %s", hex);
	}
	BN_free(bn);
	return 0;
}

static int
add_entry(X509_CRL *crl, const struct pki_crl_entry *e)
{
	X509_REVOKED *rv = X509_REVOKED_new();
	ASN1_INTEGER *sn = NULL;
	ASN1_TIME *t = NULL;
	ASN1_ENUMERATED *reason = NULL;
	int r;

	if (rv == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = serial_from_hex(e->serial_hex, &sn)) != 0)
		goto out;
	if ((t = ASN1_TIME_set(NULL, e->time)) == NULL ||
	    (reason = ASN1_ENUMERATED_new()) == NULL || !ASN1_ENUMERATED_set(reason, e->reason) ||
	    !X509_REVOKED_set_serialNumber(rv, sn) || !X509_REVOKED_set_revocationDate(rv, t) ||
	    X509_REVOKED_add1_ext_i2d(rv, NID_crl_reason, reason, 0, 0) != 1 ||
	    !X509_CRL_add0_revoked(crl, rv)) {
		r = ossl_fail("CRL entry");
		goto out;
	}
	rv = NULL;
	r = 0;
out:
	X509_REVOKED_free(rv);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(t);
	ASN1_ENUMERATED_free(reason);
	return r;
}

int
pki_crl_build(const X509 *issuer, uint64_t number, int64_t days, const struct pki_crl_entry *e,
              size_t n, X509_CRL **out)
{
	X509_CRL *crl = NULL;
	ASN1_TIME *lu = NULL, *nu = NULL;
	ASN1_INTEGER *num = NULL;
	X509V3_CTX ctx;
	X509_EXTENSION *aki = NULL;
	int64_t now = (int64_t)time(NULL);
	int r;

	*out = NULL;
	if ((crl = X509_CRL_new()) == NULL || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) ||
	    (lu = ASN1_TIME_set(NULL, now)) == NULL ||
	    (nu = ASN1_TIME_set(NULL, now + days * 86400)) == NULL ||
	    !X509_CRL_set1_lastUpdate(crl, lu) || !X509_CRL_set1_nextUpdate(crl, nu) ||
	    (num = ASN1_INTEGER_new()) == NULL || !ASN1_INTEGER_set_uint64(num, number) ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1) {
		r = ossl_fail("build the CRL");
		goto out;
	}
	X509V3_set_ctx(&ctx, (X509 *)issuer, NULL, NULL, crl, 0);
	if ((aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always")) ==
	            NULL ||
	    !X509_CRL_add_ext(crl, aki, -1)) {
		r = ossl_fail("CRL authorityKeyIdentifier");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((r = add_entry(crl, &e[i])) != 0)
			goto out;
	*out = crl;
	crl = NULL;
	r = 0;
out:
	X509_EXTENSION_free(aki);
	ASN1_TIME_free(lu);
	ASN1_TIME_free(nu);
	ASN1_INTEGER_free(num);
	X509_CRL_free(crl);
	return r;
}

static int
finish_pem(BIO *b, const unsigned char *der, int der_len, char **pem, char sha_hex[65])
{
	BUF_MEM *bm;
	uint8_t dg[32];
	char *h;

	BIO_get_mem_ptr(b, &bm);
	if ((*pem = strndup(bm->data, bm->length)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	qs_sha256(der, (size_t)der_len, dg);
	if ((h = qs_hex(dg, 32)) == NULL) {
		free(*pem);
		*pem = NULL;
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	memcpy(sha_hex, h, 65);
	free(h);
	return 0;
}

int
pki_cert_pem(const X509 *x, char **pem, char sha_hex[65])
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	int der_len, r;

	*pem = NULL;
	if (b == NULL || !PEM_write_bio_X509(b, (X509 *)x) ||
	    (der_len = i2d_X509((X509 *)x, &der)) <= 0)
		r = ossl_fail("encode the certificate");
	else
		r = finish_pem(b, der, der_len, pem, sha_hex);
	OPENSSL_free(der);
	BIO_free(b);
	return r;
}

int
pki_crl_pem(const X509_CRL *crl, char **pem, char sha_hex[65])
{
	BIO *b = BIO_new(BIO_s_mem());
	unsigned char *der = NULL;
	int der_len, r;

	*pem = NULL;
	if (b == NULL || !PEM_write_bio_X509_CRL(b, (X509_CRL *)crl) ||
	    (der_len = i2d_X509_CRL((X509_CRL *)crl, &der)) <= 0)
		r = ossl_fail("encode the CRL");
	else
		r = finish_pem(b, der, der_len, pem, sha_hex);
	OPENSSL_free(der);
	BIO_free(b);
	return r;
}

int
pki_cert_parse(const char *pem, X509 **out)
{
	BIO *b = BIO_new_mem_buf(pem, -1);

	*out = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*out == NULL)
		return ossl_fail("stored certificate");
	return 0;
}

X509_NAME *
pki_cn_ou(const char *cn, const char *ou)
{
	X509_NAME *n = X509_NAME_new();

	if (n == NULL ||
	    !X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
	                                -1, -1, 0) ||
	    !X509_NAME_add_entry_by_NID(n, NID_organizationalUnitName, MBSTRING_UTF8,
	                                (const unsigned char *)ou, -1, -1, 0)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}
