/* monotime: monotonic-clock seconds and condition variables; see monotime.h. */
#include "monotime.h"

#include <math.h>

double monotime_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timespec monotime_timespec(double t)
{
    double whole = floor(t);
    struct timespec ts = { .tv_sec = (time_t)whole, .tv_nsec = (long)((t - whole) * 1e9) };

    /* Rounding can reach a full second; timedwait rejects that. */
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    return ts;
}

int monotime_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);

    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}
