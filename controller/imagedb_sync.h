/*
 * imagedb_sync: the pipeline GUI's ImageDB rows as Analysis resources, and
 * each Analysis's progress written back to its row.
 *
 * The reconcile knows nothing of ImageDB rows. This module talks to it only
 * through Analysis resources (it creates them; it reads their status) and
 * ctl_enqueue() (to wake Analyses when their plate's images change):
 *
 *   rows -> Analyses. At start it applies the notification migration
 *     (idb_notify) and LISTENs on its own thread. Each new
 *     image_sub_analyses row (start, finish and error all NULL) of
 *     meta.type "cellprofiler" becomes Analysis "ia-<analysis_id>-<sub_id>"
 *     in the imagedb namespace, labelled with both ids and carrying the
 *     finalizer plateop.io/imagedb; 409 AlreadyExists is success, so no row
 *     is ever run twice. Rows plateop cannot run (another type, a meta it
 *     cannot turn into a valid spec, a missing or failed dependency) get
 *     `error` and status {state: "Rejected", error_message}. A row is read
 *     on every INSERT notification and every RESYNC (connect, reconnect,
 *     fallback poll); an UPDATE notification re-reads just that row.
 *
 *   Analyses -> rows. A second informer watches the Analyses labelled
 *     plateop.io/imagedb-sub-analysis; every status change becomes a row
 *     write within a second, and only when what the row says changes:
 *     `start` once a batch has started, `status` {state: the phase,
 *     progress: "12 / 40 batches done", message, error_message},
 *     `finish` with `result` {job_folder, file_list} after the merge,
 *     `error` with the Failed condition's message; the parent
 *     image_analyses row is rolled up by idb_sub_analysis_update() in the
 *     same transaction (timestamps, and a status naming the first failed
 *     step). This module runs no SQL of its own. An Analysis deleted before it finished is recorded
 *     as cancelled (error, state "Cancelled", "deleted with kubectl"), then
 *     the finalizer is removed so the deletion completes.
 *
 *   Plates still being imaged. An images INSERT notification, or a
 *     plate_acquisition notification (its `finished` changed), queues the
 *     Blocked Analyses of that acquisition, and those that
 *     start early, at once; every RESYNC queues all Blocked Analyses.
 *
 * Only the leader acts (atomic_load(&c->leading)): a follower listens and
 * watches but creates and writes nothing; on becoming the leader it
 * rescans and re-reads each row before writing it.
 *
 * Wiring in controller/main.c, after the caches have synced and before the
 * leader elector starts:
 *
 *     struct idbsync *idbs = idbsync_start(&c, &e);
 *     if (!idbs) { log_error(NULL, "imagedb: %s", e.msg); goto out; }
 *     ...
 *   out:
 *     atomic_store(&c.leading, 0);
 *     idbsync_stop(idbs);           // before informer_free(c.analyses)
 *
 * Settings (controller/config.h): imagedb.namespace, imagedb.workerImages,
 * imagedb.pollSeconds; the connection is c->db_cfg's.
 */
#ifndef PLATEOP_CTL_IMAGEDB_SYNC_H
#define PLATEOP_CTL_IMAGEDB_SYNC_H

#include <jansson.h>

#include "err.h"
#include "idb.h"

struct ctl;

#define IDBSYNC_LABEL_ANALYSIS "plateop.io/imagedb-analysis"
#define IDBSYNC_LABEL_SUB "plateop.io/imagedb-sub-analysis"
#define IDBSYNC_ANN_PIPELINE "plateop.io/imagedb-pipeline-name"
#define IDBSYNC_FINALIZER "plateop.io/imagedb"

/* err.code of a row plateop cannot run (the message says why, for the GUI). */
#define IDBSYNC_E_ROW 9101

struct idbsync;

/*
 * Connects to ImageDB, applies the notification migration (logging what it
 * added), LISTENs, starts the informer of ImageDB Analyses and waits up to
 * 60 s for it to sync, then starts the sync thread. c must outlive the
 * handle and its informers must be running. Returns the handle, or NULL
 * with e (ImageDB unreachable, migration refused, namespace not served,
 * informer not synced). Blocks for those steps.
 */
struct idbsync *idbsync_start(struct ctl *c, struct err *e);

/*
 * Stops the thread and the informer and closes both connections (waits for
 * a database call in progress, a few seconds at most). Safe on NULL.
 */
void idbsync_stop(struct idbsync *s);

/* What the module has done so far (for metrics). */
struct idbsync_counts {
    long notifications;     /* ImageDB notifications received */
    long rescans;           /* reads of the new rows */
    long created;           /* Analyses created (or found existing) */
    long rejected;          /* rows refused */
    long row_writes;        /* row write-backs */
    long write_errors;      /* failed write-backs (retried) */
};

/* Thread-safe snapshot of the counters. */
void idbsync_counts(struct idbsync *s, struct idbsync_counts *out);

/* ---- pure parts, no I/O (exposed for tests) ---- */

/* "ia-<analysis_id>-<sub_id>" into out (at least 64 bytes). */
void idbsync_name(long long analysis_id, long long sub_id, char *out, size_t size);

struct idbsync_row {
    const struct idb_sub_analysis *row;
    const char *ns;                 /* namespace of the Analysis */
    const json_t *worker_images;    /* object cp_version -> image; empty: default image */
    const json_t *depends;          /* array of the dependencies' Analysis names, or NULL */
};

/*
 * The Analysis for a new row, from its meta: pipeline_file -> pipeline;
 * batch_size -> batching {by: site, size} (<= 0: by plate); channels,
 * well_filter, site_filter, z -> filters (text, numbers or lists);
 * cp_version -> image through worker_images; job_timeout -> timeoutSeconds;
 * max_errors -> maxFailedBatches; use_icf -> useIlluminationCorrection;
 * priority (meta's, else the row's) -> priority, negated: ImageDB runs
 * the lowest number first, the window the highest. Values the schema
 * checks (ranges, filter syntax) are left to the API server.
 * Returns a new reference, or NULL with e: IDBSYNC_E_ROW and a message for
 * the row's status, or ENOMEM.
 */
json_t *idbsync_analysis_new(const struct idbsync_row *in, struct err *e);

/*
 * What the row of an Analysis should say: a new object {start, finish,
 * error (booleans), status (object), result (object, only once
 * Succeeded)}. NULL only when memory runs out.
 */
json_t *idbsync_row_state(const json_t *analysis);

#endif
