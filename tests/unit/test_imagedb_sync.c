/* Unit tests for imagedb_sync's pure parts: an ImageDB row as an Analysis, an Analysis as a row. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "../../controller/ctl.h"
#include "../../controller/imagedb_sync.h"

static json_t *images;

static int setup(void **state)
{
    (void)state;
    images = json_pack("{s:s,s:s}", "4.2.5", "plateop/worker:cp425", "4.2.6",
                       "plateop/worker:cp426");
    return images ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(images);
    return 0;
}

/* A row as the GUI inserts it: meta given as JSON text. */
static void row_init(struct idb_sub_analysis *r, const char *meta)
{
    memset(r, 0, sizeof(*r));
    r->sub_id = 12;
    r->analysis_id = 3;
    r->plate_acquisition_id = 7;
    r->meta = meta ? json_loads(meta, 0, NULL) : NULL;
    r->pipeline_name = strdup("CP features");
    assert_true(!meta || r->meta);
}

/* The Analysis of a row, or NULL with e. */
static json_t *build(struct idb_sub_analysis *r, const json_t *imgs, json_t *deps, struct err *e)
{
    struct idbsync_row in = { r, "gui", imgs, deps };

    err_clear(e);
    return idbsync_analysis_new(&in, e);
}

/* The string at a path of keys (NULL-terminated), or NULL. */
static const char *at(const json_t *o, ...)
{
    const char *k;
    va_list ap;

    va_start(ap, o);
    while ((k = va_arg(ap, const char *)) != NULL)
        o = json_object_get(o, k);
    va_end(ap);
    return json_string_value(o);
}

/* The Analysis's spec, as compact JSON with sorted keys, is want. */
static void expect_spec(const json_t *a, const char *want)
{
    char *s = json_dumps(json_object_get(a, "spec"), JSON_COMPACT | JSON_SORT_KEYS);

    assert_string_equal(s, want);
    free(s);
}

static void test_name(void **state)
{
    char name[64];

    (void)state;
    idbsync_name(3, 12, name, sizeof(name));
    assert_string_equal(name, "ia-3-12");
}

static void test_full_meta(void **state)
{
    struct idb_sub_analysis r;
    json_t *deps = json_pack("[s]", "ia-3-11"), *a;
    struct err e;

    (void)state;
    row_init(&r, "{\"type\":\"cellprofiler\",\"pipeline_file\":\"/share/p/features.cppipe\","
                 "\"batch_size\":9,\"channels\":[\"DNA\",\"ER\"],\"well_filter\":\"C03,C04-E03\","
                 "\"site_filter\":\"1-4\",\"z\":0,\"cp_version\":\"4.2.5\",\"job_timeout\":3600,"
                 "\"max_errors\":2,\"use_icf\":true,\"priority\":5}");
    a = build(&r, images, deps, &e);
    assert_non_null(a);
    assert_string_equal(at(a, "metadata", "name", NULL), "ia-3-12");
    assert_string_equal(at(a, "metadata", "namespace", NULL), "gui");
    assert_string_equal(at(a, "metadata", "labels", IDBSYNC_LABEL_ANALYSIS, NULL), "3");
    assert_string_equal(at(a, "metadata", "labels", IDBSYNC_LABEL_SUB, NULL), "12");
    assert_string_equal(at(a, "metadata", "annotations", IDBSYNC_ANN_PIPELINE, NULL),
                        "CP features");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(a, "metadata"), "finalizers"), 0)),
                        IDBSYNC_FINALIZER);
    expect_spec(a,
        "{\"batching\":{\"by\":\"site\",\"size\":9},\"dependsOn\":[\"ia-3-11\"],"
        "\"filters\":{\"channels\":[\"DNA\",\"ER\"],\"sites\":\"1-4\",\"wells\":\"C03,C04-E03\","
        "\"z\":\"0\"},\"image\":\"plateop/worker:cp425\",\"maxFailedBatches\":2,"
        "\"pipeline\":\"/share/p/features.cppipe\",\"plateAcquisition\":7,\"priority\":-5,"
        "\"timeoutSeconds\":3600,\"useIlluminationCorrection\":true}");
    json_decref(a);
    json_decref(deps);
    idb_sub_analysis_release(&r);
}

static void test_gui_spellings(void **state)
{
    struct idb_sub_analysis r;
    json_t *a;
    struct err e;

    (void)state;
    /* Numbers as text, lists of numbers, channels as one string, no cp_version. */
    row_init(&r, "{\"type\":\"cellprofiler\",\"pipeline_file\":\"p.cppipe\",\"batch_size\":\"0\","
                 "\"channels\":\" DNA, ER ,,RNA\",\"site_filter\":[1,2,5],\"z\":\"\","
                 "\"job_timeout\":\"600\",\"max_errors\":0.0,\"use_icf\":\"no\"}");
    r.priority = 3;
    a = build(&r, images, NULL, &e);
    assert_non_null(a);
    expect_spec(a,
        "{\"batching\":{\"by\":\"plate\"},\"filters\":{\"channels\":[\"DNA\",\"ER\",\"RNA\"],"
        "\"sites\":\"1,2,5\"},\"maxFailedBatches\":0,\"pipeline\":\"p.cppipe\","
        "\"plateAcquisition\":7,\"priority\":-3,\"timeoutSeconds\":600,"
        "\"useIlluminationCorrection\":false}");
    json_decref(a);
    idb_sub_analysis_release(&r);

    /* batch_size below zero is one job too; priority is clamped to the schema's range. */
    row_init(&r, "{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"batch_size\":-1,"
                 "\"priority\":-5000}");
    a = build(&r, images, NULL, &e);
    assert_non_null(a);
    assert_string_equal(at(a, "spec", "batching", "by", NULL), "plate");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "spec"), "priority")),
                     1000);
    json_decref(a);
    idb_sub_analysis_release(&r);
}

static void expect_refusal(const char *meta, const json_t *imgs, const char *want)
{
    struct idb_sub_analysis r;
    struct err e;

    row_init(&r, meta);
    assert_null(build(&r, imgs, NULL, &e));
    assert_int_equal(e.code, IDBSYNC_E_ROW);
    if (!strstr(e.msg, want))
        fail_msg("message '%s' does not contain '%s'", e.msg, want);
    idb_sub_analysis_release(&r);
}

static void test_refusals(void **state)
{
    json_t *none = json_object();

    (void)state;
    expect_refusal("{\"type\":\"python\",\"pipeline_file\":\"p\"}", images,
                   "type 'cellprofiler' only, not 'python'");
    expect_refusal("{\"pipeline_file\":\"p\"}", images, "not '(none)'");
    expect_refusal(NULL, images, "meta is missing");
    expect_refusal("{\"type\":\"cellprofiler\"}", images, "meta.pipeline_file: is missing");
    expect_refusal("{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"batch_size\":\"ten\"}",
                   images, "meta.batch_size: must be a whole number");
    expect_refusal("{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"use_icf\":\"maybe\"}",
                   images, "meta.use_icf: must be true or false");
    expect_refusal("{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"well_filter\":{}}",
                   images, "meta.well_filter: must be text");
    expect_refusal("{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"cp_version\":\"3.1.9\"}",
                   images, "CellProfiler 3.1.9 is not available here (versions: 4.2.5, 4.2.6)");
    /* With no images configured every version runs on the default image. */
    {
        struct idb_sub_analysis r;
        struct err e;
        json_t *a;

        row_init(&r, "{\"type\":\"cellprofiler\",\"pipeline_file\":\"p\",\"cp_version\":\"3.1.9\"}");
        a = build(&r, none, NULL, &e);
        assert_non_null(a);
        assert_null(json_object_get(json_object_get(a, "spec"), "image"));
        json_decref(a);
        idb_sub_analysis_release(&r);
    }
    json_decref(none);
}

static json_t *analysis(const char *status)
{
    json_t *a = json_pack("{s:{s:s}}", "metadata", "name", "ia-3-12");

    if (status)
        json_object_set_new(a, "status", json_loads(status, 0, NULL));
    return a;
}

static char *state_of(const char *status)
{
    json_t *a = analysis(status), *st = idbsync_row_state(a);
    char *s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);

    json_decref(a);
    json_decref(st);
    return s;
}

static void expect_state(const char *status, const char *want)
{
    char *s = state_of(status);

    assert_string_equal(s, want);
    free(s);
}

static void test_row_states(void **state)
{
    (void)state;
    expect_state(NULL, "{\"error\":false,\"finish\":false,\"start\":false,"
                       "\"status\":{\"state\":\"Pending\"}}");
    expect_state("{\"phase\":\"Blocked\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
                 "\"message\":\"plate acquisition 7 (P1) is still being imaged\"}]}",
                 "{\"error\":false,\"finish\":false,\"start\":false,\"status\":{\"message\":"
                 "\"plate acquisition 7 (P1) is still being imaged\",\"state\":\"Blocked\"}}");
    /* Planned, nothing started: not started yet. */
    expect_state("{\"phase\":\"Running\",\"batches\":{\"total\":40,\"pending\":40,\"running\":0,"
                 "\"succeeded\":0,\"failed\":0}}",
                 "{\"error\":false,\"finish\":false,\"start\":false,\"status\":{\"progress\":"
                 "\"0 / 40 batches done\",\"state\":\"Running\"}}");
    expect_state("{\"phase\":\"Running\",\"batches\":{\"total\":40,\"pending\":26,\"running\":2,"
                 "\"succeeded\":11,\"failed\":1}}",
                 "{\"error\":false,\"finish\":false,\"start\":true,\"status\":{\"progress\":"
                 "\"12 / 40 batches done (1 failed)\",\"state\":\"Running\"}}");
    expect_state("{\"phase\":\"Succeeded\",\"batches\":{\"total\":2,\"succeeded\":2},"
                 "\"results\":{\"path\":\"/work/gui/ia-3-12/results\",\"tables\":[{\"name\":"
                 "\"Image\",\"file\":\"Image.csv\",\"rows\":4},{\"name\":\"Cells\",\"file\":"
                 "\"Cells.csv\",\"rows\":20}]}}",
                 "{\"error\":false,\"finish\":true,\"result\":{\"file_list\":[\"Image.csv\","
                 "\"Cells.csv\"],\"job_folder\":\"/work/gui/ia-3-12/results\"},\"start\":true,"
                 "\"status\":{\"progress\":\"2 / 2 batches done\",\"state\":\"Succeeded\"}}");
    expect_state("{\"phase\":\"Failed\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\","
                 "\"message\":\"x\"},{\"type\":\"Failed\",\"status\":\"True\",\"reason\":"
                 "\"DependencyFailed\",\"message\":\"dependency ia-3-11 failed\"}]}",
                 "{\"error\":true,\"finish\":false,\"start\":false,\"status\":{\"error_message\":"
                 "\"dependency ia-3-11 failed\",\"state\":\"Failed\"}}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_full_meta),
        cmocka_unit_test(test_gui_spellings),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_row_states),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
