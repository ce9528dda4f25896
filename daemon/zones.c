#include "zones.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

static const char *const state_names[] = {
	[ZS_EMPTY] = "empty",		[ZS_OPEN] = "open",	    [ZS_CLOSED] = "closed",
	[ZS_FILLING] = "filling",	[ZS_FULL] = "full",	    [ZS_META] = "meta",
	[ZS_RECLAIMING] = "reclaiming", [ZS_READONLY] = "readonly", [ZS_OFFLINE] = "offline",
	[ZS_CONV] = "conventional",
};

const char *zone_state_name(enum zone_state s)
{
	return s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

static uint8_t from_cond(enum zdev_cond c)
{
	switch (c) {
	case ZDEV_EMPTY:
		return ZS_EMPTY;
	case ZDEV_OPEN:
		return ZS_CLOSED;
	case ZDEV_FULL:
		return ZS_FULL;
	case ZDEV_READONLY:
		return ZS_READONLY;
	case ZDEV_CONV:
		return ZS_CONV;
	default:
		return ZS_OFFLINE;
	}
}

int zones_init(struct zones *zs, const struct zdev_info *info, const struct zdev_zone *dz,
	       uint32_t block, unsigned want)
{
	uint32_t meta;

	memset(zs, 0, sizeof(*zs));
	zs->n = info->nr_zones;
	zs->zone_size = info->zone_size;
	zs->block = block;
	zs->gc_zone = NONE;
	zs->max_active = MIN(info->max_active ? info->max_active : UINT32_MAX,
			     info->max_open ? info->max_open : UINT32_MAX);
	/* GC's zone needs an active slot of its own. */
	zs->want = MAX(1u, MIN(want, zs->max_active - 1));
	zs->z = calloc(zs->n, sizeof(*zs->z));
	zs->set = calloc(zs->want, sizeof(*zs->set));
	if (!zs->z || !zs->set) {
		zones_done(zs);
		return -ENOMEM;
	}
	meta = zdev_meta_zone(dz, zs->n);
	for (uint32_t i = 0; i < zs->n; i++) {
		struct zone *z = &zs->z[i];

		z->start = dz[i].start;
		z->cap = dz[i].cap;
		z->state = i == meta ? ZS_META : from_cond(dz[i].cond);
		/* Offline zones cannot be read, conventional ones are not ours: no scan. */
		z->used = z->state == ZS_OFFLINE || z->state == ZS_CONV ? 0 : dz[i].wp;
		z->wp = z->base = z->data_end = z->used;
		z->min_seq = UINT64_MAX;
		if (z->state != ZS_META && z->state != ZS_CONV && z->cap > ZSUM_BASE_RESERVE)
			zs->zone_room = MAX(zs->zone_room, z->cap - ZSUM_BASE_RESERVE);
		zs->offline += z->state == ZS_OFFLINE;
	}
	return 0;
}

void zones_done(struct zones *zs)
{
	for (uint32_t i = 0; zs->z && i < zs->n; i++) {
		zsum_done(&zs->z[i].sum);
		zbloom_done(&zs->z[i].keys);
		free(zs->z[i].landed);
	}
	free(zs->z);
	free(zs->set);
	memset(zs, 0, sizeof(*zs));
}

static bool is_active(const struct zone *z)
{
	return z->state == ZS_OPEN || z->state == ZS_CLOSED || z->state == ZS_FILLING;
}

static unsigned count(const struct zones *zs, bool (*pred)(const struct zone *))
{
	unsigned n = 0;

	for (uint32_t i = 0; i < zs->n; i++)
		n += pred(&zs->z[i]);
	return n;
}

static bool is_empty(const struct zone *z)
{
	return z->state == ZS_EMPTY;
}

unsigned zones_empty(const struct zones *zs)
{
	return count(zs, is_empty);
}

/* Empty zones a class must leave to the others. */
/* Zones taking no appends that appends could start in: empty ones, and partly written ones. */
static bool is_spare(const struct zone *z)
{
	return z->state == ZS_EMPTY || z->state == ZS_CLOSED;
}

static bool fits(const struct zone *z, uint32_t len, uint64_t meta)
{
	return z->used + len + z->meta + meta + ZSUM_BASE_RESERVE <= z->cap;
}

/* Bytes of records a zone can still take. */
static uint64_t room_of(const struct zone *z)
{
	uint64_t taken = z->used + z->meta + ZSUM_BASE_RESERVE;

	return z->cap > taken ? z->cap - taken : 0;
}

uint64_t zones_spare_room(const struct zones *zs)
{
	uint64_t room = 0;

	for (uint32_t i = 0; i < zs->n; i++) {
		if (is_spare(&zs->z[i]))
			room += room_of(&zs->z[i]);
	}
	return room;
}

/*
 * Room in spare zones a class leaves to the others: puts two zones' worth,
 * deletes one, GC none, so that deletes and GC can always go on. Room, not
 * zones: after a crash GC's zone comes back partly written, GC's room still.
 */
static uint64_t kept_back(const struct zones *zs, enum zone_class cls)
{
	return (cls == ZC_PUT ? ZONES_RESERVE : cls == ZC_DEL ? 1 : 0) * zs->zone_room;
}

/*
 * A zone to start appending to, one that can take len bytes (and meta of
 * summary): a partly written one first, so zones fill up; never one whose
 * room the class must leave to others.
 */
static int pick_new(struct zones *zs, enum zone_class cls, uint32_t len, uint64_t meta)
{
	uint64_t spare = zones_spare_room(zs);
	int empty = -1, closed = -1, zi;

	for (uint32_t i = 0; i < zs->n; i++) {
		const struct zone *z = &zs->z[i];

		if (z->state == ZS_CLOSED && closed < 0 && fits(z, len, meta))
			closed = i;
		if (z->state == ZS_EMPTY && empty < 0)
			empty = i;
	}
	zi = closed >= 0 ? closed : empty;
	if (zi < 0 || spare - room_of(&zs->z[zi]) < kept_back(zs, cls))
		return -1;
	if (zi == empty && count(zs, is_active) >= zs->max_active)
		return -1;
	return zi;
}

static void retire(struct zones *zs, uint32_t zi)
{
	struct zone *z = &zs->z[zi];

	z->state = ZS_FILLING;
	if (!z->inflight)
		zs->finish_fn(zs->arg, zi);
}

static void refill(struct zones *zs, enum zone_class cls)
{
	while (zs->nset < zs->want) {
		int zi = pick_new(zs, cls, 0, 0);

		if (zi < 0)
			return;
		/* A zone puts could not have taken is the deletes' alone. */
		zs->z[zi].del_only =
		    zones_spare_room(zs) - room_of(&zs->z[zi]) < kept_back(zs, ZC_PUT);
		zs->z[zi].state = ZS_OPEN;
		zs->set[zs->nset++] = zi;
	}
}

/* Whether puts may append to zi: not to a zone of the reserve, while it is short. */
static bool puts_may(struct zones *zs, uint32_t zi)
{
	if (zs->z[zi].del_only && zones_spare_room(zs) >= kept_back(zs, ZC_PUT))
		zs->z[zi].del_only = false;
	return !zs->z[zi].del_only;
}

/* Summary room for an entry of e bytes: it, and a share of the parts' headers and padding. */
static uint64_t entry_meta(uint64_t e)
{
	return e + e / 64 + 1;
}

uint64_t zones_entry_meta(size_t klen, bool multi)
{
	return entry_meta(zsum_entry_max(klen, multi));
}

static bool take(struct zones *zs, uint32_t zi, uint32_t len, uint64_t meta)
{
	struct zone *z = &zs->z[zi];

	if (!fits(z, len, meta))
		return false;
	z->used += len;
	z->meta += meta;
	if (++z->inflight > zs->max_inflight)
		zs->max_inflight = z->inflight;
	return true;
}

void zones_add_dead(struct zones *zs, uint32_t zone, uint64_t bytes)
{
	zs->z[zone].recs += bytes;
}

uint64_t zones_gc_room(const struct zones *zs)
{
	return zs->gc_zone == NONE ? 0 : room_of(&zs->z[zs->gc_zone]);
}

static int reserve_gc(struct zones *zs, uint32_t len, uint64_t meta, uint32_t *zone)
{
	int zi;

	if (zs->gc_zone != NONE && take(zs, zs->gc_zone, len, meta)) {
		*zone = zs->gc_zone;
		return 0;
	}
	if (zs->gc_zone != NONE)
		retire(zs, zs->gc_zone);
	zs->gc_zone = NONE;
	zi = pick_new(zs, ZC_GC, len, meta);
	if (zi < 0)
		return -ENOSPC;
	zs->z[zi].state = ZS_OPEN;
	zs->gc_zone = zi;
	if (!take(zs, zi, len, meta))
		return -ENOSPC;
	*zone = zi;
	return 0;
}

static bool is_filling(const struct zone *z)
{
	return z->state == ZS_FILLING;
}

/* The zone in the set's slot has no room left: it leaves the set, and is finished. */
static void set_drop(struct zones *zs, unsigned slot, enum zone_class cls)
{
	uint32_t zi = zs->set[slot];

	/* At most one record's worth is lost at the end of a zone. */
	zs->set[slot] = zs->set[--zs->nset];
	retire(zs, zi);
	refill(zs, cls);
}

int zones_reserve(struct zones *zs, enum zone_class cls, uint32_t len, uint64_t meta,
		  uint32_t *zone)
{
	unsigned skipped = 0;

	if (cls == ZC_GC)
		return reserve_gc(zs, len, meta, zone);
	refill(zs, cls);
	while (skipped < zs->nset) {
		unsigned slot = zs->rr++ % zs->nset;
		uint32_t zi = zs->set[slot];

		if (cls == ZC_PUT && !puts_may(zs, zi)) {
			skipped++;
			continue;
		}
		if (take(zs, zi, len, meta)) {
			*zone = zi;
			return 0;
		}
		set_drop(zs, slot, cls);
		skipped = 0;
	}
	return count(zs, is_filling) ? -EAGAIN : -ENOSPC;
}

int zones_reserve_at(struct zones *zs, enum zone_class cls, uint32_t zone, uint32_t len,
		     uint64_t meta)
{
	for (unsigned i = 0; i < zs->nset; i++) {
		if (zs->set[i] != zone)
			continue;
		if (cls == ZC_PUT && !puts_may(zs, zone))
			return -ENOSPC;
		if (take(zs, zone, len, meta))
			return 0;
		set_drop(zs, i, cls);
		return -ENOSPC;
	}
	return -ENOSPC;
}

void zones_unreserve(struct zones *zs, uint32_t zone, uint64_t len)
{
	struct zone *z = &zs->z[zone];

	z->used -= MIN(len, z->used);
}

void zones_append_done(struct zones *zs, uint32_t zone)
{
	struct zone *z = &zs->z[zone];

	if (--z->inflight == 0 && z->state == ZS_FILLING)
		zs->finish_fn(zs->arg, zone);
}

/* The filter of a full zone is rebuilt at its size from the zone's record list. */
static void compact_keys(struct zone *z)
{
	struct zsum_pos at = { 0 };
	struct zbloom b;
	struct zrec r;
	uint64_t off;

	if (z->sum_lost || zbloom_init(&b, z->sum.n))
		return;
	while (zsum_next(z->sum.buf, z->sum.len, &at, &r, &off) == 0)
		zbloom_add(&b, r.key, r.klen);
	zbloom_done(&z->keys);
	z->keys = b;
}

void zones_finished(struct zones *zs, uint32_t zone, bool ok)
{
	struct zone *z = &zs->z[zone];

	z->state = ok ? ZS_FULL : ZS_READONLY;
	if (ok)
		z->used = z->cap;
	compact_keys(z);
	zsum_done(&z->sum);
	z->sum_lost = false;
	free(z->landed);
	z->landed = NULL;
}

/*
 * The zone takes no more appends, but is finished on the device all the same:
 * an open zone the device cannot write still counts against its active
 * limit. No summary goes into it; a restart scans it.
 */
void zones_retire(struct zones *zs, uint32_t zone)
{
	struct zone *z = &zs->z[zone];

	if ((z->state != ZS_OPEN && z->state != ZS_CLOSED && z->state != ZS_FILLING) || z->retired)
		return;
	for (unsigned i = 0; i < zs->nset; i++) {
		if (zs->set[i] == zone)
			zs->set[i] = zs->set[--zs->nset];
	}
	if (zs->gc_zone == zone)
		zs->gc_zone = NONE;
	z->retired = true;
	z->sum_lost = true;
	zs->retired++;
	/* A filling zone is finished, or will be, once its appends end. */
	if (z->state != ZS_FILLING)
		retire(zs, zone);
}

/* Tombstones kept for records older than the dead ones that went may go now. */
static void retry_kept(struct zones *zs, uint32_t zone)
{
	uint64_t gone_from = zs->z[zone].min_seq;

	for (uint32_t i = 0; i < zs->n; i++) {
		struct zone *z = &zs->z[i];

		if (i != zone && z->kept && gone_from < z->kept_max) {
			z->tombs += z->kept;
			z->kept = z->kept_max = 0;
		}
	}
}

void zones_reset_done(struct zones *zs, uint32_t zone, bool dropped_dead)
{
	struct zone *z = &zs->z[zone];

	if (dropped_dead)
		retry_kept(zs, zone);
	zbloom_done(&z->keys);
	zsum_done(&z->sum);
	free(z->landed);
	z->landed = NULL;
	z->used = z->wp = z->base = z->data_end = z->meta = z->ckpt_end = 0;
	z->recs = z->live = z->pending = z->max_seq = z->stuck = 0;
	z->tombs = z->kept = z->kept_max = z->held = 0;
	z->max_rec = z->nrecs = 0;
	z->min_seq = UINT64_MAX;
	z->sum_lost = z->retired = false;
	z->state = ZS_EMPTY;
	zs->resets++;
}

static bool is_closed(const struct zone *z)
{
	return z->state == ZS_CLOSED;
}

void zones_fit_limits(struct zones *zs, uint64_t min_room)
{
	/*
	 * A crash leaves zones written nearly to their end unfinished: finished
	 * now, they can be reclaimed, and hold no active slot for a record or two.
	 */
	for (uint32_t i = 0; i < zs->n; i++) {
		if (zs->z[i].state == ZS_CLOSED && room_of(&zs->z[i]) < min_room)
			retire(zs, i);
	}
	/* Fullest first: finishing it wastes the least room. */
	while (zs->max_active != UINT32_MAX && count(zs, is_active) >= zs->max_active &&
	       count(zs, is_closed)) {
		uint32_t best = NONE;

		for (uint32_t i = 0; i < zs->n; i++) {
			if (zs->z[i].state == ZS_CLOSED &&
			    (best == NONE || zs->z[i].used > zs->z[best].used))
				best = i;
		}
		retire(zs, best);
	}
}

/*
 * The zone holds a record of key with this seq. Without a filter (no
 * memory) GC takes the zone to hold every key in its range of sequence
 * numbers; with min_seq 0 nothing is known of it, and that stays so.
 */
static void note_key(struct zone *z, const void *key, size_t klen, uint64_t seq)
{
	/* Sized for small records (a full zone's is rebuilt at its real count). */
	if (z->min_seq && (z->keys.bits || !zbloom_init(&z->keys, z->cap / 256)))
		zbloom_add(&z->keys, key, klen);
	z->min_seq = MIN(z->min_seq, seq);
}

/*
 * An append to the zone failed, yet its record may be on the media all the
 * same (a short write, a device that wrote and then erred), and a restart
 * scans the zone: GC must keep the key's tombstones while the zone is there.
 */
void zones_note_failed(struct zones *zs, uint32_t zone, const void *key, size_t klen, uint64_t seq)
{
	note_key(&zs->z[zone], key, klen, seq);
	/*
	 * The append may have been written all the same: a summary or checkpoint
	 * would not list it, and the filter a restart rebuilds from one would
	 * lose the key. The zone is scanned instead.
	 */
	zs->z[zone].sum_lost = true;
}

void zones_forget_keys(struct zones *zs, uint32_t zone)
{
	struct zone *z = &zs->z[zone];

	zbloom_done(&z->keys);
	z->min_seq = 0;
	z->sum_lost = true;
	zsum_done(&z->sum);
}

void zones_note(struct zones *zs, const struct zrec *r, uint64_t addr)
{
	struct zone *z = &zs->z[zones_of(zs, addr)];
	int e;

	note_key(z, r->key, r->klen, r->seq);
	z->max_seq = MAX(z->max_seq, r->seq);
	z->recs += r->len;
	z->nrecs++;
	z->max_rec = MAX(z->max_rec, r->len);
	if (z->state == ZS_FULL)
		return; /* a restart reading its summary: no new summary to write */
	if (z->sum_lost)
		return;
	e = zsum_add(&z->sum, r, addr - z->start);
	if (e < 0) {
		/* A summary missing a record would lose it at restart: better none. */
		z->sum_lost = true;
		zsum_done(&z->sum);
		return;
	}
	/* The room kept for the entry was for the longest one: the rest goes back. */
	z->meta -= MIN(z->meta, zones_entry_meta(r->klen, r->nchunks > 1) - entry_meta(e));
}

bool zones_may_hold(const struct zones *zs, uint32_t except, const void *key, size_t klen,
		    uint64_t seq)
{
	for (uint32_t i = 0; i < zs->n; i++) {
		const struct zone *z = &zs->z[i];

		if (i == except || z->state == ZS_EMPTY || z->state == ZS_META ||
		    z->state == ZS_OFFLINE || z->state == ZS_CONV)
			continue;
		/* Exact first: a zone whose records are all newer holds no older version. */
		if (z->min_seq >= seq)
			continue;
		/* A written zone without a filter may hold anything. */
		if (!z->keys.bits || zbloom_may(&z->keys, key, klen))
			return true;
	}
	return false;
}

/* Marks [first, first + n) blocks landed; false, marking none, if one of them already was. */
static bool mark_landed(uint8_t *map, uint64_t first, uint64_t n)
{
	for (uint64_t b = first; b < first + n; b++) {
		if (map[b / 8] & (1u << (b % 8)))
			return false;
	}
	for (uint64_t b = first; b < first + n; b++)
		map[b / 8] |= 1u << (b % 8);
	return true;
}

int zones_landed(struct zones *zs, uint32_t zone, uint64_t addr, uint32_t len)
{
	struct zone *z = &zs->z[zone];
	uint64_t off = addr - z->start;

	if (addr < z->start || off < z->base || off + len > MIN(z->used, z->cap) ||
	    off % zs->block || len % zs->block)
		return -EIO;
	/* Without memory for the map, the bounds above are all that is checked. */
	if (!z->landed)
		z->landed = calloc(DIV_UP(z->cap / zs->block, 8), 1);
	if (z->landed && !mark_landed(z->landed, off / zs->block, len / zs->block))
		return -EIO;
	z->wp = MAX(z->wp, off + len);
	return 0;
}

static void add_tomb(struct zone *z, uint32_t len, uint64_t seq, bool kept)
{
	z->live += len;
	if (kept) {
		z->kept += len;
		z->kept_max = MAX(z->kept_max, seq);
	} else {
		z->tombs += len;
	}
}

/* Which of the two a tombstone was counted in is not known: worth a try first, never too much. */
static void sub_tomb(struct zone *z, uint32_t len)
{
	uint32_t t = MIN(z->tombs, len);

	z->live -= len;
	z->tombs -= t;
	z->kept -= MIN(z->kept, len - t);
}

void zones_add_entry(struct zones *zs, const struct zent *e, bool kept)
{
	if (!e->nchunks) {
		add_tomb(&zs->z[zones_of(zs, e->loc.addr)], e->loc.len, e->seq, kept);
		return;
	}
	for (uint32_t i = 0; i < e->nchunks; i++)
		zs->z[zones_of(zs, zent_chunk(e, i)->addr)].live += zent_chunk(e, i)->len;
}

void zones_sub_entry(struct zones *zs, const struct zent *e)
{
	if (!e->nchunks) {
		sub_tomb(&zs->z[zones_of(zs, e->loc.addr)], e->loc.len);
		return;
	}
	for (uint32_t i = 0; i < e->nchunks; i++)
		zs->z[zones_of(zs, zent_chunk(e, i)->addr)].live -= zent_chunk(e, i)->len;
}

void zones_move_live(struct zones *zs, uint64_t from, struct zloc to, uint64_t tomb_seq)
{
	struct zone *a = &zs->z[zones_of(zs, from)], *b = &zs->z[zones_of(zs, to.addr)];

	if (!tomb_seq) {
		a->live -= to.len;
		b->live += to.len;
		return;
	}
	sub_tomb(a, to.len);
	add_tomb(b, to.len, tomb_seq, true);
}

void zones_add_pending(struct zones *zs, uint64_t addr, uint32_t len)
{
	zs->z[zones_of(zs, addr)].pending += len;
}

void zones_sub_pending(struct zones *zs, uint64_t addr, uint32_t len)
{
	zs->z[zones_of(zs, addr)].pending -= len;
}
