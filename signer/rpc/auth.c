/*
 * Connection authentication: a fresh challenge per connection, answered by
 * a signature of the principal's key over the auth statement
 * (proto/statement.h). Verifying once per connection instead of per call is
 * deliberate: an ECDSA verify costs as much as the token's own ECDSA sign
 * and an Ed25519 verify twice as much (tests/bench/README.md, "Measured
 * costs"), so per-call verification would halve the build farm's
 * throughput.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "wire.h"

/* What a client is told when its principal name or its key is wrong. */
#define QS_AUTH_REFUSED_TEXT "authentication failed: unknown principal or wrong key"

int
h_challenge(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__ChallengeRequest *req = NULL;
	Qsign__V1__ChallengeResponse resp = QSIGN__V1__CHALLENGE_RESPONSE__INIT;
	uint8_t ch[QS_CHALLENGE_LEN];
	int r;

	uint8_t *stmt = NULL, dg[32], sig[HSM_SIG_MAX + 16];
	size_t stmt_len = 0, sig_len = 0;

	if ((r = qs_wire_unpack(&qsign__v1__challenge_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if (req->client_nonce.len != 0 && req->client_nonce.len != QS_CHALLENGE_LEN) {
		r = qs_fail(QS_ERR_INVALID, "client_nonce must be empty or %d bytes",
		            QS_CHALLENGE_LEN);
		goto out;
	}
	if ((r = pipes_new_challenge(cx->srv->pipes, cx->pipe_id, ch)) != 0)
		goto out;
	resp.challenge.data = ch;
	resp.challenge.len = sizeof(ch);
	resp.server_identity = cx->srv->cfg->identity;
	if (req->client_nonce.len != 0) {
		/* Prove that we hold the identity key the client pinned. */
		if ((r = qs_stmt_server(cx->srv->cfg->identity, ch, sizeof(ch),
		                        req->client_nonce.data, req->client_nonce.len, &stmt,
		                        &stmt_len)) != 0)
			goto out;
		qs_sha256(stmt, stmt_len, dg);
		if ((r = keyring_sign(cx->srv->identity_key, dg, stmt, stmt_len, sig, &sig_len)) !=
		    0)
			goto out;
		resp.server_key.data = cx->srv->identity_spki;
		resp.server_key.len = cx->srv->identity_spki_len;
		resp.server_proof.data = sig;
		resp.server_proof.len = sig_len;
	}
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(stmt);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

/* Percent-encode a token label for a pkcs11: URI (RFC 7512 pchar). */
static int
uri_escape(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	for (; *in; in++) {
		unsigned char c = (unsigned char)*in;
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		if (n + 4 > cap)
			return qs_fail(QS_ERR_INVALID, "token label too long");
		n += (size_t)snprintf(out + n, cap - n, plain ? "%c" : "%%%02X", c);
	}
	return 0;
}

int
auth_identity_key_open(struct server *s)
{
	const struct config *c = s->cfg;
	struct keyring_key *k = NULL, *audit_key = NULL;
	char *uri = NULL, tok_uri[512], esc[400];
	const char *label;
	int r, fresh = 0;

	if (c->identity_key_uri != NULL) {
		if ((r = keyring_find_uri(s->kr, c->identity_key_uri, HSM_KEY_NONE, &k)) != 0) {
			r = qs_wrap(r, "identity_key %s", c->identity_key_uri);
			goto out;
		}
	} else {
		if ((label = keyring_token_label_for(s->kr, c->audit_key_uri)) == NULL) {
			r = qs_fail(QS_ERR_NOT_FOUND, "no configured token holds audit.key %s",
			            c->audit_key_uri);
			goto out;
		}
		if ((r = uri_escape(label, esc, sizeof(esc))) != 0)
			goto out;
		snprintf(tok_uri, sizeof(tok_uri), "pkcs11:token=%s", esc);
		if (asprintf(&uri, "%s;object=" QS_IDENTITY_KEY_LABEL, tok_uri) < 0) {
			uri = NULL;
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		if ((r = keyring_find_uri(s->kr, uri, HSM_KEY_NONE, &k)) == QS_ERR_NOT_FOUND) {
			if ((r = keyring_keygen(s->kr, tok_uri, HSM_KEY_EC_P256,
			                        QS_IDENTITY_KEY_LABEL)) != 0 ||
			    (r = keyring_find_uri(s->kr, uri, HSM_KEY_NONE, &k)) != 0)
				goto out;
			fresh = 1;
		} else if (r != 0) {
			goto out;
		}
	}
	if (k->type != HSM_KEY_EC_P256 && k->type != HSM_KEY_ED25519) {
		r = qs_fail(QS_ERR_INVALID, "identity_key: must be ECDSA P-256 or Ed25519");
		goto out;
	}
	/* Challenge answers (and this key's other calls) go to the helper
	 * kept beside the audit log's: logins never queue behind, or take the
	 * turn of, request signatures. */
	keyring_key_reserve(k);
	/* One key, one purpose: a key that signs checkpoints or payloads must
	 * not also answer challenges. */
	if ((r = keyring_find_uri(s->kr, c->audit_key_uri, HSM_KEY_NONE, &audit_key)) != 0)
		goto out;
	if (strcmp(audit_key->key_id, k->key_id) == 0) {
		r = qs_fail(QS_ERR_INVALID, "identity_key: is the audit log key; give qsignd a key "
		                            "of its own");
		goto out;
	}
	for (size_t i = 0; s->pol != NULL && i < s->pol->nkeys; i++)
		if (s->pol->bound[i] != NULL && strcmp(s->pol->bound[i]->key_id, k->key_id) == 0) {
			r = qs_fail(QS_ERR_INVALID,
			            "identity_key: is policy key %s; give qsignd a "
			            "key of its own",
			            s->pol->keys[i].name);
			goto out;
		}
	if ((r = keyring_spki(k, &s->identity_spki, &s->identity_spki_len)) != 0 ||
	    (r = qs_key_fingerprint(s->identity_spki, s->identity_spki_len, s->identity_fp,
	                            sizeof(s->identity_fp))) != 0)
		goto out;
	if (fresh &&
	    (r = audit_append(s->audit, "key.generated",
	                      json_pack("{s:s,s:s,s:s,s:s,s:s}", "label", QS_IDENTITY_KEY_LABEL,
	                                "uri", uri, "key_id", k->key_id, "algorithm", "ecdsa-p256",
	                                "purpose", "server identity"))) != 0)
		goto out;
	if (fresh)
		log_info("key.generated", "label=%s key_id=%s purpose=identity",
		         QS_IDENTITY_KEY_LABEL, k->key_id);
	log_info("identity", "server=%s key=%s fingerprint=%s", c->identity,
	         c->identity_key_uri ? c->identity_key_uri : uri, s->identity_fp);
	s->identity_key = k;
	r = 0;
out:
	free(uri);
	return r;
}

int
h_authenticate(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__AuthenticateRequest *req = NULL;
	Qsign__V1__AuthenticateResponse resp = QSIGN__V1__AUTHENTICATE_RESPONSE__INIT;
	const struct policy_principal *pr;
	uint8_t *stmt = NULL;
	size_t stmt_len = 0;
	char *roles[3], pb[80];
	const char *why = NULL;
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
		why = "unknown principal";
		goto refused;
	}
	if ((r = qs_stmt_auth(cx->srv->cfg->identity, req->principal, req->challenge.data,
	                      req->challenge.len, &stmt, &stmt_len)) != 0)
		goto out;
	if (qs_sig_verify(pr->pk, stmt, stmt_len, req->signature.data, req->signature.len) != 0) {
		why = "signature does not verify with the principal's key";
		goto refused;
	}
	/* Authentication changes nothing by itself: while the audit log
	 * cannot be written it is still allowed (so auditors and health checks
	 * get in), with a warning; everything that changes state fails closed.
	 * Logins beyond the principal's rate are counted into the periodic
	 * summary entry instead (audit.h). */
	if (audit_append_bounded(cx->srv->audit, req->principal, "auth", QS_M_AUTHENTICATE, "OK",
	                         cx->peer_uid >= 0
	                                 ? json_pack("{s:s,s:s,s:I,s:I}", "principal",
	                                             req->principal, "transport", "ipc", "peer_uid",
	                                             (json_int_t)cx->peer_uid, "peer_pid",
	                                             (json_int_t)cx->peer_pid)
	                                 : json_pack("{s:s,s:s}", "principal", req->principal,
	                                             "transport", "net")) != 0)
		log_warn("auth.unaudited", "pipe=%u principal=%s detail=\"%s\"", cx->pipe_id,
		         req->principal, qs_errdetail());
	if ((r = pipes_set_principal(cx->srv->pipes, cx->pipe_id, req->principal, pr->pk,
	                             pr->roles)) != 0)
		goto out;
	if (cx->peer_uid >= 0)
		log_info("auth.ok",
		         "pipe=%u principal=%s transport=ipc peer_uid=%lld peer_pid=%lld",
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
	/* The reason goes to the daemon's log only: the client learns the
	 * same thing whether the name exists or not, so the socket does not
	 * tell who the principals are. */
	log_warn("auth.refused", "pipe=%u principal=%s peer_uid=%lld reason=\"%s\"", cx->pipe_id,
	         log_peerstr(req->principal, pb, sizeof(pb)), (long long)cx->peer_uid,
	         why != NULL ? why : qs_errdetail());
	if (why != NULL)
		r = qs_fail(QS_ERR_UNAUTH, "%s", QS_AUTH_REFUSED_TEXT);
out:
	free(stmt);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}
