/*
 * test_store_faults.c - the SQLite store under storage faults (store.h,
 * "Storage faults"): every call answers STORE_UNAVAILABLE - never TS_ERR,
 * never STORE_NOTFOUND - when the disk is full, reads or writes fail, the
 * database file was deleted or replaced, or a page is corrupt; nothing is
 * acknowledged into a deleted file; a process that did not create the
 * database never creates it; the handle comes back by itself when the
 * fault goes away (but not onto a file put in place of its own).
 *
 * Faults are injected by a VFS shim registered as SQLite's default
 * (fault_vfs.h). The real file system is exercised by
 * tests/service/storage.test.mjs; deferred and pipelined syncs are tested
 * in test_store_sync.c.
 */
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

#include "batch_harness.h"
#include "fault_vfs.h"

/* ---- helpers ------------------------------------------------------------------------- */

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
