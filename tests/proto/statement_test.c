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

	/* The challenge is exactly QS_CHALLENGE_LEN bytes. */
	CHECK_EQ(qs_stmt_auth("server", "alice", ch, sizeof(ch) - 1, &out, &len), QS_ERR_INVALID);
	CHECK_EQ(qs_stmt_auth("server", "alice", ch, 0, &out, &len), QS_ERR_INVALID);

	CHECK(qs_name_valid("ci-targets_1.x+y:z@w", QS_MAX_NAME));
	CHECK(!qs_name_valid("a", 0));
	CHECK_DONE();
}
