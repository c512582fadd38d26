/*
 * tuf_meta_test.c - canonical JSON (OLPC) against the reference
 * implementation's vectors, keyids of the vector keys, expiry times, the
 * targets-map checker, the TUF payload kinds, and DER encoding of raw
 * ECDSA signatures (high bit, leading zeros) verified as TUF signatures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "cjson.h"
#include "hsm.h"
#include "qs_err.h"
#include "statement.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

static char *
canon_of(const char *text)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	char *out = NULL;
	size_t len;

	if (j == NULL || qs_cjson_encode(j, &out, &len) != 0)
		out = NULL;
	json_decref(j);
	return out;
}

static void
test_vectors(const char *path)
{
	json_error_t e;
	json_t *v = json_load_file(path, 0, &e), *x;
	size_t i;

	CHECK(v != NULL);
	json_array_foreach(json_object_get(v, "canonical"), i, x)
	{
		char *got = canon_of(json_string_value(json_object_get(x, "input_json")));
		CHECK_STR(got, json_string_value(json_object_get(x, "canonical_utf8")));
		free(got);
	}
	CHECK(i == 3);
	json_array_foreach(json_object_get(v, "keys"), i, x)
	{
		char kid[65];
		CHECK_EQ(tuf_keyid(json_object_get(x, "key_object"), kid), 0);
		CHECK_STR(kid, json_string_value(json_object_get(x, "keyid")));
	}
	json_decref(v);
}

static void
test_canonical(void)
{
	char *s;
	json_t *j;
	size_t len;

	/* nested objects sorted at every level, arrays keep their order */
	s = canon_of("{\"z\":{\"b\":[{\"d\":1,\"c\":2}],\"a\":{}},\"a\":[]}");
	CHECK_STR(s, "{\"a\":[],\"z\":{\"a\":{},\"b\":[{\"c\":2,\"d\":1}]}}");
	free(s);
	/* unicode raw, keys sorted by UTF-8 bytes (code points) */
	s = canon_of("{\"\\u00e9\":1,\"z\":2,\"\\u2713\":\"\\u2713\"}");
	CHECK_STR(s, "{\"z\":2,\"\xc3\xa9\":1,\"\xe2\x9c\x93\":\"\xe2\x9c\x93\"}");
	free(s);
	/* only quote and backslash escaped; control characters raw */
	s = canon_of("[\"a\\\"b\\\\c\\n\\u0001/\"]");
	CHECK_STR(s, "[\"a\\\"b\\\\c\n\x01/\"]");
	free(s);
	/* large integers, negative */
	s = canon_of("[9223372036854775807,-9223372036854775807,0]");
	CHECK_STR(s, "[9223372036854775807,-9223372036854775807,0]");
	free(s);
	/* floats refused, also nested */
	j = json_loads("{\"a\":[1,{\"b\":1.5}]}", 0, NULL);
	s = NULL;
	CHECK_EQ(qs_cjson_encode(j, &s, &len), QS_ERR_INVALID);
	CHECK(s == NULL);
	json_decref(j);
	/* embedded NUL refused */
	j = json_stringn("a\0b", 3);
	CHECK_EQ(qs_cjson_encode(j, &s, &len), QS_ERR_INVALID);
	json_decref(j);
	/* too deep */
	{
		json_t *deep = json_array();
		for (int i = 0; i < QS_CJSON_MAX_DEPTH + 2; i++) {
			json_t *outer = json_array();
			json_array_append_new(outer, deep);
			deep = outer;
		}
		CHECK_EQ(qs_cjson_encode(deep, &s, &len), QS_ERR_INVALID);
		json_decref(deep);
	}
	s = canon_of("true");
	CHECK_STR(s, "true");
	free(s);
}

/* qs_cjson_decode: canonical bytes only (the signer helpers' reader). */
static void
test_canonical_decode(void)
{
	static const char pem[] = "{\"a\":\"-----BEGIN\nX\n\",\"b\":\"q\\\"\\\\\",\"c\":[1,true,null]}";
	static const char *const bad[] = {
		"{\"b\":1,\"a\":2}",         /* keys out of order */
		"{ \"a\":1}",                 /* whitespace */
		"{\"a\":1,\"a\":1}",         /* a duplicate key */
		"{\"a\":\"x\\ny\"}",       /* a newline escaped: canonical writes it raw */
		"{\"a\":1.5}",                /* a real */
		"{\"a\":1",                   /* cut */
		"{\"a\":\"\\u0041\"}",     /* an escape canonical JSON does not write */
	};
	json_t *v = NULL;

	CHECK_EQ(qs_cjson_decode(pem, strlen(pem), &v), 0);
	CHECK_STR(json_string_value(json_object_get(v, "a")), "-----BEGIN\nX\n");
	CHECK_STR(json_string_value(json_object_get(v, "b")), "q\"\\");
	json_decref(v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = NULL;
		CHECK_EQ(qs_cjson_decode(bad[i], strlen(bad[i]), &v), QS_ERR_INVALID);
		CHECK(v == NULL);
	}
	CHECK_EQ(qs_cjson_decode("{\"a\":\"\0\"}", 8, &v), QS_ERR_INVALID);
}

static void
test_time(void)
{
	char b[TUF_TIME_LEN];
	int64_t t;

	CHECK_EQ(tuf_time_format(1893456000, b), 0);
	CHECK_STR(b, "2030-01-01T00:00:00Z");
	CHECK_EQ(tuf_time_parse("2030-01-01T00:00:00Z", &t), 0);
	CHECK_EQ(t, 1893456000);
	CHECK_EQ(tuf_time_parse("2030-02-30T00:00:00Z", &t), QS_ERR_INVALID);
	CHECK_EQ(tuf_time_parse("2030-01-01T00:00:00", &t), QS_ERR_INVALID);
	CHECK_EQ(tuf_time_parse("2030-01-01 00:00:00Z", &t), QS_ERR_INVALID);
	CHECK_EQ(tuf_time_parse("2030-01-01T00:00:00+00:00", &t), QS_ERR_INVALID);
	CHECK_EQ(tuf_time_parse(NULL, &t), QS_ERR_INVALID);
}

static int
targets_ok(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	int r = j == NULL ? -1 : tuf_targets_check(j);

	json_decref(j);
	return r;
}

static void
test_targets(void)
{
	const char *h =
	        "\"hashes\":{\"sha256\":\"00112233445566778899aabbccddeeff00112233445566778899aab"
	        "bccddeeff\"}";
	char buf[512];

	snprintf(buf, sizeof(buf), "{\"a/b.bin\":{\"length\":3,%s,\"custom\":{\"x\":1}}}", h);
	CHECK_EQ(targets_ok(buf), 0);
	CHECK_EQ(targets_ok("{}"), 0);
	snprintf(buf, sizeof(buf), "{\"../x\":{\"length\":3,%s}}", h);
	CHECK_EQ(targets_ok(buf), QS_ERR_INVALID);
	snprintf(buf, sizeof(buf), "{\"/x\":{\"length\":3,%s}}", h);
	CHECK_EQ(targets_ok(buf), QS_ERR_INVALID);
	snprintf(buf, sizeof(buf), "{\"a//b\":{\"length\":3,%s}}", h);
	CHECK_EQ(targets_ok(buf), QS_ERR_INVALID);
	snprintf(buf, sizeof(buf), "{\"x\":{\"length\":-1,%s}}", h);
	CHECK_EQ(targets_ok(buf), QS_ERR_INVALID);
	snprintf(buf, sizeof(buf), "{\"x\":{\"length\":1,%s,\"extra\":1}}", h);
	CHECK_EQ(targets_ok(buf), QS_ERR_INVALID);
	CHECK_EQ(targets_ok("{\"x\":{\"length\":1,\"hashes\":{\"sha256\":\"00\"}}}"),
	         QS_ERR_INVALID);
	CHECK_EQ(targets_ok("[]"), QS_ERR_INVALID);
}

/* PEM of a fresh EC key on curve nid, malloc'd. */
static char *
ec_pem(int nid)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", OBJ_nid2sn(nid));
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	CHECK(pk != NULL && b != NULL && PEM_write_bio_PUBKEY(b, pk) == 1);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(pk);
	return out;
}

static void
test_external_keys(void)
{
	char *p256 = ec_pem(NID_X9_62_prime256v1), *p384 = ec_pem(NID_secp384r1), *norm = NULL,
	     *again = NULL, *crlf, *pl, kid1[65], kid2[65];
	json_t *k, *j = NULL;
	size_t n = 0;

	/* Normalising is idempotent and keeps the keyid of the key object. */
	CHECK_EQ(tuf_pem_normalize(p256, &norm), 0);
	CHECK_EQ(tuf_pem_normalize(norm, &again), 0);
	CHECK(strcmp(norm, again) == 0);
	CHECK_EQ(tuf_keyid_pem(norm, kid1), 0);
	k = tuf_key_ecdsa(norm);
	CHECK_EQ(tuf_keyid(k, kid2), 0);
	CHECK(strcmp(kid1, kid2) == 0);
	json_decref(k);
	free(again);
	/* A pasted PEM with CRLF line ends is the same key, the same keyid. */
	crlf = calloc(2 * strlen(p256) + 1, 1);
	for (const char *c = p256; *c != '\0'; c++) {
		if (*c == '\n')
			crlf[n++] = '\r';
		crlf[n++] = *c;
	}
	CHECK_EQ(tuf_pem_normalize(crlf, &again), 0);
	CHECK(again != NULL && strcmp(again, norm) == 0);
	free(again);
	free(crlf);
	/* Only P-256; nothing that is not a key. */
	again = NULL;
	CHECK_EQ(tuf_pem_normalize(p384, &again), QS_ERR_INVALID);
	CHECK(again == NULL);
	CHECK_EQ(tuf_pem_normalize("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
	                           &again),
	         QS_ERR_INVALID);
	CHECK_EQ(tuf_pem_normalize(NULL, &again), QS_ERR_INVALID);
	/* add-key with an external key: a valid P-256 PEM only. */
	k = json_pack("{s:s, s:s, s:i, s:{s:s, s:s, s:s}}", "op", "add-key", "role", "root",
	              "base_version", 2, "external", "name", "alice", "holder", "admin1",
	              "public_key", p256);
	pl = json_dumps(k, JSON_COMPACT);
	CHECK_EQ(tuf_payload_parse("tuf-root", (const uint8_t *)pl, strlen(pl), &j), 0);
	json_decref(j);
	free(pl);
	json_object_set_new(json_object_get(k, "external"), "public_key", json_string(p384));
	pl = json_dumps(k, JSON_COMPACT);
	j = NULL;
	CHECK_EQ(tuf_payload_parse("tuf-root", (const uint8_t *)pl, strlen(pl), &j), QS_ERR_INVALID);
	CHECK(j == NULL);
	free(pl);
	json_object_set_new(json_object_get(k, "external"), "public_key", json_string(p256));
	json_object_set_new(json_object_get(k, "external"), "holder", json_string("bad name!"));
	pl = json_dumps(k, JSON_COMPACT);
	CHECK_EQ(tuf_payload_parse("tuf-root", (const uint8_t *)pl, strlen(pl), &j), QS_ERR_INVALID);
	free(pl);
	json_decref(k);
	free(norm);
	free(p256);
	free(p384);
	{
		/* Ed25519: the hex public key in the key object, raw signatures
		 * over the message; a flipped bit does not verify. */
		EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		BIO *b = BIO_new(BIO_s_mem());
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		uint8_t raw[32], sig[64];
		size_t rl = sizeof(raw), sl = sizeof(sig);
		const uint8_t msg[] = "{\"_type\":\"root\"}";
		char *data, *pem, *hex, *rawhex;
		json_t *ko;
		long plen;
		CHECK(pk != NULL && b != NULL && ctx != NULL && PEM_write_bio_PUBKEY(b, pk) == 1);
		plen = BIO_get_mem_data(b, &data);
		pem = strndup(data, (size_t)plen);
		ko = tuf_key_from_pem(pem);
		CHECK(ko != NULL);
		CHECK(strcmp(json_string_value(json_object_get(ko, "keytype")), "ed25519") == 0);
		CHECK_EQ(EVP_PKEY_get_raw_public_key(pk, raw, &rl), 1);
		rawhex = qs_hex(raw, 32);
		CHECK(strcmp(json_string_value(json_object_get(json_object_get(ko, "keyval"),
		                                               "public")),
		             rawhex) == 0);
		CHECK_EQ(EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk), 1);
		CHECK_EQ(EVP_DigestSign(ctx, sig, &sl, msg, sizeof(msg) - 1), 1);
		hex = qs_hex(sig, sl);
		CHECK_EQ(tuf_verify_key(ko, msg, sizeof(msg) - 1, hex), 0);
		CHECK_EQ(tuf_verify_ecdsa(pem, msg, sizeof(msg) - 1, hex), 0);
		hex[0] = hex[0] == '0' ? '1' : '0';
		CHECK_EQ(tuf_verify_key(ko, msg, sizeof(msg) - 1, hex), QS_ERR_BADSIG);
		CHECK_EQ(tuf_keyid_pem(pem, kid1), 0);
		CHECK_EQ(tuf_keyid(ko, kid2), 0);
		CHECK(strcmp(kid1, kid2) == 0);
		free(hex);
		free(rawhex);
		free(pem);
		json_decref(ko);
		EVP_MD_CTX_free(ctx);
		BIO_free(b);
		EVP_PKEY_free(pk);
	}
	{
		/* RSA: a key object of the daemon's tokens, never an external
		 * key (qsign cannot sign with one). */
		EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		BIO *b = BIO_new(BIO_s_mem());
		char *data, *pem, *norm2 = NULL;
		json_t *ko;
		long plen;
		CHECK(pk != NULL && b != NULL && PEM_write_bio_PUBKEY(b, pk) == 1);
		plen = BIO_get_mem_data(b, &data);
		pem = strndup(data, (size_t)plen);
		ko = tuf_key_from_pem(pem);
		CHECK(ko != NULL);
		CHECK(strcmp(json_string_value(json_object_get(ko, "scheme")), "rsassa-pss-sha256") ==
		      0);
		CHECK_EQ(tuf_pem_normalize(pem, &norm2), QS_ERR_INVALID);
		json_decref(ko);
		free(pem);
		BIO_free(b);
		EVP_PKEY_free(pk);
	}
}

static void
test_payloads(void)
{
	static const struct {
		const char *kind, *text;
		int want;
	} cases[] = {
	        {"tuf-init", "{\"op\":\"init\"}", 0},
	        {"tuf-init", "{\"op\":\"init\",\"x\":1}", QS_ERR_INVALID},
	        {"tuf-init", "{\"op\":\"init\",\"op\":\"init\"}", QS_ERR_INVALID},
	        {"tuf-root", "{\"op\":\"rotate-key\",\"role\":\"root\",\"base_version\":1}", 0},
	        {"tuf-root", "{\"op\":\"rotate-key\",\"role\":\"nobody\",\"base_version\":1}",
	         QS_ERR_INVALID},
	        {"tuf-root", "{\"op\":\"rotate-key\",\"role\":\"root\",\"base_version\":0}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-threshold\",\"role\":\"prod-targets\",\"threshold\":1,"
	         "\"base_version\":3}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-threshold\",\"role\":\"root\",\"threshold\":2,"
	         "\"base_version\":3}",
	         0},
	        {"tuf-promote",
	         "{\"version\":2,\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{},"
	         "\"base\":{\"version\":1,\"expires\":\"2029-01-01T00:00:00Z\","
	         "\"targets\":{}}}",
	         0},
	        {"tuf-promote",
	         "{\"version\":3,\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{},"
	         "\"base\":{\"version\":1,\"expires\":\"2029-01-01T00:00:00Z\","
	         "\"targets\":{}}}",
	         QS_ERR_INVALID},
	        {"tuf-promote",
	         "{\"version\":2,\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{}}",
	         QS_ERR_INVALID},
	        {"tuf-root", "{\"op\":\"add-key\",\"role\":\"root\",\"base_version\":2}", 0},
	        {"tuf-root", "{\"op\":\"add-key\",\"role\":\"snapshot\",\"base_version\":2}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"add-key\",\"role\":\"root\",\"base_version\":2,\"external\":"
	         "{\"name\":\"a\",\"holder\":\"admin1\",\"public_key\":\"not a key\"}}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"add-key\",\"role\":\"root\",\"base_version\":2,\"external\":"
	         "{\"name\":\"a\",\"holder\":\"admin1\"}}",
	         QS_ERR_INVALID},
	        {"tuf-root", "{\"op\":\"remove-key\",\"role\":\"root\",\"base_version\":2}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"remove-key\",\"role\":\"prod-targets\",\"base_version\":2,"
	         "\"keyid\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
	         0},
	        {"tuf-root",
	         "{\"op\":\"remove-key\",\"role\":\"timestamp\",\"base_version\":2,"
	         "\"keyid\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-expiry\",\"role\":\"timestamp\",\"base_version\":2,"
	         "\"expires\":\"2d\"}",
	         0},
	        {"tuf-root",
	         "{\"op\":\"set-expiry\",\"role\":\"root\",\"base_version\":2,"
	         "\"expires\":\"0d\"}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-expiry\",\"role\":\"root\",\"base_version\":2,"
	         "\"expires\":\"10y\"}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-expiry\",\"role\":\"root\",\"base_version\":2,"
	         "\"expires\":\"365\"}",
	         QS_ERR_INVALID},
	        {"tuf-root",
	         "{\"op\":\"set-expiry\",\"role\":\"root\",\"base_version\":2,"
	         "\"expires\":1}",
	         QS_ERR_INVALID},
	        {"tuf-root", "{\"op\":\"delete-everything\",\"role\":\"root\",\"base_version\":2}",
	         QS_ERR_INVALID},
	        {"tuf-push", "{}", 0},
	        {"tuf-push", "[1]", QS_ERR_INVALID},
	        {"tuf-push", "{\"a\":{\"length\":1.5}}", QS_ERR_INVALID},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = NULL;
		int r = tuf_payload_parse(cases[i].kind, (const uint8_t *)cases[i].text,
		                          strlen(cases[i].text), &j);
		if (r != cases[i].want)
			fprintf(stderr, "case %zu: %s\n", i, qs_errdetail());
		CHECK_EQ(r, cases[i].want);
		json_decref(j);
	}
	{
		const char *pl =
		        "{\"version\":2,\"expires\":\"2030-01-01T00:00:00Z\",\"targets\":{"
		        "\"new\":{\"length\":1,\"hashes\":{\"sha256\":\"aa"
		        "00000000000000000000000000000000000000000000000000000000000000\"}}},"
		        "\"base\":{\"version\":1,\"expires\":\"2029-01-01T00:00:00Z\","
		        "\"targets\":{\"old\":{\"length\":1,\"hashes\":{\"sha256\":\"bb"
		        "00000000000000000000000000000000000000000000000000000000000000\"}}}}}";
		char *d = NULL;
		CHECK_EQ(tuf_promote_describe((const uint8_t *)pl, strlen(pl), NULL, &d), 0);
		CHECK(d != NULL && strstr(d, "version 1 -> 2") != NULL);
		CHECK(d != NULL && strstr(d, "+ new") != NULL);
		CHECK(d != NULL && strstr(d, "- old") != NULL);
		CHECK(d != NULL &&
		      strstr(d, "2029-01-01T00:00:00Z -> 2030-01-01T00:00:00Z") != NULL);
		free(d);
	}
}

/* A raw r||s signature with r's high bit set and s with leading zero
 * bytes, DER-encoded, verifies as a TUF signature. */
static void
test_der(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	uint8_t msg[] = "signed bytes", dg[32], der[80], raw[64], sig[80];
	size_t der_len = sizeof(der), sig_len = sizeof(sig);
	char *pem = NULL, *hex;
	int found_high = 0, found_zero = 0;
	BIO *b = BIO_new(BIO_s_mem());
	long n;

	CHECK(pk != NULL && b != NULL);
	PEM_write_bio_PUBKEY(b, pk);
	n = BIO_get_mem_data(b, &pem);
	pem = strndup(pem, (size_t)n);
	qs_sha256(msg, sizeof(msg), dg);
	/* Sign until the signature shows both shapes (probability ~1/2 and
	 * ~1/128 per try); convert each one to raw and back through hsm's
	 * converter. */
	for (int i = 0; i < 4000 && !(found_high && found_zero); i++) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ECDSA_SIG *es;
		const BIGNUM *r, *s;
		const uint8_t *p = sig;
		sig_len = sizeof(sig);
		EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk);
		EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof(msg));
		EVP_MD_CTX_free(ctx);
		es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
		ECDSA_SIG_get0(es, &r, &s);
		BN_bn2binpad(r, raw, 32);
		BN_bn2binpad(s, raw + 32, 32);
		ECDSA_SIG_free(es);
		int high = (raw[0] & 0x80) != 0, zero = raw[32] == 0;
		if ((high && !found_high) || (zero && !found_zero) || i == 0) {
			der_len = sizeof(der);
			CHECK_EQ(hsm_ecdsa_raw_to_der(raw, 64, der, &der_len), 0);
			hex = qs_hex(der, der_len);
			CHECK_EQ(tuf_verify_ecdsa(pem, msg, sizeof(msg), hex), 0);
			raw[63] ^= 1;
			der_len = sizeof(der);
			hsm_ecdsa_raw_to_der(raw, 64, der, &der_len);
			free(hex);
			hex = qs_hex(der, der_len);
			CHECK_EQ(tuf_verify_ecdsa(pem, msg, sizeof(msg), hex), QS_ERR_BADSIG);
			free(hex);
			found_high |= high;
			found_zero |= zero;
		}
	}
	CHECK(found_high && found_zero);
	free(pem);
	BIO_free(b);
	EVP_PKEY_free(pk);
}

static void
test_envelope(void)
{
	const char *ok = "{\"signatures\":[{\"keyid\":"
	                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                 "aaaaaaaaaa\",\"sig\":\"00ff\"}],\"signed\":{\"_type\":\"root\"}}";
	json_t *j = NULL;

	CHECK_EQ(tuf_envelope_parse((const uint8_t *)ok, strlen(ok), "root", &j), 0);
	json_decref(j);
	CHECK_EQ(tuf_envelope_parse((const uint8_t *)ok, strlen(ok), "targets", &j),
	         QS_ERR_INVALID);
	CHECK_EQ(tuf_envelope_parse((const uint8_t *)"{}", 2, NULL, &j), QS_ERR_INVALID);
	CHECK_EQ(tuf_envelope_parse(
	                 (const uint8_t *)"{\"signatures\":[{\"keyid\":\"x\",\"sig\":\"00\"}],"
	                                  "\"signed\":{}}",
	                 48, NULL, &j),
	         QS_ERR_INVALID);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tuf_meta_test VECTORS.json\n");
		return 2;
	}
	test_vectors(argv[1]);
	test_canonical();
	test_canonical_decode();
	test_time();
	test_targets();
	test_payloads();
	test_external_keys();
	test_der();
	test_envelope();
	if (check_failures == 0)
		printf("tuf_meta_test: ok\n");
	return check_failures ? 1 : 0;
}
