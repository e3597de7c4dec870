/*
 * test_ws_limits.c - the WebSocket hub's limits and close codes
 * (src/http/ws.h, ws_client.h), end to end with the fixture of ws_fixture.h
 * (a real libmicrohttpd daemon, SQLite store and clients): a client that
 * does not read closed with 1013 while another keeps up, 1009 for a frame
 * too big, 1003 for a binary frame, bytes sent with the upgrade request,
 * 1001 for an idle client and on ws_hub_stop, the connection limit, and the
 * client's report of a refused upgrade. Delivery is in test_ws.c.
 */
#include "ws_fixture.h"

/* ---- tests: limits and closes ---------------------------------------------------- */

/* A client that never reads is closed with 1013 once its unsent data passes
 * max_queue_bytes; a client of the same user keeps receiving everything,
 * promptly. */
static void test_slow_client_closed_1013(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_queue_bytes = 384 * 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    int slow = raw_connect(f, "/events?user=alice&since=0&sndbuf=4096", 4096);
    ws_client *fast = connect_to(f, "alice", 0, 0);
    wait_connections(f, 2);
    store *rd = NULL;
    assert_int_equal(store_open(f->db, &rd, err, sizeof(err)), TS_OK);
    /* 20 batches of ~150 events of ~400 bytes: ~1.2 MB, 25 ms apart */
    writer w = {.st = f->st, .a = a, .rounds = 20, .per_round = 150, .msg_len = 250,
                .pause_us = 25000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    seqs *got = malloc(sizeof(*got)), *want = malloc(sizeof(*want));
    size_t total = 2 + 20 * 150;
    assert_int_equal(recv_n(fast, total, 10, got), total);
    double received = ts_monotonic();
    pthread_join(t, NULL);
    expected(rd, 0, "alice", 0, want);
    assert_same(got, want);
    assert_true(received - w.finished < 1.0);

    size_t texts = 0;
    assert_int_equal(raw_until_close(slow, 3, &texts), 1013);
    assert_true(texts < total);
    raw_send_frame(slow, 8, "\x03\xe8", 2); /* our close reply */
    wait_connections(f, 1);
    close(slow);
    expect_quiet(fast, 0.05);
    ws_client_close(fast, 1000);
    store_close(rd);
    free(got);
    free(want);
}

/* A frame over max_frame_bytes: 1009. Smaller text frames are ignored. */
static void test_oversized_frame_1009(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_frame_bytes = 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got;
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    assert_int_equal(ws_client_send_text(c, "hello", 5), TS_OK);
    progress(f->st, a, 1, 10);
    assert_int_equal(recv_n(c, 1, 2, &got), 1); /* still open */
    char *big = malloc(4096);
    memset(big, 'a', 4096);
    ws_client_send_text(c, big, 4096); /* may fail once the server stops reading */
    free(big);
    assert_int_equal(expect_closed(c, 2), 1009);
    ws_client_close(c, 1000);
    wait_connections(f, 0);
}

/* A binary frame: 1003. */
static void test_binary_frame_1003(void **state) {
    fx *f = *state;
    start_default(f);
    submit(f->st, "alice");
    int fd = raw_connect(f, "/events?user=alice&since=0", 0);
    raw_send_frame(fd, 2, "abc", 3);
    size_t texts = 0;
    assert_int_equal(raw_until_close(fd, 2, &texts), 1003);
    raw_send_frame(fd, 8, "\x03\xeb", 2);
    wait_connections(f, 0);
    close(fd);
}

/* Bytes that arrive with the request (MHD reads them before the upgrade)
 * are the client's first frames: here a ping, answered with its pong. */
static void test_first_frame_with_request(void **state) {
    fx *f = *state;
    start_default(f);
    unsigned char ping[16];
    size_t n = raw_frame(ping, 9, "hi", 2);
    int fd = raw_connect_tail(f, "/events?user=alice&since=0", 0, ping, n);
    int op = 0;
    unsigned char *p = NULL;
    size_t len = 0;
    assert_int_equal(raw_read_frame(fd, 2, &op, &p, &len), 0);
    assert_int_equal(op, 10);
    assert_int_equal(len, 2);
    assert_memory_equal(p, "hi", 2);
    free(p);
    raw_send_frame(fd, 8, "\x03\xe8", 2);
    size_t texts = 0;
    assert_int_equal(raw_until_close(fd, 2, &texts), 1000); /* our close, echoed */
    wait_connections(f, 0);
    close(fd);
}

/* A client that answers no ping is closed with 1001 after idle_timeout_s;
 * one that does (ws_client answers inside recv) stays. */
static void test_idle_timeout_1001(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.ping_interval_s = 0.15;
    cfg.idle_timeout_s = 0.5;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *silent = connect_to(f, "alice", 0, 2);
    ws_client *alive = connect_to(f, "alice", 0, 2);
    double t0 = ts_monotonic();
    while (ts_monotonic() - t0 < 1.1) expect_quiet(alive, 0.05);
    assert_int_equal(expect_closed(silent, 1), 1001);
    wait_connections(f, 1); /* released once our close echo arrived */
    progress(f->st, a, 1, 10);
    seqs got;
    assert_int_equal(recv_n(alive, 1, 2, &got), 1);
    ws_client_close(silent, 1000);
    ws_client_close(alive, 1000);
}

/* ws_hub_stop: 1001 to every client, within about a second. */
static void test_stop_sends_1001(void **state) {
    fx *f = *state;
    start_default(f);
    submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    ws_client *d = connect_to(f, "bob", 0, 0);
    wait_connections(f, 2);
    double t0 = ts_monotonic();
    ws_hub_stop(f->hub);
    ws_hub_free(f->hub);
    f->hub = NULL;
    assert_true(ts_monotonic() - t0 < 1.5);
    assert_int_equal(expect_closed(c, 1), 1001);
    assert_int_equal(expect_closed(d, 1), 1001);
    ws_client_close(c, 1000);
    ws_client_close(d, 1000);
}

/* Beyond max_connections, a new connection is closed with 1013. */
static void test_connection_limit_1013(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.max_connections = 1;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 2);
    wait_connections(f, 1);
    ws_client *d = connect_to(f, "alice", 0, 2);
    assert_int_equal(expect_closed(d, 2), 1013);
    ws_client_close(d, 1000);
    wait_connections(f, 1);
    progress(f->st, a, 1, 10);
    seqs got;
    assert_int_equal(recv_n(c, 1, 2, &got), 1);
    ws_client_close(c, 1000);
}

/* The client reports a refused upgrade with the status and the API's error
 * message, and other failures clearly. */
static void test_client_reports_refusal(void **state) {
    fx *f = *state;
    char url[128], err[TS_ERRLEN];
    start_default(f);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/nothing", f->port);
    assert_null(ws_client_connect(url, "X-User-ID: alice\r\n", 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 404: nothing at this address");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", f->port);
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 400: user and a WebSocket key are required");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/plain", f->port);
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_string_equal(err, "HTTP 403: Forbidden"); /* no JSON: the reason phrase */

    /* a port nobody listens on */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/events", ntohs(sa.sin_port));
    assert_null(ws_client_connect(url, NULL, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(ws_client_connect("https://example.org/", NULL, 2, err, sizeof(err)));
    assert_non_null(strstr(err, "unsupported URL"));
}


int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_client_closed_1013, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_1009, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_frame_1003, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_frame_with_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_sends_1001, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit_1013, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reports_refusal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
