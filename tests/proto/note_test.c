/*
 * note_test.c - signed notes and checkpoints: round trips with Ed25519 and
 * ECDSA P-256 keys, every tampering refused, strict parsing (garbage in).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"
#include "merkle.h"
#include "note.h"
#include "qs_err.h"
#include "qs_limits.h"

static EVP_PKEY *
keygen(const char *alg)
{
	EVP_PKEY *k = NULL;

	if (strcmp(alg, "EC") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		k = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	if (k == NULL)
		abort();
	return k;
}

/* A callback that signs with the wrong key: qs_note_sign must notice. */
static int
sign_other(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	return qs_note_sign_evp(arg, msg, len, sig, sig_len);
}

static int
sign_fail(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	(void)arg, (void)msg, (void)len, (void)sig, (void)sig_len;
	return qs_fail(QS_ERR_PKCS11, "token gone");
}

/* Open must refuse note (a NUL-terminated string) with error want. */
static int
refuses(const char *note, size_t len, const char *name, EVP_PKEY *pub, int want)
{
	char *text = NULL;
	size_t tl = 0;
	int r = qs_note_open(note, len, name, pub, &text, &tl);

	free(text);
	if (r != want)
		fprintf(stderr, "  expected %d, got %d (%s)\n", want, r, qs_errdetail());
	return r == want && text == NULL;
}

static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	if (p == NULL)
		abort();
	if (asprintf(&out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)) < 0)
		abort();
	return out;
}

static void
round_trip(const char *alg, uint8_t want_type)
{
	EVP_PKEY *k = keygen(alg), *other = keygen(alg);
	struct qs_note_signer s, bad;
	struct qs_checkpoint cp;
	qs_hash root;
	char *text = NULL, *note = NULL, *got = NULL, *t;
	size_t tl = 0, nl = 0, gl = 0;
	const char *name = "audit.example/log1";

	for (int i = 0; i < 32; i++)
		root[i] = (uint8_t)(i * 7 + 1);
	CHECK_EQ(qs_note_signer_init(&s, name, k, qs_note_sign_evp, k), 0);
	CHECK_EQ(s.type, want_type);
	CHECK_EQ(qs_checkpoint_text(name, 20852163, root, &text, &tl), 0);
	CHECK_EQ(qs_note_sign(&s, text, tl, &note, &nl), 0);
	CHECK_EQ(nl, strlen(note));
	CHECK(strncmp(note, text, tl) == 0);
	CHECK(strncmp(note + tl, "\n\xe2\x80\x94 audit.example/log1 ", 24) == 0);

	CHECK_EQ(qs_note_open(note, nl, name, k, &got, &gl), 0);
	CHECK_EQ(gl, tl);
	CHECK_STR(got, text);
	CHECK_EQ(qs_checkpoint_parse(got, gl, name, &cp), 0);
	CHECK_STR(cp.origin, name);
	CHECK_EQ(cp.size, 20852163);
	CHECK(memcmp(cp.root, root, 32) == 0);
	CHECK_EQ(qs_checkpoint_parse(got, gl, "other.example/log", &cp), QS_ERR_INVALID);
	free(got);

	/* tampered size, root, origin: the signature no longer verifies */
	t = replace(note, "20852163", "20852164");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_BADSIG));
	free(t);
	t = strdup(note);
	t[tl - 3] = t[tl - 3] == 'A' ? 'B' : 'A'; /* inside the base64 root */
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_BADSIG));
	free(t);
	t = replace(note, "audit.example/log1\n", "audit.example/log2\n");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_BADSIG));
	free(t);
	/* tampered signature bytes (every position of the base64 part) */
	for (size_t i = tl + 24; i < nl - 1; i++) {
		t = strdup(note);
		t[i] = t[i] == 'Q' ? 'R' : 'Q';
		char *g = NULL;
		size_t n = 0;
		CHECK(qs_note_open(t, nl, name, k, &g, &n) != 0);
		free(g);
		free(t);
	}
	/* wrong key: same name, other key -> unknown key ID -> no signature */
	CHECK(refuses(note, nl, name, other, QS_ERR_BADSIG));
	/* wrong name with the right key */
	CHECK(refuses(note, nl, "audit.example/log2", k, QS_ERR_BADSIG));

	/* an extra unknown signature line is ignored (signed-note requires it) */
	if (asprintf(&t, "%s\xe2\x80\x94 witness.example/w1 AAAAAAAAAAAA\n", note) < 0)
		abort();
	CHECK_EQ(qs_note_open(t, strlen(t), name, k, &got, &gl), 0);
	free(got);
	free(t);

	/* a signer whose callback signs with another key is caught at once */
	CHECK_EQ(qs_note_signer_init(&bad, name, k, sign_other, other), 0);
	CHECK_EQ(qs_note_sign(&bad, text, tl, &t, &gl), QS_ERR_BADSIG);
	CHECK(t == NULL);
	CHECK_EQ(qs_note_signer_init(&bad, name, k, sign_fail, NULL), 0);
	CHECK_EQ(qs_note_sign(&bad, text, tl, &t, &gl), QS_ERR_PKCS11);

	free(text);
	free(note);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void
garbage(void)
{
	EVP_PKEY *k = keygen("ED25519");
	struct qs_note_signer s;
	struct qs_checkpoint cp;
	qs_hash root = {0};
	char *text = NULL, *note = NULL, *t, *big;
	size_t tl = 0, nl = 0;
	const char *name = "log.example";

	CHECK_EQ(qs_note_signer_init(&s, name, k, qs_note_sign_evp, k), 0);
	CHECK_EQ(qs_checkpoint_text(name, 0, root, &text, &tl), 0);
	CHECK_STR(text, "log.example\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
	CHECK_EQ(qs_note_sign(&s, text, tl, &note, &nl), 0);

	/* missing final newline */
	CHECK(refuses(note, nl - 1, name, k, QS_ERR_INVALID));
	/* trailing garbage after the signature line */
	if (asprintf(&t, "%sgarbage\n", note) < 0)
		abort();
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	/* a trailing blank line leaves no signatures */
	if (asprintf(&t, "%s\n", note) < 0)
		abort();
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	/* no blank line at all */
	CHECK(refuses(text, tl, name, k, QS_ERR_INVALID));
	/* control characters in the text */
	t = replace(note, "log.example\n0", "log.exa\tmple\n0");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "log.example\n0", "log.exa\rmple\n0");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = strdup(note);
	t[3] = '\0';
	CHECK(refuses(t, nl, name, k, QS_ERR_INVALID));
	free(t);
	/* invalid UTF-8 (overlong '/', lone continuation, surrogate) */
	t = replace(note, "log.example\n0", "log\xc0\xafxample\n0");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "log.example\n0", "log\x80xample\n0");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "log.example\n0", "log\xed\xa0\x80xample\n0");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	/* hyphen instead of em dash; no space; bad base64; non-canonical base64 */
	t = replace(note, "\xe2\x80\x94 ", "- ");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "\xe2\x80\x94 ", "\xe2\x80\x94");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "log.example ", "log.example AB*");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	t = replace(note, "log.example ", "log.example  ");
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	if (asprintf(&t, "%s\xe2\x80\x94 other AB==\n", note) < 0) /* 'B' leaves bits set */
		abort();
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	if (asprintf(&t, "%s\xe2\x80\x94 other AAAA\n", note) < 0) /* 3 bytes: < 4 + 1 */
		abort();
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	if (asprintf(&t, "%s\xe2\x80\x94 a+b AAAAAAAA\n", note) < 0) /* '+' in a name */
		abort();
	CHECK(refuses(t, strlen(t), name, k, QS_ERR_INVALID));
	free(t);
	/* too many signature lines, too big */
	big = strdup(note);
	for (int i = 0; i < QS_MAX_NOTE_SIGS; i++) {
		if (asprintf(&t, "%s\xe2\x80\x94 w%d AAAAAAAA\n", big, i) < 0)
			abort();
		free(big);
		big = t;
	}
	CHECK(refuses(big, strlen(big), name, k, QS_ERR_INVALID));
	free(big);
	big = calloc(1, QS_MAX_NOTE + 2);
	memset(big, 'a', QS_MAX_NOTE);
	big[QS_MAX_NOTE] = '\n';
	CHECK(refuses(big, QS_MAX_NOTE + 1, name, k, QS_ERR_INVALID));
	free(big);

	/* checkpoint bodies */
	CHECK_EQ(qs_checkpoint_parse(text, tl, NULL, &cp), 0);
	CHECK_EQ(qs_checkpoint_parse("o\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 47,
	                             NULL, &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_parse("o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 47,
	                             NULL, &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_parse("o\n18446744073709551616\n"
	                             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
	                             68, NULL, &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_parse("o\n18446744073709551615\n"
	                             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
	                             68, NULL, &cp),
	         0);
	CHECK_EQ(cp.size, UINT64_MAX);
	CHECK_EQ(qs_checkpoint_parse("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n", 46,
	                             NULL, &cp),
	         QS_ERR_INVALID); /* 31 bytes */
	CHECK_EQ(qs_checkpoint_parse("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n",
	                             50, NULL, &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_parse("\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 46,
	                             NULL, &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_parse("o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 45, NULL,
	                             &cp),
	         QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_text("has space", 1, root, &t, &tl), QS_ERR_INVALID);
	CHECK_EQ(qs_checkpoint_text("a+b", 1, root, &t, &tl), QS_ERR_INVALID);
	CHECK_EQ(qs_note_signer_init(&s, "bad name", k, qs_note_sign_evp, k), QS_ERR_INVALID);

	/* other key types are refused as note keys */
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	CHECK_EQ(qs_note_signer_init(&s, name, p384, qs_note_sign_evp, p384), QS_ERR_INVALID);
	EVP_PKEY_free(p384);

	free(text);
	free(note);
	EVP_PKEY_free(k);
}

/* Known-answer key IDs, computed independently (see note_openssl.sh for a
 * check with sha256sum): Ed25519 with the RFC 8032 test 1 key. */
static void
key_ids(void)
{
	static const uint8_t pub[32] = {0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7,
	                                0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
	                                0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25,
	                                0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a};
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
	uint8_t type = 0, in[64];
	uint32_t id = 0;
	qs_hash h;

	CHECK_EQ(qs_note_key_id("example.com/key", k, &type, &id), 0);
	CHECK_EQ(type, QS_NOTE_ED25519);
	/* SHA-256("example.com/key" "\n" 0x01 pub)[:4], computed here the slow way */
	memcpy(in, "example.com/key\n\x01", 17);
	memcpy(in + 17, pub, 32);
	EVP_Digest(in, 49, h, NULL, EVP_sha256(), NULL);
	CHECK_EQ(id, (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3]);
	EVP_PKEY_free(k);
}

int
main(void)
{
	round_trip("ED25519", QS_NOTE_ED25519);
	round_trip("EC", QS_NOTE_ECDSA);
	garbage();
	key_ids();
	CHECK_DONE();
}
