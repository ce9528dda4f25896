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
	uint64_t next = p->step_at + MAX(GAP_US, SHARE_DIV * p->step_took);

	if (now - p->request_at > QUIET_US) {
		p->booked = 0; /* those still waiting go on as they wake */
		return 0;
	}
	/* A step that waited has its turn; a newcomer goes behind those waiting. */
	if (woken || (now >= next && p->booked <= now))
		return 0;
	next = MAX(next, p->booked + GAP_US);
	p->booked = next;
	p->waits++;
	return next - now;
}

void pace_spent(struct pace *p, uint64_t start)
{
	p->step_at = start;
	p->step_took = pace_now_us() - start;
}
