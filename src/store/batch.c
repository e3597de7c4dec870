/*
 * batch.c - group commit of submissions (store.h, store_batcher): the
 * threads of one process, each with its own store handle, queue their
 * submissions here; one of them commits what is queued in one transaction
 * and one fsync, and every caller returns once the commit holding its
 * submission is over.
 *
 * Leader and followers, no thread of its own: a caller that finds no
 * commit under way becomes the committer. It first takes the database's
 * write lock (sqlite_submit_begin, which may wait for another process),
 * and only then takes the queue - at most max_batch, oldest first - so
 * that everything that arrived while it waited rides along. Meanwhile the
 * others wait on the condition variable; when the commit is over they
 * wake, those whose submission was in it return, and the first of the rest
 * commits the next batch. A caller whose submission did not fit loops and
 * waits for the next one, so nothing waits past a bounded number of
 * commits ahead of it (FIFO).
 *
 * Why this pays: a commit costs one fsync of the WAL (about 2 ms on a
 * disk), whatever it holds, and each submission is only a few inserts; with
 * N requests in flight a commit holds up to N of them.
 *
 * With a committer thread (batch_serve; an HTTP worker has one) nobody
 * leads: the thread commits whatever is queued, and a submission may be
 * queued without anybody waiting for it (batch_enqueue), its on_done
 * called after its commit. A request thread then holds no thread while
 * its submission waits for the disk, so a commit holds every submission in
 * flight in the process, not only as many as there are request threads
 * (issue 16: at most 4 of one user's with 8 threads, a quarter of what a
 * 32-connection client had in flight; with a commit holding them all,
 * POST /api/workflows made 1.6x the requests/s at 0.7x the CPU each).
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "store/backends.h"
#include "util/util.h"

struct store_batcher {
    pthread_mutex_t mu;
    pthread_cond_t over;   /* a commit ended */
    pthread_cond_t queued; /* something was queued, or stop (committer thread) */
    store_submit_item *head, *tail; /* queued, oldest first */
    size_t waiting;
    bool committing;
    size_t max_batch;
    store_submit_item **taken; /* the committer's batch (max_batch slots) */
    uint64_t commits, submissions;
    size_t largest;
    /* The committer thread (batch_serve), when there is one. */
    bool serving, stopping;
    pthread_t committer;
    const batch_ops *ops;
    void *handle;
    store *owned;
    int (*watch_begin)(void *ctx); /* store_batcher_watch */
    void (*watch_end)(void *ctx, int token);
    void *watch_ctx;
};

store_batcher *store_batcher_new(size_t max_batch) {
    store_batcher *b = ts_calloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->over, NULL);
    pthread_cond_init(&b->queued, NULL);
    b->max_batch = max_batch > 0 ? max_batch : 1;
    b->taken = ts_calloc(b->max_batch, sizeof(*b->taken));
    return b;
}

/* The committer thread, if any, commits what is still queued first. */
void store_batcher_free(store_batcher *b) {
    if (b == NULL) return;
    if (b->serving) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_signal(&b->queued);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->committer, NULL);
        store_close(b->owned);
    }
    pthread_cond_destroy(&b->queued);
    pthread_cond_destroy(&b->over);
    pthread_mutex_destroy(&b->mu);
    free(b->taken);
    free(b);
}

void store_batcher_stats_get(store_batcher *b, store_batcher_stats *out) {
    pthread_mutex_lock(&b->mu);
    *out = (store_batcher_stats){b->commits, b->submissions, b->largest, b->waiting};
    pthread_mutex_unlock(&b->mu);
}

/* Moves up to max_batch queued items, oldest first, into b->taken (mutex
 * held); returns how many. */
static size_t take(store_batcher *b) {
    size_t n = 0;
    while (b->head != NULL && n < b->max_batch) {
        store_submit_item *it = b->head;
        b->head = it->next;
        it->next = NULL;
        b->taken[n++] = it;
    }
    if (b->head == NULL) b->tail = NULL;
    b->waiting -= n;
    return n;
}

/* One commit, by the caller that found none under way or by the committer
 * thread (committing set by it, mutex held on entry and on return). Items
 * with on_done are left to the caller, which calls it after unlocking: they
 * are not marked done, since nobody waits for them; they are moved to the
 * front of b->taken and their number returned. The others are marked done
 * and must not be touched once the mutex is let go: their callers return
 * and their items (on those callers' stacks) are gone. */
static size_t commit_queued(store_batcher *b, const batch_ops *ops, void *handle) {
    char err[TS_ERRLEN];
    pthread_mutex_unlock(&b->mu);
    int rc = ops->begin(handle, err, sizeof(err));
    pthread_mutex_lock(&b->mu);
    size_t n = take(b); /* >= 1: the committer's own item is queued */
    pthread_mutex_unlock(&b->mu);
    if (rc == TS_OK) {
        ops->run(handle, b->taken, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            b->taken[i]->rc = rc;
            ts_strlcpy(b->taken[i]->err, err, b->taken[i]->errlen);
        }
    }
    pthread_mutex_lock(&b->mu);
    size_t later = 0;
    for (size_t i = 0; i < n; i++) {
        store_submit_item *it = b->taken[i];
        if (it->on_done == NULL) it->done = true;
        else b->taken[later++] = it;
    }
    b->commits++;
    b->submissions += n;
    if (n > b->largest) b->largest = n;
    b->committing = false;
    pthread_cond_broadcast(&b->over);
    return later;
}

/* Appends it to the queue (mutex held). */
static void queue_item(store_batcher *b, store_submit_item *it) {
    it->next = NULL;
    it->done = false;
    if (b->tail) b->tail->next = it;
    else b->head = it;
    b->tail = it;
    b->waiting++;
}

/* See backends.h. */
int batch_submit(store_batcher *b, const batch_ops *ops, void *handle, store_submit_item *it) {
    it->on_done = NULL;
    pthread_mutex_lock(&b->mu);
    queue_item(b, it);
    if (b->serving) pthread_cond_signal(&b->queued);
    while (!it->done) {
        if (b->committing || b->serving) {
            pthread_cond_wait(&b->over, &b->mu);
            continue;
        }
        b->committing = true;
        commit_queued(b, ops, handle);
    }
    pthread_mutex_unlock(&b->mu);
    return it->rc;
}

/* The committer thread: a commit as soon as anything is queued, then the
 * on_done of the items that have one, outside the mutex (they build and
 * send replies). Stops once asked and nothing is left queued, so every
 * queued item is answered. b->taken is the thread's alone between its
 * commits (nobody else commits while it runs). */
static void *committer_main(void *arg) {
    store_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->head == NULL) {
            if (b->stopping) break;
            pthread_cond_wait(&b->queued, &b->mu);
            continue;
        }
        b->committing = true;
        int token = b->watch_begin ? b->watch_begin(b->watch_ctx) : -1;
        size_t n = commit_queued(b, b->ops, b->handle);
        pthread_mutex_unlock(&b->mu);
        for (size_t i = 0; i < n; i++) b->taken[i]->on_done(b->taken[i], b->handle);
        if (b->watch_end) b->watch_end(b->watch_ctx, token);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* See backends.h. Signals are blocked in the thread (they belong to the
 * process's main thread). */
int batch_serve(store_batcher *b, const batch_ops *ops, void *handle, store *owned, char *err,
                size_t errlen) {
    if (b->serving) {
        ts_errf(err, errlen, "the batcher already has a committer thread");
        return TS_ERR;
    }
    b->ops = ops;
    b->handle = handle;
    b->owned = owned;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&b->committer, NULL, committer_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ts_errf(err, errlen, "cannot start the commit thread: %s", strerror(rc));
        b->owned = NULL;
        return TS_ERR;
    }
    b->serving = true;
    return TS_OK;
}

/* See backends.h. */
void batch_enqueue(store_batcher *b, store_submit_item *it) {
    pthread_mutex_lock(&b->mu);
    queue_item(b, it);
    pthread_cond_signal(&b->queued);
    pthread_mutex_unlock(&b->mu);
}

/* See store.h. Set before any submission, so the committer thread reads
 * the fields without the mutex. */
void store_batcher_watch(store_batcher *b, int (*begin)(void *ctx),
                         void (*end)(void *ctx, int token), void *ctx) {
    b->watch_begin = begin;
    b->watch_end = end;
    b->watch_ctx = ctx;
}

bool batch_serving(store_batcher *b) {
    return b != NULL && b->serving;
}
