/*
 * mountpt: mount points the node agent has to create on the host.
 *
 * Containers run in private mount namespaces over the host's file system,
 * so a volume's mountPath (say /config) or /dev/termination-log must exist
 * on the host before it can be bound. What is missing is created, and
 * removed again (if still empty) when the last container using it ends, so
 * the host is left as it was.
 *
 * "The last container" counts across every node agent on the host (tests
 * and developers run several): each path has a lock file under
 * MOUNTPT_LOCK_DIR (named by the SHA-256 of the path) that records whether
 * an agent created the path; a container holds a shared flock(2) on it while
 * it runs, and a path is removed only by whoever gets the lock exclusively.
 * A path that existed before is never removed. The lock files stay.
 */
#ifndef NODEAGENT_MOUNTPT_H
#define NODEAGENT_MOUNTPT_H

#include <stddef.h>

#include "err.h"

#define MOUNTPT_LOCK_DIR "/run/plateop-nodeagent/mountpoints"

struct mountpt_held {
    char *path;
    int fd;           /* the lock file, holding a shared lock */
    int is_file;
};

/* The paths one container holds. Zero-initialise. */
struct mountpt_hold {
    struct mountpt_held *v;
    size_t n;
};

/*
 * Makes target exist: missing parent directories are created (0755), and
 * the last component too, as a directory or, when is_file, an empty file
 * (0644). Every component an agent created is held in h. Blocks while
 * another agent is creating or removing the same path. Returns 0, or -1
 * with e (what was held so far stays in h for mountpt_release).
 */
int mountpt_hold(struct mountpt_hold *h, const char *target, int is_file, struct err *e);

/*
 * Drops h's holds, deepest first; removes each created path that no
 * container of any agent holds any more and that is empty.
 */
void mountpt_release(struct mountpt_hold *h);

#endif
