/*
 * slurm.h - the Slurm executor: each attempt is one batch job submitted
 * with sbatch, running `tessera run-job SPEC` on a compute node in the
 * attempt's work directory on the shared state directory (docs/slurm.md).
 *
 * Contract (beyond executor.h, which it implements with ops->detached):
 *   - Submission: `sbatch --parsable --no-requeue --job-name TOKEN
 *     --time=MIN --cpus-per-task=N --signal=B:USR1@60 --open-mode=append
 *     -o WORK/job.log --comment="tessera user=U workflow=W job=J" [--partition]
 *     [--account] [extra args] WORK/attempt-N.sbatch`.
 *     TOKEN = "ts.<instance>.<workflow>.<job index>.<attempt>" names exactly
 *     one attempt of one installation. The intent (token, no id) goes to
 *     the journal before sbatch runs; nothing is submitted without it, and
 *     the id goes to the journal after. At most max_submitted jobs are in
 *     Slurm at once and at most submit_rate sbatch calls run per second;
 *     more attempts wait inside the executor (their job shows why).
 *   - Tracking: ONE `squeue --me -t all` per poll cycle for every job of the
 *     executor (never one call per job); `sacct -j ID,...` with explicit ids
 *     for jobs that left squeue, when the cluster has accounting.
 *   - The runner's exit marker (protocol.h) is the only proof of success.
 *     A job that ended or left Slurm without a marker is waited for up to
 *     marker_wait_s (shared filesystem lag), then fails with its reason:
 *     TIMEOUT -> "timeout"; OUT_OF_MEMORY, FAILED (exit code), CANCELLED by
 *     someone else, COMPLETED without a marker, vanished -> "failed";
 *     NODE_FAIL, PREEMPTED, BOOT_FAIL -> "interrupted" (a new attempt, not
 *     counted as a failure). Our own cancel and timeout come first.
 *   - timeout_s is enforced by the executor (scancel at timeout_s after the
 *     job is seen running: Slurm's own limit has minute granularity); --time
 *     is set a little above it as a backstop for when tessera is down.
 *   - "Slurm unreachable" (squeue fails) changes no job's state: every job
 *     gets a progress message saying so, the log says so, and the executor
 *     retries each cycle; sbatch failing for that reason leaves the attempt
 *     waiting, looked up by its token before it is ever submitted again.
 *     sbatch refusing the job (bad partition, account, options) fails the
 *     attempt with sbatch's words.
 *   - cancel: scancel, for pending and running jobs; an attempt not yet
 *     submitted is simply dropped.
 *   - adopt: an attempt of a scheduler that is gone is tracked by its id,
 *     or looked up by its token when only the intent was recorded; not in
 *     Slurm and no marker -> "interrupted" (never submitted, or lost).
 *   - Progress: the runner's attempt-N.progress is read for running jobs
 *     at most once a second per job.
 *   - destroy and release leave the jobs in Slurm (the next scheduler
 *     adopts them).
 */
#ifndef TESSERA_EXEC_SLURM_H
#define TESSERA_EXEC_SLURM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/executor.h"

typedef struct exec_slurm_config {
    const char *self_exe;    /* the tessera binary the job runs (on the shared filesystem) */
    const char *instance;    /* the installation's id (STATE_DIR/instance_id), [a-z0-9]{1,16} */
    const char *partition;   /* "" = the cluster's default */
    const char *account;     /* "" = the user's default */
    const char *extra_args;  /* space-separated sbatch options (checked by config.c) */
    int max_submitted;       /* jobs in Slurm at once */
    double submit_rate;      /* sbatch calls per second */
    double poll_s;           /* seconds between squeue calls */
    double marker_wait_s;    /* how long a job without a marker is waited for */
    double command_timeout_s; /* a Slurm command that takes longer is killed (30) */
} exec_slurm_config;

/* Counters and gauges for metrics (the monitor exports them). */
typedef struct exec_slurm_stats {
    uint64_t submitted;        /* sbatch calls that returned a job id */
    uint64_t submit_failures;  /* sbatch calls that failed (refused or unreachable) */
    uint64_t squeue_calls, squeue_failures;
    double squeue_seconds_last, squeue_seconds_sum;
    uint64_t sacct_calls, scancel_calls;
    int waiting;               /* attempts waiting inside tessera to be submitted */
    int pending, running;      /* jobs in Slurm by their last seen state */
    bool reachable;            /* the last squeue succeeded */
} exec_slurm_stats;

/* Creates the executor; checks that sbatch, squeue and scancel can be
 * found on PATH (the message names what is missing). */
executor *exec_slurm_new(const exec_slurm_config *cfg, char *err, size_t errlen);

/* A copy of the executor's statistics (ex must come from exec_slurm_new). */
void exec_slurm_stats_get(executor *ex, exec_slurm_stats *out);

/* ---- pure helpers (slurm_parse.c), unit-tested ------------------------- */

/* "ts.<instance>.<wf>.<idx>.<attempt>" into buf (size n >= 96). */
void slurm_token_format(char *buf, size_t n, const char *instance, int64_t workflow_id,
                        int32_t job_index, int attempt);

/* One line of `squeue -o %i|%T|%r|%j`. False for malformed lines. */
typedef struct slurm_row {
    char id[32];
    char state[32];
    char reason[96];
    char name[128];
} slurm_row;
bool slurm_row_parse(const char *line, slurm_row *out);

/* True for states after which the job will not run again. */
bool slurm_state_final(const char *state);

/* What a final Slurm state means for an attempt that left no success
 * marker: outcome ("failed", "timeout", "interrupted") and a message for
 * the user (size n). exit_code is Slurm's ("2:0" from sacct, or -1). */
const char *slurm_state_outcome(const char *state, int exit_code, char *msg, size_t n);

/* True when sbatch's or squeue's error text says Slurm could not be
 * reached (worth retrying), false when it refused the request. */
bool slurm_error_transient(const char *stderr_text);

/* The --time value in minutes for a job with timeout_s (0 = none: 0,
 * meaning no --time, the partition's limit applies). */
long slurm_time_minutes(double timeout_s);

/* s as an sbatch --output file name (new string): '%' starts a
 * replacement there (%j, %u...), so a literal one is written "%%". */
char *slurm_filename_escape(const char *s);

/* Quotes s for a POSIX shell (single quotes) into a new string. */
char *slurm_shell_quote(const char *s);

/* ---- running Slurm's commands (slurm_cmd.c) ----------------------------- */

typedef struct slurm_cmd_result {
    int status;       /* exit status; -1 when it could not run or was killed */
    bool timed_out;   /* killed after the timeout */
    char *out;        /* all of stdout (NUL-terminated, never NULL) */
    char *errtext;    /* stderr, or why it could not run (never NULL) */
    double seconds;   /* how long it took */
} slurm_cmd_result;

/* Runs argv[0] (searched on PATH) with stdin from /dev/null, collecting
 * stdout and stderr, and kills it after timeout_s. Waits for that child
 * only (other children of the process are left alone). Free with
 * slurm_cmd_free. */
void slurm_cmd_run(char *const argv[], double timeout_s, slurm_cmd_result *res);
void slurm_cmd_free(slurm_cmd_result *res);

/* The first line of text, at most n - 1 bytes of it, into buf. */
void slurm_first_line(const char *text, char *buf, size_t n);

#endif
