#include <errno.h>

#include "frame.h"

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void zap_frame_encode(uint8_t out[ZAP_FRAME_PREFIX], uint32_t hlen, uint32_t plen)
{
	put_le32(out, hlen);
	put_le32(out + 4, plen);
}

int zap_frame_decode(const uint8_t in[ZAP_FRAME_PREFIX], struct zap_frame *f)
{
	f->hlen = get_le32(in);
	f->plen = get_le32(in + 4);
	if (f->hlen > ZAP_FRAME_MAX_HEADER)
		return -EPROTO;
	return 0;
}
