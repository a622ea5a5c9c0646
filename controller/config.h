/*
 * config: the controller's settings, from flags, environment and an optional
 * YAML configuration file (the ConfigMap an installation mounts).
 *
 * Flags (each with an environment equivalent):
 *   --kubeconfig PATH       KUBECONFIG; else in-cluster, else ~/.kube/config
 *   --namespace NS[,NS..]   PLATEOP_NAMESPACES; namespaces to serve (default: all)
 *   --imagedb CONNINFO      PLATEOP_IMAGEDB_URI; else the PG* environment
 *   --imagedb-password-file PLATEOP_IMAGEDB_PASSWORD_FILE
 *   --config PATH           PLATEOP_CONFIG; the YAML file below
 *   --listen ADDR:PORT      PLATEOP_LISTEN; health, metrics (default 127.0.0.1:8080; "" off)
 *   --workers N             PLATEOP_WORKERS; concurrent reconciles (default 4)
 *   --log-level LEVEL       PLATEOP_LOG_LEVEL; debug, info, warn, error
 *   --leader-elect BOOL     PLATEOP_LEADER_ELECT (default true)
 *   --lease-namespace NS    PLATEOP_LEASE_NAMESPACE (default: the pod's, else "default")
 *   --id NAME               PLATEOP_ID / POD_NAME; leader identity (default hostname-pid)
 *
 * Configuration file (all keys optional):
 *   worker:
 *     image: plateop/worker:VERSION      default worker image
 *     command: [plateop-worker]          the worker's entrypoint in that image
 *     env: {NAME: value}                 extra environment of every worker
 *   window: 8                            batch Jobs created but not yet running,
 *                                        across all Analyses (0: no window)
 *   succeededJobTTLSeconds: 600          succeeded batch Jobs are removed after this
 *   mergeDeadlineSeconds: 21600          the merge Job's activeDeadlineSeconds: a merge
 *                                        still running after it fails (MergeFailed)
 *   missingDependencyGraceSeconds: 600   an Analysis whose dependsOn names an Analysis
 *                                        that does not exist fails (DependencyFailed)
 *                                        once this long after its own creation
 *   workVolume:                          where batch outputs and merged tables go
 *     mountPath: /work
 *     hostPath: /srv/plateop/work        or claimName: PVC
 *   imageVolumes:                        where the images are, mounted read-only
 *     - {name: images, mountPath: /share/images, hostPath: /share/images}
 *   podSecurityContext: {...}            default {runAsNonRoot: true, runAsUser: 1000,
 *                                        runAsGroup: 1000, fsGroup: 1000}; one given
 *                                        must keep runAsNonRoot: true (else refused)
 *   imagedb:                             the pipeline GUI's analyses (ImageDB rows)
 *     namespace: plateop                 where their Analyses go (default: the first
 *                                        --namespace, else "default")
 *     workerImages: {"4.2.5": IMAGE}     worker image per meta.cp_version; a version not
 *                                        listed is refused (none listed: worker.image)
 *     pollSeconds: 60                    fallback rescan besides LISTEN/NOTIFY
 */
#ifndef PLATEOP_CTL_CONFIG_H
#define PLATEOP_CTL_CONFIG_H

#include <jansson.h>

#include "err.h"
#include "log.h"

struct ctl_config {
    /* flags; malloc'd strings or NULL */
    char *kubeconfig;
    char *namespaces;            /* comma-separated, NULL: all */
    char *imagedb;
    char *imagedb_password_file;
    char *config_path;
    char *listen;                /* "" disables the status server */
    int workers;
    enum log_level log_level;
    int leader_elect;
    char *lease_namespace;
    char *id;

    /* file */
    char *worker_image;
    json_t *worker_command;      /* array of strings */
    json_t *worker_env;          /* object: name -> string */
    int window;
    int succeeded_ttl_s;
    int merge_deadline_s;        /* mergeDeadlineSeconds */
    int missing_dep_grace_s;     /* missingDependencyGraceSeconds */
    char *work_mount;            /* mountPath of the work volume */
    json_t *volumes;             /* pod volumes (Kubernetes JSON), work volume first */
    json_t *mounts;              /* matching volumeMounts */
    json_t *pod_security;        /* pod securityContext */
    char *idb_namespace;         /* imagedb.namespace; NULL: the default above */
    json_t *idb_worker_images;   /* imagedb.workerImages: object cp_version -> image */
    int idb_poll_s;              /* imagedb.pollSeconds */
};

/*
 * Fills cfg from argv, the environment and the file --config names.
 * Returns 0; 1 when --help or --version was answered (printed to stdout);
 * -1 with e naming the flag, file, key and problem.
 */
int ctl_config_load(struct ctl_config *cfg, int argc, char **argv, struct err *e);

/* Reads the YAML configuration file into cfg (also used by tests). */
int ctl_config_load_file(struct ctl_config *cfg, const char *path, struct err *e);

/* Sets every file setting to its default (also used by tests). */
int ctl_config_defaults(struct ctl_config *cfg, struct err *e);

/* Frees every string and JSON value cfg holds and zeroes it; safe on a zeroed cfg. */
void ctl_config_release(struct ctl_config *cfg);

#endif
