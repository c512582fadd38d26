/*
 * tuf_payload.h - the TUF payload kinds of quorum requests and online
 * pushes (validate + describe for proto/payload.c's table).
 *
 *   tuf-init     {"op":"init"}: create root v1 of both repositories (CI and
 *                production) from the policy's "tuf" section.
 *   tuf-root     {"op":"rotate-key","role":R,"base_version":N},
 *                {"op":"set-threshold","role":O,"threshold":T,"base_version":N},
 *                {"op":"add-key","role":O,"base_version":N[,"external":X]},
 *                {"op":"remove-key","role":O,"keyid":K,"base_version":N},
 *                {"op":"set-expiry","role":R,"expires":D,"base_version":N} or
 *                {"op":"separate","base_version":N[,"external":[X...]]}:
 *                root version N+1 of both repositories. Each repository
 *                has roles of its own (tuf_key_roles): R is one of them, O
 *                root, prod-root or prod-targets. "separate" gives
 *                production its own keys wherever it still shares one with
 *                CI (repositories initialised before the split).
 *   tuf-promote  {"version":V,"expires":E,"targets":{...},
 *                 "base":{"version":V-1,"expires":...,"targets":{...}}|null}:
 *                the production targets that will be signed, and the ones
 *                they replace. The approver's diff is computed from these
 *                exact bytes; the daemon refuses to sign when "base" is not
 *                the production targets in force.
 *   tuf-push     a targets map (online CI push).
 */
#ifndef QS_TUF_PAYLOAD_H
#define QS_TUF_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

int tuf_init_validate(const uint8_t *p, size_t len);
int tuf_init_describe(const uint8_t *p, size_t len, const char *context, char **out);
int tuf_root_validate(const uint8_t *p, size_t len);
int tuf_root_describe(const uint8_t *p, size_t len, const char *context, char **out);
int tuf_promote_validate(const uint8_t *p, size_t len);
int tuf_promote_describe(const uint8_t *p, size_t len, const char *context, char **out);
int tuf_push_validate(const uint8_t *p, size_t len);
int tuf_push_describe(const uint8_t *p, size_t len, const char *context, char **out);

/* The key roles of the two repositories: CI root, targets, snapshot,
 * timestamp, then production's prod-root, prod-targets, prod-snapshot,
 * prod-timestamp (NULL-terminated). The repositories share no key. */
extern const char *const tuf_key_roles[];
/* "ci" or "prod": the repository of a key role. */
const char *tuf_role_repo(const char *role);
/* The metadata role ("root", "targets", ...) of a key role. */
const char *tuf_role_type(const char *role);
/* The key role of repo ("ci"|"prod") for metadata role type, or NULL. */
const char *tuf_repo_role(const char *repo, const char *type);

/* Parse a payload of kind `kind` ("tuf-init", "tuf-root", "tuf-promote",
 * "tuf-push") after validating it; *out has one reference. */
int tuf_payload_parse(const char *kind, const uint8_t *p, size_t len, json_t **out);

#endif
