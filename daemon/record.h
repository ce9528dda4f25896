/*
 * On-media record format (format version 3). Records sit back to back, each
 * starting on an 8-byte boundary, so that many small records share a block;
 * an append is zero-padded to the device's block. A record is a 20-byte
 * little-endian header, for a value in several records (and a summary part)
 * a 24-byte extension, then the key, then the data, zero-padded to 8 bytes:
 *
 *   0 crc  4 type  5 flags  6 klen  8 dlen  12 seq
 *  20 vlen  28 voff  36 chunk  40 nchunks          (extension)
 *
 * crc is CRC32C, seeded from the store's tag, over everything after it up to
 * the end of the data: a record is whole and the store's, or it is not taken.
 * A byte of type 0 where a record would start is padding: the append it
 * belonged to ends there, and the next starts at the next block.
 * A value larger than one record is split into chunks that each name the put
 * (key, seq, vlen, chunk, nchunks); a put counts only when all are found.
 */
#ifndef ZAPD_RECORD_H
#define ZAPD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZREC_ALIGN   8u /* records start on this */
#define ZREC_HDR     20u
#define ZREC_EXT     24u
#define ZREC_KEY_MAX 1024u

#define ZREC_F_EXT 0x1u /* the extension follows the header */

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
	uint16_t klen;
	uint32_t dlen;
	uint32_t chunk;
	uint32_t nchunks;
	uint64_t seq;
	uint64_t vlen;
	uint64_t voff;
	uint64_t len; /* whole record, 8-byte aligned; filled by zrec_parse */
	const uint8_t *key;
	const uint8_t *data;
};

static inline uint64_t zrec_align(uint64_t n)
{
	return (n + ZREC_ALIGN - 1) & ~(uint64_t)(ZREC_ALIGN - 1);
}

/* n rounded up to whole blocks: an append's length (block: a power of two). */
static inline uint64_t zrec_block_up(uint64_t n, uint32_t block)
{
	return (n + block - 1) & ~(uint64_t)(block - 1);
}

/* Whether a record of this type and chunk count carries the extension. */
static inline bool zrec_ext(uint8_t type, uint32_t nchunks)
{
	return type == ZREC_SUMMARY || (type == ZREC_PUT && nchunks > 1);
}

/* Header bytes before the key. */
static inline size_t zrec_head_len(bool ext)
{
	return ZREC_HDR + (ext ? ZREC_EXT : 0);
}

/* Bytes a record occupies on the media, padding to the next record included. */
static inline size_t zrec_len(bool ext, size_t klen, size_t dlen)
{
	return zrec_align(zrec_head_len(ext) + klen + dlen);
}

/* Where the data of a record goes in its buffer. */
static inline void *zrec_data(void *buf, bool ext, size_t klen)
{
	return (char *)buf + zrec_head_len(ext) + klen;
}

/* Most data bytes one record of at most rec_max bytes can hold. */
static inline size_t zrec_data_max(size_t rec_max, bool ext, size_t klen)
{
	return rec_max - zrec_head_len(ext) - klen;
}

/*
 * Completes the record in buf: header and key from r, data already in place
 * at zrec_data(); zero-pads to 8 bytes. Returns its length.
 */
size_t zrec_seal(void *buf, const struct zrec *r, uint64_t tag);

/*
 * Reads the header at buf, of which avail bytes are readable, without
 * checking the CRC: 0 and r's fields and length; -ENOENT: padding; -EBADMSG:
 * no record of ours can start here (impossible type or lengths); -ENODATA:
 * avail does not hold the header.
 */
int zrec_head(const void *buf, size_t avail, struct zrec *r);

/*
 * The record at buf: 0 when it is whole and the store's (r filled, r->key and
 * r->data pointing into buf); zrec_head's errors; -ENODATA when avail does not
 * hold all of it; -EBADMSG when its CRC fails (torn, rotted or not ours).
 */
int zrec_parse(const void *buf, size_t avail, uint64_t tag, struct zrec *r);

#endif
