#include "inflight.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "siphash.h"

#define MIN_BUCKETS 1024u

int zholds_init(struct zholds *h)
{
	uint64_t k[2] = { 0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull };

	memset(h, 0, sizeof(*h));
	/* Without entropy the table still works; only its keys become guessable. */
	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != sizeof(k))
		k[0] ^= (uintptr_t)h;
	h->k0 = k[0];
	h->k1 = k[1];
	h->b = calloc(MIN_BUCKETS, sizeof(*h->b));
	if (!h->b)
		return -ENOMEM;
	h->nb = MIN_BUCKETS;
	return 0;
}

void zholds_done(struct zholds *h)
{
	free(h->b);
	memset(h, 0, sizeof(*h));
}

static void link_in(struct zhold **b, size_t nb, struct zhold *x)
{
	struct zhold **head = &b[x->hash & (nb - 1)];

	x->next = *head;
	*head = x;
}

static void grow(struct zholds *h)
{
	size_t nb = h->nb * 2;
	struct zhold **b = calloc(nb, sizeof(*b));

	if (!b)
		return;
	for (size_t i = 0; i < h->nb; i++) {
		while (h->b[i]) {
			struct zhold *x = h->b[i];

			h->b[i] = x->next;
			link_in(b, nb, x);
		}
	}
	free(h->b);
	h->b = b;
	h->nb = nb;
}

void zholds_add(struct zholds *h, struct zhold *x)
{
	x->hash = siphash13(h->k0, h->k1, x->key, x->klen);
	if (++h->n > h->nb)
		grow(h);
	link_in(h->b, h->nb, x);
}

void zholds_remove(struct zholds *h, struct zhold *x)
{
	struct zhold **pp = &h->b[x->hash & (h->nb - 1)];

	while (*pp != x)
		pp = &(*pp)->next;
	*pp = x->next;
	h->n--;
}

static bool same_key(const struct zhold *x, uint64_t hash, const void *key, size_t klen)
{
	return x->hash == hash && x->klen == klen && !memcmp(x->key, key, klen);
}

struct zhold *zholds_next(const struct zholds *h, const void *key, size_t klen,
			  const struct zhold *after)
{
	uint64_t hash = after ? after->hash : siphash13(h->k0, h->k1, key, klen);
	struct zhold *x = after ? after->next : h->b[hash & (h->nb - 1)];

	while (x && !same_key(x, hash, key, klen))
		x = x->next;
	return x;
}
