/* exit: worker exit codes and the termination message; see exit.h. */
#include "exit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "strbuf.h"

const char worker_exit_help[] =
    "exit codes (the reason also goes to /dev/termination-log):\n"
    "  0  success, or already done with the same input hash\n"
    "  2  Usage           bad flags or environment\n"
    "  3  BadInput        an input is missing, unreadable or malformed (named)\n"
    "  4  Timeout         CellProfiler ran past --timeout; its process group was killed\n"
    "  5  CellProfilerFailed  could not start, exited non-zero, or was killed\n"
    "  6  Incomplete      exited 0 but the done file is missing or not 'Complete'\n"
    "  7  BadOutput       an expected table is missing, has no header or is malformed\n"
    "  8  WriteFailed     writing results failed (disk full, permissions, rename)\n"
    "  9  VerifyFailed    merged row counts differ from the batch manifests\n"
    " 10  Terminated      SIGTERM/SIGINT received; CellProfiler was stopped\n";

const char *worker_exit_reason(int code)
{
    switch (code) {
    case WORKER_OK: return "Succeeded";
    case WORKER_USAGE: return "Usage";
    case WORKER_BAD_INPUT: return "BadInput";
    case WORKER_TIMEOUT: return "Timeout";
    case WORKER_CP_FAILED: return "CellProfilerFailed";
    case WORKER_INCOMPLETE: return "Incomplete";
    case WORKER_BAD_OUTPUT: return "BadOutput";
    case WORKER_WRITE_FAILED: return "WriteFailed";
    case WORKER_VERIFY_FAILED: return "VerifyFailed";
    case WORKER_TERMINATED: return "Terminated";
    default: return "Unknown";
    }
}

void worker_exit_message(const char *text)
{
    const char *path = getenv("PLATEOP_TERMINATION_LOG");
    struct strbuf line = STRBUF_INIT;
    size_t i;
    int fd;

    if (!path || !*path)
        path = "/dev/termination-log";
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return;
    strbuf_adds(&line, text);
    /* One line: a failure may quote CellProfiler's multi-line output. */
    for (i = 0; i < line.len; i++)
        if (line.buf[i] == '\n' || line.buf[i] == '\r')
            line.buf[i] = ' ';
    if (line.len > WORKER_TERMINATION_MAX - 1)
        strbuf_setlen(&line, WORKER_TERMINATION_MAX - 1);
    strbuf_addch(&line, '\n');
    if (write(fd, line.buf, line.len) < 0)
        line.len = 0;   /* nothing more to do: the exit code still tells */
    close(fd);
    strbuf_release(&line);
}

void worker_exit_report(int code, const char *message)
{
    struct strbuf line = STRBUF_INIT;

    strbuf_addf(&line, "%s: %s", worker_exit_reason(code), message);
    worker_exit_message(line.buf);
    strbuf_release(&line);
}

void worker_exit_fail(int code, const struct log_ctx *ctx, const char *message)
{
    json_t *f = json_pack("{s:i, s:s}", "exit_code", code, "reason", worker_exit_reason(code));

    log_emit(LOG_LEVEL_ERROR, ctx, f, "%s", message);
    json_decref(f);
    worker_exit_report(code, message);
}
