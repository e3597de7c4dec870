/*
 * sqlite_walsync.c - store_sync and its pipelined halves (store.h,
 * store_sync_take): the WAL fsynced through a file handle of its own, so
 * that the fsync can run on another thread while the connection goes on
 * committing.
 *
 * Why a handle of its own: a connection and its file objects belong to one
 * thread at a time. Syncing the connection's own WAL object
 * (SQLITE_FCNTL_JOURNAL_POINTER) from another thread would race with its
 * writes, its checkpoints and its close. An fdatasync of any descriptor of
 * a file puts every write made to that file before the call on the device,
 * whichever descriptor made it; so a second handle on the same WAL does
 * what the connection's would. It is opened by SQLite's own name for the
 * WAL, through the connection's VFS (a test VFS that breaks fsyncs breaks
 * these too), with the flags SQLite opens a WAL with, CREATE included: the
 * unix VFS then fsyncs the directory at the handle's first sync, as it
 * does for SQLite's own WAL handle, in case the WAL is new.
 *
 * Invariants, kept here:
 *   - sq_walsync.taken counts the tickets taken on the handle's thread,
 *     each after its commits were written; an fsync that began after
 *     ticket n was taken covers tickets 1..n, so a run reads taken just
 *     before its fsync and, on success, records it in synced. A ticket
 *     with gen <= synced only rings: one fsync serves a group.
 *   - failed is sticky: after a failed fsync the kernel may have dropped
 *     the dirty pages and a later fsync succeeds without them, so no later
 *     ticket of that handle is trusted. The store drops the handle with
 *     its connection (store_sync_failed reconnects).
 *   - A handle lives while the connection that opened it does, or a ticket
 *     refers to it (refs); the unix VFS keeps a pointer to the file's
 *     name, which therefore lives as long as the handle.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/sqlite_internal.h"
#include "util/util.h"

struct sq_walsync {
    atomic_int refs;        /* the store's, while its connection lasts, and one per ticket */
    atomic_uint_fast64_t taken; /* tickets taken (see the invariants above) */
    pthread_mutex_t mu;     /* one fsync at a time; guards synced and failed */
    uint64_t synced;        /* every ticket up to this one is on stable storage */
    int failed;             /* the SQLite code of a failed fsync; 0 = none */
    sqlite3_file *file;     /* allocated with the VFS's szOsFile */
    char *name;             /* the WAL's path, two NULs at its end (SQLite's filename format) */
};

struct store_sync_ticket {
    sq_walsync *ws;
    uint64_t gen;     /* this ticket's number on ws */
    int64_t seq;      /* the newest event of its commits, rung after the fsync; 0 = none */
    sq_ringer *ringer; /* the store's; lives until store_close (tickets are freed first) */
    char path[256];   /* the database's, for messages */
};

/* SQLite's own name for the connection's WAL - from the database's full
 * path, symbolic links resolved, not st->path + "-wal", which names
 * another file when the path is a link - copied with the two NULs that
 * end an SQLite filename. NULL if the WAL is not there: the handle below
 * would create an empty one and sync that. */
static char *wal_name(sqlite_store *st) {
    const char *db = sqlite3_db_filename(st->db, "main");
    const char *wal = db ? sqlite3_filename_wal(db) : NULL;
    struct stat sb;
    if (wal == NULL || wal[0] == '\0' || stat(wal, &sb) != 0) return NULL;
    size_t n = strlen(wal);
    char *name = ts_calloc(1, n + 2);
    memcpy(name, wal, n);
    return name;
}

/* Opens the WAL of st's connection through its VFS; NULL with err when it
 * cannot (st must be connected). */
static sq_walsync *walsync_open(sqlite_store *st, char *err, size_t errlen) {
    sqlite3_vfs *vfs = NULL;
    char *name = NULL;
    if (st->db == NULL ||
        sqlite3_file_control(st->db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) != SQLITE_OK ||
        vfs == NULL || (name = wal_name(st)) == NULL) {
        ts_errf(err, errlen, "store unavailable: syncing the WAL of %s: %s", st->path,
                st->db == NULL ? "not connected" : "the WAL file is missing");
        return NULL;
    }
    sq_walsync *ws = ts_calloc(1, sizeof(*ws));
    ws->name = name;
    ws->file = ts_calloc(1, (size_t)vfs->szOsFile);
    int out = 0;
    int rc = vfs->xOpen(vfs, ws->name, ws->file,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, &out);
    if (rc != SQLITE_OK || ws->file->pMethods == NULL) {
        ts_errf(err, errlen, "store unavailable: opening the WAL of %s to sync it: %s", st->path,
                sqlite3_errstr(rc != SQLITE_OK ? rc : SQLITE_CANTOPEN));
        if (ws->file->pMethods != NULL) ws->file->pMethods->xClose(ws->file); /* as SQLite does */
        free(ws->file);
        free(ws->name);
        free(ws);
        return NULL;
    }
    atomic_init(&ws->refs, 1);
    atomic_init(&ws->taken, 0);
    pthread_mutex_init(&ws->mu, NULL);
    return ws;
}

void sq_walsync_release(sq_walsync *ws) {
    if (ws == NULL || atomic_fetch_sub(&ws->refs, 1) != 1) return;
    ws->file->pMethods->xClose(ws->file);
    pthread_mutex_destroy(&ws->mu);
    free(ws->file);
    free(ws->name);
    free(ws);
}

/* See store.h. A connection that is gone cannot say which WAL its commits
 * went to: unavailable, as store_sync always was then. */
int sqlite_sync_take(sqlite_store *st, store_sync_ticket **out, char *err, size_t errlen) {
    *out = NULL;
    if (!st->unsynced) return TS_OK;
    int64_t seq = st->unsynced_seq;
    st->unsynced = false;
    st->unsynced_seq = 0;
    if (st->walsync == NULL && (st->walsync = walsync_open(st, err, errlen)) == NULL) {
        st->broken = true;
        return STORE_UNAVAILABLE;
    }
    store_sync_ticket *t = ts_calloc(1, sizeof(*t));
    t->ws = st->walsync;
    atomic_fetch_add(&t->ws->refs, 1);
    t->gen = atomic_fetch_add(&t->ws->taken, 1) + 1;
    t->seq = seq;
    t->ringer = st->ringer;
    ts_strlcpy(t->path, st->path, sizeof(t->path));
    *out = t;
    return TS_OK;
}

/* See store.h and the invariants above. */
int sqlite_sync_ticket_run(store_sync_ticket *t, char *err, size_t errlen) {
    sq_walsync *ws = t->ws;
    pthread_mutex_lock(&ws->mu);
    int rc = ws->failed;
    if (rc == SQLITE_OK && t->gen > ws->synced) {
        uint64_t upto = atomic_load(&ws->taken);
        rc = ws->file->pMethods->xSync(ws->file, SQLITE_SYNC_NORMAL);
        if (rc == SQLITE_OK) ws->synced = upto;
        else ws->failed = rc;
    }
    pthread_mutex_unlock(&ws->mu);
    if (rc != SQLITE_OK) {
        ts_errf(err, errlen, "store unavailable: syncing the WAL of %s: %s", t->path,
                sqlite3_errstr(rc));
        return STORE_UNAVAILABLE;
    }
    if (t->seq > 0) sq_wake_ring(t->ringer, t->seq);
    return TS_OK;
}

void sqlite_sync_ticket_free(store_sync_ticket *t) {
    if (t == NULL) return;
    sq_walsync_release(t->ws);
    free(t);
}

void sqlite_sync_failed(sqlite_store *st) {
    st->broken = true;
}

/* See store.h: a take and its run on this thread. A failed fsync leaves
 * the handle broken (it reconnects) and nobody rung. */
int sqlite_sync(sqlite_store *st, char *err, size_t errlen) {
    store_sync_ticket *t = NULL;
    int rc = sqlite_sync_take(st, &t, err, errlen);
    if (rc == TS_OK && t != NULL) rc = sqlite_sync_ticket_run(t, err, errlen);
    sqlite_sync_ticket_free(t);
    if (rc != TS_OK) sqlite_sync_failed(st);
    return rc;
}
