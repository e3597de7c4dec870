/*
 * view_cache.h - one HTTP worker's cache of rendered workflow views (issue
 * 16: a GET of a workflow served without re-reading its jobs or building
 * its JSON again while nothing it shows has changed).
 *
 * An entry is the bytes of one GET /api/workflows/{id} reply (whole, a page
 * of jobs, or the compact form) with what those bytes depend on
 * (view_deps): the workflow's stamp when it was read (store.h,
 * store_workflow_stamp: its newest event, its batch handles, its state and
 * place in the line), the line's figures its waiting reasons quote, if any,
 * and until when a time-dependent reason stays true. A request reads the
 * workflow's stamp (one indexed statement, which is also the owner check)
 * and serves the entry only when view_deps_current() says every input is
 * unchanged; otherwise it renders again and replaces the entry.
 *
 * Contract:
 *   - Thread-safe: one mutex, held only to find, insert or drop entries,
 *     never while rendering or sending.
 *   - Bytes are reference-counted and immutable: a reply being sent keeps
 *     its bytes alive after the entry is replaced or evicted, and
 *     libmicrohttpd sends them without a copy (view_bytes_release is its
 *     free callback).
 *   - Memory is bounded: the bytes of all entries stay within max_bytes,
 *     least recently used first out; a view larger than max_bytes / 4 is
 *     not kept (it would push out everything else).
 *   - Tenancy is not the cache's business: entries are keyed by workflow,
 *     and the caller checks the owner (the stamp read) before serving.
 */
#ifndef TESSERA_HTTP_VIEW_CACHE_H
#define TESSERA_HTTP_VIEW_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The default bound of one worker's cache. */
#define VIEW_CACHE_DEFAULT_BYTES ((size_t)64 << 20)

/* Rendered bytes with their ETag (a hash of the bytes, quoted). */
typedef struct view_bytes view_bytes;

/* Takes data (malloc'd, len bytes); one reference, the caller's. */
view_bytes *view_bytes_new(char *data, size_t len);
const char *view_bytes_data(const view_bytes *b);
size_t view_bytes_len(const view_bytes *b);
const char *view_bytes_etag(const view_bytes *b);
void view_bytes_retain(view_bytes *b);
/* Drops a reference (void * so that it is a libmicrohttpd free callback);
 * NULL is fine. */
void view_bytes_release(void *b);

/* Which reply of a workflow: its id and the jobs the reply carries. */
typedef struct view_key {
    int64_t workflow_id;
    size_t offset, limit; /* as view_page */
    bool none;
} view_key;

/* What an entry's bytes were made from. */
typedef struct view_deps {
    wf_state state;
    int queue_position;
    int64_t last_seq, batch_handles;
    unsigned want;        /* STORE_STAMP_* the bytes quote */
    int running_cpus;     /* when want has STORE_STAMP_RUNNING_CPUS */
    int active_users;     /* when want has STORE_STAMP_ACTIVE_USERS */
    double valid_until;   /* epoch s after which a reason may read otherwise; 0 = never */
} view_deps;

/* True when bytes made with deps are still what a rendering at now, with
 * the store at stamp (read with deps->want), would produce. */
bool view_deps_current(const view_deps *deps, const store_workflow_stamp *stamp, double now);

typedef struct view_cache view_cache;

typedef struct view_cache_stats {
    size_t entries, bytes, max_bytes;
    uint64_t hits, misses, evictions;
    size_t rendering, waiting; /* renderings in progress, threads waiting for one */
} view_cache_stats;

view_cache *view_cache_new(size_t max_bytes);
/* Frees the cache; bytes still being sent live on until released. */
void view_cache_free(view_cache *c);

/* The entry for key: true with *bytes (a reference for the caller) and
 * *deps; false when there is none. Counts a hit or a miss only through
 * view_cache_count (the caller knows whether the entry was current). */
bool view_cache_find(view_cache *c, const view_key *key, view_bytes **bytes, view_deps *deps);

/* Stores bytes (the cache takes its own reference) under key, replacing
 * what was there, and evicts least recently used entries beyond the bound. */
void view_cache_put(view_cache *c, const view_key *key, view_bytes *bytes, const view_deps *deps);

/* One rendering per key at a time, so that a burst of requests for a view
 * that just changed (four clients polling a 10,000-job workflow) renders
 * it once, not once each. True: the caller renders, then calls
 * view_cache_render_end. False: another thread was rendering it; this one
 * waited until it finished and should look the entry up again (it may
 * still be stale for the caller, who may then render). */
bool view_cache_render_begin(view_cache *c, const view_key *key);
void view_cache_render_end(view_cache *c, const view_key *key);

/* Counts a request served from the cache (hit) or rendered (miss). */
void view_cache_count(view_cache *c, bool hit);

void view_cache_get_stats(view_cache *c, view_cache_stats *out);

#endif
