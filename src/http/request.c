/*
 * request.c - the request path without sockets (http.h): replies, reading
 * headers and query arguments, who is calling, per-user limits, routing and
 * the handler. A worker's request thread runs it on a request libmicrohttpd
 * has read (server.c hands over a copy of the headers); tests and the
 * fuzzer run it on requests they make in process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "http/api.h"
#include "util/util.h"

#define PATH_MAX_LEN 2048

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

void http_reply_release(http_reply *r) {
    json_decref(r->json);
    r->json = NULL;
    if (r->release) r->release(r->release_cls);
    else free(r->text);
    r->text = NULL;
    r->release = NULL;
    if (r->kind == REPLY_FILE && r->fd >= 0) close(r->fd);
    r->fd = -1;
    if (r->kind == REPLY_UPGRADE) {
        /* Never sent: libmicrohttpd never calls the upgrade handler. */
        if (r->upgrade) MHD_destroy_response(r->upgrade);
        free(r->upgrade_ctx);
        r->upgrade = NULL;
        r->upgrade_ctx = NULL;
    }
}

/* Each entity tag of the list in turn; "*" matches anything. */
bool http_etag_matches(const char *header, const char *etag) {
    size_t n = strlen(etag);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        if (p[0] == '*') return true;
        if (strncmp(p, "W/", 2) == 0) p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ')) return true;
        p = strchr(p, ',');
    }
    return false;
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

size_t http_header_count(http_request *req, const char *name) {
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

void http_assign_request_id(http_request *req) {
    request_id(req, req->request_id, sizeof(req->request_id));
}

/* Who is calling; a 401 reply when nobody or a forgery. */
static bool identify(http_request *req, http_reply *fail) {
    auth_request ar = {.x_user_id = http_header(req, "X-User-ID"),
                       .authorization = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
                       .cookie = http_header(req, MHD_HTTP_HEADER_COOKIE),
                       .peer = http_peer(req)};
    char err[TS_ERRLEN];
    int rc = auth_identify(req->ctx->auth, req->st, &ar, req->user, &req->admin, err,
                           sizeof(err));
    if (rc == TS_OK) return true;
    req->user[0] = '\0';
    if (rc == TS_ERR) {
        *fail = http_error(503, "store_unavailable", "cannot check credentials right now", NULL);
        fail->retry_after_s = API_RETRY_AFTER_S;
        return false;
    }
    *fail = http_error(401, rc == AUTH_MISSING ? "unauthenticated" : "invalid_credentials",
                       rc == AUTH_MISSING ? "who are you? send X-User-ID (header mode), "
                                            "Authorization: Bearer <token>, or sign in"
                                          : err,
                       NULL);
    return false;
}

/* Per-user request limits (ratelimit.h) on the API: a 429 in fail, with
 * Retry-After, when the caller has used up its requests. The public routes
 * (health, metrics, sign-in, the UI's files) are not counted: they are cheap
 * and a probe or a signed-out page must always get through. */
static bool over_limit(http_request *req, http_reply *fail) {
    double wait;
    if (!req->ctx->limits || !req->user[0] ||
        ratelimit_take(req->ctx->limits, req->user, ts_monotonic(), &wait))
        return false;
    int seconds = (int)wait + ((double)(int)wait < wait ? 1 : 0);
    if (seconds < 1) seconds = 1;
    char msg[200];
    snprintf(msg, sizeof(msg), "too many requests: each user may make %g per second (bursts of %g); "
             "retry after %d s", ratelimit_rate(req->ctx->limits), ratelimit_burst(req->ctx->limits),
             seconds);
    *fail = http_error(429, "rate_limited", msg,
                       json_pack("{sf sf si}", "limit_per_s", ratelimit_rate(req->ctx->limits),
                                 "burst", ratelimit_burst(req->ctx->limits), "retry_after_s",
                                 seconds));
    fail->retry_after_s = seconds;
    return true;
}

/* See http.h. The one path every request takes from its parsed form to a
 * reply, whether libmicrohttpd read it or a test made it in process, so
 * that what the tests and the fuzzer exercise is what the server runs. */
http_reply http_handle(http_request *req) {
    http_ctx *ctx = req->ctx;
    const char *url = req->path, *method = req->method;
    req->route_id = -1;
    if (req->st == NULL) req->st = ctx->st;
    request_id(req, req->request_id, sizeof(req->request_id));
    /* Two identities in one request: which one counts would depend on the
     * code reading it (issue 12: the first X-User-ID won). */
    static const char *const single[] = {"X-User-ID", MHD_HTTP_HEADER_AUTHORIZATION};
    for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
        if (http_header_count(req, single[i]) > 1) {
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
    } else if (over_limit(req, &fail)) {
        return fail;
    }
    return http_routes[route].handler(req);
}
