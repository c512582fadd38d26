/*
 * p11_module.c - the C_* entry points of libqsign-pkcs11.so.
 *
 * A PKCS#11 module whose every signature is a qsignd Sign (or, for a
 * quorum role, a Requests/Submit that waits for its approvals), so the
 * tools of a build farm (sbsign, osslsigncode, openssl through libp11,
 * mkimage, pkcs11-tool) sign through the daemon's policy, rate limit and
 * audit log. One slot per role the principal may use, token label = role.
 *
 * Threads: every entry point takes one mutex (CKF_OS_LOCKING_OK; the
 * application's mutex callbacks are not needed: pthreads are always
 * there); the RPC of a signature runs outside it, on a qsc_client borrowed
 * from a pool (a qsc_client serves one thread at a time), so N threads sign
 * in parallel. Fork: the child sees CKR_CRYPTOKI_NOT_INITIALIZED until it
 * calls C_Initialize again (the parent's connections are never touched in
 * the child: nng is not fork-safe).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "p11.h"

#define P11_EXPORT __attribute__((visibility("default")))

/* Sessions open at once (per module instance). */
#define P11_MAX_SESSIONS 1024
/* Connections kept for reuse; more threads than this open and close their own. */
#define P11_POOL_MAX 16
/* How often a quorum request is polled while C_Sign waits. */
#define P11_QUORUM_POLL_MS 500

struct slot {
	char *role;
	int quorum;
	int allow_digest, allow_blob;
	unsigned hashes; /* RoleInfo.hashes: QS_HASH_* bits */
	struct p11_key *keys;
	size_t nkeys;
	int logged_in;
};

struct session {
	CK_SESSION_HANDLE h;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	/* C_FindObjects */
	int finding;
	CK_OBJECT_HANDLE *found;
	size_t nfound, pos;
	/* C_SignInit .. */
	int signing;
	size_t key;
	struct p11_op op;
};

static struct {
	pthread_mutex_t lock;
	int initialized;
	pid_t pid;
	struct p11_config cfg;
	struct slot *slots;
	size_t nslots;
	struct session *sess[P11_MAX_SESSIONS];
	CK_SESSION_HANDLE next_handle;
	qsc_client *pool[P11_POOL_MAX];
	size_t npool;
	char last_report[512];
	/* The process that started nng in this copy of the module (0: none). */
	pid_t nng_pid;
	/* In a process forked after nng started: a fresh copy of the module
	 * that serves every call (see fork_copy()). */
	CK_FUNCTION_LIST_PTR copy;
} M = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Every entry point of a module whose calls a fresh copy serves. */
#define FORWARD(fn, args)                                                                          \
	do {                                                                                       \
		CK_FUNCTION_LIST_PTR c_ = __atomic_load_n(&M.copy, __ATOMIC_ACQUIRE);              \
		if (c_ != NULL)                                                                    \
			return c_->fn args;                                                        \
	} while (0)

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The reason of a failure, on stderr, once (not again while it repeats). */
static void __attribute__((format(printf, 1, 2))) report(const char *fmt, ...)
{
	char msg[sizeof(M.last_report)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, M.last_report) == 0)
		return;
	snprintf(M.last_report, sizeof(M.last_report), "%s", msg);
	fprintf(stderr, "libqsign-pkcs11: %s\n", msg);
}

/* ---- handles ------------------------------------------------------------ */

/* Object handle: slot, key and kind packed; 0 is CK_INVALID_HANDLE. */
#define OBJ_HANDLE(s, k, kind) ((CK_OBJECT_HANDLE)(((s) << 20) | ((k) << 2) | (kind)) + 1)

static int
obj_decode(CK_OBJECT_HANDLE h, CK_SLOT_ID slot, size_t *key, int *kind)
{
	CK_ULONG v;

	if (h == CK_INVALID_HANDLE)
		return 0;
	v = h - 1;
	if ((v >> 20) != slot || (v & 3) >= P11_OBJ_KINDS ||
	    ((v >> 2) & 0x3ffff) >= M.slots[slot].nkeys)
		return 0;
	*key = (v >> 2) & 0x3ffff;
	*kind = (int)(v & 3);
	return 1;
}

/* ---- state ---------------------------------------------------------------- */

static void
session_free(struct session *s)
{
	if (s == NULL)
		return;
	free(s->found);
	p11_op_free(&s->op);
	free(s);
}

static void
slots_free(void)
{
	for (size_t i = 0; i < M.nslots; i++) {
		for (size_t k = 0; k < M.slots[i].nkeys; k++)
			p11_key_free(&M.slots[i].keys[k]);
		free(M.slots[i].keys);
		free(M.slots[i].role);
	}
	free(M.slots);
	M.slots = NULL;
	M.nslots = 0;
}

/* Forget everything. close_clients = 0 in a forked child: the parent's
 * sockets belong to threads the child does not have. */
static void
state_reset(int close_clients)
{
	for (size_t i = 0; i < P11_MAX_SESSIONS; i++) {
		session_free(M.sess[i]);
		M.sess[i] = NULL;
	}
	for (size_t i = 0; i < M.npool; i++) {
		if (close_clients)
			qsc_close(M.pool[i]);
		M.pool[i] = NULL;
	}
	M.npool = 0;
	slots_free();
	p11_config_free(&M.cfg);
	M.initialized = 0;
}

static void
atfork_child(void)
{
	/* Another thread may have held the lock at fork: the child's copy is
	 * a fresh one. */
	pthread_mutex_init(&M.lock, NULL);
}

static void
atfork_register(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

/* Entry check, lock held: initialised in this very process. */
static CK_RV
ready(void)
{
	if (M.initialized && M.pid != getpid()) {
		/* A forked child: it must C_Initialize again. */
		state_reset(0);
	}
	return M.initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

#define ENTER()                                                                                    \
	CK_RV rv_;                                                                                 \
	pthread_mutex_lock(&M.lock);                                                               \
	if ((rv_ = ready()) != CKR_OK) {                                                           \
		pthread_mutex_unlock(&M.lock);                                                     \
		return rv_;                                                                        \
	}

static CK_RV
leave(CK_RV rv)
{
	pthread_mutex_unlock(&M.lock);
	return rv;
}

/* ENTER() and a valid slot id / session handle (s set), or the CKR. */
#define ENTER_SLOT(id)                                                                             \
	ENTER();                                                                                   \
	if ((id) >= M.nslots)                                                                      \
	return leave(CKR_SLOT_ID_INVALID)
#define ENTER_SESSION(h, s)                                                                        \
	ENTER();                                                                                   \
	if (((s) = session_get(h)) == NULL)                                                        \
	return leave(CKR_SESSION_HANDLE_INVALID)

static struct session *
session_get(CK_SESSION_HANDLE h)
{
	for (size_t i = 0; i < P11_MAX_SESSIONS; i++)
		if (M.sess[i] != NULL && M.sess[i]->h == h)
			return M.sess[i];
	return NULL;
}

/* ---- connections ------------------------------------------------------------ */

static int
client_open(qsc_client **out)
{
	struct qsc_options o = {0};

	o.url = M.cfg.server;
	o.principal = M.cfg.principal;
	o.identity = M.cfg.identity;
	o.identity_pass_file = M.cfg.identity_pass;
	o.pkcs11_module = M.cfg.pkcs11_module;
	o.pin_source = M.cfg.pin_source;
	o.server_key = M.cfg.server_key;
	o.known_servers = M.cfg.known_servers;
	o.tls_cert = M.cfg.tls_cert;
	o.tls_key = M.cfg.tls_key;
	o.tls_ca = M.cfg.tls_ca;
	o.timeout_ms = M.cfg.timeout_ms;
	/* No terminal to ask on: trust on first use, as qsign does in scripts. */
	o.trust_new = QSC_TRUST_NEW_ACCEPT;
	__atomic_store_n(&M.nng_pid, getpid(), __ATOMIC_RELEASE);
	return qsc_open(&o, out);
}

/* Lock NOT held. A connected client: from the pool or a new one. */
static CK_RV
client_borrow(qsc_client **out)
{
	int r;

	*out = NULL;
	pthread_mutex_lock(&M.lock);
	if (M.npool > 0)
		*out = M.pool[--M.npool];
	pthread_mutex_unlock(&M.lock);
	if (*out != NULL)
		return CKR_OK;
	if ((r = client_open(out)) != 0) {
		pthread_mutex_lock(&M.lock);
		report("cannot reach qsignd at %s as %s: %s", M.cfg.server, M.cfg.principal,
		       qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		pthread_mutex_unlock(&M.lock);
		return CKR_DEVICE_ERROR;
	}
	return CKR_OK;
}

static void
client_return(qsc_client *c)
{
	pthread_mutex_lock(&M.lock);
	if (M.initialized && M.pid == getpid() && M.npool < P11_POOL_MAX) {
		M.pool[M.npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&M.lock);
	qsc_close(c);
}

/* ---- slots from the daemon ---------------------------------------------------- */

static const Qsign__V1__KeyInfo *
key_info(const Qsign__V1__ListKeysResponse *keys, const char *name)
{
	for (size_t i = 0; i < keys->n_keys; i++)
		if (strcmp(keys->keys[i]->name, name) == 0)
			return keys->keys[i];
	return NULL;
}

static int
has_string(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static CK_RV
slot_add(const Qsign__V1__RoleInfo *ri, const Qsign__V1__ListKeysResponse *keys)
{
	struct slot *s, *ns;

	if ((ns = realloc(M.slots, (M.nslots + 1) * sizeof(*ns))) == NULL)
		return CKR_HOST_MEMORY;
	M.slots = ns;
	s = &M.slots[M.nslots];
	memset(s, 0, sizeof(*s));
	if ((s->role = strdup(ri->name)) == NULL ||
	    (s->keys = calloc(ri->n_keys > 0 ? ri->n_keys : 1, sizeof(*s->keys))) == NULL) {
		free(s->role);
		return CKR_HOST_MEMORY;
	}
	M.nslots++;
	s->quorum = strcmp(ri->mode, "online") != 0;
	s->allow_digest = has_string(ri->payloads, ri->n_payloads, "digest");
	s->allow_blob = has_string(ri->payloads, ri->n_payloads, "blob");
	/* A daemon that does not say: every hash (it refuses what the role
	 * does not allow). */
	s->hashes = ri->n_hashes > 0 ? 0 : QS_HASHES_ALL;
	for (size_t i = 0; i < ri->n_hashes; i++)
		s->hashes |= qs_hash_bit(ri->hashes[i]);
	for (size_t i = 0; i < ri->n_keys; i++) {
		const Qsign__V1__KeyInfo *ki = key_info(keys, ri->keys[i]);
		if (ki == NULL)
			continue;
		if (p11_key_from_info(&s->keys[s->nkeys], ki) != 0) {
			/* Another algorithm: the key is left out, the role stays. */
			report("role %s: key %s not offered: %s", ri->name, ki->name,
			       qs_errdetail());
			continue;
		}
		p11_key_set_hashes(&s->keys[s->nkeys], s->hashes);
		s->nkeys++;
	}
	return CKR_OK;
}

/* Lock held. Ask the daemon which roles the principal may use. */
static CK_RV
slots_load(qsc_client *c)
{
	Qsign__V1__InfoResponse *info = NULL;
	Qsign__V1__ListKeysResponse *keys = NULL;
	CK_RV rv;
	int r;

	if ((r = qsc_info(c, &info)) != 0 || (r = qsc_list_keys(c, &keys)) != 0) {
		report("qsignd at %s: %s", M.cfg.server,
		       qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		rv = CKR_DEVICE_ERROR;
		goto out;
	}
	for (size_t i = 0; i < info->n_roles; i++) {
		const Qsign__V1__RoleInfo *ri = info->roles[i];
		/* A quorum role blocks C_Sign until approvers vote: only when
		 * the configuration says how long to wait. */
		if (strcmp(ri->mode, "online") != 0 && M.cfg.quorum_wait <= 0)
			continue;
		if ((rv = slot_add(ri, keys)) != CKR_OK)
			goto out;
	}
	rv = CKR_OK;
out:
	qsc_free(info);
	qsc_free(keys);
	return rv;
}

/* ---- fork ---------------------------------------------------------------------- */

/*
 * A child forked after this copy of the module started nng cannot use nng
 * again: nng panics by design in such a child ("not fork-reentrant safe";
 * its threads did not survive the fork). The child gets a fresh copy of
 * the module instead, loaded from a memfd so that the dynamic loader maps
 * it anew (a dlopen of the same path would return this one), with its own
 * nng and state; this copy then forwards every call to it. The parent's
 * connections are left alone (closing them would touch nng). Lock held.
 */
static CK_RV
fork_copy(void)
{
	CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST_PTR fl = NULL;
	char path[64], buf[65536];
	Dl_info di;
	void *h;
	int in = -1, fd = -1;
	ssize_t n;
	CK_RV rv = CKR_GENERAL_ERROR;

	/* A hidden symbol: C_GetFunctionList's address would be the first one
	 * in the process (libp11-kit's, when the application links it). */
	if (dladdr((void *)&M, &di) == 0 || di.dli_fname == NULL) {
		report("forked child: cannot find the module's file");
		return rv;
	}
	if ((in = open(di.dli_fname, O_RDONLY | O_CLOEXEC)) < 0 ||
	    (fd = memfd_create("libqsign-pkcs11", MFD_CLOEXEC)) < 0) {
		report("forked child: cannot copy %s: %m", di.dli_fname);
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(fd, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (n < 0) {
		report("forked child: cannot copy %s: %m", di.dli_fname);
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		report("forked child: cannot load a copy of the module: %s", dlerror());
		goto out;
	}
	*(void **)&gfl = dlsym(h, "C_GetFunctionList");
	if (gfl == NULL || gfl(&fl) != CKR_OK || fl == NULL) {
		report("forked child: the copy of the module has no function list");
		goto out;
	}
	__atomic_store_n(&M.copy, fl, __ATOMIC_RELEASE);
	rv = CKR_OK;
out:
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	return rv;
}

/* ---- general ------------------------------------------------------------------ */

static CK_RV
qp_Initialize(CK_VOID_PTR pInitArgs)
{
	FORWARD(C_Initialize, (pInitArgs));
	CK_C_INITIALIZE_ARGS *a = pInitArgs;
	qsc_client *c = NULL;
	CK_RV rv;
	int r;

	pthread_once(&atfork_once, atfork_register);
	if (a != NULL) {
		if (a->pReserved != NULL)
			return CKR_ARGUMENTS_BAD;
		/* Mutex callbacks without CKF_OS_LOCKING_OK: we cannot use
		 * theirs, only our own pthread one. */
		if (a->CreateMutex != NULL && !(a->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
	pthread_mutex_lock(&M.lock);
	if (M.initialized && M.pid != getpid())
		state_reset(0);
	if (M.nng_pid != 0 && M.nng_pid != getpid()) {
		/* A child forked after nng started here: a fresh copy serves. */
		rv = M.copy != NULL ? CKR_OK : fork_copy();
		pthread_mutex_unlock(&M.lock);
		return rv == CKR_OK ? M.copy->C_Initialize(pInitArgs) : rv;
	}
	if (M.initialized) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	M.last_report[0] = '\0';
	if ((r = p11_config_load(&M.cfg)) != 0) {
		report("bad configuration: %s",
		       qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	M.pid = getpid();
	if ((r = client_open(&c)) != 0) {
		report("cannot reach qsignd at %s as %s (%s): %s", M.cfg.server, M.cfg.principal,
		       M.cfg.source, qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		rv = CKR_DEVICE_ERROR;
		goto fail;
	}
	if ((rv = slots_load(c)) != CKR_OK)
		goto fail;
	M.pool[M.npool++] = c;
	c = NULL;
	M.next_handle = 1;
	M.initialized = 1;
	rv = CKR_OK;
	goto out;
fail:
	qsc_close(c);
	slots_free();
	p11_config_free(&M.cfg);
out:
	pthread_mutex_unlock(&M.lock);
	return rv;
}

static CK_RV
qp_Finalize(CK_VOID_PTR pReserved)
{
	FORWARD(C_Finalize, (pReserved));
	if (pReserved != NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER();
	state_reset(1);
	return leave(CKR_OK);
}

static void
pad(CK_UTF8CHAR *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static CK_RV
qp_GetInfo(CK_INFO_PTR p)
{
	FORWARD(C_GetInfo, (p));
	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER();
	memset(p, 0, sizeof(*p));
	p->cryptokiVersion.major = 2;
	p->cryptokiVersion.minor = 40;
	pad(p->manufacturerID, sizeof(p->manufacturerID), "quorum-signer");
	pad(p->libraryDescription, sizeof(p->libraryDescription), "qsignd signing module");
	p->libraryVersion.major = 0;
	p->libraryVersion.minor = 1;
	return leave(CKR_OK);
}

/* ---- slots and tokens -------------------------------------------------------- */

static CK_RV
qp_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	FORWARD(C_GetSlotList, (tokenPresent, list, count));
	CK_RV rv = CKR_OK;

	(void)tokenPresent; /* every slot holds its token */
	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER();
	if (list != NULL && *count < M.nslots)
		rv = CKR_BUFFER_TOO_SMALL;
	else if (list != NULL)
		for (size_t i = 0; i < M.nslots; i++)
			list[i] = i;
	*count = M.nslots;
	return leave(rv);
}

static CK_RV
qp_GetSlotInfo(CK_SLOT_ID id, CK_SLOT_INFO_PTR p)
{
	FORWARD(C_GetSlotInfo, (id, p));
	char desc[65];

	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SLOT(id);
	memset(p, 0, sizeof(*p));
	snprintf(desc, sizeof(desc), "qsignd role %s", M.slots[id].role);
	pad(p->slotDescription, sizeof(p->slotDescription), desc);
	pad(p->manufacturerID, sizeof(p->manufacturerID), "quorum-signer");
	p->flags = CKF_TOKEN_PRESENT;
	return leave(CKR_OK);
}

static CK_RV
qp_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR p)
{
	FORWARD(C_GetTokenInfo, (id, p));
	char serial[17];

	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SLOT(id);
	memset(p, 0, sizeof(*p));
	pad(p->label, sizeof(p->label), M.slots[id].role);
	pad(p->manufacturerID, sizeof(p->manufacturerID), "quorum-signer");
	pad(p->model, sizeof(p->model), M.slots[id].quorum ? "qsignd quorum" : "qsignd online");
	snprintf(serial, sizeof(serial), "%016lx", (unsigned long)id);
	pad(p->serialNumber, sizeof(p->serialNumber), serial);
	/* No PIN: the principal's identity key authenticates every call. */
	p->flags = CKF_TOKEN_INITIALIZED | CKF_WRITE_PROTECTED | CKF_USER_PIN_INITIALIZED;
	p->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	p->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
	p->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	p->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
	p->ulMaxPinLen = 0;
	p->ulMinPinLen = 0;
	p->ulTotalPublicMemory = p->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	p->ulTotalPrivateMemory = p->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	p->hardwareVersion.major = p->firmwareVersion.major = 0;
	return leave(CKR_OK);
}

/* Mechanisms of a slot: those of its keys' families, each once. */
static size_t
slot_mechs(const struct slot *s, CK_MECHANISM_TYPE *out, size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < s->nkeys; k++) {
		size_t m = s->keys[k].nmechs;
		const CK_MECHANISM_TYPE *l = s->keys[k].mechs;
		for (size_t i = 0; i < m; i++) {
			size_t j;
			for (j = 0; j < n && out[j] != l[i]; j++)
				;
			if (j == n && n < max)
				out[n++] = l[i];
		}
	}
	return n;
}

static CK_RV
qp_GetMechanismList(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	FORWARD(C_GetMechanismList, (id, list, count));
	CK_MECHANISM_TYPE m[16];
	size_t n;
	CK_RV rv = CKR_OK;

	if (count == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SLOT(id);
	n = slot_mechs(&M.slots[id], m, 16);
	if (list != NULL && *count < n)
		rv = CKR_BUFFER_TOO_SMALL;
	else if (list != NULL)
		memcpy(list, m, n * sizeof(*m));
	*count = n;
	return leave(rv);
}

static CK_RV
qp_GetMechanismInfo(CK_SLOT_ID id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR p)
{
	FORWARD(C_GetMechanismInfo, (id, type, p));
	CK_MECHANISM_TYPE m[16];
	size_t n, i;

	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SLOT(id);
	n = slot_mechs(&M.slots[id], m, 16);
	for (i = 0; i < n && m[i] != type; i++)
		;
	if (i == n || !p11_mech_info(type, p))
		return leave(CKR_MECHANISM_INVALID);
	return leave(CKR_OK);
}

/* ---- sessions ---------------------------------------------------------------- */

static CK_RV
qp_OpenSession(CK_SLOT_ID id, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
               CK_SESSION_HANDLE_PTR out)
{
	FORWARD(C_OpenSession, (id, flags, app, notify, out));
	struct session *s;
	size_t i;

	(void)app;
	(void)notify;
	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SLOT(id);
	if (!(flags & CKF_SERIAL_SESSION))
		return leave(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	for (i = 0; i < P11_MAX_SESSIONS && M.sess[i] != NULL; i++)
		;
	if (i == P11_MAX_SESSIONS)
		return leave(CKR_SESSION_COUNT);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return leave(CKR_HOST_MEMORY);
	s->h = M.next_handle++;
	s->slot = id;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	M.sess[i] = s;
	*out = s->h;
	return leave(CKR_OK);
}

static void
sessions_close(CK_SLOT_ID slot, CK_SESSION_HANDLE h, int all)
{
	int left = 0;

	for (size_t i = 0; i < P11_MAX_SESSIONS; i++) {
		if (M.sess[i] == NULL || M.sess[i]->slot != slot)
			continue;
		if (all || M.sess[i]->h == h) {
			session_free(M.sess[i]);
			M.sess[i] = NULL;
		} else {
			left = 1;
		}
	}
	if (!left) /* the login state ends with the token's last session */
		M.slots[slot].logged_in = 0;
}

static CK_RV
qp_CloseSession(CK_SESSION_HANDLE h)
{
	FORWARD(C_CloseSession, (h));
	struct session *s;

	ENTER_SESSION(h, s);
	sessions_close(s->slot, h, 0);
	return leave(CKR_OK);
}

static CK_RV
qp_CloseAllSessions(CK_SLOT_ID id)
{
	FORWARD(C_CloseAllSessions, (id));
	ENTER_SLOT(id);
	sessions_close(id, 0, 1);
	return leave(CKR_OK);
}

static CK_RV
qp_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR p)
{
	FORWARD(C_GetSessionInfo, (h, p));
	struct session *s;
	int rw, user;

	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	rw = (s->flags & CKF_RW_SESSION) != 0;
	user = M.slots[s->slot].logged_in;
	memset(p, 0, sizeof(*p));
	p->slotID = s->slot;
	p->flags = s->flags;
	p->state = rw ? (user ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION)
	              : (user ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION);
	return leave(CKR_OK);
}

/* No PIN protects these tokens (the identity key does): a login is
 * accepted, its PIN ignored, and only the session states change. */
static CK_RV
qp_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
	FORWARD(C_Login, (h, user, pin, len));
	struct session *s;

	(void)pin;
	(void)len;
	ENTER_SESSION(h, s);
	if (user != CKU_USER && user != CKU_SO && user != CKU_CONTEXT_SPECIFIC)
		return leave(CKR_USER_TYPE_INVALID);
	if (user == CKU_CONTEXT_SPECIFIC)
		return leave(CKR_OK);
	if (M.slots[s->slot].logged_in)
		return leave(CKR_USER_ALREADY_LOGGED_IN);
	M.slots[s->slot].logged_in = 1;
	return leave(CKR_OK);
}

static CK_RV
qp_Logout(CK_SESSION_HANDLE h)
{
	FORWARD(C_Logout, (h));
	struct session *s;

	ENTER_SESSION(h, s);
	if (!M.slots[s->slot].logged_in)
		return leave(CKR_USER_NOT_LOGGED_IN);
	M.slots[s->slot].logged_in = 0;
	return leave(CKR_OK);
}

/* ---- objects ------------------------------------------------------------------ */

static CK_RV
qp_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	FORWARD(C_GetAttributeValue, (h, o, tmpl, n));
	struct session *s;
	size_t key;
	int kind;

	if (tmpl == NULL && n > 0)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (!obj_decode(o, s->slot, &key, &kind))
		return leave(CKR_OBJECT_HANDLE_INVALID);
	return leave(p11_obj_get(&M.slots[s->slot].keys[key], kind, tmpl, n));
}

static CK_RV
qp_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ULONG_PTR size)
{
	FORWARD(C_GetObjectSize, (h, o, size));
	struct session *s;
	size_t key;
	int kind;

	if (size == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (!obj_decode(o, s->slot, &key, &kind))
		return leave(CKR_OBJECT_HANDLE_INVALID);
	*size = CK_UNAVAILABLE_INFORMATION;
	return leave(CKR_OK);
}

static CK_RV
qp_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	FORWARD(C_FindObjectsInit, (h, tmpl, n));
	struct session *s;
	const struct slot *sl;

	if (tmpl == NULL && n > 0)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (s->finding)
		return leave(CKR_OPERATION_ACTIVE);
	sl = &M.slots[s->slot];
	free(s->found);
	s->nfound = s->pos = 0;
	if ((s->found = calloc(sl->nkeys * P11_OBJ_KINDS + 1, sizeof(*s->found))) == NULL)
		return leave(CKR_HOST_MEMORY);
	/* The matches are fixed now: objects never change under a search. */
	for (size_t k = 0; k < sl->nkeys; k++)
		for (int kind = 0; kind < P11_OBJ_KINDS; kind++)
			if (p11_obj_match(&sl->keys[k], kind, tmpl, n))
				s->found[s->nfound++] = OBJ_HANDLE(s->slot, k, (size_t)kind);
	s->finding = 1;
	return leave(CKR_OK);
}

static CK_RV
qp_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count)
{
	FORWARD(C_FindObjects, (h, out, max, count));
	struct session *s;
	CK_ULONG n = 0;

	if ((out == NULL && max > 0) || count == NULL)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (!s->finding)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	while (n < max && s->pos < s->nfound)
		out[n++] = s->found[s->pos++];
	*count = n;
	return leave(CKR_OK);
}

static CK_RV
qp_FindObjectsFinal(CK_SESSION_HANDLE h)
{
	FORWARD(C_FindObjectsFinal, (h));
	struct session *s;

	ENTER_SESSION(h, s);
	if (!s->finding)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	s->finding = 0;
	free(s->found);
	s->found = NULL;
	s->nfound = s->pos = 0;
	return leave(CKR_OK);
}

/* ---- signing ------------------------------------------------------------------ */

static CK_RV
qp_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE o)
{
	FORWARD(C_SignInit, (h, mech, o));
	struct session *s;
	const struct p11_key *k;
	size_t key;
	int kind;
	CK_RV rv;

	ENTER_SESSION(h, s);
	if (s->signing)
		return leave(CKR_OPERATION_ACTIVE);
	if (!obj_decode(o, s->slot, &key, &kind))
		return leave(CKR_OBJECT_HANDLE_INVALID);
	if (kind != P11_OBJ_PRIV)
		return leave(CKR_KEY_FUNCTION_NOT_PERMITTED);
	k = &M.slots[s->slot].keys[key];
	if ((rv = p11_op_init(&s->op, mech, k->fam, k->sig_len, k->hashes)) != CKR_OK)
		return leave(rv);
	s->signing = 1;
	s->key = key;
	return leave(CKR_OK);
}

/* What one signature needs once the lock is dropped. */
struct sign_job {
	char role[QS_MAX_NAME + 1];
	char key[QS_MAX_NAME + 1];
	int quorum;
	int allow_digest, allow_blob;
	struct p11_op op;
};

/* Lock held. Hand the session's operation over to a job (the session is
 * free for the next C_SignInit whatever the outcome, as the standard says
 * for every result but CKR_BUFFER_TOO_SMALL and a length query). */
static void
job_take(struct session *s, struct sign_job *j)
{
	const struct slot *sl = &M.slots[s->slot];

	snprintf(j->role, sizeof(j->role), "%s", sl->role);
	snprintf(j->key, sizeof(j->key), "%s", sl->keys[s->key].name);
	j->quorum = sl->quorum;
	j->allow_digest = sl->allow_digest;
	j->allow_blob = sl->allow_blob;
	j->op = s->op;
	memset(&s->op, 0, sizeof(s->op));
	s->signing = 0;
}

static CK_RV
refusal(qsc_client *c, int r, const struct sign_job *j)
{
	int status = qsc_last_status(c);

	pthread_mutex_lock(&M.lock);
	if (status < 0 || status == QS_STATUS_UNAVAILABLE) {
		report("qsignd at %s unreachable or unavailable: %s", M.cfg.server,
		       qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		pthread_mutex_unlock(&M.lock);
		return CKR_DEVICE_ERROR;
	}
	report("qsignd refused to sign with role %s key %s: %s", j->role, j->key,
	       qsc_last_message(c)[0] ? qsc_last_message(c) : qs_strerror(r));
	pthread_mutex_unlock(&M.lock);
	return CKR_FUNCTION_REJECTED;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A quorum role: submit a request and wait for its approvals. */
static CK_RV
sign_quorum(qsc_client *c, const struct sign_job *j, const struct p11_payload *pl, uint8_t *sig,
            size_t *sig_len)
{
	Qsign__V1__RequestView *v = NULL;
	Qsign__V1__FetchResponse *f = NULL;
	char id[QS_MAX_NAME + 1];
	const char *kind = pl->kind == QSIGN__V1__PAYLOAD_KIND__DIGEST ? "digest" : "blob";
	time_t deadline;
	CK_RV rv = CKR_FUNCTION_REJECTED;
	int r, state;

	/* The request names the mechanism's hash: the approvals cover it, and
	 * the role's quorum.hashes must list it (RoleInfo.hashes: a mechanism
	 * of another hash was refused at C_SignInit). */
	if ((r = qsc_request_submit_hash(c, j->role, kind, pl->hash, pl->data, pl->len,
	                                 "PKCS#11 qp_Sign", NULL, &v)) != 0)
		return refusal(c, r, j);
	snprintf(id, sizeof(id), "%s", v->id);
	pthread_mutex_lock(&M.lock);
	deadline = time(NULL) + M.cfg.quorum_wait;
	pthread_mutex_unlock(&M.lock);
	/* Not through report(): every request is news. */
	fprintf(stderr,
	        "libqsign-pkcs11: request %s submitted to role %s; waiting for approvals "
	        "(qsign request show %s)\n",
	        id, j->role, id);
	for (;;) {
		state = v->state;
		qsc_free(v);
		v = NULL;
		if (state == QSIGN__V1__REQUEST_STATE__REQ_SIGNED)
			break;
		if (state != QSIGN__V1__REQUEST_STATE__REQ_PENDING &&
		    state != QSIGN__V1__REQUEST_STATE__REQ_APPROVED) {
			fprintf(stderr, "libqsign-pkcs11: request %s ended unsigned (state %d)\n",
			        id, state);
			return CKR_FUNCTION_REJECTED;
		}
		if (time(NULL) >= deadline) {
			fprintf(stderr,
			        "libqsign-pkcs11: request %s not approved in time; it stays open\n",
			        id);
			return CKR_FUNCTION_REJECTED;
		}
		sleep_ms(P11_QUORUM_POLL_MS);
		if ((r = qsc_request_get(c, id, 0, &v)) != 0)
			return refusal(c, r, j);
	}
	if ((r = qsc_request_fetch(c, id, &f)) != 0)
		return refusal(c, r, j);
	for (size_t i = 0; i < f->n_signatures; i++) {
		const Qsign__V1__RequestSignature *s = f->signatures[i];
		if (strcmp(s->key, j->key) == 0 && s->signature.len <= P11_SIG_MAX) {
			memcpy(sig, s->signature.data, s->signature.len);
			*sig_len = s->signature.len;
			rv = CKR_OK;
		}
	}
	qsc_free(f);
	return rv;
}

static CK_RV
sign_job_run(struct sign_job *j, const uint8_t *in, size_t in_len, CK_BYTE_PTR out)
{
	struct p11_payload pl;
	Qsign__V1__SignResponse *resp = NULL;
	qsc_client *c = NULL;
	uint8_t sig[P11_SIG_MAX];
	size_t sig_len = 0;
	CK_RV rv;
	int r;

	if ((rv = p11_op_payload(&j->op, in, in_len, j->allow_digest, j->allow_blob, &pl)) !=
	    CKR_OK) {
		if (rv == CKR_FUNCTION_REJECTED) {
			pthread_mutex_lock(&M.lock);
			report("role %s takes neither form this mechanism sends", j->role);
			pthread_mutex_unlock(&M.lock);
		}
		return rv;
	}
	if ((rv = client_borrow(&c)) != CKR_OK)
		return rv;
	if (j->quorum) {
		rv = sign_quorum(c, j, &pl, sig, &sig_len);
	} else if ((r = qsc_sign_hash(c, j->role, j->key, pl.kind, pl.hash, pl.data, pl.len,
	                              &resp)) != 0) {
		rv = refusal(c, r, j);
	} else if (strcmp(resp->key, j->key) != 0 || resp->signature.len > sizeof(sig)) {
		rv = CKR_DEVICE_ERROR;
	} else {
		memcpy(sig, resp->signature.data, resp->signature.len);
		sig_len = resp->signature.len;
		rv = CKR_OK;
	}
	qsc_free(resp);
	if (rv == CKR_DEVICE_ERROR && qsc_last_status(c) < 0) {
		qsc_close(c); /* a broken connection is not pooled */
		c = NULL;
	}
	if (c != NULL)
		client_return(c);
	if (rv == CKR_OK)
		rv = p11_sig_format(&j->op, sig, sig_len, out);
	return rv;
}

/* Length query and CKR_BUFFER_TOO_SMALL keep the operation; lock held. */
static int
length_only(const struct session *s, CK_BYTE_PTR sig, CK_ULONG_PTR len, CK_RV *rv)
{
	if (sig == NULL) {
		*len = s->op.sig_len;
		*rv = CKR_OK;
		return 1;
	}
	if (*len < s->op.sig_len) {
		*len = s->op.sig_len;
		*rv = CKR_BUFFER_TOO_SMALL;
		return 1;
	}
	return 0;
}

static CK_RV
sign_common(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG data_len, int final, CK_BYTE_PTR sig,
            CK_ULONG_PTR sig_len)
{
	struct session *s;
	struct sign_job j;
	CK_RV rv;

	if (sig_len == NULL || (!final && data == NULL && data_len > 0))
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (!s->signing)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	if (!final && s->op.updated) {
		/* C_Sign after C_SignUpdate ends the operation. */
		p11_op_free(&s->op);
		s->signing = 0;
		return leave(CKR_OPERATION_ACTIVE);
	}
	if (length_only(s, sig, sig_len, &rv))
		return leave(rv);
	job_take(s, &j);
	pthread_mutex_unlock(&M.lock);
	rv = sign_job_run(&j, final ? NULL : data, final ? 0 : data_len, sig);
	if (rv == CKR_OK)
		*sig_len = j.op.sig_len;
	p11_op_free(&j.op);
	return rv;
}

static CK_RV
qp_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR sig,
        CK_ULONG_PTR sig_len)
{
	FORWARD(C_Sign, (h, data, data_len, sig, sig_len));
	return sign_common(h, data, data_len, 0, sig, sig_len);
}

static CK_RV
qp_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR part, CK_ULONG len)
{
	FORWARD(C_SignUpdate, (h, part, len));
	struct session *s;
	CK_RV rv;

	if (part == NULL && len > 0)
		return CKR_ARGUMENTS_BAD;
	ENTER_SESSION(h, s);
	if (!s->signing)
		return leave(CKR_OPERATION_NOT_INITIALIZED);
	if ((rv = p11_op_update(&s->op, part, len)) != CKR_OK) {
		p11_op_free(&s->op);
		s->signing = 0;
	}
	return leave(rv);
}

static CK_RV
qp_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	FORWARD(C_SignFinal, (h, sig, sig_len));
	return sign_common(h, NULL, 0, 1, sig, sig_len);
}

/* ---- not supported ---------------------------------------------------------------- */

#define UNSUPPORTED(name, ...)                                                                     \
	static CK_RV name(__VA_ARGS__)                                                             \
	{                                                                                          \
		return CKR_FUNCTION_NOT_SUPPORTED;                                                 \
	}

/* The stubs name their parameters only because C wants them. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
UNSUPPORTED(qp_InitToken, CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d)
UNSUPPORTED(qp_InitPIN, CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c)
UNSUPPORTED(qp_SetPIN, CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d,
            CK_ULONG e)
UNSUPPORTED(qp_GetOperationState, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c)
UNSUPPORTED(qp_SetOperationState, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c,
            CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e)
UNSUPPORTED(qp_CreateObject, CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c,
            CK_OBJECT_HANDLE_PTR d)
UNSUPPORTED(qp_CopyObject, CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d,
            CK_OBJECT_HANDLE_PTR e)
UNSUPPORTED(qp_DestroyObject, CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b)
UNSUPPORTED(qp_SetAttributeValue, CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c,
            CK_ULONG d)
UNSUPPORTED(qp_EncryptInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c)
UNSUPPORTED(qp_Encrypt, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_EncryptUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_EncryptFinal, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c)
UNSUPPORTED(qp_DecryptInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c)
UNSUPPORTED(qp_Decrypt, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DecryptUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DecryptFinal, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c)
UNSUPPORTED(qp_DigestInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b)
UNSUPPORTED(qp_Digest, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DigestUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c)
UNSUPPORTED(qp_DigestKey, CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b)
UNSUPPORTED(qp_DigestFinal, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c)
UNSUPPORTED(qp_SignRecoverInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c)
UNSUPPORTED(qp_SignRecover, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_VerifyInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c)
UNSUPPORTED(qp_Verify, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG e)
UNSUPPORTED(qp_VerifyUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c)
UNSUPPORTED(qp_VerifyFinal, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c)
UNSUPPORTED(qp_VerifyRecoverInit, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c)
UNSUPPORTED(qp_VerifyRecover, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DigestEncryptUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DecryptDigestUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_SignEncryptUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_DecryptVerifyUpdate, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d,
            CK_ULONG_PTR e)
UNSUPPORTED(qp_GenerateKey, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d,
            CK_OBJECT_HANDLE_PTR e)
UNSUPPORTED(qp_GenerateKeyPair, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c,
            CK_ULONG d, CK_ATTRIBUTE_PTR e, CK_ULONG f, CK_OBJECT_HANDLE_PTR g,
            CK_OBJECT_HANDLE_PTR i)
UNSUPPORTED(qp_WrapKey, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
            CK_OBJECT_HANDLE d, CK_BYTE_PTR e, CK_ULONG_PTR f)
UNSUPPORTED(qp_UnwrapKey, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
            CK_BYTE_PTR d, CK_ULONG e, CK_ATTRIBUTE_PTR f, CK_ULONG g, CK_OBJECT_HANDLE_PTR i)
UNSUPPORTED(qp_DeriveKey, CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c,
            CK_ATTRIBUTE_PTR d, CK_ULONG e, CK_OBJECT_HANDLE_PTR f)
UNSUPPORTED(qp_SeedRandom, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c)
UNSUPPORTED(qp_GenerateRandom, CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c)
UNSUPPORTED(qp_GetFunctionStatus, CK_SESSION_HANDLE a)
UNSUPPORTED(qp_CancelFunction, CK_SESSION_HANDLE a)
UNSUPPORTED(qp_WaitForSlotEvent, CK_FLAGS a, CK_SLOT_ID_PTR b, CK_VOID_PTR c)
#pragma GCC diagnostic pop

static CK_RV qp_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

static CK_FUNCTION_LIST function_list = {
        {2, 40},
        qp_Initialize,
        qp_Finalize,
        qp_GetInfo,
        qp_GetFunctionList,
        qp_GetSlotList,
        qp_GetSlotInfo,
        qp_GetTokenInfo,
        qp_GetMechanismList,
        qp_GetMechanismInfo,
        qp_InitToken,
        qp_InitPIN,
        qp_SetPIN,
        qp_OpenSession,
        qp_CloseSession,
        qp_CloseAllSessions,
        qp_GetSessionInfo,
        qp_GetOperationState,
        qp_SetOperationState,
        qp_Login,
        qp_Logout,
        qp_CreateObject,
        qp_CopyObject,
        qp_DestroyObject,
        qp_GetObjectSize,
        qp_GetAttributeValue,
        qp_SetAttributeValue,
        qp_FindObjectsInit,
        qp_FindObjects,
        qp_FindObjectsFinal,
        qp_EncryptInit,
        qp_Encrypt,
        qp_EncryptUpdate,
        qp_EncryptFinal,
        qp_DecryptInit,
        qp_Decrypt,
        qp_DecryptUpdate,
        qp_DecryptFinal,
        qp_DigestInit,
        qp_Digest,
        qp_DigestUpdate,
        qp_DigestKey,
        qp_DigestFinal,
        qp_SignInit,
        qp_Sign,
        qp_SignUpdate,
        qp_SignFinal,
        qp_SignRecoverInit,
        qp_SignRecover,
        qp_VerifyInit,
        qp_Verify,
        qp_VerifyUpdate,
        qp_VerifyFinal,
        qp_VerifyRecoverInit,
        qp_VerifyRecover,
        qp_DigestEncryptUpdate,
        qp_DecryptDigestUpdate,
        qp_SignEncryptUpdate,
        qp_DecryptVerifyUpdate,
        qp_GenerateKey,
        qp_GenerateKeyPair,
        qp_WrapKey,
        qp_UnwrapKey,
        qp_DeriveKey,
        qp_SeedRandom,
        qp_GenerateRandom,
        qp_GetFunctionStatus,
        qp_CancelFunction,
        qp_WaitForSlotEvent,
};

static CK_RV
qp_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	*out = &function_list;
	return CKR_OK;
}

/* The one exported symbol (with the version script): everything else is
 * reached through the function list. */
P11_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	return qp_GetFunctionList(out);
}
