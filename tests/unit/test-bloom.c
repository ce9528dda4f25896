/* The zones' key filter: never a false "no", and about 1% false "may". */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "bloom.h"

static size_t key_of(char *key, const char *kind, unsigned i)
{
	return (size_t)snprintf(key, 32, "%s/%011u", kind, i);
}

/* n keys in a filter sized for them; the share of other keys it says it may hold. */
static double false_rate(unsigned n, unsigned asked)
{
	struct zbloom b;
	unsigned yes = 0;
	char key[32];

	assert_int_equal(zbloom_init(&b, n), 0);
	for (unsigned i = 0; i < n; i++)
		zbloom_add(&b, key, key_of(key, "in", i));
	for (unsigned i = 0; i < n; i++)
		assert_true(zbloom_may(&b, key, key_of(key, "in", i)));
	for (unsigned i = 0; i < asked; i++)
		yes += zbloom_may(&b, key, key_of(key, "out", i));
	zbloom_done(&b);
	return (double)yes / asked;
}

static void test_no_false_no(void **state)
{
	(void)state;
	/* From smaller than one cache line to a zone's worth of small records. */
	for (unsigned n = 1; n <= 300000; n *= 7)
		false_rate(n, 1);
}

static void test_false_may(void **state)
{
	double rate = false_rate(200000, 1000000);

	(void)state;
	printf("200000 keys: %.2f%% of others may be there\n", rate * 100);
	/* 10 bits a key, rounded up to a power of two: no worse than sized exactly. */
	assert_true(rate < 0.02);
}

static void test_empty(void **state)
{
	struct zbloom b = { 0 };
	char key[32];

	(void)state;
	/* A zone without a filter yet holds nothing; one done says the same. */
	assert_false(zbloom_may(&b, key, key_of(key, "in", 1)));
	assert_int_equal(zbloom_init(&b, 10), 0);
	assert_false(zbloom_may(&b, key, key_of(key, "in", 1)));
	zbloom_add(&b, key, key_of(key, "in", 1));
	assert_true(zbloom_may(&b, key, key_of(key, "in", 1)));
	zbloom_done(&b);
	assert_false(zbloom_may(&b, key, key_of(key, "in", 1)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_false_no),
		cmocka_unit_test(test_false_may),
		cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
