/*
 * test_exec_local.c - the local executor (src/exec/local.c) with exec'd
 * runners.
 *
 * Most tests run a fake runner: a shell script written into a temporary
 * directory, used as self_exe. It is called as `runner.sh run-job SPEC` and
 * behaves according to the job_type in the spec. The last tests use this
 * test binary itself as self_exe: main() answers `run-job SPEC` with
 * jobs_run_main(), so the real runner path runs without src/tessera.c.
 * Runners forked by the fork server: test_exec_forkserver.c; the fixture
 * of both: exec_fixture.h.
 */
#include "exec_fixture.h"
#include "exec/protocol.h"

/* ---- fake runner ---- */

static void test_local_success_reports_progress_and_log(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job job = make_job(f, 0, "ok", 0);
    json_t *params = json_pack("{s:f}", "seconds", 0.5);
    job.params = params;
    job.image_path = "/data/slide.svs";
    start_ok(ex, &job);
    assert_int_equal(ex->ops->running(ex), 1);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_int_equal(ex->ops->running(ex), 0);

    assert_int_equal(c.n, 3);
    assert_int_equal(c.ev[0].kind, EXEC_PROGRESS);
    assert_true(c.ev[0].progress == 0.5);
    assert_string_equal(c.ev[0].message, "half");
    assert_int_equal(c.ev[1].kind, EXEC_PROGRESS); /* coalesced, but the last is kept */
    assert_true(c.ev[1].progress == 1.0);
    assert_string_equal(c.ev[1].message, "done");
    const exec_event *e = &c.ev[2];
    assert_int_equal(e->kind, EXEC_EXITED);
    assert_int_equal(e->workflow_id, 1);
    assert_int_equal(e->job_index, 0);
    assert_int_equal(e->attempt, 1);
    assert_string_equal(e->outcome, "succeeded");
    assert_int_equal(e->exit_code, 0);
    assert_true(e->progress == 1.0);

    char path[256];
    snprintf(path, sizeof(path), "%s/job.log", f->work[0]);
    char *log = test_slurp(path);
    assert_true(strncmp(log, "=== attempt 1 of job j1 started ", 32) == 0);
    assert_non_null(strstr(log, " ===\nhello from job\n"));
    free(log);

    snprintf(path, sizeof(path), "%s/attempt-1.json", f->work[0]);
    json_t *spec = json_load_file(path, 0, NULL);
    assert_non_null(spec);
    assert_int_equal(json_integer_value(json_object_get(spec, "workflow_id")), 1);
    assert_int_equal(json_integer_value(json_object_get(spec, "job_index")), 0);
    assert_string_equal(json_string_value(json_object_get(spec, "job_id")), "j1");
    assert_string_equal(json_string_value(json_object_get(spec, "job_type")), "ok");
    assert_string_equal(json_string_value(json_object_get(spec, "image_path")), "/data/slide.svs");
    assert_true(json_equal(json_object_get(spec, "params"), params));
    assert_int_equal(json_integer_value(json_object_get(spec, "cpus")), 1);
    assert_int_equal(json_integer_value(json_object_get(spec, "attempt")), 1);
    assert_string_equal(json_string_value(json_object_get(spec, "work_dir")), f->work[0]);
    assert_string_equal(json_string_value(json_object_get(spec, "result_dir")), f->result[0]);
    /* We read the marker at once and never after a crash: no fsyncs for it. */
    assert_true(json_is_false(json_object_get(spec, "exit_marker_sync")));
    /* It reads progress on the pipe only: no progress file to make. */
    assert_true(json_is_false(json_object_get(spec, "progress_file")));
    json_decref(spec);
    json_decref(params);
    ex->ops->destroy(ex);
}

/* Runs one fake-runner job of this type alone and returns its EXITED
 * event (outcome is a static string, message a copy). */
static exec_event run_alone(const fixture *f, const char *type) {
    executor *ex = new_exec(f->runner, 1.0);
    exec_job job = make_job(f, 0, type, 0);
    start_ok(ex, &job);
    collected c = {0};
    collect(ex, &c, 1, 10);
    exec_event e = *exited_event(&c, 0);
    ex->ops->destroy(ex);
    return e;
}

static void test_local_failure_reports_exit_code_and_reason(void **state) {
    exec_event e = run_alone(*state, "fail");
    assert_string_equal(e.outcome, "failed");
    assert_int_equal(e.exit_code, 3);
    assert_string_equal(e.message, "exited with status 3: something broke");
}

/* The runner's exit marker names the reason (runner protocol). */
static void test_local_failure_reason_from_marker(void **state) {
    exec_event e = run_alone(*state, "failmarker");
    assert_string_equal(e.outcome, "failed");
    assert_int_equal(e.exit_code, 1);
    assert_string_equal(e.message, "exited with status 1: tile 3 is corrupt");
}

/* The exit marker is the truth of success: status 0 without a marker is a
 * failure, and a marker that says "succeeded" stands even when the process
 * dies afterwards. */
static void test_local_exit_marker_decides_success(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "nomarker", 0);
    exec_job b = make_job(f, 1, "markerkilled", 0);
    start_ok(ex, &a);
    start_ok(ex, &b);
    collected c = {0};
    collect(ex, &c, 2, 10);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 0);
    assert_string_equal(e->message, "exited with status 0: the runner left no exit marker");
    /* Killed after its success marker: succeeded, and the marker's exit
     * code stands (its pipe hung up as it died: finish_said). */
    e = exited_event(&c, 1);
    assert_string_equal(e->outcome, "succeeded");
    assert_int_equal(e->exit_code, 0);
    ex->ops->destroy(ex);
}

/* The same end seen through the runner's exit, not its pipe (a child of
 * the runner holds the pipe open): the marker's exit code still stands,
 * and the message says the runner was killed after its result. Before,
 * this path reported 137, and test_local_exit_marker_decides_success
 * failed whenever the reap saw the SIGKILL before the hang-up. */
static void test_local_marker_exit_code_stands_when_killed(void **state) {
    exec_event e = run_alone(*state, "markerheld");
    assert_string_equal(e.outcome, "succeeded");
    assert_int_equal(e.exit_code, 0);
    assert_non_null(strstr(e.message, "killed by signal 9 after its result was complete"));
}

/* job_nice: an exec'd runner, and what it starts, run that much nicer
 * than the executor's process; 0 leaves them as nice as it is. */
static void test_local_job_nice_lowers_runner_priority(void **state) {
    fixture *f = *state;
    int base = nice_of(getpid());
    int want = base + 7 > 19 ? 19 : base + 7;
    for (int pass = 0; pass < 2; pass++) {
        executor *ex = new_exec_nice(f->runner, 1.0, pass == 0 ? 7 : 0);
        exec_job a = make_job(f, pass, "nice", 0);
        start_ok(ex, &a);
        collected c = {0};
        collect(ex, &c, 1, 10);
        assert_string_equal(exited_event(&c, pass)->outcome, "succeeded");
        char path[256];
        snprintf(path, sizeof(path), "%s/nice.txt", f->work[pass]);
        char *text = test_slurp(path);
        int runner = 99, tool = 99;
        assert_int_equal(sscanf(text, "%d %d", &runner, &tool), 2);
        free(text);
        assert_int_equal(runner, pass == 0 ? want : base);
        assert_int_equal(tool, pass == 0 ? want : base);
        ex->ops->destroy(ex);
    }
}

/* A runner that hung up its progress pipe after leaving its marker has
 * said its attempt is over: reported at once, not when its process ends,
 * and its process group is killed then (finish_said). */
static void test_local_said_end_is_reported_before_exit(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "linger", 0);
    double t0 = ts_monotonic();
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 8);
    assert_true(ts_monotonic() - t0 < 5.0); /* the runner lingers 10 s */
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "succeeded");
    assert_int_equal(e->exit_code, 0);
    assert_int_equal(ex->ops->running(ex), 0);
    /* Left to exit by itself, it is killed once the grace period (1 s)
     * is over, and reaped by the executor's next waits. */
    pid_t pid = read_pid(f->work[0], "linger.pid");
    exec_event buf[4];
    while (ts_monotonic() - t0 < 4.0) assert_int_equal(ex->ops->wait(ex, 0.2, -1, buf, 4), 0);
    assert_true(process_gone(pid));
    ex->ops->destroy(ex);
}

static void test_local_killed_by_signal_is_failed(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job job = make_job(f, 0, "selfkill", 0);
    start_ok(ex, &job);
    collected c = {0};
    collect(ex, &c, 1, 10);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 128 + 9);
    assert_string_equal(e->message, "killed by signal 9");
    ex->ops->destroy(ex);
}

static void test_local_timeout_sigkill_after_grace(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 0.3);
    exec_job job = make_job(f, 0, "hang", 0.3); /* the script ignores SIGTERM */
    double t0 = ts_monotonic();
    start_ok(ex, &job);
    collected c = {0};
    collect(ex, &c, 1, 10);
    double elapsed = ts_monotonic() - t0;
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "timeout");
    assert_int_equal(e->exit_code, 128 + 9);
    assert_string_equal(e->message, "timed out after 0.3 s");
    assert_true(elapsed >= 0.55 && elapsed < 3.0);
    ex->ops->destroy(ex);
}

static void test_local_cancel_terminates_group(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 5.0);
    exec_job job = make_job(f, 0, "slow", 0);
    start_ok(ex, &job);
    pid_t pid = read_pid(f->work[0], "slow.pid");
    exec_event buf[4];
    assert_int_equal(ex->ops->wait(ex, 0.05, -1, buf, 4), 0);
    double t0 = ts_monotonic();
    ex->ops->cancel(ex, 1, 0, 5.0);
    ex->ops->cancel(ex, 1, 0, 5.0); /* idempotent */
    ex->ops->cancel(ex, 1, 3, 5.0); /* unknown: ignored */
    ex->ops->cancel(ex, 99, 0, 5.0);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_true(ts_monotonic() - t0 < 2.0); /* SIGTERM sufficed */
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "cancelled");
    assert_int_equal(e->exit_code, 128 + 15);
    assert_true(process_gone(pid));
    ex->ops->cancel(ex, 1, 0, 5.0); /* already ended: ignored */
    assert_int_equal(ex->ops->wait(ex, 0, -1, buf, 4), 0);
    ex->ops->destroy(ex);
}

static void test_local_two_jobs_run_concurrently(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "quick", 0), b = make_job(f, 1, "quick", 0);
    start_ok(ex, &a);
    start_ok(ex, &b);
    assert_int_equal(ex->ops->running(ex), 2);
    collected c = {0};
    collect(ex, &c, 2, 30);
    /* Each quick job waits for the other to start: both succeed only if
     * they ran at the same time (a wall-clock bound flaked on loaded CI). */
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    assert_string_equal(exited_event(&c, 1)->outcome, "succeeded");
    ex->ops->destroy(ex);
}

static void test_local_same_job_twice_is_refused(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "slow", 0);
    start_ok(ex, &a);
    char err[TS_ERRLEN];
    assert_int_equal(ex->ops->start(ex, &a, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "job j1 (workflow 1, index 0) is already running");
    ex->ops->destroy(ex);
}

static void test_local_events_beyond_max_stay_queued(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "instant", 0), b = make_job(f, 1, "instant", 0);
    start_ok(ex, &a);
    start_ok(ex, &b);
    usleep(300000); /* both have exited: one wait() will see both */
    exec_event buf[2];
    int seen = 0;
    double end = ts_monotonic() + 10;
    while (seen < 2 && ts_monotonic() < end) {
        int n = ex->ops->wait(ex, 1.0, -1, buf, 1);
        assert_true(n <= 1);
        if (n == 0) continue;
        assert_int_equal(buf[0].kind, EXEC_EXITED);
        seen |= 1 << buf[0].job_index;
    }
    assert_int_equal(seen, 3);
    assert_int_equal(ex->ops->running(ex), 0);
    ex->ops->destroy(ex);
}

static void test_local_wake_fd_and_timeout(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "slow", 0);
    start_ok(ex, &a);
    int p[2];
    assert_int_equal(pipe(p), 0);
    exec_event buf[4];
    double t0 = ts_monotonic();
    assert_int_equal(ex->ops->wait(ex, 0.1, p[0], buf, 4), 0);
    double waited = ts_monotonic() - t0;
    assert_true(waited >= 0.09 && waited < 1.0);
    assert_int_equal(write(p[1], "x", 1), 1);
    t0 = ts_monotonic();
    assert_int_equal(ex->ops->wait(ex, 5.0, p[0], buf, 4), 0);
    assert_true(ts_monotonic() - t0 < 1.0);
    close(p[0]);
    close(p[1]);
    pid_t pid = read_pid(f->work[0], "slow.pid");
    ex->ops->destroy(ex); /* kills and reaps the running job */
    assert_true(process_gone(pid));
}

static void test_local_exec_failure_is_exit_127(void **state) {
    fixture *f = *state;
    char missing[192];
    snprintf(missing, sizeof(missing), "%s/no-such-tessera", f->dir);
    executor *ex = new_exec(missing, 1.0);
    exec_job a = make_job(f, 0, "noop", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 127);
    assert_non_null(strstr(e->message, "exited with status 127: cannot execute "));
    assert_non_null(strstr(e->message, "No such file or directory"));
    ex->ops->destroy(ex);
}

static void test_local_progress_is_coalesced(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "spam", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    size_t n = count_progress(&c, 0);
    assert_true(n >= 1 && n <= 4); /* 201 lines in well under a second */
    const exec_event *last = &c.ev[c.n - 2];
    assert_int_equal(last->kind, EXEC_PROGRESS);
    assert_true(last->progress == 1.0);
    assert_string_equal(last->message, "all");
    ex->ops->destroy(ex);
}

static void test_local_partial_progress_lines(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "partial", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_int_equal(c.n, 3);
    assert_true(c.ev[0].progress == 0.25);
    assert_string_equal(c.ev[0].message, "a b");
    assert_true(c.ev[1].progress == 0.75); /* the last line had no newline */
    assert_string_equal(c.ev[1].message, "tail");
    assert_true(c.ev[2].progress == 0.75);
    ex->ops->destroy(ex);
}

static void test_local_leftover_processes_are_killed(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "orphan", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    assert_true(process_gone(read_pid(f->work[0], "orphan.pid")));
    ex->ops->destroy(ex);
}

/* A leftover that left the process group (setsid) of an attempt whose
 * runner ended cleanly is still killed before the next attempt starts. */
static void test_local_next_attempt_kills_earlier_leftovers(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "escape", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    pid_t left = read_pid(f->work[0], "escape.pid");
    assert_int_equal(kill(left, 0), 0); /* our fake runner does not clean up */
    exec_job b = make_job(f, 0, "instant", 0);
    b.attempt = 2;
    start_ok(ex, &b);
    assert_true(process_gone(left));
    collected d = {0};
    collect(ex, &d, 1, 10);
    ex->ops->destroy(ex);
}

/* A runner killed by a signal: what it started outside its group dies with
 * it, found by the attempt's mark. */
static void test_local_killed_runner_leftovers_are_killed(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job a = make_job(f, 0, "escape_die", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 10);
    assert_string_equal(exited_event(&c, 0)->outcome, "failed");
    assert_true(process_gone(read_pid(f->work[0], "escape.pid")));
    ex->ops->destroy(ex);
}

static void test_local_start_error_names_path(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    char blocker[96], err[TS_ERRLEN];
    snprintf(blocker, sizeof(blocker), "%s/file", f->dir);
    FILE *fp = fopen(blocker, "w");
    fclose(fp);
    exec_job a = make_job(f, 0, "ok", 0);
    snprintf(f->work[0], sizeof(f->work[0]), "%s/sub", blocker);
    assert_int_equal(ex->ops->start(ex, &a, err, sizeof(err)), TS_ERR);
    char expected[256];
    snprintf(expected, sizeof(expected), "cannot create directory %s/sub: Not a directory", blocker);
    assert_string_equal(err, expected);
    assert_int_equal(ex->ops->running(ex), 0);
    assert_null(exec_local_new("", 1.0, 0, err, sizeof(err)));
    ex->ops->destroy(ex);
}

/* ---- the real runner (this binary answering run-job) ---- */

/* A sleep through the real runner succeeds with its progress; it writes
 * nothing, so it has no result directory (jobs.h, writes_nothing). */
static void test_local_real_runner_sleep_succeeds(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:f}", "seconds", 0.6);
    a.params = params;
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 20);
    json_decref(params);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "succeeded");
    assert_true(e->progress == 1.0);
    assert_true(count_progress(&c, 0) >= 2);
    struct stat st;
    assert_int_equal(stat(f->result[0], &st), -1);
    assert_int_equal(errno, ENOENT);
    ex->ops->destroy(ex);
}

static void test_local_real_runner_cancel_leaves_no_result(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 5.0);
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    a.params = params;
    start_ok(ex, &a);
    exec_event buf[4];
    int n = 0;
    while (n == 0) n = ex->ops->wait(ex, 5.0, -1, buf, 4); /* first progress: it runs */
    assert_int_equal(buf[0].kind, EXEC_PROGRESS);
    double t0 = ts_monotonic();
    ex->ops->cancel(ex, 1, 0, 5.0);
    collected c = {0};
    collect(ex, &c, 1, 10);
    json_decref(params);
    assert_true(ts_monotonic() - t0 < 2.0); /* the runner honoured SIGTERM */
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "cancelled");
    assert_int_equal(e->exit_code, 1);
    assert_int_equal(access(f->result[0], F_OK), -1);
    char path[256];
    snprintf(path, sizeof(path), "%s/job.log", f->work[0]);
    char *log = test_slurp(path);
    assert_non_null(strstr(log, "tessera run-job: j1: interrupted\n"));
    free(log);
    ex->ops->destroy(ex);
}


/* The real runner says its exit on the pipe (protocol.h, "exit_on_pipe"):
 * no exit file is left, success and failure alike, and the failure's
 * reason still reaches the message. TESSERA_EXIT_MARKER_FILES=1 brings the
 * file back (for inspection, and sched_bench's latency). */
static void test_local_real_runner_says_exit_on_pipe(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    exec_job ok = make_job(f, 0, "noop", 0);
    exec_job bad = make_job(f, 1, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", -1);
    bad.params = params;
    start_ok(ex, &ok);
    start_ok(ex, &bad);
    collected c = {0};
    collect(ex, &c, 2, 20);
    json_decref(params);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    const exec_event *e = exited_event(&c, 1);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 2);
    assert_non_null(strstr(e->message, "exited with status 2: bad spec: "));
    assert_non_null(strstr(e->message, "seconds"));
    char path[300];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/attempt-1.exit", f->work[i]);
        assert_int_equal(access(path, F_OK), -1);
    }
    ex->ops->destroy(ex);
    setenv("TESSERA_EXIT_MARKER_FILES", "1", 1);
    ex = new_exec(f->self, 1.0);
    unsetenv("TESSERA_EXIT_MARKER_FILES");
    exec_job files = make_job(f, 2, "noop", 0);
    start_ok(ex, &files);
    collected d = {0};
    collect(ex, &d, 1, 20);
    assert_string_equal(exited_event(&d, 2)->outcome, "succeeded");
    proto_exit m;
    char err[TS_ERRLEN];
    assert_int_equal(proto_exit_read(f->work[2], 1, &m, err, sizeof(err)), TS_OK);
    assert_string_equal(m.outcome, "succeeded");
    ex->ops->destroy(ex);
}


/* The same on the exec path (TESSERA_FORK_SERVER=0: the runner's fd 3 is
 * inherited across an exec, inherited_progress_fd), and for a timeout:
 * the runner stops at SIGTERM and says "failed" on the pipe; the executor's
 * own reason stands, as with the file. */
static void test_local_real_runner_exec_path_says_exit_on_pipe(void **state) {
    fixture *f = *state;
    setenv("TESSERA_FORK_SERVER", "0", 1);
    executor *ex = new_exec(f->self, 5.0);
    unsetenv("TESSERA_FORK_SERVER");
    exec_job ok = make_job(f, 0, "noop", 0);
    exec_job slow = make_job(f, 1, "sleep", 0.5);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    slow.params = params;
    start_ok(ex, &ok);
    start_ok(ex, &slow);
    collected c = {0};
    collect(ex, &c, 2, 20);
    json_decref(params);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    const exec_event *e = exited_event(&c, 1);
    assert_string_equal(e->outcome, "timeout");
    assert_int_equal(e->exit_code, 1); /* it stopped and said so, not killed */
    assert_string_equal(e->message, "timed out after 0.5 s");
    char path[300];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/attempt-1.exit", f->work[i]);
        assert_int_equal(access(path, F_OK), -1);
        snprintf(path, sizeof(path), "%s/attempt-1.json", f->work[i]);
        assert_int_equal(access(path, F_OK), 0); /* exec'd: the spec was a file */
    }
    ex->ops->destroy(ex);
}


int main(int argc, char **argv) {
    int runner = exec_fixture_runner_main(argc, argv);
    if (runner >= 0) return runner;
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_local_success_reports_progress_and_log),
        T(test_local_failure_reports_exit_code_and_reason),
        T(test_local_failure_reason_from_marker),
        T(test_local_exit_marker_decides_success),
        T(test_local_marker_exit_code_stands_when_killed),
        T(test_local_job_nice_lowers_runner_priority),
        T(test_local_said_end_is_reported_before_exit),
        T(test_local_killed_by_signal_is_failed),
        T(test_local_timeout_sigkill_after_grace),
        T(test_local_cancel_terminates_group),
        T(test_local_two_jobs_run_concurrently),
        T(test_local_same_job_twice_is_refused),
        T(test_local_events_beyond_max_stay_queued),
        T(test_local_wake_fd_and_timeout),
        T(test_local_exec_failure_is_exit_127),
        T(test_local_progress_is_coalesced),
        T(test_local_partial_progress_lines),
        T(test_local_leftover_processes_are_killed),
        T(test_local_next_attempt_kills_earlier_leftovers),
        T(test_local_killed_runner_leftovers_are_killed),
        T(test_local_start_error_names_path),
        T(test_local_real_runner_sleep_succeeds),
        T(test_local_real_runner_cancel_leaves_no_result),
        T(test_local_real_runner_says_exit_on_pipe),
        T(test_local_real_runner_exec_path_says_exit_on_pipe),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
