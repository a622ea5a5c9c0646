/*
 * objcache: keyed objects with a resourceVersion and label indexes linked
 * through the entries; see objcache.h.
 *
 * An entry is one allocation: header, one list link per indexed label,
 * then key, rv and value bytes. Each label value has a sentinel node (in a
 * strmap under the value) heading a circular doubly linked list of the
 * entries carrying that value; the sentinel goes when its list empties. A
 * sentinel is the only node that can be left linked to itself, which is
 * how an unlink knows that the list it left is now empty.
 */
#include "objcache.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct link {
    struct link *prev, *next;   /* both NULL: not in any list */
};

struct sentinel {
    struct link l;              /* first: a list node is cast back to its sentinel */
    char value[];
};

struct entry {
    struct entry *next;         /* hash chain */
    uint32_t hash;
    uint32_t len;               /* value bytes */
    uint16_t key_len;
    uint16_t rv_len;
    struct link links[];        /* nlabels of them, then key NUL rv NUL value */
};

struct objcache {
    struct entry **buckets;
    size_t nbuckets, count;
    int nlabels;
    struct strmap index[OBJCACHE_MAX_LABELS];   /* value -> struct sentinel * */
};

static char *key_of(const struct objcache *c, const struct entry *e)
{
    return (char *)(e->links + c->nlabels);
}

static char *rv_of(const struct objcache *c, const struct entry *e)
{
    return key_of(c, e) + e->key_len + 1;
}

static void *value_of(const struct objcache *c, const struct entry *e)
{
    return rv_of(c, e) + e->rv_len + 1;
}

/* The entry whose link number i is l. */
static struct entry *entry_of(struct link *l, int i)
{
    return (struct entry *)(void *)((char *)(l - i) - offsetof(struct entry, links));
}

/* The slot holding key's entry, or the empty slot ending its chain; NULL before the first put. */
static struct entry **slot_of(const struct objcache *c, const char *key, uint32_t h)
{
    struct entry **p;

    if (!c->nbuckets)
        return NULL;
    for (p = &c->buckets[h & (c->nbuckets - 1)]; *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp(key_of(c, *p), key) == 0)
            return p;
    return p;
}

static int grow(struct objcache *c)
{
    size_t n = c->nbuckets ? c->nbuckets * 2 : 64, i;
    struct entry **b = calloc(n, sizeof(*b)), *e, *next;

    if (!b)
        return -1;
    for (i = 0; i < c->nbuckets; i++) {
        for (e = c->buckets[i]; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return 0;
}

/* The sentinel of label i's value, made if absent (NULL when out of memory). */
static struct sentinel *sentinel_for(struct objcache *c, int i, const char *value)
{
    struct sentinel *s = strmap_get(&c->index[i], value);
    size_t n;

    if (s)
        return s;
    n = strlen(value);
    s = malloc(sizeof(*s) + n + 1);
    if (!s)
        return NULL;
    s->l.prev = s->l.next = &s->l;
    memcpy(s->value, value, n + 1);
    if (strmap_put(&c->index[i], value, s, NULL) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

/* Takes link i of e out of its list; the list's sentinel goes if that emptied it. */
static void unlink_label(struct objcache *c, struct entry *e, int i)
{
    struct link *l = &e->links[i], *n = l->next;

    if (!n)
        return;
    l->prev->next = n;
    n->prev = l->prev;
    l->prev = l->next = NULL;
    if (n->next == n) {
        struct sentinel *s = (struct sentinel *)(void *)n;

        strmap_remove(&c->index[i], s->value, NULL);
        free(s);
    }
}

static void unlink_labels(struct objcache *c, struct entry *e)
{
    int i;

    for (i = 0; i < c->nlabels; i++)
        unlink_label(c, e, i);
}

struct objcache *objcache_new(int nlabels)
{
    struct objcache *c;

    if (nlabels < 0 || nlabels > OBJCACHE_MAX_LABELS)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c)
        c->nlabels = nlabels;
    return c;
}

void objcache_free(struct objcache *c)
{
    struct entry *e, *next;
    size_t i;
    int l;

    if (!c)
        return;
    for (i = 0; i < c->nbuckets; i++) {
        for (e = c->buckets[i]; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(c->buckets);
    for (l = 0; l < c->nlabels; l++)
        strmap_clear(&c->index[l], free);
    free(c);
}

int objcache_put(struct objcache *c, const char *key, const char *rv, const void *value,
                 size_t len, const char *const *labels)
{
    size_t key_len = strlen(key), rv_len;
    uint32_t h = strmap_hash(key);
    struct entry **p, *e, *old;
    int i;

    if (!rv)
        rv = "";
    rv_len = strlen(rv);
    if (key_len > UINT16_MAX || rv_len > UINT16_MAX || len > UINT32_MAX)
        return -1;
    p = slot_of(c, key, h);
    if ((!p || !*p) && c->count >= c->nbuckets) {
        if (grow(c) < 0)
            return -1;
        p = slot_of(c, key, h);
    }
    e = malloc(sizeof(*e) + (size_t)c->nlabels * sizeof(struct link) + key_len + rv_len + 2 + len);
    if (!e)
        return -1;
    e->hash = h;
    e->len = (uint32_t)len;
    e->key_len = (uint16_t)key_len;
    e->rv_len = (uint16_t)rv_len;
    memcpy(key_of(c, e), key, key_len + 1);
    memcpy(rv_of(c, e), rv, rv_len + 1);
    if (len)
        memcpy(value_of(c, e), value, len);
    /* Linked in before the old entry leaves, so a shared sentinel never empties in between. */
    for (i = 0; i < c->nlabels; i++) {
        const char *v = labels ? labels[i] : NULL;
        struct sentinel *s;

        e->links[i].prev = e->links[i].next = NULL;
        if (!v)
            continue;
        s = sentinel_for(c, i, v);
        if (!s) {
            unlink_labels(c, e);
            free(e);
            return -1;
        }
        e->links[i].next = &s->l;
        e->links[i].prev = s->l.prev;
        s->l.prev->next = &e->links[i];
        s->l.prev = &e->links[i];
    }
    old = *p;
    e->next = old ? old->next : NULL;
    *p = e;
    if (old) {
        unlink_labels(c, old);
        free(old);
    } else {
        c->count++;
    }
    return 0;
}

const void *objcache_get(const struct objcache *c, const char *key, const char **rv, size_t *len)
{
    struct entry **p = slot_of(c, key, strmap_hash(key));

    if (!p || !*p)
        return NULL;
    if (rv)
        *rv = rv_of(c, *p);
    if (len)
        *len = (*p)->len;
    return value_of(c, *p);
}

int objcache_remove(struct objcache *c, const char *key)
{
    struct entry **p = slot_of(c, key, strmap_hash(key)), *e;

    if (!p || !*p)
        return 0;
    e = *p;
    *p = e->next;
    unlink_labels(c, e);
    free(e);
    c->count--;
    return 1;
}

size_t objcache_count(const struct objcache *c)
{
    return c->count;
}

static int visit(const struct objcache *c, const struct entry *e, objcache_fn fn, void *ud)
{
    return fn(key_of(c, e), rv_of(c, e), value_of(c, e), e->len, ud);
}

int objcache_each(const struct objcache *c, objcache_fn fn, void *ud)
{
    struct entry *e;
    size_t i;
    int rc;

    for (i = 0; i < c->nbuckets; i++) {
        for (e = c->buckets[i]; e; e = e->next) {
            rc = visit(c, e, fn, ud);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int objcache_each_label(const struct objcache *c, int label, const char *value, objcache_fn fn,
                        void *ud)
{
    struct sentinel *s;
    struct link *l;
    int rc;

    if (label < 0 || label >= c->nlabels || !(s = strmap_get(&c->index[label], value)))
        return 0;
    for (l = s->l.next; l != &s->l; l = l->next) {
        rc = visit(c, entry_of(l, label), fn, ud);
        if (rc)
            return rc;
    }
    return 0;
}
