/*
 * informer: a cache of one resource kept current by a kube_watch; see
 * informer.h.
 *
 * Objects are stored as compact JSON text, deflated against the first
 * object of the informer (zpack), in an objcache with their
 * resourceVersions and indexed label values: a tenth of a jansson tree's
 * size, and a private decoded copy per read keeps readers and the watch
 * thread from sharing mutable objects. The objcache is also what the
 * kube_watch compares a relist against (its kube_watch_store), so the
 * keys and resourceVersions are held once.
 */
#include "informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube_watch.h"
#include "log.h"
#include "monotime.h"
#include "objcache.h"
#include "strbuf.h"
#include "zpack.h"

struct informer {
    struct kube_client *c;
    struct kube_watch *w;
    struct informer_handlers h;
    informer_transform_fn transform;
    void *transform_ud;
    void *ud;
    long resync_ms;
    char *resource;                 /* for log lines */
    char *ns;                       /* the one namespace watched, or NULL */

    char **labels;                  /* indexed label keys, objcache label numbers 0.. */
    int nlabels;

    pthread_rwlock_t lock;          /* guards objs */
    struct objcache *objs;          /* key -> compact JSON text, zpack'ed */
    struct zpack *zp;               /* the watch thread's packer */
    struct zpack_reader wreader;    /* the watch thread's reader */
    struct strbuf scratch;          /* the watch thread's text and packed bytes */

    pthread_mutex_t handler_mu;     /* handlers run one at a time */

    pthread_mutex_t mu;             /* guards synced, stopping; cv signals both */
    pthread_cond_t cv;
    int synced, stopping;

    pthread_t watch_thread, resync_thread;
    int watch_started, resync_started;
};

static const char *label_of(const json_t *obj, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"), key));
}

/*
 * The cache's key for "namespace/name": just the name when the informer
 * watches one namespace, whose name would otherwise be stored with every
 * object.
 */
static const char *short_key(const struct informer *inf, const char *key)
{
    size_t n = inf->ns ? strlen(inf->ns) : 0;

    return n && strncmp(key, inf->ns, n) == 0 && key[n] == '/' ? key + n + 1 : key;
}

/* ---- events from the watch (the watch thread) ------------------------ */

/* A new object from its packed text (NULL: NULL); buf is scratch space. */
static json_t *decode(const struct informer *inf, struct zpack_reader *r, const void *packed,
                      struct strbuf *buf)
{
    if (!packed || zpack_unpack(inf->zp, r, packed, buf) < 0)
        return NULL;
    return json_loadb(buf->buf, buf->len, 0, NULL);
}

/* "namespace/name" or "name". */
static int key_of(struct strbuf *sb, const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));

    if (!name)
        return -1;
    if (ns && *ns)
        return strbuf_addf(sb, "%s/%s", ns, name);
    return strbuf_adds(sb, name);
}

static void call_locked(struct informer *inf, enum kube_watch_type type, const json_t *old,
                        const json_t *cur)
{
    pthread_mutex_lock(&inf->handler_mu);
    if (type == KUBE_WATCH_DELETED)
        inf->h.on_delete(inf->ud, old);
    else if (old)
        inf->h.on_update(inf->ud, old, cur);
    else
        inf->h.on_add(inf->ud, cur);
    pthread_mutex_unlock(&inf->handler_mu);
}

static void on_event(void *ud, enum kube_watch_type type, json_t *obj)
{
    struct informer *inf = ud;
    struct strbuf key = STRBUF_INIT, rv = STRBUF_INIT, old_text = STRBUF_INIT;
    const char *values[OBJCACHE_MAX_LABELS] = { NULL };
    json_t *old_obj = NULL;
    const void *old;
    char *text = NULL;
    int notify, i, rc = 0;

    if (key_of(&key, obj) < 0)
        goto out;
    if (type != KUBE_WATCH_DELETED) {
        const char *version = json_string_value(
            json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

        /* Kept apart from the object, which the transform may prune of it. */
        if (strbuf_adds(&rv, version ? version : "") < 0)
            goto nomem;
        /* Nobody needs managedFields; they are often the largest part. */
        json_object_del(json_object_get(obj, "metadata"), "managedFields");
        if (inf->transform)
            inf->transform(obj, inf->transform_ud);
        text = json_dumps(obj, JSON_COMPACT);
        strbuf_reset(&inf->scratch);
        if (!text || zpack_pack(inf->zp, text, strlen(text), &inf->scratch) < 0)
            goto nomem;
        for (i = 0; i < inf->nlabels; i++)
            values[i] = label_of(obj, inf->labels[i]);
    }
    pthread_rwlock_wrlock(&inf->lock);
    old = objcache_get(inf->objs, short_key(inf, key.buf), NULL, NULL);
    notify = type == KUBE_WATCH_DELETED ? inf->h.on_delete != NULL
                                        : (old ? inf->h.on_update != NULL : inf->h.on_add != NULL);
    /* Decoded before it is replaced: the text lives in the cache entry. */
    if (old && notify)
        old_obj = decode(inf, &inf->wreader, old, &old_text);
    if (text)
        rc = objcache_put(inf->objs, short_key(inf, key.buf), rv.buf, inf->scratch.buf,
                          inf->scratch.len, values);
    else
        objcache_remove(inf->objs, short_key(inf, key.buf));
    pthread_rwlock_unlock(&inf->lock);
    if (rc < 0)
        goto nomem;

    /* A delete of something never cached has nothing to report. */
    if (notify && (type != KUBE_WATCH_DELETED || old_obj))
        call_locked(inf, type, old_obj, obj);
    goto out;
nomem:
    log_error(NULL, "informer %s: out of memory caching %s", inf->resource, key.buf);
out:
    json_decref(old_obj);
    free(text);
    strbuf_release(&old_text);
    strbuf_release(&rv);
    strbuf_release(&key);
}

/* ---- the watch's record of what it delivered (the watch thread) ------ */

static int store_known(void *ud, const char *key, struct strbuf *rv)
{
    struct informer *inf = ud;
    const char *v = NULL;
    int rc;

    strbuf_reset(rv);
    pthread_rwlock_rdlock(&inf->lock);
    rc = objcache_get(inf->objs, short_key(inf, key), &v, NULL) != NULL;
    if (rc && strbuf_adds(rv, v) < 0)
        rc = 0;
    pthread_rwlock_unlock(&inf->lock);
    return rc;
}

struct key_list {
    const char *ns;     /* prefixed to each key with a '/', or NULL */
    struct strbuf *keys;
};

static int collect_key(const char *key, const char *rv, const void *value, size_t len, void *ud)
{
    struct key_list *l = ud;

    (void)rv;
    (void)value;
    (void)len;
    if (l->ns && strbuf_addf(l->keys, "%s/", l->ns) < 0)
        return 1;
    return strbuf_add(l->keys, key, strlen(key) + 1) < 0;
}

/* Every key as "namespace/name" (or "name" when cluster-scoped), NUL-terminated. */
static int store_keys(void *ud, struct strbuf *keys)
{
    struct informer *inf = ud;
    struct key_list l = { inf->ns, keys };
    int rc;

    pthread_rwlock_rdlock(&inf->lock);
    rc = objcache_each(inf->objs, collect_key, &l);
    pthread_rwlock_unlock(&inf->lock);
    return rc ? -1 : 0;
}

static const struct kube_watch_store watch_store = { store_known, store_keys };

static void on_synced(void *ud)
{
    struct informer *inf = ud;
    int first;

    pthread_mutex_lock(&inf->mu);
    first = !inf->synced;
    pthread_mutex_unlock(&inf->mu);
    if (!first)
        return;
    /* Before has_synced turns true, so a waiter sees the handler's work done. */
    if (inf->h.on_synced) {
        pthread_mutex_lock(&inf->handler_mu);
        inf->h.on_synced(inf->ud);
        pthread_mutex_unlock(&inf->handler_mu);
    }
    pthread_mutex_lock(&inf->mu);
    inf->synced = 1;
    pthread_cond_broadcast(&inf->cv);
    pthread_mutex_unlock(&inf->mu);
}

static void *watch_main(void *arg)
{
    struct informer *inf = arg;
    struct kube_error *ke = calloc(1, sizeof(*ke));

    /* Without on_error the watch retries every failure until stopped. */
    if (ke && kube_watch_run(inf->w, ke) < 0)
        log_error(NULL, "informer %s: watch ended: %s", inf->resource, ke->err.msg);
    free(ke);
    return NULL;
}

/* ---- resync (its own thread) ----------------------------------------- */

/* Calls on_update(obj, obj) for every cached object. */
static void resync(struct informer *inf)
{
    struct strbuf keys = STRBUF_INIT, buf = STRBUF_INIT;
    struct zpack_reader r = ZPACK_READER_INIT;
    const char *k;
    json_t *obj;
    int rc;

    /* Keys first, then one object at a time: never a decoded copy of the whole cache. */
    rc = store_keys(inf, &keys);
    if (rc) {
        log_error(NULL, "informer %s: out of memory for a resync", inf->resource);
        goto out;
    }
    for (k = keys.buf; k < keys.buf + keys.len; k += strlen(k) + 1) {
        pthread_rwlock_rdlock(&inf->lock);
        obj = decode(inf, &r, objcache_get(inf->objs, short_key(inf, k), NULL, NULL), &buf);
        pthread_rwlock_unlock(&inf->lock);
        if (obj)
            call_locked(inf, KUBE_WATCH_MODIFIED, obj, obj);
        json_decref(obj);
    }
out:
    zpack_reader_release(&r);
    strbuf_release(&buf);
    strbuf_release(&keys);
}

static void *resync_main(void *arg)
{
    struct informer *inf = arg;
    struct timespec until;
    int stopping = 0;

    while (!stopping) {
        until = monotime_timespec(monotime_now() + (double)inf->resync_ms / 1000);
        pthread_mutex_lock(&inf->mu);
        while (!inf->stopping && pthread_cond_timedwait(&inf->cv, &inf->mu, &until) == 0)
            ;
        stopping = inf->stopping;
        pthread_mutex_unlock(&inf->mu);
        if (!stopping && informer_has_synced(inf))
            resync(inf);
    }
    return NULL;
}

/* ---- public ---------------------------------------------------------- */

struct informer *informer_new(struct kube_client *c, const struct informer_opts *opts,
                              struct kube_error *ke)
{
    struct kube_watch_opts wo = {
        .res = opts->res,
        .label_selector = opts->label_selector,
        .field_selector = opts->field_selector,
        .page_size = opts->page_size,
        .timeout_seconds = opts->watch_timeout_s,
        .h = { .on_event = on_event, .on_synced = on_synced },
        .store = &watch_store,
    };
    struct informer *inf;
    int i, n = 0;

    kube_error_clear(ke);
    inf = calloc(1, sizeof(*inf));
    if (!inf)
        goto nomem_early;
    inf->c = c;
    inf->h = opts->h;
    inf->transform = opts->transform;
    inf->transform_ud = opts->transform_ud ? opts->transform_ud : opts->ud;
    inf->ud = opts->ud;
    inf->resync_ms = opts->resync_ms > 0 ? opts->resync_ms : 0;
    strbuf_init(&inf->scratch);
    pthread_rwlock_init(&inf->lock, NULL);
    pthread_mutex_init(&inf->handler_mu, NULL);
    pthread_mutex_init(&inf->mu, NULL);
    if (monotime_cond_init(&inf->cv) != 0) {
        free(inf);
        goto nomem_early;
    }
    while (opts->index_labels && opts->index_labels[n])
        n++;
    inf->resource = strdup(opts->res.resource ? opts->res.resource : "?");
    inf->ns = opts->res.ns && *opts->res.ns ? strdup(opts->res.ns) : NULL;
    if (n > OBJCACHE_MAX_LABELS) {
        err_set(&ke->err, KUBE_E_INVALID_ARG, "informer: at most %d indexed labels",
                OBJCACHE_MAX_LABELS);
        goto fail;
    }
    inf->labels = calloc((size_t)n + 1, sizeof(*inf->labels));
    inf->objs = objcache_new(n);
    inf->zp = zpack_new();
    if (!inf->resource || !inf->labels || !inf->objs || !inf->zp ||
        (opts->res.ns && *opts->res.ns && !inf->ns))
        goto nomem;
    for (i = 0; i < n; i++, inf->nlabels++)
        if (!(inf->labels[i] = strdup(opts->index_labels[i])))
            goto nomem;
    wo.ud = inf;
    inf->w = kube_watch_new(c, &wo, ke);
    if (!inf->w)
        goto fail;
    return inf;
nomem:
    err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
fail:
    informer_free(inf);
    return NULL;
nomem_early:
    err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
    return NULL;
}

int informer_start(struct informer *inf, struct kube_error *ke)
{
    int rc;

    if (inf->watch_started)
        return 0;
    rc = pthread_create(&inf->watch_thread, NULL, watch_main, inf);
    if (rc)
        return err_errno(&ke->err, rc, "informer %s: start the watch thread", inf->resource);
    inf->watch_started = 1;
    if (inf->resync_ms) {
        rc = pthread_create(&inf->resync_thread, NULL, resync_main, inf);
        if (rc)
            return err_errno(&ke->err, rc, "informer %s: start the resync thread",
                             inf->resource);
        inf->resync_started = 1;
    }
    return 0;
}

int informer_has_synced(struct informer *inf)
{
    int s;

    pthread_mutex_lock(&inf->mu);
    s = inf->synced;
    pthread_mutex_unlock(&inf->mu);
    return s;
}

int informer_wait_synced(struct informer *inf, long timeout_ms)
{
    struct timespec until = monotime_timespec(monotime_now() + (double)timeout_ms / 1000);
    int rc = 0;

    pthread_mutex_lock(&inf->mu);
    while (!inf->synced && !inf->stopping && rc == 0)
        rc = timeout_ms < 0 ? pthread_cond_wait(&inf->cv, &inf->mu)
                            : pthread_cond_timedwait(&inf->cv, &inf->mu, &until);
    rc = inf->synced ? 0 : -1;
    pthread_mutex_unlock(&inf->mu);
    return rc;
}

json_t *informer_get(struct informer *inf, const char *ns, const char *name)
{
    struct strbuf key = STRBUF_INIT, buf = STRBUF_INIT;
    struct zpack_reader r = ZPACK_READER_INIT;
    json_t *obj = NULL;

    if ((ns && *ns ? strbuf_addf(&key, "%s/%s", ns, name) : strbuf_adds(&key, name)) == 0) {
        pthread_rwlock_rdlock(&inf->lock);
        obj = decode(inf, &r, objcache_get(inf->objs, short_key(inf, key.buf), NULL, NULL),
                     &buf);
        pthread_rwlock_unlock(&inf->lock);
    }
    zpack_reader_release(&r);
    strbuf_release(&buf);
    strbuf_release(&key);
    return obj;
}

struct each_ctx {
    const struct informer *inf;
    int (*fn)(const json_t *obj, void *ud);
    void *ud;
    struct zpack_reader r;
    struct strbuf buf;
};

static int visit_decoded(const char *key, const char *rv, const void *packed, size_t len,
                         void *ud)
{
    struct each_ctx *l = ud;
    json_t *obj = decode(l->inf, &l->r, packed, &l->buf);
    int rc;

    (void)key;
    (void)rv;
    (void)len;
    if (!obj)
        return -1;
    rc = l->fn(obj, l->ud);
    json_decref(obj);
    return rc;
}

int informer_each(struct informer *inf, const char *label_key, const char *label_value,
                  int (*fn)(const json_t *obj, void *ud), void *ud)
{
    struct each_ctx l = { inf, fn, ud, ZPACK_READER_INIT, STRBUF_INIT };
    int i, rc = 0;

    pthread_rwlock_rdlock(&inf->lock);
    if (!label_key) {
        rc = objcache_each(inf->objs, visit_decoded, &l);
    } else {
        for (i = 0; i < inf->nlabels; i++)
            if (strcmp(inf->labels[i], label_key) == 0)
                rc = objcache_each_label(inf->objs, i, label_value, visit_decoded, &l);
    }
    pthread_rwlock_unlock(&inf->lock);
    zpack_reader_release(&l.r);
    strbuf_release(&l.buf);
    return rc;
}

static int append_object(const json_t *obj, void *ud)
{
    return json_array_append(ud, (json_t *)obj) < 0;
}

json_t *informer_list(struct informer *inf, const char *label_key, const char *label_value)
{
    json_t *out = json_array();

    if (out && informer_each(inf, label_key, label_value, append_object, out) != 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

size_t informer_count(struct informer *inf)
{
    size_t n;

    pthread_rwlock_rdlock(&inf->lock);
    n = objcache_count(inf->objs);
    pthread_rwlock_unlock(&inf->lock);
    return n;
}

void informer_stop(struct informer *inf)
{
    pthread_mutex_lock(&inf->mu);
    inf->stopping = 1;
    pthread_cond_broadcast(&inf->cv);
    pthread_mutex_unlock(&inf->mu);
    if (inf->w)
        kube_watch_stop(inf->w);
    if (inf->watch_started)
        pthread_join(inf->watch_thread, NULL);
    if (inf->resync_started)
        pthread_join(inf->resync_thread, NULL);
    inf->watch_started = inf->resync_started = 0;
}

void informer_free(struct informer *inf)
{
    int i;

    if (!inf)
        return;
    informer_stop(inf);
    kube_watch_free(inf->w);
    objcache_free(inf->objs);
    for (i = 0; i < inf->nlabels; i++)
        free(inf->labels[i]);
    free(inf->labels);
    free(inf->resource);
    free(inf->ns);
    zpack_free(inf->zp);
    zpack_reader_release(&inf->wreader);
    strbuf_release(&inf->scratch);
    pthread_rwlock_destroy(&inf->lock);
    pthread_mutex_destroy(&inf->handler_mu);
    pthread_mutex_destroy(&inf->mu);
    pthread_cond_destroy(&inf->cv);
    free(inf);
}
