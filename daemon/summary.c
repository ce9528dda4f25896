#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/*
 * An entry: a byte of type (| ENTRY_MULTI for a value in several records),
 * then varints: key length; offset / 8 and seq, each as the zigzag of its
 * difference from the entry before's end and seq (records of one append lie
 * back to back, and nearly in seq order); length / 8; for a value in several
 * records chunk, nchunks and vlen too; then the key. A 100-byte value with a
 * 16-byte key takes 21 or 22 bytes.
 */
#define ENTRY_MULTI 0x80u
#define VARINT_MAX  10u

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	for (; v >= 0x80; v >>= 7)
		p[n++] = (uint8_t)v | 0x80;
	p[n++] = (uint8_t)v;
	return n;
}

/* Bytes read, or 0 when the varint runs past end or is too long. */
static size_t varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (size_t n = 0; n < VARINT_MAX && p + n < end; n++) {
		/* The tenth byte holds the 64th bit only: more would be a second spelling. */
		if (n == VARINT_MAX - 1 && p[n] > 1)
			return 0;
		*v |= (uint64_t)(p[n] & 0x7f) << (7 * n);
		if (!(p[n] & 0x80))
			return n + 1;
	}
	return 0;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	for (; v >= 0x80; v >>= 7)
		n++;
	return n;
}

static uint64_t zigzag(uint64_t now, uint64_t before)
{
	int64_t d = (int64_t)(now - before);

	return (uint64_t)d << 1 ^ (uint64_t)(d >> 63);
}

static uint64_t unzigzag(uint64_t z, uint64_t before)
{
	return before + ((z >> 1) ^ -(z & 1));
}

size_t zsum_entry_max(size_t klen, bool multi)
{
	/* In 8-byte units, offsets of a zone under 2^40 bytes, lengths up to 2^20; seq under 2^56.
	 */
	size_t n = 1 + varint_len(klen) + varint_len(1ull << 38) + varint_len(1ull << 20) +
		   varint_len(1ull << 57);

	return n + (multi ? 2 * varint_len(UINT32_MAX) + VARINT_MAX : 0) + klen;
}

static size_t entry_size(const struct zsum *s, const struct zrec *r, uint64_t off)
{
	size_t n = 1 + varint_len(r->klen) +
		   varint_len(zigzag(off / ZREC_ALIGN, s->end / ZREC_ALIGN)) +
		   varint_len(r->len / ZREC_ALIGN) + varint_len(zigzag(r->seq, s->seq));

	if (r->nchunks > 1)
		n += varint_len(r->chunk) + varint_len(r->nchunks) + varint_len(r->vlen);
	return n + r->klen;
}

int zsum_add(struct zsum *s, const struct zrec *r, uint64_t off)
{
	size_t need = entry_size(s, r, off);
	uint8_t *e;

	if (s->len + need > s->cap) {
		size_t cap = MAX(s->cap * 2, 64 * KiB);
		uint8_t *nb;

		while (cap < s->len + need)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return -ENOMEM;
		s->buf = nb;
		s->cap = cap;
	}
	e = s->buf + s->len;
	*e++ = r->type | (r->nchunks > 1 ? ENTRY_MULTI : 0);
	e += varint_put(e, r->klen);
	e += varint_put(e, zigzag(off / ZREC_ALIGN, s->end / ZREC_ALIGN));
	e += varint_put(e, r->len / ZREC_ALIGN);
	e += varint_put(e, zigzag(r->seq, s->seq));
	if (r->nchunks > 1) {
		e += varint_put(e, r->chunk);
		e += varint_put(e, r->nchunks);
		e += varint_put(e, r->vlen);
	}
	memcpy(e, r->key, r->klen);
	s->len += need;
	s->n++;
	s->end = off + r->len;
	s->seq = r->seq;
	return (int)need;
}

void zsum_done(struct zsum *s)
{
	free(s->buf);
	*s = (struct zsum){ 0 };
}

/* Reads the varints of an entry in order; false once one is malformed. */
struct reader {
	const uint8_t *p, *end;
	bool ok;
};

static uint64_t next_varint(struct reader *rd)
{
	uint64_t v = 0;
	size_t n = rd->ok ? varint_get(rd->p, rd->end, &v) : 0;

	rd->ok = n > 0;
	rd->p += n;
	return v;
}

int zsum_next(const uint8_t *buf, size_t len, struct zsum_pos *at, struct zrec *r, uint64_t *off)
{
	struct reader rd;
	uint8_t t;
	uint64_t klen, units, chunk = 0, nchunks = 1;

	/* An empty summary has no buffer at all. */
	if (at->pos == len)
		return 1;
	rd = (struct reader){ .p = buf + at->pos, .end = buf + len, .ok = true };
	t = *rd.p++;
	*r = (struct zrec){ .type = t & ~ENTRY_MULTI };
	klen = next_varint(&rd);
	*off = unzigzag(next_varint(&rd), at->end / ZREC_ALIGN) * ZREC_ALIGN;
	units = next_varint(&rd);
	r->seq = unzigzag(next_varint(&rd), at->seq);
	if (t & ENTRY_MULTI) {
		chunk = next_varint(&rd);
		nchunks = next_varint(&rd);
		r->vlen = next_varint(&rd);
	}
	if (!rd.ok || klen > ZREC_KEY_MAX || (uint64_t)(rd.end - rd.p) < klen ||
	    units > UINT32_MAX / ZREC_ALIGN || chunk >= nchunks || nchunks > UINT32_MAX ||
	    ((t & ENTRY_MULTI) && nchunks < 2))
		return -EBADMSG;
	r->klen = klen;
	r->len = units * ZREC_ALIGN;
	r->chunk = chunk;
	r->nchunks = r->type == ZREC_DEL ? 0 : nchunks;
	r->key = rd.p;
	if ((r->type != ZREC_PUT && r->type != ZREC_DEL) || !r->klen || !r->len ||
	    (r->type == ZREC_DEL && (t & ENTRY_MULTI)))
		return -EBADMSG;
	at->pos = rd.p + klen - buf;
	at->end = *off + r->len;
	at->seq = r->seq;
	return 0;
}

/* Bytes of the entry at p, which zsum_add wrote. */
static size_t entry_len(const uint8_t *p, const uint8_t *end)
{
	struct reader rd = { .p = p + 1, .end = end, .ok = true };
	uint64_t klen = next_varint(&rd);

	for (int i = 0; i < ((p[0] & ENTRY_MULTI) ? 6 : 3); i++)
		next_varint(&rd);
	return rd.p + klen - p;
}

size_t zsum_part_len(const struct zsum *s, size_t pos, size_t rec_max)
{
	size_t room = rec_max - zrec_head_len(true) - ZSUM_FOOTER, n = 0;

	/* Whole entries only, so that each part can be read alone. */
	while (pos + n < s->len) {
		size_t e = entry_len(s->buf + pos + n, s->buf + s->len);

		if (n + e > room)
			break;
		n += e;
	}
	return n;
}

void zsum_footer_put(void *rec, size_t len, uint32_t block, uint64_t tag)
{
	uint8_t *f = (uint8_t *)rec + len - ZSUM_FOOTER;

	put_le32(f, ZSUM_FOOTER_MAGIC);
	put_le32(f + 4, len / block);
	put_le64(f + 8, tag);
}

uint64_t zsum_footer_get(const void *blk, uint32_t block, uint64_t tag)
{
	const uint8_t *f = (const uint8_t *)blk + block - ZSUM_FOOTER;

	if (get_le32(f) != ZSUM_FOOTER_MAGIC || get_le64(f + 8) != tag)
		return 0;
	return (uint64_t)get_le32(f + 4) * block;
}
