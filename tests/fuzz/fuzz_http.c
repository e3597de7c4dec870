/*
 * fuzz_http.c - the HTTP request path in process (http_handle in
 * src/http/server.c: request id, router, static files, identification from
 * X-User-ID / bearer token / session cookie, every handler) against a
 * temporary SQLite store and state directory, without sockets: the request
 * is an http_request with an http_local (headers, query arguments, peer)
 * in place of libmicrohttpd's connection.
 *
 * Input, HTTP-like text:
 *   METHOD SP TARGET [SP PEER [SP MODE]] LF    TARGET = path[?query], both
 *       percent-decoded as libmicrohttpd does; PEER an IP (default
 *       127.0.0.1; anything else unparseable = no IP peer); MODE "token"
 *       for token authentication, else header mode
 *   (Name: value LF)*                          $C in a value becomes a valid
 *       session cookie for alice (header mode), $K one for carol (token
 *       mode), $T carol's API token, $R root's (admin)
 *   LF
 *   body
 *
 * Every input starts from the same state (the database is restored from a
 * template after any request that is not GET or HEAD, and the logs and
 * results after a DELETE), so a crash reproduces from its input alone:
 *   workflow 1 of alice ("alice-wf": noop "prep", tissue_mask "mask" on
 *   demo.tiff, "fail-1" in another branch), failed after the real scheduler
 *   ran it with an executor that runs nothing; workflow 2 of bob
 *   ("bob-secret-7Q": "bobjob-X9" on demo.tiff), still running; both with a
 *   log and result files; queued workflows 3 (alice) and 4 (dave, an admin
 *   tool); users carol (token) and root (admin token); a 64 x 64 demo slide
 *   in the data root; a web root and a vendor root with a few files.
 *
 * Oracles beyond the sanitizers:
 *   - no 5xx: the store is healthy, so every failure is the caller's and a
 *     4xx (DESIGN §4);
 *   - a JSON reply can be encoded (else the server would answer 500), and
 *     an error reply is {"error": {"code", "message"}};
 *   - headers the reply sets (Location, Set-Cookie, Allow, ETag,
 *     Cache-Control, X-Request-ID) hold no control characters;
 *   - tenant isolation: unless the caller is bob, no reply (JSON, text or
 *     file) contains anything of bob's (his workflow's name, job id, log or
 *     results);
 *   - a file reply is a regular file under the web root, the vendor root or
 *     the state directory.
 *
 * FUZZ_HTTP_TRACE=1 prints each request's status, user and JSON reply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <unistd.h>

#include "fuzz_lib.h"
#include "http/api.h"
#include "http/auth.h"
#include "exec/executor.h"
#include "sched/scheduler.h"

#define MAX_FIELDS 64
#define BOB_MARKERS {"bob-secret-7Q", "bobjob-X9", "BOB-LOG-3f9", "BOB-RESULT-8c1"}

static char top[512], db_path[700], template_path[700];
static ts_config cfg;
static auth_config auth_header_mode, auth_token_mode;
static http_ctx ctx;
static char web_root[700], vendor_root[700];
static char alice_cookie[400], carol_cookie[400], carol_token[65], root_token[65];

static char *at(const char *fmt, const char *rel) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), fmt, top, rel);
    return buf[k];
}

static void must(bool ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_http: fixture: %s: %s\n", what, strerror(errno));
        abort();
    }
}

static void mkdirs(const char *path) {
    char p[1024];
    ts_strlcpy(p, path, sizeof(p));
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0700);
            *s = '/';
        }
    mkdir(p, 0700);
}

static void put(const char *path, const char *text) {
    char dir[1024];
    ts_strlcpy(dir, path, sizeof(dir));
    *strrchr(dir, '/') = '\0';
    mkdirs(dir);
    fuzz_write_file(path, text, strlen(text));
}

/* Logs and results of the two workflows (a DELETE may remove them). */
static void put_job_files(void) {
    put(at("%s/state/work/1/mask/%s", "job.log"), "alice log line\n");
    put(at("%s/state/results/1/mask/%s", "tissue.geojson"), "{\"type\":\"FeatureCollection\",\"features\":[]}");
    put(at("%s/state/results/1/mask/%s", "summary.json"), "{\"tissue_area_mm2\":1}");
    put(at("%s/state/work/2/bobjob-X9/%s", "job.log"), "BOB-LOG-3f9\n");
    put(at("%s/state/results/2/bobjob-X9/%s", "summary.json"), "{\"secret\":\"BOB-RESULT-8c1\"}");
    put(at("%s/state/results/2/bobjob-X9/%s", "cells.csv"), "BOB-RESULT-8c1\n");
}

static http_reply call(const char *method, const char *path, const http_local *local,
                       const char *body) {
    http_request req = {.ctx = &ctx, .local = local, .method = method, .path = path,
                        .body = body ? body : "", .body_len = body ? strlen(body) : 0};
    return http_handle(&req);
}

static void release(http_reply *r);

/* Submits a workflow as user; aborts unless 201. */
static void seed_workflow(const char *user, const char *doc) {
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    http_field f[] = {{MHD_HEADER_KIND, "X-User-ID", user},
                      {MHD_HEADER_KIND, "Content-Type", "application/json"}};
    http_local local = {f, 2, (const struct sockaddr *)&lo};
    ctx.auth = &auth_header_mode;
    http_reply r = call("POST", "/api/workflows", &local, doc);
    if (r.status != 201) {
        char *text = json_dumps(r.json, 0);
        fprintf(stderr, "fuzz_http: seed workflow: %d %s\n", r.status, text ? text : "");
        abort();
    }
    release(&r);
}

/* ---- the scheduler's part of the fixture -------------------------------------
 * An executor that runs nothing: a job succeeds at the next wait, fails if
 * its id starts with "fail", and never ends if it starts with "bobjob". The
 * real scheduler drives it for a few steps, so that the template holds what
 * a live service does: finished, failed and running jobs with attempts. */

typedef struct fake_job {
    int64_t workflow_id;
    int32_t job_index;
    int attempt;
    bool forever, fail, reported;
} fake_job;

typedef struct fake_executor {
    executor base;
    fake_job jobs[16];
    size_t n;
} fake_executor;

static int fake_start(executor *ex, const exec_job *job, char *err, size_t errlen) {
    fake_executor *f = (fake_executor *)ex;
    if (f->n == sizeof(f->jobs) / sizeof(f->jobs[0])) {
        ts_errf(err, errlen, "fake executor full");
        return TS_ERR;
    }
    f->jobs[f->n++] = (fake_job){job->workflow_id, job->job_index, job->attempt,
                                 strncmp(job->job_id, "bobjob", 6) == 0,
                                 strncmp(job->job_id, "fail", 4) == 0, false};
    return TS_OK;
}

static void fake_cancel(executor *ex, int64_t workflow_id, int32_t job_index, double grace_s) {
    (void)ex, (void)workflow_id, (void)job_index, (void)grace_s;
}

static int fake_wait(executor *ex, double timeout_s, int wake_fd, exec_event *events, size_t max) {
    (void)timeout_s, (void)wake_fd;
    fake_executor *f = (fake_executor *)ex;
    size_t k = 0;
    for (size_t i = 0; i < f->n && k < max; i++) {
        fake_job *j = &f->jobs[i];
        if (j->reported || j->forever) continue;
        j->reported = true;
        events[k] = (exec_event){.kind = EXEC_EXITED, .workflow_id = j->workflow_id,
                                 .job_index = j->job_index, .attempt = j->attempt,
                                 .progress = 1, .outcome = j->fail ? "failed" : "succeeded",
                                 .exit_code = j->fail ? 1 : 0};
        snprintf(events[k].message, sizeof(events[k].message), "%s", j->fail ? "exit 1" : "done");
        k++;
    }
    return (int)k;
}

static size_t fake_running(executor *ex) {
    fake_executor *f = (fake_executor *)ex;
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) n += !f->jobs[i].reported;
    return n;
}

static void fake_destroy(executor *ex) {
    (void)ex;
}

static void run_scheduler(void) {
    static const executor_ops ops = {.start = fake_start, .cancel = fake_cancel, .wait = fake_wait,
                                     .running = fake_running, .destroy = fake_destroy};
    static fake_executor fx = {.base = {.ops = &ops}};
    sched_config sc = {.state_dir = cfg.state_dir, .data_roots = cfg.data_roots,
                       .max_active_users = 3, .concurrency_limit = 4, .poll_seconds = 1,
                       .lease_ttl = 3600, .kill_grace_s = 1};
    scheduler *s = sched_new(&sc, "fuzz:1:1", ctx.st, &fx.base);
    char err[TS_ERRLEN];
    for (int i = 0; i < 12; i++)
        must(sched_step(s, 0, -1, err, sizeof(err)) == TS_OK, err);
    sched_free(s);
}

static void seed_users(void) {
    char hash[65], err[TS_ERRLEN];
    must(auth_token_new(carol_token) == TS_OK, "token");
    auth_token_hash(carol_token, hash);
    must(store_user_put(ctx.st, "carol", hash, false, 1.7e9, err, sizeof(err)) == TS_OK, err);
    must(auth_token_new(root_token) == TS_OK, "token");
    auth_token_hash(root_token, hash);
    must(store_user_put(ctx.st, "root", hash, true, 1.7e9, err, sizeof(err)) == TS_OK, err);
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    must(in != NULL, from);
    char tmp[800];
    snprintf(tmp, sizeof(tmp), "%s.tmp", to);
    FILE *out = fopen(tmp, "wb");
    must(out != NULL, tmp);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) must(fwrite(buf, 1, n, out) == n, tmp);
    fclose(in);
    must(fclose(out) == 0, tmp);
    must(rename(tmp, to) == 0, to);
}

/* The live database becomes the template again, page by page through
 * SQLite's backup API on a connection of our own, while the store keeps
 * its handle open as a worker does (its statements are prepared again when
 * it sees the new schema cookie): far cheaper than closing and reopening
 * the store for each input. */
static void restore_database(void) {
    sqlite3 *from = NULL, *to = NULL;
    must(sqlite3_open_v2(template_path, &from, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "template");
    must(sqlite3_open_v2(db_path, &to, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "database");
    sqlite3_busy_timeout(to, 5000);
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    must(b != NULL && sqlite3_backup_step(b, -1) == SQLITE_DONE, sqlite3_errmsg(to));
    sqlite3_backup_finish(b);
    sqlite3_close(from);
    sqlite3_close(to);
}

static void build_fixture(void) {
    char err[TS_ERRLEN];
    snprintf(top, sizeof(top), "%s/h", fuzz_dir());
    mkdirs(at("%s/%s", "state/data"));
    fuzz_demo_slide(at("%s/state/data/%s", "demo.tiff"));
    put(at("%s/web/%s", "index.html"), "<!doctype html><title>tessera</title>");
    put(at("%s/web/%s", "openapi.json"), "{\"openapi\":\"3.0.3\"}");
    put(at("%s/web/%s", "docs.html"), "<!doctype html><title>docs</title>");
    put(at("%s/web/app/%s", "main.js"), "export {};");
    put(at("%s/vendor/openseadragon/%s", "openseadragon.min.js"), "/* osd */");
    put(at("%s/state/%s", "secret.txt"), "BOB-RESULT-8c1 (outside every root)");
    snprintf(web_root, sizeof(web_root), "%s/web", top);
    snprintf(vendor_root, sizeof(vendor_root), "%s/vendor", top);
    config_defaults(&cfg);
    ts_strlcpy(cfg.state_dir, at("%s/%s", "state"), sizeof(cfg.state_dir));
    config_finish(&cfg);
    cfg.max_body_bytes = 1 << 20;
    snprintf(db_path, sizeof(db_path), "%s", cfg.db);
    snprintf(template_path, sizeof(template_path), "%s/template.db", top);
    for (int i = 0; i < 2; i++) {
        auth_config *a = i ? &auth_token_mode : &auth_header_mode;
        a->header_mode = i == 0;
        a->trusted_proxies = "192.0.2.1,2001:db8::1";
        for (size_t k = 0; k < 32; k++) a->secret[k] = (unsigned char)(k * 13 + 1);
        a->secret_len = 32;
        a->session_ttl_s = 7 * 24 * 3600.0;
    }
    ctx = (http_ctx){.cfg = &cfg, .auth = &auth_header_mode, .m = metrics_create_shared(),
                     .web_root = web_root, .vendor_root = vendor_root,
                     .doorbell_path = at("%s/%s", "state/doorbell.sock")};
    must(ctx.m != NULL, "metrics");
    must(store_open(template_path, &ctx.st, err, sizeof(err)) == TS_OK, err);
    seed_workflow("alice", "{\"name\":\"alice-wf\",\"jobs\":[{\"job_id\":\"prep\",\"job_type\":\"noop\"},"
                           "{\"job_id\":\"mask\",\"job_type\":\"tissue_mask\",\"image_path\":\"demo.tiff\"},"
                           "{\"job_id\":\"fail-1\",\"job_type\":\"noop\",\"branch\":\"b2\"}]}");
    seed_workflow("bob", "{\"name\":\"bob-secret-7Q\",\"jobs\":[{\"job_id\":\"bobjob-X9\","
                         "\"job_type\":\"tissue_mask\",\"image_path\":\"demo.tiff\"}]}");
    run_scheduler();
    seed_workflow("alice", "{\"name\":\"alice-later\",\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\"}]}");
    seed_workflow("dave", "{\"name\":\"dave-wf\",\"jobs\":[{\"job_id\":\"d\",\"job_type\":\"segment\","
                          "\"image_path\":\"demo.tiff\",\"params\":{\"words\":\"x y\"}}]}");
    seed_users();
    store_close(ctx.st);
    char carol_hash[65];
    auth_token_hash(carol_token, carol_hash);
    must(auth_session_issue(&auth_header_mode, "alice", NULL, ts_now(), alice_cookie,
                            sizeof(alice_cookie)) == TS_OK, "cookie");
    must(auth_session_issue(&auth_token_mode, "carol", carol_hash, ts_now(), carol_cookie,
                            sizeof(carol_cookie)) == TS_OK, "cookie");
    copy_file(template_path, db_path);
    must(store_open(db_path, &ctx.st, err, sizeof(err)) == TS_OK, err);
    put_job_files();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_quiet_logs();
    fuzz_load_tools();
    build_fixture();
    return 0;
}

/* ---- the input as a request ------------------------------------------------ */

typedef struct parsed {
    char *buf;                   /* a copy of the input, cut into pieces */
    char *method, *path, *peer_text, *mode;
    http_field fields[MAX_FIELDS];
    size_t n_fields;
    char *owned[MAX_FIELDS];     /* substituted header values */
    size_t n_owned;
    const char *body;
    size_t body_len;
    struct sockaddr_storage peer;
    bool has_peer;
} parsed;

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX decoding in place, as libmicrohttpd's default unescaper ('+' stays). */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '%' && hex(r[1]) >= 0 && hex(r[2]) >= 0) {
            *w++ = (char)(hex(r[1]) * 16 + hex(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static void add_field(parsed *p, enum MHD_ValueKind kind, const char *name, const char *value) {
    if (p->n_fields < MAX_FIELDS) p->fields[p->n_fields++] = (http_field){kind, name, value};
}

/* "a=1&b&c=%41" -> query arguments (a key without '=' has a NULL value). */
static void parse_query(parsed *p, char *q) {
    char *save = NULL;
    for (char *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            unescape(eq + 1);
        }
        unescape(kv);
        add_field(p, MHD_GET_ARGUMENT_KIND, kv, eq ? eq + 1 : NULL);
    }
}

/* $C, $K, $T, $R in a header value become alice's session cookie (header
 * mode), carol's (token mode, from her token), carol's and root's tokens:
 * credentials the fuzzer could never guess, to mutate around. */
static const char *substitute(parsed *p, const char *value) {
    if (!strchr(value, '$') || p->n_owned >= MAX_FIELDS) return value;
    size_t cap = strlen(value) * 100 + 1, n = 0;
    char *out = malloc(cap);
    for (const char *s = value; *s; s++) {
        const char *with = NULL;
        if (s[0] == '$' && s[1] == 'C') with = alice_cookie;
        if (s[0] == '$' && s[1] == 'K') with = carol_cookie;
        if (s[0] == '$' && s[1] == 'T') with = carol_token;
        if (s[0] == '$' && s[1] == 'R') with = root_token;
        if (with) {
            size_t k = strlen(with);
            memcpy(out + n, with, k);
            n += k;
            s++;
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
    p->owned[p->n_owned++] = out;
    return out;
}

static bool parse_peer(parsed *p, const char *text) {
    struct sockaddr_in *in = (struct sockaddr_in *)&p->peer;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&p->peer;
    memset(&p->peer, 0, sizeof(p->peer));
    if (text == NULL) text = "127.0.0.1";
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* false when the input is not a request at all (no request line). */
static bool parse(const uint8_t *data, size_t size, parsed *p) {
    memset(p, 0, sizeof(*p));
    p->buf = fuzz_cstr(data, size);
    char *end = p->buf + size;
    char *line_end = memchr(p->buf, '\n', size);
    if (!line_end) return false;
    *line_end = '\0';
    if (strlen(p->buf) != (size_t)(line_end - p->buf)) return false; /* NUL in the request line */
    char *save = NULL;
    p->method = strtok_r(p->buf, " ", &save);
    char *target = strtok_r(NULL, " ", &save);
    p->peer_text = strtok_r(NULL, " ", &save);
    p->mode = strtok_r(NULL, " ", &save);
    if (!p->method || !target || target[0] != '/') return false;
    char *q = strchr(target, '?');
    if (q) *q++ = '\0';
    unescape(target);
    p->path = target;
    if (q) parse_query(p, q);
    char *s = line_end + 1;
    while (s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *stop = nl ? nl : end;
        if (stop == s) { /* the blank line: the body follows */
            s = stop + 1;
            break;
        }
        *stop = '\0';
        char *colon = strchr(s, ':');
        if (colon && colon > s && strlen(s) == (size_t)(stop - s)) {
            *colon = '\0';
            char *value = colon + 1;
            while (*value == ' ' || *value == '\t') value++;
            add_field(p, MHD_HEADER_KIND, s, substitute(p, value));
        }
        s = stop + 1;
    }
    p->body = s < end ? s : "";
    p->body_len = s < end ? (size_t)(end - s) : 0;
    p->has_peer = parse_peer(p, p->peer_text);
    return true;
}

static void parsed_free(parsed *p) {
    for (size_t i = 0; i < p->n_owned; i++) free(p->owned[i]);
    free(p->buf);
}

/* ---- the reply ----------------------------------------------------------------- */

/* Frees what a reply holds, as send_reply and libmicrohttpd would. */
static void release(http_reply *r) {
    http_reply_release(r);
}

static bool has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return true;
    return false;
}

static bool contains(const char *hay, size_t n, const char *needle) {
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* The raw input: a marker the caller wrote itself (a 404 names the id it
 * was asked for) is no leak. */
static const uint8_t *input;
static size_t input_size;

static void check_isolation(const char *user, const char *bytes, size_t n, const char *what) {
    static const char *const markers[] = BOB_MARKERS;
    if (strcmp(user, "bob") == 0) return;
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
        FUZZ_CHECK(!contains(bytes, n, markers[i]) ||
                       memmem(input, input_size, markers[i], strlen(markers[i])) != NULL,
                   "%s for \"%s\" shows bob's %s", what, user, markers[i]);
}

static void check_file(const http_request *req, const http_reply *r) {
    char link[64], real[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", r->fd);
    ssize_t n = readlink(link, real, sizeof(real) - 1);
    FUZZ_CHECK(n > 0, "file reply without an open file");
    real[n] = '\0';
    struct stat st;
    FUZZ_CHECK(fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode), "file reply %s not regular", real);
    FUZZ_CHECK((uint64_t)st.st_size == r->file_size, "file size %llu, reply says %llu",
               (unsigned long long)st.st_size, (unsigned long long)r->file_size);
    bool allowed = strncmp(real, at("%s/%s", "web/"), strlen(at("%s/%s", "web/"))) == 0 ||
                   strncmp(real, at("%s/%s", "vendor/"), strlen(at("%s/%s", "vendor/"))) == 0 ||
                   strncmp(real, at("%s/%s", "state/work/"), strlen(at("%s/%s", "state/work/"))) == 0 ||
                   strncmp(real, at("%s/%s", "state/results/"), strlen(at("%s/%s", "state/results/"))) == 0;
    FUZZ_CHECK(allowed, "served %s", real);
    char buf[4096];
    ssize_t got = pread(r->fd, buf, sizeof(buf), 0);
    if (got > 0) check_isolation(req->user, buf, (size_t)got, "file");
}

static void check_reply(const http_request *req, const http_reply *r) {
    FUZZ_CHECK(r->status >= 100 && r->status < 500, "status %d", r->status);
    FUZZ_CHECK(!has_control(req->request_id) && req->request_id[0], "request id \"%s\"",
               req->request_id);
    FUZZ_CHECK(!has_control(r->location) && !has_control(r->set_cookie) && !has_control(r->allow) &&
                   !has_control(r->etag) && !has_control(r->cache_control),
               "control character in a reply header");
    if (r->kind == REPLY_JSON) {
        char *text = r->json ? json_dumps(r->json, JSON_COMPACT) : NULL;
        FUZZ_CHECK(text != NULL, "JSON reply that cannot be encoded (status %d)", r->status);
        check_isolation(req->user, text, strlen(text), "JSON");
        if (r->status >= 400) {
            json_t *e = json_object_get(r->json, "error");
            FUZZ_CHECK(json_is_string(json_object_get(e, "code")) &&
                           json_is_string(json_object_get(e, "message")),
                       "error reply without code and message: %s", text);
        }
        free(text);
    } else if (r->kind == REPLY_TEXT) {
        if (r->text) check_isolation(req->user, r->text, r->text_len, "text");
    } else if (r->kind == REPLY_FILE) {
        check_file(req, r);
    } else {
        FUZZ_CHECK(r->status == 101 && r->upgrade != NULL, "upgrade reply %d", r->status);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    parsed p;
    input = data;
    input_size = size;
    if (parse(data, size, &p)) {
        http_local local = {p.fields, p.n_fields,
                            p.has_peer ? (const struct sockaddr *)&p.peer : NULL};
        ctx.auth = p.mode && strcmp(p.mode, "token") == 0 ? &auth_token_mode : &auth_header_mode;
        ctx.slides = slide_cache_new(NULL);
        http_request req = {.ctx = &ctx, .local = &local, .method = p.method, .path = p.path,
                            .body = p.body, .body_len = p.body_len};
        http_reply r = http_handle(&req);
        if (getenv("FUZZ_HTTP_TRACE")) { /* what each input got, to read a reproducer */
            char *text = r.kind == REPLY_JSON && r.json ? json_dumps(r.json, JSON_COMPACT) : NULL;
            fprintf(stderr, "%s %s -> %d user \"%s\" %.300s\n", p.method, p.path, r.status,
                    req.user, text ? text : "");
            free(text);
        }
        check_reply(&req, &r);
        release(&r);
        slide_cache_free(ctx.slides);
        bool reads_only = strcmp(p.method, "GET") == 0 || strcmp(p.method, "HEAD") == 0;
        if (!reads_only) restore_database();
        if (strcmp(p.method, "DELETE") == 0) put_job_files();
    }
    parsed_free(&p);
    return 0;
}
