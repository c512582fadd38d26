#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "json_strict.h"
#include "qs_err.h"
#include "statement.h"

static char *
resolve(const char *dir, const char *p)
{
	char *out = NULL;

	if (p[0] == '/' || dir == NULL)
		return strdup(p);
	if (asprintf(&out, "%s/%s", dir, p) < 0)
		return NULL;
	return out;
}

static int
get_str(json_t *o, const char *key, int required, const char *dir, char **out)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL) {
		if (required)
			return qs_fail(QS_ERR_INVALID, "missing \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return qs_fail(QS_ERR_INVALID, "\"%s\" must be a non-empty string", key);
	*out = dir ? resolve(dir, json_string_value(v)) : strdup(json_string_value(v));
	if (*out == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	return 0;
}

/* Optional integer o[key] in lo..hi (default def); errors name it as `what`. */
static int
get_uint(json_t *o, const char *what, const char *key, long long lo, long long hi, unsigned def,
         unsigned *out)
{
	json_t *v = json_object_get(o, key);

	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return qs_fail(QS_ERR_INVALID, "\"%s\" must be an integer %lld..%lld", what, lo,
		               hi);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

int
config_url_is_loopback(const char *url)
{
	const char *h;
	char host[256];
	size_t n;

	if (strncmp(url, "tcp://", 6) == 0)
		h = url + 6;
	else if (strncmp(url, "tls+tcp://", 10) == 0)
		h = url + 10;
	else
		return 0;
	if (h[0] == '[') {
		const char *e = strchr(h, ']');
		if (e == NULL)
			return 0;
		return (size_t)(e - h - 1) == 3 && strncmp(h + 1, "::1", 3) == 0;
	}
	n = strcspn(h, ":/");
	if (n == 0 || n >= sizeof(host))
		return 0;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcmp(host, "localhost") == 0)
		return 1;
	if (strncmp(host, "127.", 4) == 0) {
		for (size_t i = 4; i < n; i++)
			if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
				return 0;
		return 1;
	}
	return 0;
}

static int
parse_listen(struct config *c, json_t *arr)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return qs_fail(QS_ERR_INVALID, "\"listen\" must be a non-empty array of URLs");
	if (json_array_size(arr) > QS_MAX_LISTEN)
		return qs_fail(QS_ERR_INVALID, "\"listen\": at most %d URLs", QS_MAX_LISTEN);
	json_array_foreach(arr, i, v)
	{
		const char *u = json_string_value(v);
		if (u == NULL)
			return qs_fail(QS_ERR_INVALID, "listen[%zu]: must be a string", i);
		if (strncmp(u, "ipc://", 6) == 0) {
			if (strlen(u) <= 6)
				return qs_fail(QS_ERR_INVALID, "listen[%zu]: empty ipc path", i);
		} else if (strncmp(u, "tls+tcp://", 10) == 0) {
			/* checked against the tls block below */
		} else if (strncmp(u, "tcp://", 6) == 0) {
			if (!config_url_is_loopback(u))
				return qs_fail(QS_ERR_INVALID,
				               "listen[%zu]: plain tcp:// is only allowed on a "
				               "loopback address (use tls+tcp:// with mutual TLS)",
				               i);
		} else {
			return qs_fail(QS_ERR_INVALID,
			               "listen[%zu]: \"%s\": scheme must be ipc://, tls+tcp:// "
			               "or (loopback only) tcp://",
			               i, u);
		}
		if ((c->listen[c->nlisten++] = strdup(u)) == NULL)
			return qs_fail(QS_ERR_NOMEM, "out of memory");
	}
	return 0;
}

static int
parse_tokens(struct config *c, json_t *arr, const char *dir)
{
	static const char *const allowed[] = {"name", "module", "uri", "pin_file", NULL};
	size_t i;
	json_t *v;
	int r;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return qs_fail(QS_ERR_INVALID, "\"tokens\" must be a non-empty array");
	if (json_array_size(arr) > 16)
		return qs_fail(QS_ERR_INVALID, "\"tokens\": at most 16 tokens");
	if ((c->tokens = calloc(json_array_size(arr), sizeof(*c->tokens))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	json_array_foreach(arr, i, v)
	{
		struct config_token *t = &c->tokens[c->ntokens++];
		char what[32];

		snprintf(what, sizeof(what), "tokens[%zu]", i);
		if (!json_is_object(v))
			return qs_fail(QS_ERR_INVALID, "%s: must be an object", what);
		if ((r = qs_json_only(v, what, allowed)) != 0)
			return r;
		if ((r = get_str(v, "name", 1, NULL, &t->name)) != 0 ||
		    (r = get_str(v, "module", 1, NULL, &t->module)) != 0 ||
		    (r = get_str(v, "uri", 1, NULL, &t->uri)) != 0 ||
		    (r = get_str(v, "pin_file", 1, NULL, &t->pin_file)) != 0)
			return qs_wrap(r, "%s", what);
		if (strncmp(t->pin_file, "credential:", 11) == 0) {
			/* systemd LoadCredential=: the PIN never touches the
			 * service's own file system. */
			const char *cd = getenv("CREDENTIALS_DIRECTORY"), *name = t->pin_file + 11;
			char *p = NULL;
			if (!qs_name_valid(name, QS_MAX_NAME))
				return qs_fail(QS_ERR_INVALID, "%s: bad credential name", what);
			/* Outside systemd (backup, restore: no token is opened)
			 * the reference stays as it is; opening the token then
			 * says what is missing. */
			if (cd != NULL && *cd == '/') {
				if (asprintf(&p, "%s/%s", cd, name) < 0)
					return qs_fail(QS_ERR_NOMEM, "out of memory");
				free(t->pin_file);
				t->pin_file = p;
			}
		} else {
			char *p = resolve(dir, t->pin_file);
			if (p == NULL)
				return qs_fail(QS_ERR_NOMEM, "out of memory");
			free(t->pin_file);
			t->pin_file = p;
		}
		if (strncmp(t->uri, "pkcs11:", 7) != 0)
			return qs_fail(QS_ERR_INVALID, "%s: uri must be a pkcs11: URI", what);
		for (size_t j = 0; j + 1 < c->ntokens; j++)
			if (strcmp(c->tokens[j].name, t->name) == 0)
				return qs_fail(QS_ERR_INVALID, "%s: duplicate token name \"%s\"",
				               what, t->name);
	}
	return 0;
}

int
config_load(const char *path, struct config **out)
{
	static const char *const allowed[] = {"identity", "listen",        "allow_plain_tcp",
	                                      "ipc_mode", "state_dir",     "policy",
	                                      "tokens",   "tls",           "workers",
	                                      "signers",  "log_level",     "audit",
	                                      "user",     "group",         "seccomp",
	                                      "metrics",  "maintenance_s", "identity_key",
	                                      "store",    "tuf_publish",   NULL};
	static const char *const audit_allowed[] = {
	        "origin",          "key",       "dir", "principal_rate_per_minute",
	        "principal_burst", "summary_s", NULL};
	static const char *const store_allowed[] = {"postgresql", NULL};
	static const char *const publish_allowed[] = {"ci", "prod", NULL};
	static const char *const tls_allowed[] = {"cert",       "key",       "client_ca",
	                                          "probe_cert", "probe_key", NULL};
	struct config *c = NULL;
	json_error_t jerr;
	json_t *root = NULL, *v;
	char *dir = NULL, *slash;
	int r = QS_ERR_INVALID;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if ((c->path = strdup(path)) == NULL || (dir = strdup(path)) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = '\0';
	else
		strcpy(dir, ".");
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		r = qs_fail(jerr.line < 1 ? QS_ERR_IO : QS_ERR_INVALID, "%s:%d: %s", path,
		            jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		r = qs_fail(QS_ERR_INVALID, "%s: top level must be an object", path);
		goto out;
	}
	if ((r = qs_json_only(root, path, allowed)) != 0)
		goto out;
	if ((r = get_str(root, "identity", 0, NULL, &c->identity)) != 0)
		goto fail;
	if (c->identity == NULL && (c->identity = strdup("qsignd")) == NULL) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!qs_name_valid(c->identity, QS_MAX_IDENTITY)) {
		r = qs_fail(QS_ERR_INVALID, "identity: 1..%d characters of [A-Za-z0-9._@:+-]",
		            QS_MAX_IDENTITY);
		goto fail;
	}
	if ((r = parse_listen(c, json_object_get(root, "listen"))) != 0)
		goto fail;
	v = json_object_get(root, "allow_plain_tcp");
	if (v != NULL && !json_is_boolean(v)) {
		r = qs_fail(QS_ERR_INVALID, "\"allow_plain_tcp\" must be true or false");
		goto fail;
	}
	c->allow_plain_tcp = json_is_true(v);
	for (size_t i = 0; i < c->nlisten; i++)
		if (strncmp(c->listen[i], "tcp://", 6) == 0 && !c->allow_plain_tcp) {
			r = qs_fail(QS_ERR_INVALID,
			            "listen[%zu]: plain tcp:// needs \"allow_plain_tcp\": true", i);
			goto fail;
		}
	c->ipc_mode = 0600;
	if ((v = json_object_get(root, "ipc_mode")) != NULL) {
		const char *s = json_string_value(v);
		char *end = NULL;
		unsigned long m = s ? strtoul(s, &end, 8) : 0;
		if (s == NULL || *s == '\0' || *end != '\0' || m > 0777 || (m & 0007) != 0 ||
		    (m & 0600) != 0600) {
			r = qs_fail(QS_ERR_INVALID,
			            "\"ipc_mode\" must be an octal string like \"0660\": owner "
			            "rw, never world access");
			goto fail;
		}
		c->ipc_mode = (unsigned)m;
	}
	if ((r = get_str(root, "state_dir", 1, dir, &c->state_dir)) != 0 ||
	    (r = get_str(root, "policy", 1, dir, &c->policy_file)) != 0)
		goto fail;
	if ((v = json_object_get(root, "store")) != NULL) {
		/* Absent: SQLite in state_dir. {"postgresql": conninfo}: the
		 * shared database of a replicated deployment. */
		if (!json_is_object(v)) {
			r = qs_fail(QS_ERR_INVALID, "\"store\" must be an object: "
			                            "{\"postgresql\": \"<libpq conninfo>\"}");
			goto fail;
		}
		if ((r = qs_json_only(v, "store", store_allowed)) != 0)
			goto fail;
		if ((r = get_str(v, "postgresql", 1, NULL, &c->store_pg)) != 0) {
			r = qs_wrap(r, "store");
			goto fail;
		}
	}
	if ((v = json_object_get(root, "tuf_publish")) != NULL) {
		/* This daemon's published TUF directories, instead of the
		 * policy's (which every replica shares). */
		if (!json_is_object(v) || json_object_size(v) == 0) {
			r = qs_fail(QS_ERR_INVALID, "\"tuf_publish\" must be an object: "
			                            "{\"ci\": \"<dir>\", \"prod\": \"<dir>\"}");
			goto fail;
		}
		if ((r = qs_json_only(v, "tuf_publish", publish_allowed)) != 0)
			goto fail;
		if ((r = get_str(v, "ci", 0, dir, &c->tuf_publish[0])) != 0 ||
		    (r = get_str(v, "prod", 0, dir, &c->tuf_publish[1])) != 0) {
			r = qs_wrap(r, "tuf_publish");
			goto fail;
		}
	}
	if ((r = parse_tokens(c, json_object_get(root, "tokens"), dir)) != 0)
		goto fail;
	if ((v = json_object_get(root, "tls")) != NULL) {
		if (!json_is_object(v)) {
			r = qs_fail(QS_ERR_INVALID, "\"tls\" must be an object");
			goto fail;
		}
		if ((r = qs_json_only(v, "tls", tls_allowed)) != 0 ||
		    (r = get_str(v, "cert", 1, dir, &c->tls_cert)) != 0 ||
		    (r = get_str(v, "key", 1, dir, &c->tls_key)) != 0 ||
		    (r = get_str(v, "client_ca", 1, dir, &c->tls_client_ca)) != 0 ||
		    (r = get_str(v, "probe_cert", 0, dir, &c->tls_probe_cert)) != 0 ||
		    (r = get_str(v, "probe_key", 0, dir, &c->tls_probe_key)) != 0) {
			r = qs_wrap(r, "tls");
			goto fail;
		}
		if ((c->tls_probe_cert == NULL) != (c->tls_probe_key == NULL)) {
			r = qs_fail(QS_ERR_INVALID,
			            "tls: \"probe_cert\" and \"probe_key\" go "
			            "together (or neither: the probe uses cert and key)");
			goto fail;
		}
	}
	for (size_t i = 0; i < c->nlisten; i++)
		if (strncmp(c->listen[i], "tls+tcp://", 10) == 0 && c->tls_cert == NULL) {
			r = qs_fail(QS_ERR_INVALID,
			            "listen[%zu]: tls+tcp:// needs a \"tls\" block with cert, key "
			            "and client_ca (mutual TLS)",
			            i);
			goto fail;
		}
	c->workers = 4;
	if ((v = json_object_get(root, "workers")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > QS_MAX_WORKERS) {
			r = qs_fail(QS_ERR_INVALID, "\"workers\" must be an integer 1..%d",
			            QS_MAX_WORKERS);
			goto fail;
		}
		c->workers = (unsigned)json_integer_value(v);
	}
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		c->signers = cpus < 1 ? 1 : cpus > QS_MAX_SIGNERS ? QS_MAX_SIGNERS : (unsigned)cpus;
	}
	if ((v = json_object_get(root, "signers")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > QS_MAX_SIGNERS) {
			r = qs_fail(QS_ERR_INVALID,
			            "\"signers\" must be an integer 0..%d (0: tokens in process)",
			            QS_MAX_SIGNERS);
			goto fail;
		}
		c->signers = (unsigned)json_integer_value(v);
	}
	if ((r = get_str(root, "log_level", 0, NULL, &c->log_level)) != 0)
		goto fail;
	if ((r = get_str(root, "metrics", 0, NULL, &c->metrics)) != 0)
		goto fail;
	if (c->metrics != NULL) {
		char tcp[300];
		snprintf(tcp, sizeof(tcp), "tcp://%s",
		         strncmp(c->metrics, "http://", 7) == 0 ? c->metrics + 7 : "");
		if (!config_url_is_loopback(tcp)) {
			r = qs_fail(QS_ERR_INVALID,
			            "\"metrics\" must be http://127.0.0.1:PORT (loopback only)");
			goto fail;
		}
	}
	if ((r = get_str(root, "user", 0, NULL, &c->user)) != 0 ||
	    (r = get_str(root, "group", 0, NULL, &c->group)) != 0)
		goto fail;
	if (c->group != NULL && c->user == NULL) {
		r = qs_fail(QS_ERR_INVALID, "\"group\" needs \"user\"");
		goto fail;
	}
	v = json_object_get(root, "seccomp");
	if (v != NULL && !json_is_boolean(v)) {
		r = qs_fail(QS_ERR_INVALID, "\"seccomp\" must be true or false");
		goto fail;
	}
	c->seccomp = v == NULL || json_is_true(v);
	c->maintenance_s = 60;
	if ((v = json_object_get(root, "maintenance_s")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 86400) {
			r = qs_fail(QS_ERR_INVALID, "\"maintenance_s\" must be 1..86400 seconds");
			goto fail;
		}
		c->maintenance_s = (unsigned)json_integer_value(v);
	}
	v = json_object_get(root, "audit");
	if (!json_is_object(v)) {
		r = qs_fail(QS_ERR_INVALID,
		            "\"audit\" is required: {\"origin\": \"example.org/qsignd\", "
		            "\"key\": \"pkcs11:token=...;object=audit-log\"}");
		goto fail;
	}
	if ((r = qs_json_only(v, "audit", audit_allowed)) != 0 ||
	    (r = get_str(v, "origin", 1, NULL, &c->audit_origin)) != 0 ||
	    (r = get_str(v, "key", 1, NULL, &c->audit_key_uri)) != 0 ||
	    (r = get_str(v, "dir", 0, dir, &c->audit_dir)) != 0) {
		r = qs_wrap(r, "audit");
		goto fail;
	}
	if (strncmp(c->audit_key_uri, "pkcs11:", 7) != 0) {
		r = qs_fail(QS_ERR_INVALID, "audit.key: must be a pkcs11: URI");
		goto fail;
	}
	if ((r = get_uint(v, "audit.principal_rate_per_minute", "principal_rate_per_minute", 1,
	                  1000000, 60, &c->audit_rate_per_minute)) != 0 ||
	    (r = get_uint(v, "audit.principal_burst", "principal_burst", 1, 1000000, 120,
	                  &c->audit_burst)) != 0 ||
	    (r = get_uint(v, "audit.summary_s", "summary_s", 1, 86400, 60, &c->audit_summary_s)) !=
	            0)
		goto fail;
	if ((r = get_str(root, "identity_key", 0, NULL, &c->identity_key_uri)) != 0)
		goto fail;
	if (c->identity_key_uri != NULL && strncmp(c->identity_key_uri, "pkcs11:", 7) != 0) {
		r = qs_fail(QS_ERR_INVALID, "identity_key: must be a pkcs11: URI");
		goto fail;
	}
	for (const char *o = c->audit_origin; *o; o++)
		if (*o <= ' ' || *o > '~' || *o == '+') {
			r = qs_fail(QS_ERR_INVALID,
			            "audit.origin: printable ASCII without spaces or '+'");
			goto fail;
		}
	if (c->audit_dir == NULL && asprintf(&c->audit_dir, "%s/audit", c->state_dir) < 0) {
		r = qs_fail(QS_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (c->log_level != NULL && strcmp(c->log_level, "debug") != 0 &&
	    strcmp(c->log_level, "info") != 0 && strcmp(c->log_level, "warn") != 0 &&
	    strcmp(c->log_level, "error") != 0) {
		r = qs_fail(QS_ERR_INVALID, "\"log_level\" must be debug, info, warn or error");
		goto fail;
	}
	*out = c;
	c = NULL;
	r = 0;
	goto out;
fail:
	r = qs_wrap(r, "%s", path);
out:
	json_decref(root);
	free(dir);
	config_free(c);
	return r;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->identity);
	for (size_t i = 0; i < c->nlisten; i++)
		free(c->listen[i]);
	free(c->state_dir);
	if (c->store_pg != NULL) {
		explicit_bzero(c->store_pg, strlen(c->store_pg)); /* may hold a password */
		free(c->store_pg);
	}
	free(c->policy_file);
	free(c->tuf_publish[0]);
	free(c->tuf_publish[1]);
	for (size_t i = 0; i < c->ntokens; i++) {
		free(c->tokens[i].name);
		free(c->tokens[i].module);
		free(c->tokens[i].uri);
		free(c->tokens[i].pin_file);
	}
	free(c->tokens);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_client_ca);
	free(c->tls_probe_cert);
	free(c->tls_probe_key);
	free(c->log_level);
	free(c->metrics);
	free(c->user);
	free(c->group);
	free(c->audit_origin);
	free(c->audit_key_uri);
	free(c->audit_dir);
	free(c->identity_key_uri);
	free(c);
}
