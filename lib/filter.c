/* filter: plate formats, well names and analysis filters; see filter.h. */
#include "filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static const struct filter_plate plates[] = {
    { 96, 8, 12 },
    { 384, 16, 24 },
    { 1536, 32, 48 },
};

#define LARGEST (&plates[sizeof(plates) / sizeof(plates[0]) - 1])

const struct filter_plate *filter_plate_get(int wells)
{
    size_t i;

    for (i = 0; i < sizeof(plates) / sizeof(plates[0]); i++)
        if (plates[i].wells == wells)
            return &plates[i];
    return NULL;
}

const struct filter_plate *filter_plate_fit(int row, int col)
{
    size_t i;

    for (i = 0; i < sizeof(plates) / sizeof(plates[0]); i++)
        if (row >= 0 && col >= 0 && row < plates[i].rows && col < plates[i].cols)
            return &plates[i];
    return NULL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int upper(char c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* Writes row letters (0 -> "A", 26 -> "AA") into out; returns their count. */
static size_t row_letters(int row, int lower, char *out)
{
    char base = lower ? 'a' : 'A';

    if (row < 26) {
        out[0] = (char)(base + row);
        return 1;
    }
    out[0] = (char)(base + row / 26 - 1);
    out[1] = (char)(base + row % 26);
    return 2;
}

size_t filter_well_name(int row, int col, int lower, char out[FILTER_WELL_NAME_MAX])
{
    size_t n;

    out[0] = '\0';
    if (row < 0 || col < 0 || row >= LARGEST->rows || col >= LARGEST->cols)
        return 0;
    n = row_letters(row, lower, out);
    out[n++] = (char)('0' + (col + 1) / 10);
    out[n++] = (char)('0' + (col + 1) % 10);
    out[n] = '\0';
    return n;
}

/* "rows A-P" for a plate, into out. */
static void plate_rows(const struct filter_plate *p, char out[16])
{
    char last[3] = { 0 };

    row_letters(p->rows - 1, 0, last);
    memcpy(out, "rows A-", 7);
    memcpy(out + 7, last, 3);
}

int filter_well_parse(const char *s, size_t len, const struct filter_plate *plate,
                      int *row, int *col, struct err *e)
{
    const struct filter_plate *p = plate ? plate : LARGEST;
    size_t i = 0, nletters, ndigits;
    int r = 0, c = 0;
    char rows[16];

    while (i < len && upper(s[i]) >= 'A' && upper(s[i]) <= 'Z')
        i++;
    nletters = i;
    while (i < len && is_digit(s[i]) && i - nletters < 4) {
        c = c * 10 + (s[i] - '0');
        i++;
    }
    ndigits = i - nletters;
    if (nletters == 0 || ndigits == 0 || i != len)
        return err_set(e, FILTER_ERR_SYNTAX,
                       "not a well name (expected row letters and a column number, e.g. C03)");
    plate_rows(p, rows);
    if (nletters > 2)
        return err_set(e, FILTER_ERR_SYNTAX, "row %.*s is outside a %d-well plate (%s)",
                       (int)nletters, s, p->wells, rows);
    r = upper(s[0]) - 'A';
    if (nletters == 2)
        r = 26 * (r + 1) + (upper(s[1]) - 'A');
    if (r >= p->rows)
        return err_set(e, FILTER_ERR_SYNTAX, "row %.*s is outside a %d-well plate (%s)",
                       (int)nletters, s, p->wells, rows);
    if (c < 1 || c > p->cols)
        return err_set(e, FILTER_ERR_SYNTAX,
                       "column %d is outside a %d-well plate (columns 1-%d)", c, p->wells,
                       p->cols);
    *row = r;
    *col = c - 1;
    return 0;
}

/*
 * Walking a comma-separated filter, token by token. A token is trimmed of
 * spaces; pos is the 1-based position of its first character (or of the
 * place where an empty token was found).
 */
struct tok {
    const char *s;
    size_t len;
    size_t pos;
};

struct toker {
    const char *text;
    size_t at;      /* where the next token starts */
    int done;
};

/* Whether text is NULL or only spaces: "no filter". */
static int blank(const char *text)
{
    if (!text)
        return 1;
    while (is_space(*text))
        text++;
    return *text == '\0';
}

/* Trims spaces from both ends of [s, s + len) and sets t. */
static void trim(struct tok *t, const char *text, size_t start, size_t end)
{
    while (start < end && is_space(text[start]))
        start++;
    while (end > start && is_space(text[end - 1]))
        end--;
    t->s = text + start;
    t->len = end - start;
    t->pos = start + 1;
}

static int next_tok(struct toker *tk, struct tok *t)
{
    const char *comma;
    size_t end;

    if (tk->done)
        return 0;
    comma = strchr(tk->text + tk->at, ',');
    end = comma ? (size_t)(comma - tk->text) : strlen(tk->text);
    trim(t, tk->text, tk->at, end);
    if (comma)
        tk->at = end + 1;
    else
        tk->done = 1;
    return 1;
}

/*
 * Fills e for a bad token: `what` filter "text": token "t" at position p:
 * <reason already in e->msg>. The filter text is shortened when long.
 */
static int tok_error(struct err *e, const char *what, const char *text, const struct tok *t)
{
    size_t tl = strlen(text);
    int show = tl > 80 ? 77 : (int)tl;
    const char *ell = tl > 80 ? "..." : "";
    int tshow = t->len > 60 ? 57 : (int)t->len;
    const char *tell = t->len > 60 ? "..." : "";

    if (t->len == 0)
        return err_prefix(e, "%s filter \"%.*s%s\": empty token at position %zu", what, show,
                          text, ell, t->pos);
    return err_prefix(e, "%s filter \"%.*s%s\": token \"%.*s%s\" at position %zu", what, show,
                      text, ell, tshow, t->s, tell, t->pos);
}

/* Splits a token at its first '-' into two trimmed halves; 0 if there is none. */
static int split_range(const struct tok *t, const char *text, struct tok *a, struct tok *b)
{
    const char *dash = memchr(t->s, '-', t->len);
    size_t start = (size_t)(t->s - text), mid, end = start + t->len;

    if (!dash)
        return 0;
    mid = (size_t)(dash - text);
    trim(a, text, start, mid);
    trim(b, text, mid + 1, end);
    return 1;
}

static void wells_set_range(struct filter_wells *f, int r1, int c1, int r2, int c2)
{
    int r, c, from, to;

    for (r = r1; r <= r2; r++) {
        from = r == r1 ? c1 : 0;
        to = r == r2 ? c2 : FILTER_MAX_COLS - 1;
        for (c = from; c <= to; c++)
            f->rows[r] |= (uint64_t)1 << c;
    }
}

int filter_wells_parse(struct filter_wells *f, const char *text,
                       const struct filter_plate *plate, struct err *e)
{
    struct toker tk = { text, 0, 0 };
    struct tok t, a, b, *bad;
    int r1, c1, r2, c2;
    char n1[FILTER_WELL_NAME_MAX], n2[FILTER_WELL_NAME_MAX];

    memset(f, 0, sizeof(*f));
    f->all = 1;
    if (blank(text))
        return 0;
    f->all = 0;
    while (next_tok(&tk, &t)) {
        bad = &t;
        if (t.len == 0) {
            err_clear(e);
            goto fail;
        }
        if (!split_range(&t, text, &a, &b)) {
            if (filter_well_parse(t.s, t.len, plate, &r1, &c1, e) < 0)
                goto fail;
            f->rows[r1] |= (uint64_t)1 << c1;
            continue;
        }
        bad = &a;
        if (a.len == 0 || b.len == 0) {
            err_set(e, FILTER_ERR_SYNTAX, "a range needs a well on each side of '-'");
            bad = &t;
            goto fail;
        }
        if (filter_well_parse(a.s, a.len, plate, &r1, &c1, e) < 0)
            goto fail;
        bad = &b;
        if (filter_well_parse(b.s, b.len, plate, &r2, &c2, e) < 0) {
            if (memchr(b.s, '-', b.len))
                err_set(e, FILTER_ERR_SYNTAX, "a range has one '-'");
            goto fail;
        }
        if (r2 < r1 || (r2 == r1 && c2 < c1)) {
            filter_well_name(r1, c1, 0, n1);
            filter_well_name(r2, c2, 0, n2);
            err_set(e, FILTER_ERR_SYNTAX,
                    "range runs backwards (%s comes after %s in row-major order)", n1, n2);
            bad = &t;
            goto fail;
        }
        wells_set_range(f, r1, c1, r2, c2);
    }
    return 0;
fail:
    tok_error(e, "well", text, bad);
    if (e && !e->code)
        e->code = FILTER_ERR_SYNTAX;
    memset(f, 0, sizeof(*f));
    f->all = 1;
    return -1;
}

int filter_wells_match(const struct filter_wells *f, int row, int col)
{
    if (f->all)
        return 1;
    if (row < 0 || col < 0 || row >= FILTER_MAX_ROWS || col >= FILTER_MAX_COLS)
        return 0;
    return (int)((f->rows[row] >> col) & 1);
}

size_t filter_wells_count(const struct filter_wells *f, const struct filter_plate *plate)
{
    size_t n = 0;
    int r, c;

    if (f->all)
        return (size_t)plate->wells;
    for (r = 0; r < plate->rows; r++)
        for (c = 0; c < plate->cols; c++)
            n += (f->rows[r] >> c) & 1;
    return n;
}

/* Parses a non-negative integer token. */
static int parse_int(const struct tok *t, int *out, struct err *e)
{
    size_t i;
    long v = 0;

    if (t->len > 0 && t->s[0] == '-')
        return err_set(e, FILTER_ERR_SYNTAX, "negative numbers are not allowed");
    for (i = 0; i < t->len; i++) {
        if (!is_digit(t->s[i]))
            return err_set(e, FILTER_ERR_SYNTAX, "not a number or a range (e.g. 1-4)");
        v = v * 10 + (t->s[i] - '0');
        if (v > FILTER_INT_MAX)
            return err_set(e, FILTER_ERR_SYNTAX, "number too large (at most %d)",
                           FILTER_INT_MAX);
    }
    if (t->len == 0)
        return err_set(e, FILTER_ERR_SYNTAX, "a range needs a number on each side of '-'");
    *out = (int)v;
    return 0;
}

static int range_cmp(const void *x, const void *y)
{
    const struct filter_range *a = x, *b = y;

    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts and merges overlapping or adjacent ranges in place. */
static void merge_ranges(struct filter_ints *f)
{
    size_t i, out = 0;

    if (f->n == 0)
        return;
    qsort(f->ranges, f->n, sizeof(f->ranges[0]), range_cmp);
    for (i = 1; i < f->n; i++) {
        if (f->ranges[i].lo <= f->ranges[out].hi + 1) {
            if (f->ranges[i].hi > f->ranges[out].hi)
                f->ranges[out].hi = f->ranges[i].hi;
        } else {
            f->ranges[++out] = f->ranges[i];
        }
    }
    f->n = out + 1;
}

int filter_ints_parse(struct filter_ints *f, const char *what, const char *text,
                      struct err *e)
{
    struct toker tk = { text, 0, 0 };
    struct tok t, a, b, *bad = &t;
    size_t cap = 0;
    int lo, hi;
    struct filter_range *nr;

    memset(f, 0, sizeof(*f));
    f->all = 1;
    if (blank(text))
        return 0;
    f->all = 0;
    while (next_tok(&tk, &t)) {
        bad = &t;
        if (t.len == 0) {
            err_clear(e);
            goto fail;
        }
        /* A leading '-' is a negative number, not a range with no start. */
        if (t.s[0] != '-' && split_range(&t, text, &a, &b)) {
            bad = &a;
            if (parse_int(&a, &lo, e) < 0)
                goto fail;
            bad = &b;
            if (parse_int(&b, &hi, e) < 0)
                goto fail;
            if (hi < lo) {
                err_set(e, FILTER_ERR_SYNTAX, "range runs backwards (%d > %d)", lo, hi);
                bad = &t;
                goto fail;
            }
        } else {
            if (parse_int(&t, &lo, e) < 0)
                goto fail;
            hi = lo;
        }
        if (f->n == cap) {
            cap = cap ? cap * 2 : 8;
            nr = realloc(f->ranges, cap * sizeof(*nr));
            if (!nr) {
                err_set(e, ENOMEM, "out of memory");
                filter_ints_release(f);
                return err_prefix(e, "%s filter", what);
            }
            f->ranges = nr;
        }
        f->ranges[f->n].lo = lo;
        f->ranges[f->n].hi = hi;
        f->n++;
    }
    merge_ranges(f);
    return 0;
fail:
    tok_error(e, what, text, bad);
    if (e && !e->code)
        e->code = FILTER_ERR_SYNTAX;
    filter_ints_release(f);
    return -1;
}

int filter_ints_match(const struct filter_ints *f, int v)
{
    size_t lo = 0, hi = f->n, mid;

    if (f->all)
        return 1;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (v < f->ranges[mid].lo)
            hi = mid;
        else if (v > f->ranges[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

void filter_ints_release(struct filter_ints *f)
{
    free(f->ranges);
    f->ranges = NULL;
    f->n = 0;
    f->all = 1;
}

int filter_dyes_parse(struct filter_dyes *f, const char *text, struct err *e)
{
    struct toker tk = { text, 0, 0 };
    struct tok t;
    size_t ntok = 1, i, j;
    const char *p;

    memset(f, 0, sizeof(*f));
    if (blank(text))
        return 0;
    for (p = text; *p; p++)
        ntok += *p == ',';
    f->text = strdup(text);
    f->names = calloc(ntok, sizeof(*f->names));
    f->pos = calloc(ntok, sizeof(*f->pos));
    if (!f->text || !f->names || !f->pos) {
        filter_dyes_release(f);
        return err_set(e, ENOMEM, "channel filter: out of memory");
    }
    while (next_tok(&tk, &t)) {
        if (t.len == 0) {
            err_clear(e);
            goto fail;
        }
        for (i = 0; i < t.len; i++)
            if ((unsigned char)t.s[i] < 0x20 || t.s[i] == 0x7f) {
                err_set(e, FILTER_ERR_SYNTAX, "a dye name holds a control character");
                goto fail;
            }
        for (j = 0; j < f->n; j++)
            if (strlen(f->names[j]) == t.len && memcmp(f->names[j], t.s, t.len) == 0)
                break;
        if (j < f->n)
            continue;
        f->names[f->n] = strndup(t.s, t.len);
        if (!f->names[f->n]) {
            err_set(e, ENOMEM, "out of memory");
            goto fail;
        }
        f->pos[f->n++] = t.pos;
    }
    return 0;
fail:
    tok_error(e, "channel", text, &t);
    if (e && !e->code)
        e->code = FILTER_ERR_SYNTAX;
    filter_dyes_release(f);
    return -1;
}

int filter_dyes_check(const struct filter_dyes *f, const char *const *dyes, size_t ndyes,
                      struct err *e)
{
    struct strbuf have = STRBUF_INIT;
    size_t i, j;
    struct tok t;

    for (i = 0; i < f->n; i++) {
        for (j = 0; j < ndyes; j++)
            if (strcmp(f->names[i], dyes[j]) == 0)
                break;
        if (j < ndyes)
            continue;
        for (j = 0; j < ndyes; j++)
            strbuf_addf(&have, "%s%s", j ? ", " : "", dyes[j]);
        err_set(e, FILTER_ERR_SYNTAX, "dye %s is not in the channel map (it has %s)",
                f->names[i], have.buf);
        strbuf_release(&have);
        t.s = f->names[i];
        t.len = strlen(f->names[i]);
        t.pos = f->pos[i];
        tok_error(e, "channel", f->text, &t);
        return -1;
    }
    return 0;
}

int filter_dyes_match(const struct filter_dyes *f, const char *dye)
{
    size_t i;

    if (f->n == 0)
        return 1;
    for (i = 0; i < f->n; i++)
        if (strcmp(f->names[i], dye) == 0)
            return 1;
    return 0;
}

void filter_dyes_release(struct filter_dyes *f)
{
    size_t i;

    if (f->names)
        for (i = 0; i < f->n; i++)
            free(f->names[i]);
    free(f->names);
    free(f->pos);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

void filter_init(struct filter *f)
{
    memset(f, 0, sizeof(*f));
    f->wells.all = 1;
    f->sites.all = 1;
    f->z.all = 1;
}

int filter_parse(struct filter *f, const char *wells, const char *sites, const char *z,
                 const char *dyes, const struct filter_plate *plate, struct err *e)
{
    filter_init(f);
    if (filter_wells_parse(&f->wells, wells, plate, e) < 0 ||
        filter_ints_parse(&f->sites, "site", sites, e) < 0 ||
        filter_ints_parse(&f->z, "z", z, e) < 0 ||
        filter_dyes_parse(&f->dyes, dyes, e) < 0) {
        filter_release(f);
        return -1;
    }
    return 0;
}

void filter_release(struct filter *f)
{
    filter_ints_release(&f->sites);
    filter_ints_release(&f->z);
    filter_dyes_release(&f->dyes);
    memset(&f->wells, 0, sizeof(f->wells));
    f->wells.all = 1;
}
