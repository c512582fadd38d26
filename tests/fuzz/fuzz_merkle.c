/* Fuzz target: Merkle proof verification with attacker-chosen sizes,
 * indices and paths (an auditor verifies what a daemon sends). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "merkle.h"
#include "qs_limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
take64(const uint8_t **p, size_t *n)
{
	uint64_t v = 0;
	for (int i = 0; i < 8 && *n > 0; i++, (*p)++, (*n)--)
		v = v << 8 | **p;
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qs_hash a, b, path[QS_MAX_MERKLE_PATH];
	uint64_t x = take64(&data, &size), y = take64(&data, &size);
	size_t np = 0;

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	if (size >= 64) {
		memcpy(a, data, 32);
		memcpy(b, data + 32, 32);
		data += 64;
		size -= 64;
	}
	while (size >= 32 && np < QS_MAX_MERKLE_PATH) {
		memcpy(path[np++], data, 32);
		data += 32;
		size -= 32;
	}
	(void)qs_merkle_inclusion_verify(x, y, a, path, np, b);
	(void)qs_merkle_consistency_verify(x, y, a, b, path, np);
	return 0;
}
