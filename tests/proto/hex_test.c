/* hex_test.c - strict hex decoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qs_err.h"
#include "statement.h"

int
main(void)
{
	uint8_t out[8], all[256];
	size_t n = 99;
	char *h;

	CHECK_EQ(qs_unhex("00ff10Ab", out, sizeof(out), &n), 0);
	CHECK_EQ(n, 4);
	CHECK(out[0] == 0x00 && out[1] == 0xff && out[2] == 0x10 && out[3] == 0xab);

	CHECK_EQ(qs_unhex("", out, sizeof(out), &n), 0);
	CHECK_EQ(n, 0);

	const char *bad[] = {
	        "0",                    /* odd length */
	        "abc",                  /* odd length */
	        "0g",                   /* not hex */
	        "zz",                   /* not hex */
	        "00 1",                 /* space */
	        " 001",                 /* leading space */
	        "0011\n0",              /* newline */
	        "0x00",                 /* prefix */
	        "-1",                   /* sign */
	        "00112233445566778899", /* 10 bytes > cap 8 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 99;
		CHECK_EQ(qs_unhex(bad[i], out, sizeof(out), &n), QS_ERR_INVALID);
		CHECK_EQ(n, 0);
	}
	/* Exactly at the cap is fine, one over is not. */
	CHECK_EQ(qs_unhex("0011223344556677", out, sizeof(out), &n), 0);
	CHECK_EQ(n, 8);
	CHECK_EQ(qs_unhex("001122334455667788", out, sizeof(out), &n), QS_ERR_INVALID);

	/* Round trip of every byte value; output is lower case. */
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (uint8_t)i;
	h = qs_hex(all, sizeof(all));
	CHECK(h != NULL && strlen(h) == 512);
	CHECK(h != NULL && strncmp(h, "000102", 6) == 0 && strcmp(h + 506, "fdfeff") == 0);
	{
		uint8_t back[256];
		CHECK_EQ(qs_unhex(h, back, sizeof(back), &n), 0);
		CHECK(n == 256 && memcmp(back, all, 256) == 0);
	}
	{
		/* into a caller's buffer: the same text, NUL-terminated, nothing past it */
		char into[2 * 256 + 2];
		memset(into, 'x', sizeof(into));
		qs_hex_into(all, sizeof(all), into);
		CHECK(h != NULL && strcmp(into, h) == 0);
		CHECK(into[sizeof(into) - 1] == 'x');
	}
	free(h);
	h = qs_hex(all, 0);
	CHECK_STR(h, "");
	free(h);
	CHECK_DONE();
}
