/*
 * volume: a Pod's volumes made into host directories the container's mounts
 * can bind.
 *
 *   configMap, secret  materialised into <pod dir>/volumes/<name>: every key,
 *                      or just `items` (key -> relative path, optional mode),
 *                      with defaultMode (0644 unless given); `optional`
 *                      honoured
 *   emptyDir           a fresh directory <pod dir>/volumes/<name>, mode 0777
 *   hostPath           the host path itself, checked or created per `type`
 *   persistentVolumeClaim
 *                      the directory the --volume-map file names for the
 *                      claim, else the hostPath or local path of the bound
 *                      PersistentVolume
 *
 * The volume map is a text file of lines `claimName=/local/dir` or
 * `namespace/claimName=/local/dir` (the namespaced line wins); blank lines
 * and lines starting with '#' are ignored. It is read at each use, so edits
 * apply to the next pod.
 *
 * Errors: -1 with e; e->code is PODSPEC_ECONFIG when the Pod cannot run as
 * written (missing object or key, unsupported volume type, unmapped claim).
 */
#ifndef NODEAGENT_VOLUME_H
#define NODEAGENT_VOLUME_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"
#include "podspec.h"
#include "strbuf.h"

struct vol_entry {
    char *name;        /* spec.volumes[].name */
    char *host_path;   /* what a volumeMount of it binds */
};

struct vol_set {
    struct vol_entry *v;
    size_t n;
};

/*
 * Prepares every volume in pod's spec.volumes under pod_dir (which must
 * exist), replacing what an earlier attempt left there. volume_map may be
 * NULL. Fills *vs (zeroed first); free it with vol_set_free(). Cost: one
 * getter call per ConfigMap, Secret or claim, and the files written.
 */
int vol_prepare(struct vol_set *vs, const json_t *pod, const char *pod_dir,
                const char *volume_map, const struct podspec_getter *get, struct err *e);

/* The host path of volume `name`, or NULL. Borrowed from vs. */
const char *vol_find(const struct vol_set *vs, const char *name);

/* Frees the set (the directories stay). Safe on a zeroed set. */
void vol_set_free(struct vol_set *vs);

/*
 * Looks claim (in namespace ns) up in the volume map file and appends its
 * directory to out. Returns 1 when mapped, 0 when not, -1 with e when the
 * file cannot be read.
 */
int vol_map_lookup(const char *map_file, const char *ns, const char *claim, struct strbuf *out,
                   struct err *e);

#endif
