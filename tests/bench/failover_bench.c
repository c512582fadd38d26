/*
 * failover_bench - what a replica's death costs a client that lists every
 * replica (tests/bench/run.sh kills the replica it talks to while it runs).
 *
 * usage: failover_bench URL,URL[,...] PRINCIPAL IDENTITY ROLE SECONDS
 *
 * One qsc_client on the URL list signs fresh digests back to back for
 * SECONDS. A Sign that dies with its replica is not repeated by the
 * library (it may have executed); the next call goes to the next replica.
 * Prints one line:
 *   failover ok=N failed=N gap_ms=G fail_to_ok_ms=F first=URL then=URL
 * gap_ms: from the return of the last successful call before the first
 * failure to the return of the first successful call after it (what the
 * client lost); fail_to_ok_ms: from the return of the first failed call to
 * the return of the first successful one. Exit 0 if there was exactly
 * one outage and signing resumed, 1 otherwise.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qs_err.h"
#include "qsclient.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	struct qsc_options o = {0};
	qsc_client *c = NULL;
	double end, last_ok = 0, first_fail = 0, resumed = 0, gap = 0;
	unsigned long ok = 0, failed = 0, outages = 0;
	char first_url[512] = "", then_url[512] = "";
	int in_outage = 0;

	if (argc != 6) {
		fprintf(stderr,
		        "usage: failover_bench URL,URL[,...] PRINCIPAL IDENTITY ROLE SECONDS\n");
		return 2;
	}
	o.url = argv[1];
	o.principal = argv[2];
	o.identity = argv[3];
	o.timeout_ms = 10000;
	if (qsc_open(&o, &c) != 0) {
		fprintf(stderr, "failover_bench: open: %s\n", qs_errdetail());
		return 1;
	}
	snprintf(first_url, sizeof(first_url), "%s", qsc_url(c));
	end = now_ms() + atof(argv[5]) * 1e3;
	while (now_ms() < end) {
		Qsign__V1__SignResponse *s = NULL;
		uint8_t dg[32];
		int r;

		if (RAND_bytes(dg, sizeof(dg)) != 1)
			return 1;
		r = qsc_sign(c, argv[4], NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, sizeof(dg), &s);
		qsc_free(s);
		if (r != 0) {
			failed++;
			if (!in_outage) {
				in_outage = 1;
				outages++;
				if (first_fail == 0)
					first_fail = now_ms();
				fprintf(stderr, "failover_bench: failed: %s: %s\n", qs_strerror(r),
				        qs_errdetail());
			}
			continue;
		}
		ok++;
		if (in_outage) {
			in_outage = 0;
			if (resumed == 0) {
				resumed = now_ms();
				gap = resumed - last_ok;
				snprintf(then_url, sizeof(then_url), "%s", qsc_url(c));
			}
		}
		last_ok = now_ms();
	}
	printf("failover ok=%lu failed=%lu gap_ms=%.1f fail_to_ok_ms=%.1f first=%s then=%s\n", ok,
	       failed, gap, resumed > 0 ? resumed - first_fail : 0.0, first_url,
	       then_url[0] ? then_url : "-");
	qsc_close(c);
	return outages == 1 && resumed > 0 && !in_outage ? 0 : 1;
}
