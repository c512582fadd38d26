/*
 * server.h - qsignd's RPC server: nng rep0 sockets, worker threads, the
 * pipe -> principal table, and method dispatch.
 *
 * Each worker thread owns one nng context and runs one call at a time to
 * completion, so a slow token call occupies only that worker. Token sessions
 * come from the hsm pool, one per concurrently signing worker.
 */
#ifndef QS_SERVER_H
#define QS_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>
#include <openssl/evp.h>

#include "audit.h"
#include "config.h"
#include "keyring.h"
#include "policy.h"
#include "qs_limits.h"
#include "ratelimit.h"
#include "statement.h"
#include "store.h"

struct pipe_table;

/* Label of the default identity key in the audit key's token. */
#define QS_IDENTITY_KEY_LABEL "qsignd-identity"

struct server {
	const struct config *cfg;
	struct store *store;
	struct keyring *kr;
	struct audit *audit; /* every state change goes here first */
	struct ratelimit *rl;
	struct pipe_table *pipes;
	/* The key qsignd proves possession of in Challenge answers (clients
	 * pin it per address): auth_identity_key_open(). */
	struct keyring_key *identity_key;
	uint8_t *identity_spki; /* DER SubjectPublicKeyInfo */
	size_t identity_spki_len;
	char identity_fp[QS_FINGERPRINT_MAX];

	pthread_rwlock_t pol_lock;
	struct policy *pol; /* current policy; take a reference to use it */

	/* Request transitions are serialised: approvals are rare, and one lock
	 * makes "threshold met -> sign exactly once" easy to see correct. */
	pthread_mutex_t req_mu;
	/* Parsed earlier policy versions (requests are judged under the
	 * version they were submitted with). Guarded by hist_mu. */
	pthread_mutex_t hist_mu;
	struct policy **hist;
	size_t nhist;

	nng_socket sock;
	int sock_open;
	nng_listener listeners[QS_MAX_LISTEN];
	size_t nlisteners;
	pthread_t *workers;
	unsigned nworkers;
	struct probe *probe; /* dials the listeners (probe.h) */
	volatile int stopping;
};

/* What a handler knows about its caller. */
struct call_ctx {
	struct server *srv;
	uint32_t pipe_id;
	int authed;
	char principal[QS_MAX_NAME + 1];
	ssize_t pidx; /* index in pol->principals, -1 if unauthenticated */
	struct policy *pol;
	int64_t peer_uid, peer_pid; /* ipc only, -1 otherwise */
	int64_t deadline_ms;
};

typedef int (*handler_fn)(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                          size_t *out_len);

/* One RPC: its wire name, handler, and whether it needs an authenticated
 * principal. The table is signer/rpc/rpc_table.c: one line per method. */
struct rpc_method {
	const char *name;
	handler_fn fn;
	int needs_auth;
	/* Changes state: its refusals (PERMISSION_DENIED, FAILED_PRECONDITION,
	 * UNAUTHENTICATED of an authenticated caller) are audited. */
	int mutates;
};

/* The method called `name`, or NULL. */
const struct rpc_method *rpc_method_find(const char *name);

/* Initialise (policy already bound, store and keyring open), listen on every
 * configured URL and start the workers. Errors name the failing listener. */
int server_start(struct server *s);
/* Stop accepting, let in-flight calls finish (workers re-check every
 * 200 ms), join workers, close the socket. */
void server_stop(struct server *s);

/* Current policy with a reference (policy_unref when done). */
struct policy *server_policy(struct server *s);

/* Pipe table, used by the auth handlers. */
int pipes_new_challenge(struct pipe_table *pt, uint32_t pipe_id, uint8_t *challenge);
/* Consume a challenge of this pipe: 0 if it was issued here, unused and
 * fresh; QS_ERR_UNAUTH otherwise. Consumed either way. */
int pipes_take_challenge(struct pipe_table *pt, uint32_t pipe_id, const uint8_t *challenge,
                         size_t len);
/* Bind the connection to principal, the key it authenticated with (a
 * reference is taken) and its roles: every later call re-checks them
 * against the policy in force. */
int pipes_set_principal(struct pipe_table *pt, uint32_t pipe_id, const char *principal,
                        EVP_PKEY *pk, unsigned roles);

/* Handlers (signer/rpc/auth.c, signer/rpc/sign_rpc.c). */
int h_challenge(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_authenticate(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_info(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_list_keys(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_sign(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
/* sign_rpc.c: the hash name (Sign/SignBatch/SubmitRequest .hash) if known,
 * key k signs with it and role ro allows it; *hash its canonical name. */
struct policy_role;
struct keyring_key;
int sign_hash(const char *name, const struct policy_role *ro, const struct keyring_key *k,
              const char **hash);
int h_sign_batch(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_metrics(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_submit(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_list(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_get(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_vote(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_cancel(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_req_fetch(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_policy_show(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_audit_checkpoint(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_audit_entries(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_audit_inclusion(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);
int h_audit_consistency(struct call_ctx *, const uint8_t *, size_t, uint8_t **, size_t *);

/* Finish requests left APPROVED by a crash (sign them now). */
void requests_resume(struct server *s);
/* Find the identity key (config "identity_key", else "qsignd-identity" in
 * the audit key's token, generated there (ECDSA P-256, audited as
 * key.generated) on first start) and fill s->identity_*. Refuses a key
 * that is also the audit key or a policy key (one key, one purpose).
 * Errors: those of keyring_find_uri / keyring_keygen, QS_ERR_INVALID. */
int auth_identity_key_open(struct server *s);
/* Execute again the APPROVED requests whose execution failed for a reason
 * that passes (audit log or store not writable: a full disk); expire those
 * past their TTL. The maintenance thread calls it every few seconds. */
void requests_retry_stuck(struct server *s);
/* Replicas on a shared store: put every APPROVED request on that list, so
 * that one whose executing replica died (its claim went with it) is
 * resumed by another without waiting for a restart; one that another
 * replica is executing is skipped again (request.executing_elsewhere).
 * The maintenance thread calls it every QS_REQUEST_SWEEP_S. */
void requests_sweep_orphans(struct server *s);
/* Hand the signer helpers every stored policy version after the first,
 * each with the approved policy change request that made it, so that they
 * verify the chain up to the version in force (privsep_guard.h). A version
 * without such a request is logged (privsep.policy_unproven) and ends the
 * chain handed over: the helpers then refuse what needs it. */
void requests_policy_chain(struct server *s);
/* Replicas on a shared store: put in force every policy version another
 * replica applied since this one last looked (one cheap query when there
 * is none). 0 on a store no other process writes. */
int requests_policy_sync(struct server *s);
/* Free the policy history cache. */
void requests_cleanup(struct server *s);

int64_t now_ms(void);

/* Reads a small text file (PEM: at most 64 KiB) into a NUL-terminated
 * string the caller frees (wipe it first if it holds a key). Errors:
 * QS_ERR_IO (missing, unreadable, empty or too large), QS_ERR_NOMEM. */
int server_read_text_file(const char *path, char **out);

#endif
