/*
 * Unit tests for objcache: put, get, replace and remove through table
 * growth; values with NULs; the label index following objects as their
 * label values change and emptying as they go (ASan's leak check proves
 * each emptied label value's node is freed); visitors that stop early.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objcache.h"

static int count_visits(const char *key, const char *rv, const void *value, size_t len, void *ud)
{
    (void)key;
    (void)rv;
    (void)value;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

static int stop_at_first(const char *key, const char *rv, const void *value, size_t len, void *ud)
{
    (void)key;
    (void)rv;
    (void)value;
    (void)len;
    (void)ud;
    return 7;
}

static int visits(const struct objcache *c, int label, const char *value)
{
    int n = 0;

    if (label < 0)
        assert_int_equal(objcache_each(c, count_visits, &n), 0);
    else
        assert_int_equal(objcache_each_label(c, label, value, count_visits, &n), 0);
    return n;
}

static void test_put_get_replace_remove(void **state)
{
    struct objcache *c = objcache_new(0);
    const char bytes[] = { 1, 0, 2, 0 };
    const char *rv;
    size_t len;
    char key[32], val[32];
    int i;

    (void)state;
    assert_non_null(c);
    assert_null(objcache_get(c, "ns/a", NULL, NULL));
    for (i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "ns/cm-%d", i);
        snprintf(val, sizeof(val), "v%d", i);
        assert_int_equal(objcache_put(c, key, i % 2 ? "17" : NULL, val, strlen(val) + 1, NULL), 0);
    }
    assert_int_equal(objcache_count(c), 5000);
    assert_string_equal(objcache_get(c, "ns/cm-4321", &rv, &len), "v4321");
    assert_string_equal(rv, "17");
    assert_int_equal(len, 6);
    assert_non_null(objcache_get(c, "ns/cm-4320", &rv, NULL));
    assert_string_equal(rv, "");
    assert_int_equal(objcache_put(c, "ns/cm-5", "18", bytes, sizeof(bytes), NULL), 0);
    assert_int_equal(objcache_count(c), 5000);
    assert_memory_equal(objcache_get(c, "ns/cm-5", &rv, &len), bytes, sizeof(bytes));
    assert_int_equal(len, sizeof(bytes));
    assert_string_equal(rv, "18");
    assert_int_equal(objcache_remove(c, "ns/cm-6"), 1);
    assert_int_equal(objcache_remove(c, "ns/cm-6"), 0);
    assert_null(objcache_get(c, "ns/cm-6", NULL, NULL));
    assert_int_equal(objcache_count(c), 4999);
    assert_int_equal(visits(c, -1, NULL), 4999);
    assert_int_equal(objcache_each(c, stop_at_first, NULL), 7);
    objcache_free(c);
    objcache_free(NULL);
    assert_null(objcache_new(OBJCACHE_MAX_LABELS + 1));
}

static void test_label_index_follows_objects(void **state)
{
    struct objcache *c = objcache_new(2);
    const char *a1[] = { "a1", "batch" }, *a2[] = { "a2", "batch" }, *none[] = { NULL, NULL };
    char key[32];
    int i;

    (void)state;
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "ns/o-%d", i);
        assert_int_equal(objcache_put(c, key, "1", "x", 1, i < 200 ? a1 : a2), 0);
    }
    assert_int_equal(visits(c, 0, "a1"), 200);
    assert_int_equal(visits(c, 0, "a2"), 100);
    assert_int_equal(visits(c, 1, "batch"), 300);
    assert_int_equal(visits(c, 0, "a3"), 0);
    assert_int_equal(visits(c, 2, "a1"), 0);   /* no such label */
    /* A new version with another label value moves; one without leaves the index. */
    assert_int_equal(objcache_put(c, "ns/o-0", "2", "y", 1, a2), 0);
    assert_int_equal(objcache_put(c, "ns/o-1", "2", "y", 1, none), 0);
    assert_int_equal(objcache_put(c, "ns/o-2", "2", "y", 1, NULL), 0);
    assert_int_equal(visits(c, 0, "a1"), 197);
    assert_int_equal(visits(c, 0, "a2"), 101);
    assert_int_equal(visits(c, 1, "batch"), 298);
    assert_int_equal(objcache_each_label(c, 0, "a2", stop_at_first, NULL), 7);
    /* Emptying a label value, then using it again. */
    for (i = 200; i < 300; i++) {
        snprintf(key, sizeof(key), "ns/o-%d", i);
        assert_int_equal(objcache_remove(c, key), 1);
    }
    assert_int_equal(visits(c, 0, "a2"), 1);
    assert_int_equal(objcache_remove(c, "ns/o-0"), 1);
    assert_int_equal(visits(c, 0, "a2"), 0);
    assert_int_equal(objcache_put(c, "ns/o-0", "3", "z", 1, a2), 0);
    assert_int_equal(visits(c, 0, "a2"), 1);
    /* Replacing an object that is the only one of its label value keeps the value. */
    assert_int_equal(objcache_put(c, "ns/o-0", "4", "w", 1, a2), 0);
    assert_int_equal(visits(c, 0, "a2"), 1);
    assert_int_equal(objcache_count(c), 200);
    objcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_remove),
        cmocka_unit_test(test_label_index_follows_objects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
