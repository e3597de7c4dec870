/*
 * start_bench.c - what starting one job's runner costs: the local executor
 * exec'ing `run-job` for each job against forking it from the fork server
 * (src/exec/forkserver.h), in the same run, on noop jobs one at a time.
 *
 *   build/bench/start_bench [JOBS]
 *
 * This binary is its own runner (it answers `run-job SPEC` and
 * `fork-server` like tessera does, and links the same libraries), so both
 * ways run the very same code. Prints, per way, the time start() blocks
 * the scheduler and the time from start() to the EXITED event (p50, p99,
 * mean), and the ratio of the means.
 */
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

/* Runs n noop jobs one after another; fork_server: 0 = exec each. */
static int run_way(const char *self, const char *dir, int n, int fork_server, figures *out) {
    char err[TS_ERRLEN];
    if (!fork_server) setenv("TESSERA_FORK_SERVER", "0", 1);
    executor *ex = exec_local_new(self, 1.0, 0, err, sizeof(err));
    unsetenv("TESSERA_FORK_SERVER");
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
        snprintf(work, sizeof(work), "%s/%s/work/job-%d", dir, fork_server ? "fork" : "exec", i);
        snprintf(result, sizeof(result), "%s/%s/results/job-%d", dir, fork_server ? "fork" : "exec",
                 i);
        snprintf(id, sizeof(id), "j%d", i);
        exec_job job = {.workflow_id = 1, .job_index = i, .attempt = 1, .job_id = id,
                        .job_type = "noop", .cpus = 1, .work_dir = work, .result_dir = result};
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
    figures exec_f, fork_f;
    printf("runner start cost, %d noop jobs one at a time, same binary both ways:\n", n);
    int rc = run_way(self, dir, n, 0, &exec_f) || run_way(self, dir, n, 1, &fork_f);
    if (rc == 0) {
        print_way("exec", &exec_f);
        print_way("fork server", &fork_f);
        printf("  fork server / exec, mean start -> exited: %.3f (%.1fx faster)\n",
               fork_f.total_mean / exec_f.total_mean, exec_f.total_mean / fork_f.total_mean);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
