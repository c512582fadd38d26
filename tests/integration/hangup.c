/*
 * hangup - connections that hang up during negotiation must never stop a
 * listener: thousands of them, at random moments, while valid clients keep
 * signing over fresh connections from start to finish.
 *
 * usage: hangup HOME IPC_URL [TLS_URL PKI_DIR]
 *   HOME     a demo QSIGN_HOME (demo/ci.key; ci may sign with ci-sign)
 *   IPC_URL  the daemon's ipc:// URL
 *   TLS_URL  tls+tcp://127.0.0.1:PORT, with PKI_DIR holding ca.crt,
 *            client.crt and client.key (a client certificate from the
 *            daemon's client_ca)
 * Environment: QS_HANGUP_EACH (default 1000): connections of each kind per
 * transport; QS_HANGUP_SEED replays one order.
 *
 * Then the client side of the same nng defect: a dialer whose peer hangs
 * up during negotiation must dial again, not give up (nng 1.5.2 stops on
 * NNG_ECLOSED there too).
 *
 * Exit 0 only if every valid call was answered, every misbehaving
 * connection could connect (a listener that stops accepting fills its
 * backlog and refuses), and the dialer reached its server.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "hangup_attack.h"
#include "qsclient.h"

#define ATTACKERS 2
#define VALID_TIMEOUT_MS 5000

static const char *home;

static uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ valid clients */

struct valid {
	struct qsc_options o;
	atomic_int stop;
	long ok, fail, fresh;
	uint64_t max_us;
	pthread_t th;
};

/* One signature, on a fresh connection (the listener must accept it) or on
 * the connection *keep holds. */
static int
valid_one(struct valid *v, int fresh, qsc_client **keep)
{
	Qsign__V1__SignResponse *r = NULL;
	qsc_client *c = fresh ? NULL : *keep;
	uint8_t dg[32];
	uint64_t t0 = mono_us();
	int rc = 0;

	for (size_t i = 0; i < sizeof(dg); i++)
		dg[i] = (uint8_t)random();
	if (c == NULL && (rc = qsc_open(&v->o, &c)) == 0 && fresh)
		v->fresh++;
	if (rc == 0)
		rc = qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, sizeof(dg),
		              &r);
	qsc_free(r);
	if (rc != 0)
		fprintf(stderr, "FAIL: valid call (%s connection) after %.0f ms: %s\n",
		        fresh ? "fresh" : "kept", (mono_us() - t0) / 1000.0, qs_errdetail());
	if (mono_us() - t0 > v->max_us)
		v->max_us = mono_us() - t0;
	if (fresh || rc != 0) {
		qsc_close(c);
		c = NULL;
	}
	if (!fresh)
		*keep = c;
	return rc;
}

static void *
valid_main(void *arg)
{
	struct valid *v = arg;
	qsc_client *keep = NULL;

	for (long i = 0; !atomic_load(&v->stop); i++) {
		if (valid_one(v, (i & 1) == 0, &keep) == 0)
			v->ok++;
		else
			v->fail++;
	}
	qsc_close(keep);
	return NULL;
}

/* ------------------------------------------------------------ attackers */

struct attacker {
	const struct ha_target *t;
	const unsigned char *plan;
	size_t from, to;
	long done[HA_NKINDS], errors;
	pthread_t th;
};

static void *
attacker_main(void *arg)
{
	struct attacker *a = arg;
	char what[160];

	for (size_t i = a->from; i < a->to; i++) {
		enum ha_kind k = (enum ha_kind)a->plan[i];
		if (ha_run(a->t, k, what, sizeof(what)) != 0) {
			if (a->errors++ < 5)
				fprintf(stderr, "FAIL: [%s] %s\n", ha_name(k), what);
		} else {
			a->done[k]++;
		}
	}
	return NULL;
}

/* One transport: the valid clients run before, during and after the
 * attackers. Returns the number of failures. */
static int
run_transport(const char *label, const struct ha_target *t, const struct qsc_options *o, long each)
{
	struct valid v = {.o = *o};
	struct attacker att[ATTACKERS];
	unsigned char *plan;
	size_t n = 0, kinds = 0;
	long done[HA_NKINDS] = {0}, errors = 0;
	uint64_t t0;
	int failures = 0;

	for (int k = 0; k < HA_NKINDS; k++)
		kinds += ha_applies(t, (enum ha_kind)k) ? 1 : 0;
	if ((plan = malloc(kinds * (size_t)each)) == NULL)
		return 1;
	for (int k = 0; k < HA_NKINDS; k++)
		for (long i = 0; ha_applies(t, (enum ha_kind)k) && i < each; i++)
			plan[n++] = (unsigned char)k;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)random() % (i + 1);
		unsigned char x = plan[i];
		plan[i] = plan[j];
		plan[j] = x;
	}

	if (pthread_create(&v.th, NULL, valid_main, &v) != 0)
		return 1;
	usleep(200 * 1000); /* valid calls before the first attack */
	t0 = mono_us();
	for (int i = 0; i < ATTACKERS; i++) {
		att[i] = (struct attacker){.t = t, .plan = plan};
		att[i].from = n * (size_t)i / ATTACKERS;
		att[i].to = n * (size_t)(i + 1) / ATTACKERS;
		pthread_create(&att[i].th, NULL, attacker_main, &att[i]);
	}
	for (int i = 0; i < ATTACKERS; i++) {
		pthread_join(att[i].th, NULL);
		for (int k = 0; k < HA_NKINDS; k++)
			done[k] += att[i].done[k];
		errors += att[i].errors;
	}
	double secs = (double)(mono_us() - t0) / 1e6;
	usleep(500 * 1000); /* valid calls after the last attack */
	atomic_store(&v.stop, 1);
	pthread_join(v.th, NULL);

	printf("%s: %zu misbehaving connections in %.1f s\n", label, n, secs);
	for (int k = 0; k < HA_NKINDS; k++)
		if (ha_applies(t, (enum ha_kind)k))
			printf("  %-36s %6ld\n", ha_name((enum ha_kind)k), done[k]);
	printf("  could not connect                    %6ld\n", errors);
	printf("  valid calls: %ld answered (%ld on fresh connections), %ld failed, slowest "
	       "%.1f ms\n",
	       v.ok, v.fresh, v.fail, v.max_us / 1000.0);
	if (errors > 0) {
		fprintf(stderr,
		        "FAIL: %s: %ld misbehaving connections could not even connect "
		        "(is the listener still accepting?)\n",
		        label, errors);
		failures++;
	}
	if (v.fail > 0 || v.fresh < 4) {
		fprintf(stderr, "FAIL: %s: %ld valid calls failed, %ld fresh connections\n", label,
		        v.fail, v.fresh);
		failures++;
	}
	free(plan);
	return failures;
}

/* ------------------------------------------------------------ the dialer */

struct trap {
	int fd, hangups;
};

/* A server that accepts and hangs up during the SP header exchange. */
static void *
trap_main(void *arg)
{
	struct trap *tr = arg;
	uint8_t hdr[8] = {0, 'S', 'P', 0, 0x00, 0x31, 0, 0}; /* REP0 */

	for (int i = 0; i < tr->hangups; i++) {
		int c = accept(tr->fd, NULL, NULL);
		if (c < 0)
			break;
		if (i & 1) /* half of the header, then hang up */
			(void)send(c, hdr, 4, MSG_NOSIGNAL);
		close(c);
	}
	return NULL;
}

static int
dialer_redials(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct trap tr = {.hangups = 20};
	char url[200];
	nng_socket req, rep;
	nng_listener l;
	nng_msg *m = NULL;
	pthread_t th;
	int rv, failed = 1;

	if (strlen(dir) + sizeof("/redial.sock") > sizeof(sa.sun_path)) {
		fprintf(stderr, "FAIL: dialer: %s: path too long for a unix socket\n", dir);
		return 1;
	}
	memcpy(sa.sun_path, dir, strlen(dir));
	memcpy(sa.sun_path + strlen(dir), "/redial.sock", sizeof("/redial.sock"));
	snprintf(url, sizeof(url), "ipc://%s", sa.sun_path);
	unlink(sa.sun_path);
	if ((tr.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(tr.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(tr.fd, 16) != 0) {
		fprintf(stderr, "FAIL: dialer: trap server: %s\n", strerror(errno));
		return 1;
	}
	pthread_create(&th, NULL, trap_main, &tr);
	if ((rv = nng_req0_open(&req)) != 0 ||
	    (rv = nng_socket_set_ms(req, NNG_OPT_RECONNMINT, 20)) != 0 ||
	    (rv = nng_socket_set_ms(req, NNG_OPT_RECONNMAXT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 5000)) != 0 ||
	    (rv = nng_dial(req, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		fprintf(stderr, "FAIL: dialer: %s\n", nng_strerror(rv));
		return 1;
	}
	pthread_join(th, NULL);
	/* The trap is gone; the real server takes its place. */
	close(tr.fd);
	unlink(sa.sun_path);
	if ((rv = nng_rep0_open(&rep)) != 0 || (rv = nng_listen(rep, url, &l, 0)) != 0 ||
	    (rv = nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 5000)) != 0) {
		fprintf(stderr, "FAIL: dialer: server: %s\n", nng_strerror(rv));
		return 1;
	}
	if ((rv = nng_send(req, "ping", 5, 0)) == 0 && (rv = nng_recvmsg(rep, &m, 0)) == 0 &&
	    (rv = nng_sendmsg(rep, m, 0)) == 0 && (rv = nng_recvmsg(req, &m, 0)) == 0) {
		nng_msg_free(m);
		failed = 0;
		printf("dialer: dialled again after %d hang-ups during negotiation, and reached "
		       "the server\n",
		       tr.hangups);
	} else {
		fprintf(stderr,
		        "FAIL: dialer gave up after a peer hung up during negotiation: "
		        "%s\n",
		        nng_strerror(rv));
	}
	nng_close(req);
	nng_close(rep);
	unlink(sa.sun_path);
	return failed;
}

int
main(int argc, char **argv)
{
	char key[512], ca[512], cert[512], ckey[512];
	struct qsc_options o = {0};
	struct ha_target t = {0};
	long each = 1000;
	unsigned seed = (unsigned)time(NULL);
	int failures = 0;

	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: hangup HOME IPC_URL [TLS_URL PKI_DIR]\n");
		return 2;
	}
	home = argv[1];
	if (getenv("QS_HANGUP_EACH"))
		each = atol(getenv("QS_HANGUP_EACH"));
	if (getenv("QS_HANGUP_SEED"))
		seed = (unsigned)strtoul(getenv("QS_HANGUP_SEED"), NULL, 10);
	srandom(seed);
	printf("hangup: %ld of each kind per transport, seed %u (QS_HANGUP_SEED reproduces "
	       "it)\n",
	       each, seed);

	snprintf(key, sizeof(key), "%s/demo/ci.key", home);
	o.principal = "ci";
	o.identity = key;
	o.timeout_ms = VALID_TIMEOUT_MS;

	o.url = argv[2];
	t.ipc_path = argv[2] + strlen("ipc://");
	failures += run_transport("ipc", &t, &o, each);

	if (argc == 5) {
		const char *port = strrchr(argv[3], ':');
		snprintf(ca, sizeof(ca), "%s/ca.crt", argv[4]);
		snprintf(cert, sizeof(cert), "%s/client.crt", argv[4]);
		snprintf(ckey, sizeof(ckey), "%s/client.key", argv[4]);
		t = (struct ha_target){.port = port ? atoi(port + 1) : 0};
		t.with_cert = ha_tls_ctx(cert, ckey);
		t.no_cert = ha_tls_ctx(NULL, NULL);
		if (t.port <= 0 || t.with_cert == NULL || t.no_cert == NULL) {
			fprintf(stderr, "hangup: bad TLS_URL or PKI_DIR\n");
			return 2;
		}
		o.url = argv[3];
		o.tls_ca = ca;
		o.tls_cert = cert;
		o.tls_key = ckey;
		o.tls_server_name = "localhost";
		failures += run_transport("tls+tcp", &t, &o, each);
		SSL_CTX_free(t.with_cert);
		SSL_CTX_free(t.no_cert);
	}

	{
		char dir[512];
		snprintf(dir, sizeof(dir), "%s", home);
		failures += dialer_redials(dir);
	}
	nng_fini();
	if (failures) {
		fprintf(stderr, "hangup: %d failure(s)\n", failures);
		return 1;
	}
	printf("hangup: PASS\n");
	return 0;
}
