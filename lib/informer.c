/* informer: see informer.h. Work in progress: entry points not yet written fail with KUBE_E_NOT_IMPLEMENTED. */
#include "informer.h"

struct informer *informer_new(struct kube_client *c, const struct informer_opts *opts, struct kube_error *ke)
{
    (void)c;
    (void)opts;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "informer_new: not implemented");
    return NULL;
}

int informer_start(struct informer *inf, struct kube_error *ke)
{
    (void)inf;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "informer_start: not implemented");
    return -1;
}

int informer_has_synced(struct informer *inf)
{
    (void)inf;
    return 0;
}

int informer_wait_synced(struct informer *inf, long timeout_ms)
{
    (void)inf;
    (void)timeout_ms;
    return -1;
}

json_t *informer_get(struct informer *inf, const char *ns, const char *name)
{
    (void)inf;
    (void)ns;
    (void)name;
    return NULL;
}

json_t *informer_list(struct informer *inf, const char *label_key, const char *label_value)
{
    (void)inf;
    (void)label_key;
    (void)label_value;
    return NULL;
}

size_t informer_count(struct informer *inf)
{
    (void)inf;
    return 0;
}

void informer_stop(struct informer *inf)
{
    (void)inf;
}

void informer_free(struct informer *inf)
{
    (void)inf;
}
