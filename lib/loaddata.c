/* loaddata: a batch's LoadData CSV; see loaddata.h. */
#include "loaddata.h"

#include <errno.h>
#include <string.h>

#define ICF_DEFAULT "ICF_{dye}.npy"

/* Expands "{dye}" and "{plate}" in tmpl into out (reset first). */
static int icf_name(const char *tmpl, const char *dye, const char *plate, struct strbuf *out)
{
    const char *p = tmpl;
    int rc = 0;

    strbuf_reset(out);
    while (*p && rc == 0) {
        if (strncmp(p, "{dye}", 5) == 0) {
            rc = strbuf_adds(out, dye);
            p += 5;
        } else if (strncmp(p, "{plate}", 7) == 0) {
            rc = strbuf_adds(out, plate);
            p += 7;
        } else {
            rc = strbuf_addch(out, *p++);
        }
    }
    return rc;
}

static int header(const struct plan_batch *b, const struct loaddata_opts *o,
                  struct csv_writer *w, struct err *e)
{
    static const char *const meta[] = {
        "Metadata_Plate", "Metadata_Well", "Metadata_Site",
        "Metadata_Timepoint", "Metadata_Z", "Metadata_AcqID",
    };
    size_t i;

    for (i = 0; i < b->ndyes; i++)
        if (csv_write_fmt(w, e, "FileName_%s", b->dyes[i]) < 0 ||
            csv_write_fmt(w, e, "PathName_%s", b->dyes[i]) < 0)
            return -1;
    for (i = 0; o->icf_dir && i < b->ndyes; i++)
        if (csv_write_fmt(w, e, "FileName_ICF_%s", b->dyes[i]) < 0 ||
            csv_write_fmt(w, e, "PathName_ICF_%s", b->dyes[i]) < 0)
            return -1;
    for (i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
        if (csv_write_str(w, meta[i], e) < 0)
            return -1;
    return csv_write_eol(w, e);
}

/* Writes FileName then PathName of one image path. */
static int split_path(struct csv_writer *w, const char *path, struct err *e)
{
    const char *slash = strrchr(path, '/');
    size_t len = strlen(path);

    if (!slash) {
        if (csv_write_field(w, path, len, e) < 0)
            return -1;
        return csv_write_field(w, "", 0, e);
    }
    if (slash[1] == '\0')
        return err_set(e, LOADDATA_ERR_PATH, "image path \"%s\" names no file", path);
    if (csv_write_field(w, slash + 1, len - (size_t)(slash + 1 - path), e) < 0)
        return -1;
    /* A file in the root directory: its PathName is "/". */
    return csv_write_field(w, path, slash == path ? 1 : (size_t)(slash - path), e);
}

int loaddata_write(const struct plan_batch *b, const struct loaddata_opts *o,
                   struct csv_writer *w, struct err *e)
{
    static const struct loaddata_opts none = { NULL, NULL };
    struct strbuf icf = STRBUF_INIT;
    const char *tmpl;
    size_t i, j;
    int rc = -1;

    if (!o)
        o = &none;
    tmpl = o->icf_file ? o->icf_file : ICF_DEFAULT;
    if (header(b, o, w, e) < 0)
        goto out;
    for (i = 0; i < b->nsets; i++) {
        const struct plan_set *s = &b->sets[i];

        for (j = 0; j < b->ndyes; j++)
            if (split_path(w, s->paths[j], e) < 0)
                goto out;
        for (j = 0; o->icf_dir && j < b->ndyes; j++) {
            if (icf_name(tmpl, b->dyes[j], b->plate_barcode, &icf) < 0) {
                err_set(e, ENOMEM, "out of memory");
                goto out;
            }
            if (csv_write_field(w, icf.buf, icf.len, e) < 0 ||
                csv_write_str(w, o->icf_dir, e) < 0)
                goto out;
        }
        if (csv_write_str(w, b->plate_barcode, e) < 0 || csv_write_str(w, s->well, e) < 0 ||
            csv_write_fmt(w, e, "%d", s->site) < 0 ||
            csv_write_fmt(w, e, "%d", s->timepoint) < 0 ||
            csv_write_fmt(w, e, "%d", s->z) < 0 ||
            csv_write_fmt(w, e, "%lld", b->acq_id) < 0 || csv_write_eol(w, e) < 0)
            goto out;
    }
    rc = 0;
out:
    strbuf_release(&icf);
    if (rc < 0)
        err_prefix(e, "LoadData CSV of batch %s", b->id);
    return rc;
}

/* Writes the batch through w and closes it, whichever way it ends. */
static int write_and_close(struct csv_writer *w, const struct plan_batch *b,
                           const struct loaddata_opts *o, struct err *e)
{
    if (!w)
        return -1;
    if (loaddata_write(b, o, w, e) < 0) {
        csv_writer_free(w);
        return -1;
    }
    return csv_writer_close(w, e);
}

int loaddata_render(const struct plan_batch *b, const struct loaddata_opts *o,
                    struct strbuf *out, struct err *e)
{
    return write_and_close(csv_writer_strbuf(out, 0, e), b, o, e);
}

int loaddata_write_file(const struct plan_batch *b, const struct loaddata_opts *o, FILE *f,
                        const char *name, struct err *e)
{
    return write_and_close(csv_writer_file(f, name, 0, e), b, o, e);
}
