/* merge: stream every batch's tables into one table per name; see merge.h. */
#include "merge.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncwrite.h"
#include "cli.h"
#include "csv.h"
#include "exit.h"
#include "fileutil.h"
#include "log.h"
#include "manifest.h"
#include "monotime.h"
#include "run.h"
#include "strbuf.h"

#define BATCH_COLUMN "Metadata_Batch"
#define IMAGE_COLUMN "ImageNumber"
/* Enough for a header of a few hundred columns in one read; the reader grows it if not. */
#define HEADER_BUF (16 * 1024)

/* ---- column names by hash ---- */

struct colset {
    char **names;
    size_t n, cap;
    size_t *slots;              /* index + 1; 0 is empty */
    size_t nslots;
};

static size_t hash_name(const char *s, size_t len)
{
    size_t h = 1469598103934665603ULL, i;

    for (i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The index of the name s[0..len), or -1. */
static long colset_findn(const struct colset *c, const char *s, size_t len)
{
    size_t i;

    if (!c->nslots)
        return -1;
    for (i = hash_name(s, len) & (c->nslots - 1); c->slots[i]; i = (i + 1) & (c->nslots - 1)) {
        const char *name = c->names[c->slots[i] - 1];

        if (strncmp(name, s, len) == 0 && name[len] == '\0')
            return (long)c->slots[i] - 1;
    }
    return -1;
}

static long colset_find(const struct colset *c, const char *name)
{
    return colset_findn(c, name, strlen(name));
}

static int colset_rehash(struct colset *c)
{
    size_t nslots = c->nslots ? c->nslots * 2 : 256, i, j;
    size_t *slots = calloc(nslots, sizeof(*slots));

    if (!slots)
        return -1;
    for (i = 0; i < c->n; i++) {
        for (j = hash_name(c->names[i], strlen(c->names[i])) & (nslots - 1); slots[j];
             j = (j + 1) & (nslots - 1))
            ;
        slots[j] = i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = nslots;
    return 0;
}

/* Appends a name not yet present; returns its index or -1 on allocation failure. */
static long colset_add(struct colset *c, const char *name)
{
    size_t j;

    if (c->n == c->cap) {
        char **nn = realloc(c->names, (c->cap = c->cap ? c->cap * 2 : 64) * sizeof(*nn));

        if (!nn)
            return -1;
        c->names = nn;
    }
    if ((c->n + 1) * 2 > c->nslots && colset_rehash(c) < 0)
        return -1;
    if (!(c->names[c->n] = strdup(name)))
        return -1;
    for (j = hash_name(name, strlen(name)) & (c->nslots - 1); c->slots[j];
         j = (j + 1) & (c->nslots - 1))
        ;
    c->slots[j] = c->n + 1;
    return (long)c->n++;
}

static void colset_free(struct colset *c)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        free(c->names[i]);
    free(c->names);
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

/* ---- batches ---- */

/*
 * One step of building an output row: a run of consecutive batch fields
 * (copied as one span when none is quoted), ImageNumber, the batch id, or
 * an empty field for a missing column.
 */
enum op_kind { OP_RUN, OP_IMAGE, OP_BATCH, OP_EMPTY };

struct op {
    enum op_kind kind;
    size_t first, last;         /* batch fields of OP_RUN and OP_IMAGE */
};

struct batch {
    char *dir;
    const char *id;             /* borrowed from manifest */
    json_t *manifest;
    uint64_t image_count, offset;
    struct manifest_table *tables;
    size_t ntables;
};

struct merge {
    const struct merge_opts *o;
    struct log_ctx ctx;
    struct batch *b;
    size_t nb;
    json_t *failed;             /* array */
    char **tables;              /* table names, sorted */
    size_t ntables;
    struct csv_reader *r;
    size_t *map;                /* merged column -> batch column + 1 (0: missing) */
    struct op *ops;             /* how to build an output row from a batch row */
    size_t nops, map_cap;
    int lines;                  /* rows may be copied as whole lines (see plan_lines) */
    long line_image;            /* then: the batch field of ImageNumber, or -1 */
};

static void batch_free(struct batch *b)
{
    size_t i;

    for (i = 0; i < b->ntables; i++)
        manifest_table_release(&b->tables[i]);
    free(b->tables);
    json_decref(b->manifest);
    free(b->dir);
}

static const json_t *failed_entry(const struct merge *m, const char *id)
{
    const json_t *f;
    size_t i;

    json_array_foreach(m->failed, i, f)
        if (strcmp(json_string_value(json_object_get(f, "batch")), id) == 0)
            return f;
    return NULL;
}

/* Loads dir's manifest into a new batch. Returns 1 added, 0 skipped (a failed batch), -1. */
static int add_batch(struct merge *m, const char *dir, struct err *e)
{
    const char *base = strrchr(dir, '/');
    struct batch b = { 0 };
    json_t *t;
    json_int_t images = 0;
    size_t i;

    base = base ? base + 1 : dir;
    b.manifest = manifest_read_brief(dir, "batch", e);
    if (!b.manifest) {
        if (e->code == ENOENT && failed_entry(m, base))
            return 0;
        return err_prefix(e, "batch dir %s", dir);
    }
    if (json_unpack(b.manifest, "{s:s, s:I}", "batch", &b.id, "image_count", &images) < 0 ||
        images < 0 || !json_is_array(json_object_get(b.manifest, "tables"))) {
        json_decref(b.manifest);
        return err_set(e, EINVAL, "%s/%s: no batch, image_count or tables", dir, MANIFEST_FILE);
    }
    b.image_count = (uint64_t)images;
    if (failed_entry(m, b.id)) {
        json_decref(b.manifest);
        return err_set(e, EINVAL, "batch %s (%s) is listed as failed but has a finished result",
                       b.id, dir);
    }
    b.dir = strdup(dir);
    b.ntables = json_array_size(json_object_get(b.manifest, "tables"));
    b.tables = calloc(b.ntables + 1, sizeof(*b.tables));
    if (!b.dir || !b.tables) {
        batch_free(&b);
        return err_set(e, ENOMEM, "out of memory");
    }
    json_array_foreach(json_object_get(b.manifest, "tables"), i, t) {
        if (manifest_table_parse(t, &b.tables[i], 0, e) < 0) {
            batch_free(&b);
            return err_prefix(e, "%s/%s", dir, MANIFEST_FILE);
        }
    }
    /* Column lists are large (hundreds per table); headers come from the files. */
    json_object_del(b.manifest, "tables");
    if (m->nb % 64 == 0) {
        struct batch *nb = realloc(m->b, (m->nb + 64) * sizeof(*nb));

        if (!nb) {
            batch_free(&b);
            return err_set(e, ENOMEM, "out of memory");
        }
        m->b = nb;
    }
    m->b[m->nb++] = b;
    return 1;
}

/* Adds every non-hidden directory under root except dest. */
static int scan_root(struct merge *m, struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    struct stat dest_st, st;
    struct dirent **list = NULL;
    int n, i, rc = -1, have_dest = stat(m->o->dest, &dest_st) == 0;

    n = scandir(m->o->root, &list, NULL, alphasort);
    if (n < 0)
        return err_errno(e, errno, "scan %s", m->o->root);
    for (i = 0; i < n; i++) {
        const char *name = list[i]->d_name;

        if (name[0] == '.')
            continue;
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/%s", m->o->root, name);
        if (stat(path.buf, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (have_dest && st.st_dev == dest_st.st_dev && st.st_ino == dest_st.st_ino)
            continue;
        if (add_batch(m, path.buf, e) < 0)
            goto out;
    }
    rc = 0;
out:
    for (i = 0; i < n; i++)
        free(list[i]);
    free(list);
    strbuf_release(&path);
    return rc;
}

static int cmp_batch(const void *a, const void *b)
{
    return strverscmp(((const struct batch *)a)->id, ((const struct batch *)b)->id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct manifest_table *batch_table(const struct batch *b, const char *name)
{
    size_t i;

    for (i = 0; i < b->ntables; i++)
        if (strcmp(b->tables[i].name, name) == 0)
            return &b->tables[i];
    return NULL;
}

/* Orders batches, checks ids are unique, sets offsets, and lists the table names. */
static int plan(struct merge *m, struct err *e)
{
    uint64_t offset = 0;
    size_t i, j;

    if (m->nb == 0)
        return err_set(e, EINVAL, "no batch results to merge%s%s", m->o->root ? " under " : "",
                       m->o->root ? m->o->root : "");
    qsort(m->b, m->nb, sizeof(*m->b), cmp_batch);
    for (i = 0; i < m->nb; i++) {
        if (i > 0 && strcmp(m->b[i].id, m->b[i - 1].id) == 0)
            return err_set(e, EINVAL, "batch %s appears twice: %s and %s", m->b[i].id,
                           m->b[i - 1].dir, m->b[i].dir);
        m->b[i].offset = offset;
        offset += m->b[i].image_count;
        for (j = 0; j < m->b[i].ntables; j++) {
            const char *name = m->b[i].tables[j].name;
            size_t k;

            for (k = 0; k < m->ntables && strcmp(m->tables[k], name) != 0; k++)
                ;
            if (k < m->ntables)
                continue;
            m->tables = realloc(m->tables, (m->ntables + 1) * sizeof(*m->tables));
            if (!m->tables)
                return err_set(e, ENOMEM, "out of memory");
            m->tables[m->ntables++] = (char *)name;
        }
    }
    qsort(m->tables, m->ntables, sizeof(*m->tables), cmp_str);
    for (i = 0; i < m->nb; i++)
        for (j = 0; j < m->ntables; j++)
            if (!batch_table(&m->b[i], m->tables[j]))
                return err_set(e, EINVAL, "batch %s (%s) has no %s table, other batches do",
                               m->b[i].id, m->b[i].dir, m->tables[j]);
    return 0;
}

/* ---- one table ---- */

/* The output: written and hashed on a second thread while this one parses. */
struct out {
    struct asyncwrite *aw;
    int write_failed;           /* tells a write error from a read error */
};

static int out_sink(void *ctx, const void *data, size_t len, struct err *e)
{
    struct out *o = ctx;

    if (asyncwrite_put(o->aw, data, len, e) < 0) {
        o->write_failed = 1;
        return -1;
    }
    return 0;
}

/* Opens a batch's table for reading, after checking its size against the manifest. */
static struct csv_reader *open_batch_table(const struct batch *b, const struct manifest_table *t,
                                           size_t bufsize, unsigned flags, struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    struct csv_reader *r = NULL;
    struct stat st;

    strbuf_addf(&path, "%s/%s", b->dir, t->file);
    if (stat(path.buf, &st) < 0) {
        err_errno(e, errno, "batch %s: %s", b->id, path.buf);
    } else if ((uint64_t)st.st_size != t->bytes) {
        err_set(e, EINVAL, "batch %s: %s has %llu bytes, its manifest says %llu (truncated or changed)",
                b->id, path.buf, (unsigned long long)st.st_size, (unsigned long long)t->bytes);
    } else if ((r = csv_reader_open(path.buf, CSV_REQUIRE_EOL | flags, e)) != NULL &&
               csv_reader_set_bufsize(r, bufsize, CSV_RECORD_MAX, e) < 0) {
        csv_reader_free(r);
        r = NULL;
    }
    strbuf_release(&path);
    return r;
}

static int read_header(struct csv_reader *r, struct csv_record **rec, struct err *e)
{
    int got = csv_read(r, rec, e);

    if (got == 0)
        err_set(e, EINVAL, "%s: empty file, no header", csv_reader_name(r));
    return got == 1 ? 0 : -1;
}

/*
 * Builds the merged header from every batch's header (the first pass,
 * headers only): the first batch's columns, then the columns later batches
 * add, in order of appearance. Which batch comes first says nothing about
 * which columns are right, so a column is judged by how many batches have
 * it: one that fewer than half of them have is unexpected (a batch run
 * with another pipeline, say), an error unless allow_extra_columns. The
 * batches without a kept column get it empty and are reported
 * (copy_batch()). Metadata_Batch, which the merge writes itself, is never
 * unexpected. Memory: a counter per column.
 */
static int merged_header(struct merge *m, const char *table, struct colset *cols, struct err *e)
{
    struct seen {
        size_t batches, first;  /* how many batches have the column; the first one */
    } *seen = NULL;
    struct csv_record *rec;
    size_t nseen = 0, i, k;
    long c;
    int rc = 0;

    for (i = 0; i < m->nb && rc == 0; i++) {
        struct csv_reader *r = open_batch_table(&m->b[i], batch_table(&m->b[i], table), HEADER_BUF, 0,
                                                 e);

        rc = r && read_header(r, &rec, e) == 0 ? 0 : -1;
        for (k = 0; rc == 0 && k < rec->nfields; k++) {
            c = colset_find(cols, rec->fields[k].data);
            if (c < 0) {
                c = colset_add(cols, rec->fields[k].data);
                if (c >= 0 && (size_t)c >= nseen) {
                    struct seen *ns = realloc(seen, cols->cap * sizeof(*ns));

                    if (ns)
                        seen = ns, nseen = cols->cap;
                }
                if (c < 0 || (size_t)c >= nseen) {
                    rc = err_set(e, ENOMEM, "out of memory");
                    break;
                }
                seen[c] = (struct seen){ 0, i };
            }
            seen[c].batches++;
        }
        csv_reader_free(r);
    }
    for (k = 0; rc == 0 && !m->o->allow_extra_columns && k < cols->n; k++) {
        const struct batch *b = &m->b[seen[k].first];

        if (seen[k].batches * 2 < m->nb && strcmp(cols->names[k], BATCH_COLUMN) != 0)
            rc = err_set(e, EINVAL, "batch %s: %s/%s: unexpected column '%s' (in %zu of %zu "
                         "batches, fewer than half; --allow-extra-columns keeps it)", b->id, b->dir,
                         batch_table(b, table)->file, cols->names[k], seen[k].batches, m->nb);
    }
    if (rc == 0 && colset_find(cols, BATCH_COLUMN) < 0 && colset_add(cols, BATCH_COLUMN) < 0)
        rc = err_set(e, ENOMEM, "out of memory");
    free(seen);
    return rc;
}

/*
 * Decides whether a batch's rows can take the fast path: the ops copy every
 * batch field in order (ImageNumber rewritten on the way) and then append
 * the batch id, as when the batch's header is the merged one. A row without
 * quotes is then the input line with one field replaced and one appended.
 */
static void plan_lines(struct merge *m, size_t nfields)
{
    size_t i, next = 0;

    m->lines = 0;
    m->line_image = -1;
    if (m->nops == 0 || m->ops[m->nops - 1].kind != OP_BATCH)
        return;
    for (i = 0; i + 1 < m->nops; i++) {
        const struct op *op = &m->ops[i];

        if ((op->kind != OP_RUN && op->kind != OP_IMAGE) || op->first != next)
            return;
        if (op->kind == OP_IMAGE)
            m->line_image = (long)op->first;
        next = op->last + 1;
    }
    m->lines = next == nfields;
}

/*
 * Maps merged columns to the batch header's, lists the missing ones in
 * *missing, and plans the row copy (m->ops).
 */
static int map_columns(struct merge *m, const struct colset *cols, const struct csv_record *h,
                       json_t *missing, struct err *e)
{
    long image_col = colset_find(cols, IMAGE_COLUMN), batch_col = colset_find(cols, BATCH_COLUMN);
    size_t i;
    long k;

    if (m->map_cap < cols->n) {
        free(m->map);
        free(m->ops);
        m->map = calloc(cols->n, sizeof(*m->map));
        m->ops = calloc(cols->n, sizeof(*m->ops));
        if (!m->map || !m->ops)
            return err_set(e, ENOMEM, "out of memory");
        m->map_cap = cols->n;
    }
    memset(m->map, 0, cols->n * sizeof(*m->map));
    for (i = 0; i < h->nfields; i++) {
        k = colset_findn(cols, h->fields[i].data, h->fields[i].len);
        if (k < 0)
            return err_set(e, EINVAL, "%s: column '%.*s' changed since the header was read",
                           csv_reader_name(m->r), (int)h->fields[i].len, h->fields[i].data);
        m->map[k] = i + 1;
    }
    m->nops = 0;
    for (i = 0; i < cols->n; i++) {
        struct op *prev = m->nops ? &m->ops[m->nops - 1] : NULL;
        size_t f = m->map[i] - 1;

        if ((long)i == batch_col) {
            m->ops[m->nops++] = (struct op){ OP_BATCH, 0, 0 };
        } else if (!m->map[i]) {
            m->ops[m->nops++] = (struct op){ OP_EMPTY, 0, 0 };
            if (json_array_append_new(missing, json_string(cols->names[i])) < 0)
                return err_set(e, ENOMEM, "out of memory");
        } else if ((long)i == image_col) {
            m->ops[m->nops++] = (struct op){ OP_IMAGE, f, f };
        } else if (prev && prev->kind == OP_RUN && prev->last + 1 == f) {
            prev->last = f;
        } else {
            m->ops[m->nops++] = (struct op){ OP_RUN, f, f };
        }
    }
    plan_lines(m, h->nfields);
    return 0;
}

/* Writes an unsigned integer field. */
static int write_u64(struct csv_writer *w, uint64_t v, struct err *e)
{
    char buf[24], *p = buf + sizeof(buf);

    do
        *--p = (char)('0' + v % 10);
    while (v /= 10);
    return csv_write_raw(w, p, (size_t)(buf + sizeof(buf) - p), e);
}

/* Writes fields first..last: as one span when none was quoted, else field by field. */
static int write_run(struct csv_writer *w, const struct csv_field *f, size_t first, size_t last,
                     struct err *e)
{
    size_t i;

    for (i = first; i <= last && !f[i].quoted; i++)
        ;
    if (i > last)
        return csv_write_raw(w, f[first].data, (size_t)(f[last].data + f[last].len - f[first].data), e);
    for (i = first; i <= last; i++)
        if ((f[i].quoted ? csv_write_field(w, f[i].data, f[i].len, e)
                         : csv_write_raw(w, f[i].data, f[i].len, e)) < 0)
            return -1;
    return 0;
}

/*
 * Writes the ImageNumber field s[0..len) of the row at `line` plus the
 * batch's offset. Returns 0, -1 on a write error, or -2 for a value
 * outside 1..image_count (e set).
 */
static int write_image(const struct merge *m, const struct batch *b, const char *s, size_t len,
                       uint64_t line, struct csv_writer *w, struct err *e)
{
    uint64_t v;

    if (manifest_parse_u64(s, len, &v) < 0 || v < 1 || v > b->image_count) {
        err_set(e, EINVAL, "%s:%llu: ImageNumber '%.*s' outside 1..%llu (the batch's image_count)",
                csv_reader_name(m->r), (unsigned long long)line, (int)len, s,
                (unsigned long long)b->image_count);
        return -2;
    }
    return write_u64(w, v + b->offset, e);
}

/*
 * Writes one output row from a batch row taken whole by csv_read_line()
 * (m->lines): the line up to ImageNumber, the new ImageNumber, the rest of
 * the line, the batch id. Returns as write_image().
 */
static int write_line(const struct merge *m, const struct batch *b, const struct csv_line *l,
                      struct csv_writer *w, struct err *e)
{
    const char *p = l->data, *end = p + l->len, *f = p, *fe;
    long k;
    int rc;

    if (m->line_image < 0) {
        if (csv_write_raw(w, p, l->len, e) < 0)
            return -1;
    } else {
        /* csv_read_line() checked the field count, so these commas exist. */
        for (k = 0; k < m->line_image; k++)
            f = (const char *)memchr(f, ',', (size_t)(end - f)) + 1;
        fe = memchr(f, ',', (size_t)(end - f));
        if (!fe)
            fe = end;
        if (f > p && csv_write_raw(w, p, (size_t)(f - 1 - p), e) < 0)
            return -1;
        rc = write_image(m, b, f, (size_t)(fe - f), l->line, w, e);
        if (rc < 0)
            return rc;
        if (fe < end && csv_write_raw(w, fe + 1, (size_t)(end - fe - 1), e) < 0)
            return -1;
    }
    if (csv_write_str(w, b->id, e) < 0)
        return -1;
    return csv_write_eol(w, e);
}

/*
 * Writes one output row from a batch row following m->ops. Returns as
 * write_image().
 */
static int write_row(struct merge *m, const struct batch *b, const struct csv_record *rec,
                     struct csv_writer *w, struct err *e)
{
    const struct csv_field *f = rec->fields;
    size_t i;

    for (i = 0; i < m->nops; i++) {
        const struct op *op = &m->ops[i];
        int rc;

        switch (op->kind) {
        case OP_RUN:
            rc = write_run(w, f, op->first, op->last, e);
            break;
        case OP_IMAGE:
            rc = write_image(m, b, f[op->first].data, f[op->first].len, rec->line, w, e);
            break;
        case OP_BATCH:
            rc = csv_write_str(w, b->id, e);
            break;
        case OP_EMPTY:
        default:
            rc = csv_write_raw(w, "", 0, e);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return csv_write_eol(w, e);
}

/* Streams one batch's rows into w. Returns WORKER_OK or a failure class. */
static int copy_batch(struct merge *m, const struct batch *b, const struct manifest_table *t,
                      const struct colset *cols, struct csv_writer *w, struct out *out,
                      json_t *missing_all, uint64_t *rows, struct err *e)
{
    json_t *missing = json_array();
    struct csv_record *rec;
    uint64_t n = 0;
    int got, rc = WORKER_BAD_INPUT;

    m->r = missing ? open_batch_table(b, t, CSV_BUF_SIZE, CSV_NO_NUL, e) : NULL;
    if (!m->r || read_header(m->r, &rec, e) < 0 || map_columns(m, cols, rec, missing, e) < 0)
        goto out;
    if (json_array_size(missing) > 0) {
        json_t *f = json_pack("{s:O}", "missing_columns", missing);

        log_emit(LOG_LEVEL_WARN, &m->ctx, f, "batch %s: %s lacks %zu column(s), left empty",
                 b->id, t->file, json_array_size(missing));
        json_decref(f);
        json_array_append_new(missing_all, json_pack("{s:s, s:O}", "batch", b->id, "columns", missing));
    }
    for (;;) {
        struct csv_line line;
        int wr;

        /* Rows without quotes go as whole lines; the others through the parser. */
        got = m->lines ? csv_read_line(m->r, &line, e) : 2;
        if (got == 1) {
            wr = write_line(m, b, &line, w, e);
        } else {
            if (got == 2)
                got = csv_read(m->r, &rec, e);
            if (got != 1)
                break;
            wr = write_row(m, b, rec, w, e);
        }
        if (wr == -2)
            goto out;
        if (wr < 0) {
            rc = out->write_failed ? WORKER_WRITE_FAILED : WORKER_BAD_INPUT;
            goto out;
        }
        n++;
    }
    if (got < 0)
        goto out;
    if (n != t->rows) {
        err_set(e, EINVAL, "batch %s: %s has %llu rows, its manifest says %llu", b->id,
                csv_reader_name(m->r), (unsigned long long)n, (unsigned long long)t->rows);
        rc = WORKER_VERIFY_FAILED;
        goto out;
    }
    *rows += n;
    rc = WORKER_OK;
out:
    csv_reader_free(m->r);
    m->r = NULL;
    json_decref(missing);
    return rc;
}

/* Merges one table into tmp/<table>.csv and appends its manifest entry to tables. */
static int merge_table(struct merge *m, const char *table, const char *tmp, json_t *tables,
                       struct err *e)
{
    struct colset cols = { 0 };
    struct strbuf path = STRBUF_INIT;
    struct out out = { NULL, 0 };
    struct manifest_hasher *h = NULL;
    struct csv_writer *w = NULL;
    struct manifest_table mt = { 0 };
    json_t *missing = json_array(), *columns = json_array(), *entry;
    uint64_t rows = 0, expected = 0;
    size_t i;
    int rc = WORKER_BAD_INPUT, fd = -1, closed;

    if (!missing || !columns || merged_header(m, table, &cols, e) < 0)
        goto out;
    rc = WORKER_WRITE_FAILED;
    strbuf_addf(&path, "%s/%s.csv", tmp, table);
    fd = open(path.buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_errno(e, errno, "create %s", path.buf);
        goto out;
    }
    if (!(h = manifest_hasher_new(e)) ||
        !(out.aw = asyncwrite_open(fd, path.buf, ASYNCWRITE_DIRECT, manifest_hasher_update, h, e)) ||
        !(w = csv_writer_sink(out_sink, &out, path.buf, CSV_UNBUFFERED, e)))
        goto out;
    for (i = 0; i < cols.n; i++) {
        if (csv_write_str(w, cols.names[i], e) < 0)
            goto out;
        json_array_append_new(columns, json_string(cols.names[i]));
    }
    if (csv_write_eol(w, e) < 0)
        goto out;
    for (i = 0; i < m->nb; i++) {
        const struct manifest_table *t = batch_table(&m->b[i], table);

        expected += t->rows;
        rc = copy_batch(m, &m->b[i], t, &cols, w, &out, missing, &rows, e);
        if (rc != WORKER_OK)
            goto out;
    }
    rc = WORKER_WRITE_FAILED;
    if (csv_writer_flush(w, e) < 0)
        goto out;
    closed = asyncwrite_close(out.aw, e);
    out.aw = NULL;
    if (closed < 0)
        goto out;
    if (fsync(fd) < 0) {
        err_errno(e, errno, "fsync %s", path.buf);
        goto out;
    }
    closed = close(fd);
    fd = -1;
    if (closed < 0) {
        err_errno(e, errno, "close %s", path.buf);
        goto out;
    }
    if (rows != expected) {
        err_set(e, EINVAL, "%s: merged %llu rows, the batch manifests add up to %llu", table,
                (unsigned long long)rows, (unsigned long long)expected);
        rc = WORKER_VERIFY_FAILED;
        goto out;
    }
    mt.name = (char *)table;
    mt.file = path.buf + strlen(tmp) + 1;
    mt.rows = rows;
    mt.bytes = csv_writer_bytes(w);
    mt.columns = columns;
    manifest_hasher_finish(h, mt.sha256);
    h = NULL;
    entry = manifest_table_json(&mt);
    if (!entry || json_object_set(entry, "missing_columns", missing) < 0 ||
        json_array_append_new(tables, entry) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    log_info(&m->ctx, "merged %s: %llu rows from %zu batches, %llu bytes", table,
             (unsigned long long)rows, m->nb, (unsigned long long)mt.bytes);
    rc = WORKER_OK;
out:
    csv_writer_free(w);
    asyncwrite_close(out.aw, NULL);     /* joins the writer on failure paths */
    if (fd >= 0)
        close(fd);
    if (h) {
        char discard[65];

        manifest_hasher_finish(h, discard);
    }
    colset_free(&cols);
    json_decref(missing);
    json_decref(columns);
    strbuf_release(&path);
    return rc;
}

/* ---- the whole merge ---- */

static int load_failed(struct merge *m, struct err *e)
{
    struct strbuf text = STRBUF_INIT;
    const char *src = m->o->failed;
    json_error_t jerr;
    const json_t *f;
    size_t i;
    int rc = -1;

    if (!src || !*src) {
        m->failed = json_array();
        return m->failed ? 0 : err_set(e, ENOMEM, "out of memory");
    }
    if (src[0] == '@') {
        if (fileutil_read(src + 1, &text, 64 << 20, e) < 0)
            return err_prefix(e, "failed batches");
        src = text.buf;
    }
    m->failed = json_loads(src, 0, &jerr);
    if (!json_is_array(m->failed)) {
        err_set(e, EINVAL, "failed batches: not a JSON array [{\"batch\":..., \"wells\":[...]}]: %s",
                m->failed ? "wrong type" : jerr.text);
        goto out;
    }
    json_array_foreach(m->failed, i, f) {
        if (!json_is_string(json_object_get(f, "batch"))) {
            err_set(e, EINVAL, "failed batches: entry %zu has no \"batch\" string", i);
            goto out;
        }
    }
    rc = 0;
out:
    strbuf_release(&text);
    return rc;
}

static json_t *batches_json(const struct merge *m)
{
    json_t *a = json_array();
    size_t i;

    for (i = 0; a && i < m->nb; i++) {
        const struct batch *b = &m->b[i];

        json_array_append_new(a, json_pack("{s:s, s:s, s:O?, s:O?, s:I, s:I}", "batch", b->id,
                                           "dir", b->dir,
                                           "input_hash", json_object_get(b->manifest, "input_hash"),
                                           "wells", json_object_get(b->manifest, "wells"),
                                           "image_offset", (json_int_t)b->offset,
                                           "image_count", (json_int_t)b->image_count));
    }
    return a;
}

/* Whether a batch output file is something other than a table, the manifest or the done file. */
static int is_extra(const char *name)
{
    size_t n = strlen(name);

    return name[0] != '.' && strcmp(name, "manifest.json") != 0 &&
           strcmp(name, RUN_DONE_FILE) != 0 &&
           !(n > 4 && strcmp(name + n - 4, ".csv") == 0);
}

/* Streams src to a new file dst (1 MiB at a time: memory stays constant). */
static int copy_file(const char *src, const char *dst, struct err *e)
{
    static char buf[1 << 20];
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;
    ssize_t n;

    if (in < 0)
        return err_errno(e, errno, "open %s", src);
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        err_errno(e, errno, "create %s", dst);
        goto out;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (fileutil_write_all(out, buf, (size_t)n, dst, e) < 0)
            goto out;
    if (n < 0) {
        err_errno(e, errno, "read %s", src);
        goto out;
    }
    rc = 0;
out:
    close(in);
    if (out >= 0 && close(out) < 0 && rc == 0)
        rc = err_errno(e, errno, "close %s", dst);
    return rc;
}

/* Whether two files hold the same bytes (1 MiB at a time). */
static int same_content(const char *a, const char *b, struct err *e)
{
    static char ba[1 << 20], bb[1 << 20];
    int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC), same = -1;
    ssize_t na, nb;

    if (fa < 0 || fb < 0) {
        err_errno(e, errno, "open %s", fa < 0 ? a : b);
        goto out;
    }
    do {
        na = read(fa, ba, sizeof(ba));
        nb = read(fb, bb, sizeof(bb));
        if (na < 0 || nb < 0) {
            err_errno(e, errno, "read %s", na < 0 ? a : b);
            goto out;
        }
    } while (na == nb && na > 0 && memcmp(ba, bb, (size_t)na) == 0);
    same = na == nb && na == 0;
out:
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

/*
 * Files a pipeline saves besides its tables (an illumination-correction
 * pipeline's ICF_<dye>.npy, say) go to the results too, where a later step
 * reads them. Two batches saving the same name is an error, not a silent
 * choice of one, unless their bytes are the same.
 */
static int copy_extras(const struct merge *m, const char *tmp, struct err *e)
{
    struct strbuf src = STRBUF_INIT, dst = STRBUF_INIT;
    struct dirent *d;
    struct stat st;
    size_t i;
    int rc = 0, same;

    for (i = 0; i < m->nb && rc == 0; i++) {
        DIR *dir = opendir(m->b[i].dir);

        if (!dir)
            return err_errno(e, errno, "open %s", m->b[i].dir);
        while (rc == 0 && (d = readdir(dir))) {
            if (!is_extra(d->d_name))
                continue;
            strbuf_reset(&src);
            strbuf_reset(&dst);
            strbuf_addf(&src, "%s/%s", m->b[i].dir, d->d_name);
            strbuf_addf(&dst, "%s/%s", tmp, d->d_name);
            if (stat(src.buf, &st) < 0 || !S_ISREG(st.st_mode))
                continue;
            if (access(dst.buf, F_OK) != 0)
                rc = copy_file(src.buf, dst.buf, e);
            else if ((same = same_content(src.buf, dst.buf, e)) == 0)
                rc = err_set(e, EEXIST, "%s: batch %s saves a file another batch saved "
                             "with other contents", src.buf, m->b[i].id);
            else if (same < 0)
                rc = -1;
        }
        closedir(dir);
    }
    strbuf_release(&src);
    strbuf_release(&dst);
    return rc;
}

/* Creates the parent of dest if needed, then a temporary directory beside it. */
static int make_tmp(const char *dest, struct strbuf *tmp, struct err *e)
{
    struct strbuf parent = STRBUF_INIT;
    char *slash;
    int rc = 0;

    strbuf_adds(&parent, dest);
    slash = strrchr(parent.buf, '/');
    if (slash && slash != parent.buf) {
        *slash = '\0';
        rc = fileutil_mkdir_p(parent.buf, e);
    }
    strbuf_release(&parent);
    return rc < 0 ? -1 : fileutil_mkdtemp_beside(dest, tmp, e);
}

int merge_batches(const struct merge_opts *o, struct err *e)
{
    struct merge m = { .o = o, .ctx = { o->analysis, NULL, NULL } };
    struct strbuf tmp = STRBUF_INIT;
    json_t *tables = json_array(), *root = NULL;
    double t0 = monotime_now();
    size_t i;
    int rc = WORKER_BAD_INPUT;

    if (!tables || load_failed(&m, e) < 0)
        goto out;
    for (i = 0; i < o->ndirs; i++)
        if (add_batch(&m, o->dirs[i], e) < 0)
            goto out;
    if ((o->ndirs == 0 && o->root && scan_root(&m, e) < 0) || plan(&m, e) < 0)
        goto out;
    log_info(&m.ctx, "merging %zu tables of %zu batches into %s (%zu failed batches recorded)",
             m.ntables, m.nb, o->dest, json_array_size(m.failed));
    if (make_tmp(o->dest, &tmp, e) < 0) {
        rc = WORKER_WRITE_FAILED;
        goto out;
    }
    for (i = 0; i < m.ntables; i++) {
        rc = merge_table(&m, m.tables[i], tmp.buf, tables, e);
        if (rc != WORKER_OK)
            goto out;
    }
    rc = WORKER_WRITE_FAILED;
    if (copy_extras(&m, tmp.buf, e) < 0) {
        if (e->code == EEXIST)
            rc = WORKER_BAD_INPUT;
        goto out;
    }
    root = json_pack("{s:s?, s:o, s:O, s:O, s:f}", "analysis", o->analysis,
                     "batches", batches_json(&m), "failed_batches", m.failed,
                     "tables", tables, "duration_s", monotime_now() - t0);
    if (!root) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (manifest_write(tmp.buf, "merge", root, e) < 0 || fileutil_replace_dir(tmp.buf, o->dest, e) < 0)
        goto out;
    log_info(&m.ctx, "merge done in %.1f s: %s", monotime_now() - t0, o->dest);
    rc = WORKER_OK;
out:
    if (rc != WORKER_OK && tmp.len) {
        struct err re;

        if (fileutil_rm_rf(tmp.buf, &re) < 0)
            log_warn(&m.ctx, "cleanup: %s", re.msg);
    }
    for (i = 0; i < m.nb; i++)
        batch_free(&m.b[i]);
    free(m.b);
    free(m.tables);
    free(m.map);
    free(m.ops);
    json_decref(m.failed);
    json_decref(tables);
    json_decref(root);
    strbuf_release(&tmp);
    return rc;
}

/* Drops the last element of the array `key` in s and counts it in s[count_key]. */
static void omit_last(json_t *s, const char *key, const char *count_key)
{
    json_t *a = json_object_get(s, key);

    json_array_remove(a, json_array_size(a) - 1);
    json_object_set_new(s, count_key,
                        json_integer(json_integer_value(json_object_get(s, count_key)) + 1));
}

int merge_summary(const json_t *manifest, size_t max, struct strbuf *out)
{
    json_t *tables = json_array(), *failed = json_array(), *s = NULL;
    const json_t *t;
    char *text = NULL;
    size_t i;
    int rc = -1;

    json_array_foreach(json_object_get(manifest, "tables"), i, t)
        json_array_append_new(tables, json_pack("{s:O, s:O, s:O}", "name", json_object_get(t, "name"),
                                                "file", json_object_get(t, "file"),
                                                "rows", json_object_get(t, "rows")));
    json_array_foreach(json_object_get(manifest, "failed_batches"), i, t)
        json_array_append(failed, json_object_get(t, "batch"));
    s = json_pack("{s:o, s:I, s:o}", "tables", tables, "batches",
                  (json_int_t)json_array_size(json_object_get(manifest, "batches")),
                  "failedBatches", failed);
    if (!s)
        goto out;
    /* Each round drops one detail; a few hundred rounds of a few kB at worst. */
    while ((text = json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL &&
           strlen(text) > max) {
        free(text);
        text = NULL;
        if (json_array_size(json_object_get(s, "failedBatches")) > 0)
            omit_last(s, "failedBatches", "failedBatchesOmitted");
        else if (json_array_size(json_object_get(s, "tables")) > 0)
            omit_last(s, "tables", "tablesOmitted");
        else
            goto out;
    }
    if (text && strbuf_adds(out, text) == 0)
        rc = 0;
out:
    free(text);
    json_decref(s);
    return rc;
}

/* Leaves the summary of the merge at dest in the termination log. */
static void report_summary(const char *dest, const struct log_ctx *ctx)
{
    struct strbuf text = STRBUF_INIT;
    struct err e;
    json_t *m = manifest_read(dest, "merge", &e);

    if (m && merge_summary(m, WORKER_TERMINATION_MAX - 1, &text) == 0)
        worker_exit_message(text.buf);
    else
        log_warn(ctx, "no result summary for the termination log: %s", m ? "out of memory" : e.msg);
    json_decref(m);
    strbuf_release(&text);
}

enum { O_OUT, O_ROOT, O_FAILED, O_EXTRA, O_ANALYSIS, O_LOG, O_HELP, O_COUNT };

int merge_main(int argc, char **argv)
{
    struct cli_opt opts[O_COUNT] = {
        [O_OUT] = { "output-dir", "PLATEOP_OUTPUT_DIR", "DIR", "where the merged tables and manifest.json go", NULL },
        [O_ROOT] = { "root", "PLATEOP_MERGE_ROOT", "DIR", "find batch result directories under DIR (when none are given)", NULL },
        [O_FAILED] = { "failed-batches", "PLATEOP_FAILED_BATCHES", "JSON|@FILE", "failed batches to record: [{\"batch\":\"b3\",\"wells\":[\"C05\"],\"reason\":\"Timeout\"}]", NULL },
        [O_EXTRA] = { "allow-extra-columns", "PLATEOP_ALLOW_EXTRA_COLUMNS", NULL, "keep columns fewer than half of the batches have (unexpected columns) instead of failing", NULL },
        [O_ANALYSIS] = { "analysis", "PLATEOP_ANALYSIS", "NS/NAME", "the Analysis, for logs and the manifest", NULL },
        [O_LOG] = { "log-level", "PLATEOP_LOG_LEVEL", "LEVEL", "debug, info, warn or error", "info" },
        [O_HELP] = { "help", NULL, NULL, "this text", NULL },
    };
    struct merge_opts o = { 0 };
    struct cli_args args = { 0 };
    struct log_ctx ctx = { NULL, NULL, NULL };
    enum log_level level;
    struct err e;
    int rc = WORKER_USAGE, help;

    err_clear(&e);
    help = cli_parse_or_help(opts, O_COUNT, argc, argv, &args, "plateop-worker merge --output-dir DIR "
                              "(--root DIR | BATCH-DIR...) [options]", worker_exit_help, &e);
    if (help != 0) {
        rc = help > 0 ? WORKER_OK : WORKER_USAGE;
        goto out;
    }
    o.dest = opts[O_OUT].value;
    o.root = opts[O_ROOT].value;
    o.failed = opts[O_FAILED].value;
    o.analysis = ctx.analysis = opts[O_ANALYSIS].value;
    o.allow_extra_columns = cli_bool(opts[O_EXTRA].value);
    o.dirs = args.pos;
    o.ndirs = args.npos;
    if (!o.dest || (!o.root && o.ndirs == 0) || args.nrest > 0) {
        err_set(&e, EINVAL, "--output-dir and either --root or batch directories are required");
        goto out;
    }
    if (log_parse_level(opts[O_LOG].value, &level) < 0) {
        err_set(&e, EINVAL, "bad --log-level '%s'", opts[O_LOG].value);
        goto out;
    }
    log_set_level(level);
    rc = merge_batches(&o, &e);
    if (rc == WORKER_OK)
        report_summary(o.dest, &ctx);
out:
    if (rc != WORKER_OK)
        worker_exit_fail(rc, &ctx, e.msg);
    free(args.pos);
    return rc;
}
