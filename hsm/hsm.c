/*
 * hsm.c - PKCS#11 modules, tokens, the session pool, keys, signing and
 * recovery. Raw PKCS#11 through p11-kit's header; URIs through p11-kit's
 * parser only. See hsm.h for the contract and README.md for the model.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "hsm.h"
#include "hsm_internal.h"
#include "qs_err.h"

/* GetSlotList/GetTokenInfo attempts at open: a file-backed SoftHSM token
 * opened by several processes at once sometimes answers CKR_GENERAL_ERROR. */
#define OPEN_RETRIES 5
#define OPEN_RETRY_MS 20
#define FIND_BATCH 32
#define KEY_ID_RANDOM_LEN 16
#define P256_SIG_LEN 64
#define P384_SIG_LEN 96
#define ED25519_SIG_LEN 64
#define RSA3072_SIG_LEN 384
#define RSA2048_SIG_LEN 256
#define RSA4096_SIG_LEN 512
#define DIGEST_MAX 64
#define DIGESTINFO_PREFIX_LEN 19

/* The digests a digest-signing key signs, told apart by their length: the
 * DER DigestInfo up to the digest (RFC 8017 9.2 note 1; CKM_RSA_PKCS signs
 * it with the digest appended) and the PSS parameters (MGF1 with the same
 * hash, salt as long as the digest). The prefixes are RFC 8017's constants:
 * OpenSSL exposes them only inside its RSA code. */
static const struct hsm_digest {
	size_t len;
	uint8_t prefix[DIGESTINFO_PREFIX_LEN];
	CK_MECHANISM_TYPE hash;
	CK_RSA_PKCS_MGF_TYPE mgf;
} digests[] = {
        {32,
         {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
          0x05, 0x00, 0x04, 0x20},
         CKM_SHA256,
         CKG_MGF1_SHA256},
        {48,
         {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
          0x05, 0x00, 0x04, 0x30},
         CKM_SHA384,
         CKG_MGF1_SHA384},
        {64,
         {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
          0x05, 0x00, 0x04, 0x40},
         CKM_SHA512,
         CKG_MGF1_SHA512},
};

/* The digest of that length, or NULL. */
static const struct hsm_digest *
digest_of_len(size_t len)
{
	for (size_t i = 0; i < sizeof(digests) / sizeof(digests[0]); i++)
		if (digests[i].len == len)
			return &digests[i];
	return NULL;
}

const uint8_t *
hsm_digestinfo_prefix(size_t digest_len, size_t *prefix_len)
{
	const struct hsm_digest *d = digest_of_len(digest_len);

	*prefix_len = d != NULL ? DIGESTINFO_PREFIX_LEN : 0;
	return d != NULL ? d->prefix : NULL;
}

/* DER of the named curves we create and recognise. */
static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}; /* secp384r1 */
static const uint8_t oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
/* PrintableString "edwards25519", the form PKCS#11 3.0 also allows. */
static const uint8_t str_ed25519[] = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                      'd',  's',  '2', '5', '5', '1', '9'};

/* ---- CK_RV names ---------------------------------------------------- */

static const char *
rv_name(CK_RV rv)
{
	static _Thread_local char other[32];

	switch (rv) {
#define N(x)                                                                                       \
	case x:                                                                                    \
		return #x;
		N(CKR_OK)
		N(CKR_CANCEL)
		N(CKR_HOST_MEMORY)
		N(CKR_SLOT_ID_INVALID)
		N(CKR_GENERAL_ERROR)
		N(CKR_FUNCTION_FAILED)
		N(CKR_ARGUMENTS_BAD)
		N(CKR_ATTRIBUTE_SENSITIVE)
		N(CKR_ATTRIBUTE_TYPE_INVALID)
		N(CKR_ATTRIBUTE_VALUE_INVALID)
		N(CKR_DATA_INVALID)
		N(CKR_DATA_LEN_RANGE)
		N(CKR_DEVICE_ERROR)
		N(CKR_DEVICE_MEMORY)
		N(CKR_DEVICE_REMOVED)
		N(CKR_FUNCTION_CANCELED)
		N(CKR_FUNCTION_NOT_SUPPORTED)
		N(CKR_KEY_HANDLE_INVALID)
		N(CKR_KEY_SIZE_RANGE)
		N(CKR_KEY_TYPE_INCONSISTENT)
		N(CKR_KEY_FUNCTION_NOT_PERMITTED)
		N(CKR_MECHANISM_INVALID)
		N(CKR_MECHANISM_PARAM_INVALID)
		N(CKR_OBJECT_HANDLE_INVALID)
		N(CKR_OPERATION_ACTIVE)
		N(CKR_OPERATION_NOT_INITIALIZED)
		N(CKR_PIN_INCORRECT)
		N(CKR_PIN_INVALID)
		N(CKR_PIN_LEN_RANGE)
		N(CKR_PIN_EXPIRED)
		N(CKR_PIN_LOCKED)
		N(CKR_SESSION_CLOSED)
		N(CKR_SESSION_COUNT)
		N(CKR_SESSION_HANDLE_INVALID)
		N(CKR_SESSION_READ_ONLY)
		N(CKR_SESSION_EXISTS)
		N(CKR_SESSION_READ_WRITE_SO_EXISTS)
		N(CKR_TEMPLATE_INCOMPLETE)
		N(CKR_TEMPLATE_INCONSISTENT)
		N(CKR_TOKEN_NOT_PRESENT)
		N(CKR_TOKEN_NOT_RECOGNIZED)
		N(CKR_TOKEN_WRITE_PROTECTED)
		N(CKR_USER_ALREADY_LOGGED_IN)
		N(CKR_USER_NOT_LOGGED_IN)
		N(CKR_USER_PIN_NOT_INITIALIZED)
		N(CKR_USER_TYPE_INVALID)
		N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
		N(CKR_USER_TOO_MANY_TYPES)
		N(CKR_DOMAIN_PARAMS_INVALID)
		N(CKR_CURVE_NOT_SUPPORTED)
		N(CKR_BUFFER_TOO_SMALL)
		N(CKR_CRYPTOKI_NOT_INITIALIZED)
		N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
		N(CKR_NEED_TO_CREATE_THREADS)
		N(CKR_CANT_LOCK)
#undef N
	}
	snprintf(other, sizeof(other), "CKR_0x%08lx", (unsigned long)rv);
	return other;
}

/* Errors after which the session (or the whole module) is gone and a
 * reconnect may help. */
static bool
rv_recoverable(CK_RV rv)
{
	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_REMOVED:
	case CKR_DEVICE_ERROR:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_GENERAL_ERROR:
		return true;
	default:
		return false;
	}
}

/* Record a failed PKCS#11 call as our error code, keeping the CK_RV name. */
static int
rv_fail(const char *call, CK_RV rv)
{
	int err;

	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_EXPIRED:
	case CKR_PIN_LOCKED:
		err = QS_ERR_PIN;
		break;
	case CKR_HOST_MEMORY:
		err = QS_ERR_NOMEM;
		break;
	case CKR_MECHANISM_INVALID:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_FUNCTION_NOT_SUPPORTED:
		err = QS_ERR_UNIMPLEMENTED;
		break;
	default:
		err = rv_recoverable(rv) ? QS_ERR_UNAVAILABLE : QS_ERR_PKCS11;
		break;
	}
	return qs_fail(err, "%s: %s", call, rv_name(rv));
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- modules: one dlopen and one C_Initialize per path per process ---- */

struct module {
	struct module *next;
	char *path;
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	unsigned users;   /* open hsm_tokens using it */
	bool initialized; /* C_Initialize succeeded or found it initialised */
	bool owned;       /* our C_Initialize: C_Finalize is ours to call */
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module *modules;

/* NULL args make SoftHSM use no locking at all; it then crashes with two
 * threads. OS locking is what every module supports. */
static CK_RV
module_c_initialize(struct module *m)
{
	CK_C_INITIALIZE_ARGS args;

	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	return m->f->C_Initialize(&args);
}

/* Caller holds modules_lock. */
static int
module_initialize(struct module *m)
{
	CK_RV rv;

	rv = module_c_initialize(m);
	if (rv == CKR_OK) {
		m->owned = true;
	} else if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		/* Someone else in this process owns it; they finalize it. */
		m->owned = false;
	} else {
		return rv_fail("C_Initialize", rv);
	}
	m->initialized = true;
	return 0;
}

static int
module_get(const char *path, struct module **out)
{
	struct module *m = NULL;
	CK_C_GetFunctionList gfl;
	CK_RV rv;
	bool created = false;
	int r;

	*out = NULL;
	pthread_mutex_lock(&modules_lock);
	for (m = modules; m != NULL; m = m->next)
		if (strcmp(m->path, path) == 0)
			break;
	if (m == NULL) {
		if ((m = calloc(1, sizeof(*m))) == NULL || (m->path = strdup(path)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "module entry");
			goto out;
		}
		created = true;
		if ((m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
			r = qs_fail(QS_ERR_NOT_FOUND, "dlopen %s: %s", path, dlerror());
			goto out;
		}
		*(void **)(&gfl) = dlsym(m->dl, "C_GetFunctionList");
		if (gfl == NULL) {
			r = qs_fail(QS_ERR_PKCS11, "%s: no C_GetFunctionList", path);
			goto out;
		}
		if ((rv = gfl(&m->f)) != CKR_OK) {
			r = rv_fail("C_GetFunctionList", rv);
			goto out;
		}
	}
	if (!m->initialized && (r = module_initialize(m)) != 0)
		goto out;
	if (created) {
		m->next = modules;
		modules = m;
		created = false;
	}
	m->users++;
	*out = m;
	r = 0;
out:
	if (created) {
		if (m->dl != NULL)
			dlclose(m->dl);
		free(m->path);
		free(m);
	}
	pthread_mutex_unlock(&modules_lock);
	return r;
}

static void
module_put(struct module *m)
{
	pthread_mutex_lock(&modules_lock);
	if (--m->users == 0 && m->initialized) {
		if (m->owned)
			(void)m->f->C_Finalize(NULL);
		m->initialized = false;
		m->owned = false;
	}
	/* The library stays mapped: modules register atexit handlers and
	 * OpenSSL state that crash at exit once unmapped, and a later
	 * hsm_open of the same path reuses the mapping. */
	pthread_mutex_unlock(&modules_lock);
}

/* Re-initialise after the module lost its state (restart, C_Finalize
 * behind our back) or the slot vanished. `force` finalizes even if the
 * module still answers, so that it rescans its slots. Another hsm_token on
 * the same module then sees its sessions invalid and recovers in turn. */
static int
module_reinit(struct module *m, bool force)
{
	CK_INFO info;
	CK_RV rv;
	int r;

	pthread_mutex_lock(&modules_lock);
	rv = m->f->C_GetInfo(&info);
	if (rv == CKR_OK && !force) {
		r = 0;
		goto out;
	}
	if (rv == CKR_OK)
		(void)m->f->C_Finalize(NULL);
	m->initialized = false;
	if ((r = module_initialize(m)) != 0)
		goto out;
	/* Whoever initialised it first has lost it: we own it now. */
	m->owned = true;
	r = 0;
out:
	pthread_mutex_unlock(&modules_lock);
	return r;
}

/* ---- tokens and slots ------------------------------------------------ */

struct hsm_token {
	struct module *mod;
	CK_FUNCTION_LIST_PTR f;
	P11KitUri *uri; /* token part of the URI, to find the slot again */
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char label[sizeof(((CK_TOKEN_INFO *)0)->label) + 1];
	struct hsm_pin pin; /* kept for re-login after recovery only */

	/* Token-wide: C_OpenSession, C_Login, C_FindObjects*, keygen and
	 * recovery run one at a time (tpm2-pkcs11 breaks otherwise). */
	pthread_mutex_t setup;

	/* The pool. Lock order: setup before pool. */
	pthread_mutex_t pool;
	pthread_cond_t pool_cv;
	CK_SESSION_HANDLE free_list[HSM_POOL_MAX];
	unsigned nfree;
	unsigned nopen;      /* pooled + borrowed */
	unsigned generation; /* bumped by every recovery */
	unsigned reconnects;
};

struct hsm_key {
	const hsm_token *t;
	enum hsm_keytype type;
	char label[HSM_LABEL_MAX + 1];
	uint8_t id[HSM_ID_MAX];
	size_t id_len;

	/* Object handles are per module instance: after a recovery they are
	 * looked up again. The cache is guarded by its own lock so that
	 * signers sharing one key need no token-wide lock. */
	pthread_mutex_t lock;
	unsigned gen;
	bool stale; /* the module called a cached handle invalid */
	CK_OBJECT_HANDLE priv, pub;

	/* SHA-256 of the SPKI seen when the key was found or made: a later
	 * lookup (after a recovery, or of stale handles) must find the same
	 * public key, not another key put under the same label and id. */
	uint8_t fp[SHA256_DIGEST_LENGTH];
	bool have_fp;
};

/* A borrowed session and the generation it belongs to. */
struct sess {
	CK_SESSION_HANDLE h;
	unsigned gen;
};

static void
trim_copy(char *dst, const unsigned char *src, size_t n)
{
	while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0'))
		n--;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static CK_RV
get_token_info(CK_FUNCTION_LIST_PTR f, CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
	CK_RV rv = CKR_OK;

	for (unsigned i = 0; i < OPEN_RETRIES; i++) {
		if ((rv = f->C_GetTokenInfo(slot, info)) != CKR_GENERAL_ERROR)
			break;
		sleep_ms(OPEN_RETRY_MS << i);
	}
	return rv;
}

static int
slot_list(CK_FUNCTION_LIST_PTR f, CK_SLOT_ID **out, CK_ULONG *n)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG count = 0;
	CK_RV rv = CKR_OK;
	int r;

	*out = NULL;
	*n = 0;
	for (unsigned i = 0; i < OPEN_RETRIES; i++) {
		free(slots);
		slots = NULL;
		if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &count)) == CKR_OK) {
			/* One spare entry so a slot appearing in between is no error. */
			if ((slots = calloc(count + 1, sizeof(*slots))) == NULL) {
				r = qs_fail(QS_ERR_NOMEM, "slot list");
				goto out;
			}
			count++;
			if ((rv = f->C_GetSlotList(CK_TRUE, slots, &count)) == CKR_OK)
				break;
		}
		if (rv != CKR_GENERAL_ERROR && rv != CKR_BUFFER_TOO_SMALL)
			break;
		sleep_ms(OPEN_RETRY_MS << i);
	}
	if (rv != CKR_OK) {
		r = rv_fail("C_GetSlotList", rv);
		goto out;
	}
	*out = slots;
	*n = count;
	slots = NULL;
	r = 0;
out:
	free(slots);
	return r;
}

/*
 * Find the one initialised token that `uri` selects. With `serial` set
 * (recovery), only the token we had before qualifies: a loose URI must
 * not make us switch to another token after a restart.
 */
static int
find_slot(CK_FUNCTION_LIST_PTR f, P11KitUri *uri, const unsigned char *serial, CK_SLOT_ID *slot,
          CK_TOKEN_INFO *info)
{
	CK_SLOT_ID *slots = NULL, want_slot = p11_kit_uri_get_slot_id(uri);
	CK_ULONG n = 0;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	CK_INFO mi;
	CK_RV rv;
	unsigned matches = 0;
	int r;

	if ((rv = f->C_GetInfo(&mi)) != CKR_OK) {
		r = rv_fail("C_GetInfo", rv);
		goto out;
	}
	if (!p11_kit_uri_match_module_info(uri, &mi)) {
		r = qs_fail(QS_ERR_NOT_FOUND, "module does not match the URI's library attributes");
		goto out;
	}
	if ((r = slot_list(f, &slots, &n)) != 0)
		goto out;
	for (CK_ULONG i = 0; i < n; i++) {
		if (want_slot != (CK_SLOT_ID)-1 && slots[i] != want_slot)
			continue;
		if ((rv = f->C_GetSlotInfo(slots[i], &si)) != CKR_OK ||
		    !p11_kit_uri_match_slot_info(uri, &si))
			continue;
		if ((rv = get_token_info(f, slots[i], &ti)) != CKR_OK) {
			if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED)
				continue;
			r = rv_fail("C_GetTokenInfo", rv);
			goto out;
		}
		if (!(ti.flags & CKF_TOKEN_INITIALIZED) || !p11_kit_uri_match_token_info(uri, &ti))
			continue;
		if (serial != NULL && memcmp(serial, ti.serialNumber, sizeof(ti.serialNumber)))
			continue;
		if (matches++ == 0) {
			*slot = slots[i];
			*info = ti;
		}
	}
	if (matches == 0) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no initialised token matches the URI");
		goto out;
	}
	if (matches > 1) {
		r = qs_fail(QS_ERR_INVALID,
		            "the URI matches %u tokens; add token= or serial=", matches);
		goto out;
	}
	r = 0;
out:
	free(slots);
	return r;
}

static int
uri_parse(const char *s, P11KitUri **out)
{
	P11KitUri *uri;
	int ur;

	*out = NULL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "p11_kit_uri_new");
	if ((ur = p11_kit_uri_parse(s, P11_KIT_URI_FOR_ANY, uri)) != P11_KIT_URI_OK) {
		p11_kit_uri_free(uri);
		return qs_fail(QS_ERR_INVALID, "PKCS#11 URI: %s", p11_kit_uri_message(ur));
	}
	/* p11-kit's matchers silently match nothing when an attribute was not
	 * understood; say so instead of "not found". */
	if (p11_kit_uri_any_unrecognized(uri)) {
		p11_kit_uri_free(uri);
		return qs_fail(QS_ERR_INVALID, "PKCS#11 URI: unrecognised attribute");
	}
	/* A PIN in a URI ends up in argv, logs and shell history. */
	if (p11_kit_uri_get_pin_value(uri) != NULL) {
		p11_kit_uri_free(uri);
		return qs_fail(QS_ERR_INVALID, "PKCS#11 URI: pin-value is refused; use a PIN file");
	}
	*out = uri;
	return 0;
}

/* ---- sessions -------------------------------------------------------- */

/* Caller holds t->setup. Opens a R/W session (keygen needs one; tokens
 * cost the same either way) and logs the application in if it is not. */
static int
session_open(hsm_token *t, CK_SESSION_HANDLE *out, CK_RV *rvp)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	CK_SESSION_INFO si;
	CK_RV rv;
	int r;

	*out = CK_INVALID_HANDLE;
	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK) {
		*rvp = rv;
		r = rv_fail("C_OpenSession", rv);
		goto out;
	}
	if (t->pin.buf != NULL) {
		if ((rv = t->f->C_GetSessionInfo(h, &si)) != CKR_OK) {
			*rvp = rv;
			r = rv_fail("C_GetSessionInfo", rv);
			goto out;
		}
		/* Login is per application on most tokens: once per module
		 * instance, not per session. */
		if (si.state == CKS_RO_PUBLIC_SESSION || si.state == CKS_RW_PUBLIC_SESSION) {
			rv = t->f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)t->pin.buf,
			                   (CK_ULONG)t->pin.len);
			if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
				*rvp = rv;
				r = rv_fail("C_Login", rv);
				goto out;
			}
		}
	}
	*out = h;
	h = CK_INVALID_HANDLE;
	r = 0;
out:
	if (h != CK_INVALID_HANDLE)
		(void)t->f->C_CloseSession(h);
	return r;
}

static int
sess_get(hsm_token *t, struct sess *s, CK_RV *rvp)
{
	CK_SESSION_HANDLE h;
	int r;

	pthread_mutex_lock(&t->pool);
	while (t->nfree == 0 && t->nopen >= HSM_POOL_MAX)
		pthread_cond_wait(&t->pool_cv, &t->pool);
	s->gen = t->generation;
	if (t->nfree > 0) {
		s->h = t->free_list[--t->nfree];
		pthread_mutex_unlock(&t->pool);
		return 0;
	}
	t->nopen++;
	pthread_mutex_unlock(&t->pool);

	pthread_mutex_lock(&t->setup);
	r = session_open(t, &h, rvp);
	pthread_mutex_lock(&t->pool);
	/* Read under setup: a recovery cannot slip in between open and tag. */
	if (r == 0) {
		s->h = h;
		s->gen = t->generation;
	} else {
		t->nopen--;
		pthread_cond_signal(&t->pool_cv);
	}
	pthread_mutex_unlock(&t->pool);
	pthread_mutex_unlock(&t->setup);
	return r;
}

/* Return a session. A session of an older generation was closed by the
 * recovery's C_CloseAllSessions and its handle number may already belong
 * to a new session: forget it, never C_CloseSession it. */
static void
sess_put(hsm_token *t, struct sess *s, bool reuse)
{
	bool close = false;

	pthread_mutex_lock(&t->pool);
	if (s->gen == t->generation && reuse && t->nfree < HSM_POOL_MAX) {
		t->free_list[t->nfree++] = s->h;
	} else {
		close = s->gen == t->generation;
		t->nopen--;
	}
	pthread_cond_signal(&t->pool_cv);
	pthread_mutex_unlock(&t->pool);
	if (close)
		(void)t->f->C_CloseSession(s->h);
}

/*
 * Bring the token back after a call failed with `rv` on a session of
 * generation `gen`. If another thread recovered meanwhile, just retry.
 */
static int
recover(hsm_token *t, unsigned gen, CK_RV rv)
{
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE h;
	CK_RV rv2 = CKR_OK;
	bool reinit;
	int r;

	pthread_mutex_lock(&t->setup);
	pthread_mutex_lock(&t->pool);
	if (t->generation != gen) {
		pthread_mutex_unlock(&t->pool);
		r = 0;
		goto out;
	}
	/* Every session of this generation is dead: pooled ones are dropped
	 * here, borrowed ones when they come back (sess_put). */
	t->nopen -= t->nfree;
	t->nfree = 0;
	t->generation++;
	pthread_mutex_unlock(&t->pool);

	(void)t->f->C_CloseAllSessions(t->slot);
	/* A lost module, or an error from the device itself: the module's own
	 * state (its connection to the device) is suspect, start it afresh. */
	reinit = rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_SESSION_CLOSED &&
	         rv != CKR_USER_NOT_LOGGED_IN;
	if (!reinit) {
		/* The slot is gone, or holds another token: rescan. */
		rv2 = t->f->C_GetTokenInfo(t->slot, &ti);
		reinit = rv2 != CKR_OK ||
		         memcmp(ti.serialNumber, t->info.serialNumber, sizeof(ti.serialNumber));
	}
	/* Log in again now, so that a wrong or changed PIN shows here. If
	 * that fails on a module we kept, escalate to a re-initialisation. */
	if (!reinit && session_open(t, &h, &rv2) != 0)
		reinit = true;
	if (reinit) {
		if ((r = module_reinit(t->mod, rv != CKR_CRYPTOKI_NOT_INITIALIZED)) != 0)
			goto out;
		if ((r = find_slot(t->f, t->uri, t->info.serialNumber, &t->slot, &ti)) != 0)
			goto out;
		if ((r = session_open(t, &h, &rv2)) != 0)
			goto out;
	}
	pthread_mutex_lock(&t->pool);
	t->free_list[t->nfree++] = h;
	t->nopen++;
	t->reconnects++;
	pthread_mutex_unlock(&t->pool);
	r = 0;
out:
	pthread_mutex_unlock(&t->setup);
	if (r != 0) {
		/* qs_fail formats into the detail buffer: copy the cause first */
		char cause[QS_ERRDETAIL_MAX];

		snprintf(cause, sizeof(cause), "%s", qs_errdetail());
		r = qs_fail(QS_ERR_UNAVAILABLE, "token recovery after %s failed: %.300s",
		            rv_name(rv), cause);
	}
	return r;
}

typedef int (*hsm_op)(hsm_token *t, struct sess *s, void *arg, CK_RV *rv);

/* Run op on a borrowed session; on an error that means "session or
 * device gone", recover and run it once more. */
static int
run_op(hsm_token *t, hsm_op op, void *arg)
{
	struct sess s;
	CK_RV rv;
	int r = 0, r2;

	for (int attempt = 0; attempt < 2; attempt++) {
		rv = CKR_OK;
		if ((r = sess_get(t, &s, &rv)) == 0) {
			r = op(t, &s, arg, &rv);
			/* A session that saw a PKCS#11 error may hold an
			 * active operation: do not hand it to the next user. */
			sess_put(t, &s, r == 0 || rv == CKR_OK);
		}
		if (r == 0 || !rv_recoverable(rv) || attempt > 0)
			break;
		if ((r2 = recover(t, s.gen, rv)) != 0)
			return r2;
	}
	return r;
}

/* ---- open / close ----------------------------------------------------- */

int
hsm_open(const char *module_path, const char *uri_str, const char *pin_source, hsm_token **out)
{
	hsm_token *t = NULL;
	const char *src;
	struct sess s;
	CK_RV rv = CKR_OK;
	bool locks = false;
	int r;

	*out = NULL;
	if (module_path == NULL || uri_str == NULL) {
		r = qs_fail(QS_ERR_INVALID, "hsm_open: module and URI are required");
		goto out;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "hsm_token");
		goto out;
	}
	if ((r = uri_parse(uri_str, &t->uri)) != 0)
		goto out;
	src = pin_source != NULL ? pin_source : p11_kit_uri_get_pin_source(t->uri);
	if (src != NULL && (r = hsm_pin_load(src, &t->pin)) != 0)
		goto out;
	if ((r = module_get(module_path, &t->mod)) != 0)
		goto out;
	t->f = t->mod->f;
	if ((r = find_slot(t->f, t->uri, NULL, &t->slot, &t->info)) != 0)
		goto out;
	trim_copy(t->label, t->info.label, sizeof(t->info.label));
	pthread_mutex_init(&t->setup, NULL);
	pthread_mutex_init(&t->pool, NULL);
	pthread_cond_init(&t->pool_cv, NULL);
	locks = true;
	/* Log in now: a wrong PIN must fail the open, not the first signature. */
	if ((r = sess_get(t, &s, &rv)) != 0)
		goto out;
	sess_put(t, &s, true);
	*out = t;
	t = NULL;
	r = 0;
out:
	if (t != NULL) {
		if (locks) {
			pthread_mutex_lock(&t->pool);
			t->nfree = 0;
			pthread_mutex_unlock(&t->pool);
			pthread_mutex_destroy(&t->setup);
			pthread_mutex_destroy(&t->pool);
			pthread_cond_destroy(&t->pool_cv);
		}
		if (t->mod != NULL)
			module_put(t->mod);
		hsm_pin_wipe(&t->pin);
		if (t->uri != NULL)
			p11_kit_uri_free(t->uri);
		free(t);
	}
	return r;
}

void
hsm_close(hsm_token *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->pool);
	for (unsigned i = 0; i < t->nfree; i++)
		(void)t->f->C_CloseSession(t->free_list[i]);
	t->nopen -= t->nfree;
	t->nfree = 0;
	pthread_mutex_unlock(&t->pool);
	module_put(t->mod);
	hsm_pin_wipe(&t->pin);
	p11_kit_uri_free(t->uri);
	pthread_mutex_destroy(&t->setup);
	pthread_mutex_destroy(&t->pool);
	pthread_cond_destroy(&t->pool_cv);
	free(t);
}

const char *
hsm_token_label(const hsm_token *t)
{
	return t->label;
}

int
hsm_token_matches(const hsm_token *t, const char *uri_str)
{
	P11KitUri *uri = NULL;
	int m;

	if (uri_str == NULL || uri_parse(uri_str, &uri) != 0)
		return 0;
	m = p11_kit_uri_match_token_info(uri, &t->info) ? 1 : 0;
	p11_kit_uri_free(uri);
	return m;
}

void
hsm_stats(const hsm_token *t, unsigned *sessions, unsigned *reconnects)
{
	hsm_token *mt = (hsm_token *)t; /* the lock is not part of the value */

	pthread_mutex_lock(&mt->pool);
	if (sessions != NULL)
		*sessions = t->nopen;
	if (reconnects != NULL)
		*reconnects = t->reconnects;
	pthread_mutex_unlock(&mt->pool);
}

void
hsm_debug_finalize(hsm_token *t)
{
	pthread_mutex_lock(&modules_lock);
	(void)t->f->C_Finalize(NULL);
	pthread_mutex_unlock(&modules_lock);
}

/* ---- key types -------------------------------------------------------- */

const char *
hsm_keytype_name(enum hsm_keytype type)
{
	switch (type) {
	case HSM_KEY_EC_P256:
		return "ecdsa-p256";
	case HSM_KEY_EC_P384:
		return "ecdsa-p384";
	case HSM_KEY_ED25519:
		return "ed25519";
	case HSM_KEY_RSA3072:
		return "rsa3072";
	case HSM_KEY_RSA2048_PKCS1:
		return "rsa2048-pkcs1";
	case HSM_KEY_RSA3072_PKCS1:
		return "rsa3072-pkcs1";
	case HSM_KEY_RSA4096_PKCS1:
		return "rsa4096-pkcs1";
	case HSM_KEY_NONE:
		break;
	}
	return NULL;
}

int
hsm_keytype_is_rsa(enum hsm_keytype t)
{
	return t == HSM_KEY_RSA3072 || t == HSM_KEY_RSA2048_PKCS1 || t == HSM_KEY_RSA3072_PKCS1 ||
	       t == HSM_KEY_RSA4096_PKCS1;
}

int
hsm_keytype_is_pkcs1(enum hsm_keytype t)
{
	return t == HSM_KEY_RSA2048_PKCS1 || t == HSM_KEY_RSA3072_PKCS1 ||
	       t == HSM_KEY_RSA4096_PKCS1;
}

const char *
hsm_keytype_names(void)
{
	return "ecdsa-p256, ecdsa-p384, ed25519, rsa3072, rsa2048-pkcs1, rsa3072-pkcs1 or "
	       "rsa4096-pkcs1";
}

int
hsm_keytype_is_ecdsa(enum hsm_keytype t)
{
	return t == HSM_KEY_EC_P256 || t == HSM_KEY_EC_P384;
}

int
hsm_keytype_signs_digest(enum hsm_keytype t)
{
	return hsm_keytype_is_ecdsa(t) || hsm_keytype_is_rsa(t);
}

/* Raw r||s bytes of an ECDSA type (0 for the others). */
static size_t
ecdsa_len(enum hsm_keytype t)
{
	return t == HSM_KEY_EC_P256 ? P256_SIG_LEN : t == HSM_KEY_EC_P384 ? P384_SIG_LEN : 0;
}

/* Modulus bytes of an RSA type (0 for the others). */
static size_t
rsa_len(enum hsm_keytype t)
{
	switch (t) {
	case HSM_KEY_RSA2048_PKCS1:
		return RSA2048_SIG_LEN;
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA3072_PKCS1:
		return RSA3072_SIG_LEN;
	case HSM_KEY_RSA4096_PKCS1:
		return RSA4096_SIG_LEN;
	default:
		return 0;
	}
}

enum hsm_keytype
hsm_keytype_parse(const char *s)
{
	if (s == NULL)
		return HSM_KEY_NONE;
	if (!strcmp(s, "ecdsa-p256") || !strcmp(s, "ec") || !strcmp(s, "p256"))
		return HSM_KEY_EC_P256;
	if (!strcmp(s, "ed25519"))
		return HSM_KEY_ED25519;
	if (!strcmp(s, "rsa3072") || !strcmp(s, "rsa"))
		return HSM_KEY_RSA3072;
	if (!strcmp(s, "ecdsa-p384") || !strcmp(s, "p384"))
		return HSM_KEY_EC_P384;
	for (int t = HSM_KEY_RSA2048_PKCS1; t <= HSM_KEY_RSA4096_PKCS1; t++)
		if (!strcmp(s, hsm_keytype_name((enum hsm_keytype)t)))
			return (enum hsm_keytype)t;
	return HSM_KEY_NONE;
}

/* ---- attributes and object lookup ------------------------------------ */

/* Read one attribute into a malloc'd buffer. QS_ERR_NOT_FOUND if the
 * object does not have it (or keeps it secret). */
static int
attr_get(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
         uint8_t **out, size_t *out_len, CK_RV *rvp)
{
	CK_ATTRIBUTE a = {.type = type, .pValue = NULL, .ulValueLen = 0};
	uint8_t *buf = NULL;
	CK_RV rv;
	int r;

	*out = NULL;
	*out_len = 0;
	rv = t->f->C_GetAttributeValue(h, o, &a, 1);
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
	    (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION)) {
		r = qs_fail(QS_ERR_NOT_FOUND, "attribute 0x%lx: %s", (unsigned long)type,
		            rv_name(rv));
		goto out;
	}
	if (rv != CKR_OK) {
		*rvp = rv;
		r = rv_fail("C_GetAttributeValue", rv);
		goto out;
	}
	if ((buf = malloc(a.ulValueLen > 0 ? a.ulValueLen : 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "attribute buffer");
		goto out;
	}
	a.pValue = buf;
	if ((rv = t->f->C_GetAttributeValue(h, o, &a, 1)) != CKR_OK) {
		*rvp = rv;
		r = rv_fail("C_GetAttributeValue", rv);
		goto out;
	}
	*out = buf;
	*out_len = a.ulValueLen;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

/* Caller holds t->setup. Up to `max` handles into objs, total count in *n
 * (which may exceed max, so callers can tell "several"). */
static int
find_objects(hsm_token *t, CK_SESSION_HANDLE h, CK_ATTRIBUTE *tmpl, CK_ULONG tmpl_n,
             CK_OBJECT_HANDLE *objs, size_t max, size_t *n, CK_RV *rvp)
{
	CK_OBJECT_HANDLE batch[FIND_BATCH];
	CK_ULONG got;
	CK_RV rv;
	int r;

	*n = 0;
	if ((rv = t->f->C_FindObjectsInit(h, tmpl, tmpl_n)) != CKR_OK) {
		*rvp = rv;
		return rv_fail("C_FindObjectsInit", rv);
	}
	for (;;) {
		if ((rv = t->f->C_FindObjects(h, batch, FIND_BATCH, &got)) != CKR_OK) {
			*rvp = rv;
			r = rv_fail("C_FindObjects", rv);
			goto out;
		}
		if (got == 0)
			break;
		for (CK_ULONG i = 0; i < got; i++, (*n)++)
			if (*n < max)
				objs[*n] = batch[i];
	}
	r = 0;
out:
	rv = t->f->C_FindObjectsFinal(h);
	if (r == 0 && rv != CKR_OK) {
		*rvp = rv;
		r = rv_fail("C_FindObjectsFinal", rv);
	}
	return r;
}

static CK_OBJECT_CLASS class_priv = CKO_PRIVATE_KEY;
static CK_OBJECT_CLASS class_pub = CKO_PUBLIC_KEY;

/* Template selecting objects of `cls` by label and/or id. */
static CK_ULONG
key_template(CK_ATTRIBUTE *tmpl, CK_OBJECT_CLASS *cls, const char *label, const uint8_t *id,
             size_t id_len)
{
	CK_ULONG n = 0;

	tmpl[n++] = (CK_ATTRIBUTE){CKA_CLASS, cls, sizeof(*cls)};
	if (label != NULL && label[0] != '\0')
		tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)label, strlen(label)};
	if (id_len > 0)
		tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)id, id_len};
	return n;
}

static bool
bytes_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
	return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* The type of an RSA key of n modulus bytes: its scheme is the one its
 * CKA_ALLOWED_MECHANISMS names (CKM_RSA_PKCS: PKCS#1 v1.5, CKM_RSA_PKCS_PSS:
 * PSS); a key that allows both, or neither with a list, is unsupported (one
 * key, one scheme); no list at all is a PSS key of our earlier keygen. */
static int
rsa_type(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, size_t n, enum hsm_keytype *type,
         CK_RV *rvp)
{
	uint8_t *v = NULL;
	size_t len = 0;
	int pkcs1 = 0, pss = 0, r;

	*type = HSM_KEY_NONE;
	if ((r = attr_get(t, h, o, CKA_ALLOWED_MECHANISMS, &v, &len, rvp)) != 0 &&
	    r != QS_ERR_NOT_FOUND)
		return r;
	for (size_t i = 0; i + sizeof(CK_MECHANISM_TYPE) <= len; i += sizeof(CK_MECHANISM_TYPE)) {
		CK_MECHANISM_TYPE m;
		memcpy(&m, v + i, sizeof(m));
		pkcs1 |= m == CKM_RSA_PKCS;
		pss |= m == CKM_RSA_PKCS_PSS;
	}
	free(v);
	if (len == 0 || (pss && !pkcs1)) {
		if (n == RSA3072_SIG_LEN)
			*type = HSM_KEY_RSA3072;
	} else if (pkcs1 && !pss) {
		for (int k = HSM_KEY_RSA2048_PKCS1; k <= HSM_KEY_RSA4096_PKCS1; k++)
			if (rsa_len((enum hsm_keytype)k) == n)
				*type = (enum hsm_keytype)k;
	}
	return 0;
}

/* Fill `info` from a private key object: label, id and our key type. */
static int
key_describe(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, struct hsm_keyinfo *info,
             CK_RV *rvp)
{
	uint8_t *v = NULL;
	size_t n;
	CK_KEY_TYPE kt;
	int r;

	memset(info, 0, sizeof(*info));
	if ((r = attr_get(t, h, o, CKA_LABEL, &v, &n, rvp)) == 0) {
		if (n > HSM_LABEL_MAX || memchr(v, '\0', n) != NULL) {
			r = qs_fail(QS_ERR_INVALID, "key label longer than %d bytes or not text",
			            HSM_LABEL_MAX);
			goto out;
		}
		memcpy(info->label, v, n);
		free(v);
		v = NULL;
	} else if (r != QS_ERR_NOT_FOUND) {
		goto out;
	}
	if ((r = attr_get(t, h, o, CKA_ID, &v, &n, rvp)) == 0) {
		if (n > HSM_ID_MAX) {
			r = qs_fail(QS_ERR_INVALID, "key CKA_ID longer than %d bytes", HSM_ID_MAX);
			goto out;
		}
		memcpy(info->id, v, n);
		info->id_len = n;
		free(v);
		v = NULL;
	} else if (r != QS_ERR_NOT_FOUND) {
		goto out;
	}
	if ((r = attr_get(t, h, o, CKA_KEY_TYPE, &v, &n, rvp)) != 0)
		goto out;
	if (n != sizeof(kt)) {
		r = qs_fail(QS_ERR_PKCS11, "CKA_KEY_TYPE: %zu bytes", n);
		goto out;
	}
	memcpy(&kt, v, sizeof(kt));
	free(v);
	v = NULL;
	info->type = HSM_KEY_NONE;
	if (kt == CKK_EC || kt == CKK_EC_EDWARDS) {
		if ((r = attr_get(t, h, o, CKA_EC_PARAMS, &v, &n, rvp)) != 0 &&
		    r != QS_ERR_NOT_FOUND)
			goto out;
		if (r == 0 && kt == CKK_EC && bytes_eq(v, n, oid_p256, sizeof(oid_p256)))
			info->type = HSM_KEY_EC_P256;
		if (r == 0 && kt == CKK_EC && bytes_eq(v, n, oid_p384, sizeof(oid_p384)))
			info->type = HSM_KEY_EC_P384;
		if (r == 0 && kt == CKK_EC_EDWARDS &&
		    (bytes_eq(v, n, oid_ed25519, sizeof(oid_ed25519)) ||
		     bytes_eq(v, n, str_ed25519, sizeof(str_ed25519))))
			info->type = HSM_KEY_ED25519;
	} else if (kt == CKK_RSA) {
		/* CKA_MODULUS is public even on a sensitive private key */
		if ((r = attr_get(t, h, o, CKA_MODULUS, &v, &n, rvp)) != 0 && r != QS_ERR_NOT_FOUND)
			goto out;
		while (r == 0 && n > 0 && v[0] == 0) /* some tokens pad */
			memmove(v, v + 1, --n);
		if (r == 0)
			r = rsa_type(t, h, o, n, &info->type, rvp);
		if (r != 0)
			goto out;
	}
	r = 0;
out:
	free(v);
	return r;
}

/* Caller holds t->setup. Look up the private key (exactly one) and its
 * public half (optional) by the key's label/id. */
static int
key_lookup(hsm_token *t, CK_SESSION_HANDLE h, const char *label, const uint8_t *id, size_t id_len,
           CK_OBJECT_HANDLE *priv, CK_OBJECT_HANDLE *pub, CK_RV *rvp)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG tn;
	CK_OBJECT_HANDLE objs[2];
	size_t n;
	int r;

	*priv = *pub = CK_INVALID_HANDLE;
	tn = key_template(tmpl, &class_priv, label, id, id_len);
	if ((r = find_objects(t, h, tmpl, tn, objs, 2, &n, rvp)) != 0)
		return r;
	if (n == 0)
		return qs_fail(QS_ERR_NOT_FOUND, "no private key with that label/id");
	if (n > 1)
		return qs_fail(QS_ERR_INVALID, "%zu private keys match; give label and id", n);
	*priv = objs[0];
	/* The public object is matched by id when there is one (the PKCS#11
	 * convention for pairing), else by label. */
	tn = key_template(tmpl, &class_pub, id_len > 0 ? NULL : label, id, id_len);
	if ((r = find_objects(t, h, tmpl, tn, objs, 2, &n, rvp)) != 0)
		return r;
	if (n == 1)
		*pub = objs[0];
	return 0;
}

static int pkey_from_object(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
                            enum hsm_keytype type, EVP_PKEY **out, CK_RV *rvp);

/* SHA-256 of a key's SPKI, from its public object or else its private one. */
static int
object_fp(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
          enum hsm_keytype type, uint8_t fp[SHA256_DIGEST_LENGTH], CK_RV *rvp)
{
	EVP_PKEY *pkey = NULL;
	uint8_t *der = NULL;
	size_t n = 0;
	int r = QS_ERR_NOT_FOUND;

	if (pub != CK_INVALID_HANDLE)
		r = pkey_from_object(t, h, pub, type, &pkey, rvp);
	if (r == QS_ERR_NOT_FOUND)
		r = pkey_from_object(t, h, priv, type, &pkey, rvp);
	if (r == 0 && (r = hsm_pkey_spki_der(pkey, &der, &n)) == 0)
		SHA256(der, n, fp);
	EVP_PKEY_free(pkey);
	free(der);
	return r;
}

/* Remember what a new key's public key is (keys of a type we cannot read
 * have none, and are never used to sign). */
static void
key_remember_fp(hsm_token *t, CK_SESSION_HANDLE h, hsm_key *k, CK_RV *rvp)
{
	if (k->type != HSM_KEY_NONE && object_fp(t, h, k->priv, k->pub, k->type, k->fp, rvp) == 0)
		k->have_fp = true;
	*rvp = CKR_OK; /* best effort: a key without public numbers fails later, clearly */
}

/* Handles valid for the session's generation, looked up again after a
 * recovery or when the module called them invalid; the key found must have
 * the public key first seen. */
static int
key_handles(hsm_token *t, struct sess *s, const hsm_key *ck, CK_OBJECT_HANDLE *priv,
            CK_OBJECT_HANDLE *pub, CK_RV *rvp)
{
	hsm_key *k = (hsm_key *)ck; /* only the handle cache changes */
	uint8_t fp[SHA256_DIGEST_LENGTH];
	int r;

	pthread_mutex_lock(&k->lock);
	if (k->gen == s->gen && !k->stale) {
		*priv = k->priv;
		*pub = k->pub;
		pthread_mutex_unlock(&k->lock);
		return 0;
	}
	pthread_mutex_unlock(&k->lock);
	pthread_mutex_lock(&t->setup);
	r = key_lookup(t, s->h, k->label, k->id, k->id_len, priv, pub, rvp);
	if (r == 0 && k->have_fp && (r = object_fp(t, s->h, *priv, *pub, k->type, fp, rvp)) == 0 &&
	    memcmp(fp, k->fp, sizeof(fp)) != 0)
		r = qs_fail(QS_ERR_PRECONDITION,
		            "key \"%s\": the token now holds another key under this label and id "
		            "(its public key changed since it was opened); restart to use it",
		            k->label);
	/* SoftHSM (file store) can still list an object that another process
	 * just deleted; reading it then says the handle is invalid. That is
	 * the same answer as not finding it. */
	if (r != 0 && rvp != NULL &&
	    (*rvp == CKR_OBJECT_HANDLE_INVALID || *rvp == CKR_KEY_HANDLE_INVALID))
		r = qs_fail(QS_ERR_NOT_FOUND, "no private key with that label/id (removed from "
		                              "the token)");
	pthread_mutex_unlock(&t->setup);
	if (r != 0)
		return r;
	pthread_mutex_lock(&k->lock);
	k->priv = *priv;
	k->pub = *pub;
	k->gen = s->gen;
	k->stale = false;
	pthread_mutex_unlock(&k->lock);
	return 0;
}

/* The module called the cached handle priv of generation gen invalid (the
 * object was deleted, or replaced, behind our back): look it up again. */
static void
key_mark_stale(const hsm_key *ck, unsigned gen, CK_OBJECT_HANDLE priv)
{
	hsm_key *k = (hsm_key *)ck;

	pthread_mutex_lock(&k->lock);
	if (k->gen == gen && k->priv == priv)
		k->stale = true;
	pthread_mutex_unlock(&k->lock);
}

static int
key_new(hsm_token *t, const struct hsm_keyinfo *info, unsigned gen, CK_OBJECT_HANDLE priv,
        CK_OBJECT_HANDLE pub, hsm_key **out)
{
	hsm_key *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "hsm_key");
	k->t = t;
	k->type = info->type;
	memcpy(k->label, info->label, sizeof(k->label));
	memcpy(k->id, info->id, info->id_len);
	k->id_len = info->id_len;
	pthread_mutex_init(&k->lock, NULL);
	k->gen = gen;
	k->priv = priv;
	k->pub = pub;
	*out = k;
	return 0;
}

/* ---- find ----------------------------------------------------------- */

struct find_arg {
	const char *label;
	const uint8_t *id;
	size_t id_len;
	hsm_key *key;
};

static int
find_op(hsm_token *t, struct sess *s, void *varg, CK_RV *rvp)
{
	struct find_arg *a = varg;
	struct hsm_keyinfo info;
	CK_OBJECT_HANDLE priv, pub;
	int r;

	pthread_mutex_lock(&t->setup);
	if ((r = key_lookup(t, s->h, a->label, a->id, a->id_len, &priv, &pub, rvp)) != 0)
		goto out;
	if ((r = key_describe(t, s->h, priv, &info, rvp)) != 0)
		goto out;
	if ((r = key_new(t, &info, s->gen, priv, pub, &a->key)) != 0)
		goto out;
	key_remember_fp(t, s->h, a->key, rvp);
	r = 0;
out:
	pthread_mutex_unlock(&t->setup);
	return r;
}

int
hsm_key_find(hsm_token *t, const char *uri_str, hsm_key **out)
{
	struct find_arg a = {0};
	P11KitUri *uri = NULL;
	CK_ATTRIBUTE *attr;
	char label[HSM_LABEL_MAX + 1] = "";
	int r;

	*out = NULL;
	if (uri_str == NULL) {
		r = qs_fail(QS_ERR_INVALID, "no key URI");
		goto out;
	}
	if (strncmp(uri_str, "pkcs11:", 7) != 0) {
		/* A bare label, as the tools and the policy allow. */
		if (strlen(uri_str) == 0 || strlen(uri_str) > HSM_LABEL_MAX) {
			r = qs_fail(QS_ERR_INVALID, "key label must be 1..%d bytes", HSM_LABEL_MAX);
			goto out;
		}
		a.label = uri_str;
	} else {
		if ((r = uri_parse(uri_str, &uri)) != 0)
			goto out;
		if (!p11_kit_uri_match_token_info(uri, &t->info)) {
			r = qs_fail(QS_ERR_NOT_FOUND, "the URI names another token than %s",
			            t->label);
			goto out;
		}
		if ((attr = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL) {
			if (attr->ulValueLen == 0 || attr->ulValueLen > HSM_LABEL_MAX ||
			    memchr(attr->pValue, '\0', attr->ulValueLen) != NULL) {
				r = qs_fail(QS_ERR_INVALID, "object= must be 1..%d bytes of text",
				            HSM_LABEL_MAX);
				goto out;
			}
			memcpy(label, attr->pValue, attr->ulValueLen);
			a.label = label;
		}
		if ((attr = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL) {
			if (attr->ulValueLen == 0 || attr->ulValueLen > HSM_ID_MAX) {
				r = qs_fail(QS_ERR_INVALID, "id= must be 1..%d bytes", HSM_ID_MAX);
				goto out;
			}
			a.id = attr->pValue;
			a.id_len = attr->ulValueLen;
		}
		if (a.label == NULL && a.id == NULL) {
			r = qs_fail(QS_ERR_INVALID, "the key URI has neither object= nor id=");
			goto out;
		}
	}
	if ((r = run_op(t, find_op, &a)) != 0)
		goto out;
	*out = a.key;
	r = 0;
out:
	if (uri != NULL)
		p11_kit_uri_free(uri);
	return r;
}

/* ---- list ------------------------------------------------------------ */

struct list_arg {
	struct hsm_keyinfo *keys;
	size_t n;
};

static int
list_op(hsm_token *t, struct sess *s, void *varg, CK_RV *rvp)
{
	struct list_arg *a = varg;
	CK_ATTRIBUTE tmpl[1];
	CK_OBJECT_HANDLE *objs = NULL;
	struct hsm_keyinfo *keys = NULL;
	size_t n, max = 64;
	int r;

	a->keys = NULL;
	a->n = 0;
	pthread_mutex_lock(&t->setup);
	tmpl[0] = (CK_ATTRIBUTE){CKA_CLASS, &class_priv, sizeof(class_priv)};
	/* Count, then fetch with room for all: the list changes only under
	 * our setup lock (within this process). */
	for (;;) {
		free(objs);
		if ((objs = calloc(max, sizeof(*objs))) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "object list");
			goto out;
		}
		if ((r = find_objects(t, s->h, tmpl, 1, objs, max, &n, rvp)) != 0)
			goto out;
		if (n <= max)
			break;
		max = n;
	}
	if ((keys = calloc(n > 0 ? n : 1, sizeof(*keys))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "key list");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		r = key_describe(t, s->h, objs[i], &keys[i], rvp);
		/* A key we cannot describe is still listed, as unsupported. */
		if (r != 0 && *rvp != CKR_OK)
			goto out;
		if (r != 0)
			keys[i].type = HSM_KEY_NONE;
	}
	a->keys = keys;
	a->n = n;
	keys = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&t->setup);
	free(keys);
	free(objs);
	return r;
}

int
hsm_key_list(hsm_token *t, struct hsm_keyinfo **out, size_t *n)
{
	struct list_arg a = {0};
	int r;

	*out = NULL;
	*n = 0;
	if ((r = run_op(t, list_op, &a)) != 0)
		return r;
	*out = a.keys;
	*n = a.n;
	return 0;
}

/* ---- keygen ---------------------------------------------------------- */

struct keygen_arg {
	enum hsm_keytype type;
	const char *label;
	const uint8_t *id;
	size_t id_len;
	hsm_key *key;
};

static int
keygen_op(hsm_token *t, struct sess *s, void *varg, CK_RV *rvp)
{
	struct keygen_arg *a = varg;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = rsa_len(a->type) * 8;
	CK_MECHANISM_TYPE allowed = hsm_keytype_is_pkcs1(a->type) ? CKM_RSA_PKCS : CKM_RSA_PKCS_PSS;
	CK_BYTE exponent[] = {0x01, 0x00, 0x01};
	CK_MECHANISM mech = {0, NULL, 0};
	CK_ATTRIBUTE pub[8], priv[9], tmpl[3];
	CK_ULONG npub = 0, npriv = 0, tn;
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE, obj;
	struct hsm_keyinfo info;
	size_t n, label_len = strlen(a->label);
	CK_RV rv;
	int r;

	pthread_mutex_lock(&t->setup);
	/* Never overwrite or shadow: an existing label or id is refused. */
	tn = key_template(tmpl, &class_priv, a->label, NULL, 0);
	if ((r = find_objects(t, s->h, tmpl, tn, &obj, 1, &n, rvp)) != 0)
		goto out;
	if (n > 0) {
		r = qs_fail(QS_ERR_EXISTS, "a private key labelled \"%s\" exists", a->label);
		goto out;
	}
	tn = key_template(tmpl, &class_priv, NULL, a->id, a->id_len);
	if ((r = find_objects(t, s->h, tmpl, tn, &obj, 1, &n, rvp)) != 0)
		goto out;
	if (n > 0) {
		r = qs_fail(QS_ERR_EXISTS, "a private key with that id exists");
		goto out;
	}

	pub[npub++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
	pub[npub++] = (CK_ATTRIBUTE){CKA_VERIFY, &yes, sizeof(yes)};
	pub[npub++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)a->label, label_len};
	pub[npub++] = (CK_ATTRIBUTE){CKA_ID, (void *)a->id, a->id_len};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_SENSITIVE, &yes, sizeof(yes)};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &no, sizeof(no)};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_SIGN, &yes, sizeof(yes)};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)a->label, label_len};
	priv[npriv++] = (CK_ATTRIBUTE){CKA_ID, (void *)a->id, a->id_len};
	switch (a->type) {
	case HSM_KEY_EC_P256:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)oid_p256, sizeof(oid_p256)};
		break;
	case HSM_KEY_EC_P384:
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)oid_p384, sizeof(oid_p384)};
		break;
	case HSM_KEY_ED25519:
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pub[npub++] =
		        (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)oid_ed25519, sizeof(oid_ed25519)};
		break;
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA2048_PKCS1:
	case HSM_KEY_RSA3072_PKCS1:
	case HSM_KEY_RSA4096_PKCS1:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub[npub++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
		pub[npub++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)};
		/* One key, one scheme: the token refuses the other padding. */
		priv[npriv++] = (CK_ATTRIBUTE){CKA_ALLOWED_MECHANISMS, &allowed, sizeof(allowed)};
		break;
	case HSM_KEY_NONE:
		r = qs_fail(QS_ERR_INVALID, "no key type");
		goto out;
	}
	rv = t->f->C_GenerateKeyPair(s->h, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
	if (a->type == HSM_KEY_ED25519 &&
	    (rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_DOMAIN_PARAMS_INVALID ||
	     rv == CKR_CURVE_NOT_SUPPORTED || rv == CKR_TEMPLATE_INCONSISTENT)) {
		/* Tokens differ in the form of the curve name they take. */
		pub[npub - 1].pValue = (void *)str_ed25519;
		pub[npub - 1].ulValueLen = sizeof(str_ed25519);
		rv = t->f->C_GenerateKeyPair(s->h, &mech, pub, npub, priv, npriv, &hpub, &hpriv);
	}
	if (rv != CKR_OK) {
		*rvp = rv;
		r = rv_fail("C_GenerateKeyPair", rv);
		goto out;
	}
	if ((r = key_describe(t, s->h, hpriv, &info, rvp)) != 0)
		goto out;
	if (info.type != a->type) {
		r = qs_fail(QS_ERR_PKCS11, "generated key reads back as another type");
		goto out;
	}
	if ((r = key_new(t, &info, s->gen, hpriv, hpub, &a->key)) != 0)
		goto out;
	key_remember_fp(t, s->h, a->key, rvp);
	r = 0;
out:
	pthread_mutex_unlock(&t->setup);
	return r;
}

int
hsm_keygen(hsm_token *t, enum hsm_keytype type, const char *label, const uint8_t *id, size_t id_len,
           hsm_key **out)
{
	struct keygen_arg a = {.type = type, .label = label, .id = id, .id_len = id_len};
	uint8_t rid[KEY_ID_RANDOM_LEN];
	size_t n;
	int r;

	*out = NULL;
	if (hsm_keytype_name(type) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown key type %d", (int)type);
	if (label == NULL || (n = strlen(label)) == 0 || n > HSM_LABEL_MAX)
		return qs_fail(QS_ERR_INVALID, "key label must be 1..%d bytes", HSM_LABEL_MAX);
	if (id != NULL && (id_len == 0 || id_len > HSM_ID_MAX))
		return qs_fail(QS_ERR_INVALID, "key id must be 1..%d bytes", HSM_ID_MAX);
	if (id == NULL) {
		if (RAND_bytes(rid, sizeof(rid)) != 1)
			return hsm_ossl_fail("RAND_bytes");
		a.id = rid;
		a.id_len = sizeof(rid);
	}
	if ((r = run_op(t, keygen_op, &a)) != 0)
		return r;
	*out = a.key;
	return 0;
}

/* ---- keys ------------------------------------------------------------ */

void
hsm_key_free(hsm_key *k)
{
	if (k == NULL)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

void
hsm_key_info(const hsm_key *k, struct hsm_keyinfo *out)
{
	memset(out, 0, sizeof(*out));
	out->type = k->type;
	memcpy(out->label, k->label, sizeof(out->label));
	memcpy(out->id, k->id, k->id_len);
	out->id_len = k->id_len;
}

enum hsm_keytype
hsm_key_type(const hsm_key *k)
{
	return k->type;
}

/* ---- public key ------------------------------------------------------ */

struct pkey_arg {
	const hsm_key *k;
	EVP_PKEY *pkey;
};

/* Public numbers from one object: CKA_EC_POINT, or modulus + exponent. */
static int
pkey_from_object(hsm_token *t, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, enum hsm_keytype type,
                 EVP_PKEY **out, CK_RV *rvp)
{
	uint8_t *a = NULL, *b = NULL;
	size_t a_len = 0, b_len = 0;
	int r;

	if (hsm_keytype_is_rsa(type)) {
		if ((r = attr_get(t, h, o, CKA_MODULUS, &a, &a_len, rvp)) != 0 ||
		    (r = attr_get(t, h, o, CKA_PUBLIC_EXPONENT, &b, &b_len, rvp)) != 0)
			goto out;
	} else if ((r = attr_get(t, h, o, CKA_EC_POINT, &a, &a_len, rvp)) != 0) {
		goto out;
	}
	if ((r = hsm_pkey_from_attrs(type, a, a_len, b, b_len, out)) != 0)
		goto out;
	r = 0;
out:
	free(a);
	free(b);
	return r;
}

static int
pkey_op(hsm_token *t, struct sess *s, void *varg, CK_RV *rvp)
{
	struct pkey_arg *a = varg;
	CK_OBJECT_HANDLE priv, pub;
	int r;

	for (int again = 0;; again++) {
		if ((r = key_handles(t, s, a->k, &priv, &pub, rvp)) != 0)
			return r;
		r = QS_ERR_NOT_FOUND;
		if (pub != CK_INVALID_HANDLE)
			r = pkey_from_object(t, s->h, pub, a->k->type, &a->pkey, rvp);
		/* No public object (or one without the numbers): the private
		 * object carries them on most tokens (RSA always, EC on
		 * tpm2-pkcs11). */
		if (r == QS_ERR_NOT_FOUND)
			r = pkey_from_object(t, s->h, priv, a->k->type, &a->pkey, rvp);
		/* A cached handle the module now calls invalid (the object was
		 * deleted or replaced behind our back): look it up again, as
		 * signing does. */
		if (r != 0 && r != QS_ERR_NOT_FOUND && again == 0 &&
		    (*rvp == CKR_OBJECT_HANDLE_INVALID || *rvp == CKR_KEY_HANDLE_INVALID)) {
			key_mark_stale(a->k, s->gen, priv);
			continue;
		}
		break;
	}
	if (r == QS_ERR_NOT_FOUND)
		r = qs_fail(QS_ERR_NOT_FOUND, "key \"%s\": no public key attributes on the token",
		            a->k->label);
	return r;
}

static int
key_pkey(hsm_token *t, const hsm_key *k, EVP_PKEY **out)
{
	struct pkey_arg a = {.k = k};
	int r;

	*out = NULL;
	if (k == NULL || k->t != t)
		return qs_fail(QS_ERR_INVALID, "key does not belong to this token");
	if (k->type == HSM_KEY_NONE)
		return qs_fail(QS_ERR_UNIMPLEMENTED, "key \"%s\": unsupported type", k->label);
	if ((r = run_op(t, pkey_op, &a)) != 0)
		return r;
	*out = a.pkey;
	return 0;
}

int
hsm_key_spki_der(hsm_token *t, const hsm_key *k, uint8_t **der, size_t *der_len)
{
	EVP_PKEY *pkey = NULL;
	int r;

	*der = NULL;
	*der_len = 0;
	if ((r = key_pkey(t, k, &pkey)) != 0)
		return r;
	r = hsm_pkey_spki_der(pkey, der, der_len);
	EVP_PKEY_free(pkey);
	return r;
}

int
hsm_key_spki_pem(hsm_token *t, const hsm_key *k, char **pem)
{
	EVP_PKEY *pkey = NULL;
	int r;

	*pem = NULL;
	if ((r = key_pkey(t, k, &pkey)) != 0)
		return r;
	r = hsm_pkey_spki_pem(pkey, pem);
	EVP_PKEY_free(pkey);
	return r;
}

/* ---- sign ------------------------------------------------------------ */

struct sign_arg {
	const hsm_key *k;
	const struct hsm_digest *dg; /* digest-signing keys: which digest */
	const uint8_t *in;
	size_t in_len;
	uint8_t *sig;
	size_t sig_len;
	size_t want_len;
};

static int
sign_op(hsm_token *t, struct sess *s, void *varg, CK_RV *rvp)
{
	struct sign_arg *a = varg;
	CK_RSA_PKCS_PSS_PARAMS pss = {0, 0, 0};
	CK_MECHANISM mech = {0, NULL, 0};
	CK_OBJECT_HANDLE priv, pub;
	CK_ULONG n = HSM_SIG_MAX;
	static const uint8_t empty[1];
	CK_RV rv;
	int r;

	switch (a->k->type) {
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384:
		mech.mechanism = CKM_ECDSA;
		break;
	case HSM_KEY_ED25519:
		mech.mechanism = CKM_EDDSA;
		break;
	case HSM_KEY_RSA3072:
		pss.hashAlg = a->dg->hash;
		pss.mgf = a->dg->mgf;
		pss.sLen = a->dg->len;
		mech.mechanism = CKM_RSA_PKCS_PSS;
		mech.pParameter = &pss;
		mech.ulParameterLen = sizeof(pss);
		break;
	case HSM_KEY_RSA2048_PKCS1:
	case HSM_KEY_RSA3072_PKCS1:
	case HSM_KEY_RSA4096_PKCS1:
		mech.mechanism = CKM_RSA_PKCS;
		break;
	case HSM_KEY_NONE:
		return qs_fail(QS_ERR_UNIMPLEMENTED, "unsupported key type");
	}
	for (int again = 0;; again++) {
		if ((r = key_handles(t, s, a->k, &priv, &pub, rvp)) != 0)
			return r;
		if ((rv = t->f->C_SignInit(s->h, &mech, priv)) == CKR_OK)
			break;
		if (again == 0 &&
		    (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID)) {
			key_mark_stale(a->k, s->gen, priv);
			continue;
		}
		*rvp = rv;
		return rv_fail("C_SignInit", rv);
	}
	/* Modules reject a NULL data pointer even for an empty message. */
	rv = t->f->C_Sign(s->h, (CK_BYTE_PTR)(a->in_len > 0 ? a->in : empty), a->in_len, a->sig,
	                  &n);
	if (rv != CKR_OK) {
		*rvp = rv;
		return rv_fail("C_Sign", rv);
	}
	if (n != a->want_len) {
		/* rv stays CKR_OK but the session is clean: C_Sign ended the op */
		return qs_fail(QS_ERR_PKCS11, "C_Sign: %lu bytes, want %zu", (unsigned long)n,
		               a->want_len);
	}
	a->sig_len = n;
	return 0;
}

int
hsm_sign(hsm_token *t, const hsm_key *k, const uint8_t *in, size_t in_len, uint8_t *sig,
         size_t *sig_len)
{
	struct sign_arg a = {.k = k, .in = in, .in_len = in_len, .sig = sig};
	uint8_t di[DIGESTINFO_PREFIX_LEN + DIGEST_MAX];
	int r;

	*sig_len = 0;
	if (k == NULL || k->t != t)
		return qs_fail(QS_ERR_INVALID, "key does not belong to this token");
	if (in == NULL && in_len > 0)
		return qs_fail(QS_ERR_INVALID, "no input");
	switch (k->type) {
	case HSM_KEY_EC_P256:
	case HSM_KEY_EC_P384:
	case HSM_KEY_RSA3072:
	case HSM_KEY_RSA2048_PKCS1:
	case HSM_KEY_RSA3072_PKCS1:
	case HSM_KEY_RSA4096_PKCS1:
		if ((a.dg = digest_of_len(in_len)) == NULL)
			return qs_fail(QS_ERR_INVALID,
			               "%s signs a SHA-256, SHA-384 or SHA-512 digest (32, 48 or "
			               "64 bytes), got %zu bytes",
			               hsm_keytype_name(k->type), in_len);
		a.want_len = hsm_keytype_is_ecdsa(k->type) ? ecdsa_len(k->type) : rsa_len(k->type);
		if (hsm_keytype_is_rsa(k->type) && k->type != HSM_KEY_RSA3072) {
			/* PKCS#1 v1.5 signs the DigestInfo, not the bare digest. */
			memcpy(di, a.dg->prefix, DIGESTINFO_PREFIX_LEN);
			memcpy(di + DIGESTINFO_PREFIX_LEN, in, in_len);
			a.in = di;
			a.in_len = DIGESTINFO_PREFIX_LEN + in_len;
		}
		break;
	case HSM_KEY_ED25519:
		if ((CK_ULONG)in_len != in_len)
			return qs_fail(QS_ERR_INVALID, "message too long");
		a.want_len = ED25519_SIG_LEN;
		break;
	case HSM_KEY_NONE:
		return qs_fail(QS_ERR_UNIMPLEMENTED, "key \"%s\": unsupported type", k->label);
	}
	if ((r = run_op(t, sign_op, &a)) != 0)
		return r;
	*sig_len = a.sig_len;
	return 0;
}

/* ---- token initialisation --------------------------------------------- */

int
hsm_init_token(const char *module_path, const char *so_pin_source, const char *pin_source,
               const char *label)
{
	struct module *m = NULL;
	struct hsm_pin so = {0}, user = {0};
	CK_SLOT_ID *slots = NULL, slot = 0;
	CK_ULONG n = 0;
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	CK_UTF8CHAR padded[32];
	bool found = false, logged_in = false;
	size_t label_len;
	CK_RV rv;
	int r;

	if (label == NULL || (label_len = strlen(label)) == 0 || label_len > sizeof(padded)) {
		r = qs_fail(QS_ERR_INVALID, "token label must be 1..%zu bytes", sizeof(padded));
		goto out;
	}
	memset(padded, ' ', sizeof(padded));
	memcpy(padded, label, label_len);
	if ((r = hsm_pin_load(so_pin_source, &so)) != 0 ||
	    (r = hsm_pin_load(pin_source, &user)) != 0)
		goto out;
	if ((r = module_get(module_path, &m)) != 0)
		goto out;
	if ((r = slot_list(m->f, &slots, &n)) != 0)
		goto out;
	for (CK_ULONG i = 0; i < n; i++) {
		if ((rv = get_token_info(m->f, slots[i], &ti)) != CKR_OK)
			continue;
		if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
			if (!found)
				slot = slots[i];
			found = true;
		} else if (memcmp(ti.label, padded, sizeof(padded)) == 0) {
			r = qs_fail(QS_ERR_EXISTS, "a token labelled \"%s\" exists", label);
			goto out;
		}
	}
	if (!found) {
		r = qs_fail(QS_ERR_NOT_FOUND, "no slot with an uninitialised token");
		goto out;
	}
	if ((rv = m->f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so.buf, so.len, padded)) != CKR_OK) {
		r = rv_fail("C_InitToken", rv);
		goto out;
	}
	rv = m->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	if (rv != CKR_OK) {
		r = rv_fail("C_OpenSession", rv);
		goto out;
	}
	if ((rv = m->f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)so.buf, so.len)) != CKR_OK) {
		r = rv_fail("C_Login(SO)", rv);
		goto out;
	}
	logged_in = true;
	if ((rv = m->f->C_InitPIN(h, (CK_UTF8CHAR_PTR)user.buf, user.len)) != CKR_OK) {
		r = rv_fail("C_InitPIN", rv);
		goto out;
	}
	r = 0;
out:
	if (logged_in)
		(void)m->f->C_Logout(h);
	if (h != CK_INVALID_HANDLE)
		(void)m->f->C_CloseSession(h);
	if (m != NULL)
		module_put(m);
	free(slots);
	hsm_pin_wipe(&so);
	hsm_pin_wipe(&user);
	return r;
}
