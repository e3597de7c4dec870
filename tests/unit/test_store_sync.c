/*
 * test_store_sync.c - deferred and pipelined syncs of the SQLite store
 * (store.h, store_set_deferred_sync and store_sync_take) and of the
 * scheduler that uses them (sched/syncer.h), under a VFS that counts the
 * WAL's fsyncs, slows them down or fails them (fault_vfs.h): a deferred
 * commit is published only after its fsync; the scheduler starts a job
 * before its claim's fsync, does not wait for that fsync, publishes after
 * it, and stops its jobs when it fails; a batch executor's claims are
 * fsynced before their jobs start; one fsync serves the tickets taken
 * before it; after a failed fsync nothing of that connection is trusted;
 * a ticket syncs SQLite's WAL even when the database's path is a link.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fault_vfs.h"
#include "sched/scheduler.h"

/* ---- deferred sync: jobs start before the fsync, nothing is published before it ---- */

/* Deferred sync (store.h): the commit returns with the WAL written but not
 * fsynced, and its listeners (the WebSocket hubs) are not woken; store_sync
 * fsyncs it and only then wakes them. Fails if the ring came with the
 * commit, before the fsync. */
static void test_deferred_commit_rings_listeners_after_the_fsync(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann"), seq = 0;
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    assert_non_null(l);
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    core_change ch = job_change(id, 0, JOB_PENDING, JOB_READY);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    assert_true(wal_unsynced > 0);                     /* committed, not yet on the device */
    assert_int_equal(store_listener_drain(l, &seq), 0); /* and nobody told */
    assert_int_equal(store_sync(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_unsynced, 0);
    assert_int_equal(store_listener_drain(l, &seq), 1);
    assert_true(seq > 0);
    assert_int_equal(store_sync(f->st, err, sizeof(err)), TS_OK); /* nothing left: no ring */
    assert_int_equal(store_listener_drain(l, &seq), 0);
    store_listener_close(l);
}

/* An executor whose start() notes what the world looked like when the job
 * started: the WAL's unsynced writes, the rings heard, and whether another
 * connection already saw the claim. With wait_for_ring it then stays in
 * start() until a ring comes (at most 5 s) and notes the WAL's syncs and
 * unsynced writes at that moment. */
typedef struct noting_exec {
    executor base;
    const char *path;
    store_listener *l;
    int started, cancelled, rings_at_start;
    int unsynced_at_start;
    bool claim_visible_at_start;
    bool wait_for_ring;
    int rings_in_start, syncs_before_start, syncs_at_ring, unsynced_at_ring;
} noting_exec;

static void noting_wait_for_ring(noting_exec *x) {
    int64_t seq = 0;
    double end = ts_monotonic() + 5;
    struct pollfd p = {.fd = store_listener_fd(x->l), .events = POLLIN};
    while (x->rings_in_start == 0 && ts_monotonic() < end) {
        poll(&p, 1, 50);
        int n = store_listener_drain(x->l, &seq);
        if (n > 0) {
            x->syncs_at_ring = wal_syncs;
            x->unsynced_at_ring = wal_unsynced;
            x->rings_in_start = n;
        }
    }
}

static int noting_start(executor *base, const exec_job *job, char *err, size_t errlen) {
    noting_exec *x = (noting_exec *)base;
    int64_t seq = 0;
    x->started++;
    x->syncs_before_start = wal_syncs;
    x->unsynced_at_start = wal_unsynced;
    x->rings_at_start = store_listener_drain(x->l, &seq);
    store *other = NULL;
    store_workflow *wf = NULL;
    if (store_open_existing(x->path, &other, err, errlen) == TS_OK &&
        store_workflow_get(other, job->workflow_id, NULL, &wf, err, errlen) == TS_OK)
        x->claim_visible_at_start = wf->jobs[job->job_index].state == JOB_RUNNING;
    store_workflow_free(wf);
    store_close(other);
    if (x->wait_for_ring) noting_wait_for_ring(x);
    return TS_OK;
}

static void noting_cancel(executor *base, int64_t wf, int32_t job_index, double grace_s) {
    (void)wf;
    (void)job_index;
    (void)grace_s;
    ((noting_exec *)base)->cancelled++;
}

static int noting_wait(executor *base, double timeout_s, int wake_fd, exec_event *ev, size_t max) {
    (void)base;
    (void)timeout_s;
    (void)wake_fd;
    (void)ev;
    (void)max;
    return 0;
}

static size_t noting_running(executor *base) {
    return (size_t)((noting_exec *)base)->started;
}

static void noting_destroy(executor *base) {
    (void)base;
}

static const executor_ops noting_ops = {.start = noting_start, .cancel = noting_cancel,
                                        .wait = noting_wait, .running = noting_running,
                                        .destroy = noting_destroy};

static void noting_release(executor *base) {
    (void)base;
}

/* The same, as a batch executor whose jobs outlive the scheduler. */
static const executor_ops noting_detached_ops = {
    .start = noting_start, .cancel = noting_cancel, .wait = noting_wait,
    .running = noting_running, .destroy = noting_destroy, .detached = true,
    .release = noting_release};

/* A scheduler over f's store and x, stepped until x started a job (or
 * a step failed: its code); WAL fsyncs fail with sync_fault from the first
 * step on (0: they do not). */
static int step_until_started(fx *f, noting_exec *x, int sync_fault, scheduler **out) {
    char err[TS_ERRLEN];
    int64_t seq = 0;
    submit_ok(f->st, "ann");
    fail_syncs = sync_fault;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &x->l, err, sizeof(err)),
                     TS_OK);
    store_listener_drain(x->l, &seq); /* the submission's ring */
    if (x->base.ops == NULL) x->base.ops = &noting_ops;
    x->path = f->path;
    sched_config cfg = {.state_dir = f->dir, .data_roots = "", .max_active_users = 3,
                        .concurrency_limit = 2, .poll_seconds = 0.2, .lease_ttl = 30,
                        .kill_grace_s = 1};
    *out = sched_new(&cfg, "test:1:1", f->st, &x->base);
    int rc = TS_OK;
    for (int i = 0; i < 10 && rc == TS_OK && x->started == 0; i++)
        rc = sched_step(*out, 0, -1, err, sizeof(err));
    return rc;
}

/* The order the lead chose for a local executor (docs/architecture.md):
 * a claimed job starts once its claim is committed - another connection
 * sees it - without waiting for the fsync, which runs beside the start
 * (sched/syncer.h); the event listeners hear of the round once it is
 * fsynced, while the job is still starting. The device is slow here (each WAL fsync 200 ms) and the
 * executor stays in start() until the ring comes: fails if the scheduler
 * fsyncs before starting (nothing unsynced at the start), rings only after
 * the starts (no ring within start: the order before the syncer), rings
 * before the fsync, or never syncs. */
static void test_scheduler_starts_before_the_fsync_and_publishes_after(void **state) {
    fx *f = *state;
    noting_exec x = {.wait_for_ring = true};
    scheduler *s = NULL;
    wal_sync_delay_ms = 200;
    assert_int_equal(step_until_started(f, &x, 0, &s), TS_OK);
    assert_int_equal(x.started, 1);
    assert_true(x.claim_visible_at_start);
    assert_int_equal(x.rings_at_start, 0);
    assert_true(x.unsynced_at_start > 0);  /* started before the fsync */
    assert_int_equal(x.rings_in_start, 1); /* rung while the job was starting */
    assert_true(x.syncs_at_ring > x.syncs_before_start); /* after the WAL's fsync */
    assert_int_equal(x.unsynced_at_ring, 0);
    assert_int_equal(wal_unsynced, 0);
    int64_t seq = 0;
    assert_int_equal(store_listener_drain(x.l, &seq), 0); /* once */
    sched_free(s);
    store_listener_close(x.l);
}

/* Pipelined (sched/syncer.h): the device does not answer the syncer's
 * fsyncs until the test lets it, and still the step that started the job
 * returns and the next one runs; nobody heard of the round yet. Once the
 * device answers, sched_sync_wait returns with everything synced and the
 * ring comes. Fails (hangs until the test's timeout) if a round waits for
 * its own fsync again. */
static void test_scheduler_step_does_not_wait_for_its_fsync(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    noting_exec x = {0};
    scheduler *s = NULL;
    gate_wal_syncs(true);
    assert_int_equal(step_until_started(f, &x, 0, &s), TS_OK);
    assert_int_equal(x.started, 1);
    assert_true(x.unsynced_at_start > 0);
    assert_int_equal(sched_step(s, 0, -1, err, sizeof(err)), TS_OK); /* the next round */
    assert_int_equal(wal_syncs, x.syncs_before_start); /* no fsync ended meanwhile */
    assert_true(wal_unsynced > 0);
    int64_t seq = 0;
    assert_int_equal(store_listener_drain(x.l, &seq), 0);
    gate_wal_syncs(false);
    assert_int_equal(sched_sync_wait(s, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_unsynced, 0);
    assert_int_equal(store_listener_drain(x.l, &seq), 1);
    sched_free(s);
    store_listener_close(x.l);
}

/* A batch executor's jobs outlive the scheduler: their claims are on the
 * device before they start, as every commit of the store's. */
static void test_scheduler_fsyncs_before_detached_jobs_start(void **state) {
    fx *f = *state;
    noting_exec x = {.base.ops = &noting_detached_ops};
    scheduler *s = NULL;
    assert_int_equal(step_until_started(f, &x, 0, &s), TS_OK);
    assert_int_equal(x.started, 1);
    assert_int_equal(x.unsynced_at_start, 0);
    assert_int_equal(x.rings_at_start, 1);
    sched_free(s);
    store_listener_close(x.l);
}

/* A failed fsync may have lost the claims of jobs already started: the
 * scheduler stops them and says the store is unavailable; nobody hears of
 * the round. */
static void test_scheduler_stops_its_jobs_when_the_fsync_fails(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    noting_exec x = {0};
    scheduler *s = NULL;
    int rc = step_until_started(f, &x, SQLITE_IOERR_FSYNC, &s);
    /* The round did not wait for its fsync: a later step hears it failed. */
    double end = ts_monotonic() + 5;
    while (rc == TS_OK && ts_monotonic() < end) {
        usleep(5000);
        rc = sched_step(s, 0, -1, err, sizeof(err));
    }
    assert_int_equal(rc, STORE_UNAVAILABLE);
    fail_syncs = 0;
    assert_int_equal(x.started, 1);
    assert_int_equal(x.cancelled, 1);
    assert_false(sched_is_leader(s));
    int64_t seq = 0;
    assert_int_equal(store_listener_drain(x.l, &seq), 0);
    sched_free(s);
    store_listener_close(x.l);
}

/* ---- sync tickets: one fsync for a group, and none trusted after a failure ---------- */

/* A commit of st with deferred sync on, and its ticket. */
static store_sync_ticket *commit_and_take(store *st, int64_t id, int32_t idx) {
    char err[TS_ERRLEN];
    core_change ch = job_change(id, idx, JOB_PENDING, JOB_READY);
    assert_int_equal(store_begin(st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_apply(st, &ch, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(store_commit(st, err, sizeof(err)), TS_OK);
    store_sync_ticket *t = NULL;
    assert_int_equal(store_sync_take(st, &t, err, sizeof(err)), TS_OK);
    assert_non_null(t);
    return t;
}

/* Two rounds commit and take their tickets before the first runs: the
 * first ticket's fsync covers both, so the second only rings. A third,
 * taken after that fsync, needs one of its own. Fails if a ticket skips an
 * fsync that did not cover it, or every ticket pays its own. */
static void test_one_fsync_serves_the_tickets_taken_before_it(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann"), seq = 0;
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    store_sync_ticket *t1 = commit_and_take(f->st, id, 0), *t2 = commit_and_take(f->st, id, 1);
    int before = wal_syncs;
    assert_int_equal(store_sync_ticket_run(t1, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_syncs, before + 1);
    assert_int_equal(wal_unsynced, 0);
    assert_int_equal(store_listener_drain(l, &seq), 1);
    assert_int_equal(store_sync_ticket_run(t2, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_syncs, before + 1); /* covered already */
    assert_int_equal(store_listener_drain(l, &seq), 1); /* but rung */
    int64_t id2 = submit_ok(f->st, "ann");
    store_sync_ticket *t3 = commit_and_take(f->st, id2, 0);
    assert_true(wal_unsynced > 0);
    assert_int_equal(store_sync_ticket_run(t3, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_syncs, before + 2);
    assert_int_equal(wal_unsynced, 0);
    store_sync_ticket_free(t1);
    store_sync_ticket_free(t2);
    store_sync_ticket_free(t3);
    store_listener_close(l);
}

/* After a failed fsync the kernel may have dropped the pages it could not
 * write, and a later fsync succeeds without them: the connection's later
 * tickets fail too, even once the device works again, and nobody is rung.
 * After store_sync_failed the handle reconnects and syncs afresh. */
static void test_a_failed_fsync_fails_the_later_tickets_of_its_connection(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann"), seq = 0;
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    store_sync_ticket *t1 = commit_and_take(f->st, id, 0), *t2 = commit_and_take(f->st, id, 1);
    fail_syncs = SQLITE_IOERR_FSYNC;
    assert_int_equal(store_sync_ticket_run(t1, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "syncing the WAL"));
    fail_syncs = 0;
    assert_int_equal(store_sync_ticket_run(t2, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_listener_drain(l, &seq), 0);
    store_sync_ticket_free(t1);
    store_sync_ticket_free(t2);
    store_sync_failed(f->st);
    int64_t id2 = submit_ok(f->st, "ann"); /* reconnected */
    store_sync_ticket *t3 = commit_and_take(f->st, id2, 0);
    assert_int_equal(store_sync_ticket_run(t3, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_unsynced, 0);
    assert_int_equal(store_listener_drain(l, &seq), 1);
    store_sync_ticket_free(t3);
    store_listener_close(l);
}

/* The database's path is a symbolic link: SQLite's WAL is beside the file
 * the link points to, and that is the file a ticket must fsync. Fails if
 * the ticket's handle is opened by the link's name + "-wal": it would make
 * and sync an empty file there while the real WAL stays unsynced. */
static void test_a_ticket_syncs_the_wal_of_a_linked_database(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], link[192], stray[200];
    snprintf(link, sizeof(link), "%s/link.db", f->dir);
    snprintf(stray, sizeof(stray), "%s-wal", link);
    assert_int_equal(symlink(f->path, link), 0);
    store *st = NULL;
    assert_int_equal(store_open_existing(link, &st, err, sizeof(err)), TS_OK);
    int64_t id = submit_ok(st, "ann");
    assert_int_equal(store_set_deferred_sync(st, true, err, sizeof(err)), TS_OK);
    store_sync_ticket *t = commit_and_take(st, id, 0);
    assert_true(wal_unsynced > 0);
    assert_int_equal(store_sync_ticket_run(t, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_unsynced, 0);
    struct stat sb;
    assert_int_not_equal(lstat(stray, &sb), 0);
    store_sync_ticket_free(t);
    store_close(st);
}

/* The durable seq readers stop at (store_listener_durable_seq): a
 * deferred commit's events stay above it until a ticket covering them
 * ran; a synchronous commit raises it at once. Fails if the bound moves
 * before the fsync or not at all. */
static void test_the_durable_seq_follows_the_fsyncs(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    int64_t id = submit_ok(f->st, "ann"), newest = 0;
    assert_int_equal(store_events_last_seq(f->st, &newest, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_durable_seq(l), newest);
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    store_sync_ticket *t = commit_and_take(f->st, id, 0);
    int64_t before = newest;
    assert_int_equal(store_events_last_seq(f->st, &newest, err, sizeof(err)), TS_OK);
    assert_true(newest > before);
    assert_int_equal(store_listener_durable_seq(l), before); /* committed, not on disk */
    assert_int_equal(store_sync_ticket_run(t, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_durable_seq(l), newest);
    store_sync_ticket_free(t);
    assert_int_equal(store_listener_durable_seq(NULL), INT64_MAX); /* unknown: no bound */
    store_listener_close(l);
}

/* The durable file as an attacker or an accident leaves it: a directory,
 * or a link to another file. Neither is followed nor written; the bound
 * is unknown (no bound, as before the file existed), and rings still
 * work. Fails if the link is followed (its target grows) or the process
 * crashes. */
static void test_a_durable_file_that_is_not_a_file_is_unknown(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], wake[192], durable[220], target[220];
    snprintf(wake, sizeof(wake), "%s-wake", f->path);
    snprintf(durable, sizeof(durable), "%s/durable", wake);
    snprintf(target, sizeof(target), "%s/target", f->dir);
    assert_int_equal(mkdir(wake, 0700), 0);
    assert_int_equal(mkdir(durable, 0700), 0);
    store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_durable_seq(l), INT64_MAX);
    store_listener_close(l);
    assert_int_equal(rmdir(durable), 0);
    FILE *t = fopen(target, "w");
    assert_non_null(t);
    fclose(t);
    assert_int_equal(symlink(target, durable), 0);
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_durable_seq(l), INT64_MAX);
    submit_ok(f->st, "ann"); /* rings, and tries the file itself */
    int64_t seq = 0;
    assert_int_equal(store_listener_drain(l, &seq), 1);
    struct stat sb;
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    store_listener_close(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deferred_commit_rings_listeners_after_the_fsync,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_starts_before_the_fsync_and_publishes_after,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_step_does_not_wait_for_its_fsync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_stops_its_jobs_when_the_fsync_fails,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_fsyncs_before_detached_jobs_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_fsync_serves_the_tickets_taken_before_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_failed_fsync_fails_the_later_tickets_of_its_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_ticket_syncs_the_wal_of_a_linked_database, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_durable_seq_follows_the_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_durable_file_that_is_not_a_file_is_unknown, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, install_fault_vfs, NULL);
}
