/*
 * test_exec_forkserver.c - the local executor's runners forked by its fork
 * server (src/exec/forkserver.h) are like exec'd ones: same protocol,
 * isolation, signals, death with the scheduler; the server keeps spares,
 * falls back to exec when it dies, and can be turned off. This test binary
 * is the runner and the fork server (exec_fixture_runner_main); exec'd
 * runners are test_exec_local.c's.
 */
#include <fcntl.h>

#include "exec_fixture.h"

/* Whether pid's command line has the text arg in it. */
static int cmdline_has(pid_t pid, const void *arg) {
    char path[64], line[8192] = "";
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(line, 1, sizeof(line) - 1, fp) : 0;
    if (fp) fclose(fp);
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\0') line[i] = ' ';
    line[n] = '\0';
    return strstr(line, arg) != NULL;
}

/* The first live child of ours named comm whose command line has cmd in it
 * (NULL: any), or -1. */
static pid_t child_matching(const char *comm, const char *cmd) {
    return fixture_find_child(comm, cmd ? cmdline_has : NULL, cmd);
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

/* The length of pid's command line (/proc/PID/cmdline), up to 8 KiB: a
 * forked runner's is the fork server's room, rewritten in place (over
 * 4,000 bytes); an exec'd runner's is a few hundred. */
static size_t cmdline_len(pid_t pid) {
    char path[64], big[8192];
    snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(big, 1, sizeof(big), fp);
    fclose(fp);
    return n;
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
    assert_true(cmdline_len(runner) > 4000);
    /* No environment slot left, the mark in its place. */
    char environ_path[64];
    snprintf(environ_path, sizeof(environ_path), "/proc/%ld/environ", (long)runner);
    char *env = test_slurp(environ_path);
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
    /* The progress pipe is close-on-exec, as an exec'd runner makes it:
     * nothing the job starts holds it past the runner's end. */
    snprintf(path, sizeof(path), "/proc/%ld/fdinfo/3", (long)runner);
    char *fdinfo = test_slurp(path);
    char *flags = strstr(fdinfo, "flags:");
    assert_non_null(flags);
    assert_true(strtoul(flags + strlen("flags:"), NULL, 8) & O_CLOEXEC);
    free(fdinfo);
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

/* job_nice reaches forked runners too: the fork server, its spares and
 * the runner of a running job are all that much nicer than we are. */
static void test_local_fork_server_runs_nicer(void **state) {
    fixture *f = *state;
    int base = nice_of(getpid());
    int want = base + 5 > 19 ? 19 : base + 5;
    executor *ex = new_exec_nice(f->self, 1.0, 5);
    wait_spares(2);
    exec_job a = make_job(f, 0, "sleep", 0);
    json_t *params = json_pack("{s:i}", "seconds", 30);
    a.params = params;
    start_ok(ex, &a);
    wait_running(ex);
    pid_t runner = runner_child(), server = child_matching("tessera-forksrv", NULL);
    pid_t spare = child_matching("tessera-spare", NULL);
    assert_true(runner > 0 && server > 0 && spare > 0);
    assert_true(cmdline_len(runner) > 4000); /* forked, not exec'd */
    assert_int_equal(nice_of(runner), want);
    assert_int_equal(nice_of(server), want);
    assert_int_equal(nice_of(spare), want);
    assert_int_equal(nice_of(getpid()), base); /* the executor's own is untouched */
    ex->ops->cancel(ex, 1, 0, 1.0);
    collected c = {0};
    collect(ex, &c, 1, 10);
    json_decref(params);
    ex->ops->destroy(ex);
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
    wait_running(ex); /* exec'd by then: between fork and exec it has our command line */
    pid_t runner = runner_child();
    assert_true(runner > 0);
    assert_true(cmdline_len(runner) < 4000);
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
    int runner = exec_fixture_runner_main(argc, argv);
    if (runner >= 0) return runner;
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_local_forked_runner_is_like_exec),
        T(test_local_forked_runner_dies_with_scheduler),
        T(test_local_fork_server_death_falls_back_to_exec),
        T(test_local_fork_server_keeps_spares),
        T(test_local_fork_server_runs_nicer),
        T(test_local_forked_starts_do_not_wait),
        T(test_local_fork_server_death_reaps_spares),
        T(test_local_fork_server_can_be_turned_off),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
