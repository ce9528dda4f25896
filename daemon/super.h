/*
 * The superblock: a record at the start of the first zone with a write
 * pointer naming the format version, the store's uuid (records carry a tag
 * derived from it), the geometry the store was formatted with and the
 * format's own limits, which are never derived again from the device: a
 * kernel or backend that allows less must not make old records unreadable.
 * Since version 2 there are ZSUPER_COPIES copies ZSUPER_GAP bytes apart, so
 * that one bad block does not lose the uuid every record's tag depends on.
 * Version 3 packs records to 8 bytes (record.h); versions 1 and 2 gave each
 * record its own blocks, and are refused. Version 4 gives the store the
 * block the device had at format (zsuper.block: 512 bytes on a namespace of
 * 512-byte LBAs); version 3 stores, read as they are, have blocks of 4096.
 */
#ifndef ZAPD_SUPER_H
#define ZAPD_SUPER_H

#include <stddef.h>
#include <stdint.h>

#include "dev.h"

#define ZSUPER_VERSION	4u
#define ZSUPER_V3_BLOCK 4096u /* every version 3 store's block, whatever zsuper.block says */
#define ZSUPER_COPIES	3u
#define ZSUPER_GAP	(64u * 1024)
#define ZSUPER_COPY_LEN ZDEV_BLOCK_MAX /* a copy's bytes: whole blocks of any store */
/* No format allows a record longer than recovery's scan window. */
#define ZSUPER_REC_LIMIT (4u << 20)
#define ZSUPER_TAG	 0x5245505553504151ull /* "QAPSUPER": superblocks are not per-uuid */

struct zsuper {
	uint8_t uuid[16];
	uint32_t version;
	uint32_t nr_zones;
	uint64_t zone_size;
	uint32_t block;	  /* the device's block at format; the store's since version 4 */
	uint32_t rec_max; /* the largest record the store may hold */
	uint64_t ctime;	  /* seconds since the epoch */
};

/* A new superblock for this device, with a random uuid, for records up to rec_max bytes. */
void zsuper_new(struct zsuper *sb, const struct zdev_info *info, uint32_t rec_max);

/* Writes the superblock record into buf (ZDEV_BLOCK_MIN bytes); returns its length. */
size_t zsuper_encode(const struct zsuper *sb, void *buf);

/*
 * 0, -EBADMSG (no superblock here), -EPROTONOSUPPORT (a newer format) or
 * -EPROTO (an older one); sb->version says which.
 */
int zsuper_decode(const void *buf, size_t len, struct zsuper *sb);

/*
 * 0 if sb was formatted for this device's geometry, its block is whole
 * logical blocks of the device, and --block (if given) names it; else
 * -EINVAL with a reason.
 */
int zsuper_check(const struct zsuper *sb, const struct zdev_info *info, struct zerr *err);

/* The store's block: every append is whole blocks of it. */
uint32_t zsuper_block(const struct zsuper *sb);

/* The tag every record of this store carries. */
uint64_t zsuper_tag(const struct zsuper *sb);

#endif
