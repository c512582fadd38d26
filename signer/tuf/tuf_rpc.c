/* The Tuf service (proto/tuf.proto): online CI push, metadata views,
 * review; and the snapshot/timestamp refresh timer. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cjson.h"
#include "log.h"
#include "qs_err.h"
#include "server.h"
#include "statement.h"
#include "tuf.h"
#include "tuf.pb-c.h"
#include "tuf_meta.h"
#include "tuf_payload.h"
#include "wire.h"

/* Files in one push: build farms push a handful of artefacts at a time. */
#define TUF_MAX_PUSH_FILES 64

/* The caller may push CI targets: a requester of the online gate role. */
static int
authorise_push(struct call_ctx *cx, const struct policy_role **rop)
{
	const struct policy *p = cx->pol;
	const char *g =
	        json_string_value(json_object_get(json_object_get(p->ext_tuf, "gates"), "online"));
	const struct policy_role *ro;

	*rop = NULL;
	if (p->ext_tuf == NULL || g == NULL || (ro = policy_role(p, g)) == NULL)
		return qs_fail(QS_ERR_PRECONDITION, "the policy has no \"tuf\" section");
	if (ro->mode != POLICY_ONLINE || !policy_role_allows(ro, "tuf-push"))
		return qs_fail(QS_ERR_PRECONDITION, "role %s does not push TUF targets online", g);
	if (!policy_role_has_requester(ro, (size_t)cx->pidx))
		return qs_fail(QS_ERR_DENIED, "principal %s is not a requester of role %s",
		               cx->principal, g);
	*rop = ro;
	return 0;
}

int
h_tuf_push_targets(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                   size_t *out_len)
{
	Qsign__V1__TufPushTargetsRequest *req = NULL;
	Qsign__V1__TufPushTargetsResponse resp = QSIGN__V1__TUF_PUSH_TARGETS_RESPONSE__INIT;
	const struct policy_role *ro;
	struct tuf_file *files = NULL;
	json_t *add = NULL;
	uint64_t tv, sv, tsv;
	int r;

	if ((r = authorise_push(cx, &ro)) != 0)
		return r;
	if ((r = qs_wire_unpack(&qsign__v1__tuf_push_targets_request__descriptor, body, len,
	                        QS_MAX_FRAME, (ProtobufCMessage **)&req)) != 0)
		return r;
	if (req->n_files > TUF_MAX_PUSH_FILES || req->n_remove > TUF_MAX_TARGETS) {
		r = qs_fail(QS_ERR_INVALID, "too many files or removals in one push");
		goto out;
	}
	if ((r = ratelimit_take(cx->srv->rl, ro->name, cx->principal, ro->rate_per_second,
	                        ro->burst, 1)) != 0)
		goto out;
	if (req->targets_json.len == 0) {
		if ((add = json_object()) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
	} else if ((r = tuf_payload_parse("tuf-push", req->targets_json.data, req->targets_json.len,
	                                  &add)) != 0) {
		goto out;
	}
	if (req->n_files > 0 && (files = calloc(req->n_files, sizeof(*files))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < req->n_files; i++) {
		files[i].name = req->files[i]->name;
		files[i].data = req->files[i]->content.data;
		files[i].len = req->files[i]->content.len;
	}
	if ((r = tuf_push(cx->srv, cx->pol, cx->principal, add, req->remove, req->n_remove, files,
	                  req->n_files, &tv, &sv, &tsv)) != 0)
		goto out;
	resp.targets_version = tv;
	resp.snapshot_version = sv;
	resp.timestamp_version = tsv;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(files);
	json_decref(add);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_tuf_get_metadata(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                   size_t *out_len)
{
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp", NULL};
	Qsign__V1__TufGetMetadataRequest *req = NULL;
	Qsign__V1__TufGetMetadataResponse resp = QSIGN__V1__TUF_GET_METADATA_RESPONSE__INIT;
	uint8_t *d = NULL;
	size_t dl = 0, i;
	uint64_t v = 0;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__tuf_get_metadata_request__descriptor, body, len, 1024,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	for (i = 0; roles[i] != NULL && strcmp(roles[i], req->role) != 0; i++)
		;
	if ((strcmp(req->repo, "ci") != 0 && strcmp(req->repo, "prod") != 0) || roles[i] == NULL) {
		r = qs_fail(QS_ERR_INVALID, "repo is ci or prod; role root, targets, snapshot or "
		                            "timestamp");
		goto out;
	}
	if ((r = tuf_get(cx->srv, req->repo, req->role, req->version, &d, &dl, &v)) != 0)
		goto out;
	resp.metadata.data = d;
	resp.metadata.len = dl;
	resp.version = v;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(d);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_tuf_review(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__TufReviewRequest *req = NULL;
	Qsign__V1__TufReviewResponse resp = QSIGN__V1__TUF_REVIEW_RESPONSE__INIT;
	Qsign__V1__TufReviewFinding *items = NULL, **ptrs = NULL;
	json_t *f = NULL, *x;
	size_t i;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__tuf_review_request__descriptor, body, len, 64,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if ((r = tuf_review(cx->srv, cx->pol, &f, &resp.root_version)) != 0)
		goto out;
	if ((items = calloc(json_array_size(f) + 1, sizeof(*items))) == NULL ||
	    (ptrs = calloc(json_array_size(f) + 1, sizeof(*ptrs))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(f, i, x)
	{
		qsign__v1__tuf_review_finding__init(&items[i]);
		items[i].severity = (char *)json_string_value(json_object_get(x, "severity"));
		items[i].text = (char *)json_string_value(json_object_get(x, "text"));
		ptrs[i] = &items[i];
	}
	resp.findings = ptrs;
	resp.n_findings = json_array_size(f);
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	free(items);
	free(ptrs);
	json_decref(f);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

/* ------------------------------------------------------------ timer */

static pthread_t timer_thread;
static int timer_running;
static volatile int timer_stop;

static void *
timer_main(void *arg)
{
	struct server *s = arg;
	int64_t next = 0, next_mat = 0;

	while (!timer_stop && !s->stopping) {
		struct timespec ts = {0, 200 * 1000 * 1000}, mono;
		int64_t now = (int64_t)time(NULL), ms;
		clock_gettime(CLOCK_MONOTONIC, &mono);
		ms = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
		/* Changes made through other replicas (one indexed read per
		 * repository and role when nothing changed). */
		if (store_shared(s->store) && ms >= next_mat) {
			(void)tuf_materialise(s, 0); /* logs what failed */
			next_mat = ms + TUF_MATERIALISE_MS;
		}
		if (now >= next) {
			struct policy *p = server_policy(s);
			json_t *refresh = json_object_get(p->ext_tuf, "refresh");
			int64_t iv = 60;
			if (refresh != NULL)
				policy_parse_duration(
				        json_string_value(json_object_get(refresh, "interval")),
				        &iv);
			if (tuf_refresh(s, p) != 0)
				log_error("tuf.refresh", "detail=\"%s\"", qs_errdetail());
			policy_unref(p);
			next = now + iv;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int
tuf_timer_start(struct server *s)
{
	if (timer_running)
		return 0;
	timer_stop = 0;
	if (pthread_create(&timer_thread, NULL, timer_main, s) != 0)
		return qs_fail(QS_ERR_INTERNAL, "cannot start the TUF refresh timer");
	timer_running = 1;
	return 0;
}

void
tuf_timer_stop(void)
{
	if (!timer_running)
		return;
	timer_stop = 1;
	pthread_join(timer_thread, NULL);
	timer_running = 0;
}

/* ------------------------------------------------------------ external signing */

/* A prepared request as the wire's TufPrepareResponse. */
static int
pack_prep(struct server *s, json_t *prep, uint8_t **out, size_t *out_len)
{
	Qsign__V1__TufPrepareResponse resp = QSIGN__V1__TUF_PREPARE_RESPONSE__INIT;
	json_t *docs = json_object_get(prep, "docs"), *d;
	size_t nd = json_array_size(docs), i, waiting = 0, total = 0;
	Qsign__V1__TufPreparedDoc *dv = calloc(nd + 1, sizeof(*dv)),
	                          **dp = calloc(nd + 1, sizeof(*dp));
	char **canon = calloc(nd + 1, sizeof(*canon)), **plain = calloc(nd + 1, sizeof(*plain));
	char status[96];
	Qsign__V1__TufExternalKey **kp = NULL;
	size_t nk = 0, kcap = 0;
	int r = 0;

	if (dv == NULL || dp == NULL || canon == NULL || plain == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(docs, i, d)
	{
		json_t *set, *e;
		const char *kid;
		size_t j, len = 0, missing = 0, first = nk;
		qsign__v1__tuf_prepared_doc__init(&dv[i]);
		dp[i] = &dv[i];
		if ((r = qs_cjson_encode(json_object_get(d, "signed"), &canon[i], &len)) != 0)
			goto out;
		dv[i].repo = (char *)json_string_value(json_object_get(d, "repo"));
		dv[i].role = (char *)json_string_value(json_object_get(d, "role"));
		dv[i].version = (uint64_t)json_integer_value(json_object_get(d, "version"));
		dv[i].canonical.data = (uint8_t *)canon[i];
		dv[i].canonical.len = len;
		if ((plain[i] = json_dumps(json_object_get(d, "signed"),
		                           JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		dv[i].signed_json.data = (uint8_t *)plain[i];
		dv[i].signed_json.len = strlen(plain[i]);
		json_array_foreach(json_object_get(d, "need"), j, set)
		{
			json_t *ext = json_object_get(set, "external");
			json_object_foreach(ext, kid, e)
			{
				size_t k;
				for (k = first; k < nk && strcmp(kp[k]->keyid, kid) != 0; k++)
					;
				if (k < nk)
					continue;
				if (nk == kcap) {
					void *np = realloc(kp, (kcap = kcap * 2 + 8) * sizeof(*kp));
					if (np == NULL) {
						r = qs_fail(QS_ERR_NOMEM, "out of memory");
						goto out;
					}
					kp = np;
				}
				if ((kp[nk] = malloc(sizeof(**kp))) == NULL) {
					r = qs_fail(QS_ERR_NOMEM, "out of memory");
					goto out;
				}
				qsign__v1__tuf_external_key__init(kp[nk]);
				kp[nk]->keyid = (char *)kid;
				kp[nk]->name =
				        (char *)json_string_value(json_object_get(e, "name"));
				kp[nk]->holder =
				        (char *)json_string_value(json_object_get(e, "holder"));
				nk++;
			}
		}
		missing = tuf_doc_missing(s, d);
		dv[i].wanted = &kp[first];
		dv[i].n_wanted = nk - first;
		dv[i].missing = (uint32_t)missing;
		total += missing;
		waiting += missing > 0;
	}
	/* Pointers into kp are taken after it stops moving. */
	{
		size_t at = 0;
		json_array_foreach(docs, i, d)
		{
			dv[i].wanted = dv[i].n_wanted > 0 ? &kp[at] : NULL;
			at += dv[i].n_wanted;
		}
	}
	json_array_foreach(docs, i, d)
	{
		const char *kid;
		json_t *v;
		size_t n = json_object_size(json_object_get(d, "sigs")), j = 0;
		if (n == 0)
			continue;
		if ((dv[i].signed_by = calloc(n, sizeof(char *))) == NULL) {
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		json_object_foreach(json_object_get(d, "sigs"), kid, v) dv[i].signed_by[j++] =
		        (char *)kid;
		dv[i].n_signed_by = n;
	}
	if (waiting > 0)
		snprintf(status, sizeof(status), "waiting for %zu external signature(s)", total);
	else
		snprintf(status, sizeof(status), "ready");
	resp.request_id = (char *)json_string_value(json_object_get(prep, "request"));
	resp.docs = dp;
	resp.n_docs = nd;
	resp.status = status;
	r = qs_wire_pack(&resp.base, out, out_len);
out:
	for (i = 0; i < nk; i++)
		free(kp[i]);
	free(kp);
	for (i = 0; canon != NULL && plain != NULL && i < nd; i++) {
		free(canon[i]);
		free(plain[i]);
		if (dv != NULL)
			free(dv[i].signed_by);
	}
	free(canon);
	free(plain);
	free(dv);
	free(dp);
	return r;
}

int
h_tuf_prepare(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out, size_t *out_len)
{
	Qsign__V1__TufPrepareRequest *req = NULL;
	json_t *prep = NULL;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__tuf_prepare_request__descriptor, body, len, 1024,
	                        (ProtobufCMessage **)&req)) != 0)
		return r;
	if ((r = tuf_prepare(cx->srv, cx->principal, req->request_id, &prep)) == 0)
		r = pack_prep(cx->srv, prep, out, out_len);
	json_decref(prep);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}

int
h_tuf_add_signatures(struct call_ctx *cx, const uint8_t *body, size_t len, uint8_t **out,
                     size_t *out_len)
{
	Qsign__V1__TufAddSignaturesRequest *req = NULL;
	struct tuf_ext_sig sigs[16];
	json_t *prep = NULL;
	int r;

	if ((r = qs_wire_unpack(&qsign__v1__tuf_add_signatures_request__descriptor, body, len,
	                        64 * 1024, (ProtobufCMessage **)&req)) != 0)
		return r;
	if (req->n_signatures == 0 || req->n_signatures > 16) {
		r = qs_fail(QS_ERR_INVALID, "1..16 signatures per call");
		goto out;
	}
	for (size_t i = 0; i < req->n_signatures; i++) {
		const char *k = req->signatures[i]->keyid;
		if (strlen(k) != 64 || strspn(k, "0123456789abcdef") != 64) {
			r = qs_fail(QS_ERR_INVALID, "signature %zu: keyid is 64 lower-case hex", i);
			goto out;
		}
		sigs[i].doc = req->signatures[i]->doc;
		sigs[i].keyid = k;
		sigs[i].sig = req->signatures[i]->sig.data;
		sigs[i].sig_len = req->signatures[i]->sig.len;
	}
	if ((r = tuf_add_signatures(cx->srv, cx->principal, req->request_id, sigs,
	                            req->n_signatures, &prep)) == 0)
		r = pack_prep(cx->srv, prep, out, out_len);
out:
	json_decref(prep);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return r;
}
