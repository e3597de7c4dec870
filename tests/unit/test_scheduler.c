/*
 * test_scheduler.c - the scheduler loop (sched/scheduler.h) against a real
 * SQLite store and a scripted executor: what one step records, and in how
 * many commits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/scheduler.h"
#include "util/util.h"
#include "testlib.h"

#define SCRIPT_MAX 8

/* An executor whose wait() hands out one scripted batch of events per
 * call (nothing once the script is done), and counts starts. */
typedef struct scripted {
    executor base;
    int started;
    exec_event batch[SCRIPT_MAX][2];
    int batch_len[SCRIPT_MAX];
    int n_batches, next;
    int waits;
    double last_timeout; /* the timeout of the last wait() */
    int inputs[4]; /* per job index: upstream jobs in its start's spec, -1 = not started */
} scripted;

static int scripted_start(executor *ex, const exec_job *job, char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    if (job->job_index < 4) ((scripted *)ex)->inputs[job->job_index] = (int)json_array_size(job->inputs);
    ((scripted *)ex)->started++;
    return TS_OK;
}

static void scripted_cancel(executor *ex, int64_t workflow_id, int32_t job_index, double grace_s) {
    (void)ex;
    (void)workflow_id;
    (void)job_index;
    (void)grace_s;
}

static int scripted_wait(executor *ex, double timeout_s, int wake_fd, exec_event *events,
                         size_t max) {
    (void)wake_fd;
    scripted *x = (scripted *)ex;
    x->waits++;
    x->last_timeout = timeout_s;
    if (x->next >= x->n_batches) return 0;
    int n = x->batch_len[x->next];
    assert_true((size_t)n <= max);
    memcpy(events, x->batch[x->next], (size_t)n * sizeof(exec_event));
    x->next++;
    return n;
}

static size_t scripted_running(executor *ex) {
    (void)ex;
    return 0;
}

static void scripted_destroy(executor *ex) {
    (void)ex;
}

static const executor_ops scripted_ops = {.start = scripted_start,
                                          .cancel = scripted_cancel,
                                          .wait = scripted_wait,
                                          .running = scripted_running,
                                          .destroy = scripted_destroy};

/* Appends a batch of one event for job 0 of workflow 1, attempt 1. */
static void script(scripted *x, exec_event_kind kind, double progress, const char *outcome) {
    assert_true(x->n_batches < SCRIPT_MAX);
    exec_event *e = &x->batch[x->n_batches][0];
    memset(e, 0, sizeof(*e));
    *e = (exec_event){.kind = kind, .workflow_id = 1, .job_index = 0, .attempt = 1,
                      .progress = progress, .outcome = outcome, .exit_code = 0};
    x->batch_len[x->n_batches++] = 1;
}

typedef struct fixture {
    char dir[64];
    store *st;
    scripted ex;
    scheduler *s;
    int commits;
} fixture;

static void count_commits(void *ctx, const char *call, double seconds, int rc) {
    (void)seconds;
    if (strcmp(call, "commit") == 0 && rc == TS_OK) ((fixture *)ctx)->commits++;
}

/* A store with the workflow of text (job 0 alone ready), and a scheduler
 * that has taken the lead and started job 0. */
static int setup_with(void **state, const char *text) {
    fixture *f = ts_calloc(1, sizeof(*f));
    ts_strlcpy(f->dir, "/tmp/test_scheduler.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    char db[128], err[TS_ERRLEN];
    snprintf(db, sizeof(db), "%s/tessera.db", f->dir);
    if (store_open(db, &f->st, err, sizeof(err)) != TS_OK) fail_msg("store_open: %s", err);
    spec_limits lim;
    spec_limits_default(&lim);
    spec_workflow *spec = NULL;
    spec_error serr;
    if (spec_parse(text, strlen(text), &lim, NULL, NULL, &spec, &serr) != TS_OK)
        fail_msg("spec_parse: %s", serr.message);
    int64_t id = 0;
    if (store_submit(f->st, "ann", spec, ts_now(), &id, err, sizeof(err)) != TS_OK)
        fail_msg("store_submit: %s", err);
    spec_free(spec);
    assert_int_equal(id, 1);
    f->ex.base.ops = &scripted_ops;
    for (int i = 0; i < 4; i++) f->ex.inputs[i] = -1;
    sched_config cfg = {.state_dir = f->dir, .data_roots = "", .max_active_users = 3,
                        .concurrency_limit = 2, .poll_seconds = 0.2, .lease_ttl = 30,
                        .kill_grace_s = 1};
    f->s = sched_new(&cfg, "test:1:1", f->st, &f->ex.base);
    for (int i = 0; i < 10 && f->ex.started == 0; i++)
        if (sched_step(f->s, 0, -1, err, sizeof(err)) != TS_OK) fail_msg("sched_step: %s", err);
    assert_int_equal(f->ex.started, 1);
    store_set_observer(f->st, count_commits, f);
    *state = f;
    return 0;
}

/* One workflow of one noop job. */
static int setup(void **state) {
    return setup_with(state, "{\"name\": \"one\", \"jobs\": [{\"job_id\": \"a\", "
                             "\"job_type\": \"noop\"}]}");
}

/* a, then b (noop) and c (cell_segmentation, which reads its upstream
 * jobs' results) after it, each on a branch of its own (a branch is a
 * chain). */
static int setup_fan(void **state) {
    return setup_with(state,
                      "{\"name\": \"fan\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"},"
                      " {\"job_id\": \"b\", \"job_type\": \"noop\", \"branch\": \"b\", \"depends_on\": [\"a\"]},"
                      " {\"job_id\": \"c\", \"job_type\": \"cell_segmentation\","
                      "  \"branch\": \"c\", \"cpus\": 1, \"depends_on\": [\"a\"]}]}");
}

static int teardown(void **state) {
    fixture *f = *state;
    sched_free(f->s);
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static store_workflow *workflow(fixture *f) {
    store_workflow *wf = NULL;
    char err[TS_ERRLEN];
    if (store_workflow_get(f->st, 1, NULL, &wf, err, sizeof(err)) != TS_OK)
        fail_msg("store_workflow_get: %s", err);
    return wf;
}

/* A job's last progress line comes just before its exit: one step takes
 * both in and records them in one commit, not one commit each. */
static void test_progress_then_exit_share_one_commit(void **state) {
    fixture *f = *state;
    script(&f->ex, EXEC_PROGRESS, 0.5, NULL);
    script(&f->ex, EXEC_EXITED, 1.0, "succeeded");
    char err[TS_ERRLEN];
    assert_int_equal(sched_step(f->s, 5.0, -1, err, sizeof(err)), TS_OK);
    assert_int_equal(f->ex.next, 2);
    assert_int_equal(f->commits, 1);
    store_workflow *wf = workflow(f);
    assert_int_equal(wf->jobs[0].state, JOB_SUCCEEDED);
    assert_int_equal(wf->state, WF_SUCCEEDED);
    store_workflow_free(wf);
}

/* Progress with nothing after it is still recorded within the step, after
 * waiting for more at most a few milliseconds (SCHED_PROGRESS_HOLD_S, 3 ms),
 * not the step's 5 s: a long job's progress events are not held back. */
static void test_progress_alone_is_recorded(void **state) {
    fixture *f = *state;
    script(&f->ex, EXEC_PROGRESS, 0.25, NULL);
    int waits = f->ex.waits;
    char err[TS_ERRLEN];
    assert_int_equal(sched_step(f->s, 5.0, -1, err, sizeof(err)), TS_OK);
    assert_int_equal(f->commits, 1);
    assert_true(f->ex.waits - waits >= 2); /* it waited for more before committing */
    /* (now + 0.003) - later is 0.003 plus rounding at most: a monotonic
     * clock of days has ulps of ~1e-11 s */
    assert_true(f->ex.last_timeout <= 0.003 + 1e-9);
    store_workflow *wf = workflow(f);
    assert_int_equal(wf->jobs[0].state, JOB_RUNNING);
    assert_true(wf->jobs[0].progress > 0.24 && wf->jobs[0].progress < 0.26);
    store_workflow_free(wf);
}

/* An exit ends the wait at once: the step does not wait for more. */
static void test_exit_ends_the_wait(void **state) {
    fixture *f = *state;
    script(&f->ex, EXEC_EXITED, 1.0, "succeeded");
    script(&f->ex, EXEC_PROGRESS, 0.5, NULL); /* not taken by this step */
    char err[TS_ERRLEN];
    assert_int_equal(sched_step(f->s, 5.0, -1, err, sizeof(err)), TS_OK);
    assert_int_equal(f->ex.next, 1);
    assert_int_equal(f->commits, 1);
}

/* Upstream jobs go into the spec only of a type that reads them: the
 * noop after a gets none, the cell segmentation after it gets a. */
static void test_upstream_inputs_only_for_types_that_read_them(void **state) {
    fixture *f = *state;
    assert_int_equal(f->ex.inputs[0], 0); /* nothing upstream */
    script(&f->ex, EXEC_EXITED, 1.0, "succeeded");
    char err[TS_ERRLEN];
    for (int i = 0; i < 10 && f->ex.started < 3; i++)
        assert_int_equal(sched_step(f->s, 0, -1, err, sizeof(err)), TS_OK);
    assert_int_equal(f->ex.started, 3);
    assert_int_equal(f->ex.inputs[1], 0);
    assert_int_equal(f->ex.inputs[2], 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_progress_then_exit_share_one_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_alone_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_ends_the_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_inputs_only_for_types_that_read_them,
                                        setup_fan, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
