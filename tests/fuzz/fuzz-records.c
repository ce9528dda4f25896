/*
 * fuzz-records: the decoders of on-media structures, on bytes read from an
 * untrusted device. At every 4 KiB offset of the input: a record header
 * (with the store's fixed tag, and with the tag taken from the input's first
 * 8 bytes, so that inputs can pass the tag check) and its data CRC, a zone
 * summary footer, and the entry list of a summary record; the whole input as
 * a summary entry list and as a superblock.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-util.h"
#include "record.h"
#include "summary.h"
#include "super.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

/* A summary's entries, as recovery walks them: each must lie inside its buffer. */
static void walk_entries(const uint8_t *buf, size_t len)
{
	size_t pos = 0;
	struct zrec r;
	uint64_t off;
	int ret;

	for (unsigned n = 0; (ret = zsum_next(buf, len, &pos, &r, &off)) == 0; n++) {
		if (pos > len || r.key < buf || r.key + r.klen > buf + len)
			fz_die("zsum_next: entry %u outside the list (pos %zu of %zu)", n, pos,
			       len);
		sink += r.seq + r.vlen + r.len + off + r.key[r.klen - 1];
	}
	if (ret != 1 && ret != -EBADMSG)
		fz_die("zsum_next returned %d", ret);
}

static void one_record(const uint8_t *p, size_t avail, uint64_t tag)
{
	struct zrec r;
	int ret = zrec_parse(p, avail, tag, &r);

	if (ret == -EBADMSG)
		return;
	if (ret)
		fz_die("zrec_parse returned %d", ret);
	/* What the parser promises: the header and key were readable, the length is whole blocks.
	 */
	if (ZREC_HDR + (size_t)r.klen > avail || r.key != p + ZREC_HDR ||
	    r.len < ZREC_HDR + (uint64_t)r.klen || r.len % ZREC_BLOCK)
		fz_die("zrec_parse accepted a record it cannot hold: klen %u len %llu avail %zu",
		       r.klen, (unsigned long long)r.len, avail);
	if (r.klen)
		sink += r.key[r.klen - 1];
	/* The data is readable only when the buffer covers it: callers check, as recovery does. */
	if (ZREC_HDR + (uint64_t)r.klen + r.dlen > avail)
		return;
	if (zrec_verify_data(&r))
		return;
	if (r.type == ZREC_SUMMARY && r.vlen <= r.dlen)
		walk_entries(r.data, r.vlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t in_tag = size >= 8 ? get_le64(data) : 0;
	struct zsuper sb;

	for (size_t off = 0; off < size; off += ZREC_BLOCK) {
		one_record(data + off, size - off, fz_tag());
		one_record(data + off, size - off, in_tag);
		one_record(data + off, size - off, ZSUPER_TAG);
		if (size - off >= ZREC_BLOCK) {
			sink += zsum_footer_get(data + off, fz_tag());
			sink += zsum_footer_get(data + off, in_tag);
		}
	}
	walk_entries(data, size);
	if (size > 8)
		walk_entries(data + 8, size - 8);
	if (zsuper_decode(data, size, &sb) == 0)
		sink += zsuper_tag(&sb) + sb.nr_zones + sb.zone_size;
	return 0;
}
