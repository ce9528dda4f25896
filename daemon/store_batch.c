/*
 * Coalescing: small records bound for one zone gather in one buffer, back
 * to back on 8 bytes, and go as one append, zero-padded to the block (group
 * commit). A zone has one batch in flight at a time; what arrives meanwhile
 * gathers behind it and goes, at once, when it lands, so that the device
 * writes it while the loop answers the puts that landed (15% more puts than
 * waiting for the end of the loop's turn). Records bound for an idle zone
 * gather until the end of the loop's turn: what one read of a pipeline
 * brings shares an append, and a lone put at depth 1 waits for nothing.
 *
 * Whole blocks go and a partial last block waits behind them, while an
 * append is in flight, unless the record across the cut would leave more
 * padding than sending it all. When the zone falls idle with less than a
 * block gathered, that goes too, except under load: the zone's last batch
 * answered many puts (BUSY_RECORDS), whose clients' next records come at
 * once, or it was several records filling a block and records joined since
 * it went. Then it waits for the next turn of the loop that brings records
 * to the zone, or for HOLD_USEC when the load has stopped (epoll's timeouts
 * are whole milliseconds: up to twice that). The leftover of a burst of a
 * few does not wait: its client waits for all its answers and sends nothing
 * before the leftover goes. Without the wait, packing depends on how fast
 * the device is: the faster appends land, the fewer records gather behind
 * them, and each load's last few take a block of their own.
 */
#include "store_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* How long, under load, less than a block waits at most for more records. */
#define HOLD_USEC 1000
/* Records answered at once that make the zone's leftover wait for their clients' next. */
#define BUSY_RECORDS 16

static void batch_submit(struct store *s, struct zqueue *q);

static void hold_fire(evutil_socket_t fd, short what, void *arg)
{
	struct store *s = arg;

	(void)fd;
	(void)what;
	while (s->nheld) {
		struct zqueue *q = &s->zq[s->held[--s->nheld]];

		q->held = false;
		if (q->waiting && q->batch && !q->appending)
			batch_submit(s, q);
	}
}

/* Sets q's partial batch to wait for more records; false if the timer cannot be set. */
static bool batch_hold(struct store *s, struct zqueue *q, uint32_t zone)
{
	static const struct timeval hold = { 0, HOLD_USEC };

	if (!s->hold_ev && !(s->hold_ev = evtimer_new(zring_base(s->ring), hold_fire, s)))
		return false;
	if (!evtimer_pending(s->hold_ev, NULL) && evtimer_add(s->hold_ev, &hold))
		return false;
	if (!q->held) {
		q->held = true;
		s->held[s->nheld++] = zone;
	}
	q->waiting = true;
	s->st.batched_holds++;
	return true;
}

/* The idle zone's batch goes, or waits once for more: see the top of the file. */
static void batch_go(struct store *s, uint32_t zone)
{
	struct zqueue *q = &s->zq[zone];

	if ((q->busy || (q->loaded && q->fresh)) && !q->waiting && q->batch->len < s->zones.block &&
	    batch_hold(s, q, zone))
		return;
	batch_submit(s, q);
}

/* An append to the zone ended: what gathered behind it goes now, not at the end of the turn. */
void batch_zone_ended(struct store *s, uint32_t zone)
{
	struct zqueue *q = &s->zq[zone];

	q->appending--;
	if (q->batch && !q->appending) {
		batch_go(s, zone);
		zring_submit_now(s->ring);
	}
}

void batch_turn_end(void *arg)
{
	struct store *s = arg;

	while (s->ndue) {
		uint32_t zone = s->due[--s->ndue];
		struct zqueue *q = &s->zq[zone];

		q->due = false;
		if (q->batch && !q->appending)
			batch_go(s, zone);
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
	unsigned n = 0;
	uint32_t alen = store_block_up(s, b->len);
	bool misplaced = io->res >= 0 && store_landed(s, b->zone, io->addr, alen);

	if (io->res >= 0 && !misplaced)
		zones_add_dead(&s->zones, b->zone, alen - b->len);
	for (c = b->chunks; c; c = c->next)
		n++;
	/* Counted as batched only with company: a lone put goes this way too. */
	if (n > 1) {
		s->st.batches++;
		s->st.batched_records += n;
	}
	s->zq[b->zone].loaded = n > 1 && b->len >= s->zones.block;
	s->zq[b->zone].busy = n >= BUSY_RECORDS;
	/* Before its puts are answered: see batch_zone_ended. */
	batch_zone_ended(s, b->zone);
	/* The puts' index slots, one pass ahead: their cache misses overlap. */
	for (c = b->chunks; c && io->res >= 0; c = c->next)
		zidx_prefetch(s->idx, c->p->key, c->p->klen);
	for (c = b->chunks; c; c = next) {
		next = c->next;
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
	q->waiting = false;
	q->fresh = false;
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

/* Adds c to its zone's batch if it is small; false if c goes alone. */
bool batch_add(struct store *s, struct zchunk *c)
{
	struct zqueue *q = &s->zq[c->zone];

	if (c->len > BATCH_SMALL || BATCH_MAX > s->rec_max)
		return false;
	/* A full batch goes now, beside what is in flight: no use waiting for more. */
	if (q->batch && store_block_up(s, q->batch->len + c->len) > BATCH_MAX)
		batch_submit(s, q);
	if (!q->batch && !(q->batch = batch_new(s, c->zone)))
		return false;
	batch_push(q->batch, c, c->buf);
	q->fresh = true;
	chunk_release_buf(s, c);
	if (!q->appending && !q->due) {
		q->due = true;
		s->due[s->ndue++] = c->zone;
		zring_kick(s->ring);
	}
	return true;
}
