/*
 * exit: the worker's exit codes, one per failure class, and the one-line
 * reason Kubernetes shows as the container's termination message.
 *
 * The controller reads a finished pod's exit code and termination message
 * to name why a batch or the merge failed, so codes are stable. (A merge
 * that succeeds leaves its result summary there instead; see merge.h.)
 */
#ifndef PLATEOP_WORKER_EXIT_H
#define PLATEOP_WORKER_EXIT_H

#include "err.h"

enum worker_exit {
    WORKER_OK = 0,              /* done (or already done: same input hash) */
    WORKER_USAGE = 2,           /* bad flags or environment */
    WORKER_BAD_INPUT = 3,       /* pipeline, LoadData CSV, an image, the output dir,
                                   a batch dir or its manifest missing or malformed */
    WORKER_TIMEOUT = 4,         /* CellProfiler ran past the timeout; its group was killed */
    WORKER_CP_FAILED = 5,       /* CellProfiler could not start, exited non-zero or was killed */
    WORKER_INCOMPLETE = 6,      /* CellProfiler exited 0 but the done file is missing
                                   or does not say Complete */
    WORKER_BAD_OUTPUT = 7,      /* an expected table is missing, has no header or is malformed */
    WORKER_WRITE_FAILED = 8,    /* writing results failed (disk full, permissions, rename) */
    WORKER_VERIFY_FAILED = 9,   /* merged row counts differ from the batch manifests */
    WORKER_TERMINATED = 10,     /* the worker got SIGTERM/SIGINT and stopped CellProfiler */
};

/* A CamelCase reason for the code ("Timeout", "BadInput", ...); "Unknown" otherwise. */
const char *worker_exit_reason(int code);

/* Kubernetes' limit on a termination message, line end included. */
#define WORKER_TERMINATION_MAX 4096

/*
 * Writes text as one line (CR and LF become spaces) to the termination log:
 * $PLATEOP_TERMINATION_LOG if set, else /dev/termination-log, only if it
 * already exists and is writable (the kubelet creates it); silent otherwise.
 * The line is cut to WORKER_TERMINATION_MAX bytes with its line end.
 */
void worker_exit_message(const char *text);

/* Writes "<Reason>: <message>" with worker_exit_message(). */
void worker_exit_report(int code, const char *message);

/*
 * Reports a failure: one error log line (with exit_code and reason
 * members) and the termination log. ctx may be NULL.
 */
struct log_ctx;
void worker_exit_fail(int code, const struct log_ctx *ctx, const char *message);

/* The exit-code table for --help texts. */
extern const char worker_exit_help[];

#endif
