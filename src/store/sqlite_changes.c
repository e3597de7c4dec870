/*
 * sqlite_changes.c - recording the engine's decisions: store_apply,
 * store_claim, store_admit and lease renewal.
 *
 * Every write is guarded by the state it expects (UPDATE ... WHERE state =
 * from), so a decision taken on an outdated view - another scheduler
 * instance, a crash between deciding and recording - changes nothing and is
 * reported instead of silently overwriting newer state. Claims and
 * admissions re-check their limits inside the same write transaction as the
 * update: with BEGIN IMMEDIATE only one writer is inside at a time, so two
 * processes can never both take the last slot.
 *
 * These functions work inside the caller's store_begin/commit (one per
 * scheduler tick); called outside one they run in a transaction of their
 * own. When they fail with TS_ERR after writing part of a change, the
 * caller's transaction must be rolled back (the scheduler does: it rebuilds
 * its engine from the store, engine.h). STORE_CONFLICT and the stale check
 * happen before anything is written.
 */
#include <string.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/util.h"

static const char SQL_JOB_UPDATE[] =
    "UPDATE jobs SET state = ?3, attempt = ?5, failures = ?6, not_before = ?7, progress = ?8,"
    " reason = ?9,"
    /* the exit code belongs to an attempt: set when one ends, cleared when
     * one starts or the job is reset, kept otherwise (pending -> skipped) */
    " exit_code = CASE WHEN ?4 = 'running' THEN ?10"
    "  WHEN ?3 IN ('running', 'pending') THEN -1 ELSE exit_code END,"
    " ready_at = CASE ?3 WHEN 'ready' THEN ?11 WHEN 'pending' THEN 0 ELSE ready_at END,"
    " started_at = CASE ?3 WHEN 'running' THEN ?11 WHEN 'pending' THEN 0 ELSE started_at END,"
    " finished_at = CASE WHEN ?3 IN ('succeeded', 'failed', 'cancelled', 'skipped') THEN ?11"
    "  ELSE 0 END,"
    " lease_owner = CASE ?3 WHEN 'running' THEN ?12 ELSE '' END,"
    " lease_expires = CASE ?3 WHEN 'running' THEN ?13 ELSE 0 END"
    " WHERE workflow_id = ?1 AND idx = ?2 AND state = ?4";

static const char SQL_JOB_STATE[] = "SELECT state FROM jobs WHERE workflow_id = ?1 AND idx = ?2";

static const char SQL_JOB_PROGRESS[] =
    "UPDATE jobs SET progress = ?3 WHERE workflow_id = ?1 AND idx = ?2";

static const char SQL_ATTEMPT_OPEN[] =
    "INSERT INTO attempts (workflow_id, idx, attempt, started_at, outcome, reason)"
    " VALUES (?1, ?2, ?3, ?4, 'running', ?5)";

/* A job has at most one open attempt (it is running at most once), so the
 * open row is found by its outcome rather than by trusting a number. */
static const char SQL_ATTEMPT_CLOSE[] =
    "UPDATE attempts SET finished_at = ?3, outcome = ?4, exit_code = ?5, reason = ?6"
    " WHERE workflow_id = ?1 AND idx = ?2 AND outcome = 'running'";

static const char SQL_WF_UPDATE[] =
    "UPDATE workflows SET state = ?2, reason = ?4,"
    " admitted_at = CASE WHEN ?3 = 'queued' AND ?2 = 'running' THEN ?5 ELSE admitted_at END,"
    " finished_at = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled') THEN ?5 ELSE 0 END,"
    /* a user's retry brings a failed/cancelled workflow back to the line:
     * the old cancel request must not cancel it again */
    " cancel_requested = CASE WHEN ?2 IN ('queued', 'running') AND ?3 IN ('failed', 'cancelled')"
    "  THEN 0"
    "  ELSE cancel_requested END"
    " WHERE id = ?1 AND state = ?3";

/* The scheduler's word on why a queued workflow waits (the position itself
 * is derived on read). */
static const char SQL_WF_WAIT_REASON[] =
    "UPDATE workflows SET reason = ?2 WHERE id = ?1 AND state = 'queued'";

static const char SQL_WF_STATE[] = "SELECT state, user_id FROM workflows WHERE id = ?1";

/* 'running' is a literal so that the partial index jobs_running is used. */
static const char SQL_RUNNING_CPUS[] =
    "SELECT COALESCE(SUM(cpus), 0) FROM jobs WHERE state = 'running'";

static const char SQL_USER_ACTIVE[] =
    "SELECT EXISTS (SELECT 1 FROM workflows WHERE state = 'running' AND user_id = ?1)";

static const char SQL_ACTIVE_USERS[] = SQL_COUNT_ACTIVE_USERS;

static const char SQL_LEASE_RENEW[] =
    "UPDATE jobs SET lease_expires = ?2 WHERE state = 'running' AND lease_owner = ?1";

static const char SQL_ATTEMPT_EXTERNAL[] =
    "UPDATE attempts SET token = ?4, external_id = ?5"
    " WHERE workflow_id = ?1 AND idx = ?2 AND attempt = ?3 AND outcome = 'running'";

/* Records no event: the workflow's stamp counts it instead (store.h). */
static const char SQL_WF_HANDLES[] =
    "UPDATE workflows SET batch_handles = batch_handles + 1 WHERE id = ?1";

/* ---- checks ------------------------------------------------------------------ */

/* The "stale change" message, naming the state the row really has. */
static int stale_job(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_JOB_STATE, SQL_JOB_STATE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    sqlite3_bind_int(s, 2, ch->job_index);
    int step = sqlite3_step(s), rc = TS_ERR;
    if (step == SQLITE_ROW)
        ts_errf(err, errlen, "stale change: job %s of workflow %lld is %s, not %s",
                ch->job_id ? ch->job_id : "?", (long long)ch->workflow_id, col_text(s, 0),
                job_state_name(ch->from));
    else if (step == SQLITE_DONE)
        ts_errf(err, errlen, "no job %d in workflow %lld", (int)ch->job_index,
                (long long)ch->workflow_id);
    else
        rc = db_fail(st, err, errlen, "reading a job's state");
    stmt_done(s);
    return rc;
}

/* Reads a workflow's state (*found false if there is none). */
static int wf_state_read(sqlite_store *st, int64_t id, bool *found, wf_state *state, char *user,
                         size_t userlen, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_WF_STATE, SQL_WF_STATE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, id);
    int step = sqlite3_step(s), rc = TS_OK;
    *found = step == SQLITE_ROW;
    if (step == SQLITE_ROW) {
        if (wf_state_parse(col_text(s, 0), state) != TS_OK) *state = WF_STATE_COUNT;
        if (user != NULL) ts_strlcpy(user, col_text(s, 1), userlen);
    } else if (step != SQLITE_DONE) {
        rc = db_fail(st, err, errlen, "reading a workflow's state");
    }
    stmt_done(s);
    return rc;
}

/* Runs a single-value query (int64 result) with up to one text parameter. */
static int query_int(sqlite_store *st, stmt_id id, const char *sql, const char *param, int64_t *out,
                     char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, id, sql, err, errlen);
    if (s == NULL) return stmt_failed(st);
    if (param != NULL) bind_text(s, 1, param);
    int rc = TS_OK;
    if (sqlite3_step(s) == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    else rc = db_fail(st, err, errlen, "reading the limits");
    stmt_done(s);
    return rc;
}

/* ---- writes ------------------------------------------------------------------ */

/* The job row; STORE_CONFLICT if it is not in ch->from (nothing written). */
static int job_row_write(sqlite_store *st, const core_change *ch, const char *owner, double lease,
                         char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_JOB_UPDATE, SQL_JOB_UPDATE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    sqlite3_bind_int(s, 2, ch->job_index);
    bind_text(s, 3, job_state_name(ch->to));
    bind_text(s, 4, job_state_name(ch->from));
    sqlite3_bind_int(s, 5, ch->attempt);
    sqlite3_bind_int(s, 6, ch->failures);
    sqlite3_bind_double(s, 7, ch->not_before);
    sqlite3_bind_double(s, 8, ch->progress);
    bind_text(s, 9, ch->reason);
    sqlite3_bind_int(s, 10, ch->exit_code);
    sqlite3_bind_double(s, 11, ch->at);
    bind_text(s, 12, owner ? owner : "");
    sqlite3_bind_double(s, 13, lease);
    SQL_TRY(stmt_exec(st, s, err, errlen, "updating a job"));
    return sqlite3_changes(st->db) == 1 ? TS_OK : STORE_CONFLICT;
}

/* The attempt history: a row opens when the job starts and closes when it
 * leaves running. A missing open row (history written by an older build)
 * is not an error: the job's own row is what scheduling relies on. */
static int attempt_write(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    sqlite3_stmt *s;
    if (ch->to == JOB_RUNNING) {
        s = stmt_get(st, ST_ATTEMPT_OPEN, SQL_ATTEMPT_OPEN, err, errlen);
        if (s == NULL) return stmt_failed(st);
        sqlite3_bind_int64(s, 1, ch->workflow_id);
        sqlite3_bind_int(s, 2, ch->job_index);
        sqlite3_bind_int(s, 3, ch->attempt);
        sqlite3_bind_double(s, 4, ch->at);
        bind_text(s, 5, ch->reason);
        return stmt_exec(st, s, err, errlen, "recording an attempt's start");
    }
    if (ch->from != JOB_RUNNING) return TS_OK;
    s = stmt_get(st, ST_ATTEMPT_CLOSE, SQL_ATTEMPT_CLOSE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    sqlite3_bind_int(s, 2, ch->job_index);
    sqlite3_bind_double(s, 3, ch->at);
    bind_text(s, 4, ch->outcome ? ch->outcome : rows_default_outcome((job_state)ch->to));
    sqlite3_bind_int(s, 5, ch->exit_code);
    bind_text(s, 6, ch->reason);
    return stmt_exec(st, s, err, errlen, "recording an attempt's end");
}

/* The workflow row; STORE_CONFLICT if it is not in ch->from. */
static int wf_row_write(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_WF_UPDATE, SQL_WF_UPDATE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    bind_text(s, 2, wf_state_name(ch->to));
    bind_text(s, 3, wf_state_name(ch->from));
    bind_text(s, 4, ch->reason);
    sqlite3_bind_double(s, 5, ch->at);
    SQL_TRY(stmt_exec(st, s, err, errlen, "updating a workflow"));
    return sqlite3_changes(st->db) == 1 ? TS_OK : STORE_CONFLICT;
}

/* A running job's progress; no state guard (a late report for a job that
 * just ended is harmless), but the job must exist. */
static int progress_write(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_JOB_PROGRESS, SQL_JOB_PROGRESS, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    sqlite3_bind_int(s, 2, ch->job_index);
    sqlite3_bind_double(s, 3, ch->progress);
    SQL_TRY(stmt_exec(st, s, err, errlen, "updating progress"));
    if (sqlite3_changes(st->db) == 1) return TS_OK;
    ts_errf(err, errlen, "no job %d in workflow %lld", (int)ch->job_index,
            (long long)ch->workflow_id);
    return TS_ERR;
}

/* The event a change produces. */
static int change_event(sqlite_store *st, const core_change *ch, int64_t *seq, char *err,
                        size_t errlen) {
    bool job = rows_is_job_change(ch->kind);
    sql_event ev = {
        .ts = ch->at,
        .type = ch->event_type ? ch->event_type : rows_default_event_type(ch),
        .workflow_id = ch->workflow_id,
        .job_index = job ? ch->job_index : -1,
        .state = job ? job_state_name(ch->to) : wf_state_name(ch->to),
        .progress = job ? ch->progress : -1,
        .message = ch->reason,
        .attempt = job ? ch->attempt : 0,
        .queue_position = ch->kind == CHANGE_QUEUE_POSITION ? ch->queue_position : 0,
    };
    return sql_event_append(st, &ev, seq, err, errlen);
}

static int wait_reason_write(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_WF_WAIT_REASON, SQL_WF_WAIT_REASON, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, ch->workflow_id);
    sqlite3_bind_text(s, 2, ch->reason, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s) == SQLITE_DONE ? TS_OK
                                            : db_fail(st, err, errlen, "recording a waiting reason");
    stmt_done(s);
    return rc;
}

/* Writes ch (already checked) and its event, in the open transaction.
 * STORE_CONFLICT if the row is not in ch->from. */
static int record(sqlite_store *st, const core_change *ch, const char *owner, double lease,
                  int64_t *seq, char *err, size_t errlen) {
    int rc = TS_OK;
    switch (ch->kind) {
    case CHANGE_JOB:
        rc = job_row_write(st, ch, owner, lease, err, errlen);
        if (rc == TS_OK) rc = attempt_write(st, ch, err, errlen);
        break;
    case CHANGE_WORKFLOW: rc = wf_row_write(st, ch, err, errlen); break;
    case CHANGE_JOB_PROGRESS: rc = progress_write(st, ch, err, errlen); break;
    case CHANGE_QUEUE_POSITION: rc = wait_reason_write(st, ch, err, errlen); break;
    }
    if (rc != TS_OK) return rc;
    return change_event(st, ch, seq, err, errlen);
}

/* Turns record()'s STORE_CONFLICT into store_apply's stale-change error. */
static int stale(sqlite_store *st, const core_change *ch, char *err, size_t errlen) {
    if (ch->kind == CHANGE_JOB) return stale_job(st, ch, err, errlen);
    bool found = false;
    wf_state actual = WF_STATE_COUNT;
    SQL_TRY(wf_state_read(st, ch->workflow_id, &found, &actual, NULL, 0, err, errlen));
    if (!found)
        ts_errf(err, errlen, "no workflow %lld", (long long)ch->workflow_id);
    else
        ts_errf(err, errlen, "stale change: workflow %lld is %s, not %s",
                (long long)ch->workflow_id, wf_state_name(actual), wf_state_name(ch->from));
    return TS_ERR;
}

/*
 * Records one change decided by the engine. Starting a job and admitting a
 * workflow are refused here: they must go through store_claim/store_admit,
 * which check the global limits in the same transaction.
 */
int sqlite_apply(sqlite_store *st, const core_change *ch, int64_t *seq, char *err, size_t errlen) {
    bool own = false;
    if (rows_change_check(ch, err, errlen) != TS_OK) return TS_ERR;
    if (ch->kind == CHANGE_JOB && ch->to == JOB_RUNNING) {
        ts_errf(err, errlen, "store_apply: starting job %s must go through store_claim",
                ch->job_id ? ch->job_id : "?");
        return TS_ERR;
    }
    if (ch->kind == CHANGE_WORKFLOW && ch->from == WF_QUEUED && ch->to == WF_RUNNING) {
        ts_errf(err, errlen, "store_apply: admitting workflow %lld must go through store_admit",
                (long long)ch->workflow_id);
        return TS_ERR;
    }
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = record(st, ch, NULL, 0, seq, err, errlen);
    if (rc == STORE_CONFLICT) rc = stale(st, ch, err, errlen);
    return txn_end(st, own, rc, err, errlen);
}

/* The claim's limit check: the cpus of all running jobs, in this
 * transaction, plus the new job's. */
static int claim_fits(sqlite_store *st, int cpus, int limit, bool *fits, char *err, size_t errlen) {
    int64_t running = 0;
    SQL_TRY(query_int(st, ST_RUNNING_CPUS, SQL_RUNNING_CPUS, NULL, &running, err, errlen));
    *fits = running + cpus <= limit;
    return TS_OK;
}

/*
 * Claims a ready job: limit check, the guarded update (ready -> running with
 * the lease), the attempt row and the event, in one write transaction.
 */
int sqlite_claim(sqlite_store *st, const core_change *ch, const char *owner, double lease_expires,
                int concurrency_limit, char *err, size_t errlen) {
    bool own = false, fits = false;
    if (ch->kind != CHANGE_JOB || ch->from != JOB_READY || ch->to != JOB_RUNNING ||
        ch->job_index < 0 || owner == NULL) {
        ts_errf(err, errlen, "store_claim: expects a job change ready -> running and an owner");
        return TS_ERR;
    }
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = claim_fits(st, ch->cpus, concurrency_limit, &fits, err, errlen);
    if (rc == TS_OK && !fits) rc = STORE_CONFLICT;
    if (rc == TS_OK) rc = record(st, ch, owner, lease_expires, NULL, err, errlen);
    return txn_end(st, own, rc, err, errlen);
}

/* The admission check: the workflow is still queued, and its user is active
 * already or there is room for one more active user. */
static int admit_allowed(sqlite_store *st, const core_change *ch, int max_active_users, bool *ok,
                         char *err, size_t errlen) {
    bool found = false;
    wf_state state = WF_STATE_COUNT;
    char user[256];
    int64_t active = 0, users = 0;
    *ok = false;
    SQL_TRY(wf_state_read(st, ch->workflow_id, &found, &state, user, sizeof(user), err, errlen));
    if (!found || state != WF_QUEUED) return TS_OK;
    SQL_TRY(query_int(st, ST_USER_ACTIVE, SQL_USER_ACTIVE, user, &active, err, errlen));
    SQL_TRY(query_int(st, ST_ACTIVE_USERS, SQL_ACTIVE_USERS, NULL, &users, err, errlen));
    *ok = active != 0 || users < max_active_users;
    return TS_OK;
}

/* Admits a queued workflow if the active-user limit allows. */
int sqlite_admit(sqlite_store *st, const core_change *ch, int max_active_users, char *err,
                size_t errlen) {
    bool own = false, ok = false;
    if (ch->kind != CHANGE_WORKFLOW || ch->from != WF_QUEUED || ch->to != WF_RUNNING) {
        ts_errf(err, errlen, "store_admit: expects a workflow change queued -> running");
        return TS_ERR;
    }
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = admit_allowed(st, ch, max_active_users, &ok, err, errlen);
    if (rc == TS_OK && !ok) rc = STORE_CONFLICT;
    if (rc == TS_OK) rc = record(st, ch, NULL, 0, NULL, err, errlen);
    return txn_end(st, own, rc, err, errlen);
}

/* One UPDATE: atomic by itself, and a write statement in autocommit mode
 * takes the write lock up front (waiting on the busy timeout), so it needs
 * no explicit transaction. */
int sqlite_renew_leases(sqlite_store *st, const char *owner, double lease_expires, char *err,
                       size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_LEASE_RENEW, SQL_LEASE_RENEW, err, errlen);
    if (s == NULL) return stmt_failed(st);
    bind_text(s, 1, owner);
    sqlite3_bind_double(s, 2, lease_expires);
    return stmt_exec(st, s, err, errlen, "renewing leases");
}

/* The open attempt row only (outcome 'running'): an attempt that already
 * ended keeps what it had. The workflow's batch_handles grows in the same
 * transaction, so a cached view of it is not served after the change. */
static int attempt_external_write(sqlite_store *st, int64_t workflow_id, int32_t job_index,
                                  int attempt, const char *token, const char *external_id,
                                  char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_ATTEMPT_EXTERNAL, SQL_ATTEMPT_EXTERNAL, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int(s, 2, job_index);
    sqlite3_bind_int(s, 3, attempt);
    bind_text(s, 4, token);
    bind_text(s, 5, external_id);
    SQL_TRY(stmt_exec(st, s, err, errlen, "recording an attempt's batch job"));
    if (sqlite3_changes(st->db) != 1) {
        ts_errf(err, errlen, "attempt %d of job %d of workflow %lld is not running", attempt,
                (int)job_index, (long long)workflow_id);
        return STORE_NOTFOUND;
    }
    s = stmt_get(st, ST_WF_HANDLES, SQL_WF_HANDLES, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    return stmt_exec(st, s, err, errlen, "recording an attempt's batch job");
}

int sqlite_attempt_external(sqlite_store *st, int64_t workflow_id, int32_t job_index, int attempt,
                            const char *token, const char *external_id, char *err,
                            size_t errlen) {
    bool own = false;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = attempt_external_write(st, workflow_id, job_index, attempt, token, external_id, err,
                                    errlen);
    return txn_end(st, own, rc, err, errlen);
}
