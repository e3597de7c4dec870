/*
 * test_http_handle.c - requests made in process (http.h: http_handle with
 * an http_local instead of a libmicrohttpd connection), the seam the HTTP
 * fuzz target drives: routing, 404/405, identification from the local
 * headers and peer (loopback or not), query arguments, the session cookie
 * round trip and tenant isolation, against a fresh store per test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "http/view_cache.h"
#include "testlib.h"
#include "util/util.h"

typedef struct fx {
    char dir[64];
    ts_config cfg;
    auth_config auth;
    http_ctx ctx;
    struct sockaddr_in loopback, stranger;
} fx;

static int setup(void **state) {
    char err[TS_ERRLEN];
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    strcpy(f->dir, "/tmp/tessera-handle-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    config_defaults(&f->cfg);
    ts_strlcpy(f->cfg.state_dir, f->dir, sizeof(f->cfg.state_dir));
    config_finish(&f->cfg);
    f->auth.header_mode = true;
    f->auth.trusted_proxies = "";
    for (size_t i = 0; i < 32; i++) f->auth.secret[i] = (unsigned char)(i * 7);
    f->auth.secret_len = 32;
    f->auth.session_ttl_s = 3600;
    f->ctx.cfg = &f->cfg;
    f->ctx.auth = &f->auth;
    if (store_open(f->cfg.db, &f->ctx.st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    f->ctx.doorbell_path = "";
    f->loopback.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &f->loopback.sin_addr);
    f->stranger.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", &f->stranger.sin_addr);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->ctx.st);
    test_rm_rf(f->dir);
    free(f);
    return 0;
}

/* One request in process; returns the reply (caller checks and frees it
 * with done()). body may be NULL. */
static http_reply call(fx *f, const char *method, const char *path, const http_field *fields,
                       size_t n, const struct sockaddr_in *peer, const char *body) {
    http_local local = {fields, n, (const struct sockaddr *)peer};
    http_request req = {.ctx = &f->ctx, .local = &local, .method = method, .path = path,
                        .body = body ? body : "", .body_len = body ? strlen(body) : 0};
    return http_handle(&req);
}

static void done(http_reply *r) {
    http_reply_release(r);
}

/* A reply's JSON body, whether built (r->json) or sent as bytes (a view,
 * api_workflow_get.c); the caller decrefs it. */
static json_t *body_of(const http_reply *r) {
    if (r->json) return json_incref(r->json);
    assert_non_null(r->text);
    json_t *v = json_loadb(r->text, r->text_len, 0, NULL);
    assert_non_null(v);
    return v;
}

/* The error code of a JSON error reply. */
static const char *code_of(const http_reply *r) {
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static const char WORKFLOW[] =
    "{\"name\":\"w\",\"jobs\":[{\"job_id\":\"a\",\"job_type\":\"noop\"}]}";

static void test_submit_get_and_isolation(void **state) {
    fx *f = *state;
    http_field alice[] = {{MHD_HEADER_KIND, "x-user-id", "alice"},
                          {MHD_HEADER_KIND, "Content-Type", "application/json"}};
    http_reply r = call(f, "POST", "/api/workflows", alice, 2, &f->loopback, WORKFLOW);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.location, "/api/workflows/1");
    done(&r);
    r = call(f, "GET", "/api/workflows/1", alice, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 200);
    json_t *v = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "w");
    json_decref(v);
    done(&r);
    http_field bob[] = {{MHD_HEADER_KIND, "X-User-ID", "bob"}};
    r = call(f, "GET", "/api/workflows/1", bob, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 404);
    done(&r);
}

/* The answer to a POST is made from what the handler has (spec, time,
 * receipt) without reading the workflow back: it must be the very view a
 * GET gives right after, for a workflow of several jobs with dependencies,
 * images and defaults, behind another user's running one. */
static void test_submit_answer_equals_get(void **state) {
    fx *f = *state;
    http_field bob[] = {{MHD_HEADER_KIND, "X-User-ID", "bob"},
                        {MHD_HEADER_KIND, "Content-Type", "application/json"}};
    http_reply r = call(f, "POST", "/api/workflows", bob, 2, &f->loopback, WORKFLOW);
    assert_int_equal(r.status, 201);
    done(&r);
    char err[TS_ERRLEN];
    core_change ch = {.kind = CHANGE_WORKFLOW, .workflow_id = 1, .job_index = -1,
                      .from = WF_QUEUED, .to = WF_RUNNING, .at = 5, .exit_code = -1};
    assert_int_equal(store_admit(f->ctx.st, &ch, 10, err, sizeof(err)), TS_OK);

    http_field alice[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                          {MHD_HEADER_KIND, "Content-Type", "application/json"}};
    static const char DAG[] =
        "{\"name\":\"dag\",\"priority\":3,\"jobs\":["
        "{\"job_id\":\"a\",\"job_type\":\"noop\",\"branch\":\"x\",\"cpus\":2},"
        "{\"job_id\":\"b\",\"job_type\":\"noop\",\"branch\":\"y\"},"
        "{\"job_id\":\"c\",\"job_type\":\"noop\",\"depends_on\":[\"a\",\"b\"],"
        "\"max_retries\":2}]}";
    r = call(f, "POST", "/api/workflows", alice, 2, &f->loopback, DAG);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.location, "/api/workflows/2");
    json_t *posted_view = body_of(&r);
    assert_int_equal(json_integer_value(json_object_get(posted_view, "queue_position")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(posted_view, "waiting_reason")),
                           "1 of"));
    json_decref(posted_view);
    http_reply g = call(f, "GET", "/api/workflows/2", alice, 1, &f->loopback, NULL);
    assert_int_equal(g.status, 200);
    json_t *pv = body_of(&r), *gv = body_of(&g);
    char *posted = json_dumps(pv, JSON_SORT_KEYS), *got = json_dumps(gv, JSON_SORT_KEYS);
    assert_string_equal(posted, got);
    free(posted);
    free(got);
    json_decref(pv);
    json_decref(gv);
    done(&r);
    done(&g);
}

static void test_identity_needs_loopback_peer(void **state) {
    fx *f = *state;
    http_field alice[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"}};
    http_reply r = call(f, "GET", "/api/workflows", alice, 1, &f->stranger, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(code_of(&r), "invalid_credentials");
    done(&r);
    r = call(f, "GET", "/api/workflows", alice, 1, NULL, NULL);
    assert_int_equal(r.status, 401);
    done(&r);
    r = call(f, "GET", "/api/workflows", NULL, 0, &f->loopback, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(code_of(&r), "unauthenticated");
    done(&r);
}

static void test_routing_404_405(void **state) {
    fx *f = *state;
    http_field alice[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"}};
    http_reply r = call(f, "GET", "/api/nothing", alice, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 404);
    done(&r);
    r = call(f, "PUT", "/api/workflows", alice, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "POST, GET");
    done(&r);
}

/* Query arguments come from the local fields, header values are not
 * mistaken for them, and a sane X-Request-ID is echoed. */
static void test_query_arguments(void **state) {
    fx *f = *state;
    http_field bad[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                        {MHD_HEADER_KIND, "since", "7"},
                        {MHD_GET_ARGUMENT_KIND, "since", "x"},
                        {MHD_HEADER_KIND, "X-Request-ID", "req-1"}};
    http_reply r = call(f, "GET", "/api/events", bad, 4, &f->loopback, NULL);
    assert_int_equal(r.status, 400);
    assert_string_equal(code_of(&r), "invalid_query");
    done(&r);
    http_field good[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                         {MHD_GET_ARGUMENT_KIND, "since", "0"}};
    http_local local = {good, 2, (const struct sockaddr *)&f->loopback};
    http_request req = {.ctx = &f->ctx, .local = &local, .method = "GET", .path = "/api/events",
                        .body = ""};
    r = http_handle(&req);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(json_object_get(r.json, "events")));
    done(&r);
}

/* POST /api/session from loopback signs a cookie that identifies the
 * caller on the next request, read from the local Cookie header. */
static void test_session_cookie_round_trip(void **state) {
    fx *f = *state;
    http_field json[] = {{MHD_HEADER_KIND, "Content-Type", "application/json"}};
    http_reply r = call(f, "POST", "/api/session", json, 1, &f->loopback, "{\"user\":\"carol\"}");
    assert_int_equal(r.status, 200);
    char cookie[512];
    ts_strlcpy(cookie, r.set_cookie, sizeof(cookie));
    done(&r);
    char *semi = strchr(cookie, ';');
    assert_non_null(semi);
    *semi = '\0';
    http_field with_cookie[] = {{MHD_HEADER_KIND, "Cookie", cookie}};
    r = call(f, "GET", "/api/session", with_cookie, 1, &f->stranger, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "user")), "carol");
    done(&r);
    r = call(f, "POST", "/api/session", json, 1, &f->stranger, "{\"user\":\"carol\"}");
    assert_int_equal(r.status, 401);
    done(&r);
}

/* A GET of a workflow through the worker's view cache: the second read is
 * a hit with the same bytes and ETag, If-None-Match gets a 304, another
 * user gets 404 (also with the ETag in hand), and a change to the workflow
 * shows at once. */
static void test_cached_get_follows_changes(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], etag[80];
    f->ctx.views = view_cache_new(1u << 20);
    http_field alice[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                          {MHD_HEADER_KIND, "Content-Type", "application/json"}};
    http_reply r = call(f, "POST", "/api/workflows", alice, 2, &f->loopback, WORKFLOW);
    assert_int_equal(r.status, 201);
    done(&r);
    r = call(f, "GET", "/api/workflows/1", alice, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 200);
    assert_true(r.etag[0] == '"');
    ts_strlcpy(etag, r.etag, sizeof(etag));
    json_t *v = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "");
    json_decref(v);
    done(&r);
    r = call(f, "GET", "/api/workflows/1", alice, 1, &f->loopback, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, etag);
    done(&r);
    view_cache_stats vs;
    view_cache_get_stats(f->ctx.views, &vs);
    assert_int_equal(vs.hits, 1);
    assert_int_equal(vs.misses, 1);

    http_field revalidate[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                               {MHD_HEADER_KIND, "If-None-Match", etag}};
    r = call(f, "GET", "/api/workflows/1", revalidate, 2, &f->loopback, NULL);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.text_len, 0);
    assert_string_equal(r.etag, etag);
    done(&r);
    http_field bob[] = {{MHD_HEADER_KIND, "X-User-ID", "bob"},
                        {MHD_HEADER_KIND, "If-None-Match", etag}};
    r = call(f, "GET", "/api/workflows/1", bob, 2, &f->loopback, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(code_of(&r), "not_found");
    done(&r);

    core_change ch = {.kind = CHANGE_QUEUE_POSITION, .workflow_id = 1, .user = "alice",
                      .job_index = -1, .from = WF_QUEUED, .to = WF_QUEUED, .queue_position = 1,
                      .at = ts_now(), .event_type = "queue.position"};
    ts_strlcpy(ch.reason, "second in line", sizeof(ch.reason));
    assert_int_equal(store_apply(f->ctx.st, &ch, NULL, err, sizeof(err)), TS_OK);
    r = call(f, "GET", "/api/workflows/1", revalidate, 2, &f->loopback, NULL);
    assert_int_equal(r.status, 200);
    assert_string_not_equal(r.etag, etag);
    v = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(v, "reason")), "second in line");
    json_decref(v);
    done(&r);
    view_cache_free(f->ctx.views);
    f->ctx.views = NULL;
}

/* A WebSocket upgrade's reply carries its handler's closure for the server
 * to free when the request ends: libmicrohttpd never calls the handler when
 * the client goes away before the 101 is sent, and the closure leaked then
 * (found by tests/fuzz/fuzz_http under LeakSanitizer). */
static void test_upgrade_reply_owns_its_closure(void **state) {
    fx *f = *state;
    http_field h[] = {{MHD_HEADER_KIND, "X-User-ID", "alice"},
                      {MHD_HEADER_KIND, "Upgrade", "websocket"},
                      {MHD_HEADER_KIND, "Connection", "Upgrade"},
                      {MHD_HEADER_KIND, "Sec-WebSocket-Version", "13"},
                      {MHD_HEADER_KIND, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}};
    http_reply r = call(f, "GET", "/api/events", h, 5, &f->loopback, NULL);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.kind, REPLY_UPGRADE);
    assert_non_null(r.upgrade);
    assert_non_null(r.upgrade_ctx);
    MHD_destroy_response(r.upgrade); /* what a connection closed early does */
    free(r.upgrade_ctx);             /* what the request's end does */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_get_and_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_answer_equals_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_needs_loopback_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_404_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_cookie_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_reply_owns_its_closure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cached_get_follows_changes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
