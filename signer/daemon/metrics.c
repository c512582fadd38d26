#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "audit.h"
#include "log.h"
#include "probe.h"
#include "qs_err.h"
#include "server.h"
#include "store.h"
#include "tlog.h"
#include "wire.h"

#define MAX_SERIES 256 /* distinct (method, status) / (role, key) pairs kept */
#define NBUCKETS 12

/* Latency buckets in seconds, Prometheus style (cumulative at render). */
static const double bucket_s[NBUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                                          0.05,   0.1,   0.25,  0.5,   1.0,  5.0};

struct call_series {
	char method[64];
	uint64_t by_status[17];
	uint64_t buckets[NBUCKETS + 1];
	double sum_s;
	uint64_t count;
};

struct sig_series {
	char role[65], key[65];
	uint64_t n;
};

struct tok_series {
	char token[65];
	uint64_t errors;
	int failing;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct call_series calls[MAX_SERIES];
static size_t ncalls;
static struct sig_series sigs[MAX_SERIES];
static size_t nsigs;
static struct tok_series toks[64];
static size_t ntoks;
static uint64_t votes_approve, votes_reject;

void
metrics_call(const char *method, int status, int64_t latency_us)
{
	struct call_series *c = NULL;
	double s = (double)latency_us / 1e6;
	size_t b;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ncalls; i++)
		if (strcmp(calls[i].method, method) == 0)
			c = &calls[i];
	if (c == NULL && ncalls < MAX_SERIES) {
		c = &calls[ncalls++];
		snprintf(c->method, sizeof(c->method), "%s", method);
	}
	if (c != NULL) {
		if (status >= 0 && status <= 16)
			c->by_status[status]++;
		for (b = 0; b < NBUCKETS && s > bucket_s[b]; b++)
			;
		c->buckets[b]++;
		c->sum_s += s;
		c->count++;
	}
	pthread_mutex_unlock(&mu);
}

void
metrics_signed(const char *role, const char *key, size_t n)
{
	struct sig_series *g = NULL;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nsigs; i++)
		if (strcmp(sigs[i].role, role) == 0 && strcmp(sigs[i].key, key) == 0)
			g = &sigs[i];
	if (g == NULL && nsigs < MAX_SERIES) {
		g = &sigs[nsigs++];
		snprintf(g->role, sizeof(g->role), "%s", role);
		snprintf(g->key, sizeof(g->key), "%s", key);
	}
	if (g != NULL)
		g->n += n;
	pthread_mutex_unlock(&mu);
}

void
metrics_vote(int approve)
{
	pthread_mutex_lock(&mu);
	approve ? votes_approve++ : votes_reject++;
	pthread_mutex_unlock(&mu);
}

void
metrics_token_result(const char *token, int ok)
{
	struct tok_series *t = NULL;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < ntoks; i++)
		if (strcmp(toks[i].token, token) == 0)
			t = &toks[i];
	if (t == NULL && ntoks < sizeof(toks) / sizeof(toks[0])) {
		t = &toks[ntoks++];
		snprintf(t->token, sizeof(t->token), "%s", token);
	}
	if (t != NULL) {
		t->failing = !ok;
		t->errors += !ok;
	}
	pthread_mutex_unlock(&mu);
}

int
metrics_healthy(struct server *s, char *why, size_t cap)
{
	int ok = 1;

	why[0] = '\0';
	if (!audit_writable(s->audit)) {
		snprintf(why, cap, "audit log cannot be written");
		ok = 0;
	}
	pthread_mutex_lock(&mu);
	for (size_t i = 0; ok && i < ntoks; i++)
		if (toks[i].failing) {
			snprintf(why, cap, "token %s is failing", toks[i].token);
			ok = 0;
		}
	pthread_mutex_unlock(&mu);
	if (ok && !probe_healthy(s->probe, why, cap))
		ok = 0;
	return ok;
}

int
metrics_render(struct server *s, char **out, size_t *len)
{
	struct tlog_stats ts;
	struct store_request **v = NULL;
	size_t npending = 0;
	char *buf = NULL, why[128];
	size_t blen = 0;
	FILE *f;

	*out = NULL;
	*len = 0;
	if (store_req_list(s->store, REQ_PENDING, NULL, 10000, &v, &npending) == 0)
		store_request_list_free(v, npending);
	tlog_get_stats(audit_tlog(s->audit), &ts);
	if ((f = open_memstream(&buf, &blen)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_lock(&mu);
	fprintf(f, "# HELP qsign_calls_total RPCs served, by method and gRPC status.\n"
	           "# TYPE qsign_calls_total counter\n");
	for (size_t i = 0; i < ncalls; i++)
		for (int st = 0; st <= 16; st++)
			if (calls[i].by_status[st])
				fprintf(f, "qsign_calls_total{method=\"%s\",status=\"%s\"} %llu\n",
				        calls[i].method, qs_status_name(st),
				        (unsigned long long)calls[i].by_status[st]);
	fprintf(f, "# HELP qsign_call_seconds RPC latency, by method.\n"
	           "# TYPE qsign_call_seconds histogram\n");
	for (size_t i = 0; i < ncalls; i++) {
		uint64_t cum = 0;
		for (int b = 0; b < NBUCKETS; b++) {
			cum += calls[i].buckets[b];
			fprintf(f, "qsign_call_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
			        calls[i].method, bucket_s[b], (unsigned long long)cum);
		}
		fprintf(f, "qsign_call_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
		        calls[i].method, (unsigned long long)calls[i].count);
		fprintf(f, "qsign_call_seconds_sum{method=\"%s\"} %.6f\n", calls[i].method,
		        calls[i].sum_s);
		fprintf(f, "qsign_call_seconds_count{method=\"%s\"} %llu\n", calls[i].method,
		        (unsigned long long)calls[i].count);
	}
	fprintf(f, "# HELP qsign_signatures_total Signatures produced, by role and key.\n"
	           "# TYPE qsign_signatures_total counter\n");
	for (size_t i = 0; i < nsigs; i++)
		fprintf(f, "qsign_signatures_total{role=\"%s\",key=\"%s\"} %llu\n", sigs[i].role,
		        sigs[i].key, (unsigned long long)sigs[i].n);
	fprintf(f,
	        "# HELP qsign_votes_total Approval votes recorded.\n"
	        "# TYPE qsign_votes_total counter\n"
	        "qsign_votes_total{decision=\"approve\"} %llu\n"
	        "qsign_votes_total{decision=\"reject\"} %llu\n",
	        (unsigned long long)votes_approve, (unsigned long long)votes_reject);
	fprintf(f, "# HELP qsign_token_errors_total Failed token operations.\n"
	           "# TYPE qsign_token_errors_total counter\n");
	for (size_t i = 0; i < ntoks; i++)
		fprintf(f, "qsign_token_errors_total{token=\"%s\"} %llu\n", toks[i].token,
		        (unsigned long long)toks[i].errors);
	pthread_mutex_unlock(&mu);
	keyring_write_metrics(s->kr, f);
	probe_write_metrics(s->probe, f);
	fprintf(f,
	        "# HELP qsign_requests_pending Quorum requests waiting for approvals.\n"
	        "# TYPE qsign_requests_pending gauge\nqsign_requests_pending %zu\n"
	        "# HELP qsign_audit_entries Entries in the audit log.\n"
	        "# TYPE qsign_audit_entries gauge\nqsign_audit_entries %llu\n"
	        "# HELP qsign_audit_batches_total Audit group commits since start.\n"
	        "# TYPE qsign_audit_batches_total counter\nqsign_audit_batches_total %llu\n"
	        "# HELP qsign_audit_batch_entries_total Entries written by those commits "
	        "(divide by batches for the mean batch size).\n"
	        "# TYPE qsign_audit_batch_entries_total counter\n"
	        "qsign_audit_batch_entries_total %llu\n"
	        "# HELP qsign_audit_fsyncs_total fdatasync calls on the audit entries.\n"
	        "# TYPE qsign_audit_fsyncs_total counter\nqsign_audit_fsyncs_total %llu\n"
	        "# HELP qsign_audit_failed_batches_total Audit commits refused (disk "
	        "full, I/O error).\n"
	        "# TYPE qsign_audit_failed_batches_total counter\n"
	        "qsign_audit_failed_batches_total %llu\n"
	        "# HELP qsign_ready 1 when the audit log is writable, no token is failing and "
	        "every listener answers its self-probe.\n"
	        "# TYPE qsign_ready gauge\nqsign_ready %d\n",
	        npending, (unsigned long long)tlog_size(audit_tlog(s->audit)),
	        (unsigned long long)ts.batches, (unsigned long long)ts.entries,
	        (unsigned long long)ts.entry_fsyncs, (unsigned long long)ts.failed_batches,
	        metrics_healthy(s, why, sizeof(why)));
	fclose(f);
	if (buf == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*out = buf;
	*len = blen;
	return 0;
}

/* ------------------------------------------------------------ HTTP */

static nng_http_server *http;
static struct server *http_srv;

static void
reply(nng_aio *aio, uint16_t status, const char *ctype, const char *body, size_t len)
{
	nng_http_res *res = NULL;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_http_res_set_status(res, status);
	nng_http_res_set_header(res, "Content-Type", ctype);
	nng_http_res_copy_data(res, body, len);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
http_metrics(nng_aio *aio)
{
	char *text = NULL;
	size_t len = 0;

	if (metrics_render(http_srv, &text, &len) != 0) {
		reply(aio, 500, "text/plain", "error\n", 6);
		return;
	}
	reply(aio, 200, "text/plain; version=0.0.4", text, len);
	free(text);
}

static void
http_health(nng_aio *aio)
{
	char why[160], body[200];
	int n;

	if (metrics_healthy(http_srv, why, sizeof(why))) {
		reply(aio, 200, "text/plain", "ok\n", 3);
		return;
	}
	n = snprintf(body, sizeof(body), "not ready: %s\n", why);
	reply(aio, 503, "text/plain", body, (size_t)n);
}

int
metrics_http_start(struct server *s, const char *url)
{
	nng_http_handler *hm = NULL, *hh = NULL;
	nng_url *u = NULL;
	int rv;

	if (strncmp(url, "http://", 7) != 0)
		return qs_fail(QS_ERR_INVALID, "metrics: %s must be http://127.0.0.1:PORT", url);
	{
		char tcp[300];
		snprintf(tcp, sizeof(tcp), "tcp://%s", url + 7);
		if (!config_url_is_loopback(tcp))
			return qs_fail(QS_ERR_INVALID,
			               "metrics: %s is not a loopback address: metrics stay local",
			               url);
	}
	http_srv = s;
	if ((rv = nng_url_parse(&u, url)) != 0 || (rv = nng_http_server_hold(&http, u)) != 0 ||
	    (rv = nng_http_handler_alloc(&hm, "/metrics", http_metrics)) != 0 ||
	    (rv = nng_http_server_add_handler(http, hm)) != 0 ||
	    (rv = nng_http_handler_alloc(&hh, "/healthz", http_health)) != 0 ||
	    (rv = nng_http_server_add_handler(http, hh)) != 0 ||
	    (rv = nng_http_server_start(http)) != 0) {
		if (u != NULL)
			nng_url_free(u);
		return qs_fail(QS_ERR_IO, "metrics listener %s: %s", url, nng_strerror(rv));
	}
	nng_url_free(u);
	log_info("metrics.listen", "url=%s", url);
	return 0;
}

void
metrics_http_stop(void)
{
	if (http != NULL) {
		nng_http_server_stop(http);
		nng_http_server_release(http);
		http = NULL;
	}
}

int
h_metrics(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__MetricsRequest *req = NULL;
	Qsign__V1__MetricsResponse resp = QSIGN__V1__METRICS_RESPONSE__INIT;
	char *text = NULL, why[160];
	size_t tl = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__metrics_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if ((cx->pol->principals[cx->pidx].roles & (POLICY_ROLE_ADMIN | POLICY_ROLE_AUDITOR)) == 0)
		return qs_fail(QS_ERR_DENIED, "metrics are for admins and auditors");
	if ((r = metrics_render(cx->srv, &text, &tl)) != 0)
		return r;
	resp.text = text;
	resp.ready = metrics_healthy(cx->srv, why, sizeof(why));
	resp.not_ready_reason = why;
	r = qs_wire_pack(&resp.base, out, out_len);
	free(text);
	return r;
}
