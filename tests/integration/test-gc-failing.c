/*
 * GC on a tiny device that fails appends must not wedge the store full.
 *
 * A failed append retires its zone. When that zone was GC's, with copies of
 * the victim already in it, and GC had opened it as the last empty zone, GC
 * was left with nowhere to copy: every zone full, mostly of dead records,
 * and every put and delete answered NO_SPACE for good, restarts or not.
 *
 * zappendd-fault runs on 32M in zones of 2M, --sync always, a 4M buffer
 * pool. Three connections keep 64 puts (50 bytes to 40 KB) and deletes (one
 * in four) in flight each, each over keys of its own, while completions are
 * held back and 3% of the first APPENDS appends fail. Then, with the faults
 * over:
 *  - every key holds its newest acknowledged state, or that of a later put
 *    or delete whose answer was an error;
 *  - every key takes a new value: NO_SPACE (and IO_ERROR, should the faults
 *    outlast the load) is retried, and a put still refused after WAIT
 *    seconds means the store wedged;
 *  - every key reads back that value.
 * Each round starts on a new device with the next seed.
 *
 * GCF_SEED=N picks the first seed (the fault device's choices repeat, the
 * timing does not); GCF_ROUNDS=N the rounds (3). Without the fix, about one round in six wedged.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CONNS	 3
#define KEYS	 150 /* per connection: about a quarter of the device live */
#define DEPTH	 64
#define OPS	 40000
#define APPENDS	 30000
#define MIN_LEN	 50
#define MAX_LEN	 40000
#define WAIT	 30
#define MAX_VERS 2048 /* per key: about 90 each are sent */

struct key {
	uint32_t acked; /* newest version answered OK, 0 for none (absent) */
	uint32_t last;	/* newest version sent */
	uint8_t *del;	/* per version: a delete */
};

struct op {
	struct key *k;
	uint32_t kid, version;
	uint8_t *val;
};

struct conn {
	zap_client *c;
	unsigned inflight;
	uint32_t first; /* its keys: first .. first + KEYS - 1 */
};

static struct key keys[CONNS * KEYS];
static uint64_t round_seed;
static unsigned long acks, fails;

static void key_name(char *name, uint32_t k)
{
	snprintf(name, 16, "gcf/%05u", k);
}

static uint8_t *value_of(uint32_t k, uint32_t version, size_t *len)
{
	uint64_t st = round_seed ^ ((uint64_t)k << 32 | version);
	uint8_t *v;

	*len = MIN_LEN + zt_rand(&st) % (MAX_LEN - MIN_LEN);
	v = malloc(*len);
	zt_check(v, "out of memory");
	zt_fill(v, *len, st);
	return v;
}

static void answered(zap_client *c, const struct zap_result *r, void *arg)
{
	struct op *o = arg;
	bool del = o->k->del[o->version];

	(void)c;
	if (!r->err || (del && r->err == -ENOENT)) {
		acks++;
		if (o->version > o->k->acked)
			o->k->acked = o->version;
	} else {
		zt_check(r->err == -EIO || r->err == -ENOSPC, "%s %u of key %u: %s (%s)",
			 del ? "del" : "put", o->version, o->kid, zap_strerror(r->err),
			 r->message ? r->message : "");
		fails++;
	}
	free(o->val);
	free(o);
}

static void issue(struct conn *cn, uint64_t *rng)
{
	uint32_t kid = cn->first + zt_rand(rng) % KEYS;
	struct key *k = &keys[kid];
	struct op *o = malloc(sizeof(*o));
	char name[16];
	size_t len;

	zt_check(o && k->last + 1 < MAX_VERS, "out of memory or versions");
	*o = (struct op){ .k = k, .kid = kid, .version = ++k->last };
	k->del[o->version] = zt_rand(rng) % 4 == 0;
	key_name(name, kid);
	cn->inflight++;
	if (k->del[o->version]) {
		zt_ok(zap_del_async(cn->c, name, strlen(name), answered, o));
		return;
	}
	o->val = value_of(kid, o->version, &len);
	zt_ok(zap_put_async(cn->c, name, strlen(name), o->val, len, answered, o));
}

/* OPS operations, DEPTH in flight on each connection. */
static void load(struct conn *cn, uint64_t *rng)
{
	unsigned long sent = 0;

	while (sent < OPS) {
		struct pollfd pfd[CONNS];

		for (int i = 0; i < CONNS; i++) {
			cn[i].inflight = zap_pending(cn[i].c);
			for (; cn[i].inflight < DEPTH && sent < OPS; sent++)
				issue(&cn[i], rng);
			pfd[i] =
			    (struct pollfd){ .fd = zap_fd(cn[i].c),
					     .events =
						 POLLIN | (zap_want_write(cn[i].c) ? POLLOUT : 0) };
		}
		zt_check(poll(pfd, CONNS, 1000) >= 0, "poll: %s", strerror(errno));
		for (int i = 0; i < CONNS; i++)
			zt_check(zap_process(cn[i].c) >= 0, "zap_process failed");
	}
	for (int i = 0; i < CONNS; i++)
		zt_ok(zap_wait_all(cn[i].c));
}

static bool holds(const void *got, size_t glen, uint32_t kid, uint32_t v)
{
	size_t len;
	uint8_t *want;
	bool same;

	if (!v || keys[kid].del[v])
		return !got;
	want = value_of(kid, v, &len);
	same = got && len == glen && !memcmp(got, want, len);
	free(want);
	return same;
}

/* The key holds the state of a version from its newest acknowledged one on. */
static void check_key(zap_client *c, uint32_t kid)
{
	const struct key *k = &keys[kid];
	char name[16];
	void *got = NULL;
	size_t glen = 0;
	uint32_t v;
	int ret;

	key_name(name, kid);
	ret = zap_get(c, name, strlen(name), &got, &glen);
	zt_check(ret == 0 || ret == -ENOENT, "get %s: %s", name, zap_strerror(ret));
	for (v = k->acked; v <= k->last && !holds(got, glen, kid, v); v++)
		;
	zt_check(v <= k->last, "%s: %s %zu bytes, no state from version %u (acknowledged) to %u",
		 name, got ? "holds" : "is absent, not", glen, k->acked, k->last);
	free(got);
}

/* What a wedged store looks like: its zones and GC's counts, for the log. */
static void dump_state(zap_client *c)
{
	static const char *const gc[] = { "gc_victims_given_up", "gc_records_restored",
					  "gc_zones_reclaimed", "zones_reset", "zone_errors" };
	struct zap_zone *z;
	size_t n;

	for (size_t i = 0; i < sizeof(gc) / sizeof(gc[0]); i++)
		fprintf(stderr, "%s %llu\n", gc[i], (unsigned long long)zt_stat(c, gc[i]));
	if (zap_zones(c, &z, &n))
		return;
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "zone %u %s wp %llu of %llu, live %llu, %u in flight\n", z[i].id,
			z[i].state, (unsigned long long)(z[i].write_pointer - z[i].start),
			(unsigned long long)z[i].capacity, (unsigned long long)z[i].live_bytes,
			z[i].inflight);
	free(z);
}

/* A new value for the key, NO_SPACE retried for up to WAIT seconds: the store has room again. */
static void refill_key(zap_client *c, uint32_t kid)
{
	struct key *k = &keys[kid];
	double until = zt_now() + WAIT;
	uint8_t *val;
	char name[16];
	size_t len;
	int ret;

	zt_check(k->last + 1 < MAX_VERS, "out of versions");
	k->del[++k->last] = 0;
	val = value_of(kid, k->last, &len);
	key_name(name, kid);
	while (((ret = zap_put(c, name, strlen(name), val, len, NULL)) == -ENOSPC || ret == -EIO) &&
	       zt_now() < until)
		zt_sleep_ms(20);
	if (ret)
		dump_state(c);
	zt_check(ret == 0,
		 "put %s after the faults: %s (live %llu of %llu bytes, %llu zones empty)", name,
		 zap_strerror(ret), (unsigned long long)zt_stat(c, "live_bytes"),
		 (unsigned long long)zt_stat(c, "capacity_bytes"),
		 (unsigned long long)zt_stat(c, "zones_empty"));
	k->acked = k->last;
	free(val);
}

static void run_round(uint64_t seed)
{
	const char *args[] = { "--size", "32M",		  "--zone-size", "2M", "--sync",
			       "always", "--buffer-pool", "4M",		 NULL };
	struct conn cn[CONNS];
	struct zt_daemon d;
	uint64_t rng = seed;
	char spec[128];
	zap_client *c;

	round_seed = seed;
	acks = fails = 0;
	for (uint32_t i = 0; i < CONNS * KEYS; i++) {
		free(keys[i].del);
		keys[i] = (struct key){ .del = calloc(MAX_VERS, 1) };
		zt_check(keys[i].del, "out of memory");
	}
	zt_init(&d, args);
	/* Formatted without faults: the superblock's append must not be the one that fails. */
	zt_start(&d);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	snprintf(spec, sizeof(spec), "seed=%llu,delay=100:5000,append_fail=3,append_faults_for=%u",
		 (unsigned long long)seed, APPENDS);
	zt_use_fault(&d, spec);
	zt_start(&d);
	for (int i = 0; i < CONNS; i++)
		cn[i] = (struct conn){ .c = zt_connect(&d), .first = i * KEYS };
	load(cn, &rng);
	c = cn[0].c;
	printf("%s: %lu acknowledged, %lu failed; %llu zone errors, %llu zones reset, "
	       "%llu victims given up, %llu copies given back\n",
	       spec, acks, fails, (unsigned long long)zt_stat(c, "zone_errors"),
	       (unsigned long long)zt_stat(c, "zones_reset"),
	       (unsigned long long)zt_stat(c, "gc_victims_given_up"),
	       (unsigned long long)zt_stat(c, "gc_records_restored"));
	zt_check(zt_stat(c, "zone_errors") > 0, "no append failed: the faults are not on");
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		check_key(c, k);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		refill_key(c, k);
	for (uint32_t k = 0; k < CONNS * KEYS; k++)
		check_key(c, k);
	for (int i = 0; i < CONNS; i++)
		zap_close(cn[i].c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
}

int main(void)
{
	const char *seed_env = getenv("GCF_SEED"), *rounds_env = getenv("GCF_ROUNDS");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 1;
	unsigned rounds = rounds_env ? strtoul(rounds_env, NULL, 0) : 3;

	for (unsigned r = 0; r < rounds; r++) {
		zt_watchdog(120 + 2 * WAIT, "test-gc-failing: a request never ended");
		run_round(seed + r);
	}
	for (uint32_t i = 0; i < CONNS * KEYS; i++)
		free(keys[i].del);
	return 0;
}
