/*
 * pki_payload.h - the factory PKI's request payloads and CSR checks, shared
 * by qsignd (which validates at submission and acts on them) and clients
 * (which validate again and describe them to approvers from the exact
 * bytes they sign).
 *
 * Quorum payloads are JSON objects; unknown members, duplicates, wrong
 * types and out-of-range values are refused:
 *   pki.ca-create      {"factory": NAME, "validity_days": N}
 *   pki.tls            {"name": "tls"|"est", "action": "issue"|"rotate",
 *                       "csr": PEM, "validity_days": N}
 *   pki.device-ca      {"mode": "online", "name": NAME, "validity_days": N}
 *                      {"mode": "local", "name": NAME, "csr": PEM,
 *                       "validity_days": N}
 *   pki.ca-state       {"serial": HEX, "action": "disable"|"enable"|"revoke",
 *                       "reason": REASON}        (reason only with revoke)
 *   pki.device-revoke  {"ca_serial": HEX, "serial": HEX, "reason": REASON}
 * The online kind pki.device is a bare PEM CSR (IssueDevice).
 * REASON: keyCompromise, cACompromise, affiliationChanged, superseded,
 * cessationOfOperation, privilegeWithdrawn.
 */
#ifndef QS_PKI_PAYLOAD_H
#define QS_PKI_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#define PKI_KIND_CA_CREATE "pki.ca-create"
#define PKI_KIND_TLS "pki.tls"
#define PKI_KIND_DEVICE_CA "pki.device-ca"
#define PKI_KIND_CA_STATE "pki.ca-state"
#define PKI_KIND_DEVICE_REVOKE "pki.device-revoke"
#define PKI_KIND_DEVICE "pki.device"

/* A CSR in PEM: a P-384 or RSA-4096 request with a few SANs is under 4 KiB;
 * the cap keeps a peer from making us parse megabytes of ASN.1. */
#define PKI_MAX_CSR (16u * 1024)
/* A quorum payload: one CSR plus a few short members. */
#define PKI_MAX_PAYLOAD (PKI_MAX_CSR + 4096)
/* DNS names in one TLS CSR: a gateway has a handful. */
#define PKI_MAX_SANS 32
/* One subject attribute (X.520 ub-common-name is 64). */
#define PKI_MAX_ATTR 64
/* One DNS name (RFC 1035). */
#define PKI_MAX_DNS 253
/* Longest validity anything may ask for (the root's default is 20 years). */
#define PKI_MAX_VALIDITY_DAYS (30 * 366)
/* Serials are 16..20 random bytes, hex. */
#define PKI_MAX_SERIAL_HEX 40

/* What a CSR asks for, after pki_csr_parse() checked it. */
struct pki_csr {
	X509_REQ *req;
	char cn[PKI_MAX_ATTR + 1]; /* "" if absent */
	char ou[PKI_MAX_ATTR + 1];
	size_t nattrs;    /* subject attributes in all */
	char *subject;    /* RFC 2253 one-line (malloc'd) */
	char keydesc[32]; /* "EC P-256", "RSA 3072" */
	char **dns;       /* DNS SANs (malloc'd each) */
	size_t ndns;
	int has_bc; /* basicConstraints requested */
	int bc_ca;
	long bc_pathlen; /* -1 = no limit asked */
};

/*
 * Parse and check a PEM CSR (at most PKI_MAX_CSR bytes, exactly one block,
 * nothing but whitespace around it): its self-signature must verify; the
 * key must be EC P-256/P-384 or RSA 2048..4096; subject attributes must be
 * CN, OU, O, C, L or ST, each at most once, printable text without control
 * characters; SANs, if any, DNS names only. *out freed with pki_csr_free().
 * Errors: QS_ERR_INVALID with the reason, QS_ERR_BADSIG (signature),
 * QS_ERR_NOMEM.
 */
int pki_csr_parse(const uint8_t *pem, size_t len, struct pki_csr **out);
void pki_csr_free(struct pki_csr *c);

/*
 * A key's certificate (the policy's keys.NAME.certificate): pem must be one
 * PEM X.509 certificate; with spki_pem (a PEM public key) not NULL, it must
 * certify exactly that key (a certificate of another key makes signing
 * tools embed one nobody can verify the signature with). With der not
 * NULL, *der (OPENSSL_free) / *der_len receive the certificate as DER.
 * Errors: QS_ERR_INVALID with the reason, QS_ERR_NOMEM.
 */
int pki_key_cert_check(const char *pem, const char *spki_pem, uint8_t **der, size_t *der_len);

/* 1 if s is an RFC 4122 UUID in its textual form (36 characters,
 * lower- or upper-case hex). */
int pki_uuid_valid(const char *s);

/* A parsed quorum payload. */
struct pki_op {
	const char *kind; /* PKI_KIND_* (static) */
	char factory[PKI_MAX_ATTR + 1];
	char name[PKI_MAX_ATTR + 1];
	char action[16];
	char mode[16];
	char serial[PKI_MAX_SERIAL_HEX + 1];
	char ca_serial[PKI_MAX_SERIAL_HEX + 1];
	char reason[32];
	int64_t validity_days;
	char *csr_pem; /* malloc'd, NULL if none */
	size_t csr_len;
};

/* Parse the payload of quorum kind `kind` strictly (see the file comment).
 * CSRs are parsed and checked too. *out freed with pki_op_free().
 * Errors: QS_ERR_INVALID, QS_ERR_BADSIG, QS_ERR_NOMEM. */
int pki_op_parse(const char *kind, const uint8_t *p, size_t len, struct pki_op **out);
void pki_op_free(struct pki_op *op);

/* CRL reason code (CRL_REASON_*) of a REASON name, -1 if unknown. */
int pki_reason_code(const char *name);

/* proto/payload.c table entries: validate (0 or QS_ERR_INVALID /
 * QS_ERR_BADSIG) and describe for approvers (a malloc'd multi-line text
 * with the subject, SANs, key, usages, validity and the signing CA). */
int pki_ca_create_validate(const uint8_t *p, size_t len);
int pki_ca_create_describe(const uint8_t *p, size_t len, const char *context, char **out);
int pki_tls_validate(const uint8_t *p, size_t len);
int pki_tls_describe(const uint8_t *p, size_t len, const char *context, char **out);
int pki_device_ca_validate(const uint8_t *p, size_t len);
int pki_device_ca_describe(const uint8_t *p, size_t len, const char *context, char **out);
int pki_ca_state_validate(const uint8_t *p, size_t len);
int pki_ca_state_describe(const uint8_t *p, size_t len, const char *context, char **out);
int pki_device_revoke_validate(const uint8_t *p, size_t len);
int pki_device_revoke_describe(const uint8_t *p, size_t len, const char *context, char **out);
int pki_device_validate(const uint8_t *p, size_t len);
int pki_device_describe(const uint8_t *p, size_t len, const char *context, char **out);

#endif
