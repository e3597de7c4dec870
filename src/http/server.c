/*
 * server.c - libmicrohttpd glue for one worker. libmicrohttpd's one polling
 * thread does all the socket work: it accepts, parses, checks the framing,
 * reads each body within the size limit, and writes every reply however
 * large, to however slow a client. It never runs a handler: a complete
 * request is suspended and handed, with a copy of its headers, to the
 * worker's request threads (pool.h says why this design), which identify
 * the caller, route, run the handler (request.c) and build the response;
 * the connection is then resumed and the reply queued, with a JSON log line
 * and a metric per request.
 */
#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/api.h"
#include "util/log.h"
#include "util/util.h"

typedef enum conn_phase {
    PHASE_READING, /* headers and body are being read (polling thread) */
    PHASE_QUEUED,  /* suspended, with a request thread or waiting for one */
    PHASE_DONE,    /* the reply is built; the polling thread queues it */
} conn_phase;

/* One request's state, from its first callback to its completion. The
 * polling thread owns it except between suspend and resume, when exactly
 * one request thread does. */
typedef struct conn_state {
    http_ctx *ctx;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    bool too_large;
    bool answered; /* a reply was queued before the body was read */
    double started;
    _Atomic int phase;
    http_field *fields; /* the headers and query arguments, pointing into libmicrohttpd's */
    size_t n_fields, cap_fields;
    http_local local;
    struct sockaddr_storage peer;
    http_request req;
    struct MHD_Response *resp; /* PHASE_DONE: built by the request thread (NULL: none) */
    int status;
    void *upgrade_ctx; /* a 101 reply's handler closure: freed when the request completes */
} conn_state;

static void add_common_headers(struct MHD_Response *resp, const http_reply *r,
                               const http_request *req) {
    MHD_add_response_header(resp, "X-Request-ID", req->request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->location[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->set_cookie[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->set_cookie);
    if (r->allow[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->cache_control[0] && r->kind != REPLY_JSON) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, r->cache_control);
        /* Cached answers depend on who asked: another identity in the same
         * browser must not be served them from its cache. */
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Authorization, Cookie, X-User-ID");
    }
    if (r->etag[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r->retry_after_s > 0) {
        char seconds[24];
        snprintf(seconds, sizeof(seconds), "%d", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
}

static struct MHD_Response *build_response(http_reply *r) {
    struct MHD_Response *resp = NULL;
    if (r->kind == REPLY_JSON) {
        char *text = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
        json_decref(r->json);
        if (!text) { /* never crash on a reply that could not be built */
            r->status = 500;
            text = ts_strdup("{\"error\":{\"code\":\"internal\",\"message\":\"the reply could "
                             "not be encoded\"}}");
        }
        size_t len = strlen(text);
        resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    } else if (r->kind == REPLY_TEXT && r->release) {
        /* Shared bytes (a cached view): sent as they are, released after. */
        resp = MHD_create_response_from_buffer_with_free_callback_cls(r->text_len, r->text,
                                                                      r->release, r->release_cls);
        if (!resp) r->release(r->release_cls);
        if (resp && r->content_type)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    } else if (r->kind == REPLY_TEXT) {
        resp = MHD_create_response_from_buffer(r->text_len, r->text, MHD_RESPMEM_MUST_FREE);
        if (r->content_type)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    } else if (r->kind == REPLY_FILE) {
        resp = MHD_create_response_from_fd(r->file_size, r->fd);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    } else {
        resp = r->upgrade;
    }
    return resp;
}

static void log_request(const http_request *req, const char *method, const char *url, int status,
                        double started) {
    char run_id[32] = "";
    int64_t id;
    if (req->route_id >= 0 && req->params[0] && http_parse_id(req->params[0], &id))
        snprintf(run_id, sizeof(run_id), "wf-%lld", (long long)id);
    /* Formatted straight into a buffer (no JSON object): this runs on the
     * polling thread for every request (issue 16). */
    const log_field fields[] = {
        {.key = "request_id", .kind = LOG_FIELD_STR, .str = req->request_id},
        {.key = "method", .kind = LOG_FIELD_STR, .str = method},
        {.key = "path", .kind = LOG_FIELD_STR, .str = url},
        {.key = "status", .kind = LOG_FIELD_INT, .i = status},
        {.key = "ms", .kind = LOG_FIELD_MS, .ms = (ts_monotonic() - started) * 1e3},
        {.key = "user", .kind = LOG_FIELD_STR, .str = req->user},
    };
    log_emit_fields(status >= 500 ? LOG_ERROR : LOG_INFO, run_id[0] ? run_id : NULL, "http",
                    fields, sizeof(fields) / sizeof(fields[0]));
}

/* The response of a reply with its headers, or NULL (nothing to send). Safe
 * on any thread: libmicrohttpd's response objects are not tied to one. */
static struct MHD_Response *make_response(http_reply *r, const http_request *req) {
    struct MHD_Response *resp = build_response(r);
    if (resp) add_common_headers(resp, r, req);
    return resp;
}

/* Queues resp (taking it) on the polling thread, counts and logs it. */
static enum MHD_Result queue_reply(http_ctx *ctx, struct MHD_Connection *conn,
                                   struct MHD_Response *resp, int status, const http_request *req,
                                   const char *method, const char *url, double started) {
    if (!resp) return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    metrics_http(ctx->m, req->route_id, status, ts_monotonic() - started);
    log_request(req, method, url, status, started);
    return ok;
}

static enum MHD_Result send_reply(http_ctx *ctx, struct MHD_Connection *conn, http_reply *r,
                                  const http_request *req, const char *method, const char *url,
                                  double started) {
    struct MHD_Response *resp = make_response(r, req);
    return queue_reply(ctx, conn, resp, r->status, req, method, url, started);
}

/* Appends a piece of the body, refusing to grow past the limit. */
static void body_append(conn_state *cs, const char *data, size_t n, size_t limit) {
    if (cs->too_large) return;
    if (cs->len + n > limit) {
        cs->too_large = true;
        free(cs->body);
        cs->body = NULL;
        cs->len = 0;
        return;
    }
    if (cs->len + n + 1 > cs->cap) {
        cs->cap = (cs->len + n + 1) * 2;
        cs->body = ts_realloc(cs->body, cs->cap);
    }
    memcpy(cs->body + cs->len, data, n);
    cs->len += n;
    cs->body[cs->len] = '\0';
}

static http_reply too_large(const http_ctx *ctx) {
    char msg[128];
    snprintf(msg, sizeof(msg), "request body larger than %ld bytes", ctx->cfg->max_body_bytes);
    return http_error(413, "payload_too_large", msg,
                      json_pack("{sI}", "limit_bytes", (json_int_t)ctx->cfg->max_body_bytes));
}

/* TESSERA_TEST_HANG_PATH (tests only; off unless set): the handler call
 * never returns, as one blocked for good in a system call would, so tests
 * can check that the master replaces such a worker (util/liveness.h). */
static void test_hang_forever(void) {
    for (;;) sleep(3600);
}

/* Framing that would let the service and a proxy in front of it read two
 * different requests from one (RFC 9112 §6.3, §3.2): both Content-Length and
 * Transfer-Encoding, a Transfer-Encoding other than chunked, Content-Length
 * or Host more than once, and an HTTP/1.1 request without Host, which
 * libmicrohttpd accepts unless in its strict mode. True with the 400 in r. */
static bool framing_refused(struct MHD_Connection *conn, const char *version, http_reply *r) {
    http_request probe = {.conn = conn};
    size_t cl = http_header_count(&probe, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t te = http_header_count(&probe, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    size_t host = http_header_count(&probe, MHD_HTTP_HEADER_HOST);
    const char *te_value = http_header(&probe, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *msg = NULL;
    if (cl > 0 && te > 0)
        msg = "both Content-Length and Transfer-Encoding: send one of them";
    else if (te > 1 || (te == 1 && strcasecmp(te_value ? te_value : "", "chunked") != 0))
        msg = "Transfer-Encoding must be chunked, once";
    else if (cl > 1)
        msg = "Content-Length given more than once";
    else if (host > 1)
        msg = "Host given more than once";
    else if (host == 0 && version && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        msg = "an HTTP/1.1 request needs a Host header";
    if (msg == NULL) return false;
    *r = http_error(400, "bad_request", msg, NULL);
    return true;
}

/* A reply queued at once, before any body is read; libmicrohttpd then
 * closes the connection rather than read what follows. */
static enum MHD_Result answer_early(http_ctx *ctx, struct MHD_Connection *conn, conn_state *cs,
                                    http_reply *r, const char *method, const char *url) {
    http_request req = {.ctx = ctx, .conn = conn, .route_id = -1};
    cs->answered = true;
    http_assign_request_id(&req);
    return send_reply(ctx, conn, r, &req, method, url, cs->started);
}

static enum MHD_Result add_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    conn_state *cs = cls;
    if (!key) return MHD_YES;
    if (cs->n_fields == cs->cap_fields) {
        cs->cap_fields = cs->cap_fields ? 2 * cs->cap_fields : 16;
        cs->fields = ts_realloc(cs->fields, cs->cap_fields * sizeof(*cs->fields));
    }
    cs->fields[cs->n_fields++] = (http_field){.kind = kind, .name = key, .value = value};
    return MHD_YES;
}

/* The request as a request thread sees it: no connection, a copy of the
 * headers and query arguments (their strings stay libmicrohttpd's, valid
 * until the request completes) and of the peer's address. */
static void detach_request(conn_state *cs, const char *method, const char *url) {
    MHD_get_connection_values(cs->conn, MHD_HEADER_KIND, add_field, cs);
    MHD_get_connection_values(cs->conn, MHD_GET_ARGUMENT_KIND, add_field, cs);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(cs->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *peer = NULL;
    if (ci && ci->client_addr) {
        size_t n = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in);
        memcpy(&cs->peer, ci->client_addr, n);
        peer = (const struct sockaddr *)&cs->peer;
    }
    cs->local = (http_local){.fields = cs->fields, .n_fields = cs->n_fields, .peer = peer};
    cs->req = (http_request){.ctx = cs->ctx, .local = &cs->local, .method = method, .path = url,
                             .body = cs->body ? cs->body : "", .body_len = cs->len};
}

/* Whose request this is, for the request threads' turns (pool.h): the
 * identity it claims (verified later, by the handler's thread), else the
 * peer's address. Only fairness depends on it, never access. */
static uint64_t fairness_key(conn_state *cs) {
    static const char *const names[] = {"X-User-ID", MHD_HTTP_HEADER_AUTHORIZATION,
                                        MHD_HTTP_HEADER_COOKIE};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = http_header(&cs->req, names[i]);
        if (v && v[0]) return ts_hash_str(v) ^ (uint64_t)i;
    }
    const struct sockaddr *peer = cs->local.peer;
    if (!peer) return 0;
    const unsigned char *a = peer->sa_family == AF_INET6
                                 ? (const unsigned char *)&((const struct sockaddr_in6 *)peer)->sin6_addr
                                 : (const unsigned char *)&((const struct sockaddr_in *)peer)->sin_addr;
    size_t n = peer->sa_family == AF_INET6 ? 16 : 4;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ a[i]) * 1099511628211ULL;
    return h;
}

/* "METHOD PATH" into what (LIVENESS_WHAT bytes), cut to fit; returns what.
 * Copies, not snprintf: it is made twice for every request (issue 16). */
static const char *request_what(const char *method, const char *path,
                                char what[LIVENESS_WHAT]) {
    size_t m = strnlen(method, LIVENESS_WHAT - 2);
    memcpy(what, method, m);
    what[m] = ' ';
    size_t p = strnlen(path, LIVENESS_WHAT - 2 - m);
    memcpy(what + m + 1, path, p);
    what[m + 1 + p] = '\0';
    return what;
}

/* The reply of a request handed to a request thread: its response is
 * built here, on the thread that has the reply, and the connection is
 * resumed for the polling thread to queue it. cs is not touched after the
 * resume: the polling thread may complete and free it at once. */
static void finish_request(http_request *req, http_reply *r) {
    conn_state *cs = (conn_state *)((char *)req - offsetof(conn_state, req));
    /* libmicrohttpd calls the upgrade handler only once the 101 is sent,
     * and the completion callback after it in every case; the closure must
     * outlive the first and not the second. */
    if (r->kind == REPLY_UPGRADE) cs->upgrade_ctx = r->upgrade_ctx;
    cs->status = r->status;
    cs->resp = make_response(r, &cs->req);
    atomic_store(&cs->phase, PHASE_DONE);
    MHD_resume_connection(cs->conn);
}

/* On a request thread: the handler, then its reply (finish_request), now
 * or, for a deferred reply, from whoever the handler handed it to (a
 * submission waiting for its commit). The call is shown to the master
 * while it runs (util/liveness.h), so a handler that never returns gets
 * the worker replaced. After a deferred reply cs is not touched: it may
 * be answered and freed already. */
static void run_request(void *arg, store *st) {
    conn_state *cs = arg;
    http_ctx *ctx = cs->ctx;
    int watch = -1;
    if (ctx->live) {
        char what[LIVENESS_WHAT];
        watch = liveness_request_begin(ctx->live, request_what(cs->req.method, cs->req.path, what));
    }
    if (ctx->cfg->test_hang_path[0] && strcmp(cs->req.path, ctx->cfg->test_hang_path) == 0)
        test_hang_forever();
    cs->req.st = st;
    cs->req.finish = finish_request;
    http_reply r = http_handle(&cs->req);
    if (r.kind != REPLY_DEFERRED) finish_request(&cs->req, &r);
    liveness_request_end(ctx->live, watch);
}

/* The body is complete: suspend the connection and queue the request for
 * a request thread (suspended first, so the resume can never come before
 * it). Without threads (no pool) the request runs here. */
static enum MHD_Result hand_over(conn_state *cs, const char *method, const char *url) {
    detach_request(cs, method, url);
    atomic_store(&cs->phase, PHASE_QUEUED);
    if (!cs->ctx->pool) {
        cs->req.st = cs->ctx->st;
        http_reply r = http_handle(&cs->req);
        if (r.kind == REPLY_UPGRADE) cs->upgrade_ctx = r.upgrade_ctx;
        atomic_store(&cs->phase, PHASE_DONE);
        struct MHD_Response *resp = make_response(&r, &cs->req);
        return queue_reply(cs->ctx, cs->conn, resp, r.status, &cs->req, method, url, cs->started);
    }
    MHD_suspend_connection(cs->conn);
    http_pool_submit(cs->ctx->pool, fairness_key(cs), run_request, cs);
    return MHD_YES;
}

static enum MHD_Result serve_request(http_ctx *ctx, struct MHD_Connection *conn,
                                     const char *url, const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls) {
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = ts_calloc(1, sizeof(*cs));
        cs->ctx = ctx;
        cs->conn = conn;
        cs->started = ts_monotonic();
        *con_cls = cs;
        atomic_fetch_add(&ctx->in_flight, 1);
        http_reply r;
        if (framing_refused(conn, version, &r)) return answer_early(ctx, conn, cs, &r, method, url);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        long declared;
        /* A body somewhat over the limit is read and discarded, then refused:
         * answering before reading it makes the server close on unread data,
         * and the client may then see a reset instead of the 413. A body far
         * over the limit is refused before a byte of it is read. */
        if (cl && ts_parse_int(cl, 0, LONG_MAX, &declared) == TS_OK &&
            declared / 8 > ctx->cfg->max_body_bytes) {
            r = too_large(ctx);
            return answer_early(ctx, conn, cs, &r, method, url);
        }
        return MHD_YES;
    }
    if (atomic_load(&cs->phase) == PHASE_DONE) {
        struct MHD_Response *resp = cs->resp;
        cs->resp = NULL;
        return queue_reply(ctx, conn, resp, cs->status, &cs->req, method, url, cs->started);
    }
    if (cs->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        body_append(cs, upload_data, *upload_data_size, (size_t)ctx->cfg->max_body_bytes);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cs->too_large) {
        http_reply r = too_large(ctx);
        return answer_early(ctx, conn, cs, &r, method, url);
    }
    return hand_over(cs, method, url);
}

/* Every call into tessera's request code on the polling thread is shown to
 * the master while it runs (util/liveness.h), as the handler calls are on
 * the request threads (run_request). Time spent waiting for the client
 * between calls does not count, so a slow client cannot get a worker
 * killed. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    http_ctx *ctx = cls;
    int watch = -1;
    if (ctx->live) {
        char what[LIVENESS_WHAT];
        watch = liveness_request_begin(ctx->live, request_what(method, url, what));
    }
    enum MHD_Result rc =
        serve_request(ctx, conn, url, method, version, upload_data, upload_data_size, con_cls);
    liveness_request_end(ctx->live, watch);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    http_ctx *ctx = cls;
    conn_state *cs = *con_cls;
    if (!cs) return;
    atomic_fetch_sub(&ctx->in_flight, 1);
    if (cs->resp) MHD_destroy_response(cs->resp); /* built, never queued */
    free(cs->upgrade_ctx);
    free(cs->fields);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

/* One polling thread (for all sockets), suspend and resume (the request
 * threads), upgrades (WebSocket). poll(), not epoll: libmicrohttpd's epoll
 * loop (0.9.75 and later) takes at most 128 events per epoll_wait and, when
 * it gets exactly 128, calls epoll_wait again with the full timeout (up to
 * the 60 s connection timeout) before handling them, so a burst of a
 * multiple of 128 requests that then wait for their answers stalled for a
 * minute. Its poll loop handles what one poll() returns, and upgraded and
 * suspended connections are not in its poll set (the hubs poll WebSocket
 * sockets themselves). */
struct MHD_Daemon *http_daemon_start(http_ctx *ctx, int listen_fd, char *err, size_t errlen) {
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_UPGRADE |
            MHD_ALLOW_SUSPEND_RESUME,
        0, NULL, NULL, on_request, ctx, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)20000, MHD_OPTION_END);
    if (!d) ts_errf(err, errlen, "cannot start the HTTP server: %s", strerror(errno));
    return d;
}
