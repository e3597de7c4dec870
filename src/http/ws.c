/*
 * ws.c - the handshake key (RFC 6455 §4.2.2), the hub's configuration
 * defaults, and one hub connection: wslay's callbacks on the non-blocking
 * socket, reading, writing, limits and closing. The hub's thread, store
 * polling and fan-out are in ws_hub.c.
 *
 * Writing. Event frames do not go through wslay: the hub builds each
 * event's frame once (ws_outq.h) and every connection that receives it
 * queues a reference, written together with the connection's other queued
 * frames by one sendmsg - instead of a copy, a header and two send(2)s per
 * event and connection (with TCP_NODELAY, two segments). wslay keeps the
 * control frames (pongs, pings, the close) and the reading. The two never
 * interleave inside a frame: wslay only writes when no event frame is half
 * written, and event frames only when wslay has nothing left to write (it
 * may have stopped in the middle of one of its frames).
 *
 * Closing. A close (ours or the peer's) starts a deadline of CLOSE_GRACE_S.
 * The socket is handed back to MHD (MHD_upgrade_action CLOSE, never
 * close(2)) when both close frames have crossed, when the peer is gone or
 * failed, or at the deadline. Until then the connection keeps reading -
 * through wslay, or by discarding bytes once wslay stopped reading (message
 * too big) - because closing a socket with unread input resets the
 * connection and can destroy the close frame just sent.
 */
#include "http/ws.h"
#include "http/ws_io.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <wslay/wslay.h>

#include "http/ws_internal.h"
#include "util/log.h"
#include "util/util.h"

#define WS_KEY_LEN 24 /* base64 of 16 bytes: 22 characters and "==" */
#define WRITE_IOV 64  /* event frames per sendmsg */

/* Is c a character of the base64 alphabet (RFC 4648 §4, not URL-safe)? */
static bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

/* RFC 6455 asks for a base64-encoded 16-byte nonce. Anything else is a
 * client we do not understand, and answering it would let a non-WebSocket
 * client believe the upgrade succeeded. */
static bool key_valid(const char *key) {
    if (key == NULL || strlen(key) != WS_KEY_LEN) return false;
    for (size_t i = 0; i < WS_KEY_LEN - 2; i++)
        if (!is_base64_char(key[i])) return false;
    return key[WS_KEY_LEN - 2] == '=' && key[WS_KEY_LEN - 1] == '=';
}

/*
 * base64(SHA-1(key + GUID)). The client recomputes this to be sure that the
 * server really speaks WebSocket (and that no cache answered for it).
 * TS_ERR for a key that is not 24 characters of base64; out is then "".
 */
int ws_accept_key(const char *client_key, char out[29]) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char text[WS_KEY_LEN + sizeof(WS_GUID)];
    out[0] = '\0';
    if (!key_valid(client_key)) return TS_ERR;
    memcpy(text, client_key, WS_KEY_LEN);
    memcpy(text + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
    if (EVP_Digest(text, WS_KEY_LEN + sizeof(WS_GUID) - 1, digest, &digest_len, EVP_sha1(),
                   NULL) != 1 ||
        digest_len != 20)
        return TS_ERR;
    /* 20 bytes -> 28 characters (with one "=") and a NUL: exactly out's size. */
    EVP_EncodeBlock((unsigned char *)out, digest, 20);
    return TS_OK;
}

/* The defaults documented in ws.h; db_url must still be set by the caller. */
void ws_hub_config_default(ws_hub_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->poll_interval_s = 0.02;
    cfg->ping_interval_s = 20;
    cfg->idle_timeout_s = 60;
    cfg->max_frame_bytes = 65536;
    cfg->max_queue_bytes = 4u << 20;
    cfg->max_connections = 10000;
}

/* ---- one connection ------------------------------------------------------ */

/* Puts c on the list of connections to flush and re-arm at the end of the
 * iteration: fan-out, replay and sweeps only queue frames, so that one
 * send() per connection carries everything queued in the iteration. */
void ws_conn_mark(ws_hub *h, ws_conn *c) {
    if (c->dirty) return;
    c->dirty = true;
    c->dnext = NULL;
    if (h->dirty_tail) h->dirty_tail->dnext = c;
    else h->dirty = c;
    h->dirty_tail = c;
}

/* A close frame is queued or was received: no more events for c. */
bool ws_conn_closing(const ws_conn *c) {
    return c->close_deadline > 0;
}

/* Queues a close frame (once) and starts the grace period. */
void ws_conn_close(ws_conn *c, uint16_t code, const char *reason) {
    if (!ws_conn_closing(c)) c->close_deadline = c->hub->now + CLOSE_GRACE_S;
    /* WSLAY_ERR_NO_MORE_MSG when a close is already queued: the first one
     * is the one the client sees. */
    wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason));
}

/* Reads for wslay: first the bytes MHD had already read (the start of the
 * client's first frame), then the socket, without blocking. */
static ssize_t conn_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                            void *user_data) {
    (void)flags;
    ws_conn *c = user_data;
    bool from_socket = c->extra_off >= c->extra_len;
    bool eof = false;
    ssize_t n = ws_io_recv(ctx, c->fd, c->extra, c->extra_len, &c->extra_off, buf, len, &eof);
    if (n > 0 && from_socket) c->last_rx = c->hub->now;
    if (eof) c->eof = true;
    return n;
}

/* Writes for wslay. MSG_NOSIGNAL: a client that went away must not raise
 * SIGPIPE in a process that may not ignore it. */
static ssize_t conn_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                            int flags, void *user_data) {
    (void)flags;
    ws_conn *c = user_data;
    return ws_io_send(ctx, c->fd, data, len);
}

ssize_t ws_io_recv(wslay_event_context_ptr ctx, int fd, const char *pre, size_t pre_len,
                   size_t *pre_off, uint8_t *buf, size_t len, bool *eof) {
    if (*pre_off < pre_len) {
        size_t n = pre_len - *pre_off < len ? pre_len - *pre_off : len;
        memcpy(buf, pre + *pre_off, n);
        *pre_off += n;
        return (ssize_t)n;
    }
    ssize_t n;
    do n = recv(fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) return n;
    bool again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    *eof = n == 0;
    wslay_event_set_error(ctx, again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

ssize_t ws_io_send(wslay_event_context_ptr ctx, int fd, const uint8_t *data, size_t len) {
    ssize_t n;
    do n = send(fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) return n;
    bool again = errno == EAGAIN || errno == EWOULDBLOCK;
    wslay_event_set_error(ctx, again ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/* Binary frames are refused as soon as their header arrives. Reading goes
 * on (frames are dropped) so that the client's close reply is seen. */
static void conn_frame_start_cb(wslay_event_context_ptr ctx,
                                const struct wslay_event_on_frame_recv_start_arg *arg,
                                void *user_data) {
    (void)ctx;
    ws_conn *c = user_data;
    c->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
    if (arg->opcode == WSLAY_BINARY_FRAME)
        ws_conn_close(c, WSLAY_CODE_UNSUPPORTED_DATA, "binary frames are not accepted");
}

/* Notes the client's close frame whatever its code: wslay 1.1 takes codes
 * above 1011 (such as a client echoing our 1013) for a protocol error and
 * never reports the close as received, which would keep the connection
 * until the grace period ends. */
static void conn_frame_end_cb(wslay_event_context_ptr ctx, void *user_data) {
    (void)ctx;
    ws_conn *c = user_data;
    if (c->in_close) c->peer_closed = true;
    c->in_close = false;
}

/* Frees c's memory only; the socket is MHD's (see ws_conn_release). */
void ws_conn_free(ws_conn *c) {
    if (c == NULL) return;
    wslay_event_context_free(c->ws);
    ws_outq_free(&c->out);
    free(c->user);
    free(c->extra);
    free(c);
}

/* A connection for ws_hub_add: copies of the caller's data, the socket
 * made non-blocking (the hub never waits on one client) and TCP_NODELAY
 * (small event frames must not wait for Nagle and delayed ACKs). */
ws_conn *ws_conn_new(ws_hub *h, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh,
                     const char *extra, size_t extra_len, const char *user, int64_t workflow_id,
                     int64_t since) {
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = conn_recv_cb,
        .send_callback = conn_send_cb,
        .on_frame_recv_start_callback = conn_frame_start_cb,
        .on_frame_recv_end_callback = conn_frame_end_cb,
    };
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0) return NULL;
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ws_conn *c = ts_calloc(1, sizeof(*c));
    if (wslay_event_context_server_init(&c->ws, &callbacks, c) != 0) {
        free(c);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, h->cfg.max_frame_bytes);
    c->hub = h;
    c->fd = sock;
    c->urh = urh;
    c->user = ts_strdup(user);
    c->workflow_id = workflow_id;
    c->since = since;
    if (extra_len > 0) {
        c->extra = ts_malloc(extra_len);
        memcpy(c->extra, extra, extra_len);
        c->extra_len = extra_len;
    }
    return c;
}

/* Once wslay has stopped reading (it does after a frame that is too big),
 * the client's remaining bytes are read and dropped: see the file comment.
 * Bounded per call so that one flooding client cannot hold the thread. */
static void conn_drain(ws_conn *c) {
    char buf[16384];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) continue;
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) c->eof = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK) c->failed = true;
        return;
    }
}

/* Reads what the socket has: frames through wslay (which answers pings
 * and the client's close), or dropped bytes once wslay stopped reading. */
void ws_conn_read(ws_conn *c) {
    if (wslay_event_get_read_enabled(c->ws)) {
        if (wslay_event_recv(c->ws) != 0) c->failed = true;
    } else {
        conn_drain(c);
    }
    /* wslay stops reading when it queued a close itself (the client's close
     * echoed, 1009, a protocol error): that starts the grace period too. */
    if (!wslay_event_get_read_enabled(c->ws) && !ws_conn_closing(c))
        c->close_deadline = c->hub->now + CLOSE_GRACE_S;
}

/* Writes queued event frames, up to WRITE_IOV per sendmsg, until the queue
 * is empty (true) or the socket takes no more or failed (false). first_only:
 * only the rest of the first frame, so that wslay's frames can go next. */
static bool conn_send_events(ws_conn *c, bool first_only) {
    struct iovec iov[WRITE_IOV];
    while (!ws_outq_empty(&c->out)) {
        size_t n = ws_outq_iov(&c->out, iov, first_only ? 1 : WRITE_IOV), offered = 0;
        for (size_t i = 0; i < n; i++) offered += iov[i].iov_len;
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t got;
        do got = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (got < 0 && errno == EINTR);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) c->failed = true;
            return false;
        }
        ws_outq_consume(&c->out, (size_t)got);
        if ((size_t)got < offered) return false;
        if (first_only) break;
    }
    return true;
}

/* Sends what is queued, as far as the socket takes it without blocking:
 * the rest of a half-written event frame first, then wslay's control
 * frames (a pong or the close does not wait behind a backlog of events,
 * as with wslay's own queues), then the other event frames (see the file
 * comment). A closing
 * connection sends no event frame it has not started: nothing may follow
 * the close frame, which goes ahead of queued data (as in wslay). */
void ws_conn_write(ws_conn *c) {
    if (c->failed) return;
    if (ws_conn_closing(c)) ws_outq_drop_unstarted(&c->out);
    if (ws_outq_partial(&c->out) && !conn_send_events(c, true)) return;
    if (wslay_event_want_write(c->ws)) {
        if (wslay_event_send(c->ws) != 0) {
            c->failed = true;
            return;
        }
        if (wslay_event_want_write(c->ws)) return; /* full, maybe inside one of its frames */
    }
    if (!ws_conn_closing(c)) conn_send_events(c, false);
}

/* Is the connection over: failed, both closes exchanged (or ours sent and
 * the peer gone, or the hub stopping), or out of time? */
static bool conn_finished(const ws_hub *h, const ws_conn *c) {
    if (c->failed) return true;
    if (ws_conn_closing(c) && h->now >= c->close_deadline) return true;
    if (!wslay_event_get_close_sent(c->ws)) return false;
    return wslay_event_get_close_received(c->ws) || c->peer_closed || c->eof || h->stopping;
}

static void bucket_unlink(ws_hub *h, ws_conn *c) {
    ws_user *u = c->bucket;
    if (c->uprev) c->uprev->unext = c->unext;
    else u->conns = c->unext;
    if (c->unext) c->unext->uprev = c->uprev;
    if (u->conns == NULL) {
        map_del_str(&h->users, u->name);
        free(u->name);
        free(u);
    }
}

/* Ends c's replay: it leaves hub->replay (and joins the fan-out). */
void ws_conn_replay_unlink(ws_hub *h, ws_conn *c) {
    if (!c->replaying) return;
    if (c->rprev) c->rprev->rnext = c->rnext;
    else h->replay = c->rnext;
    if (c->rnext) c->rnext->rprev = c->rprev;
    c->replaying = false;
}

/* Gives the socket back to MHD and forgets the connection. The fd leaves
 * the epoll set first: MHD closes it from its own thread, after which the
 * number can be reused. */
void ws_conn_release(ws_hub *h, ws_conn *c) {
    epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->prev) c->prev->next = c->next;
    else h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    bucket_unlink(h, c);
    ws_conn_replay_unlink(h, c);
    log_emit(LOG_DEBUG, NULL, NULL, "websocket closed",
             json_pack("{ss,si,si,sb}", "user", c->user, "code_sent",
                       (int)wslay_event_get_status_code_sent(c->ws), "code_received",
                       (int)wslay_event_get_status_code_received(c->ws), "failed", c->failed));
    MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
    h->n_conns--;
    atomic_fetch_sub(&h->count, 1);
    if (h->cfg.on_connections) h->cfg.on_connections(h->cfg.metrics_ctx, -1);
    ws_conn_free(c);
}

/* After any activity: release the connection if it is over, else make the
 * epoll registration match what wslay wants. Reading never stops before the
 * end (see conn_drain); writing waits for EPOLLOUT only while frames are
 * queued. */
void ws_conn_update(ws_hub *h, ws_conn *c) {
    if (conn_finished(h, c)) {
        ws_conn_release(h, c);
        return;
    }
    uint32_t ev = c->eof ? 0 : EPOLLIN;
    if (wslay_event_want_write(c->ws) || !ws_outq_empty(&c->out)) ev |= EPOLLOUT;
    if (ev == 0) { /* nothing can happen any more */
        ws_conn_release(h, c);
        return;
    }
    if (ev == c->events) return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, c->fd, &e) != 0) {
        ws_conn_release(h, c);
        return;
    }
    c->events = ev;
}

/* One epoll event of c's socket. */
void ws_conn_on_event(ws_hub *h, ws_conn *c, uint32_t events) {
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ws_conn_read(c);
    ws_conn_write(c); /* EPOLLOUT, or pongs and close replies queued while reading */
    ws_conn_update(h, c);
}

/* The unsent-data limit, checked after a send attempt so that what the
 * kernel accepted does not count: a client is "slow" only if it really
 * does not read. */
size_t ws_conn_unsent(const ws_conn *c) {
    return ws_outq_bytes(&c->out) + wslay_event_get_queued_msg_length(c->ws);
}

void ws_conn_check_queue(ws_hub *h, ws_conn *c) {
    if (ws_conn_closing(c) || c->failed) return;
    if (ws_conn_unsent(c) <= h->cfg.max_queue_bytes) return;
    ws_conn_close(c, 1013, "too much unsent data; reconnect with since");
    ws_conn_write(c);
}

/* Queues one event's frame; c->since follows it so that the same event is
 * never queued twice (replay and fan-out both check it). A closing
 * connection takes none (nothing may follow its close frame): not queued,
 * not counted as delivered. */
void ws_conn_queue_frame(ws_hub *h, ws_conn *c, ws_frame *f, int64_t seq) {
    c->since = seq;
    if (ws_conn_closing(c)) return;
    ws_outq_push(&c->out, f);
    h->delivered++;
    ws_conn_mark(h, c);
}
