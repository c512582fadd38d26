/*
 * metrics.h - what operators watch: Prometheus text on a loopback HTTP
 * listener (/metrics, /healthz) and through the Signer/Metrics RPC
 * (`qsign metrics`).
 *
 * Counters are process-wide and lock-light: the hot path (one call) takes a
 * mutex once. Gauges (pending requests, audit log, tokens) are read when
 * the text is rendered.
 */
#ifndef QS_METRICS_H
#define QS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;

/* One served call: method, its gRPC status, its latency. */
void metrics_call(const char *method, int status, int64_t latency_us);
/* n signatures produced with role/key (online or on quorum). */
void metrics_signed(const char *role, const char *key, size_t n);
/* A vote was recorded (approve or reject). */
void metrics_vote(int approve);
/* Token errors seen by keyring_sign (for token health). */
void metrics_token_result(const char *token, int ok);

/* Render everything as Prometheus text (*out malloc'd). */
int metrics_render(struct server *s, char **out, size_t *len);
/* 1 if ready to sign, else 0 with the reason in why (cap bytes). */
int metrics_healthy(struct server *s, char *why, size_t cap);

/* Serve /metrics and /healthz on url (http://127.0.0.1:PORT, loopback
 * only). Errors: QS_ERR_INVALID (not loopback), QS_ERR_IO. */
int metrics_http_start(struct server *s, const char *url);
void metrics_http_stop(void);

#endif
