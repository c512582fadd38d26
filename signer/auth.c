/*
 * Connection authentication: a fresh challenge per connection, answered by
 * a signature of the principal's key over the auth statement
 * (proto/statement.h). Verifying once per connection instead of per call is
 * deliberate: an Ed25519/ECDSA verify costs more than the token's own
 * ECDSA sign (ENVIRONMENT.md), so per-call verification would halve the
 * build farm's throughput.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "wire.h"

int
h_challenge(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__ChallengeRequest *req = NULL;
	Qsign__V1__ChallengeResponse resp = QSIGN__V1__CHALLENGE_RESPONSE__INIT;
	uint8_t ch[QS_CHALLENGE_LEN];
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__challenge_request__descriptor, body, len, 64,
				(ProtobufCMessage **)&req)) != 0)
		return r;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if ((r = pipes_new_challenge(cx->srv->pipes, cx->pipe_id, ch)) != 0)
		return r;
	resp.challenge.data = ch;
	resp.challenge.len = sizeof(ch);
	resp.server_identity = cx->srv->cfg->identity;
	return qs_wire_pack(&resp.base, out, out_len);
}

int
h_authenticate(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
	       size_t *out_len)
{
	Qsign__V1__AuthenticateRequest *req = NULL;
	Qsign__V1__AuthenticateResponse resp = QSIGN__V1__AUTHENTICATE_RESPONSE__INIT;
	const struct policy_principal *pr;
	uint8_t *stmt = NULL;
	size_t stmt_len = 0;
	char *roles[3], pb[80];
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__authenticate_request__descriptor, body, len, 1024,
				(ProtobufCMessage **)&req)) != 0)
		return r;
	if (!qs_name_valid(req->principal, QS_MAX_NAME)) {
		r = qs_fail(QS_ERR_INVALID, "principal: 1..%d characters of [A-Za-z0-9._@:+-]",
			    QS_MAX_NAME);
		goto out;
	}
	if (req->signature.len == 0 || req->signature.len > QS_MAX_PRINCIPAL_SIG) {
		r = qs_fail(QS_ERR_INVALID, "signature must be 1..%d bytes", QS_MAX_PRINCIPAL_SIG);
		goto out;
	}
	/* The challenge is consumed before the signature is checked, so a
	 * failed attempt cannot be retried with the same challenge. */
	if ((r = pipes_take_challenge(cx->srv->pipes, cx->pipe_id, req->challenge.data,
				      req->challenge.len)) != 0)
		goto refused;
	if ((pr = policy_principal(cx->pol, req->principal)) == NULL) {
		r = qs_fail(QS_ERR_UNAUTH, "unknown principal \"%s\"", req->principal);
		goto refused;
	}
	if ((r = qs_stmt_auth(cx->srv->cfg->identity, req->principal, req->challenge.data,
			      req->challenge.len, &stmt, &stmt_len)) != 0)
		goto out;
	if (qs_sig_verify(pr->pk, stmt, stmt_len, req->signature.data, req->signature.len) != 0) {
		r = qs_fail(QS_ERR_UNAUTH,
			    "signature does not verify with the key of principal \"%s\"",
			    req->principal);
		goto refused;
	}
	/* Authentication changes nothing by itself: while the audit log
	 * cannot be written it is still allowed (so auditors and health checks
	 * get in), with a warning; everything that changes state fails closed.
	 * Logins beyond the principal's rate are counted into the periodic
	 * summary entry instead (audit.h). */
	if (audit_append_bounded(cx->srv->audit, req->principal, "auth", QS_M_AUTHENTICATE, "OK",
			 cx->peer_uid >= 0
				 ? json_pack("{s:s,s:s,s:I,s:I}", "principal", req->principal,
					     "transport", "ipc", "peer_uid", (json_int_t)cx->peer_uid,
					     "peer_pid", (json_int_t)cx->peer_pid)
				 : json_pack("{s:s,s:s}", "principal", req->principal, "transport",
					     "net")) != 0)
		log_warn("auth.unaudited", "pipe=%u principal=%s detail=\"%s\"", cx->pipe_id,
			 req->principal, qs_errdetail());
	if ((r = pipes_set_principal(cx->srv->pipes, cx->pipe_id, req->principal)) != 0)
		goto out;
	if (cx->peer_uid >= 0)
		log_info("auth.ok", "pipe=%u principal=%s transport=ipc peer_uid=%lld peer_pid=%lld",
			 cx->pipe_id, req->principal, (long long)cx->peer_uid,
			 (long long)cx->peer_pid);
	else
		log_info("auth.ok", "pipe=%u principal=%s transport=net", cx->pipe_id,
			 req->principal);
	resp.principal = req->principal;
	resp.n_roles = 0;
	if (pr->roles & POLICY_ROLE_ADMIN)
		roles[resp.n_roles++] = "admin";
	if (pr->roles & POLICY_ROLE_REQUESTER)
		roles[resp.n_roles++] = "requester";
	if (pr->roles & POLICY_ROLE_AUDITOR)
		roles[resp.n_roles++] = "auditor";
	resp.roles = roles;
	r = qs_wire_pack(&resp.base, out, out_len);
	goto out;
refused:
	log_warn("auth.refused", "pipe=%u principal=%s peer_uid=%lld reason=\"%s\"", cx->pipe_id,
		 log_peerstr(req->principal, pb, sizeof(pb)), (long long)cx->peer_uid,
		 qs_errdetail());
out:
	free(stmt);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}
