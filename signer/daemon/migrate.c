#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "audit.h"
#include "fault.h"
#include "merkle.h"
#include "qs_err.h"
#include "sigindex.h"
#include "statement.h"
#include "store.h"
#include "tlog.h"

#define LOG_BATCH 1000 /* audit entries per store_import_log */

/* Forwards what the old store dumps to the new one's import, counting. */
struct copy {
	struct store *dst;
	const struct store_sink *to;
	uint64_t policies, sigs, requests, docs;
};

static int
copy_policy(void *arg, uint64_t version, const char *text)
{
	struct copy *c = arg;

	c->policies++;
	return c->to->policy(c->dst, version, text);
}

static int
copy_signatures(void *arg, const struct store_sig *sigs, size_t n)
{
	struct copy *c = arg;

	c->sigs += n;
	return c->to->signatures(c->dst, sigs, n);
}

static int
copy_request(void *arg, const struct store_request *r)
{
	struct copy *c = arg;

	c->requests++;
	return c->to->request(c->dst, r);
}

static int
copy_doc(void *arg, const char *ns, const char *name, uint64_t version, const uint8_t *data,
         size_t len)
{
	struct copy *c = arg;

	c->docs++;
	return c->to->doc(c->dst, ns, name, version, data, len);
}

static const struct store_sink copy_sink = {
        .policy = copy_policy,
        .signatures = copy_signatures,
        .request = copy_request,
        .doc = copy_doc,
};

/* The committed entries of log, verbatim and in order, into dst's import. */
static int
copy_log(struct tlog *log, uint64_t size, struct store *dst)
{
	struct store_log_rec recs[LOG_BATCH];
	uint8_t *bufs[LOG_BATCH];
	size_t n = 0;
	int r = 0;

	for (uint64_t i = 0; i < size && r == 0; i++) {
		size_t len = 0;
		if ((r = tlog_entry(log, i, &bufs[n], &len)) != 0)
			break;
		recs[n].data = bufs[n];
		recs[n].len = len;
		n++;
		if (n == LOG_BATCH || i + 1 == size) {
			r = store_import_log(dst, i + 1 - n, recs, n);
			while (n > 0)
				free(bufs[--n]);
		}
	}
	while (n > 0)
		free(bufs[--n]);
	return r;
}

/* Open the copy as a replica would (entries against the signed
 * checkpoint) and compare it with what was copied. */
static int
verify_copy(const struct config *cfg, struct keyring *kr, struct store *dst, uint64_t size,
            const char *note, size_t note_len, uint64_t policy_version, uint64_t sigs)
{
	struct audit *au = NULL;
	char *got = NULL;
	size_t got_len = 0;
	uint64_t v = 0, n = 0;
	int r;

	if ((r = audit_open(cfg, kr, dst, &au)) != 0)
		return qs_wrap(r, "the copied audit log does not open");
	if ((r = tlog_checkpoint(audit_tlog(au), &got, &got_len)) != 0)
		goto out;
	if (tlog_size(audit_tlog(au)) != size || got_len != note_len ||
	    memcmp(got, note, note_len) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the copied audit log has %llu entries and another checkpoint than "
		            "the source's %llu",
		            (unsigned long long)tlog_size(audit_tlog(au)),
		            (unsigned long long)size);
		goto out;
	}
	if ((r = store_policy_version(dst, &v)) != 0 || (r = store_count_signatures(dst, &n)) != 0)
		goto out;
	if (v != policy_version || n != sigs)
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the copy has policy version %llu and %llu signatures, the source %llu "
		            "and %llu",
		            (unsigned long long)v, (unsigned long long)n,
		            (unsigned long long)policy_version, (unsigned long long)sigs);
out:
	free(got);
	audit_close(au);
	return r;
}

/* The directories that get the marker: the state's, and the audit log's
 * when it is elsewhere (the log is what must not be extended, and a
 * configuration can name the same log with another state_dir). */
static size_t
marker_dirs(const struct config *cfg, const char *dirs[2])
{
	size_t n = 0;

	dirs[n++] = cfg->state_dir;
	if (cfg->audit_dir != NULL && strcmp(cfg->audit_dir, cfg->state_dir) != 0)
		dirs[n++] = cfg->audit_dir;
	return n;
}

int
migrate_check_source(const struct config *cfg)
{
	const char *dirs[2];
	char path[4096];
	size_t n;

	if (cfg->store_pg != NULL)
		return 0;
	n = marker_dirs(cfg, dirs);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/" MIGRATE_MARKER, dirs[i]);
		if (access(path, F_OK) != 0)
			continue;
		return qs_fail(QS_ERR_PRECONDITION,
		               "this state was moved to PostgreSQL (%s says when): the replicas "
		               "on PostgreSQL carry its audit log on, and a qsignd on this copy "
		               "would write a second history under the same log key. Use the "
		               "configuration with \"store\": {\"postgresql\": ...}; remove %s "
		               "only to go back to this state on purpose",
		               path, path);
	}
	return 0;
}

/* The marker: what was moved, and when. Written just before the COMMIT,
 * so that no interruption (kill -9, Ctrl-C during the check of the copy,
 * a COMMIT whose outcome the connection did not tell) can leave a
 * committed copy beside an unmarked source that a qsignd would extend. */
static int
write_marker(const struct config *cfg, uint64_t size, const char *root_hex)
{
	char path[4096], text[1024], stamp[32];
	const char *dirs[2];
	time_t now = time(NULL);
	struct tm tm;
	size_t nd;
	int n, r;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(text, sizeof(text),
	             "This state and its audit log (%llu entries, root %s) were moved to "
	             "PostgreSQL by qsignd migrate-store at %s.\nqsignd refuses to start on "
	             "them: the replicas on PostgreSQL carry the log on.\n(Written just "
	             "before the database's COMMIT: if migrate-store did not report the move "
	             "and the database holds no quorum-signer state, remove this file and run "
	             "it again; the state directory and the audit log's each hold one.)\n",
	             (unsigned long long)size, root_hex, stamp);
	nd = marker_dirs(cfg, dirs);
	for (size_t i = 0; i < nd; i++) {
		snprintf(path, sizeof(path), "%s/" MIGRATE_MARKER, dirs[i]);
		if ((r = qs_write_atomic(path, text,
		                         (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1,
		                         0600)) != 0)
			return r;
	}
	return 0;
}

int
migrate_store(const struct config *cfg, struct keyring *kr, const char *conninfo)
{
	struct store *src = NULL, *dst = NULL;
	struct audit *au = NULL;
	struct copy c = {0};
	char path[4096], *note = NULL, *root_hex = NULL;
	size_t note_len = 0;
	uint64_t size, pv = 0, nsigs = 0;
	qs_hash root;
	int r, importing = 0;

	if (cfg->store_pg != NULL)
		return qs_fail(
		        QS_ERR_PRECONDITION,
		        "the configuration's state is in PostgreSQL already (\"store\"); give "
		        "the configuration of the single-host (SQLite) deployment");
	if ((r = migrate_check_source(cfg)) != 0)
		return r;
	snprintf(path, sizeof(path), "%s/state.db", cfg->state_dir);
	if (access(path, F_OK) != 0)
		return qs_fail(QS_ERR_NOT_FOUND, "no state to migrate: %s does not exist", path);
	if ((r = tlog_dir_checkpoint(cfg->audit_dir, &note, &note_len)) != 0)
		return qs_wrap(r, "no audit log to migrate in %s", cfg->audit_dir);
	free(note);
	note = NULL;
	/* 1. The source log, verified as qsignd verifies it at start (every
	 * entry against the signed checkpoint), locked: a running qsignd
	 * holds that lock, and none can start while the copy runs. */
	if ((r = audit_open(cfg, kr, NULL, &au)) != 0) {
		if (r == QS_ERR_PRECONDITION && strstr(qs_errdetail(), "in use") != NULL)
			r = qs_wrap(r, "is qsignd running on %s? stop it first", cfg->state_dir);
		else
			r = qs_wrap(r, "the source audit log does not verify: nothing was copied");
		goto out;
	}
	/* 2. The source state, its signature index caught up with the log
	 * (as qsignd does at start: a kill -9 may have left it behind). */
	if ((r = store_open_sqlite(cfg->state_dir, &src)) != 0 ||
	    (r = sigindex_catch_up(src, audit_tlog(au))) != 0 ||
	    (r = store_policy_version(src, &pv)) != 0 ||
	    (r = store_count_signatures(src, &nsigs)) != 0)
		goto out;
	if ((r = tlog_checkpoint(audit_tlog(au), &note, &note_len)) != 0)
		goto out;
	size = tlog_size(audit_tlog(au));
	/* 3. The target, in one transaction that refuses any existing state. */
	if ((r = store_open_pg(conninfo, 1, &dst)) != 0) {
		r = qs_wrap(r, "target");
		goto out;
	}
	if ((r = store_import_begin(dst)) != 0)
		goto out;
	importing = 1;
	c.dst = dst;
	c.to = store_import_sink(dst);
	if ((r = store_dump(src, &copy_sink, &c)) != 0 ||
	    (r = copy_log(audit_tlog(au), size, dst)) != 0)
		goto out;
	if ((r = tlog_root(audit_tlog(au), size, root)) != 0 ||
	    (root_hex = qs_hex(root, sizeof(root))) == NULL) {
		r = r ? r : qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* 4. The source marked as moved, then the COMMIT. */
	if ((r = write_marker(cfg, size, root_hex)) != 0) {
		r = qs_wrap(r, "the old state cannot be marked as moved: nothing was copied");
		goto out;
	}
	importing = 0;
	if ((r = store_import_commit(dst, size, note, note_len)) != 0) {
		r = qs_wrap(r,
		            "%s/" MIGRATE_MARKER " (and the audit log directory's) stays: if the "
		            "database holds no quorum-signer state, remove them and run "
		            "migrate-store again",
		            cfg->state_dir);
		goto out;
	}
	qs_fault_crash("migrate.after_commit");
	/* 5. The copy, as a replica will see it. */
	if ((r = verify_copy(cfg, kr, dst, size, note, note_len, pv, nsigs)) != 0) {
		r = qs_wrap(r, "the migrated copy does not match its source");
		goto out;
	}
	printf("migrate-store: %s into PostgreSQL: %llu policy versions, %llu signature records, "
	       "%llu requests, %llu documents, audit log of %llu entries (root %s), its signed "
	       "checkpoint unchanged; verified\n",
	       cfg->state_dir, (unsigned long long)c.policies, (unsigned long long)c.sigs,
	       (unsigned long long)c.requests, (unsigned long long)c.docs, (unsigned long long)size,
	       root_hex);
out:
	if (importing)
		store_import_abort(dst);
	free(note);
	free(root_hex);
	audit_close(au);
	store_close(dst);
	store_close(src);
	return r;
}
