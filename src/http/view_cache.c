/*
 * view_cache.c - see view_cache.h.
 *
 * Entries live in a chained hash table (by key) and on one recency list
 * (most recently used at the head); eviction takes from the tail. The
 * table doubles when it holds more entries than buckets, so a lookup stays
 * a short chain however many workflows are read.
 */
#include "http/view_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct view_bytes {
    _Atomic long refs;
    char *data;
    size_t len;
    char etag[24]; /* "\"" + 16 hex + "\"" */
};

/* A hash of the bytes, eight at a time (a 3 MB view is hashed at every
 * rendering): the ETag names the exact reply, so a client's If-None-Match
 * holds whatever the stamp logic decides. Not cryptographic: an ETag only
 * ever matches the caller's own earlier reply of the same workflow. */
static uint64_t hash_bytes(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 32;
    }
    for (; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

view_bytes *view_bytes_new(char *data, size_t len) {
    view_bytes *b = ts_calloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    b->data = data;
    b->len = len;
    snprintf(b->etag, sizeof(b->etag), "\"%016llx\"", (unsigned long long)hash_bytes(data, len));
    return b;
}

const char *view_bytes_data(const view_bytes *b) {
    return b->data;
}

size_t view_bytes_len(const view_bytes *b) {
    return b->len;
}

const char *view_bytes_etag(const view_bytes *b) {
    return b->etag;
}

void view_bytes_retain(view_bytes *b) {
    atomic_fetch_add(&b->refs, 1);
}

void view_bytes_release(void *arg) {
    view_bytes *b = arg;
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1) return;
    free(b->data);
    free(b);
}

bool view_deps_current(const view_deps *d, const store_workflow_stamp *s, double now) {
    if (d->state != s->state || d->queue_position != s->queue_position ||
        d->last_seq != s->last_seq || d->batch_handles != s->batch_handles)
        return false;
    if ((d->want & STORE_STAMP_RUNNING_CPUS) && d->running_cpus != s->running_cpus) return false;
    if ((d->want & STORE_STAMP_ACTIVE_USERS) && d->active_users != s->active_users) return false;
    return d->valid_until <= 0 || now < d->valid_until;
}

typedef struct entry {
    view_key key;
    view_deps deps;
    view_bytes *bytes;
    struct entry *chain;      /* next in the bucket */
    struct entry *prev, *next; /* the recency list */
} entry;

/* A rendering in progress; freed by whoever leaves it last. */
typedef struct flight {
    view_key key;
    bool done;
    int waiters;
    struct flight *next;
} flight;

struct view_cache {
    pthread_mutex_t mu;
    pthread_cond_t landed; /* a flight is done */
    flight *flights;
    entry **buckets;
    size_t n_buckets, n_entries, bytes, max_bytes;
    entry *head, *tail; /* most and least recently used */
    uint64_t hits, misses, evictions;
};

static uint64_t key_hash(const view_key *k) {
    uint64_t h = (uint64_t)k->workflow_id * 0x9E3779B97F4A7C15ULL;
    h ^= (uint64_t)k->offset * 0xC2B2AE3D27D4EB4FULL;
    h ^= (uint64_t)k->limit * 0x165667B19E3779F9ULL;
    return h ^ (k->none ? 0x27D4EB2F165667C5ULL : 0) ^ (h >> 29);
}

static bool key_equal(const view_key *a, const view_key *b) {
    return a->workflow_id == b->workflow_id && a->offset == b->offset && a->limit == b->limit &&
           a->none == b->none;
}

view_cache *view_cache_new(size_t max_bytes) {
    view_cache *c = ts_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->landed, NULL);
    c->n_buckets = 64;
    c->buckets = ts_calloc(c->n_buckets, sizeof(entry *));
    c->max_bytes = max_bytes;
    return c;
}

static void entry_free(entry *e) {
    view_bytes_release(e->bytes);
    free(e);
}

void view_cache_free(view_cache *c) {
    if (!c) return;
    for (entry *e = c->head, *next; e; e = next) {
        next = e->next;
        entry_free(e);
    }
    free(c->buckets);
    pthread_cond_destroy(&c->landed);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The bucket slot that points to key's entry (or to NULL at the chain's
 * end). Mutex held. */
static entry **slot_of(view_cache *c, const view_key *key) {
    entry **p = &c->buckets[key_hash(key) & (c->n_buckets - 1)];
    while (*p && !key_equal(&(*p)->key, key)) p = &(*p)->chain;
    return p;
}

static void list_unlink(view_cache *c, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(view_cache *c, entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

/* Takes e out of the table and the list and frees it. Mutex held. */
static void drop(view_cache *c, entry *e) {
    entry **p = slot_of(c, &e->key);
    if (*p == e) *p = e->chain;
    list_unlink(c, e);
    c->n_entries--;
    c->bytes -= e->bytes->len;
    entry_free(e);
}

/* Twice the buckets, every entry rehashed. Mutex held. */
static void grow(view_cache *c) {
    size_t n = c->n_buckets * 2;
    entry **b = ts_calloc(n, sizeof(entry *));
    for (size_t i = 0; i < c->n_buckets; i++)
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->chain;
            entry **slot = &b[key_hash(&e->key) & (n - 1)];
            e->chain = *slot;
            *slot = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

bool view_cache_find(view_cache *c, const view_key *key, view_bytes **bytes, view_deps *deps) {
    pthread_mutex_lock(&c->mu);
    entry *e = *slot_of(c, key);
    if (e) {
        list_unlink(c, e);
        list_push_front(c, e);
        view_bytes_retain(e->bytes);
        *bytes = e->bytes;
        *deps = e->deps;
    }
    pthread_mutex_unlock(&c->mu);
    return e != NULL;
}

void view_cache_put(view_cache *c, const view_key *key, view_bytes *bytes, const view_deps *deps) {
    if (bytes->len > c->max_bytes / 4) return;
    pthread_mutex_lock(&c->mu);
    entry *old = *slot_of(c, key);
    if (old) drop(c, old);
    while (c->tail && c->bytes + bytes->len > c->max_bytes) {
        drop(c, c->tail);
        c->evictions++;
    }
    if (c->n_entries >= c->n_buckets) grow(c);
    entry *e = ts_calloc(1, sizeof(*e));
    e->key = *key;
    e->deps = *deps;
    view_bytes_retain(bytes);
    e->bytes = bytes;
    entry **slot = slot_of(c, key);
    e->chain = *slot;
    *slot = e;
    list_push_front(c, e);
    c->n_entries++;
    c->bytes += bytes->len;
    pthread_mutex_unlock(&c->mu);
}

bool view_cache_render_begin(view_cache *c, const view_key *key) {
    pthread_mutex_lock(&c->mu);
    flight *f = c->flights;
    while (f && !key_equal(&f->key, key)) f = f->next;
    if (!f) {
        f = ts_calloc(1, sizeof(*f));
        f->key = *key;
        f->next = c->flights;
        c->flights = f;
        pthread_mutex_unlock(&c->mu);
        return true;
    }
    f->waiters++;
    while (!f->done) pthread_cond_wait(&c->landed, &c->mu);
    if (--f->waiters == 0) free(f);
    pthread_mutex_unlock(&c->mu);
    return false;
}

void view_cache_render_end(view_cache *c, const view_key *key) {
    pthread_mutex_lock(&c->mu);
    flight **p = &c->flights;
    while (*p && !key_equal(&(*p)->key, key)) p = &(*p)->next;
    flight *f = *p;
    if (f) {
        *p = f->next;
        f->done = true;
        if (f->waiters == 0) free(f);
        else pthread_cond_broadcast(&c->landed);
    }
    pthread_mutex_unlock(&c->mu);
}

void view_cache_count(view_cache *c, bool hit) {
    pthread_mutex_lock(&c->mu);
    if (hit) c->hits++;
    else c->misses++;
    pthread_mutex_unlock(&c->mu);
}

void view_cache_get_stats(view_cache *c, view_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = (view_cache_stats){c->n_entries, c->bytes, c->max_bytes, c->hits, c->misses,
                              c->evictions, 0, 0};
    for (const flight *f = c->flights; f; f = f->next) {
        out->rendering++;
        out->waiting += (size_t)f->waiters;
    }
    pthread_mutex_unlock(&c->mu);
}
