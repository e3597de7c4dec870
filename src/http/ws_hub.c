/*
 * ws_hub.c - the WebSocket hub of ws.h: one thread that owns every upgraded
 * socket of an HTTP worker and streams stored events to them.
 *
 * The thread runs one epoll loop over the sockets plus an eventfd that
 * ws_hub_add() rings after putting a connection on a mutex-protected
 * pending list (the only state shared with other threads, besides the
 * connection count). The epoll timeout drives the store polls, pings, idle
 * checks and close deadlines. Framing is wslay's event API on non-blocking
 * sockets: its recv/send callbacks turn EAGAIN into WSLAY_ERR_WOULDBLOCK,
 * and want_write decides whether a socket waits for EPOLLOUT.
 *
 * Events, exactly once and in order. hub_seq is the highest seq the hub has
 * fanned out; every poll reads the events after it (all users, one indexed
 * query) and queues each on the live connections of its user whose own
 * `since` is lower. A new connection whose since is below hub_seq is first
 * "replaying": it reads its own events in (since, hub_seq] in pages - the
 * poll and the replay run in the same thread, so hub_seq cannot move in the
 * middle of a page - and joins the fan-out the moment its replay reaches
 * hub_seq; everything after hub_seq is the poll's. Replay pages stop while
 * the connection has more than half of max_queue_bytes unsent, so a
 * client catching up on a long history is paced by its socket and is never
 * closed for it. hub_seq starts at the store's highest seq (store_events_last_seq),
 * and jumps there again whenever the
 * first connection arrives after a time without any (nothing is polled
 * while nobody listens).
 *
 * Across instances (PostgreSQL), a commit on any instance sends NOTIFY with
 * the newest seq; the hub's listener is in its epoll set, and a
 * notification (or a reconnect of the listener, after which notifications
 * may have been lost) makes the hub poll at once. The notification is only
 * a wake-up: what is delivered is always read from the events table by
 * cursor, and the timer poll stays as the fallback.
 *
 * One connection's protocol (wslay, reading, writing, closing) is in ws.c;
 * the structures both files share are in ws_internal.h.
 */
#include "http/ws.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/map.h"
#include "http/ws_internal.h"
#include "store/store.h"
#include "util/log.h"
#include "util/util.h"

#define STOP_FLUSH_S 1.0     /* ws_hub_stop's bound on writing the close frames */
#define EPOLL_BATCH 64
#define ERROR_LOG_INTERVAL_S 10.0 /* a failing store is reported, not 50 times a second */

/* Logs a store failure at most every ERROR_LOG_INTERVAL_S: the hub retries
 * on its own, and a log line per poll would bury everything else. */
static void hub_log_error(ws_hub *h, const char *what, const char *err) {
    if (h->now - h->last_error_log < ERROR_LOG_INTERVAL_S && h->last_error_log > 0) return;
    h->last_error_log = h->now;
    log_emit(LOG_WARN, NULL, NULL, "websocket hub: store error",
             json_pack("{ss,ss}", "while", what, "error", err));
}

/* ---- the store: hub_seq, polls, replays ------------------------------------ */

/* With no connection, the hub does not poll (nobody needs the events), so
 * hub_seq is stale when the first connection arrives: jump to the present
 * rather than fan out the backlog to nobody. */
static void hub_refresh_seq(ws_hub *h) {
    char err[TS_ERRLEN];
    int64_t seq = 0;
    if (store_events_last_seq(h->st, &seq, err, sizeof(err)) != TS_OK) {
        hub_log_error(h, "finding the latest event", err);
        return; /* the old hub_seq is still correct, only behind */
    }
    if (seq > h->hub_seq) h->hub_seq = seq;
}

/* One new event to the live connections of its user: its frame is built
 * once, when the first of them wants it, and shared by all. */
static int fanout_cb(void *ctx, const store_event *ev) {
    ws_hub *h = ctx;
    if (ev->seq > h->durable) { /* not on disk yet: its ring will come */
        h->page_rows = 0;
        return 1;
    }
    h->hub_seq = ev->seq;
    h->page_rows++;
    ws_user *u = map_get_str(&h->users, ev->user);
    ws_frame *frame = NULL;
    for (ws_conn *c = u ? u->conns : NULL; c; c = c->unext) {
        if (c->replaying || ws_conn_closing(c) || ev->seq <= c->since) continue;
        if (c->workflow_id > 0 && c->workflow_id != ev->workflow_id) continue;
        if (frame == NULL) frame = ws_frame_text(ev->json, strlen(ev->json));
        ws_conn_queue_frame(h, c, frame, ev->seq);
    }
    bool sent = frame != NULL;
    ws_frame_unref(frame);
    if (sent && h->cfg.on_event_delay)
        h->cfg.on_event_delay(h->cfg.metrics_ctx, h->poll_wall - ev->ts);
    if (sent && h->n_fanned < WS_PAGE_EVENTS) h->fanned_ts[h->n_fanned++] = ev->ts;
    return 0;
}

/* Notifications of new events: poll now if there were any, or if the
 * listener's connection was lost or re-made (some may have been lost). */
static void hub_notified(ws_hub *h) {
    int64_t newest = 0;
    int n = store_listener_drain(h->listener, &newest);
    if (n != 0 && (n < 0 || newest > h->hub_seq)) h->poll_again = h->notified = true;
}

/* One page of new events for everybody, up to the newest seq on stable
 * storage: the scheduler's rounds do not wait for their fsync, and an
 * event sent before it could be lost with its seq reused (store.h,
 * store_listener_durable_seq). A full page means more are waiting: the
 * next iteration polls again without sleeping. */
static void hub_poll(ws_hub *h) {
    char err[TS_ERRLEN];
    if (h->cfg.on_wakeup && (h->notified || h->now >= h->next_poll))
        h->cfg.on_wakeup(h->cfg.metrics_ctx, h->notified);
    h->notified = false;
    h->poll_wall = ts_now();
    h->next_poll = h->now + h->cfg.poll_interval_s;
    h->page_rows = 0;
    h->durable = store_listener_durable_seq(h->listener);
    if (h->durable <= h->hub_seq) { /* nothing on disk that was not sent */
        h->poll_again = false;
        return;
    }
    int rc = store_events_since(h->st, h->hub_seq, NULL, 0, WS_PAGE_EVENTS, fanout_cb, h, err,
                                sizeof(err));
    if (rc != TS_OK) hub_log_error(h, "reading new events", err);
    h->poll_again = rc == TS_OK && h->page_rows == WS_PAGE_EVENTS;
}

typedef struct replay_page {
    ws_hub *hub;
    ws_conn *conn;
    size_t rows;
    bool caught_up, throttled;
} replay_page;

static size_t replay_budget(const ws_hub *h) {
    return h->cfg.max_queue_bytes / 2;
}

static int replay_cb(void *ctx, const store_event *ev) {
    replay_page *p = ctx;
    if (ev->seq > p->hub->hub_seq) { /* the poll's from here on */
        p->caught_up = true;
        return 1;
    }
    p->rows++;
    ws_frame *frame = ws_frame_text(ev->json, strlen(ev->json));
    ws_conn_queue_frame(p->hub, p->conn, frame, ev->seq);
    ws_frame_unref(frame);
    if (ws_conn_unsent(p->conn) >= replay_budget(p->hub)) {
        p->throttled = true;
        return 1;
    }
    return 0;
}

/* One page of a connection's replay, unless its socket is still busy with
 * the previous one. Reaching hub_seq ends the replay: from then on the
 * connection takes part in the fan-out, which starts after hub_seq. */
static void conn_replay_page(ws_hub *h, ws_conn *c) {
    char err[TS_ERRLEN];
    if (ws_conn_closing(c)) {
        ws_conn_replay_unlink(h, c);
        return;
    }
    if (ws_conn_unsent(c) >= replay_budget(h)) return;
    replay_page p = {.hub = h, .conn = c};
    if (store_events_since(h->st, c->since, c->user, c->workflow_id, WS_PAGE_EVENTS, replay_cb, &p,
                           err, sizeof(err)) != TS_OK) {
        hub_log_error(h, "replaying events", err);
        return;
    }
    if (p.caught_up || (!p.throttled && p.rows < WS_PAGE_EVENTS)) {
        if (c->since < h->hub_seq) c->since = h->hub_seq;
        ws_conn_replay_unlink(h, c);
    } else if (!p.throttled) {
        h->replay_again = true;
    }
}

static void hub_replay(ws_hub *h) {
    ws_conn *next;
    h->replay_again = false;
    for (ws_conn *c = h->replay; c; c = next) {
        next = c->rnext;
        conn_replay_page(h, c);
    }
}

/* ---- timers ------------------------------------------------------------------- */

static double sweep_interval(const ws_hub *h) {
    double s = fmin(h->cfg.ping_interval_s, h->cfg.idle_timeout_s) / 4;
    return fmax(0.01, fmin(s, 1.0));
}

/* Pings, idle timeouts and close deadlines. */
static void hub_sweep(ws_hub *h) {
    static const struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
    h->next_sweep = h->now + sweep_interval(h);
    for (ws_conn *c = h->conns; c; c = c->next) {
        if (ws_conn_closing(c)) {
            if (h->now >= c->close_deadline) ws_conn_mark(h, c);
        } else if (h->now - c->last_rx >= h->cfg.idle_timeout_s) {
            ws_conn_close(c, WSLAY_CODE_GOING_AWAY, "idle timeout");
            ws_conn_mark(h, c);
        } else if (h->now - c->last_ping >= h->cfg.ping_interval_s) {
            wslay_event_queue_msg(c->ws, &ping);
            c->last_ping = h->now;
            ws_conn_mark(h, c);
        }
    }
}

/* ---- hand-overs, stopping, the loop -------------------------------------------- */

/* A handed-over connection enters the loop: registered, counted, filed
 * under its user, replaying if it is behind, and the bytes MHD already read
 * are processed at once (epoll would not report them). */
static void hub_join(ws_hub *h, ws_conn *c) {
    if (h->n_conns == 0) hub_refresh_seq(h);
    c->prev = NULL;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    if (h->cfg.on_connections) h->cfg.on_connections(h->cfg.metrics_ctx, 1);
    ws_user *u = map_get_str(&h->users, c->user);
    if (u == NULL) {
        u = ts_calloc(1, sizeof(*u));
        u->name = ts_strdup(c->user);
        map_put_str(&h->users, u->name, u);
    }
    c->bucket = u;
    c->unext = u->conns;
    if (u->conns) u->conns->uprev = c;
    u->conns = c;
    c->last_rx = c->last_ping = h->now;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, c->fd, &e) == 0) c->events = EPOLLIN;
    else c->failed = true;
    if (h->n_conns > h->cfg.max_connections) {
        ws_conn_close(c, 1013, "too many connections");
    } else if (c->since < h->hub_seq) {
        c->replaying = true;
        c->rnext = h->replay;
        if (h->replay) h->replay->rprev = c;
        h->replay = c;
    }
    ws_conn_read(c);
    ws_conn_write(c);
    ws_conn_update(h, c);
}

/* Every connection gets 1001 "going away"; the loop then ends when all
 * close frames are written or after STOP_FLUSH_S. */
static void hub_begin_stop(ws_hub *h) {
    h->stopping = true;
    h->stop_deadline = h->now + STOP_FLUSH_S;
    for (ws_conn *c = h->conns; c; c = c->next) {
        ws_conn_close(c, WSLAY_CODE_GOING_AWAY, "going away");
        ws_conn_mark(h, c);
    }
}

/* Takes the pending hand-overs (oldest first) and the stop request, in one
 * critical section: after the stop request nothing else can be pending. */
static void hub_take_pending(ws_hub *h) {
    uint64_t counter;
    while (read(h->evfd, &counter, sizeof(counter)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&h->mu);
    ws_conn *list = h->pending, *fifo = NULL;
    h->pending = NULL;
    bool stop = h->stop_requested;
    pthread_mutex_unlock(&h->mu);
    while (list) { /* the pending list is newest first */
        ws_conn *c = list;
        list = c->next;
        c->next = fifo;
        fifo = c;
    }
    while (fifo) {
        ws_conn *c = fifo;
        fifo = c->next;
        hub_join(h, c);
    }
    if (stop && !h->stopping) hub_begin_stop(h);
}

/* Sends what the iteration queued, enforces the queue limit, re-arms; then
 * times the events fanned out, now written to every connection (one clock
 * reading for all: they were written together). */
static void hub_flush(ws_hub *h) {
    while (h->dirty) {
        ws_conn *c = h->dirty;
        h->dirty = c->dnext;
        if (h->dirty == NULL) h->dirty_tail = NULL;
        c->dirty = false;
        ws_conn_write(c);
        ws_conn_check_queue(h, c);
        ws_conn_update(h, c);
    }
    if (h->delivered > 0 && h->cfg.on_delivered)
        h->cfg.on_delivered(h->cfg.metrics_ctx, h->delivered);
    h->delivered = 0;
    if (h->n_fanned > 0 && h->cfg.on_event_fanout) {
        double now = ts_now();
        for (size_t i = 0; i < h->n_fanned; i++)
            h->cfg.on_event_fanout(h->cfg.metrics_ctx, now - h->fanned_ts[i]);
    }
    h->n_fanned = 0;
}

/* Milliseconds until the next timer; at most one second, so that a bug in
 * the bookkeeping costs latency, never a hang. */
static int hub_timeout_ms(const ws_hub *h) {
    double now = ts_monotonic(), next = now + 1.0;
    if (h->stopping) {
        next = fmin(next, h->stop_deadline);
    } else if (h->n_conns > 0) {
        if (h->poll_again || h->replay_again) return 0;
        next = fmin(next, fmin(h->next_poll, h->next_sweep));
    }
    double ms = ceil((next - now) * 1000.0);
    return ms <= 0 ? 0 : (int)ms;
}

/* One turn of the loop. Connections are only released from ws_conn_update,
 * which runs for socket events (the dirty list is empty then) and for
 * entries already taken off the dirty list, so no list ever holds a freed
 * connection. */
static void hub_iterate(ws_hub *h) {
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_wait(h->epfd, evs, EPOLL_BATCH, hub_timeout_ms(h));
    bool handover = false;
    h->now = ts_monotonic();
    if (h->cfg.on_turn) h->cfg.on_turn(h->cfg.turn_ctx);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) handover = true;
        else if (evs[i].data.ptr == (void *)&h->listener) hub_notified(h);
        else ws_conn_on_event(h, evs[i].data.ptr, evs[i].events);
    }
    if (h->listener && n == 0 && h->now >= h->next_poll) hub_notified(h); /* reconnects */
    if (handover) hub_take_pending(h);
    if (!h->stopping && h->n_conns > 0) {
        if (h->poll_again || h->now >= h->next_poll) hub_poll(h);
        if (h->replay) hub_replay(h);
        if (h->now >= h->next_sweep) hub_sweep(h);
    }
    hub_flush(h);
}

/* Releases everything (the end of ws_hub_stop), including hand-overs that
 * never joined. */
static void hub_release_all(ws_hub *h) {
    h->dirty = h->dirty_tail = NULL;
    while (h->conns) ws_conn_release(h, h->conns);
    pthread_mutex_lock(&h->mu);
    ws_conn *list = h->pending;
    h->pending = NULL;
    pthread_mutex_unlock(&h->mu);
    while (list) {
        ws_conn *c = list;
        list = c->next;
        MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
        atomic_fetch_sub(&h->count, 1);
        ws_conn_free(c);
    }
}

/* Tells ws_hub_start how the thread's start went. */
static void hub_started(ws_hub *h, int rc, const char *err) {
    pthread_mutex_lock(&h->mu);
    h->started = rc == TS_OK ? 1 : -1;
    if (rc != TS_OK) ts_strlcpy(h->start_err, err, sizeof(h->start_err));
    pthread_cond_signal(&h->started_cv);
    pthread_mutex_unlock(&h->mu);
}

/* The hub thread. The store handle is opened here because a handle belongs
 * to the thread that uses it (and after fork, which happened before). */
static void *hub_main(void *arg) {
    ws_hub *h = arg;
    char err[TS_ERRLEN];
    pthread_setname_np(pthread_self(), "tessera-ws"); /* for top -H, perf, the bench's CPU */
    int rc = store_open_existing(h->db_url, &h->st, err, sizeof(err));
    if (rc == TS_OK && h->cfg.on_store_call)
        store_set_observer(h->st, h->cfg.on_store_call, h->cfg.metrics_ctx);
    if (rc == TS_OK) rc = store_events_last_seq(h->st, &h->hub_seq, err, sizeof(err));
    if (rc == STORE_UNAVAILABLE) { /* hub_refresh_seq catches up when it is back */
        log_emit(LOG_WARN, NULL, NULL, "websocket hub: store unavailable at start",
                 json_pack("{ss}", "error", err));
        rc = TS_OK;
    }
    if (rc == TS_OK)
        rc = store_listener_open(h->db_url, STORE_WAKE_EVENTS, &h->listener, err, sizeof(err));
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = (void *)&h->listener};
    if (rc == TS_OK && h->listener &&
        epoll_ctl(h->epfd, EPOLL_CTL_ADD, store_listener_fd(h->listener), &le) != 0) {
        ts_errf(err, sizeof(err), "cannot watch notifications: %s", strerror(errno));
        rc = TS_ERR;
    }
    if (rc != TS_OK) {
        store_listener_close(h->listener);
        h->listener = NULL;
        store_close(h->st);
        h->st = NULL;
    }
    hub_started(h, rc, err);
    if (rc != TS_OK) return NULL;
    h->now = ts_monotonic();
    while (!h->stopping || (h->n_conns > 0 && h->now < h->stop_deadline)) hub_iterate(h);
    hub_release_all(h);
    store_listener_close(h->listener);
    store_close(h->st);
    return NULL;
}

/* ---- the public API ------------------------------------------------------------ */

static int config_check(const ws_hub_config *cfg, char *err, size_t errlen) {
    if (cfg == NULL || cfg->db_url == NULL || cfg->db_url[0] == '\0') {
        ts_errf(err, errlen, "websocket hub: no database configured");
        return TS_ERR;
    }
    if (!(cfg->poll_interval_s > 0) || !(cfg->ping_interval_s > 0) ||
        !(cfg->idle_timeout_s > 0)) {
        ts_errf(err, errlen, "websocket hub: poll, ping and idle intervals must be > 0");
        return TS_ERR;
    }
    if (cfg->max_frame_bytes == 0 || cfg->max_queue_bytes == 0 || cfg->max_connections == 0) {
        ts_errf(err, errlen, "websocket hub: frame, queue and connection limits must be > 0");
        return TS_ERR;
    }
    return TS_OK;
}

static void hub_free(ws_hub *h) {
    if (h->epfd >= 0) close(h->epfd);
    if (h->evfd >= 0) close(h->evfd);
    map_free(&h->users);
    pthread_cond_destroy(&h->started_cv);
    pthread_mutex_destroy(&h->mu);
    free(h->db_url);
    free(h);
}

/* Starts the thread with every signal blocked in it: signals belong to the
 * worker's main thread (it waits for SIGTERM with sigwait). */
static int hub_spawn(ws_hub *h) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&h->thread, NULL, hub_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Creates the epoll set and eventfd, starts the thread and waits until it
 * has opened the store, so that a bad database is reported here. */
ws_hub *ws_hub_start(const ws_hub_config *cfg, char *err, size_t errlen) {
    if (config_check(cfg, err, errlen) != TS_OK) return NULL;
    ws_hub *h = ts_calloc(1, sizeof(*h));
    h->cfg = *cfg;
    h->db_url = ts_strdup(cfg->db_url);
    h->cfg.db_url = h->db_url;
    map_init(&h->users);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->started_cv, NULL);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (h->epfd < 0 || h->evfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &e) != 0) {
        ts_errf(err, errlen, "websocket hub: cannot create its epoll set: %s", strerror(errno));
        goto fail;
    }
    int rc = hub_spawn(h);
    if (rc != 0) {
        ts_errf(err, errlen, "websocket hub: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    pthread_mutex_lock(&h->mu);
    while (h->started == 0) pthread_cond_wait(&h->started_cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    if (h->started < 0) {
        ts_errf(err, errlen, "websocket hub: %s", h->start_err);
        pthread_join(h->thread, NULL);
        goto fail;
    }
    return h;

fail:
    hub_free(h);
    return NULL;
}

/* Queues the connection for the hub thread and rings the eventfd, both
 * under the lock: once this returns, the caller's thread never touches the
 * hub again, so a concurrent ws_hub_stop cannot free it under our feet. */
int ws_hub_add(ws_hub *hub, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
               const char *extra, size_t extra_len, const char *user, int64_t workflow_id,
               int64_t since) {
    if (hub == NULL || sock == MHD_INVALID_SOCKET || urh == NULL || user == NULL ||
        (extra == NULL && extra_len > 0))
        return TS_ERR;
    ws_conn *c = ws_conn_new(hub, sock, urh, extra, extra_len, user, workflow_id,
                          since < 0 ? 0 : since);
    if (c == NULL) return TS_ERR;
    uint64_t one = 1;
    pthread_mutex_lock(&hub->mu);
    bool open = !hub->stop_requested;
    if (open) {
        c->next = hub->pending;
        hub->pending = c;
        atomic_fetch_add(&hub->count, 1);
        /* Can only fail if the counter would overflow; the thread reads it
         * long before. */
        (void)!write(hub->evfd, &one, sizeof(one));
    }
    pthread_mutex_unlock(&hub->mu);
    if (!open) ws_conn_free(c); /* the caller closes the socket */
    return open ? TS_OK : TS_ERR;
}

size_t ws_hub_connections(ws_hub *hub) {
    return hub ? atomic_load(&hub->count) : 0;
}

void ws_hub_stop(ws_hub *hub) {
    if (hub == NULL) return;
    uint64_t one = 1;
    pthread_mutex_lock(&hub->mu);
    hub->stop_requested = true;
    (void)!write(hub->evfd, &one, sizeof(one));
    pthread_mutex_unlock(&hub->mu);
    pthread_join(hub->thread, NULL);
}

void ws_hub_free(ws_hub *hub) {
    if (hub) hub_free(hub);
}
