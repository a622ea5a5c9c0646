/*
 * The controller's status server against the test bed: real informers on
 * a namespace of the test's own, the test bed's ImageDB, and Analyses
 * with statuses written through the API server.
 *
 * Proves: /readyz says which cache has not synced until all have, is
 * ready for a follower once they have, for the leader once ImageDB
 * answered, not for a leader whose ImageDB is unreachable or has stopped
 * answering (its processes stopped), and ready again once it answers; /metrics
 * parses as Prometheus text and its Analysis phases, batch states and API
 * request counts match what the test did.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../controller/httpd.h"
#include "httpget.h"
#include "idbfix.h"
#include "monotime.h"
#include "promtext.h"
#include "testkube.h"
#include "yamljson.h"

static struct testkube tk;

/* PostgreSQL processes the test stopped, resumed in teardown whatever happens. */
static pid_t stopped[2];

/* The Analysis CRD from crds/, created unless present, and served. */
static int ensure_crd(void)
{
    struct kube_res crds = { .group = "apiextensions.k8s.io", .version = "v1",
                             .resource = "customresourcedefinitions" };
    struct kube_res ana = KUBE_RES_ANALYSES;
    struct kube_error ke;
    struct strbuf path = STRBUF_INIT;
    json_t *crd, *res;
    double deadline = monotime_now() + 30;
    struct err e;

    strbuf_addf(&path, "%s/crds/analysis.yaml", getenv("PLATEOP_ROOT") ? getenv("PLATEOP_ROOT")
                                                                        : ".");
    crd = yamljson_load_file(path.buf, &e);
    strbuf_release(&path);
    if (!crd) {
        printf("# %s\n", e.msg);
        return -1;
    }
    res = kube_create(tk.c, &crds, crd, NULL, &ke);
    json_decref(crd);
    if (!res && !kube_is_already_exists(&ke)) {
        printf("# create the CRD: %s\n", ke.err.msg);
        return -1;
    }
    json_decref(res);
    ana.ns = tk.ns;
    while (!(res = kube_get(tk.c, &ana, NULL, &ke)) && monotime_now() < deadline)
        usleep(200 * 1000);
    json_decref(res);
    return res ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    if (testkube_open(&tk, "httpd") < 0)
        return -1;
    return ensure_crd();
}

static void resume_database(void)
{
    int i;

    for (i = 0; i < 2; i++)
        if (stopped[i] > 0)
            kill(stopped[i], SIGCONT);
    memset(stopped, 0, sizeof(stopped));
}

static int teardown(void **state)
{
    (void)state;
    resume_database();
    testkube_close(&tk);
    return 0;
}

/* A status server over c, its client and the URL base for requests. */
struct server {
    struct httpd *h;
    struct httpget client;
    char base[64];
};

static void server_start(struct server *s, struct ctl *c)
{
    struct httpd_opts o = { .db_probe_interval_s = 0.2 };
    struct err e;

    s->h = httpd_start(c, "127.0.0.1:0", &o, &e);
    if (!s->h)
        fail_msg("httpd_start: %s", e.msg);
    assert_int_equal(httpget_init(&s->client), 0);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", httpd_port(s->h));
}

static void server_stop(struct server *s)
{
    httpget_release(&s->client);
    httpd_stop(s->h);
}

/*
 * Polls GET path until it answers code with a body containing want (for up
 * to timeout_s); fails with the last answer otherwise.
 */
static void wait_for(struct server *s, const char *path, long code, const char *want,
                     double timeout_s)
{
    double deadline = monotime_now() + timeout_s;
    struct httpget_reply r = { 0 };
    char url[128];
    struct err e;

    snprintf(url, sizeof(url), "%s%s", s->base, path);
    for (;;) {
        if (httpget_do(&s->client, "GET", url, &r, &e) < 0)
            fail_msg("%s", e.msg);
        if (r.code == code && strstr(r.body.buf, want))
            break;
        if (monotime_now() > deadline)
            fail_msg("GET %s: %ld \"%s\", waited %.0f s for %ld \"%s\"", path, r.code,
                     r.body.buf, timeout_s, code, want);
        httpget_reply_release(&r);
        usleep(100 * 1000);
    }
    httpget_reply_release(&r);
}

static struct informer *informer_for(struct ctl *c, struct kube_res res)
{
    struct informer_opts o = { 0 };
    struct kube_error ke;
    struct informer *inf;

    o.res = res;
    o.res.ns = tk.ns;
    inf = informer_new(c->kc, &o, &ke);
    if (!inf)
        fail_msg("informer: %s", ke.err.msg);
    return inf;
}

/* Creates Analysis name and, when status is not NULL, writes it (both through c's client). */
static void create_analysis(struct ctl *c, const char *name, const char *status)
{
    struct kube_res res = KUBE_RES_ANALYSES;
    struct kube_error ke;
    json_t *obj, *patch, *out;

    res.ns = tk.ns;
    obj = json_pack("{s:s, s:s, s:{s:s}, s:{s:i, s:s}}", "apiVersion", "plateop.io/v1alpha1",
                    "kind", "Analysis", "metadata", "name", name, "spec", "plateAcquisition", 1,
                    "pipeline", "p.cppipe");
    out = kube_create(c->kc, &res, obj, NULL, &ke);
    if (!out)
        fail_msg("create %s: %s", name, ke.err.msg);
    json_decref(out);
    json_decref(obj);
    if (!status)
        return;
    res.name = name;
    res.subresource = "status";
    patch = json_loads(status, 0, NULL);
    assert_non_null(patch);
    out = kube_patch(c->kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke);
    if (!out)
        fail_msg("status of %s: %s", name, ke.err.msg);
    json_decref(out);
    json_decref(patch);
}

/* Whether the scraped text holds every expected series with its value. */
static int metrics_match(struct server *s, const char *const *series, const double *want,
                         struct strbuf *why)
{
    struct httpget_reply r = { 0 };
    struct promtext p;
    struct err e;
    char url[128];
    int ok = 1, i;

    snprintf(url, sizeof(url), "%s/metrics", s->base);
    if (httpget_do(&s->client, "GET", url, &r, &e) < 0)
        fail_msg("%s", e.msg);
    assert_int_equal(r.code, 200);
    if (promtext_parse(r.body.buf, r.body.len, &p, &e) < 0)
        fail_msg("/metrics does not parse: %s\n%s", e.msg, r.body.buf);
    strbuf_reset(why);
    for (i = 0; series[i]; i++)
        if (promtext_get(&p, series[i]) != want[i]) {
            strbuf_addf(why, "%s is %g, not %g; ", series[i], promtext_get(&p, series[i]),
                        want[i]);
            ok = 0;
        }
    promtext_release(&p);
    httpget_reply_release(&r);
    return ok;
}

/*
 * Stops the backend of the status server's probe connection and the
 * postmaster (its parent): an established connection that no longer
 * answers, and new ones that never complete.
 */
static void stop_database(void)
{
    static const char *const app[] = { "plateop-controller-probe" };
    PGconn *pg = idbfix_connect();
    char path[64], stat[512], *paren;
    long long backend = -1;
    double deadline = monotime_now() + 10;
    FILE *f;
    int ppid = 0;

    assert_non_null(pg);
    while (backend <= 0 && monotime_now() < deadline) {
        backend = idbfix_value(pg, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
                                   "ORDER BY backend_start DESC LIMIT 1", 1, app);
        if (backend <= 0)
            usleep(100 * 1000);
    }
    PQfinish(pg);
    assert_true(backend > 0);
    snprintf(path, sizeof(path), "/proc/%lld/stat", backend);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(stat, sizeof(stat), f));
    fclose(f);
    paren = strrchr(stat, ')');
    assert_non_null(paren);
    assert_int_equal(sscanf(paren + 1, " %*c %d", &ppid), 1);
    stopped[0] = ppid;
    stopped[1] = (pid_t)backend;
    assert_int_equal(kill(stopped[0], SIGSTOP), 0);
    assert_int_equal(kill(stopped[1], SIGSTOP), 0);
}

static void test_readiness_and_metrics(void **state)
{
    static const char *const series[] = {
        "plateop_analyses{phase=\"Running\"}",
        "plateop_analyses{phase=\"Succeeded\"}",
        "plateop_analyses{phase=\"Pending\"}",
        "plateop_analyses{phase=\"Failed\"}",
        "plateop_batches{state=\"pending\"}",
        "plateop_batches{state=\"running\"}",
        "plateop_batches{state=\"succeeded\"}",
        "plateop_batches{state=\"failed\"}",
        "plateop_kube_requests_total{verb=\"POST\",code=\"201\"}",
        "plateop_kube_requests_total{verb=\"PATCH\",code=\"200\"}",
        "plateop_leader",
        NULL,
    };
    static const double want[] = { 1, 1, 1, 0, 1, 2, 7, 0, 3, 2, 1 };
    struct kube_error ke;
    struct ctl c, down;
    struct server s, sdown;
    struct informer **infs[] = { &c.analyses, &c.jobs, &c.configmaps, &c.pods, &c.quotas };
    const struct kube_res res[] = { KUBE_RES_ANALYSES, KUBE_RES_JOBS, KUBE_RES_CONFIGMAPS,
                                    KUBE_RES_PODS, { .version = "v1",
                                                     .resource = "resourcequotas" } };
    struct strbuf why = STRBUF_INIT;
    double deadline;
    size_t i;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.kc = testkube_client(NULL);
    assert_non_null(c.kc);
    /* Only this client is observed, so the request counts are this test's. */
    kube_client_set_observer(c.kc, httpd_kube_observer, NULL);
    for (i = 0; i < 5; i++)
        *infs[i] = informer_for(&c, res[i]);
    server_start(&s, &c);

    wait_for(&s, "/readyz", 503, "analyses cache not synced", 1);
    for (i = 0; i < 5; i++) {
        assert_int_equal(informer_start(*infs[i], &ke), 0);
        assert_int_equal(informer_wait_synced(*infs[i], 30000), 0);
    }
    wait_for(&s, "/readyz", 200, "ok", 5);
    wait_for(&s, "/healthz", 200, "ok", 5);

    /* The leader also needs ImageDB: the test bed's answers. */
    atomic_store(&c.leading, 1);
    wait_for(&s, "/readyz", 200, "ok", 10);
    /* A database that stops answering is noticed (2 s per attempt), and its return too. */
    stop_database();
    wait_for(&s, "/readyz", 503, "ImageDB unreachable", 15);
    resume_database();
    wait_for(&s, "/readyz", 200, "ok", 15);

    /* The same caches with an ImageDB nobody listens on. */
    memset(&down, 0, sizeof(down));
    down.analyses = c.analyses;
    down.jobs = c.jobs;
    down.configmaps = c.configmaps;
    down.pods = c.pods;
    down.quotas = c.quotas;
    down.db_cfg.conninfo = "host=127.0.0.1 port=1 dbname=imagedb user=nobody";
    atomic_store(&down.leading, 1);
    server_start(&sdown, &down);
    wait_for(&sdown, "/readyz", 503, "ImageDB unreachable", 10);
    atomic_store(&down.leading, 0);
    wait_for(&sdown, "/readyz", 200, "ok", 5);
    server_stop(&sdown);

    create_analysis(&c, "running", "{\"status\":{\"phase\":\"Running\",\"batches\":{\"total\":6,"
                                   "\"pending\":1,\"running\":2,\"succeeded\":3,\"failed\":0}}}");
    create_analysis(&c, "done", "{\"status\":{\"phase\":\"Succeeded\",\"batches\":{\"total\":4,"
                                "\"succeeded\":4}}}");
    create_analysis(&c, "new", NULL);
    deadline = monotime_now() + 10;
    while (!metrics_match(&s, series, want, &why)) {
        if (monotime_now() > deadline)
            fail_msg("/metrics after 10 s: %s", why.buf);
        usleep(200 * 1000);
    }

    strbuf_release(&why);
    server_stop(&s);
    for (i = 0; i < 5; i++)
        informer_free(*infs[i]);
    kube_client_free(c.kc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readiness_and_metrics),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
