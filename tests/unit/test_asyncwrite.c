/* Unit tests for asyncwrite: order, the tap, and write errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asyncwrite.h"
#include "fileutil.h"

static int count_tap(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)data;
    (void)e;
    *(size_t *)ctx += len;
    return 0;
}

/* Writes pieces of many sizes through an asyncwrite opened with flags and checks the file. */
static void write_and_check(unsigned flags)
{
    char path[] = "/tmp/plateop-test-aw-XXXXXX";
    struct strbuf back = STRBUF_INIT;
    struct asyncwrite *a;
    size_t total = 0, tapped = 0, i, n;
    unsigned char *chunk = malloc(3 * ASYNCWRITE_BUF_SIZE);
    struct err e;
    int fd;

    fd = mkstemp(path);
    assert_true(fd >= 0);
    a = asyncwrite_open(fd, path, flags, count_tap, &tapped, &e);
    assert_non_null(a);
    /* Small and larger-than-a-buffer pieces, each byte telling its position. */
    for (i = 0; i < 40; i++) {
        n = i % 7 == 0 ? 3 * ASYNCWRITE_BUF_SIZE - 5 : 1000 + i;
        for (size_t k = 0; k < n; k++)
            chunk[k] = (unsigned char)((total + k) % 251);
        assert_int_equal(asyncwrite_put(a, chunk, n, &e), 0);
        total += n;
    }
    assert_int_equal(asyncwrite_close(a, &e), 0);
    close(fd);
    assert_int_equal(tapped, total);
    assert_int_equal(fileutil_read(path, &back, total + 1, &e), 0);
    assert_int_equal(back.len, total);
    for (i = 0; i < total; i++)
        if ((unsigned char)back.buf[i] != i % 251)
            fail_msg("byte %zu out of order", i);
    strbuf_release(&back);
    free(chunk);
    unlink(path);
}

static void test_everything_arrives_in_order(void **state)
{
    (void)state;
    write_and_check(0);
    /* Full buffers bypass the page cache, the unaligned tail does not. */
    write_and_check(ASYNCWRITE_DIRECT);
}

static int failing_tap(void *ctx, const void *data, size_t len, struct err *e)
{
    (void)ctx;
    (void)data;
    (void)len;
    return err_set(e, EIO, "sha256: update failed");
}

static void test_tap_error_comes_back(void **state)
{
    char path[] = "/tmp/plateop-test-aw-XXXXXX";
    char *big = calloc(1, ASYNCWRITE_BUF_SIZE);
    struct asyncwrite *a;
    struct err e;
    int fd, rc = 0, i;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    a = asyncwrite_open(fd, path, ASYNCWRITE_DIRECT, failing_tap, NULL, &e);
    for (i = 0; i < 50 && rc == 0; i++)
        rc = asyncwrite_put(a, big, ASYNCWRITE_BUF_SIZE, &e);
    assert_int_equal(rc, -1);
    assert_string_equal(e.msg, "sha256: update failed");
    err_clear(&e);
    assert_int_equal(asyncwrite_close(a, &e), -1);
    assert_int_equal(e.code, EIO);
    close(fd);
    unlink(path);
    free(big);
}

static void test_write_error_comes_back(void **state)
{
    struct asyncwrite *a;
    char *big = calloc(1, ASYNCWRITE_BUF_SIZE);
    struct err e;
    int fd = open("/dev/full", O_WRONLY), rc = 0, i;

    (void)state;
    if (fd < 0)
        skip();
    a = asyncwrite_open(fd, "out.csv", 0, NULL, NULL, &e);
    for (i = 0; i < 50 && rc == 0; i++)
        rc = asyncwrite_put(a, big, ASYNCWRITE_BUF_SIZE, &e);
    err_clear(&e);
    assert_int_equal(asyncwrite_close(a, &e), -1);
    assert_int_equal(e.code, ENOSPC);
    assert_non_null(strstr(e.msg, "write out.csv"));
    close(fd);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_arrives_in_order),
        cmocka_unit_test(test_write_error_comes_back),
        cmocka_unit_test(test_tap_error_comes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
