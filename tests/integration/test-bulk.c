/*
 * 10,000 puts of random sizes from 0 B to 1 MiB under random binary keys,
 * every one read back byte-exact, before and after a restart. Sizes are
 * log-uniform so that small and large values are both common; the values
 * are re-derived from their index rather than kept in memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define MAX_VALUE (1 << 20)

/* 10,000 puts; fewer where the machine is slow (ZT_BULK_COUNT, e.g. in the VM). */
static uint32_t n_items = 10000;

struct item {
	uint8_t key[64];
	uint8_t klen;
	uint32_t vlen;
};

static void make_items(struct item *it)
{
	uint64_t rng = 42;

	for (uint32_t i = 0; i < n_items; i++) {
		uint64_t r = zt_rand(&rng);

		/* Random bytes, with the index inside so that keys are unique. */
		it[i].klen = 4 + r % 60;
		zt_fill(it[i].key, it[i].klen, r);
		memcpy(it[i].key, &i, 4);
		if (i < 8)
			it[i].vlen = (uint32_t[]){
				0, 1, 4095, 4096, 4097, MAX_VALUE - 1, MAX_VALUE, 1048576 - 64 - 4
			}[i];
		else
			it[i].vlen = (uint32_t)exp2((zt_rand(&rng) % 20001) / 1000.0) - 1;
	}
}

static void check_all(zap_client *c, const struct item *it, uint8_t *want)
{
	for (uint32_t i = 0; i < n_items; i++) {
		void *got;
		size_t glen;
		int ret = zap_get(c, it[i].key, it[i].klen, &got, &glen);

		zt_check(ret == 0, "get #%u (%u bytes): %s", i, it[i].vlen, zap_strerror(ret));
		zt_fill(want, it[i].vlen, i);
		zt_check(glen == it[i].vlen && !memcmp(got, want, glen),
			 "get #%u: %zu bytes back, %u put, or different bytes", i, glen,
			 it[i].vlen);
		free(got);
	}
}

int main(void)
{
	const char *args[] = { "--size", "4G", "--zone-size", "64M", NULL };
	struct item *it;
	uint8_t *buf = malloc(MAX_VALUE);
	struct zt_daemon d;
	zap_client *c;
	uint64_t total = 0;

	if (getenv("ZT_BULK_COUNT"))
		n_items = atoi(getenv("ZT_BULK_COUNT"));
	it = calloc(n_items, sizeof(*it));
	make_items(it);
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	for (uint32_t i = 0; i < n_items; i++) {
		zt_fill(buf, it[i].vlen, i);
		zt_ok(zap_put(c, it[i].key, it[i].klen, buf, it[i].vlen, NULL));
		total += it[i].vlen;
	}
	printf("put %u values, %llu bytes\n", n_items, (unsigned long long)total);
	check_all(c, it, buf);
	zt_check(zt_stat(c, "keys") == n_items, "stat keys is not %u", n_items);
	zap_close(c);

	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	zt_check(zt_stat(c, "keys") == n_items, "after restart, stat keys is not %u", n_items);
	check_all(c, it, buf);
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	free(it);
	free(buf);
	return 0;
}
