/*
 * ecdsa_der_test - hsm_ecdsa_raw_to_der against OpenSSL's decoder:
 * high bits set (0x00 pad), leading zeros (stripped), zero halves, random
 * values, and refused lengths. No token needed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/rand.h>

#include "hsm.h"
#include "qs_err.h"

#include "check.h"

/* Convert, decode with d2i_ECDSA_SIG, compare r and s with the input, and
 * check that the encoding is exactly what i2d produces (minimal DER). */
static size_t
roundtrip(const uint8_t *raw, size_t raw_len)
{
	uint8_t der[2 * 66 + 9], back[66];
	const unsigned char *p = der;
	unsigned char *re = NULL;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	size_t der_len, half = raw_len / 2;
	int re_len;

	REQUIRE(hsm_ecdsa_raw_to_der(raw, raw_len, der, &der_len) == 0);
	REQUIRE(der_len <= raw_len + 9);
	REQUIRE((sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL);
	REQUIRE(p == der + der_len); /* no trailing bytes */
	ECDSA_SIG_get0(sig, &r, &s);
	REQUIRE(BN_bn2binpad(r, back, (int)half) == (int)half);
	REQUIRE(memcmp(back, raw, half) == 0);
	REQUIRE(BN_bn2binpad(s, back, (int)half) == (int)half);
	REQUIRE(memcmp(back, raw + half, half) == 0);
	REQUIRE((re_len = i2d_ECDSA_SIG(sig, &re)) > 0);
	REQUIRE((size_t)re_len == der_len && memcmp(re, der, der_len) == 0);
	OPENSSL_free(re);
	ECDSA_SIG_free(sig);
	return der_len;
}

int
main(void)
{
	uint8_t raw[132], der[200];
	size_t der_len;

	/* high bit set in both halves: each INTEGER gets a 0x00 pad */
	memset(raw, 0xff, 64);
	REQUIRE(roundtrip(raw, 64) == 2 + 2 * (2 + 33));
	{
		uint8_t d[72];
		size_t n;

		REQUIRE(hsm_ecdsa_raw_to_der(raw, 64, d, &n) == 0);
		REQUIRE(d[0] == 0x30 && d[1] == 70 && d[2] == 0x02 && d[3] == 33 && d[4] == 0x00 &&
		      d[5] == 0xff);
	}
	/* leading zeros: stripped down to the minimal encoding */
	memset(raw, 0, 64);
	raw[31] = 0x01;
	raw[32 + 5] = 0x7f;
	REQUIRE(roundtrip(raw, 64) == 2 + (2 + 1) + (2 + 27));
	/* a zero byte followed by a high-bit byte: strip, then pad again */
	memset(raw, 0, 64);
	raw[1] = 0x80;
	raw[33] = 0x80;
	REQUIRE(roundtrip(raw, 64) == 2 + 2 * (2 + 32));
	/* both halves zero: INTEGER 0 is 02 01 00 */
	memset(raw, 0, 64);
	REQUIRE(roundtrip(raw, 64) == 2 + 2 * 3);
	/* low half small, high half full: mixed */
	memset(raw, 0, 64);
	raw[31] = 0x80;
	memset(raw + 32, 0x12, 32);
	REQUIRE(roundtrip(raw, 64) == 2 + (2 + 2) + (2 + 32));
	/* P-384 and P-521 sizes; P-521 needs a long-form SEQUENCE length */
	memset(raw, 0xff, 132);
	REQUIRE(roundtrip(raw, 96) == 2 + 2 * (2 + 49));
	REQUIRE(roundtrip(raw, 132) == 3 + 2 * (2 + 67));
	/* random values */
	for (int i = 0; i < 2000; i++) {
		REQUIRE(RAND_bytes(raw, 64) == 1);
		if (i % 3 == 0)
			raw[0] = 0;
		if (i % 5 == 0)
			raw[32] = 0x80;
		roundtrip(raw, 64);
		/* P-384: 48-byte coordinates */
		REQUIRE(RAND_bytes(raw, 96) == 1);
		if (i % 7 == 0)
			raw[48] = 0;
		roundtrip(raw, 96);
	}
	/* refused: odd, empty, too long */
	REQUIRE(hsm_ecdsa_raw_to_der(raw, 63, der, &der_len) == QS_ERR_INVALID);
	REQUIRE(hsm_ecdsa_raw_to_der(raw, 0, der, &der_len) == QS_ERR_INVALID);
	REQUIRE(hsm_ecdsa_raw_to_der(raw, 134, der, &der_len) == QS_ERR_INVALID);
	REQUIRE(hsm_ecdsa_raw_to_der(NULL, 64, der, &der_len) == QS_ERR_INVALID);
	printf("ecdsa_der_test: all checks passed\n");
	return 0;
}
