/*
 * qsign ca ... - the factory PKI (proto/pki.proto, proto/pki_payload.h).
 *
 * Quorum operations (create, issue-tls, rotate-tls, add-device-ca,
 * disable/enable/revoke-device-ca, revoke-device) submit a request to the
 * role the policy's pki section names for them and print its id; approvers
 * see it decoded with `qsign request show`, and `qsign ca fetch ID` writes
 * the resulting certificate or CRL. issue-device, show, get and crl answer
 * at once.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "payload.h"
#include "pki_payload.h"
#include "qsign_cli.h"
#include "statement.h"

struct ca_opts {
	const char *csr, *out, *chain, *ca, *reason, *message, *online, *local, *role, *root;
	long days;
	int est, history, pretty;
};

/* Serials as openssl prints them (upper-case hex) are accepted: the daemon
 * speaks lower-case. */
static void
lower_serial(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'F')
			*s = (char)(*s - 'A' + 'a');
}

enum { O_EST = 256, O_HIST, O_PRETTY, O_ONLINE, O_LOCAL, O_CHAIN, O_DAYS, O_REASON, O_ROOT };

static const struct option ca_options[] = {
        {"csr", required_argument, NULL, 'c'},
        {"out", required_argument, NULL, 'o'},
        {"ca", required_argument, NULL, 'a'},
        {"role", required_argument, NULL, 'r'},
        {"message", required_argument, NULL, 'm'},
        {"chain", required_argument, NULL, O_CHAIN},
        {"reason", required_argument, NULL, O_REASON},
        {"root", required_argument, NULL, O_ROOT},
        {"online", required_argument, NULL, O_ONLINE},
        {"local", required_argument, NULL, O_LOCAL},
        {"validity-days", required_argument, NULL, O_DAYS},
        {"est", no_argument, NULL, O_EST},
        {"history", no_argument, NULL, O_HIST},
        {"pretty", no_argument, NULL, O_PRETTY},
        WAIT_OPTION,
        {NULL, 0, NULL, 0},
};

/* One option of the ca subcommands into struct ca_opts. */
static int
ca_opt(void *ctx, int ch, char *arg)
{
	struct ca_opts *o = ctx;
	char *end;

	switch (ch) {
	case 'c':
		o->csr = arg;
		break;
	case 'o':
		o->out = arg;
		break;
	case 'a':
		o->ca = arg;
		break;
	case 'r':
		o->role = arg;
		break;
	case 'm':
		o->message = arg;
		break;
	case O_CHAIN:
		o->chain = arg;
		break;
	case O_REASON:
		o->reason = arg;
		break;
	case O_ROOT:
		o->root = arg;
		break;
	case O_ONLINE:
		o->online = arg;
		break;
	case O_LOCAL:
		o->local = arg;
		break;
	case O_EST:
		o->est = 1;
		break;
	case O_HIST:
		o->history = 1;
		break;
	case O_PRETTY:
		o->pretty = 1;
		break;
	case O_DAYS:
		o->days = strtol(arg, &end, 10);
		if (*arg == '\0' || *end != '\0' || o->days < 1 ||
		    o->days > PKI_MAX_VALIDITY_DAYS) {
			errmsg("--validity-days: 1..%d", PKI_MAX_VALIDITY_DAYS);
			return EXIT_USAGE;
		}
		break;
	}
	return 0;
}

/* The options of a ca subcommand with nargs operands; -1 to go on. */
static int
ca_parse(int argc, char **argv, struct globals *g, void (*usage)(FILE *), int nargs,
         struct ca_opts *o)
{
	memset(o, 0, sizeof(*o));
	return parse_opts(
	        argc, argv, g, usage,
	        &(const struct opts){"c:o:a:r:m:", ca_options, NULL, ca_opt, o, nargs, nargs});
}

/* The policy's pki section: role for `which` ("root", "tls", "device_ca")
 * and its validity default. */
static int
pki_defaults(qsc_client *c, const char *which, char *role, size_t cap, long *days, char *factory,
             size_t fcap)
{
	Qsign__V1__PolicyShowResponse *ps = NULL;
	json_t *j = NULL, *pki;
	json_error_t e;
	int r;

	if ((r = qsc_policy_show(c, 0, &ps)) != 0)
		return r;
	if ((j = json_loads(ps->text, 0, &e)) == NULL ||
	    (pki = json_object_get(j, "pki")) == NULL) {
		r = qs_fail(QS_ERR_PRECONDITION, "the policy in force has no pki section");
		goto out;
	}
	snprintf(role, cap, "%s",
	         json_string_value(json_object_get(json_object_get(pki, "roles"), which))
	                 ? json_string_value(json_object_get(json_object_get(pki, "roles"), which))
	                 : "pki");
	if (*days == 0) {
		json_t *d = json_object_get(json_object_get(pki, "validity_days"), which);
		*days = d                            ? (long)json_integer_value(d)
		        : strcmp(which, "root") == 0 ? 7300
		        : strcmp(which, "tls") == 0  ? 825
		                                     : 3650;
	}
	if (factory != NULL)
		snprintf(factory, fcap, "%s",
		         json_string_value(json_object_get(pki, "factory"))
		                 ? json_string_value(json_object_get(pki, "factory"))
		                 : "");
	r = 0;
out:
	json_decref(j);
	qsc_free(ps);
	return r;
}

/* Submit the payload j (consumed) of kind to the pki role for `which`. */
static int
ca_submit(struct globals *g, const struct ca_opts *o, const char *which, const char *kind,
          json_t *j, int need_factory)
{
	Qsign__V1__RequestView *v = NULL;
	const struct qs_payload_kind *pk = qs_payload_kind(kind);
	qsc_client *c = NULL;
	char role[QS_MAX_NAME + 1], factory[PKI_MAX_ATTR + 1], *payload = NULL, *tok = NULL;
	uint8_t rnd[16];
	long days = o->days;
	int r;

	if ((r = connect_client(g, &c)) != EXIT_OK) {
		json_decref(j);
		return r;
	}
	if ((r = pki_defaults(c, which, role, sizeof(role), &days, factory, sizeof(factory))) !=
	    0) {
		r = report(g, c, r);
		goto out;
	}
	if (o->role != NULL)
		snprintf(role, sizeof(role), "%s", o->role);
	if (strcmp(which, "device_ca") != 0 || json_object_get(j, "mode") != NULL)
		json_object_set_new(j, "validity_days", json_integer(days));
	if (need_factory)
		json_object_set_new(j, "factory", json_string(factory));
	if ((payload = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		errmsg("out of memory");
		r = EXIT_FAILED;
		goto out;
	}
	if (pk == NULL || pk->validate((const uint8_t *)payload, strlen(payload)) != 0) {
		errmsg("%s refused locally: %s", kind, qs_errdetail());
		r = EXIT_USAGE;
		goto out;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1 || (tok = qs_hex(rnd, sizeof(rnd))) == NULL) {
		errmsg("cannot make a client token");
		r = EXIT_FAILED;
		goto out;
	}
	if ((r = qsc_request_submit(c, role, kind, (const uint8_t *)payload, strlen(payload),
	                            o->message ? o->message : "", tok, &v)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	r = submitted(g, c, v);
out:
	json_decref(j);
	free(payload);
	free(tok);
	qsc_free(v);
	qsc_close(c);
	return r;
}

static int
read_csr(const char *path, char **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;

	*out = NULL;
	if (path == NULL) {
		errmsg("--csr FILE is required");
		return EXIT_USAGE;
	}
	if (read_input(path, PKI_MAX_CSR, &buf, &len) != 0)
		return EXIT_USAGE;
	if ((*out = strndup((const char *)buf, len)) == NULL || strlen(*out) != len) {
		errmsg("%s: not a PEM CSR", path);
		free(buf);
		free(*out);
		*out = NULL;
		return EXIT_USAGE;
	}
	free(buf);
	return EXIT_OK;
}

static int
write_text(const char *path, const char *text)
{
	FILE *f;

	if (path == NULL || strcmp(path, "-") == 0) {
		fputs(text, stdout);
		return 0;
	}
	if ((f = fopen(path, "w")) == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		errmsg("%s: cannot write", path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ quorum ops */

static void
create_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca create [--validity-days N] [-m MSG]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  Submit the creation of the factory root CA (P-256 key generated in the\n"
	        "  token, CN=Factory-CA, OU=<factory>). Done once: a second create is\n"
	        "  refused. Prints the request id.\n"
	        "example: %s -p admin1 ca create -m \"factory PKI\"\n",
	        progname, progname);
}

static int
create_main(int argc, char **argv, struct globals *g)
{
	struct ca_opts o;
	int r;

	if ((r = ca_parse(argc, argv, g, create_usage, 0, &o)) >= 0)
		return r;
	return ca_submit(g, &o, "root", PKI_KIND_CA_CREATE, json_object(), 1);
}

static void
tls_usage_common(FILE *f, const char *cmd)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca %s --csr FILE [--est] [--validity-days N]\n"
	        "           [-m MSG] [--wait[=SECONDS]] [--json]\n"
	        "  Submit a server TLS certificate (--est: the EST server's) for the PEM CSR:\n"
	        "  its subject and DNS names, serverAuth, signed by the root CA.\n"
	        "example: %s -p admin1 ca %s --csr gateway.csr\n",
	        progname, cmd, progname, cmd);
}

static void
issue_tls_usage(FILE *f)
{
	tls_usage_common(f, "issue-tls");
}

static void
rotate_tls_usage(FILE *f)
{
	tls_usage_common(f, "rotate-tls");
}

static int
tls_common(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const char *action)
{
	struct ca_opts o;
	char *csr = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, usage, 0, &o)) >= 0)
		return r;
	if ((r = read_csr(o.csr, &csr)) != EXIT_OK)
		return r;
	r = ca_submit(g, &o, "tls", PKI_KIND_TLS,
	              json_pack("{s:s, s:s, s:s}", "name", o.est ? "est" : "tls", "action", action,
	                        "csr", csr),
	              0);
	free(csr);
	return r;
}

static int
issue_tls_main(int argc, char **argv, struct globals *g)
{
	return tls_common(argc, argv, g, issue_tls_usage, "issue");
}

static int
rotate_tls_main(int argc, char **argv, struct globals *g)
{
	return tls_common(argc, argv, g, rotate_tls_usage, "rotate");
}

static void
add_dca_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca add-device-ca (--online NAME |\n"
	        "           --local NAME --csr FILE) [--validity-days N] [-m MSG]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  Submit a device CA signed by the root (CA:TRUE, pathlen:0). --online: its\n"
	        "  key is generated in the token and it issues device certificates online;\n"
	        "  --local: the key stays at the factory site (CSR with OU=<factory>).\n"
	        "example: %s -p admin1 ca add-device-ca --online online-ca-1\n",
	        progname, progname);
}

static int
add_dca_main(int argc, char **argv, struct globals *g)
{
	struct ca_opts o;
	char *csr = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, add_dca_usage, 0, &o)) >= 0)
		return r;
	if ((o.online == NULL) == (o.local == NULL) || (o.online != NULL && o.csr != NULL)) {
		add_dca_usage(stderr);
		return EXIT_USAGE;
	}
	if (o.online != NULL)
		return ca_submit(g, &o, "device_ca", PKI_KIND_DEVICE_CA,
		                 json_pack("{s:s, s:s}", "mode", "online", "name", o.online), 0);
	if ((r = read_csr(o.csr, &csr)) != EXIT_OK)
		return r;
	r = ca_submit(g, &o, "device_ca", PKI_KIND_DEVICE_CA,
	              json_pack("{s:s, s:s, s:s}", "mode", "local", "name", o.local, "csr", csr),
	              0);
	free(csr);
	return r;
}

static void
state_usage(FILE *f, const char *cmd, const char *what)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca %s SERIAL%s [-m MSG]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  %s\n"
	        "example: %s -p admin1 ca %s 4f1c2a9d7e3b5c6a8d0e1f2a3b4c5de2\n",
	        progname, cmd, strcmp(cmd, "revoke-device-ca") == 0 ? " [--reason REASON]" : "",
	        what, progname, cmd);
}

static void
disable_usage(FILE *f)
{
	state_usage(f, "disable-device-ca",
	            "Submit: the device CA issues no new device certificates; devices it\n"
	            "  issued keep connecting. Reversible with enable-device-ca.");
}

static void
enable_usage(FILE *f)
{
	state_usage(f, "enable-device-ca", "Submit: a disabled device CA issues again.");
}

static void
revoke_usage(FILE *f)
{
	state_usage(f, "revoke-device-ca",
	            "Submit: revoke the device CA (root CRL entry): devices it issued are\n"
	            "  refused by every server checking CRLs. Cannot be undone.");
}

static int
state_common(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const char *action)
{
	struct ca_opts o;
	json_t *j;
	int r;

	if ((r = ca_parse(argc, argv, g, usage, 1, &o)) >= 0)
		return r;
	lower_serial(argv[optind]);
	j = json_pack("{s:s, s:s}", "serial", argv[optind], "action", action);
	if (o.reason != NULL)
		json_object_set_new(j, "reason", json_string(o.reason));
	return ca_submit(g, &o, "device_ca", PKI_KIND_CA_STATE, j, 0);
}

static int
disable_main(int argc, char **argv, struct globals *g)
{
	return state_common(argc, argv, g, disable_usage, "disable");
}

static int
enable_main(int argc, char **argv, struct globals *g)
{
	return state_common(argc, argv, g, enable_usage, "enable");
}

static int
revoke_main(int argc, char **argv, struct globals *g)
{
	return state_common(argc, argv, g, revoke_usage, "revoke");
}

static void
revoke_dev_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca revoke-device CA_SERIAL SERIAL [--reason R] [-m "
	        "MSG]\n"
	        "           [--wait[=SECONDS]] [--json]\n"
	        "  Submit the revocation of one device certificate of an online device CA\n"
	        "  (listed in that CA's CRL).\n"
	        "example: %s -p admin1 ca revoke-device 5a0e3c7d9b1f2e4a6c8d0b2f4e6a8c01 "
	        "7b3d5f7a9c1e3b5d7f9a1c3e5b7d9f9c --reason "
	        "keyCompromise\n",
	        progname, progname);
}

static int
revoke_dev_main(int argc, char **argv, struct globals *g)
{
	struct ca_opts o;
	json_t *j;
	int r;

	if ((r = ca_parse(argc, argv, g, revoke_dev_usage, 2, &o)) >= 0)
		return r;
	lower_serial(argv[optind]);
	lower_serial(argv[optind + 1]);
	j = json_pack("{s:s, s:s}", "ca_serial", argv[optind], "serial", argv[optind + 1]);
	if (o.reason != NULL)
		json_object_set_new(j, "reason", json_string(o.reason));
	return ca_submit(g, &o, "device_ca", PKI_KIND_DEVICE_REVOKE, j, 0);
}

/* ------------------------------------------------------------ online */

static void
issue_dev_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca issue-device --csr FILE [--ca SERIAL]\n"
	        "           [-o CERT] [--chain CA_CERT] [--json]\n"
	        "  Issue a device certificate now (registration principals): the CSR must\n"
	        "  be CN=<device UUID>, OU=<factory>. Written to CERT (default stdout);\n"
	        "  --chain writes the device CA certificate.\n"
	        "example: %s -p registrar ca issue-device --csr dev.csr -o dev.pem\n",
	        progname, progname);
}

static int
issue_dev_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__PkiIssueDeviceResponse *resp = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	char *csr = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, issue_dev_usage, 0, &o)) >= 0)
		return r;
	if ((r = read_csr(o.csr, &csr)) != EXIT_OK)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		goto out;
	if ((r = qsc_pki_issue_device(c, (const uint8_t *)csr, strlen(csr), o.ca, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	r = EXIT_OK;
	if (write_text(o.out, resp->certificate_pem) != 0 ||
	    (o.chain != NULL && write_text(o.chain, resp->ca_pem) != 0))
		r = EXIT_FAILED;
	if (g->json && r == EXIT_OK)
		r = json_print(json_pack("{s:o, s:o}", "serial", json_text(resp->serial),
		                         "ca_serial", json_text(resp->ca_serial)),
		               JSON_COMPACT)
		            ? EXIT_FAILED
		            : EXIT_OK;
	else if (o.out != NULL)
		fprintf(stderr, "%s: device certificate serial %s (device CA %s)\n", progname,
		        resp->serial, resp->ca_serial);
out:
	free(csr);
	qsc_free(resp);
	qsc_close(c);
	return r;
}

static void
show_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca show [--pretty] [--history] [--json]\n"
	        "  Root, TLS, EST and device CAs: name, kind, state, serial, validity\n"
	        "  (--history: earlier TLS / EST certificates too; --pretty: with subjects\n"
	        "  and SHA-256).\n"
	        "example: %s -p admin1 ca show --pretty\n",
	        progname, progname);
}

static int
show_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__PkiShowResponse *resp = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, show_usage, 0, &o)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_pki_show(c, o.history, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (g->json) {
		json_t *a = json_array();
		for (size_t i = 0; i < resp->n_certificates; i++) {
			const Qsign__V1__PkiCert *e = resp->certificates[i];
			json_array_append_new(
			        a, json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:o, s:o}",
			                     "name", json_text(e->name), "kind", json_text(e->kind),
			                     "serial", json_text(e->serial), "subject",
			                     json_text(e->subject), "state", json_text(e->state),
			                     "not_before", (json_int_t)e->not_before, "not_after",
			                     (json_int_t)e->not_after, "issuer_serial",
			                     json_text(e->issuer_serial), "sha256",
			                     json_text(e->sha256), "certificate_pem",
			                     json_text(e->certificate_pem)));
		}
		r = json_print(json_pack("{s:o, s:o}", "factory", json_text(resp->factory),
		                         "certificates", a),
		               JSON_INDENT(2))
		            ? EXIT_FAILED
		            : EXIT_OK;
		goto out;
	}
	printf("factory ");
	put_safe(stdout, resp->factory, 0);
	printf("\n");
	for (size_t i = 0; i < resp->n_certificates; i++) {
		const Qsign__V1__PkiCert *e = resp->certificates[i];
		char nb[32], na[32];
		iso_time(e->not_before, nb);
		iso_time(e->not_after, na);
		printf("%-16s ", e->name);
		put_safe(stdout, e->kind, 0);
		printf(" %s %s %s..%s\n", e->state, e->serial, nb, na);
		if (o.pretty) {
			printf("  subject ");
			put_safe(stdout, e->subject, 0);
			printf("\n  sha256  %s\n  issuer  %s\n", e->sha256,
			       e->issuer_serial[0] ? e->issuer_serial : "(self-signed)");
		}
	}
	r = EXIT_OK;
out:
	qsc_free(resp);
	qsc_close(c);
	return r;
}

static void
get_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca get NAME|SERIAL [-o FILE]\n"
	        "  The PEM certificate of the root, tls, est or a device CA.\n"
	        "example: %s -p admin1 ca get root -o factory_ca.pem\n",
	        progname, progname);
}

static int
get_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__PkiShowResponse *resp = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	const char *want;
	int r;

	if ((r = ca_parse(argc, argv, g, get_usage, 1, &o)) >= 0)
		return r;
	lower_serial(argv[optind]);
	want = argv[optind];
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_pki_show(c, 0, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	r = EXIT_FAILED;
	for (size_t i = 0; i < resp->n_certificates; i++) {
		const Qsign__V1__PkiCert *e = resp->certificates[i];
		if (strcmp(e->name, want) == 0 || strcmp(e->serial, want) == 0) {
			r = write_text(o.out, e->certificate_pem) ? EXIT_FAILED : EXIT_OK;
			goto out;
		}
	}
	errmsg("no certificate named %s", want);
out:
	qsc_free(resp);
	qsc_close(c);
	return r;
}

#define CALIST_FILE "enabled-device-cas.json"
#define CALIST_TYPE "qsign.enabled-device-cas.v1"

/* The list's signature checks out against the root certificate in
 * root_path, the way the documented openssl commands check it. */
static int
calist_verify(const char *root_path, const Qsign__V1__PkiCaList *l)
{
	EVP_MD_CTX *md = NULL;
	X509 *root = NULL;
	FILE *f;
	int ok = 0;

	if ((f = fopen(root_path, "r")) == NULL) {
		errmsg("%s: cannot read", root_path);
		return EXIT_USAGE;
	}
	root = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (root == NULL) {
		errmsg("%s: not a PEM certificate", root_path);
		return EXIT_USAGE;
	}
	ok = (md = EVP_MD_CTX_new()) != NULL &&
	     EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(root)) == 1 &&
	     EVP_DigestVerify(md, l->signature.data, l->signature.len,
	                      (const unsigned char *)l->document, strlen(l->document)) == 1;
	EVP_MD_CTX_free(md);
	X509_free(root);
	if (!ok) {
		errmsg("the list of enabled device CAs does not verify with the root CA in %s: "
		       "nothing written",
		       root_path);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

/* DIR/enabled-device-cas.json and its .sig (DER); checked against root_path
 * first if given. */
static int
write_calist(const char *dir, const Qsign__V1__PkiCaList *l, const char *root_path)
{
	char path[4096];
	int r;

	if (l == NULL || l->document == NULL || l->document[0] != '{' ||
	    strstr(l->document, "\"type\":\"" CALIST_TYPE "\"") == NULL || l->signature.len == 0) {
		errmsg("the daemon sent no list of enabled device CAs");
		return EXIT_FAILED;
	}
	if (root_path != NULL && (r = calist_verify(root_path, l)) != EXIT_OK)
		return r;
	if (snprintf(path, sizeof(path), "%s/%s", dir, CALIST_FILE) >= (int)sizeof(path)) {
		errmsg("%s: path too long", dir);
		return EXIT_USAGE;
	}
	if (write_text(path, l->document) != 0)
		return EXIT_FAILED;
	strcat(path, ".sig");
	if (write_sig(path, FMT_DER, l->signature.data, l->signature.len) != 0)
		return EXIT_FAILED;
	return EXIT_OK;
}

static void
crl_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca crl [-o DIR] [--json]\n"
	        "  The current CRLs in PEM: the root's and one per online device CA.\n"
	        "  -o DIR writes DIR/<name>.crl.pem each, and beside them the signed list\n"
	        "  of device CAs enabled for new registrations (see ca enabled-cas).\n"
	        "  Local device CAs sign their own CRLs at their site with their key\n"
	        "  (openssl ca -gencrl).\n"
	        "example: %s -p admin1 ca crl > crls.pem\n",
	        progname, progname);
}

static int
crl_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__PkiCrlResponse *resp = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, crl_usage, 0, &o)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_pki_crl(c, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	r = EXIT_OK;
	for (size_t i = 0; i < resp->n_crls && r == EXIT_OK; i++) {
		const Qsign__V1__PkiCrl *e = resp->crls[i];
		char path[4096];
		if (o.out == NULL) {
			r = write_text(NULL, e->crl_pem) ? EXIT_FAILED : EXIT_OK;
			continue;
		}
		if (!qs_name_valid(e->issuer_name, PKI_MAX_ATTR) ||
		    snprintf(path, sizeof(path), "%s/%s.crl.pem", o.out, e->issuer_name) >=
		            (int)sizeof(path)) {
			errmsg("unusable CRL issuer name");
			r = EXIT_FAILED;
			continue;
		}
		r = write_text(path, e->crl_pem) ? EXIT_FAILED : EXIT_OK;
	}
	/* A daemon from before the list answers without it: the CRLs stand. */
	if (r == EXIT_OK && o.out != NULL && resp->enabled_device_cas != NULL)
		r = write_calist(o.out, resp->enabled_device_cas, NULL);
	else if (r == EXIT_OK && o.out != NULL)
		errmsg("note: the daemon publishes no list of enabled device CAs");
out:
	qsc_free(resp);
	qsc_close(c);
	return r;
}

static void
enabled_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca enabled-cas -o DIR [--root ROOT_PEM] [--json]\n"
	        "  The signed list of the device CAs enabled for new registrations, for\n"
	        "  whoever registers devices: a disabled or revoked device CA (local or\n"
	        "  online) is absent, while its devices' certificates still verify\n"
	        "  against the CRLs until it is revoked. Writes\n"
	        "    DIR/" CALIST_FILE "      one line of canonical JSON: type,\n"
	        "        factory, root_serial, version, issued_at, expires and device_cas\n"
	        "        [{serial, name, kind, subject, sha256, not_after}]\n"
	        "    DIR/" CALIST_FILE ".sig  the root CA's ECDSA signature (DER)\n"
	        "  --root checks the signature against that root certificate before\n"
	        "  writing. A registrar checks it with openssl alone:\n"
	        "    openssl x509 -in root.pem -noout -pubkey > root.pub\n"
	        "    openssl dgst -sha256 -verify root.pub \\\n"
	        "      -signature " CALIST_FILE ".sig " CALIST_FILE "\n"
	        "  (\"Verified OK\"), then refuses a list whose version is lower than the\n"
	        "  last it accepted or whose expires (unix seconds) has passed, and\n"
	        "  registers a device only if its CA's serial is in device_cas.\n"
	        "example: %s -p registrar ca enabled-cas -o /srv/pki --root root.pem\n",
	        progname, progname);
}

static int
enabled_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__PkiCrlResponse *resp = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, enabled_usage, 0, &o)) >= 0)
		return r;
	if (o.out == NULL) {
		errmsg("-o DIR is required (the list and its signature are two files)");
		enabled_usage(stderr);
		return EXIT_USAGE;
	}
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_pki_crl(c, &resp)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if ((r = write_calist(o.out, resp->enabled_device_cas, o.root)) != EXIT_OK)
		goto out;
	if (g->json)
		r = json_print(json_pack("{s:I, s:I, s:s}", "version",
		                         (json_int_t)resp->enabled_device_cas->version, "expires",
		                         (json_int_t)resp->enabled_device_cas->expires, "file",
		                         CALIST_FILE),
		               JSON_COMPACT)
		            ? EXIT_FAILED
		            : EXIT_OK;
	else
		fprintf(stderr, "%s: %s/%s version %llu%s\n", progname, o.out, CALIST_FILE,
		        (unsigned long long)resp->enabled_device_cas->version,
		        o.root ? " (signature checked)" : "");
out:
	qsc_free(resp);
	qsc_close(c);
	return r;
}

static void
fetch_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s [GLOBAL OPTIONS] ca fetch ID [-o FILE]\n"
	        "  The certificate (or CRL) a signed PKI request produced, in PEM.\n"
	        "example: %s -p admin1 ca fetch 3f2a9c0d5e7b41a8c4d9e0f1a2b3c4d5 -o "
	        "factory_ca.pem\n",
	        progname, progname);
}

static int
fetch_main(int argc, char **argv, struct globals *g)
{
	Qsign__V1__FetchResponse *fr = NULL;
	struct ca_opts o;
	qsc_client *c = NULL;
	char *text = NULL;
	int r;

	if ((r = ca_parse(argc, argv, g, fetch_usage, 1, &o)) >= 0)
		return r;
	if ((r = connect_client(g, &c)) != EXIT_OK)
		return r;
	if ((r = qsc_request_fetch(c, argv[optind], &fr)) != 0) {
		r = report(g, c, r);
		goto out;
	}
	if (strncmp(fr->request->kind, "pki.", 4) != 0 || fr->result.len == 0 ||
	    (text = strndup((const char *)fr->result.data, fr->result.len)) == NULL ||
	    strlen(text) != fr->result.len || strncmp(text, "-----BEGIN ", 11) != 0) {
		errmsg("request %s has no PKI result", argv[optind]);
		r = EXIT_FAILED;
		goto out;
	}
	r = write_text(o.out, text) ? EXIT_FAILED : EXIT_OK;
out:
	free(text);
	qsc_free(fr);
	qsc_close(c);
	return r;
}

/* ------------------------------------------------------------ group */

const struct command ca_commands[] = {
        {"create", create_main, create_usage, "create the root CA (quorum; once)", NULL},
        {"show", show_main, show_usage, "root, TLS, EST and device CAs", NULL},
        {"get", get_main, get_usage, "one certificate in PEM", NULL},
        {"issue-tls", issue_tls_main, issue_tls_usage, "server / EST TLS certificate (quorum)",
         NULL},
        {"rotate-tls", rotate_tls_main, rotate_tls_usage, "replace the TLS certificate (quorum)",
         NULL},
        {"add-device-ca", add_dca_main, add_dca_usage, "online or local device CA (quorum)", NULL},
        {"issue-device", issue_dev_main, issue_dev_usage, "device certificate (online)", NULL},
        {"disable-device-ca", disable_main, disable_usage, "stop new issuance (quorum)", NULL},
        {"enable-device-ca", enable_main, enable_usage, "undo a disable (quorum)", NULL},
        {"revoke-device-ca", revoke_main, revoke_usage, "revoke a device CA (quorum)", NULL},
        {"revoke-device", revoke_dev_main, revoke_dev_usage, "revoke a device certificate (quorum)",
         NULL},
        {"crl", crl_main, crl_usage, "current CRLs in PEM", NULL},
        {"enabled-cas", enabled_main, enabled_usage,
         "signed list of device CAs enabled for registration", NULL},
        {"fetch", fetch_main, fetch_usage, "result of a signed PKI request", NULL},
        {NULL, NULL, NULL, NULL, NULL},
};

void
ca_usage(FILE *f)
{
	group_usage(f, "ca", ca_commands, "-p registrar ca issue-device --csr dev.csr");
}

int
ca_main(int argc, char **argv, struct globals *g)
{
	return group_main(argc, argv, g, ca_commands, ca_usage);
}
