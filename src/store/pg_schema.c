/*
 * pg_schema.c - the PostgreSQL schema as numbered migrations.
 *
 * The database's version is the one row of tessera_schema. Migration N
 * takes the schema from N-1 to N and runs, with the version bump, in one
 * transaction (PostgreSQL's DDL is transactional) under the advisory lock
 * PG_LOCK_MIGRATE: instances starting at the same time take turns, and the
 * second re-reads the version under the lock and finds the work done.
 * Migrations are append-only: a released one is never edited.
 *
 * The schema mirrors SQLite's (sqlite_schema.c) so that both backends
 * answer alike: states as lower-case names, times as epoch seconds in
 * double precision (0 = not yet), ids that are never reused. Differences:
 *   - events.seq is not a sequence: it is stamped at commit from the
 *     one-row event_counter (pg.c explains why);
 *   - the leader row carries a term and its expiry on the database clock
 *     (timestamptz), so instances with skewed clocks agree on who leads;
 *   - partial indexes keep the hot sets small: queued and running
 *     workflows, running jobs, unapplied commands.
 */
#include <stdio.h>

#include "store/pg_internal.h"
#include "util/util.h"

static const char MIGRATION_1[] =
    "CREATE TABLE workflows ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " user_id text NOT NULL,"
    " name text NOT NULL,"
    " priority integer NOT NULL DEFAULT 0,"
    " state text NOT NULL,"
    " cancel_requested boolean NOT NULL DEFAULT false,"
    " spec text NOT NULL,"
    " n_jobs integer NOT NULL,"
    " reason text NOT NULL DEFAULT '',"
    " submitted_at double precision NOT NULL,"
    " admitted_at double precision NOT NULL DEFAULT 0,"
    " finished_at double precision NOT NULL DEFAULT 0);"
    "CREATE INDEX workflows_user ON workflows (user_id, id);"
    "CREATE INDEX workflows_queued ON workflows (id) WHERE state = 'queued';"
    "CREATE INDEX workflows_running ON workflows (user_id) WHERE state = 'running';"
    "CREATE INDEX workflows_unfinished ON workflows (id) WHERE state IN ('queued', 'running');"

    "CREATE TABLE jobs ("
    " workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,"
    " idx integer NOT NULL,"
    " job_id text NOT NULL,"
    " job_type text NOT NULL,"
    " branch text NOT NULL,"
    " cpus integer NOT NULL,"
    " state text NOT NULL,"
    " attempt integer NOT NULL DEFAULT 0,"
    " failures integer NOT NULL DEFAULT 0,"
    " not_before double precision NOT NULL DEFAULT 0,"
    " progress double precision NOT NULL DEFAULT 0,"
    " reason text NOT NULL DEFAULT '',"
    " ready_at double precision NOT NULL DEFAULT 0,"
    " started_at double precision NOT NULL DEFAULT 0,"
    " finished_at double precision NOT NULL DEFAULT 0,"
    " exit_code integer NOT NULL DEFAULT -1,"
    " lease_owner text NOT NULL DEFAULT '',"
    " lease_expires double precision NOT NULL DEFAULT 0,"
    " PRIMARY KEY (workflow_id, idx));"
    "CREATE INDEX jobs_running ON jobs (lease_owner) INCLUDE (cpus) WHERE state = 'running';"

    "CREATE TABLE attempts ("
    " workflow_id bigint NOT NULL,"
    " idx integer NOT NULL,"
    " attempt integer NOT NULL,"
    " started_at double precision NOT NULL,"
    " finished_at double precision NOT NULL DEFAULT 0,"
    " outcome text NOT NULL,"
    " exit_code integer NOT NULL DEFAULT -1,"
    " reason text NOT NULL DEFAULT '',"
    " PRIMARY KEY (workflow_id, idx, attempt),"
    " FOREIGN KEY (workflow_id, idx) REFERENCES jobs (workflow_id, idx) ON DELETE CASCADE);"

    "CREATE TABLE events ("
    " seq bigint PRIMARY KEY,"
    " ts double precision NOT NULL,"
    " type text NOT NULL,"
    " user_id text NOT NULL,"
    " workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,"
    " job_id text,"
    " state text,"
    " progress double precision,"
    " message text,"
    " attempt integer,"
    " queue_position integer);"
    "CREATE INDEX events_user ON events (user_id, seq);"
    "CREATE INDEX events_workflow ON events (workflow_id, seq);"
    "CREATE TABLE event_counter ("
    " one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    " last_seq bigint NOT NULL);"
    "INSERT INTO event_counter (last_seq) VALUES (0);"

    "CREATE TABLE commands ("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " workflow_id bigint NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,"
    " job_idx integer NOT NULL,"
    " kind text NOT NULL CHECK (kind IN ('cancel', 'retry')),"
    " user_id text NOT NULL,"
    " created_at double precision NOT NULL,"
    " applied boolean NOT NULL DEFAULT false);"
    "CREATE INDEX commands_workflow ON commands (workflow_id);"
    "CREATE INDEX commands_pending ON commands (id) WHERE NOT applied;"

    "CREATE TABLE leader ("
    " name text PRIMARY KEY,"
    " owner text NOT NULL,"
    " term bigint NOT NULL,"
    " expires_at timestamptz NOT NULL);"

    "CREATE TABLE users ("
    " name text PRIMARY KEY,"
    " token_hash text UNIQUE,"
    " admin boolean NOT NULL DEFAULT false,"
    " created_at double precision NOT NULL);";

/* A batch executor's handle of each attempt (store_attempt_external): the
 * token in the batch job's name and the batch system's id, so that a
 * restarted scheduler finds its jobs in Slurm instead of re-running them. */
static const char MIGRATION_2[] =
    "ALTER TABLE attempts ADD COLUMN token text NOT NULL DEFAULT '';"
    "ALTER TABLE attempts ADD COLUMN external_id text NOT NULL DEFAULT '';";

/* As SQLite's migration 6: batch ids recorded on a workflow's attempts,
 * counted, for the workflow's stamp (store_workflow_stamp_get). */
static const char MIGRATION_3[] =
    "ALTER TABLE workflows ADD COLUMN batch_handles bigint NOT NULL DEFAULT 0;";

/* migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[PG_SCHEMA_VERSION] = {MIGRATION_1, MIGRATION_2, MIGRATION_3};

/* The version row, creating the table on a fresh database. */
static int read_version(pg_store *st, int *version, char *err, size_t errlen) {
    int rc = pg_simple(st, "CREATE TABLE IF NOT EXISTS tessera_schema (version integer NOT NULL)",
                       err, errlen, "reading the schema version");
    if (rc != TS_OK) return rc;
    PGresult *r = PQexec(st->conn, "SELECT COALESCE(MAX(version), 0) FROM tessera_schema");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ts_errf(err, errlen, "reading the schema version: %s", PQerrorMessage(st->conn));
        PQclear(r);
        return TS_ERR;
    }
    *version = (int)pg_int(r, 0, 0);
    PQclear(r);
    return TS_OK;
}

/* One step under the lock: re-read the version, apply the next migration. */
static int migrate_step(pg_store *st, bool *done, char *err, size_t errlen) {
    char sql[128];
    int version = 0;
    int rc = pg_simple(st, "BEGIN", err, errlen, "starting a schema migration");
    if (rc != TS_OK) return rc;
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld)", PG_LOCK_MIGRATE);
    rc = pg_simple(st, sql, err, errlen, "waiting for other instances' migrations");
    if (rc == TS_OK) rc = read_version(st, &version, err, errlen);
    if (rc == TS_OK && version > PG_SCHEMA_VERSION) {
        ts_errf(err, errlen,
                "the database has schema version %d, newer than this build knows (%d): "
                "run a newer tessera",
                version, PG_SCHEMA_VERSION);
        rc = TS_ERR;
    }
    *done = version >= PG_SCHEMA_VERSION;
    if (rc == TS_OK && !*done) {
        char what[64];
        snprintf(what, sizeof(what), "schema migration %d", version + 1);
        rc = pg_simple(st, migrations[version], err, errlen, what);
        snprintf(sql, sizeof(sql), "DELETE FROM tessera_schema; INSERT INTO tessera_schema VALUES (%d)",
                 version + 1);
        if (rc == TS_OK) rc = pg_simple(st, sql, err, errlen, "setting the schema version");
    }
    if (rc == TS_OK) return pg_simple(st, "COMMIT", err, errlen, "committing a schema migration");
    PQclear(PQexec(st->conn, "ROLLBACK"));
    return rc;
}

int pg_migrate(pg_store *st, char *err, size_t errlen) {
    int version = 0;
    PGresult *r = PQexec(st->conn, "SELECT version FROM tessera_schema");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) version = (int)pg_int(r, 0, 0);
    PQclear(r);
    if (version == PG_SCHEMA_VERSION) return TS_OK; /* the common case: nothing to lock */
    for (bool done = false; !done;) {
        int rc = migrate_step(st, &done, err, errlen);
        if (rc != TS_OK) return rc;
    }
    return TS_OK;
}

int pg_schema_version(pg_store *st) {
    PGresult *r = PQexec(st->conn, "SELECT version FROM tessera_schema");
    int v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? (int)pg_int(r, 0, 0) : -1;
    PQclear(r);
    return v;
}
