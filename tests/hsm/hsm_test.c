/*
 * hsm_test - the token layer against a real PKCS#11 token.
 *
 * Parametrised by the environment so that every token we support runs the
 * same checks:
 *   HSM_TEST_MODULE    module path (required)
 *   HSM_TEST_URI       token URI (required), e.g. pkcs11:token=hsmtest
 *   HSM_TEST_PIN       PIN source, file:PATH or env:NAME (required)
 *   HSM_TEST_KEYTYPES  comma list of key types (default ecdsa-p256,ecdsa-p384,ed25519,
 *                      rsa3072,rsa2048-pkcs1)
 *   HSM_TEST_BREAK     how to break the token under a live pool:
 *                      "finalize" (hsm_debug_finalize), "cmd" (system() of
 *                      HSM_TEST_BREAK_CMD), "none" (skip the recovery test)
 *   HSM_TEST_SECONDS   duration of each parallel signing run (default 2)
 *   HSM_TEST_THREADS   comma list of thread counts (default 1,2,4)
 * Exits 0 when every check passed, 1 at the first failure (file:line).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/uri.h>

#include "hsm.h"
#include "qs_err.h"

#include "check.h"

/* r must be 0; print the error otherwise */
#define OK(expr)                                                                                   \
	do {                                                                                       \
		int ok_r_ = (expr);                                                                \
		if (ok_r_ != 0) {                                                                  \
			fprintf(stderr, "%s:%d: %s = %d (%s: %s)\n", __FILE__, __LINE__, #expr,    \
			        ok_r_, qs_strerror(ok_r_), qs_errdetail());                        \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* expr must fail with exactly `want` */
#define FAILS(expr, want)                                                                          \
	do {                                                                                       \
		int f_r_ = (expr);                                                                 \
		if (f_r_ != (want)) {                                                              \
			fprintf(stderr, "%s:%d: %s = %d (%s), want %d (%s); detail: %s\n",         \
			        __FILE__, __LINE__, #expr, f_r_, qs_strerror(f_r_), (want),        \
			        qs_strerror(want), qs_errdetail());                                \
			exit(1);                                                                   \
		}                                                                                  \
		printf("  ok: %s -> %s (%s)\n", #expr, qs_strerror(f_r_), qs_errdetail());         \
	} while (0)

static const char *module, *token_uri, *pin_src;
static char run_tag[32];

struct tkey {
	enum hsm_keytype type;
	char label[HSM_LABEL_MAX + 1];
	hsm_key *key;
	EVP_PKEY *pub;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : dflt;
}

/* "<token uri>;<attr>" or "<token uri>?<attr>" composed by p11-kit. */
static char *
key_uri(const char *label, const uint8_t *id, size_t id_len)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_ATTRIBUTE a;
	char *s = NULL;

	REQUIRE(uri != NULL);
	REQUIRE(p11_kit_uri_parse(token_uri, P11_KIT_URI_FOR_ANY, uri) == P11_KIT_URI_OK);
	/* the token URI may carry a pin-source: not wanted for key URIs */
	p11_kit_uri_set_pin_source(uri, NULL);
	if (label != NULL) {
		a = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
		REQUIRE(p11_kit_uri_set_attribute(uri, &a) == P11_KIT_URI_OK);
	}
	if (id != NULL) {
		a = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
		REQUIRE(p11_kit_uri_set_attribute(uri, &a) == P11_KIT_URI_OK);
	}
	REQUIRE(p11_kit_uri_format(uri, P11_KIT_URI_FOR_ANY, &s) == P11_KIT_URI_OK);
	p11_kit_uri_free(uri);
	return s;
}

/* Verify a signature made by hsm_sign over msg. For ECDSA both the
 * raw→DER conversion and OpenSSL's DER verification are exercised. */
static bool
verify_md(const struct tkey *k, const EVP_MD *md, const uint8_t *msg, size_t msg_len,
          const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t der[HSM_SIG_MAX + 9];
	size_t der_len;
	int ok = 0;

	REQUIRE(ctx != NULL);
	switch (k->type) {
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384:
		/* r || s of the curve's coordinate length */
		if (sig_len != (k->type == HSM_KEY_EC_P256 ? 64u : 96u) ||
		    hsm_ecdsa_raw_to_der(sig, sig_len, der, &der_len) != 0)
			break;
		ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, k->pub) == 1 &&
		     EVP_DigestVerify(ctx, der, der_len, msg, msg_len) == 1;
		break;
	case HSM_KEY_ED25519:
		ok = sig_len == 64 && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pub) == 1 &&
		     EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
		break;
	case HSM_KEY_RSA3072:
		ok = sig_len == 384 && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pub) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, EVP_MD_get_size(md)) == 1 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
		     EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
		break;
	case HSM_KEY_RSA2048_PKCS1:
	case HSM_KEY_RSA3072_PKCS1:
	case HSM_KEY_RSA4096_PKCS1:
		ok = sig_len == (size_t)EVP_PKEY_get_size(k->pub) &&
		     EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pub) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
		break;
	case HSM_KEY_NONE:
		break;
	}
	EVP_MD_CTX_free(ctx);
	return ok;
}

static bool
verify(const struct tkey *k, const uint8_t *msg, size_t msg_len, const uint8_t *sig, size_t sig_len)
{
	return verify_md(k, EVP_sha256(), msg, msg_len, sig, sig_len);
}

/* What hsm_sign takes for this key type: a digest, or the message. */
static void
sign_input(const struct tkey *k, const uint8_t *msg, size_t msg_len, uint8_t md[32],
           const uint8_t **in, size_t *in_len)
{
	if (k->type == HSM_KEY_ED25519) {
		*in = msg;
		*in_len = msg_len;
	} else {
		SHA256(msg, msg_len, md);
		*in = md;
		*in_len = 32;
	}
}

static void
sign_and_verify(hsm_token *t, const struct tkey *k)
{
	uint8_t msg[200], md[32], sig[HSM_SIG_MAX];
	const uint8_t *in;
	size_t in_len, sig_len;

	REQUIRE(RAND_bytes(msg, sizeof(msg)) == 1);
	sign_input(k, msg, sizeof(msg), md, &in, &in_len);
	OK(hsm_sign(t, k->key, in, in_len, sig, &sig_len));
	REQUIRE(verify(k, msg, sizeof(msg), sig, sig_len));
	/* a signature over other bytes must not verify */
	msg[0] ^= 1;
	REQUIRE(!verify(k, msg, sizeof(msg), sig, sig_len));
	if (k->type == HSM_KEY_ED25519)
		return;
	/* SHA-384 and SHA-512 digests (told apart by their length): ECDSA over
	 * them, PKCS#1 v1.5 over their DigestInfo, PSS with MGF1 of the same
	 * hash and a salt of its length; verified with that hash */
	{
		const EVP_MD *mds[] = {EVP_sha384(), EVP_sha512()};
		for (size_t i = 0; i < 2; i++) {
			uint8_t big[64];
			unsigned int big_len = 0;
			REQUIRE(EVP_Digest(msg, sizeof(msg), big, &big_len, mds[i], NULL) == 1);
			OK(hsm_sign(t, k->key, big, big_len, sig, &sig_len));
			REQUIRE(verify_md(k, mds[i], msg, sizeof(msg), sig, sig_len));
			REQUIRE(!verify(k, msg, sizeof(msg), sig, sig_len));
			msg[1] ^= 1;
			REQUIRE(!verify_md(k, mds[i], msg, sizeof(msg), sig, sig_len));
			msg[1] ^= 1;
		}
	}
}

/* ---- error cases ------------------------------------------------------ */

static void
test_open_errors(void)
{
	hsm_token *t = NULL;
	char uri[1024];

	printf("open errors\n");
	setenv("HSM_TEST_WRONG_PIN", "not-the-pin-0000", 1);
	FAILS(hsm_open(module, token_uri, "env:HSM_TEST_WRONG_PIN", &t), QS_ERR_PIN);
	REQUIRE(t == NULL);
	FAILS(hsm_open(module, token_uri, "file:/nonexistent/pin", &t), QS_ERR_PIN);
	FAILS(hsm_open(module, token_uri, "env:HSM_TEST_UNSET_VARIABLE", &t), QS_ERR_PIN);
	FAILS(hsm_open(module, token_uri, "1234", &t), QS_ERR_INVALID);
	FAILS(hsm_open(module, "pkcs11:token=no-such-token-here", pin_src, &t), QS_ERR_NOT_FOUND);
	FAILS(hsm_open(module, "pkcs11:token=%zz", pin_src, &t), QS_ERR_INVALID);
	FAILS(hsm_open(module, "http://example.com/", pin_src, &t), QS_ERR_INVALID);
	FAILS(hsm_open(module, "pkcs11:tokn=typo", pin_src, &t), QS_ERR_INVALID);
	snprintf(uri, sizeof(uri), "%s?pin-value=1234", token_uri);
	FAILS(hsm_open(module, uri, pin_src, &t), QS_ERR_INVALID);
	FAILS(hsm_open("/nonexistent/module.so", token_uri, pin_src, &t), QS_ERR_NOT_FOUND);
	REQUIRE(t == NULL);
}

static void
test_names(void)
{
	REQUIRE(hsm_keytype_parse("ecdsa-p256") == HSM_KEY_EC_P256);
	REQUIRE(hsm_keytype_parse("ec") == HSM_KEY_EC_P256);
	REQUIRE(hsm_keytype_parse("p256") == HSM_KEY_EC_P256);
	REQUIRE(hsm_keytype_parse("ecdsa-p384") == HSM_KEY_EC_P384);
	REQUIRE(strcmp(hsm_keytype_name(HSM_KEY_EC_P384), "ecdsa-p384") == 0);
	REQUIRE(hsm_keytype_signs_digest(HSM_KEY_EC_P384) && hsm_keytype_is_ecdsa(HSM_KEY_EC_P384) &&
	        !hsm_keytype_is_rsa(HSM_KEY_EC_P384));
	REQUIRE(hsm_keytype_parse("ed25519") == HSM_KEY_ED25519);
	REQUIRE(hsm_keytype_parse("rsa") == HSM_KEY_RSA3072);
	REQUIRE(hsm_keytype_parse("rsa3072") == HSM_KEY_RSA3072);
	REQUIRE(hsm_keytype_parse("rsa2048-pkcs1") == HSM_KEY_RSA2048_PKCS1);
	REQUIRE(hsm_keytype_parse("rsa4096-pkcs1") == HSM_KEY_RSA4096_PKCS1);
	REQUIRE(strcmp(hsm_keytype_name(HSM_KEY_RSA3072_PKCS1), "rsa3072-pkcs1") == 0);
	REQUIRE(hsm_keytype_signs_digest(HSM_KEY_RSA2048_PKCS1) &&
	        !hsm_keytype_signs_digest(HSM_KEY_ED25519));
	REQUIRE(hsm_keytype_parse("rsa2048") == HSM_KEY_NONE);
	REQUIRE(hsm_keytype_parse("dsa") == HSM_KEY_NONE);
	REQUIRE(hsm_keytype_parse(NULL) == HSM_KEY_NONE);
	REQUIRE(hsm_keytype_name(HSM_KEY_NONE) == NULL);
	REQUIRE(strcmp(hsm_keytype_name(HSM_KEY_ED25519), "ed25519") == 0);
}

/* ---- one key type: generate, find, export, sign ------------------------ */

static void
test_key(hsm_token *t, struct tkey *k)
{
	struct hsm_keyinfo info, info2;
	uint8_t *der = NULL, *der2 = NULL, md[65], sig[HSM_SIG_MAX], id[8];
	const unsigned char *p;
	size_t der_len, der2_len, sig_len;
	hsm_key *dup = NULL, *byid = NULL, *bylabel = NULL, *bare = NULL;
	char *pem = NULL, *uri;
	EVP_PKEY *from_pem;
	BIO *bio;

	printf("key %s (%s)\n", k->label, hsm_keytype_name(k->type));
	REQUIRE(RAND_bytes(id, sizeof(id)) == 1);
	OK(hsm_keygen(t, k->type, k->label, id, sizeof(id), &k->key));
	REQUIRE(hsm_key_type(k->key) == k->type);
	hsm_key_info(k->key, &info);
	REQUIRE(strcmp(info.label, k->label) == 0);
	REQUIRE(info.id_len == sizeof(id) && memcmp(info.id, id, sizeof(id)) == 0);

	/* never overwrite */
	FAILS(hsm_keygen(t, k->type, k->label, NULL, 0, &dup), QS_ERR_EXISTS);
	REQUIRE(dup == NULL);

	/* found by label, by id, and by bare label: the same key */
	uri = key_uri(k->label, NULL, 0);
	OK(hsm_key_find(t, uri, &bylabel));
	free(uri);
	uri = key_uri(NULL, id, sizeof(id));
	OK(hsm_key_find(t, uri, &byid));
	free(uri);
	OK(hsm_key_find(t, k->label, &bare));
	hsm_key_info(bylabel, &info2);
	REQUIRE(memcmp(&info, &info2, sizeof(info)) == 0);
	hsm_key_info(byid, &info2);
	REQUIRE(memcmp(&info, &info2, sizeof(info)) == 0);
	hsm_key_info(bare, &info2);
	REQUIRE(memcmp(&info, &info2, sizeof(info)) == 0);

	/* SPKI: DER and PEM decode to the same key */
	OK(hsm_key_spki_der(t, k->key, &der, &der_len));
	p = der;
	k->pub = d2i_PUBKEY(NULL, &p, (long)der_len);
	REQUIRE(k->pub != NULL && p == der + der_len);
	switch (k->type) {
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384: {
		char group[32];
		REQUIRE(EVP_PKEY_is_a(k->pub, "EC"));
		REQUIRE(EVP_PKEY_get_group_name(k->pub, group, sizeof(group), NULL) == 1);
		REQUIRE(strcmp(group, k->type == HSM_KEY_EC_P256 ? "prime256v1" : "secp384r1") ==
		        0);
		break;
	}
	case HSM_KEY_ED25519:
		REQUIRE(EVP_PKEY_is_a(k->pub, "ED25519"));
		break;
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA3072_PKCS1:
		REQUIRE(EVP_PKEY_get_bits(k->pub) == 3072);
		break;
	case HSM_KEY_RSA2048_PKCS1:
		REQUIRE(EVP_PKEY_get_bits(k->pub) == 2048);
		break;
	case HSM_KEY_RSA4096_PKCS1:
		REQUIRE(EVP_PKEY_get_bits(k->pub) == 4096);
		break;
	case HSM_KEY_NONE:
		REQUIRE(0);
	}
	OK(hsm_key_spki_pem(t, byid, &pem));
	REQUIRE(strncmp(pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
	REQUIRE((bio = BIO_new_mem_buf(pem, -1)) != NULL);
	REQUIRE((from_pem = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) != NULL);
	der2 = NULL;
	REQUIRE((int)(der2_len = (size_t)i2d_PUBKEY(from_pem, &der2)) > 0);
	REQUIRE(der2_len == der_len && memcmp(der, der2, der_len) == 0);

	/* sign with every handle, verify against the exported key */
	sign_and_verify(t, k);
	{
		struct tkey alias = *k;

		alias.key = bare;
		sign_and_verify(t, &alias);
	}

	/* wrong input length for digest-signing keys */
	if (k->type != HSM_KEY_ED25519) {
		memset(md, 0x5a, sizeof(md));
		FAILS(hsm_sign(t, k->key, md, 31, sig, &sig_len), QS_ERR_INVALID);
		FAILS(hsm_sign(t, k->key, md, 33, sig, &sig_len), QS_ERR_INVALID);
		FAILS(hsm_sign(t, k->key, md, 47, sig, &sig_len), QS_ERR_INVALID);
		FAILS(hsm_sign(t, k->key, md, 65, sig, &sig_len), QS_ERR_INVALID);
		FAILS(hsm_sign(t, k->key, md, 0, sig, &sig_len), QS_ERR_INVALID);
	} else {
		/* pure Ed25519 over an empty message is well defined */
		OK(hsm_sign(t, k->key, (const uint8_t *)"", 0, sig, &sig_len));
		REQUIRE(verify(k, (const uint8_t *)"", 0, sig, sig_len));
	}

	BIO_free(bio);
	EVP_PKEY_free(from_pem);
	OPENSSL_free(der2);
	free(der);
	free(pem);
	hsm_key_free(bylabel);
	hsm_key_free(byid);
	hsm_key_free(bare);
}

static void
test_find_errors(hsm_token *t)
{
	hsm_key *k = NULL;
	char *uri;
	uint8_t id[4] = {0xde, 0xad, 0xbe, 0xef};

	printf("find errors\n");
	uri = key_uri("no-such-key", NULL, 0);
	FAILS(hsm_key_find(t, uri, &k), QS_ERR_NOT_FOUND);
	free(uri);
	uri = key_uri(NULL, id, sizeof(id));
	FAILS(hsm_key_find(t, uri, &k), QS_ERR_NOT_FOUND);
	free(uri);
	FAILS(hsm_key_find(t, "pkcs11:object=%zz", &k), QS_ERR_INVALID);
	FAILS(hsm_key_find(t, "pkcs11:object=x?pin-value=1234", &k), QS_ERR_INVALID);
	FAILS(hsm_key_find(t, "pkcs11:token=other-token;object=x", &k), QS_ERR_NOT_FOUND);
	FAILS(hsm_key_find(t, "pkcs11:", &k), QS_ERR_INVALID);
	FAILS(hsm_key_find(t, "", &k), QS_ERR_INVALID);
	REQUIRE(k == NULL);
}

static void
test_list(hsm_token *t, const struct tkey *keys, size_t nkeys)
{
	struct hsm_keyinfo *list = NULL;
	size_t n = 0;

	printf("list\n");
	OK(hsm_key_list(t, &list, &n));
	for (size_t i = 0; i < n; i++)
		printf("  %-10s %s\n",
		       hsm_keytype_name(list[i].type) ? hsm_keytype_name(list[i].type) : "-",
		       list[i].label);
	for (size_t j = 0; j < nkeys; j++) {
		bool seen = false;

		for (size_t i = 0; i < n; i++)
			if (strcmp(list[i].label, keys[j].label) == 0) {
				REQUIRE(list[i].type == keys[j].type);
				seen = true;
			}
		REQUIRE(seen);
	}
	free(list);
}

/* ---- parallel signing ------------------------------------------------- */

#define DIGESTS 8

struct worker {
	pthread_t th;
	hsm_token *t;
	const struct tkey *k;
	const uint8_t (*msgs)[64];
	double until;
	uint8_t *sigs; /* count * HSM_SIG_MAX */
	size_t *lens;
	size_t count, cap;
	int err;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t mds[DIGESTS][32];
	const uint8_t *ins[DIGESTS];
	size_t in_lens[DIGESTS];

	for (int i = 0; i < DIGESTS; i++)
		sign_input(w->k, w->msgs[i], 64, mds[i], &ins[i], &in_lens[i]);
	while (now_s() < w->until) {
		if (w->count == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 1024;
			w->sigs = realloc(w->sigs, w->cap * HSM_SIG_MAX);
			w->lens = realloc(w->lens, w->cap * sizeof(*w->lens));
			if (w->sigs == NULL || w->lens == NULL) {
				w->err = QS_ERR_NOMEM;
				return NULL;
			}
		}
		size_t i = w->count % DIGESTS;
		int r = hsm_sign(w->t, w->k->key, ins[i], in_lens[i],
		                 w->sigs + w->count * HSM_SIG_MAX, &w->lens[w->count]);
		if (r != 0) {
			fprintf(stderr, "worker: hsm_sign: %s: %s\n", qs_strerror(r),
			        qs_errdetail());
			w->err = r;
			return NULL;
		}
		w->count++;
	}
	return NULL;
}

static double
test_parallel(hsm_token *t, const struct tkey *k, int nthreads, double seconds)
{
	struct worker *w = calloc((size_t)nthreads, sizeof(*w));
	uint8_t msgs[DIGESTS][64];
	size_t total = 0;
	unsigned sessions;
	double t0, dt;

	REQUIRE(w != NULL);
	REQUIRE(RAND_bytes(&msgs[0][0], sizeof(msgs)) == 1);
	t0 = now_s();
	for (int i = 0; i < nthreads; i++) {
		w[i].t = t;
		w[i].k = k;
		w[i].msgs = (const uint8_t(*)[64])msgs;
		w[i].until = t0 + seconds;
		REQUIRE(pthread_create(&w[i].th, NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < nthreads; i++)
		REQUIRE(pthread_join(w[i].th, NULL) == 0);
	dt = now_s() - t0;
	hsm_stats(t, &sessions, NULL);
	REQUIRE(sessions >= (unsigned)nthreads && sessions <= HSM_POOL_MAX);
	/* every signature must verify, not a sample */
	for (int i = 0; i < nthreads; i++) {
		REQUIRE(w[i].err == 0);
		REQUIRE(w[i].count > 0);
		for (size_t j = 0; j < w[i].count; j++)
			REQUIRE(verify(k, msgs[j % DIGESTS], 64, w[i].sigs + j * HSM_SIG_MAX,
			               w[i].lens[j]));
		total += w[i].count;
		free(w[i].sigs);
		free(w[i].lens);
	}
	free(w);
	printf("parallel %s: %d thread(s): %zu signatures in %.2f s = %.0f/s, all verified, "
	       "%u sessions\n",
	       hsm_keytype_name(k->type), nthreads, total, dt, (double)total / dt, sessions);
	return (double)total / dt;
}

/* ---- recovery ---------------------------------------------------------- */

static void
test_recovery(hsm_token *t, struct tkey *keys, size_t nkeys, const char *how)
{
	unsigned before, after, sessions;
	int rc;

	printf("recovery (%s)\n", how);
	hsm_stats(t, &sessions, &before);
	REQUIRE(sessions > 0);
	if (strcmp(how, "finalize") == 0) {
		hsm_debug_finalize(t);
	} else {
		const char *cmd = getenv("HSM_TEST_BREAK_CMD");

		REQUIRE(cmd != NULL);
		rc = system(cmd);
		REQUIRE(rc == 0);
	}
	/* first call after the break: must recover and succeed */
	sign_and_verify(t, &keys[0]);
	hsm_stats(t, &sessions, &after);
	printf("  reconnects %u -> %u, %u session(s)\n", before, after, sessions);
	REQUIRE(after >= before + 1);
	/* every key works again, with handles found anew */
	for (size_t i = 0; i < nkeys; i++)
		sign_and_verify(t, &keys[i]);
	/* and so do fresh lookups */
	{
		hsm_key *k = NULL;

		OK(hsm_key_find(t, keys[0].label, &k));
		hsm_key_free(k);
	}
}

/* ---- main -------------------------------------------------------------- */

int
main(void)
{
	struct tkey keys[8];
	size_t nkeys = 0;
	hsm_token *t = NULL, *t2 = NULL;
	hsm_key *k2 = NULL;
	const char *brk, *types, *threads;
	double seconds;
	char *list, *tok, *save;

	setvbuf(stdout, NULL, _IOLBF, 0);
	module = getenv("HSM_TEST_MODULE");
	token_uri = getenv("HSM_TEST_URI");
	pin_src = getenv("HSM_TEST_PIN");
	if (module == NULL || token_uri == NULL || pin_src == NULL) {
		fprintf(stderr, "hsm_test: set HSM_TEST_MODULE, HSM_TEST_URI, HSM_TEST_PIN\n");
		return 2;
	}
	types = env_or("HSM_TEST_KEYTYPES", "ecdsa-p256,ecdsa-p384,ed25519,rsa3072,rsa2048-pkcs1");
	brk = env_or("HSM_TEST_BREAK", "none");
	threads = env_or("HSM_TEST_THREADS", "1,2,4");
	seconds = atof(env_or("HSM_TEST_SECONDS", "2"));
	REQUIRE(seconds > 0);
	/* labels unique per run: a persistent token (TPM) keeps earlier keys */
	snprintf(run_tag, sizeof(run_tag), "%ld-%d", (long)time(NULL), (int)getpid());

	test_names();
	test_open_errors();

	OK(hsm_open(module, token_uri, pin_src, &t));
	printf("opened token \"%s\"\n", hsm_token_label(t));
	REQUIRE(hsm_token_matches(t, token_uri) == 1);
	REQUIRE(hsm_token_matches(t, "pkcs11:") == 1);
	REQUIRE(hsm_token_matches(t, "pkcs11:token=surely-not-this-one") == 0);
	REQUIRE(hsm_token_matches(t, "not a uri") == 0);

	REQUIRE((list = strdup(types)) != NULL);
	for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		REQUIRE(nkeys < sizeof(keys) / sizeof(keys[0]));
		keys[nkeys].type = hsm_keytype_parse(tok);
		REQUIRE(keys[nkeys].type != HSM_KEY_NONE);
		snprintf(keys[nkeys].label, sizeof(keys[nkeys].label), "t-%s-%s", tok, run_tag);
		test_key(t, &keys[nkeys]);
		nkeys++;
	}
	free(list);
	REQUIRE(nkeys > 0);
	/* a token holding all the kinds at once serves every one of them */
	for (size_t i = 0; i < nkeys; i++)
		sign_and_verify(t, &keys[i]);
	test_list(t, keys, nkeys);
	test_find_errors(t);

	/* a second hsm_token on the same module shares it; closing it must not
	 * finalize the module under the first one */
	printf("second token handle\n");
	OK(hsm_open(module, token_uri, pin_src, &t2));
	OK(hsm_key_find(t2, keys[0].label, &k2));
	{
		struct tkey alias = keys[0];

		alias.key = k2;
		sign_and_verify(t2, &alias);
		/* a key belongs to its token handle */
		uint8_t sig[HSM_SIG_MAX], md[32] = {0};
		size_t sl;
		FAILS(hsm_sign(t, k2, md, 32, sig, &sl), QS_ERR_INVALID);
	}
	hsm_key_free(k2);
	hsm_close(t2);
	sign_and_verify(t, &keys[0]);

	REQUIRE((list = strdup(threads)) != NULL);
	for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		test_parallel(t, &keys[0], atoi(tok), seconds);
	free(list);

	if (strcmp(brk, "none") != 0) {
		test_recovery(t, keys, nkeys, brk);
		/* the pool still works in parallel after recovery */
		test_parallel(t, &keys[0], 2, seconds / 2);
	}

	for (size_t i = 0; i < nkeys; i++) {
		hsm_key_free(keys[i].key);
		EVP_PKEY_free(keys[i].pub);
	}
	hsm_close(t);
	printf("hsm_test: all checks passed\n");
	return 0;
}
