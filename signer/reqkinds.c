/* The table of module request kinds: one line per kind. */
#include "reqkinds.h"

#include <string.h>

static const struct reqkind_ops *const kinds[] = {
	NULL,
};

const struct reqkind_ops *
reqkind_find(const char *kind)
{
	for (size_t i = 0; kinds[i] != NULL; i++)
		if (strcmp(kinds[i]->kind, kind) == 0)
			return kinds[i];
	return NULL;
}
