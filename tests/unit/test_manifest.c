/* Unit tests for the manifest module: reading manifests whole and without column lists, hashing files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "manifest.h"

/* Empties every array under a "columns" key, as manifest_read_brief() promises. */
static void empty_columns(json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            if (strcmp(key, "columns") == 0 && json_is_array(v))
                json_array_clear(v);
            else
                empty_columns(v);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
            empty_columns(v);
    }
}

static void test_brief_read_drops_only_column_lists(void **state)
{
    /* Keys and brackets inside strings, escaped quotes and backslashes, nesting,
       a "columns" that is not an array, and odd spacing. */
    const char *text =
        "{\"manifest_version\": 1, \"kind\": \"batch\", \"batch\": \"b\\\"columns\\\": [1]\",\n"
        " \"tables\": [\n"
        "  {\"name\": \"Cells\", \"columns\" :\n [ \"ImageNumber\", \"a \\\"]\\\" b\", \"columns\", \"[\" ],"
        " \"rows\": 2},\n"
        "  {\"name\": \"Image\", \"columns\": \"not an array\", \"rows\": 1},\n"
        "  {\"name\": \"Odd\", \"columns\":[[\"nested\", \"]\"], []], \"rows\": 0}\n"
        " ],\n"
        " \"note\": \"x\\\\\\\\\", \"columns\": [1, 2], \"last\": [\"columns\"]}\n";
    char dir[] = "/tmp/plateop-test-manifest-XXXXXX", path[64];
    json_t *full, *brief;
    struct err e;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST_FILE);
    assert_int_equal(fileutil_write_atomic(path, text, strlen(text), &e), 0);
    full = manifest_read(dir, "batch", &e);
    assert_non_null(full);
    brief = manifest_read_brief(dir, "batch", &e);
    assert_non_null(brief);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(full, "tables"), 0),
                                                     "columns")), 4);
    empty_columns(full);
    if (!json_equal(full, brief)) {
        char *a = json_dumps(full, JSON_SORT_KEYS), *b = json_dumps(brief, JSON_SORT_KEYS);

        fail_msg("brief read differs:\n%s\n%s", a, b);
    }
    json_decref(full);
    json_decref(brief);
    assert_int_equal(fileutil_rm_rf(dir, &e), 0);
}

static void test_broken_manifests_name_the_file(void **state)
{
    char dir[] = "/tmp/plateop-test-manifest-XXXXXX", path[64];
    const char *cut = "{\"manifest_version\": 1, \"kind\": \"batch\", \"tables\": [{\"columns\": [\"a\", ";
    struct err e;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_null(manifest_read_brief(dir, "batch", &e));
    assert_int_equal(e.code, ENOENT);
    assert_non_null(strstr(e.msg, "manifest.json: no manifest"));
    snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST_FILE);
    assert_int_equal(fileutil_write_atomic(path, cut, strlen(cut), &e), 0);
    assert_null(manifest_read_brief(dir, "batch", &e));
    assert_int_equal(e.code, EINVAL);
    assert_non_null(strstr(e.msg, path));
    assert_int_equal(fileutil_write_atomic(path, "{\"manifest_version\": 1, \"kind\": \"merge\"}", 40, &e), 0);
    assert_null(manifest_read_brief(dir, "batch", &e));
    assert_non_null(strstr(e.msg, "not a version 1 'batch' manifest"));
    assert_int_equal(fileutil_rm_rf(dir, &e), 0);
}

/* File hashes: the known SHA-256 of "abc", from the current offset on, and a read error. */
static void test_hash_fd(void **state)
{
    char path[] = "/tmp/plateop-hash-XXXXXX", hex[65];
    struct err e;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "xabc", 4), 4);
    assert_int_equal(lseek(fd, 1, SEEK_SET), 1);
    assert_int_equal(manifest_hash_fd(fd, path, hex, &e), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(manifest_hash_fd(fd, path, hex, &e), 0);  /* at the end: no bytes */
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    close(fd);
    unlink(path);
    fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    assert_int_equal(manifest_hash_fd(fd, "/tmp", hex, &e), -1);
    assert_string_equal(hex, "");
    assert_non_null(strstr(e.msg, "read /tmp: Is a directory"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brief_read_drops_only_column_lists),
        cmocka_unit_test(test_broken_manifests_name_the_file),
        cmocka_unit_test(test_hash_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
