/*
 * SipHash-1-3 with a caller's key: the hash of tables whose keys clients
 * choose, so that no client can pick keys that collide.
 */
#ifndef ZAPD_SIPHASH_H
#define ZAPD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash13(uint64_t k0, uint64_t k1, const void *data, size_t len);

#endif
