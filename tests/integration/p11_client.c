/*
 * p11_client.c - drives libqsign-pkcs11.so the way PKCS#11 applications do
 * (dlopen + C_GetFunctionList), against a real qsignd (tests/integration/
 * pkcs11.sh). Every signature is verified with OpenSSL against the key's
 * CKA_PUBLIC_KEY_INFO.
 *
 *   p11_client MODULE api TOKEN KEY       attribute, template and CKR_* checks
 *   p11_client MODULE threads TOKEN KEY N PER  N threads, one module instance
 *   p11_client MODULE fork TOKEN KEY      sign, fork, C_Initialize in the child
 *   p11_client MODULE refused TOKEN KEY   2nd signature refused by the rate limit
 *   p11_client MODULE bench TOKEN KEY N SECS   N threads sign for SECS seconds
 *                                             (CKM_ECDSA; the first signature of
 *                                             each thread verified); prints
 *                                             "pkcs11 N SIGS SECONDS SIGS_PER_S"
 * Exit 0 when every check passed; the failing check is printed.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR F;
static const char *token, *keyname;
static EVP_PKEY *pub;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define CK(call, want)                                                                             \
	do {                                                                                       \
		CK_RV rv_ = (call);                                                                \
		if (rv_ != (want)) {                                                               \
			fprintf(stderr, "FAIL %s:%d: %s = 0x%lx, want 0x%lx\n", __FILE__,          \
			        __LINE__, #call, (unsigned long)rv_, (unsigned long)(want));       \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static void
load(const char *path)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&gfl = dlsym(h, "C_GetFunctionList");
	CHECK(gfl != NULL);
	CK(gfl(&F), CKR_OK);
}

static void
init(void)
{
	CK_C_INITIALIZE_ARGS a = {0};
	a.flags = CKF_OS_LOCKING_OK;
	CK(F->C_Initialize(&a), CKR_OK);
}

static CK_SLOT_ID
find_slot(void)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_TOKEN_INFO ti;
	char label[33];

	CK(F->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++) {
		CK(F->C_GetTokenInfo(slots[i], &ti), CKR_OK);
		memcpy(label, ti.label, 32);
		label[32] = '\0';
		for (int j = 31; j >= 0 && label[j] == ' '; j--)
			label[j] = '\0';
		if (strcmp(label, token) == 0)
			return slots[i];
	}
	fprintf(stderr, "FAIL: no token %s\n", token);
	exit(1);
}

static CK_OBJECT_HANDLE
find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
	                    {CKA_LABEL, (void *)keyname, strlen(keyname)}};
	CK_OBJECT_HANDLE o[4];
	CK_ULONG n = 0;

	CK(F->C_FindObjectsInit(s, t, 2), CKR_OK);
	CK(F->C_FindObjects(s, o, 4, &n), CKR_OK);
	CK(F->C_FindObjectsFinal(s), CKR_OK);
	CHECK(n == 1);
	return o[0];
}

static CK_SESSION_HANDLE
open_session(CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE s;
	CK(F->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
	return s;
}

/* The key's public key, from CKA_PUBLIC_KEY_INFO with the two-call pattern. */
static void
load_pub(CK_SESSION_HANDLE s)
{
	CK_ATTRIBUTE a = {CKA_PUBLIC_KEY_INFO, NULL, 0};
	const unsigned char *p;
	unsigned char *buf;

	CK(F->C_GetAttributeValue(s, find(s, CKO_PUBLIC_KEY), &a, 1), CKR_OK);
	CHECK(a.ulValueLen > 0 && a.ulValueLen < 4096);
	buf = malloc(a.ulValueLen);
	a.pValue = buf;
	CK(F->C_GetAttributeValue(s, find(s, CKO_PUBLIC_KEY), &a, 1), CKR_OK);
	p = buf;
	pub = d2i_PUBKEY(NULL, &p, (long)a.ulValueLen);
	CHECK(pub != NULL);
	free(buf);
}

/* Verify an ECDSA r||s signature of a SHA-256 digest with OpenSSL. */
static int
verify(const unsigned char dg[32], const unsigned char *sig, CK_ULONG len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	unsigned char *der = NULL;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pub, NULL);
	int dlen, ok;

	CHECK(len == 64);
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	dlen = i2d_ECDSA_SIG(es, &der);
	ok = EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_verify(c, der, (size_t)dlen, dg, 32) == 1;
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	EVP_PKEY_CTX_free(c);
	return ok;
}

/* One CKM_ECDSA signature of a random digest, verified; the CK_RV. */
static CK_RV
sign_one(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, int check)
{
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	unsigned char dg[32], sig[64];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	RAND_bytes(dg, sizeof(dg));
	CK(F->C_SignInit(s, &m, priv), CKR_OK);
	if ((rv = F->C_Sign(s, dg, 32, sig, &len)) != CKR_OK)
		return rv;
	if (check && !verify(dg, sig, len)) {
		fprintf(stderr, "FAIL: signature does not verify\n");
		exit(1);
	}
	return CKR_OK;
}

static void
mode_api(void)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv, pubh;
	CK_BBOOL b;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE a[3];
	CK_MECHANISM_INFO mi;
	CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM bad = {CKM_ECDSA, &pss, sizeof(pss)};
	CK_MECHANISM rsa = {CKM_RSA_PKCS, NULL, 0};
	unsigned char dg[32] = {1}, sig[64], small[8];
	char label[8];
	CK_ULONG len, n;
	CK_OBJECT_HANDLE o[8];

	init();
	CK(F->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	slot = find_slot();
	s = open_session(slot);
	priv = find(s, CKO_PRIVATE_KEY);
	pubh = find(s, CKO_PUBLIC_KEY);
	load_pub(s);
	/* CKA_EC_POINT (DER OCTET STRING) is the point of CKA_PUBLIC_KEY_INFO. */
	{
		unsigned char pt[80], spki_pt[80];
		size_t spki_len = 0;
		a[0] = (CK_ATTRIBUTE){CKA_EC_POINT, pt, sizeof(pt)};
		CK(F->C_GetAttributeValue(s, pubh, a, 1), CKR_OK);
		CHECK(EVP_PKEY_get_octet_string_param(pub, "encoded-pub-key", spki_pt,
		                                      sizeof(spki_pt), &spki_len) == 1);
		CHECK(a[0].ulValueLen == spki_len + 2 && pt[0] == 0x04 && pt[1] == spki_len &&
		      memcmp(pt + 2, spki_pt, spki_len) == 0);
	}
	/* Attributes of the private key: sensitive, not extractable. */
	a[0] = (CK_ATTRIBUTE){CKA_SENSITIVE, &b, sizeof(b)};
	CK(F->C_GetAttributeValue(s, priv, a, 1), CKR_OK);
	CHECK(b == CK_TRUE);
	a[0] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &b, sizeof(b)};
	CK(F->C_GetAttributeValue(s, priv, a, 1), CKR_OK);
	CHECK(b == CK_FALSE);
	a[0] = (CK_ATTRIBUTE){CKA_VALUE, sig, sizeof(sig)};
	CK(F->C_GetAttributeValue(s, priv, a, 1), CKR_ATTRIBUTE_SENSITIVE);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* Size query, then a buffer too small: every attribute processed. */
	a[0] = (CK_ATTRIBUTE){CKA_LABEL, NULL, 0};
	a[1] = (CK_ATTRIBUTE){CKA_SIGN, &b, sizeof(b)};
	CK(F->C_GetAttributeValue(s, priv, a, 2), CKR_OK);
	CHECK(a[0].ulValueLen == strlen(keyname) && b == CK_TRUE);
	a[0] = (CK_ATTRIBUTE){CKA_LABEL, label, 1};
	a[1] = (CK_ATTRIBUTE){CKA_ID, NULL, 0};
	CK(F->C_GetAttributeValue(s, priv, a, 2), CKR_BUFFER_TOO_SMALL);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION && a[1].ulValueLen == 32);
	/* An unknown attribute: the others are still filled. */
	a[0] = (CK_ATTRIBUTE){0x7fff0001UL, label, sizeof(label)};
	a[1] = (CK_ATTRIBUTE){CKA_ID, NULL, 0};
	CK(F->C_GetAttributeValue(s, priv, a, 2), CKR_ATTRIBUTE_TYPE_INVALID);
	CHECK(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION && a[1].ulValueLen == 32);
	CK(F->C_GetAttributeValue(s, 0, a, 1), CKR_OBJECT_HANDLE_INVALID);
	CK(F->C_GetAttributeValue(s, 0x7fffff, a, 1), CKR_OBJECT_HANDLE_INVALID);
	/* Templates: class + CKA_SIGN true finds the one private key;
	 * CKA_SIGN false finds nothing; an unknown attribute nothing. */
	b = CK_TRUE;
	a[0] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	a[1] = (CK_ATTRIBUTE){CKA_SIGN, &b, sizeof(b)};
	CK(F->C_FindObjectsInit(s, a, 2), CKR_OK);
	CK(F->C_FindObjectsInit(s, a, 2), CKR_OPERATION_ACTIVE);
	CK(F->C_FindObjects(s, o, 8, &n), CKR_OK);
	CHECK(n == 1 && o[0] == priv);
	CK(F->C_FindObjectsFinal(s), CKR_OK);
	b = CK_FALSE;
	CK(F->C_FindObjectsInit(s, a, 2), CKR_OK);
	CK(F->C_FindObjects(s, o, 8, &n), CKR_OK);
	CHECK(n == 0);
	CK(F->C_FindObjectsFinal(s), CKR_OK);
	CK(F->C_FindObjects(s, o, 8, &n), CKR_OPERATION_NOT_INITIALIZED);
	/* Mechanisms. */
	CK(F->C_GetMechanismInfo(slot, CKM_ECDSA, &mi), CKR_OK);
	CHECK((mi.flags & CKF_SIGN) && mi.ulMinKeySize == 256);
	CK(F->C_GetMechanismInfo(slot, CKM_SHA_1, &mi), CKR_MECHANISM_INVALID);
	CK(F->C_SignInit(s, &bad, priv), CKR_MECHANISM_PARAM_INVALID);
	CK(F->C_SignInit(s, &rsa, priv), CKR_MECHANISM_INVALID);
	CK(F->C_SignInit(s, &m, pubh), CKR_KEY_FUNCTION_NOT_PERMITTED);
	CK(F->C_Sign(s, dg, 32, sig, &len), CKR_OPERATION_NOT_INITIALIZED);
	/* Length query and CKR_BUFFER_TOO_SMALL keep the operation. */
	CK(F->C_SignInit(s, &m, priv), CKR_OK);
	CK(F->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
	len = 0;
	CK(F->C_Sign(s, dg, 32, NULL, &len), CKR_OK);
	CHECK(len == 64);
	len = sizeof(small);
	CK(F->C_Sign(s, dg, 32, small, &len), CKR_BUFFER_TOO_SMALL);
	CHECK(len == 64);
	CK(F->C_Sign(s, dg, 32, sig, &len), CKR_OK);
	CHECK(verify(dg, sig, len));
	/* Not a SHA-256 digest: refused before anything is sent. */
	CK(F->C_SignInit(s, &m, priv), CKR_OK);
	len = sizeof(sig);
	CK(F->C_Sign(s, dg, 20, sig, &len), CKR_DATA_LEN_RANGE);
	/* Multi-part ECDSA-SHA256: hashed locally. */
	{
		CK_MECHANISM mh = {CKM_ECDSA_SHA256, NULL, 0};
		unsigned char msg[100], d2[32];
		memset(msg, 'x', sizeof(msg));
		EVP_Digest(msg, sizeof(msg), d2, NULL, EVP_sha256(), NULL);
		CK(F->C_SignInit(s, &mh, priv), CKR_OK);
		CK(F->C_SignUpdate(s, msg, 60), CKR_OK);
		CK(F->C_SignUpdate(s, msg + 60, 40), CKR_OK);
		len = sizeof(sig);
		CK(F->C_SignFinal(s, sig, &len), CKR_OK);
		CHECK(verify(d2, sig, len));
	}
	/* Login is accepted (no PIN: the identity key authenticates). */
	CK(F->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "x", 1), CKR_OK);
	CK(F->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "x", 1), CKR_USER_ALREADY_LOGGED_IN);
	CK(F->C_Logout(s), CKR_OK);
	CK(F->C_CloseSession(s), CKR_OK);
	CK(F->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
	CK(F->C_Finalize(NULL), CKR_OK);
	CK(F->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	EVP_PKEY_free(pub);
	printf("ok: api\n");
}

struct worker {
	CK_SLOT_ID slot;
	int per, check;
	double secs; /* bench: sign for that long after the start barrier (per = 0) */
	pthread_barrier_t *start;
	long done;
	int failed;
};

static double now_s(void);

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	CK_SESSION_HANDLE s = open_session(w->slot);
	CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY);

	double until = 0;

	if (w->start != NULL) {
		/* Untimed set-up, as for the ipc rows: the connection is made
		 * and authenticated by a first, verified signature. */
		if (sign_one(s, priv, 1) != CKR_OK)
			w->failed++;
		pthread_barrier_wait(w->start);
		until = now_s() + w->secs;
	}
	for (int i = 0; w->per > 0 ? i < w->per : now_s() < until; i++) {
		if (sign_one(s, priv, w->check) != CKR_OK)
			w->failed++;
		w->done++;
	}
	CK(F->C_CloseSession(s), CKR_OK);
	return NULL;
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
mode_threads(int n, int per, double secs, const char *what)
{
	pthread_t th[64];
	struct worker w[64];
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	double t0;
	long done = 0;
	int failed = 0;
	pthread_barrier_t start;

	CHECK(n > 0 && n <= 64 && (per > 0 || secs > 0));
	init();
	slot = find_slot();
	s = open_session(slot);
	load_pub(s);
	if (per == 0)
		pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){.slot = slot,
		                       .per = per,
		                       .check = per > 0,
		                       .secs = secs,
		                       .start = per == 0 ? &start : NULL};
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	if (per == 0) {
		pthread_barrier_wait(&start);
		t0 = now_s();
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		failed += w[i].failed;
		done += w[i].done;
	}
	t0 = now_s() - t0;
	if (per == 0)
		pthread_barrier_destroy(&start);
	CK(F->C_CloseSession(s), CKR_OK);
	CK(F->C_Finalize(NULL), CKR_OK);
	EVP_PKEY_free(pub);
	CHECK(failed == 0 && done > 0);
	if (per == 0)
		printf("pkcs11 %d %ld %.3f %.1f\n", n, done, t0, done / t0);
	else
		printf("ok: %s: %d threads x %d signatures in %.2f s: %.0f/s\n", what, n, per, t0,
		       done / t0);
}

static void
mode_fork(void)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	CK_ULONG n;
	pid_t pid;
	int st;

	init();
	slot = find_slot();
	s = open_session(slot);
	load_pub(s);
	CK(sign_one(s, find(s, CKO_PRIVATE_KEY), 1), CKR_OK);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		/* The parent's state is gone for the child: initialise again. */
		CK(F->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
		init();
		slot = find_slot();
		s = open_session(slot);
		CK(sign_one(s, find(s, CKO_PRIVATE_KEY), 1), CKR_OK);
		CK(F->C_Finalize(NULL), CKR_OK);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent goes on with its own session. */
	CK(sign_one(s, find(s, CKO_PRIVATE_KEY), 1), CKR_OK);
	CK(F->C_Finalize(NULL), CKR_OK);
	EVP_PKEY_free(pub);
	printf("ok: fork\n");
}

static void
mode_refused(void)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE priv;

	init();
	slot = find_slot();
	s = open_session(slot);
	load_pub(s);
	priv = find(s, CKO_PRIVATE_KEY);
	CK(sign_one(s, priv, 1), CKR_OK);
	CK(sign_one(s, priv, 1), CKR_FUNCTION_REJECTED);
	/* The session is usable afterwards (the operation ended). */
	CK(F->C_Finalize(NULL), CKR_OK);
	EVP_PKEY_free(pub);
	printf("ok: refused\n");
}

int
main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: p11_client MODULE api|threads|fork|refused|bench TOKEN KEY "
		                "[N PER]\n");
		return 2;
	}
	load(argv[1]);
	token = argv[3];
	keyname = argv[4];
	if (strcmp(argv[2], "api") == 0)
		mode_api();
	else if (strcmp(argv[2], "threads") == 0 && argc == 7)
		mode_threads(atoi(argv[5]), atoi(argv[6]), 0, "threads");
	else if (strcmp(argv[2], "bench") == 0 && argc == 7)
		mode_threads(atoi(argv[5]), 0, atof(argv[6]), "bench");
	else if (strcmp(argv[2], "fork") == 0)
		mode_fork();
	else if (strcmp(argv[2], "refused") == 0)
		mode_refused();
	else
		return 2;
	return 0;
}
