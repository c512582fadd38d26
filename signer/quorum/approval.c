/* Whether an approval counts (approval.h): one function for every path. */
#include "approval.h"

#include <stdlib.h>
#include <string.h>

#include "qs_err.h"
#include "statement.h"

int
approval_side(const struct policy *p, const char *role, const char *kind, struct approval_side *out)
{
	const struct policy_role *ro;

	memset(out, 0, sizeof(*out));
	out->pol = p;
	if (strcmp(kind, APPROVAL_POLICY_ROLE) == 0 || strcmp(role, APPROVAL_POLICY_ROLE) == 0) {
		if (strcmp(kind, APPROVAL_POLICY_ROLE) != 0 ||
		    strcmp(role, APPROVAL_POLICY_ROLE) != 0)
			return qs_fail(QS_ERR_INVALID,
			               "policy changes are role \"policy\" with kind \"policy\"");
		out->threshold = p->admin_threshold;
		out->approvers = p->admins;
		out->napprovers = p->nadmins;
		out->allow_self = 0;
		out->ttl_s = APPROVAL_POLICY_TTL_S;
		return 0;
	}
	if ((ro = policy_role(p, role)) == NULL)
		return qs_fail(QS_ERR_NOT_FOUND, "no role \"%s\" in policy version %llu", role,
		               (unsigned long long)p->version);
	if (ro->mode != POLICY_QUORUM)
		return qs_fail(QS_ERR_PRECONDITION,
		               "role %s signs online: use qsign sign, not a request", role);
	if (!policy_role_allows(ro, kind))
		return qs_fail(QS_ERR_DENIED, "role %s does not sign \"%s\" payloads", role, kind);
	out->role = ro;
	out->threshold = ro->threshold;
	out->approvers = ro->approvers;
	out->napprovers = ro->napprovers;
	out->allow_self = ro->allow_self_approval;
	out->ttl_s = ro->request_ttl_s;
	return 0;
}

/* The role's keys are the same token objects under both versions: the
 * approvers approved signing with those keys, not with their successors. */
static int
same_keys(const struct approval_side *sub, const struct approval_side *cur)
{
	const struct policy_role *a = sub->role, *b = cur->role;
	unsigned long long v = (unsigned long long)cur->pol->version;

	for (size_t i = 0; i < a->nkeys; i++) {
		const struct policy_key *ka = &sub->pol->keys[a->keys[i]];
		const struct policy_key *kb = NULL;
		for (size_t j = 0; j < b->nkeys && kb == NULL; j++)
			if (strcmp(cur->pol->keys[b->keys[j]].name, ka->name) == 0)
				kb = &cur->pol->keys[b->keys[j]];
		if (kb == NULL)
			return qs_fail(
			        QS_ERR_PRECONDITION,
			        "key %s is no longer a key of role %s in policy version %llu "
			        "(in force)",
			        ka->name, a->name, v);
		if (strcmp(ka->uri, kb->uri) != 0 || ka->type != kb->type)
			return qs_fail(QS_ERR_PRECONDITION,
			               "key %s of role %s names another token object in policy "
			               "version %llu (in force)",
			               ka->name, a->name, v);
	}
	if (b->nkeys != a->nkeys)
		return qs_fail(QS_ERR_PRECONDITION,
		               "role %s has other keys in policy version %llu (in force)", a->name,
		               v);
	return 0;
}

int
approval_rules(const struct policy *sub, const struct policy *cur, const char *role,
               const char *kind, struct approval_rules *out)
{
	unsigned long long v = (unsigned long long)cur->version;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = approval_side(sub, role, kind, &out->sub)) != 0)
		return r;
	if (cur == sub) {
		out->cur = out->sub;
	} else if ((r = approval_side(cur, role, kind, &out->cur)) != 0) {
		/* Say which rule changed, in the terms of the policy in force. */
		if (r == QS_ERR_NOT_FOUND)
			return qs_fail(QS_ERR_PRECONDITION,
			               "role %s was removed in policy version %llu (in force)",
			               role, v);
		if (r == QS_ERR_PRECONDITION)
			return qs_fail(QS_ERR_PRECONDITION,
			               "role %s is no longer a quorum role in policy version %llu "
			               "(in force)",
			               role, v);
		if (r == QS_ERR_DENIED)
			return qs_fail(QS_ERR_PRECONDITION,
			               "role %s no longer signs \"%s\" payloads in policy version "
			               "%llu (in force)",
			               role, kind, v);
		return r;
	} else if (out->sub.role != NULL && (r = same_keys(&out->sub, &out->cur)) != 0) {
		return r;
	}
	out->threshold =
	        out->sub.threshold > out->cur.threshold ? out->sub.threshold : out->cur.threshold;
	out->allow_self = out->sub.allow_self && out->cur.allow_self;
	return 0;
}

int
approval_listed(const struct approval_side *sd, const char *name)
{
	for (size_t i = 0; i < sd->napprovers; i++)
		if (strcmp(sd->pol->principals[sd->approvers[i]].name, name) == 0)
			return 1;
	return 0;
}

int
approval_may_vote(const struct approval_rules *ar, const char *name, const char *submitter)
{
	const char *role = ar->sub.role ? ar->sub.role->name : APPROVAL_POLICY_ROLE;

	if (!approval_listed(&ar->sub, name))
		return qs_fail(QS_ERR_DENIED,
		               "%s is not an approver of %s under policy version %llu (the "
		               "request's)",
		               name, role, (unsigned long long)ar->sub.pol->version);
	if (!approval_listed(&ar->cur, name))
		return qs_fail(QS_ERR_DENIED,
		               "%s is no longer an approver of %s under policy version %llu (in "
		               "force)",
		               name, role, (unsigned long long)ar->cur.pol->version);
	if (!ar->allow_self && strcmp(name, submitter) == 0)
		return qs_fail(QS_ERR_DENIED,
		               "%s submitted this request and role %s does not allow "
		               "self-approval",
		               name, role);
	return 0;
}

int
approval_vote_counts(const struct approval_rules *ar, const char *identity,
                     const struct store_request *r, const struct store_vote *v)
{
	const struct policy_principal *pr;
	uint8_t *stmt = NULL;
	size_t len = 0;
	int rc;

	if ((rc = approval_may_vote(ar, v->approver, r->submitter)) != 0)
		return rc;
	if ((pr = policy_principal(ar->cur.pol, v->approver)) == NULL)
		return qs_fail(QS_ERR_DENIED, "%s is not in policy version %llu (in force)",
		               v->approver, (unsigned long long)ar->cur.pol->version);
	if ((rc = qs_stmt_approval_hash(identity, r->id, r->role, r->kind, r->digest, r->hash,
	                                v->approve, v->time, &stmt, &len)) != 0)
		return rc;
	if (qs_sig_verify(pr->pk, stmt, len, v->sig, v->sig_len) != 0)
		rc = qs_fail(QS_ERR_UNAUTH,
		             "vote signature does not verify with %s's key in policy version %llu "
		             "(in force): the statement must cover this request, role, kind, "
		             "payload digest, signature hash, decision and time",
		             v->approver, (unsigned long long)ar->cur.pol->version);
	free(stmt);
	return rc;
}

size_t
approval_count(const struct approval_rules *ar, const char *identity, const struct store_request *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nvotes; i++)
		if (r->votes[i].approve && approval_vote_counts(ar, identity, r, &r->votes[i]) == 0)
			n++;
	qs_errclear();
	return n;
}

size_t
approval_eligible(const struct approval_rules *ar, const char *submitter)
{
	size_t n = 0;

	for (size_t i = 0; i < ar->cur.napprovers; i++)
		if (approval_may_vote(ar, ar->cur.pol->principals[ar->cur.approvers[i]].name,
		                      submitter) == 0)
			n++;
	qs_errclear();
	return n;
}
