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
 */
#include <pthread.h>
#include <stdlib.h>

#include "store/backends.h"
#include "util/util.h"

struct store_batcher {
    pthread_mutex_t mu;
    pthread_cond_t over; /* a commit ended */
    store_submit_item *head, *tail; /* queued, oldest first */
    size_t waiting;
    bool committing;
    size_t max_batch;
    store_submit_item **taken; /* the committer's batch (max_batch slots) */
    uint64_t commits, submissions;
    size_t largest;
};

store_batcher *store_batcher_new(size_t max_batch) {
    store_batcher *b = ts_calloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->over, NULL);
    b->max_batch = max_batch > 0 ? max_batch : 1;
    b->taken = ts_calloc(b->max_batch, sizeof(*b->taken));
    return b;
}

void store_batcher_free(store_batcher *b) {
    if (b == NULL) return;
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

/* One commit, by the caller that found none under way (committing set by
 * it, mutex held on entry and on return). */
static void commit_queued(store_batcher *b, const batch_ops *ops, void *handle) {
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
    for (size_t i = 0; i < n; i++) b->taken[i]->done = true;
    b->commits++;
    b->submissions += n;
    if (n > b->largest) b->largest = n;
    b->committing = false;
    pthread_cond_broadcast(&b->over);
}

/* See backends.h. */
int batch_submit(store_batcher *b, const batch_ops *ops, void *handle, store_submit_item *it) {
    it->next = NULL;
    it->done = false;
    pthread_mutex_lock(&b->mu);
    if (b->tail) b->tail->next = it;
    else b->head = it;
    b->tail = it;
    b->waiting++;
    while (!it->done) {
        if (b->committing) {
            pthread_cond_wait(&b->over, &b->mu);
            continue;
        }
        b->committing = true;
        commit_queued(b, ops, handle);
    }
    pthread_mutex_unlock(&b->mu);
    return it->rc;
}
