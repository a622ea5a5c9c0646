/*
 * objects: the Kubernetes objects an Analysis owns, as JSON -- each batch's
 * ConfigMap (its LoadData CSV) and Job, and the merge Job -- and their names.
 *
 * Names are deterministic ("<analysis>-<batch>", "<analysis>-merge"), so a
 * restarted controller, or two at once, never create a batch twice: a
 * create that answers 409 AlreadyExists is success. Every object carries a
 * controller ownerReference to the Analysis, so deleting the Analysis
 * garbage-collects them, and labels naming analysis, batch and wells.
 *
 * All builders are pure: they return a new JSON reference (NULL only when
 * memory runs out) and do no I/O.
 */
#ifndef PLATEOP_CTL_OBJECTS_H
#define PLATEOP_CTL_OBJECTS_H

#include <jansson.h>
#include <stddef.h>

#include "analysis.h"
#include "config.h"

struct strbuf;

#define OBJ_NAME_MAX 63

#define OBJ_LABEL_ANALYSIS "plateop.io/analysis"
#define OBJ_LABEL_BATCH "plateop.io/batch"
#define OBJ_LABEL_WELLS "plateop.io/wells"
#define OBJ_LABEL_UID "plateop.io/analysis-uid"  /* on a Pod: its Analysis's uid */
#define OBJ_LABEL_ROLE "plateop.io/role"       /* "batch" or "merge" */
#define OBJ_LABEL_STATE "plateop.io/state"     /* on a ConfigMap: "succeeded" once seen */
#define OBJ_ANN_WELLS "plateop.io/wells"
#define OBJ_ANN_HASH "plateop.io/input-hash"
#define OBJ_ANN_INDEX "plateop.io/batch-index"
#define OBJ_ANN_SETS "plateop.io/image-sets"
#define OBJ_ANN_ANALYSIS "plateop.io/analysis-name"  /* on a Pod: its Analysis */
#define OBJ_ANN_MEMORY "plateop.io/memory"     /* on a Job: its memory limit */
#define OBJ_LABEL_ATTEMPT "plateop.io/attempt" /* on a Job: 0, or its retry with more memory */
#define OBJ_CSV_KEY "loaddata.csv"

/* What the controller knows of one batch. Strings are borrowed. */
struct obj_batch {
    const char *id;         /* plan batch id: [a-z0-9-], <= 16 chars */
    const char *wells;      /* "C03" or "C03,C04,..." */
    const char *hash;       /* input hash, 64 hex digits */
    long index;             /* position in the plan */
    long sets;              /* image sets */
    const char *memory;     /* memory limit override (OOM escalation) or NULL */
    int attempt;            /* 0, then 1, 2, ... for each retry with more memory */
};

/*
 * "<base>-<suffix>" when it fits in 63 characters; otherwise base is cut
 * and 8 hex digits of its SHA-256 added, so distinct bases stay distinct.
 * out must hold OBJ_NAME_MAX + 1 bytes.
 */
void obj_name(const char *base, const char *suffix, char *out);

/* The label value naming an Analysis (its name, shortened like obj_name()). */
void obj_analysis_label(const char *name, char *out);

/* metadata.labels[key] / metadata.annotations[key] of obj as a string, or NULL. Borrowed from obj. */
const char *obj_label(const json_t *obj, const char *key);
const char *obj_annotation(const json_t *obj, const char *key);

/* The batch's ConfigMap, holding its LoadData CSV under OBJ_CSV_KEY. */
json_t *obj_batch_configmap(const struct ana *a, const struct obj_batch *b, const char *csv,
                            size_t csv_len);

/*
 * The batch's Job: plateop-worker run over the ConfigMap's CSV. Attempt 0
 * is "<analysis>-<batch>"; a retry with more memory is "...-<batch>-m<N>".
 */
json_t *obj_batch_job(const struct ana *a, const struct ctl_config *cfg, const struct obj_batch *b);

/*
 * The merge Job: plateop-worker merge of every batch under the Analysis's
 * output directory, with activeDeadlineSeconds cfg->merge_deadline_s.
 * failed (borrowed, may be NULL) is the JSON array of failed batches
 * [{batch, wells, reason}] recorded in the merged manifest.
 */
json_t *obj_merge_job(const struct ana *a, const struct ctl_config *cfg, const json_t *failed);

/*
 * A Job's verdict from its conditions: "Complete", "Failed", or NULL while
 * it runs. *reason and *message get the condition's (borrowed from job,
 * possibly NULL) with a verdict.
 */
const char *obj_job_verdict(const json_t *job, const char **reason, const char **message);

/*
 * What the cache shows of one Job's pods, gathered one pod at a time, so a
 * pass over many batches never holds their pods. Zero-initialise, add each
 * pod with obj_pods_add(), free with obj_pods_release().
 */
struct obj_pods {
    int count;
    int started;            /* one has left the Pending phase */
    int behind;             /* one still shows as pending or running (and is not being deleted) */
    int terminated;         /* a container termination was seen; the newest pod's follows */
    char *term_reason;      /* "OOMKilled", "Error", ... or NULL */
    char *term_message;     /* the worker's termination message, or NULL */
    long long term_code;    /* its exit code */
    char *term_created;     /* creationTimestamp of the pod it came from */
};

/* Folds pod into p. Returns 0, or -1 when out of memory (p stays consistent). */
int obj_pods_add(struct obj_pods *p, const json_t *pod);

void obj_pods_release(struct obj_pods *p);

/*
 * The verdict to act on: the Job's, unless one of its pods is behind. The
 * pod's own update, with the reason the reconcile reports (OOMKilled, the
 * worker's termination message), comes through another watch than the
 * Job's and may lag: the verdict waits for it. A pod being deleted may
 * never report again, so it is not waited for.
 */
const char *obj_job_outcome(const char *verdict, const struct obj_pods *pods);

/* Where the Analysis's batch outputs and merged tables go, inside the worker. */
void obj_output_dir(const struct ana *a, const struct ctl_config *cfg, const char *leaf,
                    struct strbuf *out);

#endif
