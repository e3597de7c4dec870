/*
 * test_exec_small_runner.c - the local executor's second fork server,
 * tessera-runner's (exec/local_servers.c, src/tessera_runner.c): jobs
 * marked small_runner are forked from it, the others from the executor's
 * own binary; a dead one's requests still due are exec'd and later jobs go
 * to the other server; a tessera-runner of another build is not used.
 *
 * The executor finds tessera-runner beside its self_exe: each test links
 * this binary and BUILD/tessera-runner (the Makefile builds it first; the
 * same objects, so the same build stamp) into the fixture's directory and
 * uses the link as self_exe.
 */
#include "exec_fixture.h"

/* The fixture's self_exe with tessera-runner beside it: real_runner, or
 * when NULL the build's (BUILD/tests/../tessera-runner). */
static void link_servers(const fixture *f, const char *real_runner, char *self, size_t n) {
    char runner[4200], link_runner[200];
    if (real_runner == NULL) {
        snprintf(runner, sizeof(runner), "%s", f->self);
        char *slash = strrchr(runner, '/');
        assert_non_null(slash);
        snprintf(slash, sizeof(runner) - (size_t)(slash - runner), "/../tessera-runner");
        real_runner = runner;
    }
    assert_int_equal(access(real_runner, X_OK), 0);
    snprintf(self, n, "%s/tessera-test", f->dir);
    snprintf(link_runner, sizeof(link_runner), "%s/tessera-runner", f->dir);
    assert_int_equal(symlink(f->self, self), 0);
    assert_int_equal(symlink(real_runner, link_runner), 0);
}

/* The base name of /proc/pid/exe, "" if gone. */
static void exe_name(pid_t pid, char *out, size_t n) {
    char path[64], link[4096];
    snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    ssize_t len = readlink(path, link, sizeof(link) - 1);
    out[0] = '\0';
    if (len <= 0) return;
    link[len] = '\0';
    const char *slash = strrchr(link, '/');
    ts_strlcpy(out, slash ? slash + 1 : link, n);
}

/* Whether pid's program has the base name arg. */
static int program_is(pid_t pid, const void *arg) {
    char name[64];
    exe_name(pid, name, sizeof(name));
    return strcmp(name, arg) == 0;
}

/* A live child of ours named comm whose program's base name is exe, or -1,
 * waiting up to 2 s for it to appear. */
static pid_t child_running(const char *comm, const char *exe) {
    for (int tries = 0; tries < 200; tries++) {
        pid_t found = fixture_find_child(comm, program_is, exe);
        if (found > 0) return found;
        usleep(10000);
    }
    return -1;
}

/* An executor whose self_exe has the build's tessera-runner beside it;
 * *server gets the pid of tessera-runner's fork server. */
static executor *exec_with_small_server(const fixture *f, pid_t *server) {
    char self[200];
    link_servers(f, NULL, self, sizeof(self));
    executor *ex = new_exec(self, 1.0);
    *server = child_running("tessera-forksrv", "tessera-runner");
    assert_true(*server > 0);
    return ex;
}

static void run_and_succeed(executor *ex, const exec_job *jobs, size_t n) {
    for (size_t i = 0; i < n; i++) start_ok(ex, &jobs[i]);
    collected c = {0};
    collect(ex, &c, n, 20);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(exited_event(&c, jobs[i].job_index)->outcome, "succeeded");
}

/* A small job's runner is tessera-runner; another's is self_exe's program. */
static void test_small_jobs_are_forked_from_tessera_runner(void **state) {
    fixture *f = *state;
    pid_t server;
    executor *ex = exec_with_small_server(f, &server);
    exec_job small = make_job(f, 0, "sleep", 0), full = make_job(f, 1, "sleep", 0);
    small.small_runner = true;
    start_ok(ex, &small);
    pid_t runner = child_running("tessera-runner", "tessera-runner");
    assert_true(runner > 0);
    collected c = {0};
    collect(ex, &c, 1, 20);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    start_ok(ex, &full);
    /* this binary's runner, named after the link it was started through
     * (the small job's runner may still be exiting: it was reported over
     * by its own word, local.c finish_said) */
    char self_name[64];
    exe_name(getpid(), self_name, sizeof(self_name));
    assert_true(child_running("tessera-test", self_name) > 0);
    collect(ex, &c, 2, 20);
    assert_string_equal(exited_event(&c, 1)->outcome, "succeeded");
    ex->ops->destroy(ex);
}

/* tessera-runner's server killed with a request due, and found gone by
 * the next start before any wait(): the request due is exec'd there and
 * then (nothing would poll a dead server's answers), the new job goes to
 * the other server; both succeed. Without the settle in request_forked the
 * first job never started. */
static void test_a_dead_small_server_leaves_no_job_waiting(void **state) {
    fixture *f = *state;
    pid_t server;
    executor *ex = exec_with_small_server(f, &server);
    exec_job a = make_job(f, 0, "noop", 0), b = make_job(f, 1, "noop", 0);
    a.small_runner = b.small_runner = true;
    start_ok(ex, &a);
    kill(server, SIGKILL);
    usleep(300000);
    start_ok(ex, &b);
    collected c = {0};
    collect(ex, &c, 2, 15);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    assert_string_equal(exited_event(&c, 1)->outcome, "succeeded");
    ex->ops->destroy(ex);
}

/* With tessera-runner's server gone, small jobs are forked from the
 * executor's own server, not exec'd. */
static void test_small_jobs_go_to_the_other_server_once_it_is_gone(void **state) {
    fixture *f = *state;
    pid_t server;
    executor *ex = exec_with_small_server(f, &server);
    kill(server, SIGKILL);
    usleep(300000);
    exec_job a = make_job(f, 0, "sleep", 0);
    a.small_runner = true;
    start_ok(ex, &a);
    /* this binary's runner (named after the link it was started through);
     * forked, not exec'd: a forked runner gets its spec in the request and
     * no spec file is written */
    char self_name[64], spec[300];
    exe_name(getpid(), self_name, sizeof(self_name));
    assert_true(child_running("tessera-test", self_name) > 0);
    snprintf(spec, sizeof(spec), "%s/attempt-1.json", f->work[0]);
    assert_int_equal(access(spec, F_OK), -1);
    collected c = {0};
    collect(ex, &c, 1, 20);
    assert_string_equal(exited_event(&c, 0)->outcome, "succeeded");
    ex->ops->destroy(ex);
}

/* A tessera-runner that answers with another build's stamp is not
 * started; the small job runs all the same. */
static void test_a_runner_of_another_build_is_not_used(void **state) {
    fixture *f = *state;
    char stale[200], self[200];
    snprintf(stale, sizeof(stale), "%s/stale-runner", f->dir);
    FILE *fp = fopen(stale, "w");
    assert_non_null(fp);
    fputs("#!/bin/sh\necho \"tessera-runner 19700101T000000.0\"\n", fp);
    fclose(fp);
    assert_int_equal(chmod(stale, 0755), 0);
    link_servers(f, stale, self, sizeof(self));
    executor *ex = new_exec(self, 1.0);
    assert_int_equal(child_running("tessera-forksrv", "stale-runner"), -1);
    exec_job a = make_job(f, 0, "noop", 0);
    a.small_runner = true;
    run_and_succeed(ex, &a, 1);
    ex->ops->destroy(ex);
}

int main(int argc, char **argv) {
    int runner = exec_fixture_runner_main(argc, argv);
    if (runner >= 0) return runner;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_jobs_are_forked_from_tessera_runner, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_dead_small_server_leaves_no_job_waiting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_small_jobs_go_to_the_other_server_once_it_is_gone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_runner_of_another_build_is_not_used, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
