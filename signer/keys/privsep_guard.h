/*
 * privsep_guard.h - what a signer helper checks before its token signs.
 *
 * The helper trusts nothing the front says (privsep.h). Its guard holds
 * what it verified itself:
 *  - the policy chain: version 1 is the bootstrap policy file, parsed by
 *    the launcher before the front takes any input; each later version is
 *    accepted only with a threshold of the previous version's
 *    policy_admins' approval signatures (approval.h, the daemon's own rule);
 *  - the public keys of the current version's policy keys, found in the
 *    helper's own tokens, so that a key is recognised by its public key
 *    whatever URI the front names it by;
 *  - the audit log key (config audit.key) and the checkpoint high-water
 *    mark: the tree size of the last checkpoint signed, at least that of
 *    the checkpoint on disk when the launcher and the helper started.
 *
 * Purposes, by public key:
 *  - the audit log key signs only checkpoints of the configured origin
 *    whose tree size does not shrink (ps_guard_checkpoint);
 *  - a "quorum key" -- a key that only quorum roles with payload kinds
 *    "digest" / "blob" list, and that no module section (tuf, pki) names --
 *    signs only a request whose approvals count (ps_guard_quorum);
 *  - a TUF key -- one that tuf.roles of the newest version names, or whose
 *    token label is "tuf-ROLE-v..." (the keys root changes generate) --
 *    signs only through PS_SIGN_TUF, and only the canonical "signed" JSON
 *    of a document of its own role type for its own repository, version
 *    above the published one (read by the launcher, like the checkpoint)
 *    and above the last one it signed there, or that very document again
 *    (ps_guard_tuf); an online TUF role's (CI targets, snapshot,
 *    timestamp) also expiring no later than now plus tuf.roles' bound. A
 *    root (of either repository) or production targets is signed only on
 *    the evidence of the approved tuf-init / tuf-root / tuf-promote
 *    request that makes it: a threshold of its approvals count under the
 *    chain, and the document is the one its payload names (the binding is
 *    described at tuf_bound in privsep_guard.c). Such a key may sign
 *    another document of the version it signed last (a change that waited
 *    for external signatures and was replaced) -- with its own approvals;
 *  - the key of an online role signs only digests of the hashes its
 *    online roles allow (online.hashes; the hash told by the digest's
 *    length), and with a rate at most its role's
 *    aggregate rate (rate and burst times the role's requesters: the sum
 *    of the front's per-principal buckets), in this helper
 *    (ps_guard_plain);
 *  - a CA key (token label PKI_ROOT_LABEL or PKI_DCA_LABEL_PREFIX...)
 *    signs only through PS_SIGN_X509, certificates of its profiles within
 *    the pki section's constraints and CRLs (ps_guard_x509); a root CA or
 *    device CA certificate (x509_ca_bound) and a CRL that revokes what the
 *    CRL the key signed before it does not (crl_bound) only on the
 *    evidence of the approved pki request that names that operation; so is
 *    a device CA list that drops (disables) or adds a CA (x509_calist);
 *  - any other key signs what it is asked.
 * Key generation: only labels in the daemon's namespace, never over an
 * existing key (ps_guard_keygen).
 *
 * Every refusal returns QS_ERR_DENIED with the reason and logs it as
 * "privsep.refused request=... reason=...".
 */
#ifndef QS_PRIVSEP_GUARD_H
#define QS_PRIVSEP_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "hsm.h"
#include "policy.h"
#include "privsep_wire.h"

struct ratelimit_shared;
struct ps_guard_tuf_marks;

/* TUF high-water marks the launcher's shared table holds (one per TUF key
 * and repository). */
#define PS_GUARD_TUF_MARKS 256

/* An online role's bucket in the helpers holds this many seconds of the
 * role's rate on top of its burst (privsep_guard.c says why). */
#define PS_GUARD_RATE_SLACK_S 2

struct ps_guard;

/* Find the key at uri in the helper's tokens: its SPKI DER (*der
 * malloc'd). Non-zero if there is none. */
typedef int (*ps_guard_spki_fn)(void *arg, const char *uri, uint8_t **der, size_t *der_len);

/* What the launcher read before the front took input: the bootstrap policy
 * (or why there is none) and the checkpoint's tree size on disk. */
struct ps_guard_boot {
	struct policy *v1;  /* NULL if the file is not a valid version 1 */
	char v1_error[256]; /* why, when v1 is NULL */
	uint64_t hwm;       /* 0 without a checkpoint */
	/* The versions published in the bootstrap policy's TUF repositories
	 * ([0] ci, [1] prod; by PS_GUARD_TUF_TYPES), 0 where none is. */
	uint64_t tuf_seed[2][4];
	/* The SHA-256 of the canonical JSON of the production targets map
	 * published then (when have_targets): the contents a root change may
	 * re-sign (ps_guard_tuf). */
	uint8_t prod_targets[32];
	int have_targets;
	/* The online roles' rate buckets (ratelimit_shared_new): made by the
	 * launcher after the front forked it, so every helper and every
	 * restarted helper takes from them and the front cannot touch them.
	 * Not read from any file: ps_guard_boot_read clears it. */
	struct ratelimit_shared *rates;
	/* The TUF high-water marks, one per key and repository, likewise
	 * shared by every helper and restarted helper. */
	struct ps_guard_tuf_marks *tuf_marks;
};

/* The metadata role types, in the order of tuf_seed. */
#define PS_GUARD_TUF_TYPES                                                                         \
	{                                                                                          \
		"root", "targets", "snapshot", "timestamp"                                         \
	}

/* Parse the bootstrap policy file and read the checkpoint's tree size
 * into *b (never fails: what is missing is recorded for the refusals). */
void ps_guard_boot_read(const struct config *c, struct ps_guard_boot *b);
/* Map b's shared tables (rates, tuf_marks): in the launcher, before the
 * first helper forks (and never in the front). */
int ps_guard_boot_share(struct ps_guard_boot *b);

/*
 * The guard of one helper, whose tokens are open: takes a reference to
 * boot->v1, finds the audit key and the policy keys (through spki), reads
 * the checkpoint on disk and verifies it with the audit key. Errors:
 * QS_ERR_NOMEM only; anything else missing makes the requests that need it
 * refused.
 */
int ps_guard_new(const struct config *c, const struct ps_guard_boot *boot, ps_guard_spki_fn spki,
                 void *arg, struct ps_guard **out);
void ps_guard_free(struct ps_guard *g);

/* The newest version of the verified chain, 0 if there is none. */
uint64_t ps_guard_version(const struct ps_guard *g);

/* PS_POLICY: accept the next policy version `text` if ev holds a threshold
 * of valid approvals of exactly this text under the chain's rules. A
 * version already in the chain with the same text is accepted again. */
int ps_guard_policy(struct ps_guard *g, const struct ps_evidence *ev, const uint8_t *text,
                    size_t len);

/* PS_SIGN, PS_SIGN_MANY (request names it): 0 if the key whose SPKI is der,
 * token label `label` and type `type` may sign n inputs of lens[0..n)
 * bytes the helper cannot interpret otherwise: a digest-signing key's
 * inputs are digests of hashes its online roles allow (online.hashes), and
 * n is taken from its role's rate when it has one. */
int ps_guard_plain(struct ps_guard *g, const char *request, const uint8_t *der, size_t der_len,
                   const char *label, enum hsm_keytype type, const size_t *lens, uint32_t n);

/*
 * PS_SIGN_TUF: 0 if the key (der, label, type) is a TUF key whose role may
 * sign `text` for repository repo: the canonical JSON of a "signed" part of
 * its role's type, a version above the high-water mark (or the very
 * document it signed last), an online role's expiry within the bound.
 * *in, *in_len is the token's input (dg or the text); pass *mark to
 * ps_guard_tuf_signed once signed, or to ps_guard_tuf_release if the
 * token failed: on 0 it returns holding the lock of the shared mark table
 * (ps_guard_boot), which these release. A full table is a refusal.
 */
struct ps_guard_tuf_mark {
	ssize_t slot; /* -1: nothing held */
	uint8_t key[32];
	int repo;
	uint64_t version;
	uint8_t dg[32];
	int promoted;        /* a promote's production targets, whose map's */
	uint8_t targets[32]; /* digest a later root change may re-sign */
};
int ps_guard_tuf(struct ps_guard *g, const uint8_t *der, size_t der_len, const char *label,
                 enum hsm_keytype type, const char *repo, const uint8_t *text, size_t len,
                 const struct ps_evidence *ev, const uint8_t *payload, size_t plen, uint8_t dg[32],
                 const uint8_t **in, size_t *in_len, struct ps_guard_tuf_mark *mark);
void ps_guard_tuf_signed(struct ps_guard *g, const struct ps_guard_tuf_mark *mark);
void ps_guard_tuf_release(struct ps_guard *g, const struct ps_guard_tuf_mark *mark);

/*
 * PS_SIGN_X509 (kind: enum ps_x509_kind): 0 if the key labelled `label` is
 * a CA key of the daemon that may sign data within the newest policy
 * version's pki section: a device CA's key only device certificates
 * (subject CN=<UUID>, OU=<factory>, the device profile's key usages,
 * validity within pki.validity_days.device) and CRLs; the root CA's key
 * root, device CA and TLS certificates within their profiles' bounds, CRLs
 * (nextUpdate within crl_days) and the list of enabled device CAs of the
 * factory. dg is then the SHA-256 of the TBS structure as the helper
 * encodes it (or of the list), the token's input. A root or device CA
 * certificate needs ev/payload, its approved request; a CRL is judged
 * against prev (prev_len), the CRL the key (SPKI der) signed before it,
 * and what it adds needs ev/payload, the approved revocation; the CA list
 * likewise against prev with its signature prev_sig: what it drops or adds
 * needs the approved request that disables or enables (x509_calist).
 */
int ps_guard_x509(struct ps_guard *g, const uint8_t *der, size_t der_len, const char *label,
                  uint8_t kind, const uint8_t *data, size_t len, const struct ps_evidence *ev,
                  const uint8_t *payload, size_t plen, const uint8_t *prev, size_t prev_len,
                  const uint8_t *prev_sig, size_t prev_sig_len, uint8_t dg[32]);

/* PS_KEYGEN: 0 if label is in the daemon's namespace (tuf-ROLE-vN-XXXXXXXX
 * of tuf_repo.c, qsign-pki-* of pki.c, qsignd-identity of auth.c) and
 * exists(arg, label) says no key has it. QS_ERR_EXISTS for a taken label
 * (pki.c finds its key after a crash that way), else QS_ERR_DENIED. */
int ps_guard_keygen(const char *label, int (*exists)(void *arg, const char *label), void *arg);

/*
 * PS_SIGN_QUORUM with the key (der, type): 0 if the approvals of request ev
 * over payload count under the chain (threshold, approvers, signatures,
 * the key is one of the role's); then *in, *in_len is the token's input:
 * dg (QS_DIGEST_MAX bytes; filled with the digest of ev->hash, the one
 * the approvals cover) or the payload itself.
 */
int ps_guard_quorum(struct ps_guard *g, const uint8_t *der, size_t der_len, enum hsm_keytype type,
                    const struct ps_evidence *ev, const uint8_t *payload, size_t len, uint8_t *dg,
                    const uint8_t **in, size_t *in_len);

/*
 * PS_SIGN_CHECKPOINT: 0 if der is the audit key and text a checkpoint of
 * the configured origin not smaller than the high-water mark; *size is its
 * tree size (pass it to ps_guard_checkpoint_signed once signed) and *in,
 * *in_len the token's input (dg or the text).
 */
int ps_guard_checkpoint(struct ps_guard *g, const uint8_t *der, size_t der_len,
                        enum hsm_keytype type, const uint8_t *text, size_t len, uint8_t dg[32],
                        const uint8_t **in, size_t *in_len, uint64_t *size);
void ps_guard_checkpoint_signed(struct ps_guard *g, uint64_t size);

#endif
