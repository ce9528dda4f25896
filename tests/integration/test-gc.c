/*
 * Garbage collection keeps a log-structured store writable forever.
 *  - Sustained overwrite: a working set at 50%, 75% and 85% of the capacity
 *    rewritten several times over: never NO_SPACE, every read byte-exact;
 *    the write amplification is printed.
 *  - Fill to NO_SPACE, delete half, write again: the deletes succeed on a
 *    full device, nothing stored is lost, and puts resume.
 *  - A restart after all of it keeps everything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define VLEN (16384 - 64 - 16) /* with a 16-byte key: a record of exactly 4 blocks */

static void key_of(char *key, uint32_t k)
{
	snprintf(key, 17, "key-%012u", k);
}

static uint64_t seed_of(uint32_t k, uint32_t version)
{
	return (uint64_t)version << 32 | k;
}

static void check(zap_client *c, uint32_t k, uint32_t version, uint8_t *want)
{
	char key[17];
	void *got;
	size_t glen;
	int ret;

	key_of(key, k);
	ret = zap_get(c, key, 16, &got, &glen);
	if (!version) {
		zt_check(ret == -ENOENT, "%s: deleted, yet get says %s", key, zap_strerror(ret));
		return;
	}
	zt_check(ret == 0, "get %s: %s", key, zap_strerror(ret));
	zt_fill(want, VLEN, seed_of(k, version));
	zt_check(glen == VLEN && !memcmp(got, want, VLEN), "%s: not version %u", key, version);
	free(got);
}

static int put(zap_client *c, uint32_t k, uint32_t version, uint8_t *buf)
{
	char key[17];

	key_of(key, k);
	zt_fill(buf, VLEN, seed_of(k, version));
	return zap_put(c, key, 16, buf, VLEN, NULL);
}

/* Rewrites a working set of `fill` of the capacity `rounds` times, in random order. */
static void overwrite(zap_client *c, double fill, unsigned rounds, uint32_t *ver, uint8_t *buf)
{
	uint64_t cap = zt_stat(c, "capacity_bytes"), rng = (uint64_t)(fill * 100);
	uint32_t n = (uint32_t)(cap * fill / 16384);
	uint64_t moved0 = zt_stat(c, "gc_bytes_moved"), put0 = zt_stat(c, "put_bytes");

	for (uint32_t k = 0; k < n; k++) {
		if (!ver[k])
			zt_ok(put(c, k, ++ver[k], buf));
	}
	for (uint64_t i = 0; i < (uint64_t)n * rounds; i++) {
		uint32_t k = zt_rand(&rng) % n;
		int ret = put(c, k, ++ver[k], buf);

		zt_check(ret == 0, "%.0f%% full, put %llu of %llu: %s", fill * 100,
			 (unsigned long long)i, (unsigned long long)n * rounds, zap_strerror(ret));
	}
	for (uint32_t k = 0; k < n; k++)
		check(c, k, ver[k], buf);
	printf("%.0f%% of capacity (%u keys) rewritten %u times: write amplification %.2f "
	       "(gc moved %.1f MiB for %.1f MiB put)\n",
	       fill * 100, n, rounds,
	       1.0 + (double)(zt_stat(c, "gc_bytes_moved") - moved0) /
			 (zt_stat(c, "put_bytes") - put0),
	       (zt_stat(c, "gc_bytes_moved") - moved0) / 1048576.0,
	       (zt_stat(c, "put_bytes") - put0) / 1048576.0);
}

static void fill_delete_refill(zap_client *c, uint32_t *ver, uint8_t *buf, uint32_t max)
{
	uint32_t n = 0, again = 0;
	int ret;

	while (n < max && (ret = put(c, n, 1, buf)) == 0)
		ver[n++] = 1;
	zt_check(n < max && ret == -ENOSPC, "a full device said %s", zap_strerror(ret));
	printf("full after %u values (%.1f MiB)\n", n, n * (double)VLEN / 1048576);
	for (uint32_t k = 0; k < n; k++)
		check(c, k, ver[k], buf);
	for (uint32_t k = 0; k < n; k += 2) {
		char key[17];

		key_of(key, k);
		zt_ok(zap_del(c, key, 16));
		ver[k] = 0;
	}
	/* Half the space is dead now: GC must make room for as much again, nearly. */
	while (again < n / 2 - n / 10) {
		zt_ok(put(c, n + again, 1, buf));
		ver[n + again++] = 1;
	}
	for (uint32_t k = 0; k < n + again; k++)
		check(c, k, ver[k], buf);
	printf("after deleting half: %u more values, %llu tombstones dropped\n", again,
	       (unsigned long long)zt_stat(c, "gc_tombstones_dropped"));
}

int main(void)
{
	const char *args[] = { "--size", "128M",	 "--zone-size", "2M", "--sync",
			       "none",	 "--open-zones", "1",		NULL };
	const char *rounds_env = getenv("ZT_GC_ROUNDS");
	unsigned rounds = rounds_env ? atoi(rounds_env) : 5;
	uint32_t *ver = calloc(1 << 20, sizeof(*ver));
	uint8_t *buf = malloc(VLEN);
	struct zt_daemon d;
	zap_client *c;

	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	overwrite(c, 0.50, rounds, ver, buf);
	overwrite(c, 0.75, rounds, ver, buf);
	overwrite(c, 0.85, rounds, ver, buf);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; ver[k]; k++)
		check(c, k, ver[k], buf);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");

	/* A fresh device for the fill test. */
	zt_cleanup(&d);
	zt_init(&d, args);
	memset(ver, 0, (1 << 20) * sizeof(*ver));
	zt_start(&d);
	c = zt_connect(&d);
	fill_delete_refill(c, ver, buf, 1 << 19);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t k = 0; k < (1 << 19); k++) {
		if (ver[k] || ver[k + 1])
			check(c, k, ver[k], buf);
	}
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(ver);
	free(buf);
	return 0;
}
