/* Unit tests for monotime: timespec conversion and monotonic timed waits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>

#include "monotime.h"

static void test_timespec_splits_seconds(void **state)
{
    struct timespec ts = monotime_timespec(12.25);

    (void)state;
    assert_int_equal(ts.tv_sec, 12);
    assert_int_equal(ts.tv_nsec, 250000000L);
    /* Just below a whole second must not round up to an invalid 1e9 ns. */
    ts = monotime_timespec(3.9999999999999);
    assert_true(ts.tv_nsec <= 999999999L);
    assert_int_equal(ts.tv_sec, 3);
}

static void test_timed_wait_counts_on_the_monotonic_clock(void **state)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    struct timespec ts;
    double t0, waited;
    int rc;

    (void)state;
    assert_int_equal(monotime_cond_init(&cond), 0);
    t0 = monotime_now();
    ts = monotime_timespec(t0 + 0.05);
    /* On the wrong clock this deadline lies in 1970 and the wait ends at once. */
    pthread_mutex_lock(&mu);
    do
        rc = pthread_cond_timedwait(&cond, &mu, &ts);
    while (rc == 0);
    pthread_mutex_unlock(&mu);
    waited = monotime_now() - t0;
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(waited >= 0.049);
    assert_true(waited < 2.0);
    pthread_cond_destroy(&cond);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timespec_splits_seconds),
        cmocka_unit_test(test_timed_wait_counts_on_the_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
