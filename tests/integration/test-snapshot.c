/*
 * Snapshots (zap_snapshot), model-checked. A writer thread keeps puts and
 * deletes in flight over a small key space on a small device, so that GC runs
 * all the time; meanwhile the reader takes snapshots, waits while the writer
 * churns, then scans and reads through them. Every value names the put that
 * wrote it. Once the writer has drained, each snapshot taken at sequence S is
 * held against the writer's log: a key is in it exactly when the newest
 * acknowledged operation on it at or below S is a put, with that put's bytes.
 *
 * Then the edges: a snapshot that would keep the device from taking puts is
 * dropped and its reads fail with -ESTALE while every put succeeds; a
 * snapshot is gone with its connection (a daemon restart); the daemon's
 * limit on open snapshots answers -EBUSY.
 *
 * SNAP_SEED (default: the time) and SNAP_SECONDS (default 12) reproduce and
 * lengthen a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define NKEYS	   400
#define MAX_OPS	   (1u << 21)
#define DEPTH	   16
#define HDR	   16 /* a value starts with its op's number and its key's */
#define BIG	   (1536u * 1024u)
#define NO_OP	   UINT64_MAX
#define MAX_ROUNDS 256

struct op {
	uint32_t key;
	uint32_t len;
	bool del;
	bool done;
	int err;
	uint64_t seq;
};

struct writer {
	zap_client *c;
	uint64_t rng;
	struct op *ops;
	uint64_t nops;
	atomic_bool stop;
	uint64_t failed;
};

struct round {
	uint64_t seq;
	uint64_t *got; /* per key: the op whose value the snapshot gave, NO_OP for none */
};

static struct zt_daemon d;

/*
 * A fresh daemon on a device of size bytes in zones of 2 MiB, small enough
 * that GC runs; under faults when fault is not NULL.
 */
static void start_on(const char *size, const char *fault)
{
	const char *args[] = { "--size", size, "--zone-size", "2M", NULL };

	zt_init(&d, args);
	zt_use_fault(&d, fault);
	zt_start(&d);
}

static void stop_clean(void)
{
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
}

static void key_of(uint32_t k, char *buf)
{
	snprintf(buf, 16, "s%04u", k);
}

/* The value of op n: its number and key, then bytes derived from n. */
static void make_value(uint8_t *v, uint32_t len, uint64_t n, uint32_t key)
{
	memcpy(v, &n, 8);
	memcpy(v + 8, &key, 4);
	memset(v + 12, 0, 4);
	zt_fill(v + HDR, len - HDR, n * 0x9e3779b97f4a7c15ull + 1);
}

/* The op whose value v is; NO_OP when v is no value any op wrote for key. */
static uint64_t value_op(const struct writer *w, const uint8_t *v, size_t len, uint32_t key)
{
	uint64_t n;
	uint32_t k;
	uint8_t *want;
	bool same;

	if (len < HDR)
		return NO_OP;
	memcpy(&n, v, 8);
	memcpy(&k, v + 8, 4);
	if (k != key || n >= w->nops || w->ops[n].del || w->ops[n].key != key ||
	    w->ops[n].len != len)
		return NO_OP;
	want = malloc(len);
	zt_check(want, "malloc");
	make_value(want, len, n, key);
	same = !memcmp(want, v, len);
	free(want);
	return same ? n : NO_OP;
}

static void op_done(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;

	(void)c;
	o->err = r->err;
	o->seq = r->info.seq;
	o->done = true;
}

static uint32_t value_len(uint64_t *rng)
{
	uint64_t x = zt_rand(rng) % 100;

	if (x < 1)
		return BIG + zt_rand(rng) % 4096;
	if (x < 10)
		return 16384 + zt_rand(rng) % (200 * 1024);
	return HDR + zt_rand(rng) % 16384;
}

struct inflight {
	uint8_t *val;
	struct op *o;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct inflight fl[DEPTH] = { 0 };

	while (!atomic_load(&w->stop) && w->nops < MAX_OPS) {
		/* Now and then a burst on one key: its operations overtake one another. */
		uint32_t burst = zt_rand(&w->rng) % 8 ? NKEYS : zt_rand(&w->rng) % NKEYS;

		for (unsigned i = 0; i < DEPTH && w->nops < MAX_OPS; i++) {
			struct op *o;
			char key[16];

			if (fl[i].o && !fl[i].o->done)
				continue;
			free(fl[i].val);
			fl[i].val = NULL;
			o = &w->ops[w->nops];
			*o = (struct op){ .key = burst < NKEYS ? burst : zt_rand(&w->rng) % NKEYS,
					  .del = zt_rand(&w->rng) % 4 == 0 };
			key_of(o->key, key);
			if (o->del) {
				zt_ok(zap_del_async(w->c, key, strlen(key), op_done, o));
			} else {
				o->len = value_len(&w->rng);
				fl[i].val = malloc(o->len);
				zt_check(fl[i].val, "malloc");
				make_value(fl[i].val, o->len, w->nops, o->key);
				zt_ok(zap_put_async(w->c, key, strlen(key), fl[i].val, o->len,
						    op_done, o));
			}
			fl[i].o = o;
			w->nops++;
		}
		zt_check(zap_process(w->c) >= 0 || zap_pending(w->c), "zap_process");
		if (zap_pending(w->c) >= DEPTH)
			zap_wait_all(w->c);
	}
	zt_ok(zap_wait_all(w->c));
	for (unsigned i = 0; i < DEPTH; i++)
		free(fl[i].val);
	return NULL;
}

/* --- reading a snapshot --- */

struct scan_acc {
	struct round *r;
	unsigned listed;
};

static int listed(const void *key, size_t klen, void *arg)
{
	struct scan_acc *a = arg;
	unsigned k;

	zt_check(klen == 5 && sscanf((const char *)key, "s%4u", &k) == 1 && k < NKEYS,
		 "scan listed a key never put: %.*s", (int)klen, (const char *)key);
	zt_check(a->r->got[k] == NO_OP - 1, "scan listed key %u twice", k);
	a->r->got[k] = NO_OP - 2; /* listed, not read yet */
	a->listed++;
	return 0;
}

static void read_snapshot(zap_client *c, const struct writer *w, struct round *r, uint64_t *rng)
{
	struct scan_acc a = { .r = r };
	uint64_t cursor = 0;

	for (uint32_t k = 0; k < NKEYS; k++)
		r->got[k] = NO_OP - 1;
	do {
		zt_ok(zap_scan(c, NULL, 0, &cursor, 8 + zt_rand(rng) % 200, listed, &a));
		if (zt_rand(rng) % 4 == 0)
			zt_sleep_ms(zt_rand(rng) % 30);
	} while (cursor);
	for (uint32_t k = 0; k < NKEYS; k++) {
		char key[16];
		void *v = NULL;
		size_t vlen = 0;
		int ret;

		key_of(k, key);
		ret = zap_get(c, key, strlen(key), &v, &vlen);
		if (r->got[k] == NO_OP - 1) {
			zt_check(ret == -ENOENT,
				 "snapshot %" PRIu64 ": key %u not listed, yet get: %s", r->seq, k,
				 ret ? zap_strerror(ret) : "a value");
			r->got[k] = NO_OP;
		} else {
			zt_check(!ret, "snapshot %" PRIu64 ": key %u listed, get: %s", r->seq, k,
				 zap_strerror(ret));
			/* The writer's log is read only once it has drained: keep the raw answer.
			 */
			r->got[k] = value_op(w, v, vlen, k);
			zt_check(r->got[k] != NO_OP,
				 "snapshot %" PRIu64 ": key %u holds bytes no put wrote", r->seq,
				 k);
		}
		free(v);
	}
}

/* --- the model --- */

/* The newest acknowledged op on key at or below seq: NO_OP if none. */
static uint64_t newest_at(const struct writer *w, const uint64_t *const *by_key,
			  const uint32_t *nby, uint32_t key, uint64_t seq)
{
	uint64_t best = NO_OP, best_seq = 0;

	for (uint32_t i = 0; i < nby[key]; i++) {
		const struct op *o = &w->ops[by_key[key][i]];

		if (o->seq <= seq && o->seq > best_seq) {
			best = by_key[key][i];
			best_seq = o->seq;
		}
	}
	return best;
}

static void check_rounds(const struct writer *w, const struct round *rounds, unsigned n)
{
	uint64_t **by_key = calloc(NKEYS, sizeof(*by_key));
	uint32_t *nby = calloc(NKEYS, sizeof(*nby));

	zt_check(by_key && nby, "malloc");
	for (uint64_t i = 0; i < w->nops; i++) {
		const struct op *o = &w->ops[i];

		zt_check(o->done, "op %" PRIu64 " never answered", i);
		if (o->err) {
			/* A delete of a key without a value did nothing; anything else is a
			 * failure. */
			zt_check(o->del && o->err == -ENOENT, "op %" PRIu64 " failed: %s", i,
				 zap_strerror(o->err));
			continue;
		}
		by_key[o->key] = realloc(by_key[o->key], (nby[o->key] + 1) * sizeof(uint64_t));
		zt_check(by_key[o->key], "malloc");
		by_key[o->key][nby[o->key]++] = i;
	}
	for (unsigned r = 0; r < n; r++) {
		for (uint32_t k = 0; k < NKEYS; k++) {
			uint64_t want =
			    newest_at(w, (const uint64_t *const *)by_key, nby, k, rounds[r].seq);

			if (want != NO_OP && w->ops[want].del)
				want = NO_OP;
			zt_check(rounds[r].got[k] == want,
				 "snapshot at %" PRIu64 ", key %u: got op %" PRIu64 " (seq %" PRIu64
				 "), the model says op %" PRIu64 " (seq %" PRIu64 ")",
				 rounds[r].seq, k, rounds[r].got[k],
				 rounds[r].got[k] == NO_OP ? 0 : w->ops[rounds[r].got[k]].seq, want,
				 want == NO_OP ? 0 : w->ops[want].seq);
		}
	}
	for (uint32_t k = 0; k < NKEYS; k++)
		free(by_key[k]);
	free(by_key);
	free(nby);
}

static void model_run(uint64_t seed, double seconds)
{
	struct writer w = { .rng = seed };
	struct round *rounds = calloc(MAX_ROUNDS, sizeof(*rounds));
	uint64_t rng = seed ^ 0x5555, kept = 0, reclaimed0;
	unsigned n = 0;
	pthread_t t;
	zap_client *c;
	double end;

	start_on("64M", NULL);
	c = zt_connect(&d);
	w.c = zt_connect(&d);
	w.ops = calloc(MAX_OPS, sizeof(*w.ops));
	zt_check(rounds && w.ops, "malloc");
	reclaimed0 = zt_stat(c, "gc_zones_reclaimed");
	zt_check(!pthread_create(&t, NULL, writer_main, &w), "pthread_create");
	end = zt_now() + seconds;
	while (zt_now() < end && n < MAX_ROUNDS) {
		struct round *r = &rounds[n++];

		r->got = malloc(NKEYS * sizeof(*r->got));
		zt_check(r->got, "malloc");
		zt_ok(zap_snapshot(c, &r->seq));
		/* At once, amid the commits the snapshot waited for, or after GC had its turn. */
		if (zt_rand(&rng) % 3)
			zt_sleep_ms(zt_rand(&rng) % 500);
		kept += zt_stat(c, "snapshot_versions_kept");
		read_snapshot(c, &w, r, &rng);
		zt_ok(zap_snapshot_end(c));
		zt_check(zt_stat(c, "snapshots_open") == 0, "the snapshot stayed open");
	}
	atomic_store(&w.stop, true);
	pthread_join(t, NULL);
	printf("%u snapshots, %" PRIu64 " ops, %" PRIu64 " versions kept aside, %" PRIu64
	       " zones reclaimed, %" PRIu64 " records GC moved\n",
	       n, w.nops, kept, zt_stat(c, "gc_zones_reclaimed") - reclaimed0,
	       zt_stat(c, "gc_records_moved"));
	/* What the run must have driven for its verdict to mean anything. */
	zt_check(kept > 0, "no snapshot ever kept an old version");
	zt_check(zt_stat(c, "gc_zones_reclaimed") > reclaimed0, "GC never ran");
	zt_check(zt_stat(c, "snapshots_dropped") == 0, "a snapshot was dropped");
	check_rounds(&w, rounds, n);
	for (unsigned i = 0; i < n; i++)
		free(rounds[i].got);
	free(rounds);
	free(w.ops);
	zap_close(w.c);
	zap_close(c);
	stop_clean();
}

/* --- the edges --- */

static void put_all(zap_client *c, uint32_t len, uint64_t gen)
{
	uint8_t *v = malloc(len);

	zt_check(v, "malloc");
	for (uint32_t k = 0; k < 200; k++) {
		char key[16];

		key_of(k, key);
		make_value(v, len, gen * 1000 + k, k);
		zt_ok(zap_put(c, key, strlen(key), v, len, NULL));
	}
	free(v);
}

/* v is what put_all(, len, gen) wrote for key 1. */
static void expect_gen(const void *v, size_t vlen, uint32_t len, uint64_t gen)
{
	uint8_t *want = malloc(len);

	zt_check(want, "malloc");
	make_value(want, len, gen * 1000 + 1, 1);
	zt_check(vlen == len && !memcmp(v, want, len), "key 1 is not generation %" PRIu64, gen);
	free(want);
}

/* A snapshot holding the room puts need is dropped; no put fails for it. */
static void drop_run(void)
{
	zap_client *c, *w;
	uint64_t seq;
	void *v = NULL;
	size_t vlen;
	int ret;

	start_on("32M", NULL);
	c = zt_connect(&d);
	w = zt_connect(&d);
	put_all(w, 80000, 1); /* 16 MB live: with its old versions, more than the device */
	zt_ok(zap_snapshot(c, &seq));
	/* The first pass leaves the snapshot the old versions; the next ones need their room. */
	for (uint64_t gen = 2; gen < 8; gen++)
		put_all(w, 80000, gen);
	zt_check(zt_stat(c, "snapshots_dropped") == 1, "the snapshot was not dropped (%" PRIu64 ")",
		 zt_stat(c, "snapshots_dropped"));
	ret = zap_get(c, "s0001", 5, &v, &vlen);
	zt_check(ret == -ESTALE, "get from a dropped snapshot: %s", zap_strerror(ret));
	zt_check(zt_stat(c, "snapshot_versions_kept") == 0, "a dropped snapshot kept versions");
	zt_ok(zap_snapshot_end(c));
	zt_ok(zap_get(c, "s0001", 5, &v, &vlen));
	expect_gen(v, vlen, 80000, 7);
	free(v);
	zap_close(w);
	zap_close(c);
	stop_clean();
}

static int count_key(const void *key, size_t klen, void *arg)
{
	(void)key;
	(void)klen;
	++*(unsigned *)arg;
	return 0;
}

/* A snapshot lives on its connection: after a restart its reads fail, the live store's do not. */
static void restart_run(void)
{
	zap_client *c, *w;
	uint64_t seq, cursor = 0;
	void *v = NULL;
	unsigned n = 0;
	size_t vlen;
	int ret;

	start_on("32M", NULL);
	c = zt_connect(&d);
	w = zt_connect(&d);
	put_all(w, 3000, 1);
	zt_ok(zap_snapshot(c, &seq));
	put_all(w, 3000, 2);
	zt_ok(zap_del(w, "s0001", 5));
	/* Through the snapshot: generation 1, and the deleted key still there. */
	zt_ok(zap_get(c, "s0001", 5, &v, &vlen));
	expect_gen(v, vlen, 3000, 1);
	free(v);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	ret = zap_get(c, "s0001", 5, &v, &vlen);
	zt_check(ret == -ESTALE, "get from a snapshot lost with its connection: %s",
		 zap_strerror(ret));
	ret = zap_scan(c, NULL, 0, &cursor, 10, count_key, &n);
	zt_check(ret == -ESTALE, "scan of a snapshot lost with its connection: %s",
		 zap_strerror(ret));
	zt_ok(zap_snapshot_end(c));
	ret = zap_get(c, "s0001", 5, &v, &vlen);
	zt_check(ret == -ENOENT, "the live store: %s", zap_strerror(ret));
	zt_ok(zap_get(c, "s0002", 5, &v, &vlen));
	free(v);
	zap_close(w);
	zap_close(c);
	stop_clean();
}

/* Keys deleted before a snapshot and put again after it cost the snapshot nothing. */
static void tombs_run(void)
{
	zap_client *c, *w;
	uint64_t seq, cursor = 0;
	void *v = NULL;
	unsigned n = 0;
	size_t vlen;
	int ret;

	start_on("32M", NULL);
	c = zt_connect(&d);
	w = zt_connect(&d);
	put_all(w, 100, 1);
	for (uint32_t k = 0; k < 200; k++) {
		char key[16];

		key_of(k, key);
		zt_ok(zap_del(w, key, strlen(key)));
	}
	zt_ok(zap_snapshot(c, &seq));
	put_all(w, 100, 2);
	zt_check(zt_stat(c, "snapshot_versions_kept") == 0, "%" PRIu64 " tombstones kept",
		 zt_stat(c, "snapshot_versions_kept"));
	ret = zap_get(c, "s0001", 5, &v, &vlen);
	zt_check(ret == -ENOENT, "a key deleted before the snapshot: %s", zap_strerror(ret));
	do
		zt_ok(zap_scan(c, NULL, 0, &cursor, 1000, count_key, &n));
	while (cursor);
	zt_check(n == 0, "a snapshot of no keys listed %u", n);
	zap_close(w);
	zap_close(c);
	stop_clean();
}

/* The daemon's limit on open snapshots, and a closed client's giving its one back. */
static void limit_run(void)
{
	zap_client *c[5];
	uint64_t seq;
	int ret;

	start_on("32M", NULL);
	for (unsigned i = 0; i < 5; i++)
		c[i] = zt_connect(&d);
	zt_ok(zap_put(c[0], "a", 1, "1", 1, NULL));
	for (unsigned i = 0; i < 4; i++)
		zt_ok(zap_snapshot(c[i], &seq));
	ret = zap_snapshot(c[4], &seq);
	zt_check(ret == -EBUSY, "a fifth snapshot: %s", zap_strerror(ret));
	/* Taking another on the same connection replaces it, within the limit. */
	zt_ok(zap_snapshot(c[3], &seq));
	zap_close(c[0]);
	/* The daemon sees the close when it gets to it. */
	for (double end = zt_now() + 5; (ret = zap_snapshot(c[4], &seq)) == -EBUSY;) {
		zt_check(zt_now() < end, "a closed client's snapshot was not given back");
		zt_sleep_ms(10);
	}
	zt_ok(ret);
	zt_check(zt_stat(c[1], "snapshots_open") == 4, "snapshots_open");
	for (unsigned i = 1; i < 5; i++)
		zap_close(c[i]);
	stop_clean();
}

struct snap_call {
	zap_client *c;
	uint64_t seq;
	int ret;
};

static void *take_snapshot(void *arg)
{
	struct snap_call *sc = arg;

	sc->ret = zap_snapshot(sc->c, &sc->seq);
	return NULL;
}

struct answer {
	unsigned *order;
	unsigned at;
	uint64_t seq;
	int err;
};

static void answered(zap_client *c, const struct zap_result *r, void *arg)
{
	struct answer *a = arg;

	(void)c;
	a->at = ++*a->order;
	a->seq = r->info.seq;
	a->err = r->err;
}

/*
 * A put received before a snapshot, overtaken by a later put of its key
 * that the snapshot does not cover: the index refuses the earlier one when it
 * commits, yet it is the key's version as of the snapshot. Appends are
 * delayed at random (the fault-injecting daemon) so that the large put lands
 * last; the snapshot waits for it.
 */
static void overtake_run(void)
{
	const uint32_t big = 4u << 20, small = 100;
	uint8_t *va = malloc(big), *vb = malloc(small), *v0 = malloc(small);
	unsigned hits = 0, order;
	uint64_t round;
	zap_client *w, *r;

	zt_check(va && vb && v0, "malloc");
	start_on("64M", "seed=7,delay=100:30000");
	w = zt_connect(&d);
	r = zt_connect(&d);
	/* About one round in three lands that way: go on until three have. */
	for (round = 0; round < 100 && hits < 3; round++) {
		struct snap_call sc = { .c = r };
		struct answer a0 = { .order = &order }, a = a0, b = a0;
		const struct answer *want;
		void *v = NULL;
		size_t vlen;
		pthread_t t;

		order = 0;
		make_value(v0, small, round * 3, 1);
		make_value(va, big, round * 3 + 1, 1);
		make_value(vb, small, round * 3 + 2, 1);
		zt_ok(zap_put_async(w, "s0001", 5, v0, small, answered, &a0));
		zt_ok(zap_wait_all(w));
		zt_ok(zap_put_async(w, "s0001", 5, va, big, answered, &a));
		while (zap_want_write(w))
			zt_check(zap_process(w) >= 0, "zap_process");
		zt_sleep_ms(5);
		zt_check(!pthread_create(&t, NULL, take_snapshot, &sc), "pthread_create");
		zt_sleep_ms(10);
		zt_ok(zap_put_async(w, "s0001", 5, vb, small, answered, &b));
		zt_ok(zap_wait_all(w));
		pthread_join(t, NULL);
		zt_ok(sc.ret);
		zt_check(!a0.err && !a.err && !b.err, "a put failed");
		want = b.seq <= sc.seq ? &b : a.seq <= sc.seq ? &a : &a0;
		zt_ok(zap_get(r, "s0001", 5, &v, &vlen));
		zt_check(vlen == (want == &a ? big : small) && !memcmp(v,
								       want == &a   ? va
								       : want == &b ? vb
										    : v0,
								       vlen),
			 "round %" PRIu64 ": the snapshot at %" PRIu64
			 " does not hold the put of seq "
			 "%" PRIu64 " (puts %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
			 round, sc.seq, want->seq, a0.seq, a.seq, b.seq);
		free(v);
		hits += want == &a && b.at < a.at;
		zt_ok(zap_snapshot_end(r));
	}
	printf("%u of %" PRIu64 " rounds: the snapshot's put committed after a newer one\n", hits,
	       round);
	zt_check(hits > 0, "the large put never landed last across a snapshot");
	free(va);
	free(vb);
	free(v0);
	zap_close(w);
	zap_close(r);
	stop_clean();
}

int main(void)
{
	uint64_t seed =
	    getenv("SNAP_SEED") ? strtoull(getenv("SNAP_SEED"), NULL, 0) : (uint64_t)time(NULL);
	double seconds = getenv("SNAP_SECONDS") ? atof(getenv("SNAP_SECONDS")) : 12;

	printf("SNAP_SEED=%" PRIu64 "\n", seed);
	fflush(stdout);
	zt_watchdog(seconds + 240, "test-snapshot");
	limit_run();
	restart_run();
	tombs_run();
	drop_run();
	model_run(seed, seconds);
	overtake_run(); /* last: it skips without the fault-injecting daemon */
	printf("PASS\n");
	return 0;
}
