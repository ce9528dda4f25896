/* The superblock: round trip, and a store of an older or newer format named, never misread. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "record.h"
#include "super.h"
#include "util.h"

static const struct zdev_info info = { .nr_zones = 64, .zone_size = 64 << 20, .block = 4096 };

static void test_round_trip(void **state)
{
	uint8_t buf[ZDEV_BLOCK] __attribute__((aligned(8)));
	struct zsuper sb, got;

	(void)state;
	zsuper_new(&sb, &info, 1 << 20);
	zsuper_encode(&sb, buf);
	assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), 0);
	assert_memory_equal(got.uuid, sb.uuid, 16);
	assert_int_equal(got.version, ZSUPER_VERSION);
	assert_int_equal(got.nr_zones, 64);
	assert_int_equal(got.zone_size, 64 << 20);
	assert_int_equal(got.rec_max, 1 << 20);
	assert_int_equal(zsuper_tag(&got), zsuper_tag(&sb));
	/* One bit off anywhere in the record (header and 48 bytes of data): not a superblock. */
	for (size_t i = 0; i < ZREC_HDR + 48; i++) {
		buf[i] ^= 0x20;
		assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EBADMSG);
		buf[i] ^= 0x20;
	}
}

/* Formats 1 and 2 began a superblock with a 64-byte header: named as older. */
static void test_older_format(void **state)
{
	uint8_t buf[ZDEV_BLOCK] = { 0 };
	struct zsuper got;

	(void)state;
	for (uint32_t v = 1; v < ZSUPER_VERSION; v++) {
		put_le32(buf, 0x5250415au); /* "ZAPR" */
		buf[12] = ZREC_SUPER;
		put_le64(buf + 56, ZSUPER_TAG);
		put_le32(buf + 64 + 16, v);
		assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EPROTO);
		assert_int_equal(got.version, v);
	}
	/* Another magic or tag is no superblock at all. */
	put_le64(buf + 56, 1);
	assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EBADMSG);
}

static void test_newer_format(void **state)
{
	uint8_t buf[ZDEV_BLOCK] __attribute__((aligned(8)));
	struct zsuper sb, got;

	(void)state;
	zsuper_new(&sb, &info, 1 << 20);
	sb.version = ZSUPER_VERSION + 1;
	zsuper_encode(&sb, buf);
	assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EPROTONOSUPPORT);
	assert_int_equal(got.version, ZSUPER_VERSION + 1);
}

static void test_zeros(void **state)
{
	uint8_t buf[ZDEV_BLOCK] = { 0 };
	struct zsuper got;

	(void)state;
	assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_older_format),
		cmocka_unit_test(test_newer_format),
		cmocka_unit_test(test_zeros),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
