/*
 * tuf.h - qsignd's TUF repositories (CI and production flavours).
 *
 * The daemon owns two repositories, CI (online targets key, threshold 1)
 * and production (targets threshold >= 2, offline keys), and they share no
 * key: each has root, targets, snapshot and timestamp keys of its own (key
 * roles root, targets, snapshot, timestamp and prod-root, prod-targets,
 * prod-snapshot, prod-timestamp; see tuf_key_roles). A production client
 * therefore refuses the CI root chain and the CI timestamp/snapshot, and
 * the reverse. Root versions of both move together (one key state, one
 * version; each root is signed by its own repository's keys).
 *
 * Repositories initialised before the split (state without prod-root) are
 * read as production sharing CI's root, snapshot and timestamp keys and
 * signing targets with targets + prod-targets; `tuf review` reports every
 * shared key as an error until a root change with op "separate" gives
 * production keys of its own.
 *
 * State lives in the store, namespace "tuf": "keys" (version = root
 * version: the token URIs and thresholds of every role) and
 * "<repo>.<role>" (version = metadata version: the signed envelope as
 * published). Each change is built and signed in memory, audited with the
 * hashes of every file it produced, stored, and only then published into
 * the repository directories (each file written atomically; timestamp.json
 * last). All changes are serialised by one lock.
 *
 * The policy's "tuf" section (checked by tuf_policy_check):
 *   repositories  {"ci": DIR, "prod": DIR}   absolute output directories
 *   gates         {"admin": ROLE, "promote": ROLE, "online": ROLE}
 *                 policy roles that gate init and root changes (quorum,
 *                 kinds tuf-init + tuf-root), production promote (quorum,
 *                 tuf-promote) and CI pushes (online, tuf-push)
 *   roles         root | targets | snapshot | timestamp (CI) and
 *                 prod-root | prod-targets | prod-snapshot | prod-timestamp
 *                 -> {"keys": [policy key names], "threshold": N,
 *                  "expires": duration}  (the keys of root v1); no key
 *                 (compared by public key) is listed for both repositories
 *   refresh       {"interval": duration, "margin": duration} (optional):
 *                 re-sign snapshot/timestamp that expire within margin
 *   signature_ttl duration (optional, default 7d): how long an approved
 *                 change waits for external signatures after its last
 *                 approval before it expires
 *   external      {name: {"holder": principal, "public_key": SPKI PEM}}
 *                 (optional): ECDSA P-256 or Ed25519 keys held by admins outside the
 *                 daemon; roles root, prod-root and prod-targets may list
 *                 them, and the holder must approve in the gate of that
 *                 role (an admin holds one root key per repository)
 */
#ifndef QS_TUF_H
#define QS_TUF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "policy.h"
#include "reqkinds.h"

struct server;

/* Strict check of p->ext_tuf (signer/quorum/policy_ext.c). QS_ERR_INVALID with
 * the path of the problem. */
int tuf_policy_check(const struct policy *p, json_t *section);
/* The policy keys the section's roles sign with: use(arg, key index,
 * "tuf.roles.ROLE") for each (external keys are not token objects). */
int tuf_policy_key_uses(const struct policy *p, policy_key_use_fn use, void *arg);
/* The daemon's keys in the TUF state (after rotations, which generate new
 * objects): use(arg, URI, "tuf.roles.ROLE") for each. Errors: the store's. */
struct store;
int tuf_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg);

/* 1 when the "tuf" section has the layout of policies written before the
 * repositories had keys of their own (no prod-root, prod-snapshot,
 * prod-timestamp): accepted for a daemon with such repositories, refused
 * by tuf init. */
int tuf_policy_legacy(json_t *section);
/* The duration (seconds) tuf.roles gives key role `role` ("prod-timestamp",
 * ...; the metadata role's entry in the legacy layout), 0 without one. A
 * set-expiry change may shorten it for an online role, never lengthen it:
 * the signer helpers sign online metadata expiring no later than now plus
 * this (privsep_guard.h). */
int64_t tuf_policy_role_expires(const struct policy *p, const char *role);
/* 1 for the key roles that sign without a quorum: CI targets and the
 * snapshot and timestamp roles of both repositories. */
int tuf_role_online(const char *role);
/* Which repositories' targets a tuf-root change (parsed payload pl)
 * re-signs: 1 = CI, 2 = production (a bit set each). The daemon prepares
 * them by it; a signer helper lets a production targets key sign under a
 * root change only when it says so (privsep_guard.c). */
unsigned retargets(json_t *pl);

/* tuf.signature_ttl of policy p in seconds (the default without one). */
#define TUF_SIGNATURE_TTL_DEFAULT_S (7 * 86400)
int64_t tuf_signature_ttl(const struct policy *p);

/* The request kinds tuf-init, tuf-root and tuf-promote (reqkinds.c). */
extern const struct reqkind_ops tuf_init_ops, tuf_root_ops, tuf_promote_ops;

/*
 * Online CI push: merge `add` (a checked targets map, borrowed) into the CI
 * targets and remove `remove[]`, then new snapshot and timestamp. files[]
 * (name, content) are written under targets/ after their hash is checked.
 * Versions produced in *tv, *sv, *tsv.
 */
struct tuf_file {
	const char *name;
	const uint8_t *data;
	size_t len;
};
int tuf_push(struct server *s, const struct policy *p, const char *principal, json_t *add,
             char *const *remove, size_t nremove, const struct tuf_file *files, size_t nfiles,
             uint64_t *tv, uint64_t *sv, uint64_t *tsv);

/* The stored envelope of repo ("ci"|"prod") role at version (0 = latest).
 * *data malloc'd. QS_ERR_NOT_FOUND. */
int tuf_get(struct server *s, const char *repo, const char *role, uint64_t version, uint8_t **data,
            size_t *len, uint64_t *version_out);

/*
 * Offline keys held by admins (policy "tuf.external", roles root and
 * prod-targets). A TUF request is prepared once (tuf_prepare: the exact
 * documents it will publish, stored as "prep.<id>" in namespace "tuf"),
 * holders sign the canonical "signed" bytes with their own keys and hand
 * the signatures in (tuf_add_signatures: verified, audited as
 * tuf.signature, stored). Execution signs with the daemon's own keys,
 * merges, and publishes only when every threshold is met; until then the
 * approved request waits (REQKIND_WAIT).
 *
 * *prep_out: {request, kind, base, docs: [{repo, role, version, signed,
 * need: [{keyids, threshold, uris, external: {keyid: {name, holder,
 * public_key}}}], sigs: {keyid: hex}}], ...}.
 */
int tuf_prepare(struct server *s, const char *principal, const char *id, json_t **prep_out);

/* External signatures a prepared document still needs, counting only the
 * daemon's keys it can find now (the largest shortfall of its key sets). */
size_t tuf_doc_missing(struct server *s, json_t *doc);

struct tuf_ext_sig {
	uint32_t doc; /* index into docs */
	const char *keyid;
	const uint8_t *sig; /* DER */
	size_t sig_len;
};
int tuf_add_signatures(struct server *s, const char *principal, const char *id,
                       const struct tuf_ext_sig *sigs, size_t n, json_t **prep_out);

/* Lint the current root: *findings is a JSON array of {severity, text}. */
int tuf_review(struct server *s, const struct policy *p, json_t **findings, uint64_t *root_version);

/* Re-sign snapshot and timestamp of both repositories when they expire
 * within the policy's refresh margin (the timer calls this). */
int tuf_refresh(struct server *s, const struct policy *p);

/*
 * Bring the published repositories up to the store (tuf_materialise.c):
 * a change another replica made, or one made while this daemon was down.
 * start = 1: the start-up pass, once privileges are dropped; the timer
 * repeats it (start = 0) every TUF_MATERIALISE_MS when the store is
 * shared, and does nothing before the start-up pass. Logs a repository
 * it could not bring up ("tuf.materialise"); that one stays as it was.
 */
#define TUF_MATERIALISE_MS 1000
int tuf_materialise(struct server *s, int start);

/* Start / stop the refresh timer thread (no-op when the policy has no
 * "tuf" section at a given tick). */
int tuf_timer_start(struct server *s);
void tuf_timer_stop(void);

/* RPC handlers (signer/tuf/tuf_rpc.c). */
struct call_ctx;
int h_tuf_push_targets(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_tuf_get_metadata(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_tuf_review(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_tuf_prepare(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_tuf_add_signatures(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);

#endif
