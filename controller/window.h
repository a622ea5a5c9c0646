/*
 * window: how many batch Jobs may wait to start, across all Analyses.
 *
 * The namespace ResourceQuota caps running pods, but the Job controller
 * backs off for minutes when quota refuses a pod, and thousands of waiting
 * Jobs load the API server. So plateop keeps at most `size` batch Jobs that
 * exist but have no running pod, and creates the next as soon as one starts
 * or finishes. Room goes to the Analysis of highest priority first, then the
 * oldest. Thread-safe; every call is O(number of Analyses with batches).
 */
#ifndef PLATEOP_CTL_WINDOW_H
#define PLATEOP_CTL_WINDOW_H

struct window;

/* size 0 means no window (every batch Job is created at once). NULL on ENOMEM. */
struct window *window_new(int size);
void window_free(struct window *w);

/*
 * Records that Analysis `key` (priority, creation timestamp as RFC 3339)
 * has `unstarted` Jobs waiting and wants `want` more. Returns how many it
 * may create now (0..want), leaving room for Analyses that come first.
 * Strings are copied.
 */
int window_acquire(struct window *w, const char *key, int priority, const char *created,
                   int unstarted, int want);

/* Forgets an Analysis that finished or went away. */
void window_release(struct window *w, const char *key);

/*
 * When there is room, calls fn for every Analysis that still wants some,
 * in the order they are served, so the caller can reconcile them again.
 * fn must not call back into the window.
 */
void window_wake(struct window *w, void (*fn)(const char *key, void *ud), void *ud);

/* Jobs counted as waiting, for metrics. */
int window_used(struct window *w);

#endif
