/* Fuzz target: every request payload kind's validate + describe (the
 * approver's client runs describe on bytes the daemon hands it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks one of the registered kinds, the rest is the
	 * payload. */
	const struct qs_payload_kind *k;
	size_t n = 0;
	char *desc = NULL;

	if (size == 0)
		return 0;
	while (qs_payload_kind_at(n) != NULL)
		n++;
	k = qs_payload_kind_at(data[0] % n);
	if (k->validate(data + 1, size - 1) == 0 && k->describe(data + 1, size - 1, NULL, &desc) == 0)
		free(desc);
	return 0;
}
