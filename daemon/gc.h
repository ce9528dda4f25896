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

struct store;

enum gc_policy { GC_COST_BENEFIT, GC_GREEDY };

struct gc_drop;
struct gc_pack;

struct gc {
	struct store *s;
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
};

int gc_init(struct gc *g, struct store *s, enum gc_policy policy);
void gc_done(struct gc *g);

/* Starts reclaiming if space is short and nothing is being reclaimed. */
void gc_kick(struct gc *g);
/* Whether reclaiming is under way or could free a zone now. */
bool gc_can_free(const struct gc *g);
/* The last read in flight from zone ended: a victim waiting for it may be reset. */
void gc_unpinned(struct gc *g, uint32_t zone);
/* No new victims; the current one is given up after its copies in flight. */
void gc_stop(struct gc *g);
bool gc_idle(const struct gc *g);

#endif
