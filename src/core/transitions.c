/*
 * transitions.c - how jobs and workflows change state in the engine: the one
 * place that keeps the counters of engine_internal.h true, and the rules of
 * DESIGN §1 for what follows an attempt's end (dependents released or
 * skipped, retries with backoff, cancel, the workflow's final state).
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "util/util.h"

core_change *change_push(change_list *out, change_kind kind, const ewf *wf, int32_t job_index,
                         double now) {
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 64;
        out->v = ts_realloc(out->v, out->cap * sizeof(core_change));
    }
    core_change *ch = &out->v[out->n++];
    memset(ch, 0, sizeof(*ch));
    ch->kind = kind;
    ch->workflow_id = wf->id;
    ch->user = wf->user_name;
    ch->job_index = job_index;
    ch->at = now;
    ch->exit_code = -1;
    if (job_index >= 0) {
        const ejob *j = &wf->jobs[job_index];
        ch->job_id = wf->spec->jobs[job_index].job_id;
        ch->from = ch->to = j->state;
        ch->attempt = j->attempt;
        ch->failures = j->failures;
        ch->cpus = wf->spec->jobs[job_index].cpus;
        ch->progress = j->progress;
        ch->not_before = j->not_before;
    } else {
        ch->from = ch->to = wf->state;
    }
    return ch;
}

/* Keeps wf->ready sorted: jobs of one workflow start in listed order. */
static void ready_insert(ewf *wf, uint32_t idx) {
    if (wf->n_ready == wf->cap_ready) {
        wf->cap_ready = wf->cap_ready ? wf->cap_ready * 2 : 8;
        wf->ready = ts_realloc(wf->ready, wf->cap_ready * sizeof(uint32_t));
    }
    size_t i = wf->n_ready;
    while (i > 0 && wf->ready[i - 1] > idx) {
        wf->ready[i] = wf->ready[i - 1];
        i--;
    }
    wf->ready[i] = idx;
    wf->n_ready++;
}

static void ready_remove(ewf *wf, uint32_t idx) {
    for (size_t i = 0; i < wf->n_ready; i++)
        if (wf->ready[i] == idx) {
            memmove(&wf->ready[i], &wf->ready[i + 1], (wf->n_ready - i - 1) * sizeof(uint32_t));
            wf->n_ready--;
            return;
        }
}

static const char *job_event_type(job_state from, job_state to) {
    if (to == JOB_READY) return from == JOB_RUNNING ? "job.retrying" : "job.ready";
    if (to == JOB_RUNNING) return "job.started";
    if (to == JOB_PENDING) return "job.retrying";
    return "job.finished";
}

/* Adjusts the counters for a job leaving `from` and entering `to`. */
static void ejob_account(engine *e, ewf *wf, uint32_t idx, job_state from, job_state to) {
    int cpus = wf->spec->jobs[idx].cpus;
    if (from == JOB_READY) ready_remove(wf, idx);
    if (to == JOB_READY) ready_insert(wf, idx);
    if (from == JOB_RUNNING) {
        wf->n_running--;
        e->running_cpus -= cpus;
        wf->user->running_cpus -= cpus;
    }
    if (to == JOB_RUNNING) {
        wf->n_running++;
        e->running_cpus += cpus;
        wf->user->running_cpus += cpus;
    }
    if (job_state_final(from)) wf->n_final--;
    if (job_state_final(to)) wf->n_final++;
    if (from == JOB_FAILED) wf->n_failed--;
    if (to == JOB_FAILED) wf->n_failed++;
    if (from == JOB_CANCELLED) wf->n_cancelled--;
    if (to == JOB_CANCELLED) wf->n_cancelled++;
}

core_change *ejob_set_state(engine *e, ewf *wf, uint32_t idx, job_state to, double now,
                            change_list *out) {
    ejob *j = &wf->jobs[idx];
    job_state from = j->state;
    assert(job_transition_legal(from, to));
    ejob_account(e, wf, idx, from, to);
    j->state = to;
    if (to == JOB_RUNNING) {
        j->attempt++;
        j->progress = 0;
    }
    if (to != JOB_READY) j->not_before = 0;
    /* A succeeded job releases its successors' wait. */
    if (to == JOB_SUCCEEDED) {
        const spec_dag *d = &wf->spec->dag;
        for (uint32_t k = d->succ_start[idx]; k < d->succ_start[idx + 1]; k++)
            wf->jobs[d->succ[k]].unmet--;
    }
    core_change *ch = change_push(out, CHANGE_JOB, wf, (int32_t)idx, now);
    ch->from = from;
    ch->event_type = job_event_type(from, to);
    return ch;
}

/* Keeps user->running sorted by (priority desc, id asc): the order in which a
 * user's own workflows get that user's slots. */
static void user_add_running(engine *e, euser *u, ewf *wf) {
    if (u->n_running == u->cap_running) {
        u->cap_running = u->cap_running ? u->cap_running * 2 : 4;
        u->running = ts_realloc(u->running, u->cap_running * sizeof(ewf *));
    }
    size_t i = u->n_running;
    while (i > 0) {
        const ewf *prev = u->running[i - 1];
        int p = prev->spec->priority, q = wf->spec->priority;
        if (p > q || (p == q && prev->id < wf->id)) break;
        u->running[i] = u->running[i - 1];
        i--;
    }
    u->running[i] = wf;
    if (u->n_running++ == 0) e->active_users++;
}

static void user_remove_running(engine *e, euser *u, const ewf *wf) {
    for (size_t i = 0; i < u->n_running; i++)
        if (u->running[i] == wf) {
            memmove(&u->running[i], &u->running[i + 1], (u->n_running - i - 1) * sizeof(ewf *));
            if (--u->n_running == 0) e->active_users--;
            return;
        }
}

static void line_remove(engine *e, const ewf *wf) {
    for (size_t i = 0; i < e->n_line; i++)
        if (e->line[i] == wf) {
            memmove(&e->line[i], &e->line[i + 1], (e->n_line - i - 1) * sizeof(ewf *));
            e->n_line--;
            e->line_changed = true;
            return;
        }
}

core_change *wf_set_state(engine *e, ewf *wf, wf_state to, double now, change_list *out) {
    wf_state from = wf->state;
    assert(wf_transition_legal(from, to));
    if (from == WF_QUEUED) line_remove(e, wf);
    if (from == WF_RUNNING) user_remove_running(e, wf->user, wf);
    if (to == WF_RUNNING) user_add_running(e, wf->user, wf);
    if (to == WF_QUEUED) {
        line_insert(e, wf);
        wf->last_position = 0;
    }
    wf->state = to;
    if (wf_state_final(to)) e->n_newly_final++;
    core_change *ch = change_push(out, CHANGE_WORKFLOW, wf, -1, now);
    ch->from = from;
    ch->event_type = to == WF_RUNNING  ? "workflow.admitted"
                     : to == WF_QUEUED ? "workflow.queued"
                                       : "workflow.finished";
    return ch;
}

void wf_finish_if_done(engine *e, ewf *wf, double now, change_list *out) {
    if (wf->state != WF_RUNNING || wf->n_final < wf->spec->n_jobs) return;
    wf_state to = WF_SUCCEEDED;
    if (wf->n_failed > 0)
        to = WF_FAILED;
    else if (wf->n_cancelled > 0 || wf->cancel_requested)
        to = WF_CANCELLED;
    core_change *ch = wf_set_state(e, wf, to, now, out);
    if (to == WF_FAILED)
        snprintf(ch->reason, sizeof(ch->reason), "%zu of %zu jobs failed", wf->n_failed,
                 wf->spec->n_jobs);
    else if (to == WF_CANCELLED)
        snprintf(ch->reason, sizeof(ch->reason), "cancelled by the user");
}

void wf_release_ready(engine *e, ewf *wf, double now, change_list *out) {
    for (uint32_t i = 0; i < wf->spec->n_jobs; i++)
        if (wf->jobs[i].state == JOB_PENDING && wf->jobs[i].unmet == 0)
            ejob_set_state(e, wf, i, JOB_READY, now, out);
}

/* Successors of idx whose last predecessor just succeeded become ready.
 * Only the successors are looked at, so a 10,000-job chain costs O(edges). */
static void release_successors(engine *e, ewf *wf, uint32_t idx, double now, change_list *out) {
    const spec_dag *d = &wf->spec->dag;
    for (uint32_t k = d->succ_start[idx]; k < d->succ_start[idx + 1]; k++) {
        uint32_t s = d->succ[k];
        if (wf->jobs[s].state == JOB_PENDING && wf->jobs[s].unmet == 0)
            ejob_set_state(e, wf, s, JOB_READY, now, out);
    }
}

/* Visits every descendant of idx reachable through jobs in state `through`
 * (each visit must move the job out of that state, so each is visited once),
 * depth first without recursion: chains may be 10,000 jobs long. */
typedef void (*visit_fn)(engine *e, ewf *wf, uint32_t idx, const char *cause, double now,
                         change_list *out);

static void walk_descendants(engine *e, ewf *wf, uint32_t idx, job_state through, visit_fn visit,
                             const char *cause, double now, change_list *out) {
    const spec_dag *d = &wf->spec->dag;
    uint32_t *stack = ts_malloc((wf->spec->n_jobs + 1) * sizeof(uint32_t));
    size_t top = 0;
    stack[top++] = idx;
    while (top > 0) {
        uint32_t cur = stack[--top];
        for (uint32_t k = d->succ_start[cur]; k < d->succ_start[cur + 1]; k++) {
            uint32_t s = d->succ[k];
            if (wf->jobs[s].state != through) continue;
            visit(e, wf, s, cause, now, out);
            stack[top++] = s;
        }
    }
    free(stack);
}

static void skip_one(engine *e, ewf *wf, uint32_t idx, const char *cause, double now,
                     change_list *out) {
    core_change *ch = ejob_set_state(e, wf, idx, JOB_SKIPPED, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "skipped: %s", cause);
}

void wf_skip_dependents(engine *e, ewf *wf, uint32_t idx, const char *cause, double now,
                        change_list *out) {
    walk_descendants(e, wf, idx, JOB_PENDING, skip_one, cause, now, out);
}

/* Seconds to wait before retry number `failures` (1-based): the delay
 * doubles each time, capped so a runaway count cannot overflow. */
static double retry_delay(const spec_job *sj, int failures) {
    int exp = failures - 1 < 20 ? failures - 1 : 20;
    return sj->retry_delay_s * ldexp(1.0, exp < 0 ? 0 : exp);
}

/* The attempt failed: retry if the job has retries left, else fail it and
 * skip what depends on it. */
static void job_failed(engine *e, ewf *wf, uint32_t idx, const char *outcome, int exit_code,
                       const char *message, double now, change_list *out) {
    ejob *j = &wf->jobs[idx];
    const spec_job *sj = &wf->spec->jobs[idx];
    j->failures++;
    if (j->failures <= sj->max_retries && !wf->cancel_requested && !j->cancel_requested) {
        double delay = retry_delay(sj, j->failures);
        core_change *ch = ejob_set_state(e, wf, idx, JOB_READY, now, out);
        j->not_before = now + delay;
        ch->not_before = j->not_before;
        ch->outcome = outcome;
        ch->exit_code = exit_code;
        snprintf(ch->reason, sizeof(ch->reason), "attempt %d %s (%s); retry %d of %d in %g s",
                 j->attempt, strcmp(outcome, "timeout") == 0 ? "timed out" : "failed", message,
                 j->failures, sj->max_retries, delay);
        return;
    }
    core_change *ch = ejob_set_state(e, wf, idx, JOB_FAILED, now, out);
    ch->outcome = outcome;
    ch->exit_code = exit_code;
    snprintf(ch->reason, sizeof(ch->reason), "%s", message);
    char cause[128];
    snprintf(cause, sizeof(cause), "%s failed", sj->job_id);
    wf_skip_dependents(e, wf, idx, cause, now, out);
}

void engine_job_exited(engine *e, job_ref job, int attempt, const char *outcome, int exit_code,
                       const char *message, double now, change_list *out) {
    ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return;
    uint32_t idx = (uint32_t)job.job_index;
    ejob *j = &wf->jobs[idx];
    if (j->state != JOB_RUNNING || j->attempt != attempt) return;
    if (!message) message = "";
    bool cancelling = wf->cancel_requested || j->cancel_requested;
    if (strcmp(outcome, "succeeded") == 0) {
        core_change *ch = ejob_set_state(e, wf, idx, JOB_SUCCEEDED, now, out);
        ch->outcome = "succeeded";
        ch->exit_code = exit_code;
        j->progress = ch->progress = 1.0;
        release_successors(e, wf, idx, now, out);
    } else if (cancelling) {
        core_change *ch = ejob_set_state(e, wf, idx, JOB_CANCELLED, now, out);
        ch->outcome = "cancelled";
        ch->exit_code = exit_code;
        snprintf(ch->reason, sizeof(ch->reason), "cancelled by the user");
        char cause[128];
        snprintf(cause, sizeof(cause), "%s was cancelled", wf->spec->jobs[idx].job_id);
        wf_skip_dependents(e, wf, idx, cause, now, out);
    } else {
        job_failed(e, wf, idx, outcome, exit_code, message, now, out);
    }
    wf_finish_if_done(e, wf, now, out);
}

void engine_job_progress(engine *e, job_ref job, int attempt, double progress,
                         const char *message, double now, change_list *out) {
    ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return;
    ejob *j = &wf->jobs[job.job_index];
    if (j->state != JOB_RUNNING || j->attempt != attempt) return;
    if (!(progress >= 0)) progress = 0; /* also catches NaN */
    if (progress > 1) progress = 1;
    j->progress = progress;
    core_change *ch = change_push(out, CHANGE_JOB_PROGRESS, wf, job.job_index, now);
    ch->event_type = "job.progress";
    if (message) snprintf(ch->reason, sizeof(ch->reason), "%s", message);
}

void engine_interrupt(engine *e, job_ref job, const char *reason, double now, change_list *out) {
    ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return;
    uint32_t idx = (uint32_t)job.job_index;
    if (wf->jobs[idx].state != JOB_RUNNING) return;
    if (wf->cancel_requested || wf->jobs[idx].cancel_requested) {
        core_change *ch = ejob_set_state(e, wf, idx, JOB_CANCELLED, now, out);
        ch->outcome = "interrupted";
        snprintf(ch->reason, sizeof(ch->reason), "cancelled by the user (%s)", reason);
        wf_finish_if_done(e, wf, now, out);
        return;
    }
    core_change *ch = ejob_set_state(e, wf, idx, JOB_READY, now, out);
    ch->outcome = "interrupted";
    snprintf(ch->reason, sizeof(ch->reason), "%s; re-run as attempt %d", reason,
             wf->jobs[idx].attempt + 1);
}

/* Cancels one job that has not started; its dependents are skipped. */
static void cancel_waiting_job(engine *e, ewf *wf, uint32_t idx, double now, change_list *out) {
    core_change *ch = ejob_set_state(e, wf, idx, JOB_CANCELLED, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "cancelled by the user");
}

int engine_cancel_workflow(engine *e, int64_t workflow_id, const char *reason, double now,
                           change_list *out, job_ref_list *kill) {
    ewf *wf = map_get_id(&e->wfs, workflow_id);
    if (!wf) return 1;
    if (wf_state_final(wf->state)) return TS_OK;
    wf->cancel_requested = true;
    for (uint32_t i = 0; i < wf->spec->n_jobs; i++) {
        job_state s = wf->jobs[i].state;
        if (s == JOB_PENDING || s == JOB_READY)
            cancel_waiting_job(e, wf, i, now, out);
        else if (s == JOB_RUNNING && kill)
            job_ref_list_push(kill, (job_ref){workflow_id, (int32_t)i});
    }
    if (wf->state == WF_QUEUED) {
        core_change *ch = wf_set_state(e, wf, WF_CANCELLED, now, out);
        snprintf(ch->reason, sizeof(ch->reason), "%s", reason ? reason : "cancelled while queued");
    } else {
        wf_finish_if_done(e, wf, now, out);
    }
    return TS_OK;
}

int engine_cancel_job(engine *e, job_ref job, double now, change_list *out, job_ref_list *kill) {
    ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return 1;
    uint32_t idx = (uint32_t)job.job_index;
    ejob *j = &wf->jobs[idx];
    if (job_state_final(j->state)) return TS_OK;
    j->cancel_requested = true;
    if (j->state == JOB_RUNNING) {
        job_ref_list_push(kill, job);
        return TS_OK;
    }
    cancel_waiting_job(e, wf, idx, now, out);
    char cause[128];
    snprintf(cause, sizeof(cause), "%s was cancelled", wf->spec->jobs[idx].job_id);
    wf_skip_dependents(e, wf, idx, cause, now, out);
    wf_finish_if_done(e, wf, now, out);
    return TS_OK;
}

/* Back to pending, then ready if nothing unfinished precedes it. */
static void revive(engine *e, ewf *wf, uint32_t idx, const char *cause, double now,
                   change_list *out) {
    (void)cause;
    ejob *j = &wf->jobs[idx];
    core_change *ch = ejob_set_state(e, wf, idx, JOB_PENDING, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "retried by the user");
    j->failures = 0;
    j->cancel_requested = false;
    /* In a revived (queued) workflow, admission makes jobs ready. */
    if (j->unmet == 0 && wf->state == WF_RUNNING) ejob_set_state(e, wf, idx, JOB_READY, now, out);
}

int engine_retry_job(engine *e, job_ref job, double now, change_list *out, char *err,
                     size_t errlen) {
    ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return 1;
    uint32_t idx = (uint32_t)job.job_index;
    job_state s = wf->jobs[idx].state;
    if ((wf->state != WF_RUNNING && wf->state != WF_QUEUED) || wf->cancel_requested) {
        ts_errf(err, errlen, "workflow %lld is %s", (long long)wf->id, wf_state_name(wf->state));
        return TS_ERR;
    }
    if (s != JOB_FAILED && s != JOB_CANCELLED && s != JOB_SKIPPED) {
        ts_errf(err, errlen, "job %s is %s; only failed, cancelled or skipped jobs can be retried",
                wf->spec->jobs[idx].job_id, job_state_name(s));
        return TS_ERR;
    }
    revive(e, wf, idx, NULL, now, out);
    /* Dependents skipped because of it get their chance again. */
    walk_descendants(e, wf, idx, JOB_SKIPPED, revive, NULL, now, out);
    return TS_OK;
}
