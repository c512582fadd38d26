/*
 * store.h - the daemon's state, behind a small interface.
 *
 * Callers use only the store_* functions below; a backend (SQLite today,
 * PostgreSQL planned for replicated deployments) provides a struct
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
	const char *key;    /* policy key name */
	const char *key_id; /* hex SHA-256 of SPKI */
	const char *kind;   /* "digest" | "blob" */
	uint8_t digest[32];
	uint64_t policy_version;
};

struct store;

struct store_ops {
	const char *name;
	void (*close)(struct store *s);
	int (*policy_current)(struct store *s, uint64_t *version, char **text);
	int (*policy_get)(struct store *s, uint64_t version, char **text);
	int (*policy_add)(struct store *s, uint64_t version, const char *text);
	int (*record_signatures)(struct store *s, const struct store_sig *sigs, size_t n);
	int (*count_signatures)(struct store *s, uint64_t *n);
};

struct store {
	const struct store_ops *ops;
};

/* Open (creating on first use) the SQLite state in `state_dir`/state.db.
 * Refuses a database whose schema version is newer than ours or that was
 * not created by quorum-signer (QS_ERR_PRECONDITION). */
int store_open_sqlite(const char *state_dir, struct store **out);

void store_close(struct store *s);

/* Latest policy version and its text (*text malloc'd). QS_ERR_NOT_FOUND when
 * the store has no policy yet (first start). */
int store_policy_current(struct store *s, uint64_t *version, char **text);
int store_policy_get(struct store *s, uint64_t version, char **text);
/* Add a policy version; it must be exactly current+1 (or 1 on an empty
 * store), else QS_ERR_PRECONDITION. */
int store_policy_add(struct store *s, uint64_t version, const char *text);

/* Record n signatures in one durable transaction. Concurrent callers are
 * group-committed: one fsync covers everyone who arrived meanwhile. */
int store_record_signatures(struct store *s, const struct store_sig *sigs, size_t n);

int store_count_signatures(struct store *s, uint64_t *n);

#endif
