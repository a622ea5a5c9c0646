/*
 * workerfix: a scratch world for worker tests: images, LoadData CSVs and a
 * pipeline in a temporary directory, and a way to run the built
 * plateop-worker ($PLATEOP_BUILD/plateop-worker) with the CellProfiler
 * stand-in ($PLATEOP_BUILD/tests/cellprofiler-standin), capturing output.
 */
#ifndef PLATEOP_TESTS_WORKERFIX_H
#define PLATEOP_TESTS_WORKERFIX_H

#include "strbuf.h"

struct wfix {
    char root[256];             /* the scratch directory */
    struct strbuf out;          /* output of the last wfix_worker() */
    char worker[512];           /* path of plateop-worker */
    char standin[512];          /* path of the stand-in */
};

/*
 * Creates the scratch directory with root/p.cppipe, images for wells C03,
 * C04 and D01 (2 sites x channels DNA and RNA, under root/img) and one
 * LoadData CSV per well (root/<well>.csv). Returns 0 or -1.
 */
int wfix_setup(struct wfix *f);

/* Removes the scratch directory and frees f->out. */
void wfix_teardown(struct wfix *f);

/* Returns root/rel in a static buffer (valid until the 8th next call). */
const char *wfix_path(const struct wfix *f, const char *rel);

/*
 * Runs the worker with args (NULL-terminated, without the program name)
 * and the environment plus extra "K=V" entries (NULL-terminated; may be
 * NULL), with PLATEOP_TERMINATION_LOG=root/termination-log. Returns the
 * exit status, or 128 + signal. Output (stdout and stderr) goes to f->out.
 */
int wfix_worker(struct wfix *f, const char *const *env, const char *const *args);

/* Runs `worker run` for a well's CSV into root/out/<well> with the stand-in. */
int wfix_run_well(struct wfix *f, const char *well, const char *const *env,
                  const char *const *extra_args);

/* The termination log's content (static buffer). */
const char *wfix_termination(const struct wfix *f);

#endif
