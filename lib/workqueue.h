/*
 * workqueue: a thread-safe, rate-limited queue of string keys for
 * controllers, with the semantics of client-go's workqueue.
 *
 * A key names a thing to reconcile ("namespace/name"). The queue promises:
 *   - a key added several times before a worker takes it is handed out once;
 *   - a key is never held by two workers at once: a key added while a worker
 *     holds it (between wq_get() and wq_done()) is handed out again only
 *     after wq_done();
 *   - wq_add_after() delays a key; delayed keys wait in a heap ordered by due
 *     time on the monotonic clock and join the queue when due (if the key is
 *     already waiting, the earlier due time wins);
 *   - wq_add_rate_limited() delays a key by the larger of its own exponential
 *     backoff (base delay doubling on every call, up to a cap) and the wait
 *     for a token from a bucket shared by all keys; wq_forget() resets the
 *     key's backoff (call it once the key was reconciled successfully);
 *   - wq_shutdown() wakes every waiter; from then on wq_get() returns NULL
 *     and adds are ignored.
 *
 * Typical worker loop:
 *     const char *key;
 *     while ((key = wq_get(q))) {
 *         if (reconcile(key) == 0) wq_forget(q, key);
 *         else wq_add_rate_limited(q, key, NULL);
 *         wq_done(q, key);
 *     }
 *
 * Thread-safety: every function may be called from any thread at any time,
 * except wq_free(), which must run after every other call has returned.
 * Delayed keys are moved into the queue by the threads that call wq_get()
 * or wq_len(); there is no timer thread.
 *
 * Costs: n is the number of distinct keys the queue knows about (queued,
 * held, delayed, or with a backoff to remember); keys are found through a
 * hash map, delayed keys kept in a binary heap. Every call takes one
 * mutex. A key costs two small allocations while the queue knows it.
 */
#ifndef PLATEOP_WORKQUEUE_H
#define PLATEOP_WORKQUEUE_H

#include <stddef.h>

#include "err.h"

struct wq;

struct wq_config {
    double base_delay_s;  /* first per-key backoff; 0 means 0.005 (5 ms) */
    double max_delay_s;   /* per-key backoff cap; 0 means 1000 s */
    double qps;           /* token bucket refill per second; 0 means 10, < 0 no bucket */
    int burst;            /* token bucket size; 0 means 100 */
};

/*
 * Creates an empty queue. cfg may be NULL for all defaults. Returns NULL
 * with e set when memory or a pthread object cannot be had. Free with
 * wq_free().
 */
struct wq *wq_new(const struct wq_config *cfg, struct err *e);

/* Frees the queue and every key in it. Safe on NULL. No other call may be in flight. */
void wq_free(struct wq *q);

/*
 * Queues key (copied) unless it is queued already or the queue is shut
 * down; if a worker holds the key, it is queued again on wq_done().
 * Wakes one waiting worker. O(1) on average. Returns 0, or -1 with e set when out
 * of memory (the key is then not queued).
 */
int wq_add(struct wq *q, const char *key, struct err *e);

/*
 * Queues key after delay_s seconds (at once when delay_s <= 0). A key that
 * is already waiting keeps the earlier of its two due times. O(log n).
 * Returns 0, or -1 with e set when out of memory.
 */
int wq_add_after(struct wq *q, const char *key, double delay_s, struct err *e);

/*
 * Queues key after the rate limiter's delay: the larger of the key's
 * backoff (base * 2^k after k earlier rate-limited adds since the last
 * wq_forget(), capped at the maximum) and the time until the shared token
 * bucket has a token for it (tokens are reserved, so a burst spreads out at
 * qps). O(log n). Returns 0, or -1 with e set when out of memory.
 */
int wq_add_rate_limited(struct wq *q, const char *key, struct err *e);

/* Resets key's backoff so its next rate-limited add waits the base delay. O(1) average. */
void wq_forget(struct wq *q, const char *key);

/* How many rate-limited adds key had since its last wq_forget(). O(1) average. */
unsigned wq_num_requeues(struct wq *q, const char *key);

/*
 * Blocks until a key is ready, hands it to the caller and marks it held.
 * Returns NULL once the queue is shut down (keys still queued are then
 * dropped, so workers stop promptly). The returned string is owned by the
 * queue and stays valid until the caller's wq_done() on it; do not free it.
 * O(1) on average, plus O(log n) per delayed key that fell due.
 */
const char *wq_get(struct wq *q);

/*
 * Releases a key taken with wq_get(); queues it again if it was added while
 * held. Any string equal to the key will do. O(1) on average.
 */
void wq_done(struct wq *q, const char *key);

/* Stops the queue and wakes every waiter in wq_get(). Idempotent. O(1). */
void wq_shutdown(struct wq *q);

/* Non-zero once wq_shutdown() was called. O(1). */
int wq_shutting_down(struct wq *q);

/*
 * Number of keys ready to be taken (the queue depth metric), after moving
 * delayed keys that fell due. Keys held or still delayed do not count.
 */
size_t wq_len(struct wq *q);

#endif
