/*
 * The in-memory index: key -> where the newest version of its value lies.
 * Index memory is the limit of the design, so an entry is 24 bytes in a hash
 * table plus its key, with a 2-byte length, in an arena.
 * The newest version is the one with the highest sequence number, whatever
 * order updates arrive in, so puts that complete out of order, recovery
 * scanning zones in any order, and GC relocations all go through one rule.
 * A delete leaves a tombstone entry (nchunks == 0) so that an older put
 * completing later cannot bring the key back.
 */
#ifndef ZAPD_INDEX_H
#define ZAPD_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zloc {
	uint64_t addr; /* device byte address of the record */
	uint32_t len;  /* record length in bytes, block aligned */
};

struct zent {
	uint64_t seq;
	uint32_t nchunks;    /* 0: tombstone */
	struct zloc loc;     /* nchunks <= 1: the record (a tombstone's too) */
	struct zloc *chunks; /* nchunks > 1: the chunks in value order */
};

static inline const struct zloc *zent_chunk(const struct zent *e, uint32_t i)
{
	return e->nchunks > 1 ? &e->chunks[i] : &e->loc;
}

/* Largest sequence number and record length the index can hold. */
#define ZIDX_MAX_SEQ ((1ull << 56) - 1)

struct zidx;

struct zidx *zidx_new(void);
void zidx_free(struct zidx *idx);

/*
 * The newest entry for key, tombstones included, into *e; false if none.
 * e->chunks stays the index's, valid until the next change to the index.
 */
bool zidx_get(const struct zidx *idx, const void *key, size_t klen, struct zent *e);

/*
 * Makes room for n entries at once, so that a restart does not move every
 * entry each time the table grows; zidx_fit then gives back what an
 * overestimate took.
 */
void zidx_reserve(struct zidx *idx, size_t n);
void zidx_fit(struct zidx *idx);

/*
 * Starts loading the slot where key's probe begins. A restart knows the keys
 * it will apply next, and a miss it overlaps with others costs a fraction.
 */
void zidx_prefetch(const struct zidx *idx, const void *key, size_t klen);

/* Bytes the index holds in memory, for stat. */
size_t zidx_memory(const struct zidx *idx);

/*
 * Records e for key if it is newer than what the index holds (the index
 * keeps its own copy of e->chunks). Returns 1 when recorded, and then *old,
 * if old is not NULL, receives the replaced entry with a chunk list that is
 * the caller's (zent_done frees it), or seq 0 if there was none; 0 when e is
 * older than the index's entry; -ENOMEM, the index unchanged.
 */
int zidx_update(struct zidx *idx, const void *key, size_t klen, const struct zent *e,
		struct zent *old);

/*
 * GC moved chunk `chunk` of key's version seq from old_addr to to: the index
 * follows only if it still points at the old copy. 1 if it did, else 0.
 */
int zidx_relocate(struct zidx *idx, const void *key, size_t klen, uint64_t seq, uint32_t chunk,
		  uint64_t old_addr, struct zloc to);

/* Forgets key if its entry is still the tombstone with this seq. 1 if it did. */
int zidx_forget(struct zidx *idx, const void *key, size_t klen, uint64_t seq);

/* Frees the chunk list of an entry the caller owns; accepts entries without one. */
void zent_done(struct zent *e);

/* Number of keys with a live value (tombstones not counted). */
size_t zidx_count(const struct zidx *idx);

typedef int (*zidx_ent_fn)(const void *key, size_t klen, const struct zent *e, void *arg);

/*
 * Every entry, tombstones included, in no particular order; stops at fn's
 * first non-zero. Without keys, fn gets a NULL key: keys lie in insertion
 * order, slots in hash order, and reading each is a cache miss.
 */
int zidx_foreach(const struct zidx *idx, bool keys, zidx_ent_fn fn, void *arg);

typedef int (*zidx_key_fn)(const void *key, size_t klen, void *arg);

/*
 * One step of a scan of the live keys that start with prefix (with tombs,
 * of every key with an entry, tombstones included): *cursor 0
 * starts it; each step hands fn the keys of the next slice of the table, about
 * count of them and not much over max_bytes of keys, and sets *cursor to where
 * the next step goes on, 0 once the scan is done. Each step's work is bounded
 * by count, however many keys the index holds. Slices follow the keys' hashes,
 * which growing the table does not reorder, so a key live from a scan's start
 * to its end is handed over exactly once, and no key twice; one added or
 * deleted meanwhile may or may not be. A cursor is good only for the index
 * that gave it. Returns 0, fn's first non-zero, or -EINVAL for a cursor this
 * index did not give.
 */
int zidx_scan(const struct zidx *idx, const void *prefix, size_t plen, uint64_t *cursor,
	      size_t count, size_t max_bytes, bool tombs, zidx_key_fn fn, void *arg);

/*
 * Live keys that start with prefix and sort after `after` (alen 0: from the
 * start), in byte order, at most limit of them, handed to fn. *more tells
 * whether further keys follow. Returns 0, fn's first non-zero, or -ENOMEM.
 */
int zidx_list(const struct zidx *idx, const void *prefix, size_t plen, const void *after,
	      size_t alen, size_t limit, zidx_key_fn fn, void *arg, bool *more);

#endif
