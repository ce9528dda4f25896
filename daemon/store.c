#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "record.h"

/*
 * Zones a record tries before its put fails, each failure retiring one: at
 * least the whole write set and one more, since faults come together (a die,
 * a channel) and may take every zone being written at once.
 */
#define APPEND_TRIES(s) MAX(3u, (s)->zones.want + 1)
/* Buffer bytes one put may hold: a large value streams through, it does not fill the pool. */
#define PUT_MAX_HELD (8u << 20)
/*
 * Coalescing: while BATCH_WHEN appends to a zone are in flight, records of
 * up to BATCH_SMALL bytes bound for it gather in one buffer of BATCH_MAX and
 * go as one append when the next append to the zone completes. A busy
 * device then takes few large writes instead of many small ones.
 */
#define BATCH_WHEN  4u
#define BATCH_SMALL (32u << 10)
#define BATCH_MAX   (256u << 10)

struct zchunk {
	struct zdev_io io;
	struct zput *p;
	void *buf;
	uint32_t alloc; /* bytes asked of the pool */
	uint32_t len;	/* of the sealed record */
	uint32_t idx;
	uint32_t dlen;
	uint32_t filled;
	uint32_t zone;
	unsigned tries;	     /* appends that failed */
	bool heap;	     /* buf is from the heap, not the pool (a failed batch's record) */
	uint32_t boff;	     /* where in its batch, if batched */
	struct zchunk *next; /* waiting for room, or the next in its batch */
};

/* Records gathering for one append to a busy zone. */
struct zbatch {
	struct zdev_io io;
	struct store *s;
	uint32_t zone;
	uint8_t *buf;
	uint32_t len;
	struct zchunk *chunks, **tail;
};

/* Per zone: appends in flight, and the batch gathering behind them. */
struct zqueue {
	unsigned appending;
	struct zbatch *batch;
};

struct zput {
	struct store *s;
	zput_fn done;
	void *arg;
	uint8_t type;
	bool input_done;
	bool maybe_landed; /* an append of it failed after writing, perhaps all of it */
	int err;
	uint64_t seq;
	uint64_t vlen;
	uint64_t given;
	uint32_t nchunks;
	uint32_t dmax;
	uint32_t submitted;
	uint32_t completed;
	struct zchunk *cur;
	struct zloc *locs; /* &one, or an array the index takes over on commit */
	struct zloc one;
	struct zdev_io end_io;
	struct store_waiter w;		  /* deletes: waiting for a block of buffer */
	uint64_t held;			  /* buffer bytes of its records not yet written */
	struct store_budget *budget;	  /* the client's share, or NULL */
	struct store_waiter *held_waiter; /* the feeder, waiting for held to go down */
	struct zput *next;
	struct zput *older, *newer; /* all puts in flight, by seq */
	struct zhold h;		    /* by key: for the ordering rule and GC */
	struct zget *waiters;	    /* gets received after it, waiting for it to end */
	struct zput *dnext;	    /* next in the deferred list of a get received before it */
	uint16_t klen;
	uint8_t key[];
};

struct zget {
	struct store *s;
	zget_fn fn;
	void *arg;
	uint64_t barrier; /* puts and deletes with a lower seq were received before it */
	uint64_t seq;
	uint64_t vlen;
	uint32_t nchunks;
	uint32_t next;
	struct zloc *locs; /* &one for a value in one record; GC keeps them current */
	struct zloc one;
	void *buf;
	uint32_t alloc;
	uint32_t rd_zone; /* of the read in flight */
	bool heap;	  /* buf is from the heap: a record longer than any pool buffer */
	bool reading;
	bool aborted;
	bool held;    /* h is in the table */
	bool finding; /* no version yet: waiting for what was received before it */
	struct zhold h;
	bool dead;	       /* its version died: counted in its zones' held bytes */
	struct zput *wait_on;  /* a put or delete received before it, still in flight */
	struct zget *wnext;    /* the next get waiting on it */
	struct zput *deferred; /* puts received after it, committed once it has its version */
	struct zdev_io io;
	struct store_waiter w;
	struct store_budget *budget;
	uint16_t klen;
	uint8_t key[];
};

static void wait_on(struct wait_list *l, struct store_waiter *w)
{
	if (w->on)
		return;
	w->on = l;
	w->next = NULL;
	*l->tail = w;
	l->tail = &w->next;
}

void store_wait_cancel(struct store_waiter *w)
{
	struct wait_list *l = w->on;
	struct store_waiter **pp;

	if (!l)
		return;
	for (pp = &l->head; *pp != w; pp = &(*pp)->next)
		;
	*pp = w->next;
	if (l->tail == &w->next)
		l->tail = pp;
	w->on = NULL;
}

/* Everyone waiting gets a chance; those still short of memory queue again. */
static void wake(struct wait_list *l)
{
	struct store_waiter *list = l->head;

	l->head = NULL;
	l->tail = &l->head;
	while (list) {
		struct store_waiter *w = list;

		list = w->next;
		w->on = NULL;
		w->fn(w);
	}
}

void store_budget_init(struct store_budget *b, size_t limit)
{
	*b = (struct store_budget){ .limit = limit };
	b->waiting.tail = &b->waiting.head;
}

/* A buffer charged to b (may be NULL), or NULL and w queued to be called back. */
static void *buf_get(struct store *s, uint32_t len, struct store_budget *b, struct store_waiter *w)
{
	void *buf;

	if (b && b->held && b->held + len > b->limit) {
		if (w)
			wait_on(&b->waiting, w);
		return NULL;
	}
	buf = zpool_alloc(s->pool, len);
	if (!buf) {
		if (w)
			wait_on(&s->waiters, w);
		return NULL;
	}
	if (b)
		b->held += len;
	return buf;
}

static void buf_put(struct store *s, void *buf, uint32_t len, struct store_budget *b)
{
	zpool_free(s->pool, buf, len);
	if (b) {
		b->held -= len;
		if (b->waiting.head)
			wake(&b->waiting);
	}
	if (s->waiters.head)
		wake(&s->waiters);
}

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

/*
 * A zone that takes no more appends gets its summary, then is finished:
 * flush (so every record the summary lists is on stable media before the
 * summary is), pad the zone so that the summary ends exactly at its
 * capacity, append the summary parts one after another (each names the one
 * before), finish. The summary's last block is the zone's last: a restart
 * finds it with one read, and never reads what was not written. Any failure
 * skips to the finish: a restart then scans the zone instead. The op is the
 * zone's own, so that finishing a zone never waits for memory.
 */
struct zone_op {
	struct zdev_io io;
	struct store *s;
	uint32_t zone;
	uint64_t pad;  /* bytes of padding still to write */
	size_t pos;    /* summary bytes written */
	uint64_t prev; /* offset of the part before, in the zone */
	void *buf;
};

static void zone_op_end(struct zone_op *op, bool ok)
{
	struct store *s = op->s;

	zones_finished(&s->zones, op->zone, ok);
	s->busy--;
	if (s->waiters.head)
		wake(&s->waiters);
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

	if (posix_memalign(&buf, ZREC_BLOCK, len))
		return NULL;
	memset(buf, 0, len);
	return buf;
}

static void summary_next(struct zone_op *op);
static void pad_next(struct zone_op *op);

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
		zone_finish(op);
		return;
	}
	op->prev = io->addr - s->zones.z[op->zone].start;
	s->st.summary_bytes += io->len;
	summary_next(op);
}

/* One part's record: its entries, and room for the footer. */
static uint32_t part_len(size_t n)
{
	return zrec_len(0, n + ZSUM_FOOTER);
}

/* The next part of the summary, as large as one record allows; the first one even if empty. */
static void summary_next(struct zone_op *op)
{
	struct store *s = op->s;
	struct zone *z = &s->zones.z[op->zone];
	size_t n = zsum_part_len(&z->sum, op->pos, s->rec_max);
	uint32_t len = part_len(n);
	struct zrec r = {
		.type = ZREC_SUMMARY,
		.seq = s->next_seq - 1, /* the counter's high mark, for restarts */
		.voff = op->prev,
		.vlen = n,
		.dlen = len - ZREC_HDR,
	};

	if (z->sum_lost || (op->pos == z->sum.len && op->prev != ZSUM_NONE) ||
	    (!n && op->pos < z->sum.len) || !(op->buf = meta_buf(len))) {
		zone_finish(op);
		return;
	}
	if (n) /* an empty summary has no buffer at all */
		memcpy(zrec_data(op->buf, 0), z->sum.buf + op->pos, n);
	op->pos += n;
	/*
	 * The last part alone gets the footer: were a part before it to carry
	 * one too, a later part failing would leave that footer last in the
	 * zone, and a restart would take the summary's first parts for all of it.
	 */
	if (op->pos == z->sum.len)
		zsum_footer_put(op->buf, len, s->tag);
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
	struct zrec r = { .type = ZREC_PAD, .dlen = len - ZREC_HDR };

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
static uint64_t summary_bytes(const struct zone *z, uint32_t rec_max)
{
	uint64_t total = 0;
	size_t pos = 0;

	do {
		size_t n = zsum_part_len(&z->sum, pos, rec_max);

		if (!n && pos < z->sum.len)
			return UINT64_MAX;
		total += part_len(n);
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
	total = summary_bytes(z, s->rec_max);
	/* A summary that does not fit (it always does) goes unpadded: a restart looks for it. */
	op->pad = total <= z->cap - z->wp ? z->cap - z->wp - total : 0;
	pad_next(op);
}

static void finish_zone(void *arg, uint32_t zone)
{
	struct store *s = arg;
	struct zone_op *op = &s->zops[zone];

	*op = (struct zone_op){ .s = s, .zone = zone, .prev = ZSUM_NONE };
	s->busy++;
	op->io.done = summary_flushed;
	zdev_flush(s->dev, &op->io);
}

/* --- puts --- */

static void get_begin(struct zget *g);

/*
 * The put's records that landed are no longer held by it: those the index
 * took are live, the others garbage. The gets that waited for it go on.
 */
static void put_free(struct zput *p)
{
	struct store *s = p->s;
	struct zget *g;

	for (uint32_t i = 0; i < p->nchunks; i++) {
		if (p->locs[i].len)
			zones_sub_pending(&s->zones, p->locs[i].addr, p->locs[i].len);
	}
	zholds_remove(&s->holds, &p->h);
	*(p->older ? &p->older->newer : &s->oldest) = p->newer;
	*(p->newer ? &p->newer->older : &s->newest) = p->older;
	/* One at a time off the list: a callback may abort a get still on it. */
	while ((g = p->waiters)) {
		p->waiters = g->wnext;
		g->wait_on = NULL;
		get_begin(g);
	}
	if (p->locs != &p->one)
		free(p->locs);
	free(p);
}

uint64_t store_oldest_put(const struct store *s)
{
	return s->oldest ? s->oldest->seq : s->next_seq;
}

static void put_end(struct zput *p, int err)
{
	struct store *s = p->s;
	/*
	 * No room for a record whose earlier append failed, yet may have
	 * written it whole: the put may be on the media, and a restart would
	 * find it. Not NO_SPACE then, which says it did not happen.
	 */
	struct zput_result res = { .err = err == -ENOSPC && p->maybe_landed ? -EIO : err,
				   .seq = p->seq };

	if (!err) {
		res.zone = zones_of(&s->zones, p->locs[0].addr);
		res.offset = p->locs[0].addr - s->zones.z[res.zone].start;
	} else {
		s->st.errors++;
	}
	s->busy--;
	p->done(p->arg, &res);
	put_free(p);
}

/*
 * The version seq of key died, yet gets in flight still read it: its bytes
 * stay in its zones' keep, so that GC moves them once for those gets
 * rather than taking them for garbage and moving them round and round.
 */
static void gets_keep_dead(struct store *s, const void *key, size_t klen, uint64_t seq)
{
	for (struct zhold *h = zholds_next(&s->holds, key, klen, NULL); h;
	     h = zholds_next(&s->holds, key, klen, h)) {
		struct zget *g = container_of(h, struct zget, h);

		if (h->kind != ZH_GET || g->finding || h->seq != seq || g->dead)
			continue;
		g->dead = true;
		for (uint32_t i = 0; i < g->nchunks; i++)
			s->zones.z[zones_of(&s->zones, g->locs[i].addr)].held += g->locs[i].len;
	}
}

/* A get of p's key received before p, still waiting for its version; NULL if none. */
static struct zget *get_before(const struct zput *p)
{
	const struct zholds *hs = &p->s->holds;

	for (struct zhold *h = zholds_next(hs, p->key, p->klen, NULL); h;
	     h = zholds_next(hs, p->key, p->klen, h)) {
		struct zget *g = container_of(h, struct zget, h);

		if (h->kind == ZH_GET && g->finding && g->barrier <= p->seq)
			return g;
	}
	return NULL;
}

/*
 * The index takes the put or delete. Not before a get received earlier has
 * its version: that get must not see what came after it.
 */
static void commit(struct zput *p)
{
	struct store *s = p->s;
	struct zent e = { .seq = p->seq, .nchunks = p->nchunks };
	struct zget *g = get_before(p);
	struct zent old;
	int ret;

	if (g) {
		p->dnext = g->deferred;
		g->deferred = p;
		return;
	}
	if (p->type == ZREC_DEL)
		e.nchunks = 0;
	if (p->nchunks > 1)
		e.chunks = p->locs;
	else
		e.loc = p->locs[0];
	ret = zidx_update(s->idx, p->key, p->klen, &e, &old);
	if (ret < 0) {
		put_end(p, ret);
		return;
	}
	if (ret == 1) {
		zones_add_entry(&s->zones, &e, true);
		if (old.seq) {
			zones_sub_entry(&s->zones, &old);
			gets_keep_dead(s, p->key, p->klen, old.seq);
		}
		zent_done(&old);
	}
	if (p->type == ZREC_DEL) {
		s->st.dels++;
	} else {
		s->st.puts++;
		s->st.put_bytes += p->vlen;
	}
	put_end(p, 0);
}

static void kick_flush(struct store *s);

/* All the put's records ended and no more input comes: on to flush or the end. */
static void put_settle(struct zput *p)
{
	struct store *s = p->s;

	if (!p->input_done || p->completed != p->submitted)
		return;
	if (p->err) {
		put_end(p, p->err);
	} else if (s->cfg.sync) {
		p->next = NULL;
		*s->unflushed_tail = p;
		s->unflushed_tail = &p->next;
		kick_flush(s);
	} else {
		commit(p);
	}
}

static void end_io_done(struct zdev_io *io)
{
	put_settle(container_of(io, struct zput, end_io));
}

/* Input stops early: settle from the event loop, never inside the caller. */
static void put_stop_input(struct zput *p, int err)
{
	if (!p->err)
		p->err = err;
	p->input_done = true;
	if (p->completed == p->submitted) {
		p->end_io.done = end_io_done;
		zdev_fail(p->s->dev, &p->end_io, p->err);
	}
}

static void flush_done(struct zdev_io *io)
{
	struct store *s = container_of(io, struct store, flush_io);
	struct zput *list = s->flushing;

	s->flush_inflight = false;
	s->flushing = NULL;
	s->st.flushes++;
	s->busy--;
	while (list) {
		struct zput *p = list;

		list = p->next;
		if (io->res < 0)
			put_end(p, -EIO);
		else
			commit(p);
	}
	kick_flush(s);
}

/* One flush at a time; it covers every append that completed before it was issued. */
static void kick_flush(struct store *s)
{
	if (s->flush_inflight || !s->unflushed)
		return;
	s->flushing = s->unflushed;
	s->unflushed = NULL;
	s->unflushed_tail = &s->unflushed;
	s->flush_inflight = true;
	s->busy++;
	s->flush_io.done = flush_done;
	zdev_flush(s->dev, &s->flush_io);
}

static void chunk_place(struct store *s, struct zchunk *c);

/* The chunk's buffer goes back; the feeder of a large value may hand in more. */
static void chunk_release_buf(struct store *s, struct zchunk *c)
{
	struct zput *p = c->p;
	struct store_waiter *w = p->held_waiter;

	if (!c->buf)
		return;
	if (c->heap) {
		free(c->buf);
		c->buf = NULL;
		c->heap = false;
		return;
	}
	buf_put(s, c->buf, c->alloc, p->budget);
	c->buf = NULL;
	p->held -= c->alloc;
	if (w && !p->input_done) {
		p->held_waiter = NULL;
		w->fn(w);
	}
}

static void chunk_free(struct store *s, struct zchunk *c)
{
	chunk_release_buf(s, c);
	free(c);
}

static void batch_submit(struct store *s, struct zqueue *q);

/* The append of c ended with res, the record landing at addr. */
static void chunk_complete(struct store *s, struct zchunk *c, int res, uint64_t addr)
{
	struct zput *p = c->p;

	zones_append_done(&s->zones, c->zone);
	if (res < 0)
		zones_note_failed(&s->zones, c->zone, p->key, p->klen, p->seq);
	/*
	 * Refused before writing anything (the zone full or read-only, too many
	 * active, malformed), or cut short by a full host file system: the
	 * record is not whole on the media. Anything else may have written it.
	 */
	if (res < 0 && res != -ENOSPC && res != -EROFS && res != -EBUSY && res != -EINVAL &&
	    res != -EDQUOT)
		p->maybe_landed = true;
	if (res < 0 && res != -EDQUOT && c->buf && ++c->tries < APPEND_TRIES(s)) {
		/*
		 * The zone is failing, not the record: it goes, the record tries
		 * another. Too many active zones (-EBUSY) is no fault of the zone,
		 * nor is a command found malformed (-EINVAL): retiring zones for
		 * it would take every zone out, one put at a time.
		 */
		s->st.zone_errors++;
		if (res != -EBUSY && res != -EINVAL)
			zones_retire(&s->zones, c->zone);
		chunk_place(s, c);
		put_settle(p); /* in case no zone was left for it */
		return;
	}
	if (res < 0) {
		/* The file system under the device is full: the client hears so. */
		p->err = p->err ? p->err : res == -EDQUOT ? -ENOSPC : -EIO;
	} else if (store_landed(s, c->zone, addr, c->len)) {
		p->err = -EIO;
		s->st.errors++;
	} else {
		/* Live from now on, though no index points at it yet: GC must not drop it. */
		p->locs[c->idx] = (struct zloc){ .addr = addr, .len = c->len };
		zones_add_pending(&s->zones, addr, c->len);
		s->st.appended_bytes += c->len;
		zones_note(&s->zones,
			   &(struct zrec){ .type = p->type,
					   .klen = p->klen,
					   .key = p->key,
					   .seq = p->seq,
					   .vlen = p->vlen,
					   .chunk = c->idx,
					   .nchunks = p->nchunks,
					   .len = c->len },
			   addr);
	}
	chunk_free(s, c);
	p->completed++;
	put_settle(p);
}

/* An append to the zone ended: what gathered behind it goes now. */
static void zone_append_ended(struct store *s, uint32_t zone)
{
	struct zqueue *q = &s->zq[zone];

	q->appending--;
	if (q->batch)
		batch_submit(s, q);
}

static void chunk_done(struct zdev_io *io)
{
	struct zchunk *c = container_of(io, struct zchunk, io);
	struct store *s = c->p->s;
	uint32_t zone = c->zone;

	chunk_complete(s, c, io->res, io->addr);
	zone_append_ended(s, zone);
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
	buf_put(s, b->buf, BATCH_MAX, NULL);
	zone_append_ended(s, b->zone);
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
static bool batch_add(struct store *s, struct zchunk *c)
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
		b->buf = buf_get(s, BATCH_MAX, NULL, NULL);
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

static void chunk_append(struct store *s, struct zchunk *c)
{
	if (batch_add(s, c))
		return;
	s->zq[c->zone].appending++;
	c->io.done = chunk_done;
	zdev_append(s->dev, c->zone, c->buf, c->len, &c->io);
}

static void chunk_fail(struct store *s, struct zchunk *c, int err)
{
	struct zput *p = c->p;

	p->err = p->err ? p->err : err;
	chunk_free(s, c);
	p->completed++;
}

static int chunk_reserve(struct store *s, struct zchunk *c)
{
	enum zone_class cls = c->p->type == ZREC_DEL ? ZC_DEL : ZC_PUT;

	return zones_reserve(&s->zones, cls, c->len, c->p->klen, &c->zone);
}

/* No room now: wait if GC or zones being finished will make some, else the device is full. */
static bool room_coming(struct store *s, int err)
{
	return err == -EAGAIN || (err == -ENOSPC && gc_can_free(&s->gc));
}

static void chunk_submit(struct zput *p, struct zchunk *c)
{
	struct store *s = p->s;
	struct zrec r = {
		.type = p->type,
		.klen = p->klen,
		.key = p->key,
		.seq = p->seq,
		.vlen = p->vlen,
		.voff = (uint64_t)c->idx * p->dmax,
		.dlen = c->dlen,
		.chunk = c->idx,
		.nchunks = p->type == ZREC_DEL ? 0 : p->nchunks,
	};

	c->len = zrec_seal(c->buf, &r, s->tag);
	p->submitted++;
	chunk_place(s, c);
}

/* Into a zone with room, or to wait for room, or failed for want of it. */
static void chunk_place(struct store *s, struct zchunk *c)
{
	/* Behind records already waiting, so that puts keep their order. */
	int ret = s->dev_broken ? -EIO : s->space ? -EAGAIN : chunk_reserve(s, c);

	if (ret == -EIO) {
		chunk_fail(s, c, -EIO);
	} else if (!ret) {
		chunk_append(s, c);
	} else if (room_coming(s, ret)) {
		c->next = NULL;
		*s->space_tail = c;
		s->space_tail = &c->next;
		s->space_waiters++;
		gc_kick(&s->gc);
	} else {
		chunk_fail(s, c, -ENOSPC);
	}
}

void store_space_freed(struct store *s)
{
	struct zchunk *c;
	int ret;

	while ((c = s->space)) {
		ret = chunk_reserve(s, c);
		if (ret && room_coming(s, ret))
			return;
		s->space = c->next;
		if (!s->space)
			s->space_tail = &s->space;
		s->space_waiters--;
		if (ret) {
			struct zput *p = c->p;

			chunk_fail(s, c, -ENOSPC);
			put_settle(p);
		} else {
			chunk_append(s, c);
		}
	}
}

static struct zput *put_new(struct store *s, uint8_t type, const void *key, size_t klen,
			    uint64_t vlen, struct store_budget *b, zput_fn done, void *arg)
{
	struct zput *p = calloc(1, sizeof(*p) + klen);

	if (!p)
		return NULL;
	p->s = s;
	p->budget = b;
	p->type = type;
	p->done = done;
	p->arg = arg;
	p->klen = klen;
	memcpy(p->key, key, klen);
	p->vlen = vlen;
	p->dmax = zrec_data_max(s->rec_max, klen);
	p->nchunks = vlen ? DIV_UP(vlen, p->dmax) : 1;
	p->locs = &p->one;
	if (p->nchunks > 1) {
		p->locs = calloc(p->nchunks, sizeof(*p->locs));
		if (!p->locs) {
			free(p);
			return NULL;
		}
	}
	p->seq = s->next_seq++;
	p->older = s->newest;
	*(s->newest ? &s->newest->newer : &s->oldest) = p;
	s->newest = p;
	p->h = (struct zhold){ .seq = p->seq,
			       .key = p->key,
			       .klen = p->klen,
			       .kind = type == ZREC_DEL ? ZH_DEL : ZH_PUT };
	zholds_add(&s->holds, &p->h);
	s->busy++;
	return p;
}

static int check_key(size_t klen)
{
	if (klen == 0)
		return -EINVAL;
	return klen > ZAP_KEY_MAX ? -E2BIG : 0;
}

int store_put_begin(struct store *s, const void *key, size_t klen, uint64_t vlen,
		    struct store_budget *b, zput_fn done, void *arg, struct zput **out)
{
	int ret = check_key(klen);

	if (ret)
		return ret;
	if (vlen > s->cfg.max_value)
		return -E2BIG;
	*out = put_new(s, ZREC_PUT, key, klen, vlen, b, done, arg);
	return *out ? 0 : -ENOMEM;
}

bool store_put_filled(const struct zput *p)
{
	return p->input_done;
}

static void put_drop_cur(struct zput *p)
{
	if (!p->cur)
		return;
	chunk_free(p->s, p->cur);
	p->cur = NULL;
}

void *store_put_buf(struct zput *p, size_t *room, struct store_waiter *w)
{
	struct store *s = p->s;
	struct zchunk *c = p->cur;

	*room = 0;
	if (p->err) {
		put_drop_cur(p);
		put_stop_input(p, p->err);
		return NULL;
	}
	if (!c) {
		uint32_t idx = p->submitted;
		uint64_t left = p->vlen - (uint64_t)idx * p->dmax;
		uint32_t dlen = MIN(left, p->dmax);
		uint32_t alloc = zrec_len(p->klen, dlen);
		void *buf;

		if (p->held + alloc > PUT_MAX_HELD) {
			p->held_waiter = w;
			return NULL;
		}
		buf = buf_get(s, alloc, p->budget, w);
		if (!buf)
			return NULL;
		c = calloc(1, sizeof(*c));
		if (!c) {
			buf_put(s, buf, alloc, p->budget);
			put_stop_input(p, -ENOMEM);
			return NULL;
		}
		*c =
		    (struct zchunk){ .p = p, .buf = buf, .alloc = alloc, .idx = idx, .dlen = dlen };
		p->cur = c;
		p->held += alloc;
	}
	*room = c->dlen - c->filled;
	return (uint8_t *)zrec_data(c->buf, p->klen) + c->filled;
}

void store_put_fill(struct zput *p, size_t n)
{
	struct zchunk *c = p->cur;

	c->filled += n;
	p->given += n;
	if (c->filled < c->dlen)
		return;
	p->cur = NULL;
	chunk_submit(p, c);
	if (p->submitted == p->nchunks)
		put_stop_input(p, 0);
}

void store_put_abort(struct zput *p)
{
	p->held_waiter = NULL;
	put_drop_cur(p);
	put_stop_input(p, -ECONNABORTED);
}

/* A tombstone is one block, written as soon as the pool has one. */
static void del_write(struct store_waiter *w)
{
	struct zput *p = container_of(w, struct zput, w);
	size_t room;

	if (store_put_buf(p, &room, w))
		store_put_fill(p, 0);
}

/* Whether a put of key is in flight: received, so a delete received now must come after it. */
static bool put_in_flight(const struct store *s, const void *key, size_t klen)
{
	for (struct zhold *h = zholds_next(&s->holds, key, klen, NULL); h;
	     h = zholds_next(&s->holds, key, klen, h)) {
		if (h->kind == ZH_PUT)
			return true;
	}
	return false;
}

int store_del(struct store *s, const void *key, size_t klen, struct store_budget *b, zput_fn done,
	      void *arg)
{
	struct zent e;
	struct zput *p;
	int ret = check_key(klen);

	if (ret)
		return ret;
	if ((!zidx_get(s->idx, key, klen, &e) || !e.nchunks) && !put_in_flight(s, key, klen))
		return -ENOENT;
	p = put_new(s, ZREC_DEL, key, klen, 0, b, done, arg);
	if (!p)
		return -ENOMEM;
	p->w.fn = del_write;
	del_write(&p->w);
	return 0;
}

/* --- gets --- */

/*
 * The get's buffer goes back. Gets hold pool buffers until their client has
 * read them: clients that read slowly, or not at all, could hold the whole
 * pool and stop every put, so gets take at most half of it.
 */
static void get_buf_put(struct zget *g)
{
	struct store *s = g->s;

	if (g->buf && g->heap) {
		free(g->buf);
	} else if (g->buf) {
		buf_put(s, g->buf, g->alloc, g->budget);
		s->gets.held -= g->alloc;
		if (s->gets.waiting.head)
			wake(&s->gets.waiting);
	}
	g->buf = NULL;
}

static void get_free(struct zget *g)
{
	struct store *s = g->s;

	if (g->held)
		zholds_remove(&s->holds, &g->h);
	for (uint32_t i = 0; g->dead && i < g->nchunks; i++)
		s->zones.z[zones_of(&s->zones, g->locs[i].addr)].held -= g->locs[i].len;
	get_buf_put(g);
	if (g->locs != &g->one)
		free(g->locs);
	s->busy--;
	free(g);
}

/* The get has its version, or never will: what was received after it may take effect. */
static void get_settled(struct zget *g)
{
	struct zput *list = g->deferred;

	g->finding = false;
	g->deferred = NULL;
	while (list) {
		struct zput *p = list;

		list = p->dnext;
		commit(p);
	}
}

/* The get ends before it found a version: told through its callback, as any later end. */
static void get_fail(struct zget *g, int err)
{
	if (err != -ENOENT)
		g->s->st.errors++;
	g->fn(g->arg, err, NULL);
	get_free(g);
}

static void get_read(struct zget *g);

static void get_wake(struct store_waiter *w)
{
	get_read(container_of(w, struct zget, w));
}

/* The record read back is the one the index named, whole and unaltered. */
static int get_verify(struct zget *g, const struct zloc *l, struct zrec *r)
{
	if (zrec_parse(g->buf, l->len, g->s->tag, r) || r->type != ZREC_PUT || r->len != l->len ||
	    r->klen != g->klen || memcmp(r->key, g->key, g->klen) || r->seq != g->seq ||
	    (g->next && r->vlen != g->vlen) || r->chunk != g->next || r->nchunks != g->nchunks ||
	    zrec_verify_data(r))
		return -EIO;
	/* The index keeps no lengths: the first record tells the value's. */
	g->vlen = r->vlen;
	return 0;
}

static void get_read_done(struct zdev_io *io)
{
	struct zget *g = container_of(io, struct zget, io);
	struct store *s = g->s;
	struct zget_chunk c;
	struct zrec r;
	int err = io->res < 0 ? -EIO : 0;

	g->reading = false;
	if (--s->zones.z[g->rd_zone].readers == 0)
		gc_unpinned(&s->gc, g->rd_zone);
	if (g->aborted) {
		get_free(g);
		return;
	}
	if (!err) {
		err = get_verify(g, &g->locs[g->next], &r);
		if (err)
			s->st.corrupt++;
	}
	if (err) {
		get_fail(g, err);
		return;
	}
	c = (struct zget_chunk){ .vlen = g->vlen,
				 .voff = r.voff,
				 .data = r.data,
				 .dlen = r.dlen,
				 .last = g->next + 1 == g->nchunks };
	if (c.last) {
		s->st.gets++;
		s->st.get_bytes += g->vlen;
	}
	g->fn(g->arg, 0, &c);
}

/*
 * A buffer for the next record: from the pool, or, for a record longer than
 * any pool buffer (written under an earlier, larger limit), from the heap.
 */
static void *get_buf(struct zget *g, uint32_t len)
{
	struct store *s = g->s;
	struct store_budget *all = &s->gets;
	void *buf;

	g->alloc = len;
	g->heap = len > zpool_max(s->pool);
	if (g->heap)
		return posix_memalign(&g->buf, ZREC_BLOCK, len) ? NULL : g->buf;
	/* Gets together hold at most their share of the pool, one always may. */
	if (all->held && all->held + len > all->limit) {
		wait_on(&all->waiting, &g->w);
		return NULL;
	}
	buf = buf_get(s, len, g->budget, &g->w);
	if (buf)
		all->held += len;
	return buf;
}

/*
 * Only the read in flight pins its zone: GC moves a record a get holds and
 * tells the get, so a client reading slowly holds up no reset.
 */
static void get_read(struct zget *g)
{
	const struct zloc *l = &g->locs[g->next];
	struct store *s = g->s;

	g->buf = get_buf(g, l->len);
	if (!g->buf && !g->heap)
		return;
	g->rd_zone = zones_of(&s->zones, l->addr);
	s->zones.z[g->rd_zone].readers++;
	g->reading = true;
	g->io.done = get_read_done;
	if (g->buf)
		zdev_read(s->dev, l->addr, g->buf, l->len, &g->io);
	else
		zdev_fail(s->dev, &g->io, -ENOMEM);
}

/* A put or delete of the get's key, received before it and whole, still in flight. */
static struct zput *get_blocker(const struct zget *g)
{
	const struct zholds *hs = &g->s->holds;

	for (struct zhold *h = zholds_next(hs, g->key, g->klen, NULL); h;
	     h = zholds_next(hs, g->key, g->klen, h)) {
		struct zput *p = container_of(h, struct zput, h);

		if (h->kind != ZH_GET && h->seq < g->barrier &&
		    (h->kind == ZH_DEL || p->input_done))
			return p;
	}
	return NULL;
}

/* The version to read: the index's, once what was received before the get has ended. */
static int get_find(struct zget *g)
{
	struct store *s = g->s;
	struct zput *p = get_blocker(g);
	struct zent e;

	if (p) {
		g->wait_on = p;
		g->wnext = p->waiters;
		p->waiters = g;
		return 0;
	}
	if (!zidx_get(s->idx, g->key, g->klen, &e) || !e.nchunks)
		return -ENOENT;
	/* A copy: an overwrite during the get must not pull the locations away. */
	if (e.nchunks > 1) {
		g->locs = malloc(e.nchunks * sizeof(*g->locs));
		if (!g->locs)
			return -ENOMEM;
		memcpy(g->locs, e.chunks, e.nchunks * sizeof(*g->locs));
	} else {
		g->one = e.loc;
		g->locs = &g->one;
	}
	g->seq = e.seq;
	g->nchunks = e.nchunks;
	g->h.seq = e.seq;
	get_settled(g);
	get_read(g);
	return 0;
}

/* A get that waited for a put or delete of its key looks again. */
static void get_begin(struct zget *g)
{
	int err = get_find(g);

	if (err) {
		get_settled(g);
		get_fail(g, err);
	}
}

int store_get(struct store *s, const void *key, size_t klen, struct store_budget *b, zget_fn fn,
	      void *arg, struct zget **out)
{
	struct zget *g;
	int ret = check_key(klen);

	if (ret)
		return ret;
	g = calloc(1, sizeof(*g) + klen);
	if (!g)
		return -ENOMEM;
	*g = (struct zget){ .s = s,
			    .fn = fn,
			    .arg = arg,
			    .barrier = s->next_seq,
			    .klen = klen,
			    .budget = b,
			    .w.fn = get_wake };
	memcpy(g->key, key, klen);
	g->locs = &g->one;
	/*
	 * In the table from now on: puts and deletes received after it wait for
	 * it to have its version, and GC keeps whatever it comes to hold.
	 */
	g->h = (struct zhold){ .seq = g->barrier, .key = g->key, .klen = klen, .kind = ZH_GET };
	zholds_add(&s->holds, &g->h);
	g->held = g->finding = true;
	s->busy++;
	ret = get_find(g);
	if (ret) {
		get_free(g);
		return ret;
	}
	*out = g;
	return 0;
}

void store_get_next(struct zget *g)
{
	get_buf_put(g);
	if (++g->next == g->nchunks) {
		get_free(g);
		return;
	}
	get_read(g);
}

static void unwait(struct zget *g)
{
	struct zget **pp = &g->wait_on->waiters;

	while (*pp != g)
		pp = &(*pp)->wnext;
	*pp = g->wnext;
	g->wait_on = NULL;
}

void store_get_abort(struct zget *g)
{
	store_wait_cancel(&g->w);
	if (g->wait_on)
		unwait(g);
	get_settled(g);
	if (g->reading)
		g->aborted = true;
	else
		get_free(g);
}

/* --- records held by operations in flight, for GC --- */

/* The location of chunk `chunk` that a hold holds, or NULL. */
static struct zloc *held_loc(struct zhold *h, uint32_t chunk)
{
	if (h->kind == ZH_GET) {
		struct zget *g = container_of(h, struct zget, h);

		return !g->finding && chunk < g->nchunks ? &g->locs[chunk] : NULL;
	} else {
		struct zput *p = container_of(h, struct zput, h);

		return chunk < p->nchunks && p->locs[chunk].len ? &p->locs[chunk] : NULL;
	}
}

bool store_key_held(const struct store *s, const void *key, size_t klen)
{
	return zholds_next(&s->holds, key, klen, NULL) != NULL;
}

bool store_holds(const struct store *s, const struct zrec *r, uint64_t addr)
{
	for (struct zhold *h = zholds_next(&s->holds, r->key, r->klen, NULL); h;
	     h = zholds_next(&s->holds, r->key, r->klen, h)) {
		struct zloc *l = h->seq == r->seq ? held_loc(h, r->chunk) : NULL;

		if (l && l->addr == addr)
			return true;
	}
	return false;
}

void store_moved(struct store *s, const struct zrec *r, uint64_t from, struct zloc to)
{
	if (zidx_relocate(s->idx, r->key, r->klen, r->seq, r->chunk, from, to))
		zones_move_live(&s->zones, from, to, r->type == ZREC_DEL ? r->seq : 0);
	for (struct zhold *h = zholds_next(&s->holds, r->key, r->klen, NULL); h;
	     h = zholds_next(&s->holds, r->key, r->klen, h)) {
		struct zloc *l = h->seq == r->seq ? held_loc(h, r->chunk) : NULL;

		if (!l || l->addr != from)
			continue;
		*l = to;
		if (h->kind != ZH_GET) {
			zones_sub_pending(&s->zones, from, to.len);
			zones_add_pending(&s->zones, to.addr, to.len);
		} else if (container_of(h, struct zget, h)->dead) {
			s->zones.z[zones_of(&s->zones, from)].held -= to.len;
			s->zones.z[zones_of(&s->zones, to.addr)].held += to.len;
		}
	}
}

/* --- setup --- */

int store_zones_init(struct store *s, const struct zdev_zone *dz)
{
	int ret = zones_init(&s->zones, &s->dev->info, dz, s->cfg.open_zones);

	if (ret)
		return ret;
	s->zones.finish_fn = finish_zone;
	s->zones.arg = s;
	s->zq = calloc(s->zones.n, sizeof(*s->zq));
	s->zops = calloc(s->zones.n, sizeof(*s->zops));
	return s->zq && s->zops ? 0 : -ENOMEM;
}

int store_init(struct store *s, struct zdev *dev, struct zring *ring, struct zpool *pool,
	       const struct store_cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	s->dev = dev;
	s->ring = ring;
	s->pool = pool;
	s->cfg = *cfg;
	s->rec_max = MIN(dev->info.max_append, zpool_max(pool));
	s->unflushed_tail = &s->unflushed;
	s->space_tail = &s->space;
	s->waiters.tail = &s->waiters.head;
	s->next_seq = 1;
	s->rec_limit = s->rec_max;
	store_budget_init(&s->gets, pool->size / 2);
	s->idx = zidx_new();
	if (!s->idx || zholds_init(&s->holds) || gc_init(&s->gc, s, cfg->gc_policy))
		return -ENOMEM;
	return 0;
}

void store_tick(struct store *s)
{
	gc_kick(&s->gc);
}

void store_stop(struct store *s)
{
	gc_stop(&s->gc);
	/* Records waiting for room GC will no longer make fail now. */
	store_space_freed(s);
}

bool store_idle(const struct store *s)
{
	return !s->busy && gc_idle(&s->gc);
}

void store_done(struct store *s)
{
	gc_done(&s->gc);
	free(s->zq);
	free(s->zops);
	zholds_done(&s->holds);
	zidx_free(s->idx);
	zones_done(&s->zones);
	memset(s, 0, sizeof(*s));
}

void store_space(const struct store *s, struct store_space *sp)
{
	memset(sp, 0, sizeof(*sp));
	for (uint32_t i = 0; i < s->zones.n; i++) {
		const struct zone *z = &s->zones.z[i];

		if (z->state == ZS_META || z->state == ZS_CONV)
			continue;
		sp->zones++;
		/* The zones held back for deletes and GC hold no values. */
		if (sp->zones > ZONES_RESERVE)
			sp->capacity += z->cap;
		sp->used += MIN(z->used, z->cap);
		sp->live += z->live;
		switch (z->state) {
		case ZS_EMPTY:
			sp->empty++;
			break;
		case ZS_OPEN:
		case ZS_CLOSED:
		case ZS_FILLING:
			sp->open++;
			break;
		case ZS_FULL:
			sp->full++;
			break;
		default:
			sp->other++;
		}
	}
}
