/*
 * kube_watch: list-then-watch of a collection, surviving 410s and closed
 * streams, plus the stream parser underneath.
 *
 * The parser turns the bytes of a watch response (one JSON object per line,
 * {"type": ..., "object": ...}) into events. Network chunks never align with
 * lines, so it buffers to the newline; a line that is not a watch event, an
 * unknown type, or a stream that ends mid-line is an error naming the cause.
 * An ERROR event (a metav1 Status inside a 200 stream) becomes an error
 * carrying the Status's code and reason, e.g. 410 Expired.
 *
 * The watcher lists the collection (paged), delivers every item as ADDED,
 * then watches from the list's resourceVersion with allowWatchBookmarks.
 * resourceVersions are opaque strings, never compared as numbers. When the
 * stream closes it reconnects from the last resourceVersion seen (event or
 * bookmark). On 410 (an HTTP answer or an ERROR event) it relists and
 * delivers the differences against what it had delivered: ADDED for new
 * objects, MODIFIED for changed ones, DELETED for vanished ones (carrying
 * only metadata.namespace, .name and .resourceVersion, as the final state
 * is unknown). Other failures are retried with capped
 * exponential backoff (0.5 s .. 30 s). It remembers only namespace/name and
 * resourceVersion per object.
 */
#ifndef PLATEOP_KUBE_WATCH_H
#define PLATEOP_KUBE_WATCH_H

#include <jansson.h>
#include <stddef.h>

#include "kube.h"
#include "strbuf.h"

enum kube_watch_type {
    KUBE_WATCH_ADDED,
    KUBE_WATCH_MODIFIED,
    KUBE_WATCH_DELETED,
    KUBE_WATCH_BOOKMARK,   /* object carries only metadata.resourceVersion */
};

/* "ADDED", "MODIFIED", "DELETED", "BOOKMARK". */
const char *kube_watch_type_name(enum kube_watch_type type);

/* ---- stream parser --------------------------------------------------- */

/*
 * Called for each event; obj is borrowed for the call and may be modified.
 * Return 0 to go on; non-zero stops the parser, and feed returns that value.
 */
typedef int (*kube_watch_fn)(enum kube_watch_type type, json_t *obj, void *ud);

/* Lines longer than this are refused (a garbage stream must not eat memory). */
#define KUBE_WATCH_MAX_LINE (64u << 20)

struct kube_watch_parser {
    struct strbuf line;     /* bytes of the line not yet complete */
    kube_watch_fn fn;
    void *ud;
    unsigned long events;   /* events delivered so far */
};

/*
 * Prepares p to parse a new stream, delivering each event to fn with ud.
 * Allocates nothing (the line buffer grows on the first partial line);
 * cannot fail. Release with kube_watch_parser_release().
 */
void kube_watch_parser_init(struct kube_watch_parser *p, kube_watch_fn fn, void *ud);

/*
 * Feeds len bytes. Calls fn for each complete line. Returns 0, fn's
 * non-zero value, or -1 with ke: KUBE_E_STREAM for malformed input ("watch
 * stream: event 3: not JSON: ..."), or the ERROR event's Status (err.code
 * and http = Status.code). After -1 the parser must not be fed again.
 * Cost: O(len) plus JSON decoding of each line.
 */
int kube_watch_parser_feed(struct kube_watch_parser *p, const char *data, size_t len,
                           struct kube_error *ke);

/*
 * Declares the end of the stream: -1 with KUBE_E_STREAM ("truncated") when
 * a partial line remains (whitespace alone is fine), else 0.
 */
int kube_watch_parser_finish(struct kube_watch_parser *p, struct kube_error *ke);

/* Frees the buffer. The parser may be re-initialised afterwards. */
void kube_watch_parser_release(struct kube_watch_parser *p);

/* ---- one watch request ----------------------------------------------- */

/*
 * Runs one watch request (res a collection; q carries resource_version,
 * selectors, timeout_seconds, allow_watch_bookmarks) and feeds its stream
 * to fn until the server ends it (returns 0), fn returns non-zero (returns
 * that value), `stop` becomes non-zero (-1, KUBE_E_STOPPED), or an error
 * (-1 with ke; kube_is_gone(ke) for a too-old resourceVersion whether the
 * server said so with HTTP 410 or with an ERROR event). Blocks.
 */
int kube_watch_once(struct kube_client *c, const struct kube_res *res,
                    const struct kube_query *q, kube_watch_fn fn, void *ud,
                    const atomic_int *stop, struct kube_error *ke);

/* ---- the resilient watcher ------------------------------------------- */

struct kube_watch_handlers {
    /*
     * ADDED / MODIFIED / DELETED, from the stream or from a relist
     * (BOOKMARKs are consumed internally). obj is borrowed and may be
     * modified or stolen with json_incref. Required.
     */
    void (*on_event)(void *ud, enum kube_watch_type type, json_t *obj);
    /* After a complete list has been delivered (first list and each relist). May be NULL. */
    void (*on_synced)(void *ud);
    /*
     * A failure being recovered from (before the backoff). Return non-zero to
     * give up: kube_watch_run then returns -1 with this error. NULL: the
     * failure is logged as a warning and retried forever.
     */
    int (*on_error)(void *ud, const struct kube_error *ke);
};

/*
 * What was delivered, kept by a consumer that keeps it anyway (an
 * informer's cache, with each object's resourceVersion), so the watcher
 * keeps no copy of its own. Keys are "namespace/name" or "name". The
 * consumer must record what on_event delivers before on_event returns;
 * both functions run on the watch's thread and get the opts' ud.
 */
struct kube_watch_store {
    /* The resourceVersion delivered for key into rv (reset first): 1, or 0 if none. */
    int (*known)(void *ud, const char *key, struct strbuf *rv);
    /* Appends every key delivered and not deleted, each NUL-terminated, to keys. 0, or -1 when out of memory. */
    int (*keys)(void *ud, struct strbuf *keys);
};

struct kube_watch_opts {
    struct kube_res res;           /* the collection; ns NULL: all namespaces */
    const char *label_selector;    /* copied */
    const char *field_selector;    /* copied */
    long page_size;                /* list page size; default 500 */
    int timeout_seconds;           /* per watch request; default 300..600, random */
    struct kube_watch_handlers h;
    const struct kube_watch_store *store;  /* NULL: the watcher remembers what it delivered */
    void *ud;
};

struct kube_watch;

/* New watcher; copies opts' strings. NULL with ke on bad opts or no memory. */
struct kube_watch *kube_watch_new(struct kube_client *c, const struct kube_watch_opts *opts,
                                  struct kube_error *ke);

/*
 * Lists, then watches, calling the handlers on this thread, until
 * kube_watch_stop() (returns 0) or on_error gives up (-1 with ke). Memory:
 * one list page, plus one key and resourceVersion per object unless a
 * store keeps them, plus during a relist (not the first list) a copy of
 * every key.
 */
int kube_watch_run(struct kube_watch *w, struct kube_error *ke);

/* Asks kube_watch_run to return within about a second. Any thread; idempotent. */
void kube_watch_stop(struct kube_watch *w);

/* Frees the watcher; kube_watch_run must have returned. Safe on NULL. */
void kube_watch_free(struct kube_watch *w);

#endif
