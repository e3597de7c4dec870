/*
 * slurm.c - the Slurm executor (see slurm.h for the contract).
 *
 * Every attempt is one `srun` record below, in one of four phases:
 *   WAITING    accepted by start(), not yet in Slurm: waiting for room under
 *              max_submitted, for the submission rate, or for its intent to
 *              be recorded;
 *   LOOKUP     may be in Slurm but its id is unknown (adopted with only the
 *              intent recorded, or sbatch failed in a way that may have
 *              submitted it): the next successful squeue decides, by the
 *              token in the job name;
 *   SUBMITTED  in Slurm with a known id, followed by squeue;
 *   ENDED      Slurm says it ended, or it left squeue: waiting for the exit
 *              marker (bounded) before deciding.
 * Everything runs in the scheduler's thread inside wait(); nothing blocks
 * except the Slurm commands, which are bounded in time. squeue and sacct
 * and what their answers mean are in slurm_track.c; the records are in
 * slurm_internal.h.
 */
#include "exec/slurm.h"
#include "exec/slurm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec/protocol.h"
#include "util/layout.h"
#include "util/log.h"
#include "util/util.h"

#define LOCAL_CHECK_S 0.25     /* markers of running jobs are looked for this often */
#define PROGRESS_INTERVAL_S 1.0 /* at most one progress event per job per second */
#define WARNING_SIGNAL "--signal=B:USR1@60"

/* ---- small helpers ---- */

/* (slurm_internal.h) */
exec_event *slurm_enqueue(slurm_exec *ex, exec_event_kind kind, const srun *r) {
    if (ex->q_len == ex->q_cap) {
        ex->q_cap = ex->q_cap ? ex->q_cap * 2 : 16;
        ex->queue = ts_realloc(ex->queue, ex->q_cap * sizeof(exec_event));
    }
    exec_event *e = &ex->queue[ex->q_len++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->workflow_id = r->workflow_id;
    e->job_index = r->job_index;
    e->attempt = r->attempt;
    e->progress = r->progress.fraction;
    return e;
}

static srun *find_run(slurm_exec *ex, int64_t workflow_id, int32_t job_index) {
    for (size_t i = 0; i < ex->n_runs; i++)
        if (ex->runs[i]->workflow_id == workflow_id && ex->runs[i]->job_index == job_index)
            return ex->runs[i];
    return NULL;
}

static void free_run(srun *r) {
    free(r->job_id);
    free(r->user);
    free(r->work_dir);
    free(r->log_path);
    free(r);
}

/* Removes run i (order is not kept). */
static void drop_run(slurm_exec *ex, size_t i) {
    free_run(ex->runs[i]);
    ex->runs[i] = ex->runs[--ex->n_runs];
}

/* A status message for the job's progress line (what the UI shows under
 * its bar): once per change, so the store sees a handful, not a stream. */
void slurm_emit_status(slurm_exec *ex, srun *r, const char *msg) {
    if (strcmp(r->last_status, msg) == 0) return;
    ts_strlcpy(r->last_status, msg, sizeof(r->last_status));
    exec_event *e = slurm_enqueue(ex, EXEC_PROGRESS, r);
    proto_copy_utf8(e->message, msg, sizeof(e->message));
}

/* Appends one line to the job's log (job.log): what tessera did with the
 * attempt, between the runner's own output. */
void slurm_log_line(const srun *r, const char *fmt, const char *a, const char *b) {
    FILE *f = fopen(r->log_path, "a");
    if (!f) return;
    char when[32];
    ts_iso8601(ts_now(), when, sizeof(when));
    fprintf(f, "=== %s attempt %d: ", when, r->attempt);
    fprintf(f, fmt, a, b);
    fputs(" ===\n", f);
    fclose(f);
}

/* ---- start, adopt ---- */

static srun *new_run(slurm_exec *ex, const exec_job *job) {
    srun *r = ts_calloc(1, sizeof(*r));
    r->workflow_id = job->workflow_id;
    r->job_index = job->job_index;
    r->attempt = job->attempt;
    r->job_id = ts_strdup(job->job_id);
    r->user = ts_strdup(job->user && job->user[0] ? job->user : "-");
    r->work_dir = ts_strdup(job->work_dir);
    r->log_path = layout_job_log_in(job->work_dir);
    r->cpus = job->cpus > 0 ? job->cpus : 1;
    r->timeout_s = job->timeout_s;
    r->slurm_exit = -1;
    r->last_emit = -1e9;
    slurm_token_format(r->token, sizeof(r->token), ex->instance, job->workflow_id,
                       job->job_index, job->attempt);
    if (ex->n_runs == ex->cap_runs) {
        ex->cap_runs = ex->cap_runs ? ex->cap_runs * 2 : 16;
        ex->runs = ts_realloc(ex->runs, ex->cap_runs * sizeof(srun *));
    }
    ex->runs[ex->n_runs++] = r;
    return r;
}

/* Writes WORK/attempt-N.sbatch: a shell script that execs the runner, so
 * the runner itself receives Slurm's signals (the USR1 warning, SIGTERM). */
static int write_script(slurm_exec *ex, const exec_job *job, char *err, size_t errlen) {
    char *path = layout_attempt_path(job->work_dir, job->attempt, LAYOUT_BATCH_SCRIPT);
    char *spec = layout_attempt_path(job->work_dir, job->attempt, LAYOUT_SPEC);
    char *q_exe = slurm_shell_quote(ex->self_exe), *q_spec = slurm_shell_quote(spec);
    char *q_dir = slurm_shell_quote(job->work_dir);
    char *tmp = ts_asprintf("%s.tmp", path);
    int rc = TS_ERR;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        ts_errf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    fprintf(f, "#!/bin/sh\n# tessera: attempt %d of job %s of workflow %lld\ncd %s || exit 1\n"
               "exec %s run-job %s\n",
            job->attempt, job->job_id, (long long)job->workflow_id, q_dir, q_exe, q_spec);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        ts_errf(err, errlen, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    rc = TS_OK;
cleanup:
    free(path);
    free(spec);
    free(q_exe);
    free(q_spec);
    free(q_dir);
    free(tmp);
    return rc;
}

/* The spec and the batch script are written at once (the runner and a
 * restarted scheduler need them); submission waits for wait(). */
static int sx_start(executor *base, const exec_job *job, char *err, size_t errlen) {
    slurm_exec *ex = (slurm_exec *)base;
    if (find_run(ex, job->workflow_id, job->job_index)) {
        ts_errf(err, errlen, "job %s (workflow %lld, index %d) is already running", job->job_id,
                (long long)job->workflow_id, (int)job->job_index);
        return TS_ERR;
    }
    if (proto_spec_write(job, err, errlen) != TS_OK) return TS_ERR;
    if (write_script(ex, job, err, errlen) != TS_OK) return TS_ERR;
    srun *r = new_run(ex, job);
    r->ph = PH_WAITING;
    ex->next_local = 0; /* submit at the next turn of wait() */
    return TS_OK;
}

static int sx_adopt(executor *base, const exec_job *job, const char *external_id, char *err,
                    size_t errlen) {
    slurm_exec *ex = (slurm_exec *)base;
    if (find_run(ex, job->workflow_id, job->job_index)) {
        ts_errf(err, errlen, "job %s is already tracked", job->job_id);
        return TS_ERR;
    }
    srun *r = new_run(ex, job);
    r->adopted = true;
    if (external_id && external_id[0]) {
        ts_strlcpy(r->slurm_id, external_id, sizeof(r->slurm_id));
        r->id_recorded = true;
        r->ph = PH_SUBMITTED;
    } else {
        r->ph = PH_LOOKUP;
    }
    ex->next_poll = 0;
    log_emit(LOG_INFO, NULL, r->job_id, "slurm: adopting attempt",
             json_pack("{ss ss si}", "token", r->token, "slurm_job", r->slurm_id, "attempt",
                       r->attempt));
    return TS_OK;
}

/* ---- submission ---- */

/* The sbatch command line for r; argv entries point into strs (freed by
 * the caller, NULL entries allowed). */
static char **sbatch_argv(slurm_exec *ex, const srun *r, char *strs[8]) {
    char **argv = ts_calloc(24 + ex->n_extra, sizeof(char *));
    size_t n = 0;
    long minutes = slurm_time_minutes(r->timeout_s);
    strs[0] = ts_asprintf("--job-name=%s", r->token);
    strs[1] = ts_asprintf("--cpus-per-task=%d", r->cpus);
    char *log = slurm_filename_escape(r->log_path);
    strs[2] = ts_asprintf("--output=%s", log);
    free(log);
    strs[3] = minutes > 0 ? ts_asprintf("--time=%ld", minutes) : NULL;
    strs[4] = ex->partition[0] ? ts_asprintf("--partition=%s", ex->partition) : NULL;
    strs[5] = ex->account[0] ? ts_asprintf("--account=%s", ex->account) : NULL;
    /* Who and what it is, for the cluster's admins (squeue -o %k): the
     * tenant, workflow and job (all from checked character sets). */
    strs[6] = ts_asprintf("--comment=tessera user=%s workflow=%lld job=%s", r->user,
                          (long long)r->workflow_id, r->job_id);
    strs[7] = layout_attempt_path(r->work_dir, r->attempt, LAYOUT_BATCH_SCRIPT);
    argv[n++] = "sbatch";
    argv[n++] = "--parsable";
    argv[n++] = "--no-requeue";
    argv[n++] = WARNING_SIGNAL;
    argv[n++] = "--open-mode=append";
    for (int i = 0; i < 7; i++)
        if (strs[i]) argv[n++] = strs[i];
    for (size_t i = 0; i < ex->n_extra; i++) argv[n++] = ex->extra[i];
    argv[n++] = strs[7];
    argv[n] = NULL;
    return argv;
}

/* Records r's token and id (id "" = intent). */
int slurm_journal(slurm_exec *ex, srun *r, const char *id, char *err, size_t errlen) {
    if (!ex->base.journal.record) return TS_OK;
    return ex->base.journal.record(ex->base.journal.ctx, r->workflow_id, r->job_index,
                                   r->attempt, r->token, id, err, errlen);
}

/* Ends r now with outcome and message. */
void slurm_finish(slurm_exec *ex, size_t i, const char *outcome, int exit_code,
                   const char *msg) {
    srun *r = ex->runs[i];
    if (r->progress_pending) {
        exec_event *p = slurm_enqueue(ex, EXEC_PROGRESS, r);
        proto_copy_utf8(p->message, r->progress.message, sizeof(p->message));
    }
    exec_event *e = slurm_enqueue(ex, EXEC_EXITED, r);
    e->outcome = outcome;
    e->exit_code = exit_code;
    proto_copy_utf8(e->message, msg, sizeof(e->message));
    log_emit(LOG_INFO, NULL, r->job_id, "slurm: attempt ended",
             json_pack("{ss ss ss ss si}", "token", r->token, "slurm_job", r->slurm_id,
                       "outcome", outcome, "reason", msg, "attempt", r->attempt));
    drop_run(ex, i);
}

/* Submits r (phase WAITING): intent, sbatch, id. */
static void submit_one(slurm_exec *ex, size_t i, double now) {
    srun *r = ex->runs[i];
    char err[TS_ERRLEN];
    if (slurm_journal(ex, r, "", err, sizeof(err)) != TS_OK) {
        static const char msg[] = "waiting to submit: the intent could not be recorded";
        if (strcmp(r->last_status, msg) != 0)
            log_emit(LOG_WARN, NULL, r->job_id, "slurm: intent not recorded; not submitting",
                     json_pack("{ss}", "error", err));
        slurm_emit_status(ex, r, msg);
        r->retry_at = now + ex->cfg.poll_s;
        return;
    }
    slurm_log_line(r, "submitting to Slurm as %s%s", r->token, "");
    char *strs[8];
    char **argv = sbatch_argv(ex, r, strs);
    slurm_cmd_result res;
    slurm_cmd_run(argv, ex->cfg.command_timeout_s, &res);
    char line[200];
    slurm_first_line(res.status == 0 ? res.out : res.errtext, line, sizeof(line));
    /* --parsable prints "id" or "id;cluster". */
    line[strcspn(line, ";")] = '\0';
    if (res.status == 0 && line[0] && strspn(line, "0123456789") == strlen(line)) {
        ex->stats.submitted++;
        ts_strlcpy(r->slurm_id, line, sizeof(r->slurm_id));
        r->ph = PH_SUBMITTED;
        slurm_log_line(r, "Slurm job %s%s", r->slurm_id, "");
        r->id_recorded = slurm_journal(ex, r, r->slurm_id, err, sizeof(err)) == TS_OK;
        slurm_emit_status(ex, r, "submitted to Slurm");
    } else {
        ex->stats.submit_failures++;
        char why[300];
        snprintf(why, sizeof(why), "sbatch: %s", line[0] ? line : "failed without a message");
        if (res.timed_out || slurm_error_transient(res.errtext)) {
            /* It may have reached slurmctld: look for the token before any
             * new submission. */
            r->ph = PH_LOOKUP;
            slurm_emit_status(ex, r, why);
            log_emit(LOG_WARN, NULL, r->job_id, "slurm: sbatch failed; will look the job up",
                     json_pack("{ss ss}", "token", r->token, "error", why));
        } else {
            slurm_log_line(r, "%s%s", why, "");
            slurm_finish(ex, i, "failed", -1, why);
        }
    }
    for (int k = 0; k < 8; k++) free(strs[k]);
    free(argv);
    slurm_cmd_free(&res);
}

/* How many of ours are (or may be) in Slurm. */
static int in_slurm(const slurm_exec *ex) {
    int n = 0;
    for (size_t i = 0; i < ex->n_runs; i++)
        if (ex->runs[i]->ph == PH_LOOKUP || ex->runs[i]->ph == PH_SUBMITTED) n++;
    return n;
}

/* Submits waiting attempts, oldest first, within max_submitted and the
 * rate (a token bucket of one second's worth). */
static void submit_due(slurm_exec *ex, double now) {
    double rate = ex->cfg.submit_rate;
    ex->tokens = fmin(fmax(rate, 1.0), ex->tokens + (now - ex->tokens_at) * rate);
    ex->tokens_at = now;
    int room = ex->cfg.max_submitted - in_slurm(ex);
    int waiting = 0;
    for (size_t i = 0; i < ex->n_runs;) {
        srun *r = ex->runs[i];
        if (r->ph != PH_WAITING) {
            i++;
            continue;
        }
        if (now < r->retry_at) { /* its intent could not be recorded a moment ago */
            waiting++;
            i++;
            continue;
        }
        if (room <= 0 || ex->tokens < 1.0 || ex->unreachable) {
            waiting++;
            if (room <= 0) {
                char msg[160];
                snprintf(msg, sizeof(msg), "waiting to submit: %d jobs in Slurm "
                         "(TESSERA_SLURM_MAX_SUBMITTED)", ex->cfg.max_submitted);
                slurm_emit_status(ex, r, msg);
            }
            i++;
            continue;
        }
        ex->tokens -= 1.0;
        room--;
        size_t before = ex->n_runs;
        submit_one(ex, i, now);
        if (ex->n_runs == before) i++; /* else slot i holds another run now */
    }
    ex->stats.waiting = waiting;
}

/* ---- tracking ---- */

static void scancel(slurm_exec *ex, srun *r, double now) {
    if (r->cancel_sent || !r->slurm_id[0] || now < r->retry_at) return;
    char *argv[] = {"scancel", r->slurm_id, NULL};
    slurm_cmd_result res;
    ex->stats.scancel_calls++;
    slurm_cmd_run(argv, ex->cfg.command_timeout_s, &res);
    r->cancel_sent = res.status == 0;
    if (!r->cancel_sent) {
        r->retry_at = now + ex->cfg.poll_s;
        char line[200];
        slurm_first_line(res.errtext, line, sizeof(line));
        log_emit(LOG_WARN, NULL, r->job_id, "slurm: scancel failed; will retry",
                 json_pack("{ss ss}", "slurm_job", r->slurm_id, "error", line));
    } else {
        slurm_log_line(r, "scancel %s (%s)", r->slurm_id,
                 r->why == WHY_TIMEOUT ? "timeout" : "cancelled");
    }
    slurm_cmd_free(&res);
}

/* ---- deciding ---- */

/* Decides an attempt whose marker is there, or whose Slurm job is over.
 * Returns true if it finished (slot i then holds another run). */
static bool decide(slurm_exec *ex, size_t i, double now) {
    srun *r = ex->runs[i];
    proto_exit m;
    char merr[TS_ERRLEN], msg[300];
    int mrc = proto_exit_read(r->work_dir, r->attempt, &m, merr, sizeof(merr));
    if (mrc == TS_OK && strcmp(m.outcome, "succeeded") == 0) {
        snprintf(msg, sizeof(msg), "Slurm job %s succeeded on %s", r->slurm_id, m.host);
        slurm_finish(ex, i, "succeeded", m.exit_code, msg);
        return true;
    }
    if (r->ph != PH_ENDED) return false; /* a failure marker waits for Slurm's word */
    bool slurm_said = r->state[0] && strcmp(r->state, "COMPLETED") != 0 &&
                      strncmp(r->state, "FAILED", 6) != 0;
    if (r->why == WHY_CANCEL) {
        slurm_finish(ex, i, "cancelled", mrc == TS_OK ? m.exit_code : -1, "cancelled");
    } else if (r->why == WHY_TIMEOUT) {
        snprintf(msg, sizeof(msg), "timed out after %g s (Slurm job %s cancelled)", r->timeout_s,
                 r->slurm_id);
        slurm_finish(ex, i, "timeout", mrc == TS_OK ? m.exit_code : -1, msg);
    } else if (mrc == TS_OK && !slurm_said) {
        snprintf(msg, sizeof(msg), "exited with status %d: %s", m.exit_code, m.reason);
        slurm_finish(ex, i, "failed", m.exit_code, msg);
    } else if (slurm_said || now - r->ended_at >= ex->cfg.marker_wait_s) {
        char why[200];
        const char *outcome = slurm_state_outcome(r->state, r->slurm_exit, why, sizeof(why));
        snprintf(msg, sizeof(msg), "%s (Slurm job %s)", why, r->slurm_id);
        slurm_log_line(r, "%s%s", msg, "");
        slurm_finish(ex, i, outcome, r->slurm_exit, msg);
    } else {
        return false; /* the marker may still be on its way (shared filesystem) */
    }
    return true;
}

/* Reads new progress of a running job, emitting at most one event a second. */
static void read_progress(slurm_exec *ex, srun *r, double now) {
    if (strcmp(r->state, "RUNNING") != 0) return;
    if (now - r->last_emit < PROGRESS_INTERVAL_S) return;
    char *path = layout_attempt_path(r->work_dir, r->attempt, LAYOUT_PROGRESS);
    bool changed = false;
    proto_progress_poll(path, &r->progress_off, &r->lines, &r->progress, &changed);
    free(path);
    if (!changed) return;
    exec_event *e = slurm_enqueue(ex, EXEC_PROGRESS, r);
    proto_copy_utf8(e->message, r->progress.message, sizeof(e->message));
    ts_strlcpy(r->last_status, r->progress.message, sizeof(r->last_status));
    r->progress_pending = false;
    r->last_emit = now;
}

/* Between squeue calls: markers, progress, deadlines, cancels to resend,
 * ids to record again. */
static void local_checks(slurm_exec *ex, double now) {
    for (size_t i = 0; i < ex->n_runs;) {
        srun *r = ex->runs[i];
        if (r->ph == PH_SUBMITTED || r->ph == PH_ENDED) {
            if (decide(ex, i, now)) continue;
            read_progress(ex, r, now);
            if (r->deadline > 0 && now >= r->deadline && r->why == WHY_NONE) {
                r->why = WHY_TIMEOUT;
                scancel(ex, r, now);
            } else if (r->why != WHY_NONE && r->ph == PH_SUBMITTED) {
                scancel(ex, r, now); /* a no-op once it was sent */
            }
            if (!r->id_recorded && r->ph == PH_SUBMITTED && now >= r->retry_at) {
                char err[TS_ERRLEN];
                r->id_recorded = slurm_journal(ex, r, r->slurm_id, err, sizeof(err)) == TS_OK;
                if (!r->id_recorded) r->retry_at = now + ex->cfg.poll_s;
            }
        }
        i++;
    }
}

/* ---- wait, cancel, the rest ---- */

static int dequeue(slurm_exec *ex, exec_event *events, size_t max) {
    size_t n = ex->q_len < max ? ex->q_len : max;
    if (n == 0) return 0;
    memcpy(events, ex->queue, n * sizeof(exec_event));
    memmove(ex->queue, ex->queue + n, (ex->q_len - n) * sizeof(exec_event));
    ex->q_len -= n;
    return (int)n;
}

static bool needs_squeue(const slurm_exec *ex) {
    if (ex->unreachable) return ex->n_runs > 0; /* until it answers, nothing is submitted */
    for (size_t i = 0; i < ex->n_runs; i++)
        if (ex->runs[i]->ph != PH_WAITING) return true;
    return false;
}

/* The executor's loop, in the scheduler's thread: submit what is due, one
 * squeue per poll interval, local checks every LOCAL_CHECK_S; sleeps on
 * wake_fd in between. */
static int sx_wait(executor *base, double timeout_s, int wake_fd, exec_event *events, size_t max) {
    slurm_exec *ex = (slurm_exec *)base;
    double end = ts_monotonic() + (timeout_s > 0 ? timeout_s : 0);
    for (bool turned = false;; turned = true) {
        double now = ts_monotonic();
        if (now >= ex->next_poll && needs_squeue(ex)) {
            slurm_poll(ex, now);
            slurm_ask_sacct(ex, now);
            ex->next_poll = now + ex->cfg.poll_s;
        }
        if (now >= ex->next_local) {
            submit_due(ex, now);
            local_checks(ex, now);
            ex->next_local = now + LOCAL_CHECK_S;
        }
        if (ex->q_len > 0 || (turned && now >= end)) break;
        double due = fmin(end, ex->next_local);
        if (needs_squeue(ex)) due = fmin(due, ex->next_poll);
        if (ex->n_runs == 0) due = end;
        int ms = due > now ? (int)ceil(fmin(due - now, 86400.0) * 1000.0) : 0;
        struct pollfd p = {.fd = wake_fd, .events = POLLIN};
        if (poll(&p, wake_fd >= 0 ? 1 : 0, ms) > 0) break;
    }
    return dequeue(ex, events, max);
}

static void sx_cancel(executor *base, int64_t workflow_id, int32_t job_index, double grace_s) {
    (void)grace_s; /* Slurm's KillWait is the grace period */
    slurm_exec *ex = (slurm_exec *)base;
    for (size_t i = 0; i < ex->n_runs; i++) {
        srun *r = ex->runs[i];
        if (r->workflow_id != workflow_id || r->job_index != job_index) continue;
        if (r->why != WHY_NONE) return;
        r->why = WHY_CANCEL;
        if (r->ph == PH_WAITING) {
            slurm_finish(ex, i, "cancelled", -1, "cancelled before it was submitted to Slurm");
            return;
        }
        scancel(ex, r, ts_monotonic());
        return;
    }
}

static size_t sx_running(executor *base) {
    return ((slurm_exec *)base)->n_runs;
}

static void sx_release(executor *base) {
    slurm_exec *ex = (slurm_exec *)base;
    while (ex->n_runs > 0) drop_run(ex, ex->n_runs - 1);
    ex->q_len = 0;
}

static void sx_destroy(executor *base) {
    slurm_exec *ex = (slurm_exec *)base;
    if (!ex) return;
    sx_release(base);
    free(ex->runs);
    free(ex->queue);
    for (size_t i = 0; i < ex->n_extra; i++) free(ex->extra[i]);
    free(ex->extra);
    free(ex->self_exe);
    free(ex->instance);
    free(ex->partition);
    free(ex->account);
    free(ex);
}

static const executor_ops slurm_ops = {
    .start = sx_start,
    .cancel = sx_cancel,
    .wait = sx_wait,
    .running = sx_running,
    .destroy = sx_destroy,
    .detached = true,
    .adopt = sx_adopt,
    .release = sx_release,
};

/* True if cmd is an executable file in a directory of PATH. */
static bool on_path(const char *cmd) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (const char *p = path; *p;) {
        size_t n = strcspn(p, ":");
        char *full = ts_asprintf("%.*s/%s", (int)n, p, cmd);
        bool ok = access(full, X_OK) == 0;
        free(full);
        if (ok) return true;
        p += n;
        if (*p) p++;
    }
    return false;
}

executor *exec_slurm_new(const exec_slurm_config *cfg, char *err, size_t errlen) {
    static const char *const needed[] = {"sbatch", "squeue", "scancel", NULL};
    for (size_t i = 0; needed[i]; i++)
        if (!on_path(needed[i])) {
            ts_errf(err, errlen, "TESSERA_EXECUTOR=slurm: %s is not on PATH (install Slurm's "
                                 "client commands on this host)", needed[i]);
            return NULL;
        }
    if (!cfg->self_exe || !cfg->self_exe[0] || !cfg->instance || !cfg->instance[0]) {
        ts_errf(err, errlen, "slurm executor: no tessera binary or instance id");
        return NULL;
    }
    slurm_exec *ex = ts_calloc(1, sizeof(*ex));
    ex->base.ops = &slurm_ops;
    ex->cfg = *cfg;
    ex->self_exe = ts_strdup(cfg->self_exe);
    ex->instance = ts_strdup(cfg->instance);
    ex->partition = ts_strdup(cfg->partition ? cfg->partition : "");
    ex->account = ts_strdup(cfg->account ? cfg->account : "");
    if (ex->cfg.max_submitted < 1) ex->cfg.max_submitted = 1;
    if (!(ex->cfg.submit_rate > 0)) ex->cfg.submit_rate = 20;
    if (!(ex->cfg.poll_s > 0)) ex->cfg.poll_s = 2;
    if (!(ex->cfg.command_timeout_s > 0)) ex->cfg.command_timeout_s = 30;
    snprintf(ex->prefix, sizeof(ex->prefix), "ts.%s.", ex->instance);
    for (const char *p = cfg->extra_args ? cfg->extra_args : ""; *p;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (n == 0) break;
        ex->extra = ts_realloc(ex->extra, (ex->n_extra + 1) * sizeof(char *));
        ex->extra[ex->n_extra++] = ts_strndup(p, n);
        p += n;
    }
    ex->tokens = fmax(ex->cfg.submit_rate, 1.0);
    ex->tokens_at = ts_monotonic();
    ex->stats.reachable = true;
    return &ex->base;
}

void exec_slurm_stats_get(executor *base, exec_slurm_stats *out) {
    *out = ((slurm_exec *)base)->stats;
}
