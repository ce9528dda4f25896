/*
 * The pool of I/O buffers: one region, registered with io_uring once, carved
 * by a buddy allocator into block-aligned buffers of 4 KiB up to max_alloc.
 * Registering once lets every read and write use fixed buffers, and one
 * region bounds the daemon's data memory however many clients there are.
 */
#ifndef ZAPD_POOL_H
#define ZAPD_POOL_H

#include <stddef.h>
#include <stdint.h>

#define ZPOOL_MIN 4096u

struct zpool {
	uint8_t *base;
	size_t size;
	unsigned max_order;
	uint8_t *state; /* per 4 KiB page: 0 or 1 + order of a free block starting here */
	uint32_t *next; /* free list links, by page number */
	uint32_t *prev;
	uint32_t *heads; /* per order: first free page, or UINT32_MAX */
	size_t free_bytes;
};

/* size and max_alloc: powers of two, ZPOOL_MIN <= max_alloc <= size. */
int zpool_init(struct zpool *p, size_t size, size_t max_alloc);
void zpool_done(struct zpool *p);

/* A buffer of at least len bytes (len <= max_alloc), or NULL when none is free now. */
void *zpool_alloc(struct zpool *p, size_t len);
/* len: the length asked of zpool_alloc. */
void zpool_free(struct zpool *p, void *buf, size_t len);

static inline size_t zpool_max(const struct zpool *p)
{
	return (size_t)ZPOOL_MIN << p->max_order;
}

#endif
