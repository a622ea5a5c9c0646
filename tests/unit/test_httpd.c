/*
 * Unit tests for the controller's status server on a free local port, with
 * a struct ctl that has no informers (never synced) and an ImageDB address
 * nobody listens on: the endpoints, methods, keep-alive, /healthz turning
 * unhealthy for a stuck reconcile and for a queue nobody drains, /readyz
 * waiting for the caches, /metrics as valid Prometheus text whose counts
 * follow the hooks, a body larger than one write, and listen errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../controller/httpd.h"
#include "httpget.h"
#include "promtext.h"
#include "version.h"

struct fixture {
    struct ctl c;
    struct httpd *h;
    struct httpget client;  /* one connection, kept alive between requests */
    const char *host;       /* how requests reach the server */
};

/* method on path of the server; fills r (release it). */
static void request(struct fixture *f, const char *method, const char *path,
                    struct httpget_reply *r)
{
    char url[128];
    struct err e;

    snprintf(url, sizeof(url), "http://%s:%d%s", f->host, httpd_port(f->h), path);
    if (httpget_do(&f->client, method, url, r, &e) < 0)
        fail_msg("%s", e.msg);
}

/* Expects code and body for a GET of path. */
static void expect(struct fixture *f, const char *path, long code, const char *body)
{
    struct httpget_reply r;

    request(f, "GET", path, &r);
    if (r.code != code || !strstr(r.body.buf, body))
        fail_msg("GET %s: %ld \"%s\", expected %ld with \"%s\"", path, r.code, r.body.buf, code,
                 body);
    httpget_reply_release(&r);
}

static int setup(void **state)
{
    struct httpd_opts o = { .stuck_reconcile_s = 0.3, .stalled_queue_s = 0.3,
                            .db_probe_interval_s = 0.2 };
    struct fixture *f = calloc(1, sizeof(*f));
    struct err e;

    if (!f)
        return -1;
    f->c.queue = wq_new(NULL, &e);
    f->c.db_cfg.conninfo = "host=127.0.0.1 port=1 dbname=none user=none";
    f->h = httpd_start(&f->c, "127.0.0.1:0", &o, &e);
    if (!f->h) {
        printf("# httpd_start: %s\n", e.msg);
        return -1;
    }
    f->host = "127.0.0.1";
    *state = f;
    return httpget_init(&f->client) == 0 && f->c.queue ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    httpget_release(&f->client);
    httpd_stop(f->h);
    wq_free(f->c.queue);
    free(f);
    return 0;
}

static void test_endpoints_and_methods(void **state)
{
    struct fixture *f = *state;
    struct httpget_reply r;

    expect(f, "/healthz", 200, "ok\n");
    expect(f, "/healthz?verbose=1", 200, "ok\n");
    expect(f, "/", 404, "not found");
    expect(f, "/metrics/x", 404, "not found");

    /* Requests after the first reuse the connection. */
    request(f, "GET", "/healthz", &r);
    assert_int_equal(r.connects, 0);
    httpget_reply_release(&r);

    request(f, "HEAD", "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_int_equal(r.body.len, 0);
    assert_non_null(strcasestr(r.headers.buf, "content-type: text/plain; version=0.0.4"));
    assert_non_null(strcasestr(r.headers.buf, "content-length: "));
    httpget_reply_release(&r);
    expect(f, "/healthz", 200, "ok\n");

    request(f, "POST", "/healthz", &r);
    assert_int_equal(r.code, 405);
    assert_non_null(strcasestr(r.headers.buf, "allow: GET, HEAD"));
    httpget_reply_release(&r);
    expect(f, "/healthz", 200, "ok\n");
}

static void test_healthz_stuck_reconcile(void **state)
{
    struct fixture *f = *state;
    double t0 = httpd_reconcile_begin();

    expect(f, "/healthz", 200, "ok\n");
    usleep(400 * 1000);
    expect(f, "/healthz", 503, "a reconcile has been running for");
    httpd_reconcile_end(t0);
    expect(f, "/healthz", 200, "ok\n");
}

static void test_healthz_stalled_queue(void **state)
{
    struct fixture *f = *state;
    const char *key;

    assert_int_equal(wq_add(f->c.queue, "ns/a", NULL), 0);
    expect(f, "/healthz", 200, "ok\n");
    usleep(400 * 1000);
    expect(f, "/healthz", 503, "1 keys queued for");
    /* A reconcile starting again is progress. */
    httpd_reconcile_end(httpd_reconcile_begin());
    expect(f, "/healthz", 200, "ok\n");
    key = wq_get(f->c.queue);
    assert_string_equal(key, "ns/a");
    wq_done(f->c.queue, key);
    usleep(400 * 1000);
    expect(f, "/healthz", 200, "ok\n");
}

static void test_readyz_waits_for_caches(void **state)
{
    struct fixture *f = *state;

    expect(f, "/readyz", 503, "analyses cache not synced\n");
    /* Leading does not skip the caches. */
    atomic_store(&f->c.leading, 1);
    expect(f, "/readyz", 503, "analyses cache not synced\n");
    atomic_store(&f->c.leading, 0);
}

/* GET /metrics, parsed. */
static void scrape(struct fixture *f, struct promtext *p)
{
    struct httpget_reply r;
    struct err e;

    request(f, "GET", "/metrics", &r);
    assert_int_equal(r.code, 200);
    if (promtext_parse(r.body.buf, r.body.len, p, &e) < 0)
        fail_msg("/metrics: %s\n%s", e.msg, r.body.buf);
    httpget_reply_release(&r);
}

static void test_metrics_follow_the_hooks(void **state)
{
    struct fixture *f = *state;
    struct promtext a, b;
    const char *key;
    double now = (double)time(NULL);
    int i;

    scrape(f, &a);
    for (i = 0; i < 3; i++)
        httpd_kube_observer("GET", 200, NULL);
    httpd_kube_observer("POST", 0, NULL);
    httpd_kube_observer("POST", 409, NULL);
    for (i = 0; i < 2; i++)
        httpd_reconcile_end(httpd_reconcile_begin());
    atomic_store(&f->c.metrics.reconciles, 5);
    atomic_store(&f->c.metrics.jobs_created, 7);
    atomic_store(&f->c.leading, 1);
    assert_int_equal(wq_add(f->c.queue, "ns/b", NULL), 0);
    assert_int_equal(wq_add(f->c.queue, "ns/c", NULL), 0);
    scrape(f, &b);

    assert_true(promtext_get(&b, "plateop_kube_requests_total{verb=\"GET\",code=\"200\"}") == 3);
    assert_true(promtext_get(&b, "plateop_kube_requests_total{verb=\"POST\",code=\"<error>\"}")
                == 1);
    assert_true(promtext_get(&b, "plateop_kube_requests_total{verb=\"POST\",code=\"409\"}") == 1);
    /* No ImageDB sync: its counters show 0. */
    assert_true(promtext_get(&b, "plateop_imagedb_notifications_total") == 0);
    assert_true(promtext_get(&b, "plateop_imagedb_row_write_errors_total") == 0);
    assert_true(promtext_get(&b, "plateop_reconcile_duration_seconds_count")
                - promtext_get(&a, "plateop_reconcile_duration_seconds_count") == 2);
    assert_true(promtext_get(&b, "plateop_reconcile_duration_seconds_bucket{le=\"0.005\"}")
                - promtext_get(&a, "plateop_reconcile_duration_seconds_bucket{le=\"0.005\"}") == 2);
    assert_true(promtext_get(&b, "plateop_reconciles_total") == 5);
    assert_true(promtext_get(&b, "plateop_jobs_created_total") == 7);
    assert_true(promtext_get(&b, "plateop_status_writes_total") == 0);
    assert_true(promtext_get(&a, "plateop_leader") == 0);
    assert_true(promtext_get(&b, "plateop_leader") == 1);
    assert_true(promtext_get(&b, "plateop_workqueue_depth") == 2);
    assert_true(promtext_get(&b, "process_resident_memory_bytes") > 1e5);
    assert_true(promtext_get(&b, "process_virtual_memory_bytes")
                >= promtext_get(&b, "process_resident_memory_bytes"));
    assert_true(promtext_get(&b, "process_start_time_seconds") > now - 3600);
    assert_true(promtext_get(&b, "process_start_time_seconds") <= now + 1);
    assert_true(promtext_get(&b, "process_cpu_seconds_total") > 0);
    assert_true(promtext_get(&b, "plateop_build_info{version=\"" PLATEOP_VERSION "\"}") == 1);
    /* The Analysis gauges wait for the cache. */
    assert_string_equal(promtext_family(&b, "plateop_analyses")->type, "gauge");
    assert_true(promtext_sum(&b, "plateop_analyses") == 0);
    assert_string_equal(promtext_family(&b, "plateop_reconcile_duration_seconds")->type,
                        "histogram");
    assert_string_equal(promtext_family(&b, "plateop_kube_requests_total")->type, "counter");

    promtext_release(&a);
    promtext_release(&b);
    atomic_store(&f->c.leading, 0);
    while (wq_len(f->c.queue)) {
        key = wq_get(f->c.queue);
        wq_done(f->c.queue, key);
    }
}

static void test_large_bodies_are_written_in_pieces(void **state)
{
    struct fixture *f = *state;
    struct promtext p;
    struct httpget_reply r;
    int code;

    /* About 900 series of some 60 bytes: several writes. */
    for (code = 100; code < 1000; code++)
        httpd_kube_observer("PATCH", code, NULL);
    request(f, "GET", "/metrics", &r);
    assert_int_equal(r.code, 200);
    assert_true(r.body.len > 50000);
    httpget_reply_release(&r);
    scrape(f, &p);
    assert_true(promtext_get(&p, "plateop_kube_requests_total{verb=\"PATCH\",code=\"999\"}") == 1);
    promtext_release(&p);
    expect(f, "/healthz", 200, "ok\n");
}

static void test_listen_errors(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = { "", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                                       "127.0.0.1:65536", "::1:80", "localhost:80",
                                       "127.0.0.1:-1" };
    struct ctl c;
    struct httpd *h;
    struct err e;
    char addr[64];
    size_t i;

    (void)state;
    memset(&c, 0, sizeof(c));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&e);
        h = httpd_start(&c, bad[i], NULL, &e);
        if (h)
            fail_msg("listen \"%s\" accepted", bad[i]);
        assert_non_null(strstr(e.msg, "listen address"));
    }
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", httpd_port(f->h));
    assert_null(httpd_start(&c, addr, NULL, &e));
    assert_non_null(strstr(e.msg, "Address already in use"));
    /* 192.0.2.1 (TEST-NET-1) is nobody's local address. */
    assert_null(httpd_start(&c, "192.0.2.1:0", NULL, &e));
    assert_non_null(strstr(e.msg, "listen on 192.0.2.1:0"));
}

static void test_other_addresses(void **state)
{
    static const struct {
        const char *listen, *host;
    } good[] = { { "[::1]:0", "[::1]" }, { ":0", "127.0.0.1" }, { "0.0.0.0:0", "127.0.0.1" } };
    struct fixture *f = *state;
    struct httpd *keep = f->h;
    struct ctl c;
    struct err e;
    size_t i;

    memset(&c, 0, sizeof(c));
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        f->h = httpd_start(&c, good[i].listen, NULL, &e);
        if (!f->h) {
            printf("# skipped %s: %s\n", good[i].listen, e.msg);
            continue;
        }
        assert_true(httpd_port(f->h) > 0);
        f->host = good[i].host;
        expect(f, "/healthz", 200, "ok\n");
        httpd_stop(f->h);
    }
    f->h = keep;
    f->host = "127.0.0.1";
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints_and_methods),
        cmocka_unit_test(test_healthz_stuck_reconcile),
        cmocka_unit_test(test_healthz_stalled_queue),
        cmocka_unit_test(test_readyz_waits_for_caches),
        cmocka_unit_test(test_metrics_follow_the_hooks),
        cmocka_unit_test(test_large_bodies_are_written_in_pieces),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_other_addresses),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
