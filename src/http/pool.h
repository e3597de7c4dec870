/*
 * pool.h - the request handler threads of one HTTP worker (issue 12,
 * defect 13: with handlers run on libmicrohttpd's single polling thread, one
 * tenant's 3 MB reads stalled every other tenant of the worker).
 *
 * Why this design (and not libmicrohttpd's own thread modes):
 *   - libmicrohttpd's thread pool binds each connection to one thread for
 *     its whole life: a quiet tenant's keep-alive connection that lands on
 *     the thread of a heavy reader waits behind it all the same;
 *   - thread-per-connection makes threads (and store handles) as many as
 *     connections, which any client can open by the thousand, and has no
 *     suspend/resume, so the WebSocket upgrades and the drain get harder.
 * Here libmicrohttpd keeps its one polling thread for all socket I/O
 * (accepting, parsing, reading bodies, writing replies of any size, slow
 * clients) and never runs a handler: a complete request is suspended and
 * handed to this pool, a fixed number of threads, each with its own store
 * handle, which runs the handler, builds the response and resumes the
 * connection. Waiting requests are taken fairly: each key (the caller's
 * claimed identity) has its own FIFO, keys take turns, and one key never
 * holds more than max_per_key threads at once, so the others always find
 * threads free however many requests one tenant sends.
 *
 * Contract:
 *   - http_pool_submit() never blocks and never fails; fn(job, st) runs
 *     exactly once on a pool thread, with that thread's store handle (NULL
 *     only if db_url was NULL).
 *   - The threads' handles share one store_batcher with a committer thread
 *     of its own (store_batcher_serve): a submission queued there
 *     (store_submit_async) holds no request thread while it waits for its
 *     commit, so the cap on a key's threads does not cap how many of its
 *     submissions one commit holds, and every submission in flight in the
 *     process is one commit (store.h, group commit).
 *   - http_pool_stop() runs what is still queued, then joins the threads and
 *     closes their stores. No submit may race with it.
 */
#ifndef TESSERA_HTTP_POOL_H
#define TESSERA_HTTP_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/liveness.h"

typedef struct http_pool http_pool;

typedef void (*http_pool_fn)(void *job, store *st);

/* threads (>= 1) threads, each opening db_url (NULL: no store); a key runs
 * at most max_per_key jobs at once (0: half the threads, at least 1). NULL
 * with err when a store cannot be opened or a thread started. */
http_pool *http_pool_start(const char *db_url, int threads, int max_per_key, char *err,
                           size_t errlen);

/* Queues fn(job, st) under key. */
/* Observes every thread's store calls (store_set_observer), for latency
 * metrics. Call before the first http_pool_submit. */
void http_pool_observe(http_pool *p, store_observer fn, void *ctx);

/* Shows each commit of the submissions' commit thread to the master while
 * it runs, as a handler call (util/liveness.h): a commit that hangs gets
 * the worker replaced, as a request thread hung in it did. NULL live does
 * nothing. Call before the first http_pool_submit. */
void http_pool_watch(http_pool *p, liveness_slot *live);

void http_pool_submit(http_pool *p, uint64_t key, http_pool_fn fn, void *job);

/* Jobs queued or running now. */
size_t http_pool_pending(http_pool *p);

/* See the contract above. NULL is fine. */
void http_pool_stop(http_pool *p);

#endif
