/* run: one batch through CellProfiler, checked and atomically placed; see run.h. */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "exit.h"
#include "fileutil.h"
#include "log.h"
#include "manifest.h"
#include "monotime.h"
#include "proc.h"
#include "strbuf.h"

#define TAIL_LINES 10
#define TAIL_LINE_MAX 300
#define MISSING_LISTED 5

/* ---- input checks ---- */

/* LoadData column families; a name outside them is a mistake in the CSV. */
static const char *const known_prefixes[] = {
    "FileName_", "PathName_", "URL_", "Metadata_", "ObjectsFileName_", "ObjectsPathName_",
    "ObjectsURL_", "Series_", "Frame_", "ObjectsSeries_", "ObjectsFrame_",
};

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int known_column(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof(known_prefixes) / sizeof(known_prefixes[0]); i++)
        if (has_prefix(name, known_prefixes[i]) && name[strlen(known_prefixes[i])])
            return 1;
    return 0;
}

/* An image column: the file name column and its directory column (-1 for URL_). */
struct image_col {
    long file, dir;
};

/* Finds the column named prefix+suffix, or -1. */
static long find_column(const struct csv_record *h, const char *prefix, const char *suffix)
{
    size_t i, pl = strlen(prefix);

    for (i = 0; i < h->nfields; i++)
        if (has_prefix(h->fields[i].data, prefix) && strcmp(h->fields[i].data + pl, suffix) == 0)
            return (long)i;
    return -1;
}

/* Pairs each FileName_X with PathName_X (and the Objects* variants); URL_X stands alone. */
static int image_columns(const struct csv_record *h, struct image_col *cols, size_t *ncols,
                         const char *path, struct err *e)
{
    static const char *const pairs[][2] = {
        { "FileName_", "PathName_" }, { "ObjectsFileName_", "ObjectsPathName_" },
    };
    size_t i, k;

    *ncols = 0;
    for (i = 0; i < h->nfields; i++) {
        const char *name = h->fields[i].data;

        if (!known_column(name))
            return err_set(e, EINVAL, "%s: unknown column '%s' (LoadData takes FileName_, "
                           "PathName_, URL_, Metadata_, Objects*, Series_ and Frame_ columns)",
                           path, name);
        if (has_prefix(name, "URL_") || has_prefix(name, "ObjectsURL_")) {
            cols[(*ncols)++] = (struct image_col){ (long)i, -1 };
            continue;
        }
        for (k = 0; k < 2; k++) {
            const char *mine = NULL, *other = NULL;
            long j;

            if (has_prefix(name, pairs[k][0]))
                mine = pairs[k][0], other = pairs[k][1];
            else if (has_prefix(name, pairs[k][1]))
                mine = pairs[k][1], other = pairs[k][0];
            if (!mine)
                continue;
            j = find_column(h, other, name + strlen(mine));
            if (j < 0)
                return err_set(e, EINVAL, "%s: column '%s' has no matching %s%s column",
                               path, name, other, name + strlen(mine));
            if (mine == pairs[k][0])
                cols[(*ncols)++] = (struct image_col){ (long)i, j };
        }
    }
    if (*ncols == 0)
        return err_set(e, EINVAL, "%s: no image columns (FileName_<channel> and PathName_<channel>)",
                       path);
    return 0;
}

/* The local path of an image cell; 0 with *skip set for a non-file URL. */
static int image_path(const struct csv_record *rec, const struct image_col *c, struct strbuf *out,
                      int *skip)
{
    const struct csv_field *f = &rec->fields[c->file];

    strbuf_reset(out);
    *skip = 0;
    if (c->dir < 0) {
        if (has_prefix(f->data, "file://"))
            return strbuf_adds(out, f->data + 7);
        *skip = strstr(f->data, "://") != NULL;
        return strbuf_adds(out, f->data);
    }
    if (rec->fields[c->dir].len > 0 && f->data[0] != '/' &&
        (strbuf_adds(out, rec->fields[c->dir].data) < 0 || strbuf_addch(out, '/') < 0))
        return -1;
    return strbuf_adds(out, f->data);
}

/*
 * Parses the LoadData CSV, checks its columns, and opens every image it
 * names. Counts the image sets and hashes the file's bytes into sha. The
 * error lists the first missing images.
 */
static int check_loaddata(const char *path, uint64_t *image_sets, char sha[65], struct err *e)
{
    struct strbuf img = STRBUF_INIT, missing = STRBUF_INIT;
    struct manifest_hasher *h = NULL;
    struct image_col *cols = NULL;
    struct csv_reader *r = NULL;
    struct csv_record *rec;
    uint64_t nmissing = 0, nimages = 0;
    size_t ncols = 0, i;
    int rc = -1, got;

    *image_sets = 0;
    r = csv_reader_open(path, CSV_SKIP_EMPTY, e);
    h = r ? manifest_hasher_new(e) : NULL;
    if (!h)
        goto out;
    csv_reader_set_tap(r, manifest_hasher_update, h);
    got = csv_read(r, &rec, e);
    if (got == 0)
        err_set(e, EINVAL, "%s: empty file, no header", path);
    if (got <= 0)
        goto out;
    cols = calloc(rec->nfields, sizeof(*cols));
    if (!cols) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (image_columns(rec, cols, &ncols, path, e) < 0)
        goto out;
    while ((got = csv_read(r, &rec, e)) == 1) {
        (*image_sets)++;
        for (i = 0; i < ncols; i++) {
            int skip, fd;

            if (image_path(rec, &cols[i], &img, &skip) < 0) {
                err_set(e, ENOMEM, "out of memory");
                goto out;
            }
            if (skip)
                continue;
            nimages++;
            fd = open(img.buf, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                close(fd);
                continue;
            }
            if (nmissing++ < MISSING_LISTED)
                strbuf_addf(&missing, "%s%s (line %llu: %s)", nmissing > 1 ? ", " : "", img.buf,
                            (unsigned long long)rec->line, strerror(errno));
        }
    }
    if (got < 0)
        goto out;
    if (*image_sets == 0) {
        err_set(e, EINVAL, "%s: no image sets (header only)", path);
        goto out;
    }
    if (nmissing > 0) {
        err_set(e, ENOENT, "%s: %llu of %llu images missing or unreadable: %s%s", path,
                (unsigned long long)nmissing, (unsigned long long)nimages, missing.buf,
                nmissing > MISSING_LISTED ? ", ..." : "");
        goto out;
    }
    manifest_hasher_finish(h, sha);
    h = NULL;
    rc = 0;
out:
    if (h)
        manifest_hasher_finish(h, sha);
    csv_reader_free(r);
    free(cols);
    strbuf_release(&img);
    strbuf_release(&missing);
    return rc;
}

/* Checks the pipeline is a non-empty regular file and hashes its bytes into sha. */
static int check_pipeline(const char *path, char sha[65], struct err *e)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

    if (fd < 0)
        return err_errno(e, errno, "pipeline %s", path);
    if (fstat(fd, &st) < 0)
        err_errno(e, errno, "pipeline %s", path);
    else if (!S_ISREG(st.st_mode))
        err_set(e, EINVAL, "pipeline %s: not a regular file", path);
    else if (st.st_size == 0)
        err_set(e, EINVAL, "pipeline %s: empty file", path);
    else
        rc = manifest_hash_fd(fd, path, sha, e);
    close(fd);
    return rc;
}

/* ---- the rerun shortcut ---- */

/*
 * The hash a result records and a rerun compares: the controller's hash
 * (of its plan: image paths, parameters, the pipeline as it saw it) mixed
 * with the bytes of the pipeline file and of the LoadData CSV as this run
 * reads them, since either may be edited in place under the same path
 * after the controller hashed its view. Empty when the controller gave no
 * hash: then nothing is reused.
 */
static int inputs_hash(const struct run_opts *o, const char *pipeline_sha, const char *data_sha,
                       struct strbuf *out, struct err *e)
{
    struct manifest_hasher *h;
    struct strbuf text = STRBUF_INIT;
    char hex[65];
    int rc;

    if (!o->input_hash || !*o->input_hash)
        return 0;
    h = manifest_hasher_new(e);
    if (!h)
        return -1;
    rc = strbuf_addf(&text, "plateop batch inputs 1\n%s\n%s\n%s\n", o->input_hash, pipeline_sha,
                     data_sha) < 0 ? err_set(e, ENOMEM, "out of memory")
                                   : manifest_hasher_update(h, text.buf, text.len, e);
    manifest_hasher_finish(h, hex);
    if (rc == 0 && strbuf_addf(out, "sha256:%s", hex) < 0)
        rc = err_set(e, ENOMEM, "out of memory");
    strbuf_release(&text);
    return rc;
}

/* 1 if output_dir holds a complete result made from inputs with this hash. */
static int already_done(const struct run_opts *o, const char *input_hash, const struct log_ctx *ctx)
{
    struct strbuf path = STRBUF_INIT;
    const char *hash = NULL;
    json_t *m, *t;
    struct err e;
    size_t i;
    int done = 0;

    if (!*input_hash)
        return 0;
    m = manifest_read(o->output_dir, "batch", &e);
    if (!m) {
        if (e.code != ENOENT)
            log_warn(ctx, "existing result not reused: %s", e.msg);
        return 0;
    }
    if (json_unpack(m, "{s:s}", "input_hash", &hash) < 0 || strcmp(hash, input_hash) != 0)
        goto out;
    json_array_foreach(json_object_get(m, "tables"), i, t) {
        struct manifest_table mt;
        struct stat st;
        int ok;

        if (manifest_table_parse(t, &mt, 0, &e) < 0)
            goto out;
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/%s", o->output_dir, mt.file);
        ok = stat(path.buf, &st) == 0 && (uint64_t)st.st_size == mt.bytes;
        manifest_table_release(&mt);
        if (!ok) {
            log_warn(ctx, "existing result not reused: %s is missing or changed", path.buf);
            goto out;
        }
    }
    done = 1;
out:
    json_decref(m);
    strbuf_release(&path);
    return done;
}

/* ---- running CellProfiler ---- */

struct output_tail {
    const struct log_ctx *ctx;
    json_t *fields;
    char lines[TAIL_LINES][TAIL_LINE_MAX];
    size_t next, count;
};

/* Logs a line of CellProfiler's output and keeps it for the failure message. */
static void on_cp_line(void *arg, const char *line, size_t len)
{
    struct output_tail *t = arg;
    size_t n = len < TAIL_LINE_MAX - 1 ? len : TAIL_LINE_MAX - 1;

    log_emit(LOG_LEVEL_INFO, t->ctx, t->fields, "cellprofiler: %.*s", (int)len, line);
    if (len == 0)
        return;
    memcpy(t->lines[t->next], line, n);
    t->lines[t->next][n] = '\0';
    t->next = (t->next + 1) % TAIL_LINES;
    if (t->count < TAIL_LINES)
        t->count++;
}

static void tail_text(const struct output_tail *t, struct strbuf *out)
{
    size_t i;

    if (t->count == 0) {
        strbuf_adds(out, "(no output)");
        return;
    }
    for (i = 0; i < t->count; i++)
        strbuf_addf(out, "%s%s", i ? " | " : "",
                    t->lines[(t->next + TAIL_LINES - t->count + i) % TAIL_LINES]);
}

/* Runs CellProfiler into tmp; returns WORKER_OK or the failure class. */
static int run_cellprofiler(const struct run_opts *o, const char *tmp, const struct log_ctx *ctx,
                            struct err *e)
{
    struct strbuf done = STRBUF_INIT, tail = STRBUF_INIT;
    struct output_tail *t = calloc(1, sizeof(*t));
    const char **argv = calloc(12 + o->ncp_args, sizeof(*argv));
    struct proc_spec spec = { 0 };
    struct proc_result res;
    size_t n = 0, i;
    int rc = WORKER_CP_FAILED;

    if (!t || !argv || strbuf_addf(&done, "%s/%s", tmp, RUN_DONE_FILE) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    t->ctx = ctx;
    t->fields = json_pack("{s:s}", "source", "cellprofiler");
    argv[n++] = o->cellprofiler;
    argv[n++] = "-c";
    argv[n++] = "-r";
    argv[n++] = "-p";
    argv[n++] = o->pipeline;
    argv[n++] = "--data-file";
    argv[n++] = o->data_file;
    argv[n++] = "-o";
    argv[n++] = tmp;
    argv[n++] = "-d";
    argv[n++] = done.buf;
    for (i = 0; i < o->ncp_args; i++)
        argv[n++] = o->cp_args[i];
    spec.argv = (char *const *)argv;
    spec.timeout_s = o->timeout_s;
    spec.kill_grace_s = o->kill_grace_s;
    spec.mem_limit = o->mem_limit;
    spec.on_line = on_cp_line;
    spec.ctx = t;
    log_info(ctx, "starting %s on %s (timeout %.0f s)", o->cellprofiler, o->data_file, o->timeout_s);
    if (proc_run(&spec, &res, e) < 0)
        goto out;
    tail_text(t, &tail);
    if (res.interrupted) {
        err_set(e, EINTR, "stopped by a signal after %.1f s; CellProfiler's process group was killed",
                res.seconds);
        rc = WORKER_TERMINATED;
    } else if (res.timed_out) {
        err_set(e, ETIMEDOUT, "CellProfiler ran past the %.0f s timeout and was killed; last output: %s",
                o->timeout_s, tail.buf);
        rc = WORKER_TIMEOUT;
    } else if (!res.exited) {
        err_set(e, EINTR, "CellProfiler was killed by signal %d (%s)%s; last output: %s", res.signal,
                strsignal(res.signal), res.signal == 9 ? ", out of memory?" : "", tail.buf);
    } else if (res.status != 0) {
        err_set(e, EIO, "CellProfiler exited with status %d; last output: %s", res.status, tail.buf);
    } else {
        struct strbuf content = STRBUF_INIT;
        struct err fe;
        size_t len;

        rc = WORKER_INCOMPLETE;
        if (fileutil_read(done.buf, &content, 4096, &fe) < 0) {
            err_set(e, ENOENT, "CellProfiler exited 0 but wrote no done file (%s); last output: %s",
                    fe.msg, tail.buf);
        } else {
            for (len = content.len; len > 0 && strchr(" \t\r\n", content.buf[len - 1]); len--)
                ;
            strbuf_setlen(&content, len);
            if (strcmp(content.buf, "Complete") != 0)
                err_set(e, EIO, "CellProfiler exited 0 but its done file says '%.100s', not "
                        "'Complete'; last output: %s", content.buf, tail.buf);
            else
                rc = WORKER_OK;
        }
        strbuf_release(&content);
    }
    if (rc == WORKER_OK)
        log_info(ctx, "CellProfiler finished in %.1f s", res.seconds);
out:
    if (t)
        json_decref(t->fields);
    free(t);
    free(argv);
    strbuf_release(&done);
    strbuf_release(&tail);
    return rc;
}

/* ---- outputs ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Scans every *.csv in tmp into a JSON array; checks the expected tables. */
static int collect_tables(const struct run_opts *o, const char *tmp, json_t *tables,
                          uint64_t *image_max, struct err *e)
{
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    struct dirent *de;
    const char *p;
    DIR *d = opendir(tmp);
    int rc = -1;

    if (!d)
        return err_errno(e, errno, "read output dir %s", tmp);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len <= 4 || strcmp(de->d_name + len - 4, ".csv") != 0 || de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));

            if (!nn)
                goto oom;
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name)))
            goto oom;
        n++;
    }
    if (n > 1)   /* qsort(NULL, 0, ...) is undefined */
        qsort(names, n, sizeof(*names), cmp_str);
    /* Every expected table must be there before any is scanned. */
    for (p = o->tables; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p), k;

        for (k = 0; k < n; k++)
            if (strlen(names[k]) == len + 4 && strncmp(names[k], p, len) == 0)
                break;
        if (len > 0 && k == n) {
            err_set(e, ENOENT, "CellProfiler wrote no %.*s table (%.*s.csv) although the run "
                    "reported success", (int)len, p, (int)len, p);
            goto out;
        }
        p = end ? end + 1 : NULL;
    }
    if (n == 0) {
        err_set(e, ENOENT, "CellProfiler wrote no tables (*.csv) although the run reported success");
        goto out;
    }
    for (i = 0; i < n; i++) {
        struct manifest_table t;

        if (manifest_scan_table(tmp, names[i], &t, e) < 0)
            goto out;
        if (t.image_number_max > *image_max)
            *image_max = t.image_number_max;
        rc = json_array_append_new(tables, manifest_table_json(&t));
        manifest_table_release(&t);
        if (rc < 0)
            goto oom;
        rc = -1;
    }
    rc = 0;
    goto out;
oom:
    err_set(e, ENOMEM, "out of memory");
out:
    closedir(d);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static json_t *wells_json(const char *wells)
{
    json_t *a = json_array();
    const char *p = wells;

    while (a && p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len)
            json_array_append_new(a, json_stringn(p, len));
        p = end ? end + 1 : NULL;
    }
    return a;
}

/* fsyncs every file of dir, then dir itself. */
static int sync_dir(const char *dir, struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    struct dirent *de;
    DIR *d = opendir(dir);
    int rc = 0;

    if (!d)
        return err_errno(e, errno, "open %s", dir);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/%s", dir, de->d_name);
        rc = fileutil_fsync_path(path.buf, e);
    }
    closedir(d);
    strbuf_release(&path);
    return rc < 0 ? -1 : fileutil_fsync_path(dir, e);
}

/* What a batch was made from, for its manifest. */
struct inputs {
    char pipeline_sha[65], data_sha[65];
    struct strbuf hash;         /* inputs_hash() */
    uint64_t image_sets;
};

/* Checks, writes the manifest into tmp, and swaps tmp into place. */
static int finish_outputs(const struct run_opts *o, const char *tmp, const char *batch,
                          const struct inputs *in, double t0, double cp_s, struct err *e)
{
    json_t *root = NULL, *tables = json_array();
    uint64_t image_max = in->image_sets;
    int rc = WORKER_BAD_OUTPUT;

    if (!tables) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (collect_tables(o, tmp, tables, &image_max, e) < 0)
        goto out;
    rc = WORKER_WRITE_FAILED;
    root = json_pack("{s:s?, s:s, s:o, s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:O}",
                     "analysis", o->analysis, "batch", batch, "wells", wells_json(o->wells),
                     "input_hash", in->hash.buf, "pipeline_sha256", in->pipeline_sha,
                     "data_file_sha256", in->data_sha,
                     "image_sets", (json_int_t)in->image_sets, "image_count", (json_int_t)image_max,
                     "cellprofiler_s", cp_s, "duration_s", monotime_now() - t0, "tables", tables);
    if (!root) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (sync_dir(tmp, e) < 0 || manifest_write(tmp, "batch", root, e) < 0 ||
        fileutil_replace_dir(tmp, o->output_dir, e) < 0)
        goto out;
    rc = WORKER_OK;
out:
    json_decref(root);
    json_decref(tables);
    return rc;
}

int run_batch(const struct run_opts *o, struct err *e)
{
    struct strbuf tmp = STRBUF_INIT, parent = STRBUF_INIT;
    struct inputs in = { .hash = STRBUF_INIT };
    const char *batch = o->batch;
    struct log_ctx ctx;
    double t0 = monotime_now(), t1;
    int rc = WORKER_BAD_INPUT;
    char *slash;

    if (!batch || !*batch) {
        batch = strrchr(o->output_dir, '/');
        batch = batch ? batch + 1 : o->output_dir;
    }
    ctx = (struct log_ctx){ o->analysis, batch, o->wells };
    if (check_pipeline(o->pipeline, in.pipeline_sha, e) < 0 ||
        check_loaddata(o->data_file, &in.image_sets, in.data_sha, e) < 0 ||
        inputs_hash(o, in.pipeline_sha, in.data_sha, &in.hash, e) < 0)
        goto out;
    if (already_done(o, in.hash.buf, &ctx)) {
        log_info(&ctx, "%s already holds this batch's result (input hash %s): nothing to do",
                 o->output_dir, in.hash.buf);
        rc = WORKER_OK;
        goto out;
    }
    if (strbuf_adds(&parent, o->output_dir) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    slash = strrchr(parent.buf, '/');
    if (slash && slash != parent.buf) {
        *slash = '\0';
        if (fileutil_mkdir_p(parent.buf, e) < 0) {
            err_prefix(e, "output dir %s", o->output_dir);
            goto out;
        }
    }
    if (fileutil_mkdtemp_beside(o->output_dir, &tmp, e) < 0)
        goto out;
    log_info(&ctx, "inputs checked: %llu image sets; output in %s",
             (unsigned long long)in.image_sets, tmp.buf);
    t1 = monotime_now();
    rc = run_cellprofiler(o, tmp.buf, &ctx, e);
    if (rc == WORKER_OK)
        rc = finish_outputs(o, tmp.buf, batch, &in, t0, monotime_now() - t1, e);
    if (rc == WORKER_OK)
        log_info(&ctx, "batch done in %.1f s: %s", monotime_now() - t0, o->output_dir);
out:
    if (rc != WORKER_OK && tmp.len) {
        struct err re;

        if (fileutil_rm_rf(tmp.buf, &re) < 0)
            log_warn(&ctx, "cleanup: %s", re.msg);
    }
    strbuf_release(&tmp);
    strbuf_release(&parent);
    strbuf_release(&in.hash);
    return rc;
}

/* ---- the subcommand ---- */

enum {
    O_PIPELINE, O_DATA, O_OUT, O_TIMEOUT, O_CP, O_CP_ARGS, O_TABLES, O_ANALYSIS, O_BATCH,
    O_WELLS, O_HASH, O_MEM, O_GRACE, O_LOG, O_HELP, O_COUNT
};

/*
 * Splits a whitespace-separated list into argv-style pointers into buf, in
 * an array with room for `extra` more. NULL on allocation failure.
 */
static char **split_words(char *buf, size_t extra, size_t *n)
{
    char **v = calloc(strlen(buf) / 2 + 2 + extra, sizeof(*v));
    char *p = buf;

    *n = 0;
    while (v && *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            *p++ = '\0';
        if (!*p)
            break;
        v[(*n)++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
    }
    return v;
}

int run_main(int argc, char **argv)
{
    struct cli_opt opts[O_COUNT] = {
        [O_PIPELINE] = { "pipeline", "PLATEOP_PIPELINE", "FILE", "CellProfiler pipeline (.cppipe)", NULL },
        [O_DATA] = { "data-file", "PLATEOP_DATA_FILE", "CSV", "LoadData CSV of the batch's image sets", NULL },
        [O_OUT] = { "output-dir", "PLATEOP_OUTPUT_DIR", "DIR", "where the batch's tables and manifest.json go", NULL },
        [O_TIMEOUT] = { "timeout", "PLATEOP_TIMEOUT", "DURATION", "kill CellProfiler after this long (90, 90s, 30m, 2h; 0: never)", "0" },
        [O_CP] = { "cellprofiler", "PLATEOP_CELLPROFILER", "PROGRAM", "CellProfiler executable", "cellprofiler" },
        [O_CP_ARGS] = { "cellprofiler-args", "PLATEOP_CELLPROFILER_ARGS", "ARGS", "extra CellProfiler arguments, space-separated (or give them after --)", NULL },
        [O_TABLES] = { "tables", "PLATEOP_TABLES", "NAMES", "comma-separated tables that must be written (Image = Image.csv)", "Image" },
        [O_ANALYSIS] = { "analysis", "PLATEOP_ANALYSIS", "NS/NAME", "the Analysis, for logs and the manifest", NULL },
        [O_BATCH] = { "batch", "PLATEOP_BATCH", "ID", "batch id (default: the output dir's name)", NULL },
        [O_WELLS] = { "wells", "PLATEOP_WELLS", "LIST", "the batch's wells, comma-separated", NULL },
        [O_HASH] = { "input-hash", "PLATEOP_INPUT_HASH", "HASH", "the controller's hash of the batch's inputs; a result made from the same hash, pipeline bytes and LoadData bytes is kept", NULL },
        [O_MEM] = { "memory-limit", "PLATEOP_MEMORY_LIMIT", "MB", "address-space limit for CellProfiler (0: none)", "0" },
        [O_GRACE] = { "kill-grace", "PLATEOP_KILL_GRACE", "DURATION", "time between SIGTERM and SIGKILL", "10s" },
        [O_LOG] = { "log-level", "PLATEOP_LOG_LEVEL", "LEVEL", "debug, info, warn or error", "info" },
        [O_HELP] = { "help", NULL, NULL, "this text", NULL },
    };
    struct run_opts o = { 0 };
    struct cli_args args = { 0 };
    char *words = NULL, **cp_args = NULL;
    enum log_level level;
    char *endp;
    struct err e;
    int rc = WORKER_USAGE, help;
    size_t nwords = 0, i;

    err_clear(&e);
    help = cli_parse_or_help(opts, O_COUNT, argc, argv, &args, "plateop-worker run --pipeline FILE "
                              "--data-file CSV --output-dir DIR [options] [-- CELLPROFILER-ARGS...]",
                              worker_exit_help, &e);
    if (help != 0) {
        rc = help > 0 ? WORKER_OK : WORKER_USAGE;
        goto out;
    }
    o.pipeline = opts[O_PIPELINE].value;
    o.data_file = opts[O_DATA].value;
    o.output_dir = opts[O_OUT].value;
    o.cellprofiler = opts[O_CP].value;
    o.tables = opts[O_TABLES].value;
    o.analysis = opts[O_ANALYSIS].value;
    o.batch = opts[O_BATCH].value;
    o.wells = opts[O_WELLS].value;
    o.input_hash = opts[O_HASH].value;
    o.mem_limit = strtoull(opts[O_MEM].value, &endp, 10) << 20;
    if (!o.pipeline || !o.data_file || !o.output_dir) {
        err_set(&e, EINVAL, "--pipeline, --data-file and --output-dir are required "
                "(or PLATEOP_PIPELINE, PLATEOP_DATA_FILE, PLATEOP_OUTPUT_DIR)");
        goto out;
    }
    if (args.npos > 0) {
        err_set(&e, EINVAL, "unexpected argument '%s' (CellProfiler arguments go after --)", args.pos[0]);
        goto out;
    }
    if (cli_duration(opts[O_TIMEOUT].value, &o.timeout_s) < 0 ||
        cli_duration(opts[O_GRACE].value, &o.kill_grace_s) < 0 || *endp ||
        log_parse_level(opts[O_LOG].value, &level) < 0) {
        err_set(&e, EINVAL, "bad --timeout, --kill-grace, --memory-limit or --log-level value");
        goto out;
    }
    log_set_level(level);
    /* Extra arguments: the env/flag list first, then whatever follows "--". */
    words = strdup(opts[O_CP_ARGS].value ? opts[O_CP_ARGS].value : "");
    cp_args = words ? split_words(words, args.nrest, &nwords) : NULL;
    if (!cp_args) {
        err_set(&e, ENOMEM, "out of memory for CellProfiler's arguments");
        rc = WORKER_CP_FAILED;     /* as when run_cellprofiler() cannot build its argv */
        goto out;
    }
    for (i = 0; i < args.nrest; i++)
        cp_args[nwords + i] = args.rest[i];
    o.cp_args = cp_args;
    o.ncp_args = nwords + args.nrest;
    rc = run_batch(&o, &e);
out:
    if (rc != WORKER_OK) {
        struct log_ctx ctx = { o.analysis, o.batch, o.wells };

        worker_exit_fail(rc, &ctx, e.msg);
        if (rc == WORKER_USAGE)
            fputs("plateop-worker run --help lists the options\n", stderr);
    }
    free(words);
    free(cp_args);
    free(args.pos);
    return rc;
}
