/*
 * test_engine.c - the engine's rules, one scenario each (DESIGN §1-§2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/reasons.h"
#include "util/util.h"

static spec_workflow *parse(const char *json) {
    spec_limits lim;
    spec_limits_default(&lim);
    spec_workflow *wf = NULL;
    spec_error err;
    if (spec_parse(json, strlen(json), &lim, NULL, NULL, &wf, &err) != TS_OK) {
        fprintf(stderr, "spec: %s\n", err.message);
        fail();
    }
    return wf;
}

static engine *make_engine(int max_users, int limit) {
    engine_limits lim = {max_users, limit};
    return engine_new(&lim);
}

static void add(engine *e, int64_t id, const char *user, const char *json) {
    char err[256];
    assert_int_equal(engine_add(e, id, user, WF_QUEUED, false, parse(json), NULL, err, sizeof(err)),
                     TS_OK);
}

static job_state jstate(engine *e, int64_t wf, int idx) {
    job_state s;
    assert_int_equal(engine_job_state(e, (job_ref){wf, idx}, &s, NULL), TS_OK);
    return s;
}

static wf_state wstate(engine *e, int64_t wf) {
    wf_state s;
    assert_int_equal(engine_workflow_state(e, wf, &s), TS_OK);
    return s;
}

/* Runs admit + schedule and returns how many jobs started. */
static int tick(engine *e, double now, change_list *cl) {
    change_list_clear(cl);
    engine_admit(e, now, cl);
    engine_schedule(e, now, cl);
    int started = 0;
    for (size_t i = 0; i < cl->n; i++) {
        const core_change *c = &cl->v[i];
        assert_true(c->kind != CHANGE_JOB || job_transition_legal(c->from, c->to));
        if (c->kind == CHANGE_JOB && c->to == JOB_RUNNING) started++;
    }
    return started;
}

static void finish(engine *e, int64_t wf, int idx, const char *outcome, double now,
                   change_list *cl) {
    int attempt;
    job_state s;
    engine_job_state(e, (job_ref){wf, idx}, &s, &attempt);
    assert_int_equal(s, JOB_RUNNING);
    change_list_clear(cl);
    engine_job_exited(e, (job_ref){wf, idx}, attempt, outcome, strcmp(outcome, "succeeded") ? 1 : 0,
                      "exit", now, cl);
}

static const char two_branches[] =
    "{\"name\":\"w\",\"jobs\":["
    "{\"job_id\":\"a1\",\"job_type\":\"noop\",\"branch\":\"a\"},"
    "{\"job_id\":\"b1\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"a2\",\"job_type\":\"noop\",\"branch\":\"a\"},"
    "{\"job_id\":\"b2\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"a3\",\"job_type\":\"noop\",\"branch\":\"a\"},"
    "{\"job_id\":\"b3\",\"job_type\":\"noop\",\"branch\":\"b\"}]}";

static void test_branches_run_serially_inside_and_parallel_across(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    add(e, 1, "u", two_branches);
    assert_int_equal(tick(e, 0, &cl), 2); /* a1 and b1, not a2 */
    assert_int_equal(jstate(e, 1, 0), JOB_RUNNING);
    assert_int_equal(jstate(e, 1, 1), JOB_RUNNING);
    assert_int_equal(jstate(e, 1, 2), JOB_PENDING);
    finish(e, 1, 0, "succeeded", 1, &cl);
    assert_int_equal(jstate(e, 1, 2), JOB_READY);
    assert_int_equal(tick(e, 1, &cl), 1);
    /* Every round finishes what runs: never more than one job per branch. */
    for (int round = 2; round < 10 && wstate(e, 1) == WF_RUNNING; round++) {
        int running_a = 0, running_b = 0;
        for (int i = 0; i < 6; i++)
            if (jstate(e, 1, i) == JOB_RUNNING) *(i % 2 ? &running_b : &running_a) += 1;
        assert_true(running_a <= 1 && running_b <= 1);
        for (int i = 0; i < 6; i++)
            if (jstate(e, 1, i) == JOB_RUNNING) finish(e, 1, i, "succeeded", round, &cl);
        tick(e, round, &cl);
    }
    assert_int_equal(wstate(e, 1), WF_SUCCEEDED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_compat_example_job2_waits_for_job1(void **state) {
    (void)state;
    engine *e = make_engine(3, 8);
    change_list cl = {0};
    add(e, 1, "user-123",
        "{\"name\": \"Cell Segmentation Workflow\", \"jobs\": ["
        "{\"job_id\": \"job-1\", \"job_type\": \"cell_segmentation\", \"image_path\": "
        "\"/path/to/image.svs\", \"branch\": \"branch-1\"},"
        "{\"job_id\": \"job-2\", \"job_type\": \"tissue_mask\", \"image_path\": "
        "\"/path/to/image.svs\", \"branch\": \"branch-1\", \"depends_on\": [\"job-1\"]}]}");
    assert_int_equal(tick(e, 0, &cl), 1);
    assert_int_equal(jstate(e, 1, 1), JOB_PENDING);
    finish(e, 1, 0, "succeeded", 1, &cl);
    assert_int_equal(tick(e, 1, &cl), 1);
    finish(e, 1, 1, "succeeded", 2, &cl);
    assert_int_equal(wstate(e, 1), WF_SUCCEEDED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_failure_skips_dependents_and_branch_but_not_other_branches(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    add(e, 1, "u",
        "{\"name\":\"w\",\"jobs\":["
        "{\"job_id\":\"a1\",\"job_type\":\"noop\",\"branch\":\"a\"},"
        "{\"job_id\":\"a2\",\"job_type\":\"noop\",\"branch\":\"a\"},"
        "{\"job_id\":\"b1\",\"job_type\":\"noop\",\"branch\":\"b\"},"
        "{\"job_id\":\"c1\",\"job_type\":\"noop\",\"branch\":\"c\",\"depends_on\":[\"a1\"]}]}");
    tick(e, 0, &cl);
    finish(e, 1, 0, "failed", 1, &cl);
    assert_int_equal(jstate(e, 1, 0), JOB_FAILED);
    assert_int_equal(jstate(e, 1, 1), JOB_SKIPPED);
    assert_int_equal(jstate(e, 1, 3), JOB_SKIPPED);
    assert_int_equal(jstate(e, 1, 2), JOB_RUNNING);
    bool named = false;
    for (size_t i = 0; i < cl.n; i++)
        if (cl.v[i].job_index == 1 && strstr(cl.v[i].reason, "a1 failed")) named = true;
    assert_true(named);
    assert_int_equal(wstate(e, 1), WF_RUNNING);
    finish(e, 1, 2, "succeeded", 2, &cl);
    assert_int_equal(wstate(e, 1), WF_FAILED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_retry_backs_off_exponentially_then_succeeds(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    add(e, 1, "u",
        "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"j\",\"job_type\":\"noop\","
        "\"max_retries\":2,\"retry_delay_s\":10}]}");
    tick(e, 0, &cl);
    finish(e, 1, 0, "failed", 1, &cl);
    assert_int_equal(jstate(e, 1, 0), JOB_READY);
    assert_string_equal(cl.v[0].event_type, "job.retrying");
    assert_true(cl.v[0].not_before == 11);
    assert_true(engine_next_wakeup(e, 1) == 11);
    assert_int_equal(tick(e, 10.9, &cl), 0);
    assert_int_equal(tick(e, 11, &cl), 1);
    finish(e, 1, 0, "timeout", 12, &cl);
    assert_true(cl.v[0].not_before == 32); /* 10 * 2^1 */
    assert_int_equal(tick(e, 32, &cl), 1);
    int attempt;
    job_state s;
    engine_job_state(e, (job_ref){1, 0}, &s, &attempt);
    assert_int_equal(attempt, 3);
    finish(e, 1, 0, "succeeded", 33, &cl);
    assert_int_equal(wstate(e, 1), WF_SUCCEEDED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_retries_exhausted_fail_the_job(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    add(e, 1, "u",
        "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"j\",\"job_type\":\"noop\","
        "\"max_retries\":1,\"retry_delay_s\":0}]}");
    tick(e, 0, &cl);
    finish(e, 1, 0, "failed", 1, &cl);
    tick(e, 1, &cl);
    finish(e, 1, 0, "failed", 2, &cl);
    assert_int_equal(jstate(e, 1, 0), JOB_FAILED);
    assert_int_equal(wstate(e, 1), WF_FAILED);
    change_list_free(&cl);
    engine_free(e);
}

static const char one_job[] = "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"j\",\"job_type\":\"noop\"}]}";
static const char two_jobs[] =
    "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"j\",\"job_type\":\"noop\"},"
    "{\"job_id\":\"k\",\"job_type\":\"noop\"}]}";

static void test_fourth_user_waits_first_in_line_then_runs(void **state) {
    (void)state;
    engine *e = make_engine(3, 8);
    change_list cl = {0};
    add(e, 1, "u1", one_job);
    add(e, 2, "u2", one_job);
    add(e, 3, "u3", one_job);
    add(e, 4, "u4", one_job);
    tick(e, 0, &cl);
    assert_int_equal(engine_active_users(e), 3);
    assert_int_equal(wstate(e, 4), WF_QUEUED);
    bool position = false;
    for (size_t i = 0; i < cl.n; i++)
        if (cl.v[i].kind == CHANGE_QUEUE_POSITION && cl.v[i].workflow_id == 4) {
            assert_int_equal(cl.v[i].queue_position, 1);
            assert_non_null(strstr(cl.v[i].reason, "3 of 3 users active"));
            position = true;
        }
    assert_true(position);
    /* An active user's new workflow queues behind the waiting user. */
    add(e, 5, "u1", one_job);
    tick(e, 0, &cl);
    assert_int_equal(wstate(e, 5), WF_QUEUED);
    finish(e, 1, 0, "succeeded", 1, &cl); /* u1's first workflow ends: u1 inactive */
    tick(e, 1, &cl);
    assert_int_equal(wstate(e, 4), WF_RUNNING);
    assert_int_equal(wstate(e, 5), WF_QUEUED); /* u1 is no longer active; 3 of 3 again */
    finish(e, 2, 0, "succeeded", 2, &cl);
    tick(e, 2, &cl);
    assert_int_equal(wstate(e, 5), WF_RUNNING);
    change_list_free(&cl);
    engine_free(e);
}

static void test_active_user_new_workflow_admitted_at_once_when_nobody_waits(void **state) {
    (void)state;
    engine *e = make_engine(1, 8);
    change_list cl = {0};
    add(e, 1, "u1", two_jobs);
    tick(e, 0, &cl);
    add(e, 2, "u1", one_job);
    tick(e, 0, &cl);
    assert_int_equal(wstate(e, 2), WF_RUNNING);
    assert_int_equal(engine_active_users(e), 1);
    change_list_free(&cl);
    engine_free(e);
}

static void test_fair_share_gives_the_single_job_a_slot(void **state) {
    (void)state;
    engine *e = make_engine(3, 2);
    change_list cl = {0};
    char big[8192] = "{\"name\":\"big\",\"jobs\":[";
    for (int i = 0; i < 50; i++) {
        char j[96];
        snprintf(j, sizeof(j), "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}",
                 i ? "," : "", i, i);
        strcat(big, j);
    }
    strcat(big, "]}");
    add(e, 1, "heavy", big);
    tick(e, 0, &cl);
    assert_int_equal(engine_running_cpus(e), 2); /* heavy takes both free slots */
    add(e, 2, "light", one_job);
    tick(e, 0, &cl);
    finish(e, 1, 0, "succeeded", 1, &cl);
    tick(e, 1, &cl);
    /* The freed slot goes to the user with fewer running cpus. */
    assert_int_equal(jstate(e, 2, 0), JOB_RUNNING);
    change_list_free(&cl);
    engine_free(e);
}

static void test_priority_orders_a_users_workflows(void **state) {
    (void)state;
    engine *e = make_engine(3, 1);
    change_list cl = {0};
    add(e, 1, "u", "{\"name\":\"low\",\"priority\":0,\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\"},"
                   "{\"job_id\":\"b\",\"job_type\":\"noop\",\"branch\":\"x\"}]}");
    add(e, 2, "u", "{\"name\":\"high\",\"priority\":5,\"jobs\":[{\"job_id\":\"c\",\"job_type\":\"noop\"}]}");
    tick(e, 0, &cl); /* admits both (same user), starts one job of "low"? no: high first */
    assert_int_equal(jstate(e, 2, 0), JOB_RUNNING);
    assert_int_equal(jstate(e, 1, 0), JOB_READY);
    change_list_free(&cl);
    engine_free(e);
}

static void test_cpus_count_against_the_limit(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    add(e, 1, "u", "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\",\"cpus\":3},"
                   "{\"job_id\":\"b\",\"job_type\":\"noop\",\"cpus\":3,\"branch\":\"x\"},"
                   "{\"job_id\":\"c\",\"job_type\":\"noop\",\"cpus\":1,\"branch\":\"y\"}]}");
    tick(e, 0, &cl);
    assert_int_equal(engine_running_cpus(e), 3);
    /* b (3 cpus) does not fit and blocks its user's later job c: no backfill. */
    assert_int_equal(jstate(e, 1, 1), JOB_READY);
    assert_int_equal(jstate(e, 1, 2), JOB_READY);
    change_list_free(&cl);
    engine_free(e);
}

static void test_job_larger_than_limit_fails_with_reason(void **state) {
    (void)state;
    engine *e = make_engine(3, 2);
    change_list cl = {0};
    add(e, 1, "u", "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\",\"cpus\":3}]}");
    tick(e, 0, &cl);
    assert_int_equal(jstate(e, 1, 0), JOB_FAILED);
    bool named = false;
    for (size_t i = 0; i < cl.n; i++)
        if (strstr(cl.v[i].reason, "concurrency limit is 2")) named = true;
    assert_true(named);
    assert_int_equal(wstate(e, 1), WF_FAILED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_cancel_queued_workflow_never_starts(void **state) {
    (void)state;
    engine *e = make_engine(1, 4);
    change_list cl = {0};
    job_ref_list kill = {0};
    add(e, 1, "u1", one_job);
    add(e, 2, "u2", one_job);
    tick(e, 0, &cl);
    assert_int_equal(wstate(e, 2), WF_QUEUED);
    change_list_clear(&cl);
    assert_int_equal(engine_cancel_workflow(e, 2, NULL, 1, &cl, &kill), TS_OK);
    assert_int_equal(wstate(e, 2), WF_CANCELLED);
    assert_int_equal(jstate(e, 2, 0), JOB_CANCELLED);
    assert_int_equal(engine_line_length(e), 0);
    assert_int_equal(kill.n, 0);
    /* Idempotent. */
    assert_int_equal(engine_cancel_workflow(e, 2, NULL, 1, &cl, &kill), TS_OK);
    finish(e, 1, 0, "succeeded", 2, &cl);
    assert_int_equal(tick(e, 2, &cl), 0);
    job_ref_list_free(&kill);
    change_list_free(&cl);
    engine_free(e);
}

static void test_cancel_running_workflow_kills_and_ends_cancelled(void **state) {
    (void)state;
    engine *e = make_engine(1, 4);
    change_list cl = {0};
    job_ref_list kill = {0};
    add(e, 1, "u", two_branches);
    tick(e, 0, &cl);
    engine_cancel_workflow(e, 1, NULL, 1, &cl, &kill);
    assert_int_equal(kill.n, 2);
    assert_int_equal(jstate(e, 1, 2), JOB_CANCELLED);
    assert_int_equal(wstate(e, 1), WF_RUNNING);
    finish(e, 1, 0, "cancelled", 2, &cl);
    finish(e, 1, 1, "failed", 2, &cl); /* killed: counts as cancelled, not failed */
    assert_int_equal(jstate(e, 1, 1), JOB_CANCELLED);
    assert_int_equal(wstate(e, 1), WF_CANCELLED);
    job_ref_list_free(&kill);
    change_list_free(&cl);
    engine_free(e);
}

static void test_cancel_job_skips_its_dependents(void **state) {
    (void)state;
    engine *e = make_engine(1, 1);
    change_list cl = {0};
    job_ref_list kill = {0};
    add(e, 1, "u", two_branches);
    tick(e, 0, &cl); /* a1 runs; b1 ready */
    engine_cancel_job(e, (job_ref){1, 1}, 1, &cl, &kill);
    assert_int_equal(jstate(e, 1, 1), JOB_CANCELLED);
    assert_int_equal(jstate(e, 1, 3), JOB_SKIPPED);
    assert_int_equal(jstate(e, 1, 5), JOB_SKIPPED);
    assert_int_equal(jstate(e, 1, 2), JOB_PENDING);
    job_ref_list_free(&kill);
    change_list_free(&cl);
    engine_free(e);
}

static void test_interrupt_reruns_as_new_attempt_without_counting_failure(void **state) {
    (void)state;
    engine *e = make_engine(1, 1);
    change_list cl = {0};
    add(e, 1, "u", one_job);
    tick(e, 0, &cl);
    change_list_clear(&cl);
    engine_interrupt(e, (job_ref){1, 0}, "interrupted: scheduler died", 1, &cl);
    assert_int_equal(cl.n, 1);
    assert_string_equal(cl.v[0].outcome, "interrupted");
    assert_non_null(strstr(cl.v[0].reason, "re-run as attempt 2"));
    assert_int_equal(cl.v[0].failures, 0);
    tick(e, 1, &cl);
    int attempt;
    job_state s;
    engine_job_state(e, (job_ref){1, 0}, &s, &attempt);
    assert_int_equal(attempt, 2);
    change_list_free(&cl);
    engine_free(e);
}

static void test_stale_exit_report_is_ignored(void **state) {
    (void)state;
    engine *e = make_engine(1, 1);
    change_list cl = {0};
    add(e, 1, "u", one_job);
    tick(e, 0, &cl);
    change_list_clear(&cl);
    engine_job_exited(e, (job_ref){1, 0}, 7, "succeeded", 0, "", 1, &cl);
    assert_int_equal(cl.n, 0);
    assert_int_equal(jstate(e, 1, 0), JOB_RUNNING);
    change_list_free(&cl);
    engine_free(e);
}

static void test_reload_keeps_recorded_states(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    char err[256];
    engine_job_init init[6] = {
        {JOB_SUCCEEDED, 1, 0, 0, 1}, {JOB_RUNNING, 2, 0, 0, 0.5}, {JOB_READY, 0, 0, 0, 0},
        {JOB_PENDING, 0, 0, 0, 0},   {JOB_PENDING, 0, 0, 0, 0},   {JOB_PENDING, 0, 0, 0, 0}};
    assert_int_equal(engine_add(e, 9, "u", WF_RUNNING, false, parse(two_branches), init, err,
                                sizeof(err)),
                     TS_OK);
    assert_int_equal(engine_running_cpus(e), 1);
    assert_int_equal(engine_active_users(e), 1);
    tick(e, 0, &cl);
    assert_int_equal(jstate(e, 9, 2), JOB_RUNNING);
    finish(e, 9, 1, "succeeded", 1, &cl);
    assert_int_equal(jstate(e, 9, 3), JOB_READY);
    change_list_free(&cl);
    engine_free(e);
}

static void test_reload_rejects_impossible_states(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    char err[256];
    engine_job_init init[6] = {{JOB_PENDING, 0, 0, 0, 0}, {JOB_PENDING, 0, 0, 0, 0},
                               {JOB_RUNNING, 1, 0, 0, 0}, {JOB_PENDING, 0, 0, 0, 0},
                               {JOB_PENDING, 0, 0, 0, 0}, {JOB_PENDING, 0, 0, 0, 0}};
    assert_int_equal(engine_add(e, 9, "u", WF_RUNNING, false, parse(two_branches), init, err,
                                sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "a2"));
    engine_free(e);
}

static void test_retry_revives_job_and_skipped_dependents(void **state) {
    (void)state;
    engine *e = make_engine(3, 4);
    change_list cl = {0};
    char err[256];
    add(e, 1, "u",
        "{\"name\":\"w\",\"jobs\":["
        "{\"job_id\":\"a1\",\"job_type\":\"noop\",\"branch\":\"a\"},"
        "{\"job_id\":\"a2\",\"job_type\":\"noop\",\"branch\":\"a\"},"
        "{\"job_id\":\"b1\",\"job_type\":\"sleep\",\"branch\":\"b\"}]}");
    tick(e, 0, &cl);
    finish(e, 1, 0, "failed", 1, &cl);
    assert_int_equal(jstate(e, 1, 1), JOB_SKIPPED);
    change_list_clear(&cl);
    assert_int_equal(engine_retry_job(e, (job_ref){1, 0}, 2, &cl, err, sizeof(err)), TS_OK);
    assert_int_equal(jstate(e, 1, 0), JOB_READY);
    assert_int_equal(jstate(e, 1, 1), JOB_PENDING);
    assert_int_equal(engine_retry_job(e, (job_ref){1, 2}, 2, &cl, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "running"));
    tick(e, 2, &cl);
    finish(e, 1, 0, "succeeded", 3, &cl);
    tick(e, 3, &cl);
    finish(e, 1, 1, "succeeded", 4, &cl);
    finish(e, 1, 2, "succeeded", 4, &cl);
    assert_int_equal(wstate(e, 1), WF_SUCCEEDED);
    change_list_free(&cl);
    engine_free(e);
}

static void test_revive_brings_a_failed_workflow_back_through_the_line(void **state) {
    (void)state;
    engine *e = make_engine(1, 4);
    change_list cl = {0};
    char err[256];
    engine_job_init init[3] = {{JOB_SUCCEEDED, 1, 0, 0, 1}, {JOB_FAILED, 1, 1, 0, 0},
                               {JOB_SKIPPED, 0, 0, 0, 0}};
    const char *json = "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\"},"
                       "{\"job_id\":\"b\",\"job_type\":\"noop\"},"
                       "{\"job_id\":\"c\",\"job_type\":\"noop\"}]}";
    add(e, 1, "other", one_job); /* holds the only active place */
    tick(e, 0, &cl);
    change_list_clear(&cl);
    assert_int_equal(engine_revive(e, 7, "u", WF_FAILED, parse(json), init, 1, 1, &cl, err,
                                   sizeof(err)),
                     TS_OK);
    assert_int_equal(wstate(e, 7), WF_QUEUED);
    assert_string_equal(cl.v[0].event_type, "workflow.queued");
    assert_int_equal(jstate(e, 7, 0), JOB_SUCCEEDED); /* never re-run */
    assert_int_equal(jstate(e, 7, 1), JOB_PENDING);
    assert_int_equal(jstate(e, 7, 2), JOB_PENDING);
    assert_int_equal(tick(e, 1, &cl), 0); /* waits for a place like anyone */
    finish(e, 1, 0, "succeeded", 2, &cl);
    tick(e, 2, &cl);
    assert_int_equal(wstate(e, 7), WF_RUNNING);
    assert_int_equal(jstate(e, 7, 1), JOB_RUNNING);
    finish(e, 7, 1, "succeeded", 3, &cl);
    tick(e, 3, &cl);
    finish(e, 7, 2, "succeeded", 4, &cl);
    assert_int_equal(wstate(e, 7), WF_SUCCEEDED);
    /* A succeeded job is not retryable; nor is a running workflow revived. */
    engine_job_init done[1] = {{JOB_SUCCEEDED, 1, 0, 0, 1}};
    assert_int_equal(engine_revive(e, 8, "u", WF_SUCCEEDED, parse(one_job), done, 0, 5, &cl, err,
                                   sizeof(err)),
                     TS_ERR);
    change_list_free(&cl);
    engine_free(e);
}

/* engine_forget_finished frees exactly the workflows that ended, however
 * they ended (jobs done, cancelled while queued), also one that ended after
 * a call that found nothing to free, and one revived then finished again;
 * the others stay held with their states. */
static void test_forget_finished_frees_only_ended_workflows(void **state) {
    (void)state;
    engine *e = make_engine(1, 4);
    change_list cl = {0};
    job_ref_list kill = {0};
    char err[256];
    wf_state ws;
    add(e, 1, "u1", one_job);
    add(e, 2, "u2", one_job);
    add(e, 3, "u3", one_job);
    tick(e, 0, &cl);
    engine_forget_finished(e); /* nothing ended: all held */
    assert_int_equal(engine_unfinished(e), 3);
    assert_int_equal(engine_cancel_workflow(e, 3, NULL, 1, &cl, &kill), TS_OK);
    finish(e, 1, 0, "succeeded", 2, &cl);
    engine_forget_finished(e);
    assert_int_equal(engine_workflow_state(e, 1, &ws), TS_ERR);
    assert_int_equal(engine_workflow_state(e, 3, &ws), TS_ERR);
    assert_int_equal(wstate(e, 2), WF_QUEUED);
    tick(e, 3, &cl);
    engine_forget_finished(e); /* again nothing ended */
    assert_int_equal(wstate(e, 2), WF_RUNNING);
    finish(e, 2, 0, "failed", 4, &cl);
    assert_int_equal(wstate(e, 2), WF_FAILED);
    engine_forget_finished(e);
    assert_int_equal(engine_workflow_state(e, 2, &ws), TS_ERR);
    engine_job_init failed[1] = {{JOB_FAILED, 1, 1, 0, 0}};
    assert_int_equal(engine_revive(e, 2, "u2", WF_FAILED, parse(one_job), failed, 0, 5, &cl, err,
                                   sizeof(err)),
                     TS_OK);
    engine_forget_finished(e); /* revived: held again */
    assert_int_equal(wstate(e, 2), WF_QUEUED);
    tick(e, 6, &cl);
    finish(e, 2, 0, "succeeded", 7, &cl);
    engine_forget_finished(e);
    assert_int_equal(engine_workflow_state(e, 2, &ws), TS_ERR);
    assert_int_equal(engine_unfinished(e), 0);
    job_ref_list_free(&kill);
    change_list_free(&cl);
    engine_free(e);
}

static void test_waiting_reasons_name_branch_and_dependency(void **state) {
    (void)state;
    spec_workflow *wf = parse(
        "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"job-1\",\"job_type\":\"noop\"},"
        "{\"job_id\":\"job-2\",\"job_type\":\"noop\"},"
        "{\"job_id\":\"job-3\",\"job_type\":\"noop\",\"branch\":\"x\",\"depends_on\":[\"job-1\"]}]}");
    job_state st[3] = {JOB_RUNNING, JOB_PENDING, JOB_PENDING};
    char buf[256];
    reason_job_waiting(wf, st, 1, 0, 0, 8, 8, buf, sizeof(buf));
    assert_string_equal(buf, "waiting for job-1 (branch default)");
    reason_job_waiting(wf, st, 2, 0, 0, 8, 8, buf, sizeof(buf));
    assert_string_equal(buf, "waiting for dependency job-1");
    st[0] = JOB_SUCCEEDED;
    st[1] = JOB_READY;
    reason_job_waiting(wf, st, 1, 0, 0, 8, 8, buf, sizeof(buf));
    assert_string_equal(buf, "waiting for a free slot: 8 of 8 cpus busy");
    reason_workflow_waiting(false, 3, 3, buf, sizeof(buf));
    assert_string_equal(buf, "active user limit reached: 3 of 3 users active");
    spec_free(wf);
}

static void test_state_machine_allows_only_legal_transitions(void **state) {
    (void)state;
    assert_true(job_transition_legal(JOB_PENDING, JOB_READY));
    assert_true(job_transition_legal(JOB_RUNNING, JOB_READY));
    assert_false(job_transition_legal(JOB_PENDING, JOB_RUNNING));
    assert_false(job_transition_legal(JOB_SUCCEEDED, JOB_READY));
    assert_false(job_transition_legal(JOB_SUCCEEDED, JOB_FAILED));
    assert_false(wf_transition_legal(WF_SUCCEEDED, WF_RUNNING));
    assert_false(wf_transition_legal(WF_QUEUED, WF_SUCCEEDED));
    for (int s = 0; s < JOB_STATE_COUNT; s++) {
        job_state back;
        assert_int_equal(job_state_parse(job_state_name((job_state)s), &back), TS_OK);
        assert_int_equal(back, s);
        assert_false(job_transition_legal((job_state)s, (job_state)s));
    }
    job_state bad;
    assert_int_equal(job_state_parse("bogus", &bad), TS_ERR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_branches_run_serially_inside_and_parallel_across),
        cmocka_unit_test(test_compat_example_job2_waits_for_job1),
        cmocka_unit_test(test_failure_skips_dependents_and_branch_but_not_other_branches),
        cmocka_unit_test(test_retry_backs_off_exponentially_then_succeeds),
        cmocka_unit_test(test_retries_exhausted_fail_the_job),
        cmocka_unit_test(test_fourth_user_waits_first_in_line_then_runs),
        cmocka_unit_test(test_active_user_new_workflow_admitted_at_once_when_nobody_waits),
        cmocka_unit_test(test_fair_share_gives_the_single_job_a_slot),
        cmocka_unit_test(test_priority_orders_a_users_workflows),
        cmocka_unit_test(test_cpus_count_against_the_limit),
        cmocka_unit_test(test_job_larger_than_limit_fails_with_reason),
        cmocka_unit_test(test_cancel_queued_workflow_never_starts),
        cmocka_unit_test(test_cancel_running_workflow_kills_and_ends_cancelled),
        cmocka_unit_test(test_cancel_job_skips_its_dependents),
        cmocka_unit_test(test_interrupt_reruns_as_new_attempt_without_counting_failure),
        cmocka_unit_test(test_stale_exit_report_is_ignored),
        cmocka_unit_test(test_reload_keeps_recorded_states),
        cmocka_unit_test(test_reload_rejects_impossible_states),
        cmocka_unit_test(test_retry_revives_job_and_skipped_dependents),
        cmocka_unit_test(test_revive_brings_a_failed_workflow_back_through_the_line),
        cmocka_unit_test(test_forget_finished_frees_only_ended_workflows),
        cmocka_unit_test(test_waiting_reasons_name_branch_and_dependency),
        cmocka_unit_test(test_state_machine_allows_only_legal_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
