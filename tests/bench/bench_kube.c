/*
 * bench_kube: the client side of tests/bench/bench_kube.sh.
 *
 *   bench_kube curlcfg NS COUNT PREFIX
 *       prints a curl config (-K) that creates the same COUNT ConfigMaps, byte
 *       for byte, with the same TLS identity (CA, certificate and key files
 *       from $KUBECONFIG), for the `curl --parallel` side
 *   bench_kube create NS COUNT PARALLEL PREFIX
 *       creates COUNT ConfigMaps PREFIX-<i> in NS through one kube_batch with
 *       PARALLEL requests in flight; prints "<seconds> <failed>"
 *   bench_kube informer NS prune|full
 *       holds an informer over the ConfigMaps of NS until synced; prints
 *       "<objects> <peak RSS kB> <seconds to sync>". prune drops each
 *       ConfigMap's data before caching, as the controller does; full keeps it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "informer.h"
#include "kube.h"
#include "kube_config.h"
#include "monotime.h"
#include "strbuf.h"

/* A LoadData-like CSV, so ConfigMaps are the size the controller makes. */
static json_t *configmap(const char *name, int i)
{
    struct strbuf csv = STRBUF_INIT;
    json_t *cm;
    int s;

    strbuf_adds(&csv, "FileName_DNA,PathName_DNA,FileName_RNA,PathName_RNA,Metadata_Well,"
                      "Metadata_Site\n");
    for (s = 1; s <= 4; s++)
        strbuf_addf(&csv, "P1_C%02d_s%d_w1.tif,/data/plates/P1,P1_C%02d_s%d_w2.tif,"
                          "/data/plates/P1,C%02d,%d\n", i % 24 + 1, s, i % 24 + 1, s,
                    i % 24 + 1, s);
    cm = json_pack("{s:s,s:s,s:{s:s,s:{s:s,s:s}},s:{s:s}}", "apiVersion", "v1", "kind",
                   "ConfigMap", "metadata", "name", name, "labels", "plateop.io/analysis",
                   "bench", "plateop.io/batch", name, "data", "loaddata.csv", csv.buf);
    strbuf_release(&csv);
    return cm;
}

static struct kube_client *client(struct kube_config *cfg)
{
    struct kube_error ke;
    struct err e;
    struct kube_client *c;

    if (kube_config_load(cfg, NULL, NULL, &e) < 0) {
        fprintf(stderr, "bench_kube: %s\n", e.msg);
        return NULL;
    }
    c = kube_client_new(cfg, NULL, &ke);
    if (!c)
        fprintf(stderr, "bench_kube: %s\n", ke.err.msg);
    return c;
}

static int cmd_create(struct kube_client *c, const char *ns, int count, int parallel,
                      const char *prefix)
{
    struct kube_request req = { .verb = KUBE_POST, .res = KUBE_RES_CONFIGMAPS };
    struct kube_batch *b;
    struct kube_error ke;
    char name[128];
    double t0;
    json_t *cm;
    int i, failed;

    req.res.ns = ns;
    t0 = monotime_now();
    b = kube_batch_new(c, parallel, &ke);
    for (i = 0; b && i < count; i++) {
        snprintf(name, sizeof(name), "%s-%d", prefix, i);
        cm = configmap(name, i);
        req.body = cm;
        if (kube_batch_add(b, &req, &ke) < 0) {
            fprintf(stderr, "bench_kube: %s\n", ke.err.msg);
            json_decref(cm);
            kube_batch_free(b);
            return 1;
        }
        json_decref(cm);
    }
    failed = b ? kube_batch_run(b) : count;
    if (failed && b) {
        for (i = 0; i < count; i++) {
            json_t *got = kube_batch_result(b, i, &ke);

            if (!got) {
                fprintf(stderr, "bench_kube: first failure: %s\n", ke.err.msg);
                break;
            }
            json_decref(got);
        }
    }
    printf("%.6f %d\n", monotime_now() - t0, failed);
    kube_batch_free(b);
    return failed ? 1 : 0;
}

static void drop_data(json_t *obj, void *ud)
{
    (void)ud;
    json_object_del(obj, "data");
}

static int cmd_informer(struct kube_client *c, const char *ns, int prune)
{
    static const char *const labels[] = { "plateop.io/analysis", NULL };
    struct informer_opts o = { .res = KUBE_RES_CONFIGMAPS, .index_labels = labels,
                               .transform = prune ? drop_data : NULL };
    struct kube_error ke;
    struct informer *inf;
    struct rusage ru;
    double t0 = monotime_now(), secs;
    size_t n;

    o.res.ns = ns;
    inf = informer_new(c, &o, &ke);
    if (!inf || informer_start(inf, &ke) < 0) {
        fprintf(stderr, "bench_kube: %s\n", ke.err.msg);
        informer_free(inf);
        return 1;
    }
    if (informer_wait_synced(inf, 600000) < 0) {
        fprintf(stderr, "bench_kube: informer did not sync\n");
        informer_free(inf);
        return 1;
    }
    secs = monotime_now() - t0;
    n = informer_count(inf);
    getrusage(RUSAGE_SELF, &ru);
    printf("%zu %ld %.3f\n", n, ru.ru_maxrss, secs);
    informer_free(inf);
    return 0;
}

/* Writes s as a double-quoted curl config string. */
static void put_quoted(struct strbuf *out, const char *s)
{
    strbuf_addch(out, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            strbuf_addch(out, '\\');
        strbuf_addch(out, *s);
    }
    strbuf_addch(out, '"');
}

static int cmd_curlcfg(const char *ns, int count, const char *prefix)
{
    struct kube_res res = KUBE_RES_CONFIGMAPS;
    struct strbuf out = STRBUF_INIT, path = STRBUF_INIT;
    struct kube_config cfg;
    struct kube_error ke;
    struct err e;
    char name[128], *body;
    json_t *cm;
    int i, rc = 1;

    err_clear(&e);
    if (kube_config_load(&cfg, NULL, NULL, &e) < 0 || !cfg.ca_file || !cfg.cert_file
        || !cfg.key_file) {
        fprintf(stderr, "bench_kube: need a kubeconfig with CA, certificate and key files%s%s\n",
                err_isset(&e) ? ": " : "", e.msg);
        goto out;
    }
    res.ns = ns;
    if (kube_res_path(&path, &res, NULL, 0, &ke) < 0)
        goto out;
    for (i = 0; i < count; i++) {
        snprintf(name, sizeof(name), "%s-%d", prefix, i);
        cm = configmap(name, i);
        body = json_dumps(cm, JSON_COMPACT);
        /* "next" separates requests; a trailing one would be an empty request. */
        strbuf_addf(&out, "%surl = \"%s%s\"\ndata = ", i ? "next\n" : "", cfg.server,
                    path.buf);
        put_quoted(&out, body);
        strbuf_addf(&out, "\nheader = \"Content-Type: application/json\"\n"
                          "header = \"Accept: application/json\"\n"
                          "cacert = \"%s\"\ncert = \"%s\"\nkey = \"%s\"\n"
                          "output = \"/dev/null\"\nwrite-out = \"%%{http_code}\\n\"\n",
                    cfg.ca_file, cfg.cert_file, cfg.key_file);
        free(body);
        json_decref(cm);
    }
    fwrite(out.buf, 1, out.len, stdout);
    rc = 0;
out:
    strbuf_release(&out);
    strbuf_release(&path);
    kube_config_release(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    int create = argc == 6 && strcmp(argv[1], "create") == 0;
    int informer = argc == 4 && strcmp(argv[1], "informer") == 0;
    struct kube_config cfg = { 0 };
    struct kube_client *c;
    int rc = 1;

    if (argc == 5 && strcmp(argv[1], "curlcfg") == 0)
        return cmd_curlcfg(argv[2], atoi(argv[3]), argv[4]);
    if (!create && !informer) {
        fprintf(stderr, "usage: bench_kube curlcfg NS COUNT PREFIX | create NS COUNT PARALLEL PREFIX | "
                        "informer NS prune|full\n");
        return 2;
    }
    c = client(&cfg);
    if (c && create)
        rc = cmd_create(c, argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
    else if (c)
        rc = cmd_informer(c, argv[2], strcmp(argv[3], "prune") == 0);
    kube_client_free(c);
    kube_config_release(&cfg);
    return rc;
}
