/*
 * crashload - a mixed load for the kill -9 test (crashes.sh): online signs
 * and batches (ci), quorum requests submitted (ci), approvals (admin1 then
 * admin2), each in its own thread with its own connection, until killed.
 *
 * usage: crashload URL HOME ACKS
 *   ACKS  file every acknowledged result is appended to, one line each,
 *         written only after the daemon said OK:
 *           sig <hex digest>                  an online signature returned
 *           req <id>                          a request accepted
 *           vote <id> <approver> <state>      a vote accepted; the state the
 *                                             reply reported
 *         Requests acknowledged by earlier runs (read from ACKS at start)
 *         are approved too, so votes span restarts.
 *
 * Failures are expected once the daemon is killed; they are counted, not
 * recorded. The program runs until it is killed (or for 30 s at most).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "qs_err.h"
#include "qsclient.h"
#include "wire.h"

static const char *url, *home;
static int ack_fd;
static volatile int stopping;

#define MAX_IDS 100000
static pthread_mutex_t ids_mu = PTHREAD_MUTEX_INITIALIZER;
static char *ids[MAX_IDS];
static int votes_done[MAX_IDS]; /* bit 0 admin1, bit 1 admin2 */
static size_t nids, next_vote;

static void ack(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ack(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line on an O_APPEND descriptor: a line is either
	 * whole in the file or not there at all. */
	if (n <= 0 || (size_t)n >= sizeof(line) || write(ack_fd, line, (size_t)n) != n) {
		fprintf(stderr, "crashload: cannot record an acknowledgement: %s\n",
		        strerror(errno));
		_exit(2);
	}
}

static qsc_client *
client(const char *name)
{
	char id[512];
	struct qsc_options o = {0};
	qsc_client *c = NULL;

	snprintf(id, sizeof(id), "%s/demo/%s.key", home, name);
	o.url = url;
	o.principal = name;
	o.identity = id;
	o.timeout_ms = 3000;
	for (int i = 0; i < 100 && !stopping; i++) {
		if (qsc_open(&o, &c) == 0)
			return c;
		usleep(20 * 1000);
	}
	fprintf(stderr, "crashload: cannot connect as %s: %s\n", name, qs_errdetail());
	exit(2);
}

static char *
hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return out;
}

static long n_sig, n_req, n_vote, n_err;

static void *
signer_main(void *arg)
{
	qsc_client *c = client("ci");
	char hx[65];

	(void)arg;
	while (!stopping) {
		uint8_t dg[8][32];
		RAND_bytes(&dg[0][0], sizeof(dg));
		if (random() % 4 != 0) {
			Qsign__V1__SignResponse *r = NULL;
			if (qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg[0], 32,
			             &r) == 0) {
				ack("sig %s\n", hex(dg[0], 32, hx));
				__atomic_add_fetch(&n_sig, 1, __ATOMIC_RELAXED);
				qsc_free(r);
			} else {
				__atomic_add_fetch(&n_err, 1, __ATOMIC_RELAXED);
				usleep(10 * 1000);
			}
		} else {
			Qsign__V1__SignBatchResponse *r = NULL;
			ProtobufCBinaryData p[8];
			for (int i = 0; i < 8; i++)
				p[i] = (ProtobufCBinaryData){32, dg[i]};
			if (qsc_sign_batch(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, p,
			                   8, &r) == 0) {
				for (size_t i = 0; i < r->n_results; i++)
					if (r->results[i]->status == 0) {
						ack("sig %s\n", hex(dg[i], 32, hx));
						__atomic_add_fetch(&n_sig, 1, __ATOMIC_RELAXED);
					}
				qsc_free(r);
			} else {
				__atomic_add_fetch(&n_err, 1, __ATOMIC_RELAXED);
				usleep(10 * 1000);
			}
		}
	}
	qsc_close(c);
	return NULL;
}

static void *
submitter_main(void *arg)
{
	qsc_client *c = client("ci");

	(void)arg;
	while (!stopping) {
		Qsign__V1__RequestView *v = NULL;
		uint8_t payload[64];
		RAND_bytes(payload, sizeof(payload));
		if (qsc_request_submit(c, "release", "blob", payload, sizeof(payload), "crash test",
		                       NULL, &v) == 0) {
			ack("req %s\n", v->id);
			__atomic_add_fetch(&n_req, 1, __ATOMIC_RELAXED);
			pthread_mutex_lock(&ids_mu);
			if (nids < MAX_IDS)
				ids[nids++] = strdup(v->id);
			pthread_mutex_unlock(&ids_mu);
			qsc_free(v);
		} else {
			__atomic_add_fetch(&n_err, 1, __ATOMIC_RELAXED);
		}
		usleep(20 * 1000);
	}
	qsc_close(c);
	return NULL;
}

static void *
approver_main(void *arg)
{
	qsc_client *a[2] = {client("admin1"), client("admin2")};
	const char *names[2] = {"admin1", "admin2"};

	(void)arg;
	while (!stopping) {
		char *id = NULL;
		size_t k = 0;
		int who = 0;

		/* The oldest request not yet approved by both. */
		pthread_mutex_lock(&ids_mu);
		while (next_vote < nids && votes_done[next_vote] == 3)
			next_vote++;
		if (next_vote < nids) {
			k = next_vote;
			id = strdup(ids[k]);
			who = votes_done[k] & 1 ? 1 : 0;
		}
		pthread_mutex_unlock(&ids_mu);
		if (id == NULL) {
			usleep(10 * 1000);
			continue;
		}
		Qsign__V1__RequestView *v = NULL;
		if (qsc_request_vote(a[who], id, 1, NULL, NULL, &v) == 0) {
			ack("vote %s %s %s\n", id, names[who], qsc_request_state_name(v->state));
			__atomic_add_fetch(&n_vote, 1, __ATOMIC_RELAXED);
			pthread_mutex_lock(&ids_mu);
			votes_done[k] |= 1 << who;
			pthread_mutex_unlock(&ids_mu);
			qsc_free(v);
		} else {
			int st = qsc_last_status(a[who]);
			/* Closed (a vote whose reply was lost in a crash completed
			 * it) or already voted: nothing more to do on this one. */
			if (st == QS_STATUS_FAILED_PRECONDITION || st == QS_STATUS_ALREADY_EXISTS) {
				pthread_mutex_lock(&ids_mu);
				votes_done[k] = 3;
				pthread_mutex_unlock(&ids_mu);
			}
			__atomic_add_fetch(&n_err, 1, __ATOMIC_RELAXED);
			usleep(10 * 1000);
		}
		free(id);
	}
	qsc_close(a[0]);
	qsc_close(a[1]);
	return NULL;
}

/* Requests and votes acknowledged by earlier runs. */
static void
read_acks(const char *path)
{
	FILE *f = fopen(path, "r");
	char kind[8], id[80], who[32], state[32];
	char line[256];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%7s %79s %31s %31s", kind, id, who, state) < 2)
			continue;
		if (strcmp(kind, "req") == 0 && nids < MAX_IDS) {
			ids[nids++] = strdup(id);
		} else if (strcmp(kind, "vote") == 0) {
			for (size_t i = 0; i < nids; i++)
				if (strcmp(ids[i], id) == 0)
					votes_done[i] |= strcmp(who, "admin1") == 0 ? 1 : 2;
		}
	}
	fclose(f);
}

int
main(int argc, char **argv)
{
	pthread_t th[3];
	void *(*fn[3])(void *) = {signer_main, submitter_main, approver_main};

	if (argc != 4) {
		fprintf(stderr, "usage: crashload URL HOME ACKS\n");
		return 2;
	}
	url = argv[1];
	home = argv[2];
	srandom((unsigned)getpid());
	read_acks(argv[3]);
	if ((ack_fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "crashload: %s: %s\n", argv[3], strerror(errno));
		return 2;
	}
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, fn[i], NULL);
	/* Killed by the test long before; the bound is for a test gone wrong. */
	for (int i = 0; i < 300 && !stopping; i++)
		usleep(100 * 1000);
	stopping = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr,
	        "crashload: %ld signatures, %ld requests, %ld votes acknowledged, %ld errors\n",
	        n_sig, n_req, n_vote, n_err);
	return 0;
}
