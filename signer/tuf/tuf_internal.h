/*
 * tuf_internal.h - what the tuf_*.c files of qsignd share and nothing else
 * includes: the batch a change is built in, the lock that serialises changes,
 * and the functions one section of the TUF code calls in another. The public
 * interface (RPCs, request kinds, the refresh timer) is tuf.h.
 */
#ifndef QS_TUF_INTERNAL_H
#define QS_TUF_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keyring.h"
#include "policy.h"
#include "server.h"
#include "store.h"
#include "tuf.h"

/* All changes to the repositories, from requests, pushes and the timer. */
extern pthread_mutex_t tuf_mu;

/* The two repository flavours, in publishing order. */
extern const char *const tuf_repos[2];

struct out_file {
	char repo[8];
	char role[16]; /* root | targets | snapshot | timestamp | keys (state only) */
	uint64_t version;
	char *data;
	size_t len;
};

struct batch {
	struct out_file f[32];
	size_t n;
	/* target contents to write under <repo>/targets/ */
	const struct tuf_file *targets;
	size_t ntargets;
	json_t *target_hashes; /* name -> sha256 hex, for target file names */
	json_t *promoted;      /* production targets whose CI contents to copy */
};

/* tuf_build.c: batch, policy and key-state lookups, signing, metadata builders, stored state
 * (comments at the definitions). */
void batch_free(struct batch *b);
int batch_add(struct batch *b, const char *repo, const char *role, uint64_t version, json_t *env);
json_t *pol_role(const struct policy *p, const char *role);
int64_t role_expiry(const struct policy *p, json_t *st, const char *role);
const char *pol_repo_dir(const struct policy *p, const char *repo);
int key_at(struct server *s, const char *uri, struct keyring_key **k);
int keyid_of(const struct keyring_key *k, char out[65]);
json_t *st_uris(json_t *st, const char *role);
json_int_t st_threshold(json_t *st, const char *role);
json_t *st_role(json_t *st, const char *role);
json_t *st_ext(json_t *st, const char *role);
size_t st_nkeys(json_t *st, const char *role);
json_t *signed_base(const char *type, uint64_t version, int64_t expires);
json_t *role_keyids(struct server *s, json_t *st, const char *role, json_t *keys, int *rp);
void append_distinct(json_t *ids, json_t *more);
int build_root(struct server *s, const struct policy *p, json_t *st, const char *repo,
               uint64_t version, json_t **out);
int add_targets(struct server *s, struct batch *b, json_t *st, const char *repo, uint64_t version,
                int64_t expires, json_t *targets);
int add_snapshot(struct server *s, const struct policy *p, struct batch *b, json_t *st,
                 const char *repo, uint64_t version, uint64_t targets_version);
int add_timestamp(struct server *s, const struct policy *p, struct batch *b, json_t *st,
                  const char *repo, uint64_t version, const char *snap, size_t snap_len,
                  uint64_t snap_version);
int doc_name(char *buf, size_t cap, const char *repo, const char *role);
int current_signed(struct server *s, const char *repo, const char *role, json_t **sp,
                   uint64_t *ver);
int load_state(struct server *s, json_t **st, uint64_t *ver);

/* tuf_publish.c: writing files, committing a batch, republishing (comments at the definitions). */
int commit(struct server *s, const struct policy *p, struct batch *b, const char *event,
           json_t *fields);
int republish(struct server *s, const struct policy *p);
const char *repo_dir(const struct server *s, const struct policy *p, const char *repo);
int publish_file(const struct server *s, const struct policy *p, const struct out_file *f);
int target_path(const struct server *s, const struct policy *p, const char *repo, const char *tname,
                const char *sha, char *dir, size_t dcap, char *name, size_t ncap);
int publish_target(const struct server *s, const struct policy *p, const char *repo,
                   const struct tuf_file *t, const char *sha);

/* Store namespace of pushed target contents, named by SHA-256 (hex). */
#define TUF_TARGET_NS "tuf.target"
int add_snap_ts(struct server *s, const struct policy *p, struct batch *b, json_t *st,
                const char *repo, uint64_t tv);
int add_state(struct batch *b, json_t *st, uint64_t version);

/* tuf_external.c: external keys and signing documents (comments at the definitions). */
json_t *pol_external(const struct policy *p, const char *name);
int external_entry(const struct policy *p, const char *role, const char *name, const char *holder,
                   const char *pem_in, json_t **out);
json_t *key_set(struct server *s, json_t *st, const char *repo, const char *type, int *rp);
int doc_add(json_t *docs, const char *repo, const char *role, uint64_t version, json_t *signed_part,
            json_t *need);
int sign_doc(struct server *s, const struct store_request *rq, json_t *doc, json_t **env,
             size_t *missing);
int remember_public(struct server *s, json_t *st);

/* tuf_root.c: init and root changes (comments at the definitions). */
int init_submit_check(struct server *s, const struct policy *p, const struct policy_role *ro,
                      const char *submitter, const uint8_t *payload, size_t len);
int result_json(json_t *o, uint8_t **result, size_t *result_len);
int init_prepare(struct server *s, const struct policy *p, json_t *prep);
int gate_is(const struct policy *p, const struct policy_role *ro, const char *gate);
int root_submit_check(struct server *s, const struct policy *p, const struct policy_role *ro,
                      const char *submitter, const uint8_t *payload, size_t len);
int root_prepare(struct server *s, const struct policy *p, const struct store_request *rq,
                 json_t *prep);

/* tuf_repo.c: prepared requests (comments at the definitions). */
int prep_load(struct server *s, const char *id, json_t **prep, uint64_t *ver);
int prep_store(struct server *s, const char *id, json_t *prep, uint64_t ver);
int prepare_locked(struct server *s, const struct policy *p, const struct store_request *rq,
                   json_t **prep, uint64_t *ver);

#endif
