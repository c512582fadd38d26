/*
 * Signer helper protocol (signer/keys/privsep_wire.h): every request and reply
 * type round-trips, and garbage does not decode: each truncation, a
 * trailing byte, a NUL inside a string, counts and lengths over their
 * caps, a reply to another type, a status that is no QS_ERR_* code (of
 * the reply or of a batch item), a find reply's handle 0 or unknown key
 * type.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/check.h"
#include "hsm.h"
#include "privsep_wire.h"
#include "qs_err.h"

static struct ps_request_in in;

/* The body of a built frame (ps_wbuf keeps 4 bytes for the length). */
#define BODY(b) ((b).p + 4)
#define BLEN(b) ((b).len - 4)

/* Every proper prefix of a valid request and the request with one more
 * byte must be garbage. */
static void
request_strict(const char *what, struct ps_wbuf *b)
{
	uint8_t *x = malloc(BLEN(*b) + 1);

	memcpy(x, BODY(*b), BLEN(*b));
	for (size_t n = 1; n < BLEN(*b); n++)
		if (ps_request_decode(x, n, &in) != PS_GARBAGE) {
			fprintf(stderr, "%s: a prefix of %zu bytes decodes\n", what, n);
			CHECK(0);
		}
	x[BLEN(*b)] = 0;
	if (ps_request_decode(x, BLEN(*b) + 1, &in) != PS_GARBAGE) {
		fprintf(stderr, "%s: a trailing byte is accepted\n", what);
		CHECK(0);
	}
	free(x);
}

static void
requests(void)
{
	uint8_t dg[2][32] = {{1}, {2}}, blob[300] = {3};
	const uint8_t *items[2] = {dg[0], dg[1]};
	size_t lens[2] = {32, 20};
	struct ps_wbuf b;

	ps_request_encode(&b, &(struct ps_request){.type = PS_INFO});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_EQ(in.q.type, PS_INFO);
	request_strict("info", &b);
	ps_wb_free(&b);

	ps_request_encode(&b, &(struct ps_request){.type = PS_FIND, .uri = "pkcs11:token=a"});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_STR(in.q.uri, "pkcs11:token=a");
	request_strict("find", &b);
	BODY(b)[5 + 3] = '\0'; /* a NUL inside the URI */
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
	ps_wb_free(&b);

	ps_request_encode(
	        &b, &(struct ps_request){
	                    .type = PS_SIGN, .handle = 7, .data = blob, .data_len = sizeof(blob)});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_EQ(in.q.handle, 7);
	CHECK_EQ(in.q.data_len, sizeof(blob));
	CHECK(in.q.data != NULL && memcmp(in.q.data, blob, sizeof(blob)) == 0);
	request_strict("sign", &b);
	ps_wb_free(&b);

	ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_MANY,
	                                           .handle = 3,
	                                           .items = items,
	                                           .item_lens = lens,
	                                           .nitems = 2});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_EQ(in.q.nitems, 2);
	CHECK_EQ(in.q.item_lens[1], 20);
	CHECK(memcmp(in.q.items[0], dg[0], 32) == 0);
	request_strict("sign_many", &b);
	BODY(b)[8] = 0; /* n = 0 */
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
	ps_wb_free(&b);
	/* n over QS_MAX_BATCH, an item over QS_MAX_PRIVSEP_DIGEST */
	ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_MANY,
	                                           .handle = 3,
	                                           .items = items,
	                                           .item_lens = lens,
	                                           .nitems = 2});
	BODY(b)[7] = (uint8_t)((QS_MAX_BATCH + 1) >> 8);
	BODY(b)[8] = (uint8_t)(QS_MAX_BATCH + 1);
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
	ps_wb_free(&b);
	lens[1] = QS_MAX_PRIVSEP_DIGEST + 1;
	ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_MANY,
	                                           .handle = 3,
	                                           .items = (const uint8_t *const[]){dg[0], blob},
	                                           .item_lens = lens,
	                                           .nitems = 2});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
	ps_wb_free(&b);

	ps_request_encode(&b, &(struct ps_request){.type = PS_PUBKEY, .handle = 9});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_EQ(in.q.handle, 9);
	request_strict("pubkey", &b);
	ps_wb_free(&b);

	ps_request_encode(&b, &(struct ps_request){.type = PS_TOKEN_FOR, .uri = "pkcs11:"});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_STR(in.q.uri, "pkcs11:");
	request_strict("token_for", &b);
	ps_wb_free(&b);

	/* The key type is the helper's to refuse, not the decoder's. */
	ps_request_encode(&b, &(struct ps_request){.type = PS_KEYGEN,
	                                           .uri = "pkcs11:token=a",
	                                           .keytype = 99,
	                                           .label = "k"});
	CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
	CHECK_EQ(in.q.keytype, 99);
	CHECK_STR(in.q.label, "k");
	request_strict("keygen", &b);
	ps_wb_free(&b);

	/* A quorum request's evidence: every field back, a decision other than
	 * 0/1 and more than QS_MAX_PRIVSEP_VOTES votes are garbage. */
	{
		const uint8_t vsig[3] = {1, 2, 3};
		const struct ps_vote votes[1] = {
			{.approver = "admin1", .approve = 1, .time = -5, .sig = vsig, .sig_len = 3}};
		struct ps_evidence ev = {.id = "r1", .role = "release", .kind = "blob",
					 .submitter = "ci", .hash = "sha384",
					 .policy_version = 0x100000002ull,
					 .votes = votes, .nvotes = 1};
		ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_QUORUM, .handle = 5,
							   .ev = ev, .data = blob,
							   .data_len = sizeof(blob)});
		CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
		CHECK_EQ(in.q.handle, 5);
		CHECK_STR(in.q.ev.submitter, "ci");
		CHECK_STR(in.q.ev.hash, "sha384");
		CHECK(in.q.ev.policy_version == 0x100000002ull);
		CHECK_EQ(in.q.ev.nvotes, 1);
		CHECK_STR(in.q.ev.votes[0].approver, "admin1");
		CHECK(in.q.ev.votes[0].time == -5);
		CHECK_EQ(in.q.ev.votes[0].sig_len, 3);
		CHECK_EQ(in.q.data_len, sizeof(blob));
		request_strict("sign_quorum", &b);
		/* the decision byte: after handle, 5 strings (the last the
		 * hash), version, count and the approver string */
		BODY(b)[1 + 4 + (4 + 2) + (4 + 7) + (4 + 4) + (4 + 2) + (4 + 6) + 8 + 4 + (4 + 6)] = 2;
		CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
		ps_wb_free(&b);
		ev.nvotes = QS_MAX_PRIVSEP_VOTES + 1;
		{
			struct ps_vote many[QS_MAX_PRIVSEP_VOTES + 1];
			for (size_t i = 0; i < QS_MAX_PRIVSEP_VOTES + 1; i++)
				many[i] = votes[0];
			ev.votes = many;
			ps_request_encode(&b, &(struct ps_request){.type = PS_POLICY, .ev = ev,
								   .data = blob, .data_len = 4});
			CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), PS_GARBAGE);
			ps_wb_free(&b);
		}
		/* A TUF document and a certificate carry the evidence of the
		 * quorum request that makes them, and its payload. */
		ev.votes = votes;
		ev.nvotes = 1;
		ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_TUF, .handle = 7,
							   .repo = "prod", .data = blob,
							   .data_len = 8, .ev = ev,
							   .payload = (const uint8_t *)"hello",
							   .payload_len = 5});
		CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
		CHECK_STR(in.q.repo, "prod");
		CHECK_EQ(in.q.data_len, 8);
		CHECK_STR(in.q.ev.id, "r1");
		CHECK_EQ(in.q.ev.nvotes, 1);
		CHECK_EQ(in.q.payload_len, 5);
		CHECK(memcmp(in.q.payload, "hello", 5) == 0);
		CHECK(in.q.payload + 5 == BODY(b) + BLEN(b));
		request_strict("sign_tuf", &b);
		ps_wb_free(&b);
		ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_X509, .handle = 8,
							   .x509_kind = PS_X509_CRL,
							   .data = blob, .data_len = 3,
							   .ev = ev, .payload = blob,
							   .payload_len = 2});
		CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
		CHECK_EQ(in.q.x509_kind, PS_X509_CRL);
		CHECK_STR(in.q.ev.kind, "blob");
		CHECK_EQ(in.q.payload_len, 2);
		request_strict("sign_x509", &b);
		ps_wb_free(&b);
		ps_request_encode(&b, &(struct ps_request){.type = PS_SIGN_CHECKPOINT, .handle = 6,
							   .data = blob, .data_len = 10});
		CHECK_EQ(ps_request_decode(BODY(b), BLEN(b), &in), 0);
		CHECK_EQ(in.q.data_len, 10);
		request_strict("sign_checkpoint", &b);
		ps_wb_free(&b);
	}

	/* Not in the protocol: refused by the helper, not garbage. A known
	 * type without its fields is garbage, but for INFO, which has none. */
	for (unsigned t = 0; t < 256; t++) {
		uint8_t x = (uint8_t)t;
		int r = ps_request_decode(&x, 1, &in);
		if (t == PS_INFO)
			CHECK_EQ(r, 0);
		else if (t > PS_INFO && t <= PS_SIGN_X509)
			CHECK_EQ(r, PS_GARBAGE);
		else
			CHECK_EQ(r, PS_UNKNOWN);
	}
	CHECK_EQ(ps_request_decode(NULL, 0, &in), PS_GARBAGE);
}

static void
reply_start(struct ps_wbuf *b, uint8_t type, int status)
{
	ps_wb_init(b);
	ps_wb_u8(b, (uint8_t)(type | PS_REPLY));
	ps_wb_u32(b, (uint32_t)(int32_t)status);
}

static void
replies(void)
{
	uint8_t sig[64] = {5}, der[91] = {0x30};
	struct ps_find_reply fr;
	const uint8_t *p;
	char label[QS_MAX_PRIVSEP_STR + 1];
	uint32_t n, s, rc;
	struct ps_wbuf b;
	struct ps_rd f;
	size_t len;
	int st;

	/* The header: type, status, detail. */
	reply_start(&b, PS_SIGN, QS_ERR_DENIED);
	ps_wb_str(&b, "no");
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), QS_ERR_DENIED);
	CHECK_STR(qs_errdetail(), "no");
	CHECK_EQ(ps_reply_decode(PS_FIND, BODY(b), BLEN(b), &f), PS_GARBAGE);
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b) - 1, &f), PS_GARBAGE);
	ps_wb_free(&b);
	reply_start(&b, PS_SIGN, 1); /* positive: no QS_ERR_* code */
	ps_wb_str(&b, "x");
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), PS_GARBAGE);
	ps_wb_free(&b);
	reply_start(&b, PS_SIGN, QS_ERR_BADSIG - 1);
	ps_wb_str(&b, "x");
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), PS_GARBAGE);
	ps_wb_free(&b);

	/* INFO / READY */
	reply_start(&b, PS_READY, 0);
	ps_wb_u32(&b, 2);
	ps_wb_str(&b, "one");
	ps_wb_u32(&b, 4);
	ps_wb_u32(&b, 5);
	ps_wb_str(&b, "two");
	ps_wb_u32(&b, 6);
	ps_wb_u32(&b, 7);
	CHECK_EQ(ps_reply_decode(PS_READY, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_info_decode_count(&f, &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(ps_info_decode_token(&f, label, &s, &rc), 0);
	CHECK_STR(label, "one");
	CHECK_EQ(s, 4);
	CHECK_EQ(rc, 5);
	CHECK_EQ(ps_info_decode_token(&f, label, NULL, NULL), 0);
	CHECK_STR(label, "two");
	CHECK(ps_rd_end(&f));
	CHECK_EQ(ps_info_decode_token(&f, label, NULL, NULL), PS_GARBAGE);
	ps_wb_free(&b);

	/* FIND */
	reply_start(&b, PS_FIND, 0);
	ps_wb_u32(&b, 1);
	ps_wb_u8(&b, HSM_KEY_ED25519);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, der, sizeof(der));
	CHECK_EQ(ps_reply_decode(PS_FIND, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_find_reply_decode(&f, &fr), 0);
	CHECK_EQ(fr.handle, 1);
	CHECK_EQ(fr.keytype, HSM_KEY_ED25519);
	CHECK_EQ(fr.der_len, sizeof(der));
	CHECK_EQ(ps_reply_decode(PS_FIND, BODY(b), BLEN(b) - 1, &f), 0);
	CHECK_EQ(ps_find_reply_decode(&f, &fr), PS_GARBAGE);
	ps_wb_u8(&b, 0);
	CHECK_EQ(ps_reply_decode(PS_FIND, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_find_reply_decode(&f, &fr), PS_GARBAGE);
	ps_wb_free(&b);
	/* Regression (fuzz_privsep): handle 0, which no helper hands out, and
	 * key types the front cannot use were accepted. */
	for (int bad = 0; bad < 3; bad++) {
		reply_start(&b, PS_FIND, 0);
		ps_wb_u32(&b, bad == 0 ? 0 : 1);
		ps_wb_u8(&b, bad == 0 ? HSM_KEY_EC_P256 : bad == 1 ? HSM_KEY_NONE : 0xff);
		ps_wb_u32(&b, 0);
		ps_wb_bytes(&b, der, sizeof(der));
		CHECK_EQ(ps_reply_decode(PS_FIND, BODY(b), BLEN(b), &f), 0);
		CHECK_EQ(ps_find_reply_decode(&f, &fr), PS_GARBAGE);
		ps_wb_free(&b);
	}

	/* SIGN: at most HSM_SIG_MAX bytes */
	reply_start(&b, PS_SIGN, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_sign_reply_decode(&f, &p, &len), 0);
	CHECK_EQ(len, sizeof(sig));
	ps_wb_free(&b);
	{
		uint8_t *big = calloc(1, HSM_SIG_MAX + 1);
		reply_start(&b, PS_SIGN, 0);
		ps_wb_bytes(&b, big, HSM_SIG_MAX + 1);
		CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), 0);
		CHECK_EQ(ps_sign_reply_decode(&f, &p, &len), PS_GARBAGE);
		ps_wb_free(&b);
		free(big);
	}

	/* A success without a signature is no success. */
	reply_start(&b, PS_SIGN, 0);
	ps_wb_bytes(&b, NULL, 0);
	CHECK_EQ(ps_reply_decode(PS_SIGN, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_sign_reply_decode(&f, &p, &len), PS_GARBAGE);
	ps_wb_free(&b);
	reply_start(&b, PS_SIGN_MANY, 0);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, NULL, 0);
	CHECK_EQ(ps_reply_decode(PS_SIGN_MANY, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_sign_many_item_decode(&f, &st, &p, &len), PS_GARBAGE);
	ps_wb_free(&b);

	/* SIGN_MANY: a signed item and a failed one */
	reply_start(&b, PS_SIGN_MANY, 0);
	ps_wb_u32(&b, 0);
	ps_wb_bytes(&b, sig, sizeof(sig));
	ps_wb_u32(&b, (uint32_t)(int32_t)QS_ERR_PKCS11);
	ps_wb_bytes(&b, NULL, 0);
	CHECK_EQ(ps_reply_decode(PS_SIGN_MANY, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_sign_many_item_decode(&f, &st, &p, &len), 0);
	CHECK_EQ(st, 0);
	CHECK_EQ(len, sizeof(sig));
	CHECK_EQ(ps_sign_many_item_decode(&f, &st, &p, &len), 0);
	CHECK_EQ(st, QS_ERR_PKCS11);
	CHECK_EQ(len, 0);
	CHECK(ps_rd_end(&f));
	CHECK_EQ(ps_sign_many_item_decode(&f, &st, &p, &len), PS_GARBAGE);
	ps_wb_free(&b);
	/* Regression (fuzz_privsep): an item's status that is no QS_ERR_*
	 * code (0xb50000 was the finding), and a failed item with a
	 * signature, were accepted. */
	{
		static const struct {
			int32_t status;
			size_t sig_len;
		} bad[] = {{0xb50000, 0}, {1, 0}, {QS_ERR_BADSIG - 1, 0}, {QS_ERR_PKCS11, 64}};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			reply_start(&b, PS_SIGN_MANY, 0);
			ps_wb_u32(&b, (uint32_t)bad[i].status);
			ps_wb_bytes(&b, sig, bad[i].sig_len);
			CHECK_EQ(ps_reply_decode(PS_SIGN_MANY, BODY(b), BLEN(b), &f), 0);
			CHECK_EQ(ps_sign_many_item_decode(&f, &st, &p, &len), PS_GARBAGE);
			ps_wb_free(&b);
		}
	}

	/* PUBKEY, TOKEN_FOR, KEYGEN */
	reply_start(&b, PS_PUBKEY, 0);
	ps_wb_bytes(&b, der, sizeof(der));
	CHECK_EQ(ps_reply_decode(PS_PUBKEY, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_pubkey_reply_decode(&f, &p, &len), 0);
	CHECK_EQ(len, sizeof(der));
	ps_wb_free(&b);
	reply_start(&b, PS_TOKEN_FOR, 0);
	ps_wb_u32(&b, PS_NO_TOKEN);
	CHECK_EQ(ps_reply_decode(PS_TOKEN_FOR, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_token_for_reply_decode(&f, &n), 0);
	CHECK_EQ(n, PS_NO_TOKEN);
	ps_wb_u8(&b, 0);
	CHECK_EQ(ps_reply_decode(PS_TOKEN_FOR, BODY(b), BLEN(b), &f), 0);
	CHECK_EQ(ps_token_for_reply_decode(&f, &n), PS_GARBAGE);
	ps_wb_free(&b);
	reply_start(&b, PS_KEYGEN, 0);
	CHECK_EQ(ps_reply_decode(PS_KEYGEN, BODY(b), BLEN(b), &f), 0);
	CHECK(ps_rd_end(&f));
	ps_wb_free(&b);
}

static void
framing(void)
{
	uint8_t h[4] = {0, 0, 0, 0};
	uint32_t n;
	struct ps_wbuf b;

	CHECK_EQ(ps_frame_len(h, &n), QS_ERR_INVALID);
	h[3] = 1;
	CHECK_EQ(ps_frame_len(h, &n), 0);
	CHECK_EQ(n, 1);
	memset(h, 0xff, 4);
	CHECK_EQ(ps_frame_len(h, &n), QS_ERR_INVALID);
	/* A frame over the cap is refused when built, not cut. */
	ps_wb_init(&b);
	ps_wb_u8(&b, PS_SIGN);
	ps_wb_bytes(&b, NULL, QS_MAX_PRIVSEP_MSG);
	CHECK(b.err);
	CHECK_EQ(ps_wb_finish(&b), QS_ERR_EXHAUSTED);
	ps_wb_free(&b);
}

int
main(void)
{
	requests();
	replies();
	framing();
	CHECK_DONE();
}
