/*
 * Every RPC qsignd serves: one line per method. Modules add their lines
 * here (and their handlers in their own files).
 */
#include <string.h>

#include "server.h"
#include "wire.h"

static const struct rpc_method methods[] = {
	{QS_M_CHALLENGE, h_challenge, 0},
	{QS_M_AUTHENTICATE, h_authenticate, 0},
	{QS_M_INFO, h_info, 1},
	{QS_M_LIST_KEYS, h_list_keys, 1},
	{QS_M_SIGN, h_sign, 1},
	{QS_M_SIGN_BATCH, h_sign_batch, 1},
	{QS_M_REQ_SUBMIT, h_req_submit, 1},
	{QS_M_REQ_LIST, h_req_list, 1},
	{QS_M_REQ_GET, h_req_get, 1},
	{QS_M_REQ_VOTE, h_req_vote, 1},
	{QS_M_REQ_CANCEL, h_req_cancel, 1},
	{QS_M_REQ_FETCH, h_req_fetch, 1},
	{QS_M_POLICY_SHOW, h_policy_show, 1},
};

const struct rpc_method *
rpc_method_find(const char *name)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(name, methods[i].name) == 0)
			return &methods[i];
	return NULL;
}
