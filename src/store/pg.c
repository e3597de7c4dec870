/*
 * pg.c - the PostgreSQL store: connecting, reconnecting, errors, statements,
 * transactions, stamping the events of a transaction at commit, and
 * store_submit (DESIGN §6, §9; docs/architecture.md).
 *
 * Durability. Every session sets synchronous_commit = on, whatever the
 * server's default: COMMIT returns only after the commit record is flushed,
 * so a TS_OK from store_commit/store_submit (and the 2xx built on it) means
 * committed on stable storage.
 *
 * Unavailability. A lost connection, a server shutting down or starting,
 * disk full, out of memory, an I/O error or corruption are STORE_UNAVAILABLE
 * (store.h). The next call outside a transaction reconnects, at most once
 * per backoff period (0.1 s doubling to 5 s), so a server that is down is
 * not hammered and one that is back is used again without a restart. A
 * connection lost inside a transaction leaves the handle refusing
 * everything until store_rollback: the caller must learn that its
 * transaction is gone.
 *
 * Events in commit order. A sequence is not a commit-ordered cursor:
 * nextval() is taken before commit and transactions commit out of order,
 * so a reader of "seq > X" would skip a row that commits late. Here the
 * events of a transaction are kept in the handle and stamped at the very
 * end, in the same statement that takes the one-row event_counter lock
 * (UPDATE ... RETURNING) and inserts them. The lock is held until COMMIT
 * returns, and PostgreSQL makes a commit visible before it releases the
 * transaction's locks; so the transaction that stamps seqs N+1.. starts
 * stamping only after the one that stamped ..N is visible, and no reader
 * can ever see N+1 without N. The price: commits that record events are
 * serialised over the counter for the length of one INSERT and the commit
 * flush (the same one-writer-at-a-time SQLite has); transactions without
 * events (reads, leases, commands) are not. The statement also sends one
 * NOTIFY tessera_events with the newest seq (at most once per commit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/rows.h"
#include "util/util.h"

#define PG_BACKOFF_MIN 0.1
#define PG_BACKOFF_MAX 5.0

/* ---- parameters ------------------------------------------------------------ */

void pgp_text(pg_params *p, const char *v) {
    p->v[p->n++] = v;
}

void pgp_int(pg_params *p, int64_t v) {
    snprintf(p->num[p->n], sizeof(p->num[0]), "%lld", (long long)v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

void pgp_double(pg_params *p, double v) {
    snprintf(p->num[p->n], sizeof(p->num[0]), "%.17g", v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

void pgp_bool(pg_params *p, bool v) {
    p->v[p->n++] = v ? "t" : "f";
}

const char *pg_text(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

int64_t pg_int(const PGresult *r, int row, int col) {
    const char *v = PQgetvalue(r, row, col);
    if (v[0] == 't' && v[1] == '\0') return 1; /* booleans read as 0/1 */
    return strtoll(v, NULL, 10);
}

double pg_double(const PGresult *r, int row, int col) {
    return strtod(PQgetvalue(r, row, col), NULL);
}

bool pg_null(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) != 0;
}

/* ---- errors ------------------------------------------------------------------ */

/* Which store code a server or connection error is (see the top). */
static int classify(const pg_store *st, const PGresult *r) {
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(st->conn) != CONNECTION_OK || code == NULL) return STORE_UNAVAILABLE;
    if (strncmp(code, "08", 2) == 0 || strncmp(code, "53", 2) == 0 ||
        strncmp(code, "58", 2) == 0 || strncmp(code, "57P", 3) == 0 ||
        strcmp(code, "XX001") == 0 || strcmp(code, "XX002") == 0 ||
        strcmp(code, "25006") == 0 /* read-only: a standby, not our primary */ ||
        strcmp(code, "57014") == 0 /* statement_timeout: the server is stuck */)
        return STORE_UNAVAILABLE;
    if (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0 || strcmp(code, "55P03") == 0)
        return STORE_CONFLICT;
    return TS_ERR;
}

/* Fills err with "what: message" (one line) and returns the store code. */
static int fail(pg_store *st, const PGresult *r, char *err, size_t errlen, const char *what) {
    const char *msg = r ? PQresultErrorMessage(r) : "";
    if (msg[0] == '\0') msg = PQerrorMessage(st->conn);
    char line[512];
    ts_strlcpy(line, msg[0] ? msg : "no answer from the server", sizeof(line));
    for (char *p = line; *p; p++)
        if (*p == '\n') *p = (p[1] ? ' ' : '\0');
    int rc = classify(st, r);
    if (rc == STORE_UNAVAILABLE && st->in_txn) st->txn_broken = true;
    ts_errf(err, errlen, "%s: %s%s", what, rc == STORE_UNAVAILABLE ? "PostgreSQL unavailable: " : "",
            line);
    return rc;
}

/* ---- connecting --------------------------------------------------------------- */

/* Settings every session gets, whatever the server's defaults (see the top;
 * idle_in_transaction_session_timeout also ends the transaction of a paused
 * leader, releasing the locks a successor waits for). */
static const char SESSION_SETTINGS[] =
    "SET synchronous_commit = on; SET statement_timeout = '30s'; SET lock_timeout = '10s';"
    " SET client_min_messages = warning;"
    " SET idle_in_transaction_session_timeout = '10s'; SET TimeZone = 'UTC'";

int pg_simple(pg_store *st, const char *sql, char *err, size_t errlen, const char *what) {
    PGresult *r = PQexec(st->conn, sql);
    int rc = TS_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = fail(st, r, err, errlen, what);
    PQclear(r);
    return rc;
}

/* The application_name of our connections: "tessera <instance>" once the
 * instance is named (pg_set_instance_name, configuration set before fork),
 * which is how store_instances finds the instances. 63 bytes: PostgreSQL's
 * limit (NAMEDATALEN - 1). */
static char app_name[64] = "tessera";

void pg_set_instance_name(const char *name) {
    snprintf(app_name, sizeof(app_name), "tessera%s%s", name && name[0] ? " " : "",
             name ? name : "");
}

/* Opens st->conn. Our defaults come before the URL, so that parameters in
 * the URL (sslmode, connect_timeout...) win. */
static int connect_now(pg_store *st, char *err, size_t errlen) {
    static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", "1", "5", "2", "3", "15000", app_name, st->url, NULL};
    PQfinish(st->conn);
    memset(st->prepared, 0, sizeof(st->prepared));
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (st->conn == NULL || PQstatus(st->conn) != CONNECTION_OK) {
        char line[512];
        ts_strlcpy(line, st->conn ? PQerrorMessage(st->conn) : "out of memory", sizeof(line));
        for (char *p = line; *p; p++)
            if (*p == '\n') *p = (p[1] ? ' ' : '\0');
        ts_errf(err, errlen, "PostgreSQL unavailable: cannot connect: %s", line);
        return STORE_UNAVAILABLE;
    }
    return pg_simple(st, SESSION_SETTINGS, err, errlen, "configuring the session");
}

/* A usable connection, reconnecting with backoff (see the top). */
static int ensure_connected(pg_store *st, char *err, size_t errlen) {
    if (st->txn_broken) {
        ts_errf(err, errlen, "PostgreSQL unavailable: the connection was lost inside a "
                             "transaction (roll it back)");
        return STORE_UNAVAILABLE;
    }
    if (st->conn != NULL && PQstatus(st->conn) == CONNECTION_OK) return TS_OK;
    if (st->in_txn) {
        st->txn_broken = true;
        ts_errf(err, errlen, "PostgreSQL unavailable: the connection was lost inside a "
                             "transaction");
        return STORE_UNAVAILABLE;
    }
    double now = ts_monotonic();
    if (now < st->retry_at) {
        ts_errf(err, errlen, "PostgreSQL unavailable: reconnecting (next try in %.1f s)",
                st->retry_at - now);
        return STORE_UNAVAILABLE;
    }
    int rc = connect_now(st, err, errlen);
    if (rc == TS_OK) {
        st->backoff = 0;
        return TS_OK;
    }
    st->backoff = st->backoff < PG_BACKOFF_MIN ? PG_BACKOFF_MIN : st->backoff * 2;
    if (st->backoff > PG_BACKOFF_MAX) st->backoff = PG_BACKOFF_MAX;
    st->retry_at = now + st->backoff;
    return STORE_UNAVAILABLE;
}

/* ---- statements ------------------------------------------------------------------ */

int pg_run(pg_store *st, pg_stmt id, const char *sql, const pg_params *p, PGresult **res,
           char *err, size_t errlen, const char *what) {
    char name[16];
    *res = NULL;
    int rc = ensure_connected(st, err, errlen);
    if (rc != TS_OK) return rc;
    snprintf(name, sizeof(name), "t%d", (int)id);
    if (!st->prepared[id]) {
        PGresult *r = PQprepare(st->conn, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = fail(st, r, err, errlen, what);
            PQclear(r);
            return rc;
        }
        PQclear(r);
        st->prepared[id] = true;
    }
    PGresult *r = PQexecPrepared(st->conn, name, p ? p->n : 0, p ? p->v : NULL, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        *res = r;
        return TS_OK;
    }
    rc = fail(st, r, err, errlen, what);
    PQclear(r);
    return rc;
}

int pg_exec(pg_store *st, pg_stmt id, const char *sql, const pg_params *p, long *changed,
            char *err, size_t errlen, const char *what) {
    PGresult *r = NULL;
    int rc = pg_run(st, id, sql, p, &r, err, errlen, what);
    if (rc == TS_OK && changed != NULL) {
        const char *n = PQcmdTuples(r);
        *changed = n[0] ? strtol(n, NULL, 10) : PQntuples(r);
    }
    PQclear(r);
    return rc;
}

/* ---- opening -------------------------------------------------------------------- */

/* Connects and migrates. A server that cannot be reached is STORE_UNAVAILABLE
 * (a caller may retry); anything else (bad URL, authentication, a schema
 * newer than this build) is TS_ERR. */
int pg_open(const char *url, pg_store **out, char *err, size_t errlen) {
    *out = NULL;
    pg_store *st = ts_calloc(1, sizeof(*st));
    st->url = ts_strdup(url);
    st->specs = rows_spec_cache_new();
    int rc = connect_now(st, err, errlen);
    if (rc == STORE_UNAVAILABLE && st->conn != NULL && PQstatus(st->conn) == CONNECTION_BAD &&
        strstr(err, "authentication") != NULL)
        rc = TS_ERR;
    if (rc == TS_OK) rc = pg_migrate(st, err, errlen);
    if (rc != TS_OK) {
        pg_close(st);
        return rc;
    }
    *out = st;
    return TS_OK;
}

/*
 * For every process but the one that owns start-up (which migrated with
 * pg_open): never creates or migrates. A server that cannot be reached now
 * still gives a handle (its calls are STORE_UNAVAILABLE until it connects,
 * by itself, with backoff); a reachable database with another schema
 * version is TS_ERR (run the matching tessera, or let serve's master
 * migrate first).
 */
int pg_open_existing(const char *url, pg_store **out, char *err, size_t errlen) {
    *out = NULL;
    pg_store *st = ts_calloc(1, sizeof(*st));
    st->url = ts_strdup(url);
    st->specs = rows_spec_cache_new();
    int rc = connect_now(st, err, errlen);
    if (rc == TS_OK) {
        int v = pg_schema_version(st);
        if (v != PG_SCHEMA_VERSION) {
            ts_errf(err, errlen, "the database %s has schema version %d, this build needs %d: "
                                 "start `tessera serve` (which migrates) with this build first",
                    url, v, PG_SCHEMA_VERSION);
            pg_close(st);
            return TS_ERR;
        }
    } else if (rc == STORE_UNAVAILABLE) {
        st->retry_at = ts_monotonic() + PG_BACKOFF_MIN;
        st->backoff = PG_BACKOFF_MIN;
    } else {
        pg_close(st);
        return rc;
    }
    *out = st;
    return TS_OK;
}

/* Readiness: one round trip on this handle's connection (reconnecting if
 * due). PostgreSQL checks its own storage; nothing cheaper says more. */
int pg_probe(pg_store *st, char *err, size_t errlen) {
    if (st->in_txn) return TS_OK; /* in use, so alive */
    int rc = ensure_connected(st, err, errlen);
    return rc == TS_OK ? pg_simple(st, "SELECT 1", err, errlen, "probing the database") : rc;
}

/* PostgreSQL verifies its pages itself (checksums, when the cluster has
 * them); a full check (amcheck) is the DBA's. Here: the server answers and
 * the schema is the one this build knows. */
int pg_integrity_check(pg_store *st, char *err, size_t errlen) {
    int rc = pg_probe(st, err, errlen);
    if (rc == TS_OK && pg_schema_version(st) != PG_SCHEMA_VERSION) {
        ts_errf(err, errlen, "the database's schema version is not %d", PG_SCHEMA_VERSION);
        rc = STORE_UNAVAILABLE;
    }
    return rc;
}

/* See store_share_spec_cache. */
void pg_share_specs(pg_store *st, pg_store *with) {
    rows_spec_cache *c = rows_spec_cache_retain(with->specs);
    rows_spec_cache_release(st->specs);
    st->specs = c;
}

/* Closing the connection rolls back an open transaction on the server. */
void pg_close(pg_store *st) {
    if (st == NULL) return;
    PQfinish(st->conn);
    json_decref(st->events);
    rows_spec_cache_release(st->specs);
    free(st->url);
    free(st);
}

/* ---- transactions ------------------------------------------------------------------ */

static void txn_reset(pg_store *st) {
    st->in_txn = st->txn_broken = st->slots_locked = st->leader_write = st->work_notify = false;
    json_decref(st->events);
    st->events = NULL;
}

int pg_begin(pg_store *st, char *err, size_t errlen) {
    if (st->in_txn) {
        ts_errf(err, errlen, "store_begin: a transaction is already open (they do not nest)");
        return TS_ERR;
    }
    int rc = ensure_connected(st, err, errlen);
    if (rc == TS_OK) rc = pg_simple(st, "BEGIN", err, errlen, "starting a transaction");
    if (rc == TS_OK) {
        txn_reset(st);
        st->in_txn = true;
    }
    return rc;
}

void pg_rollback(pg_store *st) {
    if (st->in_txn && st->conn != NULL && PQstatus(st->conn) == CONNECTION_OK) {
        PGresult *r = PQexec(st->conn, "ROLLBACK");
        PQclear(r);
    }
    txn_reset(st);
}

static const char SQL_FENCE[] =
    "SELECT term FROM leader WHERE name = 'scheduler' AND owner = $1 AND term = $2"
    " AND expires_at > clock_timestamp() FOR SHARE";

/* A leader-only write commits only while this handle's lead (owner, term)
 * is valid on the database clock. FOR SHARE keeps a successor from taking
 * the lease until this transaction ends, so the check cannot go stale
 * between here and COMMIT. */
static int fence(pg_store *st, char *err, size_t errlen) {
    pg_params p = {0};
    long n = 0;
    pgp_text(&p, st->lead_owner);
    pgp_int(&p, st->lead_term);
    int rc = pg_exec(st, PS_FENCE, SQL_FENCE, &p, &n, err, errlen, "checking the lead");
    if (rc == TS_OK && n != 1) {
        ts_errf(err, errlen, "fenced: %s no longer leads (term %lld); nothing was written",
                st->lead_owner, (long long)st->lead_term);
        rc = STORE_CONFLICT;
    }
    return rc;
}

/* See the top of the file. The events travel as one JSON array; the user
 * is taken from the workflow row and the job id from the job row, so an
 * event can never be filed under the wrong user. */
static const char SQL_FLUSH_EVENTS[] =
    "WITH c AS (UPDATE event_counter SET last_seq = last_seq + $2"
    "  RETURNING last_seq, last_seq - $2 AS base),"
    " ins AS (INSERT INTO events (seq, ts, type, user_id, workflow_id, job_id, state, progress,"
    "  message, attempt, queue_position)"
    "  SELECT c.base + e.i, e.ts, e.type, w.user_id, e.wf, j.job_id, e.state, e.progress,"
    "   e.message, e.attempt, e.qpos"
    "  FROM c, jsonb_to_recordset($1::jsonb) AS e(i bigint, ts float8, type text, wf bigint,"
    "   idx int, state text, progress float8, message text, attempt int, qpos int)"
    "  JOIN workflows w ON w.id = e.wf"
    "  LEFT JOIN jobs j ON j.workflow_id = e.wf AND j.idx = e.idx)"
    " SELECT last_seq, pg_notify('" PG_CHANNEL_EVENTS "', last_seq::text) FROM c";

static int flush_events(pg_store *st, char *err, size_t errlen) {
    size_t n = json_array_size(st->events);
    if (n == 0) return TS_OK;
    char *text = json_dumps(st->events, JSON_COMPACT);
    if (text == NULL) {
        ts_errf(err, errlen, "recording events: out of memory");
        return TS_ERR;
    }
    pg_params p = {0};
    PGresult *r = NULL;
    pgp_text(&p, text);
    pgp_int(&p, (int64_t)n);
    int rc = pg_run(st, PS_FLUSH_EVENTS, SQL_FLUSH_EVENTS, &p, &r, err, errlen,
                    "recording events");
    if (rc == TS_OK) st->last_seq = pg_int(r, 0, 0);
    PQclear(r);
    free(text);
    return rc;
}

/* COMMIT itself; an aborted transaction answers COMMIT with ROLLBACK. */
static int commit_now(pg_store *st, char *err, size_t errlen) {
    PGresult *r = PQexec(st->conn, "COMMIT");
    int rc = TS_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = fail(st, r, err, errlen, "committing");
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        ts_errf(err, errlen, "committing: the transaction had failed and was rolled back");
        rc = TS_ERR;
    }
    PQclear(r);
    return rc;
}

/*
 * Commits: the fence (leader-only writes), the events stamped in commit
 * order, the scheduler's wake-up, then COMMIT. On any failure everything is
 * rolled back and the handle is usable again (after a reconnect if the
 * connection was lost: then it is unknown whether COMMIT took effect, and
 * the caller reports STORE_UNAVAILABLE rather than success).
 */
/* Commits stay synchronous on PostgreSQL (store.h, deferred sync): the
 * server flushes concurrent commits together already, and a deferred flush
 * would need a commit of its own to wait for. */
int pg_set_deferred_sync(pg_store *st, bool on, char *err, size_t errlen) {
    (void)st;
    (void)on;
    (void)err;
    (void)errlen;
    return TS_OK;
}

int pg_sync(pg_store *st, char *err, size_t errlen) {
    (void)st;
    (void)err;
    (void)errlen;
    return TS_OK;
}

int pg_sync_take(pg_store *st, store_sync_ticket **out, char *err, size_t errlen) {
    (void)st;
    (void)err;
    (void)errlen;
    *out = NULL;
    return TS_OK;
}

void pg_sync_failed(pg_store *st) {
    (void)st;
}

int pg_checkpoint(pg_store *st, int64_t max_bytes, int64_t *wal_bytes, char *err,
                  size_t errlen) {
    (void)st;
    (void)max_bytes;
    (void)err;
    (void)errlen;
    if (wal_bytes) *wal_bytes = 0;
    return TS_OK;
}

int pg_commit(pg_store *st, char *err, size_t errlen) {
    if (!st->in_txn) {
        ts_errf(err, errlen, "store_commit: no transaction is open");
        return TS_ERR;
    }
    int rc = ensure_connected(st, err, errlen);
    if (rc == TS_OK && st->leader_write && st->lead_term > 0) rc = fence(st, err, errlen);
    if (rc == TS_OK) rc = flush_events(st, err, errlen);
    if (rc == TS_OK && st->work_notify)
        rc = pg_simple(st, "NOTIFY " PG_CHANNEL_WORK, err, errlen, "waking the scheduler");
    if (rc == TS_OK) rc = commit_now(st, err, errlen);
    if (rc != TS_OK) pg_rollback(st);
    txn_reset(st);
    return rc;
}

int pg_txn_enter(pg_store *st, bool *own, char *err, size_t errlen) {
    *own = !st->in_txn;
    return *own ? pg_begin(st, err, errlen) : TS_OK;
}

int pg_txn_end(pg_store *st, bool own, int rc, char *err, size_t errlen) {
    if (!own) return rc;
    if (rc != TS_OK) {
        pg_rollback(st);
        return rc;
    }
    return pg_commit(st, err, errlen);
}

int pg_read_enter(pg_store *st, bool *own, char *err, size_t errlen) {
    *own = !st->in_txn;
    if (!*own) return TS_OK;
    int rc = ensure_connected(st, err, errlen);
    if (rc == TS_OK)
        rc = pg_simple(st, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen,
                       "starting a read");
    if (rc == TS_OK) {
        txn_reset(st);
        st->in_txn = true;
    }
    return rc;
}

void pg_read_end(pg_store *st, bool own) {
    if (own) pg_rollback(st);
}

static const char SQL_SLOTS_LOCK[] = "SELECT pg_advisory_xact_lock($1)";

/*
 * Claims and admissions check a global sum (running cpus, active users)
 * and then write: two transactions doing that at once on different rows
 * would both see room for one more. The advisory transaction lock
 * PG_LOCK_SLOTS makes them take turns across every scheduler, process and
 * instance; under READ COMMITTED each statement after it sees what the
 * previous holder committed (released only after its commit is visible).
 * Transaction-scoped, so it survives transaction poolers and cannot leak.
 */
int pg_slots_lock(pg_store *st, char *err, size_t errlen) {
    if (st->slots_locked) return TS_OK;
    pg_params p = {0};
    pgp_int(&p, PG_LOCK_SLOTS);
    int rc = pg_exec(st, PS_SLOTS_LOCK, SQL_SLOTS_LOCK, &p, NULL, err, errlen,
                     "waiting for the limits lock");
    if (rc == TS_OK) st->slots_locked = true;
    return rc;
}

void pg_event_add(pg_store *st, const pg_event *ev) {
    if (st->events == NULL) st->events = json_array();
    json_t *o = json_pack("{sI sf ss sI si}", "i", (json_int_t)json_array_size(st->events) + 1,
                          "ts", ev->ts, "type", ev->type, "wf", (json_int_t)ev->workflow_id,
                          "idx", (int)ev->job_index);
    if (ev->state) json_object_set_new(o, "state", json_string(ev->state));
    if (ev->progress >= 0) json_object_set_new(o, "progress", json_real(ev->progress));
    if (ev->message && ev->message[0])
        json_object_set_new(o, "message", rows_json_string(ev->message));
    if (ev->attempt > 0) json_object_set_new(o, "attempt", json_integer(ev->attempt));
    if (ev->queue_position > 0)
        json_object_set_new(o, "qpos", json_integer(ev->queue_position));
    json_array_append_new(st->events, o);
}
