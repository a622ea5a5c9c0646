/* config: controller flags, environment and configuration file; see config.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strbuf.h"
#include "version.h"
#include "yamljson.h"

#define DEFAULT_WORKER_IMAGE "plateop/worker:" PLATEOP_VERSION

struct flag {
    const char *name;
    const char *env;
    const char *help;
};

static const struct flag flags[] = {
    { "kubeconfig", "KUBECONFIG", "kubeconfig file (default: in-cluster, else ~/.kube/config)" },
    { "namespace", "PLATEOP_NAMESPACES", "namespaces to serve, comma-separated (default: all)" },
    { "imagedb", "PLATEOP_IMAGEDB_URI", "ImageDB libpq conninfo or URI (default: PG* environment)" },
    { "imagedb-password-file", "PLATEOP_IMAGEDB_PASSWORD_FILE", "file holding the ImageDB password" },
    { "config", "PLATEOP_CONFIG", "YAML configuration file (volumes, worker image, window)" },
    { "listen", "PLATEOP_LISTEN", "health and metrics address (default 127.0.0.1:8080; empty: off)" },
    { "workers", "PLATEOP_WORKERS", "concurrent reconciles (default 4)" },
    { "log-level", "PLATEOP_LOG_LEVEL", "debug, info, warn or error (default info)" },
    { "leader-elect", "PLATEOP_LEADER_ELECT", "elect a leader among replicas (default true)" },
    { "lease-namespace", "PLATEOP_LEASE_NAMESPACE", "namespace of the leader Lease" },
    { "id", "PLATEOP_ID", "identity in leader election (default: POD_NAME, else host-pid)" },
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static void usage(FILE *out)
{
    size_t i;

    fputs("usage: plateop-controller [flags]\n\n"
          "Reconciles plateop.io/v1alpha1 Analysis resources: plans well batches from\n"
          "ImageDB, runs one Kubernetes Job per batch under the namespace quota and a\n"
          "window, merges the per-batch tables, and reports status to the Analysis,\n"
          "Events, ImageDB and the logs.\n\nflags (environment variable in brackets):\n",
          out);
    for (i = 0; i < NFLAGS; i++)
        fprintf(out, "  --%-24s %s [%s]\n", flags[i].name, flags[i].help, flags[i].env);
    fputs("  --help, --version\n", out);
}

static int set_str(char **dst, const char *v, struct err *e)
{
    char *dup = strdup(v);

    if (!dup)
        return err_set(e, ENOMEM, "out of memory");
    free(*dst);
    *dst = dup;
    return 0;
}

static int parse_int(const char *what, const char *v, int min, int max, int *out, struct err *e)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return err_set(e, EINVAL, "%s: '%s' is not a number from %d to %d", what, v, min, max);
    *out = (int)n;
    return 0;
}

static int parse_bool(const char *what, const char *v, int *out, struct err *e)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
        *out = 0;
    else
        return err_set(e, EINVAL, "%s: '%s' is not true or false", what, v);
    return 0;
}

/* Applies one setting, whether it came from a flag or the environment. */
static int apply(struct ctl_config *cfg, size_t i, const char *v, struct err *e)
{
    const char *name = flags[i].name;

    switch (i) {
    case 0: return set_str(&cfg->kubeconfig, v, e);
    case 1: return set_str(&cfg->namespaces, v, e);
    case 2: return set_str(&cfg->imagedb, v, e);
    case 3: return set_str(&cfg->imagedb_password_file, v, e);
    case 4: return set_str(&cfg->config_path, v, e);
    case 5: return set_str(&cfg->listen, v, e);
    case 6: return parse_int("--workers", v, 1, 64, &cfg->workers, e);
    case 7:
        if (log_parse_level(v, &cfg->log_level) < 0)
            return err_set(e, EINVAL, "--log-level: '%s' is not debug, info, warn or error", v);
        return 0;
    case 8: return parse_bool("--leader-elect", v, &cfg->leader_elect, e);
    case 9: return set_str(&cfg->lease_namespace, v, e);
    case 10: return set_str(&cfg->id, v, e);
    }
    return err_set(e, EINVAL, "--%s: not handled", name);
}

static json_t *default_security(void)
{
    return json_pack("{s:b,s:i,s:i,s:i}", "runAsNonRoot", 1, "runAsUser", 1000,
                     "runAsGroup", 1000, "fsGroup", 1000);
}

int ctl_config_defaults(struct ctl_config *cfg, struct err *e)
{
    json_decref(cfg->worker_command);
    json_decref(cfg->worker_env);
    json_decref(cfg->volumes);
    json_decref(cfg->mounts);
    json_decref(cfg->pod_security);
    json_decref(cfg->idb_worker_images);
    cfg->worker_command = json_pack("[s]", "plateop-worker");
    cfg->worker_env = json_object();
    cfg->volumes = json_array();
    cfg->mounts = json_array();
    cfg->pod_security = default_security();
    cfg->idb_worker_images = json_object();
    cfg->idb_poll_s = 60;
    cfg->window = 8;
    cfg->succeeded_ttl_s = 600;
    cfg->merge_deadline_s = 6 * 3600;
    cfg->missing_dep_grace_s = 600;
    if (set_str(&cfg->worker_image, DEFAULT_WORKER_IMAGE, e) < 0 ||
        set_str(&cfg->work_mount, "/work", e) < 0)
        return -1;
    if (!cfg->worker_command || !cfg->worker_env || !cfg->volumes || !cfg->mounts ||
        !cfg->pod_security || !cfg->idb_worker_images)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/*
 * Turns {name, mountPath, hostPath | claimName, readOnly} into a pod volume
 * and a volumeMount, appended to cfg.
 */
static int add_volume(struct ctl_config *cfg, const json_t *v, const char *def_name,
                      int def_ro, const char *what, struct err *e)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *mount = json_string_value(json_object_get(v, "mountPath"));
    const char *host = json_string_value(json_object_get(v, "hostPath"));
    const char *claim = json_string_value(json_object_get(v, "claimName"));
    const json_t *ro = json_object_get(v, "readOnly");
    int read_only = ro ? json_is_true(ro) : def_ro;
    json_t *vol, *mnt;

    if (!json_is_object(v))
        return err_set(e, EINVAL, "%s: must be a mapping", what);
    if (!name)
        name = def_name;
    if (!name || !*name)
        return err_set(e, EINVAL, "%s: name is required", what);
    if (!mount || mount[0] != '/')
        return err_set(e, EINVAL, "%s: mountPath must be an absolute path", what);
    if (!host == !claim)
        return err_set(e, EINVAL, "%s: give exactly one of hostPath and claimName", what);
    if (host)
        vol = json_pack("{s:s,s:{s:s}}", "name", name, "hostPath", "path", host);
    else
        vol = json_pack("{s:s,s:{s:s,s:b}}", "name", name, "persistentVolumeClaim",
                        "claimName", claim, "readOnly", read_only);
    mnt = json_pack("{s:s,s:s,s:b}", "name", name, "mountPath", mount, "readOnly", read_only);
    if (!vol || !mnt || json_array_append_new(cfg->volumes, vol) < 0 ||
        json_array_append_new(cfg->mounts, mnt) < 0)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/* The imagedb: mapping (see config.h). */
static int load_imagedb(struct ctl_config *cfg, json_t *idb, struct err *e)
{
    json_t *v, *img;
    const char *key;

    if (!json_is_object(idb))
        return err_set(e, EINVAL, "imagedb: must be a mapping");
    json_object_foreach(idb, key, v) {
        if (strcmp(key, "namespace") != 0 && strcmp(key, "workerImages") != 0 &&
            strcmp(key, "pollSeconds") != 0)
            return err_set(e, EINVAL, "imagedb: unknown setting '%s'", key);
    }
    if ((v = json_object_get(idb, "namespace"))) {
        if (!json_is_string(v) || !*json_string_value(v))
            return err_set(e, EINVAL, "imagedb.namespace: must be a namespace name");
        if (set_str(&cfg->idb_namespace, json_string_value(v), e) < 0)
            return -1;
    }
    if ((v = json_object_get(idb, "workerImages"))) {
        if (!json_is_object(v))
            return err_set(e, EINVAL, "imagedb.workerImages: must map CellProfiler versions "
                                      "to worker images");
        json_object_foreach(v, key, img) {
            if (!json_is_string(img) || !*json_string_value(img))
                return err_set(e, EINVAL, "imagedb.workerImages.%s: must be an image", key);
        }
        json_decref(cfg->idb_worker_images);
        cfg->idb_worker_images = json_incref(v);
    }
    if ((v = json_object_get(idb, "pollSeconds"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 86400)
            return err_set(e, EINVAL, "imagedb.pollSeconds: must be a number from 1 to 86400");
        cfg->idb_poll_s = (int)json_integer_value(v);
    }
    return 0;
}

static int check_string_array(const json_t *v, const char *what, struct err *e)
{
    const json_t *item;
    size_t i;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(e, EINVAL, "%s: must be a non-empty list of strings", what);
    json_array_foreach(v, i, item) {
        if (!json_is_string(item))
            return err_set(e, EINVAL, "%s[%zu]: must be a string", what, i);
    }
    return 0;
}

/* An optional whole number of seconds, min..one year, from doc[key] into *out. */
static int seconds_at(const json_t *doc, const char *key, int min, int *out, struct err *e)
{
    const json_t *v = json_object_get(doc, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > 366 * 86400)
        return err_set(e, EINVAL, "%s: must be a number of seconds from %d to %d", key, min,
                       366 * 86400);
    *out = (int)json_integer_value(v);
    return 0;
}

int ctl_config_load_file(struct ctl_config *cfg, const char *path, struct err *e)
{
    json_t *doc, *worker, *v, *work, *imgs;
    const char *key;
    size_t i;
    int rc = -1;

    doc = yamljson_load_file(path, e);
    if (!doc)
        return -1;
    if (json_is_null(doc)) {
        rc = 0;
        goto out;
    }
    if (!json_is_object(doc)) {
        err_set(e, EINVAL, "%s: must be a mapping of settings", path);
        goto out;
    }
    json_object_foreach(doc, key, v) {
        static const char *const known[] = { "worker", "window", "succeededJobTTLSeconds",
                                             "mergeDeadlineSeconds",
                                             "missingDependencyGraceSeconds", "workVolume",
                                             "imageVolumes", "podSecurityContext", "imagedb",
                                             NULL };
        const char *const *k;

        for (k = known; *k && strcmp(*k, key); k++)
            ;
        if (!*k) {
            err_set(e, EINVAL, "%s: unknown setting '%s'", path, key);
            goto out;
        }
    }
    worker = json_object_get(doc, "worker");
    if ((v = json_object_get(worker, "image"))) {
        if (!json_is_string(v) || set_str(&cfg->worker_image, json_string_value(v), e) < 0) {
            err_set(e, EINVAL, "%s: worker.image must be a string", path);
            goto out;
        }
    }
    if ((v = json_object_get(worker, "command"))) {
        if (check_string_array(v, "worker.command", e) < 0)
            goto prefix;
        json_decref(cfg->worker_command);
        cfg->worker_command = json_incref(v);
    }
    if ((v = json_object_get(worker, "env"))) {
        json_t *val;

        if (!json_is_object(v)) {
            err_set(e, EINVAL, "worker.env: must be a mapping of names to values");
            goto prefix;
        }
        json_object_foreach(v, key, val) {
            if (!json_is_string(val) && !json_is_number(val)) {
                err_set(e, EINVAL, "worker.env.%s: must be a string", key);
                goto prefix;
            }
        }
        json_decref(cfg->worker_env);
        cfg->worker_env = json_incref(v);
    }
    if ((v = json_object_get(doc, "window"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000) {
            err_set(e, EINVAL, "window: must be a number from 0 (no window) to 100000");
            goto prefix;
        }
        cfg->window = (int)json_integer_value(v);
    }
    if (seconds_at(doc, "succeededJobTTLSeconds", 0, &cfg->succeeded_ttl_s, e) < 0 ||
        seconds_at(doc, "mergeDeadlineSeconds", 1, &cfg->merge_deadline_s, e) < 0 ||
        seconds_at(doc, "missingDependencyGraceSeconds", 0, &cfg->missing_dep_grace_s, e) < 0)
        goto prefix;
    if ((work = json_object_get(doc, "workVolume"))) {
        const char *mount = json_string_value(json_object_get(work, "mountPath"));

        json_array_clear(cfg->volumes);
        json_array_clear(cfg->mounts);
        if (add_volume(cfg, work, "work", 0, "workVolume", e) < 0)
            goto prefix;
        if (set_str(&cfg->work_mount, mount, e) < 0)
            goto prefix;
    }
    if ((imgs = json_object_get(doc, "imageVolumes"))) {
        if (!json_is_array(imgs)) {
            err_set(e, EINVAL, "imageVolumes: must be a list");
            goto prefix;
        }
        json_array_foreach(imgs, i, v) {
            char what[64];

            snprintf(what, sizeof(what), "imageVolumes[%zu]", i);
            if (add_volume(cfg, v, NULL, 1, what, e) < 0)
                goto prefix;
        }
    }
    if ((v = json_object_get(doc, "podSecurityContext"))) {
        if (!json_is_object(v)) {
            err_set(e, EINVAL, "podSecurityContext: must be a mapping");
            goto prefix;
        }
        /* Batch pods run lab-supplied pipelines on shared volumes: never as root. */
        if (!json_is_true(json_object_get(v, "runAsNonRoot"))) {
            err_set(e, EINVAL, "podSecurityContext: must set runAsNonRoot: true (batch pods "
                               "never run as root)");
            goto prefix;
        }
        json_decref(cfg->pod_security);
        cfg->pod_security = json_incref(v);
    }
    if ((v = json_object_get(doc, "imagedb")) && load_imagedb(cfg, v, e) < 0)
        goto prefix;
    rc = 0;
    goto out;
prefix:
    err_prefix(e, "%s", path);
out:
    json_decref(doc);
    return rc;
}

/* Matches "--name", "--name=value"; returns the flag index or -1. */
static int match_flag(const char *arg, const char **inline_value)
{
    size_t i, n;

    if (strncmp(arg, "--", 2) != 0)
        return -1;
    arg += 2;
    for (i = 0; i < NFLAGS; i++) {
        n = strlen(flags[i].name);
        if (strncmp(arg, flags[i].name, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            *inline_value = arg[n] == '=' ? arg + n + 1 : NULL;
            return (int)i;
        }
    }
    return -1;
}

int ctl_config_load(struct ctl_config *cfg, int argc, char **argv, struct err *e)
{
    const char *v;
    size_t i;
    int a;

    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = 4;
    cfg->log_level = LOG_LEVEL_INFO;
    cfg->leader_elect = 1;
    if (ctl_config_defaults(cfg, e) < 0 || set_str(&cfg->listen, "127.0.0.1:8080", e) < 0)
        return -1;
    if (getenv("POD_NAME") && set_str(&cfg->id, getenv("POD_NAME"), e) < 0)
        return -1;
    if (getenv("POD_NAMESPACE") && set_str(&cfg->lease_namespace, getenv("POD_NAMESPACE"), e) < 0)
        return -1;
    /* Environment first, so flags override it. */
    for (i = 0; i < NFLAGS; i++) {
        if ((v = getenv(flags[i].env)) && apply(cfg, i, v, e) < 0)
            return err_prefix(e, "%s", flags[i].env);
    }
    for (a = 1; a < argc; a++) {
        const char *inline_value;
        int f;

        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(argv[a], "--version")) {
            printf("plateop-controller %s\n", PLATEOP_VERSION);
            return 1;
        }
        f = match_flag(argv[a], &inline_value);
        if (f < 0)
            return err_set(e, EINVAL, "unknown argument '%s' (see --help)", argv[a]);
        if (!inline_value) {
            if (a + 1 >= argc)
                return err_set(e, EINVAL, "--%s needs a value", flags[f].name);
            inline_value = argv[++a];
        }
        if (apply(cfg, (size_t)f, inline_value, e) < 0)
            return -1;
    }
    if (cfg->config_path && ctl_config_load_file(cfg, cfg->config_path, e) < 0)
        return -1;
    if (!cfg->lease_namespace && set_str(&cfg->lease_namespace, "default", e) < 0)
        return -1;
    if (!cfg->id) {
        char host[256], id[300];

        if (gethostname(host, sizeof(host)) < 0)
            snprintf(host, sizeof(host), "plateop");
        host[sizeof(host) - 1] = '\0';
        snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
        if (set_str(&cfg->id, id, e) < 0)
            return -1;
    }
    return 0;
}

void ctl_config_release(struct ctl_config *cfg)
{
    free(cfg->kubeconfig);
    free(cfg->namespaces);
    free(cfg->imagedb);
    free(cfg->imagedb_password_file);
    free(cfg->config_path);
    free(cfg->listen);
    free(cfg->lease_namespace);
    free(cfg->id);
    free(cfg->worker_image);
    free(cfg->work_mount);
    json_decref(cfg->worker_command);
    json_decref(cfg->worker_env);
    json_decref(cfg->volumes);
    json_decref(cfg->mounts);
    json_decref(cfg->pod_security);
    free(cfg->idb_namespace);
    json_decref(cfg->idb_worker_images);
    memset(cfg, 0, sizeof(*cfg));
}
