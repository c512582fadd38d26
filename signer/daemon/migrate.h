/*
 * migrate.h - moving a single-host deployment (SQLite state, the audit log
 * in files) onto the PostgreSQL store shared by replicas, with its history.
 *
 * Everything goes in one PostgreSQL transaction: the state as the store
 * keeps it (store_dump of the old store into store_import_* of the new:
 * policy versions, signature records, requests with their votes and
 * signatures, TUF and PKI documents) and the audit log's entries, copied
 * byte for byte in order, with its last signed checkpoint as the head. The
 * log's root and checkpoint are therefore the ones auditors saw, and a
 * consistency proof from any checkpoint they kept verifies against it.
 */
#ifndef QS_MIGRATE_H
#define QS_MIGRATE_H

#include "config.h"
#include "keyring.h"

/*
 * Copy cfg's state and audit log (SQLite, audit.dir) into the PostgreSQL
 * database `conninfo` (its schema created if absent). Refuses, changing
 * nothing: a configuration already on PostgreSQL, a missing state or log,
 * a log in use (qsignd running: it holds the log's lock), a log that does
 * not verify against its signed checkpoint (QS_ERR_PRECONDITION), a target
 * that already holds any state or audit entry (QS_ERR_EXISTS), a bad
 * conninfo (QS_ERR_INVALID, QS_ERR_UNAVAILABLE). After the COMMIT the
 * copy is opened as a replica opens it (the entries checked against the
 * checkpoint's signature and root) and compared with the source.
 * The source is left as it was, but for MIGRATE_MARKER written in its
 * state directory just before the COMMIT (kept if the COMMIT fails: its
 * outcome may be unknown), so that an interruption after the COMMIT never
 * leaves the source unmarked. kr: the tokens of cfg (the audit key).
 */
int migrate_store(const struct config *cfg, struct keyring *kr, const char *conninfo);

/*
 * After a migration the old state directory, and the audit log's directory
 * when it is another, hold MIGRATE_MARKER (what was moved, and when): a
 * qsignd started on the old configuration would extend the old audit log
 * apart from the database's, two histories under one log key.
 * migrate_check_source refuses (QS_ERR_PRECONDITION) a SQLite
 * configuration whose state or audit directory holds it: qsignd's start,
 * --check, backup, restore and a second migrate-store (remove the file to
 * go back to that state on purpose). 0 otherwise, and for a PostgreSQL
 * configuration.
 */
#define MIGRATE_MARKER "MOVED-TO-POSTGRESQL"
int migrate_check_source(const struct config *cfg);

#endif
