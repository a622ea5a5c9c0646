/* kube_watch: see kube_watch.h. Work in progress: entry points not yet written fail with KUBE_E_NOT_IMPLEMENTED. */
#include "kube_watch.h"

const char *kube_event_type_name(enum kube_event_type type)
{
    (void)type;
    return NULL;
}

void kube_watch_parser_init(struct kube_watch_parser *p, kube_event_fn fn, void *ud)
{
    (void)p;
    (void)fn;
    (void)ud;
}

int kube_watch_parser_feed(struct kube_watch_parser *p, const char *data, size_t len, struct kube_error *ke)
{
    (void)p;
    (void)data;
    (void)len;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_watch_parser_feed: not implemented");
    return -1;
}

int kube_watch_parser_finish(struct kube_watch_parser *p, struct kube_error *ke)
{
    (void)p;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_watch_parser_finish: not implemented");
    return -1;
}

void kube_watch_parser_release(struct kube_watch_parser *p)
{
    (void)p;
}

int kube_watch_once(struct kube_client *c, const struct kube_res *res, const struct kube_query *q, kube_event_fn fn, void *ud, const atomic_int *stop, struct kube_error *ke)
{
    (void)c;
    (void)res;
    (void)q;
    (void)fn;
    (void)ud;
    (void)stop;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_watch_once: not implemented");
    return -1;
}

struct kube_watch *kube_watch_new(struct kube_client *c, const struct kube_watch_opts *opts, struct kube_error *ke)
{
    (void)c;
    (void)opts;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_watch_new: not implemented");
    return NULL;
}

int kube_watch_run(struct kube_watch *w, struct kube_error *ke)
{
    (void)w;
    (void)ke;
    if (ke)
        err_set(&ke->err, KUBE_E_NOT_IMPLEMENTED, "kube_watch_run: not implemented");
    return -1;
}

void kube_watch_stop(struct kube_watch *w)
{
    (void)w;
}

void kube_watch_free(struct kube_watch *w)
{
    (void)w;
}
