/*
 * Tombstones on a device with many zones (issue 13, finding 7). GC may drop
 * a tombstone when no other zone can hold an older version of its key; a
 * zone whose sequence numbers are all newer than the tombstone cannot, and
 * says so exactly. Asking only each zone's Bloom filter (false positives near
 * 1%) over hundreds of zones keeps nearly every tombstone forever.
 *
 * A sparse 1 GiB image of 512 zones of 2 MiB, one open zone (zones fill one
 * after another), --sync none:
 *   A. DOOMED keys are put (small values);
 *   B. all of them are deleted, with an overwrite of a hot key every 20
 *      deletes, so the few zones holding the tombstones hold garbage too;
 *   C. hot keys are overwritten on and on, so GC cycles through the device
 *      and reaches the tombstone zones, when nearly every other zone is newer
 *      than the tombstones.
 * Once GC has reset every zone written in A and B, at least 90% of the
 * deletes must show in gc_tombstones_dropped; the deleted keys stay deleted
 * and the hot keys keep their last values, before and after a restart.
 * Hot records come as one of 1 MiB then five of one block: the next 1 MiB
 * one does not fit, so each zone is finished with six records (half the
 * device's bytes written, for speed), and its filter (64 bits, 7 probes) says
 * "maybe" to a key it lacks 0.6% of the time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define DOOMED	    400u
#define DOOMED_LEN  (4096u - 64u - 16u)	     /* with its 16-byte key: one block */
#define HOT	    200u		     /* distinct keys: a zone's six are all distinct */
#define BIG_LEN	    ((1u << 20) - 64u - 16u) /* with its 16-byte key: one 1 MiB record */
#define SMALL_LEN   (4096u - 64u - 16u)
#define DEL_PER_HOT 5u
#define MAX_PUTS    12000u /* three times the device */
#define NZONES_MAX  1024u

static struct zt_daemon d;
static uint32_t ver[HOT], len[HOT];
static uint64_t rng = 1;
static unsigned nhot; /* puts of hot keys: every sixth is big */

static void doomed_key(char *key, unsigned i)
{
	snprintf(key, 17, "doomed/%09u", i);
}

static void hot_key(char *key, unsigned i)
{
	snprintf(key, 17, "hot/%012u", i);
}

/* The zones written in phases A and B, and their write pointers then. */
static bool watched[NZONES_MAX];
static uint64_t watched_wp[NZONES_MAX];

static void put_hot(zap_client *c, uint8_t *buf, bool watch)
{
	unsigned k = zt_rand(&rng) % HOT;
	struct zap_put_info info;
	char key[17];
	int ret;

	hot_key(key, k);
	len[k] = nhot++ % 6 ? SMALL_LEN : BIG_LEN;
	zt_fill(buf, len[k], (uint64_t)k << 32 | ++ver[k]);
	ret = zap_put(c, key, 16, buf, len[k], &info);
	zt_check(ret == 0, "put %s: %s", key, zap_strerror(ret));
	if (watch && info.zone < NZONES_MAX)
		watched[info.zone] = true;
}

/* How many watched zones have not been reset since phase B. */
static unsigned watched_left(zap_client *c, bool record)
{
	struct zap_zone *zs;
	size_t n;
	unsigned left = 0;

	zt_ok(zap_zones(c, &zs, &n));
	for (size_t i = 0; i < n && i < NZONES_MAX; i++) {
		if (!watched[i])
			continue;
		if (record) {
			watched_wp[i] = zs[i].write_pointer;
		} else if (zs[i].write_pointer < watched_wp[i] || !strcmp(zs[i].state, "empty")) {
			watched[i] = false; /* reset: GC dealt with it */
			continue;
		}
		left++;
	}
	free(zs);
	return left;
}

static void check_keys(zap_client *c, uint8_t *buf, const char *when)
{
	for (unsigned i = 0; i < DOOMED; i++) {
		char key[17];
		void *got = NULL;
		size_t glen;
		int ret;

		doomed_key(key, i);
		ret = zap_get(c, key, 16, &got, &glen);
		zt_check(ret == -ENOENT, "%s: %s was deleted, yet get says %s", when, key,
			 ret ? zap_strerror(ret) : "OK");
	}
	for (unsigned k = 0; k < HOT; k++) {
		char key[17];
		void *got = NULL;
		size_t glen = 0;
		int ret;

		if (!ver[k])
			continue;
		hot_key(key, k);
		ret = zap_get(c, key, 16, &got, &glen);
		zt_check(ret == 0, "%s: get %s: %s", when, key, zap_strerror(ret));
		zt_fill(buf, len[k], (uint64_t)k << 32 | ver[k]);
		zt_check(glen == len[k] && !memcmp(got, buf, len[k]),
			 "%s: %s does not hold its last value", when, key);
		free(got);
	}
}

int main(void)
{
	const char *args[] = { "--size", "1G",		 "--zone-size", "2M", "--sync",
			       "none",	 "--open-zones", "1",		NULL };
	uint8_t *buf = malloc(BIG_LEN);
	double t0 = zt_now();
	unsigned puts = 0, left, nz;
	uint64_t dropped, zones;
	bool gc_started = false;
	zap_client *c;

	zt_check(buf, "out of memory");
	zt_watchdog(120, "test-tombstones");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	zones = zt_stat(c, "zones_total");
	zt_check(zones >= 500 && zones <= NZONES_MAX, "%" PRIu64 " zones", zones);

	/* A: the keys to delete. */
	for (unsigned i = 0; i < DOOMED; i++) {
		struct zap_put_info info;
		char key[17];

		doomed_key(key, i);
		zt_fill(buf, DOOMED_LEN, i);
		zt_ok(zap_put(c, key, 16, buf, DOOMED_LEN, &info));
		if (info.zone < NZONES_MAX)
			watched[info.zone] = true;
	}
	/* B: every one deleted, amid overwrites. */
	for (unsigned i = 0; i < DOOMED; i++) {
		char key[17];

		doomed_key(key, i);
		if (i % DEL_PER_HOT == 0)
			put_hot(c, buf, true);
		zt_ok(zap_del(c, key, 16));
	}
	nz = watched_left(c, true);
	/* C: overwrites until GC has reset every zone of A and B. */
	for (left = nz; left && puts < MAX_PUTS; puts++) {
		put_hot(c, buf, false);
		/*
		 * The zone list is long: asked for only once GC has started, then
		 * after every put, before a zone reset can be written full again.
		 */
		if (!gc_started)
			gc_started = zt_stat(c, "zones_reset") > 0;
		if (gc_started)
			left = watched_left(c, false);
	}
	dropped = zt_stat(c, "gc_tombstones_dropped");
	printf("%" PRIu64 " zones; %u deletes in %u zones; after %u more puts GC had reset %u "
	       "of them and dropped %" PRIu64 " tombstones (%.0f%%); GC moved %" PRIu64
	       " MiB, reset %" PRIu64 " zones\n",
	       zones, DOOMED, nz, puts, nz - left, dropped, 100.0 * dropped / DOOMED,
	       zt_stat(c, "gc_bytes_moved") >> 20, zt_stat(c, "zones_reset"));
	zt_check(!left,
		 "GC never reset %u of the %u zones holding the puts and tombstones, in %u puts: "
		 "the test did not drive GC there",
		 left, nz, puts);
	zt_check(dropped * 10 >= DOOMED * 9,
		 "GC reclaimed every zone holding the %u tombstones, when nearly all other zones "
		 "were newer than them, yet dropped only %" PRIu64 " tombstones (%.0f%%): a zone "
		 "newer than a tombstone cannot hold an older version of its key",
		 DOOMED, dropped, 100.0 * dropped / DOOMED);
	check_keys(c, buf, "before a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	check_keys(c, buf, "after a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(buf);
	printf("test-tombstones: PASS in %.1f s\n", zt_now() - t0);
	return 0;
}
