/*
 * Issue 13, finding 5: records written under a larger append limit stay
 * readable when the device's limit shrinks (a kernel upgrade, another
 * backend, a lowered max_sectors_kb). The store is formatted and filled with
 * the file backend's limit (records of up to 1 MiB: values of 3 MiB in
 * several such records, single ~900 KiB ones, small ones); it then restarts
 * on a device that takes appends of 256 KiB at most (max_append=262144).
 * Every value reads back byte-exact, nothing counts as torn or corrupt; then
 * the small values are overwritten until GC reclaims zones on the tiny
 * device, and after another restart under the same limit every acknowledged
 * value still reads back. A new put may fail with NO_SPACE; an acknowledged
 * value may never be wrong or missing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define FAULT	  "max_append=262144"
#define BIG	  2   /* 3 MiB values */
#define MEDIUM	  3   /* ~900 KiB values: one record each */
#define SMALL	  300 /* overwritten at random until GC runs */
#define KEYS	  (BIG + MEDIUM + SMALL)
#define PUTS	  4000 /* overwrites at most */
#define MAX_ZONES 16   /* 64M in zones of 4M */

struct key {
	uint32_t acked;		/* newest acknowledged version */
	uint32_t last;		/* newest version put */
	struct zap_put_info at; /* where its first record landed */
};

static struct key keys[KEYS];

static void key_of(char *key, uint32_t k)
{
	const char *kind = k < BIG ? "big" : k < BIG + MEDIUM ? "medium" : "small";

	snprintf(key, 24, "limits/%s/%03u", kind, k);
}

static size_t len_of(uint32_t k, uint32_t version)
{
	if (k < BIG)
		return 3 * 1024 * 1024 + 4096 * k + 100;
	if (k < BIG + MEDIUM)
		return 900 * 1024 + 1000 * k;
	return 8 * 1024 + (version * 7919 + k * 104729) % (56 * 1024);
}

static uint8_t *value_of(uint32_t k, uint32_t version, size_t *len)
{
	uint8_t *v;

	*len = len_of(k, version);
	v = malloc(*len + 1);
	zt_check(v, "out of memory");
	zt_fill(v, *len, (uint64_t)version << 32 | k);
	return v;
}

/* 0 or NO_SPACE; anything else fails the test. */
static int put(zap_client *c, uint32_t k)
{
	uint32_t version = ++keys[k].last;
	struct zap_put_info info;
	char key[24];
	size_t len;
	uint8_t *v = value_of(k, version, &len);
	int ret;

	key_of(key, k);
	ret = zap_put(c, key, strlen(key), v, len, &info);
	free(v);
	zt_check(ret == 0 || ret == -ENOSPC, "put %s (%zu bytes): %s", key, len, zap_strerror(ret));
	if (!ret) {
		keys[k].acked = version;
		keys[k].at = info;
	}
	return ret;
}

/*
 * The newest acknowledged version; after a restart a newer one that failed
 * may be found instead, whole.
 */
static void check(zap_client *c, const char *when)
{
	for (uint32_t k = 0; k < KEYS; k++) {
		uint32_t v, hi = keys[k].last;
		char key[24];
		void *got;
		size_t glen;
		int ret;

		key_of(key, k);
		ret = zap_get(c, key, strlen(key), &got, &glen);
		zt_check(ret == 0, "%s: get %s (version %u acknowledged): %s", when, key,
			 keys[k].acked, zap_strerror(ret));
		for (v = keys[k].acked; v <= hi; v++) {
			size_t len;
			uint8_t *want = value_of(k, v, &len);
			bool same = len == glen && !memcmp(got, want, len);

			free(want);
			if (same)
				break;
		}
		zt_check(v <= hi, "%s: %s: %zu bytes that are not version %u", when, key, glen,
			 keys[k].acked);
		free(got);
	}
}

static void check_clean(zap_client *c, const char *when)
{
	uint64_t torn = zt_stat(c, "torn_records"), corrupt = zt_stat(c, "corrupt_records");

	zt_check(torn == 0, "%s: %llu records counted as torn", when, (unsigned long long)torn);
	zt_check(corrupt == 0, "%s: %llu records failed verification", when,
		 (unsigned long long)corrupt);
}

/*
 * Whether GC has reclaimed a zone that held a large record since the last
 * look: that zone was reset (its write pointer went back), so the record,
 * which still reads back, was moved. Looked at every 32 puts, before a
 * reset zone can fill up again.
 */
static bool large_moved(zap_client *c, uint64_t *wp)
{
	struct zap_zone *z;
	size_t n;
	bool moved = false;

	zt_ok(zap_zones(c, &z, &n));
	for (uint32_t k = 0; k < BIG + MEDIUM; k++) {
		uint32_t i = keys[k].at.zone;

		moved |= i < n && z[i].write_pointer < wp[i];
	}
	for (size_t i = 0; i < n && i < MAX_ZONES; i++)
		wp[i] = z[i].write_pointer;
	free(z);
	return moved;
}

/*
 * Overwrites small values at random until GC has met a zone holding a large
 * record: it moved the record (the zone was reset) or gave the victim up
 * (it cannot move it under the new limit, and waits). Either is fine as
 * long as every value stays; new puts may then find no space.
 */
static void overwrite(zap_client *c)
{
	unsigned nospace = 0, n;
	uint64_t wp[MAX_ZONES] = { 0 }, rng = 1;
	bool moved = large_moved(c, wp), met = false;

	for (n = 0; n < PUTS && !met; n++) {
		nospace += put(c, BIG + MEDIUM + zt_rand(&rng) % SMALL) == -ENOSPC;
		if (n % 32 != 31)
			continue;
		moved |= large_moved(c, wp);
		met = moved ||
		      (zt_stat(c, "gc_victims_given_up") && zt_stat(c, "gc_zones_reclaimed") > 4);
	}
	printf("%u overwrites: gc reclaimed %llu zones (%s), gave up %llu, moved %llu bytes; "
	       "%u NO_SPACE\n",
	       n, (unsigned long long)zt_stat(c, "gc_zones_reclaimed"),
	       moved ? "one that held a large record" : "none that held a large record",
	       (unsigned long long)zt_stat(c, "gc_victims_given_up"),
	       (unsigned long long)zt_stat(c, "gc_bytes_moved"), nospace);
	zt_check(zt_stat(c, "gc_zones_reclaimed") > 0, "GC never reclaimed a zone");
}

/*
 * One zone filling at a time (--open-zones 1), the large values between runs
 * of small ones: the zones holding a large record then hold mostly small
 * records that overwrites kill, so GC has reason to take them.
 */
static void fill(zap_client *c)
{
	const uint32_t per = SMALL / (BIG + MEDIUM + 1);
	uint32_t k = BIG + MEDIUM;

	for (uint32_t big = 0; big <= BIG + MEDIUM; big++) {
		for (uint32_t i = 0; i < per || (big == BIG + MEDIUM && k < KEYS); i++)
			zt_ok(put(c, k++));
		if (big < BIG + MEDIUM)
			zt_ok(put(c, big));
	}
}

int main(void)
{
	const char *args[] = { "--size", "64M",		 "--zone-size", "4M", "--sync",
			       "none",	 "--open-zones", "1",		NULL };
	struct zt_daemon d;
	zap_client *c;

	zt_watchdog(90, "test-limits: a request never ended");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	fill(c);
	check(c, "as written");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	zt_use_fault(&d, FAULT);
	zt_start(&d);
	c = zt_connect(&d);
	check(c, "restarted with appends of 256 KiB at most");
	check_clean(c, "restarted with appends of 256 KiB at most");
	overwrite(c);
	check(c, "after GC");
	check_clean(c, "after GC");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	zt_start(&d);
	c = zt_connect(&d);
	check(c, "after GC and a restart");
	check_clean(c, "after GC and a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
