/*
 * pg_internal.h - what the files of the PostgreSQL store (src/store/pg*.c)
 * share: the handle, its connection and prepared statements, parameters,
 * errors, transactions and the events of the open transaction.
 * Nothing outside src/store/ includes this.
 *
 * One handle = one connection (store.h: one handle per process or thread).
 * The connection budget of a process is therefore its number of handles
 * (docs/architecture.md): the scheduler 1, an HTTP worker 1 per thread that
 * touches the store, plus one listening connection per process that waits
 * for NOTIFY (store_listener_open), never shared with queries.
 *
 * Statements are prepared on first use on the current connection (named
 * "t<id>") and prepared again after a reconnect. Parameters and results
 * travel as text.
 */
#ifndef TESSERA_STORE_PG_INTERNAL_H
#define TESSERA_STORE_PG_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backends.h"
#include "store/rows.h"

/* The schema version this build migrates to (pg_schema.c). */
#define PG_SCHEMA_VERSION 3

/* Advisory transaction lock keys (pg_advisory_xact_lock). */
#define PG_LOCK_MIGRATE 0x7465737301LL /* schema migrations */
#define PG_LOCK_SLOTS 0x7465737302LL   /* claims and admissions: the global limits */

/* NOTIFY channels: new events (payload: the newest seq), new commands and
 * submissions for the scheduler (payload empty). */
#define PG_CHANNEL_EVENTS "tessera_events"
#define PG_CHANNEL_WORK "tessera_work"

typedef enum pg_stmt {
    PS_FLUSH_EVENTS,
    PS_FENCE,
    PS_SLOTS_LOCK,
    PS_SUBMIT_LOCK,
    PS_SUBMIT_ACTIVE_USERS,
    PS_WF_INSERT,
    PS_JOB_INSERT,
    PS_WF_GET,
    PS_WF_LIST_USER,
    PS_WF_LIST_ALL,
    PS_WF_UNFINISHED,
    PS_JOBS_OF_WF,
    PS_WF_OWNER_STATE,
    PS_WF_DELETE,
    PS_WF_STAMP,
    PS_WF_ROW,
    PS_JOB_COUNTS,
    PS_WF_HANDLES,
    PS_JOB_UPDATE,
    PS_JOB_CLAIM,
    PS_JOB_STATE,
    PS_JOB_PROGRESS,
    PS_ATTEMPT_OPEN,
    PS_ATTEMPT_CLOSE,
    PS_WF_UPDATE,
    PS_WF_STATE,
    PS_ADMIT_CHECK,
    PS_WF_WAIT_REASON,
    PS_LEASE_RENEW,
    PS_ATTEMPT_EXTERNAL,
    PS_LEADER_ACQUIRE,
    PS_LEADER_RELEASE,
    PS_LEADER_GET,
    PS_CMD_WF,
    PS_CMD_JOB,
    PS_CMD_LOCK,
    PS_CMD_INSERT,
    PS_CMD_CANCEL_FLAG,
    PS_CMD_SINCE,
    PS_CMD_APPLIED,
    PS_EVENTS_WF,
    PS_EVENTS_USER,
    PS_EVENTS_ALL,
    PS_EVENTS_LAST,
    PS_QUEUE_AHEAD,
    PS_JOB_EXISTS,
    PS_ATTEMPTS,
    PS_QUEUE_STATS,
    PS_USER_PUT,
    PS_USER_BY_TOKEN,
    PS_USER_TOKEN,
    PS_USER_REVOKE,
    PS_INSTANCES,
    PS_COUNT
} pg_stmt;

struct pg_store {
    rows_spec_cache *specs; /* parsed stored specs (rows.h) */
    PGconn *conn;
    char *url;
    bool prepared[PS_COUNT];
    bool in_txn;        /* BEGIN sent, no COMMIT/ROLLBACK yet */
    bool txn_broken;    /* the connection failed inside it: only rollback helps */
    bool slots_locked;  /* PG_LOCK_SLOTS held by the open transaction */
    bool leader_write;  /* the open transaction wrote something only the leader may */
    bool work_notify;   /* the open transaction queued work for the scheduler */
    json_t *events;     /* events of the open transaction, stamped at commit */
    double retry_at;    /* monotonic time before which no reconnect is tried */
    double backoff;     /* seconds; doubles per failed reconnect, up to PG_BACKOFF_MAX */
    char lead_owner[256]; /* set by a successful store_leader_acquire */
    int64_t lead_term;    /* 0 = this handle never led */
    int64_t last_seq;     /* the newest seq this handle committed */
};

/* Up to 16 text parameters for one statement; values are copied in. */
typedef struct pg_params {
    int n;
    const char *v[16];
    char num[16][32];
} pg_params;

void pgp_text(pg_params *p, const char *v); /* NULL -> SQL NULL */
void pgp_int(pg_params *p, int64_t v);
void pgp_double(pg_params *p, double v);
void pgp_bool(pg_params *p, bool v);

/* Runs cached statement id (prepared from sql on first use) with p; on
 * success *res holds the result (PQclear it). Returns TS_OK, TS_ERR,
 * STORE_UNAVAILABLE (connection lost, server shutting down, disk full,
 * I/O error...) or STORE_CONFLICT (serialization failure, deadlock, lock
 * timeout), with err saying "what: server message". */
int pg_run(pg_store *st, pg_stmt id, const char *sql, const pg_params *p, PGresult **res,
           char *err, size_t errlen, const char *what);

/* pg_run for statements whose rows are not needed; *changed (may be NULL)
 * gets the number of rows affected. */
int pg_exec(pg_store *st, pg_stmt id, const char *sql, const pg_params *p, long *changed,
            char *err, size_t errlen, const char *what);

/* Column helpers: text ("" for NULL), integer, double, NULL test. */
const char *pg_text(const PGresult *r, int row, int col);
int64_t pg_int(const PGresult *r, int row, int col);
double pg_double(const PGresult *r, int row, int col);
bool pg_null(const PGresult *r, int row, int col);

/* Transactions for functions that work inside the caller's store_begin or,
 * when there is none, in one of their own (like sqlite_internal.h). */
int pg_txn_enter(pg_store *st, bool *own, char *err, size_t errlen);
int pg_txn_end(pg_store *st, bool own, int rc, char *err, size_t errlen);
/* A read-only snapshot for reads that take several statements. */
int pg_read_enter(pg_store *st, bool *own, char *err, size_t errlen);
void pg_read_end(pg_store *st, bool own);

/* Takes PG_LOCK_SLOTS for the open transaction (once). */
int pg_slots_lock(pg_store *st, char *err, size_t errlen);

/* The fields of one event besides seq (stamped at commit). */
typedef struct pg_event {
    double ts;
    const char *type;
    int64_t workflow_id;
    int32_t job_index;   /* -1: no job */
    const char *state;   /* NULL = absent */
    double progress;     /* < 0 = absent */
    const char *message; /* NULL or "" = absent */
    int attempt;         /* <= 0 = absent */
    int queue_position;  /* <= 0 = absent */
} pg_event;

/* How many users have a running workflow: one search of the partial index
 * workflows_running per such user (the smallest user_id after the
 * previous one) rather than a pass over every running workflow, which
 * admissions, submissions' receipts, stamps and the line's figures paid
 * once thousands were running. The same query as SQLite's
 * SQL_COUNT_ACTIVE_USERS. */
#define PG_COUNT_ACTIVE_USERS                                                                  \
    "WITH RECURSIVE u(user_id) AS ("                                                           \
    " SELECT MIN(user_id) FROM workflows WHERE state = 'running'"                              \
    " UNION ALL SELECT (SELECT MIN(user_id) FROM workflows"                                    \
    " WHERE state = 'running' AND user_id > u.user_id) FROM u WHERE u.user_id IS NOT NULL)"    \
    " SELECT COUNT(user_id) FROM u"

/* Queues an event of the open transaction; it gets its seq at commit. */
void pg_event_add(pg_store *st, const pg_event *ev);

/* 1-based place in the admission line of a queued workflow. */
int pg_queue_position(pg_store *st, int64_t workflow_id, int *pos, char *err, size_t errlen);

/* Brings the schema to PG_SCHEMA_VERSION (pg_schema.c). */
int pg_migrate(pg_store *st, char *err, size_t errlen);

/* Runs SQL text without parameters or statement cache (migrations, SET). */
int pg_simple(pg_store *st, const char *sql, char *err, size_t errlen, const char *what);

#endif
