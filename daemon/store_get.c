/*
 * Gets: the version is the index's once every put and delete of the key
 * received before the get has ended; its records are read one at a time,
 * verified, and handed out. Only the read in flight pins its zone.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void get_read(struct zget *g);

/* --- puts --- */

void get_begin(struct zget *g);

/*
 * The version seq of key died, yet gets in flight still read it: its bytes
 * stay in its zones' keep, so that GC moves them once for those gets
 * rather than taking them for garbage and moving them round and round.
 */
void get_keep_dead(struct store *s, const void *key, size_t klen, uint64_t seq)
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
		store_buf_put(s, g->buf, g->alloc, g->budget);
		s->gets.held -= g->alloc;
		if (s->gets.waiting.head)
			store_wake(&s->gets.waiting);
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
		put_commit(p);
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

static void get_wake(struct store_waiter *w)
{
	get_read(container_of(w, struct zget, w));
}

/* The record read back is the one the index named, whole and unaltered. */
static int get_verify(struct zget *g, const struct zloc *l, struct zrec *r)
{
	if (zrec_parse((uint8_t *)g->buf + g->boff, l->len, g->s->tag, r) || r->type != ZREC_PUT ||
	    r->len != l->len || r->klen != g->klen || memcmp(r->key, g->key, g->klen) ||
	    r->seq != g->seq || (g->next && r->vlen != g->vlen) || r->chunk != g->next ||
	    r->nchunks != g->nchunks)
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
	c = (struct zget_chunk){ .seq = g->seq,
				 .vlen = g->vlen,
				 .voff = r.voff,
				 .data = r.data,
				 .dlen = r.dlen,
				 .last = g->next + 1 == g->nchunks };
	/* Once: a chunk released unused is read again. */
	if (c.last && !g->counted) {
		g->counted = true;
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
		return posix_memalign(&g->buf, ZDEV_BLOCK_MAX, len) ? NULL : g->buf;
	/* Gets together hold at most their share of the pool, one always may. */
	if (all->held && all->held + len > all->limit) {
		store_wait_on(&all->waiting, &g->w);
		return NULL;
	}
	buf = store_buf_get(s, len, g->budget, &g->w);
	if (buf)
		all->held += len;
	return buf;
}

/*
 * Only the read in flight pins its zone: GC moves a record a get holds and
 * tells the get, so a client reading slowly holds up no reset. The read
 * covers the blocks the record lies in: records share blocks.
 */
static void get_read(struct zget *g)
{
	const struct zloc *l = &g->locs[g->next];
	struct store *s = g->s;
	uint64_t at = l->addr / s->zones.block * s->zones.block;
	uint32_t len = store_block_up(s, l->addr + l->len) - at;

	g->boff = l->addr - at;
	g->buf = get_buf(g, len);
	if (!g->buf && !g->heap)
		return;
	g->rd_zone = zones_of(&s->zones, l->addr);
	s->zones.z[g->rd_zone].readers++;
	g->reading = true;
	g->io.done = get_read_done;
	if (g->buf)
		zdev_read(s->dev, at, g->buf, len, &g->io);
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

		if (h->seq < g->barrier &&
		    (h->kind == ZH_DEL || (h->kind == ZH_PUT && p->input_done)))
			return p;
	}
	return NULL;
}

/*
 * The version to read: the index's, once what was received before the get
 * has ended, or the snapshot's (nothing it covers is in flight).
 */
static int get_find(struct zget *g, const struct zsnap *at)
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
	if (at ? !snap_find(at, g->key, g->klen, &e)
	       : !zidx_get(s->idx, g->key, g->klen, &e) || !e.nchunks)
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
void get_begin(struct zget *g)
{
	int err = get_find(g, NULL);

	if (err) {
		get_settled(g);
		get_fail(g, err);
	}
}

int store_get(struct store *s, const struct zsnap *at, const void *key, size_t klen,
	      struct store_budget *b, zget_fn fn, void *arg, struct zget **out)
{
	struct zget *g;
	int ret = store_check_key(klen);

	if (ret)
		return ret;
	g = calloc(1, sizeof(*g) + klen);
	if (!g)
		return -ENOMEM;
	*g = (struct zget){ .s = s,
			    .fn = fn,
			    .arg = arg,
			    .barrier = at ? store_snap_seq(at) + 1 : s->next_seq,
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
	ret = get_find(g, at);
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

void store_get_release(struct zget *g)
{
	get_buf_put(g);
}

void store_get_reread(struct zget *g)
{
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

/*
 * A read in flight ends later, perhaps after its caller's budget (the
 * connection's) is gone: the buffer is uncharged from it now.
 */
static void get_unbudget(struct zget *g)
{
	struct store_budget *b = g->budget;

	g->budget = NULL;
	if (!g->buf || g->heap || !b)
		return;
	b->held -= g->alloc;
	if (b->waiting.head)
		store_wake(&b->waiting);
}

void store_get_abort(struct zget *g)
{
	store_wait_cancel(&g->w);
	if (g->wait_on)
		unwait(g);
	get_settled(g);
	if (g->reading) {
		g->aborted = true;
		get_unbudget(g);
	} else {
		get_free(g);
	}
}
