/* Unit tests for kube: error Status parsing and classification, resource paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "kube.h"
#include "strbuf.h"

static void from_body(struct kube_error *ke, long http, const char *body)
{
    assert_int_equal(kube_error_from_response(ke, "POST /api/v1/namespaces/x/configmaps", http,
                                              body, body ? strlen(body) : 0), -1);
}

static void test_already_exists_and_conflict(void **state)
{
    struct kube_error ke;

    (void)state;
    from_body(&ke, 409, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                        "\"status\":\"Failure\",\"message\":\"configmaps \\\"a\\\" already "
                        "exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"a\","
                        "\"kind\":\"configmaps\"},\"code\":409}");
    assert_true(kube_is_already_exists(&ke));
    assert_false(kube_is_conflict(&ke));
    assert_int_equal(ke.err.code, 409);
    assert_string_equal(ke.err.msg, "POST /api/v1/namespaces/x/configmaps: 409 AlreadyExists: "
                                    "configmaps \"a\" already exists");
    from_body(&ke, 409, "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"code\":409,"
                        "\"message\":\"Operation cannot be fulfilled on configmaps \\\"a\\\": "
                        "the object has been modified\"}");
    assert_true(kube_is_conflict(&ke));
    assert_false(kube_is_already_exists(&ke));
}

static void test_invalid_with_causes(void **state)
{
    struct kube_error ke;

    (void)state;
    from_body(&ke, 422,
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
              "\"message\":\"ConfigMap \\\"Bad_Name\\\" is invalid: metadata.name: Invalid "
              "value: \\\"Bad_Name\\\": a DNS-1123 subdomain must consist of lower case\","
              "\"reason\":\"Invalid\",\"details\":{\"name\":\"Bad_Name\",\"kind\":\"ConfigMap\","
              "\"causes\":[{\"reason\":\"FieldValueInvalid\",\"message\":\"Invalid value: "
              "\\\"Bad_Name\\\"\",\"field\":\"metadata.name\"},{\"reason\":\"FieldValueRequired\","
              "\"message\":\"Required value\",\"field\":\"data\"}]},\"code\":422}");
    assert_true(kube_is_invalid(&ke));
    assert_int_equal(ke.ncauses, 2);
    assert_string_equal(ke.causes[0].reason, "FieldValueInvalid");
    assert_string_equal(ke.causes[0].field, "metadata.name");
    assert_string_equal(ke.causes[1].field, "data");
    assert_string_equal(ke.causes[1].message, "Required value");
}

static void test_forbidden_keeps_quota_text(void **state)
{
    struct kube_error ke;

    (void)state;
    from_body(&ke, 403, "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"code\":403,"
                        "\"message\":\"configmaps \\\"b\\\" is forbidden: exceeded quota: q, "
                        "requested: configmaps=1, used: configmaps=1, limited: configmaps=1\"}");
    assert_true(kube_is_forbidden(&ke));
    assert_non_null(strstr(ke.message, "exceeded quota: q, requested: configmaps=1"));
    assert_non_null(strstr(ke.err.msg, "403 Forbidden: configmaps \"b\" is forbidden: "
                                       "exceeded quota"));
}

static void test_bodies_that_are_not_status(void **state)
{
    struct kube_error ke;

    (void)state;
    from_body(&ke, 502, "<html>\n<body>Bad Gateway</body></html>");
    assert_int_equal(ke.http, 502);
    assert_string_equal(ke.reason, "");
    assert_string_equal(ke.err.msg, "POST /api/v1/namespaces/x/configmaps: 502 error: "
                                    "<html> <body>Bad Gateway</body></html>");
    from_body(&ke, 410, NULL);
    assert_true(kube_is_gone(&ke));
    assert_string_equal(ke.reason, "Gone");
    from_body(&ke, 404, "{\"kind\":\"NotAStatus\"}");
    assert_true(kube_is_not_found(&ke));
    from_body(&ke, 401, "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"code\":401,"
                        "\"message\":\"Unauthorized\"}");
    assert_true(kube_is_unauthorized(&ke));
    assert_false(kube_is_transport(&ke));
    kube_error_clear(&ke);
    assert_false(kube_is_not_found(&ke));
    assert_false(kube_is_gone(NULL));
}

static void test_error_event_status_code(void **state)
{
    struct kube_error ke;
    json_t *st = json_pack("{s:s,s:s,s:i,s:s}", "kind", "Status", "reason", "Expired", "code",
                           410, "message", "too old resource version: 5 (90)");

    (void)state;
    kube_error_from_status(&ke, "watch", 200, st);
    assert_true(kube_is_gone(&ke));
    assert_string_equal(ke.err.msg, "watch: 410 Expired: too old resource version: 5 (90)");
    json_decref(st);
}

static void expect_path(const struct kube_res *res, const struct kube_query *q, int watch,
                        const char *want)
{
    struct strbuf sb = STRBUF_INIT;
    struct kube_error ke;

    assert_int_equal(kube_res_path(&sb, res, q, watch, &ke), 0);
    assert_string_equal(sb.buf, want);
    strbuf_release(&sb);
}

static void test_paths(void **state)
{
    struct kube_res cm = KUBE_RES_CONFIGMAPS, jobs = KUBE_RES_JOBS, nodes = KUBE_RES_NODES;
    struct kube_res ana = KUBE_RES_ANALYSES, leases = KUBE_RES_LEASES;
    struct kube_query q = { .label_selector = "plateop.io/analysis=p1,tier!=db",
                            .field_selector = "spec.nodeName=n 1", .limit = 500,
                            .continue_token = "eyJ2Ijo+/=", .resource_version = "12" };
    struct kube_query apply = { .field_manager = "plateop", .force = 1, .dry_run = 1 };
    struct kube_query del = { .propagation_policy = "Foreground" };
    struct kube_query w = { .resource_version = "77", .timeout_seconds = 300,
                            .allow_watch_bookmarks = 1 };

    (void)state;
    expect_path(&cm, NULL, 0, "/api/v1/configmaps");
    cm.ns = "lab";
    expect_path(&cm, &q, 0, "/api/v1/namespaces/lab/configmaps?labelSelector=plateop.io%2F"
                            "analysis%3Dp1%2Ctier%21%3Ddb&fieldSelector=spec.nodeName%3Dn%201"
                            "&limit=500&continue=eyJ2Ijo%2B%2F%3D&resourceVersion=12");
    jobs.ns = "lab";
    jobs.name = "b-1";
    expect_path(&jobs, &apply, 0,
                "/apis/batch/v1/namespaces/lab/jobs/b-1?fieldManager=plateop&force=true"
                "&dryRun=All");
    expect_path(&jobs, &del, 0, "/apis/batch/v1/namespaces/lab/jobs/b-1?propagationPolicy="
                                "Foreground");
    ana.ns = "lab";
    ana.name = "a";
    ana.subresource = "status";
    expect_path(&ana, NULL, 0, "/apis/plateop.io/v1alpha1/namespaces/lab/analyses/a/status");
    nodes.name = "n1";
    nodes.subresource = "status";
    expect_path(&nodes, NULL, 0, "/api/v1/nodes/n1/status");
    expect_path(&leases, &w, 1, "/apis/coordination.k8s.io/v1/leases?watch=true&"
                                "resourceVersion=77&timeoutSeconds=300&allowWatchBookmarks=true");
}

static void test_bad_paths(void **state)
{
    struct kube_res bad[] = {
        { .resource = "configmaps" },
        { .version = "v1" },
        { .version = "v1", .resource = "pods", .subresource = "status" },
        { .version = "v1", .resource = "pods", .ns = "a", .name = "x/../../secrets" },
        { .version = "v1", .resource = "pods", .ns = "..", .name = "x" },
        { .version = "v1", .resource = "pods", .ns = "" },
    };
    struct strbuf sb = STRBUF_INIT;
    struct kube_error ke;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kube_error_clear(&ke);
        assert_int_equal(kube_res_path(&sb, &bad[i], NULL, 0, &ke), -1);
        assert_int_equal(ke.err.code, KUBE_E_INVALID_ARG);
        strbuf_reset(&sb);
    }
    strbuf_release(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_already_exists_and_conflict),
        cmocka_unit_test(test_invalid_with_causes),
        cmocka_unit_test(test_forbidden_keeps_quota_text),
        cmocka_unit_test(test_bodies_that_are_not_status),
        cmocka_unit_test(test_error_event_status_code),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_bad_paths),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
