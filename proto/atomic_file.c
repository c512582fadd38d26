#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qs_err.h"

/* Split path into its directory ("." when it has none) and the temporary
 * file's path beside it. */
static int
tmp_beside(const char *path, char *dir, size_t dcap, char *tmp, size_t tcap)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	int n;

	if (*base == '\0')
		return qs_fail(QS_ERR_INVALID, "%s: not a file name", path);
	if (slash == NULL)
		n = snprintf(dir, dcap, ".");
	else if (slash == path)
		n = snprintf(dir, dcap, "/");
	else
		n = snprintf(dir, dcap, "%.*s", (int)(slash - path), path);
	if (n < 0 || (size_t)n >= dcap)
		return qs_fail(QS_ERR_INVALID, "path too long: %s", path);
	n = slash != NULL ? snprintf(tmp, tcap, "%.*s.%s.tmp", (int)(base - path), path, base)
	                  : snprintf(tmp, tcap, ".%s.tmp", base);
	if (n < 0 || (size_t)n >= tcap)
		return qs_fail(QS_ERR_INVALID, "path too long: %s", path);
	return 0;
}

static int
write_all(int fd, const char *tmp, const void *data, size_t len)
{
	const char *p = data;

	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return qs_fail(QS_ERR_IO, "write %s: %s", tmp,
			               w < 0 ? strerror(errno) : "no progress");
		off += (size_t)w;
	}
	return 0;
}

int
qs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	int fd = -1, dfd = -1, renamed = 0, r;

	if ((r = tmp_beside(path, dir, sizeof(dir), tmp, sizeof(tmp))) != 0)
		return r;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)) < 0)
		return qs_fail(QS_ERR_IO, "open %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0) {
		r = qs_fail(QS_ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto out;
	}
	if ((r = write_all(fd, tmp, data, len)) != 0)
		goto out;
	if (fsync(fd) != 0) {
		r = qs_fail(QS_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
		goto out;
	}
	r = close(fd);
	fd = -1;
	if (r != 0) {
		r = qs_fail(QS_ERR_IO, "close %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) != 0) {
		r = qs_fail(QS_ERR_IO, "rename %s: %s", path, strerror(errno));
		goto out;
	}
	renamed = 1;
	/* The rename is durable only once the directory is. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(dfd) != 0) {
		r = qs_fail(QS_ERR_IO, "fsync %s: %s", dir, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0 && !renamed)
		unlink(tmp);
	if (dfd >= 0)
		close(dfd);
	return r;
}
