/*
 * reqkinds.h - request kinds beyond "digest", "blob" and "policy".
 *
 * A module (TUF, PKI, ...) that needs a quorum for an operation registers a
 * payload kind in proto/payload.c (validate + describe, shared with clients)
 * and its daemon-side operations here. Roles opt in by listing the kind in
 * their "payloads". The request machinery (votes, threshold, persistence,
 * re-verification of approvals) is the same for every kind; only what
 * happens at submission and on quorum differs.
 */
#ifndef QS_REQKINDS_H
#define QS_REQKINDS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "store.h"

struct server;

struct reqkind_ops {
	const char *kind;
	/* Checks that need daemon state, at submission (e.g. "the root CA
	 * already exists"). NULL = none. 0 or a QS_ERR_* with detail. */
	int (*submit_check)(struct server *s, const struct policy *p, const struct policy_role *ro,
	                    const char *submitter, const uint8_t *payload, size_t len);
	/* Carry out an approved request under policy p (the version it was
	 * submitted with): sign, publish, issue. May return signatures (*sigs
	 * malloc'd array of *nsigs) and a result blob (*result malloc'd) that
	 * Fetch hands out. Called with the request lock held, once per request
	 * (again after a crash before it was recorded: make it idempotent).
	 * REQKIND_WAIT (with a detail) = not yet: the request stays APPROVED
	 * and is executed again when the module calls requests_retry(). */
	int (*execute)(struct server *s, const struct store_request *r, const struct policy *p,
	               const struct policy_role *ro, struct store_reqsig **sigs, size_t *nsigs,
	               uint8_t **result, size_t *result_len);
};

#define REQKIND_WAIT 1

/* Execute request id again if it is APPROVED (a module that returned
 * REQKIND_WAIT calls this when what it waited for arrived). Takes the
 * request lock: never call it holding a module lock. */
void requests_retry(struct server *s, const char *id);

/* 1 if request r can no longer proceed by the clock: a pending request past
 * its request_ttl, an approved TUF change waiting for external signatures
 * past tuf.signature_ttl since its last approval. *why (may be NULL) gets
 * the reason. Decided by the clock alone, never by the recorded state. */
int requests_expired(struct server *s, const struct store_request *r, const char **why);

/* The policy of version v (a request's), with a reference: policy_unref. */
int policy_at(struct server *s, uint64_t v, struct policy **out);

/* The registered operations of `kind`, or NULL. */
const struct reqkind_ops *reqkind_find(const char *kind);

#endif
