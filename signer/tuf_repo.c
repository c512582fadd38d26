/*
 * The TUF repositories: build, sign, audit, store, publish. See tuf.h for
 * the model. Every change goes through one batch: files are built and
 * signed in memory, the batch is audited with the hash of every file, the
 * documents are stored, and the files are published (timestamp.json last,
 * so a client never sees a timestamp that names a snapshot not yet there).
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
#include "tuf_meta.h"
#include "tuf_payload.h"

/* All changes to the repositories, from requests, pushes and the timer. */
static pthread_mutex_t tuf_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const repos[] = {"ci", "prod"};

/* ------------------------------------------------------------ batch */

struct out_file {
	char repo[8];
	char role[16]; /* root | targets | snapshot | timestamp | keys (state only) */
	uint64_t version;
	char *data;
	size_t len;
};

struct batch {
	struct out_file f[32];
	size_t n;
	/* target contents to write under <repo>/targets/ */
	const struct tuf_file *targets;
	size_t ntargets;
	json_t *target_hashes; /* name -> sha256 hex, for target file names */
	json_t *promoted;      /* production targets whose CI contents to copy */
};

static void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->f[i].data);
	b->n = 0;
}

/* Canonical bytes of env into the batch (env stays the caller's). */
static int
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

static json_t *
pol_role(const struct policy *p, const char *role)
{
	return json_object_get(json_object_get(p->ext_tuf, "roles"), role);
}

/* Now + the role's expiry: the duration a set-expiry change stored in the
 * state, else the policy's. */
static int64_t
role_expiry(const struct policy *p, json_t *st, const char *role)
{
	const char *d = json_string_value(json_object_get(
	        json_object_get(json_object_get(st, "roles"), role), "expires"));
	int64_t s = 0;

	if (d == NULL || policy_parse_duration(d, &s) != 0)
		s = tuf_policy_role_expires(p, role);
	if (s <= 0)
		s = 86400; /* unreachable: the checkers refused such a duration */
	return (int64_t)time(NULL) + s;
}

static const char *
pol_repo_dir(const struct policy *p, const char *repo)
{
	return json_string_value(
	        json_object_get(json_object_get(p->ext_tuf, "repositories"), repo));
}

/* ------------------------------------------------------------ keys */

static int
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

static int
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

static json_t *
st_uris(json_t *st, const char *role)
{
	return json_object_get(json_object_get(json_object_get(st, "roles"), role), "uris");
}

static json_int_t
st_threshold(json_t *st, const char *role)
{
	return json_integer_value(
	        json_object_get(json_object_get(json_object_get(st, "roles"), role), "threshold"));
}

static json_t *
st_role(json_t *st, const char *role)
{
	return json_object_get(json_object_get(st, "roles"), role);
}

/* External keys of a role: [{name, holder, public_key, keyid}] (absent =
 * none). Only root and prod-targets have them. */
static json_t *
st_ext(json_t *st, const char *role)
{
	return json_object_get(st_role(st, role), "external");
}

static size_t
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
			if ((r = keyring_sign_tuf(k, repo, canon, len, dg, sig, &sl)) != 0 ||
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

static json_t *
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
static json_t *
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
		const char *pem = json_string_value(
		        json_object_get(json_object_get(st_role(st, role), "public"),
		                        json_string_value(u)));
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
static void
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
static int
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

static int
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

static int
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

static int
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

static int
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
static int
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
		if (c == NULL || json_object_set_new(roles, tuf_repo_role("prod", shared[i]), c) != 0)
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

static int
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

/* ------------------------------------------------------------ publish */

/* 0755 whatever the umask; through a descriptor (fchmod), which the
 * seccomp allow-list permits, unlike chmod by path. */
static void
dir_world_readable(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fchmod(fd, 0755);
		close(fd);
	}
}

static int
mkdir_p(const char *path)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return qs_fail(QS_ERR_INVALID, "path too long: %s", path);
	for (char *q = tmp + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		/* Published for any static HTTP server: world-readable, whatever
		 * the daemon's umask (077). */
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return qs_fail(QS_ERR_IO, "mkdir %s: %s", tmp, strerror(errno));
		dir_world_readable(tmp);
		*q = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return qs_fail(QS_ERR_IO, "mkdir %s: %s", tmp, strerror(errno));
	dir_world_readable(tmp);
	return 0;
}

/* dir/name <- data: write a temporary file, fsync, rename, fsync dir. The
 * file is world-readable: it is published for any static HTTP server. */
static int
write_atomic(const char *dir, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd = -1, dfd = -1, r;
	const char *p = data;

	if ((r = mkdir_p(dir)) != 0)
		return r;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp))
		return qs_fail(QS_ERR_INVALID, "path too long under %s", dir);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0) {
		r = qs_fail(QS_ERR_IO, "open %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0644) != 0) {
		r = qs_fail(QS_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = qs_fail(QS_ERR_IO, "write %s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		r = qs_fail(QS_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		r = qs_fail(QS_ERR_IO, "rename %s: %s", path, strerror(errno));
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) != 0) {
		r = qs_fail(QS_ERR_IO, "fsync %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	if (dfd >= 0)
		close(dfd);
	return r;
}

static int
publish_file(const struct policy *p, const struct out_file *f)
{
	char dir[PATH_MAX], name[64];
	int r;

	if (strcmp(f->role, "keys") == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/metadata", pol_repo_dir(p, f->repo));
	if (strcmp(f->role, "timestamp") == 0)
		return write_atomic(dir, "timestamp.json", f->data, f->len);
	snprintf(name, sizeof(name), "%llu.%s.json", (unsigned long long)f->version, f->role);
	if ((r = write_atomic(dir, name, f->data, f->len)) != 0)
		return r;
	if (strcmp(f->role, "root") == 0)
		return write_atomic(dir, "root.json", f->data, f->len);
	return 0;
}

/* A target file at targets/<dir>/<sha256>.<basename> (consistent
 * snapshot naming). */
static int
publish_target(const struct policy *p, const char *repo, const struct tuf_file *t, const char *sha)
{
	char dir[PATH_MAX], name[PATH_MAX];
	const char *slash = strrchr(t->name, '/');

	if (slash == NULL) {
		snprintf(dir, sizeof(dir), "%s/targets", pol_repo_dir(p, repo));
		snprintf(name, sizeof(name), "%s.%s", sha, t->name);
	} else {
		snprintf(dir, sizeof(dir), "%s/targets/%.*s", pol_repo_dir(p, repo),
		         (int)(slash - t->name), t->name);
		snprintf(name, sizeof(name), "%s.%s", sha, slash + 1);
	}
	return write_atomic(dir, name, t->data, t->len);
}

/* Copy the contents of promoted targets from the CI repository's
 * targets/ into production's, when CI has them and production does not. */
static int
copy_promoted(const struct policy *p, json_t *targets)
{
	const char *name;
	json_t *v;
	int r;

	json_object_foreach(targets, name, v)
	{
		const char *sha =
		        json_string_value(json_object_get(json_object_get(v, "hashes"), "sha256"));
		const char *slash = strrchr(name, '/');
		char src[PATH_MAX], dst[PATH_MAX];
		struct tuf_file t = {name, NULL, 0};
		uint8_t dg[32];
		char *hex;
		FILE *f;
		long n;
		snprintf(src, sizeof(src), "%s/targets/%.*s%s%s.%s", pol_repo_dir(p, "ci"),
		         slash ? (int)(slash - name) : 0, name, slash ? "/" : "", sha,
		         slash ? slash + 1 : name);
		snprintf(dst, sizeof(dst), "%s/targets/%.*s%s%s.%s", pol_repo_dir(p, "prod"),
		         slash ? (int)(slash - name) : 0, name, slash ? "/" : "", sha,
		         slash ? slash + 1 : name);
		if (access(dst, F_OK) == 0 || (f = fopen(src, "rb")) == NULL)
			continue;
		if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) != 0 || (t.data = malloc((size_t)n + 1)) == NULL ||
		    fread((void *)t.data, 1, (size_t)n, f) != (size_t)n) {
			fclose(f);
			free((void *)t.data);
			return qs_fail(QS_ERR_IO, "reading %s", src);
		}
		fclose(f);
		t.len = (size_t)n;
		qs_sha256(t.data, t.len, dg);
		hex = qs_hex(dg, 32);
		/* Only contents that match the signed hash are published. */
		r = hex != NULL && strcmp(hex, sha) == 0 ? publish_target(p, "prod", &t, sha) : 0;
		free(hex);
		free((void *)t.data);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * Audit, store and publish a batch. The audit entry names every file with
 * its version, SHA-256 and length; it is durable before anything is stored
 * or published.
 */
static int
commit(struct server *s, const struct policy *p, struct batch *b, const char *event, json_t *fields)
{
	json_t *files = json_array();
	int r;

	if (files == NULL || fields == NULL) {
		json_decref(files);
		json_decref(fields);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < b->n; i++) {
		uint8_t dg[32];
		char *hex;
		qs_sha256((const uint8_t *)b->f[i].data, b->f[i].len, dg);
		if ((hex = qs_hex(dg, 32)) == NULL) {
			json_decref(files);
			json_decref(fields);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		json_array_append_new(
		        files, json_pack("{s:s, s:s, s:I, s:s, s:I}", "repo", b->f[i].repo, "role",
		                         b->f[i].role, "version", (json_int_t)b->f[i].version,
		                         "sha256", hex, "length", (json_int_t)b->f[i].len));
		free(hex);
	}
	json_object_set_new(fields, "files", files);
	if ((r = audit_append(s->audit, event, fields)) != 0)
		return qs_fail(QS_ERR_UNAVAILABLE, "audit log: %s; nothing was published",
		               qs_errdetail());
	{
		/* All of a change's documents in one transaction: a crash
		 * leaves all of them or none (an execute re-run relies on it). */
		char names[sizeof(b->f) / sizeof(b->f[0])][32];
		const char *np[sizeof(b->f) / sizeof(b->f[0])];
		uint64_t vers[sizeof(b->f) / sizeof(b->f[0])];
		const uint8_t *dp[sizeof(b->f) / sizeof(b->f[0])];
		size_t lens[sizeof(b->f) / sizeof(b->f[0])];
		for (size_t i = 0; i < b->n; i++) {
			const struct out_file *f = &b->f[i];
			if (strcmp(f->role, "keys") == 0)
				snprintf(names[i], sizeof(names[i]), "keys");
			else if ((r = doc_name(names[i], sizeof(names[i]), f->repo, f->role)) != 0)
				return r;
			np[i] = names[i];
			vers[i] = f->version;
			dp[i] = (const uint8_t *)f->data;
			lens[i] = f->len;
		}
		if (b->n > 0 &&
		    (r = store_doc_put_many(s->store, "tuf", b->n, np, vers, dp, lens)) != 0)
			return qs_wrap(r, "storing the TUF change");
	}
	for (size_t i = 0; i < b->ntargets; i++) {
		const char *sha =
		        json_string_value(json_object_get(b->target_hashes, b->targets[i].name));
		if ((r = publish_target(p, "ci", &b->targets[i], sha)) != 0)
			return r;
	}
	if (b->promoted != NULL && (r = copy_promoted(p, b->promoted)) != 0)
		return r;
	/* Roots and targets first, then snapshots, then timestamps. */
	static const char *const order[] = {"root", "targets", "snapshot", "timestamp", NULL};
	for (size_t o = 0; order[o] != NULL; o++)
		for (size_t i = 0; i < b->n; i++)
			if (strcmp(b->f[i].role, order[o]) == 0 &&
			    (r = publish_file(p, &b->f[i])) != 0)
				return r;
	log_info(event, "files=%zu", b->n);
	return 0;
}

/* Republish the latest stored files (an execute re-run after a crash
 * between storing and publishing). */
static int
republish(struct server *s, const struct policy *p)
{
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp", NULL};
	int r = 0;

	for (size_t i = 0; i < 2 && r == 0; i++)
		for (size_t j = 0; roles[j] != NULL && r == 0; j++) {
			struct out_file f;
			uint8_t *d = NULL;
			memset(&f, 0, sizeof(f));
			snprintf(f.repo, sizeof(f.repo), "%s", repos[i]);
			snprintf(f.role, sizeof(f.role), "%s", roles[j]);
			if ((r = tuf_get(s, repos[i], roles[j], 0, &d, &f.len, &f.version)) == 0) {
				f.data = (char *)d;
				r = publish_file(p, &f);
			}
			free(d);
		}
	return r;
}

/* New snapshot + timestamp of repo, naming targets version tv. */
static int
add_snap_ts(struct server *s, const struct policy *p, struct batch *b, json_t *st, const char *repo,
            uint64_t tv)
{
	uint64_t sv = 0, tsv = 0;
	uint8_t *d = NULL;
	size_t len;
	int r;

	if (tuf_get(s, repo, "snapshot", 0, &d, &len, &sv) == 0)
		free(d);
	if (tuf_get(s, repo, "timestamp", 0, &d, &len, &tsv) == 0)
		free(d);
	if ((r = add_snapshot(s, p, b, st, repo, sv + 1, tv)) != 0)
		return r;
	return add_timestamp(s, p, b, st, repo, tsv + 1, b->f[b->n - 1].data, b->f[b->n - 1].len,
	                     sv + 1);
}

static int
add_state(struct batch *b, json_t *st, uint64_t version)
{
	return batch_add(b, "", "keys", version, st);
}

/* ------------------------------------------------------------ external keys */

/* The policy's external key called name ({holder, public_key}), or NULL. */
static json_t *
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
static int
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
static json_t *
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
			json_object_set_new(
			        ext, json_string_value(json_object_get(v, "keyid")),
			        json_pack("{s:O, s:O, s:O}", "name", json_object_get(v, "name"),
			                  "holder", json_object_get(v, "holder"), "public_key",
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
static int
doc_add(json_t *docs, const char *repo, const char *role, uint64_t version, json_t *signed_part,
        json_t *need)
{
	json_t *d = json_pack("{s:s, s:s, s:I, s:O, s:O, s:{}}", "repo", repo, "role", role,
	                      "version", (json_int_t)version, "signed", signed_part, "need", need,
	                      "sigs");

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
 * Sign doc with the daemon's keys of its key sets, add the stored external
 * signatures that still verify, and count. *missing = external signatures
 * still needed (the largest shortfall of any set); *env only when none is.
 */
static int
sign_doc(struct server *s, json_t *doc, json_t **env, size_t *missing)
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
				if (json_array_append_new(gone, json_string(json_string_value(v))) !=
				    0) {
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
			if ((r = keyring_sign_tuf(k, json_string_value(json_object_get(doc, "repo")),
			                          canon, len, dg, sig, &sl)) != 0 ||
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
	json_object_foreach(json_object_get(doc, "sigs"), x, v) json_object_set_new(have, x,
	                                                                            json_true());
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
static int
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
		json_t *pr = pol_role(p, tuf_key_roles[i]), *uris = json_array(), *ext = json_array(), *k;
		size_t j;
		json_array_foreach(json_object_get(pr, "keys"), j, k)
		{
			const char *name = json_string_value(k);
			json_t *pe = pol_external(p, name), *ent;
			if (pe != NULL) {
				if ((r = external_entry(p, tuf_key_roles[i], name,
				                        json_string_value(json_object_get(pe, "holder")),
				                        json_string_value(
				                                json_object_get(pe, "public_key")),
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

static int
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

static int
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
static int
init_prepare(struct server *s, const struct policy *p, json_t *prep)
{
	json_t *st = NULL, *sp = NULL, *need = NULL, *docs = json_object_get(prep, "docs");
	int r;

	if ((r = state_from_policy(s, p, &st)) != 0)
		return r;
	for (size_t i = 0; i < 2; i++) {
		json_t *set = key_set(s, st, repos[i], "root", &r);
		if (set == NULL)
			goto out;
		if ((r = build_root(s, p, st, repos[i], 1, &sp)) != 0) {
			json_decref(set);
			goto out;
		}
		if ((r = doc_add(docs, repos[i], "root", 1, sp, need = json_pack("[o]", set))) != 0)
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
		if ((r = doc_add(docs, "prod", "targets", 1, sp, need = json_pack("[o]", set))) != 0)
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

static int
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
	int64_t secs = 0, lo = strcmp(role, "timestamp") == 0 || strcmp(role, "snapshot") == 0
	                               ? 3600
	                               : 86400;
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
	if (refresh != NULL &&
	    (strcmp(role, "timestamp") == 0 || strcmp(role, "snapshot") == 0) &&
	    policy_parse_duration(json_string_value(json_object_get(refresh, "interval")), &iv) ==
	            0 &&
	    policy_parse_duration(json_string_value(json_object_get(refresh, "margin")),
	                          &margin) == 0 &&
	    (margin >= secs || iv >= secs - margin / 2))
		return qs_fail(QS_ERR_PRECONDITION,
		               "%s expiry %s is too short for tuf.refresh (margin %s): the "
		               "refresh timer could not keep it valid",
		               role, d,
		               json_string_value(json_object_get(refresh, "margin")));
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
			json_object_set_new(all, json_string_value(v), json_string(tuf_key_roles[k]));
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
			if ((r = generate_key(s, n, role, json_string_value(json_array_get(uris, i)),
			                      uri, sizeof(uri), &g)) != 0)
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
		if ((r = external_entry(p, "prod-root", json_string_value(json_object_get(v, "name")),
		                        json_string_value(json_object_get(v, "holder")),
		                        json_string_value(json_object_get(v, "public_key")),
		                        &ent)) != 0)
			goto out;
		if (json_object_get(ci, json_string_value(json_object_get(ent, "keyid"))) != NULL) {
			r = qs_fail(QS_ERR_PRECONDITION,
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
		json_object_set_new(ro, "threshold",
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
				    strcmp(tuf_role_repo(tuf_key_roles[k]), tuf_role_repo(role)) == 0)
					continue;
				if ((ids = role_keyids(s, st, tuf_key_roles[k], NULL, &r)) == NULL)
					break;
				json_array_foreach(ids, i, v)
				{
					if (json_equal(v, json_object_get(ent, "keyid")))
						r = qs_fail(QS_ERR_EXISTS,
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
				u = json_array_get(
				        st_uris(st, tuf_repo_role(tuf_role_repo(role), "timestamp")), 0);
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

static int
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
static unsigned
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
static int
root_prepare(struct server *s, const struct policy *p, const struct store_request *rq,
             json_t *prep)
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
		json_t *a = key_set(s, st, repos[i], "root", &r), *b = NULL;
		if (a == NULL || (b = key_set(s, next, repos[i], "root", &r)) == NULL) {
			json_decref(a);
			goto out;
		}
		if ((r = build_root(s, p, next, repos[i], ver + 1, &sp)) != 0) {
			json_decref(a);
			json_decref(b);
			goto out;
		}
		if ((r = doc_add(docs, repos[i], "root", ver + 1, sp,
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

/* ------------------------------------------------------------ promote */

static int
promote_check_base(struct server *s, json_t *pl, json_t **cur_out)
{
	json_t *cur = NULL, *base = json_object_get(pl, "base");
	uint64_t ver;
	int r;

	if (cur_out != NULL)
		*cur_out = NULL;
	if ((r = current_signed(s, "prod", "targets", &cur, &ver)) != 0)
		return r == QS_ERR_NOT_FOUND
		               ? qs_fail(QS_ERR_PRECONDITION, "TUF is not initialised")
		               : r;
	if (json_is_null(base) ||
	    !json_equal(json_object_get(base, "version"), json_object_get(cur, "version")) ||
	    !json_equal(json_object_get(base, "expires"), json_object_get(cur, "expires")) ||
	    !json_equal(json_object_get(base, "targets"), json_object_get(cur, "targets"))) {
		json_decref(cur);
		return qs_fail(QS_ERR_PRECONDITION,
		               "the promote's base is not the production targets in force "
		               "(version %llu): the diff the approvers saw would be wrong",
		               (unsigned long long)ver);
	}
	if (cur_out != NULL)
		*cur_out = cur;
	else
		json_decref(cur);
	return 0;
}

static int
promote_submit_check(struct server *s, const struct policy *p, const struct policy_role *ro,
                     const char *submitter, const uint8_t *payload, size_t len)
{
	json_t *pl = NULL;
	int64_t exp;
	int r;

	(void)submitter;
	if (!gate_is(p, ro, "promote"))
		return qs_fail(QS_ERR_DENIED,
		               "production promotes go through role tuf.gates.promote");
	if ((r = tuf_payload_parse("tuf-promote", payload, len, &pl)) != 0)
		return r;
	if ((r = promote_check_base(s, pl, NULL)) == 0 &&
	    (r = tuf_time_parse(json_string_value(json_object_get(pl, "expires")), &exp)) == 0 &&
	    exp <= (int64_t)time(NULL))
		r = qs_fail(QS_ERR_INVALID, "expires is in the past");
	json_decref(pl);
	return r;
}

/* The one document of a promote: the production targets it proposes. */
static int
promote_prepare(struct server *s, const struct store_request *rq, json_t *prep)
{
	json_t *pl = NULL, *st = NULL, *sp = NULL, *set = NULL, *need = NULL;
	uint64_t ver, tv;
	int r;

	if ((r = tuf_payload_parse("tuf-promote", rq->payload, rq->payload_len, &pl)) != 0 ||
	    (r = promote_check_base(s, pl, NULL)) != 0 || (r = load_state(s, &st, &ver)) != 0)
		goto out;
	tv = (uint64_t)json_integer_value(json_object_get(pl, "version"));
	if ((set = key_set(s, st, "prod", "targets", &r)) == NULL ||
	    (sp = json_pack("{s:s, s:s, s:I, s:O, s:O}", "_type", "targets", "spec_version",
	                    TUF_SPEC_VERSION, "version", (json_int_t)tv, "expires",
	                    json_object_get(pl, "expires"), "targets",
	                    json_object_get(pl, "targets"))) == NULL) {
		r = r != 0 ? r : qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = doc_add(json_object_get(prep, "docs"), "prod", "targets", tv, sp,
	                 need = json_pack("[O]", set))) != 0)
		goto out;
	json_object_set_new(prep, "base", json_integer((json_int_t)ver));
out:
	json_decref(pl);
	json_decref(st);
	json_decref(sp);
	json_decref(set);
	json_decref(need);
	return r;
}

/* ------------------------------------------------------------ prepared requests */

static int
prep_name(char *buf, size_t cap, const char *id)
{
	if ((size_t)snprintf(buf, cap, "prep.%s", id) >= cap)
		return qs_fail(QS_ERR_INTERNAL, "request id too long");
	return 0;
}

static int
prep_load(struct server *s, const char *id, json_t **prep, uint64_t *ver)
{
	char name[96];
	uint8_t *d = NULL;
	size_t len = 0;
	json_error_t e;
	int r;

	*prep = NULL;
	if ((r = prep_name(name, sizeof(name), id)) != 0 ||
	    (r = store_doc_get(s->store, "tuf", name, 0, &d, &len, ver)) != 0)
		return r;
	if ((*prep = json_loadb((const char *)d, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		r = qs_fail(QS_ERR_DB, "stored TUF preparation is not JSON: %s", e.text);
	free(d);
	return r;
}

static int
prep_store(struct server *s, const char *id, json_t *prep, uint64_t ver)
{
	char name[96], *t;
	int r;

	if ((r = prep_name(name, sizeof(name), id)) != 0)
		return r;
	if ((t = json_dumps(prep, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	r = store_doc_put(s->store, "tuf", name, ver, (const uint8_t *)t, strlen(t));
	free(t);
	return r;
}

/* The stored preparation of request rq, made now if there is none. Caller
 * holds tuf_mu. */
static int
prepare_locked(struct server *s, const struct policy *p, const struct store_request *rq,
               json_t **prep, uint64_t *ver)
{
	json_t *pr;
	int r;

	if ((r = prep_load(s, rq->id, prep, ver)) != QS_ERR_NOT_FOUND)
		return r;
	qs_errclear();
	if ((pr = json_pack("{s:s, s:s, s:[]}", "request", rq->id, "kind", rq->kind, "docs")) ==
	    NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (p->ext_tuf == NULL)
		r = qs_fail(QS_ERR_PRECONDITION, "the policy has no \"tuf\" section");
	else if (strcmp(rq->kind, "tuf-init") == 0)
		r = init_submit_check(s, p, policy_role(p, rq->role), rq->submitter, rq->payload,
		                      rq->payload_len) != 0
		            ? QS_ERR_PRECONDITION
		            : init_prepare(s, p, pr);
	else if (strcmp(rq->kind, "tuf-root") == 0)
		r = root_prepare(s, p, rq, pr);
	else if (strcmp(rq->kind, "tuf-promote") == 0)
		r = promote_prepare(s, rq, pr);
	else
		r = qs_fail(QS_ERR_INVALID, "request %s is not a TUF change", rq->id);
	if (r == 0 && (r = prep_store(s, rq->id, pr, 1)) == 0) {
		*prep = pr;
		*ver = 1;
		log_info("tuf.prepared", "request=%s documents=%zu", rq->id,
		         json_array_size(json_object_get(pr, "docs")));
		return 0;
	}
	json_decref(pr);
	return r;
}

/* The stored version of repo/role, 0 if none. */
static uint64_t
stored_version(struct server *s, const char *repo, const char *role)
{
	uint8_t *d = NULL;
	size_t len;
	uint64_t v = 0;

	if (tuf_get(s, repo, role, 0, &d, &len, &v) != 0) {
		qs_errclear();
		v = 0;
	}
	free(d);
	return v;
}

/* 1 when the change prep describes is in the store already (a re-run after
 * a crash), 0 when it can still be applied; QS_ERR_PRECONDITION when the
 * repository moved on since it was prepared. */
static int
prep_applied(struct server *s, json_t *prep)
{
	json_t *d0 = json_array_get(json_object_get(prep, "docs"), 0), *d;
	uint64_t want = (uint64_t)json_integer_value(json_object_get(d0, "version"));
	uint64_t have = stored_version(s, json_string_value(json_object_get(d0, "repo")),
	                               json_string_value(json_object_get(d0, "role")));
	size_t i;

	if (d0 == NULL)
		return qs_fail(QS_ERR_INTERNAL, "an empty TUF preparation");
	if (have == want) {
		/* Ours only if what is stored is what we prepared. */
		json_t *cur = NULL;
		uint64_t v;
		int same = current_signed(s, json_string_value(json_object_get(d0, "repo")),
		                          json_string_value(json_object_get(d0, "role")), &cur,
		                          &v) == 0 &&
		           json_equal(cur, json_object_get(d0, "signed"));
		json_decref(cur);
		if (same)
			return 1;
	}
	if (have >= want)
		return qs_fail(QS_ERR_PRECONDITION,
		               "the repository moved on since this request was prepared: submit "
		               "it again");
	json_array_foreach(json_object_get(prep, "docs"), i, d)
	{
		uint64_t v = (uint64_t)json_integer_value(json_object_get(d, "version"));
		if (stored_version(s, json_string_value(json_object_get(d, "repo")),
		                   json_string_value(json_object_get(d, "role"))) != v - 1)
			return qs_fail(QS_ERR_PRECONDITION,
			               "%s %s is no longer version %llu, which this request was "
			               "prepared against: submit it again",
			               json_string_value(json_object_get(d, "repo")),
			               json_string_value(json_object_get(d, "role")),
			               (unsigned long long)(v - 1));
	}
	return 0;
}

/*
 * Carry out a prepared TUF request: sign every document with the daemon's
 * keys, merge the external signatures, and publish only when every key
 * set's threshold is met; otherwise REQKIND_WAIT with the shortfall.
 */
static int
prep_execute(struct server *s, const struct store_request *rq, const struct policy *p,
             uint8_t **result, size_t *result_len)
{
	struct batch b;
	json_t *prep = NULL, *st = NULL, *env = NULL, *d, *res = NULL, *ext = json_array();
	uint64_t pv, ver = 0, tvs[2] = {0, 0};
	size_t i, short_by = 0, waiting = 0;
	const char *kind = rq->kind;
	int r, init = strcmp(kind, "tuf-init") == 0, root = strcmp(kind, "tuf-root") == 0;

	memset(&b, 0, sizeof(b));
	pthread_mutex_lock(&tuf_mu);
	if (ext == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = prepare_locked(s, p, rq, &prep, &pv)) != 0 || (r = prep_applied(s, prep)) < 0)
		goto out;
	if (r == 1) {
		/* Re-run after a crash between storing and publishing. */
		if ((r = republish(s, p)) != 0)
			goto out;
		goto result;
	}
	if (!init && (r = load_state(s, &st, &ver)) != 0)
		goto out;
	if (!init && (uint64_t)json_integer_value(json_object_get(prep, "base")) != ver) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the TUF keys changed since this request was prepared (root %llu): "
		            "submit it again",
		            (unsigned long long)ver);
		goto out;
	}
	if (init || root) {
		json_decref(st);
		st = json_incref(json_object_get(prep, "state"));
		if ((r = add_state(&b, st, ver + 1)) != 0)
			goto out;
	}
	json_array_foreach(json_object_get(prep, "docs"), i, d)
	{
		size_t missing = 0;
		const char *x;
		json_t *v;
		int64_t exp = 0;
		if (tuf_time_parse(json_string_value(json_object_get(json_object_get(d, "signed"),
		                                                     "expires")),
		                   &exp) != 0 ||
		    exp <= (int64_t)time(NULL)) {
			r = qs_fail(QS_ERR_PRECONDITION,
			            "%s %s version %lld expired before it was published: submit "
			            "the change again",
			            json_string_value(json_object_get(d, "repo")),
			            json_string_value(json_object_get(d, "role")),
			            (long long)json_integer_value(json_object_get(d, "version")));
			goto out;
		}
		if ((r = sign_doc(s, d, &env, &missing)) != 0)
			goto out;
		if (missing > 0) {
			waiting++;
			if (missing > short_by)
				short_by = missing;
			continue;
		}
		json_object_foreach(json_object_get(d, "sigs"), x, v)
		{
			json_array_append_new(ext, json_pack("{s:s, s:s, s:s}", "keyid", x, "repo",
			                                     json_string_value(json_object_get(d, "repo")),
			                                     "role",
			                                     json_string_value(json_object_get(d, "role"))));
		}
		r = batch_add(&b, json_string_value(json_object_get(d, "repo")),
		              json_string_value(json_object_get(d, "role")),
		              (uint64_t)json_integer_value(json_object_get(d, "version")), env);
		json_decref(env);
		env = NULL;
		if (r != 0)
			goto out;
		if (strcmp(json_string_value(json_object_get(d, "role")), "targets") == 0) {
			tvs[1] = (uint64_t)json_integer_value(json_object_get(d, "version"));
			/* A promote publishes the contents CI already has. */
			if (!init && !root)
				b.promoted = json_object_get(json_object_get(d, "signed"), "targets");
		}
	}
	if (waiting > 0) {
		qs_fail(QS_ERR_PRECONDITION,
		        "%zu document(s) wait for up to %zu external signature(s): holders sign "
		        "with `qsign tuf sign %s`",
		        waiting, short_by, rq->id);
		r = REQKIND_WAIT;
		goto out;
	}
	/* The CI targets: the online key alone. */
	if (init) {
		json_t *empty = json_object();
		r = add_targets(s, &b, st, "ci", 1, role_expiry(p, st, "targets"), empty);
		json_decref(empty);
		tvs[0] = 1;
		if (r != 0)
			goto out;
	} else if (root && (retargets(json_object_get(prep, "change")) & 1)) {
		json_t *cur = NULL;
		uint64_t tv;
		if ((r = current_signed(s, "ci", "targets", &cur, &tv)) == 0)
			r = add_targets(s, &b, st, "ci", tv + 1, role_expiry(p, st, "targets"),
			                json_object_get(cur, "targets"));
		json_decref(cur);
		tvs[0] = tv + 1;
		if (r != 0)
			goto out;
	}
	for (i = 0; i < 2; i++) {
		if (!init && !root && i == 0)
			continue; /* a promote touches production only */
		if (tvs[i] == 0)
			tvs[i] = stored_version(s, repos[i], "targets");
		if ((r = add_snap_ts(s, p, &b, st, repos[i], tvs[i])) != 0)
			goto out;
	}
	if ((r = commit(s, p, &b, init ? "tuf.init" : root ? "tuf.root" : "tuf.promote",
	                json_pack("{s:s, s:O*, s:I, s:O}", "request", rq->id, "change",
	                          json_object_get(prep, "change"), "root_version",
	                          (json_int_t)(init ? 1 : root ? ver + 1 : ver),
	                          "external_signatures", ext))) != 0)
		goto out;
result:
	if (init)
		res = json_pack("{s:s, s:I}", "tuf", "initialised", "root_version", (json_int_t)1);
	else if (root)
		res = json_pack("{s:I, s:O*}", "root_version",
		                json_integer_value(json_object_get(json_object_get(prep, "state"),
		                                                   "version")),
		                "new_key", json_object_get(prep, "generated"));
	else
		res = json_pack("{s:I}", "targets_version",
		                json_integer_value(json_object_get(
		                        json_array_get(json_object_get(prep, "docs"), 0), "version")));
	r = result_json(res, result, result_len);
out:
	pthread_mutex_unlock(&tuf_mu);
	batch_free(&b);
	json_decref(prep);
	json_decref(st);
	json_decref(env);
	json_decref(ext);
	return r;
}

static int
tuf_execute(struct server *s, const struct store_request *rq, const struct policy *p,
            const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
            uint8_t **result, size_t *result_len)
{
	int r;

	*sigs = NULL;
	*nsigs = 0;
	if (strcmp(rq->kind, "tuf-root") == 0 &&
	    !gate_is(p, ro, "admin"))
		return qs_fail(QS_ERR_DENIED, "TUF root changes go through role tuf.gates.admin");
	if (strcmp(rq->kind, "tuf-promote") == 0 && !gate_is(p, ro, "promote"))
		return qs_fail(QS_ERR_DENIED,
		               "production promotes go through role tuf.gates.promote");
	if (strcmp(rq->kind, "tuf-init") == 0 && !gate_is(p, ro, "admin"))
		return qs_fail(QS_ERR_DENIED, "TUF init goes through role tuf.gates.admin");
	r = prep_execute(s, rq, p, result, result_len);
	return r;
}

const struct reqkind_ops tuf_init_ops = {"tuf-init", init_submit_check, tuf_execute};
const struct reqkind_ops tuf_root_ops = {"tuf-root", root_submit_check, tuf_execute};
const struct reqkind_ops tuf_promote_ops = {"tuf-promote", promote_submit_check, tuf_execute};

/* ------------------------------------------------------------ CI push */

int
tuf_push(struct server *s, const struct policy *p, const char *principal, json_t *add,
         char *const *remove, size_t nremove, const struct tuf_file *files, size_t nfiles,
         uint64_t *tv, uint64_t *sv, uint64_t *tsv)
{
	struct batch b;
	json_t *st = NULL, *cur = NULL, *targets = NULL, *hashes = json_object(), *v;
	const char *name;
	uint64_t ver, ctv;
	int r;

	*tv = *sv = *tsv = 0;
	memset(&b, 0, sizeof(b));
	pthread_mutex_lock(&tuf_mu);
	if ((r = load_state(s, &st, &ver)) != 0 ||
	    (r = current_signed(s, "ci", "targets", &cur, &ctv)) != 0) {
		if (r == QS_ERR_NOT_FOUND)
			r = qs_fail(QS_ERR_PRECONDITION, "TUF is not initialised");
		goto out;
	}
	if ((targets = json_deep_copy(json_object_get(cur, "targets"))) == NULL || hashes == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nremove; i++)
		if (json_object_del(targets, remove[i]) != 0) {
			r = qs_fail(QS_ERR_NOT_FOUND, "no CI target \"%.80s\" to remove",
			            remove[i]);
			goto out;
		}
	json_object_update(targets, add);
	if ((r = tuf_targets_check(targets)) != 0)
		goto out;
	for (size_t i = 0; i < nfiles; i++) {
		uint8_t dg[32];
		char *hex;
		json_t *t = json_object_get(add, files[i].name);
		const char *want =
		        json_string_value(json_object_get(json_object_get(t, "hashes"), "sha256"));
		qs_sha256(files[i].data, files[i].len, dg);
		if ((hex = qs_hex(dg, 32)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (t == NULL || strcmp(hex, want) != 0 ||
		    (json_int_t)files[i].len != json_integer_value(json_object_get(t, "length"))) {
			free(hex);
			r = qs_fail(QS_ERR_INVALID, "file %.80s does not match its target entry",
			            files[i].name);
			goto out;
		}
		json_object_set_new(hashes, files[i].name, json_string(hex));
		free(hex);
	}
	b.targets = files;
	b.ntargets = nfiles;
	b.target_hashes = hashes;
	if ((r = add_targets(s, &b, st, "ci", ctv + 1, role_expiry(p, st, "targets"), targets)) != 0 ||
	    (r = add_snap_ts(s, p, &b, st, "ci", ctv + 1)) != 0)
		goto out;
	*tv = b.f[0].version;
	*sv = b.f[1].version;
	*tsv = b.f[2].version;
	{
		json_t *names = json_array();
		json_object_foreach(add, name, v) json_array_append_new(names, json_string(name));
		r = commit(s, p, &b, "tuf.targets",
		           json_pack("{s:s, s:s, s:o}", "principal", principal, "repo", "ci",
		                     "added", names));
	}
out:
	pthread_mutex_unlock(&tuf_mu);
	batch_free(&b);
	json_decref(st);
	json_decref(cur);
	json_decref(targets);
	json_decref(hashes);
	return r;
}

/* ------------------------------------------------------------ refresh */

int
tuf_refresh(struct server *s, const struct policy *p)
{
	struct batch b;
	json_t *st = NULL, *refresh = json_object_get(p->ext_tuf, "refresh");
	int64_t margin = 0, now = (int64_t)time(NULL);
	uint64_t ver;
	int r = 0;

	if (p->ext_tuf == NULL || refresh == NULL ||
	    policy_parse_duration(json_string_value(json_object_get(refresh, "margin")), &margin) !=
	            0)
		return 0;
	memset(&b, 0, sizeof(b));
	pthread_mutex_lock(&tuf_mu);
	if (load_state(s, &st, &ver) != 0) {
		qs_errclear();
		goto out;
	}
	for (size_t i = 0; i < 2; i++) {
		json_t *snap = NULL, *ts = NULL;
		uint64_t sv, tsv;
		int64_t se = 0, te = 0;
		if ((r = current_signed(s, repos[i], "snapshot", &snap, &sv)) != 0 ||
		    (r = current_signed(s, repos[i], "timestamp", &ts, &tsv)) != 0 ||
		    (r = tuf_time_parse(json_string_value(json_object_get(snap, "expires")),
		                        &se)) != 0 ||
		    (r = tuf_time_parse(json_string_value(json_object_get(ts, "expires")), &te)) !=
		            0) {
			json_decref(snap);
			json_decref(ts);
			goto out;
		}
		if (se - now < margin) {
			json_int_t tv = json_integer_value(json_object_get(
			        json_object_get(json_object_get(snap, "meta"), "targets.json"),
			        "version"));
			r = add_snap_ts(s, p, &b, st, repos[i], (uint64_t)tv);
		} else if (te - now < margin) {
			uint8_t *d = NULL;
			size_t len = 0;
			if ((r = tuf_get(s, repos[i], "snapshot", sv, &d, &len, NULL)) == 0)
				r = add_timestamp(s, p, &b, st, repos[i], tsv + 1, (const char *)d,
				                  len, sv);
			free(d);
		}
		json_decref(snap);
		json_decref(ts);
		if (r != 0)
			goto out;
	}
	if (b.n > 0)
		r = commit(s, p, &b, "tuf.refresh", json_object());
out:
	pthread_mutex_unlock(&tuf_mu);
	batch_free(&b);
	json_decref(st);
	return r;
}

/* ------------------------------------------------------------ review */

static void finding(json_t *a, const char *sev, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
finding(json_t *a, const char *sev, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(a, json_pack("{s:s, s:s}", "severity", sev, "text", buf));
}

int
tuf_review(struct server *s, const struct policy *p, json_t **findings, uint64_t *root_version)
{
	json_t *st = NULL, *root = NULL, *a = json_array(), *seen = json_object(), *v;
	uint64_t ver, rv;
	int64_t now = (int64_t)time(NULL), exp;
	int r;

	(void)p;
	*findings = NULL;
	*root_version = 0;
	if (a == NULL || seen == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((r = load_state(s, &st, &ver)) != 0 ||
	    (r = current_signed(s, "prod", "root", &root, &rv)) != 0) {
		if (r == QS_ERR_NOT_FOUND)
			r = qs_fail(QS_ERR_PRECONDITION, "TUF is not initialised");
		goto out;
	}
	for (size_t i = 0; i < 2; i++) {
		const char *rr = tuf_repo_role(repos[i], "root");
		if (st_nkeys(st, rr) < 3)
			finding(a, "warning", "%s root has %zu key(s): keep at least 3, held apart",
			        repos[i], st_nkeys(st, rr));
		if (st_threshold(st, rr) < 2)
			finding(a, "warning",
			        "%s root threshold is %lld: one stolen key rewrites trust; use >= 2",
			        repos[i], (long long)st_threshold(st, rr));
	}
	if (st_threshold(st, "prod-targets") < 2)
		finding(a, "error", "production targets threshold is below 2");
	if (st_nkeys(st, "prod-targets") < 2)
		finding(a, "warning",
		        "a single offline targets key: losing it blocks production "
		        "releases until a root change");
	{
		json_t *init = json_object_get(st, "initial_root"), *id;
		size_t i;
		const char *rn;
		for (size_t ri = 0; rv > 1 && ri < 2; ri++) {
			json_t *cur = role_keyids(s, st, tuf_repo_role(repos[ri], "root"), NULL, &r);
			json_array_foreach(init, i, id)
			{
				size_t j;
				json_t *c;
				json_array_foreach(cur, j, c) if (json_equal(c, id)) finding(
				        a, "warning",
				        "the initial root key %.16s... is still trusted by %s after "
				        "%llu root versions: rotate it out",
				        json_string_value(id), repos[ri], (unsigned long long)rv);
			}
			json_decref(cur);
			qs_errclear();
		}
		json_object_foreach(json_object_get(st, "roles"), rn, v)
		{
			json_t *u;
			/* The daemon's keys must be in an opened token now. */
			json_array_foreach(json_object_get(v, "uris"), i, u)
			{
				struct keyring_key *k;
				if (key_at(s, json_string_value(u), &k) != 0) {
					finding(a, "error", "%s key %s is not in any opened token: %s",
					        rn, json_string_value(u), qs_errdetail());
					qs_errclear();
				}
			}
			json_array_foreach(json_object_get(v, "external"), i, u)
			{
				finding(a, "warning",
				        "%s key %s (%.16s...) is held outside the daemon by %s: it "
				        "must live in the holder's own hardware token, not a file",
				        rn, json_string_value(json_object_get(u, "name")),
				        json_string_value(json_object_get(u, "keyid")),
				        json_string_value(json_object_get(u, "holder")));
			}
			{
				json_t *ids = role_keyids(s, st, rn, NULL, &r);
				json_array_foreach(ids, i, u)
				{
					const char *other = json_string_value(
					        json_object_get(seen, json_string_value(u)));
					if (other != NULL &&
					    strcmp(tuf_role_repo(other), tuf_role_repo(rn)) != 0)
						finding(a, "error",
						        "key %.16s... is shared by the CI and production "
						        "repositories (roles %s and %s): a production "
						        "client would trust what it signs for CI; give "
						        "production keys of its own with `qsign tuf "
						        "separate`",
						        json_string_value(u), other, rn);
					else if (other != NULL)
						finding(a, "error",
						        "key %.16s... is used by roles %s and %s",
						        json_string_value(u), other, rn);
					else
						json_object_set_new(seen, json_string_value(u),
						                    json_string(rn));
				}
				json_decref(ids);
				qs_errclear();
			}
		}
	}
	for (size_t i = 0; i < 2; i++) {
		static const char *const kinds[] = {"root", "targets", "snapshot", NULL};
		for (size_t k = 0; kinds[k] != NULL; k++) {
			json_t *sp = NULL;
			uint64_t x;
			if (current_signed(s, repos[i], kinds[k], &sp, &x) != 0)
				continue;
			if (tuf_time_parse(json_string_value(json_object_get(sp, "expires")),
			                   &exp) == 0 &&
			    exp - now < 30 * 86400 && strcmp(kinds[k], "snapshot") != 0)
				finding(a, exp <= now ? "error" : "warning", "%s %s expires %s",
				        repos[i], kinds[k],
				        json_string_value(json_object_get(sp, "expires")));
			json_decref(sp);
		}
	}
	qs_errclear();
	*findings = a;
	a = NULL;
	*root_version = rv;
	r = 0;
out:
	json_decref(a);
	json_decref(seen);
	json_decref(st);
	json_decref(root);
	return r;
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
			            "request %s is not prepared: fetch it with Tuf/Prepare first", id);
		goto unlock;
	}
	/* All or nothing: every signature verifies before any is kept. */
	for (size_t i = 0; i < n; i++) {
		json_t *d = json_array_get(json_object_get(prep, "docs"), sigs[i].doc), *ek;
		char *canon = NULL, *hex = NULL, dgh[65];
		uint8_t dg[32];
		size_t len = 0;
		if (d == NULL) {
			r = qs_fail(QS_ERR_INVALID, "signature %zu: no document %u", i, sigs[i].doc);
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
		for (size_t k = 0; k < 32; k++)
			snprintf(dgh + 2 * k, 3, "%02x", dg[k]);
		json_object_set_new(json_object_get(d, "sigs"), sigs[i].keyid, json_string(hex));
		json_array_append_new(
		        audit, json_pack("{s:s, s:s, s:O, s:O, s:O, s:s}", "keyid", sigs[i].keyid,
		                         "key", json_object_get(ek, "name"), "repo",
		                         json_object_get(d, "repo"), "role",
		                         json_object_get(d, "role"), "version",
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
