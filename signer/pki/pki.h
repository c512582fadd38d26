/*
 * pki.h - the factory PKI inside qsignd: root CA, TLS / EST certificates,
 * online and local device CAs, device certificates, CRLs (issue #7, seed
 * 002). CA keys are generated in a token and never leave it.
 *
 *   pki_policy.c  the policy's "pki" section (strict checker + accessors)
 *   pki_sign.c    sign a built certificate / CRL with a token key
 *   pki_x509.c    certificate and CRL profiles
 *   pki.c         state (store documents), quorum request kinds, RPCs
 */
#ifndef QS_PKI_H
#define QS_PKI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "keyring.h"
#include "pki_payload.h"
#include "policy.h"
#include "reqkinds.h"

struct call_ctx;

/* The policy's "pki" section, resolved. Strings point into the policy. */
struct pki_conf {
	const char *factory;
	const char *ca_token; /* pkcs11: URI of the token that holds generated CA keys */
	const struct policy_role *role_root, *role_tls, *role_device_ca, *role_device;
	int64_t days_root, days_tls, days_device_ca, days_device;
	int64_t crl_days;
	int revoke_reason; /* CRL_REASON_* */
};

/* Resolve and check p->ext_pki. QS_ERR_PRECONDITION "no pki section" if
 * absent; QS_ERR_INVALID with the path of the problem otherwise. */
int pki_conf_get(const struct policy *p, struct pki_conf *c);
/* The policy_ext.c checker. */
int pki_policy_check(const struct policy *p, json_t *section);
/* The CA keys in the PKI state (root CA, online device CAs): use(arg, URI,
 * "the root CA" | "device CA SERIAL") for each. Errors: the store's. */
struct store;
int pki_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg);

/*
 * Sign a fully built certificate / CRL with token key k (ECDSA P-256,
 * SHA-256), then check the result against k's public key. On success *x
 * is replaced by the re-parsed, signed object. Errors: QS_ERR_CRYPTO,
 * QS_ERR_PKCS11 (token), QS_ERR_NOMEM. A root CA or device CA certificate
 * needs rq, the approved request that makes it (pki.ca-create,
 * pki.device-ca): a signer helper checks its approvals and that the
 * certificate is the one its payload names (privsep_guard.h); NULL for
 * the others.
 */
int pki_sign_cert(X509 **x, const struct keyring_key *k, const struct store_request *rq);
/* A CRL: prev (DER, prev_len; NULL/0 for the CA's first) is the CRL k
 * signed before it; a signer helper signs entries prev does not have only
 * on rq, the approved revocation that names them (privsep_guard.h). */
int pki_sign_crl(X509_CRL **crl, const struct keyring_key *k, const struct store_request *rq,
                 const uint8_t *prev, size_t prev_len);
/* ECDSA signature (DER, into sig of HSM_SIG_MAX + 16 bytes) by the root
 * CA key k over SHA-256 of data, the list of enabled device CAs (a signer
 * helper signs nothing else this way), checked against k's public key the way `openssl dgst
 * -sha256 -verify` checks it. prev, prev_sig: the list k signed before it
 * and its signature (NULL/0 for the first); a signer helper signs a list
 * that drops or adds a CA only on rq, the approved request that does it.
 * Errors as pki_sign_cert. */
int pki_sign_blob(const struct keyring_key *k, const uint8_t *data, size_t len,
                  const struct store_request *rq, const uint8_t *prev, size_t prev_len,
                  const uint8_t *prev_sig, size_t prev_sig_len, uint8_t *sig, size_t *sig_len);

/* Certificate profiles (pki_x509.c). */
enum pki_profile { PKI_P_ROOT, PKI_P_DEVICE_CA, PKI_P_TLS, PKI_P_DEVICE };

/* Token labels of the CA keys pki.c generates (in pki.ca_token): the root
 * CA's, and each online device CA's (prefix + its name). The signer
 * helpers know a CA key, and what it may sign, by them (privsep_guard.h). */
#define PKI_ROOT_LABEL "qsign-pki-root"
#define PKI_DCA_LABEL_PREFIX "qsign-pki-dca-"
/* The root CA's subject: CN=PKI_ROOT_CN, OU=<factory>. */
#define PKI_ROOT_CN "Factory-CA"
/* The name CN=cn, OU=ou of the root and online device CAs (NULL: out of
 * memory). */
X509_NAME *pki_cn_ou(const char *cn, const char *ou);
/* The "type" of the list of enabled device CAs the root CA key signs. */
#define PKI_CALIST_TYPE "qsign.enabled-device-cas.v1"

/*
 * The profile whose extensions x carries, as pki_x509_build writes them:
 * basicConstraints (CA, path length), keyUsage, extendedKeyUsage exactly,
 * no extension beyond the profile's (subject/authority key identifiers,
 * subjectAltName for TLS). QS_ERR_INVALID with the reason if none.
 */
int pki_x509_profile_of(X509 *x, enum pki_profile *out);
/* x, of profile pr, within policy c's constraints: valid from no earlier
 * than now minus the builder's skew, until no later than now plus the
 * profile's validity_days; a device certificate's subject exactly
 * CN=<UUID>, OU=<factory>. QS_ERR_INVALID with the reason. */
int pki_x509_within(const X509 *x, enum pki_profile pr, const struct pki_conf *c);
/* A CRL within c: its nextUpdate no later than now plus crl_days. */
int pki_crl_within(const X509_CRL *crl, const struct pki_conf *c);

struct pki_tmpl {
	enum pki_profile profile;
	const X509_NAME *subject;
	EVP_PKEY *pub;      /* the subject's public key */
	const X509 *issuer; /* NULL: self-signed (root) */
	int64_t days;       /* capped at the issuer's notAfter */
	char *const *dns;   /* TLS: DNS subjectAltNames */
	size_t ndns;
};

/* Build (unsigned) a certificate of profile t with a fresh random 159-bit
 * positive serial; *serial_hex receives its lower-case hex (41 bytes).
 * Errors: QS_ERR_PRECONDITION (issuer expired), QS_ERR_CRYPTO,
 * QS_ERR_NOMEM. */
int pki_x509_build(const struct pki_tmpl *t, X509 **out, char serial_hex[PKI_MAX_SERIAL_HEX + 1]);

struct pki_crl_entry {
	const char *serial_hex;
	int64_t time; /* revocation date, unix seconds */
	int reason;   /* CRL_REASON_* */
};

/* Build (unsigned) a v2 CRL of issuer with CRLNumber number. */
int pki_crl_build(const X509 *issuer, uint64_t number, int64_t days, const struct pki_crl_entry *e,
                  size_t n, X509_CRL **out);

/* PEM of x / crl (malloc'd, NUL-terminated) and the hex SHA-256 of the DER
 * (65 bytes). */
int pki_cert_pem(const X509 *x, char **pem, char sha_hex[65]);
int pki_crl_pem(const X509_CRL *crl, char **pem, char sha_hex[65]);
/* Parse a PEM certificate we stored. */
int pki_cert_parse(const char *pem, X509 **out);
/* unix seconds of an ASN1_TIME. */
int64_t pki_time(const ASN1_TIME *t);
/* RFC 2253 text of a name (malloc'd). */
char *pki_name_str(const X509_NAME *n);

/* Request kinds (reqkinds.c) and RPC handlers (rpc_table.c). */
extern const struct reqkind_ops pki_kind_ca_create, pki_kind_tls, pki_kind_device_ca,
        pki_kind_ca_state, pki_kind_device_revoke;
int h_pki_show(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_pki_issue_device(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_pki_crl(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);

/* Re-sign every CRL the daemon keeps (root, online device CAs) that has
 * less than half of its validity left, audited ("pki.crl"), and the list of
 * enabled device CAs likewise ("pki.ca_list"). Called by the maintenance
 * timer; a no-op without a "pki" section or root CA. */
int pki_crl_refresh(struct server *s);

#endif
