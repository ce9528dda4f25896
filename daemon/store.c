/*
 * The store's frame: setting it up and down, buffer memory and who waits
 * for it, and the totals over its zones. A record's life runs through the
 * other store_*.c files, each one stage of it: store_put.c (a put or delete
 * and its records, until they land), store_batch.c (records gathered into
 * one append), store_commit.c (the index takes them, in the order received,
 * after the flush), store_get.c (reading a version back), store_held.c (what
 * operations in flight hold, for GC) and store_finish.c (a zone's end: its
 * summary and finish).
 */
#include "store_int.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void store_wait_on(struct wait_list *l, struct store_waiter *w)
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
void store_wake(struct wait_list *l)
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
void *store_buf_get(struct store *s, uint32_t len, struct store_budget *b, struct store_waiter *w)
{
	void *buf;

	if (b && b->held && b->held + len > b->limit) {
		if (w)
			store_wait_on(&b->waiting, w);
		return NULL;
	}
	buf = zpool_alloc(s->pool, len);
	if (!buf) {
		if (w)
			store_wait_on(&s->waiters, w);
		return NULL;
	}
	if (b)
		b->held += len;
	return buf;
}

void store_buf_put(struct store *s, void *buf, uint32_t len, struct store_budget *b)
{
	zpool_free(s->pool, buf, len);
	if (b) {
		b->held -= len;
		if (b->waiting.head)
			store_wake(&b->waiting);
	}
	if (s->waiters.head)
		store_wake(&s->waiters);
}

const char *store_strerror(int err)
{
	switch (err) {
	case -ENOENT:
		return "key not found";
	case -ENOSPC:
		return "no space left on the device";
	case -ESTALE:
		return "the snapshot is gone: take a new one";
	case -EBUSY:
	case -ENOMEM:
		return "the daemon is out of memory for this request; retry";
	case -EIO:
		return "device I/O error";
	case -EBADMSG:
		return "stored data failed its checksum";
	case -EROFS:
		return "the device is read-only";
	case -EINVAL:
		return "empty key";
	case -E2BIG:
		return "key longer than 1024 bytes, or value over --max-value";
	default:
		return strerror(-err);
	}
}

void store_limit_message(const struct store *s, char *buf, size_t len, size_t klen, uint64_t vlen)
{
	if (klen > ZAP_KEY_MAX)
		snprintf(buf, len, "key of %zu bytes exceeds the limit of %u", klen, ZAP_KEY_MAX);
	else
		snprintf(buf, len, "value of %llu bytes exceeds the limit of %llu (--max-value)",
			 (unsigned long long)vlen, (unsigned long long)s->cfg.max_value);
}

int store_check_key(size_t klen)
{
	if (klen == 0)
		return -EINVAL;
	return klen > ZAP_KEY_MAX ? -E2BIG : 0;
}

/* --- setup --- */

int store_zones_init(struct store *s, const struct zdev_zone *dz)
{
	int ret = zones_init(&s->zones, &s->dev->info, dz, zsuper_block(&s->sb), s->cfg.open_zones);

	if (ret)
		return ret;
	s->zones.finish_fn = store_finish_zone;
	s->zones.arg = s;
	s->zq = calloc(s->zones.n, sizeof(*s->zq));
	s->due = calloc(s->zones.n, sizeof(*s->due));
	s->held = calloc(s->zones.n, sizeof(*s->held));
	s->small_zone = UINT32_MAX;
	s->zops = calloc(s->zones.n, sizeof(*s->zops));
	return s->zq && s->due && s->held && s->zops ? 0 : -ENOMEM;
}

int store_init(struct store *s, struct zdev *dev, struct zring *ring, struct zpool *pool,
	       const struct store_cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	s->dev = dev;
	s->ring = ring;
	ring->turn_end = batch_turn_end;
	ring->turn_end_arg = s;
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
	if (!s->idx || zholds_init(&s->holds) ||
	    gc_init(&s->gc, s, dev, ring, &s->zones, s->idx, cfg->gc_policy))
		return -ENOMEM;
	return 0;
}

uint64_t store_next_seq(const struct store *s)
{
	return s->next_seq;
}

bool store_space_short(const struct store *s)
{
	return s->space_waiters;
}

bool store_broken(const struct store *s)
{
	return s->dev_broken;
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
	if (s->ring)
		s->ring->turn_end = NULL;
	if (s->hold_ev)
		event_free(s->hold_ev);
	gc_done(&s->gc);
	free(s->zq);
	free(s->due);
	free(s->held);
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
