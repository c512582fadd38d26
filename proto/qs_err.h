/*
 * qs_err.h - the one error type of quorum-signer.
 *
 * Every function of ours that can fail returns an int: 0 (QS_OK) on success
 * or a negative QS_ERR_* code. The detail (the CK_RV name, errno text, the
 * OpenSSL or SQLite message) is kept per thread by qs_fail() and read back
 * with qs_errdetail(), so callers can report it without widening every
 * signature. Each code maps to exactly one gRPC status for the wire.
 *
 * This is the leaf every module shares; it depends on nothing but libc.
 */
#ifndef QS_ERR_H
#define QS_ERR_H

#include <stddef.h>

enum qs_err {
	QS_OK = 0,
	QS_ERR_INTERNAL = -1,       /* our own bug or an unexpected library state */
	QS_ERR_NOMEM = -2,          /* allocation failed */
	QS_ERR_INVALID = -3,        /* malformed input / argument */
	QS_ERR_NOT_FOUND = -4,      /* object, key, request, token not found */
	QS_ERR_EXISTS = -5,         /* refusing to overwrite something */
	QS_ERR_DENIED = -6,         /* authenticated but not allowed */
	QS_ERR_UNAUTH = -7,         /* no/invalid authentication */
	QS_ERR_PRECONDITION = -8,   /* state does not allow the operation */
	QS_ERR_UNAVAILABLE = -9,    /* temporarily cannot serve (token down, log) */
	QS_ERR_TIMEOUT = -10,       /* deadline passed */
	QS_ERR_EXHAUSTED = -11,     /* rate limit or size limit */
	QS_ERR_PKCS11 = -12,        /* a PKCS#11 call failed (CK_RV in detail) */
	QS_ERR_PIN = -13,           /* wrong/locked PIN or unreadable PIN source */
	QS_ERR_CRYPTO = -14,        /* OpenSSL failure or bad signature */
	QS_ERR_IO = -15,            /* file / socket I/O (errno in detail) */
	QS_ERR_DB = -16,            /* state store failure */
	QS_ERR_UNIMPLEMENTED = -17, /* unknown method / unsupported algorithm */
	QS_ERR_BADSIG = -18,        /* a signature did not verify */
};

/* gRPC status codes, names and numbers as gRPC defines them. */
enum qs_status {
	QS_STATUS_OK = 0,
	QS_STATUS_CANCELLED = 1,
	QS_STATUS_UNKNOWN = 2,
	QS_STATUS_INVALID_ARGUMENT = 3,
	QS_STATUS_DEADLINE_EXCEEDED = 4,
	QS_STATUS_NOT_FOUND = 5,
	QS_STATUS_ALREADY_EXISTS = 6,
	QS_STATUS_PERMISSION_DENIED = 7,
	QS_STATUS_RESOURCE_EXHAUSTED = 8,
	QS_STATUS_FAILED_PRECONDITION = 9,
	QS_STATUS_ABORTED = 10,
	QS_STATUS_OUT_OF_RANGE = 11,
	QS_STATUS_UNIMPLEMENTED = 12,
	QS_STATUS_INTERNAL = 13,
	QS_STATUS_UNAVAILABLE = 14,
	QS_STATUS_DATA_LOSS = 15,
	QS_STATUS_UNAUTHENTICATED = 16,
};

/* Static English text for an error code; never NULL. */
const char *qs_strerror(int err);

/* Record a detail message for the calling thread and return err unchanged,
 * so that `return qs_fail(QS_ERR_IO, "open %s: %s", p, strerror(errno));`
 * reads naturally. The detail is truncated at QS_ERRDETAIL_MAX bytes. */
int qs_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the calling thread's detail with a formatted context:
 * qs_wrap(r, "tokens[%zu]", i) turns "missing key" into
 * "tokens[1]: missing key". Returns err unchanged. */
int qs_wrap(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last detail ("" if none). Valid until the next
 * qs_fail() on this thread. */
const char *qs_errdetail(void);

/* Clear the calling thread's detail. */
void qs_errclear(void);

/* Map an error code to the gRPC status sent on the wire. */
enum qs_status qs_err_status(int err);

/* Map a wire status back to an error code (clients). */
int qs_status_err(int status);

/* gRPC name of a status ("PERMISSION_DENIED"), or "UNKNOWN". */
const char *qs_status_name(int status);

#define QS_ERRDETAIL_MAX 512

#endif
