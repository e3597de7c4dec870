/*
 * test_client.c - the command line's HTTP client (src/cli/client.c) against
 * a tiny libmicrohttpd server started here on 127.0.0.1 (port 0) that
 * records each request and answers with a canned reply: identity headers,
 * body passthrough, error-shape extraction, transport errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "cli/client.h"
#include "util/util.h"

/* What the server saw last, and what it answers. */
typedef struct recorder {
    pthread_mutex_t mu;
    char method[16];
    char url[256];
    char user_id[256];   /* X-User-ID, "" if absent */
    char auth[512];      /* Authorization, "" if absent */
    char ctype[128];     /* Content-Type, "" if absent */
    char *body;
    size_t body_len;
    int requests;
    unsigned reply_status;
    const char *reply_body;
} recorder;

typedef struct fixture {
    struct MHD_Daemon *d;
    recorder rec;
    int port;
    ts_config cfg;
} fixture;

typedef struct upload {
    char *buf;
    size_t len;
} upload;

static void copy_header(struct MHD_Connection *conn, const char *name, char *dst, size_t n) {
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    ts_strlcpy(dst, v ? v : "", n);
}

/* Records the request once its body is complete, then answers. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    recorder *r = cls;
    upload *u = *con_cls;
    if (!u) {
        *con_cls = ts_calloc(1, sizeof(upload));
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        u->buf = ts_realloc(u->buf, u->len + *upload_data_size + 1);
        memcpy(u->buf + u->len, upload_data, *upload_data_size);
        u->len += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&r->mu);
    ts_strlcpy(r->method, method, sizeof(r->method));
    ts_strlcpy(r->url, url, sizeof(r->url));
    copy_header(conn, "X-User-ID", r->user_id, sizeof(r->user_id));
    copy_header(conn, "Authorization", r->auth, sizeof(r->auth));
    copy_header(conn, "Content-Type", r->ctype, sizeof(r->ctype));
    free(r->body);
    r->body = u->buf ? u->buf : ts_strdup("");
    r->body_len = u->len;
    u->buf = NULL;
    r->requests++;
    const char *text = r->reply_body ? r->reply_body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    unsigned status = r->reply_status ? r->reply_status : 200;
    pthread_mutex_unlock(&r->mu);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    upload *u = *con_cls;
    if (u) free(u->buf);
    free(u);
    *con_cls = NULL;
}

static int setup(void **state) {
    fixture *f = ts_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->rec.mu, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, &f->rec, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!f->d) return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = info->port;
    config_defaults(&f->cfg);
    snprintf(f->cfg.server, sizeof(f->cfg.server), "http://127.0.0.1:%d", f->port);
    ts_strlcpy(f->cfg.user, "alice", sizeof(f->cfg.user));
    f->cfg.token[0] = '\0';
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    MHD_stop_daemon(f->d);
    free(f->rec.body);
    pthread_mutex_destroy(&f->rec.mu);
    free(f);
    return 0;
}

/* Without a token the identity is X-User-ID, and nothing else. */
static void test_user_header(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL;
    size_t len = 0;
    long status = 0;
    f->rec.reply_body = "{\"workflows\": []}";
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "GET", "/api/workflows?limit=5", NULL, 0, &status, &resp,
                                    &len, err, sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 200);
    assert_string_equal(resp, "{\"workflows\": []}");
    assert_int_equal(len, strlen(resp));
    assert_string_equal(f->rec.method, "GET");
    assert_string_equal(f->rec.url, "/api/workflows");
    assert_string_equal(f->rec.user_id, "alice");
    assert_string_equal(f->rec.auth, "");
    assert_string_equal(client_identity_header(c), "X-User-ID: alice\r\n");
    free(resp);
    client_free(c);
}

/* A token wins over the user: Bearer, and no X-User-ID at all. */
static void test_bearer_header(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL;
    long status = 0;
    ts_strlcpy(f->cfg.token, "tk_0123456789abcdef", sizeof(f->cfg.token));
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "GET", "/api/queue", NULL, 0, &status, &resp, NULL, err,
                                    sizeof(err)),
                     TS_OK);
    assert_string_equal(f->rec.auth, "Bearer tk_0123456789abcdef");
    assert_string_equal(f->rec.user_id, "");
    assert_string_equal(client_identity_header(c), "Authorization: Bearer tk_0123456789abcdef\r\n");
    free(resp);
    client_free(c);
}

/* A token with a newline would split headers: refused before any request. */
static void test_bad_token_refused(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN];
    ts_strlcpy(f->cfg.token, "abc\r\nX-User-ID: root", sizeof(f->cfg.token));
    assert_null(client_new(&f->cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "token"));
    assert_int_equal(f->rec.requests, 0);
}

/* The body reaches the server byte for byte, as JSON, also when large. */
static void test_post_body_passthrough(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL;
    long status = 0;
    size_t n = 300 * 1024;
    char *body = ts_malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
    memcpy(body, "{\"name\": \"caf\xc3\xa9\", \"x\": \"", 25);
    f->rec.reply_status = 201;
    f->rec.reply_body = "{\"id\": 7}";
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "POST", "/api/workflows", body, n, &status, &resp, NULL,
                                    err, sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 201);
    assert_string_equal(resp, "{\"id\": 7}");
    assert_string_equal(f->rec.method, "POST");
    assert_string_equal(f->rec.ctype, "application/json");
    assert_int_equal(f->rec.body_len, n);
    assert_memory_equal(f->rec.body, body, n);
    free(resp);
    free(body);
    client_free(c);
}

/* A POST without a body (cancel) sends an empty one; other methods pass. */
static void test_post_empty_and_delete(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL;
    long status = 0;
    f->rec.reply_status = 202;
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "POST", "/api/workflows/3/cancel", NULL, 0, &status, &resp,
                                    NULL, err, sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 202);
    assert_string_equal(f->rec.method, "POST");
    assert_string_equal(f->rec.url, "/api/workflows/3/cancel");
    assert_int_equal(f->rec.body_len, 0);
    free(resp);
    assert_int_equal(client_request(c, "DELETE", "/api/workflows/3", NULL, 0, &status, &resp, NULL,
                                    err, sizeof(err)),
                     TS_OK);
    assert_string_equal(f->rec.method, "DELETE");
    assert_int_equal(f->rec.requests, 2);
    free(resp);
    client_free(c);
}

/* "http://host:port/" and "http://host:port" reach the same paths. */
static void test_trailing_slash(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL;
    long status = 0;
    size_t n = strlen(f->cfg.server);
    ts_strlcpy(f->cfg.server + n, "//", sizeof(f->cfg.server) - n);
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    f->cfg.server[n] = '\0';
    assert_string_equal(client_base_url(c), f->cfg.server);
    assert_int_equal(client_request(c, "GET", "/healthz", NULL, 0, &status, &resp, NULL, err,
                                    sizeof(err)),
                     TS_OK);
    assert_string_equal(f->rec.url, "/healthz");
    free(resp);
    client_free(c);
}

/* A 4xx is an answer, not a failure; its error shape becomes one line. */
static void test_error_shape(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], line[512], *resp = NULL;
    size_t len = 0;
    long status = 0;
    f->rec.reply_status = 422;
    f->rec.reply_body = "{\"error\": {\"code\": \"invalid_workflow\", \"message\": "
                        "\"jobs[1].depends_on: unknown job job-9\", \"details\": "
                        "{\"field\": \"depends_on\", \"job_id\": \"job-2\"}}}";
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "POST", "/api/workflows", "{}", 2, &status, &resp, &len,
                                    err, sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 422);
    client_error_line(status, resp, len, line, sizeof(line));
    assert_string_equal(line, "jobs[1].depends_on: unknown job job-9 (HTTP 422 invalid_workflow; "
                              "field: depends_on, job_id: job-2)");
    free(resp);
    client_free(c);
}

/* Bodies that are not the service's error shape still give a line. */
static void test_error_line_other_bodies(void **state) {
    (void)state;
    char line[512];
    const char *html = "<html>502 Bad Gateway</html>\nnginx";
    client_error_line(502, html, strlen(html), line, sizeof(line));
    assert_string_equal(line, "HTTP 502: <html>502 Bad Gateway</html>");
    client_error_line(500, "", 0, line, sizeof(line));
    assert_string_equal(line, "HTTP 500 with an empty answer");
    client_error_line(503, NULL, 0, line, sizeof(line));
    assert_string_equal(line, "HTTP 503 with an empty answer");
    const char *no_details = "{\"error\": {\"code\": \"not_found\", \"message\": \"workflow 9 "
                             "not found\"}}";
    client_error_line(404, no_details, strlen(no_details), line, sizeof(line));
    assert_string_equal(line, "workflow 9 not found (HTTP 404 not_found)");
    const char *numbers = "{\"error\": {\"message\": \"too many jobs\", \"details\": "
                          "{\"limit\": 10, \"got\": [1]}}}";
    client_error_line(413, numbers, strlen(numbers), line, sizeof(line));
    assert_string_equal(line, "too many jobs (HTTP 413; limit: 10, got: [1])");
    char tiny[12];
    client_error_line(404, no_details, strlen(no_details), tiny, sizeof(tiny));
    assert_string_equal(tiny, "workflow 9 ");
}

/* Downloads stream a 2xx body to a file and keep an error body. */
static void test_download(void **state) {
    fixture *f = *state;
    char err[TS_ERRLEN], *resp = NULL, got[64] = "";
    long status = 0;
    f->rec.reply_body = "line 1\nline 2\n";
    client *c = client_new(&f->cfg, err, sizeof(err));
    assert_non_null(c);
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(client_download(c, "/api/workflows/1/jobs/a/log", out, &status, &resp, err,
                                     sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 200);
    assert_string_equal(resp, "");
    free(resp);
    rewind(out);
    assert_int_equal(fread(got, 1, sizeof(got) - 1, out), 14);
    assert_string_equal(got, "line 1\nline 2\n");
    fclose(out);
    f->rec.reply_status = 404;
    f->rec.reply_body = "{\"error\": {\"code\": \"not_found\", \"message\": \"job a not found\"}}";
    out = tmpfile();
    assert_int_equal(client_download(c, "/api/workflows/1/jobs/a/log", out, &status, &resp, err,
                                     sizeof(err)),
                     TS_OK);
    assert_int_equal(status, 404);
    assert_string_equal(resp, f->rec.reply_body);
    assert_int_equal(ftell(out), 0);
    free(resp);
    fclose(out);
    client_free(c);
}

/* A port with nobody listening: TS_ERR naming the server and the fix. A
 * socket bound but not listening keeps the port from being reused. */
static void test_connection_refused(void **state) {
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    ts_config cfg;
    config_defaults(&cfg);
    snprintf(cfg.server, sizeof(cfg.server), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    char err[TS_ERRLEN], want[1024], *resp = (char *)"untouched";
    long status = -1;
    client *c = client_new(&cfg, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(client_request(c, "GET", "/api/workflows", NULL, 0, &status, &resp, NULL, err,
                                    sizeof(err)),
                     TS_ERR);
    assert_null(resp);
    snprintf(want, sizeof(want),
             "cannot reach %s: Connection refused (is `tessera serve` running?)", cfg.server);
    assert_string_equal(err, want);
    client_free(c);
    close(fd);
}

/* No server, or not an http(s) URL: a message saying how to set one. */
static void test_server_required(void **state) {
    (void)state;
    ts_config cfg;
    config_defaults(&cfg);
    cfg.server[0] = '\0';
    char err[TS_ERRLEN];
    assert_null(client_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "--server"));
    assert_non_null(strstr(err, "TESSERA_SERVER"));
    ts_strlcpy(cfg.server, "ftp://example.org", sizeof(cfg.server));
    assert_null(client_new(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "http://"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_token_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_empty_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_shape, setup, teardown),
        cmocka_unit_test(test_error_line_other_bodies),
        cmocka_unit_test_setup_teardown(test_download, setup, teardown),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_server_required),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
