/*
 * batch_harness.h - concurrent submissions that are one group commit, for
 * the tests of store_batcher (test_store_batch.c, test_store_faults.c).
 *
 * Each call runs on a thread of its own with a store handle of its own,
 * all sharing one batcher, as an HTTP worker's request threads do. To make
 * them one commit without relying on timing, another connection holds the
 * database's write lock until every call is queued in the batcher (its
 * committer is then waiting for that lock), and only then lets go.
 * Header-only, like testlib.h.
 */
#ifndef TESSERA_TESTS_BATCH_HARNESS_H
#define TESSERA_TESTS_BATCH_HARNESS_H

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
#include "store/store.h"
#include "util/util.h"

typedef struct batch_call {
    const char *user;
    const char *json; /* the workflow */
    store *st;        /* opened by batch_run */
    int rc;
    store_receipt r;
    char err[TS_ERRLEN];
    /* Called on the thread right after its submit returned (may be NULL). */
    void (*after)(struct batch_call *c);
    int seen;         /* for after's use */
    pthread_t thread;
} batch_call;

static void *batch_thread(void *arg) {
    batch_call *c = arg;
    spec_workflow *spec = NULL;
    spec_error e;
    if (spec_parse(c->json, strlen(c->json), NULL, NULL, NULL, &spec, &e) != TS_OK) {
        c->rc = -1;
        return NULL;
    }
    c->rc = store_submit_receipt(c->st, c->user, spec, 1700000000.0, &c->r, c->err,
                                 sizeof(c->err));
    if (c->after) c->after(c);
    spec_free(spec);
    return NULL;
}

/* Waits (up to 20 s, polling) until n calls are queued in b. */
static int batch_wait_queued(store_batcher *b, size_t n) {
    for (int i = 0; i < 20000; i++) {
        store_batcher_stats s;
        store_batcher_stats_get(b, &s);
        if (s.waiting >= n) return 0;
        usleep(1000);
    }
    return -1;
}

/*
 * Runs the n calls at once through batcher b on the database at path,
 * holding the write lock from another connection until all n are queued,
 * so that they are one commit. Returns 0 when every thread ran; each
 * call's rc, receipt and err are then set.
 */
static int batch_run(const char *path, store_batcher *b, batch_call *calls, size_t n) {
    char err[TS_ERRLEN];
    sqlite3 *holder = NULL;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        if (store_open_existing(path, &calls[i].st, err, sizeof(err)) != TS_OK) return -1;
        store_set_batcher(calls[i].st, b);
    }
    if (sqlite3_open_v2(path, &holder, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto done;
    size_t started = 0;
    for (; started < n; started++)
        if (pthread_create(&calls[started].thread, NULL, batch_thread, &calls[started]) != 0)
            break;
    int queued = started == n ? batch_wait_queued(b, n) : -1;
    sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL);
    for (size_t i = 0; i < started; i++) pthread_join(calls[i].thread, NULL);
    rc = started == n && queued == 0 ? 0 : -1;
done:
    sqlite3_close(holder);
    for (size_t i = 0; i < n; i++) {
        store_close(calls[i].st);
        calls[i].st = NULL;
    }
    return rc;
}

#endif
