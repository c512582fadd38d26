/*
 * ratelimit.h - token buckets per (role, principal) for online signing.
 */
#ifndef QS_RATELIMIT_H
#define QS_RATELIMIT_H

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

#endif
