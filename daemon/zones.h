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
	uint64_t used;	  /* bytes handed out to appends, completed or in flight */
	uint64_t meta;	  /* bytes kept back for the zone's summary */
	uint64_t live;	  /* bytes of records the index points at */
	uint64_t max_seq; /* newest record: the zone's age for GC */
	uint32_t inflight;
	uint32_t readers; /* gets reading from the zone: it is not reset under them */
	uint8_t state;
	bool sum_lost;	    /* an entry could not be kept: no summary, a restart scans */
	bool retired;	    /* an append failed: no more appends, no summary, until reset */
	struct zsum sum;    /* the records in the zone, until it is summarised */
	struct zbloom keys; /* every key with a record in the zone */
};

struct zones {
	struct zone *z;
	uint32_t n;
	uint64_t zone_size;
	uint32_t *set; /* the write set: zones in ZS_OPEN taking puts and deletes */
	unsigned nset;
	unsigned want; /* zones to keep in the write set */
	unsigned rr;
	uint32_t gc_zone; /* GC's own zone, UINT32_MAX if none */
	uint32_t max_active;
	uint32_t max_inflight; /* most appends ever seen in flight to one zone */
	uint64_t resets;
	uint64_t retired;
	uint32_t offline; /* zones the device reported offline at start */
	void (*finish_fn)(void *arg, uint32_t zone);
	void *arg;
};

int zones_init(struct zones *zs, const struct zdev_info *info, const struct zdev_zone *dz,
	       unsigned want);
void zones_done(struct zones *zs);

/*
 * Reserves len bytes for a record with a klen-byte key, and room for its
 * summary entry. 0 and *zone; -EAGAIN when room will come once zones being
 * finished are (the limits on active zones allow no other); -ENOSPC when no
 * zone this class may use has room.
 */
int zones_reserve(struct zones *zs, enum zone_class cls, uint32_t len, size_t klen, uint32_t *zone);
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
void zones_note_failed(struct zones *zs, uint32_t zone, const void *key, size_t klen);
/* GC took every live record out of zone and the device reset it. */
void zones_reset_done(struct zones *zs, uint32_t zone);

/* Zones that may take appends without finishing others first (device limits). */
unsigned zones_empty(const struct zones *zs);
/* Closes the write set's partly written zones that exceed the device's active limit. */
void zones_fit_limits(struct zones *zs);

static inline uint32_t zones_of(const struct zones *zs, uint64_t addr)
{
	return addr / zs->zone_size;
}

/* Lists record r, which landed at addr, in its zone's summary and key filter. */
void zones_note(struct zones *zs, const struct zrec *r, uint64_t addr);
/* Whether some zone other than except may hold a record of key. */
bool zones_may_hold(const struct zones *zs, uint32_t except, const void *key, size_t klen);

void zones_add_live(struct zones *zs, uint64_t addr, uint32_t len);
void zones_sub_live(struct zones *zs, uint64_t addr, uint32_t len);

const char *zone_state_name(enum zone_state s);

#endif
