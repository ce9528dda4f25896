/*
 * On-media record format. Every record starts on a block boundary with a
 * 64-byte little-endian header, then the key, then the data, zero-padded to
 * the next block:
 *
 *   0 magic "ZAPR"  4 hcrc  8 dcrc  12 type  13 flags  14 klen
 *  16 seq  24 vlen  32 voff  40 dlen  44 chunk  48 nchunks  52 reserved  56 tag
 *
 * hcrc is CRC32C over bytes 8..63 and the key, so it covers dcrc, the CRC32C
 * of the data: one chain over header, key and value. tag comes from the
 * device's uuid, so records left from an earlier format are not taken as ours.
 * A value larger than one record is split into chunks that each name the put
 * (key, seq, vlen, chunk, nchunks); a put counts only when all are found.
 */
#ifndef ZAPD_RECORD_H
#define ZAPD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define ZREC_BLOCK 4096u
#define ZREC_HDR   64u
#define ZREC_MAGIC 0x5250415au /* "ZAPR" */

enum zrec_type {
	ZREC_PUT = 1,
	ZREC_DEL = 2,
	ZREC_SUPER = 3,
	ZREC_SUMMARY = 4,
	ZREC_SEQ = 5, /* a checkpoint of the sequence counter, so it never goes back */
	ZREC_PAD = 6, /* zeros before a zone's summary, so that it ends at the zone's end */
};

struct zrec {
	uint8_t type;
	uint8_t flags;
	uint16_t klen;
	uint32_t dlen;
	uint32_t chunk;
	uint32_t nchunks;
	uint64_t seq;
	uint64_t vlen;
	uint64_t voff;
	uint32_t dcrc; /* filled by zrec_parse */
	uint64_t len;  /* whole record, block aligned; filled by zrec_parse */
	const uint8_t *key;
	const uint8_t *data;
};

/* Bytes a record with this key and data occupies on the media. */
static inline size_t zrec_len(size_t klen, size_t dlen)
{
	return (ZREC_HDR + klen + dlen + ZREC_BLOCK - 1) / ZREC_BLOCK * ZREC_BLOCK;
}

/* Where the data of a record with a klen-byte key goes in its buffer. */
static inline void *zrec_data(void *buf, size_t klen)
{
	return (char *)buf + ZREC_HDR + klen;
}

/* Most data bytes one record of at most rec_max bytes can hold. */
static inline size_t zrec_data_max(size_t rec_max, size_t klen)
{
	return rec_max - ZREC_HDR - klen;
}

/*
 * Completes the record in buf: header and key from r, data already in place
 * at zrec_data(buf, r->klen); pads to the block with zeros. Returns its length.
 */
size_t zrec_seal(void *buf, const struct zrec *r, uint64_t tag);

/*
 * Parses the header at buf, of which avail bytes are readable. 0 and r filled
 * (r->key points into buf; r->data too, readable only if avail covers it), or
 * -EBADMSG: not one of our records (no magic, other tag, header CRC wrong,
 * impossible lengths).
 */
int zrec_parse(const void *buf, size_t avail, uint64_t tag, struct zrec *r);

/* 0 if the data (r->dlen bytes at r->data) matches its CRC, else -EBADMSG. */
int zrec_verify_data(const struct zrec *r);

#endif
