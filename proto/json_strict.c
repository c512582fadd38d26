#include "json_strict.h"

#include <string.h>

#include "qs_err.h"

int
qs_json_only(const json_t *o, const char *where, const char *const *allowed)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return qs_fail(QS_ERR_INVALID, "%s: must be an object", where);
	json_object_foreach((json_t *)o, k, v)
	{
		size_t i;
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; i++)
			;
		if (allowed[i] == NULL)
			return qs_fail(QS_ERR_INVALID, "%s: unknown field \"%.40s\"", where, k);
	}
	return 0;
}
