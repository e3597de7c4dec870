/*
 * store.c - the one store interface (store.h) in front of its backends
 * (backends.h): store_open picks the backend from the target, and every
 * other function forwards to the backend that opened the handle. Nothing
 * here knows SQL; memory returned to callers (store_workflow) is freed here
 * because its layout belongs to store.h, not to a backend.
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "store/backends.h"
#include "store/rows.h"
#include "util/util.h"

struct store {
    sqlite_store *sq; /* exactly one of the two is set */
    pg_store *pg;
    store_observer observer; /* store_set_observer */
    void *observer_ctx;
    store_batcher *batcher; /* store_set_batcher; used on SQLite only */
};

/* Forwards a call to the backend of st: sqlite_NAME or pg_NAME. */
#define STORE_FORWARD(NAME, ...) \
    (st->pg ? pg_##NAME(st->pg, __VA_ARGS__) : sqlite_##NAME(st->sq, __VA_ARGS__))

/* The body of a forwarding function: times the backend's call for the
 * observer (store_set_observer) and returns its code. */
#define STORE_CALL(NAME, ...)                                                  \
    double t0_ = st->observer ? ts_monotonic() : 0;                            \
    int rc_ = STORE_FORWARD(NAME, __VA_ARGS__);                                \
    if (st->observer) st->observer(st->observer_ctx, #NAME, ts_monotonic() - t0_, rc_); \
    return rc_

/* This process's instance name (store_set_instance_name): configuration,
 * set once at start-up before fork. */
static char instance_name[128];

void store_set_instance_name(const char *name) {
    ts_strlcpy(instance_name, name ? name : "", sizeof(instance_name));
    pg_set_instance_name(instance_name);
}

/* See store.h. SQLite serves one instance: this one. */
int store_instances(store *st, store_instance *out, size_t max, size_t *n, char *err,
                    size_t errlen) {
    if (st->pg) {
        double t0 = st->observer ? ts_monotonic() : 0;
        int rc = pg_instances(st->pg, out, max, n, err, errlen);
        if (st->observer) st->observer(st->observer_ctx, "instances", ts_monotonic() - t0, rc);
        return rc;
    }
    *n = 0;
    if (instance_name[0] && max > 0) {
        out[0] = (store_instance){.connections = -1};
        ts_strlcpy(out[0].name, instance_name, sizeof(out[0].name));
        *n = 1;
    }
    return TS_OK;
}

void store_set_observer(store *st, store_observer fn, void *ctx) {
    st->observer = fn;
    st->observer_ctx = ctx;
}

/* True for the URL schemes libpq accepts for PostgreSQL. */
bool store_is_postgresql(const char *url) {
    return url != NULL &&
           (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0);
}

/*
 * A postgresql:// (or postgres://) URL opens the PostgreSQL backend; any
 * other target is a SQLite file path, whose backend refuses other URL
 * schemes with a message naming what it expected. existing: never create
 * or migrate (store_open_existing).
 */
static int open_backend(const char *url, bool existing, store **out, char *err, size_t errlen) {
    *out = NULL;
    store *st = ts_calloc(1, sizeof(*st));
    int rc;
    if (store_is_postgresql(url)) {
        rc = existing ? pg_open_existing(url, &st->pg, err, errlen)
                      : pg_open(url, &st->pg, err, errlen);
    } else {
        rc = existing ? sqlite_open_existing(url, &st->sq, err, errlen)
                      : sqlite_open(url, &st->sq, err, errlen);
    }
    if (rc != TS_OK) {
        free(st);
        return rc;
    }
    *out = st;
    return TS_OK;
}

int store_open(const char *url, store **out, char *err, size_t errlen) {
    return open_backend(url, false, out, err, errlen);
}

int store_open_existing(const char *url, store **out, char *err, size_t errlen) {
    return open_backend(url, true, out, err, errlen);
}

int store_probe(store *st, char *err, size_t errlen) {
    STORE_CALL(probe, err, errlen);
}

int store_integrity_check(store *st, char *err, size_t errlen) {
    STORE_CALL(integrity_check, err, errlen);
}

void store_close(store *st) {
    if (st == NULL) return;
    if (st->sq) sqlite_close(st->sq);
    if (st->pg) pg_close(st->pg);
    free(st);
}

/* Frees everything a get/list/load allocated; NULL is fine. */
void store_workflow_free(store_workflow *wf) {
    if (wf == NULL) return;
    free(wf->user);
    free(wf->name);
    free(wf->reason);
    if (wf->spec != NULL) spec_free(wf->spec);
    for (size_t i = 0; wf->jobs != NULL && i < wf->n_jobs; i++) {
        free(wf->jobs[i].job_id);
        free(wf->jobs[i].reason);
        free(wf->jobs[i].lease_owner);
    }
    free(wf->jobs);
    free(wf);
}

int store_schema_version(store *st) {
    return st->pg ? pg_schema_version(st->pg) : sqlite_schema_version(st->sq);
}

int store_begin(store *st, char *err, size_t errlen) {
    STORE_CALL(begin, err, errlen);
}

int store_commit(store *st, char *err, size_t errlen) {
    STORE_CALL(commit, err, errlen);
}

int store_set_deferred_sync(store *st, bool on, char *err, size_t errlen) {
    return STORE_FORWARD(set_deferred_sync, on, err, errlen);
}

int store_sync(store *st, char *err, size_t errlen) {
    STORE_CALL(sync, err, errlen);
}

int store_sync_take(store *st, store_sync_ticket **out, char *err, size_t errlen) {
    return STORE_FORWARD(sync_take, out, err, errlen);
}

/* Only SQLite makes tickets (PostgreSQL's commits are synchronous). */
int store_sync_ticket_run(store_sync_ticket *t, char *err, size_t errlen) {
    return sqlite_sync_ticket_run(t, err, errlen);
}

void store_sync_ticket_free(store_sync_ticket *t) {
    sqlite_sync_ticket_free(t);
}

void store_sync_failed(store *st) {
    if (st->pg) pg_sync_failed(st->pg);
    else sqlite_sync_failed(st->sq);
}

int store_checkpoint(store *st, int64_t max_bytes, int64_t *wal_bytes, char *err,
                     size_t errlen) {
    STORE_CALL(checkpoint, max_bytes, wal_bytes, err, errlen);
}

void store_rollback(store *st) {
    if (st->pg) pg_rollback(st->pg);
    else sqlite_rollback(st->sq);
}

void store_share_spec_cache(store *st, store *with) {
    if (st == NULL || with == NULL || st == with || (st->pg == NULL) != (with->pg == NULL)) return;
    if (st->pg) pg_share_specs(st->pg, with->pg);
    else sqlite_share_specs(st->sq, with->sq);
}

void store_set_batcher(store *st, store_batcher *b) {
    st->batcher = b;
}

/* The batcher's view of a SQLite handle. */
static int batch_begin(void *handle, char *err, size_t errlen) {
    return sqlite_submit_begin(handle, err, errlen);
}

static void batch_run(void *handle, store_submit_item *const *items, size_t n) {
    sqlite_submit_batch(handle, items, n);
}

static const batch_ops SQLITE_BATCH_OPS = {batch_begin, batch_run};

/* A submission through st's batcher: checked and serialised on the
 * caller's handle before it joins (bad input never reaches a batch), and
 * its spec cached on that handle, whichever handle committed it. */
static int submit_batched(store *st, const char *user, const spec_workflow *spec, double now,
                          store_receipt *out, char *err, size_t errlen) {
    store_submit_item it = {.user = user, .spec = spec, .now = now, .err = err, .errlen = errlen};
    int rc = sqlite_submit_prepare(st->sq, &it);
    if (rc == TS_OK) rc = batch_submit(st->batcher, &SQLITE_BATCH_OPS, st->sq, &it);
    if (rc == TS_OK) {
        sqlite_submit_cache(st->sq, &it);
        *out = it.receipt;
    }
    free(it.spec_text);
    return rc;
}

int store_submit_receipt(store *st, const char *user, const spec_workflow *spec, double now,
                         store_receipt *out, char *err, size_t errlen) {
    if (st->batcher == NULL || st->sq == NULL) {
        STORE_CALL(submit, user, spec, now, out, err, errlen);
    }
    double t0 = st->observer ? ts_monotonic() : 0;
    int rc = submit_batched(st, user, spec, now, out, err, errlen);
    if (st->observer) st->observer(st->observer_ctx, "submit", ts_monotonic() - t0, rc);
    return rc;
}

/* One submission queued for the committer thread with nobody waiting:
 * what its completion needs once the commit is over. */
typedef struct async_submit {
    store_submit_item it;
    char err[TS_ERRLEN];
    store_submit_fn fn;
    void *ctx;
    store_observer observer; /* the submitting handle's, timed from the call */
    void *observer_ctx;
    double t0;
} async_submit;

/* on_done of an async_submit, on the committer thread: the spec cached on
 * the committer's handle (its cache is shared with the request threads'),
 * then the caller's function. */
static void async_done(store_submit_item *it, void *handle) {
    async_submit *a = (async_submit *)it;
    if (it->rc == TS_OK) sqlite_submit_cache(handle, it);
    if (a->observer) a->observer(a->observer_ctx, "submit", ts_monotonic() - a->t0, it->rc);
    a->fn(a->ctx, it->rc, &it->receipt, a->err);
    free(it->spec_text);
    free(a);
}

/* See store.h. Without a committer thread the call is store_submit_receipt
 * and fn runs before this returns. */
int store_submit_async(store *st, const char *user, const spec_workflow *spec, double now,
                       store_submit_fn fn, void *ctx, char *err, size_t errlen) {
    if (st->sq == NULL || !batch_serving(st->batcher)) {
        store_receipt got;
        char why[TS_ERRLEN] = "";
        int rc = store_submit_receipt(st, user, spec, now, &got, why, sizeof(why));
        fn(ctx, rc, &got, why);
        return TS_OK;
    }
    async_submit *a = ts_calloc(1, sizeof(*a));
    a->it = (store_submit_item){.user = user, .spec = spec, .now = now, .err = a->err,
                                .errlen = sizeof(a->err), .on_done = async_done};
    a->fn = fn;
    a->ctx = ctx;
    a->observer = st->observer;
    a->observer_ctx = st->observer_ctx;
    a->t0 = ts_monotonic();
    if (sqlite_submit_prepare(st->sq, &a->it) != TS_OK) {
        ts_strlcpy(err, a->err, errlen);
        free(a->it.spec_text);
        free(a);
        return TS_ERR;
    }
    batch_enqueue(st->batcher, &a->it);
    return TS_OK;
}

/* See store.h. The thread's handle is opened like a request thread's
 * (never creating the database) and shares cache_of's spec cache, so the
 * specs it stores are found by the threads that read them next. */
int store_batcher_serve(store_batcher *b, const char *db_url, store *cache_of, char *err,
                        size_t errlen) {
    store *st = NULL;
    if (store_is_postgresql(db_url)) return TS_OK;
    if (store_open_existing(db_url, &st, err, errlen) != TS_OK) return TS_ERR;
    store_share_spec_cache(st, cache_of);
    if (batch_serve(b, &SQLITE_BATCH_OPS, st->sq, st, err, errlen) != TS_OK) {
        store_close(st);
        return TS_ERR;
    }
    return TS_OK;
}

int store_submit(store *st, const char *user, const spec_workflow *spec, double now, int64_t *id,
                 char *err, size_t errlen) {
    store_receipt r;
    int rc = store_submit_receipt(st, user, spec, now, &r, err, errlen);
    if (rc == TS_OK) *id = r.id;
    return rc;
}

/* Everything a reader of the stored rows would see of a new workflow:
 * rows.c and the backends read the same defaults (exit_code -1, "" for
 * reasons and lease owners, 0 for times not yet reached). */
store_workflow *store_workflow_submitted(const char *user, const spec_workflow *spec, double now,
                                         const store_receipt *r) {
    store_workflow *wf = ts_calloc(1, sizeof(*wf));
    wf->id = r->id;
    wf->user = ts_strdup(user);
    wf->name = ts_strdup(spec->name);
    wf->priority = spec->priority;
    wf->state = WF_QUEUED;
    wf->submitted_at = now;
    wf->reason = ts_strdup("");
    wf->queue_position = r->queue_position;
    wf->spec = spec_retain((spec_workflow *)spec);
    wf->n_jobs = spec->n_jobs;
    wf->jobs = ts_calloc(spec->n_jobs, sizeof(store_job));
    for (size_t i = 0; i < spec->n_jobs; i++) {
        store_job *j = &wf->jobs[i];
        j->index = (int32_t)i;
        j->job_id = ts_strdup(spec->jobs[i].job_id);
        j->state = JOB_PENDING;
        j->cpus = spec->jobs[i].cpus;
        j->exit_code = -1;
        j->reason = ts_strdup("");
        j->lease_owner = ts_strdup("");
    }
    return wf;
}

int store_workflow_get(store *st, int64_t id, const char *user, store_workflow **out, char *err,
                       size_t errlen) {
    STORE_CALL(workflow_get, id, user, out, err, errlen);
}

int store_workflow_stamp_get(store *st, int64_t id, const char *user, unsigned want,
                             store_workflow_stamp *out, char *err, size_t errlen) {
    STORE_CALL(workflow_stamp_get, id, user, want, out, err, errlen);
}

int store_workflow_summary(store *st, int64_t id, const char *user, store_workflow **out,
                           size_t counts[JOB_STATE_COUNT], char *err, size_t errlen) {
    STORE_CALL(workflow_summary, id, user, out, counts, err, errlen);
}

int store_workflow_list(store *st, const char *user, int state, int64_t before_id, size_t limit,
                        store_workflow_cb cb, void *ctx, char *err, size_t errlen) {
    STORE_CALL(workflow_list, user, state, before_id, limit, cb, ctx, err, errlen);
}

int store_load_unfinished(store *st, int64_t after_id, store_workflow_cb cb, void *ctx, char *err,
                          size_t errlen) {
    STORE_CALL(load_unfinished, after_id, cb, ctx, err, errlen);
}

int store_workflow_delete(store *st, int64_t id, const char *user, char *err, size_t errlen) {
    STORE_CALL(workflow_delete, id, user, err, errlen);
}

int store_apply(store *st, const core_change *ch, int64_t *seq, char *err, size_t errlen) {
    STORE_CALL(apply, ch, seq, err, errlen);
}

int store_claim(store *st, const core_change *ch, const char *owner, double lease_expires,
                int concurrency_limit, char *err, size_t errlen) {
    STORE_CALL(claim, ch, owner, lease_expires, concurrency_limit, err, errlen);
}

int store_admit(store *st, const core_change *ch, int max_active_users, char *err,
                size_t errlen) {
    STORE_CALL(admit, ch, max_active_users, err, errlen);
}

int store_attempt_external(store *st, int64_t workflow_id, int32_t job_index, int attempt,
                           const char *token, const char *external_id, char *err,
                           size_t errlen) {
    if (rows_check_external(token, external_id, err, errlen) != TS_OK) return TS_ERR;
    STORE_CALL(attempt_external, workflow_id, job_index, attempt, token, external_id, err,
               errlen);
}

int store_renew_leases(store *st, const char *owner, double lease_expires, char *err,
                       size_t errlen) {
    STORE_CALL(renew_leases, owner, lease_expires, err, errlen);
}

int store_leader_acquire(store *st, const char *owner, double now, double ttl, bool *leader,
                         char *err, size_t errlen) {
    STORE_CALL(leader_acquire, owner, now, ttl, leader, err, errlen);
}

int store_leader_release(store *st, const char *owner, char *err, size_t errlen) {
    STORE_CALL(leader_release, owner, err, errlen);
}

int64_t store_leader_term(store *st) {
    return st->pg ? pg_leader_term(st->pg) : sqlite_leader_term(st->sq);
}

int store_leader_get(store *st, store_leader_info *out, char *err, size_t errlen) {
    STORE_CALL(leader_get, out, err, errlen);
}

int store_command_add(store *st, int64_t workflow_id, int32_t job_index, const char *kind,
                      const char *user, double now, int64_t *id, char *err, size_t errlen) {
    STORE_CALL(command_add, workflow_id, job_index, kind, user, now, id, err, errlen);
}

int store_commands_since(store *st, int64_t after_id, store_command_cb cb, void *ctx, char *err,
                         size_t errlen) {
    STORE_CALL(commands_since, after_id, cb, ctx, err, errlen);
}

int store_command_applied(store *st, int64_t id, char *err, size_t errlen) {
    STORE_CALL(command_applied, id, err, errlen);
}

int store_events_since(store *st, int64_t since, const char *user, int64_t workflow_id,
                       size_t limit, store_event_cb cb, void *ctx, char *err, size_t errlen) {
    STORE_CALL(events_since, since, user, workflow_id, limit, cb, ctx, err, errlen);
}

int store_events_last_seq(store *st, int64_t *seq, char *err, size_t errlen) {
    STORE_CALL(events_last_seq, seq, err, errlen);
}

int store_attempts(store *st, int64_t workflow_id, int32_t job_index, store_attempt **out,
                   size_t *n, char *err, size_t errlen) {
    STORE_CALL(attempts, workflow_id, job_index, out, n, err, errlen);
}

int store_user_put(store *st, const char *name, const char *token_hash, bool admin, double now,
                   char *err, size_t errlen) {
    STORE_CALL(user_put, name, token_hash, admin, now, err, errlen);
}

int store_user_by_token(store *st, const char *token_hash, char *name, bool *admin, char *err,
                        size_t errlen) {
    STORE_CALL(user_by_token, token_hash, name, admin, err, errlen);
}

int store_user_token(store *st, const char *name, char token_hash[65], char *err, size_t errlen) {
    return STORE_FORWARD(user_token, name, token_hash, err, errlen);
}

int store_user_revoke(store *st, const char *name, char *err, size_t errlen) {
    return STORE_FORWARD(user_revoke, name, err, errlen);
}

int store_queue_stats_get(store *st, store_queue_stats *out, char *err, size_t errlen) {
    STORE_CALL(queue_stats_get, out, err, errlen);
}

/* ---- listeners -------------------------------------------------------------- */

/* A store_listener wraps the backend's: PostgreSQL's LISTEN connection, or
 * SQLite's datagram socket (events only: on SQLite the scheduler's work
 * wake-up is the doorbell, sched/doorbell.h). */
struct store_listener {
    pg_listener *pg;
    sq_listener *sq;
};

int store_listener_open(const char *url, int what, store_listener **out, char *err,
                        size_t errlen) {
    *out = NULL;
    pg_listener *pl = NULL;
    sq_listener *sl = NULL;
    int rc = TS_OK;
    if (store_is_postgresql(url))
        rc = pg_listener_open(url, (what & STORE_WAKE_EVENTS) != 0, (what & STORE_WAKE_WORK) != 0,
                              &pl, err, errlen);
    else if ((what & STORE_WAKE_EVENTS) && sq_listener_open(url, &sl, err, errlen) != TS_OK)
        sl = NULL; /* no socket here (path too long, no sockets on this file system): poll */
    if (rc == TS_OK && (pl || sl)) {
        *out = ts_calloc(1, sizeof(**out));
        (*out)->pg = pl;
        (*out)->sq = sl;
    }
    return rc;
}

int store_listener_fd(const store_listener *l) {
    if (l == NULL) return -1;
    return l->pg ? pg_listener_fd(l->pg) : sq_listener_fd(l->sq);
}

int store_listener_drain(store_listener *l, int64_t *newest_seq) {
    *newest_seq = 0;
    if (l == NULL) return 0;
    return l->pg ? pg_listener_drain(l->pg, newest_seq) : sq_listener_drain(l->sq, newest_seq);
}

/* PostgreSQL's commits are durable once visible: no bound. */
int64_t store_listener_durable_seq(const store_listener *l) {
    if (l == NULL || l->pg) return INT64_MAX;
    return sq_listener_durable(l->sq);
}

void store_listener_close(store_listener *l) {
    if (l == NULL) return;
    pg_listener_close(l->pg);
    sq_listener_close(l->sq);
    free(l);
}
