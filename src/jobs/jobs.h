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
 *
 * A type that says writes_nothing (noop, sleep) gets no out_dir and its
 * jobs have no result directory, unless an earlier attempt left one that
 * must be replaced (by an empty one). Readers take a missing result
 * directory as an empty one. Why: a result directory costs an inode, a
 * rename and an fsync of its parent - on a journaled disk most of what a
 * short job costs (issue 16) - for nothing.
 */
#ifndef TESSERA_JOBS_JOBS_H
#define TESSERA_JOBS_JOBS_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "jobs/params.h"

struct job_type;

/* An upstream job of the one being run (an ancestor in the workflow's DAG),
 * whose published results a job may use: cell_segmentation reads the mask
 * of an upstream tissue_mask on the same image. */
typedef struct job_input {
    const char *job_id;
    const char *job_type;
    const char *image_path; /* may be NULL */
    const char *result_dir; /* its published outputs */
} job_input;

typedef struct job_ctx {
    const struct job_type *type;
    const char *job_id;
    const char *image_path; /* may be NULL; checked inside data_roots when the job started */
    const char *data_roots; /* colon-separated, absolute: every image is opened inside them */
    json_t *params;         /* validated; defaults not filled (use params_* getters) */
    const char *out_dir;    /* temporary output directory, already created; NULL for a type
                               that says writes_nothing */
    const char *work_dir;
    int cpus;
    int attempt;
    volatile sig_atomic_t *stop;
    const job_input *inputs; /* ancestors, nearest first (at most JOBS_MAX_INPUTS); only for
                                a type that says reads_inputs, else none */
    size_t n_inputs;
    int progress_fd;      /* the executor's progress pipe; -1 = none */
    int progress_file_fd; /* the attempt's progress file (exec/protocol.h); -1 = none */
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
    const void *data; /* the type's own data (an admin-defined tool's definition); may be NULL */
    bool needs_image; /* image_path is required and checked at submission (see jobs_check) */
    /* The type reads ctx->inputs (its upstream jobs' results). Only then
     * does the scheduler list the upstream jobs in the spec: up to
     * JOBS_MAX_INPUTS entries with paths, ~3 KB a job that a noop would
     * parse (and allocate for) for nothing. */
    bool reads_inputs;
    /* The type reads slide pixels itself (OpenSlide, libtiff, libjpeg):
     * its runner must be the full tessera binary, not tessera-runner
     * (builtin.c, local.c). Admin-defined tools never do: their programs
     * read the image. */
    bool reads_slides;
    /* The type never writes an output file (noop, sleep): the runner makes
     * no temporary directory for it and publishes nothing (see above). */
    bool writes_nothing;
} job_type;

#define JOBS_MAX_INPUTS 32

/* The built-in job types (builtin.c): noop and sleep, and - except in
 * tessera-runner, built with JOBS_BUILTIN_SMALL - the image analyses.
 * Adding a job type: define a `const job_type job_type_<name>` in its own
 * file and list it in builtin.c. Nothing else in tessera changes. */
extern const job_type *const jobs_builtin[];
extern const size_t jobs_n_builtin;

const job_type *jobs_find(const char *name);
size_t jobs_count(void);
const job_type *jobs_at(size_t i);

/* The context of jobs_check at submission: where images may be. */
typedef struct jobs_check_ctx {
    const char *data_roots;  /* colon-separated directories */
    char last_ok_path[4096]; /* set by jobs_check; start with "" */
} jobs_check_ctx;

/* A spec_check_job_fn (ctx: a jobs_check_ctx, or NULL to skip the image's
 * location and format check): unknown type -> "unknown job type \"x\" (known: noop,
 * sleep, ...)"; bad params -> "params.x: ..." (see params_validate). In
 * images.c: its image check opens the slide. */
int jobs_check(void *ctx, const char *job_id, const char *type_name, json_t *params,
               const char *image_path, char *err, size_t errlen);

/* jobs_check without the image's location and format (an image_path is
 * still required where the type needs one): for the runner, which checks
 * the location itself (slide_check_file) and reads no slide for it. */
int jobs_check_type(const char *job_id, const char *type_name, json_t *params,
                    const char *image_path, char *err, size_t errlen);

/* An image_path as given (absolute, or relative to a data root) made
 * absolute: a relative path becomes <root>/<path> for the first root where
 * it exists, else for the first root. Absolute paths are copied as they
 * are (their checks come later). */
void jobs_resolve_image(const char *path, const char *data_roots, char *out, size_t outlen);

/* Rewrites every image_path of a parsed workflow with jobs_resolve_image
 * and then to its resolved path (symlinks followed) when that lies inside
 * the data roots, so the stored workflow names the file that was checked. */
struct spec_workflow;
void jobs_resolve_spec_images(struct spec_workflow *wf, const char *data_roots);

/* The colon-separated data roots with each one absolute (resolved when it
 * exists), freshly allocated: what the scheduler hands to the runner. */
char *jobs_absolute_roots(const char *data_roots);

/* Reports done of total units (e.g. tiles) to the scheduler. Writes the line
 * "progress <done> <total> <message>\n" (exec/protocol.h) to ctx->progress_fd
 * and ctx->progress_file_fd, at most about 5 times a second unless
 * done == total. */
void job_progress(job_ctx *ctx, double done, double total, const char *message);

/* Runs one attempt given its spec file (exec/protocol.h), or the spec's
 * text when spec_text is not NULL (the fork server's runners: spec_path
 * then only names the attempt in messages): reads the spec,
 * runs the job, moves outputs into place, leaves the attempt's exit marker
 * (also for a bad spec, when the spec names its work_dir and attempt).
 * A job with an image_path fails before it starts unless that path still
 * resolves to a regular file inside the spec's data_roots (a link swapped
 * after submission reads nothing outside them). Progress lines go to the
 * attempt's progress file and to progress_fd when >= 0 (the local
 * executor's pipe). SIGTERM/SIGINT stop the job (handlers installed for the
 * call, restored after). Callable in a process of its own (`tessera
 * run-job`) or in-process after a fork (a fork server): it makes the
 * calling process a child subreaper, and when the process has a
 * parent-death signal it replaces it with SIGHUP, on which everything below
 * the process is killed and it exits (nothing a job starts outlives it).
 * Returns the exit status: 0 success, 1 the job failed (message on
 * stderr), 2 bad spec. */
int jobs_run_attempt(const char *spec_path, const char *spec_text, int progress_fd);

/* `tessera run-job SPEC`: jobs_run_attempt with the progress pipe the local
 * executor passes as fd 3, if it is open. */
int jobs_run_main(const char *spec_path);

/* Registers the admin-defined tools of the JSON file at path (TESSERA_TOOLS,
 * docs/tools.md) as job types, after the built-in ones. NULL or "" = no
 * tools. All or nothing: on error (message naming the file, tool and field)
 * nothing is registered. Succeeds at most once per process, at start-up,
 * before any fork or thread: the registry is configuration read once. */
int jobs_load_tools(const char *path, char *err, size_t errlen);

#endif
