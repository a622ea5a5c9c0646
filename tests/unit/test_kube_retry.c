/*
 * Unit tests for the client's retry policy and streaming, against a tiny
 * scripted HTTP/1.1 responder on 127.0.0.1 (one connection per request):
 * 429 waits for Retry-After, 5xx and dropped connections are retried with
 * backoff up to the limit, other 4xx are not retried, a 401 re-reads a
 * rotated token file once, and a watch stream cut mid-event is reported as
 * truncated. The real API server is exercised by tests/integration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kube.h"
#include "kube_watch.h"
#include "log.h"
#include "monotime.h"
#include "strbuf.h"

#define DROP NULL   /* a script step that closes the connection unanswered */

struct responder {
    int fd, port;
    pthread_t thread;
    const char *const *script;   /* raw responses, DROP for none */
    int steps, served;
    size_t split;                /* write each response in two parts, this far apart */
    char auth[4][64];            /* Authorization header of the first requests */
};

/* Reads one request's head (and ignores any body: the tests send small ones). */
static void read_request(int fd, struct responder *r)
{
    char buf[8192];
    size_t len = 0;
    ssize_t n;
    char *a;

    while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[len] = '\0';
    a = strstr(buf, "Authorization: ");
    if (a && r->served < 4)
        snprintf(r->auth[r->served], sizeof(r->auth[0]), "%.*s", (int)strcspn(a + 15, "\r"),
                 a + 15);
}

static void *respond(void *arg)
{
    struct responder *r = arg;
    const char *resp;
    size_t len, first;
    int c;

    for (; r->served < r->steps; r->served++) {
        c = accept(r->fd, NULL, NULL);
        if (c < 0)
            break;
        read_request(c, r);
        resp = r->script[r->served];
        if (resp) {
            len = strlen(resp);
            first = r->split && r->split < len ? r->split : len;
            if (write(c, resp, first) < 0 || (first < len && (usleep(50000),
                                                              write(c, resp + first, len - first) < 0)))
                break;
        }
        close(c);
    }
    return NULL;
}

/*
 * Starts a responder playing script (steps responses, each written in two
 * parts `split` bytes apart when split is non-zero) and returns a client for
 * it: plain HTTP, a token file (or the token "t0"), fast backoff.
 */
static struct kube_client *serve(struct responder *r, const char *const *script, int steps,
                                 size_t split, const char *token_file, int max_retries)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct kube_client_opts o = { .max_retries = max_retries, .backoff_base_ms = 5,
                                  .timeout_ms = 5000 };
    struct kube_config cfg = { 0 };
    socklen_t alen = sizeof(a);
    struct kube_error ke;
    struct kube_client *c;
    char server[64];

    memset(r, 0, sizeof(*r));
    r->script = script;
    r->steps = steps;
    r->split = split;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, respond, r), 0);

    snprintf(server, sizeof(server), "http://127.0.0.1:%d", r->port);
    cfg.server = server;
    cfg.token = token_file ? NULL : "t0";
    cfg.token_file = (char *)token_file;
    c = kube_client_new(&cfg, &o, &ke);
    if (!c)
        fail_msg("%s", ke.err.msg);
    return c;
}

static void stop_serving(struct responder *r, struct kube_client *c)
{
    kube_client_free(c);
    shutdown(r->fd, SHUT_RDWR);
    close(r->fd);
    pthread_join(r->thread, NULL);
}

#define OK_EMPTY "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" \
                 "Connection: close\r\n\r\n{}"
#define STATUS(code, text, reason)                                                         \
    "HTTP/1.1 " #code " " text "\r\nContent-Type: application/json\r\nConnection: close\r\n" \
    "\r\n{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"" reason "\",\"code\":" #code "}"

static void test_429_waits_for_retry_after(void **state)
{
    static const char *const script[] = {
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n",
        OK_EMPTY,
    };
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;
    json_t *got;
    double t0;

    (void)state;
    c = serve(&r, script, 2, 0, NULL, 3);
    t0 = monotime_now();
    got = kube_get(c, &res, NULL, &ke);
    assert_non_null(got);
    assert_true(monotime_now() - t0 >= 0.95);
    assert_int_equal(r.served, 2);
    assert_string_equal(r.auth[0], "Bearer t0");
    json_decref(got);
    stop_serving(&r, c);
}

static void test_5xx_and_dropped_connections_are_retried(void **state)
{
    static const char *const script[] = {
        STATUS(503, "Service Unavailable", "ServiceUnavailable"),
        DROP,
        STATUS(500, "Internal Server Error", "InternalError"),
        OK_EMPTY,
    };
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;
    json_t *got;

    (void)state;
    c = serve(&r, script, 4, 0, NULL, 5);
    got = kube_get(c, &res, NULL, &ke);
    if (!got)
        fail_msg("%s", ke.err.msg);
    assert_int_equal(r.served, 4);
    json_decref(got);
    stop_serving(&r, c);
}

static void test_retries_are_capped(void **state)
{
    static const char *const script[] = {
        STATUS(503, "Service Unavailable", "ServiceUnavailable"),
        STATUS(503, "Service Unavailable", "ServiceUnavailable"),
        STATUS(503, "Service Unavailable", "ServiceUnavailable"),
    };
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;

    (void)state;
    c = serve(&r, script, 3, 0, NULL, 2);
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_int_equal(ke.http, 503);
    assert_string_equal(ke.reason, "ServiceUnavailable");
    assert_int_equal(ke.attempts, 3);
    assert_int_equal(r.served, 3);
    stop_serving(&r, c);
}

static void test_other_4xx_are_not_retried(void **state)
{
    static const char *const script[] = {
        STATUS(400, "Bad Request", "BadRequest"),
        STATUS(409, "Conflict", "Conflict"),
        OK_EMPTY,
    };
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;

    (void)state;
    c = serve(&r, script, 3, 0, NULL, 5);
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_int_equal(ke.http, 400);
    assert_int_equal(ke.attempts, 1);
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_true(kube_is_conflict(&ke));
    assert_int_equal(ke.attempts, 1);
    assert_int_equal(r.served, 2);
    json_decref(kube_get(c, &res, NULL, &ke));   /* lets the responder finish */
    stop_serving(&r, c);
}

/* A 401 makes the client re-read its token file at once and try again, once. */
static void test_401_rereads_the_token_file(void **state)
{
    static const char *const script[] = {
        STATUS(401, "Unauthorized", "Unauthorized"),
        OK_EMPTY,
        STATUS(401, "Unauthorized", "Unauthorized"),
        STATUS(401, "Unauthorized", "Unauthorized"),
    };
    struct kube_res res = KUBE_RES_NAMESPACES;
    char path[] = "/tmp/plateop-retry-token-XXXXXX";
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;
    FILE *f;
    int fd;

    (void)state;
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);
    c = serve(&r, script, 4, 0, path, 5);
    f = fopen(path, "w");
    fputs("new\n", f);
    fclose(f);
    json_decref(kube_get(c, &res, NULL, &ke));
    assert_string_equal(r.auth[0], "Bearer old");
    assert_string_equal(r.auth[1], "Bearer new");
    /* A token that stays rejected is an error after the one re-read. */
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_true(kube_is_unauthorized(&ke));
    assert_int_equal(ke.attempts, 2);
    assert_non_null(strstr(ke.err.msg, "bearer token was rejected"));
    stop_serving(&r, c);
    unlink(path);
}

struct names {
    struct strbuf s;
};

static int collect_name(enum kube_watch_type type, json_t *obj, void *ud)
{
    struct names *n = ud;

    strbuf_addf(&n->s, "%s %s;", kube_watch_type_name(type),
                json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")));
    return 0;
}

/* Events arriving in pieces are delivered whole; a stream cut mid-event is an error. */
static void test_watch_stream_over_http(void **state)
{
    static const char *const script[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}\n"
        "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"2\"}}}\n",
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"b\",\"resourceVersion\":\"3\"}}}\n"
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"na",
    };
    struct kube_res res = KUBE_RES_CONFIGMAPS;
    struct names n = { STRBUF_INIT };
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;

    (void)state;
    c = serve(&r, script, 2, 130 /* inside the first event */, NULL, 5);
    assert_int_equal(kube_watch_once(c, &res, NULL, collect_name, &n, NULL, &ke), 0);
    assert_string_equal(n.s.buf, "ADDED a;DELETED a;");
    assert_int_equal(kube_watch_once(c, &res, NULL, collect_name, &n, NULL, &ke), -1);
    assert_int_equal(ke.err.code, KUBE_E_STREAM);
    assert_non_null(strstr(ke.err.msg, "watch stream truncated"));
    assert_string_equal(n.s.buf, "ADDED a;DELETED a;ADDED b;");
    strbuf_release(&n.s);
    stop_serving(&r, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_429_waits_for_retry_after),
        cmocka_unit_test(test_5xx_and_dropped_connections_are_retried),
        cmocka_unit_test(test_retries_are_capped),
        cmocka_unit_test(test_other_4xx_are_not_retried),
        cmocka_unit_test(test_401_rereads_the_token_file),
        cmocka_unit_test(test_watch_stream_over_http),
    };

    log_set_level(LOG_LEVEL_ERROR);   /* retries are expected here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
