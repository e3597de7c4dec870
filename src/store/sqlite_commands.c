/*
 * sqlite_commands.c - the scheduler's leadership lease, and the commands
 * (cancel, retry) that clients leave for the scheduler.
 *
 * Commands are a table rather than a message to the scheduler process
 * because the store is the only state shared between processes (DESIGN §6):
 * an HTTP worker writes the command and rings the doorbell; the scheduler
 * reads every command after the last id it handled, so a lost doorbell or
 * a scheduler restart loses nothing.
 */
#include <string.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/util.h"

static const char SQL_LEADER_GET[] =
    "SELECT owner, expires, term FROM leader WHERE name = 'scheduler'";

/* ?3 is the term: the holder's own when it renews, one more at an election. */
static const char SQL_LEADER_PUT[] =
    "INSERT INTO leader (name, owner, expires, term) VALUES ('scheduler', ?1, ?2, ?3)"
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires,"
    " term = excluded.term";

/* Expired rather than deleted, so that the term keeps growing. */
static const char SQL_LEADER_DELETE[] =
    "UPDATE leader SET expires = 0 WHERE name = 'scheduler' AND owner = ?1";

static const char SQL_CMD_WF[] =
    "SELECT 1 FROM workflows WHERE id = ?1 AND (?2 IS NULL OR user_id = ?2)";

static const char SQL_CMD_JOB[] = "SELECT 1 FROM jobs WHERE workflow_id = ?1 AND idx = ?2";

static const char SQL_CMD_INSERT[] =
    "INSERT INTO commands (workflow_id, job_idx, kind, user_id, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";

/* Only a workflow that can still be cancelled is marked: a finished one keeps
 * its record as it was (cancel is idempotent and then a no-op). */
static const char SQL_CMD_CANCEL_FLAG[] =
    "UPDATE workflows SET cancel_requested = 1"
    " WHERE id = ?1 AND state IN ('queued', 'running')";

static const char SQL_CMD_SINCE[] =
    "SELECT id, workflow_id, job_idx, kind, user_id, created_at FROM commands"
    " WHERE id > ?1 AND applied = 0 ORDER BY id";

static const char SQL_CMD_APPLIED[] = "UPDATE commands SET applied = 1 WHERE id = ?1";

/* ---- leadership ---------------------------------------------------------------- */

/* Reads the lease and decides, inside the write transaction, whether owner
 * may hold it: nobody holds it, it has expired, or owner already does. */
static int leader_may_take(sqlite_store *st, const char *owner, double now, bool *may,
                           int64_t *term, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_LEADER_GET, SQL_LEADER_GET, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int step = sqlite3_step(s), rc = TS_OK;
    *term = 1;
    if (step == SQLITE_DONE) {
        *may = true;
    } else if (step == SQLITE_ROW) {
        bool mine = strcmp(col_text(s, 0), owner) == 0 && sqlite3_column_double(s, 1) >= now;
        *may = mine || sqlite3_column_double(s, 1) < now;
        *term = sqlite3_column_int64(s, 2) + (mine ? 0 : 1);
    } else
        rc = db_fail(st, err, errlen, "reading the scheduler lease");
    stmt_done(s);
    return rc;
}

/*
 * Takes or renews the single scheduler lease (expires = now + ttl). The read
 * and the write share one BEGIN IMMEDIATE transaction, so two candidates
 * can never both see the lease free and both take it.
 */
int sqlite_leader_acquire(sqlite_store *st, const char *owner, double now, double ttl, bool *leader,
                         char *err, size_t errlen) {
    bool own = false, may = false;
    int64_t term = 0;
    *leader = false;
    if (owner == NULL || owner[0] == '\0') {
        ts_errf(err, errlen, "store_leader_acquire: an owner name is required");
        return TS_ERR;
    }
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = leader_may_take(st, owner, now, &may, &term, err, errlen);
    if (rc == TS_OK && may) {
        sqlite3_stmt *s = stmt_get(st, ST_LEADER_PUT, SQL_LEADER_PUT, err, errlen);
        if (s != NULL) {
            bind_text(s, 1, owner);
            sqlite3_bind_double(s, 2, now + ttl);
            sqlite3_bind_int64(s, 3, term);
        }
        rc = s ? stmt_exec(st, s, err, errlen, "taking the scheduler lease") : stmt_failed(st);
    }
    rc = txn_end(st, own, rc, err, errlen);
    *leader = rc == TS_OK && may;
    if (*leader) st->lead_term = term;
    return rc;
}

/* The lease row as it is; the caller's clock (SQLite has no other). */
int sqlite_leader_get(sqlite_store *st, store_leader_info *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = stmt_get(st, ST_LEADER_GET, SQL_LEADER_GET, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int step = sqlite3_step(s), rc = TS_OK;
    if (step == SQLITE_ROW) {
        ts_strlcpy(out->owner, col_text(s, 0), sizeof(out->owner));
        out->expires_in = sqlite3_column_double(s, 1) - ts_now();
        out->term = sqlite3_column_int64(s, 2);
    } else if (step != SQLITE_DONE) {
        rc = db_fail(st, err, errlen, "reading the scheduler lease");
    }
    stmt_done(s);
    return rc;
}

/* SQLite keeps the term for parity and metrics; its writers are serialised
 * by the file lock and guarded by state, and are not fenced by the term. */
int64_t sqlite_leader_term(sqlite_store *st) {
    return st->lead_term;
}

/* Gives the lease up so that a successor need not wait for it to expire. */
int sqlite_leader_release(sqlite_store *st, const char *owner, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_LEADER_DELETE, SQL_LEADER_DELETE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    bind_text(s, 1, owner);
    return stmt_exec(st, s, err, errlen, "releasing the scheduler lease");
}

/* ---- commands -------------------------------------------------------------------- */

/* TS_OK if the statement (bound by the caller) returns a row, STORE_NOTFOUND
 * if not. */
static int exists(sqlite_store *st, sqlite3_stmt *s, char *err, size_t errlen) {
    int step = sqlite3_step(s), rc;
    if (step == SQLITE_ROW) rc = TS_OK;
    else if (step == SQLITE_DONE) rc = STORE_NOTFOUND;
    else rc = db_fail(st, err, errlen, "looking up a workflow");
    stmt_done(s);
    return rc;
}

/* The workflow is user's (any user's for NULL) and has the job, if one. */
static int command_target(sqlite_store *st, int64_t workflow_id, int32_t job_index, const char *user,
                          char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_CMD_WF, SQL_CMD_WF, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    bind_text(s, 2, user);
    int rc = exists(st, s, err, errlen);
    if (rc != TS_OK || job_index < 0) return rc;
    s = stmt_get(st, ST_CMD_JOB, SQL_CMD_JOB, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int(s, 2, job_index);
    return exists(st, s, err, errlen);
}

/* Inserts the command row and sets *id. */
static int command_insert(sqlite_store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                          const char *user, double now, int64_t *id, char *err,
                          size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_CMD_INSERT, SQL_CMD_INSERT, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, workflow_id);
    sqlite3_bind_int(s, 2, job_index);
    bind_text(s, 3, kind);
    bind_text(s, 4, user ? user : ""); /* "" = an administrator / the system */
    sqlite3_bind_double(s, 5, now);
    SQL_TRY(stmt_exec(st, s, err, errlen, "storing a command"));
    if (id != NULL) *id = sqlite3_last_insert_rowid(st->db);
    return TS_OK;
}

/*
 * Queues a cancel or retry. A workflow cancel also sets cancel_requested at
 * once, so that readers show "cancelling" before the scheduler gets to it
 * and a scheduler that reloads the workflow still knows.
 */
int sqlite_command_add(sqlite_store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                      const char *user, double now, int64_t *id, char *err, size_t errlen) {
    bool own = false;
    if (rows_command_check(kind, job_index, err, errlen) != TS_OK) return TS_ERR;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    int rc = command_target(st, workflow_id, job_index, user, err, errlen);
    if (rc == TS_OK)
        rc = command_insert(st, workflow_id, job_index, kind, user, now, id, err, errlen);
    if (rc == TS_OK && job_index == -1 && strcmp(kind, "cancel") == 0) {
        sqlite3_stmt *s = stmt_get(st, ST_CMD_CANCEL_FLAG, SQL_CMD_CANCEL_FLAG, err, errlen);
        if (s != NULL) sqlite3_bind_int64(s, 1, workflow_id);
        rc = s ? stmt_exec(st, s, err, errlen, "marking the workflow cancelled") : stmt_failed(st);
    }
    return txn_end(st, own, rc, err, errlen);
}

/* Fills a command from a row of SQL_CMD_SINCE. */
static void command_from_row(sqlite3_stmt *s, store_command *c) {
    memset(c, 0, sizeof(*c));
    c->id = sqlite3_column_int64(s, 0);
    c->workflow_id = sqlite3_column_int64(s, 1);
    c->job_index = sqlite3_column_int(s, 2);
    ts_strlcpy(c->kind, col_text(s, 3), sizeof(c->kind));
    ts_strlcpy(c->user, col_text(s, 4), sizeof(c->user));
    c->created_at = sqlite3_column_double(s, 5);
}

/* Marks a command applied, in the caller's transaction (or one of its own). */
int sqlite_command_applied(sqlite_store *st, int64_t id, char *err, size_t errlen) {
    bool own = false;
    SQL_TRY(txn_enter(st, &own, err, errlen));
    sqlite3_stmt *s = stmt_get(st, ST_CMD_APPLIED, SQL_CMD_APPLIED, err, errlen);
    int rc = s ? TS_OK : stmt_failed(st);
    if (s) {
        sqlite3_bind_int64(s, 1, id);
        if (sqlite3_step(s) != SQLITE_DONE) rc = db_fail(st, err, errlen, "marking a command");
        stmt_done(s);
    }
    return txn_end(st, own, rc, err, errlen);
}

/* Every unapplied command after after_id, oldest first; cb returns non-zero
 * to stop. */
int sqlite_commands_since(sqlite_store *st, int64_t after_id, store_command_cb cb, void *ctx, char *err,
                         size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_CMD_SINCE, SQL_CMD_SINCE, err, errlen);
    if (s == NULL) return stmt_failed(st);
    sqlite3_bind_int64(s, 1, after_id);
    int step, rc = TS_OK;
    store_command c;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        command_from_row(s, &c);
        if (cb(ctx, &c)) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = db_fail(st, err, errlen, "reading commands");
    stmt_done(s);
    return rc;
}
