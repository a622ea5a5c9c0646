/* strbuf: growable NUL-terminated buffer; see strbuf.h. */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char strbuf_empty[1];

void strbuf_init(struct strbuf *sb)
{
    sb->buf = strbuf_empty;
    sb->len = 0;
    sb->alloc = 0;
}

void strbuf_release(struct strbuf *sb)
{
    if (sb->alloc)
        free(sb->buf);
    strbuf_init(sb);
}

int strbuf_grow(struct strbuf *sb, size_t extra)
{
    size_t need, nalloc;
    char *nbuf;

    if (extra > (size_t)-1 - sb->len - 1)
        return -1;
    need = sb->len + extra + 1;
    if (need <= sb->alloc)
        return 0;
    nalloc = sb->alloc ? sb->alloc : 64;
    while (nalloc < need)
        nalloc = nalloc > ((size_t)-1) / 2 ? need : nalloc * 2;
    nbuf = realloc(sb->alloc ? sb->buf : NULL, nalloc);
    if (!nbuf)
        return -1;
    if (!sb->alloc)
        nbuf[0] = '\0';
    sb->buf = nbuf;
    sb->alloc = nalloc;
    return 0;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
    if (strbuf_grow(sb, len) < 0)
        return -1;
    memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
    return 0;
}

int strbuf_adds(struct strbuf *sb, const char *s)
{
    return strbuf_add(sb, s, strlen(s));
}

int strbuf_addch(struct strbuf *sb, char c)
{
    return strbuf_add(sb, &c, 1);
}

int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list cp;
    int n;

    va_copy(cp, ap);
    n = vsnprintf(sb->buf + sb->len, sb->alloc ? sb->alloc - sb->len : 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return -1;
    if (sb->alloc && (size_t)n < sb->alloc - sb->len) {
        sb->len += (size_t)n;
        return 0;
    }
    if (strbuf_grow(sb, (size_t)n) < 0) {
        if (sb->alloc)
            sb->buf[sb->len] = '\0';
        return -1;
    }
    vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
    sb->len += (size_t)n;
    return 0;
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = strbuf_vaddf(sb, fmt, ap);
    va_end(ap);
    return rc;
}

int strbuf_add_json_string(struct strbuf *sb, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p;
    size_t start = sb->len;

    if (strbuf_addch(sb, '"') < 0)
        return -1;
    for (p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        int rc;

        switch (*p) {
        case '"':  rc = strbuf_add(sb, "\\\"", 2); break;
        case '\\': rc = strbuf_add(sb, "\\\\", 2); break;
        case '\n': rc = strbuf_add(sb, "\\n", 2); break;
        case '\r': rc = strbuf_add(sb, "\\r", 2); break;
        case '\t': rc = strbuf_add(sb, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                rc = strbuf_add(sb, esc, 6);
            } else {
                rc = strbuf_addch(sb, (char)*p);
            }
        }
        if (rc < 0) {
            strbuf_setlen(sb, start);
            return -1;
        }
    }
    if (strbuf_addch(sb, '"') < 0) {
        strbuf_setlen(sb, start);
        return -1;
    }
    return 0;
}

void strbuf_reset(struct strbuf *sb)
{
    strbuf_setlen(sb, 0);
}

void strbuf_setlen(struct strbuf *sb, size_t len)
{
    if (!sb->alloc)
        return;
    sb->len = len;
    sb->buf[len] = '\0';
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
    char *res;

    if (len)
        *len = sb->len;
    if (!sb->alloc) {
        res = malloc(1);
        if (res)
            res[0] = '\0';
        return res;
    }
    res = sb->buf;
    strbuf_init(sb);
    return res;
}
