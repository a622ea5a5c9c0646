/* fsutil: directory chains, tree removal, small files; see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsutil_mkdir_p(const char *path, mode_t mode, struct err *e)
{
    struct strbuf sb = STRBUF_INIT;
    char *p, saved;
    int rc = -1;

    if (strbuf_adds(&sb, path) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    for (p = sb.buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        saved = *p;
        *p = '\0';
        if (mkdir(sb.buf, mode) < 0 && errno != EEXIST) {
            err_errno(e, errno, "mkdir %s", sb.buf);
            goto out;
        }
        *p = saved;
        if (!saved)
            break;
    }
    rc = 0;
out:
    strbuf_release(&sb);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int fsutil_rm_rf(const char *path, struct err *e)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : err_errno(e, errno, "remove %s", path);
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
        return err_errno(e, errno, "remove %s", path);
    return 0;
}

int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct err *e)
{
    const char *p = data;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    int rc = -1;

    if (fd < 0)
        return err_errno(e, errno, "create %s", path);
    if (fchmod(fd, mode) < 0) {
        err_errno(e, errno, "chmod %s", path);
        goto out;
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_errno(e, errno, "write %s", path);
            goto out;
        }
        p += n;
        len -= (size_t)n;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

int fsutil_read_file(const char *path, size_t max, struct strbuf *out, struct err *e)
{
    char buf[8192];
    size_t total = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;

    if (fd < 0)
        return err_errno(e, errno, "open %s", path);
    while (total < max) {
        size_t want = max - total < sizeof(buf) ? max - total : sizeof(buf);
        ssize_t n = read(fd, buf, want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err_errno(e, errno, "read %s", path);
            goto out;
        }
        if (n == 0)
            break;
        if (strbuf_add(out, buf, (size_t)n) < 0) {
            err_set(e, ENOMEM, "read %s: out of memory", path);
            goto out;
        }
        total += (size_t)n;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}
