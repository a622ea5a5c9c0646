/* fileutil: temporary directories, atomic replacement, recursive removal; see fileutil.h. */
#include "fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Splits path into parent directory and base name (both into sb-owned copies). */
static int split_path(const char *path, struct strbuf *parent, struct strbuf *base, struct err *e)
{
    char *a = strdup(path), *b = strdup(path);
    int rc = -1;

    if (!a || !b) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    strbuf_reset(parent);
    strbuf_reset(base);
    if (strbuf_adds(parent, dirname(a)) < 0 || strbuf_adds(base, basename(b)) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    free(a);
    free(b);
    return rc;
}

int fileutil_mkdtemp_beside(const char *dest, struct strbuf *out, struct err *e)
{
    struct strbuf parent = STRBUF_INIT, base = STRBUF_INIT;
    int rc = -1;

    if (split_path(dest, &parent, &base, e) < 0)
        goto out;
    strbuf_reset(out);
    if (strbuf_addf(out, "%s/.%s.tmp-XXXXXX", parent.buf, base.buf) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (!mkdtemp(out->buf)) {
        err_errno(e, errno, "output dir %s not writable (creating a temporary directory in %s)",
                  dest, parent.buf);
        goto out;
    }
    /* mkdtemp makes it private; results are read by other pods and users. */
    if (chmod(out->buf, 0755) < 0) {
        err_errno(e, errno, "chmod %s", out->buf);
        rmdir(out->buf);
        goto out;
    }
    rc = 0;
out:
    strbuf_release(&parent);
    strbuf_release(&base);
    return rc;
}

int fileutil_fsync_path(const char *path, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return err_errno(e, errno, "open %s", path);
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = err_errno(e, errno, "fsync %s", path);
    close(fd);
    return rc;
}

int fileutil_replace_dir(const char *tmp, const char *dest, struct err *e)
{
    struct strbuf parent = STRBUF_INIT, base = STRBUF_INIT;
    int rc = -1;

    if (split_path(dest, &parent, &base, e) < 0)
        goto out;
    if (rename(tmp, dest) == 0) {
        rc = 0;
    } else if (errno == EEXIST || errno == ENOTEMPTY) {
        /* After the exchange, tmp holds the old result. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) < 0) {
            err_errno(e, errno, "replace %s", dest);
            goto out;
        }
        rc = fileutil_rm_rf(tmp, e);
    } else {
        err_errno(e, errno, "rename %s to %s", tmp, dest);
        goto out;
    }
    if (rc == 0)
        rc = fileutil_fsync_path(parent.buf, e);
out:
    strbuf_release(&parent);
    strbuf_release(&base);
    return rc;
}

int fileutil_rm_rf(const char *path, struct err *e)
{
    struct strbuf child = STRBUF_INIT;
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;
    int rc = -1;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return err_errno(e, errno, "remove %s", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return err_errno(e, errno, "remove %s", path);
        return 0;
    }
    d = opendir(path);
    if (!d) {
        err_errno(e, errno, "remove %s", path);
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        strbuf_reset(&child);
        if (strbuf_addf(&child, "%s/%s", path, de->d_name) < 0) {
            err_set(e, ENOMEM, "out of memory");
            goto out;
        }
        if (fileutil_rm_rf(child.buf, e) < 0)
            goto out;
    }
    if (rmdir(path) < 0) {
        err_errno(e, errno, "remove %s", path);
        goto out;
    }
    rc = 0;
out:
    if (d)
        closedir(d);
    strbuf_release(&child);
    return rc;
}

int fileutil_write_atomic(const char *path, const void *data, size_t len, struct err *e)
{
    struct strbuf tmp = STRBUF_INIT;
    int fd = -1, rc = -1;

    if (strbuf_addf(&tmp, "%s.tmp", path) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    fd = open(tmp.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_errno(e, errno, "create %s", tmp.buf);
        goto out;
    }
    if (fileutil_write_all(fd, data, len, tmp.buf, e) < 0)
        goto out;
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        err_errno(e, errno, "write %s", tmp.buf);
        goto out;
    }
    fd = -1;
    if (rename(tmp.buf, path) < 0) {
        err_errno(e, errno, "rename %s to %s", tmp.buf, path);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && tmp.len)
        unlink(tmp.buf);
    strbuf_release(&tmp);
    return rc;
}

int fileutil_write_all(int fd, const void *data, size_t len, const char *name, struct err *e)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_errno(e, errno, "write %s", name);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fileutil_read(const char *path, struct strbuf *sb, size_t max, struct err *e)
{
    size_t start = sb->len;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

    if (fd < 0)
        return err_errno(e, errno, "open %s", path);
    for (;;) {
        ssize_t n;

        if (strbuf_grow(sb, 65536) < 0) {
            err_set(e, ENOMEM, "read %s: out of memory", path);
            goto out;
        }
        n = read(fd, sb->buf + sb->len, sb->alloc - sb->len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_errno(e, errno, "read %s", path);
            goto out;
        }
        if (n == 0)
            break;
        sb->len += (size_t)n;
        sb->buf[sb->len] = '\0';
        if (sb->len - start > max) {
            err_set(e, EFBIG, "read %s: larger than %zu bytes", path, max);
            goto out;
        }
    }
    rc = 0;
out:
    close(fd);
    if (rc < 0)
        strbuf_setlen(sb, start);
    return rc;
}

int fileutil_mkdir_p(const char *dir, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    size_t i;
    int rc = -1;

    if (strbuf_adds(&sb, dir) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    for (i = 1; i <= sb.len; i++) {
        if (sb.buf[i] != '/' && sb.buf[i] != '\0')
            continue;
        sb.buf[i] = '\0';
        if (mkdir(sb.buf, 0755) < 0 && errno != EEXIST) {
            err_errno(e, errno, "create directory %s", sb.buf);
            goto out;
        }
        if (i < sb.len)
            sb.buf[i] = '/';
    }
    rc = 0;
out:
    strbuf_release(&sb);
    return rc;
}
