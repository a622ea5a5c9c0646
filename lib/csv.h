/*
 * csv: an RFC 4180 reader and writer that stream through large buffers.
 *
 * Used by the LoadData CSV writer, the worker's table scan and the merge.
 *
 * Reader. Records come one at a time from a file descriptor, a FILE or a
 * memory block. Fields may be quoted ("..."), and a quoted field may hold
 * commas, doubled quotes (""), CR and LF. Records end with LF or CRLF; the
 * last record may end without one (unless CSV_REQUIRE_EOL). A UTF-8 BOM at
 * the very start is skipped. Anything else is an error with the file name
 * and line number: a quote inside an unquoted field, a character after a
 * closing quote, a bare CR, end of input inside quotes, a record wider or
 * narrower than the first one (unless CSV_RAGGED), a record larger than the
 * buffer limit. The reader never allocates per record: fields are decoded
 * in place in its buffer, so memory is the buffer (CSV_BUF_SIZE unless
 * told otherwise, grown only for a record larger than it) plus the field
 * array.
 *
 * Writer. Fields are quoted only when needed (they hold a comma, a quote,
 * CR or LF); records end with LF (or CRLF with CSV_CRLF). Output goes to a
 * file descriptor, a FILE, a strbuf, or any sink function, through a large
 * buffer (except the strbuf, which is appended to directly).
 *
 * Why not Debian's libcsv (libcsv-dev 3.0.3)? tests/bench/bench_csv.sh
 * measures both on one CellProfiler-shaped table (256 MB, 303 columns, in
 * the page cache, parse only, 1 MiB reads, CPU time of one core, median of
 * 5). On the 2-core development VM, busy with other work: this reader,
 * fields decoded and NUL-terminated, 0.60 GB/s; libcsv with counting
 * callbacks and the same checks (CSV_STRICT, CSV_APPEND_NULL) 0.22 GB/s;
 * 2.7 times faster. libcsv also hands out each field through a callback
 * with a copied buffer, leaves line numbers, width and truncation checks
 * to the caller, and has no writer; this module does all of that in one
 * API.
 *
 * Errors come back as a struct err (err.h): -1 or NULL is returned, and
 * e->code is an errno value for I/O errors or one of enum csv_errcode.
 */
#ifndef PLATEOP_CSV_H
#define PLATEOP_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "strbuf.h"

/* Default buffer size of readers and writers: large, for few system calls. */
#define CSV_BUF_SIZE (1u << 20)

/* Default limit on one record; a reader's buffer grows up to this. */
#define CSV_RECORD_MAX (64u << 20)

/* e->code for malformed input (I/O errors carry errno values instead). */
enum csv_errcode {
    CSV_ERR_SYNTAX = 4180,  /* broken quoting or a bare CR */
    CSV_ERR_TRUNCATED,      /* input ended inside quotes or without the final line end */
    CSV_ERR_WIDTH,          /* a record's field count differs from the first record's */
    CSV_ERR_TOO_LONG,       /* a record larger than the record limit */
};

/* Reader flags (bitwise or). */
enum csv_read_flags {
    CSV_RAGGED = 1 << 0,        /* records may have different field counts */
    CSV_REQUIRE_EOL = 1 << 1,   /* the last record must end with a line end, else
                                   CSV_ERR_TRUNCATED: files that writers always end
                                   with a newline are then checked for truncation */
    CSV_SKIP_EMPTY = 1 << 2,    /* skip lines with nothing on them */
    CSV_NO_NUL = 1 << 3,        /* fields are not NUL-terminated, so the input bytes
                                   after an unquoted field stay as they were: a run of
                                   unquoted fields k..m can then be copied as one
                                   span, fields[k].data up to fields[m].data +
                                   fields[m].len (the merge's fast path) */
};

/* One field of the current record. */
struct csv_field {
    char *data;     /* decoded value, NUL-terminated (data[len] == 0) unless
                       CSV_NO_NUL; may hold NULs */
    size_t len;
    int quoted;     /* it was quoted in the input; an unquoted field holds no
                       comma, quote, CR or LF, so it can be written verbatim */
};

/* The current record. Valid until the next csv_read() or csv_reader_free(). */
struct csv_record {
    struct csv_field *fields;
    size_t nfields;
    uint64_t line;          /* 1-based line of the record's first character */
    uint64_t index;         /* 0-based record number (the header is record 0) */
};

struct csv_reader;

/*
 * Creates a reader of fd (not closed by the reader). `name` (copied) names
 * the input in error messages, e.g. a path. flags: enum csv_read_flags.
 * Returns NULL on allocation failure.
 */
struct csv_reader *csv_reader_fd(int fd, const char *name, unsigned flags, struct err *e);

/* As csv_reader_fd() but reads through fread() from f (not closed). */
struct csv_reader *csv_reader_file(FILE *f, const char *name, unsigned flags, struct err *e);

/* Reads a memory block (borrowed: must outlive the reader; never modified). */
struct csv_reader *csv_reader_mem(const char *data, size_t len, const char *name,
                                  unsigned flags, struct err *e);

/*
 * Opens path read-only and tells the kernel it is read sequentially; the
 * reader owns and closes the fd. Errors name the path.
 */
struct csv_reader *csv_reader_open(const char *path, unsigned flags, struct err *e);

/*
 * Sets the initial buffer size (default CSV_BUF_SIZE; at least 64) and the
 * largest record allowed (default CSV_RECORD_MAX). Call before the first
 * csv_read(). Returns 0, or -1 if the buffer cannot be allocated.
 */
int csv_reader_set_bufsize(struct csv_reader *r, size_t bufsize, size_t record_max,
                           struct err *e);

/*
 * Registers fn to see every block of raw input bytes, in order, as the
 * reader takes it from its source (e.g. to hash or count a file while
 * parsing it). fn returns 0, or -1 with e set to stop the read with that
 * error. Call before the first csv_read().
 */
typedef int (*csv_tap_fn)(void *ctx, const void *data, size_t len, struct err *e);
void csv_reader_set_tap(struct csv_reader *r, csv_tap_fn fn, void *ctx);

/*
 * Reads the next record into *rec (pointing into the reader).
 * Returns 1 with a record, 0 at the end of input, -1 on error (e names
 * the input and the line, e.g. "Cells.csv:12: unterminated quoted field
 * starting at line 10"). After 0 or -1, further calls return the same.
 * Cost: linear in the record's bytes; one read(2) per buffer refill.
 */
int csv_read(struct csv_reader *r, struct csv_record **rec, struct err *e);

/* A record taken whole by csv_read_line(): its bytes as they are in the input. */
struct csv_line {
    const char *data;       /* the record without its line end; valid until the next
                               read; holds no quote, CR or LF, so every field in it
                               is unquoted and the bytes are valid CSV as they are */
    size_t len;
    size_t nfields;         /* commas + 1 */
    uint64_t line;          /* 1-based line number */
};

/*
 * The fast path of csv_read() for the usual record that holds no quote:
 * when the next record has no quote and no CR (its CRLF line end aside),
 * takes it with the same checks as csv_read() (field count, line end,
 * record limit) and returns 1 with *out pointing at its bytes. Returns 2
 * and takes nothing when the record needs csv_read(): it holds a quote or
 * a CR, it is the first record, it is empty, or a check would fail, so
 * that csv_read() parses it or reports the error. -1 on a read error; 0
 * or -1 once csv_read() has met the end or an error. Both calls may be
 * mixed on one reader.
 * Cost: one memchr for the line end and one pass over the record 16 bytes
 * at a time (about 15 GB/s in cache); no per-field work.
 */
int csv_read_line(struct csv_reader *r, struct csv_line *out, struct err *e);

/* Bytes taken from the source so far. */
uint64_t csv_reader_bytes(const struct csv_reader *r);

/* The name given at creation. */
const char *csv_reader_name(const struct csv_reader *r);

/* Frees the reader (closing the fd only for csv_reader_open()). Safe on NULL. */
void csv_reader_free(struct csv_reader *r);

/* Writer flags. */
enum csv_write_flags {
    CSV_CRLF = 1 << 0,      /* end records with CRLF instead of LF */
    CSV_UNBUFFERED = 1 << 1,    /* csv_writer_sink() only: no buffer, every piece goes
                                   straight to the sink, for a sink that buffers
                                   itself (asyncwrite) and would copy it again */
};

/*
 * A sink receives the writer's buffered output in order. Returns 0, or -1
 * with e set (e.g. to the errno of a failed write).
 */
typedef int (*csv_sink_fn)(void *ctx, const void *data, size_t len, struct err *e);

struct csv_writer;

/*
 * Creates a writer to fd (not closed by the writer) with a CSV_BUF_SIZE
 * buffer; `name` (copied) names the output in errors. NULL on allocation
 * failure.
 */
struct csv_writer *csv_writer_fd(int fd, const char *name, unsigned flags, struct err *e);

/* Writes through fwrite() to f (not closed); csv_writer_flush() also fflush()es f. */
struct csv_writer *csv_writer_file(FILE *f, const char *name, unsigned flags, struct err *e);

/* Appends to sb (borrowed), unbuffered: sb holds everything written so far. */
struct csv_writer *csv_writer_strbuf(struct strbuf *sb, unsigned flags, struct err *e);

/* Hands buffered output (or every piece, with CSV_UNBUFFERED) to fn(ctx, ...). */
struct csv_writer *csv_writer_sink(csv_sink_fn fn, void *ctx, const char *name,
                                   unsigned flags, struct err *e);

/* Appends one field, quoted only if it holds a comma, quote, CR or LF. */
int csv_write_field(struct csv_writer *w, const char *data, size_t len, struct err *e);

/* As csv_write_field() for a NUL-terminated string. */
int csv_write_str(struct csv_writer *w, const char *s, struct err *e);

/* Appends a field formatted with printf (quoted if needed). */
int csv_write_fmt(struct csv_writer *w, struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Appends a field as is, without checking or quoting: for bytes already
 * valid as a CSV field, such as an unquoted field from a reader
 * (csv_field.quoted == 0). The fast path of the merge.
 */
int csv_write_raw(struct csv_writer *w, const char *data, size_t len, struct err *e);

/* Appends every field of rec. */
int csv_write_record(struct csv_writer *w, const struct csv_record *rec, struct err *e);

/* Ends the current record (writes the line end). */
int csv_write_eol(struct csv_writer *w, struct err *e);

/* Bytes produced so far (written or buffered). */
uint64_t csv_writer_bytes(const struct csv_writer *w);

/*
 * Pushes buffered output to the destination. A write error is reported
 * here or by the csv_write_*() call that filled the buffer; after one, every
 * call fails with the same error. Does not fsync.
 */
int csv_writer_flush(struct csv_writer *w, struct err *e);

/*
 * Flushes and frees the writer. Returns 0, or -1 if the flush failed (the
 * writer is freed either way). Safe on NULL.
 */
int csv_writer_close(struct csv_writer *w, struct err *e);

/* Frees without flushing (after an error, or to discard output). Safe on NULL. */
void csv_writer_free(struct csv_writer *w);

#endif
