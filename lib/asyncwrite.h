/*
 * asyncwrite: write (and hash) a stream on a second thread.
 *
 * The merge is bound by one core: parsing on one side, write(2) and SHA-256
 * of the output on the other. Handing the output to a writer thread through
 * a few large buffers lets both run at once on a two-core machine. Memory:
 * ASYNCWRITE_BUFS buffers of ASYNCWRITE_BUF_SIZE bytes.
 */
#ifndef PLATEOP_ASYNCWRITE_H
#define PLATEOP_ASYNCWRITE_H

#include <stddef.h>

#include "err.h"

#define ASYNCWRITE_BUFS 4
#define ASYNCWRITE_BUF_SIZE (1u << 20)

/* Sees every block written, in order, on the writer thread (e.g. a hash). */
typedef int (*asyncwrite_tap_fn)(void *ctx, const void *data, size_t len, struct err *e);

struct asyncwrite;

/*
 * Starts a writer thread for fd (not closed here). `name` (copied) names
 * the output in errors; tap may be NULL. Returns NULL with e set on failure.
 */
struct asyncwrite *asyncwrite_open(int fd, const char *name, asyncwrite_tap_fn tap, void *tap_ctx,
                                   struct err *e);

/*
 * Queues a copy of data for writing; blocks while every buffer is full.
 * Fits csv_sink_fn (ctx is the asyncwrite). Returns 0, or -1 with the
 * writer thread's first error (e.g. "write X: No space left on device"),
 * after which every call fails the same way.
 */
int asyncwrite_put(void *ctx, const void *data, size_t len, struct err *e);

/*
 * Waits until everything queued is written, stops the thread and frees a.
 * Returns 0, or -1 with the first error. Does not fsync or close fd.
 */
int asyncwrite_close(struct asyncwrite *a, struct err *e);

#endif
