/*
 * api_misc.c - the queue at a glance, the event stream (WebSocket upgrade,
 * or a JSON page of events as the polling fallback), browser sessions,
 * operations endpoints and static files.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "http/api.h"
#include "util/util.h"

typedef struct queue_ctx {
    json_t *mine;
} queue_ctx;

static int queue_cb(void *ctx, const store_workflow *wf) {
    queue_ctx *qc = ctx;
    json_array_append_new(qc->mine, json_pack("{sI ss si ss}", "id", (json_int_t)wf->id, "name",
                                              wf->name, "queue_position", wf->queue_position,
                                              "waiting_reason", wf->reason ? wf->reason : ""));
    return 0;
}

http_reply api_queue(http_request *req) {
    store_queue_stats s;
    char err[TS_ERRLEN];
    int rc = store_queue_stats_get(req->st, &s, err, sizeof(err));
    if (rc != TS_OK) return api_store_failed(rc, err);
    queue_ctx qc = {json_array()};
    rc = store_workflow_list(req->st, req->user, WF_QUEUED, 0, 0, queue_cb, &qc, err,
                             sizeof(err));
    if (rc != TS_OK) {
        json_decref(qc.mine);
        return api_store_failed(rc, err);
    }
    /* Oldest first: the order of the line. */
    json_t *line = json_array();
    for (size_t i = json_array_size(qc.mine); i > 0; i--)
        json_array_append(line, json_array_get(qc.mine, i - 1));
    json_decref(qc.mine);
    return http_json(200, json_pack("{si si si si si si so}", "active_users", s.active_users,
                                    "max_active_users", req->ctx->cfg->max_active_users,
                                    "waiting_users", s.waiting_users, "queued_workflows",
                                    s.queued_workflows, "running_cpus", s.running_cpus,
                                    "concurrency_limit", req->ctx->cfg->concurrency_limit,
                                    "your_queued_workflows", line));
}

typedef struct events_page {
    json_t *arr;
    int64_t last;
} events_page;

static int page_cb(void *ctx, const store_event *ev) {
    events_page *p = ctx;
    json_t *o = json_loads(ev->json, 0, NULL);
    if (o) json_array_append_new(p->arr, o);
    p->last = ev->seq;
    return 0;
}

typedef struct upgrade_ctx {
    ws_hub *hub;
    char user[129];
    int64_t workflow_id, since;
} upgrade_ctx;

/* The 101 went out: the socket joins the hub. u belongs to the request
 * (http_reply.upgrade_ctx) and is freed when it completes: libmicrohttpd
 * never calls this when the client goes away before the 101 is sent, so
 * freeing it here would leak it then. */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    (void)conn;
    (void)con_cls;
    upgrade_ctx *u = cls;
    if (ws_hub_add(u->hub, sock, urh, extra, extra_len, u->user, u->workflow_id, u->since) != TS_OK)
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Does a comma-separated header value hold token (case-insensitive)? */
static bool header_has_token(const char *value, const char *token) {
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (strncasecmp(p, token, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

/* Is origin one of the comma-separated origins in list (exact, ignoring
 * case, as browsers spell scheme and host in lower case anyway)? */
static bool origin_listed(const char *list, const char *origin) {
    size_t len = strlen(origin);
    for (const char *p = list ? list : ""; *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, ",");
        size_t trimmed = n;
        while (trimmed > 0 && p[trimmed - 1] == ' ') trimmed--;
        if (trimmed == len && trimmed > 0 && strncasecmp(p, origin, len) == 0) return true;
        p += n;
    }
    return false;
}

/*
 * May a page from this Origin open the event stream? Browsers send Origin
 * with every WebSocket handshake, and cookies with it: without this check
 * any site a signed-in user visits could read that user's events
 * (cross-site WebSocket hijacking). Allowed: no Origin at all (a program,
 * not a browser page), the service's own origin (its authority equal to
 * the Host the browser sent), and TESSERA_ALLOWED_ORIGINS (for a UI served
 * elsewhere, or a proxy that rewrites Host).
 */
static bool origin_allowed(http_request *req, const char *origin) {
    if (origin == NULL) return true;
    const char *host = http_header(req, MHD_HTTP_HEADER_HOST);
    const char *authority = strstr(origin, "://");
    if (authority && host && host[0] && strcasecmp(authority + 3, host) == 0 &&
        (strncasecmp(origin, "http://", 7) == 0 || strncasecmp(origin, "https://", 8) == 0))
        return true;
    return origin_listed(req->ctx->cfg->allowed_origins, origin);
}

static http_reply upgrade(http_request *req, int64_t workflow_id, int64_t since) {
    const char *origin = http_header(req, "Origin");
    if (!origin_allowed(req, origin)) {
        char msg[400];
        snprintf(msg, sizeof(msg), "a WebSocket from the page origin %.200s is refused: only "
                 "this service's own pages and TESSERA_ALLOWED_ORIGINS may open it", origin);
        json_t *shown = json_string(origin); /* NULL for bytes that are not UTF-8 */
        return http_error(403, "origin_not_allowed", msg,
                          json_pack("{so}", "origin", shown ? shown : json_null()));
    }
    const char *key = http_header(req, "Sec-WebSocket-Key");
    const char *version = http_header(req, "Sec-WebSocket-Version");
    const char *connection = http_header(req, MHD_HTTP_HEADER_CONNECTION);
    char accept[29];
    if (!connection || !header_has_token(connection, "upgrade") || !version ||
        strcmp(version, "13") != 0 || !key || ws_accept_key(key, accept) != TS_OK)
        return http_error(400, "bad_websocket_handshake",
                          "a WebSocket upgrade needs Connection: Upgrade, "
                          "Sec-WebSocket-Version: 13 and a valid Sec-WebSocket-Key",
                          NULL);
    upgrade_ctx *u = ts_calloc(1, sizeof(*u));
    u->hub = req->ctx->hub;
    ts_strlcpy(u->user, req->user, sizeof(u->user));
    u->workflow_id = workflow_id;
    u->since = since;
    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, u);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    http_reply r = {.status = MHD_HTTP_SWITCHING_PROTOCOLS, .kind = REPLY_UPGRADE,
                    .upgrade = resp, .upgrade_ctx = u, .fd = -1};
    return r;
}

/* A since beyond the newest event the store has ever recorded names an event
 * that does not exist: the client kept it from before the database was
 * restored from a backup or replaced. Served as asked, such a stream would
 * stay silent until the seq caught up (the client drops events at or below
 * its since). So it is refused, with the newest seq, before anything is
 * upgraded: the client re-reads its state and resumes from there. True
 * (and *out set) when refused; a store that cannot answer refuses too. */
static bool since_beyond_newest(http_request *req, int64_t since, http_reply *out) {
    char err[TS_ERRLEN];
    int64_t newest = 0;
    int rc = store_events_last_seq(req->st, &newest, err, sizeof(err));
    if (rc != TS_OK) {
        *out = api_store_failed(rc, err);
        return true;
    }
    if (since <= newest) return false;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "since: %lld is beyond the newest event (%lld); the event log was restored or "
             "replaced: read the state again and resume from since=%lld",
             (long long)since, (long long)newest, (long long)newest);
    *out = http_error(400, "invalid_query", msg,
                      json_pack("{ss sI}", "field", "since", "last_seq", (json_int_t)newest));
    return true;
}

http_reply api_events(http_request *req) {
    const char *since_q = http_query(req, "since"), *wf_q = http_query(req, "workflow");
    long since = 0;
    int64_t workflow_id = 0;
    if (since_q && ts_parse_int(since_q, 0, INT64_MAX, &since) != TS_OK)
        return http_error(400, "invalid_query", "since: must be an event seq (an integer >= 0)",
                          json_pack("{ss}", "field", "since"));
    if (wf_q) {
        store_workflow *wf = NULL;
        char err[TS_ERRLEN];
        if (!http_parse_id(wf_q, &workflow_id)) return api_not_found("workflow", wf_q);
        int rc = store_workflow_get(req->st, workflow_id, req->user, &wf, err, sizeof(err));
        store_workflow_free(wf);
        if (rc == STORE_NOTFOUND) return api_not_found("workflow", wf_q);
        if (rc != TS_OK) return api_store_failed(rc, err);
    }
    if (since > 0) {
        http_reply ahead;
        if (since_beyond_newest(req, since, &ahead)) return ahead;
    }
    const char *up = http_header(req, MHD_HTTP_HEADER_UPGRADE);
    if (up && strcasecmp(up, "websocket") == 0) return upgrade(req, workflow_id, since);
    /* The polling fallback: one page of events after since. */
    events_page p = {json_array(), since};
    char err[TS_ERRLEN];
    int rc = store_events_since(req->st, since, req->user, workflow_id, 1000, page_cb, &p,
                                err, sizeof(err));
    if (rc != TS_OK) {
        json_decref(p.arr);
        return api_store_failed(rc, err);
    }
    return http_json(200, json_pack("{so sI}", "events", p.arr, "last_seq", (json_int_t)p.last));
}

/* The cookie for user, bound to token_hash (the token signed in with) or,
 * when NULL, to header mode; an administrator's token makes an
 * administrator's session. */
static http_reply session_for(http_request *req, const char *user, const char *token_hash,
                              bool admin) {
    char value[400];
    if (auth_session_issue_as(req->ctx->auth, user, token_hash, admin && token_hash, ts_now(),
                              value, sizeof(value)) != TS_OK)
        return http_error(500, "session_error", "could not sign a session", NULL);
    http_reply r = http_json(200, json_pack("{ss sb}", "user", user, "admin", admin && token_hash));
    snprintf(r.set_cookie, sizeof(r.set_cookie),
             "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%.0f", AUTH_COOKIE_NAME, value,
             req->ctx->auth->session_ttl_s);
    return r;
}

/* The stored hash of a token that auth_identify accepted (64 hex digits
 * in either case, maybe with blanks around, as a bearer header may have;
 * stored from the lower-case spelling). */
static void session_token_hash(const char *token, char hash[65]) {
    char lower[65];
    size_t i = 0;
    token += strspn(token, " \t");
    for (; token[i] && i < 64; i++)
        lower[i] = (char)(token[i] >= 'A' && token[i] <= 'F' ? token[i] + 32 : token[i]);
    lower[i] = '\0';
    auth_token_hash(lower, hash);
}

/* Sign-in: {"token": T} anywhere, or {"user": U} in header mode from a peer
 * allowed to assert identities (the same rule as X-User-ID). */
http_reply api_session_create(http_request *req) {
    if (!api_is_json(req)) return api_wrong_type(req);
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        return http_error(400, "invalid_json", "body must be a JSON object with user or token",
                          NULL);
    }
    const char *token = json_string_value(json_object_get(body, "token"));
    const char *user = json_string_value(json_object_get(body, "user"));
    char auth_header[300] = "";
    if (token) snprintf(auth_header, sizeof(auth_header), "Bearer %s", token);
    auth_request ar = {.x_user_id = token ? NULL : user,
                       .authorization = token ? auth_header : NULL,
                       .peer = http_peer(req)};
    char who[129], err[TS_ERRLEN], token_hash[65] = "";
    bool admin;
    int rc = (token || user) ? auth_identify(req->ctx->auth, req->st, &ar, who, &admin, err,
                                             sizeof(err))
                             : AUTH_MISSING;
    if (rc == TS_OK && token) session_token_hash(token, token_hash);
    json_decref(body);
    if (rc == AUTH_MISSING)
        return http_error(400, "invalid_session_request", "send {\"user\": ...} or {\"token\": ...}",
                          NULL);
    if (rc == TS_ERR) {
        http_reply r =
            http_error(503, "store_unavailable", "cannot check credentials right now", NULL);
        r.retry_after_s = API_RETRY_AFTER_S;
        return r;
    }
    if (rc != TS_OK) return http_error(401, "invalid_credentials", err, NULL);
    return session_for(req, who, token_hash[0] ? token_hash : NULL, admin);
}

/* Who the browser is signed in as, and how to sign in: the UI shows a user
 * name field in header mode and a token field otherwise. Public, so that
 * a signed-out page can ask. */
http_reply api_session_get(http_request *req) {
    json_t *o = json_pack("{ss}", "auth_mode", req->ctx->auth->header_mode ? "header" : "token");
    json_object_set_new(o, "user", req->user[0] ? json_string(req->user) : json_null());
    json_object_set_new(o, "admin", json_boolean(req->user[0] && req->admin));
    return http_json(200, o);
}

http_reply api_session_delete(http_request *req) {
    (void)req;
    http_reply r = http_json(200, json_pack("{sb}", "signed_out", 1));
    snprintf(r.set_cookie, sizeof(r.set_cookie),
             "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", AUTH_COOKIE_NAME);
    return r;
}

/* The state directory's file system: bytes free for the service and its
 * size, or -1 both when it cannot be read (the gauges are then left out
 * rather than reported as an empty disk). */
static void state_dir_space(const char *dir, double *free_bytes, double *size_bytes) {
    struct statvfs vs;
    *free_bytes = *size_bytes = -1;
    if (statvfs(dir, &vs) != 0) return;
    *free_bytes = (double)vs.f_bavail * (double)vs.f_frsize;
    *size_bytes = (double)vs.f_blocks * (double)vs.f_frsize;
}

/* See api.h. */
void api_scrape_gather(http_request *req, metrics_scrape *sc, store_queue_stats *qs,
                       store_leader_info *leader) {
    char err[TS_ERRLEN];
    bool ok = store_queue_stats_get(req->st, qs, err, sizeof(err)) == TS_OK;
    bool led = ok && store_leader_get(req->st, leader, err, sizeof(err)) == TS_OK;
    *sc = (metrics_scrape){.stats = ok ? qs : NULL, .leader = led ? leader : NULL,
                           .max_active_users = req->ctx->cfg->max_active_users,
                           .concurrency_limit = req->ctx->cfg->concurrency_limit, .now = ts_now()};
    state_dir_space(req->ctx->cfg->state_dir, &sc->state_free_bytes, &sc->state_size_bytes);
}

/* Prometheus text. Public (DESIGN §4): a scraper has no user; nothing in it
 * names a user or a workflow. A store that cannot be read still gives the
 * process's own counters, with tessera_store_up 0. */
http_reply api_metrics(http_request *req) {
    store_queue_stats qs;
    store_leader_info leader;
    metrics_scrape sc;
    api_scrape_gather(req, &sc, &qs, &leader);
    size_t len;
    char *text = metrics_render(req->ctx->m, &sc, &len);
    http_reply r = {.status = 200, .kind = REPLY_TEXT, .text = text, .text_len = len, .fd = -1,
                    .content_type = "text/plain; version=0.0.4; charset=utf-8"};
    return r;
}

http_reply api_healthz(http_request *req) {
    (void)req;
    return http_json(200, json_pack("{ss}", "status", "ok"));
}

/* Ready when the store can be used: store_probe checks, on every call,
 * that the database file is the one this worker has open, that no process
 * found it corrupt, that its file system is writable and not full, and
 * reads from it. The scheduler is supervised separately. */
http_reply api_readyz(http_request *req) {
    char err[TS_ERRLEN];
    int rc = store_probe(req->st, err, sizeof(err));
    if (rc == TS_OK) return http_json(200, json_pack("{ss}", "status", "ready"));
    http_reply r = http_error(503, rc == STORE_UNAVAILABLE ? "store_unavailable" : "not_ready",
                              "not ready: the store cannot be used now",
                              json_pack("{ss}", "reason", err));
    r.retry_after_s = API_RETRY_AFTER_S;
    return r;
}

static const char *static_type(const char *path) {
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0 || strcmp(dot, ".mjs") == 0) return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    if (strcmp(dot, ".json") == 0) return "application/json";
    if (strcmp(dot, ".svg") == 0) return "image/svg+xml";
    if (strcmp(dot, ".png") == 0) return "image/png";
    if (strcmp(dot, ".map") == 0) return "application/json";
    return "application/octet-stream";
}

http_reply api_static_file(const char *root, const char *rel_path) {
    if (!root || strstr(rel_path, "..") || rel_path[0] == '/')
        return api_not_found("file", rel_path);
    char *path = ts_asprintf("%s/%s", root, rel_path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    free(path);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        return api_not_found("file", rel_path);
    }
    http_reply r = {.status = 200, .kind = REPLY_FILE, .fd = fd, .file_size = (uint64_t)st.st_size,
                    .content_type = static_type(rel_path)};
    return r;
}

http_reply api_openapi(http_request *req) {
    return api_static_file(req->ctx->web_root, "openapi.json");
}

http_reply api_docs(http_request *req) {
    return api_static_file(req->ctx->web_root, "docs.html");
}

http_reply api_index(http_request *req) {
    http_reply r = api_static_file(req->ctx->web_root, "index.html");
    if (r.kind == REPLY_FILE) ts_strlcpy(r.cache_control, "no-cache", sizeof(r.cache_control));
    return r;
}
