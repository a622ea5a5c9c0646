/* asyncwrite: a ring of large buffers drained by a writer and a tap thread; see asyncwrite.h. */
#include "asyncwrite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"

/* Buffer address, size and file offset alignment that O_DIRECT asks for. */
#define DIRECT_ALIGN 4096

struct asyncwrite;

/* A thread that takes every block in order: the writer, or the tap. */
struct consumer {
    struct asyncwrite *a;
    int (*fn)(struct asyncwrite *a, const char *data, size_t len, struct err *e);
    pthread_t thread;
    int started;
    uint64_t done;              /* blocks taken; under mu */
    struct err err;             /* its own failure, copied to a->err if first */
};

struct asyncwrite {
    int fd;
    char *name;
    asyncwrite_tap_fn tap;
    void *tap_ctx;
    int direct;                 /* writer thread only: fd has O_DIRECT */
    uint64_t offset;            /* writer thread only: bytes written */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf[ASYNCWRITE_BUFS];
    size_t len[ASYNCWRITE_BUFS];
    uint64_t produced;          /* blocks handed over; block k is buf[k % ASYNCWRITE_BUFS] */
    struct consumer c[2];
    size_t nc;
    int closing;
    int failed;                 /* set under mu; read without it through __atomic_load_n */
    struct err err;             /* the first failure */
    /* Producer side: block `produced` being filled (its buffer is free). */
    int filling;
    size_t filled;
};

/* Turns O_DIRECT off for the rest of the stream (an unaligned tail, or a refusal). */
static void direct_off(struct asyncwrite *a)
{
    int fl = fcntl(a->fd, F_GETFL);

    if (fl >= 0)
        fcntl(a->fd, F_SETFL, fl & ~O_DIRECT);
    a->direct = 0;
}

static int write_block(struct asyncwrite *a, const char *data, size_t len, struct err *e)
{
    if (a->direct && len % DIRECT_ALIGN != 0)
        direct_off(a);
    if (a->direct) {
        ssize_t n;

        do
            n = write(a->fd, data, len);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)len) {
            a->offset += len;
            return 0;
        }
        /* Refused (EINVAL: alignment the file system wants larger) or short: the
           rest goes through the page cache, which also reports any real error. */
        if (n < 0 && errno != EINVAL)
            return err_errno(e, errno, "write %s", a->name);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            a->offset += (uint64_t)n;
        }
        direct_off(a);
    }
    if (fileutil_write_all(a->fd, data, len, a->name, e) < 0)
        return -1;
    /* Start write-back now so the caller's fsync finds little left; only a hint. */
    sync_file_range(a->fd, (off_t)a->offset, (off_t)len, SYNC_FILE_RANGE_WRITE);
    a->offset += len;
    return 0;
}

static int tap_block(struct asyncwrite *a, const char *data, size_t len, struct err *e)
{
    return a->tap(a->tap_ctx, data, len, e);
}

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct asyncwrite *a = c->a;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        size_t i;
        int skip, rc;

        while (c->done == a->produced && !a->closing)
            pthread_cond_wait(&a->cv, &a->mu);
        if (c->done == a->produced)
            break;
        i = c->done % ASYNCWRITE_BUFS;
        skip = a->failed;
        pthread_mutex_unlock(&a->mu);
        /* After a failure, blocks are drained untouched so the producer never blocks. */
        rc = skip ? 0 : c->fn(a, a->buf[i], a->len[i], &c->err);
        pthread_mutex_lock(&a->mu);
        if (rc < 0 && !a->failed) {
            a->err = c->err;
            __atomic_store_n(&a->failed, 1, __ATOMIC_RELEASE);
        }
        c->done++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Lets the threads drain what was handed over, then joins them. */
static void stop(struct asyncwrite *a)
{
    size_t i;

    pthread_mutex_lock(&a->mu);
    a->closing = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (i = 0; i < a->nc; i++) {
        if (a->c[i].started)
            pthread_join(a->c[i].thread, NULL);
        a->c[i].started = 0;
    }
}

static void free_all(struct asyncwrite *a)
{
    size_t i;

    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    for (i = 0; i < ASYNCWRITE_BUFS; i++)
        free(a->buf[i]);
    free(a->name);
    free(a);
}

struct asyncwrite *asyncwrite_open(int fd, const char *name, unsigned flags, asyncwrite_tap_fn tap,
                                   void *tap_ctx, struct err *e)
{
    struct asyncwrite *a = calloc(1, sizeof(*a));
    struct stat st;
    off_t start;
    size_t i;
    int rc, fl;

    if (!a) {
        err_set(e, ENOMEM, "%s: out of memory for write buffers", name);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->fd = fd;
    a->tap = tap;
    a->tap_ctx = tap_ctx;
    a->c[a->nc++] = (struct consumer){ .a = a, .fn = write_block };
    if (tap)
        a->c[a->nc++] = (struct consumer){ .a = a, .fn = tap_block };
    if (!(a->name = strdup(name)))
        goto oom;
    for (i = 0; i < ASYNCWRITE_BUFS; i++)
        if (posix_memalign((void **)&a->buf[i], DIRECT_ALIGN, ASYNCWRITE_BUF_SIZE) != 0)
            goto oom;
    start = lseek(fd, 0, SEEK_CUR);
    a->offset = start > 0 ? (uint64_t)start : 0;
    /* Only a regular file: O_DIRECT means something else on a pipe. */
    if ((flags & ASYNCWRITE_DIRECT) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        start >= 0 && start % DIRECT_ALIGN == 0 && (fl = fcntl(fd, F_GETFL)) >= 0 &&
        fcntl(fd, F_SETFL, fl | O_DIRECT) == 0)
        a->direct = 1;
    for (i = 0; i < a->nc; i++) {
        rc = pthread_create(&a->c[i].thread, NULL, consume, &a->c[i]);
        if (rc != 0) {
            err_errno(e, rc, "%s: start writer thread", name);
            stop(a);
            free_all(a);
            return NULL;
        }
        a->c[i].started = 1;
    }
    return a;
oom:
    free_all(a);
    err_set(e, ENOMEM, "%s: out of memory for write buffers", name);
    return NULL;
}

/* Copies the first failure to e; returns -1. Call with mu held. */
static int failure(const struct asyncwrite *a, struct err *e)
{
    if (e)
        *e = a->err;
    return -1;
}

/* The oldest block some consumer still needs. Call with mu held. */
static uint64_t oldest_needed(const struct asyncwrite *a)
{
    uint64_t min = a->c[0].done;
    size_t i;

    for (i = 1; i < a->nc; i++)
        if (a->c[i].done < min)
            min = a->c[i].done;
    return min;
}

/* Waits until block `produced` has a free buffer. Returns 0, or -1 after a failure. */
static int take_buffer(struct asyncwrite *a, struct err *e)
{
    int rc = 0;

    pthread_mutex_lock(&a->mu);
    while (a->produced - oldest_needed(a) == ASYNCWRITE_BUFS && !a->failed)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->failed) {
        rc = failure(a, e);
    } else {
        a->filled = 0;
        a->filling = 1;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* Hands the block being filled to the consumers. */
static void hand_over(struct asyncwrite *a)
{
    pthread_mutex_lock(&a->mu);
    a->len[a->produced % ASYNCWRITE_BUFS] = a->filled;
    a->produced++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    a->filling = 0;
}

int asyncwrite_put(void *ctx, const void *data, size_t len, struct err *e)
{
    struct asyncwrite *a = ctx;
    const char *p = data;

    if (__atomic_load_n(&a->failed, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&a->mu);
        failure(a, e);
        pthread_mutex_unlock(&a->mu);
        return -1;
    }
    while (len > 0) {
        size_t n;

        if (!a->filling && take_buffer(a, e) < 0)
            return -1;
        n = ASYNCWRITE_BUF_SIZE - a->filled;
        if (n > len)
            n = len;
        memcpy(a->buf[a->produced % ASYNCWRITE_BUFS] + a->filled, p, n);
        a->filled += n;
        p += n;
        len -= n;
        if (a->filled == ASYNCWRITE_BUF_SIZE)
            hand_over(a);
    }
    return 0;
}

int asyncwrite_close(struct asyncwrite *a, struct err *e)
{
    int rc;

    if (!a)
        return 0;
    if (a->filling && a->filled > 0)
        hand_over(a);
    stop(a);
    rc = a->failed ? failure(a, e) : 0;
    if (a->direct)
        direct_off(a);
    free_all(a);
    return rc;
}
