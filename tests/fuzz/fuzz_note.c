/* Fuzz target: signed notes and checkpoint bodies (what auditors receive). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *pk;
	static const uint8_t pub[32] = {0x3d, 0x40, 0x17, 0xc3, 0xe8, 0x43, 0x89, 0x5a,
					0x92, 0xb7, 0x0a, 0xa7, 0x4d, 0x1b, 0x7e, 0xbc,
					0x9c, 0x98, 0x2c, 0xcf, 0x2e, 0xc4, 0x96, 0x8c,
					0xc0, 0xcd, 0x55, 0xf1, 0x2a, 0xf4, 0x66, 0x0c};
	struct qs_checkpoint cp;
	char *text = NULL;
	size_t tl = 0;

	if (pk == NULL)
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, sizeof(pub));
	if (qs_note_open((const char *)data, size, "example.org/log", pk, &text, &tl) == 0) {
		(void)qs_checkpoint_parse(text, tl, NULL, &cp);
		free(text);
	}
	(void)qs_checkpoint_parse((const char *)data, size, NULL, &cp);
	return 0;
}
