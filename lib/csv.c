/* csv: streaming RFC 4180 reader and writer; see csv.h. */
#include "csv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"

enum source { SRC_FD, SRC_FILE, SRC_MEM };

struct csv_reader {
    char *name;
    unsigned flags;
    enum source src;
    int fd;
    int own_fd;
    FILE *file;
    const char *mem;
    size_t mem_len, mem_off;

    /* buf[start, end) is unparsed input; buf[end] holds a sentinel, so the
       buffer always keeps one spare byte. */
    char *buf;
    size_t cap, start, end, record_max;
    int eof;
    int bom_checked;
    int done;                   /* 1 after the end, -1 after an error */
    struct err saved;           /* the error to repeat after done == -1 */

    struct csv_field *fields;
    size_t fields_cap;
    struct csv_record rec;
    uint64_t line;              /* line of buf[start] */
    uint64_t nrecords;
    size_t width;               /* field count of the first record; 0 before it */
    uint64_t bytes;

    csv_tap_fn tap;
    void *tap_ctx;
};

/* Bytes that end an unquoted field or make a field need quoting. */
static const unsigned char special[256] = {
    [','] = 1, ['"'] = 1, ['\r'] = 1, ['\n'] = 1,
};

static struct csv_reader *reader_new(enum source src, const char *name, unsigned flags,
                                     struct err *e)
{
    struct csv_reader *r = calloc(1, sizeof(*r));

    if (!r || !(r->name = strdup(name ? name : "csv"))) {
        free(r);
        err_set(e, ENOMEM, "csv reader: out of memory");
        return NULL;
    }
    r->src = src;
    r->flags = flags;
    r->fd = -1;
    r->line = 1;
    r->record_max = CSV_RECORD_MAX;
    return r;
}

struct csv_reader *csv_reader_fd(int fd, const char *name, unsigned flags, struct err *e)
{
    struct csv_reader *r = reader_new(SRC_FD, name, flags, e);

    if (r)
        r->fd = fd;
    return r;
}

struct csv_reader *csv_reader_file(FILE *f, const char *name, unsigned flags, struct err *e)
{
    struct csv_reader *r = reader_new(SRC_FILE, name, flags, e);

    if (r)
        r->file = f;
    return r;
}

struct csv_reader *csv_reader_mem(const char *data, size_t len, const char *name,
                                  unsigned flags, struct err *e)
{
    struct csv_reader *r = reader_new(SRC_MEM, name, flags, e);

    if (r) {
        r->mem = data;
        r->mem_len = len;
    }
    return r;
}

struct csv_reader *csv_reader_open(const char *path, unsigned flags, struct err *e)
{
    struct csv_reader *r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        err_errno(e, errno, "open %s", path);
        return NULL;
    }
    /* Only a hint (larger read-ahead): a failure changes nothing. */
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    r = csv_reader_fd(fd, path, flags, e);
    if (!r) {
        close(fd);
        return NULL;
    }
    r->own_fd = 1;
    return r;
}

static int resize_buf(struct csv_reader *r, size_t cap, struct err *e)
{
    char *nb = realloc(r->buf, cap);

    if (!nb)
        return err_set(e, ENOMEM, "%s: out of memory for a %zu-byte buffer", r->name, cap);
    r->buf = nb;
    r->cap = cap;
    r->buf[r->end] = '\n';
    return 0;
}

int csv_reader_set_bufsize(struct csv_reader *r, size_t bufsize, size_t record_max,
                           struct err *e)
{
    if (bufsize < 64)
        bufsize = 64;
    r->record_max = record_max;
    return resize_buf(r, bufsize, e);
}

void csv_reader_set_tap(struct csv_reader *r, csv_tap_fn fn, void *ctx)
{
    r->tap = fn;
    r->tap_ctx = ctx;
}

uint64_t csv_reader_bytes(const struct csv_reader *r)
{
    return r->bytes;
}

const char *csv_reader_name(const struct csv_reader *r)
{
    return r->name;
}

void csv_reader_free(struct csv_reader *r)
{
    if (!r)
        return;
    if (r->own_fd && r->fd >= 0)
        close(r->fd);
    free(r->fields);
    free(r->buf);
    free(r->name);
    free(r);
}

/* Reads up to n bytes from the source into dst; returns the count, 0 at the end, -1 on error. */
static ssize_t source_read(struct csv_reader *r, char *dst, size_t n, struct err *e)
{
    ssize_t got;

    switch (r->src) {
    case SRC_MEM:
        if (n > r->mem_len - r->mem_off)
            n = r->mem_len - r->mem_off;
        memcpy(dst, r->mem + r->mem_off, n);
        r->mem_off += n;
        return (ssize_t)n;
    case SRC_FILE:
        got = (ssize_t)fread(dst, 1, n, r->file);
        if (got == 0 && ferror(r->file))
            return err_errno(e, errno ? errno : EIO, "read %s", r->name);
        return got;
    case SRC_FD:
    default:
        do
            got = read(r->fd, dst, n);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return err_errno(e, errno, "read %s", r->name);
        return got;
    }
}

/*
 * Makes room and reads more input after buf[end]. Moves the unparsed part
 * to the front, grows the buffer when the unparsed part fills it.
 * Returns 0 (r->eof set at the end of input) or -1.
 */
static int refill(struct csv_reader *r, struct err *e)
{
    ssize_t got;

    if (!r->buf && resize_buf(r, CSV_BUF_SIZE, e) < 0)
        return -1;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end + 1 >= r->cap) {
        size_t ncap = r->cap * 2;

        if (r->end >= r->record_max)
            return err_set(e, CSV_ERR_TOO_LONG, "%s:%" PRIu64 ": record longer than %zu bytes",
                           r->name, r->line, r->record_max);
        if (ncap > r->record_max + 1)
            ncap = r->record_max + 1;
        if (resize_buf(r, ncap, e) < 0)
            return -1;
    }
    got = source_read(r, r->buf + r->end, r->cap - 1 - r->end, e);
    if (got < 0)
        return -1;
    if (got == 0) {
        r->eof = 1;
    } else {
        if (r->tap && r->tap(r->tap_ctx, r->buf + r->end, (size_t)got, e) < 0)
            return -1;
        r->bytes += (uint64_t)got;
        r->end += (size_t)got;
    }
    r->buf[r->end] = '\n';
    return 0;
}

static int add_field(struct csv_reader *r, size_t n, char *data, size_t len, int quoted,
                     struct err *e)
{
    if (n == r->fields_cap) {
        size_t ncap = r->fields_cap ? r->fields_cap * 2 : 64;
        struct csv_field *nf = realloc(r->fields, ncap * sizeof(*nf));

        if (!nf)
            return err_set(e, ENOMEM, "%s: out of memory for %zu fields", r->name, ncap);
        r->fields = nf;
        r->fields_cap = ncap;
    }
    r->fields[n].data = data;
    r->fields[n].len = len;
    r->fields[n].quoted = quoted;
    return 0;
}

enum scan { SCAN_RECORD, SCAN_MORE, SCAN_ERROR };

static uint64_t count_lf(const char *p, size_t n)
{
    const char *end = p + n;
    uint64_t count = 0;

    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        count++;
        p++;
    }
    return count;
}

/*
 * Finds the fields of the record at buf[start]. Sets *nfields, *next (the
 * offset after the record) and *lines (line ends inside and after it).
 * Fields point at raw content (inside the quotes); quoted == 2 marks
 * content with doubled quotes still to undo. Returns SCAN_MORE when the
 * record may continue past buf[end] and more input may come.
 */
static enum scan scan_record(struct csv_reader *r, size_t *nfields, size_t *next,
                             uint64_t *lines, int *eol, struct err *e)
{
    char *buf = r->buf;
    size_t i = r->start, end = r->end, n = 0;
    uint64_t nl = 0;

    for (;;) {
        size_t fs = i;
        int quoted = 0;
        char c;

        if (buf[i] == '"') {
            uint64_t qline = r->line + nl;

            quoted = 1;
            fs = ++i;
            for (;;) {
                char *q = memchr(buf + i, '"', end - i);

                nl += count_lf(buf + i, (q ? (size_t)(q - buf) : end) - i);
                if (!q) {
                    if (!r->eof)
                        return SCAN_MORE;
                    err_set(e, CSV_ERR_TRUNCATED,
                            "%s:%" PRIu64 ": unterminated quoted field starting at line %" PRIu64
                            " (input truncated?)", r->name, r->line + nl, qline);
                    return SCAN_ERROR;
                }
                i = (size_t)(q - buf);
                if (i + 1 == end && !r->eof)
                    return SCAN_MORE;
                if (i + 1 < end && buf[i + 1] == '"') {
                    quoted = 2;
                    i += 2;
                    continue;
                }
                break;
            }
            if (add_field(r, n++, buf + fs, i - fs, quoted, e) < 0)
                return SCAN_ERROR;
            i++;
            c = buf[i];
            if (i < end && c != ',' && c != '\n' && c != '\r') {
                err_set(e, CSV_ERR_SYNTAX,
                        "%s:%" PRIu64 ": unexpected character '%c' after closing quote of field %zu",
                        r->name, r->line + nl, c, n);
                return SCAN_ERROR;
            }
        } else {
            /* The sentinel at buf[end] stops this loop. */
            while (!special[(unsigned char)buf[i]])
                i++;
            c = buf[i];
            if (c == '"') {
                err_set(e, CSV_ERR_SYNTAX,
                        "%s:%" PRIu64 ": quote inside unquoted field %zu (quote the whole field)",
                        r->name, r->line + nl, n + 1);
                return SCAN_ERROR;
            }
            if (add_field(r, n++, buf + fs, i - fs, 0, e) < 0)
                return SCAN_ERROR;
        }
        if (i == end) {
            if (!r->eof)
                return SCAN_MORE;
            *eol = 0;
            break;
        }
        if (c == ',') {
            i++;
            continue;
        }
        if (c == '\r') {
            if (i + 1 == end && !r->eof)
                return SCAN_MORE;
            if (i + 1 == end || buf[i + 1] != '\n') {
                err_set(e, CSV_ERR_SYNTAX, "%s:%" PRIu64 ": carriage return not followed by a line feed",
                        r->name, r->line + nl);
                return SCAN_ERROR;
            }
            i++;
        }
        i++;
        nl++;
        *eol = 1;
        break;
    }
    *nfields = n;
    *next = i;
    *lines = nl;
    return SCAN_RECORD;
}

/* Undoes quoting in place and NUL-terminates every field (unless nul is 0). */
static void decode_fields(struct csv_field *f, size_t n, int nul)
{
    size_t k, i, o;

    for (k = 0; k < n; k++) {
        if (f[k].quoted == 2) {
            char *d = f[k].data;

            for (i = 0, o = 0; i < f[k].len; i++, o++) {
                d[o] = d[i];
                if (d[i] == '"')
                    i++;    /* the second quote of a doubled pair */
            }
            f[k].len = o;
            f[k].quoted = 1;
        }
        if (nul)
            f[k].data[f[k].len] = '\0';
    }
}

static int fail(struct csv_reader *r, struct err *e)
{
    r->done = -1;
    if (e)
        r->saved = *e;
    return -1;
}

/* After the end (0) or an error (-1, repeated in e). */
static int finished(const struct csv_reader *r, struct err *e)
{
    if (r->done > 0)
        return 0;
    if (e)
        *e = r->saved;
    return -1;
}

/* Skips a UTF-8 byte order mark at the start of the input. */
static int skip_bom(struct csv_reader *r, struct err *e)
{
    while (r->end - r->start < 3 && !r->eof)
        if (refill(r, e) < 0)
            return -1;
    if (r->end - r->start >= 3 && memcmp(r->buf + r->start, "\xEF\xBB\xBF", 3) == 0)
        r->start += 3;
    r->bom_checked = 1;
    return 0;
}

/* Skips empty lines at buf[start] (CSV_SKIP_EMPTY). Returns 1 if it needs more input. */
static int skip_empty(struct csv_reader *r)
{
    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;

        if (avail >= 1 && p[0] == '\n') {
            r->start++;
        } else if (avail >= 2 && p[0] == '\r' && p[1] == '\n') {
            r->start += 2;
        } else {
            return avail == 1 && p[0] == '\r' && !r->eof;
        }
        r->line++;
    }
}

int csv_read(struct csv_reader *r, struct csv_record **rec, struct err *e)
{
    size_t nfields = 0, next = 0;
    uint64_t lines = 0;
    int eol = 0;

    if (r->done)
        return finished(r, e);
    if (!r->bom_checked && skip_bom(r, e) < 0)
        return fail(r, e);
    for (;;) {
        enum scan s;

        if ((r->flags & CSV_SKIP_EMPTY) && skip_empty(r)) {
            if (refill(r, e) < 0)
                return fail(r, e);
            continue;
        }
        if (r->start == r->end) {
            if (r->eof) {
                r->done = 1;
                return 0;
            }
            if (refill(r, e) < 0)
                return fail(r, e);
            continue;
        }
        s = scan_record(r, &nfields, &next, &lines, &eol, e);
        if (s == SCAN_RECORD)
            break;
        if (s == SCAN_ERROR || refill(r, e) < 0)
            return fail(r, e);
    }
    if (!eol && (r->flags & CSV_REQUIRE_EOL)) {
        err_set(e, CSV_ERR_TRUNCATED, "%s:%" PRIu64 ": last record does not end with a line end "
                "(input truncated?)", r->name, r->line + lines);
        return fail(r, e);
    }
    if (!(r->flags & CSV_RAGGED)) {
        if (r->nrecords == 0) {
            r->width = nfields;
        } else if (nfields != r->width) {
            err_set(e, CSV_ERR_WIDTH, "%s:%" PRIu64 ": %zu fields, expected %zu as in the first record%s",
                    r->name, r->line, nfields, r->width,
                    !eol ? " (input truncated?)" : "");
            return fail(r, e);
        }
    }
    decode_fields(r->fields, nfields, !(r->flags & CSV_NO_NUL));
    r->rec.fields = r->fields;
    r->rec.nfields = nfields;
    r->rec.line = r->line;
    r->rec.index = r->nrecords++;
    r->line += lines;
    r->start = next;
    *rec = &r->rec;
    return 1;
}

/* 16 bytes at a time with GCC's generic vectors: SSE2 on x86-64, NEON on arm64. */
typedef signed char v16 __attribute__((vector_size(16)));
typedef unsigned char u16 __attribute__((vector_size(16)));

/*
 * Counts the commas in p[0..n) and tells whether a quote or a CR is among
 * the bytes (*plain = 0): the whole check of a simple record in one pass.
 */
static size_t scan_plain(const char *p, size_t n, int *plain)
{
    const v16 comma = (v16){ 0 } + ',', quote = (v16){ 0 } + '"', cr = (v16){ 0 } + '\r';
    v16 odd = { 0 };
    size_t count = 0, i = 0, k;
    uint64_t half[2];

    while (n - i >= 16) {
        /* A match is all ones (255): subtracting it counts one, modulo 256, so the
           lanes are flushed every 255 blocks. */
        size_t stop = n - i >= 16 * 255 ? i + 16 * 255 : n - 15;
        u16 acc = { 0 };

        for (; i < stop; i += 16) {
            v16 v;

            memcpy(&v, p + i, 16);
            acc -= (u16)(v == comma);
            odd |= (v == quote) | (v == cr);
        }
        for (k = 0; k < 16; k++)
            count += acc[k];
    }
    for (; i < n; i++) {
        count += p[i] == ',';
        odd[0] |= (signed char)(p[i] == '"' || p[i] == '\r');
    }
    memcpy(half, &odd, sizeof(half));
    *plain = !(half[0] | half[1]);
    return count;
}

int csv_read_line(struct csv_reader *r, struct csv_line *out, struct err *e)
{
    const char *p, *nl;
    size_t len, commas;
    int plain;

    if (r->done)
        return finished(r, e);
    if (r->nrecords == 0)
        return 2;
    for (;;) {
        p = r->buf + r->start;
        nl = memchr(p, '\n', r->end - r->start);
        if (nl)
            break;
        if (r->eof)
            return 2;
        if (refill(r, e) < 0)
            return fail(r, e);
    }
    len = (size_t)(nl - p);
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (len == 0)
        return 2;
    commas = scan_plain(p, len, &plain);
    if (!plain || (!(r->flags & CSV_RAGGED) && commas + 1 != r->width))
        return 2;
    out->data = p;
    out->len = len;
    out->nfields = commas + 1;
    out->line = r->line++;
    r->nrecords++;
    r->start = (size_t)(nl + 1 - r->buf);
    return 1;
}

/* ---- writer ---- */

struct csv_writer {
    char *name;
    unsigned flags;
    csv_sink_fn fn;
    void *ctx;
    int fd;
    FILE *file;
    struct strbuf *sb;
    char *buf;              /* NULL: unbuffered, every put goes to fn */
    size_t cap, len;
    int in_record;          /* a field was written to the current record */
    uint64_t bytes;
    int failed;
    struct err saved;
};

static int sink_fd(void *ctx, const void *data, size_t len, struct err *e)
{
    struct csv_writer *w = ctx;

    return fileutil_write_all(w->fd, data, len, w->name, e);
}

static int sink_file(void *ctx, const void *data, size_t len, struct err *e)
{
    struct csv_writer *w = ctx;

    if (fwrite(data, 1, len, w->file) != len)
        return err_errno(e, errno ? errno : EIO, "write %s", w->name);
    return 0;
}

static int sink_strbuf(void *ctx, const void *data, size_t len, struct err *e)
{
    struct csv_writer *w = ctx;

    if (strbuf_add(w->sb, data, len) < 0)
        return err_set(e, ENOMEM, "%s: out of memory", w->name);
    return 0;
}

static struct csv_writer *writer_new(csv_sink_fn fn, void *ctx, const char *name, unsigned flags,
                                     size_t cap, struct err *e)
{
    struct csv_writer *w = calloc(1, sizeof(*w));

    if (!w || !(w->name = strdup(name ? name : "csv")) || (cap && !(w->buf = malloc(cap)))) {
        if (w)
            free(w->name);
        free(w);
        err_set(e, ENOMEM, "csv writer: out of memory");
        return NULL;
    }
    w->fn = fn;
    w->ctx = ctx;
    w->flags = flags;
    w->cap = cap;
    w->fd = -1;
    return w;
}

struct csv_writer *csv_writer_fd(int fd, const char *name, unsigned flags, struct err *e)
{
    struct csv_writer *w = writer_new(sink_fd, NULL, name, flags, CSV_BUF_SIZE, e);

    if (w) {
        w->ctx = w;
        w->fd = fd;
    }
    return w;
}

struct csv_writer *csv_writer_file(FILE *f, const char *name, unsigned flags, struct err *e)
{
    struct csv_writer *w = writer_new(sink_file, NULL, name, flags, CSV_BUF_SIZE, e);

    if (w) {
        w->ctx = w;
        w->file = f;
    }
    return w;
}

struct csv_writer *csv_writer_strbuf(struct strbuf *sb, unsigned flags, struct err *e)
{
    struct csv_writer *w = writer_new(sink_strbuf, NULL, "buffer", flags, 0, e);

    if (w) {
        w->ctx = w;
        w->sb = sb;
    }
    return w;
}

struct csv_writer *csv_writer_sink(csv_sink_fn fn, void *ctx, const char *name,
                                   unsigned flags, struct err *e)
{
    return writer_new(fn, ctx, name, flags, (flags & CSV_UNBUFFERED) ? 0 : CSV_BUF_SIZE, e);
}

static int wfail(struct csv_writer *w, struct err *e)
{
    w->failed = 1;
    if (e)
        w->saved = *e;
    return -1;
}

static int wrepeat(struct csv_writer *w, struct err *e)
{
    if (e)
        *e = w->saved;
    return -1;
}

int csv_writer_flush(struct csv_writer *w, struct err *e)
{
    if (w->failed)
        return wrepeat(w, e);
    if (w->len > 0 && w->fn(w->ctx, w->buf, w->len, e) < 0)
        return wfail(w, e);
    w->len = 0;
    if (w->file && fflush(w->file) != 0) {
        err_errno(e, errno ? errno : EIO, "write %s", w->name);
        return wfail(w, e);
    }
    return 0;
}

/* Appends bytes to the output, through the buffer when there is one. */
static int put(struct csv_writer *w, const char *data, size_t len, struct err *e)
{
    if (w->failed)
        return wrepeat(w, e);
    if (len == 0)
        return 0;
    w->bytes += len;
    if (len <= w->cap - w->len) {
        memcpy(w->buf + w->len, data, len);
        w->len += len;
        return 0;
    }
    if (w->len > 0) {
        if (w->fn(w->ctx, w->buf, w->len, e) < 0)
            return wfail(w, e);
        w->len = 0;
    }
    if (len < w->cap) {
        memcpy(w->buf, data, len);
        w->len = len;
        return 0;
    }
    if (w->fn(w->ctx, data, len, e) < 0)
        return wfail(w, e);
    return 0;
}

static int separate(struct csv_writer *w, struct err *e)
{
    if (!w->in_record) {
        w->in_record = 1;
        return 0;
    }
    return put(w, ",", 1, e);
}

int csv_write_raw(struct csv_writer *w, const char *data, size_t len, struct err *e)
{
    if (separate(w, e) < 0)
        return -1;
    return put(w, data, len, e);
}

int csv_write_field(struct csv_writer *w, const char *data, size_t len, struct err *e)
{
    const char *p = data, *end = data + len, *q;
    size_t i;

    for (i = 0; i < len && !special[(unsigned char)data[i]]; i++)
        ;
    if (i == len)
        return csv_write_raw(w, data, len, e);
    if (separate(w, e) < 0 || put(w, "\"", 1, e) < 0)
        return -1;
    /* Each segment ends with its quote, which is then written once more. */
    while ((q = memchr(p, '"', (size_t)(end - p))) != NULL) {
        if (put(w, p, (size_t)(q - p) + 1, e) < 0 || put(w, "\"", 1, e) < 0)
            return -1;
        p = q + 1;
    }
    if (put(w, p, (size_t)(end - p), e) < 0)
        return -1;
    return put(w, "\"", 1, e);
}

int csv_write_str(struct csv_writer *w, const char *s, struct err *e)
{
    return csv_write_field(w, s, strlen(s), e);
}

int csv_write_fmt(struct csv_writer *w, struct err *e, const char *fmt, ...)
{
    struct strbuf sb = STRBUF_INIT;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = strbuf_vaddf(&sb, fmt, ap);
    va_end(ap);
    if (rc < 0)
        rc = err_set(e, ENOMEM, "%s: out of memory", w->name);
    else
        rc = csv_write_field(w, sb.buf, sb.len, e);
    strbuf_release(&sb);
    return rc;
}

int csv_write_record(struct csv_writer *w, const struct csv_record *rec, struct err *e)
{
    size_t i;

    for (i = 0; i < rec->nfields; i++) {
        const struct csv_field *f = &rec->fields[i];

        if ((f->quoted ? csv_write_field(w, f->data, f->len, e)
                       : csv_write_raw(w, f->data, f->len, e)) < 0)
            return -1;
    }
    return 0;
}

int csv_write_eol(struct csv_writer *w, struct err *e)
{
    w->in_record = 0;
    if (w->flags & CSV_CRLF)
        return put(w, "\r\n", 2, e);
    return put(w, "\n", 1, e);
}

uint64_t csv_writer_bytes(const struct csv_writer *w)
{
    return w->bytes;
}

void csv_writer_free(struct csv_writer *w)
{
    if (!w)
        return;
    free(w->buf);
    free(w->name);
    free(w);
}

int csv_writer_close(struct csv_writer *w, struct err *e)
{
    int rc;

    if (!w)
        return 0;
    rc = csv_writer_flush(w, e);
    csv_writer_free(w);
    return rc;
}
