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
#include "statement.h"
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

/* Write one batch of callers: render entries with consecutive seq numbers
 * and append them in one tlog_append (one fsync, one checkpoint). */
static int
write_batch(struct audit *a, struct audit_ticket *batch)
{
	struct tlog_rec *recs = NULL;
	char **bufs = NULL;
	size_t total = 0, k = 0;
	uint64_t seq = tlog_size(a->log), first = 0;
	int64_t t = now_ms();
	int r = 0;

	for (struct audit_ticket *p = batch; p != NULL; p = p->next)
		total += p->n;
	recs = calloc(total, sizeof(*recs));
	bufs = calloc(total, sizeof(*bufs));
	if (recs == NULL || bufs == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (struct audit_ticket *p = batch; p != NULL; p = p->next) {
		p->first = seq + k;
		for (size_t i = 0; i < p->n; i++, k++) {
			json_t *o = p->fields[i] ? json_copy(p->fields[i]) : json_object();
			size_t len = 0;
			if (o == NULL || !json_is_object(o)) {
				json_decref(o);
				r = qs_fail(QS_ERR_INTERNAL, "audit fields must be an object");
				goto out;
			}
			if (json_object_get(o, "seq") || json_object_get(o, "time") ||
			    json_object_get(o, "event")) {
				/* Ours: a caller's field must never shadow them. */
				json_decref(o);
				r = qs_fail(QS_ERR_INTERNAL,
					    "audit fields may not be named seq, time or event");
				goto out;
			}
			json_object_set_new(o, "seq", json_integer((json_int_t)(seq + k)));
			json_object_set_new(o, "time", json_integer(t));
			json_object_set_new(o, "event", json_string(p->events[i]));
			bufs[k] = audit_canonical(o, &len);
			json_decref(o);
			if (bufs[k] == NULL) {
				r = qs_fail(QS_ERR_NOMEM, "out of memory");
				goto out;
			}
			recs[k].data = (const uint8_t *)bufs[k];
			recs[k].len = len;
		}
	}
	/* Chunks bounded by tlog's per-call limits; one chunk in practice. */
	for (size_t off = 0; off < total && r == 0;) {
		size_t n = 0, bytes = 0;
		while (off + n < total && n < QS_MAX_AUDIT_APPEND &&
		       bytes + recs[off + n].len + 8 <= QS_MAX_AUDIT_BATCH_BYTES)
			bytes += recs[off + n++].len + 8;
		if (n == 0) {
			r = qs_fail(QS_ERR_INVALID, "audit entry too large");
			break;
		}
		r = tlog_append(a->log, recs + off, n, &first);
		if (r == 0 && first != seq + off) {
			/* Only this thread appends; a gap would be our bug. */
			r = qs_fail(QS_ERR_INTERNAL, "audit sequence gap");
		}
		off += n;
	}
out:
	for (size_t i = 0; bufs != NULL && i < total; i++)
		free(bufs[i]);
	free(bufs);
	free(recs);
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

int
audit_open(const struct config *cfg, struct keyring *kr, struct audit **out)
{
	struct audit *a;
	struct tlog_open_report rep;
	const unsigned char *p;
	uint8_t *der = NULL;
	size_t der_len = 0;
	BIO *bio = NULL;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->work, NULL);
	a->tail = &a->head;
	if ((a->origin = strdup(cfg->audit_origin)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((r = keyring_find_uri(kr, cfg->audit_key_uri, HSM_KEY_NONE, &a->key)) != 0) {
		r = qs_wrap(r, "audit.key %s", cfg->audit_key_uri);
		goto fail;
	}
	if (a->key->type != HSM_KEY_EC_P256 && a->key->type != HSM_KEY_ED25519) {
		r = qs_fail(QS_ERR_INVALID, "audit.key: must be ECDSA P-256 or Ed25519");
		goto fail;
	}
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
	if ((r = qs_note_signer_init(&a->signer, a->origin, a->pub, token_note_sign, a->key)) !=
	    0)
		goto fail;
	if ((r = tlog_open(cfg->audit_dir, a->origin, &a->signer, &a->log, &rep)) != 0) {
		r = qs_wrap(r, "audit log %s", cfg->audit_dir);
		goto fail;
	}
	if (rep.truncated_bytes > 0)
		log_warn("audit.repaired",
			 "dir=%s dropped_records=%llu truncated_bytes=%llu reason=\"not covered by "
			 "a checkpoint: never acknowledged\"",
			 cfg->audit_dir, (unsigned long long)rep.dropped_records,
			 (unsigned long long)rep.truncated_bytes);
	log_info("audit.open", "dir=%s size=%llu origin=%s", cfg->audit_dir,
		 (unsigned long long)rep.size, a->origin);
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
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->work);
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
