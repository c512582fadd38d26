/*
 * addsig - send one Tuf/AddSignatures call with the bytes given, so the
 * TUF test can hand the daemon what `qsign tuf sign` never would: a
 * signature replayed from published metadata, garbage, a document index
 * out of range. Prints "rc=<code> <detail>" and exits 0 when the call
 * succeeded, 1 when the daemon refused it.
 *
 * usage: addsig URL PRINCIPAL IDENTITY REQUEST_ID DOC KEYID SIG_HEX
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qs_err.h"
#include "qsclient.h"
#include "statement.h"

int
main(int argc, char **argv)
{
	struct qsc_options o;
	qsc_client *c = NULL;
	uint8_t sig[4096], *sp = sig;
	size_t n = 0;
	uint32_t doc;
	const char *kid;
	int r;

	if (argc != 8) {
		fprintf(stderr, "usage: addsig URL PRINCIPAL IDENTITY REQUEST_ID DOC KEYID SIG_HEX\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.url = argv[1];
	o.principal = argv[2];
	o.identity = argv[3];
	o.timeout_ms = 10000;
	doc = (uint32_t)strtoul(argv[5], NULL, 10);
	kid = argv[6];
	if (qs_unhex(argv[7], sig, sizeof(sig), &n) != 0) {
		fprintf(stderr, "addsig: SIG_HEX is not hex\n");
		return 2;
	}
	if ((r = qsc_open(&o, &c)) != 0) {
		fprintf(stderr, "addsig: connect: %s\n", qs_errdetail());
		return 2;
	}
	r = qsc_tuf_add_signatures(c, argv[4], &doc, &kid, &sp, &n, 1, NULL);
	printf("rc=%d %s\n", r, r != 0 ? qs_errdetail() : "ok");
	qsc_close(c);
	return r == 0 ? 0 : 1;
}
