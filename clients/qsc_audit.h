/*
 * qsc_audit.h - verify qsignd's audit log offline, entry by entry.
 *
 * The log is a sequence of entries (canonical JSON objects, see
 * proto/audit.proto) under an RFC 6962 Merkle tree whose root a signed
 * checkpoint states. A qsc_audit_verifier takes the entries in order, one
 * call each, and keeps only what the checks need (the tree's right edge,
 * O(log n) hashes; the policies and open requests the log names), never the
 * entries: memory does not grow with the number of entries. It checks:
 *
 *   - every entry is a JSON object with "seq" equal to its index, an
 *     integer "time" not before the previous entry's, and an "event";
 *   - every approval or rejection (request.vote) verifies with the voter's
 *     key in a policy version the log itself recorded, from the request's
 *     own version up to the one in force at the vote;
 *   - at most one request.signed entry per request, unless a
 *     request.superseded entry names the earlier one;
 *
 * and computes the Merkle root of the entries so far, to compare with a
 * checkpoint the caller has verified (qs_note_open + qs_checkpoint_parse).
 * Problems are reported through a callback, one sentence each, and
 * verification goes on, so that one run lists all of them, always in the
 * order of the entries they are about.
 *
 * Approval signatures are checked by a few threads of the verifier's own
 * (at most 4, no more than the CPUs the process may use) once a log has
 * many; a bounded queue (256 checks) keeps memory independent of the log's
 * size. The problems of an entry can therefore be reported during a later
 * qsc_audit_verifier_add, after the leaf callbacks of later entries; all of
 * them have been reported when qsc_audit_verify_jsonl (also with an
 * error: those of the entries before it) or qsc_audit_verifier_totals
 * returns. The callbacks are only ever called on the thread that called
 * the verifier; the problem callback may call qsc_audit_verifier_totals.
 *
 * `qsign audit verify` (online and --offline) is built on this API; it is
 * the place to look for a complete use (state file, checkpoint, export).
 *
 * Thread model: one verifier is used by one thread at a time (its checking
 * threads are its own business). A child forked while a verifier's
 * threads run must neither use nor free that verifier (the threads are
 * not in the child): fork before creating it, or after freeing it.
 * Errors: 0 or a negative QS_ERR_* code with qs_errdetail() (qs_err.h).
 */
#ifndef QSC_AUDIT_H
#define QSC_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QSC_AUDIT_HASH_LEN 32

typedef struct qsc_audit_verifier qsc_audit_verifier;

struct qsc_audit_callbacks {
	/* A problem with the log: a NUL-terminated sentence without a final
	 * newline, text taken from the log included verbatim (filter it
	 * before printing it to a terminal). Required. */
	void (*problem)(void *arg, const char *msg);
	/* The leaf hash SHA-256(0x00 || entry) of entry index, for every
	 * entry in order, once it is counted: qsc_audit_verifier_root called
	 * from here is the root of entries 0..index (for example to compare
	 * with an older checkpoint), and the leaves may be remembered for
	 * later. May be NULL. */
	void (*leaf)(void *arg, uint64_t index, const uint8_t hash[QSC_AUDIT_HASH_LEN]);
	void *arg;
};

/* What a verifier has seen so far. */
struct qsc_audit_totals {
	uint64_t entries;
	uint64_t problems;   /* problem callbacks so far */
	uint64_t approvals;  /* approvals whose signature verified */
	uint64_t rejections; /* rejections whose signature verified */
};

/* A verifier for a log's entries from index 0. *cb is copied.
 * Errors: QS_ERR_INVALID (no problem callback), QS_ERR_NOMEM. */
int qsc_audit_verifier_new(const struct qsc_audit_callbacks *cb, qsc_audit_verifier **out);

/* NULL is fine. */
void qsc_audit_verifier_free(qsc_audit_verifier *v);

/*
 * The next entry (index qsc_audit_verifier_totals().entries), exactly its
 * bytes (no newline). What is wrong with the entry is a problem, not an
 * error. Errors: QS_ERR_INVALID (len 0 or above QS_MAX_AUDIT_ENTRY; the
 * entry is not counted), QS_ERR_NOMEM, QS_ERR_CRYPTO.
 */
int qsc_audit_verifier_add(qsc_audit_verifier *v, const uint8_t *entry, size_t len);

/*
 * Feed every entry of an export's entries.jsonl (one entry per line,
 * exactly its bytes, each line ending in '\n'), read sequentially with a
 * fixed buffer. v may be NULL: then the file is only checked to be well
 * formed (to refuse a truncated export before reporting anything about
 * its entries). *count (may be NULL) is the number of lines read.
 * Errors: QS_ERR_IO (cannot read), QS_ERR_INVALID (a line that is empty,
 * too long or not ending in '\n'; the detail names the path and line),
 * and qsc_audit_verifier_add's.
 */
int qsc_audit_verify_jsonl(qsc_audit_verifier *v, const char *path, uint64_t *count);

/* Merkle root (RFC 6962 MTH) of the entries added so far; of none:
 * SHA-256(""). Errors: QS_ERR_CRYPTO. */
int qsc_audit_verifier_root(const qsc_audit_verifier *v, uint8_t root[QSC_AUDIT_HASH_LEN]);

/* The totals once every entry added so far is checked and its problems
 * reported (waits for the checks in flight). */
void qsc_audit_verifier_totals(qsc_audit_verifier *v, struct qsc_audit_totals *t);

/*
 * How many threads check approval signatures: 0 for none (the calling
 * thread checks each as it comes), n > 0 for a pool of min(n, 4) from the
 * first approval on, -1 for the default (min(4, usable CPUs) from the 64th
 * approval on, none with one CPU). The verdicts and the order of the
 * problems are the same in every case. Before the first entry.
 * Errors: QS_ERR_INVALID.
 */
int qsc_audit_verifier_threads(qsc_audit_verifier *v, int n);

#ifdef __cplusplus
}
#endif

#endif
