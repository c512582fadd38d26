/*
 * qsign_tuf.c - `qsign tuf ...`: the daemon's TUF repositories.
 *
 * Quorum-gated changes (init, root changes, production promote) become
 * ordinary requests of kinds tuf-init / tuf-root / tuf-promote to the roles
 * the policy's "tuf.gates" names; their payloads are built here and
 * validated with the same proto/tuf_payload.c code the approvers' `qsign
 * request show` uses to describe them. The CI push and the views are Tuf
 * RPCs (proto/tuf.proto).
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cjson.h"
#include "identity.h"
#include "qs_limits.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"
#include "tuf_meta.h"
#include "tuf_payload.h"

/* Largest file pushed with its content in one call. */
#define PUSH_MAX_FILE (1024u * 1024)

static json_t *
parse_env(const Qsign__V1__TufGetMetadataResponse *m)
{
	json_t *env = NULL;

	if (tuf_envelope_parse(m->metadata.data, m->metadata.len, NULL, &env) != 0) {
		errmsg("the daemon sent malformed metadata: %s", qs_errdetail());
		return NULL;
	}
	return env;
}

/* The current envelope of repo/role from the daemon; NULL after saying why. */
static json_t *
get_env(const struct globals *g, qsc_client *c, const char *repo, const char *role)
{
	Qsign__V1__TufGetMetadataResponse *m = NULL;
	json_t *env;
	int r;

	if ((r = qsc_tuf_get_metadata(c, repo, role, 0, &m)) != 0) {
		report(g, c, r);
		return NULL;
	}
	env = parse_env(m);
	qsc_free(m);
	return env;
}

/* The signed part of repo/role (current). NULL after saying why. */
static json_t *
get_signed(const struct globals *g, qsc_client *c, const char *repo, const char *role)
{
	json_t *env = get_env(g, c, repo, role), *sp;

	if (env == NULL)
		return NULL;
	sp = json_incref(json_object_get(env, "signed"));
	json_decref(env);
	return sp;
}

/* The policy role the "tuf.gates" section names for gate, in buf. */
static int
gate_role(const struct globals *g, qsc_client *c, const char *gate, char *buf, size_t cap)
{
	Qsign__V1__PolicyShowResponse *ps = NULL;
	json_t *pol;
	const char *name;
	int r;

	if ((r = qsc_policy_show(c, 0, &ps)) != 0)
		return report(g, c, r);
	pol = json_loads(ps->text, 0, NULL);
	qsc_free(ps);
	name = json_string_value(
	        json_object_get(json_object_get(json_object_get(pol, "tuf"), "gates"), gate));
	if (name == NULL || !qs_name_valid(name, QS_MAX_NAME)) {
		json_decref(pol);
		errmsg("the policy in force has no tuf.gates.%s", gate);
		return EXIT_FAILED;
	}
	snprintf(buf, cap, "%s", name);
	json_decref(pol);
	return EXIT_OK;
}

/* Submit payload pl (consumed) of kind to the gate; print the id. */
static int
submit(struct globals *g, qsc_client *c, const char *gate, const char *kind, json_t *pl,
       const char *message)
{
	Qsign__V1__RequestView *v = NULL;
	char role[QS_MAX_NAME + 1], *text;
	int r;

	if ((r = gate_role(g, c, gate, role, sizeof(role))) != EXIT_OK) {
		json_decref(pl);
		return r;
	}
	text = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(pl);
	if (text == NULL) {
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	r = qsc_request_submit(c, role, kind, (const uint8_t *)text, strlen(text), message, NULL,
	                       &v);
	free(text);
	if (r != 0)
		return report(g, c, r);
	r = submitted(g, c, v);
	qsc_free(v);
	return r;
}

/* ------------------------------------------------------------ init */

static void
init_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf init [-m MESSAGE] [--wait[=SECONDS]] [--json]\n"
	        "  Ask the TUF admins (tuf.gates.admin) to create root v1 of the CI and\n"
	        "  production repositories from the policy's \"tuf\" section.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf init -m \"first root\" --wait\n",
	        progname, progname);
}

/* The options of a root change or init: -m MESSAGE and --wait. */
static const struct option msg_options[] = {
        {"message", required_argument, NULL, 'm'},
        WAIT_OPTION,
        {NULL, 0, NULL, 0},
};

/* -m MESSAGE into *msg, --wait, and nargs operands; -1 to go on. */
static int
msg_opts(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const char **msg,
         int nargs)
{
	const struct opt_keep keep[] = {{'m', msg, NULL}, {0, NULL, NULL}};

	return parse_opts(argc, argv, g, usage,
	                  &(const struct opts){"m:", msg_options, keep, NULL, NULL, nargs, nargs});
}

static int
init_main(int argc, char **argv, struct globals *g)
{
	const char *msg = NULL;
	qsc_client *c = NULL;
	int r;

	if ((r = msg_opts(argc, argv, g, init_usage, &msg, 0)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	r = submit(g, c, "admin", "tuf-init", json_pack("{s:s}", "op", "init"), msg);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ show-root */

static void
show_root_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf show-root [--prod] [--version N] [--role ROLE]\n"
	        "  Print the CI (default) or production root.json (or --role targets |\n"
	        "  snapshot | timestamp) as the daemon published it (it is JSON already).\n"
	        "example: %s -p auditor tuf show-root --prod --version 2 > 2.root.json\n",
	        progname, progname);
}

/* --prod and --version N of show-root. */
struct show_root_opts {
	const char *repo;
	unsigned long long version;
};

static int
show_root_opt(void *ctx, int ch, char *arg)
{
	struct show_root_opts *o = ctx;
	char *end;

	if (ch == 'p') {
		o->repo = "prod";
		return 0;
	}
	o->version = strtoull(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || o->version == 0) {
		errmsg("--version: a positive integer");
		return EXIT_USAGE;
	}
	return 0;
}

static int
show_root_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"prod", no_argument, NULL, 'p'},
	        {"version", required_argument, NULL, 'v'},
	        {"role", required_argument, NULL, 'r'},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__TufGetMetadataResponse *m = NULL;
	struct show_root_opts so = {"ci", 0};
	const char *role = "root";
	qsc_client *c = NULL;
	json_t *env;
	int r;

	{
		const struct opt_keep keep[] = {{'r', &role, NULL}, {0, NULL, NULL}};
		const struct opts o = {"pv:r:", opts, keep, show_root_opt, &so, 0, -1};
		if ((r = parse_opts(argc, argv, g, show_root_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		show_root_usage(stderr);
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_tuf_get_metadata(c, so.repo, role, so.version, &m)) != 0) {
		r = report(g, c, r);
		qsc_close(c);
		return r;
	}
	qsc_close(c);
	env = parse_env(m);
	qsc_free(m);
	if (env == NULL)
		return EXIT_FAILED;
	return json_print(env, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 ? EXIT_OK : EXIT_FAILED;
}

/* ------------------------------------------------------------ push */

static void
push_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf push-targets [--custom JSON] [--name NAME]\n"
	        "           [--remove NAME]... [--no-upload] [--json] FILE...\n"
	        "  Add FILEs (named by their base name, or --name for a single file) to the CI\n"
	        "  targets, signed online; snapshot and timestamp follow. The contents are\n"
	        "  published under targets/ unless --no-upload. --custom sets the targets'\n"
	        "  \"custom\" object. --json: the new versions.\n"
	        "example: %s -p ci tuf push-targets fw-1.2.3.bin --custom '{\"hw\": \"rev-b\"}'\n",
	        progname, progname);
}

/* The --remove NAMEs of push-targets (argc + 1 slots). */
struct push_removes {
	char **names;
	size_t n;
};

static int
push_remove_opt(void *ctx, int ch, char *arg)
{
	struct push_removes *o = ctx;

	(void)ch;
	o->names[o->n++] = arg;
	return 0;
}

/* What push-targets sends: the files' targets entries and their contents. */
struct push_files {
	json_t *targets; /* name -> {length, hashes, custom} */
	char **names;    /* n names, NULL-terminated */
	uint8_t **data;  /* n contents, NULL-terminated */
	size_t *lens;
};

static void
push_files_free(struct push_files *f)
{
	for (size_t i = 0; f->names != NULL && f->names[i] != NULL; i++)
		free(f->names[i]);
	for (size_t i = 0; f->data != NULL && f->data[i] != NULL; i++)
		free(f->data[i]);
	free(f->names);
	free(f->data);
	free(f->lens);
	json_decref(f->targets);
	memset(f, 0, sizeof(*f));
}

/* One FILE read and hashed into its targets entry (named name, or by its
 * base name), with custom if given. EXIT_OK, EXIT_USAGE (it cannot be
 * read), EXIT_FAILED (out of memory, not said). */
static int
push_read_file(struct push_files *f, size_t i, const char *path, const char *name, json_t *custom)
{
	uint8_t dg[32];
	char *hex, *copy;
	json_t *t;

	if (read_input(path, PUSH_MAX_FILE, &f->data[i], &f->lens[i]) != 0)
		return EXIT_USAGE;
	if ((copy = strdup(path)) == NULL)
		return EXIT_FAILED;
	f->names[i] = strdup(name != NULL ? name : basename(copy));
	free(copy);
	qs_sha256(f->data[i], f->lens[i], dg);
	if (f->names[i] == NULL || (hex = qs_hex(dg, 32)) == NULL)
		return EXIT_FAILED;
	t = json_pack("{s:I, s:{s:s}}", "length", (json_int_t)f->lens[i], "hashes", "sha256", hex);
	free(hex);
	if (custom != NULL)
		json_object_set(t, "custom", custom);
	json_object_set_new(f->targets, f->names[i], t);
	return EXIT_OK;
}

/* Step 1 of push-targets: the n FILEs at paths into f, and the targets
 * document they make (*text, canonical) checked as the daemon will.
 * EXIT_OK, EXIT_USAGE, EXIT_FAILED (said). */
static int
push_load(char **paths, size_t n, const char *name, json_t *custom, struct push_files *f,
          char **text)
{
	int r;

	if ((f->targets = json_object()) == NULL ||
	    (f->names = calloc(n + 1, sizeof(*f->names))) == NULL ||
	    (f->data = calloc(n + 1, sizeof(*f->data))) == NULL ||
	    (f->lens = calloc(n + 1, sizeof(*f->lens))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		if ((r = push_read_file(f, i, paths[i], name, custom)) != EXIT_OK) {
			if (r == EXIT_FAILED)
				goto nomem;
			return r;
		}
	if (tuf_targets_check(f->targets) != 0) {
		errmsg("%s", qs_errdetail());
		return EXIT_USAGE;
	}
	if ((*text = json_dumps(f->targets, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto nomem;
	return EXIT_OK;
nomem:
	errmsg("out of memory");
	return EXIT_FAILED;
}

/* Step 3 of push-targets: the new versions. */
static void
push_print(const struct globals *g, const Qsign__V1__TufPushTargetsResponse *resp)
{
	if (g->json)
		json_print(json_pack("{s:I, s:I, s:I}", "targets_version",
		                     (json_int_t)resp->targets_version, "snapshot_version",
		                     (json_int_t)resp->snapshot_version, "timestamp_version",
		                     (json_int_t)resp->timestamp_version),
		           JSON_INDENT(2));
	else
		printf("CI targets version %llu, snapshot %llu, timestamp %llu\n",
		       (unsigned long long)resp->targets_version,
		       (unsigned long long)resp->snapshot_version,
		       (unsigned long long)resp->timestamp_version);
}

static int
push_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"custom", required_argument, NULL, 'c'},
	        {"name", required_argument, NULL, 'n'},
	        {"remove", required_argument, NULL, 'R'},
	        {"no-upload", no_argument, NULL, 'U'},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__TufPushTargetsResponse *resp = NULL;
	struct push_files f = {0};
	const char *custom = NULL, *name = NULL;
	char **remove = NULL, *text = NULL;
	size_t nremove = 0, nfiles;
	json_t *cj = NULL;
	qsc_client *c = NULL;
	int r, no_upload = 0;

	if ((remove = calloc((size_t)argc + 1, sizeof(*remove))) == NULL) {
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	{
		const struct opt_keep keep[] = {{'c', &custom, NULL},
		                                {'n', &name, NULL},
		                                {'U', NULL, &no_upload},
		                                {0, NULL, NULL}};
		struct push_removes rm = {remove, 0};
		const struct opts o = {"c:n:R:U", opts, keep, push_remove_opt, &rm, 0, -1};
		if ((r = parse_opts(argc, argv, g, push_usage, &o)) >= 0)
			goto out;
		nremove = rm.n;
	}
	nfiles = (size_t)(argc - optind);
	if ((nfiles == 0 && nremove == 0) || (name != NULL && nfiles != 1)) {
		push_usage(stderr);
		r = EXIT_USAGE;
		goto out;
	}
	if (custom != NULL && ((cj = json_loads(custom, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	                       !json_is_object(cj))) {
		errmsg("--custom: a JSON object");
		r = EXIT_USAGE;
		goto out;
	}
	/* 1. The files and the targets document they make. */
	if ((r = push_load(argv + optind, nfiles, name, cj, &f, &text)) != EXIT_OK)
		goto out;
	/* 2. The daemon signs and publishes them. */
	if ((r = connect_client(g, &c)) != EXIT_OK)
		goto out;
	if ((r = qsc_tuf_push_targets(c, text, f.names, f.data, f.lens, no_upload ? 0 : nfiles,
	                              remove, nremove, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	/* 3. What was published. */
	push_print(g, resp);
	r = EXIT_OK;
out:
	qsc_free(resp);
	qsc_close(c);
	push_files_free(&f);
	free(remove);
	free(text);
	json_decref(cj);
	return r;
}

/* ------------------------------------------------------------ promote */

static void
promote_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf promote [--expires DAYS] [--remove NAME]...\n"
	        "           [-m MSG] [--wait[=SECONDS]] [--json] NAME...\n"
	        "  Ask the production approvers (tuf.gates.promote) to sign production\n"
	        "  targets: the ones in force plus the CI targets NAME..., without the\n"
	        "  --remove ones, expiring in DAYS (default 90). `qsign request show ID`\n"
	        "  prints the diff.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p ci tuf promote -m \"release 1.2.3\" fw-1.2.3.bin\n",
	        progname, progname);
}

/* --expires DAYS and the --remove NAMEs of promote. */
struct promote_opts {
	long days;
	json_t *removed;
};

static int
promote_opt(void *ctx, int ch, char *arg)
{
	struct promote_opts *o = ctx;
	char *end;

	if (ch == 'R') {
		json_array_append_new(o->removed, json_string(arg));
		return 0;
	}
	o->days = strtol(arg, &end, 10);
	if (*arg == '\0' || *end != '\0' || o->days < 1 || o->days > 3650) {
		errmsg("--expires: days, 1..3650");
		return EXIT_USAGE;
	}
	return 0;
}

static int
promote_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"expires", required_argument, NULL, 'e'},
	        {"remove", required_argument, NULL, 'R'},
	        {"message", required_argument, NULL, 'm'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const char *msg = NULL;
	qsc_client *c = NULL;
	json_t *ci = NULL, *prod = NULL, *targets = NULL, *pl = NULL;
	struct promote_opts po = {90, json_array()};
	char exp[TUF_TIME_LEN];
	int r;

	{
		const struct opt_keep keep[] = {{'m', &msg, NULL}, {0, NULL, NULL}};
		const struct opts o = {"e:R:m:", opts, keep, promote_opt, &po, 0, -1};
		if ((r = parse_opts(argc, argv, g, promote_usage, &o)) >= 0) {
			json_decref(po.removed);
			return r;
		}
	}
	if (optind == argc && json_array_size(po.removed) == 0) {
		promote_usage(stderr);
		json_decref(po.removed);
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK) {
		json_decref(po.removed);
		return r;
	}
	r = EXIT_FAILED;
	if ((ci = get_signed(g, c, "ci", "targets")) == NULL ||
	    (prod = get_signed(g, c, "prod", "targets")) == NULL)
		goto out;
	targets = json_deep_copy(json_object_get(prod, "targets"));
	for (int i = optind; i < argc; i++) {
		json_t *t = json_object_get(json_object_get(ci, "targets"), argv[i]);
		if (t == NULL) {
			errmsg("no CI target called %s", argv[i]);
			goto out;
		}
		json_object_set(targets, argv[i], t);
	}
	{
		size_t i;
		json_t *x;
		json_array_foreach(po.removed, i, x)
		{
			if (json_object_del(targets, json_string_value(x)) != 0) {
				errmsg("no production target called %s", json_string_value(x));
				goto out;
			}
		}
	}
	tuf_time_format((int64_t)time(NULL) + po.days * 86400, exp);
	pl = json_pack("{s:I, s:s, s:O, s:{s:O, s:O, s:O}}", "version",
	               json_integer_value(json_object_get(prod, "version")) + 1, "expires", exp,
	               "targets", targets, "base", "version", json_object_get(prod, "version"),
	               "expires", json_object_get(prod, "expires"), "targets",
	               json_object_get(prod, "targets"));
	r = submit(g, c, "promote", "tuf-promote", pl, msg);
	pl = NULL;
out:
	qsc_close(c);
	json_decref(ci);
	json_decref(prod);
	json_decref(targets);
	json_decref(pl);
	json_decref(po.removed);
	return r;
}

/* ------------------------------------------------------------ root changes */

static void
rotate_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf rotate-key [--keyid KEYID] [-m MSG]\n"
	        "           [--wait[=SECONDS]] [--json] ROLE\n"
	        "  Ask the TUF admins for root version N+1 in which ROLE has a new key,\n"
	        "  generated in the token on approval, instead of KEYID (default: the role's\n"
	        "  only key). Each repository has roles of its own: root, targets, snapshot,\n"
	        "  timestamp (CI) and prod-root, prod-targets, prod-snapshot, prod-timestamp\n"
	        "  (production).\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf rotate-key -m \"yearly\" timestamp\n",
	        progname, progname);
}

static void
threshold_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf set-threshold [-m MSG] [--wait[=SECONDS]]\n"
	        "           [--json] ROLE N\n"
	        "  Ask the TUF admins for root version N+1 with ROLE's (root, prod-root or\n"
	        "  prod-targets) threshold set to N.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf set-threshold -m \"three admins\" prod-root 3\n",
	        progname, progname);
}

static int
root_change(struct globals *g, json_t *pl, const char *msg)
{
	qsc_client *c = NULL;
	json_t *root;
	int r;

	if ((r = connect_client(g, &c)) != EXIT_OK) {
		json_decref(pl);
		return r;
	}
	if ((root = get_signed(g, c, "ci", "root")) == NULL) {
		json_decref(pl);
		qsc_close(c);
		return EXIT_FAILED;
	}
	json_object_set(pl, "base_version", json_object_get(root, "version"));
	json_decref(root);
	r = submit(g, c, "admin", "tuf-root", pl, msg);
	qsc_close(c);
	return r;
}

static int
rotate_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"keyid", required_argument, NULL, 'k'},
	        {"message", required_argument, NULL, 'm'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const char *msg = NULL, *keyid = NULL;
	json_t *pl;
	int r;

	{
		const struct opt_keep keep[] = {
		        {'k', &keyid, NULL}, {'m', &msg, NULL}, {0, NULL, NULL}};
		const struct opts o = {"k:m:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, rotate_usage, &o)) >= 0)
			return r;
	}
	if (argc - optind != 1) {
		rotate_usage(stderr);
		return EXIT_USAGE;
	}
	pl = json_pack("{s:s, s:s}", "op", "rotate-key", "role", argv[optind]);
	if (keyid != NULL)
		json_object_set_new(pl, "keyid", json_string(keyid));
	return root_change(g, pl, msg);
}

static int
threshold_main(int argc, char **argv, struct globals *g)
{
	const char *msg = NULL;
	char *end;
	long n;
	int r;

	if ((r = msg_opts(argc, argv, g, threshold_usage, &msg, 2)) >= 0)
		return r;
	n = strtol(argv[optind + 1], &end, 10);
	if (*end != '\0' || n < 1 || n > 64) {
		errmsg("threshold: 1..64");
		return EXIT_USAGE;
	}
	return root_change(g,
	                   json_pack("{s:s, s:s, s:I}", "op", "set-threshold", "role", argv[optind],
	                             "threshold", (json_int_t)n),
	                   msg);
}

static void
add_key_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf add-key [-m MSG] [--wait[=SECONDS]] [--json] ROLE\n"
	        "       %s [GLOBAL OPTIONS] tuf add-key [-m MSG] --external NAME\n"
	        "           --holder PRINCIPAL --public-key FILE ROLE\n"
	        "  Ask the TUF admins for root version N+1 in which ROLE (root, prod-root or\n"
	        "  prod-targets) has one more key: generated in the daemon's token on\n"
	        "  approval, or an external ECDSA P-256 key that PRINCIPAL (an approver of\n"
	        "  the role's gate) holds in their own token; FILE is its SPKI PEM\n"
	        "  (`qsign-token pubkey` prints it). The holder signs with `qsign tuf sign`.\n"
	        "  A key of one repository is refused for the other: an admin holds one\n"
	        "  root key per repository.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf add-key --external alice-prod --holder admin1 "
	        "--public-key alice-prod.pem prod-root\n",
	        progname, progname, progname);
}

/* The long-only options of add-key and separate. */
enum { O_EXT = 256, O_HOLDER, O_PUB };

static int
add_key_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"external", required_argument, NULL, O_EXT},
	        {"holder", required_argument, NULL, O_HOLDER},
	        {"public-key", required_argument, NULL, O_PUB},
	        {"message", required_argument, NULL, 'm'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const char *msg = NULL, *name = NULL, *holder = NULL, *pub = NULL;
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	json_t *pl;
	int r;

	{
		const struct opt_keep keep[] = {{O_EXT, &name, NULL},
		                                {O_HOLDER, &holder, NULL},
		                                {O_PUB, &pub, NULL},
		                                {'m', &msg, NULL},
		                                {0, NULL, NULL}};
		const struct opts o = {"m:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, add_key_usage, &o)) >= 0)
			return r;
	}
	if (argc - optind != 1 || (name == NULL) != (holder == NULL) ||
	    (name == NULL) != (pub == NULL)) {
		add_key_usage(stderr);
		return EXIT_USAGE;
	}
	pl = json_pack("{s:s, s:s}", "op", "add-key", "role", argv[optind]);
	if (name != NULL) {
		char *norm = NULL;
		if (read_input(pub, 8192, &pem, &pem_len) != 0) {
			json_decref(pl);
			return EXIT_FAILED;
		}
		pem = realloc(pem, pem_len + 1);
		if (pem == NULL) {
			json_decref(pl);
			errmsg("out of memory");
			return EXIT_FAILED;
		}
		pem[pem_len] = '\0';
		if (tuf_pem_normalize((const char *)pem, &norm) != 0) {
			errmsg("%s: %s", pub, qs_errdetail());
			free(pem);
			json_decref(pl);
			return EXIT_FAILED;
		}
		json_object_set_new(pl, "external",
		                    json_pack("{s:s, s:s, s:s}", "name", name, "holder", holder,
		                              "public_key", norm));
		free(norm);
		free(pem);
	}
	return root_change(g, pl, msg);
}

static void
remove_key_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf remove-key [-m MSG] [--wait[=SECONDS]] [--json]\n"
	        "           ROLE KEYID\n"
	        "  Ask the TUF admins for root version N+1 without ROLE's (root, prod-root or\n"
	        "  prod-targets) key KEYID. Refused if the role could no longer meet its\n"
	        "  threshold.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf remove-key root "
	        "8c1d0e6f2b7a4c3d9e5f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d\n",
	        progname, progname);
}

static int
remove_key_main(int argc, char **argv, struct globals *g)
{
	const char *msg = NULL;
	int r;

	if ((r = msg_opts(argc, argv, g, remove_key_usage, &msg, 2)) >= 0)
		return r;
	return root_change(g,
	                   json_pack("{s:s, s:s, s:s}", "op", "remove-key", "role", argv[optind],
	                             "keyid", argv[optind + 1]),
	                   msg);
}

static void
expiry_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf set-expiry [-m MSG] [--wait[=SECONDS]] [--json]\n"
	        "           ROLE DURATION\n"
	        "  Ask the TUF admins for root version N+1 after which ROLE's metadata is\n"
	        "  signed to expire DURATION (\"365d\", \"12h\"; s, m, h, d) after each\n"
	        "  signing. Targets in force are re-signed with the new expiry (targets: CI,\n"
	        "  prod-targets: production); snapshot and timestamp bounds follow\n"
	        "  tuf.refresh. ROLE is a CI role (root, targets, snapshot, timestamp) or a\n"
	        "  production one (prod-root, prod-targets, prod-snapshot, prod-timestamp).\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf set-expiry prod-targets 180d\n",
	        progname, progname);
}

static int
expiry_main(int argc, char **argv, struct globals *g)
{
	const char *msg = NULL;
	int r;

	if ((r = msg_opts(argc, argv, g, expiry_usage, &msg, 2)) >= 0)
		return r;
	return root_change(g,
	                   json_pack("{s:s, s:s, s:s}", "op", "set-expiry", "role", argv[optind],
	                             "expires", argv[optind + 1]),
	                   msg);
}

static void
separate_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf separate [-m MSG] [--external NAME\n"
	        "           --holder PRINCIPAL --public-key FILE]... [--wait[=SECONDS]] [--json]\n"
	        "  Ask the TUF admins for root version N+1 in which production shares no key\n"
	        "  with CI (repositories initialised before each had keys of its own; `tuf\n"
	        "  review` lists the shared keys): every shared daemon key of a production\n"
	        "  role is replaced by a new key generated in the same token, every shared\n"
	        "  external key leaves prod-root, and each --external key (the holder's\n"
	        "  production root key, SPKI PEM in FILE) joins it. Holders then sign both\n"
	        "  new roots with `qsign tuf sign -i CI_KEY -i PROD_KEY`.\n"
	        "  Prints the request id and the next step; --wait[=SECONDS] follows it to\n"
	        "  the end and says what was published where; --json prints the request.\n"
	        "example: %s -p admin1 tuf separate --external alice-prod --holder admin1 "
	        "--public-key alice-prod.pem\n",
	        progname, progname);
}

/* The SPKI PEM in file `path`, normalised; NULL after saying why. */
static char *
read_pem(const char *path)
{
	uint8_t *pem = NULL;
	size_t pem_len = 0;
	char *norm = NULL;

	if (read_input(path, 8192, &pem, &pem_len) != 0)
		return NULL;
	if ((pem = realloc(pem, pem_len + 1)) == NULL) {
		errmsg("out of memory");
		return NULL;
	}
	pem[pem_len] = '\0';
	if (tuf_pem_normalize((const char *)pem, &norm) != 0)
		errmsg("%s: %s", path, qs_errdetail());
	free(pem);
	return norm;
}

/* The --external/--holder/--public-key triples of separate. */
struct externals {
	const char *name[16], *holder[16], *pub[16];
	size_t nn, nh, np;
};

static int
external_opt(void *ctx, int ch, char *arg)
{
	struct externals *x = ctx;

	if (x->nn == 16 || x->nh == 16 || x->np == 16) {
		errmsg("at most 16 external keys");
		return EXIT_USAGE;
	}
	if (ch == O_EXT)
		x->name[x->nn++] = arg;
	else if (ch == O_HOLDER)
		x->holder[x->nh++] = arg;
	else
		x->pub[x->np++] = arg;
	return 0;
}

static int
separate_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"external", required_argument, NULL, O_EXT},
	        {"holder", required_argument, NULL, O_HOLDER},
	        {"public-key", required_argument, NULL, O_PUB},
	        {"message", required_argument, NULL, 'm'},
	        WAIT_OPTION,
	        {NULL, 0, NULL, 0},
	};
	const char *msg = NULL;
	struct externals x = {0};
	json_t *pl, *ext = NULL;
	int r;

	{
		const struct opt_keep keep[] = {{'m', &msg, NULL}, {0, NULL, NULL}};
		const struct opts o = {"m:", opts, keep, external_opt, &x, 0, -1};
		if ((r = parse_opts(argc, argv, g, separate_usage, &o)) >= 0)
			return r;
	}
	if (argc != optind || x.nn != x.nh || x.nn != x.np) {
		separate_usage(stderr);
		return EXIT_USAGE;
	}
	if ((pl = json_pack("{s:s}", "op", "separate")) == NULL ||
	    (x.nn > 0 && (ext = json_array()) == NULL)) {
		json_decref(pl);
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	for (size_t i = 0; i < x.nn; i++) {
		char *norm = read_pem(x.pub[i]);
		if (norm == NULL) {
			json_decref(pl);
			json_decref(ext);
			return EXIT_FAILED;
		}
		json_array_append_new(ext, json_pack("{s:s, s:s, s:s}", "name", x.name[i], "holder",
		                                     x.holder[i], "public_key", norm));
		free(norm);
	}
	if (x.nn > 0)
		json_object_set_new(pl, "external", ext);
	return root_change(g, pl, msg);
}

/* ------------------------------------------------------------ external signing */

/* What a prepared document says, in a few lines: expiry, and the roles'
 * thresholds and keyids of a root, or the number of targets. */
static void
describe_signed(const Qsign__V1__TufPreparedDoc *d)
{
	json_t *j = json_loadb((const char *)d->signed_json.data, d->signed_json.len,
	                       JSON_REJECT_DUPLICATES, NULL);
	const char *name;
	json_t *ro;

	if (j == NULL) {
		printf("      (unreadable document)\n");
		return;
	}
	printf("      expires ");
	put_safe(stdout, json_string_value(json_object_get(j, "expires")), 0);
	if (strcmp(d->role, "targets") == 0)
		printf(", %zu target(s)", json_object_size(json_object_get(j, "targets")));
	putchar('\n');
	json_object_foreach(json_object_get(j, "roles"), name, ro)
	{
		json_t *id;
		size_t i;
		printf("      %-9s %lld of", name,
		       (long long)json_integer_value(json_object_get(ro, "threshold")));
		json_array_foreach(json_object_get(ro, "keyids"), i, id)
		{
			printf(" %.12s", json_string_value(id) ? json_string_value(id) : "?");
		}
		putchar('\n');
	}
	json_decref(j);
}

static void
print_prepared(const Qsign__V1__TufPrepareResponse *p)
{
	printf("request ");
	put_safe(stdout, p->request_id, 0);
	printf(": ");
	put_safe(stdout, p->status, 0);
	putchar('\n');
	for (size_t i = 0; i < p->n_docs; i++) {
		const Qsign__V1__TufPreparedDoc *d = p->docs[i];
		uint8_t dg[32];
		char *hx;
		qs_sha256(d->canonical.data, d->canonical.len, dg);
		hx = hex_or_die(dg, 32);
		printf("  [%zu] ", i);
		put_safe(stdout, d->repo, 0);
		putchar(' ');
		put_safe(stdout, d->role, 0);
		printf(" version %llu  sha256 %s  missing %u\n", (unsigned long long)d->version, hx,
		       d->missing);
		free(hx);
		describe_signed(d);
		for (size_t k = 0; k < d->n_wanted; k++) {
			int done = 0;
			for (size_t j = 0; j < d->n_signed_by; j++)
				done |= strcmp(d->signed_by[j], d->wanted[k]->keyid) == 0;
			printf("      %s %.16s... ", done ? "signed " : "waiting",
			       d->wanted[k]->keyid);
			put_safe(stdout, d->wanted[k]->name, 0);
			printf(" (held by ");
			put_safe(stdout, d->wanted[k]->holder, 0);
			printf(")\n");
		}
	}
}

static int
prepared_json(const Qsign__V1__TufPrepareResponse *p)
{
	json_t *docs = json_array();

	for (size_t i = 0; i < p->n_docs; i++) {
		const Qsign__V1__TufPreparedDoc *d = p->docs[i];
		json_t *w = json_array(), *sb = json_array();
		uint8_t dg[32];
		char *hx;
		for (size_t k = 0; k < d->n_wanted; k++)
			json_array_append_new(w, json_pack("{s:s, s:s, s:s}", "keyid",
			                                   d->wanted[k]->keyid, "name",
			                                   d->wanted[k]->name, "holder",
			                                   d->wanted[k]->holder));
		for (size_t j = 0; j < d->n_signed_by; j++)
			json_array_append_new(sb, json_string(d->signed_by[j]));
		qs_sha256(d->canonical.data, d->canonical.len, dg);
		hx = hex_or_die(dg, 32);
		json_array_append_new(docs, json_pack("{s:s, s:s, s:I, s:s, s:o, s:o, s:I}", "repo",
		                                      d->repo, "role", d->role, "version",
		                                      (json_int_t)d->version, "sha256", hx,
		                                      "wanted", w, "signed_by", sb, "missing",
		                                      (json_int_t)d->missing));
		free(hx);
	}
	return json_print(json_pack("{s:s, s:s, s:o}", "request", p->request_id, "status",
	                            p->status, "documents", docs),
	                  JSON_INDENT(2)) == 0
	               ? EXIT_OK
	               : EXIT_FAILED;
}

static void
status_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf status REQUEST_ID [--json]\n"
	        "  Show the documents TUF request REQUEST_ID will publish (prepared now if it\n"
	        "  is not yet), which external keys may sign each, which have, and how many\n"
	        "  signatures are still missing.\n"
	        "example: %s -p admin1 tuf status %s\n",
	        progname, progname, "3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5");
}

static int
status_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__TufPrepareResponse *p = NULL;
	qsc_client *c = NULL;
	int r;

	if ((r = parse_opts(argc, argv, g, status_usage, PLAIN_OPTS(1))) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_tuf_prepare(c, argv[optind], &p)) != 0) {
		r = report(g, c, r);
		qsc_close(c);
		return r;
	}
	qsc_close(c);
	if (g->json)
		r = prepared_json(p);
	else {
		print_prepared(p);
		r = EXIT_OK;
	}
	qsc_free(p);
	return r;
}

static void
sign_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf sign [-i KEY]... [--pin-source SRC] "
	        "[--no-approve]\n"
	        "           [--yes] [-m MSG] [--json] REQUEST_ID\n"
	        "Sign, with your own offline TUF keys, the metadata TUF request REQUEST_ID will\n"
	        "publish, hand the signatures to the daemon, and approve the request (bound to\n"
	        "the payload's SHA-256 you were shown) unless --no-approve.\n"
	        "  -i, --key KEY      a pkcs11: URI of your key in your own token (module from\n"
	        "                     the URI's module-path or QSIGN_PKCS11_MODULE), or a PEM\n"
	        "                     file; default: your identity. Repeat it for each of\n"
	        "                     your keys (up to 4): the CI and production roots have\n"
	        "                     keys of their own, so a root holder gives both, and\n"
	        "                     each signs the documents it counts for (one prompt,\n"
	        "                     one approval)\n"
	        "  --pin-source SRC   file:/path or env:NAME, when the URI has no pin-source\n"
	        "                     (default: QSIGN_PIN_FILE)\n"
	        "  --yes              sign without asking (required when stdin is no terminal)\n"
	        "Only the documents your key counts for are signed. Each is checked first:\n"
	        "canonical TUF metadata of the announced role and version, and exactly what\n"
	        "the request's payload asks for - a new root differs from the root in force\n"
	        "(itself signed by its own threshold) only as the change says; production\n"
	        "targets are the promoted ones or those in force; a root v1 matches the\n"
	        "policy's tuf.roles. Any other difference: nothing is signed (exit 1).\n"
	        "The daemon verifies every signature and publishes once every threshold is\n"
	        "met.\n"
	        "example: %s -p admin1 tuf sign 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 -i "
	        "'pkcs11:token=admin1;object=ci-root' -i 'pkcs11:token=admin1;object=prod-root'\n",
	        progname, progname);
}

/* The bytes to sign are the canonical JSON (which we compute ourselves
 * from the plain JSON the daemon also sends) of TUF metadata of the role
 * and version announced: never sign anything else with an offline key. */
static int
check_doc(const Qsign__V1__TufPreparedDoc *d)
{
	json_t *j = json_loadb((const char *)d->signed_json.data, d->signed_json.len,
	                       JSON_REJECT_DUPLICATES, NULL);
	char *canon = NULL;
	size_t len = 0;
	int ok;

	ok = j != NULL && json_is_string(json_object_get(j, "_type")) &&
	     strcmp(json_string_value(json_object_get(j, "_type")), d->role) == 0 &&
	     json_integer_value(json_object_get(j, "version")) == (json_int_t)d->version &&
	     json_is_string(json_object_get(j, "expires")) &&
	     qs_cjson_encode(j, &canon, &len) == 0 && len == d->canonical.len &&
	     memcmp(canon, d->canonical.data, len) == 0;
	free(canon);
	json_decref(j);
	return ok ? 0 : -1;
}

/* ------------------------------------------------------------ what a holder signs */

/*
 * An offline key must not sign whatever a (possibly compromised) daemon
 * hands it: `tuf sign` rebuilds what each prepared document must say from
 * the request's payload (which the approvers saw) and the metadata in
 * force, and refuses any other difference. Each check returns 0, or -1
 * after saying what is wrong.
 */

/* The set of a JSON array of strings as an object {s: true}. */
static json_t *
str_set(const json_t *a)
{
	json_t *s = json_object(), *v;
	size_t i;

	json_array_foreach(a, i, v)
	{
		if (json_is_string(v))
			json_object_set_new(s, json_string_value(v), json_true());
	}
	return s;
}

/* Elements of set a not in set b, counted; *one = one of them. */
static size_t
set_minus(const json_t *a, const json_t *b, const char **one)
{
	const char *k;
	json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)a, k, v)
	{
		if (json_object_get(b, k) == NULL) {
			n++;
			if (one != NULL)
				*one = k;
		}
	}
	return n;
}

/* Root `sp` (an envelope's signed part) signed by a threshold of its own
 * root keys in env's signatures. */
static int
root_self_signed(const json_t *env)
{
	const json_t *sp = json_object_get(env, "signed");
	json_t *ro = json_object_get(json_object_get(sp, "roles"), "root"), *sig, *seen;
	json_t *ids = str_set(json_object_get(ro, "keyids"));
	char *canon = NULL;
	size_t len = 0, i, good = 0;
	uint8_t dg[32];

	seen = json_object();
	if (tuf_signed_digest(sp, &canon, &len, dg) == 0)
		json_array_foreach(json_object_get(env, "signatures"), i, sig)
		{
			const char *kid = json_string_value(json_object_get(sig, "keyid"));
			json_t *key = kid != NULL
			                      ? json_object_get(json_object_get(sp, "keys"), kid)
			                      : NULL;
			if (kid == NULL || key == NULL || json_object_get(ids, kid) == NULL ||
			    json_object_get(seen, kid) != NULL)
				continue;
			if (tuf_verify_key(key, (const uint8_t *)canon, len,
			                   json_string_value(json_object_get(sig, "sig"))) == 0) {
				good++;
				json_object_set_new(seen, kid, json_true());
			}
		}
	free(canon);
	json_decref(ids);
	json_decref(seen);
	return good >= (size_t)json_integer_value(json_object_get(ro, "threshold")) && good > 0
	               ? 0
	               : -1;
}

/* Seconds of a "<n><s|m|h|d>" duration, or -1. */
static int64_t
duration_s(const char *d)
{
	char *end;
	long long n = d != NULL ? strtoll(d, &end, 10) : -1;

	if (d == NULL || n <= 0 || end == d || end[0] == '\0' || end[1] != '\0')
		return -1;
	switch (end[0]) {
	case 's':
		return n;
	case 'm':
		return n * 60;
	case 'h':
		return n * 3600;
	case 'd':
		return n * 86400;
	default:
		return -1;
	}
}

/* Root N+1 (`nx`) against root N (`cur`) under the root-change payload
 * `pl`, for flavour repo; `other` is the other repository's root in force. */
static int
check_root_change(const char *repo, const json_t *cur, const json_t *nx, const json_t *pl,
                  const json_t *other)
{
	static const char *const roles[] = {"root", "targets", "snapshot", "timestamp", NULL};
	const char *op = json_string_value(json_object_get(pl, "op"));
	const char *prole = json_string_value(json_object_get(pl, "role"));
	/* The role of root.json the change touches ("" for none): each
	 * repository's roles are its own. */
	const char *hit = prole != NULL && strcmp(tuf_role_repo(prole), repo) == 0
	                          ? tuf_role_type(prole)
	                          : "";
	int separate = strcmp(op, "separate") == 0;
	json_t *okeys = json_object_get(other, "keys");
	int64_t exp = 0, now = (int64_t)time(NULL);
	json_t *keys = json_object_get(nx, "keys"), *used = json_object();
	const char *k;
	json_t *v;

	if (json_integer_value(json_object_get(nx, "version")) !=
	            json_integer_value(json_object_get(cur, "version")) + 1 ||
	    !json_equal(json_object_get(nx, "spec_version"),
	                json_object_get(cur, "spec_version")) ||
	    !json_is_true(json_object_get(nx, "consistent_snapshot"))) {
		errmsg("%s root: not version N+1 of the root in force", repo);
		goto bad;
	}
	if (tuf_time_parse(json_string_value(json_object_get(nx, "expires")), &exp) != 0 ||
	    exp <= now || exp > now + 3651LL * 86400) {
		errmsg("%s root: expiry %s is not in the next 10 years", repo,
		       json_string_value(json_object_get(nx, "expires")));
		goto bad;
	}
	if (strcmp(op, "set-expiry") == 0 && strcmp(hit, "root") == 0) {
		int64_t want = now + duration_s(json_string_value(json_object_get(pl, "expires")));
		if (exp < want - 2 * 86400 || exp > want + 86400) {
			errmsg("%s root: expires %s, the change asks for %s from now", repo,
			       json_string_value(json_object_get(nx, "expires")),
			       json_string_value(json_object_get(pl, "expires")));
			goto bad;
		}
	}
	for (size_t i = 0; roles[i] != NULL; i++) {
		json_t *a = json_object_get(json_object_get(cur, "roles"), roles[i]);
		json_t *b = json_object_get(json_object_get(nx, "roles"), roles[i]);
		json_t *sa = str_set(json_object_get(a, "keyids"));
		json_t *sb = str_set(json_object_get(b, "keyids"));
		const char *gone = NULL, *added = NULL;
		size_t ngone = set_minus(sa, sb, &gone), nadd = set_minus(sb, sa, &added);
		int same_th = json_equal(json_object_get(a, "threshold"),
		                         json_object_get(b, "threshold"));
		int ok;
		json_object_update(used, sb);
		if (separate && strcmp(repo, "prod") == 0) {
			/* Only keys CI has go; none CI has comes or stays. */
			const char *x;
			json_t *y;
			ok = same_th;
			json_object_foreach(sa, x, y) ok &=
			        json_object_get(sb, x) != NULL || json_object_get(okeys, x) != NULL;
			json_object_foreach(sb, x, y) ok &= json_object_get(okeys, x) == NULL;
		} else if (separate || strcmp(roles[i], hit) != 0 ||
		           strcmp(op, "set-expiry") == 0) {
			ok = ngone == 0 && nadd == 0 && same_th;
		} else if (strcmp(op, "rotate-key") == 0) {
			const char *want = json_string_value(json_object_get(pl, "keyid"));
			ok = ngone == 1 && nadd == 1 && same_th &&
			     (want == NULL || strcmp(want, gone) == 0);
		} else if (strcmp(op, "set-threshold") == 0) {
			ok = ngone == 0 && nadd == 0 &&
			     json_equal(json_object_get(b, "threshold"),
			                json_object_get(pl, "threshold"));
		} else if (strcmp(op, "add-key") == 0) {
			json_t *x = json_object_get(pl, "external");
			char *pem = NULL, kid[65] = "";
			if (x != NULL &&
			    (tuf_pem_normalize(json_string_value(json_object_get(x, "public_key")),
			                       &pem) != 0 ||
			     tuf_keyid_pem(pem, kid) != 0))
				kid[0] = '\0';
			free(pem);
			ok = ngone == 0 && nadd == 1 && same_th &&
			     (x == NULL || (kid[0] != '\0' && strcmp(kid, added) == 0));
		} else if (strcmp(op, "remove-key") == 0) {
			ok = ngone == 1 && nadd == 0 && same_th &&
			     strcmp(gone, json_string_value(json_object_get(pl, "keyid"))) == 0;
		} else {
			ok = 0;
		}
		json_decref(sa);
		json_decref(sb);
		if (!ok) {
			errmsg("%s root version %lld: role %s does not change as the request says "
			       "(%s %s)",
			       repo, (long long)json_integer_value(json_object_get(nx, "version")),
			       roles[i], op, prole != NULL ? prole : "");
			goto bad;
		}
	}
	/* Exactly the keys the roles use; a key that stays keeps its value. */
	if (json_object_size(keys) != json_object_size(used)) {
		errmsg("%s root: keys lists keys no role uses", repo);
		goto bad;
	}
	json_object_foreach(keys, k, v)
	{
		json_t *old = json_object_get(json_object_get(cur, "keys"), k);
		if (json_object_get(used, k) == NULL || (old != NULL && !json_equal(old, v))) {
			errmsg("%s root: key %.16s... is not what root N says", repo, k);
			goto bad;
		}
	}
	json_decref(used);
	return 0;
bad:
	json_decref(used);
	return -1;
}

/* Root v1 of flavour repo against the policy's tuf section. */
static int
check_root_init(const char *repo, const json_t *nx, const json_t *tuf)
{
	json_t *roles = json_object_get(tuf, "roles"), *ext = json_object_get(tuf, "external");
	static const char *const names[] = {"root", "targets", "snapshot", "timestamp", NULL};

	if (json_integer_value(json_object_get(nx, "version")) != 1 ||
	    !json_is_true(json_object_get(nx, "consistent_snapshot"))) {
		errmsg("%s root: not a version 1", repo);
		return -1;
	}
	for (size_t i = 0; names[i] != NULL; i++) {
		json_t *ro = json_object_get(json_object_get(nx, "roles"), names[i]);
		json_t *pr = json_object_get(roles, tuf_repo_role(repo, names[i]));
		json_t *ids = str_set(json_object_get(ro, "keyids"));
		json_t *pk = json_object_get(pr, "keys"), *name;
		json_int_t th = json_integer_value(json_object_get(pr, "threshold"));
		size_t nk = json_array_size(pk), j;
		int ok = 1;
		ok = json_integer_value(json_object_get(ro, "threshold")) == th &&
		     json_object_size(ids) == nk;
		/* Every external key of the policy for this role is in it. */
		json_array_foreach(pk, j, name)
		{
			json_t *e = json_object_get(ext, json_string_value(name));
			char *pem = NULL, kid[65];
			if (e == NULL)
				continue;
			if (tuf_pem_normalize(json_string_value(json_object_get(e, "public_key")),
			                      &pem) != 0 ||
			    tuf_keyid_pem(pem, kid) != 0 || json_object_get(ids, kid) == NULL)
				ok = 0;
			free(pem);
		}
		json_decref(ids);
		if (!ok) {
			errmsg("%s root version 1: role %s is not what the policy's tuf.roles says",
			       repo, names[i]);
			return -1;
		}
	}
	return 0;
}

/*
 * Check every document of p that key `kid` is asked to sign against the
 * request rv (with payload) and the metadata in force. 0 or -1.
 */
static int
check_prepared_docs(const struct globals *g, qsc_client *c, const Qsign__V1__RequestView *rv,
                    const Qsign__V1__TufPrepareResponse *p, const char *kid)
{
	json_t *pl = NULL, *tuf = NULL;
	int r = -1;

	if (tuf_payload_parse(rv->kind, rv->payload.data, rv->payload.len, &pl) != 0) {
		errmsg("request %s: payload: %s", rv->id, qs_errdetail());
		return -1;
	}
	if (strcmp(rv->kind, "tuf-init") == 0) {
		Qsign__V1__PolicyShowResponse *ps = NULL;
		json_t *pol;
		if (qsc_policy_show(c, rv->policy_version, &ps) != 0) {
			report(g, c, QS_ERR_UNAVAILABLE);
			goto out;
		}
		pol = json_loads(ps->text, 0, NULL);
		qsc_free(ps);
		tuf = json_incref(json_object_get(pol, "tuf"));
		json_decref(pol);
	}
	for (size_t i = 0; i < p->n_docs; i++) {
		const Qsign__V1__TufPreparedDoc *d = p->docs[i];
		json_t *sj;
		int mine = 0, ok = -1;
		for (size_t k = 0; k < d->n_wanted; k++)
			mine |= strcmp(d->wanted[k]->keyid, kid) == 0;
		if (!mine)
			continue;
		if (check_doc(d) != 0) {
			errmsg("document %zu of request %s is not canonical TUF %s metadata of "
			       "version %llu",
			       i, rv->id, d->role, (unsigned long long)d->version);
			goto out;
		}
		sj = json_loadb((const char *)d->signed_json.data, d->signed_json.len, 0, NULL);
		if (strcmp(d->role, "root") == 0 && strcmp(rv->kind, "tuf-init") == 0) {
			ok = check_root_init(d->repo, sj, tuf);
		} else if (strcmp(d->role, "root") == 0 && strcmp(rv->kind, "tuf-root") == 0) {
			json_t *env = get_env(g, c, d->repo, "root"), *oth = NULL;
			if (env != NULL && root_self_signed(env) != 0)
				errmsg("%s root in force is not signed by its own threshold",
				       d->repo);
			else if (env != NULL &&
			         (oth = get_signed(g, c,
			                           strcmp(d->repo, "prod") == 0 ? "ci" : "prod",
			                           "root")) != NULL)
				ok = check_root_change(d->repo, json_object_get(env, "signed"), sj,
				                       pl, oth);
			json_decref(env);
			json_decref(oth);
		} else if (strcmp(d->role, "targets") == 0 && strcmp(d->repo, "prod") == 0) {
			if (strcmp(rv->kind, "tuf-promote") == 0) {
				ok = json_equal(json_object_get(sj, "targets"),
				                json_object_get(pl, "targets")) &&
				                     json_equal(json_object_get(sj, "expires"),
				                                json_object_get(pl, "expires")) &&
				                     json_equal(json_object_get(sj, "version"),
				                                json_object_get(pl, "version"))
				             ? 0
				             : -1;
			} else if (strcmp(rv->kind, "tuf-init") == 0) {
				ok = json_object_size(json_object_get(sj, "targets")) == 0 &&
				                     d->version == 1
				             ? 0
				             : -1;
			} else {
				/* A root change re-signs the targets in force. */
				json_t *cur = get_signed(g, c, "prod", "targets");
				ok = cur != NULL &&
				                     json_equal(json_object_get(sj, "targets"),
				                                json_object_get(cur, "targets")) &&
				                     json_integer_value(
				                             json_object_get(sj, "version")) ==
				                             json_integer_value(json_object_get(
				                                     cur, "version")) +
				                                     1
				             ? 0
				             : -1;
				json_decref(cur);
			}
			if (ok != 0)
				errmsg("prod targets version %llu is not what request %s says",
				       (unsigned long long)d->version, rv->id);
		} else {
			errmsg("request %s asks to sign %s %s, which a %s never changes", rv->id,
			       d->repo, d->role, rv->kind);
		}
		json_decref(sj);
		if (ok != 0)
			goto out;
	}
	r = 0;
out:
	json_decref(pl);
	json_decref(tuf);
	return r;
}

/* The repeatable -i KEY of tuf sign (at most max). */
struct sign_keys {
	const char **v;
	size_t n, max;
};

static int
sign_key_opt(void *ctx, int ch, char *arg)
{
	struct sign_keys *k = ctx;

	(void)ch;
	if (k->n == k->max) {
		errmsg("at most %zu keys", k->max);
		return EXIT_USAGE;
	}
	k->v[k->n++] = arg;
	return 0;
}

/* Does document d want a signature of key kid? */
static int
wants_key(const Qsign__V1__TufPreparedDoc *d, const char *kid)
{
	for (size_t w = 0; w < d->n_wanted; w++)
		if (strcmp(d->wanted[w]->keyid, kid) == 0)
			return 1;
	return 0;
}

/* Load the n TUF keys (pkcs11: URIs or PEM files, the PIN from pin or
 * QSIGN_PIN_FILE) into tk[] and their TUF key ids into kid[]: ECDSA P-256
 * or Ed25519, no key twice. EXIT_OK or the exit code after saying why. */
static int
load_tuf_keys(const char *const *keys, size_t n, const char *pin, qsc_identity **tk, char kid[][65])
{
	struct qsc_options o;
	char *pem = NULL, pinbuf[1100];
	int r = EXIT_OK;

	/* The TUF keys: like an identity, but their own. */
	memset(&o, 0, sizeof(o));
	o.pkcs11_module = getenv("QSIGN_PKCS11_MODULE");
	if (pin == NULL && (pin = getenv("QSIGN_PIN_FILE")) != NULL && pin[0] != '\0' &&
	    strncmp(pin, "file:", 5) != 0 && strncmp(pin, "env:", 4) != 0) {
		snprintf(pinbuf, sizeof(pinbuf), "file:%s", pin);
		pin = pinbuf;
	}
	o.pin_source = pin != NULL && pin[0] != '\0' ? pin : NULL;
	for (size_t k = 0; k < n; k++) {
		char *norm = NULL;
		o.identity = keys[k];
		if (qsc_id_load(&o, &tk[k]) != 0 || qsc_id_public_pem(tk[k], &pem) != 0) {
			errmsg("TUF key %s: %s", o.identity, qs_errdetail());
			r = EXIT_FAILED;
			goto out;
		}
		if (tuf_pem_normalize(pem, &norm) != 0 || tuf_keyid_pem(norm, kid[k]) != 0) {
			free(norm);
			errmsg("TUF key %s: TUF keys here are ECDSA P-256 or Ed25519", o.identity);
			r = EXIT_FAILED;
			goto out;
		}
		free(norm);
		free(pem);
		pem = NULL;
		for (size_t j = 0; j < k; j++)
			if (strcmp(kid[j], kid[k]) == 0) {
				errmsg("TUF keys %s and %s are the same key", keys[j], keys[k]);
				r = EXIT_USAGE;
				goto out;
			}
	}
out:
	free(pem);
	return r;
}

/* Ask on the terminal before signing: EXIT_OK for yes. */
static int
confirm_signing(void)
{
	char line[16];

	if (!isatty(STDIN_FILENO)) {
		errmsg("not a terminal: say --yes to sign without being asked");
		return EXIT_USAGE;
	}
	fprintf(stderr, "sign? [y/N] ");
	if (fgets(line, sizeof(line), stdin) == NULL || (line[0] != 'y' && line[0] != 'Y')) {
		errmsg("not signed");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

/* Check what each key would sign for request id (rv, its prepared
 * documents p) and show it; used[k]: how many documents key k signs. At
 * least one and at most 16 signatures in all. EXIT_OK or EXIT_FAILED after
 * saying why. */
static int
plan_signatures(const struct globals *g, qsc_client *c, const Qsign__V1__RequestView *rv,
                const Qsign__V1__TufPrepareResponse *p, const char *id, const char *const *keys,
                char kid[][65], size_t nkeys, size_t *used)
{
	for (size_t k = 0; k < nkeys; k++) {
		if (check_prepared_docs(g, c, rv, p, kid[k]) != 0) {
			errmsg("refusing to sign request %s", id);
			return EXIT_FAILED;
		}
		for (size_t i = 0; i < p->n_docs; i++)
			used[k] += wants_key(p->docs[i], kid[k]);
		if (used[k] == 0 && nkeys > 1)
			fprintf(stderr,
			        "qsign: request %s needs no signature of key %s (keyid %.16s...)\n",
			        id, keys[k], kid[k]);
		if (used[k] == 0)
			continue;
		fprintf(stderr, "qsign: key %.16s... will sign for request %s (%s):\n", kid[k], id,
		        rv->kind);
		for (size_t i = 0; i < p->n_docs; i++) {
			if (wants_key(p->docs[i], kid[k]))
				fprintf(stderr, "  %s %s version %llu\n", p->docs[i]->repo,
				        p->docs[i]->role, (unsigned long long)p->docs[i]->version);
		}
	}
	{
		size_t total = 0;
		for (size_t k = 0; k < nkeys; k++)
			total += used[k];
		if (total == 0) {
			if (nkeys == 1)
				errmsg("request %s needs no signature of key %s (keyid %s)", id,
				       keys[0], kid[0]);
			else
				errmsg("request %s needs no signature of any of these keys", id);
			return EXIT_FAILED;
		}
		if (total > 16) {
			errmsg("request %s wants %zu signatures of these keys: at most 16 at once",
			       id, total);
			return EXIT_FAILED;
		}
	}
	return EXIT_OK;
}

static int
sign_main(int argc, char **argv, struct globals *g)
{
	enum { O_PIN = 256, O_NOAPPROVE, O_YES };
	enum { MAX_KEYS = 4 };
	static const struct option opts[] = {
	        {"key", required_argument, NULL, 'i'},
	        {"yes", no_argument, NULL, O_YES},
	        {"pin-source", required_argument, NULL, O_PIN},
	        {"no-approve", no_argument, NULL, O_NOAPPROVE},
	        {"message", required_argument, NULL, 'm'},
	        {NULL, 0, NULL, 0},
	};
	const char *keys[MAX_KEYS], *pin = NULL, *msg = NULL, *id;
	Qsign__V1__TufPrepareResponse *p = NULL, *after = NULL;
	Qsign__V1__RequestView *rv = NULL, *vv = NULL;
	qsc_identity *tk[MAX_KEYS] = {0};
	qsc_client *c = NULL;
	char kid[MAX_KEYS][65];
	uint32_t docs[16];
	const char *kids[16];
	uint8_t *sigs[16] = {0}, dg[32];
	size_t lens[16], n = 0, nkeys = 0, used[MAX_KEYS] = {0};
	int r, approve, yes = 0, no_approve = 0;
	struct sign_keys sk = {keys, 0, MAX_KEYS};

	{
		const struct opt_keep keep[] = {{O_YES, NULL, &yes},
		                                {O_PIN, &pin, NULL},
		                                {O_NOAPPROVE, NULL, &no_approve},
		                                {'m', &msg, NULL},
		                                {0, NULL, NULL}};
		const struct opts so = {"i:k:m:", opts, keep, sign_key_opt, &sk, 0, -1};
		if ((r = parse_opts(argc, argv, g, sign_usage, &so)) >= 0)
			return r;
	}
	nkeys = sk.n;
	approve = !no_approve;
	if (argc - optind != 1 || !qs_name_valid(argv[optind], 64)) {
		sign_usage(stderr);
		return EXIT_USAGE;
	}
	id = argv[optind];
	if (nkeys == 0)
		keys[nkeys++] = g->identity;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = load_tuf_keys(keys, nkeys, pin, tk, kid)) != EXIT_OK)
		goto out;
	if ((r = qsc_request_get(c, id, 1, &rv)) != 0 || (r = qsc_tuf_prepare(c, id, &p)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	qs_sha256(rv->payload.data, rv->payload.len, dg);
	if (rv->payload_sha256.len != 32 || memcmp(rv->payload_sha256.data, dg, 32) != 0) {
		errmsg("request %s: the payload does not hash to what the daemon reports", id);
		r = EXIT_FAILED;
		goto out;
	}
	/* What each key will sign, checked and shown before anything is. */
	if ((r = plan_signatures(g, c, rv, p, id, keys, kid, nkeys, used)) != EXIT_OK)
		goto out;
	if (!yes && (r = confirm_signing()) != EXIT_OK)
		goto out;
	for (size_t i = 0; i < p->n_docs; i++) {
		const Qsign__V1__TufPreparedDoc *d = p->docs[i];
		for (size_t k = 0; k < nkeys; k++) {
			if (!wants_key(d, kid[k]))
				continue;
			if (check_doc(d) != 0) {
				errmsg("document %zu of request %s is not canonical TUF %s "
				       "metadata "
				       "of version %llu: refusing to sign it",
				       i, id, d->role, (unsigned long long)d->version);
				r = EXIT_FAILED;
				goto out;
			}
			if ((sigs[n] = malloc(QS_MAX_PRINCIPAL_SIG)) == NULL) {
				errmsg("out of memory");
				r = EXIT_FAILED;
				goto out;
			}
			lens[n] = QS_MAX_PRINCIPAL_SIG;
			if ((r = qsc_id_sign(tk[k], d->canonical.data, d->canonical.len, sigs[n],
			                     &lens[n])) != 0) {
				errmsg("signing with %s: %s", keys[k], qs_errdetail());
				n++;
				r = EXIT_FAILED;
				goto out;
			}
			docs[n] = (uint32_t)i;
			kids[n] = kid[k];
			n++;
			if (!g->json) {
				printf("signed ");
				put_safe(stdout, d->repo, 0);
				putchar(' ');
				put_safe(stdout, d->role, 0);
				printf(" version %llu with key %.16s...\n",
				       (unsigned long long)d->version, kid[k]);
			}
		}
	}
	if ((r = qsc_tuf_add_signatures(c, id, docs, kids, sigs, lens, n, &after)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	/* Approve unless that is not ours to do: already voted, the
	 * submitter (self-approval), or the request no longer pending. */
	for (size_t i = 0; approve && i < rv->n_votes; i++)
		if (strcmp(rv->votes[i]->approver, g->principal) == 0)
			approve = 0;
	if (rv->state != QSIGN__V1__REQUEST_STATE__REQ_PENDING ||
	    (strcmp(rv->submitter, g->principal) == 0 && !rv->allow_self_approval))
		approve = 0;
	if (approve) {
		if ((r = qsc_request_vote(c, id, 1, msg, dg, &vv)) != 0) {
			r = report(g, c, r);
			goto out;
		}
		/* The vote may have carried the request out. */
		qsc_free(after);
		after = NULL;
		if (qsc_tuf_prepare(c, id, &after) != 0)
			after = NULL;
	}
	if (g->json)
		r = after != NULL ? prepared_json(after) : EXIT_OK;
	else {
		if (vv != NULL) {
			printf("approved request ");
			put_safe(stdout, id, 0);
			putchar('\n');
		}
		if (after != NULL)
			print_prepared(after);
		r = EXIT_OK;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(sigs[i]);
	qsc_free(p);
	qsc_free(after);
	qsc_free(rv);
	qsc_free(vv);
	for (size_t k = 0; k < nkeys; k++)
		qsc_id_free(tk[k]);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ review */

static void
review_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] tuf review\n"
	        "  Lint the current root: errors and recommendations. Exit 1 if any error.\n"
	        "example: %s -p admin1 tuf review\n",
	        progname, progname);
}

static int
review_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__TufReviewResponse *resp = NULL;
	qsc_client *c = NULL;
	int r, errors = 0;

	if ((r = parse_opts(argc, argv, g, review_usage, PLAIN_OPTS(0))) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_tuf_review(c, &resp)) != 0) {
		r = report(g, c, r);
		qsc_close(c);
		return r;
	}
	qsc_close(c);
	printf("root version %llu: %zu finding(s)\n", (unsigned long long)resp->root_version,
	       resp->n_findings);
	for (size_t i = 0; i < resp->n_findings; i++) {
		errors += strcmp(resp->findings[i]->severity, "error") == 0;
		printf("  ");
		put_safe(stdout, resp->findings[i]->severity, 0);
		printf(": ");
		put_safe(stdout, resp->findings[i]->text, 0);
		putchar('\n');
	}
	qsc_free(resp);
	return errors > 0 ? EXIT_FAILED : EXIT_OK;
}

/* ------------------------------------------------------------ group */

const struct command tuf_commands[] = {
        {"init", init_main, init_usage, "request root v1 of the CI and production repositories",
         NULL},
        {"show-root", show_root_main, show_root_usage, "print root.json (or another role's file)",
         NULL},
        {"push-targets", push_main, push_usage, "add CI targets (online)", NULL},
        {"promote", promote_main, promote_usage, "request production targets (quorum)", NULL},
        {"rotate-key", rotate_main, rotate_usage, "request a new key for a TUF role", NULL},
        {"set-threshold", threshold_main, threshold_usage, "request a new threshold", NULL},
        {"add-key", add_key_main, add_key_usage, "request one more root or prod-targets key", NULL},
        {"remove-key", remove_key_main, remove_key_usage,
         "request a root or prod-targets key removed", NULL},
        {"set-expiry", expiry_main, expiry_usage, "request a role's metadata lifetime", NULL},
        {"separate", separate_main, separate_usage,
         "request production keys of its own where it shares keys with CI", NULL},
        {"status", status_main, status_usage,
         "show what a TUF request will publish and who still signs", NULL},
        {"sign", sign_main, sign_usage, "sign a TUF request with your own offline key", NULL},
        {"review", review_main, review_usage, "lint the current root", NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

void
tuf_usage(FILE *f)
{
	group_usage(f, "tuf", tuf_commands, "tuf push-targets build/app.bin");
}

int
tuf_main(int argc, char **argv, struct globals *g)
{
	return group_main(argc, argv, g, tuf_commands, tuf_usage);
}
