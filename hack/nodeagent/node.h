/*
 * node: the node agent's Node object: registration, the Ready heartbeat, and
 * the taints that would keep pods away.
 *
 * The Node carries the labels kubernetes.io/hostname (the node name, for
 * nodeSelector), kubernetes.io/os, kubernetes.io/arch and
 * plateop.io/node-agent=true; capacity and allocatable cpu, memory and pods;
 * ONE address, InternalIP 127.0.0.1 (with a Hostname address the API server
 * resolves the name first and fails); nodeInfo; and the log server's port as
 * status.daemonEndpoints.kubeletEndpoint.Port, where the API server sends
 * `kubectl logs`.
 *
 * The heartbeat thread reports Ready=True every 10 s and removes the
 * node.kubernetes.io/not-ready and node.kubernetes.io/unreachable taints
 * whenever the node lifecycle controller puts them back. When the agent
 * stops it reports Ready=False and taints the node
 * plateop.io/node-agent-stopped:NoSchedule, so nothing is scheduled to a
 * node nobody runs; the next start removes that taint.
 */
#ifndef NODEAGENT_NODE_H
#define NODEAGENT_NODE_H

#include "err.h"
#include "kube.h"

#define NODE_STOPPED_TAINT "plateop.io/node-agent-stopped"

struct node_config {
    const char *name;
    const char *cpu;        /* capacity quantities, e.g. "2", "8Gi" */
    const char *memory;
    int max_pods;
    int port;               /* the log server's port */
};

/*
 * Creates the Node, or updates the labels of an existing one, clears the
 * taints named above, and reports it Ready. Returns 0, or -1 with e.
 * Cost: a few API round trips.
 */
int node_register(struct kube_client *kc, const struct node_config *nc, struct err *e);

struct node_heartbeat;

/* Starts the heartbeat thread. nc's strings must outlive it. NULL with e on failure. */
struct node_heartbeat *node_heartbeat_start(struct kube_client *kc, const struct node_config *nc,
                                            struct err *e);

/* Stops the heartbeat thread (within about a second) and frees it. Safe on NULL. */
void node_heartbeat_stop(struct node_heartbeat *hb);

/* Reports Ready=False and adds the stopped taint. Returns 0, or -1 with e. */
int node_mark_stopped(struct kube_client *kc, const struct node_config *nc, struct err *e);

#endif
