#include "harden.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "qs_err.h"

#if defined(__SANITIZE_ADDRESS__)
#define QS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QS_SANITIZED 1
#endif
#endif

void
harden_early(void)
{
	struct rlimit rl = {0, 0};
	DIR *d;
	int fd;

	setrlimit(RLIMIT_CORE, &rl);
	/* Connections are descriptors: use all the kernel allows us (the
	 * default soft limit of 1024 is easy to exhaust on purpose). */
	{
		struct rlimit nf;
		if (getrlimit(RLIMIT_NOFILE, &nf) == 0 && nf.rlim_cur < nf.rlim_max) {
			nf.rlim_cur = nf.rlim_max;
			setrlimit(RLIMIT_NOFILE, &nf);
		}
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(077);
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	/* Close whatever a careless parent left open: a stray descriptor to a
	 * socket or file must not outlive into a process that holds keys. */
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;
		int dfd = dirfd(d);
		while ((e = readdir(d)) != NULL) {
			char *end;
			long n = strtol(e->d_name, &end, 10);
			if (*end == '\0' && n > 2 && n != dfd)
				close((int)n);
		}
		closedir(d);
	}
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return lchown(path, chown_uid, chown_gid) == 0 ? 0 : -1;
}

int
harden_drop(const char *user, const char *group, const char *const *dirs)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if (user == NULL)
		return 0;
	if (geteuid() != 0)
		return qs_fail(QS_ERR_DENIED, "\"user\": %s is set but qsignd does not run as root",
		               user);
	if ((pw = getpwnam(user)) == NULL)
		return qs_fail(QS_ERR_INVALID, "\"user\": no such user %s", user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL)
			return qs_fail(QS_ERR_INVALID, "\"group\": no such group %s", group);
		gid = gr->gr_gid;
	}
	if (uid == 0)
		return qs_fail(QS_ERR_INVALID, "\"user\": %s is root; pick an unprivileged user",
		               user);
	chown_uid = uid;
	chown_gid = gid;
	for (size_t i = 0; dirs != NULL && dirs[i] != NULL; i++)
		if (nftw(dirs[i], chown_one, 16, FTW_PHYS) != 0)
			return qs_fail(QS_ERR_IO, "chown %s to %s: %s", dirs[i], user,
			               strerror(errno));
	if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		return qs_fail(QS_ERR_DENIED, "cannot become %s: %s", user, strerror(errno));
	if (setuid(0) == 0 || seteuid(0) == 0)
		return qs_fail(QS_ERR_DENIED, "could regain root after dropping to %s", user);
	/* setuid re-enables dumping on some kernels: turn it off again; and
	 * nothing we could exec may gain privileges (also set by seccomp). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return qs_fail(QS_ERR_DENIED, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	return 0;
}

/*
 * What qsignd does once it serves: threads and futexes (nng, workers,
 * writers), files (SQLite, the audit log, PKCS#11 modules re-reading their
 * token on recovery), sockets it already has and those a token module opens
 * to reconnect (tpm2-abrmd over D-Bus, a TPM simulator over TCP), time,
 * randomness, memory. Not on the list, among others: execve, fork without
 * CLONE_THREAD, ptrace, mount, module and kexec loading, bpf, keyctl,
 * personality, process_vm_*, setuid and friends.
 */
static const int allowed[] = {
        SCMP_SYS(read),
        SCMP_SYS(write),
        SCMP_SYS(readv),
        SCMP_SYS(writev),
        SCMP_SYS(pread64),
        SCMP_SYS(pwrite64),
        SCMP_SYS(openat),
        SCMP_SYS(open),
        SCMP_SYS(close),
        SCMP_SYS(stat),
        SCMP_SYS(fstat),
        SCMP_SYS(lstat),
        SCMP_SYS(newfstatat),
        SCMP_SYS(statx),
        SCMP_SYS(lseek),
        SCMP_SYS(access),
        SCMP_SYS(faccessat),
        SCMP_SYS(faccessat2),
        SCMP_SYS(getdents64),
        SCMP_SYS(readlink),
        SCMP_SYS(readlinkat),
        SCMP_SYS(fsync),
        SCMP_SYS(fdatasync),
        SCMP_SYS(ftruncate),
        SCMP_SYS(rename),
        SCMP_SYS(renameat),
        SCMP_SYS(renameat2),
        SCMP_SYS(unlink),
        SCMP_SYS(unlinkat),
        SCMP_SYS(mkdir),
        SCMP_SYS(mkdirat),
        SCMP_SYS(rmdir),
        SCMP_SYS(flock),
        SCMP_SYS(fcntl),
        SCMP_SYS(dup),
        SCMP_SYS(dup2),
        SCMP_SYS(dup3),
        SCMP_SYS(fchmod),
        SCMP_SYS(fchown),
        SCMP_SYS(umask),
        SCMP_SYS(getcwd),
        SCMP_SYS(fallocate),
        SCMP_SYS(utimensat),
        SCMP_SYS(munmap),
        SCMP_SYS(mremap),
        SCMP_SYS(brk),
        SCMP_SYS(madvise),
        SCMP_SYS(mlock),
        SCMP_SYS(munlock),
        SCMP_SYS(membarrier),
        SCMP_SYS(futex),
        SCMP_SYS(set_robust_list),
        SCMP_SYS(get_robust_list),
        SCMP_SYS(rseq),
        SCMP_SYS(sched_yield),
        SCMP_SYS(sched_getaffinity),
        SCMP_SYS(nanosleep),
        SCMP_SYS(clock_nanosleep),
        SCMP_SYS(clock_gettime),
        SCMP_SYS(clock_getres),
        SCMP_SYS(gettimeofday),
        SCMP_SYS(time),
        SCMP_SYS(getpid),
        SCMP_SYS(gettid),
        SCMP_SYS(getppid),
        SCMP_SYS(getuid),
        SCMP_SYS(geteuid),
        SCMP_SYS(getgid),
        SCMP_SYS(getegid),
        SCMP_SYS(getresuid),
        SCMP_SYS(getresgid),
        SCMP_SYS(getrlimit),
        SCMP_SYS(prlimit64),
        SCMP_SYS(getrusage),
        SCMP_SYS(uname),
        SCMP_SYS(sysinfo),
        SCMP_SYS(getrandom),
        SCMP_SYS(prctl),
        SCMP_SYS(rt_sigaction),
        SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigtimedwait),
        SCMP_SYS(sigaltstack),
        SCMP_SYS(tgkill),
        SCMP_SYS(kill),
        SCMP_SYS(restart_syscall),
        SCMP_SYS(exit),
        SCMP_SYS(exit_group),
        SCMP_SYS(poll),
        SCMP_SYS(ppoll),
        SCMP_SYS(select),
        SCMP_SYS(pselect6),
        SCMP_SYS(epoll_create1),
        SCMP_SYS(epoll_ctl),
        SCMP_SYS(epoll_wait),
        SCMP_SYS(epoll_pwait),
        SCMP_SYS(eventfd2),
        SCMP_SYS(pipe),
        SCMP_SYS(pipe2),
        SCMP_SYS(socket),
        SCMP_SYS(socketpair),
        SCMP_SYS(connect),
        SCMP_SYS(accept),
        SCMP_SYS(accept4),
        SCMP_SYS(bind),
        SCMP_SYS(listen),
        SCMP_SYS(shutdown),
        SCMP_SYS(getsockname),
        SCMP_SYS(getpeername),
        SCMP_SYS(getsockopt),
        SCMP_SYS(setsockopt),
        SCMP_SYS(sendto),
        SCMP_SYS(recvfrom),
        SCMP_SYS(sendmsg),
        SCMP_SYS(recvmsg),
        SCMP_SYS(ioctl),
        /* The front reaps the signer launcher at stop (privsep.h). */
        SCMP_SYS(wait4),
};

/*
 * A signer helper only talks over the socketpair it was born with and to
 * whatever its token module connects to: it never listens, accepts, makes
 * new socket pairs, signals or waits for other processes.
 */
static const int helper_denied[] = {
        SCMP_SYS(bind),       SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
        SCMP_SYS(socketpair), SCMP_SYS(kill),   SCMP_SYS(wait4),
};

static int
helper_denies(int sc)
{
	for (size_t i = 0; i < sizeof(helper_denied) / sizeof(helper_denied[0]); i++)
		if (helper_denied[i] == sc)
			return 1;
	return 0;
}

/* Killing the whole process (SCMP_ACT_KILL_PROCESS) needs libseccomp's API
 * level 3, which it detects through the seccomp() system call: under a
 * service manager's filter that blocks that call (systemd's
 * @system-service does not include it) the level drops and every rule
 * would fail with a bare EINVAL. Say so instead. */
static int
seccomp_usable(void)
{
	int api = (int)seccomp_api_get();

	if (api < 3)
		return qs_fail(QS_ERR_UNAVAILABLE,
		               "seccomp: libseccomp API level %d (needs 3): the seccomp() system "
		               "call is unavailable or blocked; under systemd allow it with "
		               "SystemCallFilter=seccomp (the packaged unit does)",
		               api);
	return 0;
}

static int
build_filter(scmp_filter_ctx *out, int helper)
{
	scmp_filter_ctx ctx;
	int rc;

	*out = NULL;
	if ((rc = seccomp_usable()) != 0)
		return rc;
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return qs_fail(QS_ERR_INTERNAL, "seccomp_init failed");
	/* Every thread (nng's, the workers, the writers) gets the filter. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
		seccomp_release(ctx);
		return qs_fail(QS_ERR_INTERNAL, "seccomp TSYNC: %s", strerror(-rc));
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (allowed[i] >= 0 && !(helper && helper_denies(allowed[i])) &&
		    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0)) != 0) {
			seccomp_release(ctx);
			return qs_fail(QS_ERR_INTERNAL, "seccomp rule %d: %s", allowed[i],
			               strerror(-rc));
		}
	/* mmap/mprotect: never writable and executable at once (W^X); a
	 * module may still map code it loads when a token is re-initialised. */
	for (int w = 0; w < 2; w++)
		for (int x = 0; x < 2; x++) {
			unsigned long want = (w ? PROT_WRITE : 0) | (x ? PROT_EXEC : 0);
			if (w && x)
				continue;
			if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			                           SCMP_A2(SCMP_CMP_MASKED_EQ,
			                                   PROT_WRITE | PROT_EXEC, want))) != 0 ||
			    (rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			                           SCMP_A2(SCMP_CMP_MASKED_EQ,
			                                   PROT_WRITE | PROT_EXEC, want))) != 0) {
				seccomp_release(ctx);
				return qs_fail(QS_ERR_INTERNAL, "seccomp mmap rule: %s",
				               strerror(-rc));
			}
		}
	/* clone only for threads: a new process could exec what it likes. */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD))) != 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) != 0) {
		/* glibc falls back from clone3 to clone on ENOSYS, where the
		 * flags can be inspected. */
		seccomp_release(ctx);
		return qs_fail(QS_ERR_INTERNAL, "seccomp clone rule: %s", strerror(-rc));
	}
	*out = ctx;
	return 0;
}

/*
 * The signer launcher's filter (privsep.h has the reasoning). Every helper
 * inherits it and must still start under it: load a PKCS#11 module
 * (dlopen, executable mappings), start its threads, open SQLite stores,
 * reach tpm2-abrmd over D-Bus or a TPM over TCP, switch user, then stack
 * its own allow-list. What a helper needs is open-ended (whatever its
 * module does), so this is a deny-list of what none of that needs:
 * running other programs, reaching into other processes, the kernel's
 * administration interfaces, namespaces, and the interfaces that are
 * mostly kernel attack surface. Each kills the process.
 */
static const int launcher_denied[] = {
        /* other programs, other processes */
        SCMP_SYS(execve),
        SCMP_SYS(execveat),
        SCMP_SYS(ptrace),
        SCMP_SYS(process_vm_readv),
        SCMP_SYS(process_vm_writev),
        SCMP_SYS(pidfd_getfd),
        SCMP_SYS(process_madvise),
        SCMP_SYS(kcmp),
        SCMP_SYS(migrate_pages),
        SCMP_SYS(move_pages),
        /* file systems, mounts, namespaces */
        SCMP_SYS(mount),
        SCMP_SYS(umount2),
        SCMP_SYS(pivot_root),
        SCMP_SYS(chroot),
        SCMP_SYS(fsopen),
        SCMP_SYS(fsconfig),
        SCMP_SYS(fsmount),
        SCMP_SYS(fspick),
        SCMP_SYS(move_mount),
        SCMP_SYS(open_tree),
        SCMP_SYS(mount_setattr),
        SCMP_SYS(setns),
        SCMP_SYS(unshare),
        SCMP_SYS(open_by_handle_at),
        SCMP_SYS(quotactl),
        SCMP_SYS(quotactl_fd),
        SCMP_SYS(swapon),
        SCMP_SYS(swapoff),
        SCMP_SYS(acct),
        /* the kernel itself: modules, kexec, reboot, I/O ports, clock, names */
        SCMP_SYS(init_module),
        SCMP_SYS(finit_module),
        SCMP_SYS(delete_module),
        SCMP_SYS(kexec_load),
        SCMP_SYS(kexec_file_load),
        SCMP_SYS(reboot),
        SCMP_SYS(iopl),
        SCMP_SYS(ioperm),
        SCMP_SYS(modify_ldt),
        SCMP_SYS(syslog),
        SCMP_SYS(vhangup),
        SCMP_SYS(settimeofday),
        SCMP_SYS(clock_settime),
        SCMP_SYS(clock_adjtime),
        SCMP_SYS(adjtimex),
        SCMP_SYS(sethostname),
        SCMP_SYS(setdomainname),
        SCMP_SYS(uselib),
        SCMP_SYS(_sysctl),
        SCMP_SYS(lookup_dcookie),
        SCMP_SYS(nfsservctl),
        /* kernel attack surface no module needs: eBPF, perf, the kernel
         * keyring, userfaultfd, fanotify, personality; io_uring performs its
         * operations without passing the filter */
        SCMP_SYS(bpf),
        SCMP_SYS(perf_event_open),
        SCMP_SYS(keyctl),
        SCMP_SYS(add_key),
        SCMP_SYS(request_key),
        SCMP_SYS(userfaultfd),
        SCMP_SYS(fanotify_init),
        SCMP_SYS(personality),
        SCMP_SYS(io_uring_setup),
        SCMP_SYS(io_uring_enter),
        SCMP_SYS(io_uring_register),
};

static int
build_launcher_filter(scmp_filter_ctx *out)
{
	/* clone creating namespaces (unshare and setns are denied above) */
	static const unsigned long clone_new[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
	                                          CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
	                                          CLONE_NEWNET};
	scmp_filter_ctx ctx;
	int rc = 0;

	*out = NULL;
	if ((rc = seccomp_usable()) != 0)
		return rc;
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL)
		return qs_fail(QS_ERR_INTERNAL, "seccomp_init failed");
	/* A deny-list names the calls of one ABI: the others (i386 through
	 * int 0x80, x32) would pass it. They kill the process instead. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) != 0)
		goto fail;
	for (size_t i = 0; i < sizeof(launcher_denied) / sizeof(launcher_denied[0]); i++)
		if (launcher_denied[i] >= 0 &&
		    (rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, launcher_denied[i], 0)) != 0)
			goto fail;
	for (size_t i = 0; i < sizeof(clone_new) / sizeof(clone_new[0]); i++)
		if ((rc = seccomp_rule_add(
		             ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
		             SCMP_A0(SCMP_CMP_MASKED_EQ, clone_new[i], clone_new[i]))) != 0)
			goto fail;
	/* clone3's flags are behind a pointer: glibc falls back to clone on
	 * ENOSYS, where they can be seen. TIOCSTI would type into the
	 * terminal qsignd was started from (the kernel reads 32 bits of the
	 * request number, so only those are compared). */
	if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) != 0 ||
	    (rc = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(ioctl), 1,
	                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI))) != 0)
		goto fail;
	*out = ctx;
	return 0;
fail:
	seccomp_release(ctx);
	return qs_fail(QS_ERR_INTERNAL, "seccomp launcher filter: %s", strerror(-rc));
}

static int
seccomp_install(int helper)
{
	scmp_filter_ctx ctx;
	int r, rc;

#ifdef QS_SANITIZED
	(void)helper;
	return 1;
#endif
	if ((r = build_filter(&ctx, helper)) != 0)
		return r;
	/* NO_NEW_PRIVS is set by libseccomp (SCMP_FLTATR_CTL_NNP defaults on). */
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return qs_fail(QS_ERR_INTERNAL, "seccomp_load: %s", strerror(-rc));
	return 0;
}

int
harden_seccomp(void)
{
	return seccomp_install(0);
}

int
harden_seccomp_helper(void)
{
	return seccomp_install(1);
}

static int
load_launcher_filter(void)
{
	scmp_filter_ctx ctx;
	int r, rc;

	if ((r = build_launcher_filter(&ctx)) != 0)
		return r;
	/* NO_NEW_PRIVS comes with it (SCMP_FLTATR_CTL_NNP defaults on). */
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		return qs_fail(QS_ERR_INTERNAL, "seccomp_load: %s", strerror(-rc));
	return 0;
}

int
harden_seccomp_launcher(void)
{
#ifdef QS_SANITIZED
	return 1;
#else
	return load_launcher_filter();
#endif
}

int
harden_seccomp_launcher_force(void)
{
	return load_launcher_filter();
}

void
harden_seccomp_selftest(void)
{
	scmp_filter_ctx ctx;
	char *const argv[] = {"true", NULL};

	/* The test installs the real filter even in sanitizer builds: it dies
	 * before any sanitizer runtime would need a forbidden call. */
	if (build_filter(&ctx, 0) != 0 || seccomp_load(ctx) != 0) {
		fprintf(stderr, "seccomp selftest: cannot install the filter\n");
		exit(2);
	}
	seccomp_release(ctx);
	/* Allowed calls still work... */
	if (getpid() <= 0 || write(STDOUT_FILENO, "filter installed\n", 17) != 17)
		exit(3);
	/* ...and this one must kill us (SIGSYS) before it returns. */
	execve("/bin/true", argv, NULL);
	fprintf(stderr, "seccomp selftest: execve was not blocked\n");
	exit(4);
}
