#include "qs_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char detail[QS_ERRDETAIL_MAX];

const char *
qs_strerror(int err)
{
	switch (err) {
	case QS_OK:
		return "success";
	case QS_ERR_INTERNAL:
		return "internal error";
	case QS_ERR_NOMEM:
		return "out of memory";
	case QS_ERR_INVALID:
		return "invalid argument";
	case QS_ERR_NOT_FOUND:
		return "not found";
	case QS_ERR_EXISTS:
		return "already exists";
	case QS_ERR_DENIED:
		return "permission denied";
	case QS_ERR_UNAUTH:
		return "not authenticated";
	case QS_ERR_PRECONDITION:
		return "failed precondition";
	case QS_ERR_UNAVAILABLE:
		return "unavailable";
	case QS_ERR_TIMEOUT:
		return "deadline exceeded";
	case QS_ERR_EXHAUSTED:
		return "resource exhausted";
	case QS_ERR_PKCS11:
		return "PKCS#11 error";
	case QS_ERR_PIN:
		return "PIN error";
	case QS_ERR_CRYPTO:
		return "cryptographic error";
	case QS_ERR_IO:
		return "I/O error";
	case QS_ERR_DB:
		return "state store error";
	case QS_ERR_UNIMPLEMENTED:
		return "not implemented";
	case QS_ERR_BADSIG:
		return "signature verification failed";
	}
	return "unknown error";
}

int
qs_fail(int err, const char *fmt, ...)
{
	char tmp[QS_ERRDETAIL_MAX];
	va_list ap;

	/* Through a copy: callers may pass the current detail as an argument
	 * (qs_fail(r, "...: %s", qs_errdetail())), and vsnprintf into the
	 * buffer it reads from is undefined. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	memcpy(detail, tmp, sizeof(detail));
	return err;
}

int
qs_wrap(int err, const char *fmt, ...)
{
	/* Sized so the result always fits: 160 + 2 + 349 < 512. */
	char prefix[160], old[QS_ERRDETAIL_MAX - 163];
	va_list ap;

	memcpy(old, detail, sizeof(old) - 1);
	old[sizeof(old) - 1] = '\0';
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(detail, sizeof(detail), "%s: %s", prefix, old);
	return err;
}

const char *
qs_errdetail(void)
{
	return detail;
}

void
qs_errclear(void)
{
	detail[0] = '\0';
}

enum qs_status
qs_err_status(int err)
{
	switch (err) {
	case QS_OK:
		return QS_STATUS_OK;
	case QS_ERR_INVALID:
		return QS_STATUS_INVALID_ARGUMENT;
	case QS_ERR_BADSIG:
		return QS_STATUS_INVALID_ARGUMENT;
	case QS_ERR_NOT_FOUND:
		return QS_STATUS_NOT_FOUND;
	case QS_ERR_EXISTS:
		return QS_STATUS_ALREADY_EXISTS;
	case QS_ERR_DENIED:
		return QS_STATUS_PERMISSION_DENIED;
	case QS_ERR_UNAUTH:
		return QS_STATUS_UNAUTHENTICATED;
	case QS_ERR_PRECONDITION:
		return QS_STATUS_FAILED_PRECONDITION;
	case QS_ERR_UNAVAILABLE:
		return QS_STATUS_UNAVAILABLE;
	case QS_ERR_PKCS11:
		return QS_STATUS_UNAVAILABLE;
	case QS_ERR_TIMEOUT:
		return QS_STATUS_DEADLINE_EXCEEDED;
	case QS_ERR_EXHAUSTED:
		return QS_STATUS_RESOURCE_EXHAUSTED;
	case QS_ERR_UNIMPLEMENTED:
		return QS_STATUS_UNIMPLEMENTED;
	default:
		return QS_STATUS_INTERNAL;
	}
}

int
qs_status_err(int status)
{
	switch (status) {
	case QS_STATUS_OK:
		return QS_OK;
	case QS_STATUS_INVALID_ARGUMENT:
		return QS_ERR_INVALID;
	case QS_STATUS_NOT_FOUND:
		return QS_ERR_NOT_FOUND;
	case QS_STATUS_ALREADY_EXISTS:
		return QS_ERR_EXISTS;
	case QS_STATUS_PERMISSION_DENIED:
		return QS_ERR_DENIED;
	case QS_STATUS_UNAUTHENTICATED:
		return QS_ERR_UNAUTH;
	case QS_STATUS_FAILED_PRECONDITION:
		return QS_ERR_PRECONDITION;
	case QS_STATUS_UNAVAILABLE:
		return QS_ERR_UNAVAILABLE;
	case QS_STATUS_DEADLINE_EXCEEDED:
		return QS_ERR_TIMEOUT;
	case QS_STATUS_RESOURCE_EXHAUSTED:
		return QS_ERR_EXHAUSTED;
	case QS_STATUS_UNIMPLEMENTED:
		return QS_ERR_UNIMPLEMENTED;
	default:
		return QS_ERR_INTERNAL;
	}
}

const char *
qs_status_name(int status)
{
	static const char *const names[] = {
	        "OK",
	        "CANCELLED",
	        "UNKNOWN",
	        "INVALID_ARGUMENT",
	        "DEADLINE_EXCEEDED",
	        "NOT_FOUND",
	        "ALREADY_EXISTS",
	        "PERMISSION_DENIED",
	        "RESOURCE_EXHAUSTED",
	        "FAILED_PRECONDITION",
	        "ABORTED",
	        "OUT_OF_RANGE",
	        "UNIMPLEMENTED",
	        "INTERNAL",
	        "UNAVAILABLE",
	        "DATA_LOSS",
	        "UNAUTHENTICATED",
	};

	if (status < 0 || (size_t)status >= sizeof(names) / sizeof(names[0]))
		return "UNKNOWN";
	return names[status];
}
