#include "record.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "util.h"

static uint32_t header_crc(const uint8_t *buf, size_t klen)
{
	return crc32c(0, buf + 8, ZREC_HDR - 8 + klen);
}

size_t zrec_seal(void *buf, const struct zrec *r, uint64_t tag)
{
	uint8_t *p = buf;
	size_t used = ZREC_HDR + r->klen + r->dlen;
	size_t len = zrec_len(r->klen, r->dlen);

	put_le32(p, ZREC_MAGIC);
	put_le32(p + 8, crc32c(0, p + ZREC_HDR + r->klen, r->dlen));
	p[12] = r->type;
	p[13] = r->flags;
	put_le16(p + 14, r->klen);
	put_le64(p + 16, r->seq);
	put_le64(p + 24, r->vlen);
	put_le64(p + 32, r->voff);
	put_le32(p + 40, r->dlen);
	put_le32(p + 44, r->chunk);
	put_le32(p + 48, r->nchunks);
	put_le32(p + 52, 0);
	put_le64(p + 56, tag);
	if (r->klen && r->key != p + ZREC_HDR)
		memmove(p + ZREC_HDR, r->key, r->klen);
	memset(p + used, 0, len - used);
	put_le32(p + 4, header_crc(p, r->klen));
	return len;
}

static int sane(const struct zrec *r)
{
	switch (r->type) {
	case ZREC_PUT:
		return r->klen > 0 && r->nchunks > 0 && r->chunk < r->nchunks &&
		       r->voff <= r->vlen && r->dlen <= r->vlen - r->voff;
	case ZREC_DEL:
		return r->klen > 0 && r->dlen == 0;
	case ZREC_SUPER:
	case ZREC_SUMMARY:
	case ZREC_SEQ:
		return 1;
	case ZREC_PAD:
		return r->klen == 0;
	default:
		return 0;
	}
}

int zrec_parse(const void *buf, size_t avail, uint64_t tag, struct zrec *r)
{
	const uint8_t *p = buf;

	if (avail < ZREC_HDR || get_le32(p) != ZREC_MAGIC || get_le64(p + 56) != tag)
		return -EBADMSG;
	r->klen = get_le16(p + 14);
	if (r->klen > ZREC_BLOCK - ZREC_HDR || avail < ZREC_HDR + r->klen ||
	    get_le32(p + 4) != header_crc(p, r->klen))
		return -EBADMSG;
	r->dcrc = get_le32(p + 8);
	r->type = p[12];
	r->flags = p[13];
	r->seq = get_le64(p + 16);
	r->vlen = get_le64(p + 24);
	r->voff = get_le64(p + 32);
	r->dlen = get_le32(p + 40);
	r->chunk = get_le32(p + 44);
	r->nchunks = get_le32(p + 48);
	r->key = p + ZREC_HDR;
	r->data = p + ZREC_HDR + r->klen;
	r->len = zrec_len(r->klen, r->dlen);
	if (!sane(r))
		return -EBADMSG;
	return 0;
}

int zrec_verify_data(const struct zrec *r)
{
	return crc32c(0, r->data, r->dlen) == r->dcrc ? 0 : -EBADMSG;
}
