/*
 * Unit tests for the parts of idb that need no database: JSON helpers,
 * backoff, config errors, and that every statement of the ImageDB code
 * goes through PQexecParams.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idb.h"

static void test_status_and_result_objects(void **state)
{
    const char *files[] = { "Image.csv", "Cells.csv" };
    json_t *st, *res;
    char *s;

    (void)state;
    st = idb_status_new("running", "12 / 40 batches done", NULL);
    s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"progress\":\"12 / 40 batches done\",\"state\":\"running\"}");
    free(s);
    json_decref(st);
    st = idb_status_new("failed", NULL, "batch c03: \"timeout\"");
    assert_string_equal(json_string_value(json_object_get(st, "error_message")),
                        "batch c03: \"timeout\"");
    json_decref(st);

    res = idb_result_new("/out/x", files, 2);
    s = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"file_list\":[\"Image.csv\",\"Cells.csv\"],\"job_folder\":\"/out/x\"}");
    free(s);
    json_decref(res);
    res = idb_result_new(NULL, NULL, 0);
    s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"file_list\":[]}");
    free(s);
    json_decref(res);
}

static void test_jitter_stays_within_a_quarter(void **state)
{
    int i, v, lo = 1 << 30, hi = 0;

    (void)state;
    assert_int_equal(idb_jitter_ms(0), 0);
    for (i = 0; i < 10000; i++) {
        v = idb_jitter_ms(400);
        assert_true(v >= 300 && v <= 500);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* it does spread */
    assert_true(lo < 320);
    assert_true(hi > 480);
}

static void test_unreadable_password_file_is_a_config_error(void **state)
{
    struct idb_config cfg = { .conninfo = "host=127.0.0.1 port=1",
                              .password_file = "/nonexistent/secret/password" };
    struct err e;

    (void)state;
    assert_null(idb_open(&cfg, &e));
    assert_int_equal(e.code, IDB_ERR_CONFIG);
    assert_string_equal(e.msg, "read ImageDB password file /nonexistent/secret/password: No such "
                               "file or directory");
}

/*
 * PQexec() sends text through the simple query protocol, where a parameter
 * cannot be and several statements can: the code that talks to ImageDB and
 * its tests use PQexecParams() (or PQsendQueryParams()) only. Files are found
 * under PLATEOP_ROOT (tests/run.sh sets it), else ".".
 */
static void test_no_plain_pqexec(void **state)
{
    static const char *const files[] = {
        "lib/idb.c", "lib/idb_notify.c", "lib/acqplan.c", "controller/imagedb_sync.c",
        "controller/httpd.c", "tests/common/idbfix.c", "tests/integration/test_idb.c",
        "tests/integration/test_idb_notify.c", "tests/integration/test_httpd.c",
    };
    static const char *const plain[] = { "PQexec(", "PQsendQuery(", "PQexec (" };
    const char *root = getenv("PLATEOP_ROOT");
    char path[4096], line[4096];
    size_t i, j;
    int lineno, bad = 0;
    FILE *f;

    (void)state;
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", root && *root ? root : ".", files[i]);
        f = fopen(path, "r");
        if (!f)
            fail_msg("cannot read %s", path);
        for (lineno = 1; fgets(line, sizeof(line), f); lineno++)
            for (j = 0; j < sizeof(plain) / sizeof(plain[0]); j++)
                if (strstr(line, plain[j])) {
                    printf("# %s:%d: %s", files[i], lineno, line);
                    bad++;
                }
        fclose(f);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_result_objects),
        cmocka_unit_test(test_jitter_stays_within_a_quarter),
        cmocka_unit_test(test_unreadable_password_file_is_a_config_error),
        cmocka_unit_test(test_no_plain_pqexec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
