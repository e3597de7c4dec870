/*
 * slide_cache.h - one HTTP worker's memory of slides, so that a viewer
 * panning across a slide neither reopens it for every tile nor redraws a
 * tile it has drawn, and a second slide listing does not reopen every file.
 *
 * Promise:
 *   - Open slide handles, at most max_slides, least recently used evicted
 *     first, keyed by resolved path and the file's stamp (mtime, size): a
 *     file that changed is reopened, never served from the old handle; a
 *     handle whose read failed is dropped by the caller (slide_cache_drop),
 *     because OpenSlide latches errors.
 *   - Two byte stores of opaque values under string keys, each an LRU
 *     bounded by bytes (values, keys and a fixed per-entry overhead,
 *     SLIDE_CACHE_ENTRY_OVERHEAD): encoded images (tiles, thumbnails) and
 *     slide metadata (the listing). Callers put the file's stamp into their
 *     keys, so what was made from a changed file is never found again and
 *     ages out. A value larger than its whole store is not kept.
 *   - Thread-safe: a worker's request threads (pool.h) share one cache. A
 *     handle from slide_cache_open is held until slide_cache_release: one
 *     evicted, dropped or replaced meanwhile is closed only by its last
 *     release, so a thread never reads a closed slide (OpenSlide's reads
 *     are thread-safe). Values are returned as copies.
 *   - Workers are processes, each with its own cache (http_ctx owns it;
 *     worker.c creates and frees it).
 */
#ifndef TESSERA_HTTP_SLIDE_CACHE_H
#define TESSERA_HTTP_SLIDE_CACHE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "image/slide.h"

#define SLIDE_CACHE_SLIDES 8                       /* open handles */
#define SLIDE_CACHE_IMAGE_BYTES (64u * 1024 * 1024) /* encoded tiles and thumbnails */
#define SLIDE_CACHE_META_BYTES (4u * 1024 * 1024)   /* listing metadata */
#define SLIDE_CACHE_ENTRY_OVERHEAD 96               /* bytes counted per stored value */

typedef struct slide_cache slide_cache;

typedef enum slide_cache_store {
    SLIDE_CACHE_IMAGES = 0,
    SLIDE_CACHE_META = 1,
} slide_cache_store;

typedef struct slide_cache_limits {
    int max_slides;     /* >= 1 */
    size_t image_bytes; /* bound of SLIDE_CACHE_IMAGES */
    size_t meta_bytes;  /* bound of SLIDE_CACHE_META */
} slide_cache_limits;

/* Which version of a file: its resolved path, modification time and size. */
typedef struct slide_stamp {
    char path[PATH_MAX];
    int64_t mtime_ns;
    int64_t size;
} slide_stamp;

typedef struct slide_cache_stats {
    uint64_t opens;            /* slides opened (misses and reopenings) */
    uint64_t handle_hits;      /* handles reused */
    uint64_t handle_evictions; /* handles closed to make room */
    int handles;               /* handles open now */
    uint64_t hits[2], misses[2], evictions[2]; /* per store */
    size_t bytes[2], entries[2];
} slide_cache_stats;

/* A cache with these limits (NULL: the defaults above). */
slide_cache *slide_cache_new(const slide_cache_limits *lim);

/* Closes every handle and frees every value. NULL is fine. */
void slide_cache_free(slide_cache *c);

/* stat() of an already resolved path into a stamp. TS_ERR ("no such file",
 * ...) when it cannot be read. */
int slide_stamp_of(const char *real_path, slide_stamp *stamp, char *err, size_t errlen);

/* The open slide at real_path (resolved: slide_resolve_path) and its stamp.
 * A handle opened for the same path and stamp is reused; otherwise the file
 * is opened with the submission's check (slide_open_checked against
 * data_roots) and kept, evicting the least recently used handle when full.
 * The handle belongs to the cache and is held for the caller, who gives it
 * back with slide_cache_release. TS_ERR with the reason it cannot be opened
 * (nothing is kept or held then). */
int slide_cache_open(slide_cache *c, const char *real_path, const char *data_roots, slide **out,
                     slide_stamp *stamp, char *err, size_t errlen);

/* Gives back a handle of slide_cache_open. NULL is fine. */
void slide_cache_release(slide_cache *c, slide *s);

/* Forgets the handle of real_path, if any (after a failed read); it is
 * closed once nobody holds it. */
void slide_cache_drop(slide_cache *c, const char *real_path);

/* A copy of the value under key in a store (malloc'd, the caller frees it),
 * or NULL; *len gets its size. A hit makes the entry the most recently
 * used. */
void *slide_cache_get(slide_cache *c, slide_cache_store which, const char *key, size_t *len);

/* Stores a copy of data under key (replacing a value under the same key),
 * then evicts least recently used entries until the store is within its
 * bound. */
void slide_cache_put(slide_cache *c, slide_cache_store which, const char *key, const void *data,
                     size_t len);

void slide_cache_get_stats(slide_cache *c, slide_cache_stats *out);

/* 64-bit FNV-1a of text: for cache keys and ETags (not cryptographic). */
uint64_t slide_cache_hash(const char *text);

#endif
