/*
 * test_store_pg.c - what only the PostgreSQL store must prove, against the
 * server named by TESSERA_TEST_PG_URL (tests/run-tests.sh starts one):
 *   - events in commit order: many processes commit events concurrently,
 *     holding their transactions open for random times so that they commit
 *     in another order than they began, while other processes tail the
 *     stream with a `since` cursor; every reader must see every event
 *     exactly once, in strictly increasing seq order;
 *   - fencing: a leader that lost its lease (paused past its expiry, then
 *     resumed) commits nothing, and the term grows at every election;
 *   - the active-user limit holds while several processes admit at once;
 *   - a lost connection is STORE_UNAVAILABLE (inside a transaction until it
 *     is rolled back), and the handle reconnects by itself afterwards;
 *   - workflows and commands get ids in commit order: a reader that takes
 *     them in by id cursor, as the scheduler does, misses none while many
 *     processes submit at once.
 * Without TESSERA_TEST_PG_URL it says so and runs nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/spec.h"
#include "store/store.h"
#include "util/util.h"

#define T0 1700000000.0
#define WRITERS 6
#define READERS 3
#define ROUNDS 40

static const char *pg_url;

static int reset(void **state) {
    (void)state;
    PGconn *c = PQconnectdb(pg_url);
    PGresult *r = PQexec(c, "SET client_min_messages = warning;"
                            " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    PQclear(r);
    PQfinish(c);
    return rc;
}

static store *open_store(void) {
    char err[TS_ERRLEN];
    store *st = NULL;
    if (store_open(pg_url, &st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return NULL;
    }
    return st;
}

static int64_t submit(store *st, const char *user) {
    static const char json[] = "{\"name\": \"w\", \"jobs\": [{\"job_id\": \"a\", \"job_type\":"
                               " \"noop\"}, {\"job_id\": \"b\", \"job_type\": \"noop\"}]}";
    char err[TS_ERRLEN];
    spec_workflow *spec = NULL;
    spec_error e;
    int64_t id = 0;
    if (spec_parse(json, strlen(json), NULL, NULL, NULL, &spec, &e) != 0) return 0;
    if (store_submit(st, user, spec, T0, &id, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_submit: %s\n", err);
        id = 0;
    }
    spec_free(spec);
    return id;
}

static core_change position_change(int64_t wf, int pos) {
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_QUEUE_POSITION;
    ch.workflow_id = wf;
    ch.job_index = -1;
    ch.from = ch.to = WF_QUEUED;
    ch.queue_position = pos;
    ch.at = T0;
    ch.exit_code = -1;
    ch.event_type = "queue.position";
    return ch;
}

/* ---- events in commit order ------------------------------------------------- */

/* A writer: each round either submits (2 events in one short transaction)
 * or records 1-5 events in a transaction held open 0-20 ms before COMMIT. */
static int writer(int who) {
    char err[TS_ERRLEN], user[16];
    store *st = open_store();
    if (st == NULL) return 2;
    srand((unsigned)(getpid() * 7919 + who));
    snprintf(user, sizeof(user), "w%d", who);
    int64_t wf = submit(st, user);
    if (wf == 0) return 3;
    for (int round = 0; round < ROUNDS; round++) {
        if (rand() % 4 == 0) {
            if (submit(st, user) == 0) return 4;
            continue;
        }
        if (store_begin(st, err, sizeof(err)) != TS_OK) return 5;
        int n = 1 + rand() % 5;
        for (int i = 0; i < n; i++) {
            core_change ch = position_change(wf, 1 + rand() % 100);
            if (store_apply(st, &ch, NULL, err, sizeof(err)) != TS_OK) return 6;
        }
        usleep((useconds_t)(rand() % 20000));
        if (store_commit(st, err, sizeof(err)) != TS_OK) {
            fprintf(stderr, "writer %d: %s\n", who, err);
            return 7;
        }
    }
    store_close(st);
    return 0;
}

typedef struct seqs {
    size_t n, cap;
    int64_t *v;
    int64_t cursor;
} seqs;

static int collect(void *ctx, const store_event *ev) {
    seqs *s = ctx;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof(int64_t));
    }
    s->v[s->n++] = ev->seq;
    s->cursor = ev->seq;
    return 0;
}

/* A reader: tails the stream in small pages until told to stop (a byte on
 * stop_fd), then reads what is left, and writes every seq it saw to out. */
static int reader(int stop_fd, int out) {
    char err[TS_ERRLEN], c;
    store *st = open_store();
    seqs s = {0};
    size_t pages = 0;
    if (st == NULL) return 2;
    fcntl(stop_fd, F_SETFL, O_NONBLOCK);
    for (bool last = false;;) {
        if (store_events_since(st, s.cursor, NULL, 0, 7, collect, &s, err, sizeof(err)) != TS_OK)
            return 3;
        pages++;
        if (last) {
            size_t before = s.n;
            if (store_events_since(st, s.cursor, NULL, 0, 0, collect, &s, err, sizeof(err)) != TS_OK)
                return 3;
            if (s.n == before) break;
            continue;
        }
        last = read(stop_fd, &c, 1) == 1;
    }
    size_t n = s.n;
    fprintf(stderr, "reader: %zu events in %zu pages\n", n, pages);
    if (write(out, &n, sizeof(n)) != sizeof(n)) return 4;
    for (size_t off = 0; off < n * sizeof(int64_t);) {
        ssize_t w = write(out, (char *)s.v + off, n * sizeof(int64_t) - off);
        if (w <= 0) return 4;
        off += (size_t)w;
    }
    free(s.v);
    store_close(st);
    return 0;
}

static void read_all(int fd, void *buf, size_t len) {
    for (size_t off = 0; off < len;) {
        ssize_t r = read(fd, (char *)buf + off, len - off);
        assert_true(r > 0);
        off += (size_t)r;
    }
}

static void test_events_commit_order_under_concurrent_writers(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    store *st = open_store(); /* migrates before the children race */
    assert_non_null(st);
    pid_t w[WRITERS], r[READERS];
    int stop[READERS][2], out[READERS][2], status;
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(pipe(stop[i]), 0);
        assert_int_equal(pipe(out[i]), 0);
        r[i] = fork();
        if (r[i] == 0) {
            close(stop[i][1]);
            _exit(reader(stop[i][0], out[i][1]));
        }
        close(stop[i][0]);
        close(out[i][1]);
    }
    for (int i = 0; i < WRITERS; i++) {
        w[i] = fork();
        if (w[i] == 0) _exit(writer(i));
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(waitpid(w[i], &status, 0), w[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    for (int i = 0; i < READERS; i++) {
        assert_int_equal(write(stop[i][1], "s", 1), 1);
        close(stop[i][1]);
    }
    /* the truth, read after every writer has finished */
    seqs all = {0};
    assert_int_equal(store_events_since(st, 0, NULL, 0, 0, collect, &all, err, sizeof(err)), TS_OK);
    assert_true(all.n >= (size_t)WRITERS * ROUNDS);
    for (size_t k = 1; k < all.n; k++) assert_true(all.v[k] > all.v[k - 1]);
    for (int i = 0; i < READERS; i++) {
        size_t n = 0;
        read_all(out[i][0], &n, sizeof(n));
        int64_t *v = malloc(n * sizeof(int64_t) + 1);
        read_all(out[i][0], v, n * sizeof(int64_t));
        close(out[i][0]);
        assert_int_equal(waitpid(r[i], &status, 0), r[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* every event exactly once, in order: the reader's list is the truth */
        assert_int_equal(n, all.n);
        for (size_t k = 0; k < n; k++) assert_int_equal(v[k], all.v[k]);
        free(v);
    }
    free(all.v);
    store_close(st);
}

/* ---- fencing -------------------------------------------------------------------- */

static void test_deposed_leader_commits_nothing(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    bool leader = false;
    store *a = open_store(), *b = open_store();
    assert_non_null(a);
    assert_non_null(b);
    int64_t wf = submit(a, "alice");
    assert_int_equal(store_leader_acquire(a, "A", 0, 1.0, &leader, err, sizeof(err)), TS_OK);
    assert_true(leader);
    int64_t term_a = store_leader_term(a);
    /* A leads and writes */
    core_change ch = position_change(wf, 1);
    assert_int_equal(store_apply(a, &ch, NULL, err, sizeof(err)), TS_OK);
    /* A begins a tick, then pauses past its lease; B is elected */
    assert_int_equal(store_begin(a, err, sizeof(err)), TS_OK);
    ch = position_change(wf, 2);
    assert_int_equal(store_apply(a, &ch, NULL, err, sizeof(err)), TS_OK);
    usleep(1300 * 1000);
    assert_int_equal(store_leader_acquire(b, "B", 0, 30, &leader, err, sizeof(err)), TS_OK);
    assert_true(leader);
    assert_int_equal(store_leader_term(b), term_a + 1);
    /* A resumes: its commit is fenced, and so is any later write of A */
    assert_int_equal(store_commit(a, err, sizeof(err)), STORE_CONFLICT);
    assert_non_null(strstr(err, "fenced"));
    ch = position_change(wf, 3);
    assert_int_equal(store_apply(a, &ch, NULL, err, sizeof(err)), STORE_CONFLICT);
    /* A is not leader any more; B's writes go through */
    assert_int_equal(store_leader_acquire(a, "A", 0, 1.0, &leader, err, sizeof(err)), TS_OK);
    assert_false(leader);
    ch = position_change(wf, 4);
    assert_int_equal(store_apply(b, &ch, NULL, err, sizeof(err)), TS_OK);
    seqs s = {0};
    assert_int_equal(store_events_since(b, 0, NULL, wf, 0, collect, &s, err, sizeof(err)), TS_OK);
    assert_int_equal(s.n, 4); /* submitted, queued, A's first, B's */
    free(s.v);
    store_close(a);
    store_close(b);
}

/* ---- the active-user limit across processes -------------------------------------- */

#define ADMITTERS 4
#define USERS 8
#define MAX_ACTIVE 2

/* Tries to admit every queued workflow (ids 1..USERS*2, users u0..u7) and
 * finishes what it admitted a moment later; checks, inside each admitting
 * transaction, that at most MAX_ACTIVE users are active. */
static int admitter(int who) {
    char err[TS_ERRLEN];
    store *st = open_store();
    int violations = 0;
    if (st == NULL) return 2;
    srand((unsigned)getpid());
    for (int round = 0; round < 30; round++) {
        int64_t id = 1 + rand() % (USERS * 2);
        core_change ch;
        memset(&ch, 0, sizeof(ch));
        ch.kind = CHANGE_WORKFLOW;
        ch.workflow_id = id;
        ch.job_index = -1;
        ch.from = WF_QUEUED;
        ch.to = WF_RUNNING;
        ch.at = T0;
        ch.exit_code = -1;
        if (store_begin(st, err, sizeof(err)) != TS_OK) return 3;
        int rc = store_admit(st, &ch, MAX_ACTIVE, err, sizeof(err));
        if (rc == TS_ERR) return 4;
        store_queue_stats qs;
        if (rc == TS_OK && store_queue_stats_get(st, &qs, err, sizeof(err)) == TS_OK &&
            qs.active_users > MAX_ACTIVE)
            violations++;
        usleep((useconds_t)(rand() % 3000));
        if (store_commit(st, err, sizeof(err)) != TS_OK) return 5;
        if (rc == TS_OK) {
            usleep((useconds_t)(rand() % 5000));
            ch.from = WF_RUNNING;
            ch.to = WF_SUCCEEDED;
            if (store_apply(st, &ch, NULL, err, sizeof(err)) != TS_OK) return 6;
        }
    }
    (void)who;
    store_close(st);
    return violations ? 9 : 0;
}

static void test_active_user_limit_across_processes(void **state) {
    (void)state;
    store *st = open_store();
    assert_non_null(st);
    char user[8];
    for (int i = 0; i < USERS * 2; i++) {
        snprintf(user, sizeof(user), "u%d", i % USERS);
        assert_true(submit(st, user) > 0);
    }
    pid_t p[ADMITTERS];
    int status;
    for (int i = 0; i < ADMITTERS; i++) {
        p[i] = fork();
        if (p[i] == 0) _exit(admitter(i));
    }
    for (int i = 0; i < ADMITTERS; i++) {
        assert_int_equal(waitpid(p[i], &status, 0), p[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    store_close(st);
}

/* ---- a lost connection ------------------------------------------------------------------ */

/* Ends every tessera session of the test server (as a server restart or a
 * network cut would), from a connection of its own. */
static void cut_connections(void) {
    PGconn *c = PQconnectdb(pg_url);
    PGresult *r = PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = 'tessera' AND pid <> pg_backend_pid()");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
}

static void test_lost_connection_is_unavailable_then_reconnects(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    int64_t seq = 0;
    store *st = open_store();
    assert_non_null(st);
    int64_t wf = submit(st, "alice");
    assert_true(wf > 0);
    /* outside a transaction: this call fails, a later one reconnects */
    cut_connections();
    assert_int_equal(store_events_last_seq(st, &seq, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_non_null(strstr(err, "PostgreSQL unavailable"));
    int rc = STORE_UNAVAILABLE;
    for (int i = 0; i < 100 && rc == STORE_UNAVAILABLE; i++) {
        usleep(50000);
        rc = store_events_last_seq(st, &seq, err, sizeof(err));
    }
    assert_int_equal(rc, TS_OK);
    assert_int_equal(seq, 2);
    /* inside a transaction: everything fails until the rollback, nothing is kept */
    assert_int_equal(store_begin(st, err, sizeof(err)), TS_OK);
    core_change ch = position_change(wf, 1);
    assert_int_equal(store_apply(st, &ch, NULL, err, sizeof(err)), TS_OK);
    cut_connections();
    ch = position_change(wf, 2);
    assert_int_equal(store_apply(st, &ch, NULL, err, sizeof(err)), STORE_UNAVAILABLE);
    assert_int_equal(store_commit(st, err, sizeof(err)), STORE_UNAVAILABLE);
    store_rollback(st);
    rc = STORE_UNAVAILABLE;
    for (int i = 0; i < 100 && rc == STORE_UNAVAILABLE; i++) {
        usleep(50000);
        rc = store_events_last_seq(st, &seq, err, sizeof(err));
    }
    assert_int_equal(rc, TS_OK);
    assert_int_equal(seq, 2); /* the cut transaction's event never landed */
    ch = position_change(wf, 3);
    assert_int_equal(store_apply(st, &ch, NULL, err, sizeof(err)), TS_OK);
    store_close(st);
}

/* ---- ids in commit order -------------------------------------------------------------- */

static int count_cb(void *ctx, const store_workflow *wf) {
    int64_t *last = ctx;
    if (wf->id > *last) *last = wf->id;
    last[1]++;
    return 0;
}

static int cmd_cb(void *ctx, const store_command *c) {
    int64_t *last = ctx;
    if (c->id > *last) *last = c->id;
    last[1]++;
    return 0;
}

/* Submitters that each submit and cancel their workflows; a reader that
 * takes both in by cursor, like the scheduler; it must see them all. */
static void test_ids_in_commit_order_for_cursors(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    store *st = open_store();
    assert_non_null(st);
    pid_t p[WRITERS];
    int status;
    for (int i = 0; i < WRITERS; i++) {
        p[i] = fork();
        if (p[i] == 0) {
            store *w = open_store();
            char user[16];
            snprintf(user, sizeof(user), "s%d", i);
            for (int k = 0; w && k < 25; k++) {
                int64_t id = submit(w, user);
                if (id == 0 ||
                    store_command_add(w, id, -1, "cancel", user, T0, NULL, err, sizeof(err)) != TS_OK)
                    _exit(2);
            }
            _exit(w ? 0 : 3);
        }
    }
    int64_t wf[2] = {0, 0}, cmd[2] = {0, 0};
    for (int alive = WRITERS; alive > 0;) {
        assert_int_equal(store_load_unfinished(st, wf[0], count_cb, wf, err, sizeof(err)), TS_OK);
        assert_int_equal(store_commands_since(st, cmd[0], cmd_cb, cmd, err, sizeof(err)), TS_OK);
        pid_t done = waitpid(-1, &status, WNOHANG);
        if (done > 0) {
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            alive--;
        }
    }
    assert_int_equal(store_load_unfinished(st, wf[0], count_cb, wf, err, sizeof(err)), TS_OK);
    assert_int_equal(store_commands_since(st, cmd[0], cmd_cb, cmd, err, sizeof(err)), TS_OK);
    assert_int_equal(wf[1], WRITERS * 25);
    assert_int_equal(cmd[1], WRITERS * 25);
    store_close(st);
}

int main(void) {
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url == NULL || pg_url[0] == '\0') {
        printf("store_pg: not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store_pg runs it)\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_events_commit_order_under_concurrent_writers, reset),
        cmocka_unit_test_setup(test_deposed_leader_commits_nothing, reset),
        cmocka_unit_test_setup(test_active_user_limit_across_processes, reset),
        cmocka_unit_test_setup(test_ids_in_commit_order_for_cursors, reset),
        cmocka_unit_test_setup(test_lost_connection_is_unavailable_then_reconnects, reset),
    };
    return cmocka_run_group_tests_name("store_pg", tests, NULL, NULL);
}
