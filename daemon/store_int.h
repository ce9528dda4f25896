/*
 * Inside the store: what its store_*.c files share (store.c says which file
 * holds which stage of a record's life). Nothing outside the store includes it.
 */
#ifndef ZAPD_STORE_INT_H
#define ZAPD_STORE_INT_H

#include "frame.h"
#include "log.h"
#include "record.h"
#include "store.h"

/*
 * Zones a record tries before its put fails, each failure retiring one: at
 * least the whole write set and one more, since faults come together (a die,
 * a channel) and may take every zone being written at once.
 */
#define APPEND_TRIES(s) MAX(3u, (s)->zones.want + 1)
/* Buffer bytes one put may hold: a large value streams through, it does not fill the pool. */
#define PUT_MAX_HELD (8u << 20)
/*
 * Coalescing (store_batch.c): records of up to BATCH_SMALL bytes bound for a
 * zone with appends in flight gather in one buffer of BATCH_MAX.
 */
#define BATCH_SMALL (32u << 10)
#define BATCH_MAX   (256u << 10)

struct zchunk {
	struct zdev_io io;
	struct zput *p;
	void *buf;
	uint32_t alloc; /* bytes asked of the pool */
	uint32_t len;	/* of the sealed record; alone, its append is zrec_block_up(len) */
	uint32_t idx;
	uint32_t dlen;
	uint32_t filled;
	uint32_t zone;
	unsigned tries;	     /* appends that failed */
	bool heap;	     /* buf is from the heap, not the pool (a failed batch's record) */
	uint32_t boff;	     /* where in its batch, if batched */
	struct zchunk *next; /* waiting for room, or the next in its batch */
};

/* Records gathering for one append to a busy zone. */
struct zbatch {
	struct zdev_io io;
	struct store *s;
	uint32_t zone;
	uint8_t *buf;
	uint32_t len; /* of its records, back to back */
	struct zchunk *chunks, **tail;
};

/* Per zone: appends in flight, and the batch gathering behind them. */
struct zqueue {
	unsigned appending;
	struct zbatch *batch;
	bool loaded;  /* its last batch was several records filling a block */
	bool busy;    /* its last batch answered many puts: their clients' next come at once */
	bool due;     /* on the store's list for the end of the loop's turn */
	bool held;    /* on the store's list for the hold timer */
	bool waiting; /* its partial batch waits for the next records, or the timer */
	bool fresh;   /* records joined its batch since its last append went */
};

struct zput {
	struct store *s;
	zput_fn done;
	void *arg;
	uint8_t type;
	bool input_done;
	bool maybe_landed; /* an append of it failed after writing, perhaps all of it */
	int err;
	uint64_t seq;
	uint64_t vlen;
	uint64_t given;
	uint32_t nchunks;
	uint32_t dmax;
	uint32_t submitted;
	uint32_t completed;
	struct zchunk *cur;
	struct zloc *locs; /* &one, or an array the index takes over on commit */
	struct zloc one;
	struct zdev_io end_io;
	struct store_waiter w;		  /* deletes: waiting for a block of buffer */
	uint64_t held;			  /* buffer bytes of its records not yet written */
	struct store_budget *budget;	  /* the client's share, or NULL */
	struct store_waiter *held_waiter; /* the feeder, waiting for held to go down */
	struct zput *next;
	struct zput *older, *newer; /* all puts in flight, by seq */
	struct zhold h;		    /* by key: for the ordering rule and GC */
	struct zget *waiters;	    /* gets received after it, waiting for it to end */
	struct zput *dnext;	    /* next in the deferred list of a get received before it */
	uint16_t klen;
	uint8_t key[];
};

struct zget {
	struct store *s;
	zget_fn fn;
	void *arg;
	uint64_t barrier; /* puts and deletes with a lower seq were received before it */
	uint64_t seq;
	uint64_t vlen;
	uint32_t nchunks;
	uint32_t next;
	struct zloc *locs; /* &one for a value in one record; GC keeps them current */
	struct zloc one;
	void *buf;
	uint32_t alloc;
	uint32_t boff;	  /* where in buf the record starts */
	uint32_t rd_zone; /* of the read in flight */
	bool heap;	  /* buf is from the heap: a record longer than any pool buffer */
	bool reading;
	bool aborted;
	bool counted; /* in the totals of gets: a last chunk read again is not counted twice */
	bool held;    /* h is in the table */
	bool finding; /* no version yet: waiting for what was received before it */
	struct zhold h;
	bool dead;	       /* its version died: counted in its zones' held bytes */
	struct zput *wait_on;  /* a put or delete received before it, still in flight */
	struct zget *wnext;    /* the next get waiting on it */
	struct zput *deferred; /* puts received after it, committed once it has its version */
	struct zdev_io io;
	struct store_waiter w;
	struct store_budget *budget;
	uint16_t klen;
	uint8_t key[];
};

/*
 * A zone that takes no more appends gets its summary, then is finished:
 * flush (so every record the summary lists is on stable media before the
 * summary is), pad the zone so that the summary ends exactly at its
 * capacity, append the summary parts one after another (each names the one
 * before), finish. The summary's last block is the zone's last: a restart
 * finds it with one read, and never reads what was not written. Any failure
 * skips to the finish: a restart then scans the zone instead. The op is the
 * zone's own, so that finishing a zone never waits for memory.
 */
struct zone_op {
	struct zdev_io io;
	struct store *s;
	uint32_t zone;
	uint64_t pad;  /* bytes of padding still to write */
	size_t pos;    /* summary bytes written */
	uint64_t prev; /* offset of the part before, in the zone */
	void *buf;
	bool ckpt; /* a checkpoint: the zone stays open */
};

/* store.c: buffer memory and waiting for it. */
void store_wait_on(struct wait_list *l, struct store_waiter *w);
void store_wake(struct wait_list *l);
void *store_buf_get(struct store *s, uint32_t len, struct store_budget *b, struct store_waiter *w);
void store_buf_put(struct store *s, void *buf, uint32_t len, struct store_budget *b);
int store_check_key(size_t klen);

/* store_finish.c: the zone manager's finish_fn. */
void store_finish_zone(void *arg, uint32_t zone);

/* store_put.c */
void put_end(struct zput *p, int err);
/* The append of c ended with res, the record landing at addr (misplaced: where it cannot have). */
void chunk_complete(struct store *s, struct zchunk *c, int res, uint64_t addr, bool misplaced);
/* The chunk's buffer goes back; the feeder of a large value may hand in more. */
void chunk_release_buf(struct store *s, struct zchunk *c);

/* store_batch.c */
/* Adds c to its zone's batch if it is small; false if c goes alone. */
bool batch_add(struct store *s, struct zchunk *c);
/* An append to the zone ended: what gathered behind it goes now, or waits a moment for more. */
void batch_zone_ended(struct store *s, uint32_t zone);
/* The ring's turn_end: batches of idle zones go, or wait a moment for more. */
void batch_turn_end(void *arg);

/* store_commit.c */
/* All the put's records ended and no more input comes: on to flush, commit or the end. */
void put_settle(struct zput *p);
void put_commit(struct zput *p);

/* store_snap.c */
/* A commit of e for key: old is the entry it replaced, NULL if the index kept a newer one. */
void snap_commit(struct store *s, const void *key, size_t klen, const struct zent *e,
		 const struct zent *old);
/* A put or delete ended: snapshots waiting for it may be ready. */
void snap_settle(struct store *s);
/* The device has no room for a put: snapshots holding records go. true if any did. */
bool snap_drop_holders(struct store *s);
/* Key's version as of the snapshot into *e; false if it had none. */
bool snap_find(const struct zsnap *sn, const void *key, size_t klen, struct zent *e);
/* The location of chunk `chunk` that a snapshot's hold holds, or NULL. */
struct zloc *snap_held_loc(struct zhold *h, uint32_t chunk);

/* store_get.c */
/* A get that waited for a put or delete of its key looks again. */
void get_begin(struct zget *g);
/* The version seq of key died while gets read it: they keep it counted in its zones. */
void get_keep_dead(struct store *s, const void *key, size_t klen, uint64_t seq);

#endif
