#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* type 1, pad 1, klen 2, off 4 (blocks), len 4 (blocks), chunk 4, nchunks 4, seq 8, vlen 8 */
#define ENTRY_HDR 36u

size_t zsum_entry_size(size_t klen)
{
	return ENTRY_HDR + klen;
}

int zsum_add(struct zsum *s, const struct zrec *r, uint64_t off)
{
	size_t need = zsum_entry_size(r->klen);
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
	e[0] = r->type;
	e[1] = 0;
	put_le16(e + 2, r->klen);
	put_le32(e + 4, off / ZREC_BLOCK);
	put_le32(e + 8, r->len / ZREC_BLOCK);
	put_le32(e + 12, r->chunk);
	put_le32(e + 16, r->nchunks);
	put_le64(e + 20, r->seq);
	put_le64(e + 28, r->vlen);
	memcpy(e + ENTRY_HDR, r->key, r->klen);
	s->len += need;
	s->n++;
	return 0;
}

void zsum_done(struct zsum *s)
{
	free(s->buf);
	*s = (struct zsum){ 0 };
}

int zsum_next(const uint8_t *buf, size_t len, size_t *pos, struct zrec *r, uint64_t *off)
{
	const uint8_t *e;

	/* An empty summary has no buffer at all. */
	if (*pos == len)
		return 1;
	e = buf + *pos;
	if (len - *pos < ENTRY_HDR || len - *pos < ENTRY_HDR + get_le16(e + 2))
		return -EBADMSG;
	*r = (struct zrec){
		.type = e[0],
		.klen = get_le16(e + 2),
		.len = (uint64_t)get_le32(e + 8) * ZREC_BLOCK,
		.chunk = get_le32(e + 12),
		.nchunks = get_le32(e + 16),
		.seq = get_le64(e + 20),
		.vlen = get_le64(e + 28),
		.key = e + ENTRY_HDR,
	};
	*off = (uint64_t)get_le32(e + 4) * ZREC_BLOCK;
	if ((r->type != ZREC_PUT && r->type != ZREC_DEL) || !r->klen || !r->len)
		return -EBADMSG;
	*pos += ENTRY_HDR + r->klen;
	return 0;
}

size_t zsum_part_len(const struct zsum *s, size_t pos, size_t rec_max)
{
	size_t room = rec_max - ZREC_HDR - ZSUM_FOOTER, n = 0;

	/* Whole entries only, so that each part can be read alone. */
	while (pos + n < s->len) {
		size_t e = zsum_entry_size(get_le16(s->buf + pos + n + 2));

		if (n + e > room)
			break;
		n += e;
	}
	return n;
}

void zsum_footer_put(void *rec, size_t len, uint64_t tag)
{
	uint8_t *f = (uint8_t *)rec + len - ZSUM_FOOTER;

	put_le32(f, ZSUM_FOOTER_MAGIC);
	put_le32(f + 4, len / ZREC_BLOCK);
	put_le64(f + 8, tag);
}

uint64_t zsum_footer_get(const void *blk, uint64_t tag)
{
	const uint8_t *f = (const uint8_t *)blk + ZREC_BLOCK - ZSUM_FOOTER;

	if (get_le32(f) != ZSUM_FOOTER_MAGIC || get_le64(f + 8) != tag)
		return 0;
	return (uint64_t)get_le32(f + 4) * ZREC_BLOCK;
}
