/*
 * test_jobs.c - the job registry, the noop and sleep job types, job_progress
 * and the runner (jobs_run_main) on spec files in a temporary directory.
 *
 * The runner is run in a forked child, as the executor does, so its signal
 * handlers and fd 3 are the child's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/protocol.h"
#include "jobs/jobs.h"
#include "util/util.h"
#include "testlib.h"

typedef struct fixture {
    char dir[64];
    char spec[128];
    char result[128];
    char stderr_path[128];
} fixture;

static int setup(void **state) {
    fixture *f = ts_calloc(1, sizeof(*f));
    ts_strlcpy(f->dir, "/tmp/test_jobs.XXXXXX", sizeof(f->dir));
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->spec, sizeof(f->spec), "%s/work/attempt-1.json", f->dir);
    snprintf(f->result, sizeof(f->result), "%s/results/job-1", f->dir);
    snprintf(f->stderr_path, sizeof(f->stderr_path), "%s/stderr.txt", f->dir);
    char work[128];
    snprintf(work, sizeof(work), "%s/work", f->dir);
    assert_int_equal(mkdir(work, 0755), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Writes a spec like the executor's; params_text is JSON or NULL. */
static void write_spec(const fixture *f, const char *type_name, const char *params_text) {
    json_t *params = params_text ? json_loads(params_text, 0, NULL) : json_null();
    assert_non_null(params);
    char work[128];
    snprintf(work, sizeof(work), "%s/work", f->dir);
    json_t *spec = json_pack("{s:i, s:i, s:s, s:s, s:n, s:o, s:i, s:i, s:s, s:s}", "workflow_id", 7,
                             "job_index", 0, "job_id", "job-1", "job_type", type_name, "image_path",
                             "params", params, "cpus", 1, "attempt", 1, "work_dir", work,
                             "result_dir", f->result);
    assert_non_null(spec);
    assert_int_equal(json_dump_file(spec, f->spec, JSON_COMPACT), 0);
    json_decref(spec);
}

/* Forks a child that runs jobs_run_main with fd 3 = progress_w (or closed
 * when progress_w < 0) and stderr redirected to f->stderr_path. */
static pid_t start_runner(const fixture *f, int progress_w, int progress_r) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int efd = open(f->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(efd, 2);
        dup2(efd, 1);
        if (progress_r >= 0) close(progress_r);
        if (progress_w >= 0) {
            dup2(progress_w, 3);
            if (progress_w != 3) close(progress_w);
        } else {
            close(3);
        }
        _exit(jobs_run_main(f->spec));
    }
    return pid;
}

/* The attempt's exit marker (fails the test when there is none). */
static proto_exit read_marker_in(const char *work) {
    char err[TS_ERRLEN];
    proto_exit e;
    int rc = proto_exit_read(work, 1, &e, err, sizeof(err));
    if (rc != TS_OK) fail_msg("no exit marker (%d): %s", rc, err);
    return e;
}

static proto_exit read_marker(const fixture *f) {
    char work[128];
    snprintf(work, sizeof(work), "%s/work", f->dir);
    return read_marker_in(work);
}

static bool has_marker(const fixture *f) {
    char path[160];
    snprintf(path, sizeof(path), "%s/work/attempt-1.exit", f->dir);
    return access(path, F_OK) == 0;
}

static int wait_exit(pid_t pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Runs the spec to completion; returns the exit status and the progress
 * text (malloc'd, may be empty) in *progress. */
static int run_with_progress(const fixture *f, char **progress) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = start_runner(f, p[1], p[0]);
    close(p[1]);
    size_t len = 0, cap = 4096;
    char *buf = ts_malloc(cap);
    ssize_t n;
    while ((n = read(p[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) buf = ts_realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    close(p[0]);
    *progress = buf;
    return wait_exit(pid);
}

/* True when a name containing infix exists in dir (leftover temp dirs). */
static int dir_has_entry_containing(const char *dir, const char *infix) {
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, infix)) found = 1;
    closedir(d);
    return found;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- registry ---- */

static void test_registry_find_count_at(void **state) {
    (void)state;
    assert_true(jobs_count() >= 2);
    const job_type *noop = jobs_find("noop");
    const job_type *sleep_type = jobs_find("sleep");
    assert_non_null(noop);
    assert_non_null(sleep_type);
    assert_string_equal(noop->name, "noop");
    assert_non_null(noop->run);
    assert_int_equal(sleep_type->n_params, 1);
    assert_string_equal(sleep_type->params[0].name, "seconds");
    assert_null(jobs_find("Noop"));
    assert_null(jobs_find(NULL));
    for (size_t i = 0; i < jobs_count(); i++) {
        const job_type *t = jobs_at(i);
        assert_non_null(t);
        assert_ptr_equal(jobs_find(t->name), t);
        assert_non_null(t->description);
    }
    assert_null(jobs_at(jobs_count()));
}

static void test_jobs_check_unknown_type_lists_known(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    assert_int_equal(jobs_check(NULL, "job-1", "segment", NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "unknown job type \"segment\" (known: noop, sleep"));
    assert_int_equal(jobs_check(NULL, "job-1", "noop", NULL, NULL, err, sizeof(err)), TS_OK);
}

static void test_jobs_check_params(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    json_t *p = json_pack("{s:f}", "seconds", 0.5);
    assert_int_equal(jobs_check(NULL, "job-1", "sleep", p, NULL, err, sizeof(err)), TS_OK);
    json_decref(p);
    p = json_pack("{s:i}", "seconds", -1);
    assert_int_equal(jobs_check(NULL, "job-1", "sleep", p, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "params.seconds: must be a number from 0 to 86400");
    json_decref(p);
    p = json_pack("{s:i}", "seconds", 86401);
    assert_int_equal(jobs_check(NULL, "job-1", "sleep", p, NULL, err, sizeof(err)), TS_ERR);
    json_decref(p);
    p = json_pack("{s:s}", "seconds", "1");
    assert_int_equal(jobs_check(NULL, "job-1", "sleep", p, NULL, err, sizeof(err)), TS_ERR);
    json_decref(p);
    p = json_pack("{s:i}", "secs", 1);
    assert_int_equal(jobs_check(NULL, "job-1", "sleep", p, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "params.secs: unknown parameter (known: seconds)");
    json_decref(p);
    p = json_pack("{s:i}", "x", 1);
    assert_int_equal(jobs_check(NULL, "job-1", "noop", p, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "params.x: unknown parameter (known: none)");
    json_decref(p);
    p = json_object();
    assert_int_equal(jobs_check(NULL, "job-1", "noop", p, NULL, err, sizeof(err)), TS_OK);
    json_decref(p);
}

/* The types tessera-runner cannot run are exactly those marked
 * reads_slides (builtin.c): the scheduler sends the others there. */
static void test_only_the_image_analyses_read_slides(void **state) {
    (void)state;
    assert_true(jobs_find("tissue_mask")->reads_slides);
    assert_true(jobs_find("cell_segmentation")->reads_slides);
    assert_false(jobs_find("noop")->reads_slides);
    assert_false(jobs_find("sleep")->reads_slides);
    for (size_t i = 0; i < jobs_count(); i++) /* an image type must need an image */
        if (jobs_at(i)->reads_slides) assert_true(jobs_at(i)->needs_image);
}

/* jobs_check_type is what the runner checks: the type and its params, an
 * image_path where one is required, but not where the image is (the
 * runner checks that with slide_check_file, reading nothing): a path
 * outside any data root passes it and fails jobs_check at submission. */
static void test_jobs_check_type_leaves_the_image_to_the_runner(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    jobs_check_ctx jc = {.data_roots = "/nonexistent-root"};
    assert_int_equal(jobs_check_type("t", "tissue_mask", NULL, "/etc/hostname", err, sizeof(err)),
                     TS_OK);
    assert_int_equal(jobs_check(&jc, "t", "tissue_mask", NULL, "/etc/hostname", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "image_path: /etc/hostname: not found in the data roots"));
    assert_int_equal(jobs_check_type("t", "tissue_mask", NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "image_path: required by tissue_mask");
    assert_int_equal(jobs_check(NULL, "t", "tissue_mask", NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "image_path: required by tissue_mask");
    assert_int_equal(jobs_check_type("t", "segment", NULL, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "unknown job type \"segment\""));
}

/* ---- job_progress ---- */

static void test_job_progress_throttles_and_keeps_final(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    volatile sig_atomic_t stop = 0;
    job_ctx ctx = {.job_id = "j", .stop = &stop, .progress_fd = p[1], .last_progress_at = -1e9};
    for (int i = 0; i < 100; i++) job_progress(&ctx, i, 100, "tile\ndone");
    job_progress(&ctx, 100, 100, NULL);
    close(p[1]);
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "progress 0 100 tile done\nprogress 100 100 \n");

    ctx.progress_fd = -1; /* nowhere: must not crash or write */
    job_progress(&ctx, 1, 1, "x");
}

/* ---- runner ---- */

/* noop writes nothing (jobs.h, writes_nothing): it succeeds with no
 * result directory and no temporary one left behind - not even the
 * results tree, which nothing else made here. */
static void test_run_noop_succeeds_without_a_result_dir(void **state) {
    fixture *f = *state;
    write_spec(f, "noop", NULL);
    char *progress = NULL;
    assert_int_equal(run_with_progress(f, &progress), 0);
    assert_string_equal(progress, "progress 1 1 \n");
    free(progress);
    assert_false(is_dir(f->result));
    char results[128];
    snprintf(results, sizeof(results), "%s/results", f->dir);
    assert_false(is_dir(results));
    char *out = test_slurp(f->stderr_path);
    assert_non_null(strstr(out, "tessera run-job: job-1: succeeded"));
    free(out);
    /* The runner protocol: the same progress in the attempt's file, and the
     * exit marker that makes the attempt a success. */
    char path[160];
    snprintf(path, sizeof(path), "%s/work/attempt-1.progress", f->dir);
    char *file = test_slurp(path);
    assert_string_equal(file, "progress 1 1 \n");
    free(file);
    proto_exit e = read_marker(f);
    assert_string_equal(e.outcome, "succeeded");
    assert_int_equal(e.exit_code, 0);
    assert_string_equal(e.reason, "");
    assert_true(e.finished_at > 0);
    /* When the runner began: before it finished, and not long before (the
     * noop ran in this test's own process moments ago). */
    assert_true(e.started_at > 0);
    assert_true(e.started_at <= e.finished_at);
    assert_true(e.finished_at - e.started_at < 60);
    assert_true(e.host[0] != '\0');
}

/* A spec saying "progress_file": false (the local executor's, which reads
 * the pipe only): the progress comes on the pipe, and no file is made. */
static void test_run_without_progress_file_uses_the_pipe_only(void **state) {
    fixture *f = *state;
    write_spec(f, "noop", NULL);
    json_t *spec = json_load_file(f->spec, 0, NULL);
    assert_non_null(spec);
    json_object_set_new(spec, "progress_file", json_false());
    assert_int_equal(json_dump_file(spec, f->spec, JSON_COMPACT), 0);
    json_decref(spec);
    char *progress = NULL;
    assert_int_equal(run_with_progress(f, &progress), 0);
    assert_string_equal(progress, "progress 1 1 \n");
    free(progress);
    char path[160];
    struct stat st;
    snprintf(path, sizeof(path), "%s/work/attempt-1.progress", f->dir);
    assert_int_equal(stat(path, &st), -1);
    assert_string_equal(read_marker(f).outcome, "succeeded");
}

static void test_run_sleep_reports_progress(void **state) {
    fixture *f = *state;
    write_spec(f, "sleep", "{\"seconds\": 0.1}");
    double t0 = ts_monotonic();
    char *progress = NULL;
    assert_int_equal(run_with_progress(f, &progress), 0);
    double elapsed = ts_monotonic() - t0;
    assert_true(elapsed >= 0.1 && elapsed < 5);
    /* a first line at once, then the final line */
    assert_true(strncmp(progress, "progress ", 9) == 0);
    char *last = strstr(progress, "progress 0.1 0.1 slept 0.1 s\n");
    assert_non_null(last);
    assert_string_equal(last, "progress 0.1 0.1 slept 0.1 s\n");
    free(progress);
    assert_false(is_dir(f->result)); /* sleep writes nothing either */
}

/* A result left by an earlier attempt (or by a tessera from before
 * writes_nothing) is replaced, even by a type that writes nothing: by an
 * empty directory, so that no stale file passes for this attempt's. */
/* A result an earlier attempt left: results/job-1/old.txt, whose path goes
 * to old (and the results tree's to results). */
static void make_previous_result(const fixture *f, char *results, size_t results_len, char *old,
                                 size_t old_len) {
    snprintf(results, results_len, "%s/results", f->dir);
    assert_int_equal(mkdir(results, 0755), 0);
    assert_int_equal(mkdir(f->result, 0755), 0);
    snprintf(old, old_len, "%s/old.txt", f->result);
    FILE *fp = fopen(old, "w");
    fputs("stale", fp);
    fclose(fp);
}

static void test_run_replaces_previous_result(void **state) {
    fixture *f = *state;
    char results[128], old[192];
    make_previous_result(f, results, sizeof(results), old, sizeof(old));
    write_spec(f, "noop", "{}");
    char *progress = NULL;
    assert_int_equal(run_with_progress(f, &progress), 0);
    free(progress);
    assert_true(is_dir(f->result));
    assert_int_equal(access(old, F_OK), -1);
    DIR *d = opendir(f->result);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fail_msg("left in the replaced result: %s", e->d_name);
    closedir(d);
    assert_false(dir_has_entry_containing(results, ".old-"));
    assert_false(dir_has_entry_containing(results, ".tmp-"));
}

static void test_run_without_progress_fd(void **state) {
    fixture *f = *state;
    write_spec(f, "sleep", "{\"seconds\": 0}");
    pid_t pid = start_runner(f, -1, -1);
    assert_int_equal(wait_exit(pid), 0);
    assert_string_equal(read_marker(f).outcome, "succeeded");
}

/* Starts a 30 s sleep with a progress pipe and returns once it has
 * reported (it is running); *progress_rd gets the pipe's read end, for the
 * caller to close. */
static pid_t start_long_sleep(fixture *f, int *progress_rd) {
    write_spec(f, "sleep", "{\"seconds\": 30}");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = start_runner(f, p[1], p[0]);
    close(p[1]);
    char buf[256];
    assert_true(read(p[0], buf, sizeof(buf)) > 0);
    *progress_rd = p[0];
    return pid;
}

static void test_run_interrupted_sleep_leaves_no_result(void **state) {
    fixture *f = *state;
    int progress_rd;
    pid_t pid = start_long_sleep(f, &progress_rd);
    double t0 = ts_monotonic();
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 1);
    assert_true(ts_monotonic() - t0 < 2.0);
    close(progress_rd);
    assert_false(is_dir(f->result));
    char results[128];
    snprintf(results, sizeof(results), "%s/results", f->dir);
    assert_false(dir_has_entry_containing(results, ".tmp-"));
    char *err = test_slurp(f->stderr_path);
    assert_string_equal(err, "tessera run-job: job-1: interrupted\n");
    free(err);
    proto_exit e = read_marker(f);
    assert_string_equal(e.outcome, "failed");
    assert_int_equal(e.exit_code, 1);
    assert_string_equal(e.reason, "interrupted");
}

/* A failed attempt of a type that writes nothing, with an earlier result
 * to replace: it had a temporary directory (needs_out_dir), which goes,
 * and the earlier result stays as it was. */
static void test_run_interrupted_sleep_keeps_previous_result(void **state) {
    fixture *f = *state;
    char results[128], old[192];
    make_previous_result(f, results, sizeof(results), old, sizeof(old));
    int progress_rd;
    pid_t pid = start_long_sleep(f, &progress_rd);
    assert_true(dir_has_entry_containing(results, ".tmp-"));
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 1);
    close(progress_rd);
    assert_false(dir_has_entry_containing(results, ".tmp-"));
    char *kept = test_slurp(old);
    assert_string_equal(kept, "stale");
    free(kept);
    assert_string_equal(read_marker(f).outcome, "failed");
}

/* Runs a spec whose content is given verbatim and expects exit 2. */
static void expect_bad_spec(const fixture *f, const char *content, const char *needle) {
    FILE *fp = fopen(f->spec, "w");
    fputs(content, fp);
    fclose(fp);
    assert_int_equal(wait_exit(start_runner(f, -1, -1)), 2);
    char *err = test_slurp(f->stderr_path);
    if (strstr(err, needle) == NULL) fail_msg("expected \"%s\" in \"%s\"", needle, err);
    free(err);
    assert_false(is_dir(f->result));
}

static void test_run_bad_spec_exits_2(void **state) {
    fixture *f = *state;
    expect_bad_spec(f, "not json", "bad spec: cannot read spec");
    assert_false(has_marker(f)); /* no work_dir known: nowhere to leave one */
    expect_bad_spec(f, "[1]", "bad spec: cannot read spec: not a JSON object");
    expect_bad_spec(f, "{\"workflow_id\": 1}", "field \"work_dir\": must be a non-empty string");
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"workflow_id\":1,\"job_index\":0,\"job_id\":\"j\",\"job_type\":\"%s\","
             "\"image_path\":null,\"params\":%s,\"cpus\":1,\"attempt\":1,\"work_dir\":\"%s\","
             "\"result_dir\":\"%s\"}",
             "bogus", "{}", f->dir, f->result);
    expect_bad_spec(f, text, "unknown job type \"bogus\"");
    proto_exit e = read_marker_in(f->dir); /* work_dir and attempt were readable */
    assert_string_equal(e.outcome, "failed");
    assert_int_equal(e.exit_code, 2);
    assert_non_null(strstr(e.reason, "bad spec: unknown job type \"bogus\""));
    snprintf(text, sizeof(text),
             "{\"workflow_id\":1,\"job_index\":0,\"job_id\":\"j\",\"job_type\":\"%s\","
             "\"image_path\":null,\"params\":%s,\"cpus\":1,\"attempt\":1,\"work_dir\":\"%s\","
             "\"result_dir\":\"%s\"}",
             "sleep", "{\"seconds\":-3}", f->dir, f->result);
    expect_bad_spec(f, text, "params.seconds: must be a number from 0 to 86400");
    unlink(f->spec);
    assert_int_equal(wait_exit(start_runner(f, -1, -1)), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_find_count_at),
        cmocka_unit_test(test_jobs_check_unknown_type_lists_known),
        cmocka_unit_test(test_jobs_check_params),
        cmocka_unit_test(test_only_the_image_analyses_read_slides),
        cmocka_unit_test(test_jobs_check_type_leaves_the_image_to_the_runner),
        cmocka_unit_test(test_job_progress_throttles_and_keeps_final),
        cmocka_unit_test_setup_teardown(test_run_noop_succeeds_without_a_result_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_without_progress_file_uses_the_pipe_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_run_sleep_reports_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_replaces_previous_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_without_progress_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_interrupted_sleep_leaves_no_result, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_run_interrupted_sleep_keeps_previous_result, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_run_bad_spec_exits_2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
