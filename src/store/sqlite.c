/*
 * sqlite.c - the SQLite store: opening a file, the statement cache,
 * transactions and store_submit (DESIGN §6, §9). The connection's settings,
 * error classes and the checks that the file can still be used are in
 * sqlite_health.c.
 *
 * Every transaction that may write starts with BEGIN IMMEDIATE, because a
 * deferred transaction that reads and then writes gets SQLITE_BUSY at once,
 * without waiting for the busy timeout (DESIGN §9).
 *
 * synchronous=FULL: in WAL mode every commit fsyncs the WAL before it
 * returns, so what a caller acknowledges after a commit (a 201, a CLI's
 * "submitted") survives kill -9, an OS crash and a power cut. NORMAL, the
 * usual WAL setting, only write()s the WAL and lost acknowledged workflows
 * when the file system's journal aborted (issue 12, defect 9). The cost is
 * one fsync per transaction; bench/commit_bench.c measures it against the
 * same submits on tmpfs, and the README states the contract. Concurrent
 * submissions of one process share that cost: a batch (store_batcher,
 * batch.c) is one transaction with a savepoint per submission.
 */
#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/rows.h"
#include "store/sqlite_internal.h"
#include "util/util.h"

/* ---- helpers shared by the sqlite*.c files ------------------------------- */

/* See sqlite_internal.h; the SQLite message says what the database refused,
 * and an unavailable store says so first. */
int db_fail(sqlite_store *st, char *err, size_t errlen, const char *what) {
    int rc = sql_classify(st, sqlite3_extended_errcode(st->db));
    ts_errf(err, errlen, "%s%s: %s", rc == STORE_UNAVAILABLE ? "store unavailable: " : "", what,
            sqlite3_errmsg(st->db));
    return rc;
}

int stmt_failed(const sqlite_store *st) {
    return st->stmt_fail_rc;
}

/* Prepares lazily so that a process only pays for the statements it uses
 * (an HTTP worker never claims); PERSISTENT tells SQLite they live long.
 * Outside a transaction a statement starts one, so the gate runs first:
 * the file must still be the one at the path. */
sqlite3_stmt *stmt_get(sqlite_store *st, stmt_id id, const char *sql, char *err, size_t errlen) {
    st->stmt_fail_rc = sql_usable(st, err, errlen);
    if (st->stmt_fail_rc != TS_OK) return NULL;
    sqlite3_stmt *s = st->stmts[id];
    if (s != NULL) {
        /* Two call sites sharing a slot with different SQL would be a bug. */
        assert(strcmp(sqlite3_sql(s), sql) == 0);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return s;
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        st->stmt_fail_rc = sql_classify(st, sqlite3_extended_errcode(st->db));
        ts_errf(err, errlen, "%spreparing \"%.60s...\": %s",
                st->stmt_fail_rc == STORE_UNAVAILABLE ? "store unavailable: " : "", sql,
                sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return NULL;
    }
    st->stmts[id] = s;
    return s;
}

/* Ends the statement's read and drops bound pointers to caller memory. */
void stmt_done(sqlite3_stmt *s) {
    if (s == NULL) return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Steps once; the error is taken before the reset, which would replace it.
 * A write outside a transaction committed by itself: checked like a
 * commit. */
int stmt_exec(sqlite_store *st, sqlite3_stmt *s, char *err, size_t errlen, const char *what) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = db_fail(st, err, errlen, what);
        stmt_done(s);
        return rc;
    }
    stmt_done(s);
    if (!sqlite3_stmt_readonly(s) && sqlite3_get_autocommit(st->db))
        return sql_after_commit(st, err, errlen);
    return TS_OK;
}

/* SQLITE_STATIC: every caller keeps the text alive until stmt_done. */
int bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v == NULL) return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Column text, "" for NULL, valid until the next step or reset. */
const char *col_text(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/* Runs one of the cached statements without parameters (BEGIN, COMMIT...). */
static int run_simple(sqlite_store *st, stmt_id id, const char *sql, char *err, size_t errlen,
                      const char *what) {
    sqlite3_stmt *s = stmt_get(st, id, sql, err, errlen);
    if (s == NULL) return stmt_failed(st);
    return stmt_exec(st, s, err, errlen, what);
}

/* True inside a transaction (never for a disconnected handle). */
static bool in_txn(const sqlite_store *st) {
    return st->db != NULL && !sqlite3_get_autocommit(st->db);
}

/* BEGIN IMMEDIATE unless the caller's transaction is already open. */
int txn_enter(sqlite_store *st, bool *own, char *err, size_t errlen) {
    *own = !in_txn(st);
    if (!*own) return TS_OK;
    return run_simple(st, ST_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE", err, errlen,
                      "starting a write transaction");
}

/* Commits or rolls back what txn_enter opened; the caller's transaction is
 * left to the caller (who rolls it back on an error). */
int txn_end(sqlite_store *st, bool own, int rc, char *err, size_t errlen) {
    if (!own) return rc;
    if (rc != TS_OK) {
        sqlite_rollback(st);
        return rc;
    }
    return sqlite_commit(st, err, errlen);
}

/* A deferred BEGIN: a read-only snapshot that never takes the write lock. */
int read_enter(sqlite_store *st, bool *own, char *err, size_t errlen) {
    *own = !in_txn(st);
    if (!*own) return TS_OK;
    return run_simple(st, ST_BEGIN_READ, "BEGIN", err, errlen, "starting a read transaction");
}

/* Ends the snapshot read_enter opened. */
void read_end(sqlite_store *st, bool own) {
    if (own) sqlite_rollback(st); /* nothing was written; ROLLBACK just ends the read */
}

/* ---- opening -------------------------------------------------------------- */

/* True if url looks like "scheme://...". */
static bool is_url(const char *url) {
    const char *p = url;
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.') p++;
    return p > url && strncmp(p, "://", 3) == 0;
}

/* Refuses what this build cannot open, with the reason, before SQLite would
 * create a stray file named "postgresql:" or a temporary database. */
static int check_target(const char *url, char *err, size_t errlen) {
    if (url == NULL || url[0] == '\0') {
        ts_errf(err, errlen, "no database path given");
        return TS_ERR;
    }
    if (is_url(url)) {
        ts_errf(err, errlen, "unsupported database URL \"%s\": give a file path", url);
        return TS_ERR;
    }
    if (strcmp(url, ":memory:") == 0) {
        ts_errf(err, errlen, "the store needs a database file (shared by processes), not :memory:");
        return TS_ERR;
    }
    char *dir = ts_strdup(url);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) strcpy(dir, ".");
    else if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    struct stat sb;
    int rc = TS_OK;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        ts_errf(err, errlen, "cannot open database %s: directory %s does not exist", url, dir);
        rc = TS_ERR;
    }
    free(dir);
    return rc;
}

/*
 * Opens (creating if needed) the SQLite file at url and migrates it. The
 * checks before sqlite3_open_v2 turn SQLite's "unable to open database
 * file" into a message that says what to fix. Any failure is TS_ERR: the
 * caller is starting up and stops.
 */
int sqlite_open(const char *url, sqlite_store **out, char *err, size_t errlen) {
    *out = NULL;
    if (check_target(url, err, errlen) != TS_OK) return TS_ERR;
    sqlite_store *st = ts_calloc(1, sizeof(*st));
    st->path = ts_strdup(url);
    st->ringer = sq_ringer_new(url);
    st->specs = rows_spec_cache_new();
    if (sql_connect(st, true, err, errlen) != TS_OK) {
        sqlite_close(st);
        return TS_ERR;
    }
    *out = st;
    return TS_OK;
}

/* A handle whose file cannot be used yet is still a handle: it connects at
 * its first call that finds the file usable (sqlite_health.c). */
int sqlite_open_existing(const char *url, sqlite_store **out, char *err, size_t errlen) {
    char cerr[TS_ERRLEN];
    *out = NULL;
    if (check_target(url, err, errlen) != TS_OK) return TS_ERR;
    sqlite_store *st = ts_calloc(1, sizeof(*st));
    st->path = ts_strdup(url);
    st->ringer = sq_ringer_new(url);
    st->specs = rows_spec_cache_new();
    sql_connect(st, false, cerr, sizeof(cerr));
    *out = st;
    return TS_OK;
}

/* Finalizes the cached statements, then closes; an open transaction is
 * rolled back by SQLite (nothing unacknowledged is kept). */
void sqlite_close(sqlite_store *st) {
    if (st == NULL) return;
    sql_disconnect(st);
    sq_ringer_free(st->ringer);
    rows_spec_cache_release(st->specs);
    free(st->path);
    free(st);
}

/* See store_share_spec_cache. */
void sqlite_share_specs(sqlite_store *st, sqlite_store *with) {
    rows_spec_cache *c = rows_spec_cache_retain(with->specs);
    rows_spec_cache_release(st->specs);
    st->specs = c;
}

/* ---- transactions ---------------------------------------------------------- */

/* BEGIN IMMEDIATE: takes the write lock now (waiting up to the busy timeout)
 * so that nothing inside can fail with SQLITE_BUSY half-way. */
int sqlite_begin(sqlite_store *st, char *err, size_t errlen) {
    if (in_txn(st)) {
        ts_errf(err, errlen, "store_begin: a transaction is already open (they do not nest)");
        return TS_ERR;
    }
    return run_simple(st, ST_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE", err, errlen,
                      "starting a write transaction");
}

/* On a failed COMMIT the transaction is rolled back, so the handle is usable
 * again and nothing half-done can be committed by a later call. A commit
 * into a file that was deleted or replaced meanwhile is not acknowledged. */
int sqlite_commit(sqlite_store *st, char *err, size_t errlen) {
    int rc = run_simple(st, ST_COMMIT, "COMMIT", err, errlen, "committing");
    if (rc == TS_OK) return sql_after_commit(st, err, errlen);
    sqlite_rollback(st);
    return rc;
}

/* See store.h. The pragma is also what sql_configure sets on every
 * reconnect; it cannot change inside a transaction. */
int sqlite_set_deferred_sync(sqlite_store *st, bool on, char *err, size_t errlen) {
    if (in_txn(st)) {
        ts_errf(err, errlen, "store_set_deferred_sync: a transaction is open");
        return TS_ERR;
    }
    if (!on && st->unsynced && sqlite_sync(st, err, errlen) != TS_OK) return STORE_UNAVAILABLE;
    st->deferred_sync = on;
    if (st->db == NULL) return TS_OK; /* set when it connects */
    const char *sql = on ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL";
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK) return TS_OK;
    return db_fail(st, err, errlen, "setting synchronous");
}

/* Safe to call with no transaction open (error paths call it freely). */
void sqlite_rollback(sqlite_store *st) {
    st->wake_seq = 0;
    if (!in_txn(st)) return;
    run_simple(st, ST_ROLLBACK, "ROLLBACK", NULL, 0, "rolling back");
}

/* ---- submit ---------------------------------------------------------------- */

static const char SQL_WF_INSERT[] =
    "INSERT INTO workflows (user_id, name, priority, state, spec, n_jobs, submitted_at)"
    " VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)";

static const char SQL_JOB_INSERT[] =
    "INSERT INTO jobs (workflow_id, idx, job_id, job_type, branch, cpus, state)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')";

/* Inserts the workflow row and sets *id. */
static int insert_workflow(sqlite_store *st, const char *user, const spec_workflow *spec,
                           const char *spec_text, double now, int64_t *id, char *err,
                           size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_WF_INSERT, SQL_WF_INSERT, err, errlen);
    if (s == NULL) return stmt_failed(st);
    bind_text(s, 1, user);
    bind_text(s, 2, spec->name);
    sqlite3_bind_int(s, 3, spec->priority);
    bind_text(s, 4, spec_text);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)spec->n_jobs);
    sqlite3_bind_double(s, 6, now);
    SQL_TRY(stmt_exec(st, s, err, errlen, "storing the workflow"));
    *id = sqlite3_last_insert_rowid(st->db);
    return TS_OK;
}

/* Inserts every job, pending, in spec order. */
static int insert_jobs(sqlite_store *st, int64_t id, const spec_workflow *spec, char *err,
                       size_t errlen) {
    for (size_t i = 0; i < spec->n_jobs; i++) {
        const spec_job *j = &spec->jobs[i];
        sqlite3_stmt *s = stmt_get(st, ST_JOB_INSERT, SQL_JOB_INSERT, err, errlen);
        if (s == NULL) return stmt_failed(st);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
        bind_text(s, 3, j->job_id);
        bind_text(s, 4, j->job_type);
        bind_text(s, 5, j->branch);
        sqlite3_bind_int(s, 6, j->cpus);
        SQL_TRY(stmt_exec(st, s, err, errlen, "storing a job"));
    }
    return TS_OK;
}

/* The two events every new workflow starts with; pos is its place in
 * the line. */
static int submit_events(sqlite_store *st, int64_t id, double now, int pos, char *err,
                         size_t errlen) {
    sql_event ev = {.ts = now, .type = "workflow.submitted", .workflow_id = id, .job_index = -1,
                    .state = "queued", .progress = -1};
    SQL_TRY(sql_event_append(st, &ev, NULL, err, errlen));
    ev.type = "workflow.queued";
    ev.queue_position = pos;
    return sql_event_append(st, &ev, NULL, err, errlen);
}

static const char SQL_ACTIVE_USERS_NOW[] = SQL_COUNT_ACTIVE_USERS;

/* Users with a running workflow, in the open transaction. */
static int active_users(sqlite_store *st, int *out, char *err, size_t errlen) {
    sqlite3_stmt *s = stmt_get(st, ST_ACTIVE_USERS, SQL_ACTIVE_USERS_NOW, err, errlen);
    if (s == NULL) return stmt_failed(st);
    int rc = TS_OK;
    if (sqlite3_step(s) == SQLITE_ROW) *out = sqlite3_column_int(s, 0);
    else rc = db_fail(st, err, errlen, "counting active users");
    stmt_done(s);
    return rc;
}

/* See backends.h. The spec is stored as its normalised JSON (every
 * default filled in), so a later build with other defaults reloads the
 * same workflow. */
int sqlite_submit_prepare(sqlite_store *st, store_submit_item *it) {
    it->spec_text = NULL;
    if (rows_submit_check(it->user, it->spec, in_txn(st), it->err, it->errlen) != TS_OK)
        return TS_ERR;
    it->spec_text = spec_to_text(it->spec, NULL);
    if (it->spec_text == NULL) {
        ts_errf(it->err, it->errlen, "store_submit: the spec could not be serialised");
        return TS_ERR;
    }
    return TS_OK;
}

int sqlite_submit_begin(sqlite_store *st, char *err, size_t errlen) {
    return sqlite_begin(st, err, errlen);
}

/* One item in its savepoint: its rows and events; *pos is the place in the
 * line of the previous item stored in this transaction (0: none yet), and
 * becomes this one's. */
static int store_item(sqlite_store *st, store_submit_item *it, int *pos) {
    int64_t id = 0;
    int rc = insert_workflow(st, it->user, it->spec, it->spec_text, it->now, &id, it->err,
                             it->errlen);
    if (rc == TS_OK) rc = insert_jobs(st, id, it->spec, it->err, it->errlen);
    /* Every workflow stored before this one in the transaction is queued
     * with a smaller id, so it stands right behind the previous one. */
    if (rc == TS_OK && *pos == 0) rc = sql_queue_position(st, id, pos, it->err, it->errlen);
    else if (rc == TS_OK) (*pos)++;
    if (rc == TS_OK) rc = submit_events(st, id, it->now, *pos, it->err, it->errlen);
    if (rc == TS_OK) {
        it->receipt.id = id;
        it->receipt.queue_position = *pos;
    }
    return rc;
}

/* Ends the transaction for every item after a failure that concerns them
 * all (rc and the message in err). */
static void fail_all(sqlite_store *st, store_submit_item *const *items, size_t n, int rc,
                     const char *err) {
    sqlite_rollback(st);
    for (size_t i = 0; i < n; i++) {
        items[i]->rc = rc;
        if (items[i]->err != err) ts_strlcpy(items[i]->err, err, items[i]->errlen);
    }
}

/* Runs a cached savepoint statement. */
static int savepoint(sqlite_store *st, stmt_id id, const char *sql, char *err, size_t errlen) {
    return run_simple(st, id, sql, err, errlen, "a submission's savepoint");
}

/*
 * See backends.h. A failure in one item's savepoint is rolled back to it
 * and is that item's alone, unless it ended the whole transaction (SQLite
 * rolls it all back on a full disk or an I/O error) or says the store is
 * unavailable: then nothing of the batch can be committed. Acknowledged
 * (rc TS_OK) means the COMMIT returned, the WAL fsynced (synchronous=FULL).
 */
void sqlite_submit_batch(sqlite_store *st, store_submit_item *const *items, size_t n) {
    char err[TS_ERRLEN];
    int pos = 0, users = 0, rc = active_users(st, &users, err, sizeof(err));
    if (rc != TS_OK) {
        fail_all(st, items, n, rc, err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_submit_item *it = items[i];
        int prev = pos;
        if ((rc = savepoint(st, ST_SAVEPOINT, "SAVEPOINT submission", err, sizeof(err))) != TS_OK) {
            fail_all(st, items, n, rc, err);
            return;
        }
        int64_t wake_seq = st->wake_seq; /* an item rolled back rings nobody */
        it->rc = store_item(st, it, &pos);
        if (it->rc == STORE_UNAVAILABLE || !in_txn(st)) {
            fail_all(st, items, n, it->rc != TS_OK ? it->rc : STORE_UNAVAILABLE, it->err);
            return;
        }
        if (it->rc != TS_OK) {
            pos = prev;
            st->wake_seq = wake_seq;
            rc = savepoint(st, ST_ROLLBACK_TO, "ROLLBACK TO submission", err, sizeof(err));
        }
        if (rc == TS_OK) rc = savepoint(st, ST_RELEASE, "RELEASE submission", err, sizeof(err));
        if (rc != TS_OK) {
            fail_all(st, items, n, rc, err);
            return;
        }
    }
    if ((rc = sqlite_commit(st, err, sizeof(err))) != TS_OK) {
        for (size_t i = 0; i < n; i++)
            if (items[i]->rc == TS_OK) {
                items[i]->rc = rc;
                ts_strlcpy(items[i]->err, err, items[i]->errlen);
            }
        return;
    }
    bool woken = false;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->rc != TS_OK) continue;
        items[i]->receipt.active_users = users;
        items[i]->receipt.wake = !woken;
        woken = true;
    }
}

void sqlite_submit_cache(sqlite_store *st, const store_submit_item *it) {
    rows_spec_cache_put(st->specs, it->receipt.id, it->now, strlen(it->spec_text), it->spec);
}

/*
 * A submission alone: a batch of one, in a transaction of its own. The
 * answer's read-back takes the parsed spec from the cache.
 */
int sqlite_submit(sqlite_store *st, const char *user, const spec_workflow *spec, double now,
                  store_receipt *out, char *err, size_t errlen) {
    store_submit_item it = {.user = user, .spec = spec, .now = now, .err = err, .errlen = errlen};
    store_submit_item *one = &it;
    it.rc = sqlite_submit_prepare(st, &it);
    if (it.rc == TS_OK) it.rc = sqlite_submit_begin(st, err, errlen);
    if (it.rc == TS_OK) sqlite_submit_batch(st, &one, 1);
    if (it.rc == TS_OK) {
        sqlite_submit_cache(st, &it);
        *out = it.receipt;
    }
    free(it.spec_text);
    return it.rc;
}
