/*
 * ws_client.c - the blocking WebSocket client of ws_client.h.
 *
 * The socket is non-blocking underneath and every wait is a poll() with the
 * caller's timeout, so wslay's event API (made for non-blocking I/O) does
 * the framing, answers pings and echoes the server's close. Messages that
 * arrive together are kept in a small FIFO and handed out one per
 * ws_client_recv() call.
 */
#include "http/ws_client.h"
#include "http/ws_io.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "http/ws.h"
#include "util/util.h"

#define HEAD_MAX 16384          /* response head */
#define BODY_MAX 65536          /* error body read for its message */
#define MSG_MAX (16u << 20)     /* largest message accepted from the server */
#define SEND_TIMEOUT_S 30.0
#define CLOSE_WAIT_S 1.0        /* ws_client_close waits this long for the server's close */

typedef struct ws_msg {
    struct ws_msg *next;
    char *data;
    size_t len;
} ws_msg;

struct ws_client {
    int fd;
    wslay_event_context_ptr ws;
    char *pre; /* bytes read together with the response head */
    size_t pre_len, pre_off;
    ws_msg *head, *tail;
    bool failed;
    bool in_close;         /* receiving a close frame */
    unsigned char code[2]; /* its first two payload bytes: the status code */
    size_t code_got;
    int close_code;        /* the server's close code as sent, 1005 if none */
};

typedef struct ws_url {
    char host[256];
    char port[8];
    char target[4096]; /* path and query */
} ws_url;

/* Milliseconds left until deadline (monotonic), for poll(). */
static int ms_until(double deadline) {
    double ms = ceil((deadline - ts_monotonic()) * 1000.0);
    return ms <= 0 ? 0 : ms > 1e9 ? 1000000000 : (int)ms;
}

/* ---- URL and TCP ------------------------------------------------------------- */

/* Splits "http://HOST[:PORT]/path?query" (or ws://); [v6] hosts allowed.
 * TLS schemes are refused by name rather than failing obscurely. */
static int url_parse(const char *url, ws_url *u, char *err, size_t errlen) {
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) p = url + 7;
    else if (strncasecmp(url, "ws://", 5) == 0) p = url + 5;
    else {
        ts_errf(err, errlen, "unsupported URL %s: expected http://HOST:PORT/... or ws://...", url);
        return TS_ERR;
    }
    size_t alen = strcspn(p, "/?#");
    const char *host = p, *colon = NULL, *end = p + alen;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        if (close == NULL) goto bad;
        host = p + 1;
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
        end = close;
    } else {
        colon = memchr(p, ':', alen);
        if (colon) end = colon;
    }
    size_t hlen = (size_t)(end - host);
    size_t plen = colon ? (size_t)(p + alen - colon - 1) : 0;
    if (hlen == 0 || hlen >= sizeof(u->host) || plen >= sizeof(u->port) || (colon && plen == 0))
        goto bad;
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    if (colon) {
        memcpy(u->port, colon + 1, plen);
        u->port[plen] = '\0';
    } else {
        strcpy(u->port, "80");
    }
    const char *rest = p + alen;
    size_t rlen = strcspn(rest, "#");
    if (rlen + 2 > sizeof(u->target)) goto bad;
    snprintf(u->target, sizeof(u->target), "%s%.*s", rest[0] == '/' ? "" : "/", (int)rlen, rest);
    return TS_OK;

bad:
    ts_errf(err, errlen, "invalid URL %s", url);
    return TS_ERR;
}

/* A non-blocking connect to one address, waiting until deadline. */
static int connect_one(const struct addrinfo *ai, double deadline) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    if (errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int rc;
        do rc = poll(&pfd, 1, ms_until(deadline));
        while (rc < 0 && errno == EINTR);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0) errno = ETIMEDOUT;
        else if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            return fd;
        else if (rc > 0) errno = soerr;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Tries every address of host:port until one answers. */
static int tcp_connect(const ws_url *u, double deadline, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        ts_errf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    errno = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) fd = connect_one(ai, deadline);
    if (fd < 0)
        ts_errf(err, errlen, "cannot connect to %s:%s: %s", u->host, u->port, strerror(errno));
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1; /* small frames must not wait for Nagle */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Waits for events on fd until deadline: >0 ready, 0 timeout, <0 error. */
static int wait_fd(int fd, short events, double deadline) {
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc;
    do rc = poll(&pfd, 1, ms_until(deadline));
    while (rc < 0 && errno == EINTR);
    return rc;
}

static int send_all(int fd, const char *buf, size_t len, double deadline) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) <= 0) return TS_ERR;
        } else {
            return TS_ERR;
        }
    }
    return TS_OK;
}

/* Reads more bytes into buf (at most cap in all). >0 read, 0 EOF, -1 error
 * or timeout. */
static ssize_t recv_some(int fd, char *buf, size_t *len, size_t cap, double deadline) {
    for (;;) {
        ssize_t n = recv(fd, buf + *len, cap - *len, 0);
        if (n >= 0) {
            *len += (size_t)n;
            return n;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
        if (wait_fd(fd, POLLIN, deadline) <= 0) return -1;
    }
}

/* ---- the handshake ---------------------------------------------------------- */

/* The value of header name in a response head ("" if absent), trimmed. */
static void head_header(const char *head, const char *name, char *out, size_t outlen) {
    size_t nlen = strlen(name);
    out[0] = '\0';
    for (const char *line = strstr(head, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nlen) != 0 || l[nlen] != ':') continue;
        const char *v = l + nlen + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t vlen = strcspn(v, "\r");
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) vlen--;
        snprintf(out, outlen, "%.*s", (int)vlen, v);
        return;
    }
}

/* Sends the upgrade request with a fresh random key (written to key). */
static int send_request(int fd, const ws_url *u, const char *extra_headers, char key[25],
                        double deadline, char *err, size_t errlen) {
    unsigned char nonce[16];
    if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce)) {
        ts_errf(err, errlen, "cannot draw a WebSocket key: %s", strerror(errno));
        return TS_ERR;
    }
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
    bool v6 = strchr(u->host, ':') != NULL;
    char *req = ts_asprintf("GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n%s\r\n",
                            u->target, v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, key,
                            extra_headers ? extra_headers : "");
    int rc = send_all(fd, req, strlen(req), deadline);
    free(req);
    if (rc != TS_OK) ts_errf(err, errlen, "cannot send the WebSocket request: %s", strerror(errno));
    return rc;
}

/* Reads up to the blank line that ends the response head; the bytes after
 * it stay in buf[head_len..len). */
static int read_head(int fd, char *buf, size_t *len, size_t *head_len, double deadline,
                     char *err, size_t errlen) {
    *len = 0;
    for (;;) {
        ssize_t n = recv_some(fd, buf, len, HEAD_MAX - 1, deadline);
        buf[*len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            *head_len = (size_t)(end - buf) + 4;
            return TS_OK;
        }
        if (n <= 0 || *len >= HEAD_MAX - 1) {
            ts_errf(err, errlen, "no valid HTTP response to the WebSocket request (%s)",
                    n == 0 ? "connection closed" : n < 0 ? "timed out or failed" : "head too long");
            return TS_ERR;
        }
    }
}

/* The reason phrase of the status line ("Not Found"), "" if there is none. */
static void status_reason(const char *head, char *out, size_t outlen) {
    size_t line = strcspn(head, "\r");
    const char *sp = memchr(head, ' ', line);
    const char *sp2 = sp ? memchr(sp + 1, ' ', line - (size_t)(sp + 1 - head)) : NULL;
    if (sp2 == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, outlen, "%.*s", (int)(line - (size_t)(sp2 + 1 - head)), sp2 + 1);
}

/* For a refused upgrade: "HTTP <status>: <error.message>" from the JSON
 * error body when there is one (DESIGN §4), else the reason phrase. */
static void refused(int fd, int status, char *buf, size_t len, size_t head_len, double deadline,
                    char *err, size_t errlen) {
    char cl[32], *body = ts_malloc(BODY_MAX + 1);
    size_t blen = len - head_len, want = blen; /* without a length: what came with the head */
    memcpy(body, buf + head_len, blen);
    head_header(buf, "Content-Length", cl, sizeof(cl));
    long n = 0;
    if (cl[0] && ts_parse_int(cl, 0, BODY_MAX, &n) == TS_OK) want = (size_t)n;
    while (blen < want && recv_some(fd, body, &blen, want, deadline) > 0) {
    }
    if (blen > want) blen = want;
    body[blen] = '\0';
    json_t *doc = json_loadb(body, blen, 0, NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    if (msg) {
        ts_errf(err, errlen, "HTTP %d: %s", status, msg);
    } else {
        char reason[128];
        status_reason(buf, reason, sizeof(reason));
        ts_errf(err, errlen, "HTTP %d%s%s", status, reason[0] ? ": " : "", reason);
    }
    json_decref(doc);
    free(body);
}

/* Reads and checks the answer: 101 with the Sec-WebSocket-Accept that
 * matches key. Keeps the bytes that came after the head for wslay. */
static int read_answer(ws_client *c, const char *key, double deadline, char *err,
                       size_t errlen) {
    char *buf = ts_malloc(HEAD_MAX);
    size_t len = 0, head_len = 0;
    int status = 0, rc = TS_ERR;
    if (read_head(c->fd, buf, &len, &head_len, deadline, err, errlen) != TS_OK) goto cleanup;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        ts_errf(err, errlen, "not an HTTP response to the WebSocket request");
        goto cleanup;
    }
    if (status != 101) {
        refused(c->fd, status, buf, len, head_len, deadline, err, errlen);
        goto cleanup;
    }
    char got[64], want[29];
    head_header(buf, "Sec-WebSocket-Accept", got, sizeof(got));
    if (ws_accept_key(key, want) != TS_OK || strcmp(got, want) != 0) {
        ts_errf(err, errlen, "the server answered 101 without the right Sec-WebSocket-Accept");
        goto cleanup;
    }
    c->pre_len = len - head_len;
    c->pre = ts_malloc(c->pre_len + 1);
    memcpy(c->pre, buf + head_len, c->pre_len);
    rc = TS_OK;

cleanup:
    free(buf);
    return rc;
}

/* ---- wslay callbacks ---------------------------------------------------------- */

static ssize_t client_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                              void *user_data) {
    (void)flags;
    ws_client *c = user_data;
    bool eof = false;
    return ws_io_recv(ctx, c->fd, c->pre, c->pre_len, &c->pre_off, buf, len, &eof);
}

static ssize_t client_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                              int flags, void *user_data) {
    (void)flags;
    ws_client *c = user_data;
    return ws_io_send(ctx, c->fd, data, len);
}

/* Client frames must be masked with unpredictable keys (RFC 6455 §5.3). */
static int client_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                             void *user_data) {
    (void)user_data;
    if (getrandom(buf, len, 0) == (ssize_t)len) return 0;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

/*
 * The close code is read here, from the raw frame, rather than from wslay:
 * wslay 1.1 only accepts codes 1000-1011 and treats a newer registered one
 * such as 1013 ("try again later", which the hub sends to slow clients) as
 * a protocol error, losing the code the caller needs to decide whether to
 * reconnect.
 */
static void client_frame_start_cb(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_start_arg *arg,
                                  void *user_data) {
    (void)ctx;
    ws_client *c = user_data;
    c->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
    c->code_got = 0;
}

static void client_frame_chunk_cb(wslay_event_context_ptr ctx,
                                  const struct wslay_event_on_frame_recv_chunk_arg *arg,
                                  void *user_data) {
    (void)ctx;
    ws_client *c = user_data;
    for (size_t i = 0; c->in_close && i < arg->data_length && c->code_got < 2; i++)
        c->code[c->code_got++] = arg->data[i];
}

static void client_frame_end_cb(wslay_event_context_ptr ctx, void *user_data) {
    (void)ctx;
    ws_client *c = user_data;
    if (!c->in_close) return;
    c->close_code = c->code_got == 2 ? (c->code[0] << 8) | c->code[1] : 1005;
    c->in_close = false;
}

/* Text messages go to the FIFO; close and ping are handled by wslay. */
static void client_msg_cb(wslay_event_context_ptr ctx,
                          const struct wslay_event_on_msg_recv_arg *arg, void *user_data) {
    (void)ctx;
    ws_client *c = user_data;
    if (arg->opcode != WSLAY_TEXT_FRAME) return;
    ws_msg *m = ts_malloc(sizeof(*m));
    m->next = NULL;
    m->len = arg->msg_length;
    m->data = ts_malloc(m->len + 1);
    if (m->len) memcpy(m->data, arg->msg, m->len);
    m->data[m->len] = '\0';
    if (c->tail) c->tail->next = m;
    else c->head = m;
    c->tail = m;
}

/* ---- the API --------------------------------------------------------------- */

static void client_free(ws_client *c) {
    if (c->fd >= 0) close(c->fd);
    wslay_event_context_free(c->ws);
    while (c->head) {
        ws_msg *m = c->head;
        c->head = m->next;
        free(m->data);
        free(m);
    }
    free(c->pre);
    free(c);
}

ws_client *ws_client_connect(const char *url, const char *extra_headers, double timeout_s,
                             char *err, size_t errlen) {
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = client_recv_cb,
        .send_callback = client_send_cb,
        .genmask_callback = client_genmask_cb,
        .on_frame_recv_start_callback = client_frame_start_cb,
        .on_frame_recv_chunk_callback = client_frame_chunk_cb,
        .on_frame_recv_end_callback = client_frame_end_cb,
        .on_msg_recv_callback = client_msg_cb,
    };
    double deadline = ts_monotonic() + timeout_s;
    ws_url u;
    char key[25];
    if (url == NULL || url_parse(url, &u, err, errlen) != TS_OK) return NULL;
    ws_client *c = ts_calloc(1, sizeof(*c));
    c->fd = tcp_connect(&u, deadline, err, errlen);
    if (c->fd < 0) goto fail;
    if (send_request(c->fd, &u, extra_headers, key, deadline, err, errlen) != TS_OK) goto fail;
    if (read_answer(c, key, deadline, err, errlen) != TS_OK) goto fail;
    if (wslay_event_context_client_init(&c->ws, &callbacks, c) != 0) {
        ts_errf(err, errlen, "out of memory");
        goto fail;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, MSG_MAX);
    return c;

fail:
    client_free(c);
    return NULL;
}

static void client_read(ws_client *c) {
    if (wslay_event_recv(c->ws) != 0) c->failed = true;
}

static void client_write(ws_client *c) {
    if (!c->failed && wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0)
        c->failed = true;
}

/* Over: failed, or the server's close came (or wslay stopped reading after
 * a protocol error of the server's). */
static bool client_ended(const ws_client *c) {
    return c->failed || !wslay_event_get_read_enabled(c->ws);
}

/* Sends everything queued, waiting for the socket until deadline. */
static int client_flush(ws_client *c, double deadline) {
    for (;;) {
        client_write(c);
        if (c->failed) return TS_ERR;
        if (!wslay_event_want_write(c->ws)) return TS_OK;
        if (wait_fd(c->fd, POLLOUT, deadline) <= 0) return TS_ERR;
    }
}

int ws_client_recv(ws_client *c, double timeout_s, char **msg, size_t *len, int *close_code) {
    double deadline = ts_monotonic() + timeout_s;
    *msg = NULL;
    *len = 0;
    if (close_code) *close_code = 0;
    for (;;) {
        if (c->head) {
            ws_msg *m = c->head;
            c->head = m->next;
            if (c->head == NULL) c->tail = NULL;
            *msg = m->data;
            *len = m->len;
            free(m);
            return 1;
        }
        if (client_ended(c)) {
            client_write(c); /* our echo of the close, best effort */
            if (close_code) *close_code = c->close_code;
            return -1;
        }
        if (c->pre_off < c->pre_len) {
            client_read(c);
            continue;
        }
        client_write(c); /* pongs */
        struct pollfd pfd = {.fd = c->fd,
                             .events = POLLIN | (wslay_event_want_write(c->ws) ? POLLOUT : 0)};
        int rc = poll(&pfd, 1, ms_until(deadline));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) c->failed = true;
        if (rc == 0) return 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) client_read(c);
        if (pfd.revents & POLLOUT) client_write(c);
    }
}

int ws_client_send_text(ws_client *c, const char *msg, size_t len) {
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)msg, len};
    if (c->failed || wslay_event_queue_msg(c->ws, &m) != 0) return TS_ERR;
    return client_flush(c, ts_monotonic() + SEND_TIMEOUT_S);
}

/* Sends our close (unless one was sent, e.g. the echo of the server's),
 * then waits briefly for the server's, so that the server is not left
 * waiting for it and our socket is not reset with unread data. */
void ws_client_close(ws_client *c, int code) {
    if (c == NULL) return;
    double deadline = ts_monotonic() + CLOSE_WAIT_S;
    if (!c->failed && wslay_event_get_write_enabled(c->ws)) {
        wslay_event_queue_close(c->ws, (uint16_t)code, NULL, 0);
        client_flush(c, deadline);
    }
    while (!c->failed && wslay_event_get_read_enabled(c->ws)) {
        char *m = NULL;
        size_t n = 0;
        int rc = ws_client_recv(c, fmax(0, deadline - ts_monotonic()), &m, &n, NULL);
        free(m);
        if (rc == 0) break;
    }
    client_free(c);
}
