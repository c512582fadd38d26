/*
 * Module sections of the policy. Each module that owns a section ("tuf",
 * "pki") adds its checker to the table; a section without a module to
 * check it is refused, so a policy never carries rules nobody enforces.
 */
#include <stddef.h>
#include <string.h>

#include "policy.h"
#include "pki.h"
#include "qs_err.h"
#include "tuf.h"

struct ext_checker {
	const char *section;
	int (*check)(const struct policy *p, json_t *section);
};

static const struct ext_checker checkers[] = {
        {"tuf", tuf_policy_check},
        {"pki", pki_policy_check},
        {NULL, NULL},
};

static int
check_section(const struct policy *p, const char *name, json_t *sec)
{
	if (sec == NULL)
		return 0;
	for (size_t i = 0; checkers[i].section != NULL; i++)
		if (strcmp(checkers[i].section, name) == 0)
			return checkers[i].check(p, sec);
	return qs_fail(QS_ERR_INVALID, "%s: this qsignd has no module for this section", name);
}

int
policy_ext_check(const struct policy *p)
{
	int r;

	if ((r = check_section(p, "tuf", p->ext_tuf)) != 0 ||
	    (r = check_section(p, "pki", p->ext_pki)) != 0)
		return r;
	return 0;
}

int
policy_ext_key_uses(const struct policy *p, policy_key_use_fn use, void *arg)
{
	return p->ext_tuf != NULL ? tuf_policy_key_uses(p, use, arg) : 0;
}

int
policy_ext_state_key_uses(struct store *st, policy_uri_use_fn use, void *arg)
{
	int r;

	if (st == NULL)
		return 0;
	if ((r = tuf_state_key_uses(st, use, arg)) != 0 ||
	    (r = pki_state_key_uses(st, use, arg)) != 0)
		return r;
	return 0;
}
