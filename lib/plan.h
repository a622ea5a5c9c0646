/*
 * plan: turns a plate's images into image sets and batches, streaming.
 *
 * An image set is one (timepoint, well, site, z) with exactly one image for
 * each selected channel. Images are matched to channels by the channel map
 * (channel number -> dye), never by position: a missing channel makes its
 * set incomplete instead of shifting the others. An incomplete set (a
 * selected channel missing, a channel the map does not name, two images for
 * one channel) is left out and reported per timepoint, well and site, or,
 * in strict mode, fails the plan.
 *
 * Input order. Images come in one at a time (plan_add()), grouped by well
 * and, within a well, in (timepoint, site, z) order; the channels of a set
 * may come in any order. That is "ORDER BY well, timepoint, site, z,
 * channel" in SQL. Input that breaks the grouping (a well seen again after
 * another well, or a set key going backwards) is an error, not a silent
 * reshuffle. Wells are not reordered: batches follow the input's well order
 * (for the lab's zero-padded names, "A01" < "A02" < ... < "P24", that is
 * row-major on 96- and 384-well plates).
 *
 * Batches. By wells (PLAN_BY_WELLS): every set of N consecutive wells
 * (default 1), all timepoints of a well together. By image sets
 * (PLAN_BY_SETS, the GUI's batch_size): consecutive runs of N complete sets,
 * which may split a well; N <= 0 puts every set in one batch. A batch is
 * handed to the caller's callback as soon as the input has moved past its
 * last well, then freed, so memory holds one batch and one well, not the
 * plate. Image-set batches with N <= 0 therefore hold the whole plate.
 *
 * Partial input (plan_opts.partial: the plate is still being imaged, the
 * images seen are only a prefix of the plate's). A well counts as complete
 * once images of a later well exist (in input order: the plate is imaged
 * well after well) and none of its image sets is incomplete; the last well
 * seen is never complete. Only full batches (N wells, or N image sets) of
 * complete wells are emitted, up to the first well that is not complete:
 * it and everything after it wait for a later plan. Batches are cut in the
 * same order as for the whole plate, so each batch emitted from a prefix is
 * the same batch (id, index, sets, hash) the whole plate gives, as long as
 * no image arrives for a well already emitted. Incomplete sets are neither
 * reported nor an error in strict mode (their images may still come); the
 * summary counts only what was emitted.
 *
 * Batch ids are deterministic, lowercase, [a-z0-9-], at most
 * PLAN_BATCH_ID_MAX characters, start with a letter, end with a digit, and
 * are unique within a plan:
 *   by wells:  "c03" (one well), "c03-c05" (first and last well)
 *   by sets:   the first set's well and site, "c03s1", then "z<z>" if its z
 *              is not 0 and "t<timepoint>" if its timepoint is not the
 *              plan's first; when that exceeds the limit, "x" and 15 hex
 *              digits of a SHA-256 of the set's key.
 * Same input, same options: same batches, ids, order and hashes.
 *
 * Each batch carries a SHA-256 content hash (64 lower-case hex digits) over
 * the caller's pipeline and parameter bytes, the plate barcode and
 * acquisition id, the dye columns, and every set's key and image paths in
 * order: a batch whose hash is unchanged has the same inputs.
 *
 * Errors: -1 with a struct err; e->code is PLAN_ERR_INPUT for bad input or
 * options, ENOMEM for allocation failures, or the callback's code.
 */
#ifndef PLATEOP_PLAN_H
#define PLATEOP_PLAN_H

#include <stddef.h>

#include "err.h"
#include "filter.h"

struct strbuf;

/* e->code for bad input, bad options or an incomplete set in strict mode. */
#define PLAN_ERR_INPUT 4401

/* Longest batch id (not counting the NUL). */
#define PLAN_BATCH_ID_MAX 16

/* One entry of a channel map. */
struct plan_channel {
    int channel;
    const char *dye;
};

/* One image row. Strings are borrowed for the call only. */
struct plan_image {
    int timepoint;
    const char *well;   /* any spelling filter_well_parse() accepts */
    int site;
    int z;
    int channel;
    const char *path;   /* full path of the image file */
};

enum plan_mode {
    PLAN_BY_WELLS,  /* batch_size wells per batch; <= 0 means 1 */
    PLAN_BY_SETS,   /* batch_size image sets per batch; <= 0 means one batch */
};

struct plan_opts {
    enum plan_mode mode;
    int batch_size;
    int strict;                         /* an incomplete set fails the plan */
    int partial;                        /* the input is a prefix: see above */
    const struct filter *filter;        /* NULL: no filter; borrowed for the plan's life */
    const struct filter_plate *plate;   /* NULL: any format; wells off the plate are errors */
    const char *plate_barcode;          /* Metadata_Plate; NULL: "" */
    long long acq_id;                   /* Metadata_AcqID */
    const void *pipeline;               /* bytes hashed into every batch (e.g. the */
    size_t pipeline_len;                /*   pipeline file or its digest)          */
    const void *params;                 /* more bytes hashed (e.g. the canonical  */
    size_t params_len;                  /*   spec, the ICF directory)             */
};

/* One complete image set of a batch. */
struct plan_set {
    int timepoint;
    int site;
    int z;
    int row, col;                           /* 0-based well position */
    char well[FILTER_WELL_NAME_MAX];        /* canonical name, "C03" */
    const char *const *paths;               /* ndyes paths, in the batch's dye order */
};

/* A batch, valid only during the callback that receives it. */
struct plan_batch {
    char id[PLAN_BATCH_ID_MAX + 1];
    size_t index;                   /* 0-based position in the plan's batch order */
    char hash[65];                  /* SHA-256, lower-case hex */
    size_t nsets;
    const struct plan_set *sets;    /* in input order */
    size_t nwells;                  /* distinct wells among the sets */
    char first_well[FILTER_WELL_NAME_MAX];
    char last_well[FILTER_WELL_NAME_MAX];
    size_t ndyes;
    const char *const *dyes;        /* selected dyes, by ascending channel number */
    const int *channels;            /* their channel numbers */
    const char *plate_barcode;
    long long acq_id;
};

/*
 * Receives each batch in order. Return 0 to go on, or -1 with e set to stop
 * the plan (plan_add()/plan_finish() then fail with that error).
 */
typedef int (*plan_batch_fn)(const struct plan_batch *b, void *arg, struct err *e);

enum plan_reason {
    PLAN_MISSING,       /* a selected channel has no image */
    PLAN_UNMAPPED,      /* an image's channel is not in the channel map */
    PLAN_DUPLICATE,     /* two images for one channel */
};

/*
 * Incomplete sets of one (timepoint, well, site): `count` sets (z planes)
 * left out, the first at z, for the first reason found.
 */
struct plan_incomplete {
    int timepoint;
    int row, col;
    char well[FILTER_WELL_NAME_MAX];
    int site;
    int z;
    size_t count;
    enum plan_reason reason;
    int channel;        /* the channel concerned */
    const char *dye;    /* its dye, or NULL when unmapped (owned by the plan) */
};

/* At most this many plan_incomplete records are kept; the rest are counted. */
#define PLAN_INCOMPLETE_KEEP 10000

struct plan_summary {
    size_t images_read;         /* rows given to plan_add() */
    size_t images_filtered;     /* left out by the well, site, z or channel filter */
    size_t image_sets;          /* complete sets in the batches emitted */
    size_t incomplete_sets;     /* left out (0 in strict mode, which fails instead) */
    size_t batches;
    size_t wells;               /* wells with a complete set in the batches emitted */
    const struct plan_incomplete *incomplete;   /* in input order; owned by the plan */
    size_t nincomplete;
    size_t incomplete_dropped;  /* records not kept beyond PLAN_INCOMPLETE_KEEP */
    int max_row, max_col;       /* largest well position seen (-1 if none) */
};

struct plan;

/*
 * Creates a planner. `map` lists the channel map (n entries, copied); it
 * must not be empty, channel numbers and dyes must be unique, and every dye
 * of the channel filter must be in it. cb (may be NULL: count only)
 * receives the batches. Returns NULL with e set (e.g. "dye Foo is not in
 * the channel map (it has DAPI, Mito)").
 */
struct plan *plan_new(const struct plan_opts *opts, const struct plan_channel *map, size_t n,
                      plan_batch_fn cb, void *arg, struct err *e);

/*
 * Adds one image. May call cb with the batch the image's well closes.
 * Returns 0, or -1 with e set (bad well name, input out of order, an
 * incomplete set in strict mode, or the callback's error). After an error
 * the plan is unusable except for plan_summary() and plan_free().
 * Cost: O(1) amortised plus the path's length; a batch's hash when it closes.
 */
int plan_add(struct plan *p, const struct plan_image *img, struct err *e);

/*
 * Ends the input: closes the last set and emits the batches still due
 * (calling cb). Returns 0 or -1 with e set.
 */
int plan_finish(struct plan *p, struct err *e);

/* Counts so far; complete after plan_finish(). Owned by the plan. */
const struct plan_summary *plan_summary(const struct plan *p);

/*
 * Appends a one-line description of an incomplete record, e.g.
 * "well C03 site 4 timepoint 1: channel 3 (Mito) missing in 2 z planes from z 0".
 */
void plan_incomplete_describe(const struct plan_incomplete *inc, struct strbuf *out);

/* Name of a reason: "missing", "unmapped", "duplicate". */
const char *plan_reason_name(enum plan_reason r);

/*
 * Checks a well filter (filter.h syntax) against the plate format the
 * plan's images imply: the smallest of 96, 384 and 1536 wells holding
 * every well seen (s->max_row, s->max_col). With no image seen, anything
 * the largest format holds passes. Returns 0, or -1 with e (code
 * FILTER_ERR_SYNTAX) naming the offending token and its position, e.g.
 * "token \"Q05\" at position 1: row Q is outside a 384-well plate".
 * Cost: O(filter length + wells selected).
 */
int plan_wells_check(const struct plan_summary *s, const char *wells, struct err *e);

/*
 * The plate format the plan's images imply (as plan_wells_check()), or
 * NULL before any image. Static storage.
 */
const struct filter_plate *plan_plate(const struct plan_summary *s);

/* Frees the planner and everything it owns (its summary too). NULL is allowed. */
void plan_free(struct plan *p);

#endif
