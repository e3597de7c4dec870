/*
 * ws_fixture.h - the fixture of the WebSocket tests (test_ws.c,
 * test_ws_limits.c): a real SQLite store in a temporary directory, the hub,
 * and a libmicrohttpd daemon on loopback that upgrades
 * GET /events?user=U[&workflow=W][&since=S][&sndbuf=N] and hands the socket
 * to the hub; writing events into the store (also from a thread, as a
 * concurrent writer); clients (ws_client, and raw sockets for clients that
 * must misbehave) and what they should receive according to the store.
 * Header-only (static inline), like testlib.h, so each test stays one
 * binary and a helper one file does not use is no warning.
 */
#ifndef TESSERA_TESTS_WS_FIXTURE_H
#define TESSERA_TESTS_WS_FIXTURE_H

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

static inline void on_delivered(void *ctx, uint64_t n) {
    fx *f = ctx;
    atomic_fetch_add(&f->delivered, (long)n);
}

static inline void on_connections(void *ctx, int delta) {
    fx *f = ctx;
    atomic_fetch_add(&f->connections, delta);
}

static inline void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls,
                              const char *extra, size_t extra_len, MHD_socket sock,
                              struct MHD_UpgradeResponseHandle *urh) {
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

static inline enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status,
                                         const char *body) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static inline const char *query(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

/* GET /events?user=U[&workflow=W][&since=S][&sndbuf=N] -> 101 and the hub;
 * anything else -> a JSON error like the real API's. */
static inline enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
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

static inline int setup(void **state) {
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

static inline int teardown(void **state) {
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
static inline void config(fx *f, ws_hub_config *cfg) {
    ws_hub_config_default(cfg);
    cfg->db_url = f->db;
    cfg->on_delivered = on_delivered;
    cfg->on_connections = on_connections;
    cfg->metrics_ctx = f;
}

/* Starts the hub with cfg and a daemon on 127.0.0.1:<any port>. */
static inline void start(fx *f, const ws_hub_config *cfg) {
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

static inline void start_default(fx *f) {
    ws_hub_config cfg;
    config(f, &cfg);
    start(f, &cfg);
}

/* Waits (up to 2 s) until the hub holds n connections. */
static inline void wait_connections(fx *f, size_t n) {
    double end = ts_monotonic() + 2;
    while (ws_hub_connections(f->hub) != n && ts_monotonic() < end) usleep(2000);
    assert_int_equal(ws_hub_connections(f->hub), n);
}

/* ---- writing events ------------------------------------------------------------ */

/* A one-job workflow for user: 2 events (workflow.submitted, .queued). */
static inline int64_t submit(store *st, const char *user) {
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
static inline void progress(store *st, int64_t wf, int n, size_t msg_len) {
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

static inline int collect_cb(void *ctx, const store_event *ev) {
    seqs *s = ctx;
    if (s->n < MAX_EVENTS) {
        s->seq[s->n] = ev->seq;
        s->wf[s->n] = ev->workflow_id;
        s->n++;
    }
    return 0;
}

/* What the store says a client (user, workflow) should get after since. */
static inline void expected(store *st, int64_t since, const char *user, int64_t wf, seqs *out) {
    char err[TS_ERRLEN];
    out->n = 0;
    assert_int_equal(store_events_since(st, since, user, wf, 0, collect_cb, out, err, sizeof(err)),
                     TS_OK);
}

/* A thread that commits w->rounds rounds of w->per_round job.progress
 * events on workflow a (0..2 more per round when vary; one on b every
 * fourth round when b is set), pausing pause_us between rounds: the
 * concurrent writer of the delivery and limit tests. Sets finished. */
typedef struct writer {
    store *st;
    int64_t a, b;
    int rounds, per_round;
    bool vary; /* add 0..2 events to each round */
    size_t msg_len;
    int pause_us;
    double finished; /* ts_monotonic() after the last commit */
} writer;

static inline void *writer_main(void *arg) {
    writer *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        progress(w->st, w->a, w->per_round + (w->vary ? i % 3 : 0), w->msg_len);
        if (w->b && i % 4 == 0) progress(w->st, w->b, 1, w->msg_len);
        usleep((useconds_t)w->pause_us);
    }
    w->finished = ts_monotonic();
    return NULL;
}

/* ---- clients ------------------------------------------------------------------ */

static inline ws_client *connect_to(fx *f, const char *user, int64_t wf, int64_t since) {
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
static inline size_t recv_n(ws_client *c, size_t n, double timeout_s, seqs *out) {
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

static inline void assert_same(const seqs *got, const seqs *want) {
    assert_int_equal(got->n, want->n);
    for (size_t i = 0; i < want->n; i++) {
        if (got->seq[i] != want->seq[i])
            fprintf(stderr, "event %zu: got seq %lld, want %lld\n", i, (long long)got->seq[i],
                    (long long)want->seq[i]);
        assert_int_equal(got->seq[i], want->seq[i]);
    }
}

/* Nothing more arrives within t seconds (and the connection stays up). */
static inline void expect_quiet(ws_client *c, double t) {
    char *msg = NULL;
    size_t len = 0;
    int code = 0;
    int rc = ws_client_recv(c, t, &msg, &len, &code);
    if (rc == 1) fprintf(stderr, "unexpected message: %s\n", msg);
    free(msg);
    assert_int_equal(rc, 0);
}

/* Reads until the connection ends; returns the close code (0 = none). */
static inline int expect_closed(ws_client *c, double timeout_s) {
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

static inline int read_full(int fd, void *buf, size_t n, double end) {
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
static inline size_t raw_frame(unsigned char *out, int opcode, const void *data, size_t len) {
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

static inline void raw_send_frame(int fd, int opcode, const void *data, size_t len) {
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
static inline int raw_connect_tail(fx *f, const char *target, int rcvbuf, const void *tail,
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

static inline int raw_connect(fx *f, const char *target, int rcvbuf) {
    return raw_connect_tail(f, target, rcvbuf, NULL, 0);
}

/* Reads one (unmasked, server) frame. 0 or -1. payload is malloc'd. */
static inline int raw_read_frame(int fd, double timeout_s, int *opcode, unsigned char **payload,
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
static inline int raw_until_close(int fd, double timeout_s, size_t *texts) {
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

#endif
