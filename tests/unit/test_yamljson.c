/* Unit tests for yamljson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "yamljson.h"

static json_t *parse(const char *s, struct err *e)
{
    return yamljson_parse(s, strlen(s), "test.yaml", e);
}

static void test_scalars_follow_the_core_schema(void **state)
{
    struct err e;
    json_t *v;

    (void)state;
    v = parse("a: 1\nb: -2.5\nc: true\nd: ~\ne: \"7\"\nf: C03\ng: ''\nh:\n", &e);
    assert_non_null(v);
    assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
    assert_true(json_real_value(json_object_get(v, "b")) == -2.5);
    assert_true(json_is_true(json_object_get(v, "c")));
    assert_true(json_is_null(json_object_get(v, "d")));
    assert_string_equal(json_string_value(json_object_get(v, "e")), "7");
    assert_string_equal(json_string_value(json_object_get(v, "f")), "C03");
    assert_string_equal(json_string_value(json_object_get(v, "g")), "");
    assert_true(json_is_null(json_object_get(v, "h")));
    json_decref(v);
}

static void test_nesting_and_sequences(void **state)
{
    struct err e;
    json_t *v;

    (void)state;
    v = parse("volumes:\n  - name: images\n    readOnly: true\n  - {name: work}\nenv: {A: x}\n", &e);
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "volumes")), 2);
    assert_true(json_is_true(json_object_get(json_array_get(json_object_get(v, "volumes"), 0),
                                             "readOnly")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "env"), "A")), "x");
    json_decref(v);
}

static void test_errors_name_file_and_line(void **state)
{
    struct err e;

    (void)state;
    err_clear(&e);
    assert_null(parse("a: 1\nb: [unclosed\n", &e));
    assert_non_null(strstr(e.msg, "test.yaml: line "));
    err_clear(&e);
    assert_null(yamljson_load_file("/nonexistent/plateop.yaml", &e));
    assert_non_null(strstr(e.msg, "/nonexistent/plateop.yaml"));
}

static void test_empty_document_is_null(void **state)
{
    struct err e;
    json_t *v = parse("", &e);

    (void)state;
    assert_non_null(v);
    assert_true(json_is_null(v));
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_follow_the_core_schema),
        cmocka_unit_test(test_nesting_and_sequences),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_empty_document_is_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
