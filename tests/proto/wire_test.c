/* wire_test.c - the one door for untrusted protobuf bytes: garbage,
 * truncation and oversize are QS_ERR_INVALID, never a crash; and the
 * status <-> error mapping both sides rely on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "wire.h"

static ProtobufCMessage *
unpack(const ProtobufCMessageDescriptor *d, const uint8_t *b, size_t n, size_t max, int *r)
{
	ProtobufCMessage *m = (ProtobufCMessage *)1;

	*r = qs_wire_unpack(d, b, n, max, &m);
	if (*r != 0)
		CHECK(m == NULL);
	return *r == 0 ? m : NULL;
}

int
main(void)
{
	Qsign__V1__Call call = QSIGN__V1__CALL__INIT;
	Qsign__V1__Call *back;
	uint8_t *buf = NULL, garbage[64];
	size_t len = 0;
	int r;

	call.method = QS_M_SIGN;
	call.body.data = (uint8_t *)"body";
	call.body.len = 4;
	call.deadline_ms = 1700000000000ull;
	call.call_id = 42;
	CHECK_EQ(qs_wire_pack(&call.base, &buf, &len), 0);

	back = (Qsign__V1__Call *)unpack(&qsign__v1__call__descriptor, buf, len, QS_MAX_FRAME, &r);
	CHECK_EQ(r, 0);
	CHECK(back != NULL && strcmp(back->method, QS_M_SIGN) == 0 && back->call_id == 42 &&
	      back->body.len == 4 && back->deadline_ms == 1700000000000ull);
	if (back != NULL)
		protobuf_c_message_free_unpacked(&back->base, NULL);

	/* Over the cap, even by one byte, before protobuf-c sees it. */
	unpack(&qsign__v1__call__descriptor, buf, len, len - 1, &r);
	CHECK_EQ(r, QS_ERR_INVALID);
	/* Truncated in the middle of a field. */
	unpack(&qsign__v1__call__descriptor, buf, len - 1, QS_MAX_FRAME, &r);
	CHECK_EQ(r, QS_ERR_INVALID);
	/* No buffer behind a length. */
	unpack(&qsign__v1__call__descriptor, NULL, 10, QS_MAX_FRAME, &r);
	CHECK_EQ(r, QS_ERR_INVALID);
	/* Empty is a valid (all-default) message. */
	back = (Qsign__V1__Call *)unpack(&qsign__v1__call__descriptor, NULL, 0, QS_MAX_FRAME, &r);
	CHECK_EQ(r, 0);
	if (back != NULL)
		protobuf_c_message_free_unpacked(&back->base, NULL);
	free(buf);

	/* Plain garbage: an over-long varint, a length running past the end,
	 * a wrong wire type for a string field. */
	memset(garbage, 0xff, sizeof(garbage));
	unpack(&qsign__v1__reply__descriptor, garbage, sizeof(garbage), QS_MAX_FRAME, &r);
	CHECK_EQ(r, QS_ERR_INVALID);
	{
		static const uint8_t past_end[] = {0x12, 0x7f, 'a', 'b'};
		static const uint8_t wrong_type[] = {0x0d, 1, 2, 3, 4};
		unpack(&qsign__v1__reply__descriptor, past_end, sizeof(past_end), QS_MAX_FRAME, &r);
		CHECK_EQ(r, QS_ERR_INVALID);
		unpack(&qsign__v1__call__descriptor, wrong_type, sizeof(wrong_type), 64, &r);
		CHECK_EQ(r, QS_ERR_INVALID);
	}

	/* Random bytes into every message a client decodes: an answer or
	 * QS_ERR_INVALID, never a crash (ASan/UBSan build checks the rest). */
	{
		const ProtobufCMessageDescriptor *ds[] = {
		        &qsign__v1__reply__descriptor,
		        &qsign__v1__challenge_response__descriptor,
		        &qsign__v1__info_response__descriptor,
		        &qsign__v1__sign_batch_response__descriptor,
		};
		uint32_t x = 12345;
		for (int i = 0; i < 20000; i++) {
			size_t n = (size_t)(i % (int)sizeof(garbage));
			for (size_t j = 0; j < n; j++) {
				x = x * 1103515245u + 12345u;
				garbage[j] = (uint8_t)(x >> 16);
			}
			ProtobufCMessage *m = unpack(ds[i % 4], garbage, n, QS_MAX_FRAME, &r);
			CHECK(r == 0 || r == QS_ERR_INVALID);
			if (m != NULL)
				protobuf_c_message_free_unpacked(m, NULL);
		}
	}

	/* Status mapping: what the daemon sends is what the client reports. */
	const int errs[] = {QS_ERR_INVALID,      QS_ERR_NOT_FOUND, QS_ERR_EXISTS,
	                    QS_ERR_DENIED,       QS_ERR_UNAUTH,    QS_ERR_PRECONDITION,
	                    QS_ERR_UNAVAILABLE,  QS_ERR_TIMEOUT,   QS_ERR_EXHAUSTED,
	                    QS_ERR_UNIMPLEMENTED};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
		CHECK_EQ(qs_status_err(qs_err_status(errs[i])), errs[i]);
	CHECK_EQ(qs_err_status(QS_OK), QS_STATUS_OK);
	CHECK_EQ(qs_status_err(QS_STATUS_OK), QS_OK);
	CHECK_STR(qs_status_name(QS_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
	CHECK_STR(qs_status_name(QS_STATUS_PERMISSION_DENIED), "PERMISSION_DENIED");
	CHECK_STR(qs_status_name(17), "UNKNOWN");
	CHECK_STR(qs_status_name(-1), "UNKNOWN");

	/* The detail may be passed back into qs_fail / qs_wrap (overlap-safe). */
	qs_fail(QS_ERR_IO, "disk full");
	CHECK_EQ(qs_fail(QS_ERR_UNAVAILABLE, "log: %s; nothing done", qs_errdetail()),
		 QS_ERR_UNAVAILABLE);
	CHECK_STR(qs_errdetail(), "log: disk full; nothing done");
	CHECK_EQ(qs_wrap(QS_ERR_UNAVAILABLE, "outer"), QS_ERR_UNAVAILABLE);
	CHECK_STR(qs_errdetail(), "outer: log: disk full; nothing done");
	CHECK_DONE();
}
