/*
 * State store (SQLite backend): schema creation and refusal, policy version
 * chain, and group-committed signature records from many threads with
 * nothing lost or duplicated.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../proto/check.h"
#include "qs_err.h"
#include "store.h"

#define THREADS 8
#define PER_THREAD 200

static struct store *st;

static void *
writer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct store_sig s = {.time_ms = 1, .principal = "ci", .role = "r", .key = "k",
				      .key_id = "00", .kind = "digest", .policy_version = 1};
		s.digest[0] = (uint8_t)id;
		s.digest[1] = (uint8_t)i;
		if (store_record_signatures(st, &s, 1) != 0)
			return (void *)1;
	}
	return NULL;
}

int
main(void)
{
	char dir[] = "/tmp/qs-store-test.XXXXXX";
	pthread_t th[THREADS];
	uint64_t v = 0, n = 0;
	char *text = NULL, cmd[256];
	void *ret;
	int bad = 0;

	if (mkdtemp(dir) == NULL)
		return 2;
	CHECK_EQ(store_open_sqlite(dir, &st), 0);
	CHECK_EQ(store_policy_current(st, &v, &text), QS_ERR_NOT_FOUND);
	CHECK_EQ(store_policy_add(st, 2, "{}"), QS_ERR_PRECONDITION); /* must start at 1 */
	CHECK_EQ(store_policy_add(st, 1, "{\"v\":1}"), 0);
	CHECK_EQ(store_policy_add(st, 1, "{\"v\":1}"), QS_ERR_PRECONDITION);
	CHECK_EQ(store_policy_add(st, 3, "{\"v\":3}"), QS_ERR_PRECONDITION); /* skipped 2 */
	CHECK_EQ(store_policy_add(st, 2, "{\"v\":2}"), 0);
	CHECK_EQ(store_policy_current(st, &v, &text), 0);
	CHECK_EQ(v, 2);
	CHECK_STR(text, "{\"v\":2}");
	free(text);
	CHECK_EQ(store_policy_get(st, 1, &text), 0);
	CHECK_STR(text, "{\"v\":1}");
	free(text);
	CHECK_EQ(store_policy_get(st, 9, &text), QS_ERR_NOT_FOUND);
	{
		/* Several documents at once: all or none. */
		const char *names[] = {"a", "b", "c"};
		const uint64_t vers[] = {1, 1, 1}, vers2[] = {2, 2, 1};
		const uint8_t *data[] = {(const uint8_t *)"A1", (const uint8_t *)"B1",
		                         (const uint8_t *)"C1"};
		const uint8_t *data2[] = {(const uint8_t *)"A2", (const uint8_t *)"B2",
		                          (const uint8_t *)"C2"};
		const size_t lens[] = {2, 2, 2};
		uint8_t *d = NULL;
		size_t dl = 0;
		uint64_t got = 0;
		CHECK_EQ(store_doc_put_many(st, "t", 3, names, vers, data, lens), 0);
		/* c version 1 exists: a and b version 2 must not be stored */
		CHECK_EQ(store_doc_put_many(st, "t", 3, names, vers2, data2, lens), QS_ERR_EXISTS);
		CHECK_EQ(store_doc_get(st, "t", "a", 0, &d, &dl, &got), 0);
		CHECK_EQ(got, 1);
		CHECK(dl == 2 && memcmp(d, "A1", 2) == 0);
		free(d);
		CHECK_EQ(store_doc_get(st, "t", "b", 2, &d, &dl, NULL), QS_ERR_NOT_FOUND);
		CHECK_EQ(store_doc_get(st, "t", "c", 0, &d, &dl, &got), 0);
		CHECK(got == 1 && dl == 2 && memcmp(d, "C1", 2) == 0);
		free(d);
	}

	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, writer, (void *)i);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], &ret);
		bad += ret != NULL;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(store_count_signatures(st, &n), 0);
	CHECK_EQ(n, THREADS * PER_THREAD);
	store_close(st);

	/* Reopen: everything is still there. */
	CHECK_EQ(store_open_sqlite(dir, &st), 0);
	CHECK_EQ(store_count_signatures(st, &n), 0);
	CHECK_EQ(n, THREADS * PER_THREAD);
	store_close(st);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 2;
	CHECK_DONE();
}
