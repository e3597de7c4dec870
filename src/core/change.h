/*
 * change.h - one state change decided by the engine, to be recorded by the
 * store (and turned into an event) before anything acts on it.
 *
 * The engine produces changes; the scheduler hands each to the store inside
 * one transaction per tick; the store writes the row update, the attempt
 * history and the event, all or nothing. Pointers are borrowed from the
 * engine and valid until the engine next changes that workflow.
 */
#ifndef TESSERA_CORE_CHANGE_H
#define TESSERA_CORE_CHANGE_H

#include <stdint.h>

typedef enum change_kind {
    CHANGE_WORKFLOW,       /* workflow state: from/to are wf_state */
    CHANGE_JOB,            /* job state: from/to are job_state */
    CHANGE_JOB_PROGRESS,   /* a running job's progress (no state change) */
    CHANGE_QUEUE_POSITION, /* a waiting workflow's place in line (no state change) */
} change_kind;

typedef struct core_change {
    change_kind kind;
    int64_t workflow_id;
    const char *user;   /* the workflow's owner */
    int32_t job_index;  /* -1 for workflow-level changes */
    const char *job_id; /* NULL for workflow-level changes */
    int from, to;       /* states; equal for progress / queue position */
    int attempt;        /* job: the attempt it is on after the change (1-based, 0 = never started) */
    int failures;       /* job: attempts that failed so far (crash re-runs excluded) */
    int cpus;           /* job: cpus it holds while running */
    double at;          /* when (epoch seconds) */
    double not_before;  /* job -> ready for a retry: earliest start; else 0 */
    double progress;    /* job: 0..1 */
    int exit_code;      /* job leaving running: process exit status, -1 if none */
    int queue_position; /* CHANGE_QUEUE_POSITION / queued workflow: 1-based */
    const char *event_type; /* "job.started", "workflow.admitted", ... (static) */
    const char *outcome;    /* job leaving running: how the attempt ended, recorded in its
                               attempt row: "succeeded", "failed", "timeout", "cancelled",
                               "interrupted" (static); NULL otherwise */
    char reason[256];   /* why, in words a user understands; may be "" */
} core_change;

#endif
