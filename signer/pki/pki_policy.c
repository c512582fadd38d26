/*
 * The policy's "pki" section:
 *   "pki": {
 *     "factory": "demo-factory",               OU of every certificate
 *     "ca_token": "pkcs11:token=qsign-demo",   where CA keys are generated
 *     "roles": {"root": R, "tls": R, "device_ca": R, "device": R},
 *     "validity_days": {"root": 7300, "tls": 825, "device_ca": 3650,
 *                       "device": 3650},        (optional; maxima for
 *                                                requests, device = used)
 *     "crl_days": 30,                           (optional) CRL nextUpdate
 *     "revoke_reason": "privilegeWithdrawn"     (optional) revoke default
 *   }
 * root, tls and device_ca name quorum roles; device names the online role
 * whose requesters issue device certificates. A role that lists a pki.*
 * kind must be the one named here for it, and PKI roles may not sign raw
 * digests or blobs: the key a role must list to satisfy the policy schema
 * is then never used by them. Anything else is refused (never fail open).
 */
#include <string.h>

#include <openssl/x509v3.h>

#include "pki.h"
#include "json_strict.h"
#include "qs_err.h"
#include "statement.h"

#define DEFAULT_DAYS_ROOT 7300
#define DEFAULT_DAYS_TLS 825
#define DEFAULT_DAYS_DEVICE_CA 3650
#define DEFAULT_DAYS_DEVICE 3650
#define DEFAULT_CRL_DAYS 30
#define MAX_CRL_DAYS 366
#define MAX_TOKEN_URI 512

static int
days(json_t *o, const char *key, int64_t def, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
		return qs_fail(QS_ERR_INVALID, "%s: must be an integer 1..%lld", key,
		               (long long)max);
	*out = json_integer_value(v);
	return 0;
}

/* Role `key` of the section: present, of mode `mode`, listing `kinds`. */
static int
role(const struct policy *p, json_t *roles, const char *key, enum policy_mode mode,
     const char *const *kinds, const struct policy_role **out)
{
	json_t *v = json_object_get(roles, key);
	const struct policy_role *ro;

	if (!json_is_string(v))
		return qs_fail(QS_ERR_INVALID, "roles.%s: required (a role name)", key);
	if ((ro = policy_role(p, json_string_value(v))) == NULL)
		return qs_fail(QS_ERR_INVALID, "roles.%s: no role \"%.64s\" in the policy", key,
		               json_string_value(v));
	if (ro->mode != mode)
		return qs_fail(QS_ERR_INVALID, "roles.%s: role %s must be %s", key, ro->name,
		               mode == POLICY_QUORUM ? "a quorum role" : "an online role");
	if (ro->payloads & (POLICY_PAYLOAD_DIGEST | POLICY_PAYLOAD_BLOB))
		return qs_fail(QS_ERR_INVALID,
		               "roles.%s: role %s also signs digests/blobs: PKI roles sign only "
		               "pki.* payloads",
		               key, ro->name);
	for (size_t i = 0; kinds[i] != NULL; i++)
		if (!policy_role_allows(ro, kinds[i]))
			return qs_fail(QS_ERR_INVALID, "roles.%s: role %s must list payload %s",
			               key, ro->name, kinds[i]);
	*out = ro;
	return 0;
}

static int
token_uri_ok(const char *s)
{
	static const char *const banned[] = {"object=",    "id=",   "pin-value",
	                                     "pin-source", "type=", NULL};

	if (strncmp(s, "pkcs11:", 7) != 0 || strlen(s) > MAX_TOKEN_URI || strchr(s, '?') != NULL)
		return 0;
	for (size_t i = 0; banned[i] != NULL; i++)
		if (strstr(s, banned[i]) != NULL)
			return 0;
	return 1;
}

/* Every role listing a pki.* kind is the role the section names for it. */
static int
no_side_doors(const struct policy *p, const struct pki_conf *c)
{
	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		for (size_t k = 0; k < ro->nkinds; k++) {
			const char *kd = ro->kinds[k];
			const struct policy_role *want;
			if (strncmp(kd, "pki.", 4) != 0)
				continue;
			if (strcmp(kd, PKI_KIND_CA_CREATE) == 0)
				want = c->role_root;
			else if (strcmp(kd, PKI_KIND_TLS) == 0)
				want = c->role_tls;
			else if (strcmp(kd, PKI_KIND_DEVICE) == 0)
				want = c->role_device;
			else
				want = c->role_device_ca;
			if (want != ro)
				return qs_fail(QS_ERR_INVALID,
				               "roles.%s lists %s, which the pki section gives to "
				               "role %s",
				               ro->name, kd, want->name);
		}
	}
	return 0;
}

int
pki_conf_get(const struct policy *p, struct pki_conf *c)
{
	static const char *const top[] = {"factory",  "ca_token",      "roles",   "validity_days",
	                                  "crl_days", "revoke_reason", "comment", NULL};
	static const char *const role_keys[] = {"root", "tls", "device_ca", "device", NULL};
	static const char *const day_keys[] = {"root", "tls", "device_ca", "device", NULL};
	static const char *const k_root[] = {PKI_KIND_CA_CREATE, NULL};
	static const char *const k_tls[] = {PKI_KIND_TLS, NULL};
	static const char *const k_dca[] = {PKI_KIND_DEVICE_CA, PKI_KIND_CA_STATE,
	                                    PKI_KIND_DEVICE_REVOKE, NULL};
	static const char *const k_dev[] = {PKI_KIND_DEVICE, NULL};
	json_t *s = p->ext_pki, *v, *roles, *vd;
	int r;

	memset(c, 0, sizeof(*c));
	if (s == NULL)
		return qs_fail(QS_ERR_PRECONDITION, "the policy has no \"pki\" section");
	if ((r = qs_json_only(s, "pki", top)) != 0)
		return r;
	v = json_object_get(s, "factory");
	if (!json_is_string(v) || !qs_name_valid(json_string_value(v), PKI_MAX_ATTR) ||
	    strchr(json_string_value(v), '@') || strchr(json_string_value(v), ':') ||
	    strchr(json_string_value(v), '+'))
		return qs_fail(QS_ERR_INVALID, "pki.factory: required, 1..%d of [A-Za-z0-9._-]",
		               PKI_MAX_ATTR);
	c->factory = json_string_value(v);
	v = json_object_get(s, "ca_token");
	if (!json_is_string(v) || !token_uri_ok(json_string_value(v)))
		return qs_fail(QS_ERR_INVALID,
		               "pki.ca_token: required, a pkcs11: URI selecting a token only (no "
		               "object, id, type or PIN attributes)");
	c->ca_token = json_string_value(v);
	roles = json_object_get(s, "roles");
	if ((r = qs_json_only(roles, "pki.roles", role_keys)) != 0 ||
	    (r = role(p, roles, "root", POLICY_QUORUM, k_root, &c->role_root)) != 0 ||
	    (r = role(p, roles, "tls", POLICY_QUORUM, k_tls, &c->role_tls)) != 0 ||
	    (r = role(p, roles, "device_ca", POLICY_QUORUM, k_dca, &c->role_device_ca)) != 0 ||
	    (r = role(p, roles, "device", POLICY_ONLINE, k_dev, &c->role_device)) != 0)
		return qs_wrap(r, "pki");
	vd = json_object_get(s, "validity_days");
	if (vd != NULL && (r = qs_json_only(vd, "pki.validity_days", day_keys)) != 0)
		return r;
	if ((r = days(vd, "root", DEFAULT_DAYS_ROOT, PKI_MAX_VALIDITY_DAYS, &c->days_root)) != 0 ||
	    (r = days(vd, "tls", DEFAULT_DAYS_TLS, PKI_MAX_VALIDITY_DAYS, &c->days_tls)) != 0 ||
	    (r = days(vd, "device_ca", DEFAULT_DAYS_DEVICE_CA, PKI_MAX_VALIDITY_DAYS,
	              &c->days_device_ca)) != 0 ||
	    (r = days(vd, "device", DEFAULT_DAYS_DEVICE, PKI_MAX_VALIDITY_DAYS, &c->days_device)) !=
	            0)
		return qs_wrap(r, "pki.validity_days");
	if ((r = days(s, "crl_days", DEFAULT_CRL_DAYS, MAX_CRL_DAYS, &c->crl_days)) != 0)
		return qs_wrap(r, "pki");
	c->revoke_reason = CRL_REASON_PRIVILEGE_WITHDRAWN;
	if ((v = json_object_get(s, "revoke_reason")) != NULL) {
		if (!json_is_string(v) ||
		    (c->revoke_reason = pki_reason_code(json_string_value(v))) < 0)
			return qs_fail(QS_ERR_INVALID,
			               "pki.revoke_reason: keyCompromise, cACompromise, "
			               "affiliationChanged, superseded, cessationOfOperation or "
			               "privilegeWithdrawn");
	}
	return no_side_doors(p, c);
}

int
pki_policy_check(const struct policy *p, json_t *section)
{
	struct pki_conf c;

	(void)section; /* the same object as p->ext_pki */
	return pki_conf_get(p, &c);
}
