/*
 * A Bloom filter of the keys with records in one zone. GC asks it whether an
 * older version of a deleted key may still lie in some other zone: only when
 * no zone may hold one can the tombstone go. A false "may" keeps a tombstone
 * a while longer; there is no false "no".
 */
#ifndef ZAPD_BLOOM_H
#define ZAPD_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zbloom {
	uint64_t *bits;
	uint32_t mask; /* bits - 1; a power of two */
};

/* Sized for n keys at about 1% false positives. */
int zbloom_init(struct zbloom *b, size_t n);
void zbloom_done(struct zbloom *b);
void zbloom_add(struct zbloom *b, const void *key, size_t klen);
bool zbloom_may(const struct zbloom *b, const void *key, size_t klen);

#endif
