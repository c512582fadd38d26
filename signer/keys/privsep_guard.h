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
 *  - any other key signs what it is asked (online roles, module keys).
 *
 * Every refusal returns QS_ERR_DENIED with the reason and logs it as
 * "privsep.refused request=... reason=...".
 */
#ifndef QS_PRIVSEP_GUARD_H
#define QS_PRIVSEP_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hsm.h"
#include "policy.h"
#include "privsep_wire.h"

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
};

/* Parse the bootstrap policy file and read the checkpoint's tree size
 * into *b (never fails: what is missing is recorded for the refusals). */
void ps_guard_boot_read(const struct config *c, struct ps_guard_boot *b);

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

/* PS_SIGN, PS_SIGN_MANY (request names it): 0 if the key whose SPKI is der
 * may sign inputs the helper cannot interpret. */
int ps_guard_plain(struct ps_guard *g, const char *request, const uint8_t *der, size_t der_len);

/*
 * PS_SIGN_QUORUM with the key (der, type): 0 if the approvals of request ev
 * over payload count under the chain (threshold, approvers, signatures,
 * the key is one of the role's); then *in, *in_len is the token's input:
 * dg (filled, 32 bytes) or the payload itself.
 */
int ps_guard_quorum(struct ps_guard *g, const uint8_t *der, size_t der_len, enum hsm_keytype type,
		    const struct ps_evidence *ev, const uint8_t *payload, size_t len,
		    uint8_t dg[32], const uint8_t **in, size_t *in_len);

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
