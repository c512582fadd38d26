/* The policy's "tuf" section: refused unless every name resolves, every
 * threshold can be met and every gate has the mode its operation needs. */
#include <stdlib.h>
#include <string.h>

#include "json_strict.h"
#include "keyring.h"
#include "qs_err.h"
#include "statement.h"
#include "tuf.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

/* The layout of policies written before each repository had keys of its
 * own: production shared root, snapshot and timestamp with CI and signed
 * its targets with targets + prod-targets. Accepted only so that a daemon
 * whose repositories were initialised that way starts (and can separate
 * them, see tuf.h); tuf init refuses it. */
static const char *const legacy_roles[] = {"root",     "targets",   "prod-targets",
                                           "snapshot", "timestamp", NULL};

int
tuf_policy_legacy(json_t *sec)
{
	json_t *roles = json_object_get(sec, "roles");

	return json_object_get(roles, "prod-root") == NULL &&
	       json_object_get(roles, "prod-snapshot") == NULL &&
	       json_object_get(roles, "prod-timestamp") == NULL;
}

int64_t
tuf_policy_role_expires(const struct policy *p, const char *role)
{
	json_t *roles = json_object_get(p->ext_tuf, "roles"), *ro = json_object_get(roles, role);
	int64_t s = 0;

	if (ro == NULL) /* a policy in the layout before the split */
		ro = json_object_get(roles, tuf_role_type(role));
	if (policy_parse_duration(json_string_value(json_object_get(ro, "expires")), &s) != 0)
		return 0;
	return s;
}

int
tuf_role_online(const char *role)
{
	static const char *const online[] = {"targets",       "snapshot",       "timestamp",
	                                     "prod-snapshot", "prod-timestamp", NULL};

	for (size_t i = 0; online[i] != NULL; i++)
		if (strcmp(role, online[i]) == 0)
			return 1;
	return 0;
}

static ssize_t
key_index(const struct policy *p, const char *name)
{
	for (size_t i = 0; name != NULL && i < p->nkeys; i++)
		if (strcmp(p->keys[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static int
check_gate(const struct policy *p, json_t *gates, const char *gate, enum policy_mode mode,
           const char *kind1, const char *kind2)
{
	const char *name = json_string_value(json_object_get(gates, gate));
	const struct policy_role *ro;

	if (name == NULL || (ro = policy_role(p, name)) == NULL)
		return qs_fail(QS_ERR_INVALID, "tuf.gates.%s: must name a policy role", gate);
	if (ro->mode != mode)
		return qs_fail(QS_ERR_INVALID, "tuf.gates.%s: role %s must be %s", gate, name,
		               mode == POLICY_QUORUM ? "a quorum role" : "an online role");
	if (!policy_role_allows(ro, kind1) || (kind2 != NULL && !policy_role_allows(ro, kind2)))
		return qs_fail(QS_ERR_INVALID, "tuf.gates.%s: role %s must list payloads %s%s%s",
		               gate, name, kind1, kind2 ? " and " : "", kind2 ? kind2 : "");
	return 0;
}

/* Only the gate roles may carry TUF kinds: a second role listing them
 * would be a second, unreviewed way to change the repository. */
static int
check_no_stray_kinds(const struct policy *p, json_t *gates)
{
	static const char *const kinds[] = {"tuf-init", "tuf-root", "tuf-promote", "tuf-push",
	                                    NULL};
	static const char *const gate_of[] = {"admin", "admin", "promote", "online"};

	for (size_t i = 0; i < p->nroles; i++)
		for (size_t k = 0; kinds[k] != NULL; k++) {
			const char *g = json_string_value(json_object_get(gates, gate_of[k]));
			if (policy_role_allows(&p->roles[i], kinds[k]) &&
			    strcmp(p->roles[i].name, g) != 0)
				return qs_fail(
				        QS_ERR_INVALID,
				        "roles.%s: lists %s, which only tuf.gates.%s (%s) may",
				        p->roles[i].name, kinds[k], gate_of[k], g);
		}
	return 0;
}

static int
check_role(const struct policy *p, json_t *roles, const char *name, int legacy, size_t *nkeys_out)
{
	static const char *const allowed[] = {"keys", "threshold", "expires", NULL};
	json_t *ro = json_object_get(roles, name), *keys, *k;
	json_int_t th;
	int64_t secs;
	size_t i;
	int r;

	if (ro == NULL)
		return qs_fail(QS_ERR_INVALID, "tuf.roles.%s: missing", name);
	if ((r = qs_json_only(ro, "tuf.roles", allowed)) != 0)
		return qs_wrap(r, "tuf.roles.%s", name);
	keys = json_object_get(ro, "keys");
	if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 16)
		return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.keys: 1..16 policy key names", name);
	json_array_foreach(keys, i, k)
	{
		ssize_t ki = key_index(p, json_string_value(k));
		json_t *ext = json_object_get(json_object_get(p->ext_tuf, "external"),
		                              json_string_value(k));
		if (ki < 0 && ext != NULL) {
			/* Held by an admin: only the offline roles, and the
			 * holder approves in the gate that changes the role. */
			const char *gate =
			        strcmp(tuf_role_type(name), "root") == 0 ? "admin" : "promote";
			const char *holder = json_string_value(json_object_get(ext, "holder"));
			const struct policy_role *gr = policy_role(
			        p, json_string_value(json_object_get(
			                   json_object_get(p->ext_tuf, "gates"), gate)));
			ssize_t pi = policy_principal_index(p, holder);
			if (strcmp(name, "root") != 0 && strcmp(name, "prod-root") != 0 &&
			    strcmp(name, "prod-targets") != 0)
				return qs_fail(
				        QS_ERR_INVALID,
				        "tuf.roles.%s.keys[%zu]: external key %s: only root, "
				        "prod-root and prod-targets keys may be held outside "
				        "the daemon",
				        name, i, json_string_value(k));
			if (gr == NULL || pi < 0 || !policy_role_has_approver(gr, (size_t)pi))
				return qs_fail(QS_ERR_INVALID,
				               "tuf.roles.%s.keys[%zu]: holder %s of %s is not an "
				               "approver of tuf.gates.%s",
				               name, i, holder, json_string_value(k), gate);
			goto dup;
		}
		if (ki < 0)
			return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.keys[%zu]: unknown key", name,
			               i);
		if (p->keys[ki].type != HSM_KEY_EC_P256 && p->keys[ki].type != HSM_KEY_ED25519 &&
		    p->keys[ki].type != HSM_KEY_RSA3072)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.roles.%s.keys[%zu]: %s must be ecdsa-p256, ed25519 or "
			               "rsa3072",
			               name, i, p->keys[ki].name);
		if (p->bound == NULL || p->bound[ki] == NULL)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.roles.%s.keys[%zu]: %s is not in a token", name, i,
			               p->keys[ki].name);
	dup:
		for (size_t j = 0; j < i; j++)
			if (json_equal(json_array_get(keys, j), k))
				return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.keys[%zu]: duplicate",
				               name, i);
	}
	th = json_integer_value(json_object_get(ro, "threshold"));
	if (!json_is_integer(json_object_get(ro, "threshold")) || th < 1)
		return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.threshold: an integer >= 1", name);
	if ((!legacy || strcmp(name, "prod-targets") != 0) && (size_t)th > json_array_size(keys))
		return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.threshold: %lld > %zu keys", name,
		               (long long)th, json_array_size(keys));
	if (strcmp(name, "targets") == 0 && th != 1)
		return qs_fail(QS_ERR_INVALID, "tuf.roles.targets.threshold: the CI flavour is 1");
	if (!json_is_string(json_object_get(ro, "expires")) ||
	    policy_parse_duration(json_string_value(json_object_get(ro, "expires")), &secs) != 0)
		return qs_fail(QS_ERR_INVALID, "tuf.roles.%s.expires: a duration (\"365d\")", name);
	*nkeys_out = json_array_size(keys);
	return 0;
}

/* "external": {name: {"holder": principal, "public_key": SPKI PEM}} */
static int
check_external(const struct policy *p, json_t *ext)
{
	static const char *const allowed[] = {"holder", "public_key", NULL};
	const char *name;
	json_t *e;
	int r;

	if (ext == NULL)
		return 0;
	if (!json_is_object(ext) || json_object_size(ext) > 64)
		return qs_fail(QS_ERR_INVALID, "tuf.external: an object of at most 64 keys");
	json_object_foreach(ext, name, e)
	{
		char *pem = NULL;
		if (!qs_name_valid(name, 64))
			return qs_fail(QS_ERR_INVALID, "tuf.external: \"%.40s\" is not a name",
			               name);
		if ((r = qs_json_only(e, "tuf.external", allowed)) != 0)
			return qs_wrap(r, "tuf.external.%s", name);
		if (key_index(p, name) >= 0)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.external.%s: a policy key has that name already", name);
		if (policy_principal_index(p, json_string_value(json_object_get(e, "holder"))) < 0)
			return qs_fail(QS_ERR_INVALID, "tuf.external.%s.holder: not a principal",
			               name);
		if ((r = tuf_pem_normalize(json_string_value(json_object_get(e, "public_key")),
		                           &pem)) != 0)
			return qs_wrap(r, "tuf.external.%s.public_key", name);
		/* One key, one entry: the same key under two names would
		 * count twice towards a threshold. */
		{
			const char *n2;
			json_t *e2;
			json_object_foreach(ext, n2, e2)
			{
				char *pem2 = NULL;
				int same;
				if (strcmp(n2, name) >= 0)
					continue;
				same = tuf_pem_normalize(
				               json_string_value(json_object_get(e2, "public_key")),
				               &pem2) == 0 &&
				       strcmp(pem, pem2) == 0;
				free(pem2);
				if (same) {
					free(pem);
					return qs_fail(QS_ERR_INVALID,
					               "tuf.external.%s: the same key as %s", name,
					               n2);
				}
			}
		}
		free(pem);
	}
	return 0;
}

/* The public key (normalised SPKI PEM) behind a role's key name: the token
 * object's, or the external key's. *pem malloc'd; NULL if unknown. */
static int
key_identity(const struct policy *p, const char *name, char **pem)
{
	ssize_t ki = key_index(p, name);
	json_t *ext = json_object_get(json_object_get(p->ext_tuf, "external"), name);

	*pem = NULL;
	if (ki >= 0 && p->bound != NULL && p->bound[ki] != NULL) {
		/* RSA keys (which no external key is) compare as the token
		 * gives them. */
		if (tuf_pem_normalize(p->bound[ki]->spki_pem, pem) == 0)
			return 0;
		qs_errclear();
		if ((*pem = strdup(p->bound[ki]->spki_pem)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		return 0;
	}
	if (ext != NULL)
		return tuf_pem_normalize(json_string_value(json_object_get(ext, "public_key")),
		                         pem);
	return 0;
}

/* No key serves both repositories: a production client would accept
 * whatever that key signs for CI (a root chain, a timestamp). Compared by
 * public key, so neither a second name nor a second URI of the same token
 * object, nor an external key that is a token key, gets past. */
static int
check_separate(const struct policy *p, json_t *roles)
{
	json_t *ci = json_object(), *k;
	int r = 0;

	if (ci == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t pass = 0; pass < 2 && r == 0; pass++)
		for (size_t i = 0; tuf_key_roles[i] != NULL && r == 0; i++) {
			const char *role = tuf_key_roles[i];
			size_t j;
			if ((strcmp(tuf_role_repo(role), "ci") == 0) != (pass == 0))
				continue;
			json_array_foreach(json_object_get(json_object_get(roles, role), "keys"), j,
			                   k)
			{
				char *pem = NULL;
				json_t *other;
				if ((r = key_identity(p, json_string_value(k), &pem)) != 0) {
					r = qs_wrap(r, "tuf.roles.%s.keys[%zu]", role, j);
					break;
				}
				if (pem == NULL)
					continue;
				if (pass == 0) {
					json_object_set_new(ci, pem, json_string(role));
				} else if ((other = json_object_get(ci, pem)) != NULL) {
					r = qs_fail(
					        QS_ERR_INVALID,
					        "tuf.roles.%s.keys[%zu]: %s is listed for the CI "
					        "repository too (tuf.roles.%s): each repository "
					        "has "
					        "keys of its own",
					        role, j, json_string_value(k),
					        json_string_value(other));
				}
				free(pem);
				if (r != 0)
					break;
			}
		}
	json_decref(ci);
	return r;
}

int
tuf_policy_check(const struct policy *p, json_t *sec)
{
	static const char *const allowed[] = {"repositories", "gates",         "roles", "refresh",
	                                      "external",     "signature_ttl", NULL};
	static const char *const repos_allowed[] = {"ci", "prod", NULL};
	static const char *const gates_allowed[] = {"admin", "promote", "online", NULL};
	static const char *const refresh_allowed[] = {"interval", "margin", NULL};
	json_t *repos, *gates, *roles, *refresh;
	const char *const *names = tuf_key_roles;
	size_t nkeys[8] = {0}, i, nt, npt;
	int r, legacy;

	if ((r = qs_json_only(sec, "tuf", allowed)) != 0)
		return r;
	repos = json_object_get(sec, "repositories");
	if ((r = qs_json_only(repos, "tuf.repositories", repos_allowed)) != 0)
		return r;
	for (i = 0; repos_allowed[i] != NULL; i++) {
		const char *d = json_string_value(json_object_get(repos, repos_allowed[i]));
		if (d == NULL || d[0] != '/' || strlen(d) > 1024 || strstr(d, "/../") != NULL)
			return qs_fail(QS_ERR_INVALID, "tuf.repositories.%s: an absolute directory",
			               repos_allowed[i]);
	}
	if (strcmp(json_string_value(json_object_get(repos, "ci")),
	           json_string_value(json_object_get(repos, "prod"))) == 0)
		return qs_fail(QS_ERR_INVALID, "tuf.repositories: ci and prod must differ");
	gates = json_object_get(sec, "gates");
	if ((r = qs_json_only(gates, "tuf.gates", gates_allowed)) != 0 ||
	    (r = check_gate(p, gates, "admin", POLICY_QUORUM, "tuf-init", "tuf-root")) != 0 ||
	    (r = check_gate(p, gates, "promote", POLICY_QUORUM, "tuf-promote", NULL)) != 0 ||
	    (r = check_gate(p, gates, "online", POLICY_ONLINE, "tuf-push", NULL)) != 0 ||
	    (r = check_no_stray_kinds(p, gates)) != 0)
		return r;
	if ((r = check_external(p, json_object_get(sec, "external"))) != 0)
		return r;
	if (json_object_get(sec, "signature_ttl") != NULL) {
		int64_t ttl;
		if (policy_parse_duration(json_string_value(json_object_get(sec, "signature_ttl")),
		                          &ttl) != 0)
			return qs_fail(QS_ERR_INVALID, "tuf.signature_ttl: a duration (\"7d\")");
	}
	roles = json_object_get(sec, "roles");
	if ((legacy = tuf_policy_legacy(sec)) != 0)
		names = legacy_roles;
	if ((r = qs_json_only(roles, "tuf.roles", names)) != 0)
		return r;
	for (i = 0; names[i] != NULL; i++)
		if ((r = check_role(p, roles, names[i], legacy, &nkeys[i])) != 0)
			return r;
	nt = nkeys[1];
	npt = nkeys[legacy ? 2 : 5];
	if (!legacy && (r = check_separate(p, roles)) != 0)
		return r;
	if (legacy) {
		/* The production targets role is targets + prod-targets: a key
		 * in both would count twice. */
		json_t *t = json_object_get(json_object_get(roles, "targets"), "keys"), *a, *b;
		size_t x, y;
		json_array_foreach(t, x, a)
		{
			json_array_foreach(
			        json_object_get(json_object_get(roles, "prod-targets"), "keys"), y,
			        b)
			{
				if (json_equal(a, b))
					return qs_fail(
					        QS_ERR_INVALID,
					        "tuf.roles.prod-targets.keys[%zu]: %s is the "
					        "online targets key already",
					        y, json_string_value(b));
			}
		}
	}
	{
		/* Production targets are signed by the online and the offline
		 * keys: at least 2 signatures, never more than there are keys. */
		json_int_t th = json_integer_value(
		        json_object_get(json_object_get(roles, "prod-targets"), "threshold"));
		if (th < 2)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.roles.prod-targets.threshold: production needs >= 2");
		if ((size_t)th > (legacy ? nt : 0) + npt)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.roles.prod-targets.threshold: %lld > %zu targets keys",
			               (long long)th, (legacy ? nt : 0) + npt);
	}
	if ((refresh = json_object_get(sec, "refresh")) != NULL) {
		int64_t iv, margin, ts;
		if ((r = qs_json_only(refresh, "tuf.refresh", refresh_allowed)) != 0)
			return r;
		if (policy_parse_duration(json_string_value(json_object_get(refresh, "interval")),
		                          &iv) != 0 ||
		    policy_parse_duration(json_string_value(json_object_get(refresh, "margin")),
		                          &margin) != 0)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.refresh: interval and margin durations");
		policy_parse_duration(json_string_value(json_object_get(
		                              json_object_get(roles, "timestamp"), "expires")),
		                      &ts);
		if (margin >= ts || iv >= ts - margin / 2)
			return qs_fail(QS_ERR_INVALID,
			               "tuf.refresh: margin must be below the timestamp expiry and "
			               "the interval short enough to act within it");
	}
	return 0;
}

int64_t
tuf_signature_ttl(const struct policy *p)
{
	const char *v =
	        p->ext_tuf ? json_string_value(json_object_get(p->ext_tuf, "signature_ttl")) : NULL;
	int64_t ttl;

	/* Checked at load (tuf_policy_check): a bad value never gets here. */
	if (v == NULL || policy_parse_duration(v, &ttl) != 0)
		return TUF_SIGNATURE_TTL_DEFAULT_S;
	return ttl;
}

int
tuf_policy_key_uses(const struct policy *p, policy_key_use_fn use, void *arg)
{
	json_t *roles = json_object_get(p->ext_tuf, "roles"), *k;
	char what[64];
	size_t i;
	int r;

	for (size_t ri = 0; tuf_key_roles[ri] != NULL; ri++) {
		snprintf(what, sizeof(what), "tuf.roles.%s", tuf_key_roles[ri]);
		json_array_foreach(
		        json_object_get(json_object_get(roles, tuf_key_roles[ri]), "keys"), i, k)
		{
			ssize_t ki = key_index(p, json_string_value(k));
			if (ki >= 0 && (r = use(arg, (size_t)ki, what)) != 0)
				return r;
		}
	}
	return 0;
}
