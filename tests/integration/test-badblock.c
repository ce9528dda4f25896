/*
 * Issue 13, finding 8: one bad block must not make the store unmountable,
 * and the daemon must never read what it never wrote.
 *  (a) The first superblock copy (block 0 of zone 0) cannot be read: the
 *      daemon starts from another copy and every key reads back.
 *  (b) 64 KiB in the middle of a full zone and 64 KiB of the written part of
 *      the open zone cannot be read, at a restart that scans every zone
 *      (--rescan, so the full zone is read whole, not just its summary): the
 *      daemon starts and serves, its log names each zone with what it could
 *      not read, and every key whose record lies outside those ranges reads
 *      back byte-exact (one inside may be gone: NOT_FOUND or IO_ERROR).
 *  (c) The device fails reads of blocks never written, as NVMe devices with
 *      DULBE do (unwritten_read_fail=1): a store with full zones (read from
 *      their summaries) and open ones starts without a read error and every
 *      key reads back; then GC reclaims zones under the same fault without
 *      giving up a victim, and every key still reads back, also after a
 *      restart.
 * An argument ("b", "ac") runs only those parts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ZONE_SIZE (4ull << 20)
#define REC	  65536u
#define VLEN	  (REC - 64 - 16) /* with a 16-byte key: one record of 64 KiB */
#define MAXKEYS	  256

struct key {
	uint32_t version; /* acknowledged; every put here is */
	uint64_t addr;	  /* device address of its record */
};

static struct key keys[MAXKEYS];
static uint8_t *vbuf;

static void key_of(char *key, uint32_t k)
{
	snprintf(key, 17, "bad/key-%08u", k);
}

static uint64_t seed_of(uint32_t k, uint32_t version)
{
	return (uint64_t)version << 32 | k;
}

static void put(zap_client *c, uint32_t k)
{
	struct zap_put_info info;
	char key[17];

	key_of(key, k);
	zt_fill(vbuf, VLEN, seed_of(k, ++keys[k].version));
	zt_ok(zap_put(c, key, 16, vbuf, VLEN, &info));
	keys[k].addr = info.zone * ZONE_SIZE + info.offset;
}

/* 0 when the value is the one acknowledged, else the error get gave. */
static int get(zap_client *c, uint32_t k)
{
	char key[17];
	void *got;
	size_t glen;
	int ret;

	key_of(key, k);
	ret = zap_get(c, key, 16, &got, &glen);
	if (ret)
		return ret;
	zt_fill(vbuf, VLEN, seed_of(k, keys[k].version));
	zt_check(glen == VLEN && !memcmp(got, vbuf, VLEN), "%s: not the value acknowledged", key);
	free(got);
	return 0;
}

static void check_all(zap_client *c, uint32_t n, const char *when)
{
	for (uint32_t k = 0; k < n; k++) {
		int ret = get(c, k);

		zt_check(ret == 0, "%s: get of key %u: %s", when, k, zap_strerror(ret));
	}
}

static struct zap_zone *zones_now(zap_client *c, size_t *n)
{
	struct zap_zone *z;

	zt_ok(zap_zones(c, &z, n));
	return z;
}

/* Whether line names "zone N" (not zone N0 or N1...). */
static bool names_zone(const char *line, uint32_t zone)
{
	char word[24];
	const char *p = line;
	size_t len = snprintf(word, sizeof(word), "zone %u", zone);

	while ((p = strcasestr(p, word))) {
		if (!isdigit((unsigned char)p[len]))
			return true;
		p += len;
	}
	return false;
}

static bool is_warning(const char *line)
{
	return strstr(line, "warning") || strstr(line, "error") || strstr(line, "<4>") ||
	       strstr(line, "<3>");
}

/* A warning that names the zone and what could not be read in it. */
static bool warned_unreadable(const char *log, uint32_t zone)
{
	char *copy = strdup(log), *save = NULL;
	bool found = false;

	for (char *l = strtok_r(copy, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save))
		found = is_warning(l) && names_zone(l, zone) && strcasestr(l, "read") &&
			!strstr(l, "ZAPPEND_FAULT");
	free(copy);
	return found;
}

/* Lines about reading, at warning level or worse, other than the fault wrapper's own. */
static void no_read_errors(const char *log, const char *when)
{
	char *copy = strdup(log), *save = NULL;

	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		zt_check(!is_warning(l) || !strcasestr(l, "read") || strstr(l, "ZAPPEND_FAULT"),
			 "%s: the log says: %s", when, l);
	}
	free(copy);
}

/* (a) */
static void superblock_copy(void)
{
	const char *args[] = { "--size", "64M", "--zone-size", "4M", NULL };
	struct zt_daemon d;
	zap_client *c;

	memset(keys, 0, sizeof(keys));
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < 40; k++)
		put(c, k);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_use_fault(&d, "read_fail_at=0:4096");
	zt_start(&d);
	c = zt_connect(&d);
	check_all(c, 40, "(a) first superblock copy unreadable");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	printf("(a) started without the first superblock copy; 40 keys read back\n");
}

struct range {
	uint64_t addr, len;
};

/* Whether the record of key k may have lain in r (a record's length to spare either side). */
static bool near(const struct key *k, const struct range *r)
{
	return k->addr < r->addr + r->len + REC && r->addr < k->addr + 2 * REC;
}

/* Zones of (b): one full that holds keys, and the open one the last key went to. */
static void pick_zones(zap_client *c, uint32_t n, struct range bad[2], uint32_t zone[2])
{
	size_t nz;
	struct zap_zone *z = zones_now(c, &nz);
	uint64_t wp;

	zone[0] = keys[0].addr / ZONE_SIZE;
	zone[1] = keys[n - 1].addr / ZONE_SIZE;
	zt_check(zone[0] < nz && !strcmp(z[zone[0]].state, "full"), "zone %u is %s, not full",
		 zone[0], z[zone[0]].state);
	zt_check(!strcmp(z[zone[1]].state, "open"), "zone %u is %s, not open", zone[1],
		 z[zone[1]].state);
	wp = z[zone[1]].write_pointer;
	zt_check(wp >= 256 * 1024, "the open zone holds only %llu bytes", (unsigned long long)wp);
	bad[0] = (struct range){ zone[0] * ZONE_SIZE + ZONE_SIZE / 2, 65536 };
	bad[1] = (struct range){ zone[1] * ZONE_SIZE + wp / 2 / 65536 * 65536, 65536 };
	free(z);
}

/* (b) */
static void bad_ranges(void)
{
	const char *args[] = { "--size", "64M",		 "--zone-size", "4M",	    "--sync",
			       "none",	 "--open-zones", "1",		"--rescan", NULL };
	const uint32_t n = 150;
	struct range bad[2];
	uint32_t zone[2], lost = 0;
	struct zt_daemon d;
	char spec[128], *log;
	zap_client *c;
	long at;

	memset(keys, 0, sizeof(keys));
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < n; k++)
		put(c, k);
	pick_zones(c, n, bad, zone);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	snprintf(spec, sizeof(spec), "read_fail_at=%llu:65536,read_fail_at=%llu:65536",
		 (unsigned long long)bad[0].addr, (unsigned long long)bad[1].addr);
	zt_use_fault(&d, spec);
	at = zt_log_size(&d);
	zt_start(&d);
	log = zt_log_since(&d, at);
	for (int i = 0; i < 2; i++)
		zt_check(warned_unreadable(log, zone[i]),
			 "(b) no warning names zone %u (%s) and what in it could not be read",
			 zone[i], i ? "open" : "full");
	free(log);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < n; k++) {
		int ret = get(c, k);
		bool inside = near(&keys[k], &bad[0]) || near(&keys[k], &bad[1]);

		if (inside && (ret == -EIO || ret == -ENOENT)) {
			lost++;
			continue;
		}
		zt_check(ret == 0, "(b) key %u at %llu, outside the bad ranges: %s", k,
			 (unsigned long long)keys[k].addr, zap_strerror(ret));
	}
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	printf(
	    "(b) zones %u and %u with 64 KiB unreadable: started, %u of %u keys near them lost\n",
	    zone[0], zone[1], lost, n);
}

static void count_zones(zap_client *c, unsigned *full, unsigned *open)
{
	size_t nz;
	struct zap_zone *z = zones_now(c, &nz);

	*full = *open = 0;
	/* Zone 0 holds the superblock: finished, but not one of the zones of data. */
	for (size_t i = 1; i < nz; i++) {
		*full += !strcmp(z[i].state, "full");
		*open += !strcmp(z[i].state, "open");
	}
	free(z);
}

/* (c) */
static void unwritten(void)
{
	const char *args[] = { "--size", "64M", "--zone-size", "4M", "--sync", "none", NULL };
	const uint32_t n = 48;
	unsigned full, open, rounds = 0;
	struct zt_daemon d;
	zap_client *c;
	char *log;
	long at;

	memset(keys, 0, sizeof(keys));
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	/* Until zones are full (summarised and finished) and others still open. */
	do {
		for (uint32_t k = 0; k < n; k++)
			put(c, k);
		count_zones(c, &full, &open);
	} while ((full < 2 || !open) && ++rounds < 20);
	rounds = 0;
	zt_check(full >= 2 && open >= 1, "(c) %u full and %u open zones: want 2 and 1 at least",
		 full, open);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	zt_use_fault(&d, "unwritten_read_fail=1");
	at = zt_log_size(&d);
	zt_start(&d);
	log = zt_log_since(&d, at);
	no_read_errors(log, "(c) start with full and open zones");
	free(log);
	c = zt_connect(&d);
	check_all(c, n, "(c) after the start");
	while (zt_stat(c, "gc_zones_reclaimed") < 3 && rounds++ < 40) {
		for (uint32_t k = 0; k < n; k++)
			put(c, k);
	}
	zt_check(zt_stat(c, "gc_zones_reclaimed") > 0, "(c) GC reclaimed no zone");
	zt_check(zt_stat(c, "gc_victims_given_up") == 0, "(c) GC gave up %llu victims",
		 (unsigned long long)zt_stat(c, "gc_victims_given_up"));
	check_all(c, n, "(c) after GC");
	printf("(c) %u full, %u open zones: started; %u rounds later GC reclaimed %llu zones\n",
	       full, open, rounds, (unsigned long long)zt_stat(c, "gc_zones_reclaimed"));
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	at = zt_log_size(&d);
	zt_start(&d);
	log = zt_log_since(&d, at);
	no_read_errors(log, "(c) start after GC");
	free(log);
	c = zt_connect(&d);
	check_all(c, n, "(c) after GC and a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "abc";

	zt_watchdog(90, "test-badblock: a request never ended");
	vbuf = malloc(VLEN);
	zt_check(vbuf, "out of memory");
	if (strchr(only, 'a'))
		superblock_copy();
	if (strchr(only, 'b'))
		bad_ranges();
	if (strchr(only, 'c'))
		unwritten();
	free(vbuf);
	return 0;
}
