/*
 * storm - a bounded storm of malformed and hostile calls against a running
 * qsignd, interleaved at random, while a valid client keeps signing.
 *
 * usage: storm URL HOME IDS OUTDIR
 *   URL     the daemon's ipc:// URL
 *   HOME    a demo QSIGN_HOME (demo/<name>.key principal keys)
 *   IDS     file of "state id" lines: requests prepared by storm.sh
 *           (pending, signed, cancelled, expired, rejected)
 *   OUTDIR  where to write expect.txt (audit entries this run must add) and
 *           valid.txt (digests the valid client had signed)
 * Environment: QS_STORM_CALLS (default 10000), QS_STORM_SEED.
 *
 * The daemon's policy must have: ci (requester of online role ci-sign,
 * unlimited), registrar (requester of online role "flood", rate 2/s burst
 * 2), admin1..3 (approvers of quorum role release, threshold 2).
 *
 * Every hostile call must be answered with an error (or, for garbage below
 * the SP framing, with a dropped connection). A call that is not is a
 * "survivor". Every ~500 hostile calls a correctly authenticated client
 * must still sign. The refusals of state-changing calls by authenticated
 * principals are audited; the program counts how many it caused so that
 * storm.sh can check the audit log gained exactly those.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <openssl/pem.h>

#include "hangup_attack.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "qsclient.h"
#include "statement.h"
#include "wire.h"

static const char *url, *home;
static int setup_failures;

#define DIE(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "storm: " __VA_ARGS__);                                            \
		fputc('\n', stderr);                                                               \
		exit(2);                                                                           \
	} while (0)

/* ------------------------------------------------------------ categories */

enum cat {
	C_RANDOM,
	C_TRUNCATED,
	C_OVERSIZED,
	C_TRANSPORT,
	C_WRONGTYPE,
	C_REPLAY,
	C_FOREIGN,
	C_CLOSED,
	C_FORBIDDEN,
	C_UNAUTH,
	C_FLOOD,
	C_HANGUP,
	NCAT
};

static const struct {
	const char *name;
	int weight; /* per 10,000 */
} cats[NCAT] = {
        [C_RANDOM] = {"random bytes as a frame", 1800},
        [C_TRUNCATED] = {"truncated frames and bodies", 1500},
        [C_OVERSIZED] = {"oversized fields and bodies", 500},
        [C_TRANSPORT] = {"transport garbage (raw ipc)", 300},
        [C_WRONGTYPE] = {"wrong message / field types", 1400},
        [C_REPLAY] = {"replayed / misbound challenges", 800},
        [C_FOREIGN] = {"another principal's approval", 700},
        [C_CLOSED] = {"approvals of closed requests", 800},
        [C_FORBIDDEN] = {"forbidden roles and requests", 500},
        [C_UNAUTH] = {"unauthenticated calls", 500},
        [C_FLOOD] = {"floods above the rate limit", 1200},
        [C_HANGUP] = {"hang-ups during negotiation", 300},
};

static struct {
	long tried, errors, survivors, noreply;
} st[NCAT];

static long exp_auth, exp_sig, exp_refusal;
static long flood_ok;

static void
outcome(enum cat c, int status, const char *what)
{
	st[c].tried++;
	if (status < 0) {
		st[c].noreply++;
		fprintf(stderr, "NO REPLY [%s] %s\n", cats[c].name, what);
	} else if (status == 0) {
		st[c].survivors++;
		fprintf(stderr, "SURVIVOR [%s] %s\n", cats[c].name, what);
	} else {
		st[c].errors++;
	}
}

/* ------------------------------------------------------------ helpers */

static uint64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
rnd(void *p, size_t n)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(random() >> 7);
}

static size_t
rndn(size_t n)
{
	return n ? (size_t)random() % n : 0;
}

static nng_socket
dial(void)
{
	nng_socket s;
	int rv;

	if ((rv = nng_req0_open(&s)) != 0 || (rv = nng_dial(s, url, NULL, 0)) != 0)
		DIE("dial %s: %s", url, nng_strerror(rv));
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	return s;
}

/* Send a raw Call frame; the reply's status, or -1 without a reply. */
static int
raw_call(nng_socket s, const void *frame, size_t len, ProtobufCMessage **body_out,
         const ProtobufCMessageDescriptor *body_desc)
{
	Qsign__V1__Reply *r = NULL;
	void *buf = NULL;
	size_t n = 0;
	int rv, status;

	if (body_out)
		*body_out = NULL;
	if ((rv = nng_send(s, (void *)frame, len, 0)) != 0 ||
	    (rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC)) != 0) {
		fprintf(stderr, "  (transport: %s)\n", nng_strerror(rv));
		return -1;
	}
	if (qs_wire_unpack(&qsign__v1__reply__descriptor, buf, n, QS_MAX_FRAME,
	                   (ProtobufCMessage **)&r) != 0) {
		nng_free(buf, n);
		fprintf(stderr, "  (reply is not a Reply)\n");
		return -1;
	}
	nng_free(buf, n);
	status = (int)r->status;
	if (status == 0 && body_out && body_desc &&
	    qs_wire_unpack(body_desc, r->body.data, r->body.len, QS_MAX_FRAME, body_out) != 0)
		status = -1;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return status;
}

static void
frame_of(const char *method, const uint8_t *body, size_t body_len, uint8_t **f, size_t *fl)
{
	Qsign__V1__Call c = QSIGN__V1__CALL__INIT;

	c.method = (char *)method;
	c.body.data = (uint8_t *)body;
	c.body.len = body_len;
	c.call_id = (uint64_t)random() + 1;
	if (qs_wire_pack(&c.base, f, fl) != 0)
		DIE("pack");
}

static int
call_raw_body(nng_socket s, const char *method, const uint8_t *body, size_t body_len)
{
	uint8_t *f = NULL;
	size_t fl = 0;
	int status;

	frame_of(method, body, body_len, &f, &fl);
	status = raw_call(s, f, fl, NULL, NULL);
	free(f);
	return status;
}

static int
call(nng_socket s, const char *method, const ProtobufCMessage *req, ProtobufCMessage **out,
     const ProtobufCMessageDescriptor *out_desc)
{
	uint8_t *b = NULL, *f = NULL;
	size_t bl = 0, fl = 0;
	int status;

	if (req != NULL && qs_wire_pack(req, &b, &bl) != 0)
		DIE("pack");
	frame_of(method, b, bl, &f, &fl);
	status = raw_call(s, f, fl, out, out_desc);
	free(b);
	free(f);
	return status;
}

static EVP_PKEY *
load_key(const char *name)
{
	char path[512];
	FILE *f;
	EVP_PKEY *k;

	snprintf(path, sizeof(path), "%s/demo/%s.key", home, name);
	if ((f = fopen(path, "r")) == NULL ||
	    (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
		DIE("cannot load %s", path);
	fclose(f);
	return k;
}

static char server_id[256];

static void
challenge(nng_socket s, uint8_t ch[32])
{
	Qsign__V1__ChallengeRequest req = QSIGN__V1__CHALLENGE_REQUEST__INIT;
	Qsign__V1__ChallengeResponse *cr = NULL;

	if (call(s, QS_M_CHALLENGE, &req.base, (ProtobufCMessage **)&cr,
	         &qsign__v1__challenge_response__descriptor) != 0 ||
	    cr == NULL || cr->challenge.len != 32)
		DIE("challenge failed");
	memcpy(ch, cr->challenge.data, 32);
	snprintf(server_id, sizeof(server_id), "%s", cr->server_identity);
	protobuf_c_message_free_unpacked(&cr->base, NULL);
}

static void
sign_auth(const char *server, const char *as, EVP_PKEY *k, const uint8_t ch[32], uint8_t sig[128],
          size_t *sig_len)
{
	uint8_t *stmt = NULL;
	size_t stmt_len = 0;

	if (qs_stmt_auth(server, as, ch, 32, &stmt, &stmt_len) != 0 ||
	    qs_sig_sign(k, stmt, stmt_len, sig, sig_len) != 0)
		DIE("auth statement: %s", qs_errdetail());
	free(stmt);
}

static int
send_auth(nng_socket s, const char *as, const uint8_t ch[32], const uint8_t *sig, size_t sig_len)
{
	Qsign__V1__AuthenticateRequest req = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;

	req.principal = (char *)as;
	req.challenge.data = (uint8_t *)ch;
	req.challenge.len = 32;
	req.signature.data = (uint8_t *)sig;
	req.signature.len = sig_len;
	return call(s, QS_M_AUTHENTICATE, &req.base, NULL, NULL);
}

/* An authenticated connection (counted: each adds an "auth" entry). */
static nng_socket
authed(const char *as, EVP_PKEY *k, uint8_t ch_out[32], uint8_t sig_out[128], size_t *sl_out)
{
	nng_socket s = dial();
	uint8_t ch[32], sig[128];
	size_t sl = 0;

	challenge(s, ch);
	sign_auth(server_id, as, k, ch, sig, &sl);
	if (send_auth(s, as, ch, sig, sl) != 0)
		DIE("authenticate as %s failed", as);
	exp_auth++;
	if (ch_out) {
		memcpy(ch_out, ch, 32);
		memcpy(sig_out, sig, sl);
		*sl_out = sl;
	}
	return s;
}

/* ------------------------------------------------------------ protobuf shapes */

/* Top-level field boundaries of a serialized message (offsets where a field
 * starts or the message ends). Returns the count, 0 if unparseable. */
static size_t
boundaries(const uint8_t *b, size_t len, size_t *out, size_t cap)
{
	size_t i = 0, n = 0;

	out[n++] = 0;
	while (i < len && n < cap) {
		uint64_t key = 0, v = 0;
		int shift = 0;
		while (i < len && (b[i] & 0x80))
			key |= (uint64_t)(b[i++] & 0x7f) << shift, shift += 7;
		if (i >= len)
			return 0;
		key |= (uint64_t)b[i++] << shift;
		switch (key & 7) {
		case 0:
			while (i < len && (b[i] & 0x80))
				i++;
			i++;
			break;
		case 1:
			i += 8;
			break;
		case 5:
			i += 4;
			break;
		case 2:
			shift = 0;
			while (i < len && (b[i] & 0x80))
				v |= (uint64_t)(b[i++] & 0x7f) << shift, shift += 7;
			if (i >= len)
				return 0;
			v |= (uint64_t)b[i++] << shift;
			i += v;
			break;
		default:
			return 0;
		}
		if (i > len)
			return 0;
		out[n++] = i;
	}
	return n;
}

/* A cut point in 0..len-1 that is not a top-level field boundary (so the
 * prefix is never a valid message by accident); len if none exists. */
static size_t
inner_cut(const uint8_t *b, size_t len)
{
	size_t bd[256], nb = boundaries(b, len, bd, 256);

	for (int tries = 0; tries < 64; tries++) {
		size_t cut = 1 + rndn(len - 1), k;
		for (k = 0; k < nb; k++)
			if (bd[k] == cut)
				break;
		if (k == nb)
			return cut;
	}
	return len;
}

/* ------------------------------------------------------------ the prepared requests */

struct req {
	char id[80];
	char role[80], kind[32];
	uint8_t digest[32];
	int64_t created;
};
static struct req pending, closed[4];
static const char *closed_name[4] = {"signed", "cancelled", "expired", "rejected"};

static void
load_request(nng_socket s, const char *id, struct req *r)
{
	Qsign__V1__GetRequestRequest g = QSIGN__V1__GET_REQUEST_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;

	g.id = (char *)id;
	if (call(s, QS_M_REQ_GET, &g.base, (ProtobufCMessage **)&v,
	         &qsign__v1__request_view__descriptor) != 0 ||
	    v == NULL || v->payload_sha256.len != 32)
		DIE("get request %s", id);
	snprintf(r->id, sizeof(r->id), "%s", v->id);
	snprintf(r->role, sizeof(r->role), "%s", v->role);
	snprintf(r->kind, sizeof(r->kind), "%s", v->kind);
	memcpy(r->digest, v->payload_sha256.data, 32);
	r->created = v->created;
	protobuf_c_message_free_unpacked(&v->base, NULL);
}

/* A vote on r signed with k over exactly what the request holds. */
static void
vote_req(const struct req *r, EVP_PKEY *k, int approve, int64_t t, Qsign__V1__VoteRequest *vr,
         uint8_t sig[128])
{
	uint8_t *stmt = NULL;
	size_t stmt_len = 0, sl = 0;

	if (qs_stmt_approval(server_id, r->id, r->role, r->kind, r->digest, approve, t, &stmt,
	                     &stmt_len) != 0 ||
	    qs_sig_sign(k, stmt, stmt_len, sig, &sl) != 0)
		DIE("approval statement: %s", qs_errdetail());
	free(stmt);
	qsign__v1__vote_request__init(vr);
	vr->id = (char *)r->id;
	vr->approve = approve;
	vr->time = t;
	vr->payload_sha256.data = (uint8_t *)r->digest;
	vr->payload_sha256.len = 32;
	vr->signature.data = sig;
	vr->signature.len = sl;
}

/* ------------------------------------------------------------ the actors */

static EVP_PKEY *k_ci, *k_a1, *k_a2, *k_a3, *k_reg;
static nng_socket s_ci, s_a1, s_a2, s_a3, s_reg, s_anon, s_rp;
static uint64_t anon_born; /* when s_anon was dialled (mono_us) */
static uint8_t rp_ch[32], rp_sig[128];
static size_t rp_sl;

/* ------------------------------------------------------------ valid client */

static qsc_client *valid;
static FILE *valid_out;
static long valid_ok, valid_fail;
static uint64_t *lat;
static size_t nlat, caplat;

static qsc_client *
valid_open(void)
{
	char id[512];
	struct qsc_options o = {0};
	qsc_client *c = NULL;

	snprintf(id, sizeof(id), "%s/demo/ci.key", home);
	o.url = url;
	o.principal = "ci";
	o.identity = id;
	o.timeout_ms = 10000;
	if (qsc_open(&o, &c) != 0)
		return NULL;
	exp_auth++;
	return c;
}

static void
valid_sign(const char *after)
{
	Qsign__V1__SignResponse *r = NULL;
	uint8_t dg[32];
	uint64_t t0;

	rnd(dg, 32);
	t0 = mono_us();
	if (qsc_sign(valid, "ci-sign", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, &r) != 0) {
		valid_fail++;
		fprintf(stderr, "FAIL: the valid client could not sign after %s: %s\n", after,
		        qs_errdetail());
		return;
	}
	if (nlat == caplat) {
		caplat = caplat ? 2 * caplat : 64;
		lat = realloc(lat, caplat * sizeof(*lat));
	}
	lat[nlat++] = mono_us() - t0;
	valid_ok++;
	exp_sig++;
	for (int i = 0; i < 32; i++)
		fprintf(valid_out, "%02x", dg[i]);
	fputc('\n', valid_out);
	qsc_free(r);
}

/* ------------------------------------------------------------ hostile calls */

static const char *const auth_methods[] = {
        QS_M_INFO,          QS_M_LIST_KEYS,        QS_M_SIGN,      QS_M_SIGN_BATCH,
        QS_M_METRICS,       QS_M_REQ_SUBMIT,       QS_M_REQ_LIST,  QS_M_REQ_GET,
        QS_M_REQ_VOTE,      QS_M_REQ_CANCEL,       QS_M_REQ_FETCH, QS_M_POLICY_SHOW,
        QS_M_AUDIT_ENTRIES, QS_M_AUDIT_CHECKPOINT,
};

static void
h_random(void)
{
	uint8_t buf[1024];
	size_t n = rndn(sizeof(buf) + 1);
	nng_socket s = random() & 1 ? s_ci : s_anon;

	rnd(buf, n);
	outcome(C_RANDOM, raw_call(s, buf, n, NULL, NULL), "random frame");
}

/* A realistic request body for method index i (0..6), packed. */
static void
real_body(int i, const char **method, uint8_t **b, size_t *bl)
{
	static uint8_t dg[32], sig[128], payload[300];
	static ProtobufCBinaryData pls[4];

	rnd(dg, 32);
	rnd(payload, sizeof(payload));
	switch (i) {
	case 0: {
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payload.data = dg;
		r.payload.len = 32;
		*method = QS_M_SIGN;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	case 1: {
		Qsign__V1__SignBatchRequest r = QSIGN__V1__SIGN_BATCH_REQUEST__INIT;
		for (int k = 0; k < 4; k++)
			pls[k] = (ProtobufCBinaryData){32, dg};
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payloads = pls;
		r.n_payloads = 4;
		*method = QS_M_SIGN_BATCH;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	case 2: {
		Qsign__V1__SubmitRequest r = QSIGN__V1__SUBMIT_REQUEST__INIT;
		r.role = "release";
		r.kind = "blob";
		r.payload.data = payload;
		r.payload.len = sizeof(payload);
		r.message = "storm";
		*method = QS_M_REQ_SUBMIT;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	case 3: {
		Qsign__V1__VoteRequest r;
		vote_req(&pending, k_a1, 1, (int64_t)time(NULL), &r, sig);
		*method = QS_M_REQ_VOTE;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	case 4: {
		Qsign__V1__AuthenticateRequest r = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;
		r.principal = "ci";
		r.challenge.data = dg;
		r.challenge.len = 32;
		r.signature.data = payload;
		r.signature.len = 64;
		*method = QS_M_AUTHENTICATE;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	case 5: {
		Qsign__V1__CancelRequest r = QSIGN__V1__CANCEL_REQUEST__INIT;
		r.id = pending.id;
		*method = QS_M_REQ_CANCEL;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	default: {
		Qsign__V1__ListRequestsRequest r = QSIGN__V1__LIST_REQUESTS_REQUEST__INIT;
		r.state = QSIGN__V1__REQUEST_STATE__REQ_PENDING;
		r.role = "release";
		r.limit = 7;
		*method = QS_M_REQ_LIST;
		qs_wire_pack(&r.base, b, bl);
		break;
	}
	}
}

static void
h_truncated(void)
{
	const char *method;
	uint8_t *b = NULL, *f = NULL;
	size_t bl = 0, fl = 0, cut;
	/* Vote (3) and Cancel (5) as admin1/ci would be valid if whole: the
	 * cut is what must make them fail. */
	int i = (int)rndn(7);
	nng_socket s = i == 3 ? s_a1 : s_ci;
	char what[96];

	real_body(i, &method, &b, &bl);
	if (bl < 4)
		DIE("body too short to cut");
	if (random() & 1) {
		/* The Call frame cut inside one of its fields. */
		frame_of(method, b, bl, &f, &fl);
		if ((cut = inner_cut(f, fl)) == fl)
			DIE("no cut point in a frame of %zu bytes", fl);
		snprintf(what, sizeof(what), "%s frame cut at %zu of %zu", method, cut, fl);
		outcome(C_TRUNCATED, raw_call(s, f, cut, NULL, NULL), what);
	} else {
		/* A whole Call whose body is cut inside one of its fields. */
		if ((cut = inner_cut(b, bl)) == bl)
			DIE("no cut point in a body of %zu bytes", bl);
		snprintf(what, sizeof(what), "%s body cut at %zu of %zu", method, cut, bl);
		outcome(C_TRUNCATED, call_raw_body(s, method, b, cut), what);
	}
	free(b);
	free(f);
}

static void
h_oversized(void)
{
	int v = (int)rndn(8);
	char what[96];
	int status = -1;

	switch (v) {
	case 0: { /* Challenge body over its 64-byte cap (a valid unknown field) */
		uint8_t body[128];
		size_t n = 66 + rndn(60);
		body[0] = (15 << 3) | 2;
		body[1] = (uint8_t)(n - 2);
		rnd(body + 2, n - 2);
		status = call_raw_body(s_anon, QS_M_CHALLENGE, body, n);
		snprintf(what, sizeof(what), "challenge body of %zu bytes", n);
		break;
	}
	case 1: { /* Authenticate with a 129..4000-byte signature */
		uint8_t ch[32], sig[4000];
		size_t n = QS_MAX_PRINCIPAL_SIG + 1 + rndn(sizeof(sig) - QS_MAX_PRINCIPAL_SIG - 1);
		rnd(ch, 32);
		rnd(sig, n);
		status = send_auth(s_anon, "ci", ch, sig, n);
		snprintf(what, sizeof(what), "authenticate with a %zu-byte signature", n);
		break;
	}
	case 2: { /* Vote with a reason making the body exceed 4096 bytes */
		Qsign__V1__VoteRequest r;
		uint8_t sig[128];
		size_t n = 4100 + rndn(3000);
		char *reason = malloc(n + 1);
		memset(reason, 'r', n);
		reason[n] = '\0';
		vote_req(&pending, k_a1, 1, (int64_t)time(NULL), &r, sig);
		r.reason = reason;
		status = call(s_a1, QS_M_REQ_VOTE, &r.base, NULL, NULL);
		snprintf(what, sizeof(what), "vote with a %zu-byte reason", n);
		free(reason);
		break;
	}
	case 3: { /* A blob one past the blob limit (rarely: 1 MiB each) */
		static uint8_t *big;
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		size_t n = QS_MAX_BLOB + 1 + rndn(1000);
		if (random() % 8 != 0) {
			/* a 33..2000-byte "digest" instead */
			uint8_t d[2000];
			n = 33 + rndn(sizeof(d) - 33);
			rnd(d, n);
			r.payload.data = d;
			r.payload.len = n;
			r.role = "ci-sign";
			r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
			status = call(s_ci, QS_M_SIGN, &r.base, NULL, NULL);
			snprintf(what, sizeof(what), "digest of %zu bytes", n);
			break;
		}
		if (big == NULL)
			big = calloc(1, QS_MAX_BLOB + 1000);
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__BLOB;
		r.payload.data = big;
		r.payload.len = n;
		status = call(s_ci, QS_M_SIGN, &r.base, NULL, NULL);
		snprintf(what, sizeof(what), "blob of %zu bytes", n);
		break;
	}
	case 4: { /* SignBatch of QS_MAX_BATCH+1.. digests */
		static uint8_t dg[32];
		size_t n = QS_MAX_BATCH + 1 + rndn(100);
		ProtobufCBinaryData *p = calloc(n, sizeof(*p));
		Qsign__V1__SignBatchRequest r = QSIGN__V1__SIGN_BATCH_REQUEST__INIT;
		for (size_t k = 0; k < n; k++)
			p[k] = (ProtobufCBinaryData){32, dg};
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payloads = p;
		r.n_payloads = n;
		status = call(s_ci, QS_M_SIGN_BATCH, &r.base, NULL, NULL);
		snprintf(what, sizeof(what), "batch of %zu digests", n);
		free(p);
		break;
	}
	case 5: { /* A method name of 65..20000 characters */
		size_t n = QS_MAX_METHOD + 1 + rndn(20000);
		char *m = malloc(n + 1);
		memset(m, 'M', n);
		memcpy(m, QS_M_SIGN, strlen(QS_M_SIGN));
		m[n] = '\0';
		status = call_raw_body(s_ci, m, NULL, 0);
		snprintf(what, sizeof(what), "method name of %zu bytes", n);
		free(m);
		break;
	}
	case 6: { /* Submit with a message over QS_MAX_REQUEST_TEXT */
		Qsign__V1__SubmitRequest r = QSIGN__V1__SUBMIT_REQUEST__INIT;
		size_t n = QS_MAX_REQUEST_TEXT + 1 + rndn(5000);
		char *msg = malloc(n + 1);
		memset(msg, 'm', n);
		msg[n] = '\0';
		r.role = "release";
		r.kind = "blob";
		r.payload.data = (uint8_t *)"x";
		r.payload.len = 1;
		r.message = msg;
		status = call(s_ci, QS_M_REQ_SUBMIT, &r.base, NULL, NULL);
		snprintf(what, sizeof(what), "submit with a %zu-byte message", n);
		free(msg);
		break;
	}
	default: { /* Role and key names over QS_MAX_NAME */
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		uint8_t d[32];
		size_t n = QS_MAX_NAME + 1 + rndn(2000);
		char *name = malloc(n + 1);
		memset(name, 'n', n);
		name[n] = '\0';
		rnd(d, 32);
		r.role = random() & 1 ? name : "ci-sign";
		r.key = r.role == name ? "" : name;
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payload.data = d;
		r.payload.len = 32;
		status = call(s_ci, QS_M_SIGN, &r.base, NULL, NULL);
		snprintf(what, sizeof(what), "%s name of %zu bytes",
		         r.role == name ? "role" : "key", n);
		free(name);
		break;
	}
	}
	outcome(C_OVERSIZED, status, what);
}

/* ---- below the SP framing: raw unix socket */

static int
raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		DIE("raw connect: %s", strerror(errno));
	return fd;
}

/* 1 if the daemon closes fd within ms (it may answer something first). */
static int
dropped(int fd, int ms)
{
	uint64_t end = mono_us() + (uint64_t)ms * 1000;
	char buf[4096];

	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = (int64_t)(end - mono_us()) / 1000;
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return 0;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
}

static void
put64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
h_transport(void)
{
	int fd = raw_connect(), v = (int)rndn(6);
	uint8_t buf[512], hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}; /* REQ0 = 48 */
	size_t n = 0;
	char what[96];

	switch (v) {
	case 0: /* not SP at all (a whole handshake's worth: fewer bytes are a
	         * partial handshake, which connections.sh covers) */
		n = 8 + rndn(sizeof(buf) - 8);
		rnd(buf, n);
		buf[0] = 'G';
		snprintf(what, sizeof(what), "%zu random bytes instead of a handshake", n);
		break;
	case 1: /* SP handshake of a protocol that is not REQ (e.g. PUB, PAIR) */
		memcpy(buf, hs, 8);
		buf[5] = (uint8_t)(0x10 + rndn(0x20));
		n = 8;
		snprintf(what, sizeof(what), "handshake for protocol 0x%02x", buf[5]);
		break;
	case 2: /* frame header over the receive limit */
		memcpy(buf, hs, 8);
		buf[8] = 1;
		put64be(buf + 9, QS_MAX_FRAME + 1 + (random() & 1 ? rndn(1u << 30) : (1ull << 62)));
		n = 17;
		snprintf(what, sizeof(what), "frame header announcing > QS_MAX_FRAME");
		break;
	case 3: /* unknown message type byte */
		memcpy(buf, hs, 8);
		buf[8] = (uint8_t)(2 + rndn(250));
		put64be(buf + 9, 16);
		rnd(buf + 17, 16);
		n = 33;
		snprintf(what, sizeof(what), "frame of message type %u", buf[8]);
		break;
	case 4: /* REQ message without a request id (under 4 bytes) */
		memcpy(buf, hs, 8);
		buf[8] = 1;
		put64be(buf + 9, rndn(4));
		rnd(buf + 17, 3);
		n = 17 + (size_t)buf[16];
		snprintf(what, sizeof(what), "frame without a request id");
		break;
	default: { /* a whole frame over the limit, actually sent */
		size_t big = QS_MAX_FRAME + 4096;
		uint8_t *f = calloc(1, 17 + big);
		memcpy(f, hs, 8);
		f[8] = 1;
		put64be(f + 9, big);
		for (size_t off = 0; off < 17 + big;) {
			ssize_t w = send(fd, f + off, 17 + big - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		free(f);
		snprintf(what, sizeof(what), "a %zu-byte frame", big);
		break;
	}
	}
	if (n > 0 && send(fd, buf, n, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
		DIE("raw send: %s", strerror(errno));
	/* dropped = the error answer at this level; a live connection after
	 * 3 s is a survivor */
	outcome(C_TRANSPORT, dropped(fd, 3000) ? 1 : 0, what);
	close(fd);
}

/* ---- below the SP framing: connections that give up while negotiating
 * (hangup_attack.h). There is nothing to answer; what matters is that
 * the listener keeps accepting, which every fresh valid connection below
 * checks. */

static void
h_hangup(void)
{
	struct ha_target t = {.ipc_path = url + 6};
	enum ha_kind k = (enum ha_kind)rndn(HA_NKINDS);
	char what[160];

	while (!ha_applies(&t, k))
		k = (enum ha_kind)rndn(HA_NKINDS);
	if (ha_run(&t, k, what, sizeof(what)) != 0)
		outcome(C_HANGUP, -1, what); /* could not even connect */
	else
		outcome(C_HANGUP, 1, what);
}

/* ---- wrong message types */

struct shape {
	const char *method;
	const ProtobufCMessageDescriptor *desc;
	uint8_t *body;
	size_t len;
	nng_socket *s;
};
static struct shape shapes[16];
static size_t nshapes;
static struct {
	int donor, target;
} pairs[256];
static size_t npairs, ncompatible;

static void
add_shape(const char *method, const ProtobufCMessage *m, nng_socket *s)
{
	struct shape *sh = &shapes[nshapes++];

	sh->method = method;
	sh->desc = m->descriptor;
	sh->s = s;
	if (qs_wire_pack(m, &sh->body, &sh->len) != 0)
		DIE("pack");
}

static int
local_unpack_fails(const ProtobufCMessageDescriptor *d, const uint8_t *b, size_t n)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, b);

	if (m == NULL)
		return 1;
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static void
shapes_init(void)
{
	static uint8_t dg[32] = {7}, sig[128];
	static ProtobufCBinaryData pl[2] = {{32, dg}, {32, dg}};
	{
		Qsign__V1__AuthenticateRequest r = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;
		r.principal = "ci";
		r.challenge = (ProtobufCBinaryData){32, dg};
		r.signature = (ProtobufCBinaryData){64, sig};
		add_shape(QS_M_AUTHENTICATE, &r.base, &s_anon);
	}
	{
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payload = (ProtobufCBinaryData){32, dg};
		r.key = "ci-key";
		add_shape(QS_M_SIGN, &r.base, &s_ci);
	}
	{
		Qsign__V1__SignBatchRequest r = QSIGN__V1__SIGN_BATCH_REQUEST__INIT;
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payloads = pl;
		r.n_payloads = 2;
		add_shape(QS_M_SIGN_BATCH, &r.base, &s_ci);
	}
	{
		Qsign__V1__SubmitRequest r = QSIGN__V1__SUBMIT_REQUEST__INIT;
		r.role = "release";
		r.kind = "blob";
		r.payload = (ProtobufCBinaryData){32, dg};
		r.message = "m";
		r.client_token = "t1";
		add_shape(QS_M_REQ_SUBMIT, &r.base, &s_ci);
	}
	{
		Qsign__V1__ListRequestsRequest r = QSIGN__V1__LIST_REQUESTS_REQUEST__INIT;
		r.state = QSIGN__V1__REQUEST_STATE__REQ_PENDING;
		r.role = "release";
		r.limit = 3;
		add_shape(QS_M_REQ_LIST, &r.base, &s_ci);
	}
	{
		Qsign__V1__GetRequestRequest r = QSIGN__V1__GET_REQUEST_REQUEST__INIT;
		r.id = pending.id;
		r.include_payload = 1;
		add_shape(QS_M_REQ_GET, &r.base, &s_ci);
	}
	{
		Qsign__V1__VoteRequest r;
		vote_req(&pending, k_a1, 1, (int64_t)time(NULL), &r, sig);
		r.reason = "ok";
		add_shape(QS_M_REQ_VOTE, &r.base, &s_a1);
	}
	{
		Qsign__V1__CancelRequest r = QSIGN__V1__CANCEL_REQUEST__INIT;
		r.id = pending.id;
		add_shape(QS_M_REQ_CANCEL, &r.base, &s_ci);
	}
	{
		Qsign__V1__PolicyShowRequest r = QSIGN__V1__POLICY_SHOW_REQUEST__INIT;
		r.version = 1;
		add_shape(QS_M_POLICY_SHOW, &r.base, &s_ci);
	}
	{
		Qsign__V1__EntriesRequest r = QSIGN__V1__ENTRIES_REQUEST__INIT;
		r.start = 1;
		r.count = 2;
		add_shape(QS_M_AUDIT_ENTRIES, &r.base, &s_ci);
	}
	{
		Qsign__V1__ConsistencyRequest r = QSIGN__V1__CONSISTENCY_REQUEST__INIT;
		r.size1 = 1;
		r.size2 = 2;
		add_shape(QS_M_AUDIT_CONSISTENCY, &r.base, &s_ci);
	}
	/* Pairs whose donor bytes cannot be decoded as the target's request:
	 * some field number arrives with another wire type. Pairs that decode
	 * (same shape: Get/Cancel/Fetch all carry one string id) cannot be
	 * told apart on the wire by anyone and are left out. */
	for (size_t d = 0; d < nshapes; d++)
		for (size_t t = 0; t < nshapes; t++) {
			if (d == t)
				continue;
			if (local_unpack_fails(shapes[t].desc, shapes[d].body, shapes[d].len)) {
				pairs[npairs].donor = (int)d;
				pairs[npairs].target = (int)t;
				npairs++;
			} else {
				ncompatible++;
			}
		}
}

static void
h_wrongtype(void)
{
	char what[160];
	uint8_t buf[512];

	if (random() & 1 && npairs > 0) {
		size_t k = rndn(npairs);
		const struct shape *d = &shapes[pairs[k].donor], *t = &shapes[pairs[k].target];
		snprintf(what, sizeof(what), "%s body sent to %s", d->desc->short_name, t->method);
		outcome(C_WRONGTYPE, call_raw_body(*t->s, t->method, d->body, d->len), what);
		return;
	}
	/* One field of a real request re-encoded with another wire type. */
	for (int tries = 0; tries < 32; tries++) {
		const struct shape *t = &shapes[rndn(nshapes)];
		size_t bd[64], nb = boundaries(t->body, t->len, bd, 64), f, o = 0, fo, fe;
		uint32_t field;
		int wt, nwt;

		if (nb < 2 || t->len + 16 > sizeof(buf))
			continue;
		f = rndn(nb - 1);
		fo = bd[f];
		fe = bd[f + 1];
		field = 0;
		{
			size_t i = fo;
			int shift = 0;
			uint32_t key = 0;
			while (t->body[i] & 0x80)
				key |= (uint32_t)(t->body[i++] & 0x7f) << shift, shift += 7;
			key |= (uint32_t)t->body[i] << shift;
			field = key >> 3;
			wt = (int)(key & 7);
		}
		do
			nwt = (int[]){0, 1, 2, 5}[rndn(4)];
		while (nwt == wt);
		memcpy(buf, t->body, fo);
		o = fo;
		buf[o++] = (uint8_t)((field << 3) | (uint32_t)nwt); /* fields here are < 16 */
		switch (nwt) {
		case 0:
			buf[o++] = (uint8_t)(1 + rndn(127));
			break;
		case 1:
			rnd(buf + o, 8), o += 8;
			break;
		case 5:
			rnd(buf + o, 4), o += 4;
			break;
		default:
			buf[o++] = 3;
			rnd(buf + o, 3), o += 3;
			break;
		}
		memcpy(buf + o, t->body + fe, t->len - fe);
		o += t->len - fe;
		if (!local_unpack_fails(t->desc, buf, o))
			continue;
		snprintf(what, sizeof(what), "%s field %u as wire type %d (not %d)", t->method,
		         field, nwt, wt);
		outcome(C_WRONGTYPE, call_raw_body(*t->s, t->method, buf, o), what);
		return;
	}
	DIE("no wrong-type mutation found");
}

static void
h_replay(void)
{
	uint8_t ch[32], sig[128];
	size_t sl = 0;
	int v = (int)rndn(4), status;
	const char *what;

	switch (v) {
	case 0:
		what = "used challenge replayed on its connection";
		status = send_auth(s_rp, "ci", rp_ch, rp_sig, rp_sl);
		break;
	case 1:
		what = "used challenge replayed on another connection";
		status = send_auth(s_anon, "ci", rp_ch, rp_sig, rp_sl);
		break;
	case 2:
		/* a fresh challenge of connection rp, answered on anon */
		what = "another connection's fresh challenge";
		challenge(s_rp, ch);
		sign_auth(server_id, "ci", k_ci, ch, sig, &sl);
		status = send_auth(s_anon, "ci", ch, sig, sl);
		break;
	default:
		/* anon's own challenge, signed for another server identity */
		what = "challenge signed for another server";
		challenge(s_anon, ch);
		sign_auth("qsignd-elsewhere", "ci", k_ci, ch, sig, &sl);
		status = send_auth(s_anon, "ci", ch, sig, sl);
		break;
	}
	outcome(C_REPLAY, status, what);
}

static void
h_foreign(void)
{
	Qsign__V1__VoteRequest r;
	uint8_t sig[128];
	EVP_PKEY *k[] = {k_a2, k_a3, k_ci};
	int v = (int)rndn(3), status;

	vote_req(&pending, k[v], (int)(random() & 1), (int64_t)time(NULL) - (int64_t)rndn(30), &r,
	         sig);
	status = call(s_a1, QS_M_REQ_VOTE, &r.base, NULL, NULL);
	if (status == QS_STATUS_UNAUTHENTICATED)
		exp_refusal++;
	outcome(C_FOREIGN, status,
	        v == 0   ? "admin2's approval on admin1's connection"
	        : v == 1 ? "admin3's approval on admin1's connection"
	                 : "ci's signature as admin1's approval");
}

static void
h_closed(void)
{
	Qsign__V1__VoteRequest r;
	uint8_t sig[128];
	int c = (int)rndn(4), status;
	/* signed and rejected: admin1 and admin2 voted, admin3 asks; cancelled
	 * and expired: nobody voted, admin1 asks. */
	int a3 = c == 0 || c == 3;
	char what[96];

	vote_req(&closed[c], a3 ? k_a3 : k_a1, (int)(random() & 1), (int64_t)time(NULL), &r, sig);
	status = call(a3 ? s_a3 : s_a1, QS_M_REQ_VOTE, &r.base, NULL, NULL);
	if (status == QS_STATUS_FAILED_PRECONDITION)
		exp_refusal++;
	snprintf(what, sizeof(what), "valid vote on a %s request", closed_name[c]);
	outcome(C_CLOSED, status, what);
}

static void
h_forbidden(void)
{
	int v = (int)rndn(5), status;
	const char *what;
	uint8_t dg[32], sig[128];

	rnd(dg, 32);
	switch (v) {
	case 0: {
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		r.role = "release";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payload = (ProtobufCBinaryData){32, dg};
		status = call(s_ci, QS_M_SIGN, &r.base, NULL, NULL);
		what = "quorum role through online Sign";
		break;
	}
	case 1: {
		Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
		r.role = "ci-sign";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payload = (ProtobufCBinaryData){32, dg};
		status = call(s_a1, QS_M_SIGN, &r.base, NULL, NULL);
		what = "admin1 signs with ci's role";
		break;
	}
	case 2: {
		Qsign__V1__VoteRequest r;
		vote_req(&pending, k_ci, 1, (int64_t)time(NULL), &r, sig);
		status = call(s_ci, QS_M_REQ_VOTE, &r.base, NULL, NULL);
		what = "a requester approves";
		break;
	}
	case 3: {
		Qsign__V1__CancelRequest r = QSIGN__V1__CANCEL_REQUEST__INIT;
		r.id = pending.id;
		status = call(s_a2, QS_M_REQ_CANCEL, &r.base, NULL, NULL);
		what = "admin2 cancels ci's request";
		break;
	}
	default: {
		Qsign__V1__SubmitRequest r = QSIGN__V1__SUBMIT_REQUEST__INIT;
		r.role = "release";
		r.kind = "digest";
		r.payload = (ProtobufCBinaryData){32, dg};
		status = call(s_reg, QS_M_REQ_SUBMIT, &r.base, NULL, NULL);
		what = "registrar submits to a role it may not request";
		break;
	}
	}
	if (status == QS_STATUS_PERMISSION_DENIED || status == QS_STATUS_FAILED_PRECONDITION ||
	    status == QS_STATUS_UNAUTHENTICATED)
		exp_refusal++;
	outcome(C_FORBIDDEN, status, what);
}

static void
h_unauth(void)
{
	const char *m = auth_methods[rndn(sizeof(auth_methods) / sizeof(auth_methods[0]))];
	size_t i;
	char what[96];

	/* the right body for the method when there is one, else empty */
	for (i = 0; i < nshapes; i++)
		if (strcmp(shapes[i].method, m) == 0)
			break;
	snprintf(what, sizeof(what), "%s without authenticating", m);
	outcome(C_UNAUTH,
	        i < nshapes ? call_raw_body(s_anon, m, shapes[i].body, shapes[i].len)
	                    : call_raw_body(s_anon, m, NULL, 0),
	        what);
}

/* Floods: bursts of calls by registrar on role "flood" (2/s, burst 2). The
 * bucket lets burst + rate x elapsed through; those are counted apart and
 * checked against that bound, every other call must be refused. */
#define FLOOD_RATE 2
#define FLOOD_BURST 2
static uint64_t flood_t0;

static int
h_flood_one(void)
{
	uint8_t dg[32];
	int status;

	rnd(dg, 32);
	if (flood_t0 == 0)
		flood_t0 = mono_us();
	if (random() % 4 == 0) {
		/* a batch larger than the burst can never pass */
		ProtobufCBinaryData p[FLOOD_BURST + 3];
		Qsign__V1__SignBatchRequest r = QSIGN__V1__SIGN_BATCH_REQUEST__INIT;
		for (int k = 0; k < FLOOD_BURST + 3; k++)
			p[k] = (ProtobufCBinaryData){32, dg};
		r.role = "flood";
		r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		r.payloads = p;
		r.n_payloads = FLOOD_BURST + 3;
		status = call(s_reg, QS_M_SIGN_BATCH, &r.base, NULL, NULL);
		outcome(C_FLOOD, status, "batch larger than the burst");
		return 1;
	}
	Qsign__V1__SignRequest r = QSIGN__V1__SIGN_REQUEST__INIT;
	r.role = "flood";
	r.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
	r.payload = (ProtobufCBinaryData){32, dg};
	status = call(s_reg, QS_M_SIGN, &r.base, NULL, NULL);
	st[C_FLOOD].tried++;
	if (status == 0) {
		flood_ok++; /* judged at the end against the bucket's bound */
		exp_sig++;
	} else if (status < 0) {
		st[C_FLOOD].noreply++;
	} else {
		st[C_FLOOD].errors++;
	}
	return 1;
}

/* ------------------------------------------------------------ main */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void
read_ids(const char *path)
{
	FILE *f = fopen(path, "r");
	char state[32], id[80];
	nng_socket s = s_a1;

	if (f == NULL)
		DIE("%s: %s", path, strerror(errno));
	while (fscanf(f, "%31s %79s", state, id) == 2) {
		if (strcmp(state, "pending") == 0) {
			load_request(s, id, &pending);
			continue;
		}
		for (int c = 0; c < 4; c++)
			if (strcmp(state, closed_name[c]) == 0)
				load_request(s, id, &closed[c]);
	}
	fclose(f);
	if (pending.id[0] == '\0')
		DIE("no pending request in %s", path);
	for (int c = 0; c < 4; c++)
		if (closed[c].id[0] == '\0')
			DIE("no %s request in %s", closed_name[c], path);
}

int
main(int argc, char **argv)
{
	long total = 10000, done = 0, weight_sum = 0, survivors = 0, noreply = 0;
	unsigned seed = (unsigned)time(NULL);
	unsigned char *plan;
	long quota[NCAT], allowed;
	char path[1024];
	FILE *ef;
	uint64_t t_start;
	double elapsed;

	if (argc != 5) {
		fprintf(stderr, "usage: storm URL HOME IDS OUTDIR\n");
		return 2;
	}
	url = argv[1];
	home = argv[2];
	if (getenv("QS_STORM_CALLS"))
		total = atol(getenv("QS_STORM_CALLS"));
	if (getenv("QS_STORM_SEED"))
		seed = (unsigned)strtoul(getenv("QS_STORM_SEED"), NULL, 10);
	if (total < NCAT * 10)
		DIE("QS_STORM_CALLS must be at least %d", NCAT * 10);
	srandom(seed);
	printf("storm: %ld hostile calls, seed %u (QS_STORM_SEED=%u reproduces the order)\n", total,
	       seed, seed);

	k_ci = load_key("ci");
	k_a1 = load_key("admin1");
	k_a2 = load_key("admin2");
	k_a3 = load_key("admin3");
	k_reg = load_key("registrar");
	s_ci = authed("ci", k_ci, NULL, NULL, NULL);
	s_a1 = authed("admin1", k_a1, NULL, NULL, NULL);
	s_a2 = authed("admin2", k_a2, NULL, NULL, NULL);
	s_a3 = authed("admin3", k_a3, NULL, NULL, NULL);
	s_reg = authed("registrar", k_reg, NULL, NULL, NULL);
	s_rp = authed("ci", k_ci, rp_ch, rp_sig, &rp_sl);
	s_anon = dial();
	read_ids(argv[3]);
	shapes_init();
	printf("wrong-type pairs: %zu undecodable (used), %zu of the same shape (skipped)\n",
	       npairs, ncompatible);

	snprintf(path, sizeof(path), "%s/valid.txt", argv[4]);
	if ((valid_out = fopen(path, "w")) == NULL)
		DIE("%s: %s", path, strerror(errno));
	if ((valid = valid_open()) == NULL)
		DIE("valid client cannot connect: %s", qs_errdetail());
	valid_sign("start");

	/* The plan: each category's share of `total`, in a random order. */
	for (int c = 0; c < NCAT; c++)
		weight_sum += cats[c].weight;
	plan = malloc((size_t)total);
	for (int c = 0, k = 0; c < NCAT; c++) {
		quota[c] = c == NCAT - 1 ? total - k : total * cats[c].weight / weight_sum;
		for (long i = 0; i < quota[c]; i++)
			plan[k++] = (unsigned char)c;
	}
	for (long i = total - 1; i > 0; i--) {
		long j = (long)rndn((size_t)i + 1);
		unsigned char t = plan[i];
		plan[i] = plan[j];
		plan[j] = t;
	}

	t_start = mono_us();
	anon_born = mono_us();
	for (long i = 0; i < total; i++) {
		long before = done;
		/* The daemon closes a connection that has not authenticated
		 * within QS_AUTH_TIMEOUT_S, as it should: on a slow machine
		 * the storm outlasts that, so the unauthenticated socket is
		 * renewed well before. */
		if (mono_us() - anon_born > (uint64_t)QS_AUTH_TIMEOUT_S * 1000000 / 2) {
			nng_close(s_anon);
			s_anon = dial();
			anon_born = mono_us();
		}
		switch (plan[i]) {
		case C_RANDOM:
			h_random();
			break;
		case C_TRUNCATED:
			h_truncated();
			break;
		case C_OVERSIZED:
			h_oversized();
			break;
		case C_TRANSPORT:
			h_transport();
			break;
		case C_WRONGTYPE:
			h_wrongtype();
			break;
		case C_REPLAY:
			h_replay();
			break;
		case C_FOREIGN:
			h_foreign();
			break;
		case C_CLOSED:
			h_closed();
			break;
		case C_FORBIDDEN:
			h_forbidden();
			break;
		case C_UNAUTH:
			h_unauth();
			break;
		case C_HANGUP:
			h_hangup();
			break;
		case C_FLOOD: {
			/* a burst: this flood slot and the following ones */
			long burst = 1;
			h_flood_one();
			for (long j = i + 1; j < total && burst < 50; j++)
				if (plan[j] == C_FLOOD) {
					plan[j] = 0xff;
					h_flood_one();
					burst++;
				}
			done += burst - 1;
			break;
		}
		case 0xff:
			continue; /* already sent in a burst */
		}
		done++;
		if (done / 500 != before / 500) {
			char after[64];
			snprintf(after, sizeof(after), "%ld hostile calls", done);
			if (done % 1000 < 500) {
				/* now and then a fresh connection must get in too */
				qsc_close(valid);
				if ((valid = valid_open()) == NULL)
					DIE("valid client cannot reconnect after %s: %s", after,
					    qs_errdetail());
			}
			valid_sign(after);
		}
	}
	elapsed = (double)(mono_us() - t_start) / 1e6;
	valid_sign("the storm");

	/* The rate limit's bound on what the flood could get through. */
	allowed = FLOOD_BURST + (long)(FLOOD_RATE * (double)(mono_us() - flood_t0) / 1e6) + 1;
	if (flood_ok > allowed) {
		st[C_FLOOD].survivors += flood_ok - allowed;
		fprintf(stderr, "SURVIVOR [floods] %ld signed, the bucket allows at most %ld\n",
		        flood_ok, allowed);
	}

	/* Every actor's connection must still be the authenticated one (not
	 * s_rp: refused re-authentications may end its session). */
	{
		Qsign__V1__InfoRequest ir = QSIGN__V1__INFO_REQUEST__INIT;
		nng_socket *all[] = {&s_ci, &s_a1, &s_a2, &s_a3, &s_reg};
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			if (call(*all[i], QS_M_INFO, &ir.base, NULL, NULL) != 0) {
				fprintf(stderr, "FAIL: an actor's connection lost its session\n");
				setup_failures++;
			}
		if (call(s_anon, QS_M_INFO, &ir.base, NULL, NULL) != QS_STATUS_UNAUTHENTICATED) {
			fprintf(stderr, "FAIL: the anonymous connection got authenticated\n");
			setup_failures++;
		}
	}

	printf("%-36s %7s %7s %9s %8s\n", "category", "tried", "errors", "survivors", "noreply");
	for (int c = 0; c < NCAT; c++) {
		printf("%-36s %7ld %7ld %9ld %8ld\n", cats[c].name, st[c].tried, st[c].errors,
		       st[c].survivors, st[c].noreply);
		survivors += st[c].survivors;
		noreply += st[c].noreply;
	}
	{
		long tried = 0;
		for (int c = 0; c < NCAT; c++)
			tried += st[c].tried;
		printf("%-36s %7ld %7s %9ld %8ld\n", "total", tried, "", survivors, noreply);
	}
	printf("floods: %ld single signs got through within the bucket (burst %d + %d/s: at "
	       "most %ld); all other flood calls are counted above\n",
	       flood_ok, FLOOD_BURST, FLOOD_RATE, allowed);
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("valid client: %ld signed, %ld failed; latency p50 %.2f ms, max %.2f ms\n", valid_ok,
	       valid_fail, nlat ? lat[nlat / 2] / 1000.0 : 0, nlat ? lat[nlat - 1] / 1000.0 : 0);
	printf("storm took %.1f s (%.0f hostile calls/s)\n", elapsed, (double)total / elapsed);
	printf("survivors: %ld\n", survivors);

	snprintf(path, sizeof(path), "%s/expect.txt", argv[4]);
	if ((ef = fopen(path, "w")) == NULL)
		DIE("%s: %s", path, strerror(errno));
	fprintf(ef, "auth %ld\nsignature %ld\nrefusal %ld\n", exp_auth, exp_sig, exp_refusal);
	fclose(ef);
	fclose(valid_out);
	qsc_close(valid);
	nng_close(s_ci);
	nng_close(s_a1);
	nng_close(s_a2);
	nng_close(s_a3);
	nng_close(s_reg);
	nng_close(s_rp);
	nng_close(s_anon);
	EVP_PKEY_free(k_ci);
	EVP_PKEY_free(k_a1);
	EVP_PKEY_free(k_a2);
	EVP_PKEY_free(k_a3);
	EVP_PKEY_free(k_reg);
	free(plan);
	free(lat);
	for (size_t i = 0; i < nshapes; i++)
		free(shapes[i].body);
	nng_fini();
	if (survivors || noreply || valid_fail || setup_failures) {
		fprintf(stderr, "storm: %ld survivor(s), %ld without reply, %ld valid failure(s)\n",
		        survivors, noreply, valid_fail);
		return 1;
	}
	return 0;
}
