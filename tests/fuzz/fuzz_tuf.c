/* Fuzz target: TUF metadata as qsign (tuf status/sign/show-root) and qsignd
 * (a repository's documents read back) take it in. The first byte picks the
 * expected type; the rest is the document. What a reader does with one that
 * parses is done too: the canonical bytes of "signed", the key ids of its
 * keys (root), each signature checked against the key it names, key PEMs
 * normalised, "expires" parsed and a targets map checked. The same bytes
 * (after the type byte) go to qs_cjson_decode, the signer helpers' reader of
 * the "signed" part they are asked to sign (privsep_guard.c): whatever it
 * accepts must encode back to exactly those bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cjson.h"
#include "tuf_meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
keys_and_signatures(json_t *env, const uint8_t *canon, size_t clen)
{
	json_t *sp = json_object_get(env, "signed"), *sigs = json_object_get(env, "signatures");
	json_t *keys = json_object_get(sp, "keys"), *k, *s;
	const char *name;
	size_t i;

	json_object_foreach(keys, name, k)
	{
		const char *pub = json_string_value(json_object_get(json_object_get(k, "keyval"), "public"));
		char id[65], *norm = NULL;

		(void)name;
		if (pub != NULL && tuf_pem_normalize(pub, &norm) == 0)
			free(norm);
		if (tuf_keyid(k, id) != 0)
			continue;
		json_array_foreach(sigs, i, s)
			if (strcmp(json_string_value(json_object_get(s, "keyid")), id) == 0 ||
			    i == 0) /* also a signature that names another key */
				(void)tuf_verify_key(k, canon, clen,
						     json_string_value(json_object_get(s, "sig")));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {NULL, "root", "targets", "snapshot", "timestamp"};
	json_t *env = NULL, *sp, *x;
	uint8_t dg[32];
	char *canon = NULL;
	size_t clen = 0;
	int64_t t;

	if (size == 0)
		return 0;
	if (qs_cjson_decode((const char *)data + 1, size - 1, &env) == 0) {
		if (qs_cjson_encode(env, &canon, &clen) != 0 || clen != size - 1 ||
		    memcmp(canon, data + 1, clen) != 0)
			abort();
		free(canon);
		canon = NULL;
		json_decref(env);
		env = NULL;
	}
	if (tuf_envelope_parse(data + 1, size - 1, types[data[0] % 5], &env) != 0)
		return 0;
	sp = json_object_get(env, "signed");
	if (tuf_signed_digest(sp, &canon, &clen, dg) == 0) {
		keys_and_signatures(env, (const uint8_t *)canon, clen);
		free(canon);
	}
	if (json_is_string(x = json_object_get(sp, "expires")))
		(void)tuf_time_parse(json_string_value(x), &t);
	if ((x = json_object_get(sp, "targets")) != NULL)
		(void)tuf_targets_check(x);
	json_decref(env);
	return 0;
}
