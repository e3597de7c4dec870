/*
 * ws_internal.h - what ws.c (one connection: wslay, reading, writing,
 * closing) and ws_hub.c (the hub: thread, store, fan-out, timers) share.
 * Private to src/http/ws*.c; everything here runs in the hub thread except
 * ws_conn_new/ws_conn_free (called by ws_hub_add before the hand-over).
 */
#ifndef TESSERA_HTTP_WS_INTERNAL_H
#define TESSERA_HTTP_WS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "core/map.h"
#include "http/ws.h"
#include "http/ws_outq.h"
#include "store/store.h"
#include "util/util.h"

#define CLOSE_GRACE_S 3.0 /* time a closing connection gets to finish cleanly */
#define WS_PAGE_EVENTS 1000 /* events per store query (ws_hub.c) */

typedef struct ws_user ws_user;

typedef struct ws_conn {
    ws_hub *hub;
    MHD_socket fd;
    struct MHD_UpgradeResponseHandle *urh;
    wslay_event_context_ptr ws; /* reading, and the control frames (ping, pong, close) */
    ws_outq out;                /* event frames, written by ws_conn_write with sendmsg */
    char *user;
    int64_t workflow_id;   /* 0 = all of the user's workflows */
    int64_t since;         /* the last seq queued here (or the client's since) */
    char *extra;           /* bytes MHD read past the request, read before the socket */
    size_t extra_len, extra_off;
    double last_rx;        /* when the client last sent anything */
    double last_ping;
    double close_deadline; /* 0 while open */
    uint32_t events;       /* the current epoll registration */
    bool replaying, eof, failed, dirty;
    bool in_close, peer_closed; /* receiving / received the client's close frame */
    struct ws_conn *prev, *next;   /* hub->conns (next also links the pending list) */
    struct ws_conn *uprev, *unext; /* the user's connections */
    struct ws_conn *rprev, *rnext; /* hub->replay */
    struct ws_conn *dnext;         /* hub->dirty, in the order marked */
    ws_user *bucket;
} ws_conn;

/* The connections of one user, found by name for the fan-out. */
struct ws_user {
    char *name; /* the map's key */
    ws_conn *conns;
};

struct ws_hub {
    ws_hub_config cfg; /* cfg.db_url points to db_url */
    char *db_url;
    pthread_t thread;
    int epfd, evfd;
    _Atomic size_t count; /* pending + live connections, for ws_hub_connections() */

    pthread_mutex_t mu; /* guards the fields up to the next blank line */
    pthread_cond_t started_cv;
    int started; /* 0 starting, 1 running, -1 failed (start_err) */
    char start_err[TS_ERRLEN];
    ws_conn *pending;
    bool stop_requested;

    /* Everything below belongs to the hub thread. */
    store *st;
    store_listener *listener; /* NOTIFY of new events (PostgreSQL); NULL = poll only */
    bool notified;            /* the next poll is a notification's */
    double poll_wall;         /* ts_now() of the current poll, for event delays */
    /* The times of the events the current iteration fanned out (at most a
     * page of them), for on_event_fanout once hub_flush has written them. */
    double fanned_ts[WS_PAGE_EVENTS];
    size_t n_fanned;
    double now; /* ts_monotonic() at the top of the current iteration */
    ws_conn *conns, *replay, *dirty, *dirty_tail;
    size_t n_conns;
    map users;
    int64_t hub_seq;
    int64_t durable; /* this poll's bound: the newest seq on disk (store_listener_durable_seq) */
    size_t page_rows;
    double next_poll, next_sweep, stop_deadline, last_error_log;
    bool stopping, poll_again, replay_again;
    uint64_t delivered;
};

/* A connection for ws_hub_add (any thread): copies of the caller's data,
 * the socket made non-blocking with TCP_NODELAY. NULL on failure. */
ws_conn *ws_conn_new(ws_hub *h, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                     const char *extra, size_t extra_len, const char *user, int64_t workflow_id,
                     int64_t since);
void ws_conn_free(ws_conn *c);

/* Socket activity: reads (through wslay, or draining after a close),
 * writes what is queued, then releases or re-arms the connection. */
void ws_conn_on_event(ws_hub *h, ws_conn *c, uint32_t events);
void ws_conn_read(ws_conn *c);
void ws_conn_write(ws_conn *c);

/* Releases c if it is over, else makes its epoll registration match what
 * wslay wants. The only place (with ws_conn_release at shutdown) where a
 * connection is freed. */
void ws_conn_update(ws_hub *h, ws_conn *c);
/* Hands the socket back to MHD and frees c (unlinked from every list). */
void ws_conn_release(ws_hub *h, ws_conn *c);

bool ws_conn_closing(const ws_conn *c);
/* Queues a close frame (only the first counts) and starts the grace period. */
void ws_conn_close(ws_conn *c, uint16_t code, const char *reason);
/* Queues an event's frame (c takes a reference) unless c is closing;
 * c->since becomes seq. */
void ws_conn_queue_frame(ws_hub *h, ws_conn *c, ws_frame *f, int64_t seq);
/* Bytes queued on c and not yet accepted by its socket (events and
 * wslay's control frames). */
size_t ws_conn_unsent(const ws_conn *c);
/* Closes with 1013 if more than max_queue_bytes are still unsent. */
void ws_conn_check_queue(ws_hub *h, ws_conn *c);
/* Schedules c for a flush at the end of the loop iteration; connections are
 * flushed in the order they were first marked (the oldest event first). */
void ws_conn_mark(ws_hub *h, ws_conn *c);
/* Ends c's replay (removes it from hub->replay). */
void ws_conn_replay_unlink(ws_hub *h, ws_conn *c);

#endif
