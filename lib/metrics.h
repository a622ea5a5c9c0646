/*
 * metrics: a small thread-safe registry of Prometheus metrics (counters,
 * gauges and histograms, with labels), rendered in the Prometheus text
 * exposition format 0.0.4.
 *
 * A registry holds families, each with a name, a help text, a type and a
 * fixed list of label names. A family holds one series per distinct tuple
 * of label values, created on first use. A family without labels has its
 * single series from the start, so it is rendered (as 0) before any update.
 *
 *     static const char *const lbl[] = { "verb", "code", NULL };
 *     struct metrics_desc d = { METRICS_COUNTER, "x_requests_total",
 *                               "Requests by verb and code.", lbl };
 *     struct metrics_family *f = metrics_register(r, &d, &e);
 *     metrics_add(f, (const char *const[]){ "GET", "200" }, 1);
 *
 * Rendering writes, per family in registration order, a "# HELP" and a
 * "# TYPE" line and then its series in creation order; label values are
 * escaped (backslash, double quote, newline), histogram buckets are
 * cumulative with an "le" label ending in "+Inf", then _sum and _count.
 *
 * Thread-safety: every function may be called from any thread at any
 * time, except metrics_registry_free(). Updates of different families never
 * contend; each family has its own mutex.
 *
 * Costs: an update is a hash lookup of its label values (one small
 * allocation to build the key when the family has labels) under the
 * family's mutex, plus, on a series' first use, copies of its values. A
 * histogram update adds a linear scan of its bucket bounds. Rendering is
 * linear in the number of series and buckets; it holds one family's mutex
 * at a time.
 */
#ifndef PLATEOP_METRICS_H
#define PLATEOP_METRICS_H

#include <stddef.h>

#include "err.h"
#include "strbuf.h"

enum metrics_type {
    METRICS_COUNTER,     /* only goes up (metrics_add with delta >= 0) */
    METRICS_GAUGE,       /* any value (metrics_set, metrics_add) */
    METRICS_HISTOGRAM,   /* observations counted into buckets (metrics_observe) */
};

/* What metrics_register() needs; every string and array is copied. */
struct metrics_desc {
    enum metrics_type type;
    const char *name;            /* [a-zA-Z_:][a-zA-Z0-9_:]*; unique in the registry */
    const char *help;            /* one line of text (escaped when rendered) */
    const char *const *labels;   /* NULL-terminated label names, or NULL for none;
                                    [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix, no "le"
                                    in a histogram, no repeats */
    const double *buckets;       /* histogram: finite upper bounds, strictly
                                    increasing; the +Inf bucket is implied */
    size_t nbuckets;
};

struct metrics_registry;
struct metrics_family;

/* A new empty registry, or NULL with e when out of memory. */
struct metrics_registry *metrics_registry_new(struct err *e);

/* Frees the registry and its families. Safe on NULL. No other call may be in flight. */
void metrics_registry_free(struct metrics_registry *r);

/*
 * Adds a family described by d. Returns it (owned by the registry, valid
 * until metrics_registry_free()), or NULL with e for an invalid name,
 * label or bucket list, a name already registered, or no memory.
 */
struct metrics_family *metrics_register(struct metrics_registry *r, const struct metrics_desc *d,
                                        struct err *e);

/*
 * Updates the series with label values `values` (one string per label
 * name, in the order of the description; NULL for a family without
 * labels). Values are copied when the series is created; any UTF-8 text is
 * fine, including quotes and newlines.
 *
 * metrics_add: a counter or gauge goes up by delta (a counter refuses a
 *   negative or NaN delta).
 * metrics_set: a gauge takes value; so does a counter that mirrors a count
 *   kept elsewhere (the caller then never sets it lower).
 * metrics_observe: a histogram counts value into its bucket and adds it to
 *   the sum.
 *
 * Each returns 0, or -1 on misuse (wrong type, refused value, a NULL value
 * for a labelled family) or when out of memory; the update is then lost.
 * Updates are never fatal, so callers may ignore the result.
 */
int metrics_add(struct metrics_family *f, const char *const *values, double delta);
int metrics_set(struct metrics_family *f, const char *const *values, double value);
int metrics_observe(struct metrics_family *f, const char *const *values, double value);

/*
 * Forgets every series of a labelled family (a family without labels goes
 * back to 0), for gauges recomputed from scratch before each rendering.
 * O(series).
 */
void metrics_reset(struct metrics_family *f);

/*
 * Appends the exposition text of every family to out. Returns 0, or -1
 * with e when out of memory (out then holds a partial text).
 */
int metrics_render(struct metrics_registry *r, struct strbuf *out, struct err *e);

/*
 * Appends v as the exposition format writes a number: the shortest
 * decimal that reads back as exactly v, or "+Inf", "-Inf", "NaN".
 * Returns 0, or -1 when out of memory.
 */
int metrics_add_number(struct strbuf *sb, double v);

/* The Content-Type of metrics_render()'s text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
