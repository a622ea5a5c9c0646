/* acqplan: plan a plate acquisition read from ImageDB; see acqplan.h. */
#include "acqplan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct acqplan {
    struct idb *db;
    struct idb_acquisition acq;
    struct idb_channel *channels;
    size_t nchannels;
    struct plan *plan;      /* of the last run, kept for its summary */
};

struct acqplan *acqplan_open(struct idb *db, long long acq_id, struct err *e)
{
    struct acqplan *ap = calloc(1, sizeof(*ap));

    if (!ap) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    ap->db = db;
    if (idb_acquisition_get(db, acq_id, &ap->acq, e) < 0)
        goto fail;
    if (!ap->acq.has_channel_map) {
        err_set(e, ACQPLAN_ERR_NO_CHANNEL_MAP,
                "plate acquisition %lld (%s) has no channel map (channel_map_id is NULL)",
                acq_id, ap->acq.plate_barcode);
        goto fail;
    }
    if (idb_channel_map_get(db, ap->acq.channel_map_id, &ap->channels, &ap->nchannels, e) < 0) {
        err_prefix(e, "plate acquisition %lld (%s)", acq_id, ap->acq.plate_barcode);
        goto fail;
    }
    return ap;
fail:
    acqplan_free(ap);
    return NULL;
}

const struct idb_acquisition *acqplan_acquisition(const struct acqplan *ap)
{
    return &ap->acq;
}

const struct idb_channel *acqplan_channels(const struct acqplan *ap, size_t *n)
{
    *n = ap->nchannels;
    return ap->channels;
}

const struct plan_summary *acqplan_summary(const struct acqplan *ap)
{
    return ap->plan ? plan_summary(ap->plan) : NULL;
}

static int feed(const struct idb_image *img, void *arg, struct err *e)
{
    struct plan_image pi = { img->timepoint, img->well, img->site, img->z, img->channel,
                             img->path };

    if (plan_add(arg, &pi, e) < 0)
        return err_prefix(e, "image %lld", img->id);
    return 0;
}

int acqplan_run(struct acqplan *ap, const struct plan_opts *opts, plan_batch_fn cb, void *arg,
                struct err *e)
{
    struct plan_opts o = *opts;
    struct plan_channel *map;
    const struct plan_summary *s;
    size_t i;
    int rc = -1;

    plan_free(ap->plan);
    ap->plan = NULL;
    map = calloc(ap->nchannels, sizeof(*map));
    if (!map)
        return err_set(e, ENOMEM, "out of memory");
    for (i = 0; i < ap->nchannels; i++) {
        map[i].channel = ap->channels[i].channel;
        map[i].dye = ap->channels[i].dye;
    }
    o.plate_barcode = ap->acq.plate_barcode;
    o.acq_id = ap->acq.id;
    ap->plan = plan_new(&o, map, ap->nchannels, cb, arg, e);
    free(map);
    if (!ap->plan) {
        err_prefix(e, "channel map %d", ap->acq.channel_map_id);
        goto out;
    }
    if (idb_images_stream(ap->db, ap->acq.id, feed, ap->plan, NULL, e) < 0 ||
        plan_finish(ap->plan, e) < 0)
        goto out;
    s = plan_summary(ap->plan);
    /* A plate still being imaged may have nothing complete yet. */
    if (o.partial) {
        rc = 0;
        goto out;
    }
    if (s->images_read == 0) {
        err_set(e, ACQPLAN_ERR_NO_IMAGES, "it has no images");
        goto out;
    }
    if (s->image_sets == 0) {
        err_set(e, ACQPLAN_ERR_NO_SETS,
                "no complete image set is left after the filters (%zu images read, %zu "
                "filtered out, %zu incomplete sets left out)",
                s->images_read, s->images_filtered, s->incomplete_sets);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        err_prefix(e, "plan plate acquisition %lld (%s)", ap->acq.id, ap->acq.plate_barcode);
    return rc;
}

void acqplan_free(struct acqplan *ap)
{
    if (!ap)
        return;
    plan_free(ap->plan);
    idb_channels_free(ap->channels, ap->nchannels);
    idb_acquisition_release(&ap->acq);
    free(ap);
}
