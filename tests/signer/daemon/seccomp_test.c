/*
 * Death tests of qsignd's seccomp filters (checked by seccomp_test.sh).
 *
 *   seccomp_test           installs the daemon's allow-list, then calls
 *                          execve: must die by SIGSYS.
 *   seccomp_test launcher  installs the signer launcher's deny-list; a
 *                          forked child starts as a helper does (threads,
 *                          a child process, executable mappings, sockets,
 *                          then the helper's own filter on top); every
 *                          denied call kills a child by SIGSYS, clone3
 *                          fails ENOSYS; then this process calls execve
 *                          and must die by SIGSYS.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harden.h"

#define X32_SYSCALL_BIT 0x40000000L

static int fails;

static void *
thread_main(void *arg)
{
	return arg;
}

/* What a signer helper does before its own filter, in syscalls. */
static int
helper_startup(void)
{
	pthread_t t;
	void *ret = NULL;
	int sv[2], st = 0;
	pid_t pid;
	void *m;

	if (pthread_create(&t, NULL, thread_main, (void *)1) != 0 || pthread_join(t, &ret) != 0 ||
	    ret != (void *)1)
		return 10;
	if ((pid = fork()) < 0)
		return 11;
	if (pid == 0)
		_exit(0);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 12;
	/* dlopen's mapping of a module's code */
	if ((m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) ==
	    MAP_FAILED)
		return 13;
	munmap(m, 4096);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 14;
	close(sv[0]);
	close(sv[1]);
	/* The helper stacks its allow-list (skipped in sanitizer builds). */
	if (harden_seccomp_helper() < 0)
		return 15;
	if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
		return 16;
	return 0;
}

/* Run fn in a child; return its wait status. */
static int
in_child(int (*fn)(void))
{
	int st = 0;
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0)
		_exit(fn());
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

/* Each denied call, with arguments that do nothing should it get through. */
static int
c_execve(void)
{
	char *const argv[] = {"true", NULL};
	return execve("/bin/true", argv, NULL) == 0 ? 0 : 1;
}
static int
c_ptrace(void)
{
	return (int)syscall(SYS_ptrace, -1L, 0, 0, 0);
}
static int
c_process_vm_readv(void)
{
	return (int)syscall(SYS_process_vm_readv, 0, NULL, 0, NULL, 0, 0);
}
static int
c_mount(void)
{
	return (int)syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
}
static int
c_unshare(void)
{
	return (int)syscall(SYS_unshare, 0);
}
static int
c_setns(void)
{
	return (int)syscall(SYS_setns, -1, 0);
}
static int
c_chroot(void)
{
	return (int)syscall(SYS_chroot, NULL);
}
static int
c_bpf(void)
{
	return (int)syscall(SYS_bpf, -1, NULL, 0);
}
static int
c_perf_event_open(void)
{
	return (int)syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}
static int
c_init_module(void)
{
	return (int)syscall(SYS_init_module, NULL, 0, NULL);
}
static int
c_kexec_load(void)
{
	return (int)syscall(SYS_kexec_load, 0, ~0UL, NULL, ~0UL);
}
static int
c_keyctl(void)
{
	return (int)syscall(SYS_keyctl, -1, 0, 0, 0, 0);
}
static int
c_userfaultfd(void)
{
	return (int)syscall(SYS_userfaultfd, ~0);
}
static int
c_personality(void)
{
	return personality(0xffffffff) == -1;
}
static int
c_io_uring_setup(void)
{
	return (int)syscall(SYS_io_uring_setup, 0, NULL);
}
static int
c_reboot(void)
{
	return (int)syscall(SYS_reboot, 0, 0, 0, NULL); /* wrong magic */
}
static int
c_clone_newuser(void)
{
	long r = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	return 1;
}
static int
c_tiocsti(void)
{
	char c = 'x';
	return ioctl(-1, TIOCSTI, &c);
}
static int
c_tiocsti_high_bits(void)
{
	char c = 'x';
	return (int)syscall(SYS_ioctl, -1, (unsigned long)TIOCSTI | (1UL << 32), &c);
}
static int
c_x32_getpid(void)
{
	return (int)syscall(X32_SYSCALL_BIT | SYS_getpid);
}
static int
c_i386_getpid(void)
{
#if defined(__x86_64__)
	long r = 20; /* getpid in the i386 table */
	__asm__ volatile("int $0x80" : "+a"(r) : : "r8", "r9", "r10", "r11", "memory");
	return r > 0 ? 0 : 1;
#else
	return 0;
#endif
}
static int
c_clone3(void)
{
	/* Not killed: ENOSYS, so that glibc uses clone. */
	return syscall(SYS_clone3, NULL, 0) == -1 && errno == ENOSYS ? 0 : 1;
}

static void
expect_killed(const char *what, int (*fn)(void))
{
	int st = in_child(fn);

	if (st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) {
		printf("ok: %s: killed by SIGSYS\n", what);
		return;
	}
	fprintf(stderr, "FAIL: %s: wait status 0x%x, want death by SIGSYS\n", what, st);
	fails++;
}

static int
launcher(void)
{
	static const struct {
		const char *what;
		int (*fn)(void);
	} denied[] = {
	        {"execve", c_execve},
	        {"ptrace", c_ptrace},
	        {"process_vm_readv", c_process_vm_readv},
	        {"mount", c_mount},
	        {"unshare", c_unshare},
	        {"setns", c_setns},
	        {"chroot", c_chroot},
	        {"bpf", c_bpf},
	        {"perf_event_open", c_perf_event_open},
	        {"init_module", c_init_module},
	        {"kexec_load", c_kexec_load},
	        {"keyctl", c_keyctl},
	        {"userfaultfd", c_userfaultfd},
	        {"personality", c_personality},
	        {"io_uring_setup", c_io_uring_setup},
	        {"reboot", c_reboot},
	        {"clone(CLONE_NEWUSER)", c_clone_newuser},
	        {"ioctl(TIOCSTI)", c_tiocsti},
	        {"ioctl(TIOCSTI) with high bits set", c_tiocsti_high_bits},
	        {"x32 getpid", c_x32_getpid},
	};
	char *const argv[] = {"true", NULL};
	int st, i386;

	/* Is the i386 ABI there at all (it is a kernel option)? */
	st = in_child(c_i386_getpid);
	i386 = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (harden_seccomp_launcher_force() != 0) {
		fprintf(stderr, "seccomp launcher test: cannot install the filter\n");
		return 2;
	}
	printf("filter installed\n");
	st = in_child(helper_startup);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr,
		        "FAIL: a helper's start-up under the launcher's filter: status 0x%x\n", st);
		fails++;
	} else {
		printf("ok: a helper's start-up (threads, fork, PROT_EXEC, sockets, its own "
		       "filter) works under it\n");
	}
	st = in_child(c_clone3);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "FAIL: clone3: status 0x%x, want ENOSYS\n", st);
		fails++;
	} else {
		printf("ok: clone3: ENOSYS\n");
	}
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		expect_killed(denied[i].what, denied[i].fn);
	if (i386)
		expect_killed("i386 getpid (int 0x80)", c_i386_getpid);
	else
		printf("note: this kernel has no i386 ABI: int 0x80 not checked\n");
	if (fails) {
		fprintf(stderr, "%d check(s) failed\n", fails);
		return 1;
	}
	/* ...and the launcher itself dies the same way. */
	fflush(NULL);
	execve("/bin/true", argv, NULL);
	fprintf(stderr, "seccomp launcher test: execve was not blocked\n");
	return 4;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "launcher") == 0)
		return launcher();
	harden_seccomp_selftest();
	return 5; /* not reached when the filter works */
}
