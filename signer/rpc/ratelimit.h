/*
 * ratelimit.h - token buckets per (role, principal) for online signing.
 */
#ifndef QS_RATELIMIT_H
#define QS_RATELIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

int ratelimit_new(struct ratelimit **out);
void ratelimit_free(struct ratelimit *rl);

/* Take `n` tokens from the bucket of (role, principal), which refills at
 * `rate` per second up to `burst`. rate 0 = unlimited. Returns 0 when
 * allowed, QS_ERR_EXHAUSTED (nothing taken) when not. */
int ratelimit_take(struct ratelimit *rl, const char *role, const char *principal, uint32_t rate,
                   uint32_t burst, uint32_t n);

/* The same with the refill given per minute (rate_per_minute >= 1). */
int ratelimit_take_per_minute(struct ratelimit *rl, const char *role, const char *principal,
                              uint32_t rate_per_minute, uint32_t burst, uint32_t n);

/* A table of at most `nslots` buckets, keyed by a name of up to
 * QS_MAX_NAME bytes, in an anonymous MAP_SHARED mapping: every process
 * forked after ratelimit_shared_new takes from the same buckets (a
 * process-shared, robust mutex guards them). The signer launcher makes
 * one for all its helpers (signer/keys/README.md). */
struct ratelimit_shared;

int ratelimit_shared_new(size_t nslots, struct ratelimit_shared **out);
void ratelimit_shared_free(struct ratelimit_shared *rs);

/* ratelimit_take for the bucket `key` of the shared table;
 * QS_ERR_PRECONDITION, nothing taken, when the key is new and the table is
 * full. */
int ratelimit_shared_take(struct ratelimit_shared *rs, const char *key, uint32_t rate,
                          uint32_t burst, uint32_t n);

/* The head of such a mapping: its size and the process-shared, robust
 * mutex. Other tables shared by the launcher's helpers (the signer's TUF
 * marks, privsep_guard.c) start with one and use these four. */
struct shm_head {
	pthread_mutex_t mu;
	size_t size; /* of the mapping */
};

/* An anonymous MAP_SHARED mapping of `size` bytes (>= sizeof(struct
 * shm_head)), zeroed, its head initialised; `what` names it in errors. */
int shm_table_new(size_t size, const char *what, void **out);
void shm_table_free(void *table);
/* Lock: a process killed while holding it leaves it to the next (robust,
 * EOWNERDEAD made consistent); the caller's table must bear a half-done
 * update. */
int shm_table_lock(struct shm_head *h, const char *what);
void shm_table_unlock(struct shm_head *h);

#endif
