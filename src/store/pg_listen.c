/*
 * pg_listen.c - wake-ups across instances: a LISTEN connection of its own
 * (never one used for queries, never through a transaction pooler) that
 * turns NOTIFY into a readable file descriptor (store.h, store_listener).
 *
 * A notification is only a hint that there is something to read: readers
 * always read the events table (or commands) by cursor, and keep polling
 * every TESSERA_QUEUE_POLL_SECONDS. Notifications sent while the connection
 * is down are lost, so a reconnect is reported (drain returns -1) and the
 * caller re-reads. The descriptor callers wait on is an epoll set that holds
 * the connection's socket, so it stays the same across reconnects.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "store/pg_internal.h"
#include "util/util.h"

#define LISTEN_BACKOFF_MIN 0.1
#define LISTEN_BACKOFF_MAX 5.0

struct pg_listener {
    char *url;
    PGconn *conn;
    int epfd;
    int sock;     /* the connection's socket in epfd, -1 when none */
    bool events;  /* LISTEN tessera_events */
    bool work;    /* LISTEN tessera_work */
    double retry_at, backoff;
};

static void drop_conn(pg_listener *l) {
    if (l->sock >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->sock, NULL);
    l->sock = -1;
    PQfinish(l->conn);
    l->conn = NULL;
}

/* Connects and listens; on failure schedules the next try (backoff). */
static int listen_connect(pg_listener *l, char *err, size_t errlen) {
    static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "application_name", "dbname", NULL};
    const char *vals[] = {"5", "1", "5", "2", "3", "tessera-listen", l->url, NULL};
    drop_conn(l);
    l->conn = PQconnectdbParams(keys, vals, 1);
    const char *sql = l->events && l->work ? "LISTEN " PG_CHANNEL_EVENTS "; LISTEN " PG_CHANNEL_WORK
                      : l->events          ? "LISTEN " PG_CHANNEL_EVENTS
                                           : "LISTEN " PG_CHANNEL_WORK;
    bool ok = l->conn && PQstatus(l->conn) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(l->conn, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    struct epoll_event e = {.events = EPOLLIN};
    if (ok && (l->sock = PQsocket(l->conn)) >= 0 && epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->sock, &e) == 0) {
        l->backoff = 0;
        return TS_OK;
    }
    ts_errf(err, errlen, "PostgreSQL unavailable: cannot listen: %s",
            l->conn ? PQerrorMessage(l->conn) : "out of memory");
    drop_conn(l);
    l->backoff = l->backoff < LISTEN_BACKOFF_MIN ? LISTEN_BACKOFF_MIN : l->backoff * 2;
    if (l->backoff > LISTEN_BACKOFF_MAX) l->backoff = LISTEN_BACKOFF_MAX;
    l->retry_at = ts_monotonic() + l->backoff;
    return STORE_UNAVAILABLE;
}

int pg_listener_open(const char *url, bool events, bool work, pg_listener **out, char *err,
                     size_t errlen) {
    pg_listener *l = ts_calloc(1, sizeof(*l));
    l->url = ts_strdup(url);
    l->sock = -1;
    l->events = events;
    l->work = work;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        ts_errf(err, errlen, "cannot create an epoll set for notifications");
        free(l->url);
        free(l);
        return TS_ERR;
    }
    *out = l;
    /* A server that is down now is not fatal: drain() retries with backoff. */
    (void)listen_connect(l, err, errlen);
    return TS_OK;
}

int pg_listener_fd(const pg_listener *l) {
    return l->epfd;
}

/* Pending notifications: how many (0 = none), -1 after the connection was
 * lost or re-made (the caller re-reads); *newest_seq = the largest seq an
 * events notification named. */
int pg_listener_drain(pg_listener *l, int64_t *newest_seq) {
    char err[TS_ERRLEN];
    *newest_seq = 0;
    if (l->conn == NULL) {
        if (ts_monotonic() >= l->retry_at) (void)listen_connect(l, err, sizeof(err));
        return -1;
    }
    if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK) {
        drop_conn(l);
        l->retry_at = ts_monotonic() + LISTEN_BACKOFF_MIN;
        return -1;
    }
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(l->conn)) != NULL) {
        int64_t seq = note->extra ? strtoll(note->extra, NULL, 10) : 0;
        if (seq > *newest_seq) *newest_seq = seq;
        n++;
        PQfreemem(note);
    }
    return n;
}

void pg_listener_close(pg_listener *l) {
    if (l == NULL) return;
    drop_conn(l);
    close(l->epfd);
    free(l->url);
    free(l);
}
