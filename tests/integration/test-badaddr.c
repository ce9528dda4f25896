/*
 * Issue 13, finding 9: the address a device returns for an append is checked
 * against the write pointer and the other appends, not only against the
 * zone's bounds. The fault-injecting device (bad_addr_at=N) writes the N-th
 * append where it belongs but reports a wrong address:
 *  (a) that of the append before it in the zone: inside the zone, aligned,
 *      and overlapping a record that is already there;
 *  (b) the zone's start plus its capacity: past anything written.
 * Either way the put must fail with IO_ERROR (never be acknowledged), the
 * log must say the device returned an impossible address, and every put
 * acknowledged before it must read back byte-exact, then and after a restart.
 *
 * The puts go one at a time into one open zone, so append N is put N of the
 * daemon's run (the store writes nothing else while it starts and idles).
 * An argument ("a" or "b") runs only that part.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define PUTS 12
#define VLEN 3000

static void key_of(char *key, const char *part, int i)
{
	snprintf(key, 32, "badaddr/%s/%02d", part, i);
}

static void put_value(zap_client *c, const char *key, int *ret)
{
	uint8_t v[VLEN];

	zt_fill(v, VLEN, strlen(key) * 131 + (uint8_t)key[strlen(key) - 1]);
	*ret = zap_put(c, key, strlen(key), v, VLEN, NULL);
}

static void check_value(zap_client *c, const char *key)
{
	uint8_t want[VLEN];
	void *got;
	size_t glen;
	int ret = zap_get(c, key, strlen(key), &got, &glen);

	zt_check(ret == 0, "get %s (acknowledged before the bad address): %s", key,
		 zap_strerror(ret));
	zt_fill(want, VLEN, strlen(key) * 131 + (uint8_t)key[strlen(key) - 1]);
	zt_check(glen == VLEN && !memcmp(got, want, VLEN), "%s: not the value acknowledged", key);
	free(got);
}

/* A line of the daemon's own (not the fault wrapper's) about an address. */
static bool says_impossible_address(const struct zt_daemon *d, long at)
{
	char *log = zt_log_since(d, at), *save = NULL;
	bool found = false;

	for (char *l = strtok_r(log, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save))
		found = strcasestr(l, "address") && !strstr(l, "ZAPPEND_FAULT");
	free(log);
	return found;
}

/* Puts until one fails; returns how many were acknowledged before it. */
static int put_until_failure(zap_client *c, const char *part, int expect_at)
{
	char key[32];
	int ret = 0, i;

	for (i = 1; i <= PUTS; i++) {
		key_of(key, part, i);
		put_value(c, key, &ret);
		if (ret)
			break;
	}
	zt_check(i <= PUTS,
		 "(%s) all %d puts were acknowledged, the one whose append came back with a "
		 "wrong address (append %d) too",
		 part, PUTS, expect_at);
	zt_check(ret == -EIO, "(%s) put %d: %s, not IO_ERROR", part, i, zap_strerror(ret));
	zt_check(i == expect_at, "(%s) put %d failed, not put %d whose append lied", part, i,
		 expect_at);
	return i - 1;
}

static void run(struct zt_daemon *d, const char *part, const char *spec, int expect_at,
		const char *earlier)
{
	long at = zt_log_size(d);
	zap_client *c;
	char key[32];
	int acked;

	zt_use_fault(d, spec);
	zt_start(d);
	c = zt_connect(d);
	acked = put_until_failure(c, part, expect_at);
	zt_check(says_impossible_address(d, at),
		 "(%s) the log does not say the device returned an impossible address", part);
	for (int i = 1; i <= acked; i++) {
		key_of(key, part, i);
		check_value(c, key);
	}
	check_value(c, earlier);
	zap_close(c);
	zt_stop(d);
	/* The data the device misplaced was never acknowledged: whatever it left, the rest stands.
	 */
	zt_use_fault(d, NULL);
	zt_start(d);
	c = zt_connect(d);
	for (int i = 1; i <= acked; i++) {
		key_of(key, part, i);
		check_value(c, key);
	}
	check_value(c, earlier);
	zap_close(c);
	zt_check(zt_stop(d) == 0, "daemon did not exit cleanly");
	printf("(%s) put %d failed with IO_ERROR, %d before it read back\n", part, expect_at,
	       acked);
}

/* A fresh store holding one value, stopped, then run under spec. */
static void part(const char *name, const char *spec, int expect_at)
{
	const char *args[] = { "--size", "64M", "--zone-size", "4M", "--open-zones", "1", NULL };
	struct zt_daemon d;
	zap_client *c;
	int ret;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	put_value(c, "badaddr/before", &ret);
	zt_ok(ret);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	run(&d, name, spec, expect_at, "badaddr/before");
	zt_cleanup(&d);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "ab";

	zt_watchdog(90, "test-badaddr: a request never ended");
	/* (a) Append 5 comes back with the address append 4 landed at. */
	if (strchr(only, 'a'))
		part("overlap", "bad_addr_at=5", 5);
	/* (b) Append 1: nothing landed in its zone since the start, so it says start + capacity. */
	if (strchr(only, 'b'))
		part("past-wp", "bad_addr_at=1", 1);
	return 0;
}
