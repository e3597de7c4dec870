/*
 * pg_workflows.c - storing, reading and deleting workflows on PostgreSQL:
 * submit, get, list, the scheduler's reload of unfinished work, delete.
 * The same rules as sqlite_workflows.c: queue_position derived on read (1 +
 * queued workflows with a smaller id), another user's workflow filtered in
 * SQL so it looks exactly like a missing one, the cursor an id bound.
 * Results are read whole before callbacks run, so a callback may use the
 * store freely.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/rows.h"
#include "util/util.h"

#define WF_COLUMNS                                                                             \
    "id, user_id, name, priority, state, cancel_requested, n_jobs, reason, submitted_at,"      \
    " admitted_at, finished_at,"                                                               \
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"                   \
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END,"                                   \
    " (SELECT COALESCE(SUM(CASE WHEN j.state IN ('succeeded', 'failed', 'cancelled',"          \
    " 'skipped') THEN 1.0 WHEN j.state = 'running' THEN j.progress ELSE 0 END), 0)"            \
    " FROM jobs j WHERE j.workflow_id = w.id)"

/* Submissions take the event counter's row lock first (see pg_submit). */
static const char SQL_SUBMIT_LOCK[] = "SELECT last_seq FROM event_counter FOR UPDATE";

static const char SQL_ACTIVE_USERS_NOW[] = PG_COUNT_ACTIVE_USERS;

static const char SQL_WF_INSERT[] =
    "INSERT INTO workflows (user_id, name, priority, state, spec, n_jobs, submitted_at)"
    " VALUES ($1, $2, $3, 'queued', $4, $5, $6) RETURNING id";

/* All jobs in one statement (a workflow may have 10,000). */
static const char SQL_JOB_INSERT[] =
    "INSERT INTO jobs (workflow_id, idx, job_id, job_type, branch, cpus, state)"
    " SELECT $1, j.i, j.job_id, j.job_type, j.branch, j.cpus, 'pending'"
    " FROM jsonb_to_recordset($2::jsonb) AS j(i int, job_id text, job_type text, branch text,"
    " cpus int)";

static const char SQL_WF_GET[] = "SELECT " WF_COLUMNS ", spec FROM workflows w"
                                 " WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)";

static const char SQL_WF_LIST_USER[] = "SELECT " WF_COLUMNS " FROM workflows w"
                                       " WHERE user_id = $1 AND id < $2"
                                       " AND ($3::text IS NULL OR state = $3)"
                                       " ORDER BY id DESC LIMIT $4";

static const char SQL_WF_LIST_ALL[] = "SELECT " WF_COLUMNS " FROM workflows w"
                                      " WHERE id < $1 AND ($2::text IS NULL OR state = $2)"
                                      " ORDER BY id DESC LIMIT $3";

static const char SQL_WF_UNFINISHED[] = "SELECT " WF_COLUMNS ", spec FROM workflows w"
                                        " WHERE id > $1 AND state IN ('queued', 'running')"
                                        " ORDER BY id";

/* As sqlite_workflows.c's: the figures of the line only when asked. */
static const char SQL_WF_STAMP[] =
    "SELECT state,"
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END,"
    " (SELECT COALESCE(MAX(seq), 0) FROM events e WHERE e.workflow_id = w.id),"
    " batch_handles,"
    " CASE WHEN $3::boolean THEN (SELECT COALESCE(SUM(cpus), 0) FROM jobs"
    " WHERE state = 'running') ELSE -1 END,"
    " CASE WHEN $4::boolean THEN (" PG_COUNT_ACTIVE_USERS ") ELSE -1 END"
    " FROM workflows w WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)";

/* WF_COLUMNS without the jobs' progress (column 12 is 0): the summary
 * sums it with the counts, in the one pass over the jobs it makes. */
static const char SQL_WF_ROW[] =
    "SELECT id, user_id, name, priority, state, cancel_requested, n_jobs, reason, submitted_at,"
    " admitted_at, finished_at,"
    " CASE WHEN state = 'queued' THEN 1 + (SELECT COUNT(*) FROM workflows q"
    " WHERE q.state = 'queued' AND q.id < w.id) ELSE 0 END, 0"
    " FROM workflows w WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)";

static const char SQL_JOB_COUNTS[] =
    "SELECT state, COUNT(*), COALESCE(SUM(progress), 0) FROM jobs WHERE workflow_id = $1"
    " GROUP BY state";

static const char SQL_JOBS_OF_WF[] =
    "SELECT idx, job_id, state, attempt, failures, cpus, not_before, progress, ready_at,"
    " started_at, finished_at, exit_code, reason, lease_owner, lease_expires"
    " FROM jobs WHERE workflow_id = $1 ORDER BY idx";

static const char SQL_WF_OWNER_STATE[] =
    "SELECT user_id, state FROM workflows WHERE id = $1 FOR UPDATE";

static const char SQL_WF_DELETE[] = "DELETE FROM workflows WHERE id = $1";

/* ---- submit ------------------------------------------------------------------ */

/* The jobs of spec as the JSON array SQL_JOB_INSERT reads. */
static char *jobs_json(const spec_workflow *spec) {
    json_t *a = json_array();
    for (size_t i = 0; i < spec->n_jobs; i++) {
        const spec_job *j = &spec->jobs[i];
        json_array_append_new(a, json_pack("{sI ss ss ss si}", "i", (json_int_t)i, "job_id",
                                           j->job_id, "job_type", j->job_type, "branch",
                                           j->branch, "cpus", j->cpus));
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

static int insert_rows(pg_store *st, const char *user, const spec_workflow *spec,
                       const char *spec_text, double now, int64_t *id, char *err,
                       size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_text(&p, user);
    pgp_text(&p, spec->name);
    pgp_int(&p, spec->priority);
    pgp_text(&p, spec_text);
    pgp_int(&p, (int64_t)spec->n_jobs);
    pgp_double(&p, now);
    int rc = pg_run(st, PS_WF_INSERT, SQL_WF_INSERT, &p, &r, err, errlen, "storing the workflow");
    if (rc != TS_OK) return rc;
    *id = pg_int(r, 0, 0);
    PQclear(r);
    char *jobs = jobs_json(spec);
    pg_params q = {0};
    pgp_int(&q, *id);
    pgp_text(&q, jobs);
    rc = jobs ? pg_exec(st, PS_JOB_INSERT, SQL_JOB_INSERT, &q, NULL, err, errlen,
                        "storing the jobs")
              : TS_ERR;
    free(jobs);
    return rc;
}

/*
 * The workflow, its jobs and its first two events in one transaction that
 * also wakes the scheduler (NOTIFY tessera_work at commit). TS_OK means
 * committed and flushed (synchronous_commit).
 *
 * The admission line is FIFO by workflow id, and a queued workflow's place
 * is 1 + the queued workflows with a smaller id. Ids come from an identity
 * column, handed out before commit: two submissions running at once could
 * commit in the other order, and the later id would count its place
 * without the earlier one, which then appears ahead of it - a place that
 * goes up. So a submission takes the event counter's row lock before it
 * takes its id (as it would at commit anyway): submissions take their ids
 * in commit order, one at a time, as on SQLite.
 */
int pg_submit(pg_store *st, const char *user, const spec_workflow *spec, double now,
              store_receipt *out, char *err, size_t errlen) {
    bool own = false;
    int pos = 0;
    int64_t wf_id = 0;
    PGresult *users = NULL;
    if (rows_submit_check(user, spec, st->in_txn, err, errlen) != TS_OK) return TS_ERR;
    char *spec_text = spec_to_text(spec, NULL);
    if (spec_text == NULL) {
        ts_errf(err, errlen, "store_submit: the spec could not be serialised");
        return TS_ERR;
    }
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc == TS_OK)
        rc = pg_exec(st, PS_SUBMIT_LOCK, SQL_SUBMIT_LOCK, NULL, NULL, err, errlen,
                     "waiting for other submissions");
    if (rc == TS_OK) rc = insert_rows(st, user, spec, spec_text, now, &wf_id, err, errlen);
    if (rc == TS_OK) rc = pg_queue_position(st, wf_id, &pos, err, errlen);
    if (rc == TS_OK)
        rc = pg_run(st, PS_SUBMIT_ACTIVE_USERS, SQL_ACTIVE_USERS_NOW, NULL, &users, err, errlen,
                    "counting active users");
    if (rc == TS_OK) {
        pg_event ev = {.ts = now, .type = "workflow.submitted", .workflow_id = wf_id,
                       .job_index = -1, .state = "queued", .progress = -1};
        pg_event_add(st, &ev);
        ev.type = "workflow.queued";
        ev.queue_position = pos;
        pg_event_add(st, &ev);
        st->work_notify = true;
    }
    if (own) rc = pg_txn_end(st, own, rc, err, errlen);
    /* A later read takes the parsed spec from the cache. */
    if (rc == TS_OK) {
        rows_spec_cache_put(st->specs, wf_id, now, strlen(spec_text), spec);
        *out = (store_receipt){.id = wf_id, .queue_position = pos,
                               .active_users = (int)pg_int(users, 0, 0), .wake = true};
    }
    PQclear(users);
    free(spec_text);
    return rc;
}

/* ---- reads ------------------------------------------------------------------------ */

/* A workflow (without spec and jobs) from row i of a WF_COLUMNS result. */
static int wf_from_row(const PGresult *r, int i, store_workflow **out, char *err, size_t errlen) {
    wf_state state;
    if (wf_state_parse(pg_text(r, i, 4), &state) != TS_OK) {
        ts_errf(err, errlen, "workflow %s has an unknown state \"%s\" in the database",
                pg_text(r, i, 0), pg_text(r, i, 4));
        return TS_ERR;
    }
    store_workflow *wf = ts_calloc(1, sizeof(*wf));
    wf->id = pg_int(r, i, 0);
    wf->user = ts_strdup(pg_text(r, i, 1));
    wf->name = ts_strdup(pg_text(r, i, 2));
    wf->priority = (int)pg_int(r, i, 3);
    wf->state = state;
    wf->cancel_requested = pg_int(r, i, 5) != 0;
    wf->n_jobs = (size_t)pg_int(r, i, 6);
    wf->reason = ts_strdup(pg_text(r, i, 7));
    wf->submitted_at = pg_double(r, i, 8);
    wf->admitted_at = pg_double(r, i, 9);
    wf->finished_at = pg_double(r, i, 10);
    wf->queue_position = (int)pg_int(r, i, 11);
    wf->jobs_done = pg_double(r, i, 12);
    *out = wf;
    return TS_OK;
}

static int job_from_row(const PGresult *r, int i, store_job *j, char *err, size_t errlen) {
    if (job_state_parse(pg_text(r, i, 2), &j->state) != TS_OK) {
        ts_errf(err, errlen, "job %s has an unknown state \"%s\" in the database",
                pg_text(r, i, 1), pg_text(r, i, 2));
        return TS_ERR;
    }
    j->index = (int32_t)pg_int(r, i, 0);
    j->job_id = ts_strdup(pg_text(r, i, 1));
    j->attempt = (int)pg_int(r, i, 3);
    j->failures = (int)pg_int(r, i, 4);
    j->cpus = (int)pg_int(r, i, 5);
    j->not_before = pg_double(r, i, 6);
    j->progress = pg_double(r, i, 7);
    j->ready_at = pg_double(r, i, 8);
    j->started_at = pg_double(r, i, 9);
    j->finished_at = pg_double(r, i, 10);
    j->exit_code = (int)pg_int(r, i, 11);
    j->reason = ts_strdup(pg_text(r, i, 12));
    j->lease_owner = ts_strdup(pg_text(r, i, 13));
    j->lease_expires = pg_double(r, i, 14);
    return TS_OK;
}

/* wf's jobs, which must be exactly the spec's jobs in order. */
static int load_jobs(pg_store *st, store_workflow *wf, char *err, size_t errlen) {
    size_t n = wf->spec->n_jobs;
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, wf->id);
    int rc = pg_run(st, PS_JOBS_OF_WF, SQL_JOBS_OF_WF, &p, &r, err, errlen, "reading jobs");
    if (rc != TS_OK) return rc;
    wf->jobs = ts_calloc(n, sizeof(store_job));
    wf->n_jobs = n;
    if ((size_t)PQntuples(r) != n) {
        ts_errf(err, errlen, "workflow %lld: its job rows do not match its spec (%zu jobs)",
                (long long)wf->id, n);
        rc = TS_ERR;
    }
    for (size_t i = 0; rc == TS_OK && i < n; i++) {
        if (pg_int(r, (int)i, 0) != (int64_t)i) {
            ts_errf(err, errlen, "workflow %lld: its job rows do not match its spec (%zu jobs)",
                    (long long)wf->id, n);
            rc = TS_ERR;
        } else {
            rc = job_from_row(r, (int)i, &wf->jobs[i], err, errlen);
        }
    }
    PQclear(r);
    return rc;
}

/* Row i of a WF_COLUMNS + spec result, with spec and jobs. */
static int wf_full_from_row(pg_store *st, const PGresult *r, int i, store_workflow **out,
                            char *err, size_t errlen) {
    store_workflow *wf = NULL;
    if (wf_from_row(r, i, &wf, err, errlen) != TS_OK) return TS_ERR;
    const char *text = pg_text(r, i, 13);
    int rc = rows_load_spec_cached(st->specs, wf, text, strlen(text), err, errlen);
    if (rc == TS_OK) rc = load_jobs(st, wf, err, errlen);
    if (rc != TS_OK) {
        store_workflow_free(wf);
        return rc;
    }
    *out = wf;
    return TS_OK;
}

/* One workflow with spec and jobs, in one snapshot (REPEATABLE READ). */
int pg_workflow_get(pg_store *st, int64_t id, const char *user, store_workflow **out, char *err,
                    size_t errlen) {
    bool own = false;
    pg_params p = {0};
    PGresult *r = NULL;
    *out = NULL;
    int rc = pg_read_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    pgp_int(&p, id);
    pgp_text(&p, user);
    rc = pg_run(st, PS_WF_GET, SQL_WF_GET, &p, &r, err, errlen, "reading a workflow");
    if (rc == TS_OK && PQntuples(r) == 0) rc = STORE_NOTFOUND;
    else if (rc == TS_OK) rc = wf_full_from_row(st, r, 0, out, err, errlen);
    PQclear(r);
    pg_read_end(st, own);
    return rc;
}

/* See store.h: one statement, one snapshot. */
int pg_workflow_stamp_get(pg_store *st, int64_t id, const char *user, unsigned want,
                          store_workflow_stamp *out, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, id);
    pgp_text(&p, user);
    pgp_bool(&p, (want & STORE_STAMP_RUNNING_CPUS) != 0);
    pgp_bool(&p, (want & STORE_STAMP_ACTIVE_USERS) != 0);
    int rc = pg_run(st, PS_WF_STAMP, SQL_WF_STAMP, &p, &r, err, errlen,
                    "reading a workflow's stamp");
    if (rc == TS_OK && PQntuples(r) == 0) {
        rc = STORE_NOTFOUND;
    } else if (rc == TS_OK && wf_state_parse(pg_text(r, 0, 0), &out->state) != TS_OK) {
        ts_errf(err, errlen, "workflow %lld has an unknown state \"%s\" in the database",
                (long long)id, pg_text(r, 0, 0));
        rc = TS_ERR;
    } else if (rc == TS_OK) {
        out->queue_position = (int)pg_int(r, 0, 1);
        out->last_seq = pg_int(r, 0, 2);
        out->batch_handles = pg_int(r, 0, 3);
        out->running_cpus = (int)pg_int(r, 0, 4);
        out->active_users = (int)pg_int(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

/* The job counts by state of workflow id, added to counts, and its jobs'
 * progress as a list row has it (finished 1, running its fraction) to
 * *done. */
static int job_counts(pg_store *st, int64_t id, size_t counts[JOB_STATE_COUNT], double *done,
                      char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, id);
    int rc = pg_run(st, PS_JOB_COUNTS, SQL_JOB_COUNTS, &p, &r, err, errlen, "counting jobs");
    for (int i = 0; rc == TS_OK && i < PQntuples(r); i++) {
        job_state js;
        if (job_state_parse(pg_text(r, i, 0), &js) != TS_OK) {
            ts_errf(err, errlen, "workflow %lld has a job in an unknown state \"%s\"",
                    (long long)id, pg_text(r, i, 0));
            rc = TS_ERR;
        } else {
            counts[js] += (size_t)pg_int(r, i, 1);
            if (job_state_final(js)) *done += (double)pg_int(r, i, 1);
            else if (js == JOB_RUNNING) *done += pg_double(r, i, 2);
        }
    }
    PQclear(r);
    return rc;
}

/* See store.h: the row and the counts in one snapshot. */
int pg_workflow_summary(pg_store *st, int64_t id, const char *user, store_workflow **out,
                        size_t counts[JOB_STATE_COUNT], char *err, size_t errlen) {
    bool own = false;
    pg_params p = {0};
    PGresult *r = NULL;
    *out = NULL;
    memset(counts, 0, JOB_STATE_COUNT * sizeof(size_t));
    int rc = pg_read_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    pgp_int(&p, id);
    pgp_text(&p, user);
    rc = pg_run(st, PS_WF_ROW, SQL_WF_ROW, &p, &r, err, errlen, "reading a workflow");
    if (rc == TS_OK && PQntuples(r) == 0) rc = STORE_NOTFOUND;
    else if (rc == TS_OK) rc = wf_from_row(r, 0, out, err, errlen);
    PQclear(r);
    if (rc == TS_OK) rc = job_counts(st, id, counts, &(*out)->jobs_done, err, errlen);
    pg_read_end(st, own);
    if (rc != TS_OK) {
        store_workflow_free(*out);
        *out = NULL;
    }
    return rc;
}

int pg_workflow_list(pg_store *st, const char *user, int state, int64_t before_id, size_t limit,
                     store_workflow_cb cb, void *ctx, char *err, size_t errlen) {
    if (state >= WF_STATE_COUNT) {
        ts_errf(err, errlen, "store_workflow_list: invalid state %d", state);
        return TS_ERR;
    }
    pg_params p = {0};
    PGresult *r = NULL;
    if (user != NULL) pgp_text(&p, user);
    pgp_int(&p, before_id > 0 ? before_id : INT64_MAX);
    pgp_text(&p, state >= 0 ? wf_state_name((wf_state)state) : NULL);
    if (limit > 0 && limit < (size_t)INT64_MAX) pgp_int(&p, (int64_t)limit);
    else pgp_text(&p, NULL); /* LIMIT NULL = no limit */
    int rc = user ? pg_run(st, PS_WF_LIST_USER, SQL_WF_LIST_USER, &p, &r, err, errlen,
                           "listing workflows")
                  : pg_run(st, PS_WF_LIST_ALL, SQL_WF_LIST_ALL, &p, &r, err, errlen,
                           "listing workflows");
    for (int i = 0; rc == TS_OK && i < PQntuples(r); i++) {
        store_workflow *wf = NULL;
        rc = wf_from_row(r, i, &wf, err, errlen);
        if (rc != TS_OK) break;
        int stop = cb(ctx, wf);
        store_workflow_free(wf);
        if (stop) break;
    }
    PQclear(r);
    return rc;
}

/* Every unfinished workflow after after_id with spec and jobs, read in one
 * snapshot so the set is consistent. */
int pg_load_unfinished(pg_store *st, int64_t after_id, store_workflow_cb cb, void *ctx, char *err,
                       size_t errlen) {
    bool own = false;
    pg_params p = {0};
    PGresult *r = NULL;
    int rc = pg_read_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    pgp_int(&p, after_id);
    rc = pg_run(st, PS_WF_UNFINISHED, SQL_WF_UNFINISHED, &p, &r, err, errlen,
                "loading unfinished workflows");
    int n = rc == TS_OK ? PQntuples(r) : 0;
    store_workflow **all = ts_calloc((size_t)n + 1, sizeof(*all));
    for (int i = 0; rc == TS_OK && i < n; i++) rc = wf_full_from_row(st, r, i, &all[i], err, errlen);
    PQclear(r);
    pg_read_end(st, own);
    bool stop = false;
    for (int i = 0; i < n; i++) {
        if (rc == TS_OK && !stop && all[i]) stop = cb(ctx, all[i]) != 0;
        store_workflow_free(all[i]);
    }
    free(all);
    return rc;
}

/* The workflow exists, is user's (NULL = anyone's) and is final; its row
 * is locked against a concurrent retry until the delete commits. */
static int delete_check(pg_store *st, int64_t id, const char *user, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    wf_state state = WF_QUEUED;
    pgp_int(&p, id);
    int rc = pg_run(st, PS_WF_OWNER_STATE, SQL_WF_OWNER_STATE, &p, &r, err, errlen,
                    "reading a workflow");
    if (rc != TS_OK) return rc;
    if (PQntuples(r) == 0 || (user && strcmp(pg_text(r, 0, 0), user) != 0)) rc = STORE_NOTFOUND;
    else if (wf_state_parse(pg_text(r, 0, 1), &state) != TS_OK || !wf_state_final(state))
        rc = STORE_CONFLICT;
    PQclear(r);
    return rc;
}

/* Deletes a finished workflow; jobs, attempts, events and commands go with
 * it by ON DELETE CASCADE. */
int pg_workflow_delete(pg_store *st, int64_t id, const char *user, char *err, size_t errlen) {
    bool own = false;
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    rc = delete_check(st, id, user, err, errlen);
    if (rc == TS_OK) {
        pg_params p = {0};
        pgp_int(&p, id);
        rc = pg_exec(st, PS_WF_DELETE, SQL_WF_DELETE, &p, NULL, err, errlen, "deleting a workflow");
    }
    return pg_txn_end(st, own, rc, err, errlen);
}
