/* testkube: client and namespace helpers for integration tests; see testkube.h. */
#include "testkube.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube_config.h"

struct kube_client *testkube_client(const char *server_override)
{
    struct kube_config cfg = { 0 };
    struct kube_client *c = NULL;
    struct kube_error ke;
    struct err e;

    if (kube_config_load(&cfg, NULL, NULL, &e) < 0) {
        printf("# kubeconfig: %s\n", e.msg);
        goto out;
    }
    if (server_override) {
        free(cfg.server);
        cfg.server = strdup(server_override);
        if (!cfg.server)
            goto out;
    }
    c = kube_client_new(&cfg, NULL, &ke);
    if (!c)
        printf("# kube client: %s\n", ke.err.msg);
out:
    kube_config_release(&cfg);
    return c;
}

int testkube_namespace(struct kube_client *c, const char *prefix, char *out, size_t size)
{
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    json_t *obj, *got;

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(out, size, "%.30s-%d-%04x", prefix, (int)getpid(), (unsigned)rand() & 0xffff);
    obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                    "metadata", "name", out);
    got = kube_create(c, &res, obj, NULL, &ke);
    json_decref(obj);
    if (!got) {
        printf("# create namespace %s: %s\n", out, ke.err.msg);
        return -1;
    }
    json_decref(got);
    return 0;
}

void testkube_delete_namespace(struct kube_client *c, const char *ns)
{
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    json_t *got;

    res.name = ns;
    got = kube_delete(c, &res, NULL, &ke);
    if (!got)
        printf("# delete namespace %s: %s\n", ns, ke.err.msg);
    json_decref(got);
}
