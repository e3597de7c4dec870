/*
 * metrics.h - counters and histograms shared by every process of one
 * service, rendered as Prometheus text at GET /metrics (DESIGN §4, issue 4).
 *
 * The master maps one anonymous shared region before forking; every worker
 * and the scheduler add to it with atomic operations, so a scrape that lands
 * on any worker sees the whole service. Gauges of the admission line
 * (queue depth, active users, running cpus) are read from the store at
 * scrape time instead, since the store is their source of truth.
 */
#ifndef TESSERA_HTTP_METRICS_H
#define TESSERA_HTTP_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/slurm.h"
#include "store/store.h"

typedef struct metrics metrics;

/* A zeroed region shared with every child forked afterwards; NULL on
 * failure (mmap). */
metrics *metrics_create_shared(void);
void metrics_destroy(metrics *m);

/* An HTTP request answered: route is an index into http_routes (or -1 for
 * unmatched paths), status its HTTP status, seconds from its first byte to
 * the reply being queued. Labelled by the route's template, never the raw
 * path, so the label set stays bounded whatever clients send. */
void metrics_http(metrics *m, int route, int status, double seconds);
void metrics_ws_connections(metrics *m, int delta);
void metrics_events_delivered(metrics *m, uint64_t n);
/* A GET of a workflow served from the worker's view cache (hit) or
 * rendered from the store (miss; http/view_cache.h). */
void metrics_view_read(metrics *m, bool hit);
/* A commit that stored submissions: one per group commit however many it
 * held (store.h, store_receipt.wake), so 201s of POST /api/workflows over
 * this is the submissions per commit. */
void metrics_submit_commit(metrics *m);
/* Submissions queued for their commit and not answered yet (+1 when one
 * is queued, -1 when its commit is over): the group commit's queue. */
void metrics_submit_waiting(metrics *m, int delta);
/* Job timings by job type: wait = ready -> started, run = started -> ended. */
void metrics_job_wait(metrics *m, const char *job_type, double seconds);
void metrics_job_run(metrics *m, const char *job_type, double seconds);
/* An attempt of a job left running with this outcome ("succeeded",
 * "failed", "timeout", "cancelled", "interrupted") and exit code (-1 for
 * none): counted as finished by type and outcome, and, unless it succeeded
 * or was cancelled, as a failure by type and a bounded reason
 * (metrics_failure_reason). */
void metrics_job_end(metrics *m, const char *job_type, const char *outcome, int exit_code);
/* The failure reason label of an attempt that ended this way: "exit_status"
 * (the program exited non-zero), "signal" (killed by a signal: exit code
 * 128 + n), "start_failed" (failed without an exit code: could not be
 * started), "timeout", "interrupted" (its scheduler went away); NULL when
 * it is no failure (succeeded, cancelled). */
const char *metrics_failure_reason(const char *outcome, int exit_code);

/* The Slurm executor's figures (exec/slurm.h), as the scheduler process
 * last saw them: copied in after each of its loops while it leads; rendered
 * as tessera_slurm_* only while set (a service on the local executor has
 * none). st NULL clears them: a scheduler that does not lead (a standby's
 * idle executor never calls squeue, and would report Slurm as reachable
 * whatever it is) says nothing. */
void metrics_slurm(void *m, const exec_slurm_stats *st);

/* A store call of any process (store_set_observer): latency by call. */
void metrics_store_call(void *m, const char *call, double seconds, int rc);
/* The WebSocket hub read new events because it was notified (NOTIFY from
 * any instance) or because its poll timer ran. */
void metrics_events_wakeup(metrics *m, bool notified);
/* A WebSocket hub read an event this long after it happened. */
void metrics_event_delay(metrics *m, double seconds);
/* A hub had written an event to every connection that receives it this
 * long after it happened (ws.h, on_event_fanout). */
void metrics_event_fanout(metrics *m, double seconds);

/* What a scrape reads outside the shared counters: the admission line and
 * the leader from the store (NULL when the store could not be read), the
 * limits, the state directory's file system (negative = unknown) and the
 * time, for the oldest waiter's age. */
typedef struct metrics_scrape {
    const store_queue_stats *stats;
    const store_leader_info *leader;
    int max_active_users;
    int concurrency_limit;
    double state_free_bytes;  /* available to the service (statvfs f_bavail) */
    double state_size_bytes;
    double now;               /* epoch seconds */
} metrics_scrape;

/* The exposition text (malloc'd): Prometheus text format 0.0.4, every
 * family with HELP and TYPE, units in names, counters ending in _total. */
char *metrics_render(metrics *m, const metrics_scrape *sc, size_t *len);

/* The same figures as JSON for the operator's page (api_admin.c): the
 * line, cpus, leader, state directory and store (null when unknown), HTTP
 * totals with latency over every route but the event stream and per route
 * with traffic, job figures by type, store calls and WebSocket clients.
 * Histograms are {"le": [bounds], "counts": [cumulative counts per bound],
 * "count": all, "sum": seconds}; the +Inf bucket is "count". Counters are
 * since the instance started: a client takes differences between polls. */
json_t *metrics_json(metrics *m, const metrics_scrape *sc);

#endif
