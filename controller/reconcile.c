/*
 * reconcile: one pass of the level-based loop for one Analysis.
 *
 *   1. Read the Analysis from the cache; check its spec.
 *   2. If it has no plan yet: plan it from ImageDB, writing one ConfigMap
 *      per batch, and record the plan in the status.
 *   3. Observe the batch ConfigMaps, Jobs and Pods it owns; classify each
 *      batch (new, waiting, running, succeeded, failed).
 *   4. Act on the difference: create Jobs within the window, remember
 *      successes, stop on too many failures, run the merge when every batch
 *      is done, and read the merge's outcome.
 *   5. Write the status if it changed, and emit Events for transitions.
 *
 * Everything it decides is derived from what the API server holds, so a
 * crash between any two steps is repaired by the next pass. Creates use
 * deterministic names; AlreadyExists is success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis.h"
#include "ctl.h"
#include "log.h"
#include "objects.h"
#include "quantity.h"
#include "strbuf.h"
#include "strmap.h"

enum bstate {
    B_NEW,          /* no Job yet */
    B_WAITING,      /* a Job without a pod that has started */
    B_RUNNING,
    B_SUCCEEDED,
    B_FAILED,
};

/* The latest attempt of a batch's Job (or the merge Job), as observed. */
struct job_seen {
    char *name;             /* NULL: none seen */
    int attempt;
    char *memory;           /* its escalated memory limit, or NULL */
    const char *verdict;    /* "Complete", "Failed" or NULL (obj_job_verdict) */
    char *reason;           /* of the verdict's condition */
    char *message;
    struct obj_pods pods;   /* the Job's pods */
};

struct batch {
    char *id;               /* copies from the ConfigMap */
    char *wells;
    char *hash;
    long index;
    long sets;
    struct job_seen *job;   /* its latest attempt, borrowed from observed.jobs, or NULL */
    int attempt;            /* of that Job */
    const char *memory;     /* its escalated memory limit, or NULL */
    enum bstate st;
    int remembered;         /* the ConfigMap says it succeeded (its Job may be gone) */
    char reason[64];
    char message[512];
};

/*
 * What one pass sees of an Analysis, copied out of the caches one object
 * at a time: a 1,536-batch Analysis costs a few hundred bytes per batch
 * here, not its decoded ConfigMaps, Jobs and pods.
 */
struct observed {
    struct strmap jobs;             /* batch id -> struct job_seen * */
    struct job_seen merge;
    struct batch *b;
    size_t n, cap;
    long counts[5];
    long nopod;                     /* waiting Jobs that have no pod at all yet */
};

/* ---- small JSON helpers ---------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const json_t *jpath(const json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

/* Seconds since an RFC 3339 UTC time ("2026-01-02T03:04:05Z"), or -1 if unreadable. */
static double seconds_since(const char *ts)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = ts ? strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end)
        return -1;
    return difftime(time(NULL), timegm(&tm));
}

static void now_rfc3339(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Whether obj is owned (as controller) by the Analysis with this uid. */
static int owned_by(const json_t *obj, const char *uid)
{
    const json_t *refs = jpath(obj, "metadata", "ownerReferences"), *r;
    size_t i;

    json_array_foreach(refs, i, r) {
        const char *u = jstr(r, "uid");

        if (u && strcmp(u, uid) == 0)
            return 1;
    }
    return 0;
}

/*
 * Whether a cached object belongs to the Analysis: owned by it, or (Pods,
 * owned by their Jobs) labelled with its uid.
 */
static int is_owned(const json_t *obj, const struct ana *a)
{
    const char *ns = jstr(json_object_get(obj, "metadata"), "namespace");
    const char *uid = obj_label(obj, OBJ_LABEL_UID);

    return ns && strcmp(ns, a->ns) == 0 &&
           (owned_by(obj, a->uid) || (uid && strcmp(uid, a->uid) == 0));
}

/*
 * Why a batch failed: the worker's own reason (its termination message
 * starts "Reason: ..."), OOMKilled, or the Job's condition.
 */
static void failure_reason(struct batch *b, const struct job_seen *job)
{
    const char *treason = job->pods.term_reason, *tmsg = job->pods.term_message;
    const char *job_reason = job->reason, *job_message = job->message;
    long long code = job->pods.term_code;
    size_t n;

    if (treason && strcmp(treason, "OOMKilled") == 0) {
        snprintf(b->reason, sizeof(b->reason), "OOMKilled");
        snprintf(b->message, sizeof(b->message),
                 "the batch pod exceeded its memory limit and was killed (exit %lld)", code);
        return;
    }
    if (tmsg && (n = strcspn(tmsg, ":")) > 0 && tmsg[n] == ':' && n < sizeof(b->reason) &&
        strspn(tmsg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == n) {
        snprintf(b->reason, sizeof(b->reason), "%.*s", (int)n, tmsg);
        snprintf(b->message, sizeof(b->message), "%s (exit %lld; Job: %s)", tmsg + n + 2, code,
                 job_reason ? job_reason : "failed");
        b->message[strcspn(b->message, "\n")] = '\0';
        return;
    }
    snprintf(b->reason, sizeof(b->reason), "%s", job_reason ? job_reason : "Failed");
    if (job->pods.terminated)
        snprintf(b->message, sizeof(b->message), "%s; last exit code %lld",
                 job_message ? job_message : "the batch Job failed", code);
    else
        snprintf(b->message, sizeof(b->message), "%s",
                 job_message ? job_message : "the batch Job failed");
}

static int attempt_of(const json_t *job)
{
    const char *a = obj_label(job, OBJ_LABEL_ATTEMPT);

    return a ? atoi(a) : 0;
}

static void job_seen_release(struct job_seen *j)
{
    free(j->name);
    free(j->memory);
    free(j->reason);
    free(j->message);
    obj_pods_release(&j->pods);
    memset(j, 0, sizeof(*j));
}

static void free_job_seen(void *j)
{
    job_seen_release(j);
    free(j);
}

/* Fills j (released first) from a Job. -1 when out of memory. */
static int job_seen_set(struct job_seen *j, const json_t *job)
{
    const char *name = jstr(json_object_get(job, "metadata"), "name");
    const char *memory = obj_annotation(job, OBJ_ANN_MEMORY), *reason = NULL, *message = NULL;

    job_seen_release(j);
    j->attempt = attempt_of(job);
    j->verdict = obj_job_verdict(job, &reason, &message);
    j->name = strdup(name ? name : "");
    j->memory = memory ? strdup(memory) : NULL;
    j->reason = reason ? strdup(reason) : NULL;
    j->message = message ? strdup(message) : NULL;
    return !j->name || (memory && !j->memory) || (reason && !j->reason) ||
                   (message && !j->message) ? -1 : 0;
}

static int cmp_batch(const void *x, const void *y)
{
    const struct batch *a = x, *b = y;

    return a->index < b->index ? -1 : a->index > b->index;
}

static void observed_release(struct observed *o)
{
    size_t i;

    strmap_clear(&o->jobs, free_job_seen);
    job_seen_release(&o->merge);
    for (i = 0; i < o->n; i++) {
        free(o->b[i].id);
        free(o->b[i].wells);
        free(o->b[i].hash);
    }
    free(o->b);
    memset(o, 0, sizeof(*o));
}

struct observing {
    const struct ana *a;
    struct observed *o;
};

/* Retries with more memory are new Jobs: the latest attempt speaks for the batch. */
static int see_job(const json_t *job, void *ud)
{
    struct observing *x = ud;
    const char *role = obj_label(job, OBJ_LABEL_ROLE), *bid = obj_label(job, OBJ_LABEL_BATCH);
    struct job_seen *j;

    if (!is_owned(job, x->a))
        return 0;
    if (role && strcmp(role, "merge") == 0)
        return job_seen_set(&x->o->merge, job);
    if (!bid)
        return 0;
    j = strmap_get(&x->o->jobs, bid);
    if (j)
        return attempt_of(job) > j->attempt ? job_seen_set(j, job) : 0;
    j = calloc(1, sizeof(*j));
    if (!j || strmap_put(&x->o->jobs, bid, j, NULL) < 0) {
        free(j);
        return -1;
    }
    return job_seen_set(j, job);
}

/* A pod counts for its batch's latest Job only (the Job controller labels it with the Job's name). */
static int see_pod(const json_t *pod, void *ud)
{
    struct observing *x = ud;
    const char *role = obj_label(pod, OBJ_LABEL_ROLE), *bid = obj_label(pod, OBJ_LABEL_BATCH);
    const char *jn = obj_label(pod, "job-name");
    struct job_seen *j;

    if (!is_owned(pod, x->a))
        return 0;
    if (role && strcmp(role, "merge") == 0)
        j = &x->o->merge;
    else
        j = bid ? strmap_get(&x->o->jobs, bid) : NULL;
    if (!j || !j->name || !jn || strcmp(jn, j->name) != 0)
        return 0;
    return obj_pods_add(&j->pods, pod);
}

static int see_configmap(const json_t *cm, void *ud)
{
    struct observing *x = ud;
    struct observed *o = x->o;
    const char *idx = obj_annotation(cm, OBJ_ANN_INDEX), *sets = obj_annotation(cm, OBJ_ANN_SETS);
    const char *state = obj_label(cm, OBJ_LABEL_STATE), *id = obj_label(cm, OBJ_LABEL_BATCH);
    const char *wells = obj_annotation(cm, OBJ_ANN_WELLS), *hash = obj_annotation(cm, OBJ_ANN_HASH);
    struct batch *b;

    if (!is_owned(cm, x->a) || !id || !wells || !hash)
        return 0;   /* not one of ours in the expected shape */
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        struct batch *nb = realloc(o->b, cap * sizeof(*nb));

        if (!nb)
            return -1;
        o->b = nb;
        o->cap = cap;
    }
    b = &o->b[o->n];
    memset(b, 0, sizeof(*b));
    b->index = idx ? strtol(idx, NULL, 10) : (long)o->n;
    b->sets = sets ? strtol(sets, NULL, 10) : 0;
    b->remembered = state && strcmp(state, "succeeded") == 0;
    b->id = strdup(id);
    b->wells = strdup(wells);
    b->hash = strdup(hash);
    o->n++;
    return !b->id || !b->wells || !b->hash ? -1 : 0;
}

/* A batch's state from its ConfigMap, its latest Job and that Job's pods. */
static void classify(struct observed *o, struct batch *b)
{
    const char *outcome;

    b->job = strmap_get(&o->jobs, b->id);
    if (b->job) {
        b->attempt = b->job->attempt;
        b->memory = b->job->memory;
    }
    outcome = b->job ? obj_job_outcome(b->job->verdict, &b->job->pods) : NULL;
    if (b->remembered || (outcome && strcmp(outcome, "Complete") == 0))
        b->st = B_SUCCEEDED;
    else if (outcome)
        b->st = B_FAILED;
    else if (!b->job)
        b->st = B_NEW;
    else if (b->job->pods.started)
        b->st = B_RUNNING;
    else
        b->st = B_WAITING;
    if (b->st == B_WAITING && b->job->pods.count == 0)
        o->nopod++;
    if (b->st == B_FAILED)
        failure_reason(b, b->job);
    o->counts[b->st]++;
}

/*
 * Gathers and classifies everything the Analysis owns: its Jobs, then
 * their pods, then the batch ConfigMaps. Cost: one decode per object,
 * holding one decoded object at a time.
 */
static int observe(struct ctl *c, const struct ana *a, struct observed *o, struct err *e)
{
    char label[OBJ_NAME_MAX + 1];
    struct observing x = { a, o };
    size_t i;

    memset(o, 0, sizeof(*o));
    obj_analysis_label(a->name, label);
    if (informer_each(c->jobs, OBJ_LABEL_ANALYSIS, label, see_job, &x) != 0 ||
        informer_each(c->pods, OBJ_LABEL_ANALYSIS, label, see_pod, &x) != 0 ||
        informer_each(c->configmaps, OBJ_LABEL_ANALYSIS, label, see_configmap, &x) != 0)
        return err_set(e, ENOMEM, "out of memory");
    for (i = 0; i < o->n; i++)
        classify(o, &o->b[i]);
    if (o->n)
        qsort(o->b, o->n, sizeof(*o->b), cmp_batch);
    return 0;
}

/* ---- status ---------------------------------------------------------- */

/*
 * Appends a condition to conds, keeping lastTransitionTime from old when
 * the status did not change.
 */
static void cond_add(json_t *conds, const json_t *old, long long gen, const char *type,
                     const char *status, const char *reason, const char *message)
{
    const json_t *o;
    json_t *cnd;
    const char *ltt = NULL;
    char now[32];
    size_t i;

    json_array_foreach(old, i, o) {
        const char *t = jstr(o, "type"), *s = jstr(o, "status");

        if (t && s && strcmp(t, type) == 0 && strcmp(s, status) == 0)
            ltt = jstr(o, "lastTransitionTime");
    }
    now_rfc3339(now);
    cnd = json_pack("{s:s,s:s,s:s,s:s,s:I}", "type", type, "status", status, "reason", reason,
                    "lastTransitionTime", ltt ? ltt : now, "observedGeneration", (json_int_t)gen);
    /* The 1.20 API server refuses empty strings in a CRD's status: omit them. */
    if (cnd && message && *message)
        json_object_set_new(cnd, "message", json_string(message));
    json_array_append_new(conds, cnd);
}

#define SPEC_CHANGED_FMT                                                                   \
    "the spec changed after planning (generation %lld; planned from %lld): the batches are " \
    "fixed once planned and are not planned again; settings read for each new Job "        \
    "(priority, resources, retries, timeout, image) apply to Jobs created from now on. To "  \
    "change the analysis, delete and re-create it"

enum phase { P_PENDING, P_BLOCKED, P_RUNNING, P_MERGING, P_SUCCEEDED, P_FAILED };
static const char *const phase_names[] = { "Pending", "Blocked", "Running", "Merging",
                                           "Succeeded", "Failed" };

/*
 * The generation the status describes: the current one until the Analysis
 * is planned, then the one it was planned from, for the plan is never
 * made again (a later spec change shows as the SpecChanged condition).
 */
static long long planned_generation(const struct ana *a)
{
    const json_t *g = json_object_get(a->status, "observedGeneration");

    if (json_object_get(a->status, "plan") && json_is_integer(g))
        return json_integer_value(g);
    return a->generation;
}

/* Whether status has a condition of this type. */
static int has_condition(const json_t *status, const char *type)
{
    const json_t *cnd;
    size_t i;

    json_array_foreach(json_object_get(status, "conditions"), i, cnd) {
        if (jstr(cnd, "type") && strcmp(jstr(cnd, "type"), type) == 0)
            return 1;
    }
    return 0;
}

/* Whether the spec changed after planning: it is not planned again. */
static int spec_changed(const struct ana *a)
{
    return a->generation > planned_generation(a);
}

/* The conditions that follow from a phase, with its reason and message. */
static json_t *conditions(const struct ana *a, enum phase ph, const char *reason,
                          const char *message)
{
    const json_t *old = json_object_get(a->status, "conditions");
    json_t *conds = json_array();
    long long g = planned_generation(a);
    int done = ph == P_SUCCEEDED || ph == P_FAILED;

    cond_add(conds, old, g, "Ready", ph == P_SUCCEEDED ? "True" : "False", reason, message);
    cond_add(conds, old, g, "Progressing", ph == P_RUNNING || ph == P_MERGING ? "True" : "False",
             reason, message);
    cond_add(conds, old, g, "Succeeded", ph == P_SUCCEEDED ? "True" : done ? "False" : "Unknown",
             reason, message);
    cond_add(conds, old, g, "Failed", ph == P_FAILED ? "True" : "False", reason,
             ph == P_FAILED ? message : "");
    cond_add(conds, old, g, "Blocked", ph == P_BLOCKED ? "True" : "False", reason,
             ph == P_BLOCKED ? message : "");
    if (spec_changed(a)) {
        char text[512];

        snprintf(text, sizeof(text), SPEC_CHANGED_FMT, a->generation, g);
        cond_add(conds, old, g, "SpecChanged", "True", "SpecChangedAfterPlanning", text);
    }
    return conds;
}

/*
 * The status to write: the old one with the given phase, conditions and
 * members of `set` replacing or adding to it.
 */
static json_t *status_with(const struct ana *a, enum phase ph, const char *reason,
                           const char *message, json_t *set)
{
    json_t *st = a->status ? json_deep_copy(a->status) : json_object();
    char now[32];

    now_rfc3339(now);
    json_object_set_new(st, "observedGeneration", json_integer(planned_generation(a)));
    json_object_set_new(st, "phase", json_string(phase_names[ph]));
    json_object_set_new(st, "conditions", conditions(a, ph, reason, message));
    if (!json_object_get(st, "startTime") && ph != P_PENDING && ph != P_BLOCKED)
        json_object_set_new(st, "startTime", json_string(now));
    if ((ph == P_SUCCEEDED || ph == P_FAILED) && !json_object_get(st, "completionTime"))
        json_object_set_new(st, "completionTime", json_string(now));
    if (set)
        json_object_update(st, set);
    json_decref(set);
    return st;
}

/*
 * Nothing to write when nothing changed. Conditions keep their
 * lastTransitionTime while their status holds (cond_add), so a pass that
 * finds the same state builds an equal status.
 */
static int status_same(const json_t *old, const json_t *cur)
{
    return old && json_equal(old, cur);
}

/* PUT /status from the cached object; a Conflict means the cache is behind. */
static int write_status(struct ctl *c, const struct ana *a, json_t *status, struct err *e)
{
    struct kube_res r = KUBE_RES_ANALYSES;
    struct kube_error ke;
    json_t *obj, *res;
    int rc = 0;

    if (status_same(a->status, status)) {
        json_decref(status);
        return 0;
    }
    obj = json_deep_copy(a->obj);
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char *dump = json_dumps(status, JSON_COMPACT);
        char key[300];
        struct log_ctx lc = { key, NULL, NULL };

        ana_key(a, key, sizeof(key));
        log_debug(&lc, "writing status %s", dump ? dump : "?");
        free(dump);
    }
    json_object_set_new(obj, "status", status);
    r.ns = a->ns;
    r.name = a->name;
    r.subresource = "status";
    res = kube_replace(c->kc, &r, obj, NULL, &ke);
    if (!res) {
        rc = err_set(e, ke.err.code, "write status: %s", ke.err.msg);
        if (kube_is_conflict(&ke) || kube_is_not_found(&ke))
            e->code = EAGAIN;
    } else {
        atomic_fetch_add(&c->metrics.status_writes, 1);
    }
    json_decref(res);
    json_decref(obj);
    return rc;
}

static void event(struct ctl *c, const struct ana *a, enum kube_event_type type,
                  const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void event(struct ctl *c, const struct ana *a, enum kube_event_type type,
                  const char *reason, const char *fmt, ...)
{
    struct kube_event_ref ref = { "plateop.io/v1alpha1", "Analysis", a->ns, a->name, a->uid };
    struct strbuf msg = STRBUF_INIT;
    char key[300];
    struct log_ctx lc = { key, NULL, NULL };
    va_list ap;

    va_start(ap, fmt);
    strbuf_vaddf(&msg, fmt, ap);
    va_end(ap);
    ana_key(a, key, sizeof(key));
    log_emit(type == KUBE_EVENT_WARNING ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, &lc, NULL, "%s: %s",
             reason, msg.buf);
    if (c->events)
        kube_event_record(c->events, &ref, type, reason, "%s", msg.buf);
    strbuf_release(&msg);
}

/* ---- acting ---------------------------------------------------------- */

/*
 * A succeeded batch is remembered on its ConfigMap before its Job is given
 * a TTL, so the Job's removal never makes the batch look new again.
 */
static int remember_successes(struct ctl *c, const struct ana *a, struct observed *o,
                              struct err *e)
{
    struct kube_batch *cms = NULL, *jobs = NULL;
    struct kube_error ke;
    json_t *mark = json_pack("{s:{s:{s:s}}}", "metadata", "labels", OBJ_LABEL_STATE, "succeeded");
    json_t *ttl = json_pack("{s:{s:i}}", "spec", "ttlSecondsAfterFinished",
                            c->cfg->succeeded_ttl_s);
    char cm_name[OBJ_NAME_MAX + 1];
    size_t i;
    int rc = 0;

    for (i = 0; i < o->n && rc == 0; i++) {
        struct batch *b = &o->b[i];
        struct kube_request req = { .verb = KUBE_PATCH, .patch = KUBE_PATCH_MERGE };

        if (b->st != B_SUCCEEDED || b->remembered || !b->job)
            continue;
        req.res = (struct kube_res)KUBE_RES_CONFIGMAPS;
        req.res.ns = a->ns;
        obj_name(a->name, b->id, cm_name);
        req.res.name = cm_name;
        req.body = mark;
        if ((!cms && !(cms = kube_batch_new(c->kc, 0, &ke))) ||
            kube_batch_add(cms, &req, &ke) < 0) {
            rc = err_set(e, ENOMEM, "%s", ke.err.msg);
            break;
        }
        if (c->cfg->succeeded_ttl_s > 0) {
            req.res = (struct kube_res)KUBE_RES_JOBS;
            req.res.ns = a->ns;
            req.res.name = b->job->name;
            req.body = ttl;
            if ((!jobs && !(jobs = kube_batch_new(c->kc, 0, &ke))) ||
                kube_batch_add(jobs, &req, &ke) < 0) {
                rc = err_set(e, ENOMEM, "%s", ke.err.msg);
                break;
            }
        }
    }
    if (rc == 0)
        rc = ctl_run_requests(cms, "remember succeeded batches", NULL, e);
    if (rc == 0)
        rc = ctl_run_requests(jobs, "set TTL of succeeded batch Jobs", NULL, e);
    kube_batch_free(cms);
    kube_batch_free(jobs);
    json_decref(mark);
    json_decref(ttl);
    return rc;
}

/* Creates up to `n` Jobs of new batches, in plan order. */
static int create_jobs(struct ctl *c, const struct ana *a, struct observed *o, int n,
                       struct err *e)
{
    struct kube_batch *kb = NULL;
    struct kube_error ke;
    json_t **bodies = NULL;
    size_t i;
    int k = 0, rc = 0;
    long made = 0;
    char key[300];

    if (n <= 0)
        return 0;
    ana_key(a, key, sizeof(key));
    bodies = calloc((size_t)n, sizeof(*bodies));
    kb = kube_batch_new(c->kc, 0, &ke);
    if (!bodies || !kb) {
        rc = err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < o->n && k < n; i++) {
        struct batch *b = &o->b[i];
        struct kube_request req = { .verb = KUBE_POST, .res = KUBE_RES_JOBS };
        struct obj_batch ob = { b->id, b->wells, b->hash, b->index, b->sets, NULL, 0 };
        struct log_ctx lc = { key, b->id, b->wells };

        if (b->st != B_NEW)
            continue;
        bodies[k] = obj_batch_job(a, c->cfg, &ob);
        if (!bodies[k]) {
            rc = err_set(e, ENOMEM, "out of memory building the Job of batch %s", b->id);
            goto out;
        }
        req.res.ns = a->ns;
        req.body = bodies[k];
        if (kube_batch_add(kb, &req, &ke) < 0) {
            rc = err_set(e, ENOMEM, "%s", ke.err.msg);
            goto out;
        }
        log_info(&lc, "creating the batch Job (%ld image sets)", b->sets);
        b->st = B_WAITING;
        o->counts[B_NEW]--;
        o->counts[B_WAITING]++;
        k++;
    }
    /* Only Jobs the API server made count: a create answered 409 made nothing. */
    rc = ctl_run_requests(kb, "create batch Jobs", &made, e);
    atomic_fetch_add(&c->metrics.jobs_created, made);
out:
    for (i = 0; bodies && i < (size_t)n; i++)
        json_decref(bodies[i]);
    free(bodies);
    kube_batch_free(kb);
    return rc;
}

#define DEFAULT_MEMORY_CEILING (64ULL << 30)

/*
 * A batch whose pod was OOMKilled runs again, as a new Job, with its memory
 * limit multiplied by spec.memory.retryFactor up to spec.memory.max (64Gi),
 * before it counts as failed. It needs a limit to raise: without one the
 * node's memory was the limit, and more cannot be asked for.
 */
static int retry_oom(struct ctl *c, const struct ana *a, struct observed *o, struct err *e)
{
    const json_t *limit;
    unsigned long long cur, cap = DEFAULT_MEMORY_CEILING, next;
    struct kube_res r = KUBE_RES_JOBS;
    struct kube_error ke;
    char mem[32], key[300];
    size_t i;

    ana_key(a, key, sizeof(key));
    limit = json_object_get(json_object_get(a->resources, "limits"), "memory");
    if (a->mem_max && quantity_parse(a->mem_max, &cap) < 0)
        cap = DEFAULT_MEMORY_CEILING;
    r.ns = a->ns;
    for (i = 0; i < o->n; i++) {
        struct batch *b = &o->b[i];
        const char *now = b->memory ? b->memory : json_string_value(limit);
        struct obj_batch ob = { b->id, b->wells, b->hash, b->index, b->sets, mem, b->attempt + 1 };
        struct log_ctx lc = { key, b->id, b->wells };
        json_t *job, *res;
        size_t len;

        if (b->st != B_FAILED || strcmp(b->reason, "OOMKilled") != 0)
            continue;
        len = strlen(b->message);
        if (!now || quantity_parse(now, &cur) < 0) {
            snprintf(b->message + len, sizeof(b->message) - len,
                     "; no memory limit in spec.resources.limits to raise");
            continue;
        }
        if (cur >= cap) {
            snprintf(b->message + len, sizeof(b->message) - len,
                     "; already at the memory ceiling %s", now);
            continue;
        }
        next = (unsigned long long)((long double)cur * a->mem_factor);
        if (next <= cur)
            next = cur + (1ULL << 20);
        quantity_format(next < cap ? next : cap, mem, sizeof(mem));
        job = obj_batch_job(a, c->cfg, &ob);
        res = job ? kube_create(c->kc, &r, job, NULL, &ke) : NULL;
        json_decref(job);
        if (!res && !kube_is_already_exists(&ke))
            return err_set(e, ke.err.code, "retry batch %s with more memory: %s", b->id,
                           ke.err.msg);
        json_decref(res);
        log_warn(&lc, "OOMKilled with %s: retrying with %s", now, mem);
        event(c, a, KUBE_EVENT_WARNING, "BatchRetriedWithMoreMemory",
              "batch %s (wells %s) was OOMKilled with a %s memory limit: retrying with %s", b->id,
              b->wells, now, mem);
        b->st = B_WAITING;
        o->counts[B_FAILED]--;
        o->counts[B_WAITING]++;
    }
    return 0;
}

/*
 * The memory each batch ran with where it was raised after an OOM kill.
 * Entries already in the status are kept: a succeeded retry Job, and with
 * it the annotation, goes when its TTL runs out.
 */
static json_t *batch_memory(const struct ana *a, const struct observed *o)
{
    json_t *m = json_deep_copy(json_object_get(a->status, "batchMemory"));
    size_t i;

    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    for (i = 0; i < o->n; i++) {
        if (o->b[i].memory)
            json_object_set_new(m, o->b[i].id, json_string(o->b[i].memory));
    }
    return m;
}

/* After too many failures: Jobs that have not started are removed. */
static int delete_waiting(struct ctl *c, const struct ana *a, struct observed *o, struct err *e)
{
    struct kube_batch *kb = NULL;
    struct kube_error ke;
    size_t i;
    int rc;

    for (i = 0; i < o->n; i++) {
        struct kube_request req = { .verb = KUBE_DELETE, .res = KUBE_RES_JOBS };

        if (o->b[i].st != B_WAITING)
            continue;
        req.res.ns = a->ns;
        req.res.name = o->b[i].job->name;
        req.q.propagation_policy = "Background";
        if ((!kb && !(kb = kube_batch_new(c->kc, 0, &ke))) || kube_batch_add(kb, &req, &ke) < 0) {
            kube_batch_free(kb);
            return err_set(e, ENOMEM, "out of memory");
        }
    }
    rc = ctl_run_requests(kb, "delete waiting batch Jobs", NULL, e);
    kube_batch_free(kb);
    return rc;
}

static json_t *failed_list(const struct observed *o)
{
    json_t *arr = json_array();
    size_t i;

    for (i = 0; i < o->n; i++) {
        const struct batch *b = &o->b[i];

        if (b->st == B_FAILED)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "batch", b->id, "wells",
                                                 b->wells, "reason", b->reason, "message",
                                                 b->message));
    }
    return arr;
}

static int was_failed_before(const struct ana *a, const char *id)
{
    const json_t *fb = json_object_get(a->status, "failedBatches"), *f;
    size_t i;

    json_array_foreach(fb, i, f) {
        const char *b = jstr(f, "batch");

        if (b && strcmp(b, id) == 0)
            return 1;
    }
    return 0;
}

static json_t *batch_counts(const struct observed *o, long total)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)total, "pending",
                     (json_int_t)(o->counts[B_NEW] + o->counts[B_WAITING]), "running",
                     (json_int_t)o->counts[B_RUNNING], "succeeded",
                     (json_int_t)o->counts[B_SUCCEEDED], "failed",
                     (json_int_t)o->counts[B_FAILED]);
}

static void missing_wells(const struct observed *o, struct strbuf *sb)
{
    size_t i;

    for (i = 0; i < o->n; i++) {
        if (o->b[i].st != B_FAILED)
            continue;
        if (sb->len)
            strbuf_addch(sb, ',');
        strbuf_adds(sb, o->b[i].wells);
    }
}

/* The merge Job's outcome: the worker's termination message holds its summary. */
static json_t *merge_results(const struct ana *a, const struct ctl *c, const struct observed *o)
{
    const char *msg = o->merge.pods.term_message;
    struct strbuf path = STRBUF_INIT, miss = STRBUF_INIT;
    json_t *summary = NULL, *res;

    obj_output_dir(a, c->cfg, "results", &path);
    if (msg && msg[0] == '{')
        summary = json_loads(msg, 0, NULL);
    missing_wells(o, &miss);
    res = json_pack("{s:s,s:o}", "path", path.buf, "tables",
                    json_is_array(json_object_get(summary, "tables"))
                        ? json_incref(json_object_get(summary, "tables")) : json_array());
    if (res && miss.len)
        json_object_set_new(res, "missingWells", json_string(miss.buf));
    json_decref(summary);
    strbuf_release(&path);
    strbuf_release(&miss);
    return res;
}

/* ---- the pass -------------------------------------------------------- */

static int split_key(const char *key, char *ns, size_t nslen, const char **name)
{
    const char *slash = strchr(key, '/');

    if (!slash || (size_t)(slash - key) >= nslen)
        return -1;
    memcpy(ns, key, (size_t)(slash - key));
    ns[slash - key] = '\0';
    *name = slash + 1;
    return 0;
}

static int fail_analysis(struct ctl *c, const struct ana *a, const char *reason,
                         const char *message, json_t *set, struct err *e)
{
    const char *phase = jstr(a->status, "phase");

    if (!phase || strcmp(phase, "Failed") != 0)
        event(c, a, KUBE_EVENT_WARNING, "Failed", "%s", message);
    return write_status(c, a, status_with(a, P_FAILED, reason, message, set), e);
}

/*
 * dependsOn: every named Analysis must have Succeeded before this one is
 * planned. Returns 0 when they have; 1 after recording Blocked
 * (WaitingForDependency) -- their status changes wake this one; 2 after
 * recording Failed (DependencyFailed) -- never waiting for what cannot
 * come: one failed, or one still does not exist missingDependencyGraceSeconds
 * after this Analysis was created; -1 with e on trouble writing the status.
 */
static int deps_step(struct ctl *c, const struct ana *a, double *requeue_s, struct err *e)
{
    struct strbuf msg = STRBUF_INIT;
    const json_t *name;
    double age = seconds_since(a->created), grace = c->cfg->missing_dep_grace_s;
    size_t i;
    int rc = 0, missing = 0;

    json_array_foreach(a->depends_on, i, name) {
        const char *dep = json_string_value(name), *phase;
        json_t *obj;

        if (!dep)
            continue;
        obj = informer_get(c->analyses, a->ns, dep);
        if (!obj && age >= grace) {
            strbuf_addf(&msg, "dependency %s not found: no Analysis of that name in namespace "
                        "%s, %.0f s after this one was created", dep, a->ns, age);
            rc = fail_analysis(c, a, "DependencyFailed", msg.buf, NULL, e) < 0 ? -1 : 2;
            goto out;
        }
        missing |= !obj;
        phase = jstr(json_object_get(obj, "status"), "phase");
        if (phase && strcmp(phase, "Failed") == 0) {
            const json_t *conds = jpath(obj, "status", "conditions"), *cnd;
            const char *why = NULL;
            size_t k;

            json_array_foreach(conds, k, cnd) {
                if (jstr(cnd, "type") && strcmp(jstr(cnd, "type"), "Failed") == 0)
                    why = jstr(cnd, "message");
            }
            strbuf_addf(&msg, "dependency %s failed%s%s", dep, why ? ": " : "", why ? why : "");
            json_decref(obj);
            rc = fail_analysis(c, a, "DependencyFailed", msg.buf, NULL, e) < 0 ? -1 : 2;
            goto out;
        }
        if (!phase || strcmp(phase, "Succeeded") != 0) {
            if (msg.len)
                strbuf_adds(&msg, ", ");
            strbuf_addf(&msg, "%s (%s)", dep, !obj ? "not found" : phase ? phase : "Pending");
        }
        json_decref(obj);
    }
    if (msg.len) {
        char text[ERR_MSG_MAX];

        snprintf(text, sizeof(text), "waiting for %s", msg.buf);
        rc = write_status(c, a, status_with(a, P_BLOCKED, "WaitingForDependency", text, NULL),
                          e) < 0 ? -1 : 1;
        /*
         * A dependency that does not exist yet makes no event: look again now
         * and then, and when its grace ends.
         */
        *requeue_s = 30;
        if (missing && grace - age + 1 < *requeue_s)
            *requeue_s = grace - age + 1 > 0.5 ? grace - age + 1 : 0.5;
    }
out:
    strbuf_release(&msg);
    return rc;
}

/* Whether the recorded plan is partial: the plate was still being imaged. */
static int plan_partial(const struct ana *a)
{
    return json_is_false(jpath(a->status, "plan", "final"));
}

/* The status message of a plan, and its Events when it differs from the recorded one. */
static void plan_message(struct ctl *c, const struct ana *a, const json_t *summary,
                         const char *incomplete, struct strbuf *msg)
{
    int news = !json_equal(summary, json_object_get(a->status, "plan"));

    strbuf_addf(msg, "%lld batches of %lld image sets in %lld wells",
                (long long)json_integer_value(json_object_get(summary, "batches")),
                (long long)json_integer_value(json_object_get(summary, "imageSets")),
                (long long)json_integer_value(json_object_get(summary, "wells")));
    if (json_is_false(json_object_get(summary, "final")))
        strbuf_adds(msg, " so far: the plate is still being imaged; wells are added as their "
                         "images complete, the rest when imaging finishes");
    if (incomplete) {
        strbuf_addf(msg, "; %lld incomplete image sets left out: %s",
                    (long long)json_integer_value(json_object_get(summary, "incompleteImageSets")),
                    incomplete);
        if (news)
            event(c, a, KUBE_EVENT_WARNING, "IncompleteImageSets", "%s", incomplete);
    }
    if (news)
        event(c, a, KUBE_EVENT_NORMAL, "Planned", "%s", msg->buf);
}

/*
 * Plans, records the plan, and returns 1 to come back once the cache has
 * caught up. A partial plan without a batch yet (no well complete) is
 * Blocked, planned again on each wake (the images NOTIFY) and every 30 s.
 */
static int plan_step(struct ctl *c, const struct ana *a, double *requeue_s, struct err *e)
{
    json_t *summary = NULL;
    char *incomplete = NULL;
    struct strbuf msg = STRBUF_INIT;
    int rc, waiting;

    if (!plan_partial(a) && ctl_recently_planned(c, a->uid)) {
        /* Our own status write has not reached the cache yet. */
        *requeue_s = 0.5;
        return 1;
    }
    rc = ctl_plan(c, a, &summary, &incomplete, e);
    if (rc == 1) {
        event(c, a, KUBE_EVENT_NORMAL, "Blocked", "%s", e->msg);
        rc = write_status(c, a, status_with(a, P_BLOCKED, "AcquisitionNotFinished", e->msg, NULL),
                          e);
        *requeue_s = 30;
        return rc < 0 ? -1 : 1;
    }
    if (rc < 0) {
        if (e->code != CTL_E_USER)
            return -1;
        return fail_analysis(c, a, "PlanFailed", e->msg, NULL, e);
    }
    waiting = json_integer_value(json_object_get(summary, "batches")) == 0;
    plan_message(c, a, summary, incomplete, &msg);
    rc = write_status(c, a,
                      status_with(a, waiting ? P_BLOCKED : P_RUNNING,
                                  waiting ? "AcquisitionNotFinished" : "Planned", msg.buf,
                                  json_pack("{s:O,s:{s:O,s:O,s:i,s:i,s:i}}", "plan", summary,
                                            "batches", "total",
                                            json_object_get(summary, "batches"), "pending",
                                            json_object_get(summary, "batches"), "running", 0,
                                            "succeeded", 0, "failed", 0)),
                      e);
    if (rc == 0)
        ctl_planned(c, a->uid);
    json_decref(summary);
    free(incomplete);
    strbuf_release(&msg);
    *requeue_s = waiting ? 30 : 0.5;
    return rc < 0 ? -1 : 1;
}

/*
 * A partial plan is made again on every pass while the plate is imaged:
 * wells that completed since get their batches (ConfigMaps), and once
 * imaging finishes the plan becomes final. Returns 0 when nothing changed
 * (the pass goes on; the images NOTIFY wakes the Analysis, or a look in
 * 30 s at the latest); 1 after recording the grown plan or a failure
 * (*requeue_s set); -1 with e on trouble.
 */
static int replan(struct ctl *c, const struct ana *a, const struct observed *o,
                  double *requeue_s, struct err *e)
{
    json_t *summary = NULL, *set;
    char *incomplete = NULL, key[300];
    struct strbuf msg = STRBUF_INIT;
    int rc = ctl_plan(c, a, &summary, &incomplete, e);

    *requeue_s = 0.5;
    if (rc < 0) {
        if (e->code == CTL_E_USER)
            rc = fail_analysis(c, a, "PlanFailed", e->msg, NULL, e) < 0 ? -1 : 1;
        goto out;
    }
    /* rc 1: the opt-in was taken back; what runs goes on, the plan ends with the imaging. */
    if (rc == 1 || json_equal(summary, json_object_get(a->status, "plan"))) {
        ana_key(a, key, sizeof(key));
        wq_add_after(c->queue, key, 30, NULL);
        rc = 0;
        goto out;
    }
    plan_message(c, a, summary, incomplete, &msg);
    set = json_pack("{s:O,s:o}", "plan", summary, "batches",
                    batch_counts(o, (long)json_integer_value(json_object_get(summary, "batches"))));
    rc = write_status(c, a, status_with(a, P_RUNNING, "Planned", msg.buf, set), e) < 0 ? -1 : 1;
    if (rc == 1)
        ctl_planned(c, a->uid);
out:
    json_decref(summary);
    free(incomplete);
    strbuf_release(&msg);
    return rc;
}

static int run_step(struct ctl *c, const struct ana *a, long total, double *requeue_s,
                    struct err *e)
{
    struct observed o;
    struct strbuf msg = STRBUF_INIT, miss = STRBUF_INIT;
    json_t *set = NULL;
    char key[300];
    const char *outcome;
    struct window_claim claim;
    size_t i;
    int rc = -1, grant, all_done;

    ana_key(a, key, sizeof(key));
    if (observe(c, a, &o, e) < 0)
        goto out;
    if (plan_partial(a) && (rc = replan(c, a, &o, requeue_s, e)) != 0)
        goto out;
    rc = -1;
    if ((long)o.n < total) {
        /*
         * The cache has not seen every ConfigMap yet; if that lasts, one was
         * removed by hand: planning again recreates it (creates are idempotent).
         */
        if (!ctl_recently_planned(c, a->uid)) {
            json_t *summary = NULL;
            char *inc = NULL;

            if (ctl_plan(c, a, &summary, &inc, e) < 0)
                goto out;
            ctl_planned(c, a->uid);
            json_decref(summary);
            free(inc);
        }
        *requeue_s = 0.5;
        rc = 1;
        goto out;
    }
    if (remember_successes(c, a, &o, e) < 0 || retry_oom(c, a, &o, e) < 0)
        goto out;
    for (i = 0; i < o.n; i++) {
        struct batch *b = &o.b[i];
        struct log_ctx lc = { key, b->id, b->wells };

        if (b->st == B_FAILED && !was_failed_before(a, b->id)) {
            log_warn(&lc, "batch failed: %s: %s", b->reason, b->message);
            event(c, a, KUBE_EVENT_WARNING, "BatchFailed", "batch %s (wells %s): %s: %s", b->id,
                  b->wells, b->reason, b->message);
        }
    }
    set = json_pack("{s:o,s:o,s:o}", "batches", batch_counts(&o, total), "failedBatches",
                    failed_list(&o), "batchMemory", batch_memory(a, &o));

    if (o.counts[B_FAILED] > a->max_failed) {
        window_release(c->window, key);
        if (delete_waiting(c, a, &o, e) < 0)
            goto out;
        strbuf_addf(&msg, "%ld of %ld batches failed (at most %d tolerated)", o.counts[B_FAILED],
                    total, a->max_failed);
        for (i = 0; i < o.n && i < 1000; i++) {
            if (o.b[i].st == B_FAILED) {
                strbuf_addf(&msg, "; first: batch %s (wells %s): %s: %s", o.b[i].id, o.b[i].wells,
                            o.b[i].reason, o.b[i].message);
                break;
            }
        }
        rc = fail_analysis(c, a, "TooManyFailedBatches", msg.buf, set, e);
        set = NULL;
        goto out;
    }

    /*
     * A Job whose pod the quota refuses is backed off by the Job controller
     * for up to minutes: the window shares out what the quota can take now,
     * by priority, counting Jobs that have not got their pod yet.
     */
    claim = (struct window_claim){ .key = key, .ns = a->ns, .priority = a->priority,
                                   .created = a->created, .waiting = (int)o.counts[B_WAITING],
                                   .nopod = (int)o.nopod, .started = (int)(o.n - o.counts[B_NEW]),
                                   .want = (int)o.counts[B_NEW],
                                   .quota_room = ctl_quota_room(c, a->ns) };
    /* The merge pod takes quota too, and comes after the last batch. */
    all_done = o.counts[B_SUCCEEDED] + o.counts[B_FAILED] >= total && !plan_partial(a);
    if (o.merge.name) {
        claim.started++;
        if (!obj_job_outcome(o.merge.verdict, &o.merge.pods) && !o.merge.pods.started) {
            claim.waiting++;
            claim.nopod += o.merge.pods.count == 0;
        }
    } else if (all_done) {
        claim.want++;
    }
    grant = window_acquire(c->window, &claim);
    if (create_jobs(c, a, &o, grant, e) < 0)
        goto out;
    json_object_set_new(set, "batches", batch_counts(&o, total));

    if (!all_done) {
        strbuf_addf(&msg, "%ld / %ld batches done", o.counts[B_SUCCEEDED] + o.counts[B_FAILED],
                    total);
        rc = write_status(c, a, status_with(a, P_RUNNING, "BatchesRunning", msg.buf, set), e);
        set = NULL;
        goto out;
    }

    /* Every batch is done: the merge, once the window and quota have room for it. */
    outcome = obj_job_outcome(o.merge.verdict, &o.merge.pods);
    if (outcome)
        window_release(c->window, key);
    if (!o.merge.name && grant > 0) {
        json_t *failed = json_object_get(set, "failedBatches");
        json_t *job = obj_merge_job(a, c->cfg, failed);
        struct kube_res r = KUBE_RES_JOBS;
        struct kube_error ke;
        json_t *res;

        r.ns = a->ns;
        res = job ? kube_create(c->kc, &r, job, NULL, &ke) : NULL;
        json_decref(job);
        if (!res && !kube_is_already_exists(&ke)) {
            err_set(e, ke.err.code, "create the merge Job: %s", ke.err.msg);
            goto out;
        }
        if (res) {
            missing_wells(&o, &miss);
            event(c, a, KUBE_EVENT_NORMAL, "Merging",
                  "merging the tables of %ld batches%s%s", o.counts[B_SUCCEEDED],
                  miss.len ? "; missing wells " : "", miss.buf);
        }
        json_decref(res);
    }
    if (outcome && strcmp(outcome, "Complete") == 0) {
        json_t *results = merge_results(a, c, &o);
        const char *mw = jstr(results, "missingWells");

        strbuf_addf(&msg, "merged %ld batches into %s", o.counts[B_SUCCEEDED],
                    jstr(results, "path"));
        if (mw && *mw)
            strbuf_addf(&msg, "; missing wells (failed batches): %s", mw);
        json_object_set_new(set, "results", results);
        if (!jstr(a->status, "phase") || strcmp(jstr(a->status, "phase"), "Succeeded") != 0)
            event(c, a, KUBE_EVENT_NORMAL, "Succeeded", "%s", msg.buf);
        rc = write_status(c, a, status_with(a, P_SUCCEEDED, "Merged", msg.buf, set), e);
        set = NULL;
        goto out;
    }
    if (outcome) {
        const char *why = o.merge.pods.term_message ? o.merge.pods.term_message
                          : o.merge.message ? o.merge.message
                          : o.merge.reason ? o.merge.reason : "unknown";

        strbuf_addf(&msg, "the merge failed: %s", why);
        rc = fail_analysis(c, a, "MergeFailed", msg.buf, set, e);
        set = NULL;
        goto out;
    }
    if (o.merge.name || grant > 0)
        strbuf_addf(&msg, "merging %ld batches", o.counts[B_SUCCEEDED]);
    else
        strbuf_addf(&msg, "%ld batches done; the merge waits for room in the window or the "
                    "namespace's pod quota", o.counts[B_SUCCEEDED]);
    rc = write_status(c, a, status_with(a, P_MERGING, "Merging", msg.buf, set), e);
    set = NULL;
out:
    json_decref(set);
    observed_release(&o);
    strbuf_release(&msg);
    strbuf_release(&miss);
    return rc;
}

struct wake_ctx {
    struct ctl *c;
    const char *self;
};

/* Others that wait for room get another pass; this one just had its turn. */
static void wake(const char *key, void *ud)
{
    struct wake_ctx *w = ud;

    if (strcmp(key, w->self) != 0)
        ctl_enqueue(w->c, key);
}

int ctl_reconcile(struct ctl *c, const char *key, double *requeue_s, struct err *e)
{
    struct wake_ctx wc = { c, key };
    char ns[254];
    const char *name, *phase;
    json_t *obj;
    struct ana a;
    long total;
    int rc = 0;

    *requeue_s = 0;
    if (split_key(key, ns, sizeof(ns), &name) < 0)
        return 0;
    obj = informer_get(c->analyses, ns, name);
    if (!obj) {
        window_release(c->window, key);
        goto wake;
    }
    if (ana_parse(&a, obj, e) < 0) {
        struct ana bare = { .obj = obj };

        /* Enough of the object to report on it. */
        bare.ns = ns;
        bare.name = name;
        bare.uid = jstr(json_object_get(obj, "metadata"), "uid");
        bare.status = json_object_get(obj, "status");
        bare.generation = json_integer_value(jpath(obj, "metadata", "generation"));
        rc = bare.uid ? fail_analysis(c, &bare, "InvalidSpec", e->msg, NULL, e) : 0;
        json_decref(obj);
        return rc;
    }
    json_decref(obj);
    phase = jstr(a.status, "phase");
    if (a.deleting || (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))) {
        window_release(c->window, key);
        goto out;
    }
    if (spec_changed(&a) && !has_condition(a.status, "SpecChanged")) {
        char text[512];

        snprintf(text, sizeof(text), SPEC_CHANGED_FMT, a.generation, planned_generation(&a));
        event(c, &a, KUBE_EVENT_WARNING, "SpecChangedAfterPlanning", "%s", text);
    }
    total = (long)json_integer_value(jpath(a.status, "plan", "batches"));
    if (total <= 0) {
        rc = deps_step(c, &a, requeue_s, e);
        if (rc == 0)
            rc = plan_step(c, &a, requeue_s, e);
        else if (rc == 2)
            rc = 0;
    }
    else
        rc = run_step(c, &a, total, requeue_s, e);
out:
    ana_release(&a);
wake:
    window_wake(c->window, wake, &wc);
    return rc;
}
