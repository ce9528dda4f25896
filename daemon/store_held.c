/*
 * Records held by operations in flight: a record is live from the moment it
 * lands, so GC asks here whether a put, delete, get or snapshot holds one,
 * and tells them where the copy went.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- records held by operations in flight, for GC --- */

/* The location of chunk `chunk` that a hold holds, or NULL. */
static struct zloc *held_loc(struct zhold *h, uint32_t chunk)
{
	if (h->kind == ZH_SNAP) {
		return snap_held_loc(h, chunk);
	} else if (h->kind == ZH_GET) {
		struct zget *g = container_of(h, struct zget, h);

		return !g->finding && chunk < g->nchunks ? &g->locs[chunk] : NULL;
	} else {
		struct zput *p = container_of(h, struct zput, h);

		return chunk < p->nchunks && p->locs[chunk].len ? &p->locs[chunk] : NULL;
	}
}

bool store_key_held(const struct store *s, const void *key, size_t klen)
{
	return zholds_next(&s->holds, key, klen, NULL) != NULL;
}

bool store_holds(const struct store *s, const struct zrec *r, uint64_t addr)
{
	for (struct zhold *h = zholds_next(&s->holds, r->key, r->klen, NULL); h;
	     h = zholds_next(&s->holds, r->key, r->klen, h)) {
		struct zloc *l = h->seq == r->seq ? held_loc(h, r->chunk) : NULL;

		if (l && l->addr == addr)
			return true;
	}
	return false;
}

void store_moved(struct store *s, const struct zrec *r, uint64_t from, struct zloc to)
{
	if (zidx_relocate(s->idx, r->key, r->klen, r->seq, r->chunk, from, to))
		zones_move_live(&s->zones, from, to, r->type == ZREC_DEL ? r->seq : 0);
	for (struct zhold *h = zholds_next(&s->holds, r->key, r->klen, NULL); h;
	     h = zholds_next(&s->holds, r->key, r->klen, h)) {
		struct zloc *l = h->seq == r->seq ? held_loc(h, r->chunk) : NULL;

		if (!l || l->addr != from)
			continue;
		*l = to;
		if (h->kind == ZH_PUT || h->kind == ZH_DEL) {
			zones_sub_pending(&s->zones, from, to.len);
			zones_add_pending(&s->zones, to.addr, to.len);
		} else if (h->kind == ZH_SNAP || container_of(h, struct zget, h)->dead) {
			s->zones.z[zones_of(&s->zones, from)].held -= to.len;
			s->zones.z[zones_of(&s->zones, to.addr)].held += to.len;
		}
	}
}

static bool copied_in(const struct store *s, uint64_t addr, uint64_t pass)
{
	return s->zones.z[zones_of(&s->zones, addr)].gc_pass == pass;
}

/* Where the index, or else an operation in flight, has r's chunk now, if in a zone of the pass. */
static bool copy_of(struct store *s, const struct zrec *r, uint64_t pass, uint64_t *at)
{
	struct zent e;

	if (zidx_get(s->idx, r->key, r->klen, &e) && e.seq == r->seq &&
	    r->chunk < MAX(e.nchunks, 1u) && (r->type == ZREC_DEL) == !e.nchunks &&
	    copied_in(s, zent_chunk(&e, r->chunk)->addr, pass)) {
		*at = zent_chunk(&e, r->chunk)->addr;
		return true;
	}
	for (struct zhold *h = zholds_next(&s->holds, r->key, r->klen, NULL); h;
	     h = zholds_next(&s->holds, r->key, r->klen, h)) {
		struct zloc *l = h->seq == r->seq ? held_loc(h, r->chunk) : NULL;

		if (l && copied_in(s, l->addr, pass)) {
			*at = l->addr;
			return true;
		}
	}
	return false;
}

bool store_unmove(struct store *s, const struct zrec *r, uint64_t addr, uint64_t pass)
{
	uint64_t from;

	if (!copy_of(s, r, pass, &from))
		return false;
	store_moved(s, r, from, (struct zloc){ addr, r->len });
	return true;
}
