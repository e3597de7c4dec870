/*
 * test_http_pool.c - a worker's request threads (src/http/pool.c) and the
 * per-user request limits shared by the workers (src/http/ratelimit.c):
 * keys take turns and one key never holds every thread, each thread has its
 * own store handle, stop runs what is queued; GCRA's bursts, refusals and
 * retry times, independent users, and one budget across forked processes.
 * Order is checked, never wall-clock speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http/pool.h"
#include "http/ratelimit.h"
#include "testlib.h"
#include "util/util.h"

/* ---- the pool ---- */

typedef struct log {
    pthread_mutex_t mu;
    char order[256]; /* job names in the order they started */
    store *stores[64];
    int n_stores;
} log_t;

typedef struct job {
    log_t *log;
    char name;
    int ms; /* how long it runs */
} job;

static void job_run(void *arg, store *st) {
    job *j = arg;
    pthread_mutex_lock(&j->log->mu);
    size_t n = strlen(j->log->order);
    j->log->order[n] = j->name;
    bool seen = false;
    for (int i = 0; i < j->log->n_stores; i++) seen |= j->log->stores[i] == st;
    if (!seen) j->log->stores[j->log->n_stores++] = st;
    pthread_mutex_unlock(&j->log->mu);
    usleep((useconds_t)j->ms * 1000);
}

/* One tenant's ten slow requests queued before another tenant's one: with
 * two threads and at most one per key, the second tenant's request starts
 * second, not eleventh (issue 12, defect 13). */
static void test_keys_take_turns(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    log_t lg = {.mu = PTHREAD_MUTEX_INITIALIZER};
    http_pool *p = http_pool_start(NULL, 2, 1, err, sizeof(err));
    assert_non_null(p);
    job a[10], b = {&lg, 'b', 1};
    for (int i = 0; i < 10; i++) {
        a[i] = (job){&lg, 'a', 30};
        http_pool_submit(p, 1, job_run, &a[i]);
    }
    http_pool_submit(p, 2, job_run, &b);
    http_pool_stop(p); /* runs everything queued */
    assert_int_equal(strlen(lg.order), 11);
    assert_true(strchr(lg.order, 'b') - lg.order <= 1);
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate;

static void gate_run(void *arg, store *st) {
    (void)st;
    gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Three keys with four jobs each, queued while the only thread is busy:
 * they run x y z x y z ..., whatever order they were queued in. */
static void test_round_robin_over_three_keys(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    log_t lg = {.mu = PTHREAD_MUTEX_INITIALIZER};
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    http_pool *p = http_pool_start(NULL, 1, 1, err, sizeof(err));
    http_pool_submit(p, 99, gate_run, &g);
    job jobs[12];
    for (int i = 0; i < 12; i++) { /* all of x, then all of y, then all of z */
        jobs[i] = (job){&lg, (char)('x' + i / 4), 0};
        http_pool_submit(p, (uint64_t)(i / 4) + 10, job_run, &jobs[i]);
    }
    assert_int_equal(http_pool_pending(p), 13);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    http_pool_stop(p);
    assert_string_equal(lg.order, "xyzxyzxyzxyz");
}

typedef struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, running[3], most[3]; /* per key: running now, most at once */
} tally;

typedef struct counted {
    tally *t;
    int key;
} counted;

static void counted_run(void *arg, store *st) {
    (void)st;
    counted *c = arg;
    tally *t = c->t;
    pthread_mutex_lock(&t->mu);
    if (++t->running[c->key] > t->most[c->key]) t->most[c->key] = t->running[c->key];
    pthread_mutex_unlock(&t->mu);
    usleep(200);
    pthread_mutex_lock(&t->mu);
    t->running[c->key]--;
    t->done++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Waits until n jobs are done; false after a minute (a lost wake-up: jobs
 * left waiting while threads sleep; never a speed check). */
static bool tally_wait(tally *t, int n) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    while (t->done < n && rc == 0) rc = pthread_cond_timedwait(&t->cv, &t->mu, &until);
    bool ok = t->done >= n;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

/* Without http_pool_stop to flush them, every queued job still runs: those
 * of a key at its cap start when one of its jobs ends (no other thread is
 * woken for them), bursts from several submitters wake enough threads, and
 * a key never runs more than max_per_key at once. */
static void test_queued_jobs_run_without_stop(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    tally t = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    http_pool *p = http_pool_start(NULL, 4, 2, err, sizeof(err));
    assert_non_null(p);
    enum { ROUNDS = 50, PER_ROUND = 9 };
    static counted jobs[ROUNDS * PER_ROUND];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER_ROUND; i++) {
            counted *c = &jobs[r * PER_ROUND + i];
            *c = (counted){&t, i % 3};
            http_pool_submit(p, (uint64_t)c->key, counted_run, c);
        }
        assert_true(tally_wait(&t, (r + 1) * PER_ROUND));
    }
    for (int k = 0; k < 3; k++) assert_true(t.most[k] <= 2);
    http_pool_stop(p);
}

/* Each thread opens its own store handle: handlers never share one. */
static void test_each_thread_has_its_own_store(void **state) {
    (void)state;
    char dir[] = "/tmp/tessera-pool-XXXXXX", db[64], err[TS_ERRLEN];
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/t.db", dir);
    store *st = NULL;
    assert_int_equal(store_open(db, &st, err, sizeof(err)), TS_OK); /* creates it */
    store_close(st);
    log_t lg = {.mu = PTHREAD_MUTEX_INITIALIZER};
    http_pool *p = http_pool_start(db, 4, 4, err, sizeof(err));
    assert_non_null(p);
    job jobs[40];
    for (int i = 0; i < 40; i++) {
        jobs[i] = (job){&lg, 's', 2};
        http_pool_submit(p, (uint64_t)i, job_run, &jobs[i]);
    }
    http_pool_stop(p);
    assert_true(lg.n_stores >= 1 && lg.n_stores <= 4);
    for (int i = 0; i < lg.n_stores; i++) assert_non_null(lg.stores[i]);
    /* A store that cannot be opened: no pool, and a reason. */
    assert_null(http_pool_start("/nonexistent/dir/t.db", 2, 0, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    test_rm_rf(dir);
}

/* ---- rate limits ---- */

static void test_gcra_burst_then_rate(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    ratelimit *rl = ratelimit_create_shared(10, 3, err, sizeof(err));
    assert_non_null(rl);
    double wait = 0, t = 1000.0;
    for (int i = 0; i < 3; i++) assert_true(ratelimit_take(rl, "alice", t, &wait));
    assert_false(ratelimit_take(rl, "alice", t, &wait));
    assert_true(wait > 0.09 && wait < 0.11);
    /* a refusal costs nothing: the same wait again */
    assert_false(ratelimit_take(rl, "alice", t, &wait));
    assert_true(wait > 0.09 && wait < 0.11);
    /* another user is untouched */
    assert_true(ratelimit_take(rl, "bob", t, &wait));
    /* after 1/rate one more */
    assert_true(ratelimit_take(rl, "alice", t + 0.1, &wait));
    assert_false(ratelimit_take(rl, "alice", t + 0.1, &wait));
    /* after a long pause the full burst again, not more */
    for (int i = 0; i < 3; i++) assert_true(ratelimit_take(rl, "alice", t + 100, &wait));
    assert_false(ratelimit_take(rl, "alice", t + 100, &wait));
    assert_int_equal((int)ratelimit_rate(rl), 10);
    assert_int_equal((int)ratelimit_burst(rl), 3);
    ratelimit_destroy(rl);
    /* burst 0 means twice the rate; rate 0 is refused */
    rl = ratelimit_create_shared(2, 0, err, sizeof(err));
    assert_int_equal((int)ratelimit_burst(rl), 4);
    ratelimit_destroy(rl);
    assert_null(ratelimit_create_shared(0, 5, err, sizeof(err)));
}

/* The workers are processes: what one spends, the others see. */
static void test_one_budget_across_processes(void **state) {
    (void)state;
    char err[TS_ERRLEN];
    ratelimit *rl = ratelimit_create_shared(1, 5, err, sizeof(err));
    double wait, t = 50.0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = 0;
        for (int i = 0; i < 5; i++) ok += ratelimit_take(rl, "carol", t, &wait);
        _exit(ok == 5 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(ratelimit_take(rl, "carol", t, &wait));
    assert_true(wait > 0.9 && wait < 1.1);
    ratelimit_destroy(rl);
}

/* More users than slots: every one is answered (the overflow is let
 * through rather than refused), and the table's idle slots are reused. */
static void test_a_crowded_table_fails_open(void **state) {
    (void)state;
    char err[TS_ERRLEN], name[32];
    ratelimit *rl = ratelimit_create_shared(1, 1, err, sizeof(err));
    double wait;
    int allowed = 0;
    for (int i = 0; i < 3 * RATELIMIT_SLOTS; i++) {
        snprintf(name, sizeof(name), "user-%d", i);
        allowed += ratelimit_take(rl, name, 10.0, &wait);
    }
    assert_int_equal(allowed, 3 * RATELIMIT_SLOTS);
    /* later, idle slots are taken over: a new user is limited again */
    assert_true(ratelimit_take(rl, "late", 20.0, &wait));
    assert_false(ratelimit_take(rl, "late", 20.0, &wait));
    ratelimit_destroy(rl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_take_turns),
        cmocka_unit_test(test_round_robin_over_three_keys),
        cmocka_unit_test(test_queued_jobs_run_without_stop),
        cmocka_unit_test(test_each_thread_has_its_own_store),
        cmocka_unit_test(test_gcra_burst_then_rate),
        cmocka_unit_test(test_one_budget_across_processes),
        cmocka_unit_test(test_a_crowded_table_fails_open),
    };
    return cmocka_run_group_tests_name("http_pool", tests, NULL, NULL);
}
