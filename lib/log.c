/* log: JSON-lines logging on stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

static enum log_level min_level = LOG_LEVEL_INFO;
static const char *component;
static int out_fd = 2;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

int log_parse_level(const char *name, enum log_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

void log_set_component(const char *name)
{
    component = name;
}

void log_set_fd(int fd)
{
    out_fd = fd;
}

static void add_member(struct strbuf *sb, const char *key, const char *value)
{
    strbuf_addch(sb, ',');
    strbuf_add_json_string(sb, key);
    strbuf_addch(sb, ':');
    strbuf_add_json_string(sb, value);
}

static void add_timestamp(struct strbuf *sb)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    strbuf_addf(sb, "{\"ts\":\"%s.%03ldZ\"", buf, ts.tv_nsec / 1000000);
}

void log_emit(enum log_level level, const struct log_ctx *ctx, const json_t *fields,
              const char *fmt, ...)
{
    struct strbuf line = STRBUF_INIT, msg = STRBUF_INIT;
    const char *key;
    json_t *value;
    va_list ap;
    size_t off;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    strbuf_vaddf(&msg, fmt, ap);
    va_end(ap);

    add_timestamp(&line);
    add_member(&line, "level", level_names[level]);
    add_member(&line, "msg", msg.buf);
    if (component)
        add_member(&line, "component", component);
    if (ctx && ctx->analysis)
        add_member(&line, "analysis", ctx->analysis);
    if (ctx && ctx->batch)
        add_member(&line, "batch", ctx->batch);
    if (ctx && ctx->well)
        add_member(&line, "well", ctx->well);
    if (fields && json_is_object(fields)) {
        json_object_foreach((json_t *)fields, key, value) {
            char *enc = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

            if (!enc)
                continue;
            strbuf_addch(&line, ',');
            strbuf_add_json_string(&line, key);
            strbuf_addch(&line, ':');
            strbuf_adds(&line, enc);
            free(enc);
        }
    }
    strbuf_add(&line, "}\n", 2);

    for (off = 0; off < line.len;) {
        ssize_t n = write(out_fd, line.buf + off, line.len - off);

        if (n <= 0)
            break;
        off += (size_t)n;
    }
    strbuf_release(&line);
    strbuf_release(&msg);
}
