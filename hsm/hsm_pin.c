/*
 * hsm_pin.c - read a PIN from "file:PATH" or "env:NAME" into locked memory.
 *
 * The PIN goes straight from the file (or the environment) into an mlock'd,
 * MADV_DONTDUMP anonymous page, so it never reaches swap, a core dump or a
 * stdio buffer. The page is wiped and unmapped by hsm_pin_wipe().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hsm_internal.h"
#include "qs_err.h"

static int
pin_map(struct hsm_pin *pin)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = page > 0 ? (size_t)page : 4096;
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return qs_fail(QS_ERR_NOMEM, "mmap PIN page: %s", strerror(errno));
	/* Best effort: without CAP_IPC_LOCK and a tiny RLIMIT_MEMLOCK mlock can
	 * fail; the PIN is still wiped on every path and kept out of dumps. */
	(void)mlock(p, len);
	(void)madvise(p, len, MADV_DONTDUMP);
	pin->buf = p;
	pin->map_len = len;
	pin->len = 0;
	return 0;
}

void
hsm_pin_wipe(struct hsm_pin *pin)
{
	if (pin->buf == NULL)
		return;
	explicit_bzero(pin->buf, pin->map_len);
	(void)munlock(pin->buf, pin->map_len);
	(void)munmap(pin->buf, pin->map_len);
	pin->buf = NULL;
	pin->len = 0;
	pin->map_len = 0;
}

static int
pin_read_file(const char *path, struct hsm_pin *pin)
{
	int fd = -1, r;
	ssize_t n;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		r = qs_fail(QS_ERR_PIN, "PIN file %s: %s", path, strerror(errno));
		goto out;
	}
	/* Read one byte more than allowed to detect an over-long file. */
	while (pin->len <= HSM_PIN_MAX) {
		n = read(fd, pin->buf + pin->len, HSM_PIN_MAX + 1 - pin->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = qs_fail(QS_ERR_PIN, "PIN file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		pin->len += (size_t)n;
	}
	if (pin->len > HSM_PIN_MAX) {
		r = qs_fail(QS_ERR_PIN, "PIN file %s: longer than %d bytes", path, HSM_PIN_MAX);
		goto out;
	}
	/* Editors and `echo` add one newline; it is never part of the PIN. */
	if (pin->len > 0 && pin->buf[pin->len - 1] == '\n')
		pin->buf[--pin->len] = '\0';
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
hsm_pin_load(const char *source, struct hsm_pin *pin)
{
	const char *v;
	size_t n;
	int r;

	memset(pin, 0, sizeof(*pin));
	if (source == NULL)
		return qs_fail(QS_ERR_INVALID, "no PIN source");
	if ((r = pin_map(pin)) != 0)
		goto out;
	if (strncmp(source, "file:", 5) == 0) {
		v = source + 5;
		/* file:///path (empty authority) names the same file as file:/path */
		if (strncmp(v, "///", 3) == 0)
			v += 2;
		if (*v == '\0') {
			r = qs_fail(QS_ERR_INVALID, "PIN source file: without a path");
			goto out;
		}
		if ((r = pin_read_file(v, pin)) != 0)
			goto out;
	} else if (strncmp(source, "env:", 4) == 0) {
		if (source[4] == '\0') {
			r = qs_fail(QS_ERR_INVALID, "PIN source env: without a name");
			goto out;
		}
		if ((v = getenv(source + 4)) == NULL) {
			r = qs_fail(QS_ERR_PIN, "PIN variable %s is not set", source + 4);
			goto out;
		}
		if ((n = strlen(v)) > HSM_PIN_MAX) {
			r = qs_fail(QS_ERR_PIN, "PIN variable %s: longer than %d bytes", source + 4,
			            HSM_PIN_MAX);
			goto out;
		}
		memcpy(pin->buf, v, n);
		pin->len = n;
	} else {
		/* Do not echo the source: a caller may have put a PIN here by mistake. */
		r = qs_fail(QS_ERR_INVALID, "PIN source must be file:PATH or env:NAME");
		goto out;
	}
	if (pin->len == 0) {
		r = qs_fail(QS_ERR_PIN, "empty PIN");
		goto out;
	}
	if (memchr(pin->buf, '\0', pin->len) != NULL) {
		r = qs_fail(QS_ERR_PIN, "PIN contains a NUL byte");
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		hsm_pin_wipe(pin);
	return r;
}
