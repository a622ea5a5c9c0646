/* Unit tests for quantity. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "quantity.h"

static unsigned long long q(const char *s)
{
    unsigned long long b = 0;

    assert_int_equal(quantity_parse(s, &b), 0);
    return b;
}

static void test_parse(void **state)
{
    unsigned long long b;

    (void)state;
    assert_true(q("512Mi") == 512ULL << 20);
    assert_true(q("1.5Gi") == 3ULL << 29);
    assert_true(q("2G") == 2000000000ULL);
    assert_true(q("129e6") == 129000000ULL);
    assert_true(q("1048576") == 1048576ULL);
    assert_true(q("100k") == 100000ULL);
    assert_int_equal(quantity_parse("", &b), -1);
    assert_int_equal(quantity_parse("-1Gi", &b), -1);
    assert_int_equal(quantity_parse("12Q", &b), -1);
    assert_int_equal(quantity_parse("Gi", &b), -1);
    assert_int_equal(quantity_parse("99999999Ei", &b), -1);
}

static void test_format(void **state)
{
    char out[32];

    (void)state;
    quantity_format(2ULL << 30, out, sizeof(out));
    assert_string_equal(out, "2Gi");
    quantity_format(768ULL << 20, out, sizeof(out));
    assert_string_equal(out, "768Mi");
    quantity_format(1000000000ULL, out, sizeof(out));
    assert_string_equal(out, "954Mi");
    quantity_format(3ULL << 10, out, sizeof(out));
    assert_string_equal(out, "3Ki");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
