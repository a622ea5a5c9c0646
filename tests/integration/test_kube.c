/*
 * The Kubernetes client against the test bed's API server, in a namespace
 * of the test's own. Proves: CRUD with every patch type, selectors and
 * subresources; each error reason (NotFound, AlreadyExists, Conflict,
 * Invalid with field causes, Forbidden with the quota text); paging over
 * 1,200 ConfigMaps created through a concurrent batch; one client shared
 * by eight threads; a token file
 * rotated to another identity is picked up; an invalid token, a wrong CA
 * and an unreachable server each give a clear error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "kube.h"
#include "kube_config.h"
#include "strbuf.h"
#include "strmap.h"
#include "testkube.h"

static struct testkube tk;

static json_t *configmap(const char *name, const char *label)
{
    json_t *cm = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1", "kind",
                           "ConfigMap", "metadata", "name", name, "data", "k", "v");

    if (label)
        json_object_set_new(json_object_get(cm, "metadata"), "labels",
                            json_pack("{s:s}", "plateop.io/analysis", label));
    return cm;
}

static struct kube_res cm_res(const char *name)
{
    struct kube_res r = KUBE_RES_CONFIGMAPS;

    r.ns = tk.ns;
    r.name = name;
    return r;
}

static const char *data_k(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "data"), "k"));
}

/* Asserts got is non-NULL, printing the error otherwise. */
static json_t *ok(json_t *got, const struct kube_error *ke)
{
    if (!got)
        fail_msg("%s", ke->err.msg);
    return got;
}

static void test_crud_and_patches(void **state)
{
    struct kube_res coll = cm_res(NULL), one = cm_res("crud");
    struct kube_query apply = { .field_manager = "plateop-test", .force = 1 };
    struct kube_query sel = { .label_selector = "plateop.io/analysis=crud-label" };
    struct kube_query fsel = { .field_selector = "metadata.name=crud" };
    struct kube_query bg = { .propagation_policy = "Background" };
    struct kube_request req = { .verb = KUBE_PATCH, .res = one, .patch = KUBE_PATCH_APPLY,
                                .q = apply };
    struct kube_res nsst = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    json_t *cm = configmap("crud", "crud-label"), *got, *patch;
    struct strbuf yaml = STRBUF_INIT;

    (void)state;
    got = ok(kube_create(tk.c, &coll, cm, NULL, &ke), &ke);
    assert_string_equal(data_k(got), "v");
    json_decref(got);

    got = ok(kube_get(tk.c, &one, NULL, &ke), &ke);
    json_object_set_new(json_object_get(got, "data"), "k", json_string("replaced"));
    json_decref(ok(kube_replace(tk.c, &one, got, NULL, &ke), &ke));
    json_decref(got);

    patch = json_pack("{s:{s:s}}", "data", "k", "merged");
    got = ok(kube_patch(tk.c, &one, KUBE_PATCH_MERGE, patch, NULL, &ke), &ke);
    assert_string_equal(data_k(got), "merged");
    json_decref(got);
    json_decref(patch);

    patch = json_pack("[{s:s,s:s,s:s}]", "op", "replace", "path", "/data/k", "value", "json");
    got = ok(kube_patch(tk.c, &one, KUBE_PATCH_JSON, patch, NULL, &ke), &ke);
    assert_string_equal(data_k(got), "json");
    json_decref(got);
    json_decref(patch);

    patch = json_pack("{s:{s:s}}", "data", "k2", "strategic");
    got = ok(kube_patch(tk.c, &one, KUBE_PATCH_STRATEGIC, patch, NULL, &ke), &ke);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "data"), "k2")),
                        "strategic");
    json_decref(got);
    json_decref(patch);

    /* Server-side apply with a YAML body, taking the fields over with force. */
    strbuf_addf(&yaml, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: crud\n"
                       "  namespace: %s\ndata:\n  k: applied\n", tk.ns);
    req.raw_body = yaml.buf;
    got = ok(kube_do(tk.c, &req, &ke), &ke);
    assert_string_equal(data_k(got), "applied");
    json_decref(got);
    req.q.field_manager = NULL;
    assert_null(kube_do(tk.c, &req, &ke));
    assert_int_equal(ke.err.code, KUBE_E_INVALID_ARG);

    got = ok(kube_get(tk.c, &coll, &sel, &ke), &ke);
    assert_int_equal(json_array_size(json_object_get(got, "items")), 1);
    json_decref(got);
    got = ok(kube_get(tk.c, &coll, &fsel, &ke), &ke);
    assert_int_equal(json_array_size(json_object_get(got, "items")), 1);
    json_decref(got);

    nsst.name = tk.ns;
    nsst.subresource = "status";
    got = ok(kube_get(tk.c, &nsst, NULL, &ke), &ke);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "status"),
                                                          "phase")), "Active");
    json_decref(got);

    json_decref(ok(kube_delete(tk.c, &one, &bg, &ke), &ke));
    assert_null(kube_get(tk.c, &one, NULL, &ke));
    assert_true(kube_is_not_found(&ke));
    assert_int_equal(ke.http, 404);
    assert_string_equal(ke.reason, "NotFound");
    assert_int_equal(ke.attempts, 1);
    json_decref(cm);
    strbuf_release(&yaml);
}

static void test_error_reasons(void **state)
{
    struct kube_res coll = cm_res(NULL), one = cm_res("reasons");
    struct kube_error ke;
    json_t *cm = configmap("reasons", NULL), *bad = configmap("Bad_Name", NULL), *got, *stale;

    (void)state;
    json_decref(ok(kube_create(tk.c, &coll, cm, NULL, &ke), &ke));
    assert_null(kube_create(tk.c, &coll, cm, NULL, &ke));
    assert_true(kube_is_already_exists(&ke));
    assert_non_null(strstr(ke.err.msg, "409 AlreadyExists: configmaps \"reasons\" already exists"));

    stale = ok(kube_get(tk.c, &one, NULL, &ke), &ke);
    got = json_deep_copy(stale);
    json_object_set_new(json_object_get(got, "data"), "k", json_string("newer"));
    json_decref(ok(kube_replace(tk.c, &one, got, NULL, &ke), &ke));
    json_decref(got);
    assert_null(kube_replace(tk.c, &one, stale, NULL, &ke));
    assert_true(kube_is_conflict(&ke));
    assert_non_null(strstr(ke.message, "the object has been modified"));

    assert_null(kube_create(tk.c, &coll, bad, NULL, &ke));
    assert_true(kube_is_invalid(&ke));
    assert_int_equal(ke.http, 422);
    assert_true(ke.ncauses >= 1);
    assert_string_equal(ke.causes[0].field, "metadata.name");
    assert_string_equal(ke.causes[0].reason, "FieldValueInvalid");

    one.name = "no-such-configmap";
    got = kube_delete(tk.c, &one, NULL, &ke);
    assert_null(got);
    assert_true(kube_is_not_found(&ke));
    json_decref(cm);
    json_decref(bad);
    json_decref(stale);
}

/* ResourceQuota configmaps=1: once one exists, the next create is refused with the quota text. */
static void test_forbidden_by_quota(void **state)
{
    struct testkube q;
    struct kube_res rq = KUBE_RES_CONFIGMAPS, cms = KUBE_RES_CONFIGMAPS;
    struct kube_error ke;
    json_t *quota, *got = NULL, *cm;
    char name[32];
    int i, refused = 0;

    (void)state;
    assert_int_equal(testkube_open(&q, "kube-quota"), 0);
    rq.resource = "resourcequotas";
    rq.ns = cms.ns = q.ns;
    quota = json_pack("{s:s,s:s,s:{s:s},s:{s:{s:s}}}", "apiVersion", "v1", "kind",
                      "ResourceQuota", "metadata", "name", "q", "spec", "hard", "configmaps",
                      "1");
    json_decref(ok(kube_create(q.c, &rq, quota, NULL, &ke), &ke));
    /* Quota admission refuses everything until the controller has counted usage. */
    rq.name = "q";
    for (i = 0; i < 100; i++) {
        got = ok(kube_get(q.c, &rq, NULL, &ke), &ke);
        if (json_object_get(json_object_get(json_object_get(got, "status"), "used"),
                            "configmaps"))
            break;
        json_decref(got);
        got = NULL;
        usleep(100000);
    }
    assert_non_null(got);
    json_decref(got);
    /* Admission reads the quota from a cache that may lag one create behind. */
    for (i = 0; i < 5 && !refused; i++) {
        snprintf(name, sizeof(name), "quota-%d", i);
        cm = configmap(name, NULL);
        got = kube_create(q.c, &cms, cm, NULL, &ke);
        refused = !got;
        json_decref(got);
        json_decref(cm);
    }
    assert_true(refused);
    assert_true(kube_is_forbidden(&ke));
    assert_string_equal(ke.reason, "Forbidden");
    assert_non_null(strstr(ke.message, "exceeded quota: q, requested: configmaps=1, used: "
                                       "configmaps=1, limited: configmaps=1"));
    assert_non_null(strstr(ke.err.msg, "403 Forbidden"));
    json_decref(quota);
    testkube_close(&q);
}

struct page_count {
    struct strmap seen;
    int dup;
};

static int count_item(json_t *item, void *ud)
{
    struct page_count *pc = ud;
    const char *name = json_string_value(json_object_get(json_object_get(item, "metadata"),
                                                         "name"));

    pc->dup += strmap_has(&pc->seen, name);
    strmap_put(&pc->seen, name, NULL, NULL);
    return 0;
}

static void count_get(const char *verb, int http, void *ud)
{
    if (strcmp(verb, "GET") == 0 && http == 200)
        atomic_fetch_add((atomic_int *)ud, 1);
}

/* 1,200 ConfigMaps created by one concurrent batch, then listed 100 at a time. */
static void test_batch_and_paging(void **state)
{
    struct kube_res coll = cm_res(NULL);
    struct kube_request req = { .verb = KUBE_POST, .res = coll };
    struct kube_query q = { .label_selector = "plateop.io/analysis=paging", .limit = 100 };
    struct page_count pc = { STRMAP_INIT, 0 };
    struct kube_batch *b = kube_batch_new(tk.c, 32, NULL);
    struct kube_client *lister;
    struct kube_error ke, ke7;
    atomic_int gets = 0;
    json_t *cm, *got, *first, *second;
    char name[32], *rv = NULL;
    int i, dup_idx;

    (void)state;
    assert_non_null(b);
    for (i = 0; i < 1200; i++) {
        snprintf(name, sizeof(name), "page-%04d", i);
        cm = configmap(name, "paging");
        req.body = cm;
        assert_int_equal(kube_batch_add(b, &req, &ke), i);
        json_decref(cm);
    }
    /* One duplicate: its failure is reported without disturbing the rest. */
    cm = configmap("page-0007", "paging");
    req.body = cm;
    dup_idx = kube_batch_add(b, &req, &ke);
    json_decref(cm);
    assert_int_equal(kube_batch_count(b), 1201);
    assert_int_equal(kube_batch_run(b), 1);
    got = kube_batch_result(b, 5, &ke);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(json_object_get(got, "metadata"),
                                                          "name")), "page-0005");
    json_decref(got);
    /* Which of the two page-0007 requests lost the race is up to the server. */
    first = kube_batch_result(b, 7, &ke7);
    second = kube_batch_result(b, dup_idx, &ke);
    assert_true(!first != !second);
    assert_true(kube_is_already_exists(first ? &ke : &ke7));
    json_decref(first);
    json_decref(second);
    kube_batch_free(b);

    /* A client of its own, so that its observer counts only the list's requests. */
    lister = testkube_client(NULL);
    assert_non_null(lister);
    kube_client_set_observer(lister, count_get, &gets);
    assert_int_equal(kube_list_each(lister, &coll, &q, count_item, &pc, &rv, &ke), 0);
    assert_int_equal(pc.seen.count, 1200);
    assert_int_equal(pc.dup, 0);
    assert_non_null(rv);
    /* 100 per page: without the limit the server would send all 1,200 at once. */
    printf("# 1200 ConfigMaps listed in %d pages\n", atomic_load(&gets));
    assert_true(atomic_load(&gets) >= 12);
    kube_client_free(lister);
    free(rv);
    strmap_clear(&pc.seen, NULL);
}

/* One client shared by threads: each creates, reads and deletes its own objects. */
static void *thread_work(void *arg)
{
    long id = (long)arg;
    struct kube_res coll = cm_res(NULL), one;
    struct kube_error ke;
    char name[32];
    json_t *cm, *got;
    long failures = 0;
    int i;

    for (i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "thread-%ld-%d", id, i);
        cm = configmap(name, "threads");
        got = kube_create(tk.c, &coll, cm, NULL, &ke);
        failures += !got;
        json_decref(got);
        json_decref(cm);
        one = cm_res(name);
        got = kube_get(tk.c, &one, NULL, &ke);
        failures += !got || strcmp(data_k(got), "v") != 0;
        json_decref(got);
        got = kube_delete(tk.c, &one, NULL, &ke);
        failures += !got;
        json_decref(got);
    }
    return (void *)failures;
}

static void test_threads_share_a_client(void **state)
{
    pthread_t t[8];
    void *failures;
    long i, total = 0;

    (void)state;
    for (i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_work, (void *)i), 0);
    for (i = 0; i < 8; i++) {
        pthread_join(t[i], &failures);
        total += (long)failures;
    }
    assert_int_equal(total, 0);
}

/* ---- credentials and transport failures ---------------------------- */

/* Replaces a configuration string (NULL: drop it). */
static void replace(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

/*
 * A client for the test bed with parts of its configuration changed: the
 * server, the CA file, or the identity (a token file instead of the
 * client certificate). NULL leaves a part as it is.
 */
static struct kube_client *altered_client(const char *server, const char *ca_file,
                                          const char *token_file,
                                          const struct kube_client_opts *o)
{
    struct kube_config cfg;
    struct kube_error ke;
    struct kube_client *c;
    struct err e;

    assert_int_equal(kube_config_load(&cfg, NULL, NULL, &e), 0);
    if (server)
        replace(&cfg.server, server);
    if (ca_file) {
        replace(&cfg.ca_file, ca_file);
        replace(&cfg.ca_data, NULL);
    }
    if (token_file) {
        replace(&cfg.token_file, token_file);
        replace(&cfg.cert_file, NULL);
        replace(&cfg.key_file, NULL);
        replace(&cfg.cert_data, NULL);
        replace(&cfg.key_data, NULL);
    }
    c = kube_client_new(&cfg, o, &ke);
    if (!c)
        fail_msg("%s", ke.err.msg);
    kube_config_release(&cfg);
    return c;
}

/* Creates obj (consumed) as a core/v1 resource in the test namespace. */
static void create_in(const char *resource, json_t *obj)
{
    struct kube_res r = { .version = "v1", .resource = resource, .ns = tk.ns };
    struct kube_error ke;

    json_decref(ok(kube_create(tk.c, &r, obj, NULL, &ke), &ke));
    json_decref(obj);
}

/* The token the token controller put in a service-account token Secret. */
static char *sa_token(const char *sa)
{
    struct kube_res r = KUBE_RES_SECRETS;
    struct kube_error ke;
    struct strbuf name = STRBUF_INIT;
    json_t *s;
    char *tok = NULL;
    const char *b64;
    int i;

    strbuf_addf(&name, "%s-token", sa);
    create_in("serviceaccounts", json_pack("{s:{s:s}}", "metadata", "name", sa));
    create_in("secrets", json_pack("{s:{s:s,s:{s:s}},s:s}", "metadata", "name", name.buf,
                                   "annotations", "kubernetes.io/service-account.name", sa,
                                   "type", "kubernetes.io/service-account-token"));
    r.ns = tk.ns;
    r.name = name.buf;
    for (i = 0; i < 200 && !tok; i++) {
        s = ok(kube_get(tk.c, &r, NULL, &ke), &ke);
        b64 = json_string_value(json_object_get(json_object_get(s, "data"), "token"));
        if (b64) {
            tok = calloc(1, strlen(b64) + 1);
            assert_true(EVP_DecodeBlock((unsigned char *)tok, (const unsigned char *)b64,
                                        (int)strlen(b64)) > 0);
        }
        json_decref(s);
        if (!tok)
            usleep(100000);
    }
    strbuf_release(&name);
    assert_non_null(tok);
    return tok;
}

/* Replaces the file atomically, as the kubelet rotates projected tokens. */
static void write_token(const char *path, const char *token)
{
    struct strbuf tmp = STRBUF_INIT;
    FILE *f;

    strbuf_addf(&tmp, "%s.new", path);
    f = fopen(tmp.buf, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", token);
    fclose(f);
    assert_int_equal(rename(tmp.buf, path), 0);
    strbuf_release(&tmp);
}

static void test_token_rotation_and_invalid_token(void **state)
{
    struct kube_res coll = cm_res(NULL);
    struct kube_error ke;
    struct kube_client *c;
    char path[] = "/tmp/plateop-token-XXXXXX";
    char *a = sa_token("reader"), *b = sa_token("nobody");
    json_t *role, *binding, *got = NULL;
    int fd, i;

    (void)state;
    role = json_pack("{s:s,s:s,s:{s:s},s:[{s:[s],s:[s],s:[s]}]}", "apiVersion",
                     "rbac.authorization.k8s.io/v1", "kind", "Role", "metadata", "name",
                     "reader", "rules", "apiGroups", "", "resources", "configmaps", "verbs",
                     "list");
    binding = json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:s,s:s},s:[{s:s,s:s,s:s}]}", "apiVersion",
                        "rbac.authorization.k8s.io/v1", "kind", "RoleBinding", "metadata",
                        "name", "reader", "roleRef", "apiGroup", "rbac.authorization.k8s.io",
                        "kind", "Role", "name", "reader", "subjects", "kind", "ServiceAccount",
                        "name", "reader", "namespace", tk.ns);
    {
        struct kube_res r = { .group = "rbac.authorization.k8s.io", .version = "v1",
                              .resource = "roles", .ns = tk.ns };

        json_decref(ok(kube_create(tk.c, &r, role, NULL, &ke), &ke));
        r.resource = "rolebindings";
        json_decref(ok(kube_create(tk.c, &r, binding, NULL, &ke), &ke));
    }
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_token(path, a);
    c = altered_client(NULL, NULL, path, NULL);

    /* RBAC may take a moment to see the new binding. */
    for (i = 0; i < 50 && !got; i++) {
        got = kube_get(c, &coll, NULL, &ke);
        if (!got)
            usleep(100000);
    }
    if (!got)
        fail_msg("reader cannot list: %s", ke.err.msg);
    json_decref(got);

    /* Rotated to another identity: seen within the one-second recheck. */
    write_token(path, b);
    sleep(2);
    assert_null(kube_get(c, &coll, NULL, &ke));
    assert_true(kube_is_forbidden(&ke));
    assert_non_null(strstr(ke.message, "system:serviceaccount:"));
    assert_non_null(strstr(ke.message, ":nobody"));

    /* A wrong token stands in for an expired one: TokenRequest's shortest
     * lifetime is 600 s (expirationSeconds minimum), too long to wait for
     * here, and the API server answers both with the same bare 401. */
    write_token(path, "not-a-valid-token");
    sleep(2);
    assert_null(kube_get(c, &coll, NULL, &ke));
    assert_true(kube_is_unauthorized(&ke));
    assert_non_null(strstr(ke.err.msg, "401 Unauthorized"));
    assert_non_null(strstr(ke.err.msg, "the credentials were refused (expired or invalid "
                                      "token, or unknown certificate)"));
    printf("# %s\n", ke.err.msg);

    kube_client_free(c);
    unlink(path);
    free(a);
    free(b);
    json_decref(role);
    json_decref(binding);
}

static void test_wrong_ca(void **state)
{
    const char *bundle = "/etc/ssl/certs/ca-certificates.crt";
    struct kube_res r = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    struct kube_client *c;

    (void)state;
    if (access(bundle, R_OK) < 0)
        skip();
    c = altered_client(NULL, bundle, NULL, NULL);
    assert_null(kube_get(c, &r, NULL, &ke));
    assert_true(kube_is_transport(&ke));
    assert_int_equal(ke.attempts, 1);   /* not worth retrying */
    assert_non_null(strstr(ke.err.msg, "not trusted by the configured CA"));
    printf("# %s\n", ke.err.msg);
    kube_client_free(c);
}

static void test_unreachable_server(void **state)
{
    struct kube_client_opts o = { .max_retries = 2, .backoff_base_ms = 10 };
    struct kube_res r = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    struct kube_client *c;

    (void)state;
    c = altered_client("https://127.0.0.1:1", NULL, NULL, &o);
    assert_null(kube_get(c, &r, NULL, &ke));
    assert_true(kube_is_transport(&ke));
    assert_int_equal(ke.attempts, 3);
    assert_non_null(strstr(ke.err.msg, "the API server is unreachable"));
    assert_non_null(strstr(ke.err.msg, "https://127.0.0.1:1"));
    printf("# %s\n", ke.err.msg);
    kube_client_free(c);
}

static int setup(void **state)
{
    (void)state;
    return testkube_open(&tk, "kube-client");
}

static int teardown(void **state)
{
    (void)state;
    testkube_close(&tk);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crud_and_patches),
        cmocka_unit_test(test_error_reasons),
        cmocka_unit_test(test_forbidden_by_quota),
        cmocka_unit_test(test_batch_and_paging),
        cmocka_unit_test(test_threads_share_a_client),
        cmocka_unit_test(test_token_rotation_and_invalid_token),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_unreachable_server),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
