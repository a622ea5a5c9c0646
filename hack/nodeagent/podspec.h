/*
 * podspec: what it takes to run one container of a Pod on this host,
 * resolved from the Pod's JSON into plain strings.
 *
 * The node agent ignores images: a container runs its `command` + `args`
 * (with $(VAR) references expanded as the kubelet does) on the host. Its
 * environment is built the kubelet's way, in order: a base (PATH, HOSTNAME,
 * HOME, KUBERNETES_SERVICE_HOST/PORT), then envFrom (configMapRef /
 * secretRef with prefix), then env (value with $(VAR) expansion, fieldRef,
 * configMapKeyRef, secretKeyRef); a later name replaces an earlier one.
 *
 * ConfigMaps, Secrets and claims are read through a podspec_getter, so this
 * module does no I/O of its own and tests can feed it objects.
 *
 * Errors: -1 with e. e->code is PODSPEC_ECONFIG when the Pod itself cannot
 * run as written (a missing key, an unsupported field, no command): the
 * kubelet's CreateContainerConfigError. Any other code is a failure to read
 * from the API server, worth retrying.
 */
#ifndef NODEAGENT_PODSPEC_H
#define NODEAGENT_PODSPEC_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "strbuf.h"

#define PODSPEC_ECONFIG 2001

/*
 * Reads an object: resource is "configmaps", "secrets",
 * "persistentvolumeclaims" or "persistentvolumes"; ns is NULL for
 * cluster-scoped ones. Returns a new reference, or NULL with *missing set
 * when the object does not exist, or NULL with e on any other failure.
 */
struct podspec_getter {
    json_t *(*get)(void *arg, const char *resource, const char *ns, const char *name,
                   int *missing, struct err *e);
    void *arg;
};

/* Facts about where the pod runs, for fieldRef and the base environment. */
struct podspec_host {
    const char *pod_ip;        /* status.podIP and status.hostIP */
    const char *api_host;      /* KUBERNETES_SERVICE_HOST, or NULL to leave it out */
    const char *api_port;      /* KUBERNETES_SERVICE_PORT */
};

struct podspec_mount {
    char *volume;              /* volumeMounts[].name */
    char *path;                /* mountPath, absolute */
    char *sub_path;            /* subPath or NULL */
    int read_only;
};

struct podspec_container {
    char *name;
    char *image;               /* reported back in the status; never pulled */
    char *exec_path;           /* argv[0] resolved against the container's PATH */
    char **argv;               /* NULL-terminated */
    char **envp;               /* NULL-terminated "NAME=value" */
    char *working_dir;         /* "/" when the spec gives none */
    struct podspec_mount *mounts;
    size_t n_mounts;
    long long memory_limit;    /* resources.limits.memory in bytes; 0: none */
    char *termination_path;    /* terminationMessagePath, default /dev/termination-log */
    int run_as_user_set, run_as_group_set;
    uid_t run_as_user;         /* container securityContext, else the pod's */
    gid_t run_as_group;
    gid_t *groups;             /* supplementalGroups and fsGroup */
    size_t n_groups;
};

/*
 * Resolves container `container` (an element of spec.containers) of `pod`.
 * Fills *c (zeroed first); the caller frees it with podspec_container_free().
 * Cost: one getter call per distinct ConfigMap/Secret referenced.
 */
int podspec_container_build(struct podspec_container *c, const json_t *pod,
                            const json_t *container, const struct podspec_host *host,
                            const struct podspec_getter *get, struct err *e);

/* Frees what podspec_container_build() filled. Safe on a zeroed struct. */
void podspec_container_free(struct podspec_container *c);

/*
 * Looks key up in a ConfigMap (data, else base64 binaryData) or a Secret
 * (base64 data) and appends its bytes to out. Returns 1 when found, 0 when
 * the key is absent, -1 with e (PODSPEC_ECONFIG) on bad base64.
 */
int podspec_key_value(const json_t *obj, int is_secret, const char *key, struct strbuf *out,
                      struct err *e);


/*
 * Expands $(NAME) in s the kubelet's way: a defined NAME is replaced by its
 * value, an undefined one is kept as written, "$$" becomes "$". `envp` is a
 * NULL-terminated "NAME=value" list (NULL: nothing defined). Appends to out;
 * returns 0, or -1 on allocation failure.
 */
int podspec_expand(const char *s, char *const *envp, size_t n_env, struct strbuf *out);

#endif
