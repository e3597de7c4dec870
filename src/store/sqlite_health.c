/*
 * sqlite_health.c - whether the SQLite store can be used now, and keeping
 * it that way: classifying errors, connecting (never creating, except for
 * the process that owns start-up), noticing a database file deleted or
 * replaced under an open handle, reconnecting, the readiness probe and the
 * integrity check (store.h, "Storage faults").
 *
 * Why a handle checks the file's identity: SQLite keeps using the inode it
 * opened. After `rm tessera.db*` every commit still succeeds - into an
 * unlinked file that vanishes with the last handle - and a process started
 * later would create a fresh, empty file at the path: two processes then
 * answer from two databases. The check is one stat() of the database (via
 * SQLITE_FCNTL_HAS_MOVED, which compares with the inode SQLite has open)
 * and one of its WAL, at the start of every transaction and after every
 * commit; the WAL is never deleted while a connection is open (the last
 * one to close deletes it), so a different inode means it was replaced.
 * A handle that saw its file go stays unavailable for good (it is fenced):
 * reconnecting to a file put in its place while other processes still
 * have the old one and its WAL open could mix the two; the operator
 * restarts the service after restoring a file (README, "Storage faults").
 * Other failures (a full disk, an I/O error) only make the handle
 * reconnect before its next use, so the service comes back by itself.
 *
 * Corruption is remembered in a marker file beside the database
 * ("PATH-corrupt", holding SQLite's message), so that every process - not
 * only the one whose query touched the bad page - answers /readyz with
 * not-ready; a passing store_integrity_check (serve and run do one at
 * start) removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/sqlite_internal.h"
#include "util/util.h"

#define BUSY_TIMEOUT_MS 10000
#define PROBE_MIN_FREE_BYTES (1024.0 * 1024.0)

/*
 * Waiting for another connection's write lock (BUSY_TIMEOUT_MS at most).
 * SQLite's own busy timeout sleeps 1, 2, 5, 10 ... then 100 ms between
 * tries: behind a stream of short write transactions from other processes
 * (HTTP workers' commits of a few ms each, the scheduler's) a waiter that
 * reached the long sleeps kept losing the lock to newcomers and waited up
 * to seconds. Short sleeps (about 0.2 ms, then 1 ms after a while) give
 * the lock to waiters about as soon as it is free; a try is a lock call on
 * the file, cheap next to the fsync the holder waits for.
 */
static int busy_wait(void *arg, int tries) {
    sqlite_store *st = arg;
    double now = ts_monotonic();
    if (tries == 0) st->busy_since = now;
    if (now - st->busy_since >= BUSY_TIMEOUT_MS / 1000.0) return 0;
    usleep(tries < 100 ? 200 : 1000);
    return 1;
}

/* PATH + suffix ("-wal", "-corrupt") into buf (n > 0), cut to fit. Two
 * copies, not snprintf: the WAL's name is made for every statement's
 * identity check (file_moved). */
static void sibling(const sqlite_store *st, const char *suffix, char *buf, size_t n) {
    size_t a = strnlen(st->path, n - 1);
    memcpy(buf, st->path, a);
    size_t b = strnlen(suffix, n - 1 - a);
    memcpy(buf + a, suffix, b);
    buf[a + b] = '\0';
}

/* Flags the file as corrupt and writes why into PATH-corrupt (best effort:
 * on a full disk only this process knows). Not while the file is first
 * opened: a process that cannot open it says so and stops or retries. */
static void mark_corrupt(sqlite_store *st, const char *why) {
    char marker[PATH_MAX + 16];
    struct stat sb;
    if (st->corrupt) return;
    st->corrupt = true;
    st->db_ino = stat(st->path, &sb) == 0 ? (unsigned long long)sb.st_ino : 0;
    if (!st->connected_once) return;
    sibling(st, "-corrupt", marker, sizeof(marker));
    int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    char text[600];
    int len = snprintf(text, sizeof(text), "%s: %s\n", st->path, why);
    if (len > 0 && write(fd, text, (size_t)len) < 0) { /* the flag in memory stays */ }
    close(fd);
}

/* See sqlite_internal.h. BUSY is "not now" but leaves the connection
 * sound; the others may leave it in an error state (an I/O error in WAL
 * mode does), so the handle reconnects before its next use. */
int sql_classify(sqlite_store *st, int code) {
    switch (code & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        mark_corrupt(st, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(code));
        /* fallthrough */
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
        st->broken = true;
        return STORE_UNAVAILABLE;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STORE_UNAVAILABLE;
    default:
        return TS_ERR;
    }
}

/* Frees the statements before closing: sqlite3_close refuses a connection
 * with unfinalized statements. */
void sql_disconnect(sqlite_store *st) {
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(st->stmts[i]);
        st->stmts[i] = NULL;
    }
    sqlite3_close(st->db);
    st->db = NULL;
    st->wal_known = false;
    sq_walsync_release(st->walsync); /* the next connection's WAL may be another file */
    st->walsync = NULL;
}

/* Runs a pragma and returns its first column's text in buf (if buf). */
static int pragma(sqlite_store *st, const char *sql, char *buf, size_t buflen, char *err,
                  size_t errlen) {
    sqlite3_stmt *s = NULL;
    int rc = TS_ERR;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) goto fail;
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE) goto fail;
    if (buf != NULL) ts_strlcpy(buf, step == SQLITE_ROW ? col_text(s, 0) : "", buflen);
    rc = TS_OK;
    goto cleanup;

fail:
    ts_errf(err, errlen, "%s: %s", sql, sqlite3_errmsg(st->db));
    rc = sql_classify(st, sqlite3_extended_errcode(st->db));
cleanup:
    sqlite3_finalize(s);
    return rc;
}

/*
 * The connection's settings, and why:
 *   - journal_mode=WAL: readers (HTTP workers) never block the writer (the
 *     scheduler) and vice versa; one writer at a time.
 *   - synchronous=FULL: a commit is on stable storage when it returns; see
 *     sqlite.c.
 *   - foreign_keys=ON: deleting a workflow cascades to its jobs, attempts,
 *     events and commands.
 *   - busy timeout 10 s (busy_wait): writers queue for the lock instead of
 *     failing.
 */
int sql_configure(sqlite_store *st, char *err, size_t errlen) {
    char mode[32];
    int rc;
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_handler(st->db, busy_wait, st);
    if ((rc = pragma(st, "PRAGMA journal_mode=WAL", mode, sizeof(mode), err, errlen)) != TS_OK)
        return rc;
    if (strcmp(mode, "wal") != 0) {
        ts_errf(err, errlen,
                "cannot open database %s: WAL mode refused (journal mode is \"%s\"); "
                "the database must be on a local disk",
                st->path, mode);
        return TS_ERR;
    }
    if ((rc = pragma(st, st->deferred_sync ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL",
                     NULL, 0, err, errlen)) != TS_OK)
        return rc;
    return pragma(st, "PRAGMA foreign_keys=ON", NULL, 0, err, errlen);
}

/* Remembers the WAL this connection has open (after its first read the
 * WAL exists and cannot be deleted by another connection's close). */
static void learn_wal(sqlite_store *st) {
    char wal[PATH_MAX + 8];
    struct stat sb;
    sibling(st, "-wal", wal, sizeof(wal));
    if (st->wal_known || stat(wal, &sb) != 0) return;
    st->wal_dev = (unsigned long long)sb.st_dev;
    st->wal_ino = (unsigned long long)sb.st_ino;
    st->wal_known = true;
}

/* True (with st->why) if the database or its WAL at the path is no longer
 * the file this connection has open. */
static bool file_moved(sqlite_store *st) {
    int moved = 0;
    char wal[PATH_MAX + 8];
    struct stat sb;
    if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
        moved) {
        ts_errf(st->why, sizeof(st->why),
                 "the database file %s was deleted, moved or replaced while in use", st->path);
        return true;
    }
    if (!st->wal_known) {
        learn_wal(st);
        return false;
    }
    sibling(st, "-wal", wal, sizeof(wal));
    if (stat(wal, &sb) != 0 || (unsigned long long)sb.st_dev != st->wal_dev ||
        (unsigned long long)sb.st_ino != st->wal_ino) {
        ts_errf(st->why, sizeof(st->why),
                 "the database's WAL file %s was deleted or replaced while in use", wal);
        return true;
    }
    return false;
}

/* A file that is not there is not opened: SQLite would create it, or say
 * only "unable to open database file". */
static int connect_missing(sqlite_store *st, char *err, size_t errlen) {
    struct stat sb;
    if (stat(st->path, &sb) == 0) return TS_OK;
    ts_errf(err, errlen,
            "the database file %s does not exist (%s); only `tessera serve` or `tessera run` "
            "create it, at start: restore it from a backup and restart the service",
            st->path, strerror(errno));
    return STORE_UNAVAILABLE;
}

/* An existing file must have been created and migrated by the master: a
 * process that found an empty or older file must not make it current. */
static int connect_version(sqlite_store *st, char *err, size_t errlen) {
    int version = 0, rc = sql_schema_read(st, &version, err, errlen);
    if (rc != TS_OK) return rc;
    if (version == SQL_SCHEMA_VERSION) return TS_OK;
    ts_errf(err, errlen,
            "the database %s has schema version %d, this build expects %d: %s", st->path,
            version, SQL_SCHEMA_VERSION,
            version < SQL_SCHEMA_VERSION
                ? "only `tessera serve` or `tessera run` create or migrate it, at start"
                : "run a newer tessera");
    return STORE_UNAVAILABLE;
}

/* See sqlite_internal.h. Failures leave the handle disconnected, the
 * reason in err and (for STORE_UNAVAILABLE) in st->why. */
int sql_connect(sqlite_store *st, bool create, char *err, size_t errlen) {
    int rc = create ? TS_OK : connect_missing(st, err, errlen);
    if (rc != TS_OK) goto fail;
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    int orc = sqlite3_open_v2(st->path, &st->db, flags, NULL);
    if (orc != SQLITE_OK) {
        ts_errf(err, errlen, "cannot open database %s: %s", st->path,
                st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(orc));
        rc = sql_classify(st, orc);
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_handler(st->db, busy_wait, st);
    if (!create && (rc = connect_version(st, err, errlen)) != TS_OK) goto fail;
    if ((rc = sql_configure(st, err, errlen)) != TS_OK) goto fail;
    if (create && (rc = sql_migrate(st, err, errlen)) != TS_OK) goto fail;
    learn_wal(st);
    if (file_moved(st)) { /* replaced between open and now */
        ts_strlcpy(err, st->why, errlen);
        rc = STORE_UNAVAILABLE;
        goto fail;
    }
    struct stat sb;
    if (st->corrupt && stat(st->path, &sb) == 0 && (unsigned long long)sb.st_ino != st->db_ino)
        st->corrupt = false; /* another file now: judge it afresh */
    st->broken = false;
    st->connected_once = true;
    st->why[0] = '\0';
    return TS_OK;

fail:
    ts_strlcpy(st->why, err, sizeof(st->why));
    sql_disconnect(st);
    return rc;
}

/* STORE_UNAVAILABLE with st->why in err. */
static int unavailable(sqlite_store *st, char *err, size_t errlen) {
    ts_errf(err, errlen, "store unavailable: %s", st->why);
    return STORE_UNAVAILABLE;
}

/* See sqlite_internal.h. Inside a transaction the checks were done when it
 * began, and a reconnect would lose it. */
int sql_usable(sqlite_store *st, char *err, size_t errlen) {
    if (st->db != NULL && !sqlite3_get_autocommit(st->db)) return TS_OK;
    if (!st->moved && st->db != NULL && !st->broken) {
        if (!file_moved(st)) return TS_OK;
        st->moved = true;
    }
    if (st->db != NULL) sql_disconnect(st);
    if (st->moved) return unavailable(st, err, errlen);
    char cerr[TS_ERRLEN];
    if (sql_connect(st, false, cerr, sizeof(cerr)) == TS_OK) return TS_OK;
    return unavailable(st, err, errlen);
}

/* See sqlite_internal.h. The commit went to the inode SQLite had open; if
 * that is no longer the file at the path, nobody will read it again. A
 * deferred commit (store_sync) rings its listeners after its fsync. */
int sql_after_commit(sqlite_store *st, char *err, size_t errlen) {
    int64_t seq = st->wake_seq;
    st->wake_seq = 0;
    if (st->db == NULL || !file_moved(st)) {
        if (st->deferred_sync) {
            st->unsynced = true;
            if (seq > st->unsynced_seq) st->unsynced_seq = seq;
        } else if (seq > 0) {
            sq_wake_ring(st->ringer, seq); /* committed and durable: readers may look now */
        }
        return TS_OK;
    }
    st->moved = true;
    ts_errf(err, errlen, "store unavailable: %s; the last write is not kept", st->why);
    return STORE_UNAVAILABLE;
}

/* ---- readiness and integrity ---------------------------------------------------- */

/* The file system holding the database: read-only, or too full to write. */
static int probe_space(sqlite_store *st, char *err, size_t errlen) {
    char dir[PATH_MAX];
    struct statvfs vs;
    ts_strlcpy(dir, st->path, sizeof(dir));
    char *slash = strrchr(dir, '/');
    if (slash == NULL) ts_strlcpy(dir, ".", sizeof(dir));
    else if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    if (statvfs(dir, &vs) != 0) {
        ts_errf(err, errlen, "store unavailable: cannot inspect %s: %s", dir, strerror(errno));
        return STORE_UNAVAILABLE;
    }
    if (vs.f_flag & ST_RDONLY) {
        ts_errf(err, errlen, "store unavailable: the file system of %s is read-only", dir);
        return STORE_UNAVAILABLE;
    }
    double free_bytes = (double)vs.f_bavail * (double)vs.f_frsize;
    if (free_bytes < PROBE_MIN_FREE_BYTES) {
        ts_errf(err, errlen, "store unavailable: the file system of %s is full (%.0f bytes free)",
                dir, free_bytes);
        return STORE_UNAVAILABLE;
    }
    return TS_OK;
}

/* Corruption seen by this process, or by any process (the marker). */
static int probe_corrupt(sqlite_store *st, char *err, size_t errlen) {
    char marker[PATH_MAX + 16];
    struct stat sb;
    sibling(st, "-corrupt", marker, sizeof(marker));
    if (!st->corrupt && lstat(marker, &sb) != 0) return TS_OK;
    ts_errf(err, errlen,
            "store unavailable: the database %s is corrupt (see %s); restore it from a backup "
            "and restart the service",
            st->path, marker);
    return STORE_UNAVAILABLE;
}

/*
 * See store.h. The read is of the schema version and the newest event:
 * it starts a read transaction (the WAL index), reads page 1 and walks the
 * events b-tree, which every worker reads all the time anyway.
 */
int sqlite_probe(sqlite_store *st, char *err, size_t errlen) {
    int rc, version = 0;
    if ((rc = sql_usable(st, err, errlen)) != TS_OK) return rc;
    if ((rc = probe_corrupt(st, err, errlen)) != TS_OK) return rc;
    if ((rc = probe_space(st, err, errlen)) != TS_OK) return rc;
    if ((rc = sql_schema_read(st, &version, err, errlen)) != TS_OK) return rc;
    int64_t seq = 0;
    return sqlite_events_last_seq(st, &seq, err, errlen);
}

/* Collects quick_check's first rows into err. */
static int quick_check_rows(sqlite_store *st, sqlite3_stmt *s, char *err, size_t errlen) {
    char found[400] = "";
    int step, rows = 0;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *line = col_text(s, 0);
        if (strcmp(line, "ok") == 0) continue;
        if (rows++ < 3) {
            size_t used = strlen(found);
            snprintf(found + used, sizeof(found) - used, "%s%s", used ? "; " : "", line);
        }
    }
    if (step != SQLITE_DONE) {
        int code = sqlite3_extended_errcode(st->db) & 0xff;
        ts_errf(err, errlen, "store unavailable: the database %s %s: %s", st->path,
                code == SQLITE_CORRUPT || code == SQLITE_NOTADB ? "is corrupt"
                                                                 : "could not be checked",
                sqlite3_errmsg(st->db));
        sql_classify(st, code);
        return STORE_UNAVAILABLE;
    }
    if (rows == 0) return TS_OK;
    ts_errf(err, errlen, "the database %s is corrupt (PRAGMA quick_check: %s%s)", st->path, found,
            rows > 3 ? "; ..." : "");
    mark_corrupt(st, err);
    return STORE_UNAVAILABLE;
}

/* See store.h. */
int sqlite_integrity_check(sqlite_store *st, char *err, size_t errlen) {
    sqlite3_stmt *s = NULL;
    char marker[PATH_MAX + 16];
    int rc = sql_usable(st, err, errlen);
    if (rc != TS_OK) return rc;
    if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL) != SQLITE_OK) {
        ts_errf(err, errlen, "store unavailable: the integrity check of %s failed: %s", st->path,
                sqlite3_errmsg(st->db));
        sql_classify(st, sqlite3_extended_errcode(st->db));
        sqlite3_finalize(s);
        return STORE_UNAVAILABLE;
    }
    rc = quick_check_rows(st, s, err, errlen);
    sqlite3_finalize(s);
    if (rc != TS_OK) return rc;
    st->corrupt = false;
    sibling(st, "-corrupt", marker, sizeof(marker));
    unlink(marker);
    return TS_OK;
}

/* The size of the WAL file, 0 when there is none. */
static int64_t wal_size(const sqlite_store *st) {
    char wal[PATH_MAX + 8];
    struct stat sb;
    sibling(st, "-wal", wal, sizeof(wal));
    return stat(wal, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

/* See store.h. A TRUNCATE checkpoint: it waits (busy handler) for readers
 * of older snapshots, copies every frame into the database, fsyncs it and
 * truncates the WAL to zero bytes. SQLITE_BUSY (a reader stayed past the
 * busy timeout, or another checkpoint ran) is not a failure: the next
 * heartbeat tries again. Only a large log is worth it: each checkpoint is
 * an fsync of the database file. */
int sqlite_checkpoint(sqlite_store *st, int64_t max_bytes, int64_t *wal_bytes, char *err,
                      size_t errlen) {
    int64_t size = wal_size(st);
    if (wal_bytes) *wal_bytes = size;
    if (size <= max_bytes) return TS_OK;
    int rc = sql_usable(st, err, errlen);
    if (rc != TS_OK) return rc;
    if (!sqlite3_get_autocommit(st->db)) {
        ts_errf(err, errlen, "checkpointing %s: a transaction is open on this connection",
                st->path);
        return TS_ERR;
    }
    int frames = 0, copied = 0;
    int sq = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_TRUNCATE, &frames, &copied);
    if (sq != SQLITE_OK && sq != SQLITE_BUSY) {
        ts_errf(err, errlen, "store unavailable: checkpointing the WAL of %s: %s", st->path,
                sqlite3_errmsg(st->db));
        sql_classify(st, sqlite3_extended_errcode(st->db));
        return STORE_UNAVAILABLE;
    }
    if (wal_bytes) *wal_bytes = wal_size(st);
    return TS_OK;
}
