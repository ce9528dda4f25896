#include "zones.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
	[ZS_EMPTY] = "empty",	    [ZS_OPEN] = "open",	      [ZS_CLOSED] = "closed",
	[ZS_FILLING] = "filling",   [ZS_FULL] = "full",	      [ZS_META] = "meta",
	[ZS_READONLY] = "readonly", [ZS_OFFLINE] = "offline",
};

const char *zone_state_name(enum zone_state s)
{
	return s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

static uint8_t from_cond(enum zdev_cond c)
{
	switch (c) {
	case ZDEV_EMPTY:
		return ZS_EMPTY;
	case ZDEV_OPEN:
		return ZS_CLOSED;
	case ZDEV_FULL:
		return ZS_FULL;
	case ZDEV_READONLY:
		return ZS_READONLY;
	default:
		return ZS_OFFLINE;
	}
}

int zones_init(struct zones *zs, const struct zdev_info *info, const struct zdev_zone *dz,
	       unsigned want)
{
	memset(zs, 0, sizeof(*zs));
	zs->n = info->nr_zones;
	zs->zone_size = info->zone_size;
	zs->want = want ? want : 1;
	zs->z = calloc(zs->n, sizeof(*zs->z));
	zs->set = calloc(zs->want, sizeof(*zs->set));
	if (!zs->z || !zs->set) {
		zones_done(zs);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < zs->n; i++) {
		zs->z[i].start = dz[i].start;
		zs->z[i].cap = dz[i].cap;
		zs->z[i].used = dz[i].wp;
		zs->z[i].state = i == 0 ? ZS_META : from_cond(dz[i].cond);
	}
	return 0;
}

void zones_done(struct zones *zs)
{
	for (uint32_t i = 0; zs->z && i < zs->n; i++)
		zsum_done(&zs->z[i].sum);
	free(zs->z);
	free(zs->set);
	memset(zs, 0, sizeof(*zs));
}

/* A zone to add to the write set: a partly written one first, so zones fill up. */
static int pick_new(struct zones *zs)
{
	int empty = -1;

	for (uint32_t i = 0; i < zs->n; i++) {
		if (zs->z[i].state == ZS_CLOSED)
			return i;
		if (zs->z[i].state == ZS_EMPTY && empty < 0)
			empty = i;
	}
	return empty;
}

static void retire(struct zones *zs, unsigned slot)
{
	uint32_t zi = zs->set[slot];
	struct zone *z = &zs->z[zi];

	zs->set[slot] = zs->set[--zs->nset];
	z->state = ZS_FILLING;
	if (!z->inflight)
		zs->finish_fn(zs->arg, zi);
}

static void refill(struct zones *zs)
{
	while (zs->nset < zs->want) {
		int zi = pick_new(zs);

		if (zi < 0)
			return;
		zs->z[zi].state = ZS_OPEN;
		zs->set[zs->nset++] = zi;
	}
}

/* Summary room for one entry: the entry, and a share of the parts' headers and padding. */
static uint64_t meta_of(size_t klen)
{
	uint64_t e = zsum_entry_size(klen);

	return e + e / 64 + 1;
}

int zones_reserve(struct zones *zs, uint32_t len, size_t klen, uint32_t *zone)
{
	uint64_t meta = meta_of(klen);

	refill(zs);
	while (zs->nset) {
		unsigned slot = zs->rr++ % zs->nset;
		struct zone *z = &zs->z[zs->set[slot]];

		if (z->used + len + z->meta + meta + ZSUM_BASE_RESERVE <= z->cap) {
			z->used += len;
			z->meta += meta;
			if (++z->inflight > zs->max_inflight)
				zs->max_inflight = z->inflight;
			*zone = zs->set[slot];
			return 0;
		}
		/* At most one record's worth is lost at the end of a zone. */
		retire(zs, slot);
		refill(zs);
	}
	return -ENOSPC;
}

void zones_append_done(struct zones *zs, uint32_t zone)
{
	struct zone *z = &zs->z[zone];

	if (--z->inflight == 0 && z->state == ZS_FILLING)
		zs->finish_fn(zs->arg, zone);
}

void zones_finished(struct zones *zs, uint32_t zone, bool ok)
{
	struct zone *z = &zs->z[zone];

	z->state = ok ? ZS_FULL : ZS_READONLY;
	if (ok)
		z->used = z->cap;
	zsum_done(&z->sum);
}

void zones_note(struct zones *zs, const struct zrec *r, uint64_t addr)
{
	struct zone *z = &zs->z[zones_of(zs, addr)];

	if (!z->sum_lost && zsum_add(&z->sum, r, addr - z->start)) {
		/* A summary missing a record would lose it at restart: better none. */
		z->sum_lost = true;
		zsum_done(&z->sum);
	}
}

void zones_add_live(struct zones *zs, uint64_t addr, uint32_t len)
{
	zs->z[zones_of(zs, addr)].live += len;
}

void zones_sub_live(struct zones *zs, uint64_t addr, uint32_t len)
{
	zs->z[zones_of(zs, addr)].live -= len;
}
