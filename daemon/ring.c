#include "ring.h"

#include <errno.h>
#include <event2/event.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void reap(struct zring *r)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
		struct zring_op *op = io_uring_cqe_get_data(cqe);

		r->inflight--;
		/* The CQE stays valid (CQE32 extra words too) until it is marked seen. */
		op->complete(op, cqe);
		io_uring_cqe_seen(&r->ring, cqe);
	}
}

static bool fill_one(struct zring *r, struct zring_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe)
		return false;
	op->prep(op, sqe);
	io_uring_sqe_set_data(sqe, op);
	r->queued++;
	return true;
}

static void fill_backlog(struct zring *r)
{
	while (r->backlog && fill_one(r, r->backlog)) {
		r->backlog = r->backlog->next;
		if (!r->backlog)
			r->backlog_tail = &r->backlog;
	}
}

int zring_submit(struct zring *r)
{
	int ret;

	while (r->queued) {
		ret = io_uring_submit(&r->ring);
		if (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY) {
			/* The kernel is short of room for completions: make some. */
			reap(r);
			continue;
		}
		if (ret < 0)
			return ret;
		if (ret == 0)
			break;
		r->queued -= ret;
		r->inflight += ret;
		fill_backlog(r);
	}
	return 0;
}

void zring_submit_now(struct zring *r)
{
	int ret;

	if (!r->queued)
		return;
	ret = io_uring_submit(&r->ring);
	if (ret > 0) {
		r->queued -= ret;
		r->inflight += ret;
	}
}

/*
 * Operations the kernel will not take never complete: whatever waits on them
 * would wait forever. Said once; the daemon stops.
 */
static void submit_failed(struct zring *r, int err)
{
	if (r->error)
		return;
	r->error = err;
	if (r->on_error)
		r->on_error(r->error_arg, err);
}

static void on_submit(evutil_socket_t fd, short what, void *arg)
{
	struct zring *r = arg;
	int ret;

	if (r->turn_end)
		r->turn_end(r->turn_end_arg);
	ret = zring_submit(r);
	if (ret < 0)
		submit_failed(r, ret);
}

static void on_cq(evutil_socket_t fd, short what, void *arg)
{
	struct zring *r = arg;
	uint64_t n;

	/* Reset the counter first: completions after this read wake us again. */
	if (read(r->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	reap(r);
	fill_backlog(r);
	if (r->queued)
		event_active(r->submit_ev, 0, 0);
}

void zring_queue(struct zring *r, struct zring_op *op)
{
	op->next = NULL;
	if (r->backlog || !fill_one(r, op)) {
		*r->backlog_tail = op;
		r->backlog_tail = &op->next;
	}
	/* Activating an active event is a no-op, so this costs one callback per turn. */
	event_active(r->submit_ev, 0, 0);
}

void zring_kick(struct zring *r)
{
	event_active(r->submit_ev, 0, 0);
}

struct event_base *zring_base(const struct zring *r)
{
	return event_get_base(r->submit_ev);
}

int zring_init(struct zring *r, struct event_base *base, unsigned entries, unsigned setup_flags)
{
	struct io_uring_params p = { .flags = setup_flags | IORING_SETUP_CQSIZE,
				     .cq_entries = entries * 4 };
	int ret;

	memset(r, 0, sizeof(*r));
	r->efd = -1;
	r->backlog_tail = &r->backlog;
	ret = io_uring_queue_init_params(entries, &r->ring, &p);
	if (ret < 0)
		return ret;
	r->up = true;
	r->flags = setup_flags;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = io_uring_register_eventfd(&r->ring, r->efd);
	if (ret < 0)
		goto fail;
	r->cq_ev = event_new(base, r->efd, EV_READ | EV_PERSIST, on_cq, r);
	/* Lowest priority: submit after every other callback of this turn has queued its I/O. */
	r->submit_ev = event_new(base, -1, 0, on_submit, r);
	if (!r->cq_ev || !r->submit_ev) {
		ret = -ENOMEM;
		goto fail;
	}
	event_priority_set(r->submit_ev, 1);
	event_add(r->cq_ev, NULL);
	return 0;
fail:
	zring_done(r);
	return ret;
}

int zring_register_buffer(struct zring *r, void *base, size_t len)
{
	struct iovec iov = { .iov_base = base, .iov_len = len };
	int ret = io_uring_register_buffers(&r->ring, &iov, 1);

	r->fixed_buffers = ret == 0;
	return ret;
}

void zring_drain(struct zring *r)
{
	struct io_uring_cqe *cqe;
	int ret = zring_submit(r);

	if (ret < 0)
		submit_failed(r, ret);
	/* What was never submitted cannot be waited for. */
	while (r->inflight || (r->backlog && !r->error)) {
		if (io_uring_wait_cqe(&r->ring, &cqe) < 0)
			break;
		reap(r);
		fill_backlog(r);
		ret = zring_submit(r);
		if (ret < 0)
			submit_failed(r, ret);
	}
}

void zring_done(struct zring *r)
{
	if (r->cq_ev)
		event_free(r->cq_ev);
	if (r->submit_ev)
		event_free(r->submit_ev);
	if (r->up)
		io_uring_queue_exit(&r->ring);
	if (r->efd >= 0)
		close(r->efd);
	memset(r, 0, sizeof(*r));
	r->efd = -1;
}
