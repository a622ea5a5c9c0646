/*
 * acqplan: plans one plate acquisition straight from ImageDB.
 *
 * The controller's entry point to planning: read the acquisition and its
 * channel map (acqplan_open()), look at them (e.g. wait while `finished` is
 * unset), then stream the images through the filters into the planner
 * (acqplan_run()) and receive the batches one at a time in a callback,
 * where each batch's LoadData CSV can be rendered (loaddata.h). Memory stays
 * at one batch plus one fetch of rows, whatever the plate's size.
 *
 * Nothing here writes to the database.
 *
 * Batches are delivered while the images stream. If the run then fails (a
 * strict-mode incomplete set in the last well, a lost connection), the
 * batches already delivered belong to a failed plan and are to be thrown
 * away; a caller that must not act before the plan is known to be good
 * runs once with cb == NULL (counting only) and then again.
 */
#ifndef PLATEOP_ACQPLAN_H
#define PLATEOP_ACQPLAN_H

#include "err.h"
#include "idb.h"
#include "plan.h"

enum acqplan_errcode {
    ACQPLAN_ERR_NO_CHANNEL_MAP = 4601,  /* the acquisition names no channel map */
    ACQPLAN_ERR_NO_IMAGES,              /* the acquisition has no images */
    ACQPLAN_ERR_NO_SETS,                /* no complete image set is left after the filters */
};

struct acqplan;

/*
 * Reads plate acquisition acq_id and its channel map. Returns NULL with e:
 * IDB_ERR_NOTFOUND ("plate acquisition 42 not found"),
 * ACQPLAN_ERR_NO_CHANNEL_MAP, IDB_ERR_DATA ("channel map 7 is empty"),
 * IDB_ERR_CONNECT, IDB_ERR_QUERY. db is borrowed and must outlive the
 * acqplan.
 */
struct acqplan *acqplan_open(struct idb *db, long long acq_id, struct err *e);

/*
 * The acquisition as read by acqplan_open() (barcode, channel map id,
 * whether `finished` is set). Owned by ap; valid until acqplan_free().
 */
const struct idb_acquisition *acqplan_acquisition(const struct acqplan *ap);

/* The channel map, ordered by channel; *n receives its length. Owned by ap. */
const struct idb_channel *acqplan_channels(const struct acqplan *ap, size_t *n);

/*
 * Plans the acquisition's images. opts is as for plan_new(); its
 * plate_barcode and acq_id are taken from the acquisition. cb (may be NULL)
 * receives each batch. Returns 0, or -1 with e: a dye of the filter not in
 * the channel map (PLAN_ERR_INPUT), ACQPLAN_ERR_NO_IMAGES,
 * ACQPLAN_ERR_NO_SETS, input the planner rejects, database errors, or the
 * callback's error. With opts->partial (the plate is still being imaged)
 * no image or no complete set yet is not an error: the plan simply has no
 * batch. May be called again (each run starts afresh).
 * Cost: one pass over the acquisition's images.
 */
int acqplan_run(struct acqplan *ap, const struct plan_opts *opts, plan_batch_fn cb, void *arg,
                struct err *e);

/* The last run's summary (NULL before the first run). Owned by ap. */
const struct plan_summary *acqplan_summary(const struct acqplan *ap);

/* Frees ap, its channel map and its last plan. NULL is allowed. */
void acqplan_free(struct acqplan *ap);

#endif
