/*
 * monotime: time on the monotonic clock, in seconds, for timeouts, backoff
 * and deadlines that a wall-clock step (NTP, a VM resume) must not disturb.
 *
 * All functions are thread-safe and cheap (clock_gettime is a vDSO call).
 */
#ifndef PLATEOP_MONOTIME_H
#define PLATEOP_MONOTIME_H

#include <pthread.h>
#include <time.h>

/* Seconds since an arbitrary fixed point, with nanosecond resolution. */
double monotime_now(void);

/* The absolute timespec of monotonic time t, for pthread_cond_timedwait(). */
struct timespec monotime_timespec(double t);

/*
 * Initialises a condition variable whose timed waits count on the monotonic
 * clock (pass monotime_timespec() deadlines). Returns 0 or an errno value.
 */
int monotime_cond_init(pthread_cond_t *cond);

#endif
