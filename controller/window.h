/*
 * window: which Analysis may create how many batch Jobs now, across all
 * Analyses: the batch window and each namespace's pod quota, shared out by
 * priority under one lock.
 *
 * The namespace ResourceQuota caps running pods, but the Job controller
 * backs off for minutes when quota refuses a pod, and thousands of waiting
 * Jobs load the API server. So plateop keeps at most `size` batch Jobs that
 * exist but have no running pod, creates no Job whose pod the quota could
 * not admit now, and creates the next as soon as one starts or finishes.
 *
 * Room goes to the Analysis of highest priority first, then the oldest. An
 * Analysis keeps its claim on its namespace's quota while it waits, so when
 * a pod frees up, a lower-priority Analysis of that namespace that happens
 * to reconcile first yields it (and window_wake() calls the one it is for).
 * Grants are counted until the caches show their Jobs (or for 30 s), so two
 * reconciles that read the same cached quota room never both take it.
 *
 * Thread-safe; every call is O(n²) string compares in the number of
 * Analyses that have batches to start or waiting (at most a few hundred).
 */
#ifndef PLATEOP_CTL_WINDOW_H
#define PLATEOP_CTL_WINDOW_H

struct window;

/* size 0 means no window (only the quota limits creates). NULL on ENOMEM. */
struct window *window_new(int size);

/* Frees the window and its entries. NULL is a no-op. */
void window_free(struct window *w);

/* One Analysis as its reconcile observes it in the caches. Strings are borrowed. */
struct window_claim {
    const char *key;        /* "namespace/name" */
    const char *ns;
    int priority;
    const char *created;    /* creationTimestamp (RFC 3339), the tie-break */
    int waiting;            /* its batch Jobs whose pod has not started */
    int nopod;              /* of those, Jobs with no pod yet: their pod will take quota */
    int started;            /* its batches that have a Job */
    int want;               /* its batches that have no Job yet (uncapped) */
    int quota_room;         /* pods the namespace quota admits per the caches (-1: no limit) */
};

/*
 * Records the claim and returns how many of the Analysis's first new
 * batches (in plan order) the caller should create now: those granted
 * earlier whose Jobs the caches do not show yet (their creates answer 409)
 * plus a new grant that leaves room for Analyses served first. Strings are
 * copied. A claim with nothing wanted or waiting forgets the Analysis.
 */
int window_acquire(struct window *w, const struct window_claim *c);

/* Forgets an Analysis that finished or went away. */
void window_release(struct window *w, const char *key);

/*
 * Calls fn, in the order they are served, for every Analysis that would
 * get a grant now, so the caller can reconcile them again. fn must not
 * call back into the window; it runs unlocked.
 */
void window_wake(struct window *w, void (*fn)(const char *key, void *ud), void *ud);

/* Jobs counted as waiting to start (including grants not yet seen), for metrics. */
int window_used(struct window *w);

#endif
