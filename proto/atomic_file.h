/*
 * atomic_file.h - the one way a file is replaced on disk, for the daemon
 * (TUF metadata, backups) and the CLI (audit state).
 *
 * A reader sees the old file or the new one, never a torn one, and once the
 * call returns 0 the new contents survive a crash: the data is written to a
 * temporary file in the same directory, fsync'd and closed (close is
 * checked: NFS reports write errors there), renamed over the target, and
 * the directory is fsync'd so the rename itself is durable.
 */
#ifndef QS_ATOMIC_FILE_H
#define QS_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Replace path with len bytes of data, file mode `mode` (set explicitly, not
 * filtered by the umask). The temporary file is "<dir>/.<name>.tmp": hidden,
 * so a web server publishing dir does not serve it; it is opened with
 * O_NOFOLLOW (a symlink planted there is refused) and removed on failure.
 * The directory must exist. Errors: QS_ERR_INVALID (path too long or
 * without a file name), QS_ERR_IO (detail names the step and the errno
 * text). A failure before the rename leaves path unchanged; a failed fsync
 * of the directory is reported with the new file already in place.
 */
int qs_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

#endif
