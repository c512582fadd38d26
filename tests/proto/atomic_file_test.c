/*
 * atomic_file_test.c - qs_write_atomic: the file gets exactly the bytes and
 * the mode asked for (whatever the umask), replaces an existing file, leaves
 * no temporary file behind; a symlink planted at the temporary name is
 * refused and neither its target nor the file changes; a missing directory
 * is an error that creates nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "check.h"
#include "qs_err.h"

static char *
slurp(const char *path)
{
	static char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

int
main(void)
{
	char dir[] = "/tmp/qs-atomic-XXXXXX", path[128], tmp[128], victim[128], missing[160];
	struct stat st;

	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(path, sizeof(path), "%s/file.json", dir);
	snprintf(tmp, sizeof(tmp), "%s/.file.json.tmp", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(missing, sizeof(missing), "%s/no/such/dir/x", dir);

	umask(077);
	CHECK_EQ(qs_write_atomic(path, "one", 3, 0644), 0);
	CHECK_STR(slurp(path), "one");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644);
	CHECK(access(tmp, F_OK) != 0 && errno == ENOENT);

	CHECK_EQ(qs_write_atomic(path, "two!", 4, 0600), 0);
	CHECK_STR(slurp(path), "two!");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600);

	/* Attacker's side: a symlink at the temporary name must not be
	 * followed (it would write through to victim). */
	CHECK_EQ(qs_write_atomic(victim, "keep", 4, 0600), 0);
	CHECK(symlink(victim, tmp) == 0);
	CHECK_EQ(qs_write_atomic(path, "evil", 4, 0600), QS_ERR_IO);
	CHECK_STR(slurp(victim), "keep");
	CHECK_STR(slurp(path), "two!");
	unlink(tmp);

	CHECK_EQ(qs_write_atomic(missing, "x", 1, 0600), QS_ERR_IO);
	CHECK(access(missing, F_OK) != 0);
	CHECK_EQ(qs_write_atomic("", "x", 1, 0600), QS_ERR_INVALID);
	CHECK_EQ(qs_write_atomic("/tmp/", "x", 1, 0600), QS_ERR_INVALID);

	/* An empty file is a file. */
	CHECK_EQ(qs_write_atomic(path, "", 0, 0600), 0);
	CHECK(stat(path, &st) == 0 && st.st_size == 0);

	unlink(path);
	unlink(victim);
	rmdir(dir);
	CHECK_DONE();
}
