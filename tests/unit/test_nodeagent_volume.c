/*
 * Unit tests for the node agent's volume module: ConfigMap and Secret
 * volumes written with items, modes and optional; emptyDir; hostPath
 * types; claims through the volume map and through a bound hostPath
 * PersistentVolume; errors naming the volume.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakeget.h"
#include "fileutil.h"
#include "../../hack/nodeagent/fsutil.h"
#include "../../hack/nodeagent/volume.h"

struct fixture {
    char dir[64];
    json_t *objs;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/na-volume.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->objs = json_pack(
        "{s:{s:{s:s, s:s}, s:{s:s}}, s:{s:{s:s}},"
        " s:{s:{s:s}}, s:{s:{s:{s:s}}}, s:{s:{s:s}}}",
        "configmaps/ns1/cfg", "data", "a.txt", "alpha", "b.txt", "beta", "binaryData", "bin",
        "AAE=",
        "secrets/ns1/sec", "data", "password", "czNjcmV0",
        "persistentvolumeclaims/ns1/bound", "spec", "volumeName", "pv1",
        "persistentvolumes//pv1", "spec", "hostPath", "path", "/srv/pv1",
        "persistentvolumeclaims/ns1/unbound", "spec", "storageClassName", "x");
    *state = f;
    return f->objs ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    fileutil_rm_rf(f->dir, NULL);
    json_decref(f->objs);
    free(f);
    return 0;
}

/* Prepares a pod in namespace ns1 whose spec.volumes is `volumes` (JSON). */
static int prepare(struct fixture *f, const char *volumes, const char *map, struct vol_set *vs,
                   struct err *e)
{
    struct podspec_getter get = { fakeget_get, f->objs };
    json_error_t je;
    json_t *vols = json_loads(volumes, 0, &je), *pod;
    int rc;

    assert_non_null(vols);
    pod = json_pack("{s:{s:s, s:s}, s:{s:o}}", "metadata", "name", "p", "namespace", "ns1",
                    "spec", "volumes", vols);
    rc = vol_prepare(vs, pod, f->dir, map, &get, e);
    json_decref(pod);
    return rc;
}

static char *slurp(const char *dir, const char *rel)
{
    struct strbuf path = STRBUF_INIT, sb = STRBUF_INIT;

    strbuf_addf(&path, "%s/%s", dir, rel);
    if (fileutil_read(path.buf, &sb, 1 << 16, NULL) < 0)
        strbuf_adds(&sb, "<missing>");
    strbuf_release(&path);
    return strbuf_detach(&sb, NULL);
}

static void check_file(const char *dir, const char *rel, const char *want, int mode)
{
    struct strbuf path = STRBUF_INIT;
    char *got = slurp(dir, rel);
    struct stat st;

    assert_string_equal(got, want);
    strbuf_addf(&path, "%s/%s", dir, rel);
    assert_int_equal(stat(path.buf, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
    strbuf_release(&path);
    free(got);
}

static void test_configmap_and_secret(void **state)
{
    struct fixture *f = *state;
    struct vol_set vs;
    struct err e;
    const char *cfg, *items, *sec;
    char *bin;

    assert_int_equal(
        prepare(f,
                "[{\"name\":\"cfg\",\"configMap\":{\"name\":\"cfg\"}},"
                " {\"name\":\"items\",\"configMap\":{\"name\":\"cfg\",\"defaultMode\":384,"
                "   \"items\":[{\"key\":\"a.txt\",\"path\":\"deep/er/a\"},"
                "              {\"key\":\"b.txt\",\"path\":\"b\",\"mode\":256}]}},"
                " {\"name\":\"sec\",\"secret\":{\"secretName\":\"sec\"}},"
                " {\"name\":\"opt\",\"configMap\":{\"name\":\"absent\",\"optional\":true}}]",
                NULL, &vs, &e),
        0);
    assert_int_equal(vs.n, 4);
    cfg = vol_find(&vs, "cfg");
    items = vol_find(&vs, "items");
    sec = vol_find(&vs, "sec");
    assert_non_null(strstr(cfg, "/volumes/cfg"));
    check_file(cfg, "a.txt", "alpha", 0644);
    check_file(cfg, "b.txt", "beta", 0644);
    bin = slurp(cfg, "bin");
    assert_memory_equal(bin, "\x00\x01", 2);
    free(bin);
    check_file(items, "deep/er/a", "alpha", 0600);
    check_file(items, "b", "beta", 0400);
    bin = slurp(items, "a.txt");
    assert_string_equal(bin, "<missing>");
    free(bin);
    check_file(sec, "password", "s3cret", 0644);
    assert_null(vol_find(&vs, "nope"));
    vol_set_free(&vs);
}

static void test_empty_dir_is_fresh_and_open(void **state)
{
    struct fixture *f = *state;
    struct strbuf stale = STRBUF_INIT;
    struct vol_set vs;
    struct stat st;
    struct err e;

    strbuf_addf(&stale, "%s/volumes/scratch", f->dir);
    assert_int_equal(fileutil_mkdir_p(stale.buf, &e), 0);
    strbuf_adds(&stale, "/old");
    assert_int_equal(fsutil_write_file(stale.buf, "x", 1, 0644, &e), 0);
    assert_int_equal(prepare(f, "[{\"name\":\"scratch\",\"emptyDir\":{}}]", NULL, &vs, &e), 0);
    assert_int_equal(stat(vol_find(&vs, "scratch"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0777);
    assert_int_equal(access(stale.buf, F_OK), -1);
    vol_set_free(&vs);
    strbuf_release(&stale);
}

static void test_host_path_types(void **state)
{
    struct fixture *f = *state;
    struct strbuf json = STRBUF_INIT;
    struct vol_set vs;
    struct stat st;
    struct err e;

    strbuf_addf(&json,
                "[{\"name\":\"made\",\"hostPath\":{\"path\":\"%s/made/here\","
                "  \"type\":\"DirectoryOrCreate\"}},"
                " {\"name\":\"plain\",\"hostPath\":{\"path\":\"%s\"}}]",
                f->dir, f->dir);
    assert_int_equal(prepare(f, json.buf, NULL, &vs, &e), 0);
    assert_int_equal(stat(vol_find(&vs, "made"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_string_equal(vol_find(&vs, "plain"), f->dir);
    vol_set_free(&vs);
    strbuf_release(&json);
}

static void test_claims(void **state)
{
    struct fixture *f = *state;
    struct strbuf map = STRBUF_INIT;
    struct vol_set vs;
    struct err e;
    const char *text = "# claims of the demo\n"
                       "\n"
                       "  data = /srv/data  \n"
                       "ns1/data=/srv/ns1-data\n"
                       "other=/srv/other\n"
                       "malformed line\n";

    strbuf_addf(&map, "%s/map", f->dir);
    assert_int_equal(fsutil_write_file(map.buf, text, strlen(text), 0644, &e), 0);
    assert_int_equal(
        prepare(f,
                "[{\"name\":\"d\",\"persistentVolumeClaim\":{\"claimName\":\"data\"}},"
                " {\"name\":\"o\",\"persistentVolumeClaim\":{\"claimName\":\"other\"}},"
                " {\"name\":\"b\",\"persistentVolumeClaim\":{\"claimName\":\"bound\"}}]",
                map.buf, &vs, &e),
        0);
    assert_string_equal(vol_find(&vs, "d"), "/srv/ns1-data");
    assert_string_equal(vol_find(&vs, "o"), "/srv/other");
    assert_string_equal(vol_find(&vs, "b"), "/srv/pv1");
    vol_set_free(&vs);
    strbuf_release(&map);
}

/* Each of these pods cannot have its volumes: a config error naming the volume and why. */
static void test_config_errors(void **state)
{
    static const struct { const char *json; const char *says; } cases[] = {
        { "[{\"name\":\"c\",\"configMap\":{\"name\":\"absent\"}}]",
          "volume c: configmap not found: absent" },
        { "[{\"name\":\"c\",\"configMap\":{\"name\":\"cfg\",\"items\":[{\"key\":\"zz\","
          "\"path\":\"z\"}]}}]",
          "volume c: no such key: zz" },
        { "[{\"name\":\"c\",\"configMap\":{\"name\":\"cfg\",\"items\":[{\"key\":\"a.txt\","
          "\"path\":\"../escape\"}]}}]",
          "must be relative" },
        { "[{\"name\":\"s\",\"secret\":{\"secretName\":\"absent\"}}]",
          "volume s: secret not found: absent" },
        { "[{\"name\":\"h\",\"hostPath\":{\"path\":\"/nonexistent/na\",\"type\":\"Directory\"}}]",
          "volume h: hostPath does not exist" },
        { "[{\"name\":\"u\",\"persistentVolumeClaim\":{\"claimName\":\"unbound\"}}]",
          "volume u: claim is not bound" },
        { "[{\"name\":\"g\",\"persistentVolumeClaim\":{\"claimName\":\"ghost\"}}]",
          "volume g: claim not found: ghost" },
        { "[{\"name\":\"n\",\"nfs\":{\"server\":\"x\",\"path\":\"/\"}}]",
          "volume n: volume type not supported" },
        { "[{\"name\":\"../x\",\"emptyDir\":{}}]", "invalid volume name" },
    };
    struct fixture *f = *state;
    struct vol_set vs;
    struct err e;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err_clear(&e);
        assert_int_equal(prepare(f, cases[i].json, NULL, &vs, &e), -1);
        assert_int_equal(e.code, PODSPEC_ECONFIG);
        if (!strstr(e.msg, cases[i].says))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, e.msg, cases[i].says);
        assert_int_equal(vs.n, 0);
    }
}

static void test_missing_map_file_is_an_error(void **state)
{
    struct strbuf out = STRBUF_INIT;
    struct err e;

    (void)state;
    assert_int_equal(vol_map_lookup("/nonexistent/map", "ns", "c", &out, &e), -1);
    assert_non_null(strstr(e.msg, "volume map"));
    strbuf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_configmap_and_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_dir_is_fresh_and_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_path_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test(test_missing_map_file_is_an_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
