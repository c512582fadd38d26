/*
 * wire.h - method names and the one door for untrusted protobuf bytes.
 *
 * Every decode of peer bytes goes through qs_wire_unpack(), which caps the
 * size before protobuf_c_message_unpack() runs and maps failure to
 * QS_ERR_INVALID; callers then check each field's count and length.
 */
#ifndef QS_WIRE_H
#define QS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "audit.pb-c.h"
#include "qsign.pb-c.h"

#define QS_M_CHALLENGE "qsign.v1.Auth/Challenge"
#define QS_M_AUTHENTICATE "qsign.v1.Auth/Authenticate"
#define QS_M_INFO "qsign.v1.Signer/Info"
#define QS_M_LIST_KEYS "qsign.v1.Signer/ListKeys"
#define QS_M_SIGN "qsign.v1.Signer/Sign"
#define QS_M_SIGN_BATCH "qsign.v1.Signer/SignBatch"
#define QS_M_METRICS "qsign.v1.Signer/Metrics"
#define QS_M_REQ_SUBMIT "qsign.v1.Requests/Submit"
#define QS_M_REQ_LIST "qsign.v1.Requests/List"
#define QS_M_REQ_GET "qsign.v1.Requests/Get"
#define QS_M_REQ_VOTE "qsign.v1.Requests/Vote"
#define QS_M_REQ_CANCEL "qsign.v1.Requests/Cancel"
#define QS_M_REQ_FETCH "qsign.v1.Requests/Fetch"
#define QS_M_POLICY_SHOW "qsign.v1.Policy/Show"
#define QS_M_AUDIT_CHECKPOINT "qsign.v1.Audit/Checkpoint"
#define QS_M_AUDIT_ENTRIES "qsign.v1.Audit/Entries"
#define QS_M_AUDIT_INCLUSION "qsign.v1.Audit/Inclusion"
#define QS_M_AUDIT_CONSISTENCY "qsign.v1.Audit/Consistency"

/* Unpack buf (at most `max` bytes) as a message of descriptor d.
 * *out must be freed with protobuf_c_message_free_unpacked(*out, NULL).
 * Errors: QS_ERR_INVALID (too large, malformed), QS_ERR_NOMEM. */
int qs_wire_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, size_t max,
                   ProtobufCMessage **out);

/* Serialize m into a malloc'd buffer. */
int qs_wire_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len);

#endif
