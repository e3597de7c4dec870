/*
 * sqlite_durable.c - the newest event seq known to be on stable storage,
 * shared by the processes of one SQLite database (store.h,
 * store_listener_durable_seq).
 *
 * Why: the scheduler's rounds commit without an fsync and do not wait for
 * it (sched/syncer.h), so a reader that reads every event stored so far -
 * a WebSocket hub woken by the ring of round N - finds the events of round
 * N+1 too, whose fsync is still running. Sent to a client and then lost in
 * a power cut, their seqs would be reused by the restarted store and the
 * client, asking for what came after, would miss the new events. Every
 * ring (sq_wake_ring) comes after an fsync of the WAL, which covers every
 * commit before it, so the seq it carries is on disk; the ringer raises
 * this shared value before it sends, and readers stop at it.
 *
 * Where: 8 bytes at the start of "<database>-wake/durable", mapped shared
 * by each process; raised with an atomic compare-and-swap (lock-free on
 * every platform tessera builds on: x86-64, arm64), never lowered. A
 * missing, special or unmappable file, or one whose block cannot be
 * allocated (a full disk), means "unknown": readers then read everything,
 * as before this file existed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite_internal.h"
#include "util/util.h"

#define DURABLE_BYTES 4096 /* a page: the mapping's unit */

struct sq_durable {
    _Atomic int64_t *seq; /* in the shared mapping */
};

/* See sqlite_internal.h. */
sq_durable *sq_durable_open(const char *wake_dir) {
    char *path = ts_asprintf("%s/durable", wake_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0) return NULL;
    struct stat sb;
    void *map = MAP_FAILED;
    /* Blocks allocated, not a sparse page: a store into a hole of a full
     * file system would be SIGBUS, not an error. Without them: unknown. */
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && posix_fallocate(fd, 0, DURABLE_BYTES) == 0)
        map = mmap(NULL, DURABLE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return NULL;
    sq_durable *d = ts_calloc(1, sizeof(*d));
    d->seq = map;
    return d;
}

void sq_durable_raise(sq_durable *d, int64_t seq) {
    if (d == NULL) return;
    int64_t old = atomic_load(d->seq);
    while (old < seq && !atomic_compare_exchange_weak(d->seq, &old, seq)) {
    }
}

int64_t sq_durable_get(const sq_durable *d) {
    return d ? atomic_load(d->seq) : INT64_MAX;
}

void sq_durable_close(sq_durable *d) {
    if (d == NULL) return;
    munmap((void *)d->seq, DURABLE_BYTES);
    free(d);
}
