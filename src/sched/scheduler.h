/*
 * scheduler.h - the imperative shell around the engine: one loop that takes
 * facts from the store and the executor, lets the engine decide, records the
 * decisions in the store, and only then acts on them (DESIGN §6 data flow).
 *
 * Contract:
 *   - Exactly one scheduler leads a database at a time (a lease in the store,
 *     renewed by heartbeats). Others wait and take over when the lease lapses
 *     or is released. A scheduler that is not leader changes nothing.
 *   - On taking the lead it rebuilds its engine from the store; every job
 *     recorded as running under another owner is re-run as a new attempt with
 *     the reason recorded. Succeeded jobs are never re-run.
 *   - A job is started only after its claim (state, lease, slot within the
 *     concurrency limit) is committed. Every change is committed before the
 *     scheduler acts on it; if a commit fails, the engine is rebuilt from the
 *     store. Each step records all its changes (job exits, the jobs they
 *     made ready, claims, admissions, applied commands) in one transaction.
 *   - While the store is unavailable (STORE_UNAVAILABLE: a full disk, a
 *     missing or corrupt database) nothing new starts; decisions and job
 *     exits wait, in order, and are recorded when it is back. Each step then
 *     waits a bounded, growing backoff (SCHED_BACKOFF_MIN_S doubling to
 *     SCHED_BACKOFF_MAX_S) while still reaping jobs, so a short outage costs
 *     little and a long one does not spin.
 *   - Running jobs' leases are renewed while the scheduler lives.
 */
#ifndef TESSERA_SCHED_SCHEDULER_H
#define TESSERA_SCHED_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#include "exec/executor.h"
#include "store/store.h"

typedef struct sched_config {
    const char *state_dir;  /* work/ and results/ live below it */
    const char *data_roots; /* colon-separated; the runner opens images only inside them */
    int max_active_users;
    int concurrency_limit;
    double poll_seconds;  /* re-check the store at least this often */
    double lease_ttl;     /* seconds a lease lasts without renewal */
    double kill_grace_s;  /* SIGTERM -> SIGKILL on cancel and timeout */
    int64_t wal_max_bytes; /* store_checkpoint at each heartbeat beyond this; 0 = never */
    /* Called after a job starts (wait = ready -> start) and after an attempt
     * ends (run = start -> end); may be NULL. For metrics. */
    void (*on_job_timing)(void *ctx, const char *job_type, bool is_wait, double seconds);
    /* Called when an attempt leaves running, with its outcome ("succeeded",
     * "failed", "timeout", "cancelled", "interrupted") and exit code (-1:
     * none); may be NULL. For metrics (throughput, failures by reason). */
    void (*on_job_end)(void *ctx, const char *job_type, const char *outcome, int exit_code);
    void *timing_ctx;
} sched_config;

typedef struct scheduler scheduler;

#define SCHED_BACKOFF_MIN_S 0.1
#define SCHED_BACKOFF_MAX_S 2.0

/* owner: a unique name for this scheduler process (host:pid:start time). */
scheduler *sched_new(const sched_config *cfg, const char *owner, store *st, executor *ex);
void sched_free(scheduler *s);

/* One round: keep or take the lead, take in new workflows and commands,
 * admit, start jobs, then wait up to max_wait seconds (less if something is
 * due) for job events and record them. wake_fd (-1 = none) cuts the wait
 * short when readable. STORE_UNAVAILABLE (after the backoff wait) while the
 * store cannot be used: call again, the round is retried. TS_ERR only for
 * errors the caller should stop on. */
int sched_step(scheduler *s, double max_wait, int wake_fd, char *err, size_t errlen);

bool sched_is_leader(const scheduler *s);

/* Waits until every commit of the rounds so far is on stable storage
 * (their fsyncs run on the syncer's thread, and a round does not wait for
 * its own: sched/syncer.h). STORE_UNAVAILABLE if one failed: the jobs were
 * stopped and the lead dropped, as sched_step does; the next steps rebuild
 * from the store. Call it before trusting what the store says of the
 * rounds, e.g. that a workflow is done. */
int sched_sync_wait(scheduler *s, char *err, size_t errlen);

/* Number of jobs this scheduler has running. */
size_t sched_running(const scheduler *s);

/* Stop taking new work (running jobs go on and are still recorded). */
void sched_stop_claiming(scheduler *s);

/* Ends this scheduler's lead: every running job is killed and recorded as
 * interrupted with reason (re-run as a new attempt by the next leader), then
 * the lease is released. */
int sched_shutdown(scheduler *s, const char *reason, char *err, size_t errlen);

#endif
