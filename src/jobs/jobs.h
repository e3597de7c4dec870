/*
 * jobs.h - the job-type registry and the job runner (DESIGN §5).
 *
 * A job type is a name, a typed parameter schema and a run function. Adding
 * one means adding an entry to the table in registry.c; neither the
 * scheduler nor the executor changes.
 *
 * Contract of run(): it does the work for one attempt, writing outputs only
 * into ctx->out_dir (a fresh temporary directory); it reports progress with
 * job_progress(); it returns TS_OK on success or TS_ERR with a message. It
 * must return promptly once *ctx->stop becomes non-zero (SIGTERM). The runner
 * renames out_dir to the result directory only after a successful return, so
 * a result directory is always complete.
 */
#ifndef TESSERA_JOBS_JOBS_H
#define TESSERA_JOBS_JOBS_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#include "jobs/params.h"

typedef struct job_ctx {
    const char *job_id;
    const char *image_path; /* may be NULL */
    json_t *params;         /* validated; defaults not filled (use params_* getters) */
    const char *out_dir;    /* temporary output directory, already created */
    const char *work_dir;
    int cpus;
    int attempt;
    volatile sig_atomic_t *stop;
    int progress_fd; /* where progress lines go; -1 = nowhere */
    double last_progress_at;
} job_ctx;

typedef struct job_type {
    const char *name;
    const char *description;
    const job_param *params;
    size_t n_params;
    /* Extra checks across params and the image beyond the schema; may be NULL. */
    int (*validate)(json_t *params, const char *image_path, char *err, size_t errlen);
    int (*run)(job_ctx *ctx, char *err, size_t errlen);
} job_type;

const job_type *jobs_find(const char *name);
size_t jobs_count(void);
const job_type *jobs_at(size_t i);

/* A spec_check_job_fn: unknown type -> "unknown job type \"x\" (known: noop,
 * sleep, ...)"; bad params -> "params.x: ..." (see params_validate). */
int jobs_check(void *ctx, const char *type_name, json_t *params, const char *image_path, char *err,
               size_t errlen);

/* Reports done of total units (e.g. tiles) to the scheduler. Writes the line
 * "progress <done> <total> <message>\n" to ctx->progress_fd, at most about 5
 * times a second unless done == total. */
void job_progress(job_ctx *ctx, double done, double total, const char *message);

/* `tessera run-job SPEC`: reads the spec file the executor wrote, runs the
 * job, moves outputs into place. Returns the process exit status: 0 success,
 * 1 the job failed (message on stderr), 2 bad spec. */
int jobs_run_main(const char *spec_path);

#endif
