/*
 * Unit tests for the Event recorder that need no API server: references
 * from objects, argument checks, and that recording never blocks the
 * caller, even when the server hangs, with a full queue dropping (and
 * counting) Events rather than waiting. The "server" is a socket that
 * accepts connections into its backlog and never answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kube_events.h"
#include "monotime.h"

static void test_ref_from_object(void **state)
{
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion", "plateop.io/v1alpha1",
                            "kind", "Analysis", "metadata", "namespace", "lab", "name", "plate-7",
                            "uid", "1234");
    json_t *bad = json_pack("{s:s, s:{s:s}}", "kind", "Analysis", "metadata", "name", "x");
    struct kube_event_ref ref;

    (void)state;
    assert_int_equal(kube_event_ref_from_object(&ref, obj), 0);
    assert_string_equal(ref.api_version, "plateop.io/v1alpha1");
    assert_string_equal(ref.kind, "Analysis");
    assert_string_equal(ref.ns, "lab");
    assert_string_equal(ref.name, "plate-7");
    assert_string_equal(ref.uid, "1234");
    assert_int_equal(kube_event_ref_from_object(&ref, bad), -1);
    json_decref(obj);
    json_decref(bad);
}

static void test_recorder_needs_component(void **state)
{
    struct kube_event_opts o = { 0 };
    struct err e;

    (void)state;
    err_clear(&e);
    assert_null(kube_event_recorder_new(NULL, &o, &e));
    assert_true(err_isset(&e));
    assert_null(kube_event_recorder_new(NULL, NULL, NULL));
}

/* A listening socket that never accepts: connections hang in its backlog. */
static int silent_server(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_record_never_blocks_and_full_queue_drops(void **state)
{
    struct kube_event_ref ref = { .api_version = "v1", .kind = "ConfigMap", .ns = "x", .name = "y" };
    struct kube_client_opts copts = { .timeout_ms = 300, .connect_timeout_ms = 300, .max_retries = -1 };
    struct kube_event_opts eopts = { .component = "test", .queue_max = 3 };
    struct kube_config cfg = { 0 };
    struct kube_event_recorder *r;
    struct kube_event_stats st;
    struct kube_client *c;
    struct kube_error ke;
    char server[64];
    int fd, port, i, refused = 0;
    double t0, took;

    (void)state;
    fd = silent_server(&port);
    snprintf(server, sizeof(server), "https://127.0.0.1:%d", port);
    cfg.server = server;
    cfg.namespace = "default";
    c = kube_client_new(&cfg, &copts, &ke);
    if (!c)
        printf("# kube_client_new: %s\n", ke.err.msg);
    assert_non_null(c);
    r = kube_event_recorder_new(c, &eopts, NULL);
    assert_non_null(r);

    assert_int_equal(kube_event_record(r, &(struct kube_event_ref){ .kind = "ConfigMap" },
                                       KUBE_EVENT_NORMAL, "NoName", "x"), -1);
    t0 = monotime_now();
    for (i = 0; i < 10; i++)
        refused += kube_event_record(r, &ref, KUBE_EVENT_WARNING, "Stuck", "event %d", i) < 0;
    took = monotime_now() - t0;
    printf("# 10 records against a hung server took %.4f s\n", took);
    assert_true(took < 0.25);
    /* At most the queue plus the one the thread took are accepted. */
    assert_true(refused >= 10 - 3 - 1);
    kube_event_stats(r, &st);
    assert_int_equal(st.dropped, refused);

    kube_event_flush(r);
    kube_event_stats(r, &st);
    assert_int_equal(st.failed, 10 - refused);
    assert_int_equal(st.created, 0);
    kube_event_recorder_free(r);
    kube_client_free(c);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_from_object),
        cmocka_unit_test(test_recorder_needs_component),
        cmocka_unit_test(test_record_never_blocks_and_full_queue_drops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
