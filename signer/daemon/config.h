/*
 * config.h - qsignd's configuration file (JSON, parsed with jansson).
 *
 * Strict: unknown keys, wrong types and out-of-range values are refused,
 * because a misspelt option silently falling back to a default is how a
 * signing service ends up listening where nobody meant it to. Relative paths
 * are resolved against the directory of the config file. See
 * ops/qsignd.example.json for every option.
 */
#ifndef QS_CONFIG_H
#define QS_CONFIG_H

#include <stddef.h>

#include "qs_limits.h"

struct config_token {
	char *name;     /* label used in logs */
	char *module;   /* PKCS#11 module path */
	char *uri;      /* RFC 7512 token URI */
	char *pin_file; /* file holding the user PIN (absolute path) */
};

struct config {
	char *path;
	char *identity; /* server identity bound into auth statements */
	char *listen[QS_MAX_LISTEN];
	size_t nlisten;
	int allow_plain_tcp; /* plain tcp:// on loopback only, and only if set */
	unsigned ipc_mode;   /* permissions of ipc:// sockets, default 0600 */
	char *state_dir;
	/* "store": {"postgresql": conninfo}: the shared state of replicas;
	 * NULL = SQLite in state_dir (the default). */
	char *store_pg;
	char *policy_file;
	struct config_token *tokens;
	size_t ntokens;
	char *tls_cert, *tls_key, *tls_client_ca; /* required for tls+tcp:// */
	char *tls_probe_cert, *tls_probe_key;     /* optional: the self-probe's client cert */
	unsigned workers;
	/* Signer helper processes holding the tokens (privsep.h); 0 = tokens
	 * in process (debugging). Default: online CPUs, at most QS_MAX_SIGNERS. */
	unsigned signers;
	char *log_level;
	/* The tamper-evident audit log (required): checkpoint origin, the log
	 * key in a configured token, and its directory (default
	 * <state_dir>/audit). */
	char *user, *group;     /* drop to these after start-up (when root) */
	char *metrics;          /* http://127.0.0.1:PORT for /metrics and /healthz, or NULL */
	int seccomp;            /* syscall allow-list after start-up (default on) */
	unsigned maintenance_s; /* period of CRL refresh checks, default 60 */
	char *audit_origin;
	char *audit_key_uri;
	char *audit_dir;
	/* Logins and refusals a principal may cause as entries of their own:
	 * a token bucket (per minute, burst); beyond it they are counted into
	 * an "audit.summary" entry written every audit_summary_s. */
	unsigned audit_rate_per_minute, audit_burst, audit_summary_s;
	/* Key whose possession qsignd proves in every Challenge answer
	 * (clients pin it). NULL: "qsignd-identity" in the audit key's token,
	 * generated there on first start. */
	char *identity_key_uri;
	/* "tuf_publish": {"ci": dir, "prod": dir}: where this daemon publishes
	 * the TUF repositories; NULL = the policy's tuf.repositories. [0] ci,
	 * [1] prod. */
	char *tuf_publish[2];
};

/* Load and validate `path`. On error returns QS_ERR_INVALID / QS_ERR_IO with
 * the exact problem ("listen[1]: ...") in qs_errdetail(). */
int config_load(const char *path, struct config **out);
void config_free(struct config *c);

/* 1 if url is tcp:// or tls+tcp:// to a loopback address (127.0.0.0/8, ::1,
 * localhost). */
int config_url_is_loopback(const char *url);

#endif
