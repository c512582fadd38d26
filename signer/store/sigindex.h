/*
 * sigindex.h - the state store's signature index as state derived from
 * the audit log.
 *
 * A Sign is answered once its audit entry is durable (signer/rpc/sign_rpc.c);
 * nothing else waits on the signing path. This thread reads the committed
 * "signature" entries from the log, in order, and records them in the
 * store with their seq, together with the position it reached, in one
 * transaction per round (store_index_apply); a "signature.failed" entry
 * removes the signature of the entry it names. At start the index catches
 * up with the log before qsignd serves (rebuilt, if it is behind, from
 * where the last transaction left it), so whatever the index says after a
 * kill -9 is what the log says.
 *
 * Backends that record signatures on the signing path (store_index_derived
 * 0: PostgreSQL) need none of this: sigindex_start returns *out NULL.
 */
#ifndef QS_SIGINDEX_H
#define QS_SIGINDEX_H

#include <stdint.h>

#include "store.h"
#include "tlog.h"

struct sigindex;

/* Catch the index up with the log (synchronously), then keep it so on a
 * thread of its own. Errors: the store's, QS_ERR_IO (an entry unreadable),
 * QS_ERR_NOMEM. */
int sigindex_start(struct store *st, struct tlog *log, struct sigindex **out);

/* Index what is committed, stop the thread, free. NULL is fine. */
void sigindex_stop(struct sigindex *si);

/* Catch up once, now (for tests and for sigindex_start). An index ahead of
 * the log (the log was replaced or rolled back) is said in the log, its
 * signatures kept without their entries, and this log indexed anew. */
int sigindex_catch_up(struct store *st, struct tlog *log);

#endif
