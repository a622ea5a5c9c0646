/* kube_config: see kube_config.h. Work in progress: entry points not yet written fail with KUBE_E_NOT_IMPLEMENTED. */
#include "kube_config.h"

int kube_config_load(struct kube_config *cfg, const char *kubeconfig_flag, const char *context, struct err *e)
{
    (void)cfg;
    (void)kubeconfig_flag;
    (void)context;
    (void)e;
    err_set(e, 1008, "kube_config_load: not implemented");
    return -1;
}

int kube_config_from_file(struct kube_config *cfg, const char *paths, const char *context, struct err *e)
{
    (void)cfg;
    (void)paths;
    (void)context;
    (void)e;
    err_set(e, 1008, "kube_config_from_file: not implemented");
    return -1;
}

int kube_config_parse(struct kube_config *cfg, const char *yaml, size_t len, const char *name, const char *base_dir, const char *context, struct err *e)
{
    (void)cfg;
    (void)yaml;
    (void)len;
    (void)name;
    (void)base_dir;
    (void)context;
    (void)e;
    err_set(e, 1008, "kube_config_parse: not implemented");
    return -1;
}

int kube_config_in_cluster(struct kube_config *cfg, const char *sa_dir, struct err *e)
{
    (void)cfg;
    (void)sa_dir;
    (void)e;
    err_set(e, 1008, "kube_config_in_cluster: not implemented");
    return -1;
}

void kube_config_release(struct kube_config *cfg)
{
    (void)cfg;
}

int kube_config_copy(struct kube_config *dst, const struct kube_config *src, struct err *e)
{
    (void)dst;
    (void)src;
    (void)e;
    err_set(e, 1008, "kube_config_copy: not implemented");
    return -1;
}
