/*
 * backends.h - what every store backend implements (internal to src/store/).
 *
 * store.h is the only interface callers see. store.c holds one backend
 * handle behind each `store` and forwards every call to the backend that
 * opened it: SQLite (sqlite*.c, a file path) or PostgreSQL (pg*.c, a
 * postgresql:// URL). A backend implements each function of store.h under
 * its own prefix with its own handle type: sqlite_submit(sqlite_store *, ...),
 * pg_submit(pg_store *, ...). STORE_BACKEND_DECLARE below declares the whole
 * set for one prefix, so a backend that misses a function or gets a
 * signature wrong fails to build or link.
 *
 * Adding a store function (four places, each one line or one function):
 *   1. declare it in store.h with its contract;
 *   2. add its prototype to STORE_BACKEND_DECLARE below;
 *   3. forward it in store.c (STORE_CALL, which also times it);
 *   4. implement sqlite_NAME in src/store/sqlite*.c and pg_NAME in
 *      src/store/pg*.c, and test it in the conformance suite, which runs
 *      against both backends: tests/unit/test_store.c (submit, reads),
 *      test_store_changes.c (changes, claims, leases) or
 *      test_store_events.c (commands, events, the line).
 */
#ifndef TESSERA_STORE_BACKENDS_H
#define TESSERA_STORE_BACKENDS_H

#include "store/store.h"

typedef struct sqlite_store sqlite_store;
typedef struct pg_store pg_store;

/* The functions of store.h for backend prefix P with handle type H. */
#define STORE_BACKEND_DECLARE(P, H)                                                            \
    int P##_open(const char *url, H **out, char *err, size_t errlen);                          \
    int P##_open_existing(const char *url, H **out, char *err, size_t errlen);                 \
    void P##_close(H *st);                                                                     \
    int P##_probe(H *st, char *err, size_t errlen);                                            \
    int P##_integrity_check(H *st, char *err, size_t errlen);                                  \
    int P##_schema_version(H *st);                                                             \
    int P##_begin(H *st, char *err, size_t errlen);                                            \
    int P##_commit(H *st, char *err, size_t errlen);                                           \
    void P##_rollback(H *st);                                                                  \
    int P##_set_deferred_sync(H *st, bool on, char *err, size_t errlen);                       \
    int P##_sync(H *st, char *err, size_t errlen);                                             \
    int P##_sync_take(H *st, store_sync_ticket **out, char *err, size_t errlen);              \
    void P##_sync_failed(H *st);                                                               \
    int P##_checkpoint(H *st, int64_t max_bytes, int64_t *wal_bytes, char *err,                \
                       size_t errlen);                                                         \
    int P##_submit(H *st, const char *user, const spec_workflow *spec, double now,             \
                   store_receipt *out, char *err, size_t errlen);                              \
    int P##_workflow_get(H *st, int64_t id, const char *user, store_workflow **out,            \
                         char *err, size_t errlen);                                            \
    void P##_share_specs(H *st, H *with);                                                      \
    int P##_workflow_stamp_get(H *st, int64_t id, const char *user, unsigned want,          \
                               store_workflow_stamp *out, char *err, size_t errlen);          \
    int P##_workflow_summary(H *st, int64_t id, const char *user, store_workflow **out,        \
                             size_t counts[JOB_STATE_COUNT], char *err, size_t errlen);       \
    int P##_workflow_list(H *st, const char *user, int state, int64_t before_id,               \
                          size_t limit, store_workflow_cb cb, void *ctx, char *err,            \
                          size_t errlen);                                                      \
    int P##_load_unfinished(H *st, int64_t after_id, store_workflow_cb cb, void *ctx,          \
                            char *err, size_t errlen);                                         \
    int P##_workflow_delete(H *st, int64_t id, const char *user, char *err, size_t errlen);    \
    int P##_apply(H *st, const core_change *ch, int64_t *seq, char *err, size_t errlen);       \
    int P##_claim(H *st, const core_change *ch, const char *owner, double lease_expires,       \
                  int concurrency_limit, char *err, size_t errlen);                            \
    int P##_admit(H *st, const core_change *ch, int max_active_users, char *err,               \
                  size_t errlen);                                                              \
    int P##_renew_leases(H *st, const char *owner, double lease_expires, char *err,            \
                         size_t errlen);                                                       \
    int P##_leader_acquire(H *st, const char *owner, double now, double ttl, bool *leader,     \
                           char *err, size_t errlen);                                          \
    int P##_leader_release(H *st, const char *owner, char *err, size_t errlen);                \
    int64_t P##_leader_term(H *st);                                                            \
    int P##_leader_get(H *st, store_leader_info *out, char *err, size_t errlen);               \
    int P##_command_add(H *st, int64_t workflow_id, int32_t job_index, const char *kind,       \
                        const char *user, double now, int64_t *id, char *err, size_t errlen);  \
    int P##_commands_since(H *st, int64_t after_id, store_command_cb cb, void *ctx,            \
                           char *err, size_t errlen);                                          \
    int P##_command_applied(H *st, int64_t id, char *err, size_t errlen);                      \
    int P##_events_since(H *st, int64_t since, const char *user, int64_t workflow_id,          \
                         size_t limit, store_event_cb cb, void *ctx, char *err,                \
                         size_t errlen);                                                       \
    int P##_events_last_seq(H *st, int64_t *seq, char *err, size_t errlen);                    \
    int P##_attempts(H *st, int64_t workflow_id, int32_t job_index, store_attempt **out,       \
                     size_t *n, char *err, size_t errlen);                                     \
    int P##_attempt_external(H *st, int64_t workflow_id, int32_t job_index, int attempt,       \
                             const char *token, const char *external_id, char *err,            \
                             size_t errlen);                                                   \
    int P##_user_put(H *st, const char *name, const char *token_hash, bool admin, double now,  \
                     char *err, size_t errlen);                                                \
    int P##_user_by_token(H *st, const char *token_hash, char *name, bool *admin, char *err,   \
                          size_t errlen);                                                      \
    int P##_user_token(H *st, const char *name, char token_hash[65], char *err, size_t errlen); \
    int P##_user_revoke(H *st, const char *name, char *err, size_t errlen);                    \
    int P##_queue_stats_get(H *st, store_queue_stats *out, char *err, size_t errlen);

STORE_BACKEND_DECLARE(sqlite, sqlite_store)
STORE_BACKEND_DECLARE(pg, pg_store)

/* ---- group commit (store_batcher, batch.c; SQLite only) ------------------- */

/* One submission on its way into a batch: the caller's arguments, checked
 * and serialised before it joins, and the results the committer fills in. */
typedef struct store_submit_item {
    const char *user;
    const spec_workflow *spec;
    double now;
    char *spec_text;        /* the normalised spec as stored (malloc'd) */
    int rc;                 /* the call's return code */
    store_receipt receipt;  /* when rc is TS_OK */
    char *err;              /* the caller's message buffer */
    size_t errlen;
    struct store_submit_item *next; /* the batcher's queue */
    bool done;                      /* its commit is over (batcher's mutex) */
    /* Set: nobody waits for the item; the committer thread calls this once
     * its commit is over, with the committer's handle (batch_enqueue). */
    void (*on_done)(struct store_submit_item *it, void *handle);
} store_submit_item;

/* Checks a submission's arguments (user, spec, no transaction open on st)
 * and serialises its spec; TS_ERR with it->err filled when they are bad. */
int sqlite_submit_prepare(sqlite_store *st, store_submit_item *it);
/* BEGIN IMMEDIATE for a batch: waits for the database's write lock. */
int sqlite_submit_begin(sqlite_store *st, char *err, size_t errlen);
/* Inside the transaction sqlite_submit_begin opened: stores each item in a
 * savepoint of its own, in order, then commits once; sets every item's rc
 * (and receipt) - after a failed commit or a failure that ends the
 * transaction, every item has that failure. Ends the transaction. */
void sqlite_submit_batch(sqlite_store *st, store_submit_item *const *items, size_t n);
/* Puts a stored item's parsed spec in st's cache (the handle of the thread
 * that asked, which reads it next). */
void sqlite_submit_cache(sqlite_store *st, const store_submit_item *it);

/* The batcher (batch.c): queues it and returns once a commit holding it is
 * over, it->rc set. The caller that finds no commit under way runs one on
 * its own handle through ops: begin (taking the write lock), then the
 * batch of what is queued by then. */
typedef struct batch_ops {
    int (*begin)(void *handle, char *err, size_t errlen);
    void (*run)(void *handle, store_submit_item *const *items, size_t n);
} batch_ops;
int batch_submit(store_batcher *b, const batch_ops *ops, void *handle, store_submit_item *it);

/* The batcher's committer thread (batch_serve): commits on handle through
 * ops whatever is queued, as soon as it has the write lock, and calls each
 * item's on_done after its commit; owned (any store, may be NULL) is closed
 * when the batcher is freed. While it runs, batch_submit only queues and
 * waits, and batch_enqueue may be used. TS_ERR when the thread cannot
 * start (nothing changed then). */
int batch_serve(store_batcher *b, const batch_ops *ops, void *handle, store *owned, char *err,
                size_t errlen);
/* Queues it (on_done set) for the committer thread and returns at once;
 * on_done runs on that thread, possibly before this returns. Only while a
 * committer runs (batch_serve). */
void batch_enqueue(store_batcher *b, store_submit_item *it);
/* True if b has a committer thread. */
bool batch_serving(store_batcher *b);

/* The instances sharing a PostgreSQL database (store.h, store_instances):
 * connections are named "tessera <instance>" once pg_set_instance_name was
 * called ("tessera" before). */
void pg_set_instance_name(const char *name);
int pg_instances(pg_store *st, store_instance *out, size_t max, size_t *n, char *err,
                 size_t errlen);

/* Notifications (store.h, store_listener). SQLite: events only, between
 * the processes of one machine (sqlite_listen.c). */
typedef struct sq_listener sq_listener;
int sq_listener_open(const char *db_path, sq_listener **out, char *err, size_t errlen);
int sq_listener_fd(const sq_listener *l);
int sq_listener_drain(sq_listener *l, int64_t *newest_seq);
int64_t sq_listener_durable(const sq_listener *l);
void sq_listener_close(sq_listener *l);

typedef struct pg_listener pg_listener;
int pg_listener_open(const char *url, bool events, bool work, pg_listener **out, char *err,
                     size_t errlen);
int pg_listener_fd(const pg_listener *l);
int pg_listener_drain(pg_listener *l, int64_t *newest_seq);
void pg_listener_close(pg_listener *l);

/* Sync tickets (store.h, store_sync_take) are made by SQLite only. */
int sqlite_sync_ticket_run(store_sync_ticket *t, char *err, size_t errlen);
void sqlite_sync_ticket_free(store_sync_ticket *t);

#endif
