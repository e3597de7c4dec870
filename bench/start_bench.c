/*
 * start_bench.c - what starting one job's runner costs: the local executor
 * exec'ing `run-job` for each job, forking it from the fork server
 * (src/exec/forkserver.h), and forking it from tessera-runner's, the small
 * runner binary (src/tessera_runner.c), in the same run, on noop jobs one at
 * a time.
 *
 *   build/bench/start_bench [JOBS]
 *
 * This binary is its own runner (it answers `run-job SPEC` and
 * `fork-server` like tessera does, and links the same libraries), so the
 * first two ways run the very same code; the third needs BUILD/tessera-runner
 * (`make build/tessera-runner`), which the executor finds beside a link to
 * this binary in a scratch directory (same build stamp: the same objects).
 * Prints, per way, the time start() blocks the scheduler and the time from
 * start() to the EXITED event (p50, p99, mean), and the ratios of the means.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/executor.h"
#include "exec/forkserver.h"
#include "jobs/jobs.h"
#include "util/util.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct figures {
    double start_p50, start_p99, total_p50, total_p99, total_mean;
} figures;

static void summarise(double *v, int n, double *p50, double *p99) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    *p50 = v[n / 2];
    *p99 = v[(int)(n * 0.99)];
}

enum way { WAY_EXEC, WAY_FORK, WAY_SMALL };
static const char *const way_dir[] = {"exec", "fork", "small"};

/* Runs n noop jobs one after another, started the given way. */
static int run_way(const char *self, const char *dir, int n, enum way way, figures *out) {
    char err[TS_ERRLEN];
    if (way == WAY_EXEC) setenv("TESSERA_FORK_SERVER", "0", 1);
    if (way != WAY_SMALL) setenv("TESSERA_SMALL_RUNNER", "0", 1);
    executor *ex = exec_local_new(self, 1.0, 0, err, sizeof(err));
    unsetenv("TESSERA_FORK_SERVER");
    unsetenv("TESSERA_SMALL_RUNNER");
    if (ex == NULL) {
        fprintf(stderr, "start_bench: %s\n", err);
        return 1;
    }
    double *start = ts_malloc((size_t)n * sizeof(double));
    double *total = ts_malloc((size_t)n * sizeof(double));
    double sum = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char work[512], result[512], id[32];
        snprintf(work, sizeof(work), "%s/%s/work/job-%d", dir, way_dir[way], i);
        snprintf(result, sizeof(result), "%s/%s/results/job-%d", dir, way_dir[way], i);
        snprintf(id, sizeof(id), "j%d", i);
        exec_job job = {.workflow_id = 1, .job_index = i, .attempt = 1, .job_id = id,
                        .job_type = "noop", .cpus = 1, .work_dir = work, .result_dir = result,
                        .small_runner = true};
        double t0 = ts_monotonic();
        if (ex->ops->start(ex, &job, err, sizeof(err)) != TS_OK) {
            fprintf(stderr, "start_bench: %s\n", err);
            rc = 1;
            break;
        }
        start[i] = ts_monotonic() - t0;
        for (bool done = false; !done;) {
            exec_event ev[4];
            int k = ex->ops->wait(ex, 10.0, -1, ev, 4);
            for (int j = 0; j < k; j++)
                if (ev[j].kind == EXEC_EXITED) {
                    done = true;
                    if (strcmp(ev[j].outcome, "succeeded") != 0) {
                        fprintf(stderr, "start_bench: job %d: %s\n", i, ev[j].message);
                        rc = 1;
                    }
                }
        }
        total[i] = ts_monotonic() - t0;
        sum += total[i];
    }
    ex->ops->destroy(ex);
    if (rc == 0) {
        summarise(start, n, &out->start_p50, &out->start_p99);
        summarise(total, n, &out->total_p50, &out->total_p99);
        out->total_mean = sum / n;
    }
    free(start);
    free(total);
    return rc;
}

static void print_way(const char *label, const figures *f) {
    printf("  %-12s start() p50 %6.2f ms p99 %6.2f ms | start -> exited p50 %6.2f ms "
           "p99 %6.2f ms mean %6.2f ms\n",
           label, f->start_p50 * 1e3, f->start_p99 * 1e3, f->total_p50 * 1e3,
           f->total_p99 * 1e3, f->total_mean * 1e3);
}

/* Whether the runner binary at path is of this build (the executor would
 * not use it otherwise, and the third way would measure the second). */
static bool same_build(const char *path) {
    char cmd[4300], line[128] = "", want[128];
    snprintf(cmd, sizeof(cmd), "'%s' version", path);
    FILE *p = popen(cmd, "r");
    if (p == NULL) return false;
    if (fgets(line, sizeof(line), p) == NULL) line[0] = '\0';
    pclose(p);
    snprintf(want, sizeof(want), "tessera-runner %s\n", ts_build_stamp());
    return strcmp(line, want) == 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "run-job") == 0) return jobs_run_main(argv[2]);
    if (argc > 1 && strcmp(argv[1], FORKSERVER_ARG) == 0)
        return forkserver_main(jobs_run_attempt, argc, argv);
    int n = argc > 1 ? atoi(argv[1]) : 300;
    if (n < 10) n = 10;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char dir[] = "/tmp/tessera-start-bench.XXXXXX";
    if (len <= 0 || !mkdtemp(dir)) {
        perror("start_bench");
        return 2;
    }
    self[len] = '\0';
    /* The small runner is found beside the executor's binary: a link to
     * this one in the scratch directory, next to BUILD/tessera-runner. */
    char link_self[4200], small[4200], link_small[4200];
    snprintf(link_self, sizeof(link_self), "%s/start_bench", dir);
    snprintf(small, sizeof(small), "%s", self);
    char *slash = strrchr(small, '/');
    snprintf(slash ? slash : small, sizeof(small) - (size_t)(slash ? slash - small : 0),
             "/../tessera-runner");
    snprintf(link_small, sizeof(link_small), "%s/tessera-runner", dir);
    bool have_small = access(small, X_OK) == 0 && same_build(small) &&
                      symlink(self, link_self) == 0 && symlink(small, link_small) == 0;
    figures exec_f, fork_f, small_f;
    printf("runner start cost, %d noop jobs one at a time, the same code each way:\n", n);
    int rc = run_way(self, dir, n, WAY_EXEC, &exec_f) || run_way(self, dir, n, WAY_FORK, &fork_f) ||
             (have_small && run_way(link_self, dir, n, WAY_SMALL, &small_f));
    if (rc == 0) {
        print_way("exec", &exec_f);
        print_way("fork server", &fork_f);
        if (have_small) print_way("small runner", &small_f);
        printf("  fork server / exec, mean start -> exited: %.3f (%.1fx faster)\n",
               fork_f.total_mean / exec_f.total_mean, exec_f.total_mean / fork_f.total_mean);
        if (have_small)
            printf("  small runner / fork server, mean start -> exited: %.3f (%.1fx faster)\n",
                   small_f.total_mean / fork_f.total_mean, fork_f.total_mean / small_f.total_mean);
        else
            printf("  small runner: not measured (no %s of this build; make build/tessera-runner)\n",
                   small);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
