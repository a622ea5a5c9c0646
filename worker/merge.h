/*
 * merge: `plateop-worker merge`, the batches' tables into one table each.
 *
 * Input: batch result directories (each with the manifest.json that
 * `run` writes last), given one by one or found under a root, plus the
 * controller's list of failed batches, which is recorded, not merged.
 * Output: DEST/<table>.csv for every table name, and DEST/manifest.json
 * (kind "merge", see manifest.h), built in a temporary directory beside
 * DEST and renamed into place only when everything checked out; on any
 * failure nothing is left at DEST (an older result there stays as it was).
 *
 * Rules:
 * - Batch order is deterministic: by batch id, numbers compared as numbers
 *   (strverscmp: b2 before b10).
 * - Header once: the union of the batches' headers, in a fixed order (the
 *   first batch's columns, then each column later batches add, in order of
 *   appearance). Columns are aligned by name; a batch with the same
 *   columns in another order is reordered. A column a batch lacks is left
 *   empty and reported per batch (log and manifest missing_columns).
 *   A column fewer than half of the batches have is "unexpected" (a batch
 *   made by another pipeline, say) and an error unless
 *   allow_extra_columns, which keeps it; the first batch has no say of its
 *   own, so a column only it lacks is simply missing there.
 * - ImageNumber is made unique: batch k's ImageNumber n becomes
 *   n + offset_k, where offset_k is the sum of image_count (manifest) of
 *   the batches before it; n outside 1..image_count is an error.
 *   ObjectNumber is kept. Every table gets a Metadata_Batch column (the
 *   batch id), appended if the header lacks it.
 * - A table without an ImageNumber column (Experiment: Key,Value) is kept
 *   per batch: each batch's rows with its Metadata_Batch, never bare rows
 *   of unknown origin.
 * - Files a batch saved besides its tables and manifest (an illumination
 *   correction pipeline's ICF_<dye>.npy) are copied into the result, where
 *   a later step's LoadData points; two batches saving one name with
 *   different contents is an error.
 * - Checks: each batch table's size equals its manifest's bytes before
 *   reading, it parses as strict CSV ending with a line end, and its rows
 *   equal the manifest's rows; the merged rows equal the manifests' sum.
 *
 * Memory is constant in the input size: one reader buffer, the writer's
 * ring (asyncwrite.h), the merged header, and the small per-batch manifest
 * summaries.
 *
 * Speed: a batch whose header is the merged one (the usual case) copies
 * each row without quotes as one span with csv_read_line(): the line up to
 * ImageNumber, the new ImageNumber, the rest of the line, the batch id.
 * Rows with a quote, and every row of a batch whose columns differ, go
 * through the full parser. The output is written (O_DIRECT where the file
 * system allows) and hashed on two more threads (asyncwrite.h).
 *
 * Result summary: on success, `merge` writes one line of compact JSON to
 * the termination log (exit.h), which the controller copies into the
 * Analysis status results.tables:
 *   {"tables":[{"name":"Cells","file":"Cells.csv","rows":17280},...],
 *    "batches":384,"failedBatches":["a03"]}
 * tables in name order, batches the number merged, failedBatches the ids
 * of the failed batches recorded. Kubernetes keeps 4096 bytes; when the
 * line would be longer, detail goes in this order: failed batch ids from
 * the end (counted in "failedBatchesOmitted"), then tables from the end
 * (counted in "tablesOmitted").
 */
#ifndef PLATEOP_WORKER_MERGE_H
#define PLATEOP_WORKER_MERGE_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"
#include "strbuf.h"

struct merge_opts {
    char *const *dirs;          /* batch directories; or NULL with root */
    size_t ndirs;
    const char *root;           /* scanned for batch directories (hidden entries and
                                   dest are skipped) when dirs is empty */
    const char *dest;           /* the merged result directory */
    const char *analysis;       /* namespace/name, for logs and the manifest */
    const char *failed;         /* JSON array [{batch, wells, reason}] or NULL; a
                                   directory of such a batch without manifest is skipped */
    int allow_extra_columns;
};

/*
 * Merges as described above. Returns WORKER_OK or an enum worker_exit code
 * (BAD_INPUT, VERIFY_FAILED, WRITE_FAILED) with e naming the file and the
 * problem. Cost: one streaming pass over every table plus a header read.
 */
int merge_batches(const struct merge_opts *o, struct err *e);

/*
 * The result summary described above, from a merge manifest (as written to
 * DEST/manifest.json), as at most max bytes of JSON in out (appended).
 * Returns 0, or -1 on allocation failure or when not even the bare object
 * fits.
 */
int merge_summary(const json_t *manifest, size_t max, struct strbuf *out);

/*
 * The `merge` subcommand: options from argv and PLATEOP_* env; on success
 * the summary goes to the termination log. Returns the exit code.
 */
int merge_main(int argc, char **argv);

#endif
