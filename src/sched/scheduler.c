/*
 * scheduler.c - see scheduler.h. The loop: lead -> take in -> decide ->
 * record -> act -> wait -> record what happened.
 */
#include "sched/scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/map.h"
#include "jobs/jobs.h"
#include "sched/syncer.h"
#include "util/layout.h"
#include "util/log.h"
#include "util/util.h"

#define SCHED_EVENTS_MAX 256
/* How long progress may wait for a commit it can share: a short job's
 * last progress line comes 1-2 ms before its exit here (the runner's
 * publishing in between). It was 50 ms, which held every progress event of
 * a long job that long; sched_bench's DAG shows no difference. */
#define SCHED_PROGRESS_HOLD_S 0.003

struct scheduler {
    sched_config cfg;
    char *data_roots; /* cfg's, each made absolute (for runners started elsewhere) */
    char *owner;
    store *st;
    executor *ex;
    engine *eng;
    bool leader;
    int64_t term; /* the store's term of our lead (store_leader_term) */
    bool claiming;
    bool deferred_sync; /* commits fsynced after act, not before (sched_new) */
    syncer *syncer;     /* runs those fsyncs while rounds go on; NULL: on this thread */
    bool adopting;     /* start_or_adopt adopts rather than starts */
    int64_t last_loaded_id;
    int64_t last_command_id; /* the highest command applied and committed */
    int64_t *cmd_pending;    /* commands taken this round, marked applied on commit */
    size_t n_cmd_pending, cap_cmd_pending;
    double next_heartbeat;
    double backoff;       /* seconds to wait after a round the store refused; 0 = none */
    map started;          /* job key -> attempt + 1, for jobs our executor runs */
    map ready_at;         /* job key -> when it became ready (µs), for wait times */
    map started_at;       /* job key -> when it started (µs), for run times */
    change_list changes;  /* decided, not yet recorded */
    change_list acting;   /* recorded, being acted on */
    job_ref_list kills;
    exec_event events[SCHED_EVENTS_MAX];
};

/* Jobs are keyed by workflow id and index in one int64 for the map. */
static int64_t job_key(int64_t workflow_id, int32_t job_index) {
    return workflow_id * 16777216 + job_index;
}

/* The executor's journal (executor.h): a batch job's token and id on the
 * running attempt, committed before the executor goes on. */
static int journal_record(void *ctx, int64_t workflow_id, int32_t job_index, int attempt,
                          const char *token, const char *external_id, char *err,
                          size_t errlen) {
    scheduler *s = ctx;
    int rc = store_begin(s->st, err, errlen);
    if (rc == TS_OK)
        rc = store_attempt_external(s->st, workflow_id, job_index, attempt, token, external_id,
                                    err, errlen);
    if (rc == TS_OK) return store_commit(s->st, err, errlen);
    store_rollback(s->st);
    return rc;
}

scheduler *sched_new(const sched_config *cfg, const char *owner, store *st, executor *ex) {
    scheduler *s = ts_calloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->data_roots = jobs_absolute_roots(cfg->data_roots);
    s->owner = ts_strdup(owner);
    s->st = st;
    s->ex = ex;
    s->ex->journal = (exec_journal){journal_record, s};
    s->claiming = true;
    /* Jobs that die with us may start before their claim's fsync (see
     * sync_round); a detached executor's outlive us, so theirs waits. */
    char err[TS_ERRLEN];
    s->deferred_sync = !ex->ops->detached && store_set_deferred_sync(st, true, err, sizeof(err)) == TS_OK;
    if (!ex->ops->detached && !s->deferred_sync)
        log_emit(LOG_WARN, NULL, NULL, "claims are fsynced before their jobs start",
                 json_pack("{ss}", "error", err));
    if (s->deferred_sync && (s->syncer = syncer_new(err, sizeof(err))) == NULL)
        log_emit(LOG_WARN, NULL, NULL, "each round waits for its own fsync",
                 json_pack("{ss}", "error", err));
    map_init(&s->started);
    map_init(&s->ready_at);
    map_init(&s->started_at);
    return s;
}

void sched_free(scheduler *s) {
    if (!s) return;
    syncer_free(s->syncer);
    engine_free(s->eng);
    map_free(&s->started);
    map_free(&s->ready_at);
    map_free(&s->started_at);
    change_list_free(&s->changes);
    change_list_free(&s->acting);
    free(s->cmd_pending);
    job_ref_list_free(&s->kills);
    free(s->owner);
    free(s->data_roots);
    free(s);
}

bool sched_is_leader(const scheduler *s) {
    return s->leader;
}

size_t sched_running(const scheduler *s) {
    return s->started.count;
}

void sched_stop_claiming(scheduler *s) {
    s->claiming = false;
}

/* The engine's reference to a stored spec: the store's own, shared
 * (spec_retain), not a copy. Nothing changes a parsed spec, and a copy
 * (to JSON and parsed back) cost about 70 us per workflow loaded. */
static spec_workflow *spec_share(const spec_workflow *spec) {
    return spec_retain((spec_workflow *)spec);
}

static void start_or_adopt(scheduler *s, int64_t workflow_id, const char *user,
                           int32_t job_index, int attempt, const char *external_id);

/* A job a gone scheduler left running in a batch system (executor.h,
 * detached): the executor takes it over instead of it being re-run. Its
 * recorded id (or only the intent) comes from the attempt row. */
static int adopt_job(scheduler *s, const store_workflow *wf, const store_job *j) {
    store_attempt *at = NULL;
    size_t n = 0;
    char err[TS_ERRLEN];
    if (store_attempts(s->st, wf->id, j->index, &at, &n, err, sizeof(err)) != TS_OK) return TS_ERR;
    char ext[64] = "";
    for (size_t k = 0; k < n; k++)
        if (at[k].attempt == j->attempt) ts_strlcpy(ext, at[k].external_id, sizeof(ext));
    free(at);
    s->adopting = true;
    start_or_adopt(s, wf->id, wf->user, j->index, j->attempt, ext);
    s->adopting = false;
    return map_get_id(&s->started, job_key(wf->id, j->index)) ? TS_OK : TS_ERR;
}

typedef struct load_ctx {
    scheduler *s;
    char *err;
    size_t errlen;
    int rc;
} load_ctx;

/* Takes one stored workflow into the engine. A running job that this
 * process is not running was left by a scheduler that is gone: it is
 * interrupted and will be re-run as a new attempt. */
static int load_one(void *ctx, const store_workflow *wf) {
    load_ctx *lc = ctx;
    scheduler *s = lc->s;
    if (wf->id > s->last_loaded_id) s->last_loaded_id = wf->id;
    spec_workflow *spec = spec_share(wf->spec);
    if (!spec) {
        ts_errf(lc->err, lc->errlen, "workflow %lld: stored spec does not reload",
                (long long)wf->id);
        lc->rc = TS_ERR;
        return 1;
    }
    engine_job_init *init = ts_calloc(wf->n_jobs, sizeof(*init));
    for (size_t i = 0; i < wf->n_jobs; i++)
        init[i] = (engine_job_init){wf->jobs[i].state, wf->jobs[i].attempt, wf->jobs[i].failures,
                                    wf->jobs[i].not_before, wf->jobs[i].progress};
    int rc = engine_add(s->eng, wf->id, wf->user, wf->state, wf->cancel_requested, spec, init,
                        lc->err, lc->errlen);
    free(init);
    if (rc != TS_OK) {
        log_emit(LOG_ERROR, NULL, NULL, "cannot take over workflow",
                 json_pack("{sI ss}", "workflow_id", (json_int_t)wf->id, "error", lc->err));
        return 0; /* one bad workflow must not stop the others */
    }
    for (size_t i = 0; i < wf->n_jobs; i++) {
        const store_job *j = &wf->jobs[i];
        if (j->state != JOB_RUNNING || map_get_id(&s->started, job_key(wf->id, j->index)))
            continue;
        if (s->ex->ops->adopt && adopt_job(s, wf, j) == TS_OK) continue;
        char reason[200];
        snprintf(reason, sizeof(reason), "interrupted: scheduler %s stopped while attempt %d ran",
                 j->lease_owner[0] ? j->lease_owner : "(unknown)", j->attempt);
        engine_interrupt(s->eng, (job_ref){wf->id, j->index}, reason, ts_now(), &s->changes);
    }
    return 0;
}

static int load_new(scheduler *s, char *err, size_t errlen) {
    load_ctx lc = {s, err, errlen, TS_OK};
    int rc = store_load_unfinished(s->st, s->last_loaded_id, load_one, &lc, err, errlen);
    return rc != TS_OK ? rc : lc.rc;
}

/* Starts over from the store: after taking the lead, and whenever recording
 * failed and the engine may be ahead of what was committed. */
static int rebuild(scheduler *s, char *err, size_t errlen) {
    engine_free(s->eng);
    engine_limits lim = {s->cfg.max_active_users, s->cfg.concurrency_limit};
    s->eng = engine_new(&lim);
    s->last_loaded_id = 0;
    change_list_clear(&s->changes);
    /* Commands whose effect was not committed are read again; kills they
     * asked for are decided again from the store's state. */
    s->last_command_id = 0;
    s->n_cmd_pending = 0;
    job_ref_list_clear(&s->kills);
    return load_new(s, err, errlen);
}

/* A retry of a job of a workflow the engine let go of (it had finished):
 * read it back from the store and revive it. */
static int revive_finished(scheduler *s, job_ref ref, double now, char *err, size_t errlen) {
    store_workflow *wf = NULL;
    if (store_workflow_get(s->st, ref.workflow_id, NULL, &wf, err, errlen) != TS_OK) return TS_ERR;
    spec_workflow *spec = spec_share(wf->spec);
    engine_job_init *init = ts_calloc(wf->n_jobs, sizeof(*init));
    for (size_t i = 0; i < wf->n_jobs; i++)
        init[i] = (engine_job_init){wf->jobs[i].state, wf->jobs[i].attempt, wf->jobs[i].failures,
                                    wf->jobs[i].not_before, wf->jobs[i].progress};
    int rc = spec ? engine_revive(s->eng, wf->id, wf->user, wf->state, spec, init, ref.job_index,
                                  now, &s->changes, err, errlen)
                  : TS_ERR;
    free(init);
    store_workflow_free(wf);
    return rc;
}

static int on_command(void *ctx, const store_command *cmd) {
    scheduler *s = ctx;
    if (s->n_cmd_pending == s->cap_cmd_pending) {
        s->cap_cmd_pending = s->cap_cmd_pending ? s->cap_cmd_pending * 2 : 16;
        s->cmd_pending = ts_realloc(s->cmd_pending, s->cap_cmd_pending * sizeof(int64_t));
    }
    s->cmd_pending[s->n_cmd_pending++] = cmd->id;
    double now = ts_now();
    if (strcmp(cmd->kind, "retry") == 0) {
        char err[TS_ERRLEN] = "";
        job_ref ref = {cmd->workflow_id, cmd->job_index};
        int rc = engine_retry_job(s->eng, ref, now, &s->changes, err, sizeof(err));
        if (rc == 1) rc = revive_finished(s, ref, now, err, sizeof(err));
        if (rc == STORE_UNAVAILABLE) { /* not taken: read again next round */
            s->n_cmd_pending--;
            return 1;
        }
        if (rc != TS_OK)
            log_emit(LOG_WARN, NULL, NULL, "retry refused",
                     json_pack("{sI ss}", "workflow_id", (json_int_t)cmd->workflow_id, "reason",
                               err));
        return 0;
    }
    if (strcmp(cmd->kind, "cancel") != 0) return 0;
    if (cmd->job_index < 0)
        engine_cancel_workflow(s->eng, cmd->workflow_id, "cancelled by the user", now, &s->changes,
                               &s->kills);
    else
        engine_cancel_job(s->eng, (job_ref){cmd->workflow_id, cmd->job_index}, now, &s->changes,
                          &s->kills);
    return 0;
}

static void log_change(const core_change *ch) {
    char run_id[32];
    snprintf(run_id, sizeof(run_id), "wf-%lld", (long long)ch->workflow_id);
    if (ch->kind == CHANGE_JOB_PROGRESS) {
        /* The executor already throttles progress to a few lines a second. */
        log_emit(LOG_INFO, run_id, ch->job_id, ch->event_type,
                 json_pack("{sf si}", "progress", ch->progress, "attempt", ch->attempt));
        return;
    }
    if (ch->kind == CHANGE_QUEUE_POSITION) {
        log_emit(LOG_INFO, run_id, NULL, ch->event_type,
                 json_pack("{ss si ss}", "user", ch->user, "queue_position", ch->queue_position,
                           "reason", ch->reason));
        return;
    }
    const char *state = ch->kind == CHANGE_JOB ? job_state_name(ch->to) : wf_state_name(ch->to);
    log_emit(LOG_INFO, run_id, ch->job_id, ch->event_type,
             json_pack("{ss ss si ss* si}", "user", ch->user, "state", state, "attempt",
                       ch->attempt, "reason", ch->reason[0] ? ch->reason : NULL, "cpus",
                       ch->cpus));
}

/* Writes one change through the store operation that guards it. */
static int record_one(scheduler *s, const core_change *ch, double now, char *err, size_t errlen) {
    if (ch->kind == CHANGE_JOB && ch->to == JOB_RUNNING)
        return store_claim(s->st, ch, s->owner, now + s->cfg.lease_ttl, s->cfg.concurrency_limit,
                           err, errlen);
    if (ch->kind == CHANGE_WORKFLOW && ch->from == WF_QUEUED && ch->to == WF_RUNNING)
        return store_admit(s->st, ch, s->cfg.max_active_users, err, errlen);
    return store_apply(s->st, ch, NULL, err, errlen);
}

/* Commits every pending change in one transaction. When the store is
 * unavailable the changes and commands stay pending, in order, for the next
 * try (the engine is ahead of the store, and nothing was acted on); on any
 * other failure nothing is kept and the engine is rebuilt from the store. */
static int record(scheduler *s, char *err, size_t errlen) {
    if (s->changes.n == 0 && s->n_cmd_pending == 0) return TS_OK;
    double now = ts_now();
    int rc = store_begin(s->st, err, errlen);
    for (size_t i = 0; rc == TS_OK && i < s->changes.n; i++) {
        rc = record_one(s, &s->changes.v[i], now, err, errlen);
        if (rc == STORE_CONFLICT)
            ts_errf(err, errlen, "claim for workflow %lld lost to a concurrent change",
                    (long long)s->changes.v[i].workflow_id);
    }
    /* The commands behind these changes are applied in the same commit. */
    for (size_t i = 0; rc == TS_OK && i < s->n_cmd_pending; i++)
        rc = store_command_applied(s->st, s->cmd_pending[i], err, errlen);
    if (rc == TS_OK) rc = store_commit(s->st, err, errlen);
    if (rc == TS_OK) {
        for (size_t i = 0; i < s->n_cmd_pending; i++)
            if (s->cmd_pending[i] > s->last_command_id) s->last_command_id = s->cmd_pending[i];
        s->n_cmd_pending = 0;
    }
    if (rc == STORE_UNAVAILABLE) {
        store_rollback(s->st);
        return rc;
    }
    if (rc != TS_OK) {
        store_rollback(s->st);
        log_emit(LOG_WARN, NULL, NULL, "recording failed; rebuilding from the store",
                 json_pack("{ss}", "error", err));
        return rebuild(s, err, errlen);
    }
    change_list tmp = s->acting;
    s->acting = s->changes;
    s->changes = tmp;
    change_list_clear(&s->changes);
    return TS_OK;
}

/* The job's upstream jobs for the runner (a cell segmentation reads the
 * mask of a tissue_mask before it; asked only for types that read them):
 * ancestors in breadth-first order, so
 * the nearest come first, at most JOBS_MAX_INPUTS of them so a job at the
 * end of a long chain does not carry the whole chain. New reference. */
static json_t *upstream_inputs(const scheduler *s, int64_t workflow_id, const spec_workflow *spec,
                               int32_t job_index) {
    json_t *inputs = json_array();
    const spec_dag *d = &spec->dag;
    uint8_t *seen = ts_calloc(d->n, 1);
    uint32_t *queue = ts_malloc(d->n * sizeof(uint32_t));
    size_t head = 0, tail = 0;
    queue[tail++] = (uint32_t)job_index;
    seen[job_index] = 1;
    while (head < tail && json_array_size(inputs) < JOBS_MAX_INPUTS) {
        uint32_t j = queue[head++];
        for (uint32_t k = d->pred_start[j]; k < d->pred_start[j + 1]; k++) {
            uint32_t p = d->pred[k];
            if (seen[p]) continue;
            seen[p] = 1;
            queue[tail++] = p;
            const spec_job *pj = &spec->jobs[p];
            char *result = layout_result_dir(s->cfg.state_dir, workflow_id, pj->job_id);
            json_array_append_new(inputs, json_pack("{s:s, s:s, s:s?, s:s}", "job_id", pj->job_id,
                                                    "job_type", pj->job_type, "image_path",
                                                    pj->image_path, "result_dir", result));
            free(result);
            if (json_array_size(inputs) >= JOBS_MAX_INPUTS) break;
        }
    }
    free(seen);
    free(queue);
    return inputs;
}

/* Hands an attempt to the executor: a new start, or (s->adopting) the
 * adoption of one a gone scheduler left in a batch system. */
static void start_or_adopt(scheduler *s, int64_t workflow_id, const char *user,
                           int32_t job_index, int attempt, const char *external_id) {
    const spec_workflow *spec = engine_spec(s->eng, workflow_id);
    if (!spec) return;
    const spec_job *sj = &spec->jobs[job_index];
    /* Upstream jobs only for a type that reads them (jobs.h, reads_inputs);
     * a type this process does not know gets them, to be safe. */
    const job_type *type = jobs_find(sj->job_type);
    json_t *inputs = type == NULL || type->reads_inputs
                         ? upstream_inputs(s, workflow_id, spec, job_index)
                         : NULL;
    char *work = layout_work_dir(s->cfg.state_dir, workflow_id, sj->job_id);
    char *result = layout_result_dir(s->cfg.state_dir, workflow_id, sj->job_id);
    exec_job job = {.workflow_id = workflow_id, .job_index = job_index,
                    .attempt = attempt, .job_id = sj->job_id, .job_type = sj->job_type,
                    .user = user,
                    .image_path = sj->image_path, .data_roots = s->data_roots,
                    .params = sj->params, .cpus = sj->cpus,
                    .timeout_s = sj->timeout_s, .work_dir = work, .result_dir = result,
                    .inputs = inputs, .small_runner = type != NULL && !type->reads_slides};
    char err[TS_ERRLEN];
    int rc = s->adopting ? s->ex->ops->adopt(s->ex, &job, external_id, err, sizeof(err))
                         : s->ex->ops->start(s->ex, &job, err, sizeof(err));
    if (rc == TS_OK) {
        map_put_id(&s->started, job_key(workflow_id, job_index), (void *)(intptr_t)(attempt + 1));
    } else if (!s->adopting) {
        engine_job_exited(s->eng, (job_ref){workflow_id, job_index}, attempt, "failed", -1, err,
                          ts_now(), &s->changes);
    }
    json_decref(inputs);
    free(work);
    free(result);
}

static void start_job(scheduler *s, const core_change *ch) {
    start_or_adopt(s, ch->workflow_id, ch->user, ch->job_index, ch->attempt, NULL);
}

/* Times kept in the maps as microseconds, to fit a pointer-sized value. */
static void *as_us(double t) {
    return (void *)(intptr_t)(int64_t)(t * 1e6);
}

static double from_us(void *v) {
    return (double)(intptr_t)v / 1e6;
}

/* Reports wait and run times of jobs, and how attempts ended, for
 * metrics. An attempt found running by a new leader (interrupted) is
 * counted as ended although its start was another scheduler's. */
static void observe_timing(scheduler *s, const core_change *ch) {
    if (ch->kind != CHANGE_JOB) return;
    const spec_workflow *spec = engine_spec(s->eng, ch->workflow_id);
    if (!spec) return;
    const char *type = spec->jobs[ch->job_index].job_type;
    if (s->cfg.on_job_end && ch->from == JOB_RUNNING && ch->to != JOB_RUNNING && ch->outcome)
        s->cfg.on_job_end(s->cfg.timing_ctx, type, ch->outcome, ch->exit_code);
    if (!s->cfg.on_job_timing) return;
    int64_t key = job_key(ch->workflow_id, ch->job_index);
    if (ch->to == JOB_READY) map_put_id(&s->ready_at, key, as_us(ch->at));
    if (ch->to == JOB_RUNNING) {
        void *r = map_get_id(&s->ready_at, key);
        if (r) s->cfg.on_job_timing(s->cfg.timing_ctx, type, true, ch->at - from_us(r));
        map_del_id(&s->ready_at, key);
        map_put_id(&s->started_at, key, as_us(ch->at));
    } else if (ch->from == JOB_RUNNING) {
        void *st = map_get_id(&s->started_at, key);
        if (st) s->cfg.on_job_timing(s->cfg.timing_ctx, type, false, ch->at - from_us(st));
        map_del_id(&s->started_at, key);
    }
    if (job_state_final(ch->to)) map_del_id(&s->ready_at, key);
}

/* Acts on what was just committed: starts claimed jobs, stops cancelled
 * ones, and logs. */
static void act(scheduler *s) {
    for (size_t i = 0; i < s->acting.n; i++) {
        const core_change *ch = &s->acting.v[i];
        log_change(ch);
        observe_timing(s, ch);
        if (ch->kind == CHANGE_JOB && ch->to == JOB_RUNNING) start_job(s, ch);
    }
    change_list_clear(&s->acting);
    for (size_t i = 0; i < s->kills.n; i++)
        s->ex->ops->cancel(s->ex, s->kills.v[i].workflow_id, s->kills.v[i].job_index,
                           s->cfg.kill_grace_s);
    job_ref_list_clear(&s->kills);
    engine_forget_finished(s->eng);
}

/* Kills every job we run without recording anything: used when the lead is
 * lost, since the new leader re-runs them. */
static void drop_lead(scheduler *s) {
    job_ref_list running = {0};
    if (s->eng) engine_running_jobs(s->eng, &running);
    /* Jobs in a batch system stay there: the next leader adopts them. */
    for (size_t i = 0; !s->ex->ops->detached && i < running.n; i++)
        s->ex->ops->cancel(s->ex, running.v[i].workflow_id, running.v[i].job_index, 0);
    if (s->ex->ops->detached) s->ex->ops->release(s->ex);
    job_ref_list_free(&running);
    map_free(&s->started);
    map_init(&s->started);
    engine_free(s->eng);
    s->eng = NULL;
    s->leader = false;
    change_list_clear(&s->changes);
}

/* The leader keeps the store's write-ahead log bounded (store_checkpoint),
 * at the heartbeat's pace: the log is shared by every process, and the
 * leader is the one process that writes steadily. The heartbeat's lease
 * renewal may still be unsynced (deferred sync); the checkpoint fsyncs the
 * log before copying it, and sync_round rings for it as before. A
 * failure is logged, not fatal: the log is only larger until next time. */
static void bound_wal(scheduler *s) {
    char err[TS_ERRLEN];
    int64_t before = 0, after = 0;
    if (s->cfg.wal_max_bytes <= 0) return;
    if (store_checkpoint(s->st, INT64_MAX, &before, err, sizeof(err)) != TS_OK ||
        before <= s->cfg.wal_max_bytes)
        return;
    if (store_checkpoint(s->st, s->cfg.wal_max_bytes, &after, err, sizeof(err)) != TS_OK) {
        log_emit(LOG_WARN, NULL, NULL, "checkpointing the write-ahead log failed",
                 json_pack("{ss}", "error", err));
        return;
    }
    log_emit(after > s->cfg.wal_max_bytes ? LOG_WARN : LOG_INFO, NULL, NULL,
             after > s->cfg.wal_max_bytes ? "write-ahead log still large: readers held it"
                                          : "write-ahead log checkpointed and truncated",
             json_pack("{sI sI}", "bytes_before", (json_int_t)before, "bytes_after",
                       (json_int_t)after));
}

/* Takes, keeps or loses the lead, and renews job leases. */
static int heartbeat(scheduler *s, char *err, size_t errlen) {
    double now = ts_now();
    /* Followers try for the lease at the same pace as the leader renews it:
     * a takeover waits at most ttl + ttl/3, and idle followers cost the
     * store one write every ttl/3, not one per loop. */
    if (now < s->next_heartbeat) return TS_OK;
    bool leader = false;
    int rc = store_leader_acquire(s->st, s->owner, now, s->cfg.lease_ttl, &leader, err, errlen);
    if (rc != TS_OK) return rc;
    s->next_heartbeat = now + s->cfg.lease_ttl / 3;
    if (leader && s->leader && store_leader_term(s->st) != s->term) {
        /* Our lease lapsed and we won it again: a new election. Whatever we
         * decided in between was fenced off, so start over from the store. */
        log_emit(LOG_WARN, NULL, NULL, "re-elected after the lease lapsed; rebuilding",
                 json_pack("{sI sI}", "old_term", (json_int_t)s->term, "term",
                           (json_int_t)store_leader_term(s->st)));
        drop_lead(s);
    }
    if (!leader) {
        if (s->leader) {
            log_emit(LOG_WARN, NULL, NULL, "lost the scheduler lease; stopping local jobs", NULL);
            drop_lead(s);
        }
        return TS_OK;
    }
    if (!s->leader) {
        s->leader = true;
        s->term = store_leader_term(s->st);
        log_emit(LOG_INFO, NULL, NULL, "took the scheduler lease",
                 json_pack("{ss sI}", "owner", s->owner, "term", (json_int_t)s->term));
        return rebuild(s, err, errlen);
    }
    if ((rc = store_begin(s->st, err, errlen)) != TS_OK) return rc;
    rc = store_renew_leases(s->st, s->owner, now + s->cfg.lease_ttl, err, errlen);
    if (rc == TS_OK) rc = store_commit(s->st, err, errlen);
    if (rc != TS_OK) store_rollback(s->st);
    if (rc == TS_OK) bound_wal(s);
    return rc;
}

static void on_exec_event(scheduler *s, const exec_event *ev) {
    job_ref ref = {ev->workflow_id, ev->job_index};
    double now = ts_now();
    if (ev->kind == EXEC_PROGRESS) {
        engine_job_progress(s->eng, ref, ev->attempt, ev->progress, ev->message, now,
                            &s->changes);
        return;
    }
    map_del_id(&s->started, job_key(ev->workflow_id, ev->job_index));
    if (strcmp(ev->outcome, "interrupted") == 0) /* not the job's fault: a new attempt */
        engine_interrupt(s->eng, ref, ev->message, now, &s->changes);
    else
        engine_job_exited(s->eng, ref, ev->attempt, ev->outcome, ev->exit_code, ev->message, now,
                          &s->changes);
}

/* How long the loop may sleep: until the next heartbeat, retry time or poll,
 * and not at all while decisions wait to be recorded. */
static double wait_budget(const scheduler *s, double max_wait) {
    if (s->changes.n > 0) return 0;
    double now = ts_now(), budget = max_wait;
    if (s->cfg.poll_seconds < budget) budget = s->cfg.poll_seconds;
    if (s->next_heartbeat - now < budget) budget = s->next_heartbeat - now;
    double wake = s->eng ? engine_next_wakeup(s->eng, now) : 0;
    if (wake > 0 && wake - now < budget) budget = wake - now;
    return budget < 0 ? 0 : budget;
}

/* The newest command taken in, applied or still pending: commands after
 * it are new (pending ones wait for their commit, and must not be taken
 * twice). */
static int64_t commands_seen(const scheduler *s) {
    int64_t seen = s->last_command_id;
    for (size_t i = 0; i < s->n_cmd_pending; i++)
        if (s->cmd_pending[i] > seen) seen = s->cmd_pending[i];
    return seen;
}

/* Takes in new workflows and commands from the store (reads only). */
static int take_in(scheduler *s, char *err, size_t errlen) {
    int rc = load_new(s, err, errlen);
    if (rc != TS_OK) return rc;
    return store_commands_since(s->st, commands_seen(s), on_command, s, err, errlen);
}

/* Admits workflows and claims free slots in the engine; recorded later,
 * with everything else of the loop. */
static void decide(scheduler *s) {
    double now = ts_now();
    engine_admit(s->eng, now, &s->changes);
    if (s->claiming) engine_schedule(s->eng, now, &s->changes);
}

/* The wait after a round the store refused: doubles from the minimum up to
 * the maximum, so recovery is noticed soon and a long outage costs a
 * handful of attempts a minute. */
static double backoff_next(scheduler *s) {
    s->backoff = s->backoff > 0 ? s->backoff * 2 : SCHED_BACKOFF_MIN_S;
    if (s->backoff > SCHED_BACKOFF_MAX_S) s->backoff = SCHED_BACKOFF_MAX_S;
    return s->backoff;
}

/* Waits for job events (up to budget seconds) and takes them in. Progress
 * alone does not end the wait at once: a job's last progress line comes a
 * moment before its exit, so progress waits up to SCHED_PROGRESS_HOLD_S
 * (within the budget) for the next other event and is recorded in the same
 * commit. */
static void take_exec_events(scheduler *s, double budget, int wake_fd) {
    double end = ts_monotonic() + budget, hold_end = 0;
    for (;;) {
        int n = s->ex->ops->wait(s->ex, budget, wake_fd, s->events, SCHED_EVENTS_MAX);
        if (!s->leader) return;
        bool progress_only = n > 0;
        for (int i = 0; i < n; i++) {
            on_exec_event(s, &s->events[i]);
            if (s->events[i].kind != EXEC_PROGRESS) progress_only = false;
        }
        if (!progress_only) return;
        double now = ts_monotonic();
        if (hold_end == 0) hold_end = now + SCHED_PROGRESS_HOLD_S;
        budget = fmin(end, hold_end) - now;
        if (budget <= 0) return;
    }
}

/* What a deferred fsync's failure means: the round's claims may be lost,
 * so its jobs stop and the lead goes. */
static int sync_outcome(scheduler *s, int rc, const char *err) {
    if (rc == TS_OK) return TS_OK;
    log_emit(LOG_ERROR, NULL, NULL, "the store's fsync failed; stopping this scheduler's jobs",
             json_pack("{ss}", "error", err));
    if (s->leader) drop_lead(s);
    return STORE_UNAVAILABLE;
}

/* What the store committed since the last take, as a ticket for the
 * syncer's thread; the take's code. */
static int hand_over(scheduler *s, char *err, size_t errlen) {
    store_sync_ticket *t = NULL;
    int rc = store_sync_take(s->st, &t, err, errlen);
    syncer_submit(s->syncer, t);
    return rc;
}

/*
 * Makes the round's commits durable, after act() started their jobs
 * (docs/architecture.md, "Starting before the fsync"). With a local
 * executor a claimed job may start once its claim is committed - visible,
 * ordered, guarded - without waiting for the device: its process dies with
 * this scheduler, so a power cut that loses the claim (the WAL keeps a
 * prefix of the commits) also killed the job, and the restarted scheduler
 * runs it again. The fsync must still come before anything of the round is
 * published: the store rings the event listeners (the HTTP workers'
 * WebSocket hubs) only after it, and the scheduler acknowledges nothing
 * itself. With the syncer the fsync is handed over and the round does not
 * wait for it (syncer.h); without, it runs here. A failed fsync may have
 * lost claims of running jobs: sync_outcome stops them and drops the lead,
 * so the next round rebuilds from the store.
 */
static int sync_round(scheduler *s, char *err, size_t errlen) {
    if (!s->deferred_sync) return TS_OK;
    if (s->syncer == NULL) return sync_outcome(s, store_sync(s->st, err, errlen), err);
    return sync_outcome(s, hand_over(s, err, errlen), err);
}

/* A handed-over fsync that failed, as a failed store_sync (the store
 * reconnects, the lead goes); with wait, once every one handed over ran.
 * On a failure the tickets still queued run first: they were taken on the
 * failed connection and fail too, and one report must stand for them all,
 * not drop a lead retaken on the new connection later. */
static int sync_check(scheduler *s, bool wait, char *err, size_t errlen) {
    if (s->syncer == NULL) return TS_OK;
    int rc = wait ? syncer_drain(s->syncer, err, errlen) : syncer_failure(s->syncer, err, errlen);
    if (rc != TS_OK) {
        char later[TS_ERRLEN];
        (void)syncer_drain(s->syncer, later, sizeof(later));
        store_sync_failed(s->st);
    }
    return sync_outcome(s, rc, err);
}

int sched_sync_wait(scheduler *s, char *err, size_t errlen) {
    return sync_check(s, true, err, errlen);
}

/* act() and sync_round(): with the syncer the ticket is handed over first,
 * so that the fsync runs while the jobs start - work directories, log
 * files, the fork server's requests - and the round's events are rung as
 * soon as they are on disk, not after the starts. A failed take still
 * acts: its jobs are then stopped with the lead (sync_outcome). */
static int act_and_sync(scheduler *s, char *err, size_t errlen) {
    if (!s->deferred_sync || s->syncer == NULL) {
        act(s);
        return sync_round(s, err, errlen);
    }
    int rc = hand_over(s, err, errlen);
    act(s);
    return sync_outcome(s, rc, err);
}

/* One loop: take in what the store has, decide, wait for job events (not
 * at all when decisions are pending), decide again with the slots the
 * exits freed, then record every change of the loop - exits, the jobs they
 * made ready, claims, admissions, applied commands - in one transaction
 * and act on it. One commit per loop instead of one per phase: on SQLite
 * each commit is an fsync, the scheduler's cost per job. */
int sched_step(scheduler *s, double max_wait, int wake_fd, char *err, size_t errlen) {
    int rc = sync_check(s, false, err, errlen);
    if (rc == TS_OK) rc = heartbeat(s, err, errlen);
    if (rc == TS_OK && s->leader) rc = take_in(s, err, errlen);
    if (rc == STORE_UNAVAILABLE) {
        /* Jobs are still reaped (their exits wait in s->changes); the wake
         * fd is not watched: a doorbell cannot make the store come back. */
        take_exec_events(s, backoff_next(s), -1);
        return rc;
    }
    if (rc != TS_OK) return rc;
    if (s->leader) decide(s);
    take_exec_events(s, wait_budget(s, max_wait), wake_fd);
    if (!s->leader) {
        s->backoff = 0;
        return sync_round(s, err, errlen); /* the heartbeat's commit */
    }
    if ((rc = sync_check(s, false, err, errlen)) != TS_OK) return rc; /* failed while we waited */
    decide(s);
    if ((rc = record(s, err, errlen)) != TS_OK) {
        int src = sync_round(s, err, errlen); /* the heartbeat's, if any */
        return src != TS_OK ? src : rc;
    }
    s->backoff = 0;
    return act_and_sync(s, err, errlen);
}

int sched_shutdown(scheduler *s, const char *reason, char *err, size_t errlen) {
    if (!s->leader) return sync_check(s, true, err, errlen); /* its heartbeats' */
    if (s->ex->ops->detached) {
        /* Batch jobs go on without us; the next scheduler adopts them.
         * Recording them interrupted would run them twice. */
        int rc = record(s, err, errlen);
        if (rc == TS_OK) act(s);
        drop_lead(s);
        return store_leader_release(s->st, s->owner, err, errlen) != TS_OK ? TS_ERR : rc;
    }
    job_ref_list running = {0};
    engine_running_jobs(s->eng, &running);
    double now = ts_now();
    /* Stop the processes first: once recorded as interrupted, a job may be
     * claimed again by the next leader, and two attempts must never run. */
    for (size_t i = 0; i < running.n; i++) {
        s->ex->ops->cancel(s->ex, running.v[i].workflow_id, running.v[i].job_index, 0);
        engine_interrupt(s->eng, running.v[i], reason, now, &s->changes);
    }
    job_ref_list_free(&running);
    int rc = record(s, err, errlen);
    if (rc == TS_OK) act(s);
    if (rc == TS_OK) rc = sync_round(s, err, errlen);
    int drc = sync_check(s, true, err, errlen); /* every round's fsync done, or failed */
    if (rc == TS_OK) rc = drc;
    drop_lead(s);
    if (store_leader_release(s->st, s->owner, err, errlen) != TS_OK ||
        store_sync(s->st, err, errlen) != TS_OK)
        rc = TS_ERR;
    return rc;
}
