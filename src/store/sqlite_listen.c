/*
 * sqlite_listen.c - wake-ups between the processes sharing one SQLite file
 * (store.h, store_listener; issue 16 item 4).
 *
 * PostgreSQL has NOTIFY; SQLite has nothing, so readers of the events table
 * (the WebSocket hubs of the HTTP workers) used to poll it. Here each
 * listener is a Unix datagram socket of its own in the directory
 * "<database>-wake/" (mode 0700), and every commit that recorded events
 * sends the newest seq, eight bytes, to each socket there (sq_wake_ring,
 * called by sql_after_commit). A hint only, as NOTIFY: a full socket
 * buffer drops the datagram (the reader already has one pending), a
 * listener whose process died leaves a socket nobody reads (a send gets
 * ECONNREFUSED and the ringer removes it), and readers keep their timer
 * poll as the fallback. Before it sends, the ringer raises the shared
 * durable seq in the same directory (sqlite_durable.c): every ring comes
 * after an fsync, and readers publish nothing above that seq.
 *
 * Cost on the committing side: one stat() of the directory per ring (its
 * listing is re-read only when its mtime changed) and one sendto() per
 * listener; nothing when no listener exists (no directory).
 */
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite_internal.h"
#include "util/util.h"

#define LISTENER_PREFIX "e" /* events; the only kind SQLite listens for (see store.c) */

struct sq_listener {
    int fd;
    char *path;
    sq_durable *durable; /* the newest seq on disk (sqlite_durable.c); NULL: unknown */
};

struct sq_ringer {
    pthread_mutex_t mu;  /* rings come from the committing thread or from a
                          * sync ticket's (store_sync_ticket_run) */
    char *dir;
    int fd;              /* an unbound datagram socket to send from; -1 until needed */
    char **paths;        /* the listeners' sockets at the last scan */
    sq_durable *durable; /* raised before each ring; NULL until the directory exists */
    size_t n, cap;
    struct timespec mtime; /* the directory's at the last scan */
    bool scanned;
};

static char *wake_dir(const char *db_path) {
    return ts_asprintf("%s-wake", db_path);
}

static int fill_addr(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr->sun_path)) return TS_ERR;
    memcpy(addr->sun_path, path, strlen(path) + 1);
    return TS_OK;
}

/* ---- listening ---- */

int sq_listener_open(const char *db_path, sq_listener **out, char *err, size_t errlen) {
    *out = NULL;
    char *dir = wake_dir(db_path);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* pid + a clock reading: unique among the listeners of live processes */
    char *path = ts_asprintf("%s/" LISTENER_PREFIX "%ld-%lld%09ld", dir, (long)getpid(),
                             (long long)now.tv_sec, now.tv_nsec);
    struct sockaddr_un addr;
    int fd = -1, rc = TS_ERR;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ts_errf(err, errlen, "wake-up directory %s: %s", dir, strerror(errno));
        goto cleanup;
    }
    if (fill_addr(path, &addr) != TS_OK) {
        ts_errf(err, errlen, "wake-up socket path too long for a Unix socket: %s", path);
        goto cleanup;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        ts_errf(err, errlen, "wake-up socket %s: %s", path, strerror(errno));
        goto cleanup;
    }
    sq_listener *l = ts_calloc(1, sizeof(*l));
    l->fd = fd;
    l->path = path;
    l->durable = sq_durable_open(dir);
    fd = -1;
    path = NULL;
    *out = l;
    rc = TS_OK;
cleanup:
    if (fd >= 0) close(fd);
    free(path);
    free(dir);
    return rc;
}

int sq_listener_fd(const sq_listener *l) {
    return l ? l->fd : -1;
}

int64_t sq_listener_durable(const sq_listener *l) {
    return l ? sq_durable_get(l->durable) : INT64_MAX;
}

int sq_listener_drain(sq_listener *l, int64_t *newest_seq) {
    int n = 0;
    *newest_seq = 0;
    int64_t seq;
    ssize_t got;
    while ((got = recv(l->fd, &seq, sizeof(seq), MSG_DONTWAIT)) >= 0 || errno == EINTR) {
        if (got < 0) continue;
        n++;
        if (got == (ssize_t)sizeof(seq) && seq > *newest_seq) *newest_seq = seq;
    }
    return n;
}

void sq_listener_close(sq_listener *l) {
    if (l == NULL) return;
    close(l->fd);
    unlink(l->path);
    sq_durable_close(l->durable);
    free(l->path);
    free(l);
}

/* ---- ringing ---- */

sq_ringer *sq_ringer_new(const char *db_path) {
    sq_ringer *r = ts_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->dir = wake_dir(db_path);
    r->fd = -1;
    return r;
}

static void forget_paths(sq_ringer *r) {
    for (size_t i = 0; i < r->n; i++) free(r->paths[i]);
    r->n = 0;
}

void sq_ringer_free(sq_ringer *r) {
    if (r == NULL) return;
    forget_paths(r);
    free(r->paths);
    if (r->fd >= 0) close(r->fd);
    sq_durable_close(r->durable);
    free(r->dir);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Re-reads the directory when it changed since the last scan. False when
 * there is no directory (nobody has ever listened). */
static bool refresh(sq_ringer *r) {
    struct stat st;
    if (stat(r->dir, &st) != 0) {
        forget_paths(r);
        r->scanned = false;
        return false;
    }
    if (r->scanned && st.st_mtim.tv_sec == r->mtime.tv_sec &&
        st.st_mtim.tv_nsec == r->mtime.tv_nsec)
        return true;
    DIR *d = opendir(r->dir);
    if (d == NULL) return false;
    forget_paths(r);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, LISTENER_PREFIX, strlen(LISTENER_PREFIX)) != 0) continue;
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 8;
            r->paths = ts_realloc(r->paths, r->cap * sizeof(char *));
        }
        r->paths[r->n++] = ts_asprintf("%s/%s", r->dir, e->d_name);
    }
    closedir(d);
    r->mtime = st.st_mtim;
    r->scanned = true;
    return true;
}

/* The durable seq first: a listener woken by the datagram reads up to it. */
static void ring_locked(sq_ringer *r, int64_t seq) {
    if (!refresh(r)) return;
    if (r->durable == NULL) r->durable = sq_durable_open(r->dir);
    sq_durable_raise(r->durable, seq);
    if (r->n == 0) return;
    if (r->fd < 0 && (r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct sockaddr_un addr;
        if (fill_addr(r->paths[i], &addr) != TS_OK) continue;
        ssize_t n;
        do n = sendto(r->fd, &seq, sizeof(seq), MSG_DONTWAIT | MSG_NOSIGNAL,
                      (struct sockaddr *)&addr, sizeof(addr));
        while (n < 0 && errno == EINTR);
        /* Nobody reads it: its process died without closing. The unlink
         * changes the directory, so the next ring rescans. */
        if (n < 0 && errno == ECONNREFUSED) unlink(r->paths[i]);
    }
}

void sq_wake_ring(sq_ringer *r, int64_t seq) {
    if (r == NULL) return;
    pthread_mutex_lock(&r->mu);
    ring_locked(r, seq);
    pthread_mutex_unlock(&r->mu);
}
