/*
 * objcache: the store under an informer -- for each object its key
 * ("namespace/name" or "name"), its resourceVersion and an opaque value
 * (the packed object), indexed by up to OBJCACHE_MAX_LABELS label values.
 *
 * Built for tens of thousands of small objects: each is one allocation
 * holding a 40-byte header, the key, the resourceVersion and the value.
 * The label index links entries in place (a circular list per label value
 * through the entries themselves), so it costs 16 bytes per object and
 * label instead of a copy of every key; moving an object between label
 * values, or removing it, is O(1).
 *
 * Not thread-safe: the informer locks. Pointers it returns stay valid until
 * that key is put again or removed, or the cache is freed. Errors: -1 when
 * memory runs out, the cache unchanged.
 */
#ifndef PLATEOP_OBJCACHE_H
#define PLATEOP_OBJCACHE_H

#include <stddef.h>

#define OBJCACHE_MAX_LABELS 4

struct objcache;

/* A new, empty cache indexing nlabels label values per object (0..OBJCACHE_MAX_LABELS); NULL when out of memory. */
struct objcache *objcache_new(int nlabels);

/* Frees everything; safe on NULL. */
void objcache_free(struct objcache *c);

/*
 * Stores key with rv (NULL: "") and a copy of value[0..len), replacing any
 * entry of that key. labels holds nlabels values (a NULL array or NULL
 * value: not indexed under that label). Returns 0 or -1. Cost: O(1) on
 * average plus the copy.
 */
int objcache_put(struct objcache *c, const char *key, const char *rv, const void *value,
                 size_t len, const char *const *labels);

/* key's value (its length in *len if len is not NULL) and resourceVersion (in *rv if not NULL), or NULL. */
const void *objcache_get(const struct objcache *c, const char *key, const char **rv, size_t *len);

/* Removes key; 1 if it was there, else 0. */
int objcache_remove(struct objcache *c, const char *key);

/* The number of objects. */
size_t objcache_count(const struct objcache *c);

/*
 * Visitors get each object's key, rv, value and length; a non-zero return
 * stops the walk and is returned. fn must not change the cache.
 */
typedef int (*objcache_fn)(const char *key, const char *rv, const void *value, size_t len,
                           void *ud);

/* Visits every object, in no particular order. */
int objcache_each(const struct objcache *c, objcache_fn fn, void *ud);

/* Visits the objects whose label number `label` (0-based) has this value. Cost: O(matches). */
int objcache_each_label(const struct objcache *c, int label, const char *value, objcache_fn fn,
                        void *ud);

#endif
