/*
 * test_ws.c - WebSocket (src/http/ws.h, ws_client.h): the handshake key
 * against RFC 6455's example, then the hub end to end - a real
 * libmicrohttpd daemon on loopback upgrading GET /events to WebSocket and
 * handing the socket to the hub, a real SQLite store written by the test,
 * and real clients (ws_client, or raw sockets where a client must misbehave);
 * the fixture is ws_fixture.h.
 *
 * Checked here: a hub that cannot start says why, replay then live delivery
 * in seq order exactly once (also while a writer commits concurrently with
 * connects), reconnecting with since, isolation between users (also with one
 * frame shared by several connections of a user), frames written in pieces
 * with pings between them, and the workflow filter. The limits and the close
 * codes are in test_ws_limits.c.
 */
#include "ws_fixture.h"

/* ---- tests: the handshake key ------------------------------------------------------ */

static void test_accept_key(void **state) {
    (void)state;
    char out[29];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), TS_OK);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",   /* 23 characters */
        "dGhlIHNhbXBsZSBub25jZQ===", /* 25 */
        "dGhlIHNhbXBsZSBub25jZQAA",  /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25jZ!==",  /* not base64 */
        "dGhlIHNhbXBsZSBub25j-Q==",  /* URL-safe alphabet */
        "dGhlIHNhbXBsZSBub25jZQ= ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        strcpy(out, "untouched");
        assert_int_equal(ws_accept_key(bad[i], out), TS_ERR);
        assert_string_equal(out, "");
    }
    assert_int_equal(ws_accept_key(NULL, out), TS_ERR);
}

static void test_start_fails_clearly(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN] = "";
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.db_url = "/nonexistent-dir/for/sure/tessera.db";
    assert_null(ws_hub_start(&cfg, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    cfg.db_url = NULL;
    assert_null(ws_hub_start(&cfg, err, sizeof(err)));
}

/* ---- tests: delivery --------------------------------------------------------------- */

/* Replay of what is stored, then live events, each once and in order, and
 * only the user's. */
static void test_replay_then_live(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t a1 = submit(f->st, "alice");
    submit(f->st, "bob");
    int64_t a2 = submit(f->st, "alice");
    progress(f->st, a1, 3, 10);
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got, want;
    expected(f->st, 0, "alice", 0, &want);
    assert_int_equal(want.n, 7);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    int64_t last = got.seq[got.n - 1];

    /* live, interleaved with another user's */
    progress(f->st, a2, 2, 10);
    submit(f->st, "bob");
    progress(f->st, a1, 1, 10);
    expected(f->st, last, "alice", 0, &want);
    assert_int_equal(want.n, 3);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    expect_quiet(c, 0.15);

    /* metrics: 10 frames queued, one connection */
    double end = ts_monotonic() + 1;
    while (atomic_load(&f->delivered) < 10 && ts_monotonic() < end) usleep(1000);
    assert_int_equal(atomic_load(&f->delivered), 10);
    assert_int_equal(atomic_load(&f->connections), 1);
    ws_client_close(c, 1000);
    wait_connections(f, 0);
    end = ts_monotonic() + 1;
    while (atomic_load(&f->connections) != 0 && ts_monotonic() < end) usleep(1000);
    assert_int_equal(atomic_load(&f->connections), 0);
}

/* A client reconnecting with the last seq it saw gets exactly the newer
 * events: those committed while it was away, then live ones. */
static void test_reconnect_since_last(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t wf = submit(f->st, "alice");
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got, want;
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    int64_t last = got.seq[1];
    ws_client_close(c, 1000);

    progress(f->st, wf, 2, 10); /* while away */
    c = connect_to(f, "alice", 0, last);
    assert_int_equal(recv_n(c, 2, 2, &got), 2);
    progress(f->st, wf, 1, 10); /* live */
    seqs more;
    assert_int_equal(recv_n(c, 1, 2, &more), 1);
    got.seq[got.n++] = more.seq[0];
    expected(f->st, last, "alice", 0, &want);
    assert_same(&got, &want);
    expect_quiet(c, 0.1);

    /* since beyond everything: only what comes later */
    int64_t top = got.seq[got.n - 1];
    ws_client *d = connect_to(f, "alice", 0, top + 1000);
    wait_connections(f, 2);
    progress(f->st, wf, 1, 10);
    expect_quiet(d, 0.15);
    assert_int_equal(recv_n(c, 1, 2, &more), 1);
    assert_true(more.seq[0] > top);
    ws_client_close(d, 1000);
    ws_client_close(c, 1000);
}

/* bob never receives alice's events, replayed or live. */
static void test_users_isolated(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t a = submit(f->st, "alice");
    int64_t b = submit(f->st, "bob");
    progress(f->st, a, 5, 10);
    ws_client *cb = connect_to(f, "bob", 0, 0);
    ws_client *ca = connect_to(f, "alice", 0, 0);
    progress(f->st, a, 5, 10);
    progress(f->st, b, 1, 10);
    progress(f->st, a, 5, 10);
    seqs got, want;
    expected(f->st, 0, "bob", 0, &want);
    assert_int_equal(want.n, 3);
    assert_int_equal(recv_n(cb, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], b);
    expect_quiet(cb, 0.15);
    expected(f->st, 0, "alice", 0, &want);
    assert_int_equal(recv_n(ca, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    ws_client_close(ca, 1000);
    ws_client_close(cb, 1000);
}

/* workflow=W: only W's events. */
static void test_workflow_filter(void **state) {
    fx *f = *state;
    start_default(f);
    int64_t w1 = submit(f->st, "alice");
    int64_t w2 = submit(f->st, "alice");
    progress(f->st, w2, 3, 10);
    ws_client *c = connect_to(f, "alice", w1, 0);
    progress(f->st, w1, 2, 10);
    progress(f->st, w2, 2, 10);
    progress(f->st, w1, 1, 10);
    seqs got, want;
    expected(f->st, 0, "alice", w1, &want);
    assert_int_equal(want.n, 5);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], w1);
    expect_quiet(c, 0.15);
    ws_client_close(c, 1000);
}

/* Clients connect with various since values while events are committed:
 * each still gets every one of its events after since, once, in order -
 * the replay and the live fan-out meet without gap or overlap. */
static void test_connect_while_writing(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    ws_hub_config cfg;
    config(f, &cfg);
    /* Replays go in pages of at most half of this (~30 events here), so a
     * replay spans many turns of the hub's loop, with polls in between: the
     * hand-over from replay to fan-out is really exercised. */
    cfg.max_queue_bytes = 16 * 1024;
    start(f, &cfg);
    int64_t a = submit(f->st, "alice"), b = submit(f->st, "bob");
    progress(f->st, a, 400, 100);
    store *rd = NULL; /* the writer thread owns f->st meanwhile */
    assert_int_equal(store_open(f->db, &rd, err, sizeof(err)), TS_OK);
    writer w = {.st = f->st, .a = a, .b = b, .rounds = 120, .per_round = 1, .vary = true,
                .msg_len = 20, .pause_us = 3000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    enum { N = 8 };
    ws_client *c[N];
    int64_t since[N];
    for (int i = 0; i < N; i++) {
        seqs now;
        expected(rd, 0, "alice", 0, &now);
        /* from the start, from the middle, from the very latest */
        since[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? now.seq[now.n / 2] : now.seq[now.n - 1];
        c[i] = connect_to(f, "alice", 0, since[i]);
        usleep(25000 + 7000 * (useconds_t)i);
    }
    pthread_join(t, NULL);
    for (int i = 0; i < N; i++) {
        seqs got, want;
        expected(rd, since[i], "alice", 0, &want);
        assert_int_equal(recv_n(c[i], want.n, 5, &got), want.n);
        assert_same(&got, &want);
        expect_quiet(c[i], i == 0 ? 0.1 : 0.01);
        ws_client_close(c[i], 1000);
    }
    store_close(rd);
}

/* Live events fanned out to several connections of each user, one frame
 * shared by all of a user's connections: each connection still gets
 * exactly its own user's events, in order, and never another user's. */
static void test_shared_frames_isolated(void **state) {
    fx *f = *state;
    start_default(f);
    enum { USERS = 3, PER_USER = 4 };
    const char *users[USERS] = {"alice", "bob", "carol"};
    int64_t wf[USERS];
    ws_client *c[USERS][PER_USER];
    for (int u = 0; u < USERS; u++) wf[u] = submit(f->st, users[u]);
    int64_t start_seq = 0;
    assert_int_equal(store_events_last_seq(f->st, &start_seq, NULL, 0), TS_OK);
    for (int u = 0; u < USERS; u++)
        for (int k = 0; k < PER_USER; k++) c[u][k] = connect_to(f, users[u], 0, start_seq);
    wait_connections(f, USERS * PER_USER);
    for (int round = 0; round < 10; round++)
        for (int u = 0; u < USERS; u++) progress(f->st, wf[u], 1 + (round + u) % 3, 40);
    for (int u = 0; u < USERS; u++) {
        seqs want;
        expected(f->st, start_seq, users[u], 0, &want);
        assert_true(want.n >= 10);
        for (int k = 0; k < PER_USER; k++) {
            seqs got;
            assert_int_equal(recv_n(c[u][k], want.n, 5, &got), want.n);
            assert_same(&got, &want);
            for (size_t i = 0; i < got.n; i++) assert_int_equal(got.wf[i], wf[u]);
            expect_quiet(c[u][k], k == 0 ? 0.1 : 0.01);
            ws_client_close(c[u][k], 1000);
        }
    }
}

/* Reads one server frame slowly (a pause first, so the server's socket
 * fills and its frames are written in pieces) and checks its form: FIN, no
 * mask, no reserved bits, and text or ping. */
static int slow_read_frame(int fd, int *opcode, unsigned char **payload, size_t *len) {
    usleep(300);
    unsigned char h[2];
    if (read_full(fd, h, 1, ts_monotonic() + 5) != 0) return -1;
    if ((h[0] & 0xf0) != 0x80) fail_msg("frame byte 0 is %#x: not a final frame", h[0]);
    int op = h[0] & 0x0f;
    if (op != 1 && op != 9) fail_msg("opcode %d where a text frame or a ping was expected", op);
    int rc = 0;
    if (read_full(fd, h + 1, 1, ts_monotonic() + 5) != 0) return -1;
    if (h[1] & 0x80) fail_msg("a masked server frame");
    uint64_t n = h[1] & 0x7f;
    unsigned char ext[8];
    if (n == 126) {
        rc = read_full(fd, ext, 2, ts_monotonic() + 5);
        n = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (n == 127) {
        fail_msg("an event frame over 64 KiB");
    }
    if (rc != 0) return -1;
    *opcode = op;
    *len = n;
    *payload = malloc(n + 1);
    if (read_full(fd, *payload, n, ts_monotonic() + 5) != 0) {
        free(*payload);
        return -1;
    }
    (*payload)[n] = '\0';
    return 0;
}

/* A client whose socket buffers are tiny and that reads slowly, while the
 * hub pings it every 10 ms: event frames are written in pieces, pings are
 * queued meanwhile, and the client still reads well-formed frames only -
 * every event whole, once, in order, pings between frames, never inside
 * one (the hub writes event frames itself and control frames through
 * wslay; ws.c). */
static void test_split_frames_and_pings(void **state) {
    fx *f = *state;
    ws_hub_config cfg;
    config(f, &cfg);
    cfg.ping_interval_s = 0.01;
    cfg.idle_timeout_s = 60; /* this client never answers pings */
    start(f, &cfg);
    int64_t a = submit(f->st, "alice");
    int fd = raw_connect(f, "/events?user=alice&since=0&sndbuf=4096", 4096);
    wait_connections(f, 1);
    for (int i = 0; i < 6; i++) progress(f->st, a, 100, 200);
    seqs *want = malloc(sizeof(*want));
    expected(f->st, 0, "alice", 0, want);
    size_t texts = 0, pings = 0;
    while (texts < want->n) {
        int op = 0;
        unsigned char *p = NULL;
        size_t len = 0;
        if (slow_read_frame(fd, &op, &p, &len) != 0) fail_msg("the stream ended or stalled");
        if (op == 9) {
            pings++;
        } else {
            json_t *ev = json_loadb((const char *)p, len, 0, NULL);
            if (ev == NULL) fail_msg("event %zu is not JSON: %.60s", texts, p);
            assert_int_equal(json_integer_value(json_object_get(ev, "seq")), want->seq[texts]);
            json_decref(ev);
            texts++;
        }
        free(p);
    }
    /* pings come on (they are the hub's heartbeat) and are whole too */
    for (;;) {
        int op = 0;
        unsigned char *p = NULL;
        size_t len = 0;
        if (slow_read_frame(fd, &op, &p, &len) != 0) fail_msg("no ping after the events");
        free(p);
        if (op == 9) break;
        fail_msg("an event frame after the last event");
    }
    print_message("%zu events, %zu pings between them\n", texts, pings);
    raw_send_frame(fd, 8, "\x03\xe8", 2);
    wait_connections(f, 0);
    close(fd);
    free(want);
}


/* Events of a deferred commit - a scheduler round whose fsync has not
 * run yet (store.h, store_sync_take) - are not sent until it has: sent and
 * then lost in a power cut, their seqs would be reused by the restarted
 * store and the client would miss the events that got them. The hub polls
 * every 20 ms, so without the bound (store_listener_durable_seq) it sends
 * them within the quiet period and this fails. */
static void test_unsynced_events_wait_for_their_fsync(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    start_default(f);
    int64_t a = submit(f->st, "alice"); /* synchronous: on disk, rung */
    ws_client *c = connect_to(f, "alice", 0, 0);
    seqs got, want;
    expected(f->st, 0, "alice", 0, &want);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    int64_t last = got.seq[got.n - 1];
    assert_int_equal(store_set_deferred_sync(f->st, true, err, sizeof(err)), TS_OK);
    progress(f->st, a, 2, 10);
    expect_quiet(c, 0.2);
    assert_int_equal(store_sync(f->st, err, sizeof(err)), TS_OK);
    expected(f->st, last, "alice", 0, &want);
    assert_int_equal(want.n, 2);
    assert_int_equal(recv_n(c, want.n, 2, &got), want.n);
    assert_same(&got, &want);
    ws_client_close(c, 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test_setup_teardown(test_start_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_then_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_since_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_frames_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_frames_and_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsynced_events_wait_for_their_fsync, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
