/*
 * The ring's submissions: when the kernel refuses them for good (issue 13,
 * finding 9: the error used to be ignored and every request queued behind
 * it waited forever), the daemon hears of it once, and draining the ring at
 * shutdown does not wait for what was never submitted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "ring.h"

static int errors, last_err;

static void on_error(void *arg, int err)
{
	(void)arg;
	errors++;
	last_err = err;
}

static void prep_nop(struct zring_op *op, struct io_uring_sqe *sqe)
{
	(void)op;
	io_uring_prep_nop(sqe);
}

static void complete_nothing(struct zring_op *op, const struct io_uring_cqe *cqe)
{
	(void)op;
	(void)cqe;
	fail_msg("an operation that was never submitted completed");
}

static void test_submit_refused(void **state)
{
	struct event_base *base = event_base_new();
	struct zring_op ops[3] = {
		{ .prep = prep_nop, .complete = complete_nothing },
		{ .prep = prep_nop, .complete = complete_nothing },
		{ .prep = prep_nop, .complete = complete_nothing },
	};
	struct zring r;
	int null;

	(void)state;
	assert_non_null(base);
	if (zring_init(&r, base, 8, 0) < 0)
		skip(); /* no io_uring here */
	r.on_error = on_error;
	/* The ring's descriptor now names /dev/null: io_uring_enter fails on it. */
	null = open("/dev/null", O_RDONLY);
	assert_true(null >= 0);
	assert_true(dup2(null, r.ring.ring_fd) >= 0);
	close(null);
	for (int i = 0; i < 3; i++)
		zring_queue(&r, &ops[i]);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(errors, 1);
	assert_true(last_err < 0);
	assert_int_equal(r.error, last_err);
	zring_drain(&r); /* returns: nothing in flight, and the rest can never be */
	zring_done(&r);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
