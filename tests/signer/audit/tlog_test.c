/*
 * tlog_test.c - the on-disk audit log: group commit under concurrency,
 * reopen, torn tails, tampering and rollback refused, and fail-closed
 * appends while the disk cannot be written (tmpfs full, RLIMIT_FSIZE,
 * signer down) that recover by themselves.
 *
 * usage: tlog_test [--bench]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../../proto/check.h"
#include "merkle.h"
#include "note.h"
#include "qs_err.h"
#include "qs_limits.h"
#include "store.h"
#include "tlog.h"

#define ORIGIN "audit.test/log"

static EVP_PKEY *key, *ed_key, *other_key;
static int sign_should_fail;

static int
test_sign(void *arg, const uint8_t *msg, size_t len, uint8_t *sig, size_t *sig_len)
{
	if (__atomic_load_n(&sign_should_fail, __ATOMIC_SEQ_CST))
		return qs_fail(QS_ERR_PKCS11, "token unplugged");
	return qs_note_sign_evp(arg, msg, len, sig, sig_len);
}

static struct qs_note_signer
signer_for(EVP_PKEY *k)
{
	struct qs_note_signer s;

	if (qs_note_signer_init(&s, ORIGIN, k, test_sign, k) != 0)
		abort();
	return s;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
rm_rf(const char *dir)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static off_t
file_size(const char *dir, const char *name)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static int
append_str(struct tlog *l, const char *s, uint64_t *idx)
{
	struct tlog_rec rec = {(const uint8_t *)s, strlen(s)};
	return tlog_append(l, &rec, 1, idx);
}

static int
entry_is(struct tlog *l, uint64_t idx, const char *want)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int ok = tlog_entry(l, idx, &b, &n) == 0 && n == strlen(want) && memcmp(b, want, n) == 0;
	free(b);
	return ok;
}

/* Everything an auditor would check: the checkpoint verifies, its root is
 * the tree's, sample entries are included, old sizes are consistent. */
static void
verify_log(struct tlog *l, EVP_PKEY *k)
{
	struct qs_checkpoint cp;
	char *note = NULL, *text = NULL;
	size_t nl = 0, tl = 0, plen = 0;
	qs_hash root, lh, path[QS_MAX_MERKLE_PATH], old;
	uint64_t size = tlog_size(l);

	CHECK_EQ(tlog_checkpoint(l, &note, &nl), 0);
	CHECK_EQ(qs_note_open(note, nl, ORIGIN, k, &text, &tl), 0);
	CHECK_EQ(qs_checkpoint_parse(text, tl, ORIGIN, &cp), 0);
	free(text);
	text = NULL;
	CHECK_EQ(cp.size, size);
	CHECK_EQ(tlog_root(l, size, root), 0);
	CHECK(memcmp(root, cp.root, 32) == 0);
	for (uint64_t i = 0; i < size; i += 1 + size / 50) {
		uint8_t *b = NULL;
		size_t n = 0;
		CHECK_EQ(tlog_entry(l, i, &b, &n), 0);
		CHECK_EQ(qs_merkle_leaf_hash(b, n, lh), 0);
		free(b);
		CHECK_EQ(tlog_inclusion_proof(l, i, size, path, QS_MAX_MERKLE_PATH, &plen), 0);
		CHECK_EQ(qs_merkle_inclusion_verify(i, size, lh, path, plen, cp.root), 0);
		CHECK_EQ(tlog_root(l, i, old), 0);
		CHECK_EQ(tlog_consistency_proof(l, i, size, path, QS_MAX_MERKLE_PATH, &plen), 0);
		CHECK_EQ(qs_merkle_consistency_verify(i, size, old, cp.root, path, plen), 0);
	}
	{
		uint8_t *b = NULL;
		size_t n = 0;
		CHECK_EQ(tlog_entry(l, size, &b, &n), QS_ERR_NOT_FOUND);
		CHECK(b == NULL);
	}
	free(note);
}

/* tlog_read's callback in test_basic: entries {"seq":N} in order from
 * next; returns 7 (a stop) at stop_at, if set. */
struct read_seen {
	uint64_t next, stop_at;
};

static int
read_check(void *arg, uint64_t index, const uint8_t *data, size_t len)
{
	struct read_seen *rs = arg;
	char want[32];

	if (rs->stop_at != 0 && index == rs->stop_at)
		return 7;
	snprintf(want, sizeof(want), "{\"seq\":%llu}", (unsigned long long)index);
	CHECK_EQ(index, rs->next);
	CHECK(len == strlen(want) && memcmp(data, want, len) == 0);
	rs->next = index + 1;
	return 0;
}

static void
test_basic(const char *base, EVP_PKEY *k)
{
	char dir[512];
	struct qs_note_signer s = signer_for(k);
	struct tlog_open_report rep;
	struct tlog *l = NULL, *l2 = NULL;
	struct tlog_rec bad[2] = {{(const uint8_t *)"a\nb", 3}, {(const uint8_t *)"", 0}};
	uint64_t idx = 99;
	char buf[64];

	snprintf(dir, sizeof(dir), "%s/basic-%s", base, EVP_PKEY_get0_type_name(k));
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.created, 1);
	CHECK_EQ(tlog_size(l), 0);
	verify_log(l, k);
	for (int i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "{\"seq\":%d}", i);
		CHECK_EQ(append_str(l, buf, &idx), 0);
		CHECK_EQ(idx, i);
	}
	CHECK_EQ(tlog_size(l), 10);
	CHECK(entry_is(l, 3, "{\"seq\":3}"));
	{
		/* A range, in order; a stop passes through; past the end refused. */
		struct read_seen rs = {2, 0};
		CHECK_EQ(tlog_read(l, 2, 9, read_check, &rs), 0);
		CHECK_EQ(rs.next, 9);
		rs.next = 0;
		rs.stop_at = 4;
		CHECK_EQ(tlog_read(l, 0, 10, read_check, &rs), 7);
		CHECK_EQ(rs.next, 4);
		CHECK_EQ(tlog_read(l, 5, 11, read_check, &rs), QS_ERR_NOT_FOUND);
	}
	verify_log(l, k);
	/* bad input changes nothing */
	CHECK_EQ(tlog_append(l, bad, 1, &idx), QS_ERR_INVALID);
	CHECK_EQ(tlog_append(l, bad + 1, 1, &idx), QS_ERR_INVALID);
	CHECK_EQ(tlog_append(l, bad, 0, &idx), QS_ERR_INVALID);
	CHECK_EQ(tlog_size(l), 10);
	/* a second opener is refused while the first holds the log */
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l2, NULL), QS_ERR_PRECONDITION);
	tlog_close(l);

	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.created, 0);
	CHECK_EQ(rep.size, 10);
	CHECK_EQ(rep.truncated_bytes, 0);
	CHECK(entry_is(l, 9, "{\"seq\":9}"));
	CHECK_EQ(append_str(l, "{\"after\":\"reopen\"}", &idx), 0);
	CHECK_EQ(idx, 10);
	verify_log(l, k);
	tlog_close(l);
	/* another log's name: refused */
	CHECK_EQ(tlog_open(dir, "audit.test/other", &s, &l, NULL), QS_ERR_PRECONDITION);
}

#define THREADS 8
#define CALLS 150

struct worker {
	struct tlog *l;
	int id;
	uint64_t first[CALLS];
	int fails;
};

static void
entry_text(char *buf, size_t cap, int t, int c, int j)
{
	snprintf(buf, cap, "{\"thread\":%d,\"call\":%d,\"part\":%d}", t, c, j);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	char bufs[3][96];
	struct tlog_rec recs[3];

	for (int c = 0; c < CALLS; c++) {
		int n = 1 + (w->id + c) % 3;
		for (int j = 0; j < n; j++) {
			entry_text(bufs[j], sizeof(bufs[j]), w->id, c, j);
			recs[j].data = (const uint8_t *)bufs[j];
			recs[j].len = strlen(bufs[j]);
		}
		if (tlog_append(w->l, recs, (size_t)n, &w->first[c]) != 0)
			w->fails++;
	}
	return NULL;
}

static void
test_concurrent(const char *base)
{
	char dir[512], want[96];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct tlog_stats st;
	uint64_t total = 0, calls = THREADS * CALLS;
	uint8_t *seen;

	snprintf(dir, sizeof(dir), "%s/concurrent", base);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	for (int t = 0; t < THREADS; t++) {
		w[t].l = l;
		w[t].id = t;
		w[t].fails = 0;
		pthread_create(&th[t], NULL, worker_main, &w[t]);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < THREADS; t++) {
		CHECK_EQ(w[t].fails, 0);
		for (int c = 0; c < CALLS; c++)
			total += 1 + (uint64_t)(t + c) % 3;
	}
	CHECK_EQ(tlog_size(l), total);
	/* every entry sits exactly where its caller was told, so each is
	 * present once: the indices of all calls tile [0, total) */
	seen = calloc(total, 1);
	for (int t = 0; t < THREADS; t++)
		for (int c = 0; c < CALLS; c++)
			for (int j = 0; j < 1 + (t + c) % 3; j++) {
				uint64_t i = w[t].first[c] + (uint64_t)j;
				entry_text(want, sizeof(want), t, c, j);
				CHECK(i < total && entry_is(l, i, want));
				if (i < total)
					seen[i]++;
			}
	for (uint64_t i = 0; i < total; i++)
		CHECK_EQ(seen[i], 1);
	free(seen);
	tlog_get_stats(l, &st);
	printf("concurrent: %d threads, %llu calls, %llu entries, %llu batches, %llu fsyncs\n",
	       THREADS, (unsigned long long)calls, (unsigned long long)total,
	       (unsigned long long)st.batches, (unsigned long long)st.entry_fsyncs);
	CHECK_EQ(st.entries, total);
	CHECK_EQ(st.entry_fsyncs, st.batches);
	CHECK(st.batches < calls); /* callers really shared fsyncs */
	verify_log(l, key);
	tlog_close(l);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	CHECK_EQ(tlog_size(l), total);
	verify_log(l, key);
	tlog_close(l);
}

/* Append raw bytes to a file. */
static void
append_file(const char *dir, const char *name, const void *buf, size_t n)
{
	char p[1024];
	FILE *f;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "ab")) == NULL || fwrite(buf, 1, n, f) != n || fclose(f) != 0)
		abort();
}

/* A well-formed record for data. */
static size_t
make_record(const char *data, uint8_t *out)
{
	size_t n = strlen(data);
	qs_hash lh;

	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	memcpy(out + 4, data, n);
	if (qs_merkle_leaf_hash((const uint8_t *)data, n, lh) != 0)
		abort();
	memcpy(out + 4 + n, lh, 4);
	return n + 8;
}

static void
test_torn_tail(const char *base)
{
	char dir[512];
	struct qs_note_signer s = signer_for(key);
	struct tlog_open_report rep;
	struct tlog *l = NULL;
	uint8_t rec[128];
	uint64_t idx;
	off_t committed_len;
	size_t n;

	snprintf(dir, sizeof(dir), "%s/torn", base);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	for (int i = 0; i < 5; i++)
		CHECK_EQ(append_str(l, "{\"committed\":true}", &idx), 0);
	tlog_close(l);
	committed_len = file_size(dir, "entries");

	/* a complete record that never got its checkpoint, then a record cut
	 * mid-way by a crash, then garbage */
	n = make_record("{\"uncommitted\":1}", rec);
	append_file(dir, "entries", rec, n);
	n = make_record("{\"torn\":\"record with a long body\"}", rec);
	append_file(dir, "entries", rec, n / 2);
	append_file(dir, "entries", "\xff\xfe garbage \x01\x02", 13);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.size, 5);
	CHECK_EQ(rep.dropped_records, 1);
	CHECK_EQ(rep.truncated_bytes, 8 + 17 + n / 2 + 13);
	CHECK_EQ(file_size(dir, "entries"), committed_len);
	CHECK_EQ(append_str(l, "{\"after\":\"torn\"}", &idx), 0);
	CHECK_EQ(idx, 5);
	CHECK(entry_is(l, 5, "{\"after\":\"torn\"}"));
	verify_log(l, key);
	tlog_close(l);

	/* a header cut after two bytes */
	append_file(dir, "entries", "\x00\x00", 2);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.truncated_bytes, 2);
	CHECK_EQ(rep.size, 6);
	tlog_close(l);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.truncated_bytes, 0);
	tlog_close(l);
}

/* Read a whole small file. */
static uint8_t *
slurp(const char *dir, const char *name, size_t *len)
{
	char p[1024];
	FILE *f;
	uint8_t *buf = malloc(1 << 20);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (buf == NULL || (f = fopen(p, "rb")) == NULL)
		abort();
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static void
spill(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char p[1024];
	FILE *f;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	if ((f = fopen(p, "wb")) == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		abort();
}

/* Open a log made of the given files; expect err. */
static void
expect_open(const char *base, const char *tag, const uint8_t *ent, size_t elen, const uint8_t *ck,
            size_t clen, int err, const char *detail_has)
{
	char dir[512];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	int r;

	snprintf(dir, sizeof(dir), "%s/tamper-%s", base, tag);
	mkdir(dir, 0700);
	if (ent != NULL)
		spill(dir, "entries", ent, elen);
	if (ck != NULL)
		spill(dir, "checkpoint", ck, clen);
	r = tlog_open(dir, ORIGIN, &s, &l, NULL);
	if (r != err || (detail_has && strstr(qs_errdetail(), detail_has) == NULL))
		fprintf(stderr, "tamper %s: got %d: %s\n", tag, r, qs_errdetail());
	CHECK_EQ(r, err);
	if (detail_has != NULL)
		CHECK(strstr(qs_errdetail(), detail_has) != NULL);
	tlog_close(l);
}

/* The records of an entries file (format 2): where each starts, its
 * length on disk, and whether it is a checkpoint record. */
struct recs {
	size_t off[64], len[64];
	int ck[64];
	int n;
};

static void
parse_recs(const uint8_t *b, size_t len, struct recs *r)
{
	size_t off = 8;

	r->n = 0;
	while (off + 8 <= len && r->n < 64) {
		uint32_t h = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 |
		             (uint32_t)b[off + 2] << 8 | b[off + 3];
		r->off[r->n] = off;
		r->ck[r->n] = (h & 0x80000000u) != 0;
		r->len[r->n] = (h & 0x7fffffffu) + 8;
		off += r->len[r->n++];
	}
}

/* The record of entry i (not counting checkpoint records). */
static int
entry_rec(const struct recs *r, int i)
{
	for (int k = 0; k < r->n; k++)
		if (!r->ck[k] && i-- == 0)
			return k;
	abort();
}

/* Rewrite the checksum of the record at off (data of n bytes). */
static void
rehash_rec(uint8_t *b, size_t off, size_t n)
{
	qs_hash lh;

	if (qs_merkle_leaf_hash(b + off + 4, n, lh) != 0)
		abort();
	memcpy(b + off + 4 + n, lh, 4);
}

static void
test_tamper(const char *base)
{
	char dir[512], buf[32];
	struct qs_note_signer s = signer_for(key), so = signer_for(other_key);
	struct tlog *l = NULL;
	struct tlog_open_report rep;
	struct recs rs;
	uint8_t *ent, *t, *ent_other;
	size_t elen, olen, rec = 8 + 9, off;
	uint64_t idx;
	int k, k2;

	snprintf(dir, sizeof(dir), "%s/pristine", base);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	for (int i = 0; i < 8; i++) {
		snprintf(buf, sizeof(buf), "entry-%03d", i); /* 9 bytes: records of 17 */
		CHECK_EQ(append_str(l, buf, &idx), 0);
	}
	tlog_close(l);
	/* one file, no checkpoint file: the checkpoint is a record of it */
	CHECK_EQ(file_size(dir, "checkpoint"), -1);
	ent = slurp(dir, "entries", &elen);
	CHECK(memcmp(ent, "QSTLOG2\n", 8) == 0);
	parse_recs(ent, elen, &rs);
	CHECK_EQ(rs.n, 17); /* the empty log's checkpoint, then entry + checkpoint x 8 */
	CHECK(rs.ck[0] && rs.ck[rs.n - 1] && !rs.ck[1]);
	CHECK_EQ(rs.off[rs.n - 1] + rs.len[rs.n - 1], elen);

	/* the pristine copy opens */
	expect_open(base, "none", ent, elen, NULL, 0, 0, NULL);

	t = malloc(elen);
	/* modified entry (its checksum no longer matches), found although
	 * the scan stops there: a verifying checkpoint lies beyond it */
	memcpy(t, ent, elen);
	t[rs.off[entry_rec(&rs, 3)] + 4 + 6] ^= 1;
	expect_open(base, "modified", t, elen, NULL, 0, QS_ERR_PRECONDITION, "entry 3");
	/* the same in the last commit's entry, its checkpoint record intact */
	memcpy(t, ent, elen);
	t[rs.off[entry_rec(&rs, 7)] + 4 + 6] ^= 1;
	expect_open(base, "modified-last", t, elen, NULL, 0, QS_ERR_PRECONDITION, "entry 7");
	/* a damaged record length: the framing is lost, the later checkpoint
	 * is still found */
	memcpy(t, ent, elen);
	t[rs.off[entry_rec(&rs, 2)]] = 0x7f;
	expect_open(base, "length", t, elen, NULL, 0, QS_ERR_PRECONDITION, "entry 2");
	/* modified entry with its checksum recomputed: the root catches it */
	memcpy(t, ent, elen);
	make_record("entry-999", t + rs.off[entry_rec(&rs, 3)]);
	expect_open(base, "modified-rehashed", t, elen, NULL, 0, QS_ERR_PRECONDITION,
	            "does not match its signed checkpoint");
	/* deleted entry */
	k = entry_rec(&rs, 3);
	memcpy(t, ent, elen);
	memmove(t + rs.off[k], t + rs.off[k] + rec, elen - rs.off[k] - rec);
	expect_open(base, "deleted", t, elen - rec, NULL, 0, QS_ERR_PRECONDITION,
	            "7 entries but its signed checkpoint covers 8");
	/* reordered entries */
	k = entry_rec(&rs, 2);
	k2 = entry_rec(&rs, 5);
	memcpy(t, ent, elen);
	memcpy(t + rs.off[k], ent + rs.off[k2], rec);
	memcpy(t + rs.off[k2], ent + rs.off[k], rec);
	expect_open(base, "reordered", t, elen, NULL, 0, QS_ERR_PRECONDITION,
	            "does not match its signed checkpoint");
	/* tampered checkpoint text, checksum recomputed: its signature fails */
	k = rs.n - 1;
	memcpy(t, ent, elen);
	t[rs.off[k] + 4 + strlen(ORIGIN) + 1] = '9'; /* the size line */
	rehash_rec(t, rs.off[k], rs.len[k] - 8);
	expect_open(base, "ckpt-edit", t, elen, NULL, 0, QS_ERR_PRECONDITION,
	            "checkpoint refused");
	/* entries without any checkpoint record */
	off = 8;
	memcpy(t, "QSTLOG2\n", 8);
	for (int i = 0; i < rs.n; i++)
		if (!rs.ck[i]) {
			memcpy(t + off, ent + rs.off[i], rs.len[i]);
			off += rs.len[i];
		}
	expect_open(base, "no-checkpoint", t, off, NULL, 0, QS_ERR_PRECONDITION,
	            "no checkpoint record");
	/* checkpoints signed by a key we do not trust */
	{
		char ddir[512];
		struct tlog *lo = NULL;
		snprintf(ddir, sizeof(ddir), "%s/otherkey", base);
		CHECK_EQ(tlog_open(ddir, ORIGIN, &so, &lo, NULL), 0);
		tlog_close(lo);
		ent_other = slurp(ddir, "entries", &olen);
		expect_open(base, "otherkey", ent_other, olen, NULL, 0, QS_ERR_PRECONDITION,
		            "checkpoint refused");
		free(ent_other);
	}
	/* not a log */
	memcpy(t, ent, elen);
	t[0] = 'X';
	expect_open(base, "magic", t, elen, NULL, 0, QS_ERR_PRECONDITION, "bad header");

	/* The last checkpoint record cut short: what a crash before its
	 * fdatasync leaves. Nothing in it was acknowledged: the log opens at
	 * the checkpoint before, and says what it cut. */
	snprintf(dir, sizeof(dir), "%s/tamper-cut", base);
	mkdir(dir, 0700);
	spill(dir, "entries", ent, elen - 5);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.size, 7);
	CHECK_EQ(rep.dropped_records, 1);
	CHECK_EQ(rep.truncated_bytes, rec + rs.len[rs.n - 1] - 5);
	verify_log(l, key);
	tlog_close(l);
	free(t);
	free(ent);
}

/* A log in format 1, as the code before checkpoint records wrote it: the
 * entries file "QSTLOG1\n" + entry records, the signed checkpoint of the
 * first `covered` of them in the file "checkpoint", optionally an
 * uncommitted record after them. */
static void
make_v1_log(const char *dir, int n, int covered, int uncommitted)
{
	struct qs_note_signer s = signer_for(key);
	struct qs_merkle_tree *tree = NULL;
	uint8_t rec[128];
	char buf[64], *text = NULL, *note = NULL;
	size_t tl = 0, nl = 0, rl;
	qs_hash lh, root;

	mkdir(dir, 0700);
	spill(dir, "entries", (const uint8_t *)"QSTLOG1\n", 8);
	if (qs_merkle_tree_new(&tree) != 0)
		abort();
	for (int i = 0; i < n + uncommitted; i++) {
		snprintf(buf, sizeof(buf), "{\"v1\":%d}", i);
		rl = make_record(buf, rec);
		append_file(dir, "entries", rec, rl);
		if (qs_merkle_leaf_hash((const uint8_t *)buf, strlen(buf), lh) != 0 ||
		    qs_merkle_tree_append(tree, lh) != 0)
			abort();
	}
	if (qs_merkle_tree_root(tree, (uint64_t)covered, root) != 0 ||
	    qs_checkpoint_text(ORIGIN, (uint64_t)covered, root, &text, &tl) != 0 ||
	    qs_note_sign(&s, text, tl, &note, &nl) != 0)
		abort();
	spill(dir, "checkpoint", (const uint8_t *)note, nl);
	free(text);
	free(note);
	qs_merkle_tree_free(tree);
}

/* Check a migrated log: format 2, no checkpoint file, n entries of the
 * old log, and it takes new entries. */
static void
check_migrated(const char *dir, int n)
{
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	uint8_t *ent;
	size_t elen;
	uint64_t idx;
	char buf[64];

	ent = slurp(dir, "entries", &elen);
	CHECK(memcmp(ent, "QSTLOG2\n", 8) == 0);
	free(ent);
	CHECK_EQ(file_size(dir, "checkpoint"), -1);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	if (l == NULL)
		return;
	CHECK_EQ(tlog_size(l), (uint64_t)n);
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "{\"v1\":%d}", i);
		CHECK(entry_is(l, (uint64_t)i, buf));
	}
	verify_log(l, key);
	CHECK_EQ(append_str(l, "{\"v2\":1}", &idx), 0);
	CHECK_EQ(idx, (uint64_t)n);
	tlog_close(l);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	CHECK_EQ(tlog_size(l), (uint64_t)n + 1);
	CHECK(entry_is(l, (uint64_t)n, "{\"v2\":1}"));
	verify_log(l, key);
	tlog_close(l);
}

/*
 * Migration from format 1 at open: a log made as the earlier code made it
 * opens with its entries, becomes format 2, and a crash at each step of
 * the migration (fault points in a child killed there) leaves a log that
 * opens and finishes the migration. Format 1 damage is still refused.
 */
static void
test_migrate(const char *base)
{
	static const char *const points[] = {"tlog.migrate_between", "tlog.migrate_header"};
	struct qs_note_signer s = signer_for(key);
	struct tlog_open_report rep;
	struct tlog *l = NULL;
	char dir[512];
	uint8_t *ent, *ck;
	size_t elen, clen;

	snprintf(dir, sizeof(dir), "%s/v1", base);
	make_v1_log(dir, 6, 6, 1); /* a torn batch after the checkpoint, too */
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.size, 6);
	CHECK_EQ(rep.dropped_records, 1);
	CHECK_EQ(rep.created, 0);
	tlog_close(l);
	check_migrated(dir, 6);
	printf("ok: a format 1 log (6 entries + an uncommitted one) migrates to format 2\n");

	snprintf(dir, sizeof(dir), "%s/v1-empty", base);
	make_v1_log(dir, 0, 0, 0);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
	CHECK_EQ(rep.size, 0);
	tlog_close(l);
	check_migrated(dir, 0);

	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		int status = 0;
		pid_t pid;

		snprintf(dir, sizeof(dir), "%s/v1-crash-%zu", base, i);
		make_v1_log(dir, 4, 4, 0);
		fflush(NULL);
		if ((pid = fork()) == 0) {
			setenv("QS_FAULT", points[i], 1);
			(void)tlog_open(dir, ORIGIN, &s, &l, NULL);
			_exit(4); /* the fault point did not fire */
		}
		CHECK(pid > 0);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
		CHECK_EQ(rep.size, 4);
		tlog_close(l);
		check_migrated(dir, 4);
		printf("ok: a crash at %s: the log opens with its 4 entries, migrated\n",
		       points[i]);
	}

	/* format 1 damage: refused as before */
	snprintf(dir, sizeof(dir), "%s/v1-src", base);
	make_v1_log(dir, 8, 8, 0);
	ent = slurp(dir, "entries", &elen);
	ck = slurp(dir, "checkpoint", &clen);
	ent[8 + 3 * 16 + 6] ^= 1; /* records of {"v1":N}: 8 bytes, 16 on disk */
	expect_open(base, "v1-modified", ent, elen, ck, clen, QS_ERR_PRECONDITION, "entry 3");
	ent[8 + 3 * 16 + 6] ^= 1;
	expect_open(base, "v1-rollback", ent, elen - 16, ck, clen, QS_ERR_PRECONDITION,
	            "rolled back");
	expect_open(base, "v1-no-checkpoint", ent, elen, NULL, 0, QS_ERR_PRECONDITION,
	            "checkpoint file is missing");
	expect_open(base, "v1-no-entries", NULL, 0, ck, clen, QS_ERR_PRECONDITION,
	            "entries file is missing");
	free(ent);
	free(ck);
}

static void
test_signer_down(const char *base)
{
	char dir[512];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	struct tlog_stats st;
	uint64_t idx = 77;
	off_t len;

	snprintf(dir, sizeof(dir), "%s/signer-down", base);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(append_str(l, "{\"ok\":1}", &idx), 0);
	len = file_size(dir, "entries");
	__atomic_store_n(&sign_should_fail, 1, __ATOMIC_SEQ_CST);
	CHECK_EQ(append_str(l, "{\"lost\":1}", &idx), QS_ERR_UNAVAILABLE);
	CHECK(strstr(qs_errdetail(), "token unplugged") != NULL);
	CHECK_EQ(append_str(l, "{\"lost\":2}", &idx), QS_ERR_UNAVAILABLE);
	CHECK_EQ(tlog_size(l), 3);
	CHECK_EQ(file_size(dir, "entries"), len); /* nothing written: no checkpoint */
	__atomic_store_n(&sign_should_fail, 0, __ATOMIC_SEQ_CST);
	CHECK_EQ(append_str(l, "{\"back\":1}", &idx), 0);
	CHECK_EQ(idx, 3);
	CHECK(entry_is(l, 3, "{\"back\":1}"));
	tlog_get_stats(l, &st);
	CHECK_EQ(st.failed_batches, 2);
	CHECK_EQ(st.repairs, 2);
	verify_log(l, key);
	tlog_close(l);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	CHECK_EQ(tlog_size(l), 4);
	CHECK(entry_is(l, 3, "{\"back\":1}"));
	tlog_close(l);
}

/*
 * kill -9 at every point of a commit loses no acknowledged entry: fault
 * points in a child process, killed there, with 3 entries acknowledged
 * before and a fourth in the batch. After the write or the fdatasync the
 * batch may be there (it was never acknowledged, and it is whole with its
 * checkpoint record); a failed batch whose durability is unknown
 * (checkpoint_unsure) is cut back by a repair, and a crash before the
 * repair keeps it, after it not.
 */
static void
test_commit_crash(const char *base)
{
	static const char *const points[] = {"tlog.after_write", "tlog.after_sync",
	                                     "tlog.checkpoint_unsure,tlog.repair_start",
	                                     "tlog.checkpoint_unsure,tlog.repair_done"};
	static const uint64_t want_size[] = {4, 4, 4, 3};

	for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		char dir[512];
		struct qs_note_signer s = signer_for(key);
		struct tlog *l = NULL;
		uint64_t idx = 0;
		int status = 0;
		pid_t pid;

		snprintf(dir, sizeof(dir), "%s/commit-crash-%zu", base, i);
		CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
		for (int k = 0; k < 3; k++)
			CHECK_EQ(append_str(l, "{\"acked\":1}", &idx), 0);
		tlog_close(l);
		fflush(NULL);
		if ((pid = fork()) == 0) {
			setenv("QS_FAULT", points[i], 1);
			if (tlog_open(dir, ORIGIN, &s, &l, NULL) != 0)
				_exit(3);
			(void)append_str(l, "{\"batch\":1}", &idx);
			_exit(4); /* the fault point did not fire */
		}
		CHECK(pid > 0);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		l = NULL;
		if (tlog_open(dir, ORIGIN, &s, &l, NULL) != 0)
			fprintf(stderr, "crash at %s: log does not open: %s\n", points[i],
			        qs_errdetail());
		CHECK(l != NULL);
		if (l == NULL)
			continue;
		CHECK_EQ(tlog_size(l), want_size[i]);
		for (int k = 0; k < 3; k++)
			CHECK(entry_is(l, (uint64_t)k, "{\"acked\":1}"));
		if (want_size[i] == 4)
			CHECK(entry_is(l, 3, "{\"batch\":1}"));
		verify_log(l, key);
		CHECK_EQ(append_str(l, "{\"after\":1}", &idx), 0);
		CHECK_EQ(idx, want_size[i]);
		tlog_close(l);
		printf("ok: kill -9 at %s: the log opens with %llu entries\n", points[i],
		       (unsigned long long)want_size[i]);
	}
}

/* 20 entries of 300 bytes: more than the free part of a tmpfs page. */
static int
append_big(struct tlog *l, int tag, uint64_t *idx)
{
	static char bufs[20][301];
	struct tlog_rec recs[20];

	for (int i = 0; i < 20; i++) {
		memset(bufs[i], 'a' + (char)(tag % 26), 300);
		snprintf(bufs[i], 32, "{\"tag\":%d,\"i\":%d,\"pad\":\"", tag, i);
		bufs[i][strlen(bufs[i])] = 'x';
		memcpy(bufs[i] + 298, "\"}", 2);
		bufs[i][300] = '\0';
		recs[i].data = (const uint8_t *)bufs[i];
		recs[i].len = 300;
	}
	return tlog_append(l, recs, 20, idx);
}

static void
test_disk_full(const char *base)
{
	char mnt[512], dir[600], ballast[600], chunk[4096];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	uint64_t idx = 0, size;
	int fd, fails = 0;
	off_t len;

	snprintf(mnt, sizeof(mnt), "%s/tmpfs", base);
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k,mode=0700") != 0) {
		printf("disk full: SKIP tmpfs part (mount: %s); RLIMIT_FSIZE part still runs\n",
		       strerror(errno));
		return;
	}
	snprintf(dir, sizeof(dir), "%s/audit", mnt);
	snprintf(ballast, sizeof(ballast), "%s/ballast", mnt);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(append_big(l, i, &idx), 0);
	size = tlog_size(l);
	len = file_size(dir, "entries");
	/* fill the file system */
	memset(chunk, 'B', sizeof(chunk));
	fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	while (write(fd, chunk, sizeof(chunk)) > 0)
		;
	CHECK_EQ(errno, ENOSPC);
	close(fd);
	for (int i = 0; i < 5; i++) {
		int r = append_big(l, 100 + i, &idx);
		CHECK_EQ(r, QS_ERR_UNAVAILABLE);
		if (r == QS_ERR_UNAVAILABLE)
			fails++;
	}
	printf("disk full: %d appends refused: %s\n", fails, qs_errdetail());
	CHECK(strstr(qs_errdetail(), "No space left on device") != NULL);
	CHECK_EQ(tlog_size(l), size);
	CHECK_EQ(file_size(dir, "entries"), len);
	/* room again: the log recovers by itself */
	unlink(ballast);
	CHECK_EQ(append_big(l, 7, &idx), 0);
	CHECK_EQ(idx, size);
	{
		uint8_t *b = NULL;
		size_t n = 0;
		CHECK_EQ(tlog_entry(l, idx, &b, &n), 0);
		CHECK(n == 300 && strncmp((char *)b, "{\"tag\":7,", 9) == 0);
		free(b);
	}
	verify_log(l, key);
	tlog_close(l);
	/* nothing of the refused batches surfaces after a restart */
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	CHECK_EQ(tlog_size(l), size + 20);
	for (uint64_t i = 0; i < size + 20; i++) {
		uint8_t *b = NULL;
		size_t n = 0;
		CHECK_EQ(tlog_entry(l, i, &b, &n), 0);
		CHECK(n < 10 || strncmp((char *)b, "{\"tag\":10", 9) != 0);
		free(b);
	}
	tlog_close(l);
	CHECK_EQ(umount(mnt), 0);
}

static void
test_fsize_limit(const char *base)
{
	char dir[512];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	struct rlimit old, lim;
	uint64_t idx = 0, size;
	off_t len;

	snprintf(dir, sizeof(dir), "%s/fsize", base);
	CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
	CHECK_EQ(append_big(l, 1, &idx), 0);
	size = tlog_size(l);
	len = file_size(dir, "entries");
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)len + 1000; /* the next 6 KB batch cannot fit */
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
	CHECK_EQ(append_big(l, 2, &idx), QS_ERR_UNAVAILABLE);
	CHECK(strstr(qs_errdetail(), "File too large") != NULL);
	CHECK_EQ(append_big(l, 3, &idx), QS_ERR_UNAVAILABLE);
	CHECK_EQ(file_size(dir, "entries"), len); /* the partial write was cut off */
	CHECK_EQ(tlog_size(l), size);
	CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
	CHECK_EQ(append_big(l, 4, &idx), 0);
	CHECK_EQ(idx, size);
	verify_log(l, key);
	tlog_close(l);
}

struct bench_arg {
	struct tlog *l;
	int calls;
};

static void *
bench_worker(void *p)
{
	struct bench_arg *a = p;
	char buf[301];
	struct tlog_rec rec = {(const uint8_t *)buf, 300};
	uint64_t idx;

	memset(buf, 'e', 300);
	buf[300] = '\0';
	for (int i = 0; i < a->calls; i++)
		if (tlog_append(a->l, &rec, 1, &idx) != 0)
			abort();
	return NULL;
}

/* Append entries of `size` bytes ({"seq":N,"pad":"x..."}) to l, 4096 a
 * call, until it has `want`. */
static void
bench_fill(struct tlog *l, uint64_t want, size_t size)
{
	static char bufs[4096][401];
	struct tlog_rec recs[4096];
	uint64_t idx;

	for (uint64_t total = tlog_size(l); total < want;) {
		size_t n = want - total < 4096 ? (size_t)(want - total) : 4096;
		for (size_t i = 0; i < n; i++) {
			memset(bufs[i], 'z', size);
			snprintf(bufs[i], 40, "{\"seq\":%llu,\"pad\":\"",
			         (unsigned long long)(total + i));
			bufs[i][strlen(bufs[i])] = 'x';
			memcpy(bufs[i] + size - 2, "\"}", 2);
			recs[i].data = (const uint8_t *)bufs[i];
			recs[i].len = size;
		}
		CHECK_EQ(tlog_append(l, recs, n, &idx), 0);
		total += n;
	}
}

static void
bench(const char *base)
{
	char dir[512];
	struct qs_note_signer s = signer_for(key);
	struct tlog *l = NULL;
	struct tlog_stats st;
	struct tlog_open_report rep;
	int nthreads[] = {1, 8, 32};

	for (size_t k = 0; k < sizeof(nthreads) / sizeof(nthreads[0]); k++) {
		int nt = nthreads[k], calls = nt == 1 ? 2000 : 16000 / nt;
		pthread_t th[32];
		struct bench_arg a = {NULL, calls};
		double t0;

		snprintf(dir, sizeof(dir), "%s/bench-%d", base, nt);
		CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
		a.l = l;
		t0 = now();
		for (int t = 0; t < nt; t++)
			pthread_create(&th[t], NULL, bench_worker, &a);
		for (int t = 0; t < nt; t++)
			pthread_join(th[t], NULL);
		t0 = now() - t0;
		tlog_get_stats(l, &st);
		printf("bench: %2d thread(s): %d appends of 300 B in %.2f s = %.0f appends/s, "
		       "%llu fsyncs (%.1f entries per batch)\n",
		       nt, nt * calls, t0, nt * calls / t0, (unsigned long long)st.entry_fsyncs,
		       (double)st.entries / (double)st.batches);
		tlog_close(l);
	}

	/* one million entries */
	{
		qs_hash path[QS_MAX_MERKLE_PATH], root;
		size_t plen = 0;
		double t0;

		snprintf(dir, sizeof(dir), "%s/bench-1m", base);
		CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, NULL), 0);
		t0 = now();
		bench_fill(l, 1000000, 300);
		printf("bench: wrote 1,000,000 entries in %.2f s (4096 per call)\n", now() - t0);
		tlog_close(l);
		t0 = now();
		CHECK_EQ(tlog_open(dir, ORIGIN, &s, &l, &rep), 0);
		printf("bench: open (read + verify + rebuild tree) of 1,000,000 entries (%.0f MB): "
		       "%.2f s\n",
		       (double)file_size(dir, "entries") / 1e6, now() - t0);
		CHECK_EQ(tlog_size(l), 1000000);
		CHECK_EQ(tlog_root(l, 1000000, root), 0);
		t0 = now();
		for (int i = 0; i < 100000; i++)
			CHECK_EQ(tlog_inclusion_proof(l, (uint64_t)(i * 9973) % 1000000, 1000000,
			                              path, QS_MAX_MERKLE_PATH, &plen),
			         0);
		t0 = now() - t0;
		printf("bench: inclusion proof at 1M: %zu hashes = %zu bytes, %.2f us each\n", plen,
		       plen * 32, t0 / 100000 * 1e6);
		tlog_close(l);
	}
}

static int
count_bytes(void *arg, uint64_t index, const uint8_t *data, size_t len)
{
	(void)index;
	(void)data;
	*(uint64_t *)arg += len;
	return 0;
}

/*
 * tlog_test --pg-open CONNINFO N: the start of a replica on a log of N
 * entries kept in PostgreSQL: fills the log (400-byte entries) up to N,
 * then times tlog_open_store three times.
 */
static int
pg_open_bench(const char *conninfo, uint64_t want)
{
	struct qs_note_signer s = signer_for(key);
	struct store *st = NULL;
	struct tlog *l = NULL;
	double t0;

	CHECK_EQ(store_open_pg(conninfo, 1, &st), 0);
	CHECK_EQ(tlog_open_store(st, ORIGIN, &s, &l, NULL), 0);
	if (l == NULL)
		return 1;
	t0 = now();
	bench_fill(l, want, 400);
	printf("bench: log of %llu entries (filled in %.2f s)\n", (unsigned long long)tlog_size(l),
	       now() - t0);
	tlog_close(l);
	for (int i = 0; i < 3; i++) {
		t0 = now();
		if (tlog_open_store(st, ORIGIN, &s, &l, NULL) != 0) {
			fprintf(stderr, "tlog_open_store: %s\n", qs_errdetail());
			CHECK(0);
			break;
		}
		printf("bench: tlog_open_store of %llu entries: %.3f s\n",
		       (unsigned long long)tlog_size(l), now() - t0);
		if (i == 2 && tlog_size(l) >= 10000) {
			/* What an auditor's export costs the replica: 10,000
			 * entries one query each, then by ranges. */
			uint64_t bytes = 0;
			t0 = now();
			for (uint64_t k = 0; k < 10000; k++) {
				uint8_t *b = NULL;
				size_t len = 0;
				CHECK_EQ(tlog_entry(l, k, &b, &len), 0);
				bytes += len;
				free(b);
			}
			printf("bench: 10000 entries by tlog_entry: %.3f s\n", now() - t0);
			t0 = now();
			CHECK_EQ(tlog_read(l, 0, 10000, count_bytes, &bytes), 0);
			printf("bench: 10000 entries by tlog_read: %.3f s (%llu bytes in all)\n",
			       now() - t0, (unsigned long long)bytes);
		}
		tlog_close(l);
	}
	store_close(st);
	return 0;
}

int
main(int argc, char **argv)
{
	char base[] = "/tmp/tlog_test.XXXXXX";
	int do_bench = argc > 1 && strcmp(argv[1], "--bench") == 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ed_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	other_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key == NULL || ed_key == NULL || other_key == NULL)
		return 2;

	if (argc == 4 && strcmp(argv[1], "--pg-open") == 0) {
		rm_rf(base);
		pg_open_bench(argv[2], strtoull(argv[3], NULL, 10));
	} else if (do_bench) {
		bench(base);
	} else {
		test_basic(base, key);
		test_basic(base, ed_key);
		test_concurrent(base);
		test_torn_tail(base);
		test_tamper(base);
		test_migrate(base);
		test_signer_down(base);
		test_commit_crash(base);
		test_disk_full(base);
		test_fsize_limit(base);
	}
	rm_rf(base);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ed_key);
	EVP_PKEY_free(other_key);
	CHECK_DONE();
}
