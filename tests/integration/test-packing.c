/*
 * Small records share blocks (daemon/store_batch.c), through the real daemon:
 *   - puts one at a time each take one append of one block and do not
 *     count as batched; alternating with 5000-byte ones, none waits for
 *     company (batched_holds);
 *   - small bursts, each sent when the last is answered, do not wait for
 *     company either: no more records can come until they are answered;
 *   - 100-byte values pipelined 64 at a time share blocks: the device bytes
 *     they take stay within a small multiple of their own (each alone in a
 *     block would take 35 times), every put is answered (a partial block
 *     held back for company goes once the load stops), and every value
 *     reads back byte-exact, before and after a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LONE	  20u
#define PIPED	  6000u
#define DEPTH	  64u
#define VLEN	  100u
#define KLEN	  16u
#define MIXED_BIG 5000u
#define BURSTS	  200u
#define BURST	  4u
#define BURST_LEN 2500u /* four of them fill two blocks and leave a partial third */
#define MAX_RATE  3.0	/* used bytes over key and value bytes, pipelined: 1.2-1.9 seen */

static struct zt_daemon d;
static unsigned answered, failed, next_put;

static void key_of(char *key, unsigned i)
{
	snprintf(key, KLEN + 1, "pack/%011u", i);
}

static void value_of(uint8_t *v, unsigned i)
{
	zt_fill(v, VLEN, 0x9ac0ull + i);
}

static void put_next(zap_client *c);

static void put_done(zap_client *c, const struct zap_result *r, void *arg)
{
	free(arg);
	answered++;
	if (r->err) {
		fprintf(stderr, "pipelined put: %s\n", zap_strerror(r->err));
		failed++;
	}
	put_next(c);
}

/* One more put in flight, if any is left: each answer starts the next. */
static void put_next(zap_client *c)
{
	char key[KLEN + 1];
	uint8_t *v;
	unsigned i;

	if (next_put == PIPED)
		return;
	i = next_put++;
	v = malloc(VLEN);
	zt_check(v != NULL, "out of memory");
	key_of(key, i);
	value_of(v, i);
	zt_ok(zap_put_async(c, key, KLEN, v, VLEN, put_done, v));
}

static void test_lone(zap_client *c)
{
	uint64_t block = zt_stat(c, "block_bytes");
	uint64_t used0 = zt_stat(c, "used_bytes"), batched0 = zt_stat(c, "batched_appends");
	uint8_t v[VLEN];
	char key[KLEN + 1];

	for (unsigned i = 0; i < LONE; i++) {
		key_of(key, PIPED + i);
		value_of(v, PIPED + i);
		zt_ok(zap_put(c, key, KLEN, v, VLEN, NULL));
	}
	zt_check(zt_stat(c, "used_bytes") - used0 == LONE * block,
		 "%u puts one at a time took %llu bytes, not one block of %llu each", LONE,
		 (unsigned long long)(zt_stat(c, "used_bytes") - used0), (unsigned long long)block);
	zt_check(zt_stat(c, "batched_appends") == batched0,
		 "puts one at a time were counted as batched");
}

/*
 * Puts one at a time, large and small in turn: a block-filling record alone
 * is no sign of load, so no small one after it waits for company.
 */
static void test_lone_mixed(zap_client *c)
{
	uint64_t holds0 = zt_stat(c, "batched_holds");
	static uint8_t v[MIXED_BIG];
	char key[KLEN + 1];

	for (unsigned i = 0; i < LONE; i++) {
		size_t len = i % 2 ? VLEN : MIXED_BIG;
		void *got;
		size_t glen;

		snprintf(key, sizeof(key), "mixd/%011u", i);
		zt_fill(v, len, 0x51d0ull + i);
		zt_ok(zap_put(c, key, KLEN, v, len, NULL));
		zt_ok(zap_get(c, key, KLEN, &got, &glen));
		zt_check(glen == len && !memcmp(got, v, len), "%s reads back wrong", key);
		free(got);
	}
	zt_check(zt_stat(c, "batched_holds") == holds0,
		 "puts one at a time waited for company %llu times",
		 (unsigned long long)(zt_stat(c, "batched_holds") - holds0));
}

static void burst_done(zap_client *c, const struct zap_result *r, void *arg)
{
	(void)c;
	(void)arg;
	if (r->err) {
		fprintf(stderr, "burst put: %s\n", zap_strerror(r->err));
		failed++;
	}
}

/*
 * The part of a burst of a few left over behind its whole blocks goes when
 * they land: waiting for company there costs each burst a hold timer (1-2
 * ms against 0.4 ms for the burst). A burst split across two reads may
 * still wait once, hence the margin.
 */
static void test_bursts(zap_client *c)
{
	uint64_t holds0 = zt_stat(c, "batched_holds"), holds;
	static uint8_t v[BURST][BURST_LEN];
	char key[KLEN + 1];

	for (unsigned r = 0; r < BURSTS; r++) {
		for (unsigned i = 0; i < BURST; i++) {
			snprintf(key, sizeof(key), "brst/%011u", i);
			zt_fill(v[i], BURST_LEN, 0xb0b0ull + r * BURST + i);
			zt_ok(zap_put_async(c, key, KLEN, v[i], BURST_LEN, burst_done, NULL));
		}
		zt_ok(zap_wait_all(c));
	}
	zt_check(!failed, "%u burst puts failed", failed);
	holds = zt_stat(c, "batched_holds") - holds0;
	printf("%u bursts of %u puts of %u bytes: %llu held\n", BURSTS, BURST, BURST_LEN,
	       (unsigned long long)holds);
	zt_check(holds <= BURSTS / 10, "%llu of %u bursts waited for company that could not come",
		 (unsigned long long)holds, BURSTS);
}

static void test_piped(zap_client *c)
{
	uint64_t used0 = zt_stat(c, "used_bytes");
	uint64_t batched0 = zt_stat(c, "batched_appends");
	double rate;

	for (unsigned i = 0; i < DEPTH; i++)
		put_next(c);
	zt_ok(zap_wait_all(c));
	zt_check(answered == PIPED && !failed, "%u of %u pipelined puts answered, %u failed",
		 answered, PIPED, failed);
	rate = (double)(zt_stat(c, "used_bytes") - used0) / (PIPED * (KLEN + VLEN));
	printf("%u puts of %u-byte values, %u in flight: %.2fx their bytes, %llu batched "
	       "appends\n",
	       PIPED, VLEN, DEPTH, rate,
	       (unsigned long long)(zt_stat(c, "batched_appends") - batched0));
	zt_check(rate <= MAX_RATE, "pipelined small puts took %.2fx their bytes (at most %.1f)",
		 rate, MAX_RATE);
}

static void check_all(zap_client *c, const char *when)
{
	uint8_t want[VLEN];
	char key[KLEN + 1];

	for (unsigned i = 0; i < PIPED + LONE; i++) {
		void *got;
		size_t len;

		key_of(key, i);
		value_of(want, i);
		zt_ok(zap_get(c, key, KLEN, &got, &len));
		zt_check(len == VLEN && !memcmp(got, want, VLEN), "%s: %s reads back wrong", when,
			 key);
		free(got);
	}
}

int main(void)
{
	const char *args[] = { "--size", "1G", "--zone-size", "64M", "--sync", "none", NULL };
	zap_client *c;

	zt_watchdog(300, "test-packing");
	zt_init(&d, args);
	zt_start(&d);
	c = zt_connect(&d);
	test_lone(c);
	test_lone_mixed(c);
	test_bursts(c);
	test_piped(c);
	check_all(c, "before a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_start(&d);
	c = zt_connect(&d);
	check_all(c, "after a restart");
	zap_close(c);
	zt_check(zt_stop(&d) == 0, "daemon did not exit cleanly");
	zt_cleanup(&d);
	return 0;
}
