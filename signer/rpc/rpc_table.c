/*
 * Every RPC qsignd serves: one line per method: name, handler, needs an
 * authenticated principal, changes state (its refusals are audited).
 * Modules add their lines here (and their handlers in their own files).
 */
#include <string.h>

#include "pki.h"
#include "pki_wire.h"
#include "server.h"
#include "tuf.h"
#include "tuf_wire.h"
#include "wire.h"

static const struct rpc_method methods[] = {
        {QS_M_CHALLENGE, h_challenge, 0, 0},
        {QS_M_AUTHENTICATE, h_authenticate, 0, 0},
        {QS_M_INFO, h_info, 1, 0},
        {QS_M_LIST_KEYS, h_list_keys, 1, 0},
        {QS_M_SIGN, h_sign, 1, 1},
        {QS_M_SIGN_BATCH, h_sign_batch, 1, 1},
        {QS_M_METRICS, h_metrics, 1, 0},
        {QS_M_REQ_SUBMIT, h_req_submit, 1, 1},
        {QS_M_REQ_LIST, h_req_list, 1, 0},
        {QS_M_REQ_GET, h_req_get, 1, 0},
        {QS_M_REQ_VOTE, h_req_vote, 1, 1},
        {QS_M_REQ_CANCEL, h_req_cancel, 1, 1},
        {QS_M_REQ_FETCH, h_req_fetch, 1, 0},
        {QS_M_POLICY_SHOW, h_policy_show, 1, 0},
        {QS_M_AUDIT_CHECKPOINT, h_audit_checkpoint, 1, 0},
        {QS_M_AUDIT_ENTRIES, h_audit_entries, 1, 0},
        {QS_M_AUDIT_INCLUSION, h_audit_inclusion, 1, 0},
        {QS_M_AUDIT_CONSISTENCY, h_audit_consistency, 1, 0},
        {QS_M_TUF_PUSH_TARGETS, h_tuf_push_targets, 1, 1},
        {QS_M_TUF_GET_METADATA, h_tuf_get_metadata, 1, 0},
        {QS_M_TUF_REVIEW, h_tuf_review, 1, 0},
        {QS_M_TUF_PREPARE, h_tuf_prepare, 1, 1},
        {QS_M_TUF_ADD_SIGNATURES, h_tuf_add_signatures, 1, 1},
        {QS_M_PKI_SHOW, h_pki_show, 1, 0},
        {QS_M_PKI_ISSUE_DEVICE, h_pki_issue_device, 1, 1},
        {QS_M_PKI_CRL, h_pki_crl, 1, 0},
};

const struct rpc_method *
rpc_method_find(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(name, methods[i].name) == 0)
			return &methods[i];
	return NULL;
}
