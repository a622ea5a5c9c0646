/*
 * imagedb_sync: ImageDB rows become Analyses, Analyses' progress goes back
 * to the rows; see imagedb_sync.h.
 *
 * Threads. The sync thread owns both ImageDB connections (the listener's
 * and one for reads and writes), the maps of what each row says and which
 * rows have an Analysis, and does every write. The informer's handlers only
 * turn an Analysis into the row state it implies and leave it in `pending`
 * (latest wins) for the sync thread, which they wake through an eventfd.
 */
#include "imagedb_sync.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ctl.h"
#include "idb_notify.h"
#include "informer.h"
#include "log.h"
#include "monotime.h"
#include "strbuf.h"

/* Leadership is polled: a new leader takes over the rows within this. */
#define TICK_MS 250
/* A failed write or create is tried again after this. */
#define RETRY_S 1.0
/* The sync connection gives up on a lost database quickly and retries later. */
#define RECONNECT_BUDGET_MS 2000

#define CANCEL_MESSAGE "deleted with kubectl before it finished"

struct idbsync {
    struct ctl *c;
    char *ns;
    struct idb_config dbcfg;
    struct idb *db;                 /* sync thread only */
    struct idb_listener *listener;  /* sync thread only */
    struct informer *inf;
    pthread_t thread;
    int thread_started;
    int wake_fd;
    atomic_int stop;

    pthread_mutex_t lock;
    json_t *pending;                /* sub id -> change; under lock */

    /* sync thread only */
    json_t *known;                  /* sub id -> row state last written or read */
    json_t *created;                /* sub id -> Analysis name, created or seen */
    json_t *acqs;                   /* plate acquisition id -> true: wake its Analyses */
    json_t *touched;                /* sub id -> true: an UPDATE notification named it */
    int rescan;
    int wake_blocked;
    int woken;                      /* Analyses wake_analyses() enqueued */
    int leading;
    double retry_at;                /* monotonic seconds; 0: nothing to retry */

    atomic_long n_notifications, n_rescans, n_created, n_rejected, n_writes, n_write_errors;
};

/* ---- small JSON helpers ---- */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

static long long jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/* ---- rows -> Analyses (pure) ---- */

void idbsync_name(long long analysis_id, long long sub_id, char *out, size_t size)
{
    snprintf(out, size, "ia-%lld-%lld", analysis_id, sub_id);
}

static int row_err(struct err *e, const char *key, const char *what)
{
    return err_set(e, IDBSYNC_E_ROW, "meta.%s: %s", key, what);
}

/*
 * An integer from meta: a JSON integer, an integral real or a numeric
 * string (the GUI writes all three). 1 and *out when present, 0 when absent
 * (missing, null, ""), -1 with e otherwise.
 */
static int meta_int(const json_t *meta, const char *key, long long *out, struct err *e)
{
    const json_t *v = json_object_get(meta, key);
    const char *s;
    char *end;

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v) && json_real_value(v) == (double)(long long)json_real_value(v)) {
        *out = (long long)json_real_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        s = json_string_value(v);
        if (!*s)
            return 0;
        errno = 0;
        *out = strtoll(s, &end, 10);
        if (!errno && *end == '\0')
            return 1;
    }
    return row_err(e, key, "must be a whole number");
}

/* A flag from meta: true/false, 1/0, or "true"/"false"/"yes"/"no"/"1"/"0". */
static int meta_bool(const json_t *meta, const char *key, int *out, struct err *e)
{
    const json_t *v = json_object_get(meta, key);
    const char *s = json_string_value(v);

    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v) || json_is_integer(v)) {
        *out = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
        return 1;
    }
    if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))) {
        *out = 1;
        return 1;
    }
    if (s && (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0"))) {
        *out = 0;
        return 1;
    }
    return row_err(e, key, "must be true or false");
}

static int add_scalar(struct strbuf *out, const json_t *v)
{
    if (json_is_string(v))
        return strbuf_adds(out, json_string_value(v));
    if (json_is_integer(v))
        return strbuf_addf(out, "%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return strbuf_addf(out, "%g", json_real_value(v));
    return -2;
}

/*
 * Text from meta into out: a string, a number, or a list of them joined
 * with ",". 1 when non-empty, 0 when absent or empty, -1 with e otherwise.
 */
static int meta_text(const json_t *meta, const char *key, struct strbuf *out, struct err *e)
{
    const json_t *v = json_object_get(meta, key), *x;
    size_t i;
    int rc = 0;

    strbuf_reset(out);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            if (i > 0)
                strbuf_addch(out, ',');
            if ((rc = add_scalar(out, x)) < 0)
                break;
        }
    } else {
        rc = add_scalar(out, v);
    }
    if (rc == -2)
        return row_err(e, key, "must be text, a number or a list of them");
    if (rc < 0)
        return err_set(e, ENOMEM, "out of memory");
    return out->len > strspn(out->buf, " ") ? 1 : 0;
}

/* "DNA, ER,RNA" -> ["DNA","ER","RNA"] (empty items dropped). */
static json_t *split_list(const char *s)
{
    json_t *arr = json_array();

    while (arr && *s) {
        size_t n;

        s += strspn(s, " ,");
        n = strcspn(s, ",");
        while (n > 0 && s[n - 1] == ' ')
            n--;
        if (n > 0 && json_array_append_new(arr, json_stringn(s, n)) < 0) {
            json_decref(arr);
            return NULL;
        }
        s += n;
        s += strcspn(s, ",");
    }
    return arr;
}

/* Sets key to value (stolen); a NULL value or a failed set counts as out of memory. */
static void put(json_t *obj, const char *key, json_t *value, int *oom)
{
    if (!value || json_object_set_new(obj, key, value) < 0)
        *oom = 1;
}

/* spec.image from meta.cp_version through the configured images. */
static int worker_image(const json_t *meta, const json_t *images, json_t *spec,
                        struct strbuf *tmp, int *oom, struct err *e)
{
    struct strbuf known = STRBUF_INIT;
    const char *version, *img, *key;
    json_t *v;
    int rc;

    rc = meta_text(meta, "cp_version", tmp, e);
    if (rc <= 0 || json_object_size(images) == 0)
        return rc < 0 ? -1 : 0;
    version = tmp->buf;
    img = jstr(images, version);
    if (img) {
        put(spec, "image", json_string(img), oom);
        return 0;
    }
    json_object_foreach((json_t *)images, key, v) {
        if (known.len)
            strbuf_adds(&known, ", ");
        strbuf_adds(&known, key);
    }
    err_set(e, IDBSYNC_E_ROW, "CellProfiler %s is not available here (versions: %s)", version,
            known.buf);
    strbuf_release(&known);
    return -1;
}

/* The row's spec; NULL with e. */
static json_t *row_spec(const struct idbsync_row *in, struct err *e)
{
    static const struct { const char *meta, *spec; } filters[] = {
        { "well_filter", "wells" }, { "site_filter", "sites" }, { "z", "z" },
    }, numbers[] = {
        { "job_timeout", "timeoutSeconds" }, { "max_errors", "maxFailedBatches" },
    };
    const struct idb_sub_analysis *r = in->row;
    const json_t *meta = r->meta;
    const char *pipeline = jstr(meta, "pipeline_file");
    json_t *spec = NULL, *flt;
    struct strbuf tmp = STRBUF_INIT;
    long long n = 0, prio = 0;
    size_t i;
    int oom = 0, on = 0, rc;

    if (!pipeline || !*pipeline) {
        row_err(e, "pipeline_file", "is missing: which CellProfiler pipeline to run?");
        goto fail;
    }
    spec = json_pack("{s:I,s:s,s:{}}", "plateAcquisition", (json_int_t)r->plate_acquisition_id,
                     "pipeline", pipeline, "filters");
    if (!spec)
        goto nomem;
    flt = json_object_get(spec, "filters");
    if ((rc = meta_int(meta, "batch_size", &n, e)) < 0)
        goto fail;
    if (rc)
        put(spec, "batching",
            n > 0 ? json_pack("{s:s,s:I}", "by", "site", "size", (json_int_t)n)
                  : json_pack("{s:s}", "by", "plate"), &oom);
    for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        if ((rc = meta_text(meta, filters[i].meta, &tmp, e)) < 0)
            goto fail;
        if (rc)
            put(flt, filters[i].spec, json_string(tmp.buf), &oom);
    }
    if ((rc = meta_text(meta, "channels", &tmp, e)) < 0)
        goto fail;
    if (rc)
        put(flt, "channels", split_list(tmp.buf), &oom);
    if (worker_image(meta, in->worker_images, spec, &tmp, &oom, e) < 0)
        goto fail;
    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        if ((rc = meta_int(meta, numbers[i].meta, &n, e)) < 0)
            goto fail;
        if (rc)
            put(spec, numbers[i].spec, json_integer(n), &oom);
    }
    if ((rc = meta_bool(meta, "use_icf", &on, e)) < 0)
        goto fail;
    if (rc)
        put(spec, "useIlluminationCorrection", json_boolean(on), &oom);
    if ((rc = meta_int(meta, "priority", &prio, e)) < 0)
        goto fail;
    if (!rc)
        prio = r->priority;
    prio = prio > 1000 ? 1000 : prio < -1000 ? -1000 : prio;
    put(spec, "priority", json_integer(-prio), &oom);
    if (json_array_size(in->depends) > 0)
        put(spec, "dependsOn", json_deep_copy(in->depends), &oom);
    if (oom)
        goto nomem;
    strbuf_release(&tmp);
    return spec;
nomem:
    err_set(e, ENOMEM, "out of memory");
fail:
    strbuf_release(&tmp);
    json_decref(spec);
    return NULL;
}

json_t *idbsync_analysis_new(const struct idbsync_row *in, struct err *e)
{
    const struct idb_sub_analysis *r = in->row;
    const char *type = jstr(r->meta, "type");
    char name[64], aid[24], sid[24];
    json_t *spec, *obj;

    if (!json_is_object(r->meta)) {
        err_set(e, IDBSYNC_E_ROW, "meta is missing: plateop needs its type and pipeline_file");
        return NULL;
    }
    if (!type || strcmp(type, "cellprofiler") != 0) {
        err_set(e, IDBSYNC_E_ROW, "plateop runs analyses of type 'cellprofiler' only, not '%s'",
                type ? type : "(none)");
        return NULL;
    }
    if (r->depends_invalid) {
        err_set(e, IDBSYNC_E_ROW, "depends_on_sub_id must be a list of sub-analysis ids");
        return NULL;
    }
    spec = row_spec(in, e);
    if (!spec)
        return NULL;
    idbsync_name(r->analysis_id, r->sub_id, name, sizeof(name));
    snprintf(aid, sizeof(aid), "%lld", r->analysis_id);
    snprintf(sid, sizeof(sid), "%lld", r->sub_id);
    obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s},s:[s]},s:o}", "apiVersion",
                    "plateop.io/v1alpha1", "kind", "Analysis", "metadata", "name", name,
                    "namespace", in->ns, "labels", IDBSYNC_LABEL_ANALYSIS, aid, IDBSYNC_LABEL_SUB,
                    sid, "finalizers", IDBSYNC_FINALIZER, "spec", spec);
    if (obj && r->pipeline_name &&
        json_object_set_new(json_object_get(obj, "metadata"), "annotations",
                            json_pack("{s:s}", IDBSYNC_ANN_PIPELINE, r->pipeline_name)) < 0) {
        json_decref(obj);
        obj = NULL;
    }
    if (!obj)
        err_set(e, ENOMEM, "out of memory");
    return obj;
}

/* ---- Analyses -> rows (pure) ---- */

static const char *cond_message(const json_t *status, const char *type)
{
    const json_t *c;
    size_t i;

    json_array_foreach(json_object_get(status, "conditions"), i, c) {
        const char *t = jstr(c, "type");

        if (t && strcmp(t, type) == 0)
            return jstr(c, "message");
    }
    return NULL;
}

static json_t *row_result(const json_t *results)
{
    const json_t *tables = json_object_get(results, "tables"), *t;
    const char **files = calloc(json_array_size(tables) + 1, sizeof(*files));
    size_t i, n = 0;
    json_t *res;

    if (!files)
        return NULL;
    json_array_foreach(tables, i, t) {
        if (jstr(t, "file"))
            files[n++] = jstr(t, "file");
    }
    res = idb_result_new(jstr(results, "path"), files, n);
    free(files);
    return res;
}

json_t *idbsync_row_state(const json_t *analysis)
{
    const json_t *st = json_object_get(analysis, "status");
    const json_t *b = json_object_get(st, "batches");
    const char *phase = jstr(st, "phase") ? jstr(st, "phase") : "Pending";
    long long total = jint(b, "total"), done = jint(b, "succeeded") + jint(b, "failed");
    int finished = strcmp(phase, "Succeeded") == 0, failed = strcmp(phase, "Failed") == 0;
    int started = done + jint(b, "running") > 0 || finished || !strcmp(phase, "Merging");
    const char *msg = cond_message(st, failed ? "Failed" : "Ready");
    struct strbuf progress = STRBUF_INIT;
    json_t *status, *out;
    int oom = 0;

    if (total > 0) {
        strbuf_addf(&progress, "%lld / %lld batches done", done, total);
        if (jint(b, "failed") > 0)
            strbuf_addf(&progress, " (%lld failed)", jint(b, "failed"));
    }
    status = idb_status_new(phase, progress.len ? progress.buf : NULL,
                            failed ? (msg ? msg : "the analysis failed") : NULL);
    /* While batches run the progress says what Ready's message would. */
    if (status && !failed && msg && *msg && strcmp(phase, "Running") != 0)
        put(status, "message", json_string(msg), &oom);
    out = json_pack("{s:b,s:b,s:b,s:o}", "start", started, "finish", finished, "error", failed,
                    "status", status);
    if (out && finished)
        put(out, "result", row_result(json_object_get(st, "results")), &oom);
    strbuf_release(&progress);
    if (oom) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* What a row says now, in the shape of idbsync_row_state(). */
static json_t *row_state_of(const struct idb_sub_analysis *r)
{
    json_t *out = json_pack("{s:b,s:b,s:b}", "start", r->start != NULL, "finish",
                            r->finish != NULL, "error", r->error != NULL);

    if (out && r->status)
        json_object_set(out, "status", r->status);
    if (out && r->result)
        json_object_set(out, "result", r->result);
    return out;
}

static int flag(const json_t *state, const char *k)
{
    return json_is_true(json_object_get(state, k));
}

/* The state of a row whose Analysis went away before it finished. */
static json_t *cancelled(json_t *want)
{
    json_t *st = json_object_get(want, "status");

    json_object_set_new(want, "error", json_true());
    json_object_set_new(st, "state", json_string("Cancelled"));
    json_object_set_new(st, "error_message", json_string(CANCEL_MESSAGE));
    json_object_del(st, "message");
    return want;
}

/* ---- informer side: Analyses into pending ---- */

static void wake(struct idbsync *s)
{
    uint64_t one = 1;

    if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn(NULL, "imagedb sync: cannot wake the sync thread: %s", strerror(errno));
}

static int has_finalizer(const json_t *obj)
{
    const json_t *f;
    size_t i;

    json_array_foreach(jpath(obj, "metadata", "finalizers"), i, f) {
        if (json_is_string(f) && strcmp(json_string_value(f), IDBSYNC_FINALIZER) == 0)
            return 1;
    }
    return 0;
}

/*
 * Leaves the change an Analysis implies for the sync thread: the row state,
 * and whether to remove the finalizer afterwards (it is being deleted) or
 * forget the row (it is gone).
 */
static void push(struct idbsync *s, const json_t *obj, int gone)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const char *sub = jstr(json_object_get(meta, "labels"), IDBSYNC_LABEL_SUB);
    int deleting = gone || json_object_get(meta, "deletionTimestamp") != NULL;
    int finalize = !gone && deleting && has_finalizer(obj);
    json_t *want, *ch;

    if (!sub || !jstr(meta, "name") || !jstr(meta, "namespace"))
        return;
    want = idbsync_row_state(obj);
    if (want && deleting && !flag(want, "finish") && !flag(want, "error"))
        want = cancelled(want);
    ch = want ? json_pack("{s:s,s:s,s:o,s:b,s:b}", "ns", jstr(meta, "namespace"), "name",
                          jstr(meta, "name"), "want", want, "finalize", finalize, "gone", gone)
              : NULL;
    if (!ch) {
        log_error(NULL, "imagedb sync: out of memory; sub-analysis %s not mirrored", sub);
        return;
    }
    pthread_mutex_lock(&s->lock);
    json_object_set_new(s->pending, sub, ch);
    pthread_mutex_unlock(&s->lock);
    wake(s);
}

static void on_add(void *ud, const json_t *obj)
{
    push(ud, obj, 0);
}

static void on_update(void *ud, const json_t *old, const json_t *cur)
{
    (void)old;
    push(ud, cur, 0);
}

static void on_delete(void *ud, const json_t *obj)
{
    push(ud, obj, 1);
}

/* The cache keeps what the row state and the finalizer need. */
static void prune(json_t *obj, void *ud)
{
    static const char *const keep_top[] = { "metadata", "status", NULL };
    static const char *const keep_meta[] = { "name", "namespace", "labels", "finalizers",
                                             "deletionTimestamp", NULL };
    static const char *const keep_status[] = { "phase", "batches", "conditions", "results",
                                               NULL };
    static const char *const *const keep[] = { keep_top, keep_meta, keep_status };
    json_t *level[] = { obj, json_object_get(obj, "metadata"), json_object_get(obj, "status") };
    const char *key;
    json_t *v;
    void *tmp;
    size_t i;

    (void)ud;
    for (i = 0; i < 3; i++) {
        json_object_foreach_safe(level[i], tmp, key, v) {
            const char *const *k;

            for (k = keep[i]; *k && strcmp(*k, key) != 0; k++)
                ;
            if (!*k)
                json_object_del(level[i], key);
        }
    }
}

/* ---- sync thread: rows ---- */

/*
 * Makes row sub_id say `want`, unless it already does (the last write, or
 * the row as read once when nothing was written in this term). Marks come
 * in order (start before finish), each with the status, so the GUI never
 * sees a finish without a start. Returns 0, or -1 with e to retry.
 */
static int write_row(struct idbsync *s, long long sub_id, json_t *want, struct err *e)
{
    static const struct { const char *flag; enum idb_mark mark; } marks[] = {
        { "start", IDB_MARK_START }, { "finish", IDB_MARK_FINISH }, { "error", IDB_MARK_ERROR },
    };
    const json_t *status = json_object_get(want, "status"), *result;
    struct idb_sub_analysis row;
    char key[24];
    json_t *known;
    size_t i;
    int writes = 0;

    snprintf(key, sizeof(key), "%lld", sub_id);
    known = json_incref(json_object_get(s->known, key));
    if (!known) {
        if (idb_sub_analysis_get(s->db, sub_id, &row, e) < 0) {
            if (e->code != IDB_ERR_NOTFOUND)
                return -1;
            log_warn(NULL, "imagedb sync: sub-analysis %lld is no longer in ImageDB", sub_id);
            json_object_set(s->known, key, want);
            return 0;
        }
        known = row_state_of(&row);
        idb_sub_analysis_release(&row);
        if (!known)
            return err_set(e, ENOMEM, "out of memory");
    }
    if (json_equal(known, want))
        goto done;
    result = json_object_get(want, "result");
    for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (!flag(want, marks[i].flag) || flag(known, marks[i].flag))
            continue;
        if (idb_sub_analysis_update(s->db, sub_id, marks[i].mark, status, result, e) < 0)
            goto fail;
        writes++;
    }
    if (!writes && idb_sub_analysis_update(s->db, sub_id, IDB_MARK_NONE, status, result, e) < 0)
        goto fail;
    atomic_fetch_add(&s->n_writes, 1);
done:
    json_object_set(s->known, key, want);
    json_decref(known);
    return 0;
fail:
    atomic_fetch_add(&s->n_write_errors, 1);
    json_decref(known);
    return -1;
}

/* Removes our finalizer, so that a deletion the row now records can complete. */
static int remove_finalizer(struct idbsync *s, const char *ns, const char *name, struct err *e)
{
    struct kube_res r = KUBE_RES_ANALYSES;
    struct kube_error ke;
    const json_t *f;
    json_t *obj, *patch = NULL, *res;
    char path[64];
    size_t i;
    int rc = 0;

    r.ns = ns;
    r.name = name;
    obj = kube_get(s->c->kc, &r, NULL, &ke);
    if (!obj)
        return kube_is_not_found(&ke) ? 0 : err_set(e, ke.err.code, "%s", ke.err.msg);
    json_array_foreach(jpath(obj, "metadata", "finalizers"), i, f) {
        if (!json_is_string(f) || strcmp(json_string_value(f), IDBSYNC_FINALIZER) != 0)
            continue;
        /* The test keeps a concurrent change of the list from losing someone else's. */
        snprintf(path, sizeof(path), "/metadata/finalizers/%zu", i);
        patch = json_pack("[{s:s,s:s,s:s},{s:s,s:s}]", "op", "test", "path", path, "value",
                          IDBSYNC_FINALIZER, "op", "remove", "path", path);
        break;
    }
    if (patch) {
        res = kube_patch(s->c->kc, &r, KUBE_PATCH_JSON, patch, NULL, &ke);
        if (!res && !kube_is_not_found(&ke))
            rc = err_set(e, ke.err.code, "%s", ke.err.msg);
        json_decref(res);
    }
    json_decref(patch);
    json_decref(obj);
    return rc;
}

/* One change from pending: the row write, then the finalizer. */
static int apply_change(struct idbsync *s, const char *sub, json_t *ch, struct err *e)
{
    const char *ns = jstr(ch, "ns"), *name = jstr(ch, "name");
    json_t *want = json_object_get(ch, "want");
    char akey[320];
    struct log_ctx lc = { akey, NULL, NULL };

    snprintf(akey, sizeof(akey), "%s/%s", ns, name);
    if (write_row(s, strtoll(sub, NULL, 10), want, e) < 0)
        return -1;
    if (flag(ch, "finalize")) {
        if (remove_finalizer(s, ns, name, e) < 0)
            return -1;
        log_info(&lc, "deleted; ImageDB sub-analysis %s records it as %s", sub,
                 flag(want, "finish") ? "finished" : "cancelled");
    }
    if (flag(ch, "gone")) {
        json_object_del(s->known, sub);
        json_object_del(s->created, sub);
    }
    return 0;
}

static void retry_soon(struct idbsync *s)
{
    s->retry_at = monotime_now() + RETRY_S;
}

/* Puts a failed change back, unless a newer one has arrived meanwhile. */
static void requeue(struct idbsync *s, const char *sub, json_t *ch)
{
    pthread_mutex_lock(&s->lock);
    if (!json_object_get(s->pending, sub))
        json_object_set(s->pending, sub, ch);
    pthread_mutex_unlock(&s->lock);
    retry_soon(s);
}

static void process_pending(struct idbsync *s)
{
    json_t *batch = NULL, *fresh, *ch;
    const char *sub;
    int down = 0;

    pthread_mutex_lock(&s->lock);
    if (json_object_size(s->pending) > 0 && (fresh = json_object())) {
        batch = s->pending;
        s->pending = fresh;
    }
    pthread_mutex_unlock(&s->lock);
    if (!batch)
        return;
    json_object_foreach(batch, sub, ch) {
        struct err e;

        err_clear(&e);
        /* With the database away, the rest waits for the retry instead of timing out too. */
        if (!down && apply_change(s, sub, ch, &e) == 0)
            continue;
        if (!down)
            log_warn(NULL, "imagedb sync: sub-analysis %s: %s (will retry)", sub, e.msg);
        down = down || e.code == IDB_ERR_CONNECT;
        requeue(s, sub, ch);
    }
    json_decref(batch);
}

static int pending_for(struct idbsync *s, const char *sub)
{
    int yes;

    pthread_mutex_lock(&s->lock);
    yes = json_object_get(s->pending, sub) != NULL;
    pthread_mutex_unlock(&s->lock);
    return yes;
}

/* ---- sync thread: new rows ---- */

static void reject(struct idbsync *s, const struct idb_sub_analysis *r, const char *why)
{
    json_t *want = json_pack("{s:b,s:b,s:b,s:o}", "start", 0, "finish", 0, "error", 1, "status",
                             idb_status_new("Rejected", NULL, why));
    struct err e;

    err_clear(&e);
    if (!want || write_row(s, r->sub_id, want, &e) < 0) {
        log_warn(NULL, "imagedb sync: sub-analysis %lld: %s (will retry)", r->sub_id,
                 want ? e.msg : "out of memory");
        s->rescan = 1;
        retry_soon(s);
    } else {
        atomic_fetch_add(&s->n_rejected, 1);
        log_warn(NULL, "imagedb sync: refused sub-analysis %lld of analysis %lld: %s", r->sub_id,
                 r->analysis_id, why);
    }
    json_decref(want);
}

/*
 * The Analysis names of the row's dependencies, looked up among the rows
 * read with it, else in ImageDB. NULL with e: IDBSYNC_E_ROW when one is
 * missing or cannot run, else a database error.
 */
static json_t *dependencies(struct idbsync *s, const struct idb_sub_analysis *r,
                            const struct idb_sub_analysis *rows, size_t nrows, struct err *e)
{
    json_t *names = json_array();
    size_t i, j;

    for (i = 0; names && i < r->ndepends; i++) {
        const struct idb_sub_analysis *d = NULL;
        struct idb_sub_analysis fetched = { 0 };
        const char *type;
        char name[64];
        int ok = 1;

        for (j = 0; j < nrows && !d; j++)
            d = rows[j].sub_id == r->depends_on[i] ? &rows[j] : NULL;
        if (r->depends_on[i] == r->sub_id) {
            err_set(e, IDBSYNC_E_ROW, "sub-analysis %lld depends on itself", r->sub_id);
            ok = 0;
        } else if (!d && idb_sub_analysis_get(s->db, r->depends_on[i], &fetched, e) < 0) {
            if (e->code == IDB_ERR_NOTFOUND)
                err_set(e, IDBSYNC_E_ROW, "depends on sub-analysis %lld, which does not exist",
                        r->depends_on[i]);
            ok = 0;
        }
        d = d ? d : &fetched;
        type = ok ? jstr(d->meta, "type") : NULL;
        if (ok && (!type || strcmp(type, "cellprofiler") != 0)) {
            err_set(e, IDBSYNC_E_ROW, "depends on sub-analysis %lld of type '%s', which "
                    "plateop does not run", d->sub_id, type ? type : "(none)");
            ok = 0;
        } else if (ok && d->error) {
            err_set(e, IDBSYNC_E_ROW, "depends on sub-analysis %lld, which failed: %s",
                    d->sub_id, jstr(d->status, "error_message") ? jstr(d->status, "error_message")
                                                                : "(no message)");
            ok = 0;
        }
        if (ok) {
            idbsync_name(d->analysis_id, d->sub_id, name, sizeof(name));
            if (json_array_append_new(names, json_string(name)) < 0)
                ok = !err_set(e, ENOMEM, "out of memory");
        }
        idb_sub_analysis_release(&fetched);
        if (!ok) {
            json_decref(names);
            return NULL;
        }
    }
    if (!names)
        err_set(e, ENOMEM, "out of memory");
    return names;
}

/*
 * A row whose Analysis exists but has started while the row still looks new
 * lost a write (or was reset by hand): mirror the Analysis again.
 */
static void remirror(struct idbsync *s, const char *sub, json_t *obj)
{
    json_t *want = idbsync_row_state(obj);

    if (want && flag(want, "start")) {
        json_object_del(s->known, sub);
        push(s, obj, 0);
    }
    json_decref(want);
}

/* Creates the Analysis of one new row, or refuses the row. */
static void adopt_row(struct idbsync *s, const struct idb_sub_analysis *r,
                      const struct idb_sub_analysis *rows, size_t nrows)
{
    struct idbsync_row in = { r, s->ns, s->c->cfg->idb_worker_images, NULL };
    struct kube_res res = KUBE_RES_ANALYSES;
    struct kube_error ke;
    struct err e;
    char sub[24], name[64], akey[320];
    struct log_ctx lc = { akey, NULL, NULL };
    json_t *obj, *made, *deps;

    snprintf(sub, sizeof(sub), "%lld", r->sub_id);
    idbsync_name(r->analysis_id, r->sub_id, name, sizeof(name));
    snprintf(akey, sizeof(akey), "%s/%s", s->ns, name);
    /* A change of its Analysis (its deletion, perhaps) is about to reach the row. */
    if (pending_for(s, sub))
        return;
    obj = informer_get(s->inf, s->ns, name);
    if (obj) {
        json_object_set_new(s->created, sub, json_string(name));
        remirror(s, sub, obj);
        json_decref(obj);
        return;
    }
    if (json_object_get(s->created, sub))
        return;     /* created; the cache has not seen it yet */
    err_clear(&e);
    in.depends = deps = dependencies(s, r, rows, nrows, &e);
    obj = deps ? idbsync_analysis_new(&in, &e) : NULL;
    json_decref(deps);
    if (!obj) {
        if (e.code == IDBSYNC_E_ROW) {
            reject(s, r, e.msg);
        } else {
            log_warn(&lc, "imagedb sync: sub-analysis %s: %s (will retry)", sub, e.msg);
            s->rescan = 1;
            retry_soon(s);
        }
        return;
    }
    res.ns = s->ns;
    made = kube_create(s->c->kc, &res, obj, NULL, &ke);
    json_decref(obj);
    if (made || kube_is_already_exists(&ke)) {
        json_decref(made);
        json_object_set_new(s->created, sub, json_string(name));
        atomic_fetch_add(&s->n_created, 1);
        log_info(&lc, "created for ImageDB sub-analysis %lld of analysis %lld (%s)", r->sub_id,
                 r->analysis_id, r->pipeline_name ? r->pipeline_name : "no pipeline name");
        return;
    }
    if (kube_is_invalid(&ke)) {
        reject(s, r, ke.message[0] ? ke.message : ke.err.msg);
        return;
    }
    log_warn(&lc, "imagedb sync: create: %s (will retry)", ke.err.msg);
    s->rescan = 1;
    retry_soon(s);
}

static int is_new(const struct idb_sub_analysis *r)
{
    return !r->start && !r->finish && !r->error;
}

/* Reads every new row, in priority order, and adopts each. */
static void rescan(struct idbsync *s)
{
    struct idb_sub_analysis *rows = NULL;
    size_t n = 0, i;
    struct err e;

    err_clear(&e);
    s->rescan = 0;
    json_object_clear(s->touched);
    atomic_fetch_add(&s->n_rescans, 1);
    if (idb_sub_analyses_new(s->db, &rows, &n, &e) < 0) {
        log_warn(NULL, "imagedb sync: read new sub-analyses: %s (will retry)", e.msg);
        s->rescan = 1;
        retry_soon(s);
        return;
    }
    for (i = 0; i < n && atomic_load(&s->c->leading); i++)
        adopt_row(s, &rows[i], rows, n);
    idb_sub_analyses_free(rows, n);
}

/* Re-reads the rows UPDATE notifications named: one may have been reset to new. */
static void read_touched(struct idbsync *s)
{
    json_t *ids = s->touched;
    const char *sub;
    json_t *v;

    s->touched = json_object();
    if (!s->touched) {
        s->touched = ids;
        s->rescan = 1;
        return;
    }
    json_object_foreach(ids, sub, v) {
        struct idb_sub_analysis r;
        struct err e;

        err_clear(&e);
        if (idb_sub_analysis_get(s->db, strtoll(sub, NULL, 10), &r, &e) < 0) {
            if (e.code != IDB_ERR_NOTFOUND) {
                s->rescan = 1;
                retry_soon(s);
                break;
            }
            continue;
        }
        if (is_new(&r))
            adopt_row(s, &r, &r, 1);
        idb_sub_analysis_release(&r);
    }
    json_decref(ids);
}

/* ---- sync thread: waking Analyses of plates being imaged ---- */

static int wake_one(const json_t *obj, void *ud)
{
    struct idbsync *s = ud;
    const json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
    const char *phase = jstr(json_object_get(obj, "status"), "phase");
    int blocked = phase && strcmp(phase, "Blocked") == 0;
    int early = json_is_true(json_object_get(spec, "startBeforeAcquisitionFinished"));
    char acq[24], key[320];

    if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
        return 0;
    snprintf(acq, sizeof(acq), "%lld", jint(spec, "plateAcquisition"));
    if ((s->wake_blocked && blocked) || ((blocked || early) && json_object_get(s->acqs, acq))) {
        snprintf(key, sizeof(key), "%s/%s", jstr(meta, "namespace"), jstr(meta, "name"));
        ctl_enqueue(s->c, key);
        s->woken++;
    }
    return 0;
}

static void wake_analyses(struct idbsync *s)
{
    if (!s->wake_blocked && json_object_size(s->acqs) == 0)
        return;
    s->woken = 0;
    informer_each(s->c->analyses, NULL, NULL, wake_one, s);
    if (s->woken)
        log_debug(NULL, "imagedb sync: woke %d Analyses of plates being imaged", s->woken);
    json_object_clear(s->acqs);
    s->wake_blocked = 0;
}

/* ---- sync thread: the loop ---- */

static void set_key(json_t *map, long long id)
{
    char key[24];

    snprintf(key, sizeof(key), "%lld", id);
    json_object_set_new(map, key, json_true());
}

static void on_event(const struct idb_event *ev, void *arg)
{
    struct idbsync *s = arg;

    if (ev->kind == IDB_EVENT_RESYNC) {
        log_debug(NULL, "imagedb sync: rescan (%s)", ev->reason);
        s->rescan = 1;
        s->wake_blocked = 1;
        return;
    }
    atomic_fetch_add(&s->n_notifications, 1);
    if (!ev->table) {
        log_debug(NULL, "imagedb sync: notification without a table: %s", ev->payload);
    } else if (!strcmp(ev->table, "image_sub_analyses")) {
        if (ev->op && !strcmp(ev->op, "INSERT"))
            s->rescan = 1;
        else if (ev->id > 0)
            set_key(s->touched, ev->id);
    } else if (!strcmp(ev->table, "images")) {
        set_key(s->acqs, ev->plate_acquisition_id);
    } else if (!strcmp(ev->table, "plate_acquisition")) {
        set_key(s->acqs, ev->plate_acquisition_id ? ev->plate_acquisition_id : ev->id);
    }
    /*
     * image_analyses: a parent's change never makes a sub-analysis new (its
     * own INSERT or UPDATE says so), and most are echoes of our roll-ups.
     */
}

/* One round of work after the listener has been serviced. */
static void step(struct idbsync *s)
{
    int leading = atomic_load(&s->c->leading);

    if (leading && !s->leading) {
        log_info(NULL, "imagedb sync: leading: taking new ImageDB analyses from namespace %s",
                 s->ns);
        /* Another leader may have written rows meanwhile: read each before writing it. */
        json_object_clear(s->known);
        s->rescan = 1;
        s->wake_blocked = 1;
    }
    s->leading = leading;
    if (!leading) {
        json_object_clear(s->acqs);
        json_object_clear(s->touched);
        s->wake_blocked = 0;
        return;
    }
    wake_analyses(s);
    /* After a failure, wait out the retry delay rather than retry on every tick. */
    if (s->retry_at > monotime_now())
        return;
    s->retry_at = 0;
    process_pending(s);
    if (s->rescan)
        rescan(s);
    else if (json_object_size(s->touched))
        read_touched(s);
}

static int poll_timeout(const struct idbsync *s)
{
    int t = idb_listener_timeout_ms(s->listener);

    if (s->retry_at > 0) {
        double left = (s->retry_at - monotime_now()) * 1000;

        if (left < t)
            t = left > 0 ? (int)left : 0;
    }
    return t > TICK_MS ? TICK_MS : t;
}

static void *sync_main(void *arg)
{
    struct idbsync *s = arg;
    uint64_t count;

    while (!atomic_load(&s->stop)) {
        struct pollfd p[2] = { { s->wake_fd, POLLIN, 0 },
                               { idb_listener_fd(s->listener), POLLIN, 0 } };
        struct err e;

        if (poll(p, p[1].fd >= 0 ? 2 : 1, poll_timeout(s)) < 0 && errno != EINTR)
            log_warn(NULL, "imagedb sync: poll: %s", strerror(errno));
        if (read(s->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
            log_warn(NULL, "imagedb sync: read wake: %s", strerror(errno));
        if (atomic_load(&s->stop))
            break;
        err_clear(&e);
        if (idb_listener_service(s->listener, on_event, s, &e) < 0)
            log_error(NULL, "imagedb sync: listener: %s", e.msg);
        step(s);
    }
    return NULL;
}

/* ---- start and stop ---- */

/* imagedb.namespace, else the first namespace served, else "default"; it must be served. */
static int pick_namespace(struct idbsync *s, const struct ctl_config *cfg, struct err *e)
{
    const char *served = cfg->namespaces && *cfg->namespaces ? cfg->namespaces : NULL;
    struct strbuf list = STRBUF_INIT, want = STRBUF_INIT;
    int rc = 0;

    if (cfg->idb_namespace)
        s->ns = strdup(cfg->idb_namespace);
    else if (served)
        s->ns = strndup(served, strcspn(served, ","));
    else
        s->ns = strdup("default");
    if (!s->ns)
        return err_set(e, ENOMEM, "out of memory");
    if (served) {
        strbuf_addf(&list, ",%s,", served);
        strbuf_addf(&want, ",%s,", s->ns);
        if (!strstr(list.buf, want.buf))
            rc = err_set(e, EINVAL, "imagedb.namespace %s is not one of the namespaces served "
                         "(--namespace %s): its Analyses would never run", s->ns, served);
    }
    strbuf_release(&list);
    strbuf_release(&want);
    return rc;
}

static int migrate(struct idbsync *s, struct err *e)
{
    struct strbuf report = STRBUF_INIT;
    const char *line;
    int added = 0, rc;

    rc = idb_notify_migrate(s->db, &report, &added, e);
    line = report.buf;
    while (rc == 0 && *line) {
        size_t n = strcspn(line, "\n");

        log_info(NULL, "imagedb: notification migration: %.*s", (int)n, line);
        line += n + (line[n] == '\n');
    }
    strbuf_release(&report);
    return rc;
}

static struct informer *start_informer(struct idbsync *s, struct err *e)
{
    struct informer_opts o = { 0 };
    struct kube_error ke;
    struct informer *inf;

    o.res = (struct kube_res)KUBE_RES_ANALYSES;
    o.res.ns = s->ns;
    o.label_selector = IDBSYNC_LABEL_SUB;
    o.transform = prune;
    o.h.on_add = on_add;
    o.h.on_update = on_update;
    o.h.on_delete = on_delete;
    o.ud = s;
    inf = informer_new(s->c->kc, &o, &ke);
    if (!inf || informer_start(inf, &ke) < 0) {
        informer_free(inf);
        err_set(e, ke.err.code, "watch the Analyses of ImageDB rows: %s", ke.err.msg);
        return NULL;
    }
    if (informer_wait_synced(inf, 60000) < 0) {
        informer_free(inf);
        err_set(e, ETIMEDOUT, "the Analyses of ImageDB rows did not sync within 60 s");
        return NULL;
    }
    return inf;
}

struct idbsync *idbsync_start(struct ctl *c, struct err *e)
{
    struct idbsync *s = calloc(1, sizeof(*s));

    if (!s) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    s->c = c;
    s->wake_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    s->pending = json_object();
    s->known = json_object();
    s->created = json_object();
    s->acqs = json_object();
    s->touched = json_object();
    if (!s->pending || !s->known || !s->created || !s->acqs || !s->touched) {
        err_set(e, ENOMEM, "out of memory");
        goto fail;
    }
    if (pick_namespace(s, c->cfg, e) < 0)
        goto fail;
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0) {
        err_errno(e, errno, "eventfd");
        goto fail;
    }
    s->dbcfg = c->db_cfg;
    s->dbcfg.application_name = "plateop-imagedb-sync";
    s->dbcfg.reconnect_budget_ms = RECONNECT_BUDGET_MS;
    if (!(s->db = idb_open(&s->dbcfg, e)) || migrate(s, e) < 0)
        goto fail;
    s->listener = idb_listener_open(&s->dbcfg, c->cfg->idb_poll_s * 1000, e);
    if (!s->listener || !(s->inf = start_informer(s, e)))
        goto fail;
    if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
        err_set(e, EAGAIN, "cannot start the ImageDB sync thread");
        goto fail;
    }
    s->thread_started = 1;
    log_info(NULL, "imagedb sync: listening on %s; Analyses of new rows go to namespace %s",
             idb_target(s->db), s->ns);
    return s;
fail:
    idbsync_stop(s);
    return NULL;
}

void idbsync_stop(struct idbsync *s)
{
    if (!s)
        return;
    /* The thread first (it reads the informer's cache); handlers only touch pending. */
    atomic_store(&s->stop, 1);
    if (s->thread_started) {
        wake(s);
        pthread_join(s->thread, NULL);
    }
    informer_free(s->inf);
    idb_listener_close(s->listener);
    idb_close(s->db);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    json_decref(s->pending);
    json_decref(s->known);
    json_decref(s->created);
    json_decref(s->acqs);
    json_decref(s->touched);
    pthread_mutex_destroy(&s->lock);
    free(s->ns);
    free(s);
}

void idbsync_counts(struct idbsync *s, struct idbsync_counts *out)
{
    out->notifications = atomic_load(&s->n_notifications);
    out->rescans = atomic_load(&s->n_rescans);
    out->created = atomic_load(&s->n_created);
    out->rejected = atomic_load(&s->n_rejected);
    out->row_writes = atomic_load(&s->n_writes);
    out->write_errors = atomic_load(&s->n_write_errors);
}
