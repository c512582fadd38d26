/* Fuzz target: the one door for untrusted bytes (a Call frame and every
 * request body the daemon decodes). */
#include <stddef.h>
#include <stdint.h>

#include "pki.pb-c.h"
#include "qs_limits.h"
#include "tuf.pb-c.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ProtobufCMessageDescriptor *const bodies[] = {
		&qsign__v1__authenticate_request__descriptor,
		&qsign__v1__sign_request__descriptor,
		&qsign__v1__sign_batch_request__descriptor,
		&qsign__v1__submit_request__descriptor,
		&qsign__v1__vote_request__descriptor,
		&qsign__v1__list_requests_request__descriptor,
		&qsign__v1__entries_request__descriptor,
		&qsign__v1__reply__descriptor,
		&qsign__v1__request_view__descriptor,
		&qsign__v1__tuf_push_targets_request__descriptor,
		&qsign__v1__tuf_get_metadata_request__descriptor,
		&qsign__v1__tuf_prepare_request__descriptor,
		&qsign__v1__tuf_add_signatures_request__descriptor,
		&qsign__v1__tuf_prepare_response__descriptor,
		&qsign__v1__pki_issue_device_request__descriptor,
	};
	ProtobufCMessage *m = NULL;

	if (qs_wire_unpack(&qsign__v1__call__descriptor, data, size, QS_MAX_FRAME, &m) == 0) {
		Qsign__V1__Call *c = (Qsign__V1__Call *)m;
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			ProtobufCMessage *b = NULL;
			if (qs_wire_unpack(bodies[i], c->body.data, c->body.len, QS_MAX_FRAME,
					   &b) == 0)
				protobuf_c_message_free_unpacked(b, NULL);
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		ProtobufCMessage *b = NULL;
		if (qs_wire_unpack(bodies[i], data, size, QS_MAX_FRAME, &b) == 0)
			protobuf_c_message_free_unpacked(b, NULL);
	}
	return 0;
}
