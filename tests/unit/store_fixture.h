/*
 * store_fixture.h - the fixture of the store's conformance suite
 * (test_store.c, test_store_changes.c, test_store_events.c): the backend
 * under test (pg_url: NULL for SQLite files, else the PostgreSQL URL that
 * main takes from TESSERA_TEST_PG_URL for its second run), a fresh database
 * per test, and the helpers the tests write and read the store with:
 * submitting, engine changes, claims and admissions, reading workflows,
 * events and lists back. Header-only (static inline), like testlib.h, so
 * each test stays one binary and a helper one file does not use is no
 * warning.
 */
#ifndef TESSERA_TESTS_STORE_FIXTURE_H
#define TESSERA_TESTS_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/spec.h"
#include "store/store.h"
#include "util/util.h"

#define T0 1700000000.0

/* ---- fixtures --------------------------------------------------------------- */

/* The backend under test: NULL = SQLite files, else a PostgreSQL URL. */
static const char *pg_url;

typedef struct fx {
    char dir[64];
    char path[512]; /* the store's target: a file path or the PostgreSQL URL */
    store *st;
} fx;

/* An empty PostgreSQL database for the next test: the public schema is
 * dropped with everything in it and created again. */
static inline int pg_reset(const char *url) {
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SET client_min_messages = warning;"
                                " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0) fprintf(stderr, "resetting %s: %s\n", url, PQerrorMessage(c));
        PQclear(r);
    } else {
        fprintf(stderr, "connecting to %s: %s\n", url, PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}

static inline int make_dir(void **state) {
    fx *f = calloc(1, sizeof(*f));
    if (f == NULL) return -1;
    strcpy(f->dir, "/tmp/tessera-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    if (pg_url) {
        ts_strlcpy(f->path, pg_url, sizeof(f->path));
        if (pg_reset(pg_url) != 0) return -1;
    } else {
        snprintf(f->path, sizeof(f->path), "%s/tessera.db", f->dir);
    }
    *state = f;
    return 0;
}

/* A fresh database file, open. */
static inline int setup_open(void **state) {
    char err[TS_ERRLEN];
    if (make_dir(state) != 0) return -1;
    fx *f = *state;
    if (store_open(f->path, &f->st, err, sizeof(err)) != TS_OK) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    return 0;
}

/* A fresh directory only: for tests that fork before opening. */
static inline int setup_closed(void **state) {
    return make_dir(state);
}

static inline int teardown(void **state) {
    fx *f = *state;
    char p[600];
    store_close(f->st);
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static inline spec_workflow *parse(const char *json) {
    spec_workflow *wf = NULL;
    spec_error e;
    if (spec_parse(json, strlen(json), NULL, NULL, NULL, &wf, &e) != 0)
        fprintf(stderr, "spec_parse: %s\n", e.message);
    return wf;
}

static const char TWO_JOBS[] =
    "{\"name\": \"Cell Segmentation Workflow\", \"priority\": 5, \"jobs\": ["
    "{\"job_id\": \"job-1\", \"job_type\": \"cell_segmentation\", \"branch\": \"branch-1\","
    " \"cpus\": 2},"
    "{\"job_id\": \"job-2\", \"job_type\": \"tissue_mask\", \"branch\": \"branch-1\","
    " \"depends_on\": [\"job-1\"], \"max_retries\": 2}]}";

/* A workflow of n independent 1-cpu jobs j0..j(n-1), one branch each. */
static inline char *parallel_spec(int n) {
    size_t cap = 64 + (size_t)n * 80, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{\"name\": \"par\", \"jobs\": [");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"job_id\": \"j%d\", \"job_type\": \"noop\", \"branch\": \"b%d\"}",
                                i ? "," : "", i, i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static inline int64_t submit_json(store *st, const char *user, const char *json, double now) {
    char err[TS_ERRLEN];
    int64_t id = 0;
    spec_workflow *spec = parse(json);
    assert_non_null(spec);
    int rc = store_submit(st, user, spec, now, &id, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_submit: %s\n", err);
    assert_int_equal(rc, TS_OK);
    spec_free(spec);
    return id;
}

static inline int64_t submit_parallel(store *st, const char *user, int n, double now) {
    char *json = parallel_spec(n);
    int64_t id = submit_json(st, user, json, now);
    free(json);
    return id;
}

static inline core_change job_change(int64_t wf, int32_t idx, const char *job_id, job_state from,
                                     job_state to, double at) {
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_JOB;
    ch.workflow_id = wf;
    ch.job_index = idx;
    ch.job_id = job_id;
    ch.from = from;
    ch.to = to;
    ch.cpus = 1;
    ch.at = at;
    ch.exit_code = -1;
    return ch;
}

static inline core_change wf_change(int64_t wf, wf_state from, wf_state to, double at) {
    core_change ch;
    memset(&ch, 0, sizeof(ch));
    ch.kind = CHANGE_WORKFLOW;
    ch.workflow_id = wf;
    ch.job_index = -1;
    ch.from = from;
    ch.to = to;
    ch.at = at;
    ch.exit_code = -1;
    return ch;
}

static inline void apply_ok(store *st, const core_change *ch) {
    char err[TS_ERRLEN];
    int rc = store_apply(st, ch, NULL, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_apply: %s\n", err);
    assert_int_equal(rc, TS_OK);
}

static inline void admit_ok(store *st, int64_t wf, double at) {
    char err[TS_ERRLEN];
    core_change ch = wf_change(wf, WF_QUEUED, WF_RUNNING, at);
    int rc = store_admit(st, &ch, 100, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_admit: %s\n", err);
    assert_int_equal(rc, TS_OK);
}

static inline int claim(store *st, int64_t wf, int32_t idx, const char *job_id, int attempt,
                        const char *owner, int limit, double at) {
    char err[TS_ERRLEN];
    core_change ch = job_change(wf, idx, job_id, JOB_READY, JOB_RUNNING, at);
    ch.attempt = attempt;
    return store_claim(st, &ch, owner, at + 30, limit, err, sizeof(err));
}

/* alice's TWO_JOBS submitted at T0, admitted at T0+1, its first job
 * made ready at T0+2 and claimed as attempt 1 by sched-a at T0+3. */
static inline int64_t submit_and_claim_first(store *st) {
    int64_t id = submit_json(st, "alice", TWO_JOBS, T0);
    admit_ok(st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(st, &ch);
    assert_int_equal(claim(st, id, 0, "job-1", 1, "sched-a", 8, T0 + 3), TS_OK);
    return id;
}

static inline store_workflow *get(store *st, int64_t id, const char *user) {
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int rc = store_workflow_get(st, id, user, &wf, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_workflow_get: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return wf;
}

/* Events collected by store_events_since, each parsed back from its JSON. */
typedef struct evlist {
    size_t n;
    int64_t seq[512];
    char type[512][32];
    char user[512][32];
    json_t *json[512];
} evlist;

static inline int collect_event(void *ctx, const store_event *ev) {
    evlist *l = ctx;
    if (l->n == 512) return 1;
    l->seq[l->n] = ev->seq;
    ts_strlcpy(l->type[l->n], ev->type, sizeof(l->type[0]));
    ts_strlcpy(l->user[l->n], ev->user, sizeof(l->user[0]));
    l->json[l->n] = json_loads(ev->json, 0, NULL);
    l->n++;
    return 0;
}

static inline evlist *events(store *st, int64_t since, const char *user, int64_t wf, size_t limit) {
    char err[TS_ERRLEN];
    evlist *l = calloc(1, sizeof(*l));
    int rc = store_events_since(st, since, user, wf, limit, collect_event, l, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_events_since: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return l;
}

static inline void evlist_free(evlist *l) {
    for (size_t i = 0; i < l->n; i++) json_decref(l->json[i]);
    free(l);
}

/* Workflow ids in the order store_workflow_list gives them. */
typedef struct idlist {
    size_t n;
    int64_t id[64];
    int queue_position[64];
} idlist;

static inline int collect_id(void *ctx, const store_workflow *wf) {
    idlist *l = ctx;
    if (l->n == 64) return 1;
    assert_null(wf->spec);
    assert_null(wf->jobs);
    l->queue_position[l->n] = wf->queue_position;
    l->id[l->n++] = wf->id;
    return 0;
}

static inline idlist list(store *st, const char *user, int state, int64_t before, size_t limit) {
    char err[TS_ERRLEN];
    idlist l = {0};
    assert_int_equal(store_workflow_list(st, user, state, before, limit, collect_id, &l, err,
                                         sizeof(err)),
                     TS_OK);
    return l;
}

/* n ready jobs j0..j(n-1) of workflow id (pending -> ready at `at`), in one
 * transaction. */
static inline void make_ready(store *st, int64_t id, int n, double at) {
    char err[TS_ERRLEN];
    char job_id[16];
    assert_int_equal(store_begin(st, err, sizeof(err)), TS_OK);
    for (int i = 0; i < n; i++) {
        snprintf(job_id, sizeof(job_id), "j%d", i);
        core_change ch = job_change(id, i, job_id, JOB_PENDING, JOB_READY, at);
        apply_ok(st, &ch);
    }
    assert_int_equal(store_commit(st, err, sizeof(err)), TS_OK);
}

#endif
