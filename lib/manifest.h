/*
 * manifest: the small JSON file beside a batch's or a merge's tables that
 * says what was produced. The worker writes it last, so its presence in a
 * result directory means the result is complete; the merge and the
 * controller read it.
 *
 * File: <dir>/manifest.json, one JSON object:
 *   manifest_version  1
 *   kind              "batch" (plateop-worker run) or "merge"
 *   analysis          "namespace/name" or null
 *   batch             batch id (kind batch)
 *   wells             ["C03", ...] (kind batch)
 *   input_hash        "sha256:<hex>" over the controller's hash of the batch's
 *                     inputs and the bytes of the pipeline file and the
 *                     LoadData CSV ("" when the controller gave no hash); a
 *                     rerun with the same hash is a no-op
 *   pipeline_sha256, data_file_sha256
 *                     SHA-256 (hex) of the pipeline file and the LoadData CSV
 *                     (kind batch)
 *   image_sets        LoadData rows (kind batch)
 *   image_count       the largest ImageNumber the batch may use: the max of
 *                     image_sets and every table's image_number_max (kind batch)
 *   created           RFC 3339 UTC time of writing
 *   duration_s        wall time of the whole command
 *   tables            [ { name ("Cells"), file ("Cells.csv"), rows (data rows,
 *                     header excluded), columns ([names]), bytes, sha256 (hex),
 *                     image_number_max (0 without an ImageNumber column) } ]
 *   kind merge adds   batches ([{batch, dir, input_hash, image_offset,
 *                     image_count}]), failed_batches ([{batch, wells, reason}]),
 *                     and per table missing_columns ([{batch, columns}])
 *
 * Errors come back through struct err, naming the file.
 */
#ifndef PLATEOP_MANIFEST_H
#define PLATEOP_MANIFEST_H

#include <jansson.h>
#include <stdint.h>

#include "csv.h"
#include "err.h"

#define MANIFEST_FILE "manifest.json"
#define MANIFEST_VERSION 1

struct manifest_table {
    char *name;                 /* table name: the file name without ".csv" */
    char *file;                 /* file name inside the result directory */
    uint64_t rows;              /* data rows */
    uint64_t bytes;
    uint64_t image_number_max;  /* 0 without an ImageNumber column */
    char sha256[65];            /* lowercase hex, NUL-terminated */
    json_t *columns;            /* array of names (owned); NULL when not loaded */
};

/*
 * Reads dir/file as a CSV table and fills *t (which the caller releases):
 * header columns, data rows, bytes, sha256, largest ImageNumber. The table
 * must have a non-empty header with unique column names, be well-formed
 * CSV, end with a line end, and hold non-negative integers in ImageNumber.
 * Cost: one streaming pass, constant memory besides the header.
 */
int manifest_scan_table(const char *dir, const char *file, struct manifest_table *t,
                        struct err *e);

/* The table as a JSON object (new reference, the caller's; NULL on allocation failure). */
json_t *manifest_table_json(const struct manifest_table *t);

/*
 * Fills *t from a manifest's table object. Columns are loaded only with
 * with_columns (they are large; the merge reads headers from the files).
 * Returns 0 (the caller releases *t), or -1 with e naming the missing or
 * mistyped member (*t then needs no release).
 */
int manifest_table_parse(const json_t *j, struct manifest_table *t, int with_columns,
                         struct err *e);

/* Frees the strings and columns *t owns and zeroes it. Safe on a zeroed struct. */
void manifest_table_release(struct manifest_table *t);

/*
 * Adds manifest_version, kind and created to root (borrowed; modified) and
 * writes it to dir/manifest.json atomically (temporary file, fsync,
 * rename). Returns 0, or -1 with e naming the file.
 */
int manifest_write(const char *dir, const char *kind, json_t *root, struct err *e);

/* The largest manifest read. */
#define MANIFEST_MAX (64u << 20)

/*
 * Loads dir/manifest.json and checks manifest_version and kind.
 * Returns a new reference, or NULL with e set ("<dir>/manifest.json: ...";
 * e->code ENOENT when the file does not exist).
 */
json_t *manifest_read(const char *dir, const char *kind, struct err *e);

/*
 * As manifest_read(), but every "columns" array comes back empty: a batch
 * manifest names hundreds of columns per table, which the merge does not
 * need and which take most of the parse (about 20 times the rest). Cost:
 * one pass over the text, then the parse of what is left.
 */
json_t *manifest_read_brief(const char *dir, const char *kind, struct err *e);

/* Parses a field holding a non-negative decimal integer. 0 or -1. */
int manifest_parse_u64(const char *s, size_t len, uint64_t *out);

/* Incremental SHA-256 over a stream (OpenSSL). */
struct manifest_hasher;

/* Returns a new hasher, or NULL on allocation failure. */
struct manifest_hasher *manifest_hasher_new(struct err *e);

/* Adds bytes; the signature fits csv_tap_fn and csv_sink_fn chains. */
int manifest_hasher_update(void *h, const void *data, size_t len, struct err *e);

/* Writes the lowercase hex digest (65 bytes with the NUL) and frees h. */
void manifest_hasher_finish(struct manifest_hasher *h, char hex[65]);

/*
 * Reads fd from its current offset to its end and writes the lowercase hex
 * SHA-256 of those bytes to hex (65 bytes with the NUL). Returns 0, or -1
 * with e set ("read NAME: ...") and hex empty. Cost: one pass through a
 * 64 KiB stack buffer.
 */
int manifest_hash_fd(int fd, const char *name, char hex[65], struct err *e);

#endif
