#include "tlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "qs_err.h"
#include "qs_limits.h"

#define MAGIC "QSTLOG1\n"
#define MAGIC_LEN 8
#define REC_OVERHEAD 8 /* u32 length + u32 checksum */
#define ENTRIES "entries"
#define CHECKPOINT "checkpoint"
#define CHECKPOINT_TMP "checkpoint.tmp"

/* One tlog_append call waiting for the writer. Lives on the caller's stack. */
struct req {
	const struct tlog_rec *recs;
	size_t n;
	size_t bytes; /* record bytes on disk */
	uint64_t first;
	int result;
	int done;
	char detail[QS_ERRDETAIL_MAX];
	struct req *next;
};

struct tlog {
	int dirfd;
	int fd; /* entries, flock'ed */
	char origin[QS_MAX_ORIGIN + 1];
	struct qs_note_signer signer;

	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* writer waits for requests */
	pthread_cond_t done_cv; /* callers wait for their batch */
	pthread_t writer;
	int writer_started;
	int stopping;
	struct req *head, *tail;

	/* Under mu. The tree and offsets hold exactly `committed` leaves
	 * whenever mu is free, except while the writer is between appending a
	 * batch and committing or undoing it (readers never look past
	 * `committed`, and nodes below it never change). */
	struct qs_merkle_tree *tree;
	uint64_t *offsets; /* file offset of each record */
	uint64_t offsets_cap;
	uint64_t committed;
	char *ckpt; /* latest durable signed checkpoint */
	size_t ckpt_len;
	struct tlog_stats stats;

	/* The entries' fdatasync runs on its own thread while the writer
	 * signs the checkpoint (which needs no durability, only the tree):
	 * the token's signature, a round trip to a signer helper, is then off
	 * the commit's critical path. Under smu. */
	pthread_t syncer;
	int syncer_started;
	pthread_mutex_t smu;
	pthread_cond_t scv;
	int sync_req, sync_done, sync_errno, sync_stop;

	/* Writer thread only (and open/close). */
	uint64_t file_len; /* bytes of the committed prefix of entries */
	int trunc_pending; /* entries may hold bytes past file_len */
	int ckpt_pending;  /* the checkpoint file may not be `ckpt` */
};

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int
pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, buf, len, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int
pread_all(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = pread(fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO; /* short file: cannot happen below file_len */
			return -1;
		}
		buf += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Replace the checkpoint file atomically and durably. */
static int
write_checkpoint(struct tlog *log, const char *note, size_t len)
{
	int fd, r;

	fd = openat(log->dirfd, CHECKPOINT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return qs_fail(QS_ERR_IO, "create %s: %s", CHECKPOINT_TMP, strerror(errno));
	if (pwrite_all(fd, (const uint8_t *)note, len, 0) != 0 || fsync(fd) != 0) {
		r = qs_fail(QS_ERR_IO, "write %s: %s", CHECKPOINT_TMP, strerror(errno));
		close(fd);
		unlinkat(log->dirfd, CHECKPOINT_TMP, 0);
		return r;
	}
	if (close(fd) != 0) {
		r = qs_fail(QS_ERR_IO, "close %s: %s", CHECKPOINT_TMP, strerror(errno));
		unlinkat(log->dirfd, CHECKPOINT_TMP, 0);
		return r;
	}
	if (renameat(log->dirfd, CHECKPOINT_TMP, log->dirfd, CHECKPOINT) != 0) {
		r = qs_fail(QS_ERR_IO, "rename %s: %s", CHECKPOINT_TMP, strerror(errno));
		unlinkat(log->dirfd, CHECKPOINT_TMP, 0);
		return r;
	}
	if (fsync(log->dirfd) != 0) {
		/* The rename may or may not be durable: the caller must treat
		 * the checkpoint file as unknown. */
		return qs_fail(QS_ERR_IO, "fsync audit directory: %s", strerror(errno));
	}
	return 0;
}

static void *
syncer_main(void *arg)
{
	struct tlog *log = arg;

	pthread_mutex_lock(&log->smu);
	for (;;) {
		int e;
		while (!log->sync_req && !log->sync_stop)
			pthread_cond_wait(&log->scv, &log->smu);
		if (!log->sync_req)
			break;
		log->sync_req = 0;
		pthread_mutex_unlock(&log->smu);
		e = fdatasync(log->fd) != 0 ? errno : 0;
		pthread_mutex_lock(&log->smu);
		log->sync_errno = e;
		log->sync_done = 1;
		pthread_cond_broadcast(&log->scv);
	}
	pthread_mutex_unlock(&log->smu);
	return NULL;
}

/* Start the entries' fdatasync (writer thread). */
static void
sync_start(struct tlog *log)
{
	pthread_mutex_lock(&log->smu);
	log->sync_done = 0;
	log->sync_req = 1;
	pthread_cond_broadcast(&log->scv);
	pthread_mutex_unlock(&log->smu);
}

/* Wait for it: 0 or its errno. */
static int
sync_wait(struct tlog *log)
{
	int e;

	pthread_mutex_lock(&log->smu);
	while (!log->sync_done)
		pthread_cond_wait(&log->scv, &log->smu);
	e = log->sync_errno;
	pthread_mutex_unlock(&log->smu);
	return e;
}

/* Sign a checkpoint for the first `size` leaves of the tree (mu held by the
 * caller or no other thread running). */
static int
sign_checkpoint(struct tlog *log, uint64_t size, const qs_hash root, char **note, size_t *len)
{
	char *text = NULL;
	size_t tl = 0;
	int r;

	*note = NULL;
	*len = 0;
	if ((r = qs_checkpoint_text(log->origin, size, root, &text, &tl)) != 0)
		return r;
	r = qs_note_sign(&log->signer, text, tl, note, len);
	free(text);
	return r;
}

/*
 * Undo what a failed batch may have left on disk. Writer thread only.
 * The checkpoint goes back first, the entries after it: every state in
 * between opens (tlog_open cuts records past the checkpoint), whereas a
 * checkpoint covering entries already cut off would refuse to open.
 */
static int
repair(struct tlog *log)
{
	int r;

	if (log->ckpt_pending)
		qs_fault_crash("tlog.repair_start");
	if (log->ckpt_pending) {
		if ((r = write_checkpoint(log, log->ckpt, log->ckpt_len)) != 0)
			return qs_wrap(r, "restore checkpoint");
		log->ckpt_pending = 0;
		qs_fault_crash("tlog.repair_between");
	}
	if (log->trunc_pending) {
		if (ftruncate(log->fd, (off_t)log->file_len) != 0 || fdatasync(log->fd) != 0)
			return qs_fail(QS_ERR_IO, "truncate entries back to %llu bytes: %s",
			               (unsigned long long)log->file_len, strerror(errno));
		log->trunc_pending = 0;
		qs_fault_crash("tlog.repair_done");
	}
	return 0;
}

static int
offsets_reserve(struct tlog *log, uint64_t want)
{
	uint64_t ncap;
	uint64_t *p;

	if (want <= log->offsets_cap)
		return 0;
	ncap = log->offsets_cap ? log->offsets_cap * 2 : 4096;
	if (ncap < want)
		ncap = want;
	if (ncap > SIZE_MAX / sizeof(uint64_t))
		return qs_fail(QS_ERR_NOMEM, "audit log too large");
	if ((p = realloc(log->offsets, (size_t)ncap * sizeof(uint64_t))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	log->offsets = p;
	log->offsets_cap = ncap;
	return 0;
}

/*
 * One group commit: write every record of the batch, one fdatasync, extend
 * the tree, sign and store the checkpoint. On failure undo it all. Runs on
 * the writer thread without mu except where noted.
 */
static int
commit(struct tlog *log, struct req *batch, size_t nreq, size_t nrec, size_t bytes)
{
	uint8_t *buf = NULL;
	qs_hash *lh = NULL, root;
	char *note = NULL;
	size_t note_len = 0, o = 0, k = 0;
	uint64_t base, new_size;
	int r, e, appended = 0, syncing = 0;

	if ((r = repair(log)) != 0)
		return qs_wrap(r, "audit log still broken");
	if ((buf = malloc(bytes)) == NULL || (lh = malloc(nrec * sizeof(qs_hash))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&log->mu);
	base = log->committed;
	pthread_mutex_unlock(&log->mu);
	/* Records in queue order; each request's entries stay contiguous. */
	for (struct req *q = batch; nreq-- > 0; q = q->next) {
		q->first = base + k;
		for (size_t i = 0; i < q->n; i++, k++) {
			if ((r = qs_merkle_leaf_hash(q->recs[i].data, q->recs[i].len, lh[k])) != 0)
				goto out;
			put32(buf + o, (uint32_t)q->recs[i].len);
			memcpy(buf + o + 4, q->recs[i].data, q->recs[i].len);
			memcpy(buf + o + 4 + q->recs[i].len, lh[k], 4);
			o += q->recs[i].len + REC_OVERHEAD;
		}
	}
	log->trunc_pending = 1; /* from here on, bytes past file_len may exist */
	if (pwrite_all(log->fd, buf, bytes, log->file_len) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "write audit entries: %s", strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&log->mu);
	log->stats.entry_fsyncs++;
	pthread_mutex_unlock(&log->mu);
	/* Durable entries come first; the tree and the checkpoint's
	 * signature are made meanwhile, and nothing is written or published
	 * until the fdatasync succeeded. */
	sync_start(log);
	syncing = 1;

	pthread_mutex_lock(&log->mu);
	r = offsets_reserve(log, base + nrec);
	o = log->file_len;
	for (size_t i = 0; r == 0 && i < nrec; i++) {
		if ((r = qs_merkle_tree_append(log->tree, lh[i])) != 0)
			break;
		log->offsets[base + i] = o;
		o += get32(buf + (o - log->file_len)) + REC_OVERHEAD;
	}
	appended = 1;
	new_size = base + nrec;
	if (r == 0)
		r = qs_merkle_tree_root(log->tree, new_size, root);
	pthread_mutex_unlock(&log->mu);
	if (r != 0)
		goto out;

	if ((r = sign_checkpoint(log, new_size, root, &note, &note_len)) != 0) {
		qs_wrap(r, "sign audit checkpoint");
		goto out;
	}
	syncing = 0;
	if ((e = sync_wait(log)) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "fdatasync audit entries: %s", strerror(e));
		goto out;
	}
	log->ckpt_pending = 1; /* the file may change even if the call fails */
	if ((r = write_checkpoint(log, note, note_len)) != 0)
		goto out;
	/* Fault point: the new checkpoint is in place, but its durability is
	 * unknown (the directory's fsync failed): the batch is undone. */
	if (qs_fault("tlog.checkpoint_unsure")) {
		r = qs_fail(QS_ERR_IO, "fsync audit directory: injected failure");
		goto out;
	}
	log->ckpt_pending = 0;
	log->trunc_pending = 0;

	pthread_mutex_lock(&log->mu);
	free(log->ckpt);
	log->ckpt = note;
	log->ckpt_len = note_len;
	note = NULL;
	log->committed = new_size;
	log->file_len += bytes;
	log->stats.batches++;
	log->stats.entries += nrec;
	pthread_mutex_unlock(&log->mu);
	r = 0;
out:
	if (syncing)
		sync_wait(log); /* the file is not touched while it syncs */
	if (r != 0) {
		int rr;
		if (appended) {
			pthread_mutex_lock(&log->mu);
			qs_merkle_tree_truncate(log->tree, log->committed);
			pthread_mutex_unlock(&log->mu);
		}
		/* Say why before the repair's own detail overwrites it. */
		log_error("audit_write_failed", "batch of %zu entries refused: %s", nrec,
		          qs_errdetail());
		char why[QS_ERRDETAIL_MAX];
		snprintf(why, sizeof(why), "%s", qs_errdetail());
		if ((rr = repair(log)) != 0)
			log_error("audit_repair_failed", "%s (retried before the next batch)",
			          qs_errdetail());
		pthread_mutex_lock(&log->mu);
		log->stats.failed_batches++;
		if (rr == 0)
			log->stats.repairs++;
		pthread_mutex_unlock(&log->mu);
		r = qs_fail(QS_ERR_UNAVAILABLE, "audit log not writable: %s", why);
	}
	free(buf);
	free(lh);
	free(note);
	return r;
}

static void *
writer_main(void *arg)
{
	struct tlog *log = arg;

	pthread_mutex_lock(&log->mu);
	for (;;) {
		struct req *batch, *q, *last;
		size_t nreq = 0, nrec = 0, bytes = 0;
		int r;

		while (log->head == NULL && !log->stopping)
			pthread_cond_wait(&log->work_cv, &log->mu);
		if (log->head == NULL)
			break;
		/* Take every waiting request that fits one batch (at least one). */
		batch = log->head;
		last = NULL;
		for (q = batch; q != NULL; q = q->next) {
			if (nreq > 0 && bytes + q->bytes > QS_MAX_AUDIT_BATCH_BYTES)
				break;
			nreq++;
			nrec += q->n;
			bytes += q->bytes;
			last = q;
		}
		log->head = last->next;
		if (log->head == NULL)
			log->tail = NULL;
		pthread_mutex_unlock(&log->mu);

		r = commit(log, batch, nreq, nrec, bytes);

		pthread_mutex_lock(&log->mu);
		for (q = batch; nreq-- > 0; q = q->next) {
			q->result = r;
			if (r != 0)
				snprintf(q->detail, sizeof(q->detail), "%s", qs_errdetail());
			q->done = 1;
		}
		pthread_cond_broadcast(&log->done_cv);
		/* Let the callers just woken queue their next entries before
		 * the next batch is cut: on few cores they otherwise split
		 * into two half-size batches, each paying the full syncs. */
		pthread_mutex_unlock(&log->mu);
		sched_yield();
		pthread_mutex_lock(&log->mu);
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

int
tlog_append(struct tlog *log, const struct tlog_rec *entries, size_t n, uint64_t *first_index)
{
	struct req q;
	size_t bytes = 0;

	*first_index = 0;
	if (n == 0 || n > QS_MAX_AUDIT_APPEND)
		return qs_fail(QS_ERR_INVALID, "append: %zu entries (1..%d)", n,
		               QS_MAX_AUDIT_APPEND);
	for (size_t i = 0; i < n; i++) {
		if (entries[i].len == 0 || entries[i].len > QS_MAX_AUDIT_ENTRY)
			return qs_fail(QS_ERR_INVALID, "append: entry %zu has %zu bytes", i,
			               entries[i].len);
		if (memchr(entries[i].data, '\n', entries[i].len) != NULL)
			return qs_fail(QS_ERR_INVALID, "append: entry %zu contains a newline", i);
		bytes += entries[i].len + REC_OVERHEAD;
	}
	if (bytes > QS_MAX_AUDIT_BATCH_BYTES)
		return qs_fail(QS_ERR_INVALID, "append: %zu bytes in one call (max %u)", bytes,
		               QS_MAX_AUDIT_BATCH_BYTES);
	memset(&q, 0, sizeof(q));
	q.recs = entries;
	q.n = n;
	q.bytes = bytes;

	pthread_mutex_lock(&log->mu);
	if (log->stopping) {
		pthread_mutex_unlock(&log->mu);
		return qs_fail(QS_ERR_UNAVAILABLE, "audit log is closing");
	}
	if (log->tail)
		log->tail->next = &q;
	else
		log->head = &q;
	log->tail = &q;
	pthread_cond_signal(&log->work_cv);
	while (!q.done)
		pthread_cond_wait(&log->done_cv, &log->mu);
	pthread_mutex_unlock(&log->mu);
	if (q.result != 0)
		return qs_fail(q.result, "%s", q.detail);
	*first_index = q.first;
	return 0;
}

/* Read the whole checkpoint file (missing: *note NULL, returns 0). */
static int
read_checkpoint(struct tlog *log, char **note, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	int fd, r;

	*note = NULL;
	*len = 0;
	if ((fd = openat(log->dirfd, CHECKPOINT, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return 0;
		return qs_fail(QS_ERR_IO, "open checkpoint: %s", strerror(errno));
	}
	if ((buf = malloc(QS_MAX_NOTE + 2)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, buf + n, QS_MAX_NOTE + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = qs_fail(QS_ERR_IO, "read checkpoint: %s", strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		if (n > QS_MAX_NOTE) {
			r = qs_fail(QS_ERR_PRECONDITION, "checkpoint file larger than %u bytes",
			            QS_MAX_NOTE);
			goto out;
		}
	}
	buf[n] = '\0';
	*note = buf;
	*len = n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

/* Create an empty entries file durably. */
static int
create_entries(struct tlog *log)
{
	int fd;

	fd = openat(log->dirfd, ENTRIES, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return qs_fail(QS_ERR_IO, "create entries: %s", strerror(errno));
	log->fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		return qs_fail(QS_ERR_PRECONDITION, "audit log is in use by another process");
	if (pwrite_all(fd, (const uint8_t *)MAGIC, MAGIC_LEN, 0) != 0 || fdatasync(fd) != 0 ||
	    fsync(log->dirfd) != 0)
		return qs_fail(QS_ERR_IO, "write entries: %s", strerror(errno));
	log->file_len = MAGIC_LEN;
	return 0;
}

/*
 * Read every record of the entries file into the tree, check the prefix the
 * checkpoint covers, and cut off what follows it.
 */
static int
load_entries(struct tlog *log, const struct qs_checkpoint *cp, int have_ckpt,
             struct tlog_open_report *rep)
{
	struct stat st;
	uint8_t *map = NULL;
	uint64_t flen, off = MAGIC_LEN, count = 0, keep = 0;
	qs_hash lh, root;
	int r;

	if (fstat(log->fd, &st) != 0)
		return qs_fail(QS_ERR_IO, "stat entries: %s", strerror(errno));
	flen = (uint64_t)st.st_size;
	if (flen < MAGIC_LEN) {
		/* A crash while creating the file leaves a prefix of the magic. */
		if (cp->size == 0) {
			if (ftruncate(log->fd, 0) != 0 ||
			    pwrite_all(log->fd, (const uint8_t *)MAGIC, MAGIC_LEN, 0) != 0 ||
			    fdatasync(log->fd) != 0)
				return qs_fail(QS_ERR_IO, "rewrite entries header: %s",
				               strerror(errno));
			log->file_len = MAGIC_LEN;
			return 0;
		}
		return qs_fail(QS_ERR_PRECONDITION, "entries file is not an audit log (too short)");
	}
	map = mmap(NULL, (size_t)flen, PROT_READ, MAP_PRIVATE, log->fd, 0);
	if (map == MAP_FAILED)
		return qs_fail(QS_ERR_IO, "mmap entries: %s", strerror(errno));
	if (memcmp(map, MAGIC, MAGIC_LEN) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION, "entries file is not an audit log (bad header)");
		goto out;
	}
	while (off < flen) {
		uint64_t left = flen - off, n;
		const char *bad = NULL;

		if (left < REC_OVERHEAD)
			bad = "torn record header";
		else if ((n = get32(map + off)) == 0 || n > QS_MAX_AUDIT_ENTRY)
			bad = "bad record length";
		else if (n + REC_OVERHEAD > left)
			bad = "record runs past the end of the file";
		else if ((r = qs_merkle_leaf_hash(map + off + 4, (size_t)n, lh)) != 0)
			goto out;
		else if (memcmp(lh, map + off + 4 + n, 4) != 0)
			bad = "record checksum mismatch";
		else if (memchr(map + off + 4, '\n', (size_t)n) != NULL)
			bad = "record contains a newline";
		if (bad != NULL) {
			if (count < cp->size) {
				r = qs_fail(QS_ERR_PRECONDITION,
				            "audit log corrupt: entry %llu at offset %llu: %s; the "
				            "signed checkpoint covers %llu entries",
				            (unsigned long long)count, (unsigned long long)off, bad,
				            (unsigned long long)cp->size);
				goto out;
			}
			break; /* a torn tail past the checkpoint */
		}
		if (count < cp->size) {
			if ((r = offsets_reserve(log, count + 1)) != 0 ||
			    (r = qs_merkle_tree_append(log->tree, lh)) != 0)
				goto out;
			log->offsets[count] = off;
			keep = off + n + REC_OVERHEAD;
		} else {
			rep->dropped_records++;
		}
		count++;
		off += n + REC_OVERHEAD;
	}
	if (count < cp->size) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit log has %llu entries but its signed checkpoint covers %llu: "
		            "entries were deleted or the log was rolled back",
		            (unsigned long long)count, (unsigned long long)cp->size);
		goto out;
	}
	if (!have_ckpt && count > 0) {
		/* Only a log with nothing in it may lack a checkpoint (a crash
		 * between creating the two files); keep the evidence. */
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit checkpoint file is missing but entries holds %llu records",
		            (unsigned long long)count);
		goto out;
	}
	if (cp->size == 0)
		keep = MAGIC_LEN;
	if ((r = qs_merkle_tree_root(log->tree, cp->size, root)) != 0)
		goto out;
	if (memcmp(root, cp->root, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit log does not match its signed checkpoint (size %llu): entries "
		            "were modified, deleted or reordered",
		            (unsigned long long)cp->size);
		goto out;
	}
	if (keep < flen) {
		if (ftruncate(log->fd, (off_t)keep) != 0 || fdatasync(log->fd) != 0) {
			r = qs_fail(QS_ERR_IO, "truncate uncommitted audit tail: %s",
			            strerror(errno));
			goto out;
		}
		rep->truncated_bytes = flen - keep;
		log_warn("audit_tail_truncated",
		         "cut %llu bytes (%llu complete records) past the checkpoint at %llu "
		         "entries",
		         (unsigned long long)(flen - keep),
		         (unsigned long long)rep->dropped_records, (unsigned long long)cp->size);
	}
	log->file_len = keep;
	r = 0;
out:
	munmap(map, (size_t)flen);
	return r;
}

static int
open_state(struct tlog *log, struct tlog_open_report *rep)
{
	struct qs_checkpoint cp;
	char *note = NULL, *text = NULL;
	size_t note_len = 0, text_len = 0;
	qs_hash root;
	int r, have_entries;

	memset(&cp, 0, sizeof(cp));
	if ((r = read_checkpoint(log, &note, &note_len)) != 0)
		goto out;
	log->fd = openat(log->dirfd, ENTRIES, O_RDWR | O_CLOEXEC);
	if (log->fd < 0 && errno != ENOENT) {
		r = qs_fail(QS_ERR_IO, "open entries: %s", strerror(errno));
		goto out;
	}
	have_entries = log->fd >= 0;
	if (have_entries && flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION, "audit log is in use by another process");
		goto out;
	}
	if (note != NULL) {
		if ((r = qs_note_open(note, note_len, log->signer.name, log->signer.pub, &text,
		                      &text_len)) != 0 ||
		    (r = qs_checkpoint_parse(text, text_len, log->origin, &cp)) != 0) {
			r = qs_fail(QS_ERR_PRECONDITION, "audit checkpoint refused: %s",
			            qs_errdetail());
			goto out;
		}
	}
	if (!have_entries) {
		if (note != NULL && cp.size != 0) {
			r = qs_fail(QS_ERR_PRECONDITION,
			            "audit entries file is missing but the checkpoint covers %llu "
			            "entries",
			            (unsigned long long)cp.size);
			goto out;
		}
		if ((r = create_entries(log)) != 0)
			goto out;
		rep->created = 1;
	} else if ((r = load_entries(log, &cp, note != NULL, rep)) != 0) {
		goto out;
	}
	if (note == NULL) {
		if ((r = qs_merkle_tree_root(log->tree, 0, root)) != 0 ||
		    (r = sign_checkpoint(log, 0, root, &note, &note_len)) != 0 ||
		    (r = write_checkpoint(log, note, note_len)) != 0)
			goto out;
		rep->created = 1;
	}
	log->committed = cp.size;
	log->ckpt = note;
	log->ckpt_len = note_len;
	note = NULL;
	rep->size = cp.size;
	r = 0;
out:
	free(note);
	free(text);
	return r;
}

int
tlog_open(const char *dir, const char *origin, const struct qs_note_signer *signer,
          struct tlog **out, struct tlog_open_report *rep)
{
	struct tlog_open_report dummy;
	struct tlog *log = NULL;
	int r;

	*out = NULL;
	if (rep == NULL)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if (origin == NULL || strlen(origin) == 0 || strlen(origin) > QS_MAX_ORIGIN)
		return qs_fail(QS_ERR_INVALID, "bad audit log origin");
	if (signer == NULL || signer->sign == NULL || signer->pub == NULL)
		return qs_fail(QS_ERR_INVALID, "no audit log signer");
	if ((log = calloc(1, sizeof(*log))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	log->dirfd = log->fd = -1;
	snprintf(log->origin, sizeof(log->origin), "%s", origin);
	log->signer = *signer;
	pthread_mutex_init(&log->mu, NULL);
	pthread_cond_init(&log->work_cv, NULL);
	pthread_cond_init(&log->done_cv, NULL);
	pthread_mutex_init(&log->smu, NULL);
	pthread_cond_init(&log->scv, NULL);
	if ((r = qs_merkle_tree_new(&log->tree)) != 0)
		goto out;
	/* Errors do not name dir: the caller does, once. */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		r = qs_fail(QS_ERR_IO, "mkdir: %s", strerror(errno));
		goto out;
	}
	if ((log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = qs_fail(QS_ERR_IO, "open: %s", strerror(errno));
		goto out;
	}
	unlinkat(log->dirfd, CHECKPOINT_TMP, 0); /* a crash's leftover */
	if ((r = open_state(log, rep)) != 0)
		goto out;
	if (pthread_create(&log->syncer, NULL, syncer_main, log) != 0) {
		r = qs_fail(QS_ERR_NOMEM, "cannot start the audit sync thread");
		goto out;
	}
	log->syncer_started = 1;
	if (pthread_create(&log->writer, NULL, writer_main, log) != 0) {
		r = qs_fail(QS_ERR_NOMEM, "cannot start the audit writer thread");
		goto out;
	}
	log->writer_started = 1;
	log_info("audit_open", "dir=%s entries=%llu dropped=%llu truncated_bytes=%llu%s", dir,
	         (unsigned long long)rep->size, (unsigned long long)rep->dropped_records,
	         (unsigned long long)rep->truncated_bytes, rep->created ? " created" : "");
	*out = log;
	log = NULL;
	r = 0;
out:
	tlog_close(log);
	return r;
}

void
tlog_close(struct tlog *log)
{
	if (log == NULL)
		return;
	if (log->writer_started) {
		pthread_mutex_lock(&log->mu);
		log->stopping = 1;
		pthread_cond_signal(&log->work_cv);
		pthread_mutex_unlock(&log->mu);
		pthread_join(log->writer, NULL);
	}
	if (log->syncer_started) {
		pthread_mutex_lock(&log->smu);
		log->sync_stop = 1;
		pthread_cond_broadcast(&log->scv);
		pthread_mutex_unlock(&log->smu);
		pthread_join(log->syncer, NULL);
	}
	if (log->fd >= 0)
		close(log->fd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	qs_merkle_tree_free(log->tree);
	free(log->offsets);
	free(log->ckpt);
	pthread_cond_destroy(&log->work_cv);
	pthread_cond_destroy(&log->done_cv);
	pthread_mutex_destroy(&log->mu);
	pthread_cond_destroy(&log->scv);
	pthread_mutex_destroy(&log->smu);
	free(log);
}

uint64_t
tlog_size(struct tlog *log)
{
	uint64_t n;

	pthread_mutex_lock(&log->mu);
	n = log->committed;
	pthread_mutex_unlock(&log->mu);
	return n;
}

int
tlog_checkpoint(struct tlog *log, char **note, size_t *len)
{
	char *c;

	*note = NULL;
	*len = 0;
	pthread_mutex_lock(&log->mu);
	if ((c = malloc(log->ckpt_len + 1)) != NULL) {
		memcpy(c, log->ckpt, log->ckpt_len);
		c[log->ckpt_len] = '\0';
		*len = log->ckpt_len;
	}
	pthread_mutex_unlock(&log->mu);
	if (c == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*note = c;
	return 0;
}

int
tlog_entry(struct tlog *log, uint64_t index, uint8_t **bytes, size_t *len)
{
	uint8_t hdr[4], *buf = NULL;
	uint64_t off;
	uint32_t n;
	int r;

	*bytes = NULL;
	*len = 0;
	pthread_mutex_lock(&log->mu);
	if (index >= log->committed) {
		pthread_mutex_unlock(&log->mu);
		return qs_fail(QS_ERR_NOT_FOUND, "no audit entry %llu", (unsigned long long)index);
	}
	off = log->offsets[index];
	pthread_mutex_unlock(&log->mu);
	/* Committed bytes never change and are never truncated: no lock. */
	if (pread_all(log->fd, hdr, 4, off) != 0)
		return qs_fail(QS_ERR_IO, "read audit entry: %s", strerror(errno));
	n = get32(hdr);
	if (n == 0 || n > QS_MAX_AUDIT_ENTRY)
		return qs_fail(QS_ERR_IO, "audit entry %llu: bad length on disk",
		               (unsigned long long)index);
	if ((buf = malloc(n)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (pread_all(log->fd, buf, n, off + 4) != 0) {
		r = qs_fail(QS_ERR_IO, "read audit entry: %s", strerror(errno));
		free(buf);
		return r;
	}
	*bytes = buf;
	*len = n;
	return 0;
}

int
tlog_root(struct tlog *log, uint64_t size, qs_hash out)
{
	int r;

	pthread_mutex_lock(&log->mu);
	if (size > log->committed)
		r = qs_fail(QS_ERR_INVALID, "size %llu above the log's %llu",
		            (unsigned long long)size, (unsigned long long)log->committed);
	else
		r = qs_merkle_tree_root(log->tree, size, out);
	pthread_mutex_unlock(&log->mu);
	return r;
}

int
tlog_inclusion_proof(struct tlog *log, uint64_t index, uint64_t tree_size, qs_hash *path,
                     size_t cap, size_t *path_len)
{
	int r;

	*path_len = 0;
	pthread_mutex_lock(&log->mu);
	if (tree_size > log->committed)
		r = qs_fail(QS_ERR_INVALID, "tree size %llu above the log's %llu",
		            (unsigned long long)tree_size, (unsigned long long)log->committed);
	else
		r = qs_merkle_tree_inclusion_proof(log->tree, index, tree_size, path, cap,
		                                   path_len);
	pthread_mutex_unlock(&log->mu);
	return r;
}

int
tlog_consistency_proof(struct tlog *log, uint64_t size1, uint64_t size2, qs_hash *path, size_t cap,
                       size_t *path_len)
{
	int r;

	*path_len = 0;
	pthread_mutex_lock(&log->mu);
	if (size2 > log->committed)
		r = qs_fail(QS_ERR_INVALID, "tree size %llu above the log's %llu",
		            (unsigned long long)size2, (unsigned long long)log->committed);
	else
		r = qs_merkle_tree_consistency_proof(log->tree, size1, size2, path, cap, path_len);
	pthread_mutex_unlock(&log->mu);
	return r;
}

void
tlog_get_stats(struct tlog *log, struct tlog_stats *st)
{
	pthread_mutex_lock(&log->mu);
	*st = log->stats;
	pthread_mutex_unlock(&log->mu);
}
