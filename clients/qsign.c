/*
 * qsign.c - the quorum-signer command line client.
 *
 * Subcommands come from a table and each has its <cmd>_main(). Exit codes
 * (documented in README.md): 0 ok, 1 the operation failed (refused by the
 * daemon, or a local failure such as an unusable identity key), 2 usage
 * error (bad options, unreadable input), 3 connection / transport error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "payload.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"

/* Each SignBatch call stays this far below the daemon's frame limit, for
 * the per-item framing and the request's other fields. */
#define BATCH_FRAME_BUDGET (QS_MAX_FRAME - 64u * 1024)
/* Longest digest line accepted on stdin by sign-batch (64 hex + spaces). */
#define MAX_DIGEST_LINE 256

const char *progname = "qsign";

void
errmsg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Strings from the daemon reach a terminal: no control characters. */
void
put_safe(FILE *f, const char *s, int keep_newlines)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\n' && keep_newlines)
			fputc('\n', f);
		else
			fputc(ch < 0x20 || ch == 0x7f ? '?' : ch, f);
	}
}

char *
hex_or_die(const uint8_t *b, size_t n)
{
	char *h = qs_hex(b, n);

	if (h == NULL) {
		errmsg("out of memory");
		exit(EXIT_FAILED);
	}
	return h;
}

int
json_print(json_t *j, size_t flags)
{
	int r = 0;

	if (j == NULL || json_dumpf(j, stdout, flags | JSON_PRESERVE_ORDER) != 0) {
		errmsg("cannot write JSON");
		r = -1;
	} else {
		fputc('\n', stdout);
	}
	json_decref(j);
	return r;
}

json_t *
json_strings(char **v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

/* ------------------------------------------------------------ errors */

static int
transport_hint(const struct globals *g, int r)
{
	errmsg("cannot reach qsignd: %s", qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
	if (r == QS_ERR_TIMEOUT)
		errmsg("no reply in time: is qsignd overloaded or stuck? (--timeout S to wait "
		       "longer)");
	else if (strchr(g->url, ',') != NULL)
		errmsg("is qsignd running on any of %s? (-s URL, repeated, or QSIGN_SERVER as a "
		       "comma-separated list)",
		       g->url);
	else if (strncmp(g->url, "ipc://", 6) == 0)
		errmsg("is qsignd running? check the socket %s (-s URL or QSIGN_SERVER; "
		       "QSIGN_HOME=%s) and that you may open it",
		       g->url + 6, g->home);
	else if (strncmp(g->url, "tls+", 4) == 0)
		errmsg("is qsignd running and listening on %s? check --tls-cert/--tls-key/"
		       "--tls-ca (QSIGN_TLS_*) and the server name (--tls-server-name)",
		       g->url);
	else
		errmsg("is qsignd running and listening on %s?", g->url);
	return EXIT_TRANSPORT;
}

/* After a NOT_FOUND: what there is instead. An unknown role lists the
 * roles the caller may use (one more call on the same session); an
 * unknown request points to the list. */
static void
not_found_hint(qsc_client *c, const char *msg)
{
	Qsign__V1__InfoResponse *info = NULL;

	if (strncmp(msg, "no request ", 11) == 0) {
		errmsg("`%s request list` shows the requests you may see", progname);
	} else if (strncmp(msg, "no role ", 8) == 0 && qsc_info(c, &info) == 0) {
		fprintf(stderr, "%s: your roles: ", progname);
		for (size_t i = 0; i < info->n_roles; i++) {
			fputs(i > 0 ? ", " : "", stderr);
			put_safe(stderr, info->roles[i]->name, 0);
		}
		fputs(info->n_roles == 0 ? "none\n" : "\n", stderr);
		qsc_free(info);
	}
}

/* Turn a library error into a message and an exit code. */
int
report(const struct globals *g, qsc_client *c, int r)
{
	int status = c != NULL ? qsc_last_status(c) : -1;

	if (status > 0) {
		errmsg("%s: %s", qs_status_name(status), qsc_last_message(c));
		if (status == QSIGN__V1__STATUS__NOT_FOUND)
			not_found_hint(c, qsc_last_message(c));
		return EXIT_FAILED;
	}
	if (r == QS_ERR_UNAVAILABLE || r == QS_ERR_TIMEOUT)
		return transport_hint(g, r);
	errmsg("%s", qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
	return EXIT_FAILED;
}

/* qsc_options.confirm_new on a terminal: show the key, ask. */
static int
confirm_new_server(void *arg, const char *url, const char *identity, const char *fp)
{
	char line[16];

	(void)arg;
	fprintf(stderr, "%s: the server at %s (identity ", progname, url);
	put_safe(stderr, identity, 0);
	fprintf(stderr,
	        ") is not known yet.\nIts key fingerprint is %s.\nCompare it with the one "
	        "qsignd's operator sees (qsignd logs it at start: \"identity ... fingerprint=\").\n"
	        "Trust this server and remember its key? [y/N] ",
	        fp);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0;
}

/* The principal has no key at the default place: say which principals
 * have one there ($QSIGN_HOME/demo/NAME.key). */
static void
unknown_principal(const struct globals *g)
{
	char dir[PATH_MAX];
	struct dirent **v = NULL;
	int n, shown = 0;

	errmsg("unknown principal %s: no key %s (-i KEYFILE or QSIGN_IDENTITY names another)",
	       g->principal, g->identity);
	snprintf(dir, sizeof(dir), "%s/demo", g->home);
	if ((n = scandir(dir, &v, NULL, alphasort)) < 0)
		return;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(v[i]->d_name);
		if (l > 4 && strcmp(v[i]->d_name + l - 4, ".key") == 0) {
			if (shown++ == 0)
				fprintf(stderr, "%s: principals with a key in %s: ", progname, dir);
			else
				fputs(", ", stderr);
			v[i]->d_name[l - 4] = '\0';
			put_safe(stderr, v[i]->d_name, 0);
		}
		free(v[i]);
	}
	free(v);
	if (shown > 0)
		fputc('\n', stderr);
}

/* Resolve the environment defaults, load the identity and connect. */
int
connect_client(struct globals *g, qsc_client **out)
{
	struct qsc_options o = {0};
	const char *pin = getenv("QSIGN_PIN_FILE");
	qsc_client *c = NULL;
	int r;

	*out = NULL;
	if (g->principal == NULL || g->principal[0] == '\0') {
		errmsg("no principal: use -p NAME or set QSIGN_PRINCIPAL");
		return EXIT_USAGE;
	}
	if (!qs_name_valid(g->principal, QS_MAX_NAME)) {
		errmsg("invalid principal name");
		return EXIT_USAGE;
	}
	if (g->identity == NULL) {
		if (asprintf(&g->identity_buf, "%s/demo/%s.key", g->home, g->principal) < 0) {
			errmsg("out of memory");
			return EXIT_FAILED;
		}
		g->identity = g->identity_buf;
		/* No key of that name where the default looks: a name that is
		 * not a principal here, told before anything is sent. */
		if (access(g->identity, F_OK) != 0 && errno == ENOENT) {
			unknown_principal(g);
			return EXIT_USAGE;
		}
	}
	if (pin != NULL && pin[0] != '\0') {
		if (strncmp(pin, "file:", 5) == 0 || strncmp(pin, "env:", 4) == 0)
			o.pin_source = pin;
		else if (asprintf(&g->pin_buf, "file:%s", pin) < 0) {
			errmsg("out of memory");
			return EXIT_FAILED;
		} else
			o.pin_source = g->pin_buf;
	}
	o.url = g->url;
	o.principal = g->principal;
	o.identity = g->identity;
	o.identity_pass_file = getenv("QSIGN_IDENTITY_PASS_FILE");
	o.pkcs11_module = getenv("QSIGN_PKCS11_MODULE");
	o.tls_cert = g->tls_cert;
	o.tls_key = g->tls_key;
	o.tls_ca = g->tls_ca;
	o.tls_server_name = g->tls_server_name;
	o.timeout_ms = g->timeout_ms;
	o.server_key = g->server_key;
	/* A new server: asked about on a terminal (unless --accept-new), else
	 * trusted on first use and remembered, as scripts need. */
	o.trust_new = !g->accept_new && isatty(STDIN_FILENO) && isatty(STDERR_FILENO)
	                      ? QSC_TRUST_NEW_ASK
	                      : QSC_TRUST_NEW_ACCEPT;
	o.confirm_new = confirm_new_server;
	if ((r = qsc_new(&o, &c)) != 0) {
		errmsg("%s", qs_errdetail()[0] ? qs_errdetail() : qs_strerror(r));
		return EXIT_FAILED;
	}
	if ((r = qsc_connect(c)) != 0) {
		r = report(g, c, r);
		qsc_close(c);
		return r;
	}
	{
		const char *fp, *file = NULL;
		int how = 0;
		if ((fp = qsc_server_key(c, &how, &file)) != NULL && how == QSC_SERVER_KEY_NEW) {
			fprintf(stderr, "%s: first connection to %s (", progname, qsc_url(c));
			put_safe(stderr, qsc_server_identity(c), 0);
			fprintf(stderr, "): remembered its key %s in %s\n", fp, file);
		}
	}
	*out = c;
	return EXIT_OK;
}

/* ------------------------------------------------------------ input */

/* Read a whole file ("-" = stdin) of at most max bytes. */
int
read_input(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rbe");
	uint8_t *buf;
	size_t n;

	*out = NULL;
	*out_len = 0;
	if (f == NULL) {
		errmsg("%s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		errmsg("out of memory");
		goto fail;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		errmsg("%s: read error", path);
		free(buf);
		goto fail;
	}
	if (n > max) {
		errmsg("%s: larger than %zu bytes: hash it and sign the digest with -d", path, max);
		free(buf);
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	*out = buf;
	*out_len = n;
	return 0;
fail:
	if (f != stdin)
		fclose(f);
	return -1;
}

int
parse_digest_of(const char *s, size_t len, uint8_t *out)
{
	size_t n = 0;

	if (strlen(s) != 2 * len || qs_unhex(s, out, len, &n) != 0 || n != len)
		return -1;
	return 0;
}

int
parse_digest(const char *s, uint8_t out[32])
{
	return parse_digest_of(s, 32, out);
}

const char *
parse_hash(const char *name, size_t *len, const EVP_MD **md)
{
	const char *h = qs_hash_lookup(name, len, md);

	if (h == NULL)
		errmsg("--hash: sha256, sha384 or sha512");
	return h;
}

int
need_one(const char *cmd, const char *an, const char *a, const char *bn, const char *b)
{
	if (a == NULL && b == NULL) {
		errmsg("%s needs %s or %s", cmd, an, bn);
		return -1;
	}
	if (a != NULL && b != NULL) {
		errmsg("%s takes %s or %s, not both", cmd, an, bn);
		return -1;
	}
	return 0;
}

int
parse_timeout(const char *s, int *ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 86400)
		return -1;
	*ms = (int)v * 1000;
	return 0;
}

/* ------------------------------------------------------------ keygen */

static void
keygen_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s keygen [-t ecdsa-p256|ed25519] -o FILE [--json]\n"
	        "  Create a principal key (local, no daemon). The private key is written to\n"
	        "  FILE (mode 0600, never overwritten); the public key PEM for the policy is\n"
	        "  printed.\n"
	        "example: %s keygen -t ed25519 -o ~/.qsign/alice.key\n",
	        progname, progname);
}

static int
keygen_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"type", required_argument, NULL, 't'},
	        {"out", required_argument, NULL, 'o'},
	        {NULL, 0, NULL, 0},
	};
	const char *type = "ecdsa-p256", *out = NULL;
	char *pem = NULL;
	int r;

	{
		const struct opt_keep keep[] = {
		        {'t', &type, NULL}, {'o', &out, NULL}, {0, NULL, NULL}};
		const struct opts o = {"t:o:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, keygen_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc || out == NULL) {
		keygen_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(type, "ecdsa-p256") != 0 && strcmp(type, "ed25519") != 0) {
		errmsg("unknown key type %s (ecdsa-p256 or ed25519)", type);
		return EXIT_USAGE;
	}
	if ((r = qsc_keygen(type, out, &pem)) != 0) {
		errmsg("%s", qs_errdetail());
		return EXIT_FAILED;
	}
	if (g->json) {
		json_t *j = json_pack("{s:s, s:s}", "algorithm", type, "public_pem", pem);
		r = json_print(j, JSON_INDENT(2));
	} else {
		fputs(pem, stdout);
		r = 0;
	}
	free(pem);
	return r == 0 ? EXIT_OK : EXIT_FAILED;
}

/* ------------------------------------------------------------ info */

static void
info_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] info [--json]\n"
	        "  Show the daemon's identity and version, the policy version, who you are\n"
	        "  and the signing roles you may use.\n"
	        "example: %s -p ci info\n",
	        progname, progname);
}

void
put_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			fputs(", ", stdout);
		put_safe(stdout, v[i], 0);
	}
	if (n == 0)
		fputs("-", stdout);
}

static int
info_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__InfoResponse *info = NULL;
	const char *skey;
	qsc_client *c = NULL;
	int r;

	if ((r = parse_opts(argc, argv, g, info_usage, PLAIN_OPTS(0))) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_info(c, &info)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	skey = qsc_server_key(c, NULL, NULL);
	if (g->json) {
		json_t *roles = json_array();
		for (size_t i = 0; i < info->n_roles; i++) {
			const Qsign__V1__RoleInfo *ri = info->roles[i];
			json_array_append_new(
			        roles,
			        json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", ri->name, "mode",
			                  ri->mode, "keys", json_strings(ri->keys, ri->n_keys),
			                  "payloads", json_strings(ri->payloads, ri->n_payloads),
			                  "hashes", json_strings(ri->hashes, ri->n_hashes)));
		}
		r = json_print(
		        json_pack("{s:s, s:s?, s:s, s:I, s:s, s:o, s:o}", "server_identity",
		                  info->server_identity, "server_key", skey, "version",
		                  info->version, "policy_version", (json_int_t)info->policy_version,
		                  "principal", info->principal, "principal_roles",
		                  json_strings(info->principal_roles, info->n_principal_roles),
		                  "roles", roles),
		        JSON_INDENT(2));
		r = r == 0 ? EXIT_OK : EXIT_FAILED;
		goto out;
	}
	fputs("server identity: ", stdout);
	put_safe(stdout, info->server_identity, 0);
	printf("\nserver key:      %s", skey ? skey : "-");
	fputs("\nversion:         ", stdout);
	put_safe(stdout, info->version, 0);
	printf("\npolicy version:  %llu\nprincipal:       ",
	       (unsigned long long)info->policy_version);
	put_safe(stdout, info->principal, 0);
	fputs("\nprincipal roles: ", stdout);
	put_list(info->principal_roles, info->n_principal_roles);
	fputs("\nusable roles:", stdout);
	if (info->n_roles == 0)
		fputs(" none", stdout);
	fputc('\n', stdout);
	for (size_t i = 0; i < info->n_roles; i++) {
		const Qsign__V1__RoleInfo *ri = info->roles[i];
		fputs("  ", stdout);
		put_safe(stdout, ri->name, 0);
		fputs(" (", stdout);
		put_safe(stdout, ri->mode, 0);
		fputs(")  keys: ", stdout);
		put_list(ri->keys, ri->n_keys);
		fputs("  payloads: ", stdout);
		put_list(ri->payloads, ri->n_payloads);
		if (ri->n_hashes > 0) {
			fputs("  hashes: ", stdout);
			put_list(ri->hashes, ri->n_hashes);
		}
		fputc('\n', stdout);
	}
	r = EXIT_OK;
out:
	qsc_free(info);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ sign */

static void
sign_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] sign -r ROLE (-d HEX | -f FILE) [-k KEY] [-o OUT]\n"
	        "           [--hash sha256|sha384|sha512] [--format der|hex|base64] [--json]\n"
	        "  -d HEX   a digest of the hash, 64/96/128 hex characters for SHA-256/384/512\n"
	        "           (the role must allow digests)\n"
	        "  -f FILE  a blob, hashed (Ed25519: signed) by the daemon; - reads stdin\n"
	        "  -k KEY   which of the role's keys (default: its first)\n"
	        "  --hash H the signature's hash (default sha256): ECDSA and RSA keys, and\n"
	        "           only a hash the role allows (qsign info lists them)\n"
	        "  -o OUT   write the signature to OUT (default format der) instead of stdout\n"
	        "           (default format hex on a terminal, der otherwise)\n"
	        "example: %s -p ci sign -r ci-sign -f targets.json -o targets.sig\n",
	        progname, progname);
}

/* --format: FMT_DEFAULT (after saying why) if the name is unknown. */
enum format
parse_format(const char *s)
{
	if (strcmp(s, "der") == 0)
		return FMT_DER;
	if (strcmp(s, "hex") == 0)
		return FMT_HEX;
	if (strcmp(s, "base64") == 0)
		return FMT_BASE64;
	errmsg("unknown --format %s (der, hex or base64)", s);
	return FMT_DEFAULT;
}

int
format_opt(void *ctx, int ch, char *arg)
{
	(void)ch;
	return (*(enum format *)ctx = parse_format(arg)) == FMT_DEFAULT ? EXIT_USAGE : 0;
}

/* Write the signature in the chosen format to path (NULL: stdout). */
int
write_sig(const char *path, enum format fmt, const uint8_t *sig, size_t len)
{
	char *text = NULL;
	FILE *f = stdout;
	size_t tlen = 0;
	int r = -1, fd;

	if (fmt == FMT_DEFAULT)
		fmt = path == NULL && isatty(STDOUT_FILENO) ? FMT_HEX : FMT_DER;
	if (fmt == FMT_HEX) {
		text = hex_or_die(sig, len);
		tlen = strlen(text);
	} else if (fmt == FMT_BASE64) {
		if ((text = malloc(4 * ((len + 2) / 3) + 1)) == NULL) {
			errmsg("out of memory");
			return -1;
		}
		tlen = (size_t)EVP_EncodeBlock((unsigned char *)text, sig, (int)len);
	}
	if (path != NULL) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
			errmsg("%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
	}
	if (text != NULL) {
		if (fwrite(text, 1, tlen, f) != tlen || fputc('\n', f) == EOF)
			goto werr;
	} else if (fwrite(sig, 1, len, f) != len) {
		goto werr;
	}
	if (fflush(f) != 0)
		goto werr;
	r = 0;
	goto out;
werr:
	errmsg("%s: %s", path != NULL ? path : "stdout", strerror(errno));
out:
	if (path != NULL && f != stdout && f != NULL && fclose(f) != 0 && r == 0) {
		errmsg("%s: %s", path, strerror(errno));
		r = -1;
	}
	free(text);
	return r;
}

static int
sign_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"role", required_argument, NULL, 'r'}, {"digest", required_argument, NULL, 'd'},
	        {"file", required_argument, NULL, 'f'}, {"key", required_argument, NULL, 'k'},
	        {"out", required_argument, NULL, 'o'},  {"format", required_argument, NULL, 'F'},
	        {"hash", required_argument, NULL, 'H'}, {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *hex = NULL, *file = NULL, *key = NULL, *out = NULL;
	const char *hash_name = NULL, *hash;
	const EVP_MD *md = NULL;
	enum format fmt = FMT_DEFAULT;
	Qsign__V1__SignResponse *resp = NULL;
	Qsign__V1__PayloadKind kind;
	uint8_t digest[QS_DIGEST_MAX], *blob = NULL;
	const uint8_t *payload;
	size_t len, dg_len = 0;
	qsc_client *c = NULL;
	int r;

	{
		const struct opt_keep keep[] = {{'r', &role, NULL}, {'d', &hex, NULL},
		                                {'f', &file, NULL}, {'k', &key, NULL},
		                                {'o', &out, NULL},  {'H', &hash_name, NULL},
		                                {0, NULL, NULL}};
		const struct opts o = {"r:d:f:k:o:", opts, keep, format_opt, &fmt, 0, -1};
		if ((r = parse_opts(argc, argv, g, sign_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		sign_usage(stderr);
		return EXIT_USAGE;
	}
	if (role == NULL) {
		errmsg("sign needs -r ROLE");
		return EXIT_USAGE;
	}
	if (need_one("sign", "-f FILE", file, "-d HEX", hex) != 0)
		return EXIT_USAGE;
	if (!qs_name_valid(role, QS_MAX_NAME) ||
	    (key != NULL && !qs_name_valid(key, QS_MAX_NAME))) {
		errmsg("invalid role or key name");
		return EXIT_USAGE;
	}
	if ((hash = parse_hash(hash_name, &dg_len, &md)) == NULL)
		return EXIT_USAGE;
	if (hex != NULL) {
		if (parse_digest_of(hex, dg_len, digest) != 0) {
			errmsg("-d needs a %s digest: exactly %zu hex characters", hash,
			       2 * dg_len);
			return EXIT_USAGE;
		}
		kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		payload = digest;
		len = dg_len;
	} else {
		if (read_input(file, QS_MAX_BLOB, &blob, &len) != 0)
			return EXIT_USAGE;
		if (EVP_Digest(blob, len, digest, NULL, md, NULL) != 1) {
			errmsg("%s of %s failed", hash, file);
			r = EXIT_FAILED;
			goto out;
		}
		kind = QSIGN__V1__PAYLOAD_KIND__BLOB;
		payload = blob;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		goto out;
	if ((r = qsc_sign_hash(c, role, key, kind, hash, payload, len, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	/* The daemon says what it signed; make sure it is what we sent
	 * (qsc_sign_hash checked its length). */
	if (CRYPTO_memcmp(resp->digest.data, digest, dg_len) != 0) {
		errmsg("the daemon signed a different digest than the one sent: refusing the "
		       "signature");
		r = EXIT_FAILED;
		goto out;
	}
	if (out != NULL || !g->json) {
		if (write_sig(out, fmt, resp->signature.data, resp->signature.len) != 0) {
			r = EXIT_FAILED;
			goto out;
		}
	}
	if (g->json) {
		char *sh = hex_or_die(resp->signature.data, resp->signature.len);
		char *dh = hex_or_die(resp->digest.data, resp->digest.len);
		r = json_print(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "signature", sh, "key",
		                         resp->key, "key_id", resp->key_id, "algorithm",
		                         resp->algorithm, "hash", hash, "digest", dh),
		               JSON_INDENT(2));
		free(sh);
		free(dh);
		if (r != 0) {
			r = EXIT_FAILED;
			goto out;
		}
	}
	r = EXIT_OK;
out:
	qsc_free(resp);
	qsc_close(c);
	free(blob);
	return r;
}

/* ------------------------------------------------------------ sign-batch */

static void
sign_batch_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] sign-batch -r ROLE [-k KEY] [--hash H] [--json] "
	        "[FILE...]\n"
	        "  Without FILEs: digests, one per line, on stdin (64 hex characters; with\n"
	        "  --hash sha384/sha512, 96/128). With FILEs: each file is one blob.\n"
	        "  --hash H: the signatures' hash, sha256 (default), sha384 or sha512 (ECDSA\n"
	        "  and RSA keys, and a hash the role allows). Prints one line per item:\n"
	        "    <digest hex> <signature hex>   or   <digest hex> ERROR <STATUS> <message>\n"
	        "example: sha256sum *.bin | cut -c1-64 | %s -p ci sign-batch -r ci-sign\n",
	        progname, progname);
}

struct batch_item {
	uint8_t digest[QS_DIGEST_MAX];
	const char *file; /* NULL for digest input */
};

/* Read all digests from stdin before anything is sent: bad input changes
 * nothing. */
static int
read_digest_lines(const char *hash, size_t dg_len, struct batch_item **out, size_t *n_out)
{
	struct batch_item *v = NULL, *nv;
	size_t n = 0, cap = 0, lineno = 0, len;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t got;

	while ((got = getline(&line, &lcap, stdin)) != -1) {
		lineno++;
		len = (size_t)got;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
		                   line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (len > MAX_DIGEST_LINE || memchr(line, '\0', len) != NULL) {
			errmsg("stdin line %zu: not a %zu-hex-character %s digest", lineno,
			       2 * dg_len, hash);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				errmsg("out of memory");
				goto fail;
			}
			v = nv;
		}
		if (parse_digest_of(line, dg_len, v[n].digest) != 0) {
			errmsg("stdin line %zu: not a %zu-hex-character %s digest", lineno,
			       2 * dg_len, hash);
			goto fail;
		}
		v[n++].file = NULL;
	}
	if (ferror(stdin)) {
		errmsg("stdin: read error");
		goto fail;
	}
	free(line);
	if (n == 0) {
		errmsg("no digests on stdin");
		free(v);
		return -1;
	}
	*out = v;
	*n_out = n;
	return 0;
fail:
	free(line);
	free(v);
	return -1;
}

/* Check every file before anything is sent. */
static int
check_files(char **files, size_t n, struct batch_item **out)
{
	struct batch_item *v = calloc(n, sizeof(*v));
	struct stat st;

	*out = NULL;
	if (v == NULL) {
		errmsg("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (stat(files[i], &st) != 0 || access(files[i], R_OK) != 0) {
			errmsg("%s: %s", files[i], strerror(errno));
			free(v);
			return -1;
		}
		if (!S_ISREG(st.st_mode) || (size_t)st.st_size > QS_MAX_BLOB) {
			errmsg("%s: not a regular file of at most %u bytes", files[i], QS_MAX_BLOB);
			free(v);
			return -1;
		}
		v[i].file = files[i];
	}
	*out = v;
	return 0;
}

static void
put_item(const struct globals *g, const struct batch_item *it, size_t dg_len,
         const Qsign__V1__SignBatchResponse *resp, const Qsign__V1__SignResult *res, int *first)
{
	char *dh = hex_or_die(it->digest, dg_len);

	if (g->json) {
		json_t *j;
		char *sh = NULL;
		if (res->status == QSIGN__V1__STATUS__OK) {
			sh = hex_or_die(res->signature.data, res->signature.len);
			j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "digest", dh, "signature",
			              sh, "key", resp->key, "key_id", resp->key_id, "algorithm",
			              resp->algorithm, "hash",
			              resp->hash[0] ? resp->hash : "sha256");
		} else {
			j = json_pack("{s:s, s:s, s:s}", "digest", dh, "status",
			              qs_status_name((int)res->status), "message", res->message);
		}
		if (j != NULL && it->file != NULL)
			json_object_set_new(j, "file", json_string(it->file));
		fputs(*first ? "[\n" : ",\n", stdout);
		*first = 0;
		json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(j);
		free(sh);
	} else if (res->status == QSIGN__V1__STATUS__OK) {
		char *sh = hex_or_die(res->signature.data, res->signature.len);
		printf("%s %s\n", dh, sh);
		free(sh);
	} else {
		char msg[1025];
		size_t i;
		for (i = 0; res->message[i] != '\0' && i < sizeof(msg) - 1; i++) {
			unsigned char ch = (unsigned char)res->message[i];
			msg[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
		}
		msg[i] = '\0';
		printf("%s ERROR %s %s\n", dh, qs_status_name((int)res->status), msg);
	}
	free(dh);
}

static int
sign_batch_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"role", required_argument, NULL, 'r'},
	        {"key", required_argument, NULL, 'k'},
	        {"hash", required_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *key = NULL, *hash_name = NULL, *hash;
	const EVP_MD *md = NULL;
	struct batch_item *items = NULL;
	ProtobufCBinaryData *pl = NULL;
	Qsign__V1__SignBatchResponse *resp = NULL;
	Qsign__V1__PayloadKind kind;
	size_t n = 0, done = 0, failed = 0, dg_len = 0;
	qsc_client *c = NULL;
	int r, first = 1;

	{
		const struct opt_keep keep[] = {{'r', &role, NULL},
		                                {'k', &key, NULL},
		                                {'H', &hash_name, NULL},
		                                {0, NULL, NULL}};
		const struct opts o = {"r:k:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, sign_batch_usage, &o)) >= 0)
			return r;
	}
	if (role == NULL) {
		sign_batch_usage(stderr);
		return EXIT_USAGE;
	}
	if (!qs_name_valid(role, QS_MAX_NAME) ||
	    (key != NULL && !qs_name_valid(key, QS_MAX_NAME))) {
		errmsg("invalid role or key name");
		return EXIT_USAGE;
	}
	if ((hash = parse_hash(hash_name, &dg_len, &md)) == NULL)
		return EXIT_USAGE;
	if (optind == argc) {
		kind = QSIGN__V1__PAYLOAD_KIND__DIGEST;
		if (read_digest_lines(hash, dg_len, &items, &n) != 0)
			return EXIT_USAGE;
	} else {
		kind = QSIGN__V1__PAYLOAD_KIND__BLOB;
		n = (size_t)(argc - optind);
		if (check_files(argv + optind, n, &items) != 0)
			return EXIT_USAGE;
	}
	if ((pl = calloc(QS_MAX_BATCH, sizeof(*pl))) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		goto out;
	while (done < n) {
		size_t m = 0, bytes = 0;

		/* Fill one call: at most QS_MAX_BATCH items and one frame. */
		while (done + m < n && m < QS_MAX_BATCH) {
			struct batch_item *it = &items[done + m];
			if (kind == QSIGN__V1__PAYLOAD_KIND__DIGEST) {
				pl[m].data = it->digest;
				pl[m].len = dg_len;
			} else {
				uint8_t *b;
				size_t len;
				if (read_input(it->file, QS_MAX_BLOB, &b, &len) != 0) {
					r = EXIT_USAGE;
					goto out;
				}
				if (m > 0 && bytes + len > BATCH_FRAME_BUDGET) {
					free(b);
					break;
				}
				if (EVP_Digest(b, len, it->digest, NULL, md, NULL) != 1) {
					errmsg("%s of %s failed", hash, it->file);
					free(b);
					r = EXIT_FAILED;
					goto out;
				}
				pl[m].data = b;
				pl[m].len = len;
			}
			bytes += pl[m].len;
			m++;
		}
		r = qsc_sign_batch_hash(c, role, key, kind, hash, pl, m, &resp);
		if (kind == QSIGN__V1__PAYLOAD_KIND__BLOB) {
			for (size_t i = 0; i < m; i++) {
				free(pl[i].data);
				pl[i].data = NULL;
			}
		}
		if (r != 0) {
			if (!first)
				fputs("\n]\n", stdout);
			first = 1;
			fflush(stdout);
			r = report(g, c, r);
			goto out;
		}
		for (size_t i = 0; i < m; i++) {
			const Qsign__V1__SignResult *res = resp->results[i];
			if (res->status == QSIGN__V1__STATUS__OK &&
			    CRYPTO_memcmp(res->digest.data, items[done + i].digest, dg_len) != 0) {
				if (!first)
					fputs("\n]\n", stdout);
				first = 1;
				errmsg("the daemon signed a different digest than item %zu: "
				       "refusing the batch",
				       done + i + 1);
				r = EXIT_FAILED;
				goto out;
			}
		}
		for (size_t i = 0; i < m; i++) {
			if (resp->results[i]->status != QSIGN__V1__STATUS__OK)
				failed++;
			put_item(g, &items[done + i], dg_len, resp, resp->results[i], &first);
		}
		qsc_free(resp);
		resp = NULL;
		done += m;
	}
	if (g->json)
		fputs(first ? "[]\n" : "\n]\n", stdout);
	if (fflush(stdout) != 0) {
		errmsg("stdout: %s", strerror(errno));
		r = EXIT_FAILED;
		goto out;
	}
	if (failed > 0)
		errmsg("%zu of %zu items were refused", failed, n);
	r = failed > 0 ? EXIT_FAILED : EXIT_OK;
out:
	if (pl != NULL && kind == QSIGN__V1__PAYLOAD_KIND__BLOB)
		for (size_t i = 0; i < QS_MAX_BATCH; i++)
			free(pl[i].data);
	free(pl);
	qsc_free(resp);
	qsc_close(c);
	free(items);
	return r;
}

/* ------------------------------------------------------------ shared helpers */

void
iso_time(int64_t t, char buf[32])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "-");
}

/* A JSON string of text from the daemon: jansson refuses invalid UTF-8,
 * so such bytes become '?' rather than losing the whole document. */
json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy;

	if (s == NULL)
		s = "";
	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------ command groups */

const struct command *
find_command(const struct command *cmds, const char *name)
{
	for (size_t i = 0; name != NULL && cmds[i].name != NULL; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Levenshtein distance of two short words (at most 63 bytes each; longer
 * ones count as far apart). Written here: none of the project's libraries
 * offers it, and it is a dozen lines. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= sizeof(row) || lb >= sizeof(row))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

const struct command *
closest_command(const struct command *cmds, const char *name)
{
	const struct command *best = NULL;
	size_t bd = SIZE_MAX, braw = SIZE_MAX, n = strlen(name);

	for (size_t i = 0; cmds[i].name != NULL; i++) {
		size_t raw = edit_distance(name, cmds[i].name), d = raw;
		/* "revoke-dev" for "revoke-device": a prefix is as good as one
		 * typo; among several, the nearest whole name. */
		if (n >= 2 && strncmp(cmds[i].name, name, n) == 0)
			d = 1;
		if (d < bd || (d == bd && raw < braw)) {
			bd = d;
			braw = raw;
			best = &cmds[i];
		}
	}
	return bd <= 2 && bd < n ? best : NULL;
}

void
unknown_command(const char *what, const char *name, const struct command *cmds, const char *help)
{
	const struct command *near = closest_command(cmds, name);

	if (near != NULL)
		errmsg("unknown %s %s: did you mean %s? (see %s)", what, name, near->name, help);
	else
		errmsg("unknown %s %s (see %s)", what, name, help);
}

void
group_usage(FILE *f, const char *group, const struct command *cmds, const char *example)
{
	int w = 0;

	for (size_t i = 0; cmds[i].name != NULL; i++)
		if ((int)strlen(cmds[i].name) > w)
			w = (int)strlen(cmds[i].name);
	fprintf(f, "usage: %s [GLOBAL OPTIONS] %s SUBCOMMAND [ARGS...]\n", progname, group);
	for (size_t i = 0; cmds[i].name != NULL; i++)
		fprintf(f, "  %-*s  %s\n", w, cmds[i].name, cmds[i].summary);
	fprintf(f, "'%s %s SUBCOMMAND --help' describes one.\nexample: %s %s\n", progname, group,
	        progname, example);
}

int
group_main(int argc, char **argv, struct globals *g, const struct command *cmds,
           void (*usage_fn)(FILE *))
{
	const struct command *sub;

	if (argc < 2) {
		usage_fn(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage_fn(stdout);
		return EXIT_OK;
	}
	if ((sub = find_command(cmds, argv[1])) == NULL) {
		char what[64], help[96];
		snprintf(what, sizeof(what), "%s subcommand", argv[0]);
		snprintf(help, sizeof(help), "%s %s --help", progname, argv[0]);
		unknown_command(what, argv[1], cmds, help);
		return EXIT_USAGE;
	}
	return sub->main(argc - 1, argv + 1, g);
}

/* ------------------------------------------------------------ main */

const struct command qsign_commands[] = {
        {"keygen", keygen_main, keygen_usage, "create a principal key file (local)", NULL},
        {"info", info_main, info_usage, "daemon identity, policy version, your roles", NULL},
        {"keys", keys_main, keys_usage, "keys named in the policy; one with NAME [--pem]", NULL},
        {"verify", sigverify_main, sigverify_usage,
         "check a signature here against the key the daemon publishes", NULL},
        {"sign", sign_main, sign_usage, "sign one digest or blob with an online role", NULL},
        {"sign-batch", sign_batch_main, sign_batch_usage, "sign many digests or blobs", NULL},
        {"request", request_main, request_usage,
         "quorum requests: submit, list, show, cancel, wait, fetch", request_commands},
        {"approve", approve_main, approve_usage, "approve a request (signed with your key)", NULL},
        {"reject", reject_main, reject_usage, "reject a request (signed with your key)", NULL},
        {"policy", policy_main, policy_usage, "policy versions: show, propose", policy_commands},
        {"metrics", metrics_main, metrics_usage, "daemon counters (Prometheus text) and readiness",
         NULL},
        {"audit", audit_main, audit_usage,
         "audit log: checkpoint, tail, show, proof, export, verify", audit_commands},
        {"tuf", tuf_main, tuf_usage,
         "TUF repositories: init, push-targets, promote, rotate-key, review", tuf_commands},
        {"ca", ca_main, ca_usage,
         "factory PKI: create, show, issue-tls, add-device-ca, issue-device, crl", ca_commands},
        {"completion", completion_main, completion_usage,
         "print the bash or zsh completion script (from this table)", NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

void
qsign_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [-s URL] [-p PRINCIPAL] [-i KEYFILE|pkcs11:URI] [--json] [--timeout S]\n"
	        "             [--tls-cert F --tls-key F --tls-ca F [--tls-server-name N]]\n"
	        "             [--server-key SHA256:...|FILE] [--accept-new] COMMAND [ARGS...]\n"
	        "  -s URL        daemon: ipc://PATH or tls+tcp://HOST:PORT; repeat it (or list\n"
	        "                URLs with commas) for replicas, tried in order\n"
	        "                (QSIGN_SERVER, default ipc://$QSIGN_HOME/qsignd.sock)\n"
	        "  -p PRINCIPAL  who you are (QSIGN_PRINCIPAL)\n"
	        "  -i IDENTITY   your private key: PEM file or pkcs11: URI\n"
	        "                (QSIGN_IDENTITY, default $QSIGN_HOME/demo/PRINCIPAL.key)\n"
	        "  --json        print one JSON document instead of text\n"
	        "  --timeout S   seconds to wait for each reply (default 30)\n"
	        "  --server-key K  the daemon's key: SHA256:<base64> or a PEM public key file\n"
	        "                (QSIGN_SERVER_KEY); else the key remembered for the URL in\n"
	        "                $XDG_CONFIG_HOME/qsign/known_servers (~/.config/qsign/...),\n"
	        "                learned on first use; a changed key is refused\n"
	        "  --accept-new  trust a server not yet known without asking (on a terminal\n"
	        "                qsign asks; otherwise it trusts and remembers it)\n"
	        "commands:\n",
	        progname);
	/* Every command and subcommand, from the table (so none is missing). */
	for (size_t i = 0; qsign_commands[i].name != NULL; i++) {
		const struct command *sub = qsign_commands[i].sub;
		if (sub == NULL) {
			fprintf(f, "  %-26s %s\n", qsign_commands[i].name,
			        qsign_commands[i].summary);
			continue;
		}
		for (size_t j = 0; sub[j].name != NULL; j++) {
			char both[64];
			snprintf(both, sizeof(both), "%s %s", qsign_commands[i].name, sub[j].name);
			fprintf(f, "  %-26s %s\n", both, sub[j].summary);
		}
	}
	fprintf(f,
	        "'%s help COMMAND [SUBCOMMAND]' describes one, with an example. Exit codes:\n"
	        "0 ok, 1 failed or refused by the daemon, 2 usage error, 3 cannot reach the\n"
	        "daemon. Completion: `qsign completion bash|zsh`.\n"
	        "example: %s -p ci sign -r ci-sign -d "
	        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
	        progname, progname);
}

/* The process may hold a private key: no core dumps, no ptrace by peers of
 * the same uid, and fds 0-2 are always open so a key file never becomes
 * stdout. */
static void
harden(void)
{
	struct rlimit rl = {0, 0};
	int fd;

	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0 && fd <= 2) {
		if (fcntl(fd, F_SETFD, 0) != 0)
			break;
	}
	if (fd > 2)
		close(fd);
}

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

int
main(int argc, char **argv)
{
	enum { O_JSON = 256, O_TIMEOUT, O_CERT, O_KEY, O_CA, O_SNI, O_VERSION, O_SKEY, O_NEW };
	static const struct option opts[] = {
	        {"server", required_argument, NULL, 's'},
	        {"principal", required_argument, NULL, 'p'},
	        {"identity", required_argument, NULL, 'i'},
	        {"json", no_argument, NULL, O_JSON},
	        {"timeout", required_argument, NULL, O_TIMEOUT},
	        {"tls-cert", required_argument, NULL, O_CERT},
	        {"tls-key", required_argument, NULL, O_KEY},
	        {"tls-ca", required_argument, NULL, O_CA},
	        {"tls-server-name", required_argument, NULL, O_SNI},
	        {"server-key", required_argument, NULL, O_SKEY},
	        {"accept-new", no_argument, NULL, O_NEW},
	        {"version", no_argument, NULL, O_VERSION},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct globals g = {0};
	const struct command *cmd = NULL;
	int ch, r, s_seen = 0;

	harden();
	g.home = env_or("QSIGN_HOME", "./.qsign");
	g.url = env_or("QSIGN_SERVER", NULL);
	g.principal = env_or("QSIGN_PRINCIPAL", NULL);
	g.identity = env_or("QSIGN_IDENTITY", NULL);
	g.tls_cert = env_or("QSIGN_TLS_CERT", NULL);
	g.tls_key = env_or("QSIGN_TLS_KEY", NULL);
	g.tls_ca = env_or("QSIGN_TLS_CA", NULL);
	g.timeout_ms = QSC_DEFAULT_TIMEOUT_MS;
	g.server_key = env_or("QSIGN_SERVER_KEY", NULL);

	/* '+': stop at the command name; what follows is the command's. */
	while ((ch = getopt_long(argc, argv, "+s:p:i:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			/* Repeated: replicas, tried in order (qsc_options.url). */
			if (s_seen++ > 0) {
				char *list = NULL;
				if (asprintf(&list, "%s,%s", g.url, optarg) < 0) {
					errmsg("out of memory");
					return EXIT_FAILED;
				}
				free(g.url_buf);
				g.url = g.url_buf = list;
			} else {
				g.url = optarg;
			}
			break;
		case 'p':
			g.principal = optarg;
			break;
		case 'i':
			g.identity = optarg;
			break;
		case O_JSON:
			g.json = 1;
			break;
		case O_TIMEOUT:
			if (parse_timeout(optarg, &g.timeout_ms) != 0) {
				errmsg("--timeout needs whole seconds, 1..86400");
				return EXIT_USAGE;
			}
			break;
		case O_CERT:
			g.tls_cert = optarg;
			break;
		case O_KEY:
			g.tls_key = optarg;
			break;
		case O_CA:
			g.tls_ca = optarg;
			break;
		case O_SNI:
			g.tls_server_name = optarg;
			break;
		case O_SKEY:
			g.server_key = optarg;
			break;
		case O_NEW:
			g.accept_new = 1;
			break;
		case O_VERSION:
			printf("qsign %s\n", QS_VERSION);
			return EXIT_OK;
		case 'h':
			qsign_usage(stdout);
			return EXIT_OK;
		default:
			qsign_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		qsign_usage(stderr);
		return EXIT_USAGE;
	}
	if (g.server_key != NULL && strncmp(g.server_key, "SHA256:", 7) == 0 &&
	    strlen(g.server_key) != 50) {
		errmsg("--server-key: a fingerprint is SHA256: and 43 base64 characters (as `%s "
		       "info` shows it)",
		       progname);
		return EXIT_USAGE;
	}

	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 >= argc) {
			qsign_usage(stdout);
			return EXIT_OK;
		}
		cmd = find_command(qsign_commands, argv[optind + 1]);
		if (cmd == NULL) {
			unknown_command("command", argv[optind + 1], qsign_commands,
			                "qsign --help");
			return EXIT_USAGE;
		}
		if (optind + 2 < argc && cmd->sub != NULL) {
			const struct command *sub = find_command(cmd->sub, argv[optind + 2]);
			if (sub == NULL) {
				char what[64], help[96];
				snprintf(what, sizeof(what), "%s subcommand", cmd->name);
				snprintf(help, sizeof(help), "%s help %s", progname, cmd->name);
				unknown_command(what, argv[optind + 2], cmd->sub, help);
				return EXIT_USAGE;
			}
			cmd = sub;
		}
		cmd->usage(stdout);
		return EXIT_OK;
	}
	cmd = find_command(qsign_commands, argv[optind]);
	if (cmd == NULL) {
		unknown_command("command", argv[optind], qsign_commands, "qsign --help");
		return EXIT_USAGE;
	}
	if (g.url == NULL) {
		if (asprintf(&g.url_buf, "ipc://%s/qsignd.sock", g.home) < 0) {
			errmsg("out of memory");
			return EXIT_FAILED;
		}
		g.url = g.url_buf;
	}
	r = cmd->main(argc - optind, argv + optind, &g);
	if (fflush(stdout) != 0 && r == EXIT_OK) {
		errmsg("stdout: %s", strerror(errno));
		r = EXIT_FAILED;
	}
	free(g.url_buf);
	free(g.identity_buf);
	free(g.pin_buf);
	return r;
}
