/*
 * CRC32C: known vectors, chaining, unaligned buffers, every length 0..64 and
 * every length around the three-stream cuts against a bit-at-a-time
 * reference, and the three-stream shift tables recomputed from it. The daemon's crc32c.c is
 * included so that its table fallback is checked too, not only the SSE4.2 path this CPU most likely
 * takes through crc32c().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crc32c.c"

/* The three ways in: the public function and each implementation behind it. */
static uint32_t via_sw(uint32_t crc, const void *buf, size_t len)
{
	return ~crc32c_sw(~crc, buf, len);
}

#if defined(__x86_64__)
static uint32_t via_hw(uint32_t crc, const void *buf, size_t len)
{
	if (!__builtin_cpu_supports("sse4.2"))
		return via_sw(crc, buf, len);
	return ~crc32c_hw(~crc, buf, len);
}
#endif

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static const crc_fn impls[] = {
	crc32c,
	via_sw,
#if defined(__x86_64__)
	via_hw,
#endif
};

#define NIMPLS (sizeof(impls) / sizeof(impls[0]))

/* Bit by bit, reflected polynomial 0x82F63B78: no tables, no tricks. */
static uint32_t crc_ref(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
	}
	return ~crc;
}

static void test_known_vectors(void **state)
{
	/* RFC 3720 (iSCSI) appendix B.4, and the common check value. */
	static const uint8_t read_pdu[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	uint8_t zeros[32], ones[32], inc[32], dec[32];

	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		inc[i] = i;
		dec[i] = 31 - i;
	}
	for (size_t i = 0; i < NIMPLS; i++) {
		crc_fn f = impls[i];

		assert_int_equal(f(0, "123456789", 9), 0xE3069283);
		assert_int_equal(f(0, zeros, 32), 0x8A9136AA);
		assert_int_equal(f(0, ones, 32), 0x62A8AB43);
		assert_int_equal(f(0, inc, 32), 0x46DD794E);
		assert_int_equal(f(0, dec, 32), 0x113FDB5C);
		assert_int_equal(f(0, read_pdu, 48), 0xD9963A56);
		assert_int_equal(f(0, "", 0), 0);
		assert_int_equal(f(0x12345678, "", 0), 0x12345678);
	}
	/* The reference itself must agree, or the comparisons below prove nothing. */
	assert_int_equal(crc_ref(0, "123456789", 9), 0xE3069283);
	assert_int_equal(crc_ref(0, ones, 32), 0x62A8AB43);
}

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = seed >> 16;
	}
}

static void test_chaining(void **state)
{
	uint8_t buf[1000];

	fill(buf, sizeof(buf), 1);
	for (size_t i = 0; i < NIMPLS; i++) {
		crc_fn f = impls[i];
		uint32_t whole = f(0, buf, sizeof(buf));

		assert_int_equal(whole, crc_ref(0, buf, sizeof(buf)));
		for (size_t cut = 0; cut <= sizeof(buf); cut += 37)
			assert_int_equal(f(f(0, buf, cut), buf + cut, sizeof(buf) - cut), whole);
		/* Byte at a time. */
		uint32_t c = 0;
		for (size_t k = 0; k < sizeof(buf); k++)
			c = f(c, buf + k, 1);
		assert_int_equal(c, whole);
	}
}

/* Every length 0..64 at every alignment 0..15, against the reference. */
static void test_lengths_and_alignment(void **state)
{
	uint8_t *mem = malloc(64 + 16 + 8);

	assert_non_null(mem);
	for (size_t off = 0; off < 16; off++) {
		for (size_t len = 0; len <= 64; len++) {
			uint8_t *p = mem + off;

			fill(p, len, off * 100 + len);
			for (size_t i = 0; i < NIMPLS; i++) {
				assert_int_equal(impls[i](0, p, len), crc_ref(0, p, len));
				assert_int_equal(impls[i](0xdeadbeef, p, len),
						 crc_ref(0xdeadbeef, p, len));
			}
		}
	}
	free(mem);
}

/* A larger unaligned buffer, so that the 8-byte loop runs many times. */
static void test_large_unaligned(void **state)
{
	size_t len = 100003;
	uint8_t *mem = malloc(len + 8);

	assert_non_null(mem);
	fill(mem, len + 8, 7);
	for (size_t off = 0; off < 8; off++) {
		uint32_t want = crc_ref(0, mem + off, len);

		for (size_t i = 0; i < NIMPLS; i++)
			assert_int_equal(impls[i](0, mem + off, len), want);
	}
	free(mem);
}

#if defined(__x86_64__)
/* The register (not inverted) run through n zero bytes, a bit at a time. */
static uint32_t ref_zeros(uint32_t c, size_t n)
{
	while (n--)
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & -(c & 1));
	return c;
}

static void check_table(const uint32_t t[8][16], size_t n)
{
	for (unsigned k = 0; k < 8; k++)
		for (uint32_t v = 0; v < 16; v++)
			assert_int_equal(t[k][v], ref_zeros(v << 4 * k, n));
}

static void test_shift_tables(void **state)
{
	check_table(shift_long, LONG);
	check_table(shift_short, SHORT);
}
#endif

/*
 * Lengths on both sides of where the three streams start and stop (3 *
 * SHORT, 3 * LONG and their multiples and sums), at two alignments.
 */
static void test_stream_cuts(void **state)
{
	static const size_t base[] = { 0, 1536, 3072, 24576, 24576 + 1536, 49152 + 4608 };
	size_t max = 49152 + 4608 + 16;
	uint8_t *mem = malloc(max + 8);

	assert_non_null(mem);
	fill(mem, max + 8, 11);
	for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++)
		for (size_t len = base[b] ? base[b] - 9 : 0; len <= base[b] + 9; len++)
			for (size_t off = 0; off < 8; off += 3) {
				uint32_t want = crc_ref(0x5eed, mem + off, len);

				for (size_t i = 0; i < NIMPLS; i++)
					assert_int_equal(impls[i](0x5eed, mem + off, len), want);
			}
	free(mem);
}

/* Every single-bit change of a buffer changes its CRC. */
static void test_single_bit_errors(void **state)
{
	uint8_t buf[256];
	uint32_t good;

	fill(buf, sizeof(buf), 3);
	good = crc32c(0, buf, sizeof(buf));
	for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
		buf[bit / 8] ^= 1u << (bit % 8);
		assert_int_not_equal(crc32c(0, buf, sizeof(buf)), good);
		buf[bit / 8] ^= 1u << (bit % 8);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_chaining),
		cmocka_unit_test(test_lengths_and_alignment),
		cmocka_unit_test(test_large_unaligned),
#if defined(__x86_64__)
		cmocka_unit_test(test_shift_tables),
#endif
		cmocka_unit_test(test_stream_cuts),
		cmocka_unit_test(test_single_bit_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
