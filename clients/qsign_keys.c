/*
 * qsign_keys.c - `qsign keys [NAME]` and `qsign verify`: the role keys the
 * daemon publishes, and checking a signature against one of them here,
 * with OpenSSL, so that a verifier needs neither a script nor `openssl`
 * incantations. The key comes over a connection whose server key is pinned
 * (known_servers or --server-key), so it is the pinned daemon's word.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "hsm.h"
#include "qsclient.h"
#include "qsign_cli.h"
#include "statement.h"

/* A signature file is at most this large in any of its encodings. */
#define MAX_SIG_FILE 4096

/* ------------------------------------------------------------ keys */

void
keys_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] keys [NAME] [--pem] [--json]\n"
	        "  The keys named in the policy: name, algorithm, key id (SHA-256 of the\n"
	        "  public key's DER), token, public key, and whether the policy attaches a\n"
	        "  certificate. With NAME only that key; --pem prints only its public key\n"
	        "  (PEM), for other verifiers.\n"
	        "  --json      {\"keys\": [{name, algorithm, key_id, token, public_pem,\n"
	        "              certificate_pem (when the policy attaches one)}]}\n"
	        "example: %s -p ci keys ci-key --pem > ci-key.pem\n",
	        progname, progname);
}

static json_t *
key_json(const Qsign__V1__KeyInfo *k)
{
	json_t *o =
	        json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", k->name, "algorithm", k->algorithm,
	                  "key_id", k->key_id, "token", k->token, "public_pem", k->public_pem);
	if (o != NULL && k->certificate_pem[0] != '\0')
		json_object_set_new(o, "certificate_pem", json_string(k->certificate_pem));
	return o;
}

static void
put_pem(const char *pem)
{
	put_safe(stdout, pem, 1);
	if (pem[0] != '\0' && pem[strlen(pem) - 1] != '\n')
		fputc('\n', stdout);
}

static void
put_key(const Qsign__V1__KeyInfo *k)
{
	put_safe(stdout, k->name, 0);
	fputs("\n  algorithm: ", stdout);
	put_safe(stdout, k->algorithm, 0);
	fputs("\n  key id:    ", stdout);
	put_safe(stdout, k->key_id, 0);
	fputs("\n  token:     ", stdout);
	put_safe(stdout, k->token, 0);
	fputc('\n', stdout);
	put_pem(k->public_pem);
	if (k->certificate_pem[0] != '\0')
		fputs("  certificate: yes (--json shows it)\n", stdout);
}

/* "a, b, c": the names of the listed keys, on stderr. */
static void
put_key_names(const Qsign__V1__ListKeysResponse *keys)
{
	for (size_t i = 0; i < keys->n_keys; i++) {
		fputs(i > 0 ? ", " : "", stderr);
		put_safe(stderr, keys->keys[i]->name, 0);
	}
	if (keys->n_keys == 0)
		fputs("none", stderr);
}

static const Qsign__V1__KeyInfo *
find_key(const Qsign__V1__ListKeysResponse *keys, const char *name)
{
	for (size_t i = 0; i < keys->n_keys; i++)
		if (strcmp(keys->keys[i]->name, name) == 0)
			return keys->keys[i];
	return NULL;
}

/* The key called name, or NULL after listing the ones there are. */
static const Qsign__V1__KeyInfo *
need_key(const Qsign__V1__ListKeysResponse *keys, const char *name)
{
	const Qsign__V1__KeyInfo *k = find_key(keys, name);

	if (k == NULL) {
		errmsg("no key %s in the policy; the keys are:", name);
		fputs("  ", stderr);
		put_key_names(keys);
		fputc('\n', stderr);
	}
	return k;
}

/* Connect and list the policy's keys: EXIT_OK, or the exit code after
 * saying why (*c may then be set: the caller closes it). */
static int
connect_and_list(struct globals *g, qsc_client **c, Qsign__V1__ListKeysResponse **keys)
{
	int r;

	if ((r = connect_client(g, c)) != EXIT_OK)
		return r;
	if ((r = qsc_list_keys(*c, keys)) != 0)
		return report(g, *c, r);
	return EXIT_OK;
}

int
keys_main(int argc, char **argv, struct globals *g)
{
	enum { O_PEM = 256 };
	static const struct option opts[] = {
	        {"pem", no_argument, NULL, O_PEM},
	        {NULL, 0, NULL, 0},
	};
	Qsign__V1__ListKeysResponse *keys = NULL;
	const Qsign__V1__KeyInfo *k = NULL;
	const char *name = NULL;
	qsc_client *c = NULL;
	int r, pem = 0;

	{
		const struct opt_keep keep[] = {{O_PEM, NULL, &pem}, {0, NULL, NULL}};
		const struct opts o = {"", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, keys_usage, &o)) >= 0)
			return r;
	}
	if (argc - optind > 1 || (pem && argc - optind != 1)) {
		if (pem && argc == optind)
			errmsg("--pem needs the key's NAME");
		keys_usage(stderr);
		return EXIT_USAGE;
	}
	if (argc - optind == 1) {
		name = argv[optind];
		if (!qs_name_valid(name, QS_MAX_NAME)) {
			errmsg("invalid key name");
			return EXIT_USAGE;
		}
	}
	if ((r = connect_and_list(g, &c, &keys)) != EXIT_OK)
		goto out;
	if (name != NULL && (k = need_key(keys, name)) == NULL) {
		r = EXIT_FAILED;
		goto out;
	}
	r = EXIT_OK;
	if (pem) {
		put_pem(k->public_pem);
	} else if (g->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < keys->n_keys; i++)
			if (k == NULL || keys->keys[i] == k)
				json_array_append_new(a, key_json(keys->keys[i]));
		if (json_print(json_pack("{s:o}", "keys", a), JSON_INDENT(2)) != 0)
			r = EXIT_FAILED;
	} else {
		for (size_t i = 0, n = 0; i < keys->n_keys; i++) {
			if (k != NULL && keys->keys[i] != k)
				continue;
			if (n++ > 0)
				fputc('\n', stdout);
			put_key(keys->keys[i]);
		}
	}
out:
	qsc_free(keys);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ verify */

void
sigverify_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] verify (-r ROLE | -k KEY) (-f FILE | -d HEX) -s SIG\n"
	        "           [--json]\n"
	        "  Check a signature here, with OpenSSL, against the public key the daemon\n"
	        "  publishes for KEY (or for each key of ROLE). The daemon's own key is pinned\n"
	        "  (known_servers or --server-key), so the key is the pinned daemon's word.\n"
	        "  Prints \"Verified OK (key NAME, ALGORITHM, key id ...)\", exit 0; or\n"
	        "  \"Verification FAILURE\", exit 1.\n"
	        "  -f FILE  what was signed (a blob; - reads stdin)\n"
	        "  -d HEX   the SHA-256 digest that was signed (64 hex characters)\n"
	        "  -s SIG   the signature file: DER, hex or base64 (any format sign writes)\n"
	        "  --json   {\"verified\": b, \"key\": s, \"algorithm\": s, \"key_id\": hex,\n"
	        "            \"digest\": hex}\n"
	        "example: %s -p ci verify -r ci-sign -f fw.bin -s fw.sig\n",
	        progname, progname);
}

/* The signature in the file: hex or base64 text (whitespace around it
 * ignored), else the raw DER / Ed25519 bytes. 0 or -1 (after saying why). */
static int
read_sig(const char *path, uint8_t **out, size_t *out_len)
{
	uint8_t *buf = NULL, *dec = NULL;
	size_t len = 0, a = 0, b, n = 0;
	int hex = 1, b64 = 1;

	*out = NULL;
	*out_len = 0;
	if (read_input(path, MAX_SIG_FILE, &buf, &len) != 0)
		return -1;
	b = len;
	while (a < b && isspace(buf[a]))
		a++;
	while (b > a && isspace(buf[b - 1]))
		b--;
	for (size_t i = a; i < b; i++) {
		hex &= isxdigit(buf[i]) != 0;
		b64 &= isalnum(buf[i]) || buf[i] == '+' || buf[i] == '/' || buf[i] == '=';
	}
	if (b > a && (hex || b64) && (dec = malloc(b - a + 1)) != NULL) {
		char *text = strndup((const char *)buf + a, b - a);
		int ok = 0;
		if (text != NULL && hex && (b - a) % 2 == 0) {
			ok = qs_unhex(text, dec, b - a, &n) == 0;
		} else if (text != NULL && b64 && (b - a) % 4 == 0) {
			int m = EVP_DecodeBlock(dec, (const unsigned char *)text, (int)(b - a));
			/* EVP_DecodeBlock counts the padding as zero bytes. */
			if (m >= 0) {
				n = (size_t)m - (text[b - a - 1] == '=') - (text[b - a - 2] == '=');
				ok = 1;
			}
		}
		free(text);
		if (ok) {
			free(buf);
			*out = dec;
			*out_len = n;
			return 0;
		}
		free(dec);
	}
	if (len == 0) {
		errmsg("%s: empty signature file", path);
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* The names of the keys of role: from `info` (the roles the caller may
 * use), else from the policy in force. NULL-terminated, malloc'd strings;
 * NULL after saying why. */
static char **
role_keys(const struct globals *g, qsc_client *c, const char *role)
{
	Qsign__V1__InfoResponse *info = NULL;
	Qsign__V1__PolicyShowResponse *ps = NULL;
	json_t *pol = NULL, *ks = NULL, *x;
	char **v = NULL;
	size_t i;
	int r;

	if ((r = qsc_info(c, &info)) != 0) {
		report(g, c, r);
		return NULL;
	}
	for (i = 0; i < info->n_roles && ks == NULL; i++)
		if (strcmp(info->roles[i]->name, role) == 0)
			ks = json_strings(info->roles[i]->keys, info->roles[i]->n_keys);
	if (ks == NULL && qsc_policy_show(c, 0, &ps) == 0 &&
	    (pol = json_loads(ps->text, 0, NULL)) != NULL)
		ks = json_incref(json_object_get(
		        json_object_get(json_object_get(pol, "roles"), role), "keys"));
	if (!json_is_array(ks) || json_array_size(ks) == 0) {
		errmsg("no role %s with keys; your roles are:", role);
		fputs("  ", stderr);
		for (i = 0; i < info->n_roles; i++)
			fprintf(stderr, "%s%s", i > 0 ? ", " : "", info->roles[i]->name);
		fputs(info->n_roles == 0 ? "none\n" : "\n", stderr);
		goto out;
	}
	if ((v = calloc(json_array_size(ks) + 1, sizeof(*v))) == NULL) {
		errmsg("out of memory");
		goto out;
	}
	json_array_foreach(ks, i, x)
	{
		if ((v[i] = strdup(json_string_value(x) ? json_string_value(x) : "")) == NULL) {
			errmsg("out of memory");
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			v = NULL;
			goto out;
		}
	}
out:
	json_decref(ks);
	json_decref(pol);
	qsc_free(ps);
	qsc_free(info);
	return v;
}

/* 0 verified, QS_ERR_BADSIG not, another error when k is unusable. */
static int
verify_with(const Qsign__V1__KeyInfo *k, const uint8_t dg[32], const uint8_t *blob, size_t blen,
            const uint8_t *sig, size_t slen)
{
	BIO *bio = BIO_new_mem_buf(k->public_pem, -1);
	EVP_PKEY *pk = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	int r;

	BIO_free(bio);
	if (pk == NULL)
		return qs_fail(QS_ERR_CRYPTO, "key %s: the daemon's public key is unreadable",
		               k->name);
	r = qs_rolesig_verify(pk, hsm_keytype_is_pkcs1(hsm_keytype_parse(k->algorithm)), dg, blob,
	                      blen, sig, slen);
	EVP_PKEY_free(pk);
	return r;
}

int
sigverify_main(int argc, char **argv, struct globals *g)
{
	static const struct option opts[] = {
	        {"role", required_argument, NULL, 'r'},
	        {"key", required_argument, NULL, 'k'},
	        {"file", required_argument, NULL, 'f'},
	        {"digest", required_argument, NULL, 'd'},
	        {"signature", required_argument, NULL, 's'},
	        {NULL, 0, NULL, 0},
	};
	const char *role = NULL, *key = NULL, *file = NULL, *hex = NULL, *sigf = NULL;
	Qsign__V1__ListKeysResponse *keys = NULL;
	const Qsign__V1__KeyInfo *ok = NULL;
	uint8_t dg[32], *blob = NULL, *sig = NULL;
	size_t blen = 0, slen = 0;
	char **names = NULL, *dh = NULL;
	qsc_client *c = NULL;
	int r, bad = 0;

	{
		const struct opt_keep keep[] = {{'r', &role, NULL}, {'k', &key, NULL},
		                                {'f', &file, NULL}, {'d', &hex, NULL},
		                                {'s', &sigf, NULL}, {0, NULL, NULL}};
		const struct opts o = {"r:k:f:d:s:", opts, keep, NULL, NULL, 0, -1};
		if ((r = parse_opts(argc, argv, g, sigverify_usage, &o)) >= 0)
			return r;
	}
	if (optind != argc) {
		sigverify_usage(stderr);
		return EXIT_USAGE;
	}
	if (need_one("verify", "-r ROLE", role, "-k KEY", key) != 0 ||
	    need_one("verify", "-f FILE", file, "-d HEX", hex) != 0)
		return EXIT_USAGE;
	if (sigf == NULL) {
		errmsg("verify needs -s SIG, the signature file");
		return EXIT_USAGE;
	}
	if ((role != NULL && !qs_name_valid(role, QS_MAX_NAME)) ||
	    (key != NULL && !qs_name_valid(key, QS_MAX_NAME))) {
		errmsg("invalid role or key name");
		return EXIT_USAGE;
	}
	if (hex != NULL && parse_digest(hex, dg) != 0) {
		errmsg("-d needs a SHA-256 digest: exactly 64 hex characters");
		return EXIT_USAGE;
	}
	if (file != NULL) {
		if (read_input(file, QS_MAX_BLOB, &blob, &blen) != 0)
			return EXIT_USAGE;
		qs_sha256(blob, blen, dg);
	}
	if (read_sig(sigf, &sig, &slen) != 0) {
		r = EXIT_USAGE;
		goto out;
	}
	if ((r = connect_and_list(g, &c, &keys)) != EXIT_OK)
		goto out;
	r = EXIT_FAILED;
	if (key != NULL) {
		const Qsign__V1__KeyInfo *k = need_key(keys, key);
		if (k == NULL)
			goto out;
		if (verify_with(k, dg, blob, blen, sig, slen) == 0)
			ok = k;
		else
			bad = 1;
	} else {
		if ((names = role_keys(g, c, role)) == NULL)
			goto out;
		for (size_t i = 0; names[i] != NULL && ok == NULL; i++) {
			const Qsign__V1__KeyInfo *k = find_key(keys, names[i]);
			if (k != NULL && verify_with(k, dg, blob, blen, sig, slen) == 0)
				ok = k;
			else
				bad = 1;
		}
	}
	dh = hex_or_die(dg, 32);
	if (g->json) {
		json_t *j = json_pack("{s:b, s:s}", "verified", ok != NULL, "digest", dh);
		if (ok != NULL) {
			json_object_set_new(j, "key", json_string(ok->name));
			json_object_set_new(j, "algorithm", json_text(ok->algorithm));
			json_object_set_new(j, "key_id", json_text(ok->key_id));
		}
		if (json_print(j, JSON_INDENT(2)) != 0)
			ok = NULL;
	} else if (ok != NULL) {
		fputs("Verified OK (key ", stdout);
		put_safe(stdout, ok->name, 0);
		fputs(", ", stdout);
		put_safe(stdout, ok->algorithm, 0);
		fputs(", key id ", stdout);
		put_safe(stdout, ok->key_id, 0);
		fputs(")\n", stdout);
	} else {
		printf("Verification FAILURE\n");
	}
	if (ok == NULL && bad)
		errmsg("the signature in %s does not verify over %s with %s %s", sigf,
		       file != NULL ? file : "the digest", key != NULL ? "key" : "the keys of role",
		       key != NULL ? key : role);
	r = ok != NULL ? EXIT_OK : EXIT_FAILED;
out:
	for (size_t i = 0; names != NULL && names[i] != NULL; i++)
		free(names[i]);
	free(names);
	free(dh);
	free(sig);
	free(blob);
	qsc_free(keys);
	qsc_close(c);
	return r;
}
