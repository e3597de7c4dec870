/*
 * fault_vfs.h - a VFS that fails on demand, and the store fixture of the
 * tests that use it (test_store_faults.c, test_store_sync.c).
 *
 * install_fault_vfs registers a shim as SQLite's default VFS: it forwards
 * every call to the real unix VFS, fails xRead / xWrite / xSync with the
 * code a test sets (what SQLite sees from a full or failing disk), can make
 * every WAL fsync slow or hold it back, and counts the WAL's writes not yet
 * covered by an fsync and its fsyncs, from any thread.
 */
#ifndef TESSERA_TEST_FAULT_VFS_H
#define TESSERA_TEST_FAULT_VFS_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/spec.h"
#include "store/store.h"
#include "testlib.h"
#include "util/util.h"

#define T0 1700000000.0

/* ---- a VFS that fails on demand ------------------------------------------------ */

typedef struct fault_file {
    sqlite3_file base;
    bool is_wal;        /* the write-ahead log, where commits go */
    unsigned long long ino; /* its inode (WAL only) */
    sqlite3_file *real; /* allocated right after this struct */
} fault_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static int fail_writes; /* an SQLite code for xWrite to return, 0 = none */
static int fail_reads;  /* likewise for xRead */
static int fail_syncs;  /* likewise for xSync */
/* The counts below are of the WAL last written to (one database at a time
 * in these tests): an fsync of another file - a second WAL handle opened
 * on the wrong path - does not count. Any thread. */
static _Atomic unsigned long long wal_written_ino; /* the inode of that WAL */
static _Atomic int wal_unsynced; /* writes to it not covered by a finished xSync */
static _Atomic int wal_syncs;    /* its successful xSyncs */
static _Atomic int wal_sync_delay_ms; /* a slow device: each WAL xSync takes this long first */
static _Atomic bool wal_sync_gate;    /* while set, WAL xSyncs of other threads wait */
static pthread_t wal_sync_gate_owner; /* the thread that set it, never held back */

/* Holds back (on) or lets go (off) every WAL fsync of threads other than
 * this one: a device that does not answer until the test says so. */
static inline void gate_wal_syncs(bool on) {
    wal_sync_gate_owner = pthread_self();
    wal_sync_gate = on;
}

#define REAL(f) (((fault_file *)(f))->real)

static int f_close(sqlite3_file *f) {
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
    if (fail_reads) return fail_reads;
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
    if (fail_writes) return fail_writes;
    if (((fault_file *)f)->is_wal) {
        wal_written_ino = ((fault_file *)f)->ino;
        wal_unsynced++;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size) {
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags) {
    fault_file *ff = (fault_file *)f;
    if (fail_syncs) return fail_syncs;
    if (ff->is_wal && wal_sync_delay_ms) usleep((useconds_t)wal_sync_delay_ms * 1000);
    while (ff->is_wal && wal_sync_gate && !pthread_equal(pthread_self(), wal_sync_gate_owner))
        usleep(1000);
    int before = wal_unsynced; /* writes during the sync are not covered by it */
    int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
    if (rc == SQLITE_OK && ff->is_wal && ff->ino == wal_written_ino) {
        wal_unsynced -= before;
        wal_syncs++;
    }
    return rc;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size) {
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l) {
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_reserved(sqlite3_file *f, int *out) {
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_control(sqlite3_file *f, int op, void *arg) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f) {
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_device(sqlite3_file *f) {
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp) {
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f) {
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int del) {
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) {
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
    3,        f_close,   f_read,      f_write,       f_truncate,  f_sync,   f_size,
    f_lock,   f_unlock,  f_reserved,  f_control,     f_sector,    f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out) {
    (void)vfs;
    fault_file *ff = (fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    struct stat sb;
    ff->ino = rc == SQLITE_OK && ff->is_wal && stat(name, &sb) == 0 ? (unsigned long long)sb.st_ino : 0;
    ff->base.pMethods = rc == SQLITE_OK ? &fault_io : NULL;
    return rc;
}

static int install_fault_vfs(void **state) {
    (void)state;
    real_vfs = sqlite3_vfs_find(NULL);
    fault_vfs = *real_vfs;
    fault_vfs.zName = "tessera-fault";
    fault_vfs.szOsFile = (int)sizeof(fault_file) + real_vfs->szOsFile;
    fault_vfs.xOpen = f_open;
    fault_vfs.pNext = NULL;
    return sqlite3_vfs_register(&fault_vfs, 1) == SQLITE_OK ? 0 : -1;
}

/* ---- fixtures and helpers ----------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    char path[128];
    store *st;
} fx;

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-faults-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/tessera.db", f->dir);
    if (store_open(f->path, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    fail_reads = fail_writes = fail_syncs = 0;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    fail_reads = fail_writes = fail_syncs = 0;
    wal_sync_delay_ms = 0;
    wal_sync_gate = false;
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

static const char TWO_JOBS[] =
    "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"},"
    " {\"job_id\": \"b\", \"job_type\": \"noop\", \"depends_on\": [\"a\"]}]}";

/* store_submit of TWO_JOBS; returns its code and sets *id. */
static inline int submit(store *st, const char *user, int64_t *id) {
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error e;
    assert_int_equal(spec_parse(TWO_JOBS, strlen(TWO_JOBS), NULL, NULL, NULL, &spec, &e), 0);
    int rc = store_submit(st, user, spec, T0, id, err, sizeof(err));
    spec_free(spec);
    return rc;
}

static inline int64_t submit_ok(store *st, const char *user) {
    int64_t id = 0;
    assert_int_equal(submit(st, user, &id), TS_OK);
    return id;
}

static inline core_change job_change(int64_t wf, int32_t idx, job_state from, job_state to) {
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_JOB;
    ch.workflow_id = wf;
    ch.job_index = idx;
    ch.job_id = idx == 0 ? "a" : "b";
    ch.from = from;
    ch.to = to;
    ch.cpus = 1;
    ch.at = T0 + 1;
    ch.exit_code = -1;
    return ch;
}

#endif
