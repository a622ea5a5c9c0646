/* Unit tests for strmap: put/get/replace/remove through growth, iteration, clear, inline values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "strmap.h"

static int sum_values(const char *key, void *value, void *ud)
{
    (void)key;
    *(long *)ud += (long)(intptr_t)value;
    return 0;
}

static int stop_at_first(const char *key, void *value, void *ud)
{
    (void)key;
    (void)value;
    (void)ud;
    return 9;
}

static void test_many_keys(void **state)
{
    struct strmap m = STRMAP_INIT;
    char key[32];
    void *old;
    long sum = 0;
    int i;

    (void)state;
    assert_null(strmap_get(&m, "absent"));
    assert_int_equal(strmap_remove(&m, "absent", NULL), 0);
    for (i = 1; i <= 5000; i++) {
        snprintf(key, sizeof(key), "ns/obj-%d", i);
        assert_int_equal(strmap_put(&m, key, (void *)(intptr_t)i, &old), 0);
        assert_null(old);
    }
    assert_int_equal(m.count, 5000);
    assert_int_equal((intptr_t)strmap_get(&m, "ns/obj-4321"), 4321);
    assert_int_equal(strmap_put(&m, "ns/obj-7", (void *)(intptr_t)70, &old), 0);
    assert_int_equal((intptr_t)old, 7);
    assert_int_equal(m.count, 5000);
    for (i = 1; i <= 5000; i += 2) {
        snprintf(key, sizeof(key), "ns/obj-%d", i);
        assert_int_equal(strmap_remove(&m, key, &old), 1);
    }
    assert_int_equal(m.count, 2500);
    assert_false(strmap_has(&m, "ns/obj-1"));
    assert_true(strmap_has(&m, "ns/obj-2"));
    assert_int_equal(strmap_put(&m, "null", NULL, NULL), 0);
    assert_true(strmap_has(&m, "null"));
    assert_int_equal(strmap_each(&m, sum_values, &sum), 0);
    assert_int_equal(sum, 2501L * 2500);
    assert_int_equal(strmap_each(&m, stop_at_first, NULL), 9);
    strmap_clear(&m, NULL);
    assert_int_equal(m.count, 0);
    assert_null(strmap_get(&m, "ns/obj-2"));
}

static void test_clear_frees_values(void **state)
{
    struct strmap m = STRMAP_INIT;

    (void)state;
    strmap_put(&m, "a", malloc(10), NULL);
    strmap_put(&m, "b", malloc(10), NULL);
    strmap_clear(&m, free);   /* ASan's leak check proves the frees */
    assert_int_equal(m.count, 0);
}

/* Inline string values: replaced in place of the entry, removed with it. */
static void test_inline_strings(void **state)
{
    struct strmap m = STRMAP_INIT;
    char key[32], val[32];
    int i;

    (void)state;
    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "ns/cm-%d", i);
        snprintf(val, sizeof(val), "%d", i * 7);
        assert_int_equal(strmap_put_str(&m, key, val), 0);
    }
    assert_int_equal(strmap_put_str(&m, "ns/cm-5", "a much longer replacement value"), 0);
    assert_int_equal(m.count, 3000);
    assert_string_equal(strmap_get(&m, "ns/cm-5"), "a much longer replacement value");
    assert_string_equal(strmap_get(&m, "ns/cm-2999"), "20993");
    assert_int_equal(strmap_put_str(&m, "ns/cm-5", ""), 0);
    assert_string_equal(strmap_get(&m, "ns/cm-5"), "");
    assert_int_equal(strmap_remove(&m, "ns/cm-6", NULL), 1);
    assert_null(strmap_get(&m, "ns/cm-6"));
    assert_int_equal(m.count, 2999);
    strmap_clear(&m, NULL);   /* ASan's leak check proves nothing is left behind */
}

/* Bytes with NULs in them are kept whole. */
static void test_inline_bytes(void **state)
{
    struct strmap m = STRMAP_INIT;
    const char data[] = { 'a', 0, 'b', 0, 0, 'c' };

    (void)state;
    assert_int_equal(strmap_put_bytes(&m, "k", data, sizeof(data)), 0);
    assert_memory_equal(strmap_get(&m, "k"), data, sizeof(data));
    assert_int_equal(strmap_put_bytes(&m, "k", "xy", 2), 0);
    assert_memory_equal(strmap_get(&m, "k"), "xy", 2);
    assert_int_equal(m.count, 1);
    strmap_clear(&m, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_clear_frees_values),
        cmocka_unit_test(test_inline_strings),
        cmocka_unit_test(test_inline_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
