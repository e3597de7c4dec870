/*
 * engine.c - the engine's lifecycle: creating it, taking workflows in (new or
 * reloaded from the store), answering questions about them, and letting go
 * of finished ones. The rules live in transitions.c, admission.c and slots.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_internal.h"
#include "util/util.h"

void change_list_clear(change_list *cl) {
    cl->n = 0;
}

void change_list_free(change_list *cl) {
    free(cl->v);
    memset(cl, 0, sizeof(*cl));
}

void job_ref_list_push(job_ref_list *l, job_ref ref) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = ts_realloc(l->v, l->cap * sizeof(job_ref));
    }
    l->v[l->n++] = ref;
}

void job_ref_list_clear(job_ref_list *l) {
    l->n = 0;
}

void job_ref_list_free(job_ref_list *l) {
    free(l->v);
    memset(l, 0, sizeof(*l));
}

engine *engine_new(const engine_limits *lim) {
    engine *e = ts_calloc(1, sizeof(*e));
    e->lim = *lim;
    if (e->lim.max_active_users < 1) e->lim.max_active_users = 1;
    if (e->lim.concurrency_limit < 1) e->lim.concurrency_limit = 1;
    map_init(&e->wfs);
    map_init(&e->users);
    return e;
}

static void ewf_free(ewf *wf) {
    spec_free(wf->spec);
    free(wf->jobs);
    free(wf->ready);
    free(wf->user_name);
    free(wf);
}

void engine_free(engine *e) {
    if (!e) return;
    for (size_t i = 0; i < e->n_all; i++) ewf_free(e->all[i]);
    for (size_t i = 0; i < e->users.cap; i++) {
        euser *u = e->users.slots[i].hash > 1 ? e->users.slots[i].value : NULL;
        if (!u) continue;
        free(u->running);
        free(u->name);
        free(u);
    }
    map_free(&e->wfs);
    map_free(&e->users);
    free(e->all);
    free(e->line);
    free(e);
}

static euser *user_get(engine *e, const char *name) {
    euser *u = map_get_str(&e->users, name);
    if (u) return u;
    u = ts_calloc(1, sizeof(*u));
    u->name = ts_strdup(name);
    map_put_str(&e->users, u->name, u);
    return u;
}

/* The line is FIFO by workflow id (ids grow with submission time); reloads
 * can arrive in any order, so insert in place. */
void line_insert(engine *e, ewf *wf) {
    if (e->n_line == e->cap_line) {
        e->cap_line = e->cap_line ? e->cap_line * 2 : 16;
        e->line = ts_realloc(e->line, e->cap_line * sizeof(ewf *));
    }
    size_t i = e->n_line;
    while (i > 0 && e->line[i - 1]->id > wf->id) {
        e->line[i] = e->line[i - 1];
        i--;
    }
    e->line[i] = wf;
    e->n_line++;
    e->line_changed = true;
}

/* Checks that recorded job states could have come from the rules: a job is
 * ready, running or succeeded only after all its predecessors succeeded, and
 * a queued workflow has not started anything. */
static int check_recorded(const ewf *wf, char *err, size_t errlen) {
    for (size_t i = 0; i < wf->spec->n_jobs; i++) {
        job_state s = wf->jobs[i].state;
        if (s < 0 || s >= JOB_STATE_COUNT) {
            ts_errf(err, errlen, "workflow %lld: job %s has an invalid state", (long long)wf->id,
                    wf->spec->jobs[i].job_id);
            return TS_ERR;
        }
        if (wf->state == WF_QUEUED && s != JOB_PENDING && s != JOB_CANCELLED) {
            ts_errf(err, errlen, "workflow %lld is queued but job %s is %s", (long long)wf->id,
                    wf->spec->jobs[i].job_id, job_state_name(s));
            return TS_ERR;
        }
        if ((s == JOB_READY || s == JOB_RUNNING || s == JOB_SUCCEEDED) && wf->jobs[i].unmet > 0) {
            ts_errf(err, errlen, "workflow %lld: job %s is %s before its predecessors succeeded",
                    (long long)wf->id, wf->spec->jobs[i].job_id, job_state_name(s));
            return TS_ERR;
        }
    }
    return TS_OK;
}

/* Counts each job's unfinished predecessors from the recorded states. */
static void count_unmet(ewf *wf) {
    const spec_dag *d = &wf->spec->dag;
    for (size_t i = 0; i < wf->spec->n_jobs; i++) {
        uint32_t unmet = 0;
        for (uint32_t k = d->pred_start[i]; k < d->pred_start[i + 1]; k++)
            if (wf->jobs[d->pred[k]].state != JOB_SUCCEEDED) unmet++;
        wf->jobs[i].unmet = unmet;
    }
}

/* Registers wf's recorded states in the counters, as if each job had
 * arrived in its state through ejob_set_state. */
static void account_recorded(engine *e, ewf *wf) {
    for (uint32_t i = 0; i < wf->spec->n_jobs; i++) {
        job_state s = wf->jobs[i].state;
        wf->jobs[i].state = JOB_PENDING;
        /* Replays pending -> s without emitting a change. */
        change_list scratch = {0};
        if (s == JOB_READY || s == JOB_RUNNING) {
            int attempt = wf->jobs[i].attempt;
            double nb = wf->jobs[i].not_before;
            ejob_set_state(e, wf, i, JOB_READY, 0, &scratch);
            if (s == JOB_RUNNING) ejob_set_state(e, wf, i, JOB_RUNNING, 0, &scratch);
            wf->jobs[i].attempt = attempt;
            wf->jobs[i].not_before = nb;
        } else if (s != JOB_PENDING) {
            /* Final states: counted directly; unmet was computed already. */
            wf->jobs[i].state = s;
            wf->n_final++;
            if (s == JOB_FAILED) wf->n_failed++;
            if (s == JOB_CANCELLED) wf->n_cancelled++;
        }
        change_list_free(&scratch);
    }
}

/* A record for a workflow with its recorded job states, not yet placed in
 * any list; NULL (spec freed) if the states are impossible. */
static ewf *ewf_new(engine *e, int64_t id, const char *user, wf_state state, bool cancel_requested,
                    spec_workflow *spec, const engine_job_init *jobs, char *err, size_t errlen) {
    ewf *wf = ts_calloc(1, sizeof(*wf));
    wf->id = id;
    wf->user_name = ts_strdup(user);
    wf->spec = spec;
    wf->state = state;
    wf->cancel_requested = cancel_requested;
    wf->jobs = ts_calloc(spec->n_jobs, sizeof(ejob));
    for (size_t i = 0; jobs && i < spec->n_jobs; i++) {
        wf->jobs[i].state = jobs[i].state;
        wf->jobs[i].attempt = jobs[i].attempt;
        wf->jobs[i].failures = jobs[i].failures;
        wf->jobs[i].not_before = jobs[i].not_before;
        wf->jobs[i].progress = jobs[i].progress;
    }
    count_unmet(wf);
    if (check_recorded(wf, err, errlen) != TS_OK) {
        ewf_free(wf);
        return NULL;
    }
    wf->user = user_get(e, user);
    return wf;
}

static void ewf_register(engine *e, ewf *wf) {
    map_put_id(&e->wfs, wf->id, wf);
    if (e->n_all == e->cap_all) {
        e->cap_all = e->cap_all ? e->cap_all * 2 : 16;
        e->all = ts_realloc(e->all, e->cap_all * sizeof(ewf *));
    }
    e->all[e->n_all++] = wf;
}

int engine_add(engine *e, int64_t id, const char *user, wf_state state, bool cancel_requested,
               spec_workflow *spec, const engine_job_init *jobs, char *err, size_t errlen) {
    if (wf_state_final(state)) {
        spec_free(spec);
        return TS_OK;
    }
    if (map_get_id(&e->wfs, id)) {
        spec_free(spec);
        ts_errf(err, errlen, "workflow %lld is already held by the engine", (long long)id);
        return TS_ERR;
    }
    ewf *wf = ewf_new(e, id, user, state, cancel_requested, spec, jobs, err, errlen);
    if (!wf) return TS_ERR;
    /* Counted as running for the user before jobs are, so that user
     * counters stay consistent during the replay. */
    wf->state = WF_QUEUED;
    line_insert(e, wf);
    if (state == WF_RUNNING) {
        change_list scratch = {0};
        wf_set_state(e, wf, WF_RUNNING, 0, &scratch);
        change_list_free(&scratch);
        account_recorded(e, wf);
        wf->needs_sweep = true;
        e->n_to_sweep++;
    }
    ewf_register(e, wf);
    return TS_OK;
}

int engine_revive(engine *e, int64_t id, const char *user, wf_state state, spec_workflow *spec,
                  const engine_job_init *jobs, int32_t job_index, double now, change_list *out,
                  char *err, size_t errlen) {
    if ((state != WF_FAILED && state != WF_CANCELLED) || map_get_id(&e->wfs, id) ||
        job_index < 0 || (size_t)job_index >= spec->n_jobs) {
        spec_free(spec);
        ts_errf(err, errlen, "workflow %lld cannot be revived (it is %s)", (long long)id,
                wf_state_name(state));
        return TS_ERR;
    }
    ewf *wf = ewf_new(e, id, user, state, false, spec, jobs, err, errlen);
    if (!wf) return TS_ERR;
    /* A finished workflow holds only final jobs; count them as they are. */
    account_recorded(e, wf);
    ewf_register(e, wf);
    core_change *ch = wf_set_state(e, wf, WF_QUEUED, now, out);
    snprintf(ch->reason, sizeof(ch->reason), "job %s retried by the user",
             spec->jobs[job_index].job_id);
    return engine_retry_job(e, (job_ref){id, job_index}, now, out, err, errlen);
}

double engine_next_wakeup(const engine *e, double now) {
    double next = 0;
    for (size_t i = 0; i < e->n_all; i++) {
        const ewf *wf = e->all[i];
        if (wf->state != WF_RUNNING) continue;
        for (size_t k = 0; k < wf->n_ready; k++) {
            double nb = wf->jobs[wf->ready[k]].not_before;
            if (nb > now && (next == 0 || nb < next)) next = nb;
        }
    }
    return next;
}

size_t engine_unfinished(const engine *e) {
    size_t n = 0;
    for (size_t i = 0; i < e->n_all; i++)
        if (!wf_state_final(e->all[i]->state)) n++;
    return n;
}

int engine_running_cpus(const engine *e) {
    return e->running_cpus;
}

int engine_active_users(const engine *e) {
    return e->active_users;
}

size_t engine_line_length(const engine *e) {
    return e->n_line;
}

void engine_running_jobs(const engine *e, job_ref_list *out) {
    for (size_t i = 0; i < e->n_all; i++) {
        const ewf *wf = e->all[i];
        if (wf->n_running == 0) continue;
        for (uint32_t k = 0; k < wf->spec->n_jobs; k++)
            if (wf->jobs[k].state == JOB_RUNNING)
                job_ref_list_push(out, (job_ref){wf->id, (int32_t)k});
    }
}

int engine_workflow_state(const engine *e, int64_t workflow_id, wf_state *out) {
    const ewf *wf = map_get_id(&e->wfs, workflow_id);
    if (!wf) return TS_ERR;
    *out = wf->state;
    return TS_OK;
}

int engine_job_state(const engine *e, job_ref job, job_state *state, int *attempt) {
    const ewf *wf = map_get_id(&e->wfs, job.workflow_id);
    if (!wf || job.job_index < 0 || (size_t)job.job_index >= wf->spec->n_jobs) return TS_ERR;
    *state = wf->jobs[job.job_index].state;
    if (attempt) *attempt = wf->jobs[job.job_index].attempt;
    return TS_OK;
}

const spec_workflow *engine_spec(const engine *e, int64_t workflow_id) {
    const ewf *wf = map_get_id(&e->wfs, workflow_id);
    return wf ? wf->spec : NULL;
}

/* A workflow becomes final only through wf_set_state, which counts it:
 * with none counted there is nothing to free, and the scan over every held
 * workflow (thousands queued under a submit flood, once per loop) is
 * skipped. */
void engine_forget_finished(engine *e) {
    if (e->n_newly_final == 0) return;
    e->n_newly_final = 0;
    size_t kept = 0;
    for (size_t i = 0; i < e->n_all; i++) {
        ewf *wf = e->all[i];
        if (wf_state_final(wf->state)) {
            if (wf->needs_sweep) e->n_to_sweep--;
            map_del_id(&e->wfs, wf->id);
            ewf_free(wf);
        } else {
            e->all[kept++] = wf;
        }
    }
    e->n_all = kept;
}
