/* The 8-byte message prefix on the socket: two little-endian u32, H then P. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "frame.h"

static void test_wire_bytes(void **state)
{
	static const uint8_t want[ZAP_FRAME_PREFIX] = { 0x04, 0x03, 0x02, 0x01,
							0xdd, 0xcc, 0xbb, 0xaa };
	uint8_t out[ZAP_FRAME_PREFIX];

	memset(out, 0x55, sizeof(out));
	zap_frame_encode(out, 0x01020304, 0xaabbccdd);
	assert_memory_equal(out, want, sizeof(want));

	zap_frame_encode(out, 1, 0);
	assert_memory_equal(out, "\1\0\0\0\0\0\0\0", 8);
	zap_frame_encode(out, 0, UINT32_MAX);
	assert_memory_equal(out, "\0\0\0\0\xff\xff\xff\xff", 8);
}

static void test_decode_bytes(void **state)
{
	static const uint8_t in[ZAP_FRAME_PREFIX] = {
		0x10, 0x32, 0x04, 0x00, 0x78, 0x56, 0x34, 0x12
	};
	struct zap_frame f;

	assert_int_equal(zap_frame_decode(in, &f), 0);
	assert_int_equal(f.hlen, 0x043210);
	assert_int_equal(f.plen, 0x12345678);
}

static void test_round_trip(void **state)
{
	static const uint32_t hlens[] = {
		0, 1, 255, 256, 65536, ZAP_FRAME_MAX_HEADER - 1, ZAP_FRAME_MAX_HEADER
	};
	static const uint32_t plens[] = { 0, 1, 4096, 0x80000000u, UINT32_MAX };
	uint8_t buf[ZAP_FRAME_PREFIX];
	struct zap_frame f;

	for (size_t i = 0; i < sizeof(hlens) / sizeof(hlens[0]); i++) {
		for (size_t j = 0; j < sizeof(plens) / sizeof(plens[0]); j++) {
			zap_frame_encode(buf, hlens[i], plens[j]);
			memset(&f, 0xee, sizeof(f));
			assert_int_equal(zap_frame_decode(buf, &f), 0);
			assert_int_equal(f.hlen, hlens[i]);
			assert_int_equal(f.plen, plens[j]);
		}
	}
}

static void test_header_too_long(void **state)
{
	static const uint32_t bad[] = { ZAP_FRAME_MAX_HEADER + 1, 2 * ZAP_FRAME_MAX_HEADER,
					0x80000000u, UINT32_MAX };
	uint8_t buf[ZAP_FRAME_PREFIX];
	struct zap_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		zap_frame_encode(buf, bad[i], 0);
		assert_int_equal(zap_frame_decode(buf, &f), -EPROTO);
	}
	/* ASCII where a prefix should be, say an HTTP request: the stream is broken. */
	assert_int_equal(zap_frame_decode((const uint8_t *)"GET / HT", &f), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_decode_bytes),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_header_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
