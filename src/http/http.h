/*
 * http.h - one HTTP worker's request plumbing (DESIGN §4): libmicrohttpd
 * accepts and parses, server.c collects the body within the size limit,
 * identifies the caller, routes to a handler, and answers with JSON.
 *
 * Contract for handlers:
 *   - A handler gets a parsed request and returns an http_reply; it never
 *     touches libmicrohttpd. The request's user is set (authenticated) for
 *     every route not marked public.
 *   - Errors are {"error": {"code", "message", "details"?}} with a 4xx/5xx
 *     status, built with http_error(); a message names the field and the
 *     reason, and nothing was changed.
 *   - Another user's object is answered exactly like a missing one (404).
 *   - Handlers (and identification) read the request only through the
 *     request's fields and http_header(), http_query() and http_peer(),
 *     never through conn: a request made in process (http_handle() with
 *     conn NULL, as tests/fuzz does) has no libmicrohttpd connection, and
 *     neither has a worker's request, which runs on a request thread
 *     (pool.h) with a copy of the headers.
 *   - Handlers run concurrently on several threads: they use the request's
 *     store handle (req->st), never one of their own, and only the
 *     thread-safe parts of the context.
 */
#ifndef TESSERA_HTTP_HTTP_H
#define TESSERA_HTTP_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/auth.h"
#include "http/metrics.h"
#include "http/pool.h"
#include "http/ratelimit.h"
#include "http/slide_cache.h"
#include "http/ws.h"
#include "store/store.h"
#include "util/config.h"
#include "util/liveness.h"

#define HTTP_MAX_PARAMS 4

/* What one worker shares with its handlers: configuration read once at
 * start-up, its WebSocket hub, the shared metrics and rate limits, its
 * cache of open slides and drawn tiles, its request threads. Every field is
 * safe to use from any request thread (pool.h). */
typedef struct http_ctx {
    const ts_config *cfg;
    const auth_config *auth;
    store *st;                 /* for requests made in process (tests, fuzzing) without their
                                  own; a worker's requests use their thread's (request.st) */
    ws_hub *hub;
    metrics *m;
    slide_cache *slides;       /* this worker's open slides and drawn tiles (api_slides.c) */
    const char *web_root;      /* static files (index.html, openapi.json, ...) */
    const char *vendor_root;   /* node_modules, for /vendor/... (may be NULL) */
    const char *doorbell_path; /* the scheduler's wake-up socket */
    _Atomic int in_flight;     /* requests begun and not yet answered (for the drain) */
    liveness_slot *live;       /* where handler calls are shown to the master; may be NULL */
    ratelimit *limits;         /* per-user request limits shared by the workers; NULL = none */
    http_pool *pool;           /* the request threads (server.c hands requests to them) */
    struct view_cache *views;  /* this worker's rendered workflow views (view_cache.h);
                                  NULL = every GET renders */
} http_ctx;

/* A header or query argument of a request made in process, without
 * libmicrohttpd (see http_local). */
typedef struct http_field {
    enum MHD_ValueKind kind; /* MHD_HEADER_KIND or MHD_GET_ARGUMENT_KIND */
    const char *name;
    const char *value;       /* NULL for a query argument without '=' */
} http_field;

/* What libmicrohttpd would say about a request made in process: its
 * headers and query arguments (looked up as libmicrohttpd does: the first
 * of that kind whose name matches, ignoring case) and the peer's address. */
typedef struct http_local {
    const http_field *fields;
    size_t n_fields;
    const struct sockaddr *peer; /* may be NULL (no IP peer) */
} http_local;

struct http_reply;

typedef struct http_request {
    http_ctx *ctx;
    store *st;                   /* this request's store handle: its thread's (NULL: ctx->st) */
    struct MHD_Connection *conn; /* NULL for a request made in process */
    const http_local *local;     /* set instead of conn for a request made in process */
    const char *method;
    const char *path;
    const char *params[HTTP_MAX_PARAMS]; /* {placeholders} of the route, in order */
    char path_buf[2049]; /* the path split by the router; params point into it */
    const char *body;
    size_t body_len;
    char user[129];  /* the caller ("" on public routes without identity) */
    bool admin;
    char request_id[64];
    int route_id;
    /* Set when the reply may come after the handler returns (a worker's
     * request thread): a handler that returns REPLY_DEFERRED has arranged
     * for finish(req, &reply) to be called exactly once, on any thread,
     * possibly before it returns; it touches req no more after that
     * arrangement. NULL for requests made in process: answer at once. */
    void (*finish)(struct http_request *req, struct http_reply *r);
} http_request;

/* REPLY_DEFERRED: no reply yet (http_request.finish gives it later). */
typedef enum http_reply_kind {
    REPLY_JSON,
    REPLY_TEXT,
    REPLY_FILE,
    REPLY_UPGRADE,
    REPLY_DEFERRED
} http_reply_kind;

typedef struct http_reply {
    int status;
    http_reply_kind kind;
    json_t *json;         /* REPLY_JSON (owned) */
    char *text;           /* REPLY_TEXT (owned, malloc'd; any bytes, text_len long; NULL
                             with text_len 0 for no body, e.g. 304) */
    size_t text_len;
    void (*release)(void *); /* REPLY_TEXT: when set, text is not owned: release(release_cls)
                                is called once it is sent or dropped (shared bytes, sent
                                without a copy) */
    void *release_cls;
    const char *content_type; /* REPLY_TEXT, REPLY_FILE; NULL = no Content-Type */
    int fd;               /* REPLY_FILE: an open file, given to libmicrohttpd */
    uint64_t file_size;
    char location[256];   /* Location header when set */
    char set_cookie[512]; /* Set-Cookie header when set */
    char allow[64];       /* Allow header for 405 */
    char cache_control[64]; /* Cache-Control (with Vary on the identity headers) when set;
                               not for JSON, which is always no-store */
    char etag[80];        /* ETag when set, with its quotes: "abc" */
    int retry_after_s;    /* Retry-After (seconds) when > 0: 429, 503 */
    struct MHD_Response *upgrade; /* REPLY_UPGRADE: a prepared 101 response */
    void *upgrade_ctx;    /* REPLY_UPGRADE: its handler's closure (malloc'd), freed with the
                             request whether or not the upgrade took place */
} http_reply;

typedef http_reply (*http_handler)(http_request *req);

typedef struct http_route {
    const char *method;
    const char *pattern; /* "/api/workflows/{id}/jobs/{job_id}/log" */
    http_handler handler;
    bool public;         /* no identity needed */
} http_route;

/* The route table (api_routes.c) and its size. */
extern const http_route http_routes[];
extern const size_t http_routes_count;

/* Finds the route for method and path, filling params (pointers into
 * path_buf, which router_match modifies). Returns the route index, -1 if no
 * path matches (404), or -2 if the path matches with another method (405,
 * allow filled with the methods that do). */
int router_match(const char *method, char *path_buf, const char **params, char *allow,
                 size_t allow_len);

/* Replies. */
http_reply http_json(int status, json_t *body);
http_reply http_error(int status, const char *code, const char *message, json_t *details);
http_reply http_text(int status, const char *content_type, const char *text, size_t len);
/* A reply of len bytes that takes data (malloc'd; freed after sending). */
http_reply http_bytes(int status, const char *content_type, void *data, size_t len);

/* Frees what a reply holds without sending it (what libmicrohttpd does
 * after sending): the JSON, owned or shared text, a file, an upgrade. */
void http_reply_release(http_reply *r);

/* True when an If-None-Match header value names etag (a list, weak or
 * strong, or "*"), compared weakly as RFC 9110 prescribes. */
bool http_etag_matches(const char *if_none_match, const char *etag);

/* Reads a query argument (NULL when absent). */
const char *http_query(http_request *req, const char *name);
/* Reads a request header (NULL when absent). */
const char *http_header(http_request *req, const char *name);
/* How many times the request carries header name (http_header sees only
 * the first). */
size_t http_header_count(http_request *req, const char *name);
/* Sets req->request_id: a sane X-Request-ID echoed, else a random one. */
void http_assign_request_id(http_request *req);
/* The caller's address (NULL when unknown). */
const struct sockaddr *http_peer(http_request *req);

/* Answers one request whose ctx, method, path, body and conn (or local)
 * are set: request id, routing, static files, identification, the
 * handler. What a worker does between reading a request and sending the
 * reply, and the way tests and fuzzing drive it in process. The caller
 * owns the reply (sends it, or frees what it holds). */
http_reply http_handle(http_request *req);

/* Parses a workflow id path parameter; false for anything but 1..2^63-1. */
bool http_parse_id(const char *text, int64_t *id);

/* Rings the scheduler's doorbell (a lost ring costs latency, never
 * correctness: the scheduler also polls). */
void http_ring_scheduler(http_request *req);

/* Starts libmicrohttpd on an already listening socket (shared by all
 * workers); NULL with err on failure. */
struct MHD_Daemon *http_daemon_start(http_ctx *ctx, int listen_fd, char *err, size_t errlen);

/* One worker: serves on the inherited listening socket until stop is
 * requested (SIGTERM), then drains. Its loops and handler calls show
 * progress in live (the master's liveness slot for it; may be NULL).
 * Returns the process exit status. */
int http_worker_main(const ts_config *cfg, const auth_config *auth, metrics *m,
                     ratelimit *limits, int listen_fd, const char *doorbell_path,
                     liveness_slot *live);

#endif
