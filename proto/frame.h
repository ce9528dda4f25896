/* Framing of messages on the zappend socket, shared by daemon and client. */
#ifndef ZAPPEND_FRAME_H
#define ZAPPEND_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define ZAP_FRAME_PREFIX 8u
/* A protobuf header never needs more: keys are at most 1 KiB, and a LIST
 * page or a ZONES answer is bounded by the daemon. */
#define ZAP_FRAME_MAX_HEADER (1u << 20)
#define ZAP_KEY_MAX	     1024u

struct zap_frame {
	uint32_t hlen; /* bytes of encoded Request or Response */
	uint32_t plen; /* bytes of raw payload that follow */
};

void zap_frame_encode(uint8_t out[ZAP_FRAME_PREFIX], uint32_t hlen, uint32_t plen);

/* 0, or -EPROTO when the prefix cannot start a frame: the stream is broken. */
int zap_frame_decode(const uint8_t in[ZAP_FRAME_PREFIX], struct zap_frame *f);

#endif
