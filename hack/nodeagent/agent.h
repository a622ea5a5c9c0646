/*
 * agent: the node agent's pod supervisor -- the part of a kubelet that
 * turns Pods bound to this node into processes and their ends into status.
 *
 * A watch thread lists and watches the Pods with spec.nodeName=NODE and
 * queues each event; the supervising thread (the caller of agent_run) does
 * everything else, so pod records need no locking except where the log
 * server reads them:
 *   - a new Pending pod gets a directory <state>/pods/<uid>/ (volumes,
 *     logs/<container>/<restart>.log, termination/<container>, run/<c>.pid),
 *     its volumes and containers are resolved (a missing ConfigMap or key is
 *     CreateContainerConfigError, retried every 5 s) and every container
 *     starts; the pod is reported Running with podIP 127.0.0.1;
 *   - a container's exit is reaped (the agent is a child subreaper), its
 *     session's leftovers are killed, its log drained, and it is reported
 *     terminated with exit code, reason (Completed, Error, OOMKilled with
 *     137, StartError with 128) and message (its termination-message file,
 *     else with FallbackToLogsOnError the log's tail); restartPolicy
 *     OnFailure/Always restart it after a back-off (1 s doubling to 60 s);
 *     the pod becomes Succeeded or Failed when no container will run again;
 *   - a pod with deletionTimestamp has its containers' sessions sent SIGTERM,
 *     then SIGKILL after its grace period, and is then deleted with
 *     gracePeriodSeconds=0 (and its UID as precondition) so it disappears;
 *   - a pod found Running that this agent does not run (the agent
 *     restarted) is reported Failed, reason NodeAgentRestarted; processes a
 *     previous agent left (recorded in run/NAME.pid) are killed at start;
 *     finished pods keep serving their logs; directories of pods that no
 *     longer exist are removed.
 * On SIGTERM or SIGINT every container is stopped (SIGTERM, then SIGKILL
 * after 3 s), reaped, and its pod reported Failed, reason NodeAgentStopped.
 */
#ifndef NODEAGENT_AGENT_H
#define NODEAGENT_AGENT_H

#include "err.h"
#include "kube.h"

struct agent_config {
    const char *node;
    const char *state_dir;      /* absolute; created if missing */
    const char *volume_map;     /* claim map file, or NULL */
    const char *api_host;       /* KUBERNETES_SERVICE_HOST for pods, or NULL */
    const char *api_port;
};

struct agent;

/*
 * Prepares the state directory and kills processes a previous run left
 * behind. The strings in cfg must outlive the agent. NULL with e on failure.
 */
struct agent *agent_new(struct kube_client *kc, const struct agent_config *cfg, struct err *e);

/*
 * Runs pods until a SIGTERM or SIGINT arrives on sigfd (a signalfd for
 * SIGTERM, SIGINT and SIGCHLD, which the caller has blocked in every
 * thread), then stops them all. Returns 0, or -1 with e if the watch cannot
 * start.
 */
int agent_run(struct agent *a, int sigfd, struct err *e);

/* Frees the agent after agent_run returned. Safe on NULL. */
void agent_free(struct agent *a);

/*
 * Log server callbacks (struct logsrv_source), with the agent as arg: the
 * log file of a container (malloc'd path, or NULL with e->code 404/400),
 * and whether a log file may still grow. Thread-safe.
 */
char *agent_find_log(void *agent, const char *ns, const char *pod, const char *container,
                     int previous, struct err *e);
int agent_log_growing(void *agent, const char *path);

#endif
