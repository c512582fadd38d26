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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int
main(int argc, char **argv)
{
	qsc_client *ci = NULL, *reg = NULL;
	long refusals, logins, refused = 0, signed_ok = 0, opened = 0;
	uint8_t dg[32] = {0};
	double t0 = now_s();
	int rc = 1;

	if (argc != 5) {
		fprintf(stderr, "usage: flood URL HOME REFUSALS LOGINS\n");
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
