/*
 * fuzz-records: the decoders of on-media structures, on bytes read from an
 * untrusted device. At every 8-byte offset of the input (records are 8-byte
 * aligned and packed back to back): zrec_head, and zrec_parse with the
 * store's fixed tag, with the tag taken from the input's first 8 bytes (so
 * that inputs can pass the CRC) and with the superblock's; at every 4 KiB
 * offset a zone summary footer; the entry list of every summary record that
 * parses; the whole input as a summary entry list and as a superblock.
 *
 * What must hold: each call returns one of the values its header names; a
 * record taken lies inside the input (header, key and data: the padding
 * after them is not covered), is as long as zrec_len() says, agrees with
 * zrec_head, and sealed again from what was parsed gives the same bytes; a
 * summary entry lies inside its list, and written again from what was read
 * reads back the same, and cut into parts, each part holds whole entries.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "record.h"
#include "summary.h"
#include "super.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static bool same_entry(const struct zrec *a, uint64_t aoff, const struct zrec *b, uint64_t boff)
{
	return a->type == b->type && a->klen == b->klen && !memcmp(a->key, b->key, a->klen) &&
	       a->seq == b->seq && a->len == b->len && a->chunk == b->chunk &&
	       a->nchunks == b->nchunks && a->vlen == b->vlen && aoff == boff;
}

/*
 * The store cuts its summary into parts of whole entries, as many as fit a
 * record of rec_max bytes: of entries read from the input and written again,
 * each part must end where an entry does, and the next must not have fitted.
 */
static void check_parts(const struct zsum *s)
{
	static const size_t rec_maxes[] = { 256, 1024, 4096 };

	for (size_t i = 0; i < sizeof(rec_maxes) / sizeof(rec_maxes[0]); i++) {
		size_t room = rec_maxes[i] - zrec_head_len(true) - ZSUM_FOOTER, pos = 0;
		struct zsum_pos at = { 0 };

		while (pos < s->len) {
			size_t part = zsum_part_len(s, pos, rec_maxes[i]);
			struct zsum_pos next;
			struct zrec r;
			uint64_t off;

			if (part > room)
				fz_die("zsum_part_len: %zu bytes for a part of %zu", part, room);
			while (at.pos < pos + part) {
				if (zsum_next(s->buf, s->len, &at, &r, &off))
					fz_die("zsum_part_len: a part of entries that do not read "
					       "back");
			}
			if (at.pos != pos + part)
				fz_die("zsum_part_len: a part ends inside an entry");
			next = at;
			if (next.pos < s->len && zsum_next(s->buf, s->len, &next, &r, &off) == 0 &&
			    next.pos - pos <= room)
				fz_die("zsum_part_len: an entry left out that fits the part");
			if (!part)
				break; /* an entry no part can hold */
			pos += part;
		}
	}
}

/* A summary's entries, as recovery walks them. */
static void walk_entries(const uint8_t *buf, size_t len)
{
	struct zsum again = { 0 };
	struct zsum_pos at = { 0 }, apos = { 0 };
	size_t before = 0;
	struct zrec r, back;
	uint64_t off, back_off;
	int ret;

	for (unsigned n = 0; (ret = zsum_next(buf, len, &at, &r, &off)) == 0; n++) {
		size_t pos = at.pos, was = again.len;
		int size;

		if (pos <= before || pos > len || r.key < buf || r.key + r.klen != buf + pos)
			fz_die("zsum_next: entry %u outside the list (pos %zu of %zu)", n, pos,
			       len);
		if (at.end != off + r.len || at.seq != r.seq)
			fz_die("zsum_next: entry %u: the next is told from end %llu seq %llu", n,
			       (unsigned long long)at.end, (unsigned long long)at.seq);
		if (!r.klen || r.klen > ZREC_KEY_MAX || !r.len || r.len % ZREC_ALIGN ||
		    off % ZREC_ALIGN)
			fz_die("zsum_next: entry %u: klen %u len %llu off %llu", n, r.klen,
			       (unsigned long long)r.len, (unsigned long long)off);
		if (r.type == ZREC_PUT ? !r.nchunks || r.chunk >= r.nchunks
				       : r.type != ZREC_DEL || r.nchunks)
			fz_die("zsum_next: entry %u: type %u chunk %u of %u", n, r.type, r.chunk,
			       r.nchunks);
		sink += r.seq + r.vlen + r.len + off + r.key[r.klen - 1];

		/*
		 * Written again (the differences from the entry before taken anew:
		 * an offset the input wrapped past 2^64 may now take more bytes), it
		 * reads back the same.
		 */
		size = zsum_add(&again, &r, off);
		if (size <= 0 || again.len != was + (size_t)size)
			fz_die("zsum_add: entry %u written in %d bytes", n, size);
		if (zsum_next(again.buf, again.len, &apos, &back, &back_off) ||
		    apos.pos != again.len || !same_entry(&r, off, &back, back_off))
			fz_die("zsum_next: entry %u does not read back as written", n);
		before = pos;
	}
	if (ret != 1 && ret != -EBADMSG)
		fz_die("zsum_next returned %d", ret);
	if (ret == 1 && at.pos != len)
		fz_die("zsum_next: the list ended at %zu of %zu", at.pos, len);
	check_parts(&again);
	zsum_done(&again);
}

/* What zrec_head promises of a header it takes, or of its refusal. */
static int head(const uint8_t *p, size_t avail, struct zrec *h)
{
	int ret = zrec_head(p, avail, h);
	bool ext;

	switch (ret) {
	case 0:
		break;
	case -ENOENT:
		if (avail < 5 || p[4])
			fz_die("zrec_head: padding of type %u, %zu bytes", avail < 5 ? 0 : p[4],
			       avail);
		return ret;
	case -ENODATA:
		if (avail >= ZREC_HDR + ZREC_EXT || (avail >= ZREC_HDR && !(p[5] & ZREC_F_EXT)))
			fz_die("zrec_head: -ENODATA with the header's %zu bytes readable", avail);
		return ret;
	case -EBADMSG:
		return ret;
	default:
		fz_die("zrec_head returned %d", ret);
	}
	ext = zrec_ext(h->type, h->nchunks);
	if (avail < zrec_head_len(ext) || h->type != p[4] || !!(p[5] & ZREC_F_EXT) != ext ||
	    p[5] & ~ZREC_F_EXT)
		fz_die("zrec_head: type %u flags %#x avail %zu", h->type, p[5], avail);
	if (h->type < ZREC_PUT || h->type > ZREC_PAD || h->klen > ZREC_KEY_MAX)
		fz_die("zrec_head: took type %u klen %u", h->type, h->klen);
	if (h->len != zrec_len(ext, h->klen, h->dlen) || h->len % ZREC_ALIGN ||
	    h->key != p + zrec_head_len(ext) || h->data != h->key + h->klen)
		fz_die("zrec_head: len %llu, key at %td, for klen %u dlen %u",
		       (unsigned long long)h->len, h->key - p, h->klen, h->dlen);
	switch (h->type) {
	case ZREC_PUT:
		if (!h->klen || !h->nchunks || h->chunk >= h->nchunks || h->voff > h->vlen ||
		    h->dlen > h->vlen - h->voff || (!ext && (h->vlen != h->dlen || h->voff)))
			fz_die("zrec_head: put: klen %u chunk %u of %u, %u bytes at %llu of %llu",
			       h->klen, h->chunk, h->nchunks, h->dlen, (unsigned long long)h->voff,
			       (unsigned long long)h->vlen);
		break;
	case ZREC_DEL:
		if (!h->klen || h->dlen || h->nchunks)
			fz_die("zrec_head: del: klen %u dlen %u", h->klen, h->dlen);
		break;
	case ZREC_PAD:
		if (h->klen)
			fz_die("zrec_head: padding with a key");
		break;
	}
	return 0;
}

static bool same_record(const struct zrec *a, const struct zrec *b)
{
	return a->type == b->type && a->klen == b->klen && a->dlen == b->dlen && a->seq == b->seq &&
	       a->vlen == b->vlen && a->voff == b->voff && a->chunk == b->chunk &&
	       a->nchunks == b->nchunks && a->len == b->len && a->key == b->key &&
	       a->data == b->data;
}

/* Seals a record again from what was parsed: the bytes the CRC covers come out the same. */
static void reseal(const uint8_t *p, const struct zrec *r, uint64_t tag)
{
	bool ext = zrec_ext(r->type, r->nchunks);
	size_t end = zrec_head_len(ext) + r->klen + r->dlen;
	uint8_t *b = malloc(r->len);
	struct zrec again = *r, back;

	if (!b)
		fz_die("out of memory");
	memset(b, 0xa5, r->len);
	memcpy(zrec_data(b, ext, r->klen), r->data, r->dlen);
	if (zrec_seal(b, &again, tag) != r->len)
		fz_die("zrec_seal: a record of %llu bytes sealed to another length",
		       (unsigned long long)r->len);
	if (memcmp(b, p, end))
		fz_die("zrec_seal: type %u klen %u dlen %u: sealed again, not the same bytes",
		       r->type, r->klen, r->dlen);
	for (size_t i = end; i < r->len; i++) {
		if (b[i])
			fz_die("zrec_seal: padding byte %zu not zero", i);
	}
	if (zrec_parse(b, r->len, tag, &back) || back.type != r->type || back.len != r->len ||
	    back.seq != r->seq || back.vlen != r->vlen || back.voff != r->voff ||
	    back.chunk != r->chunk || back.nchunks != r->nchunks)
		fz_die("zrec_parse: a record sealed again does not parse the same");
	free(b);
}

static void one_record(const uint8_t *p, size_t avail, uint64_t tag, const struct zrec *h, int hret)
{
	struct zrec r;
	int ret = zrec_parse(p, avail, tag, &r);
	size_t end;

	/* Parse checks the header first: its refusals are parse's. */
	if (hret) {
		if (ret != hret)
			fz_die("zrec_parse returned %d where zrec_head returned %d", ret, hret);
		return;
	}
	end = zrec_head_len(zrec_ext(h->type, h->nchunks)) + h->klen + h->dlen;
	switch (ret) {
	case 0:
		break;
	case -ENODATA:
		/* The record's padding to 8 bytes counts: a record is read whole. */
		if (h->len <= avail)
			fz_die("zrec_parse: -ENODATA for %llu bytes with %zu readable",
			       (unsigned long long)h->len, avail);
		return;
	case -EBADMSG:
		return;
	default:
		fz_die("zrec_parse returned %d", ret);
	}
	if (end > avail || h->len > avail)
		fz_die("zrec_parse took a record of %llu bytes with %zu readable",
		       (unsigned long long)h->len, avail);
	if (!same_record(&r, h))
		fz_die("zrec_parse and zrec_head disagree");
	if (r.klen)
		sink += r.key[r.klen - 1];
	if (r.dlen)
		sink += r.data[0] + r.data[r.dlen - 1];
	reseal(p, &r, tag);
	if (r.type == ZREC_SUMMARY && r.vlen <= r.dlen)
		walk_entries(r.data, r.vlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t in_tag = size >= 8 ? get_le64(data) : 0;
	struct zsuper sb;
	int ret;

	for (size_t off = 0; off < size; off += ZREC_ALIGN) {
		const uint8_t *p = data + off;
		struct zrec h;
		int hret = head(p, size - off, &h);

		one_record(p, size - off, fz_tag(), &h, hret);
		if (hret)
			continue; /* the same refusal whatever the tag */
		one_record(p, size - off, in_tag, &h, hret);
		one_record(p, size - off, ZSUPER_TAG, &h, hret);
	}
	for (uint32_t blk = ZDEV_BLOCK_MIN; blk <= ZDEV_BLOCK_MAX; blk *= 8) {
		for (size_t off = 0; off + blk <= size; off += blk) {
			sink += zsum_footer_get(data + off, blk, fz_tag());
			sink += zsum_footer_get(data + off, blk, in_tag);
		}
	}
	walk_entries(data, size);
	if (size > 8)
		walk_entries(data + 8, size - 8);
	ret = zsuper_decode(data, size, &sb);
	if (ret == 0)
		sink += zsuper_tag(&sb) + sb.nr_zones + sb.zone_size;
	else if (ret != -EBADMSG && ret != -EPROTONOSUPPORT && ret != -EPROTO)
		fz_die("zsuper_decode returned %d", ret);
	return 0;
}
