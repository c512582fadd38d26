/*
 * Fault points (fault.h). This file is compiled twice: inert into the
 * daemon's library, and with QS_FAULT_INJECTION into test binaries, whose
 * own copy the linker takes instead of the library's.
 */
#include "fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef QS_FAULT_INJECTION
int
qs_fault(const char *point)
{
	const char *list = getenv("QS_FAULT"), *p;
	size_t n = strlen(point);

	for (p = list; p != NULL && *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
		if (strcspn(p, ",") == n && strncmp(p, point, n) == 0)
			return 1;
	return 0;
}
#else
int
qs_fault(const char *point)
{
	(void)point;
	return 0;
}
#endif

void
qs_fault_crash(const char *point)
{
	if (!qs_fault(point))
		return;
	kill(getpid(), SIGKILL);
	_exit(137); /* unreachable unless the signal was refused */
}
