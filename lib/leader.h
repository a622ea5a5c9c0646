/*
 * leader: leader election on a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection package does it, so that of several controller replicas
 * exactly one reconciles at a time.
 *
 * Each contender runs an election thread that every retry period reads the
 * Lease and, when it is free, expired or already its own, writes itself in
 * as holder (holderIdentity, leaseDurationSeconds, acquireTime, renewTime,
 * leaseTransitions). Writes carry the resourceVersion that was read, so
 * when two contenders race, the API server accepts one and answers 409
 * Conflict to the other.
 *
 * Expiry is judged on the local monotonic clock: another holder's lease has
 * expired when its record has not been seen to change for
 * leaseDurationSeconds. The remote renewTime is written for humans and
 * other clients, never trusted: clocks of different machines disagree.
 *
 * The leader renews every retry period. If it cannot renew within the
 * renew deadline (counted from the moment the last successful renewal was
 * sent), it steps down, says so in a warning log line ("could not renew
 * within 10.0 s"), and competes again. When it finds that another contender
 * has taken the Lease, it steps down at once and logs "lost the lease to X".
 * Because renew deadline < lease duration, it stops before any other
 * contender can consider the lease expired. leader_is_leader() turns false
 * at the deadline even while the election thread is still blocked in a
 * request.
 *
 * Callbacks run on the election thread, one at a time:
 *   - started_leading: this contender now leads. Start the work and return
 *     (do not run the work inside the callback);
 *   - stopped_leading: it no longer leads (step-down or leader_stop()). Stop
 *     the work before returning: the elector may release the lease, or win
 *     it again, only after this returns;
 *   - new_leader: the holder seen in the Lease changed (called with this
 *     contender's own identity too). A released lease (empty holder) is not
 *     reported.
 *
 * Thread-safety: leader_is_leader() and leader_holder() may be called from
 * any thread; leader_stop() from one thread, once, not from a callback.
 */
#ifndef PLATEOP_LEADER_H
#define PLATEOP_LEADER_H

#include "err.h"
#include "kube.h"

struct leader;

struct leader_callbacks {
    void (*started_leading)(void *ud);
    void (*stopped_leading)(void *ud);
    void (*new_leader)(const char *identity, void *ud);  /* borrowed for the call */
    void *ud;
};

/* client-go's defaults, taken by a zero duration. */
#define LEADER_DEFAULT_LEASE_S 15.0
#define LEADER_DEFAULT_DEADLINE_S 10.0
#define LEADER_DEFAULT_RETRY_S 2.0

struct leader_config {
    const char *ns;              /* the Lease's namespace (required) */
    const char *name;            /* the Lease's name (required) */
    const char *identity;        /* unique per contender, e.g. the pod name (required) */
    double lease_duration_s;     /* 0 means LEADER_DEFAULT_LEASE_S (15) */
    double renew_deadline_s;     /* 0 means 10; must be < lease duration */
    double retry_period_s;       /* 0 means 2; must be < renew deadline */
    struct leader_callbacks cb;  /* any member may be NULL */
};

/*
 * Replaces each zero (or negative) duration in cfg by its default: lease
 * 15 s, renew deadline 10 s, retry period 2 s. leader_start() applies this
 * to its copy; exposed so callers can log the durations in effect. Cannot fail.
 */
void leader_config_defaults(struct leader_config *cfg);

/*
 * Copies cfg and starts the election thread for it on client c (which must
 * outlive the elector; requests go through kube_do() with a single attempt
 * each, bounded by the renew deadline). The Lease is created if missing;
 * its namespace must exist. Returns NULL with e set when the configuration
 * is incomplete or inconsistent, or when memory or a thread cannot be had.
 * Cost: no I/O in this call; two requests (GET, then PUT or POST) per retry
 * period on the thread.
 */
struct leader *leader_start(struct kube_client *c, const struct leader_config *cfg,
                            struct err *e);

/*
 * Non-zero while this contender leads and its last renewal is within the
 * renew deadline. Cheap (two atomic loads and a vDSO clock read); any thread.
 */
int leader_is_leader(const struct leader *l);

/*
 * The holder identity last seen in the Lease ("" when none or released), as
 * a malloc'd string the caller frees; NULL when out of memory. Any thread.
 */
char *leader_holder(struct leader *l);

/*
 * Stops the election thread and frees the elector. If it was leading,
 * stopped_leading runs first; then, when `release` is non-zero, the Lease is
 * written with an empty holder and a 1 s duration so that another contender
 * can take over at once (one GET and one PUT). With release == 0 the Lease
 * is left as it is, as if the process had died: others wait for expiry.
 * Blocks until a round in flight ends (at most the renew deadline), then
 * for the release (at most the renew deadline again). Safe on NULL.
 */
void leader_stop(struct leader *l, int release);

#endif
