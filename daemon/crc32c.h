#ifndef ZAPD_CRC32C_H
#define ZAPD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli). Chain calls by passing the previous result; start at 0. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
