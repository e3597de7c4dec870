/*
 * test_store_faults.c - the SQLite store under storage faults (store.h,
 * "Storage faults"): every call answers STORE_UNAVAILABLE - never TS_ERR,
 * never STORE_NOTFOUND - when the disk is full, reads or writes fail, the
 * database file was deleted or replaced, or a page is corrupt; nothing is
 * acknowledged into a deleted file; a process that did not create the
 * database never creates it; the handle comes back by itself when the
 * fault goes away (but not onto a file put in place of its own).
 *
 * Faults are injected by a VFS shim registered as SQLite's default: it
 * forwards every call to the real unix VFS and fails xRead / xWrite with
 * the code the test sets, which is what SQLite sees from a full or failing
 * disk. The real file system is exercised by tests/service/storage.test.mjs.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spec.h"
#include "batch_harness.h"
#include "sched/scheduler.h"
#include "store/store.h"
#include "testlib.h"
#include "util/util.h"

#define T0 1700000000.0

/* ---- a VFS that fails on demand ------------------------------------------------ */

typedef struct fault_file {
    sqlite3_file base;
    bool is_wal;        /* the write-ahead log, where commits go */
    sqlite3_file *real; /* allocated right after this struct */
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static int fail_writes; /* an SQLite code for xWrite to return, 0 = none */
static int fail_reads;  /* likewise for xRead */
static int fail_syncs;  /* likewise for xSync */
static _Atomic int wal_unsynced; /* writes to a WAL since its last xSync (any thread) */
static _Atomic int wal_syncs;    /* a WAL's successful xSyncs (any thread) */
static _Atomic int wal_sync_delay_ms; /* a slow device: each WAL xSync takes this long first */

#define REAL(f) (((fault_file *)(f))->real)

static int f_close(sqlite3_file *f) {
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    if (fail_reads) return fail_reads;
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    if (fail_writes) return fail_writes;
    if (((fault_file *)f)->is_wal) wal_unsynced++;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
    if (fail_syncs) return fail_syncs;
    if (wal_sync_delay_ms && ((fault_file *)f)->is_wal) usleep((useconds_t)wal_sync_delay_ms * 1000);
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    if (rc == SQLITE_OK && ((fault_file *)f)->is_wal) {
        wal_unsynced = 0;
        wal_syncs++;
    }
    return rc;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) {
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_reserved(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) {
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_device(sqlite3_file *f) {
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) {
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
    3,        f_close,   f_read,      f_write,       f_truncate,  f_sync,   f_size,
    f_lock,   f_unlock,  f_reserved,  f_control,     f_sector,    f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    ff->base.pMethods = rc == SQLITE_OK ? &fault_io : NULL;
    return rc;
}

static int install_fault_vfs(void **state) {
    (void)state;
    real_vfs = sqlite3_vfs_find(NULL);
    fault_vfs = *real_vfs;
    fault_vfs.zName = "tessera-fault";
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.xOpen = f_open;
    fault_vfs.pNext = NULL;
    return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- fixtures and helpers ----------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char path[128];
    store *st;
} fx;

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-faults-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/tessera.db", f->dir);
    if (store_open(f->path, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    fail_reads = fail_writes = fail_syncs = 0;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    fail_reads = fail_writes = fail_syncs = 0;
    wal_sync_delay_ms = 0;
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static const char TWO_JOBS[] =
    "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"},"
    " {\"job_id\": \"b\", \"job_type\": \"noop\", \"depends_on\": [\"a\"]}]}";

/* store_submit of TWO_JOBS; returns its code and sets *id. */
static int submit(store *st, const char *user, int64_t *id) {
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error e;
    assert_int_equal(spec_parse(TWO_JOBS, strlen(TWO_JOBS), NULL, NULL, NULL, &spec, &e), 0);
    int rc = store_submit(st, user, spec, T0, id, err, sizeof(err));
    spec_free(spec);
    return rc;
}

static int64_t submit_ok(store *st, const char *user) {
    int64_t id = 0;
    assert_int_equal(submit(st, user, &id), TS_OK);
    return id;
}

static int get_rc(store *st, int64_t id) {
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int rc = store_workflow_get(st, id, "ann", &wf, err, sizeof(err));
    store_workflow_free(wf);
    return rc;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void unlink_db(const fx *f) {
    char p[160];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
}

static int wf_cb(void *ctx, const store_workflow *wf) {
    (void)ctx;
    (void)wf;
    return 0;
}

static int cmd_cb(void *ctx, const store_command *cmd) {
    (void)ctx;
    (void)cmd;
    return 0;
}

static int ev_cb(void *ctx, const store_event *ev) {
    (void)ctx;
    (void)ev;
    return 0;
}

static core_change job_change(int64_t wf, int32_t idx, job_state from, job_state to) {
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_JOB;
    ch.workflow_id = wf;
    ch.job_index = idx;
    ch.job_id = idx == 0 ? "a" : "b";
    ch.from = from;
    ch.to = to;
    ch.cpus = 1;
    ch.at = T0 + 1;
    ch.exit_code = -1;
    return ch;
}

/* Every call of store.h that touches the database answers STORE_UNAVAILABLE,
 * with a message that says so. */
static void assert_all_unavailable(store *st, int64_t id) {
    char err[TS_ERRLEN];
    int64_t n = 0;
    bool b = false;
    char name[129];
    store_queue_stats qs;
    store_attempt *att = NULL;
    size_t n_att = 0;
    core_change ready = job_change(id, 0, JOB_PENDING, JOB_READY);
    core_change run = job_change(id, 0, JOB_READY, JOB_RUNNING);
    core_change admit = job_change(id, -1, 0, 0);
    admit.kind = CHANGE_WORKFLOW;
    admit.from = WF_QUEUED;
    admit.to = WF_RUNNING;
    const char *hash = "0000000000000000000000000000000000000000000000000000000000000000";

    assert_int_equal(submit(st, "ann", &n), STORE_UNAVAILABLE);
    assert_int_equal(get_rc(st, id), STORE_UNAVAILABLE);
    assert_int_equal(store_workflow_list(st, "ann", -1, 0, 0, wf_cb, NULL,
                                         err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "store unavailable"));
    assert_int_equal(store_load_unfinished(st, 0, wf_cb, NULL, err,
                                           sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_workflow_delete(st, id, "ann", err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_apply(st, &ready, NULL, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_claim(st, &run, "me", T0 + 9, 4, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_admit(st, &admit, 3, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_renew_leases(st, "me", T0 + 9, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_leader_acquire(st, "me", T0, 5, &b, err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_false(b);
    assert_int_equal(store_leader_release(st, "me", err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_command_add(st, id, -1, "cancel", "ann", T0, &n, err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_commands_since(st, 0, cmd_cb, NULL, err,
                                          sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_command_applied(st, 1, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_events_since(st, 0, "ann", 0, 0, ev_cb, NULL, err,
                                        sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_events_last_seq(st, &n, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_attempts(st, id, -1, &att, &n_att, err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_user_put(st, "ann", hash, false, T0, err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_user_by_token(st, hash, name, &b, err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_queue_stats_get(st, &qs, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_begin(st, err, sizeof(err)), STORE_UNAVAILABLE);
    store_rollback(st); /* harmless without a transaction */
    assert_int_equal(store_probe(st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "store unavailable"));
}

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
 * fsynced, while the job is still starting, and the step ends only after
 * the fsync. The device is slow here (each WAL fsync 200 ms) and the
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
    noting_exec x = {0};
    scheduler *s = NULL;
    assert_int_equal(step_until_started(f, &x, SQLITE_IOERR_FSYNC, &s), STORE_UNAVAILABLE);
    fail_syncs = 0;
    assert_int_equal(x.started, 1);
    assert_int_equal(x.cancelled, 1);
    assert_false(sched_is_leader(s));
    int64_t seq = 0;
    assert_int_equal(store_listener_drain(x.l, &seq), 0);
    sched_free(s);
    store_listener_close(x.l);
}

/* ---- a deleted or replaced database --------------------------------------------------- */

/* After rm tessera.db*, SQLite would go on committing into the unlinked
 * inode: every call must refuse instead, and the file must not come back. */
/* Acknowledged means on stable storage (issue 12, defect 9): when a submit
 * or a scheduler commit returns, every byte it wrote to the WAL has been
 * fsynced. With synchronous=NORMAL the WAL is only written at commit and
 * synced at checkpoints, and this fails. */
static void test_commit_returns_after_wal_fsync(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    wal_unsynced = 0;
    int64_t id = submit_ok(f->st, "ann");
    assert_int_equal(wal_unsynced, 0);
    core_change ch = job_change(id, 0, JOB_PENDING, JOB_READY);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_OK);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(wal_unsynced, 0);
}

/* After-hook of a batch call: what the WAL holds unsynced when it returns. */
static void note_unsynced(batch_call *c) {
    c->seen = wal_unsynced;
}

/* Group commit (store_batcher): concurrent submissions that are one commit
 * are acknowledged only after that commit's WAL fsync; when the commit
 * fails (a full disk) every one of them gets the 503's STORE_UNAVAILABLE
 * and nothing of any is kept; once space is back the same batch commits. */
static void test_batch_commit_fsynced_or_failed_for_all(void **state) {
    fx *f = *state;
    enum { N = 8 };
    char err[TS_ERRLEN];
    store_batcher *b = store_batcher_new(64);
    batch_call calls[N];
    for (int i = 0; i < N; i++)
        calls[i] = (batch_call){.user = "ann", .json = TWO_JOBS, .after = note_unsynced};
    fail_writes = SQLITE_FULL;
    assert_int_equal(batch_run(f->path, b, calls, N), 0);
    fail_writes = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].rc, STORE_UNAVAILABLE);
        assert_non_null(strstr(calls[i].err, "store unavailable"));
    }
    store_batcher_stats bs;
    store_batcher_stats_get(b, &bs);
    assert_int_equal(bs.commits, 1);
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.queued_workflows, 0);

    for (int i = 0; i < N; i++)
        calls[i] = (batch_call){.user = "ann", .json = TWO_JOBS, .after = note_unsynced,
                                .seen = -1};
    assert_int_equal(batch_run(f->path, b, calls, N), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(calls[i].rc, TS_OK);
        assert_int_equal(calls[i].seen, 0); /* answered after the fsync */
        assert_int_equal(get_rc(f->st, calls[i].r.id), TS_OK);
    }
    store_batcher_stats_get(b, &bs);
    assert_int_equal(bs.commits, 2);
    store_batcher_free(b);
}

static void test_deleted_database_is_unavailable_everywhere(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann");
    unlink_db(f);
    assert_all_unavailable(f->st, id);
    assert_int_equal(store_probe(f->st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "deleted"));
    assert_false(exists(f->path));
}

/* A write whose commit lands in a file deleted meanwhile is not
 * acknowledged: the scheduler's transaction is refused at commit. */
static void test_commit_into_deleted_file_not_acknowledged(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann");
    core_change ch = job_change(id, 0, JOB_PENDING, JOB_READY);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_OK);
    unlink_db(f);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "not kept"));
    store_rollback(f->st);
    assert_int_equal(get_rc(f->st, id), STORE_UNAVAILABLE);
}

/* Only the WAL deleted: the next writer would start a new one while this
 * handle keeps the old one open. */
static void test_deleted_wal_is_noticed(void **state) {
    fx *f = *state;
    char p[160];
    int64_t id = submit_ok(f->st, "ann");
    snprintf(p, sizeof(p), "%s-wal", f->path);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(get_rc(f->st, id), STORE_UNAVAILABLE);
}

/* A file renamed into place of the open one: this handle does not switch
 * to it (its WAL and other processes' handles belong to the old one). */
static void test_replaced_database_fences_the_handle(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], other[160];
    int64_t id = submit_ok(f->st, "ann");
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    store *st2 = NULL;
    assert_int_equal(store_open(other, &st2, err, sizeof(err)), TS_OK);
    submit_ok(st2, "ann");
    store_close(st2);
    assert_int_equal(rename(other, f->path), 0);
    assert_int_equal(get_rc(f->st, id), STORE_UNAVAILABLE);
    assert_int_equal(store_probe(f->st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "replaced"));
    /* a process started now opens the file that is there */
    store *fresh = NULL;
    assert_int_equal(store_open_existing(f->path, &fresh, err, sizeof(err)), TS_OK);
    assert_int_equal(get_rc(fresh, id), TS_OK);
    store_close(fresh);
}

/* ---- only the process that owns start-up creates the database ---------------------- */

static void test_open_existing_never_creates(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.db", f->dir);
    store *st = NULL;
    assert_int_equal(store_open_existing(missing, &st, err, sizeof(err)), TS_OK);
    assert_non_null(st);
    assert_all_unavailable(st, 1);
    assert_int_equal(store_probe(st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "does not exist"));
    assert_false(exists(missing));
    /* once the master has made it, the same handle uses it */
    store *master = NULL;
    assert_int_equal(store_open(missing, &master, err, sizeof(err)), TS_OK);
    int64_t id = submit_ok(master, "ann");
    assert_int_equal(get_rc(st, id), TS_OK);
    assert_int_equal(store_probe(st, err, sizeof(err)), TS_OK);
    store_close(master);
    store_close(st);
    /* a URL this build cannot open at all is still an error at once */
    assert_int_equal(store_open_existing("mysql://x/y", &st, err, sizeof(err)), TS_ERR);
    assert_null(st);
}

/* An empty file (or one with another schema) is not made current by a
 * worker: only the master migrates. */
static void test_open_existing_refuses_empty_file(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], empty[160];
    struct stat sb;
    snprintf(empty, sizeof(empty), "%s/empty.db", f->dir);
    int fd = open(empty, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    store *st = NULL;
    assert_int_equal(store_open_existing(empty, &st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_probe(st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "schema version 0"));
    store_close(st);
    assert_int_equal(stat(empty, &sb), 0);
    assert_int_equal(sb.st_size, 0);
}

/* ---- the disk: full, failing writes, failing reads ----------------------------------- */

static void test_full_disk_is_unavailable_and_recovers(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t first = submit_ok(f->st, "ann"), id = 0;
    fail_writes = SQLITE_FULL;
    assert_int_equal(submit(f->st, "ann", &id), STORE_UNAVAILABLE);
    core_change ch = job_change(first, 0, JOB_PENDING, JOB_READY);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    int rc = store_apply(f->st, &ch, NULL, err, sizeof(err));
    if (rc == TS_OK) rc = store_commit(f->st, err, sizeof(err));
    assert_int_equal(rc, STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "store unavailable"));
    store_rollback(f->st);
    /* reads go on */
    assert_int_equal(get_rc(f->st, first), TS_OK);
    /* space returns: the same handle writes again, nothing was half-kept */
    fail_writes = 0;
    id = submit_ok(f->st, "ann");
    assert_int_equal(id, first + 1);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_OK);
}

static void test_write_io_error_is_unavailable(void **state) {
    fx *f = *state;
    int64_t id = 0;
    fail_writes = SQLITE_IOERR_WRITE;
    assert_int_equal(submit(f->st, "ann", &id), STORE_UNAVAILABLE);
    fail_writes = 0;
    assert_int_equal(submit(f->st, "ann", &id), TS_OK);
}

/* A read error must not look like a missing workflow (404). */
static void test_read_io_error_is_unavailable_not_notfound(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_ok(f->st, "ann");
    store_close(f->st); /* a cold cache: reads reach the file */
    f->st = NULL;
    fail_reads = SQLITE_IOERR_READ;
    assert_int_equal(store_open_existing(f->path, &f->st, err, sizeof(err)), TS_OK);
    assert_all_unavailable(f->st, id);
    fail_reads = 0;
    assert_int_equal(get_rc(f->st, id), TS_OK);
}

/* ---- corruption ----------------------------------------------------------------------- */

/* Overwrites the page header of the workflows table's root page (the file
 * is closed and checkpointed, so the page is in the main file). */
static void corrupt_workflows_root(const char *path) {
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT rootpage, (SELECT page_size FROM pragma_page_size)"
                                        " FROM sqlite_schema WHERE name = 'workflows'",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long root = sqlite3_column_int(s, 0), page = sqlite3_column_int(s, 1);
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_true(root > 1);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    const unsigned char junk[12] = {0x42, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x11,
                                    0x11, 0x11, 0x11, 0x11};
    assert_int_equal(pwrite(fd, junk, sizeof(junk), (root - 1) * page), (ssize_t)sizeof(junk));
    close(fd);
}

static void test_corrupt_page_is_unavailable_not_notfound(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], marker[160];
    int64_t id = 0;
    for (int i = 0; i < 60; i++) id = submit_ok(f->st, "ann"); /* several pages */
    store_close(f->st);
    f->st = NULL;
    corrupt_workflows_root(f->path);
    assert_int_equal(store_open_existing(f->path, &f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(get_rc(f->st, id), STORE_UNAVAILABLE);
    assert_int_equal(get_rc(f->st, 1), STORE_UNAVAILABLE);
    assert_int_equal(store_probe(f->st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "corrupt"));
    /* every process learns it, also one that has not touched the page */
    snprintf(marker, sizeof(marker), "%s-corrupt", f->path);
    assert_true(exists(marker));
    store *other = NULL;
    assert_int_equal(store_open_existing(f->path, &other, err, sizeof(err)), TS_OK);
    assert_int_equal(store_probe(other, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "corrupt"));
    /* and the check at start says what is wrong */
    assert_int_equal(store_integrity_check(other, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "corrupt"));
    store_close(other);
}

/* A passing check (the start of serve or run) clears an old flag. */
static void test_integrity_check_passes_and_clears_flag(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], marker[160];
    submit_ok(f->st, "ann");
    snprintf(marker, sizeof(marker), "%s-corrupt", f->path);
    int fd = open(marker, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(store_probe(f->st, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_integrity_check(f->st, err, sizeof(err)), TS_OK);
    assert_false(exists(marker));
    assert_int_equal(store_probe(f->st, err, sizeof(err)), TS_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_returns_after_wal_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commit_fsynced_or_failed_for_all, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deferred_commit_rings_listeners_after_the_fsync,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_starts_before_the_fsync_and_publishes_after,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_stops_its_jobs_when_the_fsync_fails,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_scheduler_fsyncs_before_detached_jobs_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_database_is_unavailable_everywhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commit_into_deleted_file_not_acknowledged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_wal_is_noticed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_database_fences_the_handle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_never_creates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_existing_refuses_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_is_unavailable_and_recovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_io_error_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_io_error_is_unavailable_not_notfound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_page_is_unavailable_not_notfound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_integrity_check_passes_and_clears_flag, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, install_fault_vfs, NULL);
}
