#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "atomic_file.h"
#include "merkle.h"
#include "note.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"
#include "tlog.h"

#define MAGIC_LEN 8           /* signer/audit/tlog.h: the entries file header */
#define CKPT_FLAG 0x80000000u /* signer/audit/tlog.h: a checkpoint record */

static int
read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd;

	*out = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || (size_t)st.st_size > max) {
		close(fd);
		return qs_fail(QS_ERR_IO, "%s: unreadable or too large", path);
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return 0;
}

/* Size and root of a checkpoint note (signature not checked here: the
 * daemon checks it when it opens the restored log). */
static int
note_checkpoint(const uint8_t *note, size_t len, struct qs_checkpoint *cp)
{
	const char *end = strstr((const char *)note, "\n\n");

	if (end == NULL || len > QS_MAX_NOTE)
		return qs_fail(QS_ERR_PRECONDITION, "checkpoint is not a signed note");
	return qs_checkpoint_parse((const char *)note, (size_t)(end - (const char *)note) + 1, NULL,
	                           cp);
}

/* Recompute the root of the first `size` entry records of an entries file
 * (format 1 or 2: checkpoint records are skipped). */
static int
entries_root(const uint8_t *buf, size_t len, uint64_t size, qs_hash root, size_t *used)
{
	qs_hash *leaves = NULL;
	size_t off = MAGIC_LEN;
	int r;

	if (tlog_file_version(buf, len) == 0)
		return qs_fail(QS_ERR_PRECONDITION, "entries: not an audit log");
	if (size > len / 9 + 1)
		return qs_fail(QS_ERR_PRECONDITION, "entries: shorter than the checkpoint");
	if ((leaves = calloc(size + 1, sizeof(*leaves))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (uint64_t i = 0; i < size;) {
		uint32_t n;
		if (off + 8 > len) {
			free(leaves);
			return qs_fail(QS_ERR_PRECONDITION,
			               "entries: %llu records, checkpoint says %llu",
			               (unsigned long long)i, (unsigned long long)size);
		}
		n = (uint32_t)buf[off] << 24 | (uint32_t)buf[off + 1] << 16 |
		    (uint32_t)buf[off + 2] << 8 | buf[off + 3];
		if ((n & CKPT_FLAG) != 0 && (n & ~CKPT_FLAG) != 0 &&
		    off + 8 + (size_t)(n & ~CKPT_FLAG) <= len) {
			off += 8 + (size_t)(n & ~CKPT_FLAG); /* a checkpoint record */
			continue;
		}
		if (n == 0 || n > QS_MAX_AUDIT_ENTRY || off + 8 + (size_t)n > len) {
			free(leaves);
			return qs_fail(QS_ERR_PRECONDITION, "entries: record %llu truncated",
			               (unsigned long long)i);
		}
		qs_merkle_leaf_hash(buf + off + 4, n, leaves[i++]);
		off += 8 + (size_t)n;
	}
	r = qs_merkle_root_of(leaves, size, root);
	free(leaves);
	*used = off;
	return r;
}

/*
 * The checkpoint of a log whose entries file's bytes are ents: in format 2
 * its last checkpoint record (*end: the bytes up to it), in format 1 the
 * file ckpt_path (*end 0: the caller counts). *note is malloc'd and
 * NUL-terminated.
 */
static int
log_checkpoint(const uint8_t *ents, size_t ents_len, const char *ckpt_path, uint8_t **note,
               size_t *note_len, size_t *end)
{
	const char *n;

	*end = 0;
	if (tlog_file_version(ents, ents_len) != 2)
		return read_file(ckpt_path, QS_MAX_NOTE, note, note_len);
	if (tlog_file_checkpoint(ents, ents_len, &n, note_len, end) != 0)
		return QS_ERR_PRECONDITION;
	if ((*note = malloc(*note_len + 1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(*note, n, *note_len);
	(*note)[*note_len] = '\0';
	return 0;
}

static char *
sha256_hex_of(const uint8_t *d, size_t n)
{
	uint8_t dg[32];

	qs_sha256(d, n, dg);
	return qs_hex(dg, 32);
}

int
backup_create(const struct config *cfg, const char *dir)
{
	char src[4096], dst[4096];
	sqlite3 *from = NULL, *to = NULL;
	sqlite3_backup *bk = NULL;
	uint8_t *note = NULL, *ents = NULL, *db = NULL;
	size_t note_len = 0, ents_len = 0, db_len = 0, used = 0, end = 0;
	struct qs_checkpoint cp;
	qs_hash root;
	json_t *man = NULL;
	char *mtext = NULL, *h1 = NULL, *h2 = NULL, *h3 = NULL, *rh = NULL;
	int r;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return qs_fail(QS_ERR_IO, "mkdir %s: %s", dir, strerror(errno));
	snprintf(dst, sizeof(dst), "%s/MANIFEST.json", dir);
	if (access(dst, F_OK) == 0)
		return qs_fail(QS_ERR_EXISTS, "%s already holds a backup", dir);
	snprintf(dst, sizeof(dst), "%s/audit", dir);
	if (mkdir(dst, 0700) != 0 && errno != EEXIST)
		return qs_fail(QS_ERR_IO, "mkdir %s: %s", dst, strerror(errno));

	/* 1. The database, consistent, while the daemon writes. */
	snprintf(src, sizeof(src), "%s/state.db", cfg->state_dir);
	snprintf(dst, sizeof(dst), "%s/state.db", dir);
	if (sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	            SQLITE_OK) {
		r = qs_fail(QS_ERR_DB, "open %s: %s", src, from ? sqlite3_errmsg(from) : "?");
		goto out;
	}
	sqlite3_busy_timeout(from, 10000);
	if ((bk = sqlite3_backup_init(to, "main", from, "main")) == NULL) {
		r = qs_fail(QS_ERR_DB, "backup %s: %s", src, sqlite3_errmsg(to));
		goto out;
	}
	while ((r = sqlite3_backup_step(bk, -1)) == SQLITE_BUSY || r == SQLITE_LOCKED)
		sqlite3_sleep(50);
	if (r != SQLITE_DONE) {
		r = qs_fail(QS_ERR_DB, "backup %s: %s", src, sqlite3_errstr(r));
		goto out;
	}
	sqlite3_backup_finish(bk);
	bk = NULL;
	sqlite3_close(to);
	to = NULL;
	/* 2. The log, after the database: its last checkpoint covers
	 * everything in the db (format 2: the last checkpoint record of the
	 * entries file; format 1, a log no daemon opened since: its file). */
	snprintf(src, sizeof(src), "%s/entries", cfg->audit_dir);
	if ((r = read_file(src, (size_t)1 << 40, &ents, &ents_len)) != 0)
		goto out;
	snprintf(src, sizeof(src), "%s/checkpoint", cfg->audit_dir);
	if ((r = log_checkpoint(ents, ents_len, src, &note, &note_len, &end)) != 0 ||
	    (r = note_checkpoint(note, note_len, &cp)) != 0 ||
	    (r = entries_root(ents, end ? end : ents_len, cp.size, root, &used)) != 0)
		goto out;
	if (end != 0)
		used = end; /* through the checkpoint record */
	if (memcmp(root, cp.root, sizeof(root)) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the copied audit log does not match its checkpoint root");
		goto out;
	}
	snprintf(dst, sizeof(dst), "%s/audit/checkpoint", dir);
	if ((r = qs_write_atomic(dst, note, note_len, 0600)) != 0)
		goto out;
	snprintf(dst, sizeof(dst), "%s/audit/entries", dir);
	if ((r = qs_write_atomic(dst, ents, used, 0600)) != 0) /* only what the checkpoint covers */
		goto out;
	snprintf(dst, sizeof(dst), "%s/state.db", dir);
	if ((r = read_file(dst, (size_t)1 << 40, &db, &db_len)) != 0)
		goto out;
	h1 = sha256_hex_of(db, db_len);
	h2 = sha256_hex_of(note, note_len);
	h3 = sha256_hex_of(ents, used);
	rh = qs_hex(root, sizeof(root));
	man = json_pack("{s:s,s:s,s:I,s:I,s:s,s:{s:s,s:s,s:s}}", "format", "quorum-signer backup 1",
	                "identity", cfg->identity, "created", (json_int_t)time(NULL), "audit_size",
	                (json_int_t)cp.size, "audit_root", rh ? rh : "", "sha256", "state.db",
	                h1 ? h1 : "", "audit/checkpoint", h2 ? h2 : "", "audit/entries",
	                h3 ? h3 : "");
	if (man == NULL || (mtext = json_dumps(man, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	snprintf(dst, sizeof(dst), "%s/MANIFEST.json", dir);
	r = qs_write_atomic(dst, (const uint8_t *)mtext, strlen(mtext), 0600);
	if (r == 0)
		printf("backup: %s: state.db, audit log of %llu entries (root %s)\n", dir,
		       (unsigned long long)cp.size, rh);
out:
	if (bk != NULL)
		sqlite3_backup_finish(bk);
	sqlite3_close(from);
	sqlite3_close(to);
	free(note);
	free(ents);
	free(db);
	free(h1);
	free(h2);
	free(h3);
	free(rh);
	free(mtext);
	json_decref(man);
	return r;
}

/* Copy src to dst (0600) when src exists; *copied counts the copies. */
static int
keep_file(const char *src, const char *dst, int *copied)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int r;

	if (access(src, F_OK) != 0)
		return 0;
	if ((r = read_file(src, (size_t)1 << 40, &b, &n)) == 0 &&
	    (r = qs_write_atomic(dst, b, n, 0600)) == 0)
		(*copied)++;
	free(b);
	return r;
}

/*
 * Before a restore replaces state: copy what is there (state.db with its
 * WAL, the audit log) into STATE_DIR.replaced-<UTC time> beside the state
 * directory, so that a restore (a forced rollback above all) can be undone.
 * *kept is that directory when something was copied, else "". Copies, not
 * renames: audit.dir may be on another file system.
 */
static int
keep_replaced(const struct config *cfg, char *kept, size_t cap)
{
	static const char *const dbf[] = {"state.db", "state.db-wal", "state.db-shm"};
	static const char *const auf[] = {"entries", "checkpoint"};
	char src[4096], dst[4096], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int r = 0, copied = 0;
	size_t l = strlen(cfg->state_dir);

	kept[0] = '\0';
	while (l > 1 && cfg->state_dir[l - 1] == '/')
		l--;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* Two restores in one second: the second gets a copy of its own. */
	for (int i = 1; i == 1 || (i < 100 && access(kept, F_OK) == 0); i++) {
		if (i == 1)
			snprintf(kept, cap, "%.*s.replaced-%s", (int)l, cfg->state_dir, stamp);
		else
			snprintf(kept, cap, "%.*s.replaced-%s.%d", (int)l, cfg->state_dir, stamp,
			         i);
	}
	snprintf(src, sizeof(src), "%s/state.db", cfg->state_dir);
	snprintf(dst, sizeof(dst), "%s/checkpoint", cfg->audit_dir);
	if (access(src, F_OK) != 0 && access(dst, F_OK) != 0) {
		kept[0] = '\0'; /* a fresh state directory: nothing replaced */
		return 0;
	}
	snprintf(dst, sizeof(dst), "%s/audit", kept);
	if (mkdir(kept, 0700) != 0 || mkdir(dst, 0700) != 0) {
		r = qs_fail(QS_ERR_IO,
		            "mkdir %s: %s: the state to replace cannot be kept, nothing "
		            "restored",
		            kept, strerror(errno));
		kept[0] = '\0';
		return r;
	}
	for (size_t i = 0; r == 0 && i < sizeof(dbf) / sizeof(dbf[0]); i++) {
		snprintf(src, sizeof(src), "%s/%s", cfg->state_dir, dbf[i]);
		snprintf(dst, sizeof(dst), "%s/%s", kept, dbf[i]);
		r = keep_file(src, dst, &copied);
	}
	for (size_t i = 0; r == 0 && i < sizeof(auf) / sizeof(auf[0]); i++) {
		snprintf(src, sizeof(src), "%s/%s", cfg->audit_dir, auf[i]);
		snprintf(dst, sizeof(dst), "%s/audit/%s", kept, auf[i]);
		r = keep_file(src, dst, &copied);
	}
	if (r != 0)
		return qs_wrap(r, "keeping the state to replace in %s failed: nothing restored",
		               kept);
	return 0;
}

int
backup_restore(const struct config *cfg, const char *dir, int force)
{
	char path[4096], cur[4096], kept[4096];
	uint8_t *note = NULL, *ents = NULL, *db = NULL, *curnote = NULL, *mtext = NULL;
	size_t note_len = 0, ents_len = 0, db_len = 0, curnote_len = 0, used = 0, mlen = 0;
	size_t end = 0, curend = 0, curents_len = 0, last_len = 0;
	uint8_t *curents = NULL;
	const char *last = NULL;
	struct qs_checkpoint cp, curcp;
	json_t *man = NULL;
	qs_hash root;
	int r, lockfd = -1;

	snprintf(path, sizeof(path), "%s/MANIFEST.json", dir);
	if ((r = read_file(path, 1 << 20, &mtext, &mlen)) != 0)
		return qs_wrap(r, "not a backup");
	if ((man = json_loads((const char *)mtext, 0, NULL)) == NULL ||
	    json_string_value(json_object_get(man, "format")) == NULL ||
	    strcmp(json_string_value(json_object_get(man, "format")), "quorum-signer backup 1") !=
	            0) {
		r = qs_fail(QS_ERR_INVALID, "%s: not a quorum-signer backup", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/audit/checkpoint", dir);
	if ((r = read_file(path, QS_MAX_NOTE, &note, &note_len)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/audit/entries", dir);
	if ((r = read_file(path, (size_t)1 << 40, &ents, &ents_len)) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/state.db", dir);
	if ((r = read_file(path, (size_t)1 << 40, &db, &db_len)) != 0)
		goto out;
	if (tlog_file_version(ents, ents_len) == 2 &&
	    (r = tlog_file_checkpoint(ents, ents_len, &last, &last_len, &end)) != 0)
		goto out;
	if (end != 0 && (last_len != note_len || memcmp(last, note, note_len) != 0)) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "backup audit/checkpoint is not the last checkpoint of audit/entries");
		goto out;
	}
	if ((r = note_checkpoint(note, note_len, &cp)) != 0 ||
	    (r = entries_root(ents, end ? end : ents_len, cp.size, root, &used)) != 0)
		goto out;
	if (memcmp(root, cp.root, sizeof(root)) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION, "backup audit log does not match its checkpoint");
		goto out;
	}
	if (end != 0)
		used = end; /* through the checkpoint record */
	/* The running daemon holds an exclusive lock on its log. */
	snprintf(cur, sizeof(cur), "%s/entries", cfg->audit_dir);
	if ((lockfd = open(cur, O_RDONLY | O_CLOEXEC)) >= 0 &&
	    flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION, "qsignd is running on %s: stop it first",
		            cfg->state_dir);
		goto out;
	}
	snprintf(cur, sizeof(cur), "%s/entries", cfg->audit_dir);
	if (read_file(cur, (size_t)1 << 40, &curents, &curents_len) != 0)
		curents_len = 0;
	snprintf(cur, sizeof(cur), "%s/checkpoint", cfg->audit_dir);
	if (log_checkpoint(curents, curents_len, cur, &curnote, &curnote_len, &curend) == 0 &&
	    note_checkpoint(curnote, curnote_len, &curcp) == 0 && curcp.size > cp.size && !force) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the current audit log has %llu entries, the backup %llu: restoring "
		            "would roll the log back, and every auditor who verified a newer "
		            "checkpoint will report it (qsign audit verify: \"log rolled back\"). "
		            "Use --force only if that is what you mean",
		            (unsigned long long)curcp.size, (unsigned long long)cp.size);
		goto out;
	}
	if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
		r = qs_fail(QS_ERR_IO, "mkdir %s: %s", cfg->state_dir, strerror(errno));
		goto out;
	}
	if (mkdir(cfg->audit_dir, 0700) != 0 && errno != EEXIST) {
		r = qs_fail(QS_ERR_IO, "mkdir %s: %s", cfg->audit_dir, strerror(errno));
		goto out;
	}
	if ((r = keep_replaced(cfg, kept, sizeof(kept))) != 0)
		goto out;
	if (kept[0] != '\0')
		printf("restore: the state it replaces is kept in %s (state.db, audit/): to undo, "
		       "stop qsignd and copy them back\n",
		       kept);
	snprintf(cur, sizeof(cur), "%s/state.db-wal", cfg->state_dir);
	unlink(cur);
	snprintf(cur, sizeof(cur), "%s/state.db-shm", cfg->state_dir);
	unlink(cur);
	snprintf(cur, sizeof(cur), "%s/state.db", cfg->state_dir);
	if ((r = qs_write_atomic(cur, db, db_len, 0600)) != 0)
		goto out;
	snprintf(cur, sizeof(cur), "%s/entries", cfg->audit_dir);
	if ((r = qs_write_atomic(cur, ents, used, 0600)) != 0)
		goto out;
	/* Format 1 keeps its checkpoint in a file (the daemon migrates it at
	 * start); format 2 has it inside the entries: no file to trust. */
	snprintf(cur, sizeof(cur), "%s/checkpoint", cfg->audit_dir);
	if (end == 0 && (r = qs_write_atomic(cur, note, note_len, 0600)) != 0)
		goto out;
	if (end != 0 && unlink(cur) != 0 && errno != ENOENT) {
		r = qs_fail(QS_ERR_IO, "unlink %s: %s", cur, strerror(errno));
		goto out;
	}
	printf("restore: %s into %s: audit log of %llu entries\n", dir, cfg->state_dir,
	       (unsigned long long)cp.size);
	r = 0;
out:
	if (lockfd >= 0)
		close(lockfd);
	free(note);
	free(ents);
	free(db);
	free(curnote);
	free(curents);
	free(mtext);
	json_decref(man);
	return r;
}
