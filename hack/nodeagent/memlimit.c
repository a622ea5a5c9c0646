/* memlimit: memory limits by cgroup v2 or by sampling RSS; see memlimit.h. */
#include "memlimit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "fileutil.h"
#include "log.h"
#include "proctree.h"
#include "strbuf.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static enum memlimit_mode mode = MEMLIMIT_SAMPLE;
static struct strbuf base = STRBUF_INIT;   /* the agent's cgroup directory (v2 mode) */

/* Writes a short string to a control file. Returns 0 or -1 with e. */
static int write_ctl(const char *dir, const char *file, const char *value, struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    FILE *f;
    int rc = -1;

    strbuf_addf(&path, "%s/%s", dir, file);
    f = fopen(path.buf, "we");
    if (!f) {
        err_errno(e, errno, "open %s", path.buf);
        goto out;
    }
    if (fputs(value, f) == EOF) {
        err_errno(e, errno, "write %s", path.buf);
        fclose(f);
        goto out;
    }
    if (fclose(f) == EOF) {
        err_errno(e, errno, "write %s", path.buf);
        goto out;
    }
    rc = 0;
out:
    strbuf_release(&path);
    return rc;
}

static int lists_memory(const char *file)
{
    struct strbuf sb = STRBUF_INIT;
    const char *p;
    int found = 0;

    if (fileutil_read(file, &sb, 4096, NULL) == 0)
        for (p = sb.buf; (p = strstr(p, "memory")); p += 6)
            if ((p == sb.buf || p[-1] == ' ') && (p[6] == ' ' || p[6] == '\n' || !p[6]))
                found = 1;
    strbuf_release(&sb);
    return found;
}

enum memlimit_mode memlimit_init(const char *node)
{
    struct statfs sfs;
    struct err e;

    err_clear(&e);
    mode = MEMLIMIT_SAMPLE;
    if (statfs(CGROUP_ROOT, &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC ||
        !lists_memory(CGROUP_ROOT "/cgroup.subtree_control"))
        goto out;
    strbuf_reset(&base);
    strbuf_addf(&base, "%s/plateop-nodeagent.%s", CGROUP_ROOT, node);
    if (mkdir(base.buf, 0755) < 0 && errno != EEXIST)
        err_errno(&e, errno, "create cgroup %s", base.buf);
    else
        write_ctl(base.buf, "cgroup.subtree_control", "+memory", &e);
    if (err_isset(&e)) {
        log_warn(NULL, "cgroup v2 memory limits unavailable (%s): sampling memory instead",
                 e.msg);
        goto out;
    }
    mode = MEMLIMIT_CGROUP2;
out:
    log_info(NULL, "memory limits enforced by %s",
             mode == MEMLIMIT_CGROUP2 ? base.buf : "sampling each container's resident memory");
    return mode;
}

enum memlimit_mode memlimit_mode(void)
{
    return mode;
}

int memlimit_prepare(struct memlimit *m, const char *id, long long limit, struct err *e)
{
    struct strbuf dir = STRBUF_INIT, procs = STRBUF_INIT;
    char value[32];

    memset(m, 0, sizeof(*m));
    m->limit = limit;
    if (mode != MEMLIMIT_CGROUP2 || limit <= 0)
        return 0;
    strbuf_addf(&dir, "%s/%s", base.buf, id);
    strbuf_addf(&procs, "%s/cgroup.procs", dir.buf);
    if (mkdir(dir.buf, 0755) < 0 && errno != EEXIST) {
        err_errno(e, errno, "create cgroup %s", dir.buf);
        goto fail;
    }
    m->cgroup_dir = strbuf_detach(&dir, NULL);
    m->cgroup_procs = strbuf_detach(&procs, NULL);
    snprintf(value, sizeof(value), "%lld", limit);
    if (write_ctl(m->cgroup_dir, "memory.max", value, e) < 0)
        goto fail;
    /* Without swap off a container over its limit swaps instead of being killed. */
    write_ctl(m->cgroup_dir, "memory.swap.max", "0", NULL);
    return 0;
fail:
    strbuf_release(&dir);
    strbuf_release(&procs);
    memlimit_release(m);
    return -1;
}

void memlimit_sample(struct memlimit *const *ms, const pid_t *sids, size_t n)
{
    long long *rss;
    size_t i;

    if (mode != MEMLIMIT_SAMPLE || n == 0)
        return;
    rss = calloc(n, sizeof(*rss));
    if (!rss)
        return;
    proctree_rss(sids, n, rss);
    for (i = 0; i < n; i++) {
        if (ms[i]->limit <= 0 || rss[i] <= ms[i]->limit)
            continue;
        ms[i]->oom = 1;
        proctree_kill(sids[i], SIGKILL);
    }
    free(rss);
}

int memlimit_oom_killed(struct memlimit *m)
{
    struct strbuf sb = STRBUF_INIT, path = STRBUF_INIT;
    const char *p;
    int killed = m->oom;

    if (!killed && m->cgroup_dir) {
        strbuf_addf(&path, "%s/memory.events", m->cgroup_dir);
        if (fileutil_read(path.buf, &sb, 4096, NULL) == 0 &&
            (p = strstr(sb.buf, "oom_kill ")))
            killed = atoll(p + 9) > 0;
    }
    strbuf_release(&sb);
    strbuf_release(&path);
    return killed;
}

void memlimit_release(struct memlimit *m)
{
    if (m->cgroup_dir && rmdir(m->cgroup_dir) < 0 && errno != ENOENT)
        log_warn(NULL, "remove cgroup %s: %s", m->cgroup_dir, strerror(errno));
    free(m->cgroup_dir);
    free(m->cgroup_procs);
    memset(m, 0, sizeof(*m));
}

void memlimit_shutdown(void)
{
    if (mode == MEMLIMIT_CGROUP2 && rmdir(base.buf) < 0 && errno != ENOENT)
        log_warn(NULL, "remove cgroup %s: %s", base.buf, strerror(errno));
    strbuf_release(&base);
    mode = MEMLIMIT_SAMPLE;
}
