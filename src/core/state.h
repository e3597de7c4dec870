/*
 * state.h - the job and workflow state machines (DESIGN §1).
 *
 * Job:      pending -> ready -> running -> succeeded | failed | cancelled
 *           pending -> skipped | cancelled        (a predecessor failed / user cancel)
 *           ready   -> cancelled | skipped | failed   (failed: can never start)
 *           running -> ready                      (automatic retry, or re-run after a crash)
 *           failed | cancelled | skipped -> pending   (a user's manual retry)
 * Workflow: queued -> running | cancelled
 *           running -> succeeded | failed | cancelled
 *           failed | cancelled -> queued          (a user's retry of a job: re-admission)
 *
 * Invariant kept by every caller: a state only changes through a transition
 * that *_transition_legal() accepts. The engine asserts it; the store relies
 * on it.
 */
#ifndef TESSERA_CORE_STATE_H
#define TESSERA_CORE_STATE_H

#include <stdbool.h>

typedef enum job_state {
    JOB_PENDING = 0,
    JOB_READY,
    JOB_RUNNING,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_SKIPPED,
    JOB_STATE_COUNT
} job_state;

typedef enum wf_state {
    WF_QUEUED = 0,
    WF_RUNNING,
    WF_SUCCEEDED,
    WF_FAILED,
    WF_CANCELLED,
    WF_STATE_COUNT
} wf_state;

/* Lower-case names as in the API ("pending", "running", ...). */
const char *job_state_name(job_state s);
const char *wf_state_name(wf_state s);

/* Parses a name; returns TS_OK or TS_ERR for an unknown name. */
int job_state_parse(const char *name, job_state *out);
int wf_state_parse(const char *name, wf_state *out);

bool job_state_final(job_state s);
bool wf_state_final(wf_state s);

bool job_transition_legal(job_state from, job_state to);
bool wf_transition_legal(wf_state from, wf_state to);

#endif
