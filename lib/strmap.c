/* strmap: string-keyed hash map; see strmap.h. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_entry {
    struct strmap_entry *next;
    void *value;
    uint32_t hash;
    char key[];
};

uint32_t strmap_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct strmap_entry **slot_of(const struct strmap *m, const char *key, uint32_t h)
{
    struct strmap_entry **p;

    if (!m->nbuckets)
        return NULL;
    for (p = &m->buckets[h & (m->nbuckets - 1)]; *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
            return p;
    return p;
}

void *strmap_get(const struct strmap *m, const char *key)
{
    struct strmap_entry **p = slot_of(m, key, strmap_hash(key));

    return p && *p ? (*p)->value : NULL;
}

int strmap_has(const struct strmap *m, const char *key)
{
    struct strmap_entry **p = slot_of(m, key, strmap_hash(key));

    return p && *p;
}

static int grow(struct strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64, i;
    struct strmap_entry **b = calloc(n, sizeof(*b)), *e, *next;

    if (!b)
        return -1;
    for (i = 0; i < m->nbuckets; i++) {
        for (e = m->buckets[i]; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/*
 * Links a new entry for key with room for `extra` bytes after the key, in
 * place of any existing entry (which is returned in *was, unlinked, for the
 * caller to read and free). Returns the entry, or NULL.
 */
static struct strmap_entry *link_entry(struct strmap *m, const char *key, size_t extra,
                                       struct strmap_entry **was)
{
    uint32_t h = strmap_hash(key);
    struct strmap_entry **p, *e;
    size_t klen = strlen(key);

    *was = NULL;
    p = slot_of(m, key, h);
    if ((!p || !*p) && m->count >= m->nbuckets) {
        if (grow(m) < 0)
            return NULL;
        p = slot_of(m, key, h);
    }
    e = malloc(sizeof(*e) + klen + 1 + extra);
    if (!e)
        return NULL;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = NULL;
    if (*p) {
        *was = *p;
        e->next = (*p)->next;
    } else {
        e->next = NULL;
        m->count++;
    }
    *p = e;
    return e;
}

int strmap_put(struct strmap *m, const char *key, void *value, void **old)
{
    struct strmap_entry **p = slot_of(m, key, strmap_hash(key)), *e, *was;

    if (old)
        *old = NULL;
    /* Replacing a value keeps the entry. */
    if (p && *p) {
        if (old)
            *old = (*p)->value;
        (*p)->value = value;
        return 0;
    }
    e = link_entry(m, key, 0, &was);
    if (!e)
        return -1;
    e->value = value;
    return 0;
}

int strmap_put_bytes(struct strmap *m, const char *key, const void *data, size_t len)
{
    struct strmap_entry *e, *was;

    e = link_entry(m, key, len, &was);
    if (!e)
        return -1;
    e->value = e->key + strlen(key) + 1;
    memcpy(e->value, data, len);
    free(was);
    return 0;
}

int strmap_put_str(struct strmap *m, const char *key, const char *str)
{
    return strmap_put_bytes(m, key, str, strlen(str) + 1);
}

int strmap_remove(struct strmap *m, const char *key, void **value)
{
    struct strmap_entry **p = slot_of(m, key, strmap_hash(key)), *e;

    if (!p || !*p)
        return 0;
    e = *p;
    *p = e->next;
    if (value)
        *value = e->value;
    free(e);
    m->count--;
    return 1;
}

int strmap_each(const struct strmap *m, int (*fn)(const char *key, void *value, void *ud),
                void *ud)
{
    struct strmap_entry *e;
    size_t i;
    int rc;

    for (i = 0; i < m->nbuckets; i++) {
        for (e = m->buckets[i]; e; e = e->next) {
            rc = fn(e->key, e->value, ud);
            if (rc)
                return rc;
        }
    }
    return 0;
}

void strmap_clear(struct strmap *m, void (*free_value)(void *))
{
    struct strmap_entry *e, *next;
    size_t i;

    for (i = 0; i < m->nbuckets; i++) {
        for (e = m->buckets[i]; e; e = next) {
            next = e->next;
            if (free_value)
                free_value(e->value);
            free(e);
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}
