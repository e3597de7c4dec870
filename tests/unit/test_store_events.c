/*
 * test_store_events.c - the store's conformance suite (src/store/store.h),
 * run against SQLite and, when TESSERA_TEST_PG_URL names a server,
 * PostgreSQL (fixture: store_fixture.h): commands, events (filters, limits,
 * the SQLite listener woken by a commit), the line (queue positions, queue
 * statistics), the instances using the store, and deleting finished
 * workflows only. Schema, submit and reads are in test_store.c; the engine's
 * changes and claims in test_store_changes.c.
 */
#include "store_fixture.h"

/* ---- commands, events, the line --------------------------------------------------------- */

typedef struct cmdlist {
    size_t n;
    store_command c[8];
} cmdlist;

static int collect_cmd(void *ctx, const store_command *c) {
    cmdlist *l = ctx;
    if (l->n < 8) l->c[l->n++] = *c;
    return 0;
}

static void test_commands_since(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t c1 = 0, c2 = 0;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_command_add(f->st, id, 1, "retry", "alice", T0 + 1, &c1, err,
                                       sizeof(err)),
                     TS_OK);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 2, &c2, err,
                                       sizeof(err)),
                     TS_OK);
    assert_true(c2 > c1 && c1 > 0);
    assert_int_equal(store_command_add(f->st, id, -1, "explode", "alice", T0, NULL, err,
                                       sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "explode"));
    assert_int_equal(store_command_add(f->st, id, 2, "cancel", "alice", T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND); /* no job 2 */
    assert_int_equal(store_command_add(f->st, id + 1, -1, "cancel", NULL, T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND);

    store_workflow *wf = get(f->st, id, "alice");
    assert_true(wf->cancel_requested);
    store_workflow_free(wf);

    cmdlist l = {0};
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.c[0].id, c1);
    assert_int_equal(l.c[0].workflow_id, id);
    assert_int_equal(l.c[0].job_index, 1);
    assert_string_equal(l.c[0].kind, "retry");
    assert_string_equal(l.c[0].user, "alice");
    assert_true(l.c[0].created_at == T0 + 1);
    assert_int_equal(l.c[1].job_index, -1);
    assert_string_equal(l.c[1].kind, "cancel");
    l.n = 0;
    assert_int_equal(store_commands_since(f->st, c1, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.c[0].id, c2);
    /* Applied commands are never read again, even from the start (a
     * restarted scheduler), and a rolled-back mark leaves them pending. */
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_command_applied(f->st, c2, err, sizeof(err)), TS_OK);
    store_rollback(f->st);
    assert_int_equal(store_command_applied(f->st, c1, err, sizeof(err)), TS_OK);
    l.n = 0;
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.c[0].id, c2);
}

static void test_events_since_filters_and_limit(void **state) {
    fx *f = *state;
    int64_t a1 = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b1 = submit_json(f->st, "bob", TWO_JOBS, T0);
    int64_t a2 = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, a1, T0 + 1);

    evlist *all = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(all->n, 7);
    for (size_t i = 1; i < all->n; i++) assert_true(all->seq[i] > all->seq[i - 1]);
    assert_string_equal(all->type[6], "workflow.admitted");
    assert_string_equal(json_string_value(json_object_get(all->json[6], "state")), "running");

    evlist *al = events(f->st, 0, "alice", 0, 0);
    assert_int_equal(al->n, 5);
    for (size_t i = 0; i < al->n; i++) assert_string_equal(al->user[i], "alice");
    evlist *w = events(f->st, 0, "alice", a2, 0);
    assert_int_equal(w->n, 2);
    for (size_t i = 0; i < w->n; i++)
        assert_int_equal(json_integer_value(json_object_get(w->json[i], "workflow_id")), a2);
    evlist *bw = events(f->st, 0, "alice", b1, 0); /* bob's workflow, asked as alice */
    assert_int_equal(bw->n, 0);
    evlist *lim = events(f->st, 0, "alice", 0, 2);
    assert_int_equal(lim->n, 2);
    evlist *next = events(f->st, lim->seq[1], "alice", 0, 2);
    assert_int_equal(next->n, 2);
    assert_true(next->seq[0] > lim->seq[1]);
    assert_int_equal(next->seq[0], al->seq[2]);
    evlist *none = events(f->st, all->seq[6], NULL, 0, 0);
    assert_int_equal(none->n, 0);
    evlist_free(all);
    evlist_free(al);
    evlist_free(w);
    evlist_free(bw);
    evlist_free(lim);
    evlist_free(next);
    evlist_free(none);
}

static void test_queue_position_derived(void **state) {
    fx *f = *state;
    int64_t a = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b = submit_json(f->st, "bob", TWO_JOBS, T0);
    int64_t c = submit_json(f->st, "carol", TWO_JOBS, T0);
    idlist l = list(f->st, NULL, -1, 0, 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.queue_position[0], 3); /* c, newest first */
    assert_int_equal(l.queue_position[2], 1);
    admit_ok(f->st, a, T0 + 1);
    core_change ch = wf_change(b, WF_QUEUED, WF_CANCELLED, T0 + 1);
    apply_ok(f->st, &ch);
    store_workflow *wf = get(f->st, c, "carol");
    assert_int_equal(wf->queue_position, 1);
    store_workflow_free(wf);
    wf = get(f->st, a, "alice");
    assert_int_equal(wf->queue_position, 0);
    store_workflow_free(wf);
}

static void test_queue_stats(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.active_users + qs.waiting_users + qs.queued_workflows, 0);
    assert_true(qs.oldest_queued_at == 0); /* nobody waits */
    int64_t a1 = submit_parallel(f->st, "alice", 3, T0);
    submit_parallel(f->st, "alice", 1, T0 + 2); /* alice is active: not waiting */
    submit_parallel(f->st, "bob", 1, T0 + 3);
    submit_parallel(f->st, "bob", 1, T0 + 4);
    submit_parallel(f->st, "carol", 1, T0 + 5);
    admit_ok(f->st, a1, T0);
    make_ready(f->st, a1, 3, T0);
    core_change ch = job_change(a1, 0, "j0", JOB_READY, JOB_RUNNING, T0);
    ch.cpus = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 9, 8, err, sizeof(err)), TS_OK);
    ch = job_change(a1, 1, "j1", JOB_READY, JOB_RUNNING, T0);
    ch.cpus = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 9, 8, err, sizeof(err)), TS_OK);
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.active_users, 1);
    assert_int_equal(qs.waiting_users, 2);
    assert_int_equal(qs.queued_workflows, 4);
    assert_int_equal(qs.running_cpus, 2);
    assert_int_equal(qs.running_jobs, 2);
    /* The oldest waiter is alice's second (a1, older, was admitted). */
    assert_true(fabs(qs.oldest_queued_at - (T0 + 2)) < 1e-6);
}

/* store_instances: the instances using the store. PostgreSQL lists the
 * names of the database's sessions, so two handles opened under two names
 * are two instances and a closed one drops out; SQLite lists this process's
 * own name. Names are set before opening, as serve does before fork. */
static void test_instances(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_instance in[8];
    size_t n = 99;
    store_set_instance_name(""); /* the fixture's handle is unnamed */
    assert_int_equal(store_instances(f->st, in, 8, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 0);
    store *a = NULL, *b = NULL;
    store_set_instance_name("host-a:8080");
    assert_int_equal(store_open(f->path, &a, err, sizeof(err)), TS_OK);
    store_set_instance_name("host-b:8081");
    assert_int_equal(store_open(f->path, &b, err, sizeof(err)), TS_OK);
    /* PostgreSQL connects lazily on the first call: make each handle talk. */
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(a, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(store_queue_stats_get(b, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(store_instances(a, in, 8, &n, err, sizeof(err)), TS_OK);
    if (pg_url) {
        assert_int_equal(n, 2);
        assert_string_equal(in[0].name, "host-a:8080");
        assert_string_equal(in[1].name, "host-b:8081");
        assert_true(in[0].connections >= 1 && in[1].connections >= 1);
        assert_true(in[0].since > 1e9 && in[0].since <= ts_now() + 5);
        assert_int_equal(store_instances(a, in, 1, &n, err, sizeof(err)), TS_OK);
        assert_int_equal(n, 1); /* at most max */
        store_close(b);
        b = NULL;
        /* The server ends the session when the client goes: poll for it. */
        for (int i = 0; i < 200; i++) {
            assert_int_equal(store_instances(a, in, 8, &n, err, sizeof(err)), TS_OK);
            if (n == 1) break;
            usleep(20000);
        }
        assert_int_equal(n, 1);
        assert_string_equal(in[0].name, "host-a:8080");
    } else {
        assert_int_equal(n, 1); /* one instance by design: this process's */
        assert_string_equal(in[0].name, "host-b:8081");
        assert_int_equal(in[0].connections, -1);
    }
    store_close(a);
    store_close(b);
    store_set_instance_name("");
}

static void test_delete_finished_only(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t keep = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 4, NULL, err,
                                       sizeof(err)),
                     TS_OK);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)),
                     STORE_CONFLICT);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_CANCELLED, T0 + 5);
    ch.outcome = "cancelled";
    apply_ok(f->st, &ch);
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_CANCELLED, T0 + 5);
    apply_ok(f->st, &ch);
    ch = wf_change(id, WF_RUNNING, WF_CANCELLED, T0 + 5);
    apply_ok(f->st, &ch);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, NULL, &wf, err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)),
                     STORE_NOTFOUND);
    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), STORE_NOTFOUND);
    evlist *ev = events(f->st, 0, NULL, id, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
    cmdlist l = {0};
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 0);
    /* the other workflow and its events are untouched, and ids are not reused */
    wf = get(f->st, keep, "alice");
    store_workflow_free(wf);
    ev = events(f->st, 0, NULL, keep, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
    assert_true(submit_json(f->st, "alice", TWO_JOBS, T0) > keep);
}

/* ---- other processes ------------------------------------------------------------------- */

/* SQLite: a commit that records events wakes every listener at once with
 * the newest seq (issue 16: the WebSocket hubs need not poll), and a
 * listener's socket left by a process that died is removed by the next
 * ring. PostgreSQL's NOTIFY is covered by test_store_pg. */
static void test_sqlite_listener_woken_by_commit(void **state) {
    fx *f = *state;
    if (pg_url) skip();
    char err[TS_ERRLEN];
    store_listener *a = NULL, *b = NULL, *work = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &a, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &b, err, sizeof(err)), TS_OK);
    assert_non_null(a);
    assert_non_null(b);
    /* The scheduler's work wake-up stays the doorbell on SQLite. */
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_WORK, &work, err, sizeof(err)), TS_OK);
    assert_null(work);
    /* A listener whose process died: bound, closed, its file left. */
    char stale[600];
    snprintf(stale, sizeof(stale), "%s-wake/e1-0", f->path);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    ts_strlcpy(addr.sun_path, stale, sizeof(addr.sun_path));
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    int64_t newest = 0;
    assert_int_equal(store_listener_drain(a, &newest), 0); /* nothing yet */
    submit_parallel(f->st, "alice", 2, T0);
    int64_t last = 0;
    assert_int_equal(store_events_last_seq(f->st, &last, err, sizeof(err)), TS_OK);
    assert_true(last > 0);
    store_listener *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct pollfd p = {.fd = store_listener_fd(both[i]), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 1); /* already there when submit returned */
        assert_true(store_listener_drain(both[i], &newest) > 0);
        assert_int_equal(newest, last);
        assert_int_equal(store_listener_drain(both[i], &newest), 0);
    }
    assert_int_equal(access(stale, F_OK), -1);
    store_listener_close(a);
    store_listener_close(b);
    /* Where no socket can be bound (here: a path too long for one), there
     * is no listener, and no error: readers poll as before. */
    char deep[300];
    snprintf(deep, sizeof(deep), "%s/%0120d", f->dir, 0);
    assert_int_equal(mkdir(deep, 0700), 0);
    char db[400];
    snprintf(db, sizeof(db), "%s/t.db", deep);
    store_listener *none = NULL;
    assert_int_equal(store_listener_open(db, STORE_WAKE_EVENTS, &none, err, sizeof(err)), TS_OK);
    assert_null(none);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands_since, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_events_since_filters_and_limit, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_position_derived, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_listener_woken_by_commit, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_queue_stats, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_instances, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_delete_finished_only, setup_open, teardown),
    };
    int failed = cmocka_run_group_tests_name("store events (sqlite)", tests, NULL, NULL);
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url && pg_url[0])
        failed += cmocka_run_group_tests_name("store events (postgresql)", tests, NULL, NULL);
    else
        printf("store events (postgresql): not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store_events runs it)\n");
    return failed;
}
