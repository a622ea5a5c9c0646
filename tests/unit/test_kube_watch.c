/*
 * Unit tests for the watch stream parser: a recorded stream split at every
 * byte position, byte-at-a-time feeding, ERROR events, garbage and
 * truncated streams.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kube_watch.h"
#include "strbuf.h"

/* Recorded from a 1.20 API server (shortened), with the quirks that matter:
 * escaped newlines inside strings, non-ASCII text, a bookmark, a blank line. */
static const char recorded[] =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
    "\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"resourceVersion\":\"101\"},"
    "\"data\":{\"csv\":\"x,y\\n1,2\\n\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
    "\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"resourceVersion\":\"102\","
    "\"labels\":{\"plateop.io/analysis\":\"plate-\u00e9\"}}}}\n"
    "\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
    "\"metadata\":{\"resourceVersion\":\"150\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
    "\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\",\"resourceVersion\":\"151\"}}}\r\n";

struct seen {
    struct strbuf log;   /* "TYPE name rv;" per event */
    int stop_after;      /* return 7 after this many events (0: never) */
    int n;
};

static int record(enum kube_watch_type type, json_t *obj, void *ud)
{
    struct seen *s = ud;
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));

    strbuf_addf(&s->log, "%s %s %s;", kube_watch_type_name(type), name ? name : "-",
                json_string_value(json_object_get(md, "resourceVersion")));
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 7 : 0;
}

static const char expected[] = "ADDED a 101;MODIFIED a 102;BOOKMARK - 150;DELETED a 151;";

/* Feeds text in pieces of the given sizes (the last piece takes the rest). */
static int feed_split(struct kube_watch_parser *p, const char *text, size_t len, size_t cut,
                      struct kube_error *ke)
{
    int rc = kube_watch_parser_feed(p, text, cut, ke);

    if (rc == 0)
        rc = kube_watch_parser_feed(p, text + cut, len - cut, ke);
    if (rc == 0)
        rc = kube_watch_parser_finish(p, ke);
    return rc;
}

static void test_split_at_every_byte(void **state)
{
    size_t len = strlen(recorded), cut, cut2;
    struct kube_error ke;

    (void)state;
    for (cut = 0; cut <= len; cut++) {
        struct seen s = { STRBUF_INIT, 0, 0 };
        struct kube_watch_parser p;

        kube_watch_parser_init(&p, record, &s);
        assert_int_equal(feed_split(&p, recorded, len, cut, &ke), 0);
        assert_string_equal(s.log.buf, expected);
        assert_int_equal(p.events, 4);
        kube_watch_parser_release(&p);
        strbuf_release(&s.log);
    }
    /* Three pieces, with both cuts moving: every pair of positions. */
    for (cut = 0; cut <= len; cut += 7) {
        for (cut2 = cut; cut2 <= len; cut2 += 5) {
            struct seen s = { STRBUF_INIT, 0, 0 };
            struct kube_watch_parser p;

            kube_watch_parser_init(&p, record, &s);
            assert_int_equal(kube_watch_parser_feed(&p, recorded, cut, &ke), 0);
            assert_int_equal(kube_watch_parser_feed(&p, recorded + cut, cut2 - cut, &ke), 0);
            assert_int_equal(kube_watch_parser_feed(&p, recorded + cut2, len - cut2, &ke), 0);
            assert_int_equal(kube_watch_parser_finish(&p, &ke), 0);
            assert_string_equal(s.log.buf, expected);
            kube_watch_parser_release(&p);
            strbuf_release(&s.log);
        }
    }
}

static void test_byte_at_a_time(void **state)
{
    struct seen s = { STRBUF_INIT, 0, 0 };
    struct kube_watch_parser p;
    struct kube_error ke;
    size_t i;

    (void)state;
    kube_watch_parser_init(&p, record, &s);
    for (i = 0; recorded[i]; i++)
        assert_int_equal(kube_watch_parser_feed(&p, &recorded[i], 1, &ke), 0);
    assert_int_equal(kube_watch_parser_finish(&p, &ke), 0);
    assert_string_equal(s.log.buf, expected);
    kube_watch_parser_release(&p);
    strbuf_release(&s.log);
}

static void test_consumer_stops(void **state)
{
    struct seen s = { STRBUF_INIT, 2, 0 };
    struct kube_watch_parser p;
    struct kube_error ke;

    (void)state;
    kube_watch_parser_init(&p, record, &s);
    assert_int_equal(kube_watch_parser_feed(&p, recorded, strlen(recorded), &ke), 7);
    assert_int_equal(s.n, 2);
    kube_watch_parser_release(&p);
    strbuf_release(&s.log);
}

/* A 410 inside a 200 stream, split anywhere, is an error carrying the Status. */
static void test_error_event_is_gone(void **state)
{
    static const char stream[] =
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}\n"
        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
        "\"metadata\":{},\"status\":\"Failure\",\"message\":\"The resourceVersion for the "
        "provided watch is too old.\",\"reason\":\"Expired\",\"code\":410}}\n"
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\n";
    size_t len = strlen(stream), cut;

    (void)state;
    for (cut = 0; cut <= len; cut++) {
        struct seen s = { STRBUF_INIT, 0, 0 };
        struct kube_watch_parser p;
        struct kube_error ke;

        kube_watch_parser_init(&p, record, &s);
        assert_int_equal(feed_split(&p, stream, len, cut, &ke), -1);
        assert_true(kube_is_gone(&ke));
        assert_int_equal(ke.http, 410);
        assert_int_equal(ke.err.code, 410);
        assert_string_equal(ke.reason, "Expired");
        assert_string_equal(ke.err.msg, "watch stream: ERROR event: 410 Expired: The "
                                        "resourceVersion for the provided watch is too old.");
        assert_string_equal(s.log.buf, "ADDED a 5;");
        kube_watch_parser_release(&p);
        strbuf_release(&s.log);
    }
}

static void expect_stream_error(const char *stream, const char *want)
{
    struct seen s = { STRBUF_INIT, 0, 0 };
    struct kube_watch_parser p;
    struct kube_error ke;
    int rc;

    kube_watch_parser_init(&p, record, &s);
    rc = kube_watch_parser_feed(&p, stream, strlen(stream), &ke);
    if (rc == 0)
        rc = kube_watch_parser_finish(&p, &ke);
    assert_int_equal(rc, -1);
    assert_int_equal(ke.err.code, KUBE_E_STREAM);
    if (!strstr(ke.err.msg, want))
        fail_msg("\"%s\" lacks \"%s\"", ke.err.msg, want);
    kube_watch_parser_release(&p);
    strbuf_release(&s.log);
}

static void test_garbage_and_truncation(void **state)
{
    (void)state;
    expect_stream_error("<html>502 Bad Gateway</html>\n", "watch stream: event 1: not JSON");
    expect_stream_error("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
                        "{\"type\":\"ADDED\"}\n",
                        "event 2: not a watch event");
    expect_stream_error("{\"type\":\"ADDED\",\"object\":42}\n", "not a watch event");
    expect_stream_error("[1,2]\n", "not a watch event");
    expect_stream_error("{\"type\":\"RENAMED\",\"object\":{}}\n", "unknown event type: RENAMED");
    expect_stream_error("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
                        "{\"type\":\"MODIFIED\",\"obj",
                        "watch stream truncated: 23 bytes of an incomplete event after 1 "
                        "complete ones");
    expect_stream_error("{\"type\":\"ADDED\",\"object\":{}}} trailing\n", "not JSON");
    expect_stream_error("\x01\x02\x7f\n", "not JSON");
}

/* Random bytes never crash the parser (run under ASan/UBSan by make asan). */
static void test_random_bytes(void **state)
{
    unsigned int seed = 12345;
    char buf[4096];
    int round;
    size_t i;

    (void)state;
    for (round = 0; round < 200; round++) {
        struct seen s = { STRBUF_INIT, 0, 0 };
        struct kube_watch_parser p;
        struct kube_error ke;
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));

        for (i = 0; i < len; i++) {
            /* Mostly JSON-ish characters, so some lines get deep into the decoder. */
            static const char alphabet[] = "{}[]\":,\n \\typeobjectADDED0123456789";

            buf[i] = rand_r(&seed) % 4 ? alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)]
                                       : (char)rand_r(&seed);
        }
        kube_watch_parser_init(&p, record, &s);
        if (kube_watch_parser_feed(&p, buf, len, &ke) == 0)
            kube_watch_parser_finish(&p, &ke);
        kube_watch_parser_release(&p);
        strbuf_release(&s.log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_consumer_stops),
        cmocka_unit_test(test_error_event_is_gone),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_random_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
