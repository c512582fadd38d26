/*
 * votes - the quorum rules of qsignd, exercised on the wire against a real
 * daemon (role "release": 2 of admin1..3, requesters admins + ci; role
 * "short": like release with request_ttl 2s and its own key; "extra-key"
 * in the token and the policy for the role a policy change adds).
 *
 * usage: votes URL HOME
 *
 * Votes are built here by hand (not by the CLI) so that the test can also
 * send what an honest client never would: a vote over other bytes, a forged
 * signature, a signature over another decision.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "check.h"
#include "qs_err.h"
#include "qsclient.h"
#include "statement.h"
#include "wire.h"

static const char *url, *home;

/* A connection as `name` with the private key in demo/<keyfile>.key. */
static qsc_client *
client_as(const char *name, const char *keyfile)
{
	char id[512];
	struct qsc_options o = {0};
	qsc_client *c = NULL;

	snprintf(id, sizeof(id), "%s/demo/%s.key", home, keyfile);
	o.url = url;
	o.principal = name;
	o.identity = id;
	if (qsc_open(&o, &c) != 0) {
		fprintf(stderr, "connect as %s: %s\n", name, qs_errdetail());
		exit(2);
	}
	return c;
}

static qsc_client *
client(const char *name)
{
	return client_as(name, name);
}

static EVP_PKEY *
key(const char *name)
{
	char path[512];
	FILE *f;
	EVP_PKEY *k;

	snprintf(path, sizeof(path), "%s/demo/%s.key", home, name);
	if ((f = fopen(path, "r")) == NULL || (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL)
		exit(2);
	fclose(f);
	return k;
}

/* Call and return the wire status; *view gets a RequestView when OK. */
static int
rcall(qsc_client *c, const char *method, const ProtobufCMessage *req,
      Qsign__V1__RequestView **view)
{
	ProtobufCMessage *resp = NULL;
	int status = -1;
	char *msg = NULL;

	qsc_call(c, method, req, &qsign__v1__request_view__descriptor, &resp, &status, &msg);
	if (status != 0)
		printf("  -> %s: %s\n", qs_status_name(status), msg ? msg : "");
	free(msg);
	if (view != NULL)
		*view = (Qsign__V1__RequestView *)resp;
	else if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
	return status;
}

/* A blob request whose signature uses `hash` ("" = sha256). */
static char *
submit_hash(qsc_client *c, const char *role, const char *payload, const char *hash)
{
	Qsign__V1__SubmitRequest req = QSIGN__V1__SUBMIT_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;
	char *id;

	req.hash = (char *)hash;
	req.role = (char *)role;
	req.kind = "blob";
	req.payload.data = (uint8_t *)payload;
	req.payload.len = strlen(payload);
	req.message = "test";
	if (rcall(c, QS_M_REQ_SUBMIT, &req.base, &v) != 0 || v == NULL) {
		fprintf(stderr, "submit failed\n");
		exit(2);
	}
	id = strdup(v->id);
	protobuf_c_message_free_unpacked(&v->base, NULL);
	return id;
}

static char *
submit(qsc_client *c, const char *role, const char *payload)
{
	return submit_hash(c, role, payload, "");
}

static Qsign__V1__RequestView *
get(qsc_client *c, const char *id)
{
	Qsign__V1__GetRequestRequest req = QSIGN__V1__GET_REQUEST_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;

	req.id = (char *)id;
	if (rcall(c, QS_M_REQ_GET, &req.base, &v) != 0 || v == NULL) {
		fprintf(stderr, "get %s failed\n", id);
		exit(2);
	}
	return v;
}

static int
state_of(qsc_client *c, const char *id, size_t *nvotes)
{
	Qsign__V1__RequestView *v = get(c, id);
	int st = v->state;

	if (nvotes)
		*nvotes = v->n_votes;
	protobuf_c_message_free_unpacked(&v->base, NULL);
	return st;
}

/*
 * A vote on `id` sent by connection c. The statement is signed with
 * `signer`'s key over `signed_digest`, `signed_approve` and the signature
 * hash `signed_hash` (NULL: the request's); the request claims `approve`
 * and `claimed_digest`.
 */
static int
vote_full(qsc_client *c, const char *id, EVP_PKEY *signer, int approve, int signed_approve,
	  const uint8_t *signed_digest, const uint8_t *claimed_digest, const char *signed_hash)
{
	Qsign__V1__RequestView *v = get(c, id);
	Qsign__V1__VoteRequest req = QSIGN__V1__VOTE_REQUEST__INIT;
	uint8_t dg[32], *stmt = NULL, sig[128];
	size_t stmt_len = 0, sig_len = 0;
	int64_t now = (int64_t)time(NULL);
	int st;

	memcpy(dg, v->payload_sha256.data, 32);
	if (qs_stmt_approval_hash(qsc_server_identity(c), id, v->role, v->kind,
				  signed_digest ? signed_digest : dg,
				  signed_hash ? signed_hash : v->hash, signed_approve, now, &stmt,
				  &stmt_len) != 0 ||
	    qs_sig_sign(signer, stmt, stmt_len, sig, &sig_len) != 0) {
		fprintf(stderr, "statement: %s\n", qs_errdetail());
		exit(2);
	}
	req.id = (char *)id;
	req.approve = approve;
	req.time = now;
	req.payload_sha256.data = (uint8_t *)(claimed_digest ? claimed_digest : dg);
	req.payload_sha256.len = 32;
	req.signature.data = sig;
	req.signature.len = sig_len;
	st = rcall(c, QS_M_REQ_VOTE, &req.base, NULL);
	free(stmt);
	protobuf_c_message_free_unpacked(&v->base, NULL);
	return st;
}

static int
vote_ex(qsc_client *c, const char *id, EVP_PKEY *signer, int approve, int signed_approve,
	const uint8_t *signed_digest, const uint8_t *claimed_digest)
{
	return vote_full(c, id, signer, approve, signed_approve, signed_digest, claimed_digest,
			 NULL);
}

static int
vote(qsc_client *c, const char *id, EVP_PKEY *k, int approve)
{
	return vote_ex(c, id, k, approve, approve, NULL, NULL);
}

/* Current policy text with version set to `version` and an extra online
 * role `extra_role` for ci (NULL: none). malloc'd. */
static char *
policy_variant(qsc_client *c, long long version, const char *extra_role)
{
	Qsign__V1__PolicyShowRequest req = QSIGN__V1__POLICY_SHOW_REQUEST__INIT;
	Qsign__V1__PolicyShowResponse *resp = NULL;
	json_error_t e;
	json_t *j;
	int status = -1;
	char *msg = NULL, *out;

	qsc_call(c, QS_M_POLICY_SHOW, &req.base, &qsign__v1__policy_show_response__descriptor,
		 (ProtobufCMessage **)&resp, &status, &msg);
	free(msg);
	if (status != 0 || resp == NULL || (j = json_loads(resp->text, 0, &e)) == NULL)
		exit(2);
	json_object_set_new(j, "version", json_integer(version));
	if (extra_role != NULL)
		json_object_set_new(json_object_get(j, "roles"), extra_role,
				    json_pack("{s:[s], s:[s], s:{s:[s]}}", "keys", "extra-key",
					      "payloads", "digest", "online", "requesters", "ci"));
	out = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return out;
}

static uint64_t
current_policy_version(qsc_client *c)
{
	Qsign__V1__PolicyShowRequest req = QSIGN__V1__POLICY_SHOW_REQUEST__INIT;
	Qsign__V1__PolicyShowResponse *resp = NULL;
	int status = -1;
	char *msg = NULL;
	uint64_t v;

	qsc_call(c, QS_M_POLICY_SHOW, &req.base, &qsign__v1__policy_show_response__descriptor,
		 (ProtobufCMessage **)&resp, &status, &msg);
	free(msg);
	if (status != 0 || resp == NULL)
		exit(2);
	v = resp->current_version;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return v;
}

static int
submit_policy(qsc_client *c, const char *text, char **id)
{
	Qsign__V1__SubmitRequest req = QSIGN__V1__SUBMIT_REQUEST__INIT;
	Qsign__V1__RequestView *v = NULL;
	int st;

	req.role = "policy";
	req.kind = "policy";
	req.payload.data = (uint8_t *)text;
	req.payload.len = strlen(text);
	st = rcall(c, QS_M_REQ_SUBMIT, &req.base, &v);
	if (id != NULL)
		*id = v ? strdup(v->id) : NULL;
	if (v != NULL)
		protobuf_c_message_free_unpacked(&v->base, NULL);
	return st;
}

/* Apply the next policy version: the current one edited by `edit`, proposed
 * by `by` and approved by the two other admins. */
static void
next_policy(qsc_client *by, qsc_client *ap1, EVP_PKEY *k1, qsc_client *ap2, EVP_PKEY *k2,
	    void (*edit)(json_t *))
{
	Qsign__V1__PolicyShowRequest req = QSIGN__V1__POLICY_SHOW_REQUEST__INIT;
	Qsign__V1__PolicyShowResponse *resp = NULL;
	json_error_t e;
	json_t *j;
	int status = -1;
	char *msg = NULL, *text, *pid = NULL;
	uint64_t v;

	qsc_call(by, QS_M_POLICY_SHOW, &req.base, &qsign__v1__policy_show_response__descriptor,
		 (ProtobufCMessage **)&resp, &status, &msg);
	free(msg);
	if (status != 0 || resp == NULL || (j = json_loads(resp->text, 0, &e)) == NULL)
		exit(2);
	v = resp->current_version;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	json_object_set_new(j, "version", json_integer((json_int_t)v + 1));
	edit(j);
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	if (submit_policy(by, text, &pid) != 0 || pid == NULL || vote(ap1, pid, k1, 1) != 0 ||
	    vote(ap2, pid, k2, 1) != 0 || current_policy_version(by) != v + 1) {
		fprintf(stderr, "policy version %llu not applied\n", (unsigned long long)v + 1);
		exit(2);
	}
	free(text);
	free(pid);
}

static json_t *
release_quorum(json_t *pol)
{
	return json_object_get(json_object_get(json_object_get(pol, "roles"), "release"), "quorum");
}

static void
edit_threshold_3(json_t *pol)
{
	json_object_set_new(release_quorum(pol), "threshold", json_integer(3));
}

static void
edit_threshold_2(json_t *pol)
{
	json_object_set_new(release_quorum(pol), "threshold", json_integer(2));
}

static void
edit_drop_admin3(json_t *pol)
{
	json_object_set_new(release_quorum(pol), "approvers", json_pack("[s,s]", "admin1", "admin2"));
}

static void
edit_drop_release(json_t *pol)
{
	json_object_del(json_object_get(pol, "roles"), "release");
	json_object_del(json_object_get(pol, "roles"), "short");
}

/* admin1's replacement key: demo/admin1-new.key (written by main), its
 * public PEM in new_admin1_pem. */
static char *new_admin1_pem;

static void
edit_replace_admin1_key(json_t *pol)
{
	json_object_set_new(json_object_get(json_object_get(pol, "principals"), "admin1"),
			    "public_key", json_string(new_admin1_pem));
}

/* A new Ed25519 key for admin1 in demo/admin1-new.key; its public PEM in
 * new_admin1_pem. */
static EVP_PKEY *
new_admin1_key(void)
{
	char path[512];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *b = BIO_new(BIO_s_mem());
	FILE *f = NULL;
	char *d;
	long n;
	int fd;

	snprintf(path, sizeof(path), "%s/demo/admin1-new.key", home);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0)
		f = fdopen(fd, "w");
	if (k == NULL || b == NULL || f == NULL ||
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0 ||
	    PEM_write_bio_PUBKEY(b, k) != 1 || (n = BIO_get_mem_data(b, &d)) <= 0 ||
	    (new_admin1_pem = strndup(d, (size_t)n)) == NULL) {
		fprintf(stderr, "a new key for admin1 in %s failed\n", path);
		exit(2);
	}
	BIO_free(b);
	return k;
}

static int
nsigs_of(qsc_client *c, const char *id)
{
	Qsign__V1__FetchRequest fr = QSIGN__V1__FETCH_REQUEST__INIT;
	Qsign__V1__FetchResponse *resp = NULL;
	int status = -1, n;
	char *msg = NULL;

	fr.id = (char *)id;
	qsc_call(c, QS_M_REQ_FETCH, &fr.base, &qsign__v1__fetch_response__descriptor,
		 (ProtobufCMessage **)&resp, &status, &msg);
	free(msg);
	n = status == 0 && resp ? (int)resp->n_signatures : 0;
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	return n;
}

struct racer {
	const char *name, *id;
	int status;
};

static void *
race(void *arg)
{
	struct racer *rc = arg;
	qsc_client *c = client(rc->name);
	EVP_PKEY *k = key(rc->name);

	rc->status = vote(c, rc->id, k, 1);
	EVP_PKEY_free(k);
	qsc_close(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	qsc_client *ci, *a1, *a2, *a3;
	EVP_PKEY *kci, *k1, *k2, *k3, *k1old = NULL, *k1new = NULL;
	uint8_t other[32];
	size_t nv = 0;
	char *id;

	if (argc != 3) {
		fprintf(stderr, "usage: votes URL HOME\n");
		return 2;
	}
	url = argv[1];
	home = argv[2];
	ci = client("ci");
	a1 = client("admin1");
	a2 = client("admin2");
	a3 = client("admin3");
	kci = key("ci");
	k1 = key("admin1");
	k2 = key("admin2");
	k3 = key("admin3");
	qs_sha256((const uint8_t *)"other bytes", 11, other);

	puts("2-of-3: refusals leave the request untouched");
	id = submit(ci, "release", "release 1.0 manifest");
	CHECK_MSG(state_of(a1, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 0, "pending");
	CHECK_MSG(vote(ci, id, kci, 1) == QS_STATUS_PERMISSION_DENIED, "non-approver voted");
	CHECK_MSG(vote_ex(a1, id, k1, 1, 1, other, other) == QS_STATUS_INVALID_ARGUMENT,
	      "vote over a different digest accepted");
	CHECK_MSG(vote_ex(a1, id, k1, 1, 1, other, NULL) == QS_STATUS_UNAUTHENTICATED,
	      "signature over a different digest accepted");
	CHECK_MSG(vote_ex(a1, id, k2, 1, 1, NULL, NULL) == QS_STATUS_UNAUTHENTICATED,
	      "forged vote (admin2's key on admin1's connection) accepted");
	CHECK_MSG(vote_ex(a1, id, k1, 1, 0, NULL, NULL) == QS_STATUS_UNAUTHENTICATED,
	      "signature over 'reject' accepted as 'approve'");
	CHECK_MSG(state_of(a1, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 0,
	      "refused votes changed the request (votes=%zu)", nv);

	puts("a SHA-384 request: an approval of another hash's signature does not count");
	{
		char *h = submit_hash(ci, "hashed", "firmware 2.0", "sha384");
		CHECK_MSG(vote_full(a1, h, k1, 1, 1, NULL, NULL, "sha256") ==
				  QS_STATUS_UNAUTHENTICATED,
			  "an approval of a SHA-256 signature counted for a SHA-384 one");
		CHECK_MSG(vote_full(a1, h, k1, 1, 1, NULL, NULL, "sha512") ==
				  QS_STATUS_UNAUTHENTICATED,
			  "an approval of a SHA-512 signature counted for a SHA-384 one");
		CHECK_MSG(state_of(a1, h, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 0,
			  "refused votes changed the SHA-384 request (votes=%zu)", nv);
		CHECK_MSG(vote(a1, h, k1, 1) == 0 && vote(a2, h, k2, 1) == 0,
			  "approvals of the SHA-384 signature refused");
		CHECK_MSG(state_of(ci, h, &nv) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED && nv == 2,
			  "SHA-384 request not signed");
		free(h);
		h = submit_hash(ci, "hashed", "firmware 2.1", "");
		CHECK_MSG(vote_full(a1, h, k1, 1, 1, NULL, NULL, "sha384") ==
				  QS_STATUS_UNAUTHENTICATED,
			  "an approval of a SHA-384 signature counted for a SHA-256 one");
		CHECK_MSG(state_of(a1, h, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 0,
			  "refused vote changed the SHA-256 request (votes=%zu)", nv);
		free(h);
	}

	puts("one approval: still pending, nothing to fetch");
	CHECK_MSG(vote(a1, id, k1, 1) == 0, "admin1 approve");
	CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 1, "1 vote");
	{
		Qsign__V1__FetchRequest fr = QSIGN__V1__FETCH_REQUEST__INIT;
		fr.id = id;
		CHECK_MSG(rcall(ci, QS_M_REQ_FETCH, &fr.base, NULL) == QS_STATUS_FAILED_PRECONDITION,
		      "fetch before quorum");
	}
	puts("duplicate approval is not counted; a changed vote is refused");
	CHECK_MSG(vote(a1, id, k1, 1) == 0, "repeated identical vote must be idempotent");
	CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 1,
	      "duplicate counted (votes=%zu)", nv);
	CHECK_MSG(vote(a1, id, k1, 0) == QS_STATUS_ALREADY_EXISTS, "vote change accepted");

	puts("second approval: signed, and the signature verifies");
	CHECK_MSG(vote(a2, id, k2, 1) == 0, "admin2 approve");
	CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED && nv == 2, "signed");
	{
		Qsign__V1__FetchRequest fr = QSIGN__V1__FETCH_REQUEST__INIT;
		Qsign__V1__FetchResponse *resp = NULL;
		Qsign__V1__ListKeysResponse *keys = NULL;
		ProtobufCMessage *m = NULL;
		int status = -1;
		char *msg = NULL;
		uint8_t dg[32];

		fr.id = id;
		qsc_call(ci, QS_M_REQ_FETCH, &fr.base, &qsign__v1__fetch_response__descriptor, &m,
			 &status, &msg);
		free(msg);
		resp = (Qsign__V1__FetchResponse *)m;
		CHECK_MSG(status == 0 && resp && resp->n_signatures == 1, "fetch after quorum");
		CHECK_MSG(qsc_list_keys(ci, &keys) == 0, "list keys");
		qs_sha256((const uint8_t *)"release 1.0 manifest", 20, dg);
		for (size_t i = 0; resp && keys && i < keys->n_keys; i++) {
			EVP_PKEY *pk = NULL;
			if (strcmp(keys->keys[i]->name, "release-key") != 0)
				continue;
			BIO *b = BIO_new_mem_buf(keys->keys[i]->public_pem, -1);
			pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
			BIO_free(b);
			CHECK_MSG(pk && qs_rolesig_verify(pk, 0, dg, NULL, 0,
						      resp->signatures[0]->signature.data,
						      resp->signatures[0]->signature.len) == 0,
			      "release signature does not verify");
			EVP_PKEY_free(pk);
		}
		qsc_free(keys);
		if (resp)
			protobuf_c_message_free_unpacked(m, NULL);
	}
	CHECK_MSG(vote(a3, id, k3, 1) == QS_STATUS_FAILED_PRECONDITION, "vote after signing");
	free(id);

	puts("self-approval is refused (allow_self_approval false)");
	id = submit(a1, "release", "self");
	CHECK_MSG(vote(a1, id, k1, 1) == QS_STATUS_PERMISSION_DENIED, "self-approval accepted");
	free(id);

	puts("cancel: only the submitter; no votes afterwards");
	id = submit(ci, "release", "to cancel");
	{
		Qsign__V1__CancelRequest cr = QSIGN__V1__CANCEL_REQUEST__INIT;
		cr.id = id;
		CHECK_MSG(rcall(a2, QS_M_REQ_CANCEL, &cr.base, NULL) == QS_STATUS_PERMISSION_DENIED,
		      "cancel by another principal");
		CHECK_MSG(rcall(ci, QS_M_REQ_CANCEL, &cr.base, NULL) == 0, "cancel by submitter");
		CHECK_MSG(rcall(ci, QS_M_REQ_CANCEL, &cr.base, NULL) == 0, "cancel retried");
	}
	CHECK_MSG(vote(a1, id, k1, 1) == QS_STATUS_FAILED_PRECONDITION, "vote after cancel");
	CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_CANCELLED, "cancelled");
	free(id);

	puts("rejects that make the threshold unreachable reject the request");
	id = submit(ci, "release", "bad release");
	CHECK_MSG(vote(a1, id, k1, 0) == 0, "reject 1");
	CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_PENDING, "still pending");
	CHECK_MSG(vote(a2, id, k2, 0) == 0, "reject 2");
	CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_REJECTED, "rejected");
	CHECK_MSG(vote(a3, id, k3, 1) == QS_STATUS_FAILED_PRECONDITION, "vote after rejection");
	free(id);

	puts("expiry (request_ttl 2s) closes the request");
	id = submit(ci, "short", "expires");
	sleep(3);
	CHECK_MSG(vote(a1, id, k1, 1) == QS_STATUS_FAILED_PRECONDITION, "vote after expiry");
	CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_EXPIRED, "expired");
	free(id);

	puts("unknown and malformed ids");
	{
		Qsign__V1__GetRequestRequest g = QSIGN__V1__GET_REQUEST_REQUEST__INIT;
		g.id = "0123456789abcdef0123456789abcdef";
		CHECK_MSG(rcall(a1, QS_M_REQ_GET, &g.base, NULL) == QS_STATUS_NOT_FOUND, "unknown id");
		g.id = "../../etc";
		CHECK_MSG(rcall(a1, QS_M_REQ_GET, &g.base, NULL) == QS_STATUS_INVALID_ARGUMENT, "bad id");
	}

	puts("concurrent approvals: exactly one signature, no vote lost");
	for (int round = 0; round < 10; round++) {
		pthread_t th[3];
		struct racer rc[3] = {{"admin1", NULL, -1}, {"admin2", NULL, -1},
				      {"admin3", NULL, -1}};
		int ok = 0, closed = 0;
		id = submit(ci, "release", round % 2 ? "race odd" : "race even");
		for (int i = 0; i < 3; i++) {
			rc[i].id = id;
			pthread_create(&th[i], NULL, race, &rc[i]);
		}
		for (int i = 0; i < 3; i++) {
			pthread_join(th[i], NULL);
			ok += rc[i].status == 0;
			closed += rc[i].status == QS_STATUS_FAILED_PRECONDITION;
		}
		CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED, "race: signed");
		CHECK_MSG(ok == (int)nv && ok + closed == 3 && (nv == 2 || nv == 3),
		      "race round %d: ok=%d closed=%d votes=%zu", round, ok, closed, nv);
		{
			Qsign__V1__FetchRequest fr = QSIGN__V1__FETCH_REQUEST__INIT;
			Qsign__V1__FetchResponse *resp = NULL;
			int status = -1;
			char *msg = NULL;
			fr.id = id;
			qsc_call(ci, QS_M_REQ_FETCH, &fr.base, &qsign__v1__fetch_response__descriptor,
				 (ProtobufCMessage **)&resp, &status, &msg);
			free(msg);
			CHECK_MSG(status == 0 && resp && resp->n_signatures == 1,
			      "race: exactly one signature");
			if (resp)
				protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		free(id);
	}

	puts("policy change: only admins propose, only the next version, quorum of policy admins");
	{
		char *v2 = policy_variant(a1, 2, "ci-extra"), *v3 = policy_variant(a1, 3, NULL);
		char *v2b = policy_variant(a1, 2, NULL), *pid = NULL, *pid2 = NULL;
		uint8_t dg[32] = {9};
		Qsign__V1__SignRequest sr = QSIGN__V1__SIGN_REQUEST__INIT;

		sr.role = "ci-extra";
		sr.kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		sr.payload.data = dg;
		sr.payload.len = 32;
		CHECK_MSG(submit_policy(ci, v2, NULL) == QS_STATUS_PERMISSION_DENIED,
		      "non-admin proposed a policy");
		CHECK_MSG(submit_policy(a1, v3, NULL) == QS_STATUS_INVALID_ARGUMENT,
		      "skipped policy version accepted");
		CHECK_MSG(submit_policy(a1, "{\"version\": 2}", NULL) == QS_STATUS_INVALID_ARGUMENT,
		      "invalid policy accepted");
		CHECK_MSG(submit_policy(a1, v2, &pid) == 0 && pid, "propose v2");
		CHECK_MSG(submit_policy(a2, v2b, &pid2) == 0 && pid2, "propose a competing v2");
		CHECK_MSG(vote(a1, pid, k1, 1) == QS_STATUS_PERMISSION_DENIED,
		      "proposer approved own policy");
		CHECK_MSG(vote(a2, pid, k2, 1) == 0, "admin2 approves v2");
		CHECK_MSG(current_policy_version(ci) == 1, "policy applied with too few approvals");
		CHECK_MSG(rcall(ci, QS_M_SIGN, &sr.base, NULL) == QS_STATUS_NOT_FOUND,
		      "role of an unapproved policy usable");
		CHECK_MSG(vote(a3, pid, k3, 1) == 0, "admin3 approves v2");
		CHECK_MSG(current_policy_version(ci) == 2, "policy v2 not applied after quorum");
		CHECK_MSG(state_of(a1, pid, NULL) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED, "applied");
		{
			/* The new role is live for new connections and old ones. */
			ProtobufCMessage *m = NULL;
			int status = -1;
			char *msg = NULL;
			qsc_call(ci, QS_M_SIGN, &sr.base, &qsign__v1__sign_response__descriptor, &m,
				 &status, &msg);
			free(msg);
			CHECK_MSG(status == 0, "role added by policy v2 does not sign");
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
		}
		/* The competing proposal is no longer the next version. */
		CHECK_MSG(vote(a1, pid2, k1, 1) == 0 && vote(a3, pid2, k3, 1) == 0, "approve stale v2");
		CHECK_MSG(state_of(a1, pid2, NULL) == QSIGN__V1__REQUEST_STATE__REQ_FAILED,
		      "stale policy proposal must fail, not apply");
		CHECK_MSG(current_policy_version(ci) == 2, "stale proposal changed the policy");
		free(v2);
		free(v3);
		free(v2b);
		free(pid);
		free(pid2);
	}

	puts("the policy in force decides: a raised threshold, a removed approver, a removed "
	     "role; the old quorum no longer signs");
	{
		Qsign__V1__RequestView *v = NULL;
		id = submit(ci, "release", "pending across a threshold change");
		CHECK_MSG(vote(a1, id, k1, 1) == 0, "admin1 approves before the change");
		next_policy(a1, a2, k2, a3, k3, edit_threshold_3);
		CHECK_MSG(vote(a2, id, k2, 1) == 0, "admin2 approves after the change");
		CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 2,
		      "2 approvals signed after the threshold was raised to 3");
		CHECK_MSG(nsigs_of(ci, id) == 0, "a signature exists with 2 of 3");
		v = get(ci, id);
		CHECK_MSG(v->threshold == 3, "request show: threshold %u, want the higher 3", v->threshold);
		protobuf_c_message_free_unpacked(&v->base, NULL);
		CHECK_MSG(vote(a3, id, k3, 1) == 0, "admin3 approves");
		CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED,
		      "3 of 3 did not sign");
		free(id);

		next_policy(a1, a2, k2, a3, k3, edit_threshold_2);
		id = submit(ci, "release", "pending across an approver removal");
		CHECK_MSG(vote(a3, id, k3, 1) == 0, "admin3 approves before its removal");
		next_policy(a1, a2, k2, a3, k3, edit_drop_admin3);
		CHECK_MSG(vote(a1, id, k1, 1) == 0, "admin1 approves after the removal");
		CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 2,
		      "a removed approver's vote still counted");
		CHECK_MSG(nsigs_of(ci, id) == 0, "signed with a removed approver's vote");
		CHECK_MSG(vote(a3, id, k3, 0) == QS_STATUS_PERMISSION_DENIED,
		      "a removed approver may still vote");
		CHECK_MSG(vote(a2, id, k2, 1) == 0, "admin2 approves");
		CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED,
		      "two current approvers did not sign");
		free(id);

		/* release: 2 of admin1, admin2. */
		id = submit(ci, "release", "pending across a key replacement");
		CHECK_MSG(vote(a1, id, k1, 1) == 0, "admin1 approves before its key is replaced");
		k1new = new_admin1_key();
		next_policy(a2, a1, k1, a3, k3, edit_replace_admin1_key);
		CHECK_MSG(vote(a2, id, k2, 1) == 0, "admin2 approves after the replacement");
		CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_PENDING && nv == 2,
		      "a vote signed with a replaced key still counted");
		CHECK_MSG(nsigs_of(ci, id) == 0, "signed with a vote under a replaced key");
		v = get(ci, id);
		CHECK_MSG(v->state == QSIGN__V1__REQUEST_STATE__REQ_PENDING,
		      "request with a stale vote: state %d (%s)", v->state, v->state_message);
		protobuf_c_message_free_unpacked(&v->base, NULL);
		/* admin1's old connection ended with its key; it comes back with
		 * the new key and approves again: that vote counts. */
		qsc_close(a1);
		a1 = client_as("admin1", "admin1-new");
		CHECK_MSG(vote(a1, id, k1, 1) == QS_STATUS_UNAUTHENTICATED,
		      "a vote signed with the replaced key accepted");
		CHECK_MSG(state_of(ci, id, NULL) == QSIGN__V1__REQUEST_STATE__REQ_PENDING,
		      "a refused vote changed the request");
		CHECK_MSG(vote(a1, id, k1new, 1) == 0, "admin1 approves again with its new key");
		CHECK_MSG(state_of(ci, id, &nv) == QSIGN__V1__REQUEST_STATE__REQ_SIGNED && nv == 2,
		      "admin1's vote with its new key did not count (votes=%zu)", nv);
		CHECK_MSG(nsigs_of(ci, id) == 1, "no signature after the renewed quorum");
		free(id);
		k1old = k1;
		k1 = k1new;

		id = submit(ci, "release", "pending across a role removal");
		CHECK_MSG(vote(a1, id, k1, 1) == 0, "admin1 approves before the role goes");
		next_policy(a1, a2, k2, a3, k3, edit_drop_release);
		CHECK_MSG(vote(a2, id, k2, 1) == QS_STATUS_FAILED_PRECONDITION,
		      "vote on a request whose role was removed accepted");
		v = get(ci, id);
		CHECK_MSG(v->state == QSIGN__V1__REQUEST_STATE__REQ_FAILED &&
			      strstr(v->state_message, "role release was removed") != NULL,
		      "request of a removed role: state %d, message \"%s\"", v->state,
		      v->state_message);
		protobuf_c_message_free_unpacked(&v->base, NULL);
		CHECK_MSG(nsigs_of(ci, id) == 0, "signed for a removed role");
		free(id);
	}

	qsc_close(ci);
	qsc_close(a1);
	qsc_close(a2);
	qsc_close(a3);
	EVP_PKEY_free(kci);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k1old);
	free(new_admin1_pem);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	if (check_failures) {
		fprintf(stderr, "%d check(s) failed\n", check_failures);
		return 1;
	}
	puts("all vote checks passed");
	return 0;
}
