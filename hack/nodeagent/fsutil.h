/*
 * fsutil: writing a file with an exact mode, as volumes and the agent's
 * state need (lib/fileutil does the rest: directories, trees, reads).
 */
#ifndef NODEAGENT_FSUTIL_H
#define NODEAGENT_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/*
 * Creates or truncates path with exactly mode (no umask), refusing to
 * follow a symbolic link, and writes len bytes. Returns 0 or -1 with e.
 */
int fsutil_write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct err *e);

#endif
