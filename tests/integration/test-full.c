/*
 * A full device (issue 13, finding 3): GC runs only when it gains space net
 * of what it writes; when nothing can be gained a put gets NO_SPACE promptly,
 * and with no garbage and no clients GC writes nothing.
 *
 * --size 64M --zone-size 4M --sync none, filled with distinct 256 KiB values:
 *   - the put that does not fit fails with NO_SPACE, and does not hang (each
 *     put must answer within 10 s: a hang guard, not a speed test); the store
 *     held a plausible amount before that (over 40 MiB of values);
 *   - then, with no client doing anything for 3 s, the daemon writes nothing:
 *     gc_bytes_moved, zones_reset, appended_bytes and summary_bytes stay put;
 *   - delete half the keys: puts succeed again (GC reclaims), and every key
 *     left reads back, before and after a restart.
 * A failing step is reported and the test goes on where it can, so that one
 * run shows every step that is wrong.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define VLEN	   (256u * 1024u)
#define MAX_KEYS   1024u
#define PUT_GUARD  10.0 /* seconds: a put not answered by then hangs */
#define MIN_STORED (40u << 20)

static struct zt_daemon d;
static unsigned failures;
static bool exists[MAX_KEYS];

#define report(...)                                                                                \
	do {                                                                                       \
		fprintf(stderr, "FAIL: " __VA_ARGS__);                                             \
		fputc('\n', stderr);                                                               \
		failures++;                                                                        \
	} while (0)

static void key_of(char *key, unsigned i)
{
	snprintf(key, 17, "full/%011u", i);
}

/* A put within PUT_GUARD; after a hang *c is a new connection (the old one is stuck). */
static int put(zap_client **c, unsigned i, uint8_t *buf, double *took)
{
	char key[17];
	double t0 = zt_now();
	int ret;

	key_of(key, i);
	zt_fill(buf, VLEN, i);
	ret = zt_put_timed(*c, key, 16, buf, VLEN, PUT_GUARD);
	*took = zt_now() - t0;
	if (ret == -ETIMEDOUT) {
		zap_close(*c);
		*c = zt_connect(&d);
	}
	return ret;
}

static const char *const quiet_stats[] = { "gc_bytes_moved", "gc_records_moved", "zones_reset",
					   "appended_bytes", "summary_bytes" };
#define NQUIET (sizeof(quiet_stats) / sizeof(quiet_stats[0]))

static void check_all(zap_client *c, unsigned n, uint8_t *buf, const char *when)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < n; i++) {
		char key[17];
		void *got = NULL;
		size_t glen = 0;
		int ret;

		key_of(key, i);
		ret = zap_get(c, key, 16, &got, &glen);
		if (!exists[i]) {
			if (ret != -ENOENT && bad++ < 5)
				report("%s: %s was deleted, yet get says %s", when, key,
				       ret ? zap_strerror(ret) : "OK");
		} else {
			zt_fill(buf, VLEN, i);
			if ((ret || glen != VLEN || memcmp(got, buf, VLEN)) && bad++ < 5)
				report("%s: get %s (acknowledged): %s", when, key,
				       ret ? zap_strerror(ret) : "not its value");
		}
		free(got);
	}
	if (bad > 5)
		report("%s: %u keys in all in the wrong state", when, bad);
}

int main(void)
{
	const char *args[] = { "--size", "64M", "--zone-size", "4M", "--sync", "none", NULL };
	uint8_t *buf = malloc(VLEN);
	uint64_t before[NQUIET];
	unsigned n = 0, again = 0, target;
	double t0 = zt_now(), took, slowest = 0;
	zap_client *c;
	int ret = 0;

	zt_check(buf, "out of memory");
	zt_watchdog(90, "test-full");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);

	/* Fill until a put fails. */
	while (n < MAX_KEYS) {
		ret = put(&c, n, buf, &took);
		if (took > slowest)
			slowest = took;
		if (ret)
			break;
		exists[n++] = true;
	}
	if (ret == -ETIMEDOUT)
		report("put #%u (%u bytes) on a full device was not answered within %.0f s: it "
		       "must fail with NO_SPACE, not wait",
		       n + 1, VLEN, PUT_GUARD);
	else if (ret != -ENOSPC)
		report("put #%u on a full device: %s, expected NO_SPACE", n + 1,
		       ret ? zap_strerror(ret) : "no failure in 1024 puts");
	if ((uint64_t)n * VLEN < MIN_STORED)
		report("the device (64 MiB) was full after only %u values (%.1f MiB)", n,
		       n * (double)VLEN / 1048576);
	printf("full after %u values of 256 KiB (%.1f MiB); the put that did not fit: %s after "
	       "%.2f s\n",
	       n, n * (double)VLEN / 1048576, ret ? zap_strerror(ret) : "OK", took);

	/* Idle: no garbage, no client: GC must write nothing (after a moment to settle). */
	zt_sleep_ms(1000);
	for (size_t i = 0; i < NQUIET; i++)
		before[i] = zt_stat(c, quiet_stats[i]);
	zt_sleep_ms(3000);
	for (size_t i = 0; i < NQUIET; i++) {
		uint64_t now = zt_stat(c, quiet_stats[i]);

		if (now != before[i])
			report(
			    "idle for 3 s with no garbage and no client, yet %s went from %" PRIu64
			    " to %" PRIu64 " (GC writes when nothing can be gained)",
			    quiet_stats[i], before[i], now);
	}

	/* Half the values deleted: room again. */
	for (unsigned i = 0; i < n; i += 2) {
		char key[17];

		key_of(key, i);
		ret = zt_del_timed(c, key, 16, PUT_GUARD);
		if (ret == -ETIMEDOUT) {
			report("del %s on a full device was not answered within %.0f s", key,
			       PUT_GUARD);
			zt_check(failures == 0, "%u failures (above); giving up", failures);
		}
		if (ret)
			report("del %s on a full device: %s", key, zap_strerror(ret));
		else
			exists[i] = false;
	}
	target = n / 2 > n / 10 + 2 ? n / 2 - n / 10 - 2 : 0;
	while (again < target) {
		ret = put(&c, n + again, buf, &took);
		if (took > slowest)
			slowest = took;
		if (ret) {
			report("after deleting half of %u values, put %u of %u: %s", n, again + 1,
			       target,
			       ret == -ETIMEDOUT ? "not answered within 10 s" : zap_strerror(ret));
			break;
		}
		exists[n + again++] = true;
	}
	printf("after deleting %u values: %u more put (slowest put %.2f s)\n", (n + 1) / 2, again,
	       slowest);
	check_all(c, n + again, buf, "after the deletes and puts");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	check_all(c, n + again, buf, "after a restart");
	zap_close(c);
	zt_check(failures == 0, "%u failures (above)", failures);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(buf);
	printf("test-full: PASS in %.1f s\n", zt_now() - t0);
	return 0;
}
