/*
 * pg_changes.c - recording the engine's decisions on PostgreSQL:
 * store_apply, store_claim, store_admit and lease renewal.
 *
 * As on SQLite, every write is guarded by the state it expects (UPDATE ...
 * WHERE state = from), so a decision taken on an outdated view changes
 * nothing. What SQLite gets from its single writer, PostgreSQL gets from
 * explicit locks:
 *   - the global limits (running cpus, active users) are checked and taken
 *     under the advisory transaction lock PG_LOCK_SLOTS (pg.c), so several
 *     schedulers and HTTP workers on several instances can never both take
 *     the last slot or admit one user too many;
 *   - a claim is one statement: it selects the job FOR UPDATE SKIP LOCKED
 *     (a row another transaction is changing is skipped - a conflict - not
 *     waited for), checks the cpus of every running job plus its own
 *     against the limit, and moves it to running with its lease;
 *   - everything here is a leader-only write: with a lead taken on this
 *     handle, the commit is fenced by the term (pg.c).
 * STORE_CONFLICT and the stale check happen before anything is written.
 */
#include <string.h>

#include "store/pg_internal.h"
#include "store/rows.h"
#include "util/util.h"

static const char SQL_JOB_UPDATE[] =
    "UPDATE jobs SET state = $3, attempt = $5, failures = $6, not_before = $7, progress = $8,"
    " reason = $9,"
    " exit_code = CASE WHEN $4 = 'running' THEN $10"
    "  WHEN $3 IN ('running', 'pending') THEN -1 ELSE exit_code END,"
    " ready_at = CASE $3 WHEN 'ready' THEN $11 WHEN 'pending' THEN 0 ELSE ready_at END,"
    " started_at = CASE $3 WHEN 'running' THEN $11 WHEN 'pending' THEN 0 ELSE started_at END,"
    " finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled', 'skipped') THEN $11"
    "  ELSE 0 END,"
    " lease_owner = '', lease_expires = 0"
    " WHERE workflow_id = $1 AND idx = $2 AND state = $4";

/* The claim in one statement (see the top). */
static const char SQL_JOB_CLAIM[] =
    "UPDATE jobs SET state = 'running', attempt = $3, failures = $4, not_before = $5,"
    " progress = $6, reason = $7, exit_code = -1, started_at = $8, finished_at = 0,"
    " lease_owner = $9, lease_expires = $10"
    " WHERE (workflow_id, idx) = (SELECT workflow_id, idx FROM jobs"
    "  WHERE workflow_id = $1 AND idx = $2 AND state = 'ready' FOR UPDATE SKIP LOCKED)"
    " AND (SELECT COALESCE(SUM(cpus), 0) FROM jobs WHERE state = 'running') + $11 <= $12";

static const char SQL_JOB_STATE[] = "SELECT state FROM jobs WHERE workflow_id = $1 AND idx = $2";

static const char SQL_JOB_PROGRESS[] =
    "UPDATE jobs SET progress = $3 WHERE workflow_id = $1 AND idx = $2";

static const char SQL_ATTEMPT_OPEN[] =
    "INSERT INTO attempts (workflow_id, idx, attempt, started_at, outcome, reason)"
    " VALUES ($1, $2, $3, $4, 'running', $5)";

static const char SQL_ATTEMPT_CLOSE[] =
    "UPDATE attempts SET finished_at = $3, outcome = $4, exit_code = $5, reason = $6"
    " WHERE workflow_id = $1 AND idx = $2 AND outcome = 'running'";

static const char SQL_WF_UPDATE[] =
    "UPDATE workflows SET state = $2, reason = $4,"
    " admitted_at = CASE WHEN $3 = 'queued' AND $2 = 'running' THEN $5 ELSE admitted_at END,"
    " finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN $5 ELSE 0 END,"
    " cancel_requested = CASE WHEN $2 IN ('queued', 'running') AND $3 IN ('failed', 'cancelled')"
    "  THEN false ELSE cancel_requested END"
    " WHERE id = $1 AND state = $3";

static const char SQL_WF_WAIT_REASON[] =
    "UPDATE workflows SET reason = $2 WHERE id = $1 AND state = 'queued'";

static const char SQL_WF_STATE[] = "SELECT state FROM workflows WHERE id = $1";

/* Admission's check in one read (under the slots lock): the workflow is
 * queued, and its user is active already or there is room for one more. */
static const char SQL_ADMIT_CHECK[] =
    "SELECT w.state = 'queued' AND (EXISTS (SELECT 1 FROM workflows a"
    "  WHERE a.state = 'running' AND a.user_id = w.user_id)"
    " OR (" PG_COUNT_ACTIVE_USERS ") < $2)"
    " FROM workflows w WHERE w.id = $1";

static const char SQL_LEASE_RENEW[] =
    "UPDATE jobs SET lease_expires = $2 WHERE state = 'running' AND lease_owner = $1";

/* ---- writes ------------------------------------------------------------------ */

/* The job row; STORE_CONFLICT if it is not in ch->from. */
static int job_row_write(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_int(&p, ch->workflow_id);
    pgp_int(&p, ch->job_index);
    pgp_text(&p, job_state_name(ch->to));
    pgp_text(&p, job_state_name(ch->from));
    pgp_int(&p, ch->attempt);
    pgp_int(&p, ch->failures);
    pgp_double(&p, ch->not_before);
    pgp_double(&p, ch->progress);
    pgp_text(&p, ch->reason);
    pgp_int(&p, ch->exit_code);
    pgp_double(&p, ch->at);
    int rc = pg_exec(st, PS_JOB_UPDATE, SQL_JOB_UPDATE, &p, &n, err, errlen, "updating a job");
    return rc == TS_OK && n != 1 ? STORE_CONFLICT : rc;
}

/* The claim statement; STORE_CONFLICT if the job is not ready, is being
 * changed by another transaction, or does not fit. */
static int job_claim_write(pg_store *st, const core_change *ch, const char *owner, double lease,
                           int limit, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_int(&p, ch->workflow_id);
    pgp_int(&p, ch->job_index);
    pgp_int(&p, ch->attempt);
    pgp_int(&p, ch->failures);
    pgp_double(&p, ch->not_before);
    pgp_double(&p, ch->progress);
    pgp_text(&p, ch->reason);
    pgp_double(&p, ch->at);
    pgp_text(&p, owner);
    pgp_double(&p, lease);
    pgp_int(&p, ch->cpus);
    pgp_int(&p, limit);
    int rc = pg_exec(st, PS_JOB_CLAIM, SQL_JOB_CLAIM, &p, &n, err, errlen, "claiming a job");
    return rc == TS_OK && n != 1 ? STORE_CONFLICT : rc;
}

/* The attempt history: a row opens when the job starts, closes when it
 * leaves running. */
static int attempt_write(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    pgp_int(&p, ch->workflow_id);
    pgp_int(&p, ch->job_index);
    if (ch->to == JOB_RUNNING) {
        pgp_int(&p, ch->attempt);
        pgp_double(&p, ch->at);
        pgp_text(&p, ch->reason);
        return pg_exec(st, PS_ATTEMPT_OPEN, SQL_ATTEMPT_OPEN, &p, NULL, err, errlen,
                       "recording an attempt's start");
    }
    if (ch->from != JOB_RUNNING) return TS_OK;
    pgp_double(&p, ch->at);
    pgp_text(&p, ch->outcome ? ch->outcome : rows_default_outcome((job_state)ch->to));
    pgp_int(&p, ch->exit_code);
    pgp_text(&p, ch->reason);
    return pg_exec(st, PS_ATTEMPT_CLOSE, SQL_ATTEMPT_CLOSE, &p, NULL, err, errlen,
                   "recording an attempt's end");
}

static int wf_row_write(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_int(&p, ch->workflow_id);
    pgp_text(&p, wf_state_name(ch->to));
    pgp_text(&p, wf_state_name(ch->from));
    pgp_text(&p, ch->reason);
    pgp_double(&p, ch->at);
    int rc = pg_exec(st, PS_WF_UPDATE, SQL_WF_UPDATE, &p, &n, err, errlen, "updating a workflow");
    return rc == TS_OK && n != 1 ? STORE_CONFLICT : rc;
}

static int progress_write(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_int(&p, ch->workflow_id);
    pgp_int(&p, ch->job_index);
    pgp_double(&p, ch->progress);
    int rc = pg_exec(st, PS_JOB_PROGRESS, SQL_JOB_PROGRESS, &p, &n, err, errlen,
                     "updating progress");
    if (rc == TS_OK && n != 1) {
        ts_errf(err, errlen, "no job %d in workflow %lld", (int)ch->job_index,
                (long long)ch->workflow_id);
        rc = TS_ERR;
    }
    return rc;
}

static int wait_reason_write(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    pgp_int(&p, ch->workflow_id);
    pgp_text(&p, ch->reason);
    return pg_exec(st, PS_WF_WAIT_REASON, SQL_WF_WAIT_REASON, &p, NULL, err, errlen,
                   "recording a waiting reason");
}

/* The event a change produces, stamped at commit. */
static void change_event(pg_store *st, const core_change *ch) {
    bool job = rows_is_job_change(ch->kind);
    pg_event ev = {
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
    pg_event_add(st, &ev);
}

/* Writes ch (checked) and queues its event. A claim passes owner. */
static int record(pg_store *st, const core_change *ch, const char *owner, double lease,
                  int limit, char *err, size_t errlen) {
    int rc = TS_OK;
    st->leader_write = true;
    switch (ch->kind) {
    case CHANGE_JOB:
        rc = owner ? job_claim_write(st, ch, owner, lease, limit, err, errlen)
                   : job_row_write(st, ch, err, errlen);
        if (rc == TS_OK) rc = attempt_write(st, ch, err, errlen);
        break;
    case CHANGE_WORKFLOW: rc = wf_row_write(st, ch, err, errlen); break;
    case CHANGE_JOB_PROGRESS: rc = progress_write(st, ch, err, errlen); break;
    case CHANGE_QUEUE_POSITION: rc = wait_reason_write(st, ch, err, errlen); break;
    }
    if (rc == TS_OK) change_event(st, ch);
    return rc;
}

/* record()'s STORE_CONFLICT as store_apply's stale-change error. */
static int stale(pg_store *st, const core_change *ch, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    bool job = ch->kind == CHANGE_JOB;
    pgp_int(&p, ch->workflow_id);
    if (job) pgp_int(&p, ch->job_index);
    int rc = job ? pg_run(st, PS_JOB_STATE, SQL_JOB_STATE, &p, &r, err, errlen, "reading a job")
                 : pg_run(st, PS_WF_STATE, SQL_WF_STATE, &p, &r, err, errlen,
                          "reading a workflow");
    if (rc != TS_OK) return rc;
    if (PQntuples(r) == 0 && job)
        ts_errf(err, errlen, "no job %d in workflow %lld", (int)ch->job_index,
                (long long)ch->workflow_id);
    else if (PQntuples(r) == 0)
        ts_errf(err, errlen, "no workflow %lld", (long long)ch->workflow_id);
    else if (job)
        ts_errf(err, errlen, "stale change: job %s of workflow %lld is %s, not %s",
                ch->job_id ? ch->job_id : "?", (long long)ch->workflow_id, pg_text(r, 0, 0),
                job_state_name(ch->from));
    else
        ts_errf(err, errlen, "stale change: workflow %lld is %s, not %s",
                (long long)ch->workflow_id, pg_text(r, 0, 0), wf_state_name(ch->from));
    PQclear(r);
    return TS_ERR;
}

/* Records one change; starting a job and admitting a workflow must go
 * through pg_claim/pg_admit, which check the global limits. */
int pg_apply(pg_store *st, const core_change *ch, int64_t *seq, char *err, size_t errlen) {
    bool own = false;
    if (seq) *seq = 0;
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
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    rc = record(st, ch, NULL, 0, 0, err, errlen);
    if (rc == STORE_CONFLICT) rc = stale(st, ch, err, errlen);
    rc = pg_txn_end(st, own, rc, err, errlen);
    if (rc == TS_OK && own && seq) *seq = st->last_seq;
    return rc;
}

/* Claims a ready job under the slots lock, in one statement (see the top). */
int pg_claim(pg_store *st, const core_change *ch, const char *owner, double lease_expires,
             int concurrency_limit, char *err, size_t errlen) {
    bool own = false;
    if (ch->kind != CHANGE_JOB || ch->from != JOB_READY || ch->to != JOB_RUNNING ||
        ch->job_index < 0 || owner == NULL) {
        ts_errf(err, errlen, "store_claim: expects a job change ready -> running and an owner");
        return TS_ERR;
    }
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc == TS_OK) rc = pg_slots_lock(st, err, errlen);
    if (rc == TS_OK) rc = record(st, ch, owner, lease_expires, concurrency_limit, err, errlen);
    return pg_txn_end(st, own, rc, err, errlen);
}

/* Admits a queued workflow under the slots lock if the active-user limit
 * allows. */
int pg_admit(pg_store *st, const core_change *ch, int max_active_users, char *err,
             size_t errlen) {
    bool own = false;
    if (ch->kind != CHANGE_WORKFLOW || ch->from != WF_QUEUED || ch->to != WF_RUNNING) {
        ts_errf(err, errlen, "store_admit: expects a workflow change queued -> running");
        return TS_ERR;
    }
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc == TS_OK) rc = pg_slots_lock(st, err, errlen);
    if (rc == TS_OK) {
        pg_params p = {0};
        PGresult *r = NULL;
        pgp_int(&p, ch->workflow_id);
        pgp_int(&p, max_active_users);
        rc = pg_run(st, PS_ADMIT_CHECK, SQL_ADMIT_CHECK, &p, &r, err, errlen,
                    "checking the active-user limit");
        if (rc == TS_OK && (PQntuples(r) != 1 || strcmp(pg_text(r, 0, 0), "t") != 0))
            rc = STORE_CONFLICT;
        PQclear(r);
    }
    if (rc == TS_OK) rc = record(st, ch, NULL, 0, 0, err, errlen);
    return pg_txn_end(st, own, rc, err, errlen);
}

int pg_renew_leases(pg_store *st, const char *owner, double lease_expires, char *err,
                    size_t errlen) {
    bool own = false;
    pg_params p = {0};
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    st->leader_write = true;
    pgp_text(&p, owner);
    pgp_double(&p, lease_expires);
    rc = pg_exec(st, PS_LEASE_RENEW, SQL_LEASE_RENEW, &p, NULL, err, errlen, "renewing leases");
    return pg_txn_end(st, own, rc, err, errlen);
}

static const char SQL_ATTEMPT_EXTERNAL[] =
    "UPDATE attempts SET token = $4, external_id = $5"
    " WHERE workflow_id = $1 AND idx = $2 AND attempt = $3 AND outcome = 'running'";

static const char SQL_WF_HANDLES[] =
    "UPDATE workflows SET batch_handles = batch_handles + 1 WHERE id = $1";

/* As sqlite_attempt_external: the open attempt row only; a leader-only
 * write (fenced by the term at commit). */
int pg_attempt_external(pg_store *st, int64_t workflow_id, int32_t job_index, int attempt,
                        const char *token, const char *external_id, char *err, size_t errlen) {
    bool own = false;
    pg_params p = {0};
    long changed = 0;
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    st->leader_write = true;
    pgp_int(&p, workflow_id);
    pgp_int(&p, job_index);
    pgp_int(&p, attempt);
    pgp_text(&p, token);
    pgp_text(&p, external_id);
    rc = pg_exec(st, PS_ATTEMPT_EXTERNAL, SQL_ATTEMPT_EXTERNAL, &p, &changed, err, errlen,
                 "recording an attempt's batch job");
    if (rc == TS_OK && changed != 1) {
        ts_errf(err, errlen, "attempt %d of job %d of workflow %lld is not running", attempt,
                (int)job_index, (long long)workflow_id);
        rc = STORE_NOTFOUND;
    }
    if (rc == TS_OK) { /* no event: the workflow's stamp counts it (store.h) */
        pg_params w = {0};
        pgp_int(&w, workflow_id);
        rc = pg_exec(st, PS_WF_HANDLES, SQL_WF_HANDLES, &w, NULL, err, errlen,
                     "recording an attempt's batch job");
    }
    return pg_txn_end(st, own, rc, err, errlen);
}
