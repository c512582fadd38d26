/*
 * The factory PKI: state, quorum request kinds and RPCs.
 *
 * State lives in versioned store documents (JSON), never replaced:
 *   pki        root           the root CA record
 *   pki.ca     <serial>       one device CA; a new version per state change
 *   pki.tls    tls | est      one version per issued certificate (history)
 *   pki.dev    <serial>       one issued device certificate
 *   pki.devrev <ca serial>    revoked device certificates of an online CA
 *   pki.crl    <issuer serial> version = CRLNumber
 *   pki.calist enabled        the signed list of enabled device CAs;
 *                             version = the list's version
 *
 * Locking: state changes (request execution, CRL re-signing) hold
 * srv->req_mu and then pki_lock for writing; online device issuance holds
 * pki_lock for reading, so a disable that has executed is seen by every
 * issuance that starts afterwards. Keys are resolved in the keyring under
 * req_mu only (the keyring is not otherwise locked). Lock order: req_mu
 * before pki_lock, never the other way.
 *
 * Disable vs revoke: a disabled device CA gets no CRL entry. RFC 5280 and
 * OpenSSL treat an entry with reason certificateHold as revoked for as
 * long as it is listed, which would cut off the existing devices that a
 * disable must keep working; "disabled" is enforced here (no online
 * issuance) and, for whoever registers devices, by the signed list of
 * enabled device CAs (calist_ensure), which a disabled CA leaves. A revoke
 * adds the CA to the root's CRL. A TLS / EST rotation puts the replaced
 * certificate on the root's CRL (superseded_tls).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "pki.h"
#include "pki_wire.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"

#define NS_ROOT "pki"
#define NS_CA "pki.ca"
#define NS_TLS "pki.tls"
#define NS_DEV "pki.dev"
#define NS_DEVREV "pki.devrev"
#define NS_CRL "pki.crl"
#define NS_CALIST "pki.calist"
#define CALIST_NAME "enabled"
#define CALIST_TYPE PKI_CALIST_TYPE
#define ROOT_LABEL PKI_ROOT_LABEL
/* A device CA's revoked certificates kept in one document: a CA whose
 * devices need more revocations than this should be revoked itself. */
#define MAX_DEVICE_REVOCATIONS 100000

static pthread_rwlock_t pki_lock = PTHREAD_RWLOCK_INITIALIZER;

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static const char *
jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* ------------------------------------------------------------ documents */

static int
doc_get(struct store *st, const char *ns, const char *name, json_t **out, uint64_t *ver)
{
	uint8_t *data = NULL;
	size_t len = 0;
	json_error_t e;
	int r;

	*out = NULL;
	if (ver != NULL)
		*ver = 0;
	if ((r = store_doc_get(st, ns, name, 0, &data, &len, ver)) != 0)
		return r;
	*out = json_loadb((const char *)data, len, 0, &e);
	free(data);
	if (*out == NULL)
		return qs_fail(QS_ERR_DB, "%s/%s: stored document is not JSON", ns, name);
	return 0;
}

static int
doc_put(struct store *st, const char *ns, const char *name, uint64_t ver, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int r;

	if (s == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	r = store_doc_put(st, ns, name, ver, (const uint8_t *)s, strlen(s));
	free(s);
	return r;
}

/* Every device CA record (latest versions), as a JSON array. */
static int
list_cas(struct store *st, json_t **out)
{
	char **names = NULL;
	size_t n = 0;
	json_t *a = json_array();
	int r;

	*out = NULL;
	if (a == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = store_doc_list(st, NS_CA, &names, &n)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *j = NULL;
		if ((r = doc_get(st, NS_CA, names[i], &j, NULL)) != 0)
			goto out;
		json_array_append_new(a, j);
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	json_decref(a);
	return r;
}

/* ------------------------------------------------------------ keys */

static int
pubkey_of(const struct keyring_key *k, EVP_PKEY **out)
{
	BIO *b = BIO_new_mem_buf(k->spki_pem, -1);

	*out = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return *out ? 0 : qs_fail(QS_ERR_CRYPTO, "CA key %s: unreadable public key", k->uri);
}

/* Caller holds req_mu. */
static int
ca_key(struct server *s, const char *uri, struct keyring_key **k)
{
	int r = keyring_find_uri(s->kr, uri, HSM_KEY_EC_P256, k);

	return r ? qs_wrap(r, "CA key %s", uri) : 0;
}

/* Generate (or, after a crash, find) the CA key `label` in the pki token.
 * Caller holds req_mu. */
static int
gen_key(struct server *s, const struct pki_conf *c, const char *label, const char *purpose,
        const char *reqid, char **urip, struct keyring_key **kp)
{
	const char *tok = keyring_token_label_for(s->kr, c->ca_token);
	char *uri = NULL;
	int r, fresh;

	*urip = NULL;
	*kp = NULL;
	if (tok == NULL)
		return qs_fail(QS_ERR_PRECONDITION, "no configured token matches pki.ca_token %s",
		               c->ca_token);
	if (asprintf(&uri, "%s;object=%s", c->ca_token, label) < 0)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	r = keyring_keygen(s->kr, c->ca_token, HSM_KEY_EC_P256, label);
	if (r != 0 && r != QS_ERR_EXISTS)
		goto out;
	fresh = r == 0;
	if ((r = ca_key(s, uri, kp)) != 0)
		goto out;
	if (fresh &&
	    (r = audit_append(s->audit, "key.generated",
	                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "label", label, "uri",
	                                uri, "key_id", (*kp)->key_id, "algorithm", "ecdsa-p256",
	                                "purpose", purpose, "request", reqid))) != 0)
		goto out;
	if (fresh)
		log_info("pki.keygen", "label=%s key_id=%s request=%s", label, (*kp)->key_id,
		         reqid);
	*urip = uri;
	uri = NULL;
	r = 0;
out:
	free(uri);
	return r;
}

/* ------------------------------------------------------------ records */

/*
 * Audit, then store, a freshly signed certificate, and hand back its PEM.
 * rec (stolen) gets the certificate fields added.
 */
static int
record_cert(struct server *s, const char *ns, const char *name, uint64_t ver, const X509 *x,
            json_t *rec, const char *who_key, const char *who, char **pem_out)
{
	char sha[65], *pem = NULL, *subject = NULL;
	const char *serial = jstr(rec, "serial");
	int r;

	*pem_out = NULL;
	if ((r = pki_cert_pem(x, &pem, sha)) != 0)
		goto out;
	if ((subject = pki_name_str(X509_get_subject_name(x))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(rec, "pem", json_string(pem));
	json_object_set_new(rec, "sha256", json_string(sha));
	json_object_set_new(rec, "subject", json_string(subject));
	json_object_set_new(rec, "not_before", json_integer(pki_time(X509_get0_notBefore(x))));
	json_object_set_new(rec, "not_after", json_integer(pki_time(X509_get0_notAfter(x))));
	json_object_set_new(rec, "created", json_integer(now_s()));
	json_object_set_new(rec, who_key, json_string(who));
	if ((r = audit_append(s->audit, "pki.issued",
	                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:s}", "kind",
	                                jstr(rec, "kind"), "serial", serial, "subject", subject,
	                                "issuer_serial", jstr(rec, "issuer_serial"), "sha256", sha,
	                                "not_after", json_object_get(rec, "not_after"), who_key,
	                                who))) != 0 ||
	    (r = doc_put(s->store, ns, name, ver, rec)) != 0)
		goto out;
	log_info("pki.issued", "kind=%s serial=%s subject=\"%s\" %s=%s", jstr(rec, "kind"), serial,
	         subject, who_key, who);
	*pem_out = pem;
	pem = NULL;
	r = 0;
out:
	json_decref(rec);
	free(pem);
	free(subject);
	return r;
}

static json_t *
new_rec(const char *kind, const char *name, const char *serial, const char *issuer_serial,
        const char *key_uri)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", kind, "name", name, "serial",
	                 serial, "issuer_serial", issuer_serial, "key_uri", key_uri ? key_uri : "",
	                 "state", "active");
}

static int
load_root(struct server *s, json_t **rec, X509 **x)
{
	int r;

	*x = NULL;
	if ((r = doc_get(s->store, NS_ROOT, "root", rec, NULL)) != 0)
		return r == QS_ERR_NOT_FOUND
		               ? qs_fail(QS_ERR_PRECONDITION, "the factory root CA does not exist "
		                                              "yet (qsign ca create)")
		               : r;
	return pki_cert_parse(jstr(*rec, "pem"), x);
}

/* ------------------------------------------------------------ CRLs */

/*
 * Append to `list` (as revoked entries, reason superseded) every TLS / EST
 * certificate a rotation replaced: each stored version but the latest. The
 * revocation time is the creation of the certificate that replaced it.
 * Derived from the history rather than recorded at rotation, so that a
 * crash between the new certificate and the CRL, or certificates rotated
 * before rotation revoked them, still end up on the next root CRL.
 */
static int
superseded_tls(struct store *st, json_t *list)
{
	static const char *const names[] = {"tls", "est"};
	json_t *older = NULL, *newer = NULL;
	int r = 0;

	for (size_t i = 0; r == 0 && i < 2; i++) {
		uint64_t cur = 0;
		if ((r = doc_get(st, NS_TLS, names[i], &newer, &cur)) == QS_ERR_NOT_FOUND) {
			r = 0;
			continue;
		}
		for (uint64_t v = cur - 1; r == 0 && v >= 1; v--) {
			uint8_t *d = NULL;
			size_t dl = 0;
			json_error_t e;
			if ((r = store_doc_get(st, NS_TLS, names[i], v, &d, &dl, NULL)) != 0)
				break;
			older = json_loadb((const char *)d, dl, 0, &e);
			free(d);
			if (older == NULL) {
				r = qs_fail(QS_ERR_DB, "%s/%s v%llu: stored document is not JSON",
				            NS_TLS, names[i], (unsigned long long)v);
				break;
			}
			if (json_array_append_new(
			            list,
			            json_pack("{s:s, s:s, s:I, s:i}", "serial",
			                      jstr(older, "serial"), "state", "revoked",
			                      "state_time",
			                      json_integer_value(json_object_get(newer, "created")),
			                      "reason_code", CRL_REASON_SUPERSEDED)) != 0)
				r = qs_fail(QS_ERR_NOMEM, "out of memory");
			json_decref(newer);
			newer = older;
			older = NULL;
		}
		json_decref(newer);
		newer = NULL;
	}
	json_decref(older);
	json_decref(newer);
	return r;
}

/*
 * Sign and store the next CRL of the CA `ca` (root or online device CA).
 * Caller holds req_mu and pki_lock (write). *pem_out optional.
 */
/* The DER of the CRL in store document crl ({"pem": ...}), NULL if there
 * is none (*der OPENSSL_malloc'd). */
static int
crl_der(json_t *crl, unsigned char **der, size_t *len)
{
	const char *pem = jstr(crl, "pem");
	BIO *b;
	X509_CRL *x;
	int n;

	*der = NULL;
	*len = 0;
	if (crl == NULL)
		return 0;
	if ((b = BIO_new_mem_buf(pem, -1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	x = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	BIO_free(b);
	if (x == NULL || (n = i2d_X509_CRL(x, der)) <= 0) {
		X509_CRL_free(x);
		ERR_clear_error();
		return qs_fail(QS_ERR_DB, "the stored CRL is not PEM");
	}
	X509_CRL_free(x);
	*len = (size_t)n;
	return 0;
}

/* Sign and store the next CRL of CA ca. rq: the approved request that
 * revokes what the previous CRL does not list (NULL for a re-signing): a
 * signer helper signs a new entry only on it. */
static int
publish_crl(struct server *s, const struct pki_conf *c, json_t *ca, const char *why,
            const struct store_request *rq, char **pem_out)
{
	unsigned char *prev = NULL;
	size_t prev_len = 0;
	const char *serial = jstr(ca, "serial");
	struct pki_crl_entry *ents = NULL;
	struct keyring_key *k = NULL;
	json_t *list = NULL, *old = NULL;
	X509 *issuer = NULL;
	X509_CRL *crl = NULL;
	char sha[65], *pem = NULL;
	uint64_t number = 0;
	size_t n = 0;
	int r, is_root = strcmp(jstr(ca, "kind"), "root") == 0;

	if (pem_out != NULL)
		*pem_out = NULL;
	if ((r = pki_cert_parse(jstr(ca, "pem"), &issuer)) != 0 ||
	    (r = ca_key(s, jstr(ca, "key_uri"), &k)) != 0)
		goto out;
	r = doc_get(s->store, NS_CRL, serial, &old, &number);
	if (r != 0 && r != QS_ERR_NOT_FOUND)
		goto out;
	number++;
	if (is_root) {
		if ((r = list_cas(s->store, &list)) != 0 ||
		    (r = superseded_tls(s->store, list)) != 0)
			goto out;
	} else {
		r = doc_get(s->store, NS_DEVREV, serial, &list, NULL);
		if (r == QS_ERR_NOT_FOUND)
			list = json_array();
		else if (r != 0)
			goto out;
	}
	if (list == NULL || (ents = calloc(json_array_size(list) + 1, sizeof(*ents))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *e = json_array_get(list, i);
		if (is_root && strcmp(jstr(e, "state"), "revoked") != 0)
			continue; /* active or disabled: see the file comment */
		ents[n].serial_hex = jstr(e, "serial");
		ents[n].time = json_integer_value(json_object_get(e, "state_time"));
		ents[n].reason = (int)json_integer_value(json_object_get(e, "reason_code"));
		n++;
	}
	if ((r = crl_der(old, &prev, &prev_len)) != 0 ||
	    (r = pki_crl_build(issuer, number, c->crl_days, ents, n, &crl)) != 0 ||
	    (r = pki_sign_crl(&crl, k, rq, prev, prev_len)) != 0 ||
	    (r = pki_crl_pem(crl, &pem, sha)) != 0)
		goto out;
	{
		int64_t nu = pki_time(X509_CRL_get0_nextUpdate(crl));
		json_t *doc =
		        json_pack("{s:s, s:I, s:I, s:I, s:s}", "pem", pem, "number",
		                  (json_int_t)number, "this_update", (json_int_t)now_s(),
		                  "next_update", (json_int_t)nu, "issuer_name", jstr(ca, "name"));
		if ((r = audit_append(s->audit, "pki.crl",
		                      json_pack("{s:s, s:I, s:s, s:I, s:I, s:s}", "issuer_serial",
		                                serial, "number", (json_int_t)number, "sha256", sha,
		                                "entries", (json_int_t)n, "next_update",
		                                (json_int_t)nu, "why", why))) != 0) {
			json_decref(doc);
			goto out;
		}
		r = doc_put(s->store, NS_CRL, serial, number, doc);
		json_decref(doc);
		if (r != 0)
			goto out;
	}
	log_info("pki.crl", "issuer=%s number=%llu entries=%zu why=%s", serial,
	         (unsigned long long)number, n, why);
	if (pem_out != NULL) {
		*pem_out = pem;
		pem = NULL;
	}
	r = 0;
out:
	OPENSSL_free(prev);
	free(ents);
	free(pem);
	json_decref(list);
	json_decref(old);
	X509_free(issuer);
	X509_CRL_free(crl);
	return r;
}

/* ------------------------------------------------------------ enabled CAs */

/*
 * Who registers devices decides whether a device CA's certificates are
 * accepted for new registrations, so "disabled" must reach them: a list of
 * the device CAs enabled for new registrations (state active, local or
 * online), signed by the root CA key and published beside the CRLs. A
 * disabled or revoked CA is absent from it; a disabled CA gets no CRL entry
 * (its devices keep working). The document is canonical JSON (proto/pki.proto
 * PkiCaList) with a version that grows at each re-signing, an issue time and
 * an expiry, so that a registrar can refuse an older or stale list.
 */

/* The list's entries, from the current state. */
static int
calist_entries(struct store *st, json_t **out)
{
	json_t *cas = NULL, *a = json_array();
	int r;

	*out = NULL;
	if (a == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = list_cas(st, &cas)) != 0)
		goto out;
	for (size_t i = 0; i < json_array_size(cas); i++) {
		json_t *e = json_array_get(cas, i);
		if (strcmp(jstr(e, "state"), "active") != 0)
			continue;
		if (json_array_append_new(
		            a,
		            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "serial", jstr(e, "serial"),
		                      "name", jstr(e, "name"), "kind", jstr(e, "kind"), "subject",
		                      jstr(e, "subject"), "sha256", jstr(e, "sha256"), "not_after",
		                      json_integer_value(json_object_get(e, "not_after")))) != 0) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	json_decref(cas);
	json_decref(a);
	return r;
}

/*
 * Sign and store the next version of the list if there is none, if the set
 * of enabled CAs (or the root) changed since the latest (audited with
 * `why`), or if less than half of its validity is left; otherwise nothing.
 * Audited ("pki.ca_list").
 * Caller holds req_mu and pki_lock (write); the root CA exists.
 */
static int
calist_ensure(struct server *s, const struct pki_conf *c, const char *why,
              const struct store_request *rq)
{
	uint8_t prev_sig[HSM_SIG_MAX + 16];
	size_t prev_sig_len = 0;
	struct keyring_key *k = NULL;
	json_t *root = NULL, *ents = NULL, *old = NULL, *doc = NULL, *stored = NULL,
	       *serials = NULL;
	X509 *rx = NULL;
	char *text = NULL, *sig_hex = NULL, *sha_hex = NULL;
	uint8_t sig[HSM_SIG_MAX + 16], dg[32];
	size_t sig_len = 0, tlen;
	uint64_t ver = 0;
	int64_t now = now_s(), expires = now + c->crl_days * 86400;
	int r;

	if ((r = load_root(s, &root, &rx)) != 0 || (r = calist_entries(s->store, &ents)) != 0)
		goto out;
	r = doc_get(s->store, NS_CALIST, CALIST_NAME, &old, &ver);
	if (r != 0 && r != QS_ERR_NOT_FOUND)
		goto out;
	if (r == QS_ERR_NOT_FOUND) {
		why = "first list";
	} else if (json_equal(json_object_get(old, "device_cas"), ents) &&
	           strcmp(jstr(old, "root_serial"), jstr(root, "serial")) == 0) {
		if (json_integer_value(json_object_get(old, "expires")) - now >
		    c->crl_days * 86400 / 2) {
			r = 0;
			goto out;
		}
		why = "refresh before expiry";
	}
	doc = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:O}", "type", CALIST_TYPE, "factory",
	                c->factory, "root_serial", jstr(root, "serial"), "version",
	                (json_int_t)(ver + 1), "issued_at", (json_int_t)now, "expires",
	                (json_int_t)expires, "device_cas", ents);
	serials = json_array();
	for (size_t i = 0; serials != NULL && i < json_array_size(ents); i++)
		json_array_append_new(serials,
		                      json_string(jstr(json_array_get(ents, i), "serial")));
	if (doc == NULL || serials == NULL ||
	    (text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* One line, newline-terminated: the file a registrar reads. */
	tlen = strlen(text);
	{
		char *t2 = realloc(text, tlen + 2);
		if (t2 == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		text = t2;
		memcpy(text + tlen, "\n", 2);
		tlen++;
	}
	qs_sha256((const uint8_t *)text, tlen, dg);
	if ((r = ca_key(s, jstr(root, "key_uri"), &k)) != 0 ||
	    (old != NULL &&
	     qs_unhex(jstr(old, "signature"), prev_sig, sizeof(prev_sig), &prev_sig_len) != 0) ||
	    (r = pki_sign_blob(k, (const uint8_t *)text, tlen, rq,
	                       old != NULL ? (const uint8_t *)jstr(old, "document") : NULL,
	                       old != NULL ? strlen(jstr(old, "document")) : 0, prev_sig,
	                       prev_sig_len, sig, &sig_len)) != 0) {
		r = r != 0 ? r : qs_fail(QS_ERR_DB, "the stored CA list's signature is not hex");
		goto out;
	}
	if ((sig_hex = qs_hex(sig, sig_len)) == NULL || (sha_hex = qs_hex(dg, 32)) == NULL ||
	    (stored = json_pack("{s:s, s:s, s:I, s:I, s:s, s:O}", "document", text, "signature",
	                        sig_hex, "version", (json_int_t)(ver + 1), "expires",
	                        (json_int_t)expires, "root_serial", jstr(root, "serial"),
	                        "device_cas", ents)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = audit_append(s->audit, "pki.ca_list",
	                      json_pack("{s:I, s:s, s:O, s:I, s:s}", "version",
	                                (json_int_t)(ver + 1), "sha256", sha_hex, "device_cas",
	                                serials, "expires", (json_int_t)expires, "why", why))) !=
	            0 ||
	    (r = doc_put(s->store, NS_CALIST, CALIST_NAME, ver + 1, stored)) != 0)
		goto out;
	log_info("pki.ca_list", "version=%llu enabled=%zu why=%s", (unsigned long long)(ver + 1),
	         json_array_size(ents), why);
	r = 0;
out:
	free(text);
	free(sig_hex);
	free(sha_hex);
	json_decref(root);
	json_decref(ents);
	json_decref(old);
	json_decref(doc);
	json_decref(stored);
	json_decref(serials);
	X509_free(rx);
	return r;
}

/* ------------------------------------------------------------ quorum kinds */

/* Checks shared by submission and execution: the section exists, the
 * request's role is the one it names for this kind, values in range. */
static int
op_check(const struct policy *p, const struct policy_role *ro, const char *kind,
         const uint8_t *payload, size_t len, struct pki_conf *c, struct pki_op **opp)
{
	const struct policy_role *want;
	struct pki_op *op = NULL;
	int64_t max;
	int r;

	*opp = NULL;
	if ((r = pki_conf_get(p, c)) != 0 || (r = pki_op_parse(kind, payload, len, &op)) != 0)
		return r;
	if (strcmp(kind, PKI_KIND_CA_CREATE) == 0) {
		want = c->role_root;
		max = c->days_root;
	} else if (strcmp(kind, PKI_KIND_TLS) == 0) {
		want = c->role_tls;
		max = c->days_tls;
	} else {
		want = c->role_device_ca;
		max = c->days_device_ca;
	}
	if (ro == NULL || ro != want) {
		r = qs_fail(QS_ERR_DENIED, "%s requests go to role %s (policy pki.roles)", kind,
		            want->name);
		goto out;
	}
	if (op->validity_days > max) {
		r = qs_fail(QS_ERR_INVALID, "validity_days %lld exceeds the policy's %lld",
		            (long long)op->validity_days, (long long)max);
		goto out;
	}
	if (strcmp(kind, PKI_KIND_CA_CREATE) == 0 && strcmp(op->factory, c->factory) != 0) {
		r = qs_fail(QS_ERR_INVALID, "factory \"%s\" is not the policy's \"%s\"",
		            op->factory, c->factory);
		goto out;
	}
	*opp = op;
	op = NULL;
	r = 0;
out:
	pki_op_free(op);
	return r;
}

/* The request's earlier result, if a crash hit between issuing and
 * recording (execute must be idempotent). */
static int
earlier_result(json_t *rec, const char *reqid, uint8_t **result, size_t *rlen)
{
	const char *pem;

	if (rec == NULL || strcmp(jstr(rec, "request"), reqid) != 0)
		return 0;
	pem = jstr(rec, "pem");
	if ((*result = (uint8_t *)strdup(pem)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*rlen = strlen(pem);
	return 1;
}

static int
root_exists(struct server *s, json_t **rec)
{
	int r = doc_get(s->store, NS_ROOT, "root", rec, NULL);

	if (r == QS_ERR_NOT_FOUND)
		return 0;
	return r == 0 ? 1 : r;
}

static int
ca_create_submit(struct server *s, const struct policy *p, const struct policy_role *ro,
                 const char *submitter, const uint8_t *payload, size_t len)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	json_t *rec = NULL;
	int r;

	(void)submitter;
	if ((r = op_check(p, ro, PKI_KIND_CA_CREATE, payload, len, &c, &op)) != 0)
		return r;
	pthread_rwlock_rdlock(&pki_lock);
	if ((r = root_exists(s, &rec)) == 1)
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the factory root CA already exists (serial %s): it is created once",
		            jstr(rec, "serial"));
	pthread_rwlock_unlock(&pki_lock);
	json_decref(rec);
	pki_op_free(op);
	return r;
}

static void
clear_outputs(struct store_reqsig **sigs, size_t *nsigs, uint8_t **result, size_t *rlen)
{
	*sigs = NULL;
	*nsigs = 0;
	*result = NULL;
	*rlen = 0;
}

static int
ca_create_exec(struct server *s, const struct store_request *rq, const struct policy *p,
               const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
               uint8_t **result, size_t *rlen)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	struct keyring_key *k = NULL;
	json_t *rec = NULL;
	X509_NAME *name = NULL;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	char serial[PKI_MAX_SERIAL_HEX + 1], *uri = NULL, *pem = NULL;
	int r;

	clear_outputs(sigs, nsigs, result, rlen);
	if ((r = op_check(p, ro, rq->kind, rq->payload, rq->payload_len, &c, &op)) != 0)
		return r;
	pthread_rwlock_wrlock(&pki_lock);
	if ((r = root_exists(s, &rec)) < 0)
		goto out;
	if (r == 1) {
		if ((r = earlier_result(rec, rq->id, result, rlen)) != 0)
			goto out;
		r = qs_fail(QS_ERR_PRECONDITION, "the factory root CA already exists (serial %s)",
		            jstr(rec, "serial"));
		goto out;
	}
	if ((r = gen_key(s, &c, ROOT_LABEL, "pki root CA", rq->id, &uri, &k)) != 0 ||
	    (r = pubkey_of(k, &pub)) != 0)
		goto out;
	if ((name = pki_cn_ou(PKI_ROOT_CN, c.factory)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		struct pki_tmpl t = {.profile = PKI_P_ROOT,
		                     .subject = name,
		                     .pub = pub,
		                     .days = op->validity_days};
		if ((r = pki_x509_build(&t, &x, serial)) != 0 ||
		    (r = pki_sign_cert(&x, k, rq)) != 0)
			goto out;
	}
	if ((rec = new_rec("root", "root", serial, "", uri)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(rec, "factory", json_string(c.factory));
	if ((r = record_cert(s, NS_ROOT, "root", 1, x, rec, "request", rq->id, &pem)) != 0) {
		rec = NULL;
		goto out;
	}
	rec = NULL;
	/* Its first CRL, so that relying parties can check the chain at once. */
	if ((r = doc_get(s->store, NS_ROOT, "root", &rec, NULL)) != 0 ||
	    (r = publish_crl(s, &c, rec, "created", NULL, NULL)) != 0 ||
	    (r = calist_ensure(s, &c, "root created", NULL)) != 0)
		goto out;
	*result = (uint8_t *)pem;
	*rlen = strlen(pem);
	pem = NULL;
	r = 0;
out:
	pthread_rwlock_unlock(&pki_lock);
	free(uri);
	free(pem);
	json_decref(rec);
	X509_NAME_free(name);
	EVP_PKEY_free(pub);
	X509_free(x);
	pki_op_free(op);
	return r < 0 ? r : 0;
}

/* The root, usable for signing: exists and active. */
static int
active_root(struct server *s, json_t **rec, X509 **x, struct keyring_key **k)
{
	int r;

	if ((r = load_root(s, rec, x)) != 0)
		return r;
	if (strcmp(jstr(*rec, "state"), "active") != 0)
		return qs_fail(QS_ERR_PRECONDITION, "the root CA is %s", jstr(*rec, "state"));
	return k != NULL ? ca_key(s, jstr(*rec, "key_uri"), k) : 0;
}

/* A rotation revokes the certificate it replaced (the version before the
 * latest of `name`): audited, then on the root CRL, which lists every
 * superseded TLS / EST certificate (superseded_tls). Caller holds req_mu
 * and pki_lock (write). */
static int
revoke_replaced(struct server *s, const struct pki_conf *c, const char *name,
                const struct store_request *rq)
{
	const char *reqid = rq->id;
	json_t *root = NULL, *cur = NULL, *old = NULL;
	X509 *rx = NULL;
	uint8_t *d = NULL;
	size_t dl = 0;
	uint64_t ver = 0;
	json_error_t e;
	int r;

	if ((r = doc_get(s->store, NS_TLS, name, &cur, &ver)) != 0)
		goto out;
	if (ver < 2) {
		r = qs_fail(QS_ERR_INTERNAL, "%s: no replaced certificate to revoke", name);
		goto out;
	}
	if ((r = store_doc_get(s->store, NS_TLS, name, ver - 1, &d, &dl, NULL)) != 0)
		goto out;
	if ((old = json_loadb((const char *)d, dl, 0, &e)) == NULL) {
		r = qs_fail(QS_ERR_DB, "%s/%s v%llu: stored document is not JSON", NS_TLS, name,
		            (unsigned long long)(ver - 1));
		goto out;
	}
	if ((r = audit_append(s->audit, "pki.tls.revoked",
	                      json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "serial",
	                                jstr(old, "serial"), "replaced_by", jstr(cur, "serial"),
	                                "reason", "superseded", "request", reqid))) != 0 ||
	    (r = load_root(s, &root, &rx)) != 0 ||
	    (r = publish_crl(s, c, root, "tls rotated", rq, NULL)) != 0)
		goto out;
	log_info("pki.tls.revoked", "name=%s serial=%s replaced_by=%s request=%s", name,
	         jstr(old, "serial"), jstr(cur, "serial"), reqid);
out:
	free(d);
	json_decref(cur);
	json_decref(old);
	json_decref(root);
	X509_free(rx);
	return r;
}

static int
tls_submit(struct server *s, const struct policy *p, const struct policy_role *ro,
           const char *submitter, const uint8_t *payload, size_t len)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	struct pki_csr *csr = NULL;
	json_t *rec = NULL;
	int r;

	(void)submitter;
	if ((r = op_check(p, ro, PKI_KIND_TLS, payload, len, &c, &op)) != 0)
		return r;
	if ((r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &csr)) != 0)
		goto out;
	if (csr->ndns == 0) {
		r = qs_fail(QS_ERR_INVALID, "a TLS CSR needs at least one DNS subjectAltName");
		goto out;
	}
	pthread_rwlock_rdlock(&pki_lock);
	r = doc_get(s->store, NS_TLS, op->name, &rec, NULL);
	pthread_rwlock_unlock(&pki_lock);
	if (r != 0 && r != QS_ERR_NOT_FOUND)
		goto out;
	if (r == 0 && strcmp(op->action, "issue") == 0)
		r = qs_fail(QS_ERR_PRECONDITION, "a %s certificate exists (serial %s): rotate it",
		            op->name, jstr(rec, "serial"));
	else if (r == QS_ERR_NOT_FOUND && strcmp(op->action, "rotate") == 0)
		r = qs_fail(QS_ERR_PRECONDITION, "no %s certificate to rotate: issue one",
		            op->name);
	else
		r = 0;
out:
	json_decref(rec);
	pki_csr_free(csr);
	pki_op_free(op);
	return r;
}

static int
tls_exec(struct server *s, const struct store_request *rq, const struct policy *p,
         const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs, uint8_t **result,
         size_t *rlen)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	struct pki_csr *csr = NULL;
	struct keyring_key *k = NULL;
	json_t *root = NULL, *prev = NULL, *rec = NULL;
	X509 *rx = NULL, *x = NULL;
	char serial[PKI_MAX_SERIAL_HEX + 1], *pem = NULL;
	uint64_t ver = 0;
	int r, rotate;

	clear_outputs(sigs, nsigs, result, rlen);
	if ((r = tls_submit(s, p, ro, rq->submitter, rq->payload, rq->payload_len)) != 0 &&
	    r != QS_ERR_PRECONDITION)
		return r;
	if ((r = op_check(p, ro, rq->kind, rq->payload, rq->payload_len, &c, &op)) != 0 ||
	    (r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &csr)) != 0)
		goto out_unlocked;
	rotate = strcmp(op->action, "rotate") == 0;
	pthread_rwlock_wrlock(&pki_lock);
	r = doc_get(s->store, NS_TLS, op->name, &prev, &ver);
	if (r != 0 && r != QS_ERR_NOT_FOUND)
		goto out;
	if (r == 0 && (r = earlier_result(prev, rq->id, result, rlen)) != 0) {
		/* Issued before a crash: the revocation of the replaced
		 * certificate may not have been published. */
		if (r == 1 && rotate && (r = revoke_replaced(s, &c, op->name, rq)) != 0) {
			free(*result);
			clear_outputs(sigs, nsigs, result, rlen);
		}
		goto out;
	}
	if ((ver == 0) != !rotate) {
		r = qs_fail(QS_ERR_PRECONDITION, "%s: %s", op->name,
		            ver == 0 ? "nothing to rotate" : "already issued: rotate it");
		goto out;
	}
	if ((r = active_root(s, &root, &rx, &k)) != 0)
		goto out;
	{
		struct pki_tmpl t = {.profile = PKI_P_TLS,
		                     .subject = X509_REQ_get_subject_name(csr->req),
		                     .pub = X509_REQ_get0_pubkey(csr->req),
		                     .issuer = rx,
		                     .days = op->validity_days,
		                     .dns = csr->dns,
		                     .ndns = csr->ndns};
		if ((r = pki_x509_build(&t, &x, serial)) != 0 ||
		    (r = pki_sign_cert(&x, k, NULL)) != 0)
			goto out;
	}
	if ((rec = new_rec(op->name, op->name, serial, jstr(root, "serial"), NULL)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = record_cert(s, NS_TLS, op->name, ver + 1, x, rec, "request", rq->id, &pem);
	if (r != 0 || (rotate && (r = revoke_replaced(s, &c, op->name, rq)) != 0))
		goto out;
	*result = (uint8_t *)pem;
	*rlen = strlen(pem);
	pem = NULL;
out:
	pthread_rwlock_unlock(&pki_lock);
out_unlocked:
	free(pem);
	json_decref(root);
	json_decref(prev);
	X509_free(rx);
	X509_free(x);
	pki_csr_free(csr);
	pki_op_free(op);
	return r < 0 ? r : 0;
}

/* Device CA checks against the current state. Caller holds pki_lock. */
static int
device_ca_state_check(struct server *s, const struct pki_conf *c, const struct pki_op *op,
                      const struct pki_csr *csr)
{
	json_t *cas = NULL, *root = NULL;
	int r;

	if ((r = root_exists(s, &root)) < 0)
		return r;
	json_decref(root);
	if (r == 0)
		return qs_fail(QS_ERR_PRECONDITION, "the factory root CA does not exist yet");
	if ((r = list_cas(s->store, &cas)) != 0)
		return r;
	for (size_t i = 0; i < json_array_size(cas); i++)
		if (strcmp(jstr(json_array_get(cas, i), "name"), op->name) == 0) {
			r = qs_fail(QS_ERR_PRECONDITION, "a device CA named %s exists (serial %s)",
			            op->name, jstr(json_array_get(cas, i), "serial"));
			break;
		}
	json_decref(cas);
	if (r != 0 || csr == NULL)
		return r;
	if (strcmp(csr->ou, c->factory) != 0)
		return qs_fail(QS_ERR_INVALID,
		               "local device CA CSR: OU \"%s\" is not the factory "
		               "\"%s\"",
		               csr->ou, c->factory);
	if (csr->cn[0] == '\0')
		return qs_fail(QS_ERR_INVALID, "local device CA CSR: no CN");
	if (csr->has_bc && (!csr->bc_ca || csr->bc_pathlen != 0))
		return qs_fail(QS_ERR_INVALID,
		               "local device CA CSR asks for basicConstraints %s: device CAs "
		               "are CA:TRUE, pathlen:0 (they issue device certificates only)",
		               !csr->bc_ca ? "CA:FALSE" : "with a longer path");
	return 0;
}

static int
device_ca_submit(struct server *s, const struct policy *p, const struct policy_role *ro,
                 const char *submitter, const uint8_t *payload, size_t len)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	struct pki_csr *csr = NULL;
	int r;

	(void)submitter;
	if ((r = op_check(p, ro, PKI_KIND_DEVICE_CA, payload, len, &c, &op)) != 0)
		return r;
	if (op->csr_pem != NULL &&
	    (r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &csr)) != 0)
		goto out;
	pthread_rwlock_rdlock(&pki_lock);
	r = device_ca_state_check(s, &c, op, csr);
	pthread_rwlock_unlock(&pki_lock);
out:
	pki_csr_free(csr);
	pki_op_free(op);
	return r;
}

/* The device CA record made by request id, if any. */
static int
ca_by_request(struct server *s, const char *id, json_t **out)
{
	json_t *cas = NULL;
	int r;

	*out = NULL;
	if ((r = list_cas(s->store, &cas)) != 0)
		return r;
	for (size_t i = 0; i < json_array_size(cas); i++)
		if (strcmp(jstr(json_array_get(cas, i), "request"), id) == 0)
			*out = json_incref(json_array_get(cas, i));
	json_decref(cas);
	return 0;
}

static int
device_ca_exec(struct server *s, const struct store_request *rq, const struct policy *p,
               const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
               uint8_t **result, size_t *rlen)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	struct pki_csr *csr = NULL;
	struct keyring_key *rk = NULL, *dk = NULL;
	json_t *root = NULL, *rec = NULL;
	X509_NAME *name = NULL;
	EVP_PKEY *pub = NULL;
	X509 *rx = NULL, *x = NULL;
	char serial[PKI_MAX_SERIAL_HEX + 1], *uri = NULL, *pem = NULL, *label = NULL;
	int r, online;

	clear_outputs(sigs, nsigs, result, rlen);
	if ((r = op_check(p, ro, rq->kind, rq->payload, rq->payload_len, &c, &op)) != 0)
		return r;
	online = strcmp(op->mode, "online") == 0;
	if (!online && (r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &csr)) != 0)
		goto out_unlocked;
	pthread_rwlock_wrlock(&pki_lock);
	if ((r = ca_by_request(s, rq->id, &rec)) != 0)
		goto out;
	if ((r = earlier_result(rec, rq->id, result, rlen)) != 0) {
		/* Added before a crash: the list may not show it yet. */
		if (r == 1 && (r = calist_ensure(s, &c, "device CA added", rq)) != 0) {
			free(*result);
			clear_outputs(sigs, nsigs, result, rlen);
		}
		goto out;
	}
	json_decref(rec);
	rec = NULL;
	if ((r = device_ca_state_check(s, &c, op, csr)) != 0 ||
	    (r = active_root(s, &root, &rx, &rk)) != 0)
		goto out;
	if (online) {
		if (asprintf(&label, PKI_DCA_LABEL_PREFIX "%s", op->name) < 0) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		if ((r = gen_key(s, &c, label, "pki online device CA", rq->id, &uri, &dk)) != 0 ||
		    (r = pubkey_of(dk, &pub)) != 0)
			goto out;
		if ((name = pki_cn_ou(op->name, c.factory)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	{
		struct pki_tmpl t = {.profile = PKI_P_DEVICE_CA,
		                     .subject = online ? name : X509_REQ_get_subject_name(csr->req),
		                     .pub = online ? pub : X509_REQ_get0_pubkey(csr->req),
		                     .issuer = rx,
		                     .days = op->validity_days};
		if ((r = pki_x509_build(&t, &x, serial)) != 0 ||
		    (r = pki_sign_cert(&x, rk, rq)) != 0)
			goto out;
	}
	rec = new_rec(online ? "device-ca-online" : "device-ca-local", op->name, serial,
	              jstr(root, "serial"), uri);
	if (rec == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = record_cert(s, NS_CA, serial, 1, x, rec, "request", rq->id, &pem);
	rec = NULL;
	if (r != 0)
		goto out;
	if (online && ((r = doc_get(s->store, NS_CA, serial, &rec, NULL)) != 0 ||
	               (r = publish_crl(s, &c, rec, "created", NULL, NULL)) != 0))
		goto out;
	if ((r = calist_ensure(s, &c, "device CA added", rq)) != 0)
		goto out;
	*result = (uint8_t *)pem;
	*rlen = strlen(pem);
	pem = NULL;
out:
	pthread_rwlock_unlock(&pki_lock);
out_unlocked:
	free(label);
	free(uri);
	free(pem);
	json_decref(root);
	json_decref(rec);
	X509_NAME_free(name);
	EVP_PKEY_free(pub);
	X509_free(rx);
	X509_free(x);
	pki_csr_free(csr);
	pki_op_free(op);
	return r < 0 ? r : 0;
}

/* The state a ca-state action leads to from `from`, or an error. */
static int
next_state(const char *serial, const char *from, const char *action, const char **to)
{
	if (strcmp(from, "revoked") == 0)
		return qs_fail(QS_ERR_PRECONDITION,
		               "device CA %s is revoked: a revoked CA stays "
		               "revoked",
		               serial);
	if (strcmp(action, "disable") == 0)
		*to = "disabled";
	else if (strcmp(action, "enable") == 0)
		*to = "active";
	else
		*to = "revoked";
	if (strcmp(from, *to) == 0)
		return qs_fail(QS_ERR_PRECONDITION, "device CA %s is already %s", serial, from);
	return 0;
}

static int
ca_state_submit(struct server *s, const struct policy *p, const struct policy_role *ro,
                const char *submitter, const uint8_t *payload, size_t len)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	json_t *rec = NULL;
	const char *to;
	int r;

	(void)submitter;
	if ((r = op_check(p, ro, PKI_KIND_CA_STATE, payload, len, &c, &op)) != 0)
		return r;
	pthread_rwlock_rdlock(&pki_lock);
	r = doc_get(s->store, NS_CA, op->serial, &rec, NULL);
	pthread_rwlock_unlock(&pki_lock);
	if (r == QS_ERR_NOT_FOUND)
		r = qs_fail(QS_ERR_NOT_FOUND, "no device CA with serial %s", op->serial);
	else if (r == 0)
		r = next_state(op->serial, jstr(rec, "state"), op->action, &to);
	json_decref(rec);
	pki_op_free(op);
	return r;
}

static int
ca_state_exec(struct server *s, const struct store_request *rq, const struct policy *p,
              const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
              uint8_t **result, size_t *rlen)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	json_t *rec = NULL, *root = NULL;
	const char *to = NULL;
	char *pem = NULL, *from = NULL;
	uint64_t ver = 0;
	int r, reason;

	clear_outputs(sigs, nsigs, result, rlen);
	if ((r = op_check(p, ro, rq->kind, rq->payload, rq->payload_len, &c, &op)) != 0)
		return r;
	pthread_rwlock_wrlock(&pki_lock);
	if ((r = doc_get(s->store, NS_CA, op->serial, &rec, &ver)) != 0)
		goto out;
	if (strcmp(jstr(rec, "state_request"), rq->id) == 0) {
		/* Done before a crash: the CRL and the list may not have been
		 * published; publishing them again is harmless. */
		to = jstr(rec, "state");
		goto publish;
	}
	if ((r = next_state(op->serial, jstr(rec, "state"), op->action, &to)) != 0 ||
	    (from = strdup(jstr(rec, "state"))) == NULL)
		goto out;
	reason = op->reason[0] ? pki_reason_code(op->reason) : c.revoke_reason;
	json_object_set_new(rec, "state", json_string(to));
	json_object_set_new(rec, "state_time", json_integer(now_s()));
	json_object_set_new(rec, "state_request", json_string(rq->id));
	json_object_set_new(rec, "reason_code",
	                    json_integer(strcmp(to, "revoked") == 0 ? reason : 0));
	if ((r = audit_append(s->audit, "pki.ca.state",
	                      json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "serial", op->serial,
	                                "subject", jstr(rec, "subject"), "from", from, "to", to,
	                                "reason_code", strcmp(to, "revoked") == 0 ? reason : 0,
	                                "request", rq->id))) != 0 ||
	    (r = doc_put(s->store, NS_CA, op->serial, ver + 1, rec)) != 0)
		goto out;
	log_info("pki.ca.state", "serial=%s from=%s to=%s request=%s", op->serial, from, to,
	         rq->id);
publish:
	/* The root CRL changes only on revoke; it is re-signed anyway so that
	 * the result of every state change is the CRL in force. The list of
	 * enabled CAs changes on every state change. */
	{
		X509 *rx = NULL;
		r = load_root(s, &root, &rx);
		X509_free(rx);
		if (r != 0 || (r = publish_crl(s, &c, root, to, rq, &pem)) != 0 ||
		    (r = calist_ensure(s, &c, to, rq)) != 0)
			goto out;
	}
	*result = (uint8_t *)pem;
	*rlen = strlen(pem);
	pem = NULL;
out:
	pthread_rwlock_unlock(&pki_lock);
	free(pem);
	free(from);
	json_decref(rec);
	json_decref(root);
	pki_op_free(op);
	return r;
}

static int
device_revoke_submit(struct server *s, const struct policy *p, const struct policy_role *ro,
                     const char *submitter, const uint8_t *payload, size_t len)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	json_t *ca = NULL, *dev = NULL, *list = NULL;
	int r;

	(void)submitter;
	if ((r = op_check(p, ro, PKI_KIND_DEVICE_REVOKE, payload, len, &c, &op)) != 0)
		return r;
	pthread_rwlock_rdlock(&pki_lock);
	if ((r = doc_get(s->store, NS_CA, op->ca_serial, &ca, NULL)) != 0) {
		r = r == QS_ERR_NOT_FOUND ? qs_fail(QS_ERR_NOT_FOUND, "no device CA with serial %s",
		                                    op->ca_serial)
		                          : r;
		goto out;
	}
	if (strcmp(jstr(ca, "kind"), "device-ca-online") != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "device CA %s is local: its CRL is signed at its "
		            "site",
		            op->ca_serial);
		goto out;
	}
	if ((r = doc_get(s->store, NS_DEV, op->serial, &dev, NULL)) != 0 ||
	    strcmp(jstr(dev, "issuer_serial"), op->ca_serial) != 0) {
		r = qs_fail(QS_ERR_NOT_FOUND, "device CA %s issued no certificate %s",
		            op->ca_serial, op->serial);
		goto out;
	}
	r = doc_get(s->store, NS_DEVREV, op->ca_serial, &list, NULL);
	if (r == QS_ERR_NOT_FOUND)
		r = 0;
	for (size_t i = 0; r == 0 && i < json_array_size(list); i++)
		if (strcmp(jstr(json_array_get(list, i), "serial"), op->serial) == 0)
			r = qs_fail(QS_ERR_PRECONDITION, "device certificate %s is already revoked",
			            op->serial);
	if (r == 0 && json_array_size(list) >= MAX_DEVICE_REVOCATIONS)
		r = qs_fail(QS_ERR_EXHAUSTED, "device CA %s has %d revocations: revoke the CA",
		            op->ca_serial, MAX_DEVICE_REVOCATIONS);
out:
	pthread_rwlock_unlock(&pki_lock);
	json_decref(ca);
	json_decref(dev);
	json_decref(list);
	pki_op_free(op);
	return r;
}

static int
device_revoke_exec(struct server *s, const struct store_request *rq, const struct policy *p,
                   const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
                   uint8_t **result, size_t *rlen)
{
	struct pki_conf c;
	struct pki_op *op = NULL;
	json_t *ca = NULL, *list = NULL;
	char *pem = NULL;
	uint64_t ver = 0;
	int r, reason;

	clear_outputs(sigs, nsigs, result, rlen);
	if ((r = device_revoke_submit(s, p, ro, rq->submitter, rq->payload, rq->payload_len)) != 0)
		return r;
	if ((r = op_check(p, ro, rq->kind, rq->payload, rq->payload_len, &c, &op)) != 0)
		return r;
	reason = op->reason[0] ? pki_reason_code(op->reason) : CRL_REASON_UNSPECIFIED;
	pthread_rwlock_wrlock(&pki_lock);
	if ((r = doc_get(s->store, NS_CA, op->ca_serial, &ca, NULL)) != 0)
		goto out;
	r = doc_get(s->store, NS_DEVREV, op->ca_serial, &list, &ver);
	if (r == QS_ERR_NOT_FOUND)
		list = json_array();
	else if (r != 0)
		goto out;
	json_array_append_new(list, json_pack("{s:s, s:I, s:i, s:s}", "serial", op->serial,
	                                      "state_time", (json_int_t)now_s(), "reason_code",
	                                      reason, "request", rq->id));
	if ((r = audit_append(s->audit, "pki.device.revoked",
	                      json_pack("{s:s, s:s, s:i, s:s}", "serial", op->serial, "ca_serial",
	                                op->ca_serial, "reason_code", reason, "request",
	                                rq->id))) != 0 ||
	    (r = doc_put(s->store, NS_DEVREV, op->ca_serial, ver + 1, list)) != 0 ||
	    (r = publish_crl(s, &c, ca, "device revoked", rq, &pem)) != 0)
		goto out;
	*result = (uint8_t *)pem;
	*rlen = strlen(pem);
	pem = NULL;
out:
	pthread_rwlock_unlock(&pki_lock);
	free(pem);
	json_decref(ca);
	json_decref(list);
	pki_op_free(op);
	return r;
}

const struct reqkind_ops pki_kind_ca_create = {PKI_KIND_CA_CREATE, ca_create_submit,
                                               ca_create_exec};
const struct reqkind_ops pki_kind_tls = {PKI_KIND_TLS, tls_submit, tls_exec};
const struct reqkind_ops pki_kind_device_ca = {PKI_KIND_DEVICE_CA, device_ca_submit,
                                               device_ca_exec};
const struct reqkind_ops pki_kind_ca_state = {PKI_KIND_CA_STATE, ca_state_submit, ca_state_exec};
const struct reqkind_ops pki_kind_device_revoke = {PKI_KIND_DEVICE_REVOKE, device_revoke_submit,
                                                   device_revoke_exec};

/* ------------------------------------------------------------ RPCs */

static Qsign__V1__PkiCert *
cert_msg(json_t *rec, const char *state)
{
	Qsign__V1__PkiCert *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	qsign__v1__pki_cert__init(m);
	m->name = (char *)jstr(rec, "name");
	m->kind = (char *)jstr(rec, "kind");
	m->serial = (char *)jstr(rec, "serial");
	m->subject = (char *)jstr(rec, "subject");
	m->state = (char *)(state ? state : jstr(rec, "state"));
	m->not_before = json_integer_value(json_object_get(rec, "not_before"));
	m->not_after = json_integer_value(json_object_get(rec, "not_after"));
	m->certificate_pem = (char *)jstr(rec, "pem");
	m->issuer_serial = (char *)jstr(rec, "issuer_serial");
	m->sha256 = (char *)jstr(rec, "sha256");
	return m;
}

static int
push_cert(Qsign__V1__PkiShowResponse *resp, json_t *keep, json_t *rec, const char *state)
{
	Qsign__V1__PkiCert **nv, *m;

	if ((m = cert_msg(rec, state)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((nv = realloc(resp->certificates, (resp->n_certificates + 1) * sizeof(*nv))) == NULL) {
		free(m);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	resp->certificates = nv;
	resp->certificates[resp->n_certificates++] = m;
	json_array_append(keep, rec); /* the strings live as long as keep */
	return 0;
}

int
h_pki_show(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__PkiShowRequest *req = NULL;
	Qsign__V1__PkiShowResponse resp = QSIGN__V1__PKI_SHOW_RESPONSE__INIT;
	static const char *const tls_names[] = {"tls", "est"};
	struct pki_conf c;
	json_t *keep = json_array(), *rec = NULL, *cas = NULL;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__pki_show_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0) {
		json_decref(keep);
		return r;
	}
	if (keep == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = pki_conf_get(cx->pol, &c)) != 0)
		goto out;
	resp.factory = (char *)c.factory;
	pthread_rwlock_rdlock(&pki_lock);
	r = root_exists(cx->srv, &rec);
	if (r == 1)
		r = push_cert(&resp, keep, rec, NULL);
	json_decref(rec);
	rec = NULL;
	for (size_t i = 0; r == 0 && i < 2; i++) {
		uint64_t ver = 0;
		if ((r = doc_get(cx->srv->store, NS_TLS, tls_names[i], &rec, &ver)) ==
		    QS_ERR_NOT_FOUND) {
			r = 0;
			continue;
		}
		if (r == 0)
			r = push_cert(&resp, keep, rec, NULL);
		json_decref(rec);
		rec = NULL;
		for (uint64_t v = ver - 1; r == 0 && req->include_history && v >= 1; v--) {
			uint8_t *d = NULL;
			size_t dl = 0;
			json_error_t e;
			if ((r = store_doc_get(cx->srv->store, NS_TLS, tls_names[i], v, &d, &dl,
			                       NULL)) != 0)
				break;
			rec = json_loadb((const char *)d, dl, 0, &e);
			free(d);
			r = rec ? push_cert(&resp, keep, rec, "superseded")
			        : qs_fail(QS_ERR_DB, "bad stored TLS record");
			json_decref(rec);
			rec = NULL;
		}
	}
	if (r == 0 && (r = list_cas(cx->srv->store, &cas)) == 0)
		for (size_t i = 0; r == 0 && i < json_array_size(cas); i++)
			r = push_cert(&resp, keep, json_array_get(cas, i), NULL);
	pthread_rwlock_unlock(&pki_lock);
	if (r < 0)
		goto out;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	for (size_t i = 0; i < resp.n_certificates; i++)
		free(resp.certificates[i]);
	free(resp.certificates);
	json_decref(cas);
	json_decref(keep);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

/* The device CA an issuance uses. Caller holds pki_lock. */
static int
pick_device_ca(struct server *s, const char *want, json_t **out)
{
	json_t *cas = NULL, *best = NULL;
	int r;

	*out = NULL;
	if ((r = list_cas(s->store, &cas)) != 0)
		return r;
	for (size_t i = 0; i < json_array_size(cas); i++) {
		json_t *e = json_array_get(cas, i);
		if (strcmp(jstr(e, "kind"), "device-ca-online") != 0)
			continue;
		if (want[0] != '\0'
		            ? strcmp(jstr(e, "serial"), want) == 0
		            : best == NULL ||
		                      json_integer_value(json_object_get(e, "created")) >=
		                              json_integer_value(json_object_get(best, "created")))
			best = e;
	}
	if (best == NULL)
		r = want[0] ? qs_fail(QS_ERR_NOT_FOUND, "no online device CA with serial %s", want)
		            : qs_fail(QS_ERR_PRECONDITION, "no online device CA yet (qsign ca "
		                                           "add-device-ca --online)");
	else if (strcmp(jstr(best, "state"), "active") != 0)
		r = qs_fail(QS_ERR_PRECONDITION,
		            "device CA %s (serial %s) is %s: it issues no new device "
		            "certificates",
		            jstr(best, "name"), jstr(best, "serial"), jstr(best, "state"));
	else
		*out = json_incref(best);
	json_decref(cas);
	return r;
}

/* The device CSR is acceptable for this factory. */
static int
device_csr_check(const struct pki_csr *csr, const struct pki_conf *c)
{
	char pb[80];

	if (!pki_uuid_valid(csr->cn))
		return qs_fail(QS_ERR_INVALID, "device CSR: CN \"%s\" is not a device UUID",
		               log_peerstr(csr->cn, pb, sizeof(pb)));
	if (strcmp(csr->ou, c->factory) != 0)
		return qs_fail(QS_ERR_INVALID, "device CSR: OU \"%s\" is not the factory \"%s\"",
		               log_peerstr(csr->ou, pb, sizeof(pb)), c->factory);
	if (csr->nattrs != 2)
		return qs_fail(QS_ERR_INVALID, "device CSR: the subject must be exactly CN=<UUID>, "
		                               "OU=<factory>");
	return 0;
}

int
h_pki_issue_device(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                   size_t *out_len)
{
	Qsign__V1__PkiIssueDeviceRequest *req = NULL;
	Qsign__V1__PkiIssueDeviceResponse resp = QSIGN__V1__PKI_ISSUE_DEVICE_RESPONSE__INIT;
	struct server *s = cx->srv;
	struct pki_conf c;
	struct pki_csr *csr = NULL;
	struct keyring_key *k = NULL;
	json_t *ca = NULL, *rec = NULL;
	X509_NAME *name = NULL;
	X509 *cax = NULL, *x = NULL;
	char serial[PKI_MAX_SERIAL_HEX + 1], *pem = NULL, pb[80];
	const struct policy_role *ro;
	int r, locked = 0;

	if ((r = qs_wire_unpack(&qsign__v1__pki_issue_device_request__descriptor, body, len,
	                        PKI_MAX_CSR + 256, (ProtobufCMessage **)&req)) != 0)
		return r;
	if ((r = pki_conf_get(cx->pol, &c)) != 0)
		goto out;
	ro = c.role_device;
	if (!policy_role_has_requester(ro, (size_t)cx->pidx)) {
		r = qs_fail(QS_ERR_DENIED,
		            "principal %s is not a requester of role %s (device "
		            "certificates)",
		            cx->principal, ro->name);
		goto out;
	}
	if (req->ca_serial[0] != '\0' &&
	    (strlen(req->ca_serial) > PKI_MAX_SERIAL_HEX ||
	     strspn(req->ca_serial, "0123456789abcdef") != strlen(req->ca_serial))) {
		r = qs_fail(QS_ERR_INVALID, "ca_serial \"%s\" is not lower-case hex",
		            log_peerstr(req->ca_serial, pb, sizeof(pb)));
		goto out;
	}
	if ((r = ratelimit_take(s->rl, ro->name, cx->principal, ro->rate_per_second, ro->burst,
	                        1)) != 0 ||
	    (r = pki_csr_parse(req->csr.data, req->csr.len, &csr)) != 0 ||
	    (r = device_csr_check(csr, &c)) != 0)
		goto out;
	/* req_mu first (key lookup), then pki_lock: the lock order. */
	pthread_mutex_lock(&s->req_mu);
	pthread_rwlock_rdlock(&pki_lock);
	locked = 1;
	if ((r = pick_device_ca(s, req->ca_serial, &ca)) != 0 ||
	    (r = ca_key(s, jstr(ca, "key_uri"), &k)) != 0) {
		pthread_mutex_unlock(&s->req_mu);
		goto out;
	}
	pthread_mutex_unlock(&s->req_mu);
	if ((r = pki_cert_parse(jstr(ca, "pem"), &cax)) != 0)
		goto out;
	if ((name = pki_cn_ou(csr->cn, c.factory)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		struct pki_tmpl t = {.profile = PKI_P_DEVICE,
		                     .subject = name,
		                     .pub = X509_REQ_get0_pubkey(csr->req),
		                     .issuer = cax,
		                     .days = c.days_device};
		if ((r = pki_x509_build(&t, &x, serial)) != 0 ||
		    (r = pki_sign_cert(&x, k, NULL)) != 0)
			goto out;
	}
	if ((rec = new_rec("device", csr->cn, serial, jstr(ca, "serial"), NULL)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = record_cert(s, NS_DEV, serial, 1, x, rec, "principal", cx->principal, &pem)) != 0)
		goto out;
	resp.certificate_pem = pem;
	resp.serial = serial;
	resp.ca_serial = (char *)jstr(ca, "serial");
	resp.ca_pem = (char *)jstr(ca, "pem");
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	if (locked)
		pthread_rwlock_unlock(&pki_lock);
	free(pem);
	json_decref(ca);
	X509_NAME_free(name);
	X509_free(cax);
	X509_free(x);
	pki_csr_free(csr);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

/* The latest CRL of ca, re-signed first when less than half of its
 * validity is left. Caller holds req_mu and pki_lock (write). */
static int
current_crl(struct server *s, const struct pki_conf *c, json_t *ca, json_t **out)
{
	int64_t now = now_s();
	int r = doc_get(s->store, NS_CRL, jstr(ca, "serial"), out, NULL);

	if (r != 0 && r != QS_ERR_NOT_FOUND)
		return r;
	if (r == 0 && json_integer_value(json_object_get(*out, "next_update")) - now >
	                      c->crl_days * 86400 / 2)
		return 0;
	json_decref(*out);
	*out = NULL;
	if ((r = publish_crl(s, c, ca, "refresh before nextUpdate", NULL, NULL)) != 0)
		return r;
	return doc_get(s->store, NS_CRL, jstr(ca, "serial"), out, NULL);
}

static int
push_crl(Qsign__V1__PkiCrlResponse *resp, json_t *keep, json_t *ca, json_t *crl)
{
	Qsign__V1__PkiCrl *m = calloc(1, sizeof(*m)), **nv;

	if (m == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((nv = realloc(resp->crls, (resp->n_crls + 1) * sizeof(*nv))) == NULL) {
		free(m);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	qsign__v1__pki_crl__init(m);
	m->issuer_name = (char *)jstr(ca, "name");
	m->issuer_serial = (char *)jstr(ca, "serial");
	m->number = (uint64_t)json_integer_value(json_object_get(crl, "number"));
	m->next_update = json_integer_value(json_object_get(crl, "next_update"));
	m->crl_pem = (char *)jstr(crl, "pem");
	resp->crls = nv;
	resp->crls[resp->n_crls++] = m;
	json_array_append(keep, crl);
	return 0;
}

int
h_pki_crl(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__PkiCrlRequest *req = NULL;
	Qsign__V1__PkiCrlResponse resp = QSIGN__V1__PKI_CRL_RESPONSE__INIT;
	Qsign__V1__PkiCaList list = QSIGN__V1__PKI_CA_LIST__INIT;
	struct server *s = cx->srv;
	struct pki_conf c;
	json_t *keep = json_array(), *root = NULL, *cas = NULL, *crl = NULL, *cal = NULL;
	uint8_t sig[HSM_SIG_MAX + 16];
	size_t sig_len = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__pki_crl_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0) {
		json_decref(keep);
		return r;
	}
	if (keep == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = pki_conf_get(cx->pol, &c)) != 0)
		goto out;
	pthread_mutex_lock(&s->req_mu);
	pthread_rwlock_wrlock(&pki_lock);
	if ((r = root_exists(s, &root)) == 0)
		r = qs_fail(QS_ERR_PRECONDITION, "the factory root CA does not exist yet");
	if (r == 1 && (r = current_crl(s, &c, root, &crl)) == 0 &&
	    (r = push_crl(&resp, keep, root, crl)) == 0 && (r = list_cas(s->store, &cas)) == 0)
		for (size_t i = 0; r == 0 && i < json_array_size(cas); i++) {
			json_t *e = json_array_get(cas, i);
			if (strcmp(jstr(e, "kind"), "device-ca-online") != 0)
				continue;
			json_decref(crl);
			crl = NULL;
			if ((r = current_crl(s, &c, e, &crl)) == 0)
				r = push_crl(&resp, keep, e, crl);
		}
	if (r == 0 && (r = calist_ensure(s, &c, "device CA state", NULL)) == 0 &&
	    (r = doc_get(s->store, NS_CALIST, CALIST_NAME, &cal, NULL)) == 0 &&
	    (r = qs_unhex(jstr(cal, "signature"), sig, sizeof(sig), &sig_len)) != 0)
		r = qs_fail(QS_ERR_DB, "the stored list of enabled device CAs has a bad signature "
		                       "field");
	pthread_rwlock_unlock(&pki_lock);
	pthread_mutex_unlock(&s->req_mu);
	if (r != 0)
		goto out;
	list.document = (char *)jstr(cal, "document");
	list.signature.data = sig;
	list.signature.len = sig_len;
	list.version = (uint64_t)json_integer_value(json_object_get(cal, "version"));
	list.expires = json_integer_value(json_object_get(cal, "expires"));
	resp.enabled_device_cas = &list;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	for (size_t i = 0; i < resp.n_crls; i++)
		free(resp.crls[i]);
	free(resp.crls);
	json_decref(crl);
	json_decref(cal);
	json_decref(root);
	json_decref(cas);
	json_decref(keep);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
pki_crl_refresh(struct server *s)
{
	struct policy *p = server_policy(s);
	struct pki_conf c;
	json_t *root = NULL, *cas = NULL, *crl = NULL;
	int r;

	if (p->ext_pki == NULL) {
		policy_unref(p);
		return 0;
	}
	if ((r = pki_conf_get(p, &c)) != 0) {
		policy_unref(p);
		return r;
	}
	pthread_mutex_lock(&s->req_mu);
	pthread_rwlock_wrlock(&pki_lock);
	/* Only CRLs near their nextUpdate are re-signed (current_crl). */
	if ((r = root_exists(s, &root)) == 1 && (r = current_crl(s, &c, root, &crl)) == 0 &&
	    (r = list_cas(s->store, &cas)) == 0)
		for (size_t i = 0; r == 0 && i < json_array_size(cas); i++) {
			json_t *e = json_array_get(cas, i);
			if (strcmp(jstr(e, "kind"), "device-ca-online") != 0)
				continue;
			json_decref(crl);
			crl = NULL;
			r = current_crl(s, &c, e, &crl);
		}
	if (r == 0 && root != NULL)
		r = calist_ensure(s, &c, "device CA state", NULL);
	pthread_rwlock_unlock(&pki_lock);
	pthread_mutex_unlock(&s->req_mu);
	json_decref(crl);
	json_decref(root);
	json_decref(cas);
	policy_unref(p);
	return r < 0 ? r : 0;
}

int
pki_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg)
{
	json_t *root = NULL, *cas = NULL, *ca;
	char what[96];
	size_t i;
	int r;

	if ((r = doc_get(st, NS_ROOT, "root", &root, NULL)) == 0 && jstr(root, "key_uri")[0] &&
	    (r = use(arg, jstr(root, "key_uri"), "the root CA")) != 0)
		goto out;
	if (r != 0 && r != QS_ERR_NOT_FOUND)
		goto out;
	if ((r = list_cas(st, &cas)) != 0)
		goto out;
	json_array_foreach(cas, i, ca)
	{
		if (!jstr(ca, "key_uri")[0])
			continue; /* a local CA: its key stays at the factory */
		snprintf(what, sizeof(what), "device CA %.64s", jstr(ca, "serial"));
		if ((r = use(arg, jstr(ca, "key_uri"), what)) != 0)
			goto out;
	}
	r = 0;
out:
	json_decref(root);
	json_decref(cas);
	return r;
}
