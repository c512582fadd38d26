/*
 * privsep_frame.c - the frames of the signer helper protocol on a socket,
 * for all three processes (privsep_proc.h): send, receive, wipe, and the
 * descriptors a new process closes. The bytes inside a frame are
 * privsep_wire.c's.
 */
#include "privsep_proc.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qs_err.h"

int
pf_send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* 0 = got all n, 1 = EOF before the first byte, -1 = error or EOF inside. */
static int
recv_all(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = recv(fd, p + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 && got == 0)
			return 1;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

int
pf_send(int fd, struct ps_wbuf *b)
{
	int r;

	if ((r = ps_wb_finish(b)) != 0)
		return r;
	return pf_send_all(fd, b->p, b->len) == 0
	               ? 0
	               : qs_fail(QS_ERR_IO, "signer socket: %s", strerror(errno));
}

/* One frame: 0 with *body (malloc'd, *len >= 1 bytes), 1 on a clean EOF,
 * QS_ERR_IO on a broken stream, QS_ERR_INVALID on a length out of range. */
int
pf_read_frame(int fd, uint8_t **body, size_t *len)
{
	uint8_t h[4];
	uint32_t n;
	int r;

	*body = NULL;
	*len = 0;
	if ((r = recv_all(fd, h, 4)) != 0)
		return r == 1 ? 1 : qs_fail(QS_ERR_IO, "signer socket: short frame header");
	if ((r = ps_frame_len(h, &n)) != 0)
		return r;
	if ((*body = malloc(n)) == NULL)
		return qs_fail(QS_ERR_NOMEM, "out of memory");
	if (recv_all(fd, *body, n) != 0) {
		free(*body);
		*body = NULL;
		return qs_fail(QS_ERR_IO, "signer socket: short frame body");
	}
	*len = n;
	return 0;
}

void
pf_free_body(uint8_t *b, size_t n)
{
	if (b != NULL)
		explicit_bzero(b, n);
	free(b);
}

/* Close every descriptor above 2 except keep. */
void
pf_close_fds_except(int keep)
{
	DIR *d;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	struct dirent *e;
	int dfd = dirfd(d);
	while ((e = readdir(d)) != NULL) {
		char *end;
		long n = strtol(e->d_name, &end, 10);
		if (*end == '\0' && n > 2 && n != dfd && n != keep)
			close((int)n);
	}
	closedir(d);
}
