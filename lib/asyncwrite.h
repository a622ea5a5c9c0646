/*
 * asyncwrite: write and hash a stream on threads of their own.
 *
 * The merge produces its output on one thread; writing it (write(2)) and
 * hashing it (SHA-256, about 2 GB/s with SHA-NI) would double that
 * thread's work. Here the producer fills a ring of large buffers directly
 * (asyncwrite_put is the stream's only buffer: put it behind a
 * CSV_UNBUFFERED csv writer), and two threads take every full buffer in
 * order: a writer and, if given, a tap (the hash). A buffer is reused once
 * both are done with it, so the three run at once.
 *
 * With ASYNCWRITE_DIRECT on a regular file, full buffers are written with
 * O_DIRECT: the output skips the page cache, which saves the copy into it
 * (measured on the development VM: 0.2 to 1.9 s of system time per GB of
 * fresh page-cache pages, more than the rest of the merge) and leaves no
 * dirty pages for the final fsync. The unaligned tail, and everything after a file
 * system refuses O_DIRECT (EINVAL), go through the page cache, where the
 * writer starts write-back of each block at once (sync_file_range) so the
 * caller's fsync has little left to wait for.
 *
 * Memory: ASYNCWRITE_BUFS buffers of ASYNCWRITE_BUF_SIZE bytes, two threads.
 */
#ifndef PLATEOP_ASYNCWRITE_H
#define PLATEOP_ASYNCWRITE_H

#include <stddef.h>

#include "err.h"

#define ASYNCWRITE_BUFS 4
#define ASYNCWRITE_BUF_SIZE (1u << 20)

/* asyncwrite_open() flags. */
enum asyncwrite_flags {
    ASYNCWRITE_DIRECT = 1 << 0,     /* write full buffers with O_DIRECT (regular files
                                       only; see above) */
};

/* Sees every block, in order, on a thread of its own (e.g. a hash). */
typedef int (*asyncwrite_tap_fn)(void *ctx, const void *data, size_t len, struct err *e);

struct asyncwrite;

/*
 * Starts the writer thread for fd (not closed here; its file offset is
 * where writing starts) and, if tap is not NULL, the tap thread. `name`
 * (copied) names the output in errors. flags: enum asyncwrite_flags; with
 * ASYNCWRITE_DIRECT the fd's O_DIRECT flag is set until asyncwrite_close().
 * Returns NULL with e set on failure.
 */
struct asyncwrite *asyncwrite_open(int fd, const char *name, unsigned flags, asyncwrite_tap_fn tap,
                                   void *tap_ctx, struct err *e);

/*
 * Copies data into the buffer being filled, handing each full buffer to
 * the threads; blocks while every buffer is in use. Cheap for small pieces
 * (a memcpy; a lock only per full buffer). Fits csv_sink_fn (ctx is the
 * asyncwrite). Returns 0, or -1 with the first error of the writer or the
 * tap (e.g. "write X: No space left on device"), after which every call
 * fails the same way. Calls must come from one thread.
 */
int asyncwrite_put(void *ctx, const void *data, size_t len, struct err *e);

/*
 * Hands over the last partial buffer, waits until everything is written
 * and tapped, stops the threads, clears O_DIRECT and frees a. Returns 0,
 * or -1 with the first error. Does not fsync or close fd. Safe on NULL.
 */
int asyncwrite_close(struct asyncwrite *a, struct err *e);

#endif
