/*
 * qsign_cli_test.c - the qsign command line without a daemon: usage and
 * exit codes, keygen, identity checks, and the "cannot reach qsignd" path.
 * Runs $QS_BIN/qsign in a scratch directory with a clean environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../proto/check.h"
#include "qs_err.h"
#include "qsclient.h"
#include "statement.h"

static char qsign[4096], dir[] = "/tmp/qsign-cli-test.XXXXXX";
static char out[65536], err[65536];

static void
slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

static void
put_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		abort();
	fchmod(fd, mode);
	close(fd);
}

/*
 * Run qsign with argv (NULL-terminated), stdin from `in` (may be NULL),
 * extra environment "K=V" strings in env (NULL-terminated, may be NULL).
 * Returns the exit code; stdout/stderr land in out/err.
 */
static int
run(const char *in, const char *const *env, const char *const *argv)
{
	char pin[4200], pout[4200], perr[4200];
	const char *args[64];
	int status = 0, i = 0;
	pid_t pid;

	snprintf(pin, sizeof(pin), "%s/.stdin", dir);
	snprintf(pout, sizeof(pout), "%s/.stdout", dir);
	snprintf(perr, sizeof(perr), "%s/.stderr", dir);
	put_file(pin, in != NULL ? in : "", 0600);
	args[i++] = qsign;
	for (; argv[i - 1] != NULL && i < 63; i++)
		args[i] = argv[i - 1];
	args[i] = NULL;
	fflush(NULL);
	if ((pid = fork()) < 0)
		abort();
	if (pid == 0) {
		int fi = open(pin, O_RDONLY), fo = open(pout, O_WRONLY | O_CREAT | O_TRUNC, 0600),
		    fe = open(perr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fi < 0 || fo < 0 || fe < 0 || chdir(dir) != 0)
			_exit(127);
		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		clearenv();
		setenv("PATH", "/usr/bin:/bin", 1);
		for (const char *const *e = env; e != NULL && *e != NULL; e++)
			putenv((char *)*e);
		execv(qsign, (char *const *)args);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	slurp(pout, out, sizeof(out));
	slurp(perr, err, sizeof(err));
	if (!WIFEXITED(status)) {
		fprintf(stderr, "qsign %s died (status 0x%x)\n", argv[0] ? argv[0] : "", status);
		return -1;
	}
	return WEXITSTATUS(status);
}

#define RUN(in, env, ...) run(in, env, (const char *const[]){__VA_ARGS__, NULL})
#define HAS(buf, s) (strstr((buf), (s)) != NULL)

static void
check_pubkey(const char *pem, const char *alg)
{
	EVP_PKEY *pk = NULL;

	CHECK_EQ(qs_pubkey_from_pem(pem, strlen(pem), &pk), 0);
	if (pk != NULL)
		CHECK_STR(qs_pubkey_alg(pk), alg);
	EVP_PKEY_free(pk);
}

static void
test_usage(void)
{
	const char *cmds[] = {"keygen", "info", "keys", "sign", "sign-batch", "approve", "reject"};
	const char *request_cmds[] = {"submit", "list", "show", "cancel", "wait", "fetch"};
	const char *policy_cmds[] = {"show", "propose"};

	CHECK_EQ(RUN(NULL, NULL, NULL), 2);
	CHECK(HAS(err, "usage:"));
	CHECK_EQ(RUN(NULL, NULL, "--help"), 0);
	CHECK(HAS(out, "usage:") && HAS(out, "example:"));
	CHECK_EQ(RUN(NULL, NULL, "-h"), 0);
	CHECK_EQ(RUN(NULL, NULL, "frobnicate"), 2);
	CHECK(HAS(err, "unknown command frobnicate"));
	CHECK_EQ(RUN(NULL, NULL, "--no-such-option", "info"), 2);
	CHECK_EQ(RUN(NULL, NULL, "--timeout", "0", "info"), 2);
	CHECK_EQ(RUN(NULL, NULL, "--timeout", "3x", "info"), 2);
	CHECK_EQ(RUN(NULL, NULL, "help", "nope"), 2);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		CHECK_EQ(RUN(NULL, NULL, cmds[i], "--help"), 0);
		CHECK(HAS(out, "usage:") && HAS(out, "example:"));
		CHECK_EQ(RUN(NULL, NULL, cmds[i], "-h"), 0);
		CHECK_EQ(RUN(NULL, NULL, "help", cmds[i]), 0);
		CHECK(HAS(out, "example:"));
		CHECK_EQ(RUN(NULL, NULL, cmds[i], "--bogus"), 2);
	}
	/* Command groups: help for the group and for each subcommand. */
	for (size_t i = 0; i < sizeof(request_cmds) / sizeof(request_cmds[0]); i++) {
		CHECK_EQ(RUN(NULL, NULL, "request", request_cmds[i], "--help"), 0);
		CHECK(HAS(out, "usage:") && HAS(out, "example:"));
		CHECK_EQ(RUN(NULL, NULL, "help", "request", request_cmds[i]), 0);
		CHECK(HAS(out, "example:"));
		CHECK_EQ(RUN(NULL, NULL, "request", request_cmds[i], "--bogus"), 2);
	}
	for (size_t i = 0; i < sizeof(policy_cmds) / sizeof(policy_cmds[0]); i++) {
		CHECK_EQ(RUN(NULL, NULL, "policy", policy_cmds[i], "-h"), 0);
		CHECK(HAS(out, "usage:") && HAS(out, "example:"));
		CHECK_EQ(RUN(NULL, NULL, "policy", policy_cmds[i], "--bogus"), 2);
	}
	CHECK_EQ(RUN(NULL, NULL, "request", "--help"), 0);
	CHECK(HAS(out, "submit") && HAS(out, "fetch") && HAS(out, "example:"));
	CHECK_EQ(RUN(NULL, NULL, "help", "policy"), 0);
	CHECK(HAS(out, "propose"));
	CHECK_EQ(RUN(NULL, NULL, "request"), 2);
	CHECK_EQ(RUN(NULL, NULL, "request", "frob"), 2);
	CHECK(HAS(err, "unknown request subcommand frob"));
	CHECK_EQ(RUN(NULL, NULL, "help", "request", "frob"), 2);
	CHECK_EQ(RUN(NULL, NULL, "policy"), 2);
	/* Commands that talk to the daemon need a principal. */
	CHECK_EQ(RUN(NULL, NULL, "info"), 2);
	CHECK(HAS(err, "no principal"));
	CHECK_EQ(RUN(NULL, NULL, "info", "extra"), 2);
}

static void
test_keygen(void)
{
	const char *umask0[] = {NULL};
	struct stat st;
	char path[4200], before[4096], after[4096];
	json_t *j;

	(void)umask0;
	CHECK_EQ(RUN(NULL, NULL, "keygen"), 2);
	CHECK_EQ(RUN(NULL, NULL, "keygen", "-t", "rsa", "-o", "r.key"), 2);
	CHECK(access("r.key", F_OK) != 0);

	CHECK_EQ(RUN(NULL, NULL, "keygen", "-t", "ed25519", "-o", "ed.key"), 0);
	check_pubkey(out, "ed25519");
	snprintf(path, sizeof(path), "%s/ed.key", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	CHECK_EQ(RUN(NULL, NULL, "keygen", "-o", "ec.key"), 0);
	check_pubkey(out, "ecdsa-p256");
	snprintf(path, sizeof(path), "%s/ec.key", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* Never overwrite: exit 1, the file is untouched. */
	slurp(path, before, sizeof(before));
	CHECK_EQ(RUN(NULL, NULL, "keygen", "-t", "ed25519", "-o", "ec.key"), 1);
	CHECK(HAS(err, "refusing to overwrite"));
	slurp(path, after, sizeof(after));
	CHECK_STR(before, after);

	CHECK_EQ(RUN(NULL, NULL, "--json", "keygen", "-t", "ed25519", "-o", "j.key"), 0);
	j = json_loads(out, 0, NULL);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "algorithm")), "ed25519");
	if (json_string_value(json_object_get(j, "public_pem")) != NULL)
		check_pubkey(json_string_value(json_object_get(j, "public_pem")), "ed25519");
	else
		CHECK(!"public_pem missing");
	json_decref(j);
	CHECK_EQ(RUN(NULL, NULL, "keygen", "--json", "-o", "j2.key"), 0);
	j = json_loads(out, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(j, "algorithm")), "ecdsa-p256");
	json_decref(j);
}

static void
test_sign_args(void)
{
	const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
	const char *nothex = "000000000000000000000000000000000000000000000000000000000000000g";
	const char *env[] = {"QSIGN_PRINCIPAL=ci", NULL};

	/* All checked before any connection is attempted (no daemon here:
	 * reaching the network would exit 3). */
	CHECK_EQ(RUN(NULL, env, "sign", "-d", zero), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci"), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci", "-d", zero, "-f", "x"), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci", "-d", "00"), 2);
	CHECK(HAS(err, "64 hex"));
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci", "-d", nothex), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci", "-f", "/nonexistent/file"), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "ci", "-d", zero, "--format", "pem"), 2);
	CHECK_EQ(RUN(NULL, env, "sign", "-r", "bad role", "-d", zero), 2);

	CHECK_EQ(RUN(NULL, env, "sign-batch"), 2);
	CHECK_EQ(RUN("", env, "sign-batch", "-r", "ci"), 2);
	CHECK(HAS(err, "no digests"));
	CHECK_EQ(RUN("0000000000000000000000000000000000000000000000000000000000000000\nxyz\n", env,
	             "sign-batch", "-r", "ci"),
	         2);
	CHECK(HAS(err, "line 2"));
	CHECK_EQ(RUN(NULL, env, "sign-batch", "-r", "ci", "/nonexistent/file"), 2);
}

static void
test_request_args(void)
{
	const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
	const char *env[] = {"QSIGN_PRINCIPAL=ci", NULL};
	char big[QSC_MAX_REQUEST_TEXT + 2]; /* one byte over the limit */

	/* Everything below is refused before any connection is attempted
	 * (there is no daemon: reaching the network would exit 3). */
	put_file("blob.bin", "abc", 0600);
	put_file("notjson.json", "{ not json", 0600);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-f", "blob.bin"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-f", "blob.bin", "-d", zero),
	         2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-d", "00"), 2);
	CHECK(HAS(err, "64 hex"));
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "bad role", "-d", zero), 2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-f", "/nonexistent/x"), 2);
	CHECK_EQ(
	        RUN(NULL, env, "request", "submit", "-r", "release", "-f", "blob.bin", "-k", "tuf"),
	        2);
	CHECK(HAS(err, "unknown payload kind tuf"));
	/* The payload must suit its kind: 3 bytes are no digest, nor JSON. */
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-f", "blob.bin", "-k",
	             "digest"),
	         2);
	CHECK(HAS(err, "32-byte"));
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-f", "notjson.json", "-k",
	             "policy"),
	         2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-d", zero, "-m",
	             "ring\a bell"),
	         2);
	CHECK(HAS(err, "control characters"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-d", zero, "-m", big), 2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-d", zero, "-t", "a b"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "submit", "-r", "release", "-d", zero, "extra"), 2);

	CHECK_EQ(RUN(NULL, env, "request", "list", "--state", "done"), 2);
	CHECK(HAS(err, "unknown state done"));
	CHECK_EQ(RUN(NULL, env, "request", "list", "--role", "a/b"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "list", "--limit", "0"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "list", "--limit", "-5"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "list", "extra"), 2);

	CHECK_EQ(RUN(NULL, env, "request", "show"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "show", "a", "b"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "show", "../etc"), 2);
	CHECK(HAS(err, "invalid request id"));
	CHECK_EQ(RUN(NULL, env, "request", "cancel"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "cancel", "id with space"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "wait"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "wait", "abc", "--timeout", "0"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "wait", "abc", "--timeout", "soon"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "fetch"), 2);
	CHECK_EQ(RUN(NULL, env, "request", "fetch", "abc", "--format", "pem"), 2);

	CHECK_EQ(RUN(NULL, env, "approve"), 2);
	CHECK_EQ(RUN(NULL, env, "approve", "abc", "def"), 2);
	CHECK_EQ(RUN(NULL, env, "approve", "abc", "--sha256", "00"), 2);
	CHECK(HAS(err, "64 hex"));
	CHECK_EQ(RUN(NULL, env, "approve", "a;b"), 2);
	CHECK_EQ(RUN(NULL, env, "reject", "abc", "-m", "esc\x1b[2J"), 2);
	CHECK_EQ(RUN(NULL, env, "reject"), 2);

	CHECK_EQ(RUN(NULL, env, "policy", "show", "--version", "0"), 2);
	CHECK_EQ(RUN(NULL, env, "policy", "show", "--version", "x"), 2);
	CHECK_EQ(RUN(NULL, env, "policy", "show", "extra"), 2);
	CHECK_EQ(RUN(NULL, env, "policy", "propose"), 2);
	CHECK_EQ(RUN(NULL, env, "policy", "propose", "/nonexistent/p.json"), 2);
	CHECK_EQ(RUN(NULL, env, "policy", "propose", "notjson.json"), 2);
	CHECK(HAS(err, "not JSON"));

	/* Well-formed commands do try the daemon: exit 3 here. */
	CHECK_EQ(RUN(NULL, env, "-s", "ipc:///nonexistent/qsignd.sock", "-i", "ci.key", "request",
	             "list"),
	         3);
}

static void
test_connect(void)
{
	char url[4300], home[4300], keypath[4300];
	const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";

	CHECK_EQ(RUN(NULL, NULL, "keygen", "-o", "ci.key"), 0);
	snprintf(url, sizeof(url), "ipc://%s/no-such.sock", dir);

	CHECK_EQ(RUN(NULL, NULL, "-s", url, "-p", "ci", "-i", "ci.key", "info"), 3);
	CHECK(HAS(err, "is qsignd running") && HAS(err, "no-such.sock"));
	CHECK_EQ(RUN(NULL, NULL, "-s", url, "-p", "ci", "-i", "ci.key", "sign", "-r", "ci", "-d",
	             zero),
	         3);
	CHECK_EQ(RUN(zero, NULL, "-s", url, "-p", "ci", "-i", "ci.key", "sign-batch", "-r", "ci"),
	         3);
	CHECK_EQ(RUN(NULL, NULL, "-s", "tcp://127.0.0.1:1", "-p", "ci", "-i", "ci.key", "keys"), 3);
	CHECK(HAS(err, "127.0.0.1:1"));

	/* Defaults from the environment: QSIGN_HOME gives the socket and the
	 * identity $QSIGN_HOME/demo/<principal>.key. */
	snprintf(home, sizeof(home), "QSIGN_HOME=%s/home", dir);
	snprintf(keypath, sizeof(keypath), "%s/home", dir);
	mkdir(keypath, 0700);
	snprintf(keypath, sizeof(keypath), "%s/home/demo", dir);
	mkdir(keypath, 0700);
	{
		const char *env[] = {home, "QSIGN_PRINCIPAL=ci", NULL};
		/* No key where the default looks: an unknown principal, a
		 * usage error told before anything is sent. */
		CHECK_EQ(RUN(NULL, env, "info"), 2);
		CHECK(HAS(err, "unknown principal ci") && HAS(err, "home/demo/ci.key"));
		CHECK_EQ(RUN(NULL, NULL, "keygen", "-o", "home/demo/ci.key"), 0);
		CHECK_EQ(RUN(NULL, env, "info"), 3);
		CHECK(HAS(err, "home/qsignd.sock"));
	}

	/* An identity others can read is refused before anything is sent. */
	snprintf(keypath, sizeof(keypath), "%s/ci.key", dir);
	chmod(keypath, 0640);
	CHECK_EQ(RUN(NULL, NULL, "-s", url, "-p", "ci", "-i", "ci.key", "info"), 1);
	CHECK(HAS(err, "chmod 600 ci.key"));
	chmod(keypath, 0600);

	/* Not a key; an RSA key; a P-384 key: refused with a clear reason. */
	snprintf(keypath, sizeof(keypath), "%s/junk.key", dir);
	put_file(keypath, "not a key\n", 0600);
	CHECK_EQ(RUN(NULL, NULL, "-s", url, "-p", "ci", "-i", "junk.key", "info"), 1);
	CHECK(HAS(err, "not a PEM private key"));
	{
		EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		FILE *f;
		snprintf(keypath, sizeof(keypath), "%s/p384.key", dir);
		f = fopen(keypath, "w");
		CHECK(f != NULL && PEM_write_PrivateKey(f, rsa, NULL, NULL, 0, NULL, NULL) == 1);
		if (f != NULL)
			fclose(f);
		chmod(keypath, 0600);
		EVP_PKEY_free(rsa);
		CHECK_EQ(RUN(NULL, NULL, "-s", url, "-p", "ci", "-i", "p384.key", "info"), 1);
		CHECK(HAS(err, "Ed25519 or ECDSA P-256"));
	}

	/* tls+tcp:// without the client certificate: said so, exit 1. */
	CHECK_EQ(RUN(NULL, NULL, "-s", "tls+tcp://127.0.0.1:1", "-p", "ci", "-i", "ci.key", "info"),
	         1);
	CHECK(HAS(err, "--tls-cert"));
	CHECK_EQ(RUN(NULL, NULL, "-s", "http://x", "-p", "ci", "-i", "ci.key", "info"), 1);
	CHECK(HAS(err, "unsupported server URL"));
}

int
main(void)
{
	const char *bin = getenv("QS_BIN");

	snprintf(qsign, sizeof(qsign), "%s/qsign", bin != NULL ? bin : ".");
	if (access(qsign, X_OK) != 0) {
		fprintf(stderr, "cannot run %s (set QS_BIN)\n", qsign);
		return 1;
	}
	if (mkdtemp(dir) == NULL || chdir(dir) != 0) {
		perror("mkdtemp");
		return 1;
	}
	test_usage();
	test_keygen();
	test_sign_args();
	test_connect();
	test_request_args();
	if (check_failures == 0) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	} else {
		fprintf(stderr, "scratch directory kept: %s (last stderr: %s)\n", dir, err);
	}
	CHECK_DONE();
}
