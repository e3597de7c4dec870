/*
 * sqlite_schema.c - the SQLite schema as numbered migrations.
 *
 * The file's version is PRAGMA user_version. Migration N takes the schema
 * from version N-1 to N and runs, with the version bump, in one BEGIN
 * IMMEDIATE transaction: a crash leaves the file at N-1 or N, never between,
 * and processes opening the file at the same time cannot both apply it (the
 * second one re-reads the version under the write lock and finds it done).
 * Migrations are append-only: a released one is never edited, a change is a
 * new migration.
 *
 * Conventions of the schema:
 *   - states are their lower-case names (state.h), so the file reads well in
 *     the sqlite3 shell and the enums can be reordered;
 *   - times are REAL epoch seconds, 0 meaning "not yet";
 *   - ids use AUTOINCREMENT so that a deleted workflow's id or event seq is
 *     never handed out again (clients keep ids and "since" cursors);
 *   - deleting a workflow cascades to its jobs, attempts, events, commands.
 */
#include <stdio.h>

#include "store/sqlite_internal.h"
#include "util/util.h"

/* Migration 1: everything. */
static const char MIGRATION_1[] =
    "CREATE TABLE workflows ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL,"
    " cancel_requested INTEGER NOT NULL DEFAULT 0,"
    " spec TEXT NOT NULL," /* normalised JSON (spec_to_json) */
    " n_jobs INTEGER NOT NULL,"
    " reason TEXT NOT NULL DEFAULT '',"
    " submitted_at REAL NOT NULL,"
    " admitted_at REAL NOT NULL DEFAULT 0,"
    " finished_at REAL NOT NULL DEFAULT 0);"
    "CREATE INDEX workflows_user ON workflows(user_id, id);"
    /* (state, rowid): the admission line and the running set are ranges. */
    "CREATE INDEX workflows_state ON workflows(state);"

    "CREATE TABLE jobs ("
    " workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL,"
    " job_id TEXT NOT NULL,"
    " job_type TEXT NOT NULL,"
    " branch TEXT NOT NULL,"
    " cpus INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " not_before REAL NOT NULL DEFAULT 0,"
    " progress REAL NOT NULL DEFAULT 0,"
    " reason TEXT NOT NULL DEFAULT '',"
    " ready_at REAL NOT NULL DEFAULT 0,"
    " started_at REAL NOT NULL DEFAULT 0,"
    " finished_at REAL NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " lease_owner TEXT NOT NULL DEFAULT '',"
    " lease_expires REAL NOT NULL DEFAULT 0,"
    " PRIMARY KEY (workflow_id, idx)) WITHOUT ROWID;"
    /* Only running jobs: the claim's SUM(cpus) and lease renewal read this
     * small index (covering), and transitions between other states (most of
     * them) do not have to maintain it. */
    "CREATE INDEX jobs_running ON jobs(lease_owner, cpus) WHERE state = 'running';"

    "CREATE TABLE attempts ("
    " workflow_id INTEGER NOT NULL,"
    " idx INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " started_at REAL NOT NULL,"
    " finished_at REAL NOT NULL DEFAULT 0,"
    " outcome TEXT NOT NULL,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " reason TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (workflow_id, idx, attempt),"
    " FOREIGN KEY (workflow_id, idx) REFERENCES jobs(workflow_id, idx) ON DELETE CASCADE"
    ") WITHOUT ROWID;"

    /* Event bodies are composed on read from these columns, so the seq in
     * the JSON is always the row's real seq. */
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " ts REAL NOT NULL,"
    " type TEXT NOT NULL,"
    " user_id TEXT NOT NULL,"
    " workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,"
    " job_id TEXT,"
    " state TEXT,"
    " progress REAL,"
    " message TEXT,"
    " attempt INTEGER,"
    " queue_position INTEGER);"
    "CREATE INDEX events_user ON events(user_id, seq);"
    "CREATE INDEX events_workflow ON events(workflow_id, seq);"

    "CREATE TABLE commands ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,"
    " job_idx INTEGER NOT NULL," /* -1 = the whole workflow */
    " kind TEXT NOT NULL CHECK (kind IN ('cancel', 'retry')),"
    " user_id TEXT NOT NULL,"
    " created_at REAL NOT NULL);"
    "CREATE INDEX commands_workflow ON commands(workflow_id);"

    "CREATE TABLE leader ("
    " name TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL,"
    " expires REAL NOT NULL);"

    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY,"
    " token_hash TEXT,"
    " admin INTEGER NOT NULL DEFAULT 0,"
    " created_at REAL NOT NULL);";

/* Migration 2: a token hash names at most one user, and looking a token up
 * (every bearer request) is an index search rather than a scan. NULLs
 * (users without a token) do not collide in a UNIQUE index. */
static const char MIGRATION_2[] = "CREATE UNIQUE INDEX users_token_hash ON users(token_hash);";

/* Commands are marked applied in the transaction that records their effect,
 * so a restarted scheduler neither loses nor repeats one. */
static const char MIGRATION_3[] =
    "ALTER TABLE commands ADD COLUMN applied INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX commands_pending ON commands(id) WHERE applied = 0;";

/* The scheduler lease gets a term that grows at every election (store.h,
 * store_leader_term). */
static const char MIGRATION_4[] = "ALTER TABLE leader ADD COLUMN term INTEGER NOT NULL DEFAULT 0;";

/* A batch executor's handle of each attempt (store_attempt_external): the
 * token in the batch job's name and the batch system's id, so that a
 * restarted scheduler finds its jobs in Slurm instead of re-running them. */
static const char MIGRATION_5[] =
    "ALTER TABLE attempts ADD COLUMN token TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE attempts ADD COLUMN external_id TEXT NOT NULL DEFAULT '';";

/* A count of the batch ids recorded on a workflow's attempts
 * (store_attempt_external records no event), so that a workflow's stamp
 * (store_workflow_stamp_get) changes with every change a read shows. */
static const char MIGRATION_6[] =
    "ALTER TABLE workflows ADD COLUMN batch_handles INTEGER NOT NULL DEFAULT 0;";

/* The active users (running workflows' distinct users) are counted at
 * every admission and every submission: without this index each count
 * read the row of every running workflow, and with thousands admitted
 * (waiting for cpus) the scheduler spent most of its time there. With it
 * the count is a skip over the index (SQL_COUNT_ACTIVE_USERS), a few
 * lookups per user. */
static const char MIGRATION_7[] = "CREATE INDEX workflows_state_user ON workflows(state, user_id);";

/* migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[SQL_SCHEMA_VERSION] = {MIGRATION_1, MIGRATION_2,
                                                             MIGRATION_3, MIGRATION_4,
                                                             MIGRATION_5, MIGRATION_6,
                                                             MIGRATION_7};

/* Reads PRAGMA user_version into *version. */
int sql_schema_read(sqlite_store *st, int *version, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return db_fail(st, err, errlen, "reading the schema version");
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = db_fail(st, err, errlen, "reading the schema version");
        sqlite3_finalize(s);
        return rc;
    }
    *version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return TS_OK;
}

/* Applies migration `to` (1-based) and sets the version, inside the caller's
 * transaction. The pragma takes no parameters, hence the formatted text. */
static int apply_one(sqlite_store *st, int to, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(st->db, migrations[to - 1], NULL, NULL, &msg) != SQLITE_OK) {
        ts_errf(err, errlen, "schema migration %d failed: %s", to, msg ? msg : "unknown error");
        sqlite3_free(msg);
        return sql_classify(st, sqlite3_extended_errcode(st->db));
    }
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", to);
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, errlen, "setting the schema version");
    return TS_OK;
}

/* One step: under the write lock, re-reads the version and applies the next
 * migration if one is due. *done is set when the file is current. */
static int migrate_step(sqlite_store *st, bool *done, char *err, size_t errlen) {
    int version = 0, rc = TS_ERR;
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(st, err, errlen, "starting a schema migration");
    if ((rc = sql_schema_read(st, &version, err, errlen)) != TS_OK) goto cleanup;
    if (version > SQL_SCHEMA_VERSION) {
        ts_errf(err, errlen,
                "the database has schema version %d, newer than this build knows (%d): "
                "run a newer tessera",
                version, SQL_SCHEMA_VERSION);
        rc = TS_ERR;
        goto cleanup;
    }
    *done = version == SQL_SCHEMA_VERSION;
    if (!*done && (rc = apply_one(st, version + 1, err, errlen)) != TS_OK) goto cleanup;
    if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(st, err, errlen, "committing a schema migration");
        goto cleanup;
    }
    return TS_OK;

cleanup:
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/*
 * Brings the file to SQL_SCHEMA_VERSION. The common case - a current file
 * opened by one of many worker processes - only reads the version, without
 * taking the write lock.
 */
int sql_migrate(sqlite_store *st, char *err, size_t errlen) {
    int version = 0;
    SQL_TRY(sql_schema_read(st, &version, err, errlen));
    if (version == SQL_SCHEMA_VERSION) return TS_OK;
    for (bool done = false; !done;)
        SQL_TRY(migrate_step(st, &done, err, errlen));
    return TS_OK;
}

/* The version the file has (equal to this build's after a successful open);
 * -1 when it cannot be read. */
int sqlite_schema_version(sqlite_store *st) {
    int version = -1;
    if (sql_usable(st, NULL, 0) != TS_OK || sql_schema_read(st, &version, NULL, 0) != TS_OK)
        return -1;
    return version;
}
