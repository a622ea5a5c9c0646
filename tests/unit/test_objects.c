/*
 * Unit tests for the objects an Analysis owns, as controller/objects.c
 * builds them from an Analysis (controller/analysis.c) and the controller's
 * configuration (controller/config.c): the batch ConfigMap and Job and the
 * merge Job have the shape the design and the README promise (owner,
 * labels, retries, deadlines, restart policy, non-root pods, volumes,
 * resources, TTL only once succeeded). Also the inputs those builders
 * trust: spec.memory.max as an integer, and a configuration whose
 * podSecurityContext would let batch pods run as root. And the reading of
 * a Job's verdict, which waits for its pods' cached state to catch up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quantity.h"
#include "../../controller/analysis.h"
#include "../../controller/config.h"
#include "../../controller/objects.h"

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Writes text to a new temporary file; its path goes to out (size >= 32). */
static void temp_file(const char *text, char *out)
{
    int fd;

    snprintf(out, 32, "/tmp/test_objects.XXXXXX");
    fd = mkstemp(out);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* cfg from the defaults and a configuration file holding text. Returns 0 or -1 with e. */
static int config_from(struct ctl_config *cfg, const char *text, struct err *e)
{
    char path[32];
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    assert_int_equal(ctl_config_defaults(cfg, e), 0);
    temp_file(text, path);
    rc = ctl_config_load_file(cfg, path, e);
    unlink(path);
    return rc;
}

static const char *const volumes_yaml =
    "workVolume: {mountPath: /work, hostPath: /srv/work}\n"
    "imageVolumes:\n"
    "  - {name: images, mountPath: /share/images, hostPath: /share/images}\n";

/* An Analysis as the API server would store it, with spec members from spec_json. */
static void analysis_from(struct ana *a, const char *spec_json, struct err *e, int want_rc)
{
    json_t *spec = json_loads(spec_json, 0, NULL), *obj;

    assert_non_null(spec);
    obj = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:I,s:s},s:o}", "apiVersion",
                    "plateop.io/v1alpha1", "kind", "Analysis", "metadata", "name", "plate-7",
                    "namespace", "lab", "uid", "0000-aaaa", "generation", (json_int_t)1,
                    "creationTimestamp", "2026-01-02T03:04:05Z", "spec", spec);
    assert_non_null(obj);
    assert_int_equal(ana_parse(a, obj, e), want_rc);
    json_decref(obj);
}

static const char *const spec_full =
    "{\"plateAcquisition\": 7, \"pipeline\": \"p.cppipe\", \"retries\": 3,"
    " \"timeoutSeconds\": 600,"
    " \"resources\": {\"requests\": {\"cpu\": \"1\", \"memory\": \"2Gi\"},"
    "                 \"limits\": {\"memory\": \"4Gi\"}}}";

static const json_t *at(const json_t *o, const char *path)
{
    char part[64];

    while (o && *path) {
        size_t n = strcspn(path, ".");

        snprintf(part, sizeof(part), "%.*s", (int)n, path);
        o = json_is_array(o) ? json_array_get(o, strtoul(part, NULL, 10))
                             : json_object_get(o, part);
        path += n + (path[n] == '.');
    }
    return o;
}

static const char *str(const json_t *o, const char *path)
{
    return json_string_value(at(o, path));
}

/* Label and annotation keys hold dots: not paths. */
static const char *label(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(at(obj, "metadata.labels"), key));
}

static const char *annotation(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(at(obj, "metadata.annotations"), key));
}

/* Labels, annotations and the controller ownerReference every batch object has. */
static void assert_batch_metadata(const json_t *obj)
{
    const json_t *ref = at(obj, "metadata.ownerReferences.0");

    assert_int_equal(json_array_size(at(obj, "metadata.ownerReferences")), 1);
    assert_string_equal(str(ref, "kind"), "Analysis");
    assert_string_equal(str(ref, "apiVersion"), "plateop.io/v1alpha1");
    assert_string_equal(str(ref, "name"), "plate-7");
    assert_string_equal(str(ref, "uid"), "0000-aaaa");
    assert_true(json_is_true(at(ref, "controller")));
    assert_string_equal(str(obj, "metadata.namespace"), "lab");
    assert_string_equal(label(obj, OBJ_LABEL_ANALYSIS), "plate-7");
    assert_string_equal(label(obj, OBJ_LABEL_BATCH), "a01-a02");
    assert_string_equal(label(obj, OBJ_LABEL_WELLS), "A01.A02");
    assert_string_equal(label(obj, OBJ_LABEL_ROLE), "batch");
    assert_string_equal(annotation(obj, OBJ_ANN_WELLS), "A01,A02");
    assert_string_equal(annotation(obj, OBJ_ANN_HASH), HASH);
}

static const struct obj_batch batch = { "a01-a02", "A01,A02", HASH, 4, 18, NULL, 0 };

static void test_batch_configmap_shape(void **state)
{
    const char *csv = "FileName_DNA\nx.pgm\n";
    struct ana a;
    struct err e;
    json_t *cm;

    (void)state;
    analysis_from(&a, spec_full, &e, 0);
    cm = obj_batch_configmap(&a, &batch, csv, strlen(csv));
    assert_non_null(cm);
    assert_string_equal(str(cm, "kind"), "ConfigMap");
    assert_string_equal(str(cm, "metadata.name"), "plate-7-a01-a02");
    assert_batch_metadata(cm);
    assert_string_equal(annotation(cm, OBJ_ANN_INDEX), "4");
    assert_string_equal(annotation(cm, OBJ_ANN_SETS), "18");
    assert_string_equal(json_string_value(json_object_get(at(cm, "data"), OBJ_CSV_KEY)), csv);
    json_decref(cm);
    ana_release(&a);
}

/* The volume named name in vols, or NULL. */
static const json_t *named(const json_t *vols, const char *name)
{
    const json_t *v;
    size_t i;

    json_array_foreach(vols, i, v) {
        if (str(v, "name") && strcmp(str(v, "name"), name) == 0)
            return v;
    }
    return NULL;
}

static void test_batch_job_shape(void **state)
{
    struct ctl_config cfg;
    struct ana a;
    struct err e;
    json_t *job, *want;
    const json_t *pod, *ctr;

    (void)state;
    assert_int_equal(config_from(&cfg, volumes_yaml, &e), 0);
    analysis_from(&a, spec_full, &e, 0);
    job = obj_batch_job(&a, &cfg, &batch);
    assert_non_null(job);
    assert_string_equal(str(job, "kind"), "Job");
    assert_string_equal(str(job, "metadata.name"), "plate-7-a01-a02");
    assert_batch_metadata(job);
    assert_string_equal(label(job, OBJ_LABEL_ATTEMPT), "0");

    /* Retries from the spec; the deadline is the worker's timeout's backstop. */
    assert_int_equal(json_integer_value(at(job, "spec.backoffLimit")), 3);
    assert_int_equal(json_integer_value(at(job, "spec.activeDeadlineSeconds")), 600 * 4 + 120);
    /* Set once the batch succeeded (failed Jobs stay for debugging). */
    assert_null(at(job, "spec.ttlSecondsAfterFinished"));

    pod = at(job, "spec.template.spec");
    ctr = at(pod, "containers.0");
    assert_string_equal(str(pod, "restartPolicy"), "Never");
    assert_true(json_is_true(at(pod, "securityContext.runAsNonRoot")));
    assert_int_equal(json_integer_value(at(pod, "securityContext.runAsUser")), 1000);
    assert_false(json_is_true(at(ctr, "securityContext.allowPrivilegeEscalation")));
    assert_string_equal(json_string_value(json_object_get(at(job, "spec.template.metadata.labels"), OBJ_LABEL_UID)),
                        "0000-aaaa");

    /* Volumes from the configuration, and the batch's own ConfigMap. */
    assert_string_equal(str(named(at(pod, "volumes"), "work"), "hostPath.path"), "/srv/work");
    assert_string_equal(str(named(at(pod, "volumes"), "images"), "hostPath.path"),
                        "/share/images");
    assert_string_equal(str(named(at(pod, "volumes"), "plateop-input"), "configMap.name"),
                        "plate-7-a01-a02");
    assert_string_equal(str(named(at(ctr, "volumeMounts"), "work"), "mountPath"), "/work");
    assert_true(json_is_true(at(named(at(ctr, "volumeMounts"), "images"), "readOnly")));
    assert_false(json_is_true(at(named(at(ctr, "volumeMounts"), "work"), "readOnly")));

    /* Resources exactly as the spec gives them. */
    want = json_loads("{\"requests\": {\"cpu\": \"1\", \"memory\": \"2Gi\"},"
                      " \"limits\": {\"memory\": \"4Gi\"}}", 0, NULL);
    assert_true(json_equal(at(ctr, "resources"), want));
    assert_string_equal(str(ctr, "args.0"), "run");
    json_decref(want);
    json_decref(job);
    ana_release(&a);
    ctl_config_release(&cfg);
}

static void test_memory_retry_job_raises_the_limit(void **state)
{
    struct ctl_config cfg;
    struct ana a;
    struct err e;
    struct obj_batch b = batch;
    json_t *job;
    const json_t *res;

    (void)state;
    assert_int_equal(config_from(&cfg, volumes_yaml, &e), 0);
    analysis_from(&a, spec_full, &e, 0);
    b.memory = "8Gi";
    b.attempt = 1;
    job = obj_batch_job(&a, &cfg, &b);
    assert_non_null(job);
    assert_string_equal(str(job, "metadata.name"), "plate-7-a01-a02-m1");
    assert_string_equal(label(job, OBJ_LABEL_ATTEMPT), "1");
    assert_string_equal(annotation(job, OBJ_ANN_MEMORY), "8Gi");
    res = at(job, "spec.template.spec.containers.0.resources");
    assert_string_equal(str(res, "limits.memory"), "8Gi");
    /* A request above the raised limit would be refused: it goes. */
    assert_null(at(res, "requests.memory"));
    assert_string_equal(str(res, "requests.cpu"), "1");
    json_decref(job);
    ana_release(&a);
    ctl_config_release(&cfg);
}

static void test_merge_job_has_a_deadline(void **state)
{
    struct ctl_config cfg;
    struct ana a;
    struct err e;
    json_t *job;

    (void)state;
    assert_int_equal(config_from(&cfg, volumes_yaml, &e), 0);
    analysis_from(&a, spec_full, &e, 0);
    job = obj_merge_job(&a, &cfg, NULL);
    assert_non_null(job);
    assert_string_equal(str(job, "metadata.name"), "plate-7-merge");
    assert_string_equal(label(job, OBJ_LABEL_ROLE), "merge");
    assert_true(json_is_true(at(job, "metadata.ownerReferences.0.controller")));
    /* A hung merge fails the Analysis (MergeFailed) after 6 h by default. */
    assert_int_equal(json_integer_value(at(job, "spec.activeDeadlineSeconds")), 6 * 3600);
    assert_string_equal(str(job, "spec.template.spec.restartPolicy"), "Never");
    assert_true(json_is_true(at(job, "spec.template.spec.securityContext.runAsNonRoot")));
    json_decref(job);
    ctl_config_release(&cfg);

    assert_int_equal(config_from(&cfg, "mergeDeadlineSeconds: 900\n", &e), 0);
    job = obj_merge_job(&a, &cfg, NULL);
    assert_int_equal(json_integer_value(at(job, "spec.activeDeadlineSeconds")), 900);
    json_decref(job);
    ctl_config_release(&cfg);

    assert_int_equal(config_from(&cfg, "mergeDeadlineSeconds: 0\n", &e), -1);
    assert_non_null(strstr(e.msg, "mergeDeadlineSeconds"));
    ctl_config_release(&cfg);
    ana_release(&a);
}

static void test_memory_max_accepts_integer_bytes(void **state)
{
    unsigned long long bytes;
    struct ana a;
    struct err e;

    (void)state;
    analysis_from(&a, "{\"plateAcquisition\": 7, \"pipeline\": \"p\","
                      " \"memory\": {\"max\": 17179869184}}", &e, 0);
    assert_non_null(a.mem_max);
    assert_int_equal(quantity_parse(a.mem_max, &bytes), 0);
    assert_true(bytes == 16ULL << 30);
    ana_release(&a);

    analysis_from(&a, "{\"plateAcquisition\": 7, \"pipeline\": \"p\","
                      " \"memory\": {\"max\": \"16Gi\"}}", &e, 0);
    assert_string_equal(a.mem_max, "16Gi");
    ana_release(&a);

    analysis_from(&a, "{\"plateAcquisition\": 7, \"pipeline\": \"p\","
                      " \"memory\": {\"max\": \"lots\"}}", &e, -1);
    assert_non_null(strstr(e.msg, "spec.memory.max"));
    analysis_from(&a, "{\"plateAcquisition\": 7, \"pipeline\": \"p\","
                      " \"memory\": {\"max\": 0}}", &e, -1);
    assert_non_null(strstr(e.msg, "spec.memory.max"));
}

static void test_pod_security_context_must_be_non_root(void **state)
{
    struct ctl_config cfg;
    struct err e;

    (void)state;
    assert_int_equal(config_from(&cfg, "podSecurityContext: {runAsUser: 0}\n", &e), -1);
    assert_non_null(strstr(e.msg, "runAsNonRoot: true"));
    ctl_config_release(&cfg);
    assert_int_equal(config_from(&cfg, "podSecurityContext: {runAsNonRoot: false}\n", &e), -1);
    assert_non_null(strstr(e.msg, "podSecurityContext"));
    ctl_config_release(&cfg);
    assert_int_equal(config_from(&cfg, "podSecurityContext: {runAsNonRoot: true, "
                                       "runAsUser: 2000}\n", &e), 0);
    assert_int_equal(json_integer_value(json_object_get(cfg.pod_security, "runAsUser")), 2000);
    ctl_config_release(&cfg);
}

static void test_missing_dependency_grace_is_configurable(void **state)
{
    struct ctl_config cfg;
    struct err e;

    (void)state;
    assert_int_equal(config_from(&cfg, "{}\n", &e), 0);
    assert_int_equal(cfg.missing_dep_grace_s, 600);
    ctl_config_release(&cfg);
    assert_int_equal(config_from(&cfg, "missingDependencyGraceSeconds: 5\n", &e), 0);
    assert_int_equal(cfg.missing_dep_grace_s, 5);
    ctl_config_release(&cfg);
    assert_int_equal(config_from(&cfg, "missingDependencyGraceSeconds: -1\n", &e), -1);
    assert_non_null(strstr(e.msg, "missingDependencyGraceSeconds"));
    ctl_config_release(&cfg);
}

/* A finished Job and its pods as the caches hold them. */
static json_t *job_with(const char *type, const char *reason)
{
    return json_pack("{s:{s:[{s:s,s:s,s:s,s:s}]}}", "status", "conditions", "type", type,
                     "status", "True", "reason", reason, "message", "Job has reached the limit");
}

static json_t *pod_with(const char *phase, const char *terminated_reason, const char *deleting)
{
    json_t *pod = json_pack("{s:{s:s},s:{s:s,s:[{s:{}}]}}", "metadata", "creationTimestamp",
                            "2026-01-02T03:04:05Z", "status", "phase", phase,
                            "containerStatuses", "state");

    if (terminated_reason)
        json_object_set_new(json_object_get(json_array_get(json_object_get(json_object_get(
                                pod, "status"), "containerStatuses"), 0), "state"),
                            "terminated", json_pack("{s:s,s:i}", "reason", terminated_reason,
                                                    "exitCode", 137));
    if (deleting)
        json_object_set_new(json_object_get(pod, "metadata"), "deletionTimestamp",
                            json_string(deleting));
    return pod;
}

/* A Job's verdict as the reconcile takes it, its pods folded in one at a time. */
static const char *outcome_of(const json_t *job, const json_t *pods, struct obj_pods *seen)
{
    const char *reason = NULL, *message = NULL, *verdict = obj_job_verdict(job, &reason, &message);
    const json_t *pod;
    size_t i;

    obj_pods_release(seen);
    json_array_foreach(pods, i, pod)
        assert_int_equal(obj_pods_add(seen, pod), 0);
    if (verdict) {
        assert_string_equal(reason, json_string_value(json_object_get(json_array_get(
                                        json_object_get(json_object_get(job, "status"),
                                                        "conditions"), 0), "reason")));
        assert_non_null(message);
    }
    return obj_job_outcome(verdict, seen);
}

/*
 * The Job watch can bring a Job's Failed condition before the pod watch
 * brings the pod's OOMKilled state: the verdict waits for the pod, so a
 * batch is not failed for BackoffLimitExceeded when it was OOMKilled.
 */
static void test_job_outcome_waits_for_its_pods(void **state)
{
    json_t *job = job_with("Failed", "BackoffLimitExceeded");
    json_t *lagging = json_pack("[o]", pod_with("Running", NULL, NULL));
    json_t *done = json_pack("[o]", pod_with("Failed", "OOMKilled", NULL));
    json_t *deleting = json_pack("[o]", pod_with("Running", NULL, "2026-01-02T03:05:00Z"));
    struct obj_pods seen = { 0 };

    (void)state;
    assert_null(outcome_of(job, lagging, &seen));
    assert_true(seen.started && seen.behind && !seen.terminated);
    assert_string_equal(outcome_of(job, done, &seen), "Failed");
    assert_string_equal(seen.term_reason, "OOMKilled");
    assert_int_equal(seen.term_code, 137);
    assert_int_equal(seen.count, 1);
    /* A pod being deleted (deadline, node gone) may never report: no waiting on it. */
    assert_string_equal(outcome_of(job, deleting, &seen), "Failed");
    assert_false(seen.terminated);
    /* Nor on pods the cache never saw. */
    assert_string_equal(outcome_of(job, NULL, &seen), "Failed");
    assert_int_equal(seen.count, 0);
    json_decref(job);
    /* The merge's results are its pod's termination message: Complete waits the same way. */
    job = job_with("Complete", "Completed");
    assert_null(outcome_of(job, lagging, &seen));
    json_array_append_new(done, pod_with("Succeeded", "Completed", NULL));
    json_array_remove(done, 0);
    assert_string_equal(outcome_of(job, done, &seen), "Complete");
    json_decref(job);
    job = json_pack("{s:{s:[{s:s,s:s}]}}", "status", "conditions", "type", "Suspended",
                    "status", "True");
    assert_null(outcome_of(job, done, &seen));
    obj_pods_release(&seen);
    json_decref(job);
    json_decref(lagging);
    json_decref(done);
    json_decref(deleting);
}

/* Of several pods (retries of one Job), the newest termination speaks for the Job. */
static void test_newest_pod_termination_wins(void **state)
{
    json_t *older = pod_with("Failed", "Error", NULL), *newer = pod_with("Failed", "OOMKilled", NULL);
    struct obj_pods seen = { 0 };

    (void)state;
    json_object_set_new(json_object_get(older, "metadata"), "creationTimestamp",
                        json_string("2026-01-02T03:00:00Z"));
    assert_int_equal(obj_pods_add(&seen, newer), 0);
    assert_int_equal(obj_pods_add(&seen, older), 0);
    assert_string_equal(seen.term_reason, "OOMKilled");
    obj_pods_release(&seen);
    assert_int_equal(obj_pods_add(&seen, older), 0);
    assert_int_equal(obj_pods_add(&seen, newer), 0);
    assert_string_equal(seen.term_reason, "OOMKilled");
    assert_string_equal(seen.term_created, "2026-01-02T03:04:05Z");
    assert_int_equal(seen.count, 2);
    obj_pods_release(&seen);
    json_decref(older);
    json_decref(newer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_configmap_shape),
        cmocka_unit_test(test_batch_job_shape),
        cmocka_unit_test(test_memory_retry_job_raises_the_limit),
        cmocka_unit_test(test_merge_job_has_a_deadline),
        cmocka_unit_test(test_memory_max_accepts_integer_bytes),
        cmocka_unit_test(test_pod_security_context_must_be_non_root),
        cmocka_unit_test(test_missing_dependency_grace_is_configurable),
        cmocka_unit_test(test_job_outcome_waits_for_its_pods),
        cmocka_unit_test(test_newest_pod_termination_wins),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
