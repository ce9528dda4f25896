/*
 * Puts and deletes: from the request to records on the device. A value is
 * cut into records as its bytes arrive; each record reserves room in a zone,
 * goes (alone, or gathered with others by store_batch.c), tries other zones
 * when one fails, or waits for room. Once every record has landed the put
 * goes on to store_commit.c.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void chunk_place(struct store *s, struct zchunk *c);

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

void put_end(struct zput *p, int err)
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
	if (s->snaps)
		snap_settle(s);
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

/* The chunk's buffer goes back; the feeder of a large value may hand in more. */
void chunk_release_buf(struct store *s, struct zchunk *c)
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
	store_buf_put(s, c->buf, c->alloc, p->budget);
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

/* The append of c ended with res, the record landing at addr (misplaced: where it cannot have). */
void chunk_complete(struct store *s, struct zchunk *c, int res, uint64_t addr, bool misplaced)
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
	} else if (misplaced) {
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

static void chunk_done(struct zdev_io *io)
{
	struct zchunk *c = container_of(io, struct zchunk, io);
	struct store *s = c->p->s;
	uint32_t zone = c->zone;

	uint32_t alen = store_block_up(s, c->len);
	bool misplaced = io->res >= 0 && store_landed(s, zone, io->addr, alen);

	if (io->res >= 0 && !misplaced)
		zones_add_dead(&s->zones, zone, alen - c->len);
	/* Before its put is answered: see batch_zone_ended. */
	batch_zone_ended(s, zone);
	chunk_complete(s, c, io->res, io->addr, misplaced);
}

static void chunk_append(struct store *s, struct zchunk *c)
{
	if (batch_add(s, c))
		return;
	s->zq[c->zone].appending++;
	c->io.done = chunk_done;
	zdev_append(s->dev, c->zone, c->buf, store_block_up(s, c->len), &c->io);
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
	struct zput *p = c->p;
	enum zone_class cls = p->type == ZREC_DEL ? ZC_DEL : ZC_PUT;
	uint64_t meta = zones_entry_meta(p->klen, p->nchunks > 1);
	/* A whole append's room, as it may go alone; store_batch.c gives back what packing saves.
	 */
	uint32_t len = store_block_up(s, c->len);
	bool small = c->len <= BATCH_SMALL;
	int ret;

	/* Small records keep to one zone, where they pack together. */
	if (small && s->small_zone != UINT32_MAX &&
	    !zones_reserve_at(&s->zones, cls, s->small_zone, len, meta)) {
		c->zone = s->small_zone;
		return 0;
	}
	ret = zones_reserve(&s->zones, cls, len, meta, &c->zone);
	if (!ret && small)
		s->small_zone = c->zone;
	return ret;
}

/*
 * No room now: wait if GC or zones being finished will make some, else the
 * device is full; snapshots holding old versions give their room up first.
 */
static bool room_coming(struct store *s, int err)
{
	if (err == -ENOSPC && !gc_can_free(&s->gc) && snap_drop_holders(s))
		gc_kick(&s->gc);
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
	/* Alone, the append is the record and zeros to the block: padding, to a reader. */
	memset((uint8_t *)c->buf + c->len, 0, store_block_up(s, c->len) - c->len);
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
	/* One record if the value fits in one, else chunks that carry the extension. */
	p->dmax = zrec_data_max(s->rec_max, false, klen);
	if (vlen > p->dmax)
		p->dmax = zrec_data_max(s->rec_max, true, klen);
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

int store_put_begin(struct store *s, const void *key, size_t klen, uint64_t vlen,
		    struct store_budget *b, zput_fn done, void *arg, struct zput **out)
{
	int ret = store_check_key(klen);

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
		uint32_t alloc = store_block_up(s, zrec_len(p->nchunks > 1, p->klen, dlen));
		void *buf;

		if (p->held + alloc > PUT_MAX_HELD) {
			p->held_waiter = w;
			return NULL;
		}
		buf = store_buf_get(s, alloc, p->budget, w);
		if (!buf)
			return NULL;
		c = calloc(1, sizeof(*c));
		if (!c) {
			store_buf_put(s, buf, alloc, p->budget);
			put_stop_input(p, -ENOMEM);
			return NULL;
		}
		*c =
		    (struct zchunk){ .p = p, .buf = buf, .alloc = alloc, .idx = idx, .dlen = dlen };
		p->cur = c;
		p->held += alloc;
	}
	*room = c->dlen - c->filled;
	return (uint8_t *)zrec_data(c->buf, p->nchunks > 1, p->klen) + c->filled;
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
	int ret = store_check_key(klen);

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
