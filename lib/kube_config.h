/*
 * kube_config: where the API server is and how to authenticate to it.
 *
 * Two sources, as client-go has them:
 *   - a kubeconfig file (YAML, read with libyaml): the current context (or a
 *     named one) selects a cluster (server, CA file or inline base64 data,
 *     insecure-skip-tls-verify) and a user (client certificate and key as
 *     files or inline base64 data, a bearer token or a token file);
 *   - in-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT (an IPv6
 *     host is put in brackets), the service account's token file, ca.crt and
 *     namespace under /var/run/secrets/kubernetes.io/serviceaccount.
 *
 * TLS is verified unless the kubeconfig itself says
 * `insecure-skip-tls-verify: true`; nothing else turns verification off.
 *
 * A loaded struct kube_config owns all its strings; release it with
 * kube_config_release(). Loading is not thread-safe with respect to the same
 * struct, but distinct structs may be loaded concurrently. Errors come back
 * in a struct err whose message names the file and the offending entry
 * (e.g. "kubeconfig /x/config: context \"dev\": user \"bob\" not found").
 */
#ifndef PLATEOP_KUBE_CONFIG_H
#define PLATEOP_KUBE_CONFIG_H

#include <stddef.h>

#include "err.h"

/* Where in-cluster credentials live, unless a test points elsewhere. */
#define KUBE_CONFIG_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_config {
    char *source;          /* what was loaded: a kubeconfig path or "in-cluster" */
    char *context;         /* context name used; NULL in-cluster */
    char *server;          /* "https://host:port[/prefix]", no trailing slash */
    char *namespace;       /* the context's namespace, the SA's, or "default" */

    /* Trust: at most one of ca_file / ca_data. Neither means system CAs. */
    char *ca_file;         /* absolute path to a PEM bundle */
    char *ca_data;         /* decoded PEM bytes (NUL-terminated) */
    size_t ca_data_len;
    int insecure_skip_tls_verify;  /* only ever set from the kubeconfig */
    char *tls_server_name; /* overrides the name checked in the certificate */

    /* Client certificate: file paths or decoded PEM data (NUL-terminated). */
    char *cert_file, *key_file;
    char *cert_data, *key_data;
    size_t cert_data_len, key_data_len;

    /* Bearer token: a literal, or a file re-read while running (see kube.h). */
    char *token;
    char *token_file;      /* absolute path */

    /* Basic auth, for completeness of the kubeconfig format. */
    char *username, *password;
};

/*
 * Loads the configuration the way client-go's default loading rules and
 * controller-runtime do: `kubeconfig_flag` if not NULL/empty; else
 * $KUBECONFIG (a colon-separated list, merged: the first file that sets a
 * map entry or current-context wins); else in-cluster when
 * KUBERNETES_SERVICE_HOST is set; else ~/.kube/config. `context` selects a
 * context by name (NULL: current-context).
 *
 * On success fills *cfg (which must be zeroed or released) and returns 0.
 * On failure returns -1 with e naming what was tried and why it failed;
 * *cfg is left empty.
 */
int kube_config_load(struct kube_config *cfg, const char *kubeconfig_flag, const char *context,
                     struct err *e);

/*
 * Reads one kubeconfig file, or several separated by ':' (merged as
 * above). Relative file paths inside (certificate-authority, client-key,
 * tokenFile, ...) are resolved against the directory of the file that names
 * them. Returns 0 or -1 with e.
 */
int kube_config_from_file(struct kube_config *cfg, const char *paths, const char *context,
                          struct err *e);

/*
 * Parses kubeconfig YAML held in memory (len bytes; need not be
 * NUL-terminated). Relative paths resolve against `base_dir` (NULL: the
 * current directory); `name` is used in error messages. Returns 0 or -1.
 * Malformed YAML, a missing context/cluster/user, a server that is not an
 * http(s) URL, and bad base64 are all errors naming the cause.
 */
int kube_config_parse(struct kube_config *cfg, const char *yaml, size_t len, const char *name,
                      const char *base_dir, const char *context, struct err *e);

/*
 * In-cluster configuration from KUBERNETES_SERVICE_HOST/_PORT and the
 * service-account directory `sa_dir` (NULL: KUBE_CONFIG_SA_DIR). The token is
 * referenced as token_file so rotation is picked up; ca.crt must exist.
 * Returns 0 or -1 with e.
 */
int kube_config_in_cluster(struct kube_config *cfg, const char *sa_dir, struct err *e);

/* Frees every string and zeroes *cfg. Safe on a zeroed struct. */
void kube_config_release(struct kube_config *cfg);

/*
 * Deep-copies src into *dst (zeroed or released). Returns 0, or -1 with e on
 * allocation failure.
 */
int kube_config_copy(struct kube_config *dst, const struct kube_config *src, struct err *e);

#endif
