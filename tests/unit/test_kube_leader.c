/*
 * Unit tests for leader election's configuration: the durations default to
 * client-go's (lease 15 s, renew deadline 10 s, retry period 2 s) and
 * explicit ones are kept. The election itself runs against the real API
 * server in tests/integration/test_leader.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "leader.h"

static void test_zero_durations_take_the_defaults(void **state)
{
    struct leader_config cfg = { .ns = "ns", .name = "lease", .identity = "me" };

    (void)state;
    leader_config_defaults(&cfg);
    assert_true(cfg.lease_duration_s == 15.0);
    assert_true(cfg.renew_deadline_s == 10.0);
    assert_true(cfg.retry_period_s == 2.0);
    cfg = (struct leader_config){ .lease_duration_s = -1, .renew_deadline_s = -1,
                                  .retry_period_s = -1 };
    leader_config_defaults(&cfg);
    assert_true(cfg.lease_duration_s == 15.0);
    assert_true(cfg.renew_deadline_s == 10.0);
    assert_true(cfg.retry_period_s == 2.0);
}

static void test_explicit_durations_are_kept(void **state)
{
    struct leader_config cfg = { .lease_duration_s = 4, .renew_deadline_s = 3,
                                 .retry_period_s = 0.5 };

    (void)state;
    leader_config_defaults(&cfg);
    assert_true(cfg.lease_duration_s == 4.0);
    assert_true(cfg.renew_deadline_s == 3.0);
    assert_true(cfg.retry_period_s == 0.5);
    /* One set, the others defaulted. */
    cfg = (struct leader_config){ .lease_duration_s = 60 };
    leader_config_defaults(&cfg);
    assert_true(cfg.lease_duration_s == 60.0);
    assert_true(cfg.renew_deadline_s == 10.0);
    assert_true(cfg.retry_period_s == 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_durations_take_the_defaults),
        cmocka_unit_test(test_explicit_durations_are_kept),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
