/*
 * flood - one principal makes many refused calls and logins while another
 * keeps signing (tests/integration/flood.sh counts what the audit log
 * gained).
 *
 * usage: flood URL HOME REFUSALS LOGINS
 *   As "ci": REFUSALS Sign calls on the quorum role "release" (each refused,
 *   PERMISSION_DENIED or FAILED_PRECONDITION) on one connection, and LOGINS
 *   fresh connections, each authenticated once. Every 1000 refused calls
 *   "registrar" signs a digest on role ci-sign, which must succeed.
 *   Prints "refused N", "logins N", "signed N" and the elapsed seconds.
 *
 * usage: flood URL HOME --conns N SOCKET HOLD_S DAEMON_PID
 *   A descriptor flood: "registrar" connects (and signs once), then N raw
 *   connections are opened to the daemon's unix SOCKET and held HOLD_S
 *   seconds, never sending a byte, while registrar signs every 20 ms on
 *   its connection. Prints "conns opened X of N", the most descriptors
 *   DAEMON_PID held ("daemon fds peak F, limit L"), "flood signed S failed
 *   F"; exits 1 if a signature failed or none was made.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qs_err.h"
#include "qsclient.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
open_as(const char *url, const char *home, const char *who, qsc_client **c)
{
	struct qsc_options o = {0};
	char id[512];

	snprintf(id, sizeof(id), "%s/demo/%s.key", home, who);
	o.url = url;
	o.principal = who;
	o.identity = id;
	o.timeout_ms = 15000;
	if (qsc_open(&o, c) != 0) {
		fprintf(stderr, "flood: open as %s: %s\n", who, qs_errdetail());
		return 1;
	}
	return 0;
}

/* Descriptors process pid holds now (-1 if unknown). */
static long
fd_count(long pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Its soft RLIMIT_NOFILE, from /proc (-1 if unknown). */
static long
fd_limit(long pid)
{
	char path[64], line[256];
	long lim = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/limits", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Max open files", 14) == 0)
			lim = strtol(line + 14, NULL, 10);
	fclose(f);
	return lim;
}

/* A connection to the unix socket that never sends; -1 if refused. */
static int
raw_connect(const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(sock) >= sizeof(sa.sun_path) ||
	    (fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	memcpy(sa.sun_path, sock, strlen(sock));
	/* A full accept backlog says EAGAIN: the daemon has not accepted
	 * the previous ones yet (or cannot: no descriptor left). */
	for (int tries = 0; tries < 200; tries++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS)
			return fd;
		if (errno != EAGAIN)
			break;
		usleep(5 * 1000);
	}
	close(fd);
	return -1;
}

static int
sign_as(qsc_client *c, long i)
{
	Qsign__V1__SignResponse *s = NULL;
	uint8_t dg[32] = {0xc0};
	int r;

	memcpy(dg + 1, &i, sizeof(i));
	r = qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &s);
	qsc_free(s);
	return r;
}

static int
conn_flood(const char *url, const char *home, long n, const char *sock, long hold, long pid)
{
	qsc_client *reg = NULL;
	long opened = 0, signed_ok = 0, failed = 0, peak = 0, k;
	int *fds = calloc((size_t)n, sizeof(int)), rc = 1;
	double t0;

	struct rlimit rl;

	/* This side holds every connection too. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (fds == NULL || open_as(url, home, "registrar", &reg) != 0)
		goto out;
	if (sign_as(reg, -1) != 0) {
		fprintf(stderr, "flood: registrar cannot sign before the flood: %s\n",
		        qs_errdetail());
		goto out;
	}
	for (k = 0; k < n; k++) {
		if ((fds[opened] = raw_connect(sock)) < 0)
			break; /* the backlog stayed full for a second */
		opened++;
	}
	printf("conns opened %ld of %ld\n", opened, n);
	for (t0 = now_s(), k = 0; now_s() - t0 < (double)hold; k++) {
		long f = fd_count(pid);
		if (f > peak)
			peak = f;
		if (sign_as(reg, k) == 0) {
			signed_ok++;
		} else {
			failed++;
			fprintf(stderr, "flood: sign %ld during the flood failed: %s\n", k,
			        qs_errdetail());
		}
		usleep(20 * 1000);
	}
	printf("daemon fds peak %ld, limit %ld\n", peak, fd_limit(pid));
	printf("flood signed %ld failed %ld\n", signed_ok, failed);
	rc = failed == 0 && signed_ok > 0 ? 0 : 1;
out:
	for (k = 0; fds != NULL && k < opened; k++)
		close(fds[k]);
	free(fds);
	qsc_close(reg);
	return rc;
}

int
main(int argc, char **argv)
{
	qsc_client *ci = NULL, *reg = NULL;
	long refusals, logins, refused = 0, signed_ok = 0, opened = 0;
	uint8_t dg[32] = {0};
	double t0 = now_s();
	int rc = 1;

	if (argc == 8 && strcmp(argv[3], "--conns") == 0)
		return conn_flood(argv[1], argv[2], atol(argv[4]), argv[5], atol(argv[6]),
		                  atol(argv[7]));
	if (argc != 5) {
		fprintf(stderr, "usage: flood URL HOME REFUSALS LOGINS\n"
		                "       flood URL HOME --conns N SOCKET HOLD_S DAEMON_PID\n");
		return 2;
	}
	refusals = atol(argv[3]);
	logins = atol(argv[4]);
	if (open_as(argv[1], argv[2], "ci", &ci) != 0 ||
	    open_as(argv[1], argv[2], "registrar", &reg) != 0)
		goto out;
	for (long i = 0; i < refusals; i++) {
		Qsign__V1__SignResponse *s = NULL;
		int r;

		memcpy(dg, &i, sizeof(i));
		r = qsc_sign(ci, "release", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &s);
		qsc_free(s);
		if (r == 0 || (qsc_last_status(ci) != QS_STATUS_PERMISSION_DENIED &&
			       qsc_last_status(ci) != QS_STATUS_FAILED_PRECONDITION)) {
			fprintf(stderr, "flood: call %ld as ci on release was not refused: %s\n", i,
				r ? qs_errdetail() : "signed");
			goto out;
		}
		refused++;
		if (i % 1000 == 999) {
			dg[31] = 0xee;
			r = qsc_sign(reg, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &s);
			qsc_free(s);
			if (r != 0) {
				fprintf(stderr, "flood: registrar could not sign after %ld refusals: %s\n",
					i + 1, qs_errdetail());
				goto out;
			}
			signed_ok++;
		}
	}
	for (long i = 0; i < logins; i++) {
		qsc_client *c = NULL;
		if (open_as(argv[1], argv[2], "ci", &c) != 0)
			goto out;
		qsc_close(c);
		opened++;
	}
	rc = 0;
out:
	printf("refused %ld\nlogins %ld\nsigned %ld\nseconds %.1f\n", refused, opened, signed_ok,
	       now_s() - t0);
	qsc_close(ci);
	qsc_close(reg);
	return rc;
}
