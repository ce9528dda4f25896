/* The in-memory index: newest sequence number wins, tombstones, listing. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "index.h"
#include "util.h"

static struct zent put1(uint64_t seq, uint64_t addr)
{
	return (struct zent){ .seq = seq, .nchunks = 1, .loc = { addr, 4096 } };
}

static struct zent tomb(uint64_t seq)
{
	return (struct zent){ .seq = seq };
}

/* A multi-chunk entry whose chunk array is malloc'd, as the store makes them. */
static struct zent putn(uint64_t seq, uint32_t n)
{
	struct zent e = { .seq = seq, .nchunks = n };

	e.chunks = malloc(n * sizeof(*e.chunks));
	assert_non_null(e.chunks);
	for (uint32_t i = 0; i < n; i++)
		e.chunks[i] = (struct zloc){ seq * 1000 + i, 8192 };
	return e;
}

/* The index copies chunk lists: the caller's own is freed after. */
static int update(struct zidx *idx, const char *key, struct zent e)
{
	int ret = zidx_update(idx, key, strlen(key), &e, NULL);

	zent_done(&e);
	return ret;
}

/* The entry for key, decoded into one of a few buffers of the test's; NULL if none. */
static const struct zent *find_bin(struct zidx *idx, const void *key, size_t klen)
{
	static struct zent found[4];
	static unsigned next;
	struct zent *e = &found[next++ % 4];

	return zidx_get(idx, key, klen, e) ? e : NULL;
}

static const struct zent *find(struct zidx *idx, const char *key)
{
	return find_bin(idx, key, strlen(key));
}

static void test_update_find(void **state)
{
	struct zidx *idx = zidx_new();
	const struct zent *e;

	assert_non_null(idx);
	assert_null(find(idx, "a"));
	assert_int_equal(zidx_count(idx), 0);
	assert_int_equal(update(idx, "a", put1(1, 4096)), 1);
	assert_int_equal(update(idx, "b", put1(2, 8192)), 1);
	e = find(idx, "a");
	assert_non_null(e);
	assert_int_equal(e->seq, 1);
	assert_int_equal(e->nchunks, 1);
	assert_int_equal(e->loc.addr, 4096);
	assert_int_equal(e->loc.len, 4096);
	assert_ptr_equal(zent_chunk(e, 0), &e->loc);
	assert_int_equal(find(idx, "b")->loc.addr, 8192);
	assert_null(find(idx, "c"));
	assert_null(find(idx, "ab"));
	assert_int_equal(zidx_count(idx), 2);
	zidx_free(idx);
	zidx_free(NULL);
}

static void shuffle(uint64_t *v, size_t n)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)random() % (i + 1);
		uint64_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

/* Whatever order the versions of a key arrive in, the highest seq stays. */
static void test_newest_wins(void **state)
{
	enum { N = 20 };
	uint64_t seqs[N];

	srandom(1);
	for (int round = 0; round < 200; round++) {
		struct zidx *idx = zidx_new();
		uint64_t max = 0;

		assert_non_null(idx);
		for (int i = 0; i < N; i++)
			seqs[i] = 1 + (uint64_t)random() % 1000 * N + i; /* distinct */
		shuffle(seqs, N);
		for (int i = 0; i < N; i++) {
			int ret = update(idx, "k", put1(seqs[i], seqs[i] * 4096));

			assert_int_equal(ret, seqs[i] > max ? 1 : 0);
			max = MAX(max, seqs[i]);
			assert_int_equal(find(idx, "k")->seq, max);
			assert_int_equal(find(idx, "k")->loc.addr, max * 4096);
		}
		assert_int_equal(zidx_count(idx), 1);
		zidx_free(idx);
	}
}

static void test_older_and_equal_ignored(void **state)
{
	struct zidx *idx = zidx_new();
	struct zent old = { .seq = 99, .nchunks = 99 }, e = putn(3, 4);

	assert_non_null(idx);
	assert_int_equal(update(idx, "k", put1(5, 4096)), 1);
	/* Older: refused, *old untouched, the caller keeps its chunks. */
	assert_int_equal(zidx_update(idx, "k", 1, &e, &old), 0);
	zent_done(&e);
	assert_int_equal(old.seq, 99);
	assert_int_equal(old.nchunks, 99);
	assert_int_equal(find(idx, "k")->seq, 5);
	assert_int_equal(find(idx, "k")->loc.addr, 4096);
	/* Equal seq is not newer either. */
	assert_int_equal(update(idx, "k", put1(5, 8192)), 0);
	assert_int_equal(find(idx, "k")->loc.addr, 4096);
	assert_int_equal(zidx_count(idx), 1);
	zent_done(&e);
	assert_null(e.chunks);
	zidx_free(idx);
}

static int count_listed(const void *key, size_t klen, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static size_t nlisted(struct zidx *idx)
{
	size_t n = 0;
	bool more;

	assert_int_equal(zidx_list(idx, NULL, 0, NULL, 0, 1000, count_listed, &n, &more), 0);
	assert_false(more);
	return n;
}

static void test_tombstone(void **state)
{
	struct zidx *idx = zidx_new();

	assert_non_null(idx);
	assert_int_equal(update(idx, "k", put1(1, 4096)), 1);
	assert_int_equal(update(idx, "j", put1(2, 4096)), 1);
	assert_int_equal(zidx_count(idx), 2);
	assert_int_equal(nlisted(idx), 2);

	assert_int_equal(update(idx, "k", tomb(3)), 1);
	assert_int_equal(zidx_count(idx), 1);
	assert_int_equal(nlisted(idx), 1);
	assert_non_null(find(idx, "k"));
	assert_int_equal(find(idx, "k")->nchunks, 0);
	assert_int_equal(find(idx, "k")->seq, 3);

	/* An older put completing late cannot bring the key back. */
	assert_int_equal(update(idx, "k", put1(2, 8192)), 0);
	assert_int_equal(find(idx, "k")->nchunks, 0);
	assert_int_equal(zidx_count(idx), 1);

	/* A delete of a key never seen still leaves a tombstone. */
	assert_int_equal(update(idx, "new", tomb(10)), 1);
	assert_int_equal(zidx_count(idx), 1);
	assert_int_equal(update(idx, "new", put1(9, 4096)), 0);
	assert_int_equal(zidx_count(idx), 1);

	/* A tombstone over a tombstone. */
	assert_int_equal(update(idx, "k", tomb(4)), 1);
	assert_int_equal(zidx_count(idx), 1);

	/* A later put revives. */
	assert_int_equal(update(idx, "k", put1(5, 12288)), 1);
	assert_int_equal(find(idx, "k")->nchunks, 1);
	assert_int_equal(find(idx, "k")->loc.addr, 12288);
	assert_int_equal(zidx_count(idx), 2);
	assert_int_equal(nlisted(idx), 2);
	zidx_free(idx);
}

static void test_old_out_param(void **state)
{
	struct zidx *idx = zidx_new();
	struct zent old, e;

	assert_non_null(idx);
	/* None before. */
	memset(&old, 0xee, sizeof(old));
	e = putn(1, 3);
	assert_int_equal(zidx_update(idx, "k", 1, &e, &old), 1);
	zent_done(&e);
	assert_int_equal(old.seq, 0);
	assert_int_equal(old.nchunks, 0);
	zent_done(&old);

	/* The 3-chunk entry comes back with its chunks, now ours. */
	e = putn(2, 5);
	assert_int_equal(zidx_update(idx, "k", 1, &e, &old), 1);
	zent_done(&e);
	assert_int_equal(old.seq, 1);
	assert_int_equal(old.nchunks, 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(zent_chunk(&old, i)->addr, 1000 + i);
	zent_done(&old);

	const struct zent *f = find_bin(idx, "k", 1);
	assert_int_equal(f->nchunks, 5);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(zent_chunk(f, i)->addr, 2000 + i);

	/* Replaced by a single-chunk put, then a tombstone. */
	e = put1(3, 4096);
	assert_int_equal(zidx_update(idx, "k", 1, &e, &old), 1);
	zent_done(&e);
	assert_int_equal(old.nchunks, 5);
	zent_done(&old);
	e = tomb(4);
	assert_int_equal(zidx_update(idx, "k", 1, &e, &old), 1);
	zent_done(&e);
	assert_int_equal(old.nchunks, 1);
	assert_int_equal(old.loc.addr, 4096);
	zent_done(&old);

	/* Without old, the index frees the replaced chunks itself. */
	assert_int_equal(zidx_update(idx, "m", 1, &(struct zent){ 0 }, NULL), 1);
	e = putn(5, 2);
	assert_int_equal(zidx_update(idx, "m", 1, &e, NULL), 1);
	zent_done(&e);
	e = putn(6, 7);
	assert_int_equal(zidx_update(idx, "m", 1, &e, NULL), 1);
	zent_done(&e);
	/* And zidx_free frees what it still holds. */
	e = putn(7, 4);
	assert_int_equal(zidx_update(idx, "k", 1, &e, NULL), 1);
	zent_done(&e);
	zidx_free(idx);
}

static void key_of(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "key-%u", i);
}

/* Reserving room and giving it back moves entries, and loses none. */
static void test_reserve_fit(void **state)
{
	enum { N = 30000 };
	struct zidx *idx = zidx_new();
	char key[32];

	assert_non_null(idx);
	for (unsigned i = 0; i < N / 2; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, put1(i + 1, (uint64_t)i * 4096)), 1);
	}
	zidx_reserve(idx, 40 * N);
	for (unsigned i = N / 2; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, put1(i + 1, (uint64_t)i * 4096)), 1);
	}
	assert_true(zidx_memory(idx) > 40 * N * 24);
	zidx_fit(idx);
	assert_true(zidx_memory(idx) < 4 * N * 24 + (8u << 20));
	assert_int_equal(zidx_count(idx), N);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_non_null(find(idx, key));
		assert_int_equal(find(idx, key)->loc.addr, (uint64_t)i * 4096);
	}
	zidx_free(idx);
}

/* A new index of n keys made with fmt from 0 on, each at seq i + 1 and block i. */
static struct zidx *filled(const char *fmt, unsigned n)
{
	struct zidx *idx = zidx_new();
	char key[64];

	assert_non_null(idx);
	for (unsigned i = 0; i < n; i++) {
		snprintf(key, sizeof(key), fmt, i);
		assert_int_equal(update(idx, key, put1(i + 1, (uint64_t)i * 4096)), 1);
	}
	return idx;
}

/* Index memory beyond the keys' own bytes, for n keys of 16 bytes. */
static double bytes_per_key(unsigned n)
{
	struct zidx *idx = filled("key-%012u", n);
	double per;

	per = (double)(zidx_memory(idx) - (size_t)n * 16) / n;
	zidx_free(idx);
	return per;
}

/* At most 48 bytes a key beyond the key, from a few keys to many. */
static void test_memory_per_key(void **state)
{
	static const unsigned counts[] = { 50000, 100000, 333333, 1000000 };

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		double per = bytes_per_key(counts[i]);

		if (per > 48) {
			fail_msg("%u keys: %.1f bytes a key beyond the key", counts[i], per);
		}
	}
}

/* Forgetting most keys compacts the arena; the keys left stay whole. */
static void test_arena_compacts(void **state)
{
	enum { N = 400000 };
	struct zidx *idx = filled("compact-key-%020u", N);
	char key[40];
	size_t full;

	full = zidx_memory(idx);
	for (unsigned i = 0; i < N; i++) {
		if (i % 8 == 0)
			continue;
		snprintf(key, sizeof(key), "compact-key-%020u", i);
		assert_int_equal(update(idx, key, tomb(N + i + 1)), 1);
		assert_int_equal(zidx_forget(idx, key, strlen(key), N + i + 1), 1);
	}
	zidx_fit(idx);
	assert_true(zidx_memory(idx) < full / 4);
	for (unsigned i = 0; i < N; i++) {
		const struct zent *e;

		snprintf(key, sizeof(key), "compact-key-%020u", i);
		e = find(idx, key);
		if (i % 8) {
			assert_null(e);
			continue;
		}
		assert_non_null(e);
		assert_int_equal(e->seq, i + 1);
		assert_int_equal(e->loc.addr, (uint64_t)i * 4096);
	}
	zidx_free(idx);
}

/* What a scan handed over: how often each "key-N", and per step. */
struct seen {
	unsigned *times;
	unsigned n;
	size_t step_keys, step_bytes;
	const char *prefix;
};

static int seen_key(const void *key, size_t klen, void *arg)
{
	struct seen *sn = arg;
	char buf[32];
	unsigned i;

	assert_true(klen < sizeof(buf));
	memcpy(buf, key, klen);
	buf[klen] = 0;
	assert_int_equal(sscanf(buf, "key-%u", &i), 1);
	assert_true(i < sn->n);
	if (sn->prefix)
		assert_memory_equal(buf, sn->prefix, strlen(sn->prefix));
	sn->times[i]++;
	sn->step_keys++;
	sn->step_bytes += klen;
	return 0;
}

/* Scans to the end in steps of count; the most keys one step handed over. */
static size_t scan_all(struct zidx *idx, struct seen *sn, size_t count, size_t max_bytes)
{
	uint64_t cursor = 0;
	size_t most = 0;

	do {
		sn->step_keys = sn->step_bytes = 0;
		assert_int_equal(zidx_scan(idx, sn->prefix, sn->prefix ? strlen(sn->prefix) : 0,
					   &cursor, count, max_bytes, false, seen_key, sn),
				 0);
		most = MAX(most, sn->step_keys);
		if (max_bytes < SIZE_MAX && sn->step_keys > 1)
			assert_true(sn->step_bytes <= max_bytes);
	} while (cursor);
	return most;
}

/* Every live key exactly once, tombstones never, each step about count keys. */
static void test_scan_all(void **state)
{
	enum { N = 100000 };
	struct seen sn = { .times = calloc(N, sizeof(unsigned)), .n = N };
	struct zidx *idx = zidx_new();
	char key[32];

	assert_non_null(idx);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, i % 10 == 3 ? tomb(i + 1) : put1(i + 1, 0)), 1);
	}
	assert_true(scan_all(idx, &sn, 100, SIZE_MAX) < 400);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(sn.times[i], i % 10 != 3);

	/* A prefix: "key-12..." only. */
	memset(sn.times, 0, N * sizeof(unsigned));
	sn.prefix = "key-12";
	scan_all(idx, &sn, 1000, SIZE_MAX);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(sn.times[i], i % 10 != 3 && !strncmp(key, "key-12", 6));
	}

	/* Few bytes a step: slices narrow, nothing lost. */
	memset(sn.times, 0, N * sizeof(unsigned));
	sn.prefix = NULL;
	scan_all(idx, &sn, 1000, 64);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(sn.times[i], i % 10 != 3);
	zidx_free(idx);
	free(sn.times);
}

/* The table grows and keys come and go between steps: the keys there throughout, once each. */
static void test_scan_while_growing(void **state)
{
	enum { OLD = 5000, N = 200000 };
	struct seen sn = { .times = calloc(N, sizeof(unsigned)), .n = N };
	struct zidx *idx = zidx_new();
	unsigned next = OLD, steps = 0;
	uint64_t cursor = 0;
	char key[32];

	assert_non_null(idx);
	for (unsigned i = 0; i < OLD; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, put1(i + 1, 0)), 1);
	}
	do {
		assert_int_equal(
		    zidx_scan(idx, NULL, 0, &cursor, 10, SIZE_MAX, false, seen_key, &sn), 0);
		/* Grow the table many times over while the scan goes on. */
		for (unsigned j = 0; j < 400 && next < N; j++, next++) {
			key_of(key, sizeof(key), next);
			assert_int_equal(update(idx, key, put1(next + 1, 0)), 1);
		}
		steps++;
	} while (cursor);
	assert_true(next > OLD * 10);
	for (unsigned i = 0; i < N; i++)
		assert_true(i < OLD ? sn.times[i] == 1 : sn.times[i] <= 1);
	assert_true(steps > 10);
	zidx_free(idx);
	free(sn.times);
}

/* A cursor from another index, or out of range, is refused; an empty index ends at once. */
static void test_scan_cursor(void **state)
{
	struct seen sn = { .times = calloc(1, sizeof(unsigned)), .n = 1 };
	struct zidx *a = zidx_new(), *b = zidx_new();
	uint64_t cursor = 0, other;
	char key[32];

	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(zidx_scan(a, NULL, 0, &cursor, 10, SIZE_MAX, false, seen_key, &sn), 0);
	assert_int_equal(cursor, 0);
	assert_int_equal(sn.times[0], 0);
	key_of(key, sizeof(key), 0);
	assert_int_equal(update(a, key, put1(1, 0)), 1);
	assert_int_equal(update(b, key, put1(1, 0)), 1);
	assert_int_equal(zidx_scan(a, NULL, 0, &cursor, 1, SIZE_MAX, false, seen_key, &sn), 0);
	assert_true(cursor != 0); /* two slots of 1024 do not end the scan */
	other = cursor;
	assert_int_equal(zidx_scan(b, NULL, 0, &other, 1, SIZE_MAX, false, seen_key, &sn), -EINVAL);
	other = cursor | 0xffffffffu;
	assert_int_equal(zidx_scan(a, NULL, 0, &other, 1, SIZE_MAX, false, seen_key, &sn), -EINVAL);
	other = 12345;
	assert_int_equal(zidx_scan(a, NULL, 0, &other, 1, SIZE_MAX, false, seen_key, &sn), -EINVAL);
	zidx_free(a);
	zidx_free(b);
	free(sn.times);
}

/* With tombs, a scan hands over the keys of tombstones too, once each; without, only live ones. */
static void test_scan_tombs(void **state)
{
	enum { N = 3000 };
	struct seen all = { .times = calloc(N, sizeof(unsigned)), .n = N };
	struct seen live = { .times = calloc(N, sizeof(unsigned)), .n = N };
	struct zidx *idx = zidx_new();
	uint64_t cursor = 0;
	char key[32];

	assert_non_null(idx);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, put1(i + 1, 0)), 1);
		if (i % 3 == 0)
			assert_int_equal(update(idx, key, tomb(N + i + 1)), 1);
	}
	do {
		assert_int_equal(
		    zidx_scan(idx, NULL, 0, &cursor, 50, SIZE_MAX, true, seen_key, &all), 0);
	} while (cursor);
	scan_all(idx, &live, 50, SIZE_MAX);
	for (unsigned i = 0; i < N; i++) {
		assert_int_equal(all.times[i], 1);
		assert_int_equal(live.times[i], i % 3 ? 1 : 0);
	}
	zidx_free(idx);
	/* An index of tombstones alone still has keys to hand over. */
	idx = zidx_new();
	assert_non_null(idx);
	memset(all.times, 0, N * sizeof(unsigned));
	key_of(key, sizeof(key), 7);
	assert_int_equal(update(idx, key, tomb(1)), 1);
	do {
		assert_int_equal(
		    zidx_scan(idx, NULL, 0, &cursor, 50, SIZE_MAX, true, seen_key, &all), 0);
	} while (cursor);
	assert_int_equal(all.times[7], 1);
	zidx_free(idx);
	free(all.times);
	free(live.times);
}

static void test_growth(void **state)
{
	enum { N = 200000 };
	struct zidx *idx = zidx_new();
	char key[32];

	assert_non_null(idx);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, put1(i + 1, (uint64_t)i * 4096)), 1);
	}
	assert_int_equal(zidx_count(idx), N);
	for (unsigned i = 0; i < N; i++) {
		const struct zent *e;

		key_of(key, sizeof(key), i);
		e = find(idx, key);
		assert_non_null(e);
		assert_int_equal(e->seq, i + 1);
		assert_int_equal(e->loc.addr, (uint64_t)i * 4096);
	}
	key_of(key, sizeof(key), N);
	assert_null(find(idx, key));
	/* Delete every other key; the rest stays findable. */
	for (unsigned i = 0; i < N; i += 2) {
		key_of(key, sizeof(key), i);
		assert_int_equal(update(idx, key, tomb(N + i + 1)), 1);
	}
	assert_int_equal(zidx_count(idx), N / 2);
	for (unsigned i = 0; i < N; i++) {
		key_of(key, sizeof(key), i);
		assert_int_equal(find(idx, key)->nchunks, i % 2);
	}
	zidx_free(idx);
}

static void test_binary_keys(void **state)
{
	static const uint8_t k1[] = { 0 }, k2[] = { 0, 0 }, k3[] = { 0, 0, 0 };
	static const uint8_t k4[] = { 'a', 0, 'b' }, k5[] = { 'a', 0, 'c' }, k6[] = { 'a' };
	static const uint8_t k7[] = { 0xff, 0xff };
	const uint8_t *keys[] = { k1, k2, k3, k4, k5, k6, k7 };
	const size_t lens[] = { 1, 2, 3, 3, 3, 1, 2 };
	uint8_t long_key[1024];
	struct zidx *idx = zidx_new();

	assert_non_null(idx);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		struct zent e = put1(i + 1, (i + 1) * 4096);

		assert_int_equal(zidx_update(idx, keys[i], lens[i], &e, NULL), 1);
		zent_done(&e);
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct zent *e = find_bin(idx, keys[i], lens[i]);

		assert_non_null(e);
		assert_int_equal(e->seq, i + 1);
	}
	assert_null(find_bin(idx, (const uint8_t[]){ 0, 0, 0, 0 }, 4));
	assert_null(find_bin(idx, (const uint8_t[]){ 'a', 0 }, 2));
	assert_int_equal(zidx_count(idx), ARRAY_SIZE(keys));

	/* Keys of the longest size, differing only in the last byte. */
	memset(long_key, 'x', sizeof(long_key));
	for (unsigned i = 0; i < 256; i++) {
		struct zent e = put1(100 + i, i * 4096);

		long_key[1023] = i;
		assert_int_equal(zidx_update(idx, long_key, sizeof(long_key), &e, NULL), 1);
		zent_done(&e);
	}
	for (unsigned i = 0; i < 256; i++) {
		long_key[1023] = i;
		assert_int_equal(find_bin(idx, long_key, sizeof(long_key))->seq, 100 + i);
	}
	assert_null(find_bin(idx, long_key, 1023));
	zidx_free(idx);
}

/* Keys collected from zidx_list, for comparing with what we expect. */
struct keys {
	size_t n;
	uint8_t key[64][8];
	size_t klen[64];
};

static int collect(const void *key, size_t klen, void *arg)
{
	struct keys *k = arg;

	assert_true(k->n < 64 && klen <= 8);
	memcpy(k->key[k->n], key, klen);
	k->klen[k->n++] = klen;
	return 0;
}

static void expect_keys(const struct keys *k, const char *const *want, size_t n)
{
	assert_int_equal(k->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(k->klen[i], strlen(want[i]));
		assert_memory_equal(k->key[i], want[i], k->klen[i]);
	}
}

static int stop_at_two(const void *key, size_t klen, void *arg)
{
	return ++*(int *)arg == 2 ? 42 : 0;
}

static void test_list_order_prefix(void **state)
{
	static const char *const all[] = { "",	"a",  "ab", "abc",  "abd",  "ac",
					   "b", "ba", "c",  "\x7f", "\x80", "\xff" };
	static const char *const pfx_ab[] = { "ab", "abc", "abd" };
	static const char *const after_ab[] = { "abc", "abd", "ac", "b" };
	struct zidx *idx = zidx_new();
	struct keys k;
	bool more;
	int calls = 0;

	assert_non_null(idx);
	/* Insert in reverse so that the order cannot come from insertion. Skip "". */
	for (size_t i = ARRAY_SIZE(all) - 1; i > 0; i--)
		assert_int_equal(update(idx, all[i], put1(i, 4096)), 1);
	update(idx, "dead", put1(1, 4096));
	update(idx, "dead", tomb(2));

	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, "", 0, "", 0, 100, collect, &k, &more), 0);
	expect_keys(&k, all + 1, ARRAY_SIZE(all) - 1);
	assert_false(more);

	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, "ab", 2, NULL, 0, 100, collect, &k, &more), 0);
	expect_keys(&k, pfx_ab, ARRAY_SIZE(pfx_ab));
	assert_false(more);

	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, "ab", 2, NULL, 0, 2, collect, &k, &more), 0);
	expect_keys(&k, pfx_ab, 2);
	assert_true(more);

	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, "", 0, "ab", 2, 4, collect, &k, &more), 0);
	expect_keys(&k, after_ab, ARRAY_SIZE(after_ab));
	assert_true(more);

	/* Nothing matches: a prefix longer than every key, a dead key. */
	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, "abcd", 4, NULL, 0, 10, collect, &k, &more), 0);
	assert_int_equal(k.n, 0);
	assert_false(more);
	assert_int_equal(zidx_list(idx, "dead", 4, NULL, 0, 10, collect, &k, &more), 0);
	assert_int_equal(k.n, 0);
	assert_false(more);

	/* After the last key. */
	assert_int_equal(zidx_list(idx, "", 0, "\xff", 1, 10, collect, &k, &more), 0);
	assert_int_equal(k.n, 0);
	assert_false(more);

	/* The callback's first non-zero stops the walk and is returned. */
	assert_int_equal(zidx_list(idx, "", 0, NULL, 0, 100, stop_at_two, &calls, &more), 42);
	assert_int_equal(calls, 2);
	zidx_free(idx);
}

/* A full copy of the keys one paged listing produced. */
struct page {
	uint8_t **keys;
	size_t *lens;
	size_t n;
};

static int page_add(const void *key, size_t klen, void *arg)
{
	struct page *p = arg;

	p->keys[p->n] = malloc(klen);
	assert_non_null(p->keys[p->n]);
	memcpy(p->keys[p->n], key, klen);
	p->lens[p->n++] = klen;
	return 0;
}

static int cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	int c = memcmp(a, b, MIN(alen, blen));

	return c ? c : (alen > blen) - (alen < blen);
}

struct kv {
	uint8_t key[6];
	size_t len;
};

static int cmp_kv(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;

	return cmp_bytes(x->key, x->len, y->key, y->len);
}

/* Paging with start_after gives back exactly the sorted set of live keys. */
static void test_list_paging(void **state)
{
	enum { N = 3000 };
	static const size_t limits[] = { 1, 7, 1000, N, N + 1 };
	struct kv *kv = calloc(N, sizeof(*kv));
	struct zidx *idx = zidx_new();
	size_t live = 0;

	assert_non_null(kv);
	assert_non_null(idx);
	srandom(2);
	/* Random binary keys of 1..6 bytes over a small alphabet: many prefixes, some dups. */
	for (size_t i = 0; i < N; i++) {
		kv[i].len = 1 + random() % 6;
		for (size_t j = 0; j < kv[i].len; j++)
			kv[i].key[j] = "\0\1a\xff"[random() % 4];
		struct zent e = random() % 5 ? put1(i + 1, 4096) : tomb(i + 1);
		assert_true(zidx_update(idx, kv[i].key, kv[i].len, &e, NULL) >= 0);
	}
	/* The expected list: distinct keys whose newest entry is live, sorted. */
	qsort(kv, N, sizeof(*kv), cmp_kv);
	for (size_t i = 0; i < N; i++) {
		if (i && !cmp_kv(&kv[i - 1], &kv[i]))
			continue;
		if (find_bin(idx, kv[i].key, kv[i].len)->nchunks)
			kv[live++] = kv[i];
	}
	assert_int_equal(zidx_count(idx), live);

	for (size_t l = 0; l < ARRAY_SIZE(limits); l++) {
		struct page p = { malloc(N * sizeof(uint8_t *)), malloc(N * sizeof(size_t)), 0 };
		bool more = true;
		size_t calls = 0;

		assert_non_null(p.keys);
		assert_non_null(p.lens);
		while (more) {
			size_t before = p.n;
			const void *after = p.n ? p.keys[p.n - 1] : NULL;
			size_t alen = p.n ? p.lens[p.n - 1] : 0;

			assert_int_equal(
			    zidx_list(idx, NULL, 0, after, alen, limits[l], page_add, &p, &more),
			    0);
			assert_true(p.n - before <= limits[l]);
			/* Only the last page may be short, and it says so. */
			if (more)
				assert_int_equal(p.n - before, limits[l]);
			assert_true(++calls <= live + 1);
		}
		assert_int_equal(p.n, live);
		for (size_t i = 0; i < live; i++) {
			assert_int_equal(p.lens[i], kv[i].len);
			assert_memory_equal(p.keys[i], kv[i].key, kv[i].len);
		}
		for (size_t i = 0; i < p.n; i++)
			free(p.keys[i]);
		free(p.keys);
		free(p.lens);
	}
	free(kv);
	zidx_free(idx);
}

/* With exactly limit keys left, the page is full and more is false. */
static void test_list_more_exact(void **state)
{
	struct zidx *idx = zidx_new();
	struct keys k;
	bool more;

	assert_non_null(idx);
	update(idx, "a", put1(1, 4096));
	update(idx, "b", put1(2, 4096));
	update(idx, "c", put1(3, 4096));
	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, NULL, 0, NULL, 0, 3, collect, &k, &more), 0);
	assert_int_equal(k.n, 3);
	assert_false(more);
	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, NULL, 0, NULL, 0, 2, collect, &k, &more), 0);
	assert_int_equal(k.n, 2);
	assert_true(more);
	memset(&k, 0, sizeof(k));
	assert_int_equal(zidx_list(idx, NULL, 0, "a", 1, 2, collect, &k, &more), 0);
	assert_int_equal(k.n, 2);
	assert_false(more);
	zidx_free(idx);
}

struct visit {
	unsigned *seen;
	unsigned n;
	unsigned tombs;
};

static int visit(const void *key, size_t klen, const struct zent *e, void *arg)
{
	struct visit *v = arg;
	unsigned i;

	assert_int_equal(sscanf(key, "key-%u", &i), 1);
	assert_true(i < v->n);
	assert_int_equal(e->seq, i + 1);
	v->seen[i]++;
	v->tombs += !e->nchunks;
	return 0;
}

static int count_keyless(const void *key, size_t klen, const struct zent *e, void *arg)
{
	assert_null(key);
	assert_int_equal(klen, 0);
	*(unsigned *)arg += e->seq;
	return 0;
}

static int stop_now(const void *key, size_t klen, const struct zent *e, void *arg)
{
	++*(int *)arg;
	return -7;
}

static void test_foreach(void **state)
{
	enum { N = 5000 };
	struct visit v = { calloc(N, sizeof(unsigned)), N, 0 };
	struct zidx *idx = zidx_new();
	char key[32];
	int calls = 0;

	assert_non_null(v.seen);
	assert_non_null(idx);
	assert_int_equal(zidx_foreach(idx, true, stop_now, &calls), 0);
	assert_int_equal(calls, 0);
	for (unsigned i = 0; i < N; i++) {
		/* Keys with the terminating NUL, so that visit can sscanf them. */
		key_of(key, sizeof(key), i);
		struct zent e = i % 3 ? put1(i + 1, 4096) : tomb(i + 1);
		assert_int_equal(zidx_update(idx, key, strlen(key) + 1, &e, NULL), 1);
		zent_done(&e);
	}
	assert_int_equal(zidx_foreach(idx, true, visit, &v), 0);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(v.seen[i], 1);
	assert_int_equal(v.tombs, (N + 2) / 3);
	assert_int_equal(zidx_foreach(idx, false, count_keyless, &v.n), 0);
	assert_int_equal(v.n, N + N * (N + 1) / 2); /* N, then the sum of every seq */
	assert_int_equal(zidx_foreach(idx, true, stop_now, &calls), -7);
	assert_int_equal(calls, 1);
	free(v.seen);
	zidx_free(idx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_find),
		cmocka_unit_test(test_newest_wins),
		cmocka_unit_test(test_older_and_equal_ignored),
		cmocka_unit_test(test_tombstone),
		cmocka_unit_test(test_old_out_param),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_reserve_fit),
		cmocka_unit_test(test_memory_per_key),
		cmocka_unit_test(test_arena_compacts),
		cmocka_unit_test(test_binary_keys),
		cmocka_unit_test(test_list_order_prefix),
		cmocka_unit_test(test_list_paging),
		cmocka_unit_test(test_list_more_exact),
		cmocka_unit_test(test_foreach),
		cmocka_unit_test(test_scan_all),
		cmocka_unit_test(test_scan_while_growing),
		cmocka_unit_test(test_scan_cursor),
		cmocka_unit_test(test_scan_tombs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
