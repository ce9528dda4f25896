/*
 * The zone manager: which zones take appends, how much room each has left
 * for appends in flight, the live bytes in each, which keys each holds (a
 * Bloom filter, for GC's tombstone rule), and the device's zone limits. It
 * owns no I/O: when a zone must be finished it says so through finish_fn,
 * and the store does it.
 *
 * Appends reserve their length (and their entry in the zone's summary)
 * before they are submitted, so a zone is never asked for more than it holds
 * however many appends are in flight to it. Empty zones are held back from
 * puts so that deletes and GC can always proceed.
 */
#ifndef ZAPD_ZONES_H
#define ZAPD_ZONES_H

#include <stdbool.h>
#include <stdint.h>

#include "bloom.h"
#include "dev.h"
#include "index.h"
#include "summary.h"

enum zone_state {
	ZS_EMPTY,
	ZS_OPEN,    /* in the write set, or GC's zone: takes appends */
	ZS_CLOSED,  /* written to, not taking appends now */
	ZS_FILLING, /* takes no more appends; finished once those in flight end */
	ZS_FULL,
	ZS_META, /* holds the superblock */
	ZS_RECLAIMING,
	ZS_READONLY,
	ZS_OFFLINE,
	ZS_CONV, /* conventional: not used */
};

/* Who asks for room: puts stop short of the reserve, deletes of its last zone, GC of nothing. */
enum zone_class { ZC_PUT, ZC_DEL, ZC_GC };

#define ZONES_RESERVE 2u /* empty zones puts may not take */

struct zone {
	uint64_t start;
	uint64_t cap;
	uint64_t used;	   /* bytes handed out to appends, completed or in flight */
	uint64_t wp;	   /* bytes written: the end of the last append that landed */
	uint64_t base;	   /* the write pointer at start: nothing of this run lands below it */
	uint64_t data_end; /* where its records end and its summary begins, once it has one */
	uint64_t ckpt_end; /* where its last checkpoint ends: none again while nothing follows */
	uint64_t meta;	   /* bytes kept back for the zone's summary */
	uint64_t recs;	   /* bytes of put and delete records in it, live or dead, and padding */
	uint64_t live;	   /* bytes of records the index points at */
	uint64_t tombs;	   /* of them, tombstones GC has not yet tried to drop */
	uint64_t kept;	   /* of them, tombstones GC could not drop, or not yet worth trying */
	uint64_t kept_max; /* the newest of those */
	uint64_t pending;  /* bytes of records of puts and deletes still in flight */
	uint64_t held;	   /* bytes of dead versions gets in flight still read */
	uint64_t min_seq;  /* oldest record: UINT64_MAX when none; 0 when unknown */
	uint64_t max_seq;  /* newest record: the zone's age for GC */
	uint64_t stuck;	   /* GC gave it up with this much to gain: wait for more, or a reclaim */
	uint64_t gc_pass;  /* the GC pass whose copies last landed in it */
	uint32_t max_rec;  /* longest record in it */
	uint32_t nrecs;	   /* put and delete records in it, live or dead */
	uint32_t inflight;
	uint32_t readers; /* reads in flight from the zone: it is not reset under them */
	uint8_t state;
	bool sum_lost;	 /* an entry could not be kept: no summary, a restart scans */
	bool retired;	 /* an append failed: no more appends, no summary, until reset */
	bool del_only;	 /* opened from the reserve for deletes: puts stay out while it is short */
	struct zsum sum; /* the records in the zone, until it is summarised */
	struct zbloom keys; /* every key with a record in the zone; none: it may hold any */
	uint8_t *landed;    /* blocks appends of this run landed in, while it takes appends */
};

struct zones {
	struct zone *z;
	uint32_t n;
	uint64_t zone_size;
	uint32_t block; /* the store's: appends are whole blocks of it */
	uint32_t *set;	/* the write set: zones in ZS_OPEN taking puts and deletes */
	unsigned nset;
	unsigned want; /* zones to keep in the write set */
	unsigned rr;
	uint32_t gc_zone; /* GC's own zone, UINT32_MAX if none */
	uint32_t max_active;
	uint64_t zone_room;    /* what an empty zone takes: the unit of the reserves */
	uint32_t max_inflight; /* most appends ever seen in flight to one zone */
	uint64_t resets;
	uint64_t retired;
	uint32_t offline; /* zones the device reported offline at start */
	void (*finish_fn)(void *arg, uint32_t zone);
	void *arg;
};

int zones_init(struct zones *zs, const struct zdev_info *info, const struct zdev_zone *dz,
	       uint32_t block, unsigned want);
void zones_done(struct zones *zs);

/*
 * Reserves len bytes for an append, and meta bytes of the zone's summary for
 * its records' entries (zones_entry_meta each). 0 and *zone; -EAGAIN when
 * room will come once zones being finished are (the limits on active zones
 * allow no other); -ENOSPC when no zone this class may use has room.
 */
int zones_reserve(struct zones *zs, enum zone_class cls, uint32_t len, uint64_t meta,
		  uint32_t *zone);
/* As zones_reserve, in that zone of the write set only: 0, or -ENOSPC. */
int zones_reserve_at(struct zones *zs, enum zone_class cls, uint32_t zone, uint32_t len,
		     uint64_t meta);
/* Room a record's entry may take in its zone's summary, besides the record. */
uint64_t zones_entry_meta(size_t klen, bool multi);
/* Records that reserved apart went in one append, shorter than they reserved: the rest goes back.
 */
void zones_unreserve(struct zones *zs, uint32_t zone, uint64_t len);
/* An append reserved in zone ended (successfully or not). */
void zones_append_done(struct zones *zs, uint32_t zone);
/* The device finished zone, or failed to (then it is taken out of use). */
void zones_finished(struct zones *zs, uint32_t zone, bool ok);
/*
 * An append to zone failed: the zone takes no more appends (its records stay
 * readable). A device's read-only or offline zone, or one that fails writes,
 * is not worth another try.
 */
void zones_retire(struct zones *zs, uint32_t zone);
/*
 * An append of key's record (seq) to zone failed, yet may have been written:
 * the zone's key filter keeps the key, and the zone gets no summary or
 * checkpoint, which would not list it (a restart scans the zone).
 */
void zones_note_failed(struct zones *zs, uint32_t zone, const void *key, size_t klen, uint64_t seq);
/*
 * GC took every live record out of zone and the device reset it. If dead
 * records went with it, the tombstones kept elsewhere that may have been
 * kept for them are worth another try.
 */
void zones_reset_done(struct zones *zs, uint32_t zone, bool dropped_dead);

/*
 * Bytes written to zone that no record lives in (an append's padding, a
 * checkpoint): dead from the start, they count as garbage GC may win back.
 */
void zones_add_dead(struct zones *zs, uint32_t zone, uint64_t bytes);
/* Bytes of records (and their entries) GC's own zone can still take; 0 without one. */
uint64_t zones_gc_room(const struct zones *zs);
/* Room in the zones taking no appends, empty or partly written: what GC may copy into. */
uint64_t zones_spare_room(const struct zones *zs);
/* Zones that may take appends without finishing others first (device limits). */
unsigned zones_empty(const struct zones *zs);
/*
 * At start: finishes the partly written zones that have less than min_room
 * left, and those beyond the device's active limit.
 */
void zones_fit_limits(struct zones *zs, uint64_t min_room);

static inline uint32_t zones_of(const struct zones *zs, uint64_t addr)
{
	return addr / zs->zone_size;
}

/*
 * An append of len bytes to zone says it landed at addr: 0, or -EIO when it
 * cannot have (outside the zone, below what this run may write, past the
 * room handed out, over another append). A device that says so is not to
 * be trusted with anything more.
 */
int zones_landed(struct zones *zs, uint32_t zone, uint64_t addr, uint32_t len);

/* Lists record r, which landed at addr, in its zone's summary and key filter. */
void zones_note(struct zones *zs, const struct zrec *r, uint64_t addr);
/*
 * Whether some zone other than except may hold a record of key older than
 * seq: each zone's range of sequence numbers says so exactly, its key
 * filter only with false positives.
 */
bool zones_may_hold(const struct zones *zs, uint32_t except, const void *key, size_t klen,
		    uint64_t seq);
/* Nothing is known of what the zone holds (part of it could not be read). */
void zones_forget_keys(struct zones *zs, uint32_t zone);

/*
 * Live bytes follow the index: it took entry e, or let it go. A new
 * tombstone is kept (the value it hides is still on the media, so dropping
 * it is not worth a try yet); one found at start is not.
 */
void zones_add_entry(struct zones *zs, const struct zent *e, bool kept);
void zones_sub_entry(struct zones *zs, const struct zent *e);
/* GC moved a live record; a tombstone (tomb_seq, else 0) it moved is one it could not drop. */
void zones_move_live(struct zones *zs, uint64_t from, struct zloc to, uint64_t tomb_seq);
void zones_add_pending(struct zones *zs, uint64_t addr, uint32_t len);
void zones_sub_pending(struct zones *zs, uint64_t addr, uint32_t len);

/* Bytes of dead records in the zone: what reclaiming it wins back, besides its unused end. */
static inline uint64_t zone_garbage(const struct zone *z)
{
	uint64_t keep = z->live + z->pending + z->held;

	return z->recs > keep ? z->recs - keep : 0;
}

/* Bytes reclaiming the zone is expected to copy: tombstones worth a try are expected to go. */
static inline uint64_t zone_keep(const struct zone *z)
{
	return z->live + z->pending + z->held - MIN(z->tombs, z->live);
}

const char *zone_state_name(enum zone_state s);

#endif
