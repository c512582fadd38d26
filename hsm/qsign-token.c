/*
 * qsign-token - local administration of PKCS#11 tokens for quorum-signer:
 * initialise a development token, generate keys, list them, export public
 * keys and sign. A thin shell over hsm/: every token operation goes through
 * hsm.h. PINs come from files or the environment, never from argv.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <p11-kit/uri.h>

#include "hsm.h"
#include "qs_err.h"

#define PROG "qsign-token"
#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
/* Ed25519 signs the whole message in one C_Sign: keep it in memory, bounded. */
#define MESSAGE_MAX (64UL * 1024 * 1024)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Options shared by the subcommands that open a token. */
struct token_opts {
	const char *module;
	const char *uri;
	const char *pin_source;
};

static int
fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s: %s\n", PROG, what, qs_strerror(err), qs_errdetail());
	return EXIT_FAIL;
}

static int
usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s %s: %s\nTry '%s %s --help'.\n", PROG, cmd, msg, PROG, cmd);
	return EXIT_USAGE;
}

/*
 * getopt_long accepts any unambiguous prefix of a long option, so "--pin 1234"
 * would silently mean "--pin-source 1234" and put a PIN on argv. Require
 * exact long option names.
 */
static int
exact_longopts(const char *cmd, int argc, char **argv, const struct option *opts)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		size_t n;
		bool known = false;

		if (strcmp(a, "--") == 0)
			break;
		if (strncmp(a, "--", 2) != 0)
			continue;
		a += 2;
		n = strcspn(a, "=");
		for (const struct option *o = opts; o->name != NULL; o++)
			if (strlen(o->name) == n && strncmp(o->name, a, n) == 0)
				known = true;
		if (!known) {
			fprintf(stderr, "%s %s: unknown option '--%.*s'\n", PROG, cmd, (int)n, a);
			return usage_error(cmd, "bad option");
		}
	}
	return EXIT_OK;
}

static void
hex_print(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

/* Strict: even length, hex digits only, at most max bytes. */
static int
hex_decode(const char *s, uint8_t *out, size_t max, size_t *n)
{
	size_t len = strlen(s);
	unsigned v;

	*n = 0;
	if (len == 0 || len % 2 != 0 || len / 2 > max)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	*n = len / 2;
	return 0;
}

static const char *
default_module(const char *m)
{
	const char *e;

	if (m != NULL)
		return m;
	if ((e = getenv("QSIGN_PKCS11_MODULE")) != NULL && *e != '\0')
		return e;
	return DEFAULT_MODULE;
}

/*
 * -P wins; else the URI's pin-source (hsm_open reads it); else the file
 * named by QSIGN_PIN_FILE. `buf` holds the composed "file:" source.
 */
static int
resolve_pin_source(struct token_opts *o, char *buf, size_t buf_len)
{
	P11KitUri *uri;
	const char *e;
	bool uri_has_pin = false;

	if (o->pin_source != NULL)
		return 0;
	if ((uri = p11_kit_uri_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "p11_kit_uri_new");
	if (p11_kit_uri_parse(o->uri, P11_KIT_URI_FOR_ANY, uri) == P11_KIT_URI_OK)
		uri_has_pin = p11_kit_uri_get_pin_source(uri) != NULL;
	p11_kit_uri_free(uri);
	if (uri_has_pin)
		return 0;
	if ((e = getenv("QSIGN_PIN_FILE")) != NULL && *e != '\0') {
		if ((size_t)snprintf(buf, buf_len, "file:%s", e) >= buf_len)
			return qs_fail(QS_ERR_INVALID, "QSIGN_PIN_FILE is too long");
		o->pin_source = buf;
	}
	return 0;
}

static int
open_token(struct token_opts *o, hsm_token **t)
{
	char src[4096];
	int r;

	*t = NULL;
	o->module = default_module(o->module);
	if ((r = resolve_pin_source(o, src, sizeof(src))) != 0)
		return fail("PIN source", r);
	if ((r = hsm_open(o->module, o->uri, o->pin_source, t)) != 0)
		return fail("open token", r);
	return EXIT_OK;
}

static int
write_out(const char *path, const void *buf, size_t len)
{
	FILE *f = stdout;
	int r;

	if (path != NULL && (f = fopen(path, "wbe")) == NULL) {
		r = qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
		return fail("write", r);
	}
	if (fwrite(buf, 1, len, f) != len || fflush(f) != 0) {
		r = qs_fail(QS_ERR_IO, "%s: %s", path != NULL ? path : "stdout", strerror(errno));
		if (path != NULL)
			fclose(f);
		return fail("write", r);
	}
	if (path != NULL && fclose(f) != 0) {
		r = qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
		return fail("write", r);
	}
	return EXIT_OK;
}

/* Key id as the rest of quorum-signer prints it: SHA-256 of the SPKI DER. */
static int
key_id_hex(hsm_token *t, const hsm_key *k, char out[2 * SHA256_DIGEST_LENGTH + 1])
{
	uint8_t *der = NULL, md[SHA256_DIGEST_LENGTH];
	size_t der_len;
	int r;

	if ((r = hsm_key_spki_der(t, k, &der, &der_len)) != 0)
		return r;
	SHA256(der, der_len, md);
	free(der);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* ---- init ------------------------------------------------------------ */

static const char init_help[] =
        "Usage: " PROG " init --so-pin-file FILE --pin-file FILE --label LABEL [--module MODULE]\n"
        "\n"
        "Initialise the first uninitialised token of MODULE (a SoftHSM development\n"
        "token, typically): set its SO PIN and label, then its user PIN. The PINs\n"
        "are read from the files (one trailing newline is ignored); they are never\n"
        "taken from the command line. Refuses a label that an existing token has.\n"
        "\n"
        "Example:\n"
        "  " PROG " init --so-pin-file so.pin --pin-file user.pin --label qsign-dev\n";

static int
init_main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"so-pin-file", required_argument, NULL, 's'},
	        {"pin-file", required_argument, NULL, 'p'},
	        {"label", required_argument, NULL, 'l'},
	        {"module", required_argument, NULL, 'm'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *so = NULL, *pin = NULL, *label = NULL, *module = NULL;
	char so_src[4096], pin_src[4096];
	int c, r;

	if (exact_longopts("init", argc, argv, opts) != EXIT_OK)
		return EXIT_USAGE;
	while ((c = getopt_long(argc, argv, "s:p:l:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			so = optarg;
			break;
		case 'p':
			pin = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'h':
			fputs(init_help, stdout);
			return EXIT_OK;
		default:
			return usage_error("init", "bad option");
		}
	}
	if (optind != argc)
		return usage_error("init", "unexpected argument");
	if (so == NULL || pin == NULL || label == NULL)
		return usage_error("init", "--so-pin-file, --pin-file and --label are required");
	if ((size_t)snprintf(so_src, sizeof(so_src), "file:%s", so) >= sizeof(so_src) ||
	    (size_t)snprintf(pin_src, sizeof(pin_src), "file:%s", pin) >= sizeof(pin_src))
		return usage_error("init", "PIN file path too long");
	if ((r = hsm_init_token(default_module(module), so_src, pin_src, label)) != 0)
		return fail("init", r);
	printf("initialised token \"%s\"\n", label);
	return EXIT_OK;
}

/* ---- options shared by keygen/list/pubkey/sign ------------------------ */

/* clang-format off */
#define TOKEN_LONGOPTS                                                                             \
	{"module", required_argument, NULL, 'm'},                                                  \
	{"uri", required_argument, NULL, 'u'},                                                     \
	{"pin-source", required_argument, NULL, 'P'},                                              \
	{"help", no_argument, NULL, 'h'}
/* clang-format on */

#define TOKEN_HELP                                                                                 \
	"  -m, --module MODULE      PKCS#11 module (default: $QSIGN_PKCS11_MODULE,\n"              \
	"                           else " DEFAULT_MODULE ")\n"                                    \
	"  -u, --uri URI            RFC 7512 URI of the token (and key)\n"                         \
	"  -P, --pin-source SRC     file:PATH or env:NAME (default: the URI's\n"                   \
	"                           pin-source, else file:$QSIGN_PIN_FILE)\n"

/* Handle an option every token subcommand has; 1 if it was one. */
static int
token_opt(struct token_opts *o, int c)
{
	switch (c) {
	case 'm':
		o->module = optarg;
		return 1;
	case 'u':
		o->uri = optarg;
		return 1;
	case 'P':
		o->pin_source = optarg;
		return 1;
	}
	return 0;
}

/* ---- keygen ---------------------------------------------------------- */

static const char keygen_help[] =
        "Usage: " PROG " keygen -u URI -t TYPE -l LABEL [--id HEX] [-m MODULE] [-P SRC]\n"
        "\n"
        "Generate a key pair inside the token (private part sensitive and not\n"
        "extractable). Prints the key id (SHA-256 of the public key's DER) and the\n"
        "public key as PEM. TYPE is ecdsa-p256, ecdsa-p384, ed25519, rsa3072 (PSS), or\n"
        "rsa2048-pkcs1, rsa3072-pkcs1, rsa4096-pkcs1 (PKCS#1 v1.5, for UEFI, FIT, HAB).\n"
        "An RSA key is restricted to its one padding (CKA_ALLOWED_MECHANISMS).\n"
        "\n" TOKEN_HELP "  -t, --type TYPE\n"
        "  -l, --label LABEL        CKA_LABEL (refused if a key has it already)\n"
        "      --id HEX             CKA_ID (default: 16 random bytes)\n"
        "\n"
        "Example:\n"
        "  " PROG " keygen -u 'pkcs11:token=qsign-dev' -P file:user.pin -t ed25519 -l admin1\n";

static int
keygen_main(int argc, char **argv)
{
	static const struct option opts[] = {
	        TOKEN_LONGOPTS,
	        {"type", required_argument, NULL, 't'},
	        {"label", required_argument, NULL, 'l'},
	        {"id", required_argument, NULL, 'i'},
	        {NULL, 0, NULL, 0},
	};
	struct token_opts o = {0};
	const char *type_s = NULL, *label = NULL, *id_hex = NULL;
	uint8_t id[HSM_ID_MAX];
	size_t id_len = 0;
	enum hsm_keytype type;
	hsm_token *t = NULL;
	hsm_key *k = NULL;
	char kid[2 * SHA256_DIGEST_LENGTH + 1], *pem = NULL;
	int c, r, ret;

	if (exact_longopts("keygen", argc, argv, opts) != EXIT_OK)
		return EXIT_USAGE;
	while ((c = getopt_long(argc, argv, "m:u:P:t:l:h", opts, NULL)) != -1) {
		if (token_opt(&o, c))
			continue;
		switch (c) {
		case 't':
			type_s = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 'i':
			id_hex = optarg;
			break;
		case 'h':
			fputs(keygen_help, stdout);
			return EXIT_OK;
		default:
			return usage_error("keygen", "bad option");
		}
	}
	if (optind != argc)
		return usage_error("keygen", "unexpected argument");
	if (o.uri == NULL || type_s == NULL || label == NULL)
		return usage_error("keygen", "-u, -t and -l are required");
	if ((type = hsm_keytype_parse(type_s)) == HSM_KEY_NONE) {
		char msg[160];
		snprintf(msg, sizeof(msg), "type must be %s", hsm_keytype_names());
		return usage_error("keygen", msg);
	}
	if (id_hex != NULL && hex_decode(id_hex, id, sizeof(id), &id_len) != 0)
		return usage_error("keygen", "--id must be 1..32 bytes of hex");
	if ((ret = open_token(&o, &t)) != EXIT_OK)
		goto out;
	if ((r = hsm_keygen(t, type, label, id_hex != NULL ? id : NULL, id_len, &k)) != 0) {
		ret = fail("keygen", r);
		goto out;
	}
	if ((r = key_id_hex(t, k, kid)) != 0 || (r = hsm_key_spki_pem(t, k, &pem)) != 0) {
		ret = fail("public key", r);
		goto out;
	}
	printf("%s\n%s", kid, pem);
	ret = EXIT_OK;
out:
	free(pem);
	hsm_key_free(k);
	hsm_close(t);
	return ret;
}

/* ---- list ------------------------------------------------------------ */

static const char list_help[] =
        "Usage: " PROG " list -u URI [-m MODULE] [-P SRC]\n"
        "\n"
        "List the private keys of the token, one per line:\n"
        "  TYPE LABEL CKA_ID-HEX KEY-ID\n"
        "TYPE is \"unsupported\" and KEY-ID \"-\" for keys this tool cannot use.\n"
        "\n" TOKEN_HELP "\n"
        "Example:\n"
        "  " PROG " list -u 'pkcs11:token=qsign-dev' -P file:user.pin\n";

/* A URI naming exactly this key, formatted by p11-kit. */
static int
key_uri(const struct hsm_keyinfo *ki, char **out)
{
	P11KitUri *uri;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE a;
	int r;

	*out = NULL;
	if ((uri = p11_kit_uri_new()) == NULL)
		return qs_fail(QS_ERR_NOMEM, "p11_kit_uri_new");
	a = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
	p11_kit_uri_set_attribute(uri, &a);
	if (ki->label[0] != '\0') {
		a = (CK_ATTRIBUTE){CKA_LABEL, (void *)ki->label, strlen(ki->label)};
		p11_kit_uri_set_attribute(uri, &a);
	}
	if (ki->id_len > 0) {
		a = (CK_ATTRIBUTE){CKA_ID, (void *)ki->id, ki->id_len};
		p11_kit_uri_set_attribute(uri, &a);
	}
	r = p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT, out) == P11_KIT_URI_OK
	            ? 0
	            : qs_fail(QS_ERR_INTERNAL, "p11_kit_uri_format");
	p11_kit_uri_free(uri);
	return r;
}

static int
list_main(int argc, char **argv)
{
	static const struct option opts[] = {TOKEN_LONGOPTS, {NULL, 0, NULL, 0}};
	struct token_opts o = {0};
	struct hsm_keyinfo *keys = NULL;
	size_t n = 0;
	hsm_token *t = NULL;
	int c, r, ret;

	if (exact_longopts("list", argc, argv, opts) != EXIT_OK)
		return EXIT_USAGE;
	while ((c = getopt_long(argc, argv, "m:u:P:h", opts, NULL)) != -1) {
		if (token_opt(&o, c))
			continue;
		if (c == 'h') {
			fputs(list_help, stdout);
			return EXIT_OK;
		}
		return usage_error("list", "bad option");
	}
	if (optind != argc)
		return usage_error("list", "unexpected argument");
	if (o.uri == NULL)
		return usage_error("list", "-u is required");
	if ((ret = open_token(&o, &t)) != EXIT_OK)
		goto out;
	if ((r = hsm_key_list(t, &keys, &n)) != 0) {
		ret = fail("list", r);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = hsm_keytype_name(keys[i].type);
		char kid[2 * SHA256_DIGEST_LENGTH + 1] = "-", *uri = NULL;
		hsm_key *k = NULL;

		if (name != NULL && key_uri(&keys[i], &uri) == 0 && hsm_key_find(t, uri, &k) == 0 &&
		    key_id_hex(t, k, kid) != 0)
			snprintf(kid, sizeof(kid), "-");
		hsm_key_free(k);
		free(uri);
		printf("%s %s ", name != NULL ? name : "unsupported",
		       keys[i].label[0] != '\0' ? keys[i].label : "-");
		if (keys[i].id_len > 0)
			hex_print(stdout, keys[i].id, keys[i].id_len);
		else
			fputs("-", stdout);
		printf(" %s\n", kid);
	}
	ret = EXIT_OK;
out:
	free(keys);
	hsm_close(t);
	return ret;
}

/* ---- pubkey ---------------------------------------------------------- */

static const char pubkey_help[] =
        "Usage: " PROG " pubkey -u URI [--der] [-o FILE] [-m MODULE] [-P SRC]\n"
        "\n"
        "Export the public key (SubjectPublicKeyInfo) of the key that the URI\n"
        "names with object= and/or id=, as PEM (default) or DER.\n"
        "\n" TOKEN_HELP "      --der                DER instead of PEM\n"
        "  -o, --out FILE           write to FILE instead of stdout\n"
        "\n"
        "Example:\n"
        "  " PROG " pubkey -u 'pkcs11:token=qsign-dev;object=admin1' -P file:user.pin\n";

static int
pubkey_main(int argc, char **argv)
{
	static const struct option opts[] = {
	        TOKEN_LONGOPTS,
	        {"der", no_argument, NULL, 'D'},
	        {"out", required_argument, NULL, 'o'},
	        {NULL, 0, NULL, 0},
	};
	struct token_opts o = {0};
	const char *outp = NULL;
	bool der = false;
	hsm_token *t = NULL;
	hsm_key *k = NULL;
	uint8_t *buf = NULL;
	char *pem = NULL;
	size_t len;
	int c, r, ret;

	if (exact_longopts("pubkey", argc, argv, opts) != EXIT_OK)
		return EXIT_USAGE;
	while ((c = getopt_long(argc, argv, "m:u:P:o:h", opts, NULL)) != -1) {
		if (token_opt(&o, c))
			continue;
		switch (c) {
		case 'D':
			der = true;
			break;
		case 'o':
			outp = optarg;
			break;
		case 'h':
			fputs(pubkey_help, stdout);
			return EXIT_OK;
		default:
			return usage_error("pubkey", "bad option");
		}
	}
	if (optind != argc)
		return usage_error("pubkey", "unexpected argument");
	if (o.uri == NULL)
		return usage_error("pubkey", "-u is required");
	if ((ret = open_token(&o, &t)) != EXIT_OK)
		goto out;
	if ((r = hsm_key_find(t, o.uri, &k)) != 0) {
		ret = fail("find key", r);
		goto out;
	}
	if (der)
		r = hsm_key_spki_der(t, k, &buf, &len);
	else if ((r = hsm_key_spki_pem(t, k, &pem)) == 0)
		len = strlen(pem);
	if (r != 0) {
		ret = fail("public key", r);
		goto out;
	}
	ret = write_out(outp, der ? (void *)buf : (void *)pem, len);
out:
	free(buf);
	free(pem);
	hsm_key_free(k);
	hsm_close(t);
	return ret;
}

/* ---- sign ------------------------------------------------------------ */

static const char sign_help[] =
        "Usage: " PROG " sign -u URI (-d HEX | -f FILE) [--hash H] [--format FMT]\n"
        "                        [-o FILE] [-m MODULE] [-P SRC]\n"
        "\n"
        "Sign with the key that the URI names. ECDSA and RSA keys sign the\n"
        "SHA-256 (or --hash) of FILE, or the digest given with -d: 32, 48 or 64\n"
        "bytes, a SHA-256, SHA-384 or SHA-512 digest, told by its length; ed25519\n"
        "keys sign the bytes of FILE (pure Ed25519; -d and --hash are refused).\n"
        "FILE \"-\" is stdin. rsa3072 uses PSS with the digest's hash, MGF1 of it\n"
        "and a salt of its length; rsa*-pkcs1 PKCS#1 v1.5 over its DigestInfo.\n"
        "\n" TOKEN_HELP "  -d, --digest HEX         digest to sign (64, 96 or 128 hex digits)\n"
        "  -f, --file FILE          data to sign\n"
        "      --hash H             sha256 (default), sha384 or sha512: the hash of\n"
        "                           FILE; with -d, the digest must be of it\n"
        "      --format FMT         der (default; binary: DER ECDSA-Sig-Value for\n"
        "                           ECDSA keys, the plain signature otherwise),\n"
        "                           raw-hex (r||s for ECDSA keys), hex (of der), base64\n"
        "                           (of der)\n"
        "  -o, --out FILE           write to FILE instead of stdout\n"
        "\n"
        "Example:\n"
        "  " PROG " sign -u 'pkcs11:token=qsign-dev;object=ci' -P file:user.pin \\\n"
        "      -f targets.json --format hex\n";

enum sig_format { FMT_DER, FMT_RAW_HEX, FMT_HEX, FMT_BASE64 };

/* --hash: OpenSSL's digest of that name, among those the token layer
 * signs (hsm_sign: told by their length); NULL otherwise. */
static const EVP_MD *
hash_md(const char *name)
{
	static const char *const names[] = {"sha256", "sha384", "sha512"};
	size_t dummy;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const EVP_MD *md = strcmp(name, names[i]) == 0 ? EVP_get_digestbyname(name) : NULL;
		if (md != NULL &&
		    hsm_digestinfo_prefix((size_t)EVP_MD_get_size(md), &dummy) != NULL)
			return md;
	}
	return NULL;
}

static int
read_input(const char *path, uint8_t **out, size_t *out_len)
{
	FILE *f = stdin;
	uint8_t *buf = NULL, *nb;
	size_t len = 0, cap = 0, n;
	int r;

	*out = NULL;
	*out_len = 0;
	if (strcmp(path, "-") != 0 && (f = fopen(path, "rbe")) == NULL) {
		r = qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= MESSAGE_MAX) {
				r = qs_fail(QS_ERR_EXHAUSTED, "%s: larger than %lu bytes", path,
				            MESSAGE_MAX);
				goto out;
			}
			cap = cap == 0 ? 65536 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				r = qs_fail(QS_ERR_NOMEM, "input buffer");
				goto out;
			}
			buf = nb;
		}
		if ((n = fread(buf + len, 1, cap - len, f)) == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		r = qs_fail(QS_ERR_IO, "%s: read error", path);
		goto out;
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
	r = 0;
out:
	if (f != NULL && f != stdin)
		fclose(f);
	free(buf);
	return r;
}

static int
sign_main(int argc, char **argv)
{
	static const struct option opts[] = {
	        TOKEN_LONGOPTS,
	        {"digest", required_argument, NULL, 'd'},
	        {"file", required_argument, NULL, 'f'},
	        {"format", required_argument, NULL, 'F'},
	        {"out", required_argument, NULL, 'o'},
	        {"hash", required_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	struct token_opts o = {0};
	const char *digest_hex = NULL, *file = NULL, *outp = NULL, *fmt_s = "der", *hash = NULL;
	const EVP_MD *hmd = EVP_sha256();
	enum sig_format fmt;
	hsm_token *t = NULL;
	hsm_key *k = NULL;
	uint8_t *data = NULL, md[EVP_MAX_MD_SIZE], sig[HSM_SIG_MAX], der[HSM_SIG_MAX + 9];
	uint8_t *enc = NULL;
	const uint8_t *in, *body;
	size_t data_len = 0, in_len, sig_len, body_len, md_len, enc_len = 0;
	int c, r, ret;

	if (exact_longopts("sign", argc, argv, opts) != EXIT_OK)
		return EXIT_USAGE;
	while ((c = getopt_long(argc, argv, "m:u:P:d:f:o:h", opts, NULL)) != -1) {
		if (token_opt(&o, c))
			continue;
		switch (c) {
		case 'd':
			digest_hex = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'F':
			fmt_s = optarg;
			break;
		case 'o':
			outp = optarg;
			break;
		case 'H':
			hash = optarg;
			break;
		case 'h':
			fputs(sign_help, stdout);
			return EXIT_OK;
		default:
			return usage_error("sign", "bad option");
		}
	}
	if (optind != argc)
		return usage_error("sign", "unexpected argument");
	if (o.uri == NULL)
		return usage_error("sign", "-u is required");
	if ((digest_hex == NULL) == (file == NULL))
		return usage_error("sign", "give exactly one of -d and -f");
	if (!strcmp(fmt_s, "der"))
		fmt = FMT_DER;
	else if (!strcmp(fmt_s, "raw-hex"))
		fmt = FMT_RAW_HEX;
	else if (!strcmp(fmt_s, "hex"))
		fmt = FMT_HEX;
	else if (!strcmp(fmt_s, "base64"))
		fmt = FMT_BASE64;
	else
		return usage_error("sign", "--format must be der, raw-hex, hex or base64");
	if (hash != NULL && (hmd = hash_md(hash)) == NULL)
		return usage_error("sign", "--hash must be sha256, sha384 or sha512");
	md_len = (size_t)EVP_MD_get_size(hmd);
	if (digest_hex != NULL) {
		size_t dummy, n = 0;
		if (hex_decode(digest_hex, md, sizeof(md), &n) != 0 ||
		    hsm_digestinfo_prefix(n, &dummy) == NULL)
			return usage_error("sign",
			                   "-d must be 64, 96 or 128 hex digits (a SHA-256, "
			                   "SHA-384 or SHA-512 digest)");
		if (hash != NULL && n != md_len)
			return usage_error("sign", "-d is not a digest of --hash");
		md_len = n;
	}

	if ((ret = open_token(&o, &t)) != EXIT_OK)
		goto out;
	if ((r = hsm_key_find(t, o.uri, &k)) != 0) {
		ret = fail("find key", r);
		goto out;
	}
	if (file != NULL && (r = read_input(file, &data, &data_len)) != 0) {
		ret = fail("read input", r);
		goto out;
	}
	if (hsm_key_type(k) == HSM_KEY_ED25519) {
		if (file == NULL || hash != NULL) {
			r = qs_fail(QS_ERR_INVALID,
			            "ed25519 signs the message itself: use -f, without --hash");
			ret = fail("sign", r);
			goto out;
		}
		in = data;
		in_len = data_len;
	} else {
		if (file != NULL && EVP_Digest(data, data_len, md, NULL, hmd, NULL) != 1) {
			ret = fail("hash",
			           qs_fail(QS_ERR_CRYPTO, "%s of the file", EVP_MD_get0_name(hmd)));
			goto out;
		}
		in = md;
		in_len = md_len;
	}
	if ((r = hsm_sign(t, k, in, in_len, sig, &sig_len)) != 0) {
		ret = fail("sign", r);
		goto out;
	}
	body = sig;
	body_len = sig_len;
	if (hsm_keytype_is_ecdsa(hsm_key_type(k)) && fmt != FMT_RAW_HEX) {
		if ((r = hsm_ecdsa_raw_to_der(sig, sig_len, der, &body_len)) != 0) {
			ret = fail("DER signature", r);
			goto out;
		}
		body = der;
	}
	switch (fmt) {
	case FMT_DER:
		ret = write_out(outp, body, body_len);
		break;
	case FMT_RAW_HEX:
	case FMT_HEX:
		if ((enc = malloc(2 * body_len + 2)) == NULL) {
			ret = fail("encode", qs_fail(QS_ERR_NOMEM, "hex buffer"));
			goto out;
		}
		for (size_t i = 0; i < body_len; i++)
			snprintf((char *)enc + 2 * i, 3, "%02x", body[i]);
		enc[2 * body_len] = '\n';
		ret = write_out(outp, enc, 2 * body_len + 1);
		break;
	case FMT_BASE64:
		if ((enc = malloc(4 * ((body_len + 2) / 3) + 2)) == NULL) {
			ret = fail("encode", qs_fail(QS_ERR_NOMEM, "base64 buffer"));
			goto out;
		}
		enc_len = (size_t)EVP_EncodeBlock(enc, body, (int)body_len);
		enc[enc_len++] = '\n';
		ret = write_out(outp, enc, enc_len);
		break;
	}
out:
	free(enc);
	free(data);
	hsm_key_free(k);
	hsm_close(t);
	return ret;
}

/* ---- main ------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} subcommands[] = {
        {"init", init_main, "initialise a fresh (SoftHSM) token"},
        {"keygen", keygen_main, "generate a key pair in the token"},
        {"list", list_main, "list the token's private keys"},
        {"pubkey", pubkey_main, "export a public key (PEM or DER)"},
        {"sign", sign_main, "sign a digest or a file"},
};

static void
show_usage(FILE *f)
{
	fprintf(f, "Usage: %s COMMAND [OPTIONS]   (%s COMMAND --help for details)\n\n", PROG, PROG);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].summary);
	fprintf(f,
	        "\nPINs come from files (-P file:PATH) or the environment (-P env:NAME),\n"
	        "never from the command line.\n\n"
	        "Example:\n"
	        "  %s list -u 'pkcs11:token=qsign-dev' -P file:$HOME/.qsign/user.pin\n",
	        PROG);
}

/* The tool holds PINs: no core dumps, no ptrace by other users. */
static void
harden(void)
{
	struct rlimit rl = {0, 0};

	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int
main(int argc, char **argv)
{
	harden();
	if (argc < 2) {
		show_usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		show_usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
		if (strcmp(argv[1], subcommands[i].name) == 0) {
			/* getopt_long sees the subcommand as argv[0] */
			return subcommands[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "%s: unknown command '%s'\n", PROG, argv[1]);
	show_usage(stderr);
	return EXIT_USAGE;
}
