/*
 * view.c - see view.h.
 */
#include "view/view.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/reasons.h"
#include "util/util.h"

void view_time(double t, char *buf, size_t n) {
    ts_iso8601(t, buf, n);
}

/* The recorded reason from the scheduler is the better source; without
 * one, the line's stats say whether the user is active. */
void view_waiting_reason(const store_workflow *wf, const store_queue_stats *stats,
                         const view_limits *lim, char *why, size_t n) {
    if (wf->reason && wf->reason[0])
        snprintf(why, n, "%s", wf->reason);
    else
        reason_workflow_waiting(false, stats->active_users, lim->max_active_users, why, n);
}

static json_t *time_or_null(double t) {
    if (t <= 0) return json_null();
    char buf[40];
    view_time(t, buf, sizeof(buf));
    return json_string(buf);
}

double view_workflow_progress(const store_workflow *wf) {
    if (wf->n_jobs == 0) return wf_state_final(wf->state) ? 1.0 : 0.0;
    if (!wf->jobs) return wf->jobs_done / (double)wf->n_jobs; /* a list row */
    double done = 0;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        if (job_state_final(wf->jobs[i].state))
            done += 1;
        else if (wf->jobs[i].state == JOB_RUNNING)
            done += wf->jobs[i].progress;
    }
    return done / (double)wf->n_jobs;
}

static json_t *view_job(const store_workflow *wf, size_t i, const job_state *states,
                        const store_queue_stats *stats, const view_limits *lim, double now) {
    const store_job *j = &wf->jobs[i];
    const spec_job *sj = &wf->spec->jobs[i];
    json_t *deps = json_array();
    for (size_t k = 0; k < sj->n_depends_on; k++)
        json_array_append_new(deps, json_string(sj->depends_on[k]));
    json_t *o = json_pack("{ss ss ss so ss si si sf si}", "job_id", sj->job_id, "job_type",
                          sj->job_type, "branch", sj->branch, "depends_on", deps, "state",
                          job_state_name(j->state), "attempt", j->attempt, "cpus", sj->cpus,
                          "progress", j->progress, "failures", j->failures);
    json_object_set_new(o, "image_path", sj->image_path ? json_string(sj->image_path) : json_null());
    json_object_set_new(o, "ready_at", time_or_null(j->ready_at));
    json_object_set_new(o, "started_at", time_or_null(j->started_at));
    json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
    json_object_set_new(o, "exit_code", j->exit_code >= 0 ? json_integer(j->exit_code) : json_null());
    json_object_set_new(o, "reason", json_string(j->reason ? j->reason : ""));
    if (wf->state == WF_RUNNING && stats && (j->state == JOB_PENDING || j->state == JOB_READY)) {
        char why[256];
        reason_job_waiting(wf->spec, states, i, j->not_before, now, stats->running_cpus,
                           lim->concurrency_limit, why, sizeof(why));
        json_object_set_new(o, "waiting_reason", json_string(why));
    }
    return o;
}

/* Jobs [first, end) of the workflow; the states of all of them, since a
 * job's waiting reason names its unfinished dependencies. */
static json_t *view_jobs(const store_workflow *wf, const store_queue_stats *stats,
                         const view_limits *lim, double now, size_t first, size_t end) {
    job_state *states = ts_malloc(wf->n_jobs * sizeof(job_state));
    for (size_t i = 0; i < wf->n_jobs; i++) states[i] = wf->jobs[i].state;
    json_t *jobs = json_array();
    for (size_t i = first; i < end; i++)
        json_array_append_new(jobs, view_job(wf, i, states, stats, lim, now));
    free(states);
    return jobs;
}

static json_t *counts_json(const size_t count[JOB_STATE_COUNT]) {
    json_t *o = json_object();
    for (int s = 0; s < JOB_STATE_COUNT; s++)
        json_object_set_new(o, job_state_name((job_state)s), json_integer((json_int_t)count[s]));
    return o;
}

static json_t *view_counts(const store_workflow *wf) {
    size_t count[JOB_STATE_COUNT] = {0};
    for (size_t i = 0; i < wf->n_jobs; i++) count[wf->jobs[i].state]++;
    return counts_json(count);
}

json_t *view_workflow(const store_workflow *wf, const store_queue_stats *stats,
                      const view_limits *lim, double now) {
    return view_workflow_page(wf, stats, lim, now, VIEW_ALL_JOBS);
}

/* "jobs_page": where this page is in the workflow's jobs, and where the
 * next one starts (null after the last). */
static json_t *page_json(const store_workflow *wf, view_page page, size_t end) {
    return json_pack("{sI sI sI so}", "offset", (json_int_t)page.offset, "limit",
                     (json_int_t)page.limit, "total", (json_int_t)wf->n_jobs, "next_offset",
                     end < wf->n_jobs ? json_integer((json_int_t)end) : json_null());
}

json_t *view_workflow_page(const store_workflow *wf, const store_queue_stats *stats,
                           const view_limits *lim, double now, view_page page) {
    json_t *o = json_pack("{sI ss ss si ss si}", "id", (json_int_t)wf->id, "name", wf->name,
                          "user", wf->user, "priority", wf->priority, "state",
                          wf_state_name(wf->state), "n_jobs", (int)wf->n_jobs);
    json_object_set_new(o, "submitted_at", time_or_null(wf->submitted_at));
    json_object_set_new(o, "admitted_at", time_or_null(wf->admitted_at));
    json_object_set_new(o, "finished_at", time_or_null(wf->finished_at));
    json_object_set_new(o, "reason", json_string(wf->reason ? wf->reason : ""));
    if (wf->state == WF_QUEUED) {
        json_object_set_new(o, "queue_position", json_integer(wf->queue_position));
        if (stats) {
            char why[256];
            view_waiting_reason(wf, stats, lim, why, sizeof(why));
            json_object_set_new(o, "waiting_reason", json_string(why));
        }
    }
    json_object_set_new(o, "progress", json_real(view_workflow_progress(wf)));
    if (wf->jobs) {
        json_object_set_new(o, "counts", view_counts(wf));
        if (page.none) return o;
        size_t first = page.offset < wf->n_jobs ? page.offset : wf->n_jobs;
        size_t end = page.limit < wf->n_jobs - first ? first + page.limit : wf->n_jobs;
        json_object_set_new(o, "jobs", view_jobs(wf, stats, lim, now, first, end));
        if (first > 0 || end < wf->n_jobs || page.limit != SIZE_MAX)
            json_object_set_new(o, "jobs_page", page_json(wf, page, end));
    }
    return o;
}

json_t *view_workflow_counted(const store_workflow *wf, const size_t counts[JOB_STATE_COUNT],
                              const store_queue_stats *stats, const view_limits *lim, double now) {
    json_t *o = view_workflow_page(wf, stats, lim, now, (view_page){0, SIZE_MAX, true});
    if (!wf->jobs) json_object_set_new(o, "counts", counts_json(counts));
    return o;
}

/* Mirrors the conditions under which view_workflow_page and view_job quote
 * the line or the clock: a ready job's reason in a running workflow, a
 * queued workflow's reason when the scheduler recorded none. */
void view_depends(const store_workflow *wf, const store_queue_stats *stats, double now,
                  unsigned *want, double *valid_until) {
    *want = 0;
    *valid_until = 0;
    if (!stats) return;
    if (wf->state == WF_QUEUED && !(wf->reason && wf->reason[0]))
        *want |= STORE_STAMP_ACTIVE_USERS;
    if (wf->state != WF_RUNNING || !wf->jobs) return;
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const store_job *j = &wf->jobs[i];
        if (j->state != JOB_READY) continue;
        *want |= STORE_STAMP_RUNNING_CPUS;
        if (j->not_before > now && (*valid_until <= 0 || j->not_before < *valid_until))
            *valid_until = j->not_before;
    }
}

int view_add_attempts(store *st, const store_workflow *wf, json_t *view, char *err,
                      size_t errlen) {
    if (json_object_get(view, "jobs") == NULL) return TS_OK; /* the compact form */
    store_attempt *a = NULL;
    size_t n = 0;
    if (store_attempts(st, wf->id, -1, &a, &n, err, errlen) != TS_OK) return TS_ERR;
    view_put_attempts(view, a, n);
    free(a);
    return TS_OK;
}

void view_put_attempts(json_t *view, const store_attempt *a, size_t n) {
    json_t *jobs = json_object_get(view, "jobs");
    if (jobs == NULL) return;
    json_int_t offset = json_integer_value(json_object_get(json_object_get(view, "jobs_page"),
                                                           "offset"));
    for (size_t i = 0; i < json_array_size(jobs); i++)
        json_object_set_new(json_array_get(jobs, i), "attempts", json_array());
    /* A page holds jobs from its offset on: job i is element i - offset. */
    for (size_t k = 0; k < n; k++) {
        if (a[k].job_index < offset) continue;
        json_t *arr = json_object_get(json_array_get(jobs, (size_t)(a[k].job_index - offset)),
                                      "attempts");
        if (!arr) continue;
        json_t *o = json_pack("{si ss ss}", "attempt", a[k].attempt, "outcome", a[k].outcome,
                              "reason", a[k].reason);
        json_object_set_new(o, "started_at", time_or_null(a[k].started_at));
        json_object_set_new(o, "finished_at", time_or_null(a[k].finished_at));
        json_object_set_new(o, "exit_code",
                            a[k].exit_code >= 0 ? json_integer(a[k].exit_code) : json_null());
        /* Where it ran in a batch system (the Slurm job id), for the user
         * who asks the cluster's tools about it. */
        if (a[k].external_id[0])
            json_object_set_new(o, "external_id", json_string(a[k].external_id));
        json_array_append_new(arr, o);
    }
}
