/*
 * exec_fixture.h - the fixture of the local executor's tests
 * (test_exec_local.c: exec'd runners, fake and real; test_exec_forkserver.c:
 * runners forked by the fork server; test_exec_small_runner.c: those forked
 * from tessera-runner's): a temporary directory with a fake
 * runner (a shell script speaking the runner protocol, used as self_exe)
 * and work and result paths for four jobs; starting jobs, collecting their
 * events, reading pids the fake runner leaves. The test binaries are also
 * real runners: exec_fixture_runner_main answers `run-job SPEC` and
 * `fork-server` as src/tessera.c does. Header-only (static inline), like
 * testlib.h, so each test stays one binary.
 */
#ifndef TESSERA_TESTS_EXEC_FIXTURE_H
#define TESSERA_TESTS_EXEC_FIXTURE_H

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
    /* nice: writes the nice values of itself and of a child it starts */
    "*'\"job_type\":\"nice\"'*) cut -d' ' -f19 /proc/$$/stat > \"$dir/nice.txt\"\n"
    "  sh -c 'cut -d\" \" -f19 /proc/$$/stat' >> \"$dir/nice.txt\"; ok; exit 0;;\n"
    "*'\"job_type\":\"nomarker\"'*) exit 0;;\n"
    "*'\"job_type\":\"markerkilled\"'*) ok; kill -9 $$;;\n"
    /* markerheld: as markerkilled, but a child holds the progress pipe, so
     * the runner's death, not a hang-up, is what the executor sees */
    "*'\"job_type\":\"markerheld\"'*) ok; sleep 5 & kill -9 $$;;\n"
    /* linger: says its end (marker, then the progress pipe closed) and stays */
    "*'\"job_type\":\"linger\"'*) echo $$ > \"$dir/linger.pid\"; ok; exec 3>&-; sleep 10; exit 0;;\n"
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

static inline int setup(void **state) {
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

static inline int teardown(void **state) {
    fixture *f = *state;
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static inline exec_job make_job(const fixture *f, int idx, const char *type, double timeout_s) {
    return (exec_job){.workflow_id = 1, .job_index = idx, .attempt = 1, .job_id = "j1",
                      .job_type = type, .image_path = NULL, .params = NULL, .cpus = 1,
                      .timeout_s = timeout_s, .work_dir = f->work[idx],
                      .result_dir = f->result[idx]};
}

/* An executor whose runners run job_nice nicer than this test. */
static inline executor *new_exec_nice(const char *self_exe, double grace_s, int job_nice) {
    char err[TS_ERRLEN];
    executor *ex = exec_local_new(self_exe, grace_s, job_nice, err, sizeof(err));
    if (ex == NULL) fail_msg("exec_local_new: %s", err);
    return ex;
}

static inline executor *new_exec(const char *self_exe, double grace_s) {
    return new_exec_nice(self_exe, grace_s, 0);
}

/* The nice value of pid (field 19 of /proc/PID/stat, after the comm's
 * closing parenthesis: state is field 3). */
static inline int nice_of(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    char *text = test_slurp(path);
    char *p = strrchr(text, ')');
    assert_non_null(p);
    p += 2;
    for (int field = 3; field < 19; field++) p = strchr(p, ' ') + 1;
    int nice = atoi(p);
    free(text);
    return nice;
}

static inline void start_ok(executor *ex, const exec_job *job) {
    char err[TS_ERRLEN];
    if (ex->ops->start(ex, job, err, sizeof(err)) != TS_OK) fail_msg("start: %s", err);
}

typedef struct collected {
    exec_event ev[512];
    size_t n, exits;
} collected;

/* Waits until `exits` EXITED events arrived (or timeout_s passed). */
static inline void collect(executor *ex, collected *c, size_t exits, double timeout_s) {
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

static inline const exec_event *exited_event(const collected *c, int32_t idx) {
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == EXEC_EXITED && c->ev[i].job_index == idx) return &c->ev[i];
    fail_msg("no EXITED event for job %d", idx);
    return NULL;
}

static inline size_t count_progress(const collected *c, int32_t idx) {
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == EXEC_PROGRESS && c->ev[i].job_index == idx) n++;
    return n;
}

static inline pid_t read_pid(const char *dir, const char *name) {
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

/* The first live child of ours named comm (/proc/PID/comm) for which
 * also(pid, arg) holds (also NULL: any), or -1. The tests find fork
 * servers, spares and runners this way. */
static inline pid_t fixture_find_child(const char *comm, int (*also)(pid_t, const void *),
                                       const void *arg) {
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
        char *close_paren = text ? strrchr(text, ')') : NULL;
        long ppid = close_paren ? atol(close_paren + 4) : 0; /* ") S <ppid>" */
        int zombie = close_paren && close_paren[2] == 'Z';
        free(text);
        if (ppid != (long)getpid() || zombie) continue;
        snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
        text = test_slurp(path);
        if (text == NULL) continue;
        text[strcspn(text, "\n")] = '\0';
        int match = strcmp(text, comm) == 0;
        free(text);
        if (match && (also == NULL || also((pid_t)pid, arg))) found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

/* True once pid is gone or a zombie waiting for its new parent. */
static inline int process_gone(pid_t pid) {
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

/* Answers the calls that make this test binary a runner (`run-job SPEC`)
 * or a fork server; -1 for any other command line (run the tests). */
static inline int exec_fixture_runner_main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "run-job") == 0) return jobs_run_main(argv[2]);
    if (argc > 1 && strcmp(argv[1], FORKSERVER_ARG) == 0)
        return forkserver_main(jobs_run_attempt, argc, argv);
    return -1;
}

#endif
