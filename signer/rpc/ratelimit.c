#include "ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qs_err.h"
#include "qs_limits.h"

#define RL_BUCKETS 256

struct bucket {
	char key[2 * QS_MAX_NAME + 2];
	double tokens;
	int64_t last_ns;
	struct bucket *next;
};

struct ratelimit {
	pthread_mutex_t mu;
	struct bucket *tab[RL_BUCKETS];
	size_t count;
};

int
ratelimit_new(struct ratelimit **out)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));

	*out = NULL;
	if (rl == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&rl->mu, NULL);
	*out = rl;
	return 0;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	for (size_t i = 0; i < RL_BUCKETS; i++)
		for (struct bucket *b = rl->tab[i], *n; b != NULL; b = n) {
			n = b->next;
			free(b);
		}
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a: keys are policy names, not attacker-chosen */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int
take(struct ratelimit *rl, const char *role, const char *principal, double per_s, uint32_t rate,
     const char *unit, uint32_t burst, uint32_t n)
{
	struct timespec ts;
	struct bucket *b;
	char key[sizeof(b->key)];
	int64_t now;
	uint32_t h;
	int r = 0;

	snprintf(key, sizeof(key), "%s/%s", role, principal);
	h = hash(key) % RL_BUCKETS;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	pthread_mutex_lock(&rl->mu);
	for (b = rl->tab[h]; b != NULL; b = b->next)
		if (strcmp(b->key, key) == 0)
			break;
	if (b == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(b->key, key, sizeof(key));
		b->tokens = burst;
		b->last_ns = now;
		b->next = rl->tab[h];
		rl->tab[h] = b;
	}
	b->tokens += (double)(now - b->last_ns) * per_s / 1e9;
	if (b->tokens > burst)
		b->tokens = burst;
	b->last_ns = now;
	if (b->tokens < n) {
		r = qs_fail(QS_ERR_EXHAUSTED,
		            "rate limit of role %s for %s exceeded (%u/%s, burst %u): retry later",
		            role, principal, rate, unit, burst);
		goto out;
	}
	b->tokens -= n;
out:
	pthread_mutex_unlock(&rl->mu);
	return r;
}

int
ratelimit_take(struct ratelimit *rl, const char *role, const char *principal, uint32_t rate,
               uint32_t burst, uint32_t n)
{
	if (rate == 0)
		return 0;
	return take(rl, role, principal, rate, rate, "s", burst, n);
}

int
ratelimit_take_per_minute(struct ratelimit *rl, const char *role, const char *principal,
                          uint32_t rate_per_minute, uint32_t burst, uint32_t n)
{
	return take(rl, role, principal, rate_per_minute / 60.0, rate_per_minute, "min", burst, n);
}
