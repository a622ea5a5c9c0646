/*
 * Unit tests for plan: image sets, batching, ids, hashes, incomplete sets, bad input,
 * partial input (a plate still being imaged), well filters against the plate format.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "plan.h"
#include "strbuf.h"

static const struct plan_channel map5[] = {
    { 1, "HOECHST" }, { 2, "SYTO" }, { 3, "CONCAVALIN" }, { 4, "PHALLOIDIN" }, { 5, "MITO" },
};

/* What the callback saw. */
struct seen {
    size_t n;
    char ids[4096][PLAN_BATCH_ID_MAX + 1];
    char hashes[4096][65];
    size_t nsets[4096];
    size_t nwells[4096];
    size_t total_sets;
    int check_sets;     /* verify each set's paths name its own well, site and dye */
};

static int collect(const struct plan_batch *b, void *arg, struct err *e)
{
    struct seen *s = arg;
    char want[256];
    size_t i, j;

    (void)e;
    assert_true(s->n < 4096);
    assert_int_equal(b->index, s->n);
    assert_int_equal(strlen(b->hash), 64);
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", b->id);
    memcpy(s->hashes[s->n], b->hash, 65);
    s->nsets[s->n] = b->nsets;
    s->nwells[s->n] = b->nwells;
    s->total_sets += b->nsets;
    s->n++;
    for (i = 0; s->check_sets && i < b->nsets; i++)
        for (j = 0; j < b->ndyes; j++) {
            snprintf(want, sizeof(want), "/images/P1/t%d/%s_s%d_z%d_w%d.tif",
                     b->sets[i].timepoint, b->sets[i].well, b->sets[i].site, b->sets[i].z,
                     b->channels[j]);
            assert_string_equal(b->sets[i].paths[j], want);
        }
    return 0;
}

/* A plate generator: every (well, timepoint, site, z, channel) in database order. */
struct gen {
    const struct filter_plate *plate;
    int timepoints, sites, zs, channels;
    int reverse_channels;   /* channels of a set arrive in reverse order */
    /* one hole or oddity: */
    const char *skip_well;  /* this well's ... */
    int skip_site;          /* ... site loses channel skip_channel */
    int skip_channel;
    int extra_channel;      /* add this unmapped channel to skip_well/skip_site */
    int dup_channel;        /* duplicate this channel at skip_well/skip_site */
};

static int add(struct plan *p, int tp, const char *well, int site, int z, int ch,
               struct err *e)
{
    char path[256];
    struct plan_image img = { tp, well, site, z, ch, path };

    snprintf(path, sizeof(path), "/images/P1/t%d/%s_s%d_z%d_w%d.tif", tp, well, site, z, ch);
    return plan_add(p, &img, e);
}

static int generate(struct plan *p, const struct gen *g, struct err *e)
{
    char well[FILTER_WELL_NAME_MAX];
    int r, c, t, s, z, k, ch, odd;

    for (r = 0; r < g->plate->rows; r++)
        for (c = 0; c < g->plate->cols; c++) {
            filter_well_name(r, c, 0, well);
            for (t = 1; t <= g->timepoints; t++)
                for (s = 1; s <= g->sites; s++)
                    for (z = 0; z < g->zs; z++) {
                        odd = g->skip_well && strcmp(well, g->skip_well) == 0 &&
                              s == g->skip_site;
                        for (k = 1; k <= g->channels; k++) {
                            ch = g->reverse_channels ? g->channels + 1 - k : k;
                            if (odd && ch == g->skip_channel)
                                continue;
                            if (add(p, t, well, s, z, ch, e) < 0)
                                return -1;
                            if (odd && ch == g->dup_channel && add(p, t, well, s, z, ch, e) < 0)
                                return -1;
                        }
                        if (odd && g->extra_channel &&
                            add(p, t, well, s, z, g->extra_channel, e) < 0)
                            return -1;
                    }
        }
    return plan_finish(p, e);
}

static struct plan *mk(const struct plan_opts *o, struct seen *s, struct err *e)
{
    struct plan *p = plan_new(o, map5, 5, collect, s, e);

    if (!p)
        fail_msg("plan_new: %s", e->msg);
    return p;
}

static int is_dns_label_part(const char *id)
{
    size_t i, n = strlen(id);

    if (n == 0 || n > PLAN_BATCH_ID_MAX || !(id[0] >= 'a' && id[0] <= 'z') || id[n - 1] == '-')
        return 0;
    for (i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return 0;
    return 1;
}

static void assert_unique_ids(const struct seen *s)
{
    size_t i, j;

    for (i = 0; i < s->n; i++) {
        if (!is_dns_label_part(s->ids[i]))
            fail_msg("batch id \"%s\" is not DNS-label safe", s->ids[i]);
        for (j = 0; j < i; j++)
            if (strcmp(s->ids[i], s->ids[j]) == 0)
                fail_msg("batch id \"%s\" twice", s->ids[i]);
    }
}

static void test_384_plate_by_well(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .acq_id = 7 };
    struct gen g = { filter_plate_get(384), 1, 9, 1, 5, 1, NULL, 0, 0, 0, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    const struct plan_summary *sum;
    struct plan *p;
    struct err e;

    (void)state;
    s->check_sets = 1;
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    sum = plan_summary(p);
    assert_int_equal(sum->images_read, 384 * 9 * 5);
    assert_int_equal(sum->image_sets, 384 * 9);
    assert_int_equal(sum->incomplete_sets, 0);
    assert_int_equal(sum->batches, 384);
    assert_int_equal(sum->wells, 384);
    assert_int_equal(sum->max_row, 15);
    assert_int_equal(sum->max_col, 23);
    assert_int_equal(s->n, 384);
    assert_string_equal(s->ids[0], "a01");
    assert_string_equal(s->ids[2 * 24 + 2], "c03");
    assert_string_equal(s->ids[383], "p24");
    assert_int_equal(s->nsets[0], 9);
    assert_int_equal(s->total_sets, 384 * 9);
    assert_unique_ids(s);
    plan_free(p);
    free(s);
}

static void test_same_input_same_batches_and_hashes(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .acq_id = 7, .pipeline = "pipe", .pipeline_len = 4,
                           .params = "{}", .params_len = 2 };
    struct gen g = { filter_plate_get(96), 2, 3, 2, 5, 0, NULL, 0, 0, 0, 0 };
    struct seen *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b)), *c = calloc(1, sizeof(*c));
    struct plan *p;
    struct err e;
    size_t i;

    (void)state;
    p = mk(&o, a, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    plan_free(p);
    /* Same plate with channels arriving in another order: same batches. */
    g.reverse_channels = 1;
    p = mk(&o, b, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    plan_free(p);
    assert_int_equal(a->n, 96);
    assert_int_equal(a->n, b->n);
    for (i = 0; i < a->n; i++) {
        assert_string_equal(a->ids[i], b->ids[i]);
        assert_string_equal(a->hashes[i], b->hashes[i]);
        assert_int_equal(a->nsets[i], 2 * 3 * 2);   /* both timepoints of a well together */
    }
    /* Other parameters: same ids, every hash different. */
    o.params = "{\"x\":1}";
    o.params_len = 7;
    g.reverse_channels = 0;
    p = mk(&o, c, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    plan_free(p);
    for (i = 0; i < a->n; i++) {
        assert_string_equal(a->ids[i], c->ids[i]);
        assert_string_not_equal(a->hashes[i], c->hashes[i]);
    }
    free(a);
    free(b);
    free(c);
}

static void test_hash_changes_only_for_the_batch_whose_input_changed(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct seen *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    struct plan *p;
    struct err e;
    int k;

    (void)state;
    p = mk(&o, a, &e);
    for (k = 1; k <= 5; k++) {
        assert_int_equal(add(p, 1, "A01", 1, 0, k, &e), 0);
    }
    for (k = 1; k <= 5; k++)
        assert_int_equal(add(p, 1, "A02", 1, 0, k, &e), 0);
    assert_int_equal(plan_finish(p, &e), 0);
    plan_free(p);

    p = mk(&o, b, &e);
    for (k = 1; k <= 5; k++)
        assert_int_equal(add(p, 1, "A01", 1, 0, k, &e), 0);
    for (k = 1; k <= 5; k++) {
        struct plan_image img = { 1, "A02", 1, 0, k, k == 3 ? "/moved/A02_w3.tif" : NULL };
        char path[128];

        snprintf(path, sizeof(path), "/images/P1/t1/A02_s1_z0_w%d.tif", k);
        if (k != 3)
            img.path = path;
        assert_int_equal(plan_add(p, &img, &e), 0);
    }
    assert_int_equal(plan_finish(p, &e), 0);
    plan_free(p);
    assert_string_equal(a->hashes[0], b->hashes[0]);
    assert_string_not_equal(a->hashes[1], b->hashes[1]);
    free(a);
    free(b);
}

static void test_missing_channel_is_reported_and_left_out(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct gen g = { filter_plate_get(384), 1, 9, 1, 5, 0, "C03", 4, 3, 0, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    const struct plan_summary *sum;
    struct strbuf msg = STRBUF_INIT;
    struct plan *p;
    struct err e;

    (void)state;
    s->check_sets = 1;      /* no column shifted: every path matches its dye */
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    sum = plan_summary(p);
    assert_int_equal(sum->image_sets, 384 * 9 - 1);
    assert_int_equal(sum->incomplete_sets, 1);
    assert_int_equal(sum->nincomplete, 1);
    assert_string_equal(sum->incomplete[0].well, "C03");
    assert_int_equal(sum->incomplete[0].site, 4);
    assert_int_equal(sum->incomplete[0].reason, PLAN_MISSING);
    assert_int_equal(sum->incomplete[0].channel, 3);
    assert_string_equal(sum->incomplete[0].dye, "CONCAVALIN");
    plan_incomplete_describe(&sum->incomplete[0], &msg);
    assert_string_equal(msg.buf, "well C03 site 4 timepoint 1 z 0: channel 3 (CONCAVALIN) missing");
    assert_string_equal(s->ids[2 * 24 + 2], "c03");
    assert_int_equal(s->nsets[2 * 24 + 2], 8);
    strbuf_release(&msg);
    plan_free(p);

    /* strict mode fails, naming the set */
    o.strict = 1;
    memset(s, 0, sizeof(*s));
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), -1);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_string_equal(e.msg, "incomplete image set (strict mode): well C03 site 4 timepoint 1 "
                               "z 0: channel 3 (CONCAVALIN) missing");
    plan_free(p);
    free(s);
}

static void test_unmapped_and_duplicate_channels(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct gen g = { filter_plate_get(96), 1, 2, 3, 5, 0, "B02", 2, 0, 6, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    const struct plan_summary *sum;
    struct strbuf msg = STRBUF_INIT;
    struct filter f;
    struct plan *p;
    struct err e;

    (void)state;
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    sum = plan_summary(p);
    /* B02 site 2 has channel 6 in each of its 3 z planes: one record of 3 sets. */
    assert_int_equal(sum->incomplete_sets, 3);
    assert_int_equal(sum->nincomplete, 1);
    assert_int_equal(sum->incomplete[0].reason, PLAN_UNMAPPED);
    assert_int_equal(sum->incomplete[0].count, 3);
    assert_null(sum->incomplete[0].dye);
    plan_incomplete_describe(&sum->incomplete[0], &msg);
    assert_string_equal(msg.buf, "well B02 site 2 timepoint 1 z 0 (and 2 more z planes): channel 6 "
                                 "has no dye in the channel map");
    plan_free(p);

    /* With a channel filter, the unmapped channel is simply not wanted. */
    assert_int_equal(filter_parse(&f, NULL, NULL, NULL, "MITO,HOECHST", NULL, &e), 0);
    o.filter = &f;
    memset(s, 0, sizeof(*s));
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    sum = plan_summary(p);
    assert_int_equal(sum->incomplete_sets, 0);
    assert_int_equal(sum->image_sets, 96 * 2 * 3);
    assert_int_equal(sum->images_filtered, 96 * 2 * 3 * 3 + 3);
    plan_free(p);
    filter_release(&f);
    o.filter = NULL;

    /* a duplicate image */
    g.extra_channel = 0;
    g.dup_channel = 5;
    memset(s, 0, sizeof(*s));
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    sum = plan_summary(p);
    assert_int_equal(sum->incomplete_sets, 3);
    assert_int_equal(sum->incomplete[0].reason, PLAN_DUPLICATE);
    strbuf_reset(&msg);
    plan_incomplete_describe(&sum->incomplete[0], &msg);
    assert_string_equal(msg.buf, "well B02 site 2 timepoint 1 z 0 (and 2 more z planes): two "
                                 "images for channel 5 (MITO)");
    strbuf_release(&msg);
    plan_free(p);
    free(s);
}

static void test_dye_filter_selects_columns_in_channel_order(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct filter f;
    struct err e;
    struct plan *p;

    (void)state;
    assert_int_equal(filter_parse(&f, NULL, NULL, NULL, "Mito", NULL, &e), 0);
    o.filter = &f;
    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_null(p);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_string_equal(e.msg, "channel filter \"Mito\": token \"Mito\" at position 1: dye Mito is "
                               "not in the channel map (it has HOECHST, SYTO, CONCAVALIN, "
                               "PHALLOIDIN, MITO)");
    filter_release(&f);
}

static int first_batch_dyes(const struct plan_batch *b, void *arg, struct err *e)
{
    struct strbuf *sb = arg;
    size_t j;

    (void)e;
    if (b->index == 0)
        for (j = 0; j < b->ndyes; j++)
            strbuf_addf(sb, "%d:%s ", b->channels[j], b->dyes[j]);
    return 0;
}

static void test_columns_follow_channel_numbers(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct filter f;
    struct strbuf sb = STRBUF_INIT;
    struct err e;
    struct plan *p;
    int k;

    (void)state;
    assert_int_equal(filter_parse(&f, NULL, NULL, NULL, "MITO,SYTO", NULL, &e), 0);
    o.filter = &f;
    p = plan_new(&o, map5, 5, first_batch_dyes, &sb, &e);
    assert_non_null(p);
    for (k = 5; k >= 1; k--)
        assert_int_equal(add(p, 1, "A01", 1, 0, k, &e), 0);
    assert_int_equal(plan_finish(p, &e), 0);
    assert_string_equal(sb.buf, "2:SYTO 5:MITO ");
    assert_int_equal(plan_summary(p)->images_filtered, 3);
    plan_free(p);
    filter_release(&f);
    strbuf_release(&sb);
}

static void test_filters_select_wells_sites_and_z(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct gen g = { filter_plate_get(384), 1, 9, 3, 5, 0, NULL, 0, 0, 0, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    struct filter f;
    struct plan *p;
    struct err e;

    (void)state;
    assert_int_equal(filter_parse(&f, "C03,C04-E03", "1-4,7", "0,2", NULL,
                                  filter_plate_get(384), &e), 0);
    o.filter = &f;
    s->check_sets = 1;
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    assert_int_equal(plan_summary(p)->image_sets, 49 * 5 * 2);
    assert_int_equal(s->n, 49);
    assert_string_equal(s->ids[0], "c03");
    assert_string_equal(s->ids[1], "c04");
    assert_string_equal(s->ids[21], "c24");
    assert_string_equal(s->ids[22], "d01");
    assert_string_equal(s->ids[48], "e03");
    plan_free(p);
    filter_release(&f);
    free(s);
}

static void test_batches_of_several_wells(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .batch_size = 5 };
    struct gen g = { filter_plate_get(96), 1, 2, 1, 5, 0, NULL, 0, 0, 0, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    struct plan *p;
    struct err e;

    (void)state;
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    assert_int_equal(s->n, 20);     /* 96 / 5, rounded up */
    assert_string_equal(s->ids[0], "a01-a05");
    assert_string_equal(s->ids[2], "a11-b03");
    assert_string_equal(s->ids[19], "h12");
    assert_int_equal(s->nwells[0], 5);
    assert_int_equal(s->nwells[19], 1);
    assert_unique_ids(s);
    plan_free(p);
    free(s);
}

static void test_batches_of_image_sets(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .mode = PLAN_BY_SETS, .batch_size = 10 };
    struct gen g = { filter_plate_get(384), 2, 9, 2, 5, 0, NULL, 0, 0, 0, 0 };
    struct seen *s = calloc(1, sizeof(*s));
    struct plan *p;
    struct err e;
    size_t sets = 384 * 2 * 9 * 2;

    (void)state;
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    assert_int_equal(s->n, (sets + 9) / 10);
    assert_int_equal(s->total_sets, sets);
    assert_string_equal(s->ids[0], "a01s1");
    /* sets of A01: t1 s1 z0, t1 s1 z1, t1 s2 z0, ...: batch 1 starts at set 10, t1 s6 z0 */
    assert_string_equal(s->ids[1], "a01s6");
    /* batch 2 starts at set 20: t2 s2 z0 */
    assert_string_equal(s->ids[2], "a01s2t2");
    assert_unique_ids(s);
    plan_free(p);

    /* batch_size <= 0: one batch */
    o.batch_size = 0;
    memset(s, 0, sizeof(*s));
    p = mk(&o, s, &e);
    assert_int_equal(generate(p, &g, &e), 0);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->nsets[0], sets);
    assert_int_equal(s->nwells[0], 384);
    plan_free(p);
    free(s);
}

static void test_long_set_ids_fall_back_to_a_hash(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .mode = PLAN_BY_SETS, .batch_size = 1 };
    struct seen *s = calloc(1, sizeof(*s));
    struct plan *p;
    struct err e;
    int k;

    (void)state;
    p = mk(&o, s, &e);
    for (k = 1; k <= 5; k++)
        assert_int_equal(add(p, 1, "AF48", 1000000, -7, k, &e), 0);
    for (k = 1; k <= 5; k++)
        assert_int_equal(add(p, 1234, "AF48", 1000000, -7, k, &e), 0);
    assert_int_equal(plan_finish(p, &e), 0);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->ids[0], "af48s1000000zm7");
    assert_int_equal(strlen(s->ids[1]), 16);
    assert_int_equal(s->ids[1][0], 'x');
    assert_unique_ids(s);
    plan_free(p);
    free(s);
}

static void test_out_of_order_input_is_an_error(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct plan *p;
    struct err e;

    (void)state;
    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_int_equal(add(p, 1, "C03", 1, 0, 1, &e), 0);
    assert_int_equal(add(p, 1, "C04", 1, 0, 1, &e), 0);
    assert_int_equal(add(p, 1, "C3", 2, 0, 1, &e), -1);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_string_equal(e.msg, "images out of order: well C03 comes again after other wells "
                               "(images must be grouped by well; is the well spelled two ways, "
                               "e.g. C3 and C03?)");
    /* the plan refuses further use */
    assert_int_equal(add(p, 1, "C05", 1, 0, 1, &e), -1);
    assert_int_equal(plan_finish(p, &e), -1);
    plan_free(p);

    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_int_equal(add(p, 1, "C03", 2, 0, 1, &e), 0);
    assert_int_equal(add(p, 1, "C03", 1, 0, 1, &e), -1);
    assert_string_equal(e.msg, "images out of order in well C03: timepoint 1 site 1 z 0 comes "
                               "after timepoint 1 site 2 z 0");
    plan_free(p);
}

static void test_bad_input(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .plate = NULL };
    struct plan_channel dup[] = { { 1, "A" }, { 1, "B" } };
    struct plan_channel dupdye[] = { { 1, "A" }, { 2, "A" } };
    struct plan_channel nodye[] = { { 1, "" } };
    struct plan_image img = { 1, "Z99", 1, 0, 1, "/x.tif" };
    struct plan *p;
    struct err e;

    (void)state;
    assert_null(plan_new(&o, map5, 0, NULL, NULL, &e));
    assert_string_equal(e.msg, "the channel map is empty");
    assert_null(plan_new(&o, dup, 2, NULL, NULL, &e));
    assert_string_equal(e.msg, "the channel map lists channel 1 twice");
    assert_null(plan_new(&o, dupdye, 2, NULL, NULL, &e));
    assert_string_equal(e.msg, "the channel map gives dye A to channels 1 and 2");
    assert_null(plan_new(&o, nodye, 1, NULL, NULL, &e));

    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_int_equal(plan_add(p, &img, &e), -1);
    assert_int_equal(e.code, PLAN_ERR_INPUT);
    assert_string_equal(e.msg, "image with well \"Z99\": column 99 is outside a 1536-well plate "
                               "(columns 1-48)");
    plan_free(p);

    o.plate = filter_plate_get(96);
    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    img.well = "I01";
    assert_int_equal(plan_add(p, &img, &e), -1);
    assert_string_equal(e.msg, "image with well \"I01\": row I is outside a 96-well plate (rows A-H)");
    plan_free(p);

    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    img.well = "A01";
    img.path = "";
    assert_int_equal(plan_add(p, &img, &e), -1);
    assert_string_equal(e.msg, "image of well A01 site 1 channel 1 has an empty path");
    plan_free(p);
}

static int stop_at_third(const struct plan_batch *b, void *arg, struct err *e)
{
    (void)arg;
    if (b->index == 2)
        return err_set(e, 99, "receiver full at %s", b->id);
    return 0;
}

static void test_callback_error_stops_the_plan(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct gen g = { filter_plate_get(96), 1, 1, 1, 5, 0, NULL, 0, 0, 0, 0 };
    struct plan *p;
    struct err e;

    (void)state;
    p = plan_new(&o, map5, 5, stop_at_third, NULL, &e);
    assert_int_equal(generate(p, &g, &e), -1);
    assert_int_equal(e.code, 99);
    assert_string_equal(e.msg, "receiver full at a03");
    assert_int_equal(plan_summary(p)->batches, 3);
    plan_free(p);
}

static void test_incomplete_records_are_capped(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct plan *p;
    struct err e;
    const struct plan_summary *sum;
    int site;

    (void)state;
    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    for (site = 0; site < PLAN_INCOMPLETE_KEEP + 50; site++)
        assert_int_equal(add(p, 1, "A01", site, 0, 1, &e), 0);
    assert_int_equal(plan_finish(p, &e), 0);
    sum = plan_summary(p);
    assert_int_equal(sum->incomplete_sets, PLAN_INCOMPLETE_KEEP + 50);
    assert_int_equal(sum->nincomplete, PLAN_INCOMPLETE_KEEP);
    assert_int_equal(sum->incomplete_dropped, 50);
    assert_int_equal(sum->batches, 0);
    plan_free(p);
}

/* ---- partial input: a plate still being imaged ---- */

/* The first n images of a plate of `wells` wells (row-major on 96), 3 sites, 5 channels. */
static int feed_prefix(struct plan *p, int wells, size_t n, const char *drop_well, int drop_site,
                       struct err *e)
{
    char well[FILTER_WELL_NAME_MAX];
    size_t k = 0;
    int w, s, ch;

    for (w = 0; w < wells; w++) {
        filter_well_name(w / 12, w % 12, 0, well);
        for (s = 1; s <= 3; s++)
            for (ch = 1; ch <= 5; ch++) {
                if (k++ >= n)
                    return plan_finish(p, e);
                if (drop_well && !strcmp(well, drop_well) && s == drop_site && ch == 4)
                    continue;
                if (add(p, 1, well, s, 0, ch, e) < 0)
                    return -1;
            }
    }
    return plan_finish(p, e);
}

/*
 * Every prefix of the input, planned as partial, gives a prefix of the
 * whole plate's batches (same ids, sets and hashes): exactly the full
 * batches of the wells before the last one seen.
 */
static void test_partial_input_gives_a_prefix_of_the_same_batches(void **state)
{
    static const struct { enum plan_mode mode; int size; } modes[] = {
        { PLAN_BY_WELLS, 1 }, { PLAN_BY_WELLS, 5 }, { PLAN_BY_SETS, 4 }, { PLAN_BY_SETS, 0 },
    };
    struct seen *all = calloc(1, sizeof(*all)), *part = calloc(1, sizeof(*part));
    const size_t total = 96 * 3 * 5;
    struct plan *p;
    struct err e;
    size_t m, n, i, want, wells_before;

    (void)state;
    for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        struct plan_opts o = { .plate_barcode = "P1", .mode = modes[m].mode,
                               .batch_size = modes[m].size, .strict = 1 };

        memset(all, 0, sizeof(*all));
        all->check_sets = 1;    /* each set's paths survive batches cut inside a well */
        p = mk(&o, all, &e);
        assert_int_equal(feed_prefix(p, 96, total, NULL, 0, &e), 0);
        plan_free(p);
        o.partial = 1;
        for (n = 0; n <= total; n += 7) {
            memset(part, 0, sizeof(*part));
            part->check_sets = 1;
            p = mk(&o, part, &e);
            assert_int_equal(feed_prefix(p, 96, n, NULL, 0, &e), 0);
            wells_before = n ? (n - 1) / 15 : 0;
            if (modes[m].mode == PLAN_BY_WELLS)
                want = wells_before / (size_t)modes[m].size;
            else
                want = modes[m].size ? wells_before * 3 / (size_t)modes[m].size : 0;
            if (part->n != want)
                fail_msg("mode %zu, %zu images: %zu batches, want %zu", m, n, part->n, want);
            for (i = 0; i < part->n; i++) {
                assert_string_equal(part->ids[i], all->ids[i]);
                assert_string_equal(part->hashes[i], all->hashes[i]);
                assert_int_equal(part->nsets[i], all->nsets[i]);
            }
            assert_int_equal(plan_summary(p)->batches, part->n);
            assert_int_equal(plan_summary(p)->image_sets, part->total_sets);
            plan_free(p);
        }
    }
    free(all);
    free(part);
}

/*
 * A well with an incomplete set (its last images may still come) holds
 * back itself and every later well, without a report or, in strict mode,
 * an error.
 */
static void test_partial_input_holds_back_an_incomplete_well(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .partial = 1, .strict = 1 };
    struct seen *s = calloc(1, sizeof(*s));
    struct plan *p;
    struct err e;

    (void)state;
    p = mk(&o, s, &e);
    assert_int_equal(feed_prefix(p, 96, 96 * 15, "C03", 2, &e), 0);
    assert_int_equal(s->n, 2 * 12 + 2);     /* A01..C02 */
    assert_string_equal(s->ids[s->n - 1], "c02");
    assert_int_equal(plan_summary(p)->incomplete_sets, 0);
    assert_int_equal(plan_summary(p)->nincomplete, 0);
    plan_free(p);
    free(s);
}

/* A later well closes a well even when the filter leaves the later one out. */
static void test_partial_input_filtered_later_well_completes_a_well(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1", .partial = 1 };
    struct seen *s = calloc(1, sizeof(*s));
    struct filter f;
    struct plan *p;
    struct err e;

    (void)state;
    assert_int_equal(filter_parse(&f, "A01-A02", NULL, NULL, NULL, NULL, &e), 0);
    o.filter = &f;
    p = mk(&o, s, &e);
    assert_int_equal(feed_prefix(p, 2, 2 * 15, NULL, 0, &e), 0);
    assert_int_equal(s->n, 1);      /* A02 is the last well seen */
    plan_free(p);
    memset(s, 0, sizeof(*s));
    p = mk(&o, s, &e);
    assert_int_equal(feed_prefix(p, 3, 2 * 15 + 1, NULL, 0, &e), 0);
    assert_int_equal(s->n, 2);      /* A03 has begun */
    assert_string_equal(s->ids[1], "a02");
    plan_free(p);
    filter_release(&f);
    free(s);
}

/* A well filter is checked against the plate format the images imply. */
static void test_well_filter_checked_against_the_plate(void **state)
{
    struct plan_opts o = { .plate_barcode = "P1" };
    struct gen g384 = { filter_plate_get(384), 1, 1, 1, 5, 0, NULL, 0, 0, 0, 0 };
    struct gen g96 = { filter_plate_get(96), 1, 1, 1, 5, 0, NULL, 0, 0, 0, 0 };
    struct plan *p;
    struct err e;

    (void)state;
    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_int_equal(plan_wells_check(plan_summary(p), "AF48", &e), 0);   /* no image yet */
    assert_int_equal(generate(p, &g384, &e), 0);
    assert_int_equal(plan_plate(plan_summary(p))->wells, 384);
    assert_int_equal(plan_wells_check(plan_summary(p), "A01,C04-P24", &e), 0);
    assert_int_equal(plan_wells_check(plan_summary(p), "A01,Q05", &e), -1);
    assert_int_equal(e.code, FILTER_ERR_SYNTAX);
    assert_non_null(strstr(e.msg, "token \"Q05\" at position 5"));
    assert_non_null(strstr(e.msg, "384-well plate"));
    plan_free(p);

    p = plan_new(&o, map5, 5, NULL, NULL, &e);
    assert_int_equal(generate(p, &g96, &e), 0);
    assert_int_equal(plan_wells_check(plan_summary(p), "H12", &e), 0);
    assert_int_equal(plan_wells_check(plan_summary(p), "H13", &e), -1);
    assert_non_null(strstr(e.msg, "token \"H13\" at position 1"));
    assert_non_null(strstr(e.msg, "96-well plate"));
    plan_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_384_plate_by_well),
        cmocka_unit_test(test_same_input_same_batches_and_hashes),
        cmocka_unit_test(test_hash_changes_only_for_the_batch_whose_input_changed),
        cmocka_unit_test(test_missing_channel_is_reported_and_left_out),
        cmocka_unit_test(test_unmapped_and_duplicate_channels),
        cmocka_unit_test(test_dye_filter_selects_columns_in_channel_order),
        cmocka_unit_test(test_columns_follow_channel_numbers),
        cmocka_unit_test(test_filters_select_wells_sites_and_z),
        cmocka_unit_test(test_batches_of_several_wells),
        cmocka_unit_test(test_batches_of_image_sets),
        cmocka_unit_test(test_long_set_ids_fall_back_to_a_hash),
        cmocka_unit_test(test_out_of_order_input_is_an_error),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_callback_error_stops_the_plan),
        cmocka_unit_test(test_incomplete_records_are_capped),
        cmocka_unit_test(test_partial_input_gives_a_prefix_of_the_same_batches),
        cmocka_unit_test(test_partial_input_holds_back_an_incomplete_well),
        cmocka_unit_test(test_partial_input_filtered_later_well_completes_a_well),
        cmocka_unit_test(test_well_filter_checked_against_the_plate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
