/*
 * The daemon's one io_uring. Operations are queued with a prep and a
 * complete callback; queued SQEs are submitted together once per turn of the
 * event loop (one io_uring_enter for many operations), and completions come
 * back into the loop through an eventfd registered with the ring.
 */
#ifndef ZAPD_RING_H
#define ZAPD_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct event;

struct zring_op {
	/* Fills the SQE; the ring sets user_data afterwards. */
	void (*prep)(struct zring_op *op, struct io_uring_sqe *sqe);
	/* Called from the event loop with the CQE (big for CQE32 rings). */
	void (*complete)(struct zring_op *op, const struct io_uring_cqe *cqe);
	struct zring_op *next; /* backlog link while no SQE is free */
};

struct zring {
	struct io_uring ring;
	unsigned flags;
	int efd;
	struct event *cq_ev;
	struct event *submit_ev;
	struct zring_op *backlog, **backlog_tail;
	unsigned queued;   /* SQEs prepared but not yet submitted */
	unsigned inflight; /* submitted, not completed */
	bool fixed_buffers;
	bool up;
	int error; /* submission failed for good: nothing queued will complete */
	/*
	 * Called at the end of a turn the ring was kicked in, before what is
	 * queued is submitted: its last chance to queue more (may be NULL).
	 */
	void (*turn_end)(void *arg);
	void *turn_end_arg;
	/* Called once, when submission fails for good (set by the daemon, may be NULL). */
	void (*on_error)(void *arg, int err);
	void *error_arg;
};

/* setup_flags: IORING_SETUP_* the device needs (SQE128 and CQE32 for NVMe passthrough). */
int zring_init(struct zring *r, struct event_base *base, unsigned entries, unsigned setup_flags);
void zring_done(struct zring *r);

/* Registers [base, base+len) as fixed buffer 0; on failure ops use plain buffers. */
int zring_register_buffer(struct zring *r, void *base, size_t len);

/* Queues op; it is submitted at the end of this turn of the event loop. */
void zring_queue(struct zring *r, struct zring_op *op);
/* Has turn_end called at the end of this turn of the event loop. */
void zring_kick(struct zring *r);
/* The event loop the ring's completions come back to. */
struct event_base *zring_base(const struct zring *r);

/*
 * Submits what is queued now (the loop does it anyway; shutdown needs it
 * sooner). 0, or -errno when the kernel refuses for good.
 */
int zring_submit(struct zring *r);
/*
 * Submits what is queued now, from inside a completion, rather than at the
 * end of the loop's turn; what the kernel does not take now goes then.
 */
void zring_submit_now(struct zring *r);

/* Waits for and handles completions until nothing is in flight (shutdown). */
void zring_drain(struct zring *r);

#endif
