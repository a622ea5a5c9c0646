/* node: Node registration, Ready heartbeat and taint upkeep; see node.h. */
#include "node.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "fileutil.h"
#include "log.h"
#include "timefmt.h"
#include "version.h"

#define HEARTBEAT_S 10

struct node_heartbeat {
    struct kube_client *kc;
    const struct node_config *nc;
    pthread_t thread;
    atomic_int stop;
};

static time_t ready_since;

/*
 * Appends the first line of path to out, or, with prefix, the rest of the
 * line that starts with it (os-release style, quotes dropped). Nothing when
 * unreadable.
 */
static void first_line(const char *path, const char *prefix, struct strbuf *out)
{
    struct strbuf sb = STRBUF_INIT;
    const char *p = NULL, *end;

    if (fileutil_read(path, &sb, 65536, NULL) == 0) {
        p = sb.buf;
        if (prefix) {
            p = strstr(sb.buf, prefix);
            if (p)
                p += strlen(prefix);
        }
    }
    if (p) {
        if (*p == '"')
            p++;
        end = strchrnul(p, '\n');
        if (end > p && end[-1] == '"')
            end--;
        strbuf_add(out, p, (size_t)(end - p));
    }
    strbuf_release(&sb);
}

static const char *go_arch(const char *machine)
{
    if (strcmp(machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(machine, "aarch64") == 0)
        return "arm64";
    return machine;
}

static json_t *node_info(void)
{
    struct strbuf machine_id = STRBUF_INIT, boot_id = STRBUF_INIT, os = STRBUF_INIT;
    struct utsname u;
    json_t *info;

    uname(&u);
    first_line("/etc/machine-id", NULL, &machine_id);
    first_line("/proc/sys/kernel/random/boot_id", NULL, &boot_id);
    first_line("/etc/os-release", "PRETTY_NAME=", &os);
    info = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
                     "machineID", machine_id.buf, "systemUUID", machine_id.buf,
                     "bootID", boot_id.buf, "kernelVersion", u.release,
                     "osImage", os.len ? os.buf : "Linux",
                     "containerRuntimeVersion", "plateop-nodeagent://" PLATEOP_VERSION,
                     "kubeletVersion", "v" PLATEOP_VERSION "-plateop-nodeagent",
                     "kubeProxyVersion", "", "operatingSystem", "linux",
                     "architecture", go_arch(u.machine));
    strbuf_release(&machine_id);
    strbuf_release(&boot_id);
    strbuf_release(&os);
    return info;
}

static json_t *condition(const char *type, const char *status, const char *reason,
                         const char *message, const char *now, const char *since)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
                     "reason", reason, "message", message, "lastHeartbeatTime", now,
                     "lastTransitionTime", since);
}

/* Patches the Node's status: Ready (or not, with reason) and everything around it. */
static int patch_status(struct kube_client *kc, const struct node_config *nc, int ready,
                        const char *reason, const char *message, struct err *e)
{
    struct kube_res res = KUBE_RES_NODES;
    char now[TIMEFMT_MAX], since[TIMEFMT_MAX];
    struct kube_error ke;
    json_t *resources, *patch, *resp;
    int rc;

    res.name = nc->name;
    res.subresource = "status";
    timefmt_now(now);
    timefmt_seconds(since, ready ? ready_since : time(NULL));
    resources = json_pack("{s:s, s:s, s:o}", "cpu", nc->cpu, "memory", nc->memory, "pods",
                          json_sprintf("%d", nc->max_pods));
    patch = json_pack(
        "{s:{s:O, s:O, s:[o, o, o, o], s:[{s:s, s:s}], s:{s:{s:i}}, s:o}}", "status",
        "capacity", resources, "allocatable", resources, "conditions",
        condition("Ready", ready ? "True" : "False", reason, message, now, since),
        condition("MemoryPressure", "False", "AgentHasSufficientMemory", "", now, since),
        condition("DiskPressure", "False", "AgentHasNoDiskPressure", "", now, since),
        condition("PIDPressure", "False", "AgentHasSufficientPID", "", now, since),
        "addresses", "type", "InternalIP", "address", "127.0.0.1",
        "daemonEndpoints", "kubeletEndpoint", "Port", nc->port, "nodeInfo", node_info());
    json_decref(resources);
    if (!patch)
        return err_set(e, ENOMEM, "node status: cannot build the patch");
    resp = kube_patch(kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke);
    json_decref(patch);
    rc = resp ? 0 : -1;
    if (!resp) {
        *e = ke.err;
        err_prefix(e, "node %s status", nc->name);
    }
    json_decref(resp);
    return rc;
}

static int taint_is(const json_t *t, const char *key)
{
    const char *k = json_string_value(json_object_get(t, "key"));

    return k && strcmp(k, key) == 0;
}

/*
 * Removes the not-ready/unreachable taints (and ours unless add_stopped),
 * adds ours when add_stopped; patches only when something changes, guarded
 * by resourceVersion.
 */
static int fix_taints(struct kube_client *kc, const char *name, int add_stopped, struct err *e)
{
    struct kube_res res = KUBE_RES_NODES;
    struct kube_error ke;
    json_t *node = NULL, *taints, *keep = json_array(), *t, *patch = NULL, *resp = NULL;
    size_t i;
    int rc = -1, had_stopped = 0;

    res.name = name;
    node = kube_get(kc, &res, NULL, &ke);
    if (!node || !keep)
        goto kerr;
    taints = json_object_get(json_object_get(node, "spec"), "taints");
    json_array_foreach(taints, i, t) {
        if (taint_is(t, "node.kubernetes.io/not-ready") ||
            taint_is(t, "node.kubernetes.io/unreachable"))
            continue;
        if (taint_is(t, NODE_STOPPED_TAINT)) {
            had_stopped = 1;
            if (!add_stopped)
                continue;
        }
        json_array_append(keep, t);
    }
    if (add_stopped && !had_stopped)
        json_array_append_new(keep, json_pack("{s:s, s:s, s:s}", "key", NODE_STOPPED_TAINT,
                                              "value", "true", "effect", "NoSchedule"));
    if (json_array_size(keep) == json_array_size(taints) && had_stopped == add_stopped) {
        rc = 0;
        goto out;
    }
    patch = json_pack("{s:{s:O}, s:{s:O}}", "metadata", "resourceVersion",
                      json_object_get(json_object_get(node, "metadata"), "resourceVersion"),
                      "spec", "taints", keep);
    resp = patch ? kube_patch(kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke) : NULL;
    if (!resp)
        goto kerr;
    log_info(NULL, "node %s: taints now %zu (not-ready/unreachable removed%s)", name,
             json_array_size(keep), add_stopped ? ", stopped added" : "");
    rc = 0;
    goto out;
kerr:
    *e = ke.err;
    err_prefix(e, "node %s taints", name);
out:
    json_decref(node);
    json_decref(keep);
    json_decref(patch);
    json_decref(resp);
    return rc;
}

/* The heartbeat: Ready=True, and the taints that would keep pods away removed. */
static int report_ready(struct kube_client *kc, const struct node_config *nc, struct err *e)
{
    if (patch_status(kc, nc, 1, "AgentReady", "plateop node agent is posting ready status", e) < 0)
        return -1;
    return fix_taints(kc, nc->name, 0, e);
}

int node_register(struct kube_client *kc, const struct node_config *nc, struct err *e)
{
    struct kube_res res = KUBE_RES_NODES;
    struct utsname u;
    struct kube_error ke;
    json_t *labels, *node, *resp, *patch = NULL;
    int rc = -1;

    uname(&u);
    ready_since = time(NULL);
    labels = json_pack("{s:s, s:s, s:s, s:s}", "kubernetes.io/hostname", nc->name,
                       "kubernetes.io/os", "linux", "kubernetes.io/arch", go_arch(u.machine),
                       "plateop.io/node-agent", "true");
    node = json_pack("{s:s, s:s, s:{s:s, s:O}}", "apiVersion", "v1", "kind", "Node", "metadata",
                     "name", nc->name, "labels", labels);
    resp = kube_create(kc, &res, node, NULL, &ke);
    if (!resp && kube_is_already_exists(&ke)) {
        res.name = nc->name;
        patch = json_pack("{s:{s:O}}", "metadata", "labels", labels);
        resp = kube_patch(kc, &res, KUBE_PATCH_MERGE, patch, NULL, &ke);
    }
    if (!resp) {
        *e = ke.err;
        err_prefix(e, "register node %s", nc->name);
        goto out;
    }
    if (report_ready(kc, nc, e) < 0)
        goto out;
    rc = 0;
out:
    json_decref(labels);
    json_decref(node);
    json_decref(patch);
    json_decref(resp);
    return rc;
}

static void *heartbeat_main(void *arg)
{
    struct node_heartbeat *hb = arg;
    struct err e;
    int i;

    while (!atomic_load(&hb->stop)) {
        for (i = 0; i < HEARTBEAT_S * 4 && !atomic_load(&hb->stop); i++)
            usleep(250000);
        if (atomic_load(&hb->stop))
            break;
        if (report_ready(hb->kc, hb->nc, &e) < 0)
            log_warn(NULL, "heartbeat: %s", e.msg);
    }
    return NULL;
}

struct node_heartbeat *node_heartbeat_start(struct kube_client *kc, const struct node_config *nc,
                                            struct err *e)
{
    struct node_heartbeat *hb = calloc(1, sizeof(*hb));

    if (!hb) {
        err_set(e, ENOMEM, "out of memory");
        return NULL;
    }
    hb->kc = kc;
    hb->nc = nc;
    if (pthread_create(&hb->thread, NULL, heartbeat_main, hb) != 0) {
        free(hb);
        err_set(e, EAGAIN, "cannot start the heartbeat thread");
        return NULL;
    }
    return hb;
}

void node_heartbeat_stop(struct node_heartbeat *hb)
{
    if (!hb)
        return;
    atomic_store(&hb->stop, 1);
    pthread_join(hb->thread, NULL);
    free(hb);
}

int node_mark_stopped(struct kube_client *kc, const struct node_config *nc, struct err *e)
{
    if (patch_status(kc, nc, 0, "AgentStopped", "plateop node agent stopped", e) < 0)
        return -1;
    if (fix_taints(kc, nc->name, 1, e) == 0)
        return 0;
    /* A concurrent change to the Node makes the guarded patch fail: read it again, once. */
    return fix_taints(kc, nc->name, 1, e);
}
