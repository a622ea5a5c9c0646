/* Unit tests for the csv module: RFC 4180 parsing, errors, buffering, writing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"

/*
 * Reads one record, through csv_read_line() first when `lines` (as the
 * merge does), and appends it to out as "f1|f2|...\n". Returns 1, 0 or -1.
 */
static int read_one(struct csv_reader *r, int lines, struct strbuf *out, struct err *e)
{
    struct csv_record *rec;
    struct csv_line l;
    size_t i, commas = 0;
    int rc = lines ? csv_read_line(r, &l, e) : 2;

    if (rc == 1) {
        for (i = 0; i < l.len; i++) {
            commas += l.data[i] == ',';
            strbuf_addch(out, l.data[i] == ',' ? '|' : l.data[i]);
        }
        assert_int_equal(l.nfields, commas + 1);
    } else if (rc == 2 && (rc = csv_read(r, &rec, e)) == 1) {
        for (i = 0; i < rec->nfields; i++) {
            assert_int_equal(rec->fields[i].data[rec->fields[i].len], '\0');
            strbuf_addf(out, "%s%s", i ? "|" : "", rec->fields[i].data);
        }
    }
    if (rc == 1)
        strbuf_addch(out, '\n');
    return rc;
}

/* Reads all of text with a reader of the given buffer size; returns records
   as "f1|f2|...\n" lines, or the error message prefixed with "ERR ". */
static char *parse_all(const char *text, size_t len, unsigned flags, size_t bufsize, int lines)
{
    struct strbuf out = STRBUF_INIT;
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;
    int rc;

    err_clear(&e);
    r = csv_reader_mem(text, len, "t.csv", flags, &e);
    assert_non_null(r);
    if (bufsize)
        assert_int_equal(csv_reader_set_bufsize(r, bufsize, 1 << 20, &e), 0);
    while ((rc = read_one(r, lines, &out, &e)) == 1)
        ;
    if (rc < 0)
        strbuf_addf(&out, "ERR %s", e.msg);
    /* The end and errors repeat. */
    assert_int_equal(csv_read(r, &rec, &e), rc);
    csv_reader_free(r);
    return strbuf_detach(&out, NULL);
}

static void expect_parse(const char *text, unsigned flags, const char *want)
{
    static const size_t sizes[] = { 0, 64, 67, 131 };
    size_t k;
    int lines;

    /* Small buffers force records across refills and buffer growth; the fast
       path (lines) must read exactly what the parser reads. */
    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (lines = 0; lines <= 1; lines++) {
            char *got = parse_all(text, strlen(text), flags, sizes[k], lines);

            if (strcmp(got, want) != 0)
                fail_msg("bufsize %zu, lines %d: got [%s], want [%s]", sizes[k], lines, got, want);
            free(got);
        }
    }
}

static void test_plain_and_quoted(void **state)
{
    (void)state;
    expect_parse("a,b,c\n1,2,3\n", 0, "a|b|c\n1|2|3\n");
    expect_parse("a,b\n\"x,y\",\"say \"\"hi\"\"\"\n", 0, "a|b\nx,y|say \"hi\"\n");
    expect_parse("a,b\n\"line1\nline2\r\nline3\",z\n", 0, "a|b\nline1\nline2\r\nline3|z\n");
    expect_parse("a,b\r\n1,2\r\n\"\",\r\n", 0, "a|b\n1|2\n|\n");
    expect_parse("a,b\n1,2", 0, "a|b\n1|2\n");
    expect_parse("", 0, "");
    expect_parse("\xEF\xBB\xBFh1,h2\n", 0, "h1|h2\n");
    expect_parse("  spaced , x \n", 0, "  spaced | x \n");
}

static void test_line_numbers_follow_quoted_newlines(void **state)
{
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;

    (void)state;
    r = csv_reader_mem("h\n\"a\nb\nc\"\nlast\n", 15, "t.csv", 0, &e);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(rec->line, 1);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(rec->line, 2);
    assert_int_equal(rec->fields[0].quoted, 1);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(rec->line, 5);
    assert_int_equal(rec->index, 2);
    assert_string_equal(rec->fields[0].data, "last");
    assert_int_equal(rec->fields[0].quoted, 0);
    assert_int_equal(csv_read(r, &rec, &e), 0);
    assert_int_equal(csv_reader_bytes(r), 15);
    csv_reader_free(r);
}

static void expect_error(const char *text, unsigned flags, int code, const char *msg_part)
{
    struct strbuf out = STRBUF_INIT;
    struct csv_reader *r;
    struct err e;
    int rc, lines;

    /* The same error whether the fast path saw the record first or not. */
    for (lines = 0; lines <= 1; lines++) {
        err_clear(&e);
        r = csv_reader_mem(text, strlen(text), "batch/Cells.csv", flags, &e);
        while ((rc = read_one(r, lines, &out, &e)) == 1)
            ;
        csv_reader_free(r);
        assert_int_equal(rc, -1);
        assert_int_equal(e.code, code);
        if (!strstr(e.msg, msg_part))
            fail_msg("lines %d: error [%s] lacks [%s]", lines, e.msg, msg_part);
    }
    strbuf_release(&out);
}

static void test_broken_input_names_file_and_line(void **state)
{
    (void)state;
    expect_error("a,b\n1,\"open\n\n", 0, CSV_ERR_TRUNCATED,
                 "batch/Cells.csv:4: unterminated quoted field starting at line 2");
    expect_error("a,b\n1,x\"y\n", 0, CSV_ERR_SYNTAX, "batch/Cells.csv:2: quote inside unquoted field 2");
    expect_error("a,b\n\"x\"y,1\n", 0, CSV_ERR_SYNTAX, "batch/Cells.csv:2: unexpected character 'y'");
    expect_error("a,b\n1,2\r3,4\n", 0, CSV_ERR_SYNTAX, "batch/Cells.csv:2: carriage return");
    expect_error("a,b,c\n1,2,3\n4,5\n", 0, CSV_ERR_WIDTH, "batch/Cells.csv:3: 2 fields, expected 3");
    expect_error("a,b,c\n1,2,3\n4,5", 0, CSV_ERR_WIDTH, "(input truncated?)");
    expect_error("a,b\n1,2", CSV_REQUIRE_EOL, CSV_ERR_TRUNCATED,
                 "batch/Cells.csv:2: last record does not end with a line end");
}

static void test_flags_ragged_and_empty_lines(void **state)
{
    (void)state;
    expect_parse("a,b,c\n1\n\n2,3\n", CSV_RAGGED, "a|b|c\n1\n\n2|3\n");
    expect_parse("a,b\n\n1,2\r\n\r\n\n3,4\n\n", CSV_SKIP_EMPTY, "a|b\n1|2\n3|4\n");
    expect_parse("a,b\n1,2\n", CSV_REQUIRE_EOL, "a|b\n1|2\n");
}

static void test_read_line_takes_plain_records_only(void **state)
{
    const char *text = "h1,h2\n1,2\r\n\"q\nr\",3\n4,5\n7,8";
    struct csv_reader *r;
    struct csv_record *rec;
    struct csv_line l;
    struct strbuf big = STRBUF_INIT;
    struct err e;
    size_t i;

    (void)state;
    r = csv_reader_mem(text, strlen(text), "t.csv", 0, &e);
    assert_int_equal(csv_read_line(r, &l, &e), 2);     /* the header sets the width */
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(csv_read_line(r, &l, &e), 1);
    assert_int_equal(l.len, 3);                         /* CRLF left out */
    assert_memory_equal(l.data, "1,2", 3);
    assert_int_equal(l.nfields, 2);
    assert_int_equal(l.line, 2);
    assert_int_equal(csv_read_line(r, &l, &e), 2);     /* a quote: the parser's */
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_string_equal(rec->fields[0].data, "q\nr");
    assert_int_equal(rec->line, 3);
    assert_int_equal(csv_read_line(r, &l, &e), 1);
    assert_memory_equal(l.data, "4,5", 3);
    assert_int_equal(l.line, 5);                        /* after the quoted line end */
    assert_int_equal(csv_read_line(r, &l, &e), 2);     /* no line end: the parser decides */
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(rec->index, 4);
    assert_int_equal(csv_read_line(r, &l, &e), 2);     /* the end is the parser's too */
    assert_int_equal(csv_read(r, &rec, &e), 0);
    assert_int_equal(csv_read_line(r, &l, &e), 0);
    csv_reader_free(r);

    /* A record wider than the buffer and than 255 vector blocks of commas. */
    strbuf_adds(&big, "h\n");
    for (i = 0; i < 5000; i++)
        strbuf_adds(&big, i ? ",x" : "x");
    strbuf_adds(&big, "\n");
    r = csv_reader_mem(big.buf, big.len, "t.csv", CSV_RAGGED, &e);
    assert_int_equal(csv_reader_set_bufsize(r, 64, 1 << 20, &e), 0);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(csv_read_line(r, &l, &e), 1);
    assert_int_equal(l.nfields, 5000);
    assert_int_equal(l.len, 9999);
    assert_int_equal(csv_read_line(r, &l, &e), 2);
    assert_int_equal(csv_read(r, &rec, &e), 0);
    csv_reader_free(r);
    strbuf_release(&big);
}

static void test_record_limit(void **state)
{
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;
    char text[600];

    (void)state;
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    text[10] = '\n';
    r = csv_reader_mem(text, strlen(text), "big.csv", CSV_RAGGED, &e);
    assert_int_equal(csv_reader_set_bufsize(r, 64, 256, &e), 0);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(csv_read(r, &rec, &e), -1);
    assert_int_equal(e.code, CSV_ERR_TOO_LONG);
    assert_non_null(strstr(e.msg, "big.csv:2: record longer than 256 bytes"));
    csv_reader_free(r);
}

static void test_writer_quotes_only_when_needed(void **state)
{
    struct strbuf sb = STRBUF_INIT;
    struct csv_writer *w;
    struct err e;

    (void)state;
    w = csv_writer_strbuf(&sb, 0, &e);
    assert_non_null(w);
    assert_int_equal(csv_write_str(w, "plain", &e), 0);
    assert_int_equal(csv_write_str(w, "a,b", &e), 0);
    assert_int_equal(csv_write_str(w, "say \"hi\"", &e), 0);
    assert_int_equal(csv_write_str(w, "", &e), 0);
    assert_int_equal(csv_write_str(w, "two\nlines", &e), 0);
    assert_int_equal(csv_write_fmt(w, &e, "%d", 42), 0);
    assert_int_equal(csv_write_eol(w, &e), 0);
    assert_int_equal(csv_write_str(w, "/data/my plate/x.tif", &e), 0);
    assert_int_equal(csv_write_eol(w, &e), 0);
    assert_string_equal(sb.buf, "plain,\"a,b\",\"say \"\"hi\"\"\",,\"two\nlines\",42\n/data/my plate/x.tif\n");
    assert_int_equal(csv_writer_bytes(w), sb.len);
    assert_int_equal(csv_writer_close(w, &e), 0);
    strbuf_reset(&sb);

    w = csv_writer_strbuf(&sb, CSV_CRLF, &e);
    assert_int_equal(csv_write_str(w, "x\ry", &e), 0);
    assert_int_equal(csv_write_raw(w, "1", 1, &e), 0);
    assert_int_equal(csv_write_eol(w, &e), 0);
    assert_int_equal(csv_writer_close(w, &e), 0);
    assert_string_equal(sb.buf, "\"x\ry\",1\r\n");
    strbuf_release(&sb);
}

/* Fields that exercise every quoting rule, including bytes that are not text. */
static void make_field(char *buf, size_t cap, unsigned i, unsigned j)
{
    static const char *const pieces[] = { "a", ",", "\"", "\n", "\r\n", " ", "\xc3\xa9", "" };
    size_t len = 0;
    unsigned k, n = (i * 7 + j * 3) % 9;

    for (k = 0; k < n && len + 3 < cap; k++) {
        const char *p = pieces[(i + j + k * 5) % 8];

        memcpy(buf + len, p, strlen(p));
        len += strlen(p);
    }
    buf[len] = '\0';
}

static void test_roundtrip_through_fd_and_file(void **state)
{
    char path[] = "/tmp/plateop-test-csv-XXXXXX";
    struct csv_writer *w;
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;
    char field[64];
    unsigned i, j, rows = 3000, cols = 7;
    int fd, rc, pass;
    FILE *f;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    w = csv_writer_fd(fd, path, CSV_CRLF, &e);
    for (i = 0; i < rows; i++) {
        for (j = 0; j < cols; j++) {
            make_field(field, sizeof(field), i, j);
            assert_int_equal(csv_write_str(w, field, &e), 0);
        }
        assert_int_equal(csv_write_eol(w, &e), 0);
    }
    assert_int_equal(csv_writer_close(w, &e), 0);
    close(fd);

    for (pass = 0; pass < 2; pass++) {
        f = NULL;
        if (pass == 0) {
            r = csv_reader_open(path, CSV_REQUIRE_EOL, &e);
        } else {
            f = fopen(path, "r");
            r = csv_reader_file(f, path, CSV_REQUIRE_EOL, &e);
            assert_int_equal(csv_reader_set_bufsize(r, 100, 1 << 20, &e), 0);
        }
        assert_non_null(r);
        for (i = 0; (rc = csv_read(r, &rec, &e)) == 1; i++) {
            assert_int_equal(rec->nfields, cols);
            for (j = 0; j < cols; j++) {
                make_field(field, sizeof(field), i, j);
                assert_int_equal(rec->fields[j].len, strlen(field));
                assert_memory_equal(rec->fields[j].data, field, strlen(field));
            }
        }
        if (rc < 0)
            fail_msg("%s", e.msg);
        assert_int_equal(i, rows);
        csv_reader_free(r);
        if (f)
            fclose(f);
    }
    unlink(path);
}

static int count_tap(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)data;
    (void)e;
    *(size_t *)ctx += len;
    return 0;
}

static int failing_tap(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)ctx;
    (void)data;
    (void)len;
    return err_set(e, 99, "tap refused");
}

static void test_tap_sees_every_byte(void **state)
{
    const char *text = "a,b\n\"1\n\",2\n3,4\n";
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;
    size_t seen = 0;

    (void)state;
    r = csv_reader_mem(text, strlen(text), "t", 0, &e);
    csv_reader_set_tap(r, count_tap, &seen);
    assert_int_equal(csv_reader_set_bufsize(r, 64, 1024, &e), 0);
    while (csv_read(r, &rec, &e) == 1)
        ;
    assert_int_equal(seen, strlen(text));
    csv_reader_free(r);

    r = csv_reader_mem(text, strlen(text), "t", 0, &e);
    csv_reader_set_tap(r, failing_tap, NULL);
    assert_int_equal(csv_read(r, &rec, &e), -1);
    assert_string_equal(e.msg, "tap refused");
    csv_reader_free(r);
}

static void test_write_error_is_reported_and_sticky(void **state)
{
    struct csv_writer *w;
    struct err e;
    char big[4096];
    int fd, i, rc = 0;

    (void)state;
    fd = open("/dev/full", O_WRONLY);
    if (fd < 0)
        skip();
    memset(big, 'x', sizeof(big));
    w = csv_writer_fd(fd, "out.csv", 0, &e);
    /* The buffer absorbs the first megabyte; the error shows at the first flush. */
    for (i = 0; i < 1000 && rc == 0; i++)
        rc = csv_write_field(w, big, sizeof(big), &e);
    if (rc == 0)
        rc = csv_writer_flush(w, &e);
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, ENOSPC);
    assert_non_null(strstr(e.msg, "write out.csv"));
    err_clear(&e);
    assert_int_equal(csv_write_eol(w, &e), -1);
    assert_int_equal(e.code, ENOSPC);
    assert_int_equal(csv_writer_close(w, &e), -1);
    close(fd);
}

static void test_record_copy_keeps_quoting(void **state)
{
    const char *text = "a,\"b,c\",\"d\"\"\"\n";
    struct strbuf sb = STRBUF_INIT;
    struct csv_reader *r;
    struct csv_writer *w;
    struct csv_record *rec;
    struct err e;

    (void)state;
    r = csv_reader_mem(text, strlen(text), "t", 0, &e);
    w = csv_writer_strbuf(&sb, 0, &e);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(csv_write_record(w, rec, &e), 0);
    assert_int_equal(csv_write_eol(w, &e), 0);
    assert_int_equal(csv_writer_close(w, &e), 0);
    assert_string_equal(sb.buf, text);
    csv_reader_free(r);
    strbuf_release(&sb);
}

static void test_no_nul_keeps_spans_copyable(void **state)
{
    const char *text = "a,b,c,d\n1,22,\"x,\"\"y\",4\n";
    struct csv_reader *r;
    struct csv_record *rec;
    struct err e;

    (void)state;
    r = csv_reader_mem(text, strlen(text), "t", CSV_NO_NUL, &e);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    assert_int_equal(csv_read(r, &rec, &e), 1);
    /* Unquoted fields 0..1 as one span, delimiters intact. */
    assert_int_equal(rec->fields[1].data + rec->fields[1].len - rec->fields[0].data, 4);
    assert_memory_equal(rec->fields[0].data, "1,22", 4);
    assert_int_equal(rec->fields[2].len, 4);
    assert_memory_equal(rec->fields[2].data, "x,\"y", 4);
    assert_int_equal(rec->fields[2].quoted, 1);
    assert_memory_equal(rec->fields[3].data, "4", 1);
    csv_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_quoted),
        cmocka_unit_test(test_line_numbers_follow_quoted_newlines),
        cmocka_unit_test(test_broken_input_names_file_and_line),
        cmocka_unit_test(test_flags_ragged_and_empty_lines),
        cmocka_unit_test(test_read_line_takes_plain_records_only),
        cmocka_unit_test(test_record_limit),
        cmocka_unit_test(test_writer_quotes_only_when_needed),
        cmocka_unit_test(test_roundtrip_through_fd_and_file),
        cmocka_unit_test(test_tap_sees_every_byte),
        cmocka_unit_test(test_write_error_is_reported_and_sticky),
        cmocka_unit_test(test_record_copy_keeps_quoting),
        cmocka_unit_test(test_no_nul_keeps_spans_copyable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
