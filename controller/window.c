/* window: the cross-Analysis batch window and per-namespace quota shares; see window.h. */
#include "window.h"
#include "monotime.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* How long a grant counts while the caches do not show its Jobs (a failed create). */
#define GRANT_TTL_S 30.0

struct entry {
    char *key;
    char *ns;
    char *created;
    int priority;
    int waiting;
    int nopod;
    int started;
    int want;           /* still wanted after the last grant */
    int target;         /* batches with a Job once the granted ones show */
    double granted_at;  /* monotonic time of the last grant */
    int room;           /* the namespace's quota room as last observed, -1: no limit */
    unsigned long seen; /* when room was observed (a counter) */
};

struct window {
    pthread_mutex_t lock;
    int size;
    unsigned long clock;
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

static void entry_free(struct entry *en)
{
    free(en->key);
    free(en->ns);
    free(en->created);
}

void window_free(struct window *w)
{
    size_t i;

    if (!w)
        return;
    for (i = 0; i < w->n; i++)
        entry_free(&w->e[i]);
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

static struct entry *find_or_add(struct window *w, const struct window_claim *c)
{
    struct entry *en = find(w, c->key);

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
    en->key = strdup(c->key);
    en->ns = strdup(c->ns ? c->ns : "");
    en->created = strdup(c->created ? c->created : "");
    if (!en->key || !en->ns || !en->created) {
        entry_free(en);
        return NULL;
    }
    w->n++;
    return en;
}

/* Granted Jobs the caches do not show yet (at most what it still lacks). */
static int unseen(const struct entry *en, double now)
{
    int n = en->target - en->started;

    if (n <= 0 || now - en->granted_at > GRANT_TTL_S)
        return 0;
    return n;
}

static int used(const struct window *w, double now)
{
    int total = 0;
    size_t i;

    for (i = 0; i < w->n; i++)
        total += w->e[i].waiting + unseen(&w->e[i], now);
    return total;
}

static int cmp_entries(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

    return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

static int min3(long a, long b, long c)
{
    long m = a < b ? a : b;

    m = m < c ? m : c;
    return m < 0 ? 0 : m > INT_MAX ? INT_MAX : (int)m;
}

/*
 * What each entry would be granted now, in serving order: out[i] is the
 * grant of w->e[i]. Each namespace's room is its latest observed quota room
 * less the pods still to come (Jobs without a pod, grants not seen yet);
 * an entry served earlier holds its whole claim on its namespace's room but
 * only what it can use of the window. Returns -1 on ENOMEM.
 */
static int simulate(struct window *w, double now, int *out)
{
    struct entry **order = calloc(w->n + 1, sizeof(*order));
    long *room = calloc(w->n + 1, sizeof(*room));   /* by the first entry of each namespace */
    size_t *first = calloc(w->n + 1, sizeof(*first));
    unsigned long *seen = calloc(w->n + 1, sizeof(*seen));
    long wroom = w->size ? w->size - used(w, now) : LONG_MAX;
    size_t i, j;
    int rc = -1;

    if (!order || !room || !first || !seen)
        goto out;
    for (i = 0; i < w->n; i++) {
        for (j = 0; j < i && strcmp(w->e[j].ns, w->e[i].ns) != 0; j++)
            ;
        first[i] = j;
        if (j == i || w->e[i].seen > seen[j]) {
            seen[j] = w->e[i].seen;
            room[j] = w->e[i].room < 0 ? LONG_MAX : w->e[i].room;
        }
    }
    for (i = 0; i < w->n; i++) {
        if (room[first[i]] != LONG_MAX)
            room[first[i]] -= w->e[i].nopod + unseen(&w->e[i], now);
        order[i] = &w->e[i];
    }
    qsort(order, w->n, sizeof(*order), cmp_entries);
    for (i = 0; i < w->n; i++) {
        size_t k = (size_t)(order[i] - w->e);
        long *r = &room[first[k]];
        int g = min3(order[i]->want, wroom, *r);

        out[k] = g;
        wroom -= g;
        if (*r != LONG_MAX)
            *r -= order[i]->want;
    }
    rc = 0;
out:
    free(order);
    free(room);
    free(first);
    free(seen);
    return rc;
}

int window_acquire(struct window *w, const struct window_claim *c)
{
    struct entry *en;
    int *grants = NULL, again, grant = 0;
    double now = monotime_now();

    if (c->want <= 0 && c->waiting <= 0) {
        window_release(w, c->key);
        return 0;
    }
    pthread_mutex_lock(&w->lock);
    en = find_or_add(w, c);
    if (!en)
        goto out;
    en->priority = c->priority;
    en->waiting = c->waiting;
    en->nopod = c->nopod;
    en->started = c->started;
    en->room = c->quota_room;
    en->seen = ++w->clock;
    /* The first new batches in plan order are the ones granted before. */
    again = unseen(en, now);
    if (again > c->want)
        again = c->want;
    en->want = c->want - again;
    grants = calloc(w->n, sizeof(*grants));
    if (!grants || simulate(w, now, grants) < 0) {
        en->want = 0;
        goto out;
    }
    grant = grants[en - w->e];
    en->want -= grant;
    if (grant > 0) {
        en->target = c->started + again + grant;
        en->granted_at = now;
    }
    grant += again;
out:
    pthread_mutex_unlock(&w->lock);
    free(grants);
    return grant;
}

void window_release(struct window *w, const char *key)
{
    struct entry *en;

    pthread_mutex_lock(&w->lock);
    en = find(w, key);
    if (en) {
        entry_free(en);
        *en = w->e[--w->n];
    }
    pthread_mutex_unlock(&w->lock);
}

void window_wake(struct window *w, void (*fn)(const char *key, void *ud), void *ud)
{
    struct entry **waiting = NULL;
    char **keys = NULL;
    int *grants = NULL;
    size_t i, n = 0;

    pthread_mutex_lock(&w->lock);
    if (w->n == 0)
        goto unlock;
    waiting = calloc(w->n, sizeof(*waiting));
    keys = calloc(w->n, sizeof(*keys));
    grants = calloc(w->n, sizeof(*grants));
    if (!waiting || !keys || !grants || simulate(w, monotime_now(), grants) < 0)
        goto unlock;
    for (i = 0; i < w->n; i++) {
        if (grants[i] > 0)
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
    free(grants);
}

int window_used(struct window *w)
{
    int n;

    pthread_mutex_lock(&w->lock);
    n = used(w, monotime_now());
    pthread_mutex_unlock(&w->lock);
    return n;
}
