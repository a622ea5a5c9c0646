/* manifest: result manifests and table statistics; see manifest.h. */
#include "manifest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileutil.h"
#include "strbuf.h"

struct manifest_hasher {
    EVP_MD_CTX *ctx;
};

struct manifest_hasher *manifest_hasher_new(struct err *e)
{
    struct manifest_hasher *h = calloc(1, sizeof(*h));

    if (!h || !(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        if (h)
            EVP_MD_CTX_free(h->ctx);
        free(h);
        err_set(e, ENOMEM, "sha256: cannot initialise");
        return NULL;
    }
    return h;
}

int manifest_hasher_update(void *hv, const void *data, size_t len, struct err *e)
{
    struct manifest_hasher *h = hv;

    if (EVP_DigestUpdate(h->ctx, data, len) != 1)
        return err_set(e, EIO, "sha256: update failed");
    return 0;
}

void manifest_hasher_finish(struct manifest_hasher *h, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    hex[0] = '\0';
    if (!h)
        return;
    if (EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32) {
        for (i = 0; i < n; i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 15];
        }
        hex[64] = '\0';
    }
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int manifest_hash_fd(int fd, const char *name, char hex[65], struct err *e)
{
    struct manifest_hasher *h = manifest_hasher_new(e);
    char buf[65536];
    ssize_t n;
    int rc = h ? 0 : -1;

    while (rc == 0 && (n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0)
            rc = errno == EINTR ? 0 : err_errno(e, errno, "read %s", name);
        else
            rc = manifest_hasher_update(h, buf, (size_t)n, e);
    }
    manifest_hasher_finish(h, hex);
    if (rc < 0)
        hex[0] = '\0';
    return rc;
}

int manifest_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0 || len > 19)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

void manifest_table_release(struct manifest_table *t)
{
    free(t->name);
    free(t->file);
    json_decref(t->columns);
    memset(t, 0, sizeof(*t));
}

/* Sets name and file ("Cells.csv" gives name "Cells"). */
static int set_names(struct manifest_table *t, const char *file, struct err *e)
{
    size_t n = strlen(file);

    if (n > 4 && strcmp(file + n - 4, ".csv") == 0)
        n -= 4;
    t->file = strdup(file);
    t->name = strndup(file, n);
    if (!t->file || !t->name)
        return err_set(e, ENOMEM, "out of memory");
    return 0;
}

/* Columns of the header; the index of ImageNumber or -1. */
static int header_columns(const struct csv_record *rec, struct manifest_table *t, long *image_col,
                          const char *path, struct err *e)
{
    size_t i;

    *image_col = -1;
    if (rec->nfields == 1 && rec->fields[0].len == 0)
        return err_set(e, EINVAL, "%s: empty header", path);
    t->columns = json_array();
    if (!t->columns)
        return err_set(e, ENOMEM, "out of memory");
    for (i = 0; i < rec->nfields; i++) {
        const char *name = rec->fields[i].data;
        size_t j;

        if (rec->fields[i].len == 0)
            return err_set(e, EINVAL, "%s: header column %zu has no name", path, i + 1);
        for (j = 0; j < i; j++)
            if (strcmp(rec->fields[j].data, name) == 0)
                return err_set(e, EINVAL, "%s: column '%s' appears twice in the header", path, name);
        if (json_array_append_new(t->columns, json_string(name)) < 0)
            return err_set(e, ENOMEM, "out of memory");
        if (strcmp(name, "ImageNumber") == 0)
            *image_col = (long)i;
    }
    return 0;
}

int manifest_scan_table(const char *dir, const char *file, struct manifest_table *t,
                        struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    struct manifest_hasher *h = NULL;
    struct csv_reader *r = NULL;
    struct csv_record *rec;
    long image_col = -1;
    int rc = -1, got;

    memset(t, 0, sizeof(*t));
    if (set_names(t, file, e) < 0 || strbuf_addf(&path, "%s/%s", dir, file) < 0)
        goto out;
    h = manifest_hasher_new(e);
    r = h ? csv_reader_open(path.buf, CSV_REQUIRE_EOL, e) : NULL;
    if (!r)
        goto out;
    csv_reader_set_tap(r, manifest_hasher_update, h);
    got = csv_read(r, &rec, e);
    if (got == 0)
        err_set(e, EINVAL, "%s: empty file, no header", path.buf);
    if (got <= 0 || header_columns(rec, t, &image_col, path.buf, e) < 0)
        goto out;
    while ((got = csv_read(r, &rec, e)) == 1) {
        t->rows++;
        if (image_col >= 0) {
            const struct csv_field *f = &rec->fields[image_col];
            uint64_t v;

            if (manifest_parse_u64(f->data, f->len, &v) < 0) {
                err_set(e, EINVAL, "%s:%llu: ImageNumber '%s' is not a non-negative integer",
                        path.buf, (unsigned long long)rec->line, f->data);
                goto out;
            }
            if (v > t->image_number_max)
                t->image_number_max = v;
        }
    }
    if (got < 0)
        goto out;
    t->bytes = csv_reader_bytes(r);
    manifest_hasher_finish(h, t->sha256);
    h = NULL;
    rc = 0;
out:
    csv_reader_free(r);
    if (h)
        manifest_hasher_finish(h, t->sha256);
    if (rc < 0)
        manifest_table_release(t);
    strbuf_release(&path);
    return rc;
}

json_t *manifest_table_json(const struct manifest_table *t)
{
    return json_pack("{s:s, s:s, s:I, s:O?, s:I, s:s, s:I}",
                     "name", t->name, "file", t->file, "rows", (json_int_t)t->rows,
                     "columns", t->columns, "bytes", (json_int_t)t->bytes,
                     "sha256", t->sha256, "image_number_max", (json_int_t)t->image_number_max);
}

int manifest_table_parse(const json_t *j, struct manifest_table *t, int with_columns,
                         struct err *e)
{
    const char *name = NULL, *file = NULL, *sha = "";
    json_int_t rows = -1, bytes = -1, imax = 0;
    json_t *columns = NULL;
    json_error_t jerr;

    memset(t, 0, sizeof(*t));
    if (json_unpack_ex((json_t *)j, &jerr, 0, "{s:s, s:s, s:I, s:I, s?s, s?I, s?o}",
                       "name", &name, "file", &file, "rows", &rows, "bytes", &bytes,
                       "sha256", &sha, "image_number_max", &imax, "columns", &columns) < 0)
        return err_set(e, EINVAL, "table entry: %s", jerr.text);
    if (rows < 0 || bytes < 0 || imax < 0 || strchr(file, '/') || file[0] == '.')
        return err_set(e, EINVAL, "table entry '%s': bad rows, bytes or file name", name);
    t->name = strdup(name);
    t->file = strdup(file);
    if (!t->name || !t->file) {
        manifest_table_release(t);
        return err_set(e, ENOMEM, "out of memory");
    }
    t->rows = (uint64_t)rows;
    t->bytes = (uint64_t)bytes;
    t->image_number_max = (uint64_t)imax;
    snprintf(t->sha256, sizeof(t->sha256), "%s", sha);
    if (with_columns && json_is_array(columns))
        t->columns = json_incref(columns);
    return 0;
}

int manifest_write(const char *dir, const char *kind, json_t *root, struct err *e)
{
    struct strbuf path = STRBUF_INIT;
    char ts[32], *text = NULL;
    time_t now = time(NULL);
    struct tm tm;
    int rc = -1;

    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (json_object_set_new(root, "manifest_version", json_integer(MANIFEST_VERSION)) < 0 ||
        json_object_set_new(root, "kind", json_string(kind)) < 0 ||
        json_object_set_new(root, "created", json_string(ts)) < 0 ||
        !(text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER)) ||
        strbuf_addf(&path, "%s/%s", dir, MANIFEST_FILE) < 0) {
        err_set(e, ENOMEM, "manifest: out of memory");
        goto out;
    }
    rc = fileutil_write_atomic(path.buf, text, strlen(text), e);
out:
    free(text);
    strbuf_release(&path);
    return rc;
}

/* The end of the JSON string starting at s[0] == '"' (after its closing quote), or end. */
static const char *skip_string(const char *s, const char *end)
{
    const char *q = s + 1, *b;

    while ((q = memchr(q, '"', (size_t)(end - q))) != NULL) {
        /* A quote after an odd number of backslashes is escaped. */
        for (b = q; b > s + 1 && b[-1] == '\\'; b--)
            ;
        if ((q - b) % 2 == 0)
            return q + 1;
        q++;
    }
    return end;
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the balanced JSON array at p[0] == '[', or NULL if it does not end. */
static const char *skip_array(const char *p, const char *end)
{
    int depth = 0;

    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            continue;
        }
        if (*p == '[')
            depth++;
        else if (*p == ']' && --depth == 0)
            return p + 1;
        p++;
    }
    return NULL;
}

/*
 * Empties every array value of a "columns" member in the JSON text, in
 * place, and returns the new length. Text that is not JSON comes out as
 * broken as it went in, for the parser to report.
 */
static size_t drop_columns(char *text, size_t len)
{
    static const char key[] = "\"columns\"";
    const char *r = text, *end = text + len, *open, *q, *v, *after;
    char *w = text;

    while (r < end) {
        int is_key;

        open = memchr(r, '"', (size_t)(end - r));
        q = open ? skip_string(open, end) : end;
        is_key = open && (size_t)(q - open) == sizeof(key) - 1 &&
                 memcmp(open, key, sizeof(key) - 1) == 0;
        memmove(w, r, (size_t)(q - r));
        w += q - r;
        r = q;
        if (!is_key)
            continue;
        v = skip_space(r, end);
        if (v == end || *v != ':')
            continue;
        v = skip_space(v + 1, end);
        if (v == end || *v != '[' || !(after = skip_array(v, end)))
            continue;
        memmove(w, r, (size_t)(v - r));
        w += v - r;
        memcpy(w, "[]", 2);
        w += 2;
        r = after;
    }
    return (size_t)(w - text);
}

static json_t *read_manifest(const char *dir, const char *kind, int brief, struct err *e)
{
    struct strbuf path = STRBUF_INIT, text = STRBUF_INIT;
    const char *got_kind = "";
    json_int_t version = 0;
    json_error_t jerr;
    json_t *root = NULL;

    if (strbuf_addf(&path, "%s/%s", dir, MANIFEST_FILE) < 0) {
        err_set(e, ENOMEM, "out of memory");
        goto out;
    }
    if (access(path.buf, F_OK) < 0) {
        err_errno(e, errno, "%s: no manifest (not a finished result)", path.buf);
        goto out;
    }
    if (fileutil_read(path.buf, &text, MANIFEST_MAX, e) < 0)
        goto out;
    if (brief)
        strbuf_setlen(&text, drop_columns(text.buf, text.len));
    root = json_loadb(text.buf, text.len, 0, &jerr);
    if (!root) {
        err_set(e, EINVAL, "%s: %s", path.buf, jerr.text);
        goto out;
    }
    if (json_unpack_ex(root, &jerr, 0, "{s:I, s:s}", "manifest_version", &version,
                       "kind", &got_kind) < 0 || version != MANIFEST_VERSION ||
        strcmp(got_kind, kind) != 0) {
        err_set(e, EINVAL, "%s: not a version %d '%s' manifest", path.buf, MANIFEST_VERSION, kind);
        json_decref(root);
        root = NULL;
    }
out:
    strbuf_release(&path);
    strbuf_release(&text);
    return root;
}

json_t *manifest_read(const char *dir, const char *kind, struct err *e)
{
    return read_manifest(dir, kind, 0, e);
}

json_t *manifest_read_brief(const char *dir, const char *kind, struct err *e)
{
    return read_manifest(dir, kind, 1, e);
}
