/*
 * proc: run a program to completion under a deadline, without a shell.
 *
 * The child runs in a process group of its own, so a timeout or a SIGTERM
 * to the caller (a pod being deleted) stops the whole tree: SIGTERM to the
 * group, then SIGKILL after a grace period. Its stdout and stderr are merged
 * into one pipe and handed to the caller line by line as they come, so a
 * long run's output streams into the caller's log. When the child exits,
 * anything left in its group is killed, so a stray grandchild can neither
 * keep running nor hold the output open.
 */
#ifndef PLATEOP_PROC_H
#define PLATEOP_PROC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Receives one line of output without its line end (not NUL-terminated). */
typedef void (*proc_line_fn)(void *ctx, const char *line, size_t len);

struct proc_spec {
    char *const *argv;          /* argv[0] is looked up in PATH when it has no '/' */
    char *const *envp;          /* NULL: the caller's environment */
    double timeout_s;           /* 0: no deadline */
    double kill_grace_s;        /* SIGTERM to SIGKILL; 0 means 5 s */
    uint64_t mem_limit;         /* RLIMIT_AS of the child in bytes; 0: none */
    proc_line_fn on_line;       /* may be NULL: output is then discarded */
    void *ctx;
};

struct proc_result {
    int exited;                 /* 1: the child called exit; status is valid */
    int status;                 /* exit status when exited */
    int signal;                 /* the signal that ended it, when !exited */
    int timed_out;              /* the deadline passed and the group was killed */
    int interrupted;            /* the caller got SIGTERM/SIGINT and the group was killed */
    double seconds;             /* wall time from start to the child's end */
};

/*
 * Starts spec->argv[0] and waits for it. Returns 0 once the child has been
 * reaped, whatever its status (read *res), or -1 if it could not be started
 * (e names the program and the cause, e.g. "start cellprofiler: No such
 * file or directory"). While running, SIGTERM and SIGINT to the caller are
 * caught and turned into stopping the child (res->interrupted); the old
 * handlers come back afterwards. Lines longer than 64 KiB are delivered in
 * 64 KiB pieces.
 */
int proc_run(const struct proc_spec *spec, struct proc_result *res, struct err *e);

#endif
