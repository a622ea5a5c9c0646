/* asyncwrite: a writer thread fed through a ring of large buffers; see asyncwrite.h. */
#include "asyncwrite.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fileutil.h"

struct asyncwrite {
    int fd;
    char *name;
    asyncwrite_tap_fn tap;
    void *tap_ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf[ASYNCWRITE_BUFS];
    size_t len[ASYNCWRITE_BUFS];
    size_t head, count;         /* filled buffers: head .. head+count-1 (mod ASYNCWRITE_BUFS) */
    int closing, failed;
    struct err err;             /* the writer's first error */
};

static void *writer(void *arg)
{
    struct asyncwrite *a = arg;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        size_t i;
        int failed;

        while (a->count == 0 && !a->closing)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->count == 0)
            break;
        i = a->head;
        failed = a->failed;
        pthread_mutex_unlock(&a->mu);
        /* After a failure, buffers are drained unwritten so the producer never blocks. */
        if (!failed && (fileutil_write_all(a->fd, a->buf[i], a->len[i], a->name, &a->err) < 0 ||
                        (a->tap && a->tap(a->tap_ctx, a->buf[i], a->len[i], &a->err) < 0)))
            failed = 1;
        pthread_mutex_lock(&a->mu);
        a->failed |= failed;
        a->head = (a->head + 1) % ASYNCWRITE_BUFS;
        a->count--;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void free_all(struct asyncwrite *a)
{
    size_t i;

    for (i = 0; i < ASYNCWRITE_BUFS; i++)
        free(a->buf[i]);
    free(a->name);
    free(a);
}

struct asyncwrite *asyncwrite_open(int fd, const char *name, asyncwrite_tap_fn tap, void *tap_ctx,
                                   struct err *e)
{
    struct asyncwrite *a = calloc(1, sizeof(*a));
    size_t i;
    int rc;

    if (!a || !(a->name = strdup(name)))
        goto oom;
    for (i = 0; i < ASYNCWRITE_BUFS; i++)
        if (!(a->buf[i] = malloc(ASYNCWRITE_BUF_SIZE)))
            goto oom;
    a->fd = fd;
    a->tap = tap;
    a->tap_ctx = tap_ctx;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    rc = pthread_create(&a->thread, NULL, writer, a);
    if (rc != 0) {
        err_errno(e, rc, "%s: start writer thread", name);
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->cv);
        free_all(a);
        return NULL;
    }
    return a;
oom:
    if (a)
        free_all(a);
    err_set(e, ENOMEM, "%s: out of memory for write buffers", name);
    return NULL;
}

int asyncwrite_put(void *ctx, const void *data, size_t len, struct err *e)
{
    struct asyncwrite *a = ctx;
    const char *p = data;

    while (len > 0) {
        size_t n = len < ASYNCWRITE_BUF_SIZE ? len : ASYNCWRITE_BUF_SIZE, i;

        pthread_mutex_lock(&a->mu);
        while (a->count == ASYNCWRITE_BUFS && !a->failed)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->failed) {
            pthread_mutex_unlock(&a->mu);
            if (e)
                *e = a->err;
            return -1;
        }
        i = (a->head + a->count) % ASYNCWRITE_BUFS;
        pthread_mutex_unlock(&a->mu);
        /* Buffer i is outside the filled range, so the writer does not touch it. */
        memcpy(a->buf[i], p, n);
        a->len[i] = n;
        pthread_mutex_lock(&a->mu);
        a->count++;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        p += n;
        len -= n;
    }
    return 0;
}

int asyncwrite_close(struct asyncwrite *a, struct err *e)
{
    int rc;

    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    a->closing = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    rc = a->failed ? -1 : 0;
    if (rc < 0 && e)
        *e = a->err;
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free_all(a);
    return rc;
}
