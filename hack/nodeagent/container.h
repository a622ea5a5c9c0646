/*
 * container: one container's process on this host, and its log pump.
 *
 * ctr_start() forks a child that becomes a session leader (so the
 * container's processes can be found and killed as one), joins its memory
 * cgroup if it has one, takes /dev/null as stdin and two pipes as stdout
 * and stderr, enters a private mount namespace (unshare(CLONE_NEWNS), then
 * every mount made private so nothing propagates back to the host) where it
 * binds its volumes, changes directory, drops to runAsGroup/runAsUser,
 * asks to be killed if the agent dies, and execve()s the command: no shell.
 * A failure in any of these steps before exec comes back to the parent
 * through a close-on-exec pipe as a value, never as a guess.
 *
 * A pump thread copies the two pipes into the container's log file
 * (podlog) with a timestamp per line until both close.
 *
 * The child's exit is collected by the caller (waitpid on the supervising
 * thread); this module only starts, signals and drains. ctr_start() must
 * be called from a thread that outlives the container: the parent-death
 * signal follows the forking thread.
 */
#ifndef NODEAGENT_CONTAINER_H
#define NODEAGENT_CONTAINER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"
#include "podlog.h"

/* e->code of a failure inside the child before exec: the kubelet's StartError. */
#define CTR_ESTART 2101

struct ctr_mount {
    const char *source;   /* host path to bind */
    char *target;         /* mountPath; writable: the child may create it */
    int read_only;
    int is_file;          /* source is a file: the target must be one too */
    int nested;           /* target lies inside another mount: the child creates it */
};

struct ctr_launch {
    const char *exec_path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    struct ctr_mount *mounts;
    size_t n_mounts;
    int mount_ns;         /* enter a private mount namespace (needs root) */
    int set_ids;          /* switch to uid/gid/groups (needs root) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;
    const char *cgroup_procs;  /* cgroup.procs to join, or NULL */
    const char *log_path;
};

struct ctr_proc {
    pid_t pid;                 /* the container's first process and session id */
    struct timespec started;   /* when exec succeeded (wall clock) */
    int out_fd, err_fd;        /* read ends, owned by the pump */
    struct podlog_writer log;
    pthread_t pump;
    int has_pump;
    atomic_int pump_done;      /* both pipes closed and the log flushed */
    atomic_int pump_stop;      /* asks the pump to finish now */
};

/*
 * Starts the container. On success fills *p (pid > 0, the pump running) and
 * returns 0. On failure returns -1 with e: CTR_ESTART and a message naming
 * the step ("exec /bin/nope: No such file or directory") when the child
 * failed; any other code when the agent could not even try. No process is
 * left behind on failure. Cost: a fork, and a wait for exec.
 */
int ctr_start(struct ctr_proc *p, const struct ctr_launch *l, struct err *e);

/* Non-zero once the pump has copied everything (the container's pipes closed). */
int ctr_logs_done(struct ctr_proc *p);

/*
 * Stops the pump (after copying what is ready) and waits for it. Call once
 * the process has exited; safe twice and on a container that never started.
 */
void ctr_finish(struct ctr_proc *p);

#endif
