/*
 * Unit tests for the work queue: de-duplication, exclusive processing with
 * several workers, delays, per-key backoff timing, the token bucket, forget,
 * shutdown and the length metric. Timing bounds are loose on purpose: the
 * machine is shared and noisy, so they check order of magnitude and order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "monotime.h"
#include "workqueue.h"

static struct wq *new_queue(double base, double max, double qps, int burst)
{
    struct wq_config cfg = { base, max, qps, burst };
    struct err e;
    struct wq *q = wq_new(&cfg, &e);

    assert_non_null(q);
    return q;
}

static void add(struct wq *q, const char *key)
{
    assert_int_equal(wq_add(q, key, NULL), 0);
}

/* Takes the next key, checks it, and releases it; returns seconds waited. */
static double take(struct wq *q, const char *want)
{
    double t0 = monotime_now();
    const char *key = wq_get(q);

    assert_non_null(key);
    if (want)
        assert_string_equal(key, want);
    wq_done(q, key);
    return monotime_now() - t0;
}

static void test_duplicate_adds_processed_once(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);

    (void)state;
    add(q, "ns/a");
    add(q, "ns/b");
    add(q, "ns/a");
    add(q, "ns/a");
    assert_int_equal(wq_len(q), 2);
    take(q, "ns/a");
    take(q, "ns/b");
    assert_int_equal(wq_len(q), 0);
    wq_free(q);
}

static void test_add_while_held_requeues_after_done(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);
    const char *key;

    (void)state;
    add(q, "x");
    key = wq_get(q);
    assert_string_equal(key, "x");
    add(q, "x");
    add(q, "x");
    /* Held: a second worker must not see it yet. */
    assert_int_equal(wq_len(q), 0);
    wq_done(q, key);
    assert_int_equal(wq_len(q), 1);
    take(q, "x");
    assert_int_equal(wq_len(q), 0);
    wq_free(q);
}

/*
 * Several producers keep adding a few keys while several workers process
 * them. Each key's "generation" is bumped before every add; a worker notes
 * the generation it saw when it started. Proves: no key is held by two
 * workers at once, and no add is lost (the last generation is processed).
 */
#define NKEYS 5
#define NWORKERS 4
#define NPRODUCERS 2
#define ROUNDS 400

struct shared {
    struct wq *q;
    atomic_int in_flight[NKEYS];
    atomic_int generation[NKEYS];
    atomic_int seen[NKEYS];
    atomic_int overlaps;
    atomic_int processed;
};

static int key_index(const char *key)
{
    return key[1] - '0';
}

static void *worker(void *arg)
{
    struct shared *s = arg;
    const char *key;

    while ((key = wq_get(s->q))) {
        int i = key_index(key);

        if (atomic_fetch_add(&s->in_flight[i], 1) != 0)
            atomic_fetch_add(&s->overlaps, 1);
        atomic_store(&s->seen[i], atomic_load(&s->generation[i]));
        usleep(200);
        atomic_fetch_sub(&s->in_flight[i], 1);
        atomic_fetch_add(&s->processed, 1);
        wq_done(s->q, key);
    }
    return NULL;
}

static void *producer(void *arg)
{
    struct shared *s = arg;
    char key[3] = "k0";
    int r, i;

    for (r = 0; r < ROUNDS; r++) {
        i = r % NKEYS;
        key[1] = (char)('0' + i);
        atomic_fetch_add(&s->generation[i], 1);
        wq_add(s->q, key, NULL);
        if (r % 16 == 0)
            usleep(100);
    }
    return NULL;
}

static void test_workers_never_share_a_key_and_lose_no_add(void **state)
{
    struct shared s = { 0 };
    pthread_t w[NWORKERS], p[NPRODUCERS];
    double t0;
    int i, idle;

    (void)state;
    s.q = new_queue(0, 0, 0, 0);
    for (i = 0; i < NWORKERS; i++)
        assert_int_equal(pthread_create(&w[i], NULL, worker, &s), 0);
    for (i = 0; i < NPRODUCERS; i++)
        assert_int_equal(pthread_create(&p[i], NULL, producer, &s), 0);
    for (i = 0; i < NPRODUCERS; i++)
        pthread_join(p[i], NULL);
    /* Drain: wait until nothing is queued or in flight for a while. */
    t0 = monotime_now();
    for (idle = 0; idle < 20 && monotime_now() - t0 < 20; usleep(5000)) {
        int busy = wq_len(s.q) > 0;

        for (i = 0; i < NKEYS; i++)
            busy |= atomic_load(&s.in_flight[i]) > 0;
        idle = busy ? 0 : idle + 1;
    }
    wq_shutdown(s.q);
    for (i = 0; i < NWORKERS; i++)
        pthread_join(w[i], NULL);
    assert_int_equal(atomic_load(&s.overlaps), 0);
    for (i = 0; i < NKEYS; i++)
        assert_int_equal(atomic_load(&s.seen[i]), atomic_load(&s.generation[i]));
    /* De-duplication: far fewer runs than adds. */
    assert_true(atomic_load(&s.processed) <= NPRODUCERS * ROUNDS);
    assert_true(atomic_load(&s.processed) >= NKEYS);
    wq_free(s.q);
}

static void test_add_after_orders_by_due_time(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);
    double t0 = monotime_now(), waited;

    (void)state;
    assert_int_equal(wq_add_after(q, "late", 0.30, NULL), 0);
    assert_int_equal(wq_add_after(q, "early", 0.10, NULL), 0);
    assert_int_equal(wq_len(q), 0);
    take(q, "early");
    waited = monotime_now() - t0;
    assert_true(waited >= 0.09);
    take(q, "late");
    waited = monotime_now() - t0;
    assert_true(waited >= 0.29);
    assert_true(waited < 3.0);
    wq_free(q);
}

static void test_add_after_keeps_earlier_due_time(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);
    double waited;

    (void)state;
    assert_int_equal(wq_add_after(q, "k", 60, NULL), 0);
    assert_int_equal(wq_add_after(q, "k", 0.05, NULL), 0);
    assert_int_equal(wq_add_after(q, "k", 30, NULL), 0);
    waited = take(q, "k");
    assert_true(waited >= 0.04);
    assert_true(waited < 3.0);
    wq_free(q);
}

/*
 * A worker already asleep with nothing queued must wake for a delayed add.
 * (No cmocka assertions off the main thread: they longjmp.)
 */
static void *take_one(void *arg)
{
    const char *key = wq_get(arg);
    intptr_t ok = key && strcmp(key, "later") == 0;

    if (key)
        wq_done(arg, key);
    return (void *)ok;
}

static void test_sleeping_worker_wakes_for_delayed_key(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);
    pthread_t t;
    void *ok;
    double t0;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, take_one, q), 0);
    usleep(50000);
    t0 = monotime_now();
    assert_int_equal(wq_add_after(q, "later", 0.1, NULL), 0);
    pthread_join(t, &ok);
    assert_true(ok);
    assert_true(monotime_now() - t0 >= 0.09);
    assert_true(monotime_now() - t0 < 3.0);
    wq_free(q);
}

static void test_backoff_doubles_to_cap_and_forget_resets(void **state)
{
    /* 50 ms doubling, capped at 400 ms, no bucket. */
    struct wq *q = new_queue(0.05, 0.4, -1, 0);
    const double want[] = { 0.05, 0.1, 0.2, 0.4, 0.4 };
    double waited;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(wq_add_rate_limited(q, "ns/p", NULL), 0);
        assert_int_equal(wq_num_requeues(q, "ns/p"), i + 1);
        waited = take(q, "ns/p");
        assert_true(waited >= want[i] * 0.9);
        assert_true(waited < want[i] + 1.0);
    }
    wq_forget(q, "ns/p");
    assert_int_equal(wq_num_requeues(q, "ns/p"), 0);
    assert_int_equal(wq_add_rate_limited(q, "ns/p", NULL), 0);
    waited = take(q, "ns/p");
    assert_true(waited >= 0.045);
    assert_true(waited < 0.35);
    wq_free(q);
}

static void test_backoff_is_per_key(void **state)
{
    struct wq *q = new_queue(0.05, 10, -1, 0);
    int i;

    (void)state;
    for (i = 0; i < 3; i++) {
        wq_add_rate_limited(q, "slow", NULL);
        take(q, "slow");
    }
    assert_int_equal(wq_num_requeues(q, "slow"), 3);
    assert_int_equal(wq_num_requeues(q, "fresh"), 0);
    assert_int_equal(wq_add_rate_limited(q, "fresh", NULL), 0);
    assert_true(take(q, "fresh") < 0.35);
    wq_free(q);
}

static void test_default_backoff_starts_at_5ms(void **state)
{
    struct wq *q = wq_new(NULL, NULL);
    double waited;

    (void)state;
    assert_non_null(q);
    assert_int_equal(wq_add_rate_limited(q, "d", NULL), 0);
    /* Not ready at once, ready well within a second. */
    assert_int_equal(wq_len(q), 0);
    waited = take(q, "d");
    assert_true(waited >= 0.004);
    assert_true(waited < 1.0);
    wq_free(q);
}

static void test_token_bucket_spreads_a_burst(void **state)
{
    /* 5 qps, burst 2, negligible per-key delay: 6 keys need about 0.8 s. */
    struct wq *q = new_queue(1e-6, 1e-6, 5, 2);
    char key[16];
    double t0 = monotime_now(), total;
    int i;

    (void)state;
    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        assert_int_equal(wq_add_rate_limited(q, key, NULL), 0);
    }
    usleep(20000);
    assert_int_equal(wq_len(q), 2);
    for (i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "b%d", i);
        take(q, key);
    }
    total = monotime_now() - t0;
    assert_true(total >= 0.75);
    assert_true(total < 4.0);
    wq_free(q);
}

static void *expect_shutdown(void *arg)
{
    return (void *)wq_get(arg);
}

static void test_shutdown_wakes_every_waiter(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);
    pthread_t t[4];
    void *ret;
    int i;

    (void)state;
    /* One waiter sleeps on a timed wait for a far-off key, the rest untimed. */
    assert_int_equal(wq_add_after(q, "far", 3600, NULL), 0);
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, expect_shutdown, q), 0);
    usleep(50000);
    assert_false(wq_shutting_down(q));
    wq_shutdown(q);
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], &ret);
        assert_null(ret);
    }
    assert_true(wq_shutting_down(q));
    /* Adds after shutdown are ignored; get does not block. */
    add(q, "ignored");
    assert_int_equal(wq_len(q), 0);
    assert_null(wq_get(q));
    wq_free(q);
}

/* Many distinct delayed keys through several workers: each processed exactly once. */
#define NDELAYED 200

struct counted {
    struct wq *q;
    atomic_int count[NDELAYED];
};

static void *counting_worker(void *arg)
{
    struct counted *c = arg;
    const char *key;

    while ((key = wq_get(c->q))) {
        atomic_fetch_add(&c->count[atoi(key)], 1);
        wq_done(c->q, key);
    }
    return NULL;
}

static void test_delayed_keys_each_processed_once(void **state)
{
    struct counted c = { 0 };
    pthread_t t[3];
    char key[16];
    double t0;
    int i, total;

    (void)state;
    c.q = new_queue(0, 0, 0, 0);
    for (i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, counting_worker, &c), 0);
    for (i = 0; i < NDELAYED; i++) {
        snprintf(key, sizeof(key), "%d", i);
        assert_int_equal(wq_add_after(c.q, key, (double)(i % 17) / 100.0, NULL), 0);
    }
    t0 = monotime_now();
    do {
        usleep(10000);
        for (total = 0, i = 0; i < NDELAYED; i++)
            total += atomic_load(&c.count[i]);
    } while (total < NDELAYED && monotime_now() - t0 < 10);
    wq_shutdown(c.q);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < NDELAYED; i++)
        assert_int_equal(atomic_load(&c.count[i]), 1);
    wq_free(c.q);
}

static void test_free_with_keys_everywhere(void **state)
{
    struct wq *q = new_queue(0, 0, 0, 0);

    (void)state;
    /* Queued, held, delayed and remembered-backoff keys are all freed (ASan checks). */
    add(q, "held");
    add(q, "queued");
    assert_string_equal(wq_get(q), "held");
    assert_int_equal(wq_add_after(q, "delayed", 3600, NULL), 0);
    assert_int_equal(wq_add_rate_limited(q, "backoff", NULL), 0);
    wq_shutdown(q);
    wq_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_adds_processed_once),
        cmocka_unit_test(test_add_while_held_requeues_after_done),
        cmocka_unit_test(test_workers_never_share_a_key_and_lose_no_add),
        cmocka_unit_test(test_add_after_orders_by_due_time),
        cmocka_unit_test(test_add_after_keeps_earlier_due_time),
        cmocka_unit_test(test_sleeping_worker_wakes_for_delayed_key),
        cmocka_unit_test(test_backoff_doubles_to_cap_and_forget_resets),
        cmocka_unit_test(test_backoff_is_per_key),
        cmocka_unit_test(test_default_backoff_starts_at_5ms),
        cmocka_unit_test(test_token_bucket_spreads_a_burst),
        cmocka_unit_test(test_shutdown_wakes_every_waiter),
        cmocka_unit_test(test_delayed_keys_each_processed_once),
        cmocka_unit_test(test_free_with_keys_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
