/* Unit tests for kube_config: every kubeconfig variant, in-cluster, loading order, bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kube_config.h"
#include "strbuf.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
    struct strbuf p = STRBUF_INIT;
    FILE *f;

    strbuf_addf(&p, "%s/%s", dir, name);
    f = fopen(p.buf, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    strbuf_release(&p);
}

static char *path_of(const char *name)
{
    struct strbuf p = STRBUF_INIT;

    strbuf_addf(&p, "%s/%s", dir, name);
    return strbuf_detach(&p, NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/plateop-kcfg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    write_file("ca.crt", "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
    write_file("client.crt", "CERT");
    write_file("client.key", "KEY");
    write_file("token", "tok-from-file\n");
    return 0;
}

static int teardown(void **state)
{
    struct strbuf cmd = STRBUF_INIT;
    const char *names[] = { "ca.crt", "client.crt", "client.key", "token", "a.yaml",
                            "b.yaml", "config", "namespace", NULL };
    int i;

    (void)state;
    for (i = 0; names[i]; i++) {
        char *p = path_of(names[i]);

        unlink(p);
        free(p);
    }
    strbuf_addf(&cmd, "%s/.kube", dir);
    rmdir(cmd.buf);
    rmdir(dir);
    strbuf_release(&cmd);
    return 0;
}

/* Parses text with base dir `dir`; returns the parse result. */
static int parse(struct kube_config *cfg, const char *text, const char *context, struct err *e)
{
    err_clear(e);
    return kube_config_parse(cfg, text, strlen(text), "test", dir, context, e);
}

static const char token_and_ca_file[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: c1\n"
    "  cluster:\n"
    "    server: https://127.0.0.1:6443/\n"
    "    certificate-authority: ca.crt\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: c1, user: u1, namespace: lab}\n"
    "- name: other\n"
    "  context:\n"
    "    cluster: c1\n"
    "users:\n"
    "- name: u1\n"
    "  user:\n"
    "    token: \"abc.def\"\n";

static void test_token_and_relative_ca_file(void **state)
{
    struct kube_config cfg;
    struct err e;
    char *ca = path_of("ca.crt");

    (void)state;
    assert_int_equal(parse(&cfg, token_and_ca_file, NULL, &e), 0);
    assert_string_equal(cfg.server, "https://127.0.0.1:6443");
    assert_string_equal(cfg.context, "dev");
    assert_string_equal(cfg.namespace, "lab");
    assert_string_equal(cfg.ca_file, ca);
    assert_null(cfg.ca_data);
    assert_string_equal(cfg.token, "abc.def");
    assert_null(cfg.token_file);
    assert_false(cfg.insecure_skip_tls_verify);
    kube_config_release(&cfg);
    assert_null(cfg.server);
    free(ca);
}

static void test_named_context_overrides_current(void **state)
{
    struct kube_config cfg;
    struct err e;

    (void)state;
    assert_int_equal(parse(&cfg, token_and_ca_file, "other", &e), 0);
    assert_string_equal(cfg.context, "other");
    assert_string_equal(cfg.namespace, "default");
    assert_null(cfg.token);
    kube_config_release(&cfg);
}

static void test_inline_data(void **state)
{
    struct kube_config cfg;
    struct err e;
    /* "CA PEM\n", "CERT PEM", "KEY\0PEM" (binary-safe) */
    const char *text =
        "current-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://[::1]:6443',"
        " certificate-authority-data: Q0EgUEVNCg==, tls-server-name: kubernetes}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "users:\n"
        "- name: u\n"
        "  user:\n"
        "    client-certificate-data: |\n"
        "      Q0VSVCBQ\n"
        "      RU0=\n"
        "    client-key-data: S0VZAFBFTQ==\n";

    (void)state;
    assert_int_equal(parse(&cfg, text, NULL, &e), 0);
    assert_string_equal(cfg.server, "https://[::1]:6443");
    assert_int_equal(cfg.ca_data_len, 7);
    assert_memory_equal(cfg.ca_data, "CA PEM\n", 7);
    assert_int_equal(cfg.cert_data_len, 8);
    assert_string_equal(cfg.cert_data, "CERT PEM");
    assert_int_equal(cfg.key_data_len, 7);
    assert_memory_equal(cfg.key_data, "KEY\0PEM", 7);
    assert_string_equal(cfg.tls_server_name, "kubernetes");
    assert_null(cfg.ca_file);
    kube_config_release(&cfg);
}

static void test_cert_files_token_file_and_insecure(void **state)
{
    struct kube_config cfg, copy;
    struct err e;
    char *crt = path_of("client.crt"), *key = path_of("client.key"), *tok = path_of("token");
    struct strbuf text = STRBUF_INIT;

    (void)state;
    strbuf_addf(&text,
                "current-context: x\n"
                "clusters: [{name: c, cluster: {server: 'http://h:8080', "
                "insecure-skip-tls-verify: true}}]\n"
                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
                "users: [{name: u, user: {client-certificate: %s, client-key: client.key,"
                " tokenFile: token}}]\n", crt);
    assert_int_equal(parse(&cfg, text.buf, NULL, &e), 0);
    assert_true(cfg.insecure_skip_tls_verify);
    assert_string_equal(cfg.cert_file, crt);
    assert_string_equal(cfg.key_file, key);
    assert_string_equal(cfg.token_file, tok);
    assert_int_equal(kube_config_copy(&copy, &cfg, &e), 0);
    kube_config_release(&cfg);
    assert_string_equal(copy.key_file, key);
    assert_true(copy.insecure_skip_tls_verify);
    kube_config_release(&copy);
    strbuf_release(&text);
    free(crt);
    free(key);
    free(tok);
}

/* Plain scalars that look like numbers are still names and tokens. */
static void test_numeric_scalars_are_text(void **state)
{
    struct kube_config cfg;
    struct err e;
    const char *text =
        "current-context: 1\n"
        "clusters: [{name: 2, cluster: {server: 'https://h'}}]\n"
        "contexts: [{name: 1, context: {cluster: 2, user: 3}}]\n"
        "users: [{name: 3, user: {token: 12345}}]\n";

    (void)state;
    assert_int_equal(parse(&cfg, text, NULL, &e), 0);
    assert_string_equal(cfg.context, "1");
    assert_string_equal(cfg.token, "12345");
    kube_config_release(&cfg);
}

static void test_insecure_only_when_true(void **state)
{
    struct kube_config cfg;
    struct err e;
    const char *text =
        "current-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://h', insecure-skip-tls-verify: false}}]\n"
        "contexts: [{name: x, context: {cluster: c}}]\n";

    (void)state;
    assert_int_equal(parse(&cfg, text, NULL, &e), 0);
    assert_false(cfg.insecure_skip_tls_verify);
    assert_null(cfg.token);
    kube_config_release(&cfg);
}

/* Each malformed input fails with a message naming the cause, and nothing leaks. */
static void test_malformed(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        { "current-context: x\nclusters: [\n", "malformed YAML: line 3" },
        { "a: b\n\tc: d\n", "malformed YAML" },
        { "- just\n- a list\n", "top level is not a mapping" },
        { "", "no current-context" },
        { "current-context: x\n", "context \"x\" not found" },
        { "current-context: x\ncontexts: [{name: x, context: {user: u}}]\n", "names no cluster" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n",
          "cluster \"c\" not found" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
          "clusters: [{name: c, cluster: {}}]\n", "has no server" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
          "clusters: [{name: c, cluster: {server: 'ftp://h'}}]\n", "is not an http(s) URL" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h'}}]\n", "user \"u\" not found" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h', "
          "certificate-authority-data: 'no*base64'}}]\n",
          "certificate-authority-data is not valid base64" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h', "
          "certificate-authority: /nonexistent/ca.crt}}]\n",
          "certificate-authority /nonexistent/ca.crt: No such file or directory" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
          "users: [{name: u, user: {client-certificate-data: Q0E=}}]\n",
          "a client certificate needs its key" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
          "users: [{name: u, user: {exec: {command: aws}}}]\n",
          "credential plugins are not supported" },
        { "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
          "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
          "users: [{name: u, user: {tokenFile: missing-token}}]\n",
          "tokenFile" },
        { "? [a, b]\n: c\n", "a mapping key must be a scalar" },
    };
    struct kube_config cfg;
    struct strbuf deep = STRBUF_INIT;
    struct err e;
    size_t i;
    int d;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(&cfg, cases[i].text, NULL, &e), -1);
        if (!strstr(e.msg, cases[i].want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].want);
        assert_int_equal(strncmp(e.msg, "kubeconfig test: ", 17), 0);
        assert_null(cfg.server);
    }
    for (d = 0; d < 10000; d++)
        strbuf_addch(&deep, '[');
    assert_int_equal(parse(&cfg, deep.buf, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "malformed YAML"));
    strbuf_release(&deep);
}

static void test_files_merged_in_order(void **state)
{
    struct kube_config cfg;
    struct strbuf paths = STRBUF_INIT;
    char *a = path_of("a.yaml"), *b = path_of("b.yaml");
    struct err e;

    (void)state;
    write_file("a.yaml", "current-context: first\n"
                         "contexts: [{name: first, context: {cluster: c, user: u}}]\n"
                         "users: [{name: u, user: {token: from-a}}]\n");
    write_file("b.yaml", "current-context: second\n"
                         "clusters: [{name: c, cluster: {server: 'https://b:1',"
                         " certificate-authority: ca.crt}}]\n"
                         "users: [{name: u, user: {token: from-b}}]\n");
    strbuf_addf(&paths, "%s:%s/missing.yaml:%s", a, dir, b);
    assert_int_equal(kube_config_from_file(&cfg, paths.buf, NULL, &e), 0);
    assert_string_equal(cfg.context, "first");
    assert_string_equal(cfg.server, "https://b:1");
    assert_string_equal(cfg.token, "from-a");
    assert_string_equal(cfg.source, paths.buf);
    kube_config_release(&cfg);

    assert_int_equal(kube_config_from_file(&cfg, "/nonexistent/kubeconfig", NULL, &e), -1);
    assert_string_equal(e.msg, "kubeconfig /nonexistent/kubeconfig: open "
                               "/nonexistent/kubeconfig: No such file or directory");
    assert_int_equal(kube_config_from_file(&cfg, "/nonexistent/a:/nonexistent/b", NULL, &e), -1);
    assert_non_null(strstr(e.msg, "none of the files exists"));
    strbuf_release(&paths);
    free(a);
    free(b);
}

static void test_in_cluster(void **state)
{
    struct kube_config cfg;
    struct err e;
    char *tok = path_of("token"), *ca = path_of("ca.crt");

    (void)state;
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(kube_config_in_cluster(&cfg, dir, &e), -1);
    assert_non_null(strstr(e.msg, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"));

    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_in_cluster(&cfg, dir, &e), 0);
    assert_string_equal(cfg.server, "https://10.0.0.1:443");
    assert_string_equal(cfg.token_file, tok);
    assert_string_equal(cfg.ca_file, ca);
    assert_string_equal(cfg.namespace, "default");
    assert_string_equal(cfg.source, "in-cluster");
    kube_config_release(&cfg);

    write_file("namespace", "lab-7\n");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kube_config_in_cluster(&cfg, dir, &e), 0);
    assert_string_equal(cfg.server, "https://[fd00::1]:443");
    assert_string_equal(cfg.namespace, "lab-7");
    kube_config_release(&cfg);

    assert_int_equal(kube_config_in_cluster(&cfg, "/nonexistent/sa", &e), -1);
    assert_string_equal(e.msg, "in-cluster configuration: service-account token "
                               "/nonexistent/sa/token: No such file or directory");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    free(tok);
    free(ca);
}

/* --kubeconfig, then $KUBECONFIG, then in-cluster, then ~/.kube/config. */
static void test_load_order(void **state)
{
    struct kube_config cfg;
    struct strbuf kdir = STRBUF_INIT;
    char *a = path_of("a.yaml"), *home_cfg = path_of(".kube/config");
    struct err e;

    (void)state;
    write_file("a.yaml", "current-context: x\n"
                         "contexts: [{name: x, context: {cluster: c}}]\n"
                         "clusters: [{name: c, cluster: {server: 'https://from-flag'}}]\n");
    strbuf_addf(&kdir, "%s/.kube", dir);
    mkdir(kdir.buf, 0700);
    write_file(".kube/config", "current-context: x\n"
                               "contexts: [{name: x, context: {cluster: c}}]\n"
                               "clusters: [{name: c, cluster: {server: 'https://from-home'}}]\n");
    setenv("HOME", dir, 1);
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");

    assert_int_equal(kube_config_load(&cfg, a, NULL, &e), 0);
    assert_string_equal(cfg.server, "https://from-flag");
    kube_config_release(&cfg);

    assert_int_equal(kube_config_load(&cfg, NULL, NULL, &e), 0);
    assert_string_equal(cfg.server, "https://from-home");
    kube_config_release(&cfg);

    setenv("KUBECONFIG", a, 1);
    assert_int_equal(kube_config_load(&cfg, "", NULL, &e), 0);
    assert_string_equal(cfg.server, "https://from-flag");
    kube_config_release(&cfg);
    unsetenv("KUBECONFIG");

    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_load(&cfg, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "in-cluster configuration: service-account token"));
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");

    unlink(home_cfg);
    assert_int_equal(kube_config_load(&cfg, NULL, NULL, &e), -1);
    assert_non_null(strstr(e.msg, "no Kubernetes configuration"));
    strbuf_release(&kdir);
    free(a);
    free(home_cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_relative_ca_file),
        cmocka_unit_test(test_named_context_overrides_current),
        cmocka_unit_test(test_inline_data),
        cmocka_unit_test(test_cert_files_token_file_and_insecure),
        cmocka_unit_test(test_numeric_scalars_are_text),
        cmocka_unit_test(test_insecure_only_when_true),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_files_merged_in_order),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_load_order),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
