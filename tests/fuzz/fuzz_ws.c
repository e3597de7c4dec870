/*
 * fuzz_ws.c - one server-side WebSocket connection of the hub
 * (src/http/ws.c with wslay) reading what a client sends: the bytes
 * libmicrohttpd read past the upgrade request (ws_conn_new's "extra"),
 * then the rest through a socket, in chunks, while events are queued to the
 * client, the unsent-data limit is checked and the server may close. The
 * connection is one end of a socketpair; the harness plays the client on
 * the other end. The hub's thread, epoll loop and store are not involved
 * (ws_hub.c); the connection functions are those the hub calls.
 *
 * Input: byte 0 = how many bytes are "extra" (0..255, capped), byte 1 =
 * a seed for chunk sizes and the order of operations, the rest = the
 * client's bytes. The first 24 bytes are also given to ws_accept_key.
 *
 * Oracles beyond the sanitizers:
 *   - ws_accept_key accepts exactly 22 base64 characters and "==", and
 *     then answers 28 characters;
 *   - everything the server writes parses as valid server frames for a
 *     wslay client (unmasked, well formed), with text messages that are the
 *     queued events, in order, and at most one close frame, last;
 *   - a close code the server sends is one RFC 6455 allows on the wire.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "fuzz_lib.h"
#include "http/ws.h"
#include "http/ws_internal.h"

#define MAX_EVENTS 8

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    return 0;
}

static bool b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static void check_accept_key(const uint8_t *data, size_t size) {
    char key[25], out[29];
    size_t n = size < 24 ? size : 24;
    memcpy(key, data, n);
    key[n] = '\0';
    bool want = strlen(key) == 24 && key[22] == '=' && key[23] == '=';
    for (size_t i = 0; want && i < 22; i++) want = b64(key[i]);
    int rc = ws_accept_key(key, out);
    FUZZ_CHECK((rc == TS_OK) == want, "ws_accept_key(\"%s\") = %d", key, rc);
    FUZZ_CHECK(rc != TS_OK ? out[0] == '\0' : strlen(out) == 28, "accept key \"%s\"", out);
}

/* ---- the client's view of what the server wrote -------------------------- */

typedef struct client_view {
    uint8_t *buf;
    size_t len, cap, off;
    int texts, closes;
    uint16_t close_code;
    bool after_close; /* a message came after the close */
    char expected[MAX_EVENTS * 2][48];
    int n_expected;
} client_view;

static ssize_t view_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                         void *user) {
    (void)flags;
    client_view *v = user;
    if (v->off >= v->len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = v->len - v->off < len ? v->len - v->off : len;
    memcpy(buf, v->buf + v->off, n);
    v->off += n;
    return (ssize_t)n;
}

static ssize_t view_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                         void *user) {
    (void)ctx, (void)data, (void)flags, (void)user;
    return (ssize_t)len; /* the client's replies go nowhere */
}

static int view_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx, (void)user;
    memset(buf, 0x5a, len);
    return 0;
}

static void view_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                     void *user) {
    (void)ctx;
    client_view *v = user;
    if (v->closes) v->after_close = true;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        FUZZ_CHECK(v->texts < v->n_expected, "more text messages than events queued");
        const char *want = v->expected[v->texts++];
        FUZZ_CHECK(arg->msg_length == strlen(want) && memcmp(arg->msg, want, arg->msg_length) == 0,
                   "text message %d is not the event queued", v->texts);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        v->closes++;
        v->close_code = arg->status_code;
    } else {
        FUZZ_CHECK(arg->opcode == WSLAY_PONG, "server sent opcode %d", arg->opcode);
    }
}

/* Reads whatever the server wrote so far into the view's buffer. */
static void drain_peer(int fd, client_view *v) {
    for (;;) {
        if (v->cap - v->len < 65536) {
            v->cap = v->cap ? v->cap * 2 : 131072;
            v->buf = realloc(v->buf, v->cap);
        }
        ssize_t n = recv(fd, v->buf + v->len, v->cap - v->len, MSG_DONTWAIT);
        if (n <= 0) return;
        v->len += (size_t)n;
    }
}

static void check_server_output(client_view *v) {
    static const struct wslay_event_callbacks cb = {
        .recv_callback = view_recv, .send_callback = view_send, .genmask_callback = view_genmask,
        .on_msg_recv_callback = view_msg};
    wslay_event_context_ptr ctx;
    FUZZ_CHECK(wslay_event_context_client_init(&ctx, &cb, v) == 0, "wslay client init");
    int rc = wslay_event_recv(ctx);
    FUZZ_CHECK(rc == 0, "the server's frames do not parse (wslay %d) after %zu of %zu bytes", rc,
               v->off, v->len);
    FUZZ_CHECK(v->off == v->len, "unread server bytes");
    FUZZ_CHECK(v->closes <= 1 && !v->after_close, "%d close frames, message after close: %d",
               v->closes, v->after_close);
    if (v->closes) {
        uint16_t c = v->close_code;
        /* Ours (1001, 1003, 1009, 1013), wslay's (1002, 1007), or the
         * client's own code echoed (1000-1003, 1007-1014, 3000-4999); 0
         * and 1005 stand for a close frame without a code. */
        FUZZ_CHECK(c == 0 || (c >= 1000 && c <= 1003) || c == WSLAY_CODE_NO_STATUS_RCVD ||
                       (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999),
                   "close code %u", c);
    }
    wslay_event_context_free(ctx);
}

/* ---- the connection --------------------------------------------------------- */

static void queue_event(ws_hub *hub, ws_conn *c, client_view *v, int64_t seq) {
    if (v->n_expected >= (int)(sizeof(v->expected) / sizeof(v->expected[0]))) return;
    char *json = v->expected[v->n_expected];
    snprintf(json, sizeof(v->expected[0]), "{\"seq\":%lld,\"type\":\"job.progress\"}",
             (long long)seq);
    ws_frame *f = ws_frame_text(json, strlen(json));
    uint64_t before = hub->delivered;
    ws_conn_queue_frame(hub, c, f, seq);
    ws_frame_unref(f);
    /* A closing connection takes no more events: those are not sent, and
     * not counted as delivered. */
    if (hub->delivered > before) v->n_expected++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    check_accept_key(data + 2, size - 2);
    size_t n_extra = data[0], seed = data[1];
    const uint8_t *bytes = data + 2;
    size_t n = size - 2;
    if (n_extra > n) n_extra = n;
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
               strerror(errno));
    ws_hub hub;
    memset(&hub, 0, sizeof(hub));
    ws_hub_config_default(&hub.cfg);
    hub.cfg.max_frame_bytes = 1024;  /* small, so that 1009 is reachable */
    hub.cfg.max_queue_bytes = 256;   /* likewise 1013 */
    hub.now = 1000.0;
    ws_conn *c = ws_conn_new(&hub, sv[0], (struct MHD_UpgradeResponseHandle *)&hub,
                             (const char *)bytes, n_extra, "alice", 0, 0);
    FUZZ_CHECK(c != NULL, "ws_conn_new failed");
    static client_view v;
    v.len = v.off = 0;
    v.texts = v.closes = v.n_expected = 0;
    v.after_close = false;
    size_t off = n_extra;
    int64_t seq = 1;
    for (int step = 0; step < 64 && !c->failed; step++) {
        size_t chunk = 1 + (seed * 31 + (size_t)step * 17) % 97;
        if (off < n) {
            if (chunk > n - off) chunk = n - off;
            ssize_t w = send(sv[1], bytes + off, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
        }
        hub.now += 0.5;
        ws_conn_read(c);
        if ((seed >> (step % 8)) & 1) queue_event(&hub, c, &v, seq++);
        if (step % 5 == 3) ws_conn_check_queue(&hub, c);
        ws_conn_write(c);
        drain_peer(sv[1], &v);
        if (off >= n && (!wslay_event_get_read_enabled(c->ws) || step > 8)) break;
    }
    if (!c->failed && (seed & 0x80)) ws_conn_close(c, 1001, "going away");
    shutdown(sv[1], SHUT_WR); /* the client goes: the server sees EOF */
    ws_conn_read(c);
    ws_conn_write(c);
    drain_peer(sv[1], &v);
    if (!c->failed) check_server_output(&v);
    ws_conn_free(c);
    close(sv[0]);
    close(sv[1]);
    return 0;
}
