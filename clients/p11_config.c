/*
 * p11_config.c - configuration of libqsign-pkcs11.so.
 *
 * The same settings as qsign (QSIGN_SERVER, QSIGN_PRINCIPAL,
 * QSIGN_IDENTITY, ...), or a small JSON file for tools whose environment
 * is hard to set (a build system that loads the module by path):
 *   QSIGN_PKCS11_CONF=FILE, else $XDG_CONFIG_HOME/qsign/pkcs11.conf
 *   (~/.config/qsign/pkcs11.conf) if it exists.
 * Variables override the file's fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "p11.h"
#include "statement.h"

/* Largest configuration file read (it is a dozen short fields). */
#define P11_MAX_CONF_BYTES (64u * 1024)
/* Longest quorum wait: a day, like a request's usual lifetime. */
#define P11_MAX_QUORUM_WAIT (24 * 3600)

struct field {
	const char *name;
	const char *env;
	size_t off;
};

static const struct field string_fields[] = {
        {"server", "QSIGN_SERVER", offsetof(struct p11_config, server)},
        {"principal", "QSIGN_PRINCIPAL", offsetof(struct p11_config, principal)},
        {"identity", "QSIGN_IDENTITY", offsetof(struct p11_config, identity)},
        {"identity_pass_file", "QSIGN_IDENTITY_PASS_FILE",
         offsetof(struct p11_config, identity_pass)},
        {"pin_source", "QSIGN_PIN_FILE", offsetof(struct p11_config, pin_source)},
        {"pkcs11_module", "QSIGN_PKCS11_MODULE", offsetof(struct p11_config, pkcs11_module)},
        {"server_key", "QSIGN_SERVER_KEY", offsetof(struct p11_config, server_key)},
        {"known_servers", NULL, offsetof(struct p11_config, known_servers)},
        {"tls_cert", "QSIGN_TLS_CERT", offsetof(struct p11_config, tls_cert)},
        {"tls_key", "QSIGN_TLS_KEY", offsetof(struct p11_config, tls_key)},
        {"tls_ca", "QSIGN_TLS_CA", offsetof(struct p11_config, tls_ca)},
};
#define NFIELDS (sizeof(string_fields) / sizeof(string_fields[0]))

static char **
field_ptr(struct p11_config *c, const struct field *f)
{
	return (char **)((char *)c + f->off);
}

static int
set_string(char **dst, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	free(*dst);
	*dst = d;
	return 0;
}

static int
parse_seconds(json_t *v, const char *name, int max, int *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return qs_fail(QS_ERR_INVALID, "%s: must be an integer of 0..%d seconds", name,
		               max);
	*out = (int)json_integer_value(v);
	return 0;
}

int
p11_config_parse(struct p11_config *c, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *name;
	int r;

	if (len > P11_MAX_CONF_BYTES)
		return qs_fail(QS_ERR_INVALID, "larger than %u bytes", P11_MAX_CONF_BYTES);
	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return qs_fail(QS_ERR_INVALID, "line %d: %s", jerr.line, jerr.text);
	if (!json_is_object(root)) {
		r = qs_fail(QS_ERR_INVALID, "must be a JSON object");
		goto out;
	}
	json_object_foreach(root, name, v)
	{
		size_t i;

		if (strcmp(name, "timeout_seconds") == 0) {
			int s;
			if ((r = parse_seconds(v, name, 3600, &s)) != 0)
				goto out;
			c->timeout_ms = s * 1000;
			continue;
		}
		if (strcmp(name, "quorum_wait_seconds") == 0) {
			if ((r = parse_seconds(v, name, P11_MAX_QUORUM_WAIT, &c->quorum_wait)) != 0)
				goto out;
			continue;
		}
		for (i = 0; i < NFIELDS && strcmp(name, string_fields[i].name) != 0; i++)
			;
		if (i == NFIELDS) {
			r = qs_fail(QS_ERR_INVALID, "unknown field \"%.64s\"", name);
			goto out;
		}
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			r = qs_fail(QS_ERR_INVALID, "%s: must be a non-empty string", name);
			goto out;
		}
		if ((r = set_string(field_ptr(c, &string_fields[i]), json_string_value(v))) != 0)
			goto out;
	}
	r = 0;
out:
	json_decref(root);
	return r;
}

/* Read path into c; *found = 0 when it does not exist and may be absent. */
static int
load_file(struct p11_config *c, const char *path, int must_exist)
{
	char *text = NULL;
	size_t len;
	FILE *f;
	int r;

	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return qs_fail(QS_ERR_IO, "%s: %s", path, strerror(errno));
	}
	snprintf(c->source, sizeof(c->source), "%s", path);
	if ((text = malloc(P11_MAX_CONF_BYTES + 1)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	len = fread(text, 1, P11_MAX_CONF_BYTES + 1, f);
	if (ferror(f)) {
		r = qs_fail(QS_ERR_IO, "%s: read error", path);
		goto out;
	}
	if ((r = p11_config_parse(c, text, len)) != 0)
		r = qs_wrap(r, "%s", path);
out:
	free(text);
	fclose(f);
	return r;
}

static int
apply_env(struct p11_config *c)
{
	const char *v;
	int r;

	for (size_t i = 0; i < NFIELDS; i++) {
		if (string_fields[i].env == NULL || (v = getenv(string_fields[i].env)) == NULL ||
		    v[0] == '\0')
			continue;
		if ((r = set_string(field_ptr(c, &string_fields[i]), v)) != 0)
			return r;
	}
	if ((v = getenv("QSIGN_PKCS11_QUORUM_WAIT")) != NULL && v[0] != '\0') {
		char *end;
		long s;
		errno = 0;
		s = strtol(v, &end, 10);
		if (errno != 0 || *end != '\0' || s < 0 || s > P11_MAX_QUORUM_WAIT)
			return qs_fail(QS_ERR_INVALID,
			               "QSIGN_PKCS11_QUORUM_WAIT: must be 0..%d seconds",
			               P11_MAX_QUORUM_WAIT);
		c->quorum_wait = (int)s;
	}
	return 0;
}

/* qsign's defaults: the daemon under $QSIGN_HOME, the demo identity. */
static int
apply_defaults(struct p11_config *c)
{
	const char *home = getenv("QSIGN_HOME");

	if (home == NULL || home[0] == '\0')
		home = "./.qsign";
	if (c->server == NULL && asprintf(&c->server, "ipc://%s/qsignd.sock", home) < 0)
		c->server = NULL;
	if (c->principal != NULL && c->identity == NULL &&
	    asprintf(&c->identity, "%s/demo/%s.key", home, c->principal) < 0)
		c->identity = NULL;
	if (c->server == NULL || (c->principal != NULL && c->identity == NULL))
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

int
p11_config_load(struct p11_config *out)
{
	struct p11_config c = {0};
	const char *path = getenv("QSIGN_PKCS11_CONF"), *xdg;
	char *dflt = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(c.source, sizeof(c.source), "the environment");
	if (path != NULL && path[0] != '\0') {
		if ((r = load_file(&c, path, 1)) != 0)
			goto out;
	} else {
		xdg = getenv("XDG_CONFIG_HOME");
		if (xdg != NULL && xdg[0] != '\0')
			r = asprintf(&dflt, "%s/qsign/pkcs11.conf", xdg);
		else if (getenv("HOME") != NULL)
			r = asprintf(&dflt, "%s/.config/qsign/pkcs11.conf", getenv("HOME"));
		else
			r = 0;
		if (r < 0) {
			dflt = NULL;
			r = qs_fail(QS_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (dflt != NULL && (r = load_file(&c, dflt, 0)) != 0)
			goto out;
	}
	if ((r = apply_env(&c)) != 0 || (r = apply_defaults(&c)) != 0)
		goto out;
	if (c.principal == NULL) {
		r = qs_fail(QS_ERR_INVALID,
		            "no principal: set QSIGN_PRINCIPAL or \"principal\" in the file "
		            "QSIGN_PKCS11_CONF names");
		goto out;
	}
	if (!qs_name_valid(c.principal, QS_MAX_NAME)) {
		r = qs_fail(QS_ERR_INVALID, "invalid principal name");
		goto out;
	}
	*out = c;
	memset(&c, 0, sizeof(c));
	r = 0;
out:
	free(dflt);
	p11_config_free(&c);
	return r;
}

void
p11_config_free(struct p11_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NFIELDS; i++) {
		free(*field_ptr(c, &string_fields[i]));
		*field_ptr(c, &string_fields[i]) = NULL;
	}
}
