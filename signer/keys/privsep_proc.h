/*
 * privsep_proc.h - what the three processes of privsep.h share inside
 * signer/keys/ (not for other directories: their interface is privsep.h).
 *
 * One file per process, and a prefix per file, so that no name of one
 * process is mistaken for another's (or for an RPC handler of signer/rpc/):
 *   privsep.c           the front: the pool and its calls (ps_*, privsep.h)
 *   privsep_launcher.c  the launcher, which forks helpers (pl_*)
 *   privsep_helper.c    a signer helper, its loop and handlers (ph_*)
 *   privsep_frame.c     frames on a socket, for all three (pf_*)
 *   privsep_wire.c      the bytes inside a frame (ps_wb_*, ps_rd_*, *_decode)
 */
#ifndef QS_PRIVSEP_PROC_H
#define QS_PRIVSEP_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "privsep_guard.h"
#include "privsep_wire.h"

/* ---- frames (privsep_frame.c) */

/* All n bytes to fd: 0 or -1 (errno). */
int pf_send_all(int fd, const uint8_t *p, size_t n);
/* Finish b's frame and send it: 0 or QS_ERR_IO. */
int pf_send(int fd, struct ps_wbuf *b);
/* One frame: 0 with *body (malloc'd, *len >= 1 bytes), 1 on a clean EOF,
 * QS_ERR_IO on a broken stream, QS_ERR_INVALID on a length out of range. */
int pf_read_frame(int fd, uint8_t **body, size_t *len);
/* Wipe and free a frame's body (NULL is fine). */
void pf_free_body(uint8_t *b, size_t n);
/* Close every descriptor above 2 except keep. */
void pf_close_fds_except(int keep);

/* ---- the launcher (privsep_launcher.c) */

/* The launcher's life, in the child the front forked: never returns. */
void pl_main(const struct config *c, int ctl, pid_t front) __attribute__((noreturn));
/* The front's end of a new helper's socketpair and its pid, from the
 * launcher; *fd = -1 when the launcher could not start a helper. */
int pl_recv_fd(int ctl, int *fd, pid_t *pid);
/* Set by ps_selftest before it starts the pool (privsep_launcher.c). */
extern int pl_selftest;

/* ---- a helper (privsep_helper.c) */

/* A helper's life, in the child the launcher forked: never returns. */
void ph_main(const struct config *c, int fd) __attribute__((noreturn));
/* What every helper trusts: read by the launcher before it forks any
 * helper (privsep_guard.h). */
extern struct ps_guard_boot ph_guard_boot;

#endif
