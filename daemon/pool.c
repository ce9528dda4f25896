#include "pool.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NIL UINT32_MAX

/* Orders past any pool's largest block stop the loop before the shift overflows. */
#define ORDER_LIMIT 40u

static unsigned order_of(size_t len)
{
	unsigned o = 0;

	while (o < ORDER_LIMIT && ((size_t)ZPOOL_MIN << o) < len)
		o++;
	return o;
}

static void push(struct zpool *p, uint32_t pg, unsigned o)
{
	p->state[pg] = o + 1;
	p->prev[pg] = NIL;
	p->next[pg] = p->heads[o];
	if (p->heads[o] != NIL)
		p->prev[p->heads[o]] = pg;
	p->heads[o] = pg;
}

static void unlink_block(struct zpool *p, uint32_t pg, unsigned o)
{
	if (p->prev[pg] != NIL)
		p->next[p->prev[pg]] = p->next[pg];
	else
		p->heads[o] = p->next[pg];
	if (p->next[pg] != NIL)
		p->prev[p->next[pg]] = p->prev[pg];
	p->state[pg] = 0;
}

int zpool_init(struct zpool *p, size_t size, size_t max_alloc)
{
	size_t pages = size / ZPOOL_MIN;

	memset(p, 0, sizeof(*p));
	if (size < ZPOOL_MIN || max_alloc < ZPOOL_MIN || max_alloc > size || (size & (size - 1)) ||
	    (max_alloc & (max_alloc - 1)))
		return -EINVAL;
	/* mmap gives page alignment, which O_DIRECT needs, and untouched pages cost nothing. */
	p->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->base == MAP_FAILED) {
		p->base = NULL;
		return -ENOMEM;
	}
	p->size = size;
	p->max_order = order_of(max_alloc);
	p->state = calloc(pages, 1);
	p->next = calloc(pages, sizeof(*p->next));
	p->prev = calloc(pages, sizeof(*p->prev));
	p->heads = calloc(p->max_order + 1, sizeof(*p->heads));
	if (!p->state || !p->next || !p->prev || !p->heads) {
		zpool_done(p);
		return -ENOMEM;
	}
	for (unsigned o = 0; o <= p->max_order; o++)
		p->heads[o] = NIL;
	for (size_t pg = 0; pg < pages; pg += (size_t)1 << p->max_order)
		push(p, pg, p->max_order);
	p->free_bytes = size;
	return 0;
}

void zpool_done(struct zpool *p)
{
	if (p->base)
		munmap(p->base, p->size);
	free(p->state);
	free(p->next);
	free(p->prev);
	free(p->heads);
	memset(p, 0, sizeof(*p));
}

void *zpool_alloc(struct zpool *p, size_t len)
{
	unsigned want = order_of(len ? len : 1), o = want;
	uint32_t pg;

	if (want > p->max_order)
		return NULL;
	while (o <= p->max_order && p->heads[o] == NIL)
		o++;
	if (o > p->max_order)
		return NULL;
	pg = p->heads[o];
	unlink_block(p, pg, o);
	/* Split, handing the upper halves back to the smaller orders. */
	while (o > want) {
		o--;
		push(p, pg + ((uint32_t)1 << o), o);
	}
	p->free_bytes -= (size_t)ZPOOL_MIN << want;
	return p->base + (size_t)pg * ZPOOL_MIN;
}

void zpool_free(struct zpool *p, void *buf, size_t len)
{
	unsigned o = order_of(len ? len : 1);
	uint32_t pg = ((uint8_t *)buf - p->base) / ZPOOL_MIN;

	p->free_bytes += (size_t)ZPOOL_MIN << o;
	while (o < p->max_order) {
		uint32_t buddy = pg ^ ((uint32_t)1 << o);

		if (p->state[buddy] != o + 1)
			break;
		unlink_block(p, buddy, o);
		pg &= ~((uint32_t)1 << o);
		o++;
	}
	push(p, pg, o);
}
