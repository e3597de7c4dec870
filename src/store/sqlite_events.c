/*
 * sqlite_events.c - the event log, attempt history and the admission line
 * at a glance.
 *
 * Events are stored as columns without their JSON body; the body is
 * composed on read. That way the "seq" in the JSON is always the row's real
 * seq (it is only known after the insert), and the user an event is filed
 * under is copied from the workflow row in the same INSERT, so isolation
 * does not depend on the caller passing the right user.
 *
 * seq is INTEGER PRIMARY KEY AUTOINCREMENT: SQLite has one writer at a time,
 * so seqs are assigned in commit order and a client resuming "since" a seq
 * misses nothing; AUTOINCREMENT keeps them from being reused after a
 * workflow's events are deleted.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/util.h"

static const char SQL_EVENT_INSERT[] =
    "INSERT INTO events (ts, type, user_id, workflow_id, job_id, state, progress, message,"
    " attempt, queue_position)"
    " VALUES (?1, ?2, (SELECT user_id FROM workflows WHERE id = ?3), ?3,"
    " CASE WHEN ?4 >= 0 THEN (SELECT job_id FROM jobs WHERE workflow_id = ?3 AND idx = ?4) END,"
    " ?5, ?6, ?7, ?8, ?9)";

#define EV_COLUMNS                                                                              \
    "seq, ts, type, user_id, workflow_id, job_id, state, progress, message, attempt,"          \
    " queue_position"

/* One statement per filter combination, each able to use its index. */
static const char SQL_EVENTS_WF[] = "SELECT " EV_COLUMNS " FROM events"
                                    " WHERE workflow_id = ?1 AND seq > ?2"
                                    " AND (?3 IS NULL OR user_id = ?3) ORDER BY seq LIMIT ?4";
static const char SQL_EVENTS_USER[] = "SELECT " EV_COLUMNS " FROM events"
                                      " WHERE user_id = ?3 AND seq > ?2 ORDER BY seq LIMIT ?4";
static const char SQL_EVENTS_ALL[] = "SELECT " EV_COLUMNS " FROM events"
                                     " WHERE seq > ?2 ORDER BY seq LIMIT ?4";

static const char SQL_EVENTS_LAST[] = "SELECT COALESCE(MAX(seq), 0) FROM events";

static const char SQL_QUEUE_AHEAD[] =
    "SELECT 1 + COUNT(*) FROM workflows WHERE state = 'queued' AND id < ?1";

static const char SQL_JOB_EXISTS[] = "SELECT 1 FROM jobs WHERE workflow_id = ?1 AND idx = ?2";

/* ?2 = -1 reads every job's attempts in one go (the workflow view). */
static const char SQL_ATTEMPTS[] =
    "SELECT attempt, started_at, finished_at, outcome, exit_code, reason, idx, token,"
    " external_id FROM attempts WHERE workflow_id = ?1 AND (?2 < 0 OR idx = ?2) ORDER BY idx, attempt";

static const char SQL_QUEUE_STATS[] =
    "SELECT"
    " (" SQL_COUNT_ACTIVE_USERS "),"
    " (SELECT COUNT(DISTINCT user_id) FROM workflows q WHERE state = 'queued'"
    "   AND NOT EXISTS (SELECT 1 FROM workflows r"
    "   WHERE r.state = 'running' AND r.user_id = q.user_id)),"
    " (SELECT COUNT(*) FROM workflows WHERE state = 'queued'),"
    " (SELECT COALESCE(SUM(cpus), 0) FROM jobs WHERE state = 'running'),"
    " (SELECT COUNT(*) FROM jobs WHERE state = 'running'),"
    " (SELECT COALESCE(MIN(submitted_at), 0) FROM workflows WHERE state = 'queued')";

/* ---- writing ---------------------------------------------------------------- */

/* See sqlite_internal.h. Absent fields are bound as NULL so that the JSON
 * composed on read leaves them out. */
int sql_event_append(sqlite_store *st, const sql_event *ev, int64_t *seq, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_EVENT_INSERT, SQL_EVENT_INSERT, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_double(s, 1, ev->ts);
    bind_text(s, 2, ev->type);
    sqlite3_bind_int64(s, 3, ev->workflow_id);
    sqlite3_bind_int(s, 4, ev->job_index);
    bind_text(s, 5, ev->state);
    if (ev->progress >= 0) sqlite3_bind_double(s, 6, ev->progress);
    if (ev->message != NULL && ev->message[0] != '\0') bind_text(s, 7, ev->message);
    if (ev->attempt > 0) sqlite3_bind_int(s, 8, ev->attempt);
    if (ev->queue_position > 0) sqlite3_bind_int(s, 9, ev->queue_position);
    SQL_TRY(stmt_exec(st, s, err, errlen, "recording an event"));
    st->wake_seq = sqlite3_last_insert_rowid(st->db); /* listeners are rung at the commit */
    if (seq != NULL) *seq = st->wake_seq;
    return TS_OK;
}

/* The same count as the queue_position column of workflow reads. */
int sql_queue_position(sqlite_store *st, int64_t workflow_id, int *pos, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_QUEUE_AHEAD, SQL_QUEUE_AHEAD, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    int rc = TS_OK;
    if (sqlite3_step(s) == SQLITE_ROW) *pos = sqlite3_column_int(s, 0);
    else rc = db_fail(st, err, errlen, "reading the queue position");
    stmt_done(s);
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

/* The event JSON for the current row of an EV_COLUMNS statement. */
static char *event_json(sqlite3_stmt *s) {
    rows_event ev = {
        .seq = sqlite3_column_int64(s, 0),
        .ts = sqlite3_column_double(s, 1),
        .type = col_text(s, 2),
        .workflow_id = sqlite3_column_int64(s, 4),
        .job_id = (const char *)sqlite3_column_text(s, 5),
        .state = (const char *)sqlite3_column_text(s, 6),
        .has_progress = sqlite3_column_type(s, 7) != SQLITE_NULL,
        .progress = sqlite3_column_double(s, 7),
        .message = (const char *)sqlite3_column_text(s, 8),
        .has_attempt = sqlite3_column_type(s, 9) != SQLITE_NULL,
        .attempt = sqlite3_column_int64(s, 9),
        .has_queue_position = sqlite3_column_type(s, 10) != SQLITE_NULL,
        .queue_position = sqlite3_column_int64(s, 10),
    };
    return rows_event_json(&ev);
}

/* The statement for a filter combination, bound. */
static sqlite3_stmt *events_stmt(sqlite_store *st, int64_t since, const char *user, int64_t workflow_id,
                                 size_t limit, char *err, size_t errlen) {
    sqlite3_stmt *s;
    if (workflow_id > 0) s = stmt_get(st, ST_EVENTS_WF, SQL_EVENTS_WF, err, errlen);
    else if (user != NULL) s = stmt_get(st, ST_EVENTS_USER, SQL_EVENTS_USER, err, errlen);
    else s = stmt_get(st, ST_EVENTS_ALL, SQL_EVENTS_ALL, err, errlen);
    if (s == NULL) return NULL;
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int64(s, 2, since);
    bind_text(s, 3, user);
    sqlite3_bind_int64(s, 4, limit > 0 && limit < (size_t)INT64_MAX ? (sqlite3_int64)limit : -1);
    return s;
}

/*
 * Events after since, oldest first. One SELECT is one snapshot, so a page
 * never has holes: an event committed meanwhile comes in the next call.
 * The strings passed to cb live until cb returns.
 */
int sqlite_events_since(sqlite_store *st, int64_t since, const char *user, int64_t workflow_id,
                       size_t limit, store_event_cb cb, void *ctx, char *err, size_t errlen) {
    sqlite3_stmt *s = events_stmt(st, since, user, workflow_id, limit, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int step, rc = TS_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        char *json = event_json(s);
        store_event ev = {
            .seq = sqlite3_column_int64(s, 0),
            .ts = sqlite3_column_double(s, 1),
            .type = col_text(s, 2),
            .user = col_text(s, 3),
            .workflow_id = sqlite3_column_int64(s, 4),
            .job_id = (const char *)sqlite3_column_text(s, 5),
            .json = json ? json : "{}",
        };
        int stop = cb(ctx, &ev);
        free(json);
        if (stop) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = db_fail(st, err, errlen, "reading events");
    stmt_done(s);
    return rc;
}

/* STORE_NOTFOUND unless the job exists. */
static int job_exists(sqlite_store *st, int64_t workflow_id, int32_t job_index, char *err,
                      size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_JOB_EXISTS, SQL_JOB_EXISTS, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int(s, 2, job_index);
    int step = sqlite3_step(s), rc = TS_OK;
    if (step == SQLITE_DONE) rc = STORE_NOTFOUND;
    else if (step != SQLITE_ROW) rc = db_fail(st, err, errlen, "looking up a job");
    stmt_done(s);
    return rc;
}

/* Reads all attempt rows of a job into a growing array. */
static int attempts_read(sqlite_store *st, int64_t workflow_id, int32_t job_index, store_attempt **out,
                         size_t *n, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_ATTEMPTS, SQL_ATTEMPTS, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int(s, 2, job_index);
    size_t cap = 0;
    int step, rc = TS_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 4;
            *out = ts_realloc(*out, cap * sizeof(store_attempt));
        }
        store_attempt *a = &(*out)[(*n)++];
        memset(a, 0, sizeof(*a));
        a->attempt = sqlite3_column_int(s, 0);
        a->started_at = sqlite3_column_double(s, 1);
        a->finished_at = sqlite3_column_double(s, 2);
        ts_strlcpy(a->outcome, col_text(s, 3), sizeof(a->outcome));
        a->exit_code = sqlite3_column_int(s, 4);
        ts_strlcpy(a->reason, col_text(s, 5), sizeof(a->reason));
        a->job_index = sqlite3_column_int(s, 6);
        ts_strlcpy(a->token, col_text(s, 7), sizeof(a->token));
        ts_strlcpy(a->external_id, col_text(s, 8), sizeof(a->external_id));
    }
    if (step != SQLITE_DONE) rc = db_fail(st, err, errlen, "reading attempts");
    stmt_done(s);
    return rc;
}

/* A job's attempts, oldest first; STORE_NOTFOUND for a job that does not
 * exist (an existing job that never ran has none: TS_OK, n = 0). */
int sqlite_attempts(sqlite_store *st, int64_t workflow_id, int32_t job_index, store_attempt **out,
                   size_t *n, char *err, size_t errlen) {
    bool own = false;
    *out = NULL;
    *n = 0;
    SQL_TRY(read_enter(st, &own, err, errlen));
    int rc = job_index < 0 ? TS_OK : job_exists(st, workflow_id, job_index, err, errlen);
    if (rc == TS_OK) rc = attempts_read(st, workflow_id, job_index, out, n, err, errlen);
    read_end(st, own);
    if (rc != TS_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* The line at a glance, in one statement (one snapshot). */
int sqlite_events_last_seq(sqlite_store *st, int64_t *seq, char *err, size_t errlen) {
    *seq = 0;
    sqlite3_stmt *s = stmt_get(st, ST_EVENTS_LAST, SQL_EVENTS_LAST, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int rc = TS_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *seq = sqlite3_column_int64(s, 0);
    else
        rc = db_fail(st, err, errlen, "reading the latest event");
    stmt_done(s);
    return rc;
}

int sqlite_queue_stats_get(sqlite_store *st, store_queue_stats *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = stmt_get(st, ST_QUEUE_STATS, SQL_QUEUE_STATS, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int rc = TS_OK;
    if (sqlite3_step(s) == SQLITE_ROW) {
        out->active_users = sqlite3_column_int(s, 0);
        out->waiting_users = sqlite3_column_int(s, 1);
        out->queued_workflows = sqlite3_column_int(s, 2);
        out->running_cpus = sqlite3_column_int(s, 3);
        out->running_jobs = sqlite3_column_int(s, 4);
        out->oldest_queued_at = sqlite3_column_double(s, 5);
    } else {
        rc = db_fail(st, err, errlen, "reading queue statistics");
    }
    stmt_done(s);
    return rc;
}
