/*
 * tiles.c - the ordered tile pool of tiles.h on POSIX threads.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "image/tiles.h"
#include "util/util.h"

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t turn; /* signalled whenever next_emit advances or the pool fails */
    size_t n, next_take, next_emit;
    bool failed;
    char err[TS_ERRLEN];
    tiles_work_fn work;
    tiles_emit_fn emit;
    void *arg;
    volatile sig_atomic_t *stop;
} pool;

typedef struct worker {
    pool *p;
    int thread;
} worker;

/* Records the first failure and wakes every waiting thread. Lock held. */
static void pool_fail(pool *p, const char *msg) {
    if (!p->failed) ts_strlcpy(p->err, msg, sizeof(p->err));
    p->failed = true;
    pthread_cond_broadcast(&p->turn);
}

/* The next tile to work on, or (size_t)-1 when there is none or the pool
 * has stopped. Lock held. */
static size_t pool_take(pool *p) {
    if (p->stop && *p->stop) pool_fail(p, "interrupted");
    if (p->failed || p->next_take >= p->n) return (size_t)-1;
    return p->next_take++;
}

/* Waits for tile's turn and emits it. Lock held on entry and exit; emit()
 * itself runs under the lock, which is what serialises the output. */
static void pool_emit_in_order(pool *p, int thread, size_t tile) {
    while (!p->failed && p->next_emit != tile) pthread_cond_wait(&p->turn, &p->lock);
    if (p->failed) return;
    char err[TS_ERRLEN] = "";
    if (p->emit(p->arg, thread, tile, err, sizeof(err)) != TS_OK) {
        pool_fail(p, err[0] ? err : "failed");
        return;
    }
    p->next_emit++;
    pthread_cond_broadcast(&p->turn);
}

static void *pool_thread(void *v) {
    worker *w = v;
    pool *p = w->p;
    pthread_mutex_lock(&p->lock);
    for (size_t tile; (tile = pool_take(p)) != (size_t)-1;) {
        pthread_mutex_unlock(&p->lock);
        char err[TS_ERRLEN] = "";
        int rc = p->work(p->arg, w->thread, tile, err, sizeof(err));
        pthread_mutex_lock(&p->lock);
        if (rc != TS_OK)
            pool_fail(p, err[0] ? err : "failed");
        else
            pool_emit_in_order(p, w->thread, tile);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int tiles_run(size_t n, int threads, tiles_work_fn work, tiles_emit_fn emit, void *arg,
              volatile sig_atomic_t *stop, char *err, size_t errlen) {
    if (threads < 1) threads = 1;
    if ((size_t)threads > n && n > 0) threads = (int)n;
    pool p = {.n = n, .work = work, .emit = emit, .arg = arg, .stop = stop};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.turn, NULL);
    pthread_t *tid = ts_calloc((size_t)threads, sizeof(*tid));
    worker *ws = ts_calloc((size_t)threads, sizeof(*ws));
    int started = 0;
    for (int i = 0; i < threads; i++) {
        ws[i] = (worker){.p = &p, .thread = i};
        /* Thread 0 is this one; the rest are new. */
        if (i > 0 && pthread_create(&tid[i], NULL, pool_thread, &ws[i]) != 0) break;
        started++;
    }
    pool_thread(&ws[0]);
    for (int i = 1; i < started; i++) pthread_join(tid[i], NULL);
    int rc = p.failed ? TS_ERR : TS_OK;
    if (rc != TS_OK) ts_errf(err, errlen, "%s", p.err);
    pthread_cond_destroy(&p.turn);
    pthread_mutex_destroy(&p.lock);
    free(tid);
    free(ws);
    return rc;
}
