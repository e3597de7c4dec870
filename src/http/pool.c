/*
 * pool.c - fair handler threads behind pool.h.
 *
 * One mutex guards the queue. Keys with work waiting or running are lanes
 * in a list; a thread looking for work takes, among the lanes that have a
 * job waiting and run fewer than max_per_key, the one served longest ago (a
 * new key has never been served, so it comes first): keys take turns, and a
 * key that just got a thread waits for every other waiting key. Lanes exist
 * only while they have jobs, so the list is as long as the number of
 * callers with requests in flight, a handful in practice.
 */
#include "http/pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/liveness.h"
#include "util/util.h"

typedef struct pool_job {
    struct pool_job *next;
    http_pool_fn fn;
    void *arg;
} pool_job;

typedef struct lane {
    struct lane *prev, *next; /* the ring, head = next to be served */
    uint64_t key;
    pool_job *head, *tail;    /* waiting, oldest first */
    int running;
    uint64_t served;          /* the pool's turn counter when it last got a thread (0: never) */
} lane;

typedef struct worker_thread {
    http_pool *pool;
    pthread_t thread;
    store *st;
    bool started;
} worker_thread;

struct http_pool {
    pthread_mutex_t mu;
    pthread_cond_t work; /* a job may have become runnable, or stop */
    lane *first, *last;
    size_t pending; /* waiting + running */
    uint64_t turns; /* jobs handed to threads so far */
    int max_per_key;
    bool stopping;
    worker_thread *threads;
    int n_threads;
    store_batcher *batcher; /* the threads' submissions commit together */
};

/* The most submissions one commit holds: each thread has at most one in
 * flight, so this only bounds a commit's size for very many threads. */
#define POOL_MAX_BATCH 64

static lane *lane_find(http_pool *p, uint64_t key) {
    for (lane *l = p->first; l; l = l->next)
        if (l->key == key) return l;
    return NULL;
}

static void lane_unlink(http_pool *p, lane *l) {
    if (l->prev) l->prev->next = l->next;
    else p->first = l->next;
    if (l->next) l->next->prev = l->prev;
    else p->last = l->prev;
    l->prev = l->next = NULL;
}

static void lane_append(http_pool *p, lane *l) {
    l->prev = p->last;
    l->next = NULL;
    if (p->last) p->last->next = l;
    else p->first = l;
    p->last = l;
}

/* See pool.h. A thread is woken only when the new job may run now (its
 * lane is under the cap): a job of a capped lane is taken by the thread
 * that ends one of the lane's jobs, and waking another only to find nothing
 * runnable cost a futex round trip and the mutex per request (issue 16).
 * The signal comes after the unlock, so the woken thread does not block on
 * the mutex still held here; no wake-up is lost, since a waiter released
 * the mutex only inside pthread_cond_wait. */
void http_pool_submit(http_pool *p, uint64_t key, http_pool_fn fn, void *arg) {
    pool_job *j = ts_calloc(1, sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    lane *l = lane_find(p, key);
    if (!l) {
        l = ts_calloc(1, sizeof(*l));
        l->key = key;
        lane_append(p, l);
    }
    if (l->tail) l->tail->next = j;
    else l->head = j;
    l->tail = j;
    p->pending++;
    bool runnable = l->running < p->max_per_key;
    pthread_mutex_unlock(&p->mu);
    if (runnable) pthread_cond_signal(&p->work);
}

/* The next job to run (mutex held), its lane in *from; NULL when no lane
 * may run one now. */
static pool_job *take(http_pool *p, lane **from) {
    lane *best = NULL;
    for (lane *l = p->first; l; l = l->next)
        if (l->head && l->running < p->max_per_key && (!best || l->served < best->served))
            best = l;
    if (!best) return NULL;
    pool_job *j = best->head;
    best->head = j->next;
    if (!best->head) best->tail = NULL;
    best->running++;
    best->served = ++p->turns;
    *from = best;
    return j;
}

/* True if some waiting job may run now (mutex held). */
static bool any_runnable(const http_pool *p) {
    for (const lane *l = p->first; l; l = l->next)
        if (l->head && l->running < p->max_per_key) return true;
    return false;
}

/* A job of lane l ended (mutex held): the lane goes when it is empty. A
 * lane that was at its cap may now run another: the calling thread takes
 * the next job itself (thread_main), so nobody else needs waking here. */
static void finished(http_pool *p, lane *l) {
    l->running--;
    p->pending--;
    if (!l->head && l->running == 0) {
        lane_unlink(p, l);
        free(l);
    }
}

static void *thread_main(void *arg) {
    worker_thread *t = arg;
    http_pool *p = t->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        lane *l = NULL;
        pool_job *j = take(p, &l);
        if (!j) {
            if (p->stopping && p->pending == 0) break;
            pthread_cond_wait(&p->work, &p->mu);
            continue;
        }
        /* Wakes pass on: a thread that took a job wakes another while
         * runnable jobs remain, so jobs submitted while the threads were
         * waking up never wait for a running one to end. */
        bool more = any_runnable(p);
        pthread_mutex_unlock(&p->mu);
        if (more) pthread_cond_signal(&p->work);
        j->fn(j->arg, t->st);
        free(j);
        pthread_mutex_lock(&p->mu);
        finished(p, l);
        if (p->stopping && p->pending == 0) pthread_cond_broadcast(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

size_t http_pool_pending(http_pool *p) {
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Before the first job is submitted: no thread touches its handle yet. */
void http_pool_observe(http_pool *p, store_observer fn, void *ctx) {
    for (int i = 0; i < p->n_threads; i++)
        if (p->threads[i].st) store_set_observer(p->threads[i].st, fn, ctx);
}

/* The commit thread's commits, shown to the master as handler calls are
 * (util/liveness.h). */
static int commit_begin(void *live) {
    return liveness_request_begin(live, "commit of submissions");
}

static void commit_end(void *live, int token) {
    liveness_request_end(live, token);
}

/* Before the first job is submitted: the batcher reads it unlocked. */
void http_pool_watch(http_pool *p, liveness_slot *live) {
    if (live) store_batcher_watch(p->batcher, commit_begin, commit_end, live);
}

/* Opens the stores first, so a pool that cannot have them starts no thread
 * (never creating the database: the master did, at start, and a worker that
 * finds it missing answers 503 until it is back);
 * threads start with every signal blocked (signals belong to the worker's
 * main thread). */
http_pool *http_pool_start(const char *db_url, int threads, int max_per_key, char *err,
                           size_t errlen) {
    http_pool *p = ts_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    p->n_threads = threads > 0 ? threads : 1;
    p->max_per_key = max_per_key > 0 ? max_per_key : (p->n_threads / 2 > 0 ? p->n_threads / 2 : 1);
    p->threads = ts_calloc((size_t)p->n_threads, sizeof(worker_thread));
    p->batcher = store_batcher_new(POOL_MAX_BATCH);
    for (int i = 0; i < p->n_threads; i++) {
        p->threads[i].pool = p;
        if (db_url && store_open_existing(db_url, &p->threads[i].st, err, errlen) != TS_OK)
            goto fail;
        /* One parsed copy of a stored spec per worker, not per thread. */
        if (i > 0) store_share_spec_cache(p->threads[i].st, p->threads[0].st);
        if (p->threads[i].st) store_set_batcher(p->threads[i].st, p->batcher);
    }
    /* Submissions wait for their commit on the batcher's thread, not on a
     * request thread (store_submit_async). */
    if (db_url && store_batcher_serve(p->batcher, db_url, p->threads[0].st, err, errlen) != TS_OK)
        goto fail;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < p->n_threads; i++) {
        int rc = pthread_create(&p->threads[i].thread, NULL, thread_main, &p->threads[i]);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            ts_errf(err, errlen, "cannot start request thread %d: %s", i, strerror(rc));
            goto fail;
        }
        p->threads[i].started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
fail:
    http_pool_stop(p);
    return NULL;
}

void http_pool_stop(http_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) {
        if (p->threads[i].started) pthread_join(p->threads[i].thread, NULL);
        if (p->threads[i].st) store_close(p->threads[i].st);
    }
    free(p->threads);
    store_batcher_free(p->batcher);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
