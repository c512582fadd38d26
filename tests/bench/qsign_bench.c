/*
 * qsign-bench - signing throughput and latency of one ECDSA P-256 key,
 * reached five ways in one run, so that the ratios come from one machine
 * state (tests/bench/README.md, "Measured costs": runs are +-20% apart,
 * ratios within a run hold):
 *
 *   direct   hsm_sign() in this process, T threads on one hsm_token
 *   p11kit   the same hsm layer on p11-kit-client.so, talking to a
 *            `p11-kit server` that exports the token
 *   ipc      qsignd Sign over ipc://, one qsc_client per client thread
 *   tls      qsignd Sign over tls+tcp:// (mutual TLS)
 *   batch    qsignd SignBatch over ipc://, BATCH digests per call
 *
 * Every measurement runs for a fixed time; each call's latency is kept, and
 * signatures (not calls) are counted. A few signatures of every run are
 * checked against the key's public key with OpenSSL here, and written to
 * --samples DIR for an independent check by the driver: a benchmark that
 * signs garbage is worthless.
 *
 * Not a test: it exits 1 only when a mode fails (no signatures, errors, a
 * sample that does not verify), never because a target ratio is missed.
 * Run it through tests/bench/run.sh, which sets up the token, qsignd and
 * p11-kit server.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsm.h"
#include "qs_err.h"
#include "qsclient.h"

#define BENCH_BATCH 256        /* payloads per SignBatch call (the size) */
#define BENCH_SAMPLES_MAX 8    /* signatures kept per run for verification */
#define BENCH_OPEN_TRIES 10    /* SoftHSM opens race other processes at start */
#define BENCH_THREADS_MAX 64   /* more threads than any run here uses */
#define BENCH_DER_MAX (64 + 9) /* DER ECDSA-Sig-Value of P-256 */

enum mode { M_DIRECT, M_P11KIT, M_IPC, M_TLS, M_BATCH, M_HALF, M_COUNT };

static const char *const mode_names[M_COUNT] = {"direct", "p11kit", "ipc", "tls", "batch", "ipc50"};
static const char *const mode_desc[M_COUNT] = {
        "direct PKCS#11 (in-process hsm_sign)", "p11-kit remote (hsm layer on p11-kit-client)",
        "qsignd Sign over ipc://", "qsignd Sign over tls+tcp:// (mTLS)",
        "qsignd SignBatch(256) over ipc://",
        "qsignd Sign over ipc://, paced at half the ipc x8 rate of this run (latency from each "
        "call's scheduled start)"};

/* The runs, in order. Directs first: every other row is compared with them. */
static const struct plan {
	enum mode mode;
	unsigned threads;
} plan[] = {
        {M_DIRECT, 1}, {M_DIRECT, 2}, {M_DIRECT, 8}, {M_P11KIT, 1}, {M_P11KIT, 2}, {M_P11KIT, 8},
        {M_IPC, 1},    {M_IPC, 8},    {M_HALF, 8},   {M_TLS, 1},    {M_TLS, 8},    {M_BATCH, 1},
        {M_BATCH, 2},
};
#define NPLAN (sizeof(plan) / sizeof(plan[0]))

struct opts {
	double seconds;
	int json;
	const char *samples_dir;
	unsigned modes; /* bit per enum mode to run */
	/* PKCS#11 */
	const char *module, *p11kit_module, *uri, *pin, *key;
	/* qsignd */
	const char *ipc_url, *tls_url, *principal, *identity, *role;
	const char *tls_cert, *tls_key, *tls_ca, *tls_server_name;
};

struct sample {
	uint8_t digest[32];
	uint8_t der[BENCH_DER_MAX];
	size_t der_len;
};

struct result {
	enum mode mode;
	unsigned threads;
	int ran, failed;
	char why[320];
	uint64_t calls, sigs, errors;
	double seconds, rate, p50_ms, p99_ms;
	double pace; /* M_HALF: the offered rate (signatures/s, all clients) */
	size_t nsamples, verified;
	struct sample samples[BENCH_SAMPLES_MAX];
};

struct run;

struct worker {
	struct run *run;
	unsigned idx;
	qsc_client *client;
	uint64_t rng;
	uint64_t *lat_ns;
	size_t nlat, cap;
	uint64_t sigs, errors;
	int ready;
	char err[256];
	struct sample first, last;
	int have_first, have_last;
};

struct run {
	const struct opts *o;
	enum mode mode;
	hsm_token *tok; /* direct, p11kit */
	hsm_key *key;
	pthread_barrier_t go;
	atomic_int stop;
	uint64_t interval_ns; /* M_HALF: between one client's scheduled calls */
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Fresh, distinct digests for every call: xorshift64*, seeded per thread. */
static void
fill_digest(uint64_t *s, uint8_t dg[32])
{
	for (int i = 0; i < 4; i++) {
		uint64_t x = *s;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*s = x;
		x *= 0x2545F4914F6CDD1Dull;
		memcpy(dg + 8 * i, &x, 8);
	}
}

static int
lat_push(struct worker *w, uint64_t ns)
{
	if (w->nlat == w->cap) {
		size_t ncap = w->cap ? 2 * w->cap : 4096;
		uint64_t *n = realloc(w->lat_ns, ncap * sizeof(*n));
		if (n == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory for latencies");
		w->lat_ns = n;
		w->cap = ncap;
	}
	w->lat_ns[w->nlat++] = ns;
	return 0;
}

/* Keep the first and the latest signature of each worker as samples. */
static void
keep_sample(struct worker *w, const uint8_t dg[32], const uint8_t *der, size_t der_len)
{
	struct sample *s = w->have_first ? &w->last : &w->first;

	if (der_len > sizeof(s->der))
		der_len = sizeof(s->der); /* cannot verify then: caught later */
	memcpy(s->digest, dg, 32);
	memcpy(s->der, der, der_len);
	s->der_len = der_len;
	if (w->have_first)
		w->have_last = 1;
	w->have_first = 1;
}

/* One signing call of the worker's mode; *nsig: signatures it produced. */
static int
one_call(struct worker *w, int keep, uint64_t *nsig)
{
	struct run *rn = w->run;
	const struct opts *o = rn->o;
	uint8_t dg[32];
	int r;

	*nsig = 0;
	switch (rn->mode) {
	case M_DIRECT:
	case M_P11KIT: {
		uint8_t raw[HSM_SIG_MAX], der[HSM_SIG_MAX + 16];
		size_t raw_len = 0, der_len = 0;

		fill_digest(&w->rng, dg);
		if ((r = hsm_sign(rn->tok, rn->key, dg, 32, raw, &raw_len)) != 0)
			return r;
		*nsig = 1;
		if (keep) {
			if ((r = hsm_ecdsa_raw_to_der(raw, raw_len, der, &der_len)) != 0)
				return r;
			keep_sample(w, dg, der, der_len);
		}
		return 0;
	}
	case M_IPC:
	case M_HALF:
	case M_TLS: {
		Qsign__V1__SignResponse *resp = NULL;

		fill_digest(&w->rng, dg);
		if ((r = qsc_sign(w->client, o->role, NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32,
		                  &resp)) != 0)
			return r;
		if (resp->digest.len != 32 || memcmp(resp->digest.data, dg, 32) != 0) {
			qsc_free(resp);
			return qs_fail(QS_ERR_INVALID, "Sign reply carries another digest");
		}
		*nsig = 1;
		if (keep)
			keep_sample(w, dg, resp->signature.data, resp->signature.len);
		qsc_free(resp);
		return 0;
	}
	case M_BATCH: {
		static const size_t pick[] = {0, BENCH_BATCH / 2, BENCH_BATCH - 1};
		uint8_t dgs[BENCH_BATCH][32];
		ProtobufCBinaryData pl[BENCH_BATCH];
		Qsign__V1__SignBatchResponse *resp = NULL;
		uint64_t ok = 0;

		for (size_t i = 0; i < BENCH_BATCH; i++) {
			fill_digest(&w->rng, dgs[i]);
			pl[i].data = dgs[i];
			pl[i].len = 32;
		}
		if ((r = qsc_sign_batch(w->client, o->role, NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST,
		                        pl, BENCH_BATCH, &resp)) != 0)
			return r;
		for (size_t i = 0; i < resp->n_results; i++) {
			const Qsign__V1__SignResult *res = resp->results[i];
			if (res->status == QSIGN__V1__STATUS__OK && res->digest.len == 32 &&
			    memcmp(res->digest.data, dgs[i], 32) == 0)
				ok++;
		}
		if (keep)
			for (size_t j = 0; j < sizeof(pick) / sizeof(pick[0]); j++) {
				const Qsign__V1__SignResult *res = resp->results[pick[j]];
				keep_sample(w, dgs[pick[j]], res->signature.data,
				            res->signature.len);
			}
		r = 0;
		if (ok != BENCH_BATCH)
			r = qs_fail(QS_ERR_INVALID, "SignBatch: %llu of %d results OK",
			            (unsigned long long)ok, BENCH_BATCH);
		*nsig = ok;
		qsc_free(resp);
		return r;
	}
	default:
		return qs_fail(QS_ERR_INTERNAL, "unknown mode");
	}
}

static void sleep_s(double s);

/* --ipc A,B,C (replicas): client i uses the (i mod n)-th URL alone, so
 * that the clients are spread over the replicas (a comma list given to
 * the client library would be a fail-over list: every client on A). */
static const char *
spread_url(const char *list, unsigned idx, char *buf, size_t cap)
{
	size_t n = 1, k;
	const char *p = list, *e;

	for (const char *q = list; *q; q++)
		n += *q == ',';
	for (k = idx % n; k > 0; k--)
		p = strchr(p, ',') + 1;
	e = strchr(p, ',');
	snprintf(buf, cap, "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
	return buf;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *rn = w->run;
	const struct opts *o = rn->o;
	uint64_t nsig = 0;
	int r = 0;

	/* Set-up (connect + authenticate, or a warm session in the pool) is
	 * outside the measured window. */
	if (rn->mode == M_IPC || rn->mode == M_HALF || rn->mode == M_TLS || rn->mode == M_BATCH) {
		char url[1024];
		struct qsc_options co = {
		        .url = rn->mode == M_TLS ? o->tls_url
		                                 : spread_url(o->ipc_url, w->idx, url, sizeof(url)),
		        .principal = o->principal,
		        .identity = o->identity,
		        .timeout_ms = 30000,
		};
		if (rn->mode == M_TLS) {
			co.tls_cert = o->tls_cert;
			co.tls_key = o->tls_key;
			co.tls_ca = o->tls_ca;
			co.tls_server_name = o->tls_server_name;
		}
		r = qsc_open(&co, &w->client);
	}
	if (r == 0)
		r = one_call(w, 1, &nsig);
	if (r != 0)
		snprintf(w->err, sizeof(w->err), "set-up: %s: %s", qs_strerror(r), qs_errdetail());
	w->ready = r == 0;
	pthread_barrier_wait(&rn->go);
	if (!w->ready)
		return NULL;
	/* Paced (M_HALF): the clients' schedules are spread over one
	 * interval; a call's latency counts from its scheduled start, so a
	 * call that had to wait for the previous one counts that wait too. */
	uint64_t next = now_ns() + rn->interval_ns / 8 * (w->idx % 8);
	while (!atomic_load_explicit(&rn->stop, memory_order_relaxed)) {
		uint64_t t0 = now_ns(), t1;

		if (rn->interval_ns != 0) {
			if (t0 < next) {
				sleep_s((double)(next - t0) / 1e9);
				continue; /* look at stop again */
			}
			t0 = next;
			next += rn->interval_ns;
		}
		r = one_call(w, 0, &nsig);
		t1 = now_ns();
		w->sigs += nsig;
		if (r != 0) {
			w->errors++;
			snprintf(w->err, sizeof(w->err), "%s: %s", qs_strerror(r), qs_errdetail());
			break;
		}
		if ((r = lat_push(w, t1 - t0)) != 0) {
			w->errors++;
			snprintf(w->err, sizeof(w->err), "%s", qs_errdetail());
			break;
		}
	}
	/* The latest signature is a sample too, so a run that goes wrong
	 * half-way is caught. */
	if (r == 0 && (r = one_call(w, 1, &nsig)) != 0)
		snprintf(w->err, sizeof(w->err), "final: %s: %s", qs_strerror(r), qs_errdetail());
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n-1], in ms. */
static double
pct_ms(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)ceil(p * (double)n);
	i = i == 0 ? 0 : i - 1;
	return (double)v[i] / 1e6;
}

static void
sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
run_one(const struct opts *o, hsm_token *tok, hsm_key *key, struct result *res)
{
	struct run rn = {.o = o, .mode = res->mode, .tok = tok, .key = key};

	if (res->pace > 0)
		rn.interval_ns = (uint64_t)(1e9 * res->threads / res->pace);
	struct worker *ws = NULL;
	uint64_t *all = NULL, t0, t1;
	size_t nall = 0, started = 0;
	int r = -1;

	atomic_init(&rn.stop, 0);
	if ((ws = calloc(res->threads, sizeof(*ws))) == NULL ||
	    pthread_barrier_init(&rn.go, NULL, res->threads + 1) != 0) {
		free(ws);
		snprintf(res->why, sizeof(res->why), "out of memory");
		res->failed = 1;
		return -1;
	}
	pthread_t th[BENCH_THREADS_MAX];
	for (unsigned i = 0; i < res->threads; i++) {
		ws[i].run = &rn;
		ws[i].idx = i;
		ws[i].rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ now_ns();
		if (ws[i].rng == 0)
			ws[i].rng = 1;
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
			/* Not recoverable: the barrier counts on every thread. */
			fprintf(stderr, "qsign-bench: cannot start thread\n");
			exit(2);
		}
		started++;
	}
	pthread_barrier_wait(&rn.go);
	t0 = now_ns();
	sleep_s(o->seconds);
	atomic_store(&rn.stop, 1);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	t1 = now_ns();
	pthread_barrier_destroy(&rn.go);

	res->ran = 1;
	res->seconds = (double)(t1 - t0) / 1e9;
	for (unsigned i = 0; i < res->threads; i++) {
		struct worker *w = &ws[i];
		res->calls += w->nlat;
		res->sigs += w->sigs;
		res->errors += w->errors;
		nall += w->nlat;
		if (w->err[0] != '\0' && res->why[0] == '\0') {
			snprintf(res->why, sizeof(res->why), "client %u: %s", i, w->err);
			res->failed = 1;
		}
		if (w->have_first && res->nsamples < BENCH_SAMPLES_MAX)
			res->samples[res->nsamples++] = w->first;
		if (w->have_last && res->nsamples < BENCH_SAMPLES_MAX)
			res->samples[res->nsamples++] = w->last;
	}
	if ((all = malloc((nall ? nall : 1) * sizeof(*all))) == NULL) {
		snprintf(res->why, sizeof(res->why), "out of memory");
		res->failed = 1;
		goto out;
	}
	nall = 0;
	for (unsigned i = 0; i < res->threads; i++) {
		memcpy(all + nall, ws[i].lat_ns, ws[i].nlat * sizeof(*all));
		nall += ws[i].nlat;
	}
	qsort(all, nall, sizeof(*all), cmp_u64);
	res->p50_ms = pct_ms(all, nall, 0.50);
	res->p99_ms = pct_ms(all, nall, 0.99);
	res->rate = res->seconds > 0 ? (double)res->sigs / res->seconds : 0;
	if (res->sigs == 0 && res->why[0] == '\0') {
		snprintf(res->why, sizeof(res->why), "no signatures");
		res->failed = 1;
	}
	r = res->failed ? -1 : 0;
out:
	for (unsigned i = 0; i < res->threads; i++) {
		qsc_close(ws[i].client);
		free(ws[i].lat_ns);
	}
	free(ws);
	free(all);
	return r;
}

/* ------------------------------------------------------------ checks */

static int
verify_samples(EVP_PKEY *pub, struct result *res)
{
	for (size_t i = 0; i < res->nsamples; i++) {
		const struct sample *s = &res->samples[i];
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
		int ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
		         EVP_PKEY_verify(ctx, s->der, s->der_len, s->digest, 32) == 1;

		EVP_PKEY_CTX_free(ctx);
		if (ok)
			res->verified++;
	}
	if (res->nsamples == 0 || res->verified != res->nsamples) {
		if (res->why[0] == '\0')
			snprintf(res->why, sizeof(res->why), "%zu of %zu sample signatures verify",
			         res->verified, res->nsamples);
		res->failed = 1;
		return -1;
	}
	return 0;
}

static int
write_file(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[4096];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL)
		return qs_fail(QS_ERR_IO, "open %s: %s", path, strerror(errno));
	ok = fwrite(buf, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	return ok ? 0 : qs_fail(QS_ERR_IO, "write %s", path);
}

/* DIR/<mode>-<threads>-<k>.dg (32-byte digest) and .sig (DER), for
 * `openssl pkeyutl -verify` in the driver. */
static int
write_samples(const char *dir, const struct result *res)
{
	char name[128];
	int r;

	for (size_t i = 0; i < res->nsamples; i++) {
		snprintf(name, sizeof(name), "%s-%u-%zu.dg", mode_names[res->mode], res->threads,
		         i);
		if ((r = write_file(dir, name, res->samples[i].digest, 32)) != 0)
			return r;
		snprintf(name, sizeof(name), "%s-%u-%zu.sig", mode_names[res->mode], res->threads,
		         i);
		if ((r = write_file(dir, name, res->samples[i].der, res->samples[i].der_len)) != 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------ report */

static const struct result *
find(const struct result *rs, size_t n, enum mode m, unsigned threads)
{
	for (size_t i = 0; i < n; i++)
		if (rs[i].mode == m && rs[i].threads == threads && rs[i].ran && !rs[i].failed)
			return &rs[i];
	return NULL;
}

static double
ratio(const struct result *a, const struct result *b)
{
	return (a != NULL && b != NULL && b->rate > 0) ? a->rate / b->rate : NAN;
}

static void
print_table(const struct opts *o, const struct result *rs, size_t n)
{
	printf("\nqsign-bench: ECDSA P-256 (SoftHSM key \"%s\"), %.2f s per run, %ld CPUs\n\n",
	       o->key, o->seconds, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-8s %4s %11s %9s %9s %10s %10s  %s\n", "mode", "thr", "sigs/s", "p50 ms", "p99 ms",
	       "x direct", "x p11kit", "note");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		double rd = ratio(r, find(rs, n, M_DIRECT, r->threads));
		double rp = NAN;
		char rds[16] = "-", rps[16] = "-";

		if (r->mode == M_IPC && r->threads == 8)
			rp = ratio(r, find(rs, n, M_P11KIT, 8));
		if (!isnan(rd) && r->mode != M_DIRECT)
			snprintf(rds, sizeof(rds), "%.2f", rd);
		if (!isnan(rp))
			snprintf(rps, sizeof(rps), "%.2f", rp);
		if (!r->ran) {
			printf("%-8s %4u %11s %9s %9s %10s %10s  skipped: %s\n",
			       mode_names[r->mode], r->threads, "-", "-", "-", "-", "-", r->why);
			continue;
		}
		printf("%-8s %4u %11.0f %9.3f %9.3f %10s %10s  %s%s\n", mode_names[r->mode],
		       r->threads, r->rate, r->p50_ms, r->p99_ms, rds, rps,
		       r->failed ? "FAILED: " : "", r->failed ? r->why : "");
	}
	printf("\nrows: direct = %s; p11kit = %s;\n      ipc = %s; tls = %s;\n      batch = %s"
	       " (signatures counted, latency per call).\n"
	       "thr = threads (direct, p11kit) or concurrent clients, one connection each.\n",
	       mode_desc[M_DIRECT], mode_desc[M_P11KIT], mode_desc[M_IPC], mode_desc[M_TLS],
	       mode_desc[M_BATCH]);
	printf("      ipc50 = %s.\n", mode_desc[M_HALF]);
}

struct targets {
	double ipc8_vs_p11kit8, batch1_vs_direct1, batch2_vs_direct2, half_p99_ms, half_rate;
	int ipc_met, batch_met, half_met;
};

static void
eval_targets(const struct result *rs, size_t n, struct targets *t)
{
	t->ipc8_vs_p11kit8 = ratio(find(rs, n, M_IPC, 8), find(rs, n, M_P11KIT, 8));
	t->batch1_vs_direct1 = ratio(find(rs, n, M_BATCH, 1), find(rs, n, M_DIRECT, 1));
	t->batch2_vs_direct2 = ratio(find(rs, n, M_BATCH, 2), find(rs, n, M_DIRECT, 2));
	t->ipc_met = !isnan(t->ipc8_vs_p11kit8) && t->ipc8_vs_p11kit8 >= 1.5;
	t->batch_met = !isnan(t->batch1_vs_direct1) && !isnan(t->batch2_vs_direct2) &&
	               t->batch1_vs_direct1 >= 0.9 && t->batch2_vs_direct2 >= 0.9;
	t->half_p99_ms = find(rs, n, M_HALF, 8) ? find(rs, n, M_HALF, 8)->p99_ms : NAN;
	t->half_rate = find(rs, n, M_HALF, 8) ? find(rs, n, M_HALF, 8)->rate : NAN;
	t->half_met = !isnan(t->half_p99_ms) && t->half_p99_ms <= 2.0;
}

static void
print_targets(const struct targets *t)
{
	printf("\ntargets:\n");
	printf("  ipc Sign, 8 clients >= 1.5 x p11kit, 8 threads: %.2f  %s\n", t->ipc8_vs_p11kit8,
	       t->ipc_met ? "MET" : "NOT MET");
	printf("  SignBatch >= 0.9 x direct (1 client: %.2f, 2 clients: %.2f)  %s\n",
	       t->batch1_vs_direct1, t->batch2_vs_direct2, t->batch_met ? "MET" : "NOT MET");
	printf("  ipc Sign p99 at half of the ipc x8 rate (%.0f/s) <= 2 ms: %.3f ms  %s\n",
	       t->half_rate, t->half_p99_ms, t->half_met ? "MET" : "NOT MET");
}

static void
json_num(const char *k, double v, int comma)
{
	if (isnan(v))
		printf("\"%s\":null%s", k, comma ? "," : "");
	else
		printf("\"%s\":%.4g%s", k, v, comma ? "," : "");
}

static void
print_json(const struct opts *o, const struct result *rs, size_t n, const struct targets *t)
{
	char date[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("{\"bench\":\"qsign-bench\",\"date\":\"%s\",\"cpus\":%ld,\"seconds_per_run\":%g,"
	       "\"batch_size\":%d,\"results\":[",
	       date, sysconf(_SC_NPROCESSORS_ONLN), o->seconds, BENCH_BATCH);
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &rs[i];
		printf("%s{\"mode\":\"%s\",\"threads\":%u,\"ran\":%s,\"ok\":%s,", i ? "," : "",
		       mode_names[r->mode], r->threads, r->ran ? "true" : "false",
		       r->ran && !r->failed ? "true" : "false");
		printf("\"signatures\":%llu,\"calls\":%llu,\"errors\":%llu,",
		       (unsigned long long)r->sigs, (unsigned long long)r->calls,
		       (unsigned long long)r->errors);
		json_num("seconds", r->seconds, 1);
		json_num("sigs_per_s", r->rate, 1);
		json_num("p50_ms", r->p50_ms, 1);
		json_num("p99_ms", r->p99_ms, 1);
		json_num("ratio_direct", ratio(r, find(rs, n, M_DIRECT, r->threads)), 1);
		json_num("ratio_p11kit",
		         r->mode == M_IPC && r->threads == 8 ? ratio(r, find(rs, n, M_P11KIT, 8))
		                                             : NAN,
		         1);
		printf("\"samples\":%zu,\"verified\":%zu}", r->nsamples, r->verified);
	}
	printf("],\"targets\":{");
	json_num("ipc8_vs_p11kit8", t->ipc8_vs_p11kit8, 1);
	printf("\"ipc8_vs_p11kit8_met\":%s,", t->ipc_met ? "true" : "false");
	json_num("batch1_vs_direct1", t->batch1_vs_direct1, 1);
	json_num("batch2_vs_direct2", t->batch2_vs_direct2, 1);
	printf("\"batch_vs_direct_met\":%s,", t->batch_met ? "true" : "false");
	json_num("ipc_half_p99_ms", t->half_p99_ms, 1);
	printf("\"ipc_half_p99_met\":%s}}\n", t->half_met ? "true" : "false");
}

/* ------------------------------------------------------------ main */

/* "ipc,batch" -> bits of enum mode. Only for profiling one mode at a time:
 * the full table needs every mode. */
static int
parse_modes(const char *s, unsigned *bits)
{
	*bits = 0;
	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		int m;

		for (m = 0; m < M_COUNT; m++)
			if (strlen(mode_names[m]) == n && strncmp(s, mode_names[m], n) == 0)
				break;
		if (m == M_COUNT)
			return -1;
		*bits |= 1u << m;
		s += n;
		if (*s == ',')
			s++;
	}
	return *bits != 0 ? 0 : -1;
}

static int
open_token(const char *module, const struct opts *o, hsm_token **tok, hsm_key **key)
{
	int r = 0;

	*tok = NULL;
	*key = NULL;
	for (int i = 0; i < BENCH_OPEN_TRIES; i++) {
		if ((r = hsm_open(module, o->uri, o->pin, tok)) == 0)
			break;
		sleep_s(0.2);
	}
	if (r != 0)
		return r;
	if ((r = hsm_key_find(*tok, o->key, key)) != 0 || hsm_key_type(*key) != HSM_KEY_EC_P256) {
		if (r == 0)
			r = qs_fail(QS_ERR_INVALID, "key %s is not ECDSA P-256", o->key);
		hsm_key_free(*key);
		hsm_close(*tok);
		*key = NULL;
		*tok = NULL;
	}
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: qsign-bench [-t SECONDS] [--json] [--samples DIR] [--modes M,M...]\n"
	        "  PKCS#11: --module SO --p11kit-module SO --uri URI --pin file:PATH --key LABEL\n"
	        "  qsignd:  --ipc URL[,URL...] --principal NAME --identity KEYFILE --role ROLE\n"
	        "           (several ipc URLs: client i uses the (i mod n)-th, e.g. replicas)\n"
	        "           --tls URL --tls-cert F --tls-key F --tls-ca F [--tls-server-name N]\n"
	        "A backend whose options are missing is skipped (and reported as such).\n"
	        "p11kit: set P11_KIT_SERVER_ADDRESS for the client module. Use "
	        "tests/bench/run.sh.\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	        {"time", required_argument, NULL, 't'},
	        {"json", no_argument, NULL, 'j'},
	        {"samples", required_argument, NULL, 's'},
	        {"module", required_argument, NULL, 'm'},
	        {"p11kit-module", required_argument, NULL, 'M'},
	        {"uri", required_argument, NULL, 'u'},
	        {"pin", required_argument, NULL, 'P'},
	        {"key", required_argument, NULL, 'k'},
	        {"ipc", required_argument, NULL, 'i'},
	        {"tls", required_argument, NULL, 'T'},
	        {"principal", required_argument, NULL, 'p'},
	        {"identity", required_argument, NULL, 'I'},
	        {"role", required_argument, NULL, 'r'},
	        {"tls-cert", required_argument, NULL, 'C'},
	        {"tls-key", required_argument, NULL, 'K'},
	        {"tls-ca", required_argument, NULL, 'A'},
	        {"tls-server-name", required_argument, NULL, 'N'},
	        {"modes", required_argument, NULL, 'o'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct opts o = {.seconds = 3.0,
	                 .uri = "pkcs11:token=qsign-demo",
	                 .key = "ci-key",
	                 .principal = "ci",
	                 .role = "ci-sign",
	                 .modes = (1u << M_COUNT) - 1};
	struct result rs[NPLAN];
	hsm_token *tok[M_COUNT] = {0};
	hsm_key *key[M_COUNT] = {0};
	EVP_PKEY *pub = NULL;
	uint8_t *spki = NULL;
	char *pem = NULL;
	struct targets tg;
	int c, failed = 0;

	while ((c = getopt_long(argc, argv, "t:jh", lo, NULL)) != -1) {
		switch (c) {
		case 't': {
			char *end;
			errno = 0;
			o.seconds = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(o.seconds > 0 && o.seconds <= 3600)) {
				fprintf(stderr, "qsign-bench: -t wants seconds in (0, 3600]\n");
				return 2;
			}
			break;
		}
		case 'j':
			o.json = 1;
			break;
		case 's':
			o.samples_dir = optarg;
			break;
		case 'm':
			o.module = optarg;
			break;
		case 'M':
			o.p11kit_module = optarg;
			break;
		case 'u':
			o.uri = optarg;
			break;
		case 'P':
			o.pin = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'i':
			o.ipc_url = optarg;
			break;
		case 'T':
			o.tls_url = optarg;
			break;
		case 'p':
			o.principal = optarg;
			break;
		case 'I':
			o.identity = optarg;
			break;
		case 'r':
			o.role = optarg;
			break;
		case 'C':
			o.tls_cert = optarg;
			break;
		case 'K':
			o.tls_key = optarg;
			break;
		case 'A':
			o.tls_ca = optarg;
			break;
		case 'N':
			o.tls_server_name = optarg;
			break;
		case 'o':
			if (parse_modes(optarg, &o.modes) != 0) {
				fprintf(stderr, "qsign-bench: --modes: a comma list of direct, "
				                "p11kit, ipc, tls, batch, ipc50\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || o.module == NULL || o.pin == NULL) {
		/* The direct rows are the baseline and the source of the public
		 * key: without them nothing else can be judged. */
		usage(stderr);
		return 2;
	}
	if (o.samples_dir != NULL && mkdir(o.samples_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "qsign-bench: mkdir %s: %s\n", o.samples_dir, strerror(errno));
		return 2;
	}

	if (open_token(o.module, &o, &tok[M_DIRECT], &key[M_DIRECT]) != 0 ||
	    hsm_key_spki_der(tok[M_DIRECT], key[M_DIRECT], &spki, &(size_t){0}) != 0 ||
	    hsm_key_spki_pem(tok[M_DIRECT], key[M_DIRECT], &pem) != 0) {
		fprintf(stderr, "qsign-bench: %s: %s\n", o.module, qs_errdetail());
		return 1;
	}
	{
		const unsigned char *p = spki;
		if ((pub = d2i_PUBKEY(NULL, &p, 4096)) == NULL) {
			fprintf(stderr, "qsign-bench: cannot parse the key's public key\n");
			return 1;
		}
	}
	if (o.samples_dir != NULL &&
	    write_file(o.samples_dir, "pubkey.pem", pem, strlen(pem)) != 0) {
		fprintf(stderr, "qsign-bench: %s\n", qs_errdetail());
		return 1;
	}
	if (o.p11kit_module != NULL &&
	    open_token(o.p11kit_module, &o, &tok[M_P11KIT], &key[M_P11KIT]) != 0) {
		fprintf(stderr, "qsign-bench: %s: %s\n", o.p11kit_module, qs_errdetail());
		return 1;
	}

	memset(rs, 0, sizeof(rs));
	for (size_t i = 0; i < NPLAN; i++) {
		struct result *r = &rs[i];
		const char *missing = NULL;

		r->mode = plan[i].mode;
		r->threads = plan[i].threads;
		if (!(o.modes & (1u << r->mode)))
			missing = "not in --modes";
		else if (r->mode == M_P11KIT && tok[M_P11KIT] == NULL)
			missing = "no --p11kit-module";
		else if (r->mode == M_HALF && find(rs, i, M_IPC, 8) == NULL)
			missing = "needs the ipc x8 row of this run";
		else if ((r->mode == M_IPC || r->mode == M_HALF || r->mode == M_BATCH) &&
		         (o.ipc_url == NULL || o.identity == NULL))
			missing = "no --ipc/--identity";
		else if (r->mode == M_TLS &&
		         (o.tls_url == NULL || o.identity == NULL || o.tls_cert == NULL ||
		          o.tls_key == NULL || o.tls_ca == NULL))
			missing = "no --tls and its certificate options";
		if (missing != NULL) {
			snprintf(r->why, sizeof(r->why), "%s", missing);
			continue;
		}
		if (r->mode == M_HALF)
			r->pace = find(rs, i, M_IPC, 8)->rate / 2;
		fprintf(stderr, "qsign-bench: %s x%u ...\n", mode_names[r->mode], r->threads);
		run_one(&o, tok[r->mode == M_P11KIT ? M_P11KIT : M_DIRECT],
		        key[r->mode == M_P11KIT ? M_P11KIT : M_DIRECT], r);
		verify_samples(pub, r);
		if (o.samples_dir != NULL && write_samples(o.samples_dir, r) != 0) {
			fprintf(stderr, "qsign-bench: %s\n", qs_errdetail());
			failed = 1;
		}
		if (r->failed)
			failed = 1;
	}

	print_table(&o, rs, NPLAN);
	eval_targets(rs, NPLAN, &tg);
	print_targets(&tg);
	if (o.json)
		print_json(&o, rs, NPLAN, &tg);
	fflush(stdout);

	for (int m = 0; m < M_COUNT; m++) {
		hsm_key_free(key[m]);
		hsm_close(tok[m]);
	}
	EVP_PKEY_free(pub);
	free(spki);
	free(pem);
	return failed ? 1 : 0;
}
