/*
 * test_view_text.c - view_workflow_text (view/view_text.c) writes the very
 * bytes json_dumps(JSON_COMPACT) makes of view_workflow_page with the
 * attempts added (view_put_attempts), for workflows in every state: queued
 * with and without a recorded reason, running with pending, ready (also
 * backing off), running and finished jobs, pages, no line figures, and
 * strings jansson escapes or refuses (quotes, control characters, non-ASCII,
 * a reason cut inside a UTF-8 character); and what a view depends on
 * besides the workflow (view_depends).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "view/view.h"

#define T0 1790000000.25

static const char SPEC[] =
    "{\"name\": \"n\\\"ame \\u00fc\", \"priority\": 3, \"jobs\": ["
    "{\"job_id\": \"a\", \"job_type\": \"noop\", \"branch\": \"b1\", \"cpus\": 2,"
    " \"image_path\": \"/data/s\\u00e4mple.svs\"},"
    "{\"job_id\": \"b.q\", \"job_type\": \"noop\", \"branch\": \"b1\", \"depends_on\": [\"a\"]},"
    "{\"job_id\": \"c\", \"job_type\": \"noop\", \"branch\": \"b2\"},"
    "{\"job_id\": \"d\", \"job_type\": \"noop\", \"branch\": \"b3\"},"
    "{\"job_id\": \"e\", \"job_type\": \"noop\", \"branch\": \"b4\", \"depends_on\": [\"c\", \"d\"]}"
    "]}";

/* A workflow of SPEC in state s, its jobs in the given states. */
static store_workflow *make(wf_state s, const job_state *states) {
    store_workflow *wf = ts_calloc(1, sizeof(*wf));
    spec_error e;
    int rc = spec_parse(SPEC, strlen(SPEC), NULL, NULL, NULL, &wf->spec, &e);
    if (rc != 0) fprintf(stderr, "spec_parse: %s\n", e.message);
    assert_int_equal(rc, 0);
    wf->id = 42;
    wf->user = ts_strdup("alice");
    wf->name = ts_strdup(wf->spec->name);
    wf->priority = 3;
    wf->state = s;
    wf->reason = ts_strdup("");
    wf->submitted_at = T0;
    wf->admitted_at = s == WF_QUEUED ? 0 : T0 + 1.5;
    wf->queue_position = s == WF_QUEUED ? 4 : 0;
    wf->n_jobs = wf->spec->n_jobs;
    wf->jobs = ts_calloc(wf->n_jobs, sizeof(store_job));
    for (size_t i = 0; i < wf->n_jobs; i++) {
        store_job *j = &wf->jobs[i];
        j->index = (int32_t)i;
        j->job_id = ts_strdup(wf->spec->jobs[i].job_id);
        j->state = states[i];
        j->cpus = wf->spec->jobs[i].cpus;
        j->exit_code = -1;
        j->reason = ts_strdup("");
        j->lease_owner = ts_strdup("");
    }
    return wf;
}

static store_attempt attempt(int32_t job, int n, const char *outcome, int exit_code,
                             const char *external_id) {
    store_attempt a;
    memset(&a, 0, sizeof(a));
    a.job_index = job;
    a.attempt = n;
    a.started_at = T0 + 10 * n;
    a.finished_at = strcmp(outcome, "running") == 0 ? 0 : T0 + 10 * n + 3.123;
    ts_strlcpy(a.outcome, outcome, sizeof(a.outcome));
    a.exit_code = exit_code;
    snprintf(a.reason, sizeof(a.reason), "attempt %d: \"%s\"\n\tdone", n, outcome);
    ts_strlcpy(a.external_id, external_id, sizeof(a.external_id));
    return a;
}

/* Both renderings of wf; fails the test with both texts when they differ. */
static void same_bytes(const store_workflow *wf, const store_attempt *a, size_t n,
                       const store_queue_stats *stats, view_page page) {
    view_limits lim = {3, 4};
    double now = T0 + 100;
    json_t *v = view_workflow_page(wf, stats, &lim, now, page);
    view_put_attempts(v, a, n);
    char *want = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    size_t len = 0;
    char *got = view_workflow_text(wf, a, n, stats, &lim, now, page, &len);
    assert_non_null(want);
    assert_non_null(got);
    if (strcmp(want, got) != 0) fprintf(stderr, "jansson: %s\ntext:    %s\n", want, got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
    free(got);
}

static void all_pages(const store_workflow *wf, const store_attempt *a, size_t n) {
    store_queue_stats stats = {.active_users = 2, .running_cpus = 3};
    view_page pages[] = {VIEW_ALL_JOBS, {0, 2, false}, {2, 2, false}, {4, 10, false},
                         {9, 1, false}, {0, SIZE_MAX, true}};
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        same_bytes(wf, a, n, &stats, pages[i]);
        same_bytes(wf, a, n, NULL, pages[i]);
    }
}

static void test_queued(void **state) {
    (void)state;
    job_state s[] = {JOB_PENDING, JOB_PENDING, JOB_PENDING, JOB_PENDING, JOB_PENDING};
    store_workflow *wf = make(WF_QUEUED, s);
    all_pages(wf, NULL, 0);
    free(wf->reason);
    wf->reason = ts_strdup("waiting: 3 of 3 users active \x01");
    all_pages(wf, NULL, 0);
    store_workflow_free(wf);
}

static void test_running_with_attempts(void **state) {
    (void)state;
    job_state s[] = {JOB_SUCCEEDED, JOB_RUNNING, JOB_READY, JOB_READY, JOB_PENDING};
    store_workflow *wf = make(WF_RUNNING, s);
    wf->jobs[0].attempt = 2;
    wf->jobs[0].failures = 1;
    wf->jobs[0].progress = 1;
    wf->jobs[0].exit_code = 0;
    wf->jobs[0].started_at = T0 + 20;
    wf->jobs[0].finished_at = T0 + 23.5;
    wf->jobs[1].attempt = 1;
    wf->jobs[1].progress = 5.5555555555555558e-5;
    wf->jobs[1].started_at = T0 + 30;
    wf->jobs[2].ready_at = T0 + 5;
    wf->jobs[3].not_before = T0 + 500; /* backing off: "retrying after" */
    wf->jobs[3].failures = 1;
    free(wf->jobs[3].reason);
    wf->jobs[3].reason = ts_strdup("exit 1: \xc3\xa4 \\ / \x7f");
    store_attempt a[] = {attempt(0, 1, "failed", 1, ""), attempt(0, 2, "succeeded", 0, "4711"),
                         attempt(1, 1, "running", -1, "")};
    all_pages(wf, a, 3);
    store_workflow_free(wf);
}

/* Strings jansson refuses are left out as it leaves them out: a job's
 * reason cut inside a UTF-8 character drops the key, an attempt with such
 * a reason drops the attempt. */
static void test_invalid_utf8_left_out(void **state) {
    (void)state;
    job_state s[] = {JOB_FAILED, JOB_SKIPPED, JOB_CANCELLED, JOB_SUCCEEDED, JOB_SKIPPED};
    store_workflow *wf = make(WF_FAILED, s);
    wf->finished_at = T0 + 99;
    free(wf->jobs[0].reason);
    wf->jobs[0].reason = ts_strdup("cut \xc3");
    free(wf->reason);
    wf->reason = ts_strdup("bad \xed\xa0\x80 surrogate");
    store_attempt a[] = {attempt(0, 1, "failed", 2, ""), attempt(2, 1, "cancelled", -1, "")};
    ts_strlcpy(a[0].reason, "over\xf5long", sizeof(a[0].reason));
    all_pages(wf, a, 2);
    store_workflow_free(wf);
}

/* What a view quotes besides the workflow (view_depends), which the view
 * cache compares before serving it again: the busy cpus when a ready job
 * gives a waiting reason, the active users when a queued workflow has no
 * recorded reason, and the moment a "retrying after" reason expires. */
static void test_depends(void **state) {
    (void)state;
    store_queue_stats stats = {.active_users = 2, .running_cpus = 3};
    unsigned want;
    double until;
    job_state pending[] = {JOB_PENDING, JOB_PENDING, JOB_PENDING, JOB_PENDING, JOB_PENDING};
    store_workflow *wf = make(WF_QUEUED, pending);
    view_depends(wf, &stats, T0, &want, &until);
    assert_int_equal(want, STORE_STAMP_ACTIVE_USERS);
    assert_true(until == 0);
    view_depends(wf, NULL, T0, &want, &until); /* no figures quoted without them */
    assert_int_equal(want, 0);
    free(wf->reason);
    wf->reason = ts_strdup("waiting: 3 of 3 users active");
    view_depends(wf, &stats, T0, &want, &until); /* the recorded reason is shown instead */
    assert_int_equal(want, 0);
    store_workflow_free(wf);

    wf = make(WF_RUNNING, pending);
    view_depends(wf, &stats, T0, &want, &until); /* pending reasons name jobs only */
    assert_int_equal(want, 0);
    store_workflow_free(wf);

    job_state s[] = {JOB_SUCCEEDED, JOB_READY, JOB_READY, JOB_READY, JOB_PENDING};
    wf = make(WF_RUNNING, s);
    wf->jobs[2].not_before = T0 + 50;
    wf->jobs[3].not_before = T0 + 20;
    view_depends(wf, &stats, T0 + 10, &want, &until);
    assert_int_equal(want, STORE_STAMP_RUNNING_CPUS);
    assert_true(until == T0 + 20);
    view_depends(wf, &stats, T0 + 30, &want, &until); /* one backoff over, the next one */
    assert_true(until == T0 + 50);
    view_depends(wf, &stats, T0 + 60, &want, &until);
    assert_true(until == 0);
    store_workflow_free(wf);

    job_state done[] = {JOB_SUCCEEDED, JOB_SUCCEEDED, JOB_FAILED, JOB_SKIPPED, JOB_CANCELLED};
    wf = make(WF_FAILED, done);
    view_depends(wf, &stats, T0, &want, &until);
    assert_int_equal(want, 0);
    assert_true(until == 0);
    store_workflow_free(wf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued),
        cmocka_unit_test(test_running_with_attempts),
        cmocka_unit_test(test_invalid_utf8_left_out),
        cmocka_unit_test(test_depends),
    };
    return cmocka_run_group_tests_name("view_text", tests, NULL, NULL);
}
