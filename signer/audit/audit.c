#include "audit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "log.h"
#include "note.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "ratelimit.h"
#include "statement.h"
#include "store.h"
#include "tlog.h"

/* A caller's entries, queued until the writer committed them
 * (audit_append_start .. audit_append_finish). */
struct audit_ticket {
	const char *const *events;
	json_t **fields;
	size_t n;
	uint64_t first; /* seq of the first entry, once done */
	int done, rc;
	char detail[200];
	pthread_cond_t cv;
	struct audit_ticket *next;
};

/* One row of the next "audit.summary" entry. */
struct summary_row {
	char principal[QS_MAX_NAME + 1];
	char event[16];
	char method[QS_MAX_METHOD + 1];
	char status[32];
	uint64_t count;
};

struct audit {
	struct tlog *log;
	struct qs_note_signer signer;
	struct keyring_key *key;
	EVP_PKEY *pub;
	char *origin;
	char *public_pem;
	int created;
	int failing; /* last batch failed (under mu) */

	pthread_mutex_t mu;
	pthread_cond_t work;
	struct audit_ticket *head, **tail;
	int stopping;
	pthread_t writer;
	int writer_started;

	/* Entries beyond a principal's rate (audit_append_bounded), counted
	 * until the next summary; under sum_mu. */
	struct ratelimit *rl;
	unsigned rate_per_minute, burst;
	pthread_mutex_t sum_mu;
	struct summary_row rows[QS_MAX_AUDIT_SUMMARY_ROWS];
	size_t nrows;
	uint64_t other;   /* counted entries that found no free row */
	int64_t sum_from; /* time of the first counted entry, 0 if none */
};

char *
audit_canonical(json_t *v, size_t *len)
{
	/* jansson with JSON_COMPACT | JSON_SORT_KEYS writes sorted keys, no
	 * whitespace, raw UTF-8, "\n"-style escapes for the usual controls and
	 * \u00XX for the rest: RFC 8785's string rules. We put no floats in
	 * entries, so its number rules do not arise. */
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	*len = s ? strlen(s) : 0;
	return s;
}

/* Note signing callback: the audit key signs in the token. */
static int
token_note_sign(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	struct keyring_key *k = arg;
	uint8_t buf[HSM_SIG_MAX + 16];
	size_t n = 0;
	int r;

	if ((r = keyring_sign_checkpoint(k, msg, len, buf, &n)) != 0)
		return r;
	if (n > *sig_len)
		return qs_fail(QS_ERR_INTERNAL, "note signature too long");
	memcpy(sig, buf, n);
	*sig_len = n;
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The entries of one tlog_append_render call: objs[off..off+n) get their
 * seq once the log knows it. */
struct render_ctx {
	json_t **objs;
	char **bufs;
	size_t off;
};

/* Entries get their seq and time here, under the log's head: with
 * replicas the previous entry may come from another one, whose clock may
 * be ahead of ours; times never go back in the log (auditors check). */
static int
render_entries(void *arg, uint64_t first, const uint8_t *prev, size_t prev_len,
               struct tlog_rec *recs, size_t n)
{
	struct render_ctx *c = arg;
	int64_t t = now_ms(), pt = 0;

	if (prev != NULL) {
		json_t *o = json_loadb((const char *)prev, prev_len, 0, NULL);
		pt = json_integer_value(json_object_get(o, "time"));
		json_decref(o);
	}
	if (pt > t)
		t = pt;
	for (size_t i = 0; i < n; i++) {
		size_t k = c->off + i, len = 0;
		if (json_object_set_new(c->objs[k], "seq", json_integer((json_int_t)(first + i))) !=
		            0 ||
		    json_object_set_new(c->objs[k], "time", json_integer(t)) != 0 ||
		    (c->bufs[k] = audit_canonical(c->objs[k], &len)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		recs[i].data = (const uint8_t *)c->bufs[k];
		recs[i].len = len;
	}
	return 0;
}

/* Decimal digits a seq (and a later time) may add to an entry measured
 * with seq 0 and the time now. */
#define SEQ_SLACK 40

/* One entry's object without its seq (added when the log assigns it). */
static int
entry_object(const char *event, json_t *fields, int64_t t, json_t **out)
{
	json_t *o = json_copy(fields);

	*out = NULL;
	if (o == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (!json_is_object(o)) {
		json_decref(o);
		return qs_fail(QS_ERR_INTERNAL, "audit fields must be an object");
	}
	if (json_object_get(o, "seq") || json_object_get(o, "time") ||
	    json_object_get(o, "event")) {
		/* Ours: a caller's field must never shadow them. */
		json_decref(o);
		return qs_fail(QS_ERR_INTERNAL, "audit fields may not be named seq, time or event");
	}
	if (json_object_set_new(o, "time", json_integer(t)) != 0 ||
	    json_object_set_new(o, "event", json_string(event)) != 0) {
		json_decref(o);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	*out = o;
	return 0;
}

/* Write one batch of callers: entries with consecutive seq numbers, each
 * caller's together, appended with one tlog_append_render (one commit,
 * one checkpoint; the log numbers them: with replicas only it knows the
 * next seq). */
static int
write_batch(struct audit *a, struct audit_ticket *batch)
{
	json_t **objs = NULL;
	char **bufs = NULL;
	size_t *bound = NULL, total = 0, k = 0;
	int64_t t = now_ms();
	int r = 0;

	for (struct audit_ticket *p = batch; p != NULL; p = p->next)
		total += p->n;
	objs = calloc(total, sizeof(*objs));
	bufs = calloc(total, sizeof(*bufs));
	bound = calloc(total, sizeof(*bound));
	if (objs == NULL || bufs == NULL || bound == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (struct audit_ticket *p = batch; p != NULL; p = p->next)
		for (size_t i = 0; i < p->n; i++, k++) {
			char *c;
			size_t len = 0;
			if ((r = entry_object(p->events[i], p->fields[i], t, &objs[k])) != 0)
				goto out;
			/* Its size with seq 0, to bound the batch before the
			 * seq is known. */
			if (json_object_set_new(objs[k], "seq", json_integer(0)) != 0 ||
			    (c = audit_canonical(objs[k], &len)) == NULL) {
				r = qs_fail(QS_ERR_NOMEM, "out of memory");
				goto out;
			}
			free(c);
			bound[k] = len + SEQ_SLACK + 8;
		}
	/* Calls bounded by tlog's per-call limits, cut between callers so that
	 * each caller's entries stay consecutive; one call in practice. */
	k = 0;
	for (struct audit_ticket *p = batch; p != NULL && r == 0;) {
		struct audit_ticket *q = p;
		struct render_ctx ctx = {objs, bufs, k};
		size_t n = 0, bytes = 0;
		uint64_t first = 0;
		for (; q != NULL; q = q->next) {
			size_t b = 0;
			for (size_t i = 0; i < q->n; i++)
				b += bound[k + n + i];
			if (n > 0 && (n + q->n > QS_MAX_AUDIT_APPEND ||
			              bytes + b > QS_MAX_AUDIT_BATCH_BYTES))
				break;
			n += q->n;
			bytes += b;
		}
		if (n > QS_MAX_AUDIT_APPEND || bytes > QS_MAX_AUDIT_BATCH_BYTES) {
			r = qs_fail(QS_ERR_INVALID, "audit entry too large");
			break;
		}
		if ((r = tlog_append_render(a->log, n, bytes, render_entries, &ctx, &first)) != 0)
			break;
		for (uint64_t seq = first; p != q; p = p->next) {
			p->first = seq;
			seq += p->n;
		}
		k += n;
	}
out:
	for (size_t i = 0; i < total; i++) {
		free(bufs != NULL ? bufs[i] : NULL);
		json_decref(objs != NULL ? objs[i] : NULL);
	}
	free(bufs);
	free(objs);
	free(bound);
	return r;
}

static void *
writer_main(void *arg)
{
	struct audit *a = arg;

	for (;;) {
		struct audit_ticket *batch;
		int r;

		pthread_mutex_lock(&a->mu);
		while (a->head == NULL && !a->stopping)
			pthread_cond_wait(&a->work, &a->mu);
		if (a->head == NULL) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		batch = a->head;
		a->head = NULL;
		a->tail = &a->head;
		pthread_mutex_unlock(&a->mu);

		r = write_batch(a, batch);
		pthread_mutex_lock(&a->mu);
		a->failing = r != 0;
		pthread_mutex_unlock(&a->mu);
		if (r != 0)
			log_error("audit.unwritable", "detail=\"%s\"", qs_errdetail());
		pthread_mutex_lock(&a->mu);
		for (struct audit_ticket *p = batch, *next; p != NULL; p = next) {
			next = p->next;
			p->rc = r;
			if (r != 0)
				snprintf(p->detail, sizeof(p->detail), "%s", qs_errdetail());
			p->done = 1;
			/* Wake exactly this caller: no herd on a shared condvar. */
			pthread_cond_signal(&p->cv);
		}
		pthread_mutex_unlock(&a->mu);
	}
	return NULL;
}

int
audit_append_start(struct audit *a, const char *const *events, json_t **fields, size_t n,
                   struct audit_ticket **tp)
{
	struct audit_ticket *p;

	*tp = NULL;
	/* A NULL is a json_pack() that failed (out of memory): an entry
	 * without its fields would record a signature without saying which,
	 * so nothing is written and the caller releases nothing. */
	for (size_t i = 0; i < n; i++)
		if (fields[i] == NULL) {
			for (size_t j = 0; j < n; j++)
				json_decref(fields[j]);
			return qs_fail(
			        QS_ERR_NOMEM,
			        "the fields of audit entry \"%s\" could not be built (out of "
			        "memory): nothing was written or released",
			        events[i]);
		}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		for (size_t i = 0; i < n; i++)
			json_decref(fields[i]);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	p->events = events;
	p->fields = fields;
	p->n = n;
	pthread_cond_init(&p->cv, NULL);
	*tp = p;
#ifdef QS_BENCH_NO_AUDIT
	/* Only in the benchmark's qsignd-noaudit (tests/bench), never built into
	 * anything installed: it measures what the audit log costs. */
	(void)a;
	p->done = 1;
	return 0;
#endif
	pthread_mutex_lock(&a->mu);
	if (a->stopping) {
		p->done = 1;
		p->rc = QS_ERR_UNAVAILABLE;
		snprintf(p->detail, sizeof(p->detail), "audit log is closing");
	} else {
		*a->tail = p;
		a->tail = &p->next;
		pthread_cond_signal(&a->work);
	}
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int
audit_append_finish(struct audit *a, struct audit_ticket *p, uint64_t *first)
{
	int r;

	if (first != NULL)
		*first = 0;
	if (p == NULL)
		return qs_fail(QS_ERR_INTERNAL, "no audit ticket");
#ifdef QS_BENCH_NO_AUDIT
	(void)a; /* started done */
#else
	pthread_mutex_lock(&a->mu);
	while (!p->done)
		pthread_cond_wait(&p->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);
#endif
	if (p->rc == 0) {
		r = 0;
		if (first != NULL)
			*first = p->first;
	} else {
		r = qs_fail(p->rc == QS_ERR_INVALID ? QS_ERR_INVALID : QS_ERR_UNAVAILABLE,
		            "audit log cannot be written (%s): nothing was done", p->detail);
	}
	pthread_cond_destroy(&p->cv);
	for (size_t i = 0; i < p->n; i++)
		json_decref(p->fields[i]);
	free(p);
	return r;
}

int
audit_append_many(struct audit *a, const char *const *events, json_t **fields, size_t n)
{
	struct audit_ticket *t;
	int r;

	if ((r = audit_append_start(a, events, fields, n, &t)) != 0)
		return r;
	return audit_append_finish(a, t, NULL);
}

int
audit_append(struct audit *a, const char *event, json_t *fields)
{
	return audit_append_many(a, &event, &fields, 1);
}

/* Add n to the row of (principal, event, method, status). Caller holds
 * sum_mu. */
static void
summary_add(struct audit *a, const char *principal, const char *event, const char *method,
            const char *status, uint64_t n, int64_t from)
{
	struct summary_row *row = NULL;

	if (a->sum_from == 0 || (from != 0 && from < a->sum_from))
		a->sum_from = from;
	for (size_t i = 0; i < a->nrows && row == NULL; i++)
		if (strcmp(a->rows[i].principal, principal) == 0 &&
		    strcmp(a->rows[i].event, event) == 0 &&
		    strcmp(a->rows[i].method, method) == 0 &&
		    strcmp(a->rows[i].status, status) == 0)
			row = &a->rows[i];
	if (row == NULL && a->nrows < QS_MAX_AUDIT_SUMMARY_ROWS) {
		row = &a->rows[a->nrows++];
		snprintf(row->principal, sizeof(row->principal), "%s", principal);
		snprintf(row->event, sizeof(row->event), "%s", event);
		snprintf(row->method, sizeof(row->method), "%s", method);
		snprintf(row->status, sizeof(row->status), "%s", status);
		row->count = 0;
	}
	if (row != NULL)
		row->count += n;
	else
		a->other += n;
}

int
audit_append_bounded(struct audit *a, const char *principal, const char *event, const char *method,
                     const char *status, json_t *fields)
{
	if (ratelimit_take_per_minute(a->rl, event, principal, a->rate_per_minute, a->burst, 1) ==
	    0)
		return audit_append(a, event, fields);
	qs_errclear();
	json_decref(fields);
	pthread_mutex_lock(&a->sum_mu);
	summary_add(a, principal, event, method, status, 1, now_ms());
	pthread_mutex_unlock(&a->sum_mu);
	return 0;
}

int
audit_flush_summary(struct audit *a)
{
	struct summary_row rows[QS_MAX_AUDIT_SUMMARY_ROWS];
	size_t nrows;
	uint64_t other, total = 0;
	int64_t from;
	json_t *arr = NULL, *o = NULL;
	int r;

	pthread_mutex_lock(&a->sum_mu);
	nrows = a->nrows;
	other = a->other;
	from = a->sum_from;
	memcpy(rows, a->rows, nrows * sizeof(rows[0]));
	a->nrows = 0;
	a->other = 0;
	a->sum_from = 0;
	pthread_mutex_unlock(&a->sum_mu);
	if (nrows == 0 && other == 0)
		return 0;
	if ((arr = json_array()) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nrows; i++) {
		total += rows[i].count;
		if (json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:I}", "principal",
		                                         rows[i].principal, "event", rows[i].event,
		                                         "method", rows[i].method, "status",
		                                         rows[i].status, "count",
		                                         (json_int_t)rows[i].count)) != 0) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto fail;
		}
	}
	total += other;
	o = json_pack("{s:I,s:I,s:O,s:I,s:I}", "from", (json_int_t)from, "to", (json_int_t)now_ms(),
	              "counts", arr, "other", (json_int_t)other, "total", (json_int_t)total);
	if (o == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((r = audit_append(a, "audit.summary", o)) != 0)
		goto fail;
	json_decref(arr);
	log_info("audit.summary", "rows=%zu total=%llu", nrows, (unsigned long long)total);
	return 0;
fail:
	/* Nothing is lost: the counts wait for the next summary. */
	json_decref(arr);
	pthread_mutex_lock(&a->sum_mu);
	for (size_t i = 0; i < nrows; i++)
		summary_add(a, rows[i].principal, rows[i].event, rows[i].method, rows[i].status,
		            rows[i].count, from);
	a->other += other;
	if (a->sum_from == 0 || (from != 0 && from < a->sum_from))
		a->sum_from = from;
	pthread_mutex_unlock(&a->sum_mu);
	return r;
}

int
audit_key_check(const struct keyring_key *k)
{
	/* Checkpoints are signed notes: witnesses verify Ed25519 and ECDSA
	 * P-256 only (note.h). */
	if (k->type != HSM_KEY_EC_P256 && k->type != HSM_KEY_ED25519)
		return qs_fail(QS_ERR_INVALID, "audit.key: must be ECDSA P-256 or Ed25519, not %s",
		               hsm_keytype_name(k->type) != NULL ? hsm_keytype_name(k->type)
		                                                 : "an unsupported key");
	return 0;
}

int
audit_open(const struct config *cfg, struct keyring *kr, struct store *st, struct audit **out)
{
	struct audit *a;
	struct tlog_open_report rep;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t der_len = 0;
	BIO *bio = NULL;
	const char *where = cfg->audit_dir;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_mutex_init(&a->sum_mu, NULL);
	a->tail = &a->head;
	a->rate_per_minute = cfg->audit_rate_per_minute ? cfg->audit_rate_per_minute : 60;
	a->burst = cfg->audit_burst ? cfg->audit_burst : 120;
	if ((r = ratelimit_new(&a->rl)) != 0)
		goto fail;
	if ((a->origin = strdup(cfg->audit_origin)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((r = keyring_find_uri(kr, cfg->audit_key_uri, HSM_KEY_NONE, &a->key)) != 0) {
		r = qs_wrap(r, "audit.key %s", cfg->audit_key_uri);
		goto fail;
	}
	if ((r = audit_key_check(a->key)) != 0)
		goto fail;
	keyring_key_reserve(a->key); /* every commit waits for its signature */
	if ((r = keyring_spki(a->key, &der, &der_len)) != 0)
		goto fail;
	p = der;
	if ((a->pub = d2i_PUBKEY(NULL, &p, (long)der_len)) == NULL) {
		r = qs_fail(QS_ERR_CRYPTO, "audit key: cannot decode its public key");
		goto fail;
	}
	if ((a->public_pem = strdup(a->key->spki_pem)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((r = qs_note_signer_init(&a->signer, a->origin, a->pub, token_note_sign, a->key)) != 0)
		goto fail;
	if (store_log_shared(st)) {
		/* One log for every replica on the store. */
		where = "store";
		if ((r = tlog_open_store(st, a->origin, &a->signer, &a->log, &rep)) != 0) {
			r = qs_wrap(r, "audit log in the %s store", st->ops->name);
			goto fail;
		}
	} else if ((r = tlog_open(cfg->audit_dir, a->origin, &a->signer, &a->log, &rep)) != 0) {
		r = qs_wrap(r, "audit log %s", cfg->audit_dir);
		goto fail;
	}
	if (rep.truncated_bytes > 0)
		log_warn("audit.repaired",
		         "dir=%s dropped_records=%llu truncated_bytes=%llu reason=\"not covered by "
		         "a checkpoint: never acknowledged\"",
		         cfg->audit_dir, (unsigned long long)rep.dropped_records,
		         (unsigned long long)rep.truncated_bytes);
	{
		/* The fingerprint auditors pin (qsign audit ... --log-key SHA256:HEX). */
		uint8_t fp[32];
		char *fp_hex;
		qs_sha256(der, der_len, fp);
		fp_hex = qs_hex(fp, sizeof(fp));
		log_info("audit.open", "dir=%s size=%llu origin=%s log_key=SHA256:%s", where,
		         (unsigned long long)rep.size, a->origin, fp_hex != NULL ? fp_hex : "?");
		free(fp_hex);
	}
	if (pthread_create(&a->writer, NULL, writer_main, a) != 0) {
		r = qs_fail(QS_ERR_INTERNAL, "cannot start the audit writer");
		goto fail;
	}
	a->writer_started = 1;
	a->created = rep.created;
	free(der);
	BIO_free(bio);
	*out = a;
	return 0;
fail:
	free(der);
	BIO_free(bio);
	audit_close(a);
	return r;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->writer_started) {
		/* The counts since the last summary are part of the record. */
		if (audit_flush_summary(a) != 0)
			log_error("audit.summary", "detail=\"%s\"", qs_errdetail());
		pthread_mutex_lock(&a->mu);
		a->stopping = 1;
		pthread_cond_signal(&a->work);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->writer, NULL);
	}
	tlog_close(a->log);
	EVP_PKEY_free(a->pub);
	free(a->origin);
	free(a->public_pem);
	ratelimit_free(a->rl);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
	pthread_mutex_destroy(&a->sum_mu);
	free(a);
}

struct tlog *
audit_tlog(struct audit *a)
{
	return a->log;
}

const char *
audit_origin(const struct audit *a)
{
	return a->origin;
}

const char *
audit_public_pem(const struct audit *a)
{
	return a->public_pem;
}

int
audit_created(const struct audit *a)
{
	return a->created;
}

int
audit_writable(struct audit *a)
{
	int ok;

	pthread_mutex_lock(&a->mu);
	ok = !a->failing;
	pthread_mutex_unlock(&a->mu);
	return ok;
}
