#include "pace.h"

#include <time.h>

#include "util.h"

#define GAP_US	  1000	/* between steps' starts, at least */
#define SHARE_DIV 4	/* a step's share of the loop: 1/4 */
#define QUIET_US  10000 /* no request for this long: steps run freely */

uint64_t pace_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void pace_request(struct pace *p)
{
	p->request_at = pace_now_us();
}

unsigned pace_wait(struct pace *p, bool woken)
{
	uint64_t now = pace_now_us();
	uint64_t gap = MAX(GAP_US, SHARE_DIV * p->step_took);
	uint64_t next = p->step_at + gap;

	/*
	 * Quiet: this step runs now, but those still waiting keep the turns
	 * they were handed; forgetting them would start a second queue beside
	 * theirs when requests resume.
	 */
	if (now - p->request_at > QUIET_US)
		return 0;
	/* A step that waited has its turn; a newcomer goes behind those waiting. */
	if (woken || (now >= next && p->booked <= now))
		return 0;
	/* Turns are as far apart as a step's share of the loop asks, not just GAP_US. */
	next = MAX(next, p->booked + gap);
	p->booked = next;
	p->waits++;
	return next - now;
}

void pace_spent(struct pace *p, uint64_t start)
{
	p->step_at = start;
	p->step_took = pace_now_us() - start;
}
