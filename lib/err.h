/*
 * err: errors as values.
 *
 * Every fallible function in lib/ takes a `struct err *` (which may be NULL
 * when the caller does not care) and returns -1 (or NULL) on failure after
 * filling it in. Callers add context with err_prefix() as the error travels
 * up, so the message that finally reaches a status condition, an Event or a
 * log line reads like "plan analysis ns/x: read images: connection refused".
 *
 * The struct is fixed-size and lives on the caller's stack: no allocation,
 * nothing to free.
 */
#ifndef PLATEOP_ERR_H
#define PLATEOP_ERR_H

#include <stdarg.h>

#define ERR_MSG_MAX 1024

struct err {
    int code;               /* 0 when no error; else a module's code or an errno value */
    char msg[ERR_MSG_MAX];  /* NUL-terminated, human-readable, no trailing newline */
};

/* Clears an error to "no error". Safe on NULL. */
void err_clear(struct err *e);

/*
 * Sets code and a printf-style message, replacing what was there.
 * Returns -1 so a caller can write `return err_set(e, ...)`. Safe on NULL.
 */
int err_set(struct err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As err_set(), appending ": strerror(errnum)". Code is errnum. */
int err_errno(struct err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Prepends context: "ctx: old message". Keeps the code. Truncates at
 * ERR_MSG_MAX, keeping the start. Returns -1. Safe on NULL.
 */
int err_prefix(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Non-zero when e holds an error. */
int err_isset(const struct err *e);

#endif
