/*
 * conns - connection abuse against a running qsignd: many idle connections
 * and slow-loris partial frames held open while a valid client signs; the
 * valid client's latency without and with the abuse, and what the daemon
 * does with the abusive connections.
 *
 * usage: conns URL HOME DAEMON_PID IDLE LORIS HOLD_S
 *   IDLE    raw connections that never send a byte
 *   LORIS   slow-loris connections, split between four kinds:
 *             half-handshake  4 of the 8 SP handshake bytes
 *             half-header     handshake, then 4 of a frame's 9 header bytes
 *             short-frame     handshake, header announcing 1000 bytes, 10 sent
 *             max-frame       handshake, header announcing QS_MAX_FRAME, 1 KiB sent
 *           plus QS_CONN_FILLED (default 25) "filled" ones: header announcing
 *           QS_MAX_FRAME and all but its last byte sent (memory held per
 *           connection)
 *   HOLD_S  seconds the abusive connections are held (from the last open)
 *           before counting how many the daemon has dropped
 *
 * Prints p50/p99 of the valid client's Sign (one long-lived connection) and
 * of fresh connect+authenticate+sign, per phase; the daemon's open fds and
 * memory; exits 1 if the valid client failed or was starved (p99 of a
 * phase with abuse over max(10 x baseline p99, 250 ms), or a fresh
 * connection failing), and 3 if it was served but partial frames outlived
 * the hold (no per-connection timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "qs_err.h"
#include "qs_limits.h"
#include "qsclient.h"
#include "wire.h"

static const char *url, *home;
static long daemon_pid;
static int failures;

static uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ daemon resources */

static void
daemon_usage(const char *when)
{
	char path[64], line[256];
	long fds = 0, rss = -1, vsz = -1;
	DIR *d;
	FILE *f;
	struct dirent *e;

	snprintf(path, sizeof(path), "/proc/%ld/fd", daemon_pid);
	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL)
			fds += e->d_name[0] != '.';
		closedir(d);
	}
	snprintf(path, sizeof(path), "/proc/%ld/status", daemon_pid);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			sscanf(line, "VmRSS: %ld", &rss);
			sscanf(line, "VmSize: %ld", &vsz);
		}
		fclose(f);
	}
	printf("  daemon %s: %ld open fds, RSS %ld MiB, virtual %ld MiB\n", when, fds, rss / 1024,
	       vsz / 1024);
}

/* ------------------------------------------------------------ valid client */

static qsc_client *
valid_open(void)
{
	char id[512];
	struct qsc_options o = {0};
	qsc_client *c = NULL;

	snprintf(id, sizeof(id), "%s/demo/ci.key", home);
	o.url = url;
	o.principal = "ci";
	o.identity = id;
	o.timeout_ms = 5000;
	if (qsc_open(&o, &c) != 0) {
		qsc_close(c);
		return NULL;
	}
	return c;
}

static int
sign_once(qsc_client *c)
{
	Qsign__V1__SignResponse *r = NULL;
	uint8_t dg[32];

	for (int i = 0; i < 32; i++)
		dg[i] = (uint8_t)random();
	if (qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &r) != 0)
		return -1;
	qsc_free(r);
	return 0;
}

struct lat {
	double p50, p99, max;
	int failed;
};

static struct lat
stats(uint64_t *v, size_t n, int failed)
{
	struct lat l = {0, 0, 0, failed};

	if (n > 0) {
		qsort(v, n, sizeof(*v), cmp_u64);
		l.p50 = v[n / 2] / 1000.0;
		l.p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0;
		l.max = v[n - 1] / 1000.0;
	}
	return l;
}

/* `calls` signs on the long-lived connection c, and `fresh` times a new
 * connection (dial, challenge, authenticate) plus one sign. */
static void
measure(const char *phase, qsc_client *c, int calls, int fresh, struct lat *steady,
        struct lat *conn)
{
	uint64_t *v = calloc((size_t)(calls > fresh ? calls : fresh), sizeof(*v));
	size_t n = 0;
	int failed = 0;

	for (int i = 0; i < calls; i++) {
		uint64_t t0 = mono_us();
		if (sign_once(c) != 0) {
			failed++;
			fprintf(stderr, "FAIL: %s: sign: %s\n", phase, qs_errdetail());
			continue;
		}
		v[n++] = mono_us() - t0;
	}
	*steady = stats(v, n, failed);
	n = 0;
	failed = 0;
	for (int i = 0; i < fresh; i++) {
		uint64_t t0 = mono_us();
		qsc_client *f = valid_open();
		if (f == NULL || sign_once(f) != 0) {
			failed++;
			fprintf(stderr, "FAIL: %s: fresh connection: %s\n", phase, qs_errdetail());
		} else {
			v[n++] = mono_us() - t0;
		}
		qsc_close(f);
	}
	*conn = stats(v, n, failed);
	printf("  %-22s sign p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  failed %d/%d\n", phase,
	       steady->p50, steady->p99, steady->max, steady->failed, calls);
	printf("  %-22s new connection+sign p50 %7.2f ms  p99 %7.2f ms  failed %d/%d\n", "",
	       conn->p50, conn->p99, conn->failed, fresh);
	free(v);
}

/* ------------------------------------------------------------ abusive connections */

enum kind { K_IDLE, K_HALF_HANDSHAKE, K_HALF_HEADER, K_SHORT_FRAME, K_MAX_FRAME, K_FILLED, NKIND };
static const char *kind_name[NKIND] = {"idle",        "half-handshake", "half-header",
                                       "short-frame", "max-frame",      "filled"};

struct conn {
	int fd;
	enum kind kind;
};

static int
raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
	/* A full accept backlog answers EAGAIN: retry briefly (a daemon
	 * that accepts drains it in microseconds). */
	for (int i = 0; i < 50; i++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (errno != EAGAIN) {
			fprintf(stderr, "connect: %s\n", strerror(errno));
			break;
		}
		usleep(1000);
	}
	close(fd);
	return -1;
}

static void
put64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Write all of buf (the socket is non-blocking: bounded retries). */
static int
send_all(int fd, const uint8_t *buf, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {fd, POLLOUT, 0};
			if (poll(&p, 1, 2000) <= 0)
				return -1;
			continue;
		}
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* The SP handshake (REQ0), then read the daemon's 8 bytes. */
static int
handshake(int fd)
{
	static const uint8_t hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t got[8];
	size_t n = 0;

	if (send_all(fd, hs, 8) != 0)
		return -1;
	while (n < 8) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t r;
		if (poll(&p, 1, 5000) <= 0)
			return -1;
		if ((r = read(fd, got + n, 8 - n)) <= 0)
			return -1;
		n += (size_t)r;
	}
	return got[1] == 'S' && got[2] == 'P' ? 0 : -1;
}

static int
open_abusive(enum kind k)
{
	static const uint8_t hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	uint8_t buf[1024 + 17];
	int fd = raw_connect();

	if (fd < 0)
		return -1;
	switch (k) {
	case K_IDLE:
		break;
	case K_HALF_HANDSHAKE:
		if (send_all(fd, hs, 4) != 0)
			goto fail;
		break;
	case K_HALF_HEADER:
		buf[0] = 1;
		put64be(buf + 1, 100);
		if (handshake(fd) != 0 || send_all(fd, buf, 4) != 0)
			goto fail;
		break;
	case K_SHORT_FRAME:
		buf[0] = 1;
		put64be(buf + 1, 1000);
		memset(buf + 9, 0x80, 10);
		if (handshake(fd) != 0 || send_all(fd, buf, 19) != 0)
			goto fail;
		break;
	case K_MAX_FRAME:
		buf[0] = 1;
		put64be(buf + 1, QS_MAX_FRAME);
		memset(buf + 9, 0x80, 1024);
		if (handshake(fd) != 0 || send_all(fd, buf, 9 + 1024) != 0)
			goto fail;
		break;
	default: {
		static uint8_t *big;
		if (big == NULL && (big = malloc(QS_MAX_FRAME + 9)) == NULL)
			goto fail;
		big[0] = 1;
		put64be(big + 1, QS_MAX_FRAME);
		memset(big + 9, 0x80, QS_MAX_FRAME);
		if (handshake(fd) != 0 || send_all(fd, big, 9 + QS_MAX_FRAME - 1) != 0)
			goto fail;
		break;
	}
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* 1 if the daemon has closed fd (EOF or reset), 0 if still open. */
static int
closed_by_peer(int fd)
{
	char b[64];
	struct pollfd p = {fd, POLLIN, 0};

	if (poll(&p, 1, 0) <= 0)
		return 0;
	for (;;) {
		ssize_t r = read(fd, b, sizeof(b));
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (r < 0)
			return 0;
	}
}

int
main(int argc, char **argv)
{
	int idle, loris, hold, nconn = 0, open_failed = 0;
	struct conn *conns;
	struct rlimit rl;
	struct lat base, base_c, abuse, abuse_c, after, after_c, held, held_c;
	qsc_client *c;
	uint64_t t_opened;
	int calls = 500, fresh = 20, filled = 25, lingering = 0;

	if (argc != 7) {
		fprintf(stderr, "usage: conns URL HOME DAEMON_PID IDLE LORIS HOLD_S\n");
		return 2;
	}
	url = argv[1];
	home = argv[2];
	daemon_pid = atol(argv[3]);
	idle = atoi(argv[4]);
	loris = atoi(argv[5]);
	hold = atoi(argv[6]);
	if (getenv("QS_CONN_CALLS"))
		calls = atoi(getenv("QS_CONN_CALLS"));
	if (getenv("QS_CONN_FILLED"))
		filled = atoi(getenv("QS_CONN_FILLED"));
	srandom((unsigned)getpid());
	/* This process holds every abusive connection. */
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)(idle + loris + filled + 64)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < (rlim_t)(idle + loris + filled + 64)) {
			fprintf(stderr, "conns: need %d fds, the limit is %llu\n",
			        idle + loris + filled + 64, (unsigned long long)rl.rlim_cur);
			return 2;
		}
	}
	if ((c = valid_open()) == NULL) {
		fprintf(stderr, "conns: valid client cannot connect: %s\n", qs_errdetail());
		return 2;
	}
	printf("phase 1: no abuse\n");
	daemon_usage("before");
	measure("baseline", c, calls, fresh, &base, &base_c);

	printf("phase 2: %d idle + %d slow-loris + %d filled connections\n", idle, loris, filled);
	conns = calloc((size_t)(idle + loris + filled), sizeof(*conns));
	{
		uint64_t t0 = mono_us();
		int in_a_row = 0;
		for (int i = 0; i < idle + loris + filled; i++) {
			/* Slow-loris and filled first (they need the daemon's
			 * handshake), the idle ones last and fast, so the valid
			 * client is measured while all of them are held. */
			enum kind k = i < loris            ? (enum kind)(1 + i % (NKIND - 2))
			              : i < loris + filled ? K_FILLED
			                                   : K_IDLE;
			int fd = open_abusive(k);
			if (fd < 0) {
				open_failed++;
				/* The daemon no longer accepts: measure the valid
				 * client in that state rather than wait it out. */
				if (++in_a_row == 10) {
					printf("  the daemon stopped accepting after %d "
					       "connections\n",
					       nconn);
					break;
				}
				continue;
			}
			in_a_row = 0;
			conns[nconn].fd = fd;
			conns[nconn].kind = k;
			nconn++;
		}
		printf("  opened %d of %d in %.2f s (%d refused or failed)\n", nconn,
		       idle + loris + filled, (double)(mono_us() - t0) / 1e6, open_failed);
	}
	t_opened = mono_us();
	daemon_usage("holding them");
	measure("under abuse", c, calls, fresh, &abuse, &abuse_c);
	{
		int still[NKIND] = {0}, total[NKIND] = {0};
		/* Keep signing while the hold time runs out. */
		while (mono_us() - t_opened < (uint64_t)hold * 1000000) {
			if (sign_once(c) != 0) {
				abuse.failed++;
				fprintf(stderr, "FAIL: sign during the hold: %s\n", qs_errdetail());
			}
			usleep(50 * 1000);
		}
		measure("after the hold", c, calls / 5, fresh / 2, &held, &held_c);
		for (int i = 0; i < nconn; i++) {
			total[conns[i].kind]++;
			if (!closed_by_peer(conns[i].fd))
				still[conns[i].kind]++;
		}
		printf("  still open after %d s (closed by the daemon = timeout/limit enforced):\n",
		       hold);
		for (int k = 0; k < NKIND; k++)
			if (total[k] > 0)
				printf("    %-15s %5d of %5d open\n", kind_name[k], still[k],
				       total[k]);
		for (int k = 0; k < NKIND; k++)
			lingering += still[k];
		daemon_usage("after the hold");
	}
	printf("phase 3: abusive connections closed\n");
	for (int i = 0; i < nconn; i++)
		close(conns[i].fd);
	usleep(500 * 1000);
	daemon_usage("after closing");
	measure("after", c, calls, fresh, &after, &after_c);
	qsc_close(c);
	free(conns);

	{
		double lim = base.p99 * 10 > 250 ? base.p99 * 10 : 250;
		double lim_c = base_c.p99 * 10 > 250 ? base_c.p99 * 10 : 250;
		struct {
			const char *what;
			struct lat *l;
			double lim;
		} chk[] = {{"sign under abuse", &abuse, lim},
		           {"new connection under abuse", &abuse_c, lim_c},
		           {"sign after the hold", &held, lim},
		           {"new connection after the hold", &held_c, lim_c},
		           {"sign after closing", &after, lim},
		           {"new connection after closing", &after_c, lim_c}};
		for (size_t i = 0; i < sizeof(chk) / sizeof(chk[0]); i++) {
			if (chk[i].l->failed) {
				fprintf(stderr, "FAIL: %s: %d call(s) failed\n", chk[i].what,
				        chk[i].l->failed);
				failures++;
			} else if (chk[i].l->p99 > chk[i].lim) {
				fprintf(stderr, "FAIL: %s: p99 %.2f ms over the bound %.2f ms\n",
				        chk[i].what, chk[i].l->p99, chk[i].lim);
				failures++;
			}
		}
	}
	if (open_failed > 0)
		printf("note: %d abusive connections could not be opened\n", open_failed);
	if (failures) {
		fprintf(stderr, "conns: %d check(s) failed: valid clients were starved\n",
		        failures);
		return 1;
	}
	printf("valid client served throughout\n");
	if (lingering) {
		fprintf(stderr,
		        "conns: %d abusive connection(s) still held after %d s: no per-connection "
		        "timeout for incomplete handshakes or frames\n",
		        lingering, hold);
		return 3;
	}
	return 0;
}
