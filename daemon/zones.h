/*
 * The zone manager: which zones take appends, how much room each has left
 * for appends in flight, and the live bytes in each. It owns no I/O: when a
 * zone must be finished it says so through finish_fn, and the store does it.
 *
 * Appends reserve their length before they are submitted, so a zone is never
 * asked for more than it holds however many appends are in flight to it.
 */
#ifndef ZAPD_ZONES_H
#define ZAPD_ZONES_H

#include <stdbool.h>
#include <stdint.h>

#include "dev.h"
#include "summary.h"

enum zone_state {
	ZS_EMPTY,
	ZS_OPEN,    /* in the write set: takes appends */
	ZS_CLOSED,  /* written to, not in the write set */
	ZS_FILLING, /* takes no more appends; finished once those in flight end */
	ZS_FULL,
	ZS_META, /* holds the superblock */
	ZS_READONLY,
	ZS_OFFLINE,
};

struct zone {
	uint64_t start;
	uint64_t cap;
	uint64_t used; /* bytes handed out to appends, completed or in flight */
	uint64_t meta; /* bytes kept back for the zone's summary */
	uint64_t live; /* bytes of records the index points at */
	uint32_t inflight;
	uint8_t state;
	bool sum_lost;	 /* an entry could not be kept: no summary, a restart scans */
	struct zsum sum; /* the records in the zone, until it is summarised */
};

struct zones {
	struct zone *z;
	uint32_t n;
	uint64_t zone_size;
	uint32_t *set; /* the write set: zones in ZS_OPEN */
	unsigned nset;
	unsigned want; /* zones to keep in the write set */
	unsigned rr;
	uint32_t max_inflight; /* most appends ever seen in flight to one zone */
	void (*finish_fn)(void *arg, uint32_t zone);
	void *arg;
};

int zones_init(struct zones *zs, const struct zdev_info *info, const struct zdev_zone *dz,
	       unsigned want);
void zones_done(struct zones *zs);

/*
 * Reserves len bytes for a record with a klen-byte key in a zone of the write
 * set, and room for its entry in the zone's summary; -ENOSPC when no zone has
 * room.
 */
int zones_reserve(struct zones *zs, uint32_t len, size_t klen, uint32_t *zone);
/* An append reserved in zone ended (successfully or not). */
void zones_append_done(struct zones *zs, uint32_t zone);
/* The device finished zone, or failed to (then it is taken out of use). */
void zones_finished(struct zones *zs, uint32_t zone, bool ok);

static inline uint32_t zones_of(const struct zones *zs, uint64_t addr)
{
	return addr / zs->zone_size;
}

/* Lists record r, which landed at addr, in its zone's summary. */
void zones_note(struct zones *zs, const struct zrec *r, uint64_t addr);

void zones_add_live(struct zones *zs, uint64_t addr, uint32_t len);
void zones_sub_live(struct zones *zs, uint64_t addr, uint32_t len);

const char *zone_state_name(enum zone_state s);

#endif
