/*
 * privsep.c - the front's side of the signer helpers: the pool of them, the
 * calls the rest of qsignd makes (ps_*, privsep.h) and the self test. The
 * helper is privsep_helper.c, the launcher privsep_launcher.c, the frames
 * privsep_frame.c. Protocol and process model: privsep.h.
 */
#include "privsep.h"
#include "privsep_proc.h"
#include "privsep_wire.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy.h"
#include "log.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "tuf_meta.h"

/* ps_call's "the helper is gone or broke the protocol": replace it. */
#define PS_DEAD 2

/* ------------------------------------------------------------ front */

struct ps_helper {
	int fd;
	pid_t pid;
	uint64_t gen; /* changes with every (re)start; key handles carry it */
	int busy;
	size_t chain_sent; /* policy versions it was handed (sync_chain) */
};

/* A policy version past the first, with its approvals: a PS_POLICY frame
 * ready to send to every helper, once each (a new helper gets them all). */
struct ps_chain_entry {
	uint8_t *frame;
	size_t len;
};

struct ps_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t ctl_mu;
	int ctl;
	pid_t launcher;
	uint64_t gens;
	unsigned n, rr;
	/* Helper h[n], beside the n that serve requests, serves only keys set
	 * apart with ps_keyref_reserve (the audit log's): a checkpoint, on
	 * every commit's critical path, never queues behind request
	 * signatures. */
	struct ps_helper h[QS_MAX_SIGNERS + 1];
	char **labels;
	size_t ntok;
	struct ps_chain_entry *chain; /* under mu; frames never change */
	size_t nchain;
};

struct ps_keyref {
	struct ps_pool *pool;
	char *uri;
	uint8_t *der; /* the public key found first: every helper must agree */
	size_t der_len;
	int only; /* the helper it always uses, or -1: any free one */
	uint32_t handle[QS_MAX_SIGNERS + 1];
	uint64_t gen[QS_MAX_SIGNERS + 1];
};

/* Decode a reply to `type` (ps_reply_decode): the helper's error, or 0
 * with the fields in *fields; PS_DEAD if it is not a well-formed reply to
 * this request. */
static int
parse_reply(uint8_t type, const uint8_t *body, size_t len, struct ps_rd *fields)
{
	int r = ps_reply_decode(type, body, len, fields);

	return r == PS_GARBAGE ? PS_DEAD : r;
}

/* Tokens of the first helper; later ones must report the same. The pool
 * takes the labels only from a READY that decoded to its end. */
static int
take_info(struct ps_pool *p, struct ps_rd *f)
{
	char label[QS_MAX_PRIVSEP_STR + 1], **labels = NULL;
	uint32_t n = 0;
	int r;

	if (ps_info_decode_count(f, &n) != 0 || n > QS_MAX_PRIVSEP_TOKENS)
		return PS_DEAD;
	if (p->labels != NULL && n != p->ntok)
		return qs_fail(QS_ERR_INTERNAL, "signer helpers disagree on the tokens");
	if (p->labels == NULL && (labels = calloc(n ? n : 1, sizeof(char *))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		if (ps_info_decode_token(f, label, NULL, NULL) != 0) {
			r = PS_DEAD;
			goto out;
		}
		if (labels != NULL && (labels[i] = strdup(label)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		/* Token indices travel in key handles: a later helper with
		 * the same tokens in another order would sign with the
		 * wrong one. */
		if (labels == NULL && strcmp(label, p->labels[i]) != 0) {
			r = qs_fail(QS_ERR_INTERNAL,
			            "signer helpers disagree on token %u (%s, now %s)", i,
			            p->labels[i], label);
			goto out;
		}
	}
	if (!ps_rd_end(f)) {
		r = PS_DEAD;
		goto out;
	}
	if (labels != NULL) {
		p->labels = labels;
		p->ntok = n;
		labels = NULL;
	}
	r = 0;
out:
	for (uint32_t i = 0; labels != NULL && i < n; i++)
		free(labels[i]);
	free(labels);
	return r;
}

/* Have the launcher start a helper into h and wait for its READY. */
static int
spawn(struct ps_pool *p, struct ps_helper *h)
{
	uint8_t b = 'H', *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int fd = -1, r;
	pid_t pid = 0;

	h->fd = -1;
	pthread_mutex_lock(&p->ctl_mu);
	if (pf_send_all(p->ctl, &b, 1) != 0)
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer launcher gone");
	else
		r = pl_recv_fd(p->ctl, &fd, &pid);
	pthread_mutex_unlock(&p->ctl_mu);
	if (r != 0)
		return r;
	if ((r = pf_read_frame(fd, &body, &len)) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer helper %d died while starting", (int)pid);
		goto out;
	}
	if ((r = parse_reply(PS_READY, body, len, &f)) == 0)
		r = take_info(p, &f);
	if (r == PS_DEAD)
		r = qs_fail(QS_ERR_INTERNAL, "signer helper %d: malformed READY", (int)pid);
	if (r != 0)
		goto out;
	{
		/* Reply deadline: a helper stuck in its token is given up on
		 * (recv fails, the call sees a dead helper, bury() kills it).
		 * QSIGND_SIGNER_TIMEOUT_MS may shorten it (tests, fast tokens). */
		long ms = QS_PRIVSEP_REPLY_TIMEOUT_S * 1000L;
		const char *e = getenv("QSIGND_SIGNER_TIMEOUT_MS");
		struct timeval tv;
		if (e != NULL && atol(e) >= 100 && atol(e) < ms)
			ms = atol(e);
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
			r = qs_fail(QS_ERR_INTERNAL, "signer socket timeout: %s", strerror(errno));
			goto out;
		}
	}
	h->fd = fd;
	h->pid = pid;
	h->chain_sent = 0;
	pthread_mutex_lock(&p->mu);
	h->gen = ++p->gens;
	pthread_mutex_unlock(&p->mu);
	fd = -1;
	log_debug("privsep.helper_started", "pid=%d", (int)pid);
out:
	if (fd >= 0) {
		close(fd);
		kill(pid, SIGKILL);
	}
	free(body);
	return r;
}

static void
bury(struct ps_helper *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->pid > 0)
		kill(h->pid, SIGKILL); /* alive but broken: make sure */
	h->fd = -1;
	h->pid = 0;
}

/* Replace a dead helper. The caller holds it (busy). */
static int
restart(struct ps_pool *p, struct ps_helper *h)
{
	pid_t old = h->pid;
	int r;

	bury(h);
	if ((r = spawn(p, h)) != 0) {
		log_error("privsep.helper_restart_failed", "old_pid=%d reason=\"%s\"", (int)old,
		          qs_errdetail());
		return qs_fail(QS_ERR_UNAVAILABLE, "signer helper died and could not be restarted");
	}
	log_warn("privsep.helper_restarted", "old_pid=%d new_pid=%d", (int)old, (int)h->pid);
	return 0;
}

int
ps_pool_start(const struct config *c, unsigned n, struct ps_pool **out)
{
	struct ps_pool *p;
	int sv[2], r;
	pid_t front = getpid(), pid;

	*out = NULL;
	if (n == 0 || n > QS_MAX_SIGNERS)
		return qs_fail(QS_ERR_INVALID, "signers must be 1..%d", QS_MAX_SIGNERS);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->ctl_mu, NULL);
	p->ctl = -1;
	for (unsigned i = 0; i <= QS_MAX_SIGNERS; i++)
		p->h[i].fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		r = qs_fail(QS_ERR_IO, "socketpair: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		r = qs_fail(QS_ERR_IO, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0) {
		close(sv[0]);
		pl_main(c, sv[1], front);
	}
	close(sv[1]);
	p->ctl = sv[0];
	p->launcher = pid;
	p->n = n;
	for (unsigned i = 0; i <= n; i++) /* h[n]: the reserved one */
		if ((r = spawn(p, &p->h[i])) != 0)
			goto fail;
	log_info("privsep.start", "signers=%u reserved=1 launcher=%d", n, (int)pid);
	*out = p;
	return 0;
fail:
	ps_pool_stop(p);
	return r;
}

void
ps_pool_stop(struct ps_pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i <= QS_MAX_SIGNERS; i++)
		if (p->h[i].fd >= 0)
			close(p->h[i].fd); /* the helper sees EOF and exits */
	if (p->ctl >= 0)
		close(p->ctl);
	if (p->launcher > 0)
		while (waitpid(p->launcher, NULL, 0) < 0 && errno == EINTR)
			;
	for (size_t i = 0; p->labels != NULL && i < p->ntok; i++)
		free(p->labels[i]);
	free(p->labels);
	for (size_t i = 0; i < p->nchain; i++)
		free(p->chain[i].frame);
	free(p->chain);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->ctl_mu);
	free(p);
}

size_t
ps_pool_ntokens(const struct ps_pool *p)
{
	return p->ntok;
}

const char *
ps_pool_token_label(const struct ps_pool *p, size_t i)
{
	return i < p->ntok ? p->labels[i] : "?";
}

/* An idle helper, round robin among the idle ones: with one call at a time
 * per helper that is also the least busy. */
static unsigned
acquire(struct ps_pool *p)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (unsigned i = 0; i < p->n; i++) {
			unsigned j = (p->rr + i) % p->n;
			if (!p->h[j].busy) {
				p->h[j].busy = 1;
				p->rr = (j + 1) % p->n;
				pthread_mutex_unlock(&p->mu);
				return j;
			}
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
}

static void
release(struct ps_pool *p, unsigned i)
{
	pthread_mutex_lock(&p->mu);
	p->h[i].busy = 0;
	/* Waiters differ (any request helper, or one given helper): waking
	 * only one could wake one that cannot use helper i. */
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Send req to helper h (held), read its reply. 0 with *body (caller frees)
 * and *fields, a QS error from the helper, or PS_DEAD. */
static int
call(struct ps_helper *h, uint8_t type, struct ps_wbuf *req, uint8_t **body, size_t *len,
     struct ps_rd *fields)
{
	int r;

	*body = NULL;
	*len = 0;
	if (h->fd < 0)
		return PS_DEAD;
	if (req->err)
		return qs_fail(QS_ERR_EXHAUSTED, "signer request over %u bytes",
		               QS_MAX_PRIVSEP_MSG);
	if (pf_send(h->fd, req) != 0 || pf_read_frame(h->fd, body, len) != 0)
		return PS_DEAD;
	if ((r = parse_reply(type, *body, *len, fields)) != 0) {
		pf_free_body(*body, *len);
		*body = NULL;
	}
	return r;
}

/* The handle of ref on helper i, finding the key there on first use. */
static int
resolve(struct ps_pool *p, unsigned i, struct ps_keyref *ref, uint32_t *handle)
{
	struct ps_helper *h = &p->h[i];
	struct ps_request q = {.type = PS_FIND, .uri = ref->uri};
	struct ps_find_reply fr;
	struct ps_wbuf req;
	struct ps_rd f;
	uint8_t *body = NULL;
	size_t len = 0;
	int r;

	if (ref->gen[i] == h->gen && h->fd >= 0) {
		*handle = ref->handle[i];
		return 0;
	}
	ps_request_encode(&req, &q);
	r = call(h, PS_FIND, &req, &body, &len, &f);
	ps_wb_free(&req);
	if (r != 0)
		return r;
	if (ps_find_reply_decode(&f, &fr) != 0) {
		pf_free_body(body, len);
		return PS_DEAD;
	}
	/* A key replaced in the token under the same URI (or a helper that
	 * finds another one) must not sign under the identity the daemon
	 * published and logs. */
	if (fr.der_len != ref->der_len || memcmp(fr.der, ref->der, fr.der_len) != 0) {
		pf_free_body(body, len);
		return qs_fail(QS_ERR_PRECONDITION,
		               "key %s: the token now holds another key under this URI than "
		               "when qsignd found it (the public key differs); restart qsignd to "
		               "use the new key",
		               ref->uri);
	}
	*handle = fr.handle;
	ref->handle[i] = *handle;
	ref->gen[i] = h->gen;
	pf_free_body(body, len);
	return 0;
}

/* Hand helper h (held) the policy versions it has not seen yet. A version
 * it refuses stays refused (logged); the helper keeps its verified chain
 * and refuses what needs the newer version. PS_DEAD if it broke. */
static int
sync_chain(struct ps_pool *p, struct ps_helper *h)
{
	for (;;) {
		struct ps_chain_entry e;
		uint8_t *body = NULL;
		size_t len = 0;
		struct ps_rd f;
		int r;

		pthread_mutex_lock(&p->mu);
		if (h->chain_sent >= p->nchain) {
			pthread_mutex_unlock(&p->mu);
			return 0;
		}
		e = p->chain[h->chain_sent];
		pthread_mutex_unlock(&p->mu);
		if (pf_send_all(h->fd, e.frame, e.len) != 0 ||
		    pf_read_frame(h->fd, &body, &len) != 0)
			return PS_DEAD;
		r = parse_reply(PS_POLICY, body, len, &f);
		pf_free_body(body, len);
		if (r == PS_DEAD)
			return PS_DEAD;
		if (r != 0)
			log_error("privsep.policy_refused", "pid=%d entry=%zu reason=\"%s\"",
			          (int)h->pid, h->chain_sent + 1, qs_errdetail());
		h->chain_sent++;
	}
}

/* A request and, for SIGN, SIGN_MANY and PUBKEY, the key it is about:
 * its handle on the chosen helper is filled in by run(). */
struct ps_req {
	struct ps_request wire;
	struct ps_keyref *ref;
};

/* One request on the next free helper (or on helper `only` if not -1). A
 * helper found dead is replaced; the request is then retried once if
 * `retry` (it is idempotent), else fails UNAVAILABLE. */
static int
run(struct ps_pool *p, const struct ps_req *q, int retry, int only, uint8_t **body, size_t *len,
    struct ps_rd *fields)
{
	unsigned i;
	int r = 0;

	if (only >= 0) {
		pthread_mutex_lock(&p->mu);
		while (p->h[only].busy)
			pthread_cond_wait(&p->cv, &p->mu);
		p->h[only].busy = 1;
		pthread_mutex_unlock(&p->mu);
		i = (unsigned)only;
	} else {
		i = acquire(p);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct ps_request w = q->wire;
		struct ps_wbuf req;

		if (p->h[i].fd < 0 && (r = restart(p, &p->h[i])) != 0)
			break;
		r = sync_chain(p, &p->h[i]);
		if (r == 0 && q->ref != NULL)
			r = resolve(p, i, q->ref, &w.handle);
		if (r == 0) {
			ps_request_encode(&req, &w);
			r = call(&p->h[i], w.type, &req, body, len, fields);
			ps_wb_free(&req);
		}
		if (r != PS_DEAD)
			break;
		log_warn("privsep.helper_died", "pid=%d request=%u", (int)p->h[i].pid, w.type);
		if ((r = restart(p, &p->h[i])) != 0)
			break;
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer helper died during the call");
		if (!retry)
			break;
	}
	release(p, i);
	return r;
}

int
ps_find(struct ps_pool *p, const char *uri, struct ps_keyref **refp, enum hsm_keytype *type,
        size_t *tok_index, uint8_t **der, size_t *der_len)
{
	struct ps_req q = {.wire = {.type = PS_FIND, .uri = uri}};
	struct ps_keyref *ref = NULL;
	struct ps_find_reply fr;
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	*refp = NULL;
	*der = NULL;
	*der_len = 0;
	if (strlen(uri) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_INVALID, "key URI longer than %d bytes", QS_MAX_PRIVSEP_STR);
	if ((r = run(p, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_find_reply_decode(&f, &fr) != 0 || fr.tok >= p->ntok) {
		r = qs_fail(QS_ERR_INTERNAL, "malformed find reply from a signer helper");
		goto out;
	}
	if ((ref = calloc(1, sizeof(*ref))) == NULL || (ref->uri = strdup(uri)) == NULL ||
	    (*der = malloc(fr.der_len ? fr.der_len : 1)) == NULL ||
	    (ref->der = malloc(fr.der_len ? fr.der_len : 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*der, fr.der, fr.der_len);
	memcpy(ref->der, fr.der, fr.der_len);
	ref->der_len = fr.der_len;
	*der_len = fr.der_len;
	*type = (enum hsm_keytype)fr.keytype;
	*tok_index = fr.tok;
	ref->pool = p;
	ref->only = -1;
	*refp = ref;
	ref = NULL;
	r = 0;
out:
	if (r != 0) {
		free(*der);
		*der = NULL;
	}
	ps_keyref_free(ref);
	free(body);
	return r;
}

void
ps_keyref_reserve(struct ps_keyref *ref)
{
	ref->only = (int)ref->pool->n;
}

void
ps_keyref_free(struct ps_keyref *ref)
{
	if (ref == NULL)
		return;
	free(ref->uri);
	free(ref->der);
	free(ref);
}

/* One signature request about ref (w.handle filled in by run). */
static int
sign_call(struct ps_keyref *ref, const struct ps_request *w, uint8_t *sig, size_t *sig_len)
{
	struct ps_req q = {.wire = *w, .ref = ref};
	uint8_t *body = NULL;
	const uint8_t *s;
	size_t len = 0, n = 0;
	struct ps_rd f;
	int r;

	*sig_len = 0;
	if ((r = run(ref->pool, &q, 1, ref->only, &body, &len, &f)) != 0)
		return r;
	if (ps_sign_reply_decode(&f, &s, &n) != 0) {
		free(body);
		return qs_fail(QS_ERR_INTERNAL, "malformed sign reply from a signer helper");
	}
	memcpy(sig, s, n);
	*sig_len = n;
	free(body);
	return 0;
}

int
ps_sign(struct ps_keyref *ref, const uint8_t *in, size_t in_len, uint8_t *sig, size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN, .data = in, .data_len = in_len};

	*sig_len = 0;
	if (in_len > QS_MAX_BLOB)
		return qs_fail(QS_ERR_EXHAUSTED, "input of %zu bytes over %u", in_len, QS_MAX_BLOB);
	return sign_call(ref, &w, sig, sig_len);
}

/* No request: an online TUF document, a routine certificate or CRL. */
static const struct ps_evidence no_evidence = {.id = "", .role = "", .kind = "", .submitter = ""};

int
ps_sign_quorum(struct ps_keyref *ref, const struct ps_evidence *ev, const uint8_t *payload,
               size_t len, uint8_t *sig, size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_QUORUM, .ev = *ev, .data = payload, .data_len = len};

	*sig_len = 0;
	if (len > QS_MAX_REQUEST_PAYLOAD || ev->nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "request over the signer protocol's limits");
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_checkpoint(struct ps_keyref *ref, const uint8_t *text, size_t len, uint8_t *sig,
                   size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_CHECKPOINT, .data = text, .data_len = len};

	*sig_len = 0;
	if (len > QS_MAX_NOTE)
		return qs_fail(QS_ERR_EXHAUSTED, "checkpoint of %zu bytes over %u", len,
		               QS_MAX_NOTE);
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_tuf(struct ps_keyref *ref, const char *repo, const uint8_t *text, size_t len,
            const struct ps_evidence *ev, const uint8_t *payload, size_t plen, uint8_t *sig,
            size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_TUF,
	                       .repo = repo,
	                       .data = text,
	                       .data_len = len,
	                       .ev = ev != NULL ? *ev : no_evidence,
	                       .payload = payload,
	                       .payload_len = plen};

	*sig_len = 0;
	if (len > TUF_MAX_METADATA || strlen(repo) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_EXHAUSTED, "TUF metadata of %zu bytes over %u", len,
		               TUF_MAX_METADATA);
	if (plen > QS_MAX_REQUEST_PAYLOAD || w.ev.nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "request over the signer protocol's limits");
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_x509(struct ps_keyref *ref, enum ps_x509_kind kind, const uint8_t *data, size_t len,
             const struct ps_evidence *ev, const uint8_t *payload, size_t plen, const uint8_t *prev,
             size_t prev_len, const uint8_t *prev_sig, size_t prev_sig_len, uint8_t *sig,
             size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_X509,
	                       .x509_kind = (uint8_t)kind,
	                       .data = data,
	                       .data_len = len,
	                       .ev = ev != NULL ? *ev : no_evidence,
	                       .payload = payload,
	                       .payload_len = plen,
	                       .prev = prev,
	                       .prev_len = prev_len,
	                       .prev_sig = prev_sig,
	                       .prev_sig_len = prev_sig_len};

	*sig_len = 0;
	if (len > PS_MAX_X509 || prev_len > PS_MAX_X509 || prev_sig_len > PS_MAX_PREV_SIG)
		return qs_fail(QS_ERR_EXHAUSTED, "%zu bytes over %u", len, PS_MAX_X509);
	if (plen > QS_MAX_REQUEST_PAYLOAD || w.ev.nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "request over the signer protocol's limits");
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_policy_add(struct ps_pool *p, const struct ps_evidence *ev, const uint8_t *text, size_t len)
{
	struct ps_request q = {.type = PS_POLICY, .ev = *ev, .data = text, .data_len = len};
	struct ps_chain_entry *nc;
	struct ps_wbuf b;
	int r;

	if (len > QS_MAX_POLICY_BYTES || ev->nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "policy change over the signer protocol's limits");
	ps_request_encode(&b, &q);
	if ((r = ps_wb_finish(&b)) != 0) {
		ps_wb_free(&b);
		return r;
	}
	pthread_mutex_lock(&p->mu);
	if ((nc = realloc(p->chain, (p->nchain + 1) * sizeof(*nc))) == NULL) {
		pthread_mutex_unlock(&p->mu);
		ps_wb_free(&b);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	p->chain = nc;
	p->chain[p->nchain].frame = b.p; /* the pool's now */
	p->chain[p->nchain].len = b.len;
	p->nchain++;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int
ps_sign_many(struct ps_keyref *ref, const uint8_t *const *in, const size_t *in_len, size_t n,
             uint8_t *sigs, size_t *sig_lens, int *status)
{
	struct ps_req q = {
	        .wire = {.type = PS_SIGN_MANY, .items = in, .item_lens = in_len, .nitems = n},
	        .ref = ref};
	uint8_t *body = NULL;
	struct ps_rd f;
	int r;

	if (n == 0 || n > QS_MAX_BATCH)
		return qs_fail(QS_ERR_INVALID, "1..%d inputs per call", QS_MAX_BATCH);
	for (size_t i = 0; i < n; i++)
		if (in_len[i] > QS_MAX_PRIVSEP_DIGEST)
			return qs_fail(QS_ERR_INVALID, "sign_many takes digests (<= %d bytes)",
			               QS_MAX_PRIVSEP_DIGEST);
	{
		size_t len = 0;
		if ((r = run(ref->pool, &q, 1, -1, &body, &len, &f)) != 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		int st;
		size_t m = 0;
		const uint8_t *s;
		if (ps_sign_many_item_decode(&f, &st, &s, &m) != 0) {
			free(body);
			return qs_fail(QS_ERR_INTERNAL,
			               "malformed sign_many reply from a signer helper");
		}
		status[i] = st;
		sig_lens[i] = m;
		memcpy(sigs + i * HSM_SIG_MAX, s, m);
	}
	if (!ps_rd_end(&f)) {
		free(body);
		return qs_fail(QS_ERR_INTERNAL, "trailing bytes in a sign_many reply");
	}
	free(body);
	return 0;
}

int
ps_pubkey(struct ps_keyref *ref, uint8_t **der, size_t *der_len)
{
	struct ps_req q = {.wire = {.type = PS_PUBKEY}, .ref = ref};
	uint8_t *body = NULL;
	const uint8_t *d;
	size_t len = 0, n = 0;
	struct ps_rd f;
	int r;

	*der = NULL;
	*der_len = 0;
	if ((r = run(ref->pool, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_pubkey_reply_decode(&f, &d, &n) != 0)
		r = qs_fail(QS_ERR_INTERNAL, "malformed pubkey reply from a signer helper");
	else if ((*der = malloc(n ? n : 1)) == NULL)
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
	else {
		memcpy(*der, d, n);
		*der_len = n;
	}
	free(body);
	return r;
}

int
ps_keygen(struct ps_pool *p, const char *token_uri, enum hsm_keytype type, const char *label)
{
	struct ps_req q = {.wire = {.type = PS_KEYGEN,
	                            .uri = token_uri,
	                            .keytype = (uint8_t)type,
	                            .label = label}};
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	if (strlen(token_uri) > QS_MAX_PRIVSEP_STR || strlen(label) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_INVALID, "token URI or label too long");
	if ((r = run(p, &q, 0, -1, &body, &len, &f)) != 0)
		return r;
	r = ps_rd_end(&f) ? 0 : qs_fail(QS_ERR_INTERNAL, "malformed keygen reply");
	free(body);
	return r;
}

int
ps_token_for(struct ps_pool *p, const char *uri, uint32_t *index)
{
	struct ps_req q = {.wire = {.type = PS_TOKEN_FOR, .uri = uri}};
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	*index = PS_NO_TOKEN;
	if (strlen(uri) > QS_MAX_PRIVSEP_STR)
		return 0;
	if ((r = run(p, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_token_for_reply_decode(&f, index) != 0 ||
	    (*index != PS_NO_TOKEN && *index >= p->ntok)) {
		*index = PS_NO_TOKEN;
		r = qs_fail(QS_ERR_INTERNAL, "malformed token reply");
	}
	free(body);
	return r;
}

void
ps_token_stats(struct ps_pool *p, size_t t, unsigned *sessions, unsigned *reconnects)
{
	struct ps_req q = {.wire = {.type = PS_INFO}};

	*sessions = 0;
	*reconnects = 0;
	for (unsigned i = 0; i < p->n; i++) {
		char label[QS_MAX_PRIVSEP_STR + 1];
		uint8_t *body = NULL;
		size_t len = 0;
		struct ps_rd f;
		uint32_t n = 0;

		uint32_t s = 0, rc = 0, st = 0, rct = 0, k;

		if (run(p, &q, 1, (int)i, &body, &len, &f) != 0)
			continue;
		if (ps_info_decode_count(&f, &n) != 0 || n > QS_MAX_PRIVSEP_TOKENS)
			n = 0;
		for (k = 0; k < n; k++) {
			if (ps_info_decode_token(&f, label, &s, &rc) != 0)
				break;
			if (k == t) {
				st = s;
				rct = rc;
			}
		}
		/* Only from a reply that decoded to its end. */
		if (k == n && ps_rd_end(&f)) {
			*sessions += st;
			*reconnects += rct;
		}
		free(body);
	}
}

/* ------------------------------------------------------------ self test */

static int
raw_roundtrip(int fd, const uint8_t *frame, size_t n, uint8_t **body, size_t *len)
{
	if (pf_send_all(fd, frame, n) != 0)
		return -1;
	return pf_read_frame(fd, body, len);
}

static int
expect_status(const char *what, int fd, const uint8_t *frame, size_t n, uint8_t type, int want)
{
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r = raw_roundtrip(fd, frame, n, &body, &len), got;

	if (r != 0) {
		printf("FAIL: %s: no reply (helper gone)\n", what);
		return 1;
	}
	got = parse_reply(type, body, len, &f);
	free(body);
	if (got != want) {
		printf("FAIL: %s: status %d (%s), want %d\n", what, got, qs_strerror(got), want);
		return 1;
	}
	printf("ok: %s: %s (%s)\n", what, qs_strerror(got), got ? qs_errdetail() : "served");
	return 0;
}

static int
expect_exit(const char *what, int fd, const uint8_t *frame, size_t n)
{
	uint8_t *body = NULL;
	size_t len = 0;
	int r = raw_roundtrip(fd, frame, n, &body, &len);

	free(body);
	if (r == 0) {
		printf("FAIL: %s: the helper answered instead of exiting\n", what);
		return 1;
	}
	printf("ok: %s: the helper exited\n", what);
	return 0;
}

/* The launcher's filter: a call it forbids kills the launcher (SIGSYS).
 * Without a filter (seccomp off, sanitizer build) it says so and passes:
 * the caller knows which to expect. */
static int
expect_launcher_killed(struct ps_pool *p)
{
	char path[64], line[256];
	int filtered = -1, st = 0;
	uint8_t b = 'X';
	FILE *f;
	pid_t w;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->launcher);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "Seccomp: %d", &filtered) == 1)
				break;
		fclose(f);
	}
	if (filtered != 2) {
		printf("note: the launcher runs without a seccomp filter (Seccomp: %d)\n",
		       filtered);
		return 0;
	}
	if (pf_send_all(p->ctl, &b, 1) != 0) {
		printf("FAIL: launcher: cannot send the forbidden-call request\n");
		return 1;
	}
	while ((w = waitpid(p->launcher, &st, 0)) < 0 && errno == EINTR)
		;
	if (w != p->launcher) {
		printf("FAIL: launcher: waitpid: %s\n", strerror(errno));
		return 1;
	}
	p->launcher = 0; /* reaped: ps_pool_stop must not wait for it */
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS) {
		printf("FAIL: launcher: a forbidden call did not kill it by SIGSYS (status 0x%x)\n",
		       st);
		return 1;
	}
	printf("ok: forbidden call in the launcher: killed by SIGSYS\n");
	return 0;
}

/* The handle of uri on the selftest's helper, 0 (said) if none. */
static uint32_t
selftest_find(struct ps_pool *p, const char *uri)
{
	struct ps_wbuf b;
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	uint32_t handle;
	int r;

	ps_wb_init(&b);
	ps_wb_u8(&b, PS_FIND);
	ps_wb_str(&b, uri);
	r = call(&p->h[0], PS_FIND, &b, &body, &len, &f);
	ps_wb_free(&b);
	handle = r == 0 ? ps_rd_u32(&f) : 0;
	free(body);
	if (handle == 0)
		printf("FAIL: find %s: %d %s\n", uri, r, qs_errdetail());
	return handle;
}

int
ps_selftest(const struct config *c, const char *uri)
{
	struct ps_pool *p = NULL;
	struct ps_wbuf b;
	uint32_t handle, audit_handle;
	uint8_t dg[32] = {0};
	int fails = 0, r;

	signal(SIGPIPE, SIG_IGN);
	pl_selftest = 1;
	if ((r = ps_pool_start(c, 1, &p)) != 0) {
		printf("FAIL: start a signer helper: %s: %s\n", qs_strerror(r), qs_errdetail());
		return 1;
	}
	printf("ok: helper pid %d\n", (int)p->h[0].pid);
	/* A legitimate find: the only way to obtain a handle. The key of an
	 * online role signs what it is asked; the audit key only checkpoints. */
	{
		struct policy *pol = NULL;
		const char *online = NULL;
		if (policy_load_file(c->policy_file, &pol) == 0)
			for (size_t i = 0; i < pol->nroles && online == NULL; i++)
				if (pol->roles[i].mode == POLICY_ONLINE)
					online = pol->keys[pol->roles[i].keys[0]].uri;
		if (online == NULL) {
			printf("FAIL: the bootstrap policy has no online role\n");
			policy_unref(pol);
			ps_pool_stop(p);
			return 1;
		}
		handle = selftest_find(p, online);
		audit_handle = selftest_find(p, uri);
		policy_unref(pol);
	}
	if (handle == 0 || audit_handle == 0) {
		ps_pool_stop(p);
		return 1;
	}
	printf("ok: find: handle %u (online role key), %u (audit key)\n", handle, audit_handle);
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, audit_handle);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with the audit key", p->h[0].fd, b.p, b.len, PS_SIGN,
	                       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* A request type outside the table. */
	ps_wb_init(&b);
	ps_wb_u8(&b, 0x55);
	ps_wb_u32(&b, handle);
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("unknown request type 0x55", p->h[0].fd, b.p, b.len, 0x55,
	                       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* A handle the helper never handed out. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, handle + 1000);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with forged handle", p->h[0].fd, b.p, b.len, PS_SIGN,
	                       QS_ERR_DENIED);
	ps_wb_free(&b);
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_PUBKEY);
	ps_wb_u32(&b, 0);
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("public key of handle 0", p->h[0].fd, b.p, b.len, PS_PUBKEY,
	                       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* Still serving after the refusals. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, handle);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with its handle", p->h[0].fd, b.p, b.len, PS_SIGN, 0);
	ps_wb_free(&b);
	/* A batch: with its handle it signs; with a forged one it is refused. */
	for (int forged = 0; forged < 2; forged++) {
		ps_wb_init(&b);
		ps_wb_u8(&b, PS_SIGN_MANY);
		ps_wb_u32(&b, forged ? handle + 1000 : handle);
		ps_wb_u32(&b, 2);
		ps_wb_bytes(&b, dg, sizeof(dg));
		ps_wb_bytes(&b, dg, sizeof(dg));
		b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
		fails += expect_status(
		        forged ? "sign_many with forged handle" : "sign_many with its handle",
		        p->h[0].fd, b.p, b.len, PS_SIGN_MANY, forged ? QS_ERR_DENIED : 0);
		ps_wb_free(&b);
	}
	/* Garbage: a find with a trailing byte. The helper must exit. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_FIND);
	ps_wb_str(&b, uri);
	ps_wb_u8(&b, 0);
	b.p[0] = (uint8_t)((b.len - 4) >> 24), b.p[1] = (uint8_t)((b.len - 4) >> 16);
	b.p[2] = (uint8_t)((b.len - 4) >> 8), b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_exit("find with a trailing byte", p->h[0].fd, b.p, b.len);
	ps_wb_free(&b);
	/* A replacement from the launcher, then a frame length over the cap. */
	if ((r = restart(p, &p->h[0])) != 0) {
		printf("FAIL: restart: %s\n", qs_errdetail());
		fails++;
	} else {
		static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, PS_INFO};
		static const uint8_t trunc[] = {0, 0, 0, 3, PS_SIGN, 0, 0};
		printf("ok: replacement helper pid %d\n", (int)p->h[0].pid);
		fails += expect_exit("frame length 0xffffffff", p->h[0].fd, huge, sizeof(huge));
		if (restart(p, &p->h[0]) != 0)
			fails++;
		else
			fails += expect_exit("sign with a truncated handle", p->h[0].fd, trunc,
			                     sizeof(trunc));
	}
	fails += expect_launcher_killed(p);
	ps_pool_stop(p);
	printf("%s\n", fails ? "FAIL" : "PASS");
	return fails ? 1 : 0;
}
