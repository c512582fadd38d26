/*
 * json_strict.h - the one "only these members" check for strict JSON
 * documents (config, policy, TUF and PKI sections, request payloads).
 *
 * Every strict document here refuses a member it does not know rather than
 * ignoring it: a typo must not silently fall back to a default.
 */
#ifndef QS_JSON_STRICT_H
#define QS_JSON_STRICT_H

#include <jansson.h>

/*
 * Return 0 when o is an object whose every member is named in allowed
 * (NULL-terminated). where names o in the message ("tuf.roles", "tokens[0]").
 * Errors (QS_ERR_INVALID): "<where>: must be an object",
 * "<where>: unknown field \"<name>\"" (the name truncated to 40 bytes: it
 * came from the document's author, perhaps a peer).
 */
int qs_json_only(const json_t *o, const char *where, const char *const *allowed);

#endif
