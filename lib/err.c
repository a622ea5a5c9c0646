/* err: errors as values; see err.h. */
#include "err.h"

#include <stdio.h>
#include <string.h>

void err_clear(struct err *e)
{
    if (!e)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}

/* Appends ": s" to e->msg, truncating to fit; truncation is intended. */
static void append_cause(struct err *e, const char *s)
{
    size_t len = strlen(e->msg), cap = sizeof(e->msg) - 1, n;

    if (len + 2 > cap)
        return;
    memcpy(e->msg + len, ": ", 2);
    len += 2;
    n = strlen(s);
    if (n > cap - len)
        n = cap - len;
    memcpy(e->msg + len, s, n);
    e->msg[len + n] = '\0';
}

static void err_vset(struct err *e, int code, const char *fmt, va_list ap)
{
    e->code = code;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return -1;
    va_start(ap, fmt);
    err_vset(e, code, fmt, ap);
    va_end(ap);
    return -1;
}

int err_errno(struct err *e, int errnum, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return -1;
    va_start(ap, fmt);
    err_vset(e, errnum, fmt, ap);
    va_end(ap);
    append_cause(e, strerror(errnum));
    return -1;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
    char old[ERR_MSG_MAX];
    va_list ap;

    if (!e)
        return -1;
    memcpy(old, e->msg, sizeof(old));
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    if (old[0])
        append_cause(e, old);
    return -1;
}

int err_isset(const struct err *e)
{
    return e && (e->code != 0 || e->msg[0] != '\0');
}
