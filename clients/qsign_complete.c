/*
 * qsign_complete.c - `qsign completion bash|zsh`: shell completion written
 * from the command table itself, so that a new command, subcommand or
 * option is completed without anyone editing a script. The options of each
 * (sub)command are read from its usage text's synopsis and option lines
 * (the text `--help` prints), the principals from $QSIGN_HOME/demo at
 * completion time. ops/qsign.bash-completion and ops/qsign.zsh-completion
 * are this output (tests/ops/completion.sh checks they are current).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qsign_cli.h"

/* Options whose value is a file or directory (the shell completes paths),
 * and options whose value is a principal. Every other option's value is
 * left to the user. */
static const char file_opts[] = "-i|-f|-o|-s|--tls-cert|--tls-key|--tls-ca|--server-key|"
                                "--csr|--chain|--root|--log-key|--state|--offline|"
                                "--public-key|--key";
static const char principal_opts[] = "-p|--principal|--holder|--submitter";
/* Global options that take a value (skipped when finding the command). */
static const char global_value_opts[] = "-s|-p|-i|--server|--principal|--identity|--timeout|"
                                        "--tls-cert|--tls-key|--tls-ca|--tls-server-name|"
                                        "--server-key";

void
completion_usage(FILE *f)
{
	fprintf(f,
	        "usage: %s completion bash|zsh\n"
	        "  Print the completion script for bash or zsh, made from qsign's own command\n"
	        "  table: commands, subcommands, each one's options, and principals from\n"
	        "  $QSIGN_HOME/demo. No daemon is needed.\n"
	        "example: source <(%s completion bash)     # or, in zsh: source <(%s completion "
	        "zsh)\n",
	        progname, progname, progname);
}

/* Is the option word w (length n) already in the space-separated list? */
static int
listed(const char *list, const char *w, size_t n)
{
	for (const char *p = list; (p = strstr(p, " ")) != NULL; p++)
		if (strncmp(p + 1, w, n) == 0 && (p[1 + n] == ' ' || p[1 + n] == '\0'))
			return 1;
	return 0;
}

/* The options a usage text names, as " -a --bee ...": words of its
 * synopsis (the "usage:" line and the lines continuing it) and of its
 * option lines (indented, starting with '-'), never of the prose. */
static char *
options_of(void (*usage)(FILE *))
{
	char *text = NULL, *list = NULL, *save = NULL, *line;
	size_t tlen = 0, llen = 0;
	FILE *f = open_memstream(&text, &tlen), *out;
	int in_synopsis = 0;

	if (f == NULL)
		return NULL;
	usage(f);
	if (fclose(f) != 0 || (out = open_memstream(&list, &llen)) == NULL) {
		free(text);
		return NULL;
	}
	fputc(' ', out);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		const char *p = line;
		while (*p == ' ')
			p++;
		/* "usage: qsign ..." and a second form "       qsign ..." */
		if (strncmp(line, "usage:", 6) == 0 ||
		    (p == line + 7 && strncmp(p, progname, strlen(progname)) == 0))
			in_synopsis = 1;
		else if (!(in_synopsis && p > line + 2 && (*p == '[' || *p == '(' || *p == '-')) &&
		         !(p == line + 2 && *p == '-'))
			in_synopsis = 0;
		if (!in_synopsis && !(p == line + 2 && *p == '-'))
			continue;
		/* Global options are completed before the command, not after. */
		if (strstr(line, "GLOBAL OPTIONS]") != NULL)
			p = strstr(line, "GLOBAL OPTIONS]") + 15;
		for (; *p != '\0'; p++) {
			size_t n = 0;
			if (*p != '-' || (p > line && isalnum((unsigned char)p[-1])))
				continue;
			while (p[n] == '-' && n < 2)
				n++;
			if (!isalpha((unsigned char)p[n]))
				continue;
			while (isalnum((unsigned char)p[n]) || p[n] == '-')
				n++;
			fflush(out);
			if (!listed(list, p, n))
				fprintf(out, "%.*s ", (int)n, p);
			p += n - 1;
		}
	}
	fflush(out);
	if (!listed(list, "--help", 6))
		fputs("--help ", out);
	fclose(out);
	free(text);
	if (list != NULL && llen > 0 && list[strlen(list) - 1] == ' ')
		list[strlen(list) - 1] = '\0';
	return list;
}

/* The words of a table's names, space-separated. */
static void
put_names(FILE *f, const struct command *cmds)
{
	for (size_t i = 0; cmds[i].name != NULL; i++)
		fprintf(f, "%s%s", i > 0 ? " " : "", cmds[i].name);
}

/* One "NAME) WORDS ;;" line per (sub)command, WORDS from emit(). */
static int
put_cases(FILE *f, const struct command *cmds, const char *indent, const char *assign,
          const char *end)
{
	for (size_t i = 0; cmds[i].name != NULL; i++) {
		char *o = options_of(cmds[i].usage);
		if (o == NULL)
			return -1;
		fprintf(f, "%s%s) %s\"%s\"%s ;;\n", indent, cmds[i].name, assign, o + 1, end);
		free(o);
	}
	return 0;
}

/* The body of the completion function's `case $cmd`, after its first
 * pattern's opening quote: the top-level words (globals: the global
 * options), one pattern per command and, for a group, a nested case on
 * the subcommand; ends inside `help`'s words. bash and zsh differ only in
 * quoting. Frees globals. */
static int
put_table(FILE *f, char *globals, int zsh)
{
	const char *sub = zsh ? "$sub" : "\"$sub\"", *empty = zsh ? "''" : "\"\"",
	           *test = zsh ? "[[ -z $sub ]]" : "[ -z \"$sub\" ]";

	put_names(f, qsign_commands);
	fprintf(f, " help %s\" ;;\n", globals + 1);
	free(globals);
	for (size_t i = 0; qsign_commands[i].name != NULL; i++) {
		const struct command *c = &qsign_commands[i];
		if (c->sub == NULL) {
			char *o = options_of(c->usage);
			if (o == NULL)
				return -1;
			fprintf(f, "\t%s) w=\"%s%s\" ;;\n", c->name,
			        c->main == completion_main ? "bash zsh " : "", o + 1);
			free(o);
			continue;
		}
		fprintf(f, "\t%s)\n\t\tcase %s in\n\t\t%s) w=\"", c->name, sub, empty);
		put_names(f, c->sub);
		fputs("\" ;;\n", f);
		if (put_cases(f, c->sub, "\t\t", "w=", "") != 0)
			return -1;
		fputs("\t\tesac ;;\n", f);
	}
	fprintf(f, "\thelp) %s && w=\"", test);
	put_names(f, qsign_commands);
	return 0;
}

static int
bash_script(FILE *f)
{
	char *globals = options_of(qsign_usage);

	if (globals == NULL)
		return -1;
	fprintf(f,
	        "# bash completion for qsign and qsignd. Generated by `qsign completion bash`\n"
	        "# from qsign's command table: do not edit (tests/ops/completion.sh checks\n"
	        "# that it is current). Install as /usr/share/bash-completion/completions/qsign\n"
	        "# (the .deb does), or source it.\n"
	        "_qsign_principals() {\n"
	        "\tlocal f\n"
	        "\tfor f in \"${QSIGN_HOME:-./.qsign}\"/demo/*.key; do\n"
	        "\t\t[ -e \"$f\" ] || continue\n"
	        "\t\tf=${f##*/}\n"
	        "\t\techo \"${f%%.key}\"\n"
	        "\tdone\n"
	        "}\n"
	        "_qsign() {\n"
	        "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} w=\"\"\n"
	        "\tcase \"$prev\" in\n"
	        "\t%s) COMPREPLY=($(compgen -W \"$(_qsign_principals)\" -- \"$cur\")); return ;;\n"
	        "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
	        "\tesac\n"
	        "\t# The first word that is not an option (or a global option's value) is\n"
	        "\t# the command, the next one its subcommand.\n"
	        "\tlocal i cmd=\"\" sub=\"\"\n"
	        "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	        "\t\tcase \"${COMP_WORDS[i]}\" in\n"
	        "\t\t%s) [ -z \"$cmd\" ] && ((i++)) ;;\n"
	        "\t\t-*) ;;\n"
	        "\t\t*) if [ -z \"$cmd\" ]; then cmd=${COMP_WORDS[i]}; elif [ -z \"$sub\" ]; then "
	        "sub=${COMP_WORDS[i]}; fi ;;\n"
	        "\t\tesac\n"
	        "\tdone\n"
	        "\tcase \"$cmd\" in\n"
	        "\t\"\") w=\"",
	        principal_opts, file_opts, global_value_opts);
	if (put_table(f, globals, 0) != 0)
		return -1;
	fputs("\" ;;\n"
	      "\tesac\n"
	      "\tCOMPREPLY=($(compgen -W \"$w\" -- \"$cur\"))\n"
	      "\t[ ${#COMPREPLY[@]} -gt 0 ] || COMPREPLY=($(compgen -f -- \"$cur\"))\n"
	      "}\n"
	      "complete -F _qsign qsign\n"
	      "\n"
	      "_qsignd() {\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	      "\tcase \"$prev\" in\n"
	      "\t-c | -o | -i) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
	      "\tesac\n"
	      "\tCOMPREPLY=($(compgen -W \"-c --check --help --version backup restore --force "
	      "migrate-store --to\" "
	      "-- \"$cur\"))\n"
	      "}\n"
	      "complete -F _qsignd qsignd\n",
	      f);
	return 0;
}

static int
zsh_script(FILE *f)
{
	char *globals = options_of(qsign_usage);

	if (globals == NULL)
		return -1;
	fprintf(f,
	        "#compdef qsign qsignd\n"
	        "# zsh completion for qsign and qsignd. Generated by `qsign completion zsh`\n"
	        "# from qsign's command table: do not edit (tests/ops/completion.sh checks\n"
	        "# that it is current). Install as _qsign in a directory of $fpath\n"
	        "# (/usr/share/zsh/vendor-completions/_qsign, as the .deb does).\n"
	        "_qsign_principals() {\n"
	        "\tlocal f\n"
	        "\tfor f in ${QSIGN_HOME:-./.qsign}/demo/*.key(N); do\n"
	        "\t\tprint -r -- ${${f:t}%%.key}\n"
	        "\tdone\n"
	        "}\n"
	        "_qsign() {\n"
	        "\tlocal prev=${words[CURRENT-1]} cmd= sub= w= i\n"
	        "\tif [[ $service == qsignd ]]; then\n"
	        "\t\tcase $prev in\n"
	        "\t\t-c|-o|-i) _files; return ;;\n"
	        "\t\tesac\n"
	        "\t\tcompadd -- -c --check --help --version backup restore --force migrate-store "
	        "--to\n"
	        "\t\treturn\n"
	        "\tfi\n"
	        "\tcase $prev in\n"
	        "\t%s) compadd -- $(_qsign_principals); return ;;\n"
	        "\t%s) _files; return ;;\n"
	        "\tesac\n"
	        "\tfor ((i = 2; i < CURRENT; i++)); do\n"
	        "\t\tcase ${words[i]} in\n"
	        "\t\t%s) [[ -z $cmd ]] && ((i++)) ;;\n"
	        "\t\t-*) ;;\n"
	        "\t\t*) if [[ -z $cmd ]]; then cmd=${words[i]}; elif [[ -z $sub ]]; then "
	        "sub=${words[i]}; fi ;;\n"
	        "\t\tesac\n"
	        "\tdone\n"
	        "\tcase $cmd in\n"
	        "\t'') w=\"",
	        principal_opts, file_opts, global_value_opts);
	if (put_table(f, globals, 1) != 0)
		return -1;
	fputs("\" ;;\n"
	      "\tesac\n"
	      "\tif [[ -n $w ]]; then\n"
	      "\t\tcompadd -- ${=w}\n"
	      "\telse\n"
	      "\t\t_files\n"
	      "\tfi\n"
	      "}\n"
	      "_qsign \"$@\"\n",
	      f);
	return 0;
}

int
completion_main(int argc, char **argv, struct globals *g)
{
	int r;

	(void)g;
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		completion_usage(stdout);
		return EXIT_OK;
	}
	if (argc != 2 || (strcmp(argv[1], "bash") != 0 && strcmp(argv[1], "zsh") != 0)) {
		completion_usage(stderr);
		return EXIT_USAGE;
	}
	r = strcmp(argv[1], "bash") == 0 ? bash_script(stdout) : zsh_script(stdout);
	if (r != 0) {
		errmsg("out of memory");
		return EXIT_FAILED;
	}
	return EXIT_OK;
}
