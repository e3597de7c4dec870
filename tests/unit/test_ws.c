/*
 * test_ws.c - WebSocket (src/http/ws.h, ws_client.h): the handshake key
 * against RFC 6455's example, then the hub end to end - a real
 * libmicrohttpd daemon on loopback upgrading GET /events to WebSocket and
 * handing the socket to the hub, a real SQLite store written by the test,
 * and real clients (ws_client, or raw sockets where a client must misbehave).
 *
 * Checked: replay then live delivery in seq order exactly once (also while a
 * writer commits concurrently with connects), reconnecting with since,
 * isolation between users (also with one frame shared by several connections
 * of a user), frames written in pieces with pings between them, the
 * workflow filter, a client that does not read
 * closed with 1013 while another keeps up, 1009 for a frame too big, 1003
 * for a binary frame, 1001 for an idle client and on ws_hub_stop, the
 * connection limit, and the client's report of a refused upgrade.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/spec.h"
#include "http/ws.h"
#include "http/ws_client.h"
#include "store/store.h"
#include "testlib.h"
#include "util/util.h"

#define MAX_EVENTS 8192

/* ---- fixture: store, hub, MHD daemon ----------------------------------------- */

typedef struct fx {
    char dir[64];
    char db[128];
    store *st;
    ws_hub *hub;
    struct MHD_Daemon *d;
    int port;
    _Atomic long delivered;
    _Atomic int connections;
} fx;

typedef struct upgrade_req {
    ws_hub *hub;
    char user[64];
    int64_t workflow_id, since;
    int sndbuf;
} upgrade_req;

static void on_delivered(void *ctx, uint64_t n) {
    fx *f = ctx;
    atomic_fetch_add(&f->delivered, (long)n);
}

static void on_connections(void *ctx, int delta) {
    fx *f = ctx;
    atomic_fetch_add(&f->connections, delta);
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    (void)conn;
    (void)con_cls;
    upgrade_req *u = cls;
    /* A tiny send buffer makes "the client does not read" visible after a
     * few kilobytes instead of megabytes. */
    if (u->sndbuf > 0) setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &u->sndbuf, sizeof(u->sndbuf));
    if (ws_hub_add(u->hub, sock, urh, extra, extra_len, u->user, u->workflow_id, u->since) !=
        TS_OK)
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    free(u);
}

static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status,
                                  const char *body) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *query(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* GET /events?user=U[&workflow=W][&since=S][&sndbuf=N] -> 101 and the hub;
 * anything else -> a JSON error like the real API's. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    fx *f = cls;
    char accept[29];
    if (strcmp(url, "/plain") == 0) {
        static const char text[] = "no";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(2, (void *)text, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, 403, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/events") != 0)
        return reply_json(conn, 404,
                          "{\"error\": {\"code\": \"not_found\", \"message\": \"nothing at this "
                          "address\"}}");
    const char *user = query(conn, "user");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (user == NULL || ws_accept_key(key, accept) != TS_OK)
        return reply_json(conn, 400, "{\"error\": {\"code\": \"bad_request\", \"message\": "
                                     "\"user and a WebSocket key are required\"}}");
    upgrade_req *u = calloc(1, sizeof(*u));
    u->hub = f->hub;
    snprintf(u->user, sizeof(u->user), "%s", user);
    const char *wf = query(conn, "workflow"), *since = query(conn, "since"),
               *sndbuf = query(conn, "sndbuf");
    u->workflow_id = wf ? atoll(wf) : 0;
    u->since = since ? atoll(since) : 0;
    u->sndbuf = sndbuf ? atoi(sndbuf) : 0;
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, u);
    /* MHD adds "Connection: Upgrade" to upgrade responses itself (adding it
     * here would send "Connection: Upgrade, Upgrade"). */
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/tessera-ws-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->db, sizeof(f->db), "%s/tessera.db", f->dir);
    if (store_open(f->db, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    ws_hub_stop(f->hub); /* before the daemon: the hub gives sockets back to it */
    if (f->d) MHD_stop_daemon(f->d);
    ws_hub_free(f->hub);
    store_close(f->st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* The test's configuration: quick polls, metrics counted. */
static void config(fx *f, ws_hub_config *cfg) {
    ws_hub_config_default(cfg);
    cfg->db_url = f->db;
    cfg->on_delivered = on_delivered;
    cfg->on_connections = on_connections;
    cfg->metrics_ctx = f;
}

/* Starts the hub with cfg and a daemon on 127.0.0.1:<any port>. */
static void start(fx *f, const ws_hub_config *cfg) {
    char err[TS_ERRLEN];
    f->hub = ws_hub_start(cfg, err, sizeof(err));
    if (f->hub == NULL) fprintf(stderr, "ws_hub_start: %s\n", err);
    assert_non_null(f->hub);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_UPGRADE,
                            0, NULL, NULL, on_request, f, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_END);
    assert_non_null(f->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    f->port = info->port;
}

static void start_default(fx *f) {
    ws_hub_config cfg;
    config(f, &cfg);
    start(f, &cfg);
}

/* Waits (up to 2 s) until the hub holds n connections. */
static void wait_connections(fx *f, size_t n) {
    double end = ts_monotonic() + 2;
    while (ws_hub_connections(f->hub) != n && ts_monotonic() < end) usleep(2000);
    assert_int_equal(ws_hub_connections(f->hub), n);
}

/* ---- writing events ------------------------------------------------------------ */

/* A one-job workflow for user: 2 events (workflow.submitted, .queued). */
static int64_t submit(store *st, const char *user) {
    static const char SPEC[] =
        "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"j1\", \"job_type\": \"noop\"}]}";
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error se;
    assert_int_equal(spec_parse(SPEC, strlen(SPEC), NULL, NULL, NULL, &spec, &se), 0);
    int64_t id = 0;
    int rc = store_submit(st, user, spec, ts_now(), &id, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_submit: %s\n", err);
    assert_int_equal(rc, TS_OK);
    spec_free(spec);
    return id;
}

/* n job.progress events on workflow wf in one transaction, each carrying
 * a message of msg_len bytes (so the frames have a known size). */
static void progress(store *st, int64_t wf, int n, size_t msg_len) {
    char err[TS_ERRLEN];
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.workflow_id = wf;
    ch.job_index = 0;
    ch.job_id = "j1";
    ch.from = ch.to = JOB_RUNNING;
    ch.attempt = 1;
    ch.exit_code = -1;
    ch.event_type = "job.progress";
    if (msg_len >= sizeof(ch.reason)) msg_len = sizeof(ch.reason) - 1;
    memset(ch.reason, 'x', msg_len);
    assert_int_equal(store_begin(st, err, sizeof(err)), TS_OK);
    for (int i = 0; i < n; i++) {
        ch.at = ts_now();
        ch.progress = (i + 1.0) / n;
        int rc = store_apply(st, &ch, NULL, err, sizeof(err));
        if (rc != TS_OK) fprintf(stderr, "store_apply: %s\n", err);
        assert_int_equal(rc, TS_OK);
    }
    assert_int_equal(store_commit(st, err, sizeof(err)), TS_OK);
}

typedef struct seqs {
    size_t n;
    int64_t seq[MAX_EVENTS];
    int64_t wf[MAX_EVENTS];
} seqs;

static int collect_cb(void *ctx, const store_event *ev) {
    seqs *s = ctx;
    if (s->n < MAX_EVENTS) {
        s->seq[s->n] = ev->seq;
        s->wf[s->n] = ev->workflow_id;
        s->n++;
    }
    return 0;
}

/* What the store says a client (user, workflow) should get after since. */
static void expected(store *st, int64_t since, const char *user, int64_t wf, seqs *out) {
    char err[TS_ERRLEN];
    out->n = 0;
    assert_int_equal(store_events_since(st, since, user, wf, 0, collect_cb, out, err, sizeof(err)),
                     TS_OK);
}

/* ---- clients ------------------------------------------------------------------ */

static ws_client *connect_to(fx *f, const char *user, int64_t wf, int64_t since) {
    char url[256], err[TS_ERRLEN];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events?user=%s&workflow=%lld&since=%lld",
             f->port, user, (long long)wf, (long long)since);
    ws_client *c = ws_client_connect(url, NULL, 2.0, err, sizeof(err));
    if (c == NULL) fprintf(stderr, "ws_client_connect: %s\n", err);
    assert_non_null(c);
    return c;
}

/* Receives until out holds n events or timeout_s passed; each message must
 * be an event object. Returns how many arrived. */
static size_t recv_n(ws_client *c, size_t n, double timeout_s, seqs *out) {
    double end = ts_monotonic() + timeout_s;
    out->n = 0;
    while (out->n < n && out->n < MAX_EVENTS) {
        char *msg = NULL;
        size_t len = 0;
        int code = 0;
        int rc = ws_client_recv(c, fmax(0, end - ts_monotonic()), &msg, &len, &code);
        if (rc <= 0) break;
        json_t *ev = json_loadb(msg, len, 0, NULL);
        assert_non_null(ev);
        out->seq[out->n] = json_integer_value(json_object_get(ev, "seq"));
        out->wf[out->n] = json_integer_value(json_object_get(ev, "workflow_id"));
        out->n++;
        json_decref(ev);
        free(msg);
    }
    return out->n;
}

static void assert_same(const seqs *got, const seqs *want) {
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        if (got->seq[i] != want->seq[i])
            fprintf(stderr, "event %zu: got seq %lld, want %lld\n", i, (long long)got->seq[i],
                    (long long)want->seq[i]);
        assert_int_equal(got->seq[i], want->seq[i]);
    }
}

/* Nothing more arrives within t seconds (and the connection stays up). */
static void expect_quiet(ws_client *c, double t) {
    char *msg = NULL;
    size_t len = 0;
    int code = 0;
    int rc = ws_client_recv(c, t, &msg, &len, &code);
    if (rc == 1) fprintf(stderr, "unexpected message: %s\n", msg);
    free(msg);
    assert_int_equal(rc, 0);
}

/* Reads until the connection ends; returns the close code (0 = none). */
static int expect_closed(ws_client *c, double timeout_s) {
    double end = ts_monotonic() + timeout_s;
    for (;;) {
        char *msg = NULL;
        size_t len = 0;
        int code = 0;
        int rc = ws_client_recv(c, fmax(0, end - ts_monotonic()), &msg, &len, &code);
        free(msg);
        if (rc < 0) return code;
        if (rc == 0) fail_msg("the connection was not closed in time");
    }
}

/* ---- raw sockets, for clients that misbehave ------------------------------------ */

static int read_full(int fd, void *buf, size_t n, double end) {
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        double ms = (end - ts_monotonic()) * 1000;
        if (ms <= 0 || poll(&p, 1, (int)ms + 1) <= 0) return -1;
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One masked client frame (payload < 64 KiB) into out (len + 8 bytes);
 * returns its size. */
static size_t raw_frame(unsigned char *out, int opcode, const void *data, size_t len) {
    static const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (unsigned char)(0x80 | len);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) out[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    return h + len;
}

static void raw_send_frame(int fd, int opcode, const void *data, size_t len) {
    unsigned char *f = malloc(len + 8);
    size_t n = raw_frame(f, opcode, data, len);
    assert_int_equal(send(fd, f, n, MSG_NOSIGNAL), (ssize_t)n);
    free(f);
}

/* Connects, sends the upgrade request followed by tail (tail_len bytes,
 * in the same write, so that MHD reads them with the request) and reads
 * exactly the response head (byte by byte, so no frame is consumed).
 * rcvbuf > 0 shrinks the receive buffer before connecting, which is when
 * TCP takes it into account. */
static int raw_connect_tail(fx *f, const char *target, int rcvbuf, const void *tail,
                            size_t tail_len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[1024], head[2048];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     target);
    assert_true(n > 0 && (size_t)n + tail_len <= sizeof(req));
    if (tail_len) memcpy(req + n, tail, tail_len);
    assert_int_equal(send(fd, req, (size_t)n + tail_len, MSG_NOSIGNAL), n + (ssize_t)tail_len);
    size_t len = 0;
    double end = ts_monotonic() + 2;
    while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
        assert_true(len < sizeof(head) - 1);
        assert_int_equal(read_full(fd, head + len, 1, end), 0);
        len++;
    }
    head[len] = '\0';
    assert_non_null(strstr(head, " 101 "));
    assert_non_null(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    return fd;
}

static int raw_connect(fx *f, const char *target, int rcvbuf) {
    return raw_connect_tail(f, target, rcvbuf, NULL, 0);
}

/* Reads one (unmasked, server) frame. 0 or -1. payload is malloc'd. */
static int raw_read_frame(int fd, double timeout_s, int *opcode, unsigned char **payload,
                          size_t *len) {
    double end = ts_monotonic() + timeout_s;
    unsigned char h[8];
    if (read_full(fd, h, 2, end) != 0) return -1;
    *opcode = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        if (read_full(fd, h, 2, end) != 0) return -1;
        n = ((uint64_t)h[0] << 8) | h[1];
    } else if (n == 127) {
        if (read_full(fd, h, 8, end) != 0) return -1;
        n = 0;
        for (int i = 0; i < 8; i++) n = (n << 8) | h[i];
    }
    *payload = malloc(n + 1);
    *len = n;
    if (read_full(fd, *payload, n, end) != 0) {
        free(*payload);
        return -1;
    }
    (*payload)[n] = '\0';
    return 0;
}

/* Reads frames until a close frame; checks text frames' seqs increase.
 * Returns the close code; *texts counts the text frames before it. */
static int raw_until_close(int fd, double timeout_s, size_t *texts) {
    int64_t last = 0;
    *texts = 0;
    for (;;) {
        int op = 0;
        unsigned char *p = NULL;
        size_t len = 0;
        if (raw_read_frame(fd, timeout_s, &op, &p, &len) != 0) fail_msg("no close frame");
        if (op == 8) {
            int code = len >= 2 ? (p[0] << 8) | p[1] : 0;
            free(p);
            return code;
        }
        if (op == 1) {
            json_t *ev = json_loadb((const char *)p, len, 0, NULL);
            int64_t seq = json_integer_value(json_object_get(ev, "seq"));
            assert_true(seq > last);
            last = seq;
            json_decref(ev);
            (*texts)++;
        }
        free(p);
    }
}

/* ---- tests: the handshake key ------------------------------------------------------ */

static void test_accept_key(void **state) {
    (void)state;
    char out[29];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), TS_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 characters */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25jZ!==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25j-Q==",  /* URL-safe alphabet */
        "dGhlIHNhbXBsZSBub25jZQ= ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(out, "untouched");
        assert_int_equal(ws_accept_key(bad[i], out), TS_ERR);
        assert_string_equal(out, "");
    }
    assert_int_equal(ws_accept_key(NULL, out), TS_ERR);
}

static void test_start_fails_clearly(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN] = "";
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.db_url = "/nonexistent-dir/for/sure/tessera.db";
    assert_null(ws_hub_start(&cfg, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    cfg.db_url = NULL;
    assert_null(ws_hub_start(&cfg, err, sizeof(err)));
}

/* ---- tests: delivery --------------------------------------------------------------- */

/* Replay of what is stored, then live events, each once and in order, and
 * only the user's. */
static void test_replay_then_live(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t a1 = submit(f->st, "alice");
    submit(f->st, "bob");
    int64_t a2 = submit(f->st, "alice");
    progress(f->st, a1, 3, 10);
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got, want;
    expected(f->st, 0, "alice", 0, &want);
    assert_int_equal(want.n, 7);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    int64_t last = got.seq[got.n - 1];

    /* live, interleaved with another user's */
    progress(f->st, a2, 2, 10);
    submit(f->st, "bob");
    progress(f->st, a1, 1, 10);
    expected(f->st, last, "alice", 0, &want);
    assert_int_equal(want.n, 3);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    expect_quiet(c, 0.15);

    /* metrics: 10 frames queued, one connection */
    double end = ts_monotonic() + 1;
    while (atomic_load(&f->delivered) < 10 && ts_monotonic() < end) usleep(1000);
    assert_int_equal(atomic_load(&f->delivered), 10);
    assert_int_equal(atomic_load(&f->connections), 1);
    ws_client_close(c, 1000);
    wait_connections(f, 0);
    end = ts_monotonic() + 1;
    while (atomic_load(&f->connections) != 0 && ts_monotonic() < end) usleep(1000);
    assert_int_equal(atomic_load(&f->connections), 0);
}

/* A client reconnecting with the last seq it saw gets exactly the newer
 * events: those committed while it was away, then live ones. */
static void test_reconnect_since_last(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t wf = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got, want;
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    int64_t last = got.seq[1];
    ws_client_close(c, 1000);

    progress(f->st, wf, 2, 10); /* while away */
    c = connect_to(f, "alice", 0, last);
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    progress(f->st, wf, 1, 10); /* live */
    seqs more;
    assert_int_equal(recv_n(c, 1, 2, &more), 1);
    got.seq[got.n++] = more.seq[0];
    expected(f->st, last, "alice", 0, &want);
    assert_same(&got, &want);
    expect_quiet(c, 0.1);

    /* since beyond everything: only what comes later */
    int64_t top = got.seq[got.n - 1];
    ws_client *d = connect_to(f, "alice", 0, top + 1000);
    wait_connections(f, 2);
    progress(f->st, wf, 1, 10);
    expect_quiet(d, 0.15);
    assert_int_equal(recv_n(c, 1, 2, &more), 1);
    assert_true(more.seq[0] > top);
    ws_client_close(d, 1000);
    ws_client_close(c, 1000);
}

/* bob never receives alice's events, replayed or live. */
static void test_users_isolated(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t a = submit(f->st, "alice");
    int64_t b = submit(f->st, "bob");
    progress(f->st, a, 5, 10);
    ws_client *cb = connect_to(f, "bob", 0, 0);
    ws_client *ca = connect_to(f, "alice", 0, 0);
    progress(f->st, a, 5, 10);
    progress(f->st, b, 1, 10);
    progress(f->st, a, 5, 10);
    seqs got, want;
    expected(f->st, 0, "bob", 0, &want);
    assert_int_equal(want.n, 3);
    assert_int_equal(recv_n(cb, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], b);
    expect_quiet(cb, 0.15);
    expected(f->st, 0, "alice", 0, &want);
    assert_int_equal(recv_n(ca, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    ws_client_close(ca, 1000);
    ws_client_close(cb, 1000);
}

/* workflow=W: only W's events. */
static void test_workflow_filter(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t w1 = submit(f->st, "alice");
    int64_t w2 = submit(f->st, "alice");
    progress(f->st, w2, 3, 10);
    ws_client *c = connect_to(f, "alice", w1, 0);
    progress(f->st, w1, 2, 10);
    progress(f->st, w2, 2, 10);
    progress(f->st, w1, 1, 10);
    seqs got, want;
    expected(f->st, 0, "alice", w1, &want);
    assert_int_equal(want.n, 5);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], w1);
    expect_quiet(c, 0.15);
    ws_client_close(c, 1000);
}

typedef struct writer {
    store *st;
    int64_t a, b;
    int rounds, per_round;
    bool vary; /* add 0..2 events to each round */
    size_t msg_len;
    int pause_us;
    double finished; /* ts_monotonic() after the last commit */
} writer;

static void *writer_main(void *arg) {
    writer *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        progress(w->st, w->a, w->per_round + (w->vary ? i % 3 : 0), w->msg_len);
        if (w->b && i % 4 == 0) progress(w->st, w->b, 1, w->msg_len);
        usleep((useconds_t)w->pause_us);
    }
    w->finished = ts_monotonic();
    return NULL;
}

/* Clients connect with various since values while events are committed:
 * each still gets every one of its events after since, once, in order -
 * the replay and the live fan-out meet without gap or overlap. */
static void test_connect_while_writing(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    ws_hub_config cfg;
    config(f, &cfg);
    /* Replays go in pages of at most half of this (~30 events here), so a
     * replay spans many turns of the hub's loop, with polls in between: the
     * hand-over from replay to fan-out is really exercised. */
    cfg.max_queue_bytes = 16 * 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice"), b = submit(f->st, "bob");
    progress(f->st, a, 400, 100);
    store *rd = NULL; /* the writer thread owns f->st meanwhile */
    assert_int_equal(store_open(f->db, &rd, err, sizeof(err)), TS_OK);
    writer w = {.st = f->st, .a = a, .b = b, .rounds = 120, .per_round = 1, .vary = true,
                .msg_len = 20, .pause_us = 3000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    enum { N = 8 };
    ws_client *c[N];
    int64_t since[N];
    for (int i = 0; i < N; i++) {
        seqs now;
        expected(rd, 0, "alice", 0, &now);
        /* from the start, from the middle, from the very latest */
        since[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? now.seq[now.n / 2] : now.seq[now.n - 1];
        c[i] = connect_to(f, "alice", 0, since[i]);
        usleep(25000 + 7000 * (useconds_t)i);
    }
    pthread_join(t, NULL);
    for (int i = 0; i < N; i++) {
        seqs got, want;
        expected(rd, since[i], "alice", 0, &want);
        assert_int_equal(recv_n(c[i], want.n, 5, &got), want.n);
        assert_same(&got, &want);
        expect_quiet(c[i], i == 0 ? 0.1 : 0.01);
        ws_client_close(c[i], 1000);
    }
    store_close(rd);
}

/* Live events fanned out to several connections of each user, one frame
 * shared by all of a user's connections: each connection still gets
 * exactly its own user's events, in order, and never another user's. */
static void test_shared_frames_isolated(void **state) {
    fx *f = *state;
    start_default(f);
    enum { USERS = 3, PER_USER = 4 };
    const char *users[USERS] = {"alice", "bob", "carol"};
    int64_t wf[USERS];
    ws_client *c[USERS][PER_USER];
    for (int u = 0; u < USERS; u++) wf[u] = submit(f->st, users[u]);
    int64_t start_seq = 0;
    assert_int_equal(store_events_last_seq(f->st, &start_seq, NULL, 0), TS_OK);
    for (int u = 0; u < USERS; u++)
        for (int k = 0; k < PER_USER; k++) c[u][k] = connect_to(f, users[u], 0, start_seq);
    wait_connections(f, USERS * PER_USER);
    for (int round = 0; round < 10; round++)
        for (int u = 0; u < USERS; u++) progress(f->st, wf[u], 1 + (round + u) % 3, 40);
    for (int u = 0; u < USERS; u++) {
        seqs want;
        expected(f->st, start_seq, users[u], 0, &want);
        assert_true(want.n >= 10);
        for (int k = 0; k < PER_USER; k++) {
            seqs got;
            assert_int_equal(recv_n(c[u][k], want.n, 5, &got), want.n);
            assert_same(&got, &want);
            for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], wf[u]);
            expect_quiet(c[u][k], k == 0 ? 0.1 : 0.01);
            ws_client_close(c[u][k], 1000);
        }
    }
}

/* Reads one server frame slowly (a pause first, so the server's socket
 * fills and its frames are written in pieces) and checks its form: FIN, no
 * mask, no reserved bits, and text or ping. */
static int slow_read_frame(int fd, int *opcode, unsigned char **payload, size_t *len) {
    usleep(300);
    unsigned char h[2];
    if (read_full(fd, h, 1, ts_monotonic() + 5) != 0) return -1;
    if ((h[0] & 0xf0) != 0x80) fail_msg("frame byte 0 is %#x: not a final frame", h[0]);
    int op = h[0] & 0x0f;
    if (op != 1 && op != 9) fail_msg("opcode %d where a text frame or a ping was expected", op);
    int rc = 0;
    if (read_full(fd, h + 1, 1, ts_monotonic() + 5) != 0) return -1;
    if (h[1] & 0x80) fail_msg("a masked server frame");
    uint64_t n = h[1] & 0x7f;
    unsigned char ext[8];
    if (n == 126) {
        rc = read_full(fd, ext, 2, ts_monotonic() + 5);
        n = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (n == 127) {
        fail_msg("an event frame over 64 KiB");
    }
    if (rc != 0) return -1;
    *opcode = op;
    *len = n;
    *payload = malloc(n + 1);
    if (read_full(fd, *payload, n, ts_monotonic() + 5) != 0) {
        free(*payload);
        return -1;
    }
    (*payload)[n] = '\0';
    return 0;
}

/* A client whose socket buffers are tiny and that reads slowly, while the
 * hub pings it every 10 ms: event frames are written in pieces, pings are
 * queued meanwhile, and the client still reads well-formed frames only -
 * every event whole, once, in order, pings between frames, never inside
 * one (the hub writes event frames itself and control frames through
 * wslay; ws.c). */
static void test_split_frames_and_pings(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.ping_interval_s = 0.01;
    cfg.idle_timeout_s = 60; /* this client never answers pings */
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    int fd = raw_connect(f, "/events?user=alice&since=0&sndbuf=4096", 4096);
    wait_connections(f, 1);
    for (int i = 0; i < 6; i++) progress(f->st, a, 100, 200);
    seqs *want = malloc(sizeof(*want));
    expected(f->st, 0, "alice", 0, want);
    size_t texts = 0, pings = 0;
    while (texts < want->n) {
        int op = 0;
        unsigned char *p = NULL;
        size_t len = 0;
        if (slow_read_frame(fd, &op, &p, &len) != 0) fail_msg("the stream ended or stalled");
        if (op == 9) {
            pings++;
        } else {
            json_t *ev = json_loadb((const char *)p, len, 0, NULL);
            if (ev == NULL) fail_msg("event %zu is not JSON: %.60s", texts, p);
            assert_int_equal(json_integer_value(json_object_get(ev, "seq")), want->seq[texts]);
            json_decref(ev);
            texts++;
        }
        free(p);
    }
    /* pings come on (they are the hub's heartbeat) and are whole too */
    for (;;) {
        int op = 0;
        unsigned char *p = NULL;
        size_t len = 0;
        if (slow_read_frame(fd, &op, &p, &len) != 0) fail_msg("no ping after the events");
        free(p);
        if (op == 9) break;
        fail_msg("an event frame after the last event");
    }
    print_message("%zu events, %zu pings between them\n", texts, pings);
    raw_send_frame(fd, 8, "\x03\xe8", 2);
    wait_connections(f, 0);
    close(fd);
    free(want);
}

/* ---- tests: limits and closes ---------------------------------------------------- */

/* A client that never reads is closed with 1013 once its unsent data passes
 * max_queue_bytes; a client of the same user keeps receiving everything,
 * promptly. */
static void test_slow_client_closed_1013(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_queue_bytes = 384 * 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    int slow = raw_connect(f, "/events?user=alice&since=0&sndbuf=4096", 4096);
    ws_client *fast = connect_to(f, "alice", 0, 0);
    wait_connections(f, 2);
    store *rd = NULL;
    assert_int_equal(store_open(f->db, &rd, err, sizeof(err)), TS_OK);
    /* 20 batches of ~150 events of ~400 bytes: ~1.2 MB, 25 ms apart */
    writer w = {.st = f->st, .a = a, .rounds = 20, .per_round = 150, .msg_len = 250,
                .pause_us = 25000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    seqs *got = malloc(sizeof(*got)), *want = malloc(sizeof(*want));
    size_t total = 2 + 20 * 150;
    assert_int_equal(recv_n(fast, total, 10, got), total);
    double received = ts_monotonic();
    pthread_join(t, NULL);
    expected(rd, 0, "alice", 0, want);
    assert_same(got, want);
    assert_true(received - w.finished < 1.0);

    size_t texts = 0;
    assert_int_equal(raw_until_close(slow, 3, &texts), 1013);
    assert_true(texts < total);
    raw_send_frame(slow, 8, "\x03\xe8", 2); /* our close reply */
    wait_connections(f, 1);
    close(slow);
    expect_quiet(fast, 0.05);
    ws_client_close(fast, 1000);
    store_close(rd);
    free(got);
    free(want);
}

/* A frame over max_frame_bytes: 1009. Smaller text frames are ignored. */
static void test_oversized_frame_1009(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_frame_bytes = 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got;
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    assert_int_equal(ws_client_send_text(c, "hello", 5), TS_OK);
    progress(f->st, a, 1, 10);
    assert_int_equal(recv_n(c, 1, 2, &got), 1); /* still open */
    char *big = malloc(4096);
    memset(big, 'a', 4096);
    ws_client_send_text(c, big, 4096); /* may fail once the server stops reading */
    free(big);
    assert_int_equal(expect_closed(c, 2), 1009);
    ws_client_close(c, 1000);
    wait_connections(f, 0);
}

/* A binary frame: 1003. */
static void test_binary_frame_1003(void **state) {
    fx *f = *state;
    start_default(f);
    submit(f->st, "alice");
    int fd = raw_connect(f, "/events?user=alice&since=0", 0);
    raw_send_frame(fd, 2, "abc", 3);
    size_t texts = 0;
    assert_int_equal(raw_until_close(fd, 2, &texts), 1003);
    raw_send_frame(fd, 8, "\x03\xeb", 2);
    wait_connections(f, 0);
    close(fd);
}

/* Bytes that arrive with the request (MHD reads them before the upgrade)
 * are the client's first frames: here a ping, answered with its pong. */
static void test_first_frame_with_request(void **state) {
    fx *f = *state;
    start_default(f);
    unsigned char ping[16];
    size_t n = raw_frame(ping, 9, "hi", 2);
    int fd = raw_connect_tail(f, "/events?user=alice&since=0", 0, ping, n);
    int op = 0;
    unsigned char *p = NULL;
    size_t len = 0;
    assert_int_equal(raw_read_frame(fd, 2, &op, &p, &len), 0);
    assert_int_equal(op, 10);
    assert_int_equal(len, 2);
    assert_memory_equal(p, "hi", 2);
    free(p);
    raw_send_frame(fd, 8, "\x03\xe8", 2);
    size_t texts = 0;
    assert_int_equal(raw_until_close(fd, 2, &texts), 1000); /* our close, echoed */
    wait_connections(f, 0);
    close(fd);
}

/* A client that answers no ping is closed with 1001 after idle_timeout_s;
 * one that does (ws_client answers inside recv) stays. */
static void test_idle_timeout_1001(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.ping_interval_s = 0.15;
    cfg.idle_timeout_s = 0.5;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *silent = connect_to(f, "alice", 0, 2);
    ws_client *alive = connect_to(f, "alice", 0, 2);
    double t0 = ts_monotonic();
    while (ts_monotonic() - t0 < 1.1) expect_quiet(alive, 0.05);
    assert_int_equal(expect_closed(silent, 1), 1001);
    wait_connections(f, 1); /* released once our close echo arrived */
    progress(f->st, a, 1, 10);
    seqs got;
    assert_int_equal(recv_n(alive, 1, 2, &got), 1);
    ws_client_close(silent, 1000);
    ws_client_close(alive, 1000);
}

/* ws_hub_stop: 1001 to every client, within about a second. */
static void test_stop_sends_1001(void **state) {
    fx *f = *state;
    start_default(f);
    submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    ws_client *d = connect_to(f, "bob", 0, 0);
    wait_connections(f, 2);
    double t0 = ts_monotonic();
    ws_hub_stop(f->hub);
    ws_hub_free(f->hub);
    f->hub = NULL;
    assert_true(ts_monotonic() - t0 < 1.5);
    assert_int_equal(expect_closed(c, 1), 1001);
    assert_int_equal(expect_closed(d, 1), 1001);
    ws_client_close(c, 1000);
    ws_client_close(d, 1000);
}

/* Beyond max_connections, a new connection is closed with 1013. */
static void test_connection_limit_1013(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_connections = 1;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 2);
    wait_connections(f, 1);
    ws_client *d = connect_to(f, "alice", 0, 2);
    assert_int_equal(expect_closed(d, 2), 1013);
    ws_client_close(d, 1000);
    wait_connections(f, 1);
    progress(f->st, a, 1, 10);
    seqs got;
    assert_int_equal(recv_n(c, 1, 2, &got), 1);
    ws_client_close(c, 1000);
}

/* The client reports a refused upgrade with the status and the API's error
 * message, and other failures clearly. */
static void test_client_reports_refusal(void **state) {
    fx *f = *state;
    char url[128], err[TS_ERRLEN];
    start_default(f);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/nothing", f->port);
    assert_null(ws_client_connect(url, "X-User-ID: alice\r\n", 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 404: nothing at this address");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", f->port);
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 400: user and a WebSocket key are required");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/plain", f->port);
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 403: Forbidden"); /* no JSON: the reason phrase */

    /* a port nobody listens on */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", ntohs(sa.sin_port));
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(ws_client_connect("https://example.org/", NULL, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported URL"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test_setup_teardown(test_start_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_since_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_frames_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_frames_and_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_closed_1013, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_1009, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_frame_1003, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_frame_with_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_sends_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit_1013, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reports_refusal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
