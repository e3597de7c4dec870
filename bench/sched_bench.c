/*
 * sched_bench.c - the scheduler's throughput and dispatch latency on a
 * 10,000-job DAG of noop jobs (100 branches x 100 jobs, plus a cross-branch
 * edge every 10th job), run by `tessera run` through the real engine, store
 * and executor; and, in the same run, the same DAG as a Makefile of `true`
 * recipes under `make -j$(nproc)`, as the baseline.
 *
 *   build/bench/sched_bench BUILD/tessera [BRANCHES [JOBS_PER_BRANCH [CPUS]]]
 *
 * CPUS (default: the online CPUs) is both make's -j and tessera's
 * --concurrency-limit.
 *
 * Prints jobs/s for both, their ratio, and the latency from a job's last
 * predecessor's runner ending to its own runner beginning (p50, p99, max),
 * read from the attempts' exit markers (their runner-reported started_at
 * and finished_at). The local executor's runners say their exit on the
 * progress pipe, not in a file (protocol.h), so the latency comes from a
 * second run of the same DAG with TESSERA_EXIT_MARKER_FILES=1: the runners
 * then leave the files as on Slurm, which costs them a file each, so that
 * run's latency is an upper bound of the first's; its time is printed too.
 * (A tessera from before the pipe leaves the files in both runs.) The
 * state directory is made under $TMPDIR (default /tmp); its file system is
 * printed, as file creation costs differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/resource.h>
#include <sys/vfs.h>

#include "exec/protocol.h"
#include "store/store.h"
#include "util/layout.h"
#include "util/util.h"

/* Runs argv in dir, with env ("NAME=value") if not NULL, and waits; *cpu_s
 * (if not NULL) gets the CPU time (user + system) of it and every
 * descendant it waited for - for tessera run, the runners and the fork
 * server too: a figure the machine's load changes far less than the wall
 * time. */
static int run_cmd_cpu(char *const argv[], const char *dir, const char *env, double *cpu_s) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (dir && chdir(dir) != 0) _exit(126);
        if (env && putenv((char *)env) != 0) _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    wait4(pid, &status, 0, &ru);
    if (cpu_s)
        *cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int run_cmd(char *const argv[], const char *dir) {
    return run_cmd_cpu(argv, dir, NULL, NULL);
}

/* Job (b, k) depends on (b, k-1) through its branch, and every 10th job also
 * on the previous job of the next branch. */
static int cross_dep(int b, int k, int branches) {
    return (k > 0 && k % 10 == 0) ? (b + 1) % branches : -1;
}

static void write_workflow(const char *path, int branches, int per) {
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"name\": \"bench %dx%d\", \"jobs\": [", branches, per);
    for (int k = 0; k < per; k++)
        for (int b = 0; b < branches; b++) {
            fprintf(f, "%s{\"job_id\": \"j%d_%d\", \"job_type\": \"noop\", \"branch\": \"b%d\"",
                    (k || b) ? ",\n" : "", b, k, b);
            int c = cross_dep(b, k, branches);
            if (c >= 0) fprintf(f, ", \"depends_on\": [\"j%d_%d\"]", c, k - 1);
            fputc('}', f);
        }
    fputs("]}\n", f);
    fclose(f);
}

static void write_makefile(const char *path, int branches, int per) {
    FILE *f = fopen(path, "w");
    fputs("all:", f);
    for (int b = 0; b < branches; b++) fprintf(f, " j%d_%d", b, per - 1);
    fputs("\n", f);
    for (int k = 0; k < per; k++)
        for (int b = 0; b < branches; b++) {
            fprintf(f, "j%d_%d:", b, k);
            if (k > 0) fprintf(f, " j%d_%d", b, k - 1);
            int c = cross_dep(b, k, branches);
            if (c >= 0) fprintf(f, " j%d_%d", c, k - 1);
            fputs("\n\t@true\n", f);
        }
    fputs(".PHONY: all", f);
    for (int k = 0; k < per; k++)
        for (int b = 0; b < branches; b++) fprintf(f, " j%d_%d", b, k);
    fputs("\n", f);
    fclose(f);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The runner-reported times of a job's last attempt, from its exit marker
 * (protocol.h): when the runner process began and when it finished. */
static int marker_times(const char *state, int64_t wf, const store_job *j, double *began,
                        double *ended) {
    char *work = layout_work_dir(state, wf, j->job_id);
    proto_exit e;
    char err[TS_ERRLEN];
    int rc = proto_exit_read(work, j->attempt, &e, err, sizeof(err));
    free(work);
    if (rc != TS_OK || e.started_at <= 0) return -1;
    *began = e.started_at;
    *ended = e.finished_at;
    return 0;
}

/* Dependency-to-start latency per job with predecessors: from the moment
 * the last of its predecessors' runners ended (the finished_at of its exit
 * marker, the runner's last timestamp before it exits) to the moment its
 * own runner began (the marker's started_at, the runner's first step). So
 * it holds the whole path: the predecessor's exit, its reaping, the store
 * commit, the work dir, spec and log, the fork and the runner's start.
 * (The store's started_at is written in the same commit as the
 * predecessor's end and holds none of it.) Jobs without predecessors are
 * left out. */
static int latencies(const char *state, const char *db, double *p50, double *p99, double *max,
                     size_t *n_out) {
    store *st = NULL;
    store_workflow *wf = NULL;
    char err[TS_ERRLEN];
    if (store_open(db, &st, err, sizeof(err)) != TS_OK ||
        store_workflow_get(st, 1, NULL, &wf, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "sched_bench: %s\n", err);
        store_close(st);
        return -1;
    }
    double *began = ts_malloc(wf->n_jobs * sizeof(double));
    double *ended = ts_malloc(wf->n_jobs * sizeof(double));
    double *lat = ts_malloc(wf->n_jobs * sizeof(double));
    int rc = 0;
    for (size_t i = 0; i < wf->n_jobs && rc == 0; i++)
        if (marker_times(state, wf->id, &wf->jobs[i], &began[i], &ended[i]) != 0) {
            rc = -1;
        }
    const spec_dag *d = &wf->spec->dag;
    size_t n = 0;
    for (size_t i = 0; i < wf->n_jobs && rc == 0; i++) {
        if (d->pred_start[i] == d->pred_start[i + 1]) continue;
        double ready = 0;
        for (uint32_t k = d->pred_start[i]; k < d->pred_start[i + 1]; k++)
            if (ended[d->pred[k]] > ready) ready = ended[d->pred[k]];
        lat[n++] = began[i] - ready;
    }
    qsort(lat, n, sizeof(double), cmp_double);
    *p50 = n ? lat[n / 2] : 0;
    *p99 = n ? lat[(size_t)((double)n * 0.99)] : 0;
    *max = n ? lat[n - 1] : 0;
    *n_out = n;
    free(lat);
    free(began);
    free(ended);
    store_workflow_free(wf);
    store_close(st);
    return rc;
}

/* The file system type of path, by name where known, for the report:
 * creating files costs very different CPU on tmpfs and ext4. */
static const char *fs_name(const char *path) {
    struct statfs sf;
    if (statfs(path, &sf) != 0) return "?";
    switch ((unsigned long)sf.f_type) {
    case 0x01021994UL: return "tmpfs";
    case 0xEF53UL: return "ext2/3/4";
    case 0x58465342UL: return "xfs";
    case 0x9123683EUL: return "btrfs";
    case 0x794C7630UL: return "overlayfs";
    default: return "other";
    }
}

/* Prints what the run's log says against the fork servers (layout.h's
 * tessera.log): a tessera-runner from another build, say, which makes every
 * job fork from tessera, a slower path this bench must not pass off as
 * the configured one (a stale build did once). */
static void print_server_warnings(const char *state) {
    char *path = layout_file_path(state, LAYOUT_LOG);
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL) return;
    char line[2048];
    while (fgets(line, sizeof(line), f))
        if (strstr(line, "\"level\":\"warn") &&
            (strstr(line, "tessera-runner") || strstr(line, "fork server")))
            printf("  WARNING from the run's log: %s", line);
    fclose(f);
}

typedef struct scenario {
    const char *label;
    int branches, per;
} scenario;

/* Runs one DAG through make -j and tessera run and prints the figures. Its
 * state is left in dir (made here, 200 bytes) for the caller to remove once
 * every scenario has run: on ext4, an inode freed in the last minutes is
 * skipped by the allocator after a lookup in the inode table
 * (recently_deleted), so removing the DAG's ~10,000 files right before the
 * chain made every mkdir and create of the chain slower - perf put 41% of the
 * scheduler's CPU there - and its dispatch latency was the file system's. */
static int run_scenario(const char *tessera, const scenario *sc, long cpus, char *dir) {
    int jobs = sc->branches * sc->per;
    const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, 200, "%s/tessera-bench.XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    char wf_path[256], mk_path[256], state[256], files_state[256], files_db[300], limit[32],
        jflag[32];
    snprintf(wf_path, sizeof(wf_path), "%s/dag.json", dir);
    snprintf(mk_path, sizeof(mk_path), "%s/dag.mk", dir);
    snprintf(state, sizeof(state), "%s/var", dir);
    snprintf(files_state, sizeof(files_state), "%s/var-files", dir);
    snprintf(files_db, sizeof(files_db), "%s/tessera.db", files_state);
    snprintf(limit, sizeof(limit), "%ld", cpus);
    snprintf(jflag, sizeof(jflag), "-j%ld", cpus);
    write_workflow(wf_path, sc->branches, sc->per);
    write_makefile(mk_path, sc->branches, sc->per);

    printf("%s: %d noop jobs (%d branch%s x %d), %ld cpus, state in %s (%s)\n", sc->label, jobs,
           sc->branches, sc->branches == 1 ? "" : "es", sc->per, cpus, dir, fs_name(dir));
    char *make_argv[] = {"make", "-s", jflag, "-f", mk_path, "all", NULL};
    double t0 = ts_monotonic(), make_cpu = 0, run_cpu = 0;
    int make_rc = run_cmd_cpu(make_argv, dir, NULL, &make_cpu);
    double make_s = ts_monotonic() - t0;

    char *run_argv[] = {(char *)tessera, "run", wf_path, "--user", "bench", "--state-dir", state,
                        "--concurrency-limit", limit, "--quiet", NULL};
    t0 = ts_monotonic();
    int run_rc = run_cmd_cpu(run_argv, dir, NULL, &run_cpu);
    double run_s = ts_monotonic() - t0;
    /* The same DAG again, its runners leaving exit files: the latency's. */
    char *files_argv[] = {(char *)tessera, "run", wf_path, "--user", "bench", "--state-dir",
                          files_state, "--concurrency-limit", limit, "--quiet", NULL};
    double files_cpu = 0;
    t0 = ts_monotonic();
    int files_rc = run_cmd_cpu(files_argv, dir, "TESSERA_EXIT_MARKER_FILES=1", &files_cpu);
    double files_s = ts_monotonic() - t0;
    if (run_rc != 0 || files_rc != 0 || make_rc != 0) {
        fprintf(stderr,
                "sched_bench: tessera run exit %d and %d, make exit %d (state kept in %s)\n",
                run_rc, files_rc, make_rc, dir);
        return 1;
    }
    print_server_warnings(state);
    print_server_warnings(files_state);
    double p50, p99, max;
    size_t n;
    int have_latency = latencies(files_state, files_db, &p50, &p99, &max, &n) == 0;
    printf("  make %-4s (baseline): %8.2f s  %8.0f jobs/s  cpu %6.2f s\n", jflag, make_s,
           jobs / make_s, make_cpu);
    printf("  tessera run:          %8.2f s  %8.0f jobs/s  cpu %6.2f s  (%.2fx make's time, "
           "%.2fx its cpu)\n",
           run_s, jobs / run_s, run_cpu, run_s / make_s, run_cpu / make_cpu);
    printf("  tessera run, exit files: %5.2f s  %8.0f jobs/s  cpu %6.2f s  (%.2fx make's time)\n",
           files_s, jobs / files_s, files_cpu, files_s / make_s);
    if (have_latency)
        printf("  latency last predecessor's runner ended -> runner began (the run with exit "
               "files), %zu jobs: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
               n, p50 * 1e3, p99 * 1e3, max * 1e3);
    else /* a runner from before the markers said started_at */
        printf("  latency: not measured (the exit markers carry no started_at)\n");
    return 0;
}

static void remove_dir(const char *dir) {
    if (!dir[0]) return;
    char *rm_argv[] = {"rm", "-rf", (char *)dir, NULL};
    run_cmd(rm_argv, NULL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sched_bench TESSERA_BINARY [BRANCHES [JOBS_PER_BRANCH [CPUS]]]\n");
        return 2;
    }
    char tessera[4096];
    if (!realpath(argv[1], tessera)) {
        perror(argv[1]);
        return 2;
    }
    long cpus = argc > 4 ? atol(argv[4]) : sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    scenario wide = {"DAG", argc > 2 ? atoi(argv[2]) : 100, argc > 3 ? atoi(argv[3]) : 100};
    /* A chain never waits for a slot: its latency is pure dispatch cost. */
    scenario chain = {"chain", 1, argc > 2 ? wide.branches * wide.per / 10 : 1000};
    printf("(latency in the DAG includes waiting for a free slot: %d branches share %ld cpus;\n"
           " the chain has one job ready at a time, so its latency is the dispatch cost alone)\n",
           wide.branches, cpus);
    char wide_dir[200] = "", chain_dir[200] = "";
    int rc = run_scenario(tessera, &wide, cpus, wide_dir);
    if (rc == 0) rc = run_scenario(tessera, &chain, cpus, chain_dir);
    if (rc == 0) { /* a failed run's state is kept to be looked at */
        remove_dir(wide_dir);
        remove_dir(chain_dir);
    }
    return rc;
}
