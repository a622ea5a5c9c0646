/*
 * strmap: a hash map from C strings to pointers.
 *
 * Chained buckets; each entry is one allocation holding its key, so an
 * entry costs about 40 bytes plus the key. The table doubles when it gets
 * fuller than one entry per bucket. The map owns copies of its keys, never
 * its values: callers free values (strmap_clear takes a function for that).
 * Not thread-safe: callers lock.
 */
#ifndef PLATEOP_STRMAP_H
#define PLATEOP_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_entry;

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets;
    size_t count;
};

#define STRMAP_INIT { NULL, 0, 0 }

/*
 * The hash strmap buckets keys by (FNV-1a: short keys such as
 * "namespace/name", no adversary that needs SipHash); for other tables of
 * such keys.
 */
uint32_t strmap_hash(const char *s);

/* The value stored under key, or NULL. O(1) on average. */
void *strmap_get(const struct strmap *m, const char *key);

/* Non-zero when key is present (even with a NULL value). */
int strmap_has(const struct strmap *m, const char *key);

/*
 * Stores value under key, replacing any previous value, which is returned
 * in *old (if old is not NULL; NULL when there was none). Returns 0, or -1
 * on allocation failure (the map is unchanged).
 */
int strmap_put(struct strmap *m, const char *key, void *value, void **old);

/*
 * Stores a copy of str under key inside the entry's own allocation (one
 * allocation per entry instead of two); strmap_get then returns that copy,
 * valid until the key is replaced or removed. A map filled this way is
 * cleared with free_value NULL. Returns 0, or -1 on allocation failure (the
 * map is unchanged).
 */
int strmap_put_str(struct strmap *m, const char *key, const char *str);

/* As strmap_put_str() for len bytes of data, which may hold NULs. */
int strmap_put_bytes(struct strmap *m, const char *key, const void *data, size_t len);

/* Removes key; returns 1 and its value in *value (if not NULL), or 0 if absent. */
int strmap_remove(struct strmap *m, const char *key, void **value);

/*
 * Calls fn for every entry, in no particular order; fn must not change the
 * map. Stops when fn returns non-zero and returns that value; else 0.
 */
int strmap_each(const struct strmap *m, int (*fn)(const char *key, void *value, void *ud),
                void *ud);

/* Removes everything, calling free_value (if not NULL) on each value. */
void strmap_clear(struct strmap *m, void (*free_value)(void *));

#endif
