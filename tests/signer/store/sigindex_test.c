/*
 * sigindex_test.c - the signature index derived from the audit log
 * (signer/store/sigindex.c) on a real log (signer/audit/tlog.c) and a real SQLite
 * state store: "signature" entries are indexed with their seq, a
 * "signature.failed" entry removes the one it names, other events are not
 * signatures; a kill -9 right before an index transaction (fault point, in
 * a child) leaves an index that says what it said before, and the next
 * catch-up (what qsignd does at start) makes it say what the log says; a
 * state.db from before the seq column is upgraded; an index ahead of its
 * log is refused.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "../../proto/check.h"
#include "note.h"
#include "qs_err.h"
#include "sigindex.h"
#include "store.h"
#include "tlog.h"

#define ORIGIN "sigindex.test/log"

static EVP_PKEY *key;

static struct qs_note_signer
signer(void)
{
	struct qs_note_signer s;

	if (qs_note_signer_init(&s, ORIGIN, key, qs_note_sign_evp, key) != 0)
		abort();
	return s;
}

/* Append one entry at the next seq: event and extra fields (JSON text
 * after the common ones, may be ""). Returns its seq. */
static uint64_t
add(struct tlog *l, const char *event, const char *extra)
{
	char buf[512];
	uint64_t seq = tlog_size(l), idx = 0;
	struct tlog_rec rec;

	snprintf(buf, sizeof(buf), "{\"event\":\"%s\",\"seq\":%llu,\"time\":%llu%s}", event,
	         (unsigned long long)seq, 1000ull + seq, extra);
	rec.data = (const uint8_t *)buf;
	rec.len = strlen(buf);
	CHECK_EQ(tlog_append(l, &rec, 1, &idx), 0);
	CHECK_EQ(idx, seq);
	return seq;
}

static uint64_t
add_sig(struct tlog *l, int i)
{
	char extra[256];

	snprintf(extra, sizeof(extra),
	         ",\"digest\":\"%064x\",\"key\":\"k\",\"key_id\":\"%064x\",\"kind\":\"digest\","
	         "\"policy_version\":1,\"principal\":\"ci\",\"role\":\"ci-sign\"",
	         i, 7);
	return add(l, "signature", extra);
}

static uint64_t
count(struct store *st)
{
	uint64_t n = 0;

	CHECK_EQ(store_count_signatures(st, &n), 0);
	return n;
}

static void
open_both(const char *dir, struct tlog **l, struct store **st)
{
	char ad[600];
	struct qs_note_signer s = signer();

	snprintf(ad, sizeof(ad), "%s/audit", dir);
	CHECK_EQ(tlog_open(ad, ORIGIN, &s, l, NULL), 0);
	CHECK_EQ(store_open_sqlite(dir, st), 0);
}

/* In a child: catch up with the fault point before the transaction armed. */
static void
crash_catch_up(const char *dir)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct tlog *l = NULL;
		struct store *st = NULL;
		setenv("QS_FAULT", "sigindex.before_apply", 1);
		open_both(dir, &l, &st);
		(void)sigindex_catch_up(st, l);
		_exit(4); /* the fault point did not fire */
	}
	CHECK(pid > 0);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

int
main(void)
{
	char dir[] = "/tmp/sigindex_test.XXXXXX", path[600], cmd[700];
	struct tlog *l = NULL;
	struct store *st = NULL;
	struct sigindex *si = NULL;
	uint64_t next = 0, s1, failed;
	sqlite3 *db = NULL;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mkdtemp(dir) == NULL || (key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
		return 2;
	open_both(dir, &l, &st);
	CHECK(store_index_derived(st));
	add(l, "policy", ",\"version\":1");
	s1 = add_sig(l, 1);
	add_sig(l, 2);
	failed = add_sig(l, 3);
	add(l, "auth", ",\"principal\":\"ci\"");
	add(l, "signature.failed", ",\"entry\":3,\"reason\":\"token unplugged\"");
	CHECK_EQ(failed, 3);
	add_sig(l, 4);
	CHECK_EQ(count(st), 0);
	CHECK_EQ(sigindex_catch_up(st, l), 0);
	CHECK_EQ(count(st), 3); /* 4 signature entries, one failed */
	CHECK_EQ(store_index_next(st, &next), 0);
	CHECK_EQ(next, tlog_size(l));
	CHECK_EQ(sigindex_catch_up(st, l), 0); /* nothing new: nothing twice */
	CHECK_EQ(count(st), 3);
	(void)s1;
	printf("ok: signature entries indexed, a failed one removed, others ignored\n");

	/* The thread: a new entry shows up without a call, and stop indexes
	 * what is committed. */
	CHECK_EQ(sigindex_start(st, l, &si), 0);
	CHECK(si != NULL);
	add_sig(l, 5);
	for (int i = 0; i < 200 && count(st) != 4; i++)
		usleep(10000);
	CHECK_EQ(count(st), 4);
	add_sig(l, 6);
	sigindex_stop(si);
	CHECK_EQ(count(st), 5);
	printf("ok: the index thread follows the log; stop indexes the rest\n");

	/* kill -9 before an index transaction: the index says what it said,
	 * and the catch-up at the next start makes it say what the log says */
	add_sig(l, 7);
	add_sig(l, 8);
	tlog_close(l);
	store_close(st);
	crash_catch_up(dir);
	open_both(dir, &l, &st);
	CHECK_EQ(count(st), 5);
	CHECK_EQ(store_index_next(st, &next), 0);
	CHECK_EQ(next, tlog_size(l) - 2);
	CHECK_EQ(sigindex_start(st, l, &si), 0);
	CHECK_EQ(count(st), 7);
	sigindex_stop(si);
	tlog_close(l);
	store_close(st);
	printf("ok: kill -9 before an index transaction: rebuilt from the log at start\n");

	/* A state.db from before the seq column: upgraded, rows kept, and
	 * the index starts at the log's end (those rows were recorded on the
	 * signing path, nothing is counted twice). */
	snprintf(path, sizeof(path), "%s/state.db", dir);
	CHECK_EQ(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_EQ(sqlite3_exec(db,
	                      "DROP INDEX signature_seq; ALTER TABLE signature DROP COLUMN seq;"
	                      "DELETE FROM meta WHERE k = 'signature_index_next'",
	                      NULL, NULL, NULL),
	         SQLITE_OK);
	sqlite3_close(db);
	open_both(dir, &l, &st);
	CHECK_EQ(count(st), 7);
	CHECK_EQ(store_index_next(st, &next), 0);
	CHECK(next == STORE_INDEX_AT_LOG_END);
	CHECK_EQ(sigindex_start(st, l, &si), 0);
	CHECK_EQ(count(st), 7);
	CHECK_EQ(store_index_next(st, &next), 0);
	CHECK_EQ(next, tlog_size(l));
	add_sig(l, 9);
	sigindex_stop(si);
	CHECK_EQ(count(st), 8);
	tlog_close(l);
	store_close(st);

	/* A new audit log beside this state (the index is ahead of it): the
	 * signatures so far stay as history, the new log is indexed anew
	 * (its seqs do not collide with the old ones). */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/audit'", dir);
	CHECK_EQ(system(cmd), 0);
	open_both(dir, &l, &st);
	add_sig(l, 10);
	add_sig(l, 11);
	CHECK_EQ(sigindex_start(st, l, &si), 0);
	sigindex_stop(si);
	CHECK_EQ(count(st), 10);
	CHECK_EQ(store_index_next(st, &next), 0);
	CHECK_EQ(next, 2);
	tlog_close(l);
	store_close(st);
	printf("ok: an old state.db is upgraded; a new log beside an index is indexed anew\n");

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		check_failures++;
	EVP_PKEY_free(key);
	CHECK_DONE();
}
