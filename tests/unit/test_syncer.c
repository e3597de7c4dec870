/*
 * test_syncer.c - the store's fsyncs on a thread of their own
 * (sched/syncer.h), against a real SQLite store with deferred sync: a
 * ticket handed over is synced and its listeners rung, once, while the
 * caller goes on committing; syncer_drain waits for every ticket; freeing
 * the syncer runs what was handed over; the thread blocks every signal.
 * That one fsync serves a group of tickets, that a failed one fails the
 * later tickets of its connection, and that the scheduler stops its jobs
 * when one fails, is tested with a faulty VFS in test_store_sync.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/syncer.h"
#include "util/util.h"
#include "testlib.h"

static const char ONE_JOB[] = "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"}]}";

typedef struct fixture {
    char dir[64];
    char db[128];
    store *st;
    store_listener *l;
} fixture;

static int setup(void **state) {
    fixture *f = ts_calloc(1, sizeof(*f));
    char err[TS_ERRLEN];
    ts_strlcpy(f->dir, "/tmp/test_syncer.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/tessera.db", f->dir);
    if (store_open(f->db, &f->st, err, sizeof(err)) != TS_OK) fail_msg("store_open: %s", err);
    if (store_listener_open(f->db, STORE_WAKE_EVENTS, &f->l, err, sizeof(err)) != TS_OK)
        fail_msg("store_listener_open: %s", err);
    assert_non_null(f->l);
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    store_listener_close(f->l);
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* A submission committed with deferred sync: events recorded, not yet
 * fsynced. */
static void commit(fixture *f) {
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error e;
    assert_int_equal(spec_parse(ONE_JOB, strlen(ONE_JOB), NULL, NULL, NULL, &spec, &e), 0);
    int64_t id = 0;
    if (store_submit(f->st, "ann", spec, ts_now(), &id, err, sizeof(err)) != TS_OK)
        fail_msg("store_submit: %s", err);
    spec_free(spec);
}

/* The same with no sync under way: nobody rung. */
static void commit_unsynced(fixture *f) {
    int64_t seq = 0;
    commit(f);
    assert_int_equal(store_listener_drain(f->l, &seq), 0);
}

static syncer *new_syncer(void) {
    char err[TS_ERRLEN];
    syncer *sy = syncer_new(err, sizeof(err));
    if (sy == NULL) fail_msg("syncer_new: %s", err);
    return sy;
}

/* What the store committed since the last take, handed to sy. */
static void hand_over(fixture *f, syncer *sy) {
    char err[TS_ERRLEN];
    store_sync_ticket *t = NULL;
    if (store_sync_take(f->st, &t, err, sizeof(err)) != TS_OK) fail_msg("store_sync_take: %s", err);
    syncer_submit(sy, t);
}

/* One round handed to the thread and waited for: the rings it made. */
static int synced_round(fixture *f, syncer *sy) {
    char err[TS_ERRLEN];
    int64_t seq = 0;
    hand_over(f, sy);
    assert_int_equal(syncer_drain(sy, err, sizeof(err)), TS_OK);
    int rings = store_listener_drain(f->l, &seq);
    if (rings > 0) assert_true(seq > 0);
    return rings;
}

static void test_syncer_syncs_and_rings_once(void **state) {
    fixture *f = *state;
    syncer *sy = new_syncer();
    commit_unsynced(f);
    assert_int_equal(synced_round(f, sy), 1);
    assert_int_equal(synced_round(f, sy), 0); /* nothing new: no ticket, no ring */
    commit_unsynced(f);                       /* the thread serves round after round */
    assert_int_equal(synced_round(f, sy), 1);
    syncer_free(sy);
}

/* The pipeline: rounds hand their tickets over without waiting and go on
 * committing on the store handle while the thread syncs. Every round is
 * taken and the listener rung; nothing is left to take. */
static void test_syncer_rounds_go_on_while_the_thread_syncs(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    int64_t seq = 0, newest = 0;
    syncer *sy = new_syncer();
    for (int i = 0; i < 50; i++) {
        commit(f);
        hand_over(f, sy);
    }
    assert_int_equal(syncer_drain(sy, err, sizeof(err)), TS_OK);
    /* Rung (a listener's queue holds a few datagrams and drops the rest:
     * the seq is a hint, readers re-read from where they were). That each
     * commit reached the device is counted in test_store_sync.c. */
    assert_true(store_listener_drain(f->l, &seq) >= 1);
    assert_int_equal(store_events_last_seq(f->st, &newest, err, sizeof(err)), TS_OK);
    assert_true(seq > 0 && seq <= newest);
    store_sync_ticket *t = NULL;
    assert_int_equal(store_sync_take(f->st, &t, err, sizeof(err)), TS_OK);
    assert_null(t); /* every commit was taken */
    assert_int_equal(syncer_failure(sy, err, sizeof(err)), TS_OK);
    syncer_free(sy);
}

/* Freed with tickets handed over and not waited for: they still run (the
 * ring comes) and the free returns. */
static void test_syncer_free_runs_what_was_handed_over(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    int64_t seq = 0;
    syncer *sy = new_syncer();
    commit_unsynced(f);
    hand_over(f, sy);
    syncer_free(sy);
    assert_int_equal(store_listener_drain(f->l, &seq), 1);
    assert_int_equal(store_sync(f->st, err, sizeof(err)), TS_OK); /* the store is usable */
    syncer_free(NULL);
}

/* The thread's blocked signals (SigBlk of /proc/self/task/TID/status) as a
 * mask, or 0 when no thread is named tessera-sync. */
static unsigned long long sync_thread_blocked(void) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    unsigned long long blocked = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[4096] = "";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        bool ours = fgets(buf, sizeof(buf), f) && strcmp(buf, "tessera-sync\n") == 0;
        fclose(f);
        if (!ours) continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        if ((f = fopen(path, "r")) == NULL) continue;
        while (fgets(buf, sizeof(buf), f))
            if (strncmp(buf, "SigBlk:", 7) == 0) blocked = strtoull(buf + 7, NULL, 16);
        fclose(f);
    }
    closedir(d);
    return blocked;
}

/* A stop signal sent to the scheduler's process must interrupt the
 * scheduler's own wait: the thread blocks every signal, whatever the
 * creating thread blocked. */
static void test_syncer_thread_blocks_signals(void **state) {
    fixture *f = *state;
    sigset_t before, after;
    assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
    assert_int_equal(sigismember(&before, SIGTERM), 0);
    (void)f;
    syncer *sy = new_syncer();
    unsigned long long blocked = sync_thread_blocked();
    assert_true(blocked & (1ULL << (SIGTERM - 1)));
    assert_true(blocked & (1ULL << (SIGINT - 1)));
    assert_true(blocked & (1ULL << (SIGHUP - 1)));
    syncer_free(sy);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
    assert_int_equal(sigismember(&after, SIGTERM), 0); /* the caller's mask as it was */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_syncer_syncs_and_rings_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syncer_rounds_go_on_while_the_thread_syncs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_syncer_free_runs_what_was_handed_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_syncer_thread_blocks_signals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
