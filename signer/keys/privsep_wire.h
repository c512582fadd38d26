/*
 * privsep_wire.h - the bytes of the signer helper protocol (format in
 * privsep.h): the frame builder, the bounds-checked reader, and the strict
 * decoders of both directions (the helper's of requests, the front's of
 * replies). No sockets, tokens or processes here, so that the fuzz target
 * (tests/fuzz/fuzz_privsep.c) runs exactly the decoders qsignd runs.
 *
 * Decoders return 0 or PS_GARBAGE ("does not decode": a missing, oversized
 * or trailing field, a NUL inside a string, a value outside its range).
 * What a decoded message means (is the handle ours, does the token index
 * exist) is for privsep_helper.c and privsep.c to judge.
 */
#ifndef QS_PRIVSEP_WIRE_H
#define QS_PRIVSEP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "qs_limits.h"

enum ps_type {
	PS_INFO = 1,
	PS_FIND = 2,
	PS_SIGN = 3,
	PS_KEYGEN = 4,
	PS_PUBKEY = 5,
	PS_TOKEN_FOR = 6,
	PS_SIGN_MANY = 7,
	PS_POLICY = 8,
	PS_SIGN_QUORUM = 9,
	PS_SIGN_CHECKPOINT = 10,
	PS_SIGN_TUF = 11,
	PS_SIGN_X509 = 12,
	PS_READY = 0x7e,
};
#define PS_REPLY 0x80
#define PS_NO_TOKEN 0xffffffffu

/* PS_SIGN_X509's kinds of object, and the largest one. */
enum ps_x509_kind { PS_X509_CERT = 1, PS_X509_CRL = 2, PS_X509_CALIST = 3 };
#define PS_MAX_X509 (256u * 1024)
/* The signature of the CA list before the one signed (DER ECDSA). */
#define PS_MAX_PREV_SIG 512u

/* A message that does not decode. Positive: never a QS_ERR_* code. */
#define PS_GARBAGE 1
/* The unknown request type: not garbage, the helper refuses it. */
#define PS_UNKNOWN 3

/* ------------------------------------------------------------ building */

/* A frame being built: 4 bytes of length, then the body. A write that
 * would pass QS_MAX_PRIVSEP_MSG or fails to allocate sets err; later
 * writes are no-ops. */
struct ps_wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

void ps_wb_init(struct ps_wbuf *b);
void ps_wb_u8(struct ps_wbuf *b, uint8_t v);
void ps_wb_u32(struct ps_wbuf *b, uint32_t v);
void ps_wb_bytes(struct ps_wbuf *b, const uint8_t *d, size_t n);
/* Strings longer than QS_MAX_PRIVSEP_STR are cut (error details), never
 * refused. */
void ps_wb_str(struct ps_wbuf *b, const char *s);
/* Write the body length into the first 4 bytes. 0, or QS_ERR_EXHAUSTED
 * (with detail) if a write failed. */
int ps_wb_finish(struct ps_wbuf *b);
/* Wipes (frames carry signatures and inputs) and frees. */
void ps_wb_free(struct ps_wbuf *b);

/* ------------------------------------------------------------ reading */

/* A cursor over received bytes; bad sticks once a read failed. */
struct ps_rd {
	const uint8_t *p;
	size_t n;
	int bad;
};

uint8_t ps_rd_u8(struct ps_rd *r);
uint32_t ps_rd_u32(struct ps_rd *r);
/* u32 n || n bytes with n <= max: points into the message, NULL if bad. */
const uint8_t *ps_rd_bytes(struct ps_rd *r, size_t max, size_t *n);
/* A str field copied into out (QS_MAX_PRIVSEP_STR + 1 bytes), NUL-ended;
 * a NUL inside makes r bad. out is "" when bad. */
void ps_rd_str(struct ps_rd *r, char *out);
/* 1 if every read succeeded and nothing is left over. */
int ps_rd_end(const struct ps_rd *r);

/* The body length in a frame header: 0, or QS_ERR_INVALID (with detail)
 * outside 1..QS_MAX_PRIVSEP_MSG. */
int ps_frame_len(const uint8_t h[4], uint32_t *n);

/* ------------------------------------------------------------ requests */

/* One vote on a quorum request, as its approver signed it: the fields of
 * the approval statement (proto/statement.h) the request does not carry. */
struct ps_vote {
	const char *approver;
	uint8_t approve; /* 0 or 1 */
	int64_t time;
	const uint8_t *sig; /* at most QS_MAX_PRIVSEP_VOTE_SIG bytes */
	size_t sig_len;
};

/* The evidence of a quorum request (PS_POLICY, PS_SIGN_QUORUM, and
 * PS_SIGN_TUF / PS_SIGN_X509 of a quorum operation): what its approvers
 * signed besides the payload, and their votes. The helper judges it
 * (approval.h); the decoder only bounds it. An empty id and no votes: no
 * request (an online TUF document, a device certificate). */
struct ps_evidence {
	const char *id, *role, *kind, *submitter;
	const char *hash;        /* the signature's hash (store_request.hash; "" = sha256) */
	uint64_t policy_version; /* the version it was submitted under */
	const struct ps_vote *votes;
	size_t nvotes; /* 0..QS_MAX_PRIVSEP_VOTES */
};

/* A request as the front sends it. Which fields count depends on type
 * (privsep.h's table); pointers are borrowed. */
struct ps_request {
	uint8_t type;
	uint32_t handle;   /* SIGN, SIGN_MANY, PUBKEY, SIGN_QUORUM, SIGN_CHECKPOINT,
	                    * SIGN_TUF */
	const char *uri;   /* FIND, TOKEN_FOR; KEYGEN's token URI */
	const char *label; /* KEYGEN */
	const char *repo;  /* SIGN_TUF: "ci" or "prod" (the helper judges it) */
	uint8_t keytype;   /* KEYGEN: not checked here (the helper refuses) */
	uint8_t x509_kind; /* SIGN_X509: an enum ps_x509_kind */
	/* SIGN: the input; POLICY: the policy text; SIGN_QUORUM: the
	 * request's payload; SIGN_CHECKPOINT: the checkpoint note text;
	 * SIGN_TUF: the canonical JSON of a TUF document's "signed";
	 * SIGN_X509: the DER certificate or CRL (any signature), or the CA
	 * list text. */
	const uint8_t *data;
	size_t data_len;
	struct ps_evidence ev; /* POLICY, SIGN_QUORUM, SIGN_TUF, SIGN_X509 */
	/* SIGN_TUF, SIGN_X509: the payload of the request ev (empty without
	 * one), at most QS_MAX_REQUEST_PAYLOAD. */
	const uint8_t *payload;
	size_t payload_len;
	/* SIGN_X509 of a CRL: the CRL this key signed before it (DER, the
	 * one the new one follows); of the CA list: the list before it, and
	 * prev_sig its signature (DER ECDSA, at most PS_MAX_PREV_SIG). Empty
	 * for the first; at most PS_MAX_X509. */
	const uint8_t *prev;
	size_t prev_len;
	const uint8_t *prev_sig;
	size_t prev_sig_len;
	const uint8_t *const *items; /* SIGN_MANY: nitems digests */
	const size_t *item_lens;
	size_t nitems;
};

/* The front's builder: *b initialised and holding type and fields (b->err
 * set if they do not fit). */
void ps_request_encode(struct ps_wbuf *b, const struct ps_request *q);

/* What a decoded request points into: the strings are copied here, data
 * and items point into the frame body. */
struct ps_request_in {
	struct ps_request q;
	char uri[QS_MAX_PRIVSEP_STR + 1];
	char label[QS_MAX_PRIVSEP_STR + 1];
	char repo[QS_MAX_PRIVSEP_STR + 1];
	const uint8_t *items[QS_MAX_BATCH];
	size_t item_lens[QS_MAX_BATCH];
	char ev_id[QS_MAX_PRIVSEP_STR + 1], ev_role[QS_MAX_PRIVSEP_STR + 1];
	char ev_kind[QS_MAX_PRIVSEP_STR + 1], ev_submitter[QS_MAX_PRIVSEP_STR + 1];
	char ev_hash[QS_MAX_PRIVSEP_STR + 1];
	char approvers[QS_MAX_PRIVSEP_VOTES][QS_MAX_PRIVSEP_STR + 1];
	struct ps_vote votes[QS_MAX_PRIVSEP_VOTES];
};

/* The helper's decoder of one frame body (len >= 1). 0 with in->q filled,
 * PS_UNKNOWN for a type this protocol does not have (in->q.type set),
 * PS_GARBAGE for a known type whose fields do not decode. */
int ps_request_decode(const uint8_t *body, size_t len, struct ps_request_in *in);

/* ------------------------------------------------------------ replies */

/* The header of a reply to `type`: 0 with *fields over a success's fields,
 * PS_GARBAGE if it is no well-formed reply to that type (other type byte,
 * a status that is no QS_ERR_* code, a bad detail), else the helper's
 * error status, its detail set as the error detail (qs_errdetail). */
int ps_reply_decode(uint8_t type, const uint8_t *body, size_t len, struct ps_rd *fields);

/* PS_INFO and PS_READY fields: the token count (the caller bounds it by
 * QS_MAX_PRIVSEP_TOKENS), then that many tokens; the caller checks
 * ps_rd_end after the last. label holds QS_MAX_PRIVSEP_STR + 1 bytes;
 * sessions/reconnects may be NULL. */
int ps_info_decode_count(struct ps_rd *f, uint32_t *ntok);
int ps_info_decode_token(struct ps_rd *f, char *label, uint32_t *sessions, uint32_t *reconnects);

struct ps_find_reply {
	uint32_t handle; /* never 0 */
	uint8_t keytype; /* an enum hsm_keytype other than HSM_KEY_NONE */
	uint32_t tok;    /* checked against the token count by the caller */
	const uint8_t *der;
	size_t der_len;
};
int ps_find_reply_decode(struct ps_rd *f, struct ps_find_reply *out);
/* PS_SIGN: one signature of at most HSM_SIG_MAX bytes. */
int ps_sign_reply_decode(struct ps_rd *f, const uint8_t **sig, size_t *sig_len);
/* One PS_SIGN_MANY item: *status, a QS_ERR_* code (0 = signed), and the
 * signature (at most HSM_SIG_MAX bytes; empty when the item failed). The
 * caller checks ps_rd_end after the last item it asked for. */
int ps_sign_many_item_decode(struct ps_rd *f, int *status, const uint8_t **sig, size_t *sig_len);
/* PS_PUBKEY: SubjectPublicKeyInfo DER. */
int ps_pubkey_reply_decode(struct ps_rd *f, const uint8_t **der, size_t *der_len);
/* PS_TOKEN_FOR: a token index or PS_NO_TOKEN. */
int ps_token_for_reply_decode(struct ps_rd *f, uint32_t *index);

#endif
