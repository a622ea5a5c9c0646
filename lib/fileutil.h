/*
 * fileutil: the file system steps that make outputs appear atomically.
 *
 * Results are built in a hidden temporary directory beside their final
 * place (same file system, so rename(2) is atomic) and swapped in only when
 * complete; a failure removes the temporary directory, so a reader of the
 * final path sees the old result or the new one, never a mix.
 *
 * Every function returns 0, or -1 with e naming the path and the cause
 * (errno in e->code).
 */
#ifndef PLATEOP_FILEUTIL_H
#define PLATEOP_FILEUTIL_H

#include <stddef.h>

#include "err.h"
#include "strbuf.h"

/*
 * Creates an empty directory ".<base>.tmp-XXXXXX" beside `dest` (its
 * parent must exist) and sets *out to its path (out is reset first).
 * Errors name the parent, e.g. "output dir /x not writable: ...".
 */
int fileutil_mkdtemp_beside(const char *dest, struct strbuf *out, struct err *e);

/*
 * Puts directory `tmp` at `dest`: a plain rename when dest does not exist,
 * else an atomic exchange (renameat2 RENAME_EXCHANGE) followed by removal
 * of the old contents. fsyncs the parent. dest must not be a mount point.
 */
int fileutil_replace_dir(const char *tmp, const char *dest, struct err *e);

/* Removes path and everything below it (no error if it does not exist). */
int fileutil_rm_rf(const char *path, struct err *e);

/* fsyncs an open file or a directory by path. */
int fileutil_fsync_path(const char *path, struct err *e);

/*
 * Writes data to path through "path.tmp" + fsync + rename, so readers see
 * the old file or the new one.
 */
int fileutil_write_atomic(const char *path, const void *data, size_t len, struct err *e);

/*
 * Writes all of data to fd, retrying short writes and EINTR. Errors name
 * `name` ("write NAME: No space left on device").
 */
int fileutil_write_all(int fd, const void *data, size_t len, const char *name, struct err *e);

/* Appends the file's contents to sb; fails if it holds more than max bytes. */
int fileutil_read(const char *path, struct strbuf *sb, size_t max, struct err *e);

/* Creates dir and its missing parents (mode 0755). */
int fileutil_mkdir_p(const char *dir, struct err *e);

#endif
