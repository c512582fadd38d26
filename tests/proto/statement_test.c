/* statement_test.c - the auth statement is byte-exact and refuses bad names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

/* Written out by hand: if this changes, every deployed client and daemon
 * disagree, so the change must be deliberate. */
static const char expected[] =
        "quorum-signer/v1 auth\n"
        "server qsignd.example:prod-1\n"
        "principal alice@ops\n"
        "challenge 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

int
main(void)
{
	uint8_t ch[QS_CHALLENGE_LEN], *out = NULL;
	size_t len = 0;
	char longname[QS_MAX_NAME + 2];

	for (size_t i = 0; i < sizeof(ch); i++)
		ch[i] = (uint8_t)i;

	CHECK_EQ(qs_stmt_auth("qsignd.example:prod-1", "alice@ops", ch, sizeof(ch), &out, &len), 0);
	CHECK_EQ(len, strlen(expected));
	CHECK(out != NULL && memcmp(out, expected, len) == 0);
	free(out);

	/* Names: printable, no spaces or newlines (they would let one field
	 * forge another line), bounded. */
	const char *bad[] = {"",       "al ice",   "alice\n", "alice\nprincipal root",
	                     "al/ice", "\xc3\xa9", "a\tb"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (uint8_t *)"sentinel";
		CHECK_EQ(qs_stmt_auth("server", bad[i], ch, sizeof(ch), &out, &len),
		         QS_ERR_INVALID);
		CHECK(out == NULL && len == 0);
		CHECK_EQ(qs_stmt_auth(bad[i], "alice", ch, sizeof(ch), &out, &len), QS_ERR_INVALID);
	}
	CHECK_EQ(qs_stmt_auth("server", NULL, ch, sizeof(ch), &out, &len), QS_ERR_INVALID);

	memset(longname, 'a', sizeof(longname));
	longname[QS_MAX_NAME] = '\0';
	CHECK_EQ(qs_stmt_auth("server", longname, ch, sizeof(ch), &out, &len), 0);
	free(out);
	longname[QS_MAX_NAME] = 'a';
	longname[QS_MAX_NAME + 1] = '\0';
	CHECK_EQ(qs_stmt_auth("server", longname, ch, sizeof(ch), &out, &len), QS_ERR_INVALID);

	/* The server statement, byte for byte; its fingerprint as OpenSSH
	 * prints one (unpadded base64 of SHA-256). */
	{
		static const char want[] =
		        "quorum-signer/v1 server\n"
		        "server qsignd.example:prod-1\n"
		        "challenge 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
		        "client-nonce "
		        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n";
		uint8_t nonce[QS_CHALLENGE_LEN];
		char fp[QS_FINGERPRINT_MAX];
		memset(nonce, 0xff, sizeof(nonce));
		CHECK_EQ(qs_stmt_server("qsignd.example:prod-1", ch, sizeof(ch), nonce, sizeof(nonce),
		                        &out, &len),
		         0);
		CHECK(out != NULL && len == strlen(want) && memcmp(out, want, len) == 0);
		free(out);
		CHECK_EQ(qs_stmt_server("qsignd.example:prod-1", ch, sizeof(ch), nonce, 0, &out, &len),
		         QS_ERR_INVALID);
		CHECK_EQ(qs_stmt_server("bad name", ch, sizeof(ch), nonce, 32, &out, &len),
		         QS_ERR_INVALID);
		/* SHA-256("abc") = ba7816bf..., unpadded base64 */
		CHECK_EQ(qs_key_fingerprint((const uint8_t *)"abc", 3, fp, sizeof(fp)), 0);
		CHECK_STR(fp, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
	}

	/* The challenge is exactly QS_CHALLENGE_LEN bytes. */
	CHECK_EQ(qs_stmt_auth("server", "alice", ch, sizeof(ch) - 1, &out, &len), QS_ERR_INVALID);
	CHECK_EQ(qs_stmt_auth("server", "alice", ch, 0, &out, &len), QS_ERR_INVALID);

	CHECK(qs_name_valid("ci-targets_1.x+y:z@w", QS_MAX_NAME));
	CHECK(!qs_name_valid("a", 0));

	/* Hash sets (a role's online.hashes) and digest lengths. */
	{
		char list[64];
		const char *names[3];
		CHECK_EQ(qs_hash_bit("sha256"), QS_HASH_SHA256);
		CHECK_EQ(qs_hash_bit(""), QS_HASH_SHA256);
		CHECK_EQ(qs_hash_bit("sha384"), QS_HASH_SHA384);
		CHECK_EQ(qs_hash_bit("sha512"), QS_HASH_SHA512);
		CHECK_EQ(qs_hash_bit("SHA384"), 0);
		CHECK_EQ(qs_hash_bit("md5"), 0);
		CHECK_STR(qs_hash_of_len(48), "sha384");
		CHECK(qs_hash_of_len(20) == NULL);
		CHECK_EQ(qs_hash_names(QS_HASH_SHA256 | QS_HASH_SHA512, names, 3), 2);
		CHECK_STR(names[1], "sha512");
		qs_hash_list(QS_HASHES_ALL, list, sizeof(list));
		CHECK_STR(list, "sha256, sha384, sha512");
		qs_hash_list(QS_HASHES_ALL, list, 10);
		CHECK_STR(list, "sha256, s");
		qs_hash_list(0, list, sizeof(list));
		CHECK_STR(list, "");
	}
	/* The approval statement: a SHA-256 request's has the bytes it always
	 * had; another hash adds its line; an unknown hash is refused. */
	{
		uint8_t dg[32] = {0}, *a = NULL, *b = NULL, *c = NULL;
		size_t al = 0, bl = 0, cl = 0;
		CHECK_EQ(qs_stmt_approval("srv", "r1", "release", "blob", dg, 1, 7, &a, &al), 0);
		CHECK_EQ(qs_stmt_approval_hash("srv", "r1", "release", "blob", dg, "sha256", 1, 7, &b,
		                               &bl),
		         0);
		CHECK(al == bl && memcmp(a, b, al) == 0);
		CHECK(al > 0 && strstr((const char *)a, "signature-hash") == NULL);
		free(b);
		b = NULL;
		CHECK_EQ(qs_stmt_approval_hash("srv", "r1", "release", "blob", dg, "sha384", 1, 7, &b,
		                               &bl),
		         0);
		CHECK(b != NULL && strstr((const char *)b, "\nsignature-hash sha384\ndecision approve\n") !=
		                           NULL);
		CHECK_EQ(qs_stmt_approval_hash("srv", "r1", "release", "blob", dg, "md5", 1, 7, &c, &cl),
		         QS_ERR_INVALID);
		CHECK(c == NULL);
		free(a);
		free(b);
	}
	/* A quorum request's digest: a digest payload of the hash's length,
	 * a blob hashed with it. */
	{
		uint8_t dg[QS_DIGEST_MAX], in[48] = {1};
		size_t n = 0;
		CHECK_EQ(qs_request_digest("sha384", 1, in, 48, dg, &n), 0);
		CHECK(n == 48 && memcmp(dg, in, 48) == 0);
		CHECK_EQ(qs_request_digest("sha384", 1, in, 32, dg, &n), QS_ERR_INVALID);
		CHECK_EQ(qs_request_digest("sha512", 0, in, 3, dg, &n), 0);
		CHECK_EQ(n, 64);
		CHECK_EQ(qs_request_digest("md5", 0, in, 3, dg, &n), QS_ERR_INVALID);
	}
	CHECK_DONE();
}
