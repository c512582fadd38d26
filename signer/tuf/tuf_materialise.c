/*
 * Materialising the published TUF repositories from the store.
 *
 * The store holds the record of truth (every signed metadata version, and
 * the contents of pushed targets in namespace TUF_TARGET_NS); a daemon's
 * published directories are a copy of it. The replica that makes a change
 * writes the files itself (commit); every other replica, and a daemon that
 * starts, brings its own directories up to the store here: at start, and
 * on a shared store every MATERIALISE_MS on the TUF timer.
 *
 * Detecting a change is cheap: per repository the latest timestamp and root
 * documents are read (two indexed single-row queries) and compared with
 * the published timestamp.json and root.json; only when one differs is the
 * repository written. What is written follows the chain the stored
 * timestamp names (timestamp -> snapshot version -> targets version), so the
 * files a client reads agree with each other; root versions missing on
 * disk are written from 1 up (a client walks them one by one). Each file is
 * written atomically, target contents and roots first, timestamp last, as
 * commit() does. Only what the store returns is written, so nothing
 * uncommitted is ever published; target contents are checked against the
 * SHA-256 the signed targets metadata names before they are written.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "tuf.h"
#include "tuf_internal.h"
#include "tuf_meta.h"

/* 1 once the daemon asked for the start-up pass (after dropping
 * privileges): the timer does not write files before. */
static volatile int materialise_on;
/* Per repository: the last pass failed (under tuf_mu). */
static int failing[2];

/* 1 if the file at path holds exactly data[0..len). */
static int
file_equals(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "rb");
	uint8_t buf[4096];
	size_t off = 0, n;
	int eq = f != NULL;

	while (eq && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (off + n > len || memcmp(buf, data + off, n) != 0)
			eq = 0;
		off += n;
	}
	if (f != NULL)
		fclose(f);
	return eq && off == len;
}

/* The stored document repo/role (version 0 = latest) as an out_file. */
static int
stored_file(struct server *s, const char *repo, const char *role, uint64_t version,
            struct out_file *f)
{
	uint8_t *d = NULL;
	int r;

	memset(f, 0, sizeof(*f));
	snprintf(f->repo, sizeof(f->repo), "%s", repo);
	snprintf(f->role, sizeof(f->role), "%s", role);
	if ((r = tuf_get(s, repo, role, version, &d, &f->len, &f->version)) != 0)
		return r;
	f->data = (char *)d;
	return 0;
}

/* The version of `name` in the "meta" of an envelope's signed part. */
static int
meta_version(const struct out_file *f, const char *name, uint64_t *v)
{
	json_t *env = NULL;
	json_int_t n;
	int r;

	if ((r = tuf_envelope_parse((const uint8_t *)f->data, f->len, f->role, &env)) != 0)
		return r;
	n = json_integer_value(json_object_get(
	        json_object_get(json_object_get(json_object_get(env, "signed"), "meta"), name),
	        "version"));
	json_decref(env);
	if (n < 1)
		return qs_fail(QS_ERR_DB, "stored %s.%s version %llu names no %s", f->repo, f->role,
		               (unsigned long long)f->version, name);
	*v = (uint64_t)n;
	return 0;
}

/* Every root version from 1 to latest's that is not on disk, then latest
 * (also as root.json). */
static int
put_roots(struct server *s, const struct policy *p, const struct out_file *latest)
{
	char path[PATH_MAX];
	int r;

	for (uint64_t v = 1; v < latest->version; v++) {
		struct out_file f;
		snprintf(path, sizeof(path), "%s/metadata/%llu.root.json",
		         repo_dir(s, p, latest->repo), (unsigned long long)v);
		if (access(path, F_OK) == 0)
			continue;
		if ((r = stored_file(s, latest->repo, "root", v, &f)) == QS_ERR_NOT_FOUND) {
			qs_errclear();
			continue;
		}
		if (r == 0)
			r = publish_file(s, p, &f);
		free(f.data);
		if (r != 0)
			return r;
	}
	return publish_file(s, p, latest);
}

/* The contents of the targets that targets metadata tm names and the
 * published targets/ lacks, from the store. Contents the store does not
 * have (pushed without them, or before contents were stored) are counted
 * in *missing. */
static int
put_contents(struct server *s, const struct policy *p, const struct out_file *tm, size_t *missing)
{
	json_t *env = NULL, *v;
	const char *name;
	int r;

	if ((r = tuf_envelope_parse((const uint8_t *)tm->data, tm->len, "targets", &env)) != 0)
		return r;
	/* Names become paths and hashes file names: the rules a push is held
	 * to, whoever wrote the database. */
	if ((r = tuf_targets_check(json_object_get(json_object_get(env, "signed"), "targets"))) !=
	    0) {
		json_decref(env);
		return qs_wrap(r, "stored %s targets version %llu", tm->repo,
		               (unsigned long long)tm->version);
	}
	json_object_foreach(json_object_get(json_object_get(env, "signed"), "targets"), name, v)
	{
		const char *sha =
		        json_string_value(json_object_get(json_object_get(v, "hashes"), "sha256"));
		char dir[PATH_MAX], base[PATH_MAX], path[PATH_MAX * 2], *hex = NULL;
		struct tuf_file t = {name, NULL, 0};
		uint8_t *d = NULL, dg[32];
		size_t len = 0;
		if (sha == NULL || (r = target_path(s, p, tm->repo, name, sha, dir, sizeof(dir),
		                                    base, sizeof(base))) != 0)
			break;
		snprintf(path, sizeof(path), "%s/%s", dir, base);
		if (access(path, F_OK) == 0)
			continue;
		if ((r = store_doc_get(s->store, TUF_TARGET_NS, sha, 1, &d, &len, NULL)) ==
		    QS_ERR_NOT_FOUND) {
			qs_errclear();
			(*missing)++;
			r = 0;
			continue;
		}
		if (r != 0)
			break;
		qs_sha256(d, len, dg);
		if ((hex = qs_hex(dg, 32)) == NULL)
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
		else if (strcmp(hex, sha) != 0 ||
		         (json_int_t)len != json_integer_value(json_object_get(v, "length")))
			r = qs_fail(QS_ERR_DB,
			            "stored contents of %.80s do not match its target entry", name);
		t.data = d;
		t.len = len;
		if (r == 0)
			r = publish_target(s, p, tm->repo, &t, sha);
		free(hex);
		free(d);
		if (r != 0)
			break;
	}
	json_decref(env);
	return r;
}

/* Bring repo's published directory up to the store. */
static int
materialise_repo(struct server *s, const struct policy *p, const char *repo)
{
	struct out_file ts = {0}, root = {0}, snap = {0}, tm = {0};
	char path[PATH_MAX];
	uint64_t sv = 0, tv = 0;
	size_t missing = 0;
	int r;

	if ((r = stored_file(s, repo, "timestamp", 0, &ts)) != 0 ||
	    (r = stored_file(s, repo, "root", 0, &root)) != 0) {
		if (r == QS_ERR_NOT_FOUND) { /* not initialised */
			qs_errclear();
			r = 0;
		}
		goto out;
	}
	snprintf(path, sizeof(path), "%s/metadata/timestamp.json", repo_dir(s, p, repo));
	if (file_equals(path, (const uint8_t *)ts.data, ts.len)) {
		snprintf(path, sizeof(path), "%s/metadata/root.json", repo_dir(s, p, repo));
		if (file_equals(path, (const uint8_t *)root.data, root.len))
			goto out; /* up to date */
	}
	if ((r = meta_version(&ts, "snapshot.json", &sv)) != 0 ||
	    (r = stored_file(s, repo, "snapshot", sv, &snap)) != 0 ||
	    (r = meta_version(&snap, "targets.json", &tv)) != 0 ||
	    (r = stored_file(s, repo, "targets", tv, &tm)) != 0)
		goto out;
	/* As commit(): roots and targets first, then snapshot, then timestamp. */
	if ((r = put_roots(s, p, &root)) != 0 || (r = put_contents(s, p, &tm, &missing)) != 0 ||
	    (r = publish_file(s, p, &tm)) != 0 || (r = publish_file(s, p, &snap)) != 0 ||
	    (r = publish_file(s, p, &ts)) != 0)
		goto out;
	log_info("tuf.materialised",
	         "repo=%s root=%llu targets=%llu snapshot=%llu timestamp=%llu "
	         "contents_not_stored=%zu",
	         repo, (unsigned long long)root.version, (unsigned long long)tm.version,
	         (unsigned long long)snap.version, (unsigned long long)ts.version, missing);
out:
	free(ts.data);
	free(root.data);
	free(snap.data);
	free(tm.data);
	return r;
}

int
tuf_materialise(struct server *s, int start)
{
	struct policy *p;
	int r = 0;

	if (start)
		materialise_on = 1;
	else if (!materialise_on)
		return 0;
	p = server_policy(s);
	if (p->ext_tuf != NULL) {
		pthread_mutex_lock(&tuf_mu);
		/* One repository's failure leaves it as it was, and not the other.
		 * Logged at start and when it starts failing, not every second
		 * of a database outage. */
		for (size_t i = 0; i < 2; i++) {
			int rr;
			if (repo_dir(s, p, tuf_repos[i]) == NULL ||
			    (rr = materialise_repo(s, p, tuf_repos[i])) == 0) {
				failing[i] = 0;
				continue;
			}
			if (start || !failing[i])
				log_error("tuf.materialise", "repo=%s detail=\"%s\"", tuf_repos[i],
				          qs_errdetail());
			failing[i] = 1;
			if (r == 0)
				r = rr;
		}
		pthread_mutex_unlock(&tuf_mu);
	}
	policy_unref(p);
	return r;
}
