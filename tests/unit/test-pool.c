/* The buddy allocator of the I/O buffer pool, checked against a shadow map of its pages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pool.h"
#include "util.h"

/* Bytes a request of len takes from the pool: the next power of two of at least 4 KiB. */
static size_t block_of(size_t len)
{
	size_t b = ZPOOL_MIN;

	while (b < len)
		b <<= 1;
	return b;
}

/* Which 4 KiB pages are handed out, so that overlaps show. */
struct shadow {
	const struct zpool *p;
	uint8_t *used;
};

static void shadow_init(struct shadow *s, const struct zpool *p)
{
	s->p = p;
	s->used = calloc(p->size / ZPOOL_MIN, 1);
	assert_non_null(s->used);
}

static void shadow_take(struct shadow *s, void *buf, size_t len)
{
	uint8_t *b = buf;
	size_t first, n = block_of(len) / ZPOOL_MIN;

	assert_non_null(b);
	assert_true(b >= s->p->base && b + block_of(len) <= s->p->base + s->p->size);
	assert_int_equal((uintptr_t)b % ZPOOL_MIN, 0);
	/* A buddy block is aligned to its own size within the region. */
	assert_int_equal((size_t)(b - s->p->base) % block_of(len), 0);
	first = (b - s->p->base) / ZPOOL_MIN;
	for (size_t i = first; i < first + n; i++) {
		assert_int_equal(s->used[i], 0);
		s->used[i] = 1;
	}
}

static void shadow_give(struct shadow *s, void *buf, size_t len)
{
	size_t first = ((uint8_t *)buf - s->p->base) / ZPOOL_MIN;

	for (size_t i = first; i < first + block_of(len) / ZPOOL_MIN; i++) {
		assert_int_equal(s->used[i], 1);
		s->used[i] = 0;
	}
}

/* Whether some block of this size, aligned to it, is wholly free. */
static bool shadow_has_free(const struct shadow *s, size_t block)
{
	size_t n = block / ZPOOL_MIN, pages = s->p->size / ZPOOL_MIN;

	for (size_t first = 0; first < pages; first += n) {
		size_t i = first;

		while (i < first + n && !s->used[i])
			i++;
		if (i == first + n)
			return true;
	}
	return false;
}

static void test_init_rejects(void **state)
{
	struct zpool p;

	assert_int_equal(zpool_init(&p, 3 * ZPOOL_MIN, ZPOOL_MIN), -EINVAL);
	assert_int_equal(zpool_init(&p, 5 * ZPOOL_MIN, ZPOOL_MIN), -EINVAL);
	assert_int_equal(zpool_init(&p, 1 * MiB + ZPOOL_MIN, ZPOOL_MIN), -EINVAL);
	assert_int_equal(zpool_init(&p, 1 * MiB, 3 * ZPOOL_MIN), -EINVAL);
	assert_int_equal(zpool_init(&p, 1 * MiB, 2 * MiB), -EINVAL);
	assert_int_equal(zpool_init(&p, 1 * MiB, ZPOOL_MIN / 2), -EINVAL);
	assert_int_equal(zpool_init(&p, ZPOOL_MIN / 2, ZPOOL_MIN / 2), -EINVAL);
	assert_int_equal(zpool_init(&p, 0, 0), -EINVAL);

	/* The edges that are allowed. */
	assert_int_equal(zpool_init(&p, ZPOOL_MIN, ZPOOL_MIN), 0);
	assert_int_equal(zpool_max(&p), ZPOOL_MIN);
	assert_int_equal(p.free_bytes, ZPOOL_MIN);
	zpool_done(&p);
	assert_int_equal(zpool_init(&p, 1 * MiB, 1 * MiB), 0);
	assert_int_equal(zpool_max(&p), 1 * MiB);
	zpool_done(&p);
}

/* Every size from 1 to max: aligned, inside the region, apart, and accounted for. */
static void test_sizes(void **state)
{
	enum { SIZE = 4 * MiB, MAX = 256 * KiB };
	struct zpool p;
	struct shadow s;
	void *bufs[64];
	size_t lens[64], n = 0, expect_free = SIZE;

	assert_int_equal(zpool_init(&p, SIZE, MAX), 0);
	assert_int_equal(zpool_max(&p), MAX);
	assert_int_equal(p.free_bytes, SIZE);
	shadow_init(&s, &p);
	for (size_t b = ZPOOL_MIN; b <= MAX; b <<= 1) {
		const size_t tries[] = { b / 2 + 1, b - 1, b };

		for (size_t t = 0; t < ARRAY_SIZE(tries); t++) {
			size_t len = b == ZPOOL_MIN && t == 0 ? 1 : tries[t];

			bufs[n] = zpool_alloc(&p, len);
			lens[n] = len;
			shadow_take(&s, bufs[n], len);
			memset(bufs[n], (int)n, len);
			expect_free -= b;
			assert_int_equal(p.free_bytes, expect_free);
			n++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		/* Nobody wrote over anybody. */
		for (size_t k = 0; k < lens[i]; k += 511)
			assert_int_equal(((uint8_t *)bufs[i])[k], (uint8_t)i);
		zpool_free(&p, bufs[i], lens[i]);
		shadow_give(&s, bufs[i], lens[i]);
		expect_free += block_of(lens[i]);
		assert_int_equal(p.free_bytes, expect_free);
	}
	assert_int_equal(p.free_bytes, SIZE);
	free(s.used);
	zpool_done(&p);
}

static void test_too_large(void **state)
{
	struct zpool p;

	assert_int_equal(zpool_init(&p, 1 * MiB, 64 * KiB), 0);
	assert_null(zpool_alloc(&p, 64 * KiB + 1));
	assert_null(zpool_alloc(&p, 128 * KiB));
	assert_null(zpool_alloc(&p, 1 * MiB));
	assert_int_equal(p.free_bytes, 1 * MiB);
	assert_non_null(zpool_alloc(&p, 64 * KiB));
	zpool_done(&p);
}

/* Exhaust with small blocks, free all in random order: the big blocks come back. */
static void test_exhaust_and_coalesce(void **state)
{
	enum { SIZE = 1 * MiB, MAX = 128 * KiB, PAGES = SIZE / ZPOOL_MIN };
	struct zpool p;
	struct shadow s;
	void *bufs[PAGES];
	void *big[SIZE / MAX];

	assert_int_equal(zpool_init(&p, SIZE, MAX), 0);
	shadow_init(&s, &p);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < PAGES; i++) {
			bufs[i] = zpool_alloc(&p, i % 2 ? ZPOOL_MIN : 1);
			shadow_take(&s, bufs[i], ZPOOL_MIN);
		}
		assert_int_equal(p.free_bytes, 0);
		assert_null(zpool_alloc(&p, 1));
		assert_null(zpool_alloc(&p, MAX));

		srandom(round);
		for (size_t i = PAGES - 1; i > 0; i--) {
			size_t j = (size_t)random() % (i + 1);
			void *t = bufs[i];

			bufs[i] = bufs[j];
			bufs[j] = t;
		}
		for (size_t i = 0; i < PAGES; i++) {
			zpool_free(&p, bufs[i], ZPOOL_MIN);
			shadow_give(&s, bufs[i], ZPOOL_MIN);
		}
		assert_int_equal(p.free_bytes, SIZE);

		/* Fully coalesced: every max block is there again. */
		for (size_t i = 0; i < ARRAY_SIZE(big); i++) {
			big[i] = zpool_alloc(&p, MAX);
			shadow_take(&s, big[i], MAX);
		}
		assert_null(zpool_alloc(&p, 1));
		for (size_t i = 0; i < ARRAY_SIZE(big); i++) {
			zpool_free(&p, big[i], MAX);
			shadow_give(&s, big[i], MAX);
		}
	}
	free(s.used);
	zpool_done(&p);
}

/* Random allocations and frees; every buffer holds a pattern nobody else may touch. */
static void test_stress(void **state)
{
	enum { SIZE = 8 * MiB, MAX = 512 * KiB, SLOTS = 512, OPS = 100000 };
	struct zpool p;
	struct shadow s;
	void *bufs[SLOTS] = { 0 };
	size_t lens[SLOTS], expect_free = SIZE, nulls = 0;

	assert_int_equal(zpool_init(&p, SIZE, MAX), 0);
	shadow_init(&s, &p);
	srandom(7);
	for (int op = 0; op < OPS; op++) {
		size_t i = (size_t)random() % SLOTS;

		if (bufs[i]) {
			uint8_t *b = bufs[i];

			assert_int_equal(b[0], (uint8_t)i);
			assert_int_equal(b[lens[i] - 1], (uint8_t)i);
			zpool_free(&p, bufs[i], lens[i]);
			shadow_give(&s, bufs[i], lens[i]);
			expect_free += block_of(lens[i]);
			bufs[i] = NULL;
		} else {
			/* Mostly small, sometimes up to max. */
			size_t len = random() % 4 ? 1 + (size_t)random() % (16 * KiB)
						  : 1 + (size_t)random() % MAX;

			bufs[i] = zpool_alloc(&p, len);
			if (!bufs[i]) {
				/* Refusing is fine only if no aligned block that large is free. */
				assert_false(shadow_has_free(&s, block_of(len)));
				nulls++;
				continue;
			}
			shadow_take(&s, bufs[i], len);
			lens[i] = len;
			((uint8_t *)bufs[i])[0] = i;
			((uint8_t *)bufs[i])[len - 1] = i;
			expect_free -= block_of(len);
		}
		assert_int_equal(p.free_bytes, expect_free);
	}
	/* The pool was driven to full often enough to test refusals. */
	assert_true(nulls > 100);
	for (size_t i = 0; i < SLOTS; i++) {
		if (bufs[i]) {
			zpool_free(&p, bufs[i], lens[i]);
			shadow_give(&s, bufs[i], lens[i]);
		}
	}
	assert_int_equal(p.free_bytes, SIZE);
	for (size_t i = 0; i < SIZE / MAX; i++)
		shadow_take(&s, zpool_alloc(&p, MAX), MAX);
	assert_null(zpool_alloc(&p, 1));
	free(s.used);
	zpool_done(&p);
}

/* Two pools at once do not share state. */
static void test_two_pools(void **state)
{
	struct zpool a, b;
	void *x, *y;

	assert_int_equal(zpool_init(&a, 64 * KiB, 64 * KiB), 0);
	assert_int_equal(zpool_init(&b, 64 * KiB, 16 * KiB), 0);
	x = zpool_alloc(&a, 64 * KiB);
	y = zpool_alloc(&b, 16 * KiB);
	assert_ptr_equal(x, a.base);
	assert_non_null(y);
	assert_null(zpool_alloc(&a, 1));
	assert_int_equal(b.free_bytes, 48 * KiB);
	zpool_free(&a, x, 64 * KiB);
	assert_int_equal(a.free_bytes, 64 * KiB);
	zpool_done(&a);
	zpool_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects), cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_too_large),    cmocka_unit_test(test_exhaust_and_coalesce),
		cmocka_unit_test(test_stress),	     cmocka_unit_test(test_two_pools),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
