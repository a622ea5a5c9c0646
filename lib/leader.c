/*
 * leader: Lease-based leader election on its own thread; see leader.h.
 *
 * The election thread alternates between two loops: acquire() polls until
 * this contender holds the Lease, lead() renews it until it cannot (or is
 * told to stop). One round of either is try_update(): GET the Lease, note
 * whether its spec changed since last seen (that moment is what expiry is
 * measured from), and PUT a new spec when allowed, guarded by the
 * resourceVersion of the GET.
 */
#include "leader.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "monotime.h"

/* No request gets less than this, so a nearly spent deadline still tries once. */
#define MIN_REQUEST_S 0.05

struct leader {
    struct kube_client *kc;
    char *ns, *name, *identity;
    double lease_s, deadline_s, retry_s;
    struct leader_callbacks cb;

    pthread_t thread;
    pthread_mutex_t mu;         /* guards stop, release and holder */
    pthread_cond_t cond;        /* signalled on stop */
    int stop, release;
    char *holder;               /* last holder seen; written only by the thread */

    atomic_int leading;
    _Atomic double valid_until; /* monotonic seconds: the renew deadline */

    /* Election-thread state. */
    json_t *observed;           /* Lease spec last seen */
    double observed_at;         /* monotonic seconds when it last changed */
    struct err last;            /* why the last round did not write */
    unsigned seed;
};

/* A metav1.MicroTime for now: "2021-02-03T04:05:06.123456Z". */
static void micro_time_now(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static int stopping(struct leader *l)
{
    int s;

    pthread_mutex_lock(&l->mu);
    s = l->stop;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* Sleeps s seconds unless told to stop first; returns non-zero when stopping. */
static int sleep_or_stop(struct leader *l, double s)
{
    double at = monotime_now() + s;
    struct timespec ts = monotime_timespec(at);
    int stop;

    pthread_mutex_lock(&l->mu);
    while (!l->stop && monotime_now() < at)
        pthread_cond_timedwait(&l->cond, &l->mu, &ts);
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

static const char *spec_holder(const json_t *spec)
{
    const char *h = json_string_value(json_object_get(spec, "holderIdentity"));

    return h ? h : "";
}

/*
 * Records the Lease spec just read or written. A change restarts the expiry
 * clock and, when the holder changed, is reported to new_leader.
 */
static void observe(struct leader *l, json_t *spec)
{
    const char *holder = spec_holder(spec);
    char *copy;

    if (l->observed && json_equal(l->observed, spec))
        return;
    json_decref(l->observed);
    l->observed = json_incref(spec);
    l->observed_at = monotime_now();
    if (strcmp(holder, l->holder) == 0)
        return;
    copy = strdup(holder);
    if (!copy)
        return;  /* keep the old name; the next change retries */
    pthread_mutex_lock(&l->mu);
    free(l->holder);
    l->holder = copy;
    pthread_mutex_unlock(&l->mu);
    if (holder[0]) {
        log_info(NULL, "lease %s/%s: %s sees a new leader: %s", l->ns, l->name, l->identity,
                 holder);
        if (l->cb.new_leader)
            l->cb.new_leader(holder, l->cb.ud);
    }
}

/* Whether another holder's lease ran out, by our clock since we saw it change. */
static int expired(const struct leader *l, const json_t *spec)
{
    json_int_t d = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));

    return monotime_now() >= l->observed_at + (d > 0 ? (double)d : l->lease_s);
}

/*
 * The spec to write for `holder` ("" releases) over `old` (NULL when
 * creating): the holder keeps its acquireTime and transition count when it
 * renews; a new holder starts a new term. NULL when out of memory.
 */
static json_t *make_spec(const json_t *old, const char *holder, double lease_s)
{
    const char *old_holder = spec_holder(old);
    json_int_t transitions = json_integer_value(json_object_get(old, "leaseTransitions"));
    const char *acquired = json_string_value(json_object_get(old, "acquireTime"));
    char now[48];

    micro_time_now(now, sizeof(now));
    if (!holder[0] || strcmp(holder, old_holder) != 0) {
        acquired = now;
        if (holder[0] && old)
            transitions++;
    }
    return json_pack("{s:s, s:I, s:s, s:s, s:I}", "holderIdentity", holder,
                     "leaseDurationSeconds", (json_int_t)ceil(lease_s),
                     "acquireTime", acquired ? acquired : now, "renewTime", now,
                     "leaseTransitions", transitions);
}

/* One Lease request, single attempt, finishing by the monotonic time `until`. */
static json_t *lease_request(struct leader *l, enum kube_verb verb, const json_t *body,
                             double until, struct kube_error *ke)
{
    struct kube_request req = {
        .verb = verb,
        .res = KUBE_RES_LEASES,
        .body = body,
        .flags = KUBE_REQ_NO_RETRY,
    };

    req.res.ns = l->ns;
    if (verb != KUBE_POST)
        req.res.name = l->name;
    req.timeout_ms = (long)(fmax(until - monotime_now(), MIN_REQUEST_S) * 1000);
    return kube_do(l->kc, &req, ke);
}

/*
 * Writes the Lease (POST to create, PUT to update) and observes what the
 * server stored. 1 when accepted, else 0 with the reason in l->last (on a
 * PUT, 409 Conflict: another contender wrote first and won this round).
 */
static int write_lease(struct leader *l, enum kube_verb verb, const json_t *lease, double until)
{
    struct kube_error ke;
    json_t *got = lease_request(l, verb, lease, until, &ke);

    if (!got) {
        l->last = ke.err;
        return 0;
    }
    observe(l, json_object_get(got, "spec"));
    json_decref(got);
    return 1;
}

/* Creates the Lease held by this contender. 1 when created, else 0. */
static int create_lease(struct leader *l, double until)
{
    json_t *spec = make_spec(NULL, l->identity, l->lease_s), *obj;
    int won = 0;

    obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion", "coordination.k8s.io/v1",
                    "kind", "Lease", "metadata", "name", l->name, "namespace", l->ns,
                    "spec", spec);
    if (obj)
        won = write_lease(l, KUBE_POST, obj, until);
    else
        err_set(&l->last, ENOMEM, "create lease: out of memory");
    json_decref(obj);
    json_decref(spec);
    return won;
}

/*
 * One election round by the monotonic time `until`. Without `release`: take
 * or renew the Lease if it is ours, free, or expired. With `release`: hand
 * it back if it is still ours. Returns 1 when the write was accepted, else
 * 0 with the reason in l->last.
 */
static int try_update(struct leader *l, int release, double until)
{
    struct kube_error ke;
    json_t *lease, *spec, *want = NULL;
    const char *holder;
    int ok = 0;

    lease = lease_request(l, KUBE_GET, NULL, until, &ke);
    if (!lease) {
        if (kube_is_not_found(&ke) && !release)
            return create_lease(l, until);
        l->last = ke.err;
        return 0;
    }
    spec = json_object_get(lease, "spec");
    observe(l, spec);
    holder = spec_holder(spec);
    if (release ? strcmp(holder, l->identity) != 0
                : holder[0] && strcmp(holder, l->identity) != 0 && !expired(l, spec)) {
        err_set(&l->last, 0, "lease is held by %s", holder[0] ? holder : "nobody");
        goto out;
    }
    want = make_spec(spec, release ? "" : l->identity, release ? 1 : l->lease_s);
    if (!want || json_object_set(lease, "spec", want) < 0) {
        err_set(&l->last, ENOMEM, "update lease: out of memory");
        goto out;
    }
    /* The GET's resourceVersion rides along in metadata: a stale write gets 409. */
    ok = write_lease(l, KUBE_PUT, lease, until);
out:
    json_decref(want);
    json_decref(lease);
    return ok;
}

/* Retry period stretched by up to 20%, so contenders do not poll in step. */
static double jittered(struct leader *l)
{
    return l->retry_s * (1.0 + 0.2 * (double)rand_r(&l->seed) / (double)RAND_MAX);
}

/* Polls until this contender holds the Lease: 0, or -1 when told to stop. */
static int acquire(struct leader *l)
{
    double sent;

    while (!stopping(l)) {
        sent = monotime_now();
        if (try_update(l, 0, sent + l->deadline_s)) {
            atomic_store(&l->valid_until, sent + l->deadline_s);
            atomic_store(&l->leading, 1);
            return 0;
        }
        log_debug(NULL, "lease %s/%s: not acquired: %s", l->ns, l->name, l->last.msg);
        if (sleep_or_stop(l, jittered(l)))
            break;
    }
    return -1;
}

/*
 * Says why this contender stops leading: another holder took the Lease
 * (lost), or no renewal got through by the deadline.
 */
static void log_step_down(struct leader *l, int lost)
{
    json_t *f = json_pack("{s:s, s:s, s:s, s:f, s:s}", "lease_namespace", l->ns, "lease", l->name,
                          "identity", l->identity, "renew_deadline_s", l->deadline_s,
                          "cause", l->last.msg);

    if (lost)
        log_emit(LOG_LEVEL_WARN, NULL, f, "lease %s/%s: lost the lease to %s: stepping down "
                 "as leader", l->ns, l->name, l->holder);
    else
        log_emit(LOG_LEVEL_WARN, NULL, f, "lease %s/%s: could not renew within %.1f s (%s): "
                 "stepping down as leader", l->ns, l->name, l->deadline_s, l->last.msg);
    json_decref(f);
}

/*
 * Leads until renewal fails past the deadline, another holder appears, or
 * stop is requested; then stops the work and, on a requested release,
 * hands the Lease back.
 */
static void lead(struct leader *l)
{
    double sent, until;
    int stop, lost;

    log_info(NULL, "lease %s/%s: %s started leading", l->ns, l->name, l->identity);
    if (l->cb.started_leading)
        l->cb.started_leading(l->cb.ud);
    for (;;) {
        stop = sleep_or_stop(l, l->retry_s);
        if (stop)
            break;
        sent = monotime_now();
        until = atomic_load(&l->valid_until);
        if (sent < until && try_update(l, 0, until)) {
            atomic_store(&l->valid_until, sent + l->deadline_s);
            continue;
        }
        lost = strcmp(l->holder, l->identity) != 0;
        if (lost || monotime_now() >= until) {
            log_step_down(l, lost);
            break;
        }
    }
    atomic_store(&l->leading, 0);
    if (stop)
        log_info(NULL, "lease %s/%s: %s stopped leading", l->ns, l->name, l->identity);
    if (l->cb.stopped_leading)
        l->cb.stopped_leading(l->cb.ud);
    pthread_mutex_lock(&l->mu);
    stop = stop && l->release;
    pthread_mutex_unlock(&l->mu);
    if (!stop)
        return;
    if (try_update(l, 1, monotime_now() + l->deadline_s))
        log_info(NULL, "lease %s/%s: released by %s", l->ns, l->name, l->identity);
    else
        log_warn(NULL, "lease %s/%s: release failed: %s", l->ns, l->name, l->last.msg);
}

static void *run(void *arg)
{
    struct leader *l = arg;

    while (acquire(l) == 0)
        lead(l);
    return NULL;
}

static void leader_free(struct leader *l)
{
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l->holder);
    json_decref(l->observed);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static int check_config(const struct leader_config *cfg, struct err *e)
{
    if (!cfg || !cfg->ns || !cfg->ns[0] || !cfg->name || !cfg->name[0] || !cfg->identity ||
        !cfg->identity[0])
        return err_set(e, EINVAL, "leader election: namespace, lease name and identity are required");
    return 0;
}

void leader_config_defaults(struct leader_config *cfg)
{
    if (cfg->lease_duration_s <= 0)
        cfg->lease_duration_s = LEADER_DEFAULT_LEASE_S;
    if (cfg->renew_deadline_s <= 0)
        cfg->renew_deadline_s = LEADER_DEFAULT_DEADLINE_S;
    if (cfg->retry_period_s <= 0)
        cfg->retry_period_s = LEADER_DEFAULT_RETRY_S;
}

struct leader *leader_start(struct kube_client *c, const struct leader_config *cfg,
                            struct err *e)
{
    struct leader_config d;
    struct leader *l;
    int rc;

    if (check_config(cfg, e) < 0)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (!l) {
        err_errno(e, ENOMEM, "leader election");
        return NULL;
    }
    rc = monotime_cond_init(&l->cond);
    if (rc) {
        err_errno(e, rc, "leader election condition variable");
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->kc = c;
    l->cb = cfg->cb;
    d = *cfg;
    leader_config_defaults(&d);
    l->lease_s = d.lease_duration_s;
    l->deadline_s = d.renew_deadline_s;
    l->retry_s = d.retry_period_s;
    l->ns = strdup(cfg->ns);
    l->name = strdup(cfg->name);
    l->identity = strdup(cfg->identity);
    l->holder = strdup("");
    l->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)l;
    if (!l->ns || !l->name || !l->identity || !l->holder) {
        err_errno(e, ENOMEM, "leader election");
        goto fail;
    }
    if (!(l->retry_s < l->deadline_s && l->deadline_s < l->lease_s)) {
        err_set(e, EINVAL, "leader election: need retry period (%g s) < renew deadline (%g s) "
                "< lease duration (%g s)", l->retry_s, l->deadline_s, l->lease_s);
        goto fail;
    }
    rc = pthread_create(&l->thread, NULL, run, l);
    if (rc) {
        err_errno(e, rc, "leader election thread");
        goto fail;
    }
    return l;
fail:
    leader_free(l);
    return NULL;
}

int leader_is_leader(const struct leader *l)
{
    return atomic_load(&l->leading) && monotime_now() < atomic_load(&l->valid_until);
}

char *leader_holder(struct leader *l)
{
    char *h;

    pthread_mutex_lock(&l->mu);
    h = strdup(l->holder);
    pthread_mutex_unlock(&l->mu);
    return h;
}

void leader_stop(struct leader *l, int release)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    l->release = release;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    leader_free(l);
}
