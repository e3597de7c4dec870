/*
 * layout.h - where things live in the state directory. Every path below
 * STATE_DIR is built here and nowhere else, so the layout can be read (and
 * changed) in one place:
 *
 *   STATE_DIR/
 *     tessera.db            the SQLite store (default of TESSERA_DB)
 *     tessera.log           JSON-lines log (default of TESSERA_LOG)
 *     session_secret        HMAC key for session cookies (mode 0600)
 *     scheduler.sock        the scheduler's doorbell (Unix datagram socket)
 *     instance_id           random name of this tessera installation; Slurm
 *                           job names carry it (several installations may
 *                           share one cluster account)
 *     data/                 default data root (images)
 *     work/WF/JOB/          one job's working directory (all its attempts):
 *       job.log             the job's log, every attempt appended
 *       attempt-N.json      the runner's spec for attempt N
 *       attempt-N.progress  progress lines the runner appends (protocol.h)
 *       attempt-N.exit      the runner's exit marker (protocol.h)
 *       attempt-N.sbatch    the batch script of attempt N (Slurm executor)
 *     results/WF/JOB/       the job's published outputs (renamed into place)
 *       ../JOB.tmp-N-PID    outputs being written by attempt N (runner)
 *       ../JOB.old-N-PID    the previous result while it is replaced
 *
 * WF is the workflow id, N the attempt, JOB the job_id as core/spec accepts
 * it (1-64 of [A-Za-z0-9._-], never "." or ".."); should "." or ".." reach
 * here anyway it is written with a leading "_", so no path ever leaves its
 * tree.
 * On a cluster STATE_DIR is on a filesystem the compute nodes share: the
 * runner reads its spec and writes progress, exit marker and results there.
 *
 * Every function returns a freshly allocated string (the caller frees it)
 * and never fails: allocation failure aborts (util.h).
 */
#ifndef TESSERA_UTIL_LAYOUT_H
#define TESSERA_UTIL_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Files directly in the state directory. */
typedef enum layout_file {
    LAYOUT_DB,
    LAYOUT_LOG,
    LAYOUT_SESSION_SECRET,
    LAYOUT_DOORBELL,
    LAYOUT_INSTANCE_ID,
    LAYOUT_DATA,
} layout_file;

/* Files of one attempt in a job's work directory. */
typedef enum layout_attempt_file {
    LAYOUT_SPEC,
    LAYOUT_PROGRESS,
    LAYOUT_EXIT,
    LAYOUT_BATCH_SCRIPT,
} layout_attempt_file;

char *layout_file_path(const char *state_dir, layout_file which);

/* STATE_DIR/work/WF/JOB and STATE_DIR/results/WF/JOB. */
char *layout_work_dir(const char *state_dir, int64_t workflow_id, const char *job_id);
char *layout_result_dir(const char *state_dir, int64_t workflow_id, const char *job_id);

/* STATE_DIR/work/WF/JOB/job.log, and the same given the work directory. */
char *layout_job_log(const char *state_dir, int64_t workflow_id, const char *job_id);
char *layout_job_log_in(const char *work_dir);

/* WORK_DIR/attempt-N.{json,progress,exit,sbatch}. */
char *layout_attempt_path(const char *work_dir, int attempt, layout_attempt_file which);

/* RESULT_DIR.tmp-N-PID (outputs being written) and RESULT_DIR.old-N-PID
 * (the result being replaced), beside the result directory so that the
 * final rename stays on one filesystem. */
char *layout_result_tmp(const char *result_dir, int attempt, long pid);
char *layout_result_aside(const char *result_dir, int attempt, long pid);

/* Creates the state directory (and its parents) if missing and makes it
 * private: mode 0700, whatever it had. The database holds every tenant's
 * workflows and token hashes, and on a shared login node other accounts
 * must not read it (issue 12, defect 12); with the umask of 077 that main()
 * sets, everything created below it is 0700/0600 too. Sets *tightened when
 * it had to remove group or other permissions, so the caller can say so.
 * TS_OK, or TS_ERR with err. */
int layout_state_dir_make(const char *state_dir, int *tightened, char *err, size_t errlen);

/* Removes the work and result trees of a workflow (after it was deleted).
 * Missing trees are fine; symlinks are removed, never followed. */
void layout_remove_workflow(const char *state_dir, int64_t workflow_id);

#endif
