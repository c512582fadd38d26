/*
 * reauth - one long-lived client connection, across an event the test
 * drives from outside (a daemon restart, a policy change).
 *
 * usage: reauth URL[,URL...] HOME [PRINCIPAL ACTION EXPECT]
 *   PRINCIPAL  default ci (key HOME/demo/PRINCIPAL.key)
 *   ACTION     sign (ci-sign, a digest; default) | checkpoint (audit log)
 *   EXPECT     ok (default) | a gRPC status name the second call must get
 *
 * Calls once and prints "ready", waits for a line on stdin, calls again on
 * the same client and prints "ok" when the outcome is EXPECT (then, unless
 * EXPECT is ok, waits for another line before it closes the connection). After a
 * restart nng re-dials underneath, the new connection is unauthenticated,
 * and the client library re-authenticates and retries once; after a policy
 * change that replaced the principal's key, that retry must fail too.
 */
#include <stdio.h>
#include <string.h>

#include "qs_err.h"
#include "qsclient.h"

static const char *action = "sign";

static int
call_once(qsc_client *c, const char *what, int quiet)
{
	int r;

	if (strcmp(action, "checkpoint") == 0) {
		Qsign__V1__CheckpointResponse *cp = NULL;
		r = qsc_audit_checkpoint(c, &cp);
		qsc_free(cp);
	} else {
		Qsign__V1__SignResponse *s = NULL;
		uint8_t dg[32] = {7};
		r = qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &s);
		qsc_free(s);
	}
	if (r != 0 && !quiet)
		fprintf(stderr, "%s %s: %s: %s\n", action, what, qs_strerror(r), qs_errdetail());
	return r;
}

int
main(int argc, char **argv)
{
	struct qsc_options o = {0};
	qsc_client *c = NULL;
	const char *principal = "ci", *expect = "ok";
	char id[512], line[16];
	int rc = 1;

	if (argc != 3 && argc != 6)
		return 2;
	if (argc == 6) {
		principal = argv[3];
		action = argv[4];
		expect = argv[5];
	}
	snprintf(id, sizeof(id), "%s/demo/%s.key", argv[2], principal);
	o.url = argv[1];
	o.principal = principal;
	o.identity = id;
	o.timeout_ms = 15000;
	if (qsc_open(&o, &c) != 0) {
		fprintf(stderr, "open: %s\n", qs_errdetail());
		return 1;
	}
	if (call_once(c, "before", 0) != 0)
		goto out;
	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		goto out;
	if (strcmp(expect, "ok") == 0) {
		if (call_once(c, "after", 0) != 0)
			goto out;
	} else {
		int st;
		if (call_once(c, "after", 1) == 0) {
			fprintf(stderr, "%s after: succeeded, %s expected\n", action, expect);
			goto out;
		}
		st = qsc_last_status(c);
		if (strcmp(qs_status_name(st), expect) != 0) {
			fprintf(stderr, "%s after: %s (%s), %s expected\n", action,
				qs_status_name(st), qsc_last_message(c), expect);
			goto out;
		}
		fprintf(stderr, "%s after: %s: %s\n", action, qs_status_name(st),
			qsc_last_message(c));
	}
	printf("ok\n");
	fflush(stdout);
	fprintf(stderr, "%s after: through %s\n", action, qsc_url(c));
	/* Keep the connection until told: the daemon is the one to close it. */
	if (strcmp(expect, "ok") != 0 && fgets(line, sizeof(line), stdin) == NULL)
		goto out;
	rc = 0;
out:
	qsc_close(c);
	return rc;
}
