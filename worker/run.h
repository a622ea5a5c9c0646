/*
 * run: `plateop-worker run`, one batch through CellProfiler.
 *
 * Checks the inputs (pipeline, LoadData CSV, every image it names), runs
 * `CELLPROFILER -c -r -p PIPELINE --data-file CSV -o TMP -d TMP/cellprofiler.done
 * EXTRA...` with execvp in its own process group under a timeout, passes
 * its output through as JSON log lines, and accepts the result only if it
 * exited 0, the done file says "Complete" and every expected table exists
 * with a header. The tables and a manifest (manifest.h) are built in a
 * temporary directory beside the output directory and renamed into place
 * only on success, so the output directory holds a whole result or none.
 * The manifest's input hash mixes the controller's hash (--input-hash)
 * with the SHA-256 of the pipeline file and of the LoadData CSV, so an
 * input edited in place under the same path is a new input. A rerun whose
 * existing manifest has the same mixed hash, and whose tables are still
 * there at the recorded sizes, does nothing; without --input-hash a result
 * is never reused.
 */
#ifndef PLATEOP_WORKER_RUN_H
#define PLATEOP_WORKER_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define RUN_DONE_FILE "cellprofiler.done"

struct run_opts {
    const char *pipeline;
    const char *data_file;      /* LoadData CSV */
    const char *output_dir;     /* final place of tables + manifest; its parent is
                                   created if missing; must not be a mount point */
    const char *cellprofiler;   /* executable, looked up in PATH */
    char *const *cp_args;       /* extra CellProfiler arguments */
    size_t ncp_args;
    const char *tables;         /* comma-separated table names that must exist */
    const char *analysis;       /* namespace/name, for logs and the manifest; may be NULL */
    const char *batch;          /* batch id; NULL: the output dir's base name */
    const char *wells;          /* comma-separated wells, for logs and the manifest */
    const char *input_hash;     /* the controller's hash of the inputs (mixed with the
                                   pipeline's and the CSV's bytes); NULL: no reuse */
    double timeout_s;           /* 0: none */
    double kill_grace_s;        /* SIGTERM to SIGKILL on timeout */
    uint64_t mem_limit;         /* RLIMIT_AS for CellProfiler, bytes; 0: none */
};

/*
 * Runs one batch as described above. Returns WORKER_OK, or another
 * enum worker_exit code with e saying why (naming the file, the missing
 * images, or quoting CellProfiler's last output lines).
 * Cost: one pass over the pipeline and the CSV (opening every image),
 * CellProfiler's run, then one streaming pass over every table.
 */
int run_batch(const struct run_opts *o, struct err *e);

/* The `run` subcommand: options from argv and PLATEOP_* env; returns the exit code. */
int run_main(int argc, char **argv);

#endif
