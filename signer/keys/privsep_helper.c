/*
 * privsep_helper.c - a signer helper (qsignd-signer): the process that opens
 * the tokens, its permission table and one handler per request type
 * (ph_*). Forked by the launcher (privsep_launcher.c); protocol and process
 * model: privsep.h.
 */
#include "privsep.h"
#include "privsep_proc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "harden.h"
#include "keyring.h"
#include "log.h"
#include "privsep_guard.h"
#include "qs_err.h"
#include "qs_limits.h"

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
struct ps_guard_boot ph_guard_boot;

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
ph_info(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	(void)q;
	put_info(h, out);
	return 0;
}

static int
ph_token_for(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	int i = tok_for(h, q->uri);

	ps_wb_u32(out, i < 0 ? PS_NO_TOKEN : (uint32_t)i);
	return 0;
}

static int
ph_find(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
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
ph_sign(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX];
	size_t sig_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_plain(h->guard, "sign", k->der, k->der_len, k->label,
	                        hsm_key_type(k->key), &q->data_len, 1)) != 0)
		return r;
	if ((r = hsm_sign(h->toks[k->tok], k->key, q->data, q->data_len, sig, &sig_len)) != 0)
		return r;
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
ph_sign_many(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX];
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_plain(h->guard, "sign_many", k->der, k->der_len, k->label,
	                        hsm_key_type(k->key), q->item_lens, (uint32_t)q->nitems)) != 0)
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
ph_pubkey(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
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
ph_keygen(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
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
ph_policy(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	(void)out;
	return ps_guard_policy(h->guard, &q->ev, q->data, q->data_len);
}

static int
ph_sign_quorum(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[QS_DIGEST_MAX];
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
ph_sign_checkpoint(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
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
ph_sign_tuf(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct ps_guard_tuf_mark mark;
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	const uint8_t *in = NULL;
	size_t sig_len = 0, in_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_tuf(h->guard, k->der, k->der_len, k->label, hsm_key_type(k->key), q->repo,
	                      q->data, q->data_len, &q->ev, q->payload, q->payload_len, dg, &in,
	                      &in_len, &mark)) != 0)
		return r;
	/* ps_guard_tuf holds the shared mark table's lock until one of these. */
	if ((r = hsm_sign(h->toks[k->tok], k->key, in, in_len, sig, &sig_len)) != 0) {
		ps_guard_tuf_release(h->guard, &mark);
		return r;
	}
	ps_guard_tuf_signed(h->guard, &mark);
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

static int
ph_sign_x509(struct helper *h, const struct ps_request *q, struct ps_wbuf *out)
{
	struct helper_key *k;
	uint8_t sig[HSM_SIG_MAX], dg[32];
	size_t sig_len = 0;
	int r;

	if ((r = key_of(h, q->handle, &k)) != 0 ||
	    (r = ps_guard_x509(h->guard, k->der, k->der_len, k->label, q->x509_kind, q->data,
	                       q->data_len, &q->ev, q->payload, q->payload_len, q->prev,
	                       q->prev_len, q->prev_sig, q->prev_sig_len, dg)) != 0 ||
	    (r = hsm_sign(h->toks[k->tok], k->key, dg, 32, sig, &sig_len)) != 0)
		return r;
	ps_wb_bytes(out, sig, sig_len);
	explicit_bzero(sig, sizeof(sig));
	return 0;
}

/* The guard's way to the public key of a policy key (or the audit key). */
static int
ph_spki(void *arg, const char *uri, uint8_t **der, size_t *der_len)
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
        {PS_INFO, "info", ph_info},
        {PS_FIND, "find", ph_find},
        {PS_SIGN, "sign", ph_sign},
        {PS_KEYGEN, "keygen", ph_keygen},
        {PS_PUBKEY, "pubkey", ph_pubkey},
        {PS_TOKEN_FOR, "token_for", ph_token_for},
        {PS_SIGN_MANY, "sign_many", ph_sign_many},
        {PS_POLICY, "policy", ph_policy},
        {PS_SIGN_QUORUM, "sign_quorum", ph_sign_quorum},
        {PS_SIGN_CHECKPOINT, "sign_checkpoint", ph_sign_checkpoint},
        {PS_SIGN_TUF, "sign_tuf", ph_sign_tuf},
        {PS_SIGN_X509, "sign_x509", ph_sign_x509},
};

static void
ph_reply_error(struct ps_wbuf *out, uint8_t type, int r)
{
	out->len = 4;
	out->err = 0;
	ps_wb_u8(out, type);
	ps_wb_u32(out, (uint32_t)(int32_t)r);
	ps_wb_str(out, qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
}

void
ph_main(const struct config *c, int fd)
{
	struct helper h = {0};
	/* Decoded requests point into it: static, it is large (the batch). */
	static struct ps_request_in in;
	struct ps_wbuf out;
	uint8_t *body = NULL;
	size_t len = 0;
	int r, code = 0;

	pf_close_fds_except(fd);
	prctl(PR_SET_NAME, "qsignd-signer", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	log_rename("qsignd-signer");
	signal(SIGPIPE, SIG_IGN);
	/* The tokens, the PIN and the login exist only from here on. */
	ps_wb_init(&out);
	ps_wb_u8(&out, PS_READY | PS_REPLY);
	ps_wb_u32(&out, 0);
	if ((r = keyring_open_local(c, &h.kr)) != 0) {
		ph_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)pf_send(fd, &out);
		_exit(1);
	}
	h.toks = keyring_local_tokens(h.kr, &h.ntoks);
	/* Before dropping privileges: it reads the checkpoint on disk. */
	if ((r = ps_guard_new(c, &ph_guard_boot, ph_spki, &h, &h.guard)) != 0) {
		ph_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)pf_send(fd, &out);
		_exit(1);
	}
	if ((r = harden_drop(c->user, c->group, NULL)) != 0 ||
	    (c->seccomp && (r = harden_seccomp_helper()) < 0)) {
		ph_reply_error(&out, PS_READY | PS_REPLY, r);
		(void)pf_send(fd, &out);
		_exit(1);
	}
	/* A change of credentials clears the parent-death signal: set again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	put_info(&h, &out);
	if (pf_send(fd, &out) != 0)
		_exit(1);
	for (;;) {
		const struct ps_perm *perm = NULL;
		uint8_t type;

		ps_wb_free(&out);
		pf_free_body(body, len);
		if ((r = pf_read_frame(fd, &body, &len)) == 1)
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
			ph_reply_error(&out, (uint8_t)(type | PS_REPLY), r);
		if (pf_send(fd, &out) != 0)
			break;
	}
	ps_wb_free(&out);
	pf_free_body(body, len);
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
