/*
 * fuzz_spec.c - the workflow spec parser (src/core/spec*.c) on arbitrary
 * JSON text, with the job-type check the service uses (jobs_check, every
 * built-in type and the admin tools of fuzz_lib.h; no image checks here:
 * fuzz_path covers them).
 *
 * Oracles beyond the sanitizers:
 *   - a refusal is 400 or 422 with a message and field that are valid
 *     UTF-8 (they go into JSON replies) and a message that is not empty;
 *   - an accepted workflow obeys spec.h's rules: 1..max_jobs jobs, ids and
 *     branches of the safe charset, unique ids, cpus within the limit;
 *   - its DAG is consistent: CSR bounds, every edge in both directions
 *     once, no self-loop, acyclic, branch edges and explicit depends_on
 *     present;
 *   - spec_to_json then spec_from_json gives the same document back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/spec.h"
#include "fuzz_lib.h"
#include "jobs/jobs.h"

#define MAX_JOBS 200
#define MAX_CPUS 16

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    fuzz_load_tools();
    return 0;
}

static bool id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static bool id_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > SPEC_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(s[i])) return false;
    return true;
}

/* Is there an edge from p to i among i's predecessors? */
static bool has_pred(const spec_dag *d, size_t i, uint32_t p) {
    for (uint32_t k = d->pred_start[i]; k < d->pred_start[i + 1]; k++)
        if (d->pred[k] == p) return true;
    return false;
}

static bool has_succ(const spec_dag *d, size_t i, uint32_t s) {
    for (uint32_t k = d->succ_start[i]; k < d->succ_start[i + 1]; k++)
        if (d->succ[k] == s) return true;
    return false;
}

/* CSR arrays well formed: starts at 0, never decreasing, in bounds. */
static void check_csr(const uint32_t *start, const uint32_t *idx, size_t n, const char *what) {
    FUZZ_CHECK(start[0] == 0, "%s_start[0] = %u", what, start[0]);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(start[i] <= start[i + 1], "%s_start decreases at %zu", what, i);
        for (uint32_t k = start[i]; k < start[i + 1]; k++) {
            FUZZ_CHECK(idx[k] < n, "%s of %zu out of range: %u", what, i, idx[k]);
            FUZZ_CHECK(idx[k] != i, "self-loop at job %zu", i);
            for (uint32_t m = start[i]; m < k; m++)
                FUZZ_CHECK(idx[m] != idx[k], "duplicate %s edge %zu-%u", what, i, idx[k]);
        }
    }
}

/* Kahn's algorithm over the predecessor lists: every job gets scheduled. */
static void check_acyclic(const spec_dag *d) {
    size_t n = d->n, done = 0, head = 0;
    uint32_t *indeg = calloc(n, sizeof(*indeg)), *queue = calloc(n, sizeof(*queue));
    for (size_t i = 0; i < n; i++) indeg[i] = d->pred_start[i + 1] - d->pred_start[i];
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0) queue[done++] = (uint32_t)i;
    while (head < done) {
        uint32_t j = queue[head++];
        for (uint32_t k = d->succ_start[j]; k < d->succ_start[j + 1]; k++)
            if (--indeg[d->succ[k]] == 0) queue[done++] = d->succ[k];
    }
    FUZZ_CHECK(done == n, "accepted a cyclic graph: %zu of %zu jobs orderable", done, n);
    free(indeg);
    free(queue);
}

static void check_dag(const spec_workflow *wf) {
    const spec_dag *d = &wf->dag;
    FUZZ_CHECK(d->n == wf->n_jobs, "dag.n %zu != n_jobs %zu", d->n, wf->n_jobs);
    check_csr(d->pred_start, d->pred, d->n, "pred");
    check_csr(d->succ_start, d->succ, d->n, "succ");
    FUZZ_CHECK(d->pred_start[d->n] == d->succ_start[d->n], "edge counts differ");
    for (size_t i = 0; i < d->n; i++)
        for (uint32_t k = d->pred_start[i]; k < d->pred_start[i + 1]; k++)
            FUZZ_CHECK(has_succ(d, d->pred[k], (uint32_t)i), "edge %u->%zu one-sided", d->pred[k], i);
    check_acyclic(d);
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const spec_job *j = &wf->jobs[i];
        int32_t prev = d->branch_prev[i];
        int32_t want = -1;
        for (size_t p = 0; p < i; p++)
            if (strcmp(wf->jobs[p].branch, j->branch) == 0) want = (int32_t)p;
        FUZZ_CHECK(prev == want, "branch_prev[%zu] = %d, want %d", i, prev, want);
        if (prev >= 0) FUZZ_CHECK(has_pred(d, i, (uint32_t)prev), "branch edge missing at %zu", i);
        for (size_t k = 0; k < j->n_depends_on; k++) {
            int p = spec_find_job(wf, j->depends_on[k]);
            FUZZ_CHECK(p >= 0 && (size_t)p != i, "depends_on %s not a job", j->depends_on[k]);
            FUZZ_CHECK(has_pred(d, i, (uint32_t)p), "depends_on edge missing at %zu", i);
        }
    }
}

static void check_jobs(const spec_workflow *wf) {
    FUZZ_CHECK(wf->n_jobs >= 1 && wf->n_jobs <= MAX_JOBS, "n_jobs %zu", wf->n_jobs);
    FUZZ_CHECK(wf->name && wf->name[0], "empty name accepted");
    FUZZ_CHECK(wf->priority >= -1000 && wf->priority <= 1000, "priority %d", wf->priority);
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const spec_job *j = &wf->jobs[i];
        FUZZ_CHECK(id_valid(j->job_id), "job_id \"%s\" accepted", j->job_id);
        FUZZ_CHECK(id_valid(j->branch), "branch \"%s\" accepted", j->branch);
        FUZZ_CHECK(spec_find_job(wf, j->job_id) == (int)i, "job_id %s not unique", j->job_id);
        FUZZ_CHECK(jobs_find(j->job_type) != NULL, "unknown job_type %s accepted", j->job_type);
        FUZZ_CHECK(j->cpus >= 1 && j->cpus <= MAX_CPUS, "cpus %d", j->cpus);
        FUZZ_CHECK(j->timeout_s >= 0 && j->max_retries >= 0 && j->retry_delay_s >= 0,
                   "negative limits accepted");
        FUZZ_CHECK(json_is_object(j->params), "params not an object");
    }
}

/* spec_to_json is the normal form: parsing it again changes nothing. */
static void check_round_trip(const spec_workflow *wf, const spec_limits *lim) {
    json_t *first = spec_to_json(wf);
    FUZZ_CHECK(first != NULL, "spec_to_json failed");
    spec_workflow *again = NULL;
    spec_error se;
    int rc = spec_from_json(first, lim, jobs_check, NULL, &again, &se);
    FUZZ_CHECK(rc == 0, "normal form refused: %s", se.message);
    json_t *second = spec_to_json(again);
    FUZZ_CHECK(json_equal(first, second), "normal form changed on a second parse");
    json_decref(first);
    json_decref(second);
    spec_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_jobs = MAX_JOBS;
    lim.max_cpus = MAX_CPUS;
    spec_workflow *wf = NULL;
    spec_error se;
    memset(&se, 0, sizeof(se));
    if (spec_parse((const char *)data, size, &lim, jobs_check, NULL, &wf, &se) != 0) {
        FUZZ_CHECK(se.http_status == 400 || se.http_status == 422, "status %d", se.http_status);
        FUZZ_CHECK(se.message[0] != '\0', "empty message");
        json_t *m = json_pack("{ss ss ss}", "message", se.message, "field", se.field, "job_id",
                              se.job_id);
        FUZZ_CHECK(m != NULL, "message, field or job_id not valid UTF-8: %s", se.message);
        json_decref(m);
        return 0;
    }
    check_jobs(wf);
    check_dag(wf);
    check_round_trip(wf, &lim);
    spec_free(wf);
    return 0;
}
