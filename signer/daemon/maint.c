#include "maint.h"

#include <pthread.h>
#include <time.h>

#include "audit.h"
#include "log.h"
#include "pki.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "server.h"

static pthread_t thread;
static int running;
static volatile int stop;
static unsigned interval;

static void *
maint_main(void *arg)
{
	struct server *s = arg;
	time_t next = 0, next_retry = 0, next_sweep = time(NULL) + QS_REQUEST_SWEEP_S,
	       next_summary = time(NULL) + (time_t)s->cfg->audit_summary_s;

	while (!stop && !s->stopping) {
		struct timespec ts = {0, 200 * 1000 * 1000};
		time_t now = time(NULL);
		if (now >= next) {
			if (pki_crl_refresh(s) != 0)
				log_error("pki.crl.refresh", "detail=\"%s\"", qs_errdetail());
			next = now + (time_t)interval;
		}
		if (now >= next_sweep) {
			requests_sweep_orphans(s);
			next_sweep = now + QS_REQUEST_SWEEP_S;
		}
		if (now >= next_retry) {
			requests_retry_stuck(s);
			next_retry = now + QS_REQUEST_RETRY_S;
		}
		if (now >= next_summary) {
			if (audit_flush_summary(s->audit) != 0)
				log_error("audit.summary", "detail=\"%s\"", qs_errdetail());
			next_summary = now + (time_t)s->cfg->audit_summary_s;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int
maint_start(struct server *s, unsigned interval_s)
{
	interval = interval_s ? interval_s : 60;
	stop = 0;
	if (pthread_create(&thread, NULL, maint_main, s) != 0)
		return qs_fail(QS_ERR_INTERNAL, "cannot start the maintenance thread");
	running = 1;
	return 0;
}

void
maint_stop(void)
{
	if (!running)
		return;
	stop = 1;
	pthread_join(thread, NULL);
	running = 0;
}
