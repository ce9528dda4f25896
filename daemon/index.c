/*
 * Open addressing with linear probing, keyed by SipHash-1-3 with a random
 * key so that clients cannot choose keys that collide.
 */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"

struct slot {
	uint64_t hash; /* 0: empty */
	uint8_t *key;
	uint32_t klen;
	struct zent e;
};

struct zidx {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t used;
	size_t live;
	uint64_t k0, k1;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

static uint64_t siphash13(const struct zidx *idx, const uint8_t *p, size_t len)
{
	uint64_t v0 = idx->k0 ^ 0x736f6d6570736575ull, v1 = idx->k1 ^ 0x646f72616e646f6dull;
	uint64_t v2 = idx->k0 ^ 0x6c7967656e657261ull, v3 = idx->k1 ^ 0x7465646279746573ull;
	uint64_t b = (uint64_t)len << 56, m;
	size_t left = len & 7;
	const uint8_t *end = p + len - left;

	for (; p != end; p += 8) {
		m = get_le64(p);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (v0 ^ v1 ^ v2 ^ v3) | 1; /* never 0, the empty mark */
}

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
	idx->cap = 1024;
	idx->slots = calloc(idx->cap, sizeof(*idx->slots));
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
	for (size_t i = 0; i < idx->cap; i++) {
		if (!idx->slots[i].hash)
			continue;
		free(idx->slots[i].key);
		zent_done(&idx->slots[i].e);
	}
	free(idx->slots);
	free(idx);
}

static struct slot *probe(const struct zidx *idx, uint64_t h, const void *key, size_t klen)
{
	size_t mask = idx->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &idx->slots[i];

		if (!s->hash)
			return s;
		if (s->hash == h && s->klen == klen && !memcmp(s->key, key, klen))
			return s;
	}
}

const struct zent *zidx_find(const struct zidx *idx, const void *key, size_t klen)
{
	struct slot *s = probe(idx, siphash13(idx, key, klen), key, klen);

	return s->hash ? &s->e : NULL;
}

static int grow(struct zidx *idx)
{
	struct slot *old = idx->slots;
	size_t ocap = idx->cap;

	idx->slots = calloc(ocap * 2, sizeof(*idx->slots));
	if (!idx->slots) {
		idx->slots = old;
		return -ENOMEM;
	}
	idx->cap = ocap * 2;
	for (size_t i = 0; i < ocap; i++) {
		if (old[i].hash)
			*probe(idx, old[i].hash, old[i].key, old[i].klen) = old[i];
	}
	free(old);
	return 0;
}

int zidx_update(struct zidx *idx, const void *key, size_t klen, const struct zent *e,
		struct zent *old)
{
	uint64_t h = siphash13(idx, key, klen);
	struct slot *s = probe(idx, h, key, klen);

	if (s->hash && s->e.seq >= e->seq)
		return 0;
	if (!s->hash) {
		if ((idx->used + 1) * 4 > idx->cap * 3) {
			if (grow(idx))
				return -ENOMEM;
			s = probe(idx, h, key, klen);
		}
		s->key = malloc(klen);
		if (!s->key)
			return -ENOMEM;
		memcpy(s->key, key, klen);
		s->klen = klen;
		s->hash = h;
		s->e = (struct zent){ 0 };
		idx->used++;
	}
	idx->live += (e->nchunks != 0) - (s->e.nchunks != 0);
	if (old)
		*old = s->e;
	else
		zent_done(&s->e);
	s->e = *e;
	return 1;
}

int zidx_relocate(struct zidx *idx, const void *key, size_t klen, uint64_t seq, uint32_t chunk,
		  uint64_t old_addr, struct zloc to)
{
	struct slot *s = probe(idx, siphash13(idx, key, klen), key, klen);
	struct zloc *l;

	if (!s->hash || s->e.seq != seq || chunk >= MAX(s->e.nchunks, 1u))
		return 0;
	l = s->e.nchunks > 1 ? &s->e.chunks[chunk] : &s->e.loc;
	if (l->addr != old_addr)
		return 0;
	*l = to;
	return 1;
}

/* Backward-shift deletion: later slots of the probe run move up, so no tombstone marks. */
static void remove_slot(struct zidx *idx, size_t hole)
{
	size_t mask = idx->cap - 1;

	for (size_t i = (hole + 1) & mask; idx->slots[i].hash; i = (i + 1) & mask) {
		size_t home = idx->slots[i].hash & mask;

		/* Slot i may fill the hole only if its home is not in (hole, i]. */
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			idx->slots[hole] = idx->slots[i];
			hole = i;
		}
	}
	idx->slots[hole] = (struct slot){ 0 };
	idx->used--;
}

int zidx_forget(struct zidx *idx, const void *key, size_t klen, uint64_t seq)
{
	struct slot *s = probe(idx, siphash13(idx, key, klen), key, klen);

	if (!s->hash || s->e.seq != seq || s->e.nchunks)
		return 0;
	free(s->key);
	remove_slot(idx, s - idx->slots);
	return 1;
}

size_t zidx_count(const struct zidx *idx)
{
	return idx->live;
}

int zidx_foreach(const struct zidx *idx, zidx_ent_fn fn, void *arg)
{
	int ret = 0;

	for (size_t i = 0; i < idx->cap && !ret; i++) {
		const struct slot *s = &idx->slots[i];

		if (s->hash)
			ret = fn(s->key, s->klen, &s->e, arg);
	}
	return ret;
}

static int keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, MIN(alen, blen));

	return c ? c : (alen > blen) - (alen < blen);
}

static int slotcmp(const struct slot *a, const struct slot *b)
{
	return keycmp(a->key, a->klen, b->key, b->klen);
}

/* A max-heap of the smallest keys seen so far: the root is the first to drop. */
static void sift_down(const struct slot **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n && slotcmp(h[l], h[m]) > 0)
			m = l;
		if (r < n && slotcmp(h[r], h[m]) > 0)
			m = r;
		if (m == i)
			return;
		const struct slot *t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void sift_up(const struct slot **h, size_t i)
{
	while (i && slotcmp(h[(i - 1) / 2], h[i]) < 0) {
		const struct slot *t = h[i];
		h[i] = h[(i - 1) / 2];
		h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static bool listed(const struct slot *s, const void *prefix, size_t plen, const void *after,
		   size_t alen)
{
	return s->hash && s->e.nchunks && s->klen >= plen &&
	       (!plen || !memcmp(s->key, prefix, plen)) &&
	       (!alen || keycmp(s->key, s->klen, after, alen) > 0);
}

static int cmp_qsort(const void *a, const void *b)
{
	return slotcmp(*(const struct slot *const *)a, *(const struct slot *const *)b);
}

int zidx_list(const struct zidx *idx, const void *prefix, size_t plen, const void *after,
	      size_t alen, size_t limit, zidx_key_fn fn, void *arg, bool *more)
{
	/* One slot beyond the limit tells whether more keys follow. */
	size_t keep = limit + 1, n = 0;
	const struct slot **heap = malloc(keep * sizeof(*heap));
	int ret = 0;

	if (!heap)
		return -ENOMEM;
	for (size_t i = 0; i < idx->cap; i++) {
		const struct slot *s = &idx->slots[i];

		if (!listed(s, prefix, plen, after, alen))
			continue;
		if (n < keep) {
			heap[n] = s;
			sift_up(heap, n++);
		} else if (slotcmp(s, heap[0]) < 0) {
			heap[0] = s;
			sift_down(heap, n, 0);
		}
	}
	*more = n > limit;
	n = MIN(n, limit);
	qsort(heap, *more ? n + 1 : n, sizeof(*heap), cmp_qsort);
	for (size_t i = 0; i < n && !ret; i++)
		ret = fn(heap[i]->key, heap[i]->klen, arg);
	free(heap);
	return ret;
}
