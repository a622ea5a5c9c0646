/*
 * Unit tests for the Prometheus text parser the tests use (tests/common/
 * promtext), and, when given arguments, that parser as a shell tool:
 *
 *   test_promtext check [FILE]          validate; print every sample as
 *                                       "series value", labels sorted
 *   test_promtext value SERIES [FILE]   print one series' value (exit 1 if absent)
 *   test_promtext sum NAME [FILE]       print the sum over every series of NAME
 *
 * FILE defaults to standard input; invalid text exits 2 with the reason on
 * stderr. E.g. curl -s localhost:8080/metrics | test_promtext value
 * 'plateop_analyses{phase="Succeeded"}'.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "promtext.h"
#include "strbuf.h"

static const char good[] =
    "# A comment that is not HELP or TYPE.\n"
    "# HELP req_total Requests, by \"verb\"\\nand code \\\\ all.\n"
    "# TYPE req_total counter\n"
    "req_total{verb=\"GET\",code=\"200\"} 3\n"
    "req_total{code=\"500\", verb=\"PUT\",} 1 1700000000000\n"
    "\n"
    "# TYPE temp gauge\n"
    "temp{where=\"a \\\"quoted\\\" \\\\ path\\nnext\"} -1.5e3\n"
    "temp{where=\"b\"} NaN\n"
    "temp{where=\"c\"} +Inf\n"
    "untyped_thing 42\n"
    "# TYPE lat histogram\n"
    "lat_bucket{op=\"x\",le=\"0.1\"} 1\n"
    "lat_bucket{op=\"x\",le=\"1\"} 3\n"
    "lat_bucket{op=\"x\",le=\"+Inf\"} 4\n"
    "lat_sum{op=\"x\"} 7.25\n"
    "lat_count{op=\"x\"} 4\n";

static void test_parses_every_feature(void **state)
{
    struct promtext p;
    struct err e;
    double v = 0;

    (void)state;
    assert_int_equal(promtext_parse(good, strlen(good), &p, &e), 0);
    assert_int_equal(p.nsamples, 11);
    assert_int_equal(promtext_value(&p, "req_total{verb=\"GET\",code=\"200\"}", &v), 0);
    assert_true(v == 3);
    /* Label order and blanks in the query do not matter. */
    assert_int_equal(promtext_value(&p, "req_total{ verb=\"PUT\", code=\"500\" }", &v), 0);
    assert_true(v == 1);
    assert_int_equal(promtext_value(&p, "temp{where=\"a \\\"quoted\\\" \\\\ path\\nnext\"}", &v),
                     0);
    assert_true(v == -1500);
    assert_int_equal(promtext_value(&p, "untyped_thing", &v), 0);
    assert_true(v == 42);
    assert_int_equal(promtext_value(&p, "lat_bucket{le=\"1\",op=\"x\"}", &v), 0);
    assert_true(v == 3);
    assert_int_equal(promtext_value(&p, "req_total{verb=\"GET\"}", &v), -1);
    assert_int_equal(promtext_value(&p, "req_total{verb=", &v), -1);
    assert_true(promtext_get(&p, "untyped_thing") == 42);
    assert_true(isnan(promtext_get(&p, "untyped_thing{x=\"1\"}")));
    assert_true(promtext_sum(&p, "req_total") == 4);
    assert_true(promtext_sum(&p, "absent") == 0);
    assert_string_equal(promtext_family(&p, "req_total")->type, "counter");
    assert_string_equal(promtext_family(&p, "req_total")->help,
                        "Requests, by \"verb\"\nand code \\ all.");
    assert_string_equal(promtext_family(&p, "lat")->type, "histogram");
    assert_string_equal(promtext_family(&p, "untyped_thing")->type, "untyped");
    assert_null(promtext_family(&p, "lat_bucket"));
    promtext_release(&p);
}

static void test_refuses_what_scrapers_refuse(void **state)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        { "a 1", "newline" },
        { "a{x=\"\\t\"} 1\n", "invalid escape" },
        { "a{x=\"open} 1\n", "unterminated" },
        { "a{x=y} 1\n", "quoted" },
        { "a{x=\"1\",x=\"2\"} 1\n", "label x twice" },
        { "a{x=\"1\" y=\"2\"} 1\n", "',' or '}'" },
        { "a 1\n# TYPE a gauge\n", "after its samples" },
        { "# TYPE a gauge\n# TYPE a gauge\n", "second TYPE" },
        { "# HELP a x\n# HELP a y\n", "second HELP" },
        { "# TYPE a meter\n", "unknown type" },
        { "a 1\nb 1\na{x=\"1\"} 2\n", "not contiguous" },
        { "a{x=\"1\"} 1\na{x=\"1\"} 2\n", "repeated" },
        { "# TYPE c counter\nc -1\n", "negative" },
        { "a 1,5\n", "invalid value" },
        { "a 0x10\n", "invalid value" },
        { "a\n", "invalid value" },
        { "1a 1\n", "invalid metric name" },
        { "a 1 2 3\n", "unexpected text" },
        { "a 1 1.5\n", "invalid timestamp" },
        { "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf" },
        { "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n", "differs" },
        { "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n"
          "h_count 1\n", "out of order" },
        { "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "_sum" },
        { "# TYPE h histogram\nh_bucket 1\n", "numeric le" },
        { "# TYPE h histogram\nh 1\n", "without _bucket" },
    };
    struct promtext p;
    struct err e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&e);
        if (promtext_parse(bad[i].text, strlen(bad[i].text), &p, &e) == 0)
            fail_msg("accepted: %s", bad[i].text);
        if (!strstr(e.msg, bad[i].why))
            fail_msg("for %s: \"%s\" does not mention \"%s\"", bad[i].text, e.msg, bad[i].why);
        assert_int_equal(p.nsamples, 0);
    }
}

static void test_empty_text_is_valid(void **state)
{
    struct promtext p;
    struct err e;

    (void)state;
    assert_int_equal(promtext_parse("", 0, &p, &e), 0);
    assert_int_equal(p.nsamples, 0);
    promtext_release(&p);
}

/* ---- the shell tool ---------------------------------------------------- */

static int read_all(const char *path, struct strbuf *sb)
{
    FILE *f = path && strcmp(path, "-") != 0 ? fopen(path, "r") : stdin;
    char buf[65536];
    size_t n;
    int rc = 0;

    if (!f) {
        perror(path);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        if (strbuf_add(sb, buf, n) < 0)
            rc = -1;
    if (ferror(f))
        rc = -1;
    if (f != stdin)
        fclose(f);
    return rc;
}

static void print_number(double v)
{
    struct strbuf sb = STRBUF_INIT;

    metrics_add_number(&sb, v);
    printf("%s\n", sb.buf);
    strbuf_release(&sb);
}

static int tool(int argc, char **argv)
{
    int is_check = strcmp(argv[1], "check") == 0;
    struct strbuf text = STRBUF_INIT;
    struct promtext p = { 0 };
    struct err e;
    double v;
    size_t i;
    int rc = 2;

    if ((!is_check && strcmp(argv[1], "value") != 0 && strcmp(argv[1], "sum") != 0)
        || argc > (is_check ? 3 : 4) || (!is_check && argc < 3)) {
        fprintf(stderr, "usage: %s check [FILE] | value SERIES [FILE] | sum NAME [FILE]\n",
                argv[0]);
        goto out;
    }
    if (read_all(argv[is_check ? 2 : 3], &text) < 0)
        goto out;
    if (promtext_parse(text.buf, text.len, &p, &e) < 0) {
        fprintf(stderr, "invalid Prometheus text: %s\n", e.msg);
        goto out;
    }
    rc = 0;
    if (is_check) {
        for (i = 0; i < p.nsamples; i++) {
            printf("%s ", p.samples[i].series);
            print_number(p.samples[i].value);
        }
    } else if (strcmp(argv[1], "sum") == 0) {
        print_number(promtext_sum(&p, argv[2]));
    } else if (promtext_value(&p, argv[2], &v) == 0) {
        print_number(v);
    } else {
        fprintf(stderr, "no series %s\n", argv[2]);
        rc = 1;
    }
out:
    promtext_release(&p);
    strbuf_release(&text);
    return rc;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_every_feature),
        cmocka_unit_test(test_refuses_what_scrapers_refuse),
        cmocka_unit_test(test_empty_text_is_valid),
    };

    if (argc > 1)
        return tool(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
