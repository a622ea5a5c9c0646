/* Tests of `plateop-worker run` with the CellProfiler stand-in: every outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../worker/exit.h"
#include "../../worker/run.h"
#include "fileutil.h"
#include "log.h"
#include "manifest.h"
#include "monotime.h"
#include "workerfix.h"

/*
 * This test program's strdup (it takes the place of the C library's for
 * the worker code linked in): it fails for the one string named here, so
 * an out-of-memory path can be taken in-process.
 */
static const char *strdup_fails_for;

char *strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p;

    if (strdup_fails_for && strcmp(s, strdup_fails_for) == 0) {
        errno = ENOMEM;
        return NULL;
    }
    p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static int setup(void **state)
{
    struct wfix *f = calloc(1, sizeof(*f));

    if (!f || wfix_setup(f) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    wfix_teardown(*state);
    free(*state);
    return 0;
}

static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* No hidden temporary directory may be left beside the outputs. */
static void assert_no_temp_left(struct wfix *f)
{
    DIR *d = opendir(wfix_path(f, "out"));
    struct dirent *de;

    if (!d)
        return;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp-"))
            fail_msg("temporary directory left behind: %s", de->d_name);
    closedir(d);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("[%s] not found in:\n%s", needle, hay);
}

/* Runs a failing case and checks the code, the message, and that nothing was left. */
static void expect_failure(struct wfix *f, const char *well, const char *const *env,
                           const char *const *args, int code, const char *msg)
{
    char out[64];
    int rc;

    snprintf(out, sizeof(out), "out/%s", well);
    rc = wfix_run_well(f, well, env, args);
    /* The tail: cmocka cuts long messages short. */
    if (rc != code)
        fail_msg("the worker exited %d, not %d; its output ends:\n%s", rc, code,
                 f->out.buf + (f->out.len > 600 ? f->out.len - 600 : 0));
    assert_contains(f->out.buf, msg);
    assert_contains(wfix_termination(f), worker_exit_reason(code));
    assert_contains(wfix_termination(f), msg);
    assert_false(exists(wfix_path(f, out)));
    assert_no_temp_left(f);
}

/* The SHA-256 of a file, hex (static buffer). */
static const char *file_sha256(const char *path)
{
    static char hex[65];
    struct err e;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(manifest_hash_fd(fd, path, hex, &e), 0);
    close(fd);
    return hex;
}

static void test_success_writes_tables_and_manifest(void **state)
{
    const char *args[] = { "--tables", "Image,Cells,Nuclei,Cytoplasm,Experiment",
                           "--input-hash", "sha256:aaa", "--batch", "b-c03", NULL };
    struct wfix *f = *state;
    json_t *m, *t;
    struct err e;
    size_t i;

    assert_int_equal(wfix_run_well(f, "C03", NULL, args), 0);
    /* The stand-in's own output passes through as JSON log lines naming the batch. */
    assert_contains(f->out.buf, "\"msg\":\"cellprofiler: Image # 2, module LoadData");
    assert_contains(f->out.buf, "\"batch\":\"b-c03\",\"well\":\"C03\",\"source\":\"cellprofiler\"");
    assert_string_equal(wfix_termination(f), "");
    m = manifest_read(wfix_path(f, "out/C03"), "batch", &e);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "batch")), "b-c03");
    /* The controller's hash mixed with the pipeline's and the CSV's bytes. */
    assert_int_equal(strlen(json_string_value(json_object_get(m, "input_hash"))), 7 + 64);
    assert_true(strncmp(json_string_value(json_object_get(m, "input_hash")), "sha256:", 7) == 0);
    assert_string_equal(json_string_value(json_object_get(m, "pipeline_sha256")),
                        file_sha256(wfix_path(f, "p.cppipe")));
    assert_string_equal(json_string_value(json_object_get(m, "data_file_sha256")),
                        file_sha256(wfix_path(f, "C03.csv")));
    assert_string_equal(json_string_value(json_object_get(m, "analysis")), "lab/plate1");
    assert_int_equal(json_integer_value(json_object_get(m, "image_sets")), 2);
    assert_int_equal(json_integer_value(json_object_get(m, "image_count")), 2);
    assert_int_equal(json_array_size(json_object_get(m, "tables")), 5);
    json_array_foreach(json_object_get(m, "tables"), i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        struct manifest_table scanned;

        assert_int_equal(manifest_scan_table(wfix_path(f, "out/C03"),
                                             json_string_value(json_object_get(t, "file")), &scanned, &e), 0);
        assert_int_equal(json_integer_value(json_object_get(t, "rows")), scanned.rows);
        assert_int_equal(json_integer_value(json_object_get(t, "bytes")), scanned.bytes);
        assert_string_equal(json_string_value(json_object_get(t, "sha256")), scanned.sha256);
        if (strcmp(name, "Cells") == 0) {
            assert_int_equal(scanned.rows, 10);     /* 2 image sets x 5 objects */
            assert_true(json_array_size(json_object_get(t, "columns")) > 200);
        }
        manifest_table_release(&scanned);
    }
    json_decref(m);
    assert_no_temp_left(f);
}

static void test_rerun_with_same_hash_is_a_noop(void **state)
{
    const char *hash1[] = { "--input-hash", "h1", NULL }, *hash2[] = { "--input-hash", "h2", NULL };
    const char *fail_env[] = { "PLATEOP_STANDIN_MODE=fail", NULL };
    struct strbuf before = STRBUF_INIT, after = STRBUF_INIT;
    struct wfix *f = *state;
    struct err e;

    assert_int_equal(wfix_run_well(f, "C03", NULL, hash1), 0);
    assert_int_equal(fileutil_read(wfix_path(f, "out/C03/manifest.json"), &before, 1 << 20, &e), 0);
    /* Same hash: CellProfiler (told to fail) is not even started. */
    assert_int_equal(wfix_run_well(f, "C03", fail_env, hash1), 0);
    assert_contains(f->out.buf, "nothing to do");
    assert_false(strstr(f->out.buf, "starting"));
    /* Another hash reruns; its failure leaves the previous result untouched. */
    assert_int_equal(wfix_run_well(f, "C03", fail_env, hash2), WORKER_CP_FAILED);
    assert_int_equal(fileutil_read(wfix_path(f, "out/C03/manifest.json"), &after, 1 << 20, &e), 0);
    assert_string_equal(before.buf, after.buf);
    /* A changed table is not trusted: the batch runs again and replaces the result. */
    assert_int_equal(truncate(wfix_path(f, "out/C03/Cells.csv"), 10), 0);
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash1), 0);
    assert_contains(f->out.buf, "missing or changed");
    assert_contains(f->out.buf, "batch done");
    assert_no_temp_left(f);
    strbuf_release(&before);
    strbuf_release(&after);
}

/* The controller's hash covers the inputs' paths; an input edited in place is still new. */
static void test_inputs_edited_in_place_rerun(void **state)
{
    const char *hash[] = { "--input-hash", "h1", NULL };
    const char *pipeline = "CellProfiler Pipeline: http://www.cellprofiler.org\nVersion:5\n"
                           "LoadData:[module_num:1]\nIdentifyPrimaryObjects:[module_num:2]\n";
    struct wfix *f = *state;
    struct strbuf text = STRBUF_INIT;
    struct err e;
    char *p;

    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_contains(f->out.buf, "nothing to do");

    assert_int_equal(fileutil_write_atomic(wfix_path(f, "p.cppipe"), pipeline, strlen(pipeline), &e), 0);
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_false(strstr(f->out.buf, "nothing to do"));
    assert_contains(f->out.buf, "starting");
    assert_contains(f->out.buf, "batch done");
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_contains(f->out.buf, "nothing to do");

    assert_int_equal(fileutil_read(wfix_path(f, "C03.csv"), &text, 1 << 20, &e), 0);
    p = strstr(text.buf, "Plate, 1");
    assert_non_null(p);
    p[7] = '2';
    assert_int_equal(fileutil_write_atomic(wfix_path(f, "C03.csv"), text.buf, text.len, &e), 0);
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_false(strstr(f->out.buf, "nothing to do"));
    assert_contains(f->out.buf, "batch done");
    assert_int_equal(wfix_run_well(f, "C03", NULL, hash), 0);
    assert_contains(f->out.buf, "nothing to do");
    assert_no_temp_left(f);
    strbuf_release(&text);
}

/* Live (not zombie) processes whose process group is pgid. */
static int group_alive(long pgid)
{
    struct dirent *de;
    DIR *d = opendir("/proc");
    int n = 0;

    while (d && (de = readdir(d)) != NULL) {
        char path[300], stat[1024], state;
        const char *p;
        long ppid, pgrp;
        size_t len;
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || !(fp = fopen(path, "r")))
            continue;
        len = fread(stat, 1, sizeof(stat) - 1, fp);
        fclose(fp);
        stat[len] = '\0';
        /* pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses. */
        p = strrchr(stat, ')');
        if (p && sscanf(p + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/*
 * CellProfiler ignores SIGTERM and has a child of its own: the timeout
 * must reach the whole group (kill(-pid), not kill(pid)) and end it with
 * SIGKILL once the grace period is over.
 */
static void test_timeout_kills_the_process_group(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=hang-group", NULL };
    const char *args[] = { "--timeout", "1", "--kill-grace", "1", NULL };
    struct wfix *f = *state;
    double t0 = monotime_now(), elapsed;
    long pgid = 0, pid = 0, child = 0;
    const char *p;

    expect_failure(f, "C03", env, args, WORKER_TIMEOUT, "ran past the 1 s timeout");
    elapsed = monotime_now() - t0;
    p = strstr(f->out.buf, "stand-in: group ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "stand-in: group %ld pids %ld %ld", &pgid, &pid, &child), 3);
    assert_int_equal(pgid, pid);
    assert_true(child > 0 && child != pid);
    assert_int_equal(group_alive(pgid), 0);
    /* Timeout plus grace, then SIGKILL: not sooner (SIGTERM is ignored), not much later. */
    if (elapsed < 2.0 || elapsed > 6.0)
        fail_msg("took %.2f s, want about 2 s (1 s timeout + 1 s grace)", elapsed);
}

/* 1 if a live process has `needle` in its command line. */
static int process_running(const char *needle)
{
    struct dirent *de;
    DIR *d = opendir("/proc");
    int found = 0;

    while (d && !found && (de = readdir(d)) != NULL) {
        char path[300], cmd[4096];
        size_t n, i;
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        if (!(fp = fopen(path, "r")))
            continue;
        n = fread(cmd, 1, sizeof(cmd) - 1, fp);
        fclose(fp);
        for (i = 0; i < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
        found = strstr(cmd, needle) != NULL;
    }
    if (d)
        closedir(d);
    return found;
}

/* A pod being deleted: SIGTERM to the worker stops CellProfiler's whole group. */
static void test_sigterm_stops_cellprofiler(void **state)
{
    struct wfix *f = *state;
    char *argv[] = { f->worker, "run", "--pipeline", (char *)wfix_path(f, "p.cppipe"),
                     "--data-file", (char *)wfix_path(f, "C03.csv"), "--output-dir",
                     (char *)wfix_path(f, "out/C03"), "--cellprofiler", f->standin,
                     "--kill-grace", "1", NULL };
    char standin_cmd[600];
    int status, i;
    pid_t pid;

    snprintf(standin_cmd, sizeof(standin_cmd), "cellprofiler-standin -c -r -p %s", argv[3]);
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 2);
        setenv("PLATEOP_STANDIN_MODE", "hang", 1);
        setenv("PLATEOP_TERMINATION_LOG", wfix_path(f, "termination-log"), 1);
        execv(argv[0], argv);
        _exit(127);
    }
    for (i = 0; i < 100 && !process_running(standin_cmd); i++)
        usleep(50 * 1000);
    assert_true(process_running(standin_cmd));
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), WORKER_TERMINATED);
    assert_contains(wfix_termination(f), "Terminated: stopped by a signal");
    assert_false(process_running(f->root));
    assert_false(exists(wfix_path(f, "out/C03")));
    assert_no_temp_left(f);
}

static void test_nonzero_exit_quotes_last_output(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=fail", NULL };

    expect_failure(*state, "C03", env, NULL, WORKER_CP_FAILED,
                   "exited with status 1; last output: Image # 1");
    assert_contains(((struct wfix *)*state)->out.buf, "stand-in told to fail");
}

static void test_complete_without_any_table(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=no-tables", NULL };
    const char *none[] = { "--tables=", NULL };

    expect_failure(*state, "C03", env, none, WORKER_BAD_OUTPUT,
                   "CellProfiler wrote no tables (*.csv) although the run reported success");
    expect_failure(*state, "C03", env, NULL, WORKER_BAD_OUTPUT,
                   "CellProfiler wrote no Image table (Image.csv) although the run reported success");
}

static void test_exit_zero_without_done_file(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=no-output", NULL };

    expect_failure(*state, "C03", env, NULL, WORKER_INCOMPLETE, "exited 0 but wrote no done file");
}

static void test_done_file_without_complete(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=incomplete", NULL };

    expect_failure(*state, "C03", env, NULL, WORKER_INCOMPLETE, "done file says 'Failure'");
}

static void test_missing_image_is_named_before_starting(void **state)
{
    struct wfix *f = *state;

    assert_int_equal(unlink(wfix_path(f, "img/C04_s2_RNA.tif")), 0);
    expect_failure(f, "C04", NULL, NULL, WORKER_BAD_INPUT, "1 of 4 images missing or unreadable");
    assert_contains(f->out.buf, "img/C04_s2_RNA.tif (line 3: No such file or directory)");
    assert_false(strstr(f->out.buf, "starting"));
}

static void test_missing_or_headerless_table(void **state)
{
    const char *missing[] = { "PLATEOP_STANDIN_MODE=missing-table", NULL };
    const char *empty[] = { "PLATEOP_STANDIN_MODE=empty-table", NULL };
    const char *tables[] = { "--tables", "Image,Cells", NULL };

    expect_failure(*state, "C03", missing, tables, WORKER_BAD_OUTPUT, "wrote no Cells table (Cells.csv)");
    expect_failure(*state, "C03", empty, NULL, WORKER_BAD_OUTPUT, "Nuclei.csv: empty file, no header");
}

static void test_killed_by_memory_limit(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_MODE=oom", NULL };
    const char *args[] = { "--memory-limit", "300", NULL };

    struct wfix *f = *state;

    /* A sanitizer build cannot start under an address-space limit at all;
       it still fails as CellProfilerFailed, only earlier. */
    assert_int_equal(wfix_run_well(f, "C03", env, args), WORKER_CP_FAILED);
    if (!strstr(f->out.buf, "AddressSanitizer")) {
        assert_contains(f->out.buf, "MemoryError");
        expect_failure(f, "C03", env, args, WORKER_CP_FAILED, "killed by signal");
    }
}

static void test_fail_wells_fail_only_their_batch(void **state)
{
    const char *env[] = { "PLATEOP_STANDIN_FAIL_WELLS=C04,E01", NULL };
    struct wfix *f = *state;

    assert_int_equal(wfix_run_well(f, "C03", env, NULL), 0);
    expect_failure(f, "C04", env, NULL, WORKER_CP_FAILED, "exited with status 1");
}

static void test_bad_inputs_are_named(void **state)
{
    struct wfix *f = *state;
    const char *cp_missing[] = { "--cellprofiler", "/nonexistent/cellprofiler", NULL };
    const char *run_args[] = { "run", "--pipeline", wfix_path(f, "nope.cppipe"), "--data-file",
                               wfix_path(f, "C03.csv"), "--output-dir", wfix_path(f, "out/x"), NULL };
    const char *not_writable[] = { "run", "--pipeline", wfix_path(f, "p.cppipe"), "--data-file",
                                   wfix_path(f, "C03.csv"), "--output-dir", wfix_path(f, "p.cppipe/out"), NULL };
    const char *usage[] = { "run", "--pipeline", "x", NULL };
    const char *unknown_flag[] = { "run", "--frobnicate", NULL };
    struct err e;

    assert_int_equal(wfix_worker(f, NULL, run_args), WORKER_BAD_INPUT);
    assert_contains(f->out.buf, "nope.cppipe: No such file or directory");
    assert_int_equal(wfix_worker(f, NULL, not_writable), WORKER_BAD_INPUT);
    assert_contains(f->out.buf, "p.cppipe/out");
    assert_int_equal(wfix_worker(f, NULL, usage), WORKER_USAGE);
    assert_contains(f->out.buf, "are required");
    assert_int_equal(wfix_worker(f, NULL, unknown_flag), WORKER_USAGE);
    assert_contains(f->out.buf, "unknown option '--frobnicate'");
    expect_failure(f, "C03", NULL, cp_missing, WORKER_CP_FAILED,
                   "start /nonexistent/cellprofiler: No such file or directory");

    assert_int_equal(fileutil_write_atomic(wfix_path(f, "C03.csv"), "FileName_DNA,PathName_DNA,Colour\n", 34, &e), 0);
    expect_failure(f, "C03", NULL, NULL, WORKER_BAD_INPUT, "C03.csv: unknown column 'Colour'");
    assert_int_equal(fileutil_write_atomic(wfix_path(f, "C03.csv"), "FileName_DNA,Metadata_Well\n", 27, &e), 0);
    expect_failure(f, "C03", NULL, NULL, WORKER_BAD_INPUT, "no matching PathName_DNA column");
    assert_int_equal(fileutil_write_atomic(wfix_path(f, "C03.csv"),
                                           "FileName_DNA,PathName_DNA\n\"a.tif,/x\n", 36, &e), 0);
    expect_failure(f, "C03", NULL, NULL, WORKER_BAD_INPUT, "C03.csv:3: unterminated quoted field starting at line 2");
}

static void test_env_equivalents_and_extra_args(void **state)
{
    struct wfix *f = *state;
    const char *env[] = { "PLATEOP_PIPELINE=", "PLATEOP_DATA_FILE=", "PLATEOP_OUTPUT_DIR=",
                          "PLATEOP_CELLPROFILER=", "PLATEOP_BATCH=from-env",
                          "PLATEOP_CELLPROFILER_ARGS=--plugins-directory /opt/plugins", NULL };
    const char *args[] = { "run", "--", "--log-level", "DEBUG", NULL };
    char e0[600], e1[600], e2[600], e3[600];

    snprintf(e0, sizeof(e0), "PLATEOP_PIPELINE=%s", wfix_path(f, "p.cppipe"));
    snprintf(e1, sizeof(e1), "PLATEOP_DATA_FILE=%s", wfix_path(f, "D01.csv"));
    snprintf(e2, sizeof(e2), "PLATEOP_OUTPUT_DIR=%s", wfix_path(f, "out/D01"));
    snprintf(e3, sizeof(e3), "PLATEOP_CELLPROFILER=%s", f->standin);
    env[0] = e0, env[1] = e1, env[2] = e2, env[3] = e3;
    /* Unknown CellProfiler flags (after --, or from the env list) reach it and are ignored by the stand-in. */
    assert_int_equal(wfix_worker(f, env, args), 0);
    assert_contains(f->out.buf, "\"batch\":\"from-env\"");
    assert_true(exists(wfix_path(f, "out/D01/manifest.json")));
}

/* What CellProfiler gets: the fixed flags, then --cellprofiler-args, then what follows --. */
static void test_extra_args_reach_cellprofiler(void **state)
{
    struct wfix *f = *state;
    const char *env[] = { NULL, NULL };
    const char *args[] = { "--cellprofiler-args", " --plugins-directory  /opt/plugins\t-L INFO ",
                           "--", "--conserve-memory", "a b", NULL };
    const char *tail = "/cellprofiler.done\n--plugins-directory\n/opt/plugins\n-L\nINFO\n"
                       "--conserve-memory\na b\n";
    struct strbuf got = STRBUF_INIT, want = STRBUF_INIT;
    char e0[600];
    struct err e;

    snprintf(e0, sizeof(e0), "PLATEOP_STANDIN_ARGV_FILE=%s", wfix_path(f, "argv.txt"));
    env[0] = e0;
    assert_int_equal(wfix_run_well(f, "C03", env, args), 0);
    assert_int_equal(fileutil_read(wfix_path(f, "argv.txt"), &got, 1 << 20, &e), 0);
    strbuf_addf(&want, "%s\n-c\n-r\n-p\n%s\n--data-file\n%s\n-o\n", f->standin,
                wfix_path(f, "p.cppipe"), wfix_path(f, "C03.csv"));
    assert_true(strncmp(got.buf, want.buf, want.len) == 0);
    /* -o TMP -d TMP/cellprofiler.done: a temporary directory beside out/C03. */
    assert_contains(got.buf, "/out/.C03.tmp-");
    assert_true(got.len > strlen(tail));
    assert_string_equal(got.buf + got.len - strlen(tail), tail);
    strbuf_release(&got);
    strbuf_release(&want);
}

/* Running short of memory while building CellProfiler's argv is no usage error. */
static void test_out_of_memory_is_not_a_usage_error(void **state)
{
    struct wfix *f = *state;
    char *argv[] = { "run", "--pipeline", (char *)wfix_path(f, "p.cppipe"), "--data-file",
                     (char *)wfix_path(f, "C03.csv"), "--output-dir", (char *)wfix_path(f, "out/C03"),
                     "--cellprofiler-args", "--plugins-directory /oom", "--", "-L", "DEBUG", NULL };
    int rc;

    log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
    setenv("PLATEOP_TERMINATION_LOG", wfix_path(f, "termination-log"), 1);
    strdup_fails_for = "--plugins-directory /oom";
    rc = run_main(12, argv);
    strdup_fails_for = NULL;
    unsetenv("PLATEOP_TERMINATION_LOG");
    assert_int_equal(rc, WORKER_CP_FAILED);
    assert_contains(wfix_termination(f), "CellProfilerFailed: out of memory for CellProfiler's arguments");
    assert_false(exists(wfix_path(f, "out/C03")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_success_writes_tables_and_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rerun_with_same_hash_is_a_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inputs_edited_in_place_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_kills_the_process_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_stops_cellprofiler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonzero_exit_quotes_last_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_zero_without_done_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_without_any_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_file_without_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_image_is_named_before_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_or_headerless_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_by_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_wells_fail_only_their_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_equivalents_and_extra_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_args_reach_cellprofiler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory_is_not_a_usage_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
