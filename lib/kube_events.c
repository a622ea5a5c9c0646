/*
 * kube_events: Event recorder with count aggregation; see kube_events.h.
 *
 * kube_event_record() builds the Event body and an aggregation key and
 * appends both to a FIFO. One thread per recorder drains the FIFO; it alone
 * owns the LRU cache of recently sent Events (a hash map by key plus a
 * recency list), so the cache needs no lock.
 */
#include "kube_events.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "monotime.h"
#include "strmap.h"
#include "strbuf.h"

/* Event names are DNS subdomains: at most 253 bytes, ".<16 hex digits>" included. */
#define EVENT_NAME_MAX 253
#define NAME_SUFFIX_MAX 17

struct pending {
    struct pending *next;
    char *key;          /* aggregation key */
    json_t *event;      /* the Event to create, without metadata.name */
};

/* An Event sent recently, for aggregating its repeats. */
struct seen {
    char *key;
    char *ns, *name;    /* the Event object to PATCH */
    json_int_t count;
    double at;          /* monotonic seconds of its last send */
    struct seen *newer, *older;
};

struct kube_event_recorder {
    struct kube_client *kc;
    char *component, *host;
    double window;
    int cache_size, queue_max;

    pthread_t thread;
    pthread_mutex_t mu;         /* guards everything down to stats */
    pthread_cond_t work;        /* queue non-empty, or stop */
    pthread_cond_t progress;    /* done advanced */
    struct pending *head, *tail;
    int queued;
    unsigned long enqueued, done;
    int stop, overflow_logged;
    struct kube_event_stats stats;

    /* Recorder-thread state. */
    struct strmap seen;         /* aggregation key -> struct seen */
    struct seen *newest, *oldest;
    int nseen;
};

static void count_stat(struct kube_event_recorder *r, unsigned long *counter)
{
    pthread_mutex_lock(&r->mu);
    (*counter)++;
    pthread_mutex_unlock(&r->mu);
}

/* ---- LRU of sent Events ---------------------------------------------- */

static struct seen *seen_find(struct kube_event_recorder *r, const char *key)
{
    return strmap_get(&r->seen, key);
}

static void seen_unlink(struct kube_event_recorder *r, struct seen *s)
{
    if (s->newer)
        s->newer->older = s->older;
    else
        r->newest = s->older;
    if (s->older)
        s->older->newer = s->newer;
    else
        r->oldest = s->newer;
    s->newer = s->older = NULL;
}

static void seen_push_newest(struct kube_event_recorder *r, struct seen *s)
{
    s->older = r->newest;
    s->newer = NULL;
    if (r->newest)
        r->newest->newer = s;
    r->newest = s;
    if (!r->oldest)
        r->oldest = s;
}

static void seen_free(void *p)
{
    struct seen *s = p;

    free(s->key);
    free(s->ns);
    free(s->name);
    free(s);
}

static void seen_evict_oldest(struct kube_event_recorder *r)
{
    struct seen *s = r->oldest;

    seen_unlink(r, s);
    strmap_remove(&r->seen, s->key, NULL);
    seen_free(s);
    r->nseen--;
}

/*
 * Remembers that the Event ns/name was created for key, replacing what was
 * remembered for the key. Out of memory only costs aggregation.
 */
static void seen_record(struct kube_event_recorder *r, const char *key, const char *ns,
                        const char *name)
{
    struct seen *s = seen_find(r, key);
    char *ns_copy = strdup(ns), *name_copy = strdup(name);

    if (!ns_copy || !name_copy)
        goto fail;
    if (s) {
        seen_unlink(r, s);
    } else {
        if (r->nseen >= r->cache_size)
            seen_evict_oldest(r);
        s = calloc(1, sizeof(*s));
        if (!s || !(s->key = strdup(key)) || strmap_put(&r->seen, key, s, NULL) < 0) {
            if (s)
                free(s->key);
            free(s);
            goto fail;
        }
        r->nseen++;
    }
    free(s->ns);
    free(s->name);
    s->ns = ns_copy;
    s->name = name_copy;
    s->count = 1;
    s->at = monotime_now();
    seen_push_newest(r, s);
    return;
fail:
    free(ns_copy);
    free(name_copy);
}

/* ---- sending ------------------------------------------------------------ */

/*
 * Folds a repeat into the Event s names. Returns 0 when patched, 1 when the
 * Event is gone (create a new one), -1 on any other failure.
 */
static int patch_repeat(struct kube_event_recorder *r, struct seen *s, const json_t *event)
{
    struct kube_res res = KUBE_RES_EVENTS;
    struct kube_error ke;
    json_t *patch, *got = NULL;
    int rc = -1;

    res.ns = s->ns;
    res.name = s->name;
    patch = json_pack("{s:I, s:O}", "count", s->count + 1,
                      "lastTimestamp", json_object_get(event, "lastTimestamp"));
    if (!patch)
        goto out;
    got = kube_patch(r->kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke);
    if (!got) {
        if (kube_is_not_found(&ke)) {
            rc = 1;
            goto out;
        }
        log_warn(NULL, "event %s/%s: update count: %s", s->ns, s->name, ke.err.msg);
        goto out;
    }
    s->count++;
    s->at = monotime_now();
    seen_unlink(r, s);
    seen_push_newest(r, s);
    rc = 0;
out:
    json_decref(got);
    json_decref(patch);
    return rc;
}

/* "<object name>.<hex wall-clock nanoseconds>", trimmed to a valid length. */
static int event_name(struct strbuf *sb, const json_t *event)
{
    const char *obj = json_string_value(json_object_get(json_object_get(event, "involvedObject"), "name"));
    size_t n = strlen(obj);
    struct timespec ts;

    if (n > EVENT_NAME_MAX - NAME_SUFFIX_MAX)
        n = EVENT_NAME_MAX - NAME_SUFFIX_MAX;
    /* A cut name must still end in an alphanumeric to stay a DNS subdomain. */
    while (n > 0 && (obj[n - 1] == '.' || obj[n - 1] == '-'))
        n--;
    clock_gettime(CLOCK_REALTIME, &ts);
    return strbuf_addf(sb, "%.*s.%llx", (int)n, obj,
                       (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec);
}

static void create_event(struct kube_event_recorder *r, struct pending *p)
{
    const char *ns = json_string_value(json_object_get(json_object_get(p->event, "metadata"), "namespace"));
    struct kube_res res = KUBE_RES_EVENTS;
    struct strbuf name = STRBUF_INIT;
    struct kube_error ke;
    json_t *got = NULL;

    res.ns = ns;
    if (event_name(&name, p->event) < 0 ||
        json_object_set_new(json_object_get(p->event, "metadata"), "name",
                            json_string(name.buf)) < 0) {
        log_warn(NULL, "event for %s: out of memory", p->key);
        count_stat(r, &r->stats.failed);
        goto out;
    }
    got = kube_create(r->kc, &res, p->event, NULL, &ke);
    /* AlreadyExists: a retried POST whose first attempt got through. */
    if (!got && !kube_is_already_exists(&ke)) {
        log_warn(NULL, "event %s/%s: create: %s", ns, name.buf, ke.err.msg);
        count_stat(r, &r->stats.failed);
        goto out;
    }
    seen_record(r, p->key, ns, name.buf);
    count_stat(r, &r->stats.created);
out:
    json_decref(got);
    strbuf_release(&name);
}

static void send_one(struct kube_event_recorder *r, struct pending *p)
{
    struct seen *s = seen_find(r, p->key);
    int rc;

    if (s && monotime_now() - s->at < r->window) {
        rc = patch_repeat(r, s, p->event);
        if (rc == 0) {
            count_stat(r, &r->stats.patched);
            return;
        }
        if (rc < 0) {
            count_stat(r, &r->stats.failed);
            return;
        }
    }
    create_event(r, p);
}

static void pending_free(struct pending *p)
{
    free(p->key);
    json_decref(p->event);
    free(p);
}

static void *run(void *arg)
{
    struct kube_event_recorder *r = arg;
    struct pending *p;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->head && !r->stop)
            pthread_cond_wait(&r->work, &r->mu);
        p = r->head;
        if (!p)
            break;  /* stopping, and everything was sent */
        r->head = p->next;
        if (!r->head)
            r->tail = NULL;
        r->queued--;
        pthread_mutex_unlock(&r->mu);
        send_one(r, p);
        pending_free(p);
        pthread_mutex_lock(&r->mu);
        r->done++;
        pthread_cond_broadcast(&r->progress);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- recording -------------------------------------------------------- */

/* Joins the fields that make Events "the same", separated by a byte no field contains. */
static int aggregation_key(struct strbuf *sb, const struct kube_event_ref *o, const char *type,
                           const char *reason, const char *msg)
{
    const char *parts[] = { o->api_version, o->kind, o->ns, o->name, o->uid, type, reason, msg };
    size_t i;

    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (strbuf_adds(sb, parts[i] ? parts[i] : "") < 0 || strbuf_addch(sb, '\x1f') < 0)
            return -1;
    }
    return 0;
}

static json_t *event_body(struct kube_event_recorder *r, const struct kube_event_ref *o,
                          const char *type, const char *reason, const char *msg)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:s, s:s, s:{s:s}, s:{s:s*, s:s, s:s*, s:s, s:s*}, s:s, s:s, s:s,"
                     " s:{s:s, s:s*}, s:s, s:s, s:i}",
                     "apiVersion", "v1", "kind", "Event",
                     "metadata", "namespace", o->ns && o->ns[0] ? o->ns : "default",
                     "involvedObject", "apiVersion", o->api_version, "kind", o->kind,
                     "namespace", o->ns, "name", o->name, "uid", o->uid,
                     "reason", reason, "message", msg, "type", type,
                     "source", "component", r->component, "host", r->host,
                     "firstTimestamp", ts, "lastTimestamp", ts, "count", 1);
}

/*
 * Appends p to the queue: 0, or -1 when the queue is full or stopping (the
 * drop is counted, and logged once per overflow; p stays the caller's).
 */
static int enqueue(struct kube_event_recorder *r, struct pending *p)
{
    int rc = -1, log_it = 0;

    pthread_mutex_lock(&r->mu);
    if (r->queued >= r->queue_max || r->stop) {
        r->stats.dropped++;
        log_it = !r->overflow_logged;
        r->overflow_logged = 1;
        goto out;
    }
    if (r->tail)
        r->tail->next = p;
    else
        r->head = p;
    r->tail = p;
    r->queued++;
    r->enqueued++;
    r->overflow_logged = 0;
    pthread_cond_signal(&r->work);
    rc = 0;
out:
    pthread_mutex_unlock(&r->mu);
    if (log_it)
        log_warn(NULL, "event queue full (%d waiting): dropping events", r->queue_max);
    return rc;
}

int kube_event_record(struct kube_event_recorder *r, const struct kube_event_ref *obj,
                      enum kube_event_type type, const char *reason, const char *fmt, ...)
{
    const char *type_name = type == KUBE_EVENT_WARNING ? "Warning" : "Normal";
    struct strbuf msg = STRBUF_INIT, key = STRBUF_INIT;
    struct pending *p = NULL;
    va_list ap;
    int rc = -1;

    if (!obj || !obj->kind || !obj->name || !reason)
        goto out;
    va_start(ap, fmt);
    rc = strbuf_vaddf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0 || aggregation_key(&key, obj, type_name, reason, msg.buf) < 0)
        goto nomem;
    p = calloc(1, sizeof(*p));
    if (!p)
        goto nomem;
    p->event = event_body(r, obj, type_name, reason, msg.buf);
    p->key = strbuf_detach(&key, NULL);
    if (!p->event || !p->key)
        goto nomem;
    rc = enqueue(r, p);
    if (rc == 0)
        p = NULL;
    goto out;
nomem:
    rc = -1;
    count_stat(r, &r->stats.dropped);
out:
    if (p)
        pending_free(p);
    strbuf_release(&msg);
    strbuf_release(&key);
    return rc;
}

void kube_event_flush(struct kube_event_recorder *r)
{
    unsigned long target;

    pthread_mutex_lock(&r->mu);
    target = r->enqueued;
    while (r->done < target)
        pthread_cond_wait(&r->progress, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void kube_event_stats(struct kube_event_recorder *r, struct kube_event_stats *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}

int kube_event_ref_from_object(struct kube_event_ref *ref, const json_t *obj)
{
    const json_t *meta = json_object_get(obj, "metadata");

    memset(ref, 0, sizeof(*ref));
    ref->api_version = json_string_value(json_object_get(obj, "apiVersion"));
    ref->kind = json_string_value(json_object_get(obj, "kind"));
    ref->ns = json_string_value(json_object_get(meta, "namespace"));
    ref->name = json_string_value(json_object_get(meta, "name"));
    ref->uid = json_string_value(json_object_get(meta, "uid"));
    return ref->api_version && ref->kind && ref->name ? 0 : -1;
}

/* ---- life cycle ------------------------------------------------------- */

static void recorder_free(struct kube_event_recorder *r)
{
    struct pending *p;

    while ((p = r->head)) {
        r->head = p->next;
        pending_free(p);
    }
    strmap_clear(&r->seen, seen_free);
    free(r->component);
    free(r->host);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->progress);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

struct kube_event_recorder *kube_event_recorder_new(struct kube_client *c,
                                                    const struct kube_event_opts *opts,
                                                    struct err *e)
{
    struct kube_event_recorder *r;
    int rc;

    if (!opts || !opts->component || !opts->component[0]) {
        err_set(e, EINVAL, "event recorder: a source component is required");
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        err_errno(e, ENOMEM, "event recorder");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->progress, NULL);
    r->kc = c;
    r->window = opts->window_s > 0 ? opts->window_s : 600;
    r->cache_size = opts->cache_size > 0 ? opts->cache_size : 256;
    r->queue_max = opts->queue_max > 0 ? opts->queue_max : 1000;
    r->component = strdup(opts->component);
    r->host = opts->host ? strdup(opts->host) : NULL;
    if (!r->component || (opts->host && !r->host)) {
        err_errno(e, ENOMEM, "event recorder");
        goto fail;
    }
    rc = pthread_create(&r->thread, NULL, run, r);
    if (rc) {
        err_errno(e, rc, "event recorder thread");
        goto fail;
    }
    return r;
fail:
    recorder_free(r);
    return NULL;
}

void kube_event_recorder_free(struct kube_event_recorder *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_signal(&r->work);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    recorder_free(r);
}
