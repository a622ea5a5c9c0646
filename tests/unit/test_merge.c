/* Tests of the merge: column alignment, quoting, ImageNumber offsets, checks and atomicity. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../worker/exit.h"
#include "../../worker/merge.h"
#include "csv.h"
#include "fileutil.h"
#include "log.h"
#include "manifest.h"
#include "workerfix.h"

struct world {
    char root[64];
    char batches[128];
    char dest[128];
    struct err e;
};

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof(*w));

    if (!w)
        return -1;
    snprintf(w->root, sizeof(w->root), "/tmp/plateop-mtest-XXXXXX");
    if (!mkdtemp(w->root))
        return -1;
    snprintf(w->batches, sizeof(w->batches), "%s/batches", w->root);
    snprintf(w->dest, sizeof(w->dest), "%s/merged", w->root);
    if (mkdir(w->batches, 0755) < 0)
        return -1;
    log_set_fd(open("/dev/null", O_WRONLY));
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    struct err e;

    fileutil_rm_rf(w->root, &e);
    free(w);
    return 0;
}

/* Writes a batch result as `run` would: tables, then the manifest. tables: name, text, ..., NULL. */
static void make_batch(struct world *w, const char *id, long image_count, ...)
{
    char dir[256], path[300];
    json_t *tables = json_array(), *root;
    const char *name;
    va_list ap;

    snprintf(dir, sizeof(dir), "%s/%s", w->batches, id);
    assert_int_equal(mkdir(dir, 0755), 0);
    va_start(ap, image_count);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *text = va_arg(ap, const char *);
        struct manifest_table t;

        snprintf(path, sizeof(path), "%s/%s.csv", dir, name);
        assert_int_equal(fileutil_write_atomic(path, text, strlen(text), &w->e), 0);
        snprintf(path, sizeof(path), "%s.csv", name);
        if (manifest_scan_table(dir, path, &t, &w->e) < 0)
            fail_msg("%s", w->e.msg);
        json_array_append_new(tables, manifest_table_json(&t));
        manifest_table_release(&t);
    }
    va_end(ap);
    root = json_pack("{s:s, s:[], s:s, s:i, s:i, s:o}", "batch", id, "wells", "input_hash", "",
                     "image_sets", (int)image_count, "image_count", (int)image_count, "tables", tables);
    assert_int_equal(manifest_write(dir, "batch", root, &w->e), 0);
    json_decref(root);
}

static int merge(struct world *w, const char *failed, int allow_extra)
{
    struct merge_opts o = { 0 };

    o.root = w->batches;
    o.dest = w->dest;
    o.analysis = "lab/plate1";
    o.failed = failed;
    o.allow_extra_columns = allow_extra;
    err_clear(&w->e);
    return merge_batches(&o, &w->e);
}

static char *slurp(const char *path)
{
    struct strbuf sb = STRBUF_INIT;
    struct err e;

    if (fileutil_read(path, &sb, 1 << 26, &e) < 0)
        fail_msg("%s", e.msg);
    return strbuf_detach(&sb, NULL);
}

static void assert_file(struct world *w, const char *name, const char *want)
{
    char path[300], *got;

    snprintf(path, sizeof(path), "%s/%s", w->dest, name);
    got = slurp(path);
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n got [%s]\nwant [%s]", name, got, want);
    free(got);
}

static void assert_failed_cleanly(struct world *w, int rc, int code, const char *msg)
{
    struct dirent *de;
    DIR *d;

    if (rc != code)
        fail_msg("rc %d, want %d: %s", rc, code, w->e.msg);
    if (!strstr(w->e.msg, msg))
        fail_msg("[%s] not in [%s]", msg, w->e.msg);
    assert_int_equal(access(w->dest, F_OK), -1);
    d = opendir(w->root);
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp-"))
            fail_msg("temporary directory left: %s", de->d_name);
    closedir(d);
}

static void test_reordered_columns_and_image_offsets(void **state)
{
    struct world *w = *state;
    json_t *m;

    make_batch(w, "b2", 2, "Cells", "ObjectNumber,Area,ImageNumber\n1,5.5,1\n1,6,2\n", NULL);
    make_batch(w, "b10", 1, "Cells", "ImageNumber,ObjectNumber,Area\n1,1,7\n", NULL);
    make_batch(w, "b1", 3, "Cells", "ImageNumber,ObjectNumber,Area\n1,1,1.5\n3,2,2.5\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    /* Order b1, b2, b10; offsets 0, 3, 5; ObjectNumber kept. */
    assert_file(w, "Cells.csv", "ImageNumber,ObjectNumber,Area,Metadata_Batch\n"
                "1,1,1.5,b1\n3,2,2.5,b1\n4,1,5.5,b2\n5,1,6,b2\n6,1,7,b10\n");
    m = manifest_read(w->dest, "merge", &w->e);
    assert_non_null(m);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(m, "batches"), 2),
                                                        "image_offset")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(m, "tables"), 0),
                                                        "rows")), 5);
    json_decref(m);
}

static void test_extra_files_reach_the_result(void **state)
{
    struct world *w = *state;
    char path[300];

    make_batch(w, "b1", 1, "Image", "ImageNumber,Count\n1,3\n", NULL);
    make_batch(w, "b2", 1, "Image", "ImageNumber,Count\n1,4\n", NULL);
    snprintf(path, sizeof(path), "%s/b1/ICF_DNA.npy", w->batches);
    assert_int_equal(fileutil_write_atomic(path, "npy-bytes", 9, &w->e), 0);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "ICF_DNA.npy", "npy-bytes");

    /* The same file from two batches is one file. */
    snprintf(path, sizeof(path), "%s/b2/ICF_DNA.npy", w->batches);
    assert_int_equal(fileutil_write_atomic(path, "npy-bytes", 9, &w->e), 0);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "ICF_DNA.npy", "npy-bytes");

    /* Different files of one name: which one is meant cannot be known. */
    assert_int_equal(fileutil_write_atomic(path, "other", 5, &w->e), 0);
    assert_int_equal(fileutil_rm_rf(w->dest, &w->e), 0);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT, "saves a file another batch saved with other contents");
}

static void test_quoting_crlf_and_empty_tables(void **state)
{
    struct world *w = *state;
    struct csv_reader *r;
    struct csv_record *rec;
    char path[300];

    make_batch(w, "b1", 1, "Image", "ImageNumber,Metadata_Path\r\n1,\"/a, \"\"b\"\"\r\nc\"\r\n", NULL);
    make_batch(w, "b2", 1, "Image", "ImageNumber,Metadata_Path\n", NULL);
    make_batch(w, "b3", 1, "Image", "Metadata_Path,ImageNumber\nplain,1\n", NULL);
    /* A quoted field in a row otherwise copied as one span. */
    make_batch(w, "b4", 1, "Image", "ImageNumber,Metadata_Path\n1,\"q,1\"\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    snprintf(path, sizeof(path), "%s/Image.csv", w->dest);
    r = csv_reader_open(path, CSV_REQUIRE_EOL, &w->e);
    assert_int_equal(csv_read(r, &rec, &w->e), 1);
    assert_int_equal(csv_read(r, &rec, &w->e), 1);
    assert_string_equal(rec->fields[0].data, "1");
    assert_string_equal(rec->fields[1].data, "/a, \"b\"\r\nc");
    assert_int_equal(csv_read(r, &rec, &w->e), 1);
    assert_string_equal(rec->fields[0].data, "3");
    assert_string_equal(rec->fields[1].data, "plain");
    assert_string_equal(rec->fields[2].data, "b3");
    assert_int_equal(csv_read(r, &rec, &w->e), 1);
    assert_string_equal(rec->fields[0].data, "4");
    assert_string_equal(rec->fields[1].data, "q,1");
    assert_int_equal(csv_read(r, &rec, &w->e), 0);
    csv_reader_free(r);
}

/*
 * The fast path (whole lines) and the parser alternate: a quoted field
 * with a CRLF inside a fast batch, CRLF line ends, a reordered batch in the
 * middle, ImageNumber in the middle and at the end of the line.
 */
static void test_fast_path_gives_way_to_the_parser(void **state)
{
    struct world *w = *state;

    make_batch(w, "b1", 2,
               "Cells", "Area,ImageNumber,Label\r\n1.5,1,a\r\n"
                        "2.5,2,\"two\r\nlines, \"\"quoted\"\"\"\r\n3.5,1,c\r\n",
               "Nuclei", "Label,ImageNumber\nx,1\ny,2\n", NULL);
    make_batch(w, "b2", 1, "Cells", "ImageNumber,Label,Area\n1,d,4.5\n",
               "Nuclei", "Label,ImageNumber\nz,1\n", NULL);
    make_batch(w, "b3", 1, "Cells", "Area,ImageNumber,Label\n5.5,1,e\n",
               "Nuclei", "Label,ImageNumber\n\"w\",1\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Cells.csv", "Area,ImageNumber,Label,Metadata_Batch\n"
                "1.5,1,a,b1\n2.5,2,\"two\r\nlines, \"\"quoted\"\"\",b1\n3.5,1,c,b1\n"
                "4.5,3,d,b2\n5.5,4,e,b3\n");
    assert_file(w, "Nuclei.csv", "Label,ImageNumber,Metadata_Batch\nx,1,b1\ny,2,b1\nz,3,b2\nw,4,b3\n");
}

/* Tables larger than the read and write buffers, with a quoted row now and then. */
static void test_large_tables_stream_intact(void **state)
{
    struct world *w = *state;
    struct strbuf want = STRBUF_INIT, table = STRBUF_INIT;
    struct manifest_hasher *h;
    char path[300], *got, sha[65], id[16];
    const char *pad = "0.123456789 1.23456789 12.3456789 123.456789 1234.56789 12345.6789";
    json_t *m;
    int b, i;

    strbuf_adds(&want, "ImageNumber,ObjectNumber,Label,Values,Metadata_Batch\n");
    for (b = 1; b <= 3; b++) {
        strbuf_reset(&table);
        strbuf_adds(&table, "ImageNumber,ObjectNumber,Label,Values\n");
        snprintf(id, sizeof(id), "b%d", b);
        for (i = 1; i <= 12000; i++) {
            const char *label = i % 97 ? "plain" : "\"with,comma\nand line\"";

            strbuf_addf(&table, "%d,%d,%s,%s %s\n", i % 4 + 1, i, label, pad, pad);
            strbuf_addf(&want, "%d,%d,%s,%s %s,%s\n", (b - 1) * 4 + i % 4 + 1, i, label, pad, pad, id);
        }
        make_batch(w, id, 4, "Cells", table.buf, NULL);
    }
    assert_true(want.len > 4 * 1024 * 1024);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    snprintf(path, sizeof(path), "%s/Cells.csv", w->dest);
    got = slurp(path);
    assert_int_equal(strlen(got), want.len);
    assert_true(strcmp(got, want.buf) == 0);
    free(got);
    h = manifest_hasher_new(&w->e);
    manifest_hasher_update(h, want.buf, want.len, &w->e);
    manifest_hasher_finish(h, sha);
    m = manifest_read(w->dest, "merge", &w->e);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(m, "tables"), 0),
                                                          "sha256")), sha);
    json_decref(m);
    strbuf_release(&want);
    strbuf_release(&table);
}

static void test_experiment_tables_are_kept_per_batch(void **state)
{
    struct world *w = *state;

    make_batch(w, "b1", 1, "Experiment", "Key,Value\nCellProfiler_Version,4.2.6\n", NULL);
    make_batch(w, "b2", 1, "Experiment", "Key,Value\nCellProfiler_Version,4.2.6\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Experiment.csv", "Key,Value,Metadata_Batch\n"
                "CellProfiler_Version,4.2.6,b1\nCellProfiler_Version,4.2.6,b2\n");
}

static void test_missing_and_extra_columns(void **state)
{
    struct world *w = *state;
    json_t *m, *missing;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A,B\n1,a1,b1\n", NULL);
    make_batch(w, "b2", 1, "Cells", "ImageNumber,B\n1,b2\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,A,B,Metadata_Batch\n1,a1,b1,b1\n2,,b2,b2\n");
    m = manifest_read(w->dest, "merge", &w->e);
    missing = json_object_get(json_array_get(json_object_get(m, "tables"), 0), "missing_columns");
    assert_string_equal(json_string_value(json_object_get(json_array_get(missing, 0), "batch")), "b2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(missing, 0),
                                                                          "columns"), 0)), "A");
    json_decref(m);

    make_batch(w, "b3", 1, "Cells", "ImageNumber,A,B,Extra\n1,a3,b3,x\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_BAD_INPUT);
    /* The older result at the destination stays as it was. */
    assert_file(w, "Cells.csv", "ImageNumber,A,B,Metadata_Batch\n1,a1,b1,b1\n2,,b2,b2\n");
    fileutil_rm_rf(w->dest, &w->e);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT,
                          "b3/Cells.csv: unexpected column 'Extra' (in 1 of 3 batches, fewer than half");
    assert_non_null(strstr(w->e.msg, "batch b3: "));
    assert_int_equal(merge(w, NULL, 1), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,A,B,Extra,Metadata_Batch\n"
                "1,a1,b1,,b1\n2,,b2,,b2\n3,a3,b3,x,b3\n");
}

/* The first batch is no reference: a column only it lacks is missing there, not extra elsewhere. */
static void test_first_batch_lacking_a_column(void **state)
{
    struct world *w = *state;
    json_t *m, *missing;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,B\n1,b1\n", NULL);
    make_batch(w, "b2", 1, "Cells", "ImageNumber,A,B\n1,a2,b2\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,B,A,Metadata_Batch\n1,b1,,b1\n2,b2,a2,b2\n");

    make_batch(w, "b3", 1, "Cells", "ImageNumber,B,A\n1,b3,a3\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,B,A,Metadata_Batch\n1,b1,,b1\n2,b2,a2,b2\n3,b3,a3,b3\n");
    m = manifest_read(w->dest, "merge", &w->e);
    missing = json_object_get(json_array_get(json_object_get(m, "tables"), 0), "missing_columns");
    assert_int_equal(json_array_size(missing), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(missing, 0), "batch")), "b1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_array_get(missing, 0),
                                                                          "columns"), 0)), "A");
    json_decref(m);

    /* Columns later batches add come in order of appearance. */
    make_batch(w, "b4", 1, "Cells", "ImageNumber,Z,A,B\n1,z4,a4,b4\n", NULL);
    fileutil_rm_rf(w->dest, &w->e);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT,
                          "batch b4: ");
    assert_non_null(strstr(w->e.msg, "b4/Cells.csv: unexpected column 'Z' (in 1 of 4 batches"));
    assert_int_equal(merge(w, NULL, 1), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,B,A,Z,Metadata_Batch\n"
                "1,b1,,,b1\n2,b2,a2,,b2\n3,b3,a3,,b3\n4,b4,a4,z4,b4\n");
}

static void test_truncated_table_fails_naming_the_file(void **state)
{
    struct world *w = *state;
    char path[300], mpath[300];
    struct strbuf text = STRBUF_INIT;
    char *p;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n", NULL);
    make_batch(w, "b2", 1, "Cells", "ImageNumber,A\n1,\"long\nvalue\"\n", NULL);
    snprintf(path, sizeof(path), "%s/b2/Cells.csv", w->batches);
    assert_int_equal(truncate(path, 22), 0);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT, "b2/Cells.csv has 22 bytes, its manifest says 29");
    /* Even with a manifest that agrees on the size, the parse names the file and line. */
    snprintf(mpath, sizeof(mpath), "%s/b2/manifest.json", w->batches);
    assert_int_equal(fileutil_read(mpath, &text, 1 << 20, &w->e), 0);
    p = strstr(text.buf, "\"bytes\": 29");
    assert_non_null(p);
    memcpy(p, "\"bytes\": 22", 11);
    assert_int_equal(fileutil_write_atomic(mpath, text.buf, text.len, &w->e), 0);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT,
                          "b2/Cells.csv:3: unterminated quoted field starting at line 2");
    strbuf_release(&text);
}

static void test_row_count_and_image_number_checks(void **state)
{
    struct world *w = *state;
    char mpath[300];
    struct strbuf text = STRBUF_INIT;
    char *p;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n1,y\n", NULL);
    snprintf(mpath, sizeof(mpath), "%s/b1/manifest.json", w->batches);
    assert_int_equal(fileutil_read(mpath, &text, 1 << 20, &w->e), 0);
    p = strstr(text.buf, "\"rows\": 2");
    memcpy(p, "\"rows\": 3", 9);
    assert_int_equal(fileutil_write_atomic(mpath, text.buf, text.len, &w->e), 0);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_VERIFY_FAILED, "has 2 rows, its manifest says 3");

    fileutil_rm_rf(w->batches, &w->e);
    mkdir(w->batches, 0755);
    /* The table uses ImageNumber 2, the manifest allows 1. */
    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n2,x\n", NULL);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT, "b1/Cells.csv:2: ImageNumber '2' outside 1..1");

    fileutil_rm_rf(w->batches, &w->e);
    mkdir(w->batches, 0755);
    /* A row one field too wide among rows the fast path takes (same size as in the manifest). */
    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n1,yz\n1,w\n", NULL);
    snprintf(mpath, sizeof(mpath), "%s/b1/Cells.csv", w->batches);
    assert_int_equal(fileutil_write_atomic(mpath, "ImageNumber,A\n1,x\n1,y,\n1,w\n", 27, &w->e), 0);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT, "b1/Cells.csv:3: 3 fields, expected 2");
    strbuf_release(&text);
}

static void test_batch_without_manifest_and_failed_batches(void **state)
{
    struct world *w = *state;
    const char *failed = "[{\"batch\":\"b2\",\"wells\":[\"C04\"],\"reason\":\"Timeout\"}]";
    char dir[300];
    json_t *m, *f;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n", NULL);
    snprintf(dir, sizeof(dir), "%s/b2", w->batches);
    mkdir(dir, 0755);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_BAD_INPUT, "b2/manifest.json: no manifest");
    assert_int_equal(merge(w, failed, 0), WORKER_OK);
    m = manifest_read(w->dest, "merge", &w->e);
    f = json_array_get(json_object_get(m, "failed_batches"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "batch")), "b2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(f, "wells"), 0)), "C04");
    assert_int_equal(json_array_size(json_object_get(m, "batches")), 1);
    json_decref(m);
    assert_int_equal(merge(w, "{not json", 0), WORKER_BAD_INPUT);
    assert_non_null(strstr(w->e.msg, "failed batches: not a JSON array"));
}

static void test_write_error_leaves_nothing(void **state)
{
    struct world *w = *state;
    struct rlimit rl = { 4096, 4096 };
    char row[200];
    struct strbuf big = STRBUF_INIT;
    int i, status;
    pid_t pid;

    strbuf_adds(&big, "ImageNumber,A\n");
    memset(row, 'x', sizeof(row));
    for (i = 0; i < 2000; i++)
        strbuf_addf(&big, "1,%.*s\n", (int)sizeof(row), row);
    make_batch(w, "b1", 1, "Cells", big.buf, NULL);
    strbuf_release(&big);
    /* A file size limit makes the output's writes fail with EFBIG, as a full disk would. */
    pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        _exit(merge(w, NULL, 0) == WORKER_WRITE_FAILED && strstr(w->e.msg, "Cells.csv") ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_failed_cleanly(w, WORKER_WRITE_FAILED, WORKER_WRITE_FAILED, "");
}

/* A destination that cannot be created: the error names it, and nothing is left anywhere. */
static void test_unwritable_destination_leaves_nothing(void **state)
{
    struct world *w = *state;
    char file[128];

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n", NULL);
    snprintf(file, sizeof(file), "%s/afile", w->root);
    assert_int_equal(fileutil_write_atomic(file, "x", 1, &w->e), 0);
    /* The parent is a regular file: creating it fails. */
    snprintf(w->dest, sizeof(w->dest), "%s/afile/merged", w->root);
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_WRITE_FAILED, file);
    assert_non_null(strstr(w->e.msg, "Not a directory"));
    /* The parent exists but takes no new directory: the temporary directory fails. */
    snprintf(w->dest, sizeof(w->dest), "/proc/plateop-merged");
    assert_failed_cleanly(w, merge(w, NULL, 0), WORKER_WRITE_FAILED, "/proc");
}

/* Batch directories given one by one: one without a manifest is named. */
static void test_listed_batch_dir_without_manifest(void **state)
{
    struct world *w = *state;
    char b1[256], b2[256], want[600];
    char *dirs[] = { b1, b2 };
    struct merge_opts o = { 0 };

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n", NULL);
    snprintf(b1, sizeof(b1), "%s/b1", w->batches);
    snprintf(b2, sizeof(b2), "%s/elsewhere", w->root);
    assert_int_equal(mkdir(b2, 0755), 0);
    o.dirs = dirs;
    o.ndirs = 2;
    o.dest = w->dest;
    snprintf(want, sizeof(want), "batch dir %s: %s/manifest.json", b2, b2);
    assert_failed_cleanly(w, merge_batches(&o, &w->e), WORKER_BAD_INPUT, want);
}

static void test_summary_for_the_controller(void **state)
{
    struct world *w = *state;
    struct strbuf text = STRBUF_INIT, name = STRBUF_INIT;
    json_t *m, *failed, *s;
    int i;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,x\n", "Image", "ImageNumber\n1\n", NULL);
    assert_int_equal(merge(w, "[{\"batch\":\"b2\",\"wells\":[\"C04\"]}]", 0), WORKER_OK);
    m = manifest_read(w->dest, "merge", &w->e);
    assert_int_equal(merge_summary(m, 4095, &text), 0);
    assert_string_equal(text.buf, "{\"tables\":[{\"name\":\"Cells\",\"file\":\"Cells.csv\",\"rows\":1},"
                        "{\"name\":\"Image\",\"file\":\"Image.csv\",\"rows\":1}],"
                        "\"batches\":1,\"failedBatches\":[\"b2\"]}");

    /* Too many failed batch ids for 4096 bytes: ids go first, tables stay. */
    failed = json_object_get(m, "failed_batches");
    for (i = 0; i < 400; i++) {
        strbuf_reset(&name);
        strbuf_addf(&name, "analysis-with-a-long-name-batch-%03d", i);
        json_array_append_new(failed, json_pack("{s:s}", "batch", name.buf));
    }
    strbuf_reset(&text);
    assert_int_equal(merge_summary(m, 4095, &text), 0);
    assert_true(text.len <= 4095 && text.len > 3500);
    s = json_loads(text.buf, 0, NULL);
    assert_non_null(s);
    assert_int_equal(json_array_size(json_object_get(s, "tables")), 2);
    assert_int_equal(json_array_size(json_object_get(s, "failedBatches")) +
                     json_integer_value(json_object_get(s, "failedBatchesOmitted")), 401);
    assert_string_equal(json_string_value(json_array_get(json_object_get(s, "failedBatches"), 0)), "b2");
    json_decref(s);

    /* Then tables, from the end; and nothing when not even the bare object fits. */
    strbuf_reset(&text);
    assert_int_equal(merge_summary(m, 150, &text), 0);
    s = json_loads(text.buf, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(s, "tables")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "tablesOmitted")), 1);
    json_decref(s);
    strbuf_reset(&text);
    assert_int_equal(merge_summary(m, 20, &text), -1);
    json_decref(m);
    strbuf_release(&text);
    strbuf_release(&name);
}

static void test_rerun_replaces_an_older_result(void **state)
{
    struct world *w = *state;

    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,old\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    fileutil_rm_rf(w->batches, &w->e);
    mkdir(w->batches, 0755);
    make_batch(w, "b1", 1, "Cells", "ImageNumber,A\n1,new\n", NULL);
    assert_int_equal(merge(w, NULL, 0), WORKER_OK);
    assert_file(w, "Cells.csv", "ImageNumber,A,Metadata_Batch\n1,new,b1\n");
}

/* The two commands together, through the binary: three batches run, one fails, the rest merge. */
static void test_run_then_merge_end_to_end(void **state)
{
    const char *fail_env[] = { "PLATEOP_STANDIN_FAIL_WELLS=C04", NULL };
    const char *failed_arg = "--failed-batches=[{\"batch\":\"C04\",\"wells\":[\"C04\"]}]";
    struct wfix f;
    json_t *m, *t;
    size_t i;

    (void)state;
    assert_int_equal(wfix_setup(&f), 0);
    assert_int_equal(wfix_run_well(&f, "C03", fail_env, NULL), 0);
    assert_int_equal(wfix_run_well(&f, "C04", fail_env, NULL), WORKER_CP_FAILED);
    assert_int_equal(wfix_run_well(&f, "D01", fail_env, NULL), 0);
    {
        const char *args[] = { "merge", "--root", wfix_path(&f, "out"), "--output-dir",
                               wfix_path(&f, "merged"), failed_arg, NULL };

        assert_int_equal(wfix_worker(&f, NULL, args), 0);
    }
    m = manifest_read(wfix_path(&f, "merged"), "merge", &(struct err){ 0 });
    assert_non_null(m);
    json_array_foreach(json_object_get(m, "tables"), i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        long rows = (long)json_integer_value(json_object_get(t, "rows"));

        if (strcmp(name, "Image") == 0)
            assert_int_equal(rows, 4);
        else if (strcmp(name, "Cells") == 0)
            assert_int_equal(rows, 20);
    }
    assert_int_equal(json_array_size(json_object_get(m, "failed_batches")), 1);
    json_decref(m);
    /* The summary the controller reads from the termination message. */
    m = json_loads(wfix_termination(&f), 0, NULL);
    assert_non_null(m);
    assert_int_equal(json_integer_value(json_object_get(m, "batches")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "failedBatches"), 0)), "C04");
    json_array_foreach(json_object_get(m, "tables"), i, t)
        if (strcmp(json_string_value(json_object_get(t, "name")), "Cells") == 0)
            assert_int_equal(json_integer_value(json_object_get(t, "rows")), 20);
    assert_int_equal(json_array_size(json_object_get(m, "tables")), 5);
    json_decref(m);
    wfix_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reordered_columns_and_image_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_files_reach_the_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoting_crlf_and_empty_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fast_path_gives_way_to_the_parser, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_tables_stream_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_experiment_tables_are_kept_per_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_extra_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_batch_lacking_a_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_table_fails_naming_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row_count_and_image_number_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_without_manifest_and_failed_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_destination_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listed_batch_dir_without_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_for_the_controller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rerun_replaces_an_older_result, setup, teardown),
        cmocka_unit_test(test_run_then_merge_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
