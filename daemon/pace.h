/*
 * Background work against requests. A listing's steps (SCAN) are background
 * work: while requests keep coming, a step starts at most once a millisecond
 * and only after four times what the last one took, so listing millions of
 * keys costs the requests beside it little. When none come, a listing runs
 * flat out.
 */
#ifndef ZAPD_PACE_H
#define ZAPD_PACE_H

#include <stdbool.h>
#include <stdint.h>

struct pace {
	uint64_t request_at; /* when a request last began, in µs */
	uint64_t step_at;    /* when the last step began */
	uint64_t step_took;  /* and how long it ran */
	uint64_t waits;	     /* steps made to wait */
	uint64_t booked;     /* the last start handed to a step that waits */
};

uint64_t pace_now_us(void);
/* A request (not background work) begins. */
void pace_request(struct pace *p);
/*
 * How many µs a step must wait before it runs; 0: now. Each step that waits
 * is handed its own start, after the one before by 1 ms or four times what
 * the last step took (first come, first served), so that the waiting
 * listings do not all wake at one instant to find one of them may go on.
 * woken: the step already waited its turn.
 */
unsigned pace_wait(struct pace *p, bool woken);
/* A step ran from start (pace_now_us) until now. */
void pace_spent(struct pace *p, uint64_t start);

#endif
