/*
 * store.h - the daemon's state, behind a small interface.
 *
 * Callers use only the store_* functions below; a backend (SQLite,
 * store_sqlite.c; PostgreSQL for replicated deployments, store_pg.c) provides a struct
 * store_ops. Every function that writes returns only once the change is
 * durable (survives kill -9 and power loss), so a caller may acknowledge it.
 *
 * Errors: QS_ERR_DB (backend failure, detail has the backend's message),
 * QS_ERR_NOT_FOUND, QS_ERR_PRECONDITION (state directory of another program
 * or a newer schema), QS_ERR_EXISTS.
 */
#ifndef QS_STORE_H
#define QS_STORE_H

#include <stddef.h>
#include <stdint.h>

/* One signature produced by the daemon. */
struct store_sig {
	int64_t time_ms;
	const char *principal; /* who asked */
	const char *role;
	const char *key;       /* policy key name */
	const char *key_id;    /* hex SHA-256 of SPKI */
	const char *kind;      /* "digest" | "blob" */
	const char *algorithm; /* the key's scheme (hsm_keytype_name): audit only */
	const char *hash;      /* "sha256", "sha384", "sha512" (qs_hash_lookup): audit only */
	uint8_t digest[64];    /* the digest signed (Ed25519: SHA-256 of the message) */
	size_t digest_len;     /* 32, 48 or 64 */
	uint64_t policy_version;
	uint64_t seq; /* its audit entry (the index derived from the log); 0 otherwise */
};

/* Request states (numbers as in qsign.proto RequestState). */
enum store_req_state {
	REQ_PENDING = 1,
	REQ_APPROVED = 2,
	REQ_SIGNED = 3,
	REQ_REJECTED = 4,
	REQ_CANCELLED = 5,
	REQ_EXPIRED = 6,
	REQ_FAILED = 7,
};

#define STORE_ID_LEN 32 /* request ids: 16 random bytes, hex */

struct store_vote {
	char approver[65];
	int approve;
	int64_t time; /* as signed, unix seconds */
	uint8_t sig[128];
	size_t sig_len;
	char *reason;
};

struct store_reqsig {
	char key[65];
	char key_id[65];
	char algorithm[16];
	uint8_t sig[528];
	size_t sig_len;
};

struct store_request {
	char id[STORE_ID_LEN + 1];
	char role[65];
	char kind[65];
	char submitter[65];
	char client_token[65];
	char *message;
	uint8_t *payload; /* NULL unless asked for */
	size_t payload_len;
	uint8_t digest[32];
	char hash[8]; /* the signature's hash: "sha256" (also ""), "sha384", "sha512" */
	int state;
	int64_t created, expires; /* unix seconds */
	uint64_t policy_version;
	char *state_message;
	struct store_vote *votes;
	size_t nvotes;
	struct store_reqsig *sigs;
	size_t nsigs;
	uint8_t *result; /* kind-specific result of a SIGNED request, or NULL */
	size_t result_len;
};

void store_request_free(struct store_request *r);
void store_request_list_free(struct store_request **v, size_t n);

struct store;

/* One audit entry of the log kept in the store (borrowed bytes). */
struct store_log_rec {
	const uint8_t *data;
	size_t len;
};
/* Called for each entry store_log_read finds, in order; non-zero stops. */
typedef int (*store_log_fn)(void *arg, uint64_t seq, const uint8_t *data, size_t len);

/*
 * Everything a store holds, row by row, as store_dump hands it over (and
 * store_import takes it): policy versions, signature records, requests
 * with their votes, signatures and payload, and documents, each in the
 * order it was made. arg is the caller's; non-zero stops the dump and is
 * returned by it.
 */
struct store_sink {
	int (*policy)(void *arg, uint64_t version, const char *text);
	int (*signatures)(void *arg, const struct store_sig *sigs, size_t n);
	int (*request)(void *arg, const struct store_request *r);
	int (*doc)(void *arg, const char *ns, const char *name, uint64_t version,
	           const uint8_t *data, size_t len);
};

struct store_ops {
	const char *name;
	int shared; /* other processes (replicas) write it too */
	void (*close)(struct store *s);
	int (*policy_current)(struct store *s, uint64_t *version, char **text);
	int (*policy_get)(struct store *s, uint64_t version, char **text);
	int (*policy_version)(struct store *s, uint64_t *version);
	int (*policy_add)(struct store *s, uint64_t version, const char *text);
	int (*record_signatures)(struct store *s, const struct store_sig *sigs, size_t n);
	int (*count_signatures)(struct store *s, uint64_t *n);
	/* Optional (NULL: signatures are recorded with record_signatures on
	 * the signing path): the signature index as state derived from the
	 * audit log (signer/store/sigindex.c). */
	int (*index_next)(struct store *s, uint64_t *next);
	int (*index_apply)(struct store *s, const struct store_sig *sigs, size_t n,
	                   const uint64_t *failed, size_t nfailed, uint64_t next, int detach);
	int (*req_insert)(struct store *s, const struct store_request *r);
	int (*req_find_token)(struct store *s, const char *submitter, const char *token, char *id);
	int (*req_get)(struct store *s, const char *id, int with_payload,
	               struct store_request **out);
	int (*req_list)(struct store *s, int state, const char *role, size_t limit,
	                struct store_request ***out, size_t *n);
	int (*req_vote)(struct store *s, const char *id, const struct store_vote *v, int replace,
	                int new_state, const char *msg);
	int (*req_claim)(struct store *s, const char *id);
	void (*req_unclaim)(struct store *s, const char *id);
	int (*req_transition)(struct store *s, const char *id, int from, int to, const char *msg);
	int (*req_finish)(struct store *s, const char *id, const struct store_reqsig *sigs,
	                  size_t n, const uint8_t *result, size_t result_len,
	                  uint64_t policy_version, const char *policy_text);
	int (*doc_put)(struct store *s, const char *ns, const char *name, uint64_t version,
	               const uint8_t *data, size_t len);
	int (*doc_put_many)(struct store *s, const char *ns, size_t n, const char *const *names,
	                    const uint64_t *versions, const uint8_t *const *data,
	                    const size_t *lens);
	int (*doc_get)(struct store *s, const char *ns, const char *name, uint64_t version,
	               uint8_t **data, size_t *len, uint64_t *version_out);
	int (*doc_list)(struct store *s, const char *ns, char ***names, size_t *n);
	/* Optional (NULL: the audit log stays in files, signer/audit/tlog.c):
	 * the audit log kept in the store, shared by every replica. */
	int (*log_lock)(struct store *s, uint64_t *size, char **note, size_t *len);
	int (*log_read)(struct store *s, int locked, uint64_t from, uint64_t to, store_log_fn fn,
	                void *arg);
	int (*log_commit)(struct store *s, uint64_t first, const struct store_log_rec *recs,
	                  size_t n, const char *note, size_t note_len);
	void (*log_abort)(struct store *s);
	int (*log_head)(struct store *s, uint64_t *size, char **note, size_t *len);
	int (*log_entry)(struct store *s, uint64_t seq, uint8_t **data, size_t *len);
	/* Optional (NULL: QS_ERR_UNIMPLEMENTED): moving a whole store to
	 * another (qsignd migrate-store). dump reads everything in one
	 * snapshot; import_* write it in one transaction. */
	int (*dump)(struct store *s, const struct store_sink *sink, void *arg);
	int (*import_begin)(struct store *s);
	const struct store_sink *import_sink;
	int (*import_log)(struct store *s, uint64_t first, const struct store_log_rec *recs,
	                  size_t n);
	int (*import_commit)(struct store *s, uint64_t size, const char *note, size_t note_len);
	void (*import_abort)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

/* Open (creating on first use) the SQLite state in `state_dir`/state.db.
 * Refuses a database whose schema version is newer than ours or that was
 * not created by quorum-signer (QS_ERR_PRECONDITION). */
int store_open_sqlite(const char *state_dir, struct store **out);

/* Open the state in a PostgreSQL database (libpq conninfo, multi-host
 * allowed; a standby is refused: QS_ERR_UNAVAILABLE). Creates the schema
 * "qsign" on first use if `create` (else QS_ERR_NOT_FOUND when absent);
 * refuses a foreign or newer schema (QS_ERR_PRECONDITION), a malformed
 * conninfo (QS_ERR_INVALID). Later calls fail with QS_ERR_UNAVAILABLE while
 * no writable primary answers, and recover by themselves when one does. */
int store_open_pg(const char *conninfo, int create, struct store **out);

void store_close(struct store *s);

/* Latest policy version and its text (*text malloc'd). QS_ERR_NOT_FOUND when
 * the store has no policy yet (first start). */
int store_policy_current(struct store *s, uint64_t *version, char **text);
int store_policy_get(struct store *s, uint64_t version, char **text);
/* The newest policy version (0 if none), without its text: a cheap query,
 * asked before every call where the store is shared. */
int store_policy_version(struct store *s, uint64_t *version);
/* 1 if other qsignd processes (replicas) write this store too, so that what
 * this process holds in memory (the policy in force) may lag behind it. */
int store_shared(const struct store *s);
/* Add a policy version; it must be exactly current+1 (or 1 on an empty
 * store), else QS_ERR_PRECONDITION. */
int store_policy_add(struct store *s, uint64_t version, const char *text);

/* Record n signatures in one transaction. Concurrent callers are
 * group-committed. Durable against a process crash (kill -9); the record
 * that also survives power loss is the audit log entry, which callers
 * append first. */
int store_record_signatures(struct store *s, const struct store_sig *sigs, size_t n);

int store_count_signatures(struct store *s, uint64_t *n);

/*
 * The signature index derived from the audit log (signer/store/sigindex.c), for
 * backends that keep it so (store_index_derived 1; SQLite). index_next: the
 * seq of the first audit entry not yet indexed (0 on a new store;
 * STORE_INDEX_AT_LOG_END for a store whose signatures were recorded on the
 * signing path before, which already holds what the log says so far: the
 * index starts at the log's end).
 * index_apply, in one transaction: add sigs (each with its audit seq; a
 * seq already indexed is skipped), remove the signatures of the audit
 * entries `failed` (their signing failed: "signature.failed"), and set the
 * next seq to `next`; first, with detach, every signature already indexed
 * loses its seq (kept as history, tied to no entry: the log was replaced). After a crash the index
 * is exactly what the last applied transaction left: rows and position together. Errors:
 * QS_ERR_UNIMPLEMENTED (backend records signatures on the signing path: store_record_signatures),
 * QS_ERR_DB.
 */
#define STORE_INDEX_AT_LOG_END UINT64_MAX
int store_index_derived(const struct store *s);
int store_index_next(struct store *s, uint64_t *next);
int store_index_apply(struct store *s, const struct store_sig *sigs, size_t n,
                      const uint64_t *failed, size_t nfailed, uint64_t next, int detach);

/*
 * The audit log kept in the store (PostgreSQL): one linear sequence of
 * entries and the signed checkpoint of their tree, appended to by every
 * replica (signer/audit/tlog.c keeps the tree and signs; the store keeps
 * bytes). store_log_shared: 1 if the backend keeps it (else the log lives
 * in files of the audit directory, one per process).
 *
 * store_log_lock begins the log's transaction and locks its head (SELECT
 * ... FOR UPDATE: replicas append one at a time); *size, *note (malloc'd,
 * NUL-terminated; "" with size 0 for a log nobody has signed yet) are the
 * committed head. Until store_log_commit or store_log_abort ends it, the
 * caller is the only appender of every replica; one caller at a time per
 * process. store_log_commit inserts n entries as seq first.. (first must
 * be the locked size), sets the head to (first + n, note) and COMMITs:
 * 0 only once the COMMIT returned; on any error the transaction is gone
 * and the entries were not acknowledged (QS_ERR_UNAVAILABLE when the
 * database could not be reached or did not commit; a COMMIT whose answer
 * was lost may still have committed, which a later lock shows).
 * store_log_read passes entries from..to-1 to fn in order, inside the
 * locked transaction if `locked`, else in a snapshot of its own; an entry
 * missing in the range is QS_ERR_PRECONDITION. store_log_head and
 * store_log_entry read what is committed without any lock.
 */
int store_log_shared(const struct store *s);
int store_log_lock(struct store *s, uint64_t *size, char **note, size_t *len);
int store_log_read(struct store *s, int locked, uint64_t from, uint64_t to, store_log_fn fn,
                   void *arg);
int store_log_commit(struct store *s, uint64_t first, const struct store_log_rec *recs, size_t n,
                     const char *note, size_t note_len);
void store_log_abort(struct store *s);
int store_log_head(struct store *s, uint64_t *size, char **note, size_t *len);
int store_log_entry(struct store *s, uint64_t seq, uint8_t **data, size_t *len);

/*
 * Moving a store to another backend (qsignd migrate-store; signer/daemon/migrate.c).
 * store_dump passes everything s holds to sink, in one read snapshot, in the
 * order it was made (policy versions, signatures, requests, documents).
 * store_import_begin starts the one transaction that fills the target: it
 * locks every table against writers and refuses (QS_ERR_EXISTS, nothing
 * changed) a store that holds any state or audit entry. store_import_sink
 * writes what it is given inside that transaction (records kept as they
 * are: request states, votes, times), store_import_log the audit log's
 * entries (first.. in order), store_import_commit sets the log's head to
 * (size, note) and COMMITs; store_import_abort rolls everything back. Any
 * failure leaves the target as it was. Backends without this:
 * QS_ERR_UNIMPLEMENTED.
 */
int store_dump(struct store *s, const struct store_sink *sink, void *arg);
int store_import_begin(struct store *s);
const struct store_sink *store_import_sink(const struct store *s);
int store_import_log(struct store *s, uint64_t first, const struct store_log_rec *recs, size_t n);
int store_import_commit(struct store *s, uint64_t size, const char *note, size_t note_len);
void store_import_abort(struct store *s);

/* Requests. Each call is one durable transaction. */

/* Insert a new request (state PENDING, no votes). QS_ERR_EXISTS if the
 * (submitter, client_token) pair was used before. */
int store_req_insert(struct store *s, const struct store_request *r);
/* Id of the request a submitter made with client_token; QS_ERR_NOT_FOUND. */
int store_req_find_token(struct store *s, const char *submitter, const char *token, char *id);
/* One request with its votes and signatures (payload only if asked). */
int store_req_get(struct store *s, const char *id, int with_payload, struct store_request **out);
/* Newest first; state 0 / role NULL = any. Without payloads. */
int store_req_list(struct store *s, int state, const char *role, size_t limit,
                   struct store_request ***out, size_t *n);
/* Record a vote and move the request to new_state, atomically, only if it
 * is still PENDING (else QS_ERR_PRECONDITION) and the approver has not voted
 * (else QS_ERR_EXISTS). replace: the approver's earlier vote is replaced
 * instead (QS_ERR_NOT_FOUND if there is none); it keeps its place. */
int store_req_vote(struct store *s, const char *id, const struct store_vote *v, int replace,
                   int new_state, const char *msg);
/* Claim the execution of request id against every other process on the
 * store (replicas): QS_ERR_PRECONDITION while another holds it,
 * QS_ERR_UNAVAILABLE if that cannot be known. A claim ends with
 * store_req_unclaim, or with its holder (it never outlives the process).
 * One claim at a time per store handle. SQLite: one process owns the
 * store, so a claim is always granted. */
int store_req_claim(struct store *s, const char *id);
void store_req_unclaim(struct store *s, const char *id);
/* Compare-and-set the state: QS_ERR_PRECONDITION if it is not `from`. */
int store_req_transition(struct store *s, const char *id, int from, int to, const char *msg);
/* APPROVED -> SIGNED with its signatures, an optional kind-specific result,
 * and (policy requests) the new policy version, in one transaction.
 * policy_text NULL for non-policy requests. */
int store_req_finish(struct store *s, const char *id, const struct store_reqsig *sigs, size_t n,
                     const uint8_t *result, size_t result_len, uint64_t policy_version,
                     const char *policy_text);

/*
 * Versioned documents, for modules that keep their own state (TUF
 * metadata, certificates, ...): (namespace, name, version) -> bytes.
 * Versions of one (ns, name) are written once each and never replaced.
 */
/* QS_ERR_EXISTS if that version exists. version >= 1. */
int store_doc_put(struct store *s, const char *ns, const char *name, uint64_t version,
                  const uint8_t *data, size_t len);
/* n documents in one transaction: all stored or none (QS_ERR_EXISTS if
 * any name/version exists). */
int store_doc_put_many(struct store *s, const char *ns, size_t n, const char *const *names,
                       const uint64_t *versions, const uint8_t *const *data, const size_t *lens);
/* version 0 = the latest. *data malloc'd (NUL-terminated for convenience,
 * not counted in *len). QS_ERR_NOT_FOUND. version_out may be NULL. */
int store_doc_get(struct store *s, const char *ns, const char *name, uint64_t version,
                  uint8_t **data, size_t *len, uint64_t *version_out);
/* Distinct names in a namespace, sorted; *names is a malloc'd array of
 * malloc'd strings. */
int store_doc_list(struct store *s, const char *ns, char ***names, size_t *n);

#endif
