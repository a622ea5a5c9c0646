/*
 * planning: plans an Analysis's plate from ImageDB (lib/acqplan) and writes
 * one ConfigMap per batch as batches come out, so memory holds one batch and
 * a few dozen requests in flight, not the plate.
 *
 * A plan may be made again: while the plate is still being imaged (each
 * plan emits the batches of the wells complete so far) or to recreate a
 * ConfigMap removed by hand. Batches the cache already holds are not sent
 * again; one whose inputs changed since keeps what it was planned with.
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

/* The API server refuses a ConfigMap whose data (keys and values) exceeds 1 MiB. */
#define CONFIGMAP_DATA_MAX (1 << 20)

struct plan_ctx {
    struct ctl *c;
    const struct ana *a;
    struct plan *plan;
    struct kube_batch *batch;
    struct loaddata_opts ld;
    long prev_total;        /* batches of the plan recorded in the status before */
    long kept_sets;         /* image sets the kept batches have minus what the plan put in them */
    json_t *planned;        /* cached batch ConfigMaps: index -> batch id, read when needed */
};

/* Sends the queued creates; AlreadyExists is success (a rerun or a peer). */
static int flush_creates(struct plan_ctx *p, struct err *e)
{
    int rc;

    if (!p->batch)
        return 0;
    rc = ctl_run_requests(p->batch, "create ConfigMap", NULL, e);
    atomic_fetch_add(&p->c->metrics.configmaps_created, kube_batch_count(p->batch));
    kube_batch_free(p->batch);
    p->batch = NULL;
    return rc;
}

/* The batch ids of the Analysis's cached ConfigMaps, by their plan position. */
static json_t *planned_ids(const struct plan_ctx *p)
{
    char label[OBJ_NAME_MAX + 1];
    json_t *all, *out = json_object(), *cm;
    size_t i;

    obj_analysis_label(p->a->name, label);
    all = informer_list(p->c->configmaps, OBJ_LABEL_ANALYSIS, label);
    json_array_foreach(all, i, cm) {
        const char *ns = json_string_value(
            json_object_get(json_object_get(cm, "metadata"), "namespace"));
        const char *idx = obj_annotation(cm, OBJ_ANN_INDEX);
        const char *id = obj_label(cm, OBJ_LABEL_BATCH);

        if (out && ns && idx && id && strcmp(ns, p->a->ns) == 0)
            json_object_set_new(out, idx, json_string(id));
    }
    json_decref(all);
    return out;
}

/*
 * Whether the batch is there already. A batch the cache holds is not sent
 * again; if its inputs changed since it was planned (images arrived for
 * wells already planned), it keeps the inputs it has, which may be running
 * already, and a Warning says the new images are not in the analysis.
 * Returns 1 when the batch is there, 0 when it is to be created, or -1 with
 * e when it would take the place of a different batch planned before: the
 * late images moved the batch boundaries, and the wells of the two would
 * overlap.
 */
static int known_batch(struct plan_ctx *p, const struct plan_batch *b, struct err *e)
{
    char name[OBJ_NAME_MAX + 1], idx[24], key[300];
    struct log_ctx lc = { key, b->id, b->first_well };
    const char *hash, *id;
    json_t *cm;

    obj_name(p->a->name, b->id, name);
    cm = informer_get(p->c->configmaps, p->a->ns, name);
    if (cm) {
        hash = obj_annotation(cm, OBJ_ANN_HASH);
        if (hash && strcmp(hash, b->hash) != 0) {
            const char *sets = obj_annotation(cm, OBJ_ANN_SETS);
            struct kube_event_ref ref = { "plateop.io/v1alpha1", "Analysis", p->a->ns,
                                          p->a->name, p->a->uid };

            ana_key(p->a, key, sizeof(key));
            log_warn(&lc, "the inputs of wells %s-%s changed after the batch was planned: the "
                     "change is not in the analysis", b->first_well, b->last_well);
            if (p->c->events)
                kube_event_record(p->c->events, &ref, KUBE_EVENT_WARNING, "ImagesNotInAnalysis",
                                  "the inputs of batch %s (wells %s-%s) changed after it was "
                                  "planned (images arrived late, or the spec changed): it keeps "
                                  "the inputs it was planned with",
                                  b->id, b->first_well, b->last_well);
            if (sets)
                p->kept_sets += strtol(sets, NULL, 10) - (long)b->nsets;
        }
        json_decref(cm);
        return 1;
    }
    if ((long)b->index >= p->prev_total)
        return 0;
    if (!p->planned && !(p->planned = planned_ids(p)))
        return err_set(e, ENOMEM, "out of memory");
    snprintf(idx, sizeof(idx), "%zu", b->index);
    id = json_string_value(json_object_get(p->planned, idx));
    if (id && strcmp(id, b->id) != 0)
        return err_set(e, CTL_E_USER,
                       "the batch boundaries moved (images arrived for wells already "
                       "planned, or spec.batching changed): batch %s (wells %s-%s) would "
                       "replace batch %s, planned before; re-create the Analysis to analyse "
                       "the plate as it is now",
                       b->id, b->first_well, b->last_well, id);
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
    int rc;

    if ((rc = known_batch(p, b, e)) != 0)
        return rc < 0 ? -1 : 0;
    rc = -1;
    for (i = 0; i < b->nsets; i++) {
        if (i == 0 || strcmp(b->sets[i].well, b->sets[i - 1].well) != 0) {
            if (wells.len)
                strbuf_addch(&wells, ',');
            strbuf_adds(&wells, b->sets[i].well);
        }
    }
    if (loaddata_render(b, &p->ld, &csv, e) < 0)
        goto out;
    if (csv.len + strlen(OBJ_CSV_KEY) > CONFIGMAP_DATA_MAX) {
        err_set(e, CTL_E_USER,
                "batch %s (wells %s-%s, %zu image sets): its LoadData CSV is %zu bytes, more "
                "than a ConfigMap holds (%d bytes); use smaller batches (spec.batching)",
                b->id, b->first_well, b->last_well, b->nsets, csv.len, CONFIGMAP_DATA_MAX);
        goto out;
    }
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
    const json_t *plan = json_object_get(a->status, "plan");
    struct acqplan *ap = NULL;
    const struct idb_acquisition *acq;
    struct strbuf inc = STRBUF_INIT, icf = STRBUF_INIT, params = STRBUF_INIT;
    const struct plan_summary *s;
    struct filter f;
    struct plan_opts o = { 0 };
    char *spec = NULL;
    size_t i;
    int rc = -1, locked = 0, partial;

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
    partial = !acq->finished;
    if (partial && !a->start_early) {
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
    o.partial = partial;
    /*
     * Before creating anything, a counting pass: strict plans may fail in
     * their last well, and a well filter is checked against the plate
     * format the images imply (known only once the plate is imaged).
     */
    if (!partial && (a->strict || a->wells)) {
        if (acqplan_run(ap, &o, NULL, NULL, e) < 0)
            goto out;
        if (a->wells && plan_wells_check(acqplan_summary(ap), a->wells, e) < 0) {
            e->code = CTL_E_USER;
            err_prefix(e, "spec.filters");
            goto out;
        }
        o.plate = plan_plate(acqplan_summary(ap));
    }
    p.prev_total = (long)json_integer_value(json_object_get(plan, "batches"));
    if (acqplan_run(ap, &o, on_batch, &p, e) < 0 || flush_creates(&p, e) < 0)
        goto out;
    s = acqplan_summary(ap);
    for (i = 0; i < s->nincomplete && i < 5; i++) {
        if (inc.len)
            strbuf_adds(&inc, "; ");
        plan_incomplete_describe(&s->incomplete[i], &inc);
    }
    if (s->nincomplete > 5)
        strbuf_addf(&inc, "; and %zu more", s->nincomplete - 5 + s->incomplete_dropped);
    /* The image sets that run: a batch kept from before counts as it was planned. */
    *summary = json_pack("{s:I,s:I,s:I,s:I,s:b}", "imageSets",
                         (json_int_t)s->image_sets + p.kept_sets,
                         "incompleteImageSets", (json_int_t)s->incomplete_sets, "wells",
                         (json_int_t)s->wells, "batches", (json_int_t)s->batches, "final",
                         !partial);
    if (inc.len)
        *incomplete = strbuf_detach(&inc, NULL);
    rc = 0;
out:
    if (locked)
        pthread_mutex_unlock(&c->db_lock);
    if (p.batch)
        kube_batch_free(p.batch);
    acqplan_free(ap);
    json_decref(p.planned);
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
