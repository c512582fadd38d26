/*
 * payload.h - what each kind of quorum request carries, how it is checked,
 * and how it is shown to the people who approve it.
 *
 * One table, kind -> validate + describe. The daemon validates a payload at
 * submission; the approver's client validates it again and describes it
 * from the exact bytes whose SHA-256 it is about to sign, so an approver
 * never has to trust the daemon's rendering. TUF and PKI kinds are added to
 * the same table.
 */
#ifndef QS_PAYLOAD_H
#define QS_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

struct qs_payload_kind {
	const char *name;
	/* 0 if the bytes are acceptable for this kind, QS_ERR_INVALID with the
	 * reason otherwise. */
	int (*validate)(const uint8_t *p, size_t len);
	/* A malloc'd, human-readable description (several lines, each ending
	 * in '\n'). `context` is kind-specific (the policy in force for
	 * "policy"), may be NULL. */
	int (*describe)(const uint8_t *p, size_t len, const char *context, char **out);
};

/* The i-th registered kind (0..), or NULL past the end (fuzzing, docs). */
const struct qs_payload_kind *qs_payload_kind_at(size_t i);

/* The kind named `name`, or NULL. */
const struct qs_payload_kind *qs_payload_kind(const char *name);

#endif
