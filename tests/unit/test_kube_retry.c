/*
 * Unit tests for the client's retry policy, streaming, watcher and batches,
 * against a tiny scripted HTTP/1.1 responder on 127.0.0.1 (a thread per
 * connection; each request gets the script's next answer): 429 waits for
 * Retry-After, 5xx and dropped connections are retried with backoff up to
 * the limit, other 4xx are not retried, a 401 re-reads a rotated token file
 * once, a watch stream cut mid-event is reported as truncated, the watcher
 * relists after a 410 (an HTTP answer or a failed continue page) and
 * delivers the differences, and a batch runs its requests at once over
 * kept-alive connections. The real API server is exercised by
 * tests/integration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kube.h"
#include "kube_watch.h"
#include "strmap.h"
#include "log.h"
#include "monotime.h"
#include "strbuf.h"

#define DROP NULL   /* a script step that closes the connection unanswered */
#define MAX_CONNS 64
#define MAX_LOGGED 16

struct responder {
    int fd, port;
    pthread_t thread;            /* accepts; one more thread per connection */
    const char *const *script;   /* raw responses in request order, DROP for none */
    int steps;
    const char *every;           /* the response past the script's end (NULL: DROP) */
    atomic_int delay_ms;         /* before each answer */
    size_t split;                /* write each response in two parts, this far apart */
    atomic_int served;           /* requests read, counted before they are answered */
    atomic_int connections;      /* connections accepted */
    pthread_mutex_t mu;          /* guards the arrays below */
    pthread_t conn_thread[MAX_CONNS];
    int conn_fd[MAX_CONNS];
    char target[MAX_LOGGED][256];  /* request target ("/api/v1/...?...") of each request */
    char auth[MAX_LOGGED][64];     /* its Authorization header */
};

struct conn {
    struct responder *r;
    int fd;
};

/*
 * Reads one request (head, then as much body as Content-Length says) and
 * logs its target and Authorization. Returns the request's number, or -1
 * when the client closed the connection.
 */
static int read_request(int fd, struct responder *r)
{
    char buf[16384], *head_end, *h;
    size_t len = 0, need = 0;
    ssize_t n;
    int step;

    buf[0] = '\0';
    while (len < sizeof(buf) - 1 && (!need || len < need)) {
        n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
        if (head_end && !need) {
            h = strcasestr(buf, "\r\nContent-Length: ");
            need = (size_t)(head_end + 4 - buf)
                   + (h && h < head_end ? strtoul(h + 18, NULL, 10) : 0);
        }
    }
    step = atomic_fetch_add(&r->served, 1);
    if (step < MAX_LOGGED) {
        pthread_mutex_lock(&r->mu);
        h = strchr(buf, ' ');
        if (h)
            snprintf(r->target[step], sizeof(r->target[0]), "%.*s", (int)strcspn(h + 1, " \r"),
                     h + 1);
        h = strstr(buf, "Authorization: ");
        if (h)
            snprintf(r->auth[step], sizeof(r->auth[0]), "%.*s", (int)strcspn(h + 15, "\r"),
                     h + 15);
        pthread_mutex_unlock(&r->mu);
    }
    return step;
}

/* Answers requests on one connection until the script or the client closes it. */
static void *serve_conn(void *arg)
{
    struct conn *cn = arg;
    struct responder *r = cn->r;
    const char *resp;
    size_t len, first;
    int step;

    while ((step = read_request(cn->fd, r)) >= 0) {
        resp = step < r->steps ? r->script[step] : r->every;
        if (atomic_load(&r->delay_ms))
            usleep((useconds_t)atomic_load(&r->delay_ms) * 1000);
        if (!resp)
            break;
        len = strlen(resp);
        first = r->split && r->split < len ? r->split : len;
        if (write(cn->fd, resp, first) < 0)
            break;
        if (first < len && (usleep(50000), write(cn->fd, resp + first, len - first) < 0))
            break;
        if (strstr(resp, "Connection: close"))
            break;
    }
    /* The descriptor stays open (and its number taken) until stop_serving. */
    shutdown(cn->fd, SHUT_RDWR);
    free(cn);
    return NULL;
}

static void *respond(void *arg)
{
    struct responder *r = arg;
    struct conn *cn;
    int c, i;

    while ((c = accept(r->fd, NULL, NULL)) >= 0) {
        i = atomic_fetch_add(&r->connections, 1);
        cn = malloc(sizeof(*cn));
        if (i >= MAX_CONNS || !cn) {
            free(cn);
            close(c);
            continue;
        }
        *cn = (struct conn){ r, c };
        pthread_mutex_lock(&r->mu);
        r->conn_fd[i] = c;
        if (pthread_create(&r->conn_thread[i], NULL, serve_conn, cn) != 0) {
            r->conn_fd[i] = -1;
            close(c);
            free(cn);
        }
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

/* Test-chosen options of a client for the responder. */
struct serve_opts {
    size_t split;             /* see struct responder */
    const char *token_file;   /* NULL: the token "t0" */
    int max_retries;
    long timeout_ms;          /* per attempt; 0: 30 s, generous for a loaded machine */
};

/*
 * Starts a responder playing script (steps responses; `every` for requests
 * after them) and returns a client for it: plain HTTP, fast backoff.
 */
static struct kube_client *serve(struct responder *r, const char *const *script, int steps,
                                 const char *every, const struct serve_opts *so)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct kube_client_opts o = { .max_retries = so->max_retries, .backoff_base_ms = 5,
                                  .timeout_ms = so->timeout_ms ? so->timeout_ms : 30000 };
    struct kube_config cfg = { 0 };
    socklen_t alen = sizeof(a);
    struct kube_error ke;
    struct kube_client *c;
    char server[64];
    int i;

    memset(r, 0, sizeof(*r));
    r->script = script;
    r->steps = steps;
    r->every = every;
    r->split = so->split;
    pthread_mutex_init(&r->mu, NULL);
    for (i = 0; i < MAX_CONNS; i++)
        r->conn_fd[i] = -1;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->fd, 64), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, respond, r), 0);

    snprintf(server, sizeof(server), "http://127.0.0.1:%d", r->port);
    cfg.server = server;
    cfg.token = so->token_file ? NULL : "t0";
    cfg.token_file = (char *)so->token_file;
    c = kube_client_new(&cfg, &o, &ke);
    if (!c)
        fail_msg("%s", ke.err.msg);
    return c;
}

static void stop_serving(struct responder *r, struct kube_client *c)
{
    int i, n;

    kube_client_free(c);
    shutdown(r->fd, SHUT_RDWR);
    pthread_join(r->thread, NULL);
    close(r->fd);
    n = atomic_load(&r->connections);
    for (i = 0; i < n && i < MAX_CONNS; i++) {
        if (r->conn_fd[i] < 0)
            continue;
        shutdown(r->conn_fd[i], SHUT_RDWR);
        pthread_join(r->conn_thread[i], NULL);
        close(r->conn_fd[i]);
    }
    pthread_mutex_destroy(&r->mu);
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
    c = serve(&r, script, 2, NULL, &(struct serve_opts){ .max_retries = 3 });
    t0 = monotime_now();
    got = kube_get(c, &res, NULL, &ke);
    assert_non_null(got);
    assert_true(monotime_now() - t0 >= 0.95);
    assert_int_equal(atomic_load(&r.served), 2);
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
    c = serve(&r, script, 4, NULL, &(struct serve_opts){ .max_retries = 5 });
    got = kube_get(c, &res, NULL, &ke);
    if (!got)
        fail_msg("%s", ke.err.msg);
    assert_int_equal(atomic_load(&r.served), 4);
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
    c = serve(&r, script, 3, NULL, &(struct serve_opts){ .max_retries = 2 });
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_int_equal(ke.http, 503);
    assert_string_equal(ke.reason, "ServiceUnavailable");
    assert_int_equal(ke.attempts, 3);
    assert_int_equal(atomic_load(&r.served), 3);
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
    c = serve(&r, script, 3, NULL, &(struct serve_opts){ .max_retries = 5 });
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_int_equal(ke.http, 400);
    assert_int_equal(ke.attempts, 1);
    assert_null(kube_get(c, &res, NULL, &ke));
    assert_true(kube_is_conflict(&ke));
    assert_int_equal(ke.attempts, 1);
    assert_int_equal(atomic_load(&r.served), 2);
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
    c = serve(&r, script, 4, NULL,
              &(struct serve_opts){ .token_file = path, .max_retries = 5 });
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
    assert_non_null(strstr(ke.err.msg, "the credentials were refused (expired or invalid "
                                      "token, or unknown certificate)"));
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
    /* Split inside the first event. */
    c = serve(&r, script, 2, NULL, &(struct serve_opts){ .split = 130, .max_retries = 5 });
    assert_int_equal(kube_watch_once(c, &res, NULL, collect_name, &n, NULL, &ke), 0);
    assert_string_equal(n.s.buf, "ADDED a;DELETED a;");
    assert_int_equal(kube_watch_once(c, &res, NULL, collect_name, &n, NULL, &ke), -1);
    assert_int_equal(ke.err.code, KUBE_E_STREAM);
    assert_non_null(strstr(ke.err.msg, "watch stream truncated"));
    assert_string_equal(n.s.buf, "ADDED a;DELETED a;ADDED b;");
    strbuf_release(&n.s);
    stop_serving(&r, c);
}

/* ---- the watcher's relists -------------------------------------------- */

#define HEAD_200 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
#define CM(name, rv) \
    "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"" name "\",\"resourceVersion\":\"" rv "\"}}"
#define LIST(meta, items) HEAD_200 "{\"kind\":\"ConfigMapList\",\"metadata\":" meta \
                          ",\"items\":[" items "]}"
#define EXPIRED(what) \
    "HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" \
    "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Expired\",\"code\":410," \
    "\"message\":\"" what " is too old\"}"

/*
 * What a watcher delivered, as "ADDED a;SYNCED;ERROR 410;...". With
 * use_store, the log keeps what was delivered (as an informer does) and
 * hands it to the watcher as its kube_watch_store.
 */
struct watch_log {
    struct strbuf s;
    struct kube_watch *w;
    int syncs, stop_at_sync;    /* stop the watcher at this many syncs (0: never) */
    const char *stop_at_name;   /* or on an event about this object */
    int use_store;
    struct strmap known;        /* "ns/name" -> resourceVersion, with use_store */
};

static void wl_event(void *ud, enum kube_watch_type type, json_t *obj)
{
    struct watch_log *l = ud;
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    char key[64];

    snprintf(key, sizeof(key), "%s/%s", json_string_value(json_object_get(md, "namespace")),
             name);
    if (type == KUBE_WATCH_DELETED)
        strmap_remove(&l->known, key, NULL);
    else
        assert_int_equal(strmap_put_str(&l->known, key, json_string_value(json_object_get(
                                                             md, "resourceVersion"))), 0);
    strbuf_addf(&l->s, "%s %s;", kube_watch_type_name(type), name);
    if (l->stop_at_name && strcmp(name, l->stop_at_name) == 0)
        kube_watch_stop(l->w);
}

static void wl_synced(void *ud)
{
    struct watch_log *l = ud;

    strbuf_adds(&l->s, "SYNCED;");
    if (++l->syncs == l->stop_at_sync)
        kube_watch_stop(l->w);
}

static int wl_error(void *ud, const struct kube_error *ke)
{
    struct watch_log *l = ud;

    strbuf_addf(&l->s, "ERROR %d;", ke->http);
    return 0;
}

static int wl_known(void *ud, const char *key, struct strbuf *rv)
{
    struct watch_log *l = ud;
    const char *v = strmap_get(&l->known, key);

    strbuf_reset(rv);
    return v && strbuf_adds(rv, v) == 0;
}

static int add_key(const char *key, void *value, void *ud)
{
    (void)value;
    return strbuf_add(ud, key, strlen(key) + 1);
}

static int wl_keys(void *ud, struct strbuf *keys)
{
    struct watch_log *l = ud;

    return strmap_each(&l->known, add_key, keys);
}

static const struct kube_watch_store wl_store = { wl_known, wl_keys };

/* Runs a watcher of configmaps in "ns" against the responder until the log stops it. */
static void run_watch(struct kube_client *c, struct watch_log *l)
{
    struct kube_watch_opts o = { .res = KUBE_RES_CONFIGMAPS, .page_size = 2,
                                 .timeout_seconds = 30,
                                 .h = { wl_event, wl_synced, wl_error },
                                 .store = l->use_store ? &wl_store : NULL, .ud = l };
    struct kube_error ke;

    o.res.ns = "ns";
    l->w = kube_watch_new(c, &o, &ke);
    assert_non_null(l->w);
    if (kube_watch_run(l->w, &ke) != 0)
        fail_msg("%s", ke.err.msg);
    kube_watch_free(l->w);
    strmap_clear(&l->known, NULL);
}

/*
 * A relist whose second page fails (the continue token expired) has already
 * delivered its first page. An object first seen there and gone by the next
 * relist must still be reported DELETED.
 */
static void check_relist_failing_part_way_keeps_what_it_delivered(int use_store)
{
    static const char *const script[] = {
        LIST("{\"resourceVersion\":\"10\",\"continue\":\"c1\"}", CM("a", "1")),
        LIST("{\"resourceVersion\":\"10\"}", CM("b", "1")),
        HEAD_200 "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                 "\"reason\":\"Expired\",\"message\":\"too old resource version: 10 (20)\"}}\n",
        LIST("{\"resourceVersion\":\"20\",\"continue\":\"c2\"}", CM("a", "1") "," CM("d", "15")),
        EXPIRED("the continue token"),
        LIST("{\"resourceVersion\":\"30\"}", CM("a", "1") "," CM("b", "1")),
    };
    struct responder r;
    struct kube_client *c;
    struct watch_log l = { .s = STRBUF_INIT, .stop_at_sync = 2, .use_store = use_store };

    c = serve(&r, script, 6, NULL, &(struct serve_opts){ .max_retries = -1 });
    run_watch(c, &l);
    assert_string_equal(l.s.buf, "ADDED a;ADDED b;SYNCED;ADDED d;ERROR 410;DELETED d;SYNCED;");
    assert_int_equal(atomic_load(&r.served), 6);
    assert_non_null(strstr(r.target[1], "continue=c1"));
    assert_non_null(strstr(r.target[2], "watch=true"));
    assert_non_null(strstr(r.target[2], "resourceVersion=10"));
    assert_non_null(strstr(r.target[4], "continue=c2"));
    assert_null(strstr(r.target[5], "continue="));
    assert_null(strstr(r.target[5], "watch="));
    strbuf_release(&l.s);
    stop_serving(&r, c);
}

/* The same, the watcher's record of what it delivered kept by the consumer. */
static void test_relist_failing_part_way_keeps_what_it_delivered(void **state)
{
    (void)state;
    check_relist_failing_part_way_keeps_what_it_delivered(0);
    check_relist_failing_part_way_keeps_what_it_delivered(1);
}

/*
 * A watch answered with HTTP 410 (rather than an ERROR event) relists,
 * delivers what changed meanwhile, and watches on from the new list's
 * resourceVersion.
 */
static void check_watch_answered_410_relists_and_delivers_differences(int use_store)
{
    static const char *const script[] = {
        LIST("{\"resourceVersion\":\"10\"}", CM("a", "1") "," CM("b", "1")),
        EXPIRED("resourceVersion 10"),
        LIST("{\"resourceVersion\":\"30\"}", CM("a", "2") "," CM("c", "25")),
        HEAD_200 "{\"type\":\"ADDED\",\"object\":" CM("last", "31") "}\n",
    };
    struct responder r;
    struct kube_client *c;
    struct watch_log l = { .s = STRBUF_INIT, .stop_at_name = "last", .use_store = use_store };

    c = serve(&r, script, 4, NULL, &(struct serve_opts){ .max_retries = -1 });
    run_watch(c, &l);
    assert_string_equal(l.s.buf, "ADDED a;ADDED b;SYNCED;MODIFIED a;ADDED c;DELETED b;SYNCED;"
                                 "ADDED last;");
    assert_int_equal(atomic_load(&r.served), 4);
    assert_non_null(strstr(r.target[1], "watch=true"));
    assert_non_null(strstr(r.target[1], "resourceVersion=10"));
    assert_null(strstr(r.target[2], "watch="));
    assert_non_null(strstr(r.target[3], "watch=true"));
    assert_non_null(strstr(r.target[3], "resourceVersion=30"));
    strbuf_release(&l.s);
    stop_serving(&r, c);
}

/* The same, the watcher's record of what it delivered kept by the consumer. */
static void test_watch_answered_410_relists_and_delivers_differences(void **state)
{
    (void)state;
    check_watch_answered_410_relists_and_delivers_differences(0);
    check_watch_answered_410_relists_and_delivers_differences(1);
}

/* ---- concurrency and connection reuse -------------------------------- */

#define OK_KEEPALIVE "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
                     "Content-Length: 2\r\n\r\n{}"
#define SLOW_MS 300
#define NBATCH 8

/* Runs NBATCH GETs as one batch; returns the seconds taken. */
static double timed_batch(struct kube_client *c)
{
    struct kube_request req = { .verb = KUBE_GET, .res = KUBE_RES_NAMESPACES };
    struct kube_batch *b = kube_batch_new(c, NBATCH, NULL);
    double t0;
    int i;

    assert_non_null(b);
    for (i = 0; i < NBATCH; i++)
        assert_int_equal(kube_batch_add(b, &req, NULL), i);
    t0 = monotime_now();
    assert_int_equal(kube_batch_run(b), 0);
    t0 = monotime_now() - t0;
    kube_batch_free(b);
    return t0;
}

/*
 * Sequential requests share one kept-alive connection; a batch of requests
 * that each take SLOW_MS runs them at once (in far less than NBATCH *
 * SLOW_MS), and later batches reuse the first one's connections.
 */
static void test_batches_run_concurrently_on_reused_connections(void **state)
{
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct responder r;
    struct kube_client *c;
    struct kube_error ke;
    double took;
    int i, conns;

    (void)state;
    c = serve(&r, NULL, 0, OK_KEEPALIVE, &(struct serve_opts){ .max_retries = -1 });
    for (i = 0; i < 20; i++) {
        json_t *got = kube_get(c, &res, NULL, &ke);

        if (!got)
            fail_msg("%s", ke.err.msg);
        json_decref(got);
    }
    assert_int_equal(atomic_load(&r.served), 20);
    assert_int_equal(atomic_load(&r.connections), 1);

    atomic_store(&r.delay_ms, SLOW_MS);
    took = timed_batch(c);
    printf("# %d requests of %d ms each as one batch: %.2f s\n", NBATCH, SLOW_MS, took);
    /* One at a time would take NBATCH * SLOW_MS = 2.4 s; half of that leaves
     * a loaded machine plenty of room and still proves they overlapped. */
    assert_true(took >= SLOW_MS / 1000.0 * 0.95);
    assert_true(took < NBATCH * SLOW_MS / 1000.0 / 2);
    conns = atomic_load(&r.connections);
    assert_true(conns <= NBATCH);   /* the idle one was reused, the others opened */

    for (i = 0; i < 3; i++) {
        took = timed_batch(c);
        printf("# again on the same connections: %.2f s\n", took);
        assert_true(took < NBATCH * SLOW_MS / 1000.0 / 2);
        assert_int_equal(atomic_load(&r.connections), conns);
    }
    assert_int_equal(atomic_load(&r.served), 20 + 4 * NBATCH);
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
        cmocka_unit_test(test_relist_failing_part_way_keeps_what_it_delivered),
        cmocka_unit_test(test_watch_answered_410_relists_and_delivers_differences),
        cmocka_unit_test(test_batches_run_concurrently_on_reused_connections),
    };

    log_set_level(LOG_LEVEL_ERROR);   /* retries are expected here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
