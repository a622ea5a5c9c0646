/*
 * workqueue: rate-limited work queue of string keys; see workqueue.h.
 *
 * Each key the queue knows has one struct wq_item, found through a hash
 * map (strmap) keyed by the string. An item is in the FIFO when
 * it is dirty and not held; in the delay heap when heap_idx != NO_HEAP; and
 * is freed as soon as none of those applies and it has no backoff left to
 * remember. Delayed items are promoted by whichever thread next looks at the
 * queue, waiting on a monotonic condition variable until the heap's head
 * falls due.
 */
#include "workqueue.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monotime.h"
#include "strmap.h"

#define NO_HEAP SIZE_MAX

struct wq_item {
    char *key;
    int dirty;              /* must be handed out (again) */
    int held;               /* a worker has it between get and done */
    unsigned failures;      /* rate-limited adds since the last forget */
    size_t heap_idx;        /* position in the delay heap, or NO_HEAP */
    double due;             /* monotonic seconds; valid while in the heap */
    struct wq_item *next;   /* FIFO link */
};

struct wq {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int shutdown;

    struct strmap items;    /* key -> struct wq_item */
    struct wq_item *head, *tail;
    size_t fifo_len;
    struct wq_item **heap;
    size_t heap_len, heap_cap;

    double base_delay, max_delay, qps, burst;
    double tokens, tokens_at;   /* bucket level, and when it was computed */
};

static struct wq_item *find(struct wq *q, const char *key)
{
    return strmap_get(&q->items, key);
}

/* Finds key's item or creates an idle one. NULL when out of memory. */
static struct wq_item *find_or_create(struct wq *q, const char *key)
{
    struct wq_item *it = find(q, key);

    if (it)
        return it;
    it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->key = strdup(key);
    it->heap_idx = NO_HEAP;
    if (!it->key)
        goto fail;
    if (strmap_put(&q->items, key, it, NULL) < 0)
        goto fail;
    return it;
fail:
    free(it->key);
    free(it);
    return NULL;
}

static void item_free(void *p)
{
    struct wq_item *it = p;

    free(it->key);
    free(it);
}

/* Drops an item that no longer carries any state. */
static void release_if_idle(struct wq *q, struct wq_item *it)
{
    if (it->dirty || it->held || it->failures || it->heap_idx != NO_HEAP)
        return;
    strmap_remove(&q->items, it->key, NULL);
    item_free(it);
}

static void heap_swap(struct wq *q, size_t i, size_t j)
{
    struct wq_item *t = q->heap[i];

    q->heap[i] = q->heap[j];
    q->heap[j] = t;
    q->heap[i]->heap_idx = i;
    q->heap[j]->heap_idx = j;
}

static void heap_up(struct wq *q, size_t i)
{
    while (i > 0 && q->heap[(i - 1) / 2]->due > q->heap[i]->due) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct wq *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < q->heap_len && q->heap[l]->due < q->heap[m]->due)
            m = l;
        if (r < q->heap_len && q->heap[r]->due < q->heap[m]->due)
            m = r;
        if (m == i)
            return;
        heap_swap(q, i, m);
        i = m;
    }
}

static struct wq_item *heap_pop(struct wq *q)
{
    struct wq_item *top = q->heap[0];

    q->heap_len--;
    if (q->heap_len > 0) {
        q->heap[0] = q->heap[q->heap_len];
        q->heap[0]->heap_idx = 0;
        heap_down(q, 0);
    }
    top->heap_idx = NO_HEAP;
    return top;
}

/* Marks an item dirty and, unless held or queued already, appends it to the FIFO. */
static void enqueue(struct wq *q, struct wq_item *it)
{
    if (it->dirty)
        return;
    it->dirty = 1;
    if (it->held)
        return;
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->fifo_len++;
    pthread_cond_signal(&q->cond);
}

/* Moves delayed items whose time has come into the FIFO. */
static void promote_due(struct wq *q)
{
    double now;

    if (q->heap_len == 0)
        return;
    now = monotime_now();
    while (q->heap_len > 0 && q->heap[0]->due <= now)
        enqueue(q, heap_pop(q));
}

/* Puts an item in the delay heap, or moves it earlier. 0, or -1 when out of memory. */
static int schedule(struct wq *q, struct wq_item *it, double due)
{
    if (it->heap_idx != NO_HEAP) {
        if (due < it->due) {
            it->due = due;
            heap_up(q, it->heap_idx);
        }
        goto wake;
    }
    if (q->heap_len == q->heap_cap) {
        size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
        struct wq_item **h = realloc(q->heap, cap * sizeof(*h));

        if (!h)
            return -1;
        q->heap = h;
        q->heap_cap = cap;
    }
    it->due = due;
    it->heap_idx = q->heap_len;
    q->heap[q->heap_len++] = it;
    heap_up(q, it->heap_idx);
wake:
    /* A new head changes how long waiters should sleep. */
    if (it->heap_idx == 0)
        pthread_cond_broadcast(&q->cond);
    return 0;
}

/* Reserves a token; returns how long until it is really there (0 if now). */
static double bucket_reserve(struct wq *q)
{
    double now;

    if (q->qps <= 0)
        return 0;
    now = monotime_now();
    q->tokens = fmin(q->burst, q->tokens + (now - q->tokens_at) * q->qps);
    q->tokens_at = now;
    q->tokens -= 1;
    return q->tokens >= 0 ? 0 : -q->tokens / q->qps;
}

/* The key's next backoff; counts the failure. */
static double item_backoff(struct wq *q, struct wq_item *it)
{
    /* Far past the cap already; clamping keeps ldexp finite. */
    int exp = it->failures > 64 ? 64 : (int)it->failures;

    it->failures++;
    return fmin(q->max_delay, ldexp(q->base_delay, exp));
}

/*
 * Core of all adds; called with the lock held. A rate-limited add computes
 * its own delay from the key's backoff and the token bucket.
 */
static int add_locked(struct wq *q, const char *key, int rate_limited, double delay_s,
                      struct err *e)
{
    struct wq_item *it;

    if (q->shutdown)
        return 0;
    it = find_or_create(q, key);
    if (!it)
        return err_errno(e, ENOMEM, "queue %s", key);
    if (rate_limited)
        delay_s = fmax(item_backoff(q, it), bucket_reserve(q));
    if (delay_s <= 0) {
        enqueue(q, it);
        return 0;
    }
    if (schedule(q, it, monotime_now() + delay_s) < 0) {
        release_if_idle(q, it);
        return err_errno(e, ENOMEM, "delay %s", key);
    }
    return 0;
}

struct wq *wq_new(const struct wq_config *cfg, struct err *e)
{
    struct wq_config c = { 0 };
    struct wq *q;
    int rc;

    if (cfg)
        c = *cfg;
    q = calloc(1, sizeof(*q));
    if (!q) {
        err_errno(e, ENOMEM, "work queue");
        return NULL;
    }
    q->base_delay = c.base_delay_s > 0 ? c.base_delay_s : 0.005;
    q->max_delay = c.max_delay_s > 0 ? c.max_delay_s : 1000;
    q->qps = c.qps != 0 ? c.qps : 10;
    q->burst = c.burst > 0 ? c.burst : 100;
    q->tokens = q->burst;
    q->tokens_at = monotime_now();

    rc = monotime_cond_init(&q->cond);
    if (rc) {
        err_errno(e, rc, "work queue condition variable");
        free(q);
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    return q;
}

void wq_free(struct wq *q)
{
    if (!q)
        return;
    strmap_clear(&q->items, item_free);
    free(q->heap);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int wq_add(struct wq *q, const char *key, struct err *e)
{
    return wq_add_after(q, key, 0, e);
}

int wq_add_after(struct wq *q, const char *key, double delay_s, struct err *e)
{
    int rc;

    pthread_mutex_lock(&q->mu);
    rc = add_locked(q, key, 0, delay_s, e);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int wq_add_rate_limited(struct wq *q, const char *key, struct err *e)
{
    int rc;

    pthread_mutex_lock(&q->mu);
    rc = add_locked(q, key, 1, 0, e);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void wq_forget(struct wq *q, const char *key)
{
    struct wq_item *it;

    pthread_mutex_lock(&q->mu);
    it = find(q, key);
    if (it) {
        it->failures = 0;
        release_if_idle(q, it);
    }
    pthread_mutex_unlock(&q->mu);
}

unsigned wq_num_requeues(struct wq *q, const char *key)
{
    struct wq_item *it;
    unsigned n;

    pthread_mutex_lock(&q->mu);
    it = find(q, key);
    n = it ? it->failures : 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

const char *wq_get(struct wq *q)
{
    struct wq_item *it = NULL;
    struct timespec ts;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->shutdown)
            goto out;
        promote_due(q);
        if (q->head)
            break;
        if (q->heap_len > 0) {
            ts = monotime_timespec(q->heap[0]->due);
            pthread_cond_timedwait(&q->cond, &q->mu, &ts);
        } else {
            pthread_cond_wait(&q->cond, &q->mu);
        }
    }
    it = q->head;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->fifo_len--;
    it->next = NULL;
    it->dirty = 0;
    it->held = 1;
    /* Several items may have fallen due at once: pass the wake-up on. */
    if (q->head)
        pthread_cond_signal(&q->cond);
out:
    pthread_mutex_unlock(&q->mu);
    return it ? it->key : NULL;
}

void wq_done(struct wq *q, const char *key)
{
    struct wq_item *it;

    pthread_mutex_lock(&q->mu);
    it = find(q, key);
    if (it && it->held) {
        it->held = 0;
        if (it->dirty) {
            /* enqueue() skips dirty items; it was parked while held. */
            it->dirty = 0;
            enqueue(q, it);
        } else {
            release_if_idle(q, it);
        }
    }
    pthread_mutex_unlock(&q->mu);
}

void wq_shutdown(struct wq *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutdown = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
}

int wq_shutting_down(struct wq *q)
{
    int s;

    pthread_mutex_lock(&q->mu);
    s = q->shutdown;
    pthread_mutex_unlock(&q->mu);
    return s;
}

size_t wq_len(struct wq *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    promote_due(q);
    n = q->fifo_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
