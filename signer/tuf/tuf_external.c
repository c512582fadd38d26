/*
 * External TUF keys (held outside the daemon): their state entries,
 * the key sets a document needs, signing a document with the token keys it
 * holds and the external signatures it was given, and the RPCs through
 * which a holder fetches a prepared change and adds signatures.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "cjson.h"
#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "tuf.h"
#include "tuf_internal.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

/* ------------------------------------------------------------ external keys */

/* The policy's external key called name ({holder, public_key}), or NULL. */
json_t *
pol_external(const struct policy *p, const char *name)
{
	return json_object_get(json_object_get(p->ext_tuf, "external"), name);
}

/* The gate whose approvers hold the external keys of role. */
static const char *
gate_of_role(const char *role)
{
	return strcmp(tuf_role_type(role), "root") == 0 ? "admin" : "promote";
}

/* A state entry {name, holder, public_key (normalised), keyid} for an
 * external key, after checking that its holder approves in the role's
 * gate under policy p. */
int
external_entry(const struct policy *p, const char *role, const char *name, const char *holder,
               const char *pem_in, json_t **out)
{
	const char *g = json_string_value(
	        json_object_get(json_object_get(p->ext_tuf, "gates"), gate_of_role(role)));
	const struct policy_role *ro = g != NULL ? policy_role(p, g) : NULL;
	ssize_t pi = policy_principal_index(p, holder);
	char *pem = NULL, kid[65];
	int r;

	*out = NULL;
	if (ro == NULL || pi < 0 || !policy_role_has_approver(ro, (size_t)pi))
		return qs_fail(QS_ERR_PRECONDITION,
		               "external key %s: holder %s is not an approver of tuf.gates.%s",
		               name, holder, gate_of_role(role));
	if ((r = tuf_pem_normalize(pem_in, &pem)) != 0)
		return qs_wrap(r, "external key %s", name);
	if ((r = tuf_keyid_pem(pem, kid)) == 0 &&
	    (*out = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "holder", holder, "public_key",
	                      pem, "keyid", kid)) == NULL)
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
	free(pem);
	return r;
}

/*
 * The keys whose signatures count for a document: {"keyids": [every key],
 * "threshold": N, "uris": [the daemon's own keys, which always sign],
 * "external": {keyid: {name, holder, public_key}}} of metadata role `type`
 * of repository repo: that repository's own key role only.
 */
json_t *
key_set(struct server *s, json_t *st, const char *repo, const char *type, int *rp)
{
	const char *roles[2] = {tuf_repo_role(repo, type), NULL};
	json_t *set, *ids = json_array(), *uris = json_array(), *ext = json_object(), *v;
	json_int_t th = st_threshold(st, roles[0]);
	size_t i;

	*rp = 0;
	if (ids == NULL || uris == NULL || ext == NULL)
		goto nomem;
	for (size_t k = 0; k < 2 && roles[k] != NULL; k++) {
		json_t *more = role_keyids(s, st, roles[k], NULL, rp);
		if (more == NULL)
			goto fail;
		append_distinct(ids, more);
		json_decref(more);
		json_array_extend(uris, st_uris(st, roles[k]));
		json_array_foreach(st_ext(st, roles[k]), i, v)
		{
			json_object_set_new(ext, json_string_value(json_object_get(v, "keyid")),
			                    json_pack("{s:O, s:O, s:O}", "name",
			                              json_object_get(v, "name"), "holder",
			                              json_object_get(v, "holder"), "public_key",
			                              json_object_get(v, "public_key")));
		}
	}
	if ((set = json_pack("{s:o, s:I, s:o, s:o}", "keyids", ids, "threshold", th, "uris", uris,
	                     "external", ext)) == NULL)
		goto nomem;
	return set;
nomem:
	*rp = qs_fail(QS_ERR_NOMEM, "out of memory");
fail:
	json_decref(ids);
	json_decref(uris);
	json_decref(ext);
	return NULL;
}

/* A document to publish: {repo, role, version, signed, need: [key sets,
 * all of whose thresholds must be met], sigs: {keyid: hex} (external)}. */
int
doc_add(json_t *docs, const char *repo, const char *role, uint64_t version, json_t *signed_part,
        json_t *need)
{
	json_t *d =
	        json_pack("{s:s, s:s, s:I, s:O, s:O, s:{}}", "repo", repo, "role", role, "version",
	                  (json_int_t)version, "signed", signed_part, "need", need, "sigs");

	if (d == NULL || json_array_append_new(docs, d) != 0)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

/* The external key `kid` of any key set of doc, or NULL. */
static json_t *
doc_external(json_t *doc, const char *kid)
{
	json_t *set, *e;
	size_t i;

	json_array_foreach(json_object_get(doc, "need"), i, set)
	{
		if ((e = json_object_get(json_object_get(set, "external"), kid)) != NULL)
			return e;
	}
	return NULL;
}

/*
 * Sign doc with the daemon's keys of its key sets, on the evidence of rq
 * (the approved request that makes it: a signer helper signs a root or
 * production targets only with it), add the stored external signatures
 * that still verify, and count. *missing = external signatures
 * still needed (the largest shortfall of any set); *env only when none is.
 */
int
sign_doc(struct server *s, const struct store_request *rq, json_t *doc, json_t **env,
         size_t *missing)
{
	json_t *sp = json_object_get(doc, "signed"), *have = json_object(), *e = NULL, *set, *v;
	json_t *gone = json_array();
	uint8_t dg[32], sig[HSM_SIG_MAX + 16];
	char *canon = NULL, kid[65];
	const char *x;
	size_t len = 0, sl, i, j;
	int r;

	*env = NULL;
	*missing = 0;
	if (have == NULL || gone == NULL || (e = tuf_envelope_new(sp)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = tuf_signed_digest(sp, &canon, &len, dg)) != 0)
		goto out;
	json_array_foreach(json_object_get(doc, "need"), i, set)
	{
		json_array_foreach(json_object_get(set, "uris"), j, v)
		{
			struct keyring_key *k;
			/* A key whose token is lost does not sign; the
			 * thresholds below decide whether the others do. */
			if (key_at(s, json_string_value(v), &k) != 0) {
				log_warn("tuf.key_unavailable", "uri=%s detail=\"%s\"",
				         json_string_value(v), qs_errdetail());
				if (json_array_append_new(gone,
				                          json_string(json_string_value(v))) != 0) {
					r = qs_fail(QS_ERR_NOMEM, "out of memory");
					goto out;
				}
				qs_errclear();
				continue;
			}
			if ((r = keyid_of(k, kid)) != 0)
				goto out;
			if (json_object_get(have, kid) != NULL)
				continue;
			sl = sizeof(sig);
			if ((r = keyring_sign_tuf(k,
			                          json_string_value(json_object_get(doc, "repo")),
			                          canon, len, dg, rq, sig, &sl)) != 0 ||
			    (r = tuf_envelope_add_sig(e, kid, sig, sl)) != 0)
				goto out;
			json_object_set_new(have, kid, json_true());
		}
	}
	json_object_foreach(json_object_get(doc, "sigs"), x, v)
	{
		json_t *ek = doc_external(doc, x);
		size_t n = 0;
		/* Verified when it was added; again here, so that a state
		 * store edited behind our back cannot count. */
		if (json_object_get(have, x) != NULL || ek == NULL ||
		    tuf_verify_ecdsa(json_string_value(json_object_get(ek, "public_key")),
		                     (const uint8_t *)canon, len, json_string_value(v)) != 0 ||
		    qs_unhex(json_string_value(v), sig, sizeof(sig), &n) != 0) {
			log_warn("tuf.signature_ignored", "keyid=%s", x);
			qs_errclear();
			continue;
		}
		if ((r = tuf_envelope_add_sig(e, x, sig, n)) != 0)
			goto out;
		json_object_set_new(have, x, json_true());
	}
	json_array_foreach(json_object_get(doc, "need"), i, set)
	{
		size_t got = 0, th = (size_t)json_integer_value(json_object_get(set, "threshold"));
		json_array_foreach(json_object_get(set, "keyids"), j, v)
		{
			got += json_object_get(have, json_string_value(v)) != NULL;
		}
		if (got < th && th - got > *missing)
			*missing = th - got;
		if (got < th) {
			/* Can the external keys still make it up? */
			size_t open = 0;
			const char *ox;
			json_t *e2;
			json_object_foreach(json_object_get(set, "external"), ox, e2)
			{
				open += json_object_get(have, ox) == NULL;
			}
			if (open < th - got) {
				char *list = json_dumps(gone, JSON_COMPACT);
				r = qs_fail(QS_ERR_UNAVAILABLE,
				            "%s %s version %lld: only %zu of the %zu signatures "
				            "needed can be made; keys not found: %s",
				            json_string_value(json_object_get(doc, "repo")),
				            json_string_value(json_object_get(doc, "role")),
				            (long long)json_integer_value(
				                    json_object_get(doc, "version")),
				            got + open, th, list ? list : "?");
				free(list);
				goto out;
			}
		}
	}
	if (*missing == 0) {
		*env = e;
		e = NULL;
	}
	r = 0;
out:
	free(canon);
	json_decref(e);
	json_decref(have);
	json_decref(gone);
	return r;
}

size_t
tuf_doc_missing(struct server *s, json_t *doc)
{
	json_t *have = json_object(), *set, *v;
	size_t i, j, missing = 0;
	char kid[65];
	const char *x;

	if (have == NULL)
		return (size_t)-1;
	json_array_foreach(json_object_get(doc, "need"), i, set)
	{
		json_array_foreach(json_object_get(set, "uris"), j, v)
		{
			struct keyring_key *k;
			/* Only the daemon's keys it can find will sign. */
			if (key_at(s, json_string_value(v), &k) == 0 && keyid_of(k, kid) == 0)
				json_object_set_new(have, kid, json_true());
			qs_errclear();
		}
	}
	json_object_foreach(json_object_get(doc, "sigs"), x, v)
	        json_object_set_new(have, x, json_true());
	json_array_foreach(json_object_get(doc, "need"), i, set)
	{
		size_t got = 0, th = (size_t)json_integer_value(json_object_get(set, "threshold"));
		json_array_foreach(json_object_get(set, "keyids"), j, v)
		{
			got += json_object_get(have, json_string_value(v)) != NULL;
		}
		if (got < th && th - got > missing)
			missing = th - got;
	}
	json_decref(have);
	return missing;
}

/* Remember the public key of every token key of st in roles.<role>.public
 * {uri: pem} (kept from before for a key whose token is gone). */
int
remember_public(struct server *s, json_t *st)
{
	for (size_t i = 0; tuf_key_roles[i] != NULL; i++) {
		json_t *ro = st_role(st, tuf_key_roles[i]), *old = json_object_get(ro, "public");
		json_t *pub = json_object(), *u;
		size_t j;
		if (pub == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		json_array_foreach(json_object_get(ro, "uris"), j, u)
		{
			const char *uri = json_string_value(u);
			struct keyring_key *k;
			json_t *was = json_object_get(old, uri);
			int r;
			if (was != NULL) {
				json_object_set(pub, uri, was);
			} else if ((r = key_at(s, uri, &k)) == 0) {
				json_object_set_new(pub, uri, json_string(k->spki_pem));
			} else {
				json_decref(pub);
				return r;
			}
		}
		json_object_set_new(ro, "public", pub);
	}
	return 0;
}

/* ------------------------------------------------------------ external signing */

/* The request id, if it is a TUF change still open, with its policy. */
static int
open_request(struct server *s, const char *id, struct store_request **rqp, struct policy **pp)
{
	struct store_request *rq = NULL;
	int r;

	*rqp = NULL;
	*pp = NULL;
	if (!qs_name_valid(id, 64))
		return qs_fail(QS_ERR_INVALID, "request id: a name");
	if ((r = store_req_get(s->store, id, 1, &rq)) != 0)
		return r == QS_ERR_NOT_FOUND ? qs_fail(QS_ERR_NOT_FOUND, "no request %s", id) : r;
	if (strcmp(rq->kind, "tuf-init") != 0 && strcmp(rq->kind, "tuf-root") != 0 &&
	    strcmp(rq->kind, "tuf-promote") != 0) {
		r = qs_fail(QS_ERR_INVALID, "request %s is a %s request, not a TUF change", id,
		            rq->kind);
		goto fail;
	}
	if (rq->state != REQ_PENDING && rq->state != REQ_APPROVED) {
		r = qs_fail(QS_ERR_PRECONDITION, "request %s is closed", id);
		goto fail;
	}
	if (requests_expired(s, rq, NULL)) {
		r = qs_fail(QS_ERR_PRECONDITION, "request %s has expired", id);
		goto fail;
	}
	if ((r = policy_at(s, rq->policy_version, pp)) != 0)
		goto fail;
	*rqp = rq;
	return 0;
fail:
	store_request_free(rq);
	return r;
}

/* principal holds an external key of the repository (of the state, or
 * of the policy before init). */
static int
is_holder(struct server *s, const struct policy *p, const char *principal)
{
	json_t *st = NULL, *e;
	const char *name;
	uint64_t ver;
	size_t i;
	int yes = 0;

	if (load_state(s, &st, &ver) == 0) {
		for (size_t k = 0; tuf_key_roles[k] != NULL; k++)
			json_array_foreach(st_ext(st, tuf_key_roles[k]), i, e)
			{
				yes |= strcmp(json_string_value(json_object_get(e, "holder")),
				              principal) == 0;
			}
		json_decref(st);
		return yes;
	}
	qs_errclear();
	json_object_foreach(json_object_get(p->ext_tuf, "external"), name, e)
	{
		yes |= strcmp(json_string_value(json_object_get(e, "holder")), principal) == 0;
	}
	return yes;
}

int
tuf_prepare(struct server *s, const char *principal, const char *id, json_t **prep_out)
{
	struct store_request *rq = NULL;
	struct policy *p = NULL;
	const struct policy_role *ro;
	json_t *prep = NULL;
	ssize_t pi;
	uint64_t pv;
	int r;

	*prep_out = NULL;
	if ((r = open_request(s, id, &rq, &p)) != 0)
		return r;
	/* Preparing may generate a key: the request's approvers (who hold
	 * the external keys) and its submitter only. */
	ro = policy_role(p, rq->role);
	pi = policy_principal_index(p, principal);
	if (strcmp(principal, rq->submitter) != 0 &&
	    (ro == NULL || pi < 0 || !policy_role_has_approver(ro, (size_t)pi)) &&
	    !is_holder(s, p, principal)) {
		r = qs_fail(QS_ERR_DENIED, "principal %s is not an approver of role %s", principal,
		            rq->role);
		goto out;
	}
	pthread_mutex_lock(&tuf_mu);
	r = prepare_locked(s, p, rq, &prep, &pv);
	pthread_mutex_unlock(&tuf_mu);
	*prep_out = prep;
out:
	store_request_free(rq);
	policy_unref(p);
	return r;
}

int
tuf_add_signatures(struct server *s, const char *principal, const char *id,
                   const struct tuf_ext_sig *sigs, size_t n, json_t **prep_out)
{
	struct store_request *rq = NULL;
	struct policy *p = NULL;
	json_t *prep = NULL, *audit = json_array();
	uint64_t pv;
	int r;

	*prep_out = NULL;
	if (audit == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (n == 0 || n > 16) {
		r = qs_fail(QS_ERR_INVALID, "1..16 signatures per call");
		goto out;
	}
	if ((r = open_request(s, id, &rq, &p)) != 0)
		goto out;
	pthread_mutex_lock(&tuf_mu);
	if ((r = prep_load(s, id, &prep, &pv)) != 0) {
		if (r == QS_ERR_NOT_FOUND)
			r = qs_fail(QS_ERR_PRECONDITION,
			            "request %s is not prepared: fetch it with Tuf/Prepare first",
			            id);
		goto unlock;
	}
	/* All or nothing: every signature verifies before any is kept. */
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(json_object_get(prep, "docs"), sigs[i].doc), *ek;
		char *canon = NULL, *hex = NULL, dgh[65];
		uint8_t dg[32];
		size_t len = 0;
		if (d == NULL) {
			r = qs_fail(QS_ERR_INVALID, "signature %zu: no document %u", i,
			            sigs[i].doc);
			goto unlock;
		}
		if ((ek = doc_external(d, sigs[i].keyid)) == NULL) {
			r = qs_fail(QS_ERR_INVALID,
			            "signature %zu: key %.64s is not an external key of %s %s", i,
			            sigs[i].keyid, json_string_value(json_object_get(d, "repo")),
			            json_string_value(json_object_get(d, "role")));
			goto unlock;
		}
		if (strcmp(json_string_value(json_object_get(ek, "holder")), principal) != 0) {
			r = qs_fail(QS_ERR_DENIED, "key %s is held by %s, not by %s", sigs[i].keyid,
			            json_string_value(json_object_get(ek, "holder")), principal);
			goto unlock;
		}
		if (sigs[i].sig_len == 0 || sigs[i].sig_len > 128 ||
		    (hex = qs_hex(sigs[i].sig, sigs[i].sig_len)) == NULL ||
		    (r = tuf_signed_digest(json_object_get(d, "signed"), &canon, &len, dg)) != 0 ||
		    (r = tuf_verify_ecdsa(json_string_value(json_object_get(ek, "public_key")),
		                          (const uint8_t *)canon, len, hex)) != 0) {
			r = r != 0 ? r : qs_fail(QS_ERR_INVALID, "signature %zu: 1..128 bytes", i);
			r = qs_wrap(r, "signature %zu by %.16s... over %s %s version %lld", i,
			            sigs[i].keyid, json_string_value(json_object_get(d, "repo")),
			            json_string_value(json_object_get(d, "role")),
			            (long long)json_integer_value(json_object_get(d, "version")));
			free(hex);
			free(canon);
			goto unlock;
		}
		free(canon);
		qs_hex_into(dg, 32, dgh);
		json_object_set_new(json_object_get(d, "sigs"), sigs[i].keyid, json_string(hex));
		json_array_append_new(
		        audit,
		        json_pack("{s:s, s:s, s:O, s:O, s:O, s:s}", "keyid", sigs[i].keyid, "key",
		                  json_object_get(ek, "name"), "repo", json_object_get(d, "repo"),
		                  "role", json_object_get(d, "role"), "version",
		                  json_object_get(d, "version"), "signed_sha256", dgh));
		free(hex);
	}
	if ((r = audit_append(s->audit, "tuf.signature",
	                      json_pack("{s:s, s:s, s:O}", "request", id, "principal", principal,
	                                "signatures", audit))) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "audit log: %s; the signatures were not kept",
		            qs_errdetail());
		goto unlock;
	}
	if ((r = prep_store(s, id, prep, pv + 1)) != 0)
		goto unlock;
	log_info("tuf.signature", "request=%s principal=%s signatures=%zu", id, principal, n);
	*prep_out = json_incref(prep);
unlock:
	pthread_mutex_unlock(&tuf_mu);
	/* May publish now. Whatever the state was when we looked: a last
	 * vote may have made it APPROVED (and waiting) meanwhile; finalize
	 * re-reads it under the request lock. Never under tuf_mu. */
	if (r == 0)
		requests_retry(s, id);
out:
	store_request_free(rq);
	policy_unref(p);
	json_decref(prep);
	json_decref(audit);
	return r;
}

int
tuf_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg)
{
	uint8_t *d = NULL;
	size_t len = 0, i;
	json_t *j = NULL, *ro, *u;
	const char *name;
	char what[96];
	int r;

	if ((r = store_doc_get(st, "tuf", "keys", 0, &d, &len, NULL)) != 0)
		return r == QS_ERR_NOT_FOUND ? 0 : r;
	if ((j = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		r = qs_fail(QS_ERR_DB, "stored TUF key state is not JSON");
		goto out;
	}
	json_object_foreach(json_object_get(j, "roles"), name, ro)
	{
		snprintf(what, sizeof(what), "tuf.roles.%.64s", name);
		json_array_foreach(json_object_get(ro, "uris"), i, u)
		{
			if (json_is_string(u) && (r = use(arg, json_string_value(u), what)) != 0)
				goto out;
		}
	}
	r = 0;
out:
	json_decref(j);
	free(d);
	return r;
}
