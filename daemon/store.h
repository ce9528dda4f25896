/*
 * The store: put, get and delete on top of the index, the zone manager, the
 * record format and the device. Values stream in and out in chunks, so a put
 * or get of any size needs at most a few records' worth of buffer memory.
 *
 * A put is acknowledged (its callback runs with 0) once all its records are
 * on the device and, with sync on, covered by a flush: one flush covers every
 * append that completed before it was issued (group commit).
 */
#ifndef ZAPD_STORE_H
#define ZAPD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dev.h"
#include "gc.h"
#include "index.h"
#include "inflight.h"
#include "log.h"
#include "pool.h"
#include "record.h"
#include "ring.h"
#include "super.h"
#include "zones.h"

struct store_cfg {
	uint64_t max_value;  /* largest value accepted */
	bool sync;	     /* acknowledge only once flushed */
	unsigned open_zones; /* zones taking appends at once */
	enum gc_policy gc_policy;
	bool rescan;		/* at start, scan every zone: summaries are not trusted */
	bool verify;		/* mount only to check: never format, scan every zone, check
				 * each full zone's summary against it, name each damage */
	const struct zlog *log; /* NULL: no log lines (tests, fuzzing) */
};

struct store_stats {
	uint64_t puts, gets, dels;
	uint64_t put_bytes, get_bytes;
	uint64_t appended_bytes;     /* records written to the device */
	uint64_t summary_bytes;	     /* zone summaries written */
	uint64_t zones_scanned;	     /* at the last start: zones read whole */
	uint64_t zones_summarised;   /* at the last start: zones read from their summary */
	uint64_t zones_checkpointed; /* at the last start: open zones read from a checkpoint */
	uint64_t flushes;
	uint64_t errors;
	uint64_t zone_errors; /* appends the device failed, each retiring a zone */
	uint64_t batches;     /* appends that carried several records */
	uint64_t batched_records;
	uint64_t batched_holds; /* partial batches that waited for company */
	uint64_t corrupt;	/* records that failed verification on read */
	double recovery_seconds;
	uint64_t recovered_records;
	uint64_t torn_records;
	uint64_t unreadable_bytes;  /* at the last start: what could not be read, records lost */
	uint64_t summaries_checked; /* verify: full zones whose summary was held against them */
	uint64_t summaries_bad;	    /* verify: ... that was damaged, wrong or lost */
	uint64_t summaries_absent;  /* verify: ... that had none, for want of room */
	uint64_t damaged;	    /* verify: places where a record starts and is not whole */
	uint64_t cut_short;	    /* verify: records a crash cut short (never acknowledged) */
	uint64_t super_bad;	    /* verify: superblock copies damaged or unreadable */
	uint64_t snaps_dropped;	    /* snapshots given up for puts' sake */
};

struct wait_list;

/* Someone waiting for buffer memory; called once memory is freed. */
struct store_waiter {
	void (*fn)(struct store_waiter *w);
	struct store_waiter *next;
	struct wait_list *on; /* the list it waits on, NULL if none */
};

struct wait_list {
	struct store_waiter *head, **tail;
};

/*
 * A client's share of the buffer memory: once its requests hold `limit`
 * bytes, they wait on their own list, not in the pool's queue ahead of
 * everyone else. One request may always go, whatever its size.
 */
struct store_budget {
	size_t held;
	size_t limit;
	struct wait_list waiting;
};

void store_budget_init(struct store_budget *b, size_t limit);

struct zput;
struct zget;
struct zsnap;
struct zchunk;
struct zqueue;
struct zone_op;

struct store {
	struct zdev *dev;
	struct zring *ring;
	struct zpool *pool;
	struct zidx *idx;
	struct zones zones;
	struct store_cfg cfg;
	struct zsuper sb;
	uint64_t tag;
	uint64_t next_seq;
	uint32_t rec_max;   /* largest record written: one append, one pool buffer */
	uint32_t rec_limit; /* largest record the format allows: every record up to it is read */
	bool dev_broken;    /* the device said something impossible: nothing more is written */
	struct zput *unflushed, **unflushed_tail;
	struct zput *flushing;
	bool flush_inflight;
	struct zdev_io flush_io;
	struct wait_list waiters;	    /* for the pool */
	struct store_budget gets;	    /* the share of the pool all gets together may hold */
	struct zchunk *space, **space_tail; /* records waiting for room on the device */
	struct zqueue *zq;		    /* per zone: appends in flight, records gathering */
	uint32_t *due, ndue;		    /* zones whose batch is looked at when the turn ends */
	uint32_t *held, nheld;		    /* zones whose partial batch waits for more */
	struct event *hold_ev;
	uint32_t small_zone;  /* where small records go, to pack together */
	struct zone_op *zops; /* per zone: its summary and finish */
	struct zholds holds;  /* operations in flight, by key */
	unsigned space_waiters;
	struct zput *oldest, *newest; /* puts and deletes in flight */
	unsigned busy;		      /* puts, gets and zone operations not yet ended */
	struct zsnap *snaps;	      /* open, not dropped */
	unsigned nsnaps;
	struct gc gc;
	bool checkpointed; /* the clean stop's checkpoints were started */
	struct zdev_io ckpt_io;
	struct store_stats st;
};

/* n rounded up to whole blocks of the store's: the room an append of n bytes takes. */
static inline uint64_t store_block_up(const struct store *s, uint64_t n)
{
	return zrec_block_up(n, s->zones.block);
}

/* A line in the daemon's log, if it has one (tests and fuzzing run without). */
#define store_log(s, prio, ...)                                                                    \
	do {                                                                                       \
		if ((s)->cfg.log)                                                                  \
			zlog((s)->cfg.log, prio, __VA_ARGS__);                                     \
	} while (0)

int store_init(struct store *s, struct zdev *dev, struct zring *ring, struct zpool *pool,
	       const struct store_cfg *cfg);
void store_done(struct store *s);

/* For recovery.c: the zone manager, from the device's zone report. */
int store_zones_init(struct store *s, const struct zdev_zone *dz);

struct zput_result {
	int err; /* 0, -ENOSPC, -EIO, ... */
	uint32_t zone;
	uint64_t offset;
	uint64_t seq;
};

typedef void (*zput_fn)(void *arg, const struct zput_result *res);

/*
 * Starts a put of a vlen-byte value; its bytes are then handed in with
 * store_put_buf and store_put_fill until store_put_filled. -EINVAL, -E2BIG.
 * done runs once, after the last byte was handed in.
 */
int store_put_begin(struct store *s, const void *key, size_t klen, uint64_t vlen,
		    struct store_budget *b, zput_fn done, void *arg, struct zput **out);
/*
 * Where the next bytes of the value go (*room of them; 0 for an empty value,
 * which store_put_fill(p, 0) then completes), or NULL while no buffer is
 * free: w->fn runs when one may be.
 */
void *store_put_buf(struct zput *p, size_t *room, struct store_waiter *w);
void store_put_fill(struct zput *p, size_t n);
bool store_put_filled(const struct zput *p);
/* The value will never arrive whole (the client went away): the put fails quietly. */
void store_put_abort(struct zput *p);

/*
 * Deletes key: -ENOENT if it holds no value and no put of it is in flight.
 * (A delete behind another still in flight finds the value that one will
 * delete: it answers 0, not -ENOENT.)
 */
int store_del(struct store *s, const void *key, size_t klen, struct store_budget *b, zput_fn done,
	      void *arg);

struct zget_chunk {
	uint64_t seq;  /* of the version read */
	uint64_t vlen; /* of the whole value */
	uint64_t voff; /* of this chunk */
	const void *data;
	size_t dlen;
	bool last;
};

/*
 * Called for each chunk in order, or once with err (-ENOENT, -EIO) and c NULL.
 * After a chunk, call store_get_next (or store_get_abort) once its data is used.
 */
typedef void (*zget_fn)(void *arg, int err, const struct zget_chunk *c);

/* at: the snapshot to read (NULL: the live store). */
int store_get(struct store *s, const struct zsnap *at, const void *key, size_t klen,
	      struct store_budget *b, zget_fn fn, void *arg, struct zget **out);
void store_get_next(struct zget *g);
/*
 * The chunk's buffer goes back, unused: store_get_reread then reads the
 * same chunk again. A reader ahead of its turn that has no room for the
 * data holds no pool memory while it waits.
 */
void store_get_release(struct zget *g);
void store_get_reread(struct zget *g);
void store_get_abort(struct zget *g);

void store_wait_cancel(struct store_waiter *w);

/* What a client is told of a store error, one line. */
const char *store_strerror(int err);
/* Why a put of a klen-byte key and a vlen-byte value was refused with -E2BIG. */
void store_limit_message(const struct store *s, char *buf, size_t len, size_t klen, uint64_t vlen);

/*
 * Snapshots (store_snap.c): the store as of the last sequence number given
 * out when one opens, for gets and scans while puts and deletes go on. It is
 * ready once every put and delete received before it has ended: fn runs then
 * with 0 (store_snap_open returns 1 instead when it is ready at once), or
 * with -ESTALE if it was dropped first, or with -ECANCELED if closed first.
 * -EBUSY: too many open. A snapshot is dropped when the room it holds is
 * needed for a put, or it would keep too many old versions: its reads are
 * refused with -ESTALE then. Close it in any case (accepts NULL).
 */
typedef void (*zsnap_fn)(void *arg, int err, uint64_t seq);
int store_snap_open(struct store *s, zsnap_fn fn, void *arg, struct zsnap **out);
void store_snap_close(struct zsnap *sn);
uint64_t store_snap_seq(const struct zsnap *sn);
/* 0: ready to read; -EAGAIN not yet, -ESTALE dropped, with why. */
int store_snap_check(const struct zsnap *sn, const char **why);
/* Old versions the open snapshots keep, for stat. */
size_t store_snap_versions(const struct store *s);
/* zidx_scan, of the live store or of snapshot at, which must be ready. */
int store_scan(const struct store *s, const struct zsnap *at, const void *prefix, size_t plen,
	       uint64_t *cursor, size_t count, size_t max_bytes, zidx_key_fn fn, void *arg);

/*
 * Once a second: GC looks again whether it is wanted, as the end of puts and
 * gets may have left garbage behind when nothing else would start it.
 */
void store_tick(struct store *s);

/* Shutting down: no new GC work; idle once everything in flight has ended. */
void store_stop(struct store *s);
bool store_idle(const struct store *s);
/*
 * Once stopped and idle: each zone taking appends gets a checkpoint, the
 * summary of what it holds so far, so that a restart reads it rather than
 * scanning the zone (store_finish.c). true when that started I/O (the store
 * is busy until it ends); false once there is nothing more to do.
 */
bool store_checkpoint(struct store *s);

/* Totals over the data zones. */
struct store_space {
	uint64_t capacity, used, live;
	uint32_t zones, empty, open, full, other;
};
void store_space(const struct store *s, struct store_space *sp);

#endif
