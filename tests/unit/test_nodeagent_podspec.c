/*
 * Unit tests for the node agent's podspec module: quantities, $(VAR)
 * expansion, and a container resolved from a Pod with env from values,
 * fieldRef, ConfigMaps and Secrets, securityContext and limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fakeget.h"
#include "quantity.h"

static const struct podspec_host host = { "127.0.0.1", "10.1.2.3", "6443" };

/* The objects the fake API server holds. */
static json_t *objects(void)
{
    return json_pack(
        "{s:{s:{s:s, s:s, s:s}, s:{s:s}}, s:{s:{s:s, s:s}}}",
        "configmaps/ns1/cfg", "data", "greeting", "hello", "A_KEY", "a", "bad key", "skipped",
        "binaryData", "blob", "AAE=",
        "secrets/ns1/sec", "data", "password", "czNjcmV0", "TOKEN", "dG9r");
}

static json_t *pod_with(const char *container_json)
{
    json_error_t je;
    json_t *c = json_loads(container_json, 0, &je), *pod;

    assert_non_null(c);
    pod = json_pack("{s:{s:s, s:s, s:s, s:{s:s}}, s:{s:s, s:[o], s:{s:i, s:[i], s:i}}}",
                    "metadata", "name", "p1", "namespace", "ns1", "uid", "u-1", "labels",
                    "app", "demo", "spec", "nodeName", "node-a", "containers", c,
                    "securityContext", "runAsUser", 1000, "supplementalGroups", 5, "fsGroup", 7);
    assert_non_null(pod);
    return pod;
}

/* Builds container 0 of a pod; returns the rc and leaves *c filled (free it). */
static int build(struct podspec_container *c, const char *container_json, struct err *e)
{
    json_t *pod = pod_with(container_json), *objs = objects();
    struct podspec_getter get = { fakeget_get, objs };
    int rc;

    rc = podspec_container_build(c, pod, json_array_get(
                                          json_object_get(json_object_get(pod, "spec"),
                                                          "containers"), 0),
                                 &host, &get, e);
    json_decref(pod);
    json_decref(objs);
    return rc;
}

static const char *env_get(const struct podspec_container *c, const char *name)
{
    size_t n = strlen(name), i;

    for (i = 0; c->envp[i]; i++)
        if (strncmp(c->envp[i], name, n) == 0 && c->envp[i][n] == '=')
            return c->envp[i] + n + 1;
    return NULL;
}

static void test_quantities(void **state)
{
    static const struct { const char *s; long long v; } ok[] = {
        { "128974848", 128974848 }, { "129e6", 129000000 }, { "129M", 129000000 },
        { "123Mi", 128974848 }, { "1.5Gi", 1610612736 }, { "64Ki", 65536 },
        { "500m", 1 }, { "1k", 1000 }, { "0", 0 }, { "+2", 2 },
    };
    static const char *const bad[] = { "", "Mi", "12Q", "1.2.3", "-1", "1e99", "abc" };
    unsigned long long v;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(quantity_parse(ok[i].s, &v), 0);
        assert_int_equal(v, ok[i].v);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(quantity_parse(bad[i], &v), -1);
}

static void check_expand(const char *in, const char *want)
{
    char *const env[] = { "A=alpha", "EMPTY=", NULL };
    struct strbuf out = STRBUF_INIT;

    assert_int_equal(podspec_expand(in, env, 2, &out), 0);
    assert_string_equal(out.buf, want);
    strbuf_release(&out);
}

static void test_expand(void **state)
{
    (void)state;
    check_expand("x$(A)y", "xalphay");
    check_expand("$(UNDEFINED)", "$(UNDEFINED)");
    check_expand("$$(A)", "$(A)");
    check_expand("[$(EMPTY)]", "[]");
    check_expand("$(A", "$(A");
    check_expand("cost $5 $", "cost $5 $");
}

static void test_env_sources_and_order(void **state)
{
    struct podspec_container c;
    struct err e;

    (void)state;
    assert_int_equal(
        build(&c,
              "{\"name\":\"main\",\"image\":\"img\",\"command\":[\"sh\",\"-c\"],"
              "\"args\":[\"echo $(GREETING) $(NOPE)\"],"
              "\"envFrom\":[{\"configMapRef\":{\"name\":\"cfg\"},\"prefix\":\"CM_\"},"
              "             {\"secretRef\":{\"name\":\"gone\",\"optional\":true}}],"
              "\"env\":[{\"name\":\"GREETING\",\"valueFrom\":{\"configMapKeyRef\":"
              "            {\"name\":\"cfg\",\"key\":\"greeting\"}}},"
              "        {\"name\":\"PW\",\"valueFrom\":{\"secretKeyRef\":"
              "            {\"name\":\"sec\",\"key\":\"password\"}}},"
              "        {\"name\":\"POD\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}},"
              "        {\"name\":\"NODE\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"spec.nodeName\"}}},"
              "        {\"name\":\"IP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"status.podIP\"}}},"
              "        {\"name\":\"APP\",\"valueFrom\":{\"fieldRef\":"
              "            {\"fieldPath\":\"metadata.labels['app']\"}}},"
              "        {\"name\":\"MSG\",\"value\":\"$(GREETING) to $(POD)\"},"
              "        {\"name\":\"CM_A_KEY\",\"value\":\"overridden\"},"
              "        {\"name\":\"OPT\",\"valueFrom\":{\"configMapKeyRef\":"
              "            {\"name\":\"cfg\",\"key\":\"absent\",\"optional\":true}}}]}",
              &e),
        0);
    assert_string_equal(env_get(&c, "GREETING"), "hello");
    assert_string_equal(env_get(&c, "PW"), "s3cret");
    assert_string_equal(env_get(&c, "POD"), "p1");
    assert_string_equal(env_get(&c, "NODE"), "node-a");
    assert_string_equal(env_get(&c, "IP"), "127.0.0.1");
    assert_string_equal(env_get(&c, "APP"), "demo");
    assert_string_equal(env_get(&c, "MSG"), "hello to p1");
    assert_string_equal(env_get(&c, "CM_greeting"), "hello");
    assert_string_equal(env_get(&c, "CM_A_KEY"), "overridden");
    assert_null(env_get(&c, "CM_bad key"));
    assert_null(env_get(&c, "OPT"));
    assert_string_equal(env_get(&c, "KUBERNETES_SERVICE_HOST"), "10.1.2.3");
    assert_string_equal(env_get(&c, "HOSTNAME"), "p1");
    assert_non_null(env_get(&c, "PATH"));
    assert_string_equal(c.argv[0], "sh");
    assert_string_equal(c.argv[2], "echo hello $(NOPE)");
    assert_null(c.argv[3]);
    /* Found on the container's PATH, which is the kubelet's default one. */
    assert_int_equal(c.exec_path[0], '/');
    assert_string_equal(strrchr(c.exec_path, '/'), "/sh");
    assert_int_equal(access(c.exec_path, X_OK), 0);
    podspec_container_free(&c);
}

static void test_security_limits_and_defaults(void **state)
{
    struct podspec_container c;
    struct err e;

    (void)state;
    assert_int_equal(build(&c,
                           "{\"name\":\"main\",\"command\":[\"/bin/true\"],"
                           "\"securityContext\":{\"runAsGroup\":2000},"
                           "\"resources\":{\"limits\":{\"memory\":\"64Mi\"}},"
                           "\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/data\","
                           "                   \"subPath\":\"x/y\",\"readOnly\":true}]}",
                           &e),
                     0);
    assert_true(c.run_as_user_set);
    assert_int_equal(c.run_as_user, 1000);
    assert_int_equal(c.run_as_group, 2000);
    assert_int_equal(c.n_groups, 2);
    assert_int_equal(c.groups[0], 5);
    assert_int_equal(c.groups[1], 7);
    assert_int_equal(c.memory_limit, 64 << 20);
    assert_string_equal(c.working_dir, "/");
    assert_string_equal(c.termination_path, "/dev/termination-log");
    assert_string_equal(c.exec_path, "/bin/true");
    assert_int_equal(c.n_mounts, 1);
    assert_string_equal(c.mounts[0].sub_path, "x/y");
    assert_true(c.mounts[0].read_only);
    podspec_container_free(&c);
}

/* Each of these containers cannot run as written: a config error naming why. */
static void test_config_errors(void **state)
{
    static const struct { const char *json; const char *says; } cases[] = {
        { "{\"name\":\"m\",\"image\":\"busybox\"}", "has no command" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"env\":[{\"name\":\"V\",\"valueFrom\":"
          "{\"configMapKeyRef\":{\"name\":\"missing\",\"key\":\"k\"}}}]}",
          "configmap \"missing\" not found" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"env\":[{\"name\":\"V\",\"valueFrom\":"
          "{\"secretKeyRef\":{\"name\":\"sec\",\"key\":\"nokey\"}}}]}",
          "key \"nokey\" not found in secret \"sec\"" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"env\":[{\"name\":\"V\",\"valueFrom\":"
          "{\"fieldRef\":{\"fieldPath\":\"status.phase\"}}}]}",
          "fieldRef status.phase is not supported" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"securityContext\":{\"runAsUser\":0,"
          "\"runAsNonRoot\":true}}",
          "runAsNonRoot" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"resources\":{\"limits\":{\"memory\":\"lots\"}}}",
          "memory limit lots is not a quantity" },
        { "{\"name\":\"m\",\"command\":[\"x\"],\"volumeMounts\":[{\"name\":\"v\","
          "\"mountPath\":\"/d\",\"subPath\":\"../up\"}]}",
          "must be relative" },
    };
    struct podspec_container c;
    struct err e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err_clear(&e);
        assert_int_equal(build(&c, cases[i].json, &e), -1);
        assert_int_equal(e.code, PODSPEC_ECONFIG);
        if (!strstr(e.msg, cases[i].says))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].says);
        assert_non_null(strstr(e.msg, "container m"));
        podspec_container_free(&c);
    }
}

static void test_key_values(void **state)
{
    json_t *objs = objects();
    struct strbuf sb = STRBUF_INIT;
    json_t *bad = json_pack("{s:{s:s}}", "data", "k", "not base64!");
    struct err e;

    (void)state;
    assert_int_equal(podspec_key_value(json_object_get(objs, "configmaps/ns1/cfg"), 0, "blob",
                                       &sb, &e), 1);
    assert_int_equal(sb.len, 2);
    assert_memory_equal(sb.buf, "\x00\x01", 2);
    strbuf_reset(&sb);
    assert_int_equal(podspec_key_value(json_object_get(objs, "secrets/ns1/sec"), 1, "TOKEN",
                                       &sb, &e), 1);
    assert_string_equal(sb.buf, "tok");
    assert_int_equal(podspec_key_value(json_object_get(objs, "secrets/ns1/sec"), 1, "none",
                                       &sb, &e), 0);
    assert_int_equal(podspec_key_value(bad, 1, "k", &sb, &e), -1);
    assert_int_equal(e.code, PODSPEC_ECONFIG);
    strbuf_release(&sb);
    json_decref(bad);
    json_decref(objs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_env_sources_and_order),
        cmocka_unit_test(test_security_limits_and_defaults),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_key_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
