/*
 * privsep_wire.c - building and strictly decoding signer helper messages.
 * Format: privsep.h; interface: privsep_wire.h.
 */
#include "privsep_wire.h"

#include <stdlib.h>
#include <string.h>

#include "hsm.h"
#include "qs_err.h"
#include "tuf_meta.h"

/* ------------------------------------------------------------ building */

void
ps_wb_init(struct ps_wbuf *b)
{
	memset(b, 0, sizeof(*b));
	b->len = 4; /* the frame length, filled in by ps_wb_finish */
	if ((b->p = malloc(256)) == NULL)
		b->err = 1;
	else
		b->cap = 256;
}

static void
wb_put(struct ps_wbuf *b, const void *d, size_t n)
{
	if (b->err)
		return;
	if (b->len + n > 4 + (size_t)QS_MAX_PRIVSEP_MSG) {
		b->err = 1;
		return;
	}
	if (b->len + n > b->cap) {
		size_t ncap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
		uint8_t *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

void
ps_wb_u8(struct ps_wbuf *b, uint8_t v)
{
	wb_put(b, &v, 1);
}

void
ps_wb_u32(struct ps_wbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	wb_put(b, x, 4);
}

void
ps_wb_bytes(struct ps_wbuf *b, const uint8_t *d, size_t n)
{
	if (n > QS_MAX_PRIVSEP_MSG) {
		b->err = 1;
		return;
	}
	ps_wb_u32(b, (uint32_t)n);
	wb_put(b, d, n);
}

void
ps_wb_str(struct ps_wbuf *b, const char *s)
{
	size_t n = strlen(s);
	ps_wb_bytes(b, (const uint8_t *)s, n > QS_MAX_PRIVSEP_STR ? QS_MAX_PRIVSEP_STR : n);
}

int
ps_wb_finish(struct ps_wbuf *b)
{
	uint32_t n = (uint32_t)(b->len - 4);

	if (b->err)
		return qs_fail(QS_ERR_EXHAUSTED, "signer message over %u bytes",
		               QS_MAX_PRIVSEP_MSG);
	b->p[0] = (uint8_t)(n >> 24);
	b->p[1] = (uint8_t)(n >> 16);
	b->p[2] = (uint8_t)(n >> 8);
	b->p[3] = (uint8_t)n;
	return 0;
}

void
ps_wb_free(struct ps_wbuf *b)
{
	if (b->p != NULL)
		explicit_bzero(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ------------------------------------------------------------ reading */

static int
rd_take(struct ps_rd *r, void *d, size_t n)
{
	if (r->bad || r->n < n) {
		r->bad = 1;
		return -1;
	}
	memcpy(d, r->p, n);
	r->p += n;
	r->n -= n;
	return 0;
}

uint8_t
ps_rd_u8(struct ps_rd *r)
{
	uint8_t v = 0;
	rd_take(r, &v, 1);
	return v;
}

uint32_t
ps_rd_u32(struct ps_rd *r)
{
	uint8_t x[4] = {0};
	if (rd_take(r, x, 4) != 0)
		return 0;
	return (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
}

const uint8_t *
ps_rd_bytes(struct ps_rd *r, size_t max, size_t *n)
{
	uint32_t len = ps_rd_u32(r);
	const uint8_t *p = r->p;

	*n = 0;
	if (r->bad || len > max || len > r->n) {
		r->bad = 1;
		return NULL;
	}
	r->p += len;
	r->n -= len;
	*n = len;
	return p;
}

void
ps_rd_str(struct ps_rd *r, char *out)
{
	size_t n;
	const uint8_t *p = ps_rd_bytes(r, QS_MAX_PRIVSEP_STR, &n);

	out[0] = '\0';
	if (p == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		r->bad = 1;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

int
ps_rd_end(const struct ps_rd *r)
{
	return !r->bad && r->n == 0;
}

int
ps_frame_len(const uint8_t h[4], uint32_t *n)
{
	*n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	if (*n == 0 || *n > QS_MAX_PRIVSEP_MSG)
		return qs_fail(QS_ERR_INVALID, "frame length %u out of range 1..%u", *n,
		               QS_MAX_PRIVSEP_MSG);
	return 0;
}

/* ------------------------------------------------------------ requests */

static void
wb_u64(struct ps_wbuf *b, uint64_t v)
{
	ps_wb_u32(b, (uint32_t)(v >> 32));
	ps_wb_u32(b, (uint32_t)v);
}

static uint64_t
rd_u64(struct ps_rd *r)
{
	uint64_t hi = ps_rd_u32(r);

	return hi << 32 | ps_rd_u32(r);
}

static void
evidence_encode(struct ps_wbuf *b, const struct ps_evidence *ev)
{
	ps_wb_str(b, ev->id);
	ps_wb_str(b, ev->role);
	ps_wb_str(b, ev->kind);
	ps_wb_str(b, ev->submitter);
	ps_wb_str(b, ev->hash != NULL ? ev->hash : "");
	wb_u64(b, ev->policy_version);
	ps_wb_u32(b, (uint32_t)ev->nvotes);
	for (size_t i = 0; i < ev->nvotes; i++) {
		ps_wb_str(b, ev->votes[i].approver);
		ps_wb_u8(b, ev->votes[i].approve);
		wb_u64(b, (uint64_t)ev->votes[i].time);
		ps_wb_bytes(b, ev->votes[i].sig, ev->votes[i].sig_len);
	}
}

static int
evidence_decode(struct ps_rd *r, struct ps_request_in *in)
{
	struct ps_evidence *ev = &in->q.ev;
	uint32_t n;

	ps_rd_str(r, in->ev_id);
	ps_rd_str(r, in->ev_role);
	ps_rd_str(r, in->ev_kind);
	ps_rd_str(r, in->ev_submitter);
	ps_rd_str(r, in->ev_hash);
	ev->hash = in->ev_hash;
	ev->id = in->ev_id;
	ev->role = in->ev_role;
	ev->kind = in->ev_kind;
	ev->submitter = in->ev_submitter;
	ev->policy_version = rd_u64(r);
	n = ps_rd_u32(r);
	if (r->bad || n > QS_MAX_PRIVSEP_VOTES)
		return PS_GARBAGE;
	for (uint32_t i = 0; i < n; i++) {
		struct ps_vote *v = &in->votes[i];
		ps_rd_str(r, in->approvers[i]);
		v->approver = in->approvers[i];
		v->approve = ps_rd_u8(r);
		v->time = (int64_t)rd_u64(r);
		/* One encoding per message: a decision is 0 or 1. */
		if ((v->sig = ps_rd_bytes(r, QS_MAX_PRIVSEP_VOTE_SIG, &v->sig_len)) == NULL ||
		    v->approve > 1)
			return PS_GARBAGE;
	}
	ev->votes = in->votes;
	ev->nvotes = n;
	return 0;
}

void
ps_request_encode(struct ps_wbuf *b, const struct ps_request *q)
{
	ps_wb_init(b);
	ps_wb_u8(b, q->type);
	switch (q->type) {
	case PS_FIND:
	case PS_TOKEN_FOR:
		ps_wb_str(b, q->uri);
		break;
	case PS_SIGN:
		ps_wb_u32(b, q->handle);
		ps_wb_bytes(b, q->data, q->data_len);
		break;
	case PS_SIGN_MANY:
		ps_wb_u32(b, q->handle);
		ps_wb_u32(b, (uint32_t)q->nitems);
		for (size_t i = 0; i < q->nitems; i++)
			ps_wb_bytes(b, q->items[i], q->item_lens[i]);
		break;
	case PS_PUBKEY:
		ps_wb_u32(b, q->handle);
		break;
	case PS_KEYGEN:
		ps_wb_str(b, q->uri);
		ps_wb_u8(b, q->keytype);
		ps_wb_str(b, q->label);
		break;
	case PS_POLICY:
		evidence_encode(b, &q->ev);
		ps_wb_bytes(b, q->data, q->data_len);
		break;
	case PS_SIGN_QUORUM:
		ps_wb_u32(b, q->handle);
		evidence_encode(b, &q->ev);
		ps_wb_bytes(b, q->data, q->data_len);
		break;
	case PS_SIGN_CHECKPOINT:
		ps_wb_u32(b, q->handle);
		ps_wb_bytes(b, q->data, q->data_len);
		break;
	case PS_SIGN_TUF:
		ps_wb_u32(b, q->handle);
		ps_wb_str(b, q->repo);
		ps_wb_bytes(b, q->data, q->data_len);
		evidence_encode(b, &q->ev);
		ps_wb_bytes(b, q->payload, q->payload_len);
		break;
	case PS_SIGN_X509:
		ps_wb_u32(b, q->handle);
		ps_wb_u8(b, q->x509_kind);
		ps_wb_bytes(b, q->data, q->data_len);
		evidence_encode(b, &q->ev);
		ps_wb_bytes(b, q->payload, q->payload_len);
		ps_wb_bytes(b, q->prev, q->prev_len);
		ps_wb_bytes(b, q->prev_sig, q->prev_sig_len);
		break;
	default:
		break;
	}
}

int
ps_request_decode(const uint8_t *body, size_t len, struct ps_request_in *in)
{
	struct ps_request *q = &in->q;
	struct ps_rd r = {.p = body, .n = len};
	uint32_t n;

	memset(q, 0, sizeof(*q));
	in->uri[0] = '\0';
	in->label[0] = '\0';
	in->repo[0] = '\0';
	q->type = ps_rd_u8(&r);
	if (r.bad)
		return PS_GARBAGE;
	switch (q->type) {
	case PS_INFO:
		break;
	case PS_FIND:
	case PS_TOKEN_FOR:
		ps_rd_str(&r, in->uri);
		q->uri = in->uri;
		break;
	case PS_SIGN:
		q->handle = ps_rd_u32(&r);
		if ((q->data = ps_rd_bytes(&r, QS_MAX_BLOB, &q->data_len)) == NULL)
			return PS_GARBAGE;
		break;
	case PS_SIGN_MANY:
		q->handle = ps_rd_u32(&r);
		n = ps_rd_u32(&r);
		if (n == 0 || n > QS_MAX_BATCH)
			return PS_GARBAGE;
		for (uint32_t i = 0; i < n; i++)
			if ((in->items[i] = ps_rd_bytes(&r, QS_MAX_PRIVSEP_DIGEST,
			                                &in->item_lens[i])) == NULL)
				return PS_GARBAGE;
		q->items = in->items;
		q->item_lens = in->item_lens;
		q->nitems = n;
		break;
	case PS_PUBKEY:
		q->handle = ps_rd_u32(&r);
		break;
	case PS_KEYGEN:
		ps_rd_str(&r, in->uri);
		q->keytype = ps_rd_u8(&r);
		ps_rd_str(&r, in->label);
		q->uri = in->uri;
		q->label = in->label;
		break;
	case PS_POLICY:
		if (evidence_decode(&r, in) != 0 ||
		    (q->data = ps_rd_bytes(&r, QS_MAX_POLICY_BYTES, &q->data_len)) == NULL)
			return PS_GARBAGE;
		break;
	case PS_SIGN_QUORUM:
		q->handle = ps_rd_u32(&r);
		if (evidence_decode(&r, in) != 0 ||
		    (q->data = ps_rd_bytes(&r, QS_MAX_REQUEST_PAYLOAD, &q->data_len)) == NULL)
			return PS_GARBAGE;
		break;
	case PS_SIGN_CHECKPOINT:
		q->handle = ps_rd_u32(&r);
		if ((q->data = ps_rd_bytes(&r, QS_MAX_NOTE, &q->data_len)) == NULL)
			return PS_GARBAGE;
		break;
	case PS_SIGN_TUF:
		q->handle = ps_rd_u32(&r);
		ps_rd_str(&r, in->repo);
		q->repo = in->repo;
		if ((q->data = ps_rd_bytes(&r, TUF_MAX_METADATA, &q->data_len)) == NULL ||
		    evidence_decode(&r, in) != 0 ||
		    (q->payload = ps_rd_bytes(&r, QS_MAX_REQUEST_PAYLOAD, &q->payload_len)) == NULL)
			return PS_GARBAGE;
		break;
	case PS_SIGN_X509:
		q->handle = ps_rd_u32(&r);
		q->x509_kind = ps_rd_u8(&r);
		if ((q->data = ps_rd_bytes(&r, PS_MAX_X509, &q->data_len)) == NULL ||
		    q->x509_kind < PS_X509_CERT || q->x509_kind > PS_X509_CALIST ||
		    evidence_decode(&r, in) != 0 ||
		    (q->payload = ps_rd_bytes(&r, QS_MAX_REQUEST_PAYLOAD, &q->payload_len)) ==
		            NULL ||
		    (q->prev = ps_rd_bytes(&r, PS_MAX_X509, &q->prev_len)) == NULL ||
		    (q->prev_sig = ps_rd_bytes(&r, PS_MAX_PREV_SIG, &q->prev_sig_len)) == NULL)
			return PS_GARBAGE;
		break;
	default:
		return PS_UNKNOWN;
	}
	return ps_rd_end(&r) ? 0 : PS_GARBAGE;
}

/* ------------------------------------------------------------ replies */

int
ps_reply_decode(uint8_t type, const uint8_t *body, size_t len, struct ps_rd *fields)
{
	char detail[QS_MAX_PRIVSEP_STR + 1];
	struct ps_rd r = {.p = body, .n = len};
	uint8_t t = ps_rd_u8(&r);
	int32_t st = (int32_t)ps_rd_u32(&r);

	if (r.bad || t != (uint8_t)(type | PS_REPLY) || st > 0 || st < QS_ERR_BADSIG)
		return PS_GARBAGE;
	if (st == 0) {
		*fields = r;
		return 0;
	}
	ps_rd_str(&r, detail);
	if (!ps_rd_end(&r))
		return PS_GARBAGE;
	return qs_fail(st, "%s", detail);
}

int
ps_info_decode_count(struct ps_rd *f, uint32_t *ntok)
{
	*ntok = ps_rd_u32(f);
	return f->bad ? PS_GARBAGE : 0;
}

int
ps_info_decode_token(struct ps_rd *f, char *label, uint32_t *sessions, uint32_t *reconnects)
{
	uint32_t s, rc;

	ps_rd_str(f, label);
	s = ps_rd_u32(f);
	rc = ps_rd_u32(f);
	if (f->bad)
		return PS_GARBAGE;
	if (sessions != NULL)
		*sessions = s;
	if (reconnects != NULL)
		*reconnects = rc;
	return 0;
}

int
ps_find_reply_decode(struct ps_rd *f, struct ps_find_reply *out)
{
	memset(out, 0, sizeof(*out));
	out->handle = ps_rd_u32(f);
	out->keytype = ps_rd_u8(f);
	out->tok = ps_rd_u32(f);
	out->der = ps_rd_bytes(f, QS_MAX_PRIVSEP_MSG, &out->der_len);
	/* A helper hands out handles from 1, and only for keys it can
	 * describe (hsm_key_spki_der refuses HSM_KEY_NONE). */
	if (!ps_rd_end(f) || out->der == NULL || out->handle == 0 ||
	    hsm_keytype_name((enum hsm_keytype)out->keytype) == NULL)
		return PS_GARBAGE;
	return 0;
}

int
ps_sign_reply_decode(struct ps_rd *f, const uint8_t **sig, size_t *sig_len)
{
	*sig = ps_rd_bytes(f, HSM_SIG_MAX, sig_len);
	/* A success carries a signature: an empty one would reach a client
	 * as a signature that verifies nothing. */
	return ps_rd_end(f) && *sig != NULL && *sig_len > 0 ? 0 : PS_GARBAGE;
}

int
ps_sign_many_item_decode(struct ps_rd *f, int *status, const uint8_t **sig, size_t *sig_len)
{
	int32_t st = (int32_t)ps_rd_u32(f);

	*status = 0;
	*sig = ps_rd_bytes(f, HSM_SIG_MAX, sig_len);
	/* A QS_ERR_* code, no signature with an error, and one with success. */
	if (*sig == NULL || st > 0 || st < QS_ERR_BADSIG || (st != 0 && *sig_len != 0) ||
	    (st == 0 && *sig_len == 0))
		return PS_GARBAGE;
	*status = st;
	return 0;
}

int
ps_pubkey_reply_decode(struct ps_rd *f, const uint8_t **der, size_t *der_len)
{
	*der = ps_rd_bytes(f, QS_MAX_PRIVSEP_MSG, der_len);
	return ps_rd_end(f) && *der != NULL ? 0 : PS_GARBAGE;
}

int
ps_token_for_reply_decode(struct ps_rd *f, uint32_t *index)
{
	*index = ps_rd_u32(f);
	return ps_rd_end(f) ? 0 : PS_GARBAGE;
}
