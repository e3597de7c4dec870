/*
 * spec.h - a workflow specification parsed from JSON and fully validated
 * (DESIGN §1, §4 limits). Pure: no files, sockets or database.
 *
 * Contract: spec_parse() either returns a workflow that obeys every rule below,
 * with defaults filled in and its dependency graph built, or fails with a
 * spec_error that names the job and the field and says what is wrong. A parsed
 * spec is immutable; the scheduler, the store and the API share it.
 *
 * Rules enforced:
 *   - the document is a JSON object (non-JSON / invalid UTF-8 -> http_status 400)
 *     no deeper than limits.max_depth; everything else -> 422;
 *   - "name": string, 1..limits.max_name bytes; "priority": integer -1000..1000
 *     (default 0); "jobs": a non-empty array of at most limits.max_jobs objects;
 *   - job "job_id": 1-64 chars of [A-Za-z0-9._-], not "." or ".." (it names a
 *     directory), unique in the workflow;
 *   - "job_type": a string accepted by the caller's check function;
 *   - "image_path": optional string; "branch": optional string (default
 *     "default") of 1-64 chars of [A-Za-z0-9._-];
 *   - "depends_on": optional array of job ids of this workflow, not the job
 *     itself (duplicates are folded);
 *   - "params": optional object, passed to the check function;
 *   - "cpus": integer 1..1024 (default 1), and at most limits.max_cpus if set;
 *     "timeout_s": number >= 0 (0 = no timeout, default), at most 30 days;
 *     "max_retries": integer 0..100 (default 0); "retry_delay_s": number
 *     0..86400 (default 10);
 *   - every string at most limits.max_string bytes; unknown keys are rejected
 *     (a typo must not silently fall back to a default);
 *   - the graph of explicit edges plus branch edges (each job depends on the
 *     previous job listed in its branch) is acyclic; a cycle is reported as
 *     "dependency cycle: job-a -> job-b -> job-a" where "x -> y" reads
 *     "x depends on y".
 */
#ifndef TESSERA_CORE_SPEC_H
#define TESSERA_CORE_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SPEC_ID_MAX 64

typedef struct spec_limits {
    size_t max_jobs;   /* default 10000 */
    size_t max_string; /* default 4096 bytes */
    size_t max_depth;  /* default 32 levels of JSON nesting */
    size_t max_name;   /* default 256 bytes */
    int max_cpus;      /* 0 = no limit; else cpus per job may not exceed it */
} spec_limits;

void spec_limits_default(spec_limits *lim);

/* Where validation failed. http_status is 400 for a document that is not
 * JSON at all (or not UTF-8, or too deep), 422 for JSON that breaks a rule.
 * field is a JSON path such as "jobs[1].depends_on[0]" ("" for the document);
 * job_id is the offending job's id when known ("" otherwise); message is a
 * complete sentence including both, ready to show a user. */
typedef struct spec_error {
    int http_status;
    char field[192];
    char job_id[SPEC_ID_MAX + 1];
    char message[512];
} spec_error;

/* Validates a job's type and params (job_id: the job's id, already valid).
 * Returns 0 if acceptable; otherwise writes a reason (e.g. "unknown job type
 * \"foo\"", or "params.seconds: must be a number >= 0") into err and returns
 * -1. The message should start with the field it is about ("params.x: ",
 * "image_path: ", "job_id: "), which then becomes the error's field. */
typedef int (*spec_check_job_fn)(void *ctx, const char *job_id, const char *job_type,
                                 json_t *params, const char *image_path, char *err,
                                 size_t errlen);

typedef struct spec_job {
    char *job_id;
    char *job_type;
    char *image_path; /* NULL when absent */
    char *branch;     /* never NULL ("default") */
    char **depends_on; /* explicit dependencies as given (deduplicated) */
    size_t n_depends_on;
    json_t *params; /* always an object (empty when absent); owned reference */
    int cpus;
    double timeout_s; /* 0 = none */
    int max_retries;
    double retry_delay_s;
} spec_job;

/* The dependency graph over job indices (0..n-1, in listed order), in CSR
 * form: the predecessors of job i are pred[pred_start[i] .. pred_start[i+1]),
 * successors likewise. Edges include the implicit branch edges. Each edge
 * appears once. branch_prev[i] is the previous job of i's branch or -1. */
typedef struct spec_dag {
    size_t n;
    uint32_t *pred_start; /* n + 1 entries */
    uint32_t *pred;
    uint32_t *succ_start; /* n + 1 entries */
    uint32_t *succ;
    int32_t *branch_prev;
} spec_dag;

typedef struct spec_workflow {
    char *name;
    int priority;
    spec_job *jobs;
    size_t n_jobs;
    spec_dag dag;
} spec_workflow;

/* Parses and validates text (len bytes, need not be NUL-terminated).
 * check may be NULL to accept every job type and params (used when reloading
 * a spec the store already validated). Returns 0 and sets *out, or -1 with
 * *err filled. */
int spec_parse(const char *text, size_t len, const spec_limits *lim, spec_check_job_fn check,
               void *check_ctx, spec_workflow **out, spec_error *err);

/* The same from an already-decoded document (borrowed). */
int spec_from_json(json_t *root, const spec_limits *lim, spec_check_job_fn check,
                   void *check_ctx, spec_workflow **out, spec_error *err);

/* The normalised document: every field present with its default, so that
 * spec_from_json(spec_to_json(w)) yields an equal workflow. New reference. */
json_t *spec_to_json(const spec_workflow *wf);

/* json_dumps(spec_to_json(wf), JSON_COMPACT), the same bytes, written
 * without building the document (spec_text.c says why); its length in
 * *len when len is not NULL. malloc'd; NULL if a part cannot be written. */
char *spec_to_text(const spec_workflow *wf, size_t *len);

/* Index of the job with this id, or -1. */
int spec_find_job(const spec_workflow *wf, const char *job_id);

/* Drops one reference: the last frees. */
void spec_free(spec_workflow *wf);

/* One more reference to a parsed workflow, which nobody may change from
 * then on (a cache of parsed stored specs hands the same one to several
 * readers); each is dropped by spec_free. Returns wf. */
spec_workflow *spec_retain(spec_workflow *wf);

#endif
