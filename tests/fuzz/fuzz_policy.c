/* Fuzz target: policy documents (proposed by admins, stored, re-parsed). */
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL;

	if (policy_parse((const char *)data, size, &p) == 0)
		policy_unref(p);
	return 0;
}
