/*
 * view_bench.c - what rendering a large workflow's GET costs (issue 16),
 * part by part, in one run: a workflow of N jobs (default 10,000) is
 * stored in a fresh SQLite database under DIR, admitted, and half of its
 * jobs made ready; then, R times each (median reported):
 *
 *   load       store_workflow_get (the row, the parsed spec, N job rows); the
 *              first round's also parses the stored spec (a handle's first read)
 *   attempts   store_attempts of the whole workflow
 *   jansson    view_workflow_page + view_put_attempts + json_dumps, the way
 *              every GET rendered before
 *   text       view_workflow_text, the same bytes written straight
 *   summary    store_workflow_summary: the compact form's read (row + job
 *              counts) against load
 *   stamp      store_workflow_stamp_get: what a GET served from the view
 *              cache reads instead of all the above
 *
 *   build/bench/view_bench [N [R [DIR]]]
 *
 * Prints each part in ms and the ratios jansson/text and load/summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/spec.h"
#include "store/store.h"
#include "util/util.h"
#include "view/view.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

/* A workflow of n independent noop jobs, 20 branches. */
static char *spec_text(int n) {
    size_t cap = 64 + (size_t)n * 80, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{\"name\":\"big\",\"jobs\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"job_id\":\"j%d\",\"job_type\":\"noop\",\"branch\":\"b%d\"}",
                                i ? "," : "", i, i % 20);
    snprintf(s + len, cap - len, "]}");
    return s;
}

/* Stores the workflow, admits it, makes every other job ready. */
static int64_t prepare(store *st, int n) {
    char err[TS_ERRLEN];
    char *text = spec_text(n);
    spec_workflow *spec = NULL;
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_jobs = (size_t)n;
    spec_error se;
    int64_t id = 0;
    if (spec_parse(text, strlen(text), &lim, NULL, NULL, &spec, &se) != 0 ||
        store_submit(st, "bench", spec, ts_now(), &id, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "view_bench: cannot store the workflow: %s\n", se.message);
        exit(1);
    }
    core_change ch = {.kind = CHANGE_WORKFLOW, .workflow_id = id, .job_index = -1,
                      .from = WF_QUEUED, .to = WF_RUNNING, .at = ts_now(), .exit_code = -1};
    if (store_admit(st, &ch, 10, err, sizeof(err)) != TS_OK ||
        store_begin(st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "view_bench: %s\n", err);
        exit(1);
    }
    for (int i = 0; i < n; i += 2) {
        core_change r = {.kind = CHANGE_JOB, .workflow_id = id, .job_index = i,
                         .job_id = spec->jobs[i].job_id, .from = JOB_PENDING, .to = JOB_READY,
                         .cpus = 1, .at = ts_now(), .exit_code = -1};
        if (store_apply(st, &r, NULL, err, sizeof(err)) != TS_OK) {
            fprintf(stderr, "view_bench: %s\n", err);
            exit(1);
        }
    }
    if (store_commit(st, err, sizeof(err)) != TS_OK) exit(1);
    spec_free(spec);
    free(text);
    return id;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000, rounds = argc > 2 ? atoi(argv[2]) : 15;
    const char *parent = argc > 3 ? argv[3] : ".";
    char dir[4096], db[4200], err[TS_ERRLEN];
    snprintf(dir, sizeof(dir), "%s/view-bench-XXXXXX", parent);
    if (n < 1 || rounds < 1 || !mkdtemp(dir)) {
        fprintf(stderr, "usage: view_bench [N [R [DIR]]]\n");
        return 2;
    }
    snprintf(db, sizeof(db), "%s/tessera.db", dir);
    store *st = NULL;
    if (store_open(db, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "view_bench: %s\n", err);
        return 1;
    }
    int64_t id = prepare(st, n);
    double *t[6];
    for (int k = 0; k < 6; k++) t[k] = calloc((size_t)rounds, sizeof(double));
    size_t bytes = 0;
    bool same = true;
    store_queue_stats stats;
    store_queue_stats_get(st, &stats, err, sizeof(err));
    view_limits lim = {3, 4};
    for (int r = 0; r < rounds; r++) {
        store_workflow *wf = NULL, *row = NULL;
        store_attempt *a = NULL;
        size_t na = 0, len = 0, counts[JOB_STATE_COUNT];
        store_workflow_stamp stamp;
        double now = ts_now(), t0 = ts_monotonic();
        store_workflow_get(st, id, "bench", &wf, err, sizeof(err));
        double t1 = ts_monotonic();
        store_attempts(st, id, -1, &a, &na, err, sizeof(err));
        double t2 = ts_monotonic();
        json_t *v = view_workflow_page(wf, &stats, &lim, now, VIEW_ALL_JOBS);
        view_put_attempts(v, a, na);
        char *dumped = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        double t3 = ts_monotonic();
        char *written = view_workflow_text(wf, a, na, &stats, &lim, now, VIEW_ALL_JOBS, &len);
        double t4 = ts_monotonic();
        store_workflow_summary(st, id, "bench", &row, counts, err, sizeof(err));
        double t5 = ts_monotonic();
        store_workflow_stamp_get(st, id, "bench", STORE_STAMP_RUNNING_CPUS, &stamp, err,
                                 sizeof(err));
        double t6 = ts_monotonic();
        double d[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5};
        for (int k = 0; k < 6; k++) t[k][r] = d[k] * 1e3;
        same = same && dumped && written && strcmp(dumped, written) == 0;
        bytes = len;
        free(dumped);
        free(written);
        free(a);
        store_workflow_free(wf);
        store_workflow_free(row);
    }
    static const char *const names[] = {"load (store_workflow_get)", "attempts",
                                        "jansson view + json_dumps", "view_workflow_text",
                                        "summary (row + counts)", "stamp"};
    double m[6], cold = t[0][0];
    printf("view_bench: %d jobs (%zu bytes of JSON), median of %d rounds, SQLite in %s\n", n,
           bytes, rounds, dir);
    printf("  %-28s %9.3f ms\n", "first load (spec parsed)", cold);
    for (int k = 0; k < 6; k++) {
        m[k] = median(t[k], rounds);
        printf("  %-28s %9.3f ms\n", names[k], m[k]);
        free(t[k]);
    }
    printf("  jansson / text: %.1fx (same bytes: %s); load / summary: %.1fx;"
           " whole render (load + attempts + text) / stamp: %.0fx\n",
           m[2] / m[3], same ? "yes" : "NO", m[0] / m[4], (m[0] + m[1] + m[3]) / m[5]);
    store_close(st);
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "view_bench: could not remove %s\n", dir);
    return same ? 0 : 1;
}
