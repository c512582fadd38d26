/* Fuzz target: the signer helper protocol (signer/keys/privsep_wire.h), both
 * directions. An input is one frame body, as read_frame hands it over:
 * the helper decodes it as a request, the front as a reply to the type in
 * its first byte (PS_INFO, PS_READY, PS_FIND, PS_SIGN, PS_SIGN_MANY, ...).
 * Beyond "no crash": decoding is strict, so whatever decodes must encode
 * back to exactly the input, and decoded values stay within their caps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsm.h"
#include "privsep_wire.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "tuf_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The re-encoded body must be the input: no two encodings of a message. */
static void
same(struct ps_wbuf *b, const uint8_t *data, size_t size)
{
	if (b->err || b->len - 4 != size || memcmp(b->p + 4, data, size) != 0)
		abort();
	ps_wb_free(b);
}

static void
str_ok(const char *s)
{
	if (strlen(s) > QS_MAX_PRIVSEP_STR)
		abort();
}

/* A quorum request's evidence: bounded, every string and vote in range. */
static void
evidence_ok(const struct ps_evidence *ev)
{
	str_ok(ev->id);
	str_ok(ev->role);
	str_ok(ev->kind);
	str_ok(ev->submitter);
	if (ev->nvotes > QS_MAX_PRIVSEP_VOTES)
		abort();
	for (size_t i = 0; i < ev->nvotes; i++) {
		str_ok(ev->votes[i].approver);
		if (ev->votes[i].approve > 1 || ev->votes[i].sig_len > QS_MAX_PRIVSEP_VOTE_SIG)
			abort();
	}
}

static void
request(const uint8_t *data, size_t size)
{
	static struct ps_request_in in;
	struct ps_wbuf b;
	int r = ps_request_decode(data, size, &in);

	if (r == PS_UNKNOWN || r == PS_GARBAGE)
		return;
	if (r != 0)
		abort();
	switch (in.q.type) {
	case PS_FIND:
	case PS_TOKEN_FOR:
		str_ok(in.q.uri);
		break;
	case PS_KEYGEN:
		str_ok(in.q.uri);
		str_ok(in.q.label);
		break;
	case PS_SIGN:
		if (in.q.data_len > QS_MAX_BLOB || in.q.data < data ||
		    in.q.data + in.q.data_len > data + size)
			abort();
		break;
	case PS_POLICY:
	case PS_SIGN_QUORUM:
		evidence_ok(&in.q.ev);
		/* fall through */
	case PS_SIGN_CHECKPOINT:
	case PS_SIGN_TUF:
	case PS_SIGN_X509:
		if (in.q.type == PS_SIGN_TUF)
			str_ok(in.q.repo);
		if (in.q.type == PS_SIGN_X509 &&
		    (in.q.x509_kind < PS_X509_CERT || in.q.x509_kind > PS_X509_CALIST))
			abort();
		if (in.q.data_len > (in.q.type == PS_POLICY	    ? QS_MAX_POLICY_BYTES
				     : in.q.type == PS_SIGN_TUF    ? TUF_MAX_METADATA
				     : in.q.type == PS_SIGN_X509   ? PS_MAX_X509
				     : in.q.type == PS_SIGN_QUORUM ? QS_MAX_REQUEST_PAYLOAD
								   : QS_MAX_NOTE) ||
		    in.q.data < data || in.q.data + in.q.data_len > data + size)
			abort();
		break;
	case PS_SIGN_MANY:
		if (in.q.nitems == 0 || in.q.nitems > QS_MAX_BATCH)
			abort();
		for (size_t i = 0; i < in.q.nitems; i++)
			if (in.q.item_lens[i] > QS_MAX_PRIVSEP_DIGEST)
				abort();
		break;
	default:
		break;
	}
	ps_request_encode(&b, &in.q);
	same(&b, data, size);
}

/* The fields of a successful reply to type, decoded as the front does and
 * encoded back as the helper does. */
static void
reply_fields(uint8_t type, struct ps_rd *f, const uint8_t *data, size_t size)
{
	char label[QS_MAX_PRIVSEP_STR + 1];
	struct ps_find_reply fr;
	const uint8_t *p;
	uint32_t n, s, rc;
	struct ps_wbuf b;
	size_t len;
	int st;

	ps_wb_init(&b);
	ps_wb_u8(&b, (uint8_t)(type | PS_REPLY));
	ps_wb_u32(&b, 0);
	switch (type) {
	case PS_INFO:
	case PS_READY:
		if (ps_info_decode_count(f, &n) != 0 || n > QS_MAX_PRIVSEP_TOKENS)
			goto bad;
		ps_wb_u32(&b, n);
		for (uint32_t i = 0; i < n; i++) {
			if (ps_info_decode_token(f, label, &s, &rc) != 0)
				goto bad;
			str_ok(label);
			ps_wb_str(&b, label);
			ps_wb_u32(&b, s);
			ps_wb_u32(&b, rc);
		}
		if (!ps_rd_end(f))
			goto bad;
		break;
	case PS_FIND:
		if (ps_find_reply_decode(f, &fr) != 0)
			goto bad;
		/* Handles count from 1; a key type the front can use. */
		if (fr.handle == 0 || hsm_keytype_name((enum hsm_keytype)fr.keytype) == NULL)
			abort();
		ps_wb_u32(&b, fr.handle);
		ps_wb_u8(&b, fr.keytype);
		ps_wb_u32(&b, fr.tok);
		ps_wb_bytes(&b, fr.der, fr.der_len);
		break;
	case PS_SIGN:
	case PS_SIGN_QUORUM:
	case PS_SIGN_CHECKPOINT:
	case PS_SIGN_TUF:
	case PS_SIGN_X509:
		if (ps_sign_reply_decode(f, &p, &len) != 0)
			goto bad;
		if (len > HSM_SIG_MAX)
			abort();
		ps_wb_bytes(&b, p, len);
		break;
	case PS_SIGN_MANY:
		/* The front knows how many it asked for: here, as many as
		 * there are (a batch is at most QS_MAX_BATCH). */
		for (n = 0; f->n > 0 && n < QS_MAX_BATCH; n++) {
			if (ps_sign_many_item_decode(f, &st, &p, &len) != 0)
				goto bad;
			/* privsep.h: a failed item has its QS_ERR_* status and
			 * an empty signature. */
			if (len > HSM_SIG_MAX || st > 0 || st < QS_ERR_BADSIG ||
			    (st != 0 && len != 0))
				abort();
			ps_wb_u32(&b, (uint32_t)st);
			ps_wb_bytes(&b, p, len);
		}
		if (!ps_rd_end(f))
			goto bad;
		break;
	case PS_PUBKEY:
		if (ps_pubkey_reply_decode(f, &p, &len) != 0)
			goto bad;
		ps_wb_bytes(&b, p, len);
		break;
	case PS_TOKEN_FOR:
		if (ps_token_for_reply_decode(f, &n) != 0)
			goto bad;
		ps_wb_u32(&b, n);
		break;
	default:
		/* PS_KEYGEN and types without fields. */
		if (!ps_rd_end(f))
			goto bad;
		break;
	}
	same(&b, data, size);
	return;
bad:
	ps_wb_free(&b);
}

static void
reply(const uint8_t *data, size_t size)
{
	uint8_t type = data[0] & (uint8_t)~PS_REPLY;
	char detail[QS_MAX_PRIVSEP_STR + 1];
	struct ps_wbuf b;
	struct ps_rd f;
	int r = ps_reply_decode(type, data, size, &f);

	if (r == PS_GARBAGE)
		return;
	if (r == 0) {
		reply_fields(type, &f, data, size);
		return;
	}
	/* An error reply: a QS_ERR_* status and its detail, nothing else;
	 * the error detail is the wire's (cut to the detail buffer). */
	if (r > 0 || r < QS_ERR_BADSIG)
		abort();
	f = (struct ps_rd){.p = data + 5, .n = size - 5};
	ps_rd_str(&f, detail);
	if (!ps_rd_end(&f) || strncmp(detail, qs_errdetail(), strlen(qs_errdetail())) != 0)
		abort();
	ps_wb_init(&b);
	ps_wb_u8(&b, (uint8_t)(type | PS_REPLY));
	ps_wb_u32(&b, (uint32_t)(int32_t)r);
	ps_wb_str(&b, detail);
	same(&b, data, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t n;

	if (size >= 4 && ps_frame_len(data, &n) == 0 && (n == 0 || n > QS_MAX_PRIVSEP_MSG))
		abort();
	/* read_frame never hands over an empty body. */
	if (size == 0 || size > QS_MAX_PRIVSEP_MSG)
		return 0;
	request(data, size);
	reply(data, size);
	return 0;
}
