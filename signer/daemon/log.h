/*
 * log.h - operator logs of qsignd.
 *
 * One line per event on stderr (journald picks it up under systemd):
 *   qsignd[pid]: <level> <event> key=value ... (func:line)
 * Event names are stable (documented in signer/README.md) so operators can
 * alert on them. Strings that came from a peer must go through log_peerstr()
 * which truncates and escapes them. Never log secrets.
 */
#ifndef QS_LOG_H
#define QS_LOG_H

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

void log_init(const char *progname, enum log_level min);
/* A forked process (signer helper, launcher) names itself in its lines. */
void log_rename(const char *progname);
void log_emit(enum log_level lvl, const char *func, int line, const char *event, const char *fmt,
              ...) __attribute__((format(printf, 5, 6)));

/* Copy a peer-supplied string into buf (cap bytes), replacing anything but
 * printable ASCII with '?' and truncating to 64 characters. Returns buf. */
const char *log_peerstr(const char *s, char *buf, unsigned cap);

#define log_debug(ev, ...) log_emit(LOG_LVL_DEBUG, __func__, __LINE__, ev, __VA_ARGS__)
#define log_info(ev, ...) log_emit(LOG_LVL_INFO, __func__, __LINE__, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_emit(LOG_LVL_WARN, __func__, __LINE__, ev, __VA_ARGS__)
#define log_error(ev, ...) log_emit(LOG_LVL_ERROR, __func__, __LINE__, ev, __VA_ARGS__)

#endif
