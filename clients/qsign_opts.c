/*
 * qsign_opts.c - the CLI's one option loop. Every command hands its own
 * options (a getopt_long table and a function that takes one) to
 * parse_opts(), which adds what every command shares: --json, --help,
 * --wait[=S] where the table has WAIT_OPTION, a fresh getopt state, and the
 * count of operands.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "qsign_cli.h"

/* Longest getopt_long table of a command (the audit subcommands' shared
 * one has 17 entries). */
#define MAX_OPTS 32

/* The keep entry for option ch, or NULL. */
static const struct opt_keep *
kept(const struct opt_keep *k, int ch)
{
	for (; k != NULL && k->ch != 0; k++)
		if (k->ch == ch)
			return k;
	return NULL;
}

int
parse_opts(int argc, char **argv, struct globals *g, void (*usage)(FILE *), const struct opts *o)
{
	const struct option *opts = o->longs;
	const struct opt_keep *k;
	struct option all[MAX_OPTS + 3];
	char shorts[64];
	size_t n = 0;
	int ch, r;

	for (; opts != NULL && opts[n].name != NULL; n++) {
		if (n == MAX_OPTS) {
			errmsg("%s: too many options (MAX_OPTS)", argv[0]);
			return EXIT_FAILED;
		}
		all[n] = opts[n];
	}
	all[n++] = (struct option){"json", no_argument, NULL, 'J'};
	all[n++] = (struct option){"help", no_argument, NULL, 'h'};
	all[n] = (struct option){NULL, 0, NULL, 0};
	snprintf(shorts, sizeof(shorts), "%sh", o->shorts != NULL ? o->shorts : "");
	/* 0, not 1: glibc then starts afresh and reads this optstring, not
	 * main()'s "+" (stop at the first operand), so options may follow
	 * operands in every command. */
	optind = 0;
	while ((ch = getopt_long(argc, argv, shorts, all, NULL)) != -1) {
		switch (ch) {
		case 'J':
			g->json = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'W':
			if (parse_wait(g, optarg) != 0)
				return EXIT_USAGE;
			break;
		case '?':
		case ':':
			usage(stderr);
			return EXIT_USAGE;
		default:
			if ((k = kept(o->keep, ch)) != NULL) {
				if (k->str != NULL)
					*k->str = optarg;
				if (k->flag != NULL)
					*k->flag = 1;
			} else if (o->fn == NULL) {
				usage(stderr);
				return EXIT_USAGE;
			} else if ((r = o->fn(o->ctx, ch, optarg)) != 0) {
				return r;
			}
		}
	}
	if (argc - optind < o->min_args || (o->max_args >= 0 && argc - optind > o->max_args)) {
		if (o->max_args >= 0 && argc - optind > o->max_args)
			errmsg("unexpected argument %s", argv[optind + o->max_args]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}
