/*
 * The index takes a put or delete once all its records have landed and,
 * with sync on, a flush issued after them has finished (group commit: one
 * flush covers every append completed before it). Not before a get received
 * earlier has its version: operations on one key take effect in the order
 * received.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void kick_flush(struct store *s);

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
void put_commit(struct zput *p)
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
	if (s->snaps)
		snap_commit(s, p->key, p->klen, &e, ret == 1 ? &old : NULL);
	if (ret == 1) {
		zones_add_entry(&s->zones, &e, true);
		if (old.seq) {
			zones_sub_entry(&s->zones, &old);
			get_keep_dead(s, p->key, p->klen, old.seq);
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

/* All the put's records ended and no more input comes: on to flush or the end. */
void put_settle(struct zput *p)
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
		put_commit(p);
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
			put_commit(p);
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
