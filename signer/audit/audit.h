/*
 * audit.h - every state change of qsignd, appended to the tamper-evident
 * log (signer/audit/tlog.c: RFC 6962 Merkle tree + signed C2SP checkpoints).
 *
 * An entry is a JSON object made canonical here (sorted keys, compact,
 * control characters escaped, integers only): {"seq": N, "time": unix ms,
 * "event": "...", ...fields}; "seq" is its leaf index. The event names and
 * fields are documented in proto/audit.proto.
 *
 * audit_append() returns only when the entry is durable and covered by a
 * signed checkpoint: callers append *before* they act on or release
 * anything (a signature, a vote's effect), and fail closed (UNAVAILABLE)
 * when the log cannot be written. Concurrent callers are group-committed.
 */
#ifndef QS_AUDIT_H
#define QS_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "config.h"
#include "keyring.h"

struct audit;

struct store;

/* Open (creating) the log, signing checkpoints with the token key at
 * cfg->audit_key_uri (ECDSA P-256 or Ed25519): the log kept in the store
 * when st keeps one (PostgreSQL: one log for every replica), else the
 * files of cfg->audit_dir. Refuses a log that does not match its
 * checkpoint (QS_ERR_PRECONDITION, detail says why). */
int audit_open(const struct config *cfg, struct keyring *kr, struct store *st, struct audit **out);
/* The log's key is one audit_open accepts (ECDSA P-256 or Ed25519: a
 * checkpoint is a signed note); QS_ERR_INVALID naming audit.key if not.
 * qsignd --check asks it too. */
int audit_key_check(const struct keyring_key *k);
void audit_close(struct audit *a);

/*
 * Append entries for events[i] with fields[i] (JSON objects; references are
 * stolen, also on error). seq/time/event are added. A NULL fields[i] (what
 * a json_pack() that ran out of memory returns) is refused: nothing is
 * written (QS_ERR_NOMEM), and the caller releases nothing; an entry without
 * fields passes json_object().
 * Errors: QS_ERR_UNAVAILABLE (log not writable; nothing was committed),
 * QS_ERR_INVALID (an entry too large), QS_ERR_NOMEM.
 */
int audit_append_many(struct audit *a, const char *const *events, json_t **fields, size_t n);
int audit_append(struct audit *a, const char *event, json_t *fields);

/*
 * The same in two halves, so that a caller can act while its entries are
 * committed (Sign signs in the token meanwhile): start queues them (events
 * and fields must stay valid until finish; references are stolen), finish
 * waits until they are durable and returns what audit_append_many would,
 * with the seq of the first entry. Every started ticket must be finished
 * (it is freed there); nothing may be released before finish returns 0.
 */
struct audit_ticket;
int audit_append_start(struct audit *a, const char *const *events, json_t **fields, size_t n,
                       struct audit_ticket **t);
int audit_append_finish(struct audit *a, struct audit_ticket *t, uint64_t *first);

/*
 * An entry any authenticated principal can cause at will (a login, a refused
 * call). While `principal` is within its rate (config
 * audit.principal_rate_per_minute, audit.principal_burst; per event) this
 * is audit_append(event, fields). Beyond it the entry is not written but
 * counted in the row (principal, event, method, status) of the next
 * "audit.summary" entry, so that nobody can fill the disk with refusals.
 * fields is stolen. Returns audit_append's result, or 0 when counted.
 */
int audit_append_bounded(struct audit *a, const char *principal, const char *event,
                         const char *method, const char *status, json_t *fields);

/*
 * Write the counts since the last summary as one "audit.summary" entry
 * ({from, to, counts: [{principal, event, method, status, count}] (at most
 * QS_MAX_AUDIT_SUMMARY_ROWS rows), other, total}); nothing when there are
 * none. On failure the counts are kept for the next try. The maintenance
 * thread calls it every audit.summary_s; audit_close calls it last.
 */
int audit_flush_summary(struct audit *a);

/* Canonical bytes of a JSON value as entries use them (malloc'd). */
char *audit_canonical(json_t *v, size_t *len);

/* 0 while the last commit failed (disk full, I/O error), else 1. */
int audit_writable(struct audit *a);

/* 1 if audit_open created a new, empty log. */
int audit_created(const struct audit *a);

/* Accessors for the auditor RPCs. */
struct tlog *audit_tlog(struct audit *a);
const char *audit_origin(const struct audit *a);
const char *audit_public_pem(const struct audit *a);

#endif
