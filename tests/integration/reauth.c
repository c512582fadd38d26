/*
 * reauth - a long-lived client survives a daemon restart: nng re-dials
 * underneath, the new connection is unauthenticated, and the client library
 * re-authenticates transparently and retries the refused call once.
 *
 * usage: reauth URL HOME   (prints "ready", waits for a line on stdin,
 *                           then signs again)
 */
#include <stdio.h>
#include <string.h>

#include "qs_err.h"
#include "qsclient.h"

static int
sign_once(qsc_client *c, const char *what)
{
	Qsign__V1__SignResponse *s = NULL;
	uint8_t dg[32] = {7};
	int r = qsc_sign(c, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &s);

	if (r != 0)
		fprintf(stderr, "sign %s: %s: %s\n", what, qs_strerror(r), qs_errdetail());
	qsc_free(s);
	return r;
}

int
main(int argc, char **argv)
{
	struct qsc_options o = {0};
	qsc_client *c = NULL;
	char id[512], line[16];
	int rc = 1;

	if (argc != 3)
		return 2;
	snprintf(id, sizeof(id), "%s/demo/ci.key", argv[2]);
	o.url = argv[1];
	o.principal = "ci";
	o.identity = id;
	o.timeout_ms = 15000;
	if (qsc_open(&o, &c) != 0) {
		fprintf(stderr, "open: %s\n", qs_errdetail());
		return 1;
	}
	if (sign_once(c, "before restart") != 0)
		goto out;
	printf("ready\n");
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		goto out;
	if (sign_once(c, "after restart") != 0)
		goto out;
	printf("ok\n");
	rc = 0;
out:
	qsc_close(c);
	return rc;
}
