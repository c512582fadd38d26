/*
 * The auditor's RPCs: checkpoint, entries, inclusion and consistency
 * proofs. Read-only; allowed to principals with the auditor or admin role.
 * Nothing here needs to be trusted: clients verify every answer against the
 * signed checkpoint (proto/merkle.h, proto/note.h).
 */
#include <stdlib.h>
#include <string.h>

#include "qs_err.h"
#include "server.h"
#include "tlog.h"
#include "wire.h"

static int
may_audit(const struct call_ctx *cx)
{
	unsigned roles = cx->pol->principals[cx->pidx].roles;

	if ((roles & (POLICY_ROLE_AUDITOR | POLICY_ROLE_ADMIN)) == 0)
		return qs_fail(QS_ERR_DENIED,
		               "%s may not read the audit log: that needs the auditor or the admin "
		               "role",
		               cx->principal);
	return 0;
}

int
h_audit_checkpoint(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                   size_t *out_len)
{
	Qsign__V1__CheckpointRequest *req = NULL;
	Qsign__V1__CheckpointResponse resp = QSIGN__V1__CHECKPOINT_RESPONSE__INIT;
	struct tlog *log = audit_tlog(cx->srv->audit);
	char *note = NULL;
	size_t note_len = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__checkpoint_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	if ((r = may_audit(cx)) != 0 || (r = tlog_checkpoint(log, &note, &note_len)) != 0)
		goto out;
	resp.note = note;
	resp.origin = (char *)audit_origin(cx->srv->audit);
	resp.public_pem = (char *)audit_public_pem(cx->srv->audit);
	/* The size inside the note is what counts; this one is a hint and
	 * may be ahead of the note if an append committed meanwhile. */
	resp.size = tlog_size(log);
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(note);
	return r;
}

/* The entries of one reply, copied as tlog_read passes them. */
struct fetch {
	ProtobufCBinaryData *ents;
	size_t n, cap, bytes;
};
#define FETCH_FULL 1 /* tlog_read stopped: the reply is full */

static int
fetch_entry(void *arg, uint64_t index, const uint8_t *data, size_t len)
{
	struct fetch *f = arg;

	(void)index;
	/* Stop early rather than exceed a frame: clients ask again from
	 * where the reply ended. */
	if (f->n == f->cap || (f->n > 0 && f->bytes + len + 8 > QS_MAX_FRAME / 2))
		return FETCH_FULL;
	if ((f->ents[f->n].data = malloc(len ? len : 1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	memcpy(f->ents[f->n].data, data, len);
	f->ents[f->n++].len = len;
	f->bytes += len + 8;
	return 0;
}

int
h_audit_entries(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                size_t *out_len)
{
	Qsign__V1__EntriesRequest *req = NULL;
	Qsign__V1__EntriesResponse resp = QSIGN__V1__ENTRIES_RESPONSE__INIT;
	struct tlog *log = audit_tlog(cx->srv->audit);
	ProtobufCBinaryData *ents = NULL;
	uint64_t size = tlog_size(log);
	size_t n = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__entries_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if ((r = may_audit(cx)) != 0)
		goto out;
	if (req->count == 0 || req->count > QS_MAX_AUDIT_FETCH) {
		r = qs_fail(QS_ERR_INVALID, "count must be 1..%d", QS_MAX_AUDIT_FETCH);
		goto out;
	}
	if (req->start > size) {
		r = qs_fail(QS_ERR_INVALID, "start %llu is past the log size %llu",
		            (unsigned long long)req->start, (unsigned long long)size);
		goto out;
	}
	n = size - req->start < req->count ? (size_t)(size - req->start) : req->count;
	if ((ents = calloc(n + 1, sizeof(*ents))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	{
		struct fetch f = {ents, 0, n, 0};
		r = tlog_read(log, req->start, req->start + n, fetch_entry, &f);
		n = f.n;
		if (r != 0 && r != FETCH_FULL)
			goto out;
	}
	resp.start = req->start;
	resp.n_entries = n;
	resp.entries = ents;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	for (size_t i = 0; ents != NULL && i < n; i++)
		free(ents[i].data);
	free(ents);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

static int
pack_proof(uint64_t tree_size, const qs_hash *path, size_t n, uint8_t **out, size_t *out_len)
{
	Qsign__V1__ProofResponse resp = QSIGN__V1__PROOF_RESPONSE__INIT;
	ProtobufCBinaryData h[QS_MAX_MERKLE_PATH];

	for (size_t i = 0; i < n; i++) {
		h[i].data = (uint8_t *)path[i];
		h[i].len = sizeof(qs_hash);
	}
	resp.tree_size = tree_size;
	resp.n_hashes = n;
	resp.hashes = h;
	return qs_wire_pack(&resp.base, out, out_len);
}

int
h_audit_inclusion(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                  size_t *out_len)
{
	Qsign__V1__InclusionRequest *req = NULL;
	struct tlog *log = audit_tlog(cx->srv->audit);
	qs_hash path[QS_MAX_MERKLE_PATH];
	uint64_t size;
	size_t n = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__inclusion_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	size = req->tree_size ? req->tree_size : tlog_size(log);
	if ((r = may_audit(cx)) == 0 &&
	    (r = tlog_inclusion_proof(log, req->index, size, path, QS_MAX_MERKLE_PATH, &n)) == 0)
		r = pack_proof(size, path, n, out, out_len);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_audit_consistency(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                    size_t *out_len)
{
	Qsign__V1__ConsistencyRequest *req = NULL;
	struct tlog *log = audit_tlog(cx->srv->audit);
	qs_hash path[QS_MAX_MERKLE_PATH];
	uint64_t size2;
	size_t n = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__consistency_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	size2 = req->size2 ? req->size2 : tlog_size(log);
	if ((r = may_audit(cx)) == 0 &&
	    (r = tlog_consistency_proof(log, req->size1, size2, path, QS_MAX_MERKLE_PATH, &n)) == 0)
		r = pack_proof(size2, path, n, out, out_len);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}
