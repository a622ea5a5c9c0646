/*
 * informer: a local cache of one kind of resource, kept current by a
 * kube_watch on its own thread, with event handlers, a label index and a
 * periodic resync -- client-go's shared informer, for one consumer.
 *
 * Objects are keyed "namespace/name" (just "name" when cluster-scoped). The
 * cache is memory-lean: each object is stored as compact JSON text after
 * metadata.managedFields is dropped and an optional transform has pruned
 * what the consumer does not need (e.g. a ConfigMap's data), deflated
 * against the first object cached (zpack), in one allocation with its
 * resourceVersion and label index links (objcache): about 0.2 kB per small
 * object, index and the watch's bookkeeping included. Reads decode a
 * private copy; informer_each() decodes one object at a time.
 *
 * Threads: the watch runs on the informer's own thread, resyncs on a second
 * one. Handlers run one at a time (never concurrently), after the cache has
 * been updated and with no cache lock held, so they may call informer_get(),
 * informer_list() and informer_each(); a slow handler delays the watch. Every other
 * function is thread-safe.
 */
#ifndef PLATEOP_INFORMER_H
#define PLATEOP_INFORMER_H

#include <jansson.h>
#include <stddef.h>

#include "kube.h"

struct informer_handlers {
    /* Every member may be NULL. Objects are borrowed for the call. */
    void (*on_add)(void *ud, const json_t *obj);
    /* On a resync old and cur are equal copies of the cached object. */
    void (*on_update)(void *ud, const json_t *old, const json_t *cur);
    /* obj is the last cached state. */
    void (*on_delete)(void *ud, const json_t *obj);
    /*
     * Once, after the first complete list is in the cache and its on_add
     * calls are done, just before informer_has_synced() turns true (so it
     * must not wait for that).
     */
    void (*on_synced)(void *ud);
};

/*
 * Prunes an object in place before it is cached and handed to handlers
 * (e.g. json_object_del(obj, "data")). Runs on the informer's thread.
 */
typedef void (*informer_transform_fn)(json_t *obj, void *ud);

struct informer_opts {
    struct kube_res res;              /* the collection; ns NULL: all namespaces */
    const char *label_selector;       /* copied */
    const char *field_selector;       /* copied */
    long resync_ms;                   /* 0: no resync; else on_update for all, this often */
    const char *const *index_labels;  /* NULL-terminated label keys to index, or NULL */
    informer_transform_fn transform;  /* may be NULL */
    void *transform_ud;               /* passed to transform; NULL: ud is */
    struct informer_handlers h;
    void *ud;                         /* passed to handlers and transform */
    long page_size;                   /* list page size; default 500 */
    int watch_timeout_s;              /* per watch request; 0: 300..600 s at random */
};

struct informer;

/* New, not yet started. Copies opts' strings. NULL with ke on failure. */
struct informer *informer_new(struct kube_client *c, const struct informer_opts *opts,
                              struct kube_error *ke);

/* Starts the watch thread. Returns 0, or -1 with ke if the thread cannot start. */
int informer_start(struct informer *inf, struct kube_error *ke);

/* Non-zero once the first complete list is in the cache. */
int informer_has_synced(struct informer *inf);

/* Waits up to timeout_ms (<0: forever) for has_synced. Returns 0 or -1 on timeout. */
int informer_wait_synced(struct informer *inf, long timeout_ms);

/*
 * The cached object ns/name (ns NULL for cluster-scoped) as a new
 * reference the caller owns, or NULL when absent. Cost: one decode.
 */
json_t *informer_get(struct informer *inf, const char *ns, const char *name);

/*
 * A new JSON array of cached objects: all of them when label_key is NULL;
 * else those whose label label_key equals label_value (label_key must be
 * one of opts.index_labels, or the array is empty). NULL only on allocation
 * failure. Cost: one decode per object returned.
 */
json_t *informer_list(struct informer *inf, const char *label_key, const char *label_value);

/*
 * Calls fn for each cached object (all, or those whose label label_key
 * equals label_value, as informer_list), decoding one at a time: obj is
 * borrowed for the call only, so a pass over thousands of objects holds
 * one decoded object at a time. fn runs under the cache's read lock and
 * must not call into this informer. Stops when fn returns non-zero and
 * returns that value; -1 when memory runs out; else 0. Cost: one decode
 * per object visited.
 */
int informer_each(struct informer *inf, const char *label_key, const char *label_value,
                  int (*fn)(const json_t *obj, void *ud), void *ud);

/* Number of cached objects. */
size_t informer_count(struct informer *inf);

/* Stops the watch thread and waits for it (about a second). Idempotent. */
void informer_stop(struct informer *inf);

/* Stops if needed and frees everything. Safe on NULL. */
void informer_free(struct informer *inf);

#endif
