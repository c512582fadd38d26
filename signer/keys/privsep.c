/*
 * privsep.c - signer helpers, their launcher, and the front's pool of them.
 * Protocol and process model: privsep.h.
 */
#include "privsep.h"
#include "privsep_wire.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harden.h"
#include "keyring.h"
#include "policy.h"
#include "privsep_guard.h"
#include "log.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "tuf_meta.h"

/* ps_call's "the helper is gone or broke the protocol": replace it. */
#define PS_DEAD 2

/* ------------------------------------------------------------ framing */

static int
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 0 = got all n, 1 = EOF before the first byte, -1 = error or EOF inside. */
static int
recv_all(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = recv(fd, p + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 && got == 0)
			return 1;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static int
wb_send(int fd, struct ps_wbuf *b)
{
	int r;

	if ((r = ps_wb_finish(b)) != 0)
		return r;
	return send_all(fd, b->p, b->len) == 0 ? 0 : qs_fail(QS_ERR_IO, "signer socket: %s",
							      strerror(errno));
}

/* One frame: 0 with *body (malloc'd, *len >= 1 bytes), 1 on a clean EOF,
 * QS_ERR_IO on a broken stream, QS_ERR_INVALID on a length out of range. */
static int
read_frame(int fd, uint8_t **body, size_t *len)
{
	uint8_t h[4];
	uint32_t n;
	int r;

	*body = NULL;
	*len = 0;
	if ((r = recv_all(fd, h, 4)) != 0)
		return r == 1 ? 1 : qs_fail(QS_ERR_IO, "signer socket: short frame header");
	if ((r = ps_frame_len(h, &n)) != 0)
		return r;
	if ((*body = malloc(n)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (recv_all(fd, *body, n) != 0) {
		free(*body);
		*body = NULL;
		return qs_fail(QS_ERR_IO, "signer socket: short frame body");
	}
	*len = n;
	return 0;
}

static void
free_body(uint8_t *b, size_t n)
{
	if (b != NULL)
		explicit_bzero(b, n);
	free(b);
}

/* Close every descriptor above 2 except keep. */
static void
close_fds_except(int keep)
{
	DIR *d;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	struct dirent *e;
	int dfd = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		if (*end == '\0' && n > 2 && n != dfd && n != keep)
			close((int)n);
	}
	closedir(d);
}

/* ------------------------------------------------------------ helper */

struct helper_key {
	char *uri;
	hsm_key *key;
	size_t tok;
	uint8_t *der; /* its public key: what the guard judges it by */
	size_t der_len;
	char label[HSM_LABEL_MAX + 1]; /* its CKA_LABEL in the token */
};

struct helper {
	struct keyring *kr;
	hsm_token *const *toks;
	size_t ntoks;
	struct helper_key *keys;
	size_t nkeys;
	struct ps_guard *guard;
};

/* Read by the launcher before it forks any helper (privsep_guard.h). */
static struct ps_guard_boot guard_boot;

static void
put_info(struct helper *h, struct ps_wbuf *out)
{
	ps_wb_u32(out, (uint32_t)h->ntoks);
	for (size_t i = 0; i < h->ntoks; i++) {
		unsigned s = 0, rc = 0;
		hsm_stats(h->toks[i], &s, &rc);
		ps_wb_str(out, hsm_token_label(h->toks[i]));
		ps_wb_u32(out, s);
		ps_wb_u32(out, rc);
	}
}

static int
tok_for(struct helper *h, const char *uri)
{
	for (size_t i = 0; i < h->ntoks; i++)
		if (hsm_token_matches(h->toks[i], uri))
			return (int)i;
	return -1;
}

/* The permission check on handles: only those this helper handed out. */
static int
key_of(struct helper *h, uint32_t handle, struct helper_key **k)
{
	if (handle == 0 || handle > h->nkeys) {
		log_warn("privsep.refused", "handle=%u reason=\"not handed out by this signer\"",
			 handle);
		return qs_fail(QS_ERR_DENIED, "key handle %u was not handed out by this signer",
			       handle);
	}
	*k = &h->keys[handle - 1];
	return 0;
}

/* The handlers get a request that decoded (ps_request_decode). */

static int
h_info(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	(void)q;
	put_info(h, out);
	return 0;
}

static int
h_token_for(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	int i = tok_for(h, q->uri);

	ps_wb_u32(out, i < 0 ? PS_NO_TOKEN : (uint32_t)i);
	return 0;
}

static int
h_find(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	const char *uri = q->uri;
	struct helper_key *k = NULL;
	hsm_key *key = NULL;
	size_t handle = 0;
	int t, r;

	for (size_t i = 0; i < h->nkeys && handle == 0; i++)
		if (strcmp(h->keys[i].uri, uri) == 0)
			handle = i + 1;
	if (handle == 0) {
		if ((t = tok_for(h, uri)) < 0)
			return qs_fail(QS_ERR_NOT_FOUND, "no configured token matches %s", uri);
		if (h->nkeys >= QS_MAX_HELPER_KEYS)
			return qs_fail(QS_ERR_EXHAUSTED, "more than %d keys in one signer",
				       QS_MAX_HELPER_KEYS);
		if ((r = hsm_key_find(h->toks[t], uri, &key)) != 0)
			return r;
		struct helper_key *nk = realloc(h->keys, (h->nkeys + 1) * sizeof(*nk));
		char *u = strdup(uri);
		if (nk == NULL || u == NULL) {
			if (nk != NULL)
				h->keys = nk;
			free(u);
			hsm_key_free(key);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		h->keys = nk;
		h->keys[h->nkeys] = (struct helper_key){.uri = u, .key = key, .tok = (size_t)t};
		k = &h->keys[h->nkeys];
		if ((r = hsm_key_spki_der(h->toks[k->tok], k->key, &k->der, &k->der_len)) != 0) {
			hsm_key_free(key);
			free(u);
			return r;
		}
		{
			struct hsm_keyinfo ki;
			hsm_key_info(key, &ki);
			memcpy(k->label, ki.label, sizeof(k->label));
		}
		handle = ++h->nkeys;
	}
	k = &h->keys[handle - 1];
	ps_wb_u32(out, (uint32_t)handle);
	ps_wb_u8(out, (uint8_t)hsm_key_type(k->key));
	ps_wb_u32(out, (uint32_t)k->tok);
	ps_wb_bytes(out, k->der, k->der_len);
	return 0;
}

static int
h_sign(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_plain(h->guard, "sign", k->der, k->der_len, k->label, 1)) != 0)
		return r;
	if ((r = hsm_sign(h->toks[k->tok], k->key, q->data, q->data_len, sig, &sig_len)) != 0)
		return r;
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
h_sign_many(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX];
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_plain(h->guard, "sign_many", k->der, k->der_len, k->label,
				(uint32_t)q->nitems)) != 0)
		return r;
	for (size_t i = 0; i < q->nitems; i++) {
		size_t sig_len = 0;
		int ri = hsm_sign(h->toks[k->tok], k->key, q->items[i], q->item_lens[i], sig,
				  &sig_len);
		ps_wb_u32(out, (uint32_t)ri);
		ps_wb_bytes(out, sig, ri == 0 ? sig_len : 0);
	}
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
h_pubkey(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = hsm_key_spki_der(h->toks[k->tok], k->key, &der, &der_len)) != 0)
		return r;
	ps_wb_bytes(out, der, der_len);
	free(der);
	return 0;
}

/* 1 if a private key of token arg has this label (or they cannot be
 * listed: then nothing is generated). */
static int
label_taken(void *arg, const char *label)
{
	struct hsm_keyinfo *ks = NULL;
	size_t n = 0;
	int taken = 0;

	if (hsm_key_list(arg, &ks, &n) != 0) {
		qs_errclear();
		return 1;
	}
	for (size_t i = 0; i < n && !taken; i++)
		taken = strcmp(ks[i].label, label) == 0;
	free(ks);
	return taken;
}

static int
h_keygen(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	hsm_key *key = NULL;
	uint8_t type = q->keytype;
	int t, r;

	(void)out;
	if (type != HSM_KEY_EC_P256 && type != HSM_KEY_EC_P384 && type != HSM_KEY_ED25519 &&
	    type != HSM_KEY_RSA3072)
		return qs_fail(QS_ERR_INVALID, "key type %u", type);
	if ((t = tok_for(h, q->uri)) < 0)
		return qs_fail(QS_ERR_NOT_FOUND, "no configured token matches %s", q->uri);
	if ((r = ps_guard_keygen(q->label, label_taken, h->toks[t])) != 0)
		return r;
	r = hsm_keygen(h->toks[t], (enum hsm_keytype)type, q->label, NULL, 0, &key);
	hsm_key_free(key);
	if (r == 0)
		log_info("privsep.keygen", "token=%s label=%s", hsm_token_label(h->toks[t]),
			 q->label);
	return r;
}

static int
h_policy(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	(void)out;
	return ps_guard_policy(h->guard, &q->ev, q->data, q->data_len);
}

static int
h_sign_quorum(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	const uint8_t *in = NULL;
	size_t sig_len = 0, in_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_quorum(h->guard, k->der, k->der_len, hsm_key_type(k->key), &q->ev,
				 q->data, q->data_len, dg, &in, &in_len)) != 0 ||
	    (r = hsm_sign(h->toks[k->tok], k->key, in, in_len, sig, &sig_len)) != 0)
		return r;
	log_info("privsep.sign_quorum", "request=%.40s role=%.64s", q->ev.id, q->ev.role);
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
h_sign_checkpoint(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	const uint8_t *in = NULL;
	size_t sig_len = 0, in_len = 0;
	uint64_t size = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_checkpoint(h->guard, k->der, k->der_len, hsm_key_type(k->key), q->data,
				     q->data_len, dg, &in, &in_len, &size)) != 0 ||
	    (r = hsm_sign(h->toks[k->tok], k->key, in, in_len, sig, &sig_len)) != 0)
		return r;
	ps_guard_checkpoint_signed(h->guard, size);
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
h_sign_tuf(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct ps_guard_tuf_mark mark;
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	const uint8_t *in = NULL;
	size_t sig_len = 0, in_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_tuf(h->guard, k->der, k->der_len, k->label, hsm_key_type(k->key), q->repo,
			      q->data, q->data_len, dg, &in, &in_len, &mark)) != 0 ||
	    (r = hsm_sign(h->toks[k->tok], k->key, in, in_len, sig, &sig_len)) != 0 ||
	    (r = ps_guard_tuf_signed(h->guard, k->der, k->der_len, &mark)) != 0)
		return r;
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
h_sign_x509(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	size_t sig_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_x509(h->guard, k->label, q->x509_kind, q->data, q->data_len, dg)) != 0 ||
	    (r = hsm_sign(h->toks[k->tok], k->key, dg, 32, sig, &sig_len)) != 0)
		return r;
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

/* The guard's way to the public key of a policy key (or the audit key). */
static int
helper_spki(void *arg, const char *uri, uint8_t **der, size_t *der_len)
{
	struct helper *h = arg;
	hsm_key *key = NULL;
	int t, r;

	*der = NULL;
	*der_len = 0;
	if ((t = tok_for(h, uri)) < 0)
		return QS_ERR_NOT_FOUND;
	if ((r = hsm_key_find(h->toks[t], uri, &key)) != 0)
		return r;
	r = hsm_key_spki_der(h->toks[t], key, der, der_len);
	hsm_key_free(key);
	return r;
}

/* The monitor's table: what a helper answers. Anything else is refused. */
static const struct ps_perm {
	uint8_t type;
	const char *name;
	int (*fn)(struct helper *, const struct ps_request *, struct ps_wbuf *);
} ps_perms[] = {
	{PS_INFO, "info", h_info},	 {PS_FIND, "find", h_find},
	{PS_SIGN, "sign", h_sign},	 {PS_KEYGEN, "keygen", h_keygen},
	{PS_PUBKEY, "pubkey", h_pubkey}, {PS_TOKEN_FOR, "token_for", h_token_for},
	{PS_SIGN_MANY, "sign_many", h_sign_many},
	{PS_POLICY, "policy", h_policy},
	{PS_SIGN_QUORUM, "sign_quorum", h_sign_quorum},
	{PS_SIGN_CHECKPOINT, "sign_checkpoint", h_sign_checkpoint},
	{PS_SIGN_TUF, "sign_tuf", h_sign_tuf},
	{PS_SIGN_X509, "sign_x509", h_sign_x509},
};

static void
helper_reply_error(struct ps_wbuf *out, uint8_t type, int r)
{
	out->len = 4;
	out->err = 0;
	ps_wb_u8(out, type);
	ps_wb_u32(out, (uint32_t)(int32_t)r);
	ps_wb_str(out, qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
}

static void __attribute__((noreturn))
helper_main(const struct config *c, int fd)
{
	struct helper h = {0};
	/* Decoded requests point into it: static, it is large (the batch). */
	static struct ps_request_in in;
	struct ps_wbuf out;
	uint8_t *body = NULL;
	size_t len = 0;
	int r, code = 0;

	close_fds_except(fd);
	prctl(PR_SET_NAME, "qsignd-signer", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	log_rename("qsignd-signer");
	signal(SIGPIPE, SIG_IGN);
	/* The tokens, the PIN and the login exist only from here on. */
	ps_wb_init(&out);
	ps_wb_u8(&out, PS_READY | PS_REPLY);
	ps_wb_u32(&out, 0);
	if ((r = keyring_open_local(c, &h.kr)) != 0) {
		helper_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)wb_send(fd, &out);
		_exit(1);
	}
	h.toks = keyring_local_tokens(h.kr, &h.ntoks);
	/* Before dropping privileges: it reads the checkpoint on disk. */
	if ((r = ps_guard_new(c, &guard_boot, helper_spki, &h, &h.guard)) != 0) {
		helper_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)wb_send(fd, &out);
		_exit(1);
	}
	if ((r = harden_drop(c->user, c->group, NULL)) != 0 ||
	    (c->seccomp && (r = harden_seccomp_helper()) < 0)) {
		helper_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)wb_send(fd, &out);
		_exit(1);
	}
	/* A change of credentials clears the parent-death signal: set again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	put_info(&h, &out);
	if (wb_send(fd, &out) != 0)
		_exit(1);
	for (;;) {
		const struct ps_perm *perm = NULL;
		uint8_t type;

		ps_wb_free(&out);
		free_body(body, len);
		if ((r = read_frame(fd, &body, &len)) == 1)
			break; /* the front closed: a normal stop */
		if (r != 0) {
			log_error("privsep.garbage", "reason=\"%s\"", qs_errdetail());
			code = 1;
			break;
		}
		type = body[0];
		for (size_t i = 0; i < sizeof(ps_perms) / sizeof(ps_perms[0]); i++)
			if (ps_perms[i].type == type)
				perm = &ps_perms[i];
		ps_wb_init(&out);
		ps_wb_u8(&out, (uint8_t)(type | PS_REPLY));
		ps_wb_u32(&out, 0);
		if (perm == NULL) {
			log_warn("privsep.refused",
				 "type=%u reason=\"request type not in the permission table\"",
				 type);
			r = qs_fail(QS_ERR_DENIED, "request type %u is not permitted", type);
		} else if (ps_request_decode(body, len, &in) != 0) {
			r = PS_GARBAGE;
		} else {
			qs_fail(QS_OK, "%s", "");
			r = perm->fn(&h, &in.q, &out);
		}
		if (r == PS_GARBAGE) {
			log_error("privsep.garbage",
				  "request=%s len=%zu reason=\"does not decode: exiting\"",
				  perm->name, len);
			code = 1;
			break;
		}
		if (r != 0)
			helper_reply_error(&out, (uint8_t)(type | PS_REPLY), r);
		if (wb_send(fd, &out) != 0)
			break;
	}
	ps_wb_free(&out);
	free_body(body, len);
	for (size_t i = 0; i < h.nkeys; i++) {
		hsm_key_free(h.keys[i].key);
		free(h.keys[i].uri);
		free(h.keys[i].der);
	}
	ps_guard_free(h.guard);
	free(h.keys);
	keyring_close(h.kr);
	close(fd);
	_exit(code);
}

/* ------------------------------------------------------------ launcher */

static int
send_fd(int ctl, int fd, pid_t pid)
{
	uint32_t v = (uint32_t)pid;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	memset(&u, 0, sizeof(u));
	if (fd >= 0) {
		struct cmsghdr *cm;
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while (sendmsg(ctl, &m, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* *fd = -1 when the launcher could not start a helper. */
static int
recv_fd(int ctl, int *fd, pid_t *pid)
{
	uint32_t v = 0;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	*pid = 0;
	while ((n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(v))
		return qs_fail(QS_ERR_UNAVAILABLE, "signer launcher gone");
	for (cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	*pid = (pid_t)v;
	if (*fd < 0)
		return qs_fail(QS_ERR_UNAVAILABLE, "signer launcher could not start a helper");
	return 0;
}

/* Set by ps_selftest before it starts the pool: that launcher answers 'X'
 * on ctl with a call its filter forbids. A serving qsignd never sets it,
 * so its launcher knows no such request. */
static int launcher_selftest;

static void __attribute__((noreturn))
launcher_main(const struct config *c, int ctl, pid_t front)
{
	uint8_t b;
	ssize_t n;
	int r;

	close_fds_except(ctl);
	prctl(PR_SET_NAME, "qsignd-launch", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != front)
		_exit(0);
	log_rename("qsignd-launch");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* helpers are reaped by the kernel */
	/* What every helper trusts: read here, before the front takes any
	 * input, and inherited by each helper forked later. */
	ps_guard_boot_read(c, &guard_boot);
	/* Before the first helper, which inherits it (privsep.h: why a
	 * deny-list). */
	if (c->seccomp && (r = harden_seccomp_launcher()) < 0) {
		log_error("privsep.launch_failed", "reason=\"seccomp: %s\"", qs_errdetail());
		_exit(1);
	}
	for (;;) {
		int sp[2];
		pid_t pid;

		while ((n = read(ctl, &b, 1)) < 0 && errno == EINTR)
			;
		if (n == 1 && b == 'X' && launcher_selftest) {
			/* Forbidden, and only a query without the filter. */
			(void)personality(0xffffffff);
			continue;
		}
		if (n != 1 || b != 'H')
			break;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
			log_error("privsep.launch_failed", "reason=\"socketpair: %s\"",
				  strerror(errno));
			if (send_fd(ctl, -1, 0) != 0)
				break;
			continue;
		}
		if ((pid = fork()) == 0) {
			close(ctl);
			close(sp[0]);
			helper_main(c, sp[1]);
		}
		close(sp[1]);
		if (pid < 0)
			log_error("privsep.launch_failed", "reason=\"fork: %s\"", strerror(errno));
		n = send_fd(ctl, pid < 0 ? -1 : sp[0], pid < 0 ? 0 : pid);
		close(sp[0]);
		if (n != 0)
			break;
	}
	close(ctl);
	/* With SIGCHLD ignored, wait returns ECHILD once every helper is gone. */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}

/* ------------------------------------------------------------ front */

struct ps_helper {
	int fd;
	pid_t pid;
	uint64_t gen; /* changes with every (re)start; key handles carry it */
	int busy;
	size_t chain_sent; /* policy versions it was handed (sync_chain) */
};

/* A policy version past the first, with its approvals: a PS_POLICY frame
 * ready to send to every helper, once each (a new helper gets them all). */
struct ps_chain_entry {
	uint8_t *frame;
	size_t len;
};

struct ps_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t ctl_mu;
	int ctl;
	pid_t launcher;
	uint64_t gens;
	unsigned n, rr;
	/* Helper h[n], beside the n that serve requests, serves only keys set
	 * apart with ps_keyref_reserve (the audit log's): a checkpoint, on
	 * every commit's critical path, never queues behind request
	 * signatures. */
	struct ps_helper h[QS_MAX_SIGNERS + 1];
	char **labels;
	size_t ntok;
	struct ps_chain_entry *chain; /* under mu; frames never change */
	size_t nchain;
};

struct ps_keyref {
	struct ps_pool *pool;
	char *uri;
	uint8_t *der; /* the public key found first: every helper must agree */
	size_t der_len;
	int only; /* the helper it always uses, or -1: any free one */
	uint32_t handle[QS_MAX_SIGNERS + 1];
	uint64_t gen[QS_MAX_SIGNERS + 1];
};

/* Decode a reply to `type` (ps_reply_decode): the helper's error, or 0
 * with the fields in *fields; PS_DEAD if it is not a well-formed reply to
 * this request. */
static int
parse_reply(uint8_t type, const uint8_t *body, size_t len, struct ps_rd *fields)
{
	int r = ps_reply_decode(type, body, len, fields);

	return r == PS_GARBAGE ? PS_DEAD : r;
}

/* Tokens of the first helper; later ones must report the same. The pool
 * takes the labels only from a READY that decoded to its end. */
static int
take_info(struct ps_pool *p, struct ps_rd *f)
{
	char label[QS_MAX_PRIVSEP_STR + 1], **labels = NULL;
	uint32_t n = 0;
	int r;

	if (ps_info_decode_count(f, &n) != 0 || n > QS_MAX_PRIVSEP_TOKENS)
		return PS_DEAD;
	if (p->labels != NULL && n != p->ntok)
		return qs_fail(QS_ERR_INTERNAL, "signer helpers disagree on the tokens");
	if (p->labels == NULL && (labels = calloc(n ? n : 1, sizeof(char *))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		if (ps_info_decode_token(f, label, NULL, NULL) != 0) {
			r = PS_DEAD;
			goto out;
		}
		if (labels != NULL && (labels[i] = strdup(label)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		/* Token indices travel in key handles: a later helper with
		 * the same tokens in another order would sign with the
		 * wrong one. */
		if (labels == NULL && strcmp(label, p->labels[i]) != 0) {
			r = qs_fail(QS_ERR_INTERNAL,
			            "signer helpers disagree on token %u (%s, now %s)", i,
			            p->labels[i], label);
			goto out;
		}
	}
	if (!ps_rd_end(f)) {
		r = PS_DEAD;
		goto out;
	}
	if (labels != NULL) {
		p->labels = labels;
		p->ntok = n;
		labels = NULL;
	}
	r = 0;
out:
	for (uint32_t i = 0; labels != NULL && i < n; i++)
		free(labels[i]);
	free(labels);
	return r;
}

/* Have the launcher start a helper into h and wait for its READY. */
static int
spawn(struct ps_pool *p, struct ps_helper *h)
{
	uint8_t b = 'H', *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int fd = -1, r;
	pid_t pid = 0;

	h->fd = -1;
	pthread_mutex_lock(&p->ctl_mu);
	if (send_all(p->ctl, &b, 1) != 0)
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer launcher gone");
	else
		r = recv_fd(p->ctl, &fd, &pid);
	pthread_mutex_unlock(&p->ctl_mu);
	if (r != 0)
		return r;
	if ((r = read_frame(fd, &body, &len)) != 0) {
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer helper %d died while starting", (int)pid);
		goto out;
	}
	if ((r = parse_reply(PS_READY, body, len, &f)) == 0)
		r = take_info(p, &f);
	if (r == PS_DEAD)
		r = qs_fail(QS_ERR_INTERNAL, "signer helper %d: malformed READY", (int)pid);
	if (r != 0)
		goto out;
	{
		/* Reply deadline: a helper stuck in its token is given up on
		 * (recv fails, the call sees a dead helper, bury() kills it).
		 * QSIGND_SIGNER_TIMEOUT_MS may shorten it (tests, fast tokens). */
		long ms = QS_PRIVSEP_REPLY_TIMEOUT_S * 1000L;
		const char *e = getenv("QSIGND_SIGNER_TIMEOUT_MS");
		struct timeval tv;
		if (e != NULL && atol(e) >= 100 && atol(e) < ms)
			ms = atol(e);
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
			r = qs_fail(QS_ERR_INTERNAL, "signer socket timeout: %s", strerror(errno));
			goto out;
		}
	}
	h->fd = fd;
	h->pid = pid;
	h->chain_sent = 0;
	pthread_mutex_lock(&p->mu);
	h->gen = ++p->gens;
	pthread_mutex_unlock(&p->mu);
	fd = -1;
	log_debug("privsep.helper_started", "pid=%d", (int)pid);
out:
	if (fd >= 0) {
		close(fd);
		kill(pid, SIGKILL);
	}
	free(body);
	return r;
}

static void
bury(struct ps_helper *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->pid > 0)
		kill(h->pid, SIGKILL); /* alive but broken: make sure */
	h->fd = -1;
	h->pid = 0;
}

/* Replace a dead helper. The caller holds it (busy). */
static int
restart(struct ps_pool *p, struct ps_helper *h)
{
	pid_t old = h->pid;
	int r;

	bury(h);
	if ((r = spawn(p, h)) != 0) {
		log_error("privsep.helper_restart_failed", "old_pid=%d reason=\"%s\"", (int)old,
			  qs_errdetail());
		return qs_fail(QS_ERR_UNAVAILABLE, "signer helper died and could not be restarted");
	}
	log_warn("privsep.helper_restarted", "old_pid=%d new_pid=%d", (int)old, (int)h->pid);
	return 0;
}

int
ps_pool_start(const struct config *c, unsigned n, struct ps_pool **out)
{
	struct ps_pool *p;
	int sv[2], r;
	pid_t front = getpid(), pid;

	*out = NULL;
	if (n == 0 || n > QS_MAX_SIGNERS)
		return qs_fail(QS_ERR_INVALID, "signers must be 1..%d", QS_MAX_SIGNERS);
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	pthread_mutex_init(&p->ctl_mu, NULL);
	p->ctl = -1;
	for (unsigned i = 0; i <= QS_MAX_SIGNERS; i++)
		p->h[i].fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		r = qs_fail(QS_ERR_IO, "socketpair: %s", strerror(errno));
		goto fail;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		r = qs_fail(QS_ERR_IO, "fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0) {
		close(sv[0]);
		launcher_main(c, sv[1], front);
	}
	close(sv[1]);
	p->ctl = sv[0];
	p->launcher = pid;
	p->n = n;
	for (unsigned i = 0; i <= n; i++) /* h[n]: the reserved one */
		if ((r = spawn(p, &p->h[i])) != 0)
			goto fail;
	log_info("privsep.start", "signers=%u reserved=1 launcher=%d", n, (int)pid);
	*out = p;
	return 0;
fail:
	ps_pool_stop(p);
	return r;
}

void
ps_pool_stop(struct ps_pool *p)
{
	if (p == NULL)
		return;
	for (unsigned i = 0; i <= QS_MAX_SIGNERS; i++)
		if (p->h[i].fd >= 0)
			close(p->h[i].fd); /* the helper sees EOF and exits */
	if (p->ctl >= 0)
		close(p->ctl);
	if (p->launcher > 0)
		while (waitpid(p->launcher, NULL, 0) < 0 && errno == EINTR)
			;
	for (size_t i = 0; p->labels != NULL && i < p->ntok; i++)
		free(p->labels[i]);
	free(p->labels);
	for (size_t i = 0; i < p->nchain; i++)
		free(p->chain[i].frame);
	free(p->chain);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->ctl_mu);
	free(p);
}

size_t
ps_pool_ntokens(const struct ps_pool *p)
{
	return p->ntok;
}

const char *
ps_pool_token_label(const struct ps_pool *p, size_t i)
{
	return i < p->ntok ? p->labels[i] : "?";
}

/* An idle helper, round robin among the idle ones: with one call at a time
 * per helper that is also the least busy. */
static unsigned
acquire(struct ps_pool *p)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		for (unsigned i = 0; i < p->n; i++) {
			unsigned j = (p->rr + i) % p->n;
			if (!p->h[j].busy) {
				p->h[j].busy = 1;
				p->rr = (j + 1) % p->n;
				pthread_mutex_unlock(&p->mu);
				return j;
			}
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
}

static void
release(struct ps_pool *p, unsigned i)
{
	pthread_mutex_lock(&p->mu);
	p->h[i].busy = 0;
	/* Waiters differ (any request helper, or one given helper): waking
	 * only one could wake one that cannot use helper i. */
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* Send req to helper h (held), read its reply. 0 with *body (caller frees)
 * and *fields, a QS error from the helper, or PS_DEAD. */
static int
call(struct ps_helper *h, uint8_t type, struct ps_wbuf *req, uint8_t **body, size_t *len,
     struct ps_rd *fields)
{
	int r;

	*body = NULL;
	*len = 0;
	if (h->fd < 0)
		return PS_DEAD;
	if (req->err)
		return qs_fail(QS_ERR_EXHAUSTED, "signer request over %u bytes",
			       QS_MAX_PRIVSEP_MSG);
	if (wb_send(h->fd, req) != 0 || read_frame(h->fd, body, len) != 0)
		return PS_DEAD;
	if ((r = parse_reply(type, *body, *len, fields)) != 0) {
		free_body(*body, *len);
		*body = NULL;
	}
	return r;
}

/* The handle of ref on helper i, finding the key there on first use. */
static int
resolve(struct ps_pool *p, unsigned i, struct ps_keyref *ref, uint32_t *handle)
{
	struct ps_helper *h = &p->h[i];
	struct ps_request q = {.type = PS_FIND, .uri = ref->uri};
	struct ps_find_reply fr;
	struct ps_wbuf req;
	struct ps_rd f;
	uint8_t *body = NULL;
	size_t len = 0;
	int r;

	if (ref->gen[i] == h->gen && h->fd >= 0) {
		*handle = ref->handle[i];
		return 0;
	}
	ps_request_encode(&req, &q);
	r = call(h, PS_FIND, &req, &body, &len, &f);
	ps_wb_free(&req);
	if (r != 0)
		return r;
	if (ps_find_reply_decode(&f, &fr) != 0) {
		free_body(body, len);
		return PS_DEAD;
	}
	/* A key replaced in the token under the same URI (or a helper that
	 * finds another one) must not sign under the identity the daemon
	 * published and logs. */
	if (fr.der_len != ref->der_len || memcmp(fr.der, ref->der, fr.der_len) != 0) {
		free_body(body, len);
		return qs_fail(QS_ERR_PRECONDITION,
			       "key %s: the token now holds another key under this URI than "
			       "when qsignd found it (the public key differs); restart qsignd to "
			       "use the new key",
			       ref->uri);
	}
	*handle = fr.handle;
	ref->handle[i] = *handle;
	ref->gen[i] = h->gen;
	free_body(body, len);
	return 0;
}

/* Hand helper h (held) the policy versions it has not seen yet. A version
 * it refuses stays refused (logged); the helper keeps its verified chain
 * and refuses what needs the newer version. PS_DEAD if it broke. */
static int
sync_chain(struct ps_pool *p, struct ps_helper *h)
{
	for (;;) {
		struct ps_chain_entry e;
		uint8_t *body = NULL;
		size_t len = 0;
		struct ps_rd f;
		int r;

		pthread_mutex_lock(&p->mu);
		if (h->chain_sent >= p->nchain) {
			pthread_mutex_unlock(&p->mu);
			return 0;
		}
		e = p->chain[h->chain_sent];
		pthread_mutex_unlock(&p->mu);
		if (send_all(h->fd, e.frame, e.len) != 0 || read_frame(h->fd, &body, &len) != 0)
			return PS_DEAD;
		r = parse_reply(PS_POLICY, body, len, &f);
		free_body(body, len);
		if (r == PS_DEAD)
			return PS_DEAD;
		if (r != 0)
			log_error("privsep.policy_refused", "pid=%d entry=%zu reason=\"%s\"",
				  (int)h->pid, h->chain_sent + 1, qs_errdetail());
		h->chain_sent++;
	}
}

/* A request and, for SIGN, SIGN_MANY and PUBKEY, the key it is about:
 * its handle on the chosen helper is filled in by run(). */
struct ps_req {
	struct ps_request wire;
	struct ps_keyref *ref;
};

/* One request on the next free helper (or on helper `only` if not -1). A
 * helper found dead is replaced; the request is then retried once if
 * `retry` (it is idempotent), else fails UNAVAILABLE. */
static int
run(struct ps_pool *p, const struct ps_req *q, int retry, int only, uint8_t **body, size_t *len,
    struct ps_rd *fields)
{
	unsigned i;
	int r = 0;

	if (only >= 0) {
		pthread_mutex_lock(&p->mu);
		while (p->h[only].busy)
			pthread_cond_wait(&p->cv, &p->mu);
		p->h[only].busy = 1;
		pthread_mutex_unlock(&p->mu);
		i = (unsigned)only;
	} else {
		i = acquire(p);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		struct ps_request w = q->wire;
		struct ps_wbuf req;

		if (p->h[i].fd < 0 && (r = restart(p, &p->h[i])) != 0)
			break;
		r = sync_chain(p, &p->h[i]);
		if (r == 0 && q->ref != NULL)
			r = resolve(p, i, q->ref, &w.handle);
		if (r == 0) {
			ps_request_encode(&req, &w);
			r = call(&p->h[i], w.type, &req, body, len, fields);
			ps_wb_free(&req);
		}
		if (r != PS_DEAD)
			break;
		log_warn("privsep.helper_died", "pid=%d request=%u", (int)p->h[i].pid, w.type);
		if ((r = restart(p, &p->h[i])) != 0)
			break;
		r = qs_fail(QS_ERR_UNAVAILABLE, "signer helper died during the call");
		if (!retry)
			break;
	}
	release(p, i);
	return r;
}

int
ps_find(struct ps_pool *p, const char *uri, struct ps_keyref **refp, enum hsm_keytype *type,
	size_t *tok_index, uint8_t **der, size_t *der_len)
{
	struct ps_req q = {.wire = {.type = PS_FIND, .uri = uri}};
	struct ps_keyref *ref = NULL;
	struct ps_find_reply fr;
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	*refp = NULL;
	*der = NULL;
	*der_len = 0;
	if (strlen(uri) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_INVALID, "key URI longer than %d bytes", QS_MAX_PRIVSEP_STR);
	if ((r = run(p, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_find_reply_decode(&f, &fr) != 0 || fr.tok >= p->ntok) {
		r = qs_fail(QS_ERR_INTERNAL, "malformed find reply from a signer helper");
		goto out;
	}
	if ((ref = calloc(1, sizeof(*ref))) == NULL || (ref->uri = strdup(uri)) == NULL ||
	    (*der = malloc(fr.der_len ? fr.der_len : 1)) == NULL ||
	    (ref->der = malloc(fr.der_len ? fr.der_len : 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(*der, fr.der, fr.der_len);
	memcpy(ref->der, fr.der, fr.der_len);
	ref->der_len = fr.der_len;
	*der_len = fr.der_len;
	*type = (enum hsm_keytype)fr.keytype;
	*tok_index = fr.tok;
	ref->pool = p;
	ref->only = -1;
	*refp = ref;
	ref = NULL;
	r = 0;
out:
	if (r != 0) {
		free(*der);
		*der = NULL;
	}
	ps_keyref_free(ref);
	free(body);
	return r;
}

void
ps_keyref_reserve(struct ps_keyref *ref)
{
	ref->only = (int)ref->pool->n;
}

void
ps_keyref_free(struct ps_keyref *ref)
{
	if (ref == NULL)
		return;
	free(ref->uri);
	free(ref->der);
	free(ref);
}

/* One signature request about ref (w.handle filled in by run). */
static int
sign_call(struct ps_keyref *ref, const struct ps_request *w, uint8_t *sig, size_t *sig_len)
{
	struct ps_req q = {.wire = *w, .ref = ref};
	uint8_t *body = NULL;
	const uint8_t *s;
	size_t len = 0, n = 0;
	struct ps_rd f;
	int r;

	*sig_len = 0;
	if ((r = run(ref->pool, &q, 1, ref->only, &body, &len, &f)) != 0)
		return r;
	if (ps_sign_reply_decode(&f, &s, &n) != 0) {
		free(body);
		return qs_fail(QS_ERR_INTERNAL, "malformed sign reply from a signer helper");
	}
	memcpy(sig, s, n);
	*sig_len = n;
	free(body);
	return 0;
}

int
ps_sign(struct ps_keyref *ref, const uint8_t *in, size_t in_len, uint8_t *sig, size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN, .data = in, .data_len = in_len};

	*sig_len = 0;
	if (in_len > QS_MAX_BLOB)
		return qs_fail(QS_ERR_EXHAUSTED, "input of %zu bytes over %u", in_len, QS_MAX_BLOB);
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_quorum(struct ps_keyref *ref, const struct ps_evidence *ev, const uint8_t *payload,
	       size_t len, uint8_t *sig, size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_QUORUM, .ev = *ev, .data = payload, .data_len = len};

	*sig_len = 0;
	if (len > QS_MAX_REQUEST_PAYLOAD || ev->nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "request over the signer protocol's limits");
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_checkpoint(struct ps_keyref *ref, const uint8_t *text, size_t len, uint8_t *sig,
		   size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_CHECKPOINT, .data = text, .data_len = len};

	*sig_len = 0;
	if (len > QS_MAX_NOTE)
		return qs_fail(QS_ERR_EXHAUSTED, "checkpoint of %zu bytes over %u", len, QS_MAX_NOTE);
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_tuf(struct ps_keyref *ref, const char *repo, const uint8_t *text, size_t len, uint8_t *sig,
	    size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_TUF, .repo = repo, .data = text, .data_len = len};

	*sig_len = 0;
	if (len > TUF_MAX_METADATA || strlen(repo) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_EXHAUSTED, "TUF metadata of %zu bytes over %u", len,
			       TUF_MAX_METADATA);
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_sign_x509(struct ps_keyref *ref, enum ps_x509_kind kind, const uint8_t *data, size_t len,
	     uint8_t *sig, size_t *sig_len)
{
	struct ps_request w = {.type = PS_SIGN_X509,
			       .x509_kind = (uint8_t)kind,
			       .data = data,
			       .data_len = len};

	*sig_len = 0;
	if (len > PS_MAX_X509)
		return qs_fail(QS_ERR_EXHAUSTED, "%zu bytes over %u", len, PS_MAX_X509);
	return sign_call(ref, &w, sig, sig_len);
}

int
ps_policy_add(struct ps_pool *p, const struct ps_evidence *ev, const uint8_t *text, size_t len)
{
	struct ps_request q = {.type = PS_POLICY, .ev = *ev, .data = text, .data_len = len};
	struct ps_chain_entry *nc;
	struct ps_wbuf b;
	int r;

	if (len > QS_MAX_POLICY_BYTES || ev->nvotes > QS_MAX_PRIVSEP_VOTES)
		return qs_fail(QS_ERR_EXHAUSTED, "policy change over the signer protocol's limits");
	ps_request_encode(&b, &q);
	if ((r = ps_wb_finish(&b)) != 0) {
		ps_wb_free(&b);
		return r;
	}
	pthread_mutex_lock(&p->mu);
	if ((nc = realloc(p->chain, (p->nchain + 1) * sizeof(*nc))) == NULL) {
		pthread_mutex_unlock(&p->mu);
		ps_wb_free(&b);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	p->chain = nc;
	p->chain[p->nchain].frame = b.p; /* the pool's now */
	p->chain[p->nchain].len = b.len;
	p->nchain++;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int
ps_sign_many(struct ps_keyref *ref, const uint8_t *const *in, const size_t *in_len, size_t n,
	     uint8_t *sigs, size_t *sig_lens, int *status)
{
	struct ps_req q = {
		.wire = {.type = PS_SIGN_MANY, .items = in, .item_lens = in_len, .nitems = n},
		.ref = ref};
	uint8_t *body = NULL;
	struct ps_rd f;
	int r;

	if (n == 0 || n > QS_MAX_BATCH)
		return qs_fail(QS_ERR_INVALID, "1..%d inputs per call", QS_MAX_BATCH);
	for (size_t i = 0; i < n; i++)
		if (in_len[i] > QS_MAX_PRIVSEP_DIGEST)
			return qs_fail(QS_ERR_INVALID, "sign_many takes digests (<= %d bytes)",
				       QS_MAX_PRIVSEP_DIGEST);
	{
		size_t len = 0;
		if ((r = run(ref->pool, &q, 1, -1, &body, &len, &f)) != 0)
			return r;
	}
	for (size_t i = 0; i < n; i++) {
		int st;
		size_t m = 0;
		const uint8_t *s;
		if (ps_sign_many_item_decode(&f, &st, &s, &m) != 0) {
			free(body);
			return qs_fail(QS_ERR_INTERNAL, "malformed sign_many reply from a signer helper");
		}
		status[i] = st;
		sig_lens[i] = m;
		memcpy(sigs + i * HSM_SIG_MAX, s, m);
	}
	if (!ps_rd_end(&f)) {
		free(body);
		return qs_fail(QS_ERR_INTERNAL, "trailing bytes in a sign_many reply");
	}
	free(body);
	return 0;
}

int
ps_pubkey(struct ps_keyref *ref, uint8_t **der, size_t *der_len)
{
	struct ps_req q = {.wire = {.type = PS_PUBKEY}, .ref = ref};
	uint8_t *body = NULL;
	const uint8_t *d;
	size_t len = 0, n = 0;
	struct ps_rd f;
	int r;

	*der = NULL;
	*der_len = 0;
	if ((r = run(ref->pool, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_pubkey_reply_decode(&f, &d, &n) != 0)
		r = qs_fail(QS_ERR_INTERNAL, "malformed pubkey reply from a signer helper");
	else if ((*der = malloc(n ? n : 1)) == NULL)
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
	else {
		memcpy(*der, d, n);
		*der_len = n;
	}
	free(body);
	return r;
}

int
ps_keygen(struct ps_pool *p, const char *token_uri, enum hsm_keytype type, const char *label)
{
	struct ps_req q = {.wire = {.type = PS_KEYGEN, .uri = token_uri, .keytype = (uint8_t)type,
				    .label = label}};
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	if (strlen(token_uri) > QS_MAX_PRIVSEP_STR || strlen(label) > QS_MAX_PRIVSEP_STR)
		return qs_fail(QS_ERR_INVALID, "token URI or label too long");
	if ((r = run(p, &q, 0, -1, &body, &len, &f)) != 0)
		return r;
	r = ps_rd_end(&f) ? 0 : qs_fail(QS_ERR_INTERNAL, "malformed keygen reply");
	free(body);
	return r;
}

int
ps_token_for(struct ps_pool *p, const char *uri, uint32_t *index)
{
	struct ps_req q = {.wire = {.type = PS_TOKEN_FOR, .uri = uri}};
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r;

	*index = PS_NO_TOKEN;
	if (strlen(uri) > QS_MAX_PRIVSEP_STR)
		return 0;
	if ((r = run(p, &q, 1, -1, &body, &len, &f)) != 0)
		return r;
	if (ps_token_for_reply_decode(&f, index) != 0 ||
	    (*index != PS_NO_TOKEN && *index >= p->ntok)) {
		*index = PS_NO_TOKEN;
		r = qs_fail(QS_ERR_INTERNAL, "malformed token reply");
	}
	free(body);
	return r;
}

void
ps_token_stats(struct ps_pool *p, size_t t, unsigned *sessions, unsigned *reconnects)
{
	struct ps_req q = {.wire = {.type = PS_INFO}};

	*sessions = 0;
	*reconnects = 0;
	for (unsigned i = 0; i < p->n; i++) {
		char label[QS_MAX_PRIVSEP_STR + 1];
		uint8_t *body = NULL;
		size_t len = 0;
		struct ps_rd f;
		uint32_t n = 0;

		uint32_t s = 0, rc = 0, st = 0, rct = 0, k;

		if (run(p, &q, 1, (int)i, &body, &len, &f) != 0)
			continue;
		if (ps_info_decode_count(&f, &n) != 0 || n > QS_MAX_PRIVSEP_TOKENS)
			n = 0;
		for (k = 0; k < n; k++) {
			if (ps_info_decode_token(&f, label, &s, &rc) != 0)
				break;
			if (k == t) {
				st = s;
				rct = rc;
			}
		}
		/* Only from a reply that decoded to its end. */
		if (k == n && ps_rd_end(&f)) {
			*sessions += st;
			*reconnects += rct;
		}
		free(body);
	}
}

/* ------------------------------------------------------------ self test */

static int
raw_roundtrip(int fd, const uint8_t *frame, size_t n, uint8_t **body, size_t *len)
{
	if (send_all(fd, frame, n) != 0)
		return -1;
	return read_frame(fd, body, len);
}

static int
expect_status(const char *what, int fd, const uint8_t *frame, size_t n, uint8_t type, int want)
{
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	int r = raw_roundtrip(fd, frame, n, &body, &len), got;

	if (r != 0) {
		printf("FAIL: %s: no reply (helper gone)\n", what);
		return 1;
	}
	got = parse_reply(type, body, len, &f);
	free(body);
	if (got != want) {
		printf("FAIL: %s: status %d (%s), want %d\n", what, got, qs_strerror(got), want);
		return 1;
	}
	printf("ok: %s: %s (%s)\n", what, qs_strerror(got), got ? qs_errdetail() : "served");
	return 0;
}

static int
expect_exit(const char *what, int fd, const uint8_t *frame, size_t n)
{
	uint8_t *body = NULL;
	size_t len = 0;
	int r = raw_roundtrip(fd, frame, n, &body, &len);

	free(body);
	if (r == 0) {
		printf("FAIL: %s: the helper answered instead of exiting\n", what);
		return 1;
	}
	printf("ok: %s: the helper exited\n", what);
	return 0;
}

/* The launcher's filter: a call it forbids kills the launcher (SIGSYS).
 * Without a filter (seccomp off, sanitizer build) it says so and passes:
 * the caller knows which to expect. */
static int
expect_launcher_killed(struct ps_pool *p)
{
	char path[64], line[256];
	int filtered = -1, st = 0;
	uint8_t b = 'X';
	FILE *f;
	pid_t w;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)p->launcher);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "Seccomp: %d", &filtered) == 1)
				break;
		fclose(f);
	}
	if (filtered != 2) {
		printf("note: the launcher runs without a seccomp filter (Seccomp: %d)\n", filtered);
		return 0;
	}
	if (send_all(p->ctl, &b, 1) != 0) {
		printf("FAIL: launcher: cannot send the forbidden-call request\n");
		return 1;
	}
	while ((w = waitpid(p->launcher, &st, 0)) < 0 && errno == EINTR)
		;
	if (w != p->launcher) {
		printf("FAIL: launcher: waitpid: %s\n", strerror(errno));
		return 1;
	}
	p->launcher = 0; /* reaped: ps_pool_stop must not wait for it */
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS) {
		printf("FAIL: launcher: a forbidden call did not kill it by SIGSYS (status 0x%x)\n",
		       st);
		return 1;
	}
	printf("ok: forbidden call in the launcher: killed by SIGSYS\n");
	return 0;
}

/* The handle of uri on the selftest's helper, 0 (said) if none. */
static uint32_t
selftest_find(struct ps_pool *p, const char *uri)
{
	struct ps_wbuf b;
	uint8_t *body = NULL;
	size_t len = 0;
	struct ps_rd f;
	uint32_t handle;
	int r;

	ps_wb_init(&b);
	ps_wb_u8(&b, PS_FIND);
	ps_wb_str(&b, uri);
	r = call(&p->h[0], PS_FIND, &b, &body, &len, &f);
	ps_wb_free(&b);
	handle = r == 0 ? ps_rd_u32(&f) : 0;
	free(body);
	if (handle == 0)
		printf("FAIL: find %s: %d %s\n", uri, r, qs_errdetail());
	return handle;
}

int
ps_selftest(const struct config *c, const char *uri)
{
	struct ps_pool *p = NULL;
	struct ps_wbuf b;
	uint32_t handle, audit_handle;
	uint8_t dg[32] = {0};
	int fails = 0, r;

	signal(SIGPIPE, SIG_IGN);
	launcher_selftest = 1;
	if ((r = ps_pool_start(c, 1, &p)) != 0) {
		printf("FAIL: start a signer helper: %s: %s\n", qs_strerror(r), qs_errdetail());
		return 1;
	}
	printf("ok: helper pid %d\n", (int)p->h[0].pid);
	/* A legitimate find: the only way to obtain a handle. The key of an
	 * online role signs what it is asked; the audit key only checkpoints. */
	{
		struct policy *pol = NULL;
		const char *online = NULL;
		if (policy_load_file(c->policy_file, &pol) == 0)
			for (size_t i = 0; i < pol->nroles && online == NULL; i++)
				if (pol->roles[i].mode == POLICY_ONLINE)
					online = pol->keys[pol->roles[i].keys[0]].uri;
		if (online == NULL) {
			printf("FAIL: the bootstrap policy has no online role\n");
			policy_unref(pol);
			ps_pool_stop(p);
			return 1;
		}
		handle = selftest_find(p, online);
		audit_handle = selftest_find(p, uri);
		policy_unref(pol);
	}
	if (handle == 0 || audit_handle == 0) {
		ps_pool_stop(p);
		return 1;
	}
	printf("ok: find: handle %u (online role key), %u (audit key)\n", handle, audit_handle);
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, audit_handle);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with the audit key", p->h[0].fd, b.p, b.len, PS_SIGN,
			       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* A request type outside the table. */
	ps_wb_init(&b);
	ps_wb_u8(&b, 0x55);
	ps_wb_u32(&b, handle);
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("unknown request type 0x55", p->h[0].fd, b.p, b.len, 0x55,
			       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* A handle the helper never handed out. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, handle + 1000);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with forged handle", p->h[0].fd, b.p, b.len, PS_SIGN,
			       QS_ERR_DENIED);
	ps_wb_free(&b);
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_PUBKEY);
	ps_wb_u32(&b, 0);
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("public key of handle 0", p->h[0].fd, b.p, b.len, PS_PUBKEY,
			       QS_ERR_DENIED);
	ps_wb_free(&b);
	/* Still serving after the refusals. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_u32(&b, handle);
	ps_wb_bytes(&b, dg, sizeof(dg));
	b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_status("sign with its handle", p->h[0].fd, b.p, b.len, PS_SIGN, 0);
	ps_wb_free(&b);
	/* A batch: with its handle it signs; with a forged one it is refused. */
	for (int forged = 0; forged < 2; forged++) {
		ps_wb_init(&b);
		ps_wb_u8(&b, PS_SIGN_MANY);
		ps_wb_u32(&b, forged ? handle + 1000 : handle);
		ps_wb_u32(&b, 2);
		ps_wb_bytes(&b, dg, sizeof(dg));
		ps_wb_bytes(&b, dg, sizeof(dg));
		b.p[0] = 0, b.p[1] = 0, b.p[2] = 0, b.p[3] = (uint8_t)(b.len - 4);
		fails += expect_status(forged ? "sign_many with forged handle"
					      : "sign_many with its handle",
				       p->h[0].fd, b.p, b.len, PS_SIGN_MANY,
				       forged ? QS_ERR_DENIED : 0);
		ps_wb_free(&b);
	}
	/* Garbage: a find with a trailing byte. The helper must exit. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_FIND);
	ps_wb_str(&b, uri);
	ps_wb_u8(&b, 0);
	b.p[0] = (uint8_t)((b.len - 4) >> 24), b.p[1] = (uint8_t)((b.len - 4) >> 16);
	b.p[2] = (uint8_t)((b.len - 4) >> 8), b.p[3] = (uint8_t)(b.len - 4);
	fails += expect_exit("find with a trailing byte", p->h[0].fd, b.p, b.len);
	ps_wb_free(&b);
	/* A replacement from the launcher, then a frame length over the cap. */
	if ((r = restart(p, &p->h[0])) != 0) {
		printf("FAIL: restart: %s\n", qs_errdetail());
		fails++;
	} else {
		static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, PS_INFO};
		static const uint8_t trunc[] = {0, 0, 0, 3, PS_SIGN, 0, 0};
		printf("ok: replacement helper pid %d\n", (int)p->h[0].pid);
		fails += expect_exit("frame length 0xffffffff", p->h[0].fd, huge, sizeof(huge));
		if (restart(p, &p->h[0]) != 0)
			fails++;
		else
			fails += expect_exit("sign with a truncated handle", p->h[0].fd, trunc,
					     sizeof(trunc));
	}
	fails += expect_launcher_killed(p);
	ps_pool_stop(p);
	printf("%s\n", fails ? "FAIL" : "PASS");
	return fails ? 1 : 0;
}
