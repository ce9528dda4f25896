/*
 * Zone summaries: when a zone fills, the store appends a list of every record
 * in it before finishing it, so a restart reads that list instead of the
 * zone. The list is one or more SUMMARY records; each names the one written
 * before it (voff: its offset in the zone, or ZSUM_NONE), and the last one
 * ends with a footer in its final block, so that it is found by looking for
 * the zone's last written block. A summary that is missing or fails its CRC
 * only costs a scan of that zone.
 */
#ifndef ZAPD_SUMMARY_H
#define ZAPD_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define ZSUM_NONE	  UINT64_MAX
#define ZSUM_FOOTER	  16u
#define ZSUM_FOOTER_MAGIC 0x4d55535au /* "ZSUM" */

/* The entries of one zone, as they are appended. */
struct zsum {
	uint8_t *buf;
	size_t len, cap;
	uint32_t n;
	uint64_t end, seq; /* the last entry's end and seq, which the next is told from */
};

/*
 * Where reading a zone's entries stands: an entry is told from the one
 * before, so they are read in order, across the parts of a summary (pos
 * starts again at each part's start; end and seq go on).
 */
struct zsum_pos {
	size_t pos;
	uint64_t end, seq;
};

/* Most bytes the entry of a record with a klen-byte key may take. */
size_t zsum_entry_max(size_t klen, bool multi);

/* Adds the record r, lying at off bytes into its zone: the entry's size, or -ENOMEM. */
int zsum_add(struct zsum *s, const struct zrec *r, uint64_t off);
void zsum_done(struct zsum *s);

/*
 * The entry at at of an entry list: r gets type, key, seq, chunk, nchunks
 * and len (and vlen, for a value in several records); *off its offset in
 * the zone, which the caller checks against the zone's size. 0 and at advanced, 1 at the
 * end, -EBADMSG when the list is malformed.
 */
int zsum_next(const uint8_t *buf, size_t len, struct zsum_pos *at, struct zrec *r, uint64_t *off);

/* How many entry bytes from *pos on fit in one record of at most rec_max bytes. */
size_t zsum_part_len(const struct zsum *s, size_t pos, size_t rec_max);

/*
 * Writes the footer into the last bytes of a sealed summary record of len
 * bytes, whole blocks of the store's block; it gives the length in blocks.
 */
void zsum_footer_put(void *rec, size_t len, uint32_t block, uint64_t tag);
/* Length of the summary record whose last block is blk, or 0 if blk has no footer. */
uint64_t zsum_footer_get(const void *blk, uint32_t block, uint64_t tag);

/* Bytes a zone must keep back for the summary besides each record's entry. */
#define ZSUM_BASE_RESERVE (8u * 1024)

#endif
