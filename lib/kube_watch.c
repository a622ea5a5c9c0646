/*
 * kube_watch: watch stream parser, one watch request, and the list-then-
 * watch loop that survives 410s and closed streams; see kube_watch.h.
 */
#include "kube_watch.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "monotime.h"
#include "strmap.h"

static const char *const type_names[] = {
    [KUBE_WATCH_ADDED] = "ADDED",
    [KUBE_WATCH_MODIFIED] = "MODIFIED",
    [KUBE_WATCH_DELETED] = "DELETED",
    [KUBE_WATCH_BOOKMARK] = "BOOKMARK",
};

const char *kube_watch_type_name(enum kube_watch_type type)
{
    return (unsigned)type <= KUBE_WATCH_BOOKMARK ? type_names[type] : "UNKNOWN";
}

/* ---- stream parser --------------------------------------------------- */

void kube_watch_parser_init(struct kube_watch_parser *p, kube_watch_fn fn, void *ud)
{
    strbuf_init(&p->line);
    p->fn = fn;
    p->ud = ud;
    p->events = 0;
}

void kube_watch_parser_release(struct kube_watch_parser *p)
{
    strbuf_release(&p->line);
}

static int blank(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return 0;
    return 1;
}

static int stream_error(struct kube_error *ke, const struct kube_watch_parser *p,
                        const char *what, const char *detail)
{
    kube_error_clear(ke);
    return err_set(&ke->err, KUBE_E_STREAM, "watch stream: event %lu: %s%s%s", p->events + 1,
                   what, detail ? ": " : "", detail ? detail : "");
}

/* Decodes one complete line and delivers it. */
static int parse_line(struct kube_watch_parser *p, const char *line, size_t len,
                      struct kube_error *ke)
{
    json_error_t jerr;
    json_t *ev, *obj;
    const char *type;
    int rc = 0, t;

    if (blank(line, len))
        return 0;
    ev = json_loadb(line, len, 0, &jerr);
    if (!ev)
        return stream_error(ke, p, "not JSON", jerr.text);
    type = json_string_value(json_object_get(ev, "type"));
    obj = json_object_get(ev, "object");
    if (!type || !json_is_object(obj)) {
        rc = stream_error(ke, p, "not a watch event (needs \"type\" and \"object\")", NULL);
        goto out;
    }
    if (strcmp(type, "ERROR") == 0) {
        kube_error_from_status(ke, "watch stream: ERROR event", 200, obj);
        rc = -1;
        goto out;
    }
    for (t = KUBE_WATCH_ADDED; t <= KUBE_WATCH_BOOKMARK; t++)
        if (strcmp(type, type_names[t]) == 0)
            break;
    if (t > KUBE_WATCH_BOOKMARK) {
        rc = stream_error(ke, p, "unknown event type", type);
        goto out;
    }
    p->events++;
    rc = p->fn((enum kube_watch_type)t, obj, p->ud);
out:
    json_decref(ev);
    return rc;
}

int kube_watch_parser_feed(struct kube_watch_parser *p, const char *data, size_t len,
                           struct kube_error *ke)
{
    const char *nl;
    size_t n;
    int rc;

    while (len > 0) {
        nl = memchr(data, '\n', len);
        n = nl ? (size_t)(nl - data) : len;
        if (p->line.len + n > KUBE_WATCH_MAX_LINE)
            return stream_error(ke, p, "event larger than the limit", "64 MiB");
        if (!nl) {
            if (strbuf_add(&p->line, data, n) < 0)
                return stream_error(ke, p, "out of memory", NULL);
            return 0;
        }
        /* A line wholly inside this chunk is parsed in place, without a copy. */
        if (p->line.len == 0) {
            rc = parse_line(p, data, n, ke);
        } else {
            if (strbuf_add(&p->line, data, n) < 0)
                return stream_error(ke, p, "out of memory", NULL);
            rc = parse_line(p, p->line.buf, p->line.len, ke);
            strbuf_reset(&p->line);
        }
        if (rc)
            return rc;
        data += n + 1;
        len -= n + 1;
    }
    return 0;
}

int kube_watch_parser_finish(struct kube_watch_parser *p, struct kube_error *ke)
{
    if (!blank(p->line.buf, p->line.len))
        return err_set(&ke->err, KUBE_E_STREAM, "watch stream truncated: %zu bytes of an "
                       "incomplete event after %lu complete ones", p->line.len, p->events);
    strbuf_reset(&p->line);
    return 0;
}

/* ---- one watch request ----------------------------------------------- */

struct once_ctx {
    struct kube_watch_parser parser;
    struct kube_error ke;
    int rc;            /* why the parser stopped the stream */
};

static int once_chunk(const char *data, size_t len, void *ud)
{
    struct once_ctx *o = ud;

    o->rc = kube_watch_parser_feed(&o->parser, data, len, &o->ke);
    return o->rc;
}

/* Whether the parser itself failed (rather than fn asking to stop). */
static int parser_failed(const struct once_ctx *o)
{
    return o->rc < 0 && err_isset(&o->ke.err);
}

int kube_watch_once(struct kube_client *c, const struct kube_res *res,
                    const struct kube_query *q, kube_watch_fn fn, void *ud,
                    const atomic_int *stop, struct kube_error *ke)
{
    struct kube_request req = { .verb = KUBE_GET, .res = *res };
    struct once_ctx *o;
    int rc;

    /* struct kube_error is large; keep it off a watch thread's stack. */
    o = calloc(1, sizeof(*o));
    if (!o)
        return err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
    if (q)
        req.q = *q;
    kube_watch_parser_init(&o->parser, fn, ud);
    rc = kube_stream(c, &req, 1, once_chunk, o, stop, ke);
    if (rc == 0 && parser_failed(o)) {
        *ke = o->ke;
        rc = -1;
    } else if (rc == 0 && o->rc) {
        rc = o->rc;
    } else if (rc == 0 && kube_watch_parser_finish(&o->parser, ke) < 0) {
        rc = -1;
    }
    kube_watch_parser_release(&o->parser);
    free(o);
    return rc;
}

/* ---- the resilient watcher ------------------------------------------- */

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

struct kube_watch {
    struct kube_client *c;
    struct kube_res res;
    char *group, *version, *resource, *ns;
    char *label_selector, *field_selector;
    long page_size;
    int timeout_seconds;
    struct kube_watch_handlers h;
    const struct kube_watch_store *store;
    void *ud;

    atomic_int stop;
    pthread_mutex_t mu;             /* for the backoff sleep */
    pthread_cond_t cv;

    struct strmap known;            /* key -> resourceVersion delivered, without a store */
    struct strmap listing;          /* the keys a relist has seen (a set) */
    int relisting;                  /* something was known when the list began */
    struct strbuf rv_buf;           /* a resourceVersion from the store */
    char *rv;                       /* where the next watch starts */
    unsigned long watch_events;     /* events in the current watch request */
};

static char *dup_or_null(const char *s, int *fail)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *fail = 1;
    return d;
}

struct kube_watch *kube_watch_new(struct kube_client *c, const struct kube_watch_opts *opts,
                                  struct kube_error *ke)
{
    struct kube_watch *w;
    int fail = 0;

    kube_error_clear(ke);
    if (!opts->h.on_event || !opts->res.version || !opts->res.resource || opts->res.name) {
        err_set(&ke->err, KUBE_E_INVALID_ARG,
                "a watch needs on_event and a collection (version, resource, no name)");
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        return NULL;
    }
    w->c = c;
    w->group = dup_or_null(opts->res.group, &fail);
    w->version = dup_or_null(opts->res.version, &fail);
    w->resource = dup_or_null(opts->res.resource, &fail);
    w->ns = dup_or_null(opts->res.ns, &fail);
    w->label_selector = dup_or_null(opts->label_selector, &fail);
    w->field_selector = dup_or_null(opts->field_selector, &fail);
    w->res = (struct kube_res){ .group = w->group, .version = w->version,
                                .resource = w->resource, .ns = w->ns };
    w->page_size = opts->page_size > 0 ? opts->page_size : 500;
    w->timeout_seconds = opts->timeout_seconds;
    w->h = opts->h;
    w->store = opts->store;
    w->ud = opts->ud;
    strbuf_init(&w->rv_buf);
    atomic_init(&w->stop, 0);
    pthread_mutex_init(&w->mu, NULL);
    if (monotime_cond_init(&w->cv) != 0)
        fail = 1;
    if (fail) {
        kube_watch_free(w);
        err_set(&ke->err, KUBE_E_NOMEM, "out of memory");
        return NULL;
    }
    return w;
}

void kube_watch_free(struct kube_watch *w)
{
    if (!w)
        return;
    strmap_clear(&w->known, NULL);
    strmap_clear(&w->listing, NULL);
    strbuf_release(&w->rv_buf);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->group);
    free(w->version);
    free(w->resource);
    free(w->ns);
    free(w->label_selector);
    free(w->field_selector);
    free(w->rv);
    free(w);
}

void kube_watch_stop(struct kube_watch *w)
{
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, 1);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Sleeps ms unless stopped first. */
static void pause_ms(struct kube_watch *w, long ms)
{
    struct timespec until = monotime_timespec(monotime_now() + (double)ms / 1000);

    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop)
           && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&w->mu);
}

/* "namespace/name" or "name" of an object, into sb. Returns -1 without a name. */
static int object_key(struct strbuf *sb, const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));

    strbuf_reset(sb);
    if (!name)
        return -1;
    if (ns && *ns && (strbuf_adds(sb, ns) < 0 || strbuf_addch(sb, '/') < 0))
        return -1;
    return strbuf_adds(sb, name);
}

static const char *object_rv(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"),
                                             "resourceVersion"));
}

static int set_rv(struct kube_watch *w, const char *rv)
{
    char *d;

    if (!rv)
        return 0;
    d = strdup(rv);
    if (!d)
        return -1;
    free(w->rv);
    w->rv = d;
    return 0;
}

/* An event from the stream: update what is known, then deliver. 1 when out of memory. */
static int on_stream_event(enum kube_watch_type type, json_t *obj, void *ud)
{
    struct kube_watch *w = ud;
    struct strbuf key = STRBUF_INIT;
    const char *rv = object_rv(obj);
    int rc = 0;

    w->watch_events++;
    if (set_rv(w, rv) < 0)
        goto nomem;
    if (type == KUBE_WATCH_BOOKMARK)
        goto out;
    if (object_key(&key, obj) < 0) {
        log_warn(NULL, "kube_watch %s: %s event without a name ignored", w->resource,
                 kube_watch_type_name(type));
        goto out;
    }
    if (w->store) {
        /* The consumer records it. */
    } else if (type == KUBE_WATCH_DELETED) {
        strmap_remove(&w->known, key.buf, NULL);
    } else if (strmap_put_str(&w->known, key.buf, rv ? rv : "") < 0) {
        goto nomem;
    }
    w->h.on_event(w->ud, type, obj);
    goto out;
nomem:
    rc = 1;
out:
    strbuf_release(&key);
    return rc;
}

/* The resourceVersion delivered for key, or NULL; valid until the next lookup or change. */
static const char *known_rv(struct kube_watch *w, const char *key)
{
    if (!w->store)
        return strmap_get(&w->known, key);
    return w->store->known(w->ud, key, &w->rv_buf) > 0 ? w->rv_buf.buf : NULL;
}

/*
 * One item of a (re)list: compare with what was delivered, deliver the
 * difference. `known` is updated at once rather than when the list
 * completes: a relist that fails part-way (its continue token expired) has
 * already delivered these items, and only a `known` that still holds them
 * lets the next relist report them DELETED if they are gone by then.
 */
static int on_list_item(json_t *item, void *ud)
{
    struct kube_watch *w = ud;
    struct strbuf key = STRBUF_INIT;
    const char *rv = object_rv(item), *was;
    enum kube_watch_type type;
    int rc = 0, changed;

    if (!rv)
        rv = "";
    if (object_key(&key, item) < 0)
        goto out;
    was = known_rv(w, key.buf);
    type = was ? KUBE_WATCH_MODIFIED : KUBE_WATCH_ADDED;
    changed = !was || strcmp(was, rv) != 0;
    /* Nothing known before the list, nothing can vanish: no listing to compare with. */
    if ((w->relisting && strmap_put(&w->listing, key.buf, NULL, NULL) < 0)
        || (changed && !w->store && strmap_put_str(&w->known, key.buf, rv) < 0)) {
        rc = 1;   /* out of memory: ends the list */
        goto out;
    }
    if (changed)
        w->h.on_event(w->ud, type, item);
out:
    strbuf_release(&key);
    return rc;
}

static int collect_key(const char *key, void *value, void *ud)
{
    (void)value;
    return strbuf_add(ud, key, strlen(key) + 1) < 0;
}

/* Every key delivered and not deleted, NUL-terminated, into keys. -1 when out of memory. */
static int known_keys(struct kube_watch *w, struct strbuf *keys)
{
    if (w->store)
        return w->store->keys(w->ud, keys) < 0 ? -1 : 0;
    return strmap_each(&w->known, collect_key, keys) ? -1 : 0;
}

/* Delivers DELETED for each of keys the relist no longer has. -1 when out of memory. */
static int deliver_vanished(struct kube_watch *w, const struct strbuf *keys)
{
    const char *key, *slash, *rv;
    json_t *obj;

    for (key = keys->buf; key < keys->buf + keys->len; key += strlen(key) + 1) {
        if (strmap_has(&w->listing, key) || !(rv = known_rv(w, key)))
            continue;
        slash = strchr(key, '/');
        obj = slash ? json_pack("{s:{s:s%,s:s,s:s}}", "metadata", "namespace", key,
                                (size_t)(slash - key), "name", slash + 1, "resourceVersion", rv)
                    : json_pack("{s:{s:s,s:s}}", "metadata", "name", key, "resourceVersion", rv);
        if (!obj)
            return -1;
        w->h.on_event(w->ud, KUBE_WATCH_DELETED, obj);
        json_decref(obj);
        if (!w->store)
            strmap_remove(&w->known, key, NULL);
    }
    return 0;
}

/*
 * Lists everything and delivers the differences against what was known.
 * On failure what is known has grown by what was delivered (never
 * shrunk), so the next relist compares against everything the consumer
 * has seen.
 */
static int relist(struct kube_watch *w, struct kube_error *ke)
{
    struct kube_query q = { .label_selector = w->label_selector,
                            .field_selector = w->field_selector, .limit = w->page_size };
    struct strbuf before = STRBUF_INIT;
    char *rv = NULL;
    int rc;

    strmap_clear(&w->listing, NULL);
    if (known_keys(w, &before) < 0) {
        rc = err_set(&ke->err, KUBE_E_NOMEM, "relist %s: out of memory", w->resource);
        goto out;
    }
    w->relisting = before.len > 0;
    rc = kube_list_each(w->c, &w->res, &q, on_list_item, w, &rv, ke);
    if (rc > 0 || (rc == 0 && deliver_vanished(w, &before) < 0))
        rc = err_set(&ke->err, KUBE_E_NOMEM, "relist %s: out of memory", w->resource);
    if (rc == 0) {
        free(w->rv);
        w->rv = rv;
        rv = NULL;
    }
out:
    strmap_clear(&w->listing, NULL);
    strbuf_release(&before);
    free(rv);
    return rc;
}

/* Capped doubling, starting at BACKOFF_MIN_MS. */
static long next_backoff(long backoff)
{
    if (!backoff)
        return BACKOFF_MIN_MS;
    return backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
}

/* Reports a failure; returns non-zero when the consumer gives up. */
static int failure(struct kube_watch *w, const struct kube_error *ke)
{
    if (w->h.on_error)
        return w->h.on_error(w->ud, ke);
    log_warn(NULL, "kube_watch %s: %s; retrying", w->resource, ke->err.msg);
    return 0;
}

int kube_watch_run(struct kube_watch *w, struct kube_error *ke)
{
    unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)w;
    struct kube_query q;
    long backoff = 0;
    time_t started;
    int rc = 0, need_list = 1, timeout, r;

    kube_error_clear(ke);
    while (!atomic_load(&w->stop)) {
        if (backoff) {
            pause_ms(w, backoff);
            if (atomic_load(&w->stop))
                break;
        }
        if (need_list) {
            if (relist(w, ke) < 0) {
                if (atomic_load(&w->stop))
                    break;
                if (failure(w, ke)) {
                    rc = -1;
                    break;
                }
                backoff = next_backoff(backoff);
                continue;
            }
            need_list = 0;
            if (w->h.on_synced)
                w->h.on_synced(w->ud);
        }
        /* Spread reconnections as client-go does: 5..10 minutes each. */
        timeout = w->timeout_seconds > 0 ? w->timeout_seconds : 300 + (int)(rand_r(&seed) % 300);
        q = (struct kube_query){ .label_selector = w->label_selector,
                                 .field_selector = w->field_selector,
                                 .resource_version = w->rv, .timeout_seconds = timeout,
                                 .allow_watch_bookmarks = 1 };
        w->watch_events = 0;
        started = time(NULL);
        r = kube_watch_once(w->c, &w->res, &q, on_stream_event, w, &w->stop, ke);
        if (r == 0) {
            /* A stream the server closed at once, with nothing in it, is suspicious. */
            backoff = w->watch_events == 0 && time(NULL) - started < 1 ? BACKOFF_MIN_MS : 0;
            continue;
        }
        if (atomic_load(&w->stop))
            break;
        if (r > 0)
            err_set(&ke->err, KUBE_E_NOMEM, "watch %s: out of memory", w->resource);
        if (kube_is_gone(ke)) {
            log_info(NULL, "kube_watch %s: resourceVersion %s expired; relisting", w->resource,
                     w->rv ? w->rv : "");
            need_list = 1;
            backoff = 0;
            continue;
        }
        if (failure(w, ke)) {
            rc = -1;
            break;
        }
        backoff = next_backoff(backoff);
    }
    if (rc == 0)
        kube_error_clear(ke);
    return rc;
}
