/*
 * podlog: a container's log file, written in the CRI log format and read back
 * the way the kubelet's containerLogs endpoint serves it.
 *
 * Each record is one line: "<RFC 3339 nanosecond time> <stdout|stderr> <F|P> <text>\n".
 * A line the program ended with a newline is one F record; a longer line, or
 * text left without a newline when the stream closes, goes out as P records
 * that the reader joins to the next record of the same logical line. The time
 * kept on every record is what `timestamps=true` prints.
 *
 * One writer per file (the container's log pump); any number of readers may
 * read the file at the same time, each from its own descriptor.
 */
#ifndef NODEAGENT_PODLOG_H
#define NODEAGENT_PODLOG_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"
#include "strbuf.h"

/* A record holds at most this much text; longer lines are split into P records. */
#define PODLOG_MAX_RECORD 16384

enum podlog_stream { PODLOG_STDOUT, PODLOG_STDERR };

struct podlog_writer {
    int fd;
    struct strbuf pending[2];   /* text after the last newline, per stream */
};

/*
 * Opens (creating, appending) the log file at path, mode 0640. Returns 0, or
 * -1 with e. The writer owns the descriptor until podlog_writer_close().
 */
int podlog_writer_open(struct podlog_writer *w, const char *path, struct err *e);

/*
 * Adds len bytes the program wrote on stream at time now: every complete
 * line becomes an F record; the rest waits for more text (or becomes P
 * records once longer than PODLOG_MAX_RECORD). Returns 0, or -1 with e when
 * the file cannot be written. O(len).
 */
int podlog_write(struct podlog_writer *w, enum podlog_stream stream, const char *data,
                 size_t len, const struct timespec *now, struct err *e);

/* Writes text still waiting on either stream as P records (the stream ended). */
int podlog_flush(struct podlog_writer *w, const struct timespec *now, struct err *e);

/* Flushes, closes the file and frees the buffers. Safe twice. */
void podlog_writer_close(struct podlog_writer *w);

/* What the reader returns; the kubelet's query parameters of the same names. */
struct podlog_opts {
    long tail_lines;           /* last N logical lines; < 0: all */
    long long limit_bytes;     /* stop after this many output bytes; < 0: no limit */
    int timestamps;            /* prefix each logical line with its time and a space */
    struct timespec since;     /* skip lines older than this; tv_sec 0: none */
};

#define PODLOG_OPTS_INIT { -1, -1, 0, { 0, 0 } }

struct podlog_reader {
    int fd;
    off_t off;                 /* next unread record */
    struct podlog_opts opts;
    long long sent;            /* output bytes produced so far */
    int mid_line;              /* the last record read was P: continue its line */
    int skipping;              /* the current logical line is before `since` */
    int done;                  /* limit_bytes reached: nothing more will be returned */
};

/*
 * Opens path for reading and positions the reader at the first record to
 * return: with tail_lines >= 0 this scans the whole file once (O(file size),
 * constant memory). Returns 0, or -1 with e (ENOENT when there is no log yet).
 */
int podlog_reader_open(struct podlog_reader *r, const char *path, const struct podlog_opts *o,
                       struct err *e);

/*
 * Appends to out the formatted text of every complete record now in the file
 * past the reader's position, up to about `max` bytes (0: no cap), honouring
 * the options. A record still being written is left for a later call, so a
 * follower calls this again after the file grows. Returns the number of
 * bytes appended (0 when nothing new), or -1 with e.
 */
long podlog_read(struct podlog_reader *r, struct strbuf *out, size_t max, struct err *e);

/* Closes the reader's descriptor. Safe twice. */
void podlog_reader_close(struct podlog_reader *r);

#endif
