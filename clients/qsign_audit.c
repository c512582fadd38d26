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
#include <errno.h>
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

#include "merkle.h"
#include "note.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"

/* `audit tail` without -n. */
#define TAIL_DEFAULT 10
/* Failures `audit verify` lists before it only counts them. */
#define VERIFY_MAX_LISTED 20
/* Digest hex shown in one-line summaries. */
#define SUMMARY_HEX 16

/* Files of an export directory (README.md, "audit export"). */
#define EXPORT_ENTRIES "entries.jsonl"
#define EXPORT_CHECKPOINT "checkpoint"
#define EXPORT_KEY "log-key.pem"
#define EXPORT_ORIGIN "origin"

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

/* The daemon's latest checkpoint, verified with the key in key_file (NULL:
 * the key the daemon states). Returns an exit code. */
static int
get_checkpoint(const struct globals *g, qsc_client *c, const char *key_file, struct checkpoint *cp)
{
	Qsign__V1__CheckpointResponse *resp = NULL;
	uint8_t *pin = NULL;
	size_t pin_len = 0;
	int r;

	memset(cp, 0, sizeof(*cp));
	if (key_file != NULL && read_input(key_file, QSC_MAX_LOG_KEY_PEM, &pin, &pin_len) != 0)
		return EXIT_USAGE;
	if ((r = qsc_audit_checkpoint(c, &resp)) != 0) {
		free(pin);
		return report(g, c, r);
	}
	if (pin != NULL)
		r = open_checkpoint(resp->note, strlen(resp->note), resp->origin, (char *)pin,
		                    pin_len, 1, cp);
	else
		r = open_checkpoint(resp->note, strlen(resp->note), resp->origin, resp->public_pem,
		                    strlen(resp->public_pem), 0, cp);
	qsc_free(resp);
	free(pin);
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

/* Entries [start, end) from the daemon, in chunks; each must be there. */
static int
fetch_entries(const struct globals *g, qsc_client *c, uint64_t start, uint64_t end,
              struct entries *e)
{
	Qsign__V1__EntriesResponse *resp = NULL;
	int r;

	memset(e, 0, sizeof(*e));
	e->first = start;
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
			uint8_t *d = malloc(resp->entries[i].len);
			if (d == NULL) {
				errmsg("out of memory");
				qsc_free(resp);
				return EXIT_FAILED;
			}
			memcpy(d, resp->entries[i].data, resp->entries[i].len);
			if (entries_push(e, d, resp->entries[i].len) != 0) {
				free(d);
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

/* The checkpoint of an export directory, verified with key_file (NULL:
 * DIR/log-key.pem, not pinned). */
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
	if (key_file != NULL) {
		uint8_t *b = NULL;
		if (read_input(key_file, QSC_MAX_LOG_KEY_PEM, &b, &pem_len) != 0)
			goto out;
		pem = (char *)b;
	} else if (read_export_file(dir, EXPORT_KEY, QSC_MAX_LOG_KEY_PEM, &pem, &pem_len) != 0) {
		goto out;
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

/* A one-line summary of an entry: SEQ TIME EVENT DETAILS (filtered). */
static void
put_entry_line(uint64_t i, json_t *o)
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
	else if (strcmp(ev, "request.signed") == 0)
		snprintf(buf, sizeof(buf), "%s role=%s", str_field(o, "id"), str_field(o, "role"));
	else if (strcmp(ev, "policy") == 0)
		snprintf(buf, sizeof(buf), "version %lld%s%s",
		         (long long)json_integer_value(json_object_get(o, "version")),
		         json_object_get(o, "request") ? " by request " : "",
		         str_field(o, "request"));
	else if (strcmp(ev, "refusal") == 0)
		snprintf(buf, sizeof(buf), "%s %s %s", str_field(o, "principal"),
		         str_field(o, "method"), str_field(o, "status"));
	else if (json_object_get(o, "principal") != NULL)
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

/* ------------------------------------------------------------ usage */

static void
checkpoint_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit checkpoint [--log-key FILE] [--json]\n"
	        "  Print the log's latest signed checkpoint (C2SP signed note: origin, size,\n"
	        "  root) after verifying its signature with the log key pinned by --log-key,\n"
	        "  or else with the key the daemon states (then it says \"key not pinned\").\n"
	        "example: %s -p auditor audit checkpoint --log-key log-key.pem\n",
	        progname, progname);
}

static void
tail_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit tail [-n N] [--log-key FILE] [--json]\n"
	        "  The last N (default %d) entries of the verified checkpoint, one line each:\n"
	        "  index, time (UTC), event, who or what. `audit verify` checks them.\n"
	        "example: %s -p auditor audit tail -n 20\n",
	        progname, TAIL_DEFAULT, progname);
}

static void
show_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit show INDEX [--log-key FILE] [--json]\n"
	        "  One entry, exactly as logged (its JSON is the Merkle leaf), and its\n"
	        "  inclusion proof verified against the current signed checkpoint.\n"
	        "example: %s -p auditor audit show 17\n",
	        progname, progname);
}

static void
proof_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit proof INDEX [--size N] [--log-key FILE] "
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
	        "usage: %s [GLOBAL OPTIONS] audit export [--from N] [-o FILE|DIR] [--log-key "
	        "FILE]\n"
	        "           [--json]\n"
	        "  The entries of the verified checkpoint as JSON lines: each line is exactly\n"
	        "  one entry's leaf bytes, so anyone can recompute the tree. Without -o the\n"
	        "  lines go to stdout; -o FILE.jsonl writes them to that file; -o DIR (any\n"
	        "  other name; created if missing) writes DIR/" EXPORT_ENTRIES
	        ", DIR/" EXPORT_CHECKPOINT ",\n"
	        "  DIR/" EXPORT_KEY " and DIR/" EXPORT_ORIGIN
	        ", which `audit verify --offline DIR` checks\n"
	        "  without the daemon. --from N starts at entry N (appending to an earlier\n"
	        "  export); the whole log is fetched and verified all the same.\n"
	        "example: %s -p auditor audit export -o audit-2026-01-31\n",
	        progname, progname);
}

static void
verify_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] audit verify [--log-key FILE] [--state FILE]\n"
	        "           [--offline DIR] [--json]\n"
	        "  Fetch every entry and the checkpoint (or read an export with --offline),\n"
	        "  and check: the checkpoint signature (pinned key, or the stated one: \"key\n"
	        "  not pinned\"); the Merkle root of the entries against it; that entry i is\n"
	        "  JSON with \"seq\": i and times never go back; consistency with the last\n"
	        "  checkpoint verified before (state FILE, default $QSIGN_HOME/audit-state.json,\n"
	        "  updated on success); and every approval statement against the approver's\n"
	        "  key in the policy version the request ran under or a later one in force by\n"
	        "  the vote (a replaced key is replaced for votes too; policies come from the\n"
	        "  log). Exit 0 only if everything verifies; 1 names each failure.\n"
	        "example: %s -p auditor audit verify --log-key log-key.pem\n",
	        progname, progname);
}

/* ------------------------------------------------------------ options */

struct audit_opts {
	const char *log_key;
	const char *state;
	const char *offline;
	const char *out;
	uint64_t n, from, size;
	int has_n, has_size;
};

/* Options common to the audit subcommands; `allowed` lists the letters a
 * subcommand takes. Returns -1 to go on, else the exit code. */
static int
audit_opts(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const char *allowed,
           int nargs, struct audit_opts *o)
{
	enum { O_KEY = 256, O_STATE, O_OFFLINE, O_FROM, O_SIZE };
	static const struct option opts[] = {
	        {"log-key", required_argument, NULL, O_KEY},
	        {"state", required_argument, NULL, O_STATE},
	        {"offline", required_argument, NULL, O_OFFLINE},
	        {"from", required_argument, NULL, O_FROM},
	        {"size", required_argument, NULL, O_SIZE},
	        {"out", required_argument, NULL, 'o'},
	        {"json", no_argument, NULL, 'J'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	/* Letters standing for the long options, to check `allowed`. */
	static const char letters[] = "KSOFZ";
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "n:o:h", opts, NULL)) != -1) {
		char letter = ch >= O_KEY && ch <= O_SIZE ? letters[ch - O_KEY] : (char)ch;
		if (ch != 'h' && ch != 'J' && ch != '?' && strchr(allowed, letter) == NULL) {
			errmsg("audit %s does not take that option", argv[0]);
			usage(stderr);
			return EXIT_USAGE;
		}
		switch (ch) {
		case O_KEY:
			o->log_key = optarg;
			break;
		case O_STATE:
			o->state = optarg;
			break;
		case O_OFFLINE:
			o->offline = optarg;
			break;
		case O_FROM:
			if (parse_u64("--from", optarg, &o->from) != 0)
				return EXIT_USAGE;
			break;
		case O_SIZE:
			if (parse_u64("--size", optarg, &o->size) != 0 || o->size == 0) {
				if (o->size == 0)
					errmsg("--size must be at least 1");
				return EXIT_USAGE;
			}
			o->has_size = 1;
			break;
		case 'n':
			if (parse_u64("-n", optarg, &o->n) != 0)
				return EXIT_USAGE;
			o->has_n = 1;
			break;
		case 'o':
			o->out = optarg;
			break;
		case 'J':
			g->json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != nargs) {
		usage(stderr);
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
	json_t *arr = NULL;
	int r;

	if ((r = audit_opts(argc, argv, g, tail_usage, "Kn", 0, &o)) >= 0)
		return r;
	if (!o.has_n)
		o.n = TAIL_DEFAULT;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	if ((r = fetch_entries(g, c, cp.size > o.n ? cp.size - o.n : 0, cp.size, &e)) != EXIT_OK)
		goto out;
	if (g->json && (arr = json_array()) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	for (uint64_t i = e.first; i < e.first + e.n; i++) {
		json_t *j = parse_entry(&e, i);
		if (j == NULL) {
			r = EXIT_FAILED;
			if (g->json)
				continue;
			printf("%6llu  (not JSON)\n", (unsigned long long)i);
			continue;
		}
		if (g->json)
			json_array_append_new(arr, j);
		else {
			put_entry_line(i, j);
			json_decref(j);
		}
	}
	if (g->json) {
		json_t *j = checkpoint_json(&cp);
		json_object_set_new(j, "entries", arr);
		arr = NULL;
		if (json_print(j, JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	} else {
		fprintf(stderr, "%llu of %llu entries (checkpoint verified%s)\n",
		        (unsigned long long)e.n, (unsigned long long)cp.size, pin_note(&cp));
	}
out:
	json_decref(arr);
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
	printf("\nentry %llu included in the checkpoint of %llu entries (root %s): verified "
	       "(%zu proof hashes)%s\n",
	       (unsigned long long)index, (unsigned long long)cp.size, root, p->n_hashes,
	       pin_note(&cp));
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

/* Entries from `from` as JSON lines to f. Each line is exactly the leaf
 * bytes, which canonical entries guarantee hold no newline. */
static int
write_lines(FILE *f, const struct entries *e, uint64_t from)
{
	for (uint64_t i = from; i < e->n; i++) {
		if (memchr(e->data[i], '\n', e->len[i]) != NULL) {
			errmsg("entry %llu contains a newline: it cannot be one JSON line",
			       (unsigned long long)i);
			return -1;
		}
		if (fwrite(e->data[i], 1, e->len[i], f) != e->len[i] || fputc('\n', f) == EOF)
			return -1;
	}
	return 0;
}

static int
export_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	qsc_client *c = NULL;
	FILE *f = NULL;
	char *path = NULL, *origin_line = NULL;
	int dir_mode = 0, r;
	qs_hash root;
	struct stat st;

	if ((r = audit_opts(argc, argv, g, export_usage, "KFo", 0, &o)) >= 0)
		return r;
	if (o.out != NULL && o.out[0] == '\0') {
		errmsg("-o needs a file or directory name");
		return EXIT_USAGE;
	}
	if (o.out != NULL && strcmp(o.out, "-") != 0 &&
	    ((stat(o.out, &st) == 0 && S_ISDIR(st.st_mode)) || !ends_with(o.out, ".jsonl")))
		dir_mode = 1;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK)
		goto out;
	if (o.from > cp.size) {
		errmsg("--from %llu is past the log: the checkpoint covers %llu entries",
		       (unsigned long long)o.from, (unsigned long long)cp.size);
		r = EXIT_FAILED;
		goto out;
	}
	/* The whole log, so that what is written is what the signed root
	 * covers, not merely what the daemon sent. */
	if ((r = fetch_entries(g, c, 0, cp.size, &e)) != EXIT_OK)
		goto out;
	r = EXIT_FAILED;
	if (qs_merkle_root_of(e.leaf, e.n, root) != 0) {
		errmsg("%s", qs_errdetail());
		goto out;
	}
	if (memcmp(root, cp.root, sizeof(root)) != 0) {
		errmsg("the entries the daemon sent do not match its signed checkpoint: not "
		       "exported (run `%s audit verify`)",
		       progname);
		goto out;
	}
	if (dir_mode) {
		if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
			errmsg("%s: %s", o.out, strerror(errno));
			goto out;
		}
		if (asprintf(&path, "%s/%s", o.out, EXPORT_ENTRIES) < 0 ||
		    asprintf(&origin_line, "%s\n", cp.origin) < 0) {
			errmsg("out of memory");
			goto out;
		}
	}
	if (o.out == NULL || strcmp(o.out, "-") == 0) {
		f = stdout;
	} else if ((f = fopen(dir_mode ? path : o.out, "we")) == NULL) {
		errmsg("%s: %s", dir_mode ? path : o.out, strerror(errno));
		goto out;
	}
	if (write_lines(f, &e, o.from) != 0 || fflush(f) != 0) {
		errmsg("%s: %s", f == stdout ? "stdout" : dir_mode ? path : o.out, strerror(errno));
		goto out;
	}
	if (f != stdout) {
		int cr = fclose(f);
		f = NULL;
		if (cr != 0) {
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
		fprintf(stderr, "exported entries %llu..%llu of %llu (checkpoint verified%s)%s%s\n",
		        (unsigned long long)o.from, (unsigned long long)cp.size - 1,
		        (unsigned long long)cp.size, pin_note(&cp), dir_mode ? " to " : "",
		        dir_mode ? o.out : "");
	}
	r = EXIT_OK;
out:
	if (f != NULL && f != stdout)
		fclose(f);
	free(path);
	free(origin_line);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ verify */

struct vctx {
	unsigned failures;
	json_t *errors; /* messages, for --json */
};

static void __attribute__((format(printf, 2, 3))) vfail(struct vctx *v, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (v->failures < VERIFY_MAX_LISTED) {
		fprintf(stderr, "%s: audit verify: ", progname);
		put_safe(stderr, buf, 0);
		fputc('\n', stderr);
		json_array_append_new(v->errors, json_text(buf));
	} else if (v->failures == VERIFY_MAX_LISTED) {
		errmsg("audit verify: more failures follow; only the first %d are listed",
		       VERIFY_MAX_LISTED);
	}
	v->failures++;
}

/* What the approval checks remember while walking the log. */
struct approvals {
	json_t *policies; /* "version" -> principals object of that policy */
	json_int_t in_force; /* the highest policy version logged so far */
	json_t *requests; /* id -> {policy_version, role, kind, payload_sha256} */
	uint64_t approved, rejected;
};

static void
note_policy(struct vctx *v, struct approvals *a, uint64_t i, json_t *o)
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
	json_object_set(a->policies, key, pr);
	if (json_integer_value(ver) > a->in_force)
		a->in_force = json_integer_value(ver);
	json_decref(pol);
}

static void
note_request(struct vctx *v, struct approvals *a, uint64_t i, json_t *o)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	json_t *rec;

	if (id == NULL || !json_is_integer(json_object_get(o, "policy_version"))) {
		vfail(v, "entry %llu: request.submitted without id or policy_version",
		      (unsigned long long)i);
		return;
	}
	rec = json_pack(
	        "{s:O, s:O, s:O, s:O}", "policy_version", json_object_get(o, "policy_version"),
	        "role", json_object_get(o, "role") ? json_object_get(o, "role") : json_null(),
	        "kind", json_object_get(o, "kind") ? json_object_get(o, "kind") : json_null(),
	        "payload_sha256",
	        json_object_get(o, "payload_sha256") ? json_object_get(o, "payload_sha256")
	                                             : json_null());
	json_object_set_new(a->requests, id, rec);
}

/* Re-verify the approval statement of a request.vote entry. */
static void
check_vote(struct vctx *v, struct approvals *a, uint64_t i, json_t *o)
{
	const char *id = str_field(o, "id"), *who = str_field(o, "approver");
	const char *decision = str_field(o, "decision"), *server = str_field(o, "server");
	const char *role = str_field(o, "role"), *kind = str_field(o, "kind");
	const char *dg_hex = str_field(o, "payload_sha256"), *sig_hex = str_field(o, "signature");
	json_t *req = json_object_get(a->requests, id), *vt = json_object_get(o, "vote_time");
	json_t *principals, *pk_json;
	uint8_t dg[32], sig[QS_MAX_PRINCIPAL_SIG], *stmt = NULL;
	size_t dg_len = 0, sig_len = 0, stmt_len = 0;
	EVP_PKEY *pk = NULL;
	const char *pem;
	char ver[32];
	json_int_t first;
	int approve = strcmp(decision, "approve") == 0, ok = 0, listed = 0;

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
		      approve ? "approval" : "rejection", who, id, (unsigned long long)i);
		return;
	}
	if (strlen(dg_hex) != 64 || qs_unhex(dg_hex, dg, sizeof(dg), &dg_len) != 0 ||
	    dg_len != 32 || strlen(sig_hex) > 2 * sizeof(sig) ||
	    qs_unhex(sig_hex, sig, sizeof(sig), &sig_len) != 0 || sig_len == 0) {
		vfail(v, "entry %llu: vote by %s on request %s has a malformed digest or signature",
		      (unsigned long long)i, who, id);
		return;
	}
	if (qs_stmt_approval(server, id, role, kind, dg, approve, json_integer_value(vt), &stmt,
	                     &stmt_len) != 0) {
		vfail(v, "entry %llu: vote by %s on request %s: %s", (unsigned long long)i, who, id,
		      qs_errdetail());
		return;
	}
	/* The daemon counts a vote signed with the voter's key in the policy
	 * in force when it votes (a key replaced while the request was pending
	 * is replaced for its votes too): any version from the request's own
	 * up to the one in force at this entry. */
	first = json_integer_value(json_object_get(req, "policy_version"));
	snprintf(ver, sizeof(ver), "%lld", (long long)first);
	if (json_object_get(a->policies, ver) == NULL) {
		vfail(v,
		      "%s by %s on request %s (entry %llu): policy version %s, under which "
		      "the request ran, is not in the log",
		      approve ? "approval" : "rejection", who, id, (unsigned long long)i, ver);
		free(stmt);
		return;
	}
	for (json_int_t pv = first; pv <= a->in_force && !ok; pv++) {
		char pvs[32];
		snprintf(pvs, sizeof(pvs), "%lld", (long long)pv);
		principals = json_object_get(a->policies, pvs);
		pk_json = json_object_get(json_object_get(principals, who), "public_key");
		if ((pem = json_string_value(pk_json)) == NULL)
			continue;
		listed = 1;
		if (qs_pubkey_from_pem(pem, strlen(pem), &pk) == 0 &&
		    qs_sig_verify(pk, stmt, stmt_len, sig, sig_len) == 0)
			ok = 1;
		EVP_PKEY_free(pk);
		pk = NULL;
	}
	qs_errclear();
	if (!listed)
		vfail(v,
		      "%s by %s on request %s (entry %llu): %s is not a principal of "
		      "policy version %s",
		      approve ? "approval" : "rejection", who, id, (unsigned long long)i, who, ver);
	else if (!ok && first == a->in_force)
		vfail(v,
		      "%s by %s on request %s (entry %llu) does not verify with %s's key in policy "
		      "version %s",
		      approve ? "approval" : "rejection", who, id, (unsigned long long)i, who, ver);
	else if (!ok)
		vfail(v,
		      "%s by %s on request %s (entry %llu) does not verify with %s's key in policy "
		      "versions %s to %lld",
		      approve ? "approval" : "rejection", who, id, (unsigned long long)i, who, ver,
		      (long long)a->in_force);
	else if (approve)
		a->approved++;
	else
		a->rejected++;
	EVP_PKEY_free(pk);
	free(stmt);
}

/* Walk the entries: JSON objects, seq = index, times non-decreasing,
 * approvals re-verified. */
static void
check_entries(struct vctx *v, const struct entries *e, struct approvals *a)
{
	json_int_t last_time = 0;

	for (uint64_t i = 0; i < e->n; i++) {
		json_error_t err;
		json_t *o = json_loadb((const char *)e->data[i], e->len[i], JSON_REJECT_DUPLICATES,
		                       &err);
		json_t *seq, *t;
		const char *ev;

		if (o == NULL || !json_is_object(o)) {
			vfail(v, "entry %llu is not a JSON object%s%s", (unsigned long long)i,
			      o == NULL ? ": " : "", o == NULL ? err.text : "");
			json_decref(o);
			continue;
		}
		seq = json_object_get(o, "seq");
		t = json_object_get(o, "time");
		ev = json_string_value(json_object_get(o, "event"));
		if (!json_is_integer(seq) || (uint64_t)json_integer_value(seq) != i)
			vfail(v,
			      "entry %llu has \"seq\": %lld (removed, inserted or reordered "
			      "entries)",
			      (unsigned long long)i,
			      json_is_integer(seq) ? (long long)json_integer_value(seq) : -1LL);
		if (!json_is_integer(t) || json_integer_value(t) < last_time)
			vfail(v, "entry %llu: time %lld is before the previous entry's %lld",
			      (unsigned long long)i,
			      json_is_integer(t) ? (long long)json_integer_value(t) : -1LL,
			      (long long)last_time);
		else
			last_time = json_integer_value(t);
		if (ev == NULL)
			vfail(v, "entry %llu has no event", (unsigned long long)i);
		else if (strcmp(ev, "policy") == 0)
			note_policy(v, a, i, o);
		else if (strcmp(ev, "request.submitted") == 0)
			note_request(v, a, i, o);
		else if (strcmp(ev, "request.vote") == 0)
			check_vote(v, a, i, o);
		json_decref(o);
	}
}

/* The last checkpoint verified, from the state file. */
struct vstate {
	int present;
	char origin[QS_MAX_ORIGIN + 1];
	uint64_t size;
	qs_hash root;
	char key_sha256[65];
	char verified_at[32];
};

static int
load_state(const char *path, struct vstate *s)
{
	json_error_t err;
	json_t *j, *size;
	const char *origin, *root, *key, *at;
	size_t n = 0;
	int r = -1;

	memset(s, 0, sizeof(*s));
	if (access(path, F_OK) != 0 && errno == ENOENT)
		return 0;
	if ((j = json_load_file(path, JSON_REJECT_DUPLICATES, &err)) == NULL) {
		errmsg("state file %s: %s (move it away to start over)", path, err.text);
		return -1;
	}
	origin = json_string_value(json_object_get(j, "origin"));
	root = json_string_value(json_object_get(j, "root"));
	key = json_string_value(json_object_get(j, "log_key_sha256"));
	at = json_string_value(json_object_get(j, "verified_at"));
	size = json_object_get(j, "size");
	if (origin == NULL || strlen(origin) > QS_MAX_ORIGIN || root == NULL ||
	    strlen(root) != 64 || qs_unhex(root, s->root, 32, &n) != 0 || n != 32 || key == NULL ||
	    strlen(key) != 64 || !json_is_integer(size) || json_integer_value(size) < 0) {
		errmsg("state file %s is malformed (move it away to start over)", path);
		goto out;
	}
	snprintf(s->origin, sizeof(s->origin), "%s", origin);
	snprintf(s->key_sha256, sizeof(s->key_sha256), "%s", key);
	snprintf(s->verified_at, sizeof(s->verified_at), "%s", at != NULL ? at : "-");
	s->size = (uint64_t)json_integer_value(size);
	s->present = 1;
	r = 0;
out:
	json_decref(j);
	return r;
}

/* Replace the state file atomically (write, fsync, rename). */
static int
save_state(const char *path, const struct checkpoint *cp, const char *now)
{
	char root[65], *tmp = NULL;
	json_t *j;
	int fd = -1, r = -1;
	FILE *f = NULL;

	hex_into(cp->root, 32, root);
	j = json_pack("{s:s, s:I, s:s, s:s, s:s}", "origin", cp->origin, "size",
	              (json_int_t)cp->size, "root", root, "log_key_sha256", cp->key_sha256,
	              "verified_at", now);
	if (j == NULL || asprintf(&tmp, "%s.tmp", path) < 0) {
		errmsg("out of memory");
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0 ||
	    (f = fdopen(fd, "w")) == NULL) {
		errmsg("state file %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 || fputc('\n', f) == EOF ||
	    fflush(f) != 0 || fsync(fileno(f)) != 0) {
		errmsg("state file %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		errmsg("state file %s: %s", tmp, strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		errmsg("state file %s: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (r != 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	json_decref(j);
	return r;
}

/*
 * Which entry breaks the root? With the daemon at hand: the shortest
 * prefix of our entries that is not a prefix of the signed tree, found by
 * bisection over consistency proofs (each proof is checked, so the answer
 * does not depend on trusting the daemon). 0 if found (*bad set).
 */
static int
locate_bad_entry(qsc_client *c, const struct entries *e, const struct checkpoint *cp, uint64_t *bad)
{
	/* lo: longest prefix known to be consistent; hi: shortest known not
	 * to be (the whole log, whose root did not match). */
	uint64_t lo = 0, hi = cp->size;

	if (e->n != cp->size || hi == 0)
		return -1;
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		Qsign__V1__ProofResponse *p = NULL;
		qs_hash path[QS_MAX_MERKLE_PATH], root;
		int ok;

		if (qs_merkle_root_of(e->leaf, mid, root) != 0 ||
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

static int
verify_main(int argc, char **argv, struct globals *g)
{
	struct audit_opts o;
	struct checkpoint cp = {0};
	struct entries e = {0};
	struct vstate st = {0};
	struct approvals a = {0};
	struct vctx v = {0};
	qsc_client *c = NULL;
	char *state_buf = NULL, root_hex[65], now[32], prev_line[256] = "";
	const char *state_path;
	qs_hash root;
	int r, root_ok = 0, cp_ok = 0, state_ok = 0;

	if ((r = audit_opts(argc, argv, g, verify_usage, "KSO", 0, &o)) >= 0)
		return r;
	if ((state_path = o.state) == NULL) {
		if (asprintf(&state_buf, "%s/audit-state.json", g->home) < 0) {
			errmsg("out of memory");
			return EXIT_FAILED;
		}
		state_path = state_buf;
	}
	if ((v.errors = json_array()) == NULL || (a.policies = json_object()) == NULL ||
	    (a.requests = json_object()) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	if (load_state(state_path, &st) != 0) {
		r = EXIT_FAILED;
		goto out;
	}

	/* 1. The checkpoint and the entries it covers. */
	if (o.offline != NULL) {
		if (read_export_checkpoint(o.offline, o.log_key, &cp) != 0 ||
		    read_export_entries(o.offline, &e) != 0) {
			vfail(&v,
			      "the export in %s cannot be read or its checkpoint does not verify",
			      o.offline);
			r = EXIT_FAILED;
			goto summary;
		}
	} else {
		if ((r = connect_client(g, &c)) != EXIT_OK)
			goto out;
		/* A refusal by the daemon (the caller may not read the log) was
		 * reported as such: it says nothing about the log itself. */
		if ((r = get_checkpoint(g, c, o.log_key, &cp)) != EXIT_OK) {
			if (r != EXIT_FAILED || qsc_last_status(c) > 0)
				goto out;
			vfail(&v, "the checkpoint does not verify");
			goto summary;
		}
		if ((r = fetch_entries(g, c, 0, cp.size, &e)) != EXIT_OK) {
			if (r != EXIT_FAILED || qsc_last_status(c) > 0)
				goto out;
			vfail(&v, "cannot fetch the entries the checkpoint covers");
			goto summary;
		}
	}
	cp_ok = 1;
	if (st.present && strcmp(st.key_sha256, cp.key_sha256) != 0)
		vfail(&v,
		      "the log key changed: SHA256:%s now, SHA256:%s when last verified on %s "
		      "(if the key was rotated on purpose, pin the new one and move %s away)",
		      cp.key_sha256, st.key_sha256, st.verified_at, state_path);
	if (st.present && strcmp(st.origin, cp.origin) != 0)
		vfail(&v, "the log origin is %s, but %s remembers %s", cp.origin, state_path,
		      st.origin);

	/* 2. The entries hash to the signed root. */
	if (e.n != cp.size)
		vfail(&v, "%llu entries, but the checkpoint covers %llu: entries were %s",
		      (unsigned long long)e.n, (unsigned long long)cp.size,
		      e.n < cp.size ? "removed" : "added");
	if (qs_merkle_root_of(e.leaf, e.n, root) != 0) {
		vfail(&v, "%s", qs_errdetail());
	} else if (e.n == cp.size && memcmp(root, cp.root, sizeof(root)) == 0) {
		root_ok = 1;
	} else if (e.n == cp.size) {
		uint64_t bad;
		if (c != NULL && locate_bad_entry(c, &e, &cp, &bad) == 0)
			vfail(&v, "entry %llu does not match the checkpoint root",
			      (unsigned long long)bad);
		else
			vfail(&v,
			      "the entries do not match the checkpoint root (size %llu): an entry "
			      "was modified, removed, added or reordered",
			      (unsigned long long)cp.size);
	}

	/* 3. Every entry: JSON, seq, time; approvals re-verified. */
	check_entries(&v, &e, &a);

	/* 4. Consistency with what we saw before. */
	if (st.present && strcmp(st.origin, cp.origin) == 0) {
		if (cp.size < st.size) {
			vfail(&v,
			      "log rolled back: checkpoint size %llu < remembered %llu (seen on "
			      "%s)",
			      (unsigned long long)cp.size, (unsigned long long)st.size,
			      st.verified_at);
		} else if (cp.size == st.size) {
			if (memcmp(cp.root, st.root, sizeof(qs_hash)) != 0)
				vfail(&v,
				      "log rewritten: the root at size %llu is not the one seen on "
				      "%s",
				      (unsigned long long)cp.size, st.verified_at);
			else
				state_ok = 1;
		} else if (c != NULL) {
			Qsign__V1__ProofResponse *p = NULL;
			qs_hash path[QS_MAX_MERKLE_PATH];
			int pr = qsc_audit_consistency(c, st.size, cp.size, &p);
			if (pr != 0) {
				r = report(g, c, pr);
				if (r == EXIT_TRANSPORT)
					goto out;
				vfail(&v, "no consistency proof from size %llu to %llu",
				      (unsigned long long)st.size, (unsigned long long)cp.size);
			} else {
				for (size_t i = 0; i < p->n_hashes; i++)
					memcpy(path[i], p->hashes[i].data, sizeof(qs_hash));
				if (qs_merkle_consistency_verify(st.size, cp.size, st.root, cp.root,
				                                 path, p->n_hashes) != 0)
					vfail(&v,
					      "log rolled back or rewritten: the checkpoint of "
					      "size "
					      "%llu is not consistent with size %llu seen on %s",
					      (unsigned long long)cp.size,
					      (unsigned long long)st.size, st.verified_at);
				else
					state_ok = 1;
				qsc_free(p);
			}
		} else {
			/* Offline the old tree is the first st.size entries. */
			qs_hash old;
			if (root_ok && qs_merkle_root_of(e.leaf, st.size, old) == 0 &&
			    memcmp(old, st.root, sizeof(old)) == 0)
				state_ok = 1;
			else
				vfail(&v,
				      "log rolled back or rewritten: its first %llu entries are "
				      "not "
				      "the log of size %llu seen on %s",
				      (unsigned long long)st.size, (unsigned long long)st.size,
				      st.verified_at);
		}
		if (state_ok)
			snprintf(prev_line, sizeof(prev_line),
			         "consistent with size %llu seen on %s",
			         (unsigned long long)st.size, st.verified_at);
	}

	/* 5. Remember this checkpoint for next time. */
	iso_time((int64_t)time(NULL), now);
	if (v.failures == 0) {
		if (!st.present)
			snprintf(prev_line, sizeof(prev_line), "first verification: recorded in %s",
			         state_path);
		if (save_state(state_path, &cp, now) != 0)
			vfail(&v, "cannot record the verified checkpoint in %s", state_path);
	}

summary:
	hex_into(cp.root, 32, root_hex);
	r = v.failures == 0 ? EXIT_OK : EXIT_FAILED;
	if (g->json) {
		json_t *j = json_pack(
		        "{s:b, s:s, s:I, s:s, s:s, s:b, s:b, s:b, s:I, s:I, s:s, s:o}", "ok",
		        v.failures == 0, "origin", cp.origin, "size", (json_int_t)cp.size, "root",
		        root_hex, "log_key_sha256", cp.key_sha256, "key_pinned", cp.pinned,
		        "checkpoint_verified", cp_ok, "root_verified", root_ok,
		        "approvals_verified", (json_int_t)a.approved, "rejections_verified",
		        (json_int_t)a.rejected, "state_file", state_path, "errors", v.errors);
		v.errors = NULL;
		if (j != NULL && st.present)
			json_object_set_new(j, "previous",
			                    json_pack("{s:I, s:s, s:b}", "size",
			                              (json_int_t)st.size, "verified_at",
			                              st.verified_at, "consistent", state_ok));
		if (json_print(j, JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	} else if (v.failures == 0) {
		char rej[64] = "";
		if (a.rejected)
			snprintf(rej, sizeof(rej), " and %llu rejections",
			         (unsigned long long)a.rejected);
		printf("%llu entries, root %s, checkpoint OK (log key SHA256:%.16s...%s), %s, "
		       "%llu approvals%s re-verified\n",
		       (unsigned long long)cp.size, root_hex, cp.key_sha256, pin_note(&cp),
		       prev_line, (unsigned long long)a.approved, rej);
	} else {
		fprintf(stderr, "%s: audit verify FAILED: %u problem%s (listed above)\n", progname,
		        v.failures, v.failures == 1 ? "" : "s");
	}
out:
	json_decref(v.errors);
	json_decref(a.policies);
	json_decref(a.requests);
	entries_free(&e);
	checkpoint_free(&cp);
	qsc_close(c);
	free(state_buf);
	return r;
}

/* ------------------------------------------------------------ group */

const struct command audit_commands[] = {
        {"checkpoint", checkpoint_main, checkpoint_usage, "the latest signed checkpoint, verified",
         NULL},
        {"tail", tail_main, tail_usage, "the last entries, one line each", NULL},
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
