/*
 * qsign_cli.h - internal interface between the qsign CLI's command files.
 *
 * qsign.c owns main(), the global options, the top-level command table and
 * the helpers below; each command family lives in its own file
 * (qsign_request.c, qsign_audit.c, ...) and exports one struct command for
 * the table. Not installed: the public API is qsclient.h.
 *
 * Conventions every command follows: <cmd>_main(argc, argv, g) returns an
 * exit code (EXIT_*); argv[0] is the command's name; --json and --help are
 * accepted after it; text that came from the daemon goes through put_safe()
 * or json_text(); errors are printed with errmsg() or report().
 */
#ifndef QSIGN_CLI_H
#define QSIGN_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "qsclient.h"

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_TRANSPORT = 3,
};

/* Global options and environment, resolved by main(). */
struct globals {
	const char *home;
	const char *url;
	const char *principal;
	const char *identity;
	const char *tls_cert, *tls_key, *tls_ca, *tls_server_name;
	int json;
	int timeout_ms;
	const char *server_key; /* --server-key / QSIGN_SERVER_KEY */
	int accept_new;         /* --accept-new: trust a new server without asking */
	/* --wait[=SECONDS] of a command that submits a quorum request: follow
	 * it to its end (wait_ms 0: no limit). Set by the command's options. */
	int wait, wait_ms;
	char *url_buf, *identity_buf, *pin_buf;
};

/* One command or subcommand. Tables end with an entry whose name is NULL. */
struct command {
	const char *name;
	int (*main)(int argc, char **argv, struct globals *g);
	void (*usage)(FILE *f);
	const char *summary;
	/* Subcommands of a group (request, policy, audit), for
	 * `qsign help GROUP SUB`; NULL for a plain command. */
	const struct command *sub;
};

/*
 * Commands defined in their own files. Each family exports its <cmd>_main,
 * <cmd>_usage and, for a group, its NULL-terminated subcommand table; the
 * top-level table of qsign.c holds one line per command.
 */
/* qsign_request.c */
int request_main(int argc, char **argv, struct globals *g);
void request_usage(FILE *f);
extern const struct command request_commands[];
int approve_main(int argc, char **argv, struct globals *g);
void approve_usage(FILE *f);
int reject_main(int argc, char **argv, struct globals *g);
void reject_usage(FILE *f);
int policy_main(int argc, char **argv, struct globals *g);
void policy_usage(FILE *f);
extern const struct command policy_commands[];
/* qsign_ops.c */
int metrics_main(int argc, char **argv, struct globals *g);
void metrics_usage(FILE *f);
/* qsign_audit.c */
int audit_main(int argc, char **argv, struct globals *g);
void audit_usage(FILE *f);
extern const struct command audit_commands[];
/* qsign_keys.c */
int keys_main(int argc, char **argv, struct globals *g);
void keys_usage(FILE *f);
int sigverify_main(int argc, char **argv, struct globals *g);
void sigverify_usage(FILE *f);
/* qsign_tuf.c */
int tuf_main(int argc, char **argv, struct globals *g);
void tuf_usage(FILE *f);
extern const struct command tuf_commands[];

/* qsign_ca.c */
int ca_main(int argc, char **argv, struct globals *g);
void ca_usage(FILE *f);
extern const struct command ca_commands[];

/* qsign_complete.c */
int completion_main(int argc, char **argv, struct globals *g);
void completion_usage(FILE *f);

/* qsign.c: the top-level table and usage (global options first). */
extern const struct command qsign_commands[];
void qsign_usage(FILE *f);

extern const char *progname;

/* ------------------------------------------------------------ output */

/* "qsign: <message>\n" on stderr. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print s with control characters replaced by '?' (newlines kept when
 * keep_newlines): strings from the daemon reach a terminal. NULL prints
 * nothing. */
void put_safe(FILE *f, const char *s, int keep_newlines);

/* "a, b, c" (filtered with put_safe), "-" when n is 0, on stdout. */
void put_list(char **v, size_t n);

/* qs_hex(b, n), exiting with EXIT_FAILED when out of memory. Caller
 * free()s. */
char *hex_or_die(const uint8_t *b, size_t n);

/* Dump j (consumed, may be NULL) on stdout with flags and a newline.
 * 0 or -1 (after saying why). */
int json_print(json_t *j, size_t flags);

/* A new JSON array of the n strings v. */
json_t *json_strings(char **v, size_t n);

/* A JSON string of text from the daemon; bytes jansson refuses (invalid
 * UTF-8) become '?'. NULL as "". New reference, NULL when out of memory. */
json_t *json_text(const char *s);

/* Seconds since the epoch as "2026-01-31T12:00:00Z" ("-" for t <= 0). */
void iso_time(int64_t t, char buf[32]);

/* Signature output formats of sign / request fetch. */
enum format { FMT_DEFAULT, FMT_DER, FMT_HEX, FMT_BASE64 };

/* --format NAME; FMT_DEFAULT (after saying why) if unknown. */
enum format parse_format(const char *s);

/* opt_fn for --format NAME into *(enum format *)ctx. */
int format_opt(void *ctx, int ch, char *arg);

/* Write sig in fmt to path (NULL: stdout; FMT_DEFAULT: hex on a terminal,
 * DER otherwise). 0 or -1 (after saying why). */
int write_sig(const char *path, enum format fmt, const uint8_t *sig, size_t len);

/* ------------------------------------------------------------ daemon */

/* Turn a library error on c (NULL: none yet) into a message on stderr and
 * an exit code: EXIT_FAILED for a refusal or a local failure,
 * EXIT_TRANSPORT (with a hint about what to check) when the daemon could
 * not be reached. */
int report(const struct globals *g, qsc_client *c, int r);

/* Resolve the environment defaults, load the identity and connect as
 * g->principal. EXIT_OK with *out owning the client (qsc_close()), else
 * the exit code after saying why. */
int connect_client(struct globals *g, qsc_client **out);

/* ------------------------------------------------------------ input */

/* Read a whole file ("-" = stdin) of at most max bytes; 0 or -1 (after
 * saying why). *out is malloc'd. */
int read_input(const char *path, size_t max, uint8_t **out, size_t *out_len);

/* 64 hex characters into 32 bytes; 0 or -1. */
int parse_digest(const char *s, uint8_t out[32]);
/* A digest of len bytes: exactly 2 * len hex characters. 0 or -1. */
int parse_digest_of(const char *s, size_t len, uint8_t *out);
/* The --hash option's value (NULL: sha256): its canonical name, digest
 * length and EVP_MD (qs_hash_lookup), or NULL after saying why. */
const char *parse_hash(const char *name, size_t *len, const EVP_MD **md);

/* Exactly one of the alternative options an (value a) and bn (value b)
 * of command cmd: 0, or -1 after saying "cmd needs -f FILE or -d HEX" (or
 * "not both"). */
int need_one(const char *cmd, const char *an, const char *a, const char *bn, const char *b);

/* Whole seconds 1..86400 into *ms; 0 or -1. */
int parse_timeout(const char *s, int *ms);

/* ------------------------------------------------------------ options */

/* Takes one option of a command into ctx (ch as getopt_long returns it,
 * arg its argument or NULL): 0 to go on, else an exit code after saying
 * why. */
typedef int opt_fn(void *ctx, int ch, char *arg);

/* An option that only keeps its argument (*str = arg) or only sets a flag
 * (*flag = 1). Tables end with ch 0. */
struct opt_keep {
	int ch;
	const char **str;
	int *flag;
};

/* A command's options: short ones ("r:k:", NULL: none), the long table
 * (NULL: none; without --json and --help, which every command takes;
 * WAIT_OPTION for --wait[=S]), the options that only keep their argument,
 * fn(ctx, ...) for the others, and how many operands (max -1: any). */
struct opts {
	const char *shorts;
	const struct option *longs;
	const struct opt_keep *keep;
	opt_fn *fn;
	void *ctx;
	int min_args, max_args;
};

/*
 * The one option loop of the CLI (qsign_opts.c): getopt_long over argv from
 * a fresh state (options may follow operands); --json sets g->json, --help
 * prints usage on stdout, --wait[=S] sets g->wait; the command's own
 * options as o says. An unknown option, or an operand count outside
 * o->min_args..max_args, prints usage on stderr. -1 to go on with the
 * operands argv[optind..argc-1], else the exit code.
 */
int parse_opts(int argc, char **argv, struct globals *g, void (*usage)(FILE *),
               const struct opts *o);

/* Only --json and --help, and exactly nargs operands. */
#define PLAIN_OPTS(nargs) (&(const struct opts){NULL, NULL, NULL, NULL, NULL, (nargs), (nargs)})

/* ------------------------------------------------------------ quorum requests */

/* The --wait[=SECONDS] option of every command that submits a quorum
 * request: {"wait", optional_argument, NULL, 'W'} in its table, and
 * parse_wait(g, optarg) for 'W'. 0 or -1 (after saying why). */
/* clang-format off */
#define WAIT_OPTION {"wait", optional_argument, NULL, 'W'}
/* clang-format on */
int parse_wait(struct globals *g, const char *arg);

/* The one ending of every command that submits a quorum request (request
 * submit, policy propose, tuf init/promote/rotate-key/..., ca ...): the id
 * on stdout (--json: the REQUEST with "next"), its progress and the next
 * step on stderr, in the same words for all; with g->wait it follows the
 * request as `request wait` does (progress on stderr) and, once signed,
 * says what was signed, applied or published and where (--json: REQUEST
 * with "result"). Returns the exit code (as `request wait` with --wait). */
int submitted(struct globals *g, qsc_client *c, const Qsign__V1__RequestView *v);

/* ------------------------------------------------------------ time */

uint64_t mono_ms(void);
void sleep_ms(unsigned ms);

/* ------------------------------------------------------------ groups */

/* The entry called name in a NULL-terminated table, or NULL. */
const struct command *find_command(const struct command *cmds, const char *name);

/* The entry of cmds closest to a mistyped name (a unique-enough prefix or
 * at most two edits away), or NULL. */
const struct command *closest_command(const struct command *cmds, const char *name);

/* "unknown WHAT NAME: did you mean X? (see HELP)" on stderr. */
void unknown_command(const char *what, const char *name, const struct command *cmds,
                     const char *help);

/* Usage of a group: its subcommands with their summaries and an example
 * (printed after "example: qsign "). */
void group_usage(FILE *f, const char *group, const struct command *cmds, const char *example);

/* Dispatch argv[1] of a group to its subcommand (argv shifted by one). */
int group_main(int argc, char **argv, struct globals *g, const struct command *cmds,
               void (*usage_fn)(FILE *));

#endif
