/*
 * Watches and informers against the test bed's API server. Proves: a watch
 * from a compacted resourceVersion fails as Gone (an ERROR event inside a
 * 200 stream) and an expired list continue token as an HTTP 410; streams
 * the server closes are resumed without losing events; a forced 410 in the
 * middle of a watch (etcd compacted while the watcher was behind) makes it
 * relist and deliver exactly the differences; an informer caches pruned
 * objects, indexes a label, calls its handlers and resyncs, and after a
 * forced 410 its cache, which the relist is compared against, ends up
 * exactly the server's.
 *
 * Core/v1 Events are watched where a 410 must be forced: the API server
 * serves them from etcd (no watch cache), so an etcd compaction reaches
 * them. Compaction goes through etcd's JSON gateway at
 * $PLATEOP_ETCD_ENDPOINTS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "informer.h"
#include "kube_watch.h"
#include "strbuf.h"
#include "strmap.h"
#include "testkube.h"

static struct testkube tk;

/* ---- etcd ------------------------------------------------------------ */

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    strbuf_add(ud, data, size * n);
    return size * n;
}

static json_t *etcd_post(const char *path, const char *body)
{
    const char *eps = getenv("PLATEOP_ETCD_ENDPOINTS");
    struct strbuf url = STRBUF_INIT, out = STRBUF_INIT;
    CURL *h = curl_easy_init();
    json_t *v = NULL;

    assert_non_null(eps);
    strbuf_add(&url, eps, strcspn(eps, ","));
    strbuf_adds(&url, path);
    curl_easy_setopt(h, CURLOPT_URL, url.buf);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    if (curl_easy_perform(h) == CURLE_OK)
        v = json_loads(out.buf, 0, NULL);
    if (!v)
        fail_msg("etcd %s: %s", url.buf, out.buf);
    curl_easy_cleanup(h);
    strbuf_release(&url);
    strbuf_release(&out);
    return v;
}

/* Compacts etcd up to its current revision: every older resourceVersion expires. */
static void etcd_compact(void)
{
    json_t *r = etcd_post("/v3/kv/range", "{\"key\":\"L3JlZ2lzdHJ5\"}");
    const char *rev = json_string_value(json_object_get(json_object_get(r, "header"),
                                                        "revision"));
    struct strbuf body = STRBUF_INIT;

    assert_non_null(rev);
    strbuf_addf(&body, "{\"revision\":\"%s\",\"physical\":true}", rev);
    json_decref(etcd_post("/v3/kv/compaction", body.buf));
    json_decref(r);
    strbuf_release(&body);
}

/* ---- objects --------------------------------------------------------- */

static struct kube_res events_res(const char *name)
{
    struct kube_res r = KUBE_RES_EVENTS;

    r.ns = tk.ns;
    r.name = name;
    return r;
}

/*
 * Changes the Event `name`: KUBE_POST creates it, KUBE_PATCH modifies its
 * message, KUBE_DELETE deletes it. Fails the test on error.
 */
static void event_do(enum kube_verb verb, const char *name)
{
    struct kube_request req = { .verb = verb, .res = events_res(verb == KUBE_POST ? NULL : name),
                                .patch = KUBE_PATCH_MERGE };
    struct kube_error ke;
    json_t *body = NULL, *got;

    if (verb == KUBE_POST)
        body = json_pack("{s:{s:s},s:{s:s,s:s,s:s},s:s,s:s,s:s}", "metadata", "name", name,
                         "involvedObject", "kind", "ConfigMap", "namespace", tk.ns, "name",
                         "subject", "reason", "Test", "message", "created", "type", "Normal");
    else if (verb == KUBE_PATCH)
        body = json_pack("{s:s}", "message", "modified");
    req.body = body;
    got = kube_do(tk.c, &req, &ke);
    if (!got)
        fail_msg("event %s: %s", name, ke.err.msg);
    json_decref(got);
    json_decref(body);
}

static char *list_rv(const struct kube_res *r)
{
    struct kube_error ke;
    json_t *l = kube_get(tk.c, r, NULL, &ke);
    char *rv;

    if (!l)
        fail_msg("list: %s", ke.err.msg);
    rv = strdup(json_string_value(json_object_get(json_object_get(l, "metadata"),
                                                  "resourceVersion")));
    json_decref(l);
    return rv;
}

/* ---- Gone ------------------------------------------------------------ */

static int ignore_event(enum kube_watch_type type, json_t *obj, void *ud)
{
    (void)type;
    (void)obj;
    (void)ud;
    return 0;
}

static void test_watch_from_compacted_rv_is_gone(void **state)
{
    struct kube_res r = events_res(NULL);
    struct kube_query q = { .limit = 1 };
    struct kube_error ke;
    json_t *page;
    char *old = list_rv(&r);

    (void)state;
    event_do(KUBE_POST, "gone-1");
    event_do(KUBE_POST, "gone-2");
    page = kube_get(tk.c, &r, &q, &ke);
    assert_non_null(page);
    assert_non_null(json_object_get(json_object_get(page, "metadata"), "continue"));
    /* A write after the page, so compaction passes the page's revision. */
    event_do(KUBE_POST, "gone-3");
    etcd_compact();

    q = (struct kube_query){ .resource_version = old, .timeout_seconds = 5 };
    assert_int_equal(kube_watch_once(tk.c, &r, &q, ignore_event, NULL, NULL, &ke), -1);
    assert_true(kube_is_gone(&ke));
    assert_string_equal(ke.reason, "Expired");
    printf("# %s\n", ke.err.msg);

    /* A continue token from before the compaction: an HTTP 410. */
    q = (struct kube_query){ .limit = 1,
                             .continue_token = json_string_value(json_object_get(
                                 json_object_get(page, "metadata"), "continue")) };
    assert_null(kube_get(tk.c, &r, &q, &ke));
    assert_true(kube_is_gone(&ke));
    assert_int_equal(ke.attempts, 1);
    printf("# %s\n", ke.err.msg);
    json_decref(page);
    free(old);
}

/* ---- the resilient watcher ------------------------------------------- */

/* What the handlers saw: name -> last resourceVersion, plus counters. */
struct model {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct strmap objs;        /* name -> strdup(rv) */
    int adds, mods, dels, syncs;
    const char *gate;          /* block in the handler when this name arrives */
    int gated, release;
    struct strbuf log;         /* "TYPE name;" */
};

static void model_init(struct model *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    strbuf_init(&m->log);
}

static void model_release(struct model *m)
{
    strmap_clear(&m->objs, free);
    strbuf_release(&m->log);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
}

static void model_event(void *ud, enum kube_watch_type type, json_t *obj)
{
    struct model *m = ud;
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
    void *old = NULL;

    pthread_mutex_lock(&m->mu);
    strbuf_addf(&m->log, "%s %s;", kube_watch_type_name(type), name);
    if (type == KUBE_WATCH_DELETED) {
        m->dels++;
        strmap_remove(&m->objs, name, &old);
    } else {
        type == KUBE_WATCH_ADDED ? m->adds++ : m->mods++;
        strmap_put(&m->objs, name, strdup(rv), &old);
    }
    free(old);
    pthread_cond_broadcast(&m->cv);
    if (m->gate && strcmp(name, m->gate) == 0) {
        m->gated = 1;
        pthread_cond_broadcast(&m->cv);
        while (!m->release)
            pthread_cond_wait(&m->cv, &m->mu);
    }
    pthread_mutex_unlock(&m->mu);
}

static void model_synced(void *ud)
{
    struct model *m = ud;

    pthread_mutex_lock(&m->mu);
    m->syncs++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

struct server_view {
    const struct strmap *model;
    int mismatches;
};

static int compare_item(json_t *item, void *ud)
{
    struct server_view *v = ud;
    const json_t *md = json_object_get(item, "metadata");
    const char *have = strmap_get(v->model, json_string_value(json_object_get(md, "name")));

    v->mismatches += !have || strcmp(have, json_string_value(json_object_get(md,
                                                              "resourceVersion"))) != 0;
    return 0;
}

/* Waits (up to 20 s) until the model holds exactly the server's objects and versions. */
static void wait_model_matches_server(struct model *m, const struct kube_res *r)
{
    struct server_view v;
    struct kube_error ke;
    int i;

    for (i = 0; i < 200; i++) {
        pthread_mutex_lock(&m->mu);
        v = (struct server_view){ &m->objs, 0 };
        assert_int_equal(kube_list_each(tk.c, r, NULL, compare_item, &v, NULL, &ke), 0);
        /* Every server object matches; equal counts mean nothing extra is held. */
        {
            json_t *l = kube_get(tk.c, r, NULL, &ke);

            if (json_array_size(json_object_get(l, "items")) != m->objs.count)
                v.mismatches++;
            json_decref(l);
        }
        pthread_mutex_unlock(&m->mu);
        if (v.mismatches == 0)
            return;
        usleep(100000);
    }
    fail_msg("the watcher's view never matched the server (log: %s)", m->log.buf);
}

struct runner {
    struct kube_watch *w;
    pthread_t t;
    int rc;
};

static void *run_watch(void *arg)
{
    struct runner *r = arg;
    struct kube_error ke;

    r->rc = kube_watch_run(r->w, &ke);
    return NULL;
}

static void start_watch(struct runner *run, struct model *m, int timeout_seconds)
{
    struct kube_watch_opts o = { .res = events_res(NULL), .timeout_seconds = timeout_seconds,
                                 .h = { .on_event = model_event, .on_synced = model_synced },
                                 .ud = m };
    struct kube_error ke;

    run->w = kube_watch_new(tk.c, &o, &ke);
    assert_non_null(run->w);
    assert_int_equal(pthread_create(&run->t, NULL, run_watch, run), 0);
}

static void stop_watch(struct runner *run, struct model *m)
{
    pthread_mutex_lock(&m->mu);
    m->release = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    kube_watch_stop(run->w);
    pthread_join(run->t, NULL);
    assert_int_equal(run->rc, 0);
    kube_watch_free(run->w);
}

static void wait_for(struct model *m, int *counter, int at_least)
{
    int i;

    pthread_mutex_lock(&m->mu);
    for (i = 0; i < 200 && *counter < at_least; i++) {
        pthread_mutex_unlock(&m->mu);
        usleep(100000);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    if (*counter < at_least)
        fail_msg("waited for %d, have %d (log: %s)", at_least, *counter, m->log.buf);
}

/*
 * The server ends each watch after 1 s; events keep coming across those
 * reconnections and none is lost, without any relist.
 */
static void test_reconnect_loses_nothing(void **state)
{
    struct kube_res r = events_res(NULL);
    struct runner run;
    struct model m;
    char name[32];
    int i;

    (void)state;
    model_init(&m);
    start_watch(&run, &m, 1);
    wait_for(&m, &m.syncs, 1);
    for (i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "reconnect-%d", i);
        event_do(KUBE_POST, name);
        usleep(300000);
    }
    wait_model_matches_server(&m, &r);
    assert_int_equal(m.syncs, 1);
    stop_watch(&run, &m);
    model_release(&m);
}

/* Creates the Events <prefix>old-0 .. <prefix>old-5. */
static void create_olds(const char *prefix)
{
    char name[32];
    int i;

    for (i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "%sold-%d", prefix, i);
        event_do(KUBE_POST, name);
    }
}

/* What the handlers had seen when the watcher was held at the gate. */
struct seen_at_gate {
    int adds, mods, dels;
};

/*
 * Creates the Event m->gate and holds the watcher on it until the server
 * has ended that stream; meanwhile deletes <prefix>old-0..2, modifies
 * <prefix>old-3..5, creates <prefix>new-0..2 and compacts etcd, so that
 * resuming from the gate's resourceVersion fails with 410. Releases the
 * watcher and returns what had been seen before the changes.
 */
static struct seen_at_gate churn_behind_gate(struct model *m, const char *prefix)
{
    struct seen_at_gate at;
    char name[32];
    int i;

    event_do(KUBE_POST, m->gate);
    wait_for(m, &m->gated, 1);
    sleep(4);   /* the server ends the gated stream after 2 s */
    pthread_mutex_lock(&m->mu);
    at = (struct seen_at_gate){ m->adds, m->mods, m->dels };
    pthread_mutex_unlock(&m->mu);
    for (i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "%sold-%d", prefix, i);
        event_do(KUBE_DELETE, name);
        snprintf(name, sizeof(name), "%sold-%d", prefix, i + 3);
        event_do(KUBE_PATCH, name);
        snprintf(name, sizeof(name), "%snew-%d", prefix, i);
        event_do(KUBE_POST, name);
    }
    etcd_compact();
    pthread_mutex_lock(&m->mu);
    m->release = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return at;
}

/* The handlers saw exactly the churn's changes since the gate: 3 each. */
static void assert_churn_delivered(struct model *m, const struct seen_at_gate *at)
{
    pthread_mutex_lock(&m->mu);
    assert_int_equal(m->dels - at->dels, 3);
    assert_int_equal(m->mods - at->mods, 3);
    assert_int_equal(m->adds - at->adds, 3);
    pthread_mutex_unlock(&m->mu);
}

/*
 * A forced 410 mid-watch: the handler holds the watcher on "gate" until
 * the server has ended that stream; meanwhile objects are deleted,
 * modified and created, and etcd is compacted, so resuming from the gate's
 * resourceVersion fails with 410. The watcher must relist and deliver
 * exactly those differences.
 */
static void test_forced_410_relists_without_loss(void **state)
{
    struct kube_res r = events_res(NULL);
    struct seen_at_gate at;
    struct runner run;
    struct model m;

    (void)state;
    model_init(&m);
    create_olds("");
    m.gate = "gate";
    start_watch(&run, &m, 2);
    wait_for(&m, &m.syncs, 1);
    wait_model_matches_server(&m, &r);

    at = churn_behind_gate(&m, "");
    wait_for(&m, &m.syncs, 2);
    wait_model_matches_server(&m, &r);
    assert_churn_delivered(&m, &at);

    /* And it keeps watching afterwards. */
    event_do(KUBE_POST, "after");
    wait_model_matches_server(&m, &r);
    stop_watch(&run, &m);
    model_release(&m);
}

/* ---- informer -------------------------------------------------------- */

struct inf_seen {
    pthread_mutex_t mu;
    int adds, updates, resyncs, deletes, synced;
    char last_deleted[64];
};

static void count(struct inf_seen *s, int *field)
{
    pthread_mutex_lock(&s->mu);
    (*field)++;
    pthread_mutex_unlock(&s->mu);
}

static void inf_add(void *ud, const json_t *obj)
{
    struct inf_seen *s = ud;

    (void)obj;
    count(s, &s->adds);
}

static void inf_update(void *ud, const json_t *old, const json_t *cur)
{
    struct inf_seen *s = ud;

    count(s, json_equal(old, cur) ? &s->resyncs : &s->updates);
}

static void inf_delete(void *ud, const json_t *obj)
{
    struct inf_seen *s = ud;

    pthread_mutex_lock(&s->mu);
    s->deletes++;
    snprintf(s->last_deleted, sizeof(s->last_deleted), "%s",
             json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")));
    pthread_mutex_unlock(&s->mu);
}

static void inf_synced(void *ud)
{
    struct inf_seen *s = ud;

    count(s, &s->synced);
}

static void drop_data(json_t *obj, void *ud)
{
    (void)ud;
    json_object_del(obj, "data");
}

static void create_cm(const char *name, const char *analysis)
{
    struct kube_res r = KUBE_RES_CONFIGMAPS;
    struct kube_error ke;
    json_t *cm = json_pack("{s:{s:s,s:{s:s}},s:{s:s}}", "metadata", "name", name, "labels",
                           "plateop.io/analysis", analysis, "data", "big", "xxxxxxxxxxxxxxxx");
    json_t *got;

    r.ns = tk.ns;
    got = kube_create(tk.c, &r, cm, NULL, &ke);
    if (!got)
        fail_msg("create %s: %s", name, ke.err.msg);
    json_decref(got);
    json_decref(cm);
}

static int seen_at_least(struct inf_seen *s, int *field, int n)
{
    int i, v = 0;

    for (i = 0; i < 200; i++) {
        pthread_mutex_lock(&s->mu);
        v = *field;
        pthread_mutex_unlock(&s->mu);
        if (v >= n)
            return 1;
        usleep(50000);
    }
    return 0;
}

static void test_informer(void **state)
{
    static const char *const labels[] = { "plateop.io/analysis", NULL };
    struct inf_seen s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct informer_opts o = {
        .res = KUBE_RES_CONFIGMAPS, .resync_ms = 700, .index_labels = labels,
        .transform = drop_data, .ud = &s,
        .h = { .on_add = inf_add, .on_update = inf_update, .on_delete = inf_delete,
               .on_synced = inf_synced },
    };
    struct kube_res r = KUBE_RES_CONFIGMAPS;
    struct kube_error ke;
    struct informer *inf;
    json_t *got, *l, *p;
    int i;

    (void)state;
    o.res.ns = r.ns = tk.ns;
    o.label_selector = "plateop.io/analysis";
    create_cm("inf-a1", "a");
    create_cm("inf-a2", "a");
    create_cm("inf-b1", "b");
    inf = informer_new(tk.c, &o, &ke);
    assert_non_null(inf);
    assert_false(informer_has_synced(inf));
    assert_int_equal(informer_start(inf, &ke), 0);
    assert_int_equal(informer_wait_synced(inf, 20000), 0);
    assert_int_equal(informer_count(inf), 3);
    pthread_mutex_lock(&s.mu);
    assert_int_equal(s.synced, 1);
    assert_int_equal(s.adds, 3);
    pthread_mutex_unlock(&s.mu);

    got = informer_get(inf, tk.ns, "inf-a1");
    assert_non_null(got);
    assert_null(json_object_get(got, "data"));
    assert_null(json_object_get(json_object_get(got, "metadata"), "managedFields"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "metadata"),
                                                          "name")), "inf-a1");
    json_decref(got);
    assert_null(informer_get(inf, tk.ns, "absent"));

    l = informer_list(inf, "plateop.io/analysis", "a");
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    l = informer_list(inf, NULL, NULL);
    assert_int_equal(json_array_size(l), 3);
    json_decref(l);

    /* Relabel b1 to a: the index follows. */
    r.name = "inf-b1";
    p = json_pack("{s:{s:{s:s}}}", "metadata", "labels", "plateop.io/analysis", "a");
    json_decref(kube_patch(tk.c, &r, KUBE_PATCH_MERGE, p, NULL, &ke));
    json_decref(p);
    assert_true(seen_at_least(&s, &s.updates, 1));
    l = informer_list(inf, "plateop.io/analysis", "a");
    assert_int_equal(json_array_size(l), 3);
    json_decref(l);
    l = informer_list(inf, "plateop.io/analysis", "b");
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);

    r.name = "inf-a2";
    json_decref(kube_delete(tk.c, &r, NULL, &ke));
    assert_true(seen_at_least(&s, &s.deletes, 1));
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.last_deleted, "inf-a2");
    pthread_mutex_unlock(&s.mu);
    for (i = 0; i < 50 && informer_count(inf) != 2; i++)
        usleep(20000);
    assert_int_equal(informer_count(inf), 2);

    /* Resync: on_update with equal copies for each cached object, periodically. */
    assert_true(seen_at_least(&s, &s.resyncs, 4));
    informer_stop(inf);
    informer_free(inf);
}

/* The model as an informer's handlers: its gate holds the informer's watch thread. */
static void model_add(void *ud, const json_t *obj)
{
    model_event(ud, KUBE_WATCH_ADDED, (json_t *)obj);
}

static void model_update(void *ud, const json_t *old, const json_t *cur)
{
    (void)old;
    model_event(ud, KUBE_WATCH_MODIFIED, (json_t *)cur);
}

static void model_delete(void *ud, const json_t *obj)
{
    model_event(ud, KUBE_WATCH_DELETED, (json_t *)obj);
}

static int cached_matches(json_t *item, void *ud)
{
    struct informer *inf = ud;
    const json_t *md = json_object_get(item, "metadata");
    json_t *got = informer_get(inf, tk.ns, json_string_value(json_object_get(md, "name")));
    const char *rv = json_string_value(json_object_get(json_object_get(got, "metadata"),
                                                       "resourceVersion"));
    int same = rv && strcmp(rv, json_string_value(json_object_get(md, "resourceVersion"))) == 0;

    json_decref(got);
    return !same;
}

/*
 * The forced 410 again, through an informer: its cache is what the watch
 * compares the relist against (kube_watch_store, keys without the
 * namespace), so the cache must end up holding exactly the server's
 * objects at their versions, and the handlers see exactly the changes.
 */
static void test_informer_forced_410_relists_without_loss(void **state)
{
    struct kube_res r = events_res(NULL);
    struct informer_opts o = { .res = events_res(NULL), .watch_timeout_s = 2,
                               .h = { .on_add = model_add, .on_update = model_update,
                                      .on_delete = model_delete, .on_synced = model_synced } };
    struct seen_at_gate at;
    struct kube_error ke;
    struct informer *inf;
    struct model m;
    json_t *l;

    (void)state;
    model_init(&m);
    o.ud = &m;
    create_olds("i");
    m.gate = "igate";
    inf = informer_new(tk.c, &o, &ke);
    assert_non_null(inf);
    assert_int_equal(informer_start(inf, &ke), 0);
    assert_int_equal(informer_wait_synced(inf, 20000), 0);
    wait_model_matches_server(&m, &r);

    at = churn_behind_gate(&m, "i");
    /* on_synced comes once per informer: the model tells when the relist is through. */
    wait_model_matches_server(&m, &r);
    assert_churn_delivered(&m, &at);
    assert_int_equal(kube_list_each(tk.c, &r, NULL, cached_matches, inf, NULL, &ke), 0);
    l = kube_get(tk.c, &r, NULL, &ke);
    assert_int_equal(informer_count(inf), json_array_size(json_object_get(l, "items")));
    json_decref(l);
    informer_stop(inf);
    informer_free(inf);
    model_release(&m);
}

static int setup(void **state)
{
    (void)state;
    return testkube_open(&tk, "kube-watch");
}

static int teardown(void **state)
{
    (void)state;
    testkube_close(&tk);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_from_compacted_rv_is_gone),
        cmocka_unit_test(test_reconnect_loses_nothing),
        cmocka_unit_test(test_forced_410_relists_without_loss),
        cmocka_unit_test(test_informer),
        cmocka_unit_test(test_informer_forced_410_relists_without_loss),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
