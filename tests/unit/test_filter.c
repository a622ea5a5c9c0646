/* Unit tests for filter: plate formats, well names, filters, and fuzzing of the parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"

#define P384 filter_plate_get(384)

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static int well(const char *name, int *row, int *col)
{
    struct err e;

    return filter_well_parse(name, strlen(name), NULL, row, col, &e);
}

static void test_plate_formats(void **state)
{
    (void)state;
    assert_int_equal(filter_plate_get(96)->rows, 8);
    assert_int_equal(filter_plate_get(96)->cols, 12);
    assert_int_equal(filter_plate_get(384)->rows, 16);
    assert_int_equal(filter_plate_get(384)->cols, 24);
    assert_int_equal(filter_plate_get(1536)->rows, 32);
    assert_int_equal(filter_plate_get(1536)->cols, 48);
    assert_null(filter_plate_get(48));
    assert_int_equal(filter_plate_fit(7, 11)->wells, 96);
    assert_int_equal(filter_plate_fit(8, 0)->wells, 384);
    assert_int_equal(filter_plate_fit(0, 24)->wells, 1536);
    assert_null(filter_plate_fit(32, 0));
}

static void test_well_spellings_normalise(void **state)
{
    const char *spellings[] = { "c3", "C3", "C03", "c03", "C003" };
    char name[FILTER_WELL_NAME_MAX];
    size_t i;
    int r, c;

    (void)state;
    for (i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        assert_int_equal(well(spellings[i], &r, &c), 0);
        assert_int_equal(r, 2);
        assert_int_equal(c, 2);
        filter_well_name(r, c, 0, name);
        assert_string_equal(name, "C03");
    }
    assert_int_equal(well("AF48", &r, &c), 0);
    assert_int_equal(r, 31);
    assert_int_equal(c, 47);
    filter_well_name(r, c, 1, name);
    assert_string_equal(name, "af48");
    assert_int_equal(well("aa1", &r, &c), 0);
    assert_int_equal(r, 26);
}

static void test_well_names_roundtrip_on_every_plate(void **state)
{
    int wells[] = { 96, 384, 1536 };
    char name[FILTER_WELL_NAME_MAX];
    size_t i;
    int r, c, r2, c2;
    struct err e;

    (void)state;
    for (i = 0; i < 3; i++) {
        const struct filter_plate *p = filter_plate_get(wells[i]);

        for (r = 0; r < p->rows; r++)
            for (c = 0; c < p->cols; c++) {
                assert_true(filter_well_name(r, c, i == 1, name) > 0);
                assert_int_equal(filter_well_parse(name, strlen(name), p, &r2, &c2, &e), 0);
                assert_int_equal(r2, r);
                assert_int_equal(c2, c);
            }
        /* one past the last row and the last column */
        filter_well_name(p->rows - 1, p->cols - 1, 0, name);
        assert_int_equal(filter_well_parse(name, strlen(name), p, &r2, &c2, &e), 0);
    }
    assert_int_equal(filter_well_name(32, 0, 0, name), 0);
    assert_string_equal(name, "");
}

static void test_bad_well_names(void **state)
{
    const char *bad[] = { "", "C", "3", "C-3", "C 3", "CC3x", "ABC1", "C0", "C00",
                          "Q01", "C25", "C3.0", "é3", "C12345" };
    size_t i;
    int r, c;
    struct err e;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&e);
        assert_int_equal(filter_well_parse(bad[i], strlen(bad[i]), P384, &r, &c, &e), -1);
        assert_int_equal(e.code, FILTER_ERR_SYNTAX);
        assert_true(e.msg[0] != '\0');
    }
    filter_well_parse("Q01", 3, P384, &r, &c, &e);
    assert_string_equal(e.msg, "row Q is outside a 384-well plate (rows A-P)");
    filter_well_parse("I01", 3, filter_plate_get(96), &r, &c, &e);
    assert_string_equal(e.msg, "row I is outside a 96-well plate (rows A-H)");
    filter_well_parse("C25", 3, P384, &r, &c, &e);
    assert_string_equal(e.msg, "column 25 is outside a 384-well plate (columns 1-24)");
    filter_well_parse("AG01", 4, NULL, &r, &c, &e);
    assert_string_equal(e.msg, "row AG is outside a 1536-well plate (rows A-AF)");
}

static void test_range_runs_row_major_across_rows(void **state)
{
    struct filter_wells f;
    struct err e;
    int r, c;
    size_t n = 0;

    (void)state;
    assert_int_equal(filter_wells_parse(&f, "C03,C04-E03", P384, &e), 0);
    assert_false(f.all);
    /* C03 + C04..C24 (21) + D01..D24 (24) + E01..E03 (3) */
    assert_int_equal(filter_wells_count(&f, P384), 1 + 21 + 24 + 3);
    assert_true(filter_wells_match(&f, 2, 2));     /* C03 */
    assert_true(filter_wells_match(&f, 2, 23));    /* C24 */
    assert_true(filter_wells_match(&f, 3, 0));     /* D01 */
    assert_true(filter_wells_match(&f, 4, 2));     /* E03 */
    assert_false(filter_wells_match(&f, 4, 3));    /* E04 */
    assert_false(filter_wells_match(&f, 2, 1));    /* C02 */
    assert_false(filter_wells_match(&f, 5, 0));    /* F01 */
    for (r = 0; r < 16; r++)
        for (c = 0; c < 24; c++)
            n += (size_t)filter_wells_match(&f, r, c);
    assert_int_equal(n, 49);

    /* The same text on a 96-well plate: C04..C12, D01..D12, E01..E03. */
    assert_int_equal(filter_wells_parse(&f, "c4 - e3", filter_plate_get(96), &e), 0);
    assert_int_equal(filter_wells_count(&f, filter_plate_get(96)), 9 + 12 + 3);
}

static void test_empty_filter_selects_everything(void **state)
{
    struct filter_wells f;
    struct filter_ints s;
    struct filter_dyes d;
    struct err e;

    (void)state;
    assert_int_equal(filter_wells_parse(&f, NULL, P384, &e), 0);
    assert_true(f.all);
    assert_int_equal(filter_wells_parse(&f, "  ", P384, &e), 0);
    assert_true(filter_wells_match(&f, 15, 23));
    assert_int_equal(filter_wells_count(&f, P384), 384);
    assert_int_equal(filter_ints_parse(&s, "site", "", &e), 0);
    assert_true(filter_ints_match(&s, 12345));
    filter_ints_release(&s);
    assert_int_equal(filter_dyes_parse(&d, NULL, &e), 0);
    assert_int_equal(d.n, 0);
    assert_true(filter_dyes_match(&d, "anything"));
    filter_dyes_release(&d);
}

static void test_well_filter_errors_name_token_and_position(void **state)
{
    struct filter_wells f;
    struct err e;

    (void)state;
    assert_int_equal(filter_wells_parse(&f, "C03,X99", P384, &e), -1);
    assert_int_equal(e.code, FILTER_ERR_SYNTAX);
    assert_string_equal(e.msg, "well filter \"C03,X99\": token \"X99\" at position 5: row X is "
                               "outside a 384-well plate (rows A-P)");
    assert_true(f.all);     /* a failed parse leaves no half-filter behind */

    assert_int_equal(filter_wells_parse(&f, "C03,,C04", P384, &e), -1);
    assert_string_equal(e.msg, "well filter \"C03,,C04\": empty token at position 5");
    assert_int_equal(e.code, FILTER_ERR_SYNTAX);

    assert_int_equal(filter_wells_parse(&f, "C03,", P384, &e), -1);
    assert_contains(e.msg, "empty token at position 5");

    assert_int_equal(filter_wells_parse(&f, "A01, E03-C04", P384, &e), -1);
    assert_contains(e.msg, "token \"E03-C04\" at position 6");
    assert_contains(e.msg, "range runs backwards");

    assert_int_equal(filter_wells_parse(&f, "A01-", P384, &e), -1);
    assert_contains(e.msg, "a range needs a well on each side");

    assert_int_equal(filter_wells_parse(&f, "A01-B02-C03", P384, &e), -1);
    assert_contains(e.msg, "token \"B02-C03\" at position 5");

    assert_int_equal(filter_wells_parse(&f, "A01-P25", P384, &e), -1);
    assert_contains(e.msg, "token \"P25\" at position 5: column 25");
}

static void test_sql_metacharacters_are_just_bad_tokens(void **state)
{
    struct filter_wells f;
    struct filter_ints s;
    struct filter_dyes d;
    const char *map[] = { "DAPI", "Mito" };
    const char *evil = "'; DROP TABLE images; --";
    struct err e;

    (void)state;
    assert_int_equal(filter_wells_parse(&f, evil, P384, &e), -1);
    /* the '-' of "--" makes it a range; its first half is the bad token */
    assert_contains(e.msg, "token \"'; DROP TABLE images;\" at position 1: not a well name");
    assert_int_equal(filter_ints_parse(&s, "site", evil, &e), -1);
    assert_contains(e.msg, "site filter");
    /* As a dye name it parses (dye names are free text) and matches no dye. */
    assert_int_equal(filter_dyes_parse(&d, evil, &e), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(filter_dyes_check(&d, map, 2, &e), -1);
    assert_string_equal(e.msg, "channel filter \"'; DROP TABLE images; --\": token \"'; DROP "
                               "TABLE images; --\" at position 1: dye '; DROP TABLE images; -- "
                               "is not in the channel map (it has DAPI, Mito)");
    filter_dyes_release(&d);
}

static void test_int_filters(void **state)
{
    struct filter_ints s;
    struct err e;
    int v;

    (void)state;
    assert_int_equal(filter_ints_parse(&s, "site", "1-4,7", &e), 0);
    for (v = 0; v < 10; v++)
        assert_int_equal(filter_ints_match(&s, v), (v >= 1 && v <= 4) || v == 7);
    filter_ints_release(&s);

    assert_int_equal(filter_ints_parse(&s, "z", "0, 2-4", &e), 0);
    for (v = 0; v < 6; v++)
        assert_int_equal(filter_ints_match(&s, v), v == 0 || (v >= 2 && v <= 4));
    filter_ints_release(&s);

    /* overlapping and adjacent ranges merge */
    assert_int_equal(filter_ints_parse(&s, "site", "5-9,1-4,3,10", &e), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ranges[0].lo, 1);
    assert_int_equal(s.ranges[0].hi, 10);
    filter_ints_release(&s);
}

static void test_int_filter_errors(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "1-", "site filter \"1-\": empty token at position 3: a range needs a number" },
        { "a", "token \"a\" at position 1: not a number or a range" },
        { "1,-1", "token \"-1\" at position 3: negative numbers are not allowed" },
        { "5-2", "token \"5-2\" at position 1: range runs backwards (5 > 2)" },
        { "99999999", "number too large (at most 1000000)" },
        { "1,,2", "empty token at position 3" },
        { "1 2", "token \"1 2\" at position 1: not a number" },
    };
    struct filter_ints s;
    struct err e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err_clear(&e);
        assert_int_equal(filter_ints_parse(&s, "site", cases[i].text, &e), -1);
        assert_int_equal(e.code, FILTER_ERR_SYNTAX);
        assert_contains(e.msg, cases[i].want);
        assert_true(s.all);
        assert_null(s.ranges);
    }
}

static void test_dye_filters(void **state)
{
    struct filter_dyes d;
    const char *map[] = { "HOECHST", "SYTO", "MITO" };
    struct err e;

    (void)state;
    assert_int_equal(filter_dyes_parse(&d, " MITO ,HOECHST,MITO", &e), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.names[0], "MITO");
    assert_string_equal(d.names[1], "HOECHST");
    assert_int_equal(filter_dyes_check(&d, map, 3, &e), 0);
    assert_true(filter_dyes_match(&d, "HOECHST"));
    assert_false(filter_dyes_match(&d, "SYTO"));
    filter_dyes_release(&d);

    assert_int_equal(filter_dyes_parse(&d, "MITO,PHALLOIDIN", &e), 0);
    assert_int_equal(filter_dyes_check(&d, map, 3, &e), -1);
    assert_contains(e.msg, "token \"PHALLOIDIN\" at position 6: dye PHALLOIDIN is not in the "
                           "channel map (it has HOECHST, SYTO, MITO)");
    filter_dyes_release(&d);

    assert_int_equal(filter_dyes_parse(&d, "MITO,", &e), -1);
    assert_contains(e.msg, "empty token at position 6");
    assert_int_equal(filter_dyes_parse(&d, "MI\nTO", &e), -1);
    assert_contains(e.msg, "control character");
}

static void test_filter_parse_all(void **state)
{
    struct filter f;
    struct err e;

    (void)state;
    assert_int_equal(filter_parse(&f, "C03", "1-4,7", "0", "DAPI", P384, &e), 0);
    assert_true(filter_wells_match(&f.wells, 2, 2));
    assert_true(filter_ints_match(&f.sites, 7));
    assert_false(filter_ints_match(&f.z, 1));
    assert_int_equal(f.dyes.n, 1);
    filter_release(&f);
    assert_int_equal(filter_parse(&f, "C03", "1-4,x", NULL, NULL, P384, &e), -1);
    assert_contains(e.msg, "site filter \"1-4,x\": token \"x\" at position 5");
    filter_release(&f);     /* harmless after a failure */
}

/* ---- fuzzing ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t pick(size_t n)
{
    return (size_t)(next_rand() % n);
}

/* Random strings over the filters' alphabet and its troublemakers never crash
 * a parser; every failure says where. */
static void test_fuzz_random_text(void **state)
{
    static const char alphabet[] = "ACPZacpz0123456789,-- \t'\";%\\\x01\xff\xc3\xa9";
    char text[64];
    struct filter_wells f;
    struct filter_ints s;
    struct filter_dyes d;
    struct err e;
    int i, ok = 0;
    size_t len, j;

    (void)state;
    for (i = 0; i < 200000; i++) {
        len = pick(sizeof(text) - 1);
        for (j = 0; j < len; j++)
            text[j] = alphabet[pick(sizeof(alphabet) - 1)];
        text[len] = '\0';
        err_clear(&e);
        if (filter_wells_parse(&f, text, i % 2 ? P384 : NULL, &e) == 0) {
            ok++;
        } else {
            assert_int_equal(e.code, FILTER_ERR_SYNTAX);
            assert_true(strstr(e.msg, "position ") != NULL);
        }
        if (filter_ints_parse(&s, "z", text, &e) == 0)
            filter_ints_release(&s);
        else
            assert_true(strstr(e.msg, "position ") != NULL);
        if (filter_dyes_parse(&d, text, &e) == 0)
            filter_dyes_release(&d);
        else
            assert_true(strstr(e.msg, "position ") != NULL);
    }
    assert_true(ok > 0);
}

/* Random well filters match exactly what the row-major rule says, on every plate. */
static void test_fuzz_ranges_against_model(void **state)
{
    int formats[] = { 96, 384, 1536 };
    char text[512], a[FILTER_WELL_NAME_MAX], b[FILTER_WELL_NAME_MAX];
    unsigned char want[1536];
    struct filter_wells f;
    struct err e;
    int i, k, ntok, r, c;
    size_t len;

    (void)state;
    for (i = 0; i < 3000; i++) {
        const struct filter_plate *p = filter_plate_get(formats[i % 3]);
        int nw = p->wells;

        memset(want, 0, sizeof(want));
        len = 0;
        ntok = 1 + (int)pick(6);
        for (k = 0; k < ntok; k++) {
            int x = (int)pick((size_t)nw), y = (int)pick((size_t)nw), lo, hi, w;

            lo = x < y ? x : y;
            hi = x < y ? y : x;
            filter_well_name(lo / p->cols, lo % p->cols, (int)pick(2), a);
            filter_well_name(hi / p->cols, hi % p->cols, (int)pick(2), b);
            if (pick(3) == 0) {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", k ? "," : "",
                                        a);
                want[lo] = 1;
            } else {
                len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s%s-%s",
                                        k ? "," : "", pick(2) ? " " : "", a, b);
                for (w = lo; w <= hi; w++)
                    want[w] = 1;
            }
        }
        assert_int_equal(filter_wells_parse(&f, text, p, &e), 0);
        for (r = 0; r < p->rows; r++)
            for (c = 0; c < p->cols; c++)
                if (filter_wells_match(&f, r, c) != want[r * p->cols + c])
                    fail_msg("%s on %d wells: well %d,%d", text, nw, r, c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plate_formats),
        cmocka_unit_test(test_well_spellings_normalise),
        cmocka_unit_test(test_well_names_roundtrip_on_every_plate),
        cmocka_unit_test(test_bad_well_names),
        cmocka_unit_test(test_range_runs_row_major_across_rows),
        cmocka_unit_test(test_empty_filter_selects_everything),
        cmocka_unit_test(test_well_filter_errors_name_token_and_position),
        cmocka_unit_test(test_sql_metacharacters_are_just_bad_tokens),
        cmocka_unit_test(test_int_filters),
        cmocka_unit_test(test_int_filter_errors),
        cmocka_unit_test(test_dye_filters),
        cmocka_unit_test(test_filter_parse_all),
        cmocka_unit_test(test_fuzz_random_text),
        cmocka_unit_test(test_fuzz_ranges_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
