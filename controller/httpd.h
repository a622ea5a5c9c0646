/*
 * httpd: the controller's status server (health, readiness and Prometheus
 * metrics) on libwebsockets, plus the process-wide metrics the rest of
 * the controller feeds.
 *
 *   GET /healthz   200 "ok" while the reconcile machinery makes progress;
 *                  503 and the reason when a reconcile has run longer than
 *                  stuck_reconcile_s, or ready keys have waited in the work
 *                  queue for stalled_queue_s while no reconcile started
 *                  (workers dead or wedged). Restarting is the cure for both.
 *   GET /readyz    200 "ok" when every informer cache has synced and, while
 *                  this replica leads, ImageDB answered the last probe; else
 *                  503 with a one-line reason ("jobs cache not synced",
 *                  "ImageDB unreachable: ...").
 *   GET /metrics   Prometheus text format 0.0.4 (see "Metrics" below).
 * HEAD works on each; other paths are 404, other methods 405. HTTP/1.1 with
 * keep-alive, no TLS.
 *
 * Wiring (controller/main.c):
 *
 *   right after kube_client_new(), before anything uses the client:
 *       kube_client_set_observer(c.kc, httpd_kube_observer, NULL);
 *   once the informers are started (start_informer() for all five) and
 *   before informer_wait_synced(), so /readyz answers "not synced" while
 *   the caches fill (the struct ctl members httpd reads must be set before
 *   httpd_start(); it never sees them change):
 *       struct httpd *httpd = NULL;           (declared with the others)
 *       if (cfg.listen && *cfg.listen) {
 *           httpd = httpd_start(&c, cfg.listen, NULL, &e);
 *           if (!httpd) { log_error(NULL, "status server: %s", e.msg); goto out; }
 *       }
 *   after idbsync_start() succeeds:
 *       httpd_set_idbsync(httpd, sync);        (safe when httpd is NULL)
 *   first thing under out:, before idbsync_stop(), the informers and the
 *   queue go:
 *       httpd_stop(httpd);
 *   in worker_main, around the reconcile:
 *       double t0 = httpd_reconcile_begin();
 *       rc = ctl_reconcile(c, key, &requeue, &e);
 *       httpd_reconcile_end(t0);
 *
 * Metrics (gauges and counters from struct ctl and the ImageDB sync are
 * read at scrape time; the hooks below feed the rest):
 *   plateop_analyses{phase}              Analyses in the cache by status.phase
 *                                        (no phase yet counts as Pending)
 *   plateop_batches{state}               status.batches pending/running/
 *                                        succeeded/failed summed over Analyses
 *   plateop_reconcile_duration_seconds   histogram, from the reconcile hooks
 *   plateop_kube_requests_total{verb,code}  every API request attempt;
 *                                        code "<error>" when none came back
 *   plateop_workqueue_depth              wq_len(): keys ready to be taken
 *   plateop_leader                       1 while this replica leads, else 0
 *   plateop_reconciles_total, plateop_reconcile_errors_total,
 *   plateop_jobs_created_total, plateop_configmaps_created_total,
 *   plateop_status_writes_total          struct ctl_metrics
 *   plateop_imagedb_notifications_total, plateop_imagedb_rescans_total,
 *   plateop_imagedb_analyses_created_total, plateop_imagedb_rows_rejected_total,
 *   plateop_imagedb_row_writes_total, plateop_imagedb_row_write_errors_total
 *                                        struct idbsync_counts (0 without one)
 *   plateop_build_info{version}          1
 *   process_start_time_seconds, process_cpu_seconds_total,
 *   process_resident_memory_bytes, process_virtual_memory_bytes
 * The Analysis gauges have no series until the Analysis cache has synced.
 *
 * Threads: the server runs the libwebsockets service loop on its own
 * thread, one request at a time; a scrape costs one decode per cached
 * Analysis and briefly delays the other endpoints. A second thread probes
 * ImageDB (a connection of its own and idb_probe(), its answer awaited 2 s
 * at most) every db_probe_interval_s while this replica leads, so /readyz
 * never waits on the database. The hooks are process-wide, thread-safe, cheap (a mutex and
 * a hash lookup at most) and work whether or not a server runs; every
 * other function is called from one thread (main).
 */
#ifndef PLATEOP_CTL_HTTPD_H
#define PLATEOP_CTL_HTTPD_H

#include "ctl.h"
#include "err.h"

struct httpd_opts {
    double stuck_reconcile_s;     /* 0 means 600 */
    double stalled_queue_s;       /* 0 means 120 */
    double db_probe_interval_s;   /* 0 means 5 */
};

struct httpd;

/*
 * Starts serving on listen, "HOST:PORT" (an IPv4 address, "[IPv6]", or ""
 * for every interface; port 0 picks a free one, see httpd_port()). c must
 * outlive the server; its informers and queue may be NULL (an informer
 * that is NULL counts as not synced). opts may be NULL for the defaults.
 * Returns the server, or NULL with e when listen does not parse, the
 * address cannot be bound (e names it and says why), or a thread cannot
 * start. Cost: binds at once; no other I/O in this call.
 */
struct httpd *httpd_start(struct ctl *c, const char *listen, const struct httpd_opts *opts,
                          struct err *e);

/* The port the server listens on. */
int httpd_port(const struct httpd *h);

/*
 * Stops serving, closes open connections, stops the ImageDB probe and
 * frees the server. Blocks until a probe in flight ends (each connect and
 * each round trip is given 2 s; 6 s at the very most). Safe on NULL.
 */
void httpd_stop(struct httpd *h);

struct idbsync;

/*
 * Shows the counters of the ImageDB sync s (NULL: none, zeros) from now
 * on. Once this returns no scrape uses the previous handle, so set NULL
 * (or stop the server) before idbsync_stop(). Safe on a NULL h.
 */
void httpd_set_idbsync(struct httpd *h, struct idbsync *s);

/* ---- hooks --------------------------------------------------------------- */

/*
 * Marks the start of one reconcile; returns the start time to hand to
 * httpd_reconcile_end() when it is over, whatever its outcome. The
 * duration goes into the histogram; a reconcile begun and not ended counts
 * as in flight for /healthz (up to 64 at once are tracked).
 */
double httpd_reconcile_begin(void);

/*
 * Ends the reconcile begun at started (httpd_reconcile_begin()'s value):
 * records its duration in the histogram and forgets it for /healthz.
 */
void httpd_reconcile_end(double started);

/* A kube_observer_fn (lib/kube.h) counting API requests by verb and code; ud is unused. */
void httpd_kube_observer(const char *verb, int http, void *ud);

#endif
