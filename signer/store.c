/* Dispatch to the backend; keeps callers ignorant of which one runs. */
#include "store.h"

void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

int
store_policy_current(struct store *s, uint64_t *version, char **text)
{
	return s->ops->policy_current(s, version, text);
}

int
store_policy_get(struct store *s, uint64_t version, char **text)
{
	return s->ops->policy_get(s, version, text);
}

int
store_policy_add(struct store *s, uint64_t version, const char *text)
{
	return s->ops->policy_add(s, version, text);
}

int
store_record_signatures(struct store *s, const struct store_sig *sigs, size_t n)
{
	return s->ops->record_signatures(s, sigs, n);
}

int
store_count_signatures(struct store *s, uint64_t *n)
{
	return s->ops->count_signatures(s, n);
}
