/* Unit tests for err, strbuf and log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "strbuf.h"

static void test_err_prefix_keeps_code(void **state)
{
    struct err e;

    (void)state;
    err_clear(&e);
    assert_false(err_isset(&e));
    assert_int_equal(err_set(&e, 7, "connection %s", "refused"), -1);
    err_prefix(&e, "read images of acquisition %d", 42);
    assert_int_equal(e.code, 7);
    assert_string_equal(e.msg, "read images of acquisition 42: connection refused");
    assert_true(err_isset(&e));
    assert_int_equal(err_set(NULL, 1, "x"), -1);
}

static void test_err_truncates_long_context(void **state)
{
    struct err e;
    char big[3000];

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    err_set(&e, 1, "tail");
    err_prefix(&e, "%s", big);
    assert_int_equal(strlen(e.msg), ERR_MSG_MAX - 1);
}

static void test_strbuf_grows_and_formats(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    char *s;
    size_t len;
    int i;

    (void)state;
    assert_string_equal(sb.buf, "");
    for (i = 0; i < 1000; i++)
        assert_int_equal(strbuf_addf(&sb, "%d,", i), 0);
    assert_int_equal(strncmp(sb.buf, "0,1,2,", 6), 0);
    assert_int_equal(sb.buf[sb.len], '\0');
    strbuf_setlen(&sb, 2);
    assert_string_equal(sb.buf, "0,");
    s = strbuf_detach(&sb, &len);
    assert_int_equal(len, 2);
    assert_string_equal(s, "0,");
    assert_int_equal(sb.len, 0);
    free(s);
    strbuf_release(&sb);
}

static void test_strbuf_json_string_roundtrips(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    const char *nasty = "a\"b\\c\nd\te\x01 f/é";
    json_error_t jerr;
    json_t *v;

    (void)state;
    assert_int_equal(strbuf_add_json_string(&sb, nasty), 0);
    v = json_loads(sb.buf, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), nasty);
    json_decref(v);
    strbuf_release(&sb);
}

static void test_log_line_is_one_json_object(void **state)
{
    int fds[2];
    char buf[4096];
    ssize_t n;
    json_t *line, *fields;
    json_error_t jerr;
    struct log_ctx ctx = { "lab/plate-7", "b0003", "C03" };

    (void)state;
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    log_set_component("test");
    fields = json_pack("{s:i}", "code", 409);
    log_emit(LOG_LEVEL_WARN, &ctx, fields, "create %s: \"%s\"", "job", "exists");
    log_debug(&ctx, "dropped below the default level");
    json_decref(fields);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    log_set_fd(2);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strchr(buf, '\n'));
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
    line = json_loads(buf, 0, &jerr);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "create job: \"exists\"");
    assert_string_equal(json_string_value(json_object_get(line, "analysis")), "lab/plate-7");
    assert_string_equal(json_string_value(json_object_get(line, "batch")), "b0003");
    assert_string_equal(json_string_value(json_object_get(line, "well")), "C03");
    assert_int_equal(json_integer_value(json_object_get(line, "code")), 409);
    assert_non_null(json_object_get(line, "ts"));
    json_decref(line);
}

static void test_log_parse_level(void **state)
{
    enum log_level l;

    (void)state;
    assert_int_equal(log_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, LOG_LEVEL_DEBUG);
    assert_int_equal(log_parse_level("warning", &l), 0);
    assert_int_equal(l, LOG_LEVEL_WARN);
    assert_int_equal(log_parse_level("loud", &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_prefix_keeps_code),
        cmocka_unit_test(test_err_truncates_long_context),
        cmocka_unit_test(test_strbuf_grows_and_formats),
        cmocka_unit_test(test_strbuf_json_string_roundtrips),
        cmocka_unit_test(test_log_line_is_one_json_object),
        cmocka_unit_test(test_log_parse_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
