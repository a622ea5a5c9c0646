/*
 * memlimit: a container's memory limit, enforced.
 *
 * With cgroup v2 mounted at /sys/fs/cgroup, the memory controller offered
 * at its root, and the agent allowed to create cgroups there, each limited
 * container gets its own cgroup (/sys/fs/cgroup/plateop-nodeagent.<node>/
 * <id>) with memory.max set and swap off; the kernel kills the container on
 * excess and memory.events counts it (oom_kill). Otherwise (cgroup v1, or
 * no permission) the agent samples the resident memory of each container's
 * session a few times a second and kills the whole session once it is over
 * the limit. Sampling can miss a spike shorter than its period; the cgroup
 * cannot.
 */
#ifndef NODEAGENT_MEMLIMIT_H
#define NODEAGENT_MEMLIMIT_H

#include <sys/types.h>

#include "err.h"

enum memlimit_mode {
    MEMLIMIT_CGROUP2,
    MEMLIMIT_SAMPLE,
};

/*
 * Chooses the mode for this agent (named node, used in the cgroup path).
 * Never fails: anything unusable means MEMLIMIT_SAMPLE. Call once, before
 * other threads use this module.
 */
enum memlimit_mode memlimit_init(const char *node);

/* The mode memlimit_init() chose. */
enum memlimit_mode memlimit_mode(void);

struct memlimit {
    long long limit;      /* bytes; 0: unlimited (nothing is enforced) */
    char *cgroup_dir;     /* cgroup v2 only, else NULL */
    char *cgroup_procs;   /* "<cgroup_dir>/cgroup.procs": the child writes "0" here */
    int oom;              /* sampling killed it for exceeding the limit */
};

/*
 * Sets up the limit for a container identified by id (unique on this node,
 * e.g. the pod UID and container name): in cgroup v2 mode creates the cgroup
 * and writes memory.max. Returns 0, or -1 with e. Free with memlimit_release().
 */
int memlimit_prepare(struct memlimit *m, const char *id, long long limit, struct err *e);

/*
 * Sampling mode: measures the sessions sids[0..n) of the limits ms[0..n)
 * and kills (SIGKILL) every session over its limit, marking it oom. No-op
 * in cgroup v2 mode. Cost: one pass over /proc.
 */
void memlimit_sample(struct memlimit *const *ms, const pid_t *sids, size_t n);

/* Non-zero when the container was killed for exceeding its limit (either mode). */
int memlimit_oom_killed(struct memlimit *m);

/* Removes the cgroup (its processes must be gone) and frees. Safe on a zeroed struct. */
void memlimit_release(struct memlimit *m);

/* Removes the agent's own cgroup directory (cgroup v2 mode), once every limit is released. */
void memlimit_shutdown(void);

#endif
