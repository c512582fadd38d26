/*
 * abuse - hostile and malformed input against a running qsignd.
 *
 * usage: abuse URL HOME
 *   URL   the daemon's ipc:// URL
 *   HOME  a demo QSIGN_HOME (demo/<name>.key principal keys)
 * The daemon's policy must have: principals ci (requester of online role
 * ci-sign, rate limited by the test policy to 5/s burst 5), admin1 (admin,
 * not a requester of ci-sign), and quorum role release.
 *
 * Speaks the wire protocol directly (not through the client library), so it
 * can send what a correct client never would. After every refusal it checks
 * that a valid call still succeeds: a peer must never be able to stop the
 * daemon.
 */
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

#include "check.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"
#include "wire.h"

static const char *url, *home;

static nng_socket
dial(void)
{
	nng_socket s;
	int rv;

	if ((rv = nng_req0_open(&s)) != 0 || (rv = nng_dial(s, url, NULL, 0)) != 0) {
		fprintf(stderr, "dial %s: %s\n", url, nng_strerror(rv));
		exit(2);
	}
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	return s;
}

/* Send raw frame bytes, return the decoded Reply (NULL on transport error). */
static Qsign__V1__Reply *
raw_call(nng_socket s, const void *frame, size_t len)
{
	ProtobufCMessage *m = NULL;
	void *buf = NULL;
	size_t n = 0;
	int rv;

	if ((rv = nng_send(s, (void *)frame, len, 0)) != 0 ||
	    (rv = nng_recv(s, &buf, &n, NNG_FLAG_ALLOC)) != 0) {
		fprintf(stderr, "  (transport: %s)\n", nng_strerror(rv));
		return NULL;
	}
	if (qs_wire_unpack(&qsign__v1__reply__descriptor, buf, n, QS_MAX_FRAME, &m) != 0)
		m = NULL;
	nng_free(buf, n);
	return (Qsign__V1__Reply *)m;
}

static Qsign__V1__Reply *
call(nng_socket s, const char *method, const ProtobufCMessage *body, uint64_t deadline)
{
	Qsign__V1__Call c = QSIGN__V1__CALL__INIT;
	Qsign__V1__Reply *rep;
	uint8_t *b = NULL, *f = NULL;
	size_t bl = 0, fl = 0;

	if (body != NULL)
		qs_wire_pack(body, &b, &bl);
	c.method = (char *)method;
	c.body.data = b;
	c.body.len = bl;
	c.deadline_ms = deadline;
	c.call_id = 42;
	qs_wire_pack(&c.base, &f, &fl);
	rep = raw_call(s, f, fl);
	free(b);
	free(f);
	return rep;
}

static int
status_of(Qsign__V1__Reply *r)
{
	int st = r ? (int)r->status : -1;

	if (r != NULL) {
		if (r->status != 0)
			printf("  -> %s: %s\n", qs_status_name(r->status), r->message);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	return st;
}

static EVP_PKEY *
load_key(const char *name)
{
	char path[512];
	FILE *f;
	EVP_PKEY *k;

	snprintf(path, sizeof(path), "%s/demo/%s.key", home, name);
	if ((f = fopen(path, "r")) == NULL || (k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "cannot load %s\n", path);
		exit(2);
	}
	fclose(f);
	return k;
}

/* Get a challenge; returns it in ch and the server identity in id. */
static void
challenge(nng_socket s, uint8_t ch[32], char id[256])
{
	Qsign__V1__ChallengeRequest req = QSIGN__V1__CHALLENGE_REQUEST__INIT;
	Qsign__V1__Reply *r = call(s, QS_M_CHALLENGE, &req.base, 0);
	Qsign__V1__ChallengeResponse *cr = NULL;

	if (r == NULL || r->status != 0 ||
	    qs_wire_unpack(&qsign__v1__challenge_response__descriptor, r->body.data, r->body.len,
			   4096, (ProtobufCMessage **)&cr) != 0 ||
	    cr->challenge.len != 32) {
		fprintf(stderr, "challenge failed\n");
		exit(2);
	}
	memcpy(ch, cr->challenge.data, 32);
	snprintf(id, 256, "%s", cr->server_identity);
	protobuf_c_message_free_unpacked(&cr->base, NULL);
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* Authenticate as `as` signing with `key`; returns the status. The
 * challenge and signature used are copied out for replay tests. */
static int
auth(nng_socket s, const char *as, EVP_PKEY *key, uint8_t ch[32], uint8_t sig[128],
     size_t *sig_len)
{
	Qsign__V1__AuthenticateRequest req = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;
	char id[256];
	uint8_t *stmt = NULL;
	size_t stmt_len = 0;

	challenge(s, ch, id);
	if (qs_stmt_auth(id, as, ch, 32, &stmt, &stmt_len) != 0 ||
	    qs_sig_sign(key, stmt, stmt_len, sig, sig_len) != 0) {
		fprintf(stderr, "statement/sign failed: %s\n", qs_errdetail());
		exit(2);
	}
	free(stmt);
	req.principal = (char *)as;
	req.challenge.data = ch;
	req.challenge.len = 32;
	req.signature.data = sig;
	req.signature.len = *sig_len;
	return status_of(call(s, QS_M_AUTHENTICATE, &req.base, 0));
}

static int
replay_auth(nng_socket s, const char *as, const uint8_t ch[32], const uint8_t *sig, size_t sig_len)
{
	Qsign__V1__AuthenticateRequest req = QSIGN__V1__AUTHENTICATE_REQUEST__INIT;

	req.principal = (char *)as;
	req.challenge.data = (uint8_t *)ch;
	req.challenge.len = 32;
	req.signature.data = (uint8_t *)sig;
	req.signature.len = sig_len;
	return status_of(call(s, QS_M_AUTHENTICATE, &req.base, 0));
}

static int
sign_hash(nng_socket s, const char *role, int kind, const char *hash, const uint8_t *pl,
          size_t len, uint64_t deadline)
{
	Qsign__V1__SignRequest req = QSIGN__V1__SIGN_REQUEST__INIT;

	req.role = (char *)role;
	req.kind = kind;
	req.hash = (char *)(hash != NULL ? hash : "");
	req.payload.data = (uint8_t *)pl;
	req.payload.len = len;
	return status_of(call(s, QS_M_SIGN, &req.base, deadline));
}

static int
sign(nng_socket s, const char *role, int kind, const uint8_t *pl, size_t len, uint64_t deadline)
{
	return sign_hash(s, role, kind, NULL, pl, len, deadline);
}

/* A fresh, correctly authenticated connection signs once: the daemon is
 * still serving. Sleeps first so the test rate limit has refilled. */
static void
still_serving(const char *after)
{
	uint8_t ch[32], sig[128], dg[32] = {1, 2, 3};
	size_t sl;
	EVP_PKEY *k = load_key("ci");
	nng_socket s = dial();

	usleep(250 * 1000);
	CHECK_MSG(auth(s, "ci", k, ch, sig, &sl) == QS_STATUS_OK, "auth after %s", after);
	CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) == QS_STATUS_OK,
	      "daemon no longer signs after %s", after);
	nng_close(s);
	EVP_PKEY_free(k);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	EVP_PKEY *ci, *admin1;
	uint8_t ch[32], sig[128], dg[32] = {0};
	size_t sl;
	nng_socket s, s2;

	if (argc != 3) {
		fprintf(stderr, "usage: abuse URL HOME\n");
		return 2;
	}
	url = argv[1];
	home = argv[2];
	ci = load_key("ci");
	admin1 = load_key("admin1");
	still_serving("start");

	puts("garbage bytes as a frame -> INVALID_ARGUMENT");
	s = dial();
	CHECK_MSG(status_of(raw_call(s, "\xff\xff\xff\xff garbage", 12)) == QS_STATUS_INVALID_ARGUMENT,
	      "garbage frame");
	still_serving("garbage frame");

	puts("truncated protobuf -> INVALID_ARGUMENT");
	{
		Qsign__V1__Call c = QSIGN__V1__CALL__INIT;
		uint8_t *f = NULL;
		size_t fl = 0;
		c.method = QS_M_INFO;
		c.body.data = (uint8_t *)"0123456789abcdef";
		c.body.len = 16;
		qs_wire_pack(&c.base, &f, &fl);
		CHECK_MSG(status_of(raw_call(s, f, fl - 5)) == QS_STATUS_INVALID_ARGUMENT,
		      "truncated frame");
		free(f);
	}
	still_serving("truncated frame");

	puts("unknown method -> UNIMPLEMENTED");
	CHECK_MSG(status_of(call(s, "qsign.v1.Signer/Explode", NULL, 0)) == QS_STATUS_UNIMPLEMENTED,
	      "unknown method");

	puts("sign before authenticating -> UNAUTHENTICATED");
	CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_UNAUTHENTICATED,
	      "unauthenticated sign");

	puts("authenticate as ci with admin1's key -> UNAUTHENTICATED");
	CHECK_MSG(auth(s, "ci", admin1, ch, sig, &sl) == QS_STATUS_UNAUTHENTICATED, "wrong key");
	CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_UNAUTHENTICATED,
	      "wrong-key auth must not authenticate");

	puts("unknown principal -> UNAUTHENTICATED");
	CHECK_MSG(auth(s, "mallory", ci, ch, sig, &sl) == QS_STATUS_UNAUTHENTICATED,
	      "unknown principal");

	puts("malformed principal name -> INVALID_ARGUMENT");
	CHECK_MSG(auth(s, "ci", ci, ch, sig, &sl) == QS_STATUS_OK, "auth ok");
	CHECK_MSG(replay_auth(s, "bad name\n", ch, sig, sl) == QS_STATUS_INVALID_ARGUMENT,
	      "bad principal name");

	puts("replayed challenge on the same connection -> UNAUTHENTICATED");
	CHECK_MSG(replay_auth(s, "ci", ch, sig, sl) == QS_STATUS_UNAUTHENTICATED,
	      "replay on same connection");
	puts("replayed challenge on another connection -> UNAUTHENTICATED");
	s2 = dial();
	CHECK_MSG(replay_auth(s2, "ci", ch, sig, sl) == QS_STATUS_UNAUTHENTICATED,
	      "replay on another connection");
	CHECK_MSG(sign(s2, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_UNAUTHENTICATED,
	      "replayed auth must not authenticate");
	nng_close(s2);

	puts("role not allowed -> PERMISSION_DENIED");
	s2 = dial();
	CHECK_MSG(auth(s2, "admin1", admin1, ch, sig, &sl) == QS_STATUS_OK, "admin1 auth");
	CHECK_MSG(sign(s2, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_PERMISSION_DENIED,
	      "admin1 is not a requester of ci-sign");
	puts("quorum role through online Sign -> FAILED_PRECONDITION");
	CHECK_MSG(sign(s2, "release", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_FAILED_PRECONDITION,
	      "quorum role must not sign online");
	nng_close(s2);

	puts("unknown role -> NOT_FOUND");
	CHECK_MSG(sign(s, "no-such-role", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0) ==
		      QS_STATUS_NOT_FOUND,
	      "unknown role");
	puts("digest of wrong length -> INVALID_ARGUMENT");
	CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 31, 0) ==
		      QS_STATUS_INVALID_ARGUMENT,
	      "31-byte digest");
	puts("hash: unknown, or a digest of another hash's length -> INVALID_ARGUMENT");
	{
		uint8_t dg64[64] = {4, 5, 6};
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "md5", dg64, 16,
		                    0) == QS_STATUS_INVALID_ARGUMENT,
		          "hash md5");
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "SHA384", dg64,
		                    48, 0) == QS_STATUS_INVALID_ARGUMENT,
		          "hash SHA384 (not a name)");
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha384", dg64,
		                    32, 0) == QS_STATUS_INVALID_ARGUMENT,
		          "sha384 with a 32-byte digest");
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha256", dg64,
		                    48, 0) == QS_STATUS_INVALID_ARGUMENT,
		          "sha256 with a 48-byte digest");
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha512", dg64,
		                    48, 0) == QS_STATUS_INVALID_ARGUMENT,
		          "sha512 with a 48-byte digest");
		puts("Ed25519 with sha384 -> INVALID_ARGUMENT; with sha256 -> OK");
		CHECK_MSG(sign_hash(s, "ed-sign", QSIGN__V1__PAYLOAD_KIND__BLOB, "sha384",
		                    (const uint8_t *)"msg", 3, 0) == QS_STATUS_INVALID_ARGUMENT,
		          "Ed25519 with sha384");
		CHECK_MSG(sign_hash(s, "ed-sign", QSIGN__V1__PAYLOAD_KIND__BLOB, "sha256",
		                    (const uint8_t *)"msg", 3, 0) == QS_STATUS_OK,
		          "Ed25519 with sha256");
		puts("sha384 with a 48-byte digest -> OK");
		CHECK_MSG(sign_hash(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha384", dg64,
		                    48, 0) == QS_STATUS_OK,
		          "sha384 digest");
		puts("a role allowing sha256 only: sha384, sha512 -> PERMISSION_DENIED; sha256 -> OK");
		CHECK_MSG(sign_hash(s, "sha256-only", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha384", dg64,
		                    48, 0) == QS_STATUS_PERMISSION_DENIED,
		          "sha384 digest through a sha256-only role");
		CHECK_MSG(sign_hash(s, "sha256-only", QSIGN__V1__PAYLOAD_KIND__BLOB, "sha512",
		                    (const uint8_t *)"msg", 3, 0) == QS_STATUS_PERMISSION_DENIED,
		          "sha512 blob through a sha256-only role");
		CHECK_MSG(sign_hash(s, "sha256-only", QSIGN__V1__PAYLOAD_KIND__DIGEST, "sha256", dg64,
		                    32, 0) == QS_STATUS_OK,
		          "sha256 digest through a sha256-only role");
	}
	puts("unspecified payload kind -> INVALID_ARGUMENT");
	CHECK_MSG(sign(s, "ci-sign", 0, dg, 32, 0) == QS_STATUS_INVALID_ARGUMENT, "kind 0");
	puts("deadline already passed -> DEADLINE_EXCEEDED");
	CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, now_ms() - 1000) ==
		      QS_STATUS_DEADLINE_EXCEEDED,
	      "past deadline");
	puts("blob over the blob limit -> RESOURCE_EXHAUSTED");
	{
		size_t n = QS_MAX_BLOB + 1;
		uint8_t *big = calloc(1, n);
		CHECK_MSG(sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__BLOB, big, n, 0) ==
			      QS_STATUS_RESOURCE_EXHAUSTED,
		      "oversized blob");
		free(big);
	}
	still_serving("oversized blob");

	puts("rate limit (5/s, burst 5) -> RESOURCE_EXHAUSTED");
	{
		int ok = 0, limited = 0;
		usleep(1200 * 1000);
		for (int i = 0; i < 20; i++) {
			int st = sign(s, "ci-sign", QSIGN__V1__PAYLOAD_KIND__DIGEST, dg, 32, 0);
			ok += st == QS_STATUS_OK;
			limited += st == QS_STATUS_RESOURCE_EXHAUSTED;
		}
		printf("  %d signed, %d limited\n", ok, limited);
		CHECK_MSG(limited > 0 && ok >= 5 && ok <= 7, "rate limit: ok=%d limited=%d", ok, limited);
	}
	nng_close(s);
	usleep(1200 * 1000);

	puts("frame over the transport limit -> connection dropped, daemon serving");
	{
		size_t n = QS_MAX_FRAME + 4096;
		uint8_t *big = malloc(n);
		memset(big, 0x0a, n);
		s = dial();
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
		CHECK_MSG(raw_call(s, big, n) == NULL, "oversized frame must get no reply");
		nng_close(s);
		free(big);
	}
	still_serving("oversized frame");

	puts("raw garbage on the ipc socket (not even SP framing)");
	if (strncmp(url, "ipc://", 6) == 0) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", url + 6);
		CHECK_MSG(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
		      "raw connect");
		CHECK_MSG(write(fd, "GET / HTTP/1.0\r\n\r\n\x00\x01\x02", 21) == 21, "raw write");
		usleep(100 * 1000);
		close(fd);
	}
	still_serving("raw garbage");

	EVP_PKEY_free(ci);
	EVP_PKEY_free(admin1);
	nng_fini();
	if (check_failures) {
		fprintf(stderr, "%d check(s) failed\n", check_failures);
		return 1;
	}
	puts("all abuse checks passed");
	return 0;
}
