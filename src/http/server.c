/*
 * server.c - libmicrohttpd glue for one worker: collects each request's body
 * within the size limit, gives it a request id, identifies the caller,
 * routes it, and turns the handler's http_reply into a response, with a
 * JSON log line and a metric per request.
 *
 * The daemon runs one internal polling thread: handlers run one at a time
 * and share the worker's store handle. Parallelism comes from running
 * several workers on one listening socket.
 */
#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "http/api.h"
#include "util/log.h"
#include "util/util.h"

#define PATH_MAX_LEN 2048

typedef struct conn_state {
    char *body;
    size_t len, cap;
    bool too_large;
    bool answered; /* a reply was queued before the body was read */
    double started;
    void *upgrade_ctx; /* a 101 reply's handler closure: freed when the request completes */
} conn_state;

http_reply http_json(int status, json_t *body) {
    http_reply r = {.status = status, .kind = REPLY_JSON, .json = body, .fd = -1};
    return r;
}

/* A JSON string for text that may hold bytes from the request (a path, a
 * header) that are not UTF-8, or a multi-byte character cut by a buffer:
 * jansson refuses those, so such bytes become '?' instead of losing the
 * whole message. */
static json_t *lossy_string(const char *text) {
    json_t *v = json_string(text);
    if (v) return v;
    char *copy = ts_strdup(text);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

http_reply http_error(int status, const char *code, const char *message, json_t *details) {
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(code));
    json_object_set_new(err, "message", lossy_string(message));
    if (details) json_object_set_new(err, "details", details);
    return http_json(status, json_pack("{so}", "error", err));
}

http_reply http_text(int status, const char *content_type, const char *text, size_t len) {
    http_reply r = {.status = status, .kind = REPLY_TEXT, .fd = -1, .content_type = content_type};
    r.text = ts_malloc(len + 1);
    memcpy(r.text, text, len);
    r.text[len] = '\0';
    r.text_len = len;
    return r;
}

http_reply http_bytes(int status, const char *content_type, void *data, size_t len) {
    http_reply r = {.status = status, .kind = REPLY_TEXT, .fd = -1, .content_type = content_type,
                    .text = data, .text_len = len};
    return r;
}

/* A header or query argument: from libmicrohttpd, or from the fields of a
 * request made in process, found the way libmicrohttpd finds them (the
 * first of that kind whose name matches, ignoring case). */
static const char *lookup_value(http_request *req, enum MHD_ValueKind kind, const char *name) {
    if (req->conn) return MHD_lookup_connection_value(req->conn, kind, name);
    if (!req->local) return NULL;
    for (size_t i = 0; i < req->local->n_fields; i++) {
        const http_field *f = &req->local->fields[i];
        if (f->kind == kind && strcasecmp(f->name, name) == 0) return f->value;
    }
    return NULL;
}

const char *http_query(http_request *req, const char *name) {
    return lookup_value(req, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(http_request *req, const char *name) {
    return lookup_value(req, MHD_HEADER_KIND, name);
}

typedef struct header_counter {
    const char *name;
    size_t n;
} header_counter;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    (void)kind;
    (void)value;
    header_counter *hc = cls;
    if (key && strcasecmp(key, hc->name) == 0) hc->n++;
    return MHD_YES;
}

/* How many times the request carries header name (libmicrohttpd's lookup
 * only ever sees the first). */
static size_t header_count_conn(struct MHD_Connection *conn, const char *name) {
    header_counter hc = {name, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &hc);
    return hc.n;
}

static size_t header_count(http_request *req, const char *name) {
    if (req->conn) return header_count_conn(req->conn, name);
    size_t n = 0;
    for (size_t i = 0; req->local && i < req->local->n_fields; i++)
        if (req->local->fields[i].kind == MHD_HEADER_KIND &&
            strcasecmp(req->local->fields[i].name, name) == 0)
            n++;
    return n;
}

const struct sockaddr *http_peer(http_request *req) {
    if (!req->conn) return req->local ? req->local->peer : NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    return ci ? ci->client_addr : NULL;
}

bool http_parse_id(const char *text, int64_t *id) {
    long v;
    if (!text || ts_parse_int(text, 1, INT64_MAX, &v) != TS_OK) return false;
    *id = v;
    return true;
}

/* Echoes a sane X-Request-ID so a client can follow its request through the
 * logs; otherwise makes one up. */
static void request_id(http_request *req, char *out, size_t n) {
    const char *given = http_header(req, "X-Request-ID");
    bool ok = given && given[0] && strlen(given) < n && strlen(given) <= 128;
    for (const char *p = given; ok && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("._-:", *p)))
            ok = false;
    if (ok) {
        ts_strlcpy(out, given, n);
        return;
    }
    unsigned char raw[8] = {0};
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) memset(raw, 0, sizeof(raw));
    snprintf(out, n, "%02x%02x%02x%02x%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3], raw[4],
             raw[5], raw[6], raw[7]);
}

/* Who is calling; a 401 reply when nobody or a forgery. */
static bool identify(http_request *req, http_reply *fail) {
    auth_request ar = {.x_user_id = http_header(req, "X-User-ID"),
                       .authorization = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
                       .cookie = http_header(req, MHD_HTTP_HEADER_COOKIE),
                       .peer = http_peer(req)};
    char err[TS_ERRLEN];
    int rc = auth_identify(req->ctx->auth, req->ctx->st, &ar, req->user, &req->admin, err,
                           sizeof(err));
    if (rc == TS_OK) return true;
    req->user[0] = '\0';
    if (rc == TS_ERR) {
        *fail = http_error(503, "store_unavailable", "cannot check credentials right now", NULL);
        return false;
    }
    *fail = http_error(401, rc == AUTH_MISSING ? "unauthenticated" : "invalid_credentials",
                       rc == AUTH_MISSING ? "who are you? send X-User-ID (header mode), "
                                            "Authorization: Bearer <token>, or sign in"
                                          : err,
                       NULL);
    return false;
}

/* See http.h. The one path every request takes from its parsed form to a
 * reply, whether libmicrohttpd read it or a test made it in process, so
 * that what the tests and the fuzzer exercise is what the server runs. */
http_reply http_handle(http_request *req) {
    http_ctx *ctx = req->ctx;
    const char *url = req->path, *method = req->method;
    req->route_id = -1;
    request_id(req, req->request_id, sizeof(req->request_id));
    /* Two identities in one request: which one counts would depend on the
     * code reading it (issue 12: the first X-User-ID won). */
    static const char *const single[] = {"X-User-ID", MHD_HTTP_HEADER_AUTHORIZATION};
    for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
        if (header_count(req, single[i]) > 1) {
            char msg[128];
            snprintf(msg, sizeof(msg), "%s given more than once: send it once", single[i]);
            return http_error(400, "duplicate_header", msg, json_pack("{ss}", "header", single[i]));
        }
    char allow[64] = "";
    if (strlen(url) > PATH_MAX_LEN) return http_error(414, "uri_too_long", "path too long", NULL);
    ts_strlcpy(req->path_buf, url, sizeof(req->path_buf));
    int route = router_match(method, req->path_buf, req->params, allow, sizeof(allow));
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    /* Static files: the web UI under /, its npm assets under /vendor/. The
     * UI's own files are revalidated on every load, so an upgrade shows at
     * once; npm's change only with `npm ci` and may be kept a day. */
    if (route == -1 && get && strncmp(url, "/vendor/", 8) == 0) {
        http_reply r = api_static_file(ctx->vendor_root, url + 8);
        if (r.kind == REPLY_FILE) ts_strlcpy(r.cache_control, "max-age=86400", sizeof(r.cache_control));
        return r;
    }
    if (route == -1 && get && strncmp(url, "/api/", 5) != 0 && url[0] == '/' && url[1]) {
        http_reply r = api_static_file(ctx->web_root, url + 1);
        if (r.kind == REPLY_FILE) ts_strlcpy(r.cache_control, "no-cache", sizeof(r.cache_control));
        return r;
    }
    if (route == -1)
        return http_error(404, "not_found", "no such endpoint", json_pack("{so}", "path", lossy_string(url)));
    if (route == -2) {
        http_reply r = http_error(405, "method_not_allowed", "method not allowed here",
                                  json_pack("{ss ss}", "method", method, "allow", allow));
        ts_strlcpy(r.allow, allow, sizeof(r.allow));
        return r;
    }
    req->route_id = route;
    http_reply fail;
    if (!http_routes[route].public && !identify(req, &fail)) return fail;
    if (http_routes[route].public) {
        /* Public pages may still use the caller's identity when there is one. */
        http_reply ignored;
        if (!identify(req, &ignored)) json_decref(ignored.json);
    }
    return http_routes[route].handler(req);
}

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
    log_emit(status >= 500 ? LOG_ERROR : LOG_INFO, run_id[0] ? run_id : NULL, NULL, "http",
             json_pack("{ss ss ss si sf ss}", "request_id", req->request_id, "method", method,
                       "path", url, "status", status, "ms", (ts_monotonic() - started) * 1e3,
                       "user", req->user));
}

static enum MHD_Result send_reply(http_ctx *ctx, struct MHD_Connection *conn, http_reply *r,
                                  const http_request *req, const char *method, const char *url,
                                  double started) {
    struct MHD_Response *resp = build_response(r);
    if (!resp) return MHD_NO;
    add_common_headers(resp, r, req);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    metrics_http(ctx->m, req->route_id, r->status);
    log_request(req, method, url, r->status, started);
    return ok;
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
    size_t cl = header_count_conn(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t te = header_count_conn(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    size_t host = header_count_conn(conn, MHD_HTTP_HEADER_HOST);
    const char *te_value =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
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
    request_id(&req, req.request_id, sizeof(req.request_id));
    return send_reply(ctx, conn, r, &req, method, url, cs->started);
}

static enum MHD_Result serve_request(http_ctx *ctx, struct MHD_Connection *conn,
                                     const char *url, const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls) {
    conn_state *cs = *con_cls;
    http_request req;
    if (!cs) {
        cs = ts_calloc(1, sizeof(*cs));
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
    if (cs->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        body_append(cs, upload_data, *upload_data_size, (size_t)ctx->cfg->max_body_bytes);
        *upload_data_size = 0;
        return MHD_YES;
    }
    http_reply r;
    if (cs->too_large) {
        r = too_large(ctx);
        req = (http_request){.ctx = ctx, .conn = conn, .route_id = -1};
        request_id(&req, req.request_id, sizeof(req.request_id));
    } else {
        if (ctx->cfg->test_hang_path[0] && strcmp(url, ctx->cfg->test_hang_path) == 0)
            test_hang_forever();
        req = (http_request){.ctx = ctx, .conn = conn, .method = method, .path = url,
                             .body = cs->body ? cs->body : "", .body_len = cs->len};
        r = http_handle(&req);
        /* libmicrohttpd calls the upgrade handler only once the 101 is
         * sent, and the completion callback after it in every case; the
         * closure must outlive the first and not the second. */
        if (r.kind == REPLY_UPGRADE) cs->upgrade_ctx = r.upgrade_ctx;
    }
    return send_reply(ctx, conn, &r, &req, method, url, cs->started);
}

/* Every call into tessera's request code is shown to the master while it
 * runs (util/liveness.h): a call that never returns gets the worker
 * replaced. Time spent waiting for the client between calls does not
 * count, so a slow client cannot get a worker killed. Code that runs a
 * handler anywhere else (another thread, after a suspend) must bracket it
 * with liveness_request_begin/end the same way. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    http_ctx *ctx = cls;
    int watch = -1;
    if (ctx->live) {
        char what[LIVENESS_WHAT];
        snprintf(what, sizeof(what), "%s %s", method, url);
        watch = liveness_request_begin(ctx->live, what);
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
    free(cs->upgrade_ctx);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

struct MHD_Daemon *http_daemon_start(http_ctx *ctx, int listen_fd, char *err, size_t errlen) {
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_USE_ITC, 0,
        NULL, NULL,
        on_request, ctx, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, ctx, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)20000, MHD_OPTION_END);
    if (!d) ts_errf(err, errlen, "cannot start the HTTP server: %s", strerror(errno));
    return d;
}
