/*
 * syncer.c - a store's deferred fsync on a thread of its own (syncer.h).
 *
 * One request at a time: the state goes IDLE -> ASKED (syncer_begin) ->
 * DONE (the thread) -> IDLE (syncer_end), under one mutex; QUIT ends the
 * thread. The store handle changes threads only across that mutex, which
 * orders the caller's commit before the thread's fsync and the fsync's
 * bookkeeping before the caller's next use of the store.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "sched/syncer.h"
#include "util/util.h"

typedef enum { SYNC_IDLE, SYNC_ASKED, SYNC_DONE, SYNC_QUIT } sync_state;

struct syncer {
    store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* every change of state is broadcast */
    sync_state state;
    int rc;
    char err[TS_ERRLEN];
};

static void *syncer_main(void *arg) {
    syncer *sy = arg;
    pthread_mutex_lock(&sy->mu);
    for (;;) {
        while (sy->state != SYNC_ASKED && sy->state != SYNC_QUIT) pthread_cond_wait(&sy->cv, &sy->mu);
        if (sy->state == SYNC_QUIT) break;
        pthread_mutex_unlock(&sy->mu);
        char err[TS_ERRLEN] = "";
        int rc = store_sync(sy->st, err, sizeof(err));
        pthread_mutex_lock(&sy->mu);
        sy->rc = rc;
        memcpy(sy->err, err, sizeof(err));
        sy->state = SYNC_DONE;
        pthread_cond_broadcast(&sy->cv);
    }
    pthread_mutex_unlock(&sy->mu);
    return NULL;
}

syncer *syncer_new(store *st, char *err, size_t errlen) {
    syncer *sy = ts_calloc(1, sizeof(*sy));
    sy->st = st;
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

void syncer_begin(syncer *sy) {
    pthread_mutex_lock(&sy->mu);
    sy->state = SYNC_ASKED;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
}

int syncer_end(syncer *sy, char *err, size_t errlen) {
    pthread_mutex_lock(&sy->mu);
    while (sy->state != SYNC_DONE) pthread_cond_wait(&sy->cv, &sy->mu);
    sy->state = SYNC_IDLE;
    int rc = sy->rc;
    if (rc != TS_OK) ts_strlcpy(err, sy->err, errlen);
    pthread_mutex_unlock(&sy->mu);
    return rc;
}

void syncer_free(syncer *sy) {
    if (sy == NULL) return;
    pthread_mutex_lock(&sy->mu);
    while (sy->state == SYNC_ASKED) pthread_cond_wait(&sy->cv, &sy->mu); /* a sync under way ends */
    sy->state = SYNC_QUIT;
    pthread_cond_broadcast(&sy->cv);
    pthread_mutex_unlock(&sy->mu);
    pthread_join(sy->thread, NULL);
    pthread_cond_destroy(&sy->cv);
    pthread_mutex_destroy(&sy->mu);
    free(sy);
}
