#include "tuf_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "cjson.h"
#include "qs_err.h"
#include "statement.h"

json_t *
tuf_key_ecdsa(const char *spki_pem)
{
	return json_pack("{s:s, s:s, s:{s:s}}", "keytype", "ecdsa", "scheme", "ecdsa-sha2-nistp256",
	                 "keyval", "public", spki_pem);
}

int
tuf_keyid(const json_t *key, char out[65])
{
	uint8_t dg[32];
	char *canon = NULL, *hex;
	size_t len;
	int r;

	out[0] = '\0';
	if ((r = qs_cjson_encode(key, &canon, &len)) != 0)
		return r;
	qs_sha256((const uint8_t *)canon, len, dg);
	free(canon);
	if ((hex = qs_hex(dg, sizeof(dg))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(out, hex, 65);
	free(hex);
	return 0;
}

int
tuf_time_format(int64_t t, char out[TUF_TIME_LEN])
{
	struct tm tm;
	time_t tt = (time_t)t;

	out[0] = '\0';
	if (t < 0 || t > 253402300799LL || gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, TUF_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) != TUF_TIME_LEN - 1)
		return qs_fail(QS_ERR_INVALID, "time %lld cannot be written as a TUF expiry",
		               (long long)t);
	return 0;
}

int
tuf_time_parse(const char *s, int64_t *t)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm tm;
	char back[TUF_TIME_LEN];

	*t = 0;
	if (s == NULL || strlen(s) != TUF_TIME_LEN - 1)
		return qs_fail(QS_ERR_INVALID, "expiry is not YYYY-MM-DDTHH:MM:SSZ");
	for (size_t i = 0; i < TUF_TIME_LEN - 1; i++)
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
			return qs_fail(QS_ERR_INVALID, "expiry is not YYYY-MM-DDTHH:MM:SSZ");
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	tm.tm_hour = atoi(s + 11);
	tm.tm_min = atoi(s + 14);
	tm.tm_sec = atoi(s + 17);
	*t = (int64_t)timegm(&tm);
	/* Round trip: refuses 2024-02-30 and 25:00:00, which timegm folds. */
	if (tuf_time_format(*t, back) != 0 || strcmp(back, s) != 0) {
		*t = 0;
		return qs_fail(QS_ERR_INVALID, "expiry %s is not a valid UTC time", s);
	}
	return 0;
}

int
tuf_signed_digest(const json_t *signed_part, char **canon, size_t *len, uint8_t dg[32])
{
	int r;

	if ((r = qs_cjson_encode(signed_part, canon, len)) != 0)
		return r;
	qs_sha256((const uint8_t *)*canon, *len, dg);
	return 0;
}

json_t *
tuf_envelope_new(json_t *signed_part)
{
	return json_pack("{s:[], s:O}", "signatures", "signed", signed_part);
}

int
tuf_envelope_add_sig(json_t *env, const char *keyid, const uint8_t *der, size_t der_len)
{
	char *hex = qs_hex(der, der_len);
	json_t *s;

	if (hex == NULL || (s = json_pack("{s:s, s:s}", "keyid", keyid, "sig", hex)) == NULL ||
	    json_array_append_new(json_object_get(env, "signatures"), s) != 0) {
		free(hex);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	free(hex);
	return 0;
}

static int
is_hex(const char *s, size_t want)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2 != 0 || (want != 0 && n != want))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
tuf_envelope_parse(const uint8_t *buf, size_t len, const char *type, json_t **out)
{
	json_error_t e;
	json_t *j = NULL, *sigs, *sp, *x;
	size_t i;
	int r;

	*out = NULL;
	if (len > TUF_MAX_METADATA)
		return qs_fail(QS_ERR_INVALID, "metadata larger than %u bytes", TUF_MAX_METADATA);
	if ((j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		return qs_fail(QS_ERR_INVALID, "metadata is not JSON: line %d: %s", e.line, e.text);
	sigs = json_object_get(j, "signatures");
	sp = json_object_get(j, "signed");
	if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_array(sigs) ||
	    !json_is_object(sp)) {
		r = qs_fail(QS_ERR_INVALID,
		            "metadata must be {\"signatures\": [...], \"signed\": {...}}");
		goto out;
	}
	if (type != NULL && (!json_is_string(json_object_get(sp, "_type")) ||
	                     strcmp(json_string_value(json_object_get(sp, "_type")), type) != 0)) {
		r = qs_fail(QS_ERR_INVALID, "metadata is not of type %s", type);
		goto out;
	}
	json_array_foreach(sigs, i, x)
	{
		json_t *k = json_object_get(x, "keyid"), *s = json_object_get(x, "sig");
		if (!json_is_object(x) || json_object_size(x) != 2 || !json_is_string(k) ||
		    !json_is_string(s) || !is_hex(json_string_value(k), 64) ||
		    !is_hex(json_string_value(s), 0)) {
			r = qs_fail(QS_ERR_INVALID, "signatures[%zu]: must be {keyid, sig} in hex",
			            i);
			goto out;
		}
	}
	*out = j;
	j = NULL;
	r = 0;
out:
	json_decref(j);
	return r;
}

/* EC P-256 or Ed25519 (or, with allow_rsa, RSA of 2048+ bits) public key
 * of a PEM; QS_ERR_INVALID otherwise. */
static int
pem_pkey_any(const char *pem, int allow_rsa, EVP_PKEY **out)
{
	BIO *in = NULL;
	EVP_PKEY *pk = NULL;
	char name[64];
	size_t nlen = 0;

	*out = NULL;
	if (pem == NULL || strlen(pem) > 4096 || (in = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (pk = PEM_read_bio_PUBKEY(in, NULL, NULL, NULL)) == NULL) {
		BIO_free(in);
		return qs_fail(QS_ERR_INVALID, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
	}
	BIO_free(in);
	if (allow_rsa && EVP_PKEY_is_a(pk, "RSA") && EVP_PKEY_get_bits(pk) >= 2048) {
		*out = pk;
		return 0;
	}
	if (EVP_PKEY_is_a(pk, "ED25519") ||
	    (EVP_PKEY_is_a(pk, "EC") &&
	     EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
	                                    &nlen) == 1 &&
	     strcmp(name, "prime256v1") == 0)) {
		*out = pk;
		return 0;
	}
	EVP_PKEY_free(pk);
	return qs_fail(QS_ERR_INVALID, "not an ECDSA P-256 or Ed25519 key");
}

static int
pem_pkey(const char *pem, EVP_PKEY **out)
{
	return pem_pkey_any(pem, 0, out);
}

/* Verify sig_hex over msg with pk: ECDSA over SHA-256 (DER), Ed25519 over
 * the message (64 bytes), RSA-PSS with SHA-256 and MGF1-SHA256 (any salt
 * length, as TUF's rsassa-pss-sha256 verifiers accept). */
static int
pkey_verify(EVP_PKEY *pk, const uint8_t *msg, size_t len, const char *sig_hex)
{
	uint8_t sig[1024];
	size_t sig_len = 0;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pc = NULL;
	int ed = EVP_PKEY_is_a(pk, "ED25519"), rsa = EVP_PKEY_is_a(pk, "RSA"), r;

	if ((r = qs_unhex(sig_hex, sig, sizeof(sig), &sig_len)) != 0)
		return r;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(ctx, &pc, ed ? NULL : EVP_sha256(), NULL, pk) != 1 ||
	    (rsa && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
	             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_AUTO) != 1))) {
		EVP_MD_CTX_free(ctx);
		return qs_fail(QS_ERR_CRYPTO, "verify set-up failed");
	}
	r = EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1
	            ? 0
	            : qs_fail(QS_ERR_BADSIG, "signature does not verify");
	EVP_MD_CTX_free(ctx);
	return r;
}

int
tuf_verify_ecdsa(const char *spki_pem, const uint8_t *msg, size_t len, const char *sig_hex)
{
	EVP_PKEY *pk = NULL;
	int r;

	if ((r = pem_pkey_any(spki_pem, 1, &pk)) != 0)
		return r;
	r = pkey_verify(pk, msg, len, sig_hex);
	EVP_PKEY_free(pk);
	return r;
}

json_t *
tuf_key_from_pem(const char *pem)
{
	EVP_PKEY *pk = NULL;
	uint8_t raw[32];
	size_t rl = sizeof(raw);
	char *hex;
	json_t *k;

	if (pem_pkey_any(pem, 1, &pk) != 0)
		return NULL;
	if (EVP_PKEY_is_a(pk, "RSA")) {
		EVP_PKEY_free(pk);
		return json_pack("{s:s, s:s, s:{s:s}}", "keytype", "rsa", "scheme",
		                 "rsassa-pss-sha256", "keyval", "public", pem);
	}
	if (!EVP_PKEY_is_a(pk, "ED25519")) {
		EVP_PKEY_free(pk);
		return tuf_key_ecdsa(pem);
	}
	if (EVP_PKEY_get_raw_public_key(pk, raw, &rl) != 1 || rl != 32 ||
	    (hex = qs_hex(raw, 32)) == NULL) {
		EVP_PKEY_free(pk);
		return NULL;
	}
	EVP_PKEY_free(pk);
	k = json_pack("{s:s, s:s, s:{s:s}}", "keytype", "ed25519", "scheme", "ed25519", "keyval",
	              "public", hex);
	free(hex);
	return k;
}

int
tuf_verify_key(const json_t *key, const uint8_t *msg, size_t len, const char *sig_hex)
{
	const char *type = json_string_value(json_object_get(key, "keytype"));
	const char *scheme = json_string_value(json_object_get(key, "scheme"));
	const char *pub =
	        json_string_value(json_object_get(json_object_get(key, "keyval"), "public"));
	EVP_PKEY *pk = NULL;
	int r;

	if (type == NULL || scheme == NULL || pub == NULL)
		return qs_fail(QS_ERR_INVALID, "not a TUF key object");
	if ((strcmp(type, "ecdsa") == 0 && strcmp(scheme, "ecdsa-sha2-nistp256") == 0) ||
	    (strcmp(type, "rsa") == 0 && strcmp(scheme, "rsassa-pss-sha256") == 0))
		return tuf_verify_ecdsa(pub, msg, len, sig_hex);
	if (strcmp(type, "ed25519") == 0 && strcmp(scheme, "ed25519") == 0) {
		uint8_t raw[32];
		size_t rl = 0;
		if (qs_unhex(pub, raw, sizeof(raw), &rl) != 0 || rl != 32 ||
		    (pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32)) == NULL)
			return qs_fail(QS_ERR_INVALID, "not an Ed25519 public key");
		r = pkey_verify(pk, msg, len, sig_hex);
		EVP_PKEY_free(pk);
		return r;
	}
	return qs_fail(QS_ERR_UNIMPLEMENTED, "key type %.20s/%.30s", type, scheme);
}

int
tuf_pem_normalize(const char *pem, char **out)
{
	EVP_PKEY *pk = NULL;
	BIO *bo = NULL;
	char *data;
	long n;
	int r;

	*out = NULL;
	if ((r = pem_pkey(pem, &pk)) != 0)
		return r;
	if ((bo = BIO_new(BIO_s_mem())) == NULL || !PEM_write_bio_PUBKEY(bo, pk) ||
	    (n = BIO_get_mem_data(bo, &data)) <= 0) {
		r = qs_fail(QS_ERR_CRYPTO, "PEM_write_bio_PUBKEY failed");
		goto out;
	}
	if ((*out = strndup(data, (size_t)n)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(bo);
	return r;
}

int
tuf_keyid_pem(const char *spki_pem, char out[65])
{
	json_t *k = tuf_key_from_pem(spki_pem);
	int r;

	if (k == NULL)
		return qs_fail(QS_ERR_INVALID, "not an ECDSA P-256 or Ed25519 public key");
	r = tuf_keyid(k, out);
	json_decref(k);
	return r;
}

static int
path_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > TUF_MAX_TARGET_PATH || p[0] == '/' || p[n - 1] == '/')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("._+@-/", c) != NULL))
			return 0;
	}
	/* Components "." and ".." and empty ones would escape or alias the
	 * targets directory of a static server. */
	for (const char *c = p; c != NULL; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL) {
		size_t cl = strcspn(c, "/");
		if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
	}
	return 1;
}

int
tuf_targets_check(const json_t *targets)
{
	const char *name, *k;
	json_t *v, *h, *x;

	if (!json_is_object(targets))
		return qs_fail(QS_ERR_INVALID, "targets must be an object");
	if (json_object_size(targets) > TUF_MAX_TARGETS)
		return qs_fail(QS_ERR_INVALID, "more than %d targets", TUF_MAX_TARGETS);
	json_object_foreach((json_t *)targets, name, v)
	{
		json_t *len = json_object_get(v, "length");
		size_t allowed = 2;
		if (!path_ok(name))
			return qs_fail(QS_ERR_INVALID, "target path \"%.80s\" is not acceptable",
			               name);
		if (!json_is_object(v) || !json_is_integer(len) || json_integer_value(len) < 0)
			return qs_fail(QS_ERR_INVALID, "targets.%s: needs an integer length >= 0",
			               name);
		h = json_object_get(v, "hashes");
		if (!json_is_object(h) || !json_is_string(json_object_get(h, "sha256")))
			return qs_fail(QS_ERR_INVALID, "targets.%s: needs hashes.sha256", name);
		json_object_foreach(h, k, x)
		{
			size_t want = strcmp(k, "sha256") == 0   ? 64
			              : strcmp(k, "sha512") == 0 ? 128
			                                         : 1;
			if (want == 1 || !json_is_string(x) || !is_hex(json_string_value(x), want))
				return qs_fail(QS_ERR_INVALID, "targets.%s.hashes.%.16s: bad hash",
				               name, k);
		}
		if (json_object_get(v, "custom") != NULL) {
			if (!json_is_object(json_object_get(v, "custom")))
				return qs_fail(QS_ERR_INVALID,
				               "targets.%s.custom: must be an object", name);
			allowed++;
		}
		if (json_object_size(v) != allowed)
			return qs_fail(QS_ERR_INVALID,
			               "targets.%s: only length, hashes and custom are allowed",
			               name);
	}
	return 0;
}
