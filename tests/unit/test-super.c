/*
 * The superblock: round trip, and a store of an older or newer format named,
 * never misread; the store's block as each version gives it, and checked
 * against the device.
 */
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

static const struct zdev_info info = {
	.nr_zones = 64, .zone_size = 64 << 20, .block = 4096, .lblock = 512
};

static void test_round_trip(void **state)
{
	uint8_t buf[ZDEV_BLOCK_MAX] __attribute__((aligned(8)));
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
	uint8_t buf[ZDEV_BLOCK_MAX] = { 0 };
	struct zsuper got;

	(void)state;
	for (uint32_t v = 1; v < 3; v++) {
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
	uint8_t buf[ZDEV_BLOCK_MAX] __attribute__((aligned(8)));
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
	uint8_t buf[ZDEV_BLOCK_MAX] = { 0 };
	struct zsuper got;

	(void)state;
	assert_int_equal(zsuper_decode(buf, sizeof(buf), &got), -EBADMSG);
}

static int encode_decode(const struct zsuper *sb, struct zsuper *got)
{
	uint8_t buf[ZDEV_BLOCK_MAX] __attribute__((aligned(8)));

	zsuper_encode(sb, buf);
	return zsuper_decode(buf, sizeof(buf), got);
}

/* Version 4 stores have the device's block at format; version 3 ones 4096, whatever it says. */
static void test_block(void **state)
{
	struct zdev_info dev = info;
	struct zsuper sb, got;

	(void)state;
	for (uint32_t b = 512; b <= 4096; b *= 2) {
		dev.block = b;
		zsuper_new(&sb, &dev, 1 << 20);
		assert_int_equal(encode_decode(&sb, &got), 0);
		assert_int_equal(got.block, b);
		assert_int_equal(zsuper_block(&got), b);
		sb.version = 3;
		assert_int_equal(encode_decode(&sb, &got), 0);
		assert_int_equal(zsuper_block(&got), 4096);
	}
	/* Not a power of two, out of range, or records not whole blocks: damage. */
	zsuper_new(&sb, &dev, 1 << 20);
	for (uint32_t b = 0; b <= 8192; b += 256) {
		sb.block = b;
		assert_int_equal(encode_decode(&sb, &got),
				 b == 512 || b == 1024 || b == 2048 || b == 4096 ? 0 : -EBADMSG);
	}
	sb.block = 4096;
	sb.rec_max = 4096 + 512;
	assert_int_equal(encode_decode(&sb, &got), -EBADMSG);
	sb.block = 512;
	assert_int_equal(encode_decode(&sb, &got), 0);
}

static void test_check(void **state)
{
	struct zdev_info dev = info;
	struct zerr err = { "" };
	struct zsuper sb;

	(void)state;
	dev.block = 512;
	zsuper_new(&sb, &dev, 1 << 20);
	assert_int_equal(zsuper_check(&sb, &dev, &err), 0);
	/* The medium takes 4096 at least now: 512-byte blocks cannot be written. */
	dev.lblock = 4096;
	assert_int_equal(zsuper_check(&sb, &dev, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "512-byte blocks"));
	/* A version 3 store's 4096-byte blocks fit it. */
	sb.version = 3;
	assert_int_equal(zsuper_check(&sb, &dev, &err), 0);
	/* --block must name the store's, as --zone-size names the device's. */
	dev.block = 512;
	dev.block_asked = true;
	assert_int_equal(zsuper_check(&sb, &dev, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not the 512 asked for"));
	dev.block = 4096;
	assert_int_equal(zsuper_check(&sb, &dev, &err), 0);
	dev.nr_zones++;
	assert_int_equal(zsuper_check(&sb, &dev, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_older_format),
		cmocka_unit_test(test_newer_format), cmocka_unit_test(test_zeros),
		cmocka_unit_test(test_block),	     cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
