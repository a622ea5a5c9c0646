/*
 * Unit tests for the node agent's podlog module: CRI-format records written
 * with timestamps, read back with tailLines, timestamps, limitBytes and
 * since, long lines split and joined, a follower seeing only whole records.
 */
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

#include "../../hack/nodeagent/podlog.h"

struct fixture {
    char dir[64];
    char path[96];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/na-podlog.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/0.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct timespec at(long sec)
{
    struct timespec ts = { 1700000000 + sec, 123456789 };

    return ts;
}

/* Writes "one\n" (stdout, t0), "two\n" (stderr, t1), "three\n" and "tail" (t2). */
static void write_sample(const char *path)
{
    struct podlog_writer w;
    struct timespec t0 = at(0), t1 = at(1), t2 = at(2);
    struct err e;

    assert_int_equal(podlog_writer_open(&w, path, &e), 0);
    assert_int_equal(podlog_write(&w, PODLOG_STDOUT, "one\nthr", 7, &t0, &e), 0);
    assert_int_equal(podlog_write(&w, PODLOG_STDERR, "two\n", 4, &t1, &e), 0);
    assert_int_equal(podlog_write(&w, PODLOG_STDOUT, "ee\ntail", 7, &t2, &e), 0);
    podlog_writer_close(&w);
}

/* Reads the whole log with opts; returns a malloc'd string. */
static char *read_with(const char *path, const struct podlog_opts *o)
{
    struct podlog_reader r;
    struct strbuf out = STRBUF_INIT;
    struct err e;

    assert_int_equal(podlog_reader_open(&r, path, o, &e), 0);
    assert_true(podlog_read(&r, &out, 0, &e) >= 0);
    podlog_reader_close(&r);
    return strbuf_detach(&out, NULL);
}

static void check_read(const char *path, const struct podlog_opts *o, const char *want)
{
    char *got = read_with(path, o);

    assert_string_equal(got, want);
    free(got);
}

static void test_records_are_cri_lines(void **state)
{
    struct fixture *f = *state;
    struct strbuf sb = STRBUF_INIT;
    FILE *fp;
    char line[256];

    write_sample(f->path);
    fp = fopen(f->path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        strbuf_adds(&sb, line);
    fclose(fp);
    /* The stream's text waiting at close is flushed as a P record stamped "now". */
    assert_non_null(strstr(sb.buf, "2023-11-14T22:13:20.123456789Z stdout F one\n"
                                   "2023-11-14T22:13:21.123456789Z stderr F two\n"
                                   "2023-11-14T22:13:22.123456789Z stdout F three\n"));
    assert_non_null(strstr(sb.buf, " stdout P tail\n"));
    strbuf_release(&sb);
}

static void test_read_all_and_tail(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;

    write_sample(f->path);
    check_read(f->path, &o, "one\ntwo\nthree\ntail");
    o.tail_lines = 0;
    check_read(f->path, &o, "");
    o.tail_lines = 1;
    check_read(f->path, &o, "tail");
    o.tail_lines = 2;
    check_read(f->path, &o, "three\ntail");
    o.tail_lines = 100;
    check_read(f->path, &o, "one\ntwo\nthree\ntail");
}

static void test_timestamps_prefix_each_line(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;
    char *got;

    write_sample(f->path);
    o.timestamps = 1;
    o.tail_lines = 3;
    got = read_with(f->path, &o);
    assert_memory_equal(got, "2023-11-14T22:13:21.123456789Z two\n"
                             "2023-11-14T22:13:22.123456789Z three\n",
                        strlen("2023-11-14T22:13:21.123456789Z two\n"
                               "2023-11-14T22:13:22.123456789Z three\n"));
    assert_non_null(strstr(got, "Z tail"));
    free(got);
}

static void test_limit_bytes_cuts_and_stops(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;
    struct podlog_reader r;
    struct strbuf out = STRBUF_INIT;
    struct err e;

    write_sample(f->path);
    o.limit_bytes = 6;
    assert_int_equal(podlog_reader_open(&r, f->path, &o, &e), 0);
    assert_int_equal(podlog_read(&r, &out, 0, &e), 6);
    assert_string_equal(out.buf, "one\ntw");
    assert_true(r.done);
    assert_int_equal(podlog_read(&r, &out, 0, &e), 0);
    podlog_reader_close(&r);
    strbuf_release(&out);
}

static void test_since_skips_older_lines(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;

    write_sample(f->path);
    o.since = at(1);
    check_read(f->path, &o, "two\nthree\ntail");
}

static void test_long_line_is_split_and_joined(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;
    size_t n = 3 * PODLOG_MAX_RECORD + 10;
    char *line = malloc(n + 1), *got;
    struct podlog_writer w;
    struct timespec t = at(0);
    struct err e;

    memset(line, 'x', n);
    line[n] = '\n';
    assert_int_equal(podlog_writer_open(&w, f->path, &e), 0);
    assert_int_equal(podlog_write(&w, PODLOG_STDOUT, line, n + 1, &t, &e), 0);
    assert_int_equal(podlog_write(&w, PODLOG_STDOUT, "after\n", 6, &t, &e), 0);
    podlog_writer_close(&w);
    o.tail_lines = 2;
    o.timestamps = 1;
    got = read_with(f->path, &o);
    /* One timestamp per logical line, however many records it took. */
    assert_int_equal(strlen(got), 2 * 31 + n + 1 + 6);
    assert_int_equal(got[31 + n], '\n');
    assert_string_equal(got + 31 + n + 1 + 31, "after\n");
    free(got);
    free(line);
}

static void test_follower_sees_only_whole_records(void **state)
{
    struct fixture *f = *state;
    struct podlog_opts o = PODLOG_OPTS_INIT;
    struct podlog_reader r;
    struct strbuf out = STRBUF_INIT;
    struct err e;
    const char *half = "2023-11-14T22:13:20.000000000Z stdout F hal";
    int fd;

    write_sample(f->path);
    o.tail_lines = 0;
    assert_int_equal(podlog_reader_open(&r, f->path, &o, &e), 0);
    assert_int_equal(podlog_read(&r, &out, 0, &e), 0);
    fd = open(f->path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, half, strlen(half)), (ssize_t)strlen(half));
    assert_int_equal(podlog_read(&r, &out, 0, &e), 0);
    assert_int_equal(write(fd, "f\nnot a record\n", 15), 15);
    close(fd);
    assert_int_equal(podlog_read(&r, &out, 0, &e), 5);
    assert_string_equal(out.buf, "half\n");
    podlog_reader_close(&r);
    strbuf_release(&out);
}

static void test_missing_log_is_enoent(void **state)
{
    struct podlog_opts o = PODLOG_OPTS_INIT;
    struct podlog_reader r;
    struct err e;

    (void)state;
    assert_int_equal(podlog_reader_open(&r, "/nonexistent/0.log", &o, &e), -1);
    assert_int_equal(e.code, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_are_cri_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_all_and_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamps_prefix_each_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_bytes_cuts_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_skips_older_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_is_split_and_joined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_sees_only_whole_records, setup, teardown),
        cmocka_unit_test(test_missing_log_is_enoent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
