/*
 * sqlite_internal.h - what the files of the SQLite store (src/store/sqlite*.c)
 * share: the handle, its cache of prepared statements and small helpers for
 * errors, transactions and rows. Nothing outside src/store/ includes this.
 *
 * Statement cache: every statement is prepared once per handle, on first
 * use, with SQLITE_PREPARE_PERSISTENT, and kept until sqlite_close(). The SQL
 * text stays next to the code that runs it; the enum below only names the
 * slot. A statement is reset before it is handed out and must be reset by
 * the user when done (stmt_done), because a statement that is not reset
 * keeps its read transaction open.
 *
 * Not thread-safe: one handle per process (store.h), used by one thread at
 * a time, since the cached statements are shared state.
 *
 * The backend's entry points (sqlite_open, sqlite_submit, ...) are the
 * functions of store.h with the prefix sqlite_ and this handle; they are
 * declared in store/backends.h, where store.c finds them.
 */
#ifndef TESSERA_STORE_SQLITE_INTERNAL_H
#define TESSERA_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backends.h"
#include "store/rows.h"

/* The schema version this build migrates to (sqlite_schema.c). */
#define SQL_SCHEMA_VERSION 7

typedef enum stmt_id {
    ST_BEGIN_IMMEDIATE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    /* sqlite.c: submit */
    ST_WF_INSERT,
    ST_JOB_INSERT,
    ST_SAVEPOINT,
    ST_ROLLBACK_TO,
    ST_RELEASE,
    /* sqlite_workflows.c */
    ST_WF_GET,
    ST_WF_LIST_USER,
    ST_WF_LIST_ALL,
    ST_WF_UNFINISHED,
    ST_JOBS_OF_WF,
    ST_WF_OWNER_STATE,
    ST_WF_DELETE,
    ST_WF_STAMP,
    ST_WF_ROW,
    ST_JOB_COUNTS,
    ST_WF_HANDLES,
    /* sqlite_changes.c */
    ST_JOB_UPDATE,
    ST_JOB_STATE,
    ST_JOB_PROGRESS,
    ST_ATTEMPT_OPEN,
    ST_ATTEMPT_CLOSE,
    ST_WF_UPDATE,
    ST_WF_STATE,
    ST_RUNNING_CPUS,
    ST_USER_ACTIVE,
    ST_ACTIVE_USERS,
    ST_LEASE_RENEW,
    ST_ATTEMPT_EXTERNAL,
    /* sqlite_commands.c */
    ST_LEADER_GET,
    ST_LEADER_PUT,
    ST_LEADER_DELETE,
    ST_CMD_WF,
    ST_CMD_JOB,
    ST_CMD_INSERT,
    ST_CMD_CANCEL_FLAG,
    ST_CMD_SINCE,
    ST_CMD_APPLIED,
    ST_WF_WAIT_REASON,
    /* sqlite_events.c */
    ST_EVENT_INSERT,
    ST_EVENTS_WF,
    ST_EVENTS_USER,
    ST_EVENTS_ALL,
    ST_EVENTS_LAST,
    ST_QUEUE_AHEAD,
    ST_JOB_EXISTS,
    ST_ATTEMPTS,
    ST_QUEUE_STATS,
    /* sqlite_users.c */
    ST_USER_PUT,
    ST_USER_BY_TOKEN,
    ST_USER_TOKEN,
    ST_USER_REVOKE,
    ST_COUNT
} stmt_id;

/*
 * The SQLite backend's handle; store.c holds one behind a store. It is
 * connected (db != NULL) or not. After an error that means "the storage
 * cannot be used now" (sql_classify) it reconnects, never creating the
 * file, at the start of its next transaction. When the file at its path is
 * no longer the one it has open (deleted or replaced) it disconnects and
 * stays unavailable (sqlite_health.c says why). So a handle answers from
 * the file it was opened on, while that file is the one at the path, or
 * not at all.
 */
struct sqlite_store {
    sqlite3 *db; /* NULL while disconnected */
    sqlite3_stmt *stmts[ST_COUNT];
    int64_t lead_term; /* the term of the lead this handle last won; 0 = never */
    char *path;
    unsigned long long wal_dev, wal_ino; /* the WAL file this connection has open */
    bool wal_known;
    bool broken;  /* an "unavailable" error was seen: reconnect before the next use */
    bool moved;   /* its file was deleted or replaced: unavailable for good */
    bool corrupt; /* SQLITE_CORRUPT/NOTADB was seen on this file */
    bool connected_once; /* the first connect succeeded (start-up is over) */
    unsigned long long db_ino; /* the file `corrupt` is about */
    char why[512]; /* why the store is unavailable, while it is */
    int stmt_fail_rc; /* the class of stmt_get's last failure (stmt_failed) */
    int64_t wake_seq;  /* the newest event of the open transaction; 0 = none */
    bool deferred_sync;  /* store_set_deferred_sync: synchronous=NORMAL, store_sync fsyncs */
    bool unsynced;       /* a commit since the last store_sync (deferred_sync only) */
    int64_t unsynced_seq; /* the newest event of those commits, rung after the sync; 0 = none */
    double busy_since; /* when the current wait for a lock began (busy_wait) */
    struct sq_ringer *ringer; /* wakes the listeners after a commit with events */
    struct sq_walsync *walsync; /* the WAL's handle for syncs (sqlite_walsync.c); NULL until
                                 * a sync needs it, released with the connection */
    rows_spec_cache *specs;    /* parsed stored specs (rows.h) */
};

/* The fields of one event besides seq, ts and type (NULL / negative = absent). */
typedef struct sql_event {
    double ts;
    const char *type;
    int64_t workflow_id;
    int32_t job_index;   /* -1: no job; the job_id is taken from the jobs row */
    const char *state;   /* NULL = absent */
    double progress;     /* < 0 = absent */
    const char *message; /* NULL or "" = absent */
    int attempt;         /* <= 0 = absent */
    int queue_position;  /* <= 0 = absent */
} sql_event;

/* How many users have a running workflow: one index lookup per such user
 * (the smallest user_id after the previous one) on workflows_state_user,
 * instead of reading every running workflow's row. For admissions
 * (sqlite_changes.c) and submissions' receipts (sqlite.c), in one slot of
 * the statement cache, ST_ACTIVE_USERS. */
#define SQL_COUNT_ACTIVE_USERS                                                                 \
    "WITH RECURSIVE u(user_id) AS ("                                                           \
    " SELECT MIN(user_id) FROM workflows WHERE state = 'running'"                              \
    " UNION ALL SELECT (SELECT MIN(user_id) FROM workflows"                                    \
    " WHERE state = 'running' AND user_id > u.user_id) FROM u WHERE u.user_id IS NOT NULL)"    \
    " SELECT COUNT(user_id) FROM u"

/* Returns from the calling function with the code of a call that failed
 * (TS_ERR, STORE_UNAVAILABLE, STORE_NOTFOUND...), so that the class of an
 * error reaches the caller unchanged. */
#define SQL_TRY(call)                                                                          \
    do {                                                                                       \
        int sql_try_rc_ = (call);                                                              \
        if (sql_try_rc_ != TS_OK) return sql_try_rc_;                                          \
    } while (0)

/* ---- sqlite.c ------------------------------------------------------------ */

/* The cached statement for id, prepared from sql on first use and reset.
 * NULL with err filled if it cannot be prepared. */
sqlite3_stmt *stmt_get(sqlite_store *st, stmt_id id, const char *sql, char *err, size_t errlen);

/* Resets a statement (ends its read) and clears its bindings. NULL is fine. */
void stmt_done(sqlite3_stmt *s);

/* Fills err with "what: <sqlite message>" and returns the error's class:
 * STORE_UNAVAILABLE (sql_classify) or TS_ERR. */
int db_fail(sqlite_store *st, char *err, size_t errlen, const char *what);

/* The class of the last failure of stmt_get (NULL): STORE_UNAVAILABLE or
 * TS_ERR, for callers that return it. */
int stmt_failed(const sqlite_store *st);

/* Runs a statement that returns no rows (all bindings done) and resets it. */
int stmt_exec(sqlite_store *st, sqlite3_stmt *s, char *err, size_t errlen, const char *what);

/* Binds text, or NULL for a NULL pointer. */
int bind_text(sqlite3_stmt *s, int i, const char *v);

/* Column text as a string that is never NULL ("" for SQL NULL). */
const char *col_text(sqlite3_stmt *s, int i);

/* Write transactions for functions that work inside the caller's store_begin
 * or, when there is none, in one of their own. *own tells txn_end whether
 * this call opened it; txn_end commits (ok) or rolls back (not ok) only then. */
int txn_enter(sqlite_store *st, bool *own, char *err, size_t errlen);
int txn_end(sqlite_store *st, bool own, int rc, char *err, size_t errlen);

/* A read snapshot (deferred BEGIN) for reads that take several statements,
 * unless a transaction is already open. */
int read_enter(sqlite_store *st, bool *own, char *err, size_t errlen);
void read_end(sqlite_store *st, bool own);

/* ---- sqlite_listen.c ----------------------------------------------------- */

/* Wake-ups between the processes sharing the file (see sqlite_listen.c):
 * listeners in "<path>-wake/", rung by commits that recorded events. */
typedef struct sq_ringer sq_ringer; /* the listeners are in backends.h */
sq_ringer *sq_ringer_new(const char *db_path);
void sq_ringer_free(sq_ringer *r);
/* Sends seq to every listener; never blocks, never fails loudly. Any
 * thread (a mutex orders the rings of one ringer). */
void sq_wake_ring(sq_ringer *r, int64_t seq);

/* ---- sqlite_durable.c ---------------------------------------------------- */

/* The newest event seq on stable storage, shared through a mapped file in
 * the wake directory (see the file). sq_durable_open maps it, creating it
 * if needed; NULL when it cannot (the directory is missing, a special
 * file, no space): unknown. sq_durable_raise never lowers it; get answers
 * INT64_MAX for NULL (unknown: read everything). Any thread, any process. */
typedef struct sq_durable sq_durable;
sq_durable *sq_durable_open(const char *wake_dir);
void sq_durable_raise(sq_durable *d, int64_t seq);
int64_t sq_durable_get(const sq_durable *d);
void sq_durable_close(sq_durable *d);

/* ---- sqlite_walsync.c ---------------------------------------------------- */

/* The WAL's own handle for store_sync and its tickets (see the file).
 * Dropping the store's reference (sql_disconnect) leaves tickets in flight
 * theirs. NULL is fine. */
typedef struct sq_walsync sq_walsync;
void sq_walsync_release(sq_walsync *ws);

/* ---- sqlite_health.c ----------------------------------------------------- */

/* The class of an SQLite result code: STORE_UNAVAILABLE for those that
 * mean the storage cannot be used now (full, I/O error, corrupt, not a
 * database, cannot open, read-only, busy past the timeout), TS_ERR for the
 * rest (a bug or a caller's mistake). Marks the handle for reconnection,
 * and a corrupt file as such. */
int sql_classify(sqlite_store *st, int code);

/* The gate before a new transaction (no-op inside one): reconnects a
 * handle that needs it and checks that the file at the path is still the
 * one open (deleted or replaced: disconnect). TS_OK or STORE_UNAVAILABLE
 * with the reason in err. */
int sql_usable(sqlite_store *st, char *err, size_t errlen);

/* After a commit: STORE_UNAVAILABLE if the file was deleted or replaced
 * meanwhile, so the write went to a file nobody will read again. */
int sql_after_commit(sqlite_store *st, char *err, size_t errlen);

/* Opens st->path (creating it only if create) and sets the connection up;
 * TS_OK, STORE_UNAVAILABLE (the file cannot be used now) or TS_ERR. */
int sql_connect(sqlite_store *st, bool create, char *err, size_t errlen);

/* Finalizes the cached statements and closes the connection. */
void sql_disconnect(sqlite_store *st);

/* The connection's settings (journal mode, synchronous, foreign keys). */
int sql_configure(sqlite_store *st, char *err, size_t errlen);

/* ---- sqlite_schema.c ----------------------------------------------------- */

/* Brings the schema to SQL_SCHEMA_VERSION, one migration per transaction. */
int sql_migrate(sqlite_store *st, char *err, size_t errlen);

/* Reads the file's schema version (PRAGMA user_version). */
int sql_schema_read(sqlite_store *st, int *version, char *err, size_t errlen);

/* ---- sqlite_events.c ----------------------------------------------------- */

/* Appends one event in the current transaction (user taken from the
 * workflow row, so events can never be filed under the wrong user) and
 * sets *seq. */
int sql_event_append(sqlite_store *st, const sql_event *ev, int64_t *seq, char *err, size_t errlen);

/* 1-based place in the admission line of a queued workflow. */
int sql_queue_position(sqlite_store *st, int64_t workflow_id, int *pos, char *err, size_t errlen);

#endif
