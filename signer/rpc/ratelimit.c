#include "ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The arithmetic of every bucket: refill by the time since last_ns at per_s
 * up to burst, then take n tokens if there are (0) or none (-1). */
static int
refill_take(double *tokens, int64_t *last_ns, int64_t now, double per_s, uint32_t burst, uint32_t n)
{
	*tokens += (double)(now - *last_ns) * per_s / 1e9;
	if (*tokens > burst)
		*tokens = burst;
	*last_ns = now;
	if (*tokens < n)
		return -1;
	*tokens -= n;
	return 0;
}

static int
take(struct ratelimit *rl, const char *role, const char *principal, double per_s, uint32_t rate,
     const char *unit, uint32_t burst, uint32_t n)
{
	struct bucket *b;
	char key[sizeof(b->key)];
	int64_t now;
	uint32_t h;
	int r = 0;

	snprintf(key, sizeof(key), "%s/%s", role, principal);
	h = hash(key) % RL_BUCKETS;
	now = now_ns();
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
	if (refill_take(&b->tokens, &b->last_ns, now, per_s, burst, n) != 0)
		r = qs_fail(QS_ERR_EXHAUSTED,
		            "rate limit of role %s for %s exceeded (%u/%s, burst %u): retry later",
		            role, principal, rate, unit, burst);
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

/* ------------------------------------------------ shared between processes */

struct shared_slot {
	char key[QS_MAX_NAME + 1]; /* "" = free */
	double tokens;
	int64_t last_ns;
};

struct ratelimit_shared {
	struct shm_head head;
	size_t nslots, used;
	struct shared_slot slot[];
};

int
shm_table_new(size_t size, const char *what, void **out)
{
	struct shm_head *h;
	pthread_mutexattr_t a;
	int e;

	*out = NULL;
	/* Anonymous and shared: the processes forked after this call (and
	 * only they) see one table. */
	h = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED)
		return qs_fail(QS_ERR_NOMEM, "mmap of the %s: %s", what, strerror(errno));
	h->size = size;
	if ((e = pthread_mutexattr_init(&a)) == 0) {
		if ((e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
		    (e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
			e = pthread_mutex_init(&h->mu, &a);
		pthread_mutexattr_destroy(&a);
	}
	if (e != 0) {
		munmap(h, size);
		return qs_fail(QS_ERR_INTERNAL, "%s mutex: %s", what, strerror(e));
	}
	*out = h;
	return 0;
}

void
shm_table_free(void *table)
{
	if (table != NULL)
		munmap(table, ((struct shm_head *)table)->size);
}

int
shm_table_lock(struct shm_head *h, const char *what)
{
	int e = pthread_mutex_lock(&h->mu);

	if (e == EOWNERDEAD)
		e = pthread_mutex_consistent(&h->mu);
	if (e != 0)
		return qs_fail(QS_ERR_INTERNAL, "%s lock: %s", what, strerror(e));
	return 0;
}

void
shm_table_unlock(struct shm_head *h)
{
	pthread_mutex_unlock(&h->mu);
}

int
ratelimit_shared_new(size_t nslots, struct ratelimit_shared **out)
{
	void *t;
	int r;

	*out = NULL;
	if ((r = shm_table_new(sizeof(struct ratelimit_shared) +
	                               nslots * sizeof(struct shared_slot),
	                       "shared rate table", &t)) != 0)
		return r;
	*out = t;
	(*out)->nslots = nslots;
	return 0;
}

void
ratelimit_shared_free(struct ratelimit_shared *rs)
{
	shm_table_free(rs);
}

/* A process killed while holding the lock leaves it to the next (robust):
 * at worst that bucket lost its last update, which only ever lowers it
 * or moves last_ns on, never hands out more than one burst. */
static int
shared_lock(struct ratelimit_shared *rs)
{
	return shm_table_lock(&rs->head, "shared rate table");
}

int
ratelimit_shared_take(struct ratelimit_shared *rs, const char *key, uint32_t rate, uint32_t burst,
                      uint32_t n)
{
	struct shared_slot *s = NULL;
	int64_t now;
	int r;

	if (rate == 0)
		return 0;
	if (strlen(key) > QS_MAX_NAME)
		return qs_fail(QS_ERR_INVALID, "rate bucket name longer than %d bytes",
		               QS_MAX_NAME);
	now = now_ns();
	if ((r = shared_lock(rs)) != 0)
		return r;
	for (size_t i = 0; i < rs->used && s == NULL; i++)
		if (strcmp(rs->slot[i].key, key) == 0)
			s = &rs->slot[i];
	if (s == NULL) {
		if (rs->used == rs->nslots) {
			r = qs_fail(QS_ERR_PRECONDITION,
			            "the shared rate table is full (%zu buckets)", rs->nslots);
			goto out;
		}
		s = &rs->slot[rs->used];
		snprintf(s->key, sizeof(s->key), "%s", key);
		s->tokens = burst;
		s->last_ns = now;
		rs->used++;
	}
	if (refill_take(&s->tokens, &s->last_ns, now, rate, burst, n) != 0)
		r = qs_fail(QS_ERR_EXHAUSTED, "rate limit of %s exceeded (%u/s, burst %u)", key,
		            rate, burst);
out:
	shm_table_unlock(&rs->head);
	return r;
}
