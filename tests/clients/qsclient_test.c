/*
 * qsclient_test.c - the client library against a minimal in-process rep0
 * responder that speaks qsign.proto: authentication (the statement really
 * is verified), transparent re-authentication, refusals, and the replies a
 * real daemon never sends (wrong call id, garbage, short results, silence).
 * Also drives the qsign binary against it for the output formats.
 */
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "../proto/check.h"
#include "identity.h"
#include "qsclient.h"
#include "statement.h"

extern char **environ;

enum mode {
	M_NORMAL,
	M_DENY,
	M_WRONG_ID,
	M_GARBAGE,
	M_SILENT,
	M_SHORT_BATCH,
	M_ALWAYS_UNAUTH,
	M_CTRL_MESSAGE,
	M_BAD_PAYLOAD, /* Get returns a payload whose SHA-256 is not payload_sha256 */
	M_BAD_VIEW,    /* a RequestView with a 31-byte payload_sha256 */
	M_SUBMIT_LIE,  /* Submit reports another payload digest than the one sent */
	M_OTHER_KEY,   /* another server (same identity) proves another key */
	M_NO_PROOF,    /* a Challenge answer without server key and proof */
	M_BAD_PROOF,   /* a proof over another client nonce */
};

static char dir[] = "/tmp/qsclient-test.XXXXXX";
static char url[4200], keyfile[4200], otherkey[4200];
static EVP_PKEY *principal_pub;
static atomic_int mode, forget, auth_count, stop;
/* Votes the responder received, and how many carried a signature that
 * verifies over the exact qs_stmt_approval() bytes. */
static atomic_int votes_received, votes_verified, last_vote_approve;

/* The one request the responder knows. */
#define REQ_ID "3f2a9c0d5e7b41a8"
static const char req_payload[] = "release 1.2.3\n";
static uint8_t last_challenge[32];
/* The responder's server identity keys (the second one: an impostor's). */
static EVP_PKEY *server_priv, *other_priv;
static char known_file[4200];

static int
reply(nng_socket s, uint64_t call_id, int status, const char *message, const ProtobufCMessage *body)
{
	Qsign__V1__Reply r = QSIGN__V1__REPLY__INIT;
	uint8_t *buf = NULL, *bb = NULL;
	size_t len = 0, bl = 0;
	int rv;

	r.status = (Qsign__V1__Status)status;
	r.message = (char *)(message != NULL ? message : "");
	r.call_id = call_id;
	if (body != NULL && qs_wire_pack(body, &bb, &bl) == 0) {
		r.body.data = bb;
		r.body.len = bl;
	}
	if (qs_wire_pack(&r.base, &buf, &len) != 0)
		abort();
	rv = nng_send(s, buf, len, 0);
	free(buf);
	free(bb);
	return rv;
}

/* Fill a RequestView of REQ_ID; `voted` adds a vote by ci. */
static void
fill_view(Qsign__V1__RequestView *v, Qsign__V1__Vote *vote, Qsign__V1__Vote **vp, uint8_t sha[32],
          int include_payload, int voted, int approve)
{
	static char *approvers[] = {"ci", "admin2", "admin3"};

	qsign__v1__request_view__init(v);
	qs_sha256((const uint8_t *)req_payload, strlen(req_payload), sha);
	v->id = REQ_ID;
	v->role = "release";
	v->kind = "blob";
	v->submitter = "dev";
	v->message = "release 1.2.3";
	v->payload_sha256.data = sha;
	v->payload_sha256.len = 32;
	v->payload_size = strlen(req_payload);
	v->state = QSIGN__V1__REQUEST_STATE__REQ_PENDING;
	v->created = 1700000000;
	v->expires = 1700086400;
	v->threshold = 2;
	v->approvers = approvers;
	v->n_approvers = 3;
	v->policy_version = 1;
	if (include_payload) {
		v->payload.data = (uint8_t *)req_payload;
		v->payload.len = strlen(req_payload);
	}
	if (voted) {
		qsign__v1__vote__init(vote);
		vote->approver = "ci";
		vote->approve = approve;
		vote->time = 1700000100;
		vote->reason = "";
		*vp = vote;
		v->votes = vp;
		v->n_votes = 1;
	}
}

/* The Requests service, for one request, whose payload the library must check. */
static void
handle_requests(nng_socket s, uint64_t id, const Qsign__V1__Call *call, int m)
{
	Qsign__V1__RequestView v;
	Qsign__V1__Vote vote, *vp = NULL;
	uint8_t sha[32], other[32];

	if (strcmp(call->method, QS_M_REQ_GET) == 0) {
		Qsign__V1__GetRequestRequest *g = NULL;
		if (qs_wire_unpack(&qsign__v1__get_request_request__descriptor, call->body.data,
		                   call->body.len, 4096, (ProtobufCMessage **)&g) != 0)
			abort();
		fill_view(&v, &vote, &vp, sha, g->include_payload, 0, 0);
		if (m == M_BAD_PAYLOAD)
			sha[0] ^= 1; /* the payload is not what the daemon claims */
		if (m == M_BAD_VIEW)
			v.payload_sha256.len = 31;
		reply(s, id, strcmp(g->id, REQ_ID) == 0 ? 0 : QS_STATUS_NOT_FOUND,
		      "no such request", &v.base);
		protobuf_c_message_free_unpacked(&g->base, NULL);
		return;
	}
	if (strcmp(call->method, QS_M_REQ_VOTE) == 0) {
		Qsign__V1__VoteRequest *vr = NULL;
		uint8_t *stmt = NULL;
		size_t sl = 0;
		if (qs_wire_unpack(&qsign__v1__vote_request__descriptor, call->body.data,
		                   call->body.len, 4096, (ProtobufCMessage **)&vr) != 0)
			abort();
		atomic_fetch_add(&votes_received, 1);
		atomic_store(&last_vote_approve, vr->approve);
		fill_view(&v, &vote, &vp, sha, 0, 1, vr->approve);
		/* What the daemon does: rebuild the statement from its own record
		 * and the vote, and verify the principal's signature over it. */
		if (vr->payload_sha256.len == 32 && memcmp(vr->payload_sha256.data, sha, 32) == 0 &&
		    qs_stmt_approval("test-server", REQ_ID, "release", "blob", sha, vr->approve,
		                     vr->time, &stmt, &sl) == 0 &&
		    qs_sig_verify(principal_pub, stmt, sl, vr->signature.data, vr->signature.len) ==
		            0 &&
		    vr->time > 1700000000 && strcmp(vr->reason, "looks right") == 0)
			atomic_fetch_add(&votes_verified, 1);
		free(stmt);
		reply(s, id, 0, NULL, &v.base);
		protobuf_c_message_free_unpacked(&vr->base, NULL);
		return;
	}
	if (strcmp(call->method, QS_M_REQ_SUBMIT) == 0) {
		Qsign__V1__SubmitRequest *sr = NULL;
		if (qs_wire_unpack(&qsign__v1__submit_request__descriptor, call->body.data,
		                   call->body.len, QS_MAX_FRAME, (ProtobufCMessage **)&sr) != 0)
			abort();
		fill_view(&v, &vote, &vp, sha, 0, 0, 0);
		v.role = sr->role;
		v.kind = sr->kind;
		v.payload_size = sr->payload.len;
		qs_sha256(sr->payload.data, sr->payload.len, other);
		if (m == M_SUBMIT_LIE)
			other[31] ^= 0x80;
		v.payload_sha256.data = other;
		/* A client token is sent, and is a name. */
		if (!qs_name_valid(sr->client_token, QS_MAX_NAME))
			reply(s, id, QS_STATUS_INVALID_ARGUMENT, "client token", NULL);
		else
			reply(s, id, 0, NULL, &v.base);
		protobuf_c_message_free_unpacked(&sr->base, NULL);
		return;
	}
	reply(s, id, QS_STATUS_UNIMPLEMENTED, "unknown method", NULL);
}

static void
handle(nng_socket s, const Qsign__V1__Call *call, int *authed)
{
	uint64_t id = call->call_id;
	int m = atomic_load(&mode);

	if (atomic_exchange(&forget, 0))
		*authed = 0;
	if (m == M_SILENT)
		return;
	if (m == M_GARBAGE) {
		uint8_t g[16];
		memset(g, 0xff, sizeof(g));
		nng_send(s, g, sizeof(g), 0);
		return;
	}
	if (m == M_WRONG_ID)
		id++;
	if (strcmp(call->method, QS_M_CHALLENGE) == 0) {
		Qsign__V1__ChallengeResponse cr = QSIGN__V1__CHALLENGE_RESPONSE__INIT;
		RAND_bytes(last_challenge, sizeof(last_challenge));
		cr.challenge.data = last_challenge;
		cr.challenge.len = sizeof(last_challenge);
		cr.server_identity = "test-server";
		{
			Qsign__V1__ChallengeRequest *q = NULL;
			EVP_PKEY *k = m == M_OTHER_KEY ? other_priv : server_priv;
			unsigned char *der = NULL;
			uint8_t *stmt = NULL, sig[QS_MAX_PRINCIPAL_SIG], nonce[32];
			size_t sl = 0, sig_len = 0;
			int dl = i2d_PUBKEY(k, &der);
			if (qs_wire_unpack(&qsign__v1__challenge_request__descriptor, call->body.data,
			                   call->body.len, 64, (ProtobufCMessage **)&q) == 0 &&
			    q->client_nonce.len == 32 && m != M_NO_PROOF && dl > 0) {
				memcpy(nonce, q->client_nonce.data, 32);
				if (m == M_BAD_PROOF)
					nonce[0] ^= 1;
				if (qs_stmt_server("test-server", last_challenge, 32, nonce, 32, &stmt,
				                   &sl) == 0 &&
				    qs_sig_sign(k, stmt, sl, sig, &sig_len) == 0) {
					cr.server_key.data = der;
					cr.server_key.len = (size_t)dl;
					cr.server_proof.data = sig;
					cr.server_proof.len = sig_len;
				}
			}
			reply(s, id, 0, NULL, &cr.base);
			free(stmt);
			OPENSSL_free(der);
			if (q != NULL)
				protobuf_c_message_free_unpacked(&q->base, NULL);
		}
		return;
	}
	if (strcmp(call->method, QS_M_AUTHENTICATE) == 0) {
		Qsign__V1__AuthenticateRequest *ar = NULL;
		Qsign__V1__AuthenticateResponse resp = QSIGN__V1__AUTHENTICATE_RESPONSE__INIT;
		char *roles[] = {"requester", "auditor"};
		uint8_t *stmt = NULL;
		size_t sl = 0;
		int ok;

		atomic_fetch_add(&auth_count, 1);
		ok = qs_wire_unpack(&qsign__v1__authenticate_request__descriptor, call->body.data,
		                    call->body.len, 4096, (ProtobufCMessage **)&ar) == 0 &&
		     strcmp(ar->principal, "ci") == 0 && ar->challenge.len == 32 &&
		     memcmp(ar->challenge.data, last_challenge, 32) == 0 &&
		     qs_stmt_auth("test-server", ar->principal, ar->challenge.data, 32, &stmt,
		                  &sl) == 0 &&
		     qs_sig_verify(principal_pub, stmt, sl, ar->signature.data,
		                   ar->signature.len) == 0;
		free(stmt);
		if (ar != NULL)
			protobuf_c_message_free_unpacked(&ar->base, NULL);
		if (!ok || m == M_ALWAYS_UNAUTH) {
			reply(s, id, QS_STATUS_UNAUTHENTICATED, "bad signature", NULL);
			return;
		}
		*authed = 1;
		resp.principal = "ci";
		resp.roles = roles;
		resp.n_roles = 2;
		reply(s, id, 0, NULL, &resp.base);
		return;
	}
	if (!*authed || m == M_ALWAYS_UNAUTH) {
		reply(s, id, QS_STATUS_UNAUTHENTICATED, "authenticate first", NULL);
		return;
	}
	if (m == M_DENY) {
		reply(s, id, QS_STATUS_PERMISSION_DENIED, "role prod-root is quorum-only", NULL);
		return;
	}
	if (m == M_CTRL_MESSAGE) {
		reply(s, id, QS_STATUS_NOT_FOUND, "no\x1b[31m such\nkey", NULL);
		return;
	}
	if (strncmp(call->method, "qsign.v1.Requests/", 18) == 0) {
		handle_requests(s, id, call, m);
		return;
	}
	if (strcmp(call->method, QS_M_INFO) == 0) {
		Qsign__V1__InfoResponse ir = QSIGN__V1__INFO_RESPONSE__INIT;
		Qsign__V1__RoleInfo ri = QSIGN__V1__ROLE_INFO__INIT, *rip = &ri;
		char *keys[] = {"ci-key"}, *payloads[] = {"digest", "blob"},
		     *proles[] = {"requester"};
		ri.name = "ci-targets";
		ri.mode = "online";
		ri.keys = keys;
		ri.n_keys = 1;
		ri.payloads = payloads;
		ri.n_payloads = 2;
		ir.server_identity = "test-server";
		ir.version = "0.1.0";
		ir.policy_version = 3;
		ir.principal = "ci";
		ir.principal_roles = proles;
		ir.n_principal_roles = 1;
		ir.roles = &rip;
		ir.n_roles = 1;
		reply(s, id, 0, NULL, &ir.base);
		return;
	}
	if (strcmp(call->method, QS_M_SIGN) == 0 || strcmp(call->method, QS_M_SIGN_BATCH) == 0) {
		int batch = strcmp(call->method, QS_M_SIGN_BATCH) == 0;
		Qsign__V1__SignRequest *sr = NULL;
		Qsign__V1__SignBatchRequest *br = NULL;
		uint8_t sig[64], digests[QS_MAX_BATCH][32];
		memset(sig, 0x5a, sizeof(sig));
		if (!batch) {
			Qsign__V1__SignResponse resp = QSIGN__V1__SIGN_RESPONSE__INIT;
			if (qs_wire_unpack(&qsign__v1__sign_request__descriptor, call->body.data,
			                   call->body.len, QS_MAX_FRAME,
			                   (ProtobufCMessage **)&sr) != 0)
				abort();
			if (sr->kind == QSIGN__V1__PAYLOAD_KIND__DIGEST && sr->payload.len == 32)
				memcpy(digests[0], sr->payload.data, 32);
			else
				qs_sha256(sr->payload.data, sr->payload.len, digests[0]);
			resp.signature.data = sig;
			resp.signature.len = sizeof(sig);
			resp.key = "ci-key";
			resp.key_id = "abcd";
			resp.algorithm = "ecdsa-p256";
			resp.digest.data = digests[0];
			resp.digest.len = 32;
			reply(s, id, 0, NULL, &resp.base);
			protobuf_c_message_free_unpacked(&sr->base, NULL);
			return;
		}
		if (qs_wire_unpack(&qsign__v1__sign_batch_request__descriptor, call->body.data,
		                   call->body.len, QS_MAX_FRAME, (ProtobufCMessage **)&br) != 0 ||
		    br->n_payloads > QS_MAX_BATCH)
			abort();
		{
			Qsign__V1__SignBatchResponse resp = QSIGN__V1__SIGN_BATCH_RESPONSE__INIT;
			Qsign__V1__SignResult *res = calloc(br->n_payloads, sizeof(*res));
			Qsign__V1__SignResult **rp = calloc(br->n_payloads, sizeof(*rp));
			for (size_t i = 0; i < br->n_payloads; i++) {
				qsign__v1__sign_result__init(&res[i]);
				if (br->kind == QSIGN__V1__PAYLOAD_KIND__DIGEST)
					memcpy(digests[i], br->payloads[i].data, 32);
				else
					qs_sha256(br->payloads[i].data, br->payloads[i].len,
					          digests[i]);
				res[i].digest.data = digests[i];
				res[i].digest.len = 32;
				/* Every third item is refused on its own. */
				if (i % 3 == 2) {
					res[i].status = QSIGN__V1__STATUS__RESOURCE_EXHAUSTED;
					res[i].message = "rate limit";
				} else {
					res[i].signature.data = sig;
					res[i].signature.len = sizeof(sig);
				}
				rp[i] = &res[i];
			}
			resp.key = "ci-key";
			resp.key_id = "abcd";
			resp.algorithm = "ecdsa-p256";
			resp.results = rp;
			resp.n_results = br->n_payloads - (m == M_SHORT_BATCH ? 1 : 0);
			reply(s, id, 0, NULL, &resp.base);
			free(res);
			free(rp);
			protobuf_c_message_free_unpacked(&br->base, NULL);
		}
		return;
	}
	reply(s, id, QS_STATUS_UNIMPLEMENTED, "unknown method", NULL);
}

static void *
responder(void *arg)
{
	nng_socket s = *(nng_socket *)arg;
	int authed = 0;

	while (!atomic_load(&stop)) {
		nng_msg *msg = NULL;
		Qsign__V1__Call *call = NULL;
		if (nng_recvmsg(s, &msg, 0) != 0)
			continue;
		if (qs_wire_unpack(&qsign__v1__call__descriptor, nng_msg_body(msg),
		                   nng_msg_len(msg), QS_MAX_FRAME,
		                   (ProtobufCMessage **)&call) == 0) {
			handle(s, call, &authed);
			protobuf_c_message_free_unpacked(&call->base, NULL);
		}
		nng_msg_free(msg);
	}
	return NULL;
}

static int
open_client(qsc_client **c, const char *key, int timeout_ms)
{
	struct qsc_options o = {
	        .url = url, .principal = "ci", .identity = key, .timeout_ms = timeout_ms};
	return qsc_open(&o, c);
}

/* The server key: remembered on first use, refused when another server
 * (same identity, another key) answers, configured keys, refusals of new
 * servers, and proofs that do not verify. Nothing is sent to a refused
 * server after its Challenge answer. */
static void
test_pinning(void)
{
	struct qsc_options o = {.url = url, .principal = "ci", .identity = keyfile,
	                        .timeout_ms = 2000, .known_servers = known_file};
	qsc_client *c = NULL;
	const char *fp0, *file = NULL;
	char fp[QS_FINGERPRINT_MAX], line[4400], pem[4300];
	int how = 0, before;
	FILE *f;

	/* First use: accepted without a question, remembered. */
	CHECK_EQ(qsc_open(&o, &c), 0);
	fp0 = c ? qsc_server_key(c, &how, &file) : NULL;
	CHECK(fp0 != NULL && strncmp(fp0, "SHA256:", 7) == 0 && strlen(fp0) == 50);
	CHECK_EQ(how, QSC_SERVER_KEY_NEW);
	CHECK_STR(file, known_file);
	snprintf(fp, sizeof(fp), "%s", fp0 ? fp0 : "");
	qsc_close(c);
	c = NULL;
	f = fopen(known_file, "r");
	CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
	if (f != NULL)
		fclose(f);
	{
		char want[4400];
		snprintf(want, sizeof(want), "%s %s test-server\n", url, fp);
		CHECK_STR(line, want);
	}
	/* Second use: known. */
	CHECK_EQ(qsc_open(&o, &c), 0);
	CHECK(c != NULL && qsc_server_key(c, &how, NULL) != NULL && how == QSC_SERVER_KEY_KNOWN);
	qsc_close(c);
	c = NULL;

	/* Another server with the same identity but another key: refused
	 * before Authenticate, with what to check. */
	atomic_store(&mode, M_OTHER_KEY);
	before = atomic_load(&auth_count);
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(strstr(qs_errdetail(), "SERVER KEY CHANGED") != NULL &&
	      strstr(qs_errdetail(), known_file) != NULL && strstr(qs_errdetail(), fp) != NULL);
	CHECK_EQ(atomic_load(&auth_count), before);
	/* ... also for a client that had authenticated with the right key. */
	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(qsc_open(&o, &c), 0);
	atomic_store(&mode, M_OTHER_KEY);
	atomic_store(&forget, 1);
	if (c != NULL) {
		Qsign__V1__InfoResponse *info = NULL;
		CHECK_EQ(qsc_info(c, &info), QS_ERR_BADSIG);
		CHECK(strstr(qs_errdetail(), "now proves key") != NULL);
		qsc_free(info);
	}
	qsc_close(c);
	c = NULL;
	CHECK_EQ(atomic_load(&auth_count), before + 1);

	/* No proof, or a proof over another nonce: refused. */
	atomic_store(&mode, M_NO_PROOF);
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(strstr(qs_errdetail(), "did not prove possession") != NULL);
	atomic_store(&mode, M_BAD_PROOF);
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(strstr(qs_errdetail(), "did not prove possession") != NULL);
	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(atomic_load(&auth_count), before + 1);

	/* A configured key: the known file is not consulted. */
	o.server_key = fp;
	o.known_servers = "";
	CHECK_EQ(qsc_open(&o, &c), 0);
	CHECK(c != NULL && qsc_server_key(c, &how, NULL) != NULL && how == QSC_SERVER_KEY_CONFIGURED);
	qsc_close(c);
	c = NULL;
	atomic_store(&mode, M_OTHER_KEY);
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(strstr(qs_errdetail(), "not the configured server key") != NULL);
	atomic_store(&mode, M_NORMAL);
	/* ... as a PEM public key file. */
	snprintf(pem, sizeof(pem), "%s/server.pub", dir);
	f = fopen(pem, "w");
	CHECK(f != NULL && PEM_write_PUBKEY(f, server_priv) == 1);
	if (f != NULL)
		fclose(f);
	o.server_key = pem;
	CHECK_EQ(qsc_open(&o, &c), 0);
	qsc_close(c);
	c = NULL;
	o.server_key = "SHA256:short";
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_INVALID);
	o.server_key = NULL;

	/* A new server when new ones are refused, or the question says no. */
	snprintf(line, sizeof(line), "%s.empty", known_file);
	o.known_servers = line;
	o.trust_new = QSC_TRUST_NEW_REFUSE;
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(access(line, F_OK) != 0);
	o.trust_new = QSC_TRUST_NEW_ASK;
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_BADSIG);
	CHECK(access(line, F_OK) != 0);
	o.trust_new = 7;
	CHECK_EQ(qsc_open(&o, &c), QS_ERR_INVALID);
	atomic_store(&auth_count, 0); /* test_library counts from zero */
}

static void
test_library(void)
{
	Qsign__V1__InfoResponse *info = NULL;
	Qsign__V1__SignResponse *sr = NULL;
	Qsign__V1__SignBatchResponse *br = NULL;
	qsc_client *c = NULL;
	uint8_t digest[32] = {1, 2, 3};
	ProtobufCBinaryData pl[5];
	size_t n = 0;
	const char *const *roles;
	int r;

	CHECK_EQ(open_client(&c, keyfile, 2000), 0);
	if (c == NULL)
		return;
	CHECK_EQ(auth_count, 1);
	CHECK_STR(qsc_server_identity(c), "test-server");
	CHECK_STR(qsc_principal(c), "ci");
	roles = qsc_principal_roles(c, &n);
	CHECK(n == 2 && strcmp(roles[0], "requester") == 0 && strcmp(roles[1], "auditor") == 0);

	CHECK_EQ(qsc_info(c, &info), 0);
	CHECK(info != NULL && strcmp(info->principal, "ci") == 0 && info->n_roles == 1);
	qsc_free(info);
	info = NULL;

	/* The daemon forgot the pipe: re-authenticated and retried, once. */
	atomic_store(&forget, 1);
	CHECK_EQ(qsc_info(c, &info), 0);
	CHECK_EQ(auth_count, 2);
	qsc_free(info);
	info = NULL;

	/* Still refused after re-authentication: one retry, then the error. */
	atomic_store(&mode, M_ALWAYS_UNAUTH);
	CHECK_EQ(qsc_info(c, &info), QS_ERR_UNAUTH);
	CHECK_EQ(auth_count, 3);
	CHECK_EQ(qsc_last_status(c), QS_STATUS_UNAUTHENTICATED);

	atomic_store(&mode, M_DENY);
	CHECK_EQ(qsc_sign(c, "prod-root", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, digest, 32, &sr),
	         QS_ERR_DENIED);
	CHECK_EQ(qsc_last_status(c), QS_STATUS_PERMISSION_DENIED);
	CHECK_STR(qsc_last_message(c), "role prod-root is quorum-only");
	{
		int st = 0;
		char *msg = NULL;
		Qsign__V1__InfoRequest ireq = QSIGN__V1__INFO_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		CHECK_EQ(qsc_call(c, QS_M_INFO, &ireq.base, &qsign__v1__info_response__descriptor,
		                  &resp, &st, &msg),
		         QS_ERR_DENIED);
		CHECK_EQ(st, QS_STATUS_PERMISSION_DENIED);
		CHECK_STR(msg, "role prod-root is quorum-only");
		CHECK(resp == NULL);
		free(msg);
	}

	/* A hostile message cannot reach a terminal raw. */
	atomic_store(&mode, M_CTRL_MESSAGE);
	CHECK_EQ(qsc_info(c, &info), QS_ERR_NOT_FOUND);
	CHECK_STR(qsc_last_message(c), "no?[31m such?key");

	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(qsc_sign(c, "ci-targets", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, digest, 32, &sr),
	         0);
	CHECK(sr != NULL && sr->signature.len == 64 && memcmp(sr->digest.data, digest, 32) == 0);
	qsc_free(sr);
	sr = NULL;
	/* Arguments are checked before anything is sent. */
	CHECK_EQ(qsc_sign(c, "ci-targets", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, digest, 31, &sr),
	         QS_ERR_INVALID);
	CHECK_EQ(qsc_sign(c, "bad role", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, digest, 32, &sr),
	         QS_ERR_INVALID);
	CHECK_EQ(qsc_sign_batch(c, "ci-targets", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, pl, 0, &br),
	         QS_ERR_INVALID);

	for (size_t i = 0; i < 5; i++) {
		pl[i].data = digest;
		pl[i].len = 32;
	}
	CHECK_EQ(qsc_sign_batch(c, "ci-targets", "ci-key", QSIGN__V1__PAYLOAD_KIND__DIGEST, pl, 5,
	                        &br),
	         0);
	CHECK(br != NULL && br->n_results == 5 && br->results[2]->status != 0 &&
	      br->results[3]->status == 0);
	qsc_free(br);
	br = NULL;

	/* Replies a real daemon never sends. */
	atomic_store(&mode, M_SHORT_BATCH);
	CHECK_EQ(qsc_sign_batch(c, "ci-targets", NULL, QSIGN__V1__PAYLOAD_KIND__DIGEST, pl, 5, &br),
	         QS_ERR_INVALID);
	CHECK(br == NULL);
	atomic_store(&mode, M_WRONG_ID);
	CHECK_EQ(qsc_info(c, &info), QS_ERR_INVALID);
	CHECK(strstr(qs_errdetail(), "expected") != NULL);
	atomic_store(&mode, M_GARBAGE);
	CHECK_EQ(qsc_info(c, &info), QS_ERR_INVALID);
	CHECK_EQ(qsc_last_status(c), -1);
	CHECK(info == NULL);
	qsc_close(c);
	c = NULL;

	/* No reply: a timeout, reported as such, not a hang. */
	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(open_client(&c, keyfile, 300), 0);
	atomic_store(&mode, M_SILENT);
	CHECK_EQ(qsc_info(c, &info), QS_ERR_TIMEOUT);
	CHECK_EQ(qsc_last_status(c), -1);
	qsc_close(c);
	c = NULL;

	/* The wrong key is refused by the daemon at qsc_open. */
	atomic_store(&mode, M_NORMAL);
	r = open_client(&c, otherkey, 2000);
	CHECK_EQ(r, QS_ERR_UNAUTH);
	CHECK(c == NULL);
	CHECK(strstr(qs_errdetail(), "UNAUTHENTICATED") != NULL);
}

/* Requests: the library checks the payload before it signs a vote, and the
 * vote it signs is exactly the approval statement the daemon rebuilds. */
static void
test_requests(void)
{
	Qsign__V1__RequestView *v = NULL;
	qsc_client *c = NULL;
	uint8_t sha[32], wrong[32] = {0};
	int before;

	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(open_client(&c, keyfile, 2000), 0);
	if (c == NULL)
		return;
	qs_sha256((const uint8_t *)req_payload, strlen(req_payload), sha);

	CHECK_EQ(qsc_request_get(c, REQ_ID, 1, &v), 0);
	CHECK(v != NULL && v->payload.len == strlen(req_payload));
	qsc_free(v);
	v = NULL;

	/* An approval: signed over the statement, reason and time sent. */
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 1, "looks right", NULL, &v), 0);
	CHECK_EQ(atomic_load(&votes_received), 1);
	CHECK_EQ(atomic_load(&votes_verified), 1);
	CHECK_EQ(atomic_load(&last_vote_approve), 1);
	CHECK(v != NULL && v->n_votes == 1);
	qsc_free(v);
	v = NULL;
	/* A reject is signed as a reject (the statement says "reject"), and
	 * pinning the reviewed digest works. */
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 0, "looks right", sha, &v), 0);
	CHECK_EQ(atomic_load(&votes_received), 2);
	CHECK_EQ(atomic_load(&votes_verified), 2);
	CHECK_EQ(atomic_load(&last_vote_approve), 0);
	qsc_free(v);
	v = NULL;

	/* The payload is not what the daemon claims: refused, nothing sent. */
	before = atomic_load(&votes_received);
	atomic_store(&mode, M_BAD_PAYLOAD);
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 1, NULL, NULL, &v), QS_ERR_CRYPTO);
	CHECK(strstr(qs_errdetail(), "SHA-256") != NULL);
	CHECK(v == NULL);
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 0, NULL, NULL, &v), QS_ERR_CRYPTO);
	CHECK_EQ(qsc_request_get(c, REQ_ID, 1, &v), QS_ERR_CRYPTO);
	CHECK(v == NULL);
	/* Without the payload there is nothing to compare: the view is fine. */
	CHECK_EQ(qsc_request_get(c, REQ_ID, 0, &v), 0);
	qsc_free(v);
	v = NULL;
	CHECK_EQ(atomic_load(&votes_received), before);

	/* Not the payload the approver reviewed: refused, nothing sent. */
	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 1, NULL, wrong, &v), QS_ERR_CRYPTO);
	CHECK(strstr(qs_errdetail(), "reviewed") != NULL);
	CHECK_EQ(atomic_load(&votes_received), before);

	/* Malformed views and bad arguments. */
	atomic_store(&mode, M_BAD_VIEW);
	CHECK_EQ(qsc_request_get(c, REQ_ID, 0, &v), QS_ERR_INVALID);
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 1, NULL, NULL, &v), QS_ERR_INVALID);
	CHECK_EQ(atomic_load(&votes_received), before);
	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(qsc_request_get(c, "no such id", 0, &v), QS_ERR_INVALID);
	CHECK_EQ(qsc_request_vote(c, REQ_ID, 1, "bell\a", NULL, &v), QS_ERR_INVALID);
	CHECK_EQ(qsc_request_get(c, "other", 0, &v), QS_ERR_NOT_FOUND);
	CHECK_EQ(atomic_load(&votes_received), before);

	/* Submit: validated by kind first; the reply must echo the digest. */
	CHECK_EQ(qsc_request_submit(c, "release", "blob", (const uint8_t *)"abc", 3, "why", "t-1",
	                            &v),
	         0);
	CHECK(v != NULL && strcmp(v->kind, "blob") == 0 && v->payload_size == 3);
	qsc_free(v);
	v = NULL;
	CHECK_EQ(qsc_request_submit(c, "release", "digest", (const uint8_t *)"abc", 3, NULL, NULL,
	                            &v),
	         QS_ERR_INVALID);
	CHECK_EQ(
	        qsc_request_submit(c, "release", "nope", (const uint8_t *)"abc", 3, NULL, NULL, &v),
	        QS_ERR_INVALID);
	CHECK_EQ(qsc_request_submit(c, "policy", "policy", (const uint8_t *)"{", 1, NULL, NULL, &v),
	         QS_ERR_INVALID);
	atomic_store(&mode, M_SUBMIT_LIE);
	CHECK_EQ(qsc_request_submit(c, "release", "blob", (const uint8_t *)"abc", 3, NULL, "t-2",
	                            &v),
	         QS_ERR_INVALID);
	CHECK(v == NULL);
	atomic_store(&mode, M_NORMAL);
	CHECK_STR(qsc_request_state_name(QSIGN__V1__REQUEST_STATE__REQ_EXPIRED), "expired");
	CHECK(qsc_request_state_name(42) == NULL);
	CHECK_EQ(qsc_request_state_from_name("signed"), QSIGN__V1__REQUEST_STATE__REQ_SIGNED);
	CHECK_EQ(qsc_request_state_from_name("bogus"),
	         QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED);
	qsc_close(c);
}

static void
test_uri_query(void)
{
	int err = 0;
	char *v;

	v = qsc_p11uri_query("pkcs11:token=a;object=k?module-path=/usr/lib/x%20y.so&pin-source="
	                     "file:/p",
	                     "module-path", &err);
	CHECK_STR(v, "/usr/lib/x y.so");
	free(v);
	v = qsc_p11uri_query("pkcs11:token=a?module-path=/m&pin-source=file:%2Fp%2Fq", "pin-source",
	                     &err);
	CHECK_STR(v, "file:/p/q");
	free(v);
	CHECK(qsc_p11uri_query("pkcs11:token=a;object=module-path", "module-path", &err) == NULL);
	CHECK_EQ(err, 0);
	CHECK(qsc_p11uri_query("pkcs11:token=a?xmodule-path=1", "module-path", &err) == NULL);
	CHECK(qsc_p11uri_query("pkcs11:token=a?module-path=%zz", "module-path", &err) == NULL);
	CHECK_EQ(err, QS_ERR_INVALID);
	CHECK(qsc_p11uri_query("pkcs11:token=a?module-path=a%00b", "module-path", &err) == NULL);
	CHECK_EQ(err, QS_ERR_INVALID);
	CHECK(qsc_p11uri_query("pkcs11:token=a?module-path=a%2", "module-path", &err) == NULL);
	CHECK_EQ(err, QS_ERR_INVALID);
	/* The whole URI goes through p11-kit's parser, not only the query: a
	 * bad escape in the path or another scheme is refused too. */
	CHECK(qsc_p11uri_query("pkcs11:token=%zz?module-path=/m", "module-path", &err) == NULL);
	CHECK_EQ(err, QS_ERR_INVALID);
	CHECK(qsc_p11uri_query("file:/x?module-path=/m", "module-path", &err) == NULL);
	CHECK_EQ(err, QS_ERR_INVALID);
}

/* Run qsign against the responder; stdout/stderr into files in dir. */
static char out[1 << 20], errbuf[65536];
static int
cli(const char *in, const char *const *args)
{
	char bin[4200], pin[4300], pout[4300], perr[4300];
	const char *argv[32];
	posix_spawn_file_actions_t fa;
	const char *qsbin = getenv("QS_BIN");
	int status = 0, i = 0, fd;
	FILE *f;
	pid_t pid;
	size_t n;

	snprintf(bin, sizeof(bin), "%s/qsign", qsbin != NULL ? qsbin : ".");
	snprintf(pin, sizeof(pin), "%s/in", dir);
	snprintf(pout, sizeof(pout), "%s/out", dir);
	snprintf(perr, sizeof(perr), "%s/err", dir);
	if ((fd = open(pin, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		return -1;
	if (in != NULL && write(fd, in, strlen(in)) < 0)
		abort();
	close(fd);
	argv[i++] = bin;
	argv[i++] = "-s";
	argv[i++] = url;
	argv[i++] = "-p";
	argv[i++] = "ci";
	argv[i++] = "-i";
	argv[i++] = keyfile;
	for (; *args != NULL && i < 31; args++)
		argv[i++] = *args;
	argv[i] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, pin, O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, pout, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, perr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, environ) != 0)
		return -1;
	posix_spawn_file_actions_destroy(&fa);
	waitpid(pid, &status, 0);
	out[0] = errbuf[0] = '\0';
	if ((f = fopen(pout, "r")) != NULL) {
		n = fread(out, 1, sizeof(out) - 1, f);
		out[n] = '\0';
		fclose(f);
	}
	if ((f = fopen(perr, "r")) != NULL) {
		n = fread(errbuf, 1, sizeof(errbuf) - 1, f);
		errbuf[n] = '\0';
		fclose(f);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
#define CLI(in, ...) cli(in, (const char *const[]){__VA_ARGS__, NULL})

static void
test_cli(void)
{
	const char *d = "0102030000000000000000000000000000000000000000000000000000000000";
	char sigfile[4300], blob[4300], lines[400];
	json_t *j;
	FILE *f;

	atomic_store(&mode, M_NORMAL);
	CHECK_EQ(CLI(NULL, "info"), 0);
	CHECK(strstr(out, "policy version:  3") && strstr(out, "ci-targets (online)"));
	CHECK_EQ(CLI(NULL, "--json", "info"), 0);
	j = json_loads(out, 0, NULL);
	CHECK(j != NULL && json_integer_value(json_object_get(j, "policy_version")) == 3);
	CHECK_STR(json_string_value(json_array_get(json_object_get(j, "principal_roles"), 0)),
	          "requester");
	json_decref(j);

	CHECK_EQ(CLI(NULL, "sign", "-r", "ci-targets", "-d", d, "--format", "hex"), 0);
	CHECK(strncmp(out, "5a5a5a", 6) == 0 && strlen(out) == 129);
	CHECK_EQ(CLI(NULL, "sign", "-r", "ci-targets", "-d", d, "--format", "base64"), 0);
	CHECK(strncmp(out, "WlpaWlpa", 8) == 0);
	snprintf(sigfile, sizeof(sigfile), "%s/sig.der", dir);
	CHECK_EQ(CLI(NULL, "sign", "-r", "ci-targets", "-d", d, "-o", sigfile), 0);
	CHECK(out[0] == '\0');
	if ((f = fopen(sigfile, "rb")) != NULL) {
		uint8_t b[128];
		CHECK_EQ(fread(b, 1, sizeof(b), f), 64);
		fclose(f);
	} else {
		CHECK(!"no signature file");
	}
	CHECK_EQ(CLI(NULL, "sign", "--json", "-r", "ci-targets", "-d", d), 0);
	j = json_loads(out, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(j, "digest")), d);
	CHECK_STR(json_string_value(json_object_get(j, "key")), "ci-key");
	CHECK_STR(json_string_value(json_object_get(j, "algorithm")), "ecdsa-p256");
	json_decref(j);

	snprintf(blob, sizeof(blob), "%s/blob", dir);
	if ((f = fopen(blob, "w")) != NULL) {
		fputs("abc", f);
		fclose(f);
	}
	CHECK_EQ(CLI(NULL, "--json", "sign", "-r", "ci-targets", "-f", blob), 0);
	CHECK(strstr(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	CHECK_EQ(CLI("abc", "--json", "sign", "-r", "ci-targets", "-f", "-"), 0);
	CHECK(strstr(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));

	/* Batch: 4 digests, the third refused on its own -> exit 1. */
	snprintf(lines, sizeof(lines), "%s\n%s\n\n%s\n%s\n", d, d, d, d);
	CHECK_EQ(CLI(lines, "sign-batch", "-r", "ci-targets"), 1);
	CHECK(strstr(out, " ERROR RESOURCE_EXHAUSTED rate limit\n") != NULL);
	{
		int nl = 0;
		for (char *p = out; *p; p++)
			nl += *p == '\n';
		CHECK_EQ(nl, 4);
	}
	CHECK_EQ(CLI(lines, "--json", "sign-batch", "-r", "ci-targets"), 1);
	j = json_loads(out, 0, NULL);
	CHECK(json_is_array(j) && json_array_size(j) == 4);
	CHECK_STR(json_string_value(json_object_get(json_array_get(j, 2), "status")),
	          "RESOURCE_EXHAUSTED");
	json_decref(j);
	CHECK_EQ(CLI(NULL, "--json", "sign-batch", "-r", "ci-targets", blob, blob), 0);
	j = json_loads(out, 0, NULL);
	CHECK(json_is_array(j) && json_array_size(j) == 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(j, 1), "file")), blob);
	json_decref(j);

	/* More than QS_MAX_BATCH digests: split into several calls. */
	{
		size_t total = QS_MAX_BATCH + 5, k = 0;
		char *big = malloc(total * 65 + 1);
		for (size_t i = 0; i < total; i++, k += 65) {
			memcpy(big + k, d, 64);
			big[k + 64] = '\n';
		}
		big[k] = '\0';
		CHECK_EQ(CLI(big, "sign-batch", "-r", "ci-targets"), 1);
		size_t nl = 0;
		for (char *p = out; *p; p++)
			nl += *p == '\n';
		CHECK_EQ(nl, total);
		free(big);
	}

	/* Requests through the CLI. */
	{
		int before = atomic_load(&votes_received);
		CHECK_EQ(CLI(NULL, "request", "show", REQ_ID), 0);
		CHECK(strstr(out, "(verified locally)") != NULL);
		CHECK(strstr(out, "starts (text): release 1.2.3\\n") != NULL);
		CHECK(strstr(out, "0/2 approvals \u2014 waiting for 2 of ci, admin2, admin3") !=
		      NULL);
		CHECK_EQ(CLI(NULL, "approve", REQ_ID, "-m", "looks right"), 0);
		CHECK_STR(out, "1/2 approvals: ci \u2014 waiting for admin2 or admin3\n");
		CHECK_EQ(atomic_load(&votes_verified), atomic_load(&votes_received));
		CHECK_EQ(CLI(NULL, "--json", "reject", REQ_ID, "-m", "looks right"), 0);
		j = json_loads(out, 0, NULL);
		CHECK_STR(json_string_value(json_object_get(j, "state")), "pending");
		CHECK_STR(json_string_value(json_object_get(
		                  json_array_get(json_object_get(j, "votes"), 0), "decision")),
		          "reject");
		json_decref(j);
		CHECK_EQ(atomic_load(&votes_received), before + 2);
		atomic_store(&mode, M_BAD_PAYLOAD);
		CHECK_EQ(CLI(NULL, "approve", REQ_ID), 1);
		CHECK(strstr(errbuf, "refusing") != NULL);
		CHECK_EQ(CLI(NULL, "request", "show", REQ_ID), 1);
		CHECK_EQ(atomic_load(&votes_received), before + 2);
		atomic_store(&mode, M_NORMAL);
		CHECK_EQ(CLI(NULL, "request", "submit", "-r", "release", "-d", d), 0);
		CHECK_STR(out, REQ_ID "\n");
	}
	atomic_store(&mode, M_DENY);
	CHECK_EQ(CLI(NULL, "sign", "-r", "ci-targets", "-d", d), 1);
	CHECK(strstr(errbuf, "qsign: PERMISSION_DENIED: role prod-root is quorum-only") != NULL);
	atomic_store(&mode, M_NORMAL);
}

int
main(void)
{
	nng_socket rep;
	pthread_t th;
	char *pem = NULL;

	if (mkdtemp(dir) == NULL)
		return 1;
	server_priv = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	other_priv = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (server_priv == NULL || other_priv == NULL)
		return 1;
	snprintf(known_file, sizeof(known_file), "%s/config/qsign/known_servers", dir);
	{
		/* The library's and the CLI's default file: in the test directory. */
		char xdg[4200];
		snprintf(xdg, sizeof(xdg), "%s/config", dir);
		setenv("XDG_CONFIG_HOME", xdg, 1);
	}
	snprintf(url, sizeof(url), "ipc://%s/qsignd.sock", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/ci.key", dir);
	snprintf(otherkey, sizeof(otherkey), "%s/other.key", dir);
	CHECK_EQ(qsc_keygen("ed25519", otherkey, NULL), 0);
	CHECK_EQ(qsc_keygen("ecdsa-p256", keyfile, &pem), 0);
	CHECK_EQ(qsc_keygen("ecdsa-p256", keyfile, NULL), QS_ERR_EXISTS);
	CHECK_EQ(qsc_keygen("rsa", "/nonexistent", NULL), QS_ERR_INVALID);
	CHECK(pem != NULL && qs_pubkey_from_pem(pem, strlen(pem), &principal_pub) == 0);
	free(pem);
	if (principal_pub == NULL)
		CHECK_DONE();

	if (nng_rep0_open(&rep) != 0 || nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, 100) != 0 ||
	    nng_listen(rep, url, NULL, 0) != 0) {
		fprintf(stderr, "cannot listen on %s\n", url);
		return 1;
	}
	pthread_create(&th, NULL, responder, &rep);

	test_uri_query();
	test_pinning();
	test_library();
	test_requests();
	test_cli();

	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	nng_close(rep);
	EVP_PKEY_free(principal_pub);
	EVP_PKEY_free(server_priv);
	EVP_PKEY_free(other_priv);
	if (check_failures == 0) {
		char cmd[4300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	CHECK_DONE();
}
