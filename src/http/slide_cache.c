/*
 * slide_cache.c - the LRU stores behind slide_cache.h.
 *
 * Handles: at most a handful listed, so a small array searched linearly,
 * each entry stamped with a use counter; the smallest counter is the least
 * recently used. A handle is counted while requests hold it: one evicted,
 * dropped or replaced while held leaves the array for a list of retired
 * handles and is closed by its last release, so no thread ever reads a
 * closed slide. Values: a doubly linked list in recency order (head = most
 * recent) with a hash map (core/map.h) from key to entry, so a hit and an
 * eviction are O(1) whatever the number of tiles held.
 *
 * One mutex guards everything; it is never held while a slide is opened or
 * read (slow), only while the tables change or a value is copied.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/map.h"
#include "http/slide_cache.h"
#include "util/util.h"

typedef struct handle {
    char *path; /* NULL = free slot */
    int64_t mtime_ns, size;
    slide *s;
    uint64_t used; /* the cache's clock at the last use */
    int refs;      /* requests holding it (slide_cache_open .. slide_cache_release) */
} handle;

/* A handle no longer listed but still held: closed by its last release. */
typedef struct retired {
    struct retired *next;
    slide *s;
    int refs;
} retired;

typedef struct entry {
    struct entry *prev, *next; /* recency list */
    char *key;
    unsigned char *data;
    size_t len, cost;
} entry;

typedef struct store {
    map index; /* key -> entry */
    entry *head, *tail;
    size_t bytes, max_bytes, count;
    uint64_t hits, misses, evictions;
} store;

struct slide_cache {
    pthread_mutex_t mu;
    handle *handles;
    retired *retired;
    int max_slides;
    uint64_t clock;
    uint64_t opens, handle_hits, handle_evictions;
    store stores[2];
};

uint64_t slide_cache_hash(const char *text) {
    return ts_hash_str(text);
}

slide_cache *slide_cache_new(const slide_cache_limits *lim) {
    slide_cache_limits d = {SLIDE_CACHE_SLIDES, SLIDE_CACHE_IMAGE_BYTES, SLIDE_CACHE_META_BYTES};
    if (lim == NULL) lim = &d;
    slide_cache *c = ts_calloc(1, sizeof(*c));
    c->max_slides = lim->max_slides > 0 ? lim->max_slides : 1;
    c->handles = ts_calloc((size_t)c->max_slides, sizeof(handle));
    pthread_mutex_init(&c->mu, NULL);
    c->stores[SLIDE_CACHE_IMAGES].max_bytes = lim->image_bytes;
    c->stores[SLIDE_CACHE_META].max_bytes = lim->meta_bytes;
    for (int i = 0; i < 2; i++) map_init(&c->stores[i].index);
    return c;
}

/* Unlists h (mutex held): closed now when nobody holds it, else retired
 * until the last release. */
static void handle_close(slide_cache *c, handle *h) {
    if (h->refs == 0) {
        slide_close(h->s);
    } else {
        retired *r = ts_calloc(1, sizeof(*r));
        *r = (retired){.next = c->retired, .s = h->s, .refs = h->refs};
        c->retired = r;
    }
    free(h->path);
    *h = (handle){0};
}

/* Unlinks e from the recency list and the index, and frees it. */
static void entry_remove(store *st, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else st->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else st->tail = e->prev;
    map_del_str(&st->index, e->key);
    st->bytes -= e->cost;
    st->count--;
    free(e->key);
    free(e->data);
    free(e);
}

void slide_cache_free(slide_cache *c) {
    if (c == NULL) return;
    for (int i = 0; i < c->max_slides; i++)
        if (c->handles[i].path) {
            c->handles[i].refs = 0; /* freeing: no request runs any more */
            handle_close(c, &c->handles[i]);
        }
    while (c->retired) {
        retired *r = c->retired;
        c->retired = r->next;
        slide_close(r->s);
        free(r);
    }
    free(c->handles);
    pthread_mutex_destroy(&c->mu);
    for (int i = 0; i < 2; i++) {
        while (c->stores[i].head) entry_remove(&c->stores[i], c->stores[i].head);
        map_free(&c->stores[i].index);
    }
    free(c);
}

int slide_stamp_of(const char *real_path, slide_stamp *stamp, char *err, size_t errlen) {
    struct stat st;
    if (stat(real_path, &st) != 0) {
        ts_errf(err, errlen, "%s", errno == ENOENT ? "no such file" : strerror(errno));
        return TS_ERR;
    }
    ts_strlcpy(stamp->path, real_path, sizeof(stamp->path));
    stamp->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    stamp->size = (int64_t)st.st_size;
    return TS_OK;
}

/* The handle of path, or NULL. */
static handle *handle_find(slide_cache *c, const char *path) {
    for (int i = 0; i < c->max_slides; i++)
        if (c->handles[i].path && strcmp(c->handles[i].path, path) == 0) return &c->handles[i];
    return NULL;
}

/* A free slot, else the least recently used one, unlisted first (evicted). */
static handle *handle_slot(slide_cache *c) {
    handle *oldest = NULL;
    for (int i = 0; i < c->max_slides; i++) {
        handle *h = &c->handles[i];
        if (!h->path) return h;
        if (!oldest || h->used < oldest->used) oldest = h;
    }
    handle_close(c, oldest);
    c->handle_evictions++;
    return oldest;
}

/* The listed handle of path with this stamp, held for the caller (mutex
 * held); a listed handle of another stamp is unlisted (the file changed:
 * never serve the old handle). NULL when there is none. */
static slide *handle_take(slide_cache *c, const char *path, const slide_stamp *stamp) {
    handle *h = handle_find(c, path);
    if (h && h->mtime_ns == stamp->mtime_ns && h->size == stamp->size) {
        h->used = ++c->clock;
        h->refs++;
        return h->s;
    }
    if (h) handle_close(c, h);
    return NULL;
}

/* See slide_cache.h. The slide is opened without the mutex (it takes
 * milliseconds to seconds); if another thread listed the same file
 * meanwhile, its handle is used and ours closed. */
int slide_cache_open(slide_cache *c, const char *real_path, const char *data_roots, slide **out,
                     slide_stamp *stamp, char *err, size_t errlen) {
    *out = NULL;
    if (slide_stamp_of(real_path, stamp, err, errlen) != TS_OK) return TS_ERR;
    pthread_mutex_lock(&c->mu);
    *out = handle_take(c, real_path, stamp);
    if (*out) c->handle_hits++;
    pthread_mutex_unlock(&c->mu);
    if (*out) return TS_OK;
    /* Opened before a slot is taken, so a file that fails evicts nothing. */
    slide *s = NULL;
    if (slide_open_checked(real_path, data_roots, &s, err, errlen) != TS_OK) return TS_ERR;
    pthread_mutex_lock(&c->mu);
    c->opens++;
    *out = handle_take(c, real_path, stamp);
    if (*out == NULL) {
        handle *h = handle_slot(c);
        *h = (handle){.path = ts_strdup(real_path), .mtime_ns = stamp->mtime_ns,
                      .size = stamp->size, .s = s, .used = ++c->clock, .refs = 1};
        *out = s;
        s = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    slide_close(s); /* lost the race: another thread's handle serves */
    return TS_OK;
}

void slide_cache_release(slide_cache *c, slide *s) {
    if (c == NULL || s == NULL) return;
    slide *closing = NULL;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->max_slides; i++)
        if (c->handles[i].path && c->handles[i].s == s) {
            if (c->handles[i].refs > 0) c->handles[i].refs--;
            pthread_mutex_unlock(&c->mu);
            return;
        }
    for (retired **r = &c->retired; *r; r = &(*r)->next)
        if ((*r)->s == s) {
            if (--(*r)->refs <= 0) {
                retired *gone = *r;
                *r = gone->next;
                closing = gone->s;
                free(gone);
            }
            break;
        }
    pthread_mutex_unlock(&c->mu);
    slide_close(closing);
}

void slide_cache_drop(slide_cache *c, const char *real_path) {
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->max_slides; i++)
        if (c->handles[i].path && strcmp(c->handles[i].path, real_path) == 0)
            handle_close(c, &c->handles[i]);
    pthread_mutex_unlock(&c->mu);
}

/* Moves e to the front of the recency list. */
static void entry_touch(store *st, entry *e) {
    if (st->head == e) return;
    e->prev->next = e->next;
    if (e->next) e->next->prev = e->prev;
    else st->tail = e->prev;
    e->prev = NULL;
    e->next = st->head;
    st->head->prev = e;
    st->head = e;
}

void *slide_cache_get(slide_cache *c, slide_cache_store which, const char *key, size_t *len) {
    store *st = &c->stores[which];
    void *copy = NULL;
    pthread_mutex_lock(&c->mu);
    entry *e = map_get_str(&st->index, key);
    if (e == NULL) {
        st->misses++;
    } else {
        st->hits++;
        entry_touch(st, e);
        *len = e->len;
        copy = ts_malloc(e->len ? e->len : 1);
        memcpy(copy, e->data, e->len);
    }
    pthread_mutex_unlock(&c->mu);
    return copy;
}

void slide_cache_put(slide_cache *c, slide_cache_store which, const char *key, const void *data,
                     size_t len) {
    store *st = &c->stores[which];
    pthread_mutex_lock(&c->mu);
    entry *old = map_get_str(&st->index, key);
    if (old) entry_remove(st, old);
    size_t cost = len + strlen(key) + SLIDE_CACHE_ENTRY_OVERHEAD;
    if (cost > st->max_bytes) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    while (st->bytes + cost > st->max_bytes && st->tail) {
        entry_remove(st, st->tail);
        st->evictions++;
    }
    entry *e = ts_calloc(1, sizeof(*e));
    e->key = ts_strdup(key);
    e->data = ts_malloc(len ? len : 1);
    if (len) memcpy(e->data, data, len);
    e->len = len;
    e->cost = cost;
    e->next = st->head;
    if (st->head) st->head->prev = e;
    st->head = e;
    if (!st->tail) st->tail = e;
    map_put_str(&st->index, e->key, e);
    st->bytes += cost;
    st->count++;
    pthread_mutex_unlock(&c->mu);
}

void slide_cache_get_stats(slide_cache *c, slide_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (slide_cache_stats){.opens = c->opens, .handle_hits = c->handle_hits,
                               .handle_evictions = c->handle_evictions};
    for (int i = 0; i < c->max_slides; i++)
        if (c->handles[i].path) out->handles++;
    for (int i = 0; i < 2; i++) {
        out->hits[i] = c->stores[i].hits;
        out->misses[i] = c->stores[i].misses;
        out->evictions[i] = c->stores[i].evictions;
        out->bytes[i] = c->stores[i].bytes;
        out->entries[i] = c->stores[i].count;
    }
    pthread_mutex_unlock(&c->mu);
}
