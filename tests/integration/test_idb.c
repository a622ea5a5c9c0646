/*
 * ImageDB against the test bed's PostgreSQL: connecting, reading a plate
 * acquisition and its channel map, planning a generated 384-well plate
 * (9 sites, 5 channels) end to end with every LoadData CSV parsed back,
 * the edge cases (a missing channel, a channel the map lacks, a dye the
 * map lacks, ranges across a row boundary, SQL metacharacters), bad input
 * that must write nothing, the analysis rows and their write-backs, and
 * reconnecting after the server drops the connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acqplan.h"
#include "csv.h"
#include "filter.h"
#include "idb.h"
#include "monotime.h"
#include "idbfix.h"
#include "loaddata.h"
#include "plan.h"
#include "strbuf.h"

static const char *const dyes5[] = { "HOECHST", "SYTO", "CONCAVALIN", "PHALLOIDIN", "MITO" };

/* The test's own rows. */
static PGconn *fx;
static struct idb *db;
static int map_id = -1, empty_map_id = -1, map3_id = -1;   /* map3: the first 3 dyes */
static long long acq_a = -1;        /* clean 384 wells x 9 sites x 5 channels */
static long long acq_b = -1;        /* as A, with a hole and a stray channel */
static long long acq_c = -1;        /* 96 wells, 2 timepoints, 2 sites, 2 z, 3 channels */
static long long acq_nomap = -1, acq_emptymap = -1, acq_noimages = -1, acq_evil = -1;
static char bc_a[64], bc_b[64], bc_c[64], bc_nomap[64], bc_emptymap[64], bc_noimages[64];
static char bc_evil[128];

static int setup(void **state)
{
    const char *p[1];
    PGresult *r;

    (void)state;
    if (!idbfix_configured())
        return 0;
    fx = idbfix_connect();
    if (!fx)
        return -1;
    map_id = idbfix_map_id(fx);
    empty_map_id = idbfix_map_id(fx);
    if (map_id < 0 || empty_map_id == map_id || idbfix_channel_map(fx, map_id, dyes5, 5) < 0)
        return -1;
    map3_id = idbfix_map_id(fx);
    if (map3_id < 0 || map3_id == empty_map_id || idbfix_channel_map(fx, map3_id, dyes5, 3) < 0)
        return -1;
    idbfix_barcode(bc_a, sizeof(bc_a), "itest-a");
    idbfix_barcode(bc_b, sizeof(bc_b), "itest-b");
    idbfix_barcode(bc_c, sizeof(bc_c), "itest-c");
    idbfix_barcode(bc_nomap, sizeof(bc_nomap), "itest-nomap");
    idbfix_barcode(bc_emptymap, sizeof(bc_emptymap), "itest-emptymap");
    idbfix_barcode(bc_noimages, sizeof(bc_noimages), "itest-noimages");
    snprintf(bc_evil, sizeof(bc_evil), "'; DROP TABLE images; --,\"%d\"", (int)getpid());
    acq_a = idbfix_acquisition(fx, bc_a, map_id);
    acq_b = idbfix_acquisition(fx, bc_b, map_id);
    acq_c = idbfix_acquisition(fx, bc_c, map3_id);
    acq_nomap = idbfix_acquisition(fx, bc_nomap, -1);
    acq_emptymap = idbfix_acquisition(fx, bc_emptymap, empty_map_id);
    acq_noimages = idbfix_acquisition(fx, bc_noimages, map_id);
    acq_evil = idbfix_acquisition(fx, bc_evil, map_id);
    if (acq_a < 0 || acq_b < 0 || acq_c < 0 || acq_nomap < 0 || acq_emptymap < 0 ||
        acq_noimages < 0 || acq_evil < 0)
        return -1;
    if (idbfix_plate(fx, acq_a, bc_a, 384, 1, 9, 1, 5) != 384 * 9 * 5 ||
        idbfix_plate(fx, acq_b, bc_b, 384, 1, 9, 1, 5) != 384 * 9 * 5 ||
        idbfix_plate(fx, acq_c, bc_c, 96, 2, 2, 2, 3) != 96 * 2 * 2 * 2 * 3 ||
        idbfix_plate(fx, acq_evil, bc_evil, 96, 1, 1, 1, 5) != 96 * 5)
        return -1;
    /* B: C03 site 4 loses channel 3; D05 site 2 gains channel 6, which the map lacks. */
    {
        char a[24];
        const char *pb[2] = { a, bc_b };

        snprintf(a, sizeof(a), "%lld", acq_b);
        r = idbfix_exec(fx, "DELETE FROM images WHERE plate_acquisition_id = $1::int AND"
                            " well = 'C03' AND site = 4 AND channel = 3", 1, pb);
        if (!r || strcmp(PQcmdTuples(r), "1") != 0)
            return -1;
        PQclear(r);
        r = idbfix_exec(fx, "INSERT INTO images (plate_acquisition_id, plate_barcode, timepoint,"
                            " well, site, z, channel, path) VALUES ($1::int, $2, 1, 'D05', 2, 0,"
                            " 6, '/share/stray.tif')", 2, pb);
        if (!r)
            return -1;
        PQclear(r);
    }
    p[0] = NULL;
    r = idbfix_exec(fx, "ANALYZE images", 0, p);
    PQclear(r);
    db = idb_open(NULL, NULL);
    return db ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    idb_close(db);
    if (!fx)
        return 0;
    idbfix_cleanup(fx, acq_a, map_id);
    idbfix_cleanup(fx, acq_b, -1);
    idbfix_cleanup(fx, acq_c, map3_id);
    idbfix_cleanup(fx, acq_nomap, -1);
    idbfix_cleanup(fx, acq_emptymap, empty_map_id);
    idbfix_cleanup(fx, acq_noimages, -1);
    idbfix_cleanup(fx, acq_evil, -1);
    PQfinish(fx);
    return 0;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* ---- a batch receiver that renders and checks every CSV ---- */

struct recv {
    const char *barcode;
    long long acq;
    const struct loaddata_opts *ld;
    size_t n;
    char ids[1600][PLAN_BATCH_ID_MAX + 1];
    char hashes[1600][65];
    size_t sets;
    size_t rows;
    size_t maxcsv;
};

/* Index of a header column, or -1. */
static int col(const struct csv_record *h, char names[][64], const char *name)
{
    size_t i;

    (void)h;
    for (i = 0; i < h->nfields; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

/* Renders b's CSV, parses it back, and checks every value against the batch. */
static int check_batch(const struct plan_batch *b, void *arg, struct err *e)
{
    struct recv *rv = arg;
    struct strbuf csv = STRBUF_INIT;
    struct csv_reader *rd;
    struct csv_record *rec;
    char names[64][64], want[512], name[96], num[32];
    const char *slash;
    size_t i, j, row = 0;
    int rc, c;

    assert_true(rv->n < 1600);
    snprintf(rv->ids[rv->n], sizeof(rv->ids[0]), "%s", b->id);
    memcpy(rv->hashes[rv->n], b->hash, 65);
    rv->n++;
    rv->sets += b->nsets;
    if (loaddata_render(b, rv->ld, &csv, e) < 0)
        return -1;
    if (csv.len > rv->maxcsv)
        rv->maxcsv = csv.len;
    rd = csv_reader_mem(csv.buf, csv.len, b->id, CSV_REQUIRE_EOL, e);
    assert_non_null(rd);
    assert_int_equal(csv_read(rd, &rec, e), 1);
    assert_true(rec->nfields < 64);
    for (i = 0; i < rec->nfields; i++)
        snprintf(names[i], sizeof(names[i]), "%s", rec->fields[i].data);
    while ((rc = csv_read(rd, &rec, e)) == 1) {
        const struct plan_set *s = &b->sets[row];

        assert_true(row < b->nsets);
        for (j = 0; j < b->ndyes; j++) {
            /* the path the fixture gave this image: the dye's own channel */
            idbfix_path(want, sizeof(want), rv->barcode, s->timepoint, s->well, s->site, s->z,
                        b->channels[j]);
            assert_string_equal(s->paths[j], want);
            slash = strrchr(want, '/');
            snprintf(name, sizeof(name), "FileName_%s", b->dyes[j]);
            c = col(rec, names, name);
            assert_true(c >= 0);
            assert_string_equal(rec->fields[c].data, slash + 1);
            snprintf(name, sizeof(name), "PathName_%s", b->dyes[j]);
            c = col(rec, names, name);
            assert_true(c >= 0);
            assert_int_equal(rec->fields[c].len, (size_t)(slash - want));
            assert_memory_equal(rec->fields[c].data, want, (size_t)(slash - want));
        }
        assert_string_equal(rec->fields[col(rec, names, "Metadata_Plate")].data, rv->barcode);
        assert_string_equal(rec->fields[col(rec, names, "Metadata_Well")].data, s->well);
        snprintf(num, sizeof(num), "%d", s->site);
        assert_string_equal(rec->fields[col(rec, names, "Metadata_Site")].data, num);
        snprintf(num, sizeof(num), "%d", s->timepoint);
        assert_string_equal(rec->fields[col(rec, names, "Metadata_Timepoint")].data, num);
        snprintf(num, sizeof(num), "%d", s->z);
        assert_string_equal(rec->fields[col(rec, names, "Metadata_Z")].data, num);
        snprintf(num, sizeof(num), "%lld", rv->acq);
        assert_string_equal(rec->fields[col(rec, names, "Metadata_AcqID")].data, num);
        row++;
        rv->rows++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(row, b->nsets);
    csv_reader_free(rd);
    strbuf_release(&csv);
    return 0;
}

static struct recv *new_recv(const char *barcode, long long acq)
{
    struct recv *rv = calloc(1, sizeof(*rv));

    rv->barcode = barcode;
    rv->acq = acq;
    return rv;
}

static int plan_acq(long long acq, const struct plan_opts *o, struct recv *rv,
                    struct plan_summary *sum, struct err *e)
{
    struct acqplan *ap = acqplan_open(db, acq, e);
    int rc;

    if (!ap)
        return -1;
    rc = acqplan_run(ap, o, rv ? check_batch : NULL, rv, e);
    if (sum && acqplan_summary(ap))
        *sum = *acqplan_summary(ap);
    if (sum)
        sum->incomplete = NULL;     /* owned by ap */
    acqplan_free(ap);
    return rc;
}

/* ---- tests ---- */

static void test_connection_refused(void **state)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct idb_config cfg = { 0 };
    char ci[128];
    struct err e;
    int s;

    (void)state;
    /* a port nobody listens on: bound, never listening */
    s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(s, (struct sockaddr *)&sa, &len);
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=imagedb user=lab",
             ntohs(sa.sin_port));
    cfg.conninfo = ci;
    cfg.connect_timeout_s = 2;
    assert_null(idb_open(&cfg, &e));
    close(s);
    assert_int_equal(e.code, IDB_ERR_CONNECT);
    assert_contains(e.msg, "connect to ImageDB host=127.0.0.1 port=");
    assert_contains(e.msg, "dbname=imagedb user=lab");
    assert_contains(e.msg, "refused");
    assert_null(strchr(e.msg, '\n'));
}

/* Sets or (value NULL) unsets name; returns its old value (caller frees) for restore_env(). */
static char *swap_env(const char *name, const char *value)
{
    const char *old = getenv(name);
    char *saved = old ? strdup(old) : NULL;

    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    return saved;
}

static void restore_env(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
}

/*
 * The password comes from the file and nowhere else: hack/imagedb.sh also
 * exports PGPASSWORD, which libpq would use in its place, so the test
 * clears it (and ~/.pgpass) for its duration. The test bed checks
 * passwords (scram-sha-256 over TCP), so a wrong one must be refused.
 */
static void test_password_file(void **state)
{
    const char *pwfile = getenv("PLATEOP_IMAGEDB_PASSWORD_FILE");
    struct idb_config cfg = { 0 };
    char bad[] = "/tmp/plateop-test-pw-XXXXXX", *pg_password, *pg_passfile, *plateop_file;
    struct idb *d;
    struct err e, none, right, wrong;
    int fd, opened[3];

    (void)state;
    cfg.password_file = "/nonexistent/plateop/password";
    assert_null(idb_open(&cfg, &e));
    assert_int_equal(e.code, IDB_ERR_CONFIG);
    assert_contains(e.msg, "read ImageDB password file /nonexistent/plateop/password");
    if (!pwfile || !*pwfile)
        skip();
    pg_password = swap_env("PGPASSWORD", NULL);
    pg_passfile = swap_env("PGPASSFILE", "/nonexistent/plateop/pgpass");
    plateop_file = swap_env("PLATEOP_IMAGEDB_PASSWORD_FILE", NULL);
    cfg.connect_timeout_s = 5;

    /* without the file there is no password at all */
    cfg.password_file = NULL;
    d = idb_open(&cfg, &none);
    opened[0] = d != NULL;
    idb_close(d);
    /* with it */
    cfg.password_file = plateop_file;
    d = idb_open(&cfg, &right);
    opened[1] = d != NULL;
    idb_close(d);
    /* a wrong one */
    fd = mkstemp(bad);
    assert_true(write(fd, "wrong\n", 6) == 6);
    close(fd);
    cfg.password_file = bad;
    d = idb_open(&cfg, &wrong);
    opened[2] = d != NULL;
    idb_close(d);
    unlink(bad);
    restore_env("PGPASSWORD", pg_password);
    restore_env("PGPASSFILE", pg_passfile);
    restore_env("PLATEOP_IMAGEDB_PASSWORD_FILE", plateop_file);

    assert_false(opened[0]);
    assert_int_equal(none.code, IDB_ERR_CONNECT);
    assert_contains(none.msg, "password");
    if (!opened[1])
        fail_msg("with the password file: %s", right.msg);
    assert_false(opened[2]);
    assert_int_equal(wrong.code, IDB_ERR_CONNECT);
    assert_contains(wrong.msg, "password authentication failed");
    assert_null(strstr(wrong.msg, "wrong"));
}

static void test_read_acquisition_and_channel_map(void **state)
{
    struct idb_acquisition a;
    struct idb_channel *ch;
    size_t n, i;
    struct err e;

    (void)state;
    assert_int_equal(idb_acquisition_get(db, acq_a, &a, &e), 0);
    assert_int_equal(a.id, acq_a);
    assert_string_equal(a.plate_barcode, bc_a);
    assert_true(a.has_channel_map);
    assert_int_equal(a.channel_map_id, map_id);
    assert_true(a.finished);
    assert_non_null(a.finished_at);
    idb_acquisition_release(&a);
    assert_int_equal(idb_channel_map_get(db, map_id, &ch, &n, &e), 0);
    assert_int_equal(n, 5);
    for (i = 0; i < n; i++) {
        assert_int_equal(ch[i].channel, (int)i + 1);
        assert_string_equal(ch[i].dye, dyes5[i]);
    }
    idb_channels_free(ch, n);
}

static void test_generated_384_plate_end_to_end(void **state)
{
    struct plan_opts o = { .pipeline = "pipeline-v1", .pipeline_len = 11 };
    struct recv *rv = new_recv(bc_a, acq_a), *again = new_recv(bc_a, acq_a);
    struct plan_summary sum;
    struct err e;
    size_t i;

    (void)state;
    if (plan_acq(acq_a, &o, rv, &sum, &e) < 0)
        fail_msg("%s", e.msg);
    assert_int_equal(sum.images_read, 384 * 9 * 5);
    assert_int_equal(sum.image_sets, 384 * 9);
    assert_int_equal(sum.incomplete_sets, 0);
    assert_int_equal(sum.batches, 384);
    assert_int_equal(rv->n, 384);
    assert_int_equal(rv->rows, 384 * 9);
    assert_string_equal(rv->ids[0], "a01");
    assert_string_equal(rv->ids[2 * 24 + 2], "c03");
    assert_string_equal(rv->ids[383], "p24");
    printf("# 384 batches; largest LoadData CSV %zu bytes\n", rv->maxcsv);
    /* same input, same batches */
    assert_int_equal(plan_acq(acq_a, &o, again, NULL, &e), 0);
    for (i = 0; i < rv->n; i++) {
        assert_string_equal(rv->ids[i], again->ids[i]);
        assert_string_equal(rv->hashes[i], again->hashes[i]);
    }
    free(rv);
    free(again);
}

/* Stops the stream at the 1,000th image with an error of its own. */
static int stop_at_1000(const struct idb_image *img, void *arg, struct err *e)
{
    size_t *seen = arg;

    (void)img;
    if (++*seen == 1000)
        return err_set(e, 4242, "enough images");
    return 0;
}

static void test_a_callback_error_stops_the_stream(void **state)
{
    struct idb_acquisition acq;
    size_t seen = 0, count = 0;
    struct err e;
    double t0;

    (void)state;
    t0 = monotime_now();
    assert_int_equal(idb_images_stream(db, acq_a, stop_at_1000, &seen, &count, &e), -1);
    assert_int_equal(e.code, 4242);
    assert_string_equal(e.msg, "enough images");
    assert_int_equal(seen, 1000);
    /* The rest of the 17,280 rows was cancelled, not read, and the connection is usable. */
    assert_int_equal(idb_acquisition_get(db, acq_a, &acq, &e), 0);
    idb_acquisition_release(&acq);
    assert_true(monotime_now() - t0 < 5.0);
}

static void test_missing_and_stray_channels(void **state)
{
    struct plan_opts o = { 0 };
    struct recv *rv = new_recv(bc_b, acq_b);
    struct acqplan *ap;
    const struct plan_summary *s;
    struct strbuf msg = STRBUF_INIT;
    struct err e;

    (void)state;
    ap = acqplan_open(db, acq_b, &e);
    assert_non_null(ap);
    if (acqplan_run(ap, &o, check_batch, rv, &e) < 0)
        fail_msg("%s", e.msg);
    s = acqplan_summary(ap);
    assert_int_equal(s->image_sets, 384 * 9 - 2);
    assert_int_equal(s->incomplete_sets, 2);
    assert_int_equal(s->nincomplete, 2);
    plan_incomplete_describe(&s->incomplete[0], &msg);
    assert_string_equal(msg.buf, "well C03 site 4 timepoint 1 z 0: channel 3 (CONCAVALIN) missing");
    strbuf_reset(&msg);
    plan_incomplete_describe(&s->incomplete[1], &msg);
    assert_string_equal(msg.buf,
                        "well D05 site 2 timepoint 1 z 0: channel 6 has no dye in the channel map");
    assert_int_equal(rv->rows, 384 * 9 - 2);

    /* strict mode: the plan fails on the first one */
    o.strict = 1;
    assert_int_equal(acqplan_run(ap, &o, NULL, NULL, &e), -1);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_contains(e.msg, "plan plate acquisition");
    assert_contains(e.msg, "incomplete image set (strict mode): well C03 site 4");
    acqplan_free(ap);
    strbuf_release(&msg);
    free(rv);
}

static void test_filters_across_a_row_boundary(void **state)
{
    struct plan_opts o = { 0 };
    struct recv *rv = new_recv(bc_a, acq_a);
    struct plan_summary sum;
    struct filter f;
    struct err e;

    (void)state;
    assert_int_equal(filter_parse(&f, "c3, C04-E03", "1-4,7", "0", "MITO,HOECHST",
                                  filter_plate_get(384), &e), 0);
    o.filter = &f;
    if (plan_acq(acq_a, &o, rv, &sum, &e) < 0)
        fail_msg("%s", e.msg);
    assert_int_equal(rv->n, 49);
    assert_string_equal(rv->ids[0], "c03");
    assert_string_equal(rv->ids[21], "c24");
    assert_string_equal(rv->ids[22], "d01");
    assert_string_equal(rv->ids[48], "e03");
    assert_int_equal(sum.image_sets, 49 * 5);
    assert_int_equal(sum.images_filtered, 384 * 9 * 5 - 49 * 5 * 2);
    filter_release(&f);
    free(rv);
}

static void test_timepoints_stay_with_their_well(void **state)
{
    struct plan_opts o = { 0 };
    struct recv *rv = new_recv(bc_c, acq_c);
    struct plan_summary sum;
    struct err e;

    (void)state;
    if (plan_acq(acq_c, &o, rv, &sum, &e) < 0)
        fail_msg("%s", e.msg);
    assert_int_equal(rv->n, 96);
    assert_int_equal(sum.image_sets, 96 * 2 * 2 * 2);
    assert_int_equal(rv->rows, 96 * 8);
    /* image-set batches: ids carry z and timepoint where they differ */
    o.mode = PLAN_BY_SETS;
    o.batch_size = 3;
    memset(rv, 0, sizeof(*rv));
    rv->barcode = bc_c;
    rv->acq = acq_c;
    assert_int_equal(plan_acq(acq_c, &o, rv, NULL, &e), 0);
    assert_int_equal(rv->n, (96 * 8 + 2) / 3);
    assert_string_equal(rv->ids[0], "a01s1");
    assert_string_equal(rv->ids[1], "a01s2z1");     /* set 3: t1 s2 z1 */
    assert_string_equal(rv->ids[2], "a01s2t2");     /* set 6: t2 s2 z0 */
    free(rv);
}

static void test_sql_metacharacters_harm_nothing(void **state)
{
    const char *evil = "'; DROP TABLE images; --";
    struct plan_opts o = { 0 };
    struct recv *rv = new_recv(bc_evil, acq_evil);
    struct filter f;
    char a[24];
    const char *p[1] = { a };
    long long before, after;
    struct err e;

    (void)state;
    snprintf(a, sizeof(a), "%lld", acq_a);
    before = idbfix_value(fx, "SELECT count(*) FROM images WHERE plate_acquisition_id = $1::int",
                          1, p);
    /* as a well filter: a malformed token */
    assert_int_equal(filter_parse(&f, evil, NULL, NULL, NULL, NULL, &e), -1);
    assert_int_equal(e.code, FILTER_ERR_SYNTAX);
    assert_contains(e.msg, "well filter");
    /* as a dye: parses, matches no dye of the channel map, so the plan fails cleanly */
    assert_int_equal(filter_parse(&f, NULL, NULL, NULL, evil, NULL, &e), 0);
    o.filter = &f;
    assert_int_equal(plan_acq(acq_a, &o, NULL, NULL, &e), -1);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_contains(e.msg, "dye '; DROP TABLE images; -- is not in the channel map");
    filter_release(&f);
    after = idbfix_value(fx, "SELECT count(*) FROM images WHERE plate_acquisition_id = $1::int",
                         1, p);
    assert_int_equal(before, 384 * 9 * 5);
    assert_int_equal(after, before);
    assert_int_equal(idbfix_value(fx, "SELECT count(*) FROM pg_tables WHERE tablename = 'images'",
                                  0, NULL), 1);
    /* as a plate barcode: stored, read and written to the CSV as plain text */
    o.filter = NULL;
    if (plan_acq(acq_evil, &o, rv, NULL, &e) < 0)
        fail_msg("%s", e.msg);
    assert_int_equal(rv->n, 96);
    assert_int_equal(rv->rows, 96);
    free(rv);
}

/* A fingerprint of every row the bad-input cases could touch. */
static char *fingerprint(void)
{
    static char buf[8][64];
    static int k;
    PGresult *r = idbfix_exec(fx,
                              "SELECT md5(coalesce((SELECT string_agg(t::text, '|' ORDER BY id)"
                              " FROM image_analyses t), '') ||"
                              " coalesce((SELECT string_agg(t::text, '|' ORDER BY sub_id)"
                              " FROM image_sub_analyses t), '') ||"
                              " coalesce((SELECT string_agg(t::text, '|' ORDER BY id)"
                              " FROM plate_acquisition t), '') ||"
                              " (SELECT count(*) FROM images)::text ||"
                              " (SELECT count(*) FROM channel_map)::text)",
                              0, NULL);
    char *out = buf[k++ % 8];

    assert_non_null(r);
    snprintf(out, 64, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static void test_bad_input_is_named_and_writes_nothing(void **state)
{
    struct plan_opts o = { 0 };
    struct acqplan *ap;
    struct filter f;
    char *before;
    struct err e;

    (void)state;
    before = fingerprint();

    assert_null(acqplan_open(db, 2000000000LL, &e));
    assert_int_equal(e.code, IDB_ERR_NOTFOUND);
    assert_string_equal(e.msg, "plate acquisition 2000000000 not found");

    assert_null(acqplan_open(db, acq_nomap, &e));
    assert_int_equal(e.code, ACQPLAN_ERR_NO_CHANNEL_MAP);
    assert_contains(e.msg, "has no channel map");
    assert_contains(e.msg, bc_nomap);

    assert_null(acqplan_open(db, acq_emptymap, &e));
    assert_int_equal(e.code, IDB_ERR_DATA);
    assert_contains(e.msg, bc_emptymap);
    assert_contains(e.msg, "is empty");

    ap = acqplan_open(db, acq_noimages, &e);
    assert_non_null(ap);
    assert_int_equal(acqplan_run(ap, &o, NULL, NULL, &e), -1);
    assert_int_equal(e.code, ACQPLAN_ERR_NO_IMAGES);
    assert_contains(e.msg, bc_noimages);
    assert_contains(e.msg, "has no images");
    acqplan_free(ap);

    assert_int_equal(filter_parse(&f, "C03", NULL, NULL, "DAPI", NULL, &e), 0);
    o.filter = &f;
    assert_int_equal(plan_acq(acq_a, &o, NULL, NULL, &e), -1);
    assert_contains(e.msg, "dye DAPI is not in the channel map (it has HOECHST, SYTO, "
                           "CONCAVALIN, PHALLOIDIN, MITO)");
    filter_release(&f);

    /* a filter that matches no image: a clear error, not an empty analysis */
    assert_int_equal(filter_parse(&f, "C03", "99", NULL, NULL, NULL, &e), 0);
    assert_int_equal(plan_acq(acq_a, &o, NULL, NULL, &e), -1);
    assert_int_equal(e.code, ACQPLAN_ERR_NO_SETS);
    assert_contains(e.msg, "no complete image set is left after the filters");
    filter_release(&f);

    assert_int_equal(filter_parse(&f, "C03-A01", NULL, NULL, NULL, NULL, &e), -1);
    assert_contains(e.msg, "well filter \"C03-A01\": token \"C03-A01\" at position 1: range "
                           "runs backwards");

    assert_string_equal(fingerprint(), before);
}

/* ---- analyses ---- */

static long long insert_analysis(const char *meta)
{
    char a[24];
    const char *p[2] = { a, meta };

    snprintf(a, sizeof(a), "%lld", acq_a);
    return idbfix_value(fx, "INSERT INTO image_analyses (plate_acquisition_id, pipeline_name,"
                            " meta) VALUES ($1::int, 'features', $2::jsonb) RETURNING id", 2, p);
}

static long long insert_sub(long long analysis, int priority, const char *meta,
                            const char *depends)
{
    char a[24], acq[24], pr[16];
    const char *p[5] = { a, acq, pr, meta, depends };

    snprintf(a, sizeof(a), "%lld", analysis);
    snprintf(acq, sizeof(acq), "%lld", acq_a);
    snprintf(pr, sizeof(pr), "%d", priority);
    return idbfix_value(fx, "INSERT INTO image_sub_analyses (analysis_id, plate_acquisition_id,"
                            " priority, meta, depends_on_sub_id) VALUES ($1::int, $2::int,"
                            " $3::int, $4::jsonb, $5::jsonb) RETURNING sub_id", 5, p);
}

/* "start|finish|error" of a row: 's', 'f', 'e' where set, '-' where NULL. */
static void marks(const char *table, const char *key, long long id, char out[4])
{
    char sql[256], a[24];
    const char *p[1] = { a };
    PGresult *r;

    snprintf(a, sizeof(a), "%lld", id);
    snprintf(sql, sizeof(sql), "SELECT start IS NOT NULL, finish IS NOT NULL, error IS NOT NULL"
                               " FROM %s WHERE %s = $1::int", table, key);
    r = idbfix_exec(fx, sql, 1, p);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    out[0] = PQgetvalue(r, 0, 0)[0] == 't' ? 's' : '-';
    out[1] = PQgetvalue(r, 0, 1)[0] == 't' ? 'f' : '-';
    out[2] = PQgetvalue(r, 0, 2)[0] == 't' ? 'e' : '-';
    out[3] = '\0';
    PQclear(r);
}

/* The parent's status rolled up: "state|progress|error_message" (empty where absent). */
static void parent_status(long long id, char *out, size_t size)
{
    char a[24];
    const char *p[1] = { a };
    PGresult *r;

    snprintf(a, sizeof(a), "%lld", id);
    r = idbfix_exec(fx, "SELECT concat_ws('|', coalesce(status->>'state', ''),"
                        " coalesce(status->>'progress', ''), coalesce(status->>'error_message', ''))"
                        " FROM image_analyses WHERE id = $1::int", 1, p);
    assert_non_null(r);
    assert_int_equal(PQntuples(r), 1);
    snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static void test_new_analyses_in_priority_order(void **state)
{
    struct idb_sub_analysis *subs;
    size_t n, i, mine = 0;
    long long an, s_low, s_high, s_started, order[3];
    struct err e;
    char a[24];
    const char *p[1] = { a };

    (void)state;
    an = insert_analysis("{\"note\": \"itest\"}");
    assert_true(an > 0);
    s_high = insert_sub(an, 5, "{\"type\": \"cellprofiler\", \"batch_size\": 0, "
                               "\"well_filter\": \"C03\"}", "[]");
    s_low = insert_sub(an, 1, "{\"type\": \"cellprofiler\"}", NULL);
    s_started = insert_sub(an, 0, "{}", NULL);
    snprintf(a, sizeof(a), "%lld", s_started);
    PQclear(idbfix_exec(fx, "UPDATE image_sub_analyses SET start = now() WHERE sub_id = $1::int",
                        1, p));
    /* a dependency list as the GUI writes it, with ids as numbers and as strings */
    {
        char dep[64];
        long long s_dep;

        snprintf(dep, sizeof(dep), "[%lld, \"%lld\"]", s_low, s_high);
        s_dep = insert_sub(an, 9, "{}", dep);
        assert_int_equal(idb_sub_analyses_new(db, &subs, &n, &e), 0);
        for (i = 0; i < n; i++) {
            if (subs[i].analysis_id != an)
                continue;
            assert_true(mine < 3);
            order[mine++] = subs[i].sub_id;
            assert_string_equal(subs[i].pipeline_name, "features");
            assert_string_equal(json_string_value(json_object_get(subs[i].analysis_meta, "note")),
                                "itest");
            assert_null(subs[i].start);
            if (subs[i].sub_id == s_high)
                assert_string_equal(json_string_value(json_object_get(subs[i].meta,
                                                                      "well_filter")), "C03");
            if (subs[i].sub_id == s_dep) {
                assert_int_equal(subs[i].ndepends, 2);
                assert_int_equal(subs[i].depends_on[0], s_low);
                assert_int_equal(subs[i].depends_on[1], s_high);
                assert_false(subs[i].depends_invalid);
            }
        }
        idb_sub_analyses_free(subs, n);
        assert_int_equal(mine, 3);      /* the started one is not new */
        assert_int_equal(order[0], s_low);
        assert_int_equal(order[1], s_high);
        assert_int_equal(order[2], s_dep);
    }
}

static void test_write_backs_roll_up_to_the_parent(void **state)
{
    long long an, s1, s2, s3, an2;
    struct idb_sub_analysis got;
    json_t *st, *res;
    const char *files[] = { "Image.csv", "Cells.csv" };
    char m[4], before[64], after[64], ps[256], want[256];
    char a[24];
    const char *p[1] = { a };
    PGresult *r;
    struct err e;

    (void)state;
    an = insert_analysis("{}");
    s1 = insert_sub(an, 0, "{}", NULL);
    s2 = insert_sub(an, 0, "{}", NULL);

    st = idb_status_new("running", "0 / 40 batches done", NULL);
    assert_int_equal(idb_sub_analysis_update(db, s1, IDB_MARK_START, st, NULL, &e), 0);
    json_decref(st);
    marks("image_sub_analyses", "sub_id", s1, m);
    assert_string_equal(m, "s--");
    marks("image_analyses", "id", an, m);
    assert_string_equal(m, "s--");      /* first sub started: parent started */
    parent_status(an, ps, sizeof(ps));
    assert_string_equal(ps, "Running|0 / 2 steps done|");

    /* a repeat moves no timestamp */
    snprintf(a, sizeof(a), "%lld", an);
    r = idbfix_exec(fx, "SELECT start::text FROM image_analyses WHERE id = $1::int", 1, p);
    snprintf(before, sizeof(before), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    st = idb_status_new("running", "12 / 40 batches done", NULL);
    assert_int_equal(idb_sub_analysis_update(db, s1, IDB_MARK_START, st, NULL, &e), 0);
    json_decref(st);
    r = idbfix_exec(fx, "SELECT start::text FROM image_analyses WHERE id = $1::int", 1, p);
    snprintf(after, sizeof(after), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_string_equal(before, after);

    res = idb_result_new("/cpp_work/output/x", files, 2);
    st = idb_status_new("succeeded", "40 / 40 batches done", NULL);
    assert_int_equal(idb_sub_analysis_update(db, s1, IDB_MARK_FINISH, st, res, &e), 0);
    json_decref(st);
    json_decref(res);
    marks("image_analyses", "id", an, m);
    assert_string_equal(m, "s--");      /* s2 is not finished yet */
    parent_status(an, ps, sizeof(ps));
    assert_string_equal(ps, "Running|1 / 2 steps done|");
    assert_int_equal(idb_sub_analysis_get(db, s1, &got, &e), 0);
    assert_non_null(got.finish);
    assert_string_equal(json_string_value(json_object_get(got.status, "progress")),
                        "40 / 40 batches done");
    assert_string_equal(json_string_value(json_object_get(got.result, "job_folder")),
                        "/cpp_work/output/x");
    assert_int_equal(json_array_size(json_object_get(got.result, "file_list")), 2);
    idb_sub_analysis_release(&got);

    assert_int_equal(idb_sub_analysis_update(db, s2, IDB_MARK_START, NULL, NULL, &e), 0);
    assert_int_equal(idb_sub_analysis_update(db, s2, IDB_MARK_FINISH, NULL, NULL, &e), 0);
    marks("image_analyses", "id", an, m);
    assert_string_equal(m, "sf-");      /* all finished */
    parent_status(an, ps, sizeof(ps));
    assert_string_equal(ps, "Succeeded|2 / 2 steps done|");

    /* a failure marks the parent's error */
    an2 = insert_analysis("{}");
    s3 = insert_sub(an2, 0, "{}", NULL);
    insert_sub(an2, 0, "{}", NULL);
    st = idb_status_new("failed", "3 / 40 batches done", "batch c03 failed: timeout");
    assert_int_equal(idb_sub_analysis_update(db, s3, IDB_MARK_ERROR, st, NULL, &e), 0);
    json_decref(st);
    marks("image_sub_analyses", "sub_id", s3, m);
    assert_string_equal(m, "--e");
    marks("image_analyses", "id", an2, m);
    assert_string_equal(m, "--e");
    /* the parent's status names the failed step, in the same write */
    parent_status(an2, ps, sizeof(ps));
    snprintf(want, sizeof(want), "Failed|0 / 2 steps done|step %lld: batch c03 failed: timeout", s3);
    assert_string_equal(ps, want);
    assert_int_equal(idb_sub_analysis_get(db, s3, &got, &e), 0);
    assert_string_equal(json_string_value(json_object_get(got.status, "error_message")),
                        "batch c03 failed: timeout");
    idb_sub_analysis_release(&got);

    /* an unknown row: a clear error */
    assert_int_equal(idb_sub_analysis_update(db, 2000000000LL, IDB_MARK_START, NULL, NULL, &e),
                     -1);
    assert_int_equal(e.code, IDB_ERR_NOTFOUND);
    assert_string_equal(e.msg, "write back sub-analysis 2000000000: sub-analysis 2000000000 "
                               "not found");
    assert_int_equal(idb_sub_analysis_get(db, 2000000000LL, &got, &e), -1);
    assert_int_equal(e.code, IDB_ERR_NOTFOUND);
}

static void test_reconnects_after_the_server_drops_it(void **state)
{
    struct idb_acquisition a;
    char pid[16];
    const char *p[1] = { pid };
    struct err e;
    unsigned before;

    (void)state;
    before = idb_connections(db);
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(idb_pgconn(db)));
    assert_int_equal(idbfix_value(fx, "SELECT pg_terminate_backend($1::int)::int", 1, p), 1);
    usleep(100000);
    if (idb_acquisition_get(db, acq_a, &a, &e) < 0)
        fail_msg("%s", e.msg);
    assert_string_equal(a.plate_barcode, bc_a);
    idb_acquisition_release(&a);
    assert_int_equal(idb_connections(db), before + 1);

    /* and the stream, too */
    snprintf(pid, sizeof(pid), "%d", PQbackendPID(idb_pgconn(db)));
    assert_int_equal(idbfix_value(fx, "SELECT pg_terminate_backend($1::int)::int", 1, p), 1);
    usleep(100000);
    {
        struct plan_opts o = { 0 };
        struct plan_summary sum;

        if (plan_acq(acq_c, &o, NULL, &sum, &e) < 0)
            fail_msg("%s", e.msg);
        assert_int_equal(sum.image_sets, 96 * 8);
    }
    assert_int_equal(idb_connections(db), before + 2);
}

/* The backend serving db: stopped, it holds the connection open and never answers. */
static void test_probe_is_bounded_and_drops_a_silent_connection(void **state)
{
    struct idb *d = idb_open(NULL, NULL);
    pid_t backend;
    double t0, took;
    struct err e;

    (void)state;
    assert_non_null(d);
    if (idb_probe(d, 2000, &e) < 0)
        fail_msg("%s", e.msg);
    backend = PQbackendPID(idb_pgconn(d));
    assert_int_equal(kill(backend, SIGSTOP), 0);
    t0 = monotime_now();
    assert_int_equal(idb_probe(d, 300, &e), -1);
    took = monotime_now() - t0;
    kill(backend, SIGCONT);
    printf("# probe of a silent server gave up after %.0f ms\n", took * 1000);
    assert_int_equal(e.code, IDB_ERR_CONNECT);
    assert_contains(e.msg, "did not answer within 300 ms");
    assert_true(took >= 0.29 && took < 1.5);
    assert_null(idb_pgconn(d));          /* dropped: its query is still in flight */
    assert_int_equal(idb_probe(d, 300, &e), -1);
    assert_contains(e.msg, "not connected to ImageDB");
    assert_int_equal(idb_ensure(d, &e), 0);
    if (idb_probe(d, 2000, &e) < 0)
        fail_msg("%s", e.msg);
    idb_close(d);
}

/*
 * PostgreSQL stopped under two open connections: the one with a short
 * reconnect budget gives up with a message saying how hard it tried; the
 * other keeps retrying while the server is down and succeeds once it is
 * back a few seconds later, within the same call.
 */
static void test_reconnect_backoff_rides_out_a_stopped_server(void **state)
{
    struct idb_config shortcfg = { .reconnect_budget_ms = 1000 }, longcfg = { 0 };
    struct idb *quick, *patient;
    struct idb_acquisition a;
    double t0, quick_s, patient_s;
    int status, quick_rc, patient_rc;
    pid_t starter;
    struct err quick_e, patient_e;

    (void)state;
    if (!idbfix_can_restart())
        skip();
    quick = idb_open(&shortcfg, NULL);
    patient = idb_open(&longcfg, NULL);
    assert_non_null(quick);
    assert_non_null(patient);
    assert_int_equal(idbfix_pg_ctl("stop"), 0);

    /* Nothing is asserted until the server is back, so a failure leaves it running. */
    t0 = monotime_now();
    quick_rc = idb_acquisition_get(quick, acq_a, &a, &quick_e);
    quick_s = monotime_now() - t0;
    if (quick_rc == 0)
        idb_acquisition_release(&a);
    /* Back in two seconds: the call below is retrying by then. */
    fflush(stdout);
    starter = fork();
    if (starter == 0) {
        sleep(2);
        _exit(idbfix_pg_ctl("start") == 0 ? 0 : 1);
    }
    t0 = monotime_now();
    patient_rc = idb_acquisition_get(patient, acq_a, &a, &patient_e);
    patient_s = monotime_now() - t0;
    if (starter < 0 || waitpid(starter, &status, 0) != starter || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        assert_int_equal(idbfix_pg_ctl("start"), 0);
    PQreset(fx);
    assert_int_equal(PQstatus(fx), CONNECTION_OK);

    printf("# short budget: %s (%.1f s)\n", quick_rc < 0 ? quick_e.msg : "succeeded?", quick_s);
    assert_int_equal(quick_rc, -1);
    assert_int_equal(quick_e.code, IDB_ERR_CONNECT);
    assert_contains(quick_e.msg, "ImageDB connection lost; gave up after ");
    assert_contains(quick_e.msg, " attempts in 1000 ms: connect to ImageDB ");
    assert_true(quick_s >= 0.9 && quick_s < 10);

    if (patient_rc < 0)
        fail_msg("with the default budget: %s", patient_e.msg);
    printf("# default budget: the read succeeded after %.1f s, on connection %u\n", patient_s,
           idb_connections(patient));
    assert_string_equal(a.plate_barcode, bc_a);
    idb_acquisition_release(&a);
    assert_true(patient_s >= 1.5);
    assert_int_equal(idb_connections(patient), 2);
    idb_close(quick);
    idb_close(patient);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_password_file),
        cmocka_unit_test(test_read_acquisition_and_channel_map),
        cmocka_unit_test(test_generated_384_plate_end_to_end),
        cmocka_unit_test(test_a_callback_error_stops_the_stream),
        cmocka_unit_test(test_missing_and_stray_channels),
        cmocka_unit_test(test_filters_across_a_row_boundary),
        cmocka_unit_test(test_timepoints_stay_with_their_well),
        cmocka_unit_test(test_sql_metacharacters_harm_nothing),
        cmocka_unit_test(test_bad_input_is_named_and_writes_nothing),
        cmocka_unit_test(test_new_analyses_in_priority_order),
        cmocka_unit_test(test_write_backs_roll_up_to_the_parent),
        cmocka_unit_test(test_reconnects_after_the_server_drops_it),
        cmocka_unit_test(test_probe_is_bounded_and_drops_a_silent_connection),
        cmocka_unit_test(test_reconnect_backoff_rides_out_a_stopped_server),
    };

    if (!idbfix_configured()) {
        printf("1..0 # SKIP no ImageDB in the environment (PGHOST or PLATEOP_IMAGEDB_URI)\n");
        return 0;
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
