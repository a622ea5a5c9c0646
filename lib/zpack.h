/*
 * zpack: short texts (cached Kubernetes objects, a few hundred bytes of
 * JSON each) compressed against a dictionary of their own kind.
 *
 * Objects of one kind share most of their text -- keys, label names, the
 * namespace -- so raw deflate primed with one such object as its preset
 * dictionary shrinks them 3-5 times where deflate alone barely helps. The
 * dictionary is the first text packed (its first ZPACK_DICT_MAX bytes) and
 * never changes afterwards, for every packed text needs the same one.
 *
 * A packed text is self-describing: varints of the text's length and of
 * the deflate stream's, then the raw deflate stream. Packing is single-threaded (one writer per
 * zpack); unpacking takes a zpack_reader of its own, so readers on other
 * threads run in parallel with the writer and with each other, provided
 * they read a packed text only after it was published to them (e.g. under
 * a lock its writer released): the dictionary is set before the first
 * text is packed.
 *
 * Errors come back as -1: out of memory, or (unpack) a corrupt input.
 */
#ifndef PLATEOP_ZPACK_H
#define PLATEOP_ZPACK_H

#include <stddef.h>

#include "strbuf.h"

#define ZPACK_DICT_MAX 3072     /* fits deflate's 4 KiB window with room to look ahead */

struct zpack;

/* A new packer without a dictionary yet; NULL when out of memory. About 40 KB. */
struct zpack *zpack_new(void);

/* Frees z; safe on NULL. No reader of z may be in use. */
void zpack_free(struct zpack *z);

/*
 * Appends the packed form of text[0..len) to out. The first call makes
 * text the dictionary. Returns 0, or -1 when out of memory (out is then
 * as it was). Cost: O(len) deflate at level 6.
 */
int zpack_pack(struct zpack *z, const char *text, size_t len, struct strbuf *out);

/* A decompressor for one thread; ZPACK_READER_INIT, then zpack_reader_release(). */
struct zpack_reader {
    void *stream;               /* a zlib inflate stream, made on first use */
};

#define ZPACK_READER_INIT { NULL }

/*
 * Replaces out's contents with the text packed at packed (NUL terminated,
 * as strbuf always is); packed is trusted to be zpack_pack()'s output, of
 * which the header gives the length. Returns 0, or -1 if memory runs out
 * or the text is not what its header says. Cost: O(text length).
 */
int zpack_unpack(const struct zpack *z, struct zpack_reader *r, const void *packed,
                 struct strbuf *out);

/* The bytes zpack_pack() wrote at packed, header included. */
size_t zpack_size(const void *packed);

void zpack_reader_release(struct zpack_reader *r);

#endif
