#include "record.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "util.h"

/* Seeded with the tag: records of another store, or an earlier format, fail it. */
static uint32_t record_crc(const uint8_t *p, size_t end, uint64_t tag)
{
	uint8_t t[8];

	put_le64(t, tag);
	return crc32c(crc32c(0, t, sizeof(t)), p + 4, end - 4);
}

size_t zrec_seal(void *buf, const struct zrec *r, uint64_t tag)
{
	bool ext = zrec_ext(r->type, r->nchunks);
	size_t head = zrec_head_len(ext), end = head + r->klen + r->dlen;
	size_t len = zrec_align(end);
	uint8_t *p = buf;

	p[4] = r->type;
	p[5] = ext ? ZREC_F_EXT : 0;
	put_le16(p + 6, r->klen);
	put_le32(p + 8, r->dlen);
	put_le64(p + 12, r->seq);
	if (ext) {
		put_le64(p + 20, r->vlen);
		put_le64(p + 28, r->voff);
		put_le32(p + 36, r->chunk);
		put_le32(p + 40, r->nchunks);
	}
	if (r->klen && r->key != p + head)
		memmove(p + head, r->key, r->klen);
	memset(p + end, 0, len - end);
	put_le32(p, record_crc(p, end, tag));
	return len;
}

static bool sane(const struct zrec *r)
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
		return true;
	case ZREC_PAD:
		return r->klen == 0;
	default:
		return false;
	}
}

int zrec_head(const void *buf, size_t avail, struct zrec *r)
{
	const uint8_t *p = buf;
	bool ext;

	if (avail < ZREC_HDR)
		return avail > 4 && !p[4] ? -ENOENT : -ENODATA;
	if (!p[4])
		return -ENOENT;
	if (p[5] & ~ZREC_F_EXT)
		return -EBADMSG;
	ext = p[5] & ZREC_F_EXT;
	*r = (struct zrec){
		.type = p[4],
		.klen = get_le16(p + 6),
		.dlen = get_le32(p + 8),
		.seq = get_le64(p + 12),
		.nchunks = 1,
	};
	if (ext) {
		if (avail < ZREC_HDR + ZREC_EXT)
			return -ENODATA;
		r->vlen = get_le64(p + 20);
		r->voff = get_le64(p + 28);
		r->chunk = get_le32(p + 36);
		r->nchunks = get_le32(p + 40);
	} else if (r->type == ZREC_PUT) {
		r->vlen = r->dlen;
	}
	if (r->type == ZREC_DEL)
		r->nchunks = 0;
	/* The extension is there exactly when the record needs it. */
	if (ext != zrec_ext(r->type, r->nchunks) || r->klen > ZREC_KEY_MAX || !sane(r))
		return -EBADMSG;
	r->len = zrec_len(ext, r->klen, r->dlen);
	r->key = p + zrec_head_len(ext);
	r->data = r->key + r->klen;
	return 0;
}

int zrec_parse(const void *buf, size_t avail, uint64_t tag, struct zrec *r)
{
	const uint8_t *p = buf;
	int ret = zrec_head(buf, avail, r);
	size_t end;

	if (ret)
		return ret;
	if (r->len > avail)
		return -ENODATA;
	end = zrec_head_len(zrec_ext(r->type, r->nchunks)) + r->klen + r->dlen;
	return get_le32(p) == record_crc(p, end, tag) ? 0 : -EBADMSG;
}
