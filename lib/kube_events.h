/*
 * kube_events: records core/v1 Events about objects, so that
 * `kubectl describe analysis X` tells users what plateop did and why.
 *
 * A recorder sends Events from a background thread: kube_event_record()
 * only formats and queues, so reconcile loops never wait on the API server
 * for an Event. Repeats are aggregated as client-go's event correlator
 * does: an Event with the same involved object, type, reason and message as
 * one sent within the aggregation window is not created again; the earlier
 * Event's count and lastTimestamp are PATCHed instead. The recorder
 * remembers the most recent distinct Events in a bounded LRU cache; a repeat
 * of one evicted from it, or older than the window, or whose Event the API
 * server no longer has (Events expire after an hour), creates a new Event.
 *
 * Event names follow client-go: "<object name>.<hex nanoseconds>". An Event
 * lives in its object's namespace, or in "default" for cluster-scoped
 * objects.
 *
 * Delivery is best effort, as everywhere in Kubernetes: a failed request
 * (after the client's own retries) is logged and counted, not retried
 * further, and when the queue is full new Events are dropped (counted, and
 * logged once per overflow).
 *
 * Thread-safety: kube_event_record(), kube_event_flush() and
 * kube_event_stats() may be called from any thread at once;
 * kube_event_recorder_free() once, after every other call has returned.
 */
#ifndef PLATEOP_KUBE_EVENTS_H
#define PLATEOP_KUBE_EVENTS_H

#include <jansson.h>

#include "err.h"
#include "kube.h"

enum kube_event_type {
    KUBE_EVENT_NORMAL,
    KUBE_EVENT_WARNING,
};

/* The Event's involvedObject. Strings are borrowed for the call; ns may be
 * NULL for a cluster-scoped object, uid may be NULL when unknown. */
struct kube_event_ref {
    const char *api_version;    /* "plateop.io/v1alpha1" */
    const char *kind;           /* "Analysis" */
    const char *ns;
    const char *name;
    const char *uid;
};

struct kube_event_opts {
    const char *component;      /* source.component, e.g. "plateop-controller" (required) */
    const char *host;           /* source.host, e.g. the pod or node name; may be NULL */
    double window_s;            /* repeats within this many seconds aggregate; 0 means 600 */
    int cache_size;             /* distinct recent Events remembered; 0 means 256 */
    int queue_max;              /* Events waiting to be sent; 0 means 1000 */
};

/* What a recorder did so far (for metrics and tests). */
struct kube_event_stats {
    unsigned long created;      /* Events POSTed */
    unsigned long patched;      /* repeats folded into an existing Event */
    unsigned long failed;       /* requests that failed */
    unsigned long dropped;      /* records refused because the queue was full */
};

struct kube_event_recorder;

/*
 * Starts a recorder sending through c (which must outlive it); opts is
 * copied. Returns NULL with e set when component is missing or memory or
 * the thread cannot be had. No I/O in this call.
 */
struct kube_event_recorder *kube_event_recorder_new(struct kube_client *c,
                                                    const struct kube_event_opts *opts,
                                                    struct err *e);

/*
 * Sends what is still queued, then stops the thread and frees the recorder.
 * Blocks for as long as that takes. Safe on NULL.
 */
void kube_event_recorder_free(struct kube_event_recorder *r);

/*
 * Queues an Event about obj: reason is a short UpperCamelCase word
 * ("BatchFailed"), the message is printf-formatted. Copies everything and
 * returns at once: 0 when queued, -1 when dropped (queue full, out of
 * memory, or obj lacks kind or name). Cost: one formatting and a few small
 * allocations; the request is made later on the recorder's thread.
 */
int kube_event_record(struct kube_event_recorder *r, const struct kube_event_ref *obj,
                      enum kube_event_type type, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Blocks until every Event queued before the call has been sent (or has
 * failed). For tests and orderly shutdown.
 */
void kube_event_flush(struct kube_event_recorder *r);

/* Copies the counters into *out. */
void kube_event_stats(struct kube_event_recorder *r, struct kube_event_stats *out);

/*
 * Fills ref from an object's apiVersion, kind and metadata (namespace, name,
 * uid). The strings point into obj and live as long as it does. Returns 0,
 * or -1 when obj lacks apiVersion, kind or metadata.name.
 */
int kube_event_ref_from_object(struct kube_event_ref *ref, const json_t *obj);

#endif
