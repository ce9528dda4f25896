/*
 * The zone manager's bookkeeping that GC and the ordering rules rest on:
 * what a device says about where an append landed, which zones may hold an
 * older version of a key, garbage against live and held bytes, tombstones
 * kept and tried again. Also the table of operations in flight by key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "inflight.h"
#include "zones.h"

#define ZONE (1u << 20)
#define NZ   8u

static void finish_nothing(void *arg, uint32_t zone)
{
	(void)arg;
	(void)zone;
}

static void setup_zones(struct zones *zs)
{
	struct zdev_info info = { .zone_size = ZONE, .nr_zones = NZ, .block = 4096 };
	struct zdev_zone dz[NZ];

	for (uint32_t i = 0; i < NZ; i++)
		dz[i] = (struct zdev_zone){ .start = (uint64_t)i * ZONE,
					    .cap = ZONE,
					    .cond = ZDEV_EMPTY };
	assert_int_equal(zones_init(zs, &info, dz, 4096, 1), 0);
	zs->finish_fn = finish_nothing;
}

/* A record of key with seq, landed at addr: noted as an append's completion notes it. */
static void note(struct zones *zs, const char *key, uint64_t seq, uint64_t addr, uint32_t len)
{
	struct zrec r = { .type = ZREC_PUT,
			  .klen = strlen(key),
			  .key = (const uint8_t *)key,
			  .seq = seq,
			  .nchunks = 1,
			  .len = len };

	zones_note(zs, &r, addr);
}

static void test_landed(void **state)
{
	struct zones zs;
	uint32_t zone;

	(void)state;
	setup_zones(&zs);
	assert_int_equal(zones_reserve(&zs, ZC_PUT, 8192, zones_entry_meta(4, false), &zone), 0);
	assert_int_equal(zones_reserve(&zs, ZC_PUT, 8192, zones_entry_meta(4, false), &zone), 0);
	/* Outside the room handed out, unaligned, in another zone: impossible. */
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start + 16384, 4096), -EIO);
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start + 100, 4096), -EIO);
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start + ZONE, 4096), -EIO);
	/* Two appends cannot land on one block. */
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start + 8192, 8192), 0);
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start + 4096, 8192), -EIO);
	assert_int_equal(zones_landed(&zs, zone, zs.z[zone].start, 8192), 0);
	assert_int_equal(zs.z[zone].wp, 16384);
	zones_done(&zs);
}

static void test_may_hold_by_seq(void **state)
{
	struct zones zs;

	(void)state;
	setup_zones(&zs);
	zs.z[1].state = zs.z[2].state = ZS_FULL;
	note(&zs, "old", 10, zs.z[1].start, 4096);
	note(&zs, "new", 50, zs.z[2].start, 4096);
	/* Zone 1 holds seq 10: a tombstone at 20 for "old" must stay, for "new" it need not. */
	assert_true(zones_may_hold(&zs, 3, "old", 3, 20));
	/* Zone 2 holds only records newer than 20, whatever its filter says. */
	assert_false(zones_may_hold(&zs, 1, "new", 3, 20));
	assert_true(zones_may_hold(&zs, 1, "new", 3, 60));
	/* The victim itself does not count. */
	assert_false(zones_may_hold(&zs, 1, "old", 3, 20));
	/* A zone whose contents are unknown may hold anything older. */
	zones_forget_keys(&zs, 2);
	assert_true(zones_may_hold(&zs, 1, "other", 5, 20));
	zones_done(&zs);
}

static void test_garbage(void **state)
{
	struct zones zs;
	struct zent e = { .seq = 7, .nchunks = 1, .loc = { 3 * ZONE, 8192 } };

	(void)state;
	setup_zones(&zs);
	note(&zs, "k", 7, 3 * ZONE, 8192);
	note(&zs, "j", 8, 3 * ZONE + 8192, 8192);
	/* Landed, not yet in the index: pending, not garbage. */
	zones_add_pending(&zs, 3 * ZONE, 8192);
	assert_int_equal(zone_garbage(&zs.z[3]), 8192);
	zones_sub_pending(&zs, 3 * ZONE, 8192);
	zones_add_entry(&zs, &e, false);
	assert_int_equal(zone_garbage(&zs.z[3]), 8192);
	/* A dead version a get still reads is kept too. */
	zs.z[3].held += 8192;
	assert_int_equal(zone_garbage(&zs.z[3]), 0);
	zones_done(&zs);
}

static void test_tombstones_kept_then_tried(void **state)
{
	struct zones zs;
	struct zent t = { .seq = 30, .loc = { 4 * ZONE, 4096 } };

	(void)state;
	setup_zones(&zs);
	note(&zs, "v", 5, 5 * ZONE, 4096); /* the value the tombstone hides */
	zones_add_entry(&zs, &t, true);	   /* a new tombstone: kept */
	assert_int_equal(zs.z[4].kept, 4096);
	assert_int_equal(zs.z[4].tombs, 0);
	/* Zone 5, with dead records older than the tombstone, goes: worth a try now. */
	zs.z[5].state = ZS_FULL;
	zones_reset_done(&zs, 5, true);
	assert_int_equal(zs.z[4].kept, 0);
	assert_int_equal(zs.z[4].tombs, 4096);
	/* Copied by GC because it could not go: kept again, in its new zone. */
	zones_move_live(&zs, 4 * ZONE, (struct zloc){ 6 * ZONE, 4096 }, 30);
	assert_int_equal(zs.z[6].kept, 4096);
	assert_int_equal(zs.z[6].live, 4096);
	assert_int_equal(zs.z[4].live, 0);
	/* A reset that took only live records away retries nothing. */
	zs.z[7].min_seq = 1;
	zones_reset_done(&zs, 7, false);
	assert_int_equal(zs.z[6].kept, 4096);
	zones_done(&zs);
}

static void test_holds(void **state)
{
	struct zholds hs;
	struct zhold a = { .seq = 1, .key = (const uint8_t *)"key", .klen = 3, .kind = ZH_PUT };
	struct zhold b = { .seq = 2, .key = (const uint8_t *)"key", .klen = 3, .kind = ZH_GET };
	struct zhold c = { .seq = 3, .key = (const uint8_t *)"kez", .klen = 3, .kind = ZH_DEL };
	struct zhold *many = calloc(5000, sizeof(*many));
	unsigned n = 0;

	(void)state;
	assert_non_null(many);
	assert_int_equal(zholds_init(&hs), 0);
	zholds_add(&hs, &a);
	zholds_add(&hs, &b);
	zholds_add(&hs, &c);
	/* The table grows past its first size and still finds everything. */
	for (unsigned i = 0; i < 5000; i++) {
		many[i] = (struct zhold){ .seq = 10 + i, .key = (const uint8_t *)"x", .klen = 1 };
		zholds_add(&hs, &many[i]);
	}
	for (struct zhold *h = zholds_next(&hs, "key", 3, NULL); h;
	     h = zholds_next(&hs, "key", 3, h))
		n++;
	assert_int_equal(n, 2);
	zholds_remove(&hs, &a);
	assert_ptr_equal(zholds_next(&hs, "key", 3, NULL), &b);
	assert_null(zholds_next(&hs, "key", 3, &b));
	assert_null(zholds_next(&hs, "ke", 2, NULL));
	n = 0;
	for (struct zhold *h = zholds_next(&hs, "x", 1, NULL); h; h = zholds_next(&hs, "x", 1, h))
		n++;
	assert_int_equal(n, 5000);
	zholds_done(&hs);
	free(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_landed),	cmocka_unit_test(test_may_hold_by_seq),
		cmocka_unit_test(test_garbage), cmocka_unit_test(test_tombstones_kept_then_tried),
		cmocka_unit_test(test_holds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
