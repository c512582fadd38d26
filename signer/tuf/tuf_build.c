/*
 * The pieces every TUF change is made of: the batch of files it
 * produces, the policy and key-state lookups, the signing of a document
 * with a role's keys, the metadata builders (root, targets, snapshot,
 * timestamp) and the stored state they read.
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

const char *const tuf_repos[2] = {"ci", "prod"};

/* ------------------------------------------------------------ batch */

void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->f[i].data);
	b->n = 0;
}

/* Canonical bytes of env into the batch (env stays the caller's). */
int
batch_add(struct batch *b, const char *repo, const char *role, uint64_t version, json_t *env)
{
	struct out_file *f;

	if (b->n == sizeof(b->f) / sizeof(b->f[0]))
		return qs_fail(QS_ERR_INTERNAL, "too many files in one TUF change");
	f = &b->f[b->n];
	memset(f, 0, sizeof(*f));
	snprintf(f->repo, sizeof(f->repo), "%s", repo);
	snprintf(f->role, sizeof(f->role), "%s", role);
	f->version = version;
	/* Published files are plain JSON (strict parsers refuse the raw
	 * newlines canonical JSON keeps in PEM keys); only "signed" is
	 * canonicalised, for the signatures. */
	if ((f->data = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	f->len = strlen(f->data);
	b->n++;
	return 0;
}

/* ------------------------------------------------------------ policy */

json_t *
pol_role(const struct policy *p, const char *role)
{
	return json_object_get(json_object_get(p->ext_tuf, "roles"), role);
}

/* Now + the role's expiry: the duration a set-expiry change stored in the
 * state, else the policy's. */
int64_t
role_expiry(const struct policy *p, json_t *st, const char *role)
{
	const char *d = json_string_value(
	        json_object_get(json_object_get(json_object_get(st, "roles"), role), "expires"));
	int64_t s = 0;

	if (d == NULL || policy_parse_duration(d, &s) != 0)
		s = tuf_policy_role_expires(p, role);
	if (s <= 0)
		s = 86400; /* unreachable: the checkers refused such a duration */
	return (int64_t)time(NULL) + s;
}

const char *
pol_repo_dir(const struct policy *p, const char *repo)
{
	return json_string_value(
	        json_object_get(json_object_get(p->ext_tuf, "repositories"), repo));
}

/* ------------------------------------------------------------ keys */

int
key_at(struct server *s, const char *uri, struct keyring_key **k)
{
	int r;

	if ((r = keyring_find_uri(s->kr, uri, HSM_KEY_NONE, k)) != 0)
		return qs_wrap(r, "TUF key %s", uri);
	if ((*k)->type != HSM_KEY_EC_P256 && (*k)->type != HSM_KEY_ED25519 &&
	    (*k)->type != HSM_KEY_RSA3072)
		return qs_fail(QS_ERR_INVALID, "TUF key %s: ECDSA P-256, Ed25519 or RSA-3072 only",
		               uri);
	return 0;
}

int
keyid_of(const struct keyring_key *k, char out[65])
{
	json_t *ko = tuf_key_from_pem(k->spki_pem);
	int r;

	if (ko == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	r = tuf_keyid(ko, out);
	json_decref(ko);
	return r;
}

json_t *
st_uris(json_t *st, const char *role)
{
	return json_object_get(json_object_get(json_object_get(st, "roles"), role), "uris");
}

json_int_t
st_threshold(json_t *st, const char *role)
{
	return json_integer_value(
	        json_object_get(json_object_get(json_object_get(st, "roles"), role), "threshold"));
}

json_t *
st_role(json_t *st, const char *role)
{
	return json_object_get(json_object_get(st, "roles"), role);
}

/* External keys of a role: [{name, holder, public_key, keyid}] (absent =
 * none). Only root and prod-targets have them. */
json_t *
st_ext(json_t *st, const char *role)
{
	return json_object_get(st_role(st, role), "external");
}

size_t
st_nkeys(json_t *st, const char *role)
{
	return json_array_size(st_uris(st, role)) + json_array_size(st_ext(st, role));
}

/* Sign `signed_part` with every key of every list in uris[] (a key listed
 * twice signs once). *env has one reference. */
static int
sign_env(struct server *s, const char *repo, json_t *signed_part, json_t *const *uris,
         size_t nlists, json_t **env)
{
	uint8_t dg[32], sig[HSM_SIG_MAX + 16];
	char *canon = NULL, kid[65];
	size_t len = 0, sl, i;
	json_t *e = NULL, *seen = json_object(), *u;
	int r;

	*env = NULL;
	if (seen == NULL || (e = tuf_envelope_new(signed_part)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = tuf_signed_digest(signed_part, &canon, &len, dg)) != 0)
		goto out;
	for (size_t l = 0; l < nlists; l++)
		json_array_foreach(uris[l], i, u)
		{
			struct keyring_key *k;
			if ((r = key_at(s, json_string_value(u), &k)) != 0 ||
			    (r = keyid_of(k, kid)) != 0)
				goto out;
			if (json_object_get(seen, kid) != NULL)
				continue;
			json_object_set_new(seen, kid, json_true());
			sl = sizeof(sig);
			if ((r = keyring_sign_tuf(k, repo, canon, len, dg, NULL, sig, &sl)) != 0 ||
			    (r = tuf_envelope_add_sig(e, kid, sig, sl)) != 0)
				goto out;
		}
	*env = e;
	e = NULL;
	r = 0;
out:
	free(canon);
	json_decref(e);
	json_decref(seen);
	return r;
}

/* ------------------------------------------------------------ metadata */

json_t *
signed_base(const char *type, uint64_t version, int64_t expires)
{
	char exp[TUF_TIME_LEN];

	if (tuf_time_format(expires, exp) != 0)
		return NULL;
	return json_pack("{s:s, s:s, s:I, s:s}", "_type", type, "spec_version", TUF_SPEC_VERSION,
	                 "version", (json_int_t)version, "expires", exp);
}

/* Add the keys of a role (token keys, then external ones) to keys{} (may
 * be NULL) and return their keyids as an array. */
json_t *
role_keyids(struct server *s, json_t *st, const char *role, json_t *keys, int *rp)
{
	json_t *ids = json_array(), *u;
	char kid[65];
	size_t i;

	*rp = 0;
	if (ids == NULL) {
		*rp = qs_fail(QS_ERR_NOMEM, "out of memory");
		return NULL;
	}
	json_array_foreach(st_uris(st, role), i, u)
	{
		/* The public key remembered in the state, so that a key whose
		 * token is lost can still be named (and removed); else the
		 * token's. */
		const char *pem = json_string_value(json_object_get(
		        json_object_get(st_role(st, role), "public"), json_string_value(u)));
		struct keyring_key *k;
		if (pem == NULL) {
			if ((*rp = key_at(s, json_string_value(u), &k)) != 0) {
				json_decref(ids);
				return NULL;
			}
			pem = k->spki_pem;
		}
		if ((*rp = tuf_keyid_pem(pem, kid)) != 0) {
			json_decref(ids);
			return NULL;
		}
		if (keys != NULL)
			json_object_set_new(keys, kid, tuf_key_from_pem(pem));
		json_array_append_new(ids, json_string(kid));
	}
	json_array_foreach(st_ext(st, role), i, u)
	{
		const char *x = json_string_value(json_object_get(u, "keyid"));
		if (keys != NULL)
			json_object_set_new(keys, x,
			                    tuf_key_from_pem(json_string_value(
			                            json_object_get(u, "public_key"))));
		json_array_append_new(ids, json_string(x));
	}
	return ids;
}

/* Append to ids the keyids of more it does not hold yet: a key listed in
 * two roles of one set must not count twice towards a threshold. */
void
append_distinct(json_t *ids, json_t *more)
{
	json_t *x, *y;
	size_t a, b;

	json_array_foreach(more, a, x)
	{
		int dup = 0;
		json_array_foreach(ids, b, y) dup |= json_equal(x, y);
		if (!dup)
			json_array_append(ids, x);
	}
}

/* The "signed" part of root `version` of flavour repo from state st. */
int
build_root(struct server *s, const struct policy *p, json_t *st, const char *repo, uint64_t version,
           json_t **out)
{
	static const char *const types[] = {"root", "targets", "snapshot", "timestamp", NULL};
	json_t *sp = signed_base("root", version, role_expiry(p, st, tuf_repo_role(repo, "root")));
	json_t *keys = json_object(), *roles = json_object(), *ids;
	int r = 0;

	*out = NULL;
	if (sp == NULL || keys == NULL || roles == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	json_object_set_new(sp, "consistent_snapshot", json_true());
	/* Only the repository's own roles: the other's keys never appear. */
	for (size_t i = 0; types[i] != NULL; i++) {
		const char *role = tuf_repo_role(repo, types[i]);
		if ((ids = role_keyids(s, st, role, keys, &r)) == NULL)
			goto out;
		json_object_set_new(roles, types[i],
		                    json_pack("{s:o, s:I}", "keyids", ids, "threshold",
		                              st_threshold(st, role)));
	}
	json_object_set(sp, "keys", keys);
	json_object_set(sp, "roles", roles);
	*out = sp;
	sp = NULL;
out:
	json_decref(sp);
	json_decref(keys);
	json_decref(roles);
	return r;
}

/* The keys that sign targets of a flavour. */
static size_t
targets_signers(json_t *st, const char *repo, json_t **lists)
{
	lists[0] = st_uris(st, tuf_repo_role(repo, "targets"));
	return 1;
}

int
add_targets(struct server *s, struct batch *b, json_t *st, const char *repo, uint64_t version,
            int64_t expires, json_t *targets)
{
	json_t *sp = signed_base("targets", version, expires), *env = NULL, *lists[2];
	size_t nl = targets_signers(st, repo, lists);
	int r;

	if (sp == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_set(sp, "targets", targets);
	if ((r = sign_env(s, repo, sp, lists, nl, &env)) == 0)
		r = batch_add(b, repo, "targets", version, env);
	json_decref(sp);
	json_decref(env);
	return r;
}

int
add_snapshot(struct server *s, const struct policy *p, struct batch *b, json_t *st,
             const char *repo, uint64_t version, uint64_t targets_version)
{
	const char *role = tuf_repo_role(repo, "snapshot");
	json_t *sp = signed_base("snapshot", version, role_expiry(p, st, role)), *env = NULL;
	json_t *lists[1] = {st_uris(st, role)};
	int r;

	if (sp == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_set_new(
	        sp, "meta",
	        json_pack("{s:{s:I}}", "targets.json", "version", (json_int_t)targets_version));
	if ((r = sign_env(s, repo, sp, lists, 1, &env)) == 0)
		r = batch_add(b, repo, "snapshot", version, env);
	json_decref(sp);
	json_decref(env);
	return r;
}

int
add_timestamp(struct server *s, const struct policy *p, struct batch *b, json_t *st,
              const char *repo, uint64_t version, const char *snap, size_t snap_len,
              uint64_t snap_version)
{
	const char *role = tuf_repo_role(repo, "timestamp");
	json_t *sp = signed_base("timestamp", version, role_expiry(p, st, role)), *env = NULL;
	json_t *lists[1] = {st_uris(st, role)};
	uint8_t dg[32];
	char *hex;
	int r;

	qs_sha256((const uint8_t *)snap, snap_len, dg);
	if (sp == NULL || (hex = qs_hex(dg, 32)) == NULL) {
		json_decref(sp);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	json_object_set_new(sp, "meta",
	                    json_pack("{s:{s:I, s:I, s:{s:s}}}", "snapshot.json", "version",
	                              (json_int_t)snap_version, "length", (json_int_t)snap_len,
	                              "hashes", "sha256", hex));
	free(hex);
	if ((r = sign_env(s, repo, sp, lists, 1, &env)) == 0)
		r = batch_add(b, repo, "timestamp", version, env);
	json_decref(sp);
	json_decref(env);
	return r;
}

/* ------------------------------------------------------------ state */

int
doc_name(char *buf, size_t cap, const char *repo, const char *role)
{
	if ((size_t)snprintf(buf, cap, "%s.%s", repo, role) >= cap)
		return qs_fail(QS_ERR_INTERNAL, "document name too long");
	return 0;
}

int
tuf_get(struct server *s, const char *repo, const char *role, uint64_t version, uint8_t **data,
        size_t *len, uint64_t *version_out)
{
	char name[32];
	int r;

	*data = NULL;
	if ((r = doc_name(name, sizeof(name), repo, role)) != 0)
		return r;
	return store_doc_get(s->store, "tuf", name, version, data, len, version_out);
}

/* The latest signed part of repo/role and its version. */
int
current_signed(struct server *s, const char *repo, const char *role, json_t **sp, uint64_t *ver)
{
	uint8_t *d = NULL;
	size_t len = 0;
	json_t *env = NULL;
	int r;

	*sp = NULL;
	if ((r = tuf_get(s, repo, role, 0, &d, &len, ver)) != 0 ||
	    (r = tuf_envelope_parse(d, len, role, &env)) != 0)
		goto out;
	*sp = json_incref(json_object_get(env, "signed"));
out:
	free(d);
	json_decref(env);
	return r;
}

/*
 * A key state written before each repository had keys of its own: roles
 * root, targets, prod-targets, snapshot, timestamp, production using
 * root/snapshot/timestamp too and signing targets with targets +
 * prod-targets. Read it as the same trust with production's roles spelt
 * out (prod-root = root, ..., prod-targets = targets + prod-targets), which
 * builds the very roots published before; review then reports every key the
 * repositories share, and a "separate" root change ends the sharing.
 */
static int
state_upgrade(json_t *st)
{
	static const char *const shared[] = {"root", "snapshot", "timestamp", NULL};
	json_t *roles = json_object_get(st, "roles"), *pt, *t, *u;
	size_t i;

	if (json_object_get(roles, "prod-root") != NULL)
		return 0;
	for (i = 0; shared[i] != NULL; i++) {
		json_t *c = json_deep_copy(json_object_get(roles, shared[i]));
		if (c == NULL ||
		    json_object_set_new(roles, tuf_repo_role("prod", shared[i]), c) != 0)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	pt = json_object_get(roles, "prod-targets");
	t = json_object_get(roles, "targets");
	{
		json_t *uris = json_deep_copy(json_object_get(t, "uris"));
		json_t *pub = json_deep_copy(json_object_get(t, "public"));
		if (uris == NULL || pub == NULL) {
			json_decref(uris);
			json_decref(pub);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		json_array_foreach(json_object_get(pt, "uris"), i, u)
		{
			int dup = 0;
			json_t *x;
			size_t k;
			json_array_foreach(uris, k, x) dup |= json_equal(x, u);
			if (!dup)
				json_array_append(uris, u);
		}
		json_object_update(pub, json_object_get(pt, "public"));
		json_object_set_new(pt, "uris", uris);
		json_object_set_new(pt, "public", pub);
	}
	return 0;
}

int
load_state(struct server *s, json_t **st, uint64_t *ver)
{
	uint8_t *d = NULL;
	size_t len = 0;
	json_error_t e;
	int r;

	*st = NULL;
	if ((r = store_doc_get(s->store, "tuf", "keys", 0, &d, &len, ver)) != 0)
		return r;
	if ((*st = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		r = qs_fail(QS_ERR_DB, "stored TUF key state is not JSON: %s", e.text);
	else if ((r = state_upgrade(*st)) != 0) {
		json_decref(*st);
		*st = NULL;
	}
	free(d);
	return r;
}
