/*
 * testkube: what integration tests need to talk to the test bed's API
 * server: a client from $KUBECONFIG, and a namespace of their own.
 *
 * Failures are reported as TAP diagnostics ("# ...") on stdout and come
 * back as NULL / -1, so a test can fail with a reason instead of crashing.
 */
#ifndef PLATEOP_TESTKUBE_H
#define PLATEOP_TESTKUBE_H

#include <stddef.h>

#include "kube.h"

/*
 * A client for the cluster in $KUBECONFIG. server_override, if not NULL,
 * replaces the configuration's server URL (to go through a proxy). Free
 * with kube_client_free(). NULL on failure.
 */
struct kube_client *testkube_client(const char *server_override);

/*
 * Creates a namespace named "<prefix>-<pid>-<random>" (prefix at most 30
 * bytes) and writes its name to out. Returns 0, or -1.
 */
int testkube_namespace(struct kube_client *c, const char *prefix, char *out, size_t size);

/* Deletes a namespace and everything in it, without waiting. */
void testkube_delete_namespace(struct kube_client *c, const char *ns);

#endif
