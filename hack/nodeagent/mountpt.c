/* mountpt: reference-counted mount points created on the host; see mountpt.h. */
#include "mountpt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

struct created {
    char *path;
    int is_file;
    int refs;
    struct created *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct created *registry;

static struct created *find(const char *path)
{
    struct created *c;

    for (c = registry; c; c = c->next)
        if (strcmp(c->path, path) == 0)
            return c;
    return NULL;
}

static int hold_path(struct mountpt_hold *h, const char *path)
{
    char **np = realloc(h->paths, (h->n + 1) * sizeof(*np));

    if (!np)
        return -1;
    h->paths = np;
    h->paths[h->n] = strdup(path);
    if (!h->paths[h->n])
        return -1;
    h->n++;
    return 0;
}

/* Holds one path component: counts it if we made it before, creates it if missing. */
static int hold_component(struct mountpt_hold *h, const char *path, int is_file, struct err *e)
{
    struct created *c = find(path);
    struct stat st;
    int fd;

    if (!c) {
        if (lstat(path, &st) == 0)
            return 0;
        if (is_file) {
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd < 0)
                return err_errno(e, errno, "create mount point %s", path);
            close(fd);
        } else if (mkdir(path, 0755) < 0) {
            return err_errno(e, errno, "create mount point %s", path);
        }
        c = calloc(1, sizeof(*c));
        if (!c || !(c->path = strdup(path))) {
            free(c);
            return err_set(e, ENOMEM, "out of memory");
        }
        c->is_file = is_file;
        c->next = registry;
        registry = c;
    }
    if (hold_path(h, path) < 0)
        return err_set(e, ENOMEM, "out of memory");
    c->refs++;
    return 0;
}

int mountpt_hold(struct mountpt_hold *h, const char *target, int is_file, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    char *p;
    int rc = -1;

    if (strbuf_adds(&sb, target) < 0) {
        err_set(e, ENOMEM, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&lock);
    for (p = sb.buf + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (hold_component(h, sb.buf, 0, e) < 0)
            goto out;
        *p = '/';
    }
    rc = hold_component(h, sb.buf, is_file, e);
out:
    pthread_mutex_unlock(&lock);
    strbuf_release(&sb);
    return rc;
}

static void drop(const char *path)
{
    struct created **pp, *c;

    for (pp = &registry; (c = *pp); pp = &c->next) {
        if (strcmp(c->path, path) != 0)
            continue;
        if (--c->refs > 0)
            return;
        /* Only an empty file or directory is ours to remove. */
        if (c->is_file) {
            struct stat st;

            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
                unlink(path);
        } else {
            rmdir(path);
        }
        *pp = c->next;
        free(c->path);
        free(c);
        return;
    }
}

void mountpt_release(struct mountpt_hold *h)
{
    size_t i;

    pthread_mutex_lock(&lock);
    /* Deepest first: a directory can only go once what it contains has gone. */
    for (i = h->n; i-- > 0;) {
        drop(h->paths[i]);
        free(h->paths[i]);
    }
    pthread_mutex_unlock(&lock);
    free(h->paths);
    h->paths = NULL;
    h->n = 0;
}
