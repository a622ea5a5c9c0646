/*
 * ctl: the controller's shared state and its reconcile entry point.
 *
 * One struct ctl per process. Informers keep caches of the Analyses and of
 * the Jobs, ConfigMaps and Pods they own (label-selected, pruned to what the
 * reconcile reads); their handlers queue the owning Analysis's key
 * ("namespace/name") on a rate-limited work queue; worker threads take keys
 * and call ctl_reconcile(). The reconcile is level-based: it compares the
 * desired batches (the ConfigMaps written at planning time) with the Jobs it
 * observes and acts on the difference, so it can run any number of times,
 * from any state, after any restart.
 */
#ifndef PLATEOP_CTL_CTL_H
#define PLATEOP_CTL_CTL_H

#include <pthread.h>
#include <stdatomic.h>

#include "config.h"
#include "err.h"
#include "idb.h"
#include "informer.h"
#include "kube.h"
#include "kube_events.h"
#include "window.h"
#include "workqueue.h"

struct ctl_metrics {
    atomic_long reconciles;
    atomic_long reconcile_errors;
    atomic_long jobs_created;
    atomic_long configmaps_created;
    atomic_long status_writes;
};

struct ctl {
    const struct ctl_config *cfg;
    struct kube_client *kc;
    struct informer *analyses;
    struct informer *jobs;
    struct informer *configmaps;
    struct informer *pods;
    struct informer *quotas;        /* ResourceQuotas: the pod room of each namespace */
    struct wq *queue;
    struct window *window;
    struct kube_event_recorder *events;
    atomic_int leading;             /* only the leader acts */

    pthread_mutex_t planned_lock;
    json_t *planned;                /* uid -> monotonic seconds of the last plan */

    pthread_mutex_t db_lock;        /* one ImageDB connection, used while planning */
    struct idb *db;
    struct idb_config db_cfg;

    struct ctl_metrics metrics;
};

/*
 * Brings one Analysis ("namespace/name") closer to its desired state.
 * Returns 0 when done for now (the caller forgets the key's backoff); 1
 * when it wants to run again after *requeue_s seconds; -1 with e on a
 * failure worth retrying with backoff (API or database trouble).
 */
int ctl_reconcile(struct ctl *c, const char *key, double *requeue_s, struct err *e);

/*
 * Plans the Analysis from ImageDB and creates one ConfigMap per batch
 * (each holding its LoadData CSV), concurrently and idempotently. Fills
 * *summary (a JSON object: imageSets, incompleteImageSets, wells, batches,
 * and final: false while the plate is still being imaged and the plan holds
 * only the batches of wells already complete) and *incomplete (a short description of left-out image sets, or NULL).
 * Returns 0; 1 when the plate is still being imaged and the Analysis must
 * wait (e holds the reason); -1 with e: e->code CTL_E_USER for a problem
 * in the spec or the data that retrying cannot fix, otherwise transient.
 */
#define CTL_E_USER 9001
struct ana;
int ctl_plan(struct ctl *c, const struct ana *a, json_t **summary, char **incomplete,
             struct err *e);

/*
 * Pods the namespace's ResourceQuotas still admit as the caches see it: the
 * least over its quotas with a pods limit of hard - max(used, our live
 * pods), or -1 when none limits pods. Grants not yet visible in the caches
 * are the window's to count (window_acquire). Cost: O(cached quotas + pods).
 */
int ctl_quota_room(struct ctl *c, const char *ns);

/* Queues an Analysis key (for handlers and the window); a failure is logged. */
void ctl_enqueue(struct ctl *c, const char *key);

/*
 * Remembers that the Analysis with this uid was just planned, so a pass
 * that still sees the status from before (the cache lags our own write)
 * does not plan it again. ctl_recently_planned() is true for 30 s.
 */
void ctl_planned(struct ctl *c, const char *uid);
int ctl_recently_planned(struct ctl *c, const char *uid);

/*
 * Runs every request of kb (NULL or empty: nothing) concurrently. A create
 * answered 409 AlreadyExists (a rerun or a peer did it) and a patch or
 * delete answered 404 NotFound (already gone) count as done. Sets *done
 * (may be NULL) to the requests that succeeded outright. Returns 0, or -1
 * with e holding the first other error, prefixed with `what`; the rest of
 * the batch still ran. kb stays the caller's.
 */
int ctl_run_requests(struct kube_batch *kb, const char *what, long *done, struct err *e);

#endif
