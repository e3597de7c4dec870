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

/* The schema version this build migrates to (sqlite_schema.c). */
#define SQL_SCHEMA_VERSION 4

typedef enum stmt_id {
    ST_BEGIN_IMMEDIATE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    /* sqlite.c: submit */
    ST_WF_INSERT,
    ST_JOB_INSERT,
    /* sqlite_workflows.c */
    ST_WF_GET,
    ST_WF_LIST_USER,
    ST_WF_LIST_ALL,
    ST_WF_UNFINISHED,
    ST_JOBS_OF_WF,
    ST_WF_OWNER_STATE,
    ST_WF_DELETE,
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

/* The SQLite backend's handle; store.c holds one behind a store. */
struct sqlite_store {
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    int64_t lead_term; /* the term of the lead this handle last won; 0 = never */
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

/* ---- sqlite.c ------------------------------------------------------------ */

/* The cached statement for id, prepared from sql on first use and reset.
 * NULL with err filled if it cannot be prepared. */
sqlite3_stmt *stmt_get(sqlite_store *st, stmt_id id, const char *sql, char *err, size_t errlen);

/* Resets a statement (ends its read) and clears its bindings. NULL is fine. */
void stmt_done(sqlite3_stmt *s);

/* Fills err with "what: <sqlite message>" and returns TS_ERR. */
int db_fail(sqlite_store *st, char *err, size_t errlen, const char *what);

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

/* ---- sqlite_schema.c ----------------------------------------------------- */

/* Brings the schema to SQL_SCHEMA_VERSION, one migration per transaction. */
int sql_migrate(sqlite_store *st, char *err, size_t errlen);

/* ---- sqlite_events.c ----------------------------------------------------- */

/* Appends one event in the current transaction (user taken from the
 * workflow row, so events can never be filed under the wrong user) and
 * sets *seq. */
int sql_event_append(sqlite_store *st, const sql_event *ev, int64_t *seq, char *err, size_t errlen);

/* 1-based place in the admission line of a queued workflow. */
int sql_queue_position(sqlite_store *st, int64_t workflow_id, int *pos, char *err, size_t errlen);

#endif
