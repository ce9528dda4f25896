/* The on-media record format: seal, parse, verify, and what parse must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crc32c.h"
#include "record.h"
#include "util.h"

#define TAG 0x0123456789abcdefull

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = seed >> 16;
	}
}

/*
 * A sealed PUT record in a fresh buffer of exactly its length, key and data
 * from a seed. The buffer starts as garbage so that padding must be written.
 */
static uint8_t *make_put(size_t klen, size_t dlen, uint32_t seed, struct zrec *r)
{
	size_t len = zrec_len(klen, dlen);
	uint8_t *buf = malloc(len);
	uint8_t *key = malloc(klen);

	assert_non_null(buf);
	assert_non_null(key);
	memset(buf, 0xa5, len);
	fill(key, klen, seed);
	fill(zrec_data(buf, klen), dlen, seed + 1);
	*r = (struct zrec){
		.type = ZREC_PUT,
		.flags = 0x5a,
		.klen = klen,
		.dlen = dlen,
		.chunk = 1,
		.nchunks = 3,
		.seq = 0x1122334455667788ull,
		.vlen = dlen + 1000000,
		.voff = 999999,
		.key = key,
	};
	assert_int_equal(zrec_seal(buf, r, TAG), len);
	free(key);
	r->key = NULL;
	return buf;
}

static void test_round_trip(void **state)
{
	static const size_t klens[] = { 1, 1024 };
	static const size_t dlens[] = { 0, 1, 4032, 4033, 1 * MiB - 1088 };

	for (size_t i = 0; i < ARRAY_SIZE(klens); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(dlens); j++) {
			size_t klen = klens[i], dlen = dlens[j];
			size_t len = zrec_len(klen, dlen), used = ZREC_HDR + klen + dlen;
			struct zrec in, out;
			uint8_t *buf = make_put(klen, dlen, i * 10 + j, &in);
			uint8_t *want = malloc(klen + dlen + 1);

			assert_non_null(want);
			fill(want, klen, i * 10 + j);
			fill(want + klen, dlen, i * 10 + j + 1);

			assert_int_equal(len % ZREC_BLOCK, 0);
			assert_true(len >= used && len - used < ZREC_BLOCK);
			memset(&out, 0xee, sizeof(out));
			assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
			assert_int_equal(out.type, ZREC_PUT);
			assert_int_equal(out.flags, 0x5a);
			assert_int_equal(out.klen, klen);
			assert_int_equal(out.dlen, dlen);
			assert_int_equal(out.chunk, 1);
			assert_int_equal(out.nchunks, 3);
			assert_int_equal(out.seq, in.seq);
			assert_int_equal(out.vlen, in.vlen);
			assert_int_equal(out.voff, in.voff);
			assert_int_equal(out.len, len);
			assert_int_equal(out.dcrc, crc32c(0, want + klen, dlen));
			assert_ptr_equal(out.key, buf + ZREC_HDR);
			assert_ptr_equal(out.data, buf + ZREC_HDR + klen);
			assert_memory_equal(out.key, want, klen);
			if (dlen)
				assert_memory_equal(out.data, want + klen, dlen);
			assert_int_equal(zrec_verify_data(&out), 0);
			for (size_t k = used; k < len; k++)
				assert_int_equal(buf[k], 0);
			/* Little-endian magic "ZAPR" and tag on the media. */
			assert_memory_equal(buf, "ZAPR", 4);
			assert_int_equal(get_le64(buf + 56), TAG);
			free(want);
			free(buf);
		}
	}
}

/* zrec_len rounds to whole blocks exactly at the boundaries. */
static void test_len(void **state)
{
	assert_int_equal(zrec_len(1, 0), ZREC_BLOCK);
	assert_int_equal(zrec_len(1, 4031), ZREC_BLOCK);
	assert_int_equal(zrec_len(1, 4032), 2 * ZREC_BLOCK);
	assert_int_equal(zrec_len(1024, 1 * MiB - 1088), 1 * MiB);
	assert_int_equal(zrec_len(1024, 1 * MiB - 1087), 1 * MiB + ZREC_BLOCK);
	assert_int_equal(zrec_data_max(1 * MiB, 1024) + 1024 + ZREC_HDR, 1 * MiB);
}

/* The key may already sit in place in the buffer. */
static void test_key_in_place(void **state)
{
	uint8_t buf[ZREC_BLOCK];
	struct zrec r = { .type = ZREC_DEL, .klen = 5, .seq = 9 }, out;

	memcpy(buf + ZREC_HDR, "hello", 5);
	r.key = buf + ZREC_HDR;
	assert_int_equal(zrec_seal(buf, &r, TAG), ZREC_BLOCK);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), 0);
	assert_int_equal(out.type, ZREC_DEL);
	assert_int_equal(out.seq, 9);
	assert_memory_equal(out.key, "hello", 5);
}

/* Rewrites header bytes, then fixes hcrc so only the change itself is judged. */
static void reseal_header(uint8_t *buf)
{
	uint16_t klen = get_le16(buf + 14);

	put_le32(buf + 4, crc32c(0, buf + 8, ZREC_HDR - 8 + klen));
}

static void test_parse_rejects(void **state)
{
	struct zrec r, out;
	size_t len = zrec_len(16, 100);
	uint8_t *good = make_put(16, 100, 42, &r);
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	assert_int_equal(zrec_parse(good, len, TAG, &out), 0);

	/* Wrong tag. */
	assert_int_equal(zrec_parse(good, len, TAG ^ 1, &out), -EBADMSG);
	assert_int_equal(zrec_parse(good, len, 0, &out), -EBADMSG);

	/* Bad magic, even with a header CRC that matches. */
	memcpy(buf, good, len);
	buf[0] ^= 0x20;
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);

	/* A flipped bit anywhere in header or key. */
	for (size_t bit = 0; bit < (ZREC_HDR + 16) * 8; bit++) {
		memcpy(buf, good, ZREC_HDR + 16);
		buf[bit / 8] ^= 1u << (bit % 8);
		assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
	}

	/* klen > 4032 is refused even with a matching hcrc and the bytes readable. */
	uint8_t *big = calloc(1, 2 * ZREC_BLOCK);
	assert_non_null(big);
	memcpy(big, good, ZREC_HDR);
	put_le16(big + 14, ZREC_BLOCK - ZREC_HDR);
	reseal_header(big);
	assert_int_equal(zrec_parse(big, 2 * ZREC_BLOCK, TAG, &out), 0);
	assert_int_equal(out.klen, ZREC_BLOCK - ZREC_HDR);
	put_le16(big + 14, ZREC_BLOCK - ZREC_HDR + 1);
	reseal_header(big);
	assert_int_equal(zrec_parse(big, 2 * ZREC_BLOCK, TAG, &out), -EBADMSG);
	put_le16(big + 14, UINT16_MAX);
	assert_int_equal(zrec_parse(big, 2 * ZREC_BLOCK, TAG, &out), -EBADMSG);
	free(big);

	/* Unknown types. */
	for (unsigned t = 0; t < 256; t++) {
		if (t >= ZREC_PUT && t <= ZREC_SEQ)
			continue;
		memcpy(buf, good, len);
		buf[12] = t;
		reseal_header(buf);
		assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
	}

	/* PUT with chunk >= nchunks, and with nchunks 0. */
	memcpy(buf, good, len);
	put_le32(buf + 44, 3);
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
	put_le32(buf + 44, 0);
	put_le32(buf + 48, 0);
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);

	/* voff + dlen > vlen, including where the sum wraps around. */
	memcpy(buf, good, len);
	put_le64(buf + 24, 1000);
	put_le64(buf + 32, 901);
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
	put_le64(buf + 32, 900); /* exactly fits */
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
	put_le64(buf + 24, UINT64_MAX);
	put_le64(buf + 32, UINT64_MAX - 50);
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
	put_le64(buf + 24, 1000);
	put_le64(buf + 32, 1001);
	reseal_header(buf);
	assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);

	/* Too few bytes readable for the header or the key. */
	for (size_t avail = 0; avail < ZREC_HDR + 16; avail++)
		assert_int_equal(zrec_parse(good, avail, TAG, &out), -EBADMSG);
	assert_int_equal(zrec_parse(good, ZREC_HDR + 16, TAG, &out), 0);

	free(buf);
	free(good);
}

static void test_del(void **state)
{
	uint8_t buf[ZREC_BLOCK];
	struct zrec r = { .type = ZREC_DEL, .klen = 3, .seq = 77, .key = (const uint8_t *)"abc" };
	struct zrec out;

	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(zrec_seal(buf, &r, TAG), ZREC_BLOCK);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), 0);
	assert_int_equal(out.type, ZREC_DEL);
	assert_int_equal(out.dlen, 0);
	assert_int_equal(zrec_verify_data(&out), 0);

	/* A tombstone that carries data is not one of ours. */
	r.dlen = 1;
	assert_int_equal(zrec_seal(buf, &r, TAG), ZREC_BLOCK);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), -EBADMSG);

	/* Neither is a put or a delete without a key. */
	r.dlen = 0;
	r.klen = 0;
	assert_int_equal(zrec_seal(buf, &r, TAG), ZREC_BLOCK);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), -EBADMSG);
	r = (struct zrec){ .type = ZREC_PUT, .nchunks = 1, .vlen = 1, .dlen = 1 };
	assert_int_equal(zrec_seal(buf, &r, TAG), ZREC_BLOCK);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), -EBADMSG);
}

static void test_verify_data(void **state)
{
	struct zrec r, out;
	size_t len = zrec_len(8, 4033);
	uint8_t *buf = make_put(8, 4033, 5, &r);
	uint8_t *data = zrec_data(buf, 8);

	assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
	assert_int_equal(zrec_verify_data(&out), 0);
	data[4000] ^= 0x10;
	/* The header still parses: the data CRC is checked separately. */
	assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
	assert_int_equal(zrec_verify_data(&out), -EBADMSG);
	data[4000] ^= 0x10;
	free(buf);

	/* Every bit of a small value. */
	len = zrec_len(4, 13);
	buf = make_put(4, 13, 6, &r);
	data = zrec_data(buf, 4);
	for (size_t bit = 0; bit < 13 * 8; bit++) {
		data[bit / 8] ^= 1u << (bit % 8);
		assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
		assert_int_equal(zrec_verify_data(&out), -EBADMSG);
		data[bit / 8] ^= 1u << (bit % 8);
	}
	assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
	assert_int_equal(zrec_verify_data(&out), 0);
	free(buf);
}

/* No single-bit error in header, key or data gets through parse and verify. */
static void test_every_bit_flip(void **state)
{
	struct zrec r, out;
	size_t klen = 7, dlen = 29, used = ZREC_HDR + klen + dlen;
	size_t len = zrec_len(klen, dlen);
	uint8_t *buf = make_put(klen, dlen, 11, &r);

	assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
	assert_int_equal(zrec_verify_data(&out), 0);
	for (size_t bit = 0; bit < used * 8; bit++) {
		buf[bit / 8] ^= 1u << (bit % 8);
		if (zrec_parse(buf, len, TAG, &out) == 0)
			assert_int_equal(zrec_verify_data(&out), -EBADMSG);
		buf[bit / 8] ^= 1u << (bit % 8);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_len),
		cmocka_unit_test(test_key_in_place),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_del),
		cmocka_unit_test(test_verify_data),
		cmocka_unit_test(test_every_bit_flip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
