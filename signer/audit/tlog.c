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
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "store.h"

#define MAGIC_V1 "QSTLOG1\n" /* before checkpoint records: checkpoint in its own file */
#define MAGIC "QSTLOG2\n"
#define MAGIC_LEN 8
#define REC_OVERHEAD 8        /* u32 length + u32 checksum */
#define CKPT_FLAG 0x80000000u /* in a record's length: a checkpoint record */
#define ENTRIES "entries"
#define CHECKPOINT "checkpoint"         /* version 1 only; removed by the migration */
#define CHECKPOINT_TMP "checkpoint.tmp" /* a version 1 crash's leftover */

/* One tlog_append call waiting for the writer. Lives on the caller's stack. */
struct req {
	const struct tlog_rec *recs;
	size_t n;
	size_t bytes;          /* record bytes on disk (with render: at most) */
	tlog_render_fn render; /* NULL: recs are given */
	void *render_arg;
	struct tlog_rec *own; /* what render filled (the writer's) */
	uint64_t first;
	int result;
	int done;
	char detail[QS_ERRDETAIL_MAX];
	struct req *next;
};

struct tlog {
	/* The log kept in the store, shared by replicas (tlog_open_store), or
	 * NULL: the entries file of this process. db_mu: store mode, one
	 * catch-up or commit at a time (it takes mu for what readers see). */
	struct store *st;
	pthread_mutex_t db_mu;
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
	/* The newest committed entry seen (for render: entries carry a
	 * time that must not go back); writer, or db_mu in store mode. */
	uint8_t *last;
	size_t last_len;
	size_t ckpt_len;
	struct tlog_stats stats;

	/* Writer thread only (and open/close). */
	uint64_t file_len; /* bytes of the committed prefix of entries */
	int trunc_pending; /* entries may hold bytes past file_len */
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
 * Undo what a failed batch may have left on disk: cut the entries file
 * back to the committed prefix (which ends with the checkpoint record of
 * the last commit). Writer thread only.
 */
static int
repair(struct tlog *log)
{
	if (!log->trunc_pending)
		return 0;
	qs_fault_crash("tlog.repair_start");
	if (ftruncate(log->fd, (off_t)log->file_len) != 0 || fdatasync(log->fd) != 0)
		return qs_fail(QS_ERR_IO, "truncate entries back to %llu bytes: %s",
		               (unsigned long long)log->file_len, strerror(errno));
	log->trunc_pending = 0;
	qs_fault_crash("tlog.repair_done");
	return 0;
}

/* A record of n bytes of data at out: length (with flags), data, the first
 * 4 bytes of SHA-256(0x00 || data) (for entries, their leaf hash lh). */
static size_t
put_record(uint8_t *out, uint32_t flags, const uint8_t *data, size_t n, const qs_hash lh)
{
	put32(out, (uint32_t)n | flags);
	memcpy(out + 4, data, n);
	memcpy(out + 4 + n, lh, 4);
	return n + REC_OVERHEAD;
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

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Entries as tlog_append takes them: each 1..QS_MAX_AUDIT_ENTRY bytes
 * without '\n'; *bytes their record bytes. */
static int
check_entries(const struct tlog_rec *entries, size_t n, size_t *bytes)
{
	*bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (entries[i].len == 0 || entries[i].len > QS_MAX_AUDIT_ENTRY)
			return qs_fail(QS_ERR_INVALID, "append: entry %zu has %zu bytes", i,
			               entries[i].len);
		if (memchr(entries[i].data, '\n', entries[i].len) != NULL)
			return qs_fail(QS_ERR_INVALID, "append: entry %zu contains a newline", i);
		*bytes += entries[i].len + REC_OVERHEAD;
	}
	return 0;
}

/* A tlog_append_render request's entries, now that q->first is known. */
static int
render_req(struct req *q, const struct tlog_rec *prev)
{
	size_t bytes = 0;
	int r;

	if ((q->own = calloc(q->n, sizeof(*q->own))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = q->render(q->render_arg, q->first, prev->data, prev->len, q->own, q->n)) != 0 ||
	    (r = check_entries(q->own, q->n, &bytes)) != 0)
		return r;
	if (bytes > q->bytes)
		return qs_fail(QS_ERR_INTERNAL, "rendered audit entries exceed their bound");
	q->recs = q->own;
	return 0;
}

static int open_note(struct tlog *log, const char *note, size_t len, struct qs_checkpoint *cp);

/* Keep a copy of the newest entry. */
static int
set_last(struct tlog *log, const uint8_t *data, size_t len)
{
	uint8_t *p;

	if ((p = realloc(log->last, len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(p, data, len);
	log->last = p;
	log->last_len = len;
	return 0;
}

/* Store mode: one entry read back from the database, into the tree. */
static int
catch_up_entry(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	struct tlog *log = arg;
	struct tlog_rec rec = {data, len};
	size_t bytes;
	qs_hash lh;
	int r;

	if ((r = check_entries(&rec, 1, &bytes)) != 0)
		return qs_fail(QS_ERR_PRECONDITION, "audit entry %llu in the database: %s",
		               (unsigned long long)seq, qs_errdetail());
	if ((r = qs_merkle_leaf_hash(data, len, lh)) != 0 || (r = set_last(log, data, len)) != 0)
		return r;
	pthread_mutex_lock(&log->mu);
	r = qs_merkle_tree_append(log->tree, lh);
	pthread_mutex_unlock(&log->mu);
	return r;
}

/*
 * Store mode (db_mu held): take in what the database holds up to `size`,
 * the committed head whose signed checkpoint is note: the entries past
 * ours (read in the locked transaction if `locked`), checked against the
 * checkpoint as the file log's are at open. A head behind ours, an entry
 * missing or changed, a checkpoint that does not verify or does not match
 * the entries: QS_ERR_PRECONDITION, and nothing is taken.
 */
static int
catch_up(struct tlog *log, int locked, uint64_t size, const char *note, size_t note_len)
{
	struct qs_checkpoint cp;
	qs_hash root;
	uint64_t have;
	char *c;
	int r;

	pthread_mutex_lock(&log->mu);
	have = log->committed;
	pthread_mutex_unlock(&log->mu);
	if (size < have)
		return qs_fail(QS_ERR_PRECONDITION,
		               "the audit log in the database has %llu entries, fewer than the "
		               "%llu this process saw: it was rolled back",
		               (unsigned long long)size, (unsigned long long)have);
	if (note_len == 0) {
		if (size == 0)
			return 0; /* a head nobody has signed yet */
		return qs_fail(QS_ERR_PRECONDITION,
		               "the audit log in the database has %llu "
		               "entries and no checkpoint",
		               (unsigned long long)size);
	}
	if (size == have && log->ckpt != NULL && log->ckpt_len == note_len &&
	    memcmp(log->ckpt, note, note_len) == 0)
		return 0;
	if ((r = open_note(log, note, note_len, &cp)) != 0)
		return r;
	if (cp.size != size) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the audit log head in the database says %llu entries, its signed "
		            "checkpoint %llu",
		            (unsigned long long)size, (unsigned long long)cp.size);
		goto fail;
	}
	if ((r = store_log_read(log->st, locked, have, size, catch_up_entry, log)) != 0)
		goto fail;
	pthread_mutex_lock(&log->mu);
	r = qs_merkle_tree_root(log->tree, size, root);
	pthread_mutex_unlock(&log->mu);
	if (r != 0)
		goto fail;
	if (memcmp(root, cp.root, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "the audit log in the database does not match its signed checkpoint "
		            "(size %llu): entries were modified, deleted or reordered",
		            (unsigned long long)size);
		goto fail;
	}
	if ((c = malloc(note_len + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	memcpy(c, note, note_len);
	c[note_len] = '\0';
	pthread_mutex_lock(&log->mu);
	free(log->ckpt);
	log->ckpt = c;
	log->ckpt_len = note_len;
	log->committed = size;
	pthread_mutex_unlock(&log->mu);
	return 0;
fail:
	pthread_mutex_lock(&log->mu);
	qs_merkle_tree_truncate(log->tree, log->committed);
	pthread_mutex_unlock(&log->mu);
	return r;
}

/* Store mode: take db_mu (the caller releases it), lock the head row and
 * catch up with it. 0: the transaction is open (store_log_commit or
 * store_log_abort ends it); else it is not. */
static int
store_lock_head(struct tlog *log)
{
	uint64_t size = 0;
	char *note = NULL;
	size_t len = 0;
	int r;

	pthread_mutex_lock(&log->db_mu);
	if ((r = store_log_lock(log->st, &size, &note, &len)) != 0)
		return r;
	if ((r = catch_up(log, 1, size, note, len)) != 0)
		store_log_abort(log->st);
	free(note);
	return r;
}

/*
 * One group commit: extend the tree, sign the checkpoint of the new tree,
 * then write the batch's records and the checkpoint record after them in
 * one write and make them durable with one fdatasync: the checkpoint record
 * is the commit point. On failure undo it all. Runs on the writer thread
 * without mu except where noted.
 */
static int
commit(struct tlog *log, struct req *batch, size_t nreq, size_t nrec, size_t bytes)
{
	uint8_t *buf = NULL;
	qs_hash *lh = NULL, root, ch;
	struct store_log_rec *flat = NULL;
	struct tlog_rec prev;
	char *note = NULL;
	size_t note_len = 0, o = 0, k = 0, total, ebytes, nreq0 = nreq;
	uint64_t base, new_size, t[5];
	int r, appended = 0, locked = 0;

	t[0] = now_us();
	if (log->st != NULL) {
		/* The head row's lock makes this replica the only appender until
		 * the COMMIT; first the entries other replicas committed. */
		if ((r = store_lock_head(log)) != 0)
			goto out;
		locked = 1;
	} else if ((r = repair(log)) != 0) {
		return qs_wrap(r, "audit log still broken");
	}
	if ((buf = malloc(bytes + REC_OVERHEAD + QS_MAX_NOTE)) == NULL ||
	    (lh = malloc(nrec * sizeof(qs_hash))) == NULL ||
	    (flat = calloc(nrec, sizeof(*flat))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	pthread_mutex_lock(&log->mu);
	base = log->committed;
	pthread_mutex_unlock(&log->mu);
	/* Records in queue order; each request's entries stay contiguous. */
	prev.data = log->last;
	prev.len = log->last_len;
	for (struct req *q = batch; nreq-- > 0; q = q->next) {
		q->first = base + k;
		if (q->render != NULL && (r = render_req(q, &prev)) != 0)
			goto out;
		prev = q->recs[q->n - 1];
		for (size_t i = 0; i < q->n; i++, k++) {
			flat[k].data = q->recs[i].data;
			flat[k].len = q->recs[i].len;
			if ((r = qs_merkle_leaf_hash(q->recs[i].data, q->recs[i].len, lh[k])) != 0)
				goto out;
			o += put_record(buf + o, 0, q->recs[i].data, q->recs[i].len, lh[k]);
		}
	}

	ebytes = o;
	pthread_mutex_lock(&log->mu);
	r = log->st == NULL ? offsets_reserve(log, base + nrec) : 0;
	o = log->file_len;
	for (size_t i = 0; r == 0 && i < nrec; i++) {
		if ((r = qs_merkle_tree_append(log->tree, lh[i])) != 0)
			break;
		if (log->st != NULL)
			continue;
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
	t[1] = now_us();
	if ((r = sign_checkpoint(log, new_size, root, &note, &note_len)) != 0) {
		qs_wrap(r, "sign audit checkpoint");
		goto out;
	}
	if (note_len == 0 || note_len > QS_MAX_NOTE) {
		r = qs_fail(QS_ERR_INVALID, "audit checkpoint of %zu bytes", note_len);
		goto out;
	}
	if ((r = qs_merkle_leaf_hash((const uint8_t *)note, note_len, ch)) != 0)
		goto out;
	total = ebytes + put_record(buf + ebytes, CKPT_FLAG, (const uint8_t *)note, note_len, ch);

	t[2] = now_us();
	if (log->st != NULL) {
		/* The entries, the new head and its checkpoint in one
		 * transaction; nothing is released before its COMMIT returned. */
		locked = 0; /* ended by store_log_commit, whatever it returns */
		r = store_log_commit(log->st, base, flat, nrec, note, note_len);
		if (r != 0)
			goto out;
		t[3] = t[4] = now_us();
		goto publish;
	}
	log->trunc_pending = 1; /* from here on, bytes past file_len may exist */
	if (pwrite_all(log->fd, buf, total, log->file_len) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "write audit entries: %s", strerror(errno));
		goto out;
	}
	qs_fault_crash("tlog.after_write");
	pthread_mutex_lock(&log->mu);
	log->stats.entry_fsyncs++;
	pthread_mutex_unlock(&log->mu);
	t[3] = now_us();
	if (fdatasync(log->fd) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "fdatasync audit entries: %s", strerror(errno));
		goto out;
	}
	/* Fault point: the batch is written but its durability is unknown
	 * (the fdatasync failed): the batch is undone. */
	if (qs_fault("tlog.checkpoint_unsure")) {
		r = qs_fail(QS_ERR_IO, "fdatasync audit entries: injected failure");
		goto out;
	}
	qs_fault_crash("tlog.after_sync");
	log->trunc_pending = 0;
	t[4] = now_us();

publish:
	if (nrec > 0 && set_last(log, flat[nrec - 1].data, flat[nrec - 1].len) != 0)
		qs_errclear(); /* a hint for the next batch's time only */
	pthread_mutex_lock(&log->mu);
	free(log->ckpt);
	log->ckpt = note;
	log->ckpt_len = note_len;
	note = NULL;
	log->committed = new_size;
	if (log->st == NULL)
		log->file_len += total;
	log->stats.batches++;
	log->stats.entries += nrec;
	log->stats.us_prepare += t[1] - t[0];
	log->stats.us_sign += t[2] - t[1];
	log->stats.us_write += t[3] - t[2];
	log->stats.us_sync += t[4] - t[3];
	pthread_mutex_unlock(&log->mu);
	r = 0;
out:
	if (locked)
		store_log_abort(log->st);
	if (log->st != NULL)
		pthread_mutex_unlock(&log->db_mu);
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
	free(flat);
	free(note);
	for (struct req *q = batch; nreq0-- > 0; q = q->next)
		if (q->render != NULL) {
			free(q->own);
			q->own = NULL;
			q->recs = NULL;
		}
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

/* Queue q (on the caller's stack) for the writer and wait for its batch. */
static int
enqueue(struct tlog *log, struct req *qp, uint64_t *first_index)
{
	if (qp->bytes > QS_MAX_AUDIT_BATCH_BYTES)
		return qs_fail(QS_ERR_INVALID, "append: %zu bytes in one call (max %u)", qp->bytes,
		               QS_MAX_AUDIT_BATCH_BYTES);
	pthread_mutex_lock(&log->mu);
	if (log->stopping) {
		pthread_mutex_unlock(&log->mu);
		return qs_fail(QS_ERR_UNAVAILABLE, "audit log is closing");
	}
	if (log->tail)
		log->tail->next = qp;
	else
		log->head = qp;
	log->tail = qp;
	pthread_cond_signal(&log->work_cv);
	while (!qp->done)
		pthread_cond_wait(&log->done_cv, &log->mu);
	pthread_mutex_unlock(&log->mu);
	if (qp->result != 0)
		return qs_fail(qp->result, "%s", qp->detail);
	*first_index = qp->first;
	return 0;
}

int
tlog_append(struct tlog *log, const struct tlog_rec *entries, size_t n, uint64_t *first_index)
{
	struct req q;
	size_t bytes = 0;

	int r;

	*first_index = 0;
	if (n == 0 || n > QS_MAX_AUDIT_APPEND)
		return qs_fail(QS_ERR_INVALID, "append: %zu entries (1..%d)", n,
		               QS_MAX_AUDIT_APPEND);
	if ((r = check_entries(entries, n, &bytes)) != 0)
		return r;
	memset(&q, 0, sizeof(q));
	q.recs = entries;
	q.n = n;
	q.bytes = bytes;
	return enqueue(log, &q, first_index);
}

int
tlog_append_render(struct tlog *log, size_t n, size_t max_bytes, tlog_render_fn render, void *arg,
                   uint64_t *first_index)
{
	struct req q;

	*first_index = 0;
	if (n == 0 || n > QS_MAX_AUDIT_APPEND)
		return qs_fail(QS_ERR_INVALID, "append: %zu entries (1..%d)", n,
		               QS_MAX_AUDIT_APPEND);
	memset(&q, 0, sizeof(q));
	q.n = n;
	q.bytes = max_bytes;
	q.render = render;
	q.render_arg = arg;
	return enqueue(log, &q, first_index);
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

/* The whole entries file, read-only (at least MAGIC_LEN bytes: the caller
 * read them). Unmap with munmap(*map, *flen). */
static int
map_entries(struct tlog *log, uint8_t **map, uint64_t *flen)
{
	struct stat st;

	if (fstat(log->fd, &st) != 0)
		return qs_fail(QS_ERR_IO, "stat entries: %s", strerror(errno));
	*flen = (uint64_t)st.st_size;
	*map = mmap(NULL, (size_t)*flen, PROT_READ, MAP_PRIVATE, log->fd, 0);
	if (*map == MAP_FAILED)
		return qs_fail(QS_ERR_IO, "mmap entries: %s", strerror(errno));
	return 0;
}

/*
 * Version 1 (an entries file of entry records only, the checkpoint in its
 * own file): read every record into the tree, check the prefix the
 * checkpoint covers, and cut off what follows it. The migration then
 * turns the file into version 2.
 */
static int
load_v1_entries(struct tlog *log, const struct qs_checkpoint *cp, int have_ckpt,
                struct tlog_open_report *rep)
{
	uint8_t *map = NULL;
	uint64_t flen, off = MAGIC_LEN, count = 0, keep = 0;
	qs_hash lh, root;
	int r;

	if ((r = map_entries(log, &map, &flen)) != 0)
		return r;
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

/* Check a signed checkpoint note against the log's key and origin. */
static int
open_note(struct tlog *log, const char *note, size_t len, struct qs_checkpoint *cp)
{
	char *text = NULL;
	size_t text_len = 0;
	int r;

	if ((r = qs_note_open(note, len, log->signer.name, log->signer.pub, &text, &text_len)) == 0)
		r = qs_checkpoint_parse(text, text_len, log->origin, cp);
	free(text);
	if (r != 0)
		return qs_fail(QS_ERR_PRECONDITION, "audit checkpoint refused: %s", qs_errdetail());
	return 0;
}

/* A version 1 checkpoint file, opened and checked (missing: *note NULL). */
static int
read_v1_checkpoint(struct tlog *log, char **note, size_t *len, struct qs_checkpoint *cp)
{
	int r;

	memset(cp, 0, sizeof(*cp));
	if ((r = read_checkpoint(log, note, len)) != 0 || *note == NULL)
		return r;
	if ((r = open_note(log, *note, *len, cp)) != 0) {
		free(*note);
		*note = NULL;
	}
	return r;
}

/*
 * A new, empty log: the header and the checkpoint record of the empty tree
 * in one write, made durable with the directory entry. A crash in between
 * leaves a file without a checkpoint record, which the next open creates
 * again. log->fd is open and locked.
 */
static int
create_log(struct tlog *log, struct tlog_open_report *rep)
{
	uint8_t buf[MAGIC_LEN + REC_OVERHEAD + QS_MAX_NOTE];
	char *note = NULL;
	size_t note_len = 0, len;
	qs_hash root, ch;
	int r;

	if ((r = qs_merkle_tree_root(log->tree, 0, root)) != 0 ||
	    (r = sign_checkpoint(log, 0, root, &note, &note_len)) != 0)
		goto out;
	if (note_len == 0 || note_len > QS_MAX_NOTE) {
		r = qs_fail(QS_ERR_INVALID, "audit checkpoint of %zu bytes", note_len);
		goto out;
	}
	if ((r = qs_merkle_leaf_hash((const uint8_t *)note, note_len, ch)) != 0)
		goto out;
	memcpy(buf, MAGIC, MAGIC_LEN);
	len = MAGIC_LEN +
	      put_record(buf + MAGIC_LEN, CKPT_FLAG, (const uint8_t *)note, note_len, ch);
	if (ftruncate(log->fd, 0) != 0 || pwrite_all(log->fd, buf, len, 0) != 0 ||
	    fdatasync(log->fd) != 0) {
		r = qs_fail(QS_ERR_IO, "write entries: %s", strerror(errno));
		goto out;
	}
	unlinkat(log->dirfd, CHECKPOINT, 0); /* a version 1 leftover of an empty log */
	if (fsync(log->dirfd) != 0) {
		r = qs_fail(QS_ERR_IO, "fsync audit directory: %s", strerror(errno));
		goto out;
	}
	log->file_len = len;
	log->committed = 0;
	log->ckpt = note;
	log->ckpt_len = note_len;
	note = NULL;
	rep->created = 1;
	r = 0;
out:
	free(note);
	return r;
}

/* One record at off of a version 2 file: NULL if it is whole (*n its data
 * length, *is_ckpt whether a checkpoint record, lh the hash of its data:
 * an entry's leaf hash), else why not. */
static const char *
check_record(const uint8_t *map, uint64_t flen, uint64_t off, uint32_t *n, int *is_ckpt, qs_hash lh)
{
	uint64_t left = flen - off;
	uint32_t h;

	if (left < REC_OVERHEAD)
		return "torn record header";
	h = get32(map + off);
	*is_ckpt = (h & CKPT_FLAG) != 0;
	*n = h & ~CKPT_FLAG;
	if (*n == 0 || *n > (*is_ckpt ? QS_MAX_NOTE : QS_MAX_AUDIT_ENTRY))
		return "bad record length";
	if ((uint64_t)*n + REC_OVERHEAD > left)
		return "record runs past the end of the file";
	if (qs_merkle_leaf_hash(map + off + 4, *n, lh) != 0)
		return "cannot hash the record";
	if (memcmp(lh, map + off + 4 + *n, 4) != 0)
		return "record checksum mismatch";
	if (!*is_ckpt && memchr(map + off + 4, '\n', *n) != NULL)
		return "record contains a newline";
	return NULL;
}

/*
 * After a damaged record at `from`: is there a whole checkpoint record
 * further on that verifies? Then the damage is inside acknowledged entries,
 * not a torn tail. Found by the log's origin, which every checkpoint note
 * starts with; *at and *size say where and how many entries it covers.
 */
static int
later_checkpoint(struct tlog *log, const uint8_t *map, uint64_t flen, uint64_t from, uint64_t *at,
                 uint64_t *size)
{
	size_t olen = strlen(log->origin);
	const uint8_t *p = map + from;

	while ((p = memmem(p, (size_t)(map + flen - p), log->origin, olen)) != NULL) {
		uint64_t off = (uint64_t)(p - map);
		struct qs_checkpoint cp;
		qs_hash lh;
		uint32_t n;
		int is_ckpt;

		p++;
		if (off < from + 4 || check_record(map, flen, off - 4, &n, &is_ckpt, lh) != NULL ||
		    !is_ckpt || open_note(log, (const char *)map + off, n, &cp) != 0)
			continue;
		*at = off - 4;
		*size = cp.size;
		qs_errclear();
		return 1;
	}
	qs_errclear();
	return 0;
}

/*
 * Version 2: entry records and checkpoint records. Read every whole record
 * into the tree up to the first damaged one (or the end); the last
 * checkpoint record before it is the commit point and must verify and
 * match the tree; what follows it was never acknowledged and is cut off,
 * unless a verifying checkpoint lies beyond the damage (then the damage is
 * inside acknowledged entries: refused).
 */
static int
load_v2(struct tlog *log, struct tlog_open_report *rep)
{
	struct qs_checkpoint cp;
	uint8_t *map = NULL;
	uint64_t flen, off = MAGIC_LEN, count = 0, ck_end = 0, ck_count = 0, ck_off = 0;
	uint64_t later_at = 0, later_size = 0;
	uint32_t ck_len = 0, n = 0;
	const char *bad = NULL;
	qs_hash lh, root;
	int r, have_ck = 0, is_ckpt = 0;

	if ((r = map_entries(log, &map, &flen)) != 0)
		return r;
	while (off < flen && (bad = check_record(map, flen, off, &n, &is_ckpt, lh)) == NULL) {
		if (is_ckpt) {
			have_ck = 1;
			ck_off = off;
			ck_len = n;
			ck_count = count;
			ck_end = off + n + REC_OVERHEAD;
		} else {
			if ((r = offsets_reserve(log, count + 1)) != 0 ||
			    (r = qs_merkle_tree_append(log->tree, lh)) != 0)
				goto out;
			log->offsets[count++] = off;
		}
		off += n + REC_OVERHEAD;
	}
	if (bad != NULL && later_checkpoint(log, map, flen, off, &later_at, &later_size)) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit log corrupt: entry %llu at offset %llu: %s; the signed "
		            "checkpoint at offset %llu covers %llu entries",
		            (unsigned long long)count, (unsigned long long)off, bad,
		            (unsigned long long)later_at, (unsigned long long)later_size);
		goto out;
	}
	if (!have_ck) {
		munmap(map, (size_t)flen);
		if (count > 0)
			/* Keep the evidence: only a log being created lacks a
			 * checkpoint record. */
			return qs_fail(QS_ERR_PRECONDITION,
			               "audit log holds %llu entries but no checkpoint record",
			               (unsigned long long)count);
		return create_log(log, rep);
	}
	if ((r = open_note(log, (const char *)map + ck_off + 4, ck_len, &cp)) != 0)
		goto out;
	if (cp.size != ck_count) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit log has %llu entries but its signed checkpoint covers %llu: "
		            "entries were %s",
		            (unsigned long long)ck_count, (unsigned long long)cp.size,
		            ck_count < cp.size ? "deleted or the log was rolled back" : "inserted");
		goto out;
	}
	if ((r = qs_merkle_tree_truncate(log->tree, cp.size)) != 0 ||
	    (r = qs_merkle_tree_root(log->tree, cp.size, root)) != 0)
		goto out;
	if (memcmp(root, cp.root, QS_MERKLE_HASH_LEN) != 0) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "audit log does not match its signed checkpoint (size %llu): entries "
		            "were modified, deleted or reordered",
		            (unsigned long long)cp.size);
		goto out;
	}
	if ((log->ckpt = malloc(ck_len + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(log->ckpt, map + ck_off + 4, ck_len);
	log->ckpt[ck_len] = '\0';
	log->ckpt_len = ck_len;
	log->committed = cp.size;
	rep->size = cp.size;
	rep->dropped_records = count - ck_count;
	if (ck_end < flen) {
		if (ftruncate(log->fd, (off_t)ck_end) != 0 || fdatasync(log->fd) != 0) {
			r = qs_fail(QS_ERR_IO, "truncate uncommitted audit tail: %s",
			            strerror(errno));
			goto out;
		}
		rep->truncated_bytes = flen - ck_end;
		log_warn("audit_tail_truncated",
		         "cut %llu bytes (%llu complete records) past the checkpoint at %llu "
		         "entries",
		         (unsigned long long)(flen - ck_end),
		         (unsigned long long)rep->dropped_records, (unsigned long long)cp.size);
	}
	log->file_len = ck_end;
	/* A version 1 checkpoint file left by a migration cut short. */
	if (unlinkat(log->dirfd, CHECKPOINT, 0) == 0)
		(void)fsync(log->dirfd);
	r = 0;
out:
	munmap(map, (size_t)flen);
	return r;
}

/*
 * Version 1 to version 2, once the version 1 log has loaded: its
 * checkpoint becomes a checkpoint record at the end of the entries file
 * (synced), then the header says version 2 (synced), then the checkpoint
 * file goes. A crash after the first step leaves a version 1 file whose
 * last record is not an entry, cut off as a torn tail at the next open,
 * which migrates again; after the second, a version 2 file that opens.
 */
static int
migrate_v1(struct tlog *log)
{
	uint8_t *rec;
	size_t len;
	qs_hash ch;
	int r;

	if ((rec = malloc(REC_OVERHEAD + log->ckpt_len)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((r = qs_merkle_leaf_hash((const uint8_t *)log->ckpt, log->ckpt_len, ch)) != 0)
		goto out;
	len = put_record(rec, CKPT_FLAG, (const uint8_t *)log->ckpt, log->ckpt_len, ch);
	if (pwrite_all(log->fd, rec, len, log->file_len) != 0 || fdatasync(log->fd) != 0) {
		r = qs_fail(QS_ERR_IO, "migrate the audit log: append the checkpoint: %s",
		            strerror(errno));
		goto out;
	}
	qs_fault_crash("tlog.migrate_between");
	if (pwrite_all(log->fd, (const uint8_t *)MAGIC, MAGIC_LEN, 0) != 0 ||
	    fdatasync(log->fd) != 0) {
		r = qs_fail(QS_ERR_IO, "migrate the audit log: header: %s", strerror(errno));
		goto out;
	}
	log->file_len += len;
	qs_fault_crash("tlog.migrate_header");
	if (unlinkat(log->dirfd, CHECKPOINT, 0) != 0 || fsync(log->dirfd) != 0) {
		r = qs_fail(QS_ERR_IO, "migrate the audit log: remove %s: %s", CHECKPOINT,
		            strerror(errno));
		goto out;
	}
	log_info("audit_migrated",
	         "entries=%llu: the checkpoint is now a record of the entries "
	         "file (format 2)",
	         (unsigned long long)log->committed);
	r = 0;
out:
	free(rec);
	return r;
}

/* Version 1: the checkpoint file and the entries it covers, then the
 * migration to version 2. */
static int
open_v1(struct tlog *log, struct tlog_open_report *rep)
{
	struct qs_checkpoint cp;
	char *note = NULL;
	size_t note_len = 0;
	qs_hash root;
	int r;

	if ((r = read_v1_checkpoint(log, &note, &note_len, &cp)) != 0 ||
	    (r = load_v1_entries(log, &cp, note != NULL, rep)) != 0)
		goto out;
	if (note == NULL && ((r = qs_merkle_tree_root(log->tree, 0, root)) != 0 ||
	                     (r = sign_checkpoint(log, 0, root, &note, &note_len)) != 0))
		goto out;
	log->committed = cp.size;
	log->ckpt = note;
	log->ckpt_len = note_len;
	note = NULL;
	rep->size = cp.size;
	r = migrate_v1(log);
out:
	free(note);
	return r;
}

int
tlog_file_checkpoint(const uint8_t *buf, size_t len, const char **note, size_t *note_len,
                     size_t *end)
{
	uint64_t off = MAGIC_LEN;
	uint32_t n = 0;
	int is_ckpt = 0;
	qs_hash lh;

	*note = NULL;
	*note_len = 0;
	*end = 0;
	if (len < MAGIC_LEN || memcmp(buf, MAGIC, MAGIC_LEN) != 0)
		return qs_fail(QS_ERR_PRECONDITION, "entries: not an audit log of format 2");
	while (off < len && check_record(buf, len, off, &n, &is_ckpt, lh) == NULL) {
		if (is_ckpt) {
			*note = (const char *)buf + off + 4;
			*note_len = n;
			*end = off + n + REC_OVERHEAD;
		}
		off += n + REC_OVERHEAD;
	}
	if (*note == NULL)
		return qs_fail(QS_ERR_PRECONDITION, "entries: no checkpoint record");
	return 0;
}

int
tlog_dir_checkpoint(const char *dir, char **note, size_t *len)
{
	char path[4096];
	const char *n = NULL;
	uint8_t *map = MAP_FAILED;
	size_t nlen = 0, end = 0;
	struct stat st;
	int fd = -1, r;

	*note = NULL;
	*len = 0;
	if (snprintf(path, sizeof(path), "%s/" ENTRIES, dir) >= (int)sizeof(path))
		return qs_fail(QS_ERR_INVALID, "audit directory name too long");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0 && fstat(fd, &st) == 0 &&
	    st.st_size >= MAGIC_LEN &&
	    (map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) != MAP_FAILED &&
	    tlog_file_version(map, (size_t)st.st_size) == 2) {
		r = tlog_file_checkpoint(map, (size_t)st.st_size, &n, &nlen, &end);
		if (r == 0 && nlen > QS_MAX_NOTE)
			r = qs_fail(QS_ERR_INVALID, "%s: checkpoint record over %u bytes", path,
			            QS_MAX_NOTE);
		if (r == 0 && (*note = malloc(nlen + 1)) == NULL)
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
		if (r == 0) {
			memcpy(*note, n, nlen);
			(*note)[nlen] = '\0';
			*len = nlen;
		}
		goto out;
	}
	/* Format 1 (or no entries yet): the checkpoint file. */
	if (snprintf(path, sizeof(path), "%s/" CHECKPOINT, dir) >= (int)sizeof(path))
		return qs_fail(QS_ERR_INVALID, "audit directory name too long");
	{
		FILE *f = fopen(path, "re");
		size_t got;
		if (f == NULL) {
			r = errno == ENOENT ? qs_fail(QS_ERR_NOT_FOUND, "no checkpoint in %s", dir)
			                    : qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if ((*note = malloc(QS_MAX_NOTE + 1)) == NULL) {
			fclose(f);
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		got = fread(*note, 1, QS_MAX_NOTE + 1, f);
		fclose(f);
		if (got > QS_MAX_NOTE) {
			r = qs_fail(QS_ERR_INVALID, "%s: over %u bytes", path, QS_MAX_NOTE);
			goto out;
		}
		(*note)[got] = '\0';
		*len = got;
		r = 0;
	}
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)st.st_size);
	if (fd >= 0)
		close(fd);
	if (r != 0) {
		free(*note);
		*note = NULL;
		*len = 0;
	}
	return r;
}

int
tlog_file_version(const uint8_t *buf, size_t len)
{
	if (len >= MAGIC_LEN && memcmp(buf, MAGIC, MAGIC_LEN) == 0)
		return 2;
	if (len >= MAGIC_LEN && memcmp(buf, MAGIC_V1, MAGIC_LEN) == 0)
		return 1;
	return 0;
}

static int
open_state(struct tlog *log, struct tlog_open_report *rep)
{
	uint8_t head[MAGIC_LEN];
	struct qs_checkpoint cp;
	struct stat st;
	char *note = NULL;
	size_t note_len = 0;
	int r;

	log->fd = openat(log->dirfd, ENTRIES, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log->fd < 0)
		return qs_fail(QS_ERR_IO, "open entries: %s", strerror(errno));
	if (flock(log->fd, LOCK_EX | LOCK_NB) != 0)
		return qs_fail(QS_ERR_PRECONDITION, "audit log is in use by another process");
	if (fstat(log->fd, &st) != 0)
		return qs_fail(QS_ERR_IO, "stat entries: %s", strerror(errno));
	if (st.st_size < MAGIC_LEN) {
		/* No log yet, or a crash while creating one; but a version 1
		 * checkpoint of entries says they are missing. */
		if ((r = read_v1_checkpoint(log, &note, &note_len, &cp)) != 0)
			return r;
		free(note);
		if (note != NULL && cp.size != 0)
			return qs_fail(QS_ERR_PRECONDITION,
			               "audit entries file is missing but the checkpoint covers "
			               "%llu entries",
			               (unsigned long long)cp.size);
		return create_log(log, rep);
	}
	if (pread_all(log->fd, head, MAGIC_LEN, 0) != 0)
		return qs_fail(QS_ERR_IO, "read entries: %s", strerror(errno));
	if (memcmp(head, MAGIC, MAGIC_LEN) == 0)
		return load_v2(log, rep);
	if (memcmp(head, MAGIC_V1, MAGIC_LEN) == 0)
		return open_v1(log, rep);
	return qs_fail(QS_ERR_PRECONDITION, "entries file is not an audit log (bad header)");
}

/* A log with nothing loaded yet, either backend. */
static int
tlog_new(const char *origin, const struct qs_note_signer *signer, struct tlog **out)
{
	struct tlog *log;
	int r;

	*out = NULL;
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
	pthread_mutex_init(&log->db_mu, NULL);
	pthread_cond_init(&log->work_cv, NULL);
	pthread_cond_init(&log->done_cv, NULL);
	if ((r = qs_merkle_tree_new(&log->tree)) != 0) {
		tlog_close(log);
		return r;
	}
	*out = log;
	return 0;
}

static int
start_writer(struct tlog *log)
{
	if (pthread_create(&log->writer, NULL, writer_main, log) != 0)
		return qs_fail(QS_ERR_NOMEM, "cannot start the audit writer thread");
	log->writer_started = 1;
	return 0;
}

/* Store mode: a new log's first checkpoint (the empty tree's) in the head
 * row, or the existing log read and checked. */
static int
open_store_state(struct tlog *log, struct tlog_open_report *rep)
{
	uint64_t size = 0;
	char *note = NULL, *mine = NULL;
	size_t len = 0, mine_len = 0;
	qs_hash root;
	int r;

	pthread_mutex_lock(&log->db_mu);
	if ((r = store_log_lock(log->st, &size, &note, &len)) != 0)
		goto out;
	if (size == 0 && len == 0) {
		if ((r = qs_merkle_tree_root(log->tree, 0, root)) != 0 ||
		    (r = sign_checkpoint(log, 0, root, &mine, &mine_len)) != 0) {
			store_log_abort(log->st);
			goto out;
		}
		if ((r = store_log_commit(log->st, 0, NULL, 0, mine, mine_len)) != 0)
			goto out;
		log->ckpt = mine;
		log->ckpt_len = mine_len;
		mine = NULL;
		rep->created = 1;
		goto out;
	}
	/* Read unlocked: what is below the committed head never changes, and
	 * the other replicas go on appending meanwhile. */
	store_log_abort(log->st);
	r = catch_up(log, 0, size, note, len);
out:
	pthread_mutex_unlock(&log->db_mu);
	rep->size = log->committed;
	free(note);
	free(mine);
	return r;
}

int
tlog_refresh(struct tlog *log)
{
	uint64_t size = 0;
	char *note = NULL;
	size_t len = 0;
	int r;

	if (log->st == NULL)
		return 0;
	pthread_mutex_lock(&log->db_mu);
	if ((r = store_log_head(log->st, &size, &note, &len)) == 0)
		r = catch_up(log, 0, size, note, len);
	pthread_mutex_unlock(&log->db_mu);
	free(note);
	return r;
}

/* The files in dir (st NULL) or the log kept in the store st. */
static int
open_log(const char *dir, struct store *st, const char *origin, const struct qs_note_signer *signer,
         struct tlog **out, struct tlog_open_report *rep)
{
	struct tlog_open_report dummy;
	struct tlog *log = NULL;
	int r;

	*out = NULL;
	if (rep == NULL)
		rep = &dummy;
	memset(rep, 0, sizeof(*rep));
	if ((r = tlog_new(origin, signer, &log)) != 0)
		return r;
	if (st != NULL) {
		log->st = st;
		if ((r = open_store_state(log, rep)) != 0)
			goto out;
		dir = "(store)";
	} else {
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
	}
	if ((r = start_writer(log)) != 0)
		goto out;
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

int
tlog_open(const char *dir, const char *origin, const struct qs_note_signer *signer,
          struct tlog **out, struct tlog_open_report *rep)
{
	return open_log(dir, NULL, origin, signer, out, rep);
}

int
tlog_open_store(struct store *st, const char *origin, const struct qs_note_signer *signer,
                struct tlog **out, struct tlog_open_report *rep)
{
	*out = NULL;
	if (!store_log_shared(st))
		return qs_fail(QS_ERR_INVALID, "this store keeps no audit log");
	return open_log(NULL, st, origin, signer, out, rep);
}

void
tlog_close(struct tlog *log)
{
	if (log == NULL)
		return;
	if (log->writer_started) {
		struct tlog_stats *st = &log->stats;
		pthread_mutex_lock(&log->mu);
		log->stopping = 1;
		pthread_cond_signal(&log->work_cv);
		pthread_mutex_unlock(&log->mu);
		pthread_join(log->writer, NULL);
		if (st->batches > 0)
			log_info("audit_commit_stages",
			         "batches=%llu entries=%llu avg_us: prepare=%llu sign=%llu "
			         "write=%llu fdatasync=%llu",
			         (unsigned long long)st->batches, (unsigned long long)st->entries,
			         (unsigned long long)(st->us_prepare / st->batches),
			         (unsigned long long)(st->us_sign / st->batches),
			         (unsigned long long)(st->us_write / st->batches),
			         (unsigned long long)(st->us_sync / st->batches));
	}
	if (log->fd >= 0)
		close(log->fd);
	if (log->dirfd >= 0)
		close(log->dirfd);
	qs_merkle_tree_free(log->tree);
	free(log->offsets);
	free(log->ckpt);
	free(log->last);
	pthread_cond_destroy(&log->work_cv);
	pthread_cond_destroy(&log->done_cv);
	pthread_mutex_destroy(&log->mu);
	pthread_mutex_destroy(&log->db_mu);
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
	int r;

	*note = NULL;
	*len = 0;
	/* Store mode: what the other replicas committed too. */
	if ((r = tlog_refresh(log)) != 0)
		return r;
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
	if (log->st != NULL) {
		pthread_mutex_unlock(&log->mu);
		return store_log_entry(log->st, index, bytes, len);
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
tlog_read(struct tlog *log, uint64_t from, uint64_t to,
          int (*fn)(void *arg, uint64_t index, const uint8_t *data, size_t len), void *arg)
{
	uint64_t committed;
	int r = 0;

	pthread_mutex_lock(&log->mu);
	committed = log->committed;
	pthread_mutex_unlock(&log->mu);
	if (to > committed)
		return qs_fail(QS_ERR_NOT_FOUND, "no audit entry %llu",
		               (unsigned long long)committed);
	if (from >= to)
		return 0;
	if (log->st != NULL)
		return store_log_read(log->st, 0, from, to, fn, arg);
	for (uint64_t i = from; i < to && r == 0; i++) {
		uint8_t *b = NULL;
		size_t len = 0;
		if ((r = tlog_entry(log, i, &b, &len)) == 0)
			r = fn(arg, i, b, len);
		free(b);
	}
	return r;
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

/* Store mode: a tree size another replica committed (an auditor holding
 * its checkpoint) is answered after catching up with it. */
static int
refresh_for(struct tlog *log, uint64_t size)
{
	if (log->st == NULL || size <= tlog_size(log))
		return 0;
	return tlog_refresh(log);
}

int
tlog_inclusion_proof(struct tlog *log, uint64_t index, uint64_t tree_size, qs_hash *path,
                     size_t cap, size_t *path_len)
{
	int r;

	*path_len = 0;
	if ((r = refresh_for(log, tree_size)) != 0)
		return r;
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
	if ((r = refresh_for(log, size2)) != 0)
		return r;
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
