/* fsutil: files written with an exact mode; see fsutil.h. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileutil.h"

int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct err *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    int rc = -1;

    if (fd < 0)
        return err_errno(e, errno, "create %s", path);
    if (fchmod(fd, mode) < 0)
        err_errno(e, errno, "chmod %s", path);
    else
        rc = fileutil_write_all(fd, data, len, path, e);
    close(fd);
    return rc;
}
