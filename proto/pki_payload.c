/*
 * Factory PKI payloads and CSR checks (see pki_payload.h). Everything here
 * reads peer bytes: sizes are capped before OpenSSL or jansson sees them,
 * and every string that ends up in a certificate or on an approver's
 * screen is checked for control characters first.
 */
#include "pki_payload.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "json_strict.h"
#include "qs_err.h"

#define PEM_CSR_BEGIN "-----BEGIN CERTIFICATE REQUEST-----"

void
pki_csr_free(struct pki_csr *c)
{
	if (c == NULL)
		return;
	X509_REQ_free(c->req);
	free(c->subject);
	for (size_t i = 0; i < c->ndns; i++)
		free(c->dns[i]);
	free(c->dns);
	free(c);
}

/* Printable text: no control characters (UTF-8 above 0x7f is fine). */
static int
text_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
dns_ok(const unsigned char *s, size_t n)
{
	if (n == 0 || n > PKI_MAX_DNS)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum(s[i]) || s[i] == '-' || s[i] == '.' || (s[i] == '*' && i == 0)))
			return 0;
	return 1;
}

static int
csr_key(struct pki_csr *c, EVP_PKEY *pk)
{
	char group[64];
	size_t glen = 0;
	int bits = EVP_PKEY_get_bits(pk);

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                    sizeof(group), &glen))
			return qs_fail(QS_ERR_INVALID, "CSR: EC key without a named curve");
		if (strcmp(group, "prime256v1") == 0)
			snprintf(c->keydesc, sizeof(c->keydesc), "EC P-256");
		else if (strcmp(group, "secp384r1") == 0)
			snprintf(c->keydesc, sizeof(c->keydesc), "EC P-384");
		else
			return qs_fail(QS_ERR_INVALID, "CSR: EC curve %.40s (want P-256 or P-384)",
			               group);
		return 0;
	case EVP_PKEY_RSA:
		if (bits < 2048 || bits > 4096)
			return qs_fail(QS_ERR_INVALID, "CSR: RSA key of %d bits (want 2048..4096)",
			               bits);
		snprintf(c->keydesc, sizeof(c->keydesc), "RSA %d", bits);
		return 0;
	default:
		return qs_fail(QS_ERR_INVALID, "CSR: key type not accepted (want EC or RSA)");
	}
}

static int
csr_subject(struct pki_csr *c)
{
	X509_NAME *nm = X509_REQ_get_subject_name(c->req);
	int n = X509_NAME_entry_count(nm), seen_cn = 0, seen_ou = 0, seen[6] = {0};
	static const int allowed[] = {NID_commonName,       NID_organizationalUnitName,
	                              NID_organizationName, NID_countryName,
	                              NID_localityName,     NID_stateOrProvinceName};
	BIO *b = NULL;
	BUF_MEM *bm;

	if (n <= 0 || n > 16)
		return qs_fail(QS_ERR_INVALID, "CSR: subject has %d attributes (1..16)", n);
	for (int i = 0; i < n; i++) {
		X509_NAME_ENTRY *e = X509_NAME_get_entry(nm, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), k;
		unsigned char *u = NULL;
		int ul;

		for (k = 0; k < 6 && allowed[k] != nid; k++)
			;
		if (k == 6)
			return qs_fail(
			        QS_ERR_INVALID,
			        "CSR: subject attribute %s is not accepted (CN, OU, O, C, L, "
			        "ST)",
			        nid == NID_undef ? "(unknown)" : OBJ_nid2sn(nid));
		if (seen[k]++)
			return qs_fail(QS_ERR_INVALID, "CSR: subject has %s twice",
			               OBJ_nid2sn(nid));
		if ((ul = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e))) < 0)
			return qs_fail(QS_ERR_INVALID, "CSR: subject %s is not text",
			               OBJ_nid2sn(nid));
		if (ul == 0 || ul > PKI_MAX_ATTR || !text_ok(u, (size_t)ul) ||
		    memchr(u, '\0', (size_t)ul) != NULL) {
			OPENSSL_free(u);
			return qs_fail(QS_ERR_INVALID,
			               "CSR: subject %s must be 1..%d printable characters",
			               OBJ_nid2sn(nid), PKI_MAX_ATTR);
		}
		if (nid == NID_commonName && !seen_cn++)
			memcpy(c->cn, u, (size_t)ul + 1);
		if (nid == NID_organizationalUnitName && !seen_ou++)
			memcpy(c->ou, u, (size_t)ul + 1);
		OPENSSL_free(u);
		c->nattrs++;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(b, nm, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
		BIO_free(b);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	BIO_get_mem_ptr(b, &bm);
	c->subject = strndup(bm->data, bm->length);
	BIO_free(b);
	return c->subject ? 0 : qs_fail(QS_ERR_NOMEM, "out of memory");
}

static int
csr_sans(struct pki_csr *c, GENERAL_NAMES *gn)
{
	int n = sk_GENERAL_NAME_num(gn);

	if (n <= 0 || n > PKI_MAX_SANS)
		return qs_fail(QS_ERR_INVALID, "CSR: %d subjectAltNames (1..%d)", n, PKI_MAX_SANS);
	if ((c->dns = calloc((size_t)n, sizeof(*c->dns))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gn, i);
		const unsigned char *d;
		int dl;

		if (g->type != GEN_DNS)
			return qs_fail(QS_ERR_INVALID,
			               "CSR: subjectAltName %d is not a DNS name (only DNS names "
			               "are accepted)",
			               i);
		d = ASN1_STRING_get0_data(g->d.dNSName);
		dl = ASN1_STRING_length(g->d.dNSName);
		if (!dns_ok(d, (size_t)dl))
			return qs_fail(QS_ERR_INVALID,
			               "CSR: subjectAltName %d is not a valid DNS "
			               "name",
			               i);
		if ((c->dns[c->ndns] = strndup((const char *)d, (size_t)dl)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		c->ndns++;
	}
	return 0;
}

static int
csr_extensions(struct pki_csr *c)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(c->req);
	int r = 0, n = exts ? sk_X509_EXTENSION_num(exts) : 0;

	c->bc_pathlen = -1;
	for (int i = 0; i < n && r == 0; i++) {
		X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(e));

		if (nid == NID_subject_alt_name) {
			GENERAL_NAMES *gn = X509V3_EXT_d2i(e);
			if (gn == NULL || c->dns != NULL)
				r = qs_fail(QS_ERR_INVALID, "CSR: malformed or repeated "
				                            "subjectAltName");
			else
				r = csr_sans(c, gn);
			GENERAL_NAMES_free(gn);
		} else if (nid == NID_basic_constraints) {
			BASIC_CONSTRAINTS *bc = X509V3_EXT_d2i(e);
			if (bc == NULL || c->has_bc) {
				r = qs_fail(QS_ERR_INVALID, "CSR: malformed or repeated "
				                            "basicConstraints");
			} else {
				c->has_bc = 1;
				c->bc_ca = bc->ca != 0;
				if (bc->pathlen != NULL)
					c->bc_pathlen = ASN1_INTEGER_get(bc->pathlen);
			}
			BASIC_CONSTRAINTS_free(bc);
		}
		/* Other requested extensions are never copied: the profile
		 * decides usages, so they need no check. */
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return r;
}

int
pki_csr_parse(const uint8_t *pem, size_t len, struct pki_csr **out)
{
	struct pki_csr *c = NULL;
	BIO *b = NULL;
	EVP_PKEY *pk;
	size_t i = 0;
	char rest[8];
	int r, n;

	*out = NULL;
	if (len == 0 || len > PKI_MAX_CSR)
		return qs_fail(QS_ERR_INVALID, "CSR of %zu bytes (1..%u)", len, PKI_MAX_CSR);
	if (memchr(pem, '\0', len) != NULL)
		return qs_fail(QS_ERR_INVALID, "CSR contains a NUL byte");
	while (i < len && isspace(pem[i]))
		i++;
	if (len - i < strlen(PEM_CSR_BEGIN) ||
	    memcmp(pem + i, PEM_CSR_BEGIN, strlen(PEM_CSR_BEGIN)) != 0)
		return qs_fail(QS_ERR_INVALID, "CSR must be PEM (" PEM_CSR_BEGIN ")");
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (b = BIO_new_mem_buf(pem + i, (int)(len - i))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((c->req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL)) == NULL) {
		ERR_clear_error();
		r = qs_fail(QS_ERR_INVALID, "CSR: not a valid PEM certificate request");
		goto out;
	}
	while ((n = BIO_read(b, rest, sizeof(rest))) > 0)
		for (int k = 0; k < n; k++)
			if (!isspace((unsigned char)rest[k])) {
				r = qs_fail(QS_ERR_INVALID, "CSR: trailing data after the PEM "
				                            "block");
				goto out;
			}
	if ((pk = X509_REQ_get0_pubkey(c->req)) == NULL) {
		ERR_clear_error();
		r = qs_fail(QS_ERR_INVALID, "CSR: unreadable public key");
		goto out;
	}
	if ((r = csr_key(c, pk)) != 0)
		goto out;
	if (X509_REQ_verify(c->req, pk) != 1) {
		ERR_clear_error();
		r = qs_fail(QS_ERR_BADSIG, "CSR: its signature does not verify with its own key");
		goto out;
	}
	if ((r = csr_subject(c)) != 0 || (r = csr_extensions(c)) != 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	BIO_free(b);
	pki_csr_free(c);
	return r;
}

int
pki_uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

static const struct {
	const char *name;
	int code;
} reasons[] = {
        {"keyCompromise", CRL_REASON_KEY_COMPROMISE},
        {"cACompromise", CRL_REASON_CA_COMPROMISE},
        {"affiliationChanged", CRL_REASON_AFFILIATION_CHANGED},
        {"superseded", CRL_REASON_SUPERSEDED},
        {"cessationOfOperation", CRL_REASON_CESSATION_OF_OPERATION},
        {"privilegeWithdrawn", CRL_REASON_PRIVILEGE_WITHDRAWN},
};

int
pki_reason_code(const char *name)
{
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reasons[i].name, name) == 0)
			return reasons[i].code;
	return -1;
}

/* ------------------------------------------------------------ payloads */

void
pki_op_free(struct pki_op *op)
{
	if (op == NULL)
		return;
	free(op->csr_pem);
	free(op);
}

/* Copy string member `key` of o into buf: required unless optional; a
 * name ([A-Za-z0-9._-]), hex, or one of `choices`. */
enum str_check { S_NAME, S_HEX, S_CHOICE, S_REASON };

static int
get_str(json_t *o, const char *key, int required, enum str_check chk, const char *const *choices,
        char *buf, size_t cap)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	buf[0] = '\0';
	if (v == NULL)
		return required ? qs_fail(QS_ERR_INVALID, "\"%s\" is required", key) : 0;
	if (!json_is_string(v))
		return qs_fail(QS_ERR_INVALID, "\"%s\" must be a string", key);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= cap || strlen(s) != n)
		return qs_fail(QS_ERR_INVALID, "\"%s\" must be 1..%zu characters", key, cap - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		int ok = chk == S_HEX ? isxdigit(ch) && !isupper(ch)
		                      : isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
		if (!ok)
			return qs_fail(QS_ERR_INVALID, "\"%s\" must be %s", key,
			               chk == S_HEX ? "lower-case hex" : "a name ([A-Za-z0-9._-])");
	}
	if (chk == S_CHOICE) {
		size_t k;
		for (k = 0; choices[k] != NULL && strcmp(choices[k], s) != 0; k++)
			;
		if (choices[k] == NULL)
			return qs_fail(QS_ERR_INVALID,
			               "\"%s\": \"%s\" is not one of the accepted "
			               "values",
			               key, s);
	}
	if (chk == S_REASON && pki_reason_code(s) < 0)
		return qs_fail(QS_ERR_INVALID, "\"%s\": unknown CRL reason \"%s\"", key, s);
	memcpy(buf, s, n + 1);
	return 0;
}

static int
get_days(json_t *o, struct pki_op *op)
{
	json_t *v = json_object_get(o, "validity_days");

	if (v == NULL)
		return qs_fail(QS_ERR_INVALID, "\"validity_days\" is required");
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > PKI_MAX_VALIDITY_DAYS)
		return qs_fail(QS_ERR_INVALID, "\"validity_days\" must be an integer 1..%d",
		               PKI_MAX_VALIDITY_DAYS);
	op->validity_days = json_integer_value(v);
	return 0;
}

static int
get_csr(json_t *o, struct pki_op *op)
{
	json_t *v = json_object_get(o, "csr");
	struct pki_csr *c = NULL;
	int r;

	if (!json_is_string(v))
		return qs_fail(QS_ERR_INVALID, "\"csr\" (a PEM string) is required");
	op->csr_len = json_string_length(v);
	if ((r = pki_csr_parse((const uint8_t *)json_string_value(v), op->csr_len, &c)) != 0)
		return r;
	pki_csr_free(c);
	if ((op->csr_pem = strndup(json_string_value(v), op->csr_len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

static int
parse_members(const char *kind, json_t *o, struct pki_op *op)
{
	static const char *const create_m[] = {"factory", "validity_days", NULL};
	static const char *const tls_m[] = {"name", "action", "csr", "validity_days", NULL};
	static const char *const dca_m[] = {"mode", "name", "csr", "validity_days", NULL};
	static const char *const state_m[] = {"serial", "action", "reason", NULL};
	static const char *const drev_m[] = {"ca_serial", "serial", "reason", NULL};
	static const char *const tls_names[] = {"tls", "est", NULL};
	static const char *const tls_actions[] = {"issue", "rotate", NULL};
	static const char *const modes[] = {"online", "local", NULL};
	static const char *const state_actions[] = {"disable", "enable", "revoke", NULL};
	int r;

	if (strcmp(kind, PKI_KIND_CA_CREATE) == 0) {
		op->kind = PKI_KIND_CA_CREATE;
		if ((r = qs_json_only(o, kind, create_m)) != 0 ||
		    (r = get_str(o, "factory", 1, S_NAME, NULL, op->factory,
		                 sizeof(op->factory))) != 0)
			return r;
		return get_days(o, op);
	}
	if (strcmp(kind, PKI_KIND_TLS) == 0) {
		op->kind = PKI_KIND_TLS;
		if ((r = qs_json_only(o, kind, tls_m)) != 0 ||
		    (r = get_str(o, "name", 1, S_CHOICE, tls_names, op->name, sizeof(op->name))) !=
		            0 ||
		    (r = get_str(o, "action", 1, S_CHOICE, tls_actions, op->action,
		                 sizeof(op->action))) != 0 ||
		    (r = get_days(o, op)) != 0)
			return r;
		return get_csr(o, op);
	}
	if (strcmp(kind, PKI_KIND_DEVICE_CA) == 0) {
		op->kind = PKI_KIND_DEVICE_CA;
		if ((r = qs_json_only(o, kind, dca_m)) != 0 ||
		    (r = get_str(o, "mode", 1, S_CHOICE, modes, op->mode, sizeof(op->mode))) != 0 ||
		    (r = get_str(o, "name", 1, S_NAME, NULL, op->name, sizeof(op->name))) != 0 ||
		    (r = get_days(o, op)) != 0)
			return r;
		if (strcmp(op->mode, "online") == 0)
			return json_object_get(o, "csr") != NULL
			               ? qs_fail(QS_ERR_INVALID, "an online device CA's key is "
			                                         "generated in the token: no "
			                                         "\"csr\"")
			               : 0;
		return get_csr(o, op);
	}
	if (strcmp(kind, PKI_KIND_CA_STATE) == 0) {
		op->kind = PKI_KIND_CA_STATE;
		if ((r = qs_json_only(o, kind, state_m)) != 0 ||
		    (r = get_str(o, "serial", 1, S_HEX, NULL, op->serial, sizeof(op->serial))) !=
		            0 ||
		    (r = get_str(o, "action", 1, S_CHOICE, state_actions, op->action,
		                 sizeof(op->action))) != 0 ||
		    (r = get_str(o, "reason", 0, S_REASON, NULL, op->reason, sizeof(op->reason))) !=
		            0)
			return r;
		if (op->reason[0] != '\0' && strcmp(op->action, "revoke") != 0)
			return qs_fail(QS_ERR_INVALID, "\"reason\" goes with \"revoke\" only "
			                               "(disable is always certificateHold)");
		return 0;
	}
	if (strcmp(kind, PKI_KIND_DEVICE_REVOKE) == 0) {
		op->kind = PKI_KIND_DEVICE_REVOKE;
		if ((r = qs_json_only(o, kind, drev_m)) != 0 ||
		    (r = get_str(o, "ca_serial", 1, S_HEX, NULL, op->ca_serial,
		                 sizeof(op->ca_serial))) != 0 ||
		    (r = get_str(o, "serial", 1, S_HEX, NULL, op->serial, sizeof(op->serial))) != 0)
			return r;
		return get_str(o, "reason", 0, S_REASON, NULL, op->reason, sizeof(op->reason));
	}
	return qs_fail(QS_ERR_INVALID, "not a PKI quorum kind");
}

int
pki_op_parse(const char *kind, const uint8_t *p, size_t len, struct pki_op **out)
{
	struct pki_op *op = NULL;
	json_error_t e;
	json_t *o = NULL;
	int r;

	*out = NULL;
	if (len == 0 || len > PKI_MAX_PAYLOAD)
		return qs_fail(QS_ERR_INVALID, "%s payload of %zu bytes (1..%u)", kind, len,
		               PKI_MAX_PAYLOAD);
	if ((o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		return qs_fail(QS_ERR_INVALID, "%s payload is not JSON: %s", kind, e.text);
	if (!json_is_object(o)) {
		r = qs_fail(QS_ERR_INVALID, "%s payload must be a JSON object", kind);
		goto out;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = parse_members(kind, o, op)) != 0) {
		r = qs_wrap(r, "%s", kind);
		goto out;
	}
	*out = op;
	op = NULL;
	r = 0;
out:
	json_decref(o);
	pki_op_free(op);
	return r;
}

/* ------------------------------------------------------------ table */

static int
validate_kind(const char *kind, const uint8_t *p, size_t len)
{
	struct pki_op *op = NULL;
	int r = pki_op_parse(kind, p, len, &op);

	pki_op_free(op);
	return r;
}

int
pki_ca_create_validate(const uint8_t *p, size_t len)
{
	return validate_kind(PKI_KIND_CA_CREATE, p, len);
}

int
pki_tls_validate(const uint8_t *p, size_t len)
{
	return validate_kind(PKI_KIND_TLS, p, len);
}

int
pki_device_ca_validate(const uint8_t *p, size_t len)
{
	return validate_kind(PKI_KIND_DEVICE_CA, p, len);
}

int
pki_ca_state_validate(const uint8_t *p, size_t len)
{
	return validate_kind(PKI_KIND_CA_STATE, p, len);
}

int
pki_device_revoke_validate(const uint8_t *p, size_t len)
{
	return validate_kind(PKI_KIND_DEVICE_REVOKE, p, len);
}

int
pki_device_validate(const uint8_t *p, size_t len)
{
	struct pki_csr *c = NULL;
	int r = pki_csr_parse(p, len, &c);

	pki_csr_free(c);
	return r;
}

static void
describe_csr(FILE *f, const struct pki_csr *c)
{
	fprintf(f, "  requested subject: %s\n", c->subject);
	fprintf(f, "  key: %s\n", c->keydesc);
	if (c->ndns == 0)
		fprintf(f, "  DNS names (SAN): none\n");
	for (size_t i = 0; i < c->ndns; i++)
		fprintf(f, "  DNS name (SAN): %s\n", c->dns[i]);
	if (c->has_bc)
		fprintf(f, "  the CSR asks for basicConstraints CA:%s%s%ld\n",
		        c->bc_ca ? "TRUE" : "FALSE", c->bc_pathlen >= 0 ? ", pathlen:" : "",
		        c->bc_pathlen >= 0 ? c->bc_pathlen : 0L);
}

static void
describe_op(FILE *f, const struct pki_op *op, const struct pki_csr *c)
{
	if (strcmp(op->kind, PKI_KIND_CA_CREATE) == 0) {
		fprintf(f,
		        "create the factory root CA (only once)\n"
		        "  subject: CN=Factory-CA, OU=%s\n"
		        "  key: EC P-256, generated in the token\n"
		        "  self-signed; basicConstraints CA:TRUE (critical); keyUsage "
		        "keyCertSign, cRLSign (critical)\n"
		        "  validity: %lld days\n",
		        op->factory, (long long)op->validity_days);
	} else if (strcmp(op->kind, PKI_KIND_TLS) == 0) {
		fprintf(f, "%s the %s certificate, signed by the factory root CA\n",
		        strcmp(op->action, "rotate") == 0 ? "rotate (re-issue)" : "issue",
		        strcmp(op->name, "est") == 0 ? "EST server TLS" : "server TLS");
		describe_csr(f, c);
		fprintf(f,
		        "  issued with: subject and DNS names above; basicConstraints CA:FALSE "
		        "(critical); keyUsage digitalSignature (critical); extendedKeyUsage "
		        "serverAuth\n"
		        "  validity: %lld days (never past the root CA's notAfter)\n",
		        (long long)op->validity_days);
	} else if (strcmp(op->kind, PKI_KIND_DEVICE_CA) == 0) {
		fprintf(f, "add %s device CA \"%s\", signed by the factory root CA\n",
		        strcmp(op->mode, "online") == 0 ? "an online" : "a local", op->name);
		if (c != NULL)
			describe_csr(f, c);
		else
			fprintf(f,
			        "  subject: CN=%s, OU=<factory>\n"
			        "  key: EC P-256, generated in the token\n",
			        op->name);
		fprintf(f,
		        "  issued with: basicConstraints CA:TRUE, pathlen:0 (critical); "
		        "keyUsage keyCertSign, cRLSign (critical)\n"
		        "  validity: %lld days (never past the root CA's notAfter)\n",
		        (long long)op->validity_days);
	} else if (strcmp(op->kind, PKI_KIND_CA_STATE) == 0) {
		if (strcmp(op->action, "disable") == 0)
			fprintf(f,
			        "disable device CA serial %s: no new device certificates; "
			        "existing devices keep working (root CRL entry, reason "
			        "certificateHold)\n",
			        op->serial);
		else if (strcmp(op->action, "enable") == 0)
			fprintf(f,
			        "enable device CA serial %s again (removes its certificateHold "
			        "entry from the root CRL)\n",
			        op->serial);
		else
			fprintf(f,
			        "REVOKE device CA serial %s: devices it issued are refused "
			        "(root CRL entry, reason %s); cannot be undone\n",
			        op->serial, op->reason[0] ? op->reason : "per policy");
	} else {
		fprintf(f, "revoke device certificate serial %s of device CA %s (reason %s)\n",
		        op->serial, op->ca_serial, op->reason[0] ? op->reason : "unspecified");
	}
}

static int
describe_kind(const char *kind, const uint8_t *p, size_t len, char **out)
{
	struct pki_op *op = NULL;
	struct pki_csr *c = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = NULL;
	int r;

	*out = NULL;
	if ((r = pki_op_parse(kind, p, len, &op)) != 0)
		return r;
	if (op->csr_pem != NULL &&
	    (r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &c)) != 0)
		goto out;
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	describe_op(f, op, c);
	if (fclose(f) != 0 || buf == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	*out = buf;
	buf = NULL;
	r = 0;
out:
	free(buf);
	pki_csr_free(c);
	pki_op_free(op);
	return r;
}

int
pki_ca_create_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	(void)context;
	return describe_kind(PKI_KIND_CA_CREATE, p, len, out);
}

int
pki_tls_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	(void)context;
	return describe_kind(PKI_KIND_TLS, p, len, out);
}

int
pki_device_ca_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	(void)context;
	return describe_kind(PKI_KIND_DEVICE_CA, p, len, out);
}

int
pki_ca_state_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	(void)context;
	return describe_kind(PKI_KIND_CA_STATE, p, len, out);
}

int
pki_device_revoke_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	(void)context;
	return describe_kind(PKI_KIND_DEVICE_REVOKE, p, len, out);
}

int
pki_device_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	struct pki_csr *c = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int r;

	(void)context;
	*out = NULL;
	if ((r = pki_csr_parse(p, len, &c)) != 0)
		return r;
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		pki_csr_free(c);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	fprintf(f, "device certificate from a CSR, signed by the online device CA\n");
	describe_csr(f, c);
	fprintf(f, "  issued with: CN=<device UUID>, OU=<factory>; keyUsage digitalSignature "
	           "(critical); extendedKeyUsage clientAuth\n");
	fclose(f);
	pki_csr_free(c);
	if (buf == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*out = buf;
	return 0;
}

int
pki_key_cert_check(const char *pem, const char *spki_pem, uint8_t **der, size_t *der_len)
{
	BIO *b = NULL, *kb = NULL;
	X509 *x = NULL;
	EVP_PKEY *xk = NULL, *kk = NULL;
	unsigned char *d = NULL;
	int len, r;

	if (der != NULL) {
		*der = NULL;
		*der_len = 0;
	}
	if ((b = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		r = qs_fail(QS_ERR_INVALID, "certificate: not a PEM X.509 certificate");
		goto out;
	}
	if (spki_pem != NULL) {
		if ((xk = X509_get_pubkey(x)) == NULL ||
		    (kb = BIO_new_mem_buf(spki_pem, -1)) == NULL ||
		    (kk = PEM_read_bio_PUBKEY(kb, NULL, NULL, NULL)) == NULL) {
			r = qs_fail(QS_ERR_INVALID, "certificate: public key not readable");
			goto out;
		}
		if (EVP_PKEY_eq(xk, kk) != 1) {
			r = qs_fail(QS_ERR_INVALID, "certificate: it certifies another public key");
			goto out;
		}
	}
	if (der != NULL) {
		if ((len = i2d_X509(x, &d)) <= 0) {
			r = qs_fail(QS_ERR_NOMEM, "certificate: cannot encode");
			goto out;
		}
		*der = d;
		*der_len = (size_t)len;
		d = NULL;
	}
	r = 0;
out:
	OPENSSL_free(d);
	EVP_PKEY_free(kk);
	EVP_PKEY_free(xk);
	X509_free(x);
	BIO_free(kb);
	BIO_free(b);
	ERR_clear_error();
	return r;
}
