/*
 * qsign_audit.c - `qsign audit ...`: read and verify the daemon's
 * tamper-evident audit log (proto/audit.proto).
 *
 * Nothing the daemon says is taken on trust: a checkpoint counts only once
 * its signed note verifies against the log key (pinned with --log-key, or
 * the one the daemon states, which we say), entries only once they hash to
 * that checkpoint's root, and proofs only once qs_merkle_*_verify accepts
 * them. `audit verify` additionally re-checks every approval statement in
 * the log against the policy versions the log itself records, and keeps
 * the last verified checkpoint in a state file so that a log rolled back
 * or rewritten later is caught.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "atomic_file.h"
#include "merkle.h"
#include "note.h"
#include "qsc_audit.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"

/* `audit tail` without -n. */
#define TAIL_DEFAULT 10
/* Failures `audit verify` lists before it only counts them. */
#define VERIFY_MAX_LISTED 20
/* Digest hex shown in one-line summaries. */
#define SUMMARY_HEX 16
/* --event / --exclude given at most this often (a command line, not a
 * query language). */
#define MAX_FILTER_EVENTS 16
/* A log key fingerprint: SHA-256 of its DER SubjectPublicKeyInfo, as
 * `audit checkpoint` and qsignd's audit.open line print it. */
#define FP_PREFIX "SHA256:"

/* Files of an export directory (README.md, "audit export"). */
#define EXPORT_ENTRIES "entries.jsonl"
#define EXPORT_CHECKPOINT "checkpoint"
#define EXPORT_KEY "log-key.pem"
#define EXPORT_ORIGIN "origin"

/* Which entries `audit search` and `audit tail` show. */
struct filter {
	const char *events[MAX_FILTER_EVENTS];
	size_t n_events;
	const char *exclude[MAX_FILTER_EVENTS];
	size_t n_exclude;
	const char *principal, *role, *key, *request;
	int64_t since_ms, until_ms; /* [since, until), unix ms */
	int has_since, has_until;
	int all; /* tail: logins too */
};

/* A checkpoint whose signature verified. */
struct checkpoint {
	char *note; /* the signed note, as received */
	char *pem;  /* the log key it verified with */
	char origin[QS_MAX_ORIGIN + 1];
	uint64_t size;
	qs_hash root;
	char key_sha256[65]; /* SHA-256 of the key's DER SubjectPublicKeyInfo */
	int pinned;          /* the key came from --log-key */
};

/* Entries 0..n-1 (or a tail of them), their bytes and leaf hashes. */
struct entries {
	uint64_t first; /* index of data[0] */
	uint64_t n;
	uint8_t **data;
	size_t *len;
	qs_hash *leaf;
};

static void
checkpoint_free(struct checkpoint *cp)
{
	free(cp->note);
	free(cp->pem);
	memset(cp, 0, sizeof(*cp));
}

static void
entries_free(struct entries *e)
{
	for (uint64_t i = 0; e->data != NULL && i < e->n; i++)
		free(e->data[i]);
	free(e->data);
	free(e->len);
	free(e->leaf);
	memset(e, 0, sizeof(*e));
}

/* Make room for one more entry; 0 or -1 (out of memory, said). */
static int
entries_push(struct entries *e, uint8_t *data, size_t len)
{
	uint64_t cap = e->n;

	/* Grow in powers of two: cap is the current allocation when n is 0
	 * or a power of two. */
	if (cap == 0 || (cap & (cap - 1)) == 0) {
		uint64_t nc = cap == 0 ? 64 : cap * 2;
		uint8_t **d = realloc(e->data, nc * sizeof(*d));
		size_t *l = d != NULL ? realloc(e->len, nc * sizeof(*l)) : NULL;
		qs_hash *h = l != NULL ? realloc(e->leaf, nc * sizeof(*h)) : NULL;
		if (d != NULL)
			e->data = d;
		if (l != NULL)
			e->len = l;
		if (h == NULL) {
			errmsg("out of memory");
			return -1;
		}
		e->leaf = h;
	}
	if (qs_merkle_leaf_hash(data, len, e->leaf[e->n]) != 0) {
		errmsg("%s", qs_errdetail());
		return -1;
	}
	e->data[e->n] = data;
	e->len[e->n] = len;
	e->n++;
	return 0;
}

static void
hex_into(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Parse an unsigned decimal option value. */
static int
parse_u64(const char *what, const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (s[0] < '0' || s[0] > '9' || (v = strtoull(s, &end, 10), errno != 0) || *end != '\0') {
		errmsg("%s needs a whole number, got %s", what, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* FP_PREFIX and exactly 64 hex digits. */
static int
is_fingerprint(const char *s)
{
	size_t n = strlen(FP_PREFIX);

	if (strncmp(s, FP_PREFIX, n) != 0 || strlen(s + n) != 64)
		return 0;
	for (const char *p = s + n; *p; p++)
		if (!isxdigit((unsigned char)*p))
			return 0;
	return 1;
}

/* Midnight UTC of the day holding t. */
static int64_t
day_start(int64_t t)
{
	return t - ((t % 86400) + 86400) % 86400;
}

/*
 * A time in human form, as seconds since the epoch (UTC throughout):
 * "now", "today", "yesterday" (midnight UTC), "N[smhdw]" or "N[smhdw] ago"
 * (that long before now), "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS][Z]" (a space
 * may replace the T) or "@UNIX". day_only: a day is needed (--on).
 * 0 or -1 after saying why.
 */
static int
parse_when(const char *what, const char *s, int64_t now, int day_only, int64_t *out)
{
	struct tm tm;
	char unit = 0, tail[8] = "";
	long long n;
	int used = 0;
	const char *rest;

	if (strcmp(s, "today") == 0) {
		*out = day_start(now);
		return 0;
	}
	if (strcmp(s, "yesterday") == 0) {
		*out = day_start(now) - 86400;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((rest = strptime(s, "%Y-%m-%d", &tm)) != NULL && *rest == '\0') {
		*out = (int64_t)timegm(&tm);
		return 0;
	}
	if (day_only)
		goto bad;
	if (strcmp(s, "now") == 0) {
		*out = now;
		return 0;
	}
	if (s[0] == '@' && s[1] >= '0' && s[1] <= '9' && sscanf(s + 1, "%lld%n", &n, &used) == 1 &&
	    s[1 + used] == '\0') {
		*out = n;
		return 0;
	}
	if (s[0] >= '0' && s[0] <= '9' && sscanf(s, "%lld%c%n", &n, &unit, &used) == 2 &&
	    (s[used] == '\0' ||
	     (sscanf(s + used, " %7s", tail) == 1 && strcmp(tail, "ago") == 0))) {
		static const char units[] = "smhdw";
		static const int64_t secs[] = {1, 60, 3600, 86400, 7 * 86400};
		const char *u = strchr(units, unit);
		if (u != NULL && unit != '\0' && n <= 100LL * 366 * 86400) {
			*out = now - (int64_t)n * secs[u - units];
			return 0;
		}
	}
	for (int i = 0; i < 4; i++) {
		static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
		                                   "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"};
		memset(&tm, 0, sizeof(tm));
		if ((rest = strptime(s, fmts[i], &tm)) != NULL &&
		    (*rest == '\0' || strcmp(rest, "Z") == 0)) {
			*out = (int64_t)timegm(&tm);
			return 0;
		}
	}
bad:
	errmsg("%s %s: give %s", what, s,
	       day_only ? "a day: today, yesterday or YYYY-MM-DD (UTC)"
	                : "a time: now, today, yesterday, 2h, 3d ago, YYYY-MM-DD, "
	                  "YYYY-MM-DDTHH:MM[:SS]Z or @UNIX (UTC)");
	return -1;
}

/* ------------------------------------------------------------ checkpoint */

/* Load a log public key (PEM SPKI, Ed25519 or P-256) and fingerprint it. */
static int
load_log_key(const char *pem, size_t len, EVP_PKEY **out, char fp[65])
{
	uint8_t *der = NULL, dg[32];
	int n;

	*out = NULL;
	if (qs_pubkey_from_pem(pem, len, out) != 0) {
		errmsg("log key: %s", qs_errdetail());
		return -1;
	}
	if ((n = i2d_PUBKEY(*out, &der)) <= 0) {
		errmsg("log key: cannot encode");
		EVP_PKEY_free(*out);
		*out = NULL;
		return -1;
	}
	qs_sha256(der, (size_t)n, dg);
	OPENSSL_free(der);
	hex_into(dg, 32, fp);
	return 0;
}

/*
 * Verify a signed note for origin with the key in pem and fill *cp (which
 * takes copies). pinned: the key came from the user, not from the source
 * of the note. 0 or -1 after saying why.
 */
static int
open_checkpoint(const char *note, size_t note_len, const char *origin, const char *pem,
                size_t pem_len, int pinned, struct checkpoint *cp)
{
	struct qs_checkpoint body;
	EVP_PKEY *pub = NULL;
	char *text = NULL;
	size_t text_len = 0;
	int r = -1;

	memset(cp, 0, sizeof(*cp));
	if (load_log_key(pem, pem_len, &pub, cp->key_sha256) != 0)
		goto out;
	if (qs_note_open(note, note_len, origin, pub, &text, &text_len) != 0) {
		errmsg("checkpoint signature does not verify with the log key SHA256:%s: %s",
		       cp->key_sha256, qs_errdetail());
		goto out;
	}
	if (qs_checkpoint_parse(text, text_len, origin, &body) != 0) {
		errmsg("checkpoint is malformed: %s", qs_errdetail());
		goto out;
	}
	if ((cp->note = strndup(note, note_len)) == NULL ||
	    (cp->pem = strndup(pem, pem_len)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	snprintf(cp->origin, sizeof(cp->origin), "%s", body.origin);
	cp->size = body.size;
	memcpy(cp->root, body.root, sizeof(qs_hash));
	cp->pinned = pinned;
	r = 0;
out:
	if (r != 0)
		checkpoint_free(cp);
	EVP_PKEY_free(pub);
	free(text);
	return r;
}

/*
 * The key to verify a checkpoint with: log_key is NULL (the key its source
 * states, not pinned), FP_PREFIX + hex (the stated key, pinned if it has
 * that fingerprint) or a PEM file (pinned). *pem is malloc'd. Returns an
 * exit code after saying why.
 */
static int
pin_key(const char *log_key, const char *stated, size_t stated_len, char **pem, size_t *pem_len,
        int *pinned)
{
	uint8_t *b = NULL;

	*pem = NULL;
	*pinned = log_key != NULL;
	if (log_key != NULL && !is_fingerprint(log_key)) {
		if (read_input(log_key, QSC_MAX_LOG_KEY_PEM, &b, pem_len) != 0)
			return EXIT_USAGE;
		*pem = (char *)b;
		return EXIT_OK;
	}
	if (log_key != NULL) {
		EVP_PKEY *k = NULL;
		char fp[65];
		if (load_log_key(stated, stated_len, &k, fp) != 0)
			return EXIT_FAILED;
		EVP_PKEY_free(k);
		if (strcasecmp(fp, log_key + strlen(FP_PREFIX)) != 0) {
			errmsg("the log key is " FP_PREFIX "%s, not the pinned %s: this is not the "
			       "log you pinned (or its key was replaced)",
			       fp, log_key);
			return EXIT_FAILED;
		}
	}
	if ((*pem = strndup(stated, stated_len)) == NULL) {
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	*pem_len = stated_len;
	return EXIT_OK;
}

/* The daemon's latest checkpoint, verified with the key --log-key names
 * (NULL: the key the daemon states). Returns an exit code. */
static int
get_checkpoint(const struct globals *g, qsc_client *c, const char *log_key, struct checkpoint *cp)
{
	Qsign__V1__CheckpointResponse *resp = NULL;
	char *pem = NULL;
	size_t pem_len = 0;
	int r, pinned;

	memset(cp, 0, sizeof(*cp));
	/* A key file is read before anything is asked of the daemon. */
	if (log_key != NULL && !is_fingerprint(log_key) &&
	    (r = pin_key(log_key, NULL, 0, &pem, &pem_len, &pinned)) != EXIT_OK)
		return r;
	if ((r = qsc_audit_checkpoint(c, &resp)) != 0) {
		free(pem);
		return report(g, c, r);
	}
	if (pem == NULL && (r = pin_key(log_key, resp->public_pem, strlen(resp->public_pem), &pem,
	                                &pem_len, &pinned)) != EXIT_OK) {
		qsc_free(resp);
		return r;
	}
	r = open_checkpoint(resp->note, strlen(resp->note), resp->origin, pem, pem_len,
	                    log_key != NULL, cp);
	qsc_free(resp);
	free(pem);
	return r == 0 ? EXIT_OK : EXIT_FAILED;
}

static const char *
pin_note(const struct checkpoint *cp)
{
	return cp->pinned ? "" : " (key not pinned)";
}

static json_t *
checkpoint_json(const struct checkpoint *cp)
{
	char root[65];

	hex_into(cp->root, 32, root);
	return json_pack("{s:s, s:I, s:s, s:s, s:b, s:s, s:s}", "origin", cp->origin, "size",
	                 (json_int_t)cp->size, "root", root, "log_key_sha256", cp->key_sha256,
	                 "key_pinned", cp->pinned, "note", cp->note, "public_pem", cp->pem);
}

/* ------------------------------------------------------------ fetching */

/* Entries [start, end) from the daemon, in chunks, each to each() (0, or
 * -1 after saying why); each must be there. */
static int
fetch_each(const struct globals *g, qsc_client *c, uint64_t start, uint64_t end,
           int (*each)(void *arg, const uint8_t *data, size_t len), void *arg)
{
	Qsign__V1__EntriesResponse *resp = NULL;
	int r;

	for (uint64_t at = start; at < end;) {
		uint64_t want = end - at < QS_MAX_AUDIT_FETCH ? end - at : QS_MAX_AUDIT_FETCH;
		if ((r = qsc_audit_entries(c, at, (uint32_t)want, &resp)) != 0)
			return report(g, c, r);
		if (resp->n_entries == 0) {
			errmsg("the daemon returned %llu of the %llu entries its checkpoint covers",
			       (unsigned long long)at, (unsigned long long)end);
			qsc_free(resp);
			return EXIT_FAILED;
		}
		for (size_t i = 0; i < resp->n_entries; i++) {
			if (each(arg, resp->entries[i].data, resp->entries[i].len) != 0) {
				qsc_free(resp);
				return EXIT_FAILED;
			}
		}
		at += resp->n_entries;
		qsc_free(resp);
		resp = NULL;
	}
	return EXIT_OK;
}

/* A copy of one entry into the struct entries arg (fetch_each). */
static int
push_copy(void *arg, const uint8_t *data, size_t len)
{
	uint8_t *d = malloc(len);

	if (d == NULL) {
		errmsg("out of memory");
		return -1;
	}
	memcpy(d, data, len);
	if (entries_push(arg, d, len) != 0) {
		free(d);
		return -1;
	}
	return 0;
}

/* Entries [start, end) from the daemon into e. */
static int
fetch_entries(const struct globals *g, qsc_client *c, uint64_t start, uint64_t end,
              struct entries *e)
{
	memset(e, 0, sizeof(*e));
	e->first = start;
	return fetch_each(g, c, start, end, push_copy, e);
}

/* A file of an export directory, at most max bytes. */
static int
read_export_file(const char *dir, const char *name, size_t max, char **out, size_t *len)
{
	char *path = NULL;
	uint8_t *buf = NULL;
	int r;

	*out = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		errmsg("out of memory");
		return -1;
	}
	r = read_input(path, max, &buf, len);
	free(path);
	if (r != 0)
		return -1;
	/* NUL-terminate (read_input leaves room for one more byte). */
	buf[*len] = '\0';
	*out = (char *)buf;
	return 0;
}

/* Entries of DIR/entries.jsonl: one entry per line, exactly its bytes. */
static int
read_export_entries(const char *dir, struct entries *e)
{
	char *path = NULL, *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = NULL;
	int r = -1;

	memset(e, 0, sizeof(*e));
	if (asprintf(&path, "%s/%s", dir, EXPORT_ENTRIES) < 0) {
		errmsg("out of memory");
		return -1;
	}
	if ((f = fopen(path, "rbe")) == NULL) {
		errmsg("%s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		uint8_t *d;
		if (line[n - 1] != '\n') {
			errmsg("%s: line %llu does not end in a newline (truncated export?)", path,
			       (unsigned long long)e->n + 1);
			goto out;
		}
		if (n == 1 || (size_t)n - 1 > QS_MAX_AUDIT_ENTRY) {
			errmsg("%s: line %llu is %s", path, (unsigned long long)e->n + 1,
			       n == 1 ? "empty" : "too long");
			goto out;
		}
		if ((d = malloc((size_t)n - 1)) == NULL) {
			errmsg("out of memory");
			goto out;
		}
		memcpy(d, line, (size_t)n - 1);
		if (entries_push(e, d, (size_t)n - 1) != 0) {
			free(d);
			goto out;
		}
	}
	if (ferror(f)) {
		errmsg("%s: read error", path);
		goto out;
	}
	r = 0;
out:
	if (f != NULL)
		fclose(f);
	free(line);
	free(path);
	if (r != 0)
		entries_free(e);
	return r;
}

/* The checkpoint of an export directory, verified with key_file (a PEM
 * file or a fingerprint of DIR/log-key.pem; NULL: DIR/log-key.pem, not
 * pinned). */
static int
read_export_checkpoint(const char *dir, const char *key_file, struct checkpoint *cp)
{
	char *note = NULL, *origin = NULL, *pem = NULL;
	size_t note_len, origin_len, pem_len;
	int r = -1;

	memset(cp, 0, sizeof(*cp));
	if (read_export_file(dir, EXPORT_CHECKPOINT, QS_MAX_NOTE, &note, &note_len) != 0 ||
	    read_export_file(dir, EXPORT_ORIGIN, QS_MAX_ORIGIN + 1, &origin, &origin_len) != 0)
		goto out;
	if (key_file == NULL || is_fingerprint(key_file)) {
		char *stated = NULL;
		size_t stated_len = 0;
		int pinned;
		if (read_export_file(dir, EXPORT_KEY, QSC_MAX_LOG_KEY_PEM, &stated, &stated_len) !=
		    0)
			goto out;
		r = pin_key(key_file, stated, stated_len, &pem, &pem_len, &pinned);
		free(stated);
		if (r != EXIT_OK) {
			r = -1;
			goto out;
		}
		r = -1;
	} else {
		uint8_t *b = NULL;
		if (read_input(key_file, QSC_MAX_LOG_KEY_PEM, &b, &pem_len) != 0)
			goto out;
		pem = (char *)b;
	}
	if (origin_len > 0 && origin[origin_len - 1] == '\n')
		origin[--origin_len] = '\0';
	if (origin_len == 0 || strlen(origin) != origin_len) {
		errmsg("%s/%s: no origin", dir, EXPORT_ORIGIN);
		goto out;
	}
	if (open_checkpoint(note, note_len, origin, pem, pem_len, key_file != NULL, cp) != 0)
		goto out;
	r = 0;
out:
	free(note);
	free(origin);
	free(pem);
	return r;
}

/* ------------------------------------------------------------ entries */

/* One entry as a JSON object (NULL after saying why). */
static json_t *
parse_entry(const struct entries *e, uint64_t i)
{
	json_error_t err;
	json_t *j = json_loadb((const char *)e->data[i - e->first], e->len[i - e->first],
	                       JSON_REJECT_DUPLICATES, &err);

	if (j == NULL || !json_is_object(j)) {
		errmsg("entry %llu is not a JSON object%s%s", (unsigned long long)i,
		       j == NULL ? ": " : "", j == NULL ? err.text : "");
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *
str_field(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

/* A one-line summary of an entry: SEQ TIME EVENT DETAILS (filtered);
 * join (NULL or what requests_join gathered for its request) names the
 * submitter and approvers of a quorum signature. */
static void
put_entry_line(uint64_t i, json_t *o, json_t *join)
{
	const char *ev = str_field(o, "event");
	json_t *t = json_object_get(o, "time");
	char when[32];
	char buf[512];

	iso_time(json_is_integer(t) ? json_integer_value(t) / 1000 : 0, when);
	if (strcmp(ev, "signature") == 0)
		snprintf(buf, sizeof(buf), "%s role=%s key=%s digest=%.*s",
		         str_field(o, "principal"), str_field(o, "role"), str_field(o, "key"),
		         SUMMARY_HEX, str_field(o, "digest"));
	else if (strcmp(ev, "auth") == 0)
		snprintf(buf, sizeof(buf), "%s via %s", str_field(o, "principal"),
		         str_field(o, "transport"));
	else if (strcmp(ev, "request.submitted") == 0)
		snprintf(buf, sizeof(buf), "%s by %s role=%s kind=%s", str_field(o, "id"),
		         str_field(o, "submitter"), str_field(o, "role"), str_field(o, "kind"));
	else if (strcmp(ev, "request.vote") == 0)
		snprintf(buf, sizeof(buf), "%s %s by %s", str_field(o, "id"),
		         str_field(o, "decision"), str_field(o, "approver"));
	else if (strcmp(ev, "request.state") == 0)
		snprintf(buf, sizeof(buf), "%s %s -> %s", str_field(o, "id"), str_field(o, "from"),
		         str_field(o, "to"));
	else if (strcmp(ev, "request.signed") == 0 && join != NULL) {
		char who[256] = "";
		json_t *ap = json_object_get(join, "approvers");
		size_t k;
		json_t *x;
		json_array_foreach(ap, k, x)
		{
			size_t used = strlen(who);
			snprintf(who + used, sizeof(who) - used, "%s%s", k ? "," : "",
			         json_string_value(x) ? json_string_value(x) : "?");
		}
		snprintf(buf, sizeof(buf), "%s role=%s kind=%s submitter=%s approvers=%s",
		         str_field(o, "id"), str_field(o, "role"), str_field(o, "kind"),
		         str_field(join, "submitter"), who[0] ? who : "-");
	} else if (strcmp(ev, "request.signed") == 0)
		snprintf(buf, sizeof(buf), "%s role=%s", str_field(o, "id"), str_field(o, "role"));
	else if (strcmp(ev, "policy") == 0)
		snprintf(buf, sizeof(buf), "version %lld%s%s",
		         (long long)json_integer_value(json_object_get(o, "version")),
		         json_object_get(o, "request") ? " by request " : "",
		         str_field(o, "request"));
	else if (strcmp(ev, "refusal") == 0)
		snprintf(buf, sizeof(buf), "%s %s %s", str_field(o, "principal"),
		         str_field(o, "method"), str_field(o, "status"));
	else if (strcmp(ev, "audit.summary") == 0) {
		/* "12 not logged: ci refusal qsign.v1.Signer/Sign PERMISSION_DENIED x10, ..." */
		json_t *rows = json_object_get(o, "counts");
		size_t n = 0, k;
		n = (size_t)snprintf(buf, sizeof(buf), "%lld not logged one by one:",
		                     (long long)json_integer_value(json_object_get(o, "total")));
		for (k = 0; k < json_array_size(rows) && n < sizeof(buf); k++) {
			json_t *r = json_array_get(rows, k);
			n += (size_t)snprintf(
			        buf + n, sizeof(buf) - n, "%s %s %s %s %s x%lld", k ? "," : "",
			        str_field(r, "principal"), str_field(r, "event"),
			        str_field(r, "method"), str_field(r, "status"),
			        (long long)json_integer_value(json_object_get(r, "count")));
		}
	} else if (json_object_get(o, "principal") != NULL)
		snprintf(buf, sizeof(buf), "%s", str_field(o, "principal"));
	else
		snprintf(buf, sizeof(buf), "%s", str_field(o, "id"));
	printf("%6llu  %s  ", (unsigned long long)i, when);
	put_safe(stdout, ev[0] ? ev : "?", 0);
	for (size_t n = strlen(ev[0] ? ev : "?"); n < 18; n++)
		fputc(' ', stdout);
	put_safe(stdout, buf[0] ? buf : "-", 0);
	fputc('\n', stdout);
}

/* ------------------------------------------------------------ filters */

/* pat matches ev: a shell pattern ("request.*"), or a family ("tuf" for
 * "tuf.init"). */
static int
event_match(const char *pat, const char *ev)
{
	size_t n = strlen(pat);

	return fnmatch(pat, ev, 0) == 0 || (strncmp(ev, pat, n) == 0 && ev[n] == '.');
}

static int
str_in(json_t *arr, const char *s)
{
	size_t k;
	json_t *x;

	json_array_foreach(arr, k, x)
	{
		if (json_is_string(x) && strcmp(json_string_value(x), s) == 0)
			return 1;
	}
	return 0;
}

/* Does entry o (join: its request's, or NULL) pass f? */
static int
filter_match(const struct filter *f, json_t *o, json_t *join)
{
	const char *ev = str_field(o, "event");
	json_t *t = json_object_get(o, "time");
	int ok;

	if (f->n_events > 0) {
		ok = 0;
		for (size_t k = 0; k < f->n_events && !ok; k++)
			ok = event_match(f->events[k], ev);
		if (!ok)
			return 0;
	}
	for (size_t k = 0; k < f->n_exclude; k++)
		if (event_match(f->exclude[k], ev))
			return 0;
	if ((f->has_since || f->has_until) &&
	    (!json_is_integer(t) || (f->has_since && json_integer_value(t) < f->since_ms) ||
	     (f->has_until && json_integer_value(t) >= f->until_ms)))
		return 0;
	if (f->principal != NULL && strcmp(str_field(o, "principal"), f->principal) != 0 &&
	    strcmp(str_field(o, "submitter"), f->principal) != 0 &&
	    strcmp(str_field(o, "approver"), f->principal) != 0 &&
	    (join == NULL || (strcmp(str_field(join, "submitter"), f->principal) != 0 &&
	                      !str_in(json_object_get(join, "approvers"), f->principal) &&
	                      !str_in(json_object_get(join, "rejecters"), f->principal))))
		return 0;
	if (f->role != NULL && strcmp(str_field(o, "role"), f->role) != 0)
		return 0;
	if (f->key != NULL && strcmp(str_field(o, "key"), f->key) != 0) {
		json_t *sigs = json_object_get(o, "signatures"), *x;
		size_t k;
		ok = 0;
		json_array_foreach(sigs, k, x)
		{
			if (strcmp(str_field(x, "key"), f->key) == 0)
				ok = 1;
		}
		if (!ok)
			return 0;
	}
	if (f->request != NULL && strcmp(str_field(o, "id"), f->request) != 0 &&
	    strcmp(str_field(o, "request"), f->request) != 0)
		return 0;
	return 1;
}

/* The request an entry belongs to ("id" of request.*, "request" of the
 * entries a request's execution wrote), or NULL. */
static const char *
entry_request(json_t *o)
{
	const char *ev = str_field(o, "event");

	if (strncmp(ev, "request.", 8) == 0)
		return json_string_value(json_object_get(o, "id"));
	return json_string_value(json_object_get(o, "request"));
}

/*
 * Who submitted and who voted on each request, from the request.submitted
 * and request.vote entries of parsed[0..n) (NULLs skipped): id ->
 * {submitter, message, role, kind, approvers [..], rejecters [..]}.
 */
static json_t *
requests_join(json_t **parsed, uint64_t n)
{
	json_t *m = json_object();

	for (uint64_t i = 0; m != NULL && i < n; i++) {
		json_t *o = parsed[i], *r;
		const char *ev, *id;
		if (o == NULL || (id = json_string_value(json_object_get(o, "id"))) == NULL)
			continue;
		ev = str_field(o, "event");
		if (strcmp(ev, "request.submitted") == 0) {
			json_object_set_new(
			        m, id,
			        json_pack("{s:O, s:O, s:O, s:O, s:[], s:[]}", "submitter",
			                  json_object_get(o, "submitter") ?: json_null(), "message",
			                  json_object_get(o, "message") ?: json_null(), "role",
			                  json_object_get(o, "role") ?: json_null(), "kind",
			                  json_object_get(o, "kind") ?: json_null(), "approvers",
			                  "rejecters"));
		} else if (strcmp(ev, "request.vote") == 0 &&
		           (r = json_object_get(m, id)) != NULL) {
			int approve = strcmp(str_field(o, "decision"), "approve") == 0;
			json_t *who = json_object_get(o, "approver");
			if (json_is_string(who))
				json_array_append(
				        json_object_get(r, approve ? "approvers" : "rejecters"),
				        who);
		}
	}
	return m;
}

/* ------------------------------------------------------------ usage */

static void
checkpoint_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit checkpoint [--log-key FILE|SHA256:HEX] [--json]\n"
	        "  Print the log's latest signed checkpoint (C2SP signed note: origin, size,\n"
	        "  root) after verifying its signature with the log key pinned by --log-key\n"
	        "  (its PEM file, or its fingerprint SHA256:HEX as printed here and in\n"
	        "  qsignd's audit.open log line), or else with the key the daemon states\n"
	        "  (then it says \"key not pinned\").\n"
	        "example: %s -p auditor audit checkpoint --log-key log-key.pem\n",
	        progname, progname);
}

/* Filter options, as audit_opts letters. */
#define SEARCH_FILTERS "EPRYIsudX"
#define TAIL_FILTERS SEARCH_FILTERS "A"
#define FILTERS_HELP                                                                               \
	"  --event EV       only events EV (repeatable; a family such as \"request\" or a\n"       \
	"                   pattern such as \"pki.*\" works too)\n"                                \
	"  --exclude EV     not events EV (repeatable)\n"                                          \
	"  --principal P    entries by or about P (signer, submitter, approver)\n"                 \
	"  --role R         entries of role R\n"                                                   \
	"  --key K          signatures with key K\n"                                               \
	"  --request ID     entries of request ID\n"                                               \
	"  --since T, --until T   from T (inclusive) to T (exclusive), UTC: now, today,\n"         \
	"                   yesterday, 2h, 3d ago, 2026-01-31, 2026-01-31T12:00Z, @UNIX\n"         \
	"  --on DAY         the whole day DAY (today, yesterday, 2026-01-31), UTC\n"

static void
tail_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit tail [-n N] [FILTERS] [--all] [--log-key "
	        "FILE|SHA256:HEX]\n"
	        "           [--json]\n"
	        "  The last N (default %d) entries that pass FILTERS, one line each: index,\n"
	        "  time (ISO 8601, UTC), event, who or what. Logins (\"auth\") are hidden\n"
	        "  unless --all or --event asks for them. `audit verify` checks the "
	        "entries.\n" FILTERS_HELP
	        "example: %s -p auditor audit tail -n 20 --exclude refusal\n",
	        progname, TAIL_DEFAULT, progname);
}

static void
search_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit search [FILTERS] [-n N] [--offline DIR]\n"
	        "           [--log-key FILE|SHA256:HEX] [--json]\n"
	        "  The entries that pass every filter given, oldest first (-n N: the last N\n"
	        "  of them), after checking that all entries hash to the signed checkpoint.\n"
	        "  Text: one line each with its time in ISO 8601 UTC; a quorum signature\n"
	        "  (request.signed) names its submitter and approvers. --json: the entries\n"
	        "  as logged and, under \"requests\", who submitted, approved and rejected\n"
	        "  each request they belong to. --offline DIR searches an export.\n" FILTERS_HELP
	        "example: %s -p auditor audit search --event signature --principal ci --on "
	        "yesterday\n"
	        "         %s -p auditor audit search --request 8f3a2c1e9b7d4f60a1b2c3d4e5f60718\n"
	        "         %s -p auditor audit search --event request.signed --role release "
	        "--json\n",
	        progname, progname, progname, progname);
}

static void
show_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit show INDEX [--log-key FILE|SHA256:HEX] [--json]\n"
	        "  One entry, exactly as logged (its JSON is the Merkle leaf), and its\n"
	        "  inclusion proof verified against the current signed checkpoint.\n"
	        "example: %s -p auditor audit show 17\n",
	        progname, progname);
}

static void
proof_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit proof INDEX [--size N] [--log-key "
	        "FILE|SHA256:HEX] "
	        "[--json]\n"
	        "  The RFC 9162 inclusion proof of entry INDEX in the tree of N entries\n"
	        "  (default: the current checkpoint's size), its hashes in hex, and whether\n"
	        "  it verifies. A size below the checkpoint's is first proven a prefix of it.\n"
	        "example: %s -p auditor audit proof 17 --size 100\n",
	        progname, progname);
}

static void
export_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit export [--from N] [-o FILE|DIR]\n"
	        "           [--log-key FILE|SHA256:HEX] [--state FILE | --no-state] [--json]\n"
	        "  The entries of the verified checkpoint as JSON lines: each line is exactly\n"
	        "  one entry's leaf bytes, so anyone can recompute the tree. Without -o the\n"
	        "  lines go to stdout; -o FILE.jsonl writes them to that file; -o DIR (any\n"
	        "  other name; created if missing) writes DIR/" EXPORT_ENTRIES
	        ", DIR/" EXPORT_CHECKPOINT ",\n"
	        "  DIR/" EXPORT_KEY " and DIR/" EXPORT_ORIGIN
	        ", which `audit verify --offline DIR` checks\n"
	        "  without the daemon.\n"
	        "  Incremental: if DIR holds an earlier export of the log, only the newer\n"
	        "  entries are fetched and DIR is brought up to date (the old and new\n"
	        "  entries together must make the signed root). --from N writes entries N\n"
	        "  onwards; the entries before N are then not fetched when the last `audit\n"
	        "  verify` (its state, see `audit verify --help`) remembers them, and the\n"
	        "  whole log is fetched and checked otherwise.\n"
	        "example: %s -p auditor audit export -o audit-archive\n"
	        "         %s -p auditor audit export --from 18342 -o new.jsonl\n",
	        progname, progname, progname);
}

static void
verify_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit verify [--log-key FILE|SHA256:HEX]\n"
	        "           [--state FILE | --no-state] [--offline DIR] [--json]\n"
	        "  Fetch every entry and the checkpoint (or read an export with --offline),\n"
	        "  and check: the checkpoint signature (pinned key, or the stated one: \"key\n"
	        "  not pinned\"); the Merkle root of the entries against it; that entry i is\n"
	        "  JSON with \"seq\": i and times never go back; every approval statement\n"
	        "  against the approver's key in the policy version the request ran under or\n"
	        "  a later one in force by the vote (a replaced key is replaced for votes\n"
	        "  too; policies come from the log); and consistency with the last\n"
	        "  checkpoint verified before for the same log (origin).\n"
	        "  State: the last verified checkpoint of each log (and its entries' leaf\n"
	        "  hashes) is kept in FILE, by default $XDG_STATE_HOME/qsign/audit-state.json\n"
	        "  (~/.local/state/qsign/ without XDG_STATE_HOME), created as needed and\n"
	        "  updated after each successful verification. A newer log must extend it\n"
	        "  (consistency proof); an export older than it must be a prefix of the log\n"
	        "  seen then, and leaves the state as it is. Only a log that contradicts\n"
	        "  what was seen (or a live log smaller than it) is reported as rolled back\n"
	        "  or rewritten. --no-state compares with nothing and records nothing.\n"
	        "  --log-key takes the key's PEM file or its fingerprint SHA256:HEX (as\n"
	        "  `audit checkpoint` and qsignd's audit.open log line print it).\n"
	        "  Exit 0 only if everything verifies; 1 names each failure.\n"
	        "example: %s -p auditor audit verify --log-key "
	        "SHA256:3f0c5e2a9b8d7c6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f\n"
	        "         %s audit verify --offline audit-2026-01-31 --log-key log-key.pem\n",
	        progname, progname, progname);
}

struct audit_opts {
	const char *log_key;
	const char *state;
	const char *offline;
	const char *out;
	uint64_t n, from, size;
	int has_n, has_size, has_from, no_state;
	struct filter f;
};

enum {
	O_KEY = 256,
	O_STATE,
	O_OFFLINE,
	O_FROM,
	O_SIZE,
	O_NOSTATE,
	O_EVENT,
	O_PRINCIPAL,
	O_ROLE,
	O_KEYNAME,
	O_REQUEST,
	O_SINCE,
	O_UNTIL,
	O_ON,
	O_EXCLUDE,
	O_ALL,
};

static const struct option audit_options[] = {
        {"log-key", required_argument, NULL, O_KEY},
        {"state", required_argument, NULL, O_STATE},
        {"offline", required_argument, NULL, O_OFFLINE},
        {"from", required_argument, NULL, O_FROM},
        {"size", required_argument, NULL, O_SIZE},
        {"no-state", no_argument, NULL, O_NOSTATE},
        {"event", required_argument, NULL, O_EVENT},
        {"principal", required_argument, NULL, O_PRINCIPAL},
        {"role", required_argument, NULL, O_ROLE},
        {"key", required_argument, NULL, O_KEYNAME},
        {"request", required_argument, NULL, O_REQUEST},
        {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},
        {"on", required_argument, NULL, O_ON},
        {"exclude", required_argument, NULL, O_EXCLUDE},
        {"all", no_argument, NULL, O_ALL},
        {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
};

/* What audit_opt() needs besides the options it fills. */
struct audit_opt_ctx {
	struct audit_opts *o;
	const char *allowed, *cmd;
	void (*usage)(FILE *);
	int64_t now;
};

/* One option of an audit subcommand; `allowed` lists the letters that
 * subcommand takes. */
static int
audit_opt(void *ctx, int ch, char *arg)
{
	/* Letters standing for the long options, to check `allowed`. */
	static const char letters[] = "KSOFZNEPRYIsudXA";
	struct audit_opt_ctx *x = ctx;
	struct audit_opts *o = x->o;
	int64_t now = x->now;
	char letter = ch >= O_KEY && ch <= O_ALL ? letters[ch - O_KEY] : (char)ch;

	if (strchr(x->allowed, letter) == NULL) {
		errmsg("audit %s does not take that option", x->cmd);
		x->usage(stderr);
		return EXIT_USAGE;
	}
	switch (ch) {
	case O_KEY:
		if (strncmp(arg, FP_PREFIX, strlen(FP_PREFIX)) == 0 && !is_fingerprint(arg)) {
			errmsg("--log-key %s: a fingerprint is " FP_PREFIX
			       " and 64 hex digits, as `audit checkpoint` and qsignd's "
			       "audit.open line print it",
			       arg);
			return EXIT_USAGE;
		}
		o->log_key = arg;
		break;
	case O_STATE:
		o->state = arg;
		break;
	case O_NOSTATE:
		o->no_state = 1;
		break;
	case O_OFFLINE:
		o->offline = arg;
		break;
	case O_FROM:
		if (parse_u64("--from", arg, &o->from) != 0)
			return EXIT_USAGE;
		o->has_from = 1;
		break;
	case O_SIZE:
		if (parse_u64("--size", arg, &o->size) != 0 || o->size == 0) {
			if (o->size == 0)
				errmsg("--size must be at least 1");
			return EXIT_USAGE;
		}
		o->has_size = 1;
		break;
	case O_EVENT:
	case O_EXCLUDE: {
		const char **v = ch == O_EVENT ? o->f.events : o->f.exclude;
		size_t *n = ch == O_EVENT ? &o->f.n_events : &o->f.n_exclude;
		if (*n == MAX_FILTER_EVENTS || arg[0] == '\0') {
			errmsg("%s: at most %d non-empty event names",
			       ch == O_EVENT ? "--event" : "--exclude", MAX_FILTER_EVENTS);
			return EXIT_USAGE;
		}
		v[(*n)++] = arg;
		break;
	}
	case O_PRINCIPAL:
		o->f.principal = arg;
		break;
	case O_ROLE:
		o->f.role = arg;
		break;
	case O_KEYNAME:
		o->f.key = arg;
		break;
	case O_REQUEST:
		o->f.request = arg;
		break;
	case O_SINCE:
	case O_UNTIL: {
		int64_t t;
		if (parse_when(ch == O_SINCE ? "--since" : "--until", arg, now, 0, &t) != 0)
			return EXIT_USAGE;
		if (ch == O_SINCE) {
			o->f.since_ms = t * 1000;
			o->f.has_since = 1;
		} else {
			o->f.until_ms = t * 1000;
			o->f.has_until = 1;
		}
		break;
	}
	case O_ON: {
		int64_t t;
		if (parse_when("--on", arg, now, 1, &t) != 0)
			return EXIT_USAGE;
		o->f.since_ms = t * 1000;
		o->f.until_ms = (t + 86400) * 1000;
		o->f.has_since = o->f.has_until = 1;
		break;
	}
	case O_ALL:
		o->f.all = 1;
		break;
	case 'n':
		if (parse_u64("-n", arg, &o->n) != 0)
			return EXIT_USAGE;
		o->has_n = 1;
		break;
	case 'o':
		o->out = arg;
		break;
	}
	return 0;
}

/* Options common to the audit subcommands; `allowed` lists the letters a
 * subcommand takes. Returns -1 to go on, else the exit code. */
static int
audit_opts(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const char *allowed,
           int nargs, struct audit_opts *o)
{
	struct audit_opt_ctx x = {o, allowed, argv[0], usage, (int64_t)time(NULL)};
	int r;

	memset(o, 0, sizeof(*o));
	if ((r = parse_opts(argc, argv, g, usage,
	                    &(const struct opts){"n:o:", audit_options, NULL, audit_opt, &x, nargs,
	                                         nargs})) >= 0)
		return r;
	if (o->no_state && o->state != NULL) {
		errmsg("--state and --no-state exclude each other");
		return EXIT_USAGE;
	}
	if (o->f.has_since && o->f.has_until && o->f.until_ms <= o->f.since_ms) {
		errmsg("the time range is empty: --until is not after --since");
		return EXIT_USAGE;
	}
	return -1;
}

/* ------------------------------------------------------------ checkpoint */

static int
checkpoint_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	qsc_client *c = NULL;
	char root[65];
	int r;

	if ((r = audit_opts(argc, argv, g, checkpoint_usage, "K", 0, &o)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	if (g->json) {
		json_t *j = checkpoint_json(&cp);
		json_object_set_new(j, "verified", json_true());
		r = json_print(j, JSON_INDENT(2)) == 0 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	hex_into(cp.root, 32, root);
	put_safe(stdout, cp.note, 1);
	printf("origin   ");
	put_safe(stdout, cp.origin, 0);
	printf("\nsize     %llu\nroot     %s\nlog key  SHA256:%s%s\nsignature verified\n",
	       (unsigned long long)cp.size, root, cp.key_sha256, pin_note(&cp));
	r = EXIT_OK;
out:
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ tail */

static int
tail_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	qsc_client *c = NULL;
	json_t *arr = NULL, **hits = NULL;
	uint64_t *hit_seq = NULL, nhits = 0, scanned = 0, hidden = 0, at;
	int r;

	if ((r = audit_opts(argc, argv, g, tail_usage, "Kn" TAIL_FILTERS, 0, &o)) >= 0)
		return r;
	if (!o.has_n)
		o.n = TAIL_DEFAULT;
	if (o.n > QS_MAX_AUDIT_FETCH * 100ULL) {
		errmsg("-n %llu: at most %llu (use `audit search` or `audit export`)",
		       (unsigned long long)o.n, (unsigned long long)QS_MAX_AUDIT_FETCH * 100ULL);
		return EXIT_USAGE;
	}
	/* Logins are most of a busy log: hidden unless asked for. */
	if (!o.f.all && o.f.n_events == 0 && o.f.n_exclude < MAX_FILTER_EVENTS)
		o.f.exclude[o.f.n_exclude++] = "auth";
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	if ((hits = calloc(o.n + 1, sizeof(*hits))) == NULL ||
	    (hit_seq = calloc(o.n + 1, sizeof(*hit_seq))) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	/* Backwards, a chunk at a time, until N entries pass the filters. */
	for (at = cp.size; at > 0 && nhits < o.n;) {
		uint64_t start = at > QS_MAX_AUDIT_FETCH ? at - QS_MAX_AUDIT_FETCH : 0;
		if ((r = fetch_entries(g, c, start, at, &e)) != EXIT_OK)
			goto out;
		for (uint64_t i = at; i > start && nhits < o.n; i--) {
			json_t *j = parse_entry(&e, i - 1);
			scanned++;
			if (j == NULL) {
				r = EXIT_FAILED;
				goto out;
			}
			if (filter_match(&o.f, j, NULL)) {
				hits[nhits] = j;
				hit_seq[nhits++] = i - 1;
			} else {
				if (strcmp(str_field(j, "event"), "auth") == 0)
					hidden++;
				json_decref(j);
			}
		}
		entries_free(&e);
		at = start;
	}
	if (g->json && (arr = json_array()) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	for (uint64_t k = nhits; k > 0; k--) {
		if (g->json) {
			json_array_append(arr, hits[k - 1]);
		} else {
			put_entry_line(hit_seq[k - 1], hits[k - 1], NULL);
		}
	}
	if (g->json) {
		json_t *j = checkpoint_json(&cp);
		json_object_set_new(j, "entries", arr);
		arr = NULL;
		if (json_print(j, JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	} else {
		char note[96] = "";
		if (hidden > 0 && !o.f.all && o.f.n_events == 0)
			snprintf(note, sizeof(note),
			         "; %llu login%s (auth) hidden: --all shows them",
			         (unsigned long long)hidden, hidden == 1 ? "" : "s");
		fprintf(stderr,
		        "%llu matching of the last %llu of %llu entries (checkpoint "
		        "verified%s)%s\n",
		        (unsigned long long)nhits, (unsigned long long)scanned,
		        (unsigned long long)cp.size, pin_note(&cp), note);
	}
out:
	for (uint64_t k = 0; hits != NULL && k < nhits; k++)
		json_decref(hits[k]);
	free(hits);
	free(hit_seq);
	json_decref(arr);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ search */

/* The checkpoint and all its entries, whose root is checked against it:
 * from the daemon, or from an export directory (offline). Exit code. */
static int
load_verified_log(struct globals *g, const struct audit_opts *o, qsc_client **c,
                  struct checkpoint *cp, struct entries *e)
{
	qs_hash root;
	int r;

	if (o->offline != NULL) {
		if (read_export_checkpoint(o->offline, o->log_key, cp) != 0 ||
		    read_export_entries(o->offline, e) != 0)
			return EXIT_FAILED;
	} else {
		if ((r = connect_client(g, c)) != EXIT_OK ||
		    (r = get_checkpoint(g, *c, o->log_key, cp)) != EXIT_OK ||
		    (r = fetch_entries(g, *c, 0, cp->size, e)) != EXIT_OK)
			return r;
	}
	if (qs_merkle_root_of(e->leaf, e->n, root) != 0) {
		errmsg("%s", qs_errdetail());
		return EXIT_FAILED;
	}
	if (e->n != cp->size || memcmp(root, cp->root, sizeof(root)) != 0) {
		errmsg("the entries do not match the signed checkpoint: nothing shown (run `%s "
		       "audit verify`%s%s)",
		       progname, o->offline ? " --offline " : "", o->offline ? o->offline : "");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static int
search_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	qsc_client *c = NULL;
	json_t **parsed = NULL, *joins = NULL, *arr = NULL, *reqs = NULL;
	uint64_t *hit = NULL, nhit = 0, first = 0;
	int r;

	if ((r = audit_opts(argc, argv, g, search_usage, "KOn" SEARCH_FILTERS, 0, &o)) >= 0)
		return r;
	if ((r = load_verified_log(g, &o, &c, &cp, &e)) != EXIT_OK)
		goto out;
	r = EXIT_FAILED;
	if ((parsed = calloc(e.n + 1, sizeof(*parsed))) == NULL ||
	    (hit = calloc(e.n + 1, sizeof(*hit))) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < e.n; i++)
		if ((parsed[i] = parse_entry(&e, i)) == NULL)
			goto out;
	if ((joins = requests_join(parsed, e.n)) == NULL || (arr = json_array()) == NULL ||
	    (reqs = json_object()) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < e.n; i++) {
		const char *id = entry_request(parsed[i]);
		if (filter_match(&o.f, parsed[i], id ? json_object_get(joins, id) : NULL))
			hit[nhit++] = i;
	}
	if (o.has_n && nhit > o.n)
		first = nhit - o.n;
	for (uint64_t k = first; k < nhit; k++) {
		json_t *x = parsed[hit[k]];
		const char *id = entry_request(x);
		json_t *join = id ? json_object_get(joins, id) : NULL;
		if (g->json) {
			json_array_append(arr, x);
			if (join != NULL)
				json_object_set(reqs, id, join);
		} else {
			put_entry_line(hit[k], x,
			               strcmp(str_field(x, "event"), "request.signed") == 0 ? join
			                                                                    : NULL);
		}
	}
	if (g->json) {
		json_t *j = checkpoint_json(&cp);
		json_object_set_new(j, "matched", json_integer((json_int_t)(nhit - first)));
		json_object_set_new(j, "entries", arr);
		json_object_set_new(j, "requests", reqs);
		arr = reqs = NULL;
		if (json_print(j, JSON_INDENT(2)) != 0)
			goto out;
	} else {
		fprintf(stderr, "%llu of %llu entries match (root and checkpoint verified%s)\n",
		        (unsigned long long)(nhit - first), (unsigned long long)cp.size,
		        pin_note(&cp));
	}
	r = EXIT_OK;
out:
	for (uint64_t i = 0; parsed != NULL && i < e.n; i++)
		json_decref(parsed[i]);
	free(parsed);
	free(hit);
	json_decref(joins);
	json_decref(arr);
	json_decref(reqs);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ show / proof */

/* Fetch and verify the inclusion proof of leaf (at index) in the tree of
 * tree_size entries whose root is root. Prints nothing on success. */
static int
prove_inclusion(const struct globals *g, qsc_client *c, uint64_t index, uint64_t tree_size,
                const qs_hash leaf, const qs_hash root, Qsign__V1__ProofResponse **out)
{
	Qsign__V1__ProofResponse *p = NULL;
	qs_hash path[QS_MAX_MERKLE_PATH];
	int r;

	*out = NULL;
	if ((r = qsc_audit_inclusion(c, index, tree_size, &p)) != 0)
		return report(g, c, r);
	for (size_t i = 0; i < p->n_hashes; i++)
		memcpy(path[i], p->hashes[i].data, sizeof(qs_hash));
	if (qs_merkle_inclusion_verify(index, tree_size, leaf, path, p->n_hashes, root) != 0) {
		errmsg("entry %llu is not in the tree of %llu entries: the inclusion proof does "
		       "not "
		       "verify (%s)",
		       (unsigned long long)index, (unsigned long long)tree_size, qs_errdetail());
		qsc_free(p);
		return EXIT_FAILED;
	}
	*out = p;
	return EXIT_OK;
}

static json_t *
proof_hashes_json(const Qsign__V1__ProofResponse *p)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < p->n_hashes; i++) {
		char h[65];
		hex_into(p->hashes[i].data, 32, h);
		json_array_append_new(a, json_string(h));
	}
	return a;
}

static int
show_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	Qsign__V1__ProofResponse *p = NULL;
	qsc_client *c = NULL;
	uint64_t index;
	char leaf[65], root[65];
	json_t *j = NULL;
	int r;

	if ((r = audit_opts(argc, argv, g, show_usage, "K", 1, &o)) >= 0)
		return r;
	if (parse_u64("INDEX", argv[optind], &index) != 0)
		return EXIT_USAGE;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	if (index >= cp.size) {
		errmsg("no entry %llu: the checkpoint covers %llu entries",
		       (unsigned long long)index, (unsigned long long)cp.size);
		r = EXIT_FAILED;
		goto out;
	}
	if ((r = fetch_entries(g, c, index, index + 1, &e)) != EXIT_OK ||
	    (r = prove_inclusion(g, c, index, cp.size, e.leaf[0], cp.root, &p)) != EXIT_OK)
		goto out;
	hex_into(e.leaf[0], 32, leaf);
	hex_into(cp.root, 32, root);
	if ((j = parse_entry(&e, index)) == NULL) {
		r = EXIT_FAILED;
		goto out;
	}
	if (g->json) {
		json_t *d = json_pack("{s:I, s:o, s:s, s:I, s:s, s:o, s:b, s:b}", "index",
		                      (json_int_t)index, "entry", j, "leaf_hash", leaf, "tree_size",
		                      (json_int_t)cp.size, "root", root, "proof",
		                      proof_hashes_json(p), "verified", 1, "key_pinned", cp.pinned);
		j = NULL;
		r = json_print(d, JSON_INDENT(2)) == 0 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	/* The exact bytes: the entry is canonical JSON without raw control
	 * characters; a hostile daemon's are filtered all the same. */
	{
		char *s = strndup((const char *)e.data[0], e.len[0]);
		if (s == NULL) {
			errmsg("out of memory");
			r = EXIT_FAILED;
			goto out;
		}
		put_safe(stdout, s, 0);
		free(s);
	}
	{
		json_t *t = json_object_get(j, "time");
		char when[32];
		iso_time(json_is_integer(t) ? json_integer_value(t) / 1000 : 0, when);
		printf("\nentry %llu (%s) included in the checkpoint of %llu entries (root %s): "
		       "verified (%zu proof hashes)%s\n",
		       (unsigned long long)index, when, (unsigned long long)cp.size, root,
		       p->n_hashes, pin_note(&cp));
	}
	r = EXIT_OK;
out:
	json_decref(j);
	qsc_free(p);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/*
 * The root of the tree of `size` entries (< cp->size), proven: recompute it
 * from the entries and check a consistency proof from it to the signed
 * checkpoint, so a root only the daemon vouches for is never used.
 */
static int
proven_root(const struct globals *g, qsc_client *c, const struct checkpoint *cp, uint64_t size,
            qs_hash out)
{
	struct entries e = {0};
	Qsign__V1__ProofResponse *p = NULL;
	qs_hash path[QS_MAX_MERKLE_PATH];
	int r;

	if ((r = fetch_entries(g, c, 0, size, &e)) != EXIT_OK)
		goto out;
	if (qs_merkle_root_of(e.leaf, e.n, out) != 0) {
		errmsg("%s", qs_errdetail());
		r = EXIT_FAILED;
		goto out;
	}
	if ((r = qsc_audit_consistency(c, size, cp->size, &p)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	for (size_t i = 0; i < p->n_hashes; i++)
		memcpy(path[i], p->hashes[i].data, sizeof(qs_hash));
	if (qs_merkle_consistency_verify(size, cp->size, out, cp->root, path, p->n_hashes) != 0) {
		errmsg("the first %llu entries are not a prefix of the checkpoint's tree (%s)",
		       (unsigned long long)size, qs_errdetail());
		r = EXIT_FAILED;
		goto out;
	}
	r = EXIT_OK;
out:
	qsc_free(p);
	entries_free(&e);
	return r;
}

static int
proof_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	Qsign__V1__ProofResponse *p = NULL;
	qsc_client *c = NULL;
	uint64_t index, size;
	qs_hash root;
	char leaf_hex[65], root_hex[65];
	int r;

	if ((r = audit_opts(argc, argv, g, proof_usage, "KZ", 1, &o)) >= 0)
		return r;
	if (parse_u64("INDEX", argv[optind], &index) != 0)
		return EXIT_USAGE;
	if (o.has_size && index >= o.size) {
		errmsg("entry %llu is not in a tree of %llu entries", (unsigned long long)index,
		       (unsigned long long)o.size);
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	size = o.has_size ? o.size : cp.size;
	if (size > cp.size || index >= size) {
		errmsg("%s: the checkpoint covers %llu entries",
		       size > cp.size ? "--size is past the log" : "no such entry",
		       (unsigned long long)cp.size);
		r = EXIT_FAILED;
		goto out;
	}
	if (size == cp.size)
		memcpy(root, cp.root, sizeof(root));
	else if ((r = proven_root(g, c, &cp, size, root)) != EXIT_OK)
		goto out;
	if ((r = fetch_entries(g, c, index, index + 1, &e)) != EXIT_OK ||
	    (r = prove_inclusion(g, c, index, size, e.leaf[0], root, &p)) != EXIT_OK)
		goto out;
	hex_into(e.leaf[0], 32, leaf_hex);
	hex_into(root, 32, root_hex);
	if (g->json) {
		json_t *j = json_pack("{s:I, s:I, s:s, s:o, s:s, s:b, s:b}", "index",
		                      (json_int_t)index, "tree_size", (json_int_t)size, "leaf_hash",
		                      leaf_hex, "hashes", proof_hashes_json(p), "root", root_hex,
		                      "verified", 1, "key_pinned", cp.pinned);
		r = json_print(j, JSON_INDENT(2)) == 0 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	printf("entry      %llu\ntree size  %llu\nleaf hash  %s\n", (unsigned long long)index,
	       (unsigned long long)size, leaf_hex);
	for (size_t i = 0; i < p->n_hashes; i++) {
		char h[65];
		hex_into(p->hashes[i].data, 32, h);
		printf("%-10s %s\n", i == 0 ? "path" : "", h);
	}
	printf("root       %s\nverified%s\n", root_hex, pin_note(&cp));
	r = EXIT_OK;
out:
	qsc_free(p);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ verify state */

/*
 * The state of `audit verify`: per log (origin), the last checkpoint
 * verified and, beside it, the leaf hashes of that log, so that an older
 * export can later be checked to be a prefix of what was seen.
 *
 * STATE is a JSON file {"logs": {ORIGIN: {size, root, log_key_sha256,
 * verified_at}}} (a file of the older, one-log form is read as well); the
 * leaf hashes of ORIGIN are STATE.<16 hex of SHA-256(ORIGIN)>.leaves, 32
 * bytes each, checked against the remembered root before they are used.
 */
struct vstate {
	int present;
	uint64_t size;
	qs_hash root;
	char key_sha256[65];
	char verified_at[32];
	qs_hash *leaves; /* size hashes, or NULL when not remembered */
};

/* The default state file: $XDG_STATE_HOME/qsign/audit-state.json, else
 * ~/.local/state/qsign/audit-state.json. NULL after saying why. */
static char *
default_state_path(void)
{
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	char *p = NULL;

	/* The XDG rule: a relative XDG_STATE_HOME is ignored. */
	if (x != NULL && x[0] == '/') {
		if (asprintf(&p, "%s/qsign/audit-state.json", x) < 0)
			p = NULL;
	} else if (h != NULL && h[0] == '/') {
		if (asprintf(&p, "%s/.local/state/qsign/audit-state.json", h) < 0)
			p = NULL;
	} else {
		errmsg("no state directory: set XDG_STATE_HOME or HOME, or give --state FILE "
		       "(or --no-state)");
		return NULL;
	}
	if (p == NULL)
		errmsg("out of memory");
	return p;
}

/* mkdir -p of the directory holding path (mode 0700 for what we create). */
static int
make_parent_dirs(const char *path)
{
	char *d = strdup(path);
	int r = -1;

	if (d == NULL) {
		errmsg("out of memory");
		return -1;
	}
	for (char *p = d + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(d, 0700) != 0 && errno != EEXIST) {
			errmsg("state directory %s: %s", d, strerror(errno));
			goto out;
		}
		*p = '/';
	}
	r = 0;
out:
	free(d);
	return r;
}

/* The state document of path ({"logs": {}} when there is none yet). */
static int
load_state_doc(const char *path, json_t **out)
{
	json_error_t err;
	json_t *j, *logs;
	const char *origin;

	*out = NULL;
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		*out = json_pack("{s:{}}", "logs");
		return *out != NULL ? 0 : -1;
	}
	if ((j = json_load_file(path, JSON_REJECT_DUPLICATES, &err)) == NULL ||
	    !json_is_object(j)) {
		errmsg("state file %s: %s (move it away to start over)", path,
		       j == NULL ? err.text : "not a JSON object");
		json_decref(j);
		return -1;
	}
	/* The one-log form of earlier versions: {origin, size, root, ...}. */
	if ((origin = json_string_value(json_object_get(j, "origin"))) != NULL) {
		json_t *doc = json_pack("{s:{s:O}}", "logs", origin, j);
		json_decref(j);
		j = doc;
	}
	if (j == NULL || !json_is_object(logs = json_object_get(j, "logs"))) {
		errmsg("state file %s is malformed (move it away to start over)", path);
		json_decref(j);
		return -1;
	}
	*out = j;
	return 0;
}

static char *
leaves_path(const char *state, const char *origin)
{
	uint8_t dg[32];
	char hx[65], *p = NULL;

	qs_sha256((const uint8_t *)origin, strlen(origin), dg);
	hex_into(dg, 32, hx);
	if (asprintf(&p, "%s.%.16s.leaves", state, hx) < 0) {
		errmsg("out of memory");
		return NULL;
	}
	return p;
}

/* Read the leaf hashes remembered for s (NULL if absent or not the log
 * of s's root: they only ever help, never decide alone). */
static void
load_leaves(const char *path, struct vstate *s)
{
	struct stat sb;
	qs_hash root, *l = NULL;
	FILE *f = NULL;

	if (path == NULL || stat(path, &sb) != 0)
		return;
	if ((uint64_t)sb.st_size != s->size * sizeof(qs_hash) || s->size == 0 ||
	    (l = malloc(s->size * sizeof(qs_hash))) == NULL || (f = fopen(path, "rbe")) == NULL ||
	    fread(l, sizeof(qs_hash), s->size, f) != s->size ||
	    qs_merkle_root_of((const qs_hash *)l, s->size, root) != 0 ||
	    memcmp(root, s->root, sizeof(root)) != 0) {
		errmsg("warning: %s does not hold the entries of the remembered checkpoint; "
		       "ignored",
		       path);
		free(l);
		l = NULL;
	}
	if (f != NULL)
		fclose(f);
	s->leaves = l;
}

/* The remembered checkpoint of origin in doc (s->present 0 if none). */
static int
state_get(json_t *doc, const char *state_path, const char *origin, struct vstate *s)
{
	json_t *j = json_object_get(json_object_get(doc, "logs"), origin), *size;
	const char *root, *key, *at;
	size_t n = 0;
	char *lp;

	memset(s, 0, sizeof(*s));
	if (j == NULL)
		return 0;
	root = json_string_value(json_object_get(j, "root"));
	key = json_string_value(json_object_get(j, "log_key_sha256"));
	at = json_string_value(json_object_get(j, "verified_at"));
	size = json_object_get(j, "size");
	if (root == NULL || strlen(root) != 64 || qs_unhex(root, s->root, 32, &n) != 0 || n != 32 ||
	    key == NULL || strlen(key) != 64 || !json_is_integer(size) ||
	    json_integer_value(size) < 0) {
		errmsg("state file %s is malformed for the log %s (move it away to start over)",
		       state_path, origin);
		return -1;
	}
	snprintf(s->key_sha256, sizeof(s->key_sha256), "%s", key);
	snprintf(s->verified_at, sizeof(s->verified_at), "%s", at != NULL ? at : "-");
	s->size = (uint64_t)json_integer_value(size);
	s->present = 1;
	if ((lp = leaves_path(state_path, origin)) != NULL)
		load_leaves(lp, s);
	free(lp);
	return 0;
}

/* Remember cp (and the n leaf hashes of its entries) as the log's latest
 * verified checkpoint in doc and on disk. */
static int
save_state(const char *path, json_t *doc, const struct checkpoint *cp, const qs_hash *leaves,
           uint64_t n, const char *now)
{
	char root[65], *text = NULL, *lp = NULL;
	int r = -1;

	hex_into(cp->root, 32, root);
	if (json_object_set_new(json_object_get(doc, "logs"), cp->origin,
	                        json_pack("{s:I, s:s, s:s, s:s}", "size", (json_int_t)cp->size,
	                                  "root", root, "log_key_sha256", cp->key_sha256,
	                                  "verified_at", now)) != 0 ||
	    (text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL ||
	    (lp = leaves_path(path, cp->origin)) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	if (make_parent_dirs(path) != 0)
		goto out;
	/* Leaves first: a crash in between leaves leaves that do not match the
	 * remembered root, which load_leaves ignores. */
	if (qs_write_atomic(lp, leaves, n * sizeof(qs_hash), 0600) != 0 ||
	    qs_write_atomic(path, text, strlen(text), 0600) != 0) {
		errmsg("%s", qs_errdetail());
		goto out;
	}
	r = 0;
out:
	free(text);
	free(lp);
	return r;
}

/* ------------------------------------------------------------ export */

static int
write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = NULL;
	FILE *f = NULL;
	int r = -1;

	if (asprintf(&path, "%s/%s", dir, name) < 0) {
		errmsg("out of memory");
		return -1;
	}
	if ((f = fopen(path, "wbe")) == NULL || fwrite(data, 1, len, f) != len || fflush(f) != 0) {
		errmsg("%s: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (f != NULL && fclose(f) != 0 && r == 0) {
		errmsg("%s: %s", path, strerror(errno));
		r = -1;
	}
	free(path);
	return r;
}

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Entries of e with index >= from as JSON lines to f. Each line is
 * exactly the leaf bytes, which canonical entries guarantee hold no
 * newline. */
static int
write_lines(FILE *f, const struct entries *e, uint64_t from)
{
	for (uint64_t i = from > e->first ? from : e->first; i < e->first + e->n; i++) {
		const uint8_t *d = e->data[i - e->first];
		size_t len = e->len[i - e->first];
		if (memchr(d, '\n', len) != NULL) {
			errmsg("entry %llu contains a newline: it cannot be one JSON line",
			       (unsigned long long)i);
			return -1;
		}
		if (fwrite(d, 1, len, f) != len || fputc('\n', f) == EOF)
			return -1;
	}
	return 0;
}

/*
 * The leaf hashes of entries [0, want) known without asking the daemon:
 * those `audit verify` remembered for this log (same key, at least want
 * entries). NULL if there are none (then everything is fetched).
 */
static qs_hash *
remembered_leaves(const struct audit_opts *o, const struct checkpoint *cp, uint64_t want,
                  char *from_what, size_t cap)
{
	char *path_buf = NULL;
	const char *path = o->state;
	json_t *doc = NULL;
	struct vstate st = {0};
	qs_hash *l = NULL;

	if (o->no_state || want == 0)
		return NULL;
	if (path == NULL && (path = path_buf = default_state_path()) == NULL)
		return NULL;
	if (load_state_doc(path, &doc) == 0 && state_get(doc, path, cp->origin, &st) == 0 &&
	    st.present && st.leaves != NULL && strcmp(st.key_sha256, cp->key_sha256) == 0 &&
	    st.size >= want && st.size <= cp->size) {
		l = st.leaves;
		st.leaves = NULL;
		snprintf(from_what, cap, "the log verified on %s (%s)", st.verified_at, path);
	}
	free(st.leaves);
	json_decref(doc);
	free(path_buf);
	return l;
}

static int
export_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0}, prev = {0};
	qsc_client *c = NULL;
	FILE *f = NULL;
	char *path = NULL, *tmp = NULL, *origin_line = NULL, known_from[320] = "";
	int dir_mode = 0, r;
	qs_hash root, *known = NULL, *all = NULL, *remembered = NULL;
	uint64_t have = 0; /* entries [0, have) are known here; the rest is fetched */
	struct stat st;

	if ((r = audit_opts(argc, argv, g, export_usage, "KFoSN", 0, &o)) >= 0)
		return r;
	if (o.out != NULL && o.out[0] == '\0') {
		errmsg("-o needs a file or directory name");
		return EXIT_USAGE;
	}
	if (o.out != NULL && strcmp(o.out, "-") != 0 &&
	    ((stat(o.out, &st) == 0 && S_ISDIR(st.st_mode)) || !ends_with(o.out, ".jsonl")))
		dir_mode = 1;
	if (dir_mode && (asprintf(&path, "%s/%s", o.out, EXPORT_ENTRIES) < 0 ||
	                 asprintf(&tmp, "%s/%s.tmp", o.out, EXPORT_ENTRIES) < 0)) {
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		goto out;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	r = EXIT_FAILED;
	if (o.from > cp.size) {
		errmsg("--from %llu is past the log: the checkpoint covers %llu entries",
		       (unsigned long long)o.from, (unsigned long long)cp.size);
		goto out;
	}
	/* What is known already, so that only the new entries are fetched:
	 * an earlier export in DIR, or the log `audit verify` remembered. */
	if (dir_mode && !o.has_from && access(path, F_OK) == 0) {
		char *origin = NULL;
		size_t origin_len = 0;
		if (read_export_entries(o.out, &prev) != 0)
			goto out;
		if (read_export_file(o.out, EXPORT_ORIGIN, QS_MAX_ORIGIN + 1, &origin,
		                     &origin_len) == 0 &&
		    (origin_len == 0 || strncmp(origin, cp.origin, strlen(cp.origin)) != 0 ||
		     strcspn(origin + strlen(cp.origin), "\n") != 0)) {
			errmsg("%s is an export of another log (origin %.*s): not updated", o.out,
			       (int)strcspn(origin, "\n"), origin);
			free(origin);
			goto out;
		}
		free(origin);
		if (prev.n > cp.size) {
			errmsg("%s holds %llu entries, more than the log's %llu: not updated (run "
			       "`%s audit verify --offline %s`, then `%s audit verify`)",
			       o.out, (unsigned long long)prev.n, (unsigned long long)cp.size,
			       progname, o.out, progname);
			goto out;
		}
		have = prev.n;
		known = prev.leaf;
		snprintf(known_from, sizeof(known_from), "the earlier export in %s", o.out);
	} else if (!dir_mode && o.from > 0 &&
	           (remembered = remembered_leaves(&o, &cp, o.from, known_from,
	                                           sizeof(known_from))) != NULL) {
		have = o.from;
		known = remembered;
	}
	if ((r = fetch_entries(g, c, have, cp.size, &e)) != EXIT_OK)
		goto out;
	r = EXIT_FAILED;
	/* The known leaves and the fetched ones must make the signed root:
	 * what is written is what the checkpoint covers, not merely what the
	 * daemon sent or what a file held. */
	if ((all = malloc((cp.size + 1) * sizeof(qs_hash))) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	if (have > 0)
		memcpy(all, known, have * sizeof(qs_hash));
	if (e.n > 0)
		memcpy(all + have, e.leaf, e.n * sizeof(qs_hash));
	if (qs_merkle_root_of((const qs_hash *)all, have + e.n, root) != 0) {
		errmsg("%s", qs_errdetail());
		goto out;
	}
	if (have + e.n != cp.size || memcmp(root, cp.root, sizeof(root)) != 0) {
		if (have > 0)
			errmsg("%s and the %llu newer entries the daemon sent do not make its "
			       "signed "
			       "checkpoint: not exported (run `%s audit verify`%s%s)",
			       known_from, (unsigned long long)e.n, progname,
			       prev.n > 0 ? " --offline " : "", prev.n > 0 ? o.out : "");
		else
			errmsg("the entries the daemon sent do not match its signed checkpoint: "
			       "not exported (run `%s audit verify`)",
			       progname);
		goto out;
	}
	if (dir_mode) {
		if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
			errmsg("%s: %s", o.out, strerror(errno));
			goto out;
		}
		if (asprintf(&origin_line, "%s\n", cp.origin) < 0) {
			errmsg("out of memory");
			goto out;
		}
	}
	if (o.out == NULL || strcmp(o.out, "-") == 0) {
		f = stdout;
	} else if ((f = fopen(dir_mode ? tmp : o.out, "we")) == NULL) {
		errmsg("%s: %s", dir_mode ? tmp : o.out, strerror(errno));
		goto out;
	}
	if ((prev.n > 0 && write_lines(f, &prev, 0) != 0) || write_lines(f, &e, o.from) != 0 ||
	    fflush(f) != 0) {
		errmsg("%s: %s", f == stdout ? "stdout" : dir_mode ? tmp : o.out, strerror(errno));
		goto out;
	}
	if (f != stdout) {
		int cr = fclose(f);
		f = NULL;
		if (cr != 0 || (dir_mode && rename(tmp, path) != 0)) {
			errmsg("%s: %s", dir_mode ? path : o.out, strerror(errno));
			goto out;
		}
	}
	if (dir_mode && (write_file(o.out, EXPORT_CHECKPOINT, cp.note, strlen(cp.note)) != 0 ||
	                 write_file(o.out, EXPORT_KEY, cp.pem, strlen(cp.pem)) != 0 ||
	                 write_file(o.out, EXPORT_ORIGIN, origin_line, strlen(origin_line)) != 0))
		goto out;
	if (g->json) {
		json_t *j = checkpoint_json(&cp);
		json_object_set_new(j, "from", json_integer((json_int_t)o.from));
		json_object_set_new(j, "exported", json_integer((json_int_t)(cp.size - o.from)));
		json_object_set_new(j, "fetched", json_integer((json_int_t)e.n));
		json_object_set_new(j, "known", json_integer((json_int_t)have));
		if (o.out != NULL)
			json_object_set_new(j, "out", json_string(o.out));
		json_object_set_new(j, "files",
		                    dir_mode ? json_pack("[s,s,s,s]", EXPORT_ENTRIES,
		                                         EXPORT_CHECKPOINT, EXPORT_KEY,
		                                         EXPORT_ORIGIN)
		                             : json_array());
		/* With the lines on stdout, the JSON summary goes to stderr. */
		if (f == stdout) {
			json_dumpf(j, stderr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			fputc('\n', stderr);
			json_decref(j);
		} else if (json_print(j, JSON_INDENT(2)) != 0) {
			goto out;
		}
	} else {
		char how[400];
		if (have > 0)
			snprintf(how, sizeof(how), "; fetched the %llu new, %llu known from %s",
			         (unsigned long long)e.n, (unsigned long long)have, known_from);
		else
			snprintf(how, sizeof(how), "; fetched all %llu", (unsigned long long)e.n);
		fprintf(stderr,
		        "exported entries %llu..%llu of %llu (checkpoint verified%s)%s%s%s\n",
		        (unsigned long long)o.from, (unsigned long long)cp.size - 1,
		        (unsigned long long)cp.size, pin_note(&cp), dir_mode ? " to " : "",
		        dir_mode ? o.out : "", how);
	}
	r = EXIT_OK;
out:
	if (f != NULL && f != stdout)
		fclose(f);
	if (tmp != NULL && r != EXIT_OK)
		unlink(tmp);
	free(path);
	free(tmp);
	free(origin_line);
	free(all);
	free(remembered);
	entries_free(&prev);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ verify */

/* The checks of the entries are the library's (qsc_audit.h); this is the
 * command around them: checkpoint, state file, output. */

struct vctx {
	unsigned failures;
	json_t *errors; /* messages, for --json */
};

static void
vfail_text(struct vctx *v, const char *text)
{
	if (v->failures < VERIFY_MAX_LISTED) {
		fprintf(stderr, "%s: audit verify: ", progname);
		put_safe(stderr, text, 0);
		fputc('\n', stderr);
		json_array_append_new(v->errors, json_text(text));
	} else if (v->failures == VERIFY_MAX_LISTED) {
		errmsg("audit verify: more failures follow; only the first %d are listed",
		       VERIFY_MAX_LISTED);
	}
	v->failures++;
}

static void __attribute__((format(printf, 2, 3))) vfail(struct vctx *v, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	vfail_text(v, buf);
}

/*
 * What verify_main gathers while the library walks the entries: their
 * leaf hashes (32 bytes an entry: the state remembers them, a root that
 * does not match is located with them, and an older export or log is
 * compared with them) and the entries' problems. These are held back (the
 * first VERIFY_MAX_LISTED, the rest only counted: no more are ever listed)
 * and reported after the root's verdict, in the order the report has
 * always had.
 */
struct vwalk {
	qsc_audit_verifier *ver;
	char *held[VERIFY_MAX_LISTED];
	size_t n_held;
	uint64_t more; /* problems past the held ones */
	qs_hash *leaves;
	uint64_t n_leaves, cap_leaves;
	int nomem;
};

static void
walk_problem(void *arg, const char *msg)
{
	struct vwalk *w = arg;
	char *c;

	if (w->n_held < VERIFY_MAX_LISTED && (c = strdup(msg)) != NULL)
		w->held[w->n_held++] = c;
	else
		w->more++;
}

static void
walk_leaf(void *arg, uint64_t index, const uint8_t hash[QSC_AUDIT_HASH_LEN])
{
	struct vwalk *w = arg;

	(void)index; /* entries arrive in order: index == n_leaves */
	if (w->n_leaves == w->cap_leaves) {
		uint64_t nc = w->cap_leaves == 0 ? 1024 : w->cap_leaves * 2;
		qs_hash *p = realloc(w->leaves, nc * sizeof(qs_hash));
		if (p == NULL) {
			w->nomem = 1;
			return;
		}
		w->leaves = p;
		w->cap_leaves = nc;
	}
	memcpy(w->leaves[w->n_leaves++], hash, sizeof(qs_hash));
}

/* One entry from the daemon to the verifier (fetch_each). */
static int
walk_add(void *arg, const uint8_t *data, size_t len)
{
	struct vwalk *w = arg;

	if (qsc_audit_verifier_add(w->ver, data, len) != 0) {
		errmsg("%s", qs_errdetail());
		return -1;
	}
	if (w->nomem) {
		errmsg("out of memory");
		return -1;
	}
	return 0;
}

/* Report the held problems (after the root's verdict). */
static void
walk_report(struct vctx *v, const struct vwalk *w)
{
	for (size_t i = 0; i < w->n_held; i++)
		vfail_text(v, w->held[i]);
	/* Past VERIFY_MAX_LISTED they are only counted. */
	for (uint64_t i = 0; i < w->more; i++)
		vfail_text(v, "");
}

static void
walk_free(struct vwalk *w)
{
	for (size_t i = 0; i < w->n_held; i++)
		free(w->held[i]);
	free(w->leaves);
	qsc_audit_verifier_free(w->ver);
	memset(w, 0, sizeof(*w));
}

/*
 * Which entry breaks the root? With the daemon at hand: the shortest
 * prefix of our entries that is not a prefix of the signed tree, found by
 * bisection over consistency proofs (each proof is checked, so the answer
 * does not depend on trusting the daemon). 0 if found (*bad set).
 */
static int
locate_bad_entry(qsc_client *c, const qs_hash *leaves, uint64_t n, const struct checkpoint *cp,
                 uint64_t *bad)
{
	/* lo: longest prefix known to be consistent; hi: shortest known not
	 * to be (the whole log, whose root did not match). */
	uint64_t lo = 0, hi = cp->size;

	if (n != cp->size || hi == 0)
		return -1;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		Qsign__V1__ProofResponse *p = NULL;
		qs_hash path[QS_MAX_MERKLE_PATH], root;
		int ok;

		if (qs_merkle_root_of(leaves, mid, root) != 0 ||
		    qsc_audit_consistency(c, mid, cp->size, &p) != 0)
			return -1;
		for (size_t i = 0; i < p->n_hashes; i++)
			memcpy(path[i], p->hashes[i].data, sizeof(qs_hash));
		ok = qs_merkle_consistency_verify(mid, cp->size, root, cp->root, path,
		                                  p->n_hashes) == 0;
		qsc_free(p);
		if (ok)
			lo = mid;
		else
			hi = mid;
	}
	*bad = hi - 1;
	return 0;
}

/* Step 4 of verify: the checkpoint against the one remembered in the state
 * (st present): the same root at the same size, a consistency proof (online)
 * or the remembered prefix (offline) for a larger log, a prefix of the
 * remembered log for an older export; a smaller live log is a rollback.
 * Failures go to v; *state_ok, *older and prev_line (cap bytes) say how it
 * compared. 0, or EXIT_TRANSPORT when the daemon went away. */
static int
compare_with_state(const struct globals *g, qsc_client *c, struct vctx *v,
                   const struct checkpoint *cp, const qs_hash *leaves, const struct vstate *st,
                   int root_ok, int *state_ok, int *older, char *prev_line, size_t cap)
{
	if (cp->size < st->size && c == NULL) {
		/* An export made before the last verification: fine if it
		 * is a prefix of the log seen then, a rewrite if not. */
		*older = 1;
		if (!root_ok) {
			/* Failures above say why; nothing to compare. */
		} else if (st->leaves == NULL) {
			snprintf(prev_line, cap,
			         "an older export than the log of size %llu seen on %s (not "
			         "compared: its entries were not remembered)",
			         (unsigned long long)st->size, st->verified_at);
		} else {
			uint64_t i = 0;
			while (i < cp->size && memcmp(leaves[i], st->leaves[i], 32) == 0)
				i++;
			if (i == cp->size) {
				*state_ok = 1;
				snprintf(prev_line, cap,
				         "an older export: a prefix of the log of size %llu "
				         "seen on %s",
				         (unsigned long long)st->size, st->verified_at);
			} else {
				vfail(v,
				      "log rewritten: entry %llu of this export is not the "
				      "entry %llu of the log of size %llu seen on %s",
				      (unsigned long long)i, (unsigned long long)i,
				      (unsigned long long)st->size, st->verified_at);
			}
		}
	} else if (cp->size < st->size) {
		vfail(v,
		      "log rolled back: checkpoint size %llu < remembered %llu (seen on "
		      "%s)",
		      (unsigned long long)cp->size, (unsigned long long)st->size, st->verified_at);
	} else if (cp->size == st->size) {
		if (memcmp(cp->root, st->root, sizeof(qs_hash)) != 0)
			vfail(v,
			      "log rewritten: the root at size %llu is not the one seen on "
			      "%s",
			      (unsigned long long)cp->size, st->verified_at);
		else
			*state_ok = 1;
	} else if (c != NULL) {
		Qsign__V1__ProofResponse *p = NULL;
		qs_hash path[QS_MAX_MERKLE_PATH];
		int pr = qsc_audit_consistency(c, st->size, cp->size, &p);
		if (pr != 0) {
			if (report(g, c, pr) == EXIT_TRANSPORT)
				return EXIT_TRANSPORT;
			vfail(v, "no consistency proof from size %llu to %llu",
			      (unsigned long long)st->size, (unsigned long long)cp->size);
		} else {
			for (size_t i = 0; i < p->n_hashes; i++)
				memcpy(path[i], p->hashes[i].data, sizeof(qs_hash));
			if (qs_merkle_consistency_verify(st->size, cp->size, st->root, cp->root,
			                                 path, p->n_hashes) != 0)
				vfail(v,
				      "log rolled back or rewritten: the checkpoint of "
				      "size "
				      "%llu is not consistent with size %llu seen on %s",
				      (unsigned long long)cp->size, (unsigned long long)st->size,
				      st->verified_at);
			else
				*state_ok = 1;
			qsc_free(p);
		}
	} else {
		/* Offline the old tree is the first st->size entries. */
		qs_hash old;
		if (root_ok && qs_merkle_root_of(leaves, st->size, old) == 0 &&
		    memcmp(old, st->root, sizeof(old)) == 0)
			*state_ok = 1;
		else
			vfail(v,
			      "log rolled back or rewritten: its first %llu entries are "
			      "not "
			      "the log of size %llu seen on %s",
			      (unsigned long long)st->size, (unsigned long long)st->size,
			      st->verified_at);
	}
	if (*state_ok && !*older)
		snprintf(prev_line, cap, "consistent with size %llu seen on %s",
		         (unsigned long long)st->size, st->verified_at);
	return 0;
}

/* Step 1 of verify: the checkpoint, and the entries it covers through the
 * verifier w->ver, from the export o->offline (read sequentially, never
 * held) or the daemon (*c, connected here). 0; -1 after a failure of the
 * log itself (in v: the summary follows); else the exit code (the daemon
 * refused or could not be reached: nothing about the log). */
static int
load_log(struct globals *g, const struct audit_opts *o, struct vctx *v, qsc_client **c,
         struct checkpoint *cp, struct vwalk *w)
{
	char *path = NULL;
	int r;

	if (o->offline != NULL) {
		r = read_export_checkpoint(o->offline, o->log_key, cp);
		if (r == 0 && asprintf(&path, "%s/%s", o->offline, EXPORT_ENTRIES) < 0) {
			errmsg("out of memory");
			path = NULL;
			r = -1;
		}
		if (r == 0 && (qsc_audit_verify_jsonl(w->ver, path, NULL) != 0 || w->nomem)) {
			errmsg("%s", w->nomem ? "out of memory" : qs_errdetail());
			r = -1;
		}
		free(path);
		if (r != 0) {
			vfail(v,
			      "the export in %s cannot be read or its checkpoint does not verify",
			      o->offline);
			return -1;
		}
		return 0;
	}
	if ((r = connect_client(g, c)) != EXIT_OK)
		return r;
	/* A refusal by the daemon (the caller may not read the log) was
	 * reported as such: it says nothing about the log itself. */
	if ((r = get_checkpoint(g, *c, o->log_key, cp)) != EXIT_OK) {
		if (r != EXIT_FAILED || qsc_last_status(*c) > 0)
			return r;
		vfail(v, "the checkpoint does not verify");
		return -1;
	}
	if ((r = fetch_each(g, *c, 0, cp->size, walk_add, w)) != EXIT_OK) {
		if (r != EXIT_FAILED || qsc_last_status(*c) > 0)
			return r;
		vfail(v, "cannot fetch the entries the checkpoint covers");
		return -1;
	}
	return 0;
}

static int
verify_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct vstate st = {0};
	struct vwalk w = {0};
	struct qsc_audit_callbacks cb = {walk_problem, walk_leaf, &w};
	struct qsc_audit_totals tot = {0};
	struct vctx v = {0};
	qsc_client *c = NULL;
	char *state_buf = NULL, root_hex[65], now[32], prev_line[256] = "";
	const char *state_path = NULL;
	json_t *doc = NULL;
	qs_hash root;
	int r, root_ok = 0, cp_ok = 0, state_ok = 0, older = 0;

	if ((r = audit_opts(argc, argv, g, verify_usage, "KSON", 0, &o)) >= 0)
		return r;
	if (!o.no_state && (state_path = o.state) == NULL) {
		if ((state_buf = default_state_path()) == NULL)
			return EXIT_USAGE;
		state_path = state_buf;
	}
	if ((v.errors = json_array()) == NULL || qsc_audit_verifier_new(&cb, &w.ver) != 0) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	if (state_path != NULL && load_state_doc(state_path, &doc) != 0) {
		r = EXIT_FAILED;
		goto out;
	}

	/* 1. The checkpoint and the entries it covers. */
	if ((r = load_log(g, &o, &v, &c, &cp, &w)) > 0)
		goto out;
	if (r < 0)
		goto summary;
	cp_ok = 1;
	qsc_audit_verifier_totals(w.ver, &tot);
	if (doc != NULL && state_get(doc, state_path, cp.origin, &st) != 0) {
		r = EXIT_FAILED;
		goto out;
	}
	if (st.present && strcmp(st.key_sha256, cp.key_sha256) != 0)
		vfail(&v,
		      "the log key changed: SHA256:%s now, SHA256:%s when last verified on %s "
		      "(if the key was rotated on purpose, pin the new one and move %s away)",
		      cp.key_sha256, st.key_sha256, st.verified_at, state_path);

	/* 2. The entries hash to the signed root. */
	if (tot.entries != cp.size)
		vfail(&v, "%llu entries, but the checkpoint covers %llu: entries were %s",
		      (unsigned long long)tot.entries, (unsigned long long)cp.size,
		      tot.entries < cp.size ? "removed" : "added");
	if (qsc_audit_verifier_root(w.ver, root) != 0) {
		vfail(&v, "%s", qs_errdetail());
	} else if (tot.entries == cp.size && memcmp(root, cp.root, sizeof(root)) == 0) {
		root_ok = 1;
	} else if (tot.entries == cp.size) {
		uint64_t bad;
		if (c != NULL && locate_bad_entry(c, w.leaves, w.n_leaves, &cp, &bad) == 0)
			vfail(&v, "entry %llu does not match the checkpoint root",
			      (unsigned long long)bad);
		else
			vfail(&v,
			      "the entries do not match the checkpoint root (size %llu): an entry "
			      "was modified, removed, added or reordered",
			      (unsigned long long)cp.size);
	}

	/* 3. Every entry: JSON, seq, time; approvals re-verified (found by
	 * the library while the entries were read, reported here). */
	walk_report(&v, &w);

	/* 4. Consistency with what we saw before. */
	if (st.present && (r = compare_with_state(g, c, &v, &cp, w.leaves, &st, root_ok, &state_ok,
	                                          &older, prev_line, sizeof(prev_line))) != 0)
		goto out;

	/* 5. Remember this checkpoint for next time (never an older one: the
	 * state only moves forward). Failing to write it is said, but the log
	 * verified all the same. */
	iso_time((int64_t)time(NULL), now);
	if (state_path == NULL)
		snprintf(prev_line, sizeof(prev_line),
		         "no previous checkpoint compared (--no-state)");
	else if (v.failures == 0 && root_ok && !older) {
		if (!st.present)
			snprintf(prev_line, sizeof(prev_line), "first verification: recorded in %s",
			         state_path);
		if (save_state(state_path, doc, &cp, w.leaves, w.n_leaves, now) != 0)
			errmsg("warning: the verified checkpoint could not be recorded in %s: the "
			       "next verification cannot compare with this one",
			       state_path);
	}

summary:
	hex_into(cp.root, 32, root_hex);
	r = v.failures == 0 ? EXIT_OK : EXIT_FAILED;
	if (g->json) {
		json_t *j = json_pack(
		        "{s:b, s:s, s:I, s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:s?, s:o}", "ok",
		        v.failures == 0, "origin", cp.origin, "size", (json_int_t)cp.size, "root",
		        root_hex, "log_key_sha256", cp.key_sha256, "key_pinned", cp.pinned,
		        "checkpoint_verified", cp_ok, "root_verified", root_ok,
		        "approvals_verified", (json_int_t)tot.approvals, "rejections_verified",
		        (json_int_t)tot.rejections, "state_file", state_path, "errors", v.errors);
		v.errors = NULL;
		if (j != NULL && st.present)
			json_object_set_new(j, "previous",
			                    json_pack("{s:I, s:s, s:b, s:b, s:b}", "size",
			                              (json_int_t)st.size, "verified_at",
			                              st.verified_at, "consistent", state_ok,
			                              "older_export", older, "entries_compared",
			                              older && st.leaves != NULL));
		if (json_print(j, JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	} else if (v.failures == 0) {
		char rej[64] = "";
		if (tot.rejections)
			snprintf(rej, sizeof(rej), " and %llu rejections",
			         (unsigned long long)tot.rejections);
		printf("%llu entries, root %s, checkpoint OK (log key SHA256:%.16s...%s), %s, "
		       "%llu approvals%s re-verified\n",
		       (unsigned long long)cp.size, root_hex, cp.key_sha256, pin_note(&cp),
		       prev_line, (unsigned long long)tot.approvals, rej);
	} else {
		fprintf(stderr, "%s: audit verify FAILED: %u problem%s (listed above)\n", progname,
		        v.failures, v.failures == 1 ? "" : "s");
	}
out:
	json_decref(v.errors);
	json_decref(doc);
	free(st.leaves);
	walk_free(&w);
	checkpoint_free(&cp);
	qsc_close(c);
	free(state_buf);
	return r;
}

/* ------------------------------------------------------------ group */

const struct command audit_commands[] = {
        {"checkpoint", checkpoint_main, checkpoint_usage, "the latest signed checkpoint, verified",
         NULL},
        {"tail", tail_main, tail_usage, "the last entries, one line each (logins hidden)", NULL},
        {"search", search_main, search_usage,
         "entries by event, principal, role, key, request, time", NULL},
        {"show", show_main, show_usage, "one entry and its verified inclusion proof", NULL},
        {"proof", proof_main, proof_usage, "the inclusion proof of an entry", NULL},
        {"export", export_main, export_usage, "entries as JSON lines (+ checkpoint and key)", NULL},
        {"verify", verify_main, verify_usage, "verify the whole log (online or --offline DIR)",
         NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

void
audit_usage(FILE *f)
{
	group_usage(f, "audit", audit_commands, "-p auditor audit verify --log-key log-key.pem");
}

int
audit_main(int argc, char **argv, struct globals *g)
{
	return group_main(argc, argv, g, audit_commands, audit_usage);
}
