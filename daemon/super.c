#include "super.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "record.h"

#define SUPER_DLEN 48u

void zsuper_new(struct zsuper *sb, const struct zdev_info *info, uint32_t rec_max)
{
	memset(sb, 0, sizeof(*sb));
	if (getrandom(sb->uuid, sizeof(sb->uuid), 0) != sizeof(sb->uuid)) {
		uint64_t t = (uint64_t)time(NULL) ^ (uintptr_t)sb;

		memcpy(sb->uuid, &t, sizeof(t));
	}
	sb->uuid[6] = (sb->uuid[6] & 0x0f) | 0x40; /* RFC 4122 version 4 */
	sb->uuid[8] = (sb->uuid[8] & 0x3f) | 0x80;
	sb->version = ZSUPER_VERSION;
	sb->nr_zones = info->nr_zones;
	sb->zone_size = info->zone_size;
	sb->block = info->block;
	sb->rec_max = rec_max;
	sb->ctime = time(NULL);
}

size_t zsuper_encode(const struct zsuper *sb, void *buf)
{
	struct zrec r = { .type = ZREC_SUPER, .dlen = SUPER_DLEN };
	uint8_t *d = zrec_data(buf, false, 0);

	memset(buf, 0, ZDEV_BLOCK_MIN);
	memcpy(d, sb->uuid, 16);
	put_le32(d + 16, sb->version);
	put_le32(d + 20, sb->nr_zones);
	put_le64(d + 24, sb->zone_size);
	put_le32(d + 32, sb->block);
	put_le32(d + 36, sb->rec_max);
	put_le64(d + 40, sb->ctime);
	return zrec_seal(buf, &r, ZSUPER_TAG);
}

/*
 * Formats 1 and 2 began every record with a 64-byte header: "ZAPR", ..., type
 * at 12, the tag at 56; a superblock's version at 80. Enough to name them.
 */
static bool legacy(const uint8_t *p, size_t len, struct zsuper *sb)
{
	if (len < 128 || get_le32(p) != 0x5250415au || p[12] != ZREC_SUPER ||
	    get_le64(p + 56) != ZSUPER_TAG)
		return false;
	sb->version = get_le32(p + 80);
	return sb->version < 3;
}

int zsuper_decode(const void *buf, size_t len, struct zsuper *sb)
{
	struct zrec r;

	if (legacy(buf, len, sb))
		return -EPROTO;
	if (zrec_parse(buf, len, ZSUPER_TAG, &r) || r.type != ZREC_SUPER || r.dlen < SUPER_DLEN)
		return -EBADMSG;
	memcpy(sb->uuid, r.data, 16);
	sb->version = get_le32(r.data + 16);
	sb->nr_zones = get_le32(r.data + 20);
	sb->zone_size = get_le64(r.data + 24);
	sb->block = get_le32(r.data + 32);
	sb->rec_max = get_le32(r.data + 36);
	sb->ctime = get_le64(r.data + 40);
	if (sb->version > ZSUPER_VERSION)
		return -EPROTONOSUPPORT;
	if (sb->version < 3)
		return -EPROTO;
	if ((sb->version > 3 && !zdev_block_ok(sb->block)) || sb->rec_max < zsuper_block(sb) ||
	    sb->rec_max % zsuper_block(sb) || sb->rec_max > ZSUPER_REC_LIMIT)
		return -EBADMSG;
	return 0;
}

uint32_t zsuper_block(const struct zsuper *sb)
{
	return sb->version > 3 ? sb->block : ZSUPER_V3_BLOCK;
}

int zsuper_check(const struct zsuper *sb, const struct zdev_info *info, struct zerr *err)
{
	uint32_t block = zsuper_block(sb);

	if (sb->zone_size != info->zone_size || sb->nr_zones != info->nr_zones ||
	    block % info->lblock)
		return zerr_set(err, -EINVAL,
				"formatted for %u zones of %llu bytes, %u-byte blocks; the device "
				"has %u zones of %llu bytes, %u-byte logical blocks",
				sb->nr_zones, (unsigned long long)sb->zone_size, block,
				info->nr_zones, (unsigned long long)info->zone_size, info->lblock);
	if (info->block_asked && info->block != block)
		return zerr_set(err, -EINVAL,
				"formatted with %u-byte blocks, not the %u asked for (--format "
				"formats it again, and loses its data)",
				block, info->block);
	return 0;
}

uint64_t zsuper_tag(const struct zsuper *sb)
{
	return get_le64(sb->uuid) ^ get_le64(sb->uuid + 8);
}
