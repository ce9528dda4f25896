/*
 * A zone's end: once it takes no more appends, its summary is written and
 * it is finished; and the check of every append's answer, since a device
 * that lies about where data landed is written no more.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void summary_next(struct zone_op *op);
static void pad_next(struct zone_op *op);
static void summary_over(struct zone_op *op);

/* --- zones --- */

/*
 * The device said an append landed where it cannot have: nothing it says
 * can be trusted any more, so nothing more is written to it (reads go on:
 * every record read is verified). Every put from now on fails.
 */
static void device_broken(struct store *s, uint32_t zone, uint64_t addr, uint32_t len)
{
	if (s->dev_broken)
		return;
	s->dev_broken = true;
	store_log(s, LOG_ERR,
		  "the device returned an impossible address for an append (zone %u, address "
		  "%llu, %u bytes): no more writes to it; puts and deletes fail with IO_ERROR",
		  zone, (unsigned long long)addr, len);
}

int store_landed(struct store *s, uint32_t zone, uint64_t addr, uint32_t len)
{
	if (zones_of(&s->zones, addr) == zone && !zones_landed(&s->zones, zone, addr, len))
		return 0;
	device_broken(s, zone, addr, len);
	return -EIO;
}

static void zone_op_end(struct zone_op *op, bool ok)
{
	struct store *s = op->s;

	zones_finished(&s->zones, op->zone, ok);
	s->busy--;
	if (s->waiters.head)
		store_wake(&s->waiters);
	/* An active zone less: appends waiting for the device's limits may go. */
	store_space_freed(s);
	gc_kick(&s->gc);
}

static void finish_done(struct zdev_io *io)
{
	struct zone_op *op = container_of(io, struct zone_op, io);

	zone_op_end(op, io->res >= 0);
}

static void zone_finish(struct zone_op *op)
{
	op->io.done = finish_done;
	zdev_finish(op->s->dev, op->zone, &op->io);
}

/* Not from the pool: a zone's end comes once a zone, not worth a wait for pool memory. */
static void *meta_buf(uint32_t len)
{
	void *buf;

	if (posix_memalign(&buf, ZDEV_BLOCK_MAX, len))
		return NULL;
	memset(buf, 0, len);
	return buf;
}

static bool meta_landed(struct zone_op *op, struct zdev_io *io)
{
	free(op->buf);
	op->buf = NULL;
	return io->res >= 0 && !store_landed(op->s, op->zone, io->addr, io->len);
}

static void part_done(struct zdev_io *io)
{
	struct zone_op *op = container_of(io, struct zone_op, io);
	struct store *s = op->s;

	if (!meta_landed(op, io)) {
		summary_over(op);
		return;
	}
	op->prev = io->addr - s->zones.z[op->zone].start;
	s->st.summary_bytes += io->len;
	summary_next(op);
}

/* One part's record: its entries, and room for the footer. */
static uint32_t part_len(const struct store *s, size_t n)
{
	return store_block_up(s, zrec_len(true, 0, n + ZSUM_FOOTER));
}

/* The next part of the summary, as large as one record allows; the first one even if empty. */
static void summary_next(struct zone_op *op)
{
	struct store *s = op->s;
	struct zone *z = &s->zones.z[op->zone];
	size_t n = zsum_part_len(&z->sum, op->pos, s->rec_max);
	uint32_t len = part_len(s, n);
	struct zrec r = {
		.type = ZREC_SUMMARY,
		.seq = s->next_seq - 1, /* the counter's high mark, for restarts */
		.voff = op->prev,
		.vlen = n,
		.dlen = len - zrec_head_len(true), /* to the block's end, where the footer is */
	};

	if (z->sum_lost || (op->pos == z->sum.len && op->prev != ZSUM_NONE) ||
	    (!n && op->pos < z->sum.len) || !(op->buf = meta_buf(len))) {
		summary_over(op);
		return;
	}
	if (n) /* an empty summary has no buffer at all */
		memcpy(zrec_data(op->buf, true, 0), z->sum.buf + op->pos, n);
	op->pos += n;
	/*
	 * The last part alone gets the footer: were a part before it to carry
	 * one too, a later part failing would leave that footer last in the
	 * zone, and a restart would take the summary's first parts for all of it.
	 */
	if (op->pos == z->sum.len)
		zsum_footer_put(op->buf, len, s->zones.block, s->tag);
	zrec_seal(op->buf, &r, s->tag);
	z->used += len;
	op->io.done = part_done;
	zdev_append(s->dev, op->zone, op->buf, len, &op->io);
}

static void pad_done(struct zdev_io *io)
{
	struct zone_op *op = container_of(io, struct zone_op, io);

	if (!meta_landed(op, io)) {
		zone_finish(op);
		return;
	}
	op->pad -= io->len;
	pad_next(op);
}

static void pad_next(struct zone_op *op)
{
	struct store *s = op->s;
	uint32_t len = MIN(op->pad, s->rec_max);
	struct zrec r = { .type = ZREC_PAD, .dlen = len - zrec_head_len(false) };

	if (!op->pad) {
		summary_next(op);
		return;
	}
	op->buf = meta_buf(len);
	if (!op->buf) {
		zone_finish(op);
		return;
	}
	zrec_seal(op->buf, &r, s->tag);
	s->zones.z[op->zone].used += len;
	op->io.done = pad_done;
	zdev_append(s->dev, op->zone, op->buf, len, &op->io);
}

/* Bytes the summary's parts take, or UINT64_MAX if an entry fits no part. */
static uint64_t summary_bytes(const struct store *s, const struct zone *z)
{
	uint64_t total = 0;
	size_t pos = 0;

	do {
		size_t n = zsum_part_len(&z->sum, pos, s->rec_max);

		if (!n && pos < z->sum.len)
			return UINT64_MAX;
		total += part_len(s, n);
		pos += n;
	} while (pos < z->sum.len);
	return total;
}

static void summary_flushed(struct zdev_io *io)
{
	struct zone_op *op = container_of(io, struct zone_op, io);
	struct store *s = op->s;
	struct zone *z = &s->zones.z[op->zone];
	uint64_t total;

	/* Every append to the zone has ended by now, and been noted. */
	z->data_end = z->wp;
	if (io->res < 0 || z->sum_lost || s->dev_broken) {
		zone_finish(op);
		return;
	}
	total = summary_bytes(s, z);
	/* A summary that does not fit (it always does) goes unpadded: a restart looks for it. */
	op->pad = total <= z->cap - z->wp ? z->cap - z->wp - total : 0;
	pad_next(op);
}

/* --- a clean stop's checkpoints --- */

/*
 * A checkpoint is a summary appended at the zone's write pointer: its footer
 * is then the zone's last block, which a restart reads first. The zone stays
 * open; what is appended after it makes it dead bytes, and a crash after
 * those leaves a last block that is no footer, and a scan, as before.
 */
static void summary_over(struct zone_op *op)
{
	struct store *s = op->s;
	struct zone *z = &s->zones.z[op->zone];

	if (!op->ckpt) {
		zone_finish(op);
		return;
	}
	free(op->buf);
	op->buf = NULL;
	if (op->pos == z->sum.len && op->prev != ZSUM_NONE && z->wp == z->used)
		z->ckpt_end = z->wp;
	s->busy--;
}

/*
 * Whether zone i takes a checkpoint: it is written and not full, holds
 * records no checkpoint lists, and has room. A closed zone may be refused
 * by the device's open limit: then it is scanned, as before.
 */
static bool wants_checkpoint(const struct store *s, uint32_t i)
{
	const struct zone *z = &s->zones.z[i];
	uint64_t total;

	if ((z->state != ZS_OPEN && z->state != ZS_CLOSED) || !z->sum.len || z->sum_lost ||
	    z->wp != z->used || z->ckpt_end == z->wp)
		return false;
	total = summary_bytes(s, z);
	/* Its own room, and still the room its summary keeps back at the end. */
	return total != UINT64_MAX && z->used + total + z->meta + ZSUM_BASE_RESERVE <= z->cap;
}

/* The records are on stable media before the checkpoints that list them. */
static void checkpoint_flushed(struct zdev_io *io)
{
	struct store *s = container_of(io, struct store, ckpt_io);

	s->busy--;
	for (uint32_t i = 0; i < s->zones.n && io->res >= 0; i++) {
		struct zone_op *op = &s->zops[i];

		if (!wants_checkpoint(s, i))
			continue;
		*op = (struct zone_op){ .s = s, .zone = i, .prev = ZSUM_NONE, .ckpt = true };
		s->busy++;
		summary_next(op);
	}
}

bool store_checkpoint(struct store *s)
{
	bool any = false;

	if (s->checkpointed || s->dev_broken)
		return false;
	s->checkpointed = true;
	for (uint32_t i = 0; i < s->zones.n && !any; i++)
		any = wants_checkpoint(s, i);
	if (!any)
		return false;
	s->busy++;
	s->ckpt_io.done = checkpoint_flushed;
	zdev_flush(s->dev, &s->ckpt_io);
	return true;
}

void store_finish_zone(void *arg, uint32_t zone)
{
	struct store *s = arg;
	struct zone_op *op = &s->zops[zone];

	*op = (struct zone_op){ .s = s, .zone = zone, .prev = ZSUM_NONE };
	s->busy++;
	op->io.done = summary_flushed;
	zdev_flush(s->dev, &op->io);
}
