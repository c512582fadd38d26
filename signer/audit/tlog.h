/*
 * tlog.h - the audit log on disk: an append-only file of entries, an RFC
 * 6962 Merkle tree over them (proto/merkle.h) and the latest signed C2SP
 * checkpoint (proto/note.h), with group commit.
 *
 * Directory layout (one log per directory, owned by one process: tlog_open
 * takes an exclusive flock on the entries file):
 *
 *   entries     "QSTLOG1\n" (8 bytes), then one record per entry:
 *                 u32 big-endian  n, the entry length, 1..QS_MAX_AUDIT_ENTRY
 *                 n bytes         the entry (the Merkle leaf data; no '\n')
 *                 u32 big-endian  the first 4 bytes of the entry's leaf hash
 *                                 SHA-256(0x00 || entry), a checksum that
 *                                 costs nothing: the tree needs the hash
 *   checkpoint  the latest signed note; replaced atomically (write
 *               checkpoint.tmp, fsync, rename, fsync the directory)
 *
 * The checkpoint is the commit point. An entry is committed when a
 * checkpoint covering it is durable, and tlog_append returns only then.
 * Records past the checkpoint were never acknowledged to anybody: tlog_open
 * cuts them off (a torn record after a crash, garbage, a batch whose
 * checkpoint did not make it), reports it, and keeps everything before.
 * Anything wrong *inside* the checkpointed prefix (a bad checksum, an entry
 * modified, deleted or reordered, fewer entries than the checkpoint covers,
 * a checkpoint that does not verify) refuses to open: QS_ERR_PRECONDITION.
 *
 * Detecting a rollback of *both* files to an older consistent pair needs
 * state kept elsewhere: auditors remember the last checkpoint they saw and
 * demand a consistency proof from it.
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

/* Committed entries (the latest checkpoint's tree size). */
uint64_t tlog_size(struct tlog *log);

/* The latest signed checkpoint, malloc'd and NUL-terminated (len excludes
 * the NUL). Errors: QS_ERR_NOMEM. */
int tlog_checkpoint(struct tlog *log, char **note, size_t *len);

/* A copy of committed entry index (malloc'd). Errors: QS_ERR_NOT_FOUND
 * (index >= tlog_size), QS_ERR_IO, QS_ERR_NOMEM. */
int tlog_entry(struct tlog *log, uint64_t index, uint8_t **bytes, size_t *len);

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

#endif
