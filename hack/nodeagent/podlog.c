/* podlog: CRI-format container log files, written and read back; see podlog.h. */
#include "podlog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "timefmt.h"

static const char *const stream_names[] = { "stdout", "stderr" };

int podlog_writer_open(struct podlog_writer *w, const char *path, struct err *e)
{
    strbuf_init(&w->pending[0]);
    strbuf_init(&w->pending[1]);
    w->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (w->fd < 0)
        return err_errno(e, errno, "open log %s", path);
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes one record with a single write(2), so readers see whole records or none. */
static int put_record(struct podlog_writer *w, enum podlog_stream s, char tag, const char *text,
                      size_t len, const struct timespec *now, struct err *e)
{
    struct strbuf rec = STRBUF_INIT;
    char ts[TIMEFMT_MAX];
    int rc = -1;

    if (strbuf_addf(&rec, "%s %s %c ", timefmt_nanos(ts, now), stream_names[s], tag) ||
        strbuf_add(&rec, text, len) || strbuf_addch(&rec, '\n')) {
        err_set(e, ENOMEM, "log record: out of memory");
        goto out;
    }
    if (write_all(w->fd, rec.buf, rec.len) < 0) {
        err_errno(e, errno, "write log");
        goto out;
    }
    rc = 0;
out:
    strbuf_release(&rec);
    return rc;
}

/* Emits the pending text of stream s as P records while it exceeds the record size. */
static int spill_long(struct podlog_writer *w, enum podlog_stream s, const struct timespec *now,
                      struct err *e)
{
    struct strbuf *p = &w->pending[s];
    size_t off = 0;

    while (p->len - off > PODLOG_MAX_RECORD) {
        if (put_record(w, s, 'P', p->buf + off, PODLOG_MAX_RECORD, now, e) < 0)
            return -1;
        off += PODLOG_MAX_RECORD;
    }
    if (off) {
        memmove(p->buf, p->buf + off, p->len - off);
        strbuf_setlen(p, p->len - off);
    }
    return 0;
}

int podlog_write(struct podlog_writer *w, enum podlog_stream s, const char *data, size_t len,
                 const struct timespec *now, struct err *e)
{
    struct strbuf *p = &w->pending[s];

    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;

        if (strbuf_add(p, data, n) < 0)
            return err_set(e, ENOMEM, "log line: out of memory");
        if (spill_long(w, s, now, e) < 0)
            return -1;
        if (!nl)
            break;
        if (put_record(w, s, 'F', p->buf, p->len, now, e) < 0)
            return -1;
        strbuf_reset(p);
        data += n + 1;
        len -= n + 1;
    }
    return 0;
}

int podlog_flush(struct podlog_writer *w, const struct timespec *now, struct err *e)
{
    int s;

    for (s = 0; s < 2; s++) {
        if (w->pending[s].len == 0)
            continue;
        if (put_record(w, (enum podlog_stream)s, 'P', w->pending[s].buf, w->pending[s].len, now,
                       e) < 0)
            return -1;
        strbuf_reset(&w->pending[s]);
    }
    return 0;
}

void podlog_writer_close(struct podlog_writer *w)
{
    struct timespec now;

    if (w->fd >= 0) {
        clock_gettime(CLOCK_REALTIME, &now);
        podlog_flush(w, &now, NULL);
        close(w->fd);
        w->fd = -1;
    }
    strbuf_release(&w->pending[0]);
    strbuf_release(&w->pending[1]);
}

/* One parsed record; pointers into the record's text. */
struct record {
    const char *ts;
    size_t ts_len;
    char tag;
    const char *text;
    size_t text_len;
};

static int parse_record(const char *rec, size_t len, struct record *r)
{
    const char *sp1 = memchr(rec, ' ', len), *sp2;

    if (!sp1)
        return -1;
    sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - rec));
    if (!sp2 || (size_t)(sp2 - rec) + 3 > len || sp2[2] != ' ')
        return -1;
    r->ts = rec;
    r->ts_len = (size_t)(sp1 - rec);
    r->tag = sp2[1];
    r->text = sp2 + 3;
    r->text_len = len - (size_t)(r->text - rec);
    return 0;
}

/*
 * Calls fn(arg, record, length) for every complete record from *off on, and
 * advances *off past each record fn accepted. fn returns 0 to go on, 1 to
 * stop before consuming this record, 2 to consume it and stop, -1 on error.
 */
typedef int (*record_fn)(void *arg, const char *rec, size_t len);

static int for_each_record(int fd, off_t *off, record_fn fn, void *arg, struct err *e)
{
    struct strbuf win = STRBUF_INIT;
    char buf[65536];
    off_t pos = *off;
    int rc = -1, r = 0;

    while (r == 0) {
        ssize_t n = pread(fd, buf, sizeof(buf), pos);
        size_t start = 0;
        char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_errno(e, errno, "read log");
            goto out;
        }
        if (n == 0)
            break;
        pos += n;
        if (strbuf_add(&win, buf, (size_t)n) < 0) {
            err_set(e, ENOMEM, "read log: out of memory");
            goto out;
        }
        while (r == 0 && (nl = memchr(win.buf + start, '\n', win.len - start))) {
            size_t len = (size_t)(nl - (win.buf + start));

            r = fn(arg, win.buf + start, len);
            if (r < 0)
                goto out;
            if (r == 1)
                break;
            start += len + 1;
            *off += (off_t)len + 1;
        }
        memmove(win.buf, win.buf + start, win.len - start);
        strbuf_setlen(&win, win.len - start);
        /* A record never exceeds PODLOG_MAX_RECORD plus its prefix. */
        if (win.len > 4 * PODLOG_MAX_RECORD) {
            err_set(e, EINVAL, "read log: record longer than %d bytes", 4 * PODLOG_MAX_RECORD);
            goto out;
        }
    }
    rc = 0;
out:
    strbuf_release(&win);
    return rc;
}

/* Counting logical lines for tailLines: a line starts at a record after an F record. */
struct line_count {
    long lines;        /* logical lines started so far */
    long stop_at;      /* pass 2: stop at the start of this line; < 0: count only */
    int mid_line;
};

static int count_line(void *arg, const char *rec, size_t len)
{
    struct line_count *c = arg;
    struct record r;

    if (parse_record(rec, len, &r) < 0)
        return 0;
    if (!c->mid_line) {
        if (c->lines == c->stop_at)
            return 1;
        c->lines++;
    }
    c->mid_line = r.tag == 'P';
    return 0;
}

int podlog_reader_open(struct podlog_reader *r, const char *path, const struct podlog_opts *o,
                       struct err *e)
{
    struct line_count c = { 0, -1, 0 };
    off_t end = 0;

    memset(r, 0, sizeof(*r));
    r->opts = *o;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return err_errno(e, errno, "open log %s", path);
    if (o->tail_lines < 0)
        return 0;
    if (for_each_record(r->fd, &end, count_line, &c, e) < 0)
        goto fail;
    if (c.lines <= o->tail_lines)
        return 0;
    c.stop_at = c.lines - o->tail_lines;
    c.lines = 0;
    c.mid_line = 0;
    if (for_each_record(r->fd, &r->off, count_line, &c, e) < 0)
        goto fail;
    return 0;
fail:
    podlog_reader_close(r);
    return -1;
}

struct read_state {
    struct podlog_reader *r;
    struct strbuf *out;
    size_t max;
    size_t start_len;
    int oom;
};

/* Appends within limit_bytes; returns 1 when the limit is reached. */
static int emit(struct read_state *st, const char *p, size_t len)
{
    struct podlog_reader *r = st->r;

    if (r->opts.limit_bytes >= 0 && (long long)len > r->opts.limit_bytes - r->sent) {
        len = (size_t)(r->opts.limit_bytes - r->sent);
        r->done = 1;
    }
    if (strbuf_add(st->out, p, len) < 0) {
        st->oom = 1;
        return 1;
    }
    r->sent += (long long)len;
    return r->done;
}

static int before_since(const struct podlog_reader *r, const struct record *rec)
{
    char ts[TIMEFMT_MAX];
    struct timespec t;
    size_t n = rec->ts_len < sizeof(ts) - 1 ? rec->ts_len : sizeof(ts) - 1;

    if (r->opts.since.tv_sec == 0)
        return 0;
    memcpy(ts, rec->ts, n);
    ts[n] = '\0';
    if (timefmt_parse(ts, &t, NULL) < 0)
        return 0;
    return t.tv_sec < r->opts.since.tv_sec ||
           (t.tv_sec == r->opts.since.tv_sec && t.tv_nsec < r->opts.since.tv_nsec);
}

static int format_record(void *arg, const char *line, size_t len)
{
    struct read_state *st = arg;
    struct podlog_reader *r = st->r;
    struct record rec;
    int line_start;

    if (r->done || (st->max && st->out->len - st->start_len >= st->max))
        return 1;
    if (parse_record(line, len, &rec) < 0)
        return 0;
    line_start = !r->mid_line;
    r->mid_line = rec.tag == 'P';
    if (line_start)
        r->skipping = before_since(r, &rec);
    if (r->skipping)
        return 0;
    if (line_start && r->opts.timestamps &&
        (emit(st, rec.ts, rec.ts_len) || emit(st, " ", 1)))
        return 2;
    if (emit(st, rec.text, rec.text_len))
        return 2;
    if (rec.tag != 'P' && emit(st, "\n", 1))
        return 2;
    return 0;
}

long podlog_read(struct podlog_reader *r, struct strbuf *out, size_t max, struct err *e)
{
    struct read_state st = { r, out, max, out->len, 0 };

    if (r->done)
        return 0;
    if (for_each_record(r->fd, &r->off, format_record, &st, e) < 0)
        return -1;
    if (st.oom)
        return err_set(e, ENOMEM, "read log: out of memory");
    return (long)(out->len - st.start_len);
}

void podlog_reader_close(struct podlog_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}
