#include "sigindex.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "fault.h"
#include "log.h"
#include "qs_err.h"
#include "statement.h"

/* Entries read per transaction. */
#define CHUNK 4096
/* How often the thread looks for new entries (ms). */
#define POLL_MS 20

struct sigindex {
	struct store *st;
	struct tlog *log;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	int warned; /* a failure was logged and not yet followed by success */
};

/* The signatures and failures of entries [from, to), parsed. */
struct round {
	struct store_sig *sigs;
	json_t **docs; /* the parsed entries the strings of sigs point into */
	size_t n;
	uint64_t *failed;
	size_t nfailed;
};

static void
round_free(struct round *rd)
{
	for (size_t i = 0; i < rd->n; i++)
		json_decref(rd->docs[i]);
	free(rd->sigs);
	free(rd->docs);
	free(rd->failed);
	memset(rd, 0, sizeof(*rd));
}

static const char *
str(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v != NULL ? v : "";
}

/* One entry: a signature, a failure, or neither. */
static int
parse_one(struct round *rd, uint64_t seq, const uint8_t *b, size_t len)
{
	json_t *o = json_loadb((const char *)b, len, 0, NULL);
	const char *ev = str(o, "event");
	struct store_sig *g;
	size_t dl = 0;

	if (o == NULL)
		return qs_fail(QS_ERR_INVALID, "audit entry %llu is not JSON",
		               (unsigned long long)seq);
	if (strcmp(ev, "signature.failed") == 0) {
		rd->failed[rd->nfailed++] =
		        (uint64_t)json_integer_value(json_object_get(o, "entry"));
		json_decref(o);
		return 0;
	}
	if (strcmp(ev, "signature") != 0) {
		json_decref(o);
		return 0;
	}
	g = &rd->sigs[rd->n];
	memset(g, 0, sizeof(*g));
	g->seq = seq;
	g->time_ms = json_integer_value(json_object_get(o, "time"));
	g->principal = str(o, "principal");
	g->role = str(o, "role");
	g->key = str(o, "key");
	g->key_id = str(o, "key_id");
	g->kind = str(o, "kind");
	g->policy_version = (uint64_t)json_integer_value(json_object_get(o, "policy_version"));
	if (qs_unhex(str(o, "digest"), g->digest, sizeof(g->digest), &dl) != 0 ||
	    (dl != 32 && dl != 48 && dl != 64)) {
		json_decref(o);
		return qs_fail(QS_ERR_INVALID, "audit entry %llu: signature without a digest",
		               (unsigned long long)seq);
	}
	g->digest_len = dl;
	rd->docs[rd->n++] = o;
	return 0;
}

/* Index entries [from, to) in one transaction. */
static int
index_range(struct store *st, struct tlog *log, uint64_t from, uint64_t to)
{
	struct round rd = {0};
	size_t cap = (size_t)(to - from);
	int r = 0;

	if ((rd.sigs = calloc(cap, sizeof(*rd.sigs))) == NULL ||
	    (rd.docs = calloc(cap, sizeof(*rd.docs))) == NULL ||
	    (rd.failed = calloc(cap, sizeof(*rd.failed))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (uint64_t i = from; r == 0 && i < to; i++) {
		uint8_t *b = NULL;
		size_t len = 0;
		if ((r = tlog_entry(log, i, &b, &len)) == 0)
			r = parse_one(&rd, i, b, len);
		free(b);
	}
	if (r == 0) {
		qs_fault_crash("sigindex.before_apply");
		r = store_index_apply(st, rd.sigs, rd.n, rd.failed, rd.nfailed, to, 0);
	}
out:
	round_free(&rd);
	return r;
}

int
sigindex_catch_up(struct store *st, struct tlog *log)
{
	uint64_t next = 0, size = tlog_size(log);
	int r;

	if ((r = store_index_next(st, &next)) != 0)
		return r;
	if (next == STORE_INDEX_AT_LOG_END)
		return store_index_apply(st, NULL, 0, NULL, 0, size, 0);
	if (next > size) {
		/* The log was replaced (a new audit directory) or rolled back
		 * (a restored copy): the signatures indexed so far stay as
		 * history, tied to no entry, and this log is indexed anew. */
		log_warn("sigindex.reset",
		         "the signature index is ahead of the audit log (%llu > %llu entries): "
		         "indexing this log anew, earlier signatures kept without their entry",
		         (unsigned long long)next, (unsigned long long)size);
		if ((r = store_index_apply(st, NULL, 0, NULL, 0, 0, 1)) != 0)
			return r;
		next = 0;
	}
	while (next < size) {
		uint64_t to = size - next > CHUNK ? next + CHUNK : size;
		if ((r = index_range(st, log, next, to)) != 0)
			return r;
		next = to;
	}
	return 0;
}

static void *
index_main(void *arg)
{
	struct sigindex *si = arg;
	int stop = 0;

	while (!stop) {
		struct timespec ts;
		int r;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&si->mu);
		if (!si->stop)
			pthread_cond_timedwait(&si->cv, &si->mu, &ts);
		stop = si->stop;
		pthread_mutex_unlock(&si->mu);
		/* The last round after stop: what was committed is indexed. */
		r = sigindex_catch_up(si->st, si->log);
		if (r != 0 && !si->warned) {
			log_warn("sigindex.behind",
			         "the signature index lags the audit log: %s "
			         "(retried; rebuilt from the log at start)",
			         qs_errdetail());
			si->warned = 1;
		} else if (r == 0 && si->warned) {
			log_info("sigindex.caught_up", "the signature index follows the log again");
			si->warned = 0;
		}
	}
	return NULL;
}

int
sigindex_start(struct store *st, struct tlog *log, struct sigindex **out)
{
	struct sigindex *si;
	int r;

	*out = NULL;
	if (!store_index_derived(st))
		return 0;
	if ((r = sigindex_catch_up(st, log)) != 0)
		return qs_wrap(r, "rebuild the signature index from the audit log");
	if ((si = calloc(1, sizeof(*si))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	si->st = st;
	si->log = log;
	pthread_mutex_init(&si->mu, NULL);
	pthread_cond_init(&si->cv, NULL);
	if (pthread_create(&si->th, NULL, index_main, si) != 0) {
		pthread_cond_destroy(&si->cv);
		pthread_mutex_destroy(&si->mu);
		free(si);
		return qs_fail(QS_ERR_NOMEM, "cannot start the signature index thread");
	}
	*out = si;
	return 0;
}

void
sigindex_stop(struct sigindex *si)
{
	if (si == NULL)
		return;
	pthread_mutex_lock(&si->mu);
	si->stop = 1;
	pthread_cond_signal(&si->cv);
	pthread_mutex_unlock(&si->mu);
	pthread_join(si->th, NULL);
	pthread_cond_destroy(&si->cv);
	pthread_mutex_destroy(&si->mu);
	free(si);
}
