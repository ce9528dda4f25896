/* parse_size and format_size, and the little-endian helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"

static uint64_t size_of(const char *s)
{
	uint64_t v = 0xdeadbeef;

	assert_int_equal(parse_size(s, &v), 0);
	return v;
}

static void test_parse_size(void **state)
{
	assert_int_equal(size_of("0"), 0);
	assert_int_equal(size_of("1"), 1);
	assert_int_equal(size_of("4096"), 4096);
	assert_int_equal(size_of("007"), 7);
	assert_int_equal(size_of("0K"), 0);
	assert_int_equal(size_of("1K"), KiB);
	assert_int_equal(size_of("1KB"), KiB);
	assert_int_equal(size_of("1KiB"), KiB);
	assert_int_equal(size_of("1k"), KiB);
	assert_int_equal(size_of("64M"), 64 * MiB);
	assert_int_equal(size_of("64m"), 64 * MiB);
	assert_int_equal(size_of("64MiB"), 64 * MiB);
	assert_int_equal(size_of("1G"), GiB);
	assert_int_equal(size_of("1g"), GiB);
	assert_int_equal(size_of("3GB"), 3 * GiB);
	assert_int_equal(size_of("2T"), 2 * 1024 * GiB);
	assert_int_equal(size_of("1P"), 1024 * 1024 * GiB);
	assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
	/* The largest multiples that still fit. */
	assert_int_equal(size_of("16777215T"), 16777215ull << 40);
	assert_int_equal(size_of("17179869183G"), 17179869183ull << 30);
	assert_int_equal(size_of("16383P"), 16383ull << 50);
}

static void test_parse_size_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"K",
		"-1",
		"+1",
		" 1",
		"1 ",
		"1 K",
		"1X",
		"1KK",
		"1Ki",
		"1KiBx",
		"1Bi",
		"1.5G",
		"0x10",
		"1e3",
		"64M\n",
		"18446744073709551616",
		"99999999999999999999999",
		"16777216T",
		"17179869184G",
		"16384P",
		"18014398509481984K",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 0xdeadbeef;

		if (parse_size(bad[i], &v) != -EINVAL)
			fail_msg("parse_size(\"%s\") accepted: %llu", bad[i],
				 (unsigned long long)v);
		/* And it leaves the output alone. */
		assert_int_equal(v, 0xdeadbeef);
	}
}

static const char *fmt(uint64_t v)
{
	static char buf[32];

	return format_size(v, buf, sizeof(buf));
}

static void test_format_size(void **state)
{
	assert_string_equal(fmt(0), "0");
	assert_string_equal(fmt(1), "1");
	assert_string_equal(fmt(1000), "1000");
	assert_string_equal(fmt(1023), "1023");
	assert_string_equal(fmt(1024), "1K");
	assert_string_equal(fmt(1536), "1536");
	assert_string_equal(fmt(4096), "4K");
	assert_string_equal(fmt(64 * MiB), "64M");
	assert_string_equal(fmt(64 * MiB + 4096), "65540K");
	assert_string_equal(fmt(GiB), "1G");
	assert_string_equal(fmt(4 * GiB), "4G");
	assert_string_equal(fmt(1024 * GiB), "1T");
	assert_string_equal(fmt(1024 * 1024 * GiB), "1P");
	/* P is the largest unit, so 2^60 stays in P. */
	assert_string_equal(fmt(1ull << 60), "1024P");
	assert_string_equal(fmt(UINT64_MAX), "18446744073709551615");
}

/* What format_size writes, parse_size reads back as the same number. */
static void test_round_trip(void **state)
{
	static const uint64_t vals[] = { 0,	      1,	  512,	     1024,    4096,
					 12345 * KiB, 3 * MiB,	  64 * MiB,  GiB + 1, 7 * GiB,
					 1ull << 50,  1ull << 63, UINT64_MAX };
	char buf[32];
	uint64_t v;

	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		assert_int_equal(parse_size(format_size(vals[i], buf, sizeof(buf)), &v), 0);
		assert_int_equal(v, vals[i]);
	}
	for (unsigned s = 0; s < 64; s++) {
		assert_int_equal(parse_size(format_size(1ull << s, buf, sizeof(buf)), &v), 0);
		assert_int_equal(v, 1ull << s);
	}
}

static void test_le(void **state)
{
	uint8_t b[8];

	put_le16(b, 0x0102);
	assert_memory_equal(b, "\x02\x01", 2);
	assert_int_equal(get_le16(b), 0x0102);
	put_le32(b, 0x01020304);
	assert_memory_equal(b, "\x04\x03\x02\x01", 4);
	assert_int_equal(get_le32(b), 0x01020304);
	put_le64(b, 0x0102030405060708ull);
	assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	assert_int_equal(get_le64(b), 0x0102030405060708ull);
	put_le64(b, UINT64_MAX);
	assert_int_equal(get_le64(b), UINT64_MAX);
	assert_int_equal(get_le32(b), UINT32_MAX);
}

static void test_zerr(void **state)
{
	struct zerr e;

	assert_int_equal(zerr_set(&e, -EINVAL, "bad %s at %d", "thing", 3), -EINVAL);
	assert_string_equal(e.msg, "bad thing at 3");
	assert_int_equal(zerr_set(NULL, -EIO, "ignored"), -EIO);
	/* The device named once, before the reason; a bare errno spelled out. */
	assert_int_equal(zerr_about(&e, -EINVAL, "/dev/x"), -EINVAL);
	assert_string_equal(e.msg, "/dev/x: bad thing at 3");
	assert_int_equal(zerr_about(&e, -EINVAL, "/dev/x"), -EINVAL);
	assert_string_equal(e.msg, "/dev/x: bad thing at 3");
	e.msg[0] = 0;
	zerr_about(&e, -EIO, "img");
	assert_string_equal(e.msg, "img: Input/output error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_parse_size_rejects),
		cmocka_unit_test(test_format_size), cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_le),	    cmocka_unit_test(test_zerr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
