#include "tuf_payload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_strict.h"
#include "qs_err.h"
#include "statement.h"
#include "tuf_meta.h"

static int
load(const uint8_t *p, size_t len, json_t **out)
{
	json_error_t e;

	*out = NULL;
	if (len > TUF_MAX_METADATA)
		return qs_fail(QS_ERR_INVALID, "payload larger than %u bytes", TUF_MAX_METADATA);
	if ((*out = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
		return qs_fail(QS_ERR_INVALID, "payload is not JSON: line %d: %s", e.line, e.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return qs_fail(QS_ERR_INVALID, "payload must be a JSON object");
	}
	return 0;
}

static const char *
str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int
check_init(const json_t *j)
{
	static const char *const allowed[] = {"op", NULL};

	if (qs_json_only(j, "tuf-init", allowed) != 0 || str(j, "op") == NULL ||
	    strcmp(str(j, "op"), "init") != 0)
		return qs_fail(QS_ERR_INVALID, "tuf-init payload is {\"op\":\"init\"}");
	return 0;
}

const char *const tuf_key_roles[] = {"root",          "targets",        "snapshot",
                                     "timestamp",     "prod-root",      "prod-targets",
                                     "prod-snapshot", "prod-timestamp", NULL};

const char *
tuf_role_repo(const char *role)
{
	return strncmp(role, "prod-", 5) == 0 ? "prod" : "ci";
}

const char *
tuf_role_type(const char *role)
{
	return strncmp(role, "prod-", 5) == 0 ? role + 5 : role;
}

const char *
tuf_repo_role(const char *repo, const char *type)
{
	size_t i;

	for (i = 0; tuf_key_roles[i] != NULL; i++)
		if (strcmp(tuf_role_repo(tuf_key_roles[i]), repo) == 0 &&
		    strcmp(tuf_role_type(tuf_key_roles[i]), type) == 0)
			return tuf_key_roles[i];
	return NULL;
}

static int
role_name_ok(const char *r)
{
	for (size_t i = 0; r != NULL && tuf_key_roles[i] != NULL; i++)
		if (strcmp(r, tuf_key_roles[i]) == 0)
			return 1;
	return 0;
}

#define ROLE_NAMES                                                                                 \
	"root, targets, snapshot, timestamp (CI) or prod-root, prod-targets, prod-snapshot, "      \
	"prod-timestamp (production)"
#define OFFLINE_NAMES "root, prod-root or prod-targets"

static int
keyid_ok(const json_t *j)
{
	const char *k = str(j, "keyid");

	return k != NULL && strlen(k) == 64 && strspn(k, "0123456789abcdef") == 64;
}

/* "<n><unit>", unit s|m|h|d, n 1..999999: the daemon parses it with the
 * policy's duration rules and bounds it per role. */
static int
duration_ok(const char *s)
{
	size_t n = s != NULL ? strspn(s, "0123456789") : 0;

	return n >= 1 && n <= 6 && s[0] != '0' && s[n] != '\0' && strchr("smhd", s[n]) != NULL &&
	       s[n + 1] == '\0';
}

/* {"name":N,"holder":P,"public_key":PEM}: a key an admin holds outside the
 * daemon (their own token or file). */
static int
check_external(const json_t *e)
{
	static const char *const allowed[] = {"name", "holder", "public_key", NULL};
	char *pem = NULL;
	int r;

	if (qs_json_only(e, "external", allowed) != 0)
		return qs_fail(QS_ERR_INVALID, "external: {name, holder, public_key}");
	if (!qs_name_valid(str(e, "name"), 64) || !qs_name_valid(str(e, "holder"), 64))
		return qs_fail(QS_ERR_INVALID, "external: name and holder must be names");
	if ((r = tuf_pem_normalize(str(e, "public_key"), &pem)) != 0)
		return qs_wrap(r, "external.public_key");
	free(pem);
	return 0;
}

static int
check_root(const json_t *j)
{
	static const char *const rot[] = {"op", "role", "base_version", "keyid", NULL};
	static const char *const thr[] = {"op", "role", "threshold", "base_version", NULL};
	static const char *const add[] = {"op", "role", "base_version", "external", NULL};
	static const char *const rem[] = {"op", "role", "base_version", "keyid", NULL};
	static const char *const exp[] = {"op", "role", "base_version", "expires", NULL};
	static const char *const sep[] = {"op", "base_version", "external", NULL};
	const char *op = str(j, "op"), *role = str(j, "role");
	json_int_t base = json_integer_value(json_object_get(j, "base_version"));
	/* The roles whose key sets and thresholds admins manage. */
	int offline =
	        role != NULL && (strcmp(role, "root") == 0 || strcmp(role, "prod-root") == 0 ||
	                         strcmp(role, "prod-targets") == 0);
	int r;

	if (!json_is_integer(json_object_get(j, "base_version")) || base < 1)
		return qs_fail(QS_ERR_INVALID,
		               "base_version: the root version this changes (>= 1)");
	if (op != NULL && strcmp(op, "rotate-key") == 0) {
		if ((r = qs_json_only(j, "tuf-root", rot)) != 0)
			return r;
		if (!role_name_ok(role))
			return qs_fail(QS_ERR_INVALID, "role: " ROLE_NAMES);
		if (json_object_get(j, "keyid") != NULL && !keyid_ok(j))
			return qs_fail(QS_ERR_INVALID, "keyid: 64 lower-case hex characters");
		return 0;
	}
	if (op != NULL && strcmp(op, "set-threshold") == 0) {
		json_int_t t = json_integer_value(json_object_get(j, "threshold"));
		if ((r = qs_json_only(j, "tuf-root", thr)) != 0)
			return r;
		if (!offline)
			return qs_fail(QS_ERR_INVALID, "set-threshold: role " OFFLINE_NAMES);
		if (!json_is_integer(json_object_get(j, "threshold")) || t < 1 || t > 64)
			return qs_fail(QS_ERR_INVALID, "threshold: an integer 1..64");
		if (strcmp(role, "prod-targets") == 0 && t < 2)
			return qs_fail(QS_ERR_INVALID,
			               "production targets never need fewer than 2 signatures");
		return 0;
	}
	if (op != NULL && strcmp(op, "add-key") == 0) {
		if ((r = qs_json_only(j, "tuf-root", add)) != 0)
			return r;
		if (!offline)
			return qs_fail(QS_ERR_INVALID, "add-key: role " OFFLINE_NAMES);
		if (json_object_get(j, "external") != NULL &&
		    (r = check_external(json_object_get(j, "external"))) != 0)
			return r;
		return 0;
	}
	if (op != NULL && strcmp(op, "remove-key") == 0) {
		if ((r = qs_json_only(j, "tuf-root", rem)) != 0)
			return r;
		if (!offline)
			return qs_fail(QS_ERR_INVALID, "remove-key: role " OFFLINE_NAMES);
		if (!keyid_ok(j))
			return qs_fail(QS_ERR_INVALID, "keyid: 64 lower-case hex characters");
		return 0;
	}
	if (op != NULL && strcmp(op, "set-expiry") == 0) {
		if ((r = qs_json_only(j, "tuf-root", exp)) != 0)
			return r;
		if (!role_name_ok(role))
			return qs_fail(QS_ERR_INVALID, "role: " ROLE_NAMES);
		if (!duration_ok(str(j, "expires")))
			return qs_fail(
			        QS_ERR_INVALID,
			        "expires: a duration such as \"365d\", \"12h\" (s, m, h, d)");
		return 0;
	}
	if (op != NULL && strcmp(op, "separate") == 0) {
		/* Production gets keys of its own for every key it shares with
		 * CI; "external" are the production root keys that replace
		 * the shared external ones (admins hold one per repository). */
		json_t *x = json_object_get(j, "external"), *e;
		size_t i;
		if ((r = qs_json_only(j, "tuf-root", sep)) != 0)
			return r;
		if (x != NULL && (!json_is_array(x) || json_array_size(x) > 16))
			return qs_fail(QS_ERR_INVALID, "external: an array of at most 16 keys");
		json_array_foreach(x, i, e)
		{
			if ((r = check_external(e)) != 0)
				return qs_wrap(r, "external[%zu]", i);
		}
		return 0;
	}
	return qs_fail(QS_ERR_INVALID, "op: rotate-key, set-threshold, add-key, remove-key, "
	                               "set-expiry or separate");
}

/* {"version":V,"expires":E,"targets":{...}} */
static int
check_targets_state(const json_t *o, const char *what)
{
	static const char *const allowed[] = {"version", "expires", "targets", NULL};
	int64_t t;
	int r;

	if (qs_json_only(o, what, allowed) != 0)
		return qs_fail(QS_ERR_INVALID, "%s: must be {version, expires, targets}", what);
	if (!json_is_integer(json_object_get(o, "version")) ||
	    json_integer_value(json_object_get(o, "version")) < 1)
		return qs_fail(QS_ERR_INVALID, "%s.version: an integer >= 1", what);
	if ((r = tuf_time_parse(str(o, "expires"), &t)) != 0)
		return qs_wrap(r, "%s.expires", what);
	if ((r = tuf_targets_check(json_object_get(o, "targets"))) != 0)
		return qs_wrap(r, "%s", what);
	return 0;
}

static int
check_promote(const json_t *j)
{
	static const char *const allowed[] = {"version", "expires", "targets", "base", NULL};
	json_t *base = json_object_get(j, "base"), *tmp;
	json_int_t v = json_integer_value(json_object_get(j, "version"));
	int r;

	if ((r = qs_json_only(j, "tuf-promote", allowed)) != 0)
		return r;
	if (base == NULL)
		return qs_fail(QS_ERR_INVALID, "base: the production targets replaced, or null");
	/* The new state has the shape of a base without the base. */
	if ((tmp = json_deep_copy(j)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_del(tmp, "base");
	r = check_targets_state(tmp, "promote");
	json_decref(tmp);
	if (r != 0)
		return r;
	if (json_is_null(base))
		return v == 1 || v == 2 ? 0
		                        : qs_fail(QS_ERR_INVALID, "version %lld without a base",
		                                  (long long)v);
	if ((r = check_targets_state(base, "base")) != 0)
		return r;
	if (json_integer_value(json_object_get(base, "version")) + 1 != v)
		return qs_fail(QS_ERR_INVALID, "version must be base.version + 1");
	return 0;
}

int
tuf_payload_parse(const char *kind, const uint8_t *p, size_t len, json_t **out)
{
	json_t *j = NULL;
	json_error_t e;
	int r;

	*out = NULL;
	if (strcmp(kind, "tuf-push") == 0) {
		if (len > TUF_MAX_METADATA)
			return qs_fail(QS_ERR_INVALID, "payload larger than %u bytes",
			               TUF_MAX_METADATA);
		if ((j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e)) == NULL)
			return qs_fail(QS_ERR_INVALID, "payload is not JSON: %s", e.text);
		r = tuf_targets_check(j);
	} else if ((r = load(p, len, &j)) == 0) {
		r = strcmp(kind, "tuf-init") == 0      ? check_init(j)
		    : strcmp(kind, "tuf-root") == 0    ? check_root(j)
		    : strcmp(kind, "tuf-promote") == 0 ? check_promote(j)
		                                       : qs_fail(QS_ERR_INVALID, "not a TUF kind");
	}
	if (r != 0) {
		json_decref(j);
		return r;
	}
	*out = j;
	return 0;
}

static int
validate(const char *kind, const uint8_t *p, size_t len)
{
	json_t *j;
	int r = tuf_payload_parse(kind, p, len, &j);

	json_decref(j);
	return r;
}

int
tuf_init_validate(const uint8_t *p, size_t len)
{
	return validate("tuf-init", p, len);
}

int
tuf_root_validate(const uint8_t *p, size_t len)
{
	return validate("tuf-root", p, len);
}

int
tuf_promote_validate(const uint8_t *p, size_t len)
{
	return validate("tuf-promote", p, len);
}

int
tuf_push_validate(const uint8_t *p, size_t len)
{
	return validate("tuf-push", p, len);
}

/* Strings of the payload reach a terminal: no control characters. */
static void
put_safe(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}

/* Close the memstream f writing into *bufp (only valid after fclose) and
 * hand the text over. */
static int
finish(FILE *f, char **bufp, char **out)
{
	if (fclose(f) != 0 || *bufp == NULL) {
		free(*bufp);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	*out = *bufp;
	*bufp = NULL;
	return 0;
}

/* The policy's "tuf" section from the context (the policy text), or NULL. */
static json_t *
policy_tuf(const char *context)
{
	json_t *pol, *t;

	if (context == NULL || (pol = json_loads(context, 0, NULL)) == NULL)
		return NULL;
	t = json_incref(json_object_get(pol, "tuf"));
	json_decref(pol);
	return t;
}

int
tuf_init_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	json_t *j = NULL, *tuf = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int r;

	*out = NULL;
	if ((r = tuf_payload_parse("tuf-init", p, len, &j)) != 0)
		return r;
	json_decref(j);
	if ((f = open_memstream(&buf, &blen)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	fprintf(f, "TUF init: root version 1 of the CI and production repositories\n");
	if ((tuf = policy_tuf(context)) != NULL) {
		for (size_t i = 0; tuf_key_roles[i] != NULL; i++) {
			json_t *ro = json_object_get(json_object_get(tuf, "roles"),
			                             tuf_key_roles[i]),
			       *k;
			size_t n;
			fprintf(f,
			        "  %-14s threshold %lld, expires after %s, keys:", tuf_key_roles[i],
			        (long long)json_integer_value(json_object_get(ro, "threshold")),
			        str(ro, "expires") ? str(ro, "expires") : "?");
			json_array_foreach(json_object_get(ro, "keys"), n, k)
			{
				fputc(' ', f);
				put_safe(f, json_string_value(k));
			}
			fputc('\n', f);
		}
		fprintf(f, "  CI targets: threshold 1 (online key); the repositories share no "
		           "key\n");
		json_decref(tuf);
	}
	return finish(f, &buf, out);
}

int
tuf_root_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	json_t *j = NULL;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int r;

	(void)context;
	*out = NULL;
	if ((r = tuf_payload_parse("tuf-root", p, len, &j)) != 0)
		return r;
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		json_decref(j);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	{
		long long base = (long long)json_integer_value(json_object_get(j, "base_version"));
		fprintf(f, "TUF root change: version %lld -> %lld of both repositories\n", base,
		        base + 1);
	}
	const char *op = str(j, "op"), *role = str(j, "role");
	if (strcmp(op, "separate") == 0) {
		json_t *e;
		size_t i;
		fprintf(f,
		        "  give production keys of its own wherever it shares one with CI:\n"
		        "  every shared daemon key of prod-root, prod-targets, prod-snapshot and\n"
		        "  prod-timestamp is replaced by a new key generated in the same token,\n"
		        "  every shared external key leaves prod-root");
		if (json_array_size(json_object_get(j, "external")) > 0)
			fprintf(f, ", and these join it:");
		fputc('\n', f);
		json_array_foreach(json_object_get(j, "external"), i, e)
		{
			char *pem = NULL, kid[65] = "?";
			if (tuf_pem_normalize(str(e, "public_key"), &pem) == 0)
				tuf_keyid_pem(pem, kid);
			free(pem);
			fprintf(f, "    \"");
			put_safe(f, str(e, "name"));
			fprintf(f, "\" held by ");
			put_safe(f, str(e, "holder"));
			fprintf(f, ", keyid %s\n", kid);
		}
		fprintf(f, "  production targets are re-signed with the new key set\n"
		           "  the new roots are signed by a threshold of each repository's current "
		           "root keys and of its new ones\n");
		json_decref(j);
		return finish(f, &buf, out);
	}
	if (strcmp(op, "rotate-key") == 0) {
		fprintf(f,
		        "  rotate the %s key %s: a new key is generated in the token on "
		        "approval\n  and replaces it in the role\n",
		        role, str(j, "keyid") ? str(j, "keyid") : "(the role's only key)");
		if (strcmp(role, "prod-targets") == 0 || strcmp(role, "targets") == 0)
			fprintf(f, "  the %s targets are re-signed with the new key\n",
			        strcmp(role, "targets") == 0 ? "CI" : "production");
	} else if (strcmp(op, "set-threshold") == 0) {
		fprintf(f, "  set the %s threshold to %lld\n", role,
		        (long long)json_integer_value(json_object_get(j, "threshold")));
	} else if (strcmp(op, "add-key") == 0) {
		json_t *e = json_object_get(j, "external");
		if (e == NULL) {
			fprintf(f, "  add a %s key, generated in the daemon's token on approval\n",
			        role);
		} else {
			char *pem = NULL, kid[65] = "?";
			if (tuf_pem_normalize(str(e, "public_key"), &pem) == 0)
				tuf_keyid_pem(pem, kid);
			fprintf(f, "  add the external %s key \"", role);
			put_safe(f, str(e, "name"));
			fprintf(f, "\" held by ");
			put_safe(f, str(e, "holder"));
			fprintf(f, "\n  keyid %s\n", kid);
			if (pem != NULL) {
				fprintf(f, "  ");
				for (const char *c = pem; *c != '\0'; c++) {
					fputc(*c, f);
					if (*c == '\n' && c[1] != '\0')
						fprintf(f, "  ");
				}
			}
			free(pem);
		}
		if (strcmp(role, "prod-targets") == 0)
			fprintf(f, "  production targets are re-signed with the new key set\n");
	} else if (strcmp(op, "remove-key") == 0) {
		fprintf(f, "  remove the %s key %s\n", role, str(j, "keyid"));
		if (strcmp(role, "prod-targets") == 0)
			fprintf(f, "  production targets are re-signed with the new key set\n");
	} else {
		fprintf(f, "  set the %s expiry to %s after each signing\n", role,
		        str(j, "expires"));
		if (strcmp(role, "targets") == 0 || strcmp(role, "prod-targets") == 0)
			fprintf(f, "  the targets in force are re-signed with the new expiry\n");
	}
	if (strcmp(tuf_role_type(role), "root") == 0 || strcmp(op, "set-expiry") != 0)
		fprintf(f, "  each new root is signed by a threshold of its repository's current "
		           "root keys and of the new ones\n");
	json_decref(j);
	return finish(f, &buf, out);
}

static void
print_target(FILE *f, const char *mark, const char *name, const json_t *v)
{
	char *custom =
	        json_object_get(v, "custom") != NULL
	                ? json_dumps(json_object_get(v, "custom"), JSON_COMPACT | JSON_SORT_KEYS)
	                : NULL;

	fprintf(f, "  %s ", mark);
	put_safe(f, name);
	fprintf(f, "  length %lld sha256 %s",
	        (long long)json_integer_value(json_object_get(v, "length")),
	        str(json_object_get(v, "hashes"), "sha256"));
	if (custom != NULL) {
		fprintf(f, " custom ");
		put_safe(f, custom);
	}
	fputc('\n', f);
	free(custom);
}

int
tuf_promote_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	json_t *j = NULL, *base, *cur, *next, *v;
	const char *name;
	char *buf = NULL;
	size_t blen = 0, changes = 0;
	FILE *f;
	int r;

	(void)context;
	*out = NULL;
	if ((r = tuf_payload_parse("tuf-promote", p, len, &j)) != 0)
		return r;
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		json_decref(j);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	base = json_object_get(j, "base");
	cur = json_object_get(base, "targets"); /* NULL when base is null */
	next = json_object_get(j, "targets");
	fprintf(f, "TUF production targets: version %lld -> %lld\n",
	        (long long)json_integer_value(json_object_get(base, "version")),
	        (long long)json_integer_value(json_object_get(j, "version")));
	fprintf(f, "  expires %s -> %s\n", json_is_null(base) ? "(none)" : str(base, "expires"),
	        str(j, "expires"));
	json_object_foreach(next, name, v)
	{
		json_t *old = json_object_get(cur, name);
		if (old == NULL) {
			print_target(f, "+", name, v);
			changes++;
		} else if (!json_equal(old, v)) {
			print_target(f, "- was", name, old);
			print_target(f, "+ now", name, v);
			changes++;
		}
	}
	json_object_foreach(cur, name, v)
	{
		if (json_object_get(next, name) == NULL) {
			print_target(f, "-", name, v);
			changes++;
		}
	}
	fprintf(f, "  %zu target(s) added, removed or changed; %zu in total\n", changes,
	        json_object_size(next));
	json_decref(j);
	return finish(f, &buf, out);
}

int
tuf_push_describe(const uint8_t *p, size_t len, const char *context, char **out)
{
	json_t *j = NULL, *v;
	const char *name;
	char *buf = NULL;
	size_t blen = 0;
	FILE *f;
	int r;

	(void)context;
	*out = NULL;
	if ((r = tuf_payload_parse("tuf-push", p, len, &j)) != 0)
		return r;
	if ((f = open_memstream(&buf, &blen)) == NULL) {
		json_decref(j);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	fprintf(f, "TUF CI targets push: %zu target(s)\n", json_object_size(j));
	json_object_foreach(j, name, v) print_target(f, "+", name, v);
	json_decref(j);
	return finish(f, &buf, out);
}
