/*
 * fault.h - named fault points for crash and failure tests.
 *
 * The daemon's code marks the points where a crash or an error must not
 * break a promise (between a signature's audit entry and its state update,
 * between the two steps of a log repair, ...). In the default build every
 * point is inert: qs_fault() returns 0. Builds with the CMake option
 * QS_FAULT_INJECTION (and the test-only binary qsignd-fault, which links
 * its own copy of fault.c compiled with it) arm the points named in the
 * environment variable QS_FAULT, a comma-separated list.
 */
#ifndef QS_FAULT_H
#define QS_FAULT_H

/* 1 if the fault point `point` is armed, else 0. */
int qs_fault(const char *point);

/* If `point` is armed, die at once as if killed with SIGKILL (no clean-up,
 * nothing flushed). */
void qs_fault_crash(const char *point);

#endif
