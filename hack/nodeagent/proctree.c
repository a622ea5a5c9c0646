/* proctree: a container's processes found by session id in /proc; see proctree.h. */
#include "proctree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stat_fields {
    pid_t pid;
    pid_t session;
    unsigned long long start_time;
    long long rss_pages;
};

/* Reads /proc/PID/stat. Returns 0, or -1 when the process is gone. */
static int read_stat(pid_t pid, struct stat_fields *f)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd, field;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    p = strrchr(buf, ')');
    if (!p)
        return -1;
    memset(f, 0, sizeof(*f));
    f->pid = pid;
    for (field = 3, p += 2; *p; field++) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);

        if (field == 6)
            f->session = (pid_t)v;
        else if (field == 22)
            f->start_time = v;
        else if (field == 24) {
            f->rss_pages = (long long)v;
            break;
        }
        p = strchr(p, ' ');
        if (!p)
            break;
        p++;
    }
    return 0;
}

/* Calls fn for every process in /proc. */
static void for_each_process(void (*fn)(const struct stat_fields *f, void *arg), void *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    struct stat_fields f;

    if (!d)
        return;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);

        if (*end || pid <= 0)
            continue;
        if (read_stat((pid_t)pid, &f) == 0)
            fn(&f, arg);
    }
    closedir(d);
}

struct rss_acc {
    const pid_t *sids;
    size_t n;
    long long *rss;
    long page;
};

static void add_rss(const struct stat_fields *f, void *arg)
{
    struct rss_acc *a = arg;
    size_t i;

    for (i = 0; i < a->n; i++)
        if (a->sids[i] == f->session)
            a->rss[i] += f->rss_pages * a->page;
}

void proctree_rss(const pid_t *sids, size_t n, long long *rss)
{
    struct rss_acc a = { sids, n, rss, sysconf(_SC_PAGESIZE) };

    memset(rss, 0, n * sizeof(*rss));
    if (n)
        for_each_process(add_rss, &a);
}

struct kill_acc {
    pid_t sid;
    int sig;
    int count;
};

static void kill_member(const struct stat_fields *f, void *arg)
{
    struct kill_acc *a = arg;

    if (f->session == a->sid && kill(f->pid, a->sig) == 0)
        a->count++;
}

int proctree_kill(pid_t sid, int sig)
{
    struct kill_acc a = { sid, sig, 0 };

    if (sid <= 1)
        return 0;
    kill(-sid, sig);
    for_each_process(kill_member, &a);
    return a.count;
}

unsigned long long proctree_start_time(pid_t pid)
{
    struct stat_fields f;

    return read_stat(pid, &f) == 0 ? f.start_time : 0;
}
