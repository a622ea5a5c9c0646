/* mountpt: host mount points created and removed under cross-process locks; see mountpt.h. */
#include "mountpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fileutil.h"
#include "log.h"
#include "strbuf.h"

/* The lock file of path: MOUNTPT_LOCK_DIR/<sha256 of path in hex>. */
static int lock_path(const char *path, struct strbuf *out, struct err *e)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;

    if (!EVP_Digest(path, strlen(path), md, &len, EVP_sha256(), NULL))
        return err_set(e, EINVAL, "hash of %s", path);
    if (strbuf_adds(out, MOUNTPT_LOCK_DIR "/") < 0)
        return err_set(e, ENOMEM, "out of memory");
    for (i = 0; i < len; i++)
        if (strbuf_addf(out, "%02x", md[i]) < 0)
            return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/* Creates a missing path as a directory or an empty file. */
static int create(const char *path, int is_file, struct err *e)
{
    int fd;

    if (!is_file)
        return mkdir(path, 0755) < 0 ? err_errno(e, errno, "create mount point %s", path) : 0;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_errno(e, errno, "create mount point %s", path);
    close(fd);
    return 0;
}

/*
 * Holds one component (under the global lock): creates it if missing; keeps
 * a shared lock on its lock file if an agent created it.
 */
static int hold_component(struct mountpt_hold *h, const char *path, int is_file, struct err *e)
{
    struct strbuf lock = STRBUF_INIT;
    struct stat st;
    char mark = 0;
    void *nv;
    int fd = -1, rc = -1;

    if (lock_path(path, &lock, e) < 0)
        goto out;
    fd = open(lock.buf, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_errno(e, errno, "lock file for %s", path);
        goto out;
    }
    if (pread(fd, &mark, 1, 0) < 0)
        mark = 0;
    if (lstat(path, &st) < 0) {
        if (create(path, is_file, e) < 0)
            goto out;
        mark = '1';
        if (pwrite(fd, &mark, 1, 0) != 1) {
            err_errno(e, errno, "lock file for %s", path);
            goto out;
        }
    }
    if (mark != '1') {
        rc = 0;   /* it was there before any agent: not ours to hold or remove */
        goto out;
    }
    nv = realloc(h->v, (h->n + 1) * sizeof(*h->v));
    if (!nv) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    h->v = nv;
    if (flock(fd, LOCK_SH) < 0) {
        err_errno(e, errno, "lock %s", path);
        goto out;
    }
    h->v[h->n].path = strdup(path);
    h->v[h->n].fd = fd;
    h->v[h->n].is_file = is_file;
    h->n++;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    strbuf_release(&lock);
    return rc;
}

/*
 * The global lock: creating, checking and removing mount points happen under
 * it, briefly, so a shared use lock is never taken while another process is
 * deciding to remove the path. Returns its descriptor, or -1 with e.
 */
static int global_lock(struct err *e)
{
    int fd = open(MOUNTPT_LOCK_DIR "/.global", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0 && errno == ENOENT && fileutil_mkdir_p(MOUNTPT_LOCK_DIR, e) == 0)
        fd = open(MOUNTPT_LOCK_DIR "/.global", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_errno(e, errno, "open %s/.global", MOUNTPT_LOCK_DIR);
    if (flock(fd, LOCK_EX) < 0) {
        err_errno(e, errno, "lock %s/.global", MOUNTPT_LOCK_DIR);
        close(fd);
        return -1;
    }
    return fd;
}

int mountpt_hold(struct mountpt_hold *h, const char *target, int is_file, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    char *p;
    int rc = -1, g = global_lock(e);

    if (g < 0)
        return -1;
    if (strbuf_adds(&sb, target) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    for (p = sb.buf + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        if (hold_component(h, sb.buf, 0, e) < 0)
            goto out;
        *p = '/';
    }
    rc = hold_component(h, sb.buf, is_file, e);
out:
    close(g);
    strbuf_release(&sb);
    return rc;
}

/*
 * Lets go of a held path; with may_remove (the global lock is held), removes
 * it if nobody else holds it and it is empty, and forgets it was created.
 */
static void drop(struct mountpt_held *m, int may_remove)
{
    struct stat st;

    if (may_remove && m->path && flock(m->fd, LOCK_EX | LOCK_NB) == 0) {
        if (m->is_file) {
            if (lstat(m->path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
                unlink(m->path);
        } else {
            rmdir(m->path);
        }
        /* Gone: whoever needs it next creates it afresh and marks it again. */
        if (access(m->path, F_OK) < 0 && ftruncate(m->fd, 0) < 0)
            log_warn(NULL, "mount point lock of %s: %s", m->path, strerror(errno));
    }
    close(m->fd);
    free(m->path);
}

void mountpt_release(struct mountpt_hold *h)
{
    struct err e;
    size_t i;
    int g;

    g = h->n ? global_lock(&e) : -1;
    if (h->n && g < 0)
        log_warn(NULL, "mount points left in place: %s", e.msg);
    /* Deepest first: a directory can only go once what it contains has gone. */
    for (i = h->n; i-- > 0;)
        drop(&h->v[i], g >= 0);
    if (g >= 0)
        close(g);
    free(h->v);
    h->v = NULL;
    h->n = 0;
}
