/* The table of module request kinds: one line per kind. */
#include "reqkinds.h"

#include <string.h>

#include "pki.h"
#include "tuf.h"

static const struct reqkind_ops *const kinds[] = {
        &tuf_init_ops,       &tuf_root_ops,           &tuf_promote_ops,
        &pki_kind_ca_create, &pki_kind_tls,           &pki_kind_device_ca,
        &pki_kind_ca_state,  &pki_kind_device_revoke, NULL,
};

const struct reqkind_ops *
reqkind_find(const char *kind)
{
	for (size_t i = 0; kinds[i] != NULL; i++)
		if (strcmp(kinds[i]->kind, kind) == 0)
			return kinds[i];
	return NULL;
}
