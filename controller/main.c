/*
 * plateop-controller: watches Analysis resources and ImageDB, plans well
 * batches, runs them as Kubernetes Jobs under the namespace quota and a
 * window, and merges their tables.
 *
 * Threads: one per informer (Analyses, and the Jobs, ConfigMaps and Pods
 * labelled plateop.io/analysis), the leader elector, the Event recorder,
 * and --workers reconcile workers fed by a rate-limited work queue. The
 * main thread waits for SIGTERM/SIGINT and shuts everything down in order.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "httpd.h"
#include "imagedb_sync.h"
#include "kube_config.h"
#include "leader.h"
#include "log.h"
#include "objects.h"
#include "version.h"

#define LEASE_NAME "plateop-controller"

/* ---- informer plumbing ----------------------------------------------- */

/* Whether ns is one of the namespaces served (all when none are named). */
static int serves(const struct ctl_config *cfg, const char *ns)
{
    const char *p = cfg->namespaces;
    size_t n = ns ? strlen(ns) : 0;

    if (!p || !*p)
        return 1;
    while (ns && *p) {
        size_t len = strcspn(p, ",");

        if (len == n && strncmp(p, ns, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static void enqueue_obj(struct ctl *c, const json_t *obj, const char *name)
{
    const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"),
                                                       "namespace"));
    char key[512];

    if (!ns || !name || !serves(c->cfg, ns))
        return;
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    ctl_enqueue(c, key);
}

static void analysis_changed(void *ud, const json_t *obj)
{
    enqueue_obj(ud, obj, json_string_value(json_object_get(json_object_get(obj, "metadata"),
                                                           "name")));
}

struct wake_ctx {
    struct ctl *c;
    const char *ns;     /* NULL: every namespace */
    const char *name;   /* NULL: every Analysis of ns, else those that depend on it */
};

static int wake_one(const json_t *a, void *ud)
{
    const struct wake_ctx *w = ud;
    const char *ans = json_string_value(json_object_get(json_object_get(a, "metadata"),
                                                        "namespace"));
    const json_t *d;
    size_t k;

    if (w->ns && (!ans || strcmp(ans, w->ns) != 0))
        return 0;
    if (!w->name)
        analysis_changed(w->c, a);
    json_array_foreach(json_object_get(json_object_get(a, "spec"), "dependsOn"), k, d) {
        if (w->name && json_string_value(d) && strcmp(json_string_value(d), w->name) == 0)
            analysis_changed(w->c, a);
    }
    return 0;
}

/* Analyses of the same namespace whose spec.dependsOn names obj. */
static void wake_dependents(struct ctl *c, const json_t *obj)
{
    const json_t *meta = json_object_get(obj, "metadata");
    struct wake_ctx w = { c, json_string_value(json_object_get(meta, "namespace")),
                          json_string_value(json_object_get(meta, "name")) };

    if (w.ns && w.name && c->analyses)
        informer_each(c->analyses, NULL, NULL, wake_one, &w);
}

static void on_analysis_update(void *ud, const json_t *old, const json_t *cur)
{
    const char *was = json_string_value(json_object_get(json_object_get(old, "status"), "phase"));
    const char *is = json_string_value(json_object_get(json_object_get(cur, "status"), "phase"));

    analysis_changed(ud, cur);
    if (is && (!was || strcmp(was, is) != 0))
        wake_dependents(ud, cur);
}

static void on_analysis_add(void *ud, const json_t *obj)
{
    analysis_changed(ud, obj);
    wake_dependents(ud, obj);
}

/* Owned objects name their Analysis in an owner reference or an annotation. */
static void owned_changed(void *ud, const json_t *obj)
{
    const json_t *meta = json_object_get(obj, "metadata"), *r;
    const char *name = json_string_value(
        json_object_get(json_object_get(meta, "annotations"), OBJ_ANN_ANALYSIS));
    size_t i;

    json_array_foreach(json_object_get(meta, "ownerReferences"), i, r) {
        const char *kind = json_string_value(json_object_get(r, "kind"));

        if (kind && strcmp(kind, "Analysis") == 0)
            name = json_string_value(json_object_get(r, "name"));
    }
    enqueue_obj(ud, obj, name);
}

static void on_owned_update(void *ud, const json_t *old, const json_t *cur)
{
    (void)old;
    owned_changed(ud, cur);
}

/* Room in a quota is room for every Analysis of its namespace. */
static void quota_changed(void *ud, const json_t *obj)
{
    struct ctl *c = ud;
    struct wake_ctx w = { c, json_string_value(json_object_get(json_object_get(obj, "metadata"),
                                                               "namespace")), NULL };

    if (w.ns && c->analyses)
        informer_each(c->analyses, NULL, NULL, wake_one, &w);
}

static void on_quota_update(void *ud, const json_t *old, const json_t *cur)
{
    (void)old;
    quota_changed(ud, cur);
}

/* Keeps only the named members of obj (a shallow filter); keep NULL keeps all. */
static void keep_only(json_t *obj, const char *const *keep)
{
    const char *key;
    json_t *v;
    void *tmp;

    if (!keep)
        return;
    json_object_foreach_safe(obj, tmp, key, v) {
        const char *const *k;

        for (k = keep; *k && strcmp(*k, key) != 0; k++)
            ;
        if (!*k)
            json_object_del(obj, key);
    }
}

/* What the cache keeps of one kind of object; lists are NULL-terminated. */
struct prune_rule {
    const char *const *meta;            /* metadata members */
    const char *const *labels;
    const char *const *annotations;
    const char *const *status;          /* status members; NULL: all */
    const char *status_array;           /* a status array whose items are filtered ... */
    const char *const *items;           /* ... to these members */
};

static const char *const meta_kept[] = { "name", "namespace", "labels", "annotations",
                                         "ownerReferences", NULL };
static const char *const owner_kept[] = { "kind", "name", "uid", NULL };
static const char *const none[] = { NULL };

/*
 * The caches hold what the reconcile and the event handlers read and
 * nothing else, since 20,000 Jobs and as many ConfigMaps are cached at
 * once: the labels and annotations read (the Jobs' own wells, hash and
 * plan position are read from their ConfigMaps), owner references as
 * kind, name and uid, a pod's creation and deletion times, and the status
 * fields the batch state comes from.
 */
static const struct prune_rule job_kept = {
    meta_kept,
    (const char *const[]){ OBJ_LABEL_ANALYSIS, OBJ_LABEL_BATCH, OBJ_LABEL_ROLE, OBJ_LABEL_ATTEMPT,
                           NULL },
    (const char *const[]){ OBJ_ANN_MEMORY, NULL },
    (const char *const[]){ "conditions", NULL },
    "conditions",
    (const char *const[]){ "type", "status", "reason", "message", NULL },
};
static const struct prune_rule configmap_kept = {
    meta_kept,
    (const char *const[]){ OBJ_LABEL_ANALYSIS, OBJ_LABEL_BATCH, OBJ_LABEL_ROLE, OBJ_LABEL_STATE,
                           NULL },
    (const char *const[]){ OBJ_ANN_WELLS, OBJ_ANN_HASH, OBJ_ANN_INDEX, OBJ_ANN_SETS, NULL },
    none,
    NULL,
    NULL,
};
static const struct prune_rule pod_kept = {
    (const char *const[]){ "name", "namespace", "labels", "annotations", "ownerReferences",
                           "creationTimestamp", "deletionTimestamp", NULL },
    (const char *const[]){ OBJ_LABEL_ANALYSIS, OBJ_LABEL_BATCH, OBJ_LABEL_ROLE, OBJ_LABEL_UID,
                           "job-name", NULL },
    (const char *const[]){ OBJ_ANN_ANALYSIS, NULL },
    (const char *const[]){ "phase", "containerStatuses", NULL },
    "containerStatuses",
    (const char *const[]){ "state", "lastState", NULL },
};
static const struct prune_rule quota_kept = { meta_kept, none, none, NULL, NULL, NULL };

/* The transform of the owned informers: ud is the kind's prune_rule. */
static void prune(json_t *obj, void *ud)
{
    static const char *const top[] = { "metadata", "status", NULL };
    const struct prune_rule *r = ud;
    json_t *md, *st, *v;
    size_t i;

    keep_only(obj, top);
    md = json_object_get(obj, "metadata");
    keep_only(md, r->meta);
    keep_only(json_object_get(md, "labels"), r->labels);
    keep_only(json_object_get(md, "annotations"), r->annotations);
    json_array_foreach(json_object_get(md, "ownerReferences"), i, v)
        keep_only(v, owner_kept);
    st = json_object_get(obj, "status");
    keep_only(st, r->status);
    if (r->status_array)
        json_array_foreach(json_object_get(st, r->status_array), i, v)
            keep_only(v, r->items);
}

static struct informer *start_informer(struct ctl *c, struct kube_res res, const char *selector,
                                       const struct prune_rule *kept, int owned,
                                       struct kube_error *ke)
{
    static const char *const index[] = { OBJ_LABEL_ANALYSIS, NULL };
    struct informer_opts o = { 0 };
    struct informer *inf;

    o.res = res;
    if (c->cfg->namespaces && *c->cfg->namespaces && !strchr(c->cfg->namespaces, ','))
        o.res.ns = c->cfg->namespaces;
    o.label_selector = selector;
    o.resync_ms = owned ? 0 : 5 * 60 * 1000;
    o.index_labels = owned && selector ? index : NULL;
    o.page_size = 100;
    o.transform = kept ? prune : NULL;
    o.transform_ud = (void *)kept;
    o.ud = c;
    if (res.resource && strcmp(res.resource, "resourcequotas") == 0) {
        o.h.on_add = quota_changed;
        o.h.on_update = on_quota_update;
        o.h.on_delete = quota_changed;
    } else if (owned) {
        o.h.on_add = owned_changed;
        o.h.on_update = on_owned_update;
        o.h.on_delete = owned_changed;
    } else {
        o.h.on_add = on_analysis_add;
        o.h.on_update = on_analysis_update;
    }
    inf = informer_new(c->kc, &o, ke);
    if (inf && informer_start(inf, ke) < 0) {
        informer_free(inf);
        return NULL;
    }
    return inf;
}

/* ---- workers and leadership ------------------------------------------ */

static void *worker_main(void *arg)
{
    struct ctl *c = arg;
    const char *key;

    while ((key = wq_get(c->queue))) {
        struct log_ctx lc = { key, NULL, NULL };
        double requeue = 0, t0;
        struct err e;
        int rc;

        err_clear(&e);
        if (!atomic_load(&c->leading)) {
            wq_done(c->queue, key);
            continue;
        }
        atomic_fetch_add(&c->metrics.reconciles, 1);
        t0 = httpd_reconcile_begin();
        rc = ctl_reconcile(c, key, &requeue, &e);
        httpd_reconcile_end(t0);
        if (rc < 0) {
            atomic_fetch_add(&c->metrics.reconcile_errors, 1);
            if (e.code == EAGAIN) {
                log_debug(&lc, "retrying: %s", e.msg);
                wq_add_after(c->queue, key, 0.1, NULL);
            } else {
                log_warn(&lc, "reconcile failed, will retry: %s", e.msg);
                wq_add_rate_limited(c->queue, key, NULL);
            }
        } else {
            wq_forget(c->queue, key);
            if (rc == 1)
                wq_add_after(c->queue, key, requeue, NULL);
        }
        wq_done(c->queue, key);
    }
    return NULL;
}

static void enqueue_all(struct ctl *c)
{
    struct wake_ctx w = { c, NULL, NULL };

    informer_each(c->analyses, NULL, NULL, wake_one, &w);
}

static void started_leading(void *ud)
{
    struct ctl *c = ud;

    log_info(NULL, "became the leader: reconciling");
    atomic_store(&c->leading, 1);
    enqueue_all(c);
}

static void stopped_leading(void *ud)
{
    struct ctl *c = ud;

    atomic_store(&c->leading, 0);
    log_warn(NULL, "lost the leadership: stopped acting");
}

static void new_leader(const char *identity, void *ud)
{
    (void)ud;
    log_info(NULL, "the leader is %s", identity && *identity ? identity : "(none)");
}

int main(int argc, char **argv)
{
    struct ctl_config cfg;
    struct kube_config kcfg = { 0 };
    struct kube_error ke;
    struct ctl c;
    struct err e;
    struct leader *leader = NULL;
    struct httpd *httpd = NULL;
    struct idbsync *idbs = NULL;
    pthread_t *workers = NULL;
    sigset_t sigs;
    int rc, i, sig = 0, started = 0, status = 1;

    /*
     * The caches are tens of thousands of small strings written by the
     * informer threads; glibc's default of an arena per thread leaves each
     * arena's freed list pages resident. Two arenas keep the peak ~15% lower.
     */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    log_set_component("controller");
    memset(&c, 0, sizeof(c));
    err_clear(&e);
    kube_error_clear(&ke);
    rc = ctl_config_load(&cfg, argc, argv, &e);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        log_error(NULL, "configuration: %s", e.msg);
        ctl_config_release(&cfg);
        return 2;
    }
    log_set_level(cfg.log_level);
    if (json_array_size(cfg.volumes) == 0)
        log_warn(NULL, "no workVolume configured: batch outputs stay inside each pod");

    /* Signals are taken by the main thread only. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    c.cfg = &cfg;
    pthread_mutex_init(&c.db_lock, NULL);
    pthread_mutex_init(&c.planned_lock, NULL);
    c.planned = json_object();
    c.db_cfg.conninfo = cfg.imagedb;
    c.db_cfg.password_file = cfg.imagedb_password_file;
    c.db_cfg.application_name = "plateop-controller";

    if (kube_config_load(&kcfg, cfg.kubeconfig, NULL, &e) < 0) {
        log_error(NULL, "Kubernetes configuration: %s", e.msg);
        goto out;
    }
    c.kc = kube_client_new(&kcfg, NULL, &ke);
    if (!c.kc) {
        log_error(NULL, "Kubernetes client: %s", ke.err.msg);
        goto out;
    }
    kube_client_set_observer(c.kc, httpd_kube_observer, NULL);
    c.queue = wq_new(NULL, &e);
    c.window = window_new(cfg.window);
    if (!c.queue || !c.window) {
        log_error(NULL, "start: %s", e.msg[0] ? e.msg : "out of memory");
        goto out;
    }
    {
        struct kube_event_opts eo = { .component = "plateop-controller", .host = cfg.id };

        c.events = kube_event_recorder_new(c.kc, &eo, &e);
        if (!c.events)
            log_warn(NULL, "Events disabled: %s", e.msg);
    }

    c.analyses = start_informer(&c, (struct kube_res)KUBE_RES_ANALYSES, NULL, NULL,
                                0, &ke);
    if (c.analyses)
        c.jobs = start_informer(&c, (struct kube_res)KUBE_RES_JOBS, OBJ_LABEL_ANALYSIS,
                                &job_kept, 1, &ke);
    if (c.jobs)
        c.configmaps = start_informer(&c, (struct kube_res)KUBE_RES_CONFIGMAPS,
                                      OBJ_LABEL_ANALYSIS, &configmap_kept, 1, &ke);
    if (c.configmaps)
        c.pods = start_informer(&c, (struct kube_res)KUBE_RES_PODS, OBJ_LABEL_ANALYSIS,
                                &pod_kept, 1, &ke);
    if (c.pods)
        c.quotas = start_informer(&c, (struct kube_res){ .version = "v1",
                                                         .resource = "resourcequotas" },
                                  NULL, &quota_kept, 1, &ke);
    if (!c.quotas) {
        log_error(NULL, "watch: %s", ke.err.msg);
        goto out;
    }
    /* Started before the caches sync, so /readyz says what it waits for. */
    if (cfg.listen && *cfg.listen) {
        httpd = httpd_start(&c, cfg.listen, NULL, &e);
        if (!httpd) {
            log_error(NULL, "status server on %s: %s", cfg.listen, e.msg);
            goto out;
        }
    }
    if (informer_wait_synced(c.analyses, 60000) < 0 || informer_wait_synced(c.jobs, 60000) < 0 ||
        informer_wait_synced(c.configmaps, 60000) < 0 || informer_wait_synced(c.pods, 60000) < 0 ||
        informer_wait_synced(c.quotas, 60000) < 0) {
        log_error(NULL, "caches did not sync within 60 s (is the Analysis CRD installed? "
                        "kubectl apply -f crds/analysis.yaml)");
        goto out;
    }
    log_info(NULL, "caches synced: %zu analyses, %zu jobs, %zu configmaps, %zu pods",
             informer_count(c.analyses), informer_count(c.jobs),
             informer_count(c.configmaps), informer_count(c.pods));

    workers = calloc((size_t)cfg.workers, sizeof(*workers));
    if (!workers)
        goto out;
    for (started = 0; started < cfg.workers; started++) {
        if (pthread_create(&workers[started], NULL, worker_main, &c) != 0) {
            log_error(NULL, "cannot start reconcile workers");
            goto out;
        }
    }

    idbs = idbsync_start(&c, &e);
    if (!idbs) {
        log_error(NULL, "ImageDB: %s", e.msg);
        goto out;
    }
    httpd_set_idbsync(httpd, idbs);

    if (cfg.leader_elect) {
        struct leader_config lc = { .ns = cfg.lease_namespace, .name = LEASE_NAME,
                                    .identity = cfg.id,
                                    .cb = { started_leading, stopped_leading, new_leader, &c } };

        leader = leader_start(c.kc, &lc, &e);
        if (!leader) {
            log_error(NULL, "leader election: %s", e.msg);
            goto out;
        }
    } else {
        started_leading(&c);
    }
    log_info(NULL, "plateop-controller %s running as %s", PLATEOP_VERSION, cfg.id);
    sigwait(&sigs, &sig);
    log_info(NULL, "signal %d: shutting down", sig);
    status = 0;
out:
    atomic_store(&c.leading, 0);
    httpd_stop(httpd);
    if (leader)
        leader_stop(leader, 1);
    idbsync_stop(idbs);
    if (c.queue)
        wq_shutdown(c.queue);
    for (i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    free(workers);
    informer_free(c.quotas);
    informer_free(c.pods);
    informer_free(c.configmaps);
    informer_free(c.jobs);
    informer_free(c.analyses);
    kube_event_recorder_free(c.events);
    wq_free(c.queue);
    window_free(c.window);
    idb_close(c.db);
    kube_client_free(c.kc);
    kube_config_release(&kcfg);
    json_decref(c.planned);
    ctl_config_release(&cfg);
    return status;
}
