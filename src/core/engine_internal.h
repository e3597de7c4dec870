/*
 * engine_internal.h - the engine's records, shared by engine.c (workflows and
 * job transitions), admission.c (the line) and slots.c (fair share). Not for
 * use outside src/core/engine*.c, admission.c and slots.c.
 *
 * Invariants kept by ejob_set_state(), the only place a job's state changes:
 *   - ewf.ready holds exactly the indices of READY jobs, ascending;
 *   - ewf.n_running / n_final / n_failed / n_cancelled count those states;
 *   - engine.running_cpus and euser.running_cpus sum the cpus of RUNNING jobs;
 *   - ejob.unmet counts the job's predecessors that have not succeeded.
 * And by wf_set_state(): euser.running lists the user's RUNNING workflows
 * sorted by (priority desc, id asc); engine.active_users counts users whose
 * list is non-empty; engine.line holds QUEUED workflows sorted by id.
 */
#ifndef TESSERA_CORE_ENGINE_INTERNAL_H
#define TESSERA_CORE_ENGINE_INTERNAL_H

#include "core/engine.h"
#include "core/map.h"

typedef struct ejob {
    job_state state;
    int attempt;
    int failures;
    double not_before;
    double progress;
    uint32_t unmet;
    bool cancel_requested;
} ejob;

typedef struct euser euser;

typedef struct ewf {
    int64_t id;
    char *user_name;
    euser *user;
    spec_workflow *spec;
    ejob *jobs;
    wf_state state;
    bool cancel_requested;
    bool needs_sweep; /* reloaded: re-derive ready jobs and completion at next admit */
    size_t n_running, n_final, n_failed, n_cancelled;
    uint32_t *ready;
    size_t n_ready, cap_ready;
    int last_position; /* last queue position reported, 0 = none */
} ewf;

struct euser {
    char *name;
    int running_cpus;
    ewf **running;
    size_t n_running, cap_running;
    uint64_t last_served;
};

struct engine {
    engine_limits lim;
    map wfs;   /* id -> ewf */
    map users; /* name -> euser */
    ewf **all;
    size_t n_all, cap_all;
    ewf **line;
    size_t n_line, cap_line;
    int running_cpus;
    int active_users; /* users with a running workflow: kept by wf_set_state, never counted */
    uint64_t serve_clock;
    /* So that a loop's admission costs what changed, not what is queued: */
    bool line_changed; /* the line gained or lost a workflow: positions to re-derive */
    size_t n_to_sweep; /* reloaded workflows with needs_sweep set */
    /* Workflows that reached a final state since engine_forget_finished
     * last ran (an upper bound: one revived since is still counted), so
     * that a loop with nothing finished does not scan every held one. */
    size_t n_newly_final;
};

/* Appends a change for wf (job_index -1 = the workflow itself) and returns
 * it with the common fields filled. */
core_change *change_push(change_list *out, change_kind kind, const ewf *wf, int32_t job_index,
                         double now);

/* Moves job idx of wf to state `to` (must be legal), keeping every counter
 * above, and records the change with its event type. Returns the change so
 * the caller can add a reason, outcome or exit code. */
core_change *ejob_set_state(engine *e, ewf *wf, uint32_t idx, job_state to, double now,
                            change_list *out);

/* Puts wf into the admission line at its place by id. */
void line_insert(engine *e, ewf *wf);

/* Moves wf to `to` (must be legal), keeping the user and line lists. */
core_change *wf_set_state(engine *e, ewf *wf, wf_state to, double now, change_list *out);

/* If every job of a running workflow is final, finishes it. */
void wf_finish_if_done(engine *e, ewf *wf, double now, change_list *out);

/* Makes pending jobs with no unmet predecessors ready (after admission or
 * reload). */
void wf_release_ready(engine *e, ewf *wf, double now, change_list *out);

/* Skips every pending descendant of job idx, naming cause in the reason. */
void wf_skip_dependents(engine *e, ewf *wf, uint32_t idx, const char *cause, double now,
                        change_list *out);

#endif
