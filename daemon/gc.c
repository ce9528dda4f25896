#include "gc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "store.h"

#define WINDOW	 (1u << 20)
#define PACE_NS	 2000000 /* between windows when space is not short */
#define RETRY_NS 1000000 /* waiting for gets still reading the victim */
#define NONE	 UINT32_MAX

enum { GC_IDLE, GC_SCAN, GC_CKPT, GC_FLUSH, GC_RESET };

struct gc_drop {
	struct gc_drop *next;
	uint64_t seq;
	uint16_t klen;
	uint8_t key[];
};

/* One live record on its way from the window to GC's zone. */
struct gc_copy {
	struct zdev_io io;
	struct gc *g;
	uint64_t from;
	uint32_t zone;
	struct zrec r; /* key points into the window, alive until the copy ends */
};

static void step(struct gc *g);

int gc_init(struct gc *g, struct store *s, enum gc_policy policy)
{
	memset(g, 0, sizeof(*g));
	g->s = s;
	g->policy = policy;
	g->victim = NONE;
	g->rng = (uintptr_t)g ^ 0x9e3779b97f4a7c15ull;
	/*
	 * GC's buffers are its own: puts waiting for the room GC makes may hold the
	 * whole pool, and GC must not wait for them.
	 */
	if (posix_memalign((void **)&g->win, ZREC_BLOCK, WINDOW) ||
	    posix_memalign(&g->ckpt, ZREC_BLOCK, ZREC_BLOCK))
		return -ENOMEM;
	return 0;
}

static void free_drops(struct gc *g)
{
	while (g->drops) {
		struct gc_drop *d = g->drops;

		g->drops = d->next;
		free(d);
	}
}

void gc_done(struct gc *g)
{
	free_drops(g);
	free(g->win);
	free(g->ckpt);
}

bool gc_idle(const struct gc *g)
{
	return g->state == GC_IDLE;
}

void gc_stop(struct gc *g)
{
	g->stopping = true;
}

/*
 * Start when the empty zones run low. Every empty zone kept waiting is room
 * live data cannot use, which raises the utilisation of the others and so the
 * cost of cleaning them: keep just enough that puts need not wait.
 */
static unsigned low_water(const struct zones *zs)
{
	return ZONES_RESERVE + 2;
}

static double score(const struct gc *g, const struct zone *z)
{
	double u = (double)z->live / z->cap;
	double age = (double)(g->s->next_seq - z->max_seq) + 1;

	if (g->policy == GC_GREEDY)
		return 1 - u;
	return (1 - u) * age / (1 + u);
}

/* What GC can copy into without taking room from anyone: its zone's rest, and empty zones. */
static uint64_t gc_room(const struct zones *zs)
{
	uint64_t room = 0;
	const struct zone *z = zs->gc_zone != NONE ? &zs->z[zs->gc_zone] : NULL;

	/* Zone by zone: capacities may differ, and an offline zone's says nothing. */
	for (uint32_t i = 0; i < zs->n; i++) {
		if (zs->z[i].state == ZS_EMPTY && zs->z[i].cap > ZSUM_BASE_RESERVE)
			room += zs->z[i].cap - ZSUM_BASE_RESERVE;
	}

	if (z && z->used + z->meta + ZSUM_BASE_RESERVE < z->cap)
		room += z->cap - z->used - z->meta - ZSUM_BASE_RESERVE;
	return room;
}

/*
 * The best zone to reclaim, or NONE. A victim must win back something (a
 * 64th of a zone at least), and its live data must fit where GC can copy it,
 * or GC would stall halfway with no room left to finish.
 */
static uint32_t pick_victim(const struct gc *g)
{
	const struct zones *zs = &g->s->zones;
	uint64_t room = gc_room(zs);
	uint32_t best = NONE;
	double best_score = 0;

	for (uint32_t i = 0; i < zs->n; i++) {
		const struct zone *z = &zs->z[i];
		double sc;

		if (z->state != ZS_FULL || z->live + z->cap / 64 >= z->cap ||
		    z->live + z->live / 32 > room)
			continue;
		sc = score(g, z);
		if (best == NONE || sc > best_score) {
			best = i;
			best_score = sc;
		}
	}
	return best;
}

bool gc_can_free(const struct gc *g)
{
	return g->state != GC_IDLE || (!g->stopping && pick_victim(g) != NONE);
}

static bool urgent(const struct gc *g)
{
	return g->s->space_waiters || zones_empty(&g->s->zones) <= ZONES_RESERVE;
}

/* Starts below the low water mark, goes on until two zones above it. */
static bool wanted(struct gc *g)
{
	const struct zones *zs = &g->s->zones;
	unsigned empty = zones_empty(zs);

	if (g->s->space_waiters || empty < low_water(zs))
		g->running = true;
	else if (empty >= low_water(zs) + 2)
		g->running = false;
	return g->running;
}

void gc_kick(struct gc *g)
{
	struct zones *zs = &g->s->zones;

	if (g->state != GC_IDLE || g->stopping || !wanted(g))
		return;
	g->victim = pick_victim(g);
	if (g->victim == NONE)
		return;
	zs->z[g->victim].state = ZS_RECLAIMING;
	g->pos = 0;
	g->failed = false;
	g->state = GC_SCAN;
	step(g);
}

/* --- pacing --- */

static void prep_timer(struct zring_op *op, struct io_uring_sqe *sqe)
{
	struct gc *g = container_of(op, struct gc, timer);

	io_uring_prep_timeout(sqe, &g->ts, 0, 0);
}

static void timer_done(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	step(container_of(op, struct gc, timer));
}

static uint64_t next_rand(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void step_later(struct gc *g, long ns)
{
	/* Jitter of +-25%, so that GC does not fall in step with a periodic load. */
	ns += (long)(next_rand(&g->rng) % (ns / 2 + 1)) - ns / 4;
	g->ts = (struct __kernel_timespec){ .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
	g->timer.prep = prep_timer;
	g->timer.complete = timer_done;
	zring_queue(g->s->ring, &g->timer);
}

/* --- the end of a victim --- */

static void finish_victim(struct gc *g, bool reclaimed)
{
	struct store *s = g->s;
	struct zone *z = &s->zones.z[g->victim];

	if (reclaimed) {
		zones_reset_done(&s->zones, g->victim);
		for (struct gc_drop *d = g->drops; d; d = d->next)
			g->tombstones_dropped += zidx_forget(s->idx, d->key, d->klen, d->seq);
		g->zones_reclaimed++;
	} else {
		z->state = ZS_FULL;
		g->victims_given_up++;
	}
	free_drops(g);
	g->victim = NONE;
	g->state = GC_IDLE;
	store_space_freed(s);
	gc_kick(g);
}

static void reset_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);

	finish_victim(g, io->res >= 0);
}

static void flush_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);

	if (io->res < 0) {
		finish_victim(g, false);
		return;
	}
	g->state = GC_RESET;
	step(g);
}

static void ckpt_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);

	zones_append_done(&g->s->zones, g->ckpt_zone);
	if (io->res < 0) {
		finish_victim(g, false);
		return;
	}
	g->state = GC_FLUSH;
	step(g);
}

/* The victim may hold the highest sequence number on the device: keep it elsewhere first. */
static void checkpoint(struct gc *g)
{
	struct store *s = g->s;
	struct zrec r = { .type = ZREC_SEQ, .seq = s->next_seq - 1 };

	if (zones_reserve(&s->zones, ZC_GC, ZREC_BLOCK, 0, &g->ckpt_zone)) {
		finish_victim(g, false);
		return;
	}
	zrec_seal(g->ckpt, &r, s->tag);
	g->io.done = ckpt_done;
	zdev_append(s->dev, g->ckpt_zone, g->ckpt, ZREC_BLOCK, &g->io);
}

/* --- copying --- */

static void copy_done(struct zdev_io *io)
{
	struct gc_copy *cp = container_of(io, struct gc_copy, io);
	struct gc *g = cp->g;
	struct store *s = g->s;
	struct zloc to = { io->addr, cp->r.len };

	zones_append_done(&s->zones, cp->zone);
	if (io->res < 0 || zones_of(&s->zones, io->addr) != cp->zone) {
		zones_note_failed(&s->zones, cp->zone, cp->r.key, cp->r.klen);
		if (io->res != -EDQUOT)
			zones_retire(&s->zones, cp->zone);
		g->failed = true;
	} else {
		/* On the media now, moved or not: its zone's summary and filter must list it. */
		zones_note(&s->zones, &cp->r, io->addr);
		if (zidx_relocate(s->idx, cp->r.key, cp->r.klen, cp->r.seq, cp->r.chunk, cp->from,
				  to)) {
			zones_sub_live(&s->zones, cp->from, cp->r.len);
			zones_add_live(&s->zones, io->addr, cp->r.len);
		}
		g->bytes_moved += cp->r.len;
		g->records_moved++;
	}
	free(cp);
	if (--g->copies == 0)
		step(g);
}

static int copy(struct gc *g, const struct zrec *r, uint64_t from, const void *rec)
{
	struct store *s = g->s;
	struct gc_copy *cp = calloc(1, sizeof(*cp));
	int ret;

	if (!cp)
		return -ENOMEM;
	cp->g = g;
	cp->r = *r;
	cp->from = from;
	ret = zones_reserve(&s->zones, ZC_GC, r->len, r->klen, &cp->zone);
	if (ret) {
		free(cp);
		return ret;
	}
	g->copies++;
	cp->io.done = copy_done;
	/* The record is copied as it is: it says nothing about where it lies. */
	zdev_append(s->dev, cp->zone, (void *)rec, r->len, &cp->io);
	return 0;
}

static bool is_live(const struct gc *g, const struct zrec *r, uint64_t addr)
{
	struct zent e;

	if (!zidx_get(g->s->idx, r->key, r->klen, &e) || e.seq != r->seq)
		return false;
	if (r->type == ZREC_DEL)
		return !e.nchunks && e.loc.addr == addr;
	return r->chunk < e.nchunks && zent_chunk(&e, r->chunk)->addr == addr;
}

/* A tombstone may go when nothing it hides can be left anywhere, now or later. */
static bool tombstone_droppable(const struct gc *g, const struct zrec *r)
{
	return store_oldest_put(g->s) > r->seq &&
	       !zones_may_hold(&g->s->zones, g->victim, r->key, r->klen);
}

static int drop_later(struct gc *g, const struct zrec *r)
{
	struct gc_drop *d = malloc(sizeof(*d) + r->klen);

	if (!d)
		return -ENOMEM;
	d->seq = r->seq;
	d->klen = r->klen;
	memcpy(d->key, r->key, r->klen);
	d->next = g->drops;
	g->drops = d;
	return 0;
}

static int handle(struct gc *g, const struct zrec *r, uint64_t addr, const uint8_t *rec)
{
	if ((r->type != ZREC_PUT && r->type != ZREC_DEL) || !is_live(g, r, addr))
		return 0;
	if (r->type == ZREC_DEL && tombstone_droppable(g, r))
		return drop_later(g, r);
	return copy(g, r, addr, rec);
}

/* Goes through the window's records; returns how many bytes of it were dealt with. */
static uint32_t sweep(struct gc *g)
{
	struct store *s = g->s;
	uint64_t zstart = s->zones.z[g->victim].start;
	uint32_t off = 0;
	struct zrec r;

	while (off + ZREC_BLOCK <= g->win_len && !g->failed) {
		if (zrec_parse(g->win + off, g->win_len - off, s->tag, &r)) {
			off += ZREC_BLOCK;
			continue;
		}
		if (off + r.len > g->win_len) {
			/* Straddles the window's end: the next window starts with it. */
			if (off)
				break;
			off += ZREC_BLOCK;
			continue;
		}
		if (handle(g, &r, zstart + g->pos + off, g->win + off))
			g->failed = true;
		off += r.len;
	}
	return off;
}

static void read_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);

	if (io->res < 0)
		g->failed = true;
	else
		g->pos += sweep(g);
	if (!g->copies)
		step(g);
}

static void scan_next(struct gc *g)
{
	struct store *s = g->s;
	struct zone *z = &s->zones.z[g->victim];

	if (g->failed || g->stopping) {
		finish_victim(g, false);
		return;
	}
	if (g->pos >= z->cap) {
		g->state = GC_CKPT;
		step(g);
		return;
	}
	g->win_len = MIN(WINDOW, z->cap - g->pos);
	g->io.done = read_done;
	zdev_read(s->dev, z->start + g->pos, g->win, g->win_len, &g->io);
}

/* Moves the victim on by one stage; every completion comes back here. */
static void step(struct gc *g)
{
	struct store *s = g->s;

	switch (g->state) {
	case GC_SCAN:
		if (g->pos && !g->paced && !urgent(g) && !g->stopping) {
			/* Paced: the next window a little later, so that requests flow meanwhile.
			 */
			g->paced = true;
			step_later(g, PACE_NS);
			return;
		}
		g->paced = false;
		scan_next(g);
		break;
	case GC_CKPT:
		checkpoint(g);
		break;
	case GC_FLUSH:
		g->io.done = flush_done;
		zdev_flush(s->dev, &g->io);
		break;
	case GC_RESET:
		if (s->zones.z[g->victim].readers) {
			step_later(g, RETRY_NS);
			return;
		}
		g->io.done = reset_done;
		zdev_reset(s->dev, g->victim, &g->io);
		break;
	}
}
