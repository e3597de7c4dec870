/*
 * view.h - stored objects as the JSON users see (DESIGN §4 shapes), shared
 * by `tessera status --json` and the HTTP API so both say the same thing.
 *
 * Timestamps are ISO-8601 UTC strings with milliseconds, or null when the
 * moment has not come. Waiting workflows carry queue_position and
 * waiting_reason; pending and ready jobs carry waiting_reason.
 */
#ifndef TESSERA_VIEW_VIEW_H
#define TESSERA_VIEW_VIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

typedef struct view_limits {
    int max_active_users;
    int concurrency_limit;
} view_limits;

/* Writes "2026-11-23T09:40:00.123Z" into buf (at least 32 bytes). */
void view_time(double t, char *buf, size_t n);

/* The workflow; with its jobs when wf->jobs is loaded. stats may be NULL
 * (then waiting reasons that need the line's state are left out). */
json_t *view_workflow(const store_workflow *wf, const store_queue_stats *stats,
                      const view_limits *lim, double now);

/* Which jobs a workflow view carries: jobs [offset, offset + limit) in
 * workflow order, or none at all (the compact form: state, progress and
 * counts only). A view of some of the jobs says where they are in
 * "jobs_page": {offset, limit, total, next_offset (null after the last)}. */
/* Why a queued workflow waits, into why[0..n): the scheduler's recorded
 * reason, else one made from the line's stats (stats must not be NULL).
 * view.c and view_text.c both quote it, so the two renderings agree. */
void view_waiting_reason(const store_workflow *wf, const store_queue_stats *stats,
                         const view_limits *lim, char *why, size_t n);

typedef struct view_page {
    size_t offset, limit;
    bool none;
} view_page;
#define VIEW_ALL_JOBS ((view_page){0, SIZE_MAX, false})

/* view_workflow with only the jobs of page. */
json_t *view_workflow_page(const store_workflow *wf, const store_queue_stats *stats,
                           const view_limits *lim, double now, view_page page);

/* view_workflow_page followed by view_add_attempts, written straight to
 * JSON text: byte for byte what json_dumps(JSON_COMPACT) makes of those
 * (view_text.c), without building jansson values. attempts are the
 * workflow's (store_attempts with job_index -1: ordered by job, then
 * attempt). Returns the malloc'd text, its length in *len. */
char *view_workflow_text(const store_workflow *wf, const store_attempt *attempts,
                         size_t n_attempts, const store_queue_stats *stats,
                         const view_limits *lim, double now, view_page page, size_t *len);

/* The compact view (page.none) of a workflow read without its jobs
 * (store_workflow_summary): counts[s] jobs in state s. The same JSON as
 * view_workflow_page with the jobs loaded and page.none. */
json_t *view_workflow_counted(const store_workflow *wf, const size_t counts[JOB_STATE_COUNT],
                              const store_queue_stats *stats, const view_limits *lim, double now);

/* What a view of wf made at now with stats (NULL: none) depends on besides
 * the workflow itself, for a cache of views (http/view_cache.h): in *want
 * the line's figures it quotes (STORE_STAMP_RUNNING_CPUS when a ready job
 * gives a waiting reason, STORE_STAMP_ACTIVE_USERS when a queued workflow
 * without a recorded reason does), in *valid_until the moment a ready
 * job's "retrying after" reason expires (0: none). */
void view_depends(const store_workflow *wf, const store_queue_stats *stats, double now,
                  unsigned *want, double *valid_until);

/* Adds "attempts": [{attempt, started_at, finished_at, outcome, exit_code,
 * reason}] to each job of a workflow view (from view_workflow with jobs, or
 * a page of them; nothing for the compact form), read from the store.
 * TS_OK or TS_ERR. */
int view_add_attempts(store *st, const store_workflow *wf, json_t *view, char *err,
                      size_t errlen);

/* view_add_attempts' second half: adds attempts a[0..n) (any order) to
 * the jobs of view. */
void view_put_attempts(json_t *view, const store_attempt *a, size_t n);

/* Fraction of the workflow done, 0..1: finished jobs count 1, running ones
 * their progress. */
double view_workflow_progress(const store_workflow *wf);

#endif
