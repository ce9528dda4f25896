/*
 * Snapshots: the store as it was at a sequence number S, read while puts and
 * deletes go on. A snapshot copies nothing when it opens. The index stays the
 * live store's; when a commit takes a key past S, the version it displaces is
 * kept aside for each snapshot (the key's version as of S), and held like a
 * get in flight holds its version: GC copies it and tells the snapshot where
 * it went. A key's version at S is then the kept one, or else the index's if
 * that is not newer than S.
 *
 * S is the last sequence number given out when the snapshot opens, and it is
 * ready once every put and delete received before has ended: only then is
 * the index, with what was kept aside, the state as of S. Until then, a
 * commit at or below S that the index refuses (a newer one of its key went
 * first) may still be the key's version at S, and is offered too.
 *
 * Snapshots yield to puts: one holding records when the device has no room
 * left for a put is dropped, as is one that would take the versions all keep
 * past SNAP_MAX_VERSIONS. Its reads are answered -ESTALE from then on.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SNAP_MAX	  4	     /* open at once */
#define SNAP_MAX_VERSIONS (1u << 20) /* kept aside by all together: ~150 MB */

/* A key's version as of a snapshot, kept aside from the index. */
struct snap_ent {
	struct zhold h; /* kind ZH_SNAP; seq: the version's */
	struct zsnap *sn;
	struct snap_ent *next;
	uint32_t nchunks; /* 0: the key had no value at S */
	struct zloc *locs;
	struct zloc one;
	uint8_t key[];
};

struct zsnap {
	struct store *s;
	struct zsnap *next; /* the store's snapshots */
	uint64_t seq;
	bool ready;
	const char *dropped; /* why, once dropped */
	zsnap_fn fn;
	void *arg;
	struct snap_ent *ents;
	size_t n;
};

struct zloc *snap_held_loc(struct zhold *h, uint32_t chunk)
{
	struct snap_ent *x = container_of(h, struct snap_ent, h);

	return chunk < x->nchunks ? &x->locs[chunk] : NULL;
}

/* The records of a version kept aside count as held in their zones: GC moves them, once. */
static void ent_count(struct store *s, const struct snap_ent *x, bool add)
{
	for (uint32_t i = 0; i < x->nchunks; i++) {
		uint64_t *held = &s->zones.z[zones_of(&s->zones, x->locs[i].addr)].held;

		*held = add ? *held + x->locs[i].len : *held - x->locs[i].len;
	}
}

static void ent_clear(struct store *s, struct snap_ent *x)
{
	ent_count(s, x, false);
	if (x->locs != &x->one)
		free(x->locs);
	x->locs = &x->one;
	x->nchunks = 0;
}

static struct snap_ent *ent_find(const struct zsnap *sn, const void *key, size_t klen)
{
	const struct zholds *hs = &sn->s->holds;

	for (struct zhold *h = zholds_next(hs, key, klen, NULL); h;
	     h = zholds_next(hs, key, klen, h)) {
		if (h->kind == ZH_SNAP && container_of(h, struct snap_ent, h)->sn == sn)
			return container_of(h, struct snap_ent, h);
	}
	return NULL;
}

static void ents_free(struct zsnap *sn)
{
	struct store *s = sn->s;

	while (sn->ents) {
		struct snap_ent *x = sn->ents;

		sn->ents = x->next;
		zholds_remove(&s->holds, &x->h);
		ent_clear(s, x);
		free(x);
	}
	sn->n = 0;
}

static void unlink_snap(struct zsnap *sn)
{
	struct zsnap **pp = &sn->s->snaps;

	while (*pp != sn)
		pp = &(*pp)->next;
	*pp = sn->next;
	sn->s->nsnaps--;
}

/* What it keeps goes; its reads are refused with why from now on. */
static void snap_drop(struct zsnap *sn, const char *why)
{
	struct store *s = sn->s;

	store_log(s, LOG_WARNING, "snapshot at sequence %llu dropped: %s",
		  (unsigned long long)sn->seq, why);
	ents_free(sn);
	unlink_snap(sn);
	sn->dropped = why;
	s->st.snaps_dropped++;
	if (!sn->ready) {
		sn->ready = true;
		sn->fn(sn->arg, -ESTALE, sn->seq);
	}
}

/* v, a version of key, is its version as of the snapshot if none newer than v was seen. */
static void offer(struct zsnap *sn, const void *key, size_t klen, const struct zent *v)
{
	struct store *s = sn->s;
	struct snap_ent *x;

	if (v->seq > sn->seq)
		return;
	x = ent_find(sn, key, klen);
	if (x && x->h.seq >= v->seq)
		return;
	if (!x) {
		if (store_snap_versions(s) >= SNAP_MAX_VERSIONS) {
			snap_drop(sn, "too many keys changed while it was open");
			return;
		}
		x = calloc(1, sizeof(*x) + klen);
		if (!x) {
			snap_drop(sn, "out of memory");
			return;
		}
		memcpy(x->key, key, klen);
		x->sn = sn;
		x->locs = &x->one;
		x->h = (struct zhold){ .key = x->key, .klen = klen, .kind = ZH_SNAP };
		x->next = sn->ents;
		sn->ents = x;
		sn->n++;
		zholds_add(&s->holds, &x->h);
	}
	ent_clear(s, x);
	x->h.seq = v->seq;
	if (v->nchunks > 1) {
		x->locs = malloc(v->nchunks * sizeof(*x->locs));
		if (!x->locs) {
			x->locs = &x->one;
			snap_drop(sn, "out of memory");
			return;
		}
		memcpy(x->locs, v->chunks, v->nchunks * sizeof(*x->locs));
	} else {
		x->one = v->loc;
	}
	x->nchunks = v->nchunks;
	ent_count(s, x, true);
}

void snap_commit(struct store *s, const void *key, size_t klen, const struct zent *e,
		 const struct zent *old)
{
	struct zsnap *sn, *next;
	struct zent cur;

	for (sn = s->snaps; sn; sn = next) {
		next = sn->next; /* offer may drop sn */
		/*
		 * Once ready, a tombstone need not be kept: the index's newer entry
		 * alone says the key had no value. Before, it must: a put it
		 * deleted may yet be offered, and lose to it.
		 */
		if (old && old->seq && e->seq > sn->seq && (old->nchunks || !sn->ready))
			offer(sn, key, klen, old);
		else if (!old && e->seq <= sn->seq && zidx_get(s->idx, key, klen, &cur) &&
			 cur.seq > sn->seq)
			offer(sn, key, klen, e);
	}
}

void snap_settle(struct store *s)
{
	uint64_t oldest = store_oldest_put(s);
	struct zsnap *sn = s->snaps;

	while (sn) {
		if (!sn->ready && oldest > sn->seq) {
			sn->ready = true;
			sn->fn(sn->arg, 0, sn->seq);
			sn = s->snaps; /* fn may have closed any of them */
		} else {
			sn = sn->next;
		}
	}
}

bool snap_drop_holders(struct store *s)
{
	struct zsnap *sn, *next;
	bool any = false;

	for (sn = s->snaps; sn; sn = next) {
		struct snap_ent *x = sn->ents;

		next = sn->next;
		while (x && !x->nchunks)
			x = x->next;
		if (x) {
			snap_drop(sn, "the device needed the room it held");
			any = true;
		}
	}
	return any;
}

int store_snap_open(struct store *s, zsnap_fn fn, void *arg, struct zsnap **out)
{
	struct zsnap *sn;

	if (s->nsnaps == SNAP_MAX)
		return -EBUSY;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	*sn = (struct zsnap){ .s = s, .seq = s->next_seq - 1, .fn = fn, .arg = arg };
	sn->ready = store_oldest_put(s) > sn->seq;
	sn->next = s->snaps;
	s->snaps = sn;
	s->nsnaps++;
	*out = sn;
	return sn->ready;
}

void store_snap_close(struct zsnap *sn)
{
	if (!sn)
		return;
	if (!sn->dropped) {
		ents_free(sn);
		unlink_snap(sn);
		if (!sn->ready)
			sn->fn(sn->arg, -ECANCELED, sn->seq);
	}
	free(sn);
}

uint64_t store_snap_seq(const struct zsnap *sn)
{
	return sn->seq;
}

int store_snap_check(const struct zsnap *sn, const char **why)
{
	if (sn->dropped) {
		*why = sn->dropped;
		return -ESTALE;
	}
	if (!sn->ready) {
		*why = "the snapshot is not ready yet: wait for its answer";
		return -EAGAIN;
	}
	return 0;
}

size_t store_snap_versions(const struct store *s)
{
	size_t n = 0;

	for (const struct zsnap *sn = s->snaps; sn; sn = sn->next)
		n += sn->n;
	return n;
}

bool snap_find(const struct zsnap *sn, const void *key, size_t klen, struct zent *e)
{
	const struct snap_ent *x = ent_find(sn, key, klen);

	if (x) {
		*e = (struct zent){ .seq = x->h.seq, .nchunks = x->nchunks, .loc = x->one };
		if (x->nchunks > 1)
			e->chunks = x->locs;
		return x->nchunks;
	}
	return zidx_get(sn->s->idx, key, klen, e) && e->nchunks && e->seq <= sn->seq;
}

struct scan_at {
	const struct zsnap *sn;
	zidx_key_fn fn;
	void *arg;
};

static int scan_at_key(const void *key, size_t klen, void *arg)
{
	struct scan_at *a = arg;
	struct zent e;

	return snap_find(a->sn, key, klen, &e) ? a->fn(key, klen, a->arg) : 0;
}

/*
 * A key with a value at S keeps an entry in the index while the snapshot is
 * open (a tombstone over a version kept aside is held, so GC does not forget
 * it): a scan of every entry, tombstones included, finds each such key once.
 */
int store_scan(const struct store *s, const struct zsnap *at, const void *prefix, size_t plen,
	       uint64_t *cursor, size_t count, size_t max_bytes, zidx_key_fn fn, void *arg)
{
	struct scan_at a = { at, fn, arg };

	if (!at)
		return zidx_scan(s->idx, prefix, plen, cursor, count, max_bytes, false, fn, arg);
	return zidx_scan(s->idx, prefix, plen, cursor, count, max_bytes, true, scan_at_key, &a);
}
