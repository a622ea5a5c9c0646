/*
 * Unit tests for zpack: texts come back byte for byte (short, empty,
 * longer than the dictionary and the window, with NULs), objects of one
 * kind shrink several times against the first one, readers on several
 * threads unpack at once, and a header that does not match its stream is
 * refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zpack.h"

/* A batch ConfigMap as the controller caches it, for batch i. */
static void object(int i, struct strbuf *out)
{
    strbuf_reset(out);
    strbuf_addf(out,
                "{\"metadata\":{\"name\":\"a%d-b%03d\",\"namespace\":\"lab-screens\",\"labels\":"
                "{\"plateop.io/analysis\":\"a%d\",\"plateop.io/batch\":\"b%03d\","
                "\"plateop.io/role\":\"batch\"},\"annotations\":{\"plateop.io/wells\":\"C%02d\","
                "\"plateop.io/input-hash\":\"%08x%08x%08x%08x%08x%08x%08x%08x\","
                "\"plateop.io/batch-index\":\"%d\"},\"ownerReferences\":[{\"kind\":\"Analysis\","
                "\"name\":\"a%d\",\"uid\":\"%08x-71c0-4f7f-bce9-559e7af70a9d\"}]}}",
                i / 200, i % 200, i / 200, i % 200, i % 24 + 1, i * 2654435761u, i * 40503u,
                i ^ 0x5bd1e995, i * 97u, i * 31u + 7, i * 131u, i * 3u, ~(unsigned)i, i % 200,
                i / 200, (i / 200) * 2246822519u);
}

static void roundtrip(struct zpack *z, struct zpack_reader *r, const char *text, size_t len)
{
    struct strbuf packed = STRBUF_INIT, back = STRBUF_INIT;

    assert_int_equal(zpack_pack(z, text, len, &packed), 0);
    assert_int_equal(zpack_size(packed.buf), packed.len);
    assert_int_equal(zpack_unpack(z, r, packed.buf, &back), 0);
    assert_int_equal(back.len, len);
    assert_memory_equal(back.buf, text, len);
    assert_int_equal(back.buf[len], '\0');
    strbuf_release(&packed);
    strbuf_release(&back);
}

static void test_texts_come_back_whole(void **state)
{
    struct zpack *z = zpack_new();
    struct zpack_reader r = ZPACK_READER_INIT;
    struct strbuf big = STRBUF_INIT, text = STRBUF_INIT;
    const char nuls[] = { 'x', 0, 'y', 0 };
    int i;

    (void)state;
    assert_non_null(z);
    object(0, &text);
    roundtrip(z, &r, text.buf, text.len);     /* the dictionary itself */
    roundtrip(z, &r, "", 0);
    roundtrip(z, &r, nuls, sizeof(nuls));
    /* Longer than the dictionary and the window: 50 objects, ~20 KB. */
    for (i = 0; i < 50; i++) {
        object(i, &text);
        strbuf_add(&big, text.buf, text.len);
    }
    assert_true(big.len > 4 * ZPACK_DICT_MAX);
    roundtrip(z, &r, big.buf, big.len);
    zpack_reader_release(&r);
    zpack_reader_release(&r);   /* idempotent */
    zpack_free(z);
    strbuf_release(&big);
    strbuf_release(&text);
}

/* The reason zpack exists: the cache of 20,000 such objects fits in a fraction of the text. */
static void test_objects_of_one_kind_shrink(void **state)
{
    struct zpack *z = zpack_new();
    struct strbuf text = STRBUF_INIT, packed = STRBUF_INIT;
    size_t plain = 0;
    int i;

    (void)state;
    for (i = 0; i < 1000; i++) {
        object(i, &text);
        plain += text.len;
        assert_int_equal(zpack_pack(z, text.buf, text.len, &packed), 0);
    }
    print_message("# 1000 objects: %zu bytes of text, %zu packed (%.1fx)\n", plain, packed.len,
                  (double)plain / (double)packed.len);
    assert_true(packed.len * 3 < plain);
    zpack_free(z);
    strbuf_release(&text);
    strbuf_release(&packed);
}

struct reader_job {
    const struct zpack *z;
    const struct strbuf *packed;    /* 200 packed objects, back to back */
    int failures;
};

static void *read_all(void *arg)
{
    struct reader_job *j = arg;
    struct zpack_reader r = ZPACK_READER_INIT;
    struct strbuf back = STRBUF_INIT, want = STRBUF_INIT;
    size_t off;
    int round, i;

    for (round = 0; round < 20; round++) {
        for (off = 0, i = 0; off < j->packed->len; off += zpack_size(j->packed->buf + off), i++) {
            object(i, &want);
            if (zpack_unpack(j->z, &r, j->packed->buf + off, &back) < 0 ||
                strcmp(back.buf, want.buf) != 0)
                j->failures++;
        }
    }
    zpack_reader_release(&r);
    strbuf_release(&back);
    strbuf_release(&want);
    return NULL;
}

static void test_readers_on_threads(void **state)
{
    struct zpack *z = zpack_new();
    struct strbuf text = STRBUF_INIT, packed = STRBUF_INIT;
    struct reader_job jobs[4];
    pthread_t t[4];
    int i;

    (void)state;
    for (i = 0; i < 200; i++) {
        object(i, &text);
        assert_int_equal(zpack_pack(z, text.buf, text.len, &packed), 0);
    }
    for (i = 0; i < 4; i++) {
        jobs[i] = (struct reader_job){ z, &packed, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, read_all, &jobs[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(jobs[i].failures, 0);
    }
    zpack_free(z);
    strbuf_release(&text);
    strbuf_release(&packed);
}

static void test_a_header_that_lies_is_refused(void **state)
{
    struct zpack *z = zpack_new();
    struct zpack_reader r = ZPACK_READER_INIT;
    struct strbuf text = STRBUF_INIT, packed = STRBUF_INIT, back = STRBUF_INIT;

    (void)state;
    object(1, &text);
    assert_int_equal(zpack_pack(z, text.buf, text.len, &packed), 0);
    /* The first varint is the text's length (two bytes here); claim one byte more. */
    assert_true((unsigned char)packed.buf[0] & 0x80);
    packed.buf[0]++;
    assert_int_equal(zpack_unpack(z, &r, packed.buf, &back), -1);
    packed.buf[0] -= 2;
    assert_int_equal(zpack_unpack(z, &r, packed.buf, &back), -1);
    packed.buf[0]++;
    assert_int_equal(zpack_unpack(z, &r, packed.buf, &back), 0);
    assert_string_equal(back.buf, text.buf);
    zpack_reader_release(&r);
    zpack_free(z);
    strbuf_release(&text);
    strbuf_release(&packed);
    strbuf_release(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_texts_come_back_whole),
        cmocka_unit_test(test_objects_of_one_kind_shrink),
        cmocka_unit_test(test_readers_on_threads),
        cmocka_unit_test(test_a_header_that_lies_is_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
