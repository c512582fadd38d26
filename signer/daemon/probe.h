/*
 * probe.h - qsignd dials its own listeners, so that one which no longer
 * accepts is seen.
 *
 * A daemon whose listener has stopped accepting looks alive: the process
 * runs, established connections are served, the workers wait. nng 1.5.2
 * did exactly that after a peer hung up during negotiation (ops/nng/); the
 * patched nng no longer does, and this probe is how an operator would see
 * any other cause (the ipc socket file removed, a listener stuck). Every
 * second each listener gets a fresh connection and one unauthenticated
 * Auth/Challenge call; two failures in a row make the daemon not ready
 * (/healthz 503, qsign_ready 0), the next success makes it ready again.
 */
#ifndef QS_PROBE_H
#define QS_PROBE_H

#include <stddef.h>
#include <stdio.h>

struct server;
struct probe;

/* Prepares one probe per listener of s (TLS client configuration read now,
 * before privileges are dropped), runs the first round synchronously and
 * starts the probe thread. The probe needs no credentials on ipc://; on
 * tls+tcp:// it presents tls.probe_cert/probe_key (default: the server's
 * own certificate). Errors: QS_ERR_NOMEM, QS_ERR_INVALID (a probe
 * certificate that cannot be read), QS_ERR_INTERNAL. A listener that fails
 * its probe is not an error here: it is reported by probe_healthy(). */
int probe_start(struct server *s, struct probe **out);

/* Stops the thread and frees p (NULL is fine). */
void probe_stop(struct probe *p);

/* 1 if every listener answered one of its last two probes; else 0 and why
 * (which listener, what failed). */
int probe_healthy(struct probe *p, char *why, size_t cap);

/* qsign_listener_up and qsign_listener_probe_failures_total. */
void probe_write_metrics(struct probe *p, FILE *f);

#endif
