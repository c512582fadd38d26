/* Dispatch to the backend; keeps callers ignorant of which one runs. */
#include "store.h"

#include <stdlib.h>

#include "qs_err.h"

void
store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

int
store_policy_current(struct store *s, uint64_t *version, char **text)
{
	return s->ops->policy_current(s, version, text);
}

int
store_policy_get(struct store *s, uint64_t version, char **text)
{
	return s->ops->policy_get(s, version, text);
}

int
store_policy_version(struct store *s, uint64_t *version)
{
	return s->ops->policy_version(s, version);
}

int
store_shared(const struct store *s)
{
	return s->ops->shared;
}

int
store_req_claim(struct store *s, const char *id)
{
	return s->ops->req_claim ? s->ops->req_claim(s, id) : 0;
}

void
store_req_unclaim(struct store *s, const char *id)
{
	if (s->ops->req_unclaim)
		s->ops->req_unclaim(s, id);
}

int
store_policy_add(struct store *s, uint64_t version, const char *text)
{
	return s->ops->policy_add(s, version, text);
}

int
store_record_signatures(struct store *s, const struct store_sig *sigs, size_t n)
{
	return s->ops->record_signatures(s, sigs, n);
}

int
store_count_signatures(struct store *s, uint64_t *n)
{
	return s->ops->count_signatures(s, n);
}

int
store_index_derived(const struct store *s)
{
	return s->ops->index_next != NULL && s->ops->index_apply != NULL;
}

int
store_index_next(struct store *s, uint64_t *next)
{
	*next = 0;
	if (!store_index_derived(s))
		return qs_fail(QS_ERR_UNIMPLEMENTED, "%s keeps no derived signature index",
		               s->ops->name);
	return s->ops->index_next(s, next);
}

int
store_index_apply(struct store *s, const struct store_sig *sigs, size_t n, const uint64_t *failed,
                  size_t nfailed, uint64_t next, int detach)
{
	if (!store_index_derived(s))
		return qs_fail(QS_ERR_UNIMPLEMENTED, "%s keeps no derived signature index",
		               s->ops->name);
	return s->ops->index_apply(s, sigs, n, failed, nfailed, next, detach);
}

int
store_req_insert(struct store *s, const struct store_request *r)
{
	return s->ops->req_insert(s, r);
}

int
store_req_find_token(struct store *s, const char *submitter, const char *token, char *id)
{
	return s->ops->req_find_token(s, submitter, token, id);
}

int
store_req_get(struct store *s, const char *id, int with_payload, struct store_request **out)
{
	return s->ops->req_get(s, id, with_payload, out);
}

int
store_req_list(struct store *s, int state, const char *role, size_t limit,
               struct store_request ***out, size_t *n)
{
	return s->ops->req_list(s, state, role, limit, out, n);
}

int
store_req_vote(struct store *s, const char *id, const struct store_vote *v, int replace,
               int new_state, const char *msg)
{
	return s->ops->req_vote(s, id, v, replace, new_state, msg);
}

int
store_req_transition(struct store *s, const char *id, int from, int to, const char *msg)
{
	return s->ops->req_transition(s, id, from, to, msg);
}

int
store_req_finish(struct store *s, const char *id, const struct store_reqsig *sigs, size_t n,
                 const uint8_t *result, size_t result_len, uint64_t policy_version,
                 const char *policy_text)
{
	return s->ops->req_finish(s, id, sigs, n, result, result_len, policy_version, policy_text);
}

int
store_doc_put(struct store *s, const char *ns, const char *name, uint64_t version,
              const uint8_t *data, size_t len)
{
	return s->ops->doc_put(s, ns, name, version, data, len);
}

int
store_doc_put_many(struct store *s, const char *ns, size_t n, const char *const *names,
                   const uint64_t *versions, const uint8_t *const *data, const size_t *lens)
{
	return s->ops->doc_put_many(s, ns, n, names, versions, data, lens);
}

int
store_doc_get(struct store *s, const char *ns, const char *name, uint64_t version, uint8_t **data,
              size_t *len, uint64_t *version_out)
{
	return s->ops->doc_get(s, ns, name, version, data, len, version_out);
}

int
store_doc_list(struct store *s, const char *ns, char ***names, size_t *n)
{
	return s->ops->doc_list(s, ns, names, n);
}

void
store_request_free(struct store_request *r)
{
	if (r == NULL)
		return;
	free(r->message);
	free(r->payload);
	free(r->state_message);
	for (size_t i = 0; i < r->nvotes; i++)
		free(r->votes[i].reason);
	free(r->votes);
	free(r->sigs);
	free(r->result);
	free(r);
}

void
store_request_list_free(struct store_request **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_request_free(v[i]);
	free(v);
}

int
store_log_shared(const struct store *s)
{
	return s != NULL && s->ops->log_lock != NULL;
}

#define LOG_OP(op, ...)                                                                            \
	(store_log_shared(s)                                                                       \
	         ? s->ops->op(s, __VA_ARGS__)                                                      \
	         : qs_fail(QS_ERR_UNIMPLEMENTED, "%s keeps no audit log", s->ops->name))

int
store_log_lock(struct store *s, uint64_t *size, char **note, size_t *len)
{
	return LOG_OP(log_lock, size, note, len);
}

int
store_log_read(struct store *s, int locked, uint64_t from, uint64_t to, store_log_fn fn, void *arg)
{
	return LOG_OP(log_read, locked, from, to, fn, arg);
}

int
store_log_commit(struct store *s, uint64_t first, const struct store_log_rec *recs, size_t n,
                 const char *note, size_t note_len)
{
	return LOG_OP(log_commit, first, recs, n, note, note_len);
}

void
store_log_abort(struct store *s)
{
	if (store_log_shared(s))
		s->ops->log_abort(s);
}

int
store_log_head(struct store *s, uint64_t *size, char **note, size_t *len)
{
	return LOG_OP(log_head, size, note, len);
}

int
store_log_entry(struct store *s, uint64_t seq, uint8_t **data, size_t *len)
{
	return LOG_OP(log_entry, seq, data, len);
}

static int
no_migration(const struct store *s, const char *what)
{
	return qs_fail(QS_ERR_UNIMPLEMENTED, "the %s store cannot be %s", s->ops->name, what);
}

int
store_dump(struct store *s, const struct store_sink *sink, void *arg)
{
	return s->ops->dump != NULL ? s->ops->dump(s, sink, arg) : no_migration(s, "migrated");
}

int
store_import_begin(struct store *s)
{
	return s->ops->import_begin != NULL ? s->ops->import_begin(s)
	                                    : no_migration(s, "migrated to");
}

const struct store_sink *
store_import_sink(const struct store *s)
{
	return s->ops->import_sink;
}

int
store_import_log(struct store *s, uint64_t first, const struct store_log_rec *recs, size_t n)
{
	return s->ops->import_log != NULL ? s->ops->import_log(s, first, recs, n)
	                                  : no_migration(s, "migrated to");
}

int
store_import_commit(struct store *s, uint64_t size, const char *note, size_t note_len)
{
	return s->ops->import_commit != NULL ? s->ops->import_commit(s, size, note, note_len)
	                                     : no_migration(s, "migrated to");
}

void
store_import_abort(struct store *s)
{
	if (s->ops->import_abort != NULL)
		s->ops->import_abort(s);
}
