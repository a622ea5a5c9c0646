/* window: the cross-Analysis batch window; see window.h. */
#include "window.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    char *created;
    int priority;
    int unstarted;
    int want;           /* still wanted after the last grant */
};

struct window {
    pthread_mutex_t lock;
    int size;
    struct entry *e;
    size_t n, cap;
};

struct window *window_new(int size)
{
    struct window *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->size = size < 0 ? 0 : size;
    return w;
}

void window_free(struct window *w)
{
    size_t i;

    if (!w)
        return;
    for (i = 0; i < w->n; i++) {
        free(w->e[i].key);
        free(w->e[i].created);
    }
    free(w->e);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Whether a is served before b. */
static int before(const struct entry *a, const struct entry *b)
{
    int c;

    if (a->priority != b->priority)
        return a->priority > b->priority;
    c = strcmp(a->created, b->created);
    if (c)
        return c < 0;
    return strcmp(a->key, b->key) < 0;
}

static struct entry *find(struct window *w, const char *key)
{
    size_t i;

    for (i = 0; i < w->n; i++) {
        if (strcmp(w->e[i].key, key) == 0)
            return &w->e[i];
    }
    return NULL;
}

static struct entry *find_or_add(struct window *w, const char *key, const char *created)
{
    struct entry *en = find(w, key);

    if (en)
        return en;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct entry *ne = realloc(w->e, cap * sizeof(*ne));

        if (!ne)
            return NULL;
        w->e = ne;
        w->cap = cap;
    }
    en = &w->e[w->n];
    memset(en, 0, sizeof(*en));
    en->key = strdup(key);
    en->created = strdup(created ? created : "");
    if (!en->key || !en->created) {
        free(en->key);
        free(en->created);
        return NULL;
    }
    w->n++;
    return en;
}

static int used(const struct window *w)
{
    int total = 0;
    size_t i;

    for (i = 0; i < w->n; i++)
        total += w->e[i].unstarted;
    return total;
}

int window_acquire(struct window *w, const char *key, int priority, const char *created,
                   int unstarted, int want)
{
    struct entry *en;
    int room, grant = 0;
    size_t i;

    if (want <= 0 && unstarted <= 0) {
        window_release(w, key);
        return 0;
    }
    pthread_mutex_lock(&w->lock);
    en = find_or_add(w, key, created);
    if (!en)
        goto out;
    en->priority = priority;
    en->unstarted = unstarted;
    if (w->size == 0) {
        grant = want;
        en->want = 0;
        goto out;
    }
    room = w->size - used(w);
    for (i = 0; i < w->n && room > 0; i++) {
        if (&w->e[i] != en && w->e[i].want > 0 && before(&w->e[i], en))
            room -= w->e[i].want;
    }
    grant = room <= 0 ? 0 : room < want ? room : want;
    en->unstarted += grant;
    en->want = want - grant;
out:
    pthread_mutex_unlock(&w->lock);
    return grant;
}

void window_release(struct window *w, const char *key)
{
    struct entry *en;

    pthread_mutex_lock(&w->lock);
    en = find(w, key);
    if (en) {
        free(en->key);
        free(en->created);
        *en = w->e[--w->n];
    }
    pthread_mutex_unlock(&w->lock);
}

static int cmp_entries(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

void window_wake(struct window *w, void (*fn)(const char *key, void *ud), void *ud)
{
    struct entry **waiting = NULL;
    char **keys = NULL;
    size_t i, n = 0;

    pthread_mutex_lock(&w->lock);
    if (w->size == 0 || used(w) >= w->size || w->n == 0)
        goto unlock;
    waiting = calloc(w->n, sizeof(*waiting));
    keys = calloc(w->n, sizeof(*keys));
    if (!waiting || !keys)
        goto unlock;
    for (i = 0; i < w->n; i++) {
        if (w->e[i].want > 0)
            waiting[n++] = &w->e[i];
    }
    qsort(waiting, n, sizeof(*waiting), cmp_entries);
    for (i = 0; i < n; i++)
        keys[i] = strdup(waiting[i]->key);
unlock:
    pthread_mutex_unlock(&w->lock);
    /* Calls happen unlocked, so fn may take its own locks. */
    for (i = 0; i < n; i++) {
        if (keys[i])
            fn(keys[i], ud);
        free(keys[i]);
    }
    free(keys);
    free(waiting);
}

int window_used(struct window *w)
{
    int n;

    pthread_mutex_lock(&w->lock);
    n = used(w);
    pthread_mutex_unlock(&w->lock);
    return n;
}
