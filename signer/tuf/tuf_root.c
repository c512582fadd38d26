/*
 * TUF init and root changes: the root v1 state from the policy, the
 * documents of init, and applying a tuf-root payload (rotate, thresholds,
 * keys, expiry, separate) to the key state and the documents it re-signs.
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

/* ------------------------------------------------------------ init */

static int
state_from_policy(struct server *s, const struct policy *p, json_t **out)
{
	json_t *st =
	        json_pack("{s:I, s:{}, s:[]}", "version", (json_int_t)1, "roles", "initial_root");
	int r = 0;

	*out = NULL;
	if (st == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; tuf_key_roles[i] != NULL; i++) {
		json_t *pr = pol_role(p, tuf_key_roles[i]), *uris = json_array(),
		       *ext = json_array(), *k;
		size_t j;
		json_array_foreach(json_object_get(pr, "keys"), j, k)
		{
			const char *name = json_string_value(k);
			json_t *pe = pol_external(p, name), *ent;
			if (pe != NULL) {
				if ((r = external_entry(
				             p, tuf_key_roles[i], name,
				             json_string_value(json_object_get(pe, "holder")),
				             json_string_value(json_object_get(pe, "public_key")),
				             &ent)) != 0) {
					json_decref(uris);
					json_decref(ext);
					json_decref(st);
					return r;
				}
				json_array_append_new(ext, ent);
				continue;
			}
			for (size_t ki = 0; ki < p->nkeys; ki++)
				if (strcmp(p->keys[ki].name, name) == 0)
					json_array_append_new(uris, json_string(p->keys[ki].uri));
		}
		json_object_set_new(json_object_get(st, "roles"), tuf_key_roles[i],
		                    json_pack("{s:o, s:O}", "uris", uris, "threshold",
		                              json_object_get(pr, "threshold")));
		if (json_array_size(ext) > 0)
			json_object_set(st_role(st, tuf_key_roles[i]), "external", ext);
		json_decref(ext);
	}
	{
		/* The initial root keys of both repositories. */
		json_t *ids = role_keyids(s, st, "root", NULL, &r), *more = NULL;
		if (ids == NULL || (more = role_keyids(s, st, "prod-root", NULL, &r)) == NULL) {
			json_decref(ids);
			json_decref(st);
			return r;
		}
		append_distinct(ids, more);
		json_decref(more);
		json_object_set_new(st, "initial_root", ids);
	}
	if ((r = remember_public(s, st)) != 0) {
		json_decref(st);
		return r;
	}
	*out = st;
	return 0;
}

int
init_submit_check(struct server *s, const struct policy *p, const struct policy_role *ro,
                  const char *submitter, const uint8_t *payload, size_t len)
{
	uint8_t *d = NULL;
	size_t dl;
	int r;

	(void)submitter;
	(void)payload;
	(void)len;
	if (p->ext_tuf == NULL)
		return qs_fail(QS_ERR_PRECONDITION, "the policy has no \"tuf\" section");
	if (ro == NULL ||
	    strcmp(ro->name, json_string_value(json_object_get(json_object_get(p->ext_tuf, "gates"),
	                                                       "admin"))) != 0)
		return qs_fail(QS_ERR_DENIED, "TUF init goes through role tuf.gates.admin");
	if (tuf_policy_legacy(p->ext_tuf))
		return qs_fail(QS_ERR_PRECONDITION,
		               "tuf.roles has no prod-root, prod-snapshot, prod-timestamp: each "
		               "repository needs keys of its own (see ops/docs/policy.md)");
	if ((r = store_doc_get(s->store, "tuf", "keys", 0, &d, &dl, NULL)) == 0) {
		free(d);
		return qs_fail(QS_ERR_EXISTS, "the TUF repositories are initialised already");
	}
	return r == QS_ERR_NOT_FOUND ? (qs_errclear(), 0) : r;
}

int
result_json(json_t *o, uint8_t **result, size_t *result_len)
{
	char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(o);
	if (t == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*result = (uint8_t *)t;
	*result_len = strlen(t);
	return 0;
}

/* Documents of init: both roots v1 and the production targets v1 (the CI
 * targets are signed by the online key alone, when published). */
int
init_prepare(struct server *s, const struct policy *p, json_t *prep)
{
	json_t *st = NULL, *sp = NULL, *need = NULL, *docs = json_object_get(prep, "docs");
	int r;

	if ((r = state_from_policy(s, p, &st)) != 0)
		return r;
	for (size_t i = 0; i < 2; i++) {
		json_t *set = key_set(s, st, tuf_repos[i], "root", &r);
		if (set == NULL)
			goto out;
		if ((r = build_root(s, p, st, tuf_repos[i], 1, &sp)) != 0) {
			json_decref(set);
			goto out;
		}
		if ((r = doc_add(docs, tuf_repos[i], "root", 1, sp,
		                 need = json_pack("[o]", set))) != 0)
			goto out;
		json_decref(sp);
		json_decref(need);
		sp = need = NULL;
	}
	{
		json_t *set = key_set(s, st, "prod", "targets", &r);
		if (set == NULL ||
		    (sp = signed_base("targets", 1, role_expiry(p, st, "prod-targets"))) == NULL) {
			json_decref(set);
			r = r != 0 ? r : qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		json_object_set_new(sp, "targets", json_object());
		if ((r = doc_add(docs, "prod", "targets", 1, sp, need = json_pack("[o]", set))) !=
		    0)
			goto out;
	}
	json_object_set(prep, "state", st);
	json_object_set_new(prep, "base", json_integer(0));
out:
	json_decref(st);
	json_decref(sp);
	json_decref(need);
	return r;
}

/* ------------------------------------------------------------ root changes */

int
gate_is(const struct policy *p, const struct policy_role *ro, const char *gate)
{
	const char *g =
	        json_string_value(json_object_get(json_object_get(p->ext_tuf, "gates"), gate));

	return p->ext_tuf != NULL && ro != NULL && g != NULL && strcmp(ro->name, g) == 0;
}

/* Generate a key for role in the token of `near` (a key URI) and audit it;
 * *uri_out is its URI, *gen {uri, keyid}. */
static int
generate_key(struct server *s, json_t *next, const char *role, const char *near, char *uri,
             size_t cap, json_t **gen)
{
	char label[64], kid[65];
	uint8_t rnd[4];
	const char *tok;
	struct keyring_key *k;
	int r;

	*gen = NULL;
	if ((tok = keyring_token_label_for(s->kr, near)) == NULL)
		return qs_fail(QS_ERR_NOT_FOUND, "no opened token for %s", near);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return qs_fail(QS_ERR_CRYPTO, "no randomness");
	snprintf(label, sizeof(label), "tuf-%s-v%lld-%02x%02x%02x%02x", role,
	         (long long)json_integer_value(json_object_get(next, "version")), rnd[0], rnd[1],
	         rnd[2], rnd[3]);
	if (strspn(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                "0123456789-_.") != strlen(tok))
		return qs_fail(QS_ERR_PRECONDITION, "token label needs URI escaping: unsupported");
	snprintf(uri, cap, "pkcs11:token=%s;object=%s", tok, label);
	{
		/* The same algorithm as the key it replaces or joins. */
		struct keyring_key *nk;
		enum hsm_keytype type = key_at(s, near, &nk) == 0 ? nk->type : HSM_KEY_EC_P256;
		qs_errclear();
		if ((r = keyring_keygen(s->kr, near, type, label)) != 0)
			return r;
	}
	if ((r = key_at(s, uri, &k)) != 0 || (r = keyid_of(k, kid)) != 0)
		return r;
	if ((r = audit_append(s->audit, "key.generated",
	                      json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", uri, "key_id",
	                                k->key_id, "keyid", kid, "role", role, "purpose",
	                                "tuf"))) != 0)
		return r;
	log_info("key.generated", "uri=%s role=%s keyid=%s", uri, role, kid);
	*gen = json_pack("{s:s, s:s}", "uri", uri, "keyid", kid);
	return 0;
}

/* Where role's key keyid sits: *uri_idx into uris or *ext_idx into
 * external (the other (size_t)-1). QS_ERR_PRECONDITION if it is not there. */
static int
find_key(struct server *s, json_t *st, const char *role, const char *keyid, size_t *uri_idx,
         size_t *ext_idx)
{
	json_t *ids;
	size_t nu = json_array_size(st_uris(st, role)), i;
	int r;

	*uri_idx = *ext_idx = (size_t)-1;
	if ((ids = role_keyids(s, st, role, NULL, &r)) == NULL)
		return r;
	for (i = 0; i < json_array_size(ids); i++)
		if (keyid == NULL ? json_array_size(ids) == 1
		                  : strcmp(json_string_value(json_array_get(ids, i)), keyid) == 0) {
			if (i < nu)
				*uri_idx = i;
			else
				*ext_idx = i - nu;
		}
	json_decref(ids);
	if (*uri_idx == (size_t)-1 && *ext_idx == (size_t)-1)
		return qs_fail(QS_ERR_PRECONDITION,
		               keyid ? "role %s has no key %s"
		                     : "role %s has several keys: name one (keyid)",
		               role, keyid ? keyid : "");
	return 0;
}

/* Every threshold can still be met by the role's keys. */
static int
check_counts(json_t *n, const char *role)
{
	size_t have = st_nkeys(n, role);
	json_int_t th = st_threshold(n, role);

	if (have == 0 || (size_t)th > have)
		return qs_fail(QS_ERR_PRECONDITION,
		               "role %s would have %zu key(s) for a threshold of %lld", role, have,
		               (long long)th);
	return 0;
}

/* The bounds of a set-expiry duration for role. */
static int
check_expiry(const struct policy *p, const char *role, const char *d)
{
	json_t *refresh = json_object_get(p->ext_tuf, "refresh");
	int64_t secs = 0,
	        lo = strcmp(role, "timestamp") == 0 || strcmp(role, "snapshot") == 0 ? 3600 : 86400;
	int64_t iv = 0, margin = 0;

	if (policy_parse_duration(d, &secs) != 0 || secs < lo || secs > 3650LL * 86400)
		return qs_fail(QS_ERR_PRECONDITION, "%s expiry %s: between %s and 3650d", role, d,
		               lo == 3600 ? "1h" : "1d");
	/* The bound the signer helpers hold online metadata to (tuf.h). */
	if (tuf_role_online(role) && secs > tuf_policy_role_expires(p, role))
		return qs_fail(QS_ERR_PRECONDITION,
		               "%s expiry %s is longer than the policy's tuf.roles bound for it: "
		               "lengthen it with a policy change",
		               role, d);
	if (refresh != NULL && (strcmp(role, "timestamp") == 0 || strcmp(role, "snapshot") == 0) &&
	    policy_parse_duration(json_string_value(json_object_get(refresh, "interval")), &iv) ==
	            0 &&
	    policy_parse_duration(json_string_value(json_object_get(refresh, "margin")), &margin) ==
	            0 &&
	    (margin >= secs || iv >= secs - margin / 2))
		return qs_fail(QS_ERR_PRECONDITION,
		               "%s expiry %s is too short for tuf.refresh (margin %s): the "
		               "refresh timer could not keep it valid",
		               role, d, json_string_value(json_object_get(refresh, "margin")));
	return 0;
}

/* The keyids of every key role of repository repo in st, as {keyid: role}. */
static json_t *
repo_keyids(struct server *s, json_t *st, const char *repo, int *rp)
{
	json_t *all = json_object(), *ids, *v;
	size_t i;

	*rp = 0;
	if (all == NULL) {
		*rp = qs_fail(QS_ERR_NOMEM, "out of memory");
		return NULL;
	}
	for (size_t k = 0; tuf_key_roles[k] != NULL; k++) {
		if (strcmp(tuf_role_repo(tuf_key_roles[k]), repo) != 0)
			continue;
		if ((ids = role_keyids(s, st, tuf_key_roles[k], NULL, rp)) == NULL) {
			json_decref(all);
			return NULL;
		}
		json_array_foreach(ids, i, v)
		{
			json_object_set_new(all, json_string_value(v),
			                    json_string(tuf_key_roles[k]));
		}
		json_decref(ids);
	}
	return all;
}

/*
 * The "separate" change on n (a copy of st): every production key that CI
 * uses too is replaced - a daemon key by a new key in the same token, an
 * external key by leaving prod-root, where the payload's external keys
 * (the holders' production keys) join. *generated: [{role, uri, keyid}].
 */
static int
apply_separate(struct server *s, const struct policy *p, json_t *st, json_t *n, json_t *pl,
               json_t **generated)
{
	json_t *ci = NULL, *gen = json_array(), *v, *ids = NULL;
	size_t changed = 0, i;
	char uri[256];
	int r;

	*generated = NULL;
	if (gen == NULL || (ci = repo_keyids(s, st, "ci", &r)) == NULL) {
		r = gen == NULL ? qs_fail(QS_ERR_NOMEM, "out of memory") : r;
		goto out;
	}
	for (size_t k = 0; tuf_key_roles[k] != NULL; k++) {
		const char *role = tuf_key_roles[k];
		json_t *uris = st_uris(n, role), *ext = st_ext(n, role);
		if (strcmp(tuf_role_repo(role), "prod") != 0)
			continue;
		json_decref(ids);
		if ((ids = role_keyids(s, st, role, NULL, &r)) == NULL)
			goto out;
		/* role_keyids lists token keys first, then external ones. */
		for (i = json_array_size(uris); i-- > 0;) {
			json_t *g = NULL;
			if (json_object_get(ci, json_string_value(json_array_get(ids, i))) == NULL)
				continue;
			if ((r = generate_key(s, n, role,
			                      json_string_value(json_array_get(uris, i)), uri,
			                      sizeof(uri), &g)) != 0)
				goto out;
			json_object_set_new(g, "role", json_string(role));
			json_array_append_new(gen, g);
			json_array_set_new(uris, i, json_string(uri));
			changed++;
		}
		for (i = json_array_size(ext); i-- > 0;) {
			if (json_object_get(ci, json_string_value(json_object_get(
			                                json_array_get(ext, i), "keyid"))) == NULL)
				continue;
			json_array_remove(ext, i);
			changed++;
		}
	}
	json_array_foreach(json_object_get(pl, "external"), i, v)
	{
		json_t *ent = NULL, *have;
		if ((r = external_entry(
		             p, "prod-root", json_string_value(json_object_get(v, "name")),
		             json_string_value(json_object_get(v, "holder")),
		             json_string_value(json_object_get(v, "public_key")), &ent)) != 0)
			goto out;
		if (json_object_get(ci, json_string_value(json_object_get(ent, "keyid"))) != NULL) {
			r = qs_fail(
			        QS_ERR_PRECONDITION,
			        "external key %s is a key of the CI repository: give production "
			        "a key of its own",
			        json_string_value(json_object_get(ent, "name")));
			json_decref(ent);
			goto out;
		}
		if ((have = repo_keyids(s, n, "prod", &r)) == NULL) {
			json_decref(ent);
			goto out;
		}
		if (json_object_get(have, json_string_value(json_object_get(ent, "keyid"))) != NULL)
			r = qs_fail(QS_ERR_EXISTS, "external key %s is in production already",
			            json_string_value(json_object_get(ent, "name")));
		json_decref(have);
		if (r != 0) {
			json_decref(ent);
			goto out;
		}
		if (st_ext(n, "prod-root") == NULL)
			json_object_set_new(st_role(n, "prod-root"), "external", json_array());
		json_array_append_new(st_ext(n, "prod-root"), ent);
	}
	if (changed == 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the repositories share no key: there is nothing to separate");
		goto out;
	}
	for (size_t k = 0; tuf_key_roles[k] != NULL; k++)
		if (strcmp(tuf_role_repo(tuf_key_roles[k]), "prod") == 0 &&
		    (r = check_counts(n, tuf_key_roles[k])) != 0) {
			r = qs_wrap(r, "after separating (name the holders' production root keys "
			               "as \"external\")");
			goto out;
		}
	*generated = gen;
	gen = NULL;
	r = 0;
out:
	json_decref(ci);
	json_decref(ids);
	json_decref(gen);
	return r;
}

/* Apply a tuf-root payload to a copy of st (version N -> N+1). */
static int
apply_root_change(struct server *s, const struct policy *p, json_t *st, json_t *pl, json_t **next,
                  json_t **generated)
{
	const char *op = json_string_value(json_object_get(pl, "op"));
	const char *role = json_string_value(json_object_get(pl, "role"));
	const char *want = json_string_value(json_object_get(pl, "keyid"));
	json_t *n = json_deep_copy(st), *ro;
	size_t ui, ei;
	char uri[256];
	int r;

	*next = NULL;
	*generated = NULL;
	if (n == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_set_new(n, "version",
	                    json_integer(json_integer_value(json_object_get(st, "version")) + 1));
	if (strcmp(op, "separate") == 0) {
		if ((r = apply_separate(s, p, st, n, pl, generated)) != 0 ||
		    (r = remember_public(s, n)) != 0)
			goto fail;
		*next = n;
		return 0;
	}
	ro = st_role(n, role);
	if (strcmp(op, "set-threshold") == 0) {
		json_object_set_new(
		        ro, "threshold",
		        json_integer(json_integer_value(json_object_get(pl, "threshold"))));
	} else if (strcmp(op, "set-expiry") == 0) {
		const char *d = json_string_value(json_object_get(pl, "expires"));
		if ((r = check_expiry(p, role, d)) != 0)
			goto fail;
		json_object_set_new(ro, "expires", json_string(d));
	} else if (strcmp(op, "remove-key") == 0) {
		if ((r = find_key(s, st, role, want, &ui, &ei)) != 0)
			goto fail;
		if (ui != (size_t)-1)
			json_array_remove(json_object_get(ro, "uris"), ui);
		else
			json_array_remove(json_object_get(ro, "external"), ei);
	} else if (strcmp(op, "add-key") == 0) {
		json_t *x = json_object_get(pl, "external"), *ent = NULL, *ids, *v;
		size_t i;
		if (x != NULL) {
			const char *name = json_string_value(json_object_get(x, "name"));
			if ((r = external_entry(p, role, name,
			                        json_string_value(json_object_get(x, "holder")),
			                        json_string_value(json_object_get(x, "public_key")),
			                        &ent)) != 0)
				goto fail;
			for (size_t k = 0; tuf_key_roles[k] != NULL; k++)
				json_array_foreach(st_ext(st, tuf_key_roles[k]), i, v)
				{
					if (json_equal(json_object_get(v, "name"),
					               json_object_get(ent, "name")))
						r = qs_fail(QS_ERR_EXISTS,
						            "an external key is called %s already",
						            name);
				}
			for (size_t k = 0; r == 0 && tuf_key_roles[k] != NULL; k++) {
				/* No key twice in a role, nor in any role of the
				 * other repository. */
				if (strcmp(tuf_key_roles[k], role) != 0 &&
				    strcmp(tuf_role_repo(tuf_key_roles[k]), tuf_role_repo(role)) ==
				            0)
					continue;
				if ((ids = role_keyids(s, st, tuf_key_roles[k], NULL, &r)) == NULL)
					break;
				json_array_foreach(ids, i, v)
				{
					if (json_equal(v, json_object_get(ent, "keyid")))
						r = qs_fail(
						        QS_ERR_EXISTS,
						        "key %s is in role %s already%s",
						        json_string_value(v), tuf_key_roles[k],
						        strcmp(tuf_key_roles[k], role) == 0
						                ? ""
						                : ": each repository has keys of "
						                  "its own");
				}
				json_decref(ids);
			}
			if (r != 0) {
				json_decref(ent);
				goto fail;
			}
			if (json_object_get(ro, "external") == NULL)
				json_object_set_new(ro, "external", json_array());
			json_array_append_new(json_object_get(ro, "external"), ent);
		} else {
			/* A new key in the token of the role's first own key, or
			 * of its repository's timestamp key for an all-external
			 * role. */
			json_t *u = json_array_get(st_uris(st, role), 0);
			if (u == NULL)
				u = json_array_get(st_uris(st, tuf_repo_role(tuf_role_repo(role),
				                                             "timestamp")),
				                   0);
			if ((r = generate_key(s, n, role, json_string_value(u), uri, sizeof(uri),
			                      generated)) != 0)
				goto fail;
			json_array_append_new(json_object_get(ro, "uris"), json_string(uri));
		}
	} else {
		/* rotate-key: which key goes, then a new one from the same token. */
		if ((r = find_key(s, st, role, want, &ui, &ei)) != 0)
			goto fail;
		if (ui == (size_t)-1) {
			r = qs_fail(QS_ERR_PRECONDITION,
			            "that %s key is external (held by %s): replace it with add-key "
			            "and remove-key",
			            role,
			            json_string_value(json_object_get(
			                    json_array_get(st_ext(st, role), ei), "holder")));
			goto fail;
		}
		if ((r = generate_key(s, n, role,
		                      json_string_value(json_array_get(st_uris(st, role), ui)), uri,
		                      sizeof(uri), generated)) != 0)
			goto fail;
		json_array_set_new(json_object_get(ro, "uris"), ui, json_string(uri));
	}
	if ((r = check_counts(n, role)) != 0 || (r = remember_public(s, n)) != 0)
		goto fail;
	*next = n;
	return 0;
fail:
	json_decref(n);
	json_decref(*generated);
	*generated = NULL;
	return r;
}

int
root_submit_check(struct server *s, const struct policy *p, const struct policy_role *ro,
                  const char *submitter, const uint8_t *payload, size_t len)
{
	json_t *pl = NULL, *st = NULL;
	uint64_t ver;
	int r;

	(void)submitter;
	if (!gate_is(p, ro, "admin"))
		return qs_fail(QS_ERR_DENIED, "TUF root changes go through role tuf.gates.admin");
	if ((r = tuf_payload_parse("tuf-root", payload, len, &pl)) != 0)
		return r;
	if ((r = load_state(s, &st, &ver)) != 0) {
		r = r == QS_ERR_NOT_FOUND ? qs_fail(QS_ERR_PRECONDITION, "TUF is not initialised")
		                          : r;
		goto out;
	}
	if ((uint64_t)json_integer_value(json_object_get(pl, "base_version")) != ver)
		r = qs_fail(QS_ERR_PRECONDITION, "base_version %lld is not the current root (%llu)",
		            (long long)json_integer_value(json_object_get(pl, "base_version")),
		            (unsigned long long)ver);
out:
	json_decref(pl);
	json_decref(st);
	return r;
}

/* Which flavours' targets a root change re-signs: 1 = CI, 2 = production. */
unsigned
retargets(json_t *pl)
{
	const char *op = json_string_value(json_object_get(pl, "op"));
	const char *role = json_string_value(json_object_get(pl, "role"));

	if (strcmp(op, "separate") == 0)
		return 2; /* production targets get their own key set */
	if (strcmp(role, "targets") == 0)
		return 1;
	return strcmp(role, "prod-targets") == 0 ? 2 : 0;
}

/* Documents of a root change: both roots N+1 (signed by a threshold of
 * root N's keys and of N+1's), and the production targets re-signed when
 * their key set, threshold or expiry changes. */
int
root_prepare(struct server *s, const struct policy *p, const struct store_request *rq, json_t *prep)
{
	json_t *pl = NULL, *st = NULL, *next = NULL, *gen = NULL, *sp = NULL, *need = NULL;
	json_t *docs = json_object_get(prep, "docs");
	uint64_t ver, tv;
	int r;

	if ((r = tuf_payload_parse("tuf-root", rq->payload, rq->payload_len, &pl)) != 0 ||
	    (r = load_state(s, &st, &ver)) != 0)
		goto out;
	if ((uint64_t)json_integer_value(json_object_get(pl, "base_version")) != ver) {
		r = qs_fail(QS_ERR_PRECONDITION, "base_version %lld is not the current root (%llu)",
		            (long long)json_integer_value(json_object_get(pl, "base_version")),
		            (unsigned long long)ver);
		goto out;
	}
	if ((r = apply_root_change(s, p, st, pl, &next, &gen)) != 0)
		goto out;
	for (size_t i = 0; i < 2; i++) {
		json_t *a = key_set(s, st, tuf_repos[i], "root", &r), *b = NULL;
		if (a == NULL || (b = key_set(s, next, tuf_repos[i], "root", &r)) == NULL) {
			json_decref(a);
			goto out;
		}
		if ((r = build_root(s, p, next, tuf_repos[i], ver + 1, &sp)) != 0) {
			json_decref(a);
			json_decref(b);
			goto out;
		}
		if ((r = doc_add(docs, tuf_repos[i], "root", ver + 1, sp,
		                 need = json_pack("[o, o]", a, b))) != 0)
			goto out;
		json_decref(sp);
		json_decref(need);
		sp = need = NULL;
	}
	if (retargets(pl) & 2) {
		json_t *cur = NULL, *set;
		if ((r = current_signed(s, "prod", "targets", &cur, &tv)) != 0)
			goto out;
		if ((set = key_set(s, next, "prod", "targets", &r)) == NULL ||
		    (sp = signed_base("targets", tv + 1, role_expiry(p, next, "prod-targets"))) ==
		            NULL) {
			json_decref(set);
			json_decref(cur);
			r = r != 0 ? r : qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		json_object_set(sp, "targets", json_object_get(cur, "targets"));
		json_decref(cur);
		if ((r = doc_add(docs, "prod", "targets", tv + 1, sp,
		                 need = json_pack("[o]", set))) != 0)
			goto out;
	}
	json_object_set(prep, "state", next);
	json_object_set_new(prep, "base", json_integer((json_int_t)ver));
	json_object_set(prep, "change", pl);
	if (gen != NULL)
		json_object_set(prep, "generated", gen);
out:
	json_decref(pl);
	json_decref(st);
	json_decref(next);
	json_decref(gen);
	json_decref(sp);
	json_decref(need);
	return r;
}
