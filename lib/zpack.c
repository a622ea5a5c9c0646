/*
 * zpack: short texts deflated against a dictionary of their own kind; see
 * zpack.h.
 *
 * Raw deflate (no zlib header or checksum: the cache never leaves the
 * process) with a 4 KiB window and a small hash, so a packer costs about
 * 40 KB instead of deflate's default 260 KB; the texts are short, and a
 * larger window would find nothing more.
 */
#include "zpack.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define WINDOW_BITS 12
#define MEM_LEVEL 5

struct zpack {
    z_stream def;
    unsigned char dict[ZPACK_DICT_MAX];
    size_t dict_len;
    struct strbuf scratch;      /* deflate's output before it is appended */
};

/* Appends v as a little-endian base-128 varint. */
static int put_varint(struct strbuf *out, size_t v)
{
    unsigned char b[10];
    size_t n = 0;

    do {
        b[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    return strbuf_add(out, b, n);
}

/* Reads a varint at *p, advancing it. */
static size_t get_varint(const unsigned char **p)
{
    size_t v = 0;
    unsigned shift = 0;

    while (shift < 64) {
        unsigned char b = *(*p)++;

        v |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
    }
    return v;
}

struct zpack *zpack_new(void)
{
    struct zpack *z = calloc(1, sizeof(*z));

    if (z)
        strbuf_init(&z->scratch);
    if (z && deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -WINDOW_BITS, MEM_LEVEL,
                          Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        z = NULL;
    }
    return z;
}

void zpack_free(struct zpack *z)
{
    if (!z)
        return;
    deflateEnd(&z->def);
    strbuf_release(&z->scratch);
    free(z);
}

int zpack_pack(struct zpack *z, const char *text, size_t len, struct strbuf *out)
{
    size_t start = out->len, bound;

    if (!z->dict_len && len) {
        z->dict_len = len < sizeof(z->dict) ? len : sizeof(z->dict);
        memcpy(z->dict, text, z->dict_len);
    }
    bound = deflateBound(&z->def, (uLong)len);
    strbuf_reset(&z->scratch);
    if (strbuf_grow(&z->scratch, bound) < 0 || deflateReset(&z->def) != Z_OK ||
        deflateSetDictionary(&z->def, z->dict, (uInt)z->dict_len) != Z_OK)
        return -1;
    z->def.next_in = (Bytef *)(uintptr_t)text;
    z->def.avail_in = (uInt)len;
    z->def.next_out = (Bytef *)z->scratch.buf;
    z->def.avail_out = (uInt)bound;
    if (deflate(&z->def, Z_FINISH) != Z_STREAM_END)
        return -1;
    strbuf_setlen(&z->scratch, bound - z->def.avail_out);
    if (put_varint(out, len) < 0 || put_varint(out, z->scratch.len) < 0 ||
        strbuf_add(out, z->scratch.buf, z->scratch.len) < 0) {
        strbuf_setlen(out, start);
        return -1;
    }
    return 0;
}

size_t zpack_size(const void *packed)
{
    const unsigned char *p = packed;
    size_t zlen;

    get_varint(&p);
    zlen = get_varint(&p);
    return (size_t)(p - (const unsigned char *)packed) + zlen;
}

int zpack_unpack(const struct zpack *z, struct zpack_reader *r, const void *packed,
                 struct strbuf *out)
{
    const unsigned char *p = packed;
    size_t len = get_varint(&p), zlen = get_varint(&p);
    z_stream *s = r->stream;
    int rc;

    strbuf_reset(out);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || inflateInit2(s, -WINDOW_BITS) != Z_OK) {
            free(s);
            return -1;
        }
        r->stream = s;
    } else if (inflateReset(s) != Z_OK) {
        return -1;
    }
    if (strbuf_grow(out, len) < 0 ||
        (z->dict_len && inflateSetDictionary(s, z->dict, (uInt)z->dict_len) != Z_OK))
        return -1;
    s->next_in = (Bytef *)(uintptr_t)p;
    s->avail_in = (uInt)zlen;
    s->next_out = (Bytef *)out->buf;
    s->avail_out = (uInt)len;
    rc = inflate(s, Z_FINISH);
    if (rc != Z_STREAM_END || s->avail_out != 0)
        return -1;
    strbuf_setlen(out, len);
    return 0;
}

void zpack_reader_release(struct zpack_reader *r)
{
    if (!r->stream)
        return;
    inflateEnd(r->stream);
    free(r->stream);
    r->stream = NULL;
}
