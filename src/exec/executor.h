/*
 * executor.h - runs jobs somewhere and reports what happened (DESIGN §6).
 *
 * Contract:
 *   - start() launches `tessera run-job SPEC` for one attempt of one job and
 *     returns at once; the job's stdout and stderr are appended to
 *     <work_dir>/job.log after a header line naming the attempt.
 *   - The runner reports progress; wait() turns it into EXEC_PROGRESS events
 *     (at most a few per second per job; the last one always) and the end of
 *     the process into exactly one EXEC_EXITED event per started attempt.
 *   - timeout_s > 0 is enforced: SIGTERM to the job's process group at the
 *     deadline, SIGKILL after the grace period; outcome "timeout".
 *   - cancel() sends SIGTERM to the process group and SIGKILL after grace_s;
 *     the attempt then ends with outcome "cancelled".
 *   - Local jobs do not outlive the executor's process: if the scheduler
 *     dies, its local jobs are killed (the restarted scheduler re-runs them).
 *   - A batch executor (ops->detached: Slurm) is the opposite: its jobs live
 *     in the batch system and outlive the scheduler. It records an intent
 *     (journal, below) before each submission and the batch system's id
 *     after it, and a restarted scheduler hands each running attempt to
 *     adopt() instead of re-running it; the executor then looks it up (by
 *     id, or by the attempt's token in the job name) and reports what became
 *     of it. Such an executor never submits an attempt whose intent could
 *     not be recorded, and never submits an attempt a second time.
 *   - EXEC_EXITED with outcome "interrupted" (node failure, preemption, an
 *     attempt found never submitted after a restart) means: not the job's
 *     fault, run it again as a new attempt without counting a failure.
 * Implementations: exec_local (child processes on this machine), exec_slurm
 * (exec/slurm.h).
 */
#ifndef TESSERA_EXEC_EXECUTOR_H
#define TESSERA_EXEC_EXECUTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct exec_job {
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    const char *job_id;
    const char *job_type;
    const char *user;       /* the workflow's owner (tenant) */
    const char *image_path; /* may be NULL */
    const char *data_roots; /* colon-separated, absolute; the runner opens images only inside them */
    json_t *params;         /* borrowed object */
    int cpus;
    double timeout_s;   /* 0 = none */
    const char *work_dir;   /* created if missing: spec files and job.log live here */
    const char *result_dir; /* where the runner renames its outputs on success */
    json_t *inputs;         /* borrowed array of upstream jobs {job_id, job_type, image_path,
                               result_dir}, nearest first; may be NULL */
    /* Set by an executor that reads the exit marker at once and never after
     * a crash (local): the runner writes it atomically but without fsyncs
     * (protocol.h). false (the default): durable, for batch executors. */
    bool exit_marker_volatile;
    /* Set by an executor that reads progress on the runner's pipe (local):
     * the runner writes no progress file (protocol.h), one file less to
     * create per job. false (the default): the file, for batch executors. */
    bool progress_pipe_only;
    /* Set by an executor that reads the runner's pipe to its end (local):
     * the runner says its exit there instead of leaving an exit file
     * (protocol.h), a file less to create and read per job. */
    bool exit_on_pipe;
    /* The job's type reads no slide pixels (jobs.h, !reads_slides): a local
     * executor may run it in tessera-runner, the small runner binary. Set
     * by the scheduler from the type; false when unsure. */
    bool small_runner;
} exec_job;

typedef enum exec_event_kind { EXEC_PROGRESS, EXEC_EXITED } exec_event_kind;

typedef struct exec_event {
    exec_event_kind kind;
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    double progress;  /* 0..1 (EXEC_PROGRESS, and the last known for EXEC_EXITED) */
    char message[256]; /* progress message, or why the attempt ended */
    const char *outcome; /* EXEC_EXITED: "succeeded", "failed", "timeout", "cancelled",
                            "interrupted" (see the top) */
    int exit_code;       /* EXEC_EXITED: exit status, or 128 + signal number */
} exec_event;

typedef struct executor executor;

/* Where a batch executor records, durably, what it is about to do. */
typedef struct exec_journal {
    /* Records for the attempt its token (the batch job's name) and the
     * batch system's id; external_id "" is the intent, written before the
     * submission. TS_OK only once it is on stable storage; on any other
     * return the executor does not submit (it tries again later). */
    int (*record)(void *ctx, int64_t workflow_id, int32_t job_index, int attempt,
                  const char *token, const char *external_id, char *err, size_t errlen);
    void *ctx;
} exec_journal;

typedef struct executor_ops {
    int (*start)(executor *ex, const exec_job *job, char *err, size_t errlen);
    /* Unknown or already-ended jobs are ignored (cancel is idempotent). */
    void (*cancel)(executor *ex, int64_t workflow_id, int32_t job_index, double grace_s);
    /* Waits until something happens, wake_fd (if >= 0) becomes readable, or
     * timeout_s passes; stores up to max events and returns how many. */
    int (*wait)(executor *ex, double timeout_s, int wake_fd, exec_event *events, size_t max);
    size_t (*running)(executor *ex);
    /* Kills every running job (SIGKILL to each group) and frees. A detached
     * executor frees only: its jobs go on in the batch system. */
    void (*destroy)(executor *ex);
    /* Batch executors only (NULL otherwise). */
    bool detached;
    /* Takes over a running attempt recorded by a scheduler that is gone;
     * external_id is the recorded id ("" = only the intent was recorded).
     * Its fate is then reported by wait() like any started job's. */
    int (*adopt)(executor *ex, const exec_job *job, const char *external_id, char *err,
                 size_t errlen);
    /* Stops tracking every job without touching it (the lead was lost: the
     * next leader adopts them). */
    void (*release)(executor *ex);
} executor_ops;

struct executor {
    const executor_ops *ops;
    exec_journal journal; /* set by the scheduler; used by batch executors */
};

/* self_exe: the tessera binary to run as `self_exe run-job SPEC`.
 * grace_s: seconds between SIGTERM and SIGKILL on timeout.
 * job_nice: how much nicer than the calling process every runner, its
 * tool and the fork server run (nice(2) increment, 0..19; 0 = the same).
 * Why: the scheduler, the HTTP workers and the event stream share the
 * machine's cores with the jobs; a job that keeps the cores busy should
 * not delay an event or an answer (TESSERA_JOB_NICE, docs/configuration.md).
 * A job alone on the machine runs as fast as before. */
executor *exec_local_new(const char *self_exe, double grace_s, int job_nice, char *err,
                         size_t errlen);

#endif
