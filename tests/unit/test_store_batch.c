/*
 * test_store_batch.c - group commit of submissions (store.h,
 * store_batcher) on SQLite: concurrent submissions from threads with
 * handles of their own are one commit, in commit order (ids, queue places,
 * events), each answered with its own receipt and exactly one of them
 * told to wake the scheduler; a submission whose insert fails is rolled
 * back alone and the others are stored; bad arguments fail before they
 * join; without contention each submission commits alone and nobody
 * waits; with a committer thread, submissions queued by one thread that
 * waits for none are one commit, each answered after it, and all are
 * answered before the thread stops. A failing commit is tested with the fault VFS in
 * test_store_faults.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_harness.h"
#include "testlib.h"

#define N_CALLS 12

static const char WF[] = "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"},"
                         " {\"job_id\": \"b\", \"job_type\": \"noop\", \"depends_on\": [\"a\"]}]}";
static const char POISON[] =
    "{\"name\": \"poison\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"}]}";

typedef struct fx {
    char dir[64];
    char path[128];
    store *st; /* the creator's handle, for reading back */
    store_batcher *b;
} fx;

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-batch-XXXXXX");
    if (f == NULL || mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/tessera.db", f->dir);
    if (store_open(f->path, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    f->b = store_batcher_new(64);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->st);
    store_batcher_free(f->b);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* store_workflow_get of any user's workflow id: its code, or -1 when it is
 * there under another name. */
static int get_name_rc(store *st, int64_t id, const char *name) {
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int rc = store_workflow_get(st, id, NULL, &wf, err, sizeof(err));
    if (rc == TS_OK && strcmp(wf->name, name) != 0) rc = -1;
    store_workflow_free(wf);
    return rc;
}

typedef struct seen_events {
    int64_t seq[4 * N_CALLS], wf[4 * N_CALLS];
    char type[4 * N_CALLS][32];
    size_t n;
} seen_events;

static int collect(void *ctx, const store_event *ev) {
    seen_events *s = ctx;
    if (s->n < 4 * N_CALLS) {
        s->seq[s->n] = ev->seq;
        s->wf[s->n] = ev->workflow_id;
        ts_strlcpy(s->type[s->n], ev->type, sizeof(s->type[0]));
        s->n++;
    }
    return 0;
}

/* Every call of a held batch is one commit: ids consecutive in queue order
 * of the commit, places in the line 1..n in id order, one wake, and the
 * events of each workflow right after those of the one before. */
static void test_concurrent_submissions_are_one_commit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], user[N_CALLS][16];
    batch_call calls[N_CALLS];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < N_CALLS; i++) {
        snprintf(user[i], sizeof(user[i]), "u%d", i % 3);
        calls[i] = (batch_call){.user = user[i], .json = WF};
    }
    assert_int_equal(batch_run(f->path, f->b, calls, N_CALLS), 0);
    store_batcher_stats bs;
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 1);
    assert_int_equal(bs.submissions, N_CALLS);
    assert_int_equal(bs.largest, N_CALLS);
    assert_int_equal(bs.waiting, 0);

    int wakes = 0;
    int64_t min_id = INT64_MAX;
    for (int i = 0; i < N_CALLS; i++) {
        assert_int_equal(calls[i].rc, TS_OK);
        wakes += calls[i].r.wake;
        if (calls[i].r.id < min_id) min_id = calls[i].r.id;
        assert_int_equal(calls[i].r.active_users, 0);
    }
    assert_int_equal(wakes, 1);
    bool have[N_CALLS] = {false};
    for (int i = 0; i < N_CALLS; i++) {
        int64_t k = calls[i].r.id - min_id;
        assert_true(k >= 0 && k < N_CALLS && !have[k]);
        have[k] = true;
        /* the line is FIFO by id, and nothing else was queued */
        assert_int_equal(calls[i].r.queue_position, (int)k + 1);
        store_workflow *wf = NULL;
        assert_int_equal(store_workflow_get(f->st, calls[i].r.id, calls[i].user, &wf, err,
                                            sizeof(err)),
                         TS_OK);
        assert_int_equal(wf->queue_position, calls[i].r.queue_position);
        assert_int_equal(wf->n_jobs, 2);
        store_workflow_free(wf);
    }
    seen_events ev = {0};
    assert_int_equal(store_events_since(f->st, 0, NULL, 0, 0, collect, &ev, err, sizeof(err)),
                     TS_OK);
    assert_int_equal(ev.n, 2 * N_CALLS);
    for (size_t i = 0; i < ev.n; i++) {
        assert_int_equal(ev.wf[i], min_id + (int64_t)(i / 2));
        assert_string_equal(ev.type[i], i % 2 ? "workflow.queued" : "workflow.submitted");
        if (i > 0) assert_true(ev.seq[i] > ev.seq[i - 1]);
    }
}

/* A constraint of the database (here a trigger standing for a quota)
 * refuses one submission of the batch after its workflow row went in (at
 * its first job): it alone fails, with the database's reason, and leaves
 * nothing - its savepoint takes the row back; the others are stored and their
 * places in the line close up over it. */
static void test_failing_member_is_rolled_back_alone(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER quota BEFORE INSERT ON jobs"
                                  " WHEN (SELECT name FROM workflows"
                                  " WHERE id = NEW.workflow_id) = 'poison'"
                                  " BEGIN SELECT RAISE(ABORT, 'over the quota'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    batch_call calls[N_CALLS];
    memset(calls, 0, sizeof(calls));
    for (int i = 0; i < N_CALLS; i++)
        calls[i] = (batch_call){.user = "ann", .json = i == N_CALLS / 2 ? POISON : WF};
    assert_int_equal(batch_run(f->path, f->b, calls, N_CALLS), 0);
    store_batcher_stats bs;
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 1);

    int wakes = 0, stored = 0, positions = 0;
    for (int i = 0; i < N_CALLS; i++) {
        if (i == N_CALLS / 2) {
            assert_int_equal(calls[i].rc, TS_ERR);
            assert_non_null(strstr(calls[i].err, "over the quota"));
            continue;
        }
        assert_int_equal(calls[i].rc, TS_OK);
        wakes += calls[i].r.wake;
        stored++;
        positions += calls[i].r.queue_position;
        assert_int_equal(get_name_rc(f->st, calls[i].r.id, "w"), TS_OK);
    }
    assert_int_equal(wakes, 1);
    assert_int_equal(positions, stored * (stored + 1) / 2); /* 1..stored, no gap */
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.queued_workflows, stored);
    seen_events ev = {0};
    assert_int_equal(store_events_since(f->st, 0, NULL, 0, 0, collect, &ev, err, sizeof(err)),
                     TS_OK);
    assert_int_equal(ev.n, 2 * (size_t)stored);
}

/* Bad arguments are refused on the caller's own thread, before joining:
 * no commit is made for them. */
static void test_bad_arguments_never_join(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store *st = NULL;
    store_receipt r;
    spec_workflow *spec = NULL;
    spec_error e;
    assert_int_equal(spec_parse(WF, strlen(WF), NULL, NULL, NULL, &spec, &e), TS_OK);
    assert_int_equal(store_open_existing(f->path, &st, err, sizeof(err)), TS_OK);
    store_set_batcher(st, f->b);
    assert_int_equal(store_submit_receipt(st, "", spec, 1.0, &r, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "user id"));
    assert_int_equal(store_begin(st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_submit_receipt(st, "ann", spec, 1.0, &r, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "transaction of its own"));
    store_rollback(st);
    store_batcher_stats bs;
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 0);
    /* alone, a submission is its own commit, and wakes */
    assert_int_equal(store_submit_receipt(st, "ann", spec, 1.0, &r, err, sizeof(err)), TS_OK);
    assert_true(r.wake);
    assert_int_equal(r.queue_position, 1);
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 1);
    store_close(st);
    spec_free(spec);
}

/* Many rounds of unheld concurrent submissions: whatever the batches
 * happen to be, every call is answered, every id is distinct and stored,
 * and one wake per commit. */
static void test_unheld_rounds_lose_nothing(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    enum { THREADS = 6, EACH = 40 };
    store *st[THREADS];
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(store_open_existing(f->path, &st[i], err, sizeof(err)), TS_OK);
        store_set_batcher(st[i], f->b);
    }
    batch_call calls[THREADS * EACH];
    memset(calls, 0, sizeof(calls));
    for (int round = 0; round < EACH; round++) {
        for (int i = 0; i < THREADS; i++) {
            batch_call *c = &calls[round * THREADS + i];
            *c = (batch_call){.user = "ann", .json = WF, .st = st[i]};
            assert_int_equal(pthread_create(&c->thread, NULL, batch_thread, c), 0);
        }
        for (int i = 0; i < THREADS; i++) pthread_join(calls[round * THREADS + i].thread, NULL);
    }
    int wakes = 0;
    for (int i = 0; i < THREADS * EACH; i++) {
        assert_int_equal(calls[i].rc, TS_OK);
        wakes += calls[i].r.wake;
        assert_int_equal(get_name_rc(f->st, calls[i].r.id, "w"), TS_OK);
        for (int k = 0; k < i; k++) assert_true(calls[k].r.id != calls[i].r.id);
    }
    store_batcher_stats bs;
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.submissions, THREADS * EACH);
    assert_int_equal((int)bs.commits, wakes);
    for (int i = 0; i < THREADS; i++) store_close(st[i]);
}

/* What store_submit_async's function was told, per submission. */
typedef struct async_seen {
    pthread_mutex_t mu;
    int calls;
    int rc[N_CALLS];
    store_receipt r[N_CALLS];
    pthread_t thread[N_CALLS];
} async_seen;

typedef struct async_slot {
    async_seen *seen;
    int i;
} async_slot;

static void async_fn(void *ctx, int rc, const store_receipt *got, const char *err) {
    (void)err;
    async_slot *slot = ctx;
    pthread_mutex_lock(&slot->seen->mu);
    slot->seen->rc[slot->i] = rc;
    if (rc == TS_OK) slot->seen->r[slot->i] = *got;
    slot->seen->thread[slot->i] = pthread_self();
    slot->seen->calls++;
    pthread_mutex_unlock(&slot->seen->mu);
}

static int async_calls(async_seen *seen) {
    pthread_mutex_lock(&seen->mu);
    int n = seen->calls;
    pthread_mutex_unlock(&seen->mu);
    return n;
}

/* A watchdog's view of the committer's commits (store_batcher_watch). */
typedef struct watch_seen {
    pthread_mutex_t mu;
    int begun, ended, last_token;
} watch_seen;

static int watch_begin(void *ctx) {
    watch_seen *w = ctx;
    pthread_mutex_lock(&w->mu);
    int token = 100 + w->begun++;
    pthread_mutex_unlock(&w->mu);
    return token;
}

static void watch_end(void *ctx, int token) {
    watch_seen *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->ended++;
    w->last_token = token;
    pthread_mutex_unlock(&w->mu);
}

static bool watch_is(watch_seen *w, int begun, int ended) {
    pthread_mutex_lock(&w->mu);
    bool is = w->begun == begun && w->ended == ended;
    pthread_mutex_unlock(&w->mu);
    return is;
}

/* Queues N_CALLS submissions of WF from this one thread through st. */
static void submit_all_async(store *st, spec_workflow *spec, async_seen *seen,
                             async_slot *slots) {
    char err[TS_ERRLEN];
    for (int i = 0; i < N_CALLS; i++) {
        slots[i] = (async_slot){seen, i};
        assert_int_equal(store_submit_async(st, "ann", spec, 1.0, async_fn, &slots[i], err,
                                            sizeof(err)),
                         TS_OK);
    }
}


/* A second handle on f's database that submits through f's batcher, as a
 * request thread's does, and *spec: the workflow WF parsed. */
static store *batched_handle(fx *f, spec_workflow **spec) {
    char err[TS_ERRLEN];
    store *st = NULL;
    spec_error e;
    assert_int_equal(spec_parse(WF, strlen(WF), NULL, NULL, NULL, spec, &e), TS_OK);
    assert_int_equal(store_open_existing(f->path, &st, err, sizeof(err)), TS_OK);
    store_set_batcher(st, f->b);
    return st;
}

/* With a committer thread, one thread queues N submissions without waiting
 * for any (as a request thread hands them over and serves other requests):
 * all N are one commit, each told its own receipt on the committer thread
 * only after that commit, one of them told to wake; a waiting call
 * (store_submit_receipt) still works through the same thread. Each commit
 * is shown to the watchdog from before it has the write lock until its
 * submissions are answered. */
static void test_committer_thread_commits_queued_submissions_together(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    store *st = batched_handle(f, &spec);
    watch_seen watch = {.mu = PTHREAD_MUTEX_INITIALIZER};
    store_batcher_watch(f->b, watch_begin, watch_end, &watch);
    assert_int_equal(store_batcher_serve(f->b, f->path, f->st, err, sizeof(err)), TS_OK);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &holder, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    async_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    async_slot slots[N_CALLS];
    submit_all_async(st, spec, &seen, slots);
    assert_int_equal(batch_wait_queued(f->b, N_CALLS - 1), 0); /* the thread may hold one */
    assert_int_equal(async_calls(&seen), 0); /* the lock is held: nothing committed */
    /* the commit waiting for the lock is shown to the watchdog as under way */
    for (int i = 0; i < 20000 && !watch_is(&watch, 1, 0); i++) usleep(1000);
    assert_true(watch_is(&watch, 1, 0));
    assert_int_equal(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    for (int i = 0; i < 20000 && async_calls(&seen) < N_CALLS; i++) usleep(1000);
    assert_int_equal(async_calls(&seen), N_CALLS);
    store_batcher_stats bs;
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 1);
    assert_int_equal(bs.largest, N_CALLS);
    int wakes = 0;
    for (int i = 0; i < N_CALLS; i++) {
        assert_int_equal(seen.rc[i], TS_OK);
        assert_false(pthread_equal(seen.thread[i], pthread_self()));
        wakes += seen.r[i].wake;
        assert_int_equal(seen.r[i].queue_position, i + 1);
        if (i > 0) assert_true(seen.r[i].id > seen.r[i - 1].id);
        assert_int_equal(get_name_rc(f->st, seen.r[i].id, "w"), TS_OK);
    }
    assert_int_equal(wakes, 1);
    for (int i = 0; i < 20000 && !watch_is(&watch, 1, 1); i++) usleep(1000);
    assert_true(watch_is(&watch, 1, 1));
    assert_int_equal(watch.last_token, 100);
    store_receipt r;
    assert_int_equal(store_submit_receipt(st, "ann", spec, 1.0, &r, err, sizeof(err)), TS_OK);
    assert_int_equal(r.queue_position, N_CALLS + 1);
    store_batcher_stats_get(f->b, &bs);
    assert_int_equal(bs.commits, 2);
    for (int i = 0; i < 20000 && !watch_is(&watch, 2, 2); i++) usleep(1000);
    assert_true(watch_is(&watch, 2, 2));
    store_close(st);
    spec_free(spec);
}

/* Stopping the committer answers everything still queued first: nothing
 * handed over is dropped unanswered. */
static void test_committer_answers_queued_submissions_before_it_stops(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    store *st = batched_handle(f, &spec);
    assert_int_equal(store_batcher_serve(f->b, f->path, f->st, err, sizeof(err)), TS_OK);
    async_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    async_slot slots[N_CALLS];
    submit_all_async(st, spec, &seen, slots);
    store_batcher_free(f->b);
    f->b = NULL;
    assert_int_equal(async_calls(&seen), N_CALLS);
    for (int i = 0; i < N_CALLS; i++) {
        assert_int_equal(seen.rc[i], TS_OK);
        assert_int_equal(get_name_rc(f->st, seen.r[i].id, "w"), TS_OK);
    }
    store_close(st);
    spec_free(spec);
}

/* Without a committer thread store_submit_async is store_submit_receipt:
 * the function runs before it returns. */
static void test_async_without_committer_answers_at_once(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error e;
    assert_int_equal(spec_parse(WF, strlen(WF), NULL, NULL, NULL, &spec, &e), TS_OK);
    async_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    async_slot slot = {&seen, 0};
    assert_int_equal(store_submit_async(f->st, "ann", spec, 1.0, async_fn, &slot, err,
                                        sizeof(err)),
                     TS_OK);
    assert_int_equal(async_calls(&seen), 1);
    assert_int_equal(seen.rc[0], TS_OK);
    assert_true(pthread_equal(seen.thread[0], pthread_self()));
    assert_int_equal(get_name_rc(f->st, seen.r[0].id, "w"), TS_OK);
    spec_free(spec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_submissions_are_one_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failing_member_is_rolled_back_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_never_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unheld_rounds_lose_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committer_thread_commits_queued_submissions_together,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_committer_answers_queued_submissions_before_it_stops,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_without_committer_answers_at_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
