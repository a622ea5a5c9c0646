/*
 * planning: plans an Analysis's plate from ImageDB (lib/acqplan) and writes
 * one ConfigMap per batch as batches come out, so memory holds one batch and
 * a few dozen requests in flight, not the plate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acqplan.h"
#include "analysis.h"
#include "ctl.h"
#include "filter.h"
#include "loaddata.h"
#include "log.h"
#include "objects.h"
#include "plan.h"
#include "strbuf.h"

/* ConfigMap creates in flight at once. */
#define CREATE_CHUNK 64

struct plan_ctx {
    struct ctl *c;
    const struct ana *a;
    struct plan *plan;
    struct kube_batch *batch;
    struct loaddata_opts ld;
    long created;
};

/* Sends the queued creates; AlreadyExists is success (a rerun or a peer). */
static int flush_creates(struct plan_ctx *p, struct err *e)
{
    struct kube_error ke;
    int i, n;

    if (!p->batch || kube_batch_count(p->batch) == 0)
        return 0;
    kube_batch_run(p->batch);
    n = kube_batch_count(p->batch);
    for (i = 0; i < n; i++) {
        json_t *res = kube_batch_result(p->batch, i, &ke);

        if (res) {
            json_decref(res);
            p->created++;
        } else if (!kube_is_already_exists(&ke)) {
            err_set(e, ke.err.code, "create ConfigMap: %s", ke.err.msg);
            return -1;
        }
    }
    atomic_fetch_add(&p->c->metrics.configmaps_created, n);
    kube_batch_free(p->batch);
    p->batch = NULL;
    return 0;
}

static int on_batch(const struct plan_batch *b, void *arg, struct err *e)
{
    struct plan_ctx *p = arg;
    struct strbuf csv = STRBUF_INIT, wells = STRBUF_INIT;
    struct kube_request req = { .verb = KUBE_POST, .res = KUBE_RES_CONFIGMAPS };
    struct kube_error ke;
    struct obj_batch ob;
    json_t *cm = NULL;
    size_t i;
    int rc = -1;

    for (i = 0; i < b->nsets; i++) {
        if (i == 0 || strcmp(b->sets[i].well, b->sets[i - 1].well) != 0) {
            if (wells.len)
                strbuf_addch(&wells, ',');
            strbuf_adds(&wells, b->sets[i].well);
        }
    }
    if (loaddata_render(b, &p->ld, &csv, e) < 0)
        goto out;
    ob = (struct obj_batch){ .id = b->id, .wells = wells.buf, .hash = b->hash,
                             .index = (long)b->index, .sets = (long)b->nsets };
    cm = obj_batch_configmap(p->a, &ob, csv.buf, csv.len);
    if (!cm) {
        err_set(e, ENOMEM, "out of memory building ConfigMap of batch %s", b->id);
        goto out;
    }
    if (!p->batch && !(p->batch = kube_batch_new(p->c->kc, CREATE_CHUNK, &ke))) {
        err_set(e, ENOMEM, "%s", ke.err.msg);
        goto out;
    }
    req.res.ns = p->a->ns;
    req.body = cm;
    if (kube_batch_add(p->batch, &req, &ke) < 0) {
        err_set(e, ke.err.code, "%s", ke.err.msg);
        goto out;
    }
    rc = kube_batch_count(p->batch) >= CREATE_CHUNK ? flush_creates(p, e) : 0;
out:
    json_decref(cm);
    strbuf_release(&csv);
    strbuf_release(&wells);
    return rc;
}

/* The dependency's results directory, for illumination-correction columns. */
static int icf_dir(struct ctl *c, const struct ana *a, struct strbuf *out, struct err *e)
{
    const char *dep;
    json_t *obj;
    const char *path;

    if (!a->use_icf)
        return 0;
    dep = json_string_value(json_array_get(a->depends_on, 0));
    if (!dep)
        return err_set(e, CTL_E_USER,
                       "spec.useIlluminationCorrection needs an illumination-correction "
                       "Analysis in spec.dependsOn");
    obj = informer_get(c->analyses, a->ns, dep);
    path = json_string_value(json_object_get(
        json_object_get(json_object_get(obj, "status"), "results"), "path"));
    if (!path) {
        json_decref(obj);
        return err_set(e, CTL_E_USER, "dependency %s has no results yet", dep);
    }
    strbuf_adds(out, path);
    json_decref(obj);
    return 0;
}

/* Errors the user must fix, as opposed to trouble that retrying may cure. */
static int user_error(int code)
{
    return code == IDB_ERR_NOTFOUND || code == IDB_ERR_DATA || code == PLAN_ERR_INPUT ||
           code == ACQPLAN_ERR_NO_CHANNEL_MAP || code == ACQPLAN_ERR_NO_IMAGES ||
           code == ACQPLAN_ERR_NO_SETS || code == CTL_E_USER;
}

int ctl_plan(struct ctl *c, const struct ana *a, json_t **summary, char **incomplete,
             struct err *e)
{
    struct plan_ctx p = { .c = c, .a = a };
    struct acqplan *ap = NULL;
    const struct idb_acquisition *acq;
    struct strbuf inc = STRBUF_INIT, icf = STRBUF_INIT, params = STRBUF_INIT;
    const struct plan_summary *s;
    struct filter f;
    struct plan_opts o = { 0 };
    char *spec = NULL;
    size_t i;
    int rc = -1, locked = 0;

    *summary = NULL;
    *incomplete = NULL;
    filter_init(&f);
    if (icf_dir(c, a, &icf, e) < 0)
        goto out;
    p.ld.icf_dir = icf.len ? icf.buf : NULL;
    if (filter_parse(&f, a->wells, a->sites, a->z, a->channels, NULL, e) < 0) {
        e->code = CTL_E_USER;
        err_prefix(e, "spec.filters");
        goto out;
    }

    pthread_mutex_lock(&c->db_lock);
    locked = 1;
    if (!c->db && !(c->db = idb_open(&c->db_cfg, e)))
        goto out;
    if (idb_ensure(c->db, e) < 0 || !(ap = acqplan_open(c->db, a->plate_acq, e)))
        goto out;
    acq = acqplan_acquisition(ap);
    if (!acq->finished && !a->start_early) {
        err_set(e, 0, "plate acquisition %lld (%s) is still being imaged", a->plate_acq,
                acq->plate_barcode);
        rc = 1;
        goto out;
    }
    /* Every input of a batch is in its hash: the spec and where the ICF files are. */
    spec = json_dumps(json_object_get(a->obj, "spec"), JSON_SORT_KEYS | JSON_COMPACT);
    strbuf_addf(&params, "%s\n%s", spec ? spec : "", icf.buf);
    o.mode = a->by == ANA_BY_WELL ? PLAN_BY_WELLS : PLAN_BY_SETS;
    o.batch_size = a->by == ANA_BY_PLATE ? 0 : a->batch_size;
    o.strict = a->strict;
    o.filter = &f;
    o.pipeline = a->pipeline;
    o.pipeline_len = strlen(a->pipeline);
    o.params = params.buf;
    o.params_len = params.len;
    /* Strict plans may fail in their last well: check before creating anything. */
    if ((a->strict && acqplan_run(ap, &o, NULL, NULL, e) < 0) ||
        acqplan_run(ap, &o, on_batch, &p, e) < 0 || flush_creates(&p, e) < 0)
        goto out;
    s = acqplan_summary(ap);
    for (i = 0; i < s->nincomplete && i < 5; i++) {
        if (inc.len)
            strbuf_adds(&inc, "; ");
        plan_incomplete_describe(&s->incomplete[i], &inc);
    }
    if (s->nincomplete > 5)
        strbuf_addf(&inc, "; and %zu more", s->nincomplete - 5 + s->incomplete_dropped);
    *summary = json_pack("{s:I,s:I,s:I,s:I}", "imageSets", (json_int_t)s->image_sets,
                         "incompleteImageSets", (json_int_t)s->incomplete_sets, "wells",
                         (json_int_t)s->wells, "batches", (json_int_t)s->batches);
    if (inc.len)
        *incomplete = strbuf_detach(&inc, NULL);
    rc = 0;
out:
    if (locked)
        pthread_mutex_unlock(&c->db_lock);
    if (p.batch)
        kube_batch_free(p.batch);
    acqplan_free(ap);
    filter_release(&f);
    free(spec);
    strbuf_release(&inc);
    strbuf_release(&icf);
    strbuf_release(&params);
    /* A user's error is shown on the Analysis itself; others go to logs and need naming. */
    if (rc < 0 && user_error(e->code))
        e->code = CTL_E_USER;
    else if (rc < 0)
        err_prefix(e, "plan %s/%s", a->ns, a->name);
    return rc;
}
