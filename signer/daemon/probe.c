/*
 * probe.c - see probe.h.
 */
#include "probe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>

#include "config.h"
#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "wire.h"

#define PROBE_INTERVAL_MS 1000 /* how often each listener is dialled */
#define PROBE_TIMEOUT_MS 2000  /* one probe: connect, call, reply */
#define PROBE_FAILS_UNREADY 2  /* failures in a row before "not ready" */

struct target {
	const char *url; /* as configured (the metrics label) */
	char dial[300];  /* what the probe dials (a wildcard host -> loopback) */
	int tls;
	int fails; /* in a row */
	unsigned long long failures_total;
	char error[160]; /* of the last failure */
};

struct probe {
	struct server *srv;
	nng_tls_config *tls; /* client side, for tls+tcp:// listeners */
	pthread_mutex_t mu;  /* the targets' state */
	pthread_cond_t cv;   /* wakes the thread to stop */
	int stopping, started;
	pthread_t th;
	size_t n;
	struct target t[QS_MAX_LISTEN];
};

/* The URL the probe dials for listener i: the same, except that a wildcard
 * host is replaced by loopback and a port 0 by the port actually bound. */
static int
dial_url(struct server *s, size_t i, struct target *t)
{
	const char *url = s->cfg->listen[i];
	nng_url *u = NULL;
	const char *host;
	int port = 0, rv;

	t->url = url;
	t->tls = strncmp(url, "tls+tcp://", 10) == 0;
	if (strncmp(url, "ipc://", 6) == 0 || !t->tls) {
		snprintf(t->dial, sizeof(t->dial), "%s", url);
		return 0;
	}
	if ((rv = nng_url_parse(&u, url)) != 0)
		return qs_fail(QS_ERR_INVALID, "probe: %s: %s", url, nng_strerror(rv));
	host = u->u_hostname;
	if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	if (nng_listener_get_int(s->listeners[i], NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		port = atoi(u->u_port);
	snprintf(t->dial, sizeof(t->dial),
	         strchr(host, ':') ? "tls+tcp://[%s]:%d" : "tls+tcp://%s:%d", host, port);
	nng_url_free(u);
	return 0;
}

static int
tls_client(const struct config *c, nng_tls_config **out)
{
	const char *cp = c->tls_probe_cert ? c->tls_probe_cert : c->tls_cert;
	const char *kp = c->tls_probe_key ? c->tls_probe_key : c->tls_key;
	nng_tls_config *tc = NULL;
	char *cert = NULL, *key = NULL;
	int rv, r;

	*out = NULL;
	if ((r = server_read_text_file(cp, &cert)) != 0 ||
	    (r = server_read_text_file(kp, &key)) != 0)
		goto out;
	/* The probe checks that the listener answers, not who it is: it dials
	 * its own address, so the server's certificate is not verified. */
	if ((rv = nng_tls_config_alloc(&tc, NNG_TLS_MODE_CLIENT)) != 0 ||
	    (rv = nng_tls_config_auth_mode(tc, NNG_TLS_AUTH_MODE_NONE)) != 0 ||
	    (rv = nng_tls_config_own_cert(tc, cert, key, NULL)) != 0) {
		r = qs_fail(QS_ERR_INVALID, "tls probe certificate/key (%s, %s): %s", cp, kp,
		            nng_strerror(rv));
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

/* One probe: a fresh connection, Auth/Challenge, an OK reply. 0 or an nng
 * error / -1 with err filled. */
static int
probe_one(struct probe *p, const struct target *t, char *err, size_t cap)
{
	Qsign__V1__Call call = QSIGN__V1__CALL__INIT;
	Qsign__V1__Reply *reply = NULL;
	nng_socket sock;
	nng_dialer d;
	uint8_t *frame = NULL;
	size_t flen = 0;
	nng_msg *m = NULL;
	int rv, ok = -1;

	err[0] = '\0';
	if ((rv = nng_req0_open(&sock)) != 0) {
		snprintf(err, cap, "socket: %s", nng_strerror(rv));
		return -1;
	}
	call.method = (char *)QS_M_CHALLENGE;
	if ((rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, PROBE_TIMEOUT_MS)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, PROBE_TIMEOUT_MS)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_dialer_create(&d, sock, t->dial)) != 0 ||
	    (t->tls && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, p->tls)) != 0) ||
	    (rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(err, cap, "dial: %s", nng_strerror(rv));
		goto out;
	}
	if (qs_wire_pack(&call.base, &frame, &flen) != 0) {
		snprintf(err, cap, "out of memory");
		goto out;
	}
	/* The request waits in the socket until the connection is up: a
	 * listener that does not accept leaves it unanswered. */
	if ((rv = nng_send(sock, frame, flen, 0)) != 0 || (rv = nng_recvmsg(sock, &m, 0)) != 0) {
		snprintf(err, cap, "%s",
		         rv == NNG_ETIMEDOUT ? "no answer within 2 s" : nng_strerror(rv));
		goto out;
	}
	if (qs_wire_unpack(&qsign__v1__reply__descriptor, nng_msg_body(m), nng_msg_len(m),
	                   QS_MAX_FRAME, (ProtobufCMessage **)&reply) != 0) {
		snprintf(err, cap, "malformed reply");
		goto out;
	}
	if (reply->status != QSIGN__V1__STATUS__OK) {
		snprintf(err, cap, "status %d: %.80s", (int)reply->status, reply->message);
		goto out;
	}
	ok = 0;
out:
	if (reply != NULL)
		protobuf_c_message_free_unpacked(&reply->base, NULL);
	nng_msg_free(m);
	free(frame);
	nng_close(sock);
	return ok;
}

static void
probe_round(struct probe *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct target *t = &p->t[i];
		char err[160];
		int bad = probe_one(p, t, err, sizeof(err)) != 0;

		pthread_mutex_lock(&p->mu);
		if (bad) {
			t->failures_total++;
			snprintf(t->error, sizeof(t->error), "%s", err);
			if (++t->fails == PROBE_FAILS_UNREADY)
				log_error("listener.unready",
				          "url=%s error=\"%s\" (the listener does not answer a new "
				          "connection)",
				          t->url, err);
		} else {
			if (t->fails >= PROBE_FAILS_UNREADY)
				log_info("listener.ready", "url=%s", t->url);
			t->fails = 0;
		}
		pthread_mutex_unlock(&p->mu);
	}
}

static void *
probe_main(void *arg)
{
	struct probe *p = arg;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += PROBE_INTERVAL_MS / 1000;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->mu);
		probe_round(p);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
probe_start(struct server *s, struct probe **out)
{
	struct probe *p;
	int r;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	p->srv = s;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (size_t i = 0; i < s->nlisteners; i++) {
		if ((r = dial_url(s, i, &p->t[i])) != 0)
			goto fail;
		p->n++;
		if (p->t[i].tls && p->tls == NULL && (r = tls_client(s->cfg, &p->tls)) != 0)
			goto fail;
	}
	/* The first round before "ready": a listener that cannot be reached
	 * at start is reported from the first /healthz on. */
	for (int k = 0; k < PROBE_FAILS_UNREADY; k++) {
		int all_up = 1;
		probe_round(p);
		for (size_t i = 0; i < p->n; i++)
			all_up &= p->t[i].fails == 0;
		if (all_up)
			break;
	}
	if (pthread_create(&p->th, NULL, probe_main, p) != 0) {
		r = qs_fail(QS_ERR_INTERNAL, "cannot start the listener probe");
		goto fail;
	}
	p->started = 1;
	*out = p;
	return 0;
fail:
	probe_stop(p);
	return r;
}

void
probe_stop(struct probe *p)
{
	if (p == NULL)
		return;
	if (p->started) {
		pthread_mutex_lock(&p->mu);
		p->stopping = 1;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->th, NULL);
	}
	if (p->tls != NULL)
		nng_tls_config_free(p->tls);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int
probe_healthy(struct probe *p, char *why, size_t cap)
{
	int ok = 1;

	if (p == NULL)
		return 1;
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; ok && i < p->n; i++)
		if (p->t[i].fails >= PROBE_FAILS_UNREADY) {
			snprintf(why, cap, "listener %s does not accept: %s", p->t[i].url,
			         p->t[i].error);
			ok = 0;
		}
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void
probe_write_metrics(struct probe *p, FILE *f)
{
	if (p == NULL)
		return;
	fprintf(f, "# HELP qsign_listener_up 1 when the listener answered one of its last "
	           "two self-probes (a new connection and a call).\n"
	           "# TYPE qsign_listener_up gauge\n");
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->n; i++)
		fprintf(f, "qsign_listener_up{url=\"%s\"} %d\n", p->t[i].url,
		        p->t[i].fails < PROBE_FAILS_UNREADY);
	fprintf(f, "# HELP qsign_listener_probe_failures_total Self-probes of a listener "
	           "that failed.\n"
	           "# TYPE qsign_listener_probe_failures_total counter\n");
	for (size_t i = 0; i < p->n; i++)
		fprintf(f, "qsign_listener_probe_failures_total{url=\"%s\"} %llu\n", p->t[i].url,
		        p->t[i].failures_total);
	pthread_mutex_unlock(&p->mu);
}
