/* analysis: reading Analysis resources; see analysis.h. */
#include "analysis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "quantity.h"
#include "strbuf.h"

static const char *str_at(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static long long int_at(const json_t *obj, const char *key, long long def)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? json_integer_value(v) : def;
}

static int bool_at(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

/* Empty strings mean "unset", as kubectl users write `wells: ""`. */
static const char *opt_str(const json_t *obj, const char *key)
{
    const char *s = str_at(obj, key);

    return s && *s ? s : NULL;
}

/* The output dir must stay relative and inside the work volume. */
static int check_output(const char *path, struct err *e)
{
    const char *p = path;

    if (path[0] == '/')
        return err_set(e, EINVAL, "spec.output.path %s: must be relative to the work volume", path);
    while (*p) {
        size_t n = strcspn(p, "/");

        if ((n == 2 && strncmp(p, "..", 2) == 0) || (n == 1 && p[0] == '.'))
            return err_set(e, EINVAL, "spec.output.path %s: '.' and '..' are not allowed", path);
        p += n;
        if (*p == '/')
            p++;
    }
    return 0;
}

static char *join_channels(const json_t *arr)
{
    struct strbuf sb = STRBUF_INIT;
    const json_t *v;
    size_t i;

    json_array_foreach(arr, i, v) {
        if (!json_is_string(v))
            continue;
        if (sb.len)
            strbuf_addch(&sb, ',');
        strbuf_adds(&sb, json_string_value(v));
    }
    return sb.len ? strbuf_detach(&sb, NULL) : NULL;
}

int ana_parse(struct ana *a, json_t *obj, struct err *e)
{
    const json_t *meta, *spec, *batching, *filters, *mem, *cp, *out, *chans;
    const char *by, *outpath;
    struct filter f;
    struct strbuf sb = STRBUF_INIT;

    memset(a, 0, sizeof(*a));
    a->obj = json_incref(obj);
    meta = json_object_get(obj, "metadata");
    spec = json_object_get(obj, "spec");
    a->ns = str_at(meta, "namespace");
    a->name = str_at(meta, "name");
    a->uid = str_at(meta, "uid");
    a->generation = int_at(meta, "generation", 0);
    a->created = str_at(meta, "creationTimestamp");
    a->deleting = json_object_get(meta, "deletionTimestamp") != NULL;
    a->status = json_object_get(obj, "status");
    if (!a->ns || !a->name || !a->uid) {
        err_set(e, EINVAL, "metadata: namespace, name and uid are required");
        goto fail;
    }
    if (!json_is_object(spec)) {
        err_set(e, EINVAL, "spec is missing");
        goto fail;
    }
    a->plate_acq = int_at(spec, "plateAcquisition", 0);
    a->pipeline = opt_str(spec, "pipeline");
    if (a->plate_acq <= 0 || !a->pipeline) {
        err_set(e, EINVAL, "spec.plateAcquisition and spec.pipeline are required");
        goto fail;
    }
    a->image = opt_str(spec, "image");

    batching = json_object_get(spec, "batching");
    by = str_at(batching, "by");
    a->by = !by || strcmp(by, "well") == 0 ? ANA_BY_WELL
          : strcmp(by, "site") == 0        ? ANA_BY_SITE
          : strcmp(by, "plate") == 0       ? ANA_BY_PLATE
                                           : (enum ana_batching)-1;
    if ((int)a->by < 0) {
        err_set(e, EINVAL, "spec.batching.by: '%s' is not one of well, site, plate", by);
        goto fail;
    }
    a->batch_size = (int)int_at(batching, "size", 1);
    if (a->batch_size < 1) {
        err_set(e, EINVAL, "spec.batching.size: must be at least 1");
        goto fail;
    }

    filters = json_object_get(spec, "filters");
    a->wells = opt_str(filters, "wells");
    a->sites = opt_str(filters, "sites");
    a->z = opt_str(filters, "z");
    chans = json_object_get(filters, "channels");
    if (json_is_array(chans))
        a->channels = join_channels(chans);
    filter_init(&f);
    if (filter_parse(&f, a->wells, a->sites, a->z, a->channels, NULL, e) < 0) {
        err_prefix(e, "spec.filters");
        goto fail;
    }
    filter_release(&f);

    a->resources = json_object_get(spec, "resources");
    a->retries = (int)int_at(spec, "retries", 2);
    a->max_failed = (int)int_at(spec, "maxFailedBatches", 0);
    a->timeout_s = (int)int_at(spec, "timeoutSeconds", 7200);
    if (a->retries < 0 || a->retries > 10 || a->max_failed < 0 || a->timeout_s < 1) {
        err_set(e, EINVAL, "spec: retries must be 0..10, maxFailedBatches >= 0, timeoutSeconds >= 1");
        goto fail;
    }
    a->depends_on = json_object_get(spec, "dependsOn");
    if (a->depends_on && !json_is_array(a->depends_on))
        a->depends_on = NULL;
    a->use_icf = bool_at(spec, "useIlluminationCorrection");
    a->start_early = bool_at(spec, "startBeforeAcquisitionFinished");
    a->strict = bool_at(spec, "strict");
    a->priority = (int)int_at(spec, "priority", 0);

    mem = json_object_get(spec, "memory");
    a->mem_factor = json_is_number(json_object_get(mem, "retryFactor"))
                        ? json_number_value(json_object_get(mem, "retryFactor")) : 2.0;
    if (a->mem_factor < 1.0)
        a->mem_factor = 1.0;
    /* int-or-string: an integer is bytes, as in any Kubernetes quantity. */
    if (json_is_integer(json_object_get(mem, "max"))) {
        json_int_t bytes = json_integer_value(json_object_get(mem, "max"));

        if (bytes < 1) {
            err_set(e, EINVAL, "spec.memory.max: %lld is not a memory size", (long long)bytes);
            goto fail;
        }
        snprintf(a->mem_max_buf, sizeof(a->mem_max_buf), "%lld", (long long)bytes);
        a->mem_max = a->mem_max_buf;
    } else {
        unsigned long long bytes;

        a->mem_max = opt_str(mem, "max");
        if (a->mem_max && quantity_parse(a->mem_max, &bytes) < 0) {
            err_set(e, EINVAL, "spec.memory.max: '%s' is not a memory quantity (e.g. 16Gi)",
                    a->mem_max);
            goto fail;
        }
    }

    cp = json_object_get(spec, "cellprofiler");
    a->cp_args = json_object_get(cp, "args");
    if (a->cp_args && !json_is_array(a->cp_args))
        a->cp_args = NULL;

    out = json_object_get(spec, "output");
    outpath = opt_str(out, "path");
    if (outpath) {
        if (check_output(outpath, e) < 0)
            goto fail;
        a->output = strdup(outpath);
    } else {
        strbuf_addf(&sb, "%s/%s", a->ns, a->name);
        a->output = strbuf_detach(&sb, NULL);
    }
    if (!a->output) {
        err_set(e, ENOMEM, "out of memory");
        goto fail;
    }
    return 0;
fail:
    ana_release(a);
    return -1;
}

void ana_release(struct ana *a)
{
    if (!a)
        return;
    json_decref(a->obj);
    free(a->channels);
    free(a->output);
    memset(a, 0, sizeof(*a));
}

void ana_key(const struct ana *a, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", a->ns, a->name);
}
