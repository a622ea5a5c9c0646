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

/* A test's connection to the test bed: a client and a namespace of its own. */
struct testkube {
    struct kube_client *c;
    char ns[64];
};

/*
 * Fills t with a client for $KUBECONFIG and a new namespace named
 * "<prefix>-<pid>-<random>" (prefix at most 30 bytes). Returns 0, or -1
 * with t released. Fits a cmocka group setup.
 */
int testkube_open(struct testkube *t, const char *prefix);

/*
 * Deletes the namespace and everything in it (without waiting for it to
 * go) and frees the client. Safe on a zeroed or released t.
 */
void testkube_close(struct testkube *t);

#endif
