/*
 * fsutil: the few file-system chores the node agent repeats: creating a
 * directory chain, removing a tree, writing and reading small files.
 */
#ifndef NODEAGENT_FSUTIL_H
#define NODEAGENT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "strbuf.h"

/* Creates path and missing parents with mode (existing ones are kept). Returns 0 or -1 with e. */
int fsutil_mkdir_p(const char *path, mode_t mode, struct err *e);

/*
 * Removes path and everything under it, never following symbolic links nor
 * crossing into another mounted file system. A missing path is success.
 * Returns 0 or -1 with e. Cost: one walk of the tree.
 */
int fsutil_rm_rf(const char *path, struct err *e);

/*
 * Creates or truncates path with exactly mode (no umask), refusing to
 * follow a symbolic link, and writes len bytes. Returns 0 or -1 with e.
 */
int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct err *e);

/*
 * Appends up to max bytes of path to out. Returns 0, or -1 with e
 * (e->code is errno, so ENOENT tells a missing file).
 */
int fsutil_read_file(const char *path, size_t max, struct strbuf *out, struct err *e);

#endif
