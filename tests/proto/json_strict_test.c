/*
 * json_strict_test.c - qs_json_only, the one strict-members check: a known
 * member passes, an unknown one is refused with the one wording
 * "<where>: unknown field \"<name>\"", a non-object is refused, and a long
 * member name from the document is truncated in the message.
 */
#include <jansson.h>

#include "check.h"
#include "json_strict.h"
#include "qs_err.h"

static json_t *
load(const char *s)
{
	return json_loads(s, JSON_REJECT_DUPLICATES, NULL);
}

int
main(void)
{
	static const char *const allowed[] = {"a", "b", NULL};
	static const char *const none[] = {NULL};
	json_t *j;
	char name[200], doc[256];

	j = load("{\"a\":1,\"b\":2}");
	CHECK_EQ(qs_json_only(j, "x", allowed), 0);
	json_decref(j);

	j = load("{}");
	CHECK_EQ(qs_json_only(j, "x", none), 0);
	json_decref(j);

	j = load("{\"a\":1,\"thresold\":2}");
	CHECK_EQ(qs_json_only(j, "policy.quorum", allowed), QS_ERR_INVALID);
	CHECK_STR(qs_errdetail(), "policy.quorum: unknown field \"thresold\"");
	json_decref(j);

	j = load("[1]");
	CHECK_EQ(qs_json_only(j, "tuf.roles", allowed), QS_ERR_INVALID);
	CHECK_STR(qs_errdetail(), "tuf.roles: must be an object");
	json_decref(j);
	CHECK_EQ(qs_json_only(NULL, "pki", allowed), QS_ERR_INVALID);

	memset(name, 'z', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(doc, sizeof(doc), "{\"%.150s\":1}", name);
	j = load(doc);
	CHECK_EQ(qs_json_only(j, "w", allowed), QS_ERR_INVALID);
	CHECK_STR(qs_errdetail(), "w: unknown field \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"");
	json_decref(j);
	CHECK_DONE();
}
