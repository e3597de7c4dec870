/*
 * test_store.c - the store's conformance suite (src/store/store.h), run
 * against every backend: SQLite on a fresh database file per test, and
 * PostgreSQL on a fresh schema per test when TESSERA_TEST_PG_URL names a
 * server (tests/run-tests.sh starts one with tests/lib/pgserver.sh).
 * Schema, submit and reads, isolation between users, recording the
 * engine's changes (guards, timestamps, attempts), claims and admissions
 * under their limits, leases, leadership and its terms, commands, events,
 * and the properties other processes rely on: an acknowledged write
 * survives kill -9, and concurrent claims from several processes never
 * exceed the concurrency limit. The PostgreSQL-only properties (fencing,
 * events in commit order under concurrent writers) are in test_store_pg.c.
 */
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
static int pg_reset(const char *url) {
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

static int make_dir(void **state) {
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
static int setup_open(void **state) {
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
static int setup_closed(void **state) {
    return make_dir(state);
}

static int teardown(void **state) {
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

static spec_workflow *parse(const char *json) {
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
static char *parallel_spec(int n) {
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

static int64_t submit_json(store *st, const char *user, const char *json, double now) {
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

static int64_t submit_parallel(store *st, const char *user, int n, double now) {
    char *json = parallel_spec(n);
    int64_t id = submit_json(st, user, json, now);
    free(json);
    return id;
}

static core_change job_change(int64_t wf, int32_t idx, const char *job_id, job_state from,
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

static core_change wf_change(int64_t wf, wf_state from, wf_state to, double at) {
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

static void apply_ok(store *st, const core_change *ch) {
    char err[TS_ERRLEN];
    int rc = store_apply(st, ch, NULL, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_apply: %s\n", err);
    assert_int_equal(rc, TS_OK);
}

static void admit_ok(store *st, int64_t wf, double at) {
    char err[TS_ERRLEN];
    core_change ch = wf_change(wf, WF_QUEUED, WF_RUNNING, at);
    int rc = store_admit(st, &ch, 100, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_admit: %s\n", err);
    assert_int_equal(rc, TS_OK);
}

static int claim(store *st, int64_t wf, int32_t idx, const char *job_id, int attempt,
                 const char *owner, int limit, double at) {
    char err[TS_ERRLEN];
    core_change ch = job_change(wf, idx, job_id, JOB_READY, JOB_RUNNING, at);
    ch.attempt = attempt;
    return store_claim(st, &ch, owner, at + 30, limit, err, sizeof(err));
}

/* alice's TWO_JOBS submitted at T0, admitted at T0+1, its first job
 * made ready at T0+2 and claimed as attempt 1 by sched-a at T0+3. */
static int64_t submit_and_claim_first(store *st) {
    int64_t id = submit_json(st, "alice", TWO_JOBS, T0);
    admit_ok(st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(st, &ch);
    assert_int_equal(claim(st, id, 0, "job-1", 1, "sched-a", 8, T0 + 3), TS_OK);
    return id;
}

static store_workflow *get(store *st, int64_t id, const char *user) {
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

static int collect_event(void *ctx, const store_event *ev) {
    evlist *l = ctx;
    if (l->n == 512) return 1;
    l->seq[l->n] = ev->seq;
    ts_strlcpy(l->type[l->n], ev->type, sizeof(l->type[0]));
    ts_strlcpy(l->user[l->n], ev->user, sizeof(l->user[0]));
    l->json[l->n] = json_loads(ev->json, 0, NULL);
    l->n++;
    return 0;
}

static evlist *events(store *st, int64_t since, const char *user, int64_t wf, size_t limit) {
    char err[TS_ERRLEN];
    evlist *l = calloc(1, sizeof(*l));
    int rc = store_events_since(st, since, user, wf, limit, collect_event, l, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_events_since: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return l;
}

static void evlist_free(evlist *l) {
    for (size_t i = 0; i < l->n; i++) json_decref(l->json[i]);
    free(l);
}

/* Workflow ids in the order store_workflow_list gives them. */
typedef struct idlist {
    size_t n;
    int64_t id[64];
    int queue_position[64];
} idlist;

static int collect_id(void *ctx, const store_workflow *wf) {
    idlist *l = ctx;
    if (l->n == 64) return 1;
    assert_null(wf->spec);
    assert_null(wf->jobs);
    l->queue_position[l->n] = wf->queue_position;
    l->id[l->n++] = wf->id;
    return 0;
}

static idlist list(store *st, const char *user, int state, int64_t before, size_t limit) {
    char err[TS_ERRLEN];
    idlist l = {0};
    assert_int_equal(store_workflow_list(st, user, state, before, limit, collect_id, &l, err,
                                         sizeof(err)),
                     TS_OK);
    return l;
}

/* ---- schema and opening ---------------------------------------------------------- */

static void test_migrations_idempotent(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int v1 = store_schema_version(f->st);
    assert_true(v1 >= 1);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_schema_version(f->st), v1);
    /* a second handle on the same file at once is fine too */
    store *other = NULL;
    assert_int_equal(store_open(f->path, &other, err, sizeof(err)), TS_OK);
    assert_int_equal(store_schema_version(other), v1);
    store_close(other);
}

static void test_open_errors_are_clear(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN], path[200];
    store *st = NULL;
    /* a server that is not there: unavailable (worth retrying), said so */
    assert_int_equal(store_open("postgresql://tessera@127.0.0.1:1/tessera?connect_timeout=2", &st,
                                err, sizeof(err)),
                     STORE_UNAVAILABLE);
    assert_null(st);
    assert_non_null(strstr(err, "PostgreSQL unavailable"));
    assert_int_equal(store_open("mysql://db.example/tessera", &st, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "unsupported database URL"));
    snprintf(path, sizeof(path), "%s/no-such-dir/tessera.db", f->dir);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), TS_ERR);
    assert_null(st);
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(store_open("", &st, err, sizeof(err)), TS_ERR);
    /* a file that is not a database */
    snprintf(path, sizeof(path), "%s/junk.db", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not an SQLite database, not even close; padding padding padding padding "
          "padding padding padding padding padding padding\n",
          fp);
    fclose(fp);
    assert_int_equal(store_open(path, &st, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "not a database"));
    unlink(path);
}

/* ---- submit and reads ------------------------------------------------------------ */

static void test_submit_get_round_trip(void **state) {
    fx *f = *state;
    int64_t id = submit_json(f->st, "user-123", TWO_JOBS, T0);
    assert_true(id > 0);
    store_workflow *wf = get(f->st, id, "user-123");
    assert_int_equal(wf->id, id);
    assert_string_equal(wf->user, "user-123");
    assert_string_equal(wf->name, "Cell Segmentation Workflow");
    assert_int_equal(wf->priority, 5);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_false(wf->cancel_requested);
    assert_true(wf->submitted_at == T0);
    assert_true(wf->admitted_at == 0 && wf->finished_at == 0);
    assert_string_equal(wf->reason, "");
    assert_int_equal(wf->queue_position, 1);
    /* the spec reloads with every field */
    assert_non_null(wf->spec);
    assert_int_equal(wf->spec->n_jobs, 2);
    assert_string_equal(wf->spec->jobs[1].job_id, "job-2");
    assert_string_equal(wf->spec->jobs[1].job_type, "tissue_mask");
    assert_string_equal(wf->spec->jobs[0].branch, "branch-1");
    assert_int_equal(wf->spec->jobs[0].cpus, 2);
    assert_int_equal(wf->spec->jobs[1].max_retries, 2);
    assert_int_equal(wf->spec->jobs[1].n_depends_on, 1);
    assert_int_equal(wf->spec->dag.branch_prev[1], 0);
    /* the jobs, pending */
    assert_int_equal(wf->n_jobs, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(wf->jobs[i].index, (int)i);
        assert_int_equal(wf->jobs[i].state, JOB_PENDING);
        assert_int_equal(wf->jobs[i].attempt, 0);
        assert_int_equal(wf->jobs[i].exit_code, -1);
        assert_string_equal(wf->jobs[i].lease_owner, "");
    }
    assert_string_equal(wf->jobs[0].job_id, "job-1");
    assert_int_equal(wf->jobs[0].cpus, 2);
    store_workflow_free(wf);

    evlist *ev = events(f->st, 0, "user-123", 0, 0);
    assert_int_equal(ev->n, 2);
    assert_string_equal(ev->type[0], "workflow.submitted");
    assert_string_equal(ev->type[1], "workflow.queued");
    assert_true(ev->seq[0] > 0 && ev->seq[1] > ev->seq[0]);
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(ev->json[i]);
        assert_int_equal(json_integer_value(json_object_get(ev->json[i], "seq")), ev->seq[i]);
        assert_int_equal(json_integer_value(json_object_get(ev->json[i], "workflow_id")), id);
        char t0[40];
        ts_iso8601(T0, t0, sizeof(t0));
        assert_string_equal(json_string_value(json_object_get(ev->json[i], "ts")), t0);
        assert_string_equal(json_string_value(json_object_get(ev->json[i], "state")), "queued");
        assert_null(json_object_get(ev->json[i], "job_id"));
    }
    assert_int_equal(json_integer_value(json_object_get(ev->json[1], "queue_position")), 1);
    evlist_free(ev);
}

/* The receipt says what was stored, and store_workflow_submitted builds
 * from it exactly what a read gives right after the commit (the POST's
 * answer is made from it without reading back). */
static void test_submit_receipt_matches_stored(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_receipt r[3];
    spec_workflow *spec = parse(TWO_JOBS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_submit_receipt(f->st, i == 2 ? "bob" : "alice", spec, T0 + i,
                                              &r[i], err, sizeof(err)),
                         TS_OK);
        assert_true(r[i].wake); /* alone: every submission is its own commit */
        assert_int_equal(r[i].queue_position, i + 1);
        assert_int_equal(r[i].active_users, 0);
        if (i > 0) assert_true(r[i].id > r[i - 1].id);
    }
    store_workflow *built = store_workflow_submitted("bob", spec, T0 + 2, &r[2]);
    store_workflow *read = get(f->st, r[2].id, "bob");
    assert_int_equal(built->id, read->id);
    assert_string_equal(built->user, read->user);
    assert_string_equal(built->name, read->name);
    assert_int_equal(built->priority, read->priority);
    assert_int_equal(built->state, read->state);
    assert_int_equal(built->cancel_requested, read->cancel_requested);
    assert_true(built->submitted_at == read->submitted_at);
    assert_true(built->admitted_at == read->admitted_at && built->finished_at == read->finished_at);
    assert_string_equal(built->reason, read->reason);
    assert_int_equal(built->queue_position, read->queue_position);
    assert_true(built->jobs_done == read->jobs_done);
    assert_int_equal(built->n_jobs, read->n_jobs);
    for (size_t i = 0; i < read->n_jobs; i++) {
        const store_job *a = &built->jobs[i], *b = &read->jobs[i];
        assert_int_equal(a->index, b->index);
        assert_string_equal(a->job_id, b->job_id);
        assert_int_equal(a->state, b->state);
        assert_int_equal(a->attempt, b->attempt);
        assert_int_equal(a->failures, b->failures);
        assert_int_equal(a->cpus, b->cpus);
        assert_int_equal(a->exit_code, b->exit_code);
        assert_string_equal(a->reason, b->reason);
        assert_string_equal(a->lease_owner, b->lease_owner);
        assert_true(a->not_before == b->not_before && a->progress == b->progress);
        assert_true(a->ready_at == b->ready_at && a->started_at == b->started_at &&
                    a->finished_at == b->finished_at && a->lease_expires == b->lease_expires);
    }
    json_t *sa = spec_to_json(built->spec), *sb = spec_to_json(read->spec);
    assert_true(json_equal(sa, sb));
    json_decref(sa);
    json_decref(sb);
    store_workflow_free(built);
    store_workflow_free(read);
    /* alice becomes active: the next receipt counts her */
    admit_ok(f->st, r[0].id, T0 + 5);
    store_receipt later;
    assert_int_equal(store_submit_receipt(f->st, "carol", spec, T0 + 6, &later, err,
                                          sizeof(err)),
                     TS_OK);
    assert_int_equal(later.active_users, 1);
    assert_int_equal(later.queue_position, 3);

    spec_free(spec);
}

static void test_submit_refused_inside_transaction(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = 0;
    spec_workflow *spec = parse(TWO_JOBS);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_ERR); /* not nestable */
    assert_int_equal(store_submit(f->st, "alice", spec, T0, &id, err, sizeof(err)), TS_ERR);
    store_rollback(f->st);
    assert_int_equal(store_submit(f->st, "", spec, T0, &id, err, sizeof(err)), TS_ERR);
    spec_free(spec);
}

static void test_other_users_workflow_is_notfound(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_workflow_get(f->st, id, "bob", &wf, err, sizeof(err)), STORE_NOTFOUND);
    assert_null(wf);
    assert_int_equal(store_workflow_get(f->st, id + 100, "alice", &wf, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_workflow_delete(f->st, id, "bob", err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "bob", T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND);
    /* bob's cancel attempt changed nothing */
    wf = get(f->st, id, NULL); /* NULL = any user (scheduler, admin) */
    assert_false(wf->cancel_requested);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, "bob", 0, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
    ev = events(f->st, 0, "bob", id, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
}

static void test_list_order_filters_and_cursor(void **state) {
    fx *f = *state;
    int64_t a[5];
    for (int i = 0; i < 5; i++) {
        a[i] = submit_json(f->st, "alice", TWO_JOBS, T0 + i);
        if (i == 1) submit_json(f->st, "bob", TWO_JOBS, T0 + i);
    }
    idlist l = list(f->st, "alice", -1, 0, 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(l.id[i], a[4 - i]); /* newest first */
    /* pages of 2 with the cursor */
    l = list(f->st, "alice", -1, 0, 2);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.id[1], a[3]);
    l = list(f->st, "alice", -1, l.id[1], 2);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.id[0], a[2]);
    assert_int_equal(l.id[1], a[1]);
    l = list(f->st, "alice", -1, l.id[1], 2);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.id[0], a[0]);
    /* all users */
    assert_int_equal(list(f->st, NULL, -1, 0, 0).n, 6);
    assert_int_equal(list(f->st, "bob", -1, 0, 0).n, 1);
    /* by state */
    core_change ch = wf_change(a[2], WF_QUEUED, WF_CANCELLED, T0 + 10);
    apply_ok(f->st, &ch);
    l = list(f->st, "alice", WF_CANCELLED, 0, 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.id[0], a[2]);
    assert_int_equal(l.queue_position[0], 0);
    assert_int_equal(list(f->st, "alice", WF_QUEUED, 0, 0).n, 4);
    assert_int_equal(list(f->st, "bob", WF_CANCELLED, 0, 0).n, 0);
}

static int count_loaded(void *ctx, const store_workflow *wf) {
    int *n = ctx;
    assert_non_null(wf->spec);
    assert_non_null(wf->jobs);
    assert_int_equal(wf->n_jobs, wf->spec->n_jobs);
    (*n)++;
    return 0;
}

static void test_load_unfinished_skips_final(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t a = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b = submit_json(f->st, "bob", TWO_JOBS, T0);
    submit_json(f->st, "carol", TWO_JOBS, T0);
    core_change ch = wf_change(b, WF_QUEUED, WF_CANCELLED, T0 + 1);
    apply_ok(f->st, &ch);
    admit_ok(f->st, a, T0 + 1);
    int n = 0;
    assert_int_equal(store_load_unfinished(f->st, 0, count_loaded, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(store_load_unfinished(f->st, a, count_loaded, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
}

/* ---- recording changes ------------------------------------------------------------- */

static void test_apply_job_transitions_and_attempts(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_and_claim_first(f->st);

    store_workflow *wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_RUNNING);
    assert_true(wf->admitted_at == T0 + 1);
    assert_int_equal(wf->jobs[0].state, JOB_RUNNING);
    assert_true(wf->jobs[0].ready_at == T0 + 2);
    assert_true(wf->jobs[0].started_at == T0 + 3);
    assert_int_equal(wf->jobs[0].attempt, 1);
    assert_string_equal(wf->jobs[0].lease_owner, "sched-a");
    assert_true(wf->jobs[0].lease_expires == T0 + 33);
    store_workflow_free(wf);

    /* the attempt fails with retries left: back to ready, attempt closed */
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_READY, T0 + 4);
    ch.attempt = 1;
    ch.failures = 1;
    ch.not_before = T0 + 14;
    ch.exit_code = 3;
    ch.outcome = "failed";
    snprintf(ch.reason, sizeof(ch.reason), "attempt 1 failed (exit 3); retry 1 of 2 in 10 s");
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 2, "sched-a", 8, T0 + 15), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_SUCCEEDED, T0 + 20);
    ch.attempt = 2;
    ch.failures = 1;
    ch.exit_code = 0;
    ch.progress = 1;
    ch.outcome = "succeeded";
    apply_ok(f->st, &ch);

    wf = get(f->st, id, "alice");
    store_job *j = &wf->jobs[0];
    assert_int_equal(j->state, JOB_SUCCEEDED);
    assert_int_equal(j->attempt, 2);
    assert_int_equal(j->failures, 1);
    assert_int_equal(j->exit_code, 0);
    assert_true(j->progress == 1);
    assert_true(j->started_at == T0 + 15);
    assert_true(j->finished_at == T0 + 20);
    assert_string_equal(j->lease_owner, ""); /* leaving running clears the lease */
    assert_true(j->lease_expires == 0);
    store_workflow_free(wf);

    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(at[0].attempt, 1);
    assert_string_equal(at[0].outcome, "failed");
    assert_int_equal(at[0].exit_code, 3);
    assert_true(at[0].started_at == T0 + 3 && at[0].finished_at == T0 + 4);
    assert_non_null(strstr(at[0].reason, "retry 1 of 2"));
    assert_int_equal(at[1].attempt, 2);
    assert_string_equal(at[1].outcome, "succeeded");
    assert_true(at[1].finished_at == T0 + 20);
    free(at);
    assert_int_equal(store_attempts(f->st, id, 1, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_attempts(f->st, id, 7, &at, &n, err, sizeof(err)), STORE_NOTFOUND);

    /* a decision taken on an outdated view is refused and changes nothing */
    ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_string_equal(err, "stale change: job job-1 of workflow 1 is succeeded, not pending");
    ch = wf_change(id, WF_QUEUED, WF_CANCELLED, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "stale change: workflow 1 is running, not queued"));
    /* starting a job or admitting a workflow must go through claim/admit */
    ch = job_change(id, 1, "job-2", JOB_READY, JOB_RUNNING, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    /* an illegal transition never reaches the file */
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_SUCCEEDED, T0 + 21);
    assert_int_equal(store_apply(f->st, &ch, NULL, err, sizeof(err)), TS_ERR);
    assert_non_null(strstr(err, "illegal"));
}

/* A batch executor's intent (token, no id) and then its id are kept on the
 * running attempt only; a finished attempt or another attempt number is
 * not found and nothing changes; bad values are refused before any SQL. */
static void test_attempt_external_id(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_and_claim_first(f->st);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "", err, sizeof(err)),
                     TS_OK);
    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(at[0].token, "ts.x.1.0.1");
    assert_string_equal(at[0].external_id, "");
    free(at);
    /* inside the caller's transaction, as the scheduler records it */
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "4711", err,
                                            sizeof(err)),
                     TS_OK);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_attempt_external(f->st, id, 0, 2, "ts.x.1.0.2", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempt_external(f->st, id, 1, 1, "ts.x.1.1.1", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "has space", "1", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "token"));
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "t", "12 3", err, sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "external_id"));
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_SUCCEEDED, T0 + 4);
    ch.attempt = 1;
    ch.exit_code = 0;
    ch.progress = 1;
    ch.outcome = "succeeded";
    apply_ok(f->st, &ch);
    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "9", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_attempts(f->st, id, -1, &at, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(at[0].external_id, "4711");
    assert_string_equal(at[0].outcome, "succeeded");
    free(at);
}

static store_workflow_stamp stamp_of(store *st, int64_t id, const char *user, unsigned want) {
    char err[TS_ERRLEN];
    store_workflow_stamp s;
    memset(&s, 0, sizeof(s));
    int rc = store_workflow_stamp_get(st, id, user, want, &s, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_workflow_stamp_get: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return s;
}

/* The stamp a cached view is checked against (http/view_cache.h) changes
 * with every write a read of the workflow shows: admission, a job's state,
 * its progress, a batch id on its attempt (which records no event), and
 * the place in line that another workflow's admission moves; another
 * user's workflow is STORE_NOTFOUND, as for store_workflow_get. */
static void test_workflow_stamp_follows_every_change(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow_stamp s;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t later = submit_parallel(f->st, "bob", 2, T0);
    store_workflow_stamp a0 = stamp_of(f->st, id, "alice", 0);
    assert_int_equal(a0.state, WF_QUEUED);
    assert_int_equal(a0.queue_position, 1);
    assert_true(a0.last_seq > 0);
    assert_int_equal(a0.batch_handles, 0);
    assert_int_equal(a0.running_cpus, -1);
    assert_int_equal(a0.active_users, -1);
    assert_int_equal(store_workflow_stamp_get(f->st, later, "alice", 0, &s, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(store_workflow_stamp_get(f->st, 999, NULL, 0, &s, err, sizeof(err)),
                     STORE_NOTFOUND);
    store_workflow_stamp b0 = stamp_of(f->st, later, NULL, 0);
    assert_int_equal(b0.queue_position, 2);

    admit_ok(f->st, id, T0 + 1);
    store_workflow_stamp a1 = stamp_of(f->st, id, "alice",
                                       STORE_STAMP_RUNNING_CPUS | STORE_STAMP_ACTIVE_USERS);
    assert_int_equal(a1.state, WF_RUNNING);
    assert_true(a1.last_seq > a0.last_seq);
    assert_int_equal(a1.running_cpus, 0);
    assert_int_equal(a1.active_users, 1);
    store_workflow_stamp b1 = stamp_of(f->st, later, "bob", 0);
    assert_int_equal(b1.last_seq, b0.last_seq); /* nothing of bob's was written... */
    assert_int_equal(b1.queue_position, 1);     /* ...but it moved up the line */

    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "sched-a", 8, T0 + 3), TS_OK);
    store_workflow_stamp a2 = stamp_of(f->st, id, "alice", STORE_STAMP_RUNNING_CPUS);
    assert_true(a2.last_seq > a1.last_seq);
    assert_int_equal(a2.running_cpus, 2); /* job-1 has 2 cpus */
    assert_int_equal(a2.active_users, -1);

    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.5;
    apply_ok(f->st, &ch);
    store_workflow_stamp a3 = stamp_of(f->st, id, "alice", 0);
    assert_true(a3.last_seq > a2.last_seq);

    assert_int_equal(store_attempt_external(f->st, id, 0, 1, "ts.x.1.0.1", "4711", err,
                                            sizeof(err)),
                     TS_OK);
    store_workflow_stamp a4 = stamp_of(f->st, id, "alice", 0);
    assert_int_equal(a4.last_seq, a3.last_seq);
    assert_int_equal(a4.batch_handles, a3.batch_handles + 1);
    /* a refused one changes nothing */
    assert_int_equal(store_attempt_external(f->st, id, 1, 1, "ts.x.1.1.1", "1", err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_int_equal(stamp_of(f->st, id, "alice", 0).batch_handles, a4.batch_handles);
}

/* The compact read: the row and the counts by state, no job rows. */
static void test_workflow_summary_counts_without_jobs(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    size_t counts[JOB_STATE_COUNT];
    store_workflow *wf = NULL;
    int64_t id = submit_and_claim_first(f->st);
    core_change ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.25;
    apply_ok(f->st, &ch);
    assert_int_equal(store_workflow_summary(f->st, id, "alice", &wf, counts, err, sizeof(err)),
                     TS_OK);
    assert_true(wf->jobs_done > 0.2499 && wf->jobs_done < 0.2501); /* as a list row has it */
    assert_null(wf->jobs);
    assert_null(wf->spec);
    assert_int_equal(wf->n_jobs, 2);
    assert_int_equal(wf->state, WF_RUNNING);
    assert_string_equal(wf->user, "alice");
    assert_int_equal(counts[JOB_RUNNING], 1);
    assert_int_equal(counts[JOB_PENDING], 1);
    assert_int_equal(counts[JOB_SUCCEEDED], 0);
    store_workflow_free(wf);
    wf = NULL;
    assert_int_equal(store_workflow_summary(f->st, id, "bob", &wf, counts, err, sizeof(err)),
                     STORE_NOTFOUND);
    assert_null(wf);
}

static void test_apply_skip_finish_and_manual_retry(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_FAILED, T0 + 4);
    ch.attempt = 1;
    ch.exit_code = 1;
    ch.outcome = "failed";
    apply_ok(f->st, &ch);
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_SKIPPED, T0 + 4);
    snprintf(ch.reason, sizeof(ch.reason), "skipped: job-1 failed");
    apply_ok(f->st, &ch);
    ch = wf_change(id, WF_RUNNING, WF_FAILED, T0 + 4);
    snprintf(ch.reason, sizeof(ch.reason), "1 of 2 jobs failed");
    apply_ok(f->st, &ch);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 5, NULL, err,
                                       sizeof(err)),
                     TS_OK);

    store_workflow *wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_FAILED);
    assert_true(wf->finished_at == T0 + 4);
    assert_string_equal(wf->reason, "1 of 2 jobs failed");
    assert_false(wf->cancel_requested); /* a finished workflow is not marked */
    assert_int_equal(wf->jobs[1].state, JOB_SKIPPED);
    assert_true(wf->jobs[1].finished_at == T0 + 4);
    assert_int_equal(wf->jobs[1].exit_code, -1);
    assert_string_equal(wf->jobs[1].reason, "skipped: job-1 failed");
    assert_int_equal(wf->jobs[0].exit_code, 1);
    store_workflow_free(wf);

    /* a user's retry: the workflow goes back to the line, the job to pending */
    ch = wf_change(id, WF_FAILED, WF_QUEUED, T0 + 6);
    apply_ok(f->st, &ch);
    ch = job_change(id, 0, "job-1", JOB_FAILED, JOB_PENDING, T0 + 6);
    ch.attempt = 1;
    ch.failures = 1;
    apply_ok(f->st, &ch);
    wf = get(f->st, id, "alice");
    assert_int_equal(wf->state, WF_QUEUED);
    assert_true(wf->finished_at == 0);
    assert_true(wf->admitted_at == T0 + 1);
    assert_int_equal(wf->jobs[0].state, JOB_PENDING);
    assert_true(wf->jobs[0].ready_at == 0 && wf->jobs[0].started_at == 0 &&
                wf->jobs[0].finished_at == 0);
    assert_int_equal(wf->jobs[0].exit_code, -1);
    store_workflow_free(wf);
}

static void test_apply_progress_and_queue_position_events(void **state) {
    fx *f = *state;
    int64_t seq1 = 0, seq2 = 0;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_RUNNING, T0 + 4);
    ch.kind = CHANGE_JOB_PROGRESS;
    ch.attempt = 1;
    ch.progress = 0.25;
    ch.event_type = "job.progress";
    assert_int_equal(store_apply(f->st, &ch, &seq1, err, sizeof(err)), TS_OK);
    int64_t other = submit_json(f->st, "bob", TWO_JOBS, T0 + 5);
    ch = wf_change(other, WF_QUEUED, WF_QUEUED, T0 + 6);
    ch.kind = CHANGE_QUEUE_POSITION;
    ch.queue_position = 1;
    ch.event_type = "queue.position";
    snprintf(ch.reason, sizeof(ch.reason), "active user limit reached: 1 of 1 users active");
    assert_int_equal(store_apply(f->st, &ch, &seq2, err, sizeof(err)), TS_OK);
    assert_true(seq2 > seq1 && seq1 > 0);

    store_workflow *wf = get(f->st, id, NULL);
    assert_true(wf->jobs[0].progress == 0.25);
    store_workflow_free(wf);

    evlist *ev = events(f->st, seq1 - 1, NULL, 0, 0);
    assert_true(ev->n >= 4);
    assert_int_equal(ev->seq[0], seq1);
    assert_string_equal(ev->type[0], "job.progress");
    assert_string_equal(json_string_value(json_object_get(ev->json[0], "job_id")), "job-1");
    assert_true(json_real_value(json_object_get(ev->json[0], "progress")) == 0.25);
    assert_int_equal(json_integer_value(json_object_get(ev->json[0], "attempt")), 1);
    assert_string_equal(ev->user[0], "alice");
    size_t last = ev->n - 1;
    assert_int_equal(ev->seq[last], seq2);
    assert_string_equal(ev->type[last], "queue.position");
    assert_string_equal(ev->user[last], "bob"); /* from the workflow row */
    assert_int_equal(json_integer_value(json_object_get(ev->json[last], "queue_position")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(ev->json[last], "message")),
                           "active user limit"));
    evlist_free(ev);
}

static void test_rollback_discards_changes(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    store_rollback(f->st);
    store_workflow *wf = get(f->st, id, NULL);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_int_equal(wf->jobs[0].state, JOB_PENDING);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
}

/* ---- claims and admission ---------------------------------------------------------------- */

static void make_ready(store *st, int64_t id, int n, double at) {
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

static void test_claim_respects_concurrency_limit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 4, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, 3, T0 + 1);
    evlist *before = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "s", 2, T0 + 2), TS_OK);
    assert_int_equal(claim(f->st, id, 1, "j1", 1, "s", 2, T0 + 2), TS_OK);
    assert_int_equal(claim(f->st, id, 2, "j2", 1, "s", 2, T0 + 2), STORE_CONFLICT);
    assert_int_equal(store_commit(f->st, err, sizeof(err)), TS_OK);
    /* not ready (pending), or already running: conflict too */
    assert_int_equal(claim(f->st, id, 3, "j3", 1, "s", 10, T0 + 3), STORE_CONFLICT);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "s", 10, T0 + 3), STORE_CONFLICT);
    /* a 2-cpu claim sees the 2 running cpus */
    core_change ch = job_change(id, 2, "j2", JOB_READY, JOB_RUNNING, T0 + 3);
    ch.cpus = 2;
    ch.attempt = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 40, 3, err, sizeof(err)), STORE_CONFLICT);
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 40, 4, err, sizeof(err)), TS_OK);

    store_workflow *wf = get(f->st, id, NULL);
    assert_int_equal(wf->jobs[2].state, JOB_RUNNING);
    assert_int_equal(wf->jobs[3].state, JOB_PENDING);
    store_workflow_free(wf);
    evlist *after = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(after->n, before->n + 3); /* conflicts wrote no event */
    assert_string_equal(after->type[after->n - 1], "job.started");
    evlist_free(before);
    evlist_free(after);
}

static void test_admit_respects_max_active_users(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t a1 = submit_json(f->st, "a", TWO_JOBS, T0);
    int64_t b1 = submit_json(f->st, "b", TWO_JOBS, T0);
    int64_t c1 = submit_json(f->st, "c", TWO_JOBS, T0);
    int64_t a2 = submit_json(f->st, "a", TWO_JOBS, T0);
    core_change ch = wf_change(a1, WF_QUEUED, WF_RUNNING, T0 + 1);
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = b1;
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = c1;
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), STORE_CONFLICT);
    ch.workflow_id = a2; /* a is active already: no new user */
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
    ch.workflow_id = a1; /* not queued any more */
    assert_int_equal(store_admit(f->st, &ch, 5, err, sizeof(err)), STORE_CONFLICT);
    store_workflow *wf = get(f->st, c1, NULL);
    assert_int_equal(wf->state, WF_QUEUED);
    assert_int_equal(wf->queue_position, 1);
    store_workflow_free(wf);
    /* once b finishes, c gets in */
    ch = wf_change(b1, WF_RUNNING, WF_SUCCEEDED, T0 + 2);
    apply_ok(f->st, &ch);
    ch = wf_change(c1, WF_QUEUED, WF_RUNNING, T0 + 3);
    assert_int_equal(store_admit(f->st, &ch, 2, err, sizeof(err)), TS_OK);
}

static void test_leases_renew(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, 3, T0);
    assert_int_equal(claim(f->st, id, 0, "j0", 1, "sched-a", 10, T0), TS_OK);
    assert_int_equal(claim(f->st, id, 1, "j1", 1, "sched-b", 10, T0), TS_OK);
    assert_int_equal(store_renew_leases(f->st, "sched-a", T0 + 500, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, NULL);
    assert_true(wf->jobs[0].lease_expires == T0 + 500);
    assert_true(wf->jobs[1].lease_expires == T0 + 30); /* another owner's: untouched */
    assert_true(wf->jobs[2].lease_expires == 0);       /* not running */
    store_workflow_free(wf);
}

/* Takes the lease for `who` now (the database's clock on PostgreSQL, the
 * caller's on SQLite) and says whether it leads. */
static bool lead(store *st, const char *who, double ttl) {
    char err[TS_ERRLEN];
    bool leader = false;
    int rc = store_leader_acquire(st, who, ts_now(), ttl, &leader, err, sizeof(err));
    if (rc != TS_OK) fprintf(stderr, "store_leader_acquire: %s\n", err);
    assert_int_equal(rc, TS_OK);
    return leader;
}

/* Two candidates on two handles (as two instances would be): the holder
 * renews in its term, the other takes over once the lease expires, with a
 * new term; a release hands over at once, and the term still grows. */
static void test_leader_acquire_expire_steal_release(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store *b = NULL;
    assert_int_equal(store_open(f->path, &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_leader_term(f->st), 0);
    assert_true(lead(f->st, "A", 1.0));
    int64_t t1 = store_leader_term(f->st);
    assert_true(t1 >= 1);
    assert_false(lead(b, "B", 1.0));
    assert_true(lead(f->st, "A", 1.0)); /* renewed, same term */
    assert_int_equal(store_leader_term(f->st), t1);
    usleep(1300 * 1000);
    assert_true(lead(b, "B", 5.0)); /* A's lease expired: taken, a new term */
    assert_int_equal(store_leader_term(b), t1 + 1);
    assert_false(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_release(f->st, "A", err, sizeof(err)), TS_OK); /* not A's */
    assert_false(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_release(b, "B", err, sizeof(err)), TS_OK);
    assert_true(lead(f->st, "A", 1.0));
    assert_int_equal(store_leader_term(f->st), t1 + 2);
    store_close(b);
}

/* ---- commands, events, the line --------------------------------------------------------- */

typedef struct cmdlist {
    size_t n;
    store_command c[8];
} cmdlist;

static int collect_cmd(void *ctx, const store_command *c) {
    cmdlist *l = ctx;
    if (l->n < 8) l->c[l->n++] = *c;
    return 0;
}

static void test_commands_since(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t c1 = 0, c2 = 0;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    assert_int_equal(store_command_add(f->st, id, 1, "retry", "alice", T0 + 1, &c1, err,
                                       sizeof(err)),
                     TS_OK);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 2, &c2, err,
                                       sizeof(err)),
                     TS_OK);
    assert_true(c2 > c1 && c1 > 0);
    assert_int_equal(store_command_add(f->st, id, -1, "explode", "alice", T0, NULL, err,
                                       sizeof(err)),
                     TS_ERR);
    assert_non_null(strstr(err, "explode"));
    assert_int_equal(store_command_add(f->st, id, 2, "cancel", "alice", T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND); /* no job 2 */
    assert_int_equal(store_command_add(f->st, id + 1, -1, "cancel", NULL, T0, NULL, err,
                                       sizeof(err)),
                     STORE_NOTFOUND);

    store_workflow *wf = get(f->st, id, "alice");
    assert_true(wf->cancel_requested);
    store_workflow_free(wf);

    cmdlist l = {0};
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.c[0].id, c1);
    assert_int_equal(l.c[0].workflow_id, id);
    assert_int_equal(l.c[0].job_index, 1);
    assert_string_equal(l.c[0].kind, "retry");
    assert_string_equal(l.c[0].user, "alice");
    assert_true(l.c[0].created_at == T0 + 1);
    assert_int_equal(l.c[1].job_index, -1);
    assert_string_equal(l.c[1].kind, "cancel");
    l.n = 0;
    assert_int_equal(store_commands_since(f->st, c1, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.c[0].id, c2);
    /* Applied commands are never read again, even from the start (a
     * restarted scheduler), and a rolled-back mark leaves them pending. */
    assert_int_equal(store_begin(f->st, err, sizeof(err)), TS_OK);
    assert_int_equal(store_command_applied(f->st, c2, err, sizeof(err)), TS_OK);
    store_rollback(f->st);
    assert_int_equal(store_command_applied(f->st, c1, err, sizeof(err)), TS_OK);
    l.n = 0;
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.c[0].id, c2);
}

static void test_events_since_filters_and_limit(void **state) {
    fx *f = *state;
    int64_t a1 = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b1 = submit_json(f->st, "bob", TWO_JOBS, T0);
    int64_t a2 = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, a1, T0 + 1);

    evlist *all = events(f->st, 0, NULL, 0, 0);
    assert_int_equal(all->n, 7);
    for (size_t i = 1; i < all->n; i++) assert_true(all->seq[i] > all->seq[i - 1]);
    assert_string_equal(all->type[6], "workflow.admitted");
    assert_string_equal(json_string_value(json_object_get(all->json[6], "state")), "running");

    evlist *al = events(f->st, 0, "alice", 0, 0);
    assert_int_equal(al->n, 5);
    for (size_t i = 0; i < al->n; i++) assert_string_equal(al->user[i], "alice");
    evlist *w = events(f->st, 0, "alice", a2, 0);
    assert_int_equal(w->n, 2);
    for (size_t i = 0; i < w->n; i++)
        assert_int_equal(json_integer_value(json_object_get(w->json[i], "workflow_id")), a2);
    evlist *bw = events(f->st, 0, "alice", b1, 0); /* bob's workflow, asked as alice */
    assert_int_equal(bw->n, 0);
    evlist *lim = events(f->st, 0, "alice", 0, 2);
    assert_int_equal(lim->n, 2);
    evlist *next = events(f->st, lim->seq[1], "alice", 0, 2);
    assert_int_equal(next->n, 2);
    assert_true(next->seq[0] > lim->seq[1]);
    assert_int_equal(next->seq[0], al->seq[2]);
    evlist *none = events(f->st, all->seq[6], NULL, 0, 0);
    assert_int_equal(none->n, 0);
    evlist_free(all);
    evlist_free(al);
    evlist_free(w);
    evlist_free(bw);
    evlist_free(lim);
    evlist_free(next);
    evlist_free(none);
}

static void test_queue_position_derived(void **state) {
    fx *f = *state;
    int64_t a = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t b = submit_json(f->st, "bob", TWO_JOBS, T0);
    int64_t c = submit_json(f->st, "carol", TWO_JOBS, T0);
    idlist l = list(f->st, NULL, -1, 0, 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.queue_position[0], 3); /* c, newest first */
    assert_int_equal(l.queue_position[2], 1);
    admit_ok(f->st, a, T0 + 1);
    core_change ch = wf_change(b, WF_QUEUED, WF_CANCELLED, T0 + 1);
    apply_ok(f->st, &ch);
    store_workflow *wf = get(f->st, c, "carol");
    assert_int_equal(wf->queue_position, 1);
    store_workflow_free(wf);
    wf = get(f->st, a, "alice");
    assert_int_equal(wf->queue_position, 0);
    store_workflow_free(wf);
}

static void test_queue_stats(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.active_users + qs.waiting_users + qs.queued_workflows, 0);
    assert_true(qs.oldest_queued_at == 0); /* nobody waits */
    int64_t a1 = submit_parallel(f->st, "alice", 3, T0);
    submit_parallel(f->st, "alice", 1, T0 + 2); /* alice is active: not waiting */
    submit_parallel(f->st, "bob", 1, T0 + 3);
    submit_parallel(f->st, "bob", 1, T0 + 4);
    submit_parallel(f->st, "carol", 1, T0 + 5);
    admit_ok(f->st, a1, T0);
    make_ready(f->st, a1, 3, T0);
    core_change ch = job_change(a1, 0, "j0", JOB_READY, JOB_RUNNING, T0);
    ch.cpus = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 9, 8, err, sizeof(err)), TS_OK);
    ch = job_change(a1, 1, "j1", JOB_READY, JOB_RUNNING, T0);
    ch.cpus = 1;
    assert_int_equal(store_claim(f->st, &ch, "s", T0 + 9, 8, err, sizeof(err)), TS_OK);
    assert_int_equal(store_queue_stats_get(f->st, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(qs.active_users, 1);
    assert_int_equal(qs.waiting_users, 2);
    assert_int_equal(qs.queued_workflows, 4);
    assert_int_equal(qs.running_cpus, 2);
    assert_int_equal(qs.running_jobs, 2);
    /* The oldest waiter is alice's second (a1, older, was admitted). */
    assert_true(fabs(qs.oldest_queued_at - (T0 + 2)) < 1e-6);
}

/* store_instances: the instances using the store. PostgreSQL lists the
 * names of the database's sessions, so two handles opened under two names
 * are two instances and a closed one drops out; SQLite lists this process's
 * own name. Names are set before opening, as serve does before fork. */
static void test_instances(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_instance in[8];
    size_t n = 99;
    store_set_instance_name(""); /* the fixture's handle is unnamed */
    assert_int_equal(store_instances(f->st, in, 8, &n, err, sizeof(err)), TS_OK);
    assert_int_equal(n, 0);
    store *a = NULL, *b = NULL;
    store_set_instance_name("host-a:8080");
    assert_int_equal(store_open(f->path, &a, err, sizeof(err)), TS_OK);
    store_set_instance_name("host-b:8081");
    assert_int_equal(store_open(f->path, &b, err, sizeof(err)), TS_OK);
    /* PostgreSQL connects lazily on the first call: make each handle talk. */
    store_queue_stats qs;
    assert_int_equal(store_queue_stats_get(a, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(store_queue_stats_get(b, &qs, err, sizeof(err)), TS_OK);
    assert_int_equal(store_instances(a, in, 8, &n, err, sizeof(err)), TS_OK);
    if (pg_url) {
        assert_int_equal(n, 2);
        assert_string_equal(in[0].name, "host-a:8080");
        assert_string_equal(in[1].name, "host-b:8081");
        assert_true(in[0].connections >= 1 && in[1].connections >= 1);
        assert_true(in[0].since > 1e9 && in[0].since <= ts_now() + 5);
        assert_int_equal(store_instances(a, in, 1, &n, err, sizeof(err)), TS_OK);
        assert_int_equal(n, 1); /* at most max */
        store_close(b);
        b = NULL;
        /* The server ends the session when the client goes: poll for it. */
        for (int i = 0; i < 200; i++) {
            assert_int_equal(store_instances(a, in, 8, &n, err, sizeof(err)), TS_OK);
            if (n == 1) break;
            usleep(20000);
        }
        assert_int_equal(n, 1);
        assert_string_equal(in[0].name, "host-a:8080");
    } else {
        assert_int_equal(n, 1); /* one instance by design: this process's */
        assert_string_equal(in[0].name, "host-b:8081");
        assert_int_equal(in[0].connections, -1);
    }
    store_close(a);
    store_close(b);
    store_set_instance_name("");
}

static void test_delete_finished_only(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store_workflow *wf = NULL;
    int64_t id = submit_json(f->st, "alice", TWO_JOBS, T0);
    int64_t keep = submit_json(f->st, "alice", TWO_JOBS, T0);
    admit_ok(f->st, id, T0 + 1);
    core_change ch = job_change(id, 0, "job-1", JOB_PENDING, JOB_READY, T0 + 2);
    apply_ok(f->st, &ch);
    assert_int_equal(claim(f->st, id, 0, "job-1", 1, "s", 8, T0 + 3), TS_OK);
    assert_int_equal(store_command_add(f->st, id, -1, "cancel", "alice", T0 + 4, NULL, err,
                                       sizeof(err)),
                     TS_OK);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)),
                     STORE_CONFLICT);
    ch = job_change(id, 0, "job-1", JOB_RUNNING, JOB_CANCELLED, T0 + 5);
    ch.outcome = "cancelled";
    apply_ok(f->st, &ch);
    ch = job_change(id, 1, "job-2", JOB_PENDING, JOB_CANCELLED, T0 + 5);
    apply_ok(f->st, &ch);
    ch = wf_change(id, WF_RUNNING, WF_CANCELLED, T0 + 5);
    apply_ok(f->st, &ch);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, NULL, &wf, err, sizeof(err)), STORE_NOTFOUND);
    assert_int_equal(store_workflow_delete(f->st, id, "alice", err, sizeof(err)),
                     STORE_NOTFOUND);
    store_attempt *at = NULL;
    size_t n = 0;
    assert_int_equal(store_attempts(f->st, id, 0, &at, &n, err, sizeof(err)), STORE_NOTFOUND);
    evlist *ev = events(f->st, 0, NULL, id, 0);
    assert_int_equal(ev->n, 0);
    evlist_free(ev);
    cmdlist l = {0};
    assert_int_equal(store_commands_since(f->st, 0, collect_cmd, &l, err, sizeof(err)), TS_OK);
    assert_int_equal(l.n, 0);
    /* the other workflow and its events are untouched, and ids are not reused */
    wf = get(f->st, keep, "alice");
    store_workflow_free(wf);
    ev = events(f->st, 0, NULL, keep, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
    assert_true(submit_json(f->st, "alice", TWO_JOBS, T0) > keep);
}

/* ---- other processes ------------------------------------------------------------------- */



/* A workflow read twice through one handle shares one parsed spec (issue
 * 16: reads neither parse the stored spec nor rebuild its DAG again); each
 * read frees its own reference, and another workflow has its own. */
static void test_spec_parsed_once_per_handle(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    int64_t other = submit_parallel(f->st, "alice", 4, T0 + 1);
    store_workflow *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(store_workflow_get(f->st, id, NULL, &a, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, "alice", &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, other, NULL, &c, err, sizeof(err)), TS_OK);
    assert_ptr_equal(a->spec, b->spec);
    assert_ptr_not_equal(a->spec, c->spec);
    assert_int_equal(c->spec->n_jobs, 4);
    store_workflow_free(a);
    assert_int_equal(b->spec->n_jobs, 3); /* still the cache's and b's */
    assert_int_equal(spec_find_job(b->spec, "j2"), 2);
    store_workflow_free(b);
    store_workflow_free(c);
    /* What a submit stored is read back without a parse: the submitted
     * spec itself, kept by the handle when the commit succeeded. */
    spec_workflow *spec = parse("{\"name\": \"kept\", \"jobs\": [{\"job_id\": \"a\", \"job_type\": \"noop\"}]}");
    int64_t kept = 0;
    assert_int_equal(store_submit(f->st, "alice", spec, T0 + 2, &kept, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, kept, NULL, &a, err, sizeof(err)), TS_OK);
    assert_ptr_equal(a->spec, spec);
    spec_free(spec); /* the submitter's reference; the cache's and a's remain */
    assert_string_equal(a->spec->jobs[0].job_id, "a");
    store_workflow_free(a);
}

/* Handles sharing one spec cache (a worker's request threads,
 * store_share_spec_cache) read one parsed copy: what one handle parsed or
 * stored, another reads without parsing, and closing the first keeps the
 * cache for the others. */
static void test_spec_cache_shared_between_handles(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    store *b = NULL, *c = NULL;
    assert_int_equal(store_open_existing(f->path, &b, err, sizeof(err)), TS_OK);
    assert_int_equal(store_open_existing(f->path, &c, err, sizeof(err)), TS_OK);
    store_share_spec_cache(b, c); /* b and c share; f->st keeps its own */
    int64_t id = submit_parallel(f->st, "alice", 3, T0);
    store_workflow *x = NULL, *y = NULL, *z = NULL;
    assert_int_equal(store_workflow_get(c, id, "alice", &x, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(b, id, "alice", &y, err, sizeof(err)), TS_OK);
    assert_int_equal(store_workflow_get(f->st, id, "alice", &z, err, sizeof(err)), TS_OK);
    assert_ptr_equal(x->spec, y->spec);     /* parsed once, by c, for both */
    assert_ptr_not_equal(x->spec, z->spec); /* the submitter's own handle */
    store_workflow_free(x);
    store_workflow_free(y);
    store_workflow_free(z);
    store_close(c); /* the cache lives on with b */
    assert_int_equal(store_workflow_get(b, id, NULL, &x, err, sizeof(err)), TS_OK);
    assert_int_equal(spec_find_job(x->spec, "j1"), 1);
    store_workflow_free(x);
    store_close(b);
}

/* SQLite: a commit that records events wakes every listener at once with
 * the newest seq (issue 16: the WebSocket hubs need not poll), and a
 * listener's socket left by a process that died is removed by the next
 * ring. PostgreSQL's NOTIFY is covered by test_store_pg. */
static void test_sqlite_listener_woken_by_commit(void **state) {
    fx *f = *state;
    if (pg_url) skip();
    char err[TS_ERRLEN];
    store_listener *a = NULL, *b = NULL, *work = NULL;
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &a, err, sizeof(err)), TS_OK);
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_EVENTS, &b, err, sizeof(err)), TS_OK);
    assert_non_null(a);
    assert_non_null(b);
    /* The scheduler's work wake-up stays the doorbell on SQLite. */
    assert_int_equal(store_listener_open(f->path, STORE_WAKE_WORK, &work, err, sizeof(err)), TS_OK);
    assert_null(work);
    /* A listener whose process died: bound, closed, its file left. */
    char stale[600];
    snprintf(stale, sizeof(stale), "%s-wake/e1-0", f->path);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    ts_strlcpy(addr.sun_path, stale, sizeof(addr.sun_path));
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    int64_t newest = 0;
    assert_int_equal(store_listener_drain(a, &newest), 0); /* nothing yet */
    submit_parallel(f->st, "alice", 2, T0);
    int64_t last = 0;
    assert_int_equal(store_events_last_seq(f->st, &last, err, sizeof(err)), TS_OK);
    assert_true(last > 0);
    store_listener *both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct pollfd p = {.fd = store_listener_fd(both[i]), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 1); /* already there when submit returned */
        assert_true(store_listener_drain(both[i], &newest) > 0);
        assert_int_equal(newest, last);
        assert_int_equal(store_listener_drain(both[i], &newest), 0);
    }
    assert_int_equal(access(stale, F_OK), -1);
    store_listener_close(a);
    store_listener_close(b);
    /* Where no socket can be bound (here: a path too long for one), there
     * is no listener, and no error: readers poll as before. */
    char deep[300];
    snprintf(deep, sizeof(deep), "%s/%0120d", f->dir, 0);
    assert_int_equal(mkdir(deep, 0700), 0);
    char db[400];
    snprintf(db, sizeof(db), "%s/t.db", deep);
    store_listener *none = NULL;
    assert_int_equal(store_listener_open(db, STORE_WAKE_EVENTS, &none, err, sizeof(err)), TS_OK);
    assert_null(none);
}

/* The child of the durability test: submit, report the id, wait to die. */
static void durability_child(const char *path, int fd) {
    store *st = NULL;
    char err[TS_ERRLEN];
    int64_t id = 0;
    spec_workflow *spec = parse(TWO_JOBS);
    if (spec == NULL || store_open(path, &st, err, sizeof(err)) != TS_OK) _exit(2);
    if (store_submit(st, "alice", spec, T0, &id, err, sizeof(err)) != TS_OK) _exit(3);
    if (write(fd, &id, sizeof(id)) != (ssize_t)sizeof(id)) _exit(4);
    for (;;) pause(); /* never closes the store: it is killed */
}

static void test_durability_acknowledged_submit_survives_kill9(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int p[2], status = 0;
    int64_t id = 0;
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        durability_child(f->path, p[1]);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &id, sizeof(id)), (ssize_t)sizeof(id));
    close(p[0]);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, "alice");
    assert_string_equal(wf->name, "Cell Segmentation Workflow");
    assert_int_equal(wf->n_jobs, 2);
    store_workflow_free(wf);
    evlist *ev = events(f->st, 0, "alice", id, 0);
    assert_int_equal(ev->n, 2);
    evlist_free(ev);
}

#define RACE_JOBS 60
#define RACE_LIMIT 3

/* Finishes a job the racer holds (running -> succeeded). */
static int race_finish(store *st, int64_t id, int i) {
    char err[TS_ERRLEN], job_id[16];
    snprintf(job_id, sizeof(job_id), "j%d", i);
    core_change ch = job_change(id, i, job_id, JOB_RUNNING, JOB_SUCCEEDED, T0 + 1);
    ch.attempt = 1;
    ch.exit_code = 0;
    ch.outcome = "succeeded";
    return store_apply(st, &ch, NULL, err, sizeof(err));
}

/* One racer: claims jobs (in its own order), holding up to two at a time
 * (finishing one when it has two or a claim fails), so that neither racer
 * can hog every slot and both keep pressing against the limit. Checks inside each claim's transaction that the running cpus
 * are within the limit. The pause between transactions lets the other
 * racer in: SQLite's busy handler polls with growing sleeps, so a process
 * that re-takes the lock at once would starve the other. Reports claims won and violations through fd; the
 * exit status says whether anything failed. */
static int race_child(const char *path, int64_t id, int who, int ready, int go, int fd) {
    store *st = NULL;
    char err[TS_ERRLEN], job_id[16], c = 'r';
    int won = 0, violations = 0, held[RACE_JOBS], n_held = 0;
    if (store_open(path, &st, err, sizeof(err)) != TS_OK) return 2;
    if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1) return 3;
    for (int pass = 0; pass < 20; pass++) {
        for (int k = 0; k < RACE_JOBS; k++) {
            int i = who ? RACE_JOBS - 1 - k : k;
            snprintf(job_id, sizeof(job_id), "j%d", i);
            core_change ch = job_change(id, i, job_id, JOB_READY, JOB_RUNNING, T0);
            ch.attempt = 1;
            store_queue_stats qs;
            if (store_begin(st, err, sizeof(err)) != TS_OK) return 4;
            int rc = store_claim(st, &ch, who ? "b" : "a", T0 + 30, RACE_LIMIT, err, sizeof(err));
            if (rc == TS_ERR) return 5;
            if (rc == TS_OK) {
                if (store_queue_stats_get(st, &qs, err, sizeof(err)) != TS_OK) return 6;
                if (qs.running_cpus > RACE_LIMIT) violations++;
                won++;
                held[n_held++] = i;
            }
            if (store_commit(st, err, sizeof(err)) != TS_OK) return 7;
            usleep(300);
            if (n_held > 0 && (rc != TS_OK || n_held == 2) &&
                race_finish(st, id, held[--n_held]) != TS_OK)
                return 8;
        }
    }
    while (n_held > 0)
        if (race_finish(st, id, held[--n_held]) != TS_OK) return 8;
    int report[2] = {won, violations};
    if (write(fd, report, sizeof(report)) != (ssize_t)sizeof(report)) return 9;
    store_close(st);
    return 0;
}

static void test_concurrent_claims_two_processes_never_exceed_limit(void **state) {
    fx *f = *state;
    char err[TS_ERRLEN];
    int ready[2], go[2], res[2], status;
    char c[2];
    pid_t pid[2];
    /* set up, then close: handles are opened after fork, never before */
    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    int64_t id = submit_parallel(f->st, "alice", RACE_JOBS, T0);
    admit_ok(f->st, id, T0);
    make_ready(f->st, id, RACE_JOBS, T0);
    store_close(f->st);
    f->st = NULL;

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(res), 0);
    for (int who = 0; who < 2; who++) {
        pid[who] = fork();
        assert_true(pid[who] >= 0);
        if (pid[who] == 0) _exit(race_child(f->path, id, who, ready[1], go[0], res[1]));
    }
    close(ready[1]);
    close(go[0]);
    close(res[1]);
    /* both have opened their handles: start them at once */
    for (size_t got = 0; got < 2;) {
        ssize_t r = read(ready[0], c + got, 2 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    close(ready[0]);
    assert_int_equal(write(go[1], "gg", 2), 2);
    close(go[1]);
    int won = 0;
    for (int who = 0; who < 2; who++) {
        int report[2];
        assert_int_equal(read(res[0], report, sizeof(report)), (ssize_t)sizeof(report));
        assert_int_equal(report[1], 0); /* no violation seen inside a claim */
        won += report[0];
    }
    close(res[0]);
    for (int who = 0; who < 2; who++) {
        assert_int_equal(waitpid(pid[who], &status, 0), pid[who]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(won, RACE_JOBS); /* each job claimed exactly once */

    assert_int_equal(store_open(f->path, &f->st, err, sizeof(err)), TS_OK);
    store_workflow *wf = get(f->st, id, NULL);
    for (int i = 0; i < RACE_JOBS; i++) {
        assert_int_equal(wf->jobs[i].state, JOB_SUCCEEDED);
        store_attempt *at = NULL;
        size_t n = 0;
        assert_int_equal(store_attempts(f->st, id, i, &at, &n, err, sizeof(err)), TS_OK);
        assert_int_equal(n, 1);
        free(at);
    }
    store_workflow_free(wf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_idempotent, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors_are_clear, setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_submit_get_round_trip, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_submit_receipt_matches_stored, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_submit_refused_inside_transaction, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_users_workflow_is_notfound, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_order_filters_and_cursor, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_load_unfinished_skips_final, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_apply_job_transitions_and_attempts, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attempt_external_id, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_workflow_stamp_follows_every_change, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_workflow_summary_counts_without_jobs, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_apply_skip_finish_and_manual_retry, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_apply_progress_and_queue_position_events,
                                        setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards_changes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_claim_respects_concurrency_limit, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admit_respects_max_active_users, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_leases_renew, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_leader_acquire_expire_steal_release, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_commands_since, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_events_since_filters_and_limit, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_position_derived, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_listener_woken_by_commit, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_spec_parsed_once_per_handle, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_spec_cache_shared_between_handles, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_queue_stats, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_instances, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_delete_finished_only, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_durability_acknowledged_submit_survives_kill9,
                                        setup_closed, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims_two_processes_never_exceed_limit,
                                        setup_closed, teardown),
    };
    int failed = cmocka_run_group_tests_name("store (sqlite)", tests, NULL, NULL);
    pg_url = getenv("TESSERA_TEST_PG_URL");
    if (pg_url && pg_url[0])
        failed += cmocka_run_group_tests_name("store (postgresql)", tests, NULL, NULL);
    else
        printf("store (postgresql): not run: TESSERA_TEST_PG_URL is not set "
               "(tests/lib/pgserver.sh run build/tests/test_store runs it)\n");
    return failed;
}
