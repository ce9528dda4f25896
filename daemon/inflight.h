/*
 * Operations in flight, by key: puts and deletes from the moment they are
 * received until they end, gets from the moment they find their version
 * until they end. Two rules of the store rest on them:
 *
 * - Operations on one key take effect in the order they were received. A
 *   delete behind a put still in flight writes its tombstone; a get waits
 *   for the puts and deletes of its key received before it.
 * - A record is live from the moment it lands, not from the moment the
 *   index points at it: GC copies every record an operation in flight holds
 *   and tells that operation where the copy went. A snapshot's version of a
 *   key, kept aside from the index, is held the same way.
 *
 * The table only links holds; what a hold holds (its records' locations) is
 * its owner's, found from the hold with container_of.
 */
#ifndef ZAPD_INFLIGHT_H
#define ZAPD_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

enum zhold_kind { ZH_PUT, ZH_DEL, ZH_GET, ZH_SNAP };

struct zhold {
	struct zhold *next; /* in its bucket */
	uint64_t hash;
	uint64_t seq;
	const uint8_t *key;
	uint16_t klen;
	uint8_t kind;
};

struct zholds {
	struct zhold **b;
	size_t nb; /* buckets: a power of two */
	size_t n;
	uint64_t k0, k1;
};

int zholds_init(struct zholds *h);
void zholds_done(struct zholds *h);

/* Links x, whose key, klen, seq and kind are set. Never fails: a table that cannot grow chains. */
void zholds_add(struct zholds *h, struct zhold *x);
void zholds_remove(struct zholds *h, struct zhold *x);

/* The hold of key after `after` (NULL: the first one), or NULL: in no particular order. */
struct zhold *zholds_next(const struct zholds *h, const void *key, size_t klen,
			  const struct zhold *after);

#endif
