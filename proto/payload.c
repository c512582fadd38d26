#include "payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "qs_err.h"
#include "pki_payload.h"
#include "qs_limits.h"
#include "statement.h"
#include "tuf_payload.h"

static int
digest_validate(const uint8_t *p, size_t len)
{
	(void)p;
	if (qs_hash_of_len(len) == NULL)
		return qs_fail(QS_ERR_INVALID,
		               "a digest payload is a 32-byte SHA-256 (48 bytes: SHA-384, 64: "
		               "SHA-512), got %zu bytes",
		               len);
	return 0;
}

static int
digest_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	char *hex = qs_hex(p, len);
	const char *h = qs_hash_of_len(len);

	(void)context;
	*out = NULL;
	if (hex == NULL || asprintf(out, "%s digest to sign: %s\n", h ? h : "?", hex) < 0) {
		free(hex);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	free(hex);
	return 0;
}

static int
blob_validate(const uint8_t *p, size_t len)
{
	(void)p;
	if (len > QS_MAX_BLOB)
		return qs_fail(QS_ERR_INVALID, "blob of %zu bytes exceeds %u", len, QS_MAX_BLOB);
	return 0;
}

/* Size, SHA-256 and the first bytes: as text when they are printable,
 * else as hex. Control characters are never printed raw. */
static int
blob_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	uint8_t dg[32];
	char *hex = NULL, head[200];
	size_t n = len < 160 ? len : 160, printable = 0;
	int r;

	(void)context;
	*out = NULL;
	qs_sha256(p, len, dg);
	for (size_t i = 0; i < n; i++)
		printable += (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\t';
	if (n > 0 && printable == n) {
		size_t j = 0;
		for (size_t i = 0; i < n && j + 3 < sizeof(head); i++) {
			if (p[i] == '\n') {
				head[j++] = '\\';
				head[j++] = 'n';
			} else {
				head[j++] = p[i] == '\t' ? ' ' : (char)p[i];
			}
		}
		head[j] = '\0';
		hex = qs_hex(dg, 32);
		r = hex && asprintf(out, "blob: %zu bytes, SHA-256 %s\nstarts (text): %s%s\n", len,
		                    hex, head, len > n ? "..." : "") >= 0;
	} else {
		char *h = qs_hex(p, n < 48 ? n : 48);
		hex = qs_hex(dg, 32);
		r = h && hex &&
		    asprintf(out, "blob: %zu bytes, SHA-256 %s\nstarts (hex): %s%s\n", len, hex, h,
		             len > 48 ? "..." : "") >= 0;
		free(h);
	}
	free(hex);
	return r ? 0 : qs_fail(QS_ERR_NOMEM, "out of memory");
}

static int
policy_validate(const uint8_t *p, size_t len)
{
	json_error_t e;
	json_t *j;

	if (len > QS_MAX_POLICY_BYTES)
		return qs_fail(QS_ERR_INVALID, "policy larger than %u bytes", QS_MAX_POLICY_BYTES);
	if ((j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		return qs_fail(QS_ERR_INVALID, "policy is not JSON: line %d: %s", e.line, e.text);
	json_decref(j);
	return 0;
}

/* A member name from the proposed policy as safe text: approvers read it on
 * a terminal, so control characters never pass through raw. */
static void
put_name(FILE *f, const char *k)
{
	for (size_t i = 0; k[i] != '\0' && i < 128; i++)
		fputc((unsigned char)k[i] < 0x20 || k[i] == 0x7f ? '?' : k[i], f);
}

/* Append "  <what> <name>\n" lines for members of `a` missing in `b`
 * (removed) or of `b` missing in `a` (added), and changed ones. */
static int
diff_section(FILE *f, const char *section, json_t *cur, json_t *next)
{
	const char *k;
	json_t *v;
	int changes = 0;

	json_object_foreach(next, k, v)
	{
		json_t *old = json_object_get(cur, k);
		if (old == NULL) {
			char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(f, "  + %s.", section);
			put_name(f, k);
			fprintf(f, ": %s\n", s ? s : "?");
			free(s);
			changes++;
		} else if (!json_equal(old, v)) {
			char *a = json_dumps(old, JSON_COMPACT | JSON_SORT_KEYS);
			char *b = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(f, "  ~ %s.", section);
			put_name(f, k);
			fprintf(f, ":\n      was %s\n      now %s\n", a ? a : "?", b ? b : "?");
			free(a);
			free(b);
			changes++;
		}
	}
	json_object_foreach(cur, k, v)
	{
		if (json_object_get(next, k) == NULL) {
			fprintf(f, "  - %s.", section);
			put_name(f, k);
			fputc('\n', f);
			changes++;
		}
	}
	return changes;
}

static int
policy_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	json_t *next = NULL, *cur = NULL;
	json_error_t e;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int changes = 0;

	*out = NULL;
	if ((next = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		return qs_fail(QS_ERR_INVALID, "policy is not JSON: %s", e.text);
	if (context != NULL)
		cur = json_loads(context, 0, &e);
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		json_decref(next);
		json_decref(cur);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	fprintf(f, "policy version %lld",
	        (long long)json_integer_value(json_object_get(next, "version")));
	if (cur != NULL) {
		fprintf(f, " (replacing version %lld)\n",
		        (long long)json_integer_value(json_object_get(cur, "version")));
		static const char *const sections[] = {"principals", "keys", "roles", NULL};
		for (size_t i = 0; sections[i] != NULL; i++)
			changes += diff_section(f, sections[i], json_object_get(cur, sections[i]),
			                        json_object_get(next, sections[i]));
		if (!json_equal(json_object_get(cur, "policy_admins"),
		                json_object_get(next, "policy_admins"))) {
			char *b = json_dumps(json_object_get(next, "policy_admins"),
			                     JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(f, "  ~ policy_admins now %s\n", b ? b : "?");
			free(b);
			changes++;
		}
		if (changes == 0)
			fprintf(f, "  (no changes besides the version)\n");
	} else {
		fprintf(f, "\n  (current policy not available: showing no diff)\n");
	}
	fclose(f);
	json_decref(next);
	json_decref(cur);
	if (buf == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	*out = buf;
	return 0;
}

static const struct qs_payload_kind kinds[] = {
        {"digest", digest_validate, digest_describe},
        {"blob", blob_validate, blob_describe},
        {"policy", policy_validate, policy_describe},
        {PKI_KIND_CA_CREATE, pki_ca_create_validate, pki_ca_create_describe},
        {PKI_KIND_TLS, pki_tls_validate, pki_tls_describe},
        {PKI_KIND_DEVICE_CA, pki_device_ca_validate, pki_device_ca_describe},
        {PKI_KIND_CA_STATE, pki_ca_state_validate, pki_ca_state_describe},
        {PKI_KIND_DEVICE_REVOKE, pki_device_revoke_validate, pki_device_revoke_describe},
        {PKI_KIND_DEVICE, pki_device_validate, pki_device_describe},
        {"tuf-init", tuf_init_validate, tuf_init_describe},
        {"tuf-root", tuf_root_validate, tuf_root_describe},
        {"tuf-promote", tuf_promote_validate, tuf_promote_describe},
        {"tuf-push", tuf_push_validate, tuf_push_describe},
};

const struct qs_payload_kind *
qs_payload_kind(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].name, name) == 0)
			return &kinds[i];
	return NULL;
}

const struct qs_payload_kind *
qs_payload_kind_at(size_t i)
{
	return i < sizeof(kinds) / sizeof(kinds[0]) ? &kinds[i] : NULL;
}
