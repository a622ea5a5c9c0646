/* proc: run a child in its own process group with a deadline; see proc.h. */
#include "proc.h"
#include "monotime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES (64 * 1024)
#define DRAIN_S 2.0         /* how long to read output left behind after the exit */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* In the child: never returns. Reports exec's errno through errfd. */
static void child_exec(const struct proc_spec *spec, int outfd, int errfd)
{
    int err, devnull = open("/dev/null", O_RDONLY);

    setpgid(0, 0);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(outfd, 1);
    dup2(outfd, 2);
    if (spec->mem_limit) {
        struct rlimit rl = { spec->mem_limit, spec->mem_limit };

        setrlimit(RLIMIT_AS, &rl);
    }
    if (spec->envp)
        execvpe(spec->argv[0], spec->argv, spec->envp);
    else
        execvp(spec->argv[0], spec->argv);
    err = errno;
    if (write(errfd, &err, sizeof(err)) < 0)
        _exit(127);
    _exit(127);
}

struct lines {
    char buf[LINE_MAX_BYTES];
    size_t len;
    const struct proc_spec *spec;
};

/* Splits output into lines for the callback, dropping CR before LF. */
static void feed(struct lines *l, const char *data, size_t n, int final)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (data[i] != '\n')
            l->buf[l->len++] = data[i];
        if (data[i] == '\n' || l->len == sizeof(l->buf)) {
            if (data[i] == '\n' && l->len > 0 && l->buf[l->len - 1] == '\r')
                l->len--;
            if (l->spec->on_line)
                l->spec->on_line(l->spec->ctx, l->buf, l->len);
            l->len = 0;
        }
    }
    if (final && l->len > 0) {
        if (l->spec->on_line)
            l->spec->on_line(l->spec->ctx, l->buf, l->len);
        l->len = 0;
    }
}

/* Starts the child; returns its pid and the read end of its output, or -1. */
static pid_t start(const struct proc_spec *spec, int *outfd, struct err *e)
{
    int out[2] = { -1, -1 }, ep[2] = { -1, -1 }, child_errno = 0;
    pid_t pid = -1;
    ssize_t n;

    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        err_errno(e, errno, "start %s: pipe", spec->argv[0]);
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        err_errno(e, errno, "start %s: fork", spec->argv[0]);
        goto out;
    }
    if (pid == 0)
        child_exec(spec, out[1], ep[1]);
    setpgid(pid, pid);   /* also in the parent, so a kill right away reaches the group */
    close(ep[1]);
    ep[1] = -1;
    do
        n = read(ep[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(child_errno)) {
        err_errno(e, child_errno, "start %s", spec->argv[0]);
        waitpid(pid, NULL, 0);
        pid = -1;
        goto out;
    }
    *outfd = out[0];
    out[0] = -1;
out:
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (ep[0] >= 0)
        close(ep[0]);
    if (ep[1] >= 0)
        close(ep[1]);
    return pid;
}

int proc_run(const struct proc_spec *spec, struct proc_result *res, struct err *e)
{
    struct sigaction sa, old_term, old_int;
    struct lines *lines = NULL;
    double t0 = monotime_now(), grace = spec->kill_grace_s > 0 ? spec->kill_grace_s : 5.0;
    double kill_at = 0, drain_until = 0;
    int fd = -1, reaped = 0, eof = 0, rc = -1;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    lines = calloc(1, sizeof(*lines));
    if (!lines)
        return err_set(e, ENOMEM, "start %s: out of memory", spec->argv[0]);
    lines->spec = spec;
    stop_requested = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);

    pid = start(spec, &fd, e);
    if (pid < 0)
        goto out;
    while (!(reaped && (eof || monotime_now() >= drain_until))) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        double now = monotime_now();
        int status;

        if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = 1;
            res->seconds = now - t0;
            res->exited = WIFEXITED(status);
            res->status = res->exited ? WEXITSTATUS(status) : 0;
            res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
            kill(-pid, SIGKILL);    /* whatever it left behind */
            drain_until = now + DRAIN_S;
            continue;
        }
        if (!reaped && !kill_at) {
            if (spec->timeout_s > 0 && now - t0 >= spec->timeout_s)
                res->timed_out = 1;
            if (stop_requested)
                res->interrupted = 1;
            if (res->timed_out || res->interrupted) {
                kill(-pid, SIGTERM);
                kill_at = now + grace;
            }
        } else if (!reaped && now >= kill_at) {
            kill(-pid, SIGKILL);
        }
        if (eof) {
            /* Output closed while the child lives on: just wait for it. */
            struct timespec ts = { 0, 20 * 1000 * 1000 };

            nanosleep(&ts, NULL);
            continue;
        }
        if (poll(&pfd, 1, 50) > 0) {
            char chunk[16384];
            ssize_t n = read(fd, chunk, sizeof(chunk));

            if (n > 0)
                feed(lines, chunk, (size_t)n, 0);
            else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                eof = 1;
        }
    }
    feed(lines, "", 0, 1);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    free(lines);
    return rc;
}
