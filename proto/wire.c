#include "wire.h"

#include <stdlib.h>

#include "qs_err.h"

int
qs_wire_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, size_t max,
               ProtobufCMessage **out)
{
	ProtobufCMessage *m;

	*out = NULL;
	if (len > max)
		return qs_fail(QS_ERR_INVALID, "%s: message of %zu bytes exceeds limit %zu",
		               d->short_name, len, max);
	if (len > 0 && buf == NULL)
		return qs_fail(QS_ERR_INVALID, "%s: no data", d->short_name);
	m = protobuf_c_message_unpack(d, NULL, len, buf);
	if (m == NULL)
		return qs_fail(QS_ERR_INVALID, "%s: malformed protobuf", d->short_name);
	*out = m;
	return 0;
}

int
qs_wire_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf;

	*out = NULL;
	*len = 0;
	/* malloc(0) may return NULL: keep one byte so an empty message is valid. */
	if ((buf = malloc(n ? n : 1)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (protobuf_c_message_pack(m, buf) != n) {
		free(buf);
		return qs_fail(QS_ERR_INTERNAL, "protobuf pack size mismatch");
	}
	*out = buf;
	*len = n;
	return 0;
}
