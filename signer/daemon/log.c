#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog = "qsignd";
static enum log_level minlvl = LOG_LVL_INFO;

void
log_init(const char *progname, enum log_level min)
{
	prog = progname;
	minlvl = min;
}

void
log_rename(const char *progname)
{
	prog = progname;
}

void
log_emit(enum log_level lvl, const char *func, int line, const char *event, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	static const int prio[] = {7, 6, 4, 3}; /* LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */
	static int journal = -1;
	char msg[1024];
	va_list ap;

	if (lvl < minlvl)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line: stdio locks the stream, so lines from worker
	 * threads never interleave. Under systemd (stderr is the journal,
	 * JOURNAL_STREAM set) a "<N>" prefix carries the syslog priority and the
	 * journal adds name and pid itself. */
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	if (journal)
		fprintf(stderr, "<%d>%s: %s %s %s (%s:%d)\n", prio[lvl], prog, names[lvl], event,
		        msg, func, line);
	else
		fprintf(stderr, "%s[%d]: %s %s %s (%s:%d)\n", prog, (int)getpid(), names[lvl],
		        event, msg, func, line);
}

const char *
log_peerstr(const char *s, char *buf, unsigned cap)
{
	unsigned i = 0;

	if (cap == 0)
		return "";
	if (s == NULL)
		s = "(null)";
	for (; s[i] != '\0' && i < 64 && i + 1 < cap; i++)
		buf[i] = (s[i] >= 0x21 && s[i] <= 0x7e) ? s[i] : '?';
	if (s[i] != '\0' && i + 4 < cap) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}
