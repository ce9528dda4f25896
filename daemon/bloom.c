#include "bloom.h"

#include <errno.h>
#include <stdlib.h>

#include "crc32c.h"

#define PROBES 7

int zbloom_init(struct zbloom *b, size_t n)
{
	size_t bits = 64;

	/* 10 bits a key, rounded up to a power of two. */
	while (bits < n * 10 && bits < (1ull << 31))
		bits <<= 1;
	b->bits = calloc(bits / 64, sizeof(uint64_t));
	if (!b->bits)
		return -ENOMEM;
	b->mask = bits - 1;
	return 0;
}

void zbloom_done(struct zbloom *b)
{
	free(b->bits);
	b->bits = NULL;
	b->mask = 0;
}

/* Probe i at h1 + i * h2 (Kirsch and Mitzenmacher); h2 is h1 mixed (murmur3's finaliser). */
static void hashes(const void *key, size_t klen, uint32_t *h1, uint32_t *h2)
{
	uint32_t h = crc32c(0, key, klen);

	*h1 = h;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	*h2 = h | 1;
}

void zbloom_add(struct zbloom *b, const void *key, size_t klen)
{
	uint32_t h1, h2;

	hashes(key, klen, &h1, &h2);
	for (int i = 0; i < PROBES; i++, h1 += h2)
		b->bits[(h1 & b->mask) / 64] |= 1ull << (h1 & 63);
}

bool zbloom_may(const struct zbloom *b, const void *key, size_t klen)
{
	uint32_t h1, h2;

	if (!b->bits)
		return false;
	hashes(key, klen, &h1, &h2);
	for (int i = 0; i < PROBES; i++, h1 += h2) {
		if (!(b->bits[(h1 & b->mask) / 64] & (1ull << (h1 & 63))))
			return false;
	}
	return true;
}
