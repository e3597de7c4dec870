/*
 * test_store.c - the store's conformance suite (src/store/store.h), run
 * against every backend: SQLite on a fresh database file per test, and
 * PostgreSQL on a fresh schema per test when TESSERA_TEST_PG_URL names a
 * server (tests/run-tests.sh starts one with tests/lib/pgserver.sh).
 * Here: schema and opening, submit and reads, isolation between users, the
 * parsed-spec cache of a handle and of handles sharing one, and that an
 * acknowledged submit survives kill -9. The suite goes on in
 * test_store_changes.c (the engine's changes, claims, admissions, leases,
 * leadership, concurrent claims from two processes) and test_store_events.c
 * (commands, events, the line); its fixture is store_fixture.h. The
 * PostgreSQL-only properties (fencing, events in commit order under
 * concurrent writers) are in test_store_pg.c.
 */
#include "store_fixture.h"

/* ---- schema and opening ---------------------------------------------------------- */

static void test_migrations_idempotent(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int v1 = store_schema_version(f->st);
    assert_true(v1 >= 1);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_schema_version(f->st), v1);
    /* a second handle on the same file at once is fine too */
    store *other = NULL;
    assert_int_equal(store_open(f->path, &other, err, sizeof(err)), TS_OK);
    assert_int_equal(store_schema_version(other), v1);
    store_close(other);
}

static void test_open_errors_are_clear(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[200];
    store *st = NULL;
    /* a server that is not there: unavailable (worth retrying), said so */
    assert_int_equal(store_open("postgresql://tessera@127.0.0.1:1/tessera?connect_timeout=2", &st,
                                err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_null(st);
    assert_non_null(strstr(err, "PostgreSQL unavailable"));
    assert_int_equal(store_open("mysql://db.example/tessera", &st, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "unsupported database URL"));
    snprintf(path, sizeof(path), "%s/no-such-dir/tessera.db", f->dir);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), TS_ERR);
    assert_null(st);
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(store_open("", &st, err, sizeof(err)), TS_ERR);
    /* a file that is not a database */
    snprintf(path, sizeof(path), "%s/junk.db", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an SQLite database, not even close; padding padding padding padding "
          "padding padding padding padding padding padding\n",
          fp);
    fclose(fp);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not a database"));
    unlink(path);
}

/* ---- submit and reads ------------------------------------------------------------ */

static void test_submit_get_round_trip(void **state) {
    fx *f = *state;
    int64_t id = submit_json(f->st, "user-123", TWO_JOBS, T0);
    assert_true(id > 0);
    store_workflow *wf = get(f->st, id, "user-123");
    assert_int_equal(wf->id, id);
    assert_string_equal(wf->user, "user-123");
    assert_string_equal(wf->name, "Cell Segmentation Workflow");
    assert_int_equal(wf->priority, 5);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_false(wf->cancel_requested);
    assert_true(wf->submitted_at == T0);
    assert_true(wf->admitted_at == 0 && wf->finished_at == 0);
    assert_string_equal(wf->reason, "");
    assert_int_equal(wf->queue_position, 1);
    /* the spec reloads with every field */
    assert_non_null(wf->spec);
    assert_int_equal(wf->spec->n_jobs, 2);
    assert_string_equal(wf->spec->jobs[1].job_id, "job-2");
    assert_string_equal(wf->spec->jobs[1].job_type, "tissue_mask");
    assert_string_equal(wf->spec->jobs[0].branch, "branch-1");
    assert_int_equal(wf->spec->jobs[0].cpus, 2);
    assert_int_equal(wf->spec->jobs[1].max_retries, 2);
    assert_int_equal(wf->spec->jobs[1].n_depends_on, 1);
    assert_int_equal(wf->spec->dag.branch_prev[1], 0);
    /* the jobs, pending */
    assert_int_equal(wf->n_jobs, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(wf->jobs[i].index, (int)i);
        assert_int_equal(wf->jobs[i].state, JOB_PENDING);
        assert_int_equal(wf->jobs[i].attempt, 0);
        assert_int_equal(wf->jobs[i].exit_code, -1);
        assert_string_equal(wf->jobs[i].lease_owner, "");
    }
    assert_string_equal(wf->jobs[0].job_id, "job-1");
    assert_int_equal(wf->jobs[0].cpus, 2);
    store_workflow_free(wf);

    evlist *ev = events(f->st, 0, "user-123", 0, 0);
    assert_int_equal(ev->n, 2);
    assert_string_equal(ev->type[0], "workflow.submitted");
    assert_string_equal(ev->type[1], "workflow.queued");
    assert_true(ev->seq[0] > 0 && ev->seq[1] > ev->seq[0]);
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(ev->json[i]);
        assert_int_equal(json_integer_value(json_object_get(ev->json[i], "seq")), ev->seq[i]);
        assert_int_equal(json_integer_value(json_object_get(ev->json[i], "workflow_id")), id);
        char t0[40];
        ts_iso8601(T0, t0, sizeof(t0));
        assert_string_equal(json_string_value(json_object_get(ev->json[i], "ts")), t0);
        assert_string_equal(json_string_value(json_object_get(ev->json[i], "state")), "queued");
        assert_null(json_object_get(ev->json[i], "job_id"));
    }
    assert_int_equal(json_integer_value(json_object_get(ev->json[1], "queue_position")), 1);
    evlist_free(ev);
}

/* The receipt says what was stored, and store_workflow_submitted builds
 * from it exactly what a read gives right after the commit (the POST's
 * answer is made from it without reading back). */
static void test_submit_receipt_matches_stored(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_receipt r[3];
    spec_workflow *spec = parse(TWO_JOBS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_submit_receipt(f->st, i == 2 ? "bob" : "alice", spec, T0 + i,
                                              &r[i], err, sizeof(err)),
                         TS_OK);
        assert_true(r[i].wake); /* alone: every submission is its own commit */
        assert_int_equal(r[i].queue_position, i + 1);
        assert_int_equal(r[i].active_users, 0);
        if (i > 0) assert_true(r[i].id > r[i - 1].id);
    }
    store_workflow *built = store_workflow_submitted("bob", spec, T0 + 2, &r[2]);
    store_workflow *read = get(f->st, r[2].id, "bob");
    assert_int_equal(built->id, read->id);
    assert_string_equal(built->user, read->user);
    assert_string_equal(built->name, read->name);
    assert_int_equal(built->priority, read->priority);
    assert_int_equal(built->state, read->state);
    assert_int_equal(built->cancel_requested, read->cancel_requested);
    assert_true(built->submitted_at == read->submitted_at);
    assert_true(built->admitted_at == read->admitted_at && built->finished_at == read->finished_at);
    assert_string_equal(built->reason, read->reason);
    assert_int_equal(built->queue_position, read->queue_position);
    assert_true(built->jobs_done == read->jobs_done);
    assert_int_equal(built->n_jobs, read->n_jobs);
    for (size_t i = 0; i < read->n_jobs; i++) {
        const store_job *a = &built->jobs[i], *b = &read->jobs[i];
        assert_int_equal(a->index, b->index);
        assert_string_equal(a->job_id, b->job_id);
        assert_int_equal(a->state, b->state);
        assert_int_equal(a->attempt, b->attempt);
        assert_int_equal(a->failures, b->failures);
        assert_int_equal(a->cpus, b->cpus);
        assert_int_equal(a->exit_code, b->exit_code);
        assert_string_equal(a->reason, b->reason);
        assert_string_equal(a->lease_owner, b->lease_owner);
        assert_true(a->not_before == b->not_before && a->progress == b->progress);
        assert_true(a->ready_at == b->ready_at && a->started_at == b->started_at &&
                    a->finished_at == b->finished_at && a->lease_expires == b->lease_expires);
    }
    json_t *sa = spec_to_json(built->spec), *sb = spec_to_json(read->spec);
    assert_true(json_equal(sa, sb));
    json_decref(sa);
    json_decref(sb);
    store_workflow_free(built);
    store_workflow_free(read);
    /* alice becomes active: the next receipt counts her */
    admit_ok(f->st, r[0].id, T0 + 5);
    store_receipt later;
    assert_int_equal(store_submit_receipt(f->st, "carol", spec, T0 + 6, &later, err,
                                          sizeof(err)),
                     TS_OK);
    assert_int_equal(later.active_users, 1);
    assert_int_equal(later.queue_position, 3);

    spec_free(spec);
}

static void test_submit_refused_inside_transaction(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = 0;
    spec_workflow *spec = parse(TWO_JOBS);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_ERR); /* not nestable */
    assert_int_equal(store_submit(f->st, "alice", spec, T0, &id, err, sizeof(err)), TS_ERR);
    store_rollback(f->st);
    assert_int_equal(store_submit(f->st, "", spec, T0, &id, err, sizeof(err)), TS_ERR);
    spec_free(spec);
}

static void test_other_users_workflow_is_notfound(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_workflow_get(f->st, id, "bob", &wf, err, sizeof(err)), STORE_NOTFOUND);
    assert_null(wf);
    assert_int_equal(store_workflow_get(f->st, id + 100, "alice", &wf, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_workflow_delete(f->st, id, "bob", err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "bob", T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND);
    /* bob's cancel attempt changed nothing */
    wf = get(f->st, id, NULL); /* NULL = any user (scheduler, admin) */
    assert_false(wf->cancel_requested);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, "bob", 0, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
    ev = events(f->st, 0, "bob", id, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
}

static void test_list_order_filters_and_cursor(void **state) {
    fx *f = *state;
    int64_t a[5];
    for (int i = 0; i < 5; i++) {
        a[i] = submit_json(f->st, "alice", TWO_JOBS, T0 + i);
        if (i == 1) submit_json(f->st, "bob", TWO_JOBS, T0 + i);
    }
    idlist l = list(f->st, "alice", -1, 0, 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(l.id[i], a[4 - i]); /* newest first */
    /* pages of 2 with the cursor */
    l = list(f->st, "alice", -1, 0, 2);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.id[1], a[3]);
    l = list(f->st, "alice", -1, l.id[1], 2);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.id[0], a[2]);
    assert_int_equal(l.id[1], a[1]);
    l = list(f->st, "alice", -1, l.id[1], 2);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.id[0], a[0]);
    /* all users */
    assert_int_equal(list(f->st, NULL, -1, 0, 0).n, 6);
    assert_int_equal(list(f->st, "bob", -1, 0, 0).n, 1);
    /* by state */
    core_change ch = wf_change(a[2], WF_QUEUED, WF_CANCELLED, T0 + 10);
    apply_ok(f->st, &ch);
    l = list(f->st, "alice", WF_CANCELLED, 0, 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.id[0], a[2]);
    assert_int_equal(l.queue_position[0], 0);
    assert_int_equal(list(f->st, "alice", WF_QUEUED, 0, 0).n, 4);
    assert_int_equal(list(f->st, "bob", WF_CANCELLED, 0, 0).n, 0);
}

static int count_loaded(void *ctx, const store_workflow *wf) {
    int *n = ctx;
    assert_non_null(wf->spec);
    assert_non_null(wf->jobs);
    assert_int_equal(wf->n_jobs, wf->spec->n_jobs);
    (*n)++;
    return 0;
}

static void test_load_unfinished_skips_final(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t a = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b = submit_json(f->st, "bob", TWO_JOBS, T0);
    submit_json(f->st, "carol", TWO_JOBS, T0);
    core_change ch = wf_change(b, WF_QUEUED, WF_CANCELLED, T0 + 1);
    apply_ok(f->st, &ch);
    admit_ok(f->st, a, T0 + 1);
    int n = 0;
    assert_int_equal(store_load_unfinished(f->st, 0, count_loaded, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(store_load_unfinished(f->st, a, count_loaded, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
}

/* ---- other processes ------------------------------------------------------------------- */

/* A workflow read twice through one handle shares one parsed spec (issue
 * 16: reads neither parse the stored spec nor rebuild its DAG again); each
 * read frees its own reference, and another workflow has its own. */
static void test_spec_parsed_once_per_handle(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    int64_t other = submit_parallel(f->st, "alice", 4, T0 + 1);
    store_workflow *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(store_workflow_get(f->st, id, NULL, &a, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, "alice", &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, other, NULL, &c, err, sizeof(err)), TS_OK);
    assert_ptr_equal(a->spec, b->spec);
    assert_ptr_not_equal(a->spec, c->spec);
    assert_int_equal(c->spec->n_jobs, 4);
    store_workflow_free(a);
    assert_int_equal(b->spec->n_jobs, 3); /* still the cache's and b's */
    assert_int_equal(spec_find_job(b->spec, "j2"), 2);
    store_workflow_free(b);
    store_workflow_free(c);
    /* What a submit stored is read back without a parse: the submitted
     * spec itself, kept by the handle when the commit succeeded. */
    spec_workflow *spec = parse("{\"name\": \"kept\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"}]}");
    int64_t kept = 0;
    assert_int_equal(store_submit(f->st, "alice", spec, T0 + 2, &kept, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, kept, NULL, &a, err, sizeof(err)), TS_OK);
    assert_ptr_equal(a->spec, spec);
    spec_free(spec); /* the submitter's reference; the cache's and a's remain */
    assert_string_equal(a->spec->jobs[0].job_id, "a");
    store_workflow_free(a);
}

/* Handles sharing one spec cache (a worker's request threads,
 * store_share_spec_cache) read one parsed copy: what one handle parsed or
 * stored, another reads without parsing, and closing the first keeps the
 * cache for the others. */
static void test_spec_cache_shared_between_handles(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store *b = NULL, *c = NULL;
    assert_int_equal(store_open_existing(f->path, &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_open_existing(f->path, &c, err, sizeof(err)), TS_OK);
    store_share_spec_cache(b, c); /* b and c share; f->st keeps its own */
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    store_workflow *x = NULL, *y = NULL, *z = NULL;
    assert_int_equal(store_workflow_get(c, id, "alice", &x, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(b, id, "alice", &y, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, "alice", &z, err, sizeof(err)), TS_OK);
    assert_ptr_equal(x->spec, y->spec);     /* parsed once, by c, for both */
    assert_ptr_not_equal(x->spec, z->spec); /* the submitter's own handle */
    store_workflow_free(x);
    store_workflow_free(y);
    store_workflow_free(z);
    store_close(c); /* the cache lives on with b */
    assert_int_equal(store_workflow_get(b, id, NULL, &x, err, sizeof(err)), TS_OK);
    assert_int_equal(spec_find_job(x->spec, "j1"), 1);
    store_workflow_free(x);
    store_close(b);
}

/* The child of the durability test: submit, report the id, wait to die. */
static void durability_child(const char *path, int fd) {
    store *st = NULL;
    char err[TS_ERRLEN];
    int64_t id = 0;
    spec_workflow *spec = parse(TWO_JOBS);
    if (spec == NULL || store_open(path, &st, err, sizeof(err)) != TS_OK) _exit(2);
    if (store_submit(st, "alice", spec, T0, &id, err, sizeof(err)) != TS_OK) _exit(3);
    if (write(fd, &id, sizeof(id)) != (ssize_t)sizeof(id)) _exit(4);
    for (;;) pause(); /* never closes the store: it is killed */
}

static void test_durability_acknowledged_submit_survives_kill9(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int p[2], status = 0;
    int64_t id = 0;
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        durability_child(f->path, p[1]);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &id, sizeof(id)), (ssize_t)sizeof(id));
    close(p[0]);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, "alice");
    assert_string_equal(wf->name, "Cell Segmentation Workflow");
    assert_int_equal(wf->n_jobs, 2);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, "alice", id, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors_are_clear, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_submit_get_round_trip, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_submit_receipt_matches_stored, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_submit_refused_inside_transaction, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_users_workflow_is_notfound, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_order_filters_and_cursor, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_load_unfinished_skips_final, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_spec_parsed_once_per_handle, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_spec_cache_shared_between_handles, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_durability_acknowledged_submit_survives_kill9,
                                        setup_closed, teardown),
    };
    int failed = cmocka_run_group_tests_name("store (sqlite)", tests, NULL, NULL);
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url && pg_url[0])
        failed += cmocka_run_group_tests_name("store (postgresql)", tests, NULL, NULL);
    else
        printf("store (postgresql): not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store runs it)\n");
    return failed;
}
