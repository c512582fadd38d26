/*
 * qsc_audit.c - the streaming audit log verifier (qsc_audit.h).
 *
 * Per entry: one SHA-256 for the leaf, the compact range of the tree
 * updated in place, and the JSON checks. The hashes go through one
 * EVP_MD_CTX and an EVP_MD fetched once: OpenSSL 3's one-shot SHA256()
 * fetches the algorithm and allocates a context on every call, which was
 * more than half of the time of a 1M-entry verification (perf). Most entries ("signature", logins,
 * refusals) need only "seq", "time" and "event" checked: a scan of the canonical form the daemon
 * writes (scan_canonical) finds them without building a jansson tree, which was most of the time of
 * a large verification. The scan accepts only text on which jansson (JSON_REJECT_DUPLICATES) is
 * certain to agree; anything else, and every entry whose fields the approval checks read, goes
 * through json_loadb as before, so the verdicts and messages are jansson's.
 *
 * Approval signatures (one ECDSA or Ed25519 verification each, ~100 times the rest of an entry's
 * work) are checked by a small pool of threads once a log has many of them (VOTE_POOL_AFTER):
 * the reading thread prepares each check (the statement, the candidate keys of the policy
 * versions in force then) and queues it in a ring of VOTE_RING slots, which bounds memory
 * whatever the log's size; problems found meanwhile by the reading thread queue behind it in
 * the same ring. The reading thread reports the ring's slots strictly in order, so the problem
 * callback sees exactly the sequence the one-thread path gives (the pool is hand-written: none
 * of the libraries the project uses has one, and the in-order ring is the part that matters).
 * Parsed public keys are cached (KEY_CACHE slots by PEM text): OpenSSL 3's PEM decoder costs
 * several times a verification.
 */
#include "qsc_audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "qs_err.h"
#include "qs_limits.h"
#include "statement.h"

/* Levels of the tree's right edge: 2^64 leaves at most. */
#define EDGE_LEVELS 64
/* Nesting the canonical scan follows before it leaves an entry to jansson. */
#define SCAN_DEPTH 32
/* Digits of an integer the scan reads itself (no overflow of int64). */
#define SCAN_DIGITS 18
/* The jsonl reader's buffer: one whole line of the largest entry fits. */
#define JSONL_BUF (2 * (size_t)QS_MAX_AUDIT_ENTRY + 1)
/* Slots between reading an entry and reporting its problems: bounds the
 * memory of checks in flight (each slot ~1.2 KB plus its statement). */
#define VOTE_RING 256
/* Threads checking approval signatures: min(this, usable CPUs). */
#define VOTE_THREADS_MAX 4
/* Approvals checked on the reading thread before the pool starts: a log
 * with few needs no threads. */
#define VOTE_POOL_AFTER 64
/* Parsed principal keys remembered, by PEM text: KEY_CACHE slots, a key
 * in one of the KEY_PROBE from its hash's. */
#define KEY_CACHE 64
#define KEY_PROBE 8
/* A problem's sentence, as vfail formats it. */
#define MSG_MAX 1024

/* One slot of the ring: a problem to report, or an approval signature to
 * check and then report. */
struct vote_slot {
	int is_vote;
	int done;          /* checked (a problem: from the start); under pool_mu */
	int ok;            /* the signature verified with one of keys[] */
	int approve;       /* an approval (else a rejection) */
	char msg[MSG_MAX]; /* the problem, or the one to report if !ok */
	uint8_t *stmt;
	size_t stmt_len;
	uint8_t sig[QS_MAX_PRINCIPAL_SIG];
	size_t sig_len;
	EVP_PKEY **keys; /* references held by the slot */
	size_t n_keys, cap_keys;
};

struct key_cache_slot {
	char *pem;
	EVP_PKEY *pk;
};

struct qsc_audit_verifier {
	struct qsc_audit_callbacks cb;
	struct qsc_audit_totals tot;
	/* The right edge of the tree: edge[i] is a perfect subtree, bigger
	 * ones below smaller ones (as qs_merkle_root_of). */
	uint8_t edge[EDGE_LEVELS + 1][QSC_AUDIT_HASH_LEN];
	size_t sp;
	long long last_time;
	EVP_MD *md;
	EVP_MD_CTX *ctx;
	/* What the approval checks remember while walking the log. */
	json_t *policies;   /* "version" -> principals object of that policy */
	long long in_force; /* the highest policy version logged so far */
	json_t *requests;   /* id -> {policy_version, role, kind, payload_sha256} */
	json_t *signed_;    /* id -> seq of its request.signed entry in force */
	struct key_cache_slot keys[KEY_CACHE];
	unsigned key_evict;
	EVP_PKEY **cand; /* the candidate keys of the vote being prepared */
	size_t n_cand, cap_cand;
	struct vote_slot inline_slot; /* a vote checked on the reading thread */
	int want_threads;             /* qsc_audit_verifier_threads; -1: the default */
	uint64_t votes;               /* approval signatures seen */
	/* The ring: slots [head, tail) not yet reported, [claim, tail) not yet
	 * taken by a checker. head and tail are the reading thread's; claim,
	 * tail's updates and the slots' done flags are under pool_mu. */
	struct vote_slot *ring;
	uint64_t head, claim, tail;
	pthread_t threads[VOTE_THREADS_MAX];
	int n_threads, pool_tried, stop;
	pthread_mutex_t pool_mu;
	pthread_cond_t work, done;
};

static void report(qsc_audit_verifier *v, const char *msg);
static struct vote_slot *ring_reserve(qsc_audit_verifier *v);
static void ring_publish(qsc_audit_verifier *v, int is_vote);

/* A problem: reported now, or queued behind the checks still in flight. */
static void __attribute__((format(printf, 2, 3))) vfail(qsc_audit_verifier *v, const char *fmt, ...)
{
	char buf[MSG_MAX];
	struct vote_slot *sl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (v->head == v->tail) {
		report(v, buf);
		return;
	}
	sl = ring_reserve(v);
	memcpy(sl->msg, buf, sizeof(buf));
	sl->is_vote = 0;
	sl->done = 1;
	ring_publish(v, 0);
}

static void
report(qsc_audit_verifier *v, const char *msg)
{
	v->tot.problems++;
	v->cb.problem(v->cb.arg, msg);
}

static const char *
str_field(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

/* ------------------------------------------------------------ tree */

/* SHA-256(prefix || a || b). */
static int
hash3(const qsc_audit_verifier *v, uint8_t prefix, const uint8_t *a, size_t alen, const uint8_t *b,
      size_t blen, uint8_t *out)
{
	if (EVP_DigestInit_ex(v->ctx, v->md, NULL) != 1 ||
	    EVP_DigestUpdate(v->ctx, &prefix, 1) != 1 || EVP_DigestUpdate(v->ctx, a, alen) != 1 ||
	    (blen > 0 && EVP_DigestUpdate(v->ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(v->ctx, out, NULL) != 1)
		return qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
	return 0;
}

/* Leaf index v->tot.entries joins the right edge. */
static int
edge_push(qsc_audit_verifier *v, const uint8_t *leaf)
{
	int r;

	memcpy(v->edge[v->sp++], leaf, QSC_AUDIT_HASH_LEN);
	for (uint64_t j = v->tot.entries + 1; (j & 1) == 0; j >>= 1) {
		if ((r = hash3(v, 0x01, v->edge[v->sp - 2], QSC_AUDIT_HASH_LEN, v->edge[v->sp - 1],
		               QSC_AUDIT_HASH_LEN, v->edge[v->sp - 2])) != 0)
			return r;
		v->sp--;
	}
	return 0;
}

int
qsc_audit_verifier_root(const qsc_audit_verifier *v, uint8_t root[QSC_AUDIT_HASH_LEN])
{
	uint8_t acc[QSC_AUDIT_HASH_LEN];
	int r;

	if (v->sp == 0) {
		if (EVP_Digest("", 0, root, NULL, v->md, NULL) != 1)
			return qs_fail(QS_ERR_CRYPTO, "SHA-256 failed");
		return 0;
	}
	/* RFC 6962 pairs the smallest trailing subtrees first: right to left
	 * over the edge. */
	memcpy(acc, v->edge[v->sp - 1], sizeof(acc));
	for (size_t i = v->sp - 1; i-- > 0;)
		if ((r = hash3(v, 0x01, v->edge[i], QSC_AUDIT_HASH_LEN, acc, QSC_AUDIT_HASH_LEN,
		               acc)) != 0)
			return r;
	memcpy(root, acc, sizeof(acc));
	return 0;
}

/* ------------------------------------------------------------ canonical scan */

/*
 * What the scan of one entry found at its top level. A hand-written scan
 * because no library reads three fields of a JSON object without building
 * all of it; it is a filter in front of jansson, never a judge: it returns
 * 1 only for the canonical subset (no whitespace, strings of printable
 * ASCII without escapes, integers of at most SCAN_DIGITS digits, the keys
 * of every object strictly increasing, so no duplicates), on which jansson
 * agrees, and 0 (let jansson decide) for everything else.
 */
struct scan_top {
	long long seq, time;
	int has_seq, has_time;
	const char *event;
	size_t event_len;
};

struct scanner {
	const char *p, *end;
	int depth;
};

static int scan_value(struct scanner *s, const char **str, size_t *slen, long long *num,
                      int *is_num);

/* A string at s->p (its quote already checked): its contents in *str, *len. */
static int
scan_string(struct scanner *s, const char **str, size_t *len)
{
	const char *q = ++s->p;

	while (q < s->end && *q != '"') {
		unsigned char c = (unsigned char)*q;
		if (c < 0x20 || c > 0x7e || c == '\\')
			return 0;
		q++;
	}
	if (q >= s->end)
		return 0;
	*str = s->p;
	*len = (size_t)(q - s->p);
	s->p = q + 1;
	return 1;
}

static int
scan_number(struct scanner *s, long long *num)
{
	const char *q = s->p;
	int neg = 0, digits = 0;
	long long v = 0;

	if (q < s->end && *q == '-') {
		neg = 1;
		q++;
	}
	if (q >= s->end || *q < '0' || *q > '9')
		return 0;
	if (*q == '0' && q + 1 < s->end && q[1] >= '0' && q[1] <= '9')
		return 0; /* a leading zero: not JSON */
	while (q < s->end && *q >= '0' && *q <= '9') {
		if (++digits > SCAN_DIGITS)
			return 0;
		v = v * 10 + (*q - '0');
		q++;
	}
	if (q < s->end && (*q == '.' || *q == 'e' || *q == 'E'))
		return 0; /* a real: jansson's business */
	*num = neg ? -v : v;
	s->p = q;
	return 1;
}

static int
scan_literal(struct scanner *s, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return 0;
	s->p += n;
	return 1;
}

/* After an opening bracket or a member: 1 at the closing bracket `close`
 * (consumed, the level left), 0 at a ',' (consumed), -1 otherwise. */
static int
scan_next(struct scanner *s, char close)
{
	if (s->p >= s->end)
		return -1;
	if (*s->p == close) {
		s->p++;
		s->depth--;
		return 1;
	}
	return *s->p++ == ',' ? 0 : -1;
}

/* Enter the object or array at s->p: 1 if it is empty (and left again),
 * 0 if members follow, -1 if too deep. */
static int
scan_open(struct scanner *s, char close)
{
	if (++s->depth > SCAN_DEPTH)
		return -1;
	s->p++;
	if (s->p < s->end && *s->p == close) {
		s->p++;
		s->depth--;
		return 1;
	}
	return 0;
}

/* An object at s->p; with top != NULL, note its seq/time/event. */
static int
scan_object(struct scanner *s, struct scan_top *top)
{
	const char *prev = NULL, *key, *str;
	size_t prev_len = 0, key_len, slen;
	long long num;
	int is_num, r;

	if ((r = scan_open(s, '}')) != 0)
		return r > 0;
	do {
		int c;
		if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key, &key_len))
			return 0;
		if (prev != NULL) {
			c = memcmp(prev, key, prev_len < key_len ? prev_len : key_len);
			if (c > 0 || (c == 0 && prev_len >= key_len))
				return 0; /* not strictly increasing */
		}
		prev = key;
		prev_len = key_len;
		if (s->p >= s->end || *s->p++ != ':')
			return 0;
		str = NULL;
		if (!scan_value(s, &str, &slen, &num, &is_num))
			return 0;
		if (top != NULL && key_len == 3 && memcmp(key, "seq", 3) == 0 && is_num) {
			top->seq = num;
			top->has_seq = 1;
		} else if (top != NULL && key_len == 4 && memcmp(key, "time", 4) == 0 && is_num) {
			top->time = num;
			top->has_time = 1;
		} else if (top != NULL && key_len == 5 && memcmp(key, "event", 5) == 0 &&
		           str != NULL) {
			top->event = str;
			top->event_len = slen;
		}
	} while ((r = scan_next(s, '}')) == 0);
	return r > 0;
}

static int
scan_array(struct scanner *s)
{
	const char *str;
	size_t slen;
	long long num;
	int is_num, r;

	if ((r = scan_open(s, ']')) != 0)
		return r > 0;
	do {
		if (!scan_value(s, &str, &slen, &num, &is_num))
			return 0;
	} while ((r = scan_next(s, ']')) == 0);
	return r > 0;
}

static int
scan_value(struct scanner *s, const char **str, size_t *slen, long long *num, int *is_num)
{
	*is_num = 0;
	if (s->p >= s->end)
		return 0;
	switch (*s->p) {
	case '"':
		return scan_string(s, str, slen);
	case '{':
		return scan_object(s, NULL);
	case '[':
		return scan_array(s);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		*is_num = 1;
		return scan_number(s, num);
	}
}

static int
scan_canonical(const uint8_t *data, size_t len, struct scan_top *top)
{
	struct scanner s = {(const char *)data, (const char *)data + len, 0};

	memset(top, 0, sizeof(*top));
	if (len == 0 || *s.p != '{' || !scan_object(&s, top) || s.p != s.end)
		return 0;
	return top->has_seq && top->has_time && top->event != NULL;
}

/* Events whose fields the approval checks read: always parsed. */
static int
event_needs_fields(const char *ev, size_t len)
{
	static const char *const names[] = {"policy", "request.submitted", "request.vote",
	                                    "request.signed", "request.superseded"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], ev, len) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------------------------ approvals */

static void
note_policy(qsc_audit_verifier *v, uint64_t i, json_t *o)
{
	json_t *ver = json_object_get(o, "version"), *pol = NULL, *pr;
	const char *text = json_string_value(json_object_get(o, "text"));
	json_error_t err;
	char key[32];

	if (!json_is_integer(ver) || json_integer_value(ver) <= 0 || text == NULL) {
		vfail(v, "entry %llu: policy entry without a version and text",
		      (unsigned long long)i);
		return;
	}
	pol = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (pol == NULL || !json_is_object(pr = json_object_get(pol, "principals"))) {
		vfail(v, "entry %llu: policy version %lld is not a policy document",
		      (unsigned long long)i, (long long)json_integer_value(ver));
		json_decref(pol);
		return;
	}
	snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(ver));
	json_object_set(v->policies, key, pr);
	if (json_integer_value(ver) > v->in_force)
		v->in_force = json_integer_value(ver);
	json_decref(pol);
}

static void
note_request(qsc_audit_verifier *v, uint64_t i, json_t *o)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	json_t *rec;

	if (id == NULL || !json_is_integer(json_object_get(o, "policy_version"))) {
		vfail(v, "entry %llu: request.submitted without id or policy_version",
		      (unsigned long long)i);
		return;
	}
	/* "hash": the signature's hash the approvals cover (entries made
	 * before requests named one are SHA-256 ones). */
	rec = json_pack(
	        "{s:O, s:o, s:O, s:O, s:O}", "policy_version", json_object_get(o, "policy_version"),
	        "hash",
	        json_is_string(json_object_get(o, "hash")) ? json_incref(json_object_get(o, "hash"))
	                                                   : json_string("sha256"),
	        "role", json_object_get(o, "role") ? json_object_get(o, "role") : json_null(),
	        "kind", json_object_get(o, "kind") ? json_object_get(o, "kind") : json_null(),
	        "payload_sha256",
	        json_object_get(o, "payload_sha256") ? json_object_get(o, "payload_sha256")
	                                             : json_null());
	json_object_set_new(v->requests, id, rec);
}

/* ------------------------------------------------------------ approval checks */

/* FNV-1a: where a PEM text's probe sequence starts in the key cache. */
static size_t
key_slot_of(const char *pem)
{
	uint64_t h = 1469598103934665603ull;

	for (const unsigned char *p = (const unsigned char *)pem; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h % KEY_CACHE);
}

/* The parsed key of a PEM text, a reference of the caller's; NULL if it
 * does not parse (as a key that does not verify). Looked up in KEY_PROBE
 * slots from its hash's, so that a few keys never evict each other. */
static EVP_PKEY *
key_get(qsc_audit_verifier *v, const char *pem)
{
	size_t h = key_slot_of(pem), k;
	struct key_cache_slot *c = NULL;
	EVP_PKEY *pk = NULL;
	char *copy;

	for (k = 0; k < KEY_PROBE; k++) {
		struct key_cache_slot *s = &v->keys[(h + k) % KEY_CACHE];
		if (s->pem == NULL) {
			if (c == NULL)
				c = s;
		} else if (strcmp(s->pem, pem) == 0) {
			return EVP_PKEY_up_ref(s->pk) == 1 ? s->pk : NULL;
		}
	}
	if (c == NULL) /* all taken: evict one, in turn */
		c = &v->keys[(h + v->key_evict++ % KEY_PROBE) % KEY_CACHE];
	if (qs_pubkey_from_pem(pem, strlen(pem), &pk) != 0) {
		qs_errclear();
		return NULL;
	}
	if ((copy = strdup(pem)) == NULL || EVP_PKEY_up_ref(pk) != 1) {
		free(copy);
		return pk; /* not remembered */
	}
	free(c->pem);
	EVP_PKEY_free(c->pk);
	c->pem = copy;
	c->pk = pk;
	return pk;
}

static void
slot_clear(struct vote_slot *sl)
{
	for (size_t k = 0; k < sl->n_keys; k++)
		EVP_PKEY_free(sl->keys[k]);
	sl->n_keys = 0;
	free(sl->stmt);
	sl->stmt = NULL;
	sl->done = 0;
	sl->ok = 0;
}

/* Does the slot's signature verify with one of its keys? Any thread. */
static void
slot_check(struct vote_slot *sl)
{
	sl->ok = 0;
	for (size_t k = 0; k < sl->n_keys && !sl->ok; k++)
		if (qs_sig_verify(sl->keys[k], sl->stmt, sl->stmt_len, sl->sig, sl->sig_len) == 0)
			sl->ok = 1;
	qs_errclear();
}

/* A checked slot's verdict, on the reading thread, in log order. The slot
 * is cleared before the problem callback runs: the callback may ask for
 * the totals, which reports the slots after it (ring_drain). */
static void
slot_report(qsc_audit_verifier *v, struct vote_slot *sl)
{
	char msg[MSG_MAX];
	int problem = !sl->is_vote || !sl->ok;

	if (problem)
		memcpy(msg, sl->msg, sizeof(msg));
	else if (sl->approve)
		v->tot.approvals++;
	else
		v->tot.rejections++;
	slot_clear(sl);
	if (problem)
		report(v, msg);
}

/* The next slot no checker has taken, if any (under pool_mu). */
static struct vote_slot *
ring_claim(qsc_audit_verifier *v)
{
	while (v->claim < v->tail && !v->ring[v->claim % VOTE_RING].is_vote)
		v->claim++;
	return v->claim < v->tail ? &v->ring[v->claim++ % VOTE_RING] : NULL;
}

static void *
checker_main(void *arg)
{
	qsc_audit_verifier *v = arg;
	struct vote_slot *sl;

	pthread_mutex_lock(&v->pool_mu);
	for (;;) {
		while (!v->stop && (sl = ring_claim(v)) == NULL)
			pthread_cond_wait(&v->work, &v->pool_mu);
		if (v->stop)
			break;
		pthread_mutex_unlock(&v->pool_mu);
		slot_check(sl);
		pthread_mutex_lock(&v->pool_mu);
		sl->done = 1;
		pthread_cond_signal(&v->done);
	}
	pthread_mutex_unlock(&v->pool_mu);
	return NULL;
}

/*
 * Report the slots from head on that are checked, waiting for them while
 * head < upto; the reading thread checks queued slots itself rather than
 * wait idle.
 */
static void
ring_drain(qsc_audit_verifier *v, uint64_t upto)
{
	while (v->head < v->tail) {
		struct vote_slot *sl = &v->ring[v->head % VOTE_RING], *mine;
		int ready;
		pthread_mutex_lock(&v->pool_mu);
		while (!sl->done && v->head < upto) {
			if ((mine = ring_claim(v)) == NULL) {
				pthread_cond_wait(&v->done, &v->pool_mu);
				continue;
			}
			pthread_mutex_unlock(&v->pool_mu);
			slot_check(mine);
			pthread_mutex_lock(&v->pool_mu);
			mine->done = 1;
		}
		ready = sl->done;
		pthread_mutex_unlock(&v->pool_mu);
		if (!ready)
			return;
		v->head++; /* first: a callback asking for the totals drains on */
		slot_report(v, sl);
	}
}

/* The free slot at tail (waiting for room), to fill and ring_publish. */
static struct vote_slot *
ring_reserve(qsc_audit_verifier *v)
{
	if (v->tail - v->head == VOTE_RING)
		ring_drain(v, v->head + 1);
	return &v->ring[v->tail % VOTE_RING];
}

static void
ring_publish(qsc_audit_verifier *v, int is_vote)
{
	pthread_mutex_lock(&v->pool_mu);
	v->tail++;
	if (is_vote)
		pthread_cond_signal(&v->work);
	pthread_mutex_unlock(&v->pool_mu);
}

/* CPUs this process may run on. */
static int
usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	return 1;
}

/* Are approvals checked by the pool? It starts at the VOTE_POOL_AFTER-th
 * vote (or the first, when threads were asked for), if there is more
 * than one CPU to run it on; without it, everything stays on the reading
 * thread. */
static int
pool_running(qsc_audit_verifier *v)
{
	int n = v->want_threads;

	if (v->n_threads > 0)
		return 1;
	if (v->pool_tried || n == 0 || (n < 0 && v->votes < VOTE_POOL_AFTER))
		return 0;
	v->pool_tried = 1;
	if (n < 0 && (n = usable_cpus()) < 2)
		return 0;
	if (n > VOTE_THREADS_MAX)
		n = VOTE_THREADS_MAX;
	if ((v->ring = calloc(VOTE_RING, sizeof(*v->ring))) == NULL)
		return 0;
	for (int i = 0; i < n; i++)
		if (pthread_create(&v->threads[v->n_threads], NULL, checker_main, v) == 0)
			v->n_threads++;
	return v->n_threads > 0;
}

/* Hand the candidate keys (v->cand) to a slot: the arrays swap owners. */
static void
cand_give(qsc_audit_verifier *v, struct vote_slot *sl)
{
	EVP_PKEY **k = sl->keys;
	size_t cap = sl->cap_keys;

	sl->keys = v->cand;
	sl->n_keys = v->n_cand;
	sl->cap_keys = v->cap_cand;
	v->cand = k;
	v->n_cand = 0;
	v->cap_cand = cap;
}

static void
cand_drop(qsc_audit_verifier *v)
{
	for (size_t k = 0; k < v->n_cand; k++)
		EVP_PKEY_free(v->cand[k]);
	v->n_cand = 0;
}

/*
 * Who's keys in the policy versions from first to the one in force, into
 * v->cand (each distinct key once, in version order; keys that do not
 * parse are left out, as keys that do not verify). *listed: who is a
 * principal of one of them. Errors: QS_ERR_NOMEM.
 */
static int
vote_candidates(qsc_audit_verifier *v, const char *who, long long first, int *listed)
{
	*listed = 0;
	for (long long pv = first; pv <= v->in_force; pv++) {
		char pvs[32];
		const char *pem;
		EVP_PKEY *pk;
		snprintf(pvs, sizeof(pvs), "%lld", pv);
		pem = json_string_value(json_object_get(
		        json_object_get(json_object_get(v->policies, pvs), who), "public_key"));
		if (pem == NULL)
			continue;
		*listed = 1;
		if ((pk = key_get(v, pem)) == NULL)
			continue;
		if (v->n_cand > 0 && v->cand[v->n_cand - 1] == pk) {
			EVP_PKEY_free(pk); /* the same key again: the same verdict */
			continue;
		}
		if (v->n_cand == v->cap_cand) {
			size_t nc = v->cap_cand == 0 ? 4 : 2 * v->cap_cand;
			EVP_PKEY **p = realloc(v->cand, nc * sizeof(*p));
			if (p == NULL) {
				EVP_PKEY_free(pk);
				return qs_fail(QS_ERR_NOMEM, "out of memory");
			}
			v->cand = p;
			v->cap_cand = nc;
		}
		v->cand[v->n_cand++] = pk;
	}
	return 0;
}

/*
 * Check sig over stmt (taken over) with v->cand, and report the verdict in
 * log order: at once on the reading thread, or through the ring when the
 * pool runs. fail is the problem to report if it does not verify.
 */
static void
vote_dispatch(qsc_audit_verifier *v, uint8_t *stmt, size_t stmt_len, const uint8_t *sig,
              size_t sig_len, int approve, const char *fail)
{
	int pooled = pool_running(v);
	struct vote_slot *sl = pooled ? ring_reserve(v) : &v->inline_slot;

	cand_give(v, sl);
	sl->is_vote = 1;
	sl->approve = approve;
	sl->stmt = stmt;
	sl->stmt_len = stmt_len;
	memcpy(sl->sig, sig, sig_len);
	sl->sig_len = sig_len;
	snprintf(sl->msg, sizeof(sl->msg), "%s", fail);
	if (pooled) {
		ring_publish(v, 1);
		ring_drain(v, v->head); /* report what is ready, without waiting */
		return;
	}
	slot_check(sl);
	slot_report(v, sl);
}

/* Re-verify the approval statement of a request.vote entry. */
static void
check_vote(qsc_audit_verifier *v, uint64_t i, json_t *o)
{
	const char *id = str_field(o, "id"), *who = str_field(o, "approver");
	const char *decision = str_field(o, "decision"), *server = str_field(o, "server");
	const char *role = str_field(o, "role"), *kind = str_field(o, "kind");
	const char *dg_hex = str_field(o, "payload_sha256"), *sig_hex = str_field(o, "signature");
	json_t *req = json_object_get(v->requests, id), *vt = json_object_get(o, "vote_time");
	uint8_t dg[32], sig[QS_MAX_PRINCIPAL_SIG], *stmt = NULL;
	size_t dg_len = 0, sig_len = 0, stmt_len = 0;
	const char *what;
	char ver[32], fail[MSG_MAX];
	long long first;
	int approve = strcmp(decision, "approve") == 0, listed;

	what = approve ? "approval" : "rejection";
	if (req == NULL) {
		vfail(v,
		      "entry %llu: vote by %s on request %s, which no request.submitted entry "
		      "precedes",
		      (unsigned long long)i, who, id);
		return;
	}
	if (strcmp(role, str_field(req, "role")) != 0 ||
	    strcmp(kind, str_field(req, "kind")) != 0 ||
	    strcmp(dg_hex, str_field(req, "payload_sha256")) != 0) {
		vfail(v,
		      "entry %llu: vote by %s on request %s names another role, kind or payload "
		      "than the request",
		      (unsigned long long)i, who, id);
		return;
	}
	if (!approve && strcmp(decision, "reject") != 0) {
		vfail(v, "entry %llu: vote by %s on request %s has decision \"%s\"",
		      (unsigned long long)i, who, id, decision);
		return;
	}
	/* The statement's own time; "time" is the entry's (unix ms). */
	if (!json_is_integer(vt)) {
		vfail(v,
		      "%s by %s on request %s (entry %llu) cannot be re-verified: the "
		      "entry has no \"vote_time\" (the time in the signed statement)",
		      what, who, id, (unsigned long long)i);
		return;
	}
	if (strlen(dg_hex) != 64 || qs_unhex(dg_hex, dg, sizeof(dg), &dg_len) != 0 ||
	    dg_len != 32 || strlen(sig_hex) > 2 * sizeof(sig) ||
	    qs_unhex(sig_hex, sig, sizeof(sig), &sig_len) != 0 || sig_len == 0) {
		vfail(v, "entry %llu: vote by %s on request %s has a malformed digest or signature",
		      (unsigned long long)i, who, id);
		return;
	}
	if (qs_stmt_approval_hash(server, id, role, kind, dg, str_field(req, "hash"), approve,
	                          json_integer_value(vt), &stmt, &stmt_len) != 0) {
		vfail(v, "entry %llu: vote by %s on request %s: %s", (unsigned long long)i, who, id,
		      qs_errdetail());
		return;
	}
	/* The daemon counts a vote signed with the voter's key in the policy
	 * in force when it votes (a key replaced while the request was pending
	 * is replaced for its votes too): any version from the request's own
	 * up to the one in force at this entry. */
	first = json_integer_value(json_object_get(req, "policy_version"));
	snprintf(ver, sizeof(ver), "%lld", first);
	if (json_object_get(v->policies, ver) == NULL) {
		vfail(v,
		      "%s by %s on request %s (entry %llu): policy version %s, under which "
		      "the request ran, is not in the log",
		      what, who, id, (unsigned long long)i, ver);
		free(stmt);
		return;
	}
	v->votes++;
	if (vote_candidates(v, who, first, &listed) != 0) {
		/* Out of memory: the vote cannot be checked; say so. */
		cand_drop(v);
		vfail(v, "%s by %s on request %s (entry %llu) cannot be re-verified: %s", what, who,
		      id, (unsigned long long)i, qs_errdetail());
		free(stmt);
		return;
	}
	if (!listed) {
		cand_drop(v);
		vfail(v,
		      "%s by %s on request %s (entry %llu): %s is not a principal of "
		      "policy version %s",
		      what, who, id, (unsigned long long)i, who, ver);
		free(stmt);
		return;
	}
	if (first == v->in_force)
		snprintf(fail, sizeof(fail),
		         "%s by %s on request %s (entry %llu) does not verify with %s's key in "
		         "policy version %s",
		         what, who, id, (unsigned long long)i, who, ver);
	else
		snprintf(fail, sizeof(fail),
		         "%s by %s on request %s (entry %llu) does not verify with %s's key in "
		         "policy versions %s to %lld",
		         what, who, id, (unsigned long long)i, who, ver, v->in_force);
	vote_dispatch(v, stmt, stmt_len, sig, sig_len, approve, fail);
}

/*
 * Exactly one signature per approved request: a second request.signed entry
 * for one id is a problem unless a request.superseded entry between them
 * names the first (the daemon stopped after logging it and before storing
 * it, so it was never released, and says so).
 */
static void
check_signed(qsc_audit_verifier *v, uint64_t i, json_t *o)
{
	const char *id = str_field(o, "id");
	json_t *prev = json_object_get(v->signed_, id);

	if (prev != NULL)
		vfail(v,
		      "request %s has two request.signed entries (%lld and %llu) and no "
		      "request.superseded entry for the first: one approval, two signatures",
		      id, (long long)json_integer_value(prev), (unsigned long long)i);
	json_object_set_new(v->signed_, id, json_integer((json_int_t)i));
}

static void
note_superseded(qsc_audit_verifier *v, uint64_t i, json_t *o)
{
	const char *id = str_field(o, "id");
	json_t *prev = json_object_get(v->signed_, id), *old = json_object_get(o, "superseded_seq");

	if (prev == NULL || !json_is_integer(old) ||
	    json_integer_value(old) != json_integer_value(prev)) {
		vfail(v,
		      "entry %llu: request.superseded for request %s names entry %lld, which is "
		      "not its request.signed entry",
		      (unsigned long long)i, id,
		      json_is_integer(old) ? (long long)json_integer_value(old) : -1LL);
		return;
	}
	json_object_del(v->signed_, id);
}

/* ------------------------------------------------------------ entries */

/* seq = index, times non-decreasing, an event: the checks of every entry. */
static void
check_common(qsc_audit_verifier *v, uint64_t i, int has_seq, long long seq, int has_time,
             long long t, int has_event)
{
	if (!has_seq || (uint64_t)seq != i)
		vfail(v, "entry %llu has \"seq\": %lld (removed, inserted or reordered entries)",
		      (unsigned long long)i, has_seq ? seq : -1LL);
	if (!has_time || t < v->last_time)
		vfail(v, "entry %llu: time %lld is before the previous entry's %lld",
		      (unsigned long long)i, has_time ? t : -1LL, v->last_time);
	else
		v->last_time = t;
	if (!has_event)
		vfail(v, "entry %llu has no event", (unsigned long long)i);
}

/* The checks through jansson: any entry the canonical scan left alone. */
static void
check_parsed(qsc_audit_verifier *v, uint64_t i, const uint8_t *data, size_t len)
{
	json_error_t err;
	json_t *o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
	json_t *seq, *t;
	const char *ev;

	if (o == NULL || !json_is_object(o)) {
		vfail(v, "entry %llu is not a JSON object%s%s", (unsigned long long)i,
		      o == NULL ? ": " : "", o == NULL ? err.text : "");
		json_decref(o);
		return;
	}
	seq = json_object_get(o, "seq");
	t = json_object_get(o, "time");
	ev = json_string_value(json_object_get(o, "event"));
	check_common(v, i, json_is_integer(seq), json_is_integer(seq) ? json_integer_value(seq) : 0,
	             json_is_integer(t), json_is_integer(t) ? json_integer_value(t) : 0,
	             ev != NULL);
	if (ev == NULL)
		;
	else if (strcmp(ev, "policy") == 0)
		note_policy(v, i, o);
	else if (strcmp(ev, "request.submitted") == 0)
		note_request(v, i, o);
	else if (strcmp(ev, "request.vote") == 0)
		check_vote(v, i, o);
	else if (strcmp(ev, "request.signed") == 0)
		check_signed(v, i, o);
	else if (strcmp(ev, "request.superseded") == 0)
		note_superseded(v, i, o);
	json_decref(o);
}

int
qsc_audit_verifier_add(qsc_audit_verifier *v, const uint8_t *entry, size_t len)
{
	struct scan_top top;
	uint8_t leaf[QSC_AUDIT_HASH_LEN];
	uint64_t i = v->tot.entries;
	int r;

	if (len == 0 || len > QS_MAX_AUDIT_ENTRY)
		return qs_fail(QS_ERR_INVALID, "audit entry %llu has %zu bytes (1..%u)",
		               (unsigned long long)i, len, QS_MAX_AUDIT_ENTRY);
	if ((r = hash3(v, 0x00, entry, len, NULL, 0, leaf)) != 0)
		return r;
	if (scan_canonical(entry, len, &top) && !event_needs_fields(top.event, top.event_len))
		check_common(v, i, 1, top.seq, 1, top.time, 1);
	else
		check_parsed(v, i, entry, len);
	if ((r = edge_push(v, leaf)) != 0)
		return r;
	v->tot.entries++;
	if (v->cb.leaf != NULL)
		v->cb.leaf(v->cb.arg, i, leaf);
	return 0;
}

/* ------------------------------------------------------------ jsonl */

/* The complete lines of buf[0..*have); the incomplete rest moves to the
 * front. */
static int
jsonl_lines(qsc_audit_verifier *v, const char *path, uint8_t *buf, size_t *have, uint64_t *line)
{
	size_t at = 0;
	int r;

	for (;;) {
		uint8_t *nl = memchr(buf + at, '\n', *have - at);
		size_t n;
		if (nl == NULL)
			break;
		n = (size_t)(nl - (buf + at));
		(*line)++;
		if (n == 0 || n > QS_MAX_AUDIT_ENTRY)
			return qs_fail(QS_ERR_INVALID, "%s: line %llu is %s", path,
			               (unsigned long long)*line, n == 0 ? "empty" : "too long");
		if (v != NULL && (r = qsc_audit_verifier_add(v, buf + at, n)) != 0)
			return r;
		at += n + 1;
	}
	if (*have - at > QS_MAX_AUDIT_ENTRY)
		return qs_fail(QS_ERR_INVALID, "%s: line %llu is too long", path,
		               (unsigned long long)*line + 1);
	memmove(buf, buf + at, *have - at);
	*have -= at;
	return 0;
}

int
qsc_audit_verify_jsonl(qsc_audit_verifier *v, const char *path, uint64_t *count)
{
	uint8_t *buf = NULL;
	size_t have = 0;
	uint64_t line = 0;
	int fd, r;

	if (count != NULL)
		*count = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if ((buf = malloc(JSONL_BUF)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t got = read(fd, buf + have, JSONL_BUF - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = qs_fail(QS_ERR_IO, "%s: read error", path);
			goto out;
		}
		if (got == 0)
			break;
		have += (size_t)got;
		if ((r = jsonl_lines(v, path, buf, &have, &line)) != 0)
			goto out;
	}
	if (have > 0) {
		r = qs_fail(QS_ERR_INVALID,
		            "%s: line %llu does not end in a newline (truncated export?)", path,
		            (unsigned long long)line + 1);
		goto out;
	}
	if (count != NULL)
		*count = line;
	r = 0;
out:
	/* The problems of the entries read, also when a later line is bad:
	 * reported before returning, as without the pool (the error's detail
	 * kept: the checks and callbacks may clear it). */
	if (v != NULL && v->head < v->tail) {
		char why[QS_ERRDETAIL_MAX];
		snprintf(why, sizeof(why), "%s", qs_errdetail());
		ring_drain(v, v->tail);
		if (r != 0)
			r = qs_fail(r, "%s", why);
	}
	free(buf);
	close(fd);
	return r;
}

/* ------------------------------------------------------------ life */

int
qsc_audit_verifier_new(const struct qsc_audit_callbacks *cb, qsc_audit_verifier **out)
{
	qsc_audit_verifier *v;

	*out = NULL;
	if (cb == NULL || cb->problem == NULL)
		return qs_fail(QS_ERR_INVALID, "a verifier needs a problem callback");
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	v->cb = *cb;
	if ((v->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL ||
	    (v->ctx = EVP_MD_CTX_new()) == NULL) {
		qsc_audit_verifier_free(v);
		return qs_fail(QS_ERR_CRYPTO, "no SHA-256 in libcrypto");
	}
	v->want_threads = -1;
	if (pthread_mutex_init(&v->pool_mu, NULL) != 0) {
		free(v);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	pthread_cond_init(&v->work, NULL);
	pthread_cond_init(&v->done, NULL);
	if ((v->policies = json_object()) == NULL || (v->requests = json_object()) == NULL ||
	    (v->signed_ = json_object()) == NULL) {
		qsc_audit_verifier_free(v);
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	*out = v;
	return 0;
}

void
qsc_audit_verifier_free(qsc_audit_verifier *v)
{
	if (v == NULL)
		return;
	pthread_mutex_lock(&v->pool_mu);
	v->stop = 1;
	pthread_cond_broadcast(&v->work);
	pthread_mutex_unlock(&v->pool_mu);
	for (int i = 0; i < v->n_threads; i++)
		pthread_join(v->threads[i], NULL);
	/* Checks never reported (the caller did not ask for the totals). */
	for (uint64_t k = v->head; k < v->tail; k++)
		slot_clear(&v->ring[k % VOTE_RING]);
	for (size_t k = 0; v->ring != NULL && k < VOTE_RING; k++)
		free(v->ring[k].keys);
	free(v->ring);
	slot_clear(&v->inline_slot);
	free(v->inline_slot.keys);
	cand_drop(v);
	free(v->cand);
	for (size_t k = 0; k < KEY_CACHE; k++) {
		free(v->keys[k].pem);
		EVP_PKEY_free(v->keys[k].pk);
	}
	pthread_cond_destroy(&v->work);
	pthread_cond_destroy(&v->done);
	pthread_mutex_destroy(&v->pool_mu);
	json_decref(v->policies);
	json_decref(v->requests);
	json_decref(v->signed_);
	EVP_MD_CTX_free(v->ctx);
	EVP_MD_free(v->md);
	free(v);
}

void
qsc_audit_verifier_totals(qsc_audit_verifier *v, struct qsc_audit_totals *t)
{
	ring_drain(v, v->tail);
	*t = v->tot;
}

int
qsc_audit_verifier_threads(qsc_audit_verifier *v, int n)
{
	if (n < -1 || v->tot.entries > 0)
		return qs_fail(QS_ERR_INVALID,
		               "threads: -1, 0 or more, set before the first entry");
	v->want_threads = n;
	return 0;
}
