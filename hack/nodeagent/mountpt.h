/*
 * mountpt: mount points the node agent had to create on the host.
 *
 * Containers run in private mount namespaces over the host's file system,
 * so a volume's mountPath (say /config) must exist on the host before it can
 * be bound. The agent creates what is missing, counts the containers using
 * each path it created, and removes the path (if still empty) when the last
 * of them ends, so the host is left as it was. Thread-safe.
 */
#ifndef NODEAGENT_MOUNTPT_H
#define NODEAGENT_MOUNTPT_H

#include <stddef.h>

#include "err.h"

/* The paths one container holds. */
struct mountpt_hold {
    char **paths;
    size_t n;
};

/*
 * Makes target exist: missing parent directories are created (0755), and
 * the last component too, as a directory or, when is_file, an empty file.
 * Adds what it created, and any path it created earlier for another
 * container, to h. Returns 0, or -1 with e.
 */
int mountpt_hold(struct mountpt_hold *h, const char *target, int is_file, struct err *e);

/* Drops h's holds; removes each created path no container holds any more. */
void mountpt_release(struct mountpt_hold *h);

#endif
