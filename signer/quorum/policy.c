#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "json_strict.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "payload.h"
#include "pki_payload.h"
#include "statement.h"

int
policy_parse_duration(const char *s, int64_t *seconds)
{
	char *end = NULL;
	long long n;
	int64_t mul;

	*seconds = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return qs_fail(QS_ERR_INVALID, "duration must look like 90s, 30m, 24h or 7d");
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s || end[0] == '\0' || end[1] != '\0')
		return qs_fail(QS_ERR_INVALID, "duration must look like 90s, 30m, 24h or 7d");
	switch (*end) {
	case 's':
		mul = 1;
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	default:
		return qs_fail(QS_ERR_INVALID, "duration unit must be s, m, h or d");
	}
	if (n <= 0 || n > 3650LL * 86400 / mul)
		return qs_fail(QS_ERR_INVALID, "duration must be positive and at most 10 years");
	*seconds = n * mul;
	return 0;
}

static ssize_t
find_principal(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->nprincipals; i++)
		if (strcmp(p->principals[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static ssize_t
find_key(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->nkeys; i++)
		if (strcmp(p->keys[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* A list of principal names → indices; every name must exist, appear once,
 * and (if need != 0) hold all the roles in `need`. */
static int
name_list(const struct policy *p, json_t *arr, const char *what, unsigned need, size_t **out,
          size_t *n)
{
	size_t i, *idx = NULL;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr))
		return qs_fail(QS_ERR_INVALID, "%s: must be an array of principal names", what);
	if (json_array_size(arr) > QS_MAX_POLICY_ENTRIES)
		return qs_fail(QS_ERR_INVALID, "%s: too many entries", what);
	if ((idx = calloc(json_array_size(arr) + 1, sizeof(*idx))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_array_foreach(arr, i, v)
	{
		const char *s = json_string_value(v);
		ssize_t pi;
		if (s == NULL) {
			free(idx);
			return qs_fail(QS_ERR_INVALID, "%s[%zu]: must be a string", what, i);
		}
		if ((pi = find_principal(p, s)) < 0) {
			free(idx);
			return qs_fail(QS_ERR_INVALID, "%s[%zu]: unknown principal \"%s\"", what, i,
			               s);
		}
		for (size_t j = 0; j < i; j++)
			if (idx[j] == (size_t)pi) {
				free(idx);
				return qs_fail(QS_ERR_INVALID,
				               "%s[%zu]: duplicate principal \"%s\"", what, i, s);
			}
		if ((p->principals[pi].roles & need) != need) {
			char rb[40];
			free(idx);
			return qs_fail(QS_ERR_INVALID,
			               "%s[%zu]: principal \"%s\" lacks the %s role", what, i, s,
			               policy_roles_str(need, rb, sizeof(rb)));
		}
		idx[i] = (size_t)pi;
	}
	*out = idx;
	*n = json_array_size(arr);
	return 0;
}

static int
parse_principals(struct policy *p, json_t *obj)
{
	static const char *const allowed[] = {"public_key", "roles", NULL};
	const char *name;
	json_t *v;
	int r;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return qs_fail(QS_ERR_INVALID, "principals: must be a non-empty object");
	if (json_object_size(obj) > QS_MAX_POLICY_ENTRIES)
		return qs_fail(QS_ERR_INVALID, "principals: too many entries");
	if ((p->principals = calloc(json_object_size(obj), sizeof(*p->principals))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_foreach(obj, name, v)
	{
		struct policy_principal *pr = &p->principals[p->nprincipals++];
		json_t *pk, *roles, *rv;
		size_t i;

		if ((pr->name = strdup(name)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		if (!qs_name_valid(name, QS_MAX_NAME))
			return qs_fail(QS_ERR_INVALID,
			               "principals.%.64s: name must be 1..%d of [A-Za-z0-9._@:+-]",
			               name, QS_MAX_NAME);
		if (!json_is_object(v))
			return qs_fail(QS_ERR_INVALID, "principals.%s: must be an object", name);
		if ((r = qs_json_only(v, "principal", allowed)) != 0)
			return qs_wrap(r, "principals.%s", name);
		pk = json_object_get(v, "public_key");
		if (!json_is_string(pk))
			return qs_fail(QS_ERR_INVALID, "principals.%s.public_key: missing PEM",
			               name);
		if ((r = qs_pubkey_from_pem(json_string_value(pk), json_string_length(pk),
		                            &pr->pk)) != 0)
			return qs_wrap(r, "principals.%s.public_key", name);
		pr->alg = qs_pubkey_alg(pr->pk);
		if ((pr->public_pem = strdup(json_string_value(pk))) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		roles = json_object_get(v, "roles");
		if (!json_is_array(roles) || json_array_size(roles) == 0)
			return qs_fail(QS_ERR_INVALID,
			               "principals.%s.roles: must be a non-empty array", name);
		json_array_foreach(roles, i, rv)
		{
			const char *s = json_string_value(rv);
			unsigned bit;
			if (s != NULL && strcmp(s, "admin") == 0)
				bit = POLICY_ROLE_ADMIN;
			else if (s != NULL && strcmp(s, "requester") == 0)
				bit = POLICY_ROLE_REQUESTER;
			else if (s != NULL && strcmp(s, "auditor") == 0)
				bit = POLICY_ROLE_AUDITOR;
			else
				return qs_fail(QS_ERR_INVALID,
				               "principals.%s.roles[%zu]: must be admin, requester "
				               "or auditor",
				               name, i);
			if (pr->roles & bit)
				return qs_fail(QS_ERR_INVALID,
				               "principals.%s.roles[%zu]: duplicate role", name, i);
			pr->roles |= bit;
		}
	}
	/* The same key under two names would let one holder count twice in a
	 * quorum. */
	for (size_t i = 0; i < p->nprincipals; i++)
		for (size_t j = i + 1; j < p->nprincipals; j++)
			if (EVP_PKEY_eq(p->principals[i].pk, p->principals[j].pk) == 1)
				return qs_fail(QS_ERR_INVALID,
				               "principals.%s and principals.%s share one public "
				               "key",
				               p->principals[i].name, p->principals[j].name);
	return 0;
}

/* keys.NAME.certificate: one PEM X.509 certificate (which key it certifies
 * is checked once the keys are bound: keyring_bind). */
static int
parse_certificate(struct policy_key *k, json_t *v)
{
	const char *pem = json_string_value(v);
	int r;

	if (pem == NULL || json_string_length(v) > QS_MAX_CERT_PEM ||
	    strlen(pem) != json_string_length(v))
		return qs_fail(QS_ERR_INVALID,
		               "keys.%s.certificate: must be a PEM string of at most %d bytes",
		               k->name, QS_MAX_CERT_PEM);
	if ((r = pki_key_cert_check(pem, NULL, NULL, NULL)) != 0)
		return qs_wrap(r, "keys.%s", k->name);
	if ((k->certificate = strdup(pem)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

static int
parse_keys(struct policy *p, json_t *obj)
{
	static const char *const allowed[] = {"uri", "algorithm", "certificate", NULL};
	const char *name;
	json_t *v;
	int r;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return qs_fail(QS_ERR_INVALID, "keys: must be a non-empty object");
	if (json_object_size(obj) > QS_MAX_POLICY_ENTRIES)
		return qs_fail(QS_ERR_INVALID, "keys: too many entries");
	if ((p->keys = calloc(json_object_size(obj), sizeof(*p->keys))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_foreach(obj, name, v)
	{
		struct policy_key *k = &p->keys[p->nkeys++];
		const char *uri, *alg;

		if ((k->name = strdup(name)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		if (!qs_name_valid(name, QS_MAX_NAME))
			return qs_fail(QS_ERR_INVALID, "keys.%.64s: invalid name", name);
		if (!json_is_object(v))
			return qs_fail(QS_ERR_INVALID, "keys.%s: must be an object", name);
		if ((r = qs_json_only(v, "key", allowed)) != 0)
			return qs_wrap(r, "keys.%s", name);
		uri = json_string_value(json_object_get(v, "uri"));
		alg = json_string_value(json_object_get(v, "algorithm"));
		if (uri == NULL || strncmp(uri, "pkcs11:", 7) != 0)
			return qs_fail(QS_ERR_INVALID, "keys.%s.uri: must be a pkcs11: URI", name);
		if (strstr(uri, "pin-value") != NULL)
			return qs_fail(QS_ERR_INVALID,
			               "keys.%s.uri: must not carry a PIN (pin-value)", name);
		if (alg == NULL || (k->type = hsm_keytype_parse(alg)) == HSM_KEY_NONE ||
		    strcmp(alg, hsm_keytype_name(k->type)) != 0)
			return qs_fail(QS_ERR_INVALID, "keys.%s.algorithm: must be %s", name,
			               hsm_keytype_names());
		if ((k->uri = strdup(uri)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		if (json_object_get(v, "certificate") != NULL &&
		    (r = parse_certificate(k, json_object_get(v, "certificate"))) != 0)
			return r;
		for (size_t j = 0; j + 1 < p->nkeys; j++)
			if (strcmp(p->keys[j].uri, k->uri) == 0)
				return qs_fail(QS_ERR_INVALID, "keys.%s: same uri as keys.%s", name,
				               p->keys[j].name);
	}
	return 0;
}

/* online.hashes / quorum.hashes: the hashes a digest/blob role's
 * signatures may use (qs_hash_lookup's names), each once; absent: dflt
 * (all of them for online roles, sha256 for quorum roles). A role with an
 * Ed25519 key must allow sha256, the one hash that key signs with. */
static int
parse_hashes(const struct policy *p, struct policy_role *ro, json_t *v, const char *mode,
             unsigned dflt)
{
	json_t *x;
	size_t i;

	ro->hashes = dflt;
	if (v == NULL)
		return 0;
	if (!(ro->payloads & (POLICY_PAYLOAD_DIGEST | POLICY_PAYLOAD_BLOB)))
		return qs_fail(QS_ERR_INVALID,
		               "%s.hashes: only for roles of \"digest\" or \"blob\" payloads",
		               mode);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return qs_fail(QS_ERR_INVALID,
		               "%s.hashes: must list at least one of sha256, sha384, sha512 "
		               "(or be left out)",
		               mode);
	ro->hashes = 0;
	json_array_foreach(v, i, x)
	{
		const char *s = json_string_value(x);
		unsigned bit = s != NULL && s[0] != '\0' ? qs_hash_bit(s) : 0;
		if (bit == 0)
			return qs_fail(QS_ERR_INVALID,
			               "%s.hashes[%zu]: unknown hash %s%.40s%s: sha256, sha384 "
			               "or sha512",
			               mode, i, s ? "\"" : "", s ? s : "(not a string)",
			               s ? "\"" : "");
		if (ro->hashes & bit)
			return qs_fail(QS_ERR_INVALID, "%s.hashes[%zu]: duplicate \"%s\"", mode, i,
			               s);
		ro->hashes |= bit;
	}
	for (i = 0; i < ro->nkeys; i++)
		if (!hsm_keytype_signs_digest(p->keys[ro->keys[i]].type) &&
		    !(ro->hashes & QS_HASH_SHA256))
			return qs_fail(QS_ERR_INVALID,
			               "%s.hashes: key %s (%s) signs with sha256 only: list it",
			               mode, p->keys[ro->keys[i]].name,
			               hsm_keytype_name(p->keys[ro->keys[i]].type));
	return 0;
}

static int
parse_online(struct policy *p, struct policy_role *ro, json_t *v)
{
	static const char *const allowed[] = {"requesters", "rate_per_second", "burst", "hashes",
	                                      NULL};
	json_t *x;
	int r;

	if (!json_is_object(v))
		return qs_fail(QS_ERR_INVALID, "online: must be an object");
	if ((r = qs_json_only(v, "online", allowed)) != 0)
		return r;
	ro->mode = POLICY_ONLINE;
	if ((r = name_list(p, json_object_get(v, "requesters"), "online.requesters",
	                   POLICY_ROLE_REQUESTER, &ro->requesters, &ro->nrequesters)) != 0)
		return r;
	if (ro->nrequesters == 0)
		return qs_fail(QS_ERR_INVALID, "online.requesters: must name at least one");
	if ((x = json_object_get(v, "rate_per_second")) != NULL) {
		if (!json_is_integer(x) || json_integer_value(x) < 1 ||
		    json_integer_value(x) > 1000000)
			return qs_fail(QS_ERR_INVALID,
			               "online.rate_per_second: integer 1..1000000 (omit for no "
			               "limit)");
		ro->rate_per_second = (uint32_t)json_integer_value(x);
		ro->burst = ro->rate_per_second;
	}
	if ((x = json_object_get(v, "burst")) != NULL) {
		if (ro->rate_per_second == 0)
			return qs_fail(QS_ERR_INVALID, "online.burst: needs rate_per_second");
		if (!json_is_integer(x) || json_integer_value(x) < 1 ||
		    json_integer_value(x) > 10000000)
			return qs_fail(QS_ERR_INVALID, "online.burst: integer 1..10000000");
		ro->burst = (uint32_t)json_integer_value(x);
	}
	return parse_hashes(p, ro, json_object_get(v, "hashes"), "online", QS_HASHES_ALL);
}

static int
parse_quorum(struct policy *p, struct policy_role *ro, json_t *v)
{
	static const char *const allowed[] = {"threshold",   "approvers",           "requesters",
	                                      "request_ttl", "allow_self_approval", "hashes",
	                                      NULL};
	json_t *x;
	int r;

	if (!json_is_object(v))
		return qs_fail(QS_ERR_INVALID, "quorum: must be an object");
	if ((r = qs_json_only(v, "quorum", allowed)) != 0)
		return r;
	ro->mode = POLICY_QUORUM;
	if ((r = name_list(p, json_object_get(v, "approvers"), "quorum.approvers",
	                   POLICY_ROLE_ADMIN, &ro->approvers, &ro->napprovers)) != 0)
		return r;
	x = json_object_get(v, "threshold");
	if (x == NULL)
		return qs_fail(QS_ERR_INVALID, "quorum.threshold: missing (an integer >= 1)");
	if (!json_is_integer(x) || json_integer_value(x) < 1)
		return qs_fail(QS_ERR_INVALID, "quorum.threshold: must be an integer >= 1");
	if ((size_t)json_integer_value(x) > ro->napprovers)
		return qs_fail(QS_ERR_INVALID,
		               "quorum.threshold: %lld exceeds the %zu approvers (could never "
		               "be met)",
		               (long long)json_integer_value(x), ro->napprovers);
	ro->threshold = (uint32_t)json_integer_value(x);
	if ((r = name_list(p, json_object_get(v, "requesters"), "quorum.requesters", 0,
	                   &ro->requesters, &ro->nrequesters)) != 0)
		return r;
	if (ro->nrequesters == 0)
		return qs_fail(QS_ERR_INVALID, "quorum.requesters: must name at least one");
	ro->request_ttl_s = 86400;
	if ((x = json_object_get(v, "request_ttl")) != NULL &&
	    (r = policy_parse_duration(json_string_value(x), &ro->request_ttl_s)) != 0)
		return qs_wrap(r, "quorum.request_ttl");
	x = json_object_get(v, "allow_self_approval");
	if (x != NULL && !json_is_boolean(x))
		return qs_fail(QS_ERR_INVALID, "quorum.allow_self_approval: true or false");
	ro->allow_self_approval = json_is_true(x);
	/* Requests sign with SHA-256 unless the role lists other hashes
	 * (SubmitRequest.hash); their approvals cover the hash. */
	return parse_hashes(p, ro, json_object_get(v, "hashes"), "quorum", QS_HASH_SHA256);
}

/* The family of a payload kind: what a role listing it signs with. */
static const char *
kind_family(const char *kind)
{
	if (strncmp(kind, "tuf-", 4) == 0)
		return "TUF";
	if (strncmp(kind, "pki.", 4) == 0)
		return "PKI";
	return "its own keys";
}

/* TUF and PKI roles accept only their own payload kinds: a role that signs
 * TUF metadata or certificates through its module never also signs raw
 * digests or blobs, nor the other module's payloads. */
static int
check_kind_family(const struct policy_role *ro)
{
	for (size_t k = 1; k < ro->nkinds; k++)
		if (strcmp(kind_family(ro->kinds[0]), kind_family(ro->kinds[k])) != 0)
			return qs_fail(
			        QS_ERR_INVALID,
			        "roles.%s.payloads: \"%s\" and \"%s\" in one role: a TUF "
			        "role lists only tuf-* kinds, a PKI role only pki.* kinds, and "
			        "digest/blob belong to roles of their own",
			        ro->name, ro->kinds[0], ro->kinds[k]);
	return 0;
}

static int
parse_roles(struct policy *p, json_t *obj)
{
	static const char *const allowed[] = {"keys", "payloads", "online", "quorum", NULL};
	const char *name;
	json_t *v;
	int r;

	if (!json_is_object(obj) || json_object_size(obj) == 0)
		return qs_fail(QS_ERR_INVALID, "roles: must be a non-empty object");
	if (json_object_size(obj) > QS_MAX_POLICY_ENTRIES)
		return qs_fail(QS_ERR_INVALID, "roles: too many entries");
	if ((p->roles = calloc(json_object_size(obj), sizeof(*p->roles))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_foreach(obj, name, v)
	{
		struct policy_role *ro = &p->roles[p->nroles++];
		json_t *keys, *pl, *x, *on, *qu;
		size_t i;

		if ((ro->name = strdup(name)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		if (!qs_name_valid(name, QS_MAX_NAME))
			return qs_fail(QS_ERR_INVALID, "roles.%.64s: invalid name", name);
		if (!json_is_object(v))
			return qs_fail(QS_ERR_INVALID, "roles.%s: must be an object", name);
		if ((r = qs_json_only(v, "role", allowed)) != 0)
			return qs_wrap(r, "roles.%s", name);
		keys = json_object_get(v, "keys");
		if (!json_is_array(keys) || json_array_size(keys) == 0)
			return qs_fail(QS_ERR_INVALID,
			               "roles.%s.keys: a role needs at least one key", name);
		if (json_array_size(keys) > QS_MAX_POLICY_ENTRIES)
			return qs_fail(QS_ERR_INVALID, "roles.%s.keys: too many", name);
		if ((ro->keys = calloc(json_array_size(keys), sizeof(*ro->keys))) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		json_array_foreach(keys, i, x)
		{
			const char *s = json_string_value(x);
			ssize_t ki = s ? find_key(p, s) : -1;
			if (ki < 0)
				return qs_fail(QS_ERR_INVALID,
				               "roles.%s.keys[%zu]: unknown key %s%s%s", name, i,
				               s ? "\"" : "", s ? s : "(not a string)",
				               s ? "\"" : "");
			for (size_t j = 0; j < i; j++)
				if (ro->keys[j] == (size_t)ki)
					return qs_fail(QS_ERR_INVALID,
					               "roles.%s.keys[%zu]: duplicate key", name,
					               i);
			ro->keys[ro->nkeys++] = (size_t)ki;
		}
		pl = json_object_get(v, "payloads");
		if (!json_is_array(pl) || json_array_size(pl) == 0 || json_array_size(pl) > 32)
			return qs_fail(QS_ERR_INVALID,
			               "roles.%s.payloads: must list the payload kinds the role "
			               "signs (\"digest\", \"blob\", ...)",
			               name);
		if ((ro->kinds = calloc(json_array_size(pl), sizeof(*ro->kinds))) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		json_array_foreach(pl, i, x)
		{
			const char *s = json_string_value(x);
			unsigned bit = 0;
			if (s == NULL || qs_payload_kind(s) == NULL || strcmp(s, "policy") == 0)
				return qs_fail(QS_ERR_INVALID,
				               "roles.%s.payloads[%zu]: unknown payload kind%s%s%s",
				               name, i, s ? " \"" : "", s ? s : "", s ? "\"" : "");
			if (policy_role_allows(ro, s))
				return qs_fail(QS_ERR_INVALID, "roles.%s.payloads[%zu]: duplicate",
				               name, i);
			if (strcmp(s, "digest") == 0)
				bit = POLICY_PAYLOAD_DIGEST;
			else if (strcmp(s, "blob") == 0)
				bit = POLICY_PAYLOAD_BLOB;
			ro->payloads |= bit;
			if ((ro->kinds[ro->nkinds++] = strdup(s)) == NULL)
				return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		if ((r = check_kind_family(ro)) != 0)
			return r;
		on = json_object_get(v, "online");
		qu = json_object_get(v, "quorum");
		if ((on == NULL) == (qu == NULL))
			return qs_fail(QS_ERR_INVALID,
			               "roles.%s: needs exactly one of \"online\" or \"quorum\"",
			               name);
		if (on != NULL && (r = parse_online(p, ro, on)) != 0)
			return qs_wrap(r, "roles.%s", name);
		if (qu != NULL && (r = parse_quorum(p, ro, qu)) != 0)
			return qs_wrap(r, "roles.%s", name);
		/* Ed25519 signs the message itself: a bare digest would be
		 * signed as if it were the message, which no verifier expects. */
		for (size_t k = 0; k < ro->nkeys; k++)
			if (p->keys[ro->keys[k]].type == HSM_KEY_ED25519 &&
			    (ro->payloads & POLICY_PAYLOAD_DIGEST))
				return qs_fail(QS_ERR_INVALID,
				               "roles.%s: key \"%s\" is Ed25519, which signs "
				               "messages, not digests: allow only \"blob\"",
				               name, p->keys[ro->keys[k]].name);
	}
	return 0;
}

static int
parse_admins(struct policy *p, json_t *v)
{
	static const char *const allowed[] = {"threshold", "admins", NULL};
	json_t *x;
	int r;

	if (!json_is_object(v))
		return qs_fail(QS_ERR_INVALID,
		               "policy_admins: required: {\"threshold\": M, \"admins\": [...]}");
	if ((r = qs_json_only(v, "policy_admins", allowed)) != 0)
		return r;
	if ((r = name_list(p, json_object_get(v, "admins"), "policy_admins.admins",
	                   POLICY_ROLE_ADMIN, &p->admins, &p->nadmins)) != 0)
		return r;
	x = json_object_get(v, "threshold");
	if (x == NULL)
		return qs_fail(QS_ERR_INVALID,
		               "policy_admins.threshold: missing (an integer >= 1)");
	if (!json_is_integer(x) || json_integer_value(x) < 1)
		return qs_fail(QS_ERR_INVALID, "policy_admins.threshold: must be an integer >= 1");
	if ((size_t)json_integer_value(x) > p->nadmins)
		return qs_fail(QS_ERR_INVALID,
		               "policy_admins.threshold: %lld exceeds the %zu admins",
		               (long long)json_integer_value(x), p->nadmins);
	p->admin_threshold = (uint32_t)json_integer_value(x);
	return 0;
}

int
policy_parse(const char *text, size_t len, struct policy **out)
{
	static const char *const allowed[] = {"version", "principals",    "keys",
	                                      "roles",   "policy_admins", "comment",
	                                      "tuf",     "pki",           NULL};
	struct policy *p = NULL;
	json_error_t jerr;
	json_t *root = NULL, *v;
	int r;

	*out = NULL;
	if (len > QS_MAX_POLICY_BYTES)
		return qs_fail(QS_ERR_INVALID, "policy larger than %u bytes", QS_MAX_POLICY_BYTES);
	if (memchr(text, '\0', len) != NULL)
		return qs_fail(QS_ERR_INVALID, "policy contains a NUL byte");
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	p->refs = 1;
	if ((p->text = malloc(len + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	p->text_len = len;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		r = qs_fail(QS_ERR_INVALID, "line %d: %s", jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		r = qs_fail(QS_ERR_INVALID, "top level must be an object");
		goto out;
	}
	if ((r = qs_json_only(root, "policy", allowed)) != 0)
		goto out;
	v = json_object_get(root, "version");
	if (!json_is_integer(v) || json_integer_value(v) < 1) {
		r = qs_fail(QS_ERR_INVALID, "version: must be an integer >= 1");
		goto out;
	}
	p->version = (uint64_t)json_integer_value(v);
	if ((r = parse_principals(p, json_object_get(root, "principals"))) != 0 ||
	    (r = parse_keys(p, json_object_get(root, "keys"))) != 0 ||
	    (r = parse_roles(p, json_object_get(root, "roles"))) != 0 ||
	    (r = parse_admins(p, json_object_get(root, "policy_admins"))) != 0)
		goto out;
	if ((v = json_object_get(root, "tuf")) != NULL) {
		if (!json_is_object(v)) {
			r = qs_fail(QS_ERR_INVALID, "tuf: must be an object");
			goto out;
		}
		p->ext_tuf = json_incref(v);
	}
	if ((v = json_object_get(root, "pki")) != NULL) {
		if (!json_is_object(v)) {
			r = qs_fail(QS_ERR_INVALID, "pki: must be an object");
			goto out;
		}
		p->ext_pki = json_incref(v);
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	json_decref(root);
	policy_unref(p);
	return r;
}

int
policy_load_file(const char *path, struct policy **out)
{
	char *buf = NULL;
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd = -1, r;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = qs_fail(QS_ERR_IO, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)QS_MAX_POLICY_BYTES) {
		r = qs_fail(QS_ERR_INVALID, "%s: larger than %u bytes", path, QS_MAX_POLICY_BYTES);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = qs_fail(QS_ERR_IO, "%s: read failed", path);
			goto out;
		}
		got += (size_t)n;
	}
	if ((r = policy_parse(buf, got, out)) != 0)
		r = qs_wrap(r, "%s", path);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

struct policy *
policy_ref(struct policy *p)
{
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void
policy_unref(struct policy *p)
{
	if (p == NULL || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < p->nprincipals; i++) {
		free(p->principals[i].name);
		free(p->principals[i].public_pem);
		EVP_PKEY_free(p->principals[i].pk);
	}
	free(p->principals);
	for (size_t i = 0; i < p->nkeys; i++) {
		free(p->keys[i].name);
		free(p->keys[i].uri);
		free(p->keys[i].certificate);
	}
	free(p->keys);
	for (size_t i = 0; i < p->nroles; i++) {
		free(p->roles[i].name);
		free(p->roles[i].keys);
		free(p->roles[i].requesters);
		free(p->roles[i].approvers);
		for (size_t k = 0; k < p->roles[i].nkinds; k++)
			free(p->roles[i].kinds[k]);
		free(p->roles[i].kinds);
	}
	free(p->roles);
	free(p->admins);
	free(p->bound);
	json_decref(p->ext_tuf);
	json_decref(p->ext_pki);
	free(p->text);
	free(p);
}

ssize_t
policy_principal_index(const struct policy *p, const char *name)
{
	return find_principal(p, name);
}

const struct policy_principal *
policy_principal(const struct policy *p, const char *name)
{
	ssize_t i = find_principal(p, name);
	return i < 0 ? NULL : &p->principals[i];
}

const struct policy_role *
policy_role(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->nroles; i++)
		if (strcmp(p->roles[i].name, name) == 0)
			return &p->roles[i];
	return NULL;
}

int
policy_role_has_requester(const struct policy_role *r, size_t pi)
{
	for (size_t i = 0; i < r->nrequesters; i++)
		if (r->requesters[i] == pi)
			return 1;
	return 0;
}

int
policy_role_allows(const struct policy_role *r, const char *kind)
{
	for (size_t i = 0; i < r->nkinds; i++)
		if (strcmp(r->kinds[i], kind) == 0)
			return 1;
	return 0;
}

int
policy_role_has_approver(const struct policy_role *r, size_t pi)
{
	for (size_t i = 0; i < r->napprovers; i++)
		if (r->approvers[i] == pi)
			return 1;
	return 0;
}

const char *
policy_roles_str(unsigned roles, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s%s%s", (roles & POLICY_ROLE_ADMIN) ? "admin" : "",
	         (roles & POLICY_ROLE_ADMIN) && (roles & ~POLICY_ROLE_ADMIN) ? "," : "",
	         (roles & POLICY_ROLE_REQUESTER) ? "requester" : "",
	         (roles & POLICY_ROLE_REQUESTER) && (roles & POLICY_ROLE_AUDITOR) ? "," : "",
	         (roles & POLICY_ROLE_AUDITOR) ? "auditor" : "");
	return buf;
}
