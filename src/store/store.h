/*
 * store.h - durable state behind one interface (DESIGN §6): workflows, jobs,
 * attempts, events, commands, users and the scheduler's leases.
 *
 * Contract:
 *   - The store is the only state shared between processes and instances.
 *     Open it after fork(), never before; one handle per process.
 *   - store_open() creates the database if needed and brings the schema to
 *     the current version with numbered migrations, each in a transaction.
 *     Only the process that owns start-up does that (serve's master, run);
 *     every other one (HTTP workers, the scheduler, restarted children)
 *     uses store_open_existing(), which never creates or migrates.
 *   - Every write that is acknowledged (returned TS_OK from store_submit or
 *     store_commit) survives kill -9 of every process.
 *   - Reads of one user's objects take that user's id; another user's object
 *     is answered exactly like a missing one (STORE_NOTFOUND).
 *   - Events get a strictly increasing seq in commit order.
 *   - A queued workflow's reason is the scheduler's latest waiting reason
 *     (recorded with each queue.position change); its position is derived.
 *   - Callers never see SQL or backend types. store.c forwards every call to
 *     the backend that opened the handle (store/backends.h says how to add a
 *     function): SQLite in src/store/sqlite*.c for a file path, PostgreSQL
 *     in src/store/pg*.c for a postgresql:// URL (several instances share
 *     one; docs/architecture.md).
 *
 * Storage faults:
 *   - STORE_UNAVAILABLE means the store cannot be used right now (disk
 *     full, I/O error, read-only file system, the database file missing,
 *     deleted or replaced under an open handle, corrupt, a server down):
 *     not the caller's fault, and worth retrying later. Every backend
 *     returns it for those conditions, from every function; HTTP answers it
 *     with 503 and Retry-After, the scheduler backs off and retries.
 *   - SQLite: nothing is acknowledged into a file that was deleted or replaced:
 *     the file's identity is checked at the start and after the commit of
 *     every transaction, so such a write returns STORE_UNAVAILABLE, and the
 *     handle stays unavailable (a restart opens the file that is there).
 *   - After any other such failure a handle recovers by itself: it
 *     reconnects at a later call (never creating the database; PostgreSQL
 *     with backoff), so the service comes back when the fault goes away.
 *
 * Return codes: TS_OK, TS_ERR (message in err), and the three below.
 */
#ifndef TESSERA_STORE_STORE_H
#define TESSERA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"
#include "core/spec.h"
#include "core/state.h"

#define STORE_NOTFOUND 1 /* no such object (or not the caller's) */
#define STORE_CONFLICT 2 /* a claim or admission lost: the state or a limit changed */
#define STORE_UNAVAILABLE 3 /* the store cannot be used right now; retry later */

typedef struct store store;

/* Opens "PATH" (SQLite file; parent directory must exist) or a
 * postgresql:// URL (libpq's URI syntax), creating the schema or migrating
 * it as needed; fails clearly for any other URL scheme. STORE_UNAVAILABLE
 * when a PostgreSQL server cannot be reached. For the process that owns
 * start-up only (serve's master, run, user add). */
int store_open(const char *url, store **out, char *err, size_t errlen);

/* Opens an existing, current store without ever creating or migrating it.
 * TS_OK with a handle even when the database cannot be used right now
 * (missing, unreadable...): its calls then return STORE_UNAVAILABLE until
 * it can, and it connects by itself. TS_ERR only for a URL this build
 * cannot open at all. */
int store_open_existing(const char *url, store **out, char *err, size_t errlen);

/* Readiness, cheaply (a few system calls and a small read; for /readyz):
 * TS_OK, or STORE_UNAVAILABLE with the reason in err - the database is
 * missing, replaced, corrupt (seen by any process), its file system
 * read-only or nearly full (under 1 MiB free), or a read fails. */
int store_probe(store *st, char *err, size_t errlen);

/* A full integrity check (SQLite: PRAGMA quick_check, which reads the whole
 * file): TS_OK, or STORE_UNAVAILABLE naming what is wrong. For start-up,
 * not per request. A passing check clears a corruption flagged earlier. */
int store_integrity_check(store *st, char *err, size_t errlen);
/* True if url names a PostgreSQL database (postgresql:// or postgres://). */
bool store_is_postgresql(const char *url);
void store_close(store *st);

/* Called after every store call on this handle with the call's name
 * ("submit", "claim", ...), how long it took and its return code: for
 * latency metrics. NULL stops it. */
typedef void (*store_observer)(void *ctx, const char *call, double seconds, int rc);
void store_set_observer(store *st, store_observer fn, void *ctx);

/* The schema version this build migrates to, and the one the file has. */
int store_schema_version(store *st);

/* A write transaction (SQLite: BEGIN IMMEDIATE, waiting on the busy timeout).
 * Not nestable. Everything between begin and commit is all or nothing. */
int store_begin(store *st, char *err, size_t errlen);
int store_commit(store *st, char *err, size_t errlen);
void store_rollback(store *st);

/* Deferred sync: only for the scheduler of an executor whose jobs die with
 * it (the local one; docs/architecture.md, "Starting before the fsync").
 * While on, store_commit on this handle returns once the transaction is
 * committed - visible to every connection, in commit order, every guard
 * checked - without waiting for the device, and wakes no listener;
 * store_sync then puts everything this handle committed on stable storage
 * and wakes the listeners of those commits. The caller must store_sync
 * before it publishes anything from such a commit and before it commits
 * anything it acknowledges. A power cut before the sync keeps a prefix of
 * the commits (the WAL's frames carry cumulative checksums). SQLite: the
 * connection runs synchronous=NORMAL and store_sync fsyncs the WAL;
 * PostgreSQL: commits stay synchronous and store_sync does nothing. */
int store_set_deferred_sync(store *st, bool on, char *err, size_t errlen);
/* TS_OK at once when nothing is waiting; STORE_UNAVAILABLE when the fsync
 * failed (the commits since the last sync may be lost). */
int store_sync(store *st, char *err, size_t errlen);

/* Pipelined sync: store_sync in two halves, so that the fsync runs on
 * another thread while this handle goes on committing (sched/syncer.h).
 * Why: a scheduler round waited for its fsync before the next round could
 * commit, and with jobs shorter than an fsync that put one fsync per job
 * on the critical path (docs/architecture.md, "Starting before the
 * fsync").
 *
 * store_sync_take, on the handle's thread, takes everything this handle
 * committed since the last take or store_sync: *out is a ticket for it,
 * or NULL when nothing is waiting (and always on PostgreSQL, whose commits
 * are synchronous). store_sync_ticket_run, on any thread, puts the
 * ticket's commits on stable storage and only then wakes their listeners;
 * STORE_UNAVAILABLE when that failed, and then every later ticket taken
 * on the same connection fails too (after a failed fsync a later one
 * proves nothing). One fsync serves every ticket taken before it began:
 * a ticket whose commits an earlier run already covered only rings.
 * Tickets are run in the order they were taken, one at a time; the
 * caller frees each one with store_sync_ticket_free (run or not), and all
 * of them before store_close. After a failed ticket the handle's thread
 * calls store_sync_failed: the connection is reopened before its next
 * use. */
typedef struct store_sync_ticket store_sync_ticket;
int store_sync_take(store *st, store_sync_ticket **out, char *err, size_t errlen);
int store_sync_ticket_run(store_sync_ticket *t, char *err, size_t errlen);
void store_sync_ticket_free(store_sync_ticket *t);
void store_sync_failed(store *st);

/* Keeps the write-ahead log bounded: when it holds more than max_bytes,
 * copies it into the database and truncates it to nothing. Why: SQLite
 * checkpoints by itself after each large commit, but only as far as no
 * reader still needs, and never shrinks the file; under a steady stream of
 * submits and reads the WAL grew without end (132 MB in a minute of POSTs),
 * and every read searches it. The scheduler calls this at its heartbeat,
 * outside any transaction; it waits up to the busy timeout for readers to
 * move on and gives up (TS_OK, *wal_bytes still large) if they do not.
 * *wal_bytes (may be NULL): the log's size afterwards (max_bytes =
 * INT64_MAX: only measures it). PostgreSQL manages
 * its own WAL: TS_OK and 0. */
int store_checkpoint(store *st, int64_t max_bytes, int64_t *wal_bytes, char *err,
                     size_t errlen);

/* Makes st use the parsed-spec cache of with (both opened on the same
 * backend; otherwise nothing changes), so that the handles of one process
 * - a worker's request threads - parse a stored spec once between them
 * instead of once each. Call before the handles are used concurrently;
 * the cache itself is thread-safe. */
void store_share_spec_cache(store *st, store *with);

/* ---- workflows ---------------------------------------------------------- */

typedef struct store_job {
    int32_t index;
    char *job_id;
    job_state state;
    int attempt;  /* 0 = never started */
    int failures;
    int cpus;
    double not_before;
    double progress; /* 0..1 */
    double ready_at, started_at, finished_at; /* 0 = not yet */
    int exit_code;    /* -1 = none */
    char *reason;     /* last reason recorded, "" if none */
    char *lease_owner; /* "" unless running */
    double lease_expires;
} store_job;

typedef struct store_workflow {
    int64_t id;
    char *user;
    char *name;
    int priority;
    wf_state state;
    bool cancel_requested;
    double submitted_at, admitted_at, finished_at; /* 0 = not yet */
    char *reason;       /* last reason recorded, "" if none */
    int queue_position; /* 1-based place in the admission line if queued, else 0 */
    double jobs_done;   /* finished jobs + running jobs' progress fractions */
    spec_workflow *spec; /* NULL when loaded without jobs */
    store_job *jobs;     /* n_jobs entries in spec order; NULL when loaded without jobs */
    size_t n_jobs;
} store_workflow;

void store_workflow_free(store_workflow *wf);

/* What a submission stored, as committed: enough to answer it without
 * reading it back (store_workflow_submitted). */
typedef struct store_receipt {
    int64_t id;
    int queue_position; /* its place in the admission line at the commit (1-based) */
    int active_users;   /* users with a running workflow at the commit */
    /* True for exactly one stored submission of each commit (several are
     * one commit on a handle with a batcher): its caller wakes whoever
     * waits for new work (the scheduler's doorbell), once per commit. */
    bool wake;
} store_receipt;

/* Stores a validated workflow for user: the workflow row (queued), its jobs
 * (pending) and the events workflow.submitted and workflow.queued, in a
 * transaction of its own (not inside store_begin). TS_OK means committed
 * and on stable storage; *out says what was stored.
 *
 * On a SQLite handle with a batcher (store_set_batcher) concurrent calls
 * from the threads whose handles share it are one transaction and one
 * fsync (group commit): each call is checked first (a bad argument fails
 * alone, before it joins), then each is stored in a savepoint of its own
 * (an insert that fails rolls back only itself: that call gets its error,
 * the others are stored), and every call returns only after the commit
 * that holds it; if that commit fails, every call in it gets the failure
 * (STORE_UNAVAILABLE for a full disk or an I/O error) and nothing of them
 * is kept. Ids and events are in commit order as always. PostgreSQL
 * handles ignore the batcher: their connections commit concurrently and
 * the server groups concurrent commits' WAL flushes itself. */
int store_submit_receipt(store *st, const char *user, const spec_workflow *spec, double now,
                         store_receipt *out, char *err, size_t errlen);

/* What becomes of a submission made with store_submit_async: rc and err as
 * store_submit_receipt's, the receipt when rc is TS_OK. */
typedef void (*store_submit_fn)(void *ctx, int rc, const store_receipt *got, const char *err);

/* store_submit_receipt without waiting for the commit, for a caller that
 * can answer later (an HTTP worker's request thread, which then serves
 * other requests meanwhile): on a handle whose batcher has a committer
 * thread (store_batcher_serve) the submission is checked and serialised
 * here, then queued, and fn runs on the committer thread once its commit
 * is over - rc TS_OK only after the commit is on stable storage, as for
 * store_submit_receipt. TS_ERR (err filled, fn never called) when the
 * submission is refused before it is queued. Otherwise (no committer,
 * PostgreSQL) this is store_submit_receipt and fn runs before the return.
 * spec and user must stay valid until fn has run. */
int store_submit_async(store *st, const char *user, const spec_workflow *spec, double now,
                       store_submit_fn fn, void *ctx, char *err, size_t errlen);

/* store_submit_receipt when only the id is wanted. */
int store_submit(store *st, const char *user, const spec_workflow *spec, double now, int64_t *id,
                 char *err, size_t errlen);

/* The workflow exactly as a submission stored it (queued, every job
 * pending, no attempts), built from what the caller has - its spec, the
 * submission time and the receipt - without reading it back: for the
 * answer to the submission. Shares spec (one more reference). Free with
 * store_workflow_free. */
store_workflow *store_workflow_submitted(const char *user, const spec_workflow *spec, double now,
                                         const store_receipt *r);

/* ---- group commit of submissions (one process's threads) ------------------ */

/* Joins concurrent store_submit calls of the handles that share it into
 * one commit (see store_submit_receipt). The handles must be of one
 * process and one SQLite database (an HTTP worker's request threads,
 * each with its own handle); each handle is still used by one thread at a
 * time. Without a thread of its own the first waiting caller commits for
 * all that are queued (at most max_batch), the others wait for it; with
 * one (store_batcher_serve) that thread commits, and submissions may be
 * queued without waiting (store_submit_async). */
typedef struct store_batcher store_batcher;

store_batcher *store_batcher_new(size_t max_batch);
/* Only once no call is in flight on any handle that uses it. */
void store_batcher_free(store_batcher *b);
/* Lets st's submissions join b (NULL: commit alone again). Before st is
 * used by its thread. */
void store_set_batcher(store *st, store_batcher *b);
/* Gives b a committer thread with a handle of its own on db_url (SQLite;
 * nothing on PostgreSQL), sharing cache_of's spec cache: it commits
 * whatever is queued as soon as it has the write lock, and
 * store_submit_async can queue without waiting. Before any handle uses b;
 * store_batcher_free commits what is still queued, then stops it. */
int store_batcher_serve(store_batcher *b, const char *db_url, store *cache_of, char *err,
                        size_t errlen);

/* Shows each commit of b's committer thread to a watchdog while it runs,
 * from taking the write lock to the last submission answered: begin(ctx)
 * returns a token that end(ctx, token) gets. A commit that never ends
 * (the disk hangs) is then seen as a stuck request would be, now that no
 * request thread waits for it. Before anything is submitted. */
void store_batcher_watch(store_batcher *b, int (*begin)(void *ctx),
                         void (*end)(void *ctx, int token), void *ctx);

typedef struct store_batcher_stats {
    uint64_t commits;     /* transactions committed or tried */
    uint64_t submissions; /* calls that went through them */
    size_t largest;       /* the most calls in one */
    size_t waiting;       /* calls queued now, not yet taken into a commit */
} store_batcher_stats;
void store_batcher_stats_get(store_batcher *b, store_batcher_stats *out);

/* One workflow with its jobs. user == NULL reads any user's (scheduler,
 * admin); otherwise another user's workflow is STORE_NOTFOUND. */
int store_workflow_get(store *st, int64_t id, const char *user, store_workflow **out, char *err,
                       size_t errlen);

/* What a cached rendering of a workflow (http/view_cache.h) is checked
 * against: every write that changes anything store_workflow_get or
 * store_attempts return for the workflow changes last_seq (each such change
 * records an event of the workflow) or batch_handles (a batch system's id
 * recorded on a running attempt, store_attempt_external, which records no
 * event). queue_position is derived from other workflows, so it is read as
 * well; running_cpus and active_users (the line's figures some waiting
 * reasons quote) only when asked for in want, else -1. */
typedef struct store_workflow_stamp {
    wf_state state;
    int queue_position;    /* as store_workflow.queue_position */
    int64_t last_seq;      /* the workflow's newest event seq */
    int64_t batch_handles; /* batch ids recorded on its attempts */
    int running_cpus;      /* store_queue_stats.running_cpus, or -1 */
    int active_users;      /* store_queue_stats.active_users, or -1 */
} store_workflow_stamp;
#define STORE_STAMP_RUNNING_CPUS 1u
#define STORE_STAMP_ACTIVE_USERS 2u

/* The stamp of workflow id, in one statement (one snapshot), without
 * reading its jobs: an index lookup and a range of its events. user NULL
 * reads any user's; another user's workflow is STORE_NOTFOUND, exactly as
 * for store_workflow_get. */
int store_workflow_stamp_get(store *st, int64_t id, const char *user, unsigned want,
                             store_workflow_stamp *out, char *err, size_t errlen);

/* The workflow without its jobs (spec and jobs NULL, as a list row:
 * jobs_done and queue_position set) and how many of its jobs are in each
 * state, counted in the store: the compact view of a 10,000-job workflow
 * without loading 10,000 rows. Same snapshot and isolation rules as
 * store_workflow_get. */
int store_workflow_summary(store *st, int64_t id, const char *user, store_workflow **out,
                           size_t counts[JOB_STATE_COUNT], char *err, size_t errlen);

/* Calls cb for each matching workflow, newest first, without jobs (spec and
 * jobs NULL; n_jobs set). user NULL = all users; state < 0 = any state;
 * before_id > 0 = only ids below it (pagination cursor); limit 0 = no limit.
 * cb returns 0 to go on, non-zero to stop. The workflow passed to cb is
 * freed after cb returns. */
typedef int (*store_workflow_cb)(void *ctx, const store_workflow *wf);
int store_workflow_list(store *st, const char *user, int state, int64_t before_id, size_t limit,
                        store_workflow_cb cb, void *ctx, char *err, size_t errlen);

/* Calls cb, oldest first, for every workflow with id > after_id that is not
 * in a final state, with its spec and jobs: what a scheduler needs to take
 * over. */
int store_load_unfinished(store *st, int64_t after_id, store_workflow_cb cb, void *ctx, char *err,
                          size_t errlen);

/* Deletes a finished workflow of user with its jobs, attempts and events.
 * STORE_CONFLICT if it is not finished. */
int store_workflow_delete(store *st, int64_t id, const char *user, char *err, size_t errlen);

/* ---- changes (inside store_begin/commit) --------------------------------- */

/* Records a change decided by the engine: the row, the attempt history
 * (an attempt row is opened when a job enters running and closed when it
 * leaves), and one event. For job -> running use store_claim, for workflow
 * queued -> running use store_admit. When seq is not NULL and the call runs
 * in a transaction of its own, *seq is the event's seq; inside store_begin
 * it is 0 (PostgreSQL stamps seqs at commit). TS_ERR if the row is not in
 * ch->from (a stale decision). */
int store_apply(store *st, const core_change *ch, int64_t *seq, char *err, size_t errlen);

/* Claims a ready job for running: checks that it is still ready and that the
 * cpus of all running jobs plus ch->cpus stay within concurrency_limit, then
 * records the change like store_apply with the lease (owner, lease_expires).
 * STORE_CONFLICT if either check fails (nothing written). */
int store_claim(store *st, const core_change *ch, const char *owner, double lease_expires,
                int concurrency_limit, char *err, size_t errlen);

/* Admits a queued workflow: checks that it is still queued and that its user
 * is already active or fewer than max_active_users users are active, then
 * records the change. STORE_CONFLICT if not (nothing written). */
int store_admit(store *st, const core_change *ch, int max_active_users, char *err, size_t errlen);

/* Renews the lease of every running job held by owner. */
int store_renew_leases(store *st, const char *owner, double lease_expires, char *err,
                       size_t errlen);

/* ---- the scheduler's leadership ----------------------------------------- */

/* Takes or renews the single scheduler lease if it is free, expired or
 * already owner's. Sets *leader. Own transaction. */
int store_leader_acquire(store *st, const char *owner, double now, double ttl, bool *leader,
                         char *err, size_t errlen);
/* Gives the lease up if owner holds it. */
int store_leader_release(store *st, const char *owner, char *err, size_t errlen);

/* The term of the lead this handle last won (0 = it never led). Terms grow
 * at every election. PostgreSQL fences every leader-only write (apply,
 * claim, admit, lease renewal, command_applied) of a handle that has led by
 * its term on the database clock: once another owner has the lease, such a
 * commit fails with STORE_CONFLICT and writes nothing; `now` is ignored
 * there (the database's clock decides). */
int64_t store_leader_term(store *st);

/* Who leads now, as the store says (for /metrics): owner "" when nobody
 * ever led; expires_in < 0 when the lease has lapsed. */
typedef struct store_leader_info {
    char owner[256];
    int64_t term;
    double expires_in; /* seconds, on the store's clock */
} store_leader_info;
int store_leader_get(store *st, store_leader_info *out, char *err, size_t errlen);

/* ---- commands (cancel, retry) from clients to the scheduler -------------- */

typedef struct store_command {
    int64_t id;
    int64_t workflow_id;
    int32_t job_index; /* -1 = the whole workflow */
    char kind[16];     /* "cancel" or "retry" */
    char user[129];
    double created_at;
} store_command;

/* Queues a command (own transaction) and sets cancel_requested on the
 * workflow for a workflow cancel. STORE_NOTFOUND if the workflow is not
 * user's. */
int store_command_add(store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                      const char *user, double now, int64_t *id, char *err, size_t errlen);
/* Commands not yet applied with id > after_id, oldest first. */
typedef int (*store_command_cb)(void *ctx, const store_command *cmd);
int store_commands_since(store *st, int64_t after_id, store_command_cb cb, void *ctx, char *err,
                         size_t errlen);

/* Marks a command applied; call it inside the transaction that records the
 * command's effect, so that it is applied exactly once across restarts. */
int store_command_applied(store *st, int64_t id, char *err, size_t errlen);

/* ---- events --------------------------------------------------------------- */

typedef struct store_event {
    int64_t seq;
    double ts;
    const char *type;
    int64_t workflow_id;
    const char *user;
    const char *job_id; /* NULL for workflow events */
    const char *json;   /* the whole event as a JSON object text */
} store_event;

/* Events with seq > since, in seq order, of user (NULL = all) and workflow
 * (0 = all), at most limit (0 = no limit). */
typedef int (*store_event_cb)(void *ctx, const store_event *ev);
int store_events_since(store *st, int64_t since, const char *user, int64_t workflow_id,
                       size_t limit, store_event_cb cb, void *ctx, char *err, size_t errlen);

/* The highest event seq stored (0 when there is none), for all users: a
 * client that reads it before a snapshot and then streams events since it
 * misses nothing. */
int store_events_last_seq(store *st, int64_t *seq, char *err, size_t errlen);

/* ---- attempts ------------------------------------------------------------- */

typedef struct store_attempt {
    int32_t job_index;
    int attempt;
    double started_at, finished_at; /* finished_at 0 = still running */
    char outcome[16]; /* "running", "succeeded", "failed", "cancelled", "retrying", "interrupted" */
    int exit_code;
    char reason[256];
    char token[96];       /* a batch executor's name for the attempt ("" = none) */
    char external_id[64]; /* the batch system's job id ("" = none, or only the intent) */
} store_attempt;

/* The attempts of one job, oldest first (*out malloc'd, caller frees);
 * job_index -1 reads those of every job of the workflow in one query,
 * ordered by job then attempt. */
int store_attempts(store *st, int64_t workflow_id, int32_t job_index, store_attempt **out,
                   size_t *n, char *err, size_t errlen);

/* Records a batch executor's handle of the running attempt (exec/executor.h,
 * exec_journal): its token (1-95 bytes, the batch job's name) and the batch
 * system's id (0-63 bytes; "" = the intent, recorded before submitting).
 * A leader-only write; inside the caller's transaction or in one of its
 * own. STORE_NOTFOUND (nothing written) when that attempt of the job is not
 * running. */
int store_attempt_external(store *st, int64_t workflow_id, int32_t job_index, int attempt,
                           const char *token, const char *external_id, char *err,
                           size_t errlen);

/* ---- users and tokens (auth) --------------------------------------------- */

/* Creates user name with this token hash, or gives an existing user a new
 * token (the old one stops working). Own transaction. */
int store_user_put(store *st, const char *name, const char *token_hash, bool admin, double now,
                   char *err, size_t errlen);

/* The user whose token hashes to token_hash: TS_OK with name (129 bytes) and
 * admin set, or STORE_NOTFOUND. */
int store_user_by_token(store *st, const char *token_hash, char *name, bool *admin, char *err,
                        size_t errlen);

/* The hash of user name's current token (64 hex + NUL): TS_OK, or
 * STORE_NOTFOUND when there is no such user or its token was revoked.
 * Session cookies are checked against it (auth.h). */
int store_user_token(store *st, const char *name, char token_hash[65], char *err, size_t errlen);

/* Revokes name's token, and with it every session cookie made from it:
 * TS_OK (also when it was already revoked) or STORE_NOTFOUND when there is
 * no such user. Own transaction. */
int store_user_revoke(store *st, const char *name, char *err, size_t errlen);

/* ---- wake-ups across processes and instances ------------------------------ */

/* A hint that something was committed, from any process of any instance:
 * new events (STORE_WAKE_EVENTS, the newest seq announced) or new work for
 * the scheduler (STORE_WAKE_WORK: a submission or a command). Only a hint:
 * readers still read the store by cursor and keep polling, since a
 * notification can be lost (a reconnect says so). PostgreSQL: LISTEN on a
 * connection of its own (NOTIFY is sent once per commit, the payload the
 * newest seq only). SQLite, one machine: events only, a Unix datagram
 * socket per listener in "<database>-wake/", sent the newest seq by every
 * commit that recorded events (sqlite_listen.c); for STORE_WAKE_WORK alone,
 * or when that socket cannot be made (a path too long for a Unix socket, a
 * file system without sockets), store_listener_open gives *out = NULL and
 * TS_OK (err says why), and callers poll (the scheduler also has its
 * doorbell). */
typedef struct store_listener store_listener;
#define STORE_WAKE_EVENTS 1
#define STORE_WAKE_WORK 2

int store_listener_open(const char *url, int what, store_listener **out, char *err,
                        size_t errlen);
/* A descriptor that turns readable when notifications may be pending; the
 * same one for the listener's whole life. */
int store_listener_fd(const store_listener *l);
/* Consumes what is pending: the number of notifications (0 = none), or -1
 * when the connection was lost or re-made (reconnecting with backoff; the
 * caller re-reads). *newest_seq = the largest seq announced (0 = none). */
int store_listener_drain(store_listener *l, int64_t *newest_seq);
void store_listener_close(store_listener *l);

/* The newest event seq known to be on stable storage, for readers that
 * publish events (the WebSocket hubs): events above it may still be lost
 * by a power cut - the scheduler's rounds do not wait for their fsync
 * (store_sync_take) - and a restarted store would give their seqs to other
 * events, which a client that saw the lost ones would then miss. SQLite: a
 * value shared by the database's processes, raised by every ring (each
 * comes after an fsync); INT64_MAX when unknown (nothing to bound by) and
 * for NULL and PostgreSQL (a commit is durable once visible). */
int64_t store_listener_durable_seq(const store_listener *l);

/* ---- the admission line at a glance --------------------------------------- */

typedef struct store_queue_stats {
    int active_users;      /* users with a running workflow */
    int waiting_users;     /* users with a queued workflow and none running */
    int queued_workflows;
    int running_cpus;      /* cpus of running jobs */
    int running_jobs;
    double oldest_queued_at; /* submission time (epoch s) of the longest-waiting queued
                                workflow; 0 when none is queued */
} store_queue_stats;

int store_queue_stats_get(store *st, store_queue_stats *out, char *err, size_t errlen);

/* ---- the service's instances ------------------------------------------------- */

/* Names this process's store connections after its instance (host:port of
 * `tessera serve`), so that the instances sharing a PostgreSQL database can
 * be listed (store_instances). Configuration: set once at start-up, before
 * any store is opened and before fork. */
void store_set_instance_name(const char *name);

typedef struct store_instance {
    char name[128];  /* host:port */
    int connections; /* its open store connections (-1: not known) */
    double since;    /* epoch seconds of its oldest connection (0: not known) */
} store_instance;

/* The instances using the store now, by name, at most max into out (*n of
 * them). PostgreSQL: the instance names of the database's sessions
 * (pg_stat_activity), which disappear with the processes that held them, so
 * a dead instance drops out at once. SQLite (one instance by design): this
 * process's own instance, if named. */
int store_instances(store *st, store_instance *out, size_t max, size_t *n, char *err,
                    size_t errlen);

#endif
