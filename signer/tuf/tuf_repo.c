/*
 * The TUF repositories: build, sign, audit, store, publish. See tuf.h for
 * the model. Every change goes through one batch: files are built and
 * signed in memory, the batch is audited with the hash of every file, the
 * documents are stored, and the files are published (timestamp.json last,
 * so a client never sees a timestamp that names a snapshot not yet there).
 *
 * This file holds the request flow (promote, prepared requests and their
 * execution, CI pushes, the refresh timer and review); the sections it is
 * built from live in tuf_build.c, tuf_publish.c, tuf_external.c and
 * tuf_root.c behind tuf_internal.h.
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

/* All changes to the repositories, from requests, pushes and the timer. */
pthread_mutex_t tuf_mu = PTHREAD_MUTEX_INITIALIZER;

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

int
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

int
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
int
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
		if ((r = sign_doc(s, rq, d, &env, &missing)) != 0)
			goto out;
		if (missing > 0) {
			waiting++;
			if (missing > short_by)
				short_by = missing;
			continue;
		}
		json_object_foreach(json_object_get(d, "sigs"), x, v)
		{
			json_array_append_new(
			        ext,
			        json_pack("{s:s, s:s, s:s}", "keyid", x, "repo",
			                  json_string_value(json_object_get(d, "repo")), "role",
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
				b.promoted =
				        json_object_get(json_object_get(d, "signed"), "targets");
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
			tvs[i] = stored_version(s, tuf_repos[i], "targets");
		if ((r = add_snap_ts(s, p, &b, st, tuf_repos[i], tvs[i])) != 0)
			goto out;
	}
	if ((r = commit(s, p, &b,
	                init   ? "tuf.init"
	                : root ? "tuf.root"
	                       : "tuf.promote",
	                json_pack("{s:s, s:O*, s:I, s:O}", "request", rq->id, "change",
	                          json_object_get(prep, "change"), "root_version",
	                          (json_int_t)(init   ? 1
	                                       : root ? ver + 1
	                                              : ver),
	                          "external_signatures", ext))) != 0)
		goto out;
result:
	if (init)
		res = json_pack("{s:s, s:I}", "tuf", "initialised", "root_version", (json_int_t)1);
	else if (root)
		res = json_pack("{s:I, s:O*}", "root_version",
		                json_integer_value(
		                        json_object_get(json_object_get(prep, "state"), "version")),
		                "new_key", json_object_get(prep, "generated"));
	else
		res = json_pack(
		        "{s:I}", "targets_version",
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
	if (strcmp(rq->kind, "tuf-root") == 0 && !gate_is(p, ro, "admin"))
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
	if ((r = add_targets(s, &b, st, "ci", ctv + 1, role_expiry(p, st, "targets"), targets)) !=
	            0 ||
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
		if ((r = current_signed(s, tuf_repos[i], "snapshot", &snap, &sv)) != 0 ||
		    (r = current_signed(s, tuf_repos[i], "timestamp", &ts, &tsv)) != 0 ||
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
			r = add_snap_ts(s, p, &b, st, tuf_repos[i], (uint64_t)tv);
		} else if (te - now < margin) {
			uint8_t *d = NULL;
			size_t len = 0;
			if ((r = tuf_get(s, tuf_repos[i], "snapshot", sv, &d, &len, NULL)) == 0)
				r = add_timestamp(s, p, &b, st, tuf_repos[i], tsv + 1,
				                  (const char *)d, len, sv);
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
		const char *rr = tuf_repo_role(tuf_repos[i], "root");
		if (st_nkeys(st, rr) < 3)
			finding(a, "warning", "%s root has %zu key(s): keep at least 3, held apart",
			        tuf_repos[i], st_nkeys(st, rr));
		if (st_threshold(st, rr) < 2)
			finding(a, "warning",
			        "%s root threshold is %lld: one stolen key rewrites trust; use >= "
			        "2",
			        tuf_repos[i], (long long)st_threshold(st, rr));
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
			json_t *cur =
			        role_keyids(s, st, tuf_repo_role(tuf_repos[ri], "root"), NULL, &r);
			json_array_foreach(init, i, id)
			{
				size_t j;
				json_t *c;
				json_array_foreach(cur, j, c) if (json_equal(c, id))
				        finding(a, "warning",
				                "the initial root key %.16s... is still trusted by "
				                "%s after "
				                "%llu root versions: rotate it out",
				                json_string_value(id), tuf_repos[ri],
				                (unsigned long long)rv);
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
					finding(a, "error",
					        "%s key %s is not in any opened token: %s", rn,
					        json_string_value(u), qs_errdetail());
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
						        "key %.16s... is shared by the CI and "
						        "production "
						        "repositories (roles %s and %s): a "
						        "production "
						        "client would trust what it signs for CI; "
						        "give "
						        "production keys of its own with `qsign "
						        "tuf "
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
			if (current_signed(s, tuf_repos[i], kinds[k], &sp, &x) != 0)
				continue;
			if (tuf_time_parse(json_string_value(json_object_get(sp, "expires")),
			                   &exp) == 0 &&
			    exp - now < 30 * 86400 && strcmp(kinds[k], "snapshot") != 0)
				finding(a, exp <= now ? "error" : "warning", "%s %s expires %s",
				        tuf_repos[i], kinds[k],
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
