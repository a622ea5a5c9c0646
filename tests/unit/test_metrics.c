/*
 * Unit tests for lib/metrics: the exposition text byte for byte, label
 * value escaping, histogram buckets at and between their bounds, misuse
 * refused, reset, and counts that add up under concurrent updates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "promtext.h"

static const char *const verb_code[] = { "verb", "code", NULL };

static struct metrics_family *must_register(struct metrics_registry *r, enum metrics_type type,
                                            const char *name, const char *const *labels,
                                            const double *buckets, size_t nbuckets)
{
    struct metrics_desc d = { type, name, "Help.", labels, buckets, nbuckets };
    struct metrics_family *f;
    struct err e;

    f = metrics_register(r, &d, &e);
    if (!f)
        fail_msg("register %s: %s", name, e.msg);
    return f;
}

/* The registry's text, which must parse; parsed into *p when p is not NULL (release it). */
static char *render(struct metrics_registry *r, struct promtext *p)
{
    struct strbuf sb = STRBUF_INIT;
    struct promtext local;
    struct err e;

    assert_int_equal(metrics_render(r, &sb, &e), 0);
    if (promtext_parse(sb.buf, sb.len, p ? p : &local, &e) < 0)
        fail_msg("does not parse: %s\n%s", e.msg, sb.buf);
    if (!p)
        promtext_release(&local);
    return strbuf_detach(&sb, NULL);
}

static void test_renders_the_exposition_format(void **state)
{
    static const double b[] = { 0.5, 1 };
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct metrics_family *req, *up, *lat;
    struct metrics_desc help = { METRICS_GAUGE, "odd_help", "Back\\slash and\nnewline.", NULL,
                                 NULL, 0 };
    char *text;

    (void)state;
    req = must_register(r, METRICS_COUNTER, "api_requests_total", verb_code, NULL, 0);
    up = must_register(r, METRICS_GAUGE, "up", NULL, NULL, 0);
    lat = must_register(r, METRICS_HISTOGRAM, "lat_seconds", NULL, b, 2);
    assert_non_null(metrics_register(r, &help, NULL));
    assert_int_equal(metrics_add(req, (const char *const[]){ "GET", "200" }, 2), 0);
    assert_int_equal(metrics_add(req, (const char *const[]){ "PUT", "409" }, 1), 0);
    assert_int_equal(metrics_add(req, (const char *const[]){ "GET", "200" }, 1), 0);
    assert_int_equal(metrics_set(up, NULL, 0.1), 0);
    assert_int_equal(metrics_observe(lat, NULL, 0.25), 0);
    assert_int_equal(metrics_observe(lat, NULL, 3), 0);
    text = render(r, NULL);
    assert_string_equal(text,
                        "# HELP api_requests_total Help.\n"
                        "# TYPE api_requests_total counter\n"
                        "api_requests_total{verb=\"GET\",code=\"200\"} 3\n"
                        "api_requests_total{verb=\"PUT\",code=\"409\"} 1\n"
                        "# HELP up Help.\n"
                        "# TYPE up gauge\n"
                        "up 0.1\n"
                        "# HELP lat_seconds Help.\n"
                        "# TYPE lat_seconds histogram\n"
                        "lat_seconds_bucket{le=\"0.5\"} 1\n"
                        "lat_seconds_bucket{le=\"1\"} 1\n"
                        "lat_seconds_bucket{le=\"+Inf\"} 2\n"
                        "lat_seconds_sum 3.25\n"
                        "lat_seconds_count 2\n"
                        "# HELP odd_help Back\\\\slash and\\nnewline.\n"
                        "# TYPE odd_help gauge\n"
                        "odd_help 0\n");
    free(text);
    metrics_registry_free(r);
}

static void test_label_values_are_escaped(void **state)
{
    static const char *const where[] = { "where", NULL };
    static const char nasty[] = "C:\\plates\\\"384\"\nwell A01 \xc3\xa9";
    static const char escaped[] = "g{where=\"C:\\\\plates\\\\\\\"384\\\"\\nwell A01 \xc3\xa9\"}";
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct metrics_family *g = must_register(r, METRICS_GAUGE, "g", where, NULL, 0);
    struct promtext p;
    char *text;

    (void)state;
    assert_int_equal(metrics_set(g, (const char *const[]){ nasty }, 7), 0);
    assert_int_equal(metrics_set(g, (const char *const[]){ "" }, 8), 0);
    text = render(r, &p);
    assert_non_null(strstr(text, escaped));
    assert_non_null(strstr(text, "g{where=\"\"} 8\n"));
    /* And the parser reads the original value back. */
    assert_true(promtext_get(&p, escaped) == 7);
    promtext_release(&p);
    free(text);
    metrics_registry_free(r);
}

static void test_histogram_buckets(void **state)
{
    static const double b[] = { 0.01, 0.1, 1, 10 };
    static const double obs[] = { 0, 0.01, 0.010001, 0.1, 5, 10, 10.5, -1, INFINITY };
    static const char *const op[] = { "op", NULL };
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct metrics_family *h = must_register(r, METRICS_HISTOGRAM, "h", op, b, 4);
    struct promtext p;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        assert_int_equal(metrics_observe(h, (const char *const[]){ "x" }, obs[i]), 0);
    free(render(r, &p));
    /* A bound belongs to its own bucket (le is "less or equal"). */
    assert_true(promtext_get(&p, "h_bucket{op=\"x\",le=\"0.01\"}") == 3);   /* -1, 0, 0.01 */
    assert_true(promtext_get(&p, "h_bucket{op=\"x\",le=\"0.1\"}") == 5);
    assert_true(promtext_get(&p, "h_bucket{op=\"x\",le=\"1\"}") == 5);
    assert_true(promtext_get(&p, "h_bucket{op=\"x\",le=\"10\"}") == 7);
    assert_true(promtext_get(&p, "h_bucket{op=\"x\",le=\"+Inf\"}") == 9);
    assert_true(promtext_get(&p, "h_count{op=\"x\"}") == 9);
    assert_true(isinf(promtext_get(&p, "h_sum{op=\"x\"}")));
    promtext_release(&p);
    metrics_registry_free(r);
}

static void test_misuse_is_refused(void **state)
{
    static const double unsorted[] = { 1, 0.5 };
    static const double nan_bound[] = { NAN };
    static const char *const le[] = { "le", NULL };
    static const char *const dunder[] = { "__x", NULL };
    static const char *const twice[] = { "a", "a", NULL };
    static const struct metrics_desc bad[] = {
        { METRICS_GAUGE, "9lives", "", NULL, NULL, 0 },
        { METRICS_GAUGE, "", "", NULL, NULL, 0 },
        { METRICS_GAUGE, "a-b", "", NULL, NULL, 0 },
        { METRICS_GAUGE, "ok", "", dunder, NULL, 0 },
        { METRICS_GAUGE, "ok", "", twice, NULL, 0 },
        { METRICS_HISTOGRAM, "ok", "", le, NULL, 0 },
        { METRICS_HISTOGRAM, "ok", "", NULL, unsorted, 2 },
        { METRICS_HISTOGRAM, "ok", "", NULL, nan_bound, 1 },
        { METRICS_GAUGE, "dup", "", NULL, NULL, 0 },
    };
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct metrics_family *c, *g, *h;
    struct err e;
    size_t i;

    (void)state;
    must_register(r, METRICS_GAUGE, "dup", NULL, NULL, 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&e);
        assert_null(metrics_register(r, &bad[i], &e));
        assert_true(err_isset(&e));
    }
    c = must_register(r, METRICS_COUNTER, "c_total", verb_code, NULL, 0);
    g = must_register(r, METRICS_GAUGE, "g", NULL, NULL, 0);
    h = must_register(r, METRICS_HISTOGRAM, "h", NULL, NULL, 0);
    assert_int_equal(metrics_add(c, (const char *const[]){ "GET", "200" }, -1), -1);
    assert_int_equal(metrics_add(c, (const char *const[]){ "GET", "200" }, NAN), -1);
    assert_int_equal(metrics_add(c, NULL, 1), -1);
    assert_int_equal(metrics_add(c, (const char *const[]){ "GET", NULL }, 1), -1);
    assert_int_equal(metrics_observe(c, (const char *const[]){ "GET", "200" }, 1), -1);
    assert_int_equal(metrics_observe(g, NULL, 1), -1);
    assert_int_equal(metrics_add(h, NULL, 1), -1);
    assert_int_equal(metrics_set(h, NULL, 1), -1);
    /* A gauge may go down; a counter may mirror a count kept elsewhere. */
    assert_int_equal(metrics_add(g, NULL, -2), 0);
    assert_int_equal(metrics_set(c, (const char *const[]){ "GET", "200" }, 5), 0);
    /* A histogram with no bounds has just the +Inf bucket. */
    assert_int_equal(metrics_observe(h, NULL, 2), 0);
    free(render(r, NULL));
    metrics_registry_free(r);
}

static void test_reset_forgets_series(void **state)
{
    static const char *const phase[] = { "phase", NULL };
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct metrics_family *a = must_register(r, METRICS_GAUGE, "a", phase, NULL, 0);
    struct metrics_family *b = must_register(r, METRICS_GAUGE, "b", NULL, NULL, 0);
    char *text;

    (void)state;
    metrics_set(a, (const char *const[]){ "Running" }, 2);
    metrics_set(b, NULL, 5);
    metrics_reset(a);
    metrics_reset(b);
    metrics_set(a, (const char *const[]){ "Failed" }, 1);
    text = render(r, NULL);
    assert_null(strstr(text, "Running"));
    assert_non_null(strstr(text, "a{phase=\"Failed\"} 1\n"));
    assert_non_null(strstr(text, "\nb 0\n"));
    free(text);
    metrics_registry_free(r);
}

static void test_numbers(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        { 0, "0" }, { 3, "3" }, { 0.1, "0.1" }, { -1.5e-7, "-1.5e-07" }, { 1e21, "1e+21" },
        { 123456789012, "123456789012" }, { 1.0 / 3, "0.3333333333333333" },
        { INFINITY, "+Inf" }, { -INFINITY, "-Inf" }, { NAN, "NaN" },
    };
    struct strbuf sb = STRBUF_INIT;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        strbuf_reset(&sb);
        assert_int_equal(metrics_add_number(&sb, cases[i].v), 0);
        assert_string_equal(sb.buf, cases[i].text);
    }
    strbuf_release(&sb);
}

#define THREADS 8
#define ROUNDS 20000

struct hammer {
    struct metrics_registry *r;
    struct metrics_family *c, *h;
    int id;
};

/* Each thread updates shared and own series and renders now and then. */
static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    char code[16];
    int i;

    snprintf(code, sizeof(code), "%d", 200 + hm->id);
    for (i = 0; i < ROUNDS; i++) {
        metrics_add(hm->c, (const char *const[]){ "GET", "200" }, 1);
        metrics_add(hm->c, (const char *const[]){ "PUT", code }, 1);
        metrics_observe(hm->h, NULL, (i % 4) * 0.5);
        if (i % 5000 == 0) {
            struct strbuf sb = STRBUF_INIT;

            metrics_render(hm->r, &sb, NULL);
            strbuf_release(&sb);
        }
    }
    return NULL;
}

static void test_concurrent_updates_add_up(void **state)
{
    static const double b[] = { 0.5, 1 };
    struct metrics_registry *r = metrics_registry_new(NULL);
    struct hammer hm[THREADS];
    pthread_t t[THREADS];
    struct promtext p;
    char series[64];
    int i;

    (void)state;
    for (i = 0; i < THREADS; i++) {
        hm[i].r = r;
        hm[i].c = i ? hm[0].c : must_register(r, METRICS_COUNTER, "c_total", verb_code, NULL, 0);
        hm[i].h = i ? hm[0].h : must_register(r, METRICS_HISTOGRAM, "h", NULL, b, 2);
        hm[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &hm[i]), 0);
    }
    for (i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    free(render(r, &p));
    assert_true(promtext_get(&p, "c_total{verb=\"GET\",code=\"200\"}") == THREADS * ROUNDS);
    for (i = 0; i < THREADS; i++) {
        snprintf(series, sizeof(series), "c_total{verb=\"PUT\",code=\"%d\"}", 200 + i);
        assert_true(promtext_get(&p, series) == ROUNDS);
    }
    assert_true(promtext_get(&p, "h_count") == THREADS * ROUNDS);
    /* 0 and 0.5 of every 0, 0.5, 1, 1.5 */
    assert_true(promtext_get(&p, "h_bucket{le=\"0.5\"}") == THREADS * ROUNDS / 2);
    assert_true(promtext_get(&p, "h_sum") == THREADS * ROUNDS / 4 * 3.0);
    promtext_release(&p);
    metrics_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_renders_the_exposition_format),
        cmocka_unit_test(test_label_values_are_escaped),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_misuse_is_refused),
        cmocka_unit_test(test_reset_forgets_series),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_concurrent_updates_add_up),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
