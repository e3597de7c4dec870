/*
 * spec_dag.c - the dependency graph of a workflow: depends_on resolved to
 * jobs, the implicit branch edges added, CSR form, and cycle detection.
 *
 * Everything here is O(V + E) except one sort of the jobs by branch
 * (O(V log V)), and nothing recurses: a 10,000-job branch is a 10,000-deep
 * chain, which must not cost 10,000 C stack frames.
 */
#include "core/spec_internal.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* How much of a long cycle the message lists before eliding the middle; the
 * whole message must fit spec_error.message with room for the job prefix. */
#define CYCLE_TEXT_BUDGET 280

typedef struct branch_entry {
    const char *branch;
    uint32_t job;
} branch_entry;

static int branch_entry_cmp(const void *a, const void *b) {
    const branch_entry *x = a, *y = b;
    int c = strcmp(x->branch, y->branch);
    if (c != 0) return c;
    return (x->job > y->job) - (x->job < y->job);
}

/* Sets branch_prev[i] to the job listed just before i in i's branch, or -1.
 * Sorting (branch, index) pairs puts each branch's jobs together in listed
 * order, which avoids a hash of branch names and stays O(n log n). */
static void dag_branch_prev(int32_t *branch_prev, const spec_job *jobs, size_t n) {
    branch_entry *order = ts_malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) {
        order[i].branch = jobs[i].branch;
        order[i].job = (uint32_t)i;
    }
    qsort(order, n, sizeof *order, branch_entry_cmp);
    for (size_t k = 0; k < n; k++) {
        bool same = k > 0 && strcmp(order[k - 1].branch, order[k].branch) == 0;
        branch_prev[order[k].job] = same ? (int32_t)order[k - 1].job : -1;
    }
    free(order);
}

/* Whether job i lists job j in depends_on. Linear in i's explicit degree, so
 * asking once per edge keeps the total at O(E). */
static bool dag_has_explicit(const uint32_t *dep_start, const uint32_t *dep, size_t i, uint32_t j) {
    for (uint32_t k = dep_start[i]; k < dep_start[i + 1]; k++)
        if (dep[k] == j) return true;
    return false;
}

/* Fills the successor lists from the predecessor lists by counting sort, so
 * each job's successors come out in listed order. */
static void dag_fill_succ(spec_dag *dag) {
    size_t n = dag->n, n_edges = dag->pred_start[n];
    uint32_t *cursor = ts_calloc(n + 1, sizeof *cursor);
    for (size_t e = 0; e < n_edges; e++) cursor[dag->pred[e] + 1]++;
    for (size_t i = 0; i < n; i++) cursor[i + 1] += cursor[i];
    memcpy(dag->succ_start, cursor, (n + 1) * sizeof *cursor);
    for (size_t i = 0; i < n; i++)
        for (uint32_t e = dag->pred_start[i]; e < dag->pred_start[i + 1]; e++)
            dag->succ[cursor[dag->pred[e]]++] = (uint32_t)i;
    free(cursor);
}

/* Looks for a cycle by an iterative depth-first search along predecessor
 * edges (white/grey/black colouring). On finding one, returns its length and
 * stores the jobs in *cycle_out (caller frees) such that cycle[k] depends on
 * cycle[k + 1] and the last depends on the first. Returns 0 when acyclic. */
static size_t dag_find_cycle(const spec_dag *dag, uint32_t **cycle_out) {
    enum { WHITE = 0, GREY, BLACK };
    size_t n = dag->n, len = 0;
    uint8_t *colour = ts_calloc(n, 1);
    uint32_t *stack = ts_malloc(n * sizeof *stack);
    uint32_t *next_edge = ts_malloc(n * sizeof *next_edge);

    *cycle_out = NULL;
    for (size_t root = 0; root < n && len == 0; root++) {
        if (colour[root] != WHITE) continue;
        size_t sp = 0;
        colour[root] = GREY;
        stack[sp] = (uint32_t)root;
        next_edge[sp++] = dag->pred_start[root];
        while (sp > 0) {
            uint32_t u = stack[sp - 1];
            if (next_edge[sp - 1] == dag->pred_start[u + 1]) {
                colour[u] = BLACK;
                sp--;
                continue;
            }
            uint32_t v = dag->pred[next_edge[sp - 1]++];
            if (colour[v] == WHITE) {
                colour[v] = GREY;
                stack[sp] = v;
                next_edge[sp++] = dag->pred_start[v];
            } else if (colour[v] == GREY) {
                /* v is on the path: the cycle is v .. u, then back to v. */
                size_t from = sp - 1;
                while (stack[from] != v) from--;
                len = sp - from;
                *cycle_out = ts_malloc(len * sizeof **cycle_out);
                memcpy(*cycle_out, stack + from, len * sizeof **cycle_out);
                break;
            }
        }
    }
    free(colour);
    free(stack);
    free(next_edge);
    return len;
}

/* Appends s to buf (capacity cap, currently *used bytes), truncating. */
static void text_append(char *buf, size_t cap, size_t *used, const char *s) {
    size_t len = strlen(s);
    if (*used + len >= cap) len = cap - 1 - *used;
    memcpy(buf + *used, s, len);
    *used += len;
    buf[*used] = '\0';
}

/* Reports the cycle found by dag_find_cycle(). The cycle is rotated to start
 * at its earliest-listed job so the message does not depend on where the
 * search began; that job is the one blamed, through the field of its first
 * edge (depends_on, or branch when the edge is only the branch order). When
 * a branch edge closes the cycle the message says so, because that is the
 * edge users forget exists. */
static void dag_report_cycle(const spec_job *jobs, const uint32_t *dep_start, const uint32_t *dep,
                             uint32_t *cycle, size_t len, spec_error *err) {
    size_t first = 0;
    for (size_t k = 1; k < len; k++)
        if (cycle[k] < cycle[first]) first = k;
    uint32_t *rotated = ts_malloc(len * sizeof *rotated);
    for (size_t k = 0; k < len; k++) rotated[k] = cycle[(first + k) % len];

    bool first_explicit = dag_has_explicit(dep_start, dep, rotated[0], rotated[1 % len]);
    bool any_branch_edge = false;
    for (size_t k = 0; k < len; k++)
        if (!dag_has_explicit(dep_start, dep, rotated[k], rotated[(k + 1) % len]))
            any_branch_edge = true;

    char text[CYCLE_TEXT_BUDGET + 96];
    size_t used = 0;
    text[0] = '\0';
    text_append(text, sizeof text, &used, "dependency cycle: ");
    for (size_t k = 0; k < len; k++) {
        const char *id = jobs[rotated[k]].job_id;
        if (k > 0 && used + strlen(id) > CYCLE_TEXT_BUDGET && k + 1 < len) {
            char elided[64];
            ts_errf(elided, sizeof elided, " -> ... (%zu more jobs)", len - k);
            text_append(text, sizeof text, &used, elided);
            break;
        }
        if (k > 0) text_append(text, sizeof text, &used, " -> ");
        text_append(text, sizeof text, &used, id);
    }
    text_append(text, sizeof text, &used, " -> ");
    text_append(text, sizeof text, &used, jobs[rotated[0]].job_id);

    const spec_job *blamed = &jobs[rotated[0]];
    spec_error_set(
        err, 422, (long)rotated[0], blamed->job_id, first_explicit ? "depends_on" : "branch",
        "%s; remove one of these dependencies%s", text,
        any_branch_edge ? " (each job also depends on the job listed before it in its branch)"
                        : "");
    free(rotated);
}

/* Turns each depends_on entry into a job index, rejecting unknown ids and
 * self-dependencies and folding duplicates (a mark per target, so O(E)), and
 * stores the deduplicated names in the jobs. Fills the CSR arrays the graph
 * is built from (*dep_start: n + 1 entries; *dep), which the caller frees. */
static int dag_resolve_depends_on(spec_workflow *wf, json_t *const *raw_deps,
                                  uint32_t **dep_start_out, uint32_t **dep_out, spec_error *err) {
    size_t n = wf->n_jobs, total = 0, m = 0;
    for (size_t i = 0; i < n; i++) total += json_array_size(raw_deps[i]);
    if (total >= UINT32_MAX) {
        spec_error_set(err, 422, -1, NULL, "jobs", "the workflow lists too many dependencies");
        return TS_ERR;
    }
    uint32_t *dep_start = ts_malloc((n + 1) * sizeof *dep_start);
    uint32_t *dep = ts_malloc((total ? total : 1) * sizeof *dep);
    uint32_t *seen_by = ts_malloc(n * sizeof *seen_by); /* the last job that listed it */
    char quoted[SPEC_QUOTE_BUF], field[48];
    int rc = TS_ERR;

    for (size_t i = 0; i < n; i++) seen_by[i] = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        spec_job *job = &wf->jobs[i];
        size_t first = m;
        dep_start[i] = (uint32_t)m;
        for (size_t k = 0; k < json_array_size(raw_deps[i]); k++) {
            const char *name = json_string_value(json_array_get(raw_deps[i], k));
            int target = spec_find_job(wf, name);
            ts_errf(field, sizeof field, "depends_on[%zu]", k);
            if (target < 0) {
                spec_error_set(err, 422, (long)i, job->job_id, field, "unknown job \"%s\"",
                               spec_quote(name, quoted, sizeof quoted));
                goto cleanup;
            }
            if ((size_t)target == i) {
                spec_error_set(err, 422, (long)i, job->job_id, field,
                               "a job cannot depend on itself");
                goto cleanup;
            }
            if (seen_by[target] == i) continue;
            seen_by[target] = (uint32_t)i;
            dep[m++] = (uint32_t)target;
        }
        job->n_depends_on = m - first;
        job->depends_on = ts_calloc(job->n_depends_on, sizeof *job->depends_on);
        for (size_t k = 0; k < job->n_depends_on; k++)
            job->depends_on[k] = ts_strdup(wf->jobs[dep[first + k]].job_id);
    }
    dep_start[n] = (uint32_t)m;
    *dep_start_out = dep_start;
    *dep_out = dep;
    dep_start = dep = NULL;
    rc = TS_OK;

cleanup:
    free(seen_by);
    free(dep_start);
    free(dep);
    return rc;
}

/* Lays out the predecessor lists: a job's branch predecessor first (unless
 * depends_on already lists it), then its explicit dependencies as given. */
static int dag_fill_pred(spec_dag *dag, const uint32_t *dep_start, const uint32_t *dep,
                         spec_error *err) {
    size_t n = dag->n;
    uint64_t n_edges = 0;
    dag->pred_start[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t prev = dag->branch_prev[i];
        n_edges += dep_start[i + 1] - dep_start[i];
        if (prev >= 0 && !dag_has_explicit(dep_start, dep, i, (uint32_t)prev)) n_edges++;
        if (n_edges >= UINT32_MAX) {
            spec_error_set(err, 422, -1, NULL, "jobs",
                           "the workflow has too many dependencies; split it into smaller "
                           "workflows");
            return TS_ERR;
        }
        dag->pred_start[i + 1] = (uint32_t)n_edges;
    }
    dag->pred = ts_malloc((size_t)n_edges * sizeof *dag->pred);
    dag->succ = ts_malloc((size_t)n_edges * sizeof *dag->succ);
    for (size_t i = 0; i < n; i++) {
        uint32_t at = dag->pred_start[i];
        int32_t prev = dag->branch_prev[i];
        if (prev >= 0 && !dag_has_explicit(dep_start, dep, i, (uint32_t)prev))
            dag->pred[at++] = (uint32_t)prev;
        for (uint32_t k = dep_start[i]; k < dep_start[i + 1]; k++) dag->pred[at++] = dep[k];
    }
    return TS_OK;
}

/* See spec_internal.h. */
int spec_dag_build(spec_workflow *wf, json_t *const *raw_deps, spec_error *err) {
    spec_dag *dag = &wf->dag;
    size_t n = wf->n_jobs;
    uint32_t *dep_start = NULL, *dep = NULL, *cycle = NULL;

    memset(dag, 0, sizeof *dag);
    if (n >= UINT32_MAX) {
        spec_error_set(err, 422, -1, NULL, "jobs", "a workflow cannot hold %zu jobs", n);
        return TS_ERR;
    }
    if (dag_resolve_depends_on(wf, raw_deps, &dep_start, &dep, err) != TS_OK) return TS_ERR;

    dag->n = n;
    dag->branch_prev = ts_malloc((n ? n : 1) * sizeof *dag->branch_prev);
    dag->pred_start = ts_malloc((n + 1) * sizeof *dag->pred_start);
    dag->succ_start = ts_malloc((n + 1) * sizeof *dag->succ_start);
    dag_branch_prev(dag->branch_prev, wf->jobs, n);
    if (dag_fill_pred(dag, dep_start, dep, err) != TS_OK) goto fail;
    dag_fill_succ(dag);

    size_t cycle_len = dag_find_cycle(dag, &cycle);
    if (cycle_len > 0) {
        dag_report_cycle(wf->jobs, dep_start, dep, cycle, cycle_len, err);
        goto fail;
    }
    free(dep_start);
    free(dep);
    return TS_OK;

fail:
    free(cycle);
    free(dep_start);
    free(dep);
    spec_dag_free(dag);
    return TS_ERR;
}

void spec_dag_free(spec_dag *dag) {
    if (dag == NULL) return;
    free(dag->pred_start);
    free(dag->pred);
    free(dag->succ_start);
    free(dag->succ);
    free(dag->branch_prev);
    memset(dag, 0, sizeof *dag);
}
