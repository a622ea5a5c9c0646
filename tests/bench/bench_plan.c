/*
 * Planner benchmarks, driven by tests/bench/bench_plan.sh.
 *
 *   bench_plan setup WELLS SITES ZS CHANNELS
 *       creates a channel map, a plate acquisition and its images in the
 *       ImageDB of the environment; prints "ACQ MAP ROWS"
 *   bench_plan cleanup ACQ MAP
 *   bench_plan db ACQ
 *       plans the acquisition end to end (read, filter, plan, hash; batches
 *       of one well); prints "SECONDS PEAK_RSS_KB BATCHES SETS ROWS"
 *   bench_plan only N REPS
 *       the planner alone on N synthetic image rows (wells of 131 sites x 5
 *       channels); prints the median seconds, batches and sets
 *   bench_plan loaddata REPS
 *       plans a 384-well plate (9 sites, 5 channels) in memory and renders
 *       every batch's LoadData CSV into a buffer; prints the median seconds
 *       and the CSV bytes
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "acqplan.h"
#include "filter.h"
#include "idb.h"
#include "idbfix.h"
#include "loaddata.h"
#include "monotime.h"
#include "plan.h"
#include "strbuf.h"

static const char *const dyes[] = { "HOECHST", "SYTO", "CONCAVALIN", "PHALLOIDIN", "MITO" };
static const struct plan_channel map5[] = {
    { 1, "HOECHST" }, { 2, "SYTO" }, { 3, "CONCAVALIN" }, { 4, "PHALLOIDIN" }, { 5, "MITO" },
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int die(const char *what, const struct err *e)
{
    fprintf(stderr, "bench_plan: %s: %s\n", what, e ? e->msg : "failed");
    return 1;
}

static int cmd_setup(int wells, int sites, int zs, int channels)
{
    PGconn *c = idbfix_connect();
    char bc[64];
    int map;
    long long acq, rows;
    PGresult *r;

    if (!c)
        return die("connect", NULL);
    map = idbfix_map_id(c);
    idbfix_barcode(bc, sizeof(bc), "bench");
    if (map < 0 || idbfix_channel_map(c, map, dyes, channels) < 0)
        return die("channel map", NULL);
    acq = idbfix_acquisition(c, bc, map);
    if (acq < 0)
        return die("acquisition", NULL);
    rows = idbfix_plate(c, acq, bc, wells, 1, sites, zs, channels);
    if (rows < 0)
        return die("images", NULL);
    /* as a settled production table: statistics and hint bits in place */
    r = idbfix_exec(c, "VACUUM ANALYZE images", 0, NULL);
    PQclear(r);
    printf("%lld %d %lld\n", acq, map, rows);
    PQfinish(c);
    return 0;
}

static int cmd_cleanup(long long acq, int map)
{
    PGconn *c = idbfix_connect();

    if (!c || idbfix_cleanup(c, acq, map) < 0)
        return die("cleanup", NULL);
    PQfinish(c);
    return 0;
}

struct count {
    size_t batches, sets;
};

static int count_batch(const struct plan_batch *b, void *arg, struct err *e)
{
    struct count *c = arg;

    (void)e;
    c->batches++;
    c->sets += b->nsets;
    return 0;
}

static int cmd_db(long long acq)
{
    struct plan_opts o = { .pipeline = "bench", .pipeline_len = 5 };
    struct count c = { 0, 0 };
    struct rusage ru;
    struct idb *db;
    struct acqplan *ap;
    struct err e;
    double t0, t;

    t0 = monotime_now();
    db = idb_open(NULL, &e);
    if (!db)
        return die("open", &e);
    ap = acqplan_open(db, acq, &e);
    if (!ap)
        return die("acqplan_open", &e);
    if (acqplan_run(ap, &o, count_batch, &c, &e) < 0)
        return die("acqplan_run", &e);
    t = monotime_now() - t0;
    getrusage(RUSAGE_SELF, &ru);
    printf("%.3f %ld %zu %zu %zu\n", t, ru.ru_maxrss, c.batches, c.sets,
           acqplan_summary(ap)->images_read);
    acqplan_free(ap);
    idb_close(db);
    return 0;
}

/*
 * Synthetic rows in database order: wells of 131 sites x 5 channels (so
 * 1,000,000 rows fill a 1536-well plate). Paths come from a ring of 20,000,
 * made beforehand, the way rows come from libpq in cache-warm chunks of
 * 20,000: the figure is the planner's, not the memory system's.
 */
#define RING 20000
#define SITES 131

static int cmd_only(size_t n, int reps)
{
    struct plan_opts o = { .plate_barcode = "bench" };
    char (*ring)[64] = malloc(RING * sizeof(*ring));
    char wells[1536][FILTER_WELL_NAME_MAX];
    struct plan_image img;
    struct count c;
    double t[32];
    struct plan *p;
    struct err e;
    size_t i, w, k;
    int rep;

    for (w = 0; w < 1536; w++)
        filter_well_name((int)(w / 48), (int)(w % 48), 0, wells[w]);
    for (i = 0; i < RING; i++)
        snprintf(ring[i], sizeof(ring[i]), "/share/images/bench/P013725/img_%06zu_w%zu.tif", i,
                 i % 5 + 1);
    if (reps > 32)
        reps = 32;
    for (rep = 0; rep < reps; rep++) {
        memset(&c, 0, sizeof(c));
        t[rep] = monotime_now();
        p = plan_new(&o, map5, 5, count_batch, &c, &e);
        if (!p)
            return die("plan_new", &e);
        for (i = 0; i < n; i++) {
            w = i / (SITES * 5);
            k = i % (SITES * 5);
            img.timepoint = 1;
            img.well = wells[w % 1536];
            img.site = (int)(k / 5) + 1;
            img.z = 0;
            img.channel = (int)(k % 5) + 1;
            img.path = ring[i % RING];
            if (plan_add(p, &img, &e) < 0)
                return die("plan_add", &e);
        }
        if (plan_finish(p, &e) < 0)
            return die("plan_finish", &e);
        plan_free(p);
        t[rep] = monotime_now() - t[rep];
    }
    printf("%.4f %zu %zu\n", median(t, reps), c.batches, c.sets);
    free(ring);
    return 0;
}

/* Renders into one buffer for all batches, so the bytes can be counted. */
static int render_batch(const struct plan_batch *b, void *arg, struct err *e)
{
    return loaddata_render(b, NULL, arg, e);
}

static int cmd_loaddata(int reps)
{
    struct plan_opts o = { .plate_barcode = "bench" };
    struct strbuf sb = STRBUF_INIT;
    char (*paths)[96] = malloc(384 * 9 * 5 * sizeof(*paths));
    char wells[384][FILTER_WELL_NAME_MAX];
    struct plan_image *img = calloc(384 * 9 * 5, sizeof(*img));
    double t[32];
    struct plan *p;
    struct err e;
    size_t i = 0, bytes = 0;
    int w, s, ch, k;

    for (w = 0; w < 384; w++) {
        filter_well_name(w / 24, w % 24, 0, wells[w]);
        for (s = 1; s <= 9; s++)
            for (ch = 1; ch <= 5; ch++, i++) {
                snprintf(paths[i], sizeof(paths[i]),
                         "/share/mikro/IMX/MDC_pharmbio/bench/P013725/2024-01-01/%s_s%d_w%d.tif",
                         wells[w], s, ch);
                img[i] = (struct plan_image){ 1, wells[w], s, 0, ch, paths[i] };
            }
    }
    if (reps > 32)
        reps = 32;
    for (k = 0; k < reps; k++) {
        strbuf_reset(&sb);
        t[k] = monotime_now();
        p = plan_new(&o, map5, 5, render_batch, &sb, &e);
        for (i = 0; i < 384 * 9 * 5; i++)
            if (plan_add(p, &img[i], &e) < 0)
                return die("plan_add", &e);
        if (plan_finish(p, &e) < 0)
            return die("plan_finish", &e);
        plan_free(p);
        t[k] = monotime_now() - t[k];
        bytes = sb.len;
    }
    printf("%.4f %zu\n", median(t, reps), bytes);
    strbuf_release(&sb);
    free(paths);
    free(img);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "setup") == 0)
        return cmd_setup(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    if (argc == 4 && strcmp(argv[1], "cleanup") == 0)
        return cmd_cleanup(atoll(argv[2]), atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "db") == 0)
        return cmd_db(atoll(argv[2]));
    if (argc == 4 && strcmp(argv[1], "only") == 0)
        return cmd_only((size_t)atol(argv[2]), atoi(argv[3]));
    if (argc == 3 && strcmp(argv[1], "loaddata") == 0)
        return cmd_loaddata(atoi(argv[2]));
    fprintf(stderr, "usage: bench_plan setup WELLS SITES ZS CHANNELS | cleanup ACQ MAP | db ACQ |"
                    " only N REPS | loaddata REPS\n");
    return 2;
}
