/* Unit tests for loaddata: columns by dye name, quoting, ICF columns; every CSV parses back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "loaddata.h"
#include "plan.h"
#include "strbuf.h"

static const struct plan_channel map3[] = { { 1, "DNA" }, { 2, "ER" }, { 4, "Mito" } };

/* Nasty but legal paths: every CSV special character, spaces, UTF-8. */
static const char *const nasty[] = {
    "/share/plate 1/C03_s1_w1.tif",
    "/share/a,b/\"quoted\" name.tif",
    "/share/line\nbreak/x\r\ny.tif",
    "/root-file.tif",
    "bare,file.tif",
    "/share/ünïcödé/  leading and trailing  ",
};
#define NNASTY (sizeof(nasty) / sizeof(nasty[0]))

struct rendered {
    struct strbuf csv;
    struct loaddata_opts o;
    int failed;
    struct err e;
    size_t nsets;
    /* the batch's values, kept to compare with what parses back */
    char paths[16][3][128];
    char wells[16][8];
    int site[16], tp[16], z[16];
};

static int render(const struct plan_batch *b, void *arg, struct err *e)
{
    struct rendered *r = arg;
    size_t i, j;

    (void)e;
    if (loaddata_render(b, &r->o, &r->csv, &r->e) < 0) {
        r->failed = 1;
        return 0;
    }
    r->nsets = b->nsets;
    for (i = 0; i < b->nsets && i < 16; i++) {
        for (j = 0; j < b->ndyes; j++)
            snprintf(r->paths[i][j], sizeof(r->paths[i][j]), "%s", b->sets[i].paths[j]);
        snprintf(r->wells[i], sizeof(r->wells[i]), "%s", b->sets[i].well);
        r->site[i] = b->sets[i].site;
        r->tp[i] = b->sets[i].timepoint;
        r->z[i] = b->sets[i].z;
    }
    return 0;
}

/* One batch: well C03, sites 1..NNASTY, the nasty path as channel 2's image. */
static void plan_one_batch(struct rendered *r, const char *barcode, int missing_site)
{
    struct plan_opts o = { .plate_barcode = barcode, .acq_id = 42,
                           .mode = PLAN_BY_SETS, .batch_size = 0 };
    struct plan *p;
    struct err e;
    char path[128];
    size_t s;
    int k;

    p = plan_new(&o, map3, 3, render, r, &e);
    assert_non_null(p);
    for (s = 0; s < NNASTY; s++)
        for (k = 1; k <= 4; k++) {
            struct plan_image img = { 3, "c3", (int)s + 1, 2, k, path };

            if (k == 3 || ((int)s + 1 == missing_site && k == 4))
                continue;
            if (k == 2)
                snprintf(path, sizeof(path), "%s", nasty[s]);
            else
                snprintf(path, sizeof(path), "/img/C03_s%zu_w%d.tif", s + 1, k);
            assert_int_equal(plan_add(p, &img, &e), 0);
        }
    assert_int_equal(plan_finish(p, &e), 0);
    plan_free(p);
}

/* Index of the column named name in a header record, or fail. */
static size_t col(const struct csv_record *h, const char *name)
{
    size_t i;

    for (i = 0; i < h->nfields; i++)
        if (strcmp(h->fields[i].data, name) == 0)
            return i;
    fail_msg("no column %s", name);
    return 0;
}

/* The PathName and FileName LoadData should hold for path (dir and file: 128 bytes). */
static void split(const char *path, char *dir, char *file)
{
    const char *slash = strrchr(path, '/');

    if (!slash) {
        snprintf(dir, 128, "%s", "");
        snprintf(file, 128, "%s", path);
        return;
    }
    snprintf(file, 128, "%s", slash + 1);
    if (slash == path)
        snprintf(dir, 128, "/");
    else
        snprintf(dir, 128, "%.*s", (int)(slash - path), path);
}

static void test_columns_by_dye_and_values_parse_back(void **state)
{
    struct rendered *r = calloc(1, sizeof(*r));
    const char *dyes[] = { "DNA", "ER", "Mito" };
    struct csv_reader *rd;
    struct csv_record *rec, hdr;
    struct csv_field hf[32];
    char dir[128], file[128], name[64], num[16];
    size_t i, j, row = 0;
    struct err e;
    int rc;

    (void)state;
    strbuf_init(&r->csv);
    plan_one_batch(r, "PB,\"1\"", 0);
    assert_false(r->failed);
    assert_int_equal(r->nsets, NNASTY);

    rd = csv_reader_mem(r->csv.buf, r->csv.len, "loaddata", CSV_REQUIRE_EOL, &e);
    assert_non_null(rd);
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    /* the header: 3 dyes x 2 + 6 metadata, in a fixed order */
    assert_int_equal(rec->nfields, 12);
    assert_string_equal(rec->fields[0].data, "FileName_DNA");
    assert_string_equal(rec->fields[1].data, "PathName_DNA");
    assert_string_equal(rec->fields[4].data, "FileName_Mito");
    assert_string_equal(rec->fields[6].data, "Metadata_Plate");
    assert_string_equal(rec->fields[11].data, "Metadata_AcqID");
    /* copy the header: the next csv_read() reuses the buffer */
    hdr = *rec;
    hdr.fields = hf;
    for (i = 0; i < rec->nfields; i++) {
        hf[i] = rec->fields[i];
        hf[i].data = strdup(rec->fields[i].data);
    }
    while ((rc = csv_read(rd, &rec, &e)) == 1) {
        assert_true(row < NNASTY);
        assert_int_equal(rec->nfields, 12);
        for (j = 0; j < 3; j++) {
            split(r->paths[row][j], dir, file);
            snprintf(name, sizeof(name), "FileName_%s", dyes[j]);
            assert_string_equal(rec->fields[col(&hdr, name)].data, file);
            snprintf(name, sizeof(name), "PathName_%s", dyes[j]);
            assert_string_equal(rec->fields[col(&hdr, name)].data, dir);
        }
        /* channel 2 (ER) holds the nasty path of this site */
        split(nasty[row], dir, file);
        assert_string_equal(rec->fields[col(&hdr, "FileName_ER")].data, file);
        assert_string_equal(rec->fields[col(&hdr, "PathName_ER")].data, dir);
        assert_string_equal(rec->fields[col(&hdr, "Metadata_Plate")].data, "PB,\"1\"");
        assert_string_equal(rec->fields[col(&hdr, "Metadata_Well")].data, "C03");
        snprintf(num, sizeof(num), "%zu", row + 1);
        assert_string_equal(rec->fields[col(&hdr, "Metadata_Site")].data, num);
        assert_string_equal(rec->fields[col(&hdr, "Metadata_Timepoint")].data, "3");
        assert_string_equal(rec->fields[col(&hdr, "Metadata_Z")].data, "2");
        assert_string_equal(rec->fields[col(&hdr, "Metadata_AcqID")].data, "42");
        row++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(row, NNASTY);
    csv_reader_free(rd);
    for (i = 0; i < hdr.nfields; i++)
        free(hf[i].data);
    strbuf_release(&r->csv);
    free(r);
}

static void test_missing_channel_never_shifts_columns(void **state)
{
    struct rendered *r = calloc(1, sizeof(*r));
    struct csv_reader *rd;
    struct csv_record *rec;
    struct err e;
    size_t rows = 0;

    (void)state;
    strbuf_init(&r->csv);
    plan_one_batch(r, "P1", 2);     /* site 2 lacks Mito: left out, not shifted */
    assert_int_equal(r->nsets, NNASTY - 1);
    rd = csv_reader_mem(r->csv.buf, r->csv.len, "loaddata", 0, &e);
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    while (csv_read(rd, &rec, &e) == 1) {
        assert_string_not_equal(rec->fields[8].data, "2");   /* Metadata_Site */
        assert_non_null(strstr(rec->fields[4].data, "_w4.tif"));   /* FileName_Mito */
        rows++;
    }
    assert_int_equal(rows, NNASTY - 1);
    csv_reader_free(rd);
    strbuf_release(&r->csv);
    free(r);
}

static void test_icf_columns(void **state)
{
    struct rendered *r = calloc(1, sizeof(*r));
    struct csv_reader *rd;
    struct csv_record *rec;
    struct err e;

    (void)state;
    strbuf_init(&r->csv);
    r->o.icf_dir = "/cpp_work/results/icf, run 7";
    plan_one_batch(r, "P1", 0);
    assert_false(r->failed);
    rd = csv_reader_mem(r->csv.buf, r->csv.len, "loaddata", 0, &e);
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    assert_int_equal(rec->nfields, 18);
    assert_string_equal(rec->fields[6].data, "FileName_ICF_DNA");
    assert_string_equal(rec->fields[7].data, "PathName_ICF_DNA");
    assert_string_equal(rec->fields[10].data, "FileName_ICF_Mito");
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    assert_string_equal(rec->fields[6].data, "ICF_DNA.npy");
    assert_string_equal(rec->fields[7].data, "/cpp_work/results/icf, run 7");
    assert_string_equal(rec->fields[10].data, "ICF_Mito.npy");
    csv_reader_free(rd);

    /* a file name template */
    strbuf_reset(&r->csv);
    r->o.icf_file = "{plate}_Illum{dye}.npy";
    plan_one_batch(r, "P1", 0);
    rd = csv_reader_mem(r->csv.buf, r->csv.len, "loaddata", 0, &e);
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    assert_int_equal(csv_read(rd, &rec, &e), 1);
    assert_string_equal(rec->fields[8].data, "P1_IllumER.npy");
    csv_reader_free(rd);
    strbuf_release(&r->csv);
    free(r);
}

static int to_file(const struct plan_batch *b, void *arg, struct err *e)
{
    FILE *f = arg;

    return loaddata_write_file(b, NULL, f, "batch.csv", e);
}

static int to_buf(const struct plan_batch *b, void *arg, struct err *e)
{
    return loaddata_render(b, NULL, arg, e);
}

static void test_file_and_buffer_are_identical_and_deterministic(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .acq_id = 1 };
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f;
    struct plan *p;
    struct err e;
    char path[64];
    int w, k, pass;

    (void)state;
    for (pass = 0; pass < 3; pass++) {
        f = pass == 0 ? open_memstream(&mem, &memlen) : NULL;
        p = plan_new(&o, map3, 3, pass == 0 ? to_file : to_buf, pass == 0 ? (void *)f
                                                     : pass == 1 ? (void *)&a : (void *)&b, &e);
        assert_non_null(p);
        for (w = 1; w <= 12; w++) {
            char well[16];

            snprintf(well, sizeof(well), "A%02d", w);
            for (k = 4; k >= 1; k--) {
                struct plan_image img = { 1, well, 1, 0, k, path };

                snprintf(path, sizeof(path), "/img/%s_w%d.tif", well, k);
                if (k != 3)
                    assert_int_equal(plan_add(p, &img, &e), 0);
            }
        }
        assert_int_equal(plan_finish(p, &e), 0);
        plan_free(p);
        if (f)
            fclose(f);
    }
    assert_int_equal(memlen, a.len);
    assert_memory_equal(mem, a.buf, a.len);
    assert_string_equal(a.buf, b.buf);
    assert_non_null(strstr(a.buf, "FileName_DNA,PathName_DNA,FileName_ER,PathName_ER,"
                                  "FileName_Mito,PathName_Mito,Metadata_Plate,Metadata_Well,"
                                  "Metadata_Site,Metadata_Timepoint,Metadata_Z,Metadata_AcqID\n"
                                  "A01_w1.tif,/img,A01_w2.tif,/img,A01_w4.tif,/img,P1,A01,1,1,0,1\n"));
    free(mem);
    strbuf_release(&a);
    strbuf_release(&b);
}

static int expect_path_error(const struct plan_batch *b, void *arg, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    int rc = loaddata_render(b, NULL, &sb, e);

    (void)arg;
    strbuf_release(&sb);
    return rc;
}

static void test_path_without_file_is_an_error(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct plan_channel one[] = { { 1, "DNA" } };
    struct plan_image img = { 1, "A01", 1, 0, 1, "/img/dir/" };
    struct plan *p;
    struct err e;

    (void)state;
    p = plan_new(&o, one, 1, expect_path_error, NULL, &e);
    assert_int_equal(plan_add(p, &img, &e), 0);
    assert_int_equal(plan_finish(p, &e), -1);
    assert_int_equal(e.code, LOADDATA_ERR_PATH);
    assert_string_equal(e.msg, "LoadData CSV of batch a01: image path \"/img/dir/\" names no file");
    plan_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_by_dye_and_values_parse_back),
        cmocka_unit_test(test_missing_channel_never_shifts_columns),
        cmocka_unit_test(test_icf_columns),
        cmocka_unit_test(test_file_and_buffer_are_identical_and_deterministic),
        cmocka_unit_test(test_path_without_file_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
