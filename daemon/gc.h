/*
 * Garbage collection: reclaims zones whose records are mostly dead. A victim
 * is chosen by cost-benefit (Rosenblum and Ousterhout's LFS: free space
 * gained times age over the cost of copying) or greedily (least live). Its
 * zone is read a window at a time; live records are copied forward with zone
 * appends into GC's own zone, and the index switched to the copy only where
 * it still points at the original (a put may have replaced it meanwhile).
 * Once everything is copied: a checkpoint of the sequence counter, a flush,
 * and the zone is reset, after any get still reading from it has finished.
 *
 * A tombstone is dropped, not copied, only when no other zone may hold an
 * older version of its key (their key filters say no) and no put older than
 * it is still in flight. Runs inside the event loop, one window at a time,
 * paced unless space is short.
 */
#ifndef ZAPD_GC_H
#define ZAPD_GC_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>

#include "dev.h"
#include "index.h"
#include "ring.h"
#include "zones.h"

struct store;
struct zrec;

enum gc_policy { GC_COST_BENEFIT, GC_GREEDY };

struct gc_drop;
struct gc_pack;

struct gc {
	struct store *s; /* only through the store_* calls below */
	struct zdev *dev;
	struct zring *ring;
	struct zones *zones;
	struct zidx *idx;
	uint64_t tag;	    /* the format's, from gc_mount() on */
	uint32_t rec_max;   /* the largest record GC writes */
	uint32_t rec_limit; /* the largest record it may find */
	enum gc_policy policy;
	int state;
	bool running; /* between the low water mark and a little above it */
	bool stopping;
	uint32_t victim;
	uint64_t pos; /* where the victim's next record starts, zone relative */
	uint8_t *win;
	uint32_t win_cap; /* at least the format's largest record */
	uint32_t win_len;
	unsigned copies;      /* packs of copies from the window in flight */
	struct gc_pack *pack; /* the window's live records, gathering */
	bool paced;
	bool failed; /* a copy failed: the victim is given up until more of it dies */
	bool dead;   /* the victim held dead records when it was picked */
	/*
	 * A zone the victim's copies went to failed or filled up: those copies go
	 * back to the victim's records, read again up to undo_end. The zones
	 * they went to are marked with the victim's pass (zone.gc_pass).
	 */
	bool lost_target;
	uint64_t undo_end;
	uint64_t pass;	   /* counts victims */
	unsigned ntargets; /* zones marked with this pass */
	struct zdev_io io;
	void *ckpt; /* the sequence checkpoint being written */
	uint32_t ckpt_zone;
	struct zring_op timer;
	struct __kernel_timespec ts;
	struct gc_drop *drops; /* tombstones to forget once the victim is reset */
	uint64_t rng;
	/* counters */
	uint64_t bytes_moved;
	uint64_t records_moved;
	uint64_t tombstones_dropped;
	uint64_t zones_reclaimed;
	uint64_t victims_given_up;
	uint64_t records_restored;
};

int gc_init(struct gc *g, struct store *s, struct zdev *dev, struct zring *ring,
	    struct zones *zones, struct zidx *idx, enum gc_policy policy);
void gc_done(struct gc *g);
/* The store is mounted: its records' tag and lengths are known, GC may run. */
void gc_mount(struct gc *g, uint64_t tag, uint32_t rec_max, uint32_t rec_limit);

/* Starts reclaiming if space is short and nothing is being reclaimed. */
void gc_kick(struct gc *g);
/* Whether reclaiming is under way or could free a zone now. */
bool gc_can_free(const struct gc *g);
/* The last read in flight from zone ended: a victim waiting for it may be reset. */
void gc_unpinned(struct gc *g, uint32_t zone);
/* No new victims; the current one is given up after its copies in flight. */
void gc_stop(struct gc *g);
bool gc_idle(const struct gc *g);

/*
 * What GC asks of the store it cleans, and all it sees of it (store_*.c
 * define them).
 * store_next_seq: the sequence number the next put gets.
 * store_space_short: whether puts wait for room: GC runs unpaced.
 * store_broken: the device said something impossible: nothing more is written.
 * store_oldest_put: the sequence number of the oldest put or delete in flight.
 * store_space_freed: a zone was reset: records waiting for room may go.
 * store_key_held: whether a put, delete or get of key is in flight.
 * store_holds: whether a put, delete or get in flight holds the record r,
 *   which lies at addr.
 * store_landed: an append to zone ended at addr: 0, or -EIO when it cannot
 *   have landed there, and then the device is not written again.
 * store_moved: GC copied the record r from `from` to `to`; the index and
 *   whoever held it follow.
 * store_unmove: r, at addr, is the original of a copy GC made in pass
 *   `pass` (a zone marked with it): whoever points at the copy points at r
 *   again. Whether one did.
 */
uint64_t store_next_seq(const struct store *s);
bool store_space_short(const struct store *s);
bool store_broken(const struct store *s);
uint64_t store_oldest_put(const struct store *s);
void store_space_freed(struct store *s);
bool store_key_held(const struct store *s, const void *key, size_t klen);
bool store_holds(const struct store *s, const struct zrec *r, uint64_t addr);
int store_landed(struct store *s, uint32_t zone, uint64_t addr, uint32_t len);
void store_moved(struct store *s, const struct zrec *r, uint64_t from, struct zloc to);
bool store_unmove(struct store *s, const struct zrec *r, uint64_t addr, uint64_t pass);

#endif
