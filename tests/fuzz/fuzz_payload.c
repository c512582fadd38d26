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
	/* The first byte picks the kind, the rest is the payload. */
	static const char *const kinds[] = {
		"digest", "blob", "policy", "tuf-init", "tuf-root", "tuf-promote",
		"tuf-targets", "pki-ca-create", "pki-device-ca", "pki-tls", "pki-revoke",
	};
	const struct qs_payload_kind *k;
	char *desc = NULL;

	if (size == 0)
		return 0;
	k = qs_payload_kind(kinds[data[0] % (sizeof(kinds) / sizeof(kinds[0]))]);
	if (k == NULL)
		return 0;
	if (k->validate(data + 1, size - 1) == 0 && k->describe(data + 1, size - 1, NULL, &desc) == 0)
		free(desc);
	return 0;
}
