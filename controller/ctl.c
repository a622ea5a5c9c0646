/* ctl: the controller's shared helpers (queue, plan memory, quota room, request batches); see ctl.h. */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monotime.h"

void ctl_enqueue(struct ctl *c, const char *key)
{
    struct err e;

    if (wq_add(c->queue, key, &e) < 0)
        log_error(NULL, "queue %s: %s", key, e.msg);
}

void ctl_planned(struct ctl *c, const char *uid)
{
    pthread_mutex_lock(&c->planned_lock);
    json_object_set_new(c->planned, uid, json_real(monotime_now()));
    pthread_mutex_unlock(&c->planned_lock);
}

int ctl_recently_planned(struct ctl *c, const char *uid)
{
    double t;

    pthread_mutex_lock(&c->planned_lock);
    t = json_real_value(json_object_get(c->planned, uid));
    pthread_mutex_unlock(&c->planned_lock);
    return t > 0 && monotime_now() - t < 30;
}

struct live_count {
    const char *ns;
    long n;
};

static int count_live(const json_t *p, void *ud)
{
    struct live_count *l = ud;
    const char *pns = json_string_value(json_object_get(json_object_get(p, "metadata"),
                                                        "namespace"));
    const char *phase = json_string_value(json_object_get(json_object_get(p, "status"), "phase"));

    if (pns && strcmp(pns, l->ns) == 0 &&
        !(phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)))
        l->n++;
    return 0;
}

/* Our pods in ns that have not finished: they hold quota whatever its status says. */
static long live_pods(struct ctl *c, const char *ns)
{
    struct live_count l = { ns, 0 };

    informer_each(c->pods, NULL, NULL, count_live, &l);
    return l.n;
}

int ctl_quota_room(struct ctl *c, const char *ns)
{
    json_t *all = c->quotas ? informer_list(c->quotas, NULL, NULL) : NULL, *q;
    int room = -1;
    long live = -1;
    size_t i;

    json_array_foreach(all, i, q) {
        const char *qns = json_string_value(json_object_get(json_object_get(q, "metadata"),
                                                            "namespace"));
        const json_t *st = json_object_get(q, "status");
        const char *hard = json_string_value(json_object_get(json_object_get(st, "hard"), "pods"));
        const char *used = json_string_value(json_object_get(json_object_get(st, "used"), "pods"));
        long limit, taken, free_pods;

        if (!qns || strcmp(qns, ns) != 0 || !hard)
            continue;
        /*
         * Pod counts are plain integers in quota quantities. The quota
         * controller recounts usage from a cache that can lag admission and
         * briefly report less than is running; our own count of live pods
         * keeps the namespace within its limit all the same.
         */
        if (live < 0)
            live = live_pods(c, ns);
        limit = strtol(hard, NULL, 10);
        taken = used ? strtol(used, NULL, 10) : 0;
        if (live > taken)
            taken = live;
        free_pods = limit - taken > 0 ? limit - taken : 0;
        if (room < 0 || free_pods < room)
            room = (int)free_pods;
    }
    json_decref(all);
    return room;
}

int ctl_run_requests(struct kube_batch *kb, const char *what, long *done, struct err *e)
{
    struct kube_error ke;
    int i, n, rc = 0;

    if (done)
        *done = 0;
    if (!kb || kube_batch_count(kb) == 0)
        return 0;
    kube_batch_run(kb);
    n = kube_batch_count(kb);
    for (i = 0; i < n; i++) {
        json_t *res = kube_batch_result(kb, i, &ke);

        if (res) {
            json_decref(res);
            if (done)
                (*done)++;
        } else if (!kube_is_already_exists(&ke) && !kube_is_not_found(&ke) && rc == 0) {
            rc = err_set(e, ke.err.code, "%s: %s", what, ke.err.msg);
        }
    }
    return rc;
}
