/*
 * strbuf: a growable, always NUL-terminated byte buffer.
 *
 * Modelled on git's strbuf. A strbuf initialised with STRBUF_INIT or
 * strbuf_init() owns its memory; strbuf_release() frees it and leaves an
 * empty, reusable buffer. `buf` is never NULL and always NUL-terminated, so
 * it can be handed to functions that want a C string; `len` excludes the NUL.
 *
 * Allocation failure: functions return -1 and leave the buffer unchanged
 * (still valid). They return 0 on success.
 */
#ifndef PLATEOP_STRBUF_H
#define PLATEOP_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
    char *buf;      /* contents; points to a static "" until first growth */
    size_t len;     /* bytes used, excluding the terminating NUL */
    size_t alloc;   /* bytes allocated; 0 while buf is the static "" */
};

extern char strbuf_empty[];
#define STRBUF_INIT { strbuf_empty, 0, 0 }

/* Makes sb an empty buffer owning nothing yet, like STRBUF_INIT. Cannot fail. */
void strbuf_init(struct strbuf *sb);

/* Frees the memory and resets to empty. */
void strbuf_release(struct strbuf *sb);

/* Ensures room for `extra` more bytes plus the NUL. Amortised O(1) per byte. */
int strbuf_grow(struct strbuf *sb, size_t extra);

/*
 * Appends len bytes of data (which may contain NULs and may point into sb
 * itself only if no growth is needed). Returns 0, or -1 when out of memory
 * (sb unchanged). Amortised O(len).
 */
int strbuf_add(struct strbuf *sb, const void *data, size_t len);

/* Appends the C string s (without its NUL). Returns 0 or -1 as strbuf_add. */
int strbuf_adds(struct strbuf *sb, const char *s);

/* Appends one byte. Returns 0 or -1 as strbuf_add. */
int strbuf_addch(struct strbuf *sb, char c);

/*
 * Appends printf-style formatted text. Returns 0, or -1 when out of memory
 * or on a formatting error (sb unchanged). Formats at most twice (once to
 * measure when the spare room is too small).
 */
int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* strbuf_addf() with a va_list; ap is used up as by vsnprintf (the caller va_ends it). */
int strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);

/* Appends s as a JSON string literal, quotes included. */
int strbuf_add_json_string(struct strbuf *sb, const char *s);

/* Sets len to 0 (keeps the allocation). */
void strbuf_reset(struct strbuf *sb);

/* Shortens to len bytes (len <= sb->len). */
void strbuf_setlen(struct strbuf *sb, size_t len);

/*
 * Hands the buffer to the caller, who must free() it, and resets sb.
 * Never returns NULL unless allocation of an empty string fails.
 */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
