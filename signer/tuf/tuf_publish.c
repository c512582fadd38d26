/*
 * Publishing a TUF change: write its files into the repository
 * directories (each atomically, timestamp.json last) after the batch is
 * audited and stored (commit), and republish after a crash.
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

#include "atomic_file.h"
#include "cjson.h"
#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "tuf.h"
#include "tuf_internal.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

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

/* dir/name <- data, atomically (qs_write_atomic), dir made first. The file
 * is world-readable: it is published for any static HTTP server. */
static int
write_atomic(const char *dir, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	int r;

	if ((r = mkdir_p(dir)) != 0)
		return r;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return qs_fail(QS_ERR_INVALID, "path too long under %s", dir);
	return qs_write_atomic(path, data, len, 0644);
}

/* Where this daemon publishes repo: its configuration's "tuf_publish"
 * (replicas on one host, or hosts laid out differently), else the
 * policy's tuf.repositories. */
const char *
repo_dir(const struct server *s, const struct policy *p, const char *repo)
{
	const char *d = s->cfg->tuf_publish[strcmp(repo, "prod") == 0];

	return d != NULL ? d : pol_repo_dir(p, repo);
}

int
publish_file(const struct server *s, const struct policy *p, const struct out_file *f)
{
	char dir[PATH_MAX], name[64];
	int r;

	if (strcmp(f->role, "keys") == 0)
		return 0;
	snprintf(dir, sizeof(dir), "%s/metadata", repo_dir(s, p, f->repo));
	if (strcmp(f->role, "timestamp") == 0)
		return write_atomic(dir, "timestamp.json", f->data, f->len);
	snprintf(name, sizeof(name), "%llu.%s.json", (unsigned long long)f->version, f->role);
	if ((r = write_atomic(dir, name, f->data, f->len)) != 0)
		return r;
	if (strcmp(f->role, "root") == 0)
		return write_atomic(dir, "root.json", f->data, f->len);
	return 0;
}

/* A target file's directory and name under repo: targets/<dir>/ and
 * <sha256>.<basename> (consistent snapshot naming). */
int
target_path(const struct server *s, const struct policy *p, const char *repo, const char *tname,
            const char *sha, char *dir, size_t dcap, char *name, size_t ncap)
{
	const char *slash = strrchr(tname, '/');
	int n, m;

	if (slash == NULL) {
		n = snprintf(dir, dcap, "%s/targets", repo_dir(s, p, repo));
		m = snprintf(name, ncap, "%s.%s", sha, tname);
	} else {
		n = snprintf(dir, dcap, "%s/targets/%.*s", repo_dir(s, p, repo),
		             (int)(slash - tname), tname);
		m = snprintf(name, ncap, "%s.%s", sha, slash + 1);
	}
	if (n < 0 || (size_t)n >= dcap || m < 0 || (size_t)m >= ncap)
		return qs_fail(QS_ERR_INVALID, "target path too long: %.80s", tname);
	return 0;
}

int
publish_target(const struct server *s, const struct policy *p, const char *repo,
               const struct tuf_file *t, const char *sha)
{
	char dir[PATH_MAX], name[PATH_MAX];
	int r;

	if ((r = target_path(s, p, repo, t->name, sha, dir, sizeof(dir), name, sizeof(name))) != 0)
		return r;
	return write_atomic(dir, name, t->data, t->len);
}
/* Copy the contents of promoted targets from the CI repository's
 * targets/ into production's, when CI has them and production does not
 * (a replica that has not materialised CI's yet leaves them to
 * tuf_materialise, which takes them from the store). */
static int
copy_promoted(const struct server *s, const struct policy *p, json_t *targets)
{
	const char *name;
	json_t *v;
	int r;

	json_object_foreach(targets, name, v)
	{
		const char *sha =
		        json_string_value(json_object_get(json_object_get(v, "hashes"), "sha256"));
		char sdir[PATH_MAX], ddir[PATH_MAX], base[PATH_MAX], src[PATH_MAX * 2],
		        dst[PATH_MAX * 2];
		struct tuf_file t = {name, NULL, 0};
		uint8_t dg[32];
		char *hex;
		FILE *f;
		long n;
		if (sha == NULL ||
		    (r = target_path(s, p, "ci", name, sha, sdir, sizeof(sdir), base,
		                     sizeof(base))) != 0 ||
		    (r = target_path(s, p, "prod", name, sha, ddir, sizeof(ddir), base,
		                     sizeof(base))) != 0) {
			qs_errclear();
			continue;
		}
		snprintf(src, sizeof(src), "%s/%s", sdir, base);
		snprintf(dst, sizeof(dst), "%s/%s", ddir, base);
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
		r = hex != NULL && strcmp(hex, sha) == 0 ? publish_target(s, p, "prod", &t, sha)
		                                         : 0;
		free(hex);
		free((void *)t.data);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * A push's target contents, in the store (namespace "tuf.target", named by
 * their SHA-256, version 1) before the metadata naming them: every replica
 * materialises its targets/ from there (tuf_materialise.c). Content
 * addressed, so storing the same contents again is no change.
 */
static int
store_contents(struct server *s, const struct batch *b)
{
	for (size_t i = 0; i < b->ntargets; i++) {
		const char *sha =
		        json_string_value(json_object_get(b->target_hashes, b->targets[i].name));
		int r = store_doc_put(s->store, TUF_TARGET_NS, sha, 1, b->targets[i].data,
		                      b->targets[i].len);
		if (r == QS_ERR_EXISTS)
			qs_errclear();
		else if (r != 0)
			return qs_wrap(r, "storing the contents of %.80s", b->targets[i].name);
	}
	return 0;
}

/*
 * Audit, store and publish a batch. The audit entry names every file with
 * its version, SHA-256 and length; it is durable before anything is stored
 * or published.
 */
int
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
	if ((r = store_contents(s, b)) != 0)
		return r;
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
		if ((r = publish_target(s, p, "ci", &b->targets[i], sha)) != 0)
			return r;
	}
	if (b->promoted != NULL && (r = copy_promoted(s, p, b->promoted)) != 0)
		return r;
	/* Roots and targets first, then snapshots, then timestamps. */
	static const char *const order[] = {"root", "targets", "snapshot", "timestamp", NULL};
	for (size_t o = 0; order[o] != NULL; o++)
		for (size_t i = 0; i < b->n; i++)
			if (strcmp(b->f[i].role, order[o]) == 0 &&
			    (r = publish_file(s, p, &b->f[i])) != 0)
				return r;
	log_info(event, "files=%zu", b->n);
	return 0;
}

/* Republish the latest stored files (an execute re-run after a crash
 * between storing and publishing). */
int
republish(struct server *s, const struct policy *p)
{
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp", NULL};
	int r = 0;

	for (size_t i = 0; i < 2 && r == 0; i++)
		for (size_t j = 0; roles[j] != NULL && r == 0; j++) {
			struct out_file f;
			uint8_t *d = NULL;
			memset(&f, 0, sizeof(f));
			snprintf(f.repo, sizeof(f.repo), "%s", tuf_repos[i]);
			snprintf(f.role, sizeof(f.role), "%s", roles[j]);
			if ((r = tuf_get(s, tuf_repos[i], roles[j], 0, &d, &f.len, &f.version)) ==
			    0) {
				f.data = (char *)d;
				r = publish_file(s, p, &f);
			}
			free(d);
		}
	return r;
}

/* New snapshot + timestamp of repo, naming targets version tv. */
int
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

int
add_state(struct batch *b, json_t *st, uint64_t version)
{
	return batch_add(b, "", "keys", version, st);
}
