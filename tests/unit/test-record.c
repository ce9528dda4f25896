/*
 * The on-media record format (version 3): seal and parse of every record
 * type, records packed back to back, and what parse must refuse (a flipped
 * bit, another store's tag, a buffer cut short, an impossible header); then
 * the zone summary's entries (varints, offset and seq told from the entry
 * before), its parts and its footer.
 */
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
#include "summary.h"
#include "super.h"
#include "util.h"

#define TAG 0x0123456789abcdefull

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = seed >> 16;
	}
}

/* The format's CRC, written out here so that the test pins it. */
static uint32_t format_crc(const uint8_t *rec, size_t end, uint64_t tag)
{
	uint8_t t[8];

	put_le64(t, tag);
	return crc32c(crc32c(0, t, sizeof(t)), rec + 4, end - 4);
}

/* Rewrites the CRC after an edit, so that only the edit itself is judged. */
static void recrc(uint8_t *rec, size_t end)
{
	put_le32(rec, format_crc(rec, end, TAG));
}

static bool rec_ext(const struct zrec *r)
{
	return zrec_ext(r->type, r->nchunks);
}

/* Where the bytes the CRC covers end: header, extension, key, data. */
static size_t rec_end(const struct zrec *r)
{
	return zrec_head_len(rec_ext(r)) + r->klen + r->dlen;
}

/* One record of each shape: the header fields to seal, key and data from a seed. */
struct rcase {
	const char *name;
	struct zrec r;
};

static const struct rcase cases[] = {
	{ "put",
	  { .type = ZREC_PUT, .klen = 5, .dlen = 100, .seq = 1, .vlen = 100, .nchunks = 1 } },
	{ "put-empty-value", { .type = ZREC_PUT, .klen = 3, .seq = 2, .nchunks = 1 } },
	{ "put-1-byte",
	  { .type = ZREC_PUT, .klen = 1, .dlen = 1, .seq = 3, .vlen = 1, .nchunks = 1 } },
	/* 20 + 4 + 8: no padding at all. */
	{ "put-aligned",
	  { .type = ZREC_PUT, .klen = 4, .dlen = 8, .seq = 4, .vlen = 8, .nchunks = 1 } },
	{ "put-long-key",
	  { .type = ZREC_PUT,
	    .klen = ZREC_KEY_MAX,
	    .dlen = 77,
	    .seq = 0x1122334455667788ull,
	    .vlen = 77,
	    .nchunks = 1 } },
	{ "put-4k-value",
	  { .type = ZREC_PUT, .klen = 9, .dlen = 4033, .seq = 5, .vlen = 4033, .nchunks = 1 } },
	{ "put-chunk",
	  { .type = ZREC_PUT,
	    .klen = 7,
	    .dlen = 300,
	    .seq = (1ull << 56) - 1,
	    .vlen = 1000000,
	    .voff = 300,
	    .chunk = 0x01234567,
	    .nchunks = 0x89abcdef } },
	{ "put-first-chunk",
	  { .type = ZREC_PUT,
	    .klen = 2,
	    .dlen = 64,
	    .seq = 6,
	    .vlen = 100,
	    .chunk = 0,
	    .nchunks = 2 } },
	/* The last chunk ends exactly at the value's end. */
	{ "put-last-chunk",
	  { .type = ZREC_PUT,
	    .klen = 2,
	    .dlen = 36,
	    .seq = 6,
	    .vlen = 100,
	    .voff = 64,
	    .chunk = 1,
	    .nchunks = 2 } },
	{ "put-chunk-empty",
	  { .type = ZREC_PUT, .klen = 3, .seq = 7, .vlen = 0, .chunk = 4, .nchunks = 5 } },
	{ "del", { .type = ZREC_DEL, .klen = 3, .seq = 77 } },
	{ "del-long-key", { .type = ZREC_DEL, .klen = ZREC_KEY_MAX, .seq = UINT64_MAX } },
	{ "summary",
	  { .type = ZREC_SUMMARY, .dlen = 200, .seq = 30, .vlen = 150, .voff = ZSUM_NONE } },
	{ "summary-part",
	  { .type = ZREC_SUMMARY,
	    .dlen = 4096 - ZREC_HDR - ZREC_EXT,
	    .seq = 31,
	    .vlen = 4000,
	    .voff = 8192 } },
	{ "seq", { .type = ZREC_SEQ, .seq = 1000 } },
	{ "pad", { .type = ZREC_PAD, .dlen = ZDEV_BLOCK_MAX - ZREC_HDR } },
	{ "pad-short", { .type = ZREC_PAD, .dlen = 4 } },
	{ "super", { .type = ZREC_SUPER, .dlen = 48, .seq = 0 } },
};

/*
 * A sealed record in a fresh buffer with room to spare, key and data from
 * the case's index. The buffer starts as garbage so that padding must be
 * written. *len: what zrec_seal returned.
 */
static uint8_t *make(const struct zrec *in, uint32_t seed, size_t *len)
{
	bool ext = rec_ext(in);
	size_t cap = zrec_len(ext, in->klen, in->dlen) + 64;
	uint8_t *buf = malloc(cap), *key = malloc(in->klen + 1);
	struct zrec r = *in;

	assert_non_null(buf);
	assert_non_null(key);
	memset(buf, 0xa5, cap);
	fill(key, in->klen, seed);
	fill(zrec_data(buf, ext, in->klen), in->dlen, seed + 1);
	r.key = key;
	*len = zrec_seal(buf, &r, TAG);
	free(key);
	return buf;
}

static uint8_t *make_case(size_t i, size_t *len)
{
	return make(&cases[i].r, 1000 * (uint32_t)i, len);
}

/* What parse gives back for a sealed r: the fields a record without the extension leaves out. */
static struct zrec expected(const struct zrec *in)
{
	struct zrec w = *in;

	w.key = w.data = NULL;
	w.len = zrec_len(rec_ext(in), in->klen, in->dlen);
	if (!rec_ext(in)) {
		w.vlen = in->type == ZREC_PUT ? in->dlen : 0;
		w.voff = 0;
		w.chunk = 0;
		w.nchunks = in->type == ZREC_DEL ? 0 : 1;
	}
	return w;
}

static void assert_fields(const struct zrec *got, const struct zrec *want)
{
	assert_int_equal(got->type, want->type);
	assert_int_equal(got->klen, want->klen);
	assert_int_equal(got->dlen, want->dlen);
	assert_int_equal(got->seq, want->seq);
	assert_int_equal(got->vlen, want->vlen);
	assert_int_equal(got->voff, want->voff);
	assert_int_equal(got->chunk, want->chunk);
	assert_int_equal(got->nchunks, want->nchunks);
	assert_int_equal(got->len, want->len);
}

/* Key and data of case i where parse said they are. */
static void assert_payload(const struct zrec *got, const uint8_t *buf, size_t i)
{
	const struct zrec *in = &cases[i].r;
	uint8_t *want = malloc(in->klen + in->dlen + 1);
	size_t head = zrec_head_len(rec_ext(in));

	assert_non_null(want);
	fill(want, in->klen, 1000 * (uint32_t)i);
	fill(want + in->klen, in->dlen, 1000 * (uint32_t)i + 1);
	assert_ptr_equal(got->key, buf + head);
	assert_ptr_equal(got->data, buf + head + in->klen);
	if (in->klen)
		assert_memory_equal(got->key, want, in->klen);
	if (in->dlen)
		assert_memory_equal(got->data, want + in->klen, in->dlen);
	free(want);
}

static bool parse_error(int ret)
{
	return ret == -ENOENT || ret == -EBADMSG || ret == -ENODATA;
}

static void test_round_trip(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct zrec *in = &cases[i].r;
		struct zrec want = expected(in), out, head, again;
		bool ext = rec_ext(in);
		size_t end = rec_end(in), len;
		uint8_t *buf = make_case(i, &len), *copy;

		assert_int_equal(len, zrec_len(ext, in->klen, in->dlen));
		assert_int_equal(len % ZREC_ALIGN, 0);
		assert_true(len >= end && len - end < ZREC_ALIGN);
		for (size_t k = end; k < len; k++)
			assert_int_equal(buf[k], 0);
		assert_int_equal(buf[len], 0xa5); /* nothing written past the record */

		/* The layout on the media, little-endian. */
		assert_int_equal(get_le32(buf), format_crc(buf, end, TAG));
		assert_int_equal(buf[4], in->type);
		assert_int_equal(buf[5], ext ? ZREC_F_EXT : 0);
		assert_int_equal(get_le16(buf + 6), in->klen);
		assert_int_equal(get_le32(buf + 8), in->dlen);
		assert_int_equal(get_le64(buf + 12), in->seq);
		if (ext) {
			assert_int_equal(get_le64(buf + 20), in->vlen);
			assert_int_equal(get_le64(buf + 28), in->voff);
			assert_int_equal(get_le32(buf + 36), in->chunk);
			assert_int_equal(get_le32(buf + 40), in->nchunks);
		}

		memset(&out, 0xee, sizeof(out));
		assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
		assert_fields(&out, &want);
		assert_payload(&out, buf, i);

		/* The header alone says the same, without the CRC. */
		memset(&head, 0xee, sizeof(head));
		assert_int_equal(zrec_head(buf, len, &head), 0);
		assert_fields(&head, &want);
		assert_ptr_equal(head.key, out.key);
		assert_ptr_equal(head.data, out.data);

		/* Sealing what was parsed makes the same bytes. */
		copy = malloc(len);
		assert_non_null(copy);
		memset(copy, 0x5a, len);
		if (in->dlen)
			memcpy(zrec_data(copy, ext, in->klen), out.data, in->dlen);
		again = out;
		assert_int_equal(zrec_seal(copy, &again, TAG), len);
		assert_memory_equal(copy, buf, len);
		free(copy);
		free(buf);
	}
}

/* Lengths are 8-aligned, and exactly header, extension, key and data rounded up. */
static void test_len(void **state)
{
	uint8_t tmp[128];

	for (int ext = 0; ext < 2; ext++) {
		size_t head = ext ? ZREC_HDR + ZREC_EXT : ZREC_HDR;

		assert_int_equal(zrec_head_len(ext), head);
		for (size_t klen = 0; klen < 40; klen++) {
			for (size_t dlen = 0; dlen < 40; dlen++) {
				size_t len = zrec_len(ext, klen, dlen), used = head + klen + dlen;

				assert_int_equal(len % ZREC_ALIGN, 0);
				assert_true(len >= used && len - used < ZREC_ALIGN);
			}
			assert_ptr_equal(zrec_data(tmp, ext, klen), tmp + head + klen);
		}
	}
	assert_int_equal(zrec_len(false, 0, 0), 24);
	assert_int_equal(zrec_len(false, 4, 0), 24);
	assert_int_equal(zrec_len(false, 4, 1), 32);
	assert_int_equal(zrec_len(false, 4, 8), 32);
	assert_int_equal(zrec_len(true, 0, 0), 48);
	assert_int_equal(zrec_len(true, 0, 4), 48);
	assert_int_equal(zrec_len(true, 0, 5), 56);
	assert_int_equal(zrec_len(true, ZREC_KEY_MAX, 1 * MiB), 44 + 1024 + 1 * MiB + 4);
	assert_int_equal(zrec_len(false, 0, UINT32_MAX), 20 + (uint64_t)UINT32_MAX + 5);

	/* The most data a record of rec_max bytes holds fills it exactly. */
	assert_int_equal(zrec_data_max(ZDEV_BLOCK_MAX, false, 0), ZDEV_BLOCK_MAX - 20);
	assert_int_equal(zrec_data_max(ZDEV_BLOCK_MAX, true, 10), ZDEV_BLOCK_MAX - 54);
	for (int ext = 0; ext < 2; ext++) {
		for (size_t klen = 0; klen <= ZREC_KEY_MAX; klen += 73) {
			size_t rec_max = 1 * MiB, d = zrec_data_max(rec_max, ext, klen);

			assert_true(zrec_len(ext, klen, d) <= rec_max);
			assert_true(zrec_len(ext, klen, d + ZREC_ALIGN) > rec_max);
		}
	}

	assert_int_equal(zrec_align(0), 0);
	assert_int_equal(zrec_align(1), 8);
	assert_int_equal(zrec_align(8), 8);
	assert_int_equal(zrec_align(4095), 4096);
	for (uint32_t b = 512; b <= 4096; b *= 2) {
		assert_int_equal(zrec_block_up(0, b), 0);
		assert_int_equal(zrec_block_up(1, b), b);
		assert_int_equal(zrec_block_up(b, b), b);
		assert_int_equal(zrec_block_up(b + 8, b), 2 * b);
		assert_int_equal(zrec_block_up((1ull << 40) + 1, b), (1ull << 40) + b);
	}

	/* Which records carry the extension. */
	assert_false(zrec_ext(ZREC_PUT, 0));
	assert_false(zrec_ext(ZREC_PUT, 1));
	assert_true(zrec_ext(ZREC_PUT, 2));
	assert_true(zrec_ext(ZREC_PUT, UINT32_MAX));
	assert_true(zrec_ext(ZREC_SUMMARY, 0));
	assert_true(zrec_ext(ZREC_SUMMARY, 1));
	for (uint32_t n = 0; n < 4; n++) {
		assert_false(zrec_ext(ZREC_DEL, n));
		assert_false(zrec_ext(ZREC_SEQ, n));
		assert_false(zrec_ext(ZREC_PAD, n));
		assert_false(zrec_ext(ZREC_SUPER, n));
	}
}

/* The key may already sit in place in the buffer. */
static void test_key_in_place(void **state)
{
	uint8_t buf[256];
	struct zrec r = { .type = ZREC_DEL, .klen = 5, .seq = 9 }, out;

	for (int ext = 0; ext < 2; ext++) {
		if (ext)
			r = (struct zrec){ .type = ZREC_PUT,
					   .klen = 5,
					   .seq = 9,
					   .dlen = 3,
					   .vlen = 10,
					   .voff = 7,
					   .chunk = 2,
					   .nchunks = 3 };
		memset(buf, 0xff, sizeof(buf));
		memcpy(buf + zrec_head_len(ext), "hello", 5);
		memcpy(zrec_data(buf, ext, 5), "xyz", r.dlen);
		r.key = buf + zrec_head_len(ext);
		assert_int_equal(zrec_seal(buf, &r, TAG), zrec_len(ext, 5, r.dlen));
		assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &out), 0);
		assert_int_equal(out.type, r.type);
		assert_int_equal(out.seq, 9);
		assert_memory_equal(out.key, "hello", 5);
		assert_memory_equal(out.data, "xyz", r.dlen);
	}
}

/*
 * Records of every kind packed back to back as one append, then the zeros to
 * the block's end: each parses at its offset, the walk ends at the padding,
 * and no offset inside a record is taken for one.
 */
static void test_packed(void **state)
{
	size_t offs[ARRAY_SIZE(cases) * 2], n = 0, pos = 0, size = 0;
	uint8_t *buf;
	struct zrec r;
	int ret;

	for (size_t k = 0; k < ARRAY_SIZE(offs); k++) {
		const struct zrec *in = &cases[k % ARRAY_SIZE(cases)].r;

		size += zrec_len(rec_ext(in), in->klen, in->dlen);
	}
	size = zrec_block_up(size + 1, 4096);
	buf = calloc(1, size);
	assert_non_null(buf);
	for (size_t k = 0; k < ARRAY_SIZE(offs); k++) {
		size_t i = (k * 7) % ARRAY_SIZE(cases), len;
		uint8_t *rec = make_case(i, &len);

		offs[n++] = pos;
		memcpy(buf + pos, rec, len);
		pos += len;
		free(rec);
	}
	assert_true(pos < size);

	pos = 0;
	for (size_t k = 0; (ret = zrec_parse(buf + pos, size - pos, TAG, &r)) == 0; k++) {
		size_t i = (k * 7) % ARRAY_SIZE(cases);
		struct zrec want = expected(&cases[i].r);

		assert_true(k < n);
		assert_int_equal(pos, offs[k]);
		assert_int_equal(pos % ZREC_ALIGN, 0);
		assert_fields(&r, &want);
		assert_payload(&r, buf + pos, i);
		/* The record alone, its padding to 8 bytes included, is enough to parse it. */
		assert_int_equal(zrec_parse(buf + pos, r.len, TAG, &r), 0);
		assert_int_equal(zrec_parse(buf + pos, rec_end(&r), TAG, &r),
				 rec_end(&r) == r.len ? 0 : -ENODATA);
		pos += r.len;
	}
	assert_int_equal(ret, -ENOENT);
	assert_int_equal(pos,
			 offs[n - 1] + expected(&cases[((n - 1) * 7) % ARRAY_SIZE(cases)].r).len);

	/* Nothing but the record starts is a record. */
	for (size_t at = 0, k = 0; at < size; at += ZREC_ALIGN) {
		ret = zrec_parse(buf + at, size - at, TAG, &r);
		if (k < n && at == offs[k]) {
			assert_int_equal(ret, 0);
			k++;
		} else {
			assert_true(parse_error(ret));
		}
	}
	free(buf);
}

/* Zeros where a record would start: padding, however much of it is readable. */
static void test_padding(void **state)
{
	uint8_t buf[ZDEV_BLOCK_MAX];
	struct zrec r = {
		.type = ZREC_PUT, .klen = 1, .dlen = 10, .nchunks = 1, .key = (const uint8_t *)"k"
	};
	size_t len;

	memset(buf, 0, sizeof(buf));
	len = zrec_seal(buf, &r, TAG);
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &r), 0);
	for (size_t avail = 5; avail <= sizeof(buf) - len; avail++) {
		assert_int_equal(zrec_parse(buf + len, avail, TAG, &r), -ENOENT);
		assert_int_equal(zrec_head(buf + len, avail, &r), -ENOENT);
	}
	/* Too little to see the type byte: not padding, just not enough. */
	for (size_t avail = 0; avail <= 4; avail++)
		assert_int_equal(zrec_parse(buf + len, avail, TAG, &r), -ENODATA);

	/* A type byte of 0 is padding whatever follows. */
	memset(buf, 0xff, sizeof(buf));
	buf[4] = 0;
	assert_int_equal(zrec_parse(buf, sizeof(buf), TAG, &r), -ENOENT);
	assert_int_equal(zrec_head(buf, 8, &r), -ENOENT);
}

/* No single-bit error in header, extension, key or data gets through. */
static void test_every_bit_flip(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t end = rec_end(&cases[i].r), len;
		uint8_t *buf = make_case(i, &len);
		struct zrec out;

		assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
		for (size_t bit = 0; bit < end * 8; bit++) {
			int ret;

			buf[bit / 8] ^= 1u << (bit % 8);
			ret = zrec_parse(buf, len, TAG, &out);
			if (!parse_error(ret))
				fail_msg("%s: bit %zu flipped: parse returned %d", cases[i].name,
					 bit, ret);
			buf[bit / 8] ^= 1u << (bit % 8);
		}
		assert_int_equal(zrec_parse(buf, len, TAG, &out), 0);
		free(buf);
	}
}

/* A record of another store (or a superblock, under its own tag) is not ours. */
static void test_other_tag(void **state)
{
	static const uint64_t tags[] = { TAG ^ 1, TAG ^ (1ull << 63), 0, ~TAG, ZSUPER_TAG };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len;
		uint8_t *buf = make_case(i, &len);
		struct zrec out;

		for (size_t t = 0; t < ARRAY_SIZE(tags); t++)
			assert_int_equal(zrec_parse(buf, len, tags[t], &out), -EBADMSG);
		/* The header alone does not know the tag. */
		assert_int_equal(zrec_head(buf, len, &out), 0);
		free(buf);
	}
}

/*
 * A record cut short, in a buffer of exactly the bytes left (so that a read
 * past them is the tools' to catch): -ENODATA, never a record.
 */
static void test_truncated(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct zrec *in = &cases[i].r;
		struct zrec want = expected(in), out;
		size_t end = rec_end(in), head = zrec_head_len(rec_ext(in)), len;
		uint8_t *buf = make_case(i, &len);

		for (size_t avail = 0; avail < len; avail++) {
			uint8_t *cut = malloc(avail ? avail : 1);
			int ret;

			assert_non_null(cut);
			memcpy(cut, buf, avail);
			ret = zrec_parse(cut, avail, TAG, &out);
			if (avail < end) {
				if (ret != -ENODATA)
					fail_msg("%s: %zu of %zu bytes: parse returned %d",
						 cases[i].name, avail, end, ret);
			} else {
				/*
				 * Only the zero padding after the data is missing: it
				 * is not covered by the CRC and never crosses a block,
				 * so a caller reading whole blocks always has it.
				 * zrec_parse takes the record then (record.h says
				 * -ENODATA "when avail does not hold all of it"):
				 * either answer is safe, but a taken one must be whole.
				 */
				assert_true(ret == 0 || ret == -ENODATA);
				if (!ret)
					assert_fields(&out, &want);
			}
			ret = zrec_head(cut, avail, &out);
			assert_int_equal(ret, avail < head ? -ENODATA : 0);
			free(cut);
		}
		free(buf);
	}
}

/* Rewrites a header field of a sealed record. */
enum field { F_TYPE, F_FLAGS, F_KLEN, F_DLEN, F_VLEN, F_VOFF, F_CHUNK, F_NCHUNKS };

static void set(uint8_t *p, enum field f, uint64_t v)
{
	switch (f) {
	case F_TYPE:
		p[4] = v;
		break;
	case F_FLAGS:
		p[5] = v;
		break;
	case F_KLEN:
		put_le16(p + 6, v);
		break;
	case F_DLEN:
		put_le32(p + 8, v);
		break;
	case F_VLEN:
		put_le64(p + 20, v);
		break;
	case F_VOFF:
		put_le64(p + 28, v);
		break;
	case F_CHUNK:
		put_le32(p + 36, v);
		break;
	case F_NCHUNKS:
		put_le32(p + 40, v);
		break;
	}
}

/*
 * One edit of a sealed record of case `name`, then the CRC made right over
 * what the header now claims (as far as the buffer goes): zrec_head and
 * zrec_parse must give `want`.
 */
static void edit(const char *name, enum field f, uint64_t v, enum field f2, uint64_t v2, int want)
{
	uint8_t *big = calloc(1, 16 * ZDEV_BLOCK_MAX);
	size_t i, len;
	uint8_t *buf;
	struct zrec r;
	int ret;

	for (i = 0; i < ARRAY_SIZE(cases) && strcmp(cases[i].name, name); i++)
		;
	assert_true(i < ARRAY_SIZE(cases));
	assert_non_null(big);
	buf = make_case(i, &len);
	memcpy(big, buf, len);
	set(big, f, v);
	set(big, f2, v2);
	ret = zrec_head(big, 16 * ZDEV_BLOCK_MAX, &r);
	if (ret != want)
		fail_msg("%s, field %d = %llu: zrec_head returned %d, not %d", name, f,
			 (unsigned long long)v, ret, want);
	if (!ret) {
		assert_true(rec_end(&r) <= 16 * ZDEV_BLOCK_MAX);
		recrc(big, rec_end(&r));
	} else {
		recrc(big, rec_end(&cases[i].r));
	}
	ret = zrec_parse(big, 16 * ZDEV_BLOCK_MAX, TAG, &r);
	if (ret != want)
		fail_msg("%s, field %d = %llu: zrec_parse returned %d, not %d", name, f,
			 (unsigned long long)v, ret, want);
	free(buf);
	free(big);
}

static void edit1(const char *name, enum field f, uint64_t v, int want)
{
	edit(name, f, v, f, v, want);
}

/* Headers no record of ours has are refused, even under a CRC that matches. */
static void test_head_rejects(void **state)
{
	/* The edits themselves are sound: back to the sealed values, all is well. */
	edit1("put", F_TYPE, ZREC_PUT, 0);
	edit1("put-chunk", F_NCHUNKS, 0x89abcdef, 0);

	/* Types: 0 is padding, above ZREC_PAD unknown. */
	edit1("put", F_TYPE, 0, -ENOENT);
	for (unsigned t = ZREC_PAD + 1; t < 256; t++)
		edit1("seq", F_TYPE, t, -EBADMSG);
	/* A type some other record has, with a header that does not fit it. */
	edit1("put", F_TYPE, ZREC_DEL, -EBADMSG);	/* a tombstone with data */
	edit1("del", F_TYPE, ZREC_PAD, -EBADMSG);	/* padding with a key */
	edit1("put-chunk", F_TYPE, ZREC_DEL, -EBADMSG); /* a tombstone with the extension */
	edit1("seq", F_TYPE, ZREC_SUMMARY, -EBADMSG);	/* a summary without it */
	edit1("summary", F_TYPE, ZREC_SEQ, -EBADMSG);	/* a checkpoint with it */
	edit1("summary", F_TYPE, ZREC_SUPER, -EBADMSG);

	/* Flags: only ZREC_F_EXT exists. */
	for (unsigned fl = 2; fl < 256; fl++) {
		edit1("put", F_FLAGS, fl, -EBADMSG);
		edit1("put-chunk", F_FLAGS, fl, -EBADMSG);
	}
	/* The extension exactly where the type and chunk count call for it. */
	edit1("put", F_FLAGS, ZREC_F_EXT, -EBADMSG);
	/*
	 * (A chunk without its flag reads as a whole value whose key begins with
	 * the extension's bytes: a header that can be, so only the CRC, which the
	 * flag is under, tells; test_every_bit_flip has that.)
	 */
	edit1("put-chunk", F_FLAGS, 0, 0);
	edit1("summary", F_FLAGS, 0, -EBADMSG);
	edit1("del", F_FLAGS, ZREC_F_EXT, -EBADMSG);
	edit1("seq", F_FLAGS, ZREC_F_EXT, -EBADMSG);
	edit1("pad", F_FLAGS, ZREC_F_EXT, -EBADMSG);
	edit1("super", F_FLAGS, ZREC_F_EXT, -EBADMSG);
	edit1("put-chunk", F_NCHUNKS, 1, -EBADMSG); /* one chunk needs no extension */
	edit1("put-chunk", F_NCHUNKS, 0, -EBADMSG);

	/* Keys: at most ZREC_KEY_MAX; puts and deletes have one, padding none. */
	edit1("put", F_KLEN, ZREC_KEY_MAX + 1, -EBADMSG);
	edit1("put", F_KLEN, UINT16_MAX, -EBADMSG);
	edit1("seq", F_KLEN, ZREC_KEY_MAX + 1, -EBADMSG);
	edit1("summary", F_KLEN, ZREC_KEY_MAX + 1, -EBADMSG);
	edit1("put", F_KLEN, ZREC_KEY_MAX, 0);
	edit1("put", F_KLEN, 0, -EBADMSG);
	edit1("put-chunk", F_KLEN, 0, -EBADMSG);
	edit1("del", F_KLEN, 0, -EBADMSG);
	edit1("pad", F_KLEN, 1, -EBADMSG);
	edit1("del", F_DLEN, 1, -EBADMSG);

	/* Chunks: chunk < nchunks, voff + dlen <= vlen, sums that wrap included. */
	edit1("put-chunk", F_CHUNK, 0x89abcdef, -EBADMSG);
	edit1("put-chunk", F_CHUNK, UINT32_MAX, -EBADMSG);
	edit1("put-chunk", F_CHUNK, 0x89abcdee, 0);
	edit1("put-chunk", F_NCHUNKS, 0x01234567, -EBADMSG);
	edit1("put-chunk", F_NCHUNKS, 2, -EBADMSG);
	edit1("put-chunk", F_VOFF, 1000000 - 300, 0); /* exactly fits */
	edit1("put-chunk", F_VOFF, 1000000 - 299, -EBADMSG);
	edit1("put-chunk", F_VOFF, 1000001, -EBADMSG);
	edit1("put-chunk", F_VOFF, UINT64_MAX, -EBADMSG);
	edit1("put-chunk", F_VLEN, 299, -EBADMSG);
	edit("put-chunk", F_VLEN, UINT64_MAX, F_VOFF, UINT64_MAX - 50, -EBADMSG);
	edit("put-chunk", F_VLEN, UINT64_MAX, F_VOFF, UINT64_MAX - 300, 0);
	edit1("put-chunk", F_DLEN, 1000000 - 299, -EBADMSG);

	/* Sealed as they are, bad fields and all: refused all the same. */
	{
		static const struct zrec bad[] = {
			{ .type = ZREC_DEL, .klen = 3, .dlen = 1 },
			{ .type = ZREC_PUT, .klen = 0, .dlen = 1, .nchunks = 1 },
			{ .type = ZREC_DEL, .klen = 0 },
			{ .type = ZREC_PAD, .klen = 2, .dlen = 8 },
			{ .type = ZREC_PUT,
			  .klen = 1,
			  .dlen = 10,
			  .vlen = 9,
			  .chunk = 0,
			  .nchunks = 2 },
			{ .type = ZREC_PUT,
			  .klen = 1,
			  .dlen = 1,
			  .vlen = 10,
			  .chunk = 2,
			  .nchunks = 2 },
			{ .type = ZREC_PUT, .klen = ZREC_KEY_MAX + 1, .dlen = 1, .nchunks = 1 },
			{ .type = 7, .klen = 1 },
			{ .type = 0x81, .klen = 1 },
		};

		for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
			size_t len;
			uint8_t *buf = make(&bad[k], (uint32_t)k, &len);
			struct zrec out;

			assert_int_equal(zrec_parse(buf, len, TAG, &out), -EBADMSG);
			assert_int_equal(zrec_head(buf, len, &out), -EBADMSG);
			free(buf);
		}
	}
}

/* --- summaries --- */

/* A varint as the format has it: 7 bits a byte, low first, the top bit for "more". */
static size_t vput(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n] = (v & 0x7f) | (v >= 0x80 ? 0x80 : 0);
		n++;
		v >>= 7;
	} while (v);
	return n;
}

/* A signed difference as a varint's value: 0, -1, 1, -2, 2... as 0, 1, 2, 3, 4... */
static uint64_t zz(uint64_t now, uint64_t before)
{
	uint64_t d = now - before;

	return d >> 63 ? ~(d << 1) : d << 1;
}

/*
 * The entry of r at off, written out by the format's description: offset / 8
 * and seq as differences from the entry before's end and seq (prev, which
 * this entry then updates).
 */
static size_t encode_entry(uint8_t *p, const struct zrec *r, uint64_t off, struct zsum_pos *prev)
{
	bool multi = r->nchunks > 1;
	size_t n = 0;

	p[n++] = r->type | (multi ? 0x80 : 0);
	n += vput(p + n, r->klen);
	n += vput(p + n, zz(off / ZREC_ALIGN, prev->end / ZREC_ALIGN));
	n += vput(p + n, r->len / ZREC_ALIGN);
	n += vput(p + n, zz(r->seq, prev->seq));
	if (multi) {
		n += vput(p + n, r->chunk);
		n += vput(p + n, r->nchunks);
		n += vput(p + n, r->vlen);
	}
	memcpy(p + n, r->key, r->klen);
	prev->end = off + r->len;
	prev->seq = r->seq;
	return n + r->klen;
}

struct sent {
	struct zrec r;
	uint64_t off;
};

static uint8_t key_bytes[ZREC_KEY_MAX];

/*
 * Entries of every kind, offsets and seqs up to what a store has and past
 * it, going forward and back (so that differences of both signs are written).
 */
static void sum_entries(struct sent *e, size_t *n)
{
	static const struct sent src[] = {
		{ { .type = ZREC_PUT, .klen = 1, .len = 24, .seq = 1, .nchunks = 1 }, 0 },
		/* Right after the one before, as the records of an append lie. */
		{ { .type = ZREC_PUT, .klen = 16, .len = 128, .seq = 2, .nchunks = 1 }, 24 },
		{ { .type = ZREC_PUT, .klen = 16, .len = 128, .seq = 300, .nchunks = 1 }, 4104 },
		{ { .type = ZREC_PUT,
		    .klen = 5,
		    .len = 4 * MiB,
		    .seq = (1ull << 56) - 1,
		    .vlen = 7 * 4 * MiB - 3,
		    .chunk = 6,
		    .nchunks = 7 },
		  (1ull << 40) - 4 * MiB },
		/* Back to the zone's start, seq back to 0. */
		{ { .type = ZREC_DEL, .klen = ZREC_KEY_MAX, .len = 1048, .seq = 0 }, 0 },
		{ { .type = ZREC_DEL, .klen = ZREC_KEY_MAX, .len = 1048, .seq = (1ull << 56) - 1 },
		  (1ull << 40) - 4096 },
		{ { .type = ZREC_PUT,
		    .klen = 2,
		    .len = 48,
		    .seq = 127,
		    .vlen = 1ull << 32,
		    .chunk = 0,
		    .nchunks = 2 },
		  8 },
		{ { .type = ZREC_DEL, .klen = 3, .len = 24, .seq = 126 }, 128 },
		{ { .type = ZREC_PUT,
		    .klen = ZREC_KEY_MAX,
		    .len = ZSUPER_REC_LIMIT,
		    .seq = 1ull << 55,
		    .nchunks = 1 },
		  1ull << 39 },
		/* Past a store's limits: the varints still carry them. */
		{ { .type = ZREC_PUT,
		    .klen = 9,
		    .len = UINT32_MAX & ~7u,
		    .seq = UINT64_MAX,
		    .vlen = UINT64_MAX,
		    .chunk = UINT32_MAX - 1,
		    .nchunks = UINT32_MAX },
		  UINT64_MAX & ~7ull },
		{ { .type = ZREC_DEL, .klen = 4, .len = 8, .seq = 0 }, 1ull << 62 },
		{ { .type = ZREC_DEL, .klen = 4, .len = 8, .seq = UINT64_MAX }, 0 },
	};

	fill(key_bytes, sizeof(key_bytes), 77);
	for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
		e[i] = src[i];
		e[i].r.key = key_bytes + i;
		if (e[i].r.klen > sizeof(key_bytes) - i)
			e[i].r.key = key_bytes;
	}
	*n = ARRAY_SIZE(src);
}

static void assert_entry(const struct zrec *got, uint64_t got_off, const struct sent *want)
{
	assert_int_equal(got->type, want->r.type);
	assert_int_equal(got->klen, want->r.klen);
	assert_memory_equal(got->key, want->r.key, want->r.klen);
	assert_int_equal(got_off, want->off);
	assert_int_equal(got->len, want->r.len);
	assert_int_equal(got->seq, want->r.seq);
	if (want->r.type == ZREC_DEL) {
		assert_int_equal(got->nchunks, 0);
	} else if (want->r.nchunks > 1) {
		assert_int_equal(got->chunk, want->r.chunk);
		assert_int_equal(got->nchunks, want->r.nchunks);
		assert_int_equal(got->vlen, want->r.vlen);
	} else {
		assert_int_equal(got->chunk, 0);
		assert_int_equal(got->nchunks, 1);
	}
}

static void test_summary_round_trip(void **state)
{
	struct sent e[16];
	struct zsum s = { 0 };
	struct zsum_pos prev = { 0 }, at = { 0 };
	uint8_t want[2048];
	size_t n, total = 0;
	struct zrec r;
	uint64_t off;

	/* An empty summary has no buffer: its walk ends at once. */
	assert_int_equal(zsum_next(s.buf, s.len, &at, &r, &off), 1);

	sum_entries(e, &n);
	for (size_t i = 0; i < n; i++) {
		size_t size = encode_entry(want, &e[i].r, e[i].off, &prev);
		int ret = zsum_add(&s, &e[i].r, e[i].off);

		assert_int_equal(ret, size);
		assert_memory_equal(s.buf + total, want, size);
		total += size;
		assert_int_equal(s.len, total);
		assert_int_equal(s.n, i + 1);
	}
	/*
	 * An entry right after the one before has a difference of 0: the first
	 * entry is 6 bytes (type, klen, off, len, seq, key), the second's
	 * offset comes after its type and klen.
	 */
	assert_int_equal(s.buf[6 + 2], 0);
	for (size_t i = 0; i < n; i++) {
		size_t before = at.pos;

		memset(&r, 0xee, sizeof(r));
		assert_int_equal(zsum_next(s.buf, s.len, &at, &r, &off), 0);
		assert_true(at.pos > before && at.pos <= s.len);
		assert_ptr_equal(r.key + r.klen, s.buf + at.pos);
		assert_entry(&r, off, &e[i]);
	}
	assert_int_equal(at.pos, s.len);
	assert_int_equal(zsum_next(s.buf, s.len, &at, &r, &off), 1);
	zsum_done(&s);
	assert_null(s.buf);
	assert_int_equal(s.len, 0);
	assert_int_equal(s.n, 0);
}

/*
 * zsum_entry_max bounds every entry a store makes (a zone under 2^40 bytes,
 * records up to ZSUPER_REC_LIMIT, seq under 2^56), whatever came before it:
 * the longest differences are a jump across the zone and back.
 */
static void test_summary_entry_max(void **state)
{
	static const size_t klens[] = { 1, 2, 127, 128, 1000, ZREC_KEY_MAX };
	const uint64_t len = ZSUPER_REC_LIMIT + ZDEV_BLOCK_MAX, zone = 1ull << 40;
	static const uint64_t seqs[] = { 0, (1ull << 56) - 1, 0, 1, (1ull << 56) - 1, 1ull << 55 };
	const uint64_t offs[] = { 0, zone - len, 0, zone / 2, zone - len, 8 };
	struct zsum s = { 0 };

	fill(key_bytes, sizeof(key_bytes), 77);
	for (size_t i = 0; i < ARRAY_SIZE(klens); i++) {
		for (int multi = 0; multi < 2; multi++) {
			for (size_t k = 0; k < ARRAY_SIZE(offs); k++) {
				struct zrec r = {
					.type = ZREC_PUT,
					.klen = klens[i],
					.key = key_bytes,
					.len = len,
					.seq = seqs[k],
					.vlen = multi ? UINT64_MAX : 0,
					.chunk = multi ? UINT32_MAX - 1 : 0,
					.nchunks = multi ? UINT32_MAX : 1,
				};
				int size = zsum_add(&s, &r, offs[k]);

				assert_true(size > 0);
				if ((size_t)size > zsum_entry_max(klens[i], multi))
					fail_msg(
					    "klen %zu multi %d: an entry of %d bytes, %zu at most",
					    klens[i], multi, size, zsum_entry_max(klens[i], multi));
			}
			/* The smallest entry too, and a tombstone. */
			{
				struct zrec r = { .type = multi ? ZREC_PUT : ZREC_DEL,
						  .klen = klens[i],
						  .key = key_bytes,
						  .len = 8,
						  .nchunks = multi ? 2 : 0 };
				int size = zsum_add(&s, &r, 0);

				assert_true(size > 0 &&
					    (size_t)size <= zsum_entry_max(klens[i], multi));
			}
		}
	}
	zsum_done(&s);
}

/* Walks buf[0, len): how many entries came before the end, and how it ended. */
static int walk(const uint8_t *buf, size_t len, size_t *count)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct zsum_pos at = { 0 };
	struct zrec r;
	uint64_t off;
	int ret;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	*count = 0;
	while ((ret = zsum_next(copy, len, &at, &r, &off)) == 0) {
		assert_true(at.pos <= len);
		assert_true(r.key >= copy && r.key + r.klen <= copy + len);
		(*count)++;
	}
	free(copy);
	return ret;
}

/* One entry made of the varints given here (raw: differences zigzagged already), then key bytes. */
static size_t raw_entry(uint8_t *p, uint8_t t, const uint64_t *v, size_t nv, size_t keybytes)
{
	size_t n = 0;

	p[n++] = t;
	for (size_t i = 0; i < nv; i++)
		n += vput(p + n, v[i]);
	memset(p + n, 'k', keybytes);
	return n + keybytes;
}

static void assert_bad_entry(uint8_t t, const uint64_t *v, size_t nv, size_t keybytes)
{
	uint8_t buf[2048];
	size_t count, len = raw_entry(buf, t, v, nv, keybytes);

	assert_int_equal(walk(buf, len, &count), -EBADMSG);
	assert_int_equal(count, 0);
}

static void test_summary_malformed(void **state)
{
	struct sent e[16];
	struct zsum s = { 0 };
	size_t n, count, *ends, k = 0;
	uint8_t buf[64];

	/* A list cut anywhere but between entries is malformed, and so said. */
	sum_entries(e, &n);
	ends = calloc(n, sizeof(*ends));
	assert_non_null(ends);
	for (size_t i = 0; i < n; i++) {
		zsum_add(&s, &e[i].r, e[i].off);
		ends[i] = s.len;
	}
	for (size_t len = 0; len <= s.len; len++) {
		int ret = walk(s.buf, len, &count);

		if (k < n && len == ends[k])
			k++;
		assert_int_equal(count, k);
		if (len == 0 || (k && len == ends[k - 1]))
			assert_int_equal(ret, 1);
		else
			assert_int_equal(ret, -EBADMSG);
	}
	free(ends);
	zsum_done(&s);

	/* type, klen, off, len, seq [, chunk, nchunks, vlen]: off 8, seq 9 */
	{
		static const uint64_t ok[] = { 3, 2, 3, 18 }, okm[] = { 3, 2, 6, 18, 1, 2, 40 };
		uint8_t good[64];
		size_t len = raw_entry(good, ZREC_PUT, ok, 4, 3);

		assert_int_equal(walk(good, len, &count), 1);
		assert_int_equal(count, 1);
		len = raw_entry(good, ZREC_PUT | 0x80, okm, 7, 3);
		assert_int_equal(walk(good, len, &count), 1);
		assert_int_equal(count, 1);
		len = raw_entry(good, ZREC_DEL, ok, 4, 3);
		assert_int_equal(walk(good, len, &count), 1);
		assert_int_equal(count, 1);
	}
	/* Varints cut short: the list ends in the middle of one. */
	buf[0] = ZREC_PUT;
	buf[1] = 0x85;
	assert_int_equal(walk(buf, 2, &count), -EBADMSG);
	assert_int_equal(walk(buf, 1, &count), -EBADMSG);
	{
		static const uint64_t v[] = { 3, 1ull << 40, 3, 1ull << 50 };
		uint8_t full[64];
		size_t len = raw_entry(full, ZREC_PUT, v, 4, 3);

		/* Each prefix stops inside a varint or the key. */
		for (size_t cut = 1; cut < len; cut++) {
			assert_int_equal(walk(full, cut, &count), -EBADMSG);
			assert_int_equal(count, 0);
		}
	}
	/* Varints longer than 64 bits can be: 11 bytes (here the seq), however small their value.
	 */
	memcpy(buf, "\x01\x03\x02\x03", 4);
	memset(buf + 4, 0x80, 10);
	buf[14] = 0;
	memcpy(buf + 15, "key", 3);
	assert_int_equal(walk(buf, 18, &count), -EBADMSG);
	buf[4] = 0;
	memcpy(buf + 5, "key", 3);
	assert_int_equal(walk(buf, 8, &count), 1); /* the same, one byte long */
	memset(buf + 4, 0x80, 20);
	buf[24] = 0;
	memcpy(buf + 25, "key", 3);
	assert_int_equal(walk(buf, 28, &count), -EBADMSG);
	/* The longest there is, 10 bytes, is one. */
	{
		static const uint64_t v[] = { 3, 2, 3, UINT64_MAX };
		uint8_t e10[64];
		size_t len = raw_entry(e10, ZREC_PUT, v, 4, 3);

		assert_int_equal(len, 1 + 1 + 1 + 1 + 10 + 3);
		assert_int_equal(walk(e10, len, &count), 1);
		assert_int_equal(count, 1);
	}

	/* klen past the end, over the limit, or 0. */
	{
		static const uint64_t k5[] = { 5, 2, 3, 18 },
				      kbig[] = { ZREC_KEY_MAX + 1, 2, 3, 18 },
				      k0[] = { 0, 2, 3, 18 }, kfar[] = { UINT64_MAX, 2, 3, 18 };

		assert_bad_entry(ZREC_PUT, k5, 4, 4);
		assert_bad_entry(ZREC_PUT, k5, 4, 0);
		assert_bad_entry(ZREC_PUT, kbig, 4, ZREC_KEY_MAX + 1);
		assert_bad_entry(ZREC_PUT, kfar, 4, 100);
		assert_bad_entry(ZREC_PUT, k0, 4, 0);
		assert_bad_entry(ZREC_DEL, k0, 4, 0);
	}
	/* A record of no length, or longer than a record can be. */
	{
		static const uint64_t l0[] = { 3, 2, 0, 18 }, lbig[] = { 3, 2, 1ull << 32, 18 };

		assert_bad_entry(ZREC_PUT, l0, 4, 3);
		assert_bad_entry(ZREC_PUT, lbig, 4, 3);
	}
	/* Types a summary never lists. */
	{
		static const uint64_t ok[] = { 3, 2, 3, 18 };
		static const uint8_t types[] = { 0,	   ZREC_SUPER, ZREC_SUMMARY,
						 ZREC_SEQ, ZREC_PAD,   7,
						 0x7f,	   0x80,       0x80 | ZREC_SUMMARY };

		for (size_t i = 0; i < ARRAY_SIZE(types); i++)
			assert_bad_entry(types[i], ok, 4, 3);
	}
	/* Chunks: a tombstone has none, a value in several has 2 or more, chunk < nchunks. */
	{
		static const uint64_t del[] = { 3, 2, 3, 18, 0, 2, 40 },
				      one[] = { 3, 2, 3, 18, 0, 1, 40 },
				      none[] = { 3, 2, 3, 18, 0, 0, 40 },
				      past[] = { 3, 2, 3, 18, 2, 2, 40 },
				      wide[] = { 3, 2, 3, 18, 0, 1ull << 32, 40 };

		assert_bad_entry(ZREC_DEL | 0x80, del, 7, 3);
		assert_bad_entry(ZREC_PUT | 0x80, one, 7, 3);
		assert_bad_entry(ZREC_PUT | 0x80, none, 7, 3);
		assert_bad_entry(ZREC_PUT | 0x80, past, 7, 3);
		assert_bad_entry(ZREC_PUT | 0x80, wide, 7, 3);
	}
	/* A bad entry after good ones: those come first, then the error. */
	{
		static const uint64_t ok[] = { 3, 2, 3, 18 }, bad[] = { 3, 2, 0, 18 };
		uint8_t list[64];
		size_t len = raw_entry(list, ZREC_PUT, ok, 4, 3);

		len += raw_entry(list + len, ZREC_DEL, ok, 4, 3);
		len += raw_entry(list + len, ZREC_PUT, bad, 4, 3);
		assert_int_equal(walk(list, len, &count), -EBADMSG);
		assert_int_equal(count, 2);
	}
}

/*
 * Parts hold whole entries only, as many as fit beside the header and the
 * footer; read one after another (each from its own start, the differences
 * going on), they give back every entry.
 */
static void test_summary_parts(void **state)
{
	struct zsum s = { 0 };
	struct sent e[40];
	size_t sizes[40], n = 0;

	fill(key_bytes, sizeof(key_bytes), 77);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct zrec r = { .type = ZREC_PUT,
				  .klen = 1 + (i * 37) % 200,
				  .key = key_bytes + i,
				  .len = 8 * (i + 3),
				  .seq = 1000 + i * i - (i % 3) * 7,
				  .nchunks = 1 + i % 3,
				  .vlen = i * 1000 };
		int size = zsum_add(&s, &r, i * 4096 + (i % 5) * 8);

		assert_true(size > 0);
		e[n] = (struct sent){ r, i * 4096 + (i % 5) * 8 };
		sizes[n++] = size;
	}
	for (size_t rec_max = 256; rec_max <= 2048; rec_max += 300) {
		size_t room = rec_max - zrec_head_len(true) - ZSUM_FOOTER, i = 0, pos = 0, got = 0;
		struct zsum_pos at = { 0 };

		while (pos < s.len) {
			size_t part = zsum_part_len(&s, pos, rec_max), want = 0;
			uint8_t *copy;
			struct zrec r;
			uint64_t off;
			int ret;

			while (i < n && want + sizes[i] <= room)
				want += sizes[i++];
			assert_int_equal(part, want);
			if (!part)
				break; /* an entry larger than a part */
			/* The part alone, in a buffer of its own, as recovery reads it. */
			copy = malloc(part);
			assert_non_null(copy);
			memcpy(copy, s.buf + pos, part);
			at.pos = 0;
			while ((ret = zsum_next(copy, part, &at, &r, &off)) == 0) {
				struct sent w = e[got++];

				w.r.chunk = 0; /* as zsum_next reads a single-record value's */
				assert_entry(&r, off, &w);
			}
			assert_int_equal(ret, 1);
			free(copy);
			pos += part;
		}
		assert_int_equal(got, i);
		assert_true(pos == s.len || i < n);
	}
	assert_int_equal(zsum_part_len(&s, s.len, 4096), 0);
	zsum_done(&s);
}

/* The footer ends the summary's last block, and gives its length in the store's blocks. */
static void test_summary_footer(void **state)
{
	for (uint32_t b = 512; b <= 4096; b *= 2) {
		uint8_t *rec = calloc(1, 3 * b);

		assert_non_null(rec);
		zsum_footer_put(rec, 3 * b, b, TAG);
		assert_int_equal(get_le32(rec + 3 * b - ZSUM_FOOTER), ZSUM_FOOTER_MAGIC);
		assert_int_equal(get_le32(rec + 3 * b - ZSUM_FOOTER + 4), 3);
		assert_int_equal(zsum_footer_get(rec + 2 * b, b, TAG), 3 * b);
		assert_int_equal(zsum_footer_get(rec + 2 * b, b, TAG ^ 1), 0);
		assert_int_equal(zsum_footer_get(rec + b, b, TAG), 0);
		rec[3 * b - ZSUM_FOOTER] ^= 1;
		assert_int_equal(zsum_footer_get(rec + 2 * b, b, TAG), 0);
		free(rec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),	  cmocka_unit_test(test_len),
		cmocka_unit_test(test_key_in_place),	  cmocka_unit_test(test_packed),
		cmocka_unit_test(test_padding),		  cmocka_unit_test(test_every_bit_flip),
		cmocka_unit_test(test_other_tag),	  cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_head_rejects),	  cmocka_unit_test(test_summary_round_trip),
		cmocka_unit_test(test_summary_entry_max), cmocka_unit_test(test_summary_malformed),
		cmocka_unit_test(test_summary_parts),	  cmocka_unit_test(test_summary_footer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
