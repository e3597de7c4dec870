/*
 * test_exec_local.c - the local executor (src/exec/local.c).
 *
 * Most tests run a fake runner: a shell script written into a temporary
 * directory, used as self_exe. It is called as `runner.sh run-job SPEC` and
 * behaves according to the job_type in the spec. The last tests use this
 * test binary itself as self_exe: main() answers `run-job SPEC` with
 * jobs_run_main(), so the real runner path runs without src/tessera.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/executor.h"
#include "exec/forkserver.h"
#include "jobs/jobs.h"
#include "util/proctree.h"
#include "util/util.h"
#include "testlib.h"

/* Speaks the runner protocol (exec/protocol.h) where a test needs it: the
 * exit marker is what makes an attempt a success. */
static const char fake_runner[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$2\")\n"
    "spec=$(cat \"$2\")\n"
    "ok() { printf '{\"outcome\":\"succeeded\",\"exit_code\":0,\"reason\":\"\"}\\n' \\\n"
    "       > \"$dir/attempt-1.exit\"; }\n"
    "case \"$spec\" in\n"
    "*'\"job_type\":\"ok\"'*)\n"
    "  echo 'progress 1 2 half' >&3; sleep 0.2; echo 'progress 2 2 done' >&3\n"
    "  echo 'hello from job'; ok; exit 0;;\n"
    "*'\"job_type\":\"fail\"'*) echo 'tessera run-job: j1: something broke' >&2; exit 3;;\n"
    "*'\"job_type\":\"failmarker\"'*)\n"
    "  printf '{\"outcome\":\"failed\",\"exit_code\":1,\"reason\":\"tile 3 is corrupt\"}' \\\n"
    "    > \"$dir/attempt-1.exit\"; exit 1;;\n"
    "*'\"job_type\":\"hang\"'*) trap '' TERM; sleep 10; exit 0;;\n"
    "*'\"job_type\":\"slow\"'*) echo $$ > \"$dir/slow.pid\"; sleep 10; ok; exit 0;;\n"
    /* quick: says it started, then waits (up to 10 s) until both quick jobs
     * of the concurrency test have started; run one after the other, the
     * first would give up and fail. */
    "*'\"job_type\":\"quick\"'*) : > \"$dir/quick.started\"; i=0\n"
    "  while [ $(ls \"$dir\"/../*/quick.started 2>/dev/null | wc -l) -lt 2 ]; do\n"
    "    i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done\n"
    "  ok; exit 0;;\n"
    "*'\"job_type\":\"instant\"'*) ok; exit 0;;\n"
    "*'\"job_type\":\"nomarker\"'*) exit 0;;\n"
    "*'\"job_type\":\"markerkilled\"'*) ok; kill -9 $$;;\n"
    "*'\"job_type\":\"spam\"'*)\n"
    "  i=0; while [ $i -lt 200 ]; do echo \"progress $i 200 step\" >&3; i=$((i+1)); done\n"
    "  echo 'progress 200 200 all' >&3; ok; exit 0;;\n"
    "*'\"job_type\":\"partial\"'*)\n"
    "  printf 'progress 1 4 a' >&3; sleep 0.1; printf ' b\\n' >&3; sleep 0.3\n"
    "  printf 'progress 3 4 tail' >&3; ok; exit 0;;\n"
    "*'\"job_type\":\"orphan\"'*) sleep 30 & echo $! > \"$dir/orphan.pid\"; ok; exit 0;;\n"
    "*'\"job_type\":\"escape\"'*) setsid sleep 30 & echo $! > \"$dir/escape.pid\"; sleep 0.2; ok; exit 0;;\n"
    "*'\"job_type\":\"escape_die\"'*)\n"
    "  setsid sleep 30 & echo $! > \"$dir/escape.pid\"; sleep 0.2; kill -9 $$;;\n"
    "*'\"job_type\":\"selfkill\"'*) kill -9 $$;;\n"
    "esac\n"
    "exit 99\n";

typedef struct fixture {
    char dir[64];
    char runner[128];
    char self[4096]; /* this test binary */
    char work[4][160];
    char result[4][160];
} fixture;

static int setup(void **state) {
    fixture *f = ts_calloc(1, sizeof(*f));
    ts_strlcpy(f->dir, "/tmp/test_exec_local.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->runner, sizeof(f->runner), "%s/runner.sh", f->dir);
    FILE *fp = fopen(f->runner, "w");
    assert_non_null(fp);
    fputs(fake_runner, fp);
    fclose(fp);
    assert_int_equal(chmod(f->runner, 0755), 0);
    ssize_t n = readlink("/proc/self/exe", f->self, sizeof(f->self) - 1);
    assert_true(n > 0);
    f->self[n] = '\0';
    char dir[64];
    ts_strlcpy(dir, f->dir, sizeof(dir));
    for (int i = 0; i < 4; i++) {
        snprintf(f->work[i], sizeof(f->work[i]), "%s/work/wf-1/job-%d", dir, i);
        snprintf(f->result[i], sizeof(f->result[i]), "%s/results/wf-1/job-%d", dir, i);
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static exec_job make_job(const fixture *f, int idx, const char *type, double timeout_s) {
    return (exec_job){.workflow_id = 1, .job_index = idx, .attempt = 1, .job_id = "j1",
                      .job_type = type, .image_path = NULL, .params = NULL, .cpus = 1,
                      .timeout_s = timeout_s, .work_dir = f->work[idx],
                      .result_dir = f->result[idx]};
}

static executor *new_exec(const char *self_exe, double grace_s) {
    char err[TS_ERRLEN];
    executor *ex = exec_local_new(self_exe, grace_s, err, sizeof(err));
    if (ex == NULL) fail_msg("exec_local_new: %s", err);
    return ex;
}

static void start_ok(executor *ex, const exec_job *job) {
    char err[TS_ERRLEN];
    if (ex->ops->start(ex, job, err, sizeof(err)) != TS_OK) fail_msg("start: %s", err);
}

typedef struct collected {
    exec_event ev[512];
    size_t n, exits;
} collected;

/* Waits until `exits` EXITED events arrived (or timeout_s passed). */
static void collect(executor *ex, collected *c, size_t exits, double timeout_s) {
    double end = ts_monotonic() + timeout_s;
    while (c->exits < exits && ts_monotonic() < end) {
        exec_event buf[8];
        int n = ex->ops->wait(ex, end - ts_monotonic(), -1, buf, 8);
        for (int i = 0; i < n && c->n < 512; i++) {
            c->ev[c->n++] = buf[i];
            if (buf[i].kind == EXEC_EXITED) c->exits++;
        }
    }
    assert_int_equal(c->exits, exits);
}

static const exec_event *exited_event(const collected *c, int32_t idx) {
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == EXEC_EXITED && c->ev[i].job_index == idx) return &c->ev[i];
    fail_msg("no EXITED event for job %d", idx);
    return NULL;
}

static size_t count_progress(const collected *c, int32_t idx) {
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == EXEC_PROGRESS && c->ev[i].job_index == idx) n++;
    return n;
}

static pid_t read_pid(const char *dir, const char *name) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    for (int i = 0; i < 100; i++) {
        char *text = test_slurp(path);
        long pid = atol(text);
        free(text);
        if (pid > 0) return (pid_t)pid;
        usleep(20000);
    }
    fail_msg("no pid in %s", path);
    return -1;
}

/* True once pid is gone or a zombie waiting for its new parent. */
static int process_gone(pid_t pid) {
    for (int i = 0; i < 100; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
        char *stat = test_slurp(path);
        char *close_paren = strrchr(stat, ')');
        int gone = stat[0] == '\0' || (close_paren && close_paren[2] == 'Z');
        free(stat);
        if (gone) return 1;
        usleep(20000);
    }
    return 0;
}

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

static void test_local_failure_reports_exit_code_and_reason(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job job = make_job(f, 0, "fail", 0);
    start_ok(ex, &job);
    collected c = {0};
    collect(ex, &c, 1, 10);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 3);
    assert_string_equal(e->message, "exited with status 3: something broke");
    ex->ops->destroy(ex);
}

/* The runner's exit marker names the reason (runner protocol). */
static void test_local_failure_reason_from_marker(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->runner, 1.0);
    exec_job job = make_job(f, 0, "failmarker", 0);
    start_ok(ex, &job);
    collected c = {0};
    collect(ex, &c, 1, 10);
    const exec_event *e = exited_event(&c, 0);
    assert_string_equal(e->outcome, "failed");
    assert_int_equal(e->exit_code, 1);
    assert_string_equal(e->message, "exited with status 1: tile 3 is corrupt");
    ex->ops->destroy(ex);
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
    e = exited_event(&c, 1);
    assert_string_equal(e->outcome, "succeeded");
    assert_int_equal(e->exit_code, 128 + 9);
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
    assert_null(exec_local_new("", 1.0, err, sizeof(err)));
    ex->ops->destroy(ex);
}

/* ---- the real runner (this binary answering run-job) ---- */

static void test_local_real_runner_sleep_publishes(void **state) {
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
    assert_int_equal(stat(f->result[0], &st), 0);
    assert_true(S_ISDIR(st.st_mode));
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

/* ---- the fork server (forkserver.h): its runners are like exec'd ones ---- */

/* The first live child of ours named comm (/proc/PID/comm) whose command
 * line has cmd in it (NULL: any), or -1. */
static pid_t child_matching(const char *comm, const char *cmd) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    pid_t found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        long pid = atol(e->d_name);
        if (pid <= 0) continue;
        char path[64], *text;
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        text = test_slurp(path);
        char *close_paren = strrchr(text, ')');
        long ppid = close_paren ? atol(close_paren + 4) : 0; /* ") S <ppid>" */
        int zombie = close_paren && close_paren[2] == 'Z';
        free(text);
        if (ppid != (long)getpid() || zombie) continue;
        snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
        text = test_slurp(path);
        text[strcspn(text, "\n")] = '\0';
        int match = strcmp(text, comm) == 0;
        free(text);
        if (match && cmd) {
            snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
            FILE *fp = fopen(path, "r");
            char line[8192] = "";
            size_t n = fp ? fread(line, 1, sizeof(line) - 1, fp) : 0;
            if (fp) fclose(fp);
            for (size_t i = 0; i < n; i++)
                if (line[i] == '\0') line[i] = ' ';
            line[n] = '\0';
            match = strstr(line, cmd) != NULL;
        }
        if (match) found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

/* A runner child of ours, exec'd or forked: both read `SELF run-job SPEC`
 * in ps, under this program's name. */
static pid_t runner_child(void) {
    char comm[16] = "";
    FILE *fp = fopen("/proc/self/comm", "r");
    if (fp && fgets(comm, sizeof(comm), fp)) comm[strcspn(comm, "\n")] = '\0';
    if (fp) fclose(fp);
    return child_matching(comm, " run-job /");
}

/* Waits for the first progress event: the runner is running its job. */
static void wait_running(executor *ex) {
    exec_event buf[4];
    int n = 0;
    for (int i = 0; i < 50 && n == 0; i++) n = ex->ops->wait(ex, 0.2, -1, buf, 4);
    assert_true(n > 0);
    assert_int_equal(buf[0].kind, EXEC_PROGRESS);
}

/* One hex mask line ("SigIgn:\t0000000000001000") of /proc/PID/status. */
static unsigned long long status_mask(pid_t pid, const char *field) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    char *text = test_slurp(path);
    char *line = strstr(text, field);
    assert_non_null(line);
    unsigned long long mask = strtoull(line + strlen(field) + 2, NULL, 16);
    free(text);
    return mask;
}

static void ignore_nothing(int sig) {
    (void)sig;
}

static void test_local_forked_runner_is_like_exec(void **state) {
    fixture *f = *state;
    /* Dispositions of ours that no runner may inherit: an ignored SIGUSR2
     * and SIGPIPE (an ignored signal survives exec) and a handled SIGALRM. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, handled = {.sa_handler = ignore_nothing};
    struct sigaction old_usr2, old_pipe, old_alrm;
    sigaction(SIGUSR2, &ign, &old_usr2);
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGALRM, &handled, &old_alrm);
    executor *ex = new_exec(f->self, 1.0);
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    a.params = params;
    start_ok(ex, &a);
    wait_running(ex);
    pid_t server = child_matching("tessera-forksrv", NULL); /* named once it runs: after the start */
    assert_true(server > 0);
    /* Our child, not the server's, leading its own process group. */
    pid_t runner = runner_child();
    assert_true(runner > 0);
    assert_int_equal(getpgid(runner), runner);
    /* Signals as after an exec with all defaults: nothing ignored or
     * blocked; caught only what the runner itself catches (SIGHUP for its
     * parent's death, SIGINT, SIGUSR1, SIGTERM to stop the job). */
    unsigned long long caught = (1ULL << (SIGHUP - 1)) | (1ULL << (SIGINT - 1)) |
                                (1ULL << (SIGUSR1 - 1)) | (1ULL << (SIGTERM - 1));
    /* Read until they settle (up to 10 s): "running" comes before the
     * runner has installed its handlers, and a moment inside a library
     * call may block signals briefly; what persists is what counts. */
    /* Ignored or blocked: none an application can name. Signals 32 and 33
     * are the C library's own (thread cancellation, setxid): its
     * sigaction and sigprocmask refuse them, so whatever this process
     * inherited for them (the sanitizer CI run inherited both ignored)
     * no runner can change, exec'd or forked. */
    const unsigned long long libc_own = (1ULL << 31) | (1ULL << 32);
    for (int i = 0; i < 1000; i++) {
        if ((status_mask(runner, "SigIgn") & ~libc_own) == 0 &&
            (status_mask(runner, "SigBlk") & ~libc_own) == 0 &&
            status_mask(runner, "SigCgt") == caught)
            break;
        usleep(10000);
    }
    assert_int_equal(status_mask(runner, "SigIgn") & ~libc_own, 0);
    assert_int_equal(status_mask(runner, "SigBlk") & ~libc_own, 0);
    assert_int_equal(status_mask(runner, "SigCgt"), caught);
    /* It got its spec in the request: no spec file was written. */
    char spec_path[300];
    snprintf(spec_path, sizeof(spec_path), "%s/attempt-1.json", f->work[0]);
    assert_int_equal(access(spec_path, F_OK), -1);
    /* Forked, not exec'd: its command line is the fork server's room,
     * rewritten in place (an exec'd runner's is a few hundred bytes). */
    char cmdline[128];
    snprintf(cmdline, sizeof(cmdline), "/proc/%ld/cmdline", (long)runner);
    FILE *fp = fopen(cmdline, "r");
    assert_non_null(fp);
    char big[8192];
    size_t cmd_len = fread(big, 1, sizeof(big), fp);
    fclose(fp);
    assert_true(cmd_len > 4000);
    /* No environment slot left, the mark in its place. */
    snprintf(cmdline, sizeof(cmdline), "/proc/%ld/environ", (long)runner);
    char *env = test_slurp(cmdline);
    assert_null(strstr(env, "TESSERA_FORK_SLOT"));
    free(env);
    /* Fds 0-3 are /dev/null, job.log twice and the progress pipe; any other
     * is one the runner opened itself in its work dir (the progress file):
     * nothing of the executor's (sockets, the store) leaked in. */
    char path[128], target[512], want[512];
    int n_fds = 0;
    snprintf(want, sizeof(want), "%s/job.log", f->work[0]);
    for (int fd = 0; fd < 256; fd++) {
        snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)runner, fd);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len < 0) continue;
        target[len] = '\0';
        n_fds++;
        if (fd == 0) assert_string_equal(target, "/dev/null");
        if (fd == 1 || fd == 2) assert_string_equal(target, want);
        if (fd == 3) assert_non_null(strstr(target, "pipe:"));
        if (fd > 3 && strncmp(target, f->work[0], strlen(f->work[0])) != 0)
            fail_msg("runner fd %d is %s, not the runner's own", fd, target);
    }
    assert_true(n_fds >= 4);
    /* The attempt's mark is where proctree looks for it. */
    char mark[256];
    snprintf(mark, sizeof(mark), "%s=%s/attempt-1", PROCTREE_MARK, f->work[0]);
    pid_t marked[4];
    assert_int_equal(proctree_find_marked(mark, marked, 4), 1);
    assert_int_equal(marked[0], runner);
    ex->ops->cancel(ex, 1, 0, 5.0);
    collected c = {0};
    collect(ex, &c, 1, 10);
    json_decref(params);
    assert_string_equal(exited_event(&c, 0)->outcome, "cancelled");
    ex->ops->destroy(ex);
    assert_true(process_gone(server));
    sigaction(SIGUSR2, &old_usr2, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGALRM, &old_alrm, NULL);
}

/* A scheduler killed by SIGKILL takes its forked runner and the fork
 * server with it. The "scheduler" is a child process of this test. */
static void test_local_forked_runner_dies_with_scheduler(void **state) {
    fixture *f = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t sched = fork();
    assert_true(sched >= 0);
    if (sched == 0) {
        close(ready[0]);
        executor *ex = new_exec(f->self, 1.0);
        exec_job a = make_job(f, 0, "sleep", 0);
        json_t *params = json_pack("{s:i}", "seconds", 60);
        a.params = params;
        start_ok(ex, &a);
        wait_running(ex);
        pid_t pids[2] = {child_matching("tessera-forksrv", NULL), runner_child()};
        if (write(ready[1], pids, sizeof(pids)) != (ssize_t)sizeof(pids)) _exit(1);
        for (;;) pause();
    }
    close(ready[1]);
    pid_t pids[2];
    assert_int_equal(read(ready[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
    close(ready[0]);
    assert_true(pids[0] > 0 && pids[1] > 0);
    kill(sched, SIGKILL);
    assert_int_equal(waitpid(sched, NULL, 0), sched);
    assert_true(process_gone(pids[0]));
    assert_true(process_gone(pids[1]));
}

/* A fork server that dies leaves running jobs alone; later runners are
 * exec'd, and work. */
static void test_local_fork_server_death_falls_back_to_exec(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:f}", "seconds", 1.0);
    a.params = params;
    start_ok(ex, &a);
    wait_running(ex);
    pid_t server = child_matching("tessera-forksrv", NULL);
    assert_true(server > 0);
    kill(server, SIGKILL);
    exec_job b = make_job(f, 1, "sleep", 0);
    b.params = params;
    start_ok(ex, &b); /* finds the server gone, execs */
    assert_true(runner_child() > 0); /* a still runs */

    collected c = {0};
    collect(ex, &c, 2, 20);
    json_decref(params);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    assert_string_equal(exited_event(&c, 1)->outcome, "succeeded");
    ex->ops->destroy(ex);
}

/* Children of ours named comm: live ones, and zombies too if asked. */
static int children_named(const char *comm, int with_zombies) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = atol(e->d_name);
        if (pid <= 0) continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        char *text = test_slurp(path);
        char *open_paren = strchr(text, '('), *close_paren = strrchr(text, ')');
        if (open_paren && close_paren && atol(close_paren + 4) == (long)getpid() &&
            (with_zombies || close_paren[2] != 'Z') &&
            (size_t)(close_paren - open_paren - 1) == strlen(comm) &&
            strncmp(open_paren + 1, comm, strlen(comm)) == 0)
            n++;
        free(text);
    }
    closedir(d);
    return n;
}

/* Waits (up to 10 s) until exactly n live spares are children of ours. */
static void wait_spares(int n) {
    for (int i = 0; i < 500 && children_named("tessera-spare", 0) != n; i++) usleep(20000);
    assert_int_equal(children_named("tessera-spare", 0), n);
}

/* The fork server keeps two spares forked ahead, children of ours; a used
 * or killed spare is replaced, and destroy reaps every spare (no zombie
 * is left). */
static void test_local_fork_server_keeps_spares(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    wait_spares(2);
    exec_job a = make_job(f, 0, "noop", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 20);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    wait_spares(2); /* the one that became a's runner was replaced */
    pid_t spare = child_matching("tessera-spare", NULL);
    assert_true(spare > 0);
    kill(spare, SIGKILL);
    assert_int_equal(waitpid(spare, NULL, 0), spare); /* ours to reap: we are its parent */
    wait_spares(2);
    exec_job b = make_job(f, 1, "noop", 0);
    start_ok(ex, &b);
    collect(ex, &c, 2, 20);
    assert_string_equal(exited_event(&c, 1)->outcome, "succeeded");
    pid_t server = child_matching("tessera-forksrv", NULL);
    assert_true(server > 0);
    ex->ops->destroy(ex);
    assert_true(process_gone(server));
    assert_int_equal(children_named("tessera-spare", 1), 0);
}

/* With the server gone, its spares are reaped at the next start, which
 * execs its runner (an exec'd runner's command line is short). */
static void test_local_fork_server_death_reaps_spares(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    wait_spares(2);
    pid_t server = child_matching("tessera-forksrv", NULL);
    assert_true(server > 0);
    kill(server, SIGKILL);
    assert_true(process_gone(server)); /* else a spare may still serve this start */
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    a.params = params;
    start_ok(ex, &a);
    assert_int_equal(children_named("tessera-spare", 1), 0);
    pid_t runner = runner_child();
    assert_true(runner > 0);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)runner);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char big[8192];
    size_t cmd_len = fread(big, 1, sizeof(big), fp);
    fclose(fp);
    assert_true(cmd_len < 4000);
    ex->ops->cancel(ex, 1, 0, 5.0);
    collected c = {0};
    collect(ex, &c, 1, 10);
    json_decref(params);
    ex->ops->destroy(ex);
}

/* A start does not wait for the fork server's answer: runners started
 * back to back all run, and a cancel or a destroy right after a start
 * (before the answer was read) still reaches the runner. */
static void test_local_forked_starts_do_not_wait(void **state) {
    fixture *f = *state;
    executor *ex = new_exec(f->self, 1.0);
    exec_job a = make_job(f, 0, "noop", 0), b = make_job(f, 1, "noop", 0),
             c = make_job(f, 2, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    c.params = params;
    start_ok(ex, &a);
    start_ok(ex, &b);
    start_ok(ex, &c);
    ex->ops->cancel(ex, 1, 2, 1.0);
    collected got = {0};
    collect(ex, &got, 3, 20);
    assert_string_equal(exited_event(&got, 0)->outcome, "succeeded");
    assert_string_equal(exited_event(&got, 1)->outcome, "succeeded");
    assert_string_equal(exited_event(&got, 2)->outcome, "cancelled");
    exec_job d = make_job(f, 3, "sleep", 0);
    d.params = params;
    start_ok(ex, &d);
    ex->ops->destroy(ex); /* kills d, whose pid it had not read yet */
    char mark[256];
    snprintf(mark, sizeof(mark), "%s=%s/attempt-1", PROCTREE_MARK, f->work[3]);
    pid_t marked[4];
    assert_int_equal(proctree_find_marked(mark, marked, 4), 0);
    json_decref(params);
}

static void test_local_fork_server_can_be_turned_off(void **state) {
    fixture *f = *state;
    setenv("TESSERA_FORK_SERVER", "0", 1);
    executor *ex = new_exec(f->self, 1.0);
    unsetenv("TESSERA_FORK_SERVER");
    assert_int_equal(child_matching("tessera-forksrv", NULL), -1);
    /* An exec'd runner reads its spec from the file, written for it. */
    exec_job a = make_job(f, 0, "noop", 0);
    start_ok(ex, &a);
    collected c = {0};
    collect(ex, &c, 1, 20);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    char spec_path[300];
    snprintf(spec_path, sizeof(spec_path), "%s/attempt-1.json", f->work[0]);
    assert_int_equal(access(spec_path, F_OK), 0);
    ex->ops->destroy(ex);
    /* Nor for another program than this one. */
    ex = new_exec(f->runner, 1.0);
    assert_int_equal(child_matching("tessera-forksrv", NULL), -1);
    ex->ops->destroy(ex);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "run-job") == 0) return jobs_run_main(argv[2]);
    if (argc > 1 && strcmp(argv[1], FORKSERVER_ARG) == 0)
        return forkserver_main(jobs_run_attempt, argc, argv);
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_local_success_reports_progress_and_log),
        T(test_local_failure_reports_exit_code_and_reason),
        T(test_local_failure_reason_from_marker),
        T(test_local_exit_marker_decides_success),
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
        T(test_local_real_runner_sleep_publishes),
        T(test_local_real_runner_cancel_leaves_no_result),
        T(test_local_forked_runner_is_like_exec),
        T(test_local_forked_runner_dies_with_scheduler),
        T(test_local_fork_server_death_falls_back_to_exec),
        T(test_local_fork_server_keeps_spares),
        T(test_local_forked_starts_do_not_wait),
        T(test_local_fork_server_death_reaps_spares),
        T(test_local_fork_server_can_be_turned_off),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
