/* What a signer helper checks before its token signs: privsep_guard.h. */
#include "privsep_guard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "approval.h"
#include "cjson.h"
#include "log.h"
#include "note.h"
#include "pki.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "ratelimit.h"
#include "server.h"
#include "statement.h"
#include "store.h"
#include "tlog.h"
#include "tuf.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

/* Production targets maps remembered (struct ps_guard's known): more than
 * the promotes a root change may overlap. */
#define PS_GUARD_KNOWN_TARGETS 16

/* The last TUF document a key signed for a repository. */
struct tuf_mark {
	uint8_t key[32]; /* SHA-256 of the key's SPKI DER */
	int repo;        /* 0 ci, 1 prod */
	uint64_t version;
	uint8_t dg[32];
};

/* The marks of every helper: the launcher's shared table
 * (ps_guard_boot_share), one mark per key and repository. */
struct ps_guard_tuf_marks {
	struct shm_head head;
	size_t used;
	struct tuf_mark m[PS_GUARD_TUF_MARKS];
};

struct ps_guard {
	const struct config *c;
	ps_guard_spki_fn spki;
	void *arg;
	struct policy **chain; /* chain[i] is version i + 1 */
	size_t nchain;
	char v1_error[256];
	/* The newest version's keys: SPKI (NULL if not in our tokens) and
	 * whether it is a quorum key. */
	uint8_t **kder;
	size_t *klen;
	unsigned char *gated;
	const char **ktuf;                  /* its TUF key role in tuf.roles, or NULL */
	const struct policy_role **konline; /* its online role with a rate, or NULL */
	unsigned *khashes;                  /* the hashes its online roles allow (QS_HASH_* bits) */
	const char **khrole;                /* the first of those roles, for messages, or NULL */
	size_t nk;
	struct ratelimit_shared *rl;   /* the launcher's, shared by all helpers */
	struct ps_guard_tuf_marks *tm; /* likewise */
	uint64_t tuf_seed[2][4];
	/* Production targets maps a root change may re-sign: the one
	 * published at start and those of the promotes signed since (the
	 * newest PS_GUARD_KNOWN_TARGETS). */
	uint8_t known[PS_GUARD_KNOWN_TARGETS][32];
	size_t nknown, knext;
	uint8_t *audit_der;
	size_t audit_len;
	char cp_error[256]; /* the checkpoint on disk does not verify */
	uint64_t hwm;
};

/* A refusal: logged with its reason, DENIED with the same reason. */
static int __attribute__((format(printf, 2, 3))) refuse(const char *request, const char *fmt, ...)
{
	char why[QS_ERRDETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("privsep.refused", "request=%s reason=\"%s\"", request, why);
	return qs_fail(QS_ERR_DENIED, "%s", why);
}

/* ------------------------------------------------------------ boot */

static int
read_small(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f;
	char *b;
	size_t n;

	*out = NULL;
	*len = 0;
	if ((f = fopen(path, "rb")) == NULL)
		return errno == ENOENT ? QS_ERR_NOT_FOUND
		                       : qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	if ((b = malloc(max + 1)) == NULL) {
		fclose(f);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	n = fread(b, 1, max + 1, f);
	fclose(f);
	if (n > max) {
		free(b);
		return qs_fail(QS_ERR_INVALID, "%s: over %zu bytes", path, max);
	}
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

/* The "signed" part of a published metadata file (one reference), or NULL
 * if it is not there. */
static json_t *
published_signed(const char *dir, const char *name)
{
	char path[4096], *buf = NULL;
	size_t len = 0;
	json_t *doc, *sp = NULL;

	if (dir == NULL ||
	    snprintf(path, sizeof(path), "%s/metadata/%s", dir, name) >= (int)sizeof(path) ||
	    read_small(path, TUF_MAX_METADATA, &buf, &len) != 0)
		return NULL;
	if ((doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL)) != NULL) {
		sp = json_incref(json_object_get(doc, "signed"));
		json_decref(doc);
	}
	free(buf);
	return sp;
}

/* signed.version of a published metadata file, 0 if it is not there;
 * *meta (may be NULL) gets signed.meta's version of file `want`. */
static uint64_t
published_version(const char *dir, const char *name, const char *want, uint64_t *meta)
{
	json_t *sp = published_signed(dir, name);
	uint64_t v = 0;

	if (meta != NULL)
		*meta = 0;
	if (json_integer_value(json_object_get(sp, "version")) > 0)
		v = (uint64_t)json_integer_value(json_object_get(sp, "version"));
	if (meta != NULL && want != NULL &&
	    json_integer_value(json_object_get(json_object_get(json_object_get(sp, "meta"), want),
	                                       "version")) > 0)
		*meta = (uint64_t)json_integer_value(json_object_get(
		        json_object_get(json_object_get(sp, "meta"), want), "version"));
	json_decref(sp);
	return v;
}

/* The SHA-256 of the canonical JSON of a targets map. */
static int
targets_digest(const json_t *targets, uint8_t dg[32])
{
	char *c = NULL;
	size_t n = 0;

	if (!json_is_object(targets) || qs_cjson_encode(targets, &c, &n) != 0)
		return -1;
	qs_sha256((const uint8_t *)c, n, dg);
	free(c);
	return 0;
}

/* The versions published in p's TUF repositories: root.json and
 * timestamp.json by name, the snapshot timestamp.json names, the targets
 * that snapshot names (consistent-snapshot file names, tuf.h), and the
 * digest of production's targets map. Read as the
 * checkpoint's tree size is: before the front takes input, unverified (a
 * floor for the high-water marks, never a permission). */
static void
tuf_seed_read(const struct policy *p, struct ps_guard_boot *b)
{
	uint64_t(*seed)[4] = b->tuf_seed;
	static const char *const repos[] = {"ci", "prod"};
	char name[64];

	for (size_t i = 0; i < 2; i++) {
		const char *dir = json_string_value(
		        json_object_get(json_object_get(p->ext_tuf, "repositories"), repos[i]));
		uint64_t sv = 0, tv = 0;
		seed[i][0] = published_version(dir, "root.json", NULL, NULL);
		seed[i][3] = published_version(dir, "timestamp.json", "snapshot.json", &sv);
		snprintf(name, sizeof(name), "%llu.snapshot.json", (unsigned long long)sv);
		seed[i][2] = sv ? published_version(dir, name, "targets.json", &tv) : 0;
		seed[i][1] = tv;
		if (i == 1 && tv > 0) {
			json_t *sp;
			snprintf(name, sizeof(name), "%llu.targets.json", (unsigned long long)tv);
			sp = published_signed(dir, name);
			b->have_targets = targets_digest(json_object_get(sp, "targets"),
			                                 b->prod_targets) == 0;
			json_decref(sp);
		}
	}
	qs_errclear();
}

void
ps_guard_boot_read(const struct config *c, struct ps_guard_boot *b)
{
	struct qs_checkpoint cp;
	char *note = NULL, *end;
	size_t len = 0;
	int r;

	memset(b, 0, sizeof(*b));
	if ((r = policy_load_file(c->policy_file, &b->v1)) != 0) {
		snprintf(b->v1_error, sizeof(b->v1_error), "bootstrap policy %s: %s",
		         c->policy_file, qs_errdetail());
	} else if (b->v1->version != 1) {
		snprintf(b->v1_error, sizeof(b->v1_error),
		         "bootstrap policy %s is version %llu, not 1", c->policy_file,
		         (unsigned long long)b->v1->version);
		policy_unref(b->v1);
		b->v1 = NULL;
	}
	/* The tree size only: the launcher has no token to verify it with, and
	 * the front has taken no input yet (it verifies this very checkpoint
	 * when it opens the log). */
	if (c->audit_dir != NULL && tlog_dir_checkpoint(c->audit_dir, &note, &len) == 0 &&
	    (end = strstr(note, "\n\n")) != NULL &&
	    qs_checkpoint_parse(note, (size_t)(end - note) + 1, c->audit_origin, &cp) == 0)
		b->hwm = cp.size;
	qs_errclear();
	free(note);
	if (b->v1 != NULL)
		tuf_seed_read(b->v1, b);
}

int
ps_guard_boot_share(struct ps_guard_boot *b)
{
	void *t;
	int r;

	/* A policy has at most QS_MAX_POLICY_ENTRIES roles. */
	if ((r = ratelimit_shared_new(QS_MAX_POLICY_ENTRIES, &b->rates)) != 0)
		return r;
	r = shm_table_new(sizeof(struct ps_guard_tuf_marks), "shared TUF mark table", &t);
	if (r != 0) {
		ratelimit_shared_free(b->rates);
		b->rates = NULL;
		return r;
	}
	b->tuf_marks = t;
	return 0;
}

/* ------------------------------------------------------------ keys */

/* 1 if name is a string (or member name) anywhere in v. */
static int
json_names(json_t *v, const char *name)
{
	const char *k;
	json_t *e;
	size_t i;

	if (json_is_string(v))
		return strcmp(json_string_value(v), name) == 0;
	if (json_is_array(v)) {
		json_array_foreach(v, i, e) if (json_names(e, name)) return 1;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k,
		                    e) if (strcmp(k, name) == 0 || json_names(e, name)) return 1;
	}
	return 0;
}

/* A quorum key: listed only by quorum roles that sign only "digest" and
 * "blob" payloads (whose signing input the helper derives from the payload
 * itself), and named by no module section (whose keys sign what the
 * module builds). */
static int
key_gated(const struct policy *p, size_t ki)
{
	int listed = 0;

	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		for (size_t j = 0; j < ro->nkeys; j++) {
			if (ro->keys[j] != ki)
				continue;
			listed = 1;
			if (ro->mode != POLICY_QUORUM)
				return 0;
			for (size_t k = 0; k < ro->nkinds; k++)
				if (strcmp(ro->kinds[k], "digest") != 0 &&
				    strcmp(ro->kinds[k], "blob") != 0)
					return 0;
		}
	}
	return listed && !json_names(p->ext_tuf, p->keys[ki].name) &&
	       !json_names(p->ext_pki, p->keys[ki].name);
}

/* The TUF key role whose tuf.roles entry lists policy key ki, or NULL. */
static const char *
key_tuf_role(const struct policy *p, size_t ki)
{
	json_t *roles = json_object_get(p->ext_tuf, "roles");

	for (size_t i = 0; tuf_key_roles[i] != NULL; i++) {
		json_t *keys = json_object_get(json_object_get(roles, tuf_key_roles[i]), "keys"),
		       *k;
		size_t j;
		json_array_foreach(keys, j, k) if (json_is_string(k) &&
		                                   strcmp(json_string_value(k), p->keys[ki].name) ==
		                                           0) return tuf_key_roles[i];
	}
	return NULL;
}

/* The online role with a rate that lists policy key ki, or NULL. */
static const struct policy_role *
key_online_role(const struct policy *p, size_t ki)
{
	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		if (ro->mode != POLICY_ONLINE || ro->rate_per_second == 0)
			continue;
		for (size_t j = 0; j < ro->nkeys; j++)
			if (ro->keys[j] == ki)
				return ro;
	}
	return NULL;
}

/* The hashes the online roles that list policy key ki allow (all when
 * none lists it: it is then no online role's key and plain signing is
 * judged by the other rules), and the first such role in *role. */
static unsigned
key_hashes(const struct policy *p, size_t ki, const char **role)
{
	unsigned set = 0;

	*role = NULL;
	for (size_t i = 0; i < p->nroles; i++) {
		const struct policy_role *ro = &p->roles[i];
		if (ro->mode != POLICY_ONLINE)
			continue;
		for (size_t j = 0; j < ro->nkeys; j++)
			if (ro->keys[j] == ki) {
				set |= ro->hashes;
				if (*role == NULL)
					*role = ro->name;
			}
	}
	return *role != NULL ? set : QS_HASHES_ALL;
}

static void
keys_clear(struct ps_guard *g)
{
	for (size_t i = 0; i < g->nk; i++)
		free(g->kder[i]);
	free(g->kder);
	free(g->klen);
	free(g->gated);
	free(g->ktuf);
	free(g->konline);
	free(g->khashes);
	free(g->khrole);
	g->kder = NULL;
	g->klen = NULL;
	g->gated = NULL;
	g->ktuf = NULL;
	g->konline = NULL;
	g->khashes = NULL;
	g->khrole = NULL;
	g->nk = 0;
}

/* The public keys of the newest version's keys, from our own tokens. */
static int
keys_load(struct ps_guard *g)
{
	const struct policy *p = g->chain[g->nchain - 1];
	size_t n = p->nkeys;

	keys_clear(g);
	g->kder = calloc(n ? n : 1, sizeof(*g->kder));
	g->klen = calloc(n ? n : 1, sizeof(*g->klen));
	g->gated = calloc(n ? n : 1, 1);
	g->ktuf = calloc(n ? n : 1, sizeof(*g->ktuf));
	g->konline = calloc(n ? n : 1, sizeof(*g->konline));
	g->khashes = calloc(n ? n : 1, sizeof(*g->khashes));
	g->khrole = calloc(n ? n : 1, sizeof(*g->khrole));
	if (g->kder == NULL || g->klen == NULL || g->gated == NULL || g->ktuf == NULL ||
	    g->konline == NULL || g->khashes == NULL || g->khrole == NULL) {
		keys_clear(g);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	g->nk = n;
	for (size_t i = 0; i < n; i++) {
		if (g->spki(g->arg, p->keys[i].uri, &g->kder[i], &g->klen[i]) != 0) {
			g->kder[i] = NULL; /* not in our tokens: it signs nothing here */
			g->klen[i] = 0;
		}
		g->gated[i] = (unsigned char)key_gated(p, i);
		g->ktuf[i] = key_tuf_role(p, i);
		g->konline[i] = key_online_role(p, i);
		g->khashes[i] = key_hashes(p, i, &g->khrole[i]);
	}
	qs_errclear();
	return 0;
}

static int
same_der(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return a != NULL && b != NULL && alen == blen && memcmp(a, b, alen) == 0;
}

static int
is_audit(const struct ps_guard *g, const uint8_t *der, size_t len)
{
	return same_der(g->audit_der, g->audit_len, der, len);
}

/* Index of the newest version's quorum key with this public key, or -1. */
static ssize_t
gated_key(const struct ps_guard *g, const uint8_t *der, size_t len)
{
	for (size_t i = 0; i < g->nk; i++)
		if (g->gated[i] && same_der(g->kder[i], g->klen[i], der, len))
			return (ssize_t)i;
	return -1;
}

/* ------------------------------------------------------------ life */

static void
known_add(struct ps_guard *g, const uint8_t dg[32])
{
	memcpy(g->known[g->knext], dg, 32);
	g->knext = (g->knext + 1) % PS_GUARD_KNOWN_TARGETS;
	if (g->nknown < PS_GUARD_KNOWN_TARGETS)
		g->nknown++;
}

static int
known_has(const struct ps_guard *g, const uint8_t dg[32])
{
	for (size_t i = 0; i < g->nknown; i++)
		if (memcmp(g->known[i], dg, 32) == 0)
			return 1;
	return 0;
}

static void
read_checkpoint(struct ps_guard *g)
{
	struct qs_checkpoint cp;
	const unsigned char *p = g->audit_der;
	EVP_PKEY *pub = NULL;
	char *note = NULL, *text = NULL;
	size_t len = 0, tlen = 0;
	int r;

	if (g->c->audit_dir == NULL || g->audit_der == NULL)
		goto out;
	if ((r = tlog_dir_checkpoint(g->c->audit_dir, &note, &len)) == QS_ERR_NOT_FOUND)
		goto out; /* a new log: its first checkpoint is size 0 */
	if (r == 0 && (pub = d2i_PUBKEY(NULL, &p, (long)g->audit_len)) == NULL)
		r = qs_fail(QS_ERR_CRYPTO, "cannot decode the audit key");
	if (r == 0)
		r = qs_note_open(note, len, g->c->audit_origin, pub, &text, &tlen);
	if (r == 0)
		r = qs_checkpoint_parse(text, tlen, g->c->audit_origin, &cp);
	if (r != 0)
		snprintf(g->cp_error, sizeof(g->cp_error),
		         "the checkpoint on disk (%s) does not verify with the audit key: %s",
		         g->c->audit_dir, qs_errdetail());
	else if (cp.size > g->hwm)
		g->hwm = cp.size;
out:
	qs_errclear();
	EVP_PKEY_free(pub);
	free(text);
	free(note);
}

int
ps_guard_new(const struct config *c, const struct ps_guard_boot *boot, ps_guard_spki_fn spki,
             void *arg, struct ps_guard **out)
{
	struct ps_guard *g;
	int r;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	g->c = c;
	g->spki = spki;
	g->arg = arg;
	g->hwm = boot->hwm;
	memcpy(g->tuf_seed, boot->tuf_seed, sizeof(g->tuf_seed));
	if (boot->have_targets)
		known_add(g, boot->prod_targets);
	if ((g->rl = boot->rates) == NULL || (g->tm = boot->tuf_marks) == NULL) {
		free(g);
		return qs_fail(QS_ERR_INTERNAL,
		               "no shared rate or TUF mark table from the launcher");
	}
	snprintf(g->v1_error, sizeof(g->v1_error), "%s", boot->v1_error);
	if (boot->v1 != NULL) {
		if ((g->chain = malloc(sizeof(*g->chain))) == NULL) {
			ps_guard_free(g);
			return qs_fail(QS_ERR_NOMEM, "out of memory");
		}
		g->chain[0] = policy_ref(boot->v1);
		g->nchain = 1;
		if ((r = keys_load(g)) != 0) {
			ps_guard_free(g);
			return r;
		}
	}
	if (c->audit_key_uri != NULL &&
	    spki(arg, c->audit_key_uri, &g->audit_der, &g->audit_len) != 0)
		g->audit_der = NULL;
	qs_errclear();
	read_checkpoint(g);
	*out = g;
	return 0;
}

void
ps_guard_free(struct ps_guard *g)
{
	if (g == NULL)
		return;
	keys_clear(g);
	for (size_t i = 0; i < g->nchain; i++)
		policy_unref(g->chain[i]);
	free(g->chain);
	free(g->audit_der);
	free(g);
}

uint64_t
ps_guard_version(const struct ps_guard *g)
{
	return g->nchain;
}

/* ------------------------------------------------------------ approvals */

/*
 * Do the votes of request ev over payload reach the threshold of the rules
 * of (sub, cur)? Each vote is judged by approval_vote_counts (the daemon's
 * rule); an approver counts once however often the evidence names him.
 */
static int
approvals(struct ps_guard *g, const char *request, const struct policy *sub,
          const struct policy *cur, const struct ps_evidence *ev, const uint8_t *payload,
          size_t len, struct approval_rules *ar)
{
	struct store_request rq;
	struct store_vote v;
	const char *counted[QS_MAX_PRIVSEP_VOTES];
	size_t ok = 0, badsig = 0, ineligible = 0, approving = 0;
	int r;

	if ((r = approval_rules(sub, cur, ev->role, ev->kind, ar)) != 0)
		return refuse(request, "%s", qs_errdetail());
	memset(&rq, 0, sizeof(rq));
	if (strlen(ev->id) >= sizeof(rq.id) || strlen(ev->role) >= sizeof(rq.role) ||
	    strlen(ev->kind) >= sizeof(rq.kind) || strlen(ev->submitter) >= sizeof(rq.submitter))
		return refuse(request, "request fields longer than the daemon's");
	snprintf(rq.id, sizeof(rq.id), "%s", ev->id);
	snprintf(rq.role, sizeof(rq.role), "%s", ev->role);
	snprintf(rq.kind, sizeof(rq.kind), "%s", ev->kind);
	snprintf(rq.submitter, sizeof(rq.submitter), "%s", ev->submitter);
	/* The approvals cover the signature's hash (qs_stmt_approval_hash):
	 * votes for another hash's signature do not count here. */
	if (qs_hash_lookup(ev->hash, NULL, NULL) == NULL)
		return refuse(request, "unknown signature hash %.16s", ev->hash);
	snprintf(rq.hash, sizeof(rq.hash), "%s", qs_hash_lookup(ev->hash, NULL, NULL));
	rq.policy_version = ev->policy_version;
	/* The digest the approvers signed is recomputed here, never taken. */
	qs_sha256(payload, len, rq.digest);
	for (size_t i = 0; i < ev->nvotes; i++) {
		const struct ps_vote *pv = &ev->votes[i];
		int dup = 0;
		if (!pv->approve)
			continue;
		approving++;
		if (strlen(pv->approver) >= sizeof(v.approver) || pv->sig_len > sizeof(v.sig)) {
			ineligible++;
			continue;
		}
		memset(&v, 0, sizeof(v));
		snprintf(v.approver, sizeof(v.approver), "%s", pv->approver);
		v.approve = 1;
		v.time = pv->time;
		memcpy(v.sig, pv->sig, pv->sig_len);
		v.sig_len = pv->sig_len;
		for (size_t j = 0; j < ok && !dup; j++)
			dup = strcmp(counted[j], pv->approver) == 0;
		if (dup)
			continue;
		r = approval_vote_counts(ar, g->c->identity, &rq, &v);
		if (r == 0)
			counted[ok++] = pv->approver;
		else if (r == QS_ERR_UNAUTH)
			badsig++;
		else
			ineligible++;
	}
	qs_errclear();
	if (approving == 0)
		return refuse(request, "request %.40s comes without approvals (%u needed)", ev->id,
		              ar->threshold);
	if (ok < ar->threshold)
		return refuse(request,
		              "request %.40s: only %zu of the %u approvals needed count under "
		              "policy versions %llu and %llu (%zu signatures do not verify over "
		              "this request and payload, %zu voters are not eligible)",
		              ev->id, ok, ar->threshold, (unsigned long long)sub->version,
		              (unsigned long long)cur->version, badsig, ineligible);
	return 0;
}

static int
chain_at(struct ps_guard *g, const char *request, uint64_t v, const struct policy **out)
{
	if (g->nchain == 0)
		return refuse(request, "no verified policy chain: %s", g->v1_error);
	if (v == 0 || v > g->nchain)
		return refuse(request,
		              "submitted under policy version %llu, which this signer never "
		              "verified (its chain ends at version %zu)",
		              (unsigned long long)v, g->nchain);
	*out = g->chain[v - 1];
	return 0;
}

int
ps_guard_policy(struct ps_guard *g, const struct ps_evidence *ev, const uint8_t *text, size_t len)
{
	struct approval_rules ar;
	const struct policy *sub = NULL, *cur;
	struct policy *np = NULL, **nc;
	int r;

	if (g->nchain == 0)
		return refuse("policy", "no verified policy chain: %s", g->v1_error);
	cur = g->chain[g->nchain - 1];
	if (strcmp(ev->role, APPROVAL_POLICY_ROLE) != 0 ||
	    strcmp(ev->kind, APPROVAL_POLICY_ROLE) != 0)
		return refuse("policy", "evidence of a %.64s/%.64s request, not of a policy change",
		              ev->role, ev->kind);
	if (policy_parse((const char *)text, len, &np) != 0)
		return refuse("policy", "the policy does not parse: %s", qs_errdetail());
	if (np->version >= 1 && np->version <= g->nchain) {
		const struct policy *have = g->chain[np->version - 1];
		r = have->text_len == np->text_len &&
		                    memcmp(have->text, np->text, np->text_len) == 0
		            ? 0
		            : refuse("policy",
		                     "version %llu differs from the version %llu this signer "
		                     "verified",
		                     (unsigned long long)np->version,
		                     (unsigned long long)np->version);
		goto out;
	}
	if (np->version != g->nchain + 1) {
		r = refuse("policy",
		           "version %llu does not follow version %zu, the newest verified",
		           (unsigned long long)np->version, g->nchain);
		goto out;
	}
	if ((r = chain_at(g, "policy", ev->policy_version, &sub)) != 0 ||
	    (r = approvals(g, "policy", sub, cur, ev, text, len, &ar)) != 0)
		goto out;
	if ((nc = realloc(g->chain, (g->nchain + 1) * sizeof(*nc))) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	g->chain = nc;
	g->chain[g->nchain++] = np;
	np = NULL;
	if ((r = keys_load(g)) != 0)
		goto out;
	log_info("privsep.policy", "version=%zu request=%.40s", g->nchain, ev->id);
	r = 0;
out:
	policy_unref(np);
	return r;
}

/* The TUF key role of a key: the one tuf.roles of the newest version lists
 * it under, else the one its token label names ("tuf-ROLE-v...", the labels
 * generate_key of tuf_repo.c gives; only this daemon generates such labels,
 * ps_guard_keygen). NULL for a key that is no TUF key. */
/* The TUF key role in a label "tuf-ROLE-v...", or NULL. */
static const char *
label_tuf_role(const char *label)
{
	if (label == NULL || strncmp(label, "tuf-", 4) != 0)
		return NULL;
	for (size_t i = 0; tuf_key_roles[i] != NULL; i++) {
		size_t n = strlen(tuf_key_roles[i]);
		if (strncmp(label + 4, tuf_key_roles[i], n) == 0 &&
		    strncmp(label + 4 + n, "-v", 2) == 0)
			return tuf_key_roles[i];
	}
	return NULL;
}

static const char *
tuf_role_of(const struct ps_guard *g, const uint8_t *der, size_t len, const char *label)
{
	for (size_t i = 0; i < g->nk; i++)
		if (same_der(g->kder[i], g->klen[i], der, len))
			return g->ktuf[i];
	return label_tuf_role(label);
}

enum ca_kind { CA_NONE, CA_ROOT, CA_DEVICE };

/* The CA keys are those pki.c generates, by their token labels (only this
 * daemon generates such labels, ps_guard_keygen). */
static enum ca_kind
ca_kind(const char *label)
{
	if (label == NULL)
		return CA_NONE;
	if (strcmp(label, PKI_ROOT_LABEL) == 0)
		return CA_ROOT;
	if (strncmp(label, PKI_DCA_LABEL_PREFIX, sizeof(PKI_DCA_LABEL_PREFIX) - 1) == 0)
		return CA_DEVICE;
	return CA_NONE;
}

/* The online role (with a rate) of the newest version that lists the key. */
static const struct policy_role *
online_role_of(const struct ps_guard *g, const uint8_t *der, size_t len)
{
	for (size_t i = 0; i < g->nk; i++)
		if (g->konline[i] != NULL && same_der(g->kder[i], g->klen[i], der, len))
			return g->konline[i];
	return NULL;
}

/* 0 if every input (lens[0..n)) is a digest of a hash that the online
 * roles listing the key allow. The helper tells the hash by the digest's
 * length, as the token does (hsm_sign). Keys that sign messages
 * (Ed25519) sign with SHA-256 only, which every role that lists one
 * allows (policy_parse): nothing to check. */
static int
plain_hashes(const struct ps_guard *g, const char *request, const uint8_t *der, size_t len,
             enum hsm_keytype type, const size_t *lens, uint32_t n)
{
	char list[64];
	size_t i, ok_len = 0;

	if (!hsm_keytype_signs_digest(type))
		return 0;
	for (i = 0; i < g->nk; i++)
		if (g->khrole[i] != NULL && same_der(g->kder[i], g->klen[i], der, len))
			break;
	if (i == g->nk)
		return 0;
	for (uint32_t j = 0; j < n; j++) {
		const char *h;
		if (lens[j] == ok_len) /* a batch's digests are of one hash */
			continue;
		h = qs_hash_of_len(lens[j]);
		if (h != NULL && (g->khashes[i] & qs_hash_bit(h))) {
			ok_len = lens[j];
			continue;
		}
		qs_hash_list(g->khashes[i], list, sizeof(list));
		return refuse(request,
		              "key %s (role %s): its online roles allow the hashes %s: not a "
		              "%zu-byte digest (%s)",
		              g->chain[g->nchain - 1]->keys[i].name, g->khrole[i], list, lens[j],
		              h != NULL ? h : "no such hash");
	}
	return 0;
}

/* a + b, saturated at UINT32_MAX. */
static uint32_t
sat_add(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

/* a * b, saturated at UINT32_MAX. */
static uint32_t
mul_sat(uint32_t a, size_t b)
{
	uint64_t m = (uint64_t)a * (b ? b : 1);

	return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

int
ps_guard_plain(struct ps_guard *g, const char *request, const uint8_t *der, size_t der_len,
               const char *label, enum hsm_keytype type, const size_t *lens, uint32_t n)
{
#ifdef QS_BENCH_NO_GUARD
	/* Only in the benchmark's qsignd-noguard (tests/bench), never built
	 * into anything installed: it measures what these checks cost. */
	(void)g, (void)request, (void)der, (void)der_len, (void)label, (void)type, (void)lens,
	        (void)n;
	return 0;
#endif
	const struct policy_role *ro;
	const char *tr;
	ssize_t ki;
	int r;

	if (is_audit(g, der, der_len))
		return refuse(request, "the audit log key signs only checkpoints of its log");
	if ((ki = gated_key(g, der, der_len)) >= 0)
		return refuse(request,
		              "key %s is a quorum key in policy version %zu: it signs only a "
		              "request with enough approvals",
		              g->chain[g->nchain - 1]->keys[ki].name, g->nchain);
	if ((tr = tuf_role_of(g, der, der_len, label)) != NULL)
		return refuse(request, "the TUF %s key signs only TUF metadata of its role", tr);
	if (ca_kind(label) != CA_NONE)
		return refuse(request, "the CA key %.64s signs only certificates and CRLs", label);
	if ((r = plain_hashes(g, request, der, der_len, type, lens, n)) != 0)
		return r;
	/* The front limits each requester to the role's rate; the sum of its
	 * buckets is the most a front that lies about requesters can get. The
	 * bucket is the launcher's, one for all helpers and their restarts.
	 * Its burst is larger by PS_GUARD_RATE_SLACK_S seconds of the rate:
	 * a call reaches a helper some time after the front took its token,
	 * and not after the same delay every time (workers, the helper queue,
	 * a loaded machine), so a bucket of the front's exact size would
	 * sometimes refuse, after its audit entry, a signature the front
	 * rightly allowed. */
	if ((ro = online_role_of(g, der, der_len)) == NULL)
		return 0;
	r = ratelimit_shared_take(
	        g->rl, ro->name, mul_sat(ro->rate_per_second, ro->nrequesters),
	        mul_sat(sat_add(ro->burst, mul_sat(ro->rate_per_second, PS_GUARD_RATE_SLACK_S)),
	                ro->nrequesters),
	        n);
	if (r == QS_ERR_EXHAUSTED) {
		qs_errclear();
		return refuse(request,
		              "role %s: over its rate (%u/s, burst %u, for each of its %zu "
		              "requesters, and %d s of slack)",
		              ro->name, ro->rate_per_second, ro->burst, ro->nrequesters,
		              PS_GUARD_RATE_SLACK_S);
	}
	if (r != 0) {
		char why[QS_ERRDETAIL_MAX];

		snprintf(why, sizeof(why), "%s", qs_errdetail());
		qs_errclear();
		return refuse(request, "role %s: %s", ro->name, why);
	}
	return 0;
}

/* ------------------------------------------------------------ TUF */

/* The mark of the key with SPKI hash key for repo, or NULL; with the
 * table's lock held. */
static struct tuf_mark *
tuf_mark_of(const struct ps_guard *g, const uint8_t key[32], int repo)
{
	for (size_t i = 0; i < g->tm->used && i < PS_GUARD_TUF_MARKS; i++)
		if (g->tm->m[i].repo == repo && memcmp(g->tm->m[i].key, key, 32) == 0)
			return &g->tm->m[i];
	return NULL;
}

/* Check the canonical "signed" text of a TUF document: *type, *version,
 * *expires from it. */
static int
tuf_parse_signed(const uint8_t *text, size_t len, const char **type, json_t **doc,
                 uint64_t *version, int64_t *expires, uint8_t dg[32])
{
	json_int_t v;

	*doc = NULL;
	if (qs_cjson_decode((const char *)text, len, doc) != 0)
		return refuse("sign_tuf", "not canonical JSON: %s", qs_errdetail());
	if (!json_is_object(*doc))
		return refuse("sign_tuf", "not a JSON object");
	qs_sha256(text, len, dg);
	*type = json_string_value(json_object_get(*doc, "_type"));
	v = json_integer_value(json_object_get(*doc, "version"));
	if (*type == NULL || !json_is_integer(json_object_get(*doc, "version")) || v < 1 ||
	    tuf_time_parse(json_string_value(json_object_get(*doc, "expires")), expires) != 0) {
		qs_errclear();
		return refuse("sign_tuf", "not TUF metadata (_type, version >= 1, expires)");
	}
	*version = (uint64_t)v;
	return 0;
}

/* A document only a quorum may make: every root, and production's targets
 * (whichever key signs them: production shares CI's keys in a repository
 * initialised before the split). */
static int
tuf_quorum_doc(int ri, const char *dtype)
{
	return strcmp(dtype, "root") == 0 || (ri == 1 && strcmp(dtype, "targets") == 0);
}

/* 1 if keyid is among roles[rtype].keyids of root document doc. */
static int
root_lists(json_t *doc, const char *rtype, const char *keyid)
{
	json_t *ids = json_object_get(json_object_get(json_object_get(doc, "roles"), rtype),
	                              "keyids"),
	       *v;
	size_t i;

	json_array_foreach(ids, i, v) if (json_is_string(v) &&
	                                  strcmp(json_string_value(v), keyid) == 0) return 1;
	return 0;
}

/* What a tuf-root payload pl fixes in root document doc of repository
 * repo: its own role's threshold (set-threshold), the key it removes or
 * rotates out no longer listed (remove-key, rotate-key). */
static int
tuf_root_matches(json_t *pl, const char *repo, json_t *doc)
{
	const char *op = json_string_value(json_object_get(pl, "op"));
	const char *role = json_string_value(json_object_get(pl, "role"));
	const char *keyid = json_string_value(json_object_get(pl, "keyid"));
	json_t *ro;

	if (role == NULL || strcmp(tuf_role_repo(role), repo) != 0)
		return 0; /* "separate", or a role of the other repository */
	ro = json_object_get(json_object_get(doc, "roles"), tuf_role_type(role));
	if (strcmp(op, "set-threshold") == 0 &&
	    !json_equal(json_object_get(ro, "threshold"), json_object_get(pl, "threshold")))
		return refuse("sign_tuf",
		              "%s root gives role %s threshold %lld, not the approved %lld", repo,
		              role, (long long)json_integer_value(json_object_get(ro, "threshold")),
		              (long long)json_integer_value(json_object_get(pl, "threshold")));
	if ((strcmp(op, "remove-key") == 0 || strcmp(op, "rotate-key") == 0) && keyid != NULL &&
	    root_lists(doc, tuf_role_type(role), keyid))
		return refuse("sign_tuf",
		              "%s root still lists key %.64s, which the approved %s takes "
		              "out of role %s",
		              repo, keyid, op, role);
	return 0;
}

/*
 * A root (either repository) or production targets: signed only on the
 * evidence of the quorum request that makes it, ev with payload. Its
 * approvals must count under the chain (approvals(), the daemon's rule:
 * threshold, approvers, signatures over this very payload), and the
 * document must be the one the payload names, as tightly as the payload
 * allows:
 *  - tuf-promote: the payload is the production targets document itself
 *    ({"version", "expires", "targets"}): only production targets with
 *    exactly that version, expiry and targets map, and nothing else (no
 *    root);
 *  - tuf-init: root version 1 of either repository, production targets
 *    version 1 with an empty targets map;
 *  - tuf-root ({"op", "base_version", ...}): root version base_version + 1
 *    (so one approval makes one root version per repository, never a
 *    later one), with the role's threshold a set-threshold names and
 *    without the key a remove-key or rotate-key takes out (tuf_root_matches);
 *    the rest of the root (the new key a rotation generates, the other
 *    roles) the payload does not name: the daemon derives it from the
 *    previous root. Production targets only when the change re-signs them
 *    (retargets(): "separate" or a prod-targets key change), and only with
 *    a targets map this helper knows is production's: the one published
 *    when it started or one of a promote it signed since, so a root change
 *    cannot smuggle in targets no promote approved.
 * The version must still rise above what the helper signed or found
 * published (ps_guard_tuf), so one approved request is not a licence to
 * sign the same version twice with other contents... except a root or
 * targets version it signed last (a preparation that waited for external
 * signatures and was replaced), which a new approval may sign again.
 */
static int
tuf_bound(struct ps_guard *g, const char *repo, const char *dtype, json_t *doc, uint64_t version,
          const struct ps_evidence *ev, const uint8_t *payload, size_t plen,
          struct ps_guard_tuf_mark *mark)
{
	const struct policy *sub = NULL, *cur = g->chain[g->nchain - 1];
	struct approval_rules ar;
	json_t *pl = NULL;
	int root = strcmp(dtype, "root") == 0, r;
	uint8_t tdg[32];

	if (ev->id[0] == '\0' && ev->nvotes == 0)
		return refuse("sign_tuf",
		              "%s %s version %llu comes without the approved request (tuf-init, "
		              "tuf-root or tuf-promote) that makes it",
		              repo, dtype, (unsigned long long)version);
	if (strcmp(ev->kind, "tuf-init") != 0 && strcmp(ev->kind, "tuf-root") != 0 &&
	    strcmp(ev->kind, "tuf-promote") != 0)
		return refuse("sign_tuf", "a %.64s request makes no %s %s", ev->kind, repo, dtype);
	if ((r = chain_at(g, "sign_tuf", ev->policy_version, &sub)) != 0 ||
	    (r = approvals(g, "sign_tuf", sub, cur, ev, payload, plen, &ar)) != 0)
		return r;
	if (tuf_payload_parse(ev->kind, payload, plen, &pl) != 0)
		return refuse("sign_tuf", "the payload of request %.40s: %s", ev->id,
		              qs_errdetail());
	r = 0;
	if (strcmp(ev->kind, "tuf-init") == 0) {
		if (version != 1 ||
		    (!root && json_object_size(json_object_get(doc, "targets")) != 0))
			r = refuse(
			        "sign_tuf",
			        "tuf-init makes %s %s version 1 (targets empty), not this version "
			        "%llu",
			        repo, dtype, (unsigned long long)version);
	} else if (strcmp(ev->kind, "tuf-promote") == 0) {
		if (root || json_object_size(doc) != 5 ||
		    !json_equal(json_object_get(doc, "version"), json_object_get(pl, "version")) ||
		    !json_equal(json_object_get(doc, "expires"), json_object_get(pl, "expires")) ||
		    !json_equal(json_object_get(doc, "targets"), json_object_get(pl, "targets")) ||
		    !json_is_string(json_object_get(doc, "spec_version")))
			r = refuse("sign_tuf",
			           "%s %s version %llu is not the production targets request %.40s "
			           "approved (its version, expires and targets exactly)",
			           repo, dtype, (unsigned long long)version, ev->id);
		else if (targets_digest(json_object_get(doc, "targets"), mark->targets) == 0)
			mark->promoted = 1;
	} else if (root) {
		json_int_t base = json_integer_value(json_object_get(pl, "base_version"));
		if (base < 0 || version != (uint64_t)base + 1)
			r = refuse("sign_tuf", "request %.40s approved root version %lld, not %llu",
			           ev->id, (long long)base + 1, (unsigned long long)version);
		else
			r = tuf_root_matches(pl, repo, doc);
	} else if (!(retargets(pl) & 2)) {
		r = refuse("sign_tuf", "request %.40s (%.32s) re-signs no production targets",
		           ev->id, json_string_value(json_object_get(pl, "op")));
	} else if (targets_digest(json_object_get(doc, "targets"), tdg) != 0 ||
	           !known_has(g, tdg)) {
		r = refuse("sign_tuf",
		           "a root change re-signs production's targets as they are: this "
		           "targets map is neither the one published nor one a promote approved");
	}
	json_decref(pl);
	return r;
}

int
ps_guard_tuf(struct ps_guard *g, const uint8_t *der, size_t der_len, const char *label,
             enum hsm_keytype type, const char *repo, const uint8_t *text, size_t len,
             const struct ps_evidence *ev, const uint8_t *payload, size_t plen, uint8_t dg[32],
             const uint8_t **in, size_t *in_len, struct ps_guard_tuf_mark *mark)
{
	static const char *const types[] = PS_GUARD_TUF_TYPES;
	const char *role, *dtype = NULL;
	const struct policy *cur;
	const struct tuf_mark *m;
	json_t *doc = NULL;
	uint64_t version = 0, floor;
	int64_t expires = 0, bound;
	uint8_t key[32];
	int ri, ti = -1, locked = 0, r;

	*in = NULL;
	*in_len = 0;
	memset(mark, 0, sizeof(*mark));
	mark->slot = -1;
	if (g->nchain == 0)
		return refuse("sign_tuf", "no verified policy chain: %s", g->v1_error);
	cur = g->chain[g->nchain - 1];
	if ((role = tuf_role_of(g, der, der_len, label)) == NULL)
		return refuse("sign_tuf", "this key is no TUF key of policy version %zu",
		              g->nchain);
	ri = strcmp(repo, "prod") == 0 ? 1 : strcmp(repo, "ci") == 0 ? 0 : -1;
	/* A repository initialised before the split signs production with the
	 * CI keys as long as the policy has that layout (tuf.h). */
	if (ri < 0 || (strcmp(tuf_role_repo(role), repo) != 0 &&
	               !(ri == 1 && tuf_policy_legacy(cur->ext_tuf))))
		return refuse("sign_tuf", "the TUF %s key signs only the %s repository, not %.64s",
		              role, tuf_role_repo(role), repo);
	if ((r = tuf_parse_signed(text, len, &dtype, &doc, &version, &expires, dg)) != 0)
		goto out;
	if (strcmp(dtype, tuf_role_type(role)) != 0) {
		r = refuse("sign_tuf", "the TUF %s key signs only %s metadata, not %.64s", role,
		           tuf_role_type(role), dtype);
		goto out;
	}
	for (int i = 0; i < 4; i++)
		if (strcmp(types[i], dtype) == 0)
			ti = i;
	/* From here to ps_guard_tuf_signed (or ps_guard_tuf_release) the
	 * shared mark table stays locked, through the token's signature: two
	 * helpers cannot both pass this check for one version with different
	 * documents. TUF metadata is signed rarely (a timestamp every few
	 * minutes), so serialising it across the helpers costs nothing. */
	qs_sha256(der, der_len, key);
	if ((r = shm_table_lock(&g->tm->head, "shared TUF mark table")) != 0)
		goto out;
	locked = 1;
	m = tuf_mark_of(g, key, ri);
	if (m == NULL && g->tm->used >= PS_GUARD_TUF_MARKS) {
		r = refuse("sign_tuf",
		           "the shared TUF mark table is full (%d keys and repositories): "
		           "restart qsignd",
		           PS_GUARD_TUF_MARKS);
		goto out;
	}
	floor = g->tuf_seed[ri][ti];
	if (m != NULL && m->version > floor)
		floor = m->version;
	/* The very document it signed last may be signed again (an execution
	 * re-run); any other needs a higher version. A root or production
	 * targets version (quorum roles) that waited for external signatures
	 * may be prepared again by another change, so these sign a version
	 * again, never one below and never the published one. */
	if (version <= floor && !(m != NULL && m->version == version &&
	                          (memcmp(m->dg, dg, 32) == 0 || !tuf_role_online(role)) &&
	                          version > g->tuf_seed[ri][ti])) {
		r = refuse("sign_tuf",
		           "%s %s version %llu is not above %llu, the highest this signer signed "
		           "or found published",
		           repo, dtype, (unsigned long long)version, (unsigned long long)floor);
		goto out;
	}
	if (tuf_quorum_doc(ri, dtype) &&
	    (r = tuf_bound(g, repo, dtype, doc, version, ev, payload, plen, mark)) != 0)
		goto out;
	if (tuf_role_online(role)) {
		bound = tuf_policy_role_expires(cur, role);
		if (expires > (int64_t)time(NULL) + bound) {
			r = refuse("sign_tuf",
			           "%s %s expires %lld s from now, beyond the %lld s policy "
			           "version %zu allows",
			           repo, dtype, (long long)(expires - (int64_t)time(NULL)),
			           (long long)bound, g->nchain);
			goto out;
		}
	}
	mark->slot = m != NULL ? m - g->tm->m : (ssize_t)g->tm->used;
	memcpy(mark->key, key, 32);
	mark->repo = ri;
	mark->version = version;
	memcpy(mark->dg, dg, 32);
	if (type == HSM_KEY_ED25519) {
		*in = text;
		*in_len = len;
	} else {
		*in = dg;
		*in_len = 32;
	}
	r = 0;
out:
	if (r != 0 && locked) {
		shm_table_unlock(&g->tm->head);
		mark->slot = -1;
	}
	json_decref(doc);
	return r;
}

int
ps_guard_quorum(struct ps_guard *g, const uint8_t *der, size_t der_len, enum hsm_keytype type,
                const struct ps_evidence *ev, const uint8_t *payload, size_t len, uint8_t *dg,
                const uint8_t **in, size_t *in_len)
{
	size_t dg_len = 0;
	struct approval_rules ar;
	const struct policy *sub = NULL, *cur;
	int blob, r;

	*in = NULL;
	*in_len = 0;
	if (is_audit(g, der, der_len))
		return refuse("sign_quorum", "the audit log key signs only checkpoints of its log");
	blob = strcmp(ev->kind, "blob") == 0;
	if (!blob && strcmp(ev->kind, "digest") != 0)
		return refuse("sign_quorum",
		              "payload kind %.64s: a signer signs on approvals only \"digest\" and "
		              "\"blob\" payloads",
		              ev->kind);
	if ((r = chain_at(g, "sign_quorum", ev->policy_version, &sub)) != 0)
		return r;
	cur = g->chain[g->nchain - 1];
	if ((r = approvals(g, "sign_quorum", sub, cur, ev, payload, len, &ar)) != 0)
		return r;
	if (!(ar.cur.role->hashes & qs_hash_bit(ev->hash)))
		return refuse("sign_quorum", "role %.64s does not allow the hash %.16s", ev->role,
		              ev->hash);
	{
		int mine = 0;
		for (size_t i = 0; i < ar.cur.role->nkeys && !mine; i++) {
			size_t ki = ar.cur.role->keys[i];
			mine = ki < g->nk && same_der(g->kder[ki], g->klen[ki], der, der_len);
		}
		if (!mine)
			return refuse("sign_quorum",
			              "this key is not a key of role %.64s in policy version %llu",
			              ev->role, (unsigned long long)cur->version);
	}
	if (type == HSM_KEY_ED25519) {
		if (!blob)
			return qs_fail(QS_ERR_INVALID, "Ed25519 keys sign blobs, not digests");
		if (strcmp(qs_hash_lookup(ev->hash, NULL, NULL), "sha256") != 0)
			return refuse("sign_quorum",
			              "Ed25519 signs the message itself: no hash %.16s", ev->hash);
		*in = payload;
		*in_len = len;
		return 0;
	}
	/* The digest is recomputed with the hash the approvals cover. */
	if ((r = qs_request_digest(ev->hash, !blob, payload, len, dg, &dg_len)) != 0)
		return r;
	*in = dg;
	*in_len = dg_len;
	return 0;
}

int
ps_guard_checkpoint(struct ps_guard *g, const uint8_t *der, size_t der_len, enum hsm_keytype type,
                    const uint8_t *text, size_t len, uint8_t dg[32], const uint8_t **in,
                    size_t *in_len, uint64_t *size)
{
	struct qs_checkpoint cp;

	*in = NULL;
	*in_len = 0;
	*size = 0;
#ifdef QS_BENCH_NO_GUARD
	(void)cp;
	goto input; /* qsignd-noguard: see ps_guard_plain */
#endif
	if (!is_audit(g, der, der_len))
		return refuse("sign_checkpoint", "this key is not the audit log key");
	if (g->cp_error[0] != '\0')
		return refuse("sign_checkpoint", "%s", g->cp_error);
	if (memchr(text, '\0', len) != NULL ||
	    qs_checkpoint_parse((const char *)text, len, NULL, &cp) != 0)
		return refuse("sign_checkpoint", "not a checkpoint note: %s", qs_errdetail());
	if (strcmp(cp.origin, g->c->audit_origin) != 0)
		return refuse("sign_checkpoint",
		              "checkpoint of origin %.64s, not this log's (%.64s)", cp.origin,
		              g->c->audit_origin);
	if (cp.size < g->hwm)
		return refuse("sign_checkpoint",
		              "tree size %llu is smaller than %llu, the largest this signer signed "
		              "or found on disk",
		              (unsigned long long)cp.size, (unsigned long long)g->hwm);
	*size = cp.size;
#ifdef QS_BENCH_NO_GUARD
input:
#endif
	if (type == HSM_KEY_ED25519) {
		*in = text;
		*in_len = len;
	} else {
		qs_sha256(text, len, dg);
		*in = dg;
		*in_len = 32;
	}
	return 0;
}

void
ps_guard_checkpoint_signed(struct ps_guard *g, uint64_t size)
{
	if (size > g->hwm)
		g->hwm = size;
}

/* The high-water mark moves once the token signed; the shared table's
 * lock ps_guard_tuf took is released. */
void
ps_guard_tuf_signed(struct ps_guard *g, const struct ps_guard_tuf_mark *mark)
{
	struct tuf_mark *m;

	if (mark->slot < 0)
		return;
	m = &g->tm->m[mark->slot];
	if ((size_t)mark->slot == g->tm->used) {
		memcpy(m->key, mark->key, 32);
		m->repo = mark->repo;
		g->tm->used++;
	}
	/* The digest before the version: a helper killed between the two
	 * leaves the old version with the new digest, which refuses more. */
	memcpy(m->dg, mark->dg, 32);
	m->version = mark->version;
	shm_table_unlock(&g->tm->head);
	if (mark->promoted)
		known_add(g, mark->targets);
}

void
ps_guard_tuf_release(struct ps_guard *g, const struct ps_guard_tuf_mark *mark)
{
	if (mark->slot >= 0)
		shm_table_unlock(&g->tm->head);
}

/* ------------------------------------------------------------ CA keys */

/*
 * A root CA or device CA certificate: signed only on the evidence of the
 * approved pki.ca-create / pki.device-ca request that makes it (approvals()
 * under the chain, over this very payload), and only the certificate its
 * payload names: the root's subject CN=PKI_ROOT_CN, OU=<factory of the
 * payload, which is the policy's>; an online device CA's CN=<name>,
 * OU=<factory>; a local device CA's the subject and public key of the CSR
 * in the payload; any of them expiring no later than the payload's
 * validity_days from now. (The key of an online CA is generated in the
 * token when the request executes, so the payload cannot name it.)
 */
static int
x509_ca_bound(struct ps_guard *g, enum pki_profile pr, X509 *x, const struct pki_conf *c,
              const struct ps_evidence *ev, const uint8_t *payload, size_t plen)
{
	const char *want = pr == PKI_P_ROOT ? PKI_KIND_CA_CREATE : PKI_KIND_DEVICE_CA;
	const char *what = pr == PKI_P_ROOT ? "root CA" : "device CA";
	const struct policy *sub = NULL, *cur = g->chain[g->nchain - 1];
	struct approval_rules ar;
	struct pki_op *op = NULL;
	struct pki_csr *csr = NULL;
	X509_NAME *name = NULL;
	const X509_NAME *expect;
	int64_t na;
	int r;

	if (ev->id[0] == '\0' && ev->nvotes == 0)
		return refuse("sign_x509", "a %s certificate comes without the approved %s request",
		              what, want);
	if (strcmp(ev->kind, want) != 0)
		return refuse("sign_x509", "a %.64s request makes no %s certificate (%s does)",
		              ev->kind, what, want);
	if ((r = chain_at(g, "sign_x509", ev->policy_version, &sub)) != 0 ||
	    (r = approvals(g, "sign_x509", sub, cur, ev, payload, plen, &ar)) != 0)
		return r;
	if (pki_op_parse(want, payload, plen, &op) != 0)
		return refuse("sign_x509", "the payload of request %.40s: %s", ev->id,
		              qs_errdetail());
	if (pr == PKI_P_ROOT)
		name = strcmp(op->factory, c->factory) == 0 ? pki_cn_ou(PKI_ROOT_CN, op->factory)
		                                            : NULL;
	else if (strcmp(op->mode, "online") == 0)
		name = pki_cn_ou(op->name, c->factory);
	else if ((r = pki_csr_parse((const uint8_t *)op->csr_pem, op->csr_len, &csr)) != 0) {
		r = refuse("sign_x509", "the CSR of request %.40s: %s", ev->id, qs_errdetail());
		goto out;
	}
	expect = csr != NULL ? X509_REQ_get_subject_name(csr->req) : name;
	na = pki_time(X509_get0_notAfter(x));
	if (expect == NULL || X509_NAME_cmp(X509_get_subject_name(x), expect) != 0)
		r = refuse("sign_x509",
		           "a %s certificate for another subject than request %.40s names", what,
		           ev->id);
	else if (csr != NULL &&
	         EVP_PKEY_eq(X509_get0_pubkey(x), X509_REQ_get0_pubkey(csr->req)) != 1)
		r = refuse("sign_x509",
		           "a %s certificate for another key than the CSR of request %.40s", what,
		           ev->id);
	else if (na > (int64_t)time(NULL) + op->validity_days * 86400 + 60)
		r = refuse("sign_x509",
		           "a %s certificate valid beyond the %lld days request %.40s approved",
		           what, (long long)op->validity_days, ev->id);
	else
		r = 0;
out:
	ERR_clear_error();
	X509_NAME_free(name);
	pki_csr_free(csr);
	pki_op_free(op);
	return r;
}

/* A certificate of a profile key `ca` issues, within policy c: *dg the
 * SHA-256 of its TBSCertificate as the helper encodes it. */
static int
x509_cert(struct ps_guard *g, enum ca_kind ca, const struct pki_conf *c, const uint8_t *data,
          size_t len, const struct ps_evidence *ev, const uint8_t *payload, size_t plen,
          uint8_t dg[32])
{
	static const char *const names[] = {"root CA", "device CA", "TLS", "device"};
	const unsigned char *p = data;
	unsigned char *tbs = NULL;
	enum pki_profile pr;
	X509 *x;
	int r, n;

	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != data + len) {
		X509_free(x);
		ERR_clear_error();
		return refuse("sign_x509", "not a DER certificate");
	}
	if (pki_x509_profile_of(x, &pr) != 0) {
		r = refuse("sign_x509", "a certificate of no profile: %s", qs_errdetail());
		goto out;
	}
	if (ca == CA_DEVICE ? pr != PKI_P_DEVICE : pr == PKI_P_DEVICE) {
		r = refuse("sign_x509", "a %s key does not issue %s certificates",
		           ca == CA_DEVICE ? "device CA" : "root CA", names[pr]);
		goto out;
	}
	if (pki_x509_within(x, pr, c) != 0) {
		r = refuse("sign_x509", "outside the CA's constraints: %s", qs_errdetail());
		goto out;
	}
	if ((pr == PKI_P_ROOT || pr == PKI_P_DEVICE_CA) &&
	    (r = x509_ca_bound(g, pr, x, c, ev, payload, plen)) != 0)
		goto out;
	if ((n = i2d_re_X509_tbs(x, &tbs)) <= 0) {
		r = qs_fail(QS_ERR_CRYPTO, "cannot encode the TBSCertificate");
		goto out;
	}
	qs_sha256(tbs, (size_t)n, dg);
	r = 0;
out:
	OPENSSL_free(tbs);
	X509_free(x);
	ERR_clear_error();
	return r;
}

/* 1 if a CRL entry of serial x is in crl. */
static int
crl_lists(X509_CRL *crl, const ASN1_INTEGER *x)
{
	STACK_OF(X509_REVOKED) *rs = X509_CRL_get_REVOKED(crl);

	for (int i = 0; i < sk_X509_REVOKED_num(rs); i++)
		if (ASN1_INTEGER_cmp(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, i)),
		                     x) == 0)
			return 1;
	return 0;
}

/* The CRL number of crl, -1 without one. */
static long
crl_number(X509_CRL *crl)
{
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	long v = n != NULL ? ASN1_INTEGER_get(n) : -1;

	ASN1_INTEGER_free(n);
	return v;
}

/* 1 if request op (of kind) names serial x as the one it revokes. */
static int
op_revokes(const char *kind, const struct pki_op *op, const ASN1_INTEGER *x)
{
	BIGNUM *a = NULL, *b = ASN1_INTEGER_to_BN(x, NULL);
	int yes = 0;

	if (strcmp(kind, PKI_KIND_TLS) == 0)
		yes = strcmp(op->action, "rotate") == 0; /* the certificate it replaces */
	else if (((strcmp(kind, PKI_KIND_CA_STATE) == 0 && strcmp(op->action, "revoke") == 0) ||
	          strcmp(kind, PKI_KIND_DEVICE_REVOKE) == 0) &&
	         BN_hex2bn(&a, op->serial) > 0)
		yes = b != NULL && BN_cmp(a, b) == 0;
	BN_free(a);
	BN_free(b);
	return yes;
}

/*
 * What a CRL revokes that the one before it did not: prev is the CRL the
 * key signed before (the front hands it over; the helper checks it is this
 * key's, of the same issuer, with a lower CRL number). The new CRL keeps
 * every entry of prev (a revocation is never undone) and adds at most one,
 * only on the evidence of the approved request that revokes it
 * (pki.ca-state revoke or pki.device-revoke naming its serial; a pki.tls
 * rotate, for the certificate it replaces). Without prev (a CA's first
 * CRL) it lists nothing. A front that hands over an older CRL of the key
 * than the newest still cannot add an entry without approvals; it can
 * re-sign an older view, as it can serve one.
 */
static int
crl_bound(struct ps_guard *g, const uint8_t *der, size_t der_len, X509_CRL *crl,
          const struct ps_evidence *ev, const uint8_t *payload, size_t plen, const uint8_t *prev,
          size_t prev_len)
{
	STACK_OF(X509_REVOKED) *rs = X509_CRL_get_REVOKED(crl);
	const unsigned char *p = prev, *kp = der;
	const ASN1_INTEGER *added = NULL;
	const struct policy *sub = NULL;
	struct approval_rules ar;
	struct pki_op *op = NULL;
	X509_CRL *pc = NULL;
	EVP_PKEY *pub = NULL;
	int r = 0, nadded = 0;

	if (prev_len == 0) {
		if (sk_X509_REVOKED_num(rs) > 0)
			return refuse("sign_x509",
			              "a first CRL (none before it) that revokes %d "
			              "certificates",
			              sk_X509_REVOKED_num(rs));
		return 0;
	}
	if ((pc = d2i_X509_CRL(NULL, &p, (long)prev_len)) == NULL || p != prev + prev_len ||
	    (pub = d2i_PUBKEY(NULL, &kp, (long)der_len)) == NULL || X509_CRL_verify(pc, pub) != 1) {
		r = refuse("sign_x509", "the CRL before this one is not a CRL this key signed");
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(pc), X509_CRL_get_issuer(crl)) != 0 ||
	    crl_number(crl) <= crl_number(pc)) {
		r = refuse("sign_x509",
		           "the CRL does not follow the one before it (issuer, CRL number "
		           "%ld after %ld)",
		           crl_number(crl), crl_number(pc));
		goto out;
	}
	rs = X509_CRL_get_REVOKED(pc);
	for (int i = 0; i < sk_X509_REVOKED_num(rs); i++)
		if (!crl_lists(crl, X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, i)))) {
			r = refuse("sign_x509",
			           "the CRL drops a revoked certificate of the one before it");
			goto out;
		}
	rs = X509_CRL_get_REVOKED(crl);
	for (int i = 0; i < sk_X509_REVOKED_num(rs); i++)
		if (!crl_lists(pc, X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, i)))) {
			added = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rs, i));
			nadded++;
		}
	if (nadded == 0)
		goto out;
	if (nadded > 1) {
		r = refuse("sign_x509", "the CRL revokes %d certificates at once (one per request)",
		           nadded);
		goto out;
	}
	if (ev->id[0] == '\0' && ev->nvotes == 0) {
		r = refuse("sign_x509",
		           "the CRL revokes a certificate without the approved request "
		           "that revokes it");
		goto out;
	}
	if (strcmp(ev->kind, PKI_KIND_CA_STATE) != 0 &&
	    strcmp(ev->kind, PKI_KIND_DEVICE_REVOKE) != 0 && strcmp(ev->kind, PKI_KIND_TLS) != 0) {
		r = refuse("sign_x509", "a %.64s request revokes nothing", ev->kind);
		goto out;
	}
	if ((r = chain_at(g, "sign_x509", ev->policy_version, &sub)) != 0 ||
	    (r = approvals(g, "sign_x509", sub, g->chain[g->nchain - 1], ev, payload, plen, &ar)) !=
	            0)
		goto out;
	if (pki_op_parse(ev->kind, payload, plen, &op) != 0) {
		r = refuse("sign_x509", "the payload of request %.40s: %s", ev->id, qs_errdetail());
		goto out;
	}
	if (!op_revokes(ev->kind, op, added))
		r = refuse("sign_x509", "the CRL revokes a certificate request %.40s does not name",
		           ev->id);
out:
	ERR_clear_error();
	pki_op_free(op);
	EVP_PKEY_free(pub);
	X509_CRL_free(pc);
	return r;
}

static int
x509_crl(struct ps_guard *g, const struct pki_conf *c, const uint8_t *der, size_t der_len,
         const uint8_t *data, size_t len, const struct ps_evidence *ev, const uint8_t *payload,
         size_t plen, const uint8_t *prev, size_t prev_len, uint8_t dg[32])
{
	const unsigned char *p = data;
	unsigned char *tbs = NULL;
	X509_CRL *crl;
	int r, n;

	if ((crl = d2i_X509_CRL(NULL, &p, (long)len)) == NULL || p != data + len) {
		X509_CRL_free(crl);
		ERR_clear_error();
		return refuse("sign_x509", "not a DER CRL");
	}
	if (pki_crl_within(crl, c) != 0)
		r = refuse("sign_x509", "outside the CA's constraints: %s", qs_errdetail());
	else if ((r = crl_bound(g, der, der_len, crl, ev, payload, plen, prev, prev_len)) != 0)
		;
	else if ((n = i2d_re_X509_CRL_tbs(crl, &tbs)) <= 0)
		r = qs_fail(QS_ERR_CRYPTO, "cannot encode the TBSCertList");
	else {
		qs_sha256(tbs, (size_t)n, dg);
		r = 0;
	}
	OPENSSL_free(tbs);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

/* The entry of serial `serial` in a CA list's device_cas, or NULL. */
static json_t *
calist_entry(json_t *doc, const char *serial)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(doc, "device_cas"), i,
	                   e) if (json_is_string(json_object_get(e, "serial")) &&
	                          strcasecmp(json_string_value(json_object_get(e, "serial")),
	                                     serial) == 0) return e;
	return NULL;
}

/* The one device CA by which two lists differ: *gone from a (dropped) or
 * *came in b (added); -1 if they differ by more than one. */
static int
calist_diff(json_t *a, json_t *b, json_t **gone, json_t **came)
{
	json_t *e;
	size_t i;
	int n = 0;

	*gone = *came = NULL;
	json_array_foreach(
	        json_object_get(a, "device_cas"), i,
	        e) if (calist_entry(b, json_string_value(json_object_get(e, "serial"))) == NULL)
	{
		*gone = e;
		n++;
	}
	json_array_foreach(
	        json_object_get(b, "device_cas"), i,
	        e) if (calist_entry(a, json_string_value(json_object_get(e, "serial"))) == NULL)
	{
		*came = e;
		n++;
	}
	return n > 1 ? -1 : n;
}

/* Does the approved op of kind drop (enable = 0) or add the device CA e? */
static int
op_changes(const char *kind, const struct pki_op *op, json_t *e, int enable)
{
	const char *serial = json_string_value(json_object_get(e, "serial"));
	const char *name = json_string_value(json_object_get(e, "name"));

	if (strcmp(kind, PKI_KIND_DEVICE_CA) == 0)
		return enable && name != NULL && strcmp(op->name, name) == 0;
	if (strcmp(kind, PKI_KIND_CA_STATE) != 0 || serial == NULL ||
	    strcasecmp(op->serial, serial) != 0)
		return 0;
	return enable ? strcmp(op->action, "enable") == 0 : strcmp(op->action, "enable") != 0;
}

/*
 * The list of enabled device CAs of this factory (pki.c's calist). It
 * follows prev, the list the key signed before it (signature prev_sig,
 * verified with the key, SPKI der), with a higher version and the same
 * root, and differs from it by at most one device CA: one dropped only on
 * the evidence of the approved pki.ca-state disable or revoke naming its
 * serial, one added only on a pki.ca-state enable naming it or the
 * pki.device-ca that created it (by name). The first list is empty. An
 * older list of the key than the newest lets a front re-sign an older view
 * (as it can serve one until the newest expires), not disable or enable.
 */
static int
x509_calist(struct ps_guard *g, const struct pki_conf *c, const uint8_t *der, size_t der_len,
            const uint8_t *data, size_t len, const struct ps_evidence *ev, const uint8_t *payload,
            size_t plen, const uint8_t *prev, size_t prev_len, const uint8_t *prev_sig,
            size_t prev_sig_len, uint8_t dg[32])
{
	json_t *doc = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *pd = NULL, *gone = NULL, *came = NULL;
	const unsigned char *kp = der;
	const struct policy *sub = NULL;
	struct approval_rules ar;
	struct pki_op *op = NULL;
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *md = NULL;
	int ok = json_is_object(doc) && json_is_string(json_object_get(doc, "type")) &&
	         strcmp(json_string_value(json_object_get(doc, "type")), PKI_CALIST_TYPE) == 0 &&
	         json_is_string(json_object_get(doc, "factory")) &&
	         strcmp(json_string_value(json_object_get(doc, "factory")), c->factory) == 0;
	int r = 0, n;

	if (!ok) {
		r = refuse("sign_x509", "not this factory's list of device CAs");
		goto out;
	}
	qs_sha256(data, len, dg);
	if (prev_len == 0) {
		if (json_array_size(json_object_get(doc, "device_cas")) > 0)
			r = refuse("sign_x509",
			           "a first list of device CAs (none before it) that "
			           "enables %zu",
			           json_array_size(json_object_get(doc, "device_cas")));
		goto out;
	}
	if ((pub = d2i_PUBKEY(NULL, &kp, (long)der_len)) == NULL ||
	    (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) != 1 ||
	    EVP_DigestVerify(md, prev_sig, prev_sig_len, prev, prev_len) != 1 ||
	    (pd = json_loadb((const char *)prev, prev_len, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		r = refuse("sign_x509", "the list before this one is not a list this key signed");
		goto out;
	}
	if (json_integer_value(json_object_get(doc, "version")) <=
	            json_integer_value(json_object_get(pd, "version")) ||
	    !json_equal(json_object_get(doc, "root_serial"), json_object_get(pd, "root_serial"))) {
		r = refuse("sign_x509",
		           "the list does not follow the one before it (root, version)");
		goto out;
	}
	if ((n = calist_diff(pd, doc, &gone, &came)) == 0)
		goto out;
	if (n < 0) {
		r = refuse("sign_x509", "the list enables or disables more than one device CA");
		goto out;
	}
	if (ev->id[0] == '\0' && ev->nvotes == 0) {
		r = refuse("sign_x509",
		           "the list %s device CA %.64s without the approved request "
		           "that does it",
		           gone ? "disables" : "enables",
		           json_string_value(json_object_get(gone ? gone : came, "serial")));
		goto out;
	}
	if ((r = chain_at(g, "sign_x509", ev->policy_version, &sub)) != 0 ||
	    (r = approvals(g, "sign_x509", sub, g->chain[g->nchain - 1], ev, payload, plen, &ar)) !=
	            0)
		goto out;
	if ((strcmp(ev->kind, PKI_KIND_CA_STATE) != 0 &&
	     strcmp(ev->kind, PKI_KIND_DEVICE_CA) != 0) ||
	    pki_op_parse(ev->kind, payload, plen, &op) != 0 ||
	    !op_changes(ev->kind, op, gone ? gone : came, gone == NULL))
		r = refuse("sign_x509", "the list %s device CA %.64s, which request %.40s does not",
		           gone ? "disables" : "enables",
		           json_string_value(json_object_get(gone ? gone : came, "serial")),
		           ev->id);
out:
	ERR_clear_error();
	pki_op_free(op);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	json_decref(pd);
	json_decref(doc);
	return r;
}

int
ps_guard_x509(struct ps_guard *g, const uint8_t *der, size_t der_len, const char *label,
              uint8_t kind, const uint8_t *data, size_t len, const struct ps_evidence *ev,
              const uint8_t *payload, size_t plen, const uint8_t *prev, size_t prev_len,
              const uint8_t *prev_sig, size_t prev_sig_len, uint8_t dg[32])
{
	enum ca_kind ca = ca_kind(label);
	struct pki_conf c;

	if (ca == CA_NONE)
		return refuse("sign_x509", "this key is no CA key of the daemon");
	if (g->nchain == 0)
		return refuse("sign_x509", "no verified policy chain: %s", g->v1_error);
	if (pki_conf_get(g->chain[g->nchain - 1], &c) != 0) {
		qs_errclear();
		return refuse("sign_x509", "policy version %zu has no pki section", g->nchain);
	}
	switch (kind) {
	case PS_X509_CERT:
		return x509_cert(g, ca, &c, data, len, ev, payload, plen, dg);
	case PS_X509_CRL:
		return x509_crl(g, &c, der, der_len, data, len, ev, payload, plen, prev, prev_len,
		                dg);
	default:
		if (ca != CA_ROOT)
			return refuse("sign_x509", "only the root CA key signs the device CA list");
		return x509_calist(g, &c, der, der_len, data, len, ev, payload, plen, prev,
		                   prev_len, prev_sig, prev_sig_len, dg);
	}
}

/* ------------------------------------------------------------ keygen */

static int
all_of(const char *s, const char *set)
{
	return *s != '\0' && strspn(s, set) == strlen(s);
}

/* tuf-ROLE-vN-XXXXXXXX (generate_key of tuf_repo.c). */
static int
tuf_label(const char *label)
{
	const char *role = label_tuf_role(label), *p;
	size_t nd;

	if (role == NULL)
		return 0;
	p = label + 4 + strlen(role) + 2;
	nd = strspn(p, "0123456789");
	return nd > 0 && p[nd] == '-' && strlen(p + nd + 1) == 8 &&
	       all_of(p + nd + 1, "0123456789abcdef");
}

int
ps_guard_keygen(const char *label, int (*exists)(void *arg, const char *label), void *arg)
{
	static const char pki[] = "qsign-pki-"; /* PKI_ROOT_LABEL, PKI_DCA_LABEL_PREFIX */

	if (!tuf_label(label) && strcmp(label, QS_IDENTITY_KEY_LABEL) != 0 &&
	    !(strncmp(label, pki, sizeof(pki) - 1) == 0 &&
	      all_of(label + sizeof(pki) - 1, "abcdefghijklmnopqrstuvwxyz"
	                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")))
		return refuse(
		        "keygen",
		        "label %.64s is outside the daemon's namespace (tuf-ROLE-vN-XXXXXXXX, "
		        "qsign-pki-*, " QS_IDENTITY_KEY_LABEL ")",
		        label);
	if (exists(arg, label)) {
		log_warn("privsep.refused", "request=keygen reason=\"label %.64s is taken\"",
		         label);
		return qs_fail(QS_ERR_EXISTS, "a key labelled %.64s exists: never generated over",
		               label);
	}
	return 0;
}
