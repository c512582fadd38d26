/*
 * Quorum-gated requests: submit, vote, cancel, expire, sign on quorum.
 *
 * Rules a reader should be able to check here:
 *  - a request is judged under the policy version it was submitted with
 *    AND the version in force, at every vote and again at execution; which
 *    votes count is decided by signer/quorum/approval.c alone (approvers under both
 *    versions, the higher threshold, signatures that verify with the keys in
 *    force); a request the policy in force no longer allows fails with the
 *    rule that changed;
 *  - a vote is a signature by the voter's own key over the approval
 *    statement (proto/statement.h) rebuilt from the stored request, so it
 *    covers exactly the stored payload digest;
 *  - distinct approvers are counted; a repeated identical vote changes
 *    nothing; the submitter counts only if the role allows self-approval;
 *  - each transition is one durable store transaction, and all transitions
 *    run under srv->req_mu, so the threshold triggers exactly one signing;
 *  - expiry is wall-clock (also after restart), decided by the clock at
 *    every read, vote and execution: a state change that could not be
 *    recorded never keeps an expired request alive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "approval.h"
#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "payload.h"
#include "qs_err.h"
#include "reqkinds.h"
#include "server.h"
#include "statement.h"
#include "tlog.h"
#include "tuf.h"
#include "wire.h"

#define MAX_MESSAGE QS_MAX_REQUEST_TEXT
#define VOTE_CLOCK_SKEW_S 300

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/* ------------------------------------------------------------ policies */

/* The policy of version v, with a reference. Earlier versions are parsed
 * from the store once and cached; their keys are bound to the keyring. */
int
policy_at(struct server *s, uint64_t v, struct policy **out)
{
	struct policy *cur = server_policy(s), *p = NULL;
	char *text = NULL;
	int r;

	*out = NULL;
	if (cur->version == v) {
		*out = cur;
		return 0;
	}
	policy_unref(cur);
	pthread_mutex_lock(&s->hist_mu);
	for (size_t i = 0; i < s->nhist; i++)
		if (s->hist[i]->version == v) {
			*out = policy_ref(s->hist[i]);
			pthread_mutex_unlock(&s->hist_mu);
			return 0;
		}
	if ((r = store_policy_get(s->store, v, &text)) != 0 ||
	    (r = policy_parse(text, strlen(text), &p)) != 0 || (r = keyring_bind(s->kr, p)) != 0) {
		r = qs_wrap(r, "policy version %llu", (unsigned long long)v);
		goto out;
	}
	{
		struct policy **nh = realloc(s->hist, (s->nhist + 1) * sizeof(*nh));
		if (nh == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		s->hist = nh;
		s->hist[s->nhist++] = policy_ref(p);
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&s->hist_mu);
	free(text);
	policy_unref(p);
	return r;
}

void
requests_cleanup(struct server *s)
{
	for (size_t i = 0; i < s->nhist; i++)
		policy_unref(s->hist[i]);
	free(s->hist);
	s->hist = NULL;
	s->nhist = 0;
}

/* ------------------------------------------------------------ views */

static char *
xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* A RequestView whose every field is malloc'd, so that
 * protobuf_c_message_free_unpacked(v, NULL) frees it. */
static int
view_new(const struct store_request *r, const struct approval_rules *ar, int with_payload,
         Qsign__V1__RequestView **out)
{
	Qsign__V1__RequestView *v;
	int r2 = QS_ERR_NOMEM;

	*out = NULL;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	qsign__v1__request_view__init(v);
	if ((v->id = xstrdup(r->id)) == NULL || (v->role = xstrdup(r->role)) == NULL ||
	    (v->kind = xstrdup(r->kind)) == NULL ||
	    (v->submitter = xstrdup(r->submitter)) == NULL ||
	    (v->message = xstrdup(r->message)) == NULL ||
	    (v->state_message = xstrdup(r->state_message)) == NULL ||
	    (v->payload_sha256.data = malloc(32)) == NULL)
		goto fail;
	memcpy(v->payload_sha256.data, r->digest, 32);
	v->payload_sha256.len = 32;
	if ((v->hash = xstrdup(r->hash[0] ? r->hash : "sha256")) == NULL)
		goto fail;
	v->payload_size = r->payload_len;
	v->state = (Qsign__V1__RequestState)r->state;
	v->created = r->created;
	v->expires = r->expires;
	v->policy_version = r->policy_version;
	if (ar != NULL) {
		/* What counts now: approvers under both versions, the higher
		 * threshold (approval.h). */
		v->threshold = ar->threshold;
		v->allow_self_approval = ar->allow_self;
		if ((v->approvers = calloc(ar->cur.napprovers + 1, sizeof(char *))) == NULL)
			goto fail;
		for (size_t i = 0; i < ar->cur.napprovers; i++) {
			const char *n = ar->cur.pol->principals[ar->cur.approvers[i]].name;
			if (approval_may_vote(ar, n, r->submitter) != 0)
				continue;
			if ((v->approvers[v->n_approvers++] = strdup(n)) == NULL)
				goto fail;
		}
	}
	qs_errclear();
	if (r->nvotes > 0) {
		if ((v->votes = calloc(r->nvotes, sizeof(*v->votes))) == NULL)
			goto fail;
		for (size_t i = 0; i < r->nvotes; i++) {
			Qsign__V1__Vote *x = calloc(1, sizeof(*x));
			if (x == NULL)
				goto fail;
			qsign__v1__vote__init(x);
			v->votes[v->n_votes++] = x;
			if ((x->approver = strdup(r->votes[i].approver)) == NULL ||
			    (x->reason = xstrdup(r->votes[i].reason)) == NULL ||
			    (x->signature.data = malloc(r->votes[i].sig_len + 1)) == NULL)
				goto fail;
			memcpy(x->signature.data, r->votes[i].sig, r->votes[i].sig_len);
			x->signature.len = r->votes[i].sig_len;
			x->approve = r->votes[i].approve;
			x->time = r->votes[i].time;
		}
	}
	if (with_payload && r->payload != NULL) {
		if ((v->payload.data = malloc(r->payload_len + 1)) == NULL)
			goto fail;
		memcpy(v->payload.data, r->payload, r->payload_len);
		v->payload.len = r->payload_len;
	}
	*out = v;
	return 0;
fail:
	protobuf_c_message_free_unpacked(&v->base, NULL);
	return qs_fail(r2, "out of memory");
}

static int
pack_view(const struct store_request *r, const struct approval_rules *ar, int with_payload,
          uint8_t **out, size_t *out_len)
{
	Qsign__V1__RequestView *v = NULL;
	int r2;

	if ((r2 = view_new(r, ar, with_payload, &v)) != 0)
		return r2;
	r2 = qs_wire_pack(&v->base, out, out_len);
	protobuf_c_message_free_unpacked(&v->base, NULL);
	return r2;
}

/*
 * The rules of stored request r for a view, as the policy `cur` in force
 * sees them; when `cur` no longer allows r, those of its own version (the
 * state message says why it cannot proceed). *subp: the request's version
 * (policy_unref). Returns ar, or NULL when even that version has no rules.
 */
static const struct approval_rules *
view_rules(struct server *s, const struct store_request *r, const struct policy *cur,
           struct policy **subp, struct approval_rules *ar)
{
	const struct approval_rules *res = NULL;

	*subp = NULL;
	if (policy_at(s, r->policy_version, subp) == 0 &&
	    (approval_rules(*subp, cur, r->role, r->kind, ar) == 0 ||
	     approval_rules(*subp, *subp, r->role, r->kind, ar) == 0))
		res = ar;
	qs_errclear();
	return res;
}

/* ------------------------------------------------------------ helpers */

static const char *state_name(int st);
static int audit_state(struct server *s, const char *id, int from, int to, const char *msg);

static int
valid_id(const char *id)
{
	if (id == NULL || strlen(id) != STORE_ID_LEN)
		return 0;
	for (size_t i = 0; i < STORE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

/* An approved TUF change that waits for external signatures
 * (REQKIND_WAIT); every other approved request executes at once. */
static int
waits_for_signatures(const struct store_request *r)
{
	return r->state == REQ_APPROVED && strncmp(r->kind, "tuf-", 4) == 0;
}

/*
 * The wall-clock second after which r can no longer proceed, and why: its
 * request_ttl while it collects votes and when it executes; for an approved
 * TUF change that waits for external signatures, the policy's
 * tuf.signature_ttl after its last approval.
 */
static int64_t
deadline(struct server *s, const struct store_request *r, const char **why)
{
	if (waits_for_signatures(r)) {
		struct policy *p = server_policy(s);
		int64_t last = r->created, d;
		for (size_t i = 0; i < r->nvotes; i++)
			if (r->votes[i].approve && r->votes[i].time > last)
				last = r->votes[i].time;
		d = last + tuf_signature_ttl(p);
		policy_unref(p);
		*why = "tuf.signature_ttl passed before the external signatures arrived";
		return d;
	}
	*why = r->state == REQ_PENDING ? "request_ttl passed before the threshold was met"
	                               : "request_ttl passed before the request was executed";
	return r->expires;
}

int
requests_expired(struct server *s, const struct store_request *r, const char **why)
{
	const char *w;

	if (why == NULL)
		why = &w;
	return (r->state == REQ_PENDING || r->state == REQ_APPROVED) &&
	       now_s() > deadline(s, r, why);
}

/* Move r, past its deadline, to EXPIRED. The caller holds req_mu when r
 * may be APPROVED (an execution may be running otherwise). 1 if r is
 * expired by the clock, whether or not the state change could be made:
 * callers refuse on the clock, never on the recorded state alone. */
static int
expire_now(struct server *s, struct store_request *r)
{
	const char *why;
	int from = r->state;

	if (!requests_expired(s, r, &why))
		return 0;
	if (audit_state(s, r->id, from, REQ_EXPIRED, why) != 0) {
		log_error("request.expire", "id=%s detail=\"%s\"", r->id, qs_errdetail());
		return 1;
	}
	if (store_req_transition(s->store, r->id, from, REQ_EXPIRED, why) == 0) {
		r->state = REQ_EXPIRED;
		free(r->state_message);
		r->state_message = strdup(why);
		log_info("request.expired", "id=%s role=%s reason=\"%s\"", r->id, r->role, why);
	}
	return 1;
}

/* On read: a pending request past its TTL, or an approved TUF change past
 * its signature TTL, becomes EXPIRED. `locked`: the caller holds req_mu. */
static void
maybe_expire(struct server *s, struct store_request *r, int locked)
{
	if (r->state == REQ_PENDING) {
		expire_now(s, r);
	} else if (waits_for_signatures(r) && requests_expired(s, r, NULL)) {
		struct store_request *fresh = NULL;
		if (!locked)
			pthread_mutex_lock(&s->req_mu);
		/* Re-read under the lock: an execution may have finished it. */
		if (store_req_get(s->store, r->id, 0, &fresh) == 0 &&
		    fresh->state == REQ_APPROVED && expire_now(s, fresh) &&
		    fresh->state == REQ_EXPIRED) {
			r->state = REQ_EXPIRED;
			free(r->state_message);
			r->state_message = strdup(fresh->state_message ? fresh->state_message : "");
		}
		store_request_free(fresh);
		if (!locked)
			pthread_mutex_unlock(&s->req_mu);
	}
}

/* May this principal see request r? Admins and auditors see everything;
 * others see what they submitted. */
static int
may_view(const struct call_ctx *cx, const struct store_request *r)
{
	unsigned roles = cx->pol->principals[cx->pidx].roles;

	return (roles & (POLICY_ROLE_ADMIN | POLICY_ROLE_AUDITOR)) != 0 ||
	       strcmp(r->submitter, cx->principal) == 0;
}

static int
load(struct call_ctx *cx, const char *id, int with_payload, int locked, struct store_request **out)
{
	char pb[80];
	int r;

	*out = NULL;
	if (!valid_id(id))
		return qs_fail(QS_ERR_INVALID, "\"%s\" is not a request id (32 hex characters)",
		               log_peerstr(id, pb, sizeof(pb)));
	if ((r = store_req_get(cx->srv->store, id, with_payload, out)) != 0)
		return r;
	if (!may_view(cx, *out)) {
		store_request_free(*out);
		*out = NULL;
		return qs_fail(QS_ERR_NOT_FOUND, "no request %s", id);
	}
	maybe_expire(cx->srv, *out, locked);
	return 0;
}

static const char *
state_name(int st)
{
	static const char *const n[] = {"unspecified", "pending",   "approved", "signed",
	                                "rejected",    "cancelled", "expired",  "failed"};
	return st >= 0 && st <= REQ_FAILED ? n[st] : "unknown";
}

/* ------------------------------------------------------------ audit */

static char *
hex32(const uint8_t *d)
{
	return qs_hex(d, 32);
}

/* Record a state change in the audit log before the store makes it. */
static int
audit_state(struct server *s, const char *id, int from, int to, const char *msg)
{
	return audit_append(s->audit, "request.state",
	                    json_pack("{s:s,s:s,s:s,s:s}", "id", id, "from", state_name(from), "to",
	                              state_name(to), "message", msg ? msg : ""));
}

/* The signatures (and result) a request produced, before they are stored
 * and so before anyone can fetch them. The signatures themselves are in
 * the entry: a daemon that stops before storing them releases these after
 * a restart instead of signing again (resume_logged). Fails closed: an
 * entry that cannot be built completely is not written (QS_ERR_NOMEM). */
static int
audit_signed(struct server *s, const struct store_request *r, const struct store_reqsig *sigs,
             size_t n, const uint8_t *result, size_t result_len)
{
	json_t *arr = json_array(), *o = NULL;
	uint8_t dg[32];
	char *hx = NULL, *sx = NULL;
	int rc;

	if (arr == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		qs_sha256(sigs[i].sig, sigs[i].sig_len, dg);
		if ((hx = hex32(dg)) == NULL ||
		    (sx = qs_hex(sigs[i].sig, sigs[i].sig_len)) == NULL ||
		    json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s}", "key",
		                                         sigs[i].key, "key_id", sigs[i].key_id,
		                                         "algorithm", sigs[i].algorithm, "sha256",
		                                         hx, "sig", sx)) != 0) {
			rc = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		free(hx);
		free(sx);
		hx = sx = NULL;
	}
	/* "hash": what the signatures are over (SubmitRequest.hash). */
	o = json_pack("{s:s,s:s,s:s,s:s,s:O}", "id", r->id, "role", r->role, "kind", r->kind,
	              "hash", r->hash[0] ? r->hash : "sha256", "signatures", arr);
	if (o != NULL && result != NULL) {
		qs_sha256(result, result_len, dg);
		if ((hx = hex32(dg)) == NULL ||
		    json_object_set_new(o, "result_sha256", json_string(hx)) != 0) {
			rc = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	rc = audit_append(s->audit, "request.signed", o);
	o = NULL; /* stolen, also on error */
out:
	json_decref(arr);
	json_decref(o);
	free(hx);
	free(sx);
	return rc;
}

/* ------------------------------------------------------------ resume */

static const char *
jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v != NULL ? v : "";
}

/* The log is searched back to this long before the request was created
 * (entries carry the wall clock, which may have been stepped back). */
#define RESUME_CLOCK_SLACK_MS (86400LL * 1000)

/* Entries read backwards in chunks of this many (one range query each when
 * the log is in the store). */
#define RESUME_CHUNK 1024

/* One chunk of the backward search of logged_signed, read forwards: the
 * last entry that is r's request.signed, and the last entry (of any
 * other event) written before `stop`. */
struct signed_scan {
	const char *id, *needle;
	int64_t stop;
	json_t *match;
	uint64_t match_at;
	int stopped;
	uint64_t stop_at;
};

static int
signed_scan_entry(void *arg, uint64_t i, const uint8_t *b, size_t len)
{
	struct signed_scan *sc = arg;
	json_t *o = NULL;

	/* Cheap filters first: most entries are other events. */
	if (memmem(b, len, "\"request.signed\"", 16) != NULL &&
	    memmem(b, len, sc->needle, strlen(sc->needle)) != NULL) {
		o = json_loadb((const char *)b, len, 0, NULL);
		if (o != NULL && strcmp(jstr(o, "event"), "request.signed") == 0 &&
		    strcmp(jstr(o, "id"), sc->id) == 0) {
			json_decref(sc->match);
			sc->match = o;
			sc->match_at = i;
			return 0;
		}
	} else if ((o = json_loadb((const char *)b, len, 0, NULL)) != NULL &&
	           json_integer_value(json_object_get(o, "time")) < sc->stop) {
		sc->stopped = 1;
		sc->stop_at = i;
	}
	json_decref(o);
	return 0;
}

/*
 * The request.signed entry of request r that a crash left without its
 * state update, if any (*entry with a reference, *seq its index): the log
 * from its end back to the request's creation. QS_ERR_NOT_FOUND if none.
 */
static int
logged_signed(struct server *s, const struct store_request *r, json_t **entry, uint64_t *seq)
{
	struct tlog *tl = audit_tlog(s->audit);
	char needle[STORE_ID_LEN + 16];
	struct signed_scan sc;
	int rc;

	*entry = NULL;
	/* A log shared by replicas: up to what the others committed (the
	 * entry may be another replica's, which died before storing it). */
	if ((rc = tlog_refresh(tl)) != 0)
		return rc;
	snprintf(needle, sizeof(needle), "\"%s\"", r->id);
	memset(&sc, 0, sizeof(sc));
	sc.id = r->id;
	sc.needle = needle;
	sc.stop = r->created * 1000 - RESUME_CLOCK_SLACK_MS;
	for (uint64_t hi = tlog_size(tl); hi > 0;) {
		uint64_t lo = hi > RESUME_CHUNK ? hi - RESUME_CHUNK : 0;
		sc.stopped = 0;
		if ((rc = tlog_read(tl, lo, hi, signed_scan_entry, &sc)) != 0) {
			json_decref(sc.match);
			return rc;
		}
		/* Searching from the end: the match, unless an entry from
		 * before the request comes first. */
		if (sc.match != NULL && (!sc.stopped || sc.match_at > sc.stop_at)) {
			*entry = sc.match;
			*seq = sc.match_at;
			return 0;
		}
		json_decref(sc.match);
		sc.match = NULL;
		if (sc.stopped)
			break;
		hi = lo;
	}
	return QS_ERR_NOT_FOUND;
}

/* The signatures of a logged request.signed entry, if it holds every one
 * of them for the keys of role ro (as the policy p binds them).
 * QS_ERR_NOT_FOUND when it cannot stand in for a new signing. */
static int
logged_sigs(json_t *entry, const struct policy *p, const struct policy_role *ro,
            struct store_reqsig **out, size_t *nout)
{
	json_t *arr = json_object_get(entry, "signatures");
	struct store_reqsig *sigs;
	uint8_t dg[32];

	*out = NULL;
	*nout = 0;
	if (json_array_size(arr) != ro->nkeys)
		return QS_ERR_NOT_FOUND;
	if ((sigs = calloc(ro->nkeys, sizeof(*sigs))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < ro->nkeys; i++) {
		json_t *g = json_array_get(arr, i);
		const struct keyring_key *k = p->bound[ro->keys[i]];
		const char *sx = json_string_value(json_object_get(g, "sig"));
		const char *sh = json_string_value(json_object_get(g, "sha256"));
		char *hx;
		int same;

		if (sx == NULL || sh == NULL ||
		    strcmp(jstr(g, "key"), p->keys[ro->keys[i]].name) != 0 ||
		    strcmp(jstr(g, "key_id"), k->key_id) != 0 ||
		    qs_unhex(sx, sigs[i].sig, sizeof(sigs[i].sig), &sigs[i].sig_len) != 0 ||
		    sigs[i].sig_len == 0) {
			free(sigs);
			return QS_ERR_NOT_FOUND;
		}
		qs_sha256(sigs[i].sig, sigs[i].sig_len, dg);
		if ((hx = hex32(dg)) == NULL) {
			free(sigs);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		same = strcmp(hx, sh) == 0;
		free(hx);
		if (!same) {
			free(sigs);
			return QS_ERR_NOT_FOUND;
		}
		snprintf(sigs[i].key, sizeof(sigs[i].key), "%s", p->keys[ro->keys[i]].name);
		snprintf(sigs[i].key_id, sizeof(sigs[i].key_id), "%s", k->key_id);
		snprintf(sigs[i].algorithm, sizeof(sigs[i].algorithm), "%s",
		         hsm_keytype_name(k->type));
	}
	*out = sigs;
	*nout = ro->nkeys;
	return 0;
}

/* 1 if a logged request.signed entry records exactly these signatures and
 * result (a module that re-executed a request by its id gave the same). */
static int
same_as_logged(json_t *entry, const struct store_reqsig *sigs, size_t n, const uint8_t *result,
               size_t result_len)
{
	json_t *arr = json_object_get(entry, "signatures");
	const char *rs = json_string_value(json_object_get(entry, "result_sha256"));
	uint8_t dg[32];
	char *hx;
	int same;

	if (json_array_size(arr) != n || (result == NULL) != (rs == NULL))
		return 0;
	for (size_t i = 0; i < n; i++) {
		qs_sha256(sigs[i].sig, sigs[i].sig_len, dg);
		if ((hx = hex32(dg)) == NULL)
			return 0;
		same = strcmp(hx, jstr(json_array_get(arr, i), "sha256")) == 0;
		free(hx);
		if (!same)
			return 0;
	}
	if (result != NULL) {
		qs_sha256(result, result_len, dg);
		if ((hx = hex32(dg)) == NULL)
			return 0;
		same = strcmp(hx, rs) == 0;
		free(hx);
		return same;
	}
	return 1;
}

/* Say in the log why a logged signature is replaced by a new one. */
static int
audit_superseded(struct server *s, const char *id, uint64_t seq)
{
	return audit_append(
	        s->audit, "request.superseded",
	        json_pack("{s:s,s:I,s:s}", "id", id, "superseded_seq", (json_int_t)seq, "reason",
	                  "the daemon stopped after logging these signatures and before storing "
	                  "them, so they were never released; the entry cannot stand in for them, "
	                  "and the request is signed again"));
}

/* ------------------------------------------------------------ finalize */

/* ------------------------------------------------------------ retries */

/*
 * APPROVED requests whose execution failed for a reason that passes: the
 * audit log or the state store could not be written (a full disk), or a
 * signer helper was being replaced. They stay APPROVED and the maintenance
 * thread executes them again (requests_retry_stuck) until they are signed
 * or expire, without a restart (a restart resumes every APPROVED request
 * anyway, so the list needs no persistence). Under req_mu.
 */
static char stuck[QS_MAX_STUCK_REQUESTS][STORE_ID_LEN + 1];
static size_t nstuck;

static void
stuck_add(const char *id)
{
	for (size_t i = 0; i < nstuck; i++)
		if (strcmp(stuck[i], id) == 0)
			return;
	if (nstuck == QS_MAX_STUCK_REQUESTS) {
		log_error("request.stuck",
		          "id=%s detail=\"too many requests to retry: restart "
		          "qsignd to resume it\"",
		          id);
		return;
	}
	snprintf(stuck[nstuck++], sizeof(stuck[0]), "%s", id);
}

/* finalize() failed with rc: if that may pass, keep r APPROVED for a retry,
 * with the reason as its state message (best effort: the store may be the
 * full disk), and return 1. */
static int
retry_later(struct server *s, const struct store_request *r, int rc)
{
	char msg[QS_ERRDETAIL_MAX + 96];

	if (r == NULL || r->state != REQ_APPROVED ||
	    (rc != QS_ERR_UNAVAILABLE && rc != QS_ERR_DB && rc != QS_ERR_IO))
		return 0;
	snprintf(msg, sizeof(msg), "%s", qs_errdetail());
	log_warn("request.retry", "id=%s detail=\"%s\"", r->id, qs_errdetail());
	if (store_req_transition(s->store, r->id, REQ_APPROVED, REQ_APPROVED, msg) != 0)
		log_warn("request.retry", "id=%s state message not stored: %s", r->id,
		         qs_errdetail());
	stuck_add(r->id);
	return 1;
}

/* An APPROVED request: sign with the role's keys (or apply the policy) and
 * move it to SIGNED, or to FAILED with the reason, or keep it for a retry
 * (retry_later). Caller holds req_mu.
 * `resumed`: at start, for a request a crash left APPROVED, whose
 * signatures may already be in the log (resume_logged). */
static void
finalize_claimed(struct server *s, const char *id, int resumed)
{
	struct store_request *r = NULL;
	struct policy *p = NULL, *np = NULL, *in_force = NULL;
	struct store_reqsig *sigs = NULL;
	const struct policy_role *ro;
	const struct reqkind_ops *ko;
	uint8_t *result = NULL;
	size_t n = 0, result_len = 0;
	json_t *logged = NULL;
	uint64_t logged_seq = 0;
	int rc;

	if ((rc = store_req_get(s->store, id, 1, &r)) != 0)
		goto fail;
	if (r->state != REQ_APPROVED)
		goto out;
	/* Exactly one signature per approved request, across crashes: a
	 * signature logged before the crash is the one released (the log
	 * already says it was made, so a TTL that ran out since changes
	 * nothing). */
	if (resumed && strcmp(r->kind, "policy") != 0 && !qs_fault("request.resume_ignores_log") &&
	    (rc = logged_signed(s, r, &logged, &logged_seq)) != 0 && rc != QS_ERR_NOT_FOUND)
		goto fail;
	if (logged == NULL && expire_now(s, r))
		goto out;
	{
		/* Executed only if the policy in force still allows it, with
		 * approvals that count under both versions (approval.h); the
		 * votes are re-verified so that a state store edited behind the
		 * daemon's back (an "approved" flag flipped by hand) cannot
		 * make a key sign. */
		struct approval_rules ar;
		size_t ok;
		if ((rc = policy_at(s, r->policy_version, &p)) != 0)
			goto fail;
		in_force = server_policy(s);
		if ((rc = approval_rules(p, in_force, r->role, r->kind, &ar)) != 0) {
			rc = qs_wrap(rc, "not executed");
			goto fail;
		}
		if ((ok = approval_count(&ar, s->cfg->identity, r)) < ar.threshold) {
			rc = qs_fail(
			        QS_ERR_PRECONDITION,
			        "not executed: only %zu of the %u approvals needed count under "
			        "policy versions %llu (the request's) and %llu (in force)",
			        ok, ar.threshold, (unsigned long long)p->version,
			        (unsigned long long)in_force->version);
			goto fail;
		}
	}
	if (strcmp(r->kind, "policy") == 0) {
		struct policy *cur = server_policy(s);
		uint64_t want = cur->version + 1;
		policy_unref(cur);
		if ((rc = policy_parse((const char *)r->payload, r->payload_len, &np)) != 0)
			goto fail;
		if (np->version != want) {
			rc = qs_fail(QS_ERR_PRECONDITION,
			             "proposed version %llu is not the next one (%llu)",
			             (unsigned long long)np->version, (unsigned long long)want);
			goto fail;
		}
		if ((rc = keyring_policy_check(s->kr, np, s->store)) != 0)
			goto fail;
		{
			uint8_t dg[32];
			char *hx;
			qs_sha256((const uint8_t *)np->text, np->text_len, dg);
			if ((hx = hex32(dg)) == NULL) {
				rc = qs_fail(QS_ERR_NOMEM, "out of memory");
				goto fail;
			}
			rc = audit_append(s->audit, "policy",
			                  json_pack("{s:I,s:s,s:s,s:s}", "version",
			                            (json_int_t)np->version, "sha256", hx, "text",
			                            np->text, "request", id));
			free(hx);
			if (rc != 0)
				goto fail;
		}
		if ((rc = store_req_finish(s->store, id, NULL, 0, NULL, 0, np->version,
		                           np->text)) != 0)
			goto fail;
		/* The signer helpers take the new version only with its approvals. */
		if (keyring_policy_add(s->kr, np->text, r) != 0)
			log_error("privsep.policy_refused", "version=%llu detail=\"%s\"",
			          (unsigned long long)np->version, qs_errdetail());
		pthread_rwlock_wrlock(&s->pol_lock);
		cur = s->pol;
		s->pol = np;
		pthread_rwlock_unlock(&s->pol_lock);
		log_info("policy.applied", "version=%llu request=%s",
		         (unsigned long long)np->version, id);
		np = NULL;
		policy_unref(cur);
		goto out;
	}
	if ((ro = policy_role(p, r->role)) == NULL) {
		rc = qs_fail(QS_ERR_INTERNAL, "role %s vanished from policy version %llu", r->role,
		             (unsigned long long)p->version);
		goto fail;
	}
	if ((ko = reqkind_find(r->kind)) != NULL) {
		if ((rc = ko->execute(s, r, p, ro, &sigs, &n, &result, &result_len)) ==
		    REQKIND_WAIT) {
			/* Stays APPROVED; the module calls requests_retry(). */
			log_info("request.waiting", "id=%s kind=%s detail=\"%s\"", id, r->kind,
			         qs_errdetail());
			goto out;
		}
		if (rc != 0)
			goto fail;
		/* Modules re-execute a request by its id to the same result;
		 * if they did not, the log says which entry this replaces. */
		if (logged == NULL || !same_as_logged(logged, sigs, n, result, result_len)) {
			if ((logged != NULL && (rc = audit_superseded(s, id, logged_seq)) != 0) ||
			    (rc = audit_signed(s, r, sigs, n, result, result_len)) != 0)
				goto fail;
			qs_fault_crash("request.after_audit_signed");
		} else {
			log_info("request.released_logged", "id=%s entry=%llu", id,
			         (unsigned long long)logged_seq);
		}
		if ((rc = store_req_finish(s->store, id, sigs, n, result, result_len, 0, NULL)) !=
		    0)
			goto fail;
		log_info("request.done", "id=%s role=%s kind=%s signatures=%zu", id, r->role,
		         r->kind, n);
		goto out;
	}
	if (logged != NULL) {
		if ((rc = logged_sigs(logged, p, ro, &sigs, &n)) == 0) {
			/* Logged, never stored nor released: release these. */
			log_info("request.released_logged", "id=%s entry=%llu", id,
			         (unsigned long long)logged_seq);
			if ((rc = store_req_finish(s->store, id, sigs, n, NULL, 0, 0, NULL)) != 0)
				goto fail;
			goto signed_;
		}
		if (rc != QS_ERR_NOT_FOUND)
			goto fail;
		/* An entry that cannot stand in for the signatures (written
		 * before entries carried them): say so, then sign again. */
		if ((rc = audit_superseded(s, id, logged_seq)) != 0)
			goto fail;
		n = 0;
	}
	if ((sigs = calloc(ro->nkeys, sizeof(*sigs))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < ro->nkeys; i++, n++) {
		const struct keyring_key *k = p->bound[ro->keys[i]];
		/* With signer helpers, the helper counts the votes again under
		 * the policy chain it verified itself before its token signs. */
		if ((rc = keyring_sign_request(k, r, sigs[i].sig, &sigs[i].sig_len)) != 0)
			goto fail;
		snprintf(sigs[i].key, sizeof(sigs[i].key), "%s", p->keys[ro->keys[i]].name);
		snprintf(sigs[i].key_id, sizeof(sigs[i].key_id), "%s", k->key_id);
		snprintf(sigs[i].algorithm, sizeof(sigs[i].algorithm), "%s",
		         hsm_keytype_name(k->type));
	}
	if ((rc = audit_signed(s, r, sigs, n, NULL, 0)) != 0)
		goto fail;
	/* The crash test's point: logged, not yet stored. */
	qs_fault_crash("request.after_audit_signed");
	if ((rc = store_req_finish(s->store, id, sigs, n, NULL, 0, 0, NULL)) != 0)
		goto fail;
signed_:
	for (size_t i = 0; i < n; i++)
		metrics_signed(r->role, sigs[i].key, 1);
	log_info("request.signed", "id=%s role=%s keys=%zu", id, r->role, n);
	goto out;
fail:
	if (retry_later(s, r, rc))
		goto out;
	log_error("request.failed", "id=%s detail=\"%s\"", id, qs_errdetail());
	{
		char msg[QS_ERRDETAIL_MAX + 32];
		snprintf(msg, sizeof(msg), "%s", qs_errdetail());
		if (audit_state(s, id, REQ_APPROVED, REQ_FAILED, msg) != 0 ||
		    store_req_transition(s->store, id, REQ_APPROVED, REQ_FAILED, msg) != 0)
			log_error("request.stuck", "id=%s detail=\"%s\"", id, qs_errdetail());
	}
out:
	json_decref(logged);
	free(sigs);
	free(result);
	policy_unref(p);
	policy_unref(np);
	policy_unref(in_force);
	store_request_free(r);
}

/*
 * finalize_claimed() under the request's execution claim: replicas on one
 * store never execute the same request at once (one whose vote made it
 * APPROVED, one resuming it at start). The claim dies with its holder, and
 * the state is read again under it, so the second to claim finds SIGNED.
 * Caller holds req_mu.
 */
static void
finalize(struct server *s, const char *id, int resumed)
{
	int rc = store_req_claim(s->store, id);

	if (rc != 0) {
		/* Looked at again by the maintenance thread: by then the other
		 * replica has signed it (nothing to do) or died (its claim went
		 * with it, and this one resumes the request). */
		if (rc == QS_ERR_PRECONDITION)
			log_info("request.executing_elsewhere", "id=%s detail=\"%s\"", id,
			         qs_errdetail());
		else
			log_warn("request.retry", "id=%s detail=\"%s\"", id, qs_errdetail());
		stuck_add(id);
		return;
	}
	finalize_claimed(s, id, resumed);
	store_req_unclaim(s->store, id);
}

void
requests_retry(struct server *s, const char *id)
{
	pthread_mutex_lock(&s->req_mu);
	finalize(s, id, 0);
	pthread_mutex_unlock(&s->req_mu);
}

void
requests_sweep_orphans(struct server *s)
{
	struct store_request **v = NULL;
	size_t n = 0;

	if (!store_shared(s->store))
		return;
	if (store_req_list(s->store, REQ_APPROVED, NULL, 0, &v, &n) != 0) {
		log_warn("request.sweep", "detail=\"%s\"", qs_errdetail());
		return;
	}
	pthread_mutex_lock(&s->req_mu);
	for (size_t i = 0; i < n; i++)
		stuck_add(v[i]->id);
	pthread_mutex_unlock(&s->req_mu);
	store_request_list_free(v, n);
}

void
requests_retry_stuck(struct server *s)
{
	char ids[QS_MAX_STUCK_REQUESTS][STORE_ID_LEN + 1];
	size_t n;

	pthread_mutex_lock(&s->req_mu);
	n = nstuck;
	memcpy(ids, stuck, n * sizeof(ids[0]));
	nstuck = 0;
	for (size_t i = 0; i < n; i++) {
		struct store_request *r = NULL;

		if (store_req_get(s->store, ids[i], 0, &r) != 0) {
			stuck_add(ids[i]); /* the store may be what fails */
			continue;
		}
		if (r->state == REQ_APPROVED && now_s() > r->expires) {
			char msg[QS_MAX_REQUEST_TEXT];
			snprintf(msg, sizeof(msg),
			         "request_ttl passed before it could be executed (%s)",
			         r->state_message ? r->state_message : "");
			if (audit_state(s, r->id, REQ_APPROVED, REQ_EXPIRED, msg) != 0 ||
			    store_req_transition(s->store, r->id, REQ_APPROVED, REQ_EXPIRED, msg) !=
			            0)
				stuck_add(r->id);
			else
				log_info("request.expired", "id=%s role=%s", r->id, r->role);
		} else if (r->state == REQ_APPROVED) {
			struct store_request *done = NULL;
			log_info("request.retry", "id=%s", r->id);
			/* back on the list if it fails again; like a resumed request it
			 * releases signatures already logged before the failure */
			finalize(s, r->id, 1);
			/* Replace "not executed yet" by what happened. */
			if (store_req_get(s->store, r->id, 0, &done) == 0 &&
			    done->state == REQ_SIGNED && r->state_message != NULL) {
				char msg[QS_MAX_REQUEST_TEXT];
				snprintf(msg, sizeof(msg),
				         "executed on a retry; the first attempt "
				         "had failed: %s",
				         r->state_message);
				store_req_transition(s->store, r->id, REQ_SIGNED, REQ_SIGNED, msg);
			}
			store_request_free(done);
		}
		store_request_free(r);
	}
	pthread_mutex_unlock(&s->req_mu);
}

void
requests_resume(struct server *s)
{
	struct store_request **v = NULL;
	size_t n = 0;

	if (store_req_list(s->store, REQ_APPROVED, NULL, 0, &v, &n) != 0) {
		log_error("request.resume", "detail=\"%s\"", qs_errdetail());
		return;
	}
	pthread_mutex_lock(&s->req_mu);
	for (size_t i = 0; i < n; i++) {
		log_info("request.resume", "id=%s", v[i]->id);
		finalize(s, v[i]->id, 1);
	}
	pthread_mutex_unlock(&s->req_mu);
	store_request_list_free(v, n);
}

/*
 * Hand policy version `ver` (its text) to the signer helpers with the
 * approvals of the request that made it (v, n: the SIGNED policy requests).
 * Non-zero if no approved request made it: the chain is unproven from
 * here, and the helpers keep refusing quorum keys under it.
 */
static int
policy_prove(struct server *s, uint64_t ver, const char *text, struct store_request **v, size_t n)
{
	struct store_request *r = NULL;
	uint8_t dg[32];
	size_t i;

	qs_sha256((const uint8_t *)text, strlen(text), dg);
	for (i = 0; i < n; i++)
		if (strcmp(v[i]->kind, APPROVAL_POLICY_ROLE) == 0 &&
		    memcmp(v[i]->digest, dg, 32) == 0)
			break;
	if (i == n || store_req_get(s->store, v[i]->id, 0, &r) != 0) {
		log_error("privsep.policy_unproven",
		          "version=%llu reason=\"no approved policy change request made it\"",
		          (unsigned long long)ver);
		return -1;
	}
	if (keyring_policy_add(s->kr, text, r) != 0)
		log_error("privsep.policy_refused", "version=%llu detail=\"%s\"",
		          (unsigned long long)ver, qs_errdetail());
	store_request_free(r);
	return 0;
}

void
requests_policy_chain(struct server *s)
{
	struct store_request **v = NULL;
	struct policy *cur = server_policy(s);
	size_t n = 0;

	if (cur->version > 1 &&
	    store_req_list(s->store, REQ_SIGNED, APPROVAL_POLICY_ROLE, 0, &v, &n) != 0) {
		log_error("privsep.policy_unproven", "detail=\"%s\"", qs_errdetail());
		goto out;
	}
	for (uint64_t ver = 2; ver <= cur->version; ver++) {
		char *text = NULL;
		int unproven;
		if (store_policy_get(s->store, ver, &text) != 0) {
			log_error("privsep.policy_unproven", "version=%llu detail=\"%s\"",
			          (unsigned long long)ver, qs_errdetail());
			goto out;
		}
		unproven = policy_prove(s, ver, text, v, n);
		free(text);
		if (unproven)
			goto out;
	}
out:
	store_request_list_free(v, n);
	policy_unref(cur);
}

/* Version `ver` of the shared store in force here: parsed and checked
 * against the keyring as at start, proven to the signer helpers, swapped
 * in. Caller holds req_mu. */
static int
policy_take(struct server *s, uint64_t ver, struct store_request **v, size_t n)
{
	struct policy *np = NULL, *old;
	char *text = NULL;
	int r;

	if ((r = store_policy_get(s->store, ver, &text)) != 0 ||
	    (r = policy_parse(text, strlen(text), &np)) != 0 ||
	    (r = keyring_policy_check(s->kr, np, s->store)) != 0) {
		r = qs_wrap(r, "policy version %llu of the shared store", (unsigned long long)ver);
		goto out;
	}
	policy_prove(s, ver, text, v, n);
	pthread_rwlock_wrlock(&s->pol_lock);
	old = s->pol;
	s->pol = np;
	pthread_rwlock_unlock(&s->pol_lock);
	np = NULL;
	policy_unref(old);
	log_info("policy.applied", "version=%llu source=store", (unsigned long long)ver);
out:
	if (np != NULL)
		policy_unref(np);
	free(text);
	return r;
}

int
requests_policy_sync(struct server *s)
{
	struct store_request **v = NULL;
	struct policy *cur;
	uint64_t newest = 0, have;
	size_t n = 0;
	int r;

	if (!store_shared(s->store))
		return 0;
	if ((r = store_policy_version(s->store, &newest)) != 0)
		return r;
	cur = server_policy(s);
	have = cur->version;
	policy_unref(cur);
	if (newest <= have)
		return 0;
	pthread_mutex_lock(&s->req_mu);
	if ((r = store_req_list(s->store, REQ_SIGNED, APPROVAL_POLICY_ROLE, 0, &v, &n)) != 0)
		goto out;
	for (;;) {
		cur = server_policy(s);
		have = cur->version;
		policy_unref(cur);
		if (have >= newest || (r = policy_take(s, have + 1, v, n)) != 0)
			break;
	}
out:
	pthread_mutex_unlock(&s->req_mu);
	store_request_list_free(v, n);
	return r;
}

/* ------------------------------------------------------------ handlers */

/* The hash the request's signature uses (SubmitRequest.hash, "" =
 * sha256): for "digest" and "blob" requests, one that every key of the
 * role signs with and the role's quorum.hashes allows (sign_hash), and a
 * digest payload of its length; other kinds sign with their own rules:
 * sha256 only. */
static int
submit_hash(struct call_ctx *cx, const Qsign__V1__SubmitRequest *req, const struct policy_role *ro,
            const char **hash)
{
	size_t want = 0;
	char pb[80];
	int r;

	if (ro == NULL || (strcmp(req->kind, "digest") != 0 && strcmp(req->kind, "blob") != 0)) {
		*hash = qs_hash_lookup(req->hash, NULL, NULL);
		if (*hash == NULL || strcmp(*hash, "sha256") != 0)
			return qs_fail(QS_ERR_INVALID,
			               "payload kind %s: no signature hash \"%s\" (only \"digest\" "
			               "and \"blob\" requests name one)",
			               req->kind, log_peerstr(req->hash, pb, sizeof(pb)));
		return 0;
	}
	for (size_t i = 0; i < ro->nkeys; i++)
		if ((r = sign_hash(req->hash, ro, cx->pol->bound[ro->keys[i]], hash)) != 0)
			return r;
	if (ro->nkeys == 0 && (*hash = qs_hash_lookup(req->hash, NULL, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown hash");
	qs_hash_lookup(*hash, &want, NULL);
	if (strcmp(req->kind, "digest") == 0 && req->payload.len != want)
		return qs_fail(QS_ERR_INVALID,
		               "a digest payload is a %zu-byte %s digest, got %zu bytes", want,
		               *hash, req->payload.len);
	return 0;
}

int
h_req_submit(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__SubmitRequest *req = NULL;
	const struct qs_payload_kind *pk;
	const char *hash = NULL;
	struct store_request rec, *got = NULL;
	struct policy *np = NULL;
	struct approval_rules ar;
	uint8_t rnd[16];
	char *hex = NULL, pb[80];
	ssize_t pi;
	int r;

	memset(&rec, 0, sizeof(rec));
	if ((r = qs_wire_unpack(&qsign__v1__submit_request__descriptor, body, len, QS_MAX_FRAME,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if (!qs_name_valid(req->role, QS_MAX_NAME) || !qs_name_valid(req->kind, QS_MAX_NAME)) {
		r = qs_fail(QS_ERR_INVALID, "role and kind must be names");
		goto out;
	}
	if (strlen(req->message) > MAX_MESSAGE) {
		r = qs_fail(QS_ERR_INVALID, "message longer than %d bytes", MAX_MESSAGE);
		goto out;
	}
	if (req->client_token[0] != '\0' && !qs_name_valid(req->client_token, 64)) {
		r = qs_fail(QS_ERR_INVALID, "client_token must be a name of up to 64 characters");
		goto out;
	}
	if ((pk = qs_payload_kind(req->kind)) == NULL) {
		r = qs_fail(QS_ERR_INVALID, "unknown payload kind \"%s\"",
		            log_peerstr(req->kind, pb, sizeof(pb)));
		goto out;
	}
	if ((r = approval_rules(cx->pol, cx->pol, req->role, req->kind, &ar)) != 0)
		goto out;
	pi = cx->pidx;
	if (ar.sub.role != NULL && !policy_role_has_requester(ar.sub.role, (size_t)pi)) {
		r = qs_fail(QS_ERR_DENIED, "principal %s is not a requester of role %s",
		            cx->principal, req->role);
		goto out;
	}
	if (ar.sub.role == NULL && !(cx->pol->principals[pi].roles & POLICY_ROLE_ADMIN)) {
		r = qs_fail(QS_ERR_DENIED, "only admins propose policy changes");
		goto out;
	}
	if ((r = pk->validate(req->payload.data, req->payload.len)) != 0 ||
	    (r = submit_hash(cx, req, ar.sub.role, &hash)) != 0)
		goto out;
	if (approval_eligible(&ar, cx->principal) < ar.threshold) {
		r = qs_fail(QS_ERR_PRECONDITION,
		            "a request by %s could never reach the threshold of %u: self-approval "
		            "is not allowed and too few other approvers exist",
		            cx->principal, ar.threshold);
		goto out;
	}
	pthread_mutex_lock(&cx->srv->req_mu);
	{
		const struct reqkind_ops *ko = reqkind_find(req->kind);
		if (ko != NULL && ko->submit_check != NULL &&
		    (r = ko->submit_check(cx->srv, cx->pol, ar.sub.role, cx->principal,
		                          req->payload.data, req->payload.len)) != 0)
			goto unlock;
	}
	if (strcmp(req->kind, "policy") == 0) {
		/* A proposal must be a complete, valid next version whose keys
		 * resolve in our tokens: never accept one that could not be
		 * applied. */
		if ((r = policy_parse((const char *)req->payload.data, req->payload.len, &np)) !=
		    0) {
			r = qs_wrap(r, "proposed policy");
			goto unlock;
		}
		if (np->version != cx->pol->version + 1) {
			r = qs_fail(QS_ERR_INVALID,
			            "proposed policy has version %llu; the next version is %llu",
			            (unsigned long long)np->version,
			            (unsigned long long)cx->pol->version + 1);
			goto unlock;
		}
		if ((r = keyring_policy_check(cx->srv->kr, np, cx->srv->store)) != 0) {
			r = qs_wrap(r, "proposed policy");
			goto unlock;
		}
	}
	if (req->client_token[0] != '\0') {
		char id[STORE_ID_LEN + 1];
		if (store_req_find_token(cx->srv->store, cx->principal, req->client_token, id) ==
		    0) {
			/* A retried submission: answer with the original. */
			if ((r = store_req_get(cx->srv->store, id, 0, &got)) == 0) {
				struct policy *gp = NULL;
				struct approval_rules gar;
				r = pack_view(got, view_rules(cx->srv, got, cx->pol, &gp, &gar), 0,
				              out, out_len);
				policy_unref(gp);
			}
			goto unlock;
		}
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || (hex = qs_hex(rnd, sizeof(rnd))) == NULL) {
		r = qs_fail(QS_ERR_CRYPTO, "no randomness for a request id");
		goto unlock;
	}
	snprintf(rec.id, sizeof(rec.id), "%s", hex);
	snprintf(rec.role, sizeof(rec.role), "%s", req->role);
	snprintf(rec.kind, sizeof(rec.kind), "%s", req->kind);
	snprintf(rec.submitter, sizeof(rec.submitter), "%s", cx->principal);
	snprintf(rec.client_token, sizeof(rec.client_token), "%s", req->client_token);
	rec.message = req->message;
	rec.payload = req->payload.data;
	rec.payload_len = req->payload.len;
	qs_sha256(req->payload.data, req->payload.len, rec.digest);
	snprintf(rec.hash, sizeof(rec.hash), "%s", hash);
	rec.state = REQ_PENDING;
	rec.created = now_s();
	rec.expires = rec.created + ar.sub.ttl_s;
	rec.policy_version = cx->pol->version;
	{
		char *hx = hex32(rec.digest);
		if (hx == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto unlock;
		}
		r = audit_append(cx->srv->audit, "request.submitted",
		                 json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:I}", "id",
		                           rec.id, "role", rec.role, "kind", rec.kind, "submitter",
		                           rec.submitter, "payload_sha256", hx, "hash", rec.hash,
		                           "size", (json_int_t)rec.payload_len, "message",
		                           req->message, "policy_version",
		                           (json_int_t)rec.policy_version, "expires",
		                           (json_int_t)rec.expires));
		free(hx);
		if (r != 0)
			goto unlock;
	}
	if ((r = store_req_insert(cx->srv->store, &rec)) != 0)
		goto unlock;
	log_info("request.submitted", "id=%s role=%s kind=%s submitter=%s size=%zu hash=%s", rec.id,
	         rec.role, rec.kind, rec.submitter, rec.payload_len, rec.hash);
	rec.message = NULL;
	rec.payload = NULL;
	r = pack_view(&rec, &ar, 0, out, out_len);
unlock:
	pthread_mutex_unlock(&cx->srv->req_mu);
out:
	free(hex);
	policy_unref(np);
	store_request_free(got);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_req_get(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__GetRequestRequest *req = NULL;
	struct store_request *r = NULL;
	struct policy *p = NULL;
	struct approval_rules ar;
	int rc;

	if ((rc = qs_wire_unpack(&qsign__v1__get_request_request__descriptor, body, len, 1024,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	if ((rc = load(cx, req->id, req->include_payload, 0, &r)) != 0)
		goto out;
	rc = pack_view(r, view_rules(cx->srv, r, cx->pol, &p, &ar), req->include_payload, out,
	               out_len);
out:
	policy_unref(p);
	store_request_free(r);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

int
h_req_list(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__ListRequestsRequest *req = NULL;
	Qsign__V1__ListRequestsResponse resp = QSIGN__V1__LIST_REQUESTS_RESPONSE__INIT;
	struct store_request **v = NULL;
	size_t n = 0, limit;
	int rc;

	if ((rc = qs_wire_unpack(&qsign__v1__list_requests_request__descriptor, body, len, 1024,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	if (req->state > QSIGN__V1__REQUEST_STATE__REQ_FAILED ||
	    (req->role[0] != '\0' && !qs_name_valid(req->role, QS_MAX_NAME))) {
		rc = qs_fail(QS_ERR_INVALID, "bad state or role filter");
		goto out;
	}
	limit = req->limit == 0 ? 100 : req->limit > 1000 ? 1000 : req->limit;
	if ((rc = store_req_list(cx->srv->store, (int)req->state, req->role[0] ? req->role : NULL,
	                         limit, &v, &n)) != 0)
		goto out;
	if ((resp.requests = calloc(n + 1, sizeof(*resp.requests))) == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct policy *p = NULL;
		struct approval_rules ar;
		if (!may_view(cx, v[i]))
			continue;
		maybe_expire(cx->srv, v[i], 0);
		if (req->state != 0 && (int)req->state != v[i]->state)
			continue; /* just expired */
		rc = view_new(v[i], view_rules(cx->srv, v[i], cx->pol, &p, &ar), 0,
		              &resp.requests[resp.n_requests]);
		policy_unref(p);
		if (rc != 0)
			goto out;
		resp.n_requests++;
	}
	rc = qs_wire_pack(&resp.base, out, out_len);
out:
	for (size_t i = 0; i < resp.n_requests; i++)
		protobuf_c_message_free_unpacked(&resp.requests[i]->base, NULL);
	free(resp.requests);
	store_request_list_free(v, n);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

/* Votes that reach the threshold together through two replicas: each
 * read the request before the other's vote was committed, so each counted
 * one approval short and recorded PENDING. After our vote is committed the
 * request is read again; the replica whose read comes last sees every vote
 * and moves the request on, by compare-and-set, so at most one executes it.
 * (With one daemon req_mu serialises votes and this finds nothing to do.)
 * Caller holds req_mu. */
static void
settle_votes(struct server *s, const char *id, const struct policy *cur)
{
	static const char why[] = "approved: the threshold was reached by votes recorded "
	                          "concurrently";
	struct store_request *r = NULL;
	struct policy *p = NULL;
	struct approval_rules ar;

	if (store_req_get(s->store, id, 0, &r) != 0 || r->state != REQ_PENDING ||
	    policy_at(s, r->policy_version, &p) != 0 ||
	    approval_rules(p, cur, r->role, r->kind, &ar) != 0 ||
	    approval_count(&ar, s->cfg->identity, r) < ar.threshold)
		goto out;
	/* No state message: on APPROVED one means "execution failed for now,
	 * qsignd retries" (retry_later), and the other replica's voter, who
	 * reads the request while this one executes it, would be told so. */
	if (audit_state(s, id, REQ_PENDING, REQ_APPROVED, why) == 0 &&
	    store_req_transition(s->store, id, REQ_PENDING, REQ_APPROVED, NULL) == 0) {
		log_info("request.vote", "id=%s state=APPROVED detail=\"%s\"", id, why);
		finalize(s, id, 0);
	}
out:
	qs_errclear();
	policy_unref(p);
	store_request_free(r);
}

int
h_req_vote(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__VoteRequest *req = NULL;
	struct store_request *r = NULL;
	struct policy *p = NULL;
	struct store_vote vote;
	struct approval_rules ar;
	size_t approves = 0, rejects = 0, eligible;
	int rc, new_state, locked = 0, replace = 0;
	char msg[160];

	memset(&vote, 0, sizeof(vote));
	if ((rc = qs_wire_unpack(&qsign__v1__vote_request__descriptor, body, len, 4096,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	if (strlen(req->reason) > MAX_MESSAGE) {
		rc = qs_fail(QS_ERR_INVALID, "reason longer than %d bytes", MAX_MESSAGE);
		goto out;
	}
	if (req->signature.len == 0 || req->signature.len > sizeof(vote.sig)) {
		rc = qs_fail(QS_ERR_INVALID, "vote signature must be 1..%zu bytes",
		             sizeof(vote.sig));
		goto out;
	}
	pthread_mutex_lock(&cx->srv->req_mu);
	locked = 1;
	if ((rc = load(cx, req->id, 0, 1, &r)) != 0)
		goto out;
	if (r->state != REQ_PENDING) {
		rc = qs_fail(QS_ERR_PRECONDITION, "request %s is %s: votes are closed", r->id,
		             state_name(r->state));
		goto out;
	}
	if (requests_expired(cx->srv, r, NULL)) {
		/* The clock decides, even if recording EXPIRED failed. */
		rc = qs_fail(QS_ERR_PRECONDITION, "request %s expired: votes are closed", r->id);
		goto out;
	}
	if ((rc = policy_at(cx->srv, r->policy_version, &p)) != 0)
		goto out;
	if ((rc = approval_rules(p, cx->pol, r->role, r->kind, &ar)) != 0) {
		/* The policy in force no longer allows this request: it fails,
		 * with the rule that changed, and takes no more votes. */
		char why[QS_ERRDETAIL_MAX + 32];
		snprintf(why, sizeof(why), "not executed: %s", qs_errdetail());
		if (audit_state(cx->srv, r->id, REQ_PENDING, REQ_FAILED, why) == 0 &&
		    store_req_transition(cx->srv->store, r->id, REQ_PENDING, REQ_FAILED, why) == 0)
			log_info("request.failed", "id=%s detail=\"%s\"", r->id, why);
		rc = qs_fail(QS_ERR_PRECONDITION, "request %s %s: votes are closed", r->id, why);
		goto out;
	}
	if ((rc = approval_may_vote(&ar, cx->principal, r->submitter)) != 0)
		goto out;
	if (req->payload_sha256.len != 32 || memcmp(req->payload_sha256.data, r->digest, 32) != 0) {
		rc = qs_fail(QS_ERR_INVALID,
		             "the vote is over a different payload than request %s holds: fetch "
		             "it again and re-check",
		             r->id);
		goto out;
	}
	if (req->time < r->created - VOTE_CLOCK_SKEW_S || req->time > now_s() + VOTE_CLOCK_SKEW_S) {
		rc = qs_fail(QS_ERR_INVALID, "vote time %lld is outside the request's lifetime",
		             (long long)req->time);
		goto out;
	}
	snprintf(vote.approver, sizeof(vote.approver), "%s", cx->principal);
	vote.approve = req->approve;
	vote.time = req->time;
	memcpy(vote.sig, req->signature.data, req->signature.len);
	vote.sig_len = req->signature.len;
	vote.reason = req->reason;
	if ((rc = approval_vote_counts(&ar, cx->srv->cfg->identity, r, &vote)) != 0) {
		if (rc == QS_ERR_UNAUTH)
			log_warn("vote.refused", "id=%s approver=%s reason=bad-signature", r->id,
			         cx->principal);
		goto out;
	}
	for (size_t i = 0; i < r->nvotes; i++) {
		if (strcmp(r->votes[i].approver, cx->principal) == 0) {
			if (approval_vote_counts(&ar, cx->srv->cfg->identity, r, &r->votes[i]) !=
			    0) {
				/* Signed with a key the policy in force replaced:
				 * it counts no more, and this vote (checked above
				 * with the key in force) takes its place. */
				qs_errclear();
				replace = 1;
				break;
			}
			if (!r->votes[i].approve == !req->approve) {
				/* The same vote again: idempotent, not counted twice. */
				rc = pack_view(r, &ar, 0, out, out_len);
				goto out;
			}
			rc = qs_fail(QS_ERR_EXISTS, "%s already voted %s on request %s",
			             cx->principal, r->votes[i].approve ? "approve" : "reject",
			             r->id);
			goto out;
		}
	}
	/* Earlier votes count only while their voter is an approver with the
	 * same key under the policy in force. */
	for (size_t i = 0; i < r->nvotes; i++)
		if (approval_vote_counts(&ar, cx->srv->cfg->identity, r, &r->votes[i]) == 0)
			r->votes[i].approve ? approves++ : rejects++;
	qs_errclear();
	req->approve ? approves++ : rejects++;
	eligible = approval_eligible(&ar, r->submitter);
	msg[0] = '\0';
	if (approves >= ar.threshold) {
		new_state = REQ_APPROVED;
	} else if (eligible < ar.threshold || rejects > eligible - ar.threshold) {
		new_state = REQ_REJECTED;
		snprintf(msg, sizeof(msg),
		         "%zu reject vote(s): the threshold of %u can no longer "
		         "be met",
		         rejects, ar.threshold);
	} else {
		new_state = REQ_PENDING;
	}
	{
		/* Everything an auditor needs to re-verify the vote offline. */
		char *hx = hex32(r->digest), *sx = qs_hex(vote.sig, vote.sig_len);
		if (hx == NULL || sx == NULL) {
			free(hx);
			free(sx);
			rc = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		rc = audit_append(cx->srv->audit, "request.vote",
		                  json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "id",
		                            r->id, "approver", cx->principal, "decision",
		                            req->approve ? "approve" : "reject", "vote_time",
		                            (json_int_t)req->time, "role", r->role, "kind", r->kind,
		                            "payload_sha256", hx, "server", cx->srv->cfg->identity,
		                            "signature", sx, "reason", req->reason, "state",
		                            state_name(new_state)));
		free(hx);
		free(sx);
		if (rc != 0)
			goto out;
	}
	if ((rc = store_req_vote(cx->srv->store, r->id, &vote, replace, new_state,
	                         msg[0] ? msg : NULL)) != 0)
		goto out;
	metrics_vote(req->approve);
	log_info("request.vote", "id=%s approver=%s decision=%s approvals=%zu/%u state=%s%s", r->id,
	         cx->principal, req->approve ? "approve" : "reject", approves, ar.threshold,
	         state_name(new_state), replace ? " replaces=stale-key-vote" : "");
	if (new_state == REQ_APPROVED)
		finalize(cx->srv, r->id, 0);
	else if (new_state == REQ_PENDING)
		settle_votes(cx->srv, r->id, cx->pol);
	store_request_free(r);
	r = NULL;
	if ((rc = store_req_get(cx->srv->store, req->id, 0, &r)) != 0)
		goto out;
	rc = pack_view(r, &ar, 0, out, out_len);
out:
	if (locked)
		pthread_mutex_unlock(&cx->srv->req_mu);
	policy_unref(p);
	store_request_free(r);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

int
h_req_cancel(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__CancelRequest *req = NULL;
	struct store_request *r = NULL;
	struct policy *p = NULL;
	struct approval_rules ar;
	int rc;

	if ((rc = qs_wire_unpack(&qsign__v1__cancel_request__descriptor, body, len, 1024,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	pthread_mutex_lock(&cx->srv->req_mu);
	if ((rc = load(cx, req->id, 0, 1, &r)) != 0)
		goto out;
	if (strcmp(r->submitter, cx->principal) != 0) {
		rc = qs_fail(QS_ERR_DENIED, "only its submitter (%s) can cancel request %s",
		             r->submitter, r->id);
		goto out;
	}
	if (r->state == REQ_CANCELLED) /* retried call */
		goto view;
	/* An APPROVED TUF change seen under req_mu is one that waits for
	 * external signatures (REQKIND_WAIT); its submitter may withdraw it
	 * like a pending one. Other kinds are never left APPROVED but by a
	 * failure to record their outcome: not cancellable. */
	if (r->state != REQ_PENDING &&
	    !(r->state == REQ_APPROVED && strncmp(r->kind, "tuf-", 4) == 0)) {
		rc = qs_fail(QS_ERR_PRECONDITION, "request %s is %s and cannot be cancelled", r->id,
		             state_name(r->state));
		goto out;
	}
	if ((rc = audit_state(cx->srv, r->id, r->state, REQ_CANCELLED, "cancelled by submitter")) !=
	            0 ||
	    (rc = store_req_transition(cx->srv->store, r->id, r->state, REQ_CANCELLED,
	                               "cancelled by its submitter")) != 0)
		goto out;
	log_info("request.cancelled", "id=%s by=%s", r->id, cx->principal);
	store_request_free(r);
	if ((rc = store_req_get(cx->srv->store, req->id, 0, &r)) != 0) {
		r = NULL;
		goto out;
	}
view:
	rc = pack_view(r, view_rules(cx->srv, r, cx->pol, &p, &ar), 0, out, out_len);
out:
	pthread_mutex_unlock(&cx->srv->req_mu);
	policy_unref(p);
	store_request_free(r);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

int
h_req_fetch(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__FetchRequest *req = NULL;
	Qsign__V1__FetchResponse resp = QSIGN__V1__FETCH_RESPONSE__INIT;
	Qsign__V1__RequestSignature *sv = NULL, **svp = NULL;
	struct store_request *r = NULL;
	struct policy *p = NULL;
	struct approval_side sd;
	int rc;

	if ((rc = qs_wire_unpack(&qsign__v1__fetch_request__descriptor, body, len, 1024,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	if ((rc = load(cx, req->id, 0, 0, &r)) != 0 ||
	    (rc = policy_at(cx->srv, r->policy_version, &p)) != 0 ||
	    (rc = approval_side(p, r->role, r->kind, &sd)) != 0)
		goto out;
	if (strcmp(r->submitter, cx->principal) != 0 && !approval_listed(&sd, cx->principal)) {
		rc = qs_fail(QS_ERR_DENIED, "only the submitter or an approver fetches request %s",
		             r->id);
		goto out;
	}
	if (r->state != REQ_SIGNED) {
		rc = qs_fail(QS_ERR_PRECONDITION, "request %s is %s, not signed%s%s", r->id,
		             state_name(r->state),
		             r->state_message && *r->state_message ? ": " : "",
		             r->state_message ? r->state_message : "");
		goto out;
	}
	{
		struct policy *vp = NULL;
		struct approval_rules ar;
		rc = view_new(r, view_rules(cx->srv, r, cx->pol, &vp, &ar), 0, &resp.request);
		policy_unref(vp);
	}
	if (rc != 0)
		goto out;
	sv = calloc(r->nsigs + 1, sizeof(*sv));
	svp = calloc(r->nsigs + 1, sizeof(*svp));
	if (sv == NULL || svp == NULL) {
		rc = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < r->nsigs; i++) {
		qsign__v1__request_signature__init(&sv[i]);
		sv[i].key = r->sigs[i].key;
		sv[i].key_id = r->sigs[i].key_id;
		sv[i].algorithm = r->sigs[i].algorithm;
		sv[i].signature.data = r->sigs[i].sig;
		sv[i].signature.len = r->sigs[i].sig_len;
		svp[i] = &sv[i];
	}
	resp.n_signatures = r->nsigs;
	resp.signatures = svp;
	resp.result.data = r->result;
	resp.result.len = r->result_len;
	rc = qs_wire_pack(&resp.base, out, out_len);
out:
	if (resp.request != NULL)
		protobuf_c_message_free_unpacked(&resp.request->base, NULL);
	free(sv);
	free(svp);
	policy_unref(p);
	store_request_free(r);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}

int
h_policy_show(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__PolicyShowRequest *req = NULL;
	Qsign__V1__PolicyShowResponse resp = QSIGN__V1__POLICY_SHOW_RESPONSE__INIT;
	char *text = NULL;
	int rc;

	if ((rc = qs_wire_unpack(&qsign__v1__policy_show_request__descriptor, body, len, 64,
	                         (ProtobufCMessage **)&req)) != 0)
		return rc;
	resp.current_version = cx->pol->version;
	if (req->version == 0 || req->version == cx->pol->version) {
		resp.version = cx->pol->version;
		resp.text = cx->pol->text;
	} else {
		if ((rc = store_policy_get(cx->srv->store, req->version, &text)) != 0)
			goto out;
		resp.version = req->version;
		resp.text = text;
	}
	rc = qs_wire_pack(&resp.base, out, out_len);
out:
	free(text);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}
