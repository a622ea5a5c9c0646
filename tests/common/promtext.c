/* promtext: a strict Prometheus text format (0.0.4) parser for tests; see promtext.h. */
#include "promtext.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct label {
    char *name;
    char *value;    /* unescaped */
};

/* A sample head: name and labels, as read from a line or a query. */
struct head {
    struct strbuf name;
    struct label *labels;
    size_t nlabels;
};

/* What the histogram check needs of each _bucket, _sum and _count sample. */
struct hpoint {
    size_t family;
    char *group;    /* canonical series of the base name without "le" */
    int kind;       /* 0 bucket, 1 sum, 2 count */
    double le;
    double value;
    size_t line;
};

struct parser {
    const char *p, *end;    /* the current line's remaining text */
    size_t line;
    struct promtext *out;
    long last_family;       /* family of the previous sample, -1 before any */
    char *seen_samples;     /* per family: had samples (grown with families) */
    struct hpoint *hp;
    size_t nhp;
};

static void head_release(struct head *h)
{
    size_t i;

    for (i = 0; i < h->nlabels; i++) {
        free(h->labels[i].name);
        free(h->labels[i].value);
    }
    free(h->labels);
    strbuf_release(&h->name);
    memset(h, 0, sizeof(*h));
}

/* Makes room for element n of the array *arr (of elements of size bytes). Returns 0 or -1. */
static int grow(void *arr, size_t n, size_t size)
{
    void **p = arr, *grown = realloc(*p, (n + 1) * size);

    if (!grown)
        return -1;
    *p = grown;
    return 0;
}

static int is_name_char(char c, int first, int colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
        return 1;
    return !first && c >= '0' && c <= '9';
}

static void skip_blanks(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

/* Reads a metric name (colon allowed) or a label name into out. */
static int read_name(struct parser *ps, int colon, struct strbuf *out)
{
    const char *start = ps->p;

    while (ps->p < ps->end && is_name_char(*ps->p, ps->p == start, colon))
        ps->p++;
    return ps->p == start ? -1 : strbuf_add(out, start, (size_t)(ps->p - start));
}

/* Reads a double-quoted label value, undoing the three escapes the format has. */
static int read_quoted(struct parser *ps, struct strbuf *out, struct err *e)
{
    if (ps->p >= ps->end || *ps->p != '"')
        return err_set(e, EINVAL, "line %zu: label value must be quoted", ps->line);
    for (ps->p++; ps->p < ps->end && *ps->p != '"'; ps->p++) {
        char c = *ps->p;

        if (c == '\\') {
            if (++ps->p >= ps->end)
                break;
            c = *ps->p == 'n' ? '\n' : *ps->p;
            if (*ps->p != 'n' && *ps->p != '\\' && *ps->p != '"')
                return err_set(e, EINVAL, "line %zu: invalid escape \\%c in a label value",
                               ps->line, *ps->p);
        }
        if (strbuf_addch(out, c) < 0)
            return err_set(e, ENOMEM, "out of memory");
    }
    if (ps->p >= ps->end)
        return err_set(e, EINVAL, "line %zu: unterminated label value", ps->line);
    ps->p++;
    return 0;
}

static int read_label(struct parser *ps, struct head *h, struct err *e)
{
    struct strbuf name = STRBUF_INIT, value = STRBUF_INIT;
    size_t i;
    int rc = -1;

    if (read_name(ps, 0, &name) < 0) {
        err_set(e, EINVAL, "line %zu: invalid label name", ps->line);
        goto out;
    }
    for (i = 0; i < h->nlabels; i++)
        if (strcmp(h->labels[i].name, name.buf) == 0) {
            err_set(e, EINVAL, "line %zu: label %s twice", ps->line, name.buf);
            goto out;
        }
    skip_blanks(ps);
    if (ps->p >= ps->end || *ps->p++ != '=') {
        err_set(e, EINVAL, "line %zu: '=' expected after label %s", ps->line, name.buf);
        goto out;
    }
    skip_blanks(ps);
    if (read_quoted(ps, &value, e) < 0)
        goto out;
    if (grow(&h->labels, h->nlabels, sizeof(*h->labels)) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    h->labels[h->nlabels].name = strbuf_detach(&name, NULL);
    h->labels[h->nlabels].value = strbuf_detach(&value, NULL);
    h->nlabels++;
    rc = 0;
out:
    strbuf_release(&name);
    strbuf_release(&value);
    return rc;
}

/* name, then optionally {label="value",...} (a trailing comma is allowed). */
static int read_head(struct parser *ps, struct head *h, struct err *e)
{
    const char *after_name;

    if (read_name(ps, 1, &h->name) < 0)
        return err_set(e, EINVAL, "line %zu: invalid metric name", ps->line);
    after_name = ps->p;
    skip_blanks(ps);
    if (ps->p >= ps->end || *ps->p != '{') {
        ps->p = after_name;   /* the blanks separate the value */
        return 0;
    }
    ps->p++;
    for (;;) {
        skip_blanks(ps);
        if (ps->p < ps->end && *ps->p == '}')
            break;
        if (read_label(ps, h, e) < 0)
            return -1;
        skip_blanks(ps);
        if (ps->p < ps->end && *ps->p == ',')
            ps->p++;
        else if (ps->p >= ps->end || *ps->p != '}')
            return err_set(e, EINVAL, "line %zu: ',' or '}' expected", ps->line);
    }
    ps->p++;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* Canonical name{k="v",...} of h with its labels sorted, leaving out label `skip` (or none). */
static int canonical(struct head *h, const char *name, const char *skip, struct strbuf *out)
{
    size_t i, n = 0;
    int rc = strbuf_adds(out, name);

    if (h->nlabels > 1)
        qsort(h->labels, h->nlabels, sizeof(*h->labels), by_name);
    for (i = 0; i < h->nlabels; i++) {
        const char *v;

        if (skip && strcmp(h->labels[i].name, skip) == 0)
            continue;
        rc |= strbuf_addf(out, "%s%s=\"", n++ ? "," : "{", h->labels[i].name);
        for (v = h->labels[i].value; *v; v++)
            rc |= *v == '\n' ? strbuf_adds(out, "\\n")
                  : *v == '\\' || *v == '"' ? strbuf_addf(out, "\\%c", *v)
                                            : strbuf_addch(out, *v);
        rc |= strbuf_addch(out, '"');
    }
    if (n)
        rc |= strbuf_addch(out, '}');
    return rc ? -1 : 0;
}

/* A Go-style float: [+-]digits[.digits][e[+-]digits], or +Inf, -Inf, Inf, NaN. */
static int parse_number(const char *s, size_t len, double *v)
{
    char buf[64], *endp;
    size_t i = 0, digits = 0;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!strcmp(buf, "+Inf") || !strcmp(buf, "Inf") || !strcmp(buf, "-Inf")) {
        *v = buf[0] == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcmp(buf, "NaN")) {
        *v = NAN;
        return 0;
    }
    if (buf[i] == '+' || buf[i] == '-')
        i++;
    for (; buf[i] >= '0' && buf[i] <= '9'; i++)
        digits++;
    if (buf[i] == '.')
        for (i++; buf[i] >= '0' && buf[i] <= '9'; i++)
            digits++;
    if (!digits)
        return -1;
    if (buf[i] == 'e' || buf[i] == 'E') {
        i++;
        if (buf[i] == '+' || buf[i] == '-')
            i++;
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        while (buf[i] >= '0' && buf[i] <= '9')
            i++;
    }
    if (buf[i])
        return -1;
    *v = strtod(buf, &endp);
    return *endp ? -1 : 0;
}

/* The next blank-separated token of the line. */
static size_t next_token(struct parser *ps, const char **tok)
{
    skip_blanks(ps);
    *tok = ps->p;
    while (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t')
        ps->p++;
    return (size_t)(ps->p - *tok);
}

/* ---- families ---------------------------------------------------------- */

static long find_family(const struct promtext *p, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < p->nfamilies; i++)
        if (strlen(p->families[i].name) == len && strncmp(p->families[i].name, name, len) == 0)
            return (long)i;
    return -1;
}

static long add_family(struct parser *ps, const char *name, size_t len, struct err *e)
{
    struct promtext *p = ps->out;
    if (grow(&p->families, p->nfamilies, sizeof(*p->families)) < 0
        || grow(&ps->seen_samples, p->nfamilies, 1) < 0)
        return err_set(e, ENOMEM, "out of memory");
    memset(&p->families[p->nfamilies], 0, sizeof(*p->families));
    ps->seen_samples[p->nfamilies] = 0;
    p->families[p->nfamilies].name = strndup(name, len);
    p->families[p->nfamilies].type = strdup("untyped");
    if (!p->families[p->nfamilies].name || !p->families[p->nfamilies].type) {
        free(p->families[p->nfamilies].name);
        free(p->families[p->nfamilies].type);
        return err_set(e, ENOMEM, "out of memory");
    }
    return (long)p->nfamilies++;
}

static int has_suffix(const char *s, const char *suffix, size_t *base)
{
    size_t n = strlen(s), m = strlen(suffix);

    if (n <= m || strcmp(s + n - m, suffix) != 0)
        return 0;
    *base = n - m;
    return 1;
}

/*
 * The family a sample named name belongs to: a histogram's or summary's
 * base for its suffixed samples, else its own (created untyped). *kind
 * gets 0 bucket, 1 sum, 2 count for histogram samples, else -1.
 */
static long family_of(struct parser *ps, const char *name, int *kind, struct err *e)
{
    static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
    size_t base, k;
    long f;

    *kind = -1;
    for (k = 0; k < 3; k++) {
        if (!has_suffix(name, suffixes[k], &base))
            continue;
        f = find_family(ps->out, name, base);
        if (f >= 0 && strcmp(ps->out->families[f].type, "histogram") == 0) {
            *kind = (int)k;
            return f;
        }
        if (f >= 0 && k > 0 && strcmp(ps->out->families[f].type, "summary") == 0)
            return f;
    }
    f = find_family(ps->out, name, strlen(name));
    return f >= 0 ? f : add_family(ps, name, strlen(name), e);
}

/* "# HELP name text" or "# TYPE name type"; other comments are ignored. */
static int parse_comment(struct parser *ps, struct err *e)
{
    static const char *const types[] = { "counter", "gauge", "histogram", "summary", "untyped",
                                         NULL };
    struct promtext_family *fam;
    const char *kw, *name, *t;
    size_t kwlen, namelen, tlen, i;
    int help;
    long f;

    ps->p++;
    kwlen = next_token(ps, &kw);
    help = kwlen == 4 && strncmp(kw, "HELP", 4) == 0;
    if (!help && !(kwlen == 4 && strncmp(kw, "TYPE", 4) == 0))
        return 0;
    namelen = next_token(ps, &name);
    for (i = 0; i < namelen; i++)
        if (!is_name_char(name[i], i == 0, 1))
            namelen = 0;
    if (!namelen)
        return err_set(e, EINVAL, "line %zu: invalid metric name after %.4s", ps->line, kw);
    f = find_family(ps->out, name, namelen);
    if (f < 0 && (f = add_family(ps, name, namelen, e)) < 0)
        return -1;
    fam = &ps->out->families[f];
    if (ps->seen_samples[f])
        return err_set(e, EINVAL, "line %zu: %.4s of %s after its samples", ps->line, kw,
                       fam->name);
    if (help) {
        struct strbuf text = STRBUF_INIT;

        if (fam->help)
            return err_set(e, EINVAL, "line %zu: second HELP for %s", ps->line, fam->name);
        if (ps->p < ps->end)
            ps->p++;    /* the one blank after the name */
        for (; ps->p < ps->end; ps->p++) {
            char c = *ps->p;

            if (c == '\\' && ps->p + 1 < ps->end && (ps->p[1] == 'n' || ps->p[1] == '\\'))
                c = *++ps->p == 'n' ? '\n' : '\\';
            if (strbuf_addch(&text, c) < 0) {
                strbuf_release(&text);
                return err_set(e, ENOMEM, "out of memory");
            }
        }
        fam->help = strbuf_detach(&text, NULL);
        return fam->help ? 0 : err_set(e, ENOMEM, "out of memory");
    }
    tlen = next_token(ps, &t);
    for (i = 0; types[i] && !(strlen(types[i]) == tlen && strncmp(types[i], t, tlen) == 0); i++)
        ;
    if (!types[i])
        return err_set(e, EINVAL, "line %zu: unknown type \"%.*s\"", ps->line, (int)tlen, t);
    if (strcmp(fam->type, "untyped") != 0)
        return err_set(e, EINVAL, "line %zu: second TYPE for %s", ps->line, fam->name);
    free(fam->type);
    fam->type = strdup(types[i]);
    return fam->type ? 0 : err_set(e, ENOMEM, "out of memory");
}

/* ---- samples ----------------------------------------------------------- */

static int add_hpoint(struct parser *ps, size_t family, struct head *h, int kind, double value,
                      struct err *e)
{
    struct strbuf group = STRBUF_INIT;
    struct hpoint *hp;
    double le = 0;
    size_t i;

    for (i = 0; kind == 0 && i < h->nlabels && strcmp(h->labels[i].name, "le") != 0; i++)
        ;
    if (kind == 0 && (i == h->nlabels
                      || parse_number(h->labels[i].value, strlen(h->labels[i].value), &le) < 0))
        return err_set(e, EINVAL, "line %zu: bucket without a numeric le label", ps->line);
    if (grow(&ps->hp, ps->nhp, sizeof(*ps->hp)) < 0
        || canonical(h, ps->out->families[family].name, "le", &group) < 0) {
        strbuf_release(&group);
        return err_set(e, ENOMEM, "out of memory");
    }
    hp = &ps->hp[ps->nhp++];
    hp->family = family;
    hp->group = strbuf_detach(&group, NULL);
    hp->kind = kind;
    hp->le = le;
    hp->value = value;
    hp->line = ps->line;
    return 0;
}

static int parse_sample(struct parser *ps, struct err *e)
{
    struct promtext *p = ps->out;
    struct promtext_sample *s;
    struct strbuf series = STRBUF_INIT;
    struct head h = { STRBUF_INIT, NULL, 0 };
    const char *tok;
    size_t len, i;
    double value, ts;
    int kind, rc = -1;
    long f;

    if (read_head(ps, &h, e) < 0)
        goto out;
    if (ps->p < ps->end && *ps->p != ' ' && *ps->p != '\t') {
        err_set(e, EINVAL, "line %zu: blank expected after the series", ps->line);
        goto out;
    }
    len = next_token(ps, &tok);
    if (parse_number(tok, len, &value) < 0) {
        err_set(e, EINVAL, "line %zu: invalid value \"%.*s\"", ps->line, (int)len, tok);
        goto out;
    }
    len = next_token(ps, &tok);
    if (len && (parse_number(tok, len, &ts) < 0 || ts != floor(ts))) {
        err_set(e, EINVAL, "line %zu: invalid timestamp \"%.*s\"", ps->line, (int)len, tok);
        goto out;
    }
    if (next_token(ps, &tok)) {
        err_set(e, EINVAL, "line %zu: unexpected text after the value", ps->line);
        goto out;
    }
    if ((f = family_of(ps, h.name.buf, &kind, e)) < 0)
        goto out;
    if (f != ps->last_family && ps->seen_samples[f]) {
        err_set(e, EINVAL, "line %zu: samples of %s are not contiguous", ps->line,
                p->families[f].name);
        goto out;
    }
    if (kind < 0 && !strcmp(p->families[f].type, "histogram")) {
        err_set(e, EINVAL, "line %zu: histogram sample %s without _bucket, _sum or _count",
                ps->line, h.name.buf);
        goto out;
    }
    if (!strcmp(p->families[f].type, "counter") && !(value >= 0)) {
        err_set(e, EINVAL, "line %zu: counter %s is negative", ps->line, h.name.buf);
        goto out;
    }
    if (kind >= 0 && add_hpoint(ps, (size_t)f, &h, kind, value, e) < 0)
        goto out;
    if (canonical(&h, h.name.buf, NULL, &series) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    for (i = 0; i < p->nsamples; i++)
        if (strcmp(p->samples[i].series, series.buf) == 0) {
            err_set(e, EINVAL, "line %zu: series %s repeated", ps->line, series.buf);
            goto out;
        }
    if (grow(&p->samples, p->nsamples, sizeof(*p->samples)) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    s = &p->samples[p->nsamples];
    s->name = strbuf_detach(&h.name, NULL);
    s->series = strbuf_detach(&series, NULL);
    s->family = (size_t)f;
    s->value = value;
    p->nsamples++;
    ps->seen_samples[f] = 1;
    ps->last_family = f;
    rc = 0;
out:
    strbuf_release(&series);
    head_release(&h);
    return rc;
}

/*
 * Every series of every histogram: buckets in increasing le order with
 * non-decreasing counts, ending in +Inf, equal to _count; _sum present.
 */
static int check_histograms(const struct parser *ps, struct err *e)
{
    size_t i, j;

    for (i = 0; i < ps->nhp; i++) {
        const struct hpoint *a = &ps->hp[i], *last = NULL;
        int nsum = 0, ncount = 0;
        double count = 0;

        for (j = 0; j < i; j++)
            if (ps->hp[j].family == a->family && !strcmp(ps->hp[j].group, a->group))
                break;
        if (j < i)
            continue;   /* group already checked */
        for (j = i; j < ps->nhp; j++) {
            const struct hpoint *b = &ps->hp[j];

            if (b->family != a->family || strcmp(b->group, a->group) != 0)
                continue;
            if (b->kind == 1) {
                nsum++;
            } else if (b->kind == 2) {
                ncount++;
                count = b->value;
            } else {
                if (last && (b->le <= last->le || b->value < last->value))
                    return err_set(e, EINVAL, "line %zu: buckets of %s out of order",
                                   b->line, a->group);
                last = b;
            }
        }
        if (!last || !isinf(last->le))
            return err_set(e, EINVAL, "histogram %s has no le=\"+Inf\" bucket", a->group);
        if (nsum != 1 || ncount != 1)
            return err_set(e, EINVAL, "histogram %s needs one _sum and one _count", a->group);
        if (count != last->value)
            return err_set(e, EINVAL, "histogram %s: _count %g differs from the +Inf bucket %g",
                           a->group, count, last->value);
    }
    return 0;
}

int promtext_parse(const char *text, size_t len, struct promtext *out, struct err *e)
{
    struct parser ps = { .out = out, .last_family = -1 };
    const char *line = text, *end = text + len, *nl;
    size_t i;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (len && text[len - 1] != '\n') {
        err_set(e, EINVAL, "the text does not end with a newline");
        goto out;
    }
    for (; line < end; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(end - line));
        ps.p = line;
        ps.end = nl;
        ps.line++;
        if (memchr(line, '\0', (size_t)(nl - line))) {
            err_set(e, EINVAL, "line %zu: NUL byte", ps.line);
            goto out;
        }
        skip_blanks(&ps);
        if (ps.p == ps.end)
            continue;
        if ((*ps.p == '#' ? parse_comment(&ps, e) : parse_sample(&ps, e)) < 0)
            goto out;
    }
    rc = check_histograms(&ps, e);
out:
    for (i = 0; i < ps.nhp; i++)
        free(ps.hp[i].group);
    free(ps.hp);
    free(ps.seen_samples);
    if (rc < 0)
        promtext_release(out);
    return rc;
}

void promtext_release(struct promtext *p)
{
    size_t i;

    for (i = 0; i < p->nfamilies; i++) {
        free(p->families[i].name);
        free(p->families[i].type);
        free(p->families[i].help);
    }
    for (i = 0; i < p->nsamples; i++) {
        free(p->samples[i].name);
        free(p->samples[i].series);
    }
    free(p->families);
    free(p->samples);
    memset(p, 0, sizeof(*p));
}

int promtext_value(const struct promtext *p, const char *series, double *value)
{
    struct parser ps = { .p = series, .end = series + strlen(series), .line = 1 };
    struct head h = { STRBUF_INIT, NULL, 0 };
    struct strbuf want = STRBUF_INIT;
    size_t i;
    int rc = -1;

    if (read_head(&ps, &h, NULL) < 0 || (skip_blanks(&ps), ps.p != ps.end)
        || canonical(&h, h.name.buf, NULL, &want) < 0)
        goto out;
    for (i = 0; i < p->nsamples && rc < 0; i++)
        if (strcmp(p->samples[i].series, want.buf) == 0) {
            *value = p->samples[i].value;
            rc = 0;
        }
out:
    strbuf_release(&want);
    head_release(&h);
    return rc;
}

double promtext_get(const struct promtext *p, const char *series)
{
    double v;

    return promtext_value(p, series, &v) == 0 ? v : NAN;
}

double promtext_sum(const struct promtext *p, const char *name)
{
    double sum = 0;
    size_t i;

    for (i = 0; i < p->nsamples; i++)
        if (strcmp(p->samples[i].name, name) == 0)
            sum += p->samples[i].value;
    return sum;
}

const struct promtext_family *promtext_family(const struct promtext *p, const char *name)
{
    long f = find_family(p, name, strlen(name));

    return f < 0 ? NULL : &p->families[f];
}
