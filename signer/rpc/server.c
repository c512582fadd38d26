#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "metrics.h"
#include "probe.h"
#include "qs_err.h"
#include "wire.h"

#define PIPE_BUCKETS 1024
/* A connection whose session ended is closed this long after its refusal,
 * so that the refusal itself reaches the client first (nng completes a
 * send before the transport has written it). */
#define SESSION_CLOSE_DELAY_MS 200

struct challenge {
	uint8_t bytes[QS_CHALLENGE_LEN];
	int64_t issued_ms;
	int live;
};

struct pipe_state {
	uint32_t id;
	nng_pipe pipe;
	int64_t created_ms, active_ms; /* for the reaper */
	int authed;
	char principal[QS_MAX_NAME + 1];
	/* The session: the key the principal authenticated with (a reference)
	 * and its roles then. Every call checks them against the policy in
	 * force (pipes_check_session). */
	EVP_PKEY *pk;
	unsigned roles;
	int64_t close_at_ms; /* != 0: the session ended; the reaper closes it */
	struct challenge ch[QS_MAX_CHALLENGES_PER_PIPE];
	int64_t uid, pid;
	struct pipe_state *next;
};

struct pipe_table {
	pthread_mutex_t mu;
	struct pipe_state *tab[PIPE_BUCKETS];
	size_t count;
	size_t max; /* QS_MAX_PIPES, or less under a low fd limit */
	pthread_t reaper;
	int reaper_started;
};

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ pipes */

static struct pipe_state *
pipe_find(struct pipe_table *pt, uint32_t id)
{
	for (struct pipe_state *p = pt->tab[id % PIPE_BUCKETS]; p != NULL; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

static void
pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct server *s = arg;
	struct pipe_table *pt = s->pipes;
	uint32_t id = (uint32_t)nng_pipe_id(p);
	uint64_t uid = 0, pid = 0;

	if (ev == NNG_PIPE_EV_ADD_PRE) {
		struct pipe_state *ps = calloc(1, sizeof(*ps));
		int ipc = nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0;

		if (ipc)
			nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid);
		pthread_mutex_lock(&pt->mu);
		if (ps == NULL || pt->count >= pt->max || s->stopping) {
			pthread_mutex_unlock(&pt->mu);
			free(ps);
			log_warn("conn.refused", "pipe=%u reason=%s", id,
			         ps ? "too many connections" : "out of memory");
			nng_pipe_close(p);
			return;
		}
		ps->id = id;
		ps->pipe = p;
		ps->created_ms = ps->active_ms = now_ms();
		ps->uid = ipc ? (int64_t)uid : -1;
		ps->pid = ipc ? (int64_t)pid : -1;
		ps->next = pt->tab[id % PIPE_BUCKETS];
		pt->tab[id % PIPE_BUCKETS] = ps;
		pt->count++;
		pthread_mutex_unlock(&pt->mu);
		if (ipc)
			log_debug("conn.open", "pipe=%u peer_uid=%llu peer_pid=%llu", id,
			          (unsigned long long)uid, (unsigned long long)pid);
		else
			log_debug("conn.open", "pipe=%u", id);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		pthread_mutex_lock(&pt->mu);
		for (struct pipe_state **pp = &pt->tab[id % PIPE_BUCKETS]; *pp != NULL;
		     pp = &(*pp)->next)
			if ((*pp)->id == id) {
				struct pipe_state *dead = *pp;
				*pp = dead->next;
				EVP_PKEY_free(dead->pk);
				OPENSSL_cleanse(dead, sizeof(*dead));
				free(dead);
				pt->count--;
				break;
			}
		pthread_mutex_unlock(&pt->mu);
		log_debug("conn.close", "pipe=%u", id);
	}
}

int
pipes_new_challenge(struct pipe_table *pt, uint32_t pipe_id, uint8_t *challenge)
{
	struct pipe_state *ps;
	struct challenge *slot = NULL;
	int r = 0;

	if (RAND_bytes(challenge, QS_CHALLENGE_LEN) != 1)
		return qs_fail(QS_ERR_CRYPTO, "no randomness for a challenge");
	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, pipe_id)) == NULL) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "connection is closing");
		goto out;
	}
	/* Reuse a free slot, else replace the oldest challenge. */
	for (size_t i = 0; i < QS_MAX_CHALLENGES_PER_PIPE; i++)
		if (!ps->ch[i].live) {
			slot = &ps->ch[i];
			break;
		} else if (slot == NULL || ps->ch[i].issued_ms < slot->issued_ms) {
			slot = &ps->ch[i];
		}
	memcpy(slot->bytes, challenge, QS_CHALLENGE_LEN);
	slot->issued_ms = now_ms();
	slot->live = 1;
out:
	pthread_mutex_unlock(&pt->mu);
	return r;
}

int
pipes_take_challenge(struct pipe_table *pt, uint32_t pipe_id, const uint8_t *challenge, size_t len)
{
	struct pipe_state *ps;
	int64_t now = now_ms();
	int r = qs_fail(QS_ERR_UNAUTH,
	                "challenge unknown on this connection, already used or expired: ask for a "
	                "new one");

	if (len != QS_CHALLENGE_LEN)
		return qs_fail(QS_ERR_UNAUTH, "challenge must be %d bytes", QS_CHALLENGE_LEN);
	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, pipe_id)) != NULL)
		for (size_t i = 0; i < QS_MAX_CHALLENGES_PER_PIPE; i++) {
			struct challenge *c = &ps->ch[i];
			if (!c->live || CRYPTO_memcmp(c->bytes, challenge, len) != 0)
				continue;
			c->live = 0;
			if (now - c->issued_ms <= QS_MAX_CHALLENGE_AGE_S * 1000 &&
			    now >= c->issued_ms)
				r = 0;
			break;
		}
	pthread_mutex_unlock(&pt->mu);
	if (r == 0)
		qs_errclear();
	return r;
}

int
pipes_set_principal(struct pipe_table *pt, uint32_t pipe_id, const char *principal, EVP_PKEY *pk,
                    unsigned roles)
{
	struct pipe_state *ps;
	int r = 0;

	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, pipe_id)) == NULL || ps->close_at_ms != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "connection is closing");
	} else if (EVP_PKEY_up_ref(pk) != 1) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
	} else {
		EVP_PKEY_free(ps->pk);
		ps->pk = pk;
		ps->roles = roles;
		snprintf(ps->principal, sizeof(ps->principal), "%s", principal);
		ps->authed = 1;
	}
	pthread_mutex_unlock(&pt->mu);
	return r;
}

/* End the session of ps (caller holds pt->mu): unauthenticated at once,
 * closed by the reaper shortly after. */
static void
session_end(struct pipe_state *ps)
{
	ps->authed = 0;
	EVP_PKEY_free(ps->pk);
	ps->pk = NULL;
	ps->close_at_ms = now_ms() + SESSION_CLOSE_DELAY_MS;
}

/*
 * The session of cx's connection still stands under the policy in force:
 * the principal still has the key it authenticated with. Otherwise the
 * session ends (QS_ERR_UNAUTH, the connection is closed).
 */
static int
pipes_check_session(struct pipe_table *pt, const struct call_ctx *cx,
                    const struct policy_principal *pr)
{
	struct pipe_state *ps;
	int ok = 0;

	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, cx->pipe_id)) != NULL && ps->authed && ps->pk != NULL &&
	    pr != NULL && EVP_PKEY_eq(ps->pk, pr->pk) == 1)
		ok = 1;
	else if (ps != NULL)
		session_end(ps);
	pthread_mutex_unlock(&pt->mu);
	if (ok)
		return 0;
	log_warn("auth.session_ended", "pipe=%u principal=%s policy_version=%llu reason=\"%s\"",
	         cx->pipe_id, cx->principal, (unsigned long long)cx->pol->version,
	         pr == NULL ? "no longer in the policy" : "key replaced");
	return qs_fail(QS_ERR_UNAUTH,
	               "the session of %s ended: %s in policy version %llu; this connection is "
	               "closed",
	               cx->principal,
	               pr == NULL ? "the principal is no longer" : "its key was replaced",
	               (unsigned long long)cx->pol->version);
}

/* A call of cx was refused for want of permission: if the principal lost a
 * role since it authenticated, its session ends. 1 if it did. */
static int
pipes_roles_lost(struct pipe_table *pt, const struct call_ctx *cx, unsigned now_roles,
                 unsigned *lost)
{
	struct pipe_state *ps;
	int ended = 0;

	*lost = 0;
	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, cx->pipe_id)) != NULL && ps->authed &&
	    (*lost = ps->roles & ~now_roles) != 0) {
		session_end(ps);
		ended = 1;
	}
	pthread_mutex_unlock(&pt->mu);
	return ended;
}

/* Copy what the handler needs to know about the pipe into cx. */
static void
pipes_lookup(struct pipe_table *pt, struct call_ctx *cx)
{
	struct pipe_state *ps;

	cx->authed = 0;
	cx->peer_uid = cx->peer_pid = -1;
	pthread_mutex_lock(&pt->mu);
	if ((ps = pipe_find(pt, cx->pipe_id)) != NULL) {
		ps->active_ms = now_ms();
		cx->authed = ps->authed;
		memcpy(cx->principal, ps->principal, sizeof(cx->principal));
		cx->peer_uid = ps->uid;
		cx->peer_pid = ps->pid;
	}
	pthread_mutex_unlock(&pt->mu);
}

/* ------------------------------------------------------------ dispatch */

struct policy *
server_policy(struct server *s)
{
	struct policy *p;

	pthread_rwlock_rdlock(&s->pol_lock);
	p = policy_ref(s->pol);
	pthread_rwlock_unlock(&s->pol_lock);
	return p;
}

/* Handle one frame; always produces a reply frame. */
static nng_msg *
handle(struct server *s, nng_msg *req)
{
	Qsign__V1__Call *call = NULL;
	Qsign__V1__Reply reply = QSIGN__V1__REPLY__INIT;
	struct call_ctx cx = {.srv = s, .pidx = -1};
	const struct rpc_method *m = NULL;
	uint8_t *body = NULL, *frame = NULL;
	size_t body_len = 0, frame_len = 0;
	nng_msg *out = NULL;
	char pb[80];
	int r;

	int64_t t0 = mono_us();

	cx.pipe_id = (uint32_t)nng_pipe_id(nng_msg_get_pipe(req));
	qs_errclear();
	if ((r = qs_wire_unpack(&qsign__v1__call__descriptor, nng_msg_body(req), nng_msg_len(req),
	                        QS_MAX_FRAME, (ProtobufCMessage **)&call)) != 0)
		goto reply;
	reply.call_id = call->call_id;
	m = rpc_method_find(call->method);
	if (m == NULL) {
		r = qs_fail(QS_ERR_UNIMPLEMENTED, "unknown method \"%s\"",
		            log_peerstr(call->method, pb, sizeof(pb)));
		goto reply;
	}
	if (call->deadline_ms != 0 && (int64_t)call->deadline_ms < now_ms()) {
		r = qs_fail(QS_ERR_TIMEOUT, "deadline passed before the call was served");
		goto reply;
	}
	cx.deadline_ms = (int64_t)call->deadline_ms;
	pipes_lookup(s->pipes, &cx);
	/* Replicas: a policy version applied through another replica is in
	 * force here before this call is served. Calls that act for a
	 * principal fail closed when that cannot be known (the store is
	 * unreachable: they could not be recorded either); the
	 * unauthenticated ones (challenge, probe) go on. */
	if ((r = requests_policy_sync(s)) != 0) {
		if (m->needs_auth)
			goto reply;
		qs_errclear();
	}
	cx.pol = server_policy(s);
	if (m->needs_auth) {
		if (!cx.authed) {
			r = qs_fail(QS_ERR_UNAUTH, "not authenticated: call %s first",
			            QS_M_CHALLENGE);
			goto reply;
		}
		/* The session is bound to the key it authenticated with: a
		 * principal removed or re-keyed by a later policy version is
		 * out at its next call, whatever the connection. */
		cx.pidx = policy_principal_index(cx.pol, cx.principal);
		if ((r = pipes_check_session(s->pipes, &cx,
		                             cx.pidx < 0 ? NULL : &cx.pol->principals[cx.pidx])) !=
		    0) {
			cx.authed = 0;
			goto reply;
		}
	}
	r = m->fn(&cx, call->body.data, call->body.len, &body, &body_len);
	if (r == QS_ERR_DENIED && m->needs_auth && cx.authed) {
		unsigned lost;
		char rb[32], detail[QS_ERRDETAIL_MAX];
		if (pipes_roles_lost(s->pipes, &cx, cx.pol->principals[cx.pidx].roles, &lost)) {
			snprintf(detail, sizeof(detail), "%s", qs_errdetail());
			log_warn("auth.session_ended",
			         "pipe=%u principal=%s policy_version=%llu reason=\"lost role(s) "
			         "%s\"",
			         cx.pipe_id, cx.principal, (unsigned long long)cx.pol->version,
			         policy_roles_str(lost, rb, sizeof(rb)));
			qs_fail(r,
			        "%s (%s lost role(s) %s in policy version %llu: this connection "
			        "is closed)",
			        detail, cx.principal, rb, (unsigned long long)cx.pol->version);
		}
	}
	if (m->mutates && cx.authed &&
	    (r == QS_ERR_DENIED || r == QS_ERR_PRECONDITION || r == QS_ERR_UNAUTH)) {
		/* Refusals of state-changing calls by known principals are part
		 * of the record (anonymous noise is not: it would let anyone
		 * fill the log); beyond the principal's rate they are counted
		 * into the periodic summary, for the same reason. */
		char detail[QS_ERRDETAIL_MAX];
		const char *st = qs_status_name(qs_err_status(r));
		snprintf(detail, sizeof(detail), "%s", qs_errdetail());
		if (audit_append_bounded(s->audit, cx.principal, "refusal", m->name, st,
		                         json_pack("{s:s,s:s,s:s,s:s}", "principal", cx.principal,
		                                   "method", m->name, "status", st, "message",
		                                   detail)) != 0)
			log_error("audit.refusal", "detail=\"%s\"", qs_errdetail());
		qs_fail(r, "%s", detail);
	}
reply:
	reply.status = (Qsign__V1__Status)qs_err_status(r);
	if (r != 0) {
		reply.message = (char *)qs_errdetail();
		if (reply.message[0] == '\0')
			reply.message = (char *)qs_strerror(r);
		if ((int)reply.status == QS_STATUS_INTERNAL)
			log_error("call.error", "pipe=%u method=%s principal=%s detail=\"%s\"",
			          cx.pipe_id, m ? m->name : "-", cx.authed ? cx.principal : "-",
			          reply.message);
		else
			log_info("call.refused",
			         "pipe=%u method=%s principal=%s status=%s detail=\"%s\"",
			         cx.pipe_id, m ? m->name : "-", cx.authed ? cx.principal : "-",
			         qs_status_name(reply.status), reply.message);
	} else {
		reply.body.data = body;
		reply.body.len = body_len;
	}
	metrics_call(m ? m->name : "(invalid)", (int)reply.status, mono_us() - t0);
	if (qs_wire_pack(&reply.base, &frame, &frame_len) == 0 && nng_msg_alloc(&out, 0) == 0 &&
	    nng_msg_append(out, frame, frame_len) != 0) {
		nng_msg_free(out);
		out = NULL;
	}
	free(frame);
	free(body);
	if (call != NULL)
		protobuf_c_message_free_unpacked(&call->base, NULL);
	policy_unref(cx.pol);
	return out;
}

static void *
worker_main(void *arg)
{
	struct server *s = arg;
	nng_aio *aio = NULL;
	nng_ctx ctx;

	if (nng_aio_alloc(&aio, NULL, NULL) != 0 || nng_ctx_open(&ctx, s->sock) != 0) {
		log_error("worker.failed", "cannot allocate nng context");
		nng_aio_free(aio);
		return NULL;
	}
	while (!s->stopping) {
		nng_msg *req, *rep;
		int rv;

		/* Wake up regularly so a stop request is seen within 200 ms
		 * even when no call arrives; in-flight calls always finish. */
		nng_aio_set_timeout(aio, 200);
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		rv = nng_aio_result(aio);
		if (rv == NNG_ETIMEDOUT)
			continue;
		if (rv == NNG_ECLOSED && s->stopping)
			break;
		if (rv == NNG_ECLOSED) {
			/* Only our own close ends a worker: a context closed
			 * under it otherwise is replaced, so the daemon never
			 * silently loses its workers (nng 1.5.2 has reported a
			 * peer's hang-up as NNG_ECLOSED elsewhere, ops/nng/). */
			struct timespec pause = {0, 100 * 1000 * 1000};
			log_error("worker.ctx_closed", "reopening the nng context");
			nng_ctx_close(ctx);
			nanosleep(&pause, NULL);
			if (nng_ctx_open(&ctx, s->sock) != 0) {
				log_error("worker.failed", "cannot reopen the nng context");
				nng_aio_free(aio);
				return NULL;
			}
			continue;
		}
		if (rv != 0) {
			log_warn("worker.recv", "error=%s", nng_strerror(rv));
			continue;
		}
		req = nng_aio_get_msg(aio);
		rep = handle(s, req);
		nng_msg_free(req);
		if (rep == NULL) {
			log_error("worker.reply", "cannot build a reply (out of memory)");
			continue;
		}
		nng_aio_set_msg(aio, rep);
		nng_aio_set_timeout(aio, 10000);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0) {
			nng_msg_free(rep);
			log_debug("worker.send", "error=%s", nng_strerror(rv));
		}
	}
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	return NULL;
}

/* ------------------------------------------------------------ listeners */

int
server_read_text_file(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n;

	*out = NULL;
	if (f == NULL)
		return qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	if ((buf = calloc(1, 65537)) == NULL) {
		fclose(f);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	n = fread(buf, 1, 65536, f);
	fclose(f);
	if (n == 0 || n == 65536) {
		free(buf);
		return qs_fail(QS_ERR_IO, "%s: empty or larger than 64 KiB", path);
	}
	*out = buf;
	return 0;
}

static int
tls_config(const struct config *c, nng_tls_config **out)
{
	nng_tls_config *tc = NULL;
	char *cert = NULL, *key = NULL;
	int rv, r;

	*out = NULL;
	if ((r = server_read_text_file(c->tls_cert, &cert)) != 0 ||
	    (r = server_read_text_file(c->tls_key, &key)) != 0)
		goto out;
	if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_SERVER)) != 0 ||
	    (rv = nng_tls_config_own_cert(tc, cert, key, NULL)) != 0) {
		r = qs_fail(QS_ERR_INVALID, "TLS certificate/key (%s, %s): %s", c->tls_cert,
		            c->tls_key, nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_ca_file(tc, c->tls_client_ca)) != 0) {
		r = qs_fail(QS_ERR_INVALID, "TLS client CA %s: %s", c->tls_client_ca,
		            nng_strerror(rv));
		goto out;
	}
	/* Mutual TLS: a client without a certificate from client_ca is
	 * refused in the handshake. */
	if ((rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
		r = qs_fail(QS_ERR_INTERNAL, "TLS auth mode: %s", nng_strerror(rv));
		goto out;
	}
	*out = tc;
	tc = NULL;
	r = 0;
out:
	if (key != NULL) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	if (tc != NULL)
		nng_tls_config_free(tc);
	return r;
}

static int
start_listener(struct server *s, const char *url, nng_tls_config *tc)
{
	nng_listener l;
	int rv;

	if ((rv = nng_listener_create(&l, s->sock, url)) != 0)
		return qs_fail(QS_ERR_INVALID, "listen %s: %s", url, nng_strerror(rv));
	if (strncmp(url, "ipc://", 6) == 0)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, (int)s->cfg->ipc_mode);
	else if (strncmp(url, "tls+tcp://", 10) == 0)
		rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tc);
	if (rv == 0)
		rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, QS_MAX_FRAME);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv != 0) {
		nng_listener_close(l);
		return qs_fail(QS_ERR_IO, "listen %s: %s", url, nng_strerror(rv));
	}
	s->listeners[s->nlisteners++] = l;
	log_info("listen", "url=%s", url);
	return 0;
}

/*
 * Close connections that hold resources without using them: not
 * authenticated within QS_AUTH_TIMEOUT_S (idle sockets, slow-loris partial
 * frames: each may pin a receive buffer of up to QS_MAX_FRAME), or without a
 * complete call for QS_IDLE_TIMEOUT_S. nng frees the pipe; the REM_POST
 * callback drops our state.
 */
static void *
reaper_main(void *arg)
{
	struct server *s = arg;
	struct pipe_table *pt = s->pipes;

	while (!s->stopping) {
		nng_pipe doomed[256];
		int ended[256];
		size_t n = 0;
		int64_t now = now_ms();
		struct timespec ts = {0, 250 * 1000 * 1000};

		pthread_mutex_lock(&pt->mu);
		for (size_t b = 0; b < PIPE_BUCKETS && n < 256; b++)
			for (struct pipe_state *p = pt->tab[b]; p != NULL && n < 256; p = p->next)
				if ((p->close_at_ms != 0 && now >= p->close_at_ms) ||
				    (!p->authed &&
				     now - p->created_ms > QS_AUTH_TIMEOUT_S * 1000) ||
				    now - p->active_ms > QS_IDLE_TIMEOUT_S * 1000) {
					ended[n] = p->close_at_ms != 0;
					doomed[n++] = p->pipe;
				}
		pthread_mutex_unlock(&pt->mu);
		for (size_t i = 0; i < n; i++) {
			if (ended[i])
				log_info("conn.closed", "pipe=%u reason=\"session ended\"",
				         (unsigned)nng_pipe_id(doomed[i]));
			else
				log_debug("conn.reaped", "pipe=%u",
				          (unsigned)nng_pipe_id(doomed[i]));
			nng_pipe_close(doomed[i]);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int
server_start(struct server *s)
{
	nng_tls_config *tc = NULL;
	int rv, r;

	if ((s->pipes = calloc(1, sizeof(*s->pipes))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&s->pipes->mu, NULL);
	{
		/* Each connection is a descriptor: stay clear of the limit so
		 * the audit log and the store can always open their files. */
		struct rlimit rl;
		s->pipes->max = QS_MAX_PIPES;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur < QS_MAX_PIPES + QS_FD_RESERVE)
			s->pipes->max = rl.rlim_cur > 2 * QS_FD_RESERVE
			                        ? rl.rlim_cur - QS_FD_RESERVE
			                        : QS_FD_RESERVE / 2;
		log_info("conn.limit", "max_connections=%zu", s->pipes->max);
	}
	if ((r = ratelimit_new(&s->rl)) != 0)
		return r;
	if ((rv = nng_rep0_open(&s->sock)) != 0)
		return qs_fail(QS_ERR_INTERNAL, "nng_rep0_open: %s", nng_strerror(rv));
	s->sock_open = 1;
	if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, QS_MAX_FRAME)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_event, s)) != 0 ||
	    (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_event, s)) != 0)
		return qs_fail(QS_ERR_INTERNAL, "nng socket setup: %s", nng_strerror(rv));
	if (s->cfg->tls_cert != NULL && (r = tls_config(s->cfg, &tc)) != 0)
		return r;
	for (size_t i = 0; i < s->cfg->nlisten; i++)
		if ((r = start_listener(s, s->cfg->listen[i], tc)) != 0)
			break;
	if (tc != NULL)
		nng_tls_config_free(tc); /* listeners hold their own reference */
	if (r != 0)
		return r;
	if (pthread_create(&s->pipes->reaper, NULL, reaper_main, s) != 0)
		return qs_fail(QS_ERR_INTERNAL, "cannot start the connection reaper");
	s->pipes->reaper_started = 1;
	if ((s->workers = calloc(s->cfg->workers, sizeof(*s->workers))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (unsigned i = 0; i < s->cfg->workers; i++) {
		if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0)
			return qs_fail(QS_ERR_INTERNAL, "cannot start worker thread");
		s->nworkers++;
	}
	return probe_start(s, &s->probe);
}

void
server_stop(struct server *s)
{
	probe_stop(s->probe);
	s->probe = NULL;
	s->stopping = 1;
	for (size_t i = 0; i < s->nlisteners; i++)
		nng_listener_close(s->listeners[i]);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
	if (s->pipes != NULL && s->pipes->reaper_started) {
		pthread_join(s->pipes->reaper, NULL);
		s->pipes->reaper_started = 0;
	}
	if (s->sock_open)
		nng_close(s->sock);
	s->sock_open = 0;
	if (s->pipes != NULL) {
		for (size_t i = 0; i < PIPE_BUCKETS; i++)
			for (struct pipe_state *p = s->pipes->tab[i], *n; p != NULL; p = n) {
				n = p->next;
				EVP_PKEY_free(p->pk);
				free(p);
			}
		pthread_mutex_destroy(&s->pipes->mu);
		free(s->pipes);
		s->pipes = NULL;
	}
	ratelimit_free(s->rl);
	s->rl = NULL;
}
