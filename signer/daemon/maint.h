/*
 * maint.h - the daemon's periodic work: TUF snapshot/timestamp before they
 * expire (tuf_refresh, own timer in tuf_rpc.c) and CRLs before their
 * nextUpdate (pki_crl_refresh, here). Interval: config "maintenance_s"
 * (default 60). Also the audit log's summary of over-rate logins and
 * refusals (audit_flush_summary), every config "audit.summary_s", and
 * approved requests whose execution failed for a passing reason
 * (requests_retry_stuck), every QS_REQUEST_RETRY_S.
 */
#ifndef QS_MAINT_H
#define QS_MAINT_H

struct server;

int maint_start(struct server *s, unsigned interval_s);
void maint_stop(void);

#endif
