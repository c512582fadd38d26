/*
 * policy.h - who may make which key sign what.
 *
 * A policy is a JSON document (see ops/policy.example.json):
 *   version        integer >= 1
 *   principals     name -> {public_key: PEM (Ed25519 | ECDSA P-256),
 *                           roles: ["admin"|"requester"|"auditor", ...]}
 *   keys           name -> {uri: "pkcs11:...;object=...", algorithm:
 *                           "ecdsa-p256"|"ed25519"|"rsa3072"}
 *   roles          name -> {keys: [key names], payloads: ["digest","blob"],
 *                           and exactly one of
 *                           online: {requesters: [...], rate_per_second: N,
 *                                    burst: N, hashes: ["sha256", ...]}
 *                           quorum: {threshold: M, approvers: [...],
 *                                    requesters: [...], request_ttl: "24h",
 *                                    allow_self_approval: false,
 *                                    hashes: ["sha256", ...]}}
 *   policy_admins  {threshold: M, admins: [...]}   (who approves the next
 *                                                   policy version)
 *
 * policy_parse() validates everything that does not need a token and
 * refuses, with the exact path of the problem, anything that could make the
 * policy fail open: unknown names, duplicates, a role without keys, a quorum
 * threshold < 1 or > approvers, an approver without the admin role, unknown
 * fields, a role mixing TUF, PKI and digest/blob payload kinds. A parsed
 * policy is immutable and reference-counted, so a new version can replace
 * it while calls still hold the old one.
 */
#ifndef QS_POLICY_H
#define QS_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "hsm.h"

#define POLICY_ROLE_ADMIN 0x1u
#define POLICY_ROLE_REQUESTER 0x2u
#define POLICY_ROLE_AUDITOR 0x4u

#define POLICY_PAYLOAD_DIGEST 0x1u
#define POLICY_PAYLOAD_BLOB 0x2u

enum policy_mode { POLICY_ONLINE = 1, POLICY_QUORUM = 2 };

struct policy_principal {
	char *name;
	char *public_pem;
	EVP_PKEY *pk;
	const char *alg; /* "ed25519" | "ecdsa-p256" */
	unsigned roles;  /* POLICY_ROLE_* */
};

struct policy_key {
	char *name;
	char *uri;
	enum hsm_keytype type;
	/* PEM X.509 certificate of the key, or NULL: listed with the keys so
	 * that tools reading it from a PKCS#11 token find it (keyring_bind
	 * checks that it certifies this key). */
	char *certificate;
};

struct policy_role {
	char *name;
	size_t *keys; /* indices into policy.keys */
	size_t nkeys;
	unsigned payloads; /* POLICY_PAYLOAD_* for digest and blob */
	char **kinds;      /* every payload kind listed (proto/payload.h names) */
	size_t nkinds;
	enum policy_mode mode;
	size_t *requesters; /* indices into policy.principals */
	size_t nrequesters;
	/* online */
	uint32_t rate_per_second; /* 0 = unlimited */
	uint32_t burst;
	/* the hashes its signatures may use (QS_HASH_* bits of statement.h);
	 * online.hashes (all of them when absent) or quorum.hashes (sha256
	 * when absent) */
	unsigned hashes;
	/* quorum */
	uint32_t threshold;
	size_t *approvers;
	size_t napprovers;
	int64_t request_ttl_s;
	int allow_self_approval;
};

struct keyring_key;

struct policy {
	uint64_t version;
	struct policy_principal *principals;
	size_t nprincipals;
	struct policy_key *keys;
	size_t nkeys;
	struct policy_role *roles;
	size_t nroles;
	uint32_t admin_threshold; /* policy_admins.threshold */
	size_t *admins;
	size_t nadmins;
	/* Token keys bound to keys[] by keyring_bind(): a parallel array,
	 * owned by the policy (the entries by the keyring). */
	struct keyring_key **bound;
	/* Module sections ("tuf", "pki"), kept as parsed JSON (NULL if absent)
	 * and validated by their modules through policy_ext_check(). */
	json_t *ext_tuf;
	json_t *ext_pki;
	char *text; /* the document as loaded */
	size_t text_len;
	unsigned refs; /* atomically managed by policy_ref/unref */
};

/* Parse and validate a policy document. *out has one reference.
 * Errors: QS_ERR_INVALID with the problem ("roles.ci-sign.keys[0]: unknown
 * key \"x\"") in qs_errdetail(), QS_ERR_NOMEM. */
int policy_parse(const char *text, size_t len, struct policy **out);

/* Read a policy file (at most QS_MAX_POLICY_BYTES) and parse it. */
int policy_load_file(const char *path, struct policy **out);

struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/*
 * Module checks of a parsed policy whose keys are bound (keyring_bind):
 * every module validates its own section (signer/quorum/policy_ext.c lists them).
 * Called wherever a policy is about to take effect (bootstrap, load,
 * proposal, apply), through keyring_policy_check(). Errors:
 * QS_ERR_INVALID with the path of the problem.
 */
int policy_ext_check(const struct policy *p);

/*
 * Every use a module section makes of a policy key (p->keys index), with a
 * purpose such as "tuf.roles.timestamp": use() is called once per use and
 * its error stops the walk. For the one-key-one-purpose check
 * (keyring_policy_check). Call only on a policy that passed
 * policy_ext_check.
 */
typedef int (*policy_key_use_fn)(void *arg, size_t key_index, const char *purpose);
int policy_ext_key_uses(const struct policy *p, policy_key_use_fn use, void *arg);

/* The same for the keys the modules' state holds (TUF keys after a
 * rotation, CA keys), by URI. st may be NULL (no state yet). */
typedef int (*policy_uri_use_fn)(void *arg, const char *uri, const char *purpose);
struct store;
int policy_ext_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg);

/* Lookups by name; NULL / -1 if absent. */
const struct policy_principal *policy_principal(const struct policy *p, const char *name);
const struct policy_role *policy_role(const struct policy *p, const char *name);
ssize_t policy_principal_index(const struct policy *p, const char *name);

/* 1 if principal index pi is listed as a requester of role r. */
int policy_role_has_requester(const struct policy_role *r, size_t pi);
/* 1 if role r lists payload kind `kind`. */
int policy_role_allows(const struct policy_role *r, const char *kind);
/* 1 if principal index pi is an approver of role r. */
int policy_role_has_approver(const struct policy_role *r, size_t pi);

/* Names for logs / Info: "admin,requester". buf of at least 32 bytes. */
const char *policy_roles_str(unsigned roles, char *buf, size_t cap);

/* Parse a duration "90s", "30m", "24h", "7d" (positive, ≤ 10 years). */
int policy_parse_duration(const char *s, int64_t *seconds);

#endif
