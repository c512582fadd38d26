/* qsign metrics: the daemon's counters and readiness. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	           "  --json  {\"ready\": b, \"not_ready_reason\": s, \"metrics\": {FAMILY:\n"
	           "          {\"type\": s, \"help\": s, \"samples\": [{\"name\": s,\n"
	           "          \"labels\": {NAME: s}, \"value\": n}]}}}\n"
	           "example: qsign -p auditor metrics | grep qsign_signatures_total\n"
	           "         qsign -p auditor --json metrics | jq "
	           "'.metrics.qsign_requests_pending'\n");
}

/* The family called name, created untyped if new. */
static json_t *
family(json_t *fams, const char *name)
{
	json_t *f = json_object_get(fams, name);

	if (f == NULL) {
		f = json_pack("{s:s, s:s, s:[]}", "type", "untyped", "help", "", "samples");
		json_object_set_new(fams, name, f);
	}
	return f;
}

/* The family (from # TYPE / # HELP lines) a sample belongs to: its own
 * name, or the name without a histogram/summary suffix. */
static json_t *
family_of(json_t *fams, const char *name)
{
	static const char *const suffix[] = {"_bucket", "_sum", "_count", "_total", "_created"};
	json_t *f = json_object_get(fams, name);
	size_t n = strlen(name);

	for (size_t i = 0; f == NULL && i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		size_t s = strlen(suffix[i]);
		if (n > s && strcmp(name + n - s, suffix[i]) == 0) {
			char base[256];
			snprintf(base, sizeof(base), "%.*s", (int)(n - s), name);
			f = json_object_get(fams, base);
		}
	}
	return f != NULL ? f : family(fams, name);
}

/* One sample line `name{a="x",b="y"} value [timestamp]`; 0 or -1. The
 * exposition format is a few lines of grammar and no library of the
 * project's reads it: parsed here. Label values unescape \\, \" and \n. */
static int
parse_sample(json_t *fams, char *line)
{
	char *p = line, *name = line, *end;
	json_t *labels = json_object(), *s;
	double v;

	while (*p != '\0' && *p != '{' && *p != ' ')
		p++;
	if (*p == '{') {
		*p++ = '\0';
		while (*p != '}') {
			char *ln = p, *val, *out;
			while (*p != '\0' && *p != '=')
				p++;
			if (*p != '=' || p[1] != '"')
				goto bad;
			*p = '\0';
			p += 2;
			val = out = p;
			while (*p != '\0' && *p != '"') {
				if (*p == '\\' && p[1] != '\0') {
					p++;
					*out++ = *p == 'n' ? '\n' : *p;
					p++;
				} else {
					*out++ = *p++;
				}
			}
			if (*p != '"')
				goto bad;
			p++;
			*out = '\0';
			json_object_set_new(labels, ln, json_text(val));
			if (*p == ',')
				p++;
			else if (*p != '}')
				goto bad;
		}
		p++;
	} else if (*p == ' ') {
		*p = '\0';
		p++;
	}
	while (*p == ' ')
		p++;
	errno = 0;
	v = strtod(p, &end);
	if (end == p || errno != 0 || (*end != '\0' && *end != ' '))
		goto bad;
	s = json_pack("{s:o, s:o, s:f}", "name", json_text(name), "labels", labels, "value", v);
	labels = NULL;
	json_array_append_new(json_object_get(family_of(fams, name), "samples"), s);
	return 0;
bad:
	json_decref(labels);
	return -1;
}

/* The Prometheus text as {FAMILY: {type, help, samples}}; NULL after
 * saying which line could not be read. */
static json_t *
metrics_json(const char *text)
{
	json_t *fams = json_object();
	char *copy = strdup(text), *save = NULL, *line;
	size_t no = 0;

	if (copy == NULL || fams == NULL) {
		errmsg("out of memory");
		goto fail;
	}
	for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char kw[8], name[256];
		int off = 0;
		no++;
		if (line[0] == '#') {
			if (sscanf(line, "# %7s %255s %n", kw, name, &off) >= 2 &&
			    (strcmp(kw, "HELP") == 0 || strcmp(kw, "TYPE") == 0))
				json_object_set_new(family(fams, name),
				                    strcmp(kw, "HELP") == 0 ? "help" : "type",
				                    json_text(line + off));
			continue;
		}
		if (line[0] != '\0' && parse_sample(fams, line) != 0) {
			errmsg("metrics line %zu is not a Prometheus sample", no);
			goto fail;
		}
	}
	free(copy);
	return fams;
fail:
	free(copy);
	json_decref(fams);
	return NULL;
}

int
metrics_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__MetricsResponse *m = NULL;
	qsc_client *c = NULL;
	json_t *fams;
	int r;

	if ((r = parse_opts(argc, argv, g, metrics_usage, PLAIN_OPTS(0))) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_metrics(c, &m)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		if ((fams = metrics_json(m->text)) == NULL)
			r = EXIT_FAILED;
		else
			r = json_print(json_pack("{s:b, s:o, s:o}", "ready", m->ready,
			                         "not_ready_reason", json_text(m->not_ready_reason),
			                         "metrics", fams),
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
