/*
 * Coalescing: a small record bound for a zone with an append in flight
 * gathers with others in one buffer, back to back on 8 bytes; they go as one
 * append, zero-padded to the block, once the zone's appends in flight are
 * done (group commit). Whole blocks go and a partial last block waits behind
 * them for the next append, while there is one, unless the record across the
 * cut would leave more padding than sending it all: the device takes few
 * large writes, and small records share blocks instead of taking one each.
 * Sending at once what gathered while an append was in flight keeps batches
 * small: 100-byte values take 1.45x their bytes (1.33x sent at the end of the
 * loop's turn), for 15% more puts (bench/small, bench/peers). A small
 * record bound for an idle zone goes at once, alone: at depth 1 a put costs
 * a block, and no wait.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void batch_submit(struct store *s, struct zqueue *q);

/*
 * An append to the zone ended: what gathered behind it goes once nothing is
 * in flight, at once, not at the end of the loop's turn, so that the device
 * writes it while the loop answers the puts of the append that ended.
 */
void batch_zone_ended(struct store *s, uint32_t zone)
{
	struct zqueue *q = &s->zq[zone];

	q->appending--;
	if (q->batch && !q->appending) {
		batch_submit(s, q);
		zring_submit_now(s->ring);
	}
}

/*
 * A record of a failed batch gets its bytes back from the batch, so that it
 * can go again, to another zone, as one that failed alone would. The put's
 * budget is charged but not asked: the bytes were its own a moment ago.
 * Batches form under load, when the pool may be dry: then the heap, as the
 * zone summaries do. Without either, the record stays without and fails.
 */
static void chunk_rebuf(struct store *s, struct zchunk *c, const uint8_t *rec)
{
	struct zput *p = c->p;

	c->buf = zpool_alloc(s->pool, c->alloc);
	if (c->buf) {
		p->held += c->alloc;
		if (p->budget)
			p->budget->held += c->alloc;
	} else if (!posix_memalign(&c->buf, ZDEV_BLOCK_MAX, c->alloc)) {
		c->heap = true;
	} else {
		c->buf = NULL;
		return;
	}
	memcpy(c->buf, rec, c->len);
	memset((uint8_t *)c->buf + c->len, 0, store_block_up(s, c->len) - c->len);
}

static void batch_done(struct zdev_io *io)
{
	struct zbatch *b = container_of(io, struct zbatch, io);
	struct store *s = b->s;
	struct zchunk *c, *next;
	uint32_t alen = store_block_up(s, b->len);
	bool misplaced = io->res >= 0 && store_landed(s, b->zone, io->addr, alen);

	if (io->res >= 0 && !misplaced)
		zones_add_dead(&s->zones, b->zone, alen - b->len);
	s->st.batches++;
	/* Before its puts are answered: see batch_zone_ended. */
	batch_zone_ended(s, b->zone);
	for (c = b->chunks; c; c = next) {
		next = c->next;
		s->st.batched_records++;
		if (io->res < 0)
			chunk_rebuf(s, c, b->buf + c->boff);
		chunk_complete(s, c, io->res < 0 ? io->res : 0, io->addr + c->boff, misplaced);
	}
	store_buf_put(s, b->buf, BATCH_MAX, NULL);
	free(b);
}

static struct zbatch *batch_new(struct store *s, uint32_t zone)
{
	struct zbatch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->buf = store_buf_get(s, BATCH_MAX, NULL, NULL);
	if (!b->buf) {
		free(b);
		return NULL;
	}
	b->s = s;
	b->zone = zone;
	b->tail = &b->chunks;
	return b;
}

static void batch_push(struct zbatch *b, struct zchunk *c, const void *rec)
{
	memcpy(b->buf + b->len, rec, c->len);
	c->boff = b->len;
	b->len += c->len;
	c->next = NULL;
	*b->tail = c;
	b->tail = &c->next;
}

/*
 * The records past the batch's last whole block move to a new batch, left
 * to gather behind it; NULL when there are none, when the cut would pad
 * more than sending them all (a record straddling the block ends the part
 * that goes, which is padded to the block), or no memory to move them.
 */
static struct zbatch *batch_split(struct store *s, struct zbatch *b)
{
	uint32_t cut = b->len / s->zones.block * s->zones.block;
	struct zchunk **pc = &b->chunks, *c;
	struct zbatch *rest;

	while (*pc && (*pc)->boff + (*pc)->len <= cut)
		pc = &(*pc)->next;
	if (!*pc || pc == &b->chunks ||
	    store_block_up(s, (*pc)->boff) - (*pc)->boff > store_block_up(s, b->len) - b->len ||
	    !(rest = batch_new(s, b->zone)))
		return NULL;
	c = *pc;
	*pc = NULL;
	b->tail = pc;
	b->len = c->boff;
	while (c) {
		struct zchunk *next = c->next;

		batch_push(rest, c, b->buf + c->boff);
		c = next;
	}
	return rest;
}

static void batch_submit(struct store *s, struct zqueue *q)
{
	struct zbatch *b = q->batch;
	uint64_t reserved = 0;
	uint32_t alen;

	q->batch = batch_split(s, b);
	alen = store_block_up(s, b->len);
	q->appending++;
	/* Each record reserved a block-padded append of its own: packed, they take less. */
	for (struct zchunk *c = b->chunks; c; c = c->next)
		reserved += store_block_up(s, c->len);
	zones_unreserve(&s->zones, b->zone, reserved - alen);
	memset(b->buf + b->len, 0, alen - b->len);
	b->io.done = batch_done;
	zdev_append(s->dev, b->zone, b->buf, alen, &b->io);
}

/* Adds c to its zone's batch if the zone is busy; false if c goes alone. */
bool batch_add(struct store *s, struct zchunk *c)
{
	struct zqueue *q = &s->zq[c->zone];

	if (c->len > BATCH_SMALL || !q->appending || BATCH_MAX > s->rec_max)
		return false;
	/* A full batch goes now, beside what is in flight: no use waiting for more. */
	if (q->batch && store_block_up(s, q->batch->len + c->len) > BATCH_MAX)
		batch_submit(s, q);
	if (!q->batch && !(q->batch = batch_new(s, c->zone)))
		return false;
	batch_push(q->batch, c, c->buf);
	chunk_release_buf(s, c);
	return true;
}
