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

int testkube_open(struct testkube *t, const char *prefix)
{
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    json_t *obj, *got = NULL;

    memset(t, 0, sizeof(*t));
    t->c = testkube_client(NULL);
    if (!t->c)
        return -1;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(t->ns, sizeof(t->ns), "%.30s-%d-%04x", prefix, (int)getpid(),
             (unsigned)rand() & 0xffff);
    obj = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                    "metadata", "name", t->ns);
    if (obj)
        got = kube_create(t->c, &res, obj, NULL, &ke);
    json_decref(obj);
    if (!got) {
        printf("# create namespace %s: %s\n", t->ns, obj ? ke.err.msg : "out of memory");
        t->ns[0] = '\0';
        testkube_close(t);
        return -1;
    }
    json_decref(got);
    return 0;
}

void testkube_close(struct testkube *t)
{
    struct kube_res res = KUBE_RES_NAMESPACES;
    struct kube_error ke;
    json_t *got;

    if (t->c && t->ns[0]) {
        res.name = t->ns;
        got = kube_delete(t->c, &res, NULL, &ke);
        if (!got)
            printf("# delete namespace %s: %s\n", t->ns, ke.err.msg);
        json_decref(got);
    }
    kube_client_free(t->c);
    memset(t, 0, sizeof(*t));
}
