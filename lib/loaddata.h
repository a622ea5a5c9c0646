/*
 * loaddata: the LoadData CSV of a batch, the file CellProfiler's LoadData
 * module reads to find each image set's images.
 *
 * Columns, in this order:
 *   FileName_<dye>, PathName_<dye>            for each dye of the batch, by
 *                                             ascending channel number
 *   FileName_ICF_<dye>, PathName_ICF_<dye>    the same dyes, only with an
 *                                             ICF directory (illumination
 *                                             correction from a dependency)
 *   Metadata_Plate, Metadata_Well, Metadata_Site, Metadata_Timepoint,
 *   Metadata_Z, Metadata_AcqID
 * One row per image set, in the batch's order (which is the plan's
 * deterministic order), so the same batch always gives the same bytes.
 * Columns are found by name, never by position, so a missing channel can
 * never shift another's images (the planner leaves such sets out).
 *
 * An image path is split at its last '/': PathName is what comes before
 * ("/" for a file in the root, "" for a bare file name), FileName what comes
 * after. Fields are RFC 4180: quoted when they hold a comma, a quote, CR or
 * LF; spaces are kept as they are. Records end with LF.
 *
 * Errors: -1 with e (the csv writer's error, or LOADDATA_ERR_PATH for an
 * image path that names no file).
 */
#ifndef PLATEOP_LOADDATA_H
#define PLATEOP_LOADDATA_H

#include <stdio.h>

#include "csv.h"
#include "err.h"
#include "plan.h"
#include "strbuf.h"

#define LOADDATA_ERR_PATH 4701

struct loaddata_opts {
    /*
     * Directory holding the illumination correction functions made by a
     * dependency (its output directory), or NULL for no ICF columns.
     */
    const char *icf_dir;
    /*
     * File name of a dye's correction function in icf_dir: "{dye}" and
     * "{plate}" are replaced by the dye and the plate barcode. NULL:
     * "ICF_{dye}.npy", the old system's name.
     */
    const char *icf_file;
};

/*
 * Writes the header and every row of batch b to w (not flushed). o may be
 * NULL: no ICF columns. Returns 0, or -1 with e (see above). Cost: linear
 * in the batch's paths.
 */
int loaddata_write(const struct plan_batch *b, const struct loaddata_opts *o,
                   struct csv_writer *w, struct err *e);

/*
 * Appends batch b's CSV to out (e.g. for a ConfigMap). o may be NULL.
 * Returns 0, or -1 with e. Cost: linear in the batch's paths; about 100
 * bytes per image.
 */
int loaddata_render(const struct plan_batch *b, const struct loaddata_opts *o,
                    struct strbuf *out, struct err *e);

/*
 * Writes batch b's CSV to f (flushed, not closed); name names f in errors.
 * o may be NULL. Returns 0, or -1 with e.
 */
int loaddata_write_file(const struct plan_batch *b, const struct loaddata_opts *o, FILE *f,
                        const char *name, struct err *e);

#endif
