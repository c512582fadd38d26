/* qsign metrics: the daemon's counters and readiness. */
#include <stdio.h>
#include <stdlib.h>

#include "qsign_cli.h"

void
metrics_usage(FILE *f)
{
	fprintf(f, "usage: qsign [GLOBAL OPTIONS] metrics [--json]\n"
		   "  The daemon's counters and gauges in Prometheus text (signatures by\n"
		   "  role and key, call latency, pending requests, audit log commits,\n"
		   "  token errors and reconnects), for admins and auditors. Exits 1 when\n"
		   "  the daemon reports it is not ready (audit log not writable, token\n"
		   "  failing). The same text is served on the \"metrics\" HTTP listener.\n"
		   "example: qsign -p auditor metrics | grep qsign_signatures_total\n");
}

int
metrics_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__MetricsResponse *m = NULL;
	qsc_client *c = NULL;
	int r;

	if ((r = simple_opts(argc, argv, g, metrics_usage)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_metrics(c, &m)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		r = json_print(json_pack("{s:b, s:s, s:s}", "ready", m->ready, "not_ready_reason",
					 m->not_ready_reason, "text", m->text),
			       JSON_INDENT(2)) == 0
			    ? EXIT_OK
			    : EXIT_FAILED;
	} else {
		put_safe(stdout, m->text, 1);
		r = EXIT_OK;
	}
	if (!m->ready) {
		errmsg("daemon not ready: %s", m->not_ready_reason);
		r = EXIT_FAILED;
	}
out:
	qsc_free(m);
	qsc_close(c);
	return r;
}
