/* The lexical pieces of RESP requests: number lines, inline words, SCAN's numbers and patterns. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "resp_parse.h"

/* resp_int_line on all of s: its answer, and *v and *pos. */
static int line(const char *s, char type, int64_t *v, size_t *pos)
{
	*pos = 0;
	return resp_int_line((const uint8_t *)s, strlen(s), pos, type, v);
}

static void test_int_line(void **state)
{
	int64_t v;
	size_t pos;

	assert_int_equal(line("*3\r\n", '*', &v, &pos), 1);
	assert_int_equal(v, 3);
	assert_int_equal(pos, 4);
	assert_int_equal(line("$0\r\nrest", '$', &v, &pos), 1);
	assert_int_equal(v, 0);
	assert_int_equal(pos, 4);
	assert_int_equal(line("$-1\r\n", '$', &v, &pos), 1);
	assert_int_equal(v, -1);
	assert_int_equal(line("$9223372036854775806\r\n", '$', &v, &pos), 1);
	assert_int_equal(v, INT64_MAX - 1);
	/* Not all there yet: every cut of a whole line. */
	for (size_t n = 0; n < 6; n++) {
		pos = 0;
		assert_int_equal(resp_int_line((const uint8_t *)"$123\r\n", n, &pos, '$', &v), 0);
		assert_int_equal(pos, 0);
	}
	/* Never one. */
	assert_int_equal(line("*3\r\n", '$', &v, &pos), -1);
	assert_int_equal(line("$\r\n", '$', &v, &pos), -1);
	assert_int_equal(line("$-\r\n", '$', &v, &pos), -1);
	assert_int_equal(line("$12a\r\n", '$', &v, &pos), -1);
	assert_int_equal(line("$12\n", '$', &v, &pos), -1);
	assert_int_equal(line("$12\rx", '$', &v, &pos), -1);
	assert_int_equal(line("$99999999999999999999\r\n", '$', &v, &pos), -1);
	/* Digits without end: refused once past the longest line, not waited for. */
	assert_int_equal(line("$00000000000000000000000000000000000", '$', &v, &pos), -1);
	/* The second line of a request, read where the first ended. */
	pos = 4;
	assert_int_equal(resp_int_line((const uint8_t *)"*1\r\n$42\r\n", 9, &pos, '$', &v), 1);
	assert_int_equal(v, 42);
	assert_int_equal(pos, 9);
}

static void test_words(void **state)
{
	const char *s = "  SET\tkey  v\r";
	const uint8_t *argv[4];
	size_t argl[4];

	assert_int_equal(resp_words((const uint8_t *)s, strlen(s), argv, argl, 4), 3);
	assert_int_equal(argl[0], 3);
	assert_memory_equal(argv[0], "SET", 3);
	assert_int_equal(argl[1], 3);
	assert_memory_equal(argv[1], "key", 3);
	assert_int_equal(argl[2], 1);
	assert_memory_equal(argv[2], "v", 1);
	/* More words than room: counted, the first ones kept. */
	assert_int_equal(resp_words((const uint8_t *)"a b c d e", 9, argv, argl, 2), 5);
	assert_memory_equal(argv[1], "b", 1);
	assert_int_equal(resp_words((const uint8_t *)" \t\r ", 4, argv, argl, 4), 0);
	assert_int_equal(resp_words((const uint8_t *)"", 0, argv, argl, 4), 0);
}

static void test_u64(void **state)
{
	uint64_t v;

	assert_true(resp_u64((const uint8_t *)"0", 1, &v));
	assert_int_equal(v, 0);
	assert_true(resp_u64((const uint8_t *)"18446744073709551615", 20, &v));
	assert_true(v == UINT64_MAX);
	assert_false(resp_u64((const uint8_t *)"18446744073709551616", 20, &v));
	assert_false(resp_u64((const uint8_t *)"", 0, &v));
	assert_false(resp_u64((const uint8_t *)"-1", 2, &v));
	assert_false(resp_u64((const uint8_t *)"1x", 2, &v));
	assert_false(resp_u64((const uint8_t *)"000000000000000000001", 21, &v));
}

static void test_match_prefix(void **state)
{
	size_t n;
	bool exact;

	assert_true(resp_match_prefix((const uint8_t *)"user:*", 6, &n, &exact));
	assert_int_equal(n, 5);
	assert_false(exact);
	assert_true(resp_match_prefix((const uint8_t *)"*", 1, &n, &exact));
	assert_int_equal(n, 0);
	assert_false(exact);
	assert_true(resp_match_prefix((const uint8_t *)"user:1", 6, &n, &exact));
	assert_int_equal(n, 6);
	assert_true(exact);
	assert_false(resp_match_prefix((const uint8_t *)"*user", 5, &n, &exact));
	assert_false(resp_match_prefix((const uint8_t *)"u?er*", 5, &n, &exact));
	assert_false(resp_match_prefix((const uint8_t *)"u[s]er", 6, &n, &exact));
	assert_false(resp_match_prefix((const uint8_t *)"a\\*", 3, &n, &exact));
	assert_false(resp_match_prefix((const uint8_t *)"a**", 3, &n, &exact));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_int_line),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_match_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
