/*
 * backup.h - consistent online backups of qsignd's state and their restore.
 *
 * A backup directory holds:
 *   state.db         SQLite online-backup copy of the state store
 *   audit/checkpoint the signed checkpoint read *after* state.db was copied
 *   audit/entries    the audit log, at least up to that checkpoint
 *   MANIFEST.json    time, identity, audit size and root, file SHA-256s
 * Order matters: every state change is audited before the store makes it,
 * so a log copied after the database covers everything the database holds.
 * Records past the checkpoint (in flight during the copy) are cut at restore
 * by the log's own open, as after a crash.
 */
#ifndef QS_BACKUP_H
#define QS_BACKUP_H

#include "config.h"

/* Back up cfg's state into `dir` (created; must not exist or be empty),
 * while qsignd may be running. Checks the copied log against its
 * checkpoint's root. Errors: QS_ERR_EXISTS, QS_ERR_IO, QS_ERR_DB,
 * QS_ERR_PRECONDITION (the copy does not match its checkpoint). */
int backup_create(const struct config *cfg, const char *dir);

/* Restore `dir` into cfg's state directory. qsignd must not be running.
 * Refuses (QS_ERR_PRECONDITION) to replace a newer audit log with an older
 * one unless force: that rolls the log back, which every auditor who saw
 * the newer checkpoint will detect and report. */
int backup_restore(const struct config *cfg, const char *dir, int force);

#endif
