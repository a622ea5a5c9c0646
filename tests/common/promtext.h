/*
 * promtext: a strict parser of the Prometheus text exposition format 0.0.4,
 * so tests can say "/metrics parses as Prometheus text" and then read
 * values out of it.
 *
 * Beyond the grammar (HELP and TYPE lines, sample lines with escaped label
 * values, numbers including +Inf/-Inf/NaN, optional timestamps, a final
 * newline) it checks what a scraper relies on:
 *   - a TYPE or HELP line comes at most once per family, before its samples;
 *   - the samples of a family are contiguous, and no series repeats;
 *   - no sample repeats a label name;
 *   - counters are not negative;
 *   - each histogram series has buckets in increasing "le" order with
 *     non-decreasing counts ending in le="+Inf", and _sum and _count, the
 *     count equal to the +Inf bucket.
 *
 * Series are compared in canonical form: name{k="v",...} with the labels
 * sorted by name and values escaped the one way the format allows, so
 * label order in the text does not matter.
 *
 * The same parser backs the shell tool build/tests/unit/test_promtext
 * (see tests/unit/test_promtext.c):
 *   test_promtext check [FILE]          validate; print every sample canonically
 *   test_promtext value SERIES [FILE]   print one series' value; exit 1 if absent
 *   test_promtext sum NAME [FILE]       print the sum of every series of NAME
 * FILE defaults to standard input.
 */
#ifndef PLATEOP_PROMTEXT_H
#define PLATEOP_PROMTEXT_H

#include <stddef.h>

#include "err.h"
#include "strbuf.h"

struct promtext_family {
    char *name;
    char *type;       /* "counter", "gauge", "histogram", "summary" or "untyped" */
    char *help;       /* unescaped; NULL without a HELP line */
};

struct promtext_sample {
    char *series;     /* canonical name{labels}, or just name without labels */
    char *name;       /* the sample's metric name, e.g. "x_bucket" */
    size_t family;    /* index into families */
    double value;
};

struct promtext {
    struct promtext_family *families;
    size_t nfamilies;
    struct promtext_sample *samples;   /* in text order */
    size_t nsamples;
};

/*
 * Parses text[0..len). Returns 0 with *out filled (release it with
 * promtext_release()), or -1 with e naming the line and the problem
 * ("line 7: counter x_total is negative"); *out is then empty.
 */
int promtext_parse(const char *text, size_t len, struct promtext *out, struct err *e);

void promtext_release(struct promtext *p);

/*
 * The value of one series, written as in the text (`name` or
 * `name{k="v",...}`, labels in any order). Returns 0 with *value, or -1
 * when the series is absent or cannot be parsed.
 */
int promtext_value(const struct promtext *p, const char *series, double *value);

/* As promtext_value(), for asserts: the value, or NaN (equal to nothing) when absent. */
double promtext_get(const struct promtext *p, const char *series);

/* The sum of the values of every series named name (0 when none). */
double promtext_sum(const struct promtext *p, const char *name);

/* The family named name, or NULL. */
const struct promtext_family *promtext_family(const struct promtext *p, const char *name);

#endif
