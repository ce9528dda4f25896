/*
 * GC and records in flight (issue 13, finding 1). A record is live from the
 * moment it is appended, not from the moment the index points at it: a zone
 * holding chunks of a value still landing, or a record waiting for its
 * group-commit flush, must never be reclaimed.
 *
 *  - Large values on a small device (--size 64M --zone-size 4M): a 36 MiB
 *    value, then a 9 MiB one, with --sync always and --sync none, and a few
 *    other pairs of sizes. While the first value lands, the device runs
 *    short of empty zones and GC looks for victims; the zones holding its
 *    chunks look empty to a GC that counts only committed data. Every value
 *    acknowledged reads back byte-exact, before and after a restart.
 *  - Deletes: bursts of tombstones land amid the chunks of a large value in
 *    flight (one open zone, so they share zones), in zones GC picks while the
 *    deletes wait for their flush. Every acknowledged delete stays deleted,
 *    before and after a kill -9 and restart, and the keys not deleted keep
 *    their values. With $ZAPPENDD_FAULT (the fault-injecting daemon) two more
 *    rounds hold flushes back at random, which makes that window wide.
 *
 * An argument runs one part alone: "pairs", "deletes" or "deletes:N" (one
 * round), or one pair as SYNC:A_MIB:B_MIB.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MiB (1024u * 1024u)

static struct zt_daemon d;

static void start_fresh(const char *sync, const char *open_zones)
{
	const char *args[] = { "--size", "64M",		 "--zone-size", "4M", "--sync",
			       sync,	 "--open-zones", open_zones,	NULL };

	zt_cleanup(&d);
	zt_init(&d, args);
	zt_start(&d);
}

static void restart(void)
{
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
}

/* key holds exactly the len bytes of seed. */
static void check_value(zap_client *c, const char *key, uint64_t seed, size_t len, const char *when)
{
	uint8_t *want = malloc(len);
	void *got = NULL;
	size_t glen = 0;
	int ret = zap_get(c, key, strlen(key), &got, &glen);

	zt_check(want, "out of memory");
	zt_check(ret == 0, "%s: get %s (%zu bytes, acknowledged): %s", when, key, len,
		 zap_strerror(ret));
	zt_fill(want, len, seed);
	if (glen != len || memcmp(got, want, len)) {
		size_t i = 0;

		while (i < len && i < glen && ((uint8_t *)got)[i] == want[i])
			i++;
		zt_fail("%s: %s returned %zu bytes, not the %zu acknowledged (first wrong byte at "
			"%zu)",
			when, key, glen, len, i);
	}
	free(got);
	free(want);
}

static void put_value(zap_client *c, const char *key, uint64_t seed, size_t len)
{
	uint8_t *val = malloc(len);
	int ret;

	zt_check(val, "out of memory");
	zt_fill(val, len, seed);
	ret = zap_put(c, key, strlen(key), val, len, NULL);
	zt_check(ret == 0, "put %s of %zu bytes: %s", key, len, zap_strerror(ret));
	free(val);
}

/* Two large values, one after the other, on a fresh 64 MiB device. */
static void pair(const char *sync, unsigned a_mib, unsigned b_mib, unsigned extra)
{
	char what[128];
	size_t a = (size_t)a_mib * MiB + extra, b = (size_t)b_mib * MiB + extra;
	zap_client *c;

	snprintf(what, sizeof(what), "--sync %s, values of %zu and %zu bytes", sync, a, b);
	zt_watchdog(60, what);
	start_fresh(sync, "4");
	c = zt_connect(&d);
	put_value(c, "big/a", a, a);
	put_value(c, "big/b", b, b);
	check_value(c, "big/a", a, a, what);
	check_value(c, "big/b", b, b, what);
	zap_close(c);
	restart();
	c = zt_connect(&d);
	snprintf(what, sizeof(what), "--sync %s, values of %zu and %zu bytes, after a restart",
		 sync, a, b);
	check_value(c, "big/a", a, a, what);
	check_value(c, "big/b", b, b, what);
	printf("%s: ok (GC moved %" PRIu64 " bytes, reset %" PRIu64 " zones)\n", what,
	       zt_stat(c, "gc_bytes_moved"), zt_stat(c, "zones_reset"));
	zap_close(c);
	zt_stop(&d);
}

/* --- deletes amid a large value in flight --- */

#define COLD_MAX      4096u
#define DEL_BURST     8u
#define DEL_PERIOD_MS 8

/* One run of the delete scenario. */
struct del_case {
	const char *sync, *policy;
	unsigned cold;	   /* cold keys, put first: zones GC has no reason to take */
	size_t cold_len;   /* bytes of each */
	unsigned every;	   /* every `every`-th cold key is deleted during the put */
	unsigned big_mib;  /* the value in flight meanwhile */
	const char *fault; /* ZAPPEND_FAULT for zappendd-fault, or NULL */
};

struct deleter {
	pthread_t th;
	const struct del_case *dc;
	unsigned round;
	volatile bool stop;
	bool deleted[COLD_MAX];
	unsigned ndel;
	char err[256];
};

static void cold_key(char *key, unsigned i)
{
	snprintf(key, 17, "cold/%011u", i);
}

static uint64_t cold_seed(unsigned round, unsigned i)
{
	return (uint64_t)round << 32 | i;
}

struct del_req {
	struct deleter *x;
	unsigned i;
};

static void del_done(zap_client *c, const struct zap_result *r, void *arg)
{
	struct del_req *q = arg;

	(void)c;
	if (r->err && !q->x->err[0])
		snprintf(q->x->err, sizeof(q->x->err), "del of cold key %u: %s", q->i,
			 zap_strerror(r->err));
	else if (!r->err)
		q->x->deleted[q->i] = true;
	q->x->ndel += !r->err;
	free(q);
}

/*
 * Deletes cold keys in bursts, one every DEL_PERIOD_MS whether the last was
 * answered or not: about one burst to a zone the value's chunks fill, all of
 * it waiting for one flush, so the zone looks empty to a GC that counts only
 * committed records as live.
 */
static void *delete_loop(void *arg)
{
	struct deleter *x = arg;
	unsigned i = x->round % x->dc->every;
	double next = zt_now();
	zap_client *c;
	int ret = zap_connect(d.sock, &c);

	if (ret) {
		snprintf(x->err, sizeof(x->err), "connect: %s", zap_strerror(ret));
		return NULL;
	}
	while (!x->stop && !x->err[0] && i < x->dc->cold) {
		struct pollfd pfd = { .fd = zap_fd(c), .events = POLLIN };

		for (unsigned n = 0; zt_now() >= next && n < DEL_BURST && i < x->dc->cold; n++) {
			struct del_req *q = malloc(sizeof(*q));
			char key[17];

			zt_check(q, "out of memory");
			*q = (struct del_req){ .x = x, .i = i };
			cold_key(key, i);
			ret = zap_del_async(c, key, 16, del_done, q);
			if (ret) {
				snprintf(x->err, sizeof(x->err), "del %s: %s", key,
					 zap_strerror(ret));
				free(q);
				break;
			}
			i += x->dc->every;
			if (n + 1 == DEL_BURST)
				next += DEL_PERIOD_MS / 1000.0;
		}
		if (zap_want_write(c))
			pfd.events |= POLLOUT;
		if (pfd.fd >= 0)
			poll(&pfd, 1, 1);
		zap_process(c);
	}
	/* Those in flight when the put ended: answered, so that their outcome is known. */
	if (!x->err[0])
		zap_wait_all(c);
	zap_close(c);
	return NULL;
}

/* Deleted keys stay deleted; with all, the others keep their values. */
static void check_cold(zap_client *c, const struct deleter *x, bool all, const char *when)
{
	size_t len = x->dc->cold_len;
	uint8_t *want = malloc(len);
	unsigned back = 0, lost = 0;

	zt_check(want, "out of memory");
	for (unsigned i = 0; i < x->dc->cold; i++) {
		char key[17];
		void *got = NULL;
		size_t glen = 0;
		int ret;

		cold_key(key, i);
		ret = zap_get(c, key, 16, &got, &glen);
		if (x->deleted[i]) {
			if (ret != -ENOENT && back++ < 5)
				fprintf(stderr,
					"%s: %s was deleted (acknowledged), yet get says %s (%zu "
					"bytes)\n",
					when, key, ret ? zap_strerror(ret) : "ok", glen);
			free(got);
			continue;
		}
		if (!all) {
			free(got);
			continue;
		}
		zt_fill(want, len, cold_seed(x->round, i));
		if ((ret || glen != len || memcmp(got, want, len)) && lost++ < 5)
			fprintf(stderr, "%s: get %s (never deleted): %s\n", when, key,
				ret ? zap_strerror(ret) : "not its value");
		free(got);
	}
	free(want);
	zt_check(!back && !lost,
		 "%s: %u of %u acknowledged deletes undone, %u keys never deleted lost", when, back,
		 x->ndel, lost);
}

static void put_done(zap_client *c, const struct zap_result *r, void *arg)
{
	(void)c;
	(void)arg;
	zt_check(!r->err, "put of a cold key: %s", zap_strerror(r->err));
}

static void deletes_in_flight(const struct del_case *dc, unsigned round)
{
	const char *args[] = { "--size",       "64M", "--zone-size", "4M",	 "--sync", dc->sync,
			       "--open-zones", "1",   "--gc-policy", dc->policy, NULL };
	static struct deleter x;
	size_t big_len = (size_t)dc->big_mib * MiB;
	uint8_t *big = malloc(big_len), *val = malloc((size_t)dc->cold * dc->cold_len);
	char what[256];
	zap_client *c;
	int ret;

	snprintf(what, sizeof(what),
		 "deletes amid a %u MiB put (%u cold keys of %zu bytes, --sync %s, --gc-policy "
		 "%s%s%s), round %u",
		 dc->big_mib, dc->cold, dc->cold_len, dc->sync, dc->policy,
		 dc->fault ? ", faults " : "", dc->fault ? dc->fault : "", round);
	zt_watchdog(60, what);
	zt_check(big && val && dc->cold <= COLD_MAX, "out of memory");
	/*
	 * One open zone, so that tombstones and the value's chunks share zones.
	 * Greedy GC takes the zone with the least live data: a zone just filled
	 * whose records are all still waiting (chunks, tombstones before their
	 * flush) has none, if in-flight records do not count as live.
	 */
	zt_cleanup(&d);
	zt_init(&d, args);
	if (dc->fault)
		zt_use_fault(&d, dc->fault);
	zt_start(&d);
	c = zt_connect(&d);
	/* Pipelined: one flush covers many (the fault device may hold each back). */
	for (unsigned i = 0; i < dc->cold; i++) {
		char key[17];

		cold_key(key, i);
		zt_fill(val + i * dc->cold_len, dc->cold_len, cold_seed(round, i));
		zt_ok(zap_put_async(c, key, 16, val + i * dc->cold_len, dc->cold_len, put_done,
				    NULL));
		while (zap_pending(c) >= 64) {
			struct pollfd pfd = { .fd = zap_fd(c), .events = POLLIN };

			if (zap_want_write(c))
				pfd.events |= POLLOUT;
			if (pfd.fd >= 0)
				poll(&pfd, 1, 10);
			zap_process(c);
		}
	}
	zt_ok(zap_wait_all(c));
	memset(&x, 0, sizeof(x));
	x.dc = dc;
	x.round = round;
	zt_fill(big, big_len, round);
	pthread_create(&x.th, NULL, delete_loop, &x);
	ret = zap_put(c, "big/value", 9, big, big_len, NULL);
	x.stop = true;
	pthread_join(x.th, NULL);
	zt_check(!x.err[0], "%s: %s", what, x.err);
	/* The value may not fit beside the cold keys: NO_SPACE is a fair answer. */
	zt_check(ret == 0 || ret == -ENOSPC, "%s: put of the value: %s", what, zap_strerror(ret));
	if (getenv("ZT_VERBOSE"))
		printf("%s: put %s, %u deletes, GC reset %" PRIu64 " zones, moved %" PRIu64
		       " bytes\n",
		       what, zap_strerror(ret), x.ndel, zt_stat(c, "zones_reset"),
		       zt_stat(c, "gc_bytes_moved"));
	/*
	 * The deleted keys alone, quickly, then a crash: GC goes on after the put
	 * and would soon reclaim the cold zones, taking the old values a lost
	 * tombstone lets come back. Acknowledged deletes survive a crash too.
	 */
	check_cold(c, &x, false, what);
	zap_close(c);
	zt_kill(&d);
	zt_start(&d);
	c = zt_connect(&d);
	snprintf(what + strlen(what), sizeof(what) - strlen(what), ", after kill -9 and a restart");
	check_cold(c, &x, true, what);
	/* Last: the pairs above are the value's own test. */
	if (ret == 0) {
		check_value(c, "big/value", round, big_len, what);
	} else {
		void *got = NULL;
		size_t glen;

		ret = zap_get(c, "big/value", 9, &got, &glen);
		zt_check(ret == -ENOENT, "%s: the put refused with NO_SPACE left %s", what,
			 ret ? zap_strerror(ret) : "a value");
		ret = -ENOSPC;
	}
	printf("%s: ok (%u deletes during the put, which %s; GC reset %" PRIu64 " zones)\n", what,
	       x.ndel, ret ? "was refused for space" : "was stored", zt_stat(c, "zones_reset"));
	zap_close(c);
	zt_stop(&d);
	free(big);
	free(val);
}

#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))

/*
 * On the file backend a tombstone's flush rarely ends after its zone's own
 * (fdatasync completes in journal order), so the window is narrow; the fault
 * device, when built, holds flushes back at random and opens it wide.
 */
static const struct del_case del_cases[] = {
	{ "always", "greedy", 2000, 12288 - 80, 2, 60, NULL },
	{ "always", "cost-benefit", 2000, 12288 - 80, 2, 60, NULL },
	{ "always", "greedy", 2000, 12288 - 80, 2, 60, "seed=1,flush_delay=50:20000" },
	{ "always", "greedy", 2000, 12288 - 80, 2, 60, "seed=2,flush_delay=30:50000" },
};

static bool have_fault_daemon(void)
{
	const char *p = getenv("ZAPPENDD_FAULT");

	return p && *p && access(p, X_OK) == 0;
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";
	double t0 = zt_now();
	char sync[16];
	unsigned a, b;

	if (sscanf(only, "%15[a-z]:%u:%u", sync, &a, &b) == 3) {
		pair(sync, a, b, 0);
		zt_cleanup(&d);
		return 0;
	}
	if (!*only || !strcmp(only, "pairs")) {
		pair("always", 36, 9, 0);
		pair("none", 36, 9, 0);
		pair("always", 32, 12, 12345);
		pair("none", 40, 4, 4097);
		pair("always", 20, 24, 1);
	}
	if (!*only || !strncmp(only, "deletes", 7)) {
		for (unsigned round = 0; round < ARRAY_N(del_cases); round++) {
			if (only[0] && only[7] == ':' && atoi(only + 8) != (int)round)
				continue;
			if (del_cases[round].fault && !have_fault_daemon()) {
				printf("deletes under %s: skipped, no $ZAPPENDD_FAULT\n",
				       del_cases[round].fault);
				continue;
			}
			deletes_in_flight(&del_cases[round], round);
		}
	}
	zt_cleanup(&d);
	printf("test-gc-inflight: PASS in %.1f s\n", zt_now() - t0);
	return 0;
}
