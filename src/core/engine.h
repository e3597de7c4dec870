/*
 * engine.h - the scheduling engine: every rule of DESIGN §1-§2 as pure state
 * transitions over the workflows a scheduler holds. No I/O, no clock: the
 * caller passes `now` and records the changes the engine returns.
 *
 * The caller's loop (src/sched/) is:
 *   1. feed facts: engine_add (new or reloaded workflows), engine_job_exited,
 *      engine_job_progress, engine_cancel_*, engine_interrupt;
 *   2. ask for decisions: engine_admit (who may run), engine_schedule (which
 *      jobs start now);
 *   3. record every change returned, in order, in one store transaction;
 *      only then act on them (start processes, kill jobs).
 * If recording fails, the engine is ahead of the store: the caller throws the
 * engine away and rebuilds it from the store (engine_add of each unfinished
 * workflow), which is always a correct state.
 *
 * Invariants (checked by tests/unit/test_engine_random.c over random DAGs):
 *   - a job is ready or running only when every predecessor has succeeded;
 *   - the cpus of running jobs never exceed limits.concurrency_limit;
 *   - at most limits.max_active_users users have a running workflow;
 *   - the admission line is FIFO by workflow id, and while any user waits, an
 *     active user's newer workflow waits behind it (no starvation);
 *   - a free slot goes to the active user with the fewest running cpus
 *     (ties: the one served least recently); inside a user: higher priority,
 *     then older workflow, then job order;
 *   - every state change is legal (state.h) and every job of a workflow ends
 *     in a final state, after which the workflow does.
 */
#ifndef TESSERA_CORE_ENGINE_H
#define TESSERA_CORE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"
#include "core/spec.h"
#include "core/state.h"

typedef struct engine_limits {
    int max_active_users;  /* >= 1 */
    int concurrency_limit; /* cpus, >= 1 */
} engine_limits;

/* A growing array of changes, reused tick after tick. */
typedef struct change_list {
    core_change *v;
    size_t n, cap;
} change_list;

void change_list_clear(change_list *cl);
void change_list_free(change_list *cl);

/* One job of one workflow. */
typedef struct job_ref {
    int64_t workflow_id;
    int32_t job_index;
} job_ref;

typedef struct job_ref_list {
    job_ref *v;
    size_t n, cap;
} job_ref_list;

void job_ref_list_push(job_ref_list *l, job_ref ref);
void job_ref_list_clear(job_ref_list *l);
void job_ref_list_free(job_ref_list *l);

/* A job's state as recorded, for reloading a workflow into an engine. */
typedef struct engine_job_init {
    job_state state;
    int attempt;
    int failures;
    double not_before;
    double progress;
} engine_job_init;

typedef struct engine engine;

engine *engine_new(const engine_limits *lim);
void engine_free(engine *e);

/* Adds a workflow. spec is owned by the engine from now on (even on error).
 * jobs: the recorded state of each job (spec->n_jobs entries), or NULL for
 * a new workflow (all pending). A workflow in a final state is ignored.
 * A running job stays running: the caller either lets the engine hear its
 * exit or calls engine_interrupt. TS_ERR if the id is already present or the
 * recorded states are inconsistent (e.g. a ready job with an unfinished
 * predecessor). */
int engine_add(engine *e, int64_t id, const char *user, wf_state state, bool cancel_requested,
               spec_workflow *spec, const engine_job_init *jobs, char *err, size_t errlen);

/* Admits queued workflows as the rules allow (queued -> running, their jobs
 * with no predecessors pending -> ready) and reports each still-waiting
 * workflow whose place in line changed (CHANGE_QUEUE_POSITION). */
void engine_admit(engine *e, double now, change_list *out);

/* Chooses ready jobs to start now within the free cpus, by fair share, and
 * marks them running (a new attempt each). A job needing more cpus than the
 * whole limit fails at once with that reason. */
void engine_schedule(engine *e, double now, change_list *out);

/* The executor's report that an attempt ended. outcome: "succeeded",
 * "failed", "timeout", "cancelled". Stale reports (the job is not running
 * that attempt) are ignored. A failure with retries left puts the job back
 * to ready after retry_delay_s * 2^(failures-1); otherwise the job fails and
 * its dependents are skipped. A job whose cancel was requested ends
 * cancelled unless it succeeded. */
void engine_job_exited(engine *e, job_ref job, int attempt, const char *outcome, int exit_code,
                       const char *message, double now, change_list *out);

/* Progress of a running attempt (0..1) with the job's own words for it
 * ("3 of 12 tiles"; may be NULL); stale reports are ignored. */
void engine_job_progress(engine *e, job_ref job, int attempt, double progress,
                         const char *message, double now, change_list *out);

/* A running job whose process is gone without a report (the scheduler that
 * ran it died): back to ready for a new attempt, with reason. Not counted as
 * a failure. */
void engine_interrupt(engine *e, job_ref job, const char *reason, double now, change_list *out);

/* Cancels a workflow: queued -> cancelled at once; running: every job not
 * yet running is cancelled, running jobs are added to kill (the caller stops
 * them; their exit completes the cancel). Idempotent. STORE-style codes:
 * TS_OK, or 1 if the workflow is not held by the engine. */
int engine_cancel_workflow(engine *e, int64_t workflow_id, const char *reason, double now,
                           change_list *out, job_ref_list *kill);

/* Cancels one job: pending/ready -> cancelled and its dependents skipped;
 * running -> added to kill. Idempotent; 1 if not held. */
int engine_cancel_job(engine *e, job_ref job, double now, change_list *out, job_ref_list *kill);

/* A user's retry of a failed, cancelled or skipped job of a running
 * workflow: the job and its skipped dependents go back to pending (ready at
 * once when nothing unfinished precedes them) with a fresh retry budget.
 * A queued (revived) workflow's jobs stay pending until admission.
 * TS_ERR with a reason otherwise; 1 if the workflow is not held. */
int engine_retry_job(engine *e, job_ref job, double now, change_list *out, char *err,
                     size_t errlen);

/* A user's retry of a job of a finished (failed or cancelled) workflow the
 * engine no longer holds: takes the recorded workflow back (spec owned, as
 * in engine_add), puts it back in the admission line (-> queued), and
 * retries the job as engine_retry_job does. TS_ERR with a reason if the
 * workflow or job is not in a retryable state. */
int engine_revive(engine *e, int64_t id, const char *user, wf_state state, spec_workflow *spec,
                  const engine_job_init *jobs, int32_t job_index, double now, change_list *out,
                  char *err, size_t errlen);

/* Earliest time > now at which a retrying job becomes startable, or 0. */
double engine_next_wakeup(const engine *e, double now);

/* Workflows held that are not final. */
size_t engine_unfinished(const engine *e);

/* Cpus of running jobs, active users, workflows waiting in line. */
int engine_running_cpus(const engine *e);
int engine_active_users(const engine *e);
size_t engine_line_length(const engine *e);

/* Running jobs of every workflow (for lease renewal and shutdown). */
void engine_running_jobs(const engine *e, job_ref_list *out);

/* A held workflow's state; TS_ERR if not held. */
int engine_workflow_state(const engine *e, int64_t workflow_id, wf_state *out);

/* Job's state and attempt; TS_ERR if not held. */
int engine_job_state(const engine *e, job_ref job, job_state *state, int *attempt);

/* The spec of a held workflow (borrowed), or NULL. */
const spec_workflow *engine_spec(const engine *e, int64_t workflow_id);

/* Frees workflows that reached a final state (call after recording). */
void engine_forget_finished(engine *e);

#endif
