/*
 * pg_events.c - the event log, attempts, the admission line at a glance and
 * users' tokens on PostgreSQL.
 *
 * Readers always read the events table by cursor (seq > since, in seq
 * order): seqs are stamped in commit order (pg.c), so a reader that has
 * seen seq N has seen everything below it, and resuming after N misses
 * nothing and repeats nothing. A notification only says that there is
 * something to read.
 */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/rows.h"
#include "util/util.h"

#define EV_COLUMNS                                                                              \
    "seq, ts, type, user_id, workflow_id, job_id, state, progress, message, attempt,"          \
    " queue_position"

static const char SQL_EVENTS_WF[] = "SELECT " EV_COLUMNS " FROM events"
                                    " WHERE workflow_id = $1 AND seq > $2"
                                    " AND ($3::text IS NULL OR user_id = $3) ORDER BY seq LIMIT $4";
static const char SQL_EVENTS_USER[] = "SELECT " EV_COLUMNS " FROM events"
                                      " WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
static const char SQL_EVENTS_ALL[] = "SELECT " EV_COLUMNS " FROM events"
                                     " WHERE seq > $1 ORDER BY seq LIMIT $2";

/* The counter, not MAX(seq): deleted workflows' events leave it where it
 * was, as SQLite's AUTOINCREMENT does. */
static const char SQL_EVENTS_LAST[] = "SELECT last_seq FROM event_counter";

static const char SQL_QUEUE_AHEAD[] =
    "SELECT 1 + COUNT(*) FROM workflows WHERE state = 'queued' AND id < $1";

static const char SQL_JOB_EXISTS[] = "SELECT 1 FROM jobs WHERE workflow_id = $1 AND idx = $2";

static const char SQL_ATTEMPTS[] =
    "SELECT attempt, started_at, finished_at, outcome, exit_code, reason, idx, token,"
    " external_id FROM attempts WHERE workflow_id = $1 AND ($2 < 0 OR idx = $2) ORDER BY idx, attempt";

static const char SQL_QUEUE_STATS[] =
    "SELECT"
    " (" PG_COUNT_ACTIVE_USERS "),"
    " (SELECT COUNT(DISTINCT user_id) FROM workflows q WHERE state = 'queued'"
    "   AND NOT EXISTS (SELECT 1 FROM workflows r"
    "   WHERE r.state = 'running' AND r.user_id = q.user_id)),"
    " (SELECT COUNT(*) FROM workflows WHERE state = 'queued'),"
    " (SELECT COALESCE(SUM(cpus), 0) FROM jobs WHERE state = 'running'),"
    " (SELECT COUNT(*) FROM jobs WHERE state = 'running'),"
    " (SELECT COALESCE(MIN(submitted_at), 0) FROM workflows WHERE state = 'queued')";

static const char SQL_USER_PUT[] =
    "INSERT INTO users (name, token_hash, admin, created_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash,"
    " admin = excluded.admin";

static const char SQL_USER_BY_TOKEN[] = "SELECT name, admin FROM users WHERE token_hash = $1";

static const char SQL_USER_TOKEN[] = "SELECT token_hash FROM users WHERE name = $1";

static const char SQL_USER_REVOKE[] = "UPDATE users SET token_hash = NULL WHERE name = $1";

/* ---- events ------------------------------------------------------------------ */

int pg_queue_position(pg_store *st, int64_t workflow_id, int *pos, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, workflow_id);
    int rc = pg_run(st, PS_QUEUE_AHEAD, SQL_QUEUE_AHEAD, &p, &r, err, errlen,
                    "reading the queue position");
    if (rc == TS_OK) *pos = (int)pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Row i of an EV_COLUMNS result as the event JSON. */
static char *event_json(const PGresult *r, int i) {
    rows_event ev = {
        .seq = pg_int(r, i, 0),
        .ts = pg_double(r, i, 1),
        .type = pg_text(r, i, 2),
        .workflow_id = pg_int(r, i, 4),
        .job_id = pg_null(r, i, 5) ? NULL : pg_text(r, i, 5),
        .state = pg_null(r, i, 6) ? NULL : pg_text(r, i, 6),
        .has_progress = !pg_null(r, i, 7),
        .progress = pg_null(r, i, 7) ? 0 : pg_double(r, i, 7),
        .message = pg_null(r, i, 8) ? NULL : pg_text(r, i, 8),
        .has_attempt = !pg_null(r, i, 9),
        .attempt = pg_null(r, i, 9) ? 0 : pg_int(r, i, 9),
        .has_queue_position = !pg_null(r, i, 10),
        .queue_position = pg_null(r, i, 10) ? 0 : pg_int(r, i, 10),
    };
    return rows_event_json(&ev);
}

/* Events after since, oldest first, one statement (one snapshot). */
int pg_events_since(pg_store *st, int64_t since, const char *user, int64_t workflow_id,
                    size_t limit, store_event_cb cb, void *ctx, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    int rc;
    if (workflow_id > 0) pgp_int(&p, workflow_id);
    else if (user != NULL) pgp_text(&p, user);
    pgp_int(&p, since);
    if (workflow_id > 0) pgp_text(&p, user);
    if (limit > 0 && limit < (size_t)INT64_MAX) pgp_int(&p, (int64_t)limit);
    else pgp_text(&p, NULL);
    if (workflow_id > 0)
        rc = pg_run(st, PS_EVENTS_WF, SQL_EVENTS_WF, &p, &r, err, errlen, "reading events");
    else if (user != NULL)
        rc = pg_run(st, PS_EVENTS_USER, SQL_EVENTS_USER, &p, &r, err, errlen, "reading events");
    else
        rc = pg_run(st, PS_EVENTS_ALL, SQL_EVENTS_ALL, &p, &r, err, errlen, "reading events");
    for (int i = 0; rc == TS_OK && i < PQntuples(r); i++) {
        char *json = event_json(r, i);
        store_event ev = {
            .seq = pg_int(r, i, 0),
            .ts = pg_double(r, i, 1),
            .type = pg_text(r, i, 2),
            .user = pg_text(r, i, 3),
            .workflow_id = pg_int(r, i, 4),
            .job_id = pg_null(r, i, 5) ? NULL : pg_text(r, i, 5),
            .json = json ? json : "{}",
        };
        int stop = cb(ctx, &ev);
        free(json);
        if (stop) break;
    }
    PQclear(r);
    return rc;
}

int pg_events_last_seq(pg_store *st, int64_t *seq, char *err, size_t errlen) {
    PGresult *r = NULL;
    *seq = 0;
    int rc = pg_run(st, PS_EVENTS_LAST, SQL_EVENTS_LAST, NULL, &r, err, errlen,
                    "reading the latest event");
    if (rc == TS_OK && PQntuples(r) == 1) *seq = pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

/* ---- attempts --------------------------------------------------------------------- */

static int attempts_read(pg_store *st, int64_t workflow_id, int32_t job_index,
                         store_attempt **out, size_t *n, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    if (job_index >= 0) {
        pgp_int(&p, workflow_id);
        pgp_int(&p, job_index);
        int rc = pg_run(st, PS_JOB_EXISTS, SQL_JOB_EXISTS, &p, &r, err, errlen,
                        "looking up a job");
        bool found = rc == TS_OK && PQntuples(r) == 1;
        PQclear(r);
        if (rc != TS_OK) return rc;
        if (!found) return STORE_NOTFOUND;
        p.n = 0;
    }
    pgp_int(&p, workflow_id);
    pgp_int(&p, job_index);
    int rc = pg_run(st, PS_ATTEMPTS, SQL_ATTEMPTS, &p, &r, err, errlen, "reading attempts");
    int rows = rc == TS_OK ? PQntuples(r) : 0;
    if (rows > 0) *out = ts_calloc((size_t)rows, sizeof(store_attempt));
    for (int i = 0; i < rows; i++) {
        store_attempt *a = &(*out)[i];
        a->attempt = (int)pg_int(r, i, 0);
        a->started_at = pg_double(r, i, 1);
        a->finished_at = pg_double(r, i, 2);
        ts_strlcpy(a->outcome, pg_text(r, i, 3), sizeof(a->outcome));
        a->exit_code = (int)pg_int(r, i, 4);
        ts_strlcpy(a->reason, pg_text(r, i, 5), sizeof(a->reason));
        a->job_index = (int32_t)pg_int(r, i, 6);
        ts_strlcpy(a->token, pg_text(r, i, 7), sizeof(a->token));
        ts_strlcpy(a->external_id, pg_text(r, i, 8), sizeof(a->external_id));
    }
    *n = (size_t)rows;
    PQclear(r);
    return rc;
}

/* A job's attempts, oldest first, in one snapshot with the job check. */
int pg_attempts(pg_store *st, int64_t workflow_id, int32_t job_index, store_attempt **out,
                size_t *n, char *err, size_t errlen) {
    bool own = false;
    *out = NULL;
    *n = 0;
    int rc = pg_read_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    rc = attempts_read(st, workflow_id, job_index, out, n, err, errlen);
    pg_read_end(st, own);
    if (rc != TS_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int pg_queue_stats_get(pg_store *st, store_queue_stats *out, char *err, size_t errlen) {
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pg_run(st, PS_QUEUE_STATS, SQL_QUEUE_STATS, NULL, &r, err, errlen,
                    "reading queue statistics");
    if (rc == TS_OK) {
        out->active_users = (int)pg_int(r, 0, 0);
        out->waiting_users = (int)pg_int(r, 0, 1);
        out->queued_workflows = (int)pg_int(r, 0, 2);
        out->running_cpus = (int)pg_int(r, 0, 3);
        out->running_jobs = (int)pg_int(r, 0, 4);
        out->oldest_queued_at = pg_double(r, 0, 5);
    }
    PQclear(r);
    return rc;
}

/* ---- instances (store_instances) ------------------------------------------------ */

/* Sessions of this database named by pg_set_instance_name ("tessera NAME").
 * Ordinary roles see the application_name of their own role's sessions,
 * which is what the instances share. */
static const char SQL_INSTANCES[] =
    "SELECT substr(application_name, 9), count(*), extract(epoch FROM min(backend_start))"
    " FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name LIKE 'tessera %' GROUP BY 1 ORDER BY 1";

int pg_instances(pg_store *st, store_instance *out, size_t max, size_t *n, char *err,
                 size_t errlen) {
    PGresult *r = NULL;
    *n = 0;
    int rc = pg_run(st, PS_INSTANCES, SQL_INSTANCES, NULL, &r, err, errlen, "listing instances");
    for (int i = 0; rc == TS_OK && i < PQntuples(r) && *n < max; i++) {
        store_instance *in = &out[(*n)++];
        ts_strlcpy(in->name, pg_text(r, i, 0), sizeof(in->name));
        in->connections = (int)pg_int(r, i, 1);
        in->since = pg_double(r, i, 2);
    }
    PQclear(r);
    return rc;
}

/* ---- users ------------------------------------------------------------------------- */

int pg_user_put(pg_store *st, const char *name, const char *token_hash, bool admin, double now,
                char *err, size_t errlen) {
    if (rows_user_put_check(name, token_hash, err, errlen) != TS_OK) return TS_ERR;
    pg_params p = {0};
    pgp_text(&p, name);
    pgp_text(&p, token_hash);
    pgp_bool(&p, admin);
    pgp_double(&p, now);
    return pg_exec(st, PS_USER_PUT, SQL_USER_PUT, &p, NULL, err, errlen,
                   "storing the user's token");
}

int pg_user_by_token(pg_store *st, const char *token_hash, char *name, bool *admin, char *err,
                     size_t errlen) {
    name[0] = '\0';
    *admin = false;
    if (!rows_token_hash_valid(token_hash)) return STORE_NOTFOUND;
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_text(&p, token_hash);
    int rc = pg_run(st, PS_USER_BY_TOKEN, SQL_USER_BY_TOKEN, &p, &r, err, errlen,
                    "looking up a token");
    if (rc == TS_OK && PQntuples(r) == 0) rc = STORE_NOTFOUND;
    else if (rc == TS_OK) {
        ts_strlcpy(name, pg_text(r, 0, 0), 129);
        *admin = pg_int(r, 0, 1) != 0;
    }
    PQclear(r);
    return rc;
}

/* The hash of name's current token (auth.c binds session cookies to it);
 * a user without a token is STORE_NOTFOUND, as a missing one. */
int pg_user_token(pg_store *st, const char *name, char token_hash[65], char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    token_hash[0] = '\0';
    pgp_text(&p, name);
    int rc = pg_run(st, PS_USER_TOKEN, SQL_USER_TOKEN, &p, &r, err, errlen,
                    "looking up a user's token");
    if (rc == TS_OK) {
        rc = STORE_NOTFOUND;
        if (PQntuples(r) == 1 && !pg_null(r, 0, 0)) {
            ts_strlcpy(token_hash, pg_text(r, 0, 0), 65);
            if (rows_token_hash_valid(token_hash)) rc = TS_OK;
        }
    }
    PQclear(r);
    return rc;
}

/* Forgets name's token (NULL matches no token and no session). */
int pg_user_revoke(pg_store *st, const char *name, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_text(&p, name);
    int rc = pg_exec(st, PS_USER_REVOKE, SQL_USER_REVOKE, &p, &n, err, errlen,
                     "revoking the user's token");
    return rc == TS_OK && n == 0 ? STORE_NOTFOUND : rc;
}
