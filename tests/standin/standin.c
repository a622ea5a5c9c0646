/*
 * cellprofiler-standin: a CellProfiler stand-in for tests (never installed).
 *
 * Takes CellProfiler's headless command line
 *   -c -r -p PIPELINE --data-file CSV -o OUTDIR -d DONEFILE
 * (other flags, such as --plugins-directory DIR, are accepted and ignored),
 * opens and reads every image the LoadData CSV names (FileName_X with
 * PathName_X, or URL_X), and writes what ExportToSpreadsheet writes:
 * Experiment.csv (Key,Value), Image.csv and the per-object tables Cells.csv,
 * Nuclei.csv and Cytoplasm.csv, with ImageNumber, ObjectNumber, the
 * Metadata_* columns and measurement columns whose values derive from the
 * image bytes (same images, same tables). Then the done file says Complete.
 *
 * Environment (a Kubernetes Job spec can set these):
 *   PLATEOP_STANDIN_MODE        ok (default), fail (exit 1), hang, hang-group
 *                               (fork a child, both ignore SIGTERM and hang,
 *                               after printing "stand-in: group PGID pids
 *                               PID CHILD"), no-output (exit 0, nothing
 *                               written), no-tables (done file Complete, no
 *                               table), incomplete (done file without
 *                               Complete), oom (allocate without bound),
 *                               missing-table (no Cells.csv), empty-table
 *                               (Nuclei.csv of zero bytes)
 *   PLATEOP_STANDIN_FAIL_WELLS  comma-separated wells: the mode (fail when
 *                               unset) applies only to a batch holding one of
 *                               them; other batches run normally
 *   PLATEOP_STANDIN_SLEEP_MS    sleep per image set (throttling tests)
 *   PLATEOP_STANDIN_MEMORY_MB   touch this much memory and hold it for 2 s, as a
 *                               pipeline with a known footprint does (OOM retries)
 *   PLATEOP_STANDIN_ARGV_FILE   write the command line here, one argument per
 *                               line, so a test sees what reached CellProfiler
 *
 * A pipeline whose file name contains "illum" is taken for an illumination
 * correction pipeline: it also saves ICF_<dye>.npy for every channel, where
 * the LoadData CSV of a later step expects them.
 *   PLATEOP_STANDIN_OBJECTS     objects per image set in each object table (5)
 *   PLATEOP_STANDIN_COLUMNS     measurement columns per table (200)
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"
#include "strbuf.h"

#define MAX_CHANNELS 64

struct channel {
    char *dye;
    long file_col, path_col;    /* path_col -1 for URL_ columns */
};

struct loaddata {
    struct channel ch[MAX_CHANNELS];
    size_t nch;
    char **meta_names;          /* Metadata_* column names */
    long *meta_cols;
    size_t nmeta;
    char ***meta;               /* meta[set][k] */
    uint64_t *hash;             /* per image set, over its images' bytes */
    size_t nsets;
    int has_fail_well;
};

struct opts {
    const char *pipeline, *data_file, *out_dir, *done_file;
    const char *mode;
    long objects, columns, sleep_ms;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        die("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    if (!p)
        die("out of memory");
    return p;
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);

    return v && *v ? strtol(v, NULL, 10) : def;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Reads a whole image, folding its bytes into h (FNV-1a). */
static uint64_t hash_file(const char *path, uint64_t h, long line)
{
    unsigned char buf[65536];
    ssize_t n, i;
    int fd = open(path, O_RDONLY);

    if (fd < 0)
        die("LoadData line %ld: cannot open image %s: %s", line, path, strerror(errno));
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ULL;
    if (n < 0)
        die("read %s: %s", path, strerror(errno));
    close(fd);
    return h;
}

static int in_list(const char *list, const char *s)
{
    size_t len = strlen(s);
    const char *p = list;

    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);

        if (n == len && strncmp(p, s, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static void read_header(struct loaddata *ld, const struct csv_record *h)
{
    size_t i, j;

    ld->meta_names = xcalloc(h->nfields, sizeof(char *));
    ld->meta_cols = xcalloc(h->nfields, sizeof(long));
    for (i = 0; i < h->nfields; i++) {
        const char *name = h->fields[i].data;

        if (strncmp(name, "Metadata_", 9) == 0) {
            ld->meta_names[ld->nmeta] = xstrdup(name);
            ld->meta_cols[ld->nmeta++] = (long)i;
        } else if ((strncmp(name, "FileName_", 9) == 0 || strncmp(name, "URL_", 4) == 0) &&
                   ld->nch < MAX_CHANNELS) {
            struct channel *c = &ld->ch[ld->nch++];

            c->dye = xstrdup(strchr(name, '_') + 1);
            c->file_col = (long)i;
            c->path_col = -1;
            for (j = 0; name[0] == 'F' && j < h->nfields; j++)
                if (strncmp(h->fields[j].data, "PathName_", 9) == 0 &&
                    strcmp(h->fields[j].data + 9, c->dye) == 0)
                    c->path_col = (long)j;
            if (name[0] == 'F' && c->path_col < 0)
                die("LoadData: %s has no PathName_%s column", name, c->dye);
        }
    }
    if (ld->nch == 0)
        die("LoadData: no image columns in %s", "the header");
}

static void read_loaddata(const struct opts *o, struct loaddata *ld, const char *fail_wells)
{
    struct strbuf path = STRBUF_INIT;
    struct csv_reader *r;
    struct csv_record *rec;
    size_t cap = 16, i;
    struct err e;
    int got;

    r = csv_reader_open(o->data_file, CSV_SKIP_EMPTY, &e);
    if (!r || csv_read(r, &rec, &e) != 1)
        die("LoadData: %s", r ? "no header" : e.msg);
    read_header(ld, rec);
    ld->meta = xcalloc(cap, sizeof(char **));
    ld->hash = xcalloc(cap, sizeof(uint64_t));
    while ((got = csv_read(r, &rec, &e)) == 1) {
        uint64_t h = 0xcbf29ce484222325ULL;

        if (ld->nsets == cap) {
            cap *= 2;
            ld->meta = realloc(ld->meta, cap * sizeof(char **));
            ld->hash = realloc(ld->hash, cap * sizeof(uint64_t));
            if (!ld->meta || !ld->hash)
                die("out of memory");
        }
        ld->meta[ld->nsets] = xcalloc(ld->nmeta, sizeof(char *));
        for (i = 0; i < ld->nmeta; i++) {
            const char *v = rec->fields[ld->meta_cols[i]].data;

            ld->meta[ld->nsets][i] = xstrdup(v);
            if (strcmp(ld->meta_names[i], "Metadata_Well") == 0 && fail_wells && in_list(fail_wells, v))
                ld->has_fail_well = 1;
        }
        for (i = 0; i < ld->nch; i++) {
            const struct channel *c = &ld->ch[i];
            const char *file = rec->fields[c->file_col].data;

            strbuf_reset(&path);
            if (c->path_col < 0)
                strbuf_adds(&path, strncmp(file, "file://", 7) == 0 ? file + 7 : file);
            else
                strbuf_addf(&path, "%s/%s", rec->fields[c->path_col].data, file);
            h = hash_file(path.buf, h, (long)rec->line);
        }
        ld->hash[ld->nsets++] = h;
    }
    if (got < 0)
        die("LoadData: %s", e.msg);
    csv_reader_free(r);
    strbuf_release(&path);
}

/* Measurement column k of an object table, named like CellProfiler's. */
static void measurement_name(const struct loaddata *ld, long k, struct strbuf *sb)
{
    static const char *const shape[] = {
        "AreaShape_Area", "AreaShape_Perimeter", "AreaShape_Eccentricity", "AreaShape_Solidity",
        "AreaShape_FormFactor", "AreaShape_MajorAxisLength", "Location_Center_X", "Location_Center_Y",
    };
    static const char *const family[] = {
        "Intensity_MeanIntensity", "Intensity_IntegratedIntensity", "Intensity_StdIntensity",
        "Intensity_MaxIntensity", "Texture_Contrast", "Texture_Entropy", "Granularity_1",
        "RadialDistribution_FracAtD",
    };
    const size_t nshape = sizeof(shape) / sizeof(shape[0]), nfam = sizeof(family) / sizeof(family[0]);
    size_t j;

    strbuf_reset(sb);
    if ((size_t)k < nshape) {
        strbuf_adds(sb, shape[k]);
        return;
    }
    j = (size_t)k - nshape;
    strbuf_addf(sb, "%s_%s", family[j % nfam], ld->ch[(j / nfam) % ld->nch].dye);
    if (j / (nfam * ld->nch))
        strbuf_addf(sb, "_%zu", j / (nfam * ld->nch));
}

static void check(int rc, struct err *e)
{
    if (rc < 0)
        die("%s", e->msg);
}

/* A measurement value as text: fixed point, cheap to format. */
static void write_value(struct csv_writer *w, uint64_t x, struct err *e)
{
    char buf[32], *p = buf + sizeof(buf);
    uint64_t frac = x % 10000, whole = (x >> 20) % 100000;
    int i;

    for (i = 0; i < 4; i++, frac /= 10)
        *--p = (char)('0' + frac % 10);
    *--p = '.';
    do
        *--p = (char)('0' + whole % 10);
    while (whole /= 10);
    check(csv_write_raw(w, p, (size_t)(buf + sizeof(buf) - p), e), e);
}

static struct csv_writer *open_table(const struct opts *o, const char *name, int *fd)
{
    struct strbuf path = STRBUF_INIT;
    struct csv_writer *w;
    struct err e;

    strbuf_addf(&path, "%s/%s.csv", o->out_dir, name);
    *fd = open(path.buf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (*fd < 0)
        die("cannot write %s: %s", path.buf, strerror(errno));
    w = csv_writer_fd(*fd, path.buf, 0, &e);
    if (!w)
        die("%s", e.msg);
    strbuf_release(&path);
    return w;
}

static void close_table(struct csv_writer *w, int fd)
{
    struct err e;

    check(csv_writer_close(w, &e), &e);
    if (close(fd) < 0)
        die("close: %s", strerror(errno));
}

/* Writes one table; objects == 0 makes the Image table (one row per image set). */
static void write_table(const struct opts *o, const struct loaddata *ld, const char *name,
                        long objects, uint64_t salt)
{
    struct strbuf col = STRBUF_INIT;
    struct csv_writer *w;
    struct err e;
    size_t s, i;
    long obj, k;
    int fd;

    w = open_table(o, name, &fd);
    check(csv_write_str(w, "ImageNumber", &e), &e);
    if (objects)
        check(csv_write_str(w, "ObjectNumber", &e), &e);
    for (i = 0; i < ld->nmeta; i++)
        check(csv_write_str(w, ld->meta_names[i], &e), &e);
    for (k = 0; k < o->columns; k++) {
        measurement_name(ld, k, &col);
        check(csv_write_field(w, col.buf, col.len, &e), &e);
    }
    check(csv_write_eol(w, &e), &e);
    for (s = 0; s < ld->nsets; s++) {
        for (obj = 1; obj <= (objects ? objects : 1); obj++) {
            uint64_t seed = mix(ld->hash[s] ^ salt ^ ((uint64_t)obj << 32));

            check(csv_write_fmt(w, &e, "%zu", s + 1), &e);
            if (objects)
                check(csv_write_fmt(w, &e, "%ld", obj), &e);
            for (i = 0; i < ld->nmeta; i++)
                check(csv_write_str(w, ld->meta[s][i], &e), &e);
            for (k = 0; k < o->columns; k++)
                write_value(w, mix(seed + (uint64_t)k), &e);
            check(csv_write_eol(w, &e), &e);
        }
    }
    close_table(w, fd);
    strbuf_release(&col);
}

static void write_experiment(const struct opts *o)
{
    struct strbuf pipeline = STRBUF_INIT;
    struct csv_writer *w;
    char buf[4096];
    ssize_t n;
    struct err e;
    int fd, pfd = open(o->pipeline, O_RDONLY);

    /* The pipeline text has quotes, commas and newlines, as in CellProfiler's output. */
    if (pfd >= 0) {
        while ((n = read(pfd, buf, sizeof(buf))) > 0 && pipeline.len < 65536)
            strbuf_add(&pipeline, buf, (size_t)n);
        close(pfd);
    }
    w = open_table(o, "Experiment", &fd);
    check(csv_write_str(w, "Key", &e), &e);
    check(csv_write_str(w, "Value", &e), &e);
    check(csv_write_eol(w, &e), &e);
    check(csv_write_str(w, "CellProfiler_Version", &e), &e);
    check(csv_write_str(w, "4.2.6 (plateop stand-in)", &e), &e);
    check(csv_write_eol(w, &e), &e);
    check(csv_write_str(w, "Pipeline_Pipeline", &e), &e);
    check(csv_write_field(w, pipeline.buf, pipeline.len, &e), &e);
    check(csv_write_eol(w, &e), &e);
    close_table(w, fd);
    strbuf_release(&pipeline);
}

static void write_done(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        die("cannot write done file %s", path);
}

/* One argument per line, for tests of what the worker passes on. */
static void record_argv(int argc, char **argv)
{
    const char *path = getenv("PLATEOP_STANDIN_ARGV_FILE");
    FILE *f;
    int i;

    if (!path || !*path)
        return;
    f = fopen(path, "w");
    for (i = 0; f && i < argc; i++)
        fprintf(f, "%s\n", argv[i]);
    if (!f || fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/*
 * A CellProfiler that ignores SIGTERM and left a worker process behind:
 * only SIGKILL to the whole process group stops both.
 */
static void hang_group(void)
{
    pid_t child;

    signal(SIGTERM, SIG_IGN);
    child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0) {
        for (;;)
            pause();
    }
    printf("stand-in: group %ld pids %ld %ld\n", (long)getpgrp(), (long)getpid(), (long)child);
    for (;;)
        pause();
}

static void hog_memory(void)
{
    for (;;) {
        size_t n = 64u << 20;
        char *p = malloc(n);

        if (!p) {
            fputs("MemoryError\n", stderr);
            abort();
        }
        memset(p, 1, n);
    }
}

/* A fixed footprint, held long enough for a sampling memory limit to see it. */
static void use_memory(long mb)
{
    size_t n = (size_t)mb << 20;
    char *p = malloc(n);
    struct timespec ts = { 2, 0 };

    if (!p) {
        fputs("MemoryError\n", stderr);
        abort();
    }
    memset(p, 1, n);
    /* The compiler must not drop the pages as unused. */
    __asm__ volatile("" : : "r"(p) : "memory");
    nanosleep(&ts, NULL);
    free(p);
}

/* Illumination correction functions, one per channel, as the ICF pipeline saves them. */
static void write_icf(const struct opts *o, const struct loaddata *ld)
{
    char path[4096];
    size_t i;
    FILE *f;

    if (!strstr(o->pipeline, "illum"))
        return;
    for (i = 0; i < ld->nch; i++) {
        snprintf(path, sizeof(path), "%s/ICF_%s.npy", o->out_dir, ld->ch[i].dye);
        f = fopen(path, "w");
        if (!f || fputs("\x93NUMPY stand-in illumination function\n", f) < 0 || fclose(f) != 0)
            die("cannot write %s: %s", path, strerror(errno));
    }
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], **dst = NULL;

        if (strcmp(a, "-p") == 0 || strcmp(a, "--pipeline") == 0)
            dst = &o->pipeline;
        else if (strcmp(a, "--data-file") == 0)
            dst = &o->data_file;
        else if (strcmp(a, "-o") == 0)
            dst = &o->out_dir;
        else if (strcmp(a, "-d") == 0)
            dst = &o->done_file;
        if (dst) {
            if (i + 1 == argc)
                die("option %s needs a value", a);
            *dst = argv[++i];
        } else if (strncmp(a, "--", 2) == 0 && !strchr(a, '=') && i + 1 < argc && argv[i + 1][0] != '-') {
            i++;    /* an unknown flag's value, e.g. --plugins-directory DIR */
        }
    }
    if (!o->pipeline || !o->data_file || !o->out_dir)
        die("usage: cellprofiler -c -r -p PIPELINE --data-file CSV -o OUTDIR [-d DONEFILE]");
}

int main(int argc, char **argv)
{
    const char *fail_wells = getenv("PLATEOP_STANDIN_FAIL_WELLS");
    static struct loaddata ld;   /* static: reachable until exit, for leak checkers */
    struct opts o = { 0 };
    size_t s;
    int fd;

    setvbuf(stdout, NULL, _IOLBF, 0);
    record_argv(argc, argv);
    parse_args(argc, argv, &o);
    o.mode = getenv("PLATEOP_STANDIN_MODE");
    o.objects = env_long("PLATEOP_STANDIN_OBJECTS", 5);
    o.columns = env_long("PLATEOP_STANDIN_COLUMNS", 200);
    o.sleep_ms = env_long("PLATEOP_STANDIN_SLEEP_MS", 0);
    if ((fd = open(o.pipeline, O_RDONLY)) < 0)
        die("cannot load pipeline %s: %s", o.pipeline, strerror(errno));
    close(fd);
    read_loaddata(&o, &ld, fail_wells && *fail_wells ? fail_wells : NULL);
    if (fail_wells && *fail_wells)
        o.mode = !ld.has_fail_well ? "ok" : o.mode && *o.mode ? o.mode : "fail";
    if (!o.mode || !*o.mode)
        o.mode = "ok";
    for (s = 0; s < ld.nsets; s++) {
        printf("Image # %zu, module LoadData # 1: CPU_time = 0.00 secs, Wall_time = 0.00 secs\n", s + 1);
        if (o.sleep_ms > 0) {
            struct timespec ts = { o.sleep_ms / 1000, (o.sleep_ms % 1000) * 1000000L };

            nanosleep(&ts, NULL);
        }
    }
    if (strcmp(o.mode, "fail") == 0)
        die("Traceback (most recent call last): ValueError: stand-in told to fail");
    if (strcmp(o.mode, "hang") == 0) {
        fputs("stand-in: hanging\n", stderr);
        for (;;)
            pause();
    }
    if (strcmp(o.mode, "hang-group") == 0)
        hang_group();
    if (strcmp(o.mode, "oom") == 0)
        hog_memory();
    if (env_long("PLATEOP_STANDIN_MEMORY_MB", 0) > 0)
        use_memory(env_long("PLATEOP_STANDIN_MEMORY_MB", 0));
    if (strcmp(o.mode, "no-output") == 0)
        return 0;
    if (strcmp(o.mode, "no-tables") == 0) {
        if (o.done_file)
            write_done(o.done_file, "Complete\n");
        return 0;
    }
    write_experiment(&o);
    write_table(&o, &ld, "Image", 0, 1);
    if (strcmp(o.mode, "missing-table") != 0)
        write_table(&o, &ld, "Cells", o.objects, 2);
    if (strcmp(o.mode, "empty-table") == 0)
        close_table(open_table(&o, "Nuclei", &fd), fd);
    else
        write_table(&o, &ld, "Nuclei", o.objects, 3);
    write_table(&o, &ld, "Cytoplasm", o.objects, 4);
    write_icf(&o, &ld);
    fprintf(stderr, "stand-in: %zu image sets, %zu channels\n", ld.nsets, ld.nch);
    if (o.done_file)
        write_done(o.done_file, strcmp(o.mode, "incomplete") == 0 ? "Failure\n" : "Complete\n");
    return 0;
}
