/*
 * Unit tests for what ships beside the code: the CRD documents every spec
 * field, and the installation in manifests/ (configuration file, controller
 * environment, Deployment flags, example Analyses) is read by the very
 * parsers the controller uses, with the values its comments promise.
 * Files are found under PLATEOP_ROOT (tests/run.sh sets it), else ".".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "version.h"
#include "yamljson.h"
#include "../../controller/analysis.h"
#include "../../controller/config.h"

static void path_of(const char *rel, char *out, size_t size)
{
    const char *root = getenv("PLATEOP_ROOT");

    snprintf(out, size, "%s/%s", root && *root ? root : ".", rel);
}

static json_t *load(const char *rel)
{
    char path[4096];
    struct err e;
    json_t *doc;

    path_of(rel, path, sizeof(path));
    err_clear(&e);
    doc = yamljson_load_file(path, &e);
    if (!doc)
        fail_msg("%s", e.msg);
    return doc;
}

/* Every YAML document of a file (yamljson reads one per call). */
static json_t *load_all(const char *rel)
{
    char path[4096];
    FILE *f;
    struct strbuf doc = STRBUF_INIT;
    char line[4096];
    json_t *all = json_array();
    struct err e;

    path_of(rel, path, sizeof(path));
    f = fopen(path, "r");
    assert_non_null(f);
    for (;;) {
        int end = !fgets(line, sizeof(line), f);

        if (end || strcmp(line, "---\n") == 0) {
            json_t *v = yamljson_parse(doc.buf ? doc.buf : "", doc.len, path, &e);

            if (!v)
                fail_msg("%s", e.msg);
            if (!json_is_null(v))
                json_array_append(all, v);
            json_decref(v);
            strbuf_reset(&doc);
            if (end)
                break;
        } else {
            strbuf_adds(&doc, line);
        }
    }
    fclose(f);
    strbuf_release(&doc);
    return all;
}

/*
 * Walks a schema's properties (and those of array items), appending to
 * missing every field path without a description.
 */
static void undocumented(const json_t *schema, const char *path, struct strbuf *missing,
                         int *fields)
{
    const json_t *props = json_object_get(schema, "properties"), *items, *sub;
    const char *name;

    json_object_foreach((json_t *)props, name, sub) {
        struct strbuf p = STRBUF_INIT;
        const char *d = json_string_value(json_object_get(sub, "description"));

        strbuf_addf(&p, "%s.%s", path, name);
        (*fields)++;
        if (!d || strlen(d) < 10)
            strbuf_addf(missing, " %s", p.buf);
        undocumented(sub, p.buf, missing, fields);
        strbuf_release(&p);
    }
    if ((items = json_object_get(schema, "items")))
        undocumented(items, path, missing, fields);
}

static void test_every_crd_spec_field_has_a_description(void **state)
{
    json_t *crd = load("crds/analysis.yaml");
    const json_t *versions = json_object_get(json_object_get(crd, "spec"), "versions"), *v;
    struct strbuf missing = STRBUF_INIT;
    size_t i;
    int fields = 0;

    (void)state;
    assert_true(json_array_size(versions) > 0);
    json_array_foreach(versions, i, v) {
        const json_t *spec = json_object_get(
            json_object_get(json_object_get(json_object_get(v, "schema"), "openAPIV3Schema"),
                            "properties"),
            "spec");

        assert_non_null(spec);
        undocumented(spec, "spec", &missing, &fields);
    }
    /* The walk reached the nested fields too (29 when this was written). */
    assert_true(fields >= 25);
    if (missing.len)
        fail_msg("CRD spec fields without a description (kubectl explain shows nothing):%s",
                 missing.buf);
    strbuf_release(&missing);
    json_decref(crd);
}

static const json_t *volume(const struct ctl_config *cfg, const char *name)
{
    const json_t *v;
    size_t i;

    json_array_foreach(cfg->volumes, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return v;
    }
    return NULL;
}

static void test_config_file_loads_with_the_documented_values(void **state)
{
    struct ctl_config cfg;
    char path[4096];
    struct err e;
    const json_t *m;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    err_clear(&e);
    assert_int_equal(ctl_config_defaults(&cfg, &e), 0);
    path_of("manifests/config.yaml", path, sizeof(path));
    if (ctl_config_load_file(&cfg, path, &e) < 0)
        fail_msg("%s", e.msg);
    /* The shipped worker image is the release's, as the controller's own default. */
    assert_string_equal(cfg.worker_image, "plateop/worker:" PLATEOP_VERSION);
    assert_string_equal(json_string_value(json_array_get(cfg.worker_command, 0)),
                        "plateop-worker");
    assert_int_equal(cfg.window, 8);
    assert_int_equal(cfg.succeeded_ttl_s, 600);
    assert_string_equal(cfg.work_mount, "/work");
    assert_int_equal(json_array_size(cfg.volumes), 2);
    assert_non_null(volume(&cfg, "work"));
    assert_non_null(volume(&cfg, "images"));
    /* The work volume is written; the images are only read. */
    m = json_array_get(cfg.mounts, 0);
    assert_string_equal(json_string_value(json_object_get(m, "mountPath")), "/work");
    assert_true(json_is_false(json_object_get(m, "readOnly")));
    m = json_array_get(cfg.mounts, 1);
    assert_string_equal(json_string_value(json_object_get(m, "mountPath")), "/share/images");
    assert_true(json_is_true(json_object_get(m, "readOnly")));
    /* GUI analyses go to the namespace controller.env serves. */
    assert_string_equal(cfg.idb_namespace, "plateop-analyses");
    assert_int_equal(cfg.idb_poll_s, 60);
    ctl_config_release(&cfg);
}

static const json_t *find_kind(const json_t *docs, const char *kind, const char *name)
{
    const json_t *d;
    size_t i;

    json_array_foreach(docs, i, d) {
        if (strcmp(json_string_value(json_object_get(d, "kind")), kind) == 0 &&
            strcmp(json_string_value(json_object_get(json_object_get(d, "metadata"), "name")),
                   name) == 0)
            return d;
    }
    fail_msg("no %s %s", kind, name);
    return NULL;
}

/* Sets the variables of manifests/controller.env as envFrom would. */
static void set_env_file(void)
{
    char path[4096], line[4096];
    FILE *f;

    path_of("manifests/controller.env", path, sizeof(path));
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '=');

        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        assert_non_null(eq);
        *eq = '\0';
        /* Only the controller's own variables belong there. */
        assert_int_equal(strncmp(line, "PLATEOP_", 8), 0);
        setenv(line, eq + 1, 1);
    }
    fclose(f);
}

/*
 * The Deployment's container as the controller would start: its image, its
 * args (with the mounted files' paths swapped for the repository's) and
 * controller.env through ctl_config_load().
 */
static void test_deployment_args_and_environment_are_what_the_controller_reads(void **state)
{
    json_t *docs = load_all("manifests/deployment.yaml");
    const json_t *dep = find_kind(docs, "Deployment", "plateop-controller");
    const json_t *pod = json_object_get(json_object_get(json_object_get(dep, "spec"), "template"),
                                        "spec");
    const json_t *ctr = json_array_get(json_object_get(pod, "containers"), 0), *arg;
    char config_path[4096], *argv[16];
    struct ctl_config cfg;
    struct err e;
    size_t i;
    int argc = 0;

    (void)state;
    assert_int_equal(json_integer_value(json_object_get(json_object_get(dep, "spec"), "replicas")),
                     2);
    assert_string_equal(json_string_value(json_object_get(ctr, "image")),
                        "plateop/controller:" PLATEOP_VERSION);
    path_of("manifests/config.yaml", config_path, sizeof(config_path));
    argv[argc++] = "plateop-controller";
    json_array_foreach(json_object_get(ctr, "args"), i, arg) {
        const char *a = json_string_value(arg);
        struct strbuf sb = STRBUF_INIT;

        assert_true(argc < 15);
        if (strncmp(a, "--config=", 9) == 0) {
            assert_string_equal(a, "--config=/etc/plateop/config/config.yaml");
            strbuf_addf(&sb, "--config=%s", config_path);
            argv[argc++] = strbuf_detach(&sb, NULL);
        } else {
            argv[argc++] = strdup(a);
        }
    }
    argv[argc] = NULL;
    set_env_file();
    setenv("POD_NAME", "plateop-controller-abc12", 1);
    setenv("POD_NAMESPACE", "plateop-system", 1);
    err_clear(&e);
    if (ctl_config_load(&cfg, argc, argv, &e) != 0)
        fail_msg("%s", e.msg);
    assert_string_equal(cfg.listen, "0.0.0.0:8080");
    assert_string_equal(cfg.imagedb_password_file, "/etc/plateop/imagedb/password");
    assert_string_equal(cfg.namespaces, "plateop-analyses");
    assert_int_equal(cfg.workers, 4);
    assert_true(cfg.leader_elect);
    assert_string_equal(cfg.lease_namespace, "plateop-system");
    assert_string_equal(cfg.id, "plateop-controller-abc12");
    assert_non_null(strstr(cfg.imagedb, "postgresql://"));
    ctl_config_release(&cfg);
    for (i = 1; i < (size_t)argc; i++)
        free(argv[i]);
    json_decref(docs);
}

/* Each example Analysis is one the controller accepts, in the served namespace. */
static void test_example_analyses_parse(void **state)
{
    json_t *docs = load_all("manifests/examples/analysis.yaml"), *d;
    size_t i;

    (void)state;
    assert_int_equal(json_array_size(docs), 2);
    json_array_foreach(docs, i, d) {
        struct ana a;
        struct err e;
        json_t *obj = json_deep_copy(d);

        json_object_set_new(json_object_get(obj, "metadata"), "uid",
                            json_string("00000000-0000-0000-0000-000000000001"));
        err_clear(&e);
        if (ana_parse(&a, obj, &e) < 0)
            fail_msg("example %zu: %s", i, e.msg);
        assert_string_equal(a.ns, "plateop-analyses");
        ana_release(&a);
        json_decref(obj);
    }
    json_decref(docs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_crd_spec_field_has_a_description),
        cmocka_unit_test(test_config_file_loads_with_the_documented_values),
        cmocka_unit_test(test_deployment_args_and_environment_are_what_the_controller_reads),
        cmocka_unit_test(test_example_analyses_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
