/*
 * approval.h - whether an approval counts: the one place that decides it.
 *
 * A quorum request is judged under two policy versions: the one it was
 * submitted with and the one in force when a vote is cast or the request is
 * executed. The request stands only if the policy in force still has its
 * role, as a quorum role that signs its payload kind with the same keys.
 * Then:
 *  - the threshold is the higher of the two versions' thresholds;
 *  - a principal may vote only if it is an approver under both versions
 *    (and is not the submitter, unless both versions allow self-approval);
 *  - a stored vote counts only if, in addition, its signature verifies with
 *    the principal's key in the policy in force (a replaced key ends the
 *    votes it made).
 *
 * Depends on the policy and the approval statement (proto/statement.h)
 * only, so that the daemon's vote and execution paths and a signer helper
 * reach the same answer.
 */
#ifndef QS_APPROVAL_H
#define QS_APPROVAL_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "store.h"

#define APPROVAL_POLICY_ROLE "policy" /* the pseudo-role (and kind) of policy changes */
#define APPROVAL_POLICY_TTL_S (7 * 86400)

/* The approval rules of one request under one policy version. */
struct approval_side {
	const struct policy *pol;
	const struct policy_role *role; /* NULL for policy changes */
	uint32_t threshold;
	const size_t *approvers; /* indices into pol->principals */
	size_t napprovers;
	int allow_self;
	int64_t ttl_s;
};

/* The rules of a request under its submission version and the version in
 * force (the same pointer when they are one version). */
struct approval_rules {
	struct approval_side sub, cur;
	uint32_t threshold; /* max(sub.threshold, cur.threshold) */
	int allow_self;     /* both allow it */
};

/*
 * The rules of (role, kind) under one policy version. Errors:
 * QS_ERR_INVALID (policy role/kind mismatch), QS_ERR_NOT_FOUND (no such
 * role), QS_ERR_PRECONDITION (an online role), QS_ERR_DENIED (the role does
 * not sign this kind); the detail names the version.
 */
int approval_side(const struct policy *p, const char *role, const char *kind,
                  struct approval_side *out);

/*
 * The rules of a request submitted under `sub` as the policy `cur` in force
 * sees it. Fails with QS_ERR_PRECONDITION and a detail that says which rule
 * changed in `cur` (role removed, no longer a quorum role, payload kind no
 * longer allowed, keys changed) when `cur` no longer allows the request.
 * Errors of `sub` are those of approval_side().
 */
int approval_rules(const struct policy *sub, const struct policy *cur, const char *role,
                   const char *kind, struct approval_rules *out);

/* 1 if principal `name` is an approver under that one version. */
int approval_listed(const struct approval_side *sd, const char *name);

/*
 * May principal `name` vote on a request of `submitter`? 0, or
 * QS_ERR_DENIED with the reason (not an approver under one of the versions,
 * or self-approval not allowed).
 */
int approval_may_vote(const struct approval_rules *ar, const char *name, const char *submitter);

/*
 * Does vote v on request r count (as the approval or rejection it states)?
 * 0 if the voter may vote (approval_may_vote) and the vote's signature over
 * the approval statement rebuilt from r (server `identity`) verifies with
 * the voter's key in the policy in force. QS_ERR_DENIED (not eligible) or
 * QS_ERR_UNAUTH (signature does not verify with the current key), each with
 * a detail; QS_ERR_NOMEM.
 */
int approval_vote_counts(const struct approval_rules *ar, const char *identity,
                         const struct store_request *r, const struct store_vote *v);

/* Stored approve votes of r that count. */
size_t approval_count(const struct approval_rules *ar, const char *identity,
                      const struct store_request *r);

/* How many principals may vote on a request of `submitter`. */
size_t approval_eligible(const struct approval_rules *ar, const char *submitter);

#endif
