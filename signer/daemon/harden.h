/*
 * harden.h - process hardening of qsignd (STYLE.md §7).
 *
 *   harden_early()      first thing in main: no core dumps, not dumpable
 *                       (no ptrace by same-uid processes), umask 077, fds
 *                       0-2 open and every other inherited fd closed.
 *   harden_drop()       after tokens, state and listeners are open: switch
 *                       to the configured user/group (when started as root).
 *   harden_seccomp()    last (and harden_seccomp_helper() in each signer
 *                       helper once its tokens are open): a syscall allow-list (libseccomp);
 * anything else kills the process (SIGSYS). harden_seccomp_launcher()  in the signer launcher once
 * it is set up: a deny-list, which the helpers it forks inherit (privsep.h says why it cannot be an
 * allow-list).
 */
#ifndef QS_HARDEN_H
#define QS_HARDEN_H

void harden_early(void);

/* Become user:group (names or numeric ids; group NULL = the user's primary
 * group), giving ownership of `dirs` (NULL-terminated, recursively) to it
 * first so the state stays writable. No-op when user is NULL. Refuses to
 * run as root without a user only if require_drop. Errors: QS_ERR_INVALID
 * (unknown user/group), QS_ERR_DENIED (setuid failed / could regain root). */
int harden_drop(const char *user, const char *group, const char *const *dirs);

/* Install the allow-list filter for this process and all its threads. In
 * sanitizer builds (whose runtimes need ptrace and more) it is skipped and
 * the caller is told so (returns 1). Errors: QS_ERR_INTERNAL. */
int harden_seccomp(void);

/* The signer helper's filter (privsep.h): the same list without the
 * calls only a server needs (bind, listen, accept, socketpair, kill).
 * Returns as harden_seccomp. */
int harden_seccomp_helper(void);

/* The signer launcher's filter (privsep.h): default allow; execve,
 * ptrace, process_vm_*, mount and the other file system and namespace
 * calls, module and kexec loading, bpf, perf_event_open, the key
 * syscalls, userfaultfd, personality, io_uring, reboot, swap, clock and
 * host name setting, I/O ports, clone with CLONE_NEW*, TIOCSTI, and any
 * call through another ABI (i386, x32) kill the process; clone3 fails
 * ENOSYS (glibc then uses clone, whose flags the filter sees). Skipped in
 * sanitizer builds like the others (returns 1). Errors: QS_ERR_INTERNAL. */
int harden_seccomp_launcher(void);

/* For tests: install the filter and then make a forbidden call. Does not
 * return if the filter works. */
void harden_seccomp_selftest(void);

/* For tests: install the launcher's filter even in sanitizer builds and
 * return (0, or QS_ERR_INTERNAL); the caller then makes its own calls. */
int harden_seccomp_launcher_force(void);

#endif
