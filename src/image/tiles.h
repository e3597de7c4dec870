/*
 * tiles.h - a thread pool over the tiles of an image, with results handed
 * on in tile order.
 *
 * Threads take tiles in increasing order and run work() on them in
 * parallel; emit() is then called for each tile strictly in tile order, one
 * at a time, by the thread that worked on it (which waits for its turn
 * meanwhile). A thread's per-tile results therefore live in that thread's
 * own slot (indexed by `thread`) until emitted, memory stays bounded by the
 * thread count, and the output is the same whatever the thread count.
 */
#ifndef TESSERA_IMAGE_TILES_H
#define TESSERA_IMAGE_TILES_H

#include <signal.h>
#include <stddef.h>

typedef int (*tiles_work_fn)(void *arg, int thread, size_t tile, char *err, size_t errlen);
typedef int (*tiles_emit_fn)(void *arg, int thread, size_t tile, char *err, size_t errlen);

/* Runs work then emit over tiles 0..n-1 on `threads` threads (>= 1). The
 * first TS_ERR from either (or *stop becoming non-zero, if stop is given)
 * stops the pool: no new tile is started, and that error is returned
 * ("interrupted" for stop). TS_OK when every tile was emitted. */
int tiles_run(size_t n, int threads, tiles_work_fn work, tiles_emit_fn emit, void *arg,
              volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
