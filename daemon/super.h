/*
 * The superblock: a record at the start of zone 0 naming the format version,
 * the store's uuid (records carry a tag derived from it) and the geometry the
 * store was formatted with.
 */
#ifndef ZAPD_SUPER_H
#define ZAPD_SUPER_H

#include <stddef.h>
#include <stdint.h>

#include "dev.h"

#define ZSUPER_VERSION 1u
#define ZSUPER_TAG     0x5245505553504151ull /* "QAPSUPER": superblocks are not per-uuid */

struct zsuper {
	uint8_t uuid[16];
	uint32_t version;
	uint32_t nr_zones;
	uint64_t zone_size;
	uint32_t block;
	uint64_t ctime; /* seconds since the epoch */
};

/* A new superblock for this device, with a random uuid. */
void zsuper_new(struct zsuper *sb, const struct zdev_info *info);

/* Writes the superblock record into buf (ZREC_BLOCK bytes); returns its length. */
size_t zsuper_encode(const struct zsuper *sb, void *buf);

/* 0, -EBADMSG (no superblock here) or -EPROTONOSUPPORT (a newer format). */
int zsuper_decode(const void *buf, size_t len, struct zsuper *sb);

/* 0 if sb was formatted for this device's geometry, else -EINVAL with a reason. */
int zsuper_check(const struct zsuper *sb, const struct zdev_info *info, struct zerr *err);

/* The tag every record of this store carries. */
uint64_t zsuper_tag(const struct zsuper *sb);

#endif
