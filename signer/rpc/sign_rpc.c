/*
 * Online signing and discovery: Info, ListKeys, Sign, SignBatch.
 *
 * Order of a signing call, never changed: authorise (principal is a
 * requester of an online role that allows the payload kind) -> rate limit ->
 * audit entry queued -> sign in the token (Sign: while the entry is being
 * committed) -> wait until the entry is durable -> only then reply with the
 * signature. An entry whose signing then failed is followed by a
 * "signature.failed" entry naming its seq. The state store's signature
 * index is derived from those entries off this path (signer/store/sigindex.c);
 * a backend that keeps no derived index (PostgreSQL) records the
 * signatures here, after the audit entry and before the reply.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "wire.h"

static const char *
kind_name(Qsign__V1__PayloadKind k)
{
	return k == QSIGN__V1__PAYLOAD_KIND__DIGEST ? "digest" : "blob";
}

/* The audit entries of signatures about to be made or released, one
 * "signature" entry each (fields as proto/audit.proto documents). */
static int
signed_entries(const struct store_sig *sigs, size_t n, const char ***eventsp, json_t ***fieldsp)
{
	const char **events = calloc(n, sizeof(*events));
	json_t **fields = calloc(n, sizeof(*fields));

	*eventsp = NULL;
	*fieldsp = NULL;
	if (events == NULL || fields == NULL) {
		free(events);
		free(fields);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char *hx = qs_hex(sigs[i].digest, sigs[i].digest_len);
		events[i] = "signature";
		/* Fault point: the fields cannot be built (out of memory). */
		fields[i] =
		        hx && !qs_fault("audit.fields_nomem")
		                ? json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:I}", "principal",
		                            sigs[i].principal, "role", sigs[i].role, "key",
		                            sigs[i].key, "key_id", sigs[i].key_id, "kind",
		                            sigs[i].kind, "algorithm", sigs[i].algorithm, "hash",
		                            sigs[i].hash, "digest", hx, "policy_version",
		                            (json_int_t)sigs[i].policy_version)
		                : NULL;
		free(hx);
	}
	*eventsp = events;
	*fieldsp = fields;
	return 0;
}

/* Once the audit entries are durable (audit_rc 0): the state store (unless
 * its index is derived from the log), then the metrics. Any failure:
 * nothing may be released. */
static int
after_audit(struct call_ctx *cx, const struct store_sig *sigs, size_t n, int audit_rc)
{
	int r;

	if (audit_rc != 0) {
		log_error("sign.unaudited", "principal=%s role=%s count=%zu detail=\"%s\"",
		          cx->principal, sigs[0].role, n, qs_errdetail());
		return qs_wrap(QS_ERR_UNAVAILABLE, "no signature was released");
	}
	if (!store_index_derived(cx->srv->store) &&
	    (r = store_record_signatures(cx->srv->store, sigs, n)) != 0) {
		log_error("sign.unrecorded", "principal=%s role=%s count=%zu detail=\"%s\"",
		          cx->principal, sigs[0].role, n, qs_errdetail());
		return qs_fail(QS_ERR_UNAVAILABLE,
		               "signature could not be recorded durably; nothing was released");
	}
	metrics_signed(sigs[0].role, sigs[0].key, n);
	log_debug("sign.ok", "principal=%s role=%s key=%s count=%zu", cx->principal, sigs[0].role,
	          sigs[0].key, n);
	return 0;
}

/*
 * Report online signatures (Sign, SignBatch) that are about to be released:
 * the tamper-evident audit log first, then the signature index; returns
 * only when the records are durable. It is one of the places where a
 * signature leaves the daemon, and each audits first for the same reason (a
 * signature nobody can later find in the log must not exist):
 *   - here, online signatures of digests and blobs;
 *   - requests.c audit_signed ("request.signed"): the signatures of an
 *     approved quorum request, before its result is stored and returned;
 *   - tuf_publish.c commit: TUF metadata, the batch with the hash of every
 *     file audited before it is stored or published;
 *   - pki.c ("pki.issued", "pki.crl"): certificates and CRLs, before they
 *     are stored and handed out.
 */
static int
changes_signed(struct call_ctx *cx, const struct store_sig *sigs, size_t n)
{
	const char **events;
	json_t **fields;
	int r;

	if (n == 0)
		return 0;
	if ((r = signed_entries(sigs, n, &events, &fields)) != 0)
		return r;
	/* The audit log first: a signature nobody can later find in the log
	 * must not leave the daemon. */
	r = audit_append_many(cx->srv->audit, events, fields, n);
	free(events);
	free(fields);
	return after_audit(cx, sigs, n, r);
}

/* A "signature" entry at seq whose signing failed: say so in the log. */
static void
signing_failed(struct call_ctx *cx, const struct store_sig *sig, uint64_t seq, const char *why)
{
	char *hx = qs_hex(sig->digest, sig->digest_len);
	json_t *f = hx ? json_pack("{s:I,s:s,s:s,s:s,s:s,s:s}", "entry", (json_int_t)seq,
	                           "principal", sig->principal, "role", sig->role, "key", sig->key,
	                           "digest", hx, "reason", why)
	               : NULL;

	free(hx);
	if (f == NULL || audit_append(cx->srv->audit, "signature.failed", f) != 0)
		log_error("sign.failure_unaudited", "principal=%s role=%s entry=%llu",
		          sig->principal, sig->role, (unsigned long long)seq);
}

/* Check that the caller may sign with `role_name` online, with payloads of
 * `kind`, and pick the key. */
static int
authorise(struct call_ctx *cx, const char *role_name, Qsign__V1__PayloadKind kind,
          const char *key_name, const struct policy_role **rolep, size_t *keyp)
{
	const struct policy *p = cx->pol;
	const struct policy_role *ro;
	char pb[80];

	*rolep = NULL;
	if (!qs_name_valid(role_name, QS_MAX_NAME) || (ro = policy_role(p, role_name)) == NULL)
		return qs_fail(QS_ERR_NOT_FOUND, "no role \"%s\" in policy version %llu",
		               log_peerstr(role_name, pb, sizeof(pb)),
		               (unsigned long long)p->version);
	if (ro->mode != POLICY_ONLINE)
		return qs_fail(QS_ERR_PRECONDITION,
		               "role %s needs a quorum: submit a request (qsign request submit)",
		               ro->name);
	if (!policy_role_has_requester(ro, (size_t)cx->pidx))
		return qs_fail(QS_ERR_DENIED, "principal %s is not a requester of role %s",
		               cx->principal, ro->name);
	if (kind != QSIGN__V1__PAYLOAD_KIND__DIGEST && kind != QSIGN__V1__PAYLOAD_KIND__BLOB)
		return qs_fail(QS_ERR_INVALID, "payload kind must be DIGEST or BLOB");
	if (!(ro->payloads & (kind == QSIGN__V1__PAYLOAD_KIND__DIGEST ? POLICY_PAYLOAD_DIGEST
	                                                              : POLICY_PAYLOAD_BLOB)))
		return qs_fail(QS_ERR_DENIED, "role %s does not sign %s payloads", ro->name,
		               kind_name(kind));
	*keyp = ro->keys[0];
	if (key_name != NULL && key_name[0] != '\0') {
		size_t i;
		for (i = 0; i < ro->nkeys; i++)
			if (strcmp(p->keys[ro->keys[i]].name, key_name) == 0)
				break;
		if (i == ro->nkeys)
			return qs_fail(QS_ERR_NOT_FOUND, "role %s has no key \"%s\"", ro->name,
			               log_peerstr(key_name, pb, sizeof(pb)));
		*keyp = ro->keys[i];
	}
	*rolep = ro;
	return 0;
}

/* Validate one payload and compute its digest with hash (qs_hash_lookup's
 * name; its length dg_len, dg holding that many bytes). */
static int
payload_digest_with(Qsign__V1__PayloadKind kind, const ProtobufCBinaryData *pl, const char *hash,
                    uint8_t *dg, size_t *dg_len)
{
	const EVP_MD *md = NULL;
	unsigned int n = 0;
	size_t len = 0;

	if (qs_hash_lookup(hash, &len, &md) == NULL || md == NULL)
		return qs_fail(QS_ERR_INTERNAL, "unknown hash");
	*dg_len = len;
	if (kind == QSIGN__V1__PAYLOAD_KIND__DIGEST) {
		if (pl->len != len)
			return qs_fail(QS_ERR_INVALID,
			               "a digest payload is a %zu-byte %s digest, got %zu bytes",
			               len, hash, pl->len);
		memcpy(dg, pl->data, len);
		return 0;
	}
	if (pl->len > QS_MAX_BLOB)
		return qs_fail(QS_ERR_EXHAUSTED,
		               "blob of %zu bytes exceeds %u: send its %s digest as a digest",
		               pl->len, QS_MAX_BLOB, hash);
	if (EVP_Digest(pl->data, pl->len, dg, &n, md, NULL) != 1 || n != len)
		return qs_fail(QS_ERR_CRYPTO, "%s of the blob", hash);
	return 0;
}

/* The hash a Sign or SignBatch names (name), if the role allows it and
 * the key signs with it: its canonical name in *hash. Ed25519 signs the
 * message itself (the digest recorded is its SHA-256): no other hash.
 * Quorum requests (SubmitRequest.hash) ask it for each of the role's keys. */
int
sign_hash(const char *name, const struct policy_role *ro, const struct keyring_key *k,
          const char **hash)
{
	char pb[80], list[64];

	if ((*hash = qs_hash_lookup(name, NULL, NULL)) == NULL)
		return qs_fail(QS_ERR_INVALID, "unknown hash \"%s\": sha256, sha384 or sha512",
		               log_peerstr(name, pb, sizeof(pb)));
	if (!hsm_keytype_signs_digest(k->type) && strcmp(*hash, "sha256") != 0)
		return qs_fail(QS_ERR_INVALID, "%s signs the message itself: no hash %s",
		               hsm_keytype_name(k->type), *hash);
	if (!(ro->hashes & qs_hash_bit(*hash))) {
		qs_hash_list(ro->hashes, list, sizeof(list));
		return qs_fail(QS_ERR_DENIED, "role %s allows the hashes %s: not %s", ro->name,
		               list, *hash);
	}
	return 0;
}

int
h_sign(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__SignRequest *req = NULL;
	Qsign__V1__SignResponse resp = QSIGN__V1__SIGN_RESPONSE__INIT;
	const struct policy_role *ro;
	const struct keyring_key *k;
	struct store_sig rec = {0};
	struct audit_ticket *ticket = NULL;
	const char **events = NULL;
	json_t **fields = NULL;
	uint8_t sig[HSM_SIG_MAX + 16], dg[QS_DIGEST_MAX];
	size_t ki = 0, sig_len = 0, dg_len = 0;
	const char *hash = NULL;
	uint64_t seq = 0;
	char why[QS_ERRDETAIL_MAX];
	int r, rs;

	if ((r = qs_wire_unpack(&qsign__v1__sign_request__descriptor, body, len, QS_MAX_FRAME,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if ((r = authorise(cx, req->role, req->kind, req->key, &ro, &ki)) != 0 ||
	    (r = sign_hash(req->hash, ro, cx->pol->bound[ki], &hash)) != 0 ||
	    (r = payload_digest_with(req->kind, &req->payload, hash, dg, &dg_len)) != 0 ||
	    (r = ratelimit_take(cx->srv->rl, ro->name, cx->principal, ro->rate_per_second,
	                        ro->burst, 1)) != 0)
		goto out;
	k = cx->pol->bound[ki];
	rec.time_ms = now_ms();
	rec.principal = cx->principal;
	rec.role = ro->name;
	rec.key = cx->pol->keys[ki].name;
	rec.key_id = k->key_id;
	rec.kind = kind_name(req->kind);
	rec.algorithm = hsm_keytype_name(k->type);
	rec.hash = hash;
	memcpy(rec.digest, dg, dg_len);
	rec.digest_len = dg_len;
	rec.policy_version = cx->pol->version;
	/* The entry is committed while the token signs: the signature's
	 * round trip (a signer helper's, with privilege separation) is off the
	 * critical path, and still nothing leaves before the entry is durable. */
	if ((r = signed_entries(&rec, 1, &events, &fields)) != 0 ||
	    (r = audit_append_start(cx->srv->audit, events, fields, 1, &ticket)) != 0)
		goto out;
	if (hsm_keytype_signs_digest(k->type))
		rs = keyring_sign_hashed(k, dg, dg_len, sig, &sig_len);
	else
		rs = keyring_sign(k, dg,
		                  req->kind == QSIGN__V1__PAYLOAD_KIND__BLOB ? req->payload.data
		                                                             : NULL,
		                  req->payload.len, sig, &sig_len);
	if (rs != 0)
		snprintf(why, sizeof(why), "%s", qs_errdetail());
	r = audit_append_finish(cx->srv->audit, ticket, &seq);
	if (r == 0 && rs != 0) {
		signing_failed(cx, &rec, seq, why);
		r = qs_fail(rs, "%s", why);
		goto out;
	}
	if ((r = after_audit(cx, &rec, 1, r)) != 0)
		goto out;
	resp.signature.data = sig;
	resp.signature.len = sig_len;
	resp.key = cx->pol->keys[ki].name;
	resp.key_id = (char *)k->key_id;
	resp.algorithm = (char *)hsm_keytype_name(k->type);
	resp.digest.data = dg;
	resp.digest.len = dg_len;
	resp.hash = (char *)hash;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(events);
	free(fields);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

#define BATCH_THREADS 4    /* token sessions one SignBatch may use at once */
#define BATCH_MIN_SLICE 64 /* below this, a thread costs more than it saves */

struct batch_slice {
	const Qsign__V1__SignBatchRequest *req;
	const struct keyring_key *k;
	const char *hash; /* of every payload (sign_hash) */
	Qsign__V1__SignResult *results;
	uint8_t *sigs;
	uint8_t (*dgs)[QS_DIGEST_MAX];
	char (*msgs)[128];
	size_t from, to;
};

static void *
batch_slice_main(void *arg)
{
	struct batch_slice *b = arg;
	const Qsign__V1__SignBatchRequest *req = b->req;

	if (b->k->type != HSM_KEY_ED25519 && b->to > b->from) {
		/* Digest keys: hash every payload here, then one call for the
		 * whole slice (one round trip to a signer helper). */
		size_t n = 0, idx[QS_MAX_BATCH], lens[QS_MAX_BATCH], dg_len = 0;
		uint8_t(*dg)[QS_DIGEST_MAX] = malloc((b->to - b->from) * sizeof(*dg));
		int rcs[QS_MAX_BATCH];
		uint8_t *tmp = malloc((b->to - b->from) * (HSM_SIG_MAX + 16));
		int r = dg == NULL || tmp == NULL ? qs_fail(QS_ERR_NOMEM, "out of memory") : 0;

		for (size_t i = b->from; i < b->to; i++) {
			Qsign__V1__SignResult *res = &b->results[i];
			int ri;
			qsign__v1__sign_result__init(res);
			ri = r != 0 ? r
			            : payload_digest_with(req->kind, &req->payloads[i], b->hash,
			                                  b->dgs[i], &dg_len);
			if (ri != 0) {
				res->status = (Qsign__V1__Status)qs_err_status(ri);
				snprintf(b->msgs[i], sizeof(b->msgs[i]), "%s", qs_errdetail());
				res->message = b->msgs[i];
				continue;
			}
			memcpy(dg[n], b->dgs[i], dg_len);
			idx[n++] = i;
		}
		if (n > 0 && (r = keyring_sign_digests(b->k, n, (const uint8_t(*)[QS_DIGEST_MAX])dg,
		                                       dg_len, tmp, lens, rcs)) != 0)
			for (size_t j = 0; j < n; j++)
				rcs[j] = r;
		for (size_t j = 0; j < n; j++) {
			size_t i = idx[j];
			Qsign__V1__SignResult *res = &b->results[i];
			uint8_t *sig = b->sigs + i * (HSM_SIG_MAX + 16);
			if (rcs[j] != 0) {
				res->status = (Qsign__V1__Status)qs_err_status(rcs[j]);
				if (res->status == 0)
					res->status = QSIGN__V1__STATUS__INTERNAL;
				snprintf(b->msgs[i], sizeof(b->msgs[i]), "%s",
				         qs_errdetail()[0] ? qs_errdetail() : qs_strerror(rcs[j]));
				res->message = b->msgs[i];
				continue;
			}
			memcpy(sig, tmp + j * (HSM_SIG_MAX + 16), lens[j]);
			res->signature.data = sig;
			res->signature.len = lens[j];
			res->digest.data = b->dgs[i];
			res->digest.len = dg_len;
		}
		free(dg);
		free(tmp);
		return NULL;
	}
	for (size_t i = b->from; i < b->to; i++) {
		Qsign__V1__SignResult *res = &b->results[i];
		uint8_t *sig = b->sigs + i * (HSM_SIG_MAX + 16);
		size_t sig_len = 0, dg_len = 0;
		int ri;

		qsign__v1__sign_result__init(res);
		ri = payload_digest_with(req->kind, &req->payloads[i], b->hash, b->dgs[i], &dg_len);
		if (ri == 0)
			ri = keyring_sign(b->k, b->dgs[i],
			                  req->kind == QSIGN__V1__PAYLOAD_KIND__BLOB
			                          ? req->payloads[i].data
			                          : NULL,
			                  req->payloads[i].len, sig, &sig_len);
		if (ri != 0) {
			res->status = (Qsign__V1__Status)qs_err_status(ri);
			if (res->status == 0)
				res->status = QSIGN__V1__STATUS__INTERNAL;
			snprintf(b->msgs[i], sizeof(b->msgs[i]), "%s", qs_errdetail());
			res->message = b->msgs[i];
			continue;
		}
		res->signature.data = sig;
		res->signature.len = sig_len;
		res->digest.data = b->dgs[i];
		res->digest.len = dg_len;
	}
	return NULL;
}

int
h_sign_batch(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__SignBatchRequest *req = NULL;
	Qsign__V1__SignBatchResponse resp = QSIGN__V1__SIGN_BATCH_RESPONSE__INIT;
	Qsign__V1__SignResult *results = NULL, **rp = NULL;
	const struct policy_role *ro;
	const struct keyring_key *k;
	struct store_sig *recs = NULL;
	uint8_t *sigs = NULL, (*dgs)[QS_DIGEST_MAX] = NULL;
	char(*msgs)[128] = NULL;
	const char *hash = NULL;
	size_t ki = 0, n, nrec = 0, dg_len = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__sign_batch_request__descriptor, body, len, QS_MAX_FRAME,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	n = req->n_payloads;
	if (n == 0 || n > QS_MAX_BATCH) {
		r = qs_fail(QS_ERR_INVALID, "a batch holds 1..%d payloads, got %zu", QS_MAX_BATCH,
		            n);
		goto out;
	}
	if ((r = authorise(cx, req->role, req->kind, req->key, &ro, &ki)) != 0 ||
	    (r = sign_hash(req->hash, ro, cx->pol->bound[ki], &hash)) != 0 ||
	    (r = ratelimit_take(cx->srv->rl, ro->name, cx->principal, ro->rate_per_second,
	                        ro->burst, (uint32_t)n)) != 0)
		goto out;
	(void)qs_hash_lookup(hash, &dg_len, NULL);
	k = cx->pol->bound[ki];
	results = calloc(n, sizeof(*results));
	rp = calloc(n, sizeof(*rp));
	recs = calloc(n, sizeof(*recs));
	sigs = calloc(n, HSM_SIG_MAX + 16);
	dgs = calloc(n, sizeof(*dgs));
	msgs = calloc(n, sizeof(*msgs));
	if (results == NULL || rp == NULL || recs == NULL || sigs == NULL || dgs == NULL ||
	    msgs == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		/* Sign the slices of a large batch in parallel: each thread
		 * borrows its own token session from the pool, so one batch can
		 * use the token's parallelism (SoftHSM scales to ~2 threads). */
		struct batch_slice sl[BATCH_THREADS];
		pthread_t th[BATCH_THREADS];
		size_t nt = n / BATCH_MIN_SLICE, per;
		int started[BATCH_THREADS] = {0};

		if (nt < 1)
			nt = 1;
		if (nt > BATCH_THREADS)
			nt = BATCH_THREADS;
		per = (n + nt - 1) / nt;
		for (size_t t = 0; t < nt; t++) {
			sl[t] = (struct batch_slice){.req = req,
			                             .k = k,
			                             .hash = hash,
			                             .results = results,
			                             .sigs = sigs,
			                             .dgs = dgs,
			                             .msgs = msgs,
			                             .from = t * per,
			                             .to = (t + 1) * per < n ? (t + 1) * per : n};
			if (t > 0 && pthread_create(&th[t], NULL, batch_slice_main, &sl[t]) == 0)
				started[t] = 1;
		}
		batch_slice_main(&sl[0]);
		for (size_t t = 1; t < nt; t++)
			if (started[t])
				pthread_join(th[t], NULL);
			else
				batch_slice_main(&sl[t]); /* no thread: do it here */
	}
	for (size_t i = 0; i < n; i++) {
		rp[i] = &results[i];
		if (results[i].status != 0)
			continue;
		recs[nrec].time_ms = now_ms();
		recs[nrec].principal = cx->principal;
		recs[nrec].role = ro->name;
		recs[nrec].key = cx->pol->keys[ki].name;
		recs[nrec].key_id = k->key_id;
		recs[nrec].kind = kind_name(req->kind);
		recs[nrec].algorithm = hsm_keytype_name(k->type);
		recs[nrec].hash = hash;
		memcpy(recs[nrec].digest, dgs[i], dg_len);
		recs[nrec].digest_len = dg_len;
		recs[nrec].policy_version = cx->pol->version;
		nrec++;
	}
	if ((r = changes_signed(cx, recs, nrec)) != 0)
		goto out;
	resp.key = cx->pol->keys[ki].name;
	resp.key_id = (char *)k->key_id;
	resp.algorithm = (char *)hsm_keytype_name(k->type);
	resp.hash = (char *)hash;
	resp.n_results = n;
	resp.results = rp;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(results);
	free(rp);
	free(recs);
	free(sigs);
	free(dgs);
	free(msgs);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_info(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__InfoRequest *req = NULL;
	Qsign__V1__InfoResponse resp = QSIGN__V1__INFO_RESPONSE__INIT;
	const struct policy *p = cx->pol;
	const struct policy_principal *pr = &p->principals[cx->pidx];
	Qsign__V1__RoleInfo *ri = NULL, **rip = NULL;
	char **keynames = NULL, *proles[3], *payloads[2 * QS_MAX_POLICY_ENTRIES];
	const char *hashes[3 * QS_MAX_POLICY_ENTRIES];
	size_t nk = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__info_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	for (size_t i = 0; i < p->nroles; i++)
		nk += p->roles[i].nkeys;
	ri = calloc(p->nroles, sizeof(*ri));
	rip = calloc(p->nroles, sizeof(*rip));
	keynames = calloc(nk + 1, sizeof(*keynames));
	if (ri == NULL || rip == NULL || keynames == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	resp.server_identity = cx->srv->cfg->identity;
	resp.version = QS_VERSION;
	resp.policy_version = p->version;
	resp.principal = cx->principal;
	if (pr->roles & POLICY_ROLE_ADMIN)
		proles[resp.n_principal_roles++] = "admin";
	if (pr->roles & POLICY_ROLE_REQUESTER)
		proles[resp.n_principal_roles++] = "requester";
	if (pr->roles & POLICY_ROLE_AUDITOR)
		proles[resp.n_principal_roles++] = "auditor";
	resp.principal_roles = proles;
	nk = 0;
	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		Qsign__V1__RoleInfo *x = &ri[resp.n_roles];
		char **pl = &payloads[2 * resp.n_roles];

		if (!policy_role_has_requester(ro, (size_t)cx->pidx) &&
		    !policy_role_has_approver(ro, (size_t)cx->pidx))
			continue;
		qsign__v1__role_info__init(x);
		x->name = ro->name;
		x->mode = ro->mode == POLICY_ONLINE ? "online" : "quorum";
		x->keys = &keynames[nk];
		for (size_t j = 0; j < ro->nkeys; j++)
			keynames[nk++] = p->keys[ro->keys[j]].name;
		x->n_keys = ro->nkeys;
		x->payloads = pl;
		if (ro->payloads & POLICY_PAYLOAD_DIGEST)
			pl[x->n_payloads++] = "digest";
		if (ro->payloads & POLICY_PAYLOAD_BLOB)
			pl[x->n_payloads++] = "blob";
		x->hashes = (char **)&hashes[3 * resp.n_roles];
		x->n_hashes = qs_hash_names(ro->hashes, &hashes[3 * resp.n_roles], 3);
		rip[resp.n_roles++] = x;
	}
	resp.roles = rip;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(ri);
	free(rip);
	free(keynames);
	return r;
}

int
h_list_keys(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__ListKeysRequest *req = NULL;
	Qsign__V1__ListKeysResponse resp = QSIGN__V1__LIST_KEYS_RESPONSE__INIT;
	const struct policy *p = cx->pol;
	Qsign__V1__KeyInfo *ki = NULL, **kip = NULL;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__list_keys_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	ki = calloc(p->nkeys, sizeof(*ki));
	kip = calloc(p->nkeys, sizeof(*kip));
	if (ki == NULL || kip == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < p->nkeys; i++) {
		const struct keyring_key *k = p->bound[i];
		qsign__v1__key_info__init(&ki[i]);
		ki[i].name = p->keys[i].name;
		ki[i].algorithm = (char *)hsm_keytype_name(k->type);
		ki[i].key_id = (char *)k->key_id;
		ki[i].public_pem = k->spki_pem;
		ki[i].token = (char *)keyring_token_label(k);
		ki[i].certificate_pem = p->keys[i].certificate;
		kip[i] = &ki[i];
	}
	resp.n_keys = p->nkeys;
	resp.keys = kip;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(ki);
	free(kip);
	return r;
}
