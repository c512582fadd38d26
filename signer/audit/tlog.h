/*
 * tlog.h - the audit log on disk: an append-only file of entries, an RFC
 * 6962 Merkle tree over them (proto/merkle.h) and signed C2SP checkpoints
 * (proto/note.h), with group commit.
 *
 * Directory layout (one log per directory, owned by one process: tlog_open
 * takes an exclusive flock on the entries file): one file, `entries`,
 *
 *   "QSTLOG2\n" (8 bytes), then records:
 *     u32 big-endian  n, the data length; with the top bit set (0x80000000)
 *                     a checkpoint record (n 1..QS_MAX_NOTE), else an entry
 *                     record (n 1..QS_MAX_AUDIT_ENTRY)
 *     n bytes         an entry (the Merkle leaf data; no '\n'), or the
 *                     signed checkpoint note of the tree of every entry
 *                     record before it
 *     u32 big-endian  the first 4 bytes of SHA-256(0x00 || data) (for an
 *                     entry its leaf hash: a checksum that costs nothing)
 *
 * A group commit is one write of its entry records followed by the
 * checkpoint record of the new tree, and one fdatasync: no file is created,
 * renamed or synced besides. The checkpoint record is the commit point: an
 * entry is committed when a checkpoint record after it is durable, and
 * tlog_append returns only then. tlog_open reads records up to the first
 * damaged one (or the end); the last checkpoint record before it must
 * verify and cover exactly the entry records before it; what follows it was
 * never acknowledged to anybody (a torn write after a crash, a batch whose
 * fdatasync did not finish) and is cut off and reported. Anything wrong
 * inside the committed part refuses to open (QS_ERR_PRECONDITION): an entry
 * modified, deleted, inserted or reordered (the root or the count differs),
 * a checkpoint that does not verify, and a damaged record followed by a
 * checkpoint record that verifies (the damage is inside acknowledged
 * entries, not a torn tail). A damaged last checkpoint record itself is
 * indistinguishable from one whose write never finished.
 *
 * Format 1 (the entries file "QSTLOG1\n" of entry records only, the
 * checkpoint in a file `checkpoint` replaced by rename) is checked as it
 * always was and migrated at open: its checkpoint is appended as a
 * checkpoint record (synced), then the header becomes "QSTLOG2\n" (synced),
 * then the checkpoint file is removed. A crash between the steps leaves a
 * log that opens and migrates again.
 *
 * Detecting a rollback of the file to an older consistent state needs
 * state kept elsewhere: auditors remember the last checkpoint they saw and
 * demand a consistency proof from it.
 *
 * The log kept in the store (tlog_open_store; PostgreSQL, shared by
 * replicas): the same tree, entries and checkpoints, kept in the store's
 * tables (store_log_* in signer/store/store.h) instead of the entries file.
 * A group commit is one transaction that locks the log's head row, takes in
 * the entries other replicas committed since (checked against their signed
 * checkpoint, as at open), extends the tree, signs the new checkpoint,
 * inserts the entries and the new head, and commits: the COMMIT is the
 * commit point, and tlog_append returns only once it returned. Leaf indexes
 * are assigned under the lock, so entries that carry their own index are
 * made by tlog_append_render. A failed COMMIT fails the batch like a
 * failed fdatasync (QS_ERR_UNAVAILABLE; if its answer was lost it may have
 * committed after all: the next lock reads it back, and nobody was told).
 * Proofs come from the tree in memory, caught up with the database by
 * every commit, by tlog_checkpoint (tlog_refresh) and by a proof for a tree
 * size beyond this process's: an auditor gets the same log from every
 * replica and cannot tell which backend keeps it.
 *
 * Thread safety: every function may be called from any thread while the log
 * is open; tlog_close must not race with anything.
 */
#ifndef QS_TLOG_H
#define QS_TLOG_H

#include <stddef.h>
#include <stdint.h>

#include "merkle.h"
#include "note.h"

struct tlog;
struct store;

/* One entry to append: caller-owned bytes, borrowed for the call. */
struct tlog_rec {
	const uint8_t *data;
	size_t len;
};

/* What tlog_open found. */
struct tlog_open_report {
	uint64_t size;            /* committed entries */
	uint64_t dropped_records; /* complete records past the checkpoint, cut off */
	uint64_t truncated_bytes; /* bytes cut off the end of entries (those records,
	                             a torn record, garbage) */
	int created;              /* 1 if a new, empty log was created */
};

/* Counters since open, for tests and metrics. */
struct tlog_stats {
	uint64_t batches;      /* group commits that succeeded */
	uint64_t entries;      /* entries they committed */
	uint64_t entry_fsyncs; /* fdatasync calls on the entries file */
	uint64_t failed_batches;
	uint64_t repairs; /* successful roll-backs after a failed batch */
	/* Time the successful batches spent in each stage of a commit (us,
	 * summed): hashing and extending the tree, signing the checkpoint,
	 * writing the records, the fdatasync. tlog_close logs the averages. */
	uint64_t us_prepare, us_sign, us_write, us_sync;
};

/*
 * Open (or create, with its directory, mode 0700) the log in dir for the
 * log named origin, whose checkpoints signer signs; the checkpoint's
 * signature is checked with signer->pub and its origin line must equal
 * origin. Reads every record, rebuilds the tree and checks it against the
 * checkpoint as described above; starts the writer thread.
 * *signer is copied; the name, key and arg it points to must outlive the
 * log. rep may be NULL. Free with tlog_close.
 * Errors: QS_ERR_PRECONDITION (the log does not match its checkpoint, is
 * locked by another process, or files are missing; the detail says which),
 * QS_ERR_INVALID (bad origin), QS_ERR_IO, QS_ERR_NOMEM, or the signer's error
 * when a new log's first checkpoint cannot be signed.
 */
int tlog_open(const char *dir, const char *origin, const struct qs_note_signer *signer,
              struct tlog **out, struct tlog_open_report *rep);

/*
 * Open the log kept in the store st (store_log_shared(st)), shared by every
 * replica on it; created (the empty tree's checkpoint) if it has none. The
 * entries are read and checked against the signed checkpoint as tlog_open
 * does (QS_ERR_PRECONDITION when they do not match). st must outlive the
 * log. Errors as tlog_open, and QS_ERR_UNAVAILABLE (database unreachable).
 */
int tlog_open_store(struct store *st, const char *origin, const struct qs_note_signer *signer,
                    struct tlog **out, struct tlog_open_report *rep);

/* Store mode: take in what other replicas committed (tlog_checkpoint does);
 * 0 at once for the file log. Errors: QS_ERR_UNAVAILABLE, QS_ERR_PRECONDITION
 * (the database's log does not match its checkpoint or went back). */
int tlog_refresh(struct tlog *log);

/* Stop the writer (after it has finished what is queued) and free the log.
 * NULL is fine. */
void tlog_close(struct tlog *log);

/*
 * Append n entries (1..QS_MAX_AUDIT_APPEND, each 1..QS_MAX_AUDIT_ENTRY bytes
 * without '\n', together at most QS_MAX_AUDIT_BATCH_BYTES of records) as
 * consecutive leaves. Blocks until they are durable and covered by a
 * durable signed checkpoint; concurrent callers share one write, one
 * fdatasync and one checkpoint. *first_index is the index of entries[0].
 * If writing, syncing or signing fails the whole batch is undone (the file
 * is truncated back; if even that fails, the next batch retries it before
 * writing), every caller in it gets QS_ERR_UNAVAILABLE, and none of those
 * entries ever becomes committed. The next call tries again.
 * Errors: QS_ERR_INVALID (bad entries), QS_ERR_UNAVAILABLE (see above; the
 * detail names the failing step and errno), QS_ERR_NOMEM.
 */
int tlog_append(struct tlog *log, const struct tlog_rec *entries, size_t n, uint64_t *first_index);

/*
 * As tlog_append, for entries that carry their own leaf index: the writer
 * calls render(arg, first, prev, prev_len, recs, n) once the index of the
 * first is known (in store mode, under the head's lock) to fill recs[0..n)
 * with entries for leaves first..first+n-1 (bytes owned by the caller,
 * valid until this returns; together at most max_bytes of records, each
 * entry's length + 8). prev is the entry before first when this process
 * has seen it (else NULL): entries may depend on it (their time never
 * goes back across replicas). A render error fails the batch it is in.
 */
typedef int (*tlog_render_fn)(void *arg, uint64_t first, const uint8_t *prev, size_t prev_len,
                              struct tlog_rec *recs, size_t n);
int tlog_append_render(struct tlog *log, size_t n, size_t max_bytes, tlog_render_fn render,
                       void *arg, uint64_t *first_index);

/* Committed entries (the latest checkpoint's tree size). */
uint64_t tlog_size(struct tlog *log);

/* The latest signed checkpoint, malloc'd and NUL-terminated (len excludes
 * the NUL); in store mode after tlog_refresh. Errors: QS_ERR_NOMEM, and
 * tlog_refresh's. */
int tlog_checkpoint(struct tlog *log, char **note, size_t *len);

/* A copy of committed entry index (malloc'd). Errors: QS_ERR_NOT_FOUND
 * (index >= tlog_size), QS_ERR_IO, QS_ERR_NOMEM. */
int tlog_entry(struct tlog *log, uint64_t index, uint8_t **bytes, size_t *len);

/*
 * Committed entries from..to-1 (to <= tlog_size), in order, to fn
 * (store_log_fn of signer/store/store.h: the bytes are borrowed for the
 * call); a non-zero return stops the read and is returned. In store mode
 * one range query per few thousand entries, not one per entry.
 * Errors: QS_ERR_NOT_FOUND (to past tlog_size), QS_ERR_IO, the store's.
 */
int tlog_read(struct tlog *log, uint64_t from, uint64_t to,
              int (*fn)(void *arg, uint64_t index, const uint8_t *data, size_t len), void *arg);

/* Root of the committed tree at size (<= tlog_size). Errors: QS_ERR_INVALID. */
int tlog_root(struct tlog *log, uint64_t size, qs_hash out);

/*
 * Inclusion proof for entry index in the tree of tree_size entries
 * (index < tree_size <= tlog_size), as qs_merkle_tree_inclusion_proof.
 * Errors: QS_ERR_INVALID, QS_ERR_EXHAUSTED (cap).
 */
int tlog_inclusion_proof(struct tlog *log, uint64_t index, uint64_t tree_size, qs_hash *path,
                         size_t cap, size_t *path_len);

/* Consistency proof between sizes size1 <= size2 <= tlog_size, as
 * qs_merkle_tree_consistency_proof. Errors: QS_ERR_INVALID, QS_ERR_EXHAUSTED. */
int tlog_consistency_proof(struct tlog *log, uint64_t size1, uint64_t size2, qs_hash *path,
                           size_t cap, size_t *path_len);

/* Counters since open. */
void tlog_get_stats(struct tlog *log, struct tlog_stats *st);

/* Format of the bytes of an entries file: 2, 1 (to be migrated), or 0. */
int tlog_file_version(const uint8_t *buf, size_t len);

/*
 * In the bytes of a format 2 entries file (a copy, for backups): the last
 * checkpoint record before the first damaged record or the end. *note
 * points into buf (not NUL-terminated; signature not checked), *end is the
 * length of the prefix that ends with that record.
 * Errors: QS_ERR_PRECONDITION (not format 2, or no checkpoint record).
 */
int tlog_file_checkpoint(const uint8_t *buf, size_t len, const char **note, size_t *note_len,
                         size_t *end);

/*
 * The newest checkpoint note of the log in `dir` as its files say, for a
 * process that does not own the log (a signer helper at start): the last
 * checkpoint record of a format 2 entries file, else the checkpoint file
 * of format 1. Read only, no lock, signature not checked. *note malloc'd
 * (NUL-terminated). QS_ERR_NOT_FOUND for a log not created yet.
 */
int tlog_dir_checkpoint(const char *dir, char **note, size_t *len);

#endif
