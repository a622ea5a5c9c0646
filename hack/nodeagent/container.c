/* container: fork/exec of one container with its mounts, ids and log pump; see container.h. */
#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* What the child reports when a step before exec fails. */
enum stage {
    ST_SETSID, ST_CGROUP, ST_STDIO, ST_UNSHARE, ST_PRIVATE, ST_MKDIR, ST_BIND, ST_READONLY,
    ST_CHDIR, ST_SETGROUPS, ST_SETGID, ST_SETUID, ST_PDEATHSIG, ST_EXEC,
};

static const char *const stage_names[] = {
    "setsid", "join memory cgroup", "redirect output", "unshare mount namespace",
    "make mounts private", "create mount point", "bind mount", "remount read-only",
    "chdir", "setgroups", "setgid", "setuid", "set parent-death signal", "exec",
};

struct child_report {
    int stage;
    int err;
    int index;   /* mount index for mount stages */
};

/* The child's failure path: tell the parent, then exit without running atexit handlers. */
static void __attribute__((noreturn)) child_fail(int fd, enum stage st, int index)
{
    struct child_report r = { st, errno, index };
    ssize_t n = write(fd, &r, sizeof(r));

    (void)n;
    _exit(127);
}

/* Creates a nested mount point inside an already bound volume (async-signal-safe). */
static int child_make_target(char *target, int is_file)
{
    char *p;
    int fd;

    for (p = target + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (!is_file)
        return mkdir(target, 0755) < 0 && errno != EEXIST ? -1 : 0;
    fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static void child_mounts(const struct ctr_launch *l, int efd)
{
    size_t i;

    if (unshare(CLONE_NEWNS) < 0)
        child_fail(efd, ST_UNSHARE, -1);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(efd, ST_PRIVATE, -1);
    for (i = 0; i < l->n_mounts; i++) {
        const struct ctr_mount *m = &l->mounts[i];

        if (m->nested && child_make_target(m->target, m->is_file) < 0)
            child_fail(efd, ST_MKDIR, (int)i);
        if (mount(m->source, m->target, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(efd, ST_BIND, (int)i);
        if (m->read_only &&
            mount(NULL, m->target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
            child_fail(efd, ST_READONLY, (int)i);
    }
}

/* Runs in the forked child: only async-signal-safe calls until execve. */
static void __attribute__((noreturn)) child_main(const struct ctr_launch *l, int null_fd,
                                                  int out_fd, int err_fd, int efd,
                                                  pid_t parent)
{
    sigset_t all;
    int sig, fd;

    if (setsid() < 0)
        child_fail(efd, ST_SETSID, -1);
    if (l->cgroup_procs) {
        fd = open(l->cgroup_procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1)
            child_fail(efd, ST_CGROUP, -1);
        close(fd);
    }
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        child_fail(efd, ST_STDIO, -1);
    /* Keep only 0-2 and the report pipe (moved to 3) across exec. */
    if (efd != 3) {
        if (dup3(efd, 3, O_CLOEXEC) < 0)
            child_fail(efd, ST_STDIO, -1);
        efd = 3;
    }
    syscall(SYS_close_range, 4U, ~0U, 0U);
    if (l->mount_ns)
        child_mounts(l, efd);
    if (chdir(l->cwd) < 0)
        child_fail(efd, ST_CHDIR, -1);
    /* Raw system calls: the child of a threaded process must not use glibc's setxid broadcast. */
    if (l->set_ids) {
        if (syscall(SYS_setgroups, l->n_groups, l->groups) < 0)
            child_fail(efd, ST_SETGROUPS, -1);
        if (syscall(SYS_setresgid, l->gid, l->gid, l->gid) < 0)
            child_fail(efd, ST_SETGID, -1);
        if (syscall(SYS_setresuid, l->uid, l->uid, l->uid) < 0)
            child_fail(efd, ST_SETUID, -1);
    }
    /* After the id change, which would clear it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        child_fail(efd, ST_PDEATHSIG, -1);
    if (getppid() != parent)
        _exit(137);
    for (sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execve(l->exec_path, l->argv, l->envp);
    child_fail(efd, ST_EXEC, -1);
}

static void *pump_main(void *arg)
{
    struct ctr_proc *p = arg;
    struct pollfd fds[2] = { { p->out_fd, POLLIN, 0 }, { p->err_fd, POLLIN, 0 } };
    char buf[65536];
    struct timespec now;
    struct err e;
    int i, n, open_fds = 2, stopping;

    while (open_fds > 0) {
        stopping = atomic_load(&p->pump_stop);
        n = poll(fds, 2, stopping ? 0 : 200);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (stopping || n < 0)
                break;
            continue;
        }
        for (i = 0; i < 2; i++) {
            ssize_t got;

            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            got = read(fds[i].fd, buf, sizeof(buf));
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            clock_gettime(CLOCK_REALTIME, &now);
            if (podlog_write(&p->log, (enum podlog_stream)i, buf, (size_t)got, &now, &e) < 0)
                log_warn(NULL, "container log: %s", e.msg);
        }
    }
    for (i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    podlog_writer_close(&p->log);
    atomic_store(&p->pump_done, 1);
    return NULL;
}

/* Turns the child's report into the error the pod's status will show. */
static int report_error(const struct ctr_launch *l, const struct child_report *r, struct err *e)
{
    const char *what = "";

    if (r->stage == ST_EXEC)
        what = l->exec_path;
    else if (r->stage == ST_CHDIR)
        what = l->cwd;
    else if (r->index >= 0 && (size_t)r->index < l->n_mounts)
        what = l->mounts[r->index].target;
    return err_set(e, CTR_ESTART, "%s%s%s: %s",
                   r->stage >= 0 && r->stage <= ST_EXEC ? stage_names[r->stage] : "start",
                   *what ? " " : "", what, strerror(r->err));
}

int ctr_start(struct ctr_proc *p, const struct ctr_launch *l, struct err *e)
{
    int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, rep[2] = { -1, -1 }, null_fd = -1, rc = -1;
    struct child_report r;
    pid_t parent = getpid(), pid;
    ssize_t n;

    memset(p, 0, sizeof(*p));
    p->out_fd = p->err_fd = -1;
    p->log.fd = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
        err_errno(e, errno, "pipe");
        goto out;
    }
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        err_errno(e, errno, "open /dev/null");
        goto out;
    }
    if (podlog_writer_open(&p->log, l->log_path, e) < 0)
        goto out;
    pid = fork();
    if (pid < 0) {
        err_errno(e, errno, "fork");
        goto out;
    }
    if (pid == 0)
        child_main(l, null_fd, out[1], errp[1], rep[1], parent);
    close(rep[1]);
    rep[1] = -1;
    do
        n = read(rep[0], &r, sizeof(r));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(r)) {
        /* The child never ran the command: collect it here, it is nobody else's. */
        waitpid(pid, NULL, 0);
        report_error(l, &r, e);
        goto out;
    }
    clock_gettime(CLOCK_REALTIME, &p->started);
    p->pid = pid;
    p->out_fd = out[0];
    p->err_fd = errp[0];
    out[0] = errp[0] = -1;
    if (pthread_create(&p->pump, NULL, pump_main, p) != 0) {
        /* Without a pump nobody would read its output: stop it rather than block it. */
        kill(-pid, SIGKILL);
        close(p->out_fd);
        close(p->err_fd);
        p->pid = 0;
        err_set(e, EAGAIN, "cannot start the log pump thread");
        goto out;
    }
    p->has_pump = 1;
    rc = 0;
out:
    if (rc < 0 && !p->pid)
        podlog_writer_close(&p->log);
    for (n = 0; n < 2; n++) {
        if (out[n] >= 0)
            close(out[n]);
        if (errp[n] >= 0)
            close(errp[n]);
        if (rep[n] >= 0)
            close(rep[n]);
    }
    if (null_fd >= 0)
        close(null_fd);
    return rc;
}

int ctr_logs_done(struct ctr_proc *p)
{
    return !p->has_pump || atomic_load(&p->pump_done);
}

void ctr_finish(struct ctr_proc *p)
{
    if (!p->has_pump)
        return;
    atomic_store(&p->pump_stop, 1);
    pthread_join(p->pump, NULL);
    p->has_pump = 0;
}
