/*
 * test_store_changes.c - the store's conformance suite (src/store/store.h),
 * run against SQLite and, when TESSERA_TEST_PG_URL names a server,
 * PostgreSQL (fixture: store_fixture.h): recording the engine's changes
 * (guards, timestamps, attempts, the workflow stamp and summary, skip, finish
 * and manual retry, progress and queue-position events, rollback), claims
 * and admissions under their limits, leases, leadership and its terms, and
 * concurrent claims from two processes that never exceed the concurrency
 * limit. Schema, submit and reads are in test_store.c; commands and events
 * in test_store_events.c.
 */
#include "store_fixture.h"

/* ---- recording changes ------------------------------------------------------------- */

static void test_apply_job_transitions_and_attempts(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_and_claim_first(f->st);

    store_workflow *wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_RUNNING);
    assert_true(wf->admitted_at == T0 + 1);
    assert_int_equal(wf->jobs[0].state, JOB_RUNNING);
    assert_true(wf->jobs[0].ready_at == T0 + 2);
    assert_true(wf->jobs[0].started_at == T0 + 3);
    assert_int_equal(wf->jobs[0].attempt, 1);
    assert_string_equal(wf->jobs[0].lease_owner, "sched-a");
    assert_true(wf->jobs[0].lease_expires == T0 + 33);
    store_workflow_free(wf);

    /* the attempt fails with retries left: back to ready, attempt closed */
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_READY, T0 + 4);
    ch.attempt = 1;
    ch.failures = 1;
    ch.not_before = T0 + 14;
    ch.exit_code = 3;
    ch.outcome = "failed";
    snprintf(ch.reason, sizeof(ch.reason), "attempt 1 failed (exit 3); retry 1 of 2 in 10 s");
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 2, "sched-a", 8, T0 + 15), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_SUCCEEDED, T0 + 20);
    ch.attempt = 2;
    ch.failures = 1;
    ch.exit_code = 0;
    ch.progress = 1;
    ch.outcome = "succeeded";
    apply_ok(f->st, &ch);

    wf = get(f->st, id, "alice");
    store_job *j = &wf->jobs[0];
    assert_int_equal(j->state, JOB_SUCCEEDED);
    assert_int_equal(j->attempt, 2);
    assert_int_equal(j->failures, 1);
    assert_int_equal(j->exit_code, 0);
    assert_true(j->progress == 1);
    assert_true(j->started_at == T0 + 15);
    assert_true(j->finished_at == T0 + 20);
    assert_string_equal(j->lease_owner, ""); /* leaving running clears the lease */
    assert_true(j->lease_expires == 0);
    store_workflow_free(wf);

    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(at[0].attempt, 1);
    assert_string_equal(at[0].outcome, "failed");
    assert_int_equal(at[0].exit_code, 3);
    assert_true(at[0].started_at == T0 + 3 && at[0].finished_at == T0 + 4);
    assert_non_null(strstr(at[0].reason, "retry 1 of 2"));
    assert_int_equal(at[1].attempt, 2);
    assert_string_equal(at[1].outcome, "succeeded");
    assert_true(at[1].finished_at == T0 + 20);
    free(at);
    assert_int_equal(store_attempts(f->st, id, 1, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_attempts(f->st, id, 7, &at, &n, err, sizeof(err)), STORE_NOTFOUND);

    /* a decision taken on an outdated view is refused and changes nothing */
    ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "stale change: job job-1 of workflow 1 is succeeded, not pending");
    ch = wf_change(id, WF_QUEUED, WF_CANCELLED, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "stale change: workflow 1 is running, not queued"));
    /* starting a job or admitting a workflow must go through claim/admit */
    ch = job_change(id, 1, "job-2", JOB_READY, JOB_RUNNING, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    /* an illegal transition never reaches the file */
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_SUCCEEDED, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "illegal"));
}

/* A batch executor's intent (token, no id) and then its id are kept on the
 * running attempt only; a finished attempt or another attempt number is
 * not found and nothing changes; bad values are refused before any SQL. */
static void test_attempt_external_id(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_and_claim_first(f->st);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "", err, sizeof(err)),
                     TS_OK);
    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(at[0].token, "ts.x.1.0.1");
    assert_string_equal(at[0].external_id, "");
    free(at);
    /* inside the caller's transaction, as the scheduler records it */
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "4711", err,
                                            sizeof(err)),
                     TS_OK);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_attempt_external(f->st, id, 0, 2, "ts.x.1.0.2", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempt_external(f->st, id, 1, 1, "ts.x.1.1.1", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "has space", "1", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "token"));
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "t", "12 3", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "external_id"));
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_SUCCEEDED, T0 + 4);
    ch.attempt = 1;
    ch.exit_code = 0;
    ch.progress = 1;
    ch.outcome = "succeeded";
    apply_ok(f->st, &ch);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "9", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempts(f->st, id, -1, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(at[0].external_id, "4711");
    assert_string_equal(at[0].outcome, "succeeded");
    free(at);
}

static store_workflow_stamp stamp_of(store *st, int64_t id, const char *user, unsigned want) {
    char err[TS_ERRLEN];
    store_workflow_stamp s;
    memset(&s, 0, sizeof(s));
    int rc = store_workflow_stamp_get(st, id, user, want, &s, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_workflow_stamp_get: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return s;
}

/* The stamp a cached view is checked against (http/view_cache.h) changes
 * with every write a read of the workflow shows: admission, a job's state,
 * its progress, a batch id on its attempt (which records no event), and
 * the place in line that another workflow's admission moves; another
 * user's workflow is STORE_NOTFOUND, as for store_workflow_get. */
static void test_workflow_stamp_follows_every_change(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow_stamp s;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t later = submit_parallel(f->st, "bob", 2, T0);
    store_workflow_stamp a0 = stamp_of(f->st, id, "alice", 0);
    assert_int_equal(a0.state, WF_QUEUED);
    assert_int_equal(a0.queue_position, 1);
    assert_true(a0.last_seq > 0);
    assert_int_equal(a0.batch_handles, 0);
    assert_int_equal(a0.running_cpus, -1);
    assert_int_equal(a0.active_users, -1);
    assert_int_equal(store_workflow_stamp_get(f->st, later, "alice", 0, &s, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_workflow_stamp_get(f->st, 999, NULL, 0, &s, err, sizeof(err)),
                     STORE_NOTFOUND);
    store_workflow_stamp b0 = stamp_of(f->st, later, NULL, 0);
    assert_int_equal(b0.queue_position, 2);

    admit_ok(f->st, id, T0 + 1);
    store_workflow_stamp a1 = stamp_of(f->st, id, "alice",
                                       STORE_STAMP_RUNNING_CPUS | STORE_STAMP_ACTIVE_USERS);
    assert_int_equal(a1.state, WF_RUNNING);
    assert_true(a1.last_seq > a0.last_seq);
    assert_int_equal(a1.running_cpus, 0);
    assert_int_equal(a1.active_users, 1);
    store_workflow_stamp b1 = stamp_of(f->st, later, "bob", 0);
    assert_int_equal(b1.last_seq, b0.last_seq); /* nothing of bob's was written... */
    assert_int_equal(b1.queue_position, 1);     /* ...but it moved up the line */

    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "sched-a", 8, T0 + 3), TS_OK);
    store_workflow_stamp a2 = stamp_of(f->st, id, "alice", STORE_STAMP_RUNNING_CPUS);
    assert_true(a2.last_seq > a1.last_seq);
    assert_int_equal(a2.running_cpus, 2); /* job-1 has 2 cpus */
    assert_int_equal(a2.active_users, -1);

    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.5;
    apply_ok(f->st, &ch);
    store_workflow_stamp a3 = stamp_of(f->st, id, "alice", 0);
    assert_true(a3.last_seq > a2.last_seq);

    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "4711", err,
                                            sizeof(err)),
                     TS_OK);
    store_workflow_stamp a4 = stamp_of(f->st, id, "alice", 0);
    assert_int_equal(a4.last_seq, a3.last_seq);
    assert_int_equal(a4.batch_handles, a3.batch_handles + 1);
    /* a refused one changes nothing */
    assert_int_equal(store_attempt_external(f->st, id, 1, 1, "ts.x.1.1.1", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(stamp_of(f->st, id, "alice", 0).batch_handles, a4.batch_handles);
}

/* The compact read: the row and the counts by state, no job rows. */
static void test_workflow_summary_counts_without_jobs(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    size_t counts[JOB_STATE_COUNT];
    store_workflow *wf = NULL;
    int64_t id = submit_and_claim_first(f->st);
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.25;
    apply_ok(f->st, &ch);
    assert_int_equal(store_workflow_summary(f->st, id, "alice", &wf, counts, err, sizeof(err)),
                     TS_OK);
    assert_true(wf->jobs_done > 0.2499 && wf->jobs_done < 0.2501); /* as a list row has it */
    assert_null(wf->jobs);
    assert_null(wf->spec);
    assert_int_equal(wf->n_jobs, 2);
    assert_int_equal(wf->state, WF_RUNNING);
    assert_string_equal(wf->user, "alice");
    assert_int_equal(counts[JOB_RUNNING], 1);
    assert_int_equal(counts[JOB_PENDING], 1);
    assert_int_equal(counts[JOB_SUCCEEDED], 0);
    store_workflow_free(wf);
    wf = NULL;
    assert_int_equal(store_workflow_summary(f->st, id, "bob", &wf, counts, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_null(wf);
}

static void test_apply_skip_finish_and_manual_retry(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_FAILED, T0 + 4);
    ch.attempt = 1;
    ch.exit_code = 1;
    ch.outcome = "failed";
    apply_ok(f->st, &ch);
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_SKIPPED, T0 + 4);
    snprintf(ch.reason, sizeof(ch.reason), "skipped: job-1 failed");
    apply_ok(f->st, &ch);
    ch = wf_change(id, WF_RUNNING, WF_FAILED, T0 + 4);
    snprintf(ch.reason, sizeof(ch.reason), "1 of 2 jobs failed");
    apply_ok(f->st, &ch);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 5, NULL, err,
                                       sizeof(err)),
                     TS_OK);

    store_workflow *wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_FAILED);
    assert_true(wf->finished_at == T0 + 4);
    assert_string_equal(wf->reason, "1 of 2 jobs failed");
    assert_false(wf->cancel_requested); /* a finished workflow is not marked */
    assert_int_equal(wf->jobs[1].state, JOB_SKIPPED);
    assert_true(wf->jobs[1].finished_at == T0 + 4);
    assert_int_equal(wf->jobs[1].exit_code, -1);
    assert_string_equal(wf->jobs[1].reason, "skipped: job-1 failed");
    assert_int_equal(wf->jobs[0].exit_code, 1);
    store_workflow_free(wf);

    /* a user's retry: the workflow goes back to the line, the job to pending */
    ch = wf_change(id, WF_FAILED, WF_QUEUED, T0 + 6);
    apply_ok(f->st, &ch);
    ch = job_change(id, 0, "job-1", JOB_FAILED, JOB_PENDING, T0 + 6);
    ch.attempt = 1;
    ch.failures = 1;
    apply_ok(f->st, &ch);
    wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_QUEUED);
    assert_true(wf->finished_at == 0);
    assert_true(wf->admitted_at == T0 + 1);
    assert_int_equal(wf->jobs[0].state, JOB_PENDING);
    assert_true(wf->jobs[0].ready_at == 0 && wf->jobs[0].started_at == 0 &&
                wf->jobs[0].finished_at == 0);
    assert_int_equal(wf->jobs[0].exit_code, -1);
    store_workflow_free(wf);
}

static void test_apply_progress_and_queue_position_events(void **state) {
    fx *f = *state;
    int64_t seq1 = 0, seq2 = 0;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.25;
    ch.event_type = "job.progress";
    assert_int_equal(store_apply(f->st, &ch, &seq1, err, sizeof(err)), TS_OK);
    int64_t other = submit_json(f->st, "bob", TWO_JOBS, T0 + 5);
    ch = wf_change(other, WF_QUEUED, WF_QUEUED, T0 + 6);
    ch.kind = CHANGE_QUEUE_POSITION;
    ch.queue_position = 1;
    ch.event_type = "queue.position";
    snprintf(ch.reason, sizeof(ch.reason), "active user limit reached: 1 of 1 users active");
    assert_int_equal(store_apply(f->st, &ch, &seq2, err, sizeof(err)), TS_OK);
    assert_true(seq2 > seq1 && seq1 > 0);

    store_workflow *wf = get(f->st, id, NULL);
    assert_true(wf->jobs[0].progress == 0.25);
    store_workflow_free(wf);

    evlist *ev = events(f->st, seq1 - 1, NULL, 0, 0);
    assert_true(ev->n >= 4);
    assert_int_equal(ev->seq[0], seq1);
    assert_string_equal(ev->type[0], "job.progress");
    assert_string_equal(json_string_value(json_object_get(ev->json[0], "job_id")), "job-1");
    assert_true(json_real_value(json_object_get(ev->json[0], "progress")) == 0.25);
    assert_int_equal(json_integer_value(json_object_get(ev->json[0], "attempt")), 1);
    assert_string_equal(ev->user[0], "alice");
    size_t last = ev->n - 1;
    assert_int_equal(ev->seq[last], seq2);
    assert_string_equal(ev->type[last], "queue.position");
    assert_string_equal(ev->user[last], "bob"); /* from the workflow row */
    assert_int_equal(json_integer_value(json_object_get(ev->json[last], "queue_position")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(ev->json[last], "message")),
                           "active user limit"));
    evlist_free(ev);
}

static void test_rollback_discards_changes(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    store_rollback(f->st);
    store_workflow *wf = get(f->st, id, NULL);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_int_equal(wf->jobs[0].state, JOB_PENDING);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
}

/* ---- claims and admission ---------------------------------------------------------------- */

static void test_claim_respects_concurrency_limit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 4, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, 3, T0 + 1);
    evlist *before = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "s", 2, T0 + 2), TS_OK);
    assert_int_equal(claim(f->st, id, 1, "j1", 1, "s", 2, T0 + 2), TS_OK);
    assert_int_equal(claim(f->st, id, 2, "j2", 1, "s", 2, T0 + 2), STORE_CONFLICT);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    /* not ready (pending), or already running: conflict too */
    assert_int_equal(claim(f->st, id, 3, "j3", 1, "s", 10, T0 + 3), STORE_CONFLICT);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "s", 10, T0 + 3), STORE_CONFLICT);
    /* a 2-cpu claim sees the 2 running cpus */
    core_change ch = job_change(id, 2, "j2", JOB_READY, JOB_RUNNING, T0 + 3);
    ch.cpus = 2;
    ch.attempt = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 40, 3, err, sizeof(err)), STORE_CONFLICT);
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 40, 4, err, sizeof(err)), TS_OK);

    store_workflow *wf = get(f->st, id, NULL);
    assert_int_equal(wf->jobs[2].state, JOB_RUNNING);
    assert_int_equal(wf->jobs[3].state, JOB_PENDING);
    store_workflow_free(wf);
    evlist *after = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(after->n, before->n + 3); /* conflicts wrote no event */
    assert_string_equal(after->type[after->n - 1], "job.started");
    evlist_free(before);
    evlist_free(after);
}

static void test_admit_respects_max_active_users(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t a1 = submit_json(f->st, "a", TWO_JOBS, T0);
    int64_t b1 = submit_json(f->st, "b", TWO_JOBS, T0);
    int64_t c1 = submit_json(f->st, "c", TWO_JOBS, T0);
    int64_t a2 = submit_json(f->st, "a", TWO_JOBS, T0);
    core_change ch = wf_change(a1, WF_QUEUED, WF_RUNNING, T0 + 1);
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = b1;
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = c1;
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), STORE_CONFLICT);
    ch.workflow_id = a2; /* a is active already: no new user */
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = a1; /* not queued any more */
    assert_int_equal(store_admit(f->st, &ch, 5, err, sizeof(err)), STORE_CONFLICT);
    store_workflow *wf = get(f->st, c1, NULL);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_int_equal(wf->queue_position, 1);
    store_workflow_free(wf);
    /* once b finishes, c gets in */
    ch = wf_change(b1, WF_RUNNING, WF_SUCCEEDED, T0 + 2);
    apply_ok(f->st, &ch);
    ch = wf_change(c1, WF_QUEUED, WF_RUNNING, T0 + 3);
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
}

static void test_leases_renew(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, 3, T0);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "sched-a", 10, T0), TS_OK);
    assert_int_equal(claim(f->st, id, 1, "j1", 1, "sched-b", 10, T0), TS_OK);
    assert_int_equal(store_renew_leases(f->st, "sched-a", T0 + 500, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, NULL);
    assert_true(wf->jobs[0].lease_expires == T0 + 500);
    assert_true(wf->jobs[1].lease_expires == T0 + 30); /* another owner's: untouched */
    assert_true(wf->jobs[2].lease_expires == 0);       /* not running */
    store_workflow_free(wf);
}

/* Takes the lease for `who` now (the database's clock on PostgreSQL, the
 * caller's on SQLite) and says whether it leads. */
static bool lead(store *st, const char *who, double ttl) {
    char err[TS_ERRLEN];
    bool leader = false;
    int rc = store_leader_acquire(st, who, ts_now(), ttl, &leader, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_leader_acquire: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return leader;
}

/* Two candidates on two handles (as two instances would be): the holder
 * renews in its term, the other takes over once the lease expires, with a
 * new term; a release hands over at once, and the term still grows. */
static void test_leader_acquire_expire_steal_release(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store *b = NULL;
    assert_int_equal(store_open(f->path, &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_leader_term(f->st), 0);
    assert_true(lead(f->st, "A", 1.0));
    int64_t t1 = store_leader_term(f->st);
    assert_true(t1 >= 1);
    assert_false(lead(b, "B", 1.0));
    assert_true(lead(f->st, "A", 1.0)); /* renewed, same term */
    assert_int_equal(store_leader_term(f->st), t1);
    usleep(1300 * 1000);
    assert_true(lead(b, "B", 5.0)); /* A's lease expired: taken, a new term */
    assert_int_equal(store_leader_term(b), t1 + 1);
    assert_false(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_release(f->st, "A", err, sizeof(err)), TS_OK); /* not A's */
    assert_false(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_release(b, "B", err, sizeof(err)), TS_OK);
    assert_true(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_term(f->st), t1 + 2);
    store_close(b);
}

/* ---- other processes ------------------------------------------------------------------- */

#define RACE_JOBS 60
#define RACE_LIMIT 3

/* Finishes a job the racer holds (running -> succeeded). */
static int race_finish(store *st, int64_t id, int i) {
    char err[TS_ERRLEN], job_id[16];
    snprintf(job_id, sizeof(job_id), "j%d", i);
    core_change ch = job_change(id, i, job_id, JOB_RUNNING, JOB_SUCCEEDED, T0 + 1);
    ch.attempt = 1;
    ch.exit_code = 0;
    ch.outcome = "succeeded";
    return store_apply(st, &ch, NULL, err, sizeof(err));
}

/* One racer: claims jobs (in its own order), holding up to two at a time
 * (finishing one when it has two or a claim fails), so that neither racer
 * can hog every slot and both keep pressing against the limit. Checks inside each claim's transaction that the running cpus
 * are within the limit. The pause between transactions lets the other
 * racer in: SQLite's busy handler polls with growing sleeps, so a process
 * that re-takes the lock at once would starve the other. Reports claims won and violations through fd; the
 * exit status says whether anything failed. */
static int race_child(const char *path, int64_t id, int who, int ready, int go, int fd) {
    store *st = NULL;
    char err[TS_ERRLEN], job_id[16], c = 'r';
    int won = 0, violations = 0, held[RACE_JOBS], n_held = 0;
    if (store_open(path, &st, err, sizeof(err)) != TS_OK) return 2;
    if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1) return 3;
    for (int pass = 0; pass < 20; pass++) {
        for (int k = 0; k < RACE_JOBS; k++) {
            int i = who ? RACE_JOBS - 1 - k : k;
            snprintf(job_id, sizeof(job_id), "j%d", i);
            core_change ch = job_change(id, i, job_id, JOB_READY, JOB_RUNNING, T0);
            ch.attempt = 1;
            store_queue_stats qs;
            if (store_begin(st, err, sizeof(err)) != TS_OK) return 4;
            int rc = store_claim(st, &ch, who ? "b" : "a", T0 + 30, RACE_LIMIT, err, sizeof(err));
            if (rc == TS_ERR) return 5;
            if (rc == TS_OK) {
                if (store_queue_stats_get(st, &qs, err, sizeof(err)) != TS_OK) return 6;
                if (qs.running_cpus > RACE_LIMIT) violations++;
                won++;
                held[n_held++] = i;
            }
            if (store_commit(st, err, sizeof(err)) != TS_OK) return 7;
            usleep(300);
            if (n_held > 0 && (rc != TS_OK || n_held == 2) &&
                race_finish(st, id, held[--n_held]) != TS_OK)
                return 8;
        }
    }
    while (n_held > 0)
        if (race_finish(st, id, held[--n_held]) != TS_OK) return 8;
    int report[2] = {won, violations};
    if (write(fd, report, sizeof(report)) != (ssize_t)sizeof(report)) return 9;
    store_close(st);
    return 0;
}

static void test_concurrent_claims_two_processes_never_exceed_limit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int ready[2], go[2], res[2], status;
    char c[2];
    pid_t pid[2];
    /* set up, then close: handles are opened after fork, never before */
    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    int64_t id = submit_parallel(f->st, "alice", RACE_JOBS, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, RACE_JOBS, T0);
    store_close(f->st);
    f->st = NULL;

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(res), 0);
    for (int who = 0; who < 2; who++) {
        pid[who] = fork();
        assert_true(pid[who] >= 0);
        if (pid[who] == 0) _exit(race_child(f->path, id, who, ready[1], go[0], res[1]));
    }
    close(ready[1]);
    close(go[0]);
    close(res[1]);
    /* both have opened their handles: start them at once */
    for (size_t got = 0; got < 2;) {
        ssize_t r = read(ready[0], c + got, 2 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(ready[0]);
    assert_int_equal(write(go[1], "gg", 2), 2);
    close(go[1]);
    int won = 0;
    for (int who = 0; who < 2; who++) {
        int report[2];
        assert_int_equal(read(res[0], report, sizeof(report)), (ssize_t)sizeof(report));
        assert_int_equal(report[1], 0); /* no violation seen inside a claim */
        won += report[0];
    }
    close(res[0]);
    for (int who = 0; who < 2; who++) {
        assert_int_equal(waitpid(pid[who], &status, 0), pid[who]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(won, RACE_JOBS); /* each job claimed exactly once */

    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, NULL);
    for (int i = 0; i < RACE_JOBS; i++) {
        assert_int_equal(wf->jobs[i].state, JOB_SUCCEEDED);
        store_attempt *at = NULL;
        size_t n = 0;
        assert_int_equal(store_attempts(f->st, id, i, &at, &n, err, sizeof(err)), TS_OK);
        assert_int_equal(n, 1);
        free(at);
    }
    store_workflow_free(wf);
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_apply_job_transitions_and_attempts, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attempt_external_id, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_stamp_follows_every_change, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_workflow_summary_counts_without_jobs, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_apply_skip_finish_and_manual_retry, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_apply_progress_and_queue_position_events,
                                        setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards_changes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_claim_respects_concurrency_limit, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admit_respects_max_active_users, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leases_renew, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_leader_acquire_expire_steal_release, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims_two_processes_never_exceed_limit,
                                        setup_closed, teardown),
    };
    int failed = cmocka_run_group_tests_name("store changes (sqlite)", tests, NULL, NULL);
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url && pg_url[0])
        failed += cmocka_run_group_tests_name("store changes (postgresql)", tests, NULL, NULL);
    else
        printf("store changes (postgresql): not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store_changes runs it)\n");
    return failed;
}
