/*
 * cjson.h - canonical JSON (OLPC) over jansson values, as TUF signs it.
 *
 * Object keys sorted by their UTF-8 bytes, no insignificant whitespace,
 * integers only (a real anywhere is refused), strings written raw as UTF-8
 * with only '"' and '\' escaped. The same value always gives the same bytes,
 * which is what a signature over "the signed part" needs.
 */
#ifndef QS_CJSON_H
#define QS_CJSON_H

#include <stddef.h>

#include <jansson.h>

/* Maximum nesting accepted: metadata is shallow, a deep value is a bug or
 * an attack on the recursion. */
#define QS_CJSON_MAX_DEPTH 32

/*
 * Encode v canonically into *out (malloc'd, NUL-terminated; *len excludes
 * the NUL). Errors: QS_ERR_INVALID (a real number, a string or key with an
 * embedded NUL, nesting deeper than QS_CJSON_MAX_DEPTH), QS_ERR_NOMEM.
 */
int qs_cjson_encode(const json_t *v, char **out, size_t *len);

/*
 * Parse canonical JSON: *out (one reference) only if encoding it gives
 * back exactly s, len. Errors: QS_ERR_INVALID (does not parse, a NUL byte,
 * not the canonical form), QS_ERR_NOMEM.
 */
int qs_cjson_decode(const char *s, size_t len, json_t **out);

#endif
