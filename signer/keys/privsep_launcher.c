/*
 * privsep_launcher.c - the launcher (qsignd-launch): the small process that
 * forks a signer helper whenever the front asks, and the descriptor passing
 * between them (pl_*). Protocol and process model: privsep.h.
 */
#include "privsep_proc.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harden.h"
#include "log.h"
#include "privsep_guard.h"
#include "qs_err.h"

static int
pl_send_fd(int ctl, int fd, pid_t pid)
{
	uint32_t v = (uint32_t)pid;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

	memset(&u, 0, sizeof(u));
	if (fd >= 0) {
		struct cmsghdr *cm;
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	while (sendmsg(ctl, &m, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* *fd = -1 when the launcher could not start a helper. */
int
pl_recv_fd(int ctl, int *fd, pid_t *pid)
{
	uint32_t v = 0;
	struct iovec iov = {.iov_base = &v, .iov_len = sizeof(v)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = u.buf,
	                   .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	*pid = 0;
	while ((n = recvmsg(ctl, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(v))
		return qs_fail(QS_ERR_UNAVAILABLE, "signer launcher gone");
	for (cm = CMSG_FIRSTHDR(&m); cm != NULL; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	*pid = (pid_t)v;
	if (*fd < 0)
		return qs_fail(QS_ERR_UNAVAILABLE, "signer launcher could not start a helper");
	return 0;
}

/* Set by ps_selftest before it starts the pool: that launcher answers 'X'
 * on ctl with a call its filter forbids. A serving qsignd never sets it,
 * so its launcher knows no such request. */
int pl_selftest;

void
pl_main(const struct config *c, int ctl, pid_t front)
{
	unsigned started = 0;
	uint8_t b;
	ssize_t n;
	int r;

	pf_close_fds_except(ctl);
	prctl(PR_SET_NAME, "qsignd-launch", 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != front)
		_exit(0);
	log_rename("qsignd-launch");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* helpers are reaped by the kernel */
	/* What every helper trusts: read here, before the front takes any
	 * input, and inherited by each helper forked later. */
	ps_guard_boot_read(c, &ph_guard_boot);
	/* The online roles' buckets and the TUF high-water marks, one for all
	 * helpers and surviving their restarts; made after the fork from the
	 * front, which never maps them. */
	if (ps_guard_boot_share(&ph_guard_boot) != 0) {
		log_error("privsep.launch_failed", "reason=\"%s\"", qs_errdetail());
		_exit(1);
	}
	/* Before the first helper, which inherits it (privsep.h: why a
	 * deny-list). */
	if (c->seccomp && (r = harden_seccomp_launcher()) < 0) {
		log_error("privsep.launch_failed", "reason=\"seccomp: %s\"", qs_errdetail());
		_exit(1);
	}
	for (;;) {
		int sp[2];
		pid_t pid;

		while ((n = read(ctl, &b, 1)) < 0 && errno == EINTR)
			;
		if (n == 1 && b == 'X' && pl_selftest) {
			/* Forbidden, and only a query without the filter. */
			(void)personality(0xffffffff);
			continue;
		}
		if (n != 1 || b != 'H')
			break;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
			log_error("privsep.launch_failed", "reason=\"socketpair: %s\"",
			          strerror(errno));
			if (pl_send_fd(ctl, -1, 0) != 0)
				break;
			continue;
		}
		if ((pid = fork()) == 0) {
			close(ctl);
			close(sp[0]);
			ph_main(c, sp[1]);
		}
		close(sp[1]);
		if (pid < 0)
			log_error("privsep.launch_failed", "reason=\"fork: %s\"", strerror(errno));
		else
			/* Each helper starts from guard_boot: the shared rate
			 * buckets and TUF marks (threat-model.md). The front cannot suppress this
			 * line: more starts than signers + 1 mean it replaced helpers. */
			log_info("privsep.helper_started", "pid=%d started=%u", (int)pid,
			         ++started);
		n = pl_send_fd(ctl, pid < 0 ? -1 : sp[0], pid < 0 ? 0 : pid);
		close(sp[0]);
		if (n != 0)
			break;
	}
	close(ctl);
	/* With SIGCHLD ignored, wait returns ECHILD once every helper is gone. */
	while (wait(NULL) > 0 || errno == EINTR)
		;
	_exit(0);
}
