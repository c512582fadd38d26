/*
 * tuf_wire.h - method names of the Tuf service (proto/tuf.proto).
 */
#ifndef QS_TUF_WIRE_H
#define QS_TUF_WIRE_H

#define QS_M_TUF_PUSH_TARGETS "qsign.v1.Tuf/PushTargets"
#define QS_M_TUF_GET_METADATA "qsign.v1.Tuf/GetMetadata"
#define QS_M_TUF_REVIEW "qsign.v1.Tuf/Review"
#define QS_M_TUF_PREPARE "qsign.v1.Tuf/Prepare"
#define QS_M_TUF_ADD_SIGNATURES "qsign.v1.Tuf/AddSignatures"

#endif
