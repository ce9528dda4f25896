/*
 * Open addressing with linear probing, keyed by SipHash-1-3 with a random
 * key so that clients cannot choose keys that collide. A slot is three words:
 *
 *   key  the key's offset in the arena << 28 | the top 28 bits of its hash;
 *        0: empty. The slot a key belongs at comes from those 28 bits
 *        alone, so growing the table never reads keys back.
 *   seq  sequence number << 8 | flags
 *   loc  one record: its device address / 8 << 20 | its length / 8 (records
 *        start on 8 bytes: 128 TiB of device, records up to 8 MiB);
 *        a value in several records: a pointer to its chunk list
 *
 * Keys live in an arena of segments, each key as a 2-byte length and the
 * bytes. A segment is an eighth of the arena so far (64 KiB to 4 MiB), so
 * the unused end of the last one stays a small part of the whole. The table
 * grows by half when 80% full, so it stays between 53% and 80% full: 30 to
 * 45 bytes a key, 33 to 48 with the arena's 2 and its unused end.
 */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "siphash.h"
#include "util.h"

#define F_TOMB	0x1u
#define F_MULTI 0x2u

#define UNIT	     8u /* records' alignment */
#define LEN_BITS     20
#define TAG_BITS     28
#define OFF_BITS     (64 - TAG_BITS)
#define SEG_BITS     22 /* a key's offset: segment << SEG_BITS | position */
#define SEG_MAX	     (1u << SEG_BITS)
#define SEG_MIN	     (64u << 10)
#define MIN_CAP	     1024u
#define GROW_PERCENT 80u

struct slot {
	uint64_t key;
	uint64_t seq;
	uint64_t loc;
};

struct chunks {
	uint32_t n;
	struct zloc c[];
};

struct seg {
	uint8_t *p;
	size_t size;
};

/* Where keys go in an arena: the same keys in the same order land in the same places. */
struct place {
	size_t nsegs;
	size_t pos;   /* bytes used of the last segment */
	size_t last;  /* the last segment's size */
	size_t bytes; /* every segment's size */
};

struct zidx {
	struct slot *slots;
	size_t cap;
	size_t used;
	size_t live;
	struct seg *segs;
	struct place arena;
	size_t dead; /* arena bytes of keys forgotten */
	uint64_t k0, k1;
	uint32_t run; /* marks this index's scan cursors */
};

static uint64_t key_hash(const struct zidx *idx, const void *key, size_t klen)
{
	return siphash13(idx->k0, idx->k1, key, klen);
}

/* --- slots --- */

static uint64_t tag_of(uint64_t h)
{
	return h >> OFF_BITS;
}

static size_t home_of_tag(const struct zidx *idx, uint64_t tag)
{
	return tag * idx->cap >> TAG_BITS;
}

static size_t home(const struct zidx *idx, uint64_t h)
{
	return home_of_tag(idx, tag_of(h));
}

static uint64_t slot_tag(const struct slot *s)
{
	return s->key & ((1u << TAG_BITS) - 1);
}

static size_t slot_home(const struct zidx *idx, const struct slot *s)
{
	return home_of_tag(idx, slot_tag(s));
}

static const uint8_t *key_at(const struct zidx *idx, const struct slot *s, size_t *klen)
{
	uint64_t off = s->key >> TAG_BITS;
	const uint8_t *p = idx->segs[off >> SEG_BITS].p + (off & (SEG_MAX - 1));

	*klen = get_le16(p);
	return p + 2;
}

/* The slot holding key, or the empty slot where it would go. */
static struct slot *probe(const struct zidx *idx, uint64_t h, const void *key, size_t klen)
{
	uint64_t tag = tag_of(h);

	for (size_t i = home(idx, h);; i = i + 1 == idx->cap ? 0 : i + 1) {
		struct slot *s = &idx->slots[i];
		const uint8_t *k;
		size_t l;

		if (!s->key)
			return s;
		if (slot_tag(s) != tag)
			continue;
		k = key_at(idx, s, &l);
		if (l == klen && !memcmp(k, key, klen))
			return s;
	}
}

static void decode(const struct slot *s, struct zent *e)
{
	*e = (struct zent){ .seq = s->seq >> 8 };
	if (s->seq & F_MULTI) {
		const struct chunks *ch = (const struct chunks *)(uintptr_t)s->loc;

		e->nchunks = ch->n;
		e->chunks = (struct zloc *)ch->c;
		return;
	}
	e->nchunks = s->seq & F_TOMB ? 0 : 1;
	e->loc.addr = (s->loc >> LEN_BITS) * UNIT;
	e->loc.len = (s->loc & ((1u << LEN_BITS) - 1)) * UNIT;
}

static uint64_t pack_loc(const struct zloc *l)
{
	return (l->addr / UNIT) << LEN_BITS | l->len / UNIT;
}

/* Writes e into s (the index's own copy of its chunks). */
static int encode(struct slot *s, const struct zent *e)
{
	struct chunks *ch;

	if (e->nchunks <= 1) {
		s->seq = e->seq << 8 | (e->nchunks ? 0 : F_TOMB);
		s->loc = pack_loc(&e->loc);
		return 0;
	}
	ch = malloc(sizeof(*ch) + e->nchunks * sizeof(ch->c[0]));
	if (!ch)
		return -ENOMEM;
	ch->n = e->nchunks;
	memcpy(ch->c, e->chunks, e->nchunks * sizeof(ch->c[0]));
	s->seq = e->seq << 8 | F_MULTI;
	s->loc = (uintptr_t)ch;
	return 0;
}

static void slot_free_chunks(struct slot *s)
{
	if (s->seq & F_MULTI)
		free((void *)(uintptr_t)s->loc);
}

/*
 * The table and the arena are read at random, a miss each: on 2 MiB pages the
 * misses stop being TLB misses too, and filling 300 MB after a restart takes
 * 150 page faults instead of 75,000 (each costly in a VM). Small ones stay on
 * the heap.
 */
#define HUGE_PAGE (2u << 20)

static void *big_alloc(size_t bytes)
{
	void *p;

	if (bytes < HUGE_PAGE)
		return calloc(1, bytes);
	/* mmap, not malloc: fresh and zero, untouched until used, and given back whole. */
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, bytes, MADV_HUGEPAGE); /* advice: small pages do too */
	return p;
}

static void big_free(void *p, size_t bytes)
{
	if (bytes < HUGE_PAGE)
		free(p);
	else if (p)
		munmap(p, bytes);
}

/* --- the arena --- */

/* The next segment: an eighth of the arena so far, a power of two. */
static size_t seg_size_next(size_t bytes)
{
	size_t size = SEG_MIN;

	while (size < SEG_MAX && size * 8 < bytes)
		size *= 2;
	return size;
}

/* Places a key of klen at *off; true if it opens a segment (of pl->last bytes). */
static bool place_key(struct place *pl, size_t klen, uint64_t *off)
{
	bool opens = !pl->nsegs || pl->pos + 2 + klen > pl->last;

	if (opens) {
		pl->last = seg_size_next(pl->bytes);
		pl->bytes += pl->last;
		/* Offset 0 would make an empty slot's key word: never use it. */
		pl->pos = pl->nsegs++ ? 0 : 2;
	}
	*off = (uint64_t)(pl->nsegs - 1) << SEG_BITS | pl->pos;
	pl->pos += 2 + klen;
	return opens;
}

static int seg_add(struct seg **segs, size_t n, size_t size)
{
	struct seg *s;

	/* Offsets have OFF_BITS. */
	if ((uint64_t)(n + 1) << SEG_BITS >> OFF_BITS)
		return -ENOMEM;
	s = realloc(*segs, (n + 1) * sizeof(*s));
	if (!s)
		return -ENOMEM;
	*segs = s;
	s[n].size = size;
	s[n].p = big_alloc(size);
	return s[n].p ? 0 : -ENOMEM;
}

static void segs_free(struct seg *segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		big_free(segs[i].p, segs[i].size);
	free(segs);
}

static void key_write(struct seg *segs, uint64_t off, const void *key, size_t klen)
{
	uint8_t *p = segs[off >> SEG_BITS].p + (off & (SEG_MAX - 1));

	put_le16(p, klen);
	memcpy(p + 2, key, klen);
}

static int arena_put(struct zidx *idx, const void *key, size_t klen, uint64_t *off)
{
	struct place pl = idx->arena;

	if (place_key(&pl, klen, off) && seg_add(&idx->segs, idx->arena.nsegs, pl.last))
		return -ENOMEM;
	idx->arena = pl;
	key_write(idx->segs, *off, key, klen);
	return 0;
}

/*
 * Once forgotten keys are most of the arena, the live ones move to a new one:
 * first every segment is found, so that moving cannot fail halfway.
 */
static void arena_compact(struct zidx *idx)
{
	struct place pl = { 0 };
	struct seg *segs = NULL;
	uint64_t off;
	size_t klen;

	if (idx->dead < (4u << 20) || idx->dead * 2 < idx->arena.bytes)
		return;
	for (size_t i = 0; i < idx->cap; i++) {
		size_t n = pl.nsegs;

		if (!idx->slots[i].key)
			continue;
		key_at(idx, &idx->slots[i], &klen);
		if (place_key(&pl, klen, &off) && seg_add(&segs, n, pl.last)) {
			segs_free(segs, n);
			return; /* no memory to compact with: the old arena stays */
		}
	}
	pl = (struct place){ 0 };
	for (size_t i = 0; i < idx->cap; i++) {
		struct slot *s = &idx->slots[i];
		const uint8_t *k;

		if (!s->key)
			continue;
		k = key_at(idx, s, &klen);
		place_key(&pl, klen, &off);
		key_write(segs, off, k, klen);
		s->key = off << TAG_BITS | slot_tag(s);
	}
	segs_free(idx->segs, idx->arena.nsegs);
	idx->segs = segs;
	idx->arena = pl;
	idx->dead = 0;
}

/* --- the table --- */

struct zidx *zidx_new(void)
{
	struct zidx *idx = calloc(1, sizeof(*idx));
	uint64_t k[2];

	if (!idx)
		return NULL;
	if (getrandom(k, sizeof(k), 0) != sizeof(k))
		k[0] = (uintptr_t)idx, k[1] = (uintptr_t)&k;
	idx->k0 = k[0];
	idx->k1 = k[1];
	idx->run = (uint32_t)(k[0] >> 32) | 1;
	idx->cap = MIN_CAP;
	idx->slots = big_alloc(idx->cap * sizeof(*idx->slots));
	if (!idx->slots) {
		free(idx);
		return NULL;
	}
	return idx;
}

void zent_done(struct zent *e)
{
	if (e->nchunks > 1)
		free(e->chunks);
	e->chunks = NULL;
}

void zidx_free(struct zidx *idx)
{
	if (!idx)
		return;
	for (size_t i = 0; i < idx->cap; i++)
		slot_free_chunks(&idx->slots[i]);
	big_free(idx->slots, idx->cap * sizeof(*idx->slots));
	segs_free(idx->segs, idx->arena.nsegs);
	free(idx);
}

bool zidx_get(const struct zidx *idx, const void *key, size_t klen, struct zent *e)
{
	struct slot *s = probe(idx, key_hash(idx, key, klen), key, klen);

	if (!s->key)
		return false;
	decode(s, e);
	return true;
}

void zidx_prefetch(const struct zidx *idx, const void *key, size_t klen)
{
	__builtin_prefetch(&idx->slots[home(idx, key_hash(idx, key, klen))]);
}

/* Moves every entry into a table of cap slots; the tags say where, no key is read. */
static int rehash(struct zidx *idx, size_t cap)
{
	struct slot *old = idx->slots;
	size_t ocap = idx->cap;

	idx->cap = cap;
	idx->slots = big_alloc(idx->cap * sizeof(*idx->slots));
	if (!idx->slots) {
		idx->slots = old;
		idx->cap = ocap;
		return -ENOMEM;
	}
	for (size_t i = 0; i < ocap; i++) {
		size_t j;

		if (!old[i].key)
			continue;
		for (j = slot_home(idx, &old[i]); idx->slots[j].key;)
			j = j + 1 == idx->cap ? 0 : j + 1;
		idx->slots[j] = old[i];
	}
	big_free(old, ocap * sizeof(*old));
	return 0;
}

static int grow(struct zidx *idx)
{
	return rehash(idx, idx->cap + idx->cap / 2);
}

void zidx_reserve(struct zidx *idx, size_t n)
{
	size_t cap = n * 100 / GROW_PERCENT + 1;

	if (cap > idx->cap)
		rehash(idx, cap); /* without the memory, the table grows as it goes */
}

void zidx_fit(struct zidx *idx)
{
	if (idx->cap > MIN_CAP && idx->used * 100 < idx->cap * 40)
		rehash(idx, MAX(MIN_CAP, idx->used * 100 / 60));
}

/* A new slot for key, keyed and empty of any entry. */
static struct slot *insert(struct zidx *idx, uint64_t h, const void *key, size_t klen)
{
	struct slot *s;
	uint64_t off;

	if ((idx->used + 1) * 100 > idx->cap * GROW_PERCENT && grow(idx))
		return NULL;
	if (arena_put(idx, key, klen, &off))
		return NULL;
	s = probe(idx, h, key, klen);
	s->key = off << TAG_BITS | tag_of(h);
	idx->used++;
	return s;
}

/* Backward-shift deletion: later slots of the probe run move up, so no tombstone marks. */
static void remove_slot(struct zidx *idx, size_t hole)
{
	for (size_t i = hole + 1 == idx->cap ? 0 : hole + 1; idx->slots[i].key;
	     i = i + 1 == idx->cap ? 0 : i + 1) {
		size_t h = slot_home(idx, &idx->slots[i]);

		/* Slot i may fill the hole only if its home is not in (hole, i]. */
		if ((i + idx->cap - h) % idx->cap >= (i + idx->cap - hole) % idx->cap) {
			idx->slots[hole] = idx->slots[i];
			hole = i;
		}
	}
	idx->slots[hole] = (struct slot){ 0 };
	idx->used--;
}

int zidx_update(struct zidx *idx, const void *key, size_t klen, const struct zent *e,
		struct zent *old)
{
	uint64_t h = key_hash(idx, key, klen);
	struct slot *s = probe(idx, h, key, klen);
	struct slot prev = *s;
	struct zent was = { 0 };
	struct zloc *copy = NULL;

	if (e->seq > ZIDX_MAX_SEQ)
		return -EOVERFLOW;
	if (s->key) {
		decode(s, &was);
		if (was.seq >= e->seq)
			return 0;
		/* The replaced chunks go to the caller: copied while failing changes nothing. */
		if (old && was.nchunks > 1) {
			copy = malloc(was.nchunks * sizeof(*copy));
			if (!copy)
				return -ENOMEM;
			memcpy(copy, was.chunks, was.nchunks * sizeof(*copy));
		}
	} else {
		s = insert(idx, h, key, klen);
		if (!s)
			return -ENOMEM;
		prev = *s;
	}
	if (encode(s, e)) {
		free(copy);
		*s = prev;
		if (!prev.seq) {
			/* A key just added holds no entry yet: it goes again. */
			idx->dead += 2 + klen;
			remove_slot(idx, s - idx->slots);
		}
		return -ENOMEM;
	}
	idx->live += (e->nchunks != 0) - (prev.seq && was.nchunks != 0);
	if (old) {
		*old = was;
		old->chunks = copy;
	}
	if (prev.seq)
		slot_free_chunks(&prev);
	return 1;
}

int zidx_relocate(struct zidx *idx, const void *key, size_t klen, uint64_t seq, uint32_t chunk,
		  uint64_t old_addr, struct zloc to)
{
	struct slot *s = probe(idx, key_hash(idx, key, klen), key, klen);
	struct zent e;

	if (!s->key)
		return 0;
	decode(s, &e);
	if (e.seq != seq || chunk >= MAX(e.nchunks, 1u) || zent_chunk(&e, chunk)->addr != old_addr)
		return 0;
	if (e.nchunks > 1)
		e.chunks[chunk] = to;
	else
		s->loc = pack_loc(&to);
	return 1;
}

int zidx_forget(struct zidx *idx, const void *key, size_t klen, uint64_t seq)
{
	struct slot *s = probe(idx, key_hash(idx, key, klen), key, klen);

	if (!s->key || s->seq >> 8 != seq || !(s->seq & F_TOMB))
		return 0;
	idx->dead += 2 + klen;
	remove_slot(idx, s - idx->slots);
	arena_compact(idx);
	return 1;
}

size_t zidx_count(const struct zidx *idx)
{
	return idx->live;
}

size_t zidx_memory(const struct zidx *idx)
{
	return idx->cap * sizeof(struct slot) + idx->arena.bytes;
}

int zidx_foreach(const struct zidx *idx, bool keys, zidx_ent_fn fn, void *arg)
{
	int ret = 0;

	for (size_t i = 0; i < idx->cap && !ret; i++) {
		const struct slot *s = &idx->slots[i];
		const uint8_t *k = NULL;
		struct zent e;
		size_t klen = 0;

		if (!s->key)
			continue;
		if (keys)
			k = key_at(idx, s, &klen);
		decode(s, &e);
		ret = fn(k, klen, &e, arg);
	}
	return ret;
}

/* --- listing --- */

struct lkey {
	const uint8_t *k;
	size_t len;
};

static int keycmp(const struct lkey *a, const struct lkey *b)
{
	int c = memcmp(a->k, b->k, MIN(a->len, b->len));

	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* A max-heap of the smallest keys seen so far: the root is the first to drop. */
static void sift_down(struct lkey *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct lkey t;

		if (l < n && keycmp(&h[l], &h[m]) > 0)
			m = l;
		if (r < n && keycmp(&h[r], &h[m]) > 0)
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void sift_up(struct lkey *h, size_t i)
{
	while (i && keycmp(&h[(i - 1) / 2], &h[i]) < 0) {
		struct lkey t = h[i];

		h[i] = h[(i - 1) / 2];
		h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static int cmp_qsort(const void *a, const void *b)
{
	return keycmp(a, b);
}

int zidx_list(const struct zidx *idx, const void *prefix, size_t plen, const void *after,
	      size_t alen, size_t limit, zidx_key_fn fn, void *arg, bool *more)
{
	/* One key beyond the limit tells whether more follow. */
	size_t keep = limit + 1, n = 0;
	struct lkey *heap = malloc(keep * sizeof(*heap));
	struct lkey from = { after, alen };
	int ret = 0;

	if (!heap)
		return -ENOMEM;
	for (size_t i = 0; i < idx->cap; i++) {
		const struct slot *s = &idx->slots[i];
		struct lkey k;

		if (!s->key || (s->seq & F_TOMB))
			continue;
		k.k = key_at(idx, s, &k.len);
		if (k.len < plen || (plen && memcmp(k.k, prefix, plen)) ||
		    (alen && keycmp(&k, &from) <= 0))
			continue;
		if (n < keep) {
			heap[n] = k;
			sift_up(heap, n++);
		} else if (keycmp(&k, &heap[0]) < 0) {
			heap[0] = k;
			sift_down(heap, n, 0);
		}
	}
	*more = n > limit;
	if (n)
		qsort(heap, n, sizeof(*heap), cmp_qsort);
	n = MIN(n, limit);
	for (size_t i = 0; i < n && !ret; i++)
		ret = fn(heap[i].k, heap[i].len, arg);
	free(heap);
	return ret;
}

/* --- scanning --- */

#define TAG_END (1u << TAG_BITS)

/* The first tag whose home is slot j or later. */
static uint64_t tag_from(const struct zidx *idx, size_t j)
{
	return j >= idx->cap ? TAG_END : (((uint64_t)j << TAG_BITS) + idx->cap - 1) / idx->cap;
}

/*
 * Hands fn the live keys with prefix whose tags lie in [t0, t1), adding their
 * bytes to *bytes. A key sits in the run of full slots from its home on: the
 * walk covers every home of the range and the run it ends in.
 */
static int scan_range(const struct zidx *idx, const void *prefix, size_t plen, uint64_t t0,
		      uint64_t t1, bool tombs, zidx_key_fn fn, void *arg, size_t *bytes)
{
	size_t j0 = home_of_tag(idx, t0), span = home_of_tag(idx, t1 - 1) - j0;
	int ret = 0;

	for (size_t n = 0, j = j0; n < idx->cap && !ret; n++, j = j + 1 == idx->cap ? 0 : j + 1) {
		const struct slot *s = &idx->slots[j];
		const uint8_t *k;
		size_t klen;

		if (!s->key) {
			if (n > span)
				break;
			continue;
		}
		if (slot_tag(s) < t0 || slot_tag(s) >= t1 || (!tombs && (s->seq & F_TOMB)))
			continue;
		k = key_at(idx, s, &klen);
		if (klen < plen || (plen && memcmp(k, prefix, plen)))
			continue;
		*bytes += klen;
		if (fn)
			ret = fn(k, klen, arg);
	}
	return ret;
}

int zidx_scan(const struct zidx *idx, const void *prefix, size_t plen, uint64_t *cursor,
	      size_t count, size_t max_bytes, bool tombs, zidx_key_fn fn, void *arg)
{
	uint64_t t0 = *cursor & 0xffffffffu, t1;
	size_t bytes;
	int ret;

	if (*cursor && (*cursor >> 32 != idx->run || t0 >= TAG_END))
		return -EINVAL;
	if (!(tombs ? idx->used : idx->live)) {
		*cursor = 0;
		return 0;
	}
	/* At least 53% full: twice count slots hold about count keys. */
	t1 = tag_from(idx, home_of_tag(idx, t0) + MAX(count, 1) * 2);
	/* Narrow the slice until its keys fit, down to one tag, whose keys stay together. */
	for (;;) {
		bytes = 0;
		scan_range(idx, prefix, plen, t0, t1, tombs, NULL, NULL, &bytes);
		if (bytes <= max_bytes || t1 - t0 == 1)
			break;
		t1 = t0 + (t1 - t0) / 2;
	}
	ret = scan_range(idx, prefix, plen, t0, t1, tombs, fn, arg, &bytes);
	*cursor = t1 == TAG_END ? 0 : (uint64_t)idx->run << 32 | t1;
	return ret;
}
