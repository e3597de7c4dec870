/*
 * sqlite_workflows.c - reading and deleting workflows: get, list, the
 * scheduler's reload of unfinished work, delete.
 *
 * queue_position is derived on read (1 + queued workflows with a smaller
 * id: the line is FIFO by submission across users) rather than stored, so
 * it can never disagree with the states; the count is a range over the
 * (state, id) index.
 *
 * Callbacks (store_workflow_list, store_load_unfinished) run while the
 * listing statement is active: they may read from the store but must not
 * write to it or start the same listing again (the statement is cached).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/util.h"

/* Columns 0..12 of every workflow read; spec is column 13 where selected.
 * Column 12 is the jobs' progress summed (a finished job counts 1, a
 * running one its fraction) so that a list shows progress bars without
 * loading every job. */
#define WF_COLUMNS                                                                             \
    "id, user_id, name, priority, state, cancel_requested, n_jobs, reason, submitted_at,"      \
    " admitted_at, finished_at,"                                                               \
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"                   \
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END,"                                   \
    " (SELECT TOTAL(CASE WHEN j.state IN ('succeeded', 'failed', 'cancelled', 'skipped')"      \
    " THEN 1.0 WHEN j.state = 'running' THEN j.progress ELSE 0 END)"                          \
    " FROM jobs j WHERE j.workflow_id = w.id)"

static const char SQL_WF_GET[] = "SELECT " WF_COLUMNS ", spec FROM workflows w"
                                 " WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)";

/* Two statements rather than "?1 IS NULL OR user_id = ?1", so that each can
 * use its index: (user_id, id) for one user, the rowid for all. */
static const char SQL_WF_LIST_USER[] = "SELECT " WF_COLUMNS " FROM workflows w"
                                       " WHERE user_id = ?1 AND id < ?2"
                                       " AND (?3 IS NULL OR state = ?3)"
                                       " ORDER BY id DESC LIMIT ?4";

static const char SQL_WF_LIST_ALL[] = "SELECT " WF_COLUMNS " FROM workflows w"
                                      " WHERE id < ?2 AND (?3 IS NULL OR state = ?3)"
                                      " ORDER BY id DESC LIMIT ?4";

static const char SQL_WF_UNFINISHED[] = "SELECT " WF_COLUMNS ", spec FROM workflows w"
                                        " WHERE id > ?1 AND state IN ('queued', 'running')"
                                        " ORDER BY id";

static const char SQL_JOBS_OF_WF[] =
    "SELECT idx, job_id, state, attempt, failures, cpus, not_before, progress, ready_at,"
    " started_at, finished_at, exit_code, reason, lease_owner, lease_expires"
    " FROM jobs WHERE workflow_id = ?1 ORDER BY idx";

static const char SQL_WF_OWNER_STATE[] = "SELECT user_id, state FROM workflows WHERE id = ?1";

static const char SQL_WF_DELETE[] = "DELETE FROM workflows WHERE id = ?1";

/* The stamp: the row by its key, the workflow's newest event by the
 * (workflow_id, seq) index; the line's figures only when ?3 / ?4 ask (a
 * subquery in a CASE branch not taken is not run). */
static const char SQL_WF_STAMP[] =
    "SELECT state,"
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END,"
    " (SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.workflow_id = w.id),"
    " batch_handles,"
    " CASE WHEN ?3 THEN (SELECT COALESCE(SUM(cpus), 0) FROM jobs WHERE state = 'running')"
    " ELSE -1 END,"
    " CASE WHEN ?4 THEN (" SQL_COUNT_ACTIVE_USERS ") ELSE -1 END"
    " FROM workflows w WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)";

/* WF_COLUMNS without the jobs' progress (column 12 is 0): the summary
 * sums it with the counts, in the one pass over the jobs it makes. */
static const char SQL_WF_ROW[] =
    "SELECT id, user_id, name, priority, state, cancel_requested, n_jobs, reason, submitted_at,"
    " admitted_at, finished_at,"
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END, 0"
    " FROM workflows w WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)";

static const char SQL_JOB_COUNTS[] =
    "SELECT state, COUNT(*), TOTAL(progress) FROM jobs WHERE workflow_id = ?1 GROUP BY state";

/* A workflow (without spec and jobs) from a row of WF_COLUMNS. */
static int wf_from_row(sqlite3_stmt *s, store_workflow **out, char *err, size_t errlen) {
    wf_state state;
    if (wf_state_parse(col_text(s, 4), &state) != TS_OK) {
        ts_errf(err, errlen, "workflow %lld has an unknown state \"%s\" in the database",
                (long long)sqlite3_column_int64(s, 0), col_text(s, 4));
        return TS_ERR;
    }
    store_workflow *wf = ts_calloc(1, sizeof(*wf));
    wf->id = sqlite3_column_int64(s, 0);
    wf->user = ts_strdup(col_text(s, 1));
    wf->name = ts_strdup(col_text(s, 2));
    wf->priority = sqlite3_column_int(s, 3);
    wf->state = state;
    wf->cancel_requested = sqlite3_column_int(s, 5) != 0;
    wf->n_jobs = (size_t)sqlite3_column_int64(s, 6);
    wf->reason = ts_strdup(col_text(s, 7));
    wf->submitted_at = sqlite3_column_double(s, 8);
    wf->admitted_at = sqlite3_column_double(s, 9);
    wf->finished_at = sqlite3_column_double(s, 10);
    wf->queue_position = sqlite3_column_int(s, 11);
    wf->jobs_done = sqlite3_column_double(s, 12);
    *out = wf;
    return TS_OK;
}

/* One job from a row of SQL_JOBS_OF_WF. */
static int job_from_row(sqlite3_stmt *s, store_job *j, char *err, size_t errlen) {
    if (job_state_parse(col_text(s, 2), &j->state) != TS_OK) {
        ts_errf(err, errlen, "job %s has an unknown state \"%s\" in the database",
                col_text(s, 1), col_text(s, 2));
        return TS_ERR;
    }
    j->index = sqlite3_column_int(s, 0);
    j->job_id = ts_strdup(col_text(s, 1));
    j->attempt = sqlite3_column_int(s, 3);
    j->failures = sqlite3_column_int(s, 4);
    j->cpus = sqlite3_column_int(s, 5);
    j->not_before = sqlite3_column_double(s, 6);
    j->progress = sqlite3_column_double(s, 7);
    j->ready_at = sqlite3_column_double(s, 8);
    j->started_at = sqlite3_column_double(s, 9);
    j->finished_at = sqlite3_column_double(s, 10);
    j->exit_code = sqlite3_column_int(s, 11);
    j->reason = ts_strdup(col_text(s, 12));
    j->lease_owner = ts_strdup(col_text(s, 13));
    j->lease_expires = sqlite3_column_double(s, 14);
    return TS_OK;
}

/* Reads wf's jobs, which must be exactly the spec's jobs in order: anything
 * else means the file was edited by hand or a bug, and is reported rather
 * than handed to the scheduler. */
static int load_jobs(sqlite_store *st, store_workflow *wf, char *err, size_t errlen) {
    size_t n = wf->spec->n_jobs;
    int rc = TS_ERR, step;
    size_t i = 0;
    sqlite3_stmt *s = stmt_get(st, ST_JOBS_OF_WF, SQL_JOBS_OF_WF, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, wf->id);
    wf->jobs = ts_calloc(n, sizeof(store_job));
    wf->n_jobs = n;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (i >= n || sqlite3_column_int64(s, 0) != (sqlite3_int64)i) break;
        if (job_from_row(s, &wf->jobs[i], err, errlen) != TS_OK) goto cleanup;
        i++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = db_fail(st, err, errlen, "reading jobs");
        goto cleanup;
    }
    if (step == SQLITE_ROW || i != n) {
        ts_errf(err, errlen, "workflow %lld: its job rows do not match its spec (%zu jobs)",
                (long long)wf->id, n);
        goto cleanup;
    }
    rc = TS_OK;

cleanup:
    stmt_done(s);
    return rc;
}

/* The current row of a statement selecting WF_COLUMNS + spec, with spec and
 * jobs, as *out. */
static int wf_full_from_row(sqlite_store *st, sqlite3_stmt *s, store_workflow **out, char *err,
                            size_t errlen) {
    store_workflow *wf = NULL;
    SQL_TRY(wf_from_row(s, &wf, err, errlen));
    const char *text = (const char *)sqlite3_column_text(s, 13);
    size_t len = (size_t)sqlite3_column_bytes(s, 13);
    int rc = rows_load_spec_cached(st->specs, wf, text ? text : "", len, err, errlen);
    if (rc == TS_OK) rc = load_jobs(st, wf, err, errlen);
    if (rc != TS_OK) {
        store_workflow_free(wf);
        return rc;
    }
    *out = wf;
    return TS_OK;
}

/* Steps the statement `which` (sql) bound to (id, user) onto the owner's
 * workflow row: TS_OK with *out on the row, STORE_NOTFOUND when there is
 * none for this user, else the store's error. The caller reads the row and
 * calls stmt_done(*out) in every case (*out may be NULL). Shared by the
 * full read and the summary, which select different columns. */
static int wf_row_step(sqlite_store *st, stmt_id which, const char *sql, int64_t id,
                       const char *user, sqlite3_stmt **out, char *err, size_t errlen) {
    sqlite3_stmt *s = *out = stmt_get(st, which, sql, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, user);
    int step = sqlite3_step(s);
    if (step == SQLITE_DONE) return STORE_NOTFOUND;
    if (step != SQLITE_ROW) return db_fail(st, err, errlen, "reading a workflow");
    return TS_OK;
}

/*
 * One workflow with spec and jobs, read in one snapshot so that the
 * workflow's state and its jobs' states agree. Another user's workflow is
 * filtered in SQL and so looks exactly like a missing one.
 */
int sqlite_workflow_get(sqlite_store *st, int64_t id, const char *user, store_workflow **out, char *err,
                       size_t errlen) {
    bool own = false;
    int rc = TS_ERR;
    *out = NULL;
    SQL_TRY(read_enter(st, &own, err, errlen));
    sqlite3_stmt *s = NULL;
    rc = wf_row_step(st, ST_WF_GET, SQL_WF_GET, id, user, &s, err, errlen);
    if (rc == TS_OK) rc = wf_full_from_row(st, s, out, err, errlen);
    stmt_done(s);
    read_end(st, own);
    return rc;
}

/* See store.h: one statement, so one snapshot. */
int sqlite_workflow_stamp_get(sqlite_store *st, int64_t id, const char *user, unsigned want,
                              store_workflow_stamp *out, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_WF_STAMP, SQL_WF_STAMP, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, user);
    sqlite3_bind_int(s, 3, (want & STORE_STAMP_RUNNING_CPUS) != 0);
    sqlite3_bind_int(s, 4, (want & STORE_STAMP_ACTIVE_USERS) != 0);
    int step = sqlite3_step(s), rc = TS_OK;
    if (step == SQLITE_DONE) {
        rc = STORE_NOTFOUND;
    } else if (step != SQLITE_ROW) {
        rc = db_fail(st, err, errlen, "reading a workflow's stamp");
    } else if (wf_state_parse(col_text(s, 0), &out->state) != TS_OK) {
        ts_errf(err, errlen, "workflow %lld has an unknown state \"%s\" in the database",
                (long long)id, col_text(s, 0));
        rc = TS_ERR;
    } else {
        out->queue_position = sqlite3_column_int(s, 1);
        out->last_seq = sqlite3_column_int64(s, 2);
        out->batch_handles = sqlite3_column_int64(s, 3);
        out->running_cpus = sqlite3_column_int(s, 4);
        out->active_users = sqlite3_column_int(s, 5);
    }
    stmt_done(s);
    return rc;
}

/* Adds the job counts by state of wf to counts, and its jobs' progress as
 * a list row has it (a finished job counts 1, a running one its fraction)
 * to *done. */
static int job_counts(sqlite_store *st, int64_t id, size_t counts[JOB_STATE_COUNT], double *done,
                      char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_JOB_COUNTS, SQL_JOB_COUNTS, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, id);
    int step, rc = TS_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        job_state js;
        if (job_state_parse(col_text(s, 0), &js) != TS_OK) {
            ts_errf(err, errlen, "workflow %lld has a job in an unknown state \"%s\"",
                    (long long)id, col_text(s, 0));
            rc = TS_ERR;
            break;
        }
        counts[js] += (size_t)sqlite3_column_int64(s, 1);
        if (job_state_final(js)) *done += (double)sqlite3_column_int64(s, 1);
        else if (js == JOB_RUNNING) *done += sqlite3_column_double(s, 2);
    }
    if (rc == TS_OK && step != SQLITE_DONE) rc = db_fail(st, err, errlen, "counting jobs");
    stmt_done(s);
    return rc;
}

/* See store.h: the row and the counts in one read snapshot. */
int sqlite_workflow_summary(sqlite_store *st, int64_t id, const char *user, store_workflow **out,
                            size_t counts[JOB_STATE_COUNT], char *err, size_t errlen) {
    bool own = false;
    int rc = TS_ERR;
    *out = NULL;
    memset(counts, 0, JOB_STATE_COUNT * sizeof(size_t));
    SQL_TRY(read_enter(st, &own, err, errlen));
    sqlite3_stmt *s = NULL;
    rc = wf_row_step(st, ST_WF_ROW, SQL_WF_ROW, id, user, &s, err, errlen);
    if (rc == TS_OK) rc = wf_from_row(s, out, err, errlen);
    stmt_done(s);
    if (rc == TS_OK) rc = job_counts(st, id, counts, &(*out)->jobs_done, err, errlen);
    if (rc != TS_OK) {
        store_workflow_free(*out);
        *out = NULL;
    }
    read_end(st, own);
    return rc;
}

/*
 * Workflows newest first, without jobs. The cursor is an id bound (not an
 * offset), so pages stay correct while workflows are added or deleted.
 */
int sqlite_workflow_list(sqlite_store *st, const char *user, int state, int64_t before_id, size_t limit,
                        store_workflow_cb cb, void *ctx, char *err, size_t errlen) {
    if (state >= WF_STATE_COUNT) {
        ts_errf(err, errlen, "store_workflow_list: invalid state %d", state);
        return TS_ERR;
    }
    sqlite3_stmt *s = user ? stmt_get(st, ST_WF_LIST_USER, SQL_WF_LIST_USER, err, errlen)
                           : stmt_get(st, ST_WF_LIST_ALL, SQL_WF_LIST_ALL, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int rc = TS_OK, step;
    if (user != NULL) bind_text(s, 1, user);
    sqlite3_bind_int64(s, 2, before_id > 0 ? before_id : INT64_MAX);
    bind_text(s, 3, state >= 0 ? wf_state_name((wf_state)state) : NULL);
    sqlite3_bind_int64(s, 4, limit > 0 && limit < (size_t)INT64_MAX ? (sqlite3_int64)limit : -1);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        store_workflow *wf = NULL;
        if (wf_from_row(s, &wf, err, errlen) != TS_OK) {
            rc = TS_ERR;
            break;
        }
        int stop = cb(ctx, wf);
        store_workflow_free(wf);
        if (stop) break;
    }
    if (rc == TS_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_fail(st, err, errlen, "listing workflows");
    stmt_done(s);
    return rc;
}

/*
 * Every queued or running workflow after after_id, oldest first, with spec
 * and jobs: what a scheduler needs to take over. One read snapshot for the
 * whole walk, so the set is consistent (a workflow cannot be seen twice or
 * half-updated).
 */
int sqlite_load_unfinished(sqlite_store *st, int64_t after_id, store_workflow_cb cb, void *ctx, char *err,
                          size_t errlen) {
    bool own = false;
    int rc = TS_OK, step = SQLITE_DONE;
    SQL_TRY(read_enter(st, &own, err, errlen));
    sqlite3_stmt *s = stmt_get(st, ST_WF_UNFINISHED, SQL_WF_UNFINISHED, err, errlen);
    if (s == NULL) {
        rc = stmt_failed(st);
        goto cleanup;
    }
    sqlite3_bind_int64(s, 1, after_id);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        store_workflow *wf = NULL;
        if ((rc = wf_full_from_row(st, s, &wf, err, errlen)) != TS_OK) break;
        int stop = cb(ctx, wf);
        store_workflow_free(wf);
        if (stop) break;
    }
    if (rc == TS_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_fail(st, err, errlen, "loading unfinished workflows");

cleanup:
    stmt_done(s);
    read_end(st, own);
    return rc;
}

/* Checks that workflow id exists, is user's (NULL = anyone's) and is
 * final, inside the caller's transaction. */
static int delete_check(sqlite_store *st, int64_t id, const char *user, char *err, size_t errlen) {
    wf_state state = WF_QUEUED;
    int rc = TS_ERR;
    sqlite3_stmt *s = stmt_get(st, ST_WF_OWNER_STATE, SQL_WF_OWNER_STATE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s);
    if (step == SQLITE_DONE || (step == SQLITE_ROW && user && strcmp(col_text(s, 0), user) != 0))
        rc = STORE_NOTFOUND;
    else if (step != SQLITE_ROW)
        rc = db_fail(st, err, errlen, "reading a workflow");
    else if (wf_state_parse(col_text(s, 1), &state) != TS_OK || !wf_state_final(state))
        rc = STORE_CONFLICT;
    else
        rc = TS_OK;
    stmt_done(s);
    return rc;
}

/*
 * Deletes a finished workflow; its jobs, attempts, events and commands go
 * with it by ON DELETE CASCADE. The check and the delete share one write
 * transaction, so a workflow retried meanwhile (failed -> running) is not
 * deleted under the scheduler.
 */
int sqlite_workflow_delete(sqlite_store *st, int64_t id, const char *user, char *err, size_t errlen) {
    bool own = false;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = delete_check(st, id, user, err, errlen);
    if (rc == TS_OK) {
        sqlite3_stmt *s = stmt_get(st, ST_WF_DELETE, SQL_WF_DELETE, err, errlen);
        if (s != NULL) sqlite3_bind_int64(s, 1, id);
        rc = s ? stmt_exec(st, s, err, errlen, "deleting a workflow") : stmt_failed(st);
    }
    return txn_end(st, own, rc, err, errlen);
}
