/* objects: ConfigMaps and Jobs of an Analysis; see objects.h. */
#include "objects.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"

void obj_name(const char *base, const char *suffix, char *out)
{
    size_t blen = strlen(base), slen = suffix ? strlen(suffix) + 1 : 0;
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t keep;

    if (blen + slen <= OBJ_NAME_MAX) {
        snprintf(out, OBJ_NAME_MAX + 1, "%s%s%s", base, suffix ? "-" : "", suffix ? suffix : "");
        return;
    }
    SHA256((const unsigned char *)base, blen, md);
    keep = OBJ_NAME_MAX - slen - 9;
    /* A name must not end in '-' before the hash is added. */
    while (keep > 0 && base[keep - 1] == '-')
        keep--;
    snprintf(out, OBJ_NAME_MAX + 1, "%.*s-%02x%02x%02x%02x%s%s", (int)keep, base, md[0], md[1],
             md[2], md[3], suffix ? "-" : "", suffix ? suffix : "");
}

void obj_analysis_label(const char *name, char *out)
{
    obj_name(name, NULL, out);
}

/*
 * A label-safe rendering of a well list: "C03" or "C03.C04" when it fits,
 * else "C03-to-E03" (the annotation keeps the full list).
 */
static void wells_label(const char *wells, char *out)
{
    const char *last;
    size_t n = strlen(wells), i;

    if (n <= OBJ_NAME_MAX) {
        for (i = 0; i < n; i++)
            out[i] = wells[i] == ',' ? '.' : wells[i];
        out[n] = '\0';
        return;
    }
    last = strrchr(wells, ',');
    snprintf(out, OBJ_NAME_MAX + 1, "%.*s-to-%s", (int)strcspn(wells, ","), wells,
             last ? last + 1 : "");
}

static json_t *owner_refs(const struct ana *a)
{
    return json_pack("[{s:s,s:s,s:s,s:s,s:b,s:b}]", "apiVersion", "plateop.io/v1alpha1",
                     "kind", "Analysis", "name", a->name, "uid", a->uid, "controller", 1,
                     "blockOwnerDeletion", 1);
}

static json_t *labels(const struct ana *a, const char *role, const struct obj_batch *b)
{
    char an[OBJ_NAME_MAX + 1], wl[OBJ_NAME_MAX + 1];
    json_t *l;

    obj_analysis_label(a->name, an);
    l = json_pack("{s:s,s:s,s:s}", OBJ_LABEL_ANALYSIS, an, OBJ_LABEL_ROLE, role,
                  "app.kubernetes.io/managed-by", "plateop");
    if (l && b) {
        wells_label(b->wells, wl);
        json_object_set_new(l, OBJ_LABEL_BATCH, json_string(b->id));
        json_object_set_new(l, OBJ_LABEL_WELLS, json_string(wl));
    }
    return l;
}

static json_t *metadata(const struct ana *a, const char *name, const char *role,
                        const struct obj_batch *b)
{
    json_t *m = json_pack("{s:s,s:s,s:o,s:o}", "name", name, "namespace", a->ns, "labels",
                          labels(a, role, b), "ownerReferences", owner_refs(a));

    if (m && b) {
        char num[32];
        json_t *ann = json_object();

        json_object_set_new(ann, OBJ_ANN_WELLS, json_string(b->wells));
        json_object_set_new(ann, OBJ_ANN_HASH, json_string(b->hash));
        snprintf(num, sizeof(num), "%ld", b->index);
        json_object_set_new(ann, OBJ_ANN_INDEX, json_string(num));
        snprintf(num, sizeof(num), "%ld", b->sets);
        json_object_set_new(ann, OBJ_ANN_SETS, json_string(num));
        if (b->memory)
            json_object_set_new(ann, OBJ_ANN_MEMORY, json_string(b->memory));
        json_object_set_new(m, "annotations", ann);
    }
    return m;
}

json_t *obj_batch_configmap(const struct ana *a, const struct obj_batch *b, const char *csv,
                            size_t csv_len)
{
    char name[OBJ_NAME_MAX + 1];

    obj_name(a->name, b->id, name);
    return json_pack("{s:s,s:s,s:o,s:{s:s%}}", "apiVersion", "v1", "kind", "ConfigMap",
                     "metadata", metadata(a, name, "batch", b), "data", OBJ_CSV_KEY, csv,
                     csv_len);
}

void obj_output_dir(const struct ana *a, const struct ctl_config *cfg, const char *leaf,
                    struct strbuf *out)
{
    strbuf_addf(out, "%s/%s/%s", cfg->work_mount, a->output, leaf);
}

static void env_add(json_t *env, const char *name, const char *value)
{
    json_array_append_new(env, json_pack("{s:s,s:s}", "name", name, "value", value));
}

/* The configured extra environment, then the Job's own settings. */
static json_t *worker_env(const struct ana *a, const struct ctl_config *cfg)
{
    json_t *env = json_array(), *v;
    const char *key;
    char ak[300];

    json_object_foreach(cfg->worker_env, key, v) {
        char num[64];

        if (json_is_string(v)) {
            env_add(env, key, json_string_value(v));
        } else {
            snprintf(num, sizeof(num), "%g", json_number_value(v));
            env_add(env, key, num);
        }
    }
    ana_key(a, ak, sizeof(ak));
    env_add(env, "PLATEOP_ANALYSIS", ak);
    return env;
}

/* The pod template shared by batch and merge Jobs. */
static json_t *pod_template(const struct ana *a, const struct ctl_config *cfg, json_t *labels_,
                            json_t *args, json_t *env, json_t *resources, json_t *extra_volume,
                            json_t *extra_mount)
{
    json_t *volumes = json_deep_copy(cfg->volumes), *mounts = json_deep_copy(cfg->mounts);
    json_t *container;

    /* Pods are owned by their Job: the uid ties them to this Analysis. */
    json_object_set_new(labels_, OBJ_LABEL_UID, json_string(a->uid));

    if (extra_volume) {
        json_array_append_new(volumes, extra_volume);
        json_array_append_new(mounts, extra_mount);
    }
    container = json_pack("{s:s,s:s,s:O,s:o,s:o,s:o,s:s,s:{s:b,s:{s:[s]}}}",
                          "name", "worker", "image", a->image ? a->image : cfg->worker_image,
                          "command", cfg->worker_command, "args", args, "env", env,
                          "volumeMounts", mounts,
                          "terminationMessagePolicy", "FallbackToLogsOnError",
                          "securityContext", "allowPrivilegeEscalation", 0,
                          "capabilities", "drop", "ALL");
    if (container && resources)
        json_object_set_new(container, "resources", resources);
    return json_pack("{s:{s:o,s:{s:s}},s:{s:s,s:O,s:[o],s:o}}", "metadata", "labels", labels_,
                     "annotations", OBJ_ANN_ANALYSIS, a->name, "spec",
                     "restartPolicy", "Never", "securityContext", cfg->pod_security,
                     "containers", container, "volumes", volumes);
}

static json_t *jpath_labels(json_t *obj)
{
    return json_object_get(json_object_get(obj, "metadata"), "labels");
}

json_t *obj_batch_job(const struct ana *a, const struct ctl_config *cfg, const struct obj_batch *b)
{
    char name[OBJ_NAME_MAX + 1], cm[OBJ_NAME_MAX + 1], num[32], suffix[32];
    struct strbuf out = STRBUF_INIT, pipeline = STRBUF_INIT;
    json_t *env, *args, *resources = NULL, *job = NULL, *v;
    size_t i;

    obj_name(a->name, b->id, cm);
    snprintf(suffix, sizeof(suffix), "%s-m%d", b->id, b->attempt);
    obj_name(a->name, b->attempt ? suffix : b->id, name);
    obj_output_dir(a, cfg, "batches/", &out);
    strbuf_adds(&out, b->id);
    if (a->pipeline[0] == '/')
        strbuf_adds(&pipeline, a->pipeline);
    else
        strbuf_addf(&pipeline, "%s/%s", cfg->work_mount, a->pipeline);

    env = worker_env(a, cfg);
    env_add(env, "PLATEOP_BATCH", b->id);
    env_add(env, "PLATEOP_WELLS", b->wells);
    env_add(env, "PLATEOP_INPUT_HASH", b->hash);
    env_add(env, "PLATEOP_PIPELINE", pipeline.buf);
    env_add(env, "PLATEOP_DATA_FILE", "/plateop/input/" OBJ_CSV_KEY);
    env_add(env, "PLATEOP_OUTPUT_DIR", out.buf);
    snprintf(num, sizeof(num), "%d", a->timeout_s);
    env_add(env, "PLATEOP_TIMEOUT", num);

    args = json_pack("[s]", "run");
    if (a->cp_args && json_array_size(a->cp_args)) {
        json_array_append_new(args, json_string("--"));
        json_array_foreach(a->cp_args, i, v)
            json_array_append(args, v);
    }
    if (a->resources)
        resources = json_deep_copy(a->resources);
    if (b->memory) {
        if (!resources)
            resources = json_object();
        if (!json_object_get(resources, "limits"))
            json_object_set_new(resources, "limits", json_object());
        json_object_set_new(json_object_get(resources, "limits"), "memory", json_string(b->memory));
        /* A request above the escalated limit would be rejected. */
        if (json_object_get(resources, "requests"))
            json_object_del(json_object_get(resources, "requests"), "memory");
    }
    job = json_pack("{s:s,s:s,s:o,s:{s:i,s:i,s:o}}", "apiVersion", "batch/v1", "kind", "Job",
                    "metadata", metadata(a, name, "batch", b), "spec",
                    "backoffLimit", a->retries,
                    /* The worker enforces the timeout; this is the backstop. */
                    "activeDeadlineSeconds", (json_int_t)a->timeout_s * (a->retries + 1) + 120,
                    "template",
                    pod_template(a, cfg, labels(a, "batch", b), args, env, resources,
                                 json_pack("{s:s,s:{s:s}}", "name", "plateop-input",
                                           "configMap", "name", cm),
                                 json_pack("{s:s,s:s,s:b}", "name", "plateop-input",
                                           "mountPath", "/plateop/input", "readOnly", 1)));
    if (job) {
        snprintf(num, sizeof(num), "%d", b->attempt);
        json_object_set_new(jpath_labels(job), OBJ_LABEL_ATTEMPT, json_string(num));
    }
    strbuf_release(&out);
    strbuf_release(&pipeline);
    return job;
}

json_t *obj_merge_job(const struct ana *a, const struct ctl_config *cfg, const json_t *failed)
{
    char name[OBJ_NAME_MAX + 1];
    struct strbuf root = STRBUF_INIT, dest = STRBUF_INIT;
    json_t *env, *job;
    char *failed_json = NULL;

    obj_name(a->name, "merge", name);
    obj_output_dir(a, cfg, "batches", &root);
    obj_output_dir(a, cfg, "results", &dest);
    env = worker_env(a, cfg);
    env_add(env, "PLATEOP_MERGE_ROOT", root.buf);
    env_add(env, "PLATEOP_OUTPUT_DIR", dest.buf);
    if (failed && json_array_size(failed)) {
        failed_json = json_dumps(failed, JSON_COMPACT);
        if (failed_json)
            env_add(env, "PLATEOP_FAILED_BATCHES", failed_json);
    }
    /* A hung merge must fail the Analysis (MergeFailed), not leave it Merging forever. */
    job = json_pack("{s:s,s:s,s:o,s:{s:i,s:i,s:o}}", "apiVersion", "batch/v1", "kind", "Job",
                    "metadata", metadata(a, name, "merge", NULL), "spec", "backoffLimit", 1,
                    "activeDeadlineSeconds", cfg->merge_deadline_s, "template",
                    pod_template(a, cfg, labels(a, "merge", NULL), json_pack("[s]", "merge"),
                                 env, NULL, NULL, NULL));
    free(failed_json);
    strbuf_release(&root);
    strbuf_release(&dest);
    return job;
}

static const char *meta_str(const json_t *obj, const char *field, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(obj, "metadata"), field), key));
}

const char *obj_label(const json_t *obj, const char *key)
{
    return meta_str(obj, "labels", key);
}

const char *obj_annotation(const json_t *obj, const char *key)
{
    return meta_str(obj, "annotations", key);
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(obj, a), b));
}

/*
 * A pod the Job controller may already count as finished while the pod
 * cache, fed by another watch, still shows it pending or running. One
 * being deleted is done with: its status may never come.
 */
static int pod_status_behind(const json_t *pod)
{
    const char *phase = str_at(pod, "status", "phase");

    if (str_at(pod, "metadata", "deletionTimestamp"))
        return 0;
    return !phase || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0);
}

const char *obj_job_verdict(const json_t *job, const char **reason, const char **message)
{
    const json_t *cnd;
    size_t i;

    json_array_foreach(json_object_get(json_object_get(job, "status"), "conditions"), i, cnd) {
        const char *type = json_string_value(json_object_get(cnd, "type"));
        const char *st = json_string_value(json_object_get(cnd, "status"));

        if (!type || !st || strcmp(st, "True") != 0 ||
            (strcmp(type, "Complete") != 0 && strcmp(type, "Failed") != 0))
            continue;
        *reason = json_string_value(json_object_get(cnd, "reason"));
        *message = json_string_value(json_object_get(cnd, "message"));
        return strcmp(type, "Complete") == 0 ? "Complete" : "Failed";
    }
    return NULL;
}

/* Replaces *dst with a copy of src (NULL allowed). -1 when out of memory. */
static int set_copy(char **dst, const char *src)
{
    char *d = src ? strdup(src) : NULL;

    if (src && !d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

int obj_pods_add(struct obj_pods *p, const json_t *pod)
{
    const json_t *cs = json_array_get(json_object_get(json_object_get(pod, "status"),
                                                      "containerStatuses"), 0);
    const json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
    const char *phase = str_at(pod, "status", "phase");
    const char *ts = str_at(pod, "metadata", "creationTimestamp");

    p->count++;
    if (phase && strcmp(phase, "Pending") != 0)
        p->started = 1;
    if (pod_status_behind(pod))
        p->behind = 1;
    if (!term)
        term = json_object_get(json_object_get(cs, "lastState"), "terminated");
    /* The newest pod's termination speaks for the Job (ties: the later seen). */
    if (!term || (p->terminated && (!ts || strcmp(ts, p->term_created ? p->term_created : "") < 0)))
        return 0;
    if (set_copy(&p->term_reason, json_string_value(json_object_get(term, "reason"))) < 0 ||
        set_copy(&p->term_message, json_string_value(json_object_get(term, "message"))) < 0 ||
        set_copy(&p->term_created, ts) < 0)
        return -1;
    p->term_code = json_integer_value(json_object_get(term, "exitCode"));
    p->terminated = 1;
    return 0;
}

void obj_pods_release(struct obj_pods *p)
{
    free(p->term_reason);
    free(p->term_message);
    free(p->term_created);
    memset(p, 0, sizeof(*p));
}

const char *obj_job_outcome(const char *verdict, const struct obj_pods *pods)
{
    return pods->behind ? NULL : verdict;
}
