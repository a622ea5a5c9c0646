/* agent: Pods bound to this node run as local processes, reported back; see agent.h. */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "container.h"
#include "fileutil.h"
#include "fsutil.h"
#include "kube_watch.h"
#include "log.h"
#include "memlimit.h"
#include "monotime.h"
#include "mountpt.h"
#include "podlog.h"
#include "podspec.h"
#include "proctree.h"
#include "timefmt.h"
#include "volume.h"

#define POD_IP "127.0.0.1"
#define TICK_MS 200
#define DRAIN_MS 2000            /* wait this long for a dead container's log to close */
#define STOP_GRACE_MS 3000       /* SIGTERM to SIGKILL when the agent stops */
#define CONFIG_RETRY_MS 5000
#define API_RETRY_MS 2000
#define BACKOFF_BASE_MS 1000
#define BACKOFF_CAP_MS 60000
#define MESSAGE_MAX 4096         /* the kubelet's cap on a termination message */
#define FALLBACK_LINES 80
#define FALLBACK_BYTES 2048

enum ctr_state { C_WAITING, C_RUNNING, C_EXITED, C_BACKOFF, C_TERMINATED };

/* One ended run of a container. */
struct term {
    int code;
    char reason[32];
    char *message;
    time_t started, finished;
    int run;                      /* restart number of that run */
};

struct ctr_rec {
    char *name;
    char *image;
    enum ctr_state state;
    struct podspec_container spec;
    int built;
    struct ctr_proc proc;
    struct memlimit mem;
    struct mountpt_hold holds;
    struct ctr_mount *mounts;
    size_t n_mounts;
    char *log_path;               /* current run's log (guarded by the agent lock) */
    int restarts;                 /* runs started so far minus one */
    int wait_status;              /* from waitpid */
    long long drain_deadline;
    long long restart_at;
    char wait_reason[48];
    char *wait_message;
    struct term cur, last;
    int has_cur, has_last;
};

struct pod_rec {
    char *uid, *ns, *name;
    char *dir;
    json_t *pod;                  /* latest object seen */
    struct ctr_rec *c;
    size_t n;
    struct vol_set vols;
    int vols_ready;
    int started;                  /* containers have been started */
    int terminal;                 /* phase Succeeded/Failed reported or found */
    time_t start_time;
    long long retry_at;
    char *fail_reason, *fail_message;   /* a pod-level failure */
    int stop_fail;                /* the agent's stop interrupted it: report it Failed */
    int deleting;
    long long kill_deadline;
    int killed;
    int delete_sent;
    int gone;                     /* deleted from the API: forget once dead */
    int dirty;                    /* status to send */
    long long status_retry_at;
    int ready;
    time_t ready_time;
    struct pod_rec *next;
};

struct event {
    enum kube_watch_type type;    /* BOOKMARK stands for "synced" */
    json_t *obj;
    struct event *next;
};

struct agent {
    struct kube_client *kc;
    const struct agent_config *cfg;
    struct pod_rec *pods;
    pthread_mutex_t lock;         /* pods list and log paths, against the log server */
    struct kube_watch *watch;
    pthread_t watch_thread;
    int watch_started;
    pthread_mutex_t qlock;
    struct event *qhead, *qtail;
    int evfd;
    int root;
    int stopping;
};

static long long now_ms(void)
{
    return (long long)(monotime_now() * 1000.0);
}

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static const char *meta(const json_t *obj, const char *key)
{
    return str(json_object_get(obj, "metadata"), key);
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
}

/* ---- the event queue (watch thread -> supervisor) --------------------- */

static void enqueue(struct agent *a, enum kube_watch_type type, json_t *obj)
{
    struct event *ev = calloc(1, sizeof(*ev));
    uint64_t one = 1;

    if (!ev) {
        log_error(NULL, "out of memory: pod event dropped");
        return;
    }
    ev->type = type;
    ev->obj = json_incref(obj);
    pthread_mutex_lock(&a->qlock);
    if (a->qtail)
        a->qtail->next = ev;
    else
        a->qhead = ev;
    a->qtail = ev;
    pthread_mutex_unlock(&a->qlock);
    if (write(a->evfd, &one, sizeof(one)) < 0)
        log_warn(NULL, "wake supervisor: %s", strerror(errno));
}

static struct event *dequeue(struct agent *a)
{
    struct event *ev;

    pthread_mutex_lock(&a->qlock);
    ev = a->qhead;
    if (ev) {
        a->qhead = ev->next;
        if (!a->qhead)
            a->qtail = NULL;
    }
    pthread_mutex_unlock(&a->qlock);
    return ev;
}

static void on_watch_event(void *ud, enum kube_watch_type type, json_t *obj)
{
    enqueue(ud, type, obj);
}

static void on_watch_synced(void *ud)
{
    enqueue(ud, KUBE_WATCH_BOOKMARK, NULL);
}

static void *watch_main(void *arg)
{
    struct agent *a = arg;
    struct kube_error ke;

    if (kube_watch_run(a->watch, &ke) < 0)
        log_error(NULL, "pod watch ended: %s", ke.err.msg);
    return NULL;
}

/* ---- reading ConfigMaps, Secrets, claims for podspec and volume -------- */

static json_t *api_get(void *arg, const char *resource, const char *ns, const char *name,
                       int *missing, struct err *e)
{
    struct agent *a = arg;
    struct kube_res res = { .version = "v1", .resource = resource, .ns = ns, .name = name };
    struct kube_error ke;
    json_t *obj = kube_get(a->kc, &res, NULL, &ke);

    *missing = !obj && kube_is_not_found(&ke);
    if (!obj && !*missing)
        *e = ke.err;
    return obj;
}

/* ---- records ----------------------------------------------------------- */

static struct pod_rec *find_pod(struct agent *a, const char *ns, const char *name)
{
    struct pod_rec *p;

    /* A record whose pod is gone only waits for its processes to end. */
    for (p = a->pods; p; p = p->next)
        if (!p->gone && strcmp(p->ns, ns) == 0 && strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

static int ctr_live(const struct ctr_rec *c)
{
    return c->state == C_RUNNING || c->state == C_EXITED;
}

static int pod_live(const struct pod_rec *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        if (ctr_live(&p->c[i]))
            return 1;
    return 0;
}

static void term_clear(struct term *t)
{
    free(t->message);
    memset(t, 0, sizeof(*t));
}

static void release_run(struct ctr_rec *c);

static void ctr_rec_free(struct ctr_rec *c)
{
    podspec_container_free(&c->spec);
    release_run(c);
    free(c->name);
    free(c->image);
    free(c->log_path);
    free(c->wait_message);
    term_clear(&c->cur);
    term_clear(&c->last);
}

static void pod_rec_free(struct pod_rec *p)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        ctr_rec_free(&p->c[i]);
    free(p->c);
    vol_set_free(&p->vols);
    json_decref(p->pod);
    free(p->uid);
    free(p->ns);
    free(p->name);
    free(p->dir);
    free(p->fail_reason);
    free(p->fail_message);
    free(p);
}

static void remove_pod(struct agent *a, struct pod_rec *p)
{
    struct pod_rec **pp;
    struct err e;

    pthread_mutex_lock(&a->lock);
    for (pp = &a->pods; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pthread_mutex_unlock(&a->lock);
    if (fileutil_rm_rf(p->dir, &e) < 0)
        log_warn(NULL, "pod %s/%s: %s", p->ns, p->name, e.msg);
    log_info(NULL, "pod %s/%s: forgotten", p->ns, p->name);
    pod_rec_free(p);
}

/* A record for pod, with one container record per spec.containers entry. */
static struct pod_rec *new_pod(struct agent *a, json_t *pod)
{
    const json_t *ctrs = json_object_get(json_object_get(pod, "spec"), "containers"), *c;
    struct pod_rec *p = calloc(1, sizeof(*p));
    struct strbuf dir = STRBUF_INIT;
    size_t i;

    if (!p)
        return NULL;
    strbuf_addf(&dir, "%s/pods/%s", a->cfg->state_dir, meta(pod, "uid"));
    p->dir = strbuf_detach(&dir, NULL);
    p->uid = strdup(meta(pod, "uid"));
    p->ns = strdup(meta(pod, "namespace"));
    p->name = strdup(meta(pod, "name"));
    p->pod = json_incref(pod);
    p->c = calloc(json_array_size(ctrs) + 1, sizeof(*p->c));
    if (!p->dir || !p->uid || !p->ns || !p->name || !p->c) {
        pod_rec_free(p);
        return NULL;
    }
    json_array_foreach(ctrs, i, c) {
        p->c[i].name = strdup(str(c, "name") ? str(c, "name") : "");
        p->c[i].image = strdup(str(c, "image") ? str(c, "image") : "");
        snprintf(p->c[i].wait_reason, sizeof(p->c[i].wait_reason), "ContainerCreating");
        p->n++;
    }
    pthread_mutex_lock(&a->lock);
    p->next = a->pods;
    a->pods = p;
    pthread_mutex_unlock(&a->lock);
    return p;
}

static char *log_path(const struct pod_rec *p, const char *ctr, int run)
{
    struct strbuf sb = STRBUF_INIT;

    strbuf_addf(&sb, "%s/logs/%s/%d.log", p->dir, ctr, run);
    return strbuf_detach(&sb, NULL);
}

/* ---- status ------------------------------------------------------------ */

static json_t *term_json(const struct pod_rec *p, const struct ctr_rec *c, const struct term *t)
{
    char started[TIMEFMT_MAX], finished[TIMEFMT_MAX];
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "exitCode", t->code, "reason", t->reason,
                          "startedAt", timefmt_seconds(started, t->started),
                          "finishedAt", timefmt_seconds(finished, t->finished), "containerID",
                          "");

    json_object_set_new(j, "containerID",
                        json_sprintf("plateop://%s-%s-%d", p->uid, c->name, t->run));
    if (t->message && *t->message)
        json_object_set_new(j, "message", json_string(t->message));
    return json_pack("{s:o}", "terminated", j);
}

static json_t *ctr_status(const struct pod_rec *p, const struct ctr_rec *c)
{
    char ts[TIMEFMT_MAX];
    json_t *state, *st;

    switch (c->state) {
    case C_RUNNING:
    case C_EXITED:
        state = json_pack("{s:{s:s}}", "running", "startedAt",
                          timefmt_seconds(ts, c->proc.started.tv_sec));
        break;
    case C_TERMINATED:
        state = term_json(p, c, &c->cur);
        break;
    default:
        state = json_pack("{s:{s:s}}", "waiting", "reason",
                          c->state == C_BACKOFF ? "CrashLoopBackOff" : c->wait_reason);
        if (c->wait_message && c->state == C_WAITING)
            json_object_set_new(json_object_get(state, "waiting"), "message",
                                json_string(c->wait_message));
        break;
    }
    st = json_pack("{s:s, s:s, s:s, s:b, s:b, s:i, s:o, s:o}", "name", c->name, "image",
                   c->image, "imageID", "", "ready", c->state == C_RUNNING, "started",
                   ctr_live(c), "restartCount", c->restarts, "state", state, "lastState",
                   c->has_last ? term_json(p, c, &c->last) : json_object());
    if (ctr_live(c) || c->state == C_TERMINATED)
        json_object_set_new(st, "containerID",
                            json_sprintf("plateop://%s-%s-%d", p->uid, c->name, c->restarts));
    return st;
}

/* Pending, Running, Succeeded or Failed, from the containers' states. */
static const char *pod_phase(const struct pod_rec *p)
{
    size_t i, done = 0, failed = 0;

    if (p->fail_reason)
        return "Failed";
    for (i = 0; i < p->n; i++) {
        if (p->c[i].state == C_TERMINATED) {
            done++;
            failed += p->c[i].cur.code != 0;
        }
    }
    if (p->n > 0 && done == p->n)
        return failed ? "Failed" : "Succeeded";
    return p->started ? "Running" : "Pending";
}

static json_t *pod_condition(const char *type, int ok, const char *reason, time_t since)
{
    char ts[TIMEFMT_MAX];
    json_t *c = json_pack("{s:s, s:s, s:n, s:s}", "type", type, "status", ok ? "True" : "False",
                          "lastProbeTime", "lastTransitionTime", timefmt_seconds(ts, since));

    if (reason)
        json_object_set_new(c, "reason", json_string(reason));
    return c;
}

static json_t *pod_status(struct pod_rec *p)
{
    const char *phase = pod_phase(p);
    int terminal = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
    int ready = !terminal && p->n > 0;
    const char *why = terminal ? "PodCompleted" : "ContainersNotReady";
    char ts[TIMEFMT_MAX];
    json_t *status, *ctrs = json_array();
    size_t i;

    for (i = 0; i < p->n; i++) {
        ready = ready && p->c[i].state == C_RUNNING;
        json_array_append_new(ctrs, ctr_status(p, &p->c[i]));
    }
    if (ready != p->ready || !p->ready_time) {
        p->ready = ready;
        p->ready_time = time(NULL);
    }
    status = json_pack(
        "{s:s, s:s, s:s, s:[{s:s}], s:s, s:o, s:[o, o, o, o]}", "phase", phase, "hostIP",
        POD_IP, "podIP", POD_IP, "podIPs", "ip", POD_IP, "startTime",
        timefmt_seconds(ts, p->start_time), "containerStatuses", ctrs, "conditions",
        pod_condition("Initialized", 1, terminal ? why : NULL, p->start_time),
        pod_condition("Ready", ready, ready ? NULL : why, p->ready_time),
        pod_condition("ContainersReady", ready, ready ? NULL : why, p->ready_time),
        pod_condition("PodScheduled", 1, NULL, p->start_time));
    if (p->fail_reason) {
        json_object_set_new(status, "reason", json_string(p->fail_reason));
        json_object_set_new(status, "message", json_string(p->fail_message));
    }
    return status;
}

/* Sends the pod's status as a merge patch with its UID as precondition. */
static void send_status(struct agent *a, struct pod_rec *p)
{
    struct kube_res res = KUBE_RES_PODS;
    struct kube_error ke;
    json_t *status = pod_status(p), *patch, *resp;
    const char *phase = json_string_value(json_object_get(status, "phase"));

    res.ns = p->ns;
    res.name = p->name;
    res.subresource = "status";
    patch = json_pack("{s:{s:s}, s:o}", "metadata", "uid", p->uid, "status", status);
    resp = patch ? kube_patch(a->kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke) : NULL;
    if (resp || kube_is_not_found(&ke) || kube_is_invalid(&ke) || kube_is_conflict(&ke)) {
        if (!resp)
            log_warn(NULL, "pod %s/%s: status not taken: %s", p->ns, p->name, ke.err.msg);
        else
            log_info(NULL, "pod %s/%s: %s", p->ns, p->name, phase);
        p->dirty = 0;
        p->terminal = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
    } else {
        log_warn(NULL, "pod %s/%s: report status: %s", p->ns, p->name, ke.err.msg);
        p->status_retry_at = now_ms() + API_RETRY_MS;
    }
    json_decref(patch);
    json_decref(resp);
}

/* ---- starting containers ------------------------------------------------ */

static int by_target_length(const void *x, const void *y)
{
    size_t lx = strlen(((const struct ctr_mount *)x)->target);
    size_t ly = strlen(((const struct ctr_mount *)y)->target);

    return lx < ly ? -1 : lx > ly;
}

/* Appends a bind of source at target to c->mounts. */
static int add_mount(struct ctr_rec *c, const char *source, const char *target, int ro)
{
    struct ctr_mount *m;
    struct stat st;
    void *nm = realloc(c->mounts, (c->n_mounts + 1) * sizeof(*c->mounts));

    if (!nm)
        return -1;
    c->mounts = nm;
    m = &c->mounts[c->n_mounts];
    memset(m, 0, sizeof(*m));
    m->source = strdup(source);
    m->target = strdup(target);
    m->read_only = ro;
    m->is_file = stat(source, &st) == 0 && !S_ISDIR(st.st_mode);
    c->n_mounts++;
    return m->source && m->target ? 0 : -1;
}

/* Works out c's binds: its volume mounts and its termination-message file. */
static int plan_mounts(struct pod_rec *p, struct ctr_rec *c, const char *term_file,
                       struct err *e)
{
    struct strbuf src = STRBUF_INIT;
    size_t i, j;
    int rc = -1;

    for (i = 0; i < c->spec.n_mounts; i++) {
        const struct podspec_mount *pm = &c->spec.mounts[i];
        const char *vol = vol_find(&p->vols, pm->volume);

        if (!vol) {
            err_set(e, CTR_ESTART, "volumeMount %s: no volume of that name", pm->volume);
            goto out;
        }
        strbuf_reset(&src);
        strbuf_adds(&src, vol);
        /* The kubelet creates a missing subPath directory in the volume. */
        if (pm->sub_path && (strbuf_addf(&src, "/%s", pm->sub_path) < 0 ||
                             (access(src.buf, F_OK) < 0 && fileutil_mkdir_p(src.buf, e) < 0)))
            goto out;
        if (add_mount(c, src.buf, pm->path, pm->read_only) < 0)
            goto oom;
    }
    if (add_mount(c, term_file, c->spec.termination_path, 0) < 0)
        goto oom;
    qsort(c->mounts, c->n_mounts, sizeof(*c->mounts), by_target_length);
    for (i = 0; i < c->n_mounts; i++) {
        struct ctr_mount *m = &c->mounts[i];

        for (j = 0; j < i && !m->nested; j++) {
            size_t len = strlen(c->mounts[j].target);

            m->nested = strncmp(m->target, c->mounts[j].target, len) == 0 &&
                        (m->target[len] == '/' || c->mounts[j].target[len - 1] == '/');
        }
        if (!m->nested && mountpt_hold(&c->holds, m->target, m->is_file, e) < 0)
            goto out;
    }
    rc = 0;
    goto out;
oom:
    err_set(e, ENOMEM, "out of memory");
out:
    strbuf_release(&src);
    return rc;
}

static void write_pid_file(const struct pod_rec *p, const struct ctr_rec *c)
{
    struct strbuf path = STRBUF_INIT, val = STRBUF_INIT;
    struct err e;

    strbuf_addf(&path, "%s/run/%s.pid", p->dir, c->name);
    strbuf_addf(&val, "%d %llu\n", (int)c->proc.pid, proctree_start_time(c->proc.pid));
    if (fsutil_write_file(path.buf, val.buf, val.len, 0600, &e) < 0)
        log_warn(NULL, "pod %s/%s: %s", p->ns, p->name, e.msg);
    strbuf_release(&path);
    strbuf_release(&val);
}

static void container_ended(struct agent *a, struct pod_rec *p, struct ctr_rec *c);

/* Releases what a run of c held (mount points, cgroup, binds). */
static void release_run(struct ctr_rec *c)
{
    size_t i;

    mountpt_release(&c->holds);
    memlimit_release(&c->mem);
    for (i = 0; i < c->n_mounts; i++) {
        free((char *)c->mounts[i].source);
        free(c->mounts[i].target);
    }
    free(c->mounts);
    c->mounts = NULL;
    c->n_mounts = 0;
}

/* Starts one run of container c; a failure becomes a StartError termination. */
static void start_container(struct agent *a, struct pod_rec *p, struct ctr_rec *c)
{
    struct strbuf dir = STRBUF_INIT, term = STRBUF_INIT, id = STRBUF_INIT;
    struct ctr_launch l;
    char *lp = log_path(p, c->name, c->restarts);
    struct err e;
    int ok = 0;

    err_clear(&e);
    strbuf_addf(&dir, "%s/logs/%s", p->dir, c->name);
    strbuf_addf(&term, "%s/termination/%s", p->dir, c->name);
    strbuf_addf(&id, "%s-%s", p->uid, c->name);
    if (!lp || fileutil_mkdir_p(dir.buf, &e) < 0 ||
        fsutil_write_file(term.buf, "", 0, 0666, &e) < 0)
        goto out;
    pthread_mutex_lock(&a->lock);
    free(c->log_path);
    c->log_path = lp;
    pthread_mutex_unlock(&a->lock);
    lp = NULL;
    if (!a->root && c->spec.n_mounts > 0) {
        err_set(&e, CTR_ESTART, "volume mounts need the node agent to run as root");
        goto out;
    }
    if (!a->root && (c->spec.run_as_user_set || c->spec.run_as_group_set) &&
        (c->spec.run_as_user != geteuid() || c->spec.run_as_group != getegid())) {
        err_set(&e, CTR_ESTART, "runAsUser/runAsGroup need the node agent to run as root");
        goto out;
    }
    if ((a->root && plan_mounts(p, c, term.buf, &e) < 0) ||
        memlimit_prepare(&c->mem, id.buf, c->spec.memory_limit, &e) < 0)
        goto out;
    memset(&l, 0, sizeof(l));
    l.exec_path = c->spec.exec_path;
    l.argv = c->spec.argv;
    l.envp = c->spec.envp;
    l.cwd = c->spec.working_dir;
    l.mounts = c->mounts;
    l.n_mounts = c->n_mounts;
    l.mount_ns = a->root;
    l.set_ids = a->root && (c->spec.run_as_user_set || c->spec.run_as_group_set);
    l.uid = c->spec.run_as_user_set ? c->spec.run_as_user : 0;
    l.gid = c->spec.run_as_group_set ? c->spec.run_as_group : 0;
    l.groups = c->spec.groups;
    l.n_groups = c->spec.n_groups;
    l.cgroup_procs = c->mem.cgroup_procs;
    l.log_path = c->log_path;
    if (ctr_start(&c->proc, &l, &e) < 0)
        goto out;
    ok = 1;
    c->state = C_RUNNING;
    write_pid_file(p, c);
    log_info(NULL, "pod %s/%s: container %s started (pid %d, run %d)", p->ns, p->name, c->name,
             (int)c->proc.pid, c->restarts);
out:
    if (!ok) {
        struct timespec now;

        clock_gettime(CLOCK_REALTIME, &now);
        log_warn(NULL, "pod %s/%s: container %s failed to start: %s", p->ns, p->name, c->name,
                 e.msg);
        release_run(c);
        term_clear(&c->cur);
        c->cur.code = 128;
        snprintf(c->cur.reason, sizeof(c->cur.reason), "StartError");
        c->cur.message = strdup(e.msg);
        c->cur.started = c->cur.finished = now.tv_sec;
        c->cur.run = c->restarts;
        c->has_cur = 1;
        container_ended(a, p, c);
    }
    p->dirty = 1;
    free(lp);
    strbuf_release(&dir);
    strbuf_release(&term);
    strbuf_release(&id);
}

/* Marks every waiting container of p with why it cannot be created yet. */
static void set_waiting(struct pod_rec *p, const char *reason, const char *message)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        struct ctr_rec *c = &p->c[i];

        if (c->state != C_WAITING)
            continue;
        if (strcmp(c->wait_reason, reason) != 0 ||
            strcmp(c->wait_message ? c->wait_message : "", message) != 0)
            p->dirty = 1;
        snprintf(c->wait_reason, sizeof(c->wait_reason), "%s", reason);
        set_str(&c->wait_message, message);
    }
}

/* Fails a pod the agent cannot or will not run, naming why. */
static void fail_pod(struct pod_rec *p, const char *reason, const char *message)
{
    time_t now = time(NULL);
    size_t i;

    set_str(&p->fail_reason, reason);
    set_str(&p->fail_message, message);
    if (!p->start_time)
        p->start_time = now;
    for (i = 0; i < p->n; i++) {
        struct ctr_rec *c = &p->c[i];

        if (c->state == C_TERMINATED)
            continue;
        term_clear(&c->cur);
        c->cur.code = 137;
        snprintf(c->cur.reason, sizeof(c->cur.reason), "%s", reason);
        c->cur.message = strdup(message);
        c->cur.started = c->state == C_RUNNING ? c->proc.started.tv_sec : p->start_time;
        c->cur.finished = now;
        c->cur.run = c->restarts;
        c->has_cur = 1;
        c->state = C_TERMINATED;
    }
    p->dirty = 1;
}

/* Resolves volumes and containers, then starts them all; retries later on errors. */
static void try_start(struct agent *a, struct pod_rec *p)
{
    const json_t *ctrs = json_object_get(json_object_get(p->pod, "spec"), "containers");
    struct podspec_host host = { POD_IP, a->cfg->api_host, a->cfg->api_port };
    struct podspec_getter get = { api_get, a };
    struct strbuf sub = STRBUF_INIT;
    struct err e;
    size_t i;
    int config = 0;

    err_clear(&e);
    strbuf_addf(&sub, "%s/run", p->dir);
    if (fileutil_mkdir_p(sub.buf, &e) < 0)
        goto fail;
    strbuf_reset(&sub);
    strbuf_addf(&sub, "%s/termination", p->dir);
    if (fileutil_mkdir_p(sub.buf, &e) < 0)
        goto fail;
    if (!p->vols_ready) {
        if (vol_prepare(&p->vols, p->pod, p->dir, a->cfg->volume_map, &get, &e) < 0)
            goto fail;
        p->vols_ready = 1;
    }
    for (i = 0; i < p->n; i++) {
        if (p->c[i].built)
            continue;
        if (podspec_container_build(&p->c[i].spec, p->pod, json_array_get(ctrs, i), &host,
                                    &get, &e) < 0)
            goto fail;
        p->c[i].built = 1;
    }
    p->started = 1;
    p->start_time = time(NULL);
    for (i = 0; i < p->n; i++)
        start_container(a, p, &p->c[i]);
    goto out;
fail:
    config = e.code == PODSPEC_ECONFIG;
    log_warn(NULL, "pod %s/%s: %s (retrying)", p->ns, p->name, e.msg);
    set_waiting(p, config ? "CreateContainerConfigError" : "ContainerCreating", e.msg);
    if (!p->start_time)
        p->start_time = time(NULL);
    p->retry_at = now_ms() + (config ? CONFIG_RETRY_MS : API_RETRY_MS);
out:
    strbuf_release(&sub);
}

/* ---- container ends ------------------------------------------------------ */

static int should_restart(struct agent *a, const struct pod_rec *p, const struct ctr_rec *c)
{
    const char *policy = str(json_object_get(p->pod, "spec"), "restartPolicy");

    if (a->stopping || p->deleting || p->gone || p->fail_reason)
        return 0;
    if (policy && strcmp(policy, "Never") == 0)
        return 0;
    if (policy && strcmp(policy, "OnFailure") == 0)
        return c->cur.code != 0;
    return 1;
}

/* After c's run ended (c->cur filled): restart it later, or it is done. */
static void container_ended(struct agent *a, struct pod_rec *p, struct ctr_rec *c)
{
    long long delay = BACKOFF_BASE_MS;
    int i;

    if (!should_restart(a, p, c)) {
        c->state = C_TERMINATED;
        return;
    }
    for (i = 0; i < c->restarts && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    c->restart_at = now_ms() + (delay < BACKOFF_CAP_MS ? delay : BACKOFF_CAP_MS);
    c->state = C_BACKOFF;
}

/* Up to max bytes from the start of path: a longer file is cut, as the kubelet does. */
static void read_head(const char *path, size_t max, struct strbuf *out)
{
    char buf[MESSAGE_MAX];
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return;
    n = fread(buf, 1, max < sizeof(buf) ? max : sizeof(buf), f);
    strbuf_add(out, buf, n);
    fclose(f);
}

/* The message of a run: its termination-message file, else (if asked) the log's tail. */
static char *run_message(const struct pod_rec *p, const struct ctr_rec *c, int code)
{
    struct strbuf sb = STRBUF_INIT, path = STRBUF_INIT;
    struct podlog_opts o = PODLOG_OPTS_INIT;
    struct podlog_reader r;
    const json_t *spec = json_array_get(
        json_object_get(json_object_get(p->pod, "spec"), "containers"), (size_t)(c - p->c));
    const char *policy = str(spec, "terminationMessagePolicy");

    strbuf_addf(&path, "%s/termination/%s", p->dir, c->name);
    read_head(path.buf, MESSAGE_MAX, &sb);
    if (sb.len == 0 && code != 0 && policy && strcmp(policy, "FallbackToLogsOnError") == 0) {
        o.tail_lines = FALLBACK_LINES;
        o.limit_bytes = FALLBACK_BYTES;
        if (podlog_reader_open(&r, c->log_path, &o, NULL) == 0) {
            podlog_read(&r, &sb, 0, NULL);
            podlog_reader_close(&r);
        }
    }
    strbuf_release(&path);
    return strbuf_detach(&sb, NULL);
}

/* The run's log is drained (or given up on): record how it ended. */
static void finalize_run(struct agent *a, struct pod_rec *p, struct ctr_rec *c)
{
    struct timespec now;
    struct strbuf pid_file = STRBUF_INIT;
    int st = c->wait_status, oom;

    ctr_finish(&c->proc);
    oom = memlimit_oom_killed(&c->mem);
    release_run(c);
    strbuf_addf(&pid_file, "%s/run/%s.pid", p->dir, c->name);
    unlink(pid_file.buf);
    strbuf_release(&pid_file);
    clock_gettime(CLOCK_REALTIME, &now);
    if (c->has_cur) {
        term_clear(&c->last);
        c->last = c->cur;
        c->has_last = 1;
        memset(&c->cur, 0, sizeof(c->cur));
    }
    c->cur.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    c->cur.started = c->proc.started.tv_sec;
    c->cur.finished = now.tv_sec;
    c->cur.run = c->restarts;
    c->cur.message = run_message(p, c, c->cur.code);
    c->has_cur = 1;
    if (oom) {
        c->cur.code = 137;
        snprintf(c->cur.reason, sizeof(c->cur.reason), "OOMKilled");
    } else {
        snprintf(c->cur.reason, sizeof(c->cur.reason), "%s",
                 c->cur.code == 0 ? "Completed" : "Error");
    }
    log_info(NULL, "pod %s/%s: container %s ended: exit code %d (%s)", p->ns, p->name, c->name,
             c->cur.code, c->cur.reason);
    container_ended(a, p, c);
    p->dirty = 1;
}

/* Collects exited children; a container's first process ending ends the container. */
static void reap(struct agent *a)
{
    struct pod_rec *p;
    int st;
    pid_t pid;
    size_t i;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (p = a->pods; p; p = p->next)
            for (i = 0; i < p->n; i++) {
                struct ctr_rec *c = &p->c[i];

                if (c->state != C_RUNNING || c->proc.pid != pid)
                    continue;
                c->wait_status = st;
                c->state = C_EXITED;
                c->drain_deadline = now_ms() + DRAIN_MS;
                /* Like a container runtime: the first process gone, the rest go too. */
                proctree_kill(pid, SIGKILL);
            }
    }
}

/* ---- deletion ------------------------------------------------------------ */

static void kill_pod(struct pod_rec *p, int sig)
{
    size_t i;

    for (i = 0; i < p->n; i++)
        if (ctr_live(&p->c[i]))
            proctree_kill(p->c[i].proc.pid, sig);
}

static void delete_from_api(struct agent *a, struct pod_rec *p)
{
    struct kube_request req = { .verb = KUBE_DELETE, .res = KUBE_RES_PODS };
    struct kube_error ke;
    json_t *opts = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
                             "v1", "gracePeriodSeconds", 0, "preconditions", "uid", p->uid);
    json_t *resp;

    req.res.ns = p->ns;
    req.res.name = p->name;
    req.body = opts;
    resp = kube_do(a->kc, &req, &ke);
    if (resp || kube_is_not_found(&ke) || kube_is_conflict(&ke)) {
        log_info(NULL, "pod %s/%s: deleted", p->ns, p->name);
        p->delete_sent = 1;
    } else {
        log_warn(NULL, "pod %s/%s: delete: %s", p->ns, p->name, ke.err.msg);
        p->status_retry_at = now_ms() + API_RETRY_MS;
    }
    json_decref(resp);
    json_decref(opts);
}

/* The pod object now carries deletionTimestamp: stop its containers. */
static void begin_delete(struct pod_rec *p)
{
    const json_t *grace = json_object_get(json_object_get(p->pod, "metadata"),
                                          "deletionGracePeriodSeconds");
    long long secs = json_is_integer(grace) ? json_integer_value(grace) : 30;
    size_t i;

    p->deleting = 1;
    p->kill_deadline = now_ms() + secs * 1000;
    for (i = 0; i < p->n; i++)
        if (p->c[i].state == C_BACKOFF || p->c[i].state == C_WAITING)
            p->c[i].state = C_TERMINATED;
    log_info(NULL, "pod %s/%s: deletion requested; stopping its containers (grace %llds)",
             p->ns, p->name, secs);
    kill_pod(p, SIGTERM);
}

/* ---- events -------------------------------------------------------------- */

/*
 * Takes over what the reported status of a pod this agent did not run says:
 * start time, restart counts (so the last run's log is served), and, for a
 * finished pod, that its containers are done.
 */
static void adopt_status(struct agent *a, struct pod_rec *p, int finished)
{
    const json_t *status = json_object_get(p->pod, "status"), *s;
    const json_t *sts = json_object_get(status, "containerStatuses");
    struct timespec ts;
    size_t i, j;

    if (str(status, "startTime") && timefmt_parse(str(status, "startTime"), &ts, NULL) == 0)
        p->start_time = ts.tv_sec;
    pthread_mutex_lock(&a->lock);
    json_array_foreach(sts, i, s)
        for (j = 0; j < p->n; j++)
            if (str(s, "name") && strcmp(str(s, "name"), p->c[j].name) == 0) {
                p->c[j].restarts = (int)json_integer_value(json_object_get(s, "restartCount"));
                p->c[j].log_path = log_path(p, p->c[j].name, p->c[j].restarts);
            }
    for (j = 0; j < p->n && finished; j++)
        p->c[j].state = C_TERMINATED;
    pthread_mutex_unlock(&a->lock);
}

static void handle_new(struct agent *a, json_t *obj)
{
    const char *phase = str(json_object_get(obj, "status"), "phase");
    struct pod_rec *p = new_pod(a, obj);

    if (!p) {
        log_error(NULL, "out of memory: pod %s/%s ignored", meta(obj, "namespace"),
                  meta(obj, "name"));
        return;
    }
    if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
        /* Finished before: only its logs are left to serve. */
        adopt_status(a, p, 1);
        p->terminal = 1;
        p->started = 1;
    } else if (meta(obj, "deletionTimestamp")) {
        /* Never run here: nothing to stop, only the deletion to finish. */
        p->deleting = 1;
        p->started = 1;
    } else if (phase && strcmp(phase, "Pending") != 0) {
        adopt_status(a, p, 0);
        fail_pod(p, "NodeAgentRestarted",
                 "the node agent restarted and no longer runs this pod's processes");
        log_warn(NULL, "pod %s/%s: was %s under an earlier node agent: reported Failed",
                 p->ns, p->name, phase);
    } else if (json_array_size(json_object_get(json_object_get(obj, "spec"),
                                               "initContainers")) > 0) {
        fail_pod(p, "Unsupported", "initContainers are not supported by the plateop node agent");
    } else {
        log_info(NULL, "pod %s/%s: new", p->ns, p->name);
    }
}

static void handle_event(struct agent *a, enum kube_watch_type type, json_t *obj)
{
    const char *ns = meta(obj, "namespace"), *name = meta(obj, "name"), *uid = meta(obj, "uid");
    struct pod_rec *p;

    if (!ns || !name)
        return;
    p = find_pod(a, ns, name);
    if (type == KUBE_WATCH_DELETED) {
        if (p && (!uid || strcmp(uid, p->uid) == 0)) {
            p->gone = 1;
            kill_pod(p, SIGKILL);
        }
        return;
    }
    if (!uid)
        return;
    if (p && strcmp(uid, p->uid) != 0) {
        /* Same name, new pod: the old one is gone. */
        p->gone = 1;
        kill_pod(p, SIGKILL);
        p = NULL;
    }
    if (!p) {
        handle_new(a, obj);
        return;
    }
    json_decref(p->pod);
    p->pod = json_incref(obj);
    if (meta(obj, "deletionTimestamp") && !p->deleting)
        begin_delete(p);
}

/* After the first list: directories of pods that do not exist any more go. */
static void remove_stale_dirs(struct agent *a)
{
    struct strbuf path = STRBUF_INIT;
    struct pod_rec *p;
    struct dirent *de;
    struct err e;
    DIR *d;

    strbuf_addf(&path, "%s/pods", a->cfg->state_dir);
    d = opendir(path.buf);
    while (d && (de = readdir(d))) {
        int known = 0;

        if (de->d_name[0] == '.')
            continue;
        for (p = a->pods; p && !known; p = p->next)
            known = strcmp(p->uid, de->d_name) == 0;
        if (known)
            continue;
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/pods/%s", a->cfg->state_dir, de->d_name);
        if (fileutil_rm_rf(path.buf, &e) < 0)
            log_warn(NULL, "%s", e.msg);
    }
    if (d)
        closedir(d);
    strbuf_release(&path);
}

/* ---- the supervising loop ------------------------------------------------- */

static void sample_memory(struct agent *a)
{
    struct memlimit *ms[256];
    pid_t sids[256];
    struct pod_rec *p;
    size_t n = 0, i;

    if (memlimit_mode() != MEMLIMIT_SAMPLE)
        return;
    for (p = a->pods; p; p = p->next)
        for (i = 0; i < p->n && n < 256; i++)
            if (p->c[i].state == C_RUNNING && p->c[i].mem.limit > 0) {
                ms[n] = &p->c[i].mem;
                sids[n++] = p->c[i].proc.pid;
            }
    memlimit_sample(ms, sids, n);
}

/* Moves pod p along: drain ended runs, restart, start, kill, delete, report. */
static void step_pod(struct agent *a, struct pod_rec *p, long long now)
{
    size_t i;

    for (i = 0; i < p->n; i++) {
        struct ctr_rec *c = &p->c[i];

        if (c->state == C_EXITED && (ctr_logs_done(&c->proc) || now >= c->drain_deadline))
            finalize_run(a, p, c);
        if (c->state == C_BACKOFF && now >= c->restart_at) {
            c->restarts++;
            start_container(a, p, c);
        }
    }
    if (a->stopping)
        return;
    if (!p->started && !p->fail_reason && !p->deleting && !p->gone && now >= p->retry_at)
        try_start(a, p);
    if (p->deleting && !p->killed && now >= p->kill_deadline && pod_live(p)) {
        kill_pod(p, SIGKILL);
        p->killed = 1;
    }
    if (p->dirty && !p->gone && !p->deleting && !p->terminal && now >= p->status_retry_at)
        send_status(a, p);
    if (p->deleting && !p->gone && !p->delete_sent && !pod_live(p) &&
        now >= p->status_retry_at)
        delete_from_api(a, p);
}

static void tick(struct agent *a)
{
    long long now = now_ms();
    struct pod_rec *p, *next;

    sample_memory(a);
    for (p = a->pods; p; p = next) {
        next = p->next;
        step_pod(a, p, now);
        if (p->gone && !pod_live(p))
            remove_pod(a, p);
    }
}

static void drain_events(struct agent *a)
{
    struct event *ev;
    uint64_t n;

    if (read(a->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn(NULL, "event counter: %s", strerror(errno));
    while ((ev = dequeue(a))) {
        if (ev->type == KUBE_WATCH_BOOKMARK)
            remove_stale_dirs(a);
        else
            handle_event(a, ev->type, ev->obj);
        json_decref(ev->obj);
        free(ev);
    }
}

/*
 * Stops every container: SIGTERM, SIGKILL after STOP_GRACE_MS, all reaped and
 * drained; pods interrupted so are reported Failed, others as they ended.
 */
static void stop_all(struct agent *a)
{
    long long deadline = now_ms() + STOP_GRACE_MS;
    struct pod_rec *p;
    size_t i;
    int live, killed = 0;

    a->stopping = 1;
    for (p = a->pods; p; p = p->next) {
        for (i = 0; i < p->n; i++)
            p->stop_fail |= p->started && !p->terminal &&
                            (ctr_live(&p->c[i]) || p->c[i].state == C_BACKOFF);
        kill_pod(p, SIGTERM);
    }
    do {
        reap(a);
        live = 0;
        for (p = a->pods; p; p = p->next) {
            step_pod(a, p, now_ms());
            live |= pod_live(p);
        }
        if (live && !killed && now_ms() >= deadline) {
            for (p = a->pods; p; p = p->next)
                kill_pod(p, SIGKILL);
            killed = 1;
        }
        if (live)
            usleep(50000);
    } while (live);
    for (p = a->pods; p; p = p->next) {
        if (p->gone || p->deleting)
            continue;
        if (p->stop_fail)
            fail_pod(p, "NodeAgentStopped",
                     "the node agent stopped and killed this pod's processes");
        if (p->dirty && !p->terminal)
            send_status(a, p);
    }
}

int agent_run(struct agent *a, int sigfd, struct err *e)
{
    struct kube_watch_opts wo;
    struct kube_error ke;
    struct strbuf sel = STRBUF_INIT;
    struct pollfd fds[2] = { { sigfd, POLLIN, 0 }, { a->evfd, POLLIN, 0 } };
    long long next_tick = 0;
    int stop = 0;

    memset(&wo, 0, sizeof(wo));
    strbuf_addf(&sel, "spec.nodeName=%s", a->cfg->node);
    wo.res = (struct kube_res)KUBE_RES_PODS;
    wo.field_selector = sel.buf;
    wo.h.on_event = on_watch_event;
    wo.h.on_synced = on_watch_synced;
    wo.ud = a;
    a->watch = kube_watch_new(a->kc, &wo, &ke);
    strbuf_release(&sel);
    if (!a->watch) {
        *e = ke.err;
        return err_prefix(e, "watch pods");
    }
    if (pthread_create(&a->watch_thread, NULL, watch_main, a) != 0)
        return err_set(e, EAGAIN, "cannot start the pod watch thread");
    a->watch_started = 1;
    while (!stop) {
        long long wait = next_tick - now_ms();

        if (poll(fds, 2, wait < 0 ? 0 : (int)wait) > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;

            while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                    log_info(NULL, "signal %d: stopping", (int)si.ssi_signo);
                    stop = 1;
                }
        }
        if (fds[1].revents & POLLIN)
            drain_events(a);
        reap(a);
        if (now_ms() >= next_tick) {
            tick(a);
            next_tick = now_ms() + TICK_MS;
        }
    }
    kube_watch_stop(a->watch);
    pthread_join(a->watch_thread, NULL);
    a->watch_started = 0;
    stop_all(a);
    return 0;
}

/* Kills the sessions recorded in run/NAME.pid by an earlier agent that did not stop cleanly. */
static void kill_leftovers(const char *state_dir)
{
    struct strbuf path = STRBUF_INIT, val = STRBUF_INIT;
    struct dirent *pd, *fd;
    DIR *pods, *run;

    strbuf_addf(&path, "%s/pods", state_dir);
    pods = opendir(path.buf);
    while (pods && (pd = readdir(pods))) {
        if (pd->d_name[0] == '.')
            continue;
        strbuf_reset(&path);
        strbuf_addf(&path, "%s/pods/%s/run", state_dir, pd->d_name);
        run = opendir(path.buf);
        while (run && (fd = readdir(run))) {
            size_t dlen = path.len;
            int pid = 0;
            unsigned long long start = 0;

            if (fd->d_name[0] == '.')
                continue;
            strbuf_addf(&path, "/%s", fd->d_name);
            strbuf_reset(&val);
            if (fileutil_read(path.buf, &val, 64, NULL) == 0 &&
                sscanf(val.buf, "%d %llu", &pid, &start) == 2 && pid > 1 &&
                proctree_start_time(pid) == start) {
                log_warn(NULL, "killing processes of an earlier agent's container (session %d)",
                         pid);
                proctree_kill(pid, SIGKILL);
            }
            unlink(path.buf);
            strbuf_setlen(&path, dlen);
        }
        if (run)
            closedir(run);
    }
    if (pods)
        closedir(pods);
    strbuf_release(&path);
    strbuf_release(&val);
}

struct agent *agent_new(struct kube_client *kc, const struct agent_config *cfg, struct err *e)
{
    struct agent *a = calloc(1, sizeof(*a));
    struct strbuf pods = STRBUF_INIT;

    if (!a) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    a->kc = kc;
    a->cfg = cfg;
    a->root = geteuid() == 0;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->qlock, NULL);
    a->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (a->evfd < 0) {
        err_errno(e, errno, "eventfd");
        goto fail;
    }
    strbuf_addf(&pods, "%s/pods", cfg->state_dir);
    if (fileutil_mkdir_p(pods.buf, e) < 0)
        goto fail;
    /* Pod directories hold Secrets: others may pass through, not list. */
    if (chmod(pods.buf, 0711) < 0) {
        err_errno(e, errno, "chmod %s", pods.buf);
        goto fail;
    }
    strbuf_release(&pods);
    /* Orphans of our containers (double forks) come to us, so none is left unreaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (!a->root)
        log_warn(NULL, "not running as root: no mount namespaces, volumes or runAsUser");
    kill_leftovers(cfg->state_dir);
    return a;
fail:
    strbuf_release(&pods);
    agent_free(a);
    return NULL;
}

void agent_free(struct agent *a)
{
    struct pod_rec *p;
    struct event *ev;

    if (!a)
        return;
    while ((p = a->pods)) {
        a->pods = p->next;
        pod_rec_free(p);
    }
    while ((ev = dequeue(a))) {
        json_decref(ev->obj);
        free(ev);
    }
    kube_watch_free(a->watch);
    if (a->evfd >= 0)
        close(a->evfd);
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->qlock);
    free(a);
}

/* ---- the log server's view ------------------------------------------------ */

char *agent_find_log(void *agent, const char *ns, const char *pod, const char *container,
                     int previous, struct err *e)
{
    struct agent *a = agent;
    struct pod_rec *p;
    char *path = NULL;
    size_t i;

    pthread_mutex_lock(&a->lock);
    p = find_pod(a, ns, pod);
    if (!p) {
        err_set(e, 404, "pod %s/%s not found on node %s", ns, pod, a->cfg->node);
        goto out;
    }
    for (i = 0; i < p->n && strcmp(p->c[i].name, container) != 0; i++)
        ;
    if (i == p->n) {
        err_set(e, 400, "container %s is not valid for pod %s", container, pod);
        goto out;
    }
    if (previous && p->c[i].restarts == 0)
        err_set(e, 400, "previous terminated container \"%s\" in pod \"%s\" not found",
                container, pod);
    else if (!p->c[i].log_path)
        err_set(e, 400, "container \"%s\" in pod \"%s\" is waiting to start: %s", container,
                pod, p->c[i].wait_reason);
    else if (!(path = previous ? log_path(p, container, p->c[i].restarts - 1)
                               : strdup(p->c[i].log_path)))
        err_set(e, 500, "out of memory");
out:
    pthread_mutex_unlock(&a->lock);
    return path;
}

int agent_log_growing(void *agent, const char *path)
{
    struct agent *a = agent;
    struct pod_rec *p;
    size_t i;
    int growing = 0;

    pthread_mutex_lock(&a->lock);
    for (p = a->pods; p && !growing; p = p->next)
        for (i = 0; i < p->n && !growing; i++)
            growing = p->c[i].log_path && strcmp(p->c[i].log_path, path) == 0 &&
                      ctr_live(&p->c[i]);
    pthread_mutex_unlock(&a->lock);
    return growing;
}
