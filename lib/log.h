/*
 * log: structured logs, one JSON object per line on stderr.
 *
 * Every line carries "ts" (RFC 3339, UTC, milliseconds), "level", "msg",
 * and "component" once set, plus "analysis", "batch" and "well" when the
 * caller's context names them, plus any extra members the caller passes.
 * Lines are written with a single write(2), so concurrent threads never
 * interleave within a line, and they read well under `kubectl logs`.
 *
 * Logging never fails visibly: if memory or stderr is gone the line is lost.
 */
#ifndef PLATEOP_LOG_H
#define PLATEOP_LOG_H

#include <jansson.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

/* What a line is about. Any member may be NULL. Not retained after the call. */
struct log_ctx {
    const char *analysis;   /* namespace/name of the Analysis */
    const char *batch;      /* batch id */
    const char *well;       /* well, e.g. "C03" */
};

/* Lines below this level are dropped. Default INFO. */
void log_set_level(enum log_level level);

/* Whether lines of this level are written (to skip building costly ones). */
int log_enabled(enum log_level level);

/*
 * Parses "debug", "info", "warn" or "error" (case-insensitive).
 * Returns 0 and sets *out, or -1 on an unknown name.
 */
int log_parse_level(const char *name, enum log_level *out);

/* Names the program in every line ("component"); the string must outlive logging. */
void log_set_component(const char *name);

/* Sends lines to fd instead of stderr (tests). */
void log_set_fd(int fd);

/*
 * Emits one line. `ctx` may be NULL. `fields`, if not NULL, is a JSON
 * object whose members are added to the line (borrowed, not stolen).
 */
void log_emit(enum log_level level, const struct log_ctx *ctx, const json_t *fields,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define log_debug(ctx, ...) log_emit(LOG_LEVEL_DEBUG, (ctx), NULL, __VA_ARGS__)
#define log_info(ctx, ...)  log_emit(LOG_LEVEL_INFO, (ctx), NULL, __VA_ARGS__)
#define log_warn(ctx, ...)  log_emit(LOG_LEVEL_WARN, (ctx), NULL, __VA_ARGS__)
#define log_error(ctx, ...) log_emit(LOG_LEVEL_ERROR, (ctx), NULL, __VA_ARGS__)

#endif
