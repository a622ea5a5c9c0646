/*
 * analysis: an Analysis resource (plateop.io/v1alpha1) as a C struct.
 *
 * The CRD schema already refuses malformed specs and fills defaults; this
 * module reads what the API server stored, applies the same defaults again
 * (so an object created before a default existed still works), and checks
 * what a schema cannot: filters that parse, an output path that stays inside
 * the work volume.
 */
#ifndef PLATEOP_CTL_ANALYSIS_H
#define PLATEOP_CTL_ANALYSIS_H

#include <jansson.h>

#include "err.h"

enum ana_batching {
    ANA_BY_WELL,
    ANA_BY_SITE,
    ANA_BY_PLATE,
};

/* Strings point into `obj` (a reference the struct holds) unless noted. */
struct ana {
    json_t *obj;                 /* the whole resource (owned reference) */
    const char *ns;
    const char *name;
    const char *uid;
    long long generation;
    const char *created;         /* metadata.creationTimestamp */
    int deleting;                /* metadata.deletionTimestamp is set */

    long long plate_acq;
    const char *pipeline;
    const char *image;           /* NULL: the controller's default */
    enum ana_batching by;
    int batch_size;
    const char *wells;           /* filters; NULL when unset */
    const char *sites;
    const char *z;
    char *channels;              /* comma-joined dye names, malloc'd; NULL when unset */
    const json_t *resources;     /* borrowed from obj; NULL when unset */
    int retries;
    int max_failed;
    int timeout_s;
    const json_t *depends_on;    /* array of names; NULL when unset */
    int use_icf;
    int start_early;
    int strict;
    int priority;
    double mem_factor;
    const char *mem_max;         /* spec.memory.max as a quantity; NULL: default */
    char mem_max_buf[24];        /* mem_max when the spec gave an integer (bytes) */
    const json_t *cp_args;       /* array of strings; NULL when unset */
    char *output;                /* relative output dir under the work volume, malloc'd */

    const json_t *status;        /* borrowed; NULL when none yet */
};

/*
 * Reads an Analysis object. Keeps a reference to obj. Returns 0, or -1
 * with e describing the first problem in terms a user can act on (e.g.
 * "spec.filters.wells: token 'Q99' at position 5: row Q is off a 384-well
 * plate"). On error *a is released. Cost: O(size of the spec).
 */
int ana_parse(struct ana *a, json_t *obj, struct err *e);

/* Releases what ana_parse() took. Safe on a zeroed or released struct. */
void ana_release(struct ana *a);

/* "namespace/name", the work-queue key, into out (size >= 254). */
void ana_key(const struct ana *a, char *out, size_t size);

#endif
