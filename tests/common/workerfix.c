/* workerfix: scratch inputs and a runner for worker tests; see workerfix.h. */
#include "workerfix.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "proc.h"

extern char **environ;

static const char *const wells[] = { "C03", "C04", "D01" };
static const char *const dyes[] = { "DNA", "RNA" };

static int put_file(const char *path, const char *text)
{
    struct err e;

    return fileutil_write_atomic(path, text, strlen(text), &e);
}

const char *wfix_path(const struct wfix *f, const char *rel)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", f->root, rel);
    return b;
}

int wfix_setup(struct wfix *f)
{
    const char *build = getenv("PLATEOP_BUILD");
    struct strbuf csv = STRBUF_INIT, img = STRBUF_INIT;
    size_t w, s, d;
    struct err e;
    int rc = -1;

    memset(f, 0, sizeof(*f));
    strbuf_init(&f->out);
    snprintf(f->worker, sizeof(f->worker), "%s/plateop-worker", build ? build : "build");
    snprintf(f->standin, sizeof(f->standin), "%s/tests/cellprofiler-standin", build ? build : "build");
    snprintf(f->root, sizeof(f->root), "/tmp/plateop-wtest-XXXXXX");
    if (!mkdtemp(f->root) || fileutil_mkdir_p(wfix_path(f, "img"), &e) < 0)
        goto out;
    if (put_file(wfix_path(f, "p.cppipe"), "CellProfiler Pipeline: http://www.cellprofiler.org\n"
                 "Version:5\nLoadData:[module_num:1]\n") < 0 ||
        put_file(wfix_path(f, "termination-log"), "") < 0)
        goto out;
    for (w = 0; w < 3; w++) {
        strbuf_reset(&csv);
        strbuf_adds(&csv, "FileName_DNA,PathName_DNA,FileName_RNA,PathName_RNA,"
                    "Metadata_Plate,Metadata_Well,Metadata_Site\n");
        for (s = 1; s <= 2; s++) {
            for (d = 0; d < 2; d++) {
                strbuf_reset(&img);
                strbuf_addf(&img, "img/%s_s%zu_%s.tif", wells[w], s, dyes[d]);
                if (put_file(wfix_path(f, img.buf), img.buf) < 0)
                    goto out;
                strbuf_addf(&csv, "%s_s%zu_%s.tif,%s,", wells[w], s, dyes[d], wfix_path(f, "img"));
            }
            strbuf_addf(&csv, "\"Plate, 1\",%s,%zu\n", wells[w], s);
        }
        strbuf_reset(&img);
        strbuf_addf(&img, "%s.csv", wells[w]);
        if (put_file(wfix_path(f, img.buf), csv.buf) < 0)
            goto out;
    }
    rc = 0;
out:
    strbuf_release(&csv);
    strbuf_release(&img);
    return rc;
}

void wfix_teardown(struct wfix *f)
{
    struct err e;

    if (f->root[0])
        fileutil_rm_rf(f->root, &e);
    strbuf_release(&f->out);
}

static void collect(void *ctx, const char *line, size_t len)
{
    struct strbuf *sb = ctx;

    strbuf_add(sb, line, len);
    strbuf_addch(sb, '\n');
}

int wfix_worker(struct wfix *f, const char *const *env, const char *const *args)
{
    struct strbuf termlog = STRBUF_INIT;
    const char **argv = NULL, **envp = NULL;
    struct proc_spec spec = { 0 };
    struct proc_result res;
    size_t n = 0, ne = 0, i;
    struct err e;
    int rc = -1;

    while (args[n])
        n++;
    while (environ[ne])
        ne++;
    for (i = 0; env && env[i]; i++)
        ;
    argv = calloc(n + 2, sizeof(*argv));
    envp = calloc(ne + i + 2, sizeof(*envp));
    if (!argv || !envp)
        goto out;
    argv[0] = f->worker;
    memcpy(argv + 1, args, n * sizeof(*argv));
    memcpy(envp, environ, ne * sizeof(*envp));
    for (i = 0; env && env[i]; i++)
        envp[ne++] = env[i];
    strbuf_addf(&termlog, "PLATEOP_TERMINATION_LOG=%s", wfix_path(f, "termination-log"));
    envp[ne++] = termlog.buf;
    strbuf_reset(&f->out);
    spec.argv = (char *const *)argv;
    spec.envp = (char *const *)envp;
    spec.timeout_s = 60;
    spec.on_line = collect;
    spec.ctx = &f->out;
    if (proc_run(&spec, &res, &e) < 0) {
        strbuf_adds(&f->out, e.msg);
        goto out;
    }
    rc = res.exited ? res.status : 128 + res.signal;
out:
    free(argv);
    free(envp);
    strbuf_release(&termlog);
    return rc;
}

int wfix_run_well(struct wfix *f, const char *well, const char *const *env,
                  const char *const *extra_args)
{
    const char *args[32] = { "run", "--pipeline", NULL, "--data-file", NULL, "--output-dir", NULL,
                             "--cellprofiler", f->standin, "--analysis", "lab/plate1", "--wells", well };
    char csv[64], out[64];
    size_t n = 13, i;

    snprintf(csv, sizeof(csv), "%s.csv", well);
    snprintf(out, sizeof(out), "out/%s", well);
    args[2] = wfix_path(f, "p.cppipe");
    args[4] = wfix_path(f, csv);
    args[6] = wfix_path(f, out);
    for (i = 0; extra_args && extra_args[i] && n < 31; i++)
        args[n++] = extra_args[i];
    args[n] = NULL;
    return wfix_worker(f, env, args);
}

const char *wfix_termination(const struct wfix *f)
{
    static char buf[8192];
    struct strbuf sb = STRBUF_INIT;
    struct err e;

    buf[0] = '\0';
    if (fileutil_read(wfix_path(f, "termination-log"), &sb, sizeof(buf) - 1, &e) == 0)
        snprintf(buf, sizeof(buf), "%s", sb.buf);
    strbuf_release(&sb);
    return buf;
}
