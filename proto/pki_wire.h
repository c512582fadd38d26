/*
 * pki_wire.h - method names of the factory PKI service (proto/pki.proto).
 * Decoding goes through qs_wire_unpack() (wire.h) like every other method.
 */
#ifndef QS_PKI_WIRE_H
#define QS_PKI_WIRE_H

#include "pki.pb-c.h"
#include "wire.h"

#define QS_M_PKI_SHOW "qsign.v1.Pki/Show"
#define QS_M_PKI_ISSUE_DEVICE "qsign.v1.Pki/IssueDevice"
#define QS_M_PKI_CRL "qsign.v1.Pki/Crl"

#endif
