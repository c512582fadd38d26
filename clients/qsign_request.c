/*
 * qsign_request.c - quorum request commands of the qsign CLI: request
 * submit/list/show/cancel/wait/fetch, approve, reject, policy show/propose.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "payload.h"
#include "hsm.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"
#include "tuf_meta.h"
/* ------------------------------------------------------------ requests */

/* `request wait` polls this often, and gives up on a daemon it cannot
 * reach for this long (a restart of qsignd takes a few seconds). */
#define WAIT_POLL_MS 500
#define WAIT_UNREACHABLE_MS 15000
/* A submission lost in transit is re-sent (same client token, so the
 * daemon returns the first one) this many times. */
#define SUBMIT_ATTEMPTS 3

static int
voted(const Qsign__V1__RequestView *v, const char *who)
{
	for (size_t i = 0; i < v->n_votes; i++)
		if (strcmp(v->votes[i]->approver, who) == 0)
			return 1;
	return 0;
}

static size_t
count_votes(const Qsign__V1__RequestView *v, int approve)
{
	size_t n = 0;

	for (size_t i = 0; i < v->n_votes; i++)
		n += (v->votes[i]->approve != 0) == (approve != 0);
	return n;
}

/* Names (validated by the library: no escapes needed) of the votes with
 * the given decision, ", "-separated. */
static void
put_voters(FILE *f, const Qsign__V1__RequestView *v, int approve)
{
	int first = 1;

	for (size_t i = 0; i < v->n_votes; i++) {
		if ((v->votes[i]->approve != 0) != (approve != 0))
			continue;
		fprintf(f, "%s%s", first ? "" : ", ", v->votes[i]->approver);
		first = 0;
	}
}

/* Who may still approve: eligible approvers without a vote, the submitter
 * only when the role allows self-approval. */
static void
put_still_needed(FILE *f, const Qsign__V1__RequestView *v)
{
	size_t approvals = count_votes(v, 1), need, ncand = 0, k = 0;

	need = approvals < v->threshold ? v->threshold - approvals : 0;
	for (size_t i = 0; i < v->n_approvers; i++)
		ncand += !voted(v, v->approvers[i]) &&
		         (v->allow_self_approval || strcmp(v->approvers[i], v->submitter) != 0);
	if (need == 0) {
		fputs("nothing", f);
		return;
	}
	if (ncand < need) {
		fprintf(f, "%zu more approval%s, but only %zu eligible approver%s left", need,
		        need == 1 ? "" : "s", ncand, ncand == 1 ? "" : "s");
		return;
	}
	if (need > 1 && need < ncand)
		fprintf(f, "%zu of ", need);
	for (size_t i = 0; i < v->n_approvers; i++) {
		const char *a = v->approvers[i];
		if (voted(v, a) || (!v->allow_self_approval && strcmp(a, v->submitter) == 0))
			continue;
		if (k > 0)
			fputs(k + 1 < ncand   ? ", "
			      : need == 1     ? " or "
			      : need == ncand ? " and "
			                      : ", ",
			      f);
		fputs(a, f);
		k++;
	}
}

/* One line on where a request stands:
 *   "1/2 approvals: admin1 — waiting for admin2 or admin3"
 *   "approved: signed", "rejected: <why>" ...
 * malloc'd; control characters in daemon text are replaced. */
static char *
progress_line(const Qsign__V1__RequestView *v)
{
	size_t approvals = count_votes(v, 1), rejects = count_votes(v, 0), blen = 0;
	const char *sn = qsc_request_state_name((int)v->state);
	char *buf = NULL;
	FILE *f;

	if ((f = open_memstream(&buf, &blen)) == NULL) {
		errmsg("out of memory");
		exit(EXIT_FAILED);
	}
	switch (v->state) {
	case QSIGN__V1__REQUEST_STATE__REQ_PENDING:
		fprintf(f, "%zu/%u approvals", approvals, v->threshold);
		if (approvals > 0) {
			fputs(": ", f);
			put_voters(f, v, 1);
		}
		fputs(" \u2014 waiting for ", f);
		put_still_needed(f, v);
		if (rejects > 0) {
			fputs("; rejected by ", f);
			put_voters(f, v, 0);
		}
		break;
	case QSIGN__V1__REQUEST_STATE__REQ_APPROVED:
		fprintf(f, "%zu/%u approvals: ", approvals, v->threshold);
		put_voters(f, v, 1);
		if (strncmp(v->kind, "tuf-", 4) == 0) {
			/* Published once TUF's thresholds are met too: external
			 * keys may still have to sign. */
			fputs(" \u2014 approved; publishes when every TUF signature is in "
			      "(qsign tuf status ",
			      f);
			put_safe(f, v->id, 0);
			fputs(")", f);
		} else if (v->state_message != NULL && v->state_message[0] != '\0') {
			/* Execution failed for a passing reason (a full disk):
			 * qsignd retries until it succeeds or the request expires. */
			fputs(strcmp(v->kind, "policy") == 0 ? " \u2014 approved, NOT applied yet: "
			                                     : " \u2014 approved, NOT signed yet: ",
			      f);
			put_safe(f, v->state_message, 0);
			fputs(" (qsignd retries until it succeeds or the request expires)", f);
		} else {
			fputs(" \u2014 approved, signing", f);
		}
		break;
	case QSIGN__V1__REQUEST_STATE__REQ_SIGNED:
		/* A policy change is applied, not signed (qsign.proto). */
		fputs(strcmp(v->kind, "policy") == 0 ? "approved: applied" : "approved: signed", f);
		break;
	default:
		fputs(sn != NULL ? sn : "unknown state", f);
		if (v->state == QSIGN__V1__REQUEST_STATE__REQ_REJECTED && rejects > 0) {
			fputs(" by ", f);
			put_voters(f, v, 0);
		}
		if (v->state_message[0] != '\0') {
			fputs(": ", f);
			put_safe(f, v->state_message, 0);
		}
		break;
	}
	if (fclose(f) != 0 || buf == NULL) {
		errmsg("out of memory");
		exit(EXIT_FAILED);
	}
	return buf;
}

static json_t *
view_json(const Qsign__V1__RequestView *v)
{
	json_t *votes = json_array(), *j;
	char t[32], *h, *p;

	for (size_t i = 0; i < v->n_votes; i++) {
		const Qsign__V1__Vote *vo = v->votes[i];
		char *sh = hex_or_die(vo->signature.data, vo->signature.len);
		iso_time(vo->time, t);
		json_array_append_new(
		        votes, json_pack("{s:s, s:s, s:s, s:o, s:s}", "approver", vo->approver,
		                         "decision", vo->approve ? "approve" : "reject", "time", t,
		                         "reason", json_text(vo->reason), "signature", sh));
		free(sh);
	}
	h = hex_or_die(v->payload_sha256.data, 32);
	p = progress_line(v);
	j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:s, s:o, s:I}", "id", v->id,
	              "role", v->role, "kind", v->kind, "submitter", v->submitter, "message",
	              json_text(v->message), "payload_sha256", h, "hash",
	              v->hash[0] ? v->hash : "sha256", "payload_size", (json_int_t)v->payload_size,
	              "state", qsc_request_state_name((int)v->state), "state_message",
	              json_text(v->state_message), "policy_version", (json_int_t)v->policy_version);
	iso_time(v->created, t);
	json_object_set_new(j, "created", json_string(t));
	iso_time(v->expires, t);
	json_object_set_new(j, "expires", json_string(t));
	json_object_set_new(j, "threshold", json_integer(v->threshold));
	json_object_set_new(j, "approvers", json_strings(v->approvers, v->n_approvers));
	json_object_set_new(j, "allow_self_approval", json_boolean(v->allow_self_approval));
	json_object_set_new(j, "approvals", json_integer((json_int_t)count_votes(v, 1)));
	json_object_set_new(j, "votes", votes);
	json_object_set_new(j, "progress", json_text(p));
	free(h);
	free(p);
	return j;
}

static int
print_view_json(const Qsign__V1__RequestView *v)
{
	return json_print(view_json(v), JSON_INDENT(2)) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* The argument is a request id: checked here so that a typo is a usage
 * error, not a round trip. */
static int
check_id_arg(const char *id)
{
	if (!qs_name_valid(id, QS_MAX_NAME)) {
		errmsg("invalid request id");
		return -1;
	}
	return 0;
}

static int
check_text_arg(const char *what, const char *s)
{
	if (s == NULL)
		return 0;
	if (strlen(s) > QSC_MAX_REQUEST_TEXT) {
		errmsg("%s longer than %d bytes", what, QSC_MAX_REQUEST_TEXT);
		return -1;
	}
	for (const char *p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f) {
			errmsg("%s contains control characters", what);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ request submit */

static void
submit_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request submit -r ROLE (-f FILE | -d HEX) [-k KIND]\n"
	        "           [--hash sha256|sha384|sha512] [-m MESSAGE] [-t TOKEN]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  Ask the approvers of a quorum role for a signature. Prints the request id\n"
	        "  (stdout) and, on stderr, its progress and the next step.\n"
	        "  -f FILE     the payload (- reads stdin); kind \"blob\" unless -k says "
	        "otherwise\n"
	        "  -d HEX      a digest of the hash, 64/96/128 hex characters for\n"
	        "              SHA-256/384/512; kind \"digest\"\n"
	        "  -k KIND     payload kind: digest, blob or policy\n"
	        "  --hash H    the signature's hash (default sha256; digest and blob only):\n"
	        "              the role's quorum.hashes must list it; approvals cover it\n"
	        "  -m MESSAGE  why: shown to the approvers\n"
	        "  -t TOKEN    idempotency key (default: random); submitting again with the\n"
	        "              same TOKEN returns the first request instead of a new one\n"
	        "  --wait[=SECONDS]  follow it as `request wait` does (progress on stderr)\n"
	        "              and say what was signed once it is; exit codes as `request wait`\n"
	        "  --json      the request as JSON (with --wait: once it ended, with \"result\")\n"
	        "example: %s -p ci request submit -r release -f app-1.2.3.tar.gz -m \"release "
	        "1.2.3\" --wait\n",
	        progname, progname);
}

/* Submit with a client token, re-sending when the reply was lost: the
 * token makes the daemon return the request the first attempt created. */
static int
submit_with_retry(const struct globals *g, qsc_client *c, const char *role, const char *kind,
                  const char *hash, const uint8_t *payload, size_t len, const char *message,
                  const char *token, Qsign__V1__RequestView **out)
{
	int r = 0;

	for (int attempt = 1; attempt <= SUBMIT_ATTEMPTS; attempt++) {
		r = qsc_request_submit_hash(c, role, kind, hash, payload, len, message, token, out);
		if (r != QS_ERR_UNAVAILABLE && r != QS_ERR_TIMEOUT)
			break;
		if (attempt < SUBMIT_ATTEMPTS) {
			errmsg("%s; submitting again with the same client token", qs_errdetail());
			sleep(1);
		}
	}
	(void)g;
	return r;
}

static int
submit_common(struct globals *g, const char *role, const char *kind, const char *hash,
              const uint8_t *payload, size_t len, const char *message, const char *token)
{
	Qsign__V1__RequestView *v = NULL;
	qsc_client *c = NULL;
	char tokbuf[33];
	uint8_t rnd[16];
	int r;

	if (token == NULL) {
		char *h;
		if (RAND_bytes(rnd, sizeof(rnd)) != 1 || (h = qs_hex(rnd, sizeof(rnd))) == NULL) {
			errmsg("cannot make a client token");
			return EXIT_FAILED;
		}
		snprintf(tokbuf, sizeof(tokbuf), "%s", h);
		free(h);
		token = tokbuf;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = submit_with_retry(g, c, role, kind, hash, payload, len, message, token, &v)) !=
	    0) {
		r = report(g, c, r);
		goto out;
	}
	r = submitted(g, c, v);
out:
	qsc_free(v);
	qsc_close(c);
	return r;
}

static int
submit_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"role", required_argument, NULL, 'r'},
	        {"file", required_argument, NULL, 'f'},
	        {"digest", required_argument, NULL, 'd'},
	        {"kind", required_argument, NULL, 'k'},
	        {"message", required_argument, NULL, 'm'},
	        {"client-token", required_argument, NULL, 't'},
	        {"hash", required_argument, NULL, 'H'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *file = NULL, *hex = NULL, *kind = NULL, *msg = NULL,
	           *token = NULL, *hash_name = NULL, *hash;
	const struct qs_payload_kind *pk;
	uint8_t digest[QS_DIGEST_MAX], *buf = NULL;
	const uint8_t *payload;
	size_t len, dg_len = 0;
	int r;

	{
		const struct opt_keep keep[] = {{'r', &role, NULL},      {'f', &file, NULL},
		                                {'d', &hex, NULL},       {'k', &kind, NULL},
		                                {'m', &msg, NULL},       {'t', &token, NULL},
		                                {'H', &hash_name, NULL}, {0, NULL, NULL}};
		const struct opts o = {"r:f:d:k:m:t:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, submit_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		submit_usage(stderr);
		return EXIT_USAGE;
	}
	if (role == NULL) {
		errmsg("request submit needs -r ROLE");
		return EXIT_USAGE;
	}
	if (need_one("request submit", "-f FILE", file, "-d HEX", hex) != 0)
		return EXIT_USAGE;
	if (!qs_name_valid(role, QS_MAX_NAME)) {
		errmsg("invalid role name");
		return EXIT_USAGE;
	}
	if (token != NULL && !qs_name_valid(token, QS_MAX_NAME)) {
		errmsg("invalid client token: 1..%d of [A-Za-z0-9._@:+-]", QS_MAX_NAME);
		return EXIT_USAGE;
	}
	if (kind == NULL)
		kind = hex != NULL ? "digest" : "blob";
	if ((pk = qs_payload_kind(kind)) == NULL) {
		errmsg("unknown payload kind %s (digest, blob or policy)", kind);
		return EXIT_USAGE;
	}
	if (check_text_arg("message", msg) != 0)
		return EXIT_USAGE;
	if ((hash = parse_hash(hash_name, &dg_len, NULL)) == NULL)
		return EXIT_USAGE;
	if (hex != NULL) {
		if (parse_digest_of(hex, dg_len, digest) != 0) {
			errmsg("-d needs a %s digest: exactly %zu hex characters", hash,
			       2 * dg_len);
			return EXIT_USAGE;
		}
		payload = digest;
		len = dg_len;
	} else {
		if (read_input(file,
		               QS_MAX_BLOB > QS_MAX_POLICY_BYTES ? QS_MAX_BLOB
		                                                 : QS_MAX_POLICY_BYTES,
		               &buf, &len) != 0)
			return EXIT_USAGE;
		payload = buf;
	}
	/* The daemon checks it too; refusing here makes it a usage error. */
	if (pk->validate(payload, len) != 0) {
		errmsg("%s payload refused: %s", pk->name, qs_errdetail());
		free(buf);
		return EXIT_USAGE;
	}
	r = submit_common(g, role, pk->name, hash, payload, len, msg, token);
	free(buf);
	return r;
}

/* ------------------------------------------------------------ request list */

/* The longest message shown in a list, in bytes (the rest: "..."). */
#define LIST_MESSAGE_MAX 48

static void
list_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request list [--state STATE] [--role ROLE]\n"
	        "           [--limit N] [--json]\n"
	        "  Requests you may see, as a table under a header line:\n"
	        "    ID STATE ROLE KIND SUBMITTER APPROVALS EXPIRES MESSAGE\n"
	        "  (APPROVALS: approvals/threshold; MESSAGE: the submitter's, cut at %d\n"
	        "  bytes); \"no requests\" when there are none.\n"
	        "  STATE: pending, approved, signed, rejected, cancelled, expired, failed.\n"
	        "  --limit N   at most N requests (default 100)\n"
	        "  --json      {\"requests\": [REQUEST, ...]} (README: JSON shapes)\n"
	        "example: %s -p admin1 request list --state pending\n",
	        progname, LIST_MESSAGE_MAX, progname);
}

/* The requests as a table with a header; "no requests" when empty. Every
 * column but the message is a name the library validated. */
static void
put_request_table(const Qsign__V1__ListRequestsResponse *resp)
{
	static const char *const head[] = {"ID",        "STATE",     "ROLE",    "KIND",
	                                   "SUBMITTER", "APPROVALS", "EXPIRES", "MESSAGE"};
	int w[7];
	char cell[7][64];

	if (resp->n_requests == 0) {
		printf("no requests\n");
		return;
	}
	for (int k = 0; k < 7; k++)
		w[k] = (int)strlen(head[k]);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0],
			       w[1], head[1], w[2], head[2], w[3], head[3], w[4], head[4], w[5],
			       head[5], w[6], head[6], head[7]);
		for (size_t i = 0; i < resp->n_requests; i++) {
			const Qsign__V1__RequestView *v = resp->requests[i];
			snprintf(cell[0], sizeof(cell[0]), "%s", v->id);
			snprintf(cell[1], sizeof(cell[1]), "%s",
			         qsc_request_state_name((int)v->state));
			snprintf(cell[2], sizeof(cell[2]), "%s", v->role);
			snprintf(cell[3], sizeof(cell[3]), "%s", v->kind);
			snprintf(cell[4], sizeof(cell[4]), "%s", v->submitter);
			snprintf(cell[5], sizeof(cell[5]), "%zu/%u", count_votes(v, 1),
			         v->threshold);
			iso_time(v->expires, cell[6]);
			if (pass == 0) {
				for (int k = 0; k < 7; k++)
					if ((int)strlen(cell[k]) > w[k])
						w[k] = (int)strlen(cell[k]);
				continue;
			}
			for (int k = 0; k < 7; k++)
				printf("%-*s  ", w[k], cell[k]);
			if (v->message[0] == '\0') {
				fputs("-", stdout);
			} else {
				char msg[LIST_MESSAGE_MAX + 1];
				snprintf(msg, sizeof(msg), "%s", v->message);
				for (char *m = msg; *m != '\0'; m++)
					if (*m == '\n' || *m == '\t')
						*m = ' ';
				put_safe(stdout, msg, 0);
				if (strlen(v->message) > LIST_MESSAGE_MAX)
					fputs("...", stdout);
			}
			fputc('\n', stdout);
		}
	}
}

/* The filters of request list. */
struct list_filter {
	Qsign__V1__RequestState state;
	const char *role;
	uint32_t limit;
};

enum { O_STATE = 256, O_ROLE, O_LIMIT };

static int
list_opt(void *ctx, int ch, char *arg)
{
	struct list_filter *lf = ctx;

	switch (ch) {
	case O_STATE:
		if ((lf->state = qsc_request_state_from_name(arg)) ==
		    QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED) {
			errmsg("unknown state %s (pending, approved, signed, rejected, cancelled, "
			       "expired, failed)",
			       arg);
			return EXIT_USAGE;
		}
		break;
	case O_ROLE:
		lf->role = arg;
		break;
	case O_LIMIT: {
		char *end;
		unsigned long v;
		errno = 0;
		v = strtoul(arg, &end, 10);
		if (errno != 0 || end == arg || *end != '\0' || v < 1 || v > 10000 ||
		    arg[0] == '-') {
			errmsg("--limit needs a number, 1..10000");
			return EXIT_USAGE;
		}
		lf->limit = (uint32_t)v;
		break;
	}
	}
	return 0;
}

static int
list_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"state", required_argument, NULL, O_STATE},
	        {"role", required_argument, NULL, O_ROLE},
	        {"limit", required_argument, NULL, O_LIMIT},
	        {NULL, 0, NULL, 0},
	};
	struct list_filter lf = {QSIGN__V1__REQUEST_STATE__REQ_STATE_UNSPECIFIED, NULL, 0};
	Qsign__V1__ListRequestsResponse *resp = NULL;
	qsc_client *c = NULL;
	int r;

	{
		const struct opt_keep keep[] = {{0, NULL, NULL}};
		const struct opts o = {"", opts, keep, list_opt, &lf, 0, -1};
		if ((r = parse_opts(argc, argv, g, list_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		list_usage(stderr);
		return EXIT_USAGE;
	}
	if (lf.role != NULL && !qs_name_valid(lf.role, QS_MAX_NAME)) {
		errmsg("invalid role name");
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_request_list(c, lf.state, lf.role, lf.limit, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < resp->n_requests; i++)
			json_array_append_new(a, view_json(resp->requests[i]));
		r = json_print(json_pack("{s:o}", "requests", a), JSON_INDENT(2)) == 0
		            ? EXIT_OK
		            : EXIT_FAILED;
		goto out;
	}
	put_request_table(resp);
	r = EXIT_OK;
out:
	qsc_free(resp);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ request show */

static void
show_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request show ID [--json]\n"
	        "  Everything an approver needs: role, kind, submitter, message, the payload's\n"
	        "  SHA-256 (recomputed here from the payload bytes), votes so far, what is\n"
	        "  still needed, expiry, and the payload decoded by its kind (a policy change\n"
	        "  is shown as a diff against the policy in force).\n"
	        "example: %s -p admin2 request show 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5\n",
	        progname, progname);
}

/* Print the describe() text of a payload; its lines may come from the
 * submitter, so control characters are replaced. */
static void
put_description(const char *d)
{
	put_safe(stdout, d, 1);
	if (d[0] != '\0' && d[strlen(d) - 1] != '\n')
		fputc('\n', stdout);
}

static int
show_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__RequestView *v = NULL;
	Qsign__V1__PolicyShowResponse *pol = NULL;
	const struct qs_payload_kind *pk;
	char *desc = NULL, *hex = NULL, *prog = NULL, *invalid = NULL, t[32];
	qsc_client *c = NULL;
	int r;

	if ((r = parse_opts(argc, argv, g, show_usage, PLAIN_OPTS(1))) >= 0)
		return r;
	if (check_id_arg(argv[argc - 1]) != 0)
		return EXIT_USAGE;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	/* The library refuses a payload whose SHA-256 is not payload_sha256. */
	if ((r = qsc_request_get(c, argv[argc - 1], 1, &v)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if ((pk = qs_payload_kind(v->kind)) != NULL) {
		if (pk->validate(v->payload.data, v->payload.len) != 0 &&
		    (invalid = strdup(qs_errdetail())) == NULL) {
			errmsg("out of memory");
			r = EXIT_FAILED;
			goto out;
		}
		/* A policy change is shown against the policy in force. */
		if (strcmp(pk->name, "policy") == 0 && qsc_policy_show(c, 0, &pol) != 0)
			errmsg("cannot read the policy in force (%s): showing no diff",
			       qs_errdetail());
		if (invalid == NULL &&
		    pk->describe(v->payload.data, v->payload.len, pol != NULL ? pol->text : NULL,
		                 &desc) != 0 &&
		    (invalid = strdup(qs_errdetail())) == NULL) {
			errmsg("out of memory");
			r = EXIT_FAILED;
			goto out;
		}
	}
	hex = hex_or_die(v->payload_sha256.data, 32);
	prog = progress_line(v);
	if (g->json) {
		json_t *j = view_json(v);
		json_object_set_new(j, "payload_verified", json_true());
		json_object_set_new(j, "payload_valid",
		                    json_boolean(pk != NULL && invalid == NULL));
		if (invalid != NULL)
			json_object_set_new(j, "payload_error", json_text(invalid));
		if (desc != NULL)
			json_object_set_new(j, "description", json_text(desc));
		r = json_print(j, JSON_INDENT(2)) == 0 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	printf("request:        %s\nrole:           %s\nkind:           %s\nsubmitter:      %s\n",
	       v->id, v->role, v->kind, v->submitter);
	fputs("message:        ", stdout);
	put_safe(stdout, v->message[0] != '\0' ? v->message : "-", 0);
	printf("\npayload sha256: %s (verified locally)\npayload size:   %llu bytes\n", hex,
	       (unsigned long long)v->payload_size);
	printf("signature hash: %s (the approvals cover it)\n", v->hash[0] ? v->hash : "sha256");
	printf("policy version: %llu\n", (unsigned long long)v->policy_version);
	iso_time(v->created, t);
	printf("created:        %s\n", t);
	iso_time(v->expires, t);
	printf("expires:        %s\n", t);
	printf("state:          %s", qsc_request_state_name((int)v->state));
	if (v->state_message[0] != '\0') {
		fputs(" (", stdout);
		put_safe(stdout, v->state_message, 0);
		fputc(')', stdout);
	}
	printf("\nthreshold:      %u of ", v->threshold);
	put_list(v->approvers, v->n_approvers);
	printf("%s\nvotes:%s\n", v->allow_self_approval ? " (self-approval allowed)" : "",
	       v->n_votes == 0 ? "          none" : "");
	for (size_t i = 0; i < v->n_votes; i++) {
		const Qsign__V1__Vote *vo = v->votes[i];
		iso_time(vo->time, t);
		printf("  %s  %s  %s", vo->approver, t, vo->approve ? "approve" : "reject");
		if (vo->reason[0] != '\0') {
			fputs("  ", stdout);
			put_safe(stdout, vo->reason, 0);
		}
		fputc('\n', stdout);
	}
	if (v->state == QSIGN__V1__REQUEST_STATE__REQ_PENDING) {
		fputs("still needed:   ", stdout);
		put_still_needed(stdout, v);
		fputc('\n', stdout);
	}
	printf("progress:       %s\n", prog);
	printf("--- payload (%s) ---\n", v->kind);
	if (pk == NULL)
		printf("payload kind %s is not known to this client: it cannot be shown or "
		       "approved here\n",
		       v->kind);
	else if (invalid != NULL) {
		fputs("INVALID payload: ", stdout);
		put_safe(stdout, invalid, 0);
		fputc('\n', stdout);
	} else
		put_description(desc);
	fputs("---\n", stdout);
	if (v->state == QSIGN__V1__REQUEST_STATE__REQ_PENDING && pk != NULL && invalid == NULL)
		printf("approve exactly this payload with:\n  %s approve %s --sha256 %s\n",
		       progname, v->id, hex);
	r = EXIT_OK;
out:
	free(desc);
	free(hex);
	free(prog);
	free(invalid);
	qsc_free(pol);
	qsc_free(v);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ approve / reject */

void
approve_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] approve ID [-m REASON] [--sha256 HEX] [--json]\n"
	        "  Approve a request with your key. The payload is fetched and its SHA-256\n"
	        "  recomputed here first; nothing is signed if it differs from what the daemon\n"
	        "  reports, or from --sha256 HEX (the digest 'request show' printed: approve\n"
	        "  exactly what you reviewed). Prints the progress of the request.\n"
	        "example: %s -p admin2 approve 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 --sha256 "
	        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
	        progname, progname);
}

void
reject_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] reject ID [-m REASON] [--sha256 HEX] [--json]\n"
	        "  Reject a request (signed with your key, like an approval). Enough rejects\n"
	        "  to make the threshold unreachable end the request.\n"
	        "example: %s -p admin3 reject 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 -m \"not the "
	        "release we "
	        "tagged\"\n",
	        progname, progname);
}

/* A vote that completed the quorum returns once the request is executed
 * (TUF changes may wait for external signatures): still APPROVED with a
 * reason means its execution failed for now (qsignd retries). */
static int
not_executed(const Qsign__V1__RequestView *v)
{
	/* APPROVED without a reason is being executed right now (by another
	 * replica on the same database, which won the race to execute it):
	 * "approved, signing" is then the truth, not a failure. */
	return v->state == QSIGN__V1__REQUEST_STATE__REQ_APPROVED &&
	       strncmp(v->kind, "tuf-", 4) != 0 && v->state_message != NULL &&
	       v->state_message[0] != '\0';
}

static int
vote_main(int argc, char **argv, struct globals *g, int approve)
{
	enum { O_SHA = 256 };
	static const struct option opts[] = {
	        {"message", required_argument, NULL, 'm'},
	        {"sha256", required_argument, NULL, O_SHA},
	        {NULL, 0, NULL, 0},
	};
	void (*usage_fn)(FILE *) = approve ? approve_usage : reject_usage;
	Qsign__V1__RequestView *v = NULL;
	const char *reason = NULL, *pin = NULL, *id;
	uint8_t expect[32];
	qsc_client *c = NULL;
	char *p;
	int r;

	{
		const struct opt_keep keep[] = {
		        {'m', &reason, NULL}, {O_SHA, &pin, NULL}, {0, NULL, NULL}};
		const struct opts o = {"m:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, usage_fn, &o)) >= 0)
			return r;
	}
	if (optind + 1 != argc) {
		usage_fn(stderr);
		return EXIT_USAGE;
	}
	id = argv[optind];
	if (check_id_arg(id) != 0 || check_text_arg("reason", reason) != 0)
		return EXIT_USAGE;
	if (pin != NULL && parse_digest(pin, expect) != 0) {
		errmsg("--sha256 needs the payload's SHA-256: exactly 64 hex characters");
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_request_vote(c, id, approve, reason, pin != NULL ? expect : NULL, &v)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		r = print_view_json(v);
		goto out;
	}
	p = progress_line(v);
	printf("%s\n", p);
	free(p);
	r = EXIT_OK;
	if (not_executed(v)) {
		errmsg("the vote is recorded, but request %s is not %s: qsignd retries; follow it "
		       "with `%s request wait %s`",
		       v->id, strcmp(v->kind, "policy") == 0 ? "applied" : "signed", progname,
		       v->id);
		r = EXIT_FAILED;
	}
out:
	qsc_free(v);
	qsc_close(c);
	return r;
}

int
approve_main(int argc, char **argv, struct globals *g)
{
	return vote_main(argc, argv, g, 1);
}

int
reject_main(int argc, char **argv, struct globals *g)
{
	return vote_main(argc, argv, g, 0);
}

/* ------------------------------------------------------------ request cancel */

static void
cancel_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request cancel ID [--json]\n"
	        "  Withdraw a request you submitted: pending, or approved and still waiting\n"
	        "  for external TUF signatures.\n"
	        "example: %s -p ci request cancel 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5\n",
	        progname, progname);
}

static int
cancel_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__RequestView *v = NULL;
	qsc_client *c = NULL;
	char *p;
	int r;

	if ((r = parse_opts(argc, argv, g, cancel_usage, PLAIN_OPTS(1))) >= 0)
		return r;
	if (check_id_arg(argv[argc - 1]) != 0)
		return EXIT_USAGE;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_request_cancel(c, argv[argc - 1], &v)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		r = print_view_json(v);
		goto out;
	}
	p = progress_line(v);
	printf("%s\n", p);
	free(p);
	r = EXIT_OK;
out:
	qsc_free(v);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ request wait */

static void
wait_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request wait ID [--timeout SECONDS] [--json]\n"
	        "  Follow a request until it ends, printing a line whenever it progresses:\n"
	        "    1/2 approvals: admin1 \u2014 waiting for admin2 or admin3\n"
	        "  Exit 0 when it is signed, 1 when it ends otherwise (rejected, cancelled,\n"
	        "  expired, failed: the state and reason are printed), 3 when SECONDS pass\n"
	        "  first or qsignd cannot be reached for %d s. With --json the progress goes\n"
	        "  to stderr and the final request to stdout.\n"
	        "example: %s -p ci request wait 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 --timeout 3600 && "
	        "%s -p ci "
	        "request fetch 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 -o app.sig\n",
	        progname, WAIT_UNREACHABLE_MS / 1000, progname, progname);
}

/* Follow request id on c until it ends, a line on pf whenever it
 * progresses (the same lines as `request wait`), giving up after tmo_ms
 * (0: never) or when qsignd stays unreachable; a line equal to shown (may
 * be NULL) was printed already. EXIT_OK with *out the final
 * view (signed), EXIT_FAILED when it ended otherwise (said why, *out set),
 * EXIT_TRANSPORT when time ran out. */
static int
follow_request(const struct globals *g, qsc_client *c, const char *id, int tmo_ms, FILE *pf,
               const char *shown, Qsign__V1__RequestView **out)
{
	Qsign__V1__RequestView *v = NULL;
	uint64_t deadline = 0, unreachable_since = 0;
	char *last = shown != NULL ? strdup(shown) : NULL;
	int r;

	*out = NULL;
	if (tmo_ms > 0)
		deadline = mono_ms() + (uint64_t)tmo_ms;
	for (;;) {
		char *p;

		r = qsc_request_get(c, id, 0, &v);
		if (r == QS_ERR_UNAVAILABLE || r == QS_ERR_TIMEOUT) {
			/* Get is read-only: safe to repeat while qsignd restarts. */
			uint64_t now = mono_ms();
			if (unreachable_since == 0) {
				unreachable_since = now;
				errmsg("%s; still trying", qs_errdetail());
			}
			if (now - unreachable_since >= WAIT_UNREACHABLE_MS ||
			    (deadline != 0 && now >= deadline)) {
				r = report(g, c, r);
				goto out;
			}
			sleep_ms(WAIT_POLL_MS);
			continue;
		}
		if (r != 0) {
			r = report(g, c, r);
			goto out;
		}
		unreachable_since = 0;
		p = progress_line(v);
		if (last == NULL || strcmp(p, last) != 0) {
			fprintf(pf, "%s\n", p);
			fflush(pf);
			free(last);
			last = p;
		} else {
			free(p);
		}
		if (v->state != QSIGN__V1__REQUEST_STATE__REQ_PENDING &&
		    v->state != QSIGN__V1__REQUEST_STATE__REQ_APPROVED)
			break;
		if (deadline != 0 && mono_ms() >= deadline) {
			errmsg("request %s is still %s after %d s", id,
			       qsc_request_state_name((int)v->state), tmo_ms / 1000);
			r = EXIT_TRANSPORT;
			goto out;
		}
		qsc_free(v);
		v = NULL;
		sleep_ms(WAIT_POLL_MS);
	}
	if (v->state == QSIGN__V1__REQUEST_STATE__REQ_SIGNED) {
		r = EXIT_OK;
	} else {
		errmsg("request %s ended %s%s", id, qsc_request_state_name((int)v->state),
		       v->state_message[0] != '\0' ? " (see the reason above)" : "");
		r = EXIT_FAILED;
	}
	*out = v;
	v = NULL;
out:
	free(last);
	qsc_free(v);
	return r;
}

int
parse_wait(struct globals *g, const char *arg)
{
	g->wait = 1;
	g->wait_ms = 0;
	if (arg != NULL && parse_timeout(arg, &g->wait_ms) != 0) {
		errmsg("--wait=SECONDS needs whole seconds, 1..86400");
		return -1;
	}
	return 0;
}

static int
kind_is(const Qsign__V1__RequestView *v, const char *prefix)
{
	return strncmp(v->kind, prefix, strlen(prefix)) == 0;
}

/* What comes after the approvals, for request v: how its result is had. */
static char *
next_step(const Qsign__V1__RequestView *v)
{
	char *s = NULL;
	int n;

	if (strcmp(v->kind, "policy") == 0)
		n = asprintf(&s, "it takes effect once approved (`%s policy show`)", progname);
	else if (kind_is(v, "tuf-"))
		n = asprintf(&s,
		             "once approved it publishes when every TUF signature is in "
		             "(`%s tuf status %s`)",
		             progname, v->id);
	else if (kind_is(v, "pki."))
		n = asprintf(&s, "then `%s ca fetch %s -o FILE` writes the result", progname,
		             v->id);
	else
		n = asprintf(&s, "then `%s request fetch %s -o FILE` writes the signature",
		             progname, v->id);
	if (n < 0) {
		errmsg("out of memory");
		exit(EXIT_FAILED);
	}
	return s;
}

/* "version N" of the current metadata repo/role, or "-" (after a warning). */
static json_int_t
tuf_version(qsc_client *c, const char *repo, const char *role)
{
	Qsign__V1__TufGetMetadataResponse *m = NULL;
	json_t *env = NULL;
	json_int_t ver = 0;

	if (qsc_tuf_get_metadata(c, repo, role, 0, &m) == 0 &&
	    tuf_envelope_parse(m->metadata.data, m->metadata.len, NULL, &env) == 0)
		ver = json_integer_value(
		        json_object_get(json_object_get(env, "signed"), "version"));
	json_decref(env);
	qsc_free(m);
	return ver;
}

/* The directory the policy in force publishes TUF repository repo to (on
 * the server), or NULL. malloc'd. */
static char *
tuf_repo_dir(qsc_client *c, const char *repo)
{
	Qsign__V1__PolicyShowResponse *ps = NULL;
	json_t *pol = NULL;
	const char *d;
	char *s = NULL;

	if (qsc_policy_show(c, 0, &ps) == 0 && (pol = json_loads(ps->text, 0, NULL)) != NULL &&
	    (d = json_string_value(json_object_get(
	             json_object_get(json_object_get(pol, "tuf"), "repositories"), repo))) !=
	            NULL &&
	    asprintf(&s, "%s/metadata", d) < 0)
		s = NULL;
	json_decref(pol);
	qsc_free(ps);
	return s;
}

/* A PKI result (certificate or CRL, PEM) in one line: subject and serial,
 * or issuer and the number of revoked entries. */
static char *
pki_summary(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = NULL;
	X509_CRL *crl = NULL;
	char name[256] = "?", *serial = NULL, *s = NULL;
	int n = -1;

	if (b == NULL)
		return NULL;
	if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
		serial = bn != NULL ? BN_bn2hex(bn) : NULL;
		BN_free(bn);
		n = asprintf(&s, "certificate %s, serial %s", name, serial ? serial : "?");
	} else if (BIO_reset(b) == 1 &&
	           (crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
		X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof(name));
		n = asprintf(&s, "CRL of %s, %d revoked", name,
		             rev != NULL ? sk_X509_REVOKED_num(rev) : 0);
	}
	if (n < 0)
		s = NULL;
	OPENSSL_free(serial);
	X509_free(x);
	X509_CRL_free(crl);
	BIO_free(b);
	return s;
}

/* Once request v is signed: what was signed, applied or published (*what)
 * and where to find it (*where). Both malloc'd; "-" parts when the daemon
 * would not say. */
static void
outcome(qsc_client *c, const Qsign__V1__RequestView *v, char **what, char **where)
{
	Qsign__V1__FetchResponse *fr = NULL;
	Qsign__V1__PolicyShowResponse *ps = NULL;
	char *a = NULL, *b = NULL, *d1 = NULL, *d2 = NULL, *pem = NULL;
	int n1 = 0, n2 = 0;

	if (strcmp(v->kind, "policy") == 0) {
		if (qsc_policy_show(c, 0, &ps) == 0)
			n1 = asprintf(&a, "policy version %llu is in force",
			              (unsigned long long)ps->current_version);
		n2 = asprintf(&b, "`%s policy show` prints it", progname);
	} else if (strcmp(v->kind, "tuf-promote") == 0) {
		d1 = tuf_repo_dir(c, "prod");
		n1 = asprintf(&a, "production targets version %lld published",
		              (long long)tuf_version(c, "prod", "targets"));
		n2 = asprintf(&b, "on the server in %s", d1 ? d1 : "the production repository");
	} else if (kind_is(v, "tuf-")) {
		d1 = tuf_repo_dir(c, "ci");
		d2 = tuf_repo_dir(c, "prod");
		n1 = asprintf(&a, "root version %lld (CI) and %lld (production) published",
		              (long long)tuf_version(c, "ci", "root"),
		              (long long)tuf_version(c, "prod", "root"));
		n2 = asprintf(&b, "on the server in %s and %s", d1 ? d1 : "the CI repository",
		              d2 ? d2 : "the production repository");
	} else if (qsc_request_fetch(c, v->id, &fr) == 0) {
		if (kind_is(v, "pki.")) {
			if (fr->result.len > 0 &&
			    (pem = strndup((const char *)fr->result.data, fr->result.len)) != NULL)
				a = pki_summary(pem);
			n2 = asprintf(&b, "`%s ca fetch %s -o FILE` writes it", progname, v->id);
		} else {
			Qsign__V1__RequestView *pv = NULL;
			char *h = NULL, *keys = NULL;
			size_t klen = 0;
			/* A digest request signs the digest itself: name that. */
			int dig = strcmp(v->kind, "digest") == 0 &&
			          qsc_request_get(c, v->id, 1, &pv) == 0 &&
			          qs_hash_of_len(pv->payload.len) != NULL;
			h = dig ? hex_or_die(pv->payload.data, pv->payload.len)
			        : hex_or_die(v->payload_sha256.data, 32);
			qsc_free(pv);
			FILE *f = open_memstream(&keys, &klen);
			for (size_t i = 0; f != NULL && i < fr->n_signatures; i++)
				fprintf(f, "%s%s (%s)", i ? ", " : "", fr->signatures[i]->key,
				        fr->signatures[i]->algorithm);
			if (f != NULL)
				fclose(f);
			n1 = asprintf(&a, "%s %s signed by %s", dig ? "digest" : "payload sha256",
			              h, keys ? keys : "?");
			n2 = asprintf(&b, "`%s request fetch %s -o FILE` writes the signature%s",
			              progname, v->id, fr->n_signatures > 1 ? "s" : "");
			free(keys);
			free(h);
		}
	}
	if (n1 < 0)
		a = NULL;
	if (n2 < 0)
		b = NULL;
	*what = a != NULL ? a : strdup("-");
	*where = b != NULL ? b : strdup("-");
	free(pem);
	free(d1);
	free(d2);
	qsc_free(fr);
	qsc_free(ps);
}

int
submitted(struct globals *g, qsc_client *c, const Qsign__V1__RequestView *v)
{
	Qsign__V1__RequestView *fin = NULL;
	char *p = progress_line(v), *next = next_step(v), *what = NULL, *where = NULL;
	json_t *j;
	int r = EXIT_OK;

	if (!g->json) {
		printf("%s\n", v->id);
		fflush(stdout);
		fprintf(stderr, "%s: request %s submitted (role %s, kind %s): %s\n", progname,
		        v->id, v->role, v->kind, p);
		fprintf(stderr,
		        "%s: next: approvers review it with `%s request show %s` and vote with "
		        "`%s approve %s`; %s%s%s%s%s%s\n",
		        progname, progname, v->id, progname, v->id, g->wait ? "" : "`",
		        g->wait ? "" : progname, g->wait ? "" : " request wait ",
		        g->wait ? "" : v->id, g->wait ? "" : "` follows it; ", next);
	}
	if (g->wait) {
		r = follow_request(g, c, v->id, g->wait_ms, stderr, g->json ? NULL : p, &fin);
		if (r == EXIT_OK) {
			outcome(c, fin, &what, &where);
			if (!g->json)
				fprintf(stderr, "%s: done: %s; %s\n", progname, what, where);
		}
	}
	if (g->json) {
		j = view_json(fin != NULL ? fin : v);
		json_object_set_new(j, "next", json_text(next));
		if (what != NULL)
			json_object_set_new(j, "result",
			                    json_pack("{s:o, s:o}", "what", json_text(what),
			                              "where", json_text(where)));
		if (json_print(j, JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	}
	free(p);
	free(next);
	free(what);
	free(where);
	qsc_free(fin);
	return r;
}

/* --timeout SECONDS into *(int *)ctx (milliseconds). */
static int
timeout_opt(void *ctx, int ch, char *arg)
{
	(void)ch;
	if (parse_timeout(arg, ctx) != 0) {
		errmsg("--timeout needs whole seconds, 1..86400");
		return EXIT_USAGE;
	}
	return 0;
}

static int
wait_main(int argc, char **argv, struct globals *g)
{
	enum { O_TMO = 256 };
	static const struct option opts[] = {
	        {"timeout", required_argument, NULL, O_TMO},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__RequestView *v = NULL;
	const char *id;
	qsc_client *c = NULL;
	int r, tmo_ms = 0;

	{
		const struct opt_keep keep[] = {{0, NULL, NULL}};
		const struct opts o = {"", opts, keep, timeout_opt, &tmo_ms, 0, -1};
		if ((r = parse_opts(argc, argv, g, wait_usage, &o)) >= 0)
			return r;
	}
	if (optind + 1 != argc) {
		wait_usage(stderr);
		return EXIT_USAGE;
	}
	id = argv[optind];
	if (check_id_arg(id) != 0)
		return EXIT_USAGE;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	r = follow_request(g, c, id, tmo_ms, g->json ? stderr : stdout, NULL, &v);
	if (v != NULL && g->json && print_view_json(v) != EXIT_OK)
		r = EXIT_FAILED;
	qsc_free(v);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ request fetch */

static void
fetch_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] request fetch ID [-o OUT] [--format der|hex|base64]\n"
	        "           [--json]\n"
	        "  The signature(s) of a signed request, each checked here against the key's\n"
	        "  public key and the request's payload before it is written.\n"
	        "  One signature: to OUT, or to stdout (hex on a terminal, der otherwise).\n"
	        "  Several (a role with several keys): OUT.0, OUT.1, ... in the order listed\n"
	        "  by --json; without -o one line per signature: KEY SIGNATURE (hex or base64).\n"
	        "example: %s -p ci request fetch 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 -o "
	        "app-1.2.3.sig\n",
	        progname, progname);
}

/*
 * Check each signature against the public key ListKeys gives for its key
 * and the payload (a digest is signed as is, a blob through its SHA-256 or,
 * for Ed25519, whole). Returns 0 if all verify, 1 if some could not be
 * checked (said on stderr), -1 if one does not verify.
 */
static int
verify_fetched(qsc_client *c, const Qsign__V1__FetchResponse *fr)
{
	Qsign__V1__RequestView *v = NULL;
	Qsign__V1__ListKeysResponse *keys = NULL;
	int rc = 0;

	if (fr->n_signatures == 0)
		return 0;
	if (qsc_request_get(c, fr->request->id, 1, &v) != 0 || qsc_list_keys(c, &keys) != 0) {
		errmsg("warning: signatures not verified here: %s", qs_errdetail());
		rc = 1;
		goto out;
	}
	for (size_t i = 0; i < fr->n_signatures; i++) {
		const Qsign__V1__RequestSignature *s = fr->signatures[i];
		const Qsign__V1__KeyInfo *k = NULL;
		EVP_PKEY *pk = NULL;
		BIO *bio;
		uint8_t dg[QS_DIGEST_MAX];
		const uint8_t *blob = NULL;
		size_t blen = 0, dlen = 0;
		int vr;

		for (size_t j = 0; j < keys->n_keys; j++)
			if (strcmp(keys->keys[j]->name, s->key) == 0)
				k = keys->keys[j];
		if (k == NULL || (bio = BIO_new_mem_buf(k->public_pem, -1)) == NULL) {
			errmsg("warning: key %s not listed: signature %zu not verified", s->key, i);
			rc = rc < 0 ? rc : 1;
			continue;
		}
		pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		BIO_free(bio);
		/* The digest of the request's signature hash (a "digest"
		 * payload is it); Ed25519 verifies over the blob. */
		if (strcmp(v->kind, "digest") != 0) {
			blob = v->payload.data;
			blen = v->payload.len;
		}
		vr = pk == NULL ? QS_ERR_INVALID
		                : qs_request_digest(v->hash, blob == NULL, v->payload.data,
		                                    v->payload.len, dg, &dlen);
		if (vr == 0)
			vr = qs_rolesig_verify_hash(
			        pk, hsm_keytype_is_pkcs1(hsm_keytype_parse(k->algorithm)), v->hash,
			        dg, dlen, blob, blen, s->signature.data, s->signature.len);
		EVP_PKEY_free(pk);
		if (vr == QS_ERR_BADSIG) {
			errmsg("signature %zu by key %s does not verify over request %s's payload: "
			       "refusing it",
			       i, s->key, v->id);
			rc = -1;
		} else if (vr != 0) {
			errmsg("warning: signature %zu by key %s not verified: %s", i, s->key,
			       qs_errdetail());
			rc = rc < 0 ? rc : 1;
		}
	}
out:
	qsc_free(keys);
	qsc_free(v);
	return rc;
}

static int
fetch_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"out", required_argument, NULL, 'o'},
	        {"format", required_argument, NULL, 'F'},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__FetchResponse *fr = NULL;
	enum format fmt = FMT_DEFAULT;
	const char *out = NULL, *id;
	qsc_client *c = NULL;
	int r, vr;

	{
		const struct opt_keep keep[] = {{'o', &out, NULL}, {0, NULL, NULL}};
		const struct opts o = {"o:", opts, keep, format_opt, &fmt, 0, -1};
		if ((r = parse_opts(argc, argv, g, fetch_usage, &o)) >= 0)
			return r;
	}
	if (optind + 1 != argc) {
		fetch_usage(stderr);
		return EXIT_USAGE;
	}
	id = argv[optind];
	if (check_id_arg(id) != 0)
		return EXIT_USAGE;
	if (out != NULL && strlen(out) > PATH_MAX - 16) {
		errmsg("-o: path too long");
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_request_fetch(c, id, &fr)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (fr->n_signatures == 0) {
		errmsg("request %s has no signatures (%s)", id,
		       strcmp(fr->request->kind, "policy") == 0
		               ? "a policy change is applied, not signed"
		               : qsc_request_state_name((int)fr->request->state));
		r = EXIT_FAILED;
		goto out;
	}
	if ((vr = verify_fetched(c, fr)) < 0) {
		r = EXIT_FAILED;
		goto out;
	}
	if (out != NULL) {
		for (size_t i = 0; i < fr->n_signatures; i++) {
			char path[PATH_MAX];
			const Qsign__V1__RequestSignature *s = fr->signatures[i];
			if (fr->n_signatures == 1)
				snprintf(path, sizeof(path), "%s", out);
			else
				snprintf(path, sizeof(path), "%s.%zu", out, i);
			if (write_sig(path, fmt, s->signature.data, s->signature.len) != 0) {
				r = EXIT_FAILED;
				goto out;
			}
		}
	} else if (!g->json && fr->n_signatures == 1) {
		const Qsign__V1__RequestSignature *s = fr->signatures[0];
		if (write_sig(NULL, fmt, s->signature.data, s->signature.len) != 0) {
			r = EXIT_FAILED;
			goto out;
		}
	} else if (!g->json) {
		if (fmt == FMT_DER) {
			errmsg("%zu signatures: der needs -o OUT (written as OUT.0, OUT.1, ...)",
			       fr->n_signatures);
			r = EXIT_USAGE;
			goto out;
		}
		for (size_t i = 0; i < fr->n_signatures; i++) {
			const Qsign__V1__RequestSignature *s = fr->signatures[i];
			printf("%s ", s->key);
			fflush(stdout);
			if (write_sig(NULL, fmt == FMT_BASE64 ? FMT_BASE64 : FMT_HEX,
			              s->signature.data, s->signature.len) != 0) {
				r = EXIT_FAILED;
				goto out;
			}
		}
	}
	if (g->json) {
		json_t *a = json_array();
		char *h = hex_or_die(fr->request->payload_sha256.data, 32);
		for (size_t i = 0; i < fr->n_signatures; i++) {
			const Qsign__V1__RequestSignature *s = fr->signatures[i];
			char *sh = hex_or_die(s->signature.data, s->signature.len);
			json_t *e = json_pack("{s:s, s:o, s:o, s:s}", "key", s->key, "key_id",
			                      json_text(s->key_id), "algorithm",
			                      json_text(s->algorithm), "signature", sh);
			if (out != NULL && fr->n_signatures > 1) {
				char path[PATH_MAX];
				snprintf(path, sizeof(path), "%s.%zu", out, i);
				json_object_set_new(e, "file", json_string(path));
			} else if (out != NULL) {
				json_object_set_new(e, "file", json_string(out));
			}
			json_array_append_new(a, e);
			free(sh);
		}
		r = json_print(json_pack("{s:s, s:s, s:s, s:b, s:o}", "id", fr->request->id, "role",
		                         fr->request->role, "payload_sha256", h, "verified",
		                         vr == 0, "signatures", a),
		               JSON_INDENT(2)) == 0
		            ? EXIT_OK
		            : EXIT_FAILED;
		free(h);
		goto out;
	}
	r = EXIT_OK;
out:
	qsc_free(fr);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ policy */

static void
policy_show_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] policy show [--version N] [--json]\n"
	        "  Print the policy in force (or version N) as approved; \"version N (current\n"
	        "  M)\" goes to stderr.\n"
	        "example: %s -p auditor policy show --version 1 > policy-v1.json\n",
	        progname, progname);
}

/* --version N into *(unsigned long long *)ctx. */
static int
version_opt(void *ctx, int ch, char *arg)
{
	unsigned long long *version = ctx;
	char *end;

	(void)ch;
	errno = 0;
	*version = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || *version < 1 || arg[0] == '-') {
		errmsg("--version needs a policy version number (1, 2, ...)");
		return EXIT_USAGE;
	}
	return 0;
}

static int
policy_show_main(int argc, char **argv, struct globals *g)
{
	enum { O_VER = 256 };
	static const struct option opts[] = {
	        {"version", required_argument, NULL, O_VER},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__PolicyShowResponse *p = NULL;
	unsigned long long version = 0;
	qsc_client *c = NULL;
	int r;

	{
		const struct opt_keep keep[] = {{0, NULL, NULL}};
		const struct opts o = {"", opts, keep, version_opt, &version, 0, -1};
		if ((r = parse_opts(argc, argv, g, policy_show_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		policy_show_usage(stderr);
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_policy_show(c, version, &p)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		r = json_print(json_pack("{s:I, s:I, s:o}", "version", (json_int_t)p->version,
		                         "current_version", (json_int_t)p->current_version, "text",
		                         json_text(p->text)),
		               JSON_INDENT(2)) == 0
		            ? EXIT_OK
		            : EXIT_FAILED;
		goto out;
	}
	fprintf(stderr, "version %llu (current %llu)\n", (unsigned long long)p->version,
	        (unsigned long long)p->current_version);
	put_safe(stdout, p->text, 1);
	if (p->text[0] != '\0' && p->text[strlen(p->text) - 1] != '\n')
		fputc('\n', stdout);
	r = EXIT_OK;
out:
	qsc_free(p);
	qsc_close(c);
	return r;
}

static void
policy_propose_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] policy propose FILE [-m MESSAGE] [-t TOKEN]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  Submit FILE as the next policy version (a request of role and kind\n"
	        "  \"policy\"): it takes effect once a threshold of the current policy admins\n"
	        "  approved it. Its \"version\" must be the current one + 1. Prints the id;\n"
	        "  --wait follows it until applied (as `request wait`).\n"
	        "example: %s -p admin1 policy propose policy-v2.json -m \"add release-2 key\"\n",
	        progname, progname);
}

static int
policy_propose_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"message", required_argument, NULL, 'm'},
	        {"client-token", required_argument, NULL, 't'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const struct qs_payload_kind *pk = qs_payload_kind("policy");
	const char *msg = NULL, *token = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	{
		const struct opt_keep keep[] = {
		        {'m', &msg, NULL}, {'t', &token, NULL}, {0, NULL, NULL}};
		const struct opts o = {"m:t:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, policy_propose_usage, &o)) >= 0)
			return r;
	}
	if (optind + 1 != argc || pk == NULL) {
		policy_propose_usage(stderr);
		return EXIT_USAGE;
	}
	if (check_text_arg("message", msg) != 0)
		return EXIT_USAGE;
	if (token != NULL && !qs_name_valid(token, QS_MAX_NAME)) {
		errmsg("invalid client token: 1..%d of [A-Za-z0-9._@:+-]", QS_MAX_NAME);
		return EXIT_USAGE;
	}
	if (read_input(argv[optind], QS_MAX_POLICY_BYTES, &buf, &len) != 0)
		return EXIT_USAGE;
	if (pk->validate(buf, len) != 0) {
		errmsg("%s: %s", argv[optind], qs_errdetail());
		free(buf);
		return EXIT_USAGE;
	}
	r = submit_common(g, "policy", "policy", NULL, buf, len, msg, token);
	free(buf);
	return r;
}

/* ------------------------------------------------------------ command groups */

const struct command request_commands[] = {
        {"submit", submit_main, submit_usage, "ask the approvers of a quorum role to sign", NULL},
        {"list", list_main, list_usage, "requests you may see", NULL},
        {"show", show_main, show_usage, "a request, its votes and its decoded payload", NULL},
        {"cancel", cancel_main, cancel_usage, "withdraw a pending request you submitted", NULL},
        {"wait", wait_main, wait_usage, "follow a request until it is signed or ends", NULL},
        {"fetch", fetch_main, fetch_usage, "the signature(s) of a signed request", NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

const struct command policy_commands[] = {
        {"show", policy_show_main, policy_show_usage, "the policy in force, or version N", NULL},
        {"propose", policy_propose_main, policy_propose_usage,
         "submit the next policy version for approval", NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

void
request_usage(FILE *f)
{
	group_usage(f, "request", request_commands,
	            "-p ci request submit -r release -f app.tar.gz -m \"release 1.2.3\"");
}

void
policy_usage(FILE *f)
{
	group_usage(f, "policy", policy_commands, "-p auditor policy show");
}

int
request_main(int argc, char **argv, struct globals *g)
{
	return group_main(argc, argv, g, request_commands, request_usage);
}

int
policy_main(int argc, char **argv, struct globals *g)
{
	return group_main(argc, argv, g, policy_commands, policy_usage);
}
