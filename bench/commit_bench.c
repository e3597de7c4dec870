/*
 * commit_bench.c - what "acknowledged means on stable storage" costs
 * (issue 12, defect 9). The SQLite store commits with synchronous=FULL: a
 * submit returns only after the WAL has been fsynced. This benchmark stores
 * N workflows of 10 jobs through store_submit (one transaction each, as a
 * POST does) in two places in the same run:
 *
 *   - DIR (default: a new directory under the current one): a real disk,
 *     where every commit waits for fsync;
 *   - /dev/shm: tmpfs, where fsync returns at once - the same code with
 *     durability free, i.e. what synchronous=NORMAL would cost at most.
 *
 * and, as the floor, the raw latency of write + fdatasync of 4 KiB in DIR;
 * then the same N submits on the disk from THREADS threads (default 16),
 * each with its own handle, sharing one store_batcher as an HTTP worker's
 * request threads do (group commit: one transaction and one fsync for the
 * submissions queued meanwhile, each still answered only after it).
 *
 *   build/bench/commit_bench [N [DIR [THREADS]]]
 *
 * Prints submits/s and per-submit latency (p50, p99) for each, the ratios,
 * the fdatasync latency and how many submissions a group commit held.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
#include "store/store.h"
#include "util/util.h"

static const char *WF =
    "{\"name\":\"bench\",\"jobs\":["
    "{\"job_id\":\"a0\",\"job_type\":\"noop\"},{\"job_id\":\"a1\",\"job_type\":\"noop\"},"
    "{\"job_id\":\"a2\",\"job_type\":\"noop\"},{\"job_id\":\"a3\",\"job_type\":\"noop\"},"
    "{\"job_id\":\"a4\",\"job_type\":\"noop\"},"
    "{\"job_id\":\"b0\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"b1\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"b2\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"b3\",\"job_type\":\"noop\",\"branch\":\"b\"},"
    "{\"job_id\":\"b4\",\"job_type\":\"noop\",\"branch\":\"b\",\"depends_on\":[\"a4\"]}]}";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct figures {
    double per_s, p50_ms, p99_ms;
} figures;

/* Submits n workflows into a new database in dir; 0 on success. */
static int run_submits(const char *dir, const spec_workflow *wf, int n, figures *out) {
    char path[4096], err[TS_ERRLEN];
    snprintf(path, sizeof(path), "%s/commit-bench-%d.db", dir, (int)getpid());
    store *st = NULL;
    if (store_open(path, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "commit_bench: %s\n", err);
        return -1;
    }
    double *lat = calloc((size_t)n, sizeof(double));
    double t0 = ts_monotonic();
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t id;
        double s = ts_monotonic();
        if (store_submit(st, "bench", wf, ts_now(), &id, err, sizeof(err)) != TS_OK) {
            fprintf(stderr, "commit_bench: submit: %s\n", err);
            rc = -1;
        }
        lat[i] = (ts_monotonic() - s) * 1000.0;
    }
    double wall = ts_monotonic() - t0;
    store_close(st);
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    *out = (figures){n / wall, lat[n / 2], lat[(int)(n * 0.99)]};
    free(lat);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[4200];
        snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
        unlink(f);
    }
    return rc;
}

typedef struct grouped_thread {
    const char *path;
    const spec_workflow *wf;
    store_batcher *b;
    int n;
    double *lat; /* n entries, ms */
    int rc;
    pthread_t t;
} grouped_thread;

static void *grouped_main(void *arg) {
    grouped_thread *g = arg;
    char err[TS_ERRLEN];
    store *st = NULL;
    g->rc = store_open_existing(g->path, &st, err, sizeof(err));
    if (g->rc == TS_OK) store_set_batcher(st, g->b);
    for (int i = 0; i < g->n && g->rc == TS_OK; i++) {
        int64_t id;
        double s = ts_monotonic();
        g->rc = store_submit(st, "bench", g->wf, ts_now(), &id, err, sizeof(err));
        g->lat[i] = (ts_monotonic() - s) * 1000.0;
    }
    if (g->rc != TS_OK) fprintf(stderr, "commit_bench: grouped submit: %s\n", err);
    store_close(st);
    return NULL;
}

/* n submits into a new database in dir from `threads` threads sharing a
 * batcher; *per_commit = submissions per commit on average. */
static int run_grouped(const char *dir, const spec_workflow *wf, int n, int threads,
                       figures *out, double *per_commit) {
    char path[4096], err[TS_ERRLEN];
    snprintf(path, sizeof(path), "%s/commit-bench-g%d.db", dir, (int)getpid());
    store *creator = NULL;
    if (store_open(path, &creator, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "commit_bench: %s\n", err);
        return -1;
    }
    store_batcher *b = store_batcher_new(64);
    grouped_thread *g = calloc((size_t)threads, sizeof(*g));
    double *lat = calloc((size_t)n, sizeof(double));
    int each = n / threads, rc = 0, started = 0;
    double t0 = ts_monotonic();
    for (int i = 0; i < threads; i++) {
        g[i] = (grouped_thread){path, wf, b, each, lat + i * each, 0, 0};
        if (pthread_create(&g[i].t, NULL, grouped_main, &g[i]) != 0) break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(g[i].t, NULL);
        if (g[i].rc != TS_OK) rc = -1;
    }
    double wall = ts_monotonic() - t0;
    if (started < threads) rc = -1;
    int done = each * threads;
    qsort(lat, (size_t)done, sizeof(double), cmp_double);
    *out = (figures){done / wall, lat[done / 2], lat[(int)(done * 0.99)]};
    store_batcher_stats bs;
    store_batcher_stats_get(b, &bs);
    *per_commit = bs.commits ? (double)bs.submissions / (double)bs.commits : 0;
    store_close(creator);
    store_batcher_free(b);
    free(g);
    free(lat);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[4200];
        snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
        unlink(f);
    }
    return rc;
}

/* p50 of write + fdatasync of 4 KiB, n times, in dir. */
static double fdatasync_p50_ms(const char *dir, int n) {
    char path[4096], buf[4096];
    memset(buf, 'x', sizeof(buf));
    snprintf(path, sizeof(path), "%s/commit-bench-%d.raw", dir, (int)getpid());
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    if (fd < 0) return -1;
    double *lat = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double s = ts_monotonic();
        if (pwrite(fd, buf, sizeof(buf), (off_t)i * 4096) < 0 || fdatasync(fd) != 0) break;
        lat[i] = (ts_monotonic() - s) * 1000.0;
    }
    close(fd);
    unlink(path);
    qsort(lat, (size_t)n, sizeof(double), cmp_double);
    double p = lat[n / 2];
    free(lat);
    return p;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 500;
    const char *dir = argc > 2 ? argv[2] : ".";
    int threads = argc > 3 ? atoi(argv[3]) : 16;
    if (n < 10) n = 10;
    if (threads < 1 || threads > n) threads = 1;
    spec_limits lim;
    spec_limits_default(&lim);
    spec_workflow *wf = NULL;
    spec_error perr;
    if (spec_parse(WF, strlen(WF), &lim, NULL, NULL, &wf, &perr) != 0) {
        fprintf(stderr, "commit_bench: the bench workflow does not parse\n");
        return 1;
    }
    figures disk, shm, grouped;
    double per_commit = 0;
    if (run_submits(dir, wf, n, &disk) != 0 || run_submits("/dev/shm", wf, n, &shm) != 0 ||
        run_grouped(dir, wf, n, threads, &grouped, &per_commit) != 0) {
        spec_free(wf);
        return 1;
    }
    spec_free(wf);
    printf("commit_bench: %d submits of a 10-job workflow, one transaction each\n", n);
    printf("  %-28s %8.0f submits/s  p50 %6.2f ms  p99 %6.2f ms\n", "disk (synchronous=FULL)",
           disk.per_s, disk.p50_ms, disk.p99_ms);
    printf("  %-28s %8.0f submits/s  p50 %6.2f ms  p99 %6.2f ms\n", "tmpfs (fsync free)", shm.per_s,
           shm.p50_ms, shm.p99_ms);
    printf("  durability costs %.2fx in submits/s; raw write+fdatasync p50 here %.2f ms\n",
           shm.per_s / disk.per_s, fdatasync_p50_ms(dir, 200));
    char label[64];
    snprintf(label, sizeof(label), "disk, %d threads, grouped", threads);
    printf("  %-28s %8.0f submits/s  p50 %6.2f ms  p99 %6.2f ms\n", label, grouped.per_s,
           grouped.p50_ms, grouped.p99_ms);
    printf("  group commit: %.1f submissions per commit, %.2fx the one-by-one disk figure\n",
           per_commit, grouped.per_s / disk.per_s);
    return 0;
}
