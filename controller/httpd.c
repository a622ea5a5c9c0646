/* httpd: health, readiness and metrics over libwebsockets; see httpd.h. */
#include "httpd.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "fileutil.h"
#include "imagedb_sync.h"
#include "log.h"
#include "metrics.h"
#include "monotime.h"
#include "strbuf.h"
#include "version.h"

#define MAX_INFLIGHT 64          /* reconciles tracked for the stuck check */
#define WRITE_CHUNK 16384        /* body bytes per lws_write() */
#define PROBE_TICK_S 0.5         /* how often the probe looks at the leader flag */
#define PROBE_CONNECT_TIMEOUT_S 2
#define PROBE_TIMEOUT_MS 2000    /* for the answer to idb_probe() */

struct httpd {
    struct ctl *c;
    struct httpd_opts opts;
    struct lws_context *ctx;
    int port;
    atomic_int stop;
    pthread_t server;
    int server_started;
    double backlog_since;           /* server thread only: queue seen non-empty since */
    struct idbsync *idbsync;        /* NULL, or counts to show; under g.scrape_lock */

    pthread_t prober;
    int prober_started;
    pthread_mutex_t lock;           /* guards what follows */
    pthread_cond_t wake;
    int db_state;                   /* 0 not probed while leading, 1 reachable, -1 not */
    struct err db_err;              /* why not, when -1 */
};

/* ---- process-wide metrics ------------------------------------------------ */

/* Counters kept elsewhere (struct ctl_metrics, struct idbsync_counts), shown as they are. */
enum source { FROM_CTL, FROM_IDBSYNC };
static const struct {
    const char *name, *help;
    enum source src;
    size_t off;
} mirrored[] = {
    { "plateop_reconciles_total", "Reconciles run.", FROM_CTL,
      offsetof(struct ctl_metrics, reconciles) },
    { "plateop_reconcile_errors_total", "Reconciles that failed and were queued again.",
      FROM_CTL, offsetof(struct ctl_metrics, reconcile_errors) },
    { "plateop_jobs_created_total", "Batch Jobs created (creates answered AlreadyExists not counted).", FROM_CTL,
      offsetof(struct ctl_metrics, jobs_created) },
    { "plateop_configmaps_created_total", "Batch ConfigMap creations requested.", FROM_CTL,
      offsetof(struct ctl_metrics, configmaps_created) },
    { "plateop_status_writes_total", "Analysis status updates written.", FROM_CTL,
      offsetof(struct ctl_metrics, status_writes) },
    { "plateop_imagedb_notifications_total", "ImageDB notifications received.", FROM_IDBSYNC,
      offsetof(struct idbsync_counts, notifications) },
    { "plateop_imagedb_rescans_total", "Reads of new ImageDB analysis rows.", FROM_IDBSYNC,
      offsetof(struct idbsync_counts, rescans) },
    { "plateop_imagedb_analyses_created_total",
      "Analyses created (or found existing) for ImageDB rows.", FROM_IDBSYNC,
      offsetof(struct idbsync_counts, created) },
    { "plateop_imagedb_rows_rejected_total", "ImageDB rows plateop refused to run.",
      FROM_IDBSYNC, offsetof(struct idbsync_counts, rejected) },
    { "plateop_imagedb_row_writes_total", "Status write-backs to ImageDB rows.", FROM_IDBSYNC,
      offsetof(struct idbsync_counts, row_writes) },
    { "plateop_imagedb_row_write_errors_total", "Failed write-backs to ImageDB rows (retried).",
      FROM_IDBSYNC, offsetof(struct idbsync_counts, write_errors) },
};
#define NMIRRORED (sizeof(mirrored) / sizeof(mirrored[0]))

static const char *const phases[] = { "Pending", "Blocked", "Running", "Merging", "Succeeded",
                                      "Failed", NULL };
static const char *const batch_states[] = { "pending", "running", "succeeded", "failed", NULL };

static struct {
    pthread_once_t once;
    int ok;                         /* every family registered */
    struct metrics_registry *reg;
    struct metrics_family *analyses, *batches, *duration, *requests, *depth, *leader,
        *mirror[NMIRRORED], *build, *start, *cpu, *rss, *vsz;

    pthread_mutex_t lock;           /* guards the in-flight reconciles and last_begin */
    double inflight[MAX_INFLIGHT];  /* start times */
    int ninflight;
    double last_begin;              /* when a reconcile last started, 0: never */

    pthread_mutex_t scrape_lock;    /* one scrape at a time: reset-then-set gauges */
} g = { .once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER,
        .scrape_lock = PTHREAD_MUTEX_INITIALIZER };

/* Seconds since the epoch at which this process started (0 if /proc says nothing). */
static double process_start_time(void)
{
    struct strbuf sb = STRBUF_INIT;
    unsigned long long ticks = 0, btime = 0;
    const char *p;
    int field = 3;

    /* Field 22 of /proc/self/stat, counted after the parenthesised command. */
    if (fileutil_read("/proc/self/stat", &sb, 4096, NULL) == 0 && (p = strrchr(sb.buf, ')'))) {
        for (p += 2; *p && field < 22; p++)
            field += *p == ' ';
        ticks = strtoull(p, NULL, 10);
    }
    strbuf_reset(&sb);
    if (fileutil_read("/proc/stat", &sb, 1 << 20, NULL) == 0 && (p = strstr(sb.buf, "\nbtime ")))
        btime = strtoull(p + 7, NULL, 10);
    strbuf_release(&sb);
    return btime ? (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK) : 0;
}

static struct metrics_family *reg(enum metrics_type type, const char *name, const char *help,
                                  const char *const *labels)
{
    static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                      10, 30, 60, 120, 300 };
    struct metrics_desc d = { type, name, help, labels, buckets,
                              sizeof(buckets) / sizeof(buckets[0]) };
    struct metrics_family *f;
    struct err e;

    if (!g.ok)
        return NULL;
    f = metrics_register(g.reg, &d, &e);
    if (!f) {
        log_error(NULL, "metrics: %s", e.msg);
        g.ok = 0;
    }
    return f;
}

static void init(void)
{
    static const char *const phase[] = { "phase", NULL }, *const state[] = { "state", NULL },
                             *const verb_code[] = { "verb", "code", NULL },
                             *const version[] = { "version", NULL };
    size_t i;

    g.reg = metrics_registry_new(NULL);
    g.ok = g.reg != NULL;
    g.analyses = reg(METRICS_GAUGE, "plateop_analyses", "Analyses by status.phase.", phase);
    g.batches = reg(METRICS_GAUGE, "plateop_batches",
                    "Batches by state, summed over every Analysis's status.batches.", state);
    g.duration = reg(METRICS_HISTOGRAM, "plateop_reconcile_duration_seconds",
                     "How long one reconcile of an Analysis took.", NULL);
    g.requests = reg(METRICS_COUNTER, "plateop_kube_requests_total",
                     "Kubernetes API request attempts by verb and HTTP code.", verb_code);
    g.depth = reg(METRICS_GAUGE, "plateop_workqueue_depth",
                  "Analysis keys ready in the work queue.", NULL);
    g.leader = reg(METRICS_GAUGE, "plateop_leader", "1 while this replica leads, else 0.", NULL);
    for (i = 0; i < NMIRRORED; i++)
        g.mirror[i] = reg(METRICS_COUNTER, mirrored[i].name, mirrored[i].help, NULL);
    g.build = reg(METRICS_GAUGE, "plateop_build_info", "The running plateop version.", version);
    g.start = reg(METRICS_GAUGE, "process_start_time_seconds",
                  "Start time of the process since the Unix epoch in seconds.", NULL);
    g.cpu = reg(METRICS_COUNTER, "process_cpu_seconds_total",
                "User and system CPU time spent in seconds.", NULL);
    g.rss = reg(METRICS_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.",
                NULL);
    g.vsz = reg(METRICS_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                NULL);
    if (g.ok) {
        metrics_set(g.build, (const char *const[]){ PLATEOP_VERSION }, 1);
        metrics_set(g.start, NULL, process_start_time());
    }
}

static int metrics_ready(void)
{
    pthread_once(&g.once, init);
    return g.ok;
}

double httpd_reconcile_begin(void)
{
    double now = monotime_now();

    pthread_mutex_lock(&g.lock);
    if (g.ninflight < MAX_INFLIGHT)
        g.inflight[g.ninflight++] = now;
    g.last_begin = now;
    pthread_mutex_unlock(&g.lock);
    return now;
}

void httpd_reconcile_end(double started)
{
    double now = monotime_now();
    int i;

    pthread_mutex_lock(&g.lock);
    for (i = 0; i < g.ninflight && g.inflight[i] != started; i++)
        ;
    if (i < g.ninflight)
        g.inflight[i] = g.inflight[--g.ninflight];
    pthread_mutex_unlock(&g.lock);
    if (metrics_ready())
        metrics_observe(g.duration, NULL, now - started);
}

void httpd_kube_observer(const char *verb, int http, void *ud)
{
    char code[16];

    (void)ud;
    if (!metrics_ready())
        return;
    if (http > 0)
        snprintf(code, sizeof(code), "%d", http);
    else
        snprintf(code, sizeof(code), "<error>");
    metrics_add(g.requests, (const char *const[]){ verb ? verb : "", code }, 1);
}

static int count_analysis(const json_t *a, void *ud)
{
    double *batches = ud;   /* by batch_states, which are status.batches' keys too */
    const json_t *st = json_object_get(a, "status");
    const char *phase = json_string_value(json_object_get(st, "phase"));
    size_t k;

    metrics_add(g.analyses, (const char *const[]){ phase && *phase ? phase : "Pending" }, 1);
    for (k = 0; k < 4; k++)
        batches[k] += (double)json_integer_value(
            json_object_get(json_object_get(st, "batches"), batch_states[k]));
    return 0;
}

/* Analyses by phase and batches by state, from the Analysis cache. */
static void collect_analyses(struct ctl *c)
{
    double batches[4] = { 0 };
    size_t i, k;

    metrics_reset(g.analyses);
    metrics_reset(g.batches);
    if (!c->analyses || !informer_has_synced(c->analyses))
        return;
    for (i = 0; phases[i]; i++)
        metrics_set(g.analyses, (const char *const[]){ phases[i] }, 0);
    informer_each(c->analyses, NULL, NULL, count_analysis, batches);
    for (k = 0; k < 4; k++)
        metrics_set(g.batches, (const char *const[]){ batch_states[k] }, batches[k]);
}

/* Resident and virtual size from /proc/self/statm (pages), and CPU time. */
static void collect_process(void)
{
    struct strbuf sb = STRBUF_INIT;
    struct timespec ts;
    double page = (double)sysconf(_SC_PAGESIZE);
    char *end;

    if (fileutil_read("/proc/self/statm", &sb, 4096, NULL) == 0) {
        unsigned long long size = strtoull(sb.buf, &end, 10);

        metrics_set(g.vsz, NULL, (double)size * page);
        metrics_set(g.rss, NULL, (double)strtoull(end, NULL, 10) * page);
    }
    strbuf_release(&sb);
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        metrics_set(g.cpu, NULL, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

/* The mirrored counters, from c and (when one runs) the ImageDB sync. */
static void collect_mirrored(struct ctl *c, struct idbsync *sync)
{
    struct idbsync_counts counts;
    size_t i;

    memset(&counts, 0, sizeof(counts));
    if (sync)
        idbsync_counts(sync, &counts);
    for (i = 0; i < NMIRRORED; i++) {
        long v = mirrored[i].src == FROM_CTL
                     ? atomic_load((atomic_long *)((char *)&c->metrics + mirrored[i].off))
                     : *(long *)((char *)&counts + mirrored[i].off);

        metrics_set(g.mirror[i], NULL, (double)v);
    }
}

/* Brings the scrape-time metrics up to date and renders everything into out. */
static int scrape(struct httpd *h, struct strbuf *out, struct err *e)
{
    struct ctl *c = h->c;
    int rc;

    if (!metrics_ready())
        return err_set(e, ENOMEM, "metrics unavailable: out of memory");
    pthread_mutex_lock(&g.scrape_lock);
    collect_analyses(c);
    collect_process();
    collect_mirrored(c, h->idbsync);
    metrics_set(g.depth, NULL, c->queue ? (double)wq_len(c->queue) : 0);
    metrics_set(g.leader, NULL, atomic_load(&c->leading) ? 1 : 0);
    rc = metrics_render(g.reg, out, e);
    pthread_mutex_unlock(&g.scrape_lock);
    return rc;
}

void httpd_set_idbsync(struct httpd *h, struct idbsync *s)
{
    if (!h)
        return;
    /* Under the scrape lock: once this returns, no scrape still uses the old handle. */
    pthread_mutex_lock(&g.scrape_lock);
    h->idbsync = s;
    pthread_mutex_unlock(&g.scrape_lock);
}

/* ---- the server ---------------------------------------------------------- */

/* Per connection (lws allocates it zeroed); one response at a time. */
struct session {
    struct strbuf body;             /* LWS_PRE bytes of headroom, then the body */
    size_t sent;                    /* body bytes written */
    int close;                      /* close the connection after this response */
};

struct response {
    unsigned status;
    const char *type;
};

static int healthz(struct httpd *h, struct strbuf *body)
{
    double now = monotime_now(), oldest = 0, last_begin;
    size_t depth;
    int i;

    pthread_mutex_lock(&g.lock);
    for (i = 0; i < g.ninflight; i++)
        if (!oldest || g.inflight[i] < oldest)
            oldest = g.inflight[i];
    last_begin = g.last_begin;
    pthread_mutex_unlock(&g.lock);
    if (oldest && now - oldest > h->opts.stuck_reconcile_s) {
        strbuf_addf(body, "a reconcile has been running for %.0f s\n", now - oldest);
        return 503;
    }
    /* Ready keys that stay queued while no reconcile starts: the workers are gone. */
    depth = h->c->queue ? wq_len(h->c->queue) : 0;
    if (!depth)
        h->backlog_since = 0;
    else if (!h->backlog_since)
        h->backlog_since = now;
    else if (now - h->backlog_since > h->opts.stalled_queue_s
             && now - last_begin > h->opts.stalled_queue_s) {
        strbuf_addf(body, "%zu keys queued for %.0f s and no reconcile started\n", depth,
                    now - h->backlog_since);
        return 503;
    }
    strbuf_adds(body, "ok\n");
    return 200;
}

static int readyz(struct httpd *h, struct strbuf *body)
{
    struct ctl *c = h->c;
    const struct {
        struct informer *inf;
        const char *name;
    } caches[] = { { c->analyses, "analyses" }, { c->jobs, "jobs" },
                   { c->configmaps, "configmaps" }, { c->pods, "pods" },
                   { c->quotas, "resourcequotas" } };
    size_t i;
    int status = 200;

    for (i = 0; i < sizeof(caches) / sizeof(caches[0]); i++)
        if (!caches[i].inf || !informer_has_synced(caches[i].inf)) {
            strbuf_addf(body, "%s cache not synced\n", caches[i].name);
            return 503;
        }
    if (!atomic_load(&c->leading)) {
        strbuf_adds(body, "ok\n");
        return 200;
    }
    pthread_mutex_lock(&h->lock);
    if (h->db_state > 0) {
        strbuf_adds(body, "ok\n");
    } else {
        strbuf_addf(body, "%s\n", h->db_state < 0 ? h->db_err.msg : "ImageDB not checked yet");
        status = 503;
    }
    pthread_mutex_unlock(&h->lock);
    return status;
}

/* Fills s->body (after its headroom) and r for a request of path. */
static void route(struct httpd *h, const char *path, struct session *s, struct response *r)
{
    struct err e;

    r->type = "text/plain; charset=utf-8";
    if (strcmp(path, "/healthz") == 0) {
        r->status = (unsigned)healthz(h, &s->body);
    } else if (strcmp(path, "/readyz") == 0) {
        r->status = (unsigned)readyz(h, &s->body);
    } else if (strcmp(path, "/metrics") == 0) {
        r->type = METRICS_CONTENT_TYPE;
        r->status = 200;
        if (scrape(h, &s->body, &e) < 0) {
            log_error(NULL, "status server: %s", e.msg);
            strbuf_setlen(&s->body, LWS_PRE);
            strbuf_addf(&s->body, "%s\n", e.msg);
            r->type = "text/plain; charset=utf-8";
            r->status = 500;
        }
    } else {
        strbuf_adds(&s->body, "not found\n");
        r->status = 404;
    }
}

/* After a response: keep the connection for the next request, or close it (-1). */
static int finish(struct lws *wsi, struct session *s)
{
    strbuf_release(&s->body);
    if (s->close || lws_http_transaction_completed(wsi))
        return -1;
    return 0;
}

static int send_headers(struct lws *wsi, struct session *s, const struct response *r)
{
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start,
                                      *end = buf + sizeof(buf) - 1;

    if (lws_add_http_common_headers(wsi, r->status, r->type, s->body.len - LWS_PRE, &p, end)
        || lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                       (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (r->status == 405
        && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                       (const unsigned char *)"GET, HEAD", 9, &p, end))
        return -1;
    if (s->close
        && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                        (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

static int on_request(struct lws *wsi, struct httpd *h, struct session *s, const char *path)
{
    static const char headroom[LWS_PRE];
    struct response r = { 405, "text/plain; charset=utf-8" };
    char *uri;
    int len, method = lws_http_get_uri_and_method(wsi, &uri, &len);

    strbuf_release(&s->body);
    s->sent = 0;
    s->close = 0;
    if (strbuf_add(&s->body, headroom, sizeof(headroom)) < 0)
        return -1;
    if (method == LWSHUMETH_GET || method == LWSHUMETH_HEAD) {
        route(h, path, s, &r);
    } else {
        /* Its body, if any, is dropped as it comes; then the connection closes. */
        strbuf_adds(&s->body, "method not allowed\n");
        s->close = 1;
    }
    if (send_headers(wsi, s, &r) < 0)
        return -1;
    if (method == LWSHUMETH_HEAD)
        return finish(wsi, s);
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_writable(struct lws *wsi, struct session *s)
{
    size_t total, n;

    if (s->body.len <= LWS_PRE)
        return 0;   /* a late callback: the response is out */
    total = s->body.len - LWS_PRE;
    n = total - s->sent;
    if (n > WRITE_CHUNK)
        n = WRITE_CHUNK;
    /* lws may use the LWS_PRE bytes before the chunk: headroom, or body already sent. */
    if (lws_write(wsi, (unsigned char *)s->body.buf + LWS_PRE + s->sent, n,
                  s->sent + n == total ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
        return -1;
    s->sent += n;
    if (s->sent < total) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return finish(wsi, s);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct session *s = user;
    struct httpd *h = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_request(wsi, h, s, in);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return s ? on_writable(wsi, s) : -1;
    case LWS_CALLBACK_HTTP_BODY:
        return 0;   /* the body of a refused method: dropped */
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* lws holds writes back while a request body is being read. */
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s)
            strbuf_release(&s->body);
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    { "http", callback, sizeof(struct session), 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* libwebsockets' own warnings and errors, as our log lines. */
static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_emit(level == LLL_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, NULL, NULL,
             "libwebsockets: %.*s", (int)n, line);
}

static void *serve(void *arg)
{
    struct httpd *h = arg;

    while (!atomic_load(&h->stop))
        if (lws_service(h->ctx, 0) < 0)
            break;
    return NULL;
}

/* ---- the ImageDB probe --------------------------------------------------- */

/* One probe: connect if need be, then a round trip. Returns 0, or -1 with e. */
static int probe_once(struct httpd *h, struct idb **db, struct err *e)
{
    struct idb_config cfg = h->c->db_cfg;

    cfg.connect_timeout_s = PROBE_CONNECT_TIMEOUT_S;
    cfg.application_name = "plateop-controller-probe";
    if (!*db && !(*db = idb_open(&cfg, e)))
        return err_prefix(e, "ImageDB unreachable");
    if (idb_probe(*db, PROBE_TIMEOUT_MS, e) == 0)
        return 0;
    /* A server restart shows only now, on the old connection: try a new one once. */
    if (idb_reconnect(*db, e) < 0 || idb_probe(*db, PROBE_TIMEOUT_MS, e) < 0)
        return err_prefix(e, "ImageDB unreachable");
    return 0;
}

static void *probe_main(void *arg)
{
    struct httpd *h = arg;
    struct idb *db = NULL;
    double next = 0;
    struct err e;

    pthread_mutex_lock(&h->lock);
    while (!atomic_load(&h->stop)) {
        struct timespec ts;

        if (!atomic_load(&h->c->leading)) {
            /* A follower keeps no connection; the next leadership probes at once. */
            h->db_state = 0;
            next = 0;
            pthread_mutex_unlock(&h->lock);
            idb_close(db);
            db = NULL;
            pthread_mutex_lock(&h->lock);
        } else if (monotime_now() >= next) {
            int rc, was = h->db_state;

            pthread_mutex_unlock(&h->lock);
            err_clear(&e);
            rc = probe_once(h, &db, &e);
            if (rc < 0 && was >= 0)
                log_warn(NULL, "readiness: %s", e.msg);
            else if (rc == 0 && was < 0)
                log_info(NULL, "readiness: ImageDB reachable again");
            pthread_mutex_lock(&h->lock);
            h->db_state = rc == 0 ? 1 : -1;
            h->db_err = e;
            next = monotime_now() + h->opts.db_probe_interval_s;
        }
        ts = monotime_timespec(monotime_now() + PROBE_TICK_S);
        pthread_cond_timedwait(&h->wake, &h->lock, &ts);
    }
    pthread_mutex_unlock(&h->lock);
    idb_close(db);
    return NULL;
}

/* ---- start and stop ------------------------------------------------------ */

/* Splits "HOST:PORT" or "[V6]:PORT" into host (possibly "": every interface) and port. */
static int parse_listen(const char *listen, char *host, size_t size, int *port, struct err *e)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL, *h = listen;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    char *end = NULL;
    long p = -1;

    if (colon && colon[1] >= '0' && colon[1] <= '9')
        p = strtol(colon + 1, &end, 10);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    } else if (colon && memchr(h, ':', hlen)) {
        p = -1;   /* an IPv6 address needs its brackets */
    }
    if (p < 0 || p > 65535 || *end || hlen >= size)
        return err_set(e, EINVAL, "listen address \"%s\": want HOST:PORT", listen ? listen : "");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/*
 * Binds the address once ourselves: libwebsockets only logs why a bind
 * failed, and the caller deserves the reason. Also tells the family.
 */
static int check_bind(const char *host, int port, const char *listen, int *v6, struct err *e)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *ai = NULL;
    char service[16];
    int fd = -1, one = 1, rc = -1, gai;

    snprintf(service, sizeof(service), "%d", port);
    gai = getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (gai != 0) {
        err_set(e, EINVAL, "listen address \"%s\": %s", listen, gai_strerror(gai));
        goto out;
    }
    *v6 = ai->ai_family == AF_INET6;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0
        || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        err_errno(e, errno, "listen on %s", listen);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

/* The libwebsockets context and its one vhost, listening on host:port. */
static int listen_lws(struct httpd *h, const char *host, int port, int v6, const char *listen,
                      struct err *e)
{
    struct lws_context_creation_info info;
    struct lws_vhost *vh;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    memset(&info, 0, sizeof(info));
    /* An IPv4 address is bound as such, not as its IPv6-mapped twin. */
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS
                   | (v6 || !*host ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
    info.gid = -1;
    info.uid = -1;
    info.user = h;
    info.port = CONTEXT_PORT_NO_LISTEN;
    h->ctx = lws_create_context(&info);
    if (!h->ctx)
        return err_set(e, EIO, "status server: cannot create a libwebsockets context");
    info.port = port;
    info.iface = *host ? host : NULL;
    info.protocols = protocols;
    info.vhost_name = "plateop";
    vh = lws_create_vhost(h->ctx, &info);
    if (!vh)
        return err_set(e, EIO, "status server: cannot listen on %s (see the libwebsockets "
                               "log line)", listen);
    h->port = lws_get_vhost_listen_port(vh);
    return 0;
}

struct httpd *httpd_start(struct ctl *c, const char *listen, const struct httpd_opts *opts,
                          struct err *e)
{
    struct httpd *h = NULL;
    char host[256];
    int port = 0, v6 = 0;

    if (parse_listen(listen, host, sizeof(host), &port, e) < 0
        || check_bind(host, port, listen, &v6, e) < 0)
        return NULL;
    if (!metrics_ready() || !(h = calloc(1, sizeof(*h)))) {
        err_set(e, ENOMEM, "status server: out of memory");
        return NULL;
    }
    h->c = c;
    if (opts)
        h->opts = *opts;
    if (h->opts.stuck_reconcile_s <= 0)
        h->opts.stuck_reconcile_s = 600;
    if (h->opts.stalled_queue_s <= 0)
        h->opts.stalled_queue_s = 120;
    if (h->opts.db_probe_interval_s <= 0)
        h->opts.db_probe_interval_s = 5;
    pthread_mutex_init(&h->lock, NULL);
    monotime_cond_init(&h->wake);
    if (listen_lws(h, host, port, v6, listen, e) < 0)
        goto fail;
    h->server_started = pthread_create(&h->server, NULL, serve, h) == 0;
    h->prober_started = h->server_started && pthread_create(&h->prober, NULL, probe_main, h) == 0;
    if (!h->prober_started) {
        err_set(e, EAGAIN, "status server: cannot start a thread");
        goto fail;
    }
    log_info(NULL, "status server listening on %s (port %d): /healthz /readyz /metrics", listen,
             h->port);
    return h;
fail:
    httpd_stop(h);
    return NULL;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    if (h->server_started) {
        lws_cancel_service(h->ctx);
        pthread_join(h->server, NULL);
    }
    if (h->prober_started) {
        pthread_mutex_lock(&h->lock);
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->prober, NULL);
    }
    if (h->ctx)
        lws_context_destroy(h->ctx);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
