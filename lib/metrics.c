/* metrics: a Prometheus registry rendered as exposition text 0.0.4; see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

/* One tuple of label values and its numbers. */
struct series {
    char **values;          /* nlabels copies */
    double value;           /* counter, gauge */
    double sum;             /* histogram */
    uint64_t count;         /* histogram: observations */
    uint64_t *buckets;      /* histogram: nbuckets + 1 per-bucket (not cumulative) counts */
};

struct metrics_family {
    enum metrics_type type;
    char *name;
    char *help;
    char **labels;
    size_t nlabels;
    double *bounds;
    size_t nbounds;

    pthread_mutex_t lock;   /* guards everything below */
    struct strmap index;    /* key of the label values -> struct series */
    struct series **series; /* in creation order */
    size_t nseries, cap;

    struct metrics_family *next;
};

struct metrics_registry {
    pthread_mutex_t lock;   /* guards the list */
    struct metrics_family *head, **tail;
};

static const char *const type_names[] = {
    [METRICS_COUNTER] = "counter",
    [METRICS_GAUGE] = "gauge",
    [METRICS_HISTOGRAM] = "histogram",
};

struct metrics_registry *metrics_registry_new(struct err *e)
{
    struct metrics_registry *r = calloc(1, sizeof(*r));

    if (!r) {
        err_set(e, ENOMEM, "metrics registry: out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->tail = &r->head;
    return r;
}

static void series_free(struct series *s, size_t nlabels)
{
    size_t i;

    if (!s)
        return;
    for (i = 0; s->values && i < nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s);
}

/* Drops every series. Caller holds f->lock (or owns f alone). */
static void drop_series(struct metrics_family *f)
{
    size_t i;

    strmap_clear(&f->index, NULL);
    for (i = 0; i < f->nseries; i++)
        series_free(f->series[i], f->nlabels);
    f->nseries = 0;
}

static void family_free(struct metrics_family *f)
{
    size_t i;

    if (!f)
        return;
    drop_series(f);
    free(f->series);
    for (i = 0; f->labels && i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->labels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void metrics_registry_free(struct metrics_registry *r)
{
    struct metrics_family *f, *next;

    if (!r)
        return;
    for (f = r->head; f; f = next) {
        next = f->next;
        family_free(f);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- registration ------------------------------------------------------ */

static int name_char(char c, int first, int colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
        return 1;
    return !first && c >= '0' && c <= '9';
}

/* Whether s is a metric name (colon) or a label name (no colon). */
static int valid_name(const char *s, int colon)
{
    const char *p;

    if (!s || !*s)
        return 0;
    for (p = s; *p; p++)
        if (!name_char(*p, p == s, colon))
            return 0;
    return 1;
}

static int check_labels(const struct metrics_desc *d, size_t *n, struct err *e)
{
    size_t i, j;

    for (i = 0; d->labels && d->labels[i]; i++) {
        const char *l = d->labels[i];

        if (!valid_name(l, 0) || strncmp(l, "__", 2) == 0)
            return err_set(e, EINVAL, "metric %s: invalid label name \"%s\"", d->name, l);
        if (d->type == METRICS_HISTOGRAM && strcmp(l, "le") == 0)
            return err_set(e, EINVAL, "metric %s: a histogram cannot have label \"le\"",
                           d->name);
        for (j = 0; j < i; j++)
            if (strcmp(d->labels[j], l) == 0)
                return err_set(e, EINVAL, "metric %s: label \"%s\" twice", d->name, l);
    }
    *n = i;
    return 0;
}

static int check_desc(const struct metrics_desc *d, size_t *nlabels, struct err *e)
{
    size_t i;

    if ((unsigned)d->type > METRICS_HISTOGRAM)
        return err_set(e, EINVAL, "metric %s: unknown type", d->name ? d->name : "?");
    if (!valid_name(d->name, 1))
        return err_set(e, EINVAL, "invalid metric name \"%s\"", d->name ? d->name : "");
    if (check_labels(d, nlabels, e) < 0)
        return -1;
    if (d->type != METRICS_HISTOGRAM)
        return 0;
    if (d->nbuckets && !d->buckets)
        return err_set(e, EINVAL, "metric %s: no bucket bounds", d->name);
    for (i = 0; i < d->nbuckets; i++)
        if (!isfinite(d->buckets[i]) || (i > 0 && d->buckets[i] <= d->buckets[i - 1]))
            return err_set(e, EINVAL,
                           "metric %s: bucket bounds must be finite and strictly increasing",
                           d->name);
    return 0;
}

static struct metrics_family *family_new(const struct metrics_desc *d, size_t nlabels)
{
    struct metrics_family *f = calloc(1, sizeof(*f));
    size_t i;

    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->type = d->type;
    f->nlabels = nlabels;
    f->name = strdup(d->name);
    f->help = strdup(d->help ? d->help : "");
    f->labels = calloc(nlabels ? nlabels : 1, sizeof(*f->labels));
    if (!f->name || !f->help || !f->labels)
        goto fail;
    for (i = 0; i < nlabels; i++)
        if (!(f->labels[i] = strdup(d->labels[i])))
            goto fail;
    if (d->type == METRICS_HISTOGRAM) {
        f->nbounds = d->nbuckets;
        f->bounds = malloc(sizeof(*f->bounds) * (d->nbuckets ? d->nbuckets : 1));
        if (!f->bounds)
            goto fail;
        if (d->nbuckets)
            memcpy(f->bounds, d->buckets, sizeof(*f->bounds) * d->nbuckets);
    }
    return f;
fail:
    family_free(f);
    return NULL;
}

static struct series *get_series(struct metrics_family *f, const char *const *values);

struct metrics_family *metrics_register(struct metrics_registry *r, const struct metrics_desc *d,
                                        struct err *e)
{
    struct metrics_family *f = NULL, *g;
    size_t nlabels = 0;

    if (check_desc(d, &nlabels, e) < 0)
        return NULL;
    f = family_new(d, nlabels);
    /* A family without labels shows its one series from the start. */
    if (!f || (nlabels == 0 && !get_series(f, NULL))) {
        family_free(f);
        err_set(e, ENOMEM, "metric %s: out of memory", d->name);
        return NULL;
    }
    pthread_mutex_lock(&r->lock);
    for (g = r->head; g && strcmp(g->name, f->name) != 0; g = g->next)
        ;
    if (!g) {
        *r->tail = f;
        r->tail = &f->next;
    }
    pthread_mutex_unlock(&r->lock);
    if (g) {
        err_set(e, EINVAL, "metric %s registered twice", d->name);
        family_free(f);
        return NULL;
    }
    return f;
}

/* ---- updates ----------------------------------------------------------- */

/* The index key of a tuple: each value prefixed by its length, so no separator can clash. */
static int series_key(const struct metrics_family *f, const char *const *values,
                      struct strbuf *key)
{
    size_t i;

    for (i = 0; i < f->nlabels; i++) {
        if (!values || !values[i])
            return -1;
        if (strbuf_addf(key, "%zu:", strlen(values[i])) < 0 || strbuf_adds(key, values[i]) < 0)
            return -1;
    }
    return 0;
}

static struct series *series_new(const struct metrics_family *f, const char *const *values)
{
    struct series *s = calloc(1, sizeof(*s));
    size_t i;

    if (!s)
        return NULL;
    s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof(*s->values));
    if (!s->values)
        goto fail;
    for (i = 0; i < f->nlabels; i++)
        if (!(s->values[i] = strdup(values[i])))
            goto fail;
    if (f->type == METRICS_HISTOGRAM && !(s->buckets = calloc(f->nbounds + 1, sizeof(uint64_t))))
        goto fail;
    return s;
fail:
    series_free(s, f->nlabels);
    return NULL;
}

/* The series of values, created on first use. Caller holds f->lock. NULL on misuse or no memory. */
static struct series *get_series(struct metrics_family *f, const char *const *values)
{
    struct strbuf key = STRBUF_INIT;
    struct series *s = NULL, **grown;

    if (series_key(f, values, &key) < 0)
        goto out;
    s = strmap_get(&f->index, key.buf);
    if (s)
        goto out;
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;

        grown = realloc(f->series, cap * sizeof(*grown));
        if (!grown)
            goto out;
        f->series = grown;
        f->cap = cap;
    }
    s = series_new(f, values);
    if (s && strmap_put(&f->index, key.buf, s, NULL) < 0) {
        series_free(s, f->nlabels);
        s = NULL;
    }
    if (s)
        f->series[f->nseries++] = s;
out:
    strbuf_release(&key);
    return s;
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

/* Histograms take observations only; counters never go down by an add. */
static int allowed(const struct metrics_family *f, enum op op, double v)
{
    if (op == OP_OBSERVE || f->type == METRICS_HISTOGRAM)
        return op == OP_OBSERVE && f->type == METRICS_HISTOGRAM;
    return !(op == OP_ADD && f->type == METRICS_COUNTER && !(v >= 0));
}

static int update(struct metrics_family *f, const char *const *values, enum op op, double v)
{
    struct series *s;
    size_t i;
    int rc = -1;

    if (!allowed(f, op, v))
        return -1;
    pthread_mutex_lock(&f->lock);
    s = get_series(f, values);
    if (!s)
        goto out;
    if (op == OP_ADD) {
        s->value += v;
    } else if (op == OP_SET) {
        s->value = v;
    } else {
        /* Bucket i counts bounds[i-1] < v <= bounds[i]; NaN lands in +Inf only. */
        for (i = 0; i < f->nbounds && !(v <= f->bounds[i]); i++)
            ;
        s->buckets[i]++;
        s->count++;
        s->sum += v;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int metrics_add(struct metrics_family *f, const char *const *values, double delta)
{
    return update(f, values, OP_ADD, delta);
}

int metrics_set(struct metrics_family *f, const char *const *values, double value)
{
    return update(f, values, OP_SET, value);
}

int metrics_observe(struct metrics_family *f, const char *const *values, double value)
{
    return update(f, values, OP_OBSERVE, value);
}

void metrics_reset(struct metrics_family *f)
{
    pthread_mutex_lock(&f->lock);
    drop_series(f);
    if (f->nlabels == 0)
        get_series(f, NULL);
    pthread_mutex_unlock(&f->lock);
}

/* ---- rendering --------------------------------------------------------- */

int metrics_add_number(struct strbuf *sb, double v)
{
    char buf[32];
    int prec;

    if (isnan(v))
        return strbuf_adds(sb, "NaN");
    if (isinf(v))
        return strbuf_adds(sb, v > 0 ? "+Inf" : "-Inf");
    /* The fewest digits that read back exactly: 0.1 stays "0.1", not 0.10000000000000001. */
    for (prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return strbuf_adds(sb, buf);
}

/* Appends s with the given characters escaped: backslash and newline always, '"' if quote. */
static int add_escaped(struct strbuf *sb, const char *s, int quote)
{
    int rc = 0;

    for (; *s && rc == 0; s++) {
        if (*s == '\\')
            rc = strbuf_adds(sb, "\\\\");
        else if (*s == '\n')
            rc = strbuf_adds(sb, "\\n");
        else if (*s == '"' && quote)
            rc = strbuf_adds(sb, "\\\"");
        else
            rc = strbuf_addch(sb, *s);
    }
    return rc;
}

/*
 * One sample line: name+suffix{labels[,le="..."]} value. le is NULL
 * except for histogram buckets.
 */
static int add_sample(struct strbuf *sb, const struct metrics_family *f, const struct series *s,
                      const char *suffix, const char *le, double v)
{
    size_t i;
    int rc = strbuf_addf(sb, "%s%s", f->name, suffix);

    if (f->nlabels || le)
        rc |= strbuf_addch(sb, '{');
    for (i = 0; i < f->nlabels; i++) {
        rc |= strbuf_addf(sb, "%s%s=\"", i ? "," : "", f->labels[i]);
        rc |= add_escaped(sb, s->values[i], 1);
        rc |= strbuf_addch(sb, '"');
    }
    if (le)
        rc |= strbuf_addf(sb, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (f->nlabels || le)
        rc |= strbuf_addch(sb, '}');
    rc |= strbuf_addch(sb, ' ');
    rc |= metrics_add_number(sb, v);
    rc |= strbuf_addch(sb, '\n');
    return rc ? -1 : 0;
}

static int add_histogram(struct strbuf *sb, const struct metrics_family *f,
                         const struct series *s)
{
    struct strbuf le = STRBUF_INIT;
    uint64_t cumulative = 0;
    size_t i;
    int rc = 0;

    for (i = 0; i <= f->nbounds && rc == 0; i++) {
        cumulative += s->buckets[i];
        strbuf_reset(&le);
        rc = i < f->nbounds ? metrics_add_number(&le, f->bounds[i]) : strbuf_adds(&le, "+Inf");
        if (rc == 0)
            rc = add_sample(sb, f, s, "_bucket", le.buf, (double)cumulative);
    }
    if (rc == 0)
        rc = add_sample(sb, f, s, "_sum", NULL, s->sum);
    if (rc == 0)
        rc = add_sample(sb, f, s, "_count", NULL, (double)s->count);
    strbuf_release(&le);
    return rc;
}

static int add_family(struct strbuf *sb, struct metrics_family *f)
{
    size_t i;
    int rc;

    pthread_mutex_lock(&f->lock);
    rc = strbuf_addf(sb, "# HELP %s ", f->name);
    rc |= add_escaped(sb, f->help, 0);
    rc |= strbuf_addf(sb, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (i = 0; i < f->nseries && rc == 0; i++)
        rc = f->type == METRICS_HISTOGRAM ? add_histogram(sb, f, f->series[i])
                                          : add_sample(sb, f, f->series[i], "", NULL,
                                                       f->series[i]->value);
    pthread_mutex_unlock(&f->lock);
    return rc ? -1 : 0;
}

int metrics_render(struct metrics_registry *r, struct strbuf *out, struct err *e)
{
    struct metrics_family *f;
    int rc = 0;

    pthread_mutex_lock(&r->lock);
    for (f = r->head; f && rc == 0; f = f->next)
        rc = add_family(out, f);
    pthread_mutex_unlock(&r->lock);
    if (rc < 0)
        err_set(e, ENOMEM, "render metrics: out of memory");
    return rc;
}
