/*
 * test_store_wal.c - store_checkpoint (store.h): the write-ahead log is
 * kept bounded. SQLite checkpoints by itself only as far as no reader
 * still needs and never shrinks the file, so a log that grew while readers
 * held old snapshots stayed large; store_checkpoint copies it into the
 * database and truncates it once it is past the limit, leaves a small one
 * alone, is refused inside a transaction, and loses nothing. Run against
 * SQLite files and, when TESSERA_TEST_PG_URL is set, PostgreSQL (which
 * keeps its own WAL: the call is a measure of nothing, 0 bytes).
 */
#include "store_fixture.h"

#include <sqlite3.h>

/* The size of the store's WAL file (SQLite), 0 when there is none. */
static int64_t wal_file_size(const fx *f) {
    char wal[600];
    struct stat sb;
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    return stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* A reader that holds the snapshot it began with (an open read
 * transaction on its own connection), as a slow HTTP read would: while it
 * does, no checkpoint can reset the log past it. */
static sqlite3 *hold_snapshot(const fx *f) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN; SELECT count(*) FROM workflows;", NULL, NULL, NULL),
                     SQLITE_OK);
    return db;
}

static void release_snapshot(sqlite3 *db) {
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* Submits workflows of 50 jobs until the log is past bytes (SQLite) or n
 * were submitted (PostgreSQL); returns the last id. */
static int64_t grow_log(fx *f, int64_t bytes, int *n) {
    int64_t id = 0;
    for (*n = 0; *n < 2000; (*n)++) {
        id = submit_parallel(f->st, "alice", 50, T0 + *n);
        assert_true(id > 0);
        if (pg_url ? *n >= 20 : wal_file_size(f) > bytes) break;
    }
    return id;
}

static void test_checkpoint_truncates_a_log_past_the_limit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    sqlite3 *reader = pg_url ? NULL : hold_snapshot(f);
    int n = 0;
    int64_t last = grow_log(f, 3 << 20, &n);
    if (reader) {
        assert_true(wal_file_size(f) > (3 << 20)); /* the reader kept it from being reset */
        release_snapshot(reader);
    }
    int64_t after = -1;
    assert_int_equal(store_checkpoint(f->st, 1 << 20, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(after, 0);
    if (!pg_url) assert_int_equal(wal_file_size(f), 0);
    /* nothing was lost, in this handle or a new one */
    store_workflow *wf = get(f->st, last, "alice");
    assert_int_equal(wf->n_jobs, 50);
    store_workflow_free(wf);
    store_close(f->st);
    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    for (int64_t id = last - n; id <= last; id++) {
        wf = get(f->st, id, "alice");
        assert_int_equal(wf->n_jobs, 50);
        store_workflow_free(wf);
    }
}

static void test_checkpoint_leaves_a_small_log_alone(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    submit_parallel(f->st, "alice", 3, T0);
    int64_t before = wal_file_size(f), after = -1;
    if (!pg_url) assert_true(before > 0);
    assert_int_equal(store_checkpoint(f->st, 64 << 20, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(after, before);
    assert_int_equal(wal_file_size(f), before); /* not truncated: under the limit */
    /* INT64_MAX only measures */
    assert_int_equal(store_checkpoint(f->st, INT64_MAX, &after, err, sizeof(err)), TS_OK);
    assert_int_equal(after, before);
}

static void test_checkpoint_refused_inside_a_transaction(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN] = "";
    submit_parallel(f->st, "alice", 3, T0);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    int rc = store_checkpoint(f->st, 0, NULL, err, sizeof(err));
    store_rollback(f->st);
    if (pg_url) {
        assert_int_equal(rc, TS_OK);
        return;
    }
    assert_int_equal(rc, TS_ERR);
    assert_non_null(strstr(err, "a transaction is open"));
    assert_true(wal_file_size(f) > 0); /* nothing was done */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoint_truncates_a_log_past_the_limit, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_leaves_a_small_log_alone, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refused_inside_a_transaction, setup_open,
                                        teardown),
    };
    int failed = cmocka_run_group_tests_name("store wal (sqlite)", tests, NULL, NULL);
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url && pg_url[0])
        failed += cmocka_run_group_tests_name("store wal (postgresql)", tests, NULL, NULL);
    else
        printf("store wal (postgresql): not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store_wal runs it)\n");
    return failed;
}
