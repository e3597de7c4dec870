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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct metrics metrics;

/* A zeroed region shared with every child forked afterwards; NULL on
 * failure (mmap). */
metrics *metrics_create_shared(void);
void metrics_destroy(metrics *m);

/* An HTTP request answered: route is an index into http_routes (or -1 for
 * unmatched paths), status its HTTP status. */
void metrics_http(metrics *m, int route, int status);
void metrics_ws_connections(metrics *m, int delta);
void metrics_events_delivered(metrics *m, uint64_t n);
/* Job timings by job type: wait = ready -> started, run = started -> ended. */
void metrics_job_wait(metrics *m, const char *job_type, double seconds);
void metrics_job_run(metrics *m, const char *job_type, double seconds);

/* A store call of any process (store_set_observer): latency by call. */
void metrics_store_call(void *m, const char *call, double seconds, int rc);
/* The WebSocket hub read new events because it was notified (NOTIFY from
 * any instance) or because its poll timer ran. */
void metrics_events_wakeup(metrics *m, bool notified);
/* An event reached a WebSocket client this long after it happened. */
void metrics_event_delay(metrics *m, double seconds);

/* The exposition text (malloc'd). stats and leader may be NULL when the
 * store could not be read. */
char *metrics_render(metrics *m, const store_queue_stats *stats, const store_leader_info *leader,
                     int max_active_users, int concurrency_limit, size_t *len);

#endif
