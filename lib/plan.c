/* plan: images -> image sets -> batches, streaming; see plan.h. */
#include "plan.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "strbuf.h"

/* The set being assembled from consecutive images. */
struct cur_set {
    int open;
    int timepoint, row, col, site, z;
    size_t mark;            /* arena length when the set started */
    size_t *off;            /* per dye: offset of its path in the arena */
    unsigned char *have;    /* per dye: an image was seen */
    int bad;                /* a reason to leave the set out was found */
    enum plan_reason reason;
    int bad_channel;
};

struct plan {
    struct plan_opts opts;
    char *barcode;
    plan_batch_fn cb;
    void *arg;

    /* channel map, sorted by channel number */
    size_t nmap;
    int *map_ch;
    char **map_dye;
    int *map_slot;          /* index into the selected dyes, or -1 */

    /* selected dyes: the CSV's image columns */
    size_t ndyes;
    const char **dyes;
    int *channels;

    struct plan_summary sum;
    struct plan_incomplete *inc;
    size_t inc_cap;

    /* input state */
    int failed;
    int have_first_tp;
    int first_tp;
    char raw_well[32];      /* last well spelling parsed, and its position */
    int raw_row, raw_col;
    int have_well;          /* a well is current */
    int well_row, well_col;
    int well_bad;           /* the current well has an incomplete set (partial input) */
    int last_row, last_col; /* well of the last image read, filtered or not */
    int held;               /* partial input: no more batches this run */
    uint64_t closed[FILTER_MAX_ROWS];
    struct cur_set cur;

    /* complete sets not yet in a batch: the current well's and earlier ones' */
    struct strbuf arena;    /* image paths, NUL-terminated, back to back */
    struct plan_set *sets;
    size_t *offs;           /* nsets * ndyes path offsets */
    size_t nsets, sets_cap;
    size_t batch_wells;     /* distinct wells among them */
    const char **ptrs;      /* built when a batch is emitted */
    size_t ptrs_cap;
    size_t batch_index;
    int emitted_row, emitted_col;   /* last well of the last batch (-1: none) */
};

const char *plan_reason_name(enum plan_reason r)
{
    switch (r) {
    case PLAN_MISSING: return "missing";
    case PLAN_UNMAPPED: return "unmapped";
    case PLAN_DUPLICATE: return "duplicate";
    }
    return "unknown";
}

static int oom(struct err *e)
{
    return err_set(e, ENOMEM, "planner: out of memory");
}

static int map_validate(const struct plan_channel *map, size_t n, struct err *e)
{
    size_t i, j;

    if (n == 0)
        return err_set(e, PLAN_ERR_INPUT, "the channel map is empty");
    for (i = 0; i < n; i++) {
        if (!map[i].dye || !map[i].dye[0])
            return err_set(e, PLAN_ERR_INPUT, "the channel map gives channel %d no dye name",
                           map[i].channel);
        for (j = 0; j < i; j++) {
            if (map[j].channel == map[i].channel)
                return err_set(e, PLAN_ERR_INPUT, "the channel map lists channel %d twice",
                               map[i].channel);
            if (strcmp(map[j].dye, map[i].dye) == 0)
                return err_set(e, PLAN_ERR_INPUT,
                               "the channel map gives dye %s to channels %d and %d",
                               map[i].dye, map[j].channel, map[i].channel);
        }
    }
    return 0;
}

static int chan_cmp(const void *x, const void *y)
{
    const struct plan_channel *a = x, *b = y;

    return a->channel < b->channel ? -1 : a->channel > b->channel;
}

struct plan *plan_new(const struct plan_opts *opts, const struct plan_channel *map, size_t n,
                      plan_batch_fn cb, void *arg, struct err *e)
{
    struct plan *p;
    struct plan_channel *sorted = NULL;
    const char **alldyes = NULL;
    size_t i;

    if (map_validate(map, n, e) < 0)
        return NULL;
    p = calloc(1, sizeof(*p));
    sorted = malloc(n * sizeof(*sorted));
    alldyes = malloc(n * sizeof(*alldyes));
    if (!p || !sorted || !alldyes)
        goto nomem;
    p->opts = *opts;
    p->cb = cb;
    p->arg = arg;
    strbuf_init(&p->arena);
    p->sum.max_row = p->sum.max_col = -1;
    p->emitted_row = p->emitted_col = -1;
    p->barcode = strdup(opts->plate_barcode ? opts->plate_barcode : "");
    p->map_ch = calloc(n, sizeof(*p->map_ch));
    p->map_dye = calloc(n, sizeof(*p->map_dye));
    p->map_slot = calloc(n, sizeof(*p->map_slot));
    p->dyes = calloc(n, sizeof(*p->dyes));
    p->channels = calloc(n, sizeof(*p->channels));
    p->cur.off = calloc(n, sizeof(*p->cur.off));
    p->cur.have = calloc(n, 1);
    if (!p->barcode || !p->map_ch || !p->map_dye || !p->map_slot || !p->dyes ||
        !p->channels || !p->cur.off || !p->cur.have)
        goto nomem;
    memcpy(sorted, map, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), chan_cmp);
    p->nmap = n;
    for (i = 0; i < n; i++) {
        p->map_ch[i] = sorted[i].channel;
        p->map_dye[i] = strdup(sorted[i].dye);
        if (!p->map_dye[i])
            goto nomem;
        alldyes[i] = p->map_dye[i];
    }
    if (opts->filter && filter_dyes_check(&opts->filter->dyes, alldyes, n, e) < 0) {
        if (e)
            e->code = PLAN_ERR_INPUT;
        goto fail;
    }
    for (i = 0; i < n; i++) {
        p->map_slot[i] = -1;
        if (opts->filter && !filter_dyes_match(&opts->filter->dyes, p->map_dye[i]))
            continue;
        p->map_slot[i] = (int)p->ndyes;
        p->dyes[p->ndyes] = p->map_dye[i];
        p->channels[p->ndyes] = p->map_ch[i];
        p->ndyes++;
    }
    free(sorted);
    free(alldyes);
    return p;
nomem:
    oom(e);
fail:
    free(sorted);
    free(alldyes);
    plan_free(p);
    return NULL;
}

void plan_free(struct plan *p)
{
    size_t i;

    if (!p)
        return;
    if (p->map_dye)
        for (i = 0; i < p->nmap; i++)
            free(p->map_dye[i]);
    free(p->map_dye);
    free(p->map_ch);
    free(p->map_slot);
    free(p->dyes);
    free(p->channels);
    free(p->barcode);
    free(p->inc);
    free(p->cur.off);
    free(p->cur.have);
    strbuf_release(&p->arena);
    free(p->sets);
    free(p->offs);
    free(p->ptrs);
    free(p);
}

const struct plan_summary *plan_summary(const struct plan *p)
{
    return &p->sum;
}

/* Index of channel in the map, or -1. The map is small: a linear scan. */
static int map_find(const struct plan *p, int channel)
{
    size_t i;

    for (i = 0; i < p->nmap; i++)
        if (p->map_ch[i] == channel)
            return (int)i;
    return -1;
}

static const char *dye_of(const struct plan *p, int channel)
{
    int i = map_find(p, channel);

    return i < 0 ? NULL : p->map_dye[i];
}

void plan_incomplete_describe(const struct plan_incomplete *inc, struct strbuf *out)
{
    strbuf_addf(out, "well %s site %d timepoint %d z %d", inc->well, inc->site,
                inc->timepoint, inc->z);
    if (inc->count > 1)
        strbuf_addf(out, " (and %zu more z planes)", inc->count - 1);
    switch (inc->reason) {
    case PLAN_MISSING:
        strbuf_addf(out, ": channel %d (%s) missing", inc->channel, inc->dye);
        break;
    case PLAN_UNMAPPED:
        strbuf_addf(out, ": channel %d has no dye in the channel map", inc->channel);
        break;
    case PLAN_DUPLICATE:
        strbuf_addf(out, ": two images for channel %d (%s)", inc->channel, inc->dye);
        break;
    }
}

/* ---- batches ---- */

static void hash_bytes(EVP_MD_CTX *md, const void *data, size_t len)
{
    unsigned char l[8];
    size_t i;
    uint64_t v = len;

    for (i = 0; i < 8; i++)
        l[i] = (unsigned char)(v >> (8 * i));
    EVP_DigestUpdate(md, l, sizeof(l));
    if (len)
        EVP_DigestUpdate(md, data, len);
}

static void hash_str(EVP_MD_CTX *md, const char *s)
{
    hash_bytes(md, s, strlen(s));
}

/* Integers go in as 8 bytes, little-endian: fixed width needs no length. */
static void hash_int(EVP_MD_CTX *md, long long v)
{
    unsigned char b[8];
    uint64_t u = (uint64_t)v;
    size_t i;

    for (i = 0; i < 8; i++)
        b[i] = (unsigned char)(u >> (8 * i));
    EVP_DigestUpdate(md, b, sizeof(b));
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int batch_hash(const struct plan *p, const struct plan_batch *b, char out[65],
                      struct err *e)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    size_t i, j;

    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return err_set(e, ENOMEM, "planner: cannot start SHA-256");
    }
    hash_str(md, "plateop-batch-v1");
    hash_bytes(md, p->opts.pipeline, p->opts.pipeline_len);
    hash_bytes(md, p->opts.params, p->opts.params_len);
    hash_str(md, p->barcode);
    hash_int(md, p->opts.acq_id);
    hash_int(md, (long long)b->ndyes);
    for (j = 0; j < b->ndyes; j++) {
        hash_int(md, b->channels[j]);
        hash_str(md, b->dyes[j]);
    }
    hash_int(md, (long long)b->nsets);
    for (i = 0; i < b->nsets; i++) {
        const struct plan_set *s = &b->sets[i];

        hash_int(md, s->timepoint);
        hash_str(md, s->well);
        hash_int(md, s->site);
        hash_int(md, s->z);
        for (j = 0; j < b->ndyes; j++)
            hash_str(md, s->paths[j]);
    }
    EVP_DigestFinal_ex(md, d, &dn);
    EVP_MD_CTX_free(md);
    to_hex(d, 32, out);
    return 0;
}

/* Appends "<tag><v>" to an id, with 'm' for a minus sign (ids are [a-z0-9-]). */
static void id_num(struct strbuf *id, const char *tag, int v)
{
    if (v < 0)
        strbuf_addf(id, "%sm%lld", tag, -(long long)v);
    else
        strbuf_addf(id, "%s%d", tag, v);
}

static void batch_id(const struct plan *p, const struct plan_batch *b,
                     char out[PLAN_BATCH_ID_MAX + 1])
{
    struct strbuf id = STRBUF_INIT;
    const struct plan_set *s = &b->sets[0];
    char lw[FILTER_WELL_NAME_MAX], hex[65];
    unsigned char d[32];

    filter_well_name(s->row, s->col, 1, lw);
    strbuf_adds(&id, lw);
    if (p->opts.mode == PLAN_BY_WELLS) {
        if (b->nwells > 1) {
            filter_well_name(b->sets[b->nsets - 1].row, b->sets[b->nsets - 1].col, 1, lw);
            strbuf_addf(&id, "-%s", lw);
        }
    } else {
        id_num(&id, "s", s->site);
        if (s->z != 0)
            id_num(&id, "z", s->z);
        if (s->timepoint != p->first_tp)
            id_num(&id, "t", s->timepoint);
        if (id.len > PLAN_BATCH_ID_MAX) {
            /* Unique still: the key in full is hashed. */
            strbuf_reset(&id);
            strbuf_addf(&id, "%d/%s/%d/%d", s->timepoint, s->well, s->site, s->z);
            EVP_Digest(id.buf, id.len, d, NULL, EVP_sha256(), NULL);
            to_hex(d, sizeof(d), hex);
            strbuf_reset(&id);
            strbuf_addf(&id, "x%.15s", hex);
        }
    }
    snprintf(out, PLAN_BATCH_ID_MAX + 1, "%s", id.buf);
    strbuf_release(&id);
}

/* Distinct wells among n sets (a well's sets are consecutive). */
static size_t count_wells(const struct plan_set *sets, size_t n)
{
    size_t i, w = 0;

    for (i = 0; i < n; i++)
        if (i == 0 || sets[i].row != sets[i - 1].row || sets[i].col != sets[i - 1].col)
            w++;
    return w;
}

/*
 * Drops the first n sets (just emitted), moving the rest and their paths to
 * the front. The rest is fewer than a batch: cheap.
 */
static void drop_sets(struct plan *p, size_t n)
{
    size_t rest = p->nsets - n, mark, i;

    if (rest == 0) {
        strbuf_reset(&p->arena);
        p->nsets = p->batch_wells = 0;
        return;
    }
    /* A set's paths are contiguous in the arena, in any dye order: it starts at the least. */
    mark = p->offs[n * p->ndyes];
    for (i = 1; i < p->ndyes; i++)
        if (p->offs[n * p->ndyes + i] < mark)
            mark = p->offs[n * p->ndyes + i];
    memmove(p->arena.buf, p->arena.buf + mark, p->arena.len - mark);
    strbuf_setlen(&p->arena, p->arena.len - mark);
    memmove(p->sets, p->sets + n, rest * sizeof(*p->sets));
    memmove(p->offs, p->offs + n * p->ndyes, rest * p->ndyes * sizeof(*p->offs));
    for (i = 0; i < rest * p->ndyes; i++)
        p->offs[i] -= mark;
    p->nsets = rest;
    p->batch_wells = count_wells(p->sets, rest);
}

/* Hands the first n waiting sets to the callback as the next batch. */
static int emit_batch(struct plan *p, size_t nsets, struct err *e)
{
    struct plan_batch b;
    const struct plan_set *last;
    size_t i, n = nsets * p->ndyes;
    const char **np;
    int rc = 0;

    if (nsets == 0)
        return 0;
    if (n > p->ptrs_cap) {
        np = realloc(p->ptrs, n * sizeof(*np));
        if (!np)
            return oom(e);
        p->ptrs = np;
        p->ptrs_cap = n;
    }
    for (i = 0; i < n; i++)
        p->ptrs[i] = p->arena.buf + p->offs[i];
    for (i = 0; i < nsets; i++)
        p->sets[i].paths = p->ptrs + i * p->ndyes;

    last = &p->sets[nsets - 1];
    memset(&b, 0, sizeof(b));
    b.index = p->batch_index;
    b.nsets = nsets;
    b.sets = p->sets;
    b.nwells = count_wells(p->sets, nsets);
    memcpy(b.first_well, p->sets[0].well, sizeof(b.first_well));
    memcpy(b.last_well, last->well, sizeof(b.last_well));
    b.ndyes = p->ndyes;
    b.dyes = p->dyes;
    b.channels = p->channels;
    b.plate_barcode = p->barcode;
    b.acq_id = p->opts.acq_id;
    batch_id(p, &b, b.id);
    if (batch_hash(p, &b, b.hash, e) < 0)
        return -1;

    if (p->cb) {
        err_clear(e);
        rc = p->cb(&b, p->arg, e);
        if (rc != 0 && e && !err_isset(e))
            err_set(e, PLAN_ERR_INPUT, "batch %s: the receiver stopped the plan", b.id);
    }
    p->sum.batches++;
    p->sum.image_sets += nsets;
    /* A well split between batches (by image sets) counts once. */
    p->sum.wells += b.nwells - (p->sets[0].row == p->emitted_row &&
                                p->sets[0].col == p->emitted_col);
    p->emitted_row = last->row;
    p->emitted_col = last->col;
    p->batch_index++;
    drop_sets(p, nsets);
    return rc ? -1 : 0;
}

/*
 * The current well is closed: by a later well's image, or by the end of
 * the input (last). Emits the batches that are due: by wells, when the
 * batch has its N wells; by image sets, every run of N sets; at the end
 * of complete input, whatever is left as the last batch.
 *
 * Partial input (the plate is still being imaged): a well is complete when
 * images of a later well exist and none of its sets is incomplete. Only
 * full batches of complete wells are emitted, and the first well that is
 * not complete holds back itself and everything after it, so that batches
 * already emitted stay the same as more images arrive.
 */
static int well_close(struct plan *p, int last, struct err *e)
{
    size_t per = p->opts.batch_size > 0 ? (size_t)p->opts.batch_size : 0;
    int later = p->last_row != p->well_row || p->last_col != p->well_col;

    if (p->opts.partial && (p->well_bad || (last && !later)))
        p->held = 1;
    if (p->held) {
        drop_sets(p, p->nsets);
        return 0;
    }
    if (p->opts.mode == PLAN_BY_WELLS) {
        if (p->batch_wells >= (per ? per : 1) || (last && !p->opts.partial))
            return emit_batch(p, p->nsets, e);
        return 0;
    }
    while (per && p->nsets >= per)
        if (emit_batch(p, per, e) < 0)
            return -1;
    return last && !p->opts.partial ? emit_batch(p, p->nsets, e) : 0;
}

/* ---- image sets ---- */

static int record_incomplete(struct plan *p, struct err *e)
{
    struct cur_set *c = &p->cur;
    struct plan_incomplete *last = p->sum.nincomplete ? &p->inc[p->sum.nincomplete - 1] : NULL, *r;
    struct strbuf msg = STRBUF_INIT;
    struct plan_incomplete one;

    p->sum.incomplete_sets++;
    memset(&one, 0, sizeof(one));
    one.timepoint = c->timepoint;
    one.row = c->row;
    one.col = c->col;
    filter_well_name(c->row, c->col, 0, one.well);
    one.site = c->site;
    one.z = c->z;
    one.count = 1;
    one.reason = c->reason;
    one.channel = c->bad_channel;
    one.dye = dye_of(p, c->bad_channel);
    if (p->opts.strict) {
        plan_incomplete_describe(&one, &msg);
        err_set(e, PLAN_ERR_INPUT, "incomplete image set (strict mode): %s", msg.buf);
        strbuf_release(&msg);
        return -1;
    }
    if (last && !p->sum.incomplete_dropped && last->timepoint == one.timepoint &&
        last->row == one.row && last->col == one.col && last->site == one.site &&
        last->reason == one.reason && last->channel == one.channel) {
        last->count++;
        return 0;
    }
    if (p->sum.nincomplete >= PLAN_INCOMPLETE_KEEP) {
        p->sum.incomplete_dropped++;
        return 0;
    }
    if (p->sum.nincomplete == p->inc_cap) {
        size_t cap = p->inc_cap ? p->inc_cap * 2 : 16;

        r = realloc(p->inc, cap * sizeof(*r));
        if (!r)
            return oom(e);
        p->inc = r;
        p->inc_cap = cap;
        p->sum.incomplete = p->inc;
    }
    p->inc[p->sum.nincomplete++] = one;
    return 0;
}

static int grow_sets(struct plan *p, struct err *e)
{
    size_t cap = p->sets_cap ? p->sets_cap * 2 : 64;
    struct plan_set *ns;
    size_t *no;

    ns = realloc(p->sets, cap * sizeof(*ns));
    if (!ns)
        return oom(e);
    p->sets = ns;
    no = realloc(p->offs, cap * (p->ndyes ? p->ndyes : 1) * sizeof(*no));
    if (!no)
        return oom(e);
    p->offs = no;
    p->sets_cap = cap;
    return 0;
}

static int close_set(struct plan *p, struct err *e)
{
    struct cur_set *c = &p->cur;
    struct plan_set *s;
    size_t j;

    if (!c->open)
        return 0;
    c->open = 0;
    for (j = 0; j < p->ndyes && !c->bad; j++)
        if (!c->have[j]) {
            c->bad = 1;
            c->reason = PLAN_MISSING;
            c->bad_channel = p->channels[j];
        }
    if (c->bad || p->held)
        strbuf_setlen(&p->arena, c->mark);
    if (c->bad && p->opts.partial) {
        /* Its missing images may still come: the well is not complete yet. */
        p->well_bad = 1;
        return 0;
    }
    if (c->bad)
        return record_incomplete(p, e);
    if (p->held)
        return 0;
    if (p->nsets == p->sets_cap && grow_sets(p, e) < 0)
        return -1;
    s = &p->sets[p->nsets];
    s->timepoint = c->timepoint;
    s->site = c->site;
    s->z = c->z;
    s->row = c->row;
    s->col = c->col;
    filter_well_name(c->row, c->col, 0, s->well);
    s->paths = NULL;
    memcpy(p->offs + p->nsets * p->ndyes, c->off, p->ndyes * sizeof(*c->off));
    if (p->nsets == 0 || p->sets[p->nsets - 1].row != c->row ||
        p->sets[p->nsets - 1].col != c->col)
        p->batch_wells++;
    p->nsets++;
    return 0;
}

/* Called when the input moves on to another well. */
static int change_well(struct plan *p, int row, int col, struct err *e)
{
    char name[FILTER_WELL_NAME_MAX];

    if (close_set(p, e) < 0)
        return -1;
    if (p->have_well)
        p->closed[p->well_row] |= (uint64_t)1 << p->well_col;
    if ((p->closed[row] >> col) & 1) {
        filter_well_name(row, col, 0, name);
        return err_set(e, PLAN_ERR_INPUT,
                       "images out of order: well %s comes again after other wells (images "
                       "must be grouped by well; is the well spelled two ways, e.g. C3 and "
                       "C03?)",
                       name);
    }
    if (p->have_well && well_close(p, 0, e) < 0)
        return -1;
    p->have_well = 1;
    p->well_row = row;
    p->well_col = col;
    p->well_bad = 0;
    return 0;
}

/* -1, 0, 1 comparing (tp, site, z) keys. */
static int key_cmp(int t1, int s1, int z1, int t2, int s2, int z2)
{
    if (t1 != t2)
        return t1 < t2 ? -1 : 1;
    if (s1 != s2)
        return s1 < s2 ? -1 : 1;
    if (z1 != z2)
        return z1 < z2 ? -1 : 1;
    return 0;
}

static int parse_well(struct plan *p, const char *well, int *row, int *col, struct err *e)
{
    size_t len = strlen(well);

    if (len < sizeof(p->raw_well) && strcmp(well, p->raw_well) == 0 && len) {
        *row = p->raw_row;
        *col = p->raw_col;
        return 0;
    }
    if (filter_well_parse(well, len, p->opts.plate, row, col, e) < 0)
        return err_prefix(e, "image with well \"%.*s\"", len > 32 ? 32 : (int)len, well);
    if (len < sizeof(p->raw_well)) {
        memcpy(p->raw_well, well, len + 1);
        p->raw_row = *row;
        p->raw_col = *col;
    }
    return 0;
}

static int add_image(struct plan *p, const struct plan_image *img, struct err *e)
{
    const struct filter *f = p->opts.filter;
    struct cur_set *c = &p->cur;
    int row, col, m, slot = -1, cmp;
    size_t path_len;

    p->sum.images_read++;
    if (!img->well || !img->path)
        return err_set(e, PLAN_ERR_INPUT, "image without a well or a path");
    if (parse_well(p, img->well, &row, &col, e) < 0) {
        if (e)
            e->code = PLAN_ERR_INPUT;
        return -1;
    }
    if (row > p->sum.max_row)
        p->sum.max_row = row;
    if (col > p->sum.max_col)
        p->sum.max_col = col;
    p->last_row = row;
    p->last_col = col;
    m = map_find(p, img->channel);
    if (m >= 0)
        slot = p->map_slot[m];
    if (f && (!filter_wells_match(&f->wells, row, col) || !filter_ints_match(&f->sites, img->site) ||
              !filter_ints_match(&f->z, img->z) || (m >= 0 && slot < 0) ||
              (m < 0 && f->dyes.n > 0))) {
        p->sum.images_filtered++;
        return 0;
    }
    path_len = strlen(img->path);
    if (path_len == 0)
        return err_set(e, PLAN_ERR_INPUT,
                       "image of well %s site %d channel %d has an empty path",
                       img->well, img->site, img->channel);
    if (!p->have_first_tp) {
        p->have_first_tp = 1;
        p->first_tp = img->timepoint;
    }

    if (!p->have_well || row != p->well_row || col != p->well_col) {
        if (change_well(p, row, col, e) < 0)
            return -1;
    } else if (c->open) {
        cmp = key_cmp(img->timepoint, img->site, img->z, c->timepoint, c->site, c->z);
        if (cmp < 0)
            return err_set(e, PLAN_ERR_INPUT,
                           "images out of order in well %s: timepoint %d site %d z %d comes "
                           "after timepoint %d site %d z %d",
                           img->well, img->timepoint, img->site, img->z, c->timepoint,
                           c->site, c->z);
        if (cmp > 0 && close_set(p, e) < 0)
            return -1;
    }
    if (!c->open) {
        c->open = 1;
        c->timepoint = img->timepoint;
        c->row = row;
        c->col = col;
        c->site = img->site;
        c->z = img->z;
        c->mark = p->arena.len;
        c->bad = 0;
        memset(c->have, 0, p->ndyes);
    }
    if (c->bad)
        return 0;
    if (m < 0) {
        c->bad = 1;
        c->reason = PLAN_UNMAPPED;
        c->bad_channel = img->channel;
        return 0;
    }
    if (c->have[slot]) {
        c->bad = 1;
        c->reason = PLAN_DUPLICATE;
        c->bad_channel = img->channel;
        return 0;
    }
    c->have[slot] = 1;
    c->off[slot] = p->arena.len;
    /* The path's NUL is kept in the arena: the batch hands out C strings. */
    if (strbuf_add(&p->arena, img->path, path_len + 1) < 0)
        return oom(e);
    return 0;
}

int plan_add(struct plan *p, const struct plan_image *img, struct err *e)
{
    if (p->failed)
        return err_set(e, PLAN_ERR_INPUT, "planner: used after an error");
    if (add_image(p, img, e) < 0) {
        p->failed = 1;
        return -1;
    }
    return 0;
}

int plan_finish(struct plan *p, struct err *e)
{
    if (p->failed)
        return err_set(e, PLAN_ERR_INPUT, "planner: used after an error");
    if (close_set(p, e) < 0 || (p->have_well && well_close(p, 1, e) < 0)) {
        p->failed = 1;
        return -1;
    }
    return 0;
}

const struct filter_plate *plan_plate(const struct plan_summary *s)
{
    return s->max_row < 0 ? NULL : filter_plate_fit(s->max_row, s->max_col);
}

int plan_wells_check(const struct plan_summary *s, const char *wells, struct err *e)
{
    struct filter_wells f;

    return filter_wells_parse(&f, wells, plan_plate(s), e);
}
