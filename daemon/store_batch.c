/*
 * Coalescing: while BATCH_WHEN appends to a zone are in flight, small
 * records bound for it gather in one buffer and go as one append when the
 * next append to the zone completes. A busy device then takes few large
 * writes instead of many small ones.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void batch_submit(struct store *s, struct zqueue *q);

/* An append to the zone ended: what gathered behind it goes now. */
void batch_zone_ended(struct store *s, uint32_t zone)
{
	struct zqueue *q = &s->zq[zone];

	q->appending--;
	if (q->batch)
		batch_submit(s, q);
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
	} else if (!posix_memalign(&c->buf, ZREC_BLOCK, c->alloc)) {
		c->heap = true;
	} else {
		c->buf = NULL;
		return;
	}
	memcpy(c->buf, rec, c->len);
}

static void batch_done(struct zdev_io *io)
{
	struct zbatch *b = container_of(io, struct zbatch, io);
	struct store *s = b->s;
	struct zchunk *c, *next;

	s->st.batches++;
	for (c = b->chunks; c; c = next) {
		next = c->next;
		s->st.batched_records++;
		if (io->res < 0)
			chunk_rebuf(s, c, b->buf + c->boff);
		chunk_complete(s, c, io->res < 0 ? io->res : 0, io->addr + c->boff);
	}
	store_buf_put(s, b->buf, BATCH_MAX, NULL);
	batch_zone_ended(s, b->zone);
	free(b);
}

static void batch_submit(struct store *s, struct zqueue *q)
{
	struct zbatch *b = q->batch;

	q->batch = NULL;
	q->appending++;
	b->io.done = batch_done;
	zdev_append(s->dev, b->zone, b->buf, b->len, &b->io);
}

/* Adds c to its zone's batch if the zone is busy; false if c goes alone. */
bool batch_add(struct store *s, struct zchunk *c)
{
	struct zqueue *q = &s->zq[c->zone];
	struct zbatch *b = q->batch;

	if (c->len > BATCH_SMALL || q->appending < BATCH_WHEN || BATCH_MAX > s->rec_max)
		return false;
	if (b && b->len + c->len > BATCH_MAX) {
		batch_submit(s, q);
		b = NULL;
	}
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return false;
		b->buf = store_buf_get(s, BATCH_MAX, NULL, NULL);
		if (!b->buf) {
			free(b);
			return false;
		}
		b->s = s;
		b->zone = c->zone;
		b->tail = &b->chunks;
		q->batch = b;
	}
	memcpy(b->buf + b->len, c->buf, c->len);
	c->boff = b->len;
	b->len += c->len;
	c->next = NULL;
	*b->tail = c;
	b->tail = &c->next;
	chunk_release_buf(s, c);
	return true;
}
