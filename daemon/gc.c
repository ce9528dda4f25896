#include "gc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define WINDOW	  (1u << 20)
#define PACE_NS	  2000000 /* between windows when space is not short */
#define NONE	  UINT32_MAX
#define COPY_KLEN 64 /* a key's length, as far as a copy's summary entry costs */

enum { GC_IDLE, GC_SCAN, GC_UNDO, GC_CKPT, GC_FLUSH, GC_RESET };

struct gc_drop {
	struct gc_drop *next;
	uint64_t seq;
	uint16_t klen;
	uint8_t key[];
};

/* A live record copied into a pack, from where it lay in the victim. */
struct gc_rec {
	struct zrec r; /* key points into the pack */
	uint64_t from;
	uint32_t off; /* in the pack */
};

/* Live records packed back to back, on their way to GC's zone in one append. */
struct gc_pack {
	struct zdev_io io;
	struct gc *g;
	uint32_t zone;
	uint8_t *buf;
	uint32_t len;
	uint64_t meta; /* summary room its records' entries reserve */
	uint32_t n, cap;
	struct gc_rec *recs;
};

static void step(struct gc *g);

void gc_mount(struct gc *g, uint64_t tag, uint32_t rec_max, uint32_t rec_limit)
{
	g->tag = tag;
	g->rec_max = rec_max;
	g->rec_limit = rec_limit;
}

int gc_init(struct gc *g, struct store *s, struct zdev *dev, struct zring *ring,
	    struct zones *zones, struct zidx *idx, enum gc_policy policy)
{
	memset(g, 0, sizeof(*g));
	g->s = s;
	g->dev = dev;
	g->ring = ring;
	g->zones = zones;
	g->idx = idx;
	g->policy = policy;
	g->victim = NONE;
	g->rng = (uintptr_t)g ^ 0x9e3779b97f4a7c15ull;
	/*
	 * GC's buffers are its own: puts waiting for the room GC makes may hold the
	 * whole pool, and GC must not wait for them. The window is sized at the
	 * first victim, once the format's largest record is known.
	 */
	if (posix_memalign(&g->ckpt, ZDEV_BLOCK_MAX, ZDEV_BLOCK_MAX))
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

/*
 * Room a full zone never had written beyond what filling it leaves unused
 * (a record's worth at most, and its summary): a zone finished early, as one
 * retired after a failed append, or closed at start beyond the device's
 * limits. Reclaiming it wins that room too.
 */
static uint64_t slack(const struct gc *g, const struct zone *z)
{
	uint64_t filled = z->data_end + z->meta + ZSUM_BASE_RESERVE + g->rec_max;

	return z->cap > filled ? z->cap - filled : 0;
}

/* What reclaiming z is expected to win: its dead records, tombstones worth a try, its slack. */
static uint64_t gain_of(const struct gc *g, const struct zone *z)
{
	return zone_garbage(z) + z->tombs + slack(g, z);
}

/* What reclaiming z wins for what it costs (copying the rest). */
static double score(const struct gc *g, const struct zone *z)
{
	double u = (double)zone_keep(z) / z->cap;
	double gain = (double)gain_of(g, z) / z->cap;
	double age = (double)(store_next_seq(g->s) - z->max_seq) + 1;

	if (g->policy == GC_GREEDY)
		return gain;
	return gain * age / (1 + u);
}

/*
 * Whether reclaiming z gains room net of what GC writes. The zone's unused
 * end and its summary are no gain: the copies leave the same in GC's zone.
 * What they cost besides their bytes: their entries in that zone's summary,
 * and their share of its unused end (half a record, on average, each time it
 * fills). Without this a full store of live data is copied round and round
 * for nothing.
 */
static bool worth(const struct gc *g, const struct zone *z)
{
	uint64_t keep = zone_keep(z), avg = z->nrecs ? z->recs / z->nrecs : g->zones->block;
	double copies = (double)keep / MAX(avg, ZREC_ALIGN);
	uint64_t cost = (uint64_t)(copies * zones_entry_meta(COPY_KLEN, false) +
				   (double)keep / z->cap * z->max_rec / 2);

	return gain_of(g, z) >= z->cap / 64 + cost && gain_of(g, z) > z->stuck;
}

/* What GC can copy into without taking room from anyone: its zone's rest, and empty zones. */
/* Room left in a zone for records of up to rec bytes: one may not fit at its end. */
static uint64_t zone_room(const struct zone *z, uint64_t rec)
{
	uint64_t taken = z->used + z->meta + ZSUM_BASE_RESERVE + rec;

	return taken < z->cap ? z->cap - taken : 0;
}

/*
 * What GC can copy records of up to rec bytes into without taking room from
 * anyone: its zone's rest, and the zones taking no appends, empty or partly
 * written. Zone by zone: capacities may differ, and an offline zone's says
 * nothing.
 */
static uint64_t gc_room(const struct zones *zs, uint64_t rec)
{
	uint64_t room = 0;

	for (uint32_t i = 0; i < zs->n; i++) {
		if (zs->z[i].state == ZS_EMPTY || zs->z[i].state == ZS_CLOSED)
			room += zone_room(&zs->z[i], rec);
	}
	if (zs->gc_zone != NONE)
		room += zone_room(&zs->z[zs->gc_zone], rec);
	return room;
}

/*
 * The zone holding the newest record on the device, if only one does: a
 * reset of it would take the sequence counter's high mark with it, and a
 * checkpoint must keep it. NONE if none or several.
 */
static uint32_t newest_zone(const struct zones *zs)
{
	uint64_t top = 0;
	uint32_t zone = NONE;

	for (uint32_t i = 0; i < zs->n; i++) {
		uint64_t seq = zs->z[i].state == ZS_EMPTY ? 0 : zs->z[i].max_seq;

		if (seq > top) {
			top = seq;
			zone = i;
		} else if (seq == top) {
			zone = NONE;
		}
	}
	return zone;
}

/* GC's room for records of up to rec bytes; victims share a few record lengths. */
struct room_memo {
	uint64_t rec[4], room[4];
	unsigned n;
};

static uint64_t room_for(const struct zones *zs, struct room_memo *m, uint64_t rec)
{
	uint64_t room;

	for (unsigned i = 0; i < m->n; i++) {
		if (m->rec[i] == rec)
			return m->room[i];
	}
	room = gc_room(zs, rec);
	if (m->n < ARRAY_SIZE(m->rec)) {
		m->rec[m->n] = rec;
		m->room[m->n++] = room;
	}
	return room;
}

static uint32_t pick_victim(const struct gc *g)
{
	const struct zones *zs = g->zones;
	uint32_t best = NONE, newest = newest_zone(zs);
	struct room_memo memo = { .n = 0 };
	double best_score = 0;

	for (uint32_t i = 0; i < zs->n; i++) {
		const struct zone *z = &zs->z[i];
		uint64_t keep = z->live + z->pending + z->held;
		double sc;

		if (z->state != ZS_FULL || !worth(g, z))
			continue;
		/* Room for all of it (a tombstone expected to go may stay) and the checkpoint. */
		keep += keep / 32 + (i == newest ? zs->block : 0);
		if (keep > room_for(zs, &memo, keep ? z->max_rec : 0))
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

/* No window: no victim (GC tries again at the next kick). */
static bool window(struct gc *g)
{
	/* A record that starts late in its block still fits whole. */
	uint32_t len = MAX(WINDOW, g->rec_limit + ZDEV_BLOCK_MAX);

	if (g->win && g->win_cap >= len)
		return true;
	free(g->win);
	g->win_cap = 0;
	if (posix_memalign((void **)&g->win, ZDEV_BLOCK_MAX, len)) {
		g->win = NULL;
		return false;
	}
	g->win_cap = len;
	return true;
}

static bool urgent(const struct gc *g)
{
	return store_space_short(g->s) || zones_empty(g->zones) <= ZONES_RESERVE;
}

/* Starts below the low water mark, goes on until two zones above it. */
static bool wanted(struct gc *g)
{
	const struct zones *zs = g->zones;
	unsigned empty = zones_empty(zs);

	if (store_space_short(g->s) || empty < low_water(zs))
		g->running = true;
	else if (empty >= low_water(zs) + 2)
		g->running = false;
	return g->running;
}

void gc_kick(struct gc *g)
{
	struct zones *zs = g->zones;

	if (g->state != GC_IDLE || g->stopping || store_broken(g->s) || !wanted(g) || !window(g))
		return;
	g->victim = pick_victim(g);
	if (g->victim == NONE)
		return;
	zs->z[g->victim].state = ZS_RECLAIMING;
	g->pos = 0;
	g->failed = g->lost_target = false;
	g->pass++;
	g->ntargets = 0;
	/* Dead records, not just moved ones, go with it: tombstones kept for them may go too. */
	g->dead = zone_garbage(&zs->z[g->victim]) > 0;
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
	zring_queue(g->ring, &g->timer);
}

/* --- the end of a victim --- */

/*
 * A victim given up is not tried again for nothing: only once more of it has
 * died, or GC has reclaimed another zone (there is more room to copy into,
 * and a fault may have passed).
 */
static void finish_victim(struct gc *g, bool reclaimed)
{
	struct store *s = g->s;
	struct zones *zs = g->zones;

	if (reclaimed) {
		zones_reset_done(zs, g->victim, g->dead);
		for (struct gc_drop *d = g->drops; d; d = d->next)
			g->tombstones_dropped += zidx_forget(g->idx, d->key, d->klen, d->seq);
		g->zones_reclaimed++;
		for (uint32_t i = 0; i < zs->n; i++)
			zs->z[i].stuck = 0;
	} else {
		zs->z[g->victim].state = ZS_FULL;
		zs->z[g->victim].stuck = gain_of(g, &zs->z[g->victim]);
		g->victims_given_up++;
	}
	free_drops(g);
	g->victim = NONE;
	g->state = GC_IDLE;
	store_space_freed(s);
	gc_kick(g);
}

/*
 * The victim is given up. When a zone its copies went to failed or ran out
 * of room, that zone may have been the last one GC had: the copies there go
 * back to the victim's records (still on the media, as it was not reset), so
 * that the zone holds none of this victim. Otherwise a device failing an
 * append now and then could leave every zone full, mostly of dead records,
 * with nowhere to copy the rest. Copies of victims reclaimed before stay:
 * their originals are gone. The zone GC still appends to keeps its copies.
 */
static void give_up(struct gc *g)
{
	uint32_t open = g->zones->gc_zone;

	if (open != NONE && g->zones->z[open].gc_pass == g->pass) {
		g->zones->z[open].gc_pass = 0;
		g->ntargets--;
	}
	if (!g->lost_target || !g->ntargets || g->stopping || g->state == GC_UNDO) {
		finish_victim(g, false);
		return;
	}
	g->undo_end = g->pos;
	g->pos = 0;
	g->failed = false;
	g->state = GC_UNDO;
	step(g);
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

/*
 * A copy failed: the victim is given up. A record longer than the device now
 * takes in one append (written under a larger limit; -EINVAL) cannot move at
 * all, a full host file system or the active zone limit is no zone's fault;
 * any other error is GC's zone's.
 */
static void copy_failed(struct gc *g, uint32_t zone, int err)
{
	g->failed = true;
	if (err != -EINVAL && err != -E2BIG && err != -EDQUOT && err != -EBUSY) {
		zones_retire(g->zones, zone);
		g->lost_target = true;
	}
}

static void ckpt_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);

	zones_append_done(g->zones, g->ckpt_zone);
	if (io->res < 0) {
		copy_failed(g, g->ckpt_zone, io->res);
		give_up(g);
		return;
	}
	if (store_landed(g->s, g->ckpt_zone, io->addr, g->zones->block)) {
		finish_victim(g, false);
		return;
	}
	zones_add_dead(g->zones, g->ckpt_zone, g->zones->block);
	g->state = GC_FLUSH;
	step(g);
}

/* The victim may hold the highest sequence number on the device: keep it elsewhere first. */
static void checkpoint(struct gc *g)
{
	struct zrec r = { .type = ZREC_SEQ, .seq = store_next_seq(g->s) - 1 };

	if (newest_zone(g->zones) != g->victim) {
		g->state = GC_FLUSH;
		step(g);
		return;
	}
	if (zones_reserve(g->zones, ZC_GC, g->zones->block, 0, &g->ckpt_zone)) {
		g->lost_target = true;
		give_up(g);
		return;
	}
	memset(g->ckpt, 0, g->zones->block);
	zrec_seal(g->ckpt, &r, g->tag);
	g->io.done = ckpt_done;
	zdev_append(g->dev, g->ckpt_zone, g->ckpt, g->zones->block, &g->io);
}

/* --- copying --- */

static void add_target(struct gc *g, uint32_t zone)
{
	if (g->zones->z[zone].gc_pass != g->pass) {
		g->zones->z[zone].gc_pass = g->pass;
		g->ntargets++;
	}
}

static void pack_free(struct gc_pack *pk)
{
	if (!pk)
		return;
	free(pk->buf);
	free(pk->recs);
	free(pk);
}

static void pack_done(struct zdev_io *io)
{
	struct gc_pack *pk = container_of(io, struct gc_pack, io);
	struct gc *g = pk->g;
	struct store *s = g->s;
	uint32_t alen = zrec_block_up(pk->len, g->zones->block);
	bool ok = io->res >= 0 && !store_landed(s, pk->zone, io->addr, alen);

	zones_append_done(g->zones, pk->zone);
	if (ok) {
		zones_add_dead(g->zones, pk->zone, alen - pk->len);
		add_target(g, pk->zone);
	}
	for (uint32_t i = 0; i < pk->n; i++) {
		const struct gc_rec *c = &pk->recs[i];
		struct zloc to = { io->addr + c->off, c->r.len };

		if (io->res < 0) {
			zones_note_failed(g->zones, pk->zone, c->r.key, c->r.klen, c->r.seq);
			continue;
		}
		if (!ok)
			continue;
		/* On the media now, moved or not: its zone's summary and filter must list it. */
		zones_note(g->zones, &c->r, to.addr);
		store_moved(s, &c->r, c->from, to);
		g->bytes_moved += c->r.len;
		g->records_moved++;
	}
	if (io->res < 0)
		copy_failed(g, pk->zone, io->res);
	else if (!ok)
		g->failed = true;
	pack_free(pk);
	if (--g->copies == 0)
		step(g);
}

/* The pack goes to GC's zone; 0, or what kept it from going (the victim is given up). */
static int pack_submit(struct gc *g)
{
	struct gc_pack *pk = g->pack;
	uint32_t alen = zrec_block_up(pk->len, g->zones->block);
	int ret;

	g->pack = NULL;
	ret = zones_reserve(g->zones, ZC_GC, alen, pk->meta, &pk->zone);
	if (ret) {
		g->lost_target = true;
		pack_free(pk);
		return ret;
	}
	memset(pk->buf + pk->len, 0, alen - pk->len);
	g->copies++;
	pk->io.done = pack_done;
	zdev_append(g->dev, pk->zone, pk->buf, alen, &pk->io);
	return 0;
}

static struct gc_pack *pack_new(struct gc *g)
{
	struct gc_pack *pk = calloc(1, sizeof(*pk));

	if (!pk || posix_memalign((void **)&pk->buf, ZDEV_BLOCK_MAX, g->rec_max)) {
		free(pk);
		return NULL;
	}
	pk->g = g;
	return pk;
}

/*
 * Whether the pack goes before r joins it: it would grow past one append, or
 * past what GC's zone has left when it fits there now (the rest of that zone
 * would go unused).
 */
static bool pack_full(const struct gc *g, const struct gc_pack *pk, const struct zrec *r)
{
	uint64_t room = zones_gc_room(g->zones);
	uint64_t now = zrec_block_up(pk->len, g->zones->block),
		 then = zrec_block_up(pk->len + r->len, g->zones->block);
	uint64_t meta = zones_entry_meta(r->klen, r->nchunks > 1);

	return then > g->rec_max || (now + pk->meta <= room && then + pk->meta + meta > room);
}

/* The record (whole at rec) joins the pack, which goes first if it has no room left. */
static int copy(struct gc *g, const struct zrec *r, uint64_t from, const void *rec)
{
	struct gc_pack *pk = g->pack;
	struct gc_rec *c;
	int ret;

	/* Written under a larger limit than the device now takes: it cannot move. */
	if (r->len > g->rec_max)
		return -E2BIG;
	if (pk && pack_full(g, pk, r)) {
		ret = pack_submit(g);
		if (ret)
			return ret;
		pk = NULL;
	}
	if (!pk && !(pk = g->pack = pack_new(g)))
		return -ENOMEM;
	if (pk->n == pk->cap) {
		uint32_t cap = pk->cap ? 2 * pk->cap : 64;
		struct gc_rec *recs = reallocarray(pk->recs, cap, sizeof(*recs));

		if (!recs)
			return -ENOMEM;
		pk->recs = recs;
		pk->cap = cap;
	}
	c = &pk->recs[pk->n++];
	/* The record is copied as it is: it says nothing about where it lies. */
	memcpy(pk->buf + pk->len, rec, r->len);
	*c = (struct gc_rec){ .r = *r, .from = from, .off = pk->len };
	c->r.key = pk->buf + pk->len + (r->key - (const uint8_t *)rec);
	c->r.data = NULL;
	pk->len += r->len;
	pk->meta += zones_entry_meta(r->klen, r->nchunks > 1);
	return 0;
}

static bool is_live(const struct gc *g, const struct zrec *r, uint64_t addr)
{
	struct zent e;

	if (!zidx_get(g->idx, r->key, r->klen, &e) || e.seq != r->seq)
		return false;
	if (r->type == ZREC_DEL)
		return !e.nchunks && e.loc.addr == addr;
	return r->chunk < e.nchunks && zent_chunk(&e, r->chunk)->addr == addr;
}

/* A tombstone may go when nothing it hides can be left anywhere, now or later. */
static bool tombstone_droppable(const struct gc *g, const struct zrec *r)
{
	/*
	 * An operation in flight on the key may hold an older record in the
	 * victim itself, which GC then copies out: it would outlive its tombstone.
	 */
	return store_oldest_put(g->s) > r->seq && !store_key_held(g->s, r->key, r->klen) &&
	       !zones_may_hold(g->zones, g->victim, r->key, r->klen, r->seq);
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

/*
 * A record stays if the index points at it, or a put, delete or get in
 * flight holds it: a record is live from the moment it lands.
 */
static int handle(struct gc *g, const struct zrec *r, uint64_t addr, const uint8_t *rec)
{
	bool held;

	if (r->type != ZREC_PUT && r->type != ZREC_DEL)
		return 0;
	if (g->state == GC_UNDO) {
		g->records_restored += store_unmove(g->s, r, addr, g->pass);
		return 0;
	}
	held = store_holds(g->s, r, addr);
	if (!held && !is_live(g, r, addr))
		return 0;
	if (!held && r->type == ZREC_DEL && tombstone_droppable(g, r))
		return drop_later(g, r);
	return copy(g, r, addr, rec);
}

/*
 * Goes through the window's records from off; returns where the next window
 * goes on (a record straddling its end, or its end).
 */
static uint32_t sweep(struct gc *g, uint32_t off)
{
	uint64_t wstart = g->zones->z[g->victim].start + g->pos / g->zones->block * g->zones->block;
	struct zrec r;
	int ret;

	while (off < g->win_len && !g->failed) {
		ret = zrec_parse(g->win + off, g->win_len - off, g->tag, &r);
		/* Straddles the window's end: the next window starts with its block. */
		if (ret == -ENODATA && off >= g->zones->block)
			break;
		/* Padding: the next append starts on a block. */
		if (ret == -ENOENT || ret == -ENODATA) {
			off = zrec_block_up(off + 1, g->zones->block);
			continue;
		}
		/*
		 * Torn or damaged: records packed after it, or that landed inside
		 * its length after a short write, may start 8 bytes on.
		 */
		if (ret) {
			off += ZREC_ALIGN;
			continue;
		}
		if (handle(g, &r, wstart + off, g->win + off))
			g->failed = true;
		off += r.len;
	}
	return MIN(off, g->win_len);
}

static void read_done(struct zdev_io *io)
{
	struct gc *g = container_of(io, struct gc, io);
	uint32_t from = g->pos % g->zones->block;

	/* What cannot be read cannot be copied: the victim stays. */
	if (io->res < 0)
		g->failed = true;
	else
		g->pos += sweep(g, from) - from;
	/* The window's copies go together; the next window waits for them. */
	if (g->pack && (g->failed || pack_submit(g)))
		g->failed = true;
	pack_free(g->pack);
	g->pack = NULL;
	if (!g->copies)
		step(g);
}

static void scan_next(struct gc *g)
{
	struct zone *z = &g->zones->z[g->victim];
	uint64_t at = g->pos / g->zones->block * g->zones->block;

	if (g->failed || g->stopping) {
		give_up(g);
		return;
	}
	if (g->state == GC_UNDO && g->pos >= g->undo_end) {
		finish_victim(g, false);
		return;
	}
	/* Its records end where its summary begins: never read what was not written. */
	if (g->pos >= z->data_end) {
		g->state = GC_CKPT;
		step(g);
		return;
	}
	g->win_len = MIN(g->win_cap, z->data_end - at);
	g->io.done = read_done;
	zdev_read(g->dev, z->start + at, g->win, g->win_len, &g->io);
}

/* Moves the victim on by one stage; every completion comes back here. */
static void step(struct gc *g)
{

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
	case GC_UNDO:
		scan_next(g);
		break;
	case GC_CKPT:
		checkpoint(g);
		break;
	case GC_FLUSH:
		g->io.done = flush_done;
		zdev_flush(g->dev, &g->io);
		break;
	case GC_RESET:
		/* A get's read in flight there: gc_unpinned comes back once it ends. */
		if (g->zones->z[g->victim].readers)
			return;
		g->io.done = reset_done;
		zdev_reset(g->dev, g->victim, &g->io);
		break;
	}
}

void gc_unpinned(struct gc *g, uint32_t zone)
{
	if (g->state == GC_RESET && g->victim == zone)
		step(g);
}
