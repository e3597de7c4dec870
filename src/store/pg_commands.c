/*
 * pg_commands.c - the scheduler's leadership and the commands (cancel,
 * retry) clients leave for it, on PostgreSQL.
 *
 * Leadership is a lease row on the database clock, so instances whose
 * clocks disagree still agree on who leads. Taking it is one statement
 * (INSERT ... ON CONFLICT DO UPDATE ... WHERE): the holder renews it in its
 * term; anyone takes it once it has expired, and the term grows by one at
 * each such election. The handle keeps the (owner, term) it won; every
 * leader-only write it commits afterwards is fenced by them (pg.c), so a
 * paused or partitioned old leader writes nothing once a successor has the
 * lease. Releasing expires the row instead of deleting it, so the term
 * keeps growing across hand-overs. The `now` the caller passes is ignored:
 * the database's clock_timestamp() is the only clock.
 *
 * A command's commit wakes the scheduler on every instance (NOTIFY
 * tessera_work); it reads commands after the last id it handled, so a lost
 * notification or a restart loses nothing.
 */
#include <string.h>

#include "store/pg_internal.h"
#include "store/rows.h"
#include "util/util.h"

static const char SQL_LEADER_ACQUIRE[] =
    "INSERT INTO leader AS l (name, owner, term, expires_at)"
    " VALUES ('scheduler', $1, 1, clock_timestamp() + make_interval(secs => $2))"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,"
    "  term = CASE WHEN l.owner = excluded.owner AND l.expires_at > clock_timestamp()"
    "   THEN l.term ELSE l.term + 1 END"
    " WHERE (l.owner = excluded.owner AND l.expires_at > clock_timestamp())"
    "  OR l.expires_at <= clock_timestamp()"
    " RETURNING term";

static const char SQL_LEADER_RELEASE[] =
    "UPDATE leader SET expires_at = '-infinity' WHERE name = 'scheduler' AND owner = $1";

static const char SQL_CMD_WF[] =
    "SELECT 1 FROM workflows WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)";

static const char SQL_CMD_JOB[] = "SELECT 1 FROM jobs WHERE workflow_id = $1 AND idx = $2";

/* See pg_command_add. */
static const char SQL_CMD_LOCK[] = "SELECT last_seq FROM event_counter FOR UPDATE";

static const char SQL_CMD_INSERT[] =
    "INSERT INTO commands (workflow_id, job_idx, kind, user_id, created_at)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id";

static const char SQL_CMD_CANCEL_FLAG[] =
    "UPDATE workflows SET cancel_requested = true"
    " WHERE id = $1 AND state IN ('queued', 'running')";

static const char SQL_CMD_SINCE[] =
    "SELECT id, workflow_id, job_idx, kind, user_id, created_at FROM commands"
    " WHERE id > $1 AND NOT applied ORDER BY id";

static const char SQL_CMD_APPLIED[] = "UPDATE commands SET applied = true WHERE id = $1";

/* ---- leadership ------------------------------------------------------------------ */

/*
 * Takes or renews the lease for ttl seconds in its own short transaction
 * (lock_timeout bounds the wait behind a paused holder's open transaction;
 * then this round simply does not lead). Remembers (owner, term) on the
 * handle for fencing; losing the lease keeps the old term, so later
 * leader-only writes fail instead of slipping through unfenced.
 */
int pg_leader_acquire(pg_store *st, const char *owner, double now, double ttl, bool *leader,
                      char *err, size_t errlen) {
    (void)now;
    *leader = false;
    if (owner == NULL || owner[0] == '\0' || strlen(owner) >= sizeof(st->lead_owner)) {
        ts_errf(err, errlen, "store_leader_acquire: an owner name (under 256 bytes) is required");
        return TS_ERR;
    }
    if (st->in_txn) {
        ts_errf(err, errlen, "store_leader_acquire runs in a transaction of its own");
        return TS_ERR;
    }
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_text(&p, owner);
    pgp_double(&p, ttl);
    int rc = pg_run(st, PS_LEADER_ACQUIRE, SQL_LEADER_ACQUIRE, &p, &r, err, errlen,
                    "taking the scheduler lease");
    if (rc == STORE_CONFLICT) {
        PQclear(r);
        return TS_OK; /* waited too long behind the holder: not the leader this round */
    }
    if (rc != TS_OK) return rc;
    if (PQntuples(r) == 1) {
        *leader = true;
        ts_strlcpy(st->lead_owner, owner, sizeof(st->lead_owner));
        st->lead_term = pg_int(r, 0, 0);
    }
    PQclear(r);
    return TS_OK;
}

int pg_leader_release(pg_store *st, const char *owner, char *err, size_t errlen) {
    pg_params p = {0};
    pgp_text(&p, owner);
    return pg_exec(st, PS_LEADER_RELEASE, SQL_LEADER_RELEASE, &p, NULL, err, errlen,
                   "releasing the scheduler lease");
}

static const char SQL_LEADER_GET[] =
    "SELECT owner, term, CASE WHEN expires_at = '-infinity' THEN -1e9"
    "  ELSE extract(epoch FROM expires_at - clock_timestamp()) END"
    " FROM leader WHERE name = 'scheduler'";

/* The lease row, its expiry on the database clock. */
int pg_leader_get(pg_store *st, store_leader_info *out, char *err, size_t errlen) {
    PGresult *r = NULL;
    memset(out, 0, sizeof(*out));
    int rc = pg_run(st, PS_LEADER_GET, SQL_LEADER_GET, NULL, &r, err, errlen,
                    "reading the scheduler lease");
    if (rc == TS_OK && PQntuples(r) == 1) {
        ts_strlcpy(out->owner, pg_text(r, 0, 0), sizeof(out->owner));
        out->term = pg_int(r, 0, 1);
        out->expires_in = pg_double(r, 0, 2);
    }
    PQclear(r);
    return rc;
}

int64_t pg_leader_term(pg_store *st) {
    return st->lead_term;
}

/* ---- commands ---------------------------------------------------------------------- */

/* TS_OK if the statement returns a row, STORE_NOTFOUND if not. */
static int exists(pg_store *st, pg_stmt id, const char *sql, const pg_params *p, char *err,
                  size_t errlen) {
    PGresult *r = NULL;
    int rc = pg_run(st, id, sql, p, &r, err, errlen, "looking up a workflow");
    if (rc == TS_OK && PQntuples(r) == 0) rc = STORE_NOTFOUND;
    PQclear(r);
    return rc;
}

static int command_target(pg_store *st, int64_t workflow_id, int32_t job_index, const char *user,
                          char *err, size_t errlen) {
    pg_params p = {0};
    pgp_int(&p, workflow_id);
    pgp_text(&p, user);
    int rc = exists(st, PS_CMD_WF, SQL_CMD_WF, &p, err, errlen);
    if (rc != TS_OK || job_index < 0) return rc;
    pg_params q = {0};
    pgp_int(&q, workflow_id);
    pgp_int(&q, job_index);
    return exists(st, PS_CMD_JOB, SQL_CMD_JOB, &q, err, errlen);
}

static int command_insert(pg_store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                          const char *user, double now, int64_t *id, char *err, size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, workflow_id);
    pgp_int(&p, job_index);
    pgp_text(&p, kind);
    pgp_text(&p, user ? user : "");
    pgp_double(&p, now);
    int rc = pg_run(st, PS_CMD_INSERT, SQL_CMD_INSERT, &p, &r, err, errlen, "storing a command");
    if (rc == TS_OK && id != NULL) *id = pg_int(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Queues a cancel or retry (a workflow cancel also sets cancel_requested at
 * once) and wakes the scheduler at commit. The scheduler reads commands
 * after the last id it applied, so ids must be handed out in commit order
 * (an identity value is taken before commit, and a smaller id committing
 * late would never be read): the command takes the event counter's row
 * lock first, as submissions do (pg_workflows.c). Commands are rare. */
int pg_command_add(pg_store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                   const char *user, double now, int64_t *id, char *err, size_t errlen) {
    bool own = false;
    if (rows_command_check(kind, job_index, err, errlen) != TS_OK) return TS_ERR;
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    rc = pg_exec(st, PS_CMD_LOCK, SQL_CMD_LOCK, NULL, NULL, err, errlen,
                 "waiting for other commands");
    if (rc == TS_OK) rc = command_target(st, workflow_id, job_index, user, err, errlen);
    if (rc == TS_OK) rc = command_insert(st, workflow_id, job_index, kind, user, now, id, err, errlen);
    if (rc == TS_OK && job_index == -1 && strcmp(kind, "cancel") == 0) {
        pg_params p = {0};
        pgp_int(&p, workflow_id);
        rc = pg_exec(st, PS_CMD_CANCEL_FLAG, SQL_CMD_CANCEL_FLAG, &p, NULL, err, errlen,
                     "marking the workflow cancelled");
    }
    if (rc == TS_OK) st->work_notify = true;
    return pg_txn_end(st, own, rc, err, errlen);
}

int pg_command_applied(pg_store *st, int64_t id, char *err, size_t errlen) {
    bool own = false;
    pg_params p = {0};
    int rc = pg_txn_enter(st, &own, err, errlen);
    if (rc != TS_OK) return rc;
    st->leader_write = true;
    pgp_int(&p, id);
    rc = pg_exec(st, PS_CMD_APPLIED, SQL_CMD_APPLIED, &p, NULL, err, errlen, "marking a command");
    return pg_txn_end(st, own, rc, err, errlen);
}

int pg_commands_since(pg_store *st, int64_t after_id, store_command_cb cb, void *ctx, char *err,
                      size_t errlen) {
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_int(&p, after_id);
    int rc = pg_run(st, PS_CMD_SINCE, SQL_CMD_SINCE, &p, &r, err, errlen, "reading commands");
    for (int i = 0; rc == TS_OK && i < PQntuples(r); i++) {
        store_command c;
        memset(&c, 0, sizeof(c));
        c.id = pg_int(r, i, 0);
        c.workflow_id = pg_int(r, i, 1);
        c.job_index = (int32_t)pg_int(r, i, 2);
        ts_strlcpy(c.kind, pg_text(r, i, 3), sizeof(c.kind));
        ts_strlcpy(c.user, pg_text(r, i, 4), sizeof(c.user));
        c.created_at = pg_double(r, i, 5);
        if (cb(ctx, &c)) break;
    }
    PQclear(r);
    return rc;
}
