/*
 * slurm_internal.h - what the Slurm executor's files share (src/exec/slurm.c:
 * submission, deciding, the executor's operations; slurm_track.c: squeue and
 * sacct). Not an interface: exec/slurm.h is the module's contract.
 */
#ifndef TESSERA_EXEC_SLURM_INTERNAL_H
#define TESSERA_EXEC_SLURM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec/protocol.h"
#include "exec/slurm.h"

typedef enum phase { PH_WAITING, PH_LOOKUP, PH_SUBMITTED, PH_ENDED } phase;
typedef enum why_end { WHY_NONE, WHY_CANCEL, WHY_TIMEOUT } why_end;

typedef struct srun {
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    char *job_id, *work_dir, *log_path;
    char *user;          /* the workflow's owner (tenant), for --comment */
    char token[96];
    char slurm_id[32];
    char state[32];      /* last state Slurm reported ("" = none yet or vanished) */
    char reason[96];     /* Slurm's reason for a pending job */
    phase ph;
    bool adopted;        /* from a scheduler that is gone */
    bool id_recorded;    /* the id is in the journal */
    bool cancel_sent;    /* scancel succeeded */
    why_end why;
    int cpus;
    double timeout_s;
    double deadline;     /* monotonic; 0 = not running yet or no timeout */
    double ended_at;     /* monotonic time the phase became ENDED */
    double retry_at;     /* monotonic: a failed intent, id record or scancel is tried again
                            no sooner (once per poll, not in a tight loop) */
    int slurm_exit;      /* from sacct, -1 = unknown */
    off_t progress_off;
    proto_lines lines;
    proto_progress progress;
    bool progress_pending;
    double last_emit;
    char last_status[200]; /* the last status message emitted (pending reason etc.) */
} srun;

typedef struct slurm_exec {
    executor base;
    exec_slurm_config cfg;
    char *self_exe, *instance, *partition, *account;
    char **extra;        /* extra_args split */
    size_t n_extra;
    char prefix[64];     /* "ts.<instance>." */
    srun **runs;
    size_t n_runs, cap_runs;
    exec_event *queue;
    size_t q_len, q_cap;
    double next_poll, next_local;
    double tokens, tokens_at; /* submission rate bucket */
    double sacct_after;       /* monotonic: sacct is not tried before (no accounting) */
    bool unreachable;
    char unreachable_why[160];
    exec_slurm_stats stats;
} slurm_exec;

/* Appends an event for r to the queue wait() hands out. */
exec_event *slurm_enqueue(slurm_exec *ex, exec_event_kind kind, const srun *r);

/* A status message as r's progress event, once per change. */
void slurm_emit_status(slurm_exec *ex, srun *r, const char *msg);

/* One line "=== TIME attempt N: ... ===" in r's job.log (fmt takes a, b). */
void slurm_log_line(const srun *r, const char *fmt, const char *a, const char *b);

/* Records r's token and id (id "" = the intent) through the journal. */
int slurm_journal(slurm_exec *ex, srun *r, const char *id, char *err, size_t errlen);

/* Ends run i with outcome and message (EXITED) and drops it: slot i then
 * holds another run. */
void slurm_finish(slurm_exec *ex, size_t i, const char *outcome, int exit_code, const char *msg);

/* slurm_track.c: one squeue for every job of ours, applied to each run;
 * on failure every run keeps its state and says why. */
void slurm_poll(slurm_exec *ex, double now);

/* slurm_track.c: sacct with explicit ids for runs that left squeue
 * without a state, where the cluster keeps accounting. */
void slurm_ask_sacct(slurm_exec *ex, double now);

#endif
