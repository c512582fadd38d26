#include "cjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qs_err.h"

struct sbuf {
	char *p;
	size_t len, cap;
};

static int
put(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* OLPC strings: only '"' and '\' are escaped, every other byte is raw. */
static int
put_string(struct sbuf *b, const char *s, size_t n)
{
	int r;

	if (memchr(s, '\0', n) != NULL)
		return qs_fail(QS_ERR_INVALID, "canonical JSON: string with an embedded NUL");
	if ((r = put(b, "\"", 1)) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if ((s[i] == '"' || s[i] == '\\') && (r = put(b, "\\", 1)) != 0)
			return r;
		if ((r = put(b, &s[i], 1)) != 0)
			return r;
	}
	return put(b, "\"", 1);
}

static int
cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int encode(struct sbuf *b, const json_t *v, unsigned depth);

static int
encode_object(struct sbuf *b, const json_t *v, unsigned depth)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = NULL, *k;
	json_t *x;
	int r;

	if (n > 0 && (keys = calloc(n, sizeof(*keys))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_object_foreach((json_t *)v, k, x) keys[i++] = k;
	/* strcmp compares unsigned bytes: UTF-8 byte order is code point
	 * order, which is how the reference implementation sorts. */
	if (n > 1)
		qsort(keys, n, sizeof(*keys), cmp_keys);
	if ((r = put(b, "{", 1)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((i > 0 && (r = put(b, ",", 1)) != 0) ||
		    (r = put_string(b, keys[i], strlen(keys[i]))) != 0 ||
		    (r = put(b, ":", 1)) != 0 ||
		    (r = encode(b, json_object_get(v, keys[i]), depth + 1)) != 0)
			goto out;
	}
	r = put(b, "}", 1);
out:
	free(keys);
	return r;
}

static int
encode(struct sbuf *b, const json_t *v, unsigned depth)
{
	char num[32];
	size_t i;
	int r;

	if (depth > QS_CJSON_MAX_DEPTH)
		return qs_fail(QS_ERR_INVALID, "canonical JSON: nested deeper than %d",
		               QS_CJSON_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return encode_object(b, v, depth);
	case JSON_ARRAY:
		if ((r = put(b, "[", 1)) != 0)
			return r;
		for (i = 0; i < json_array_size(v); i++)
			if ((i > 0 && (r = put(b, ",", 1)) != 0) ||
			    (r = encode(b, json_array_get(v, i), depth + 1)) != 0)
				return r;
		return put(b, "]", 1);
	case JSON_STRING:
		return put_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return put(b, num, strlen(num));
	case JSON_REAL:
		return qs_fail(QS_ERR_INVALID, "canonical JSON has no floating-point numbers");
	case JSON_TRUE:
		return put(b, "true", 4);
	case JSON_FALSE:
		return put(b, "false", 5);
	case JSON_NULL:
		return put(b, "null", 4);
	}
	return qs_fail(QS_ERR_INVALID, "canonical JSON: unknown value type");
}

int
qs_cjson_encode(const json_t *v, char **out, size_t *len)
{
	struct sbuf b = {NULL, 0, 0};
	int r;

	*out = NULL;
	*len = 0;
	if (v == NULL)
		return qs_fail(QS_ERR_INVALID, "canonical JSON: no value");
	if ((r = encode(&b, v, 0)) != 0 || (b.p == NULL && (r = put(&b, "", 0)) != 0)) {
		free(b.p);
		return r;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/*
 * Canonical JSON writes control characters inside strings raw, which a
 * JSON parser (jansson included) refuses: escape them as \u00XX, parse,
 * and keep the value only if it encodes back to exactly the input. No
 * Debian library parses OLPC canonical JSON, hence this one pass.
 */
int
qs_cjson_decode(const char *s, size_t len, json_t **out)
{
	struct sbuf b = {NULL, 0, 0};
	char *canon = NULL, esc[8];
	size_t clen = 0;
	int in_str = 0, r = 0;
	json_t *v;

	*out = NULL;
	if (memchr(s, '\0', len) != NULL)
		return qs_fail(QS_ERR_INVALID, "canonical JSON: a NUL byte");
	for (size_t i = 0; i < len && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if (in_str && c == '\\' && i + 1 < len) {
			r = put(&b, s + i, 2);
			i++;
		} else if (in_str && c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			r = put(&b, esc, 6);
		} else {
			if (c == '"')
				in_str = !in_str;
			r = put(&b, s + i, 1);
		}
	}
	if (r != 0) {
		free(b.p);
		return r;
	}
	v = json_loadb(b.p ? b.p : "", b.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	free(b.p);
	if (v == NULL)
		return qs_fail(QS_ERR_INVALID, "canonical JSON: does not parse");
	if ((r = qs_cjson_encode(v, &canon, &clen)) != 0 || clen != len ||
	    memcmp(canon, s, len) != 0) {
		free(canon);
		json_decref(v);
		return r ? r : qs_fail(QS_ERR_INVALID, "not in canonical JSON form");
	}
	free(canon);
	*out = v;
	return 0;
}
