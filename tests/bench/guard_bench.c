/*
 * guard_bench - what a signer helper's check of an online signature costs
 * (signer/keys/privsep_guard.h: ps_guard_plain, the check PS_SIGN and
 * PS_SIGN_MANY pass before the token signs), in nanoseconds per call,
 * without the noise of a whole daemon on a shared machine.
 *
 * usage: guard_bench CONFIG [N]
 *
 * Builds the guard from CONFIG's bootstrap policy as a helper does; the
 * keys' public keys are stand-ins (a helper finds them in its tokens), so
 * only the checks are timed: key purpose (audit key, quorum keys, TUF and
 * CA keys) and the role's rate (ratelimit.c). Times N calls for one
 * signature (Sign) and N / 16 for 256 (a SignBatch slice) with the first
 * online role's key; run.sh raises that role's rate so that the limiter
 * never refuses. Prints one line per measurement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "privsep_guard.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

/* A stand-in SubjectPublicKeyInfo per URI: 91 bytes (an EC P-256 SPKI's
 * length) derived from the URI. */
static int
fake_spki(void *arg, const char *uri, uint8_t **der, size_t *len)
{
	uint8_t dg[32];

	(void)arg;
	if ((*der = malloc(91)) == NULL)
		return QS_ERR_NOMEM;
	qs_sha256((const uint8_t *)uri, strlen(uri), dg);
	for (size_t i = 0; i < 91; i++)
		(*der)[i] = dg[i % 32];
	*len = 91;
	return 0;
}

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
measure(struct ps_guard *g, const uint8_t *der, size_t len, const char *label,
	enum hsm_keytype type, uint32_t n, long calls, const char *what)
{
	double t0 = now_ns(), dt;
	size_t lens[QS_MAX_BATCH];

	for (uint32_t i = 0; i < n && i < QS_MAX_BATCH; i++)
		lens[i] = 32; /* SHA-256 digests */
	for (long i = 0; i < calls; i++)
		if (ps_guard_plain(g, "sign", der, len, label, type, lens, n) != 0) {
			fprintf(stderr, "guard_bench: refused: %s\n", qs_errdetail());
			return 1;
		}
	dt = now_ns() - t0;
	printf("guard_bench: %s: %.0f ns per call, %.1f ns per signature (%ld calls)\n", what,
	       dt / (double)calls, dt / (double)calls / n, calls);
	return 0;
}

int
main(int argc, char **argv)
{
	struct config *c = NULL;
	struct ps_guard_boot boot;
	struct ps_guard *g = NULL;
	const struct policy_role *ro = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	long n = argc > 2 ? atol(argv[2]) : 1000000;
	int r = 1;

	if (argc < 2 || n < 16) {
		fprintf(stderr, "usage: guard_bench CONFIG [N >= 16]\n");
		return 2;
	}
	log_init("guard_bench", LOG_LVL_WARN);
	if (config_load(argv[1], &c) != 0) {
		fprintf(stderr, "guard_bench: %s\n", qs_errdetail());
		return 2;
	}
	ps_guard_boot_read(c, &boot);
	if (boot.v1 == NULL || ps_guard_boot_share(&boot) != 0 ||
	    ps_guard_new(c, &boot, fake_spki, NULL, &g) != 0) {
		fprintf(stderr, "guard_bench: %s\n", boot.v1 ? qs_errdetail() : boot.v1_error);
		goto out;
	}
	for (size_t i = 0; i < boot.v1->nroles && ro == NULL; i++)
		if (boot.v1->roles[i].mode == POLICY_ONLINE && boot.v1->roles[i].nkeys > 0)
			ro = &boot.v1->roles[i];
	if (ro == NULL || fake_spki(NULL, boot.v1->keys[ro->keys[0]].uri, &der, &len) != 0) {
		fprintf(stderr, "guard_bench: no online role\n");
		goto out;
	}
	printf("guard_bench: role %s, key %s, rate %u/s, burst %u\n", ro->name,
	       boot.v1->keys[ro->keys[0]].name, ro->rate_per_second, ro->burst);
	r = measure(g, der, len, boot.v1->keys[ro->keys[0]].name,
		    boot.v1->keys[ro->keys[0]].type, 1, n, "Sign") ||
	    measure(g, der, len, boot.v1->keys[ro->keys[0]].name,
		    boot.v1->keys[ro->keys[0]].type, 256, n / 16,
		    "SignBatch slice of 256");
out:
	free(der);
	ps_guard_free(g);
	policy_unref(boot.v1);
	config_free(c);
	return r;
}
