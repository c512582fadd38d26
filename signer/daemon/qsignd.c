/*
 * qsignd - the quorum-signer daemon. A thin shell over the signer modules:
 * harden the process, load config, open tokens and state, bind the policy,
 * serve until SIGTERM/SIGINT.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "audit.h"
#include "backup.h"
#include "config.h"
#include "harden.h"
#include "keyring.h"
#include "log.h"
#include "maint.h"
#include "metrics.h"
#include "migrate.h"
#include "policy.h"
#include "privsep.h"
#include "qs_err.h"
#include "server.h"
#include "sigindex.h"
#include "statement.h"
#include "store.h"
#include "tuf.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: qsignd -c CONFIG [--check]\n"
	           "       qsignd -c CONFIG backup -o DIR\n"
	           "       qsignd -c CONFIG restore -i DIR [--force]\n"
	           "       qsignd -c CONFIG migrate-store --to CONNINFO\n"
	           "\n"
	           "The quorum-signer daemon: holds signing keys in PKCS#11 tokens and signs\n"
	           "what its policy allows, for authenticated principals over nng.\n"
	           "\n"
	           "  -c, --config FILE  JSON configuration (see ops/qsignd.example.json)\n"
	           "      --check        validate config, policy, state and tokens, then exit:\n"
	           "                     0 if all is well, 1 with the exact problem otherwise\n"
	           "  -h, --help         this text\n"
	           "  -V, --version      print the version\n"
	           "\n"
	           "backup -o DIR       consistent copy of the state and the audit log while\n"
	           "                    qsignd runs (SQLite online backup, then the log up to\n"
	           "                    its signed checkpoint)\n"
	           "restore -i DIR      put a backup in place (qsignd stopped); refuses to\n"
	           "                    replace a newer audit log unless --force: that rolls\n"
	           "                    the log back, which auditors' verify will report\n"
	           "migrate-store --to CONNINFO\n"
	           "                    move a single-host deployment (SQLite state, audit log\n"
	           "                    in files; qsignd stopped) into the PostgreSQL database\n"
	           "                    CONNINFO (libpq) for replicas, in one transaction: the\n"
	           "                    state, and the audit log's entries verbatim with its\n"
	           "                    signed checkpoint, so auditors' checkpoints still\n"
	           "                    verify. Refuses a log that does not verify and a\n"
	           "                    database that holds any state; the source is kept,\n"
	           "                    marked as moved (qsignd then refuses to start on it).\n"
	           "                    Then set \"store\": {\"postgresql\": CONNINFO} in CONFIG\n"
	           "                    (ops/docs/replicated.md)\n"
	           "\n"
	           "Runs in the foreground and logs to stderr. SIGTERM or SIGINT finish the\n"
	           "calls in flight and exit cleanly.\n"
	           "\n"
	           "example:\n"
	           "  qsignd -c .qsign/qsignd.json --check && qsignd -c .qsign/qsignd.json\n");
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "qsignd: %s: %s%s%s\n", what, qs_strerror(r), qs_errdetail()[0] ? ": " : "",
	        qs_errdetail());
	exit(1);
}

/* A SoftHSM token that is not found is, nearly always, SoftHSM reading
 * another softhsm2.conf (another token directory) than the one the token
 * was made with: say which one it reads and how to point it elsewhere. */
static void
softhsm_hint(const struct config *cfg, int r)
{
	const char *conf = getenv("SOFTHSM2_CONF");
	int softhsm = 0;

	for (size_t i = 0; i < cfg->ntokens; i++)
		softhsm |= cfg->tokens[i].module != NULL &&
		           strstr(cfg->tokens[i].module, "softhsm") != NULL;
	if (!softhsm || !((r == QS_ERR_NOT_FOUND && strstr(qs_errdetail(), "token") != NULL) ||
	                  strstr(qs_errdetail(), "C_Initialize") != NULL))
		return;
	fprintf(stderr,
	        "qsignd: hint: SoftHSM reads its tokens from the directories.tokendir of %s%s; "
	        "set SOFTHSM2_CONF to the softhsm2.conf the token was created with (the "
	        "shipped unit sets Environment=SOFTHSM2_CONF=/var/lib/qsignd/softhsm2.conf); "
	        "`SOFTHSM2_CONF=... softhsm2-util --show-slots` lists the tokens it sees\n",
	        conf != NULL && conf[0] != '\0' ? conf : "/etc/softhsm/softhsm2.conf",
	        conf != NULL && conf[0] != '\0' ? " (SOFTHSM2_CONF)"
	                                        : " (SOFTHSM2_CONF is not set)");
}

/*
 * The state store, not the file, decides the policy after the first start:
 * the file bootstraps version 1; later versions come only through quorum
 * approval. A changed file is reported and ignored, never applied.
 */
static int
load_policy(const struct config *cfg, struct store *st, struct keyring *kr, struct audit *au,
            int check_only, struct policy **out)
{
	struct policy *file = NULL, *cur = NULL;
	uint64_t ver = 0;
	char *text = NULL;
	int r;

	*out = NULL;
	if ((r = policy_load_file(cfg->policy_file, &file)) != 0)
		return r;
	r = st ? store_policy_current(st, &ver, &text) : QS_ERR_NOT_FOUND;
	if (r == QS_ERR_NOT_FOUND) {
		if (file->version != 1) {
			r = qs_fail(QS_ERR_INVALID,
			            "%s: the bootstrap policy must be version 1 (it says %llu)",
			            cfg->policy_file, (unsigned long long)file->version);
			goto out;
		}
		if ((r = keyring_policy_check(kr, file, st)) != 0)
			goto out;
		if (!check_only) {
			/* The audit log records the policy before it takes effect. */
			uint8_t dg[32];
			char *hex;
			qs_sha256((const uint8_t *)file->text, file->text_len, dg);
			if ((hex = qs_hex(dg, 32)) == NULL) {
				r = qs_fail(QS_ERR_NOMEM, "out of memory");
				goto out;
			}
			r = audit_append(au, "policy",
			                 json_pack("{s:I,s:s,s:s}", "version", (json_int_t)1,
			                           "sha256", hex, "text", file->text));
			free(hex);
			if (r != 0 || (r = store_policy_add(st, 1, file->text)) != 0)
				goto out;
		}
		if (!check_only)
			log_info("policy.bootstrap", "version=1 file=%s", cfg->policy_file);
		cur = file;
		file = NULL;
	} else if (r != 0) {
		goto out;
	} else {
		if ((r = policy_parse(text, strlen(text), &cur)) != 0) {
			r = qs_wrap(r, "stored policy version %llu", (unsigned long long)ver);
			goto out;
		}
		if ((r = keyring_policy_check(kr, cur, st)) != 0)
			goto out;
		if (strcmp(file->text, cur->text) != 0)
			log_warn(
			        "policy.file_ignored",
			        "file=%s current_version=%llu reason=\"the policy in force comes "
			        "from the state store; propose changes with qsign policy propose\"",
			        cfg->policy_file, (unsigned long long)ver);
	}
	*out = cur;
	cur = NULL;
	r = 0;
out:
	free(text);
	policy_unref(file);
	policy_unref(cur);
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check", no_argument, NULL, 'k'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {"force", no_argument, NULL, 'f'},
	        {"to", required_argument, NULL, 't'},
	        /* For tests, not in --help: speak the helper protocol as a
	         * hostile front would (privsep.h). */
	        {"privsep-selftest", no_argument, NULL, 'P'},
	        {NULL, 0, NULL, 0},
	};
	struct server srv;
	struct config *cfg = NULL;
	struct store *st = NULL;
	struct keyring *kr = NULL;
	struct policy *pol = NULL;
	struct audit *au = NULL;
	struct sigindex *si = NULL;
	const char *cfgpath = NULL;
	char *dbpath = NULL;
	struct keyring_key *auk = NULL;
	struct stat sb;
	sigset_t sigs;
	int check = 0, force = 0, selftest = 0, ch, r, sig = 0;

	harden_early();
	while ((ch = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'k':
			check = 1;
			break;
		case 'P':
			selftest = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("qsignd %s\n", QS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (cfgpath != NULL && optind < argc &&
	    (strcmp(argv[optind], "backup") == 0 || strcmp(argv[optind], "restore") == 0)) {
		const char *verb = argv[optind++], *dir = NULL;
		while ((ch = getopt_long(argc, argv, "o:i:", longopts, NULL)) != -1) {
			if (ch == 'o' && strcmp(verb, "backup") == 0)
				dir = optarg;
			else if (ch == 'i' && strcmp(verb, "restore") == 0)
				dir = optarg;
			else if (ch == 'f' && strcmp(verb, "restore") == 0)
				force = 1;
			else {
				usage(stderr);
				return 2;
			}
		}
		if (dir == NULL || optind != argc) {
			usage(stderr);
			return 2;
		}
		if ((r = config_load(cfgpath, &cfg)) != 0)
			die("config", r);
		if (cfg->store_pg != NULL)
			die(verb, qs_fail(QS_ERR_PRECONDITION,
			                  "the state is in PostgreSQL (\"store\"): back it up with "
			                  "pg_dump or pg_basebackup (ops/docs/replicated.md)"));
		/* A moved state is backed up and restored no more: a copy of
		 * it would start a second history under the log key. */
		if ((r = migrate_check_source(cfg)) != 0)
			die(verb, r);
		r = strcmp(verb, "backup") == 0 ? backup_create(cfg, dir)
		                                : backup_restore(cfg, dir, force);
		if (r != 0)
			die(verb, r);
		config_free(cfg);
		return 0;
	}
	if (cfgpath != NULL && optind < argc && strcmp(argv[optind], "migrate-store") == 0) {
		const char *to = NULL;
		optind++;
		while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
			if (ch != 't') {
				usage(stderr);
				return 2;
			}
			to = optarg;
		}
		if (to == NULL || optind != argc) {
			usage(stderr);
			return 2;
		}
		if ((r = config_load(cfgpath, &cfg)) != 0)
			die("config", r);
		log_init("qsignd", LOG_LVL_WARN);
		signal(SIGPIPE, SIG_IGN);
		/* Tokens first: with privilege separation this forks the
		 * signer helpers, before any thread exists. */
		if ((r = keyring_open(cfg, &kr)) != 0) {
			fprintf(stderr, "qsignd: tokens: %s%s%s\n", qs_strerror(r),
			        qs_errdetail()[0] ? ": " : "", qs_errdetail());
			softhsm_hint(cfg, r);
			exit(1);
		}
		r = migrate_store(cfg, kr, to);
		keyring_close(kr);
		config_free(cfg);
		if (r != 0)
			die("migrate-store", r);
		return 0;
	}
	if (cfgpath == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((r = config_load(cfgpath, &cfg)) != 0)
		die("config", r);
	log_init("qsignd", cfg->log_level == NULL                 ? LOG_LVL_INFO
	                   : strcmp(cfg->log_level, "debug") == 0 ? LOG_LVL_DEBUG
	                   : strcmp(cfg->log_level, "warn") == 0  ? LOG_LVL_WARN
	                   : strcmp(cfg->log_level, "error") == 0 ? LOG_LVL_ERROR
	                                                          : LOG_LVL_INFO);

	/* Signals are taken synchronously by main; block them before any
	 * thread (store writer, nng, workers) exists so none inherits them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (selftest) {
		r = ps_selftest(cfg, cfg->audit_key_uri);
		config_free(cfg);
		return r;
	}
	/* With privilege separation this forks the signer helpers: it must
	 * come before the store writer, the audit writer and nng start
	 * threads (nng is not fork-safe). */
	if ((r = keyring_open(cfg, &kr)) != 0) {
		fprintf(stderr, "qsignd: tokens: %s%s%s\n", qs_strerror(r),
		        qs_errdetail()[0] ? ": " : "", qs_errdetail());
		softhsm_hint(cfg, r);
		exit(1);
	}
	if (check) {
		/* Look at existing state without creating any. */
		if (asprintf(&dbpath, "%s/state.db", cfg->state_dir) < 0)
			die("check", QS_ERR_NOMEM);
		if (cfg->store_pg != NULL) {
			if ((r = store_open_pg(cfg->store_pg, 0, &st)) != 0 &&
			    r != QS_ERR_NOT_FOUND)
				die("state", qs_wrap(r, "store.postgresql"));
		} else if ((r = migrate_check_source(cfg)) != 0 ||
		           (stat(dbpath, &sb) == 0 &&
		            (r = store_open_sqlite(cfg->state_dir, &st)) != 0)) {
			die("state", r);
		}
		free(dbpath);
		if ((r = keyring_find_uri(kr, cfg->audit_key_uri, HSM_KEY_NONE, &auk)) != 0)
			die("audit key", qs_wrap(r, "audit.key %s", cfg->audit_key_uri));
		if ((r = audit_key_check(auk)) != 0)
			die("audit key", r);
		if ((r = load_policy(cfg, st, kr, NULL, 1, &pol)) != 0)
			die("policy", r);
		printf("qsignd: %s: OK (policy version %llu, %zu keys, %zu roles, %zu "
		       "principals)\n",
		       cfgpath, (unsigned long long)pol->version, pol->nkeys, pol->nroles,
		       pol->nprincipals);
		policy_unref(pol);
		store_close(st);
		keyring_close(kr);
		config_free(cfg);
		return 0;
	}
	if ((r = migrate_check_source(cfg)) != 0)
		die("state", r);
	if (cfg->store_pg != NULL ? (r = store_open_pg(cfg->store_pg, 1, &st)) != 0
	                          : (r = store_open_sqlite(cfg->state_dir, &st)) != 0)
		die("state", cfg->store_pg != NULL ? qs_wrap(r, "store.postgresql") : r);
	/* With PostgreSQL the state directory still holds this replica's
	 * audit log (by default) and published files. */
	if (cfg->store_pg != NULL && mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST)
		die("state", qs_fail(QS_ERR_IO, "create state directory %s: %s", cfg->state_dir,
		                     strerror(errno)));
	if ((r = audit_open(cfg, kr, st, &au)) != 0)
		die("audit", r);
	/* The signature index follows the log (rebuilt first if behind). */
	if ((r = sigindex_start(st, audit_tlog(au), &si)) != 0)
		die("state", r);
	{
		uint64_t had = 0;
		char *t = NULL;
		if (store_policy_current(st, &had, &t) == 0)
			free(t);
		if ((r = load_policy(cfg, st, kr, au, 0, &pol)) != 0)
			die("policy", r);
		/* A log started after the state (a new audit directory): record
		 * every policy version first, so auditors can re-verify votes. */
		for (uint64_t v = 1; audit_created(au) && v <= had; v++) {
			uint8_t dg[32];
			char *hex;
			if ((r = store_policy_get(st, v, &t)) != 0)
				die("policy", r);
			qs_sha256((const uint8_t *)t, strlen(t), dg);
			if ((hex = qs_hex(dg, 32)) == NULL)
				die("policy", qs_fail(QS_ERR_NOMEM, "out of memory"));
			r = audit_append(au, "policy",
			                 json_pack("{s:I,s:s,s:s,s:s}", "version", (json_int_t)v,
			                           "sha256", hex, "text", t, "note",
			                           "recorded when this audit log was created"));
			free(hex);
			free(t);
			if (r != 0)
				die("audit", r);
		}
	}

	memset(&srv, 0, sizeof(srv));
	srv.cfg = cfg;
	srv.store = st;
	srv.kr = kr;
	srv.audit = au;
	srv.pol = pol;
	pthread_rwlock_init(&srv.pol_lock, NULL);
	pthread_mutex_init(&srv.req_mu, NULL);
	pthread_mutex_init(&srv.hist_mu, NULL);
	if ((r = auth_identity_key_open(&srv)) != 0)
		die("identity key", r);
	/* The signer helpers verify the policy chain up to the version in
	 * force before they sign on approvals. */
	requests_policy_chain(&srv);
	/* Requests a crash left between "approved" and "signed". */
	requests_resume(&srv);
	if ((r = server_start(&srv)) != 0) {
		server_stop(&srv);
		die("start", r);
	}
	if (cfg->metrics != NULL && (r = metrics_http_start(&srv, cfg->metrics)) != 0) {
		server_stop(&srv);
		die("metrics", r);
	}
	/* Snapshot/timestamp refresh before expiry (no-op without a "tuf"
	 * policy section with "refresh"). */
	if ((r = maint_start(&srv, cfg->maintenance_s)) != 0) {
		server_stop(&srv);
		die("maintenance", r);
	}
	if ((r = tuf_timer_start(&srv)) != 0) {
		server_stop(&srv);
		die("tuf", r);
	}
	{
		const char *dirs[] = {cfg->state_dir, cfg->audit_dir, NULL};
		if ((r = harden_drop(cfg->user, cfg->group, dirs)) != 0) {
			server_stop(&srv);
			die("user", r);
		}
	}
	if (cfg->seccomp) {
		if ((r = harden_seccomp()) < 0) {
			server_stop(&srv);
			die("seccomp", r);
		}
		if (r == 1)
			log_warn("seccomp.skipped", "reason=\"sanitizer build\"");
	}
	/* The published TUF repositories as the store has them: changes made
	 * through other replicas, or while this daemon was down. Not fatal:
	 * on a shared store the TUF timer tries again every second; on SQLite
	 * this repairs what a crash between storing and publishing left. */
	(void)tuf_materialise(&srv, 1); /* logs what failed */
	log_info("start", "version=%s identity=%s policy_version=%llu workers=%u", QS_VERSION,
	         cfg->identity, (unsigned long long)pol->version, cfg->workers);
	/* Readiness: a line for scripts and tests, READY=1 for systemd
	 * (Type=notify; a no-op outside systemd). */
	fprintf(stderr, "qsignd: ready\n");
	sd_notify(0, "READY=1\nSTATUS=serving");

	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		log_info("sighup", "ignored (policy changes go through qsign policy propose)");
	log_info("stop", "signal=%d", sig);
	sd_notify(0, "STOPPING=1");
	tuf_timer_stop();
	maint_stop();
	metrics_http_stop();
	server_stop(&srv);
	requests_cleanup(&srv);
	pthread_rwlock_destroy(&srv.pol_lock);
	pthread_mutex_destroy(&srv.req_mu);
	pthread_mutex_destroy(&srv.hist_mu);
	policy_unref(srv.pol);
	free(srv.identity_spki);
	sigindex_stop(si);
	audit_close(au);
	store_close(st);
	keyring_close(kr);
	config_free(cfg);
	return 0;
}
