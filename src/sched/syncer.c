/*
 * syncer.c - a store's fsyncs on a thread of their own (syncer.h).
 *
 * A FIFO of tickets under one mutex: syncer_submit appends, the thread
 * takes the head and runs it with the mutex released, `busy` while it
 * does. Every change is broadcast on one condition variable, which the
 * thread (work or quit) and syncer_drain (queue empty, not busy) wait on.
 * The thread stops only when asked to and the queue is empty, so that
 * syncer_free runs what was handed over.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sched/syncer.h"
#include "util/util.h"

typedef struct sync_node {
    store_sync_ticket *ticket;
    struct sync_node *next;
} sync_node;

struct syncer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* every change below is broadcast */
    sync_node *head, *tail;
    bool busy;           /* the thread is running a ticket */
    bool quit;           /* syncer_free: stop once the queue is empty */
    bool failed;         /* a ticket failed and nobody was told yet */
    char err[TS_ERRLEN]; /* the first such failure's message */
};

static void *syncer_main(void *arg) {
    syncer *sy = arg;
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (sy->head == NULL && !sy->quit) pthread_cond_wait(&sy->cv, &sy->mu);
        if (sy->head == NULL) break; /* quit, and nothing left */
        sync_node *n = sy->head;
        if ((sy->head = n->next) == NULL) sy->tail = NULL;
        sy->busy = true;
        pthread_mutex_unlock(&sy->mu);
        char err[TS_ERRLEN] = "";
        int rc = store_sync_ticket_run(n->ticket, err, sizeof(err));
        store_sync_ticket_free(n->ticket);
        free(n);
        pthread_mutex_lock(&sy->mu);
        sy->busy = false;
        if (rc != TS_OK && !sy->failed) {
            sy->failed = true;
            memcpy(sy->err, err, sizeof(err));
        }
        pthread_cond_broadcast(&sy->cv);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

syncer *syncer_new(char *err, size_t errlen) {
    syncer *sy = ts_calloc(1, sizeof(*sy));
    pthread_mutex_init(&sy->mu, NULL);
    pthread_cond_init(&sy->cv, NULL);
    /* Every signal blocked in the thread (it inherits the mask): a stop
     * signal must interrupt the scheduler's own wait, not land here. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sy->thread, NULL, syncer_main, sy);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        pthread_setname_np(sy->thread, "tessera-sync"); /* for top -H and perf */
        return sy;
    }
    ts_errf(err, errlen, "starting the fsync thread: %s", strerror(rc));
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    free(sy);
    return NULL;
}

void syncer_submit(syncer *sy, store_sync_ticket *t) {
    if (t == NULL) return;
    sync_node *n = ts_calloc(1, sizeof(*n));
    n->ticket = t;
    pthread_mutex_lock(&sy->mu);
    if (sy->tail) sy->tail->next = n;
    else sy->head = n;
    sy->tail = n;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

/* With sy->mu held: the unreported failure, reported now. */
static int take_failure(syncer *sy, char *err, size_t errlen) {
    if (!sy->failed) return TS_OK;
    sy->failed = false;
    ts_strlcpy(err, sy->err, errlen);
    return STORE_UNAVAILABLE;
}

int syncer_failure(syncer *sy, char *err, size_t errlen) {
    pthread_mutex_lock(&sy->mu);
    int rc = take_failure(sy, err, errlen);
    pthread_mutex_unlock(&sy->mu);
    return rc;
}

int syncer_drain(syncer *sy, char *err, size_t errlen) {
    pthread_mutex_lock(&sy->mu);
    while (sy->head != NULL || sy->busy) pthread_cond_wait(&sy->cv, &sy->mu);
    int rc = take_failure(sy, err, errlen);
    pthread_mutex_unlock(&sy->mu);
    return rc;
}

void syncer_free(syncer *sy) {
    if (sy == NULL) return;
    pthread_mutex_lock(&sy->mu);
    sy->quit = true;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    free(sy);
}
