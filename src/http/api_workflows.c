/*
 * api_workflows.c - the workflow endpoints of DESIGN §4: submit, list, get,
 * cancel, delete, progress. Each reads or writes the store only; the
 * scheduler is woken through its doorbell and does the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/api.h"
#include "jobs/jobs.h"
#include "util/layout.h"
#include "util/util.h"
#include "view/view.h"

bool api_is_json(http_request *req) {
    const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return false;
    size_t n = strlen("application/json");
    return strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

http_reply api_wrong_type(http_request *req) {
    const char *ct = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    return http_error(415, "unsupported_media_type", "the body must be application/json",
                      json_pack("{ss?}", "content_type", ct));
}

http_reply api_not_found(const char *what, const char *id) {
    char msg[160];
    snprintf(msg, sizeof(msg), "%s %s not found", what, id ? id : "");
    return http_error(404, "not_found", msg, NULL);
}

http_reply api_store_failed(int rc, const char *err) {
    if (rc != STORE_UNAVAILABLE)
        return http_error(500, "store_error", "the service could not read or write its store",
                          json_pack("{ss}", "reason", err));
    http_reply r = http_error(503, "store_unavailable",
                              "the service cannot use its store right now; nothing was changed, "
                              "try again later",
                              json_pack("{ss}", "reason", err));
    r.retry_after_s = API_RETRY_AFTER_S;
    return r;
}

/* Loads the caller's workflow named by the first path parameter; a reply
 * (404, 503, 500) when it cannot. */
bool api_load_workflow(http_request *req, store_workflow **wf, http_reply *fail) {
    int64_t id;
    char err[TS_ERRLEN];
    if (!http_parse_id(req->params[0], &id)) {
        *fail = api_not_found("workflow", req->params[0]);
        return false;
    }
    int rc = store_workflow_get(req->st, id, req->user, wf, err, sizeof(err));
    if (rc == STORE_NOTFOUND) {
        *fail = api_not_found("workflow", req->params[0]);
        return false;
    }
    if (rc != TS_OK) {
        *fail = api_store_failed(rc, err);
        return false;
    }
    return true;
}

/* The full view of a workflow: jobs, attempts, waiting reasons. Without the
 * line's figures the view only lacks a waiting reason's numbers; without
 * the attempts it would be wrong, so that fails the request. */
json_t *api_workflow_view(http_request *req, store_workflow *wf, http_reply *fail) {
    return api_workflow_view_page(req, wf, VIEW_ALL_JOBS, fail);
}

json_t *api_workflow_view_page(http_request *req, store_workflow *wf, view_page page,
                               http_reply *fail) {
    char err[TS_ERRLEN];
    store_queue_stats stats;
    bool have_stats = store_queue_stats_get(req->st, &stats, err, sizeof(err)) == TS_OK;
    view_limits lim = {req->ctx->cfg->max_active_users, req->ctx->cfg->concurrency_limit};
    json_t *v = view_workflow_page(wf, have_stats ? &stats : NULL, &lim, ts_now(), page);
    int rc = wf->jobs ? view_add_attempts(req->st, wf, v, err, sizeof(err)) : TS_OK;
    if (rc == TS_OK) return v;
    json_decref(v);
    *fail = api_store_failed(rc, err);
    return NULL;
}

/* The answer to a write that was acknowledged (committed) but whose result
 * cannot be read back now: still 2xx - a 503 would make the client repeat
 * a write that is already stored - with what is known. */
static json_t *acknowledged(int64_t id) {
    return json_pack("{sI sb}", "id", (json_int_t)id, "view_unavailable", 1);
}

/* The 201 to a submission, from what it has: the spec, the time and the
 * receipt (its place in the line and the active users at the commit) make
 * the same view a GET would give right after the commit, with no read of
 * the store, written straight to text as GET writes it (no attempts yet). */
static http_reply submitted_reply(http_request *req, const spec_workflow *spec, double now,
                                  const store_receipt *got) {
    store_workflow *wf = store_workflow_submitted(req->user, spec, now, got);
    /* A queued workflow's view takes only the active users from the line's
     * figures (its waiting reason); its jobs show no waiting reasons. */
    store_queue_stats stats = {.active_users = got->active_users};
    view_limits lim = {req->ctx->cfg->max_active_users, req->ctx->cfg->concurrency_limit};
    size_t len = 0;
    char *text = view_workflow_text(wf, NULL, 0, &stats, &lim, now, VIEW_ALL_JOBS, &len);
    store_workflow_free(wf);
    http_reply r;
    if (text) {
        r = http_bytes(201, "application/json", text, len);
        ts_strlcpy(r.cache_control, "no-store", sizeof(r.cache_control));
    } else { /* acknowledged all the same: what is known */
        r = http_json(201, acknowledged(got->id));
        json_object_set_new(r.json, "state", json_string("queued"));
    }
    snprintf(r.location, sizeof(r.location), "/api/workflows/%lld", (long long)got->id);
    return r;
}

static http_reply spec_rejected(const spec_error *se) {
    json_t *details = json_pack("{ss}", "field", se->field);
    if (se->job_id[0]) json_object_set_new(details, "job_id", json_string(se->job_id));
    return http_error(se->http_status, se->http_status == 400 ? "invalid_json" : "invalid_workflow",
                      se->message, details);
}

/* The answer to a submission whose commit is over (rc TS_OK: on stable
 * storage) or failed. */
static http_reply submit_answer(http_request *req, const spec_workflow *spec, double now, int rc,
                                const store_receipt *got, const char *err) {
    if (rc != TS_OK) return api_store_failed(rc, err);
    /* Once per commit, however many submissions it held. */
    if (got->wake) {
        http_ring_scheduler(req);
        metrics_submit_commit(req->ctx->m);
    }
    return submitted_reply(req, spec, now, got);
}

/* A submission waiting for its commit with no request thread held. */
typedef struct submit_wait {
    http_request *req;
    spec_workflow *spec;
    double now;
} submit_wait;

/* store_submit_fn of a deferred submission, on the batcher's commit thread
 * (or at once, on a store without one): the answer, then the request's
 * finish, after which req is not touched. */
static void submit_done(void *ctx, int rc, const store_receipt *got, const char *err) {
    submit_wait *w = ctx;
    http_request *req = w->req;
    metrics_submit_waiting(req->ctx->m, -1);
    http_reply r = submit_answer(req, w->spec, w->now, rc, got, err);
    spec_free(w->spec);
    free(w);
    req->finish(req, &r);
}

/* Queues the submission for the batcher's commit thread and returns
 * REPLY_DEFERRED: the request thread goes on to other requests while the
 * commit waits for the disk, and the 201 is built once the commit is over
 * (submit_done), never before. A submission refused before it is queued
 * is answered now. */
static http_reply submit_deferred(http_request *req, spec_workflow *spec, double now) {
    submit_wait *w = ts_calloc(1, sizeof(*w));
    *w = (submit_wait){req, spec, now};
    char err[TS_ERRLEN];
    http_ctx *ctx = req->ctx;
    metrics_submit_waiting(ctx->m, 1);
    int rc = store_submit_async(req->st, req->user, spec, now, submit_done, w, err, sizeof(err));
    if (rc == TS_OK) return (http_reply){.kind = REPLY_DEFERRED, .fd = -1};
    metrics_submit_waiting(ctx->m, -1);
    free(w);
    spec_free(spec);
    return api_store_failed(rc, err);
}

http_reply api_submit(http_request *req) {
    if (!api_is_json(req)) return api_wrong_type(req);
    spec_limits lim;
    spec_limits_default(&lim);
    lim.max_jobs = (size_t)req->ctx->cfg->max_jobs;
    lim.max_cpus = req->ctx->cfg->concurrency_limit;
    spec_workflow *spec = NULL;
    spec_error se;
    jobs_check_ctx jc = {.data_roots = req->ctx->cfg->data_roots};
    if (spec_parse(req->body, req->body_len, &lim, jobs_check, &jc, &spec, &se) != TS_OK)
        return spec_rejected(&se);
    jobs_resolve_spec_images(spec, req->ctx->cfg->data_roots);
    const char *dry = http_query(req, "dry_run");
    if (dry && (strcmp(dry, "true") == 0 || strcmp(dry, "1") == 0)) {
        /* The submit form checks as the user types: every rule ran, nothing
         * is stored. */
        size_t n = spec->n_jobs;
        spec_free(spec);
        return http_json(200, json_pack("{sb si}", "valid", 1, "n_jobs", (int)n));
    }
    double now = ts_now();
    if (req->finish) return submit_deferred(req, spec, now);
    char err[TS_ERRLEN];
    store_receipt got;
    int rc = store_submit_receipt(req->st, req->user, spec, now, &got, err, sizeof(err));
    http_reply r = submit_answer(req, spec, now, rc, &got, err);
    spec_free(spec);
    return r;
}

typedef struct list_ctx {
    http_request *req;
    json_t *arr;
    int64_t last_id;
    const store_queue_stats *stats; /* NULL when unknown */
} list_ctx;

static int list_cb(void *ctx, const store_workflow *wf) {
    list_ctx *lc = ctx;
    view_limits lim = {lc->req->ctx->cfg->max_active_users, lc->req->ctx->cfg->concurrency_limit};
    json_array_append_new(lc->arr, view_workflow(wf, lc->stats, &lim, ts_now()));
    lc->last_id = wf->id;
    return 0;
}

http_reply api_list(http_request *req) {
    const char *state_q = http_query(req, "state"), *limit_q = http_query(req, "limit");
    const char *cursor_q = http_query(req, "cursor");
    wf_state state = WF_STATE_COUNT;
    long limit = 50;
    int64_t cursor = 0;
    if (state_q && wf_state_parse(state_q, &state) != TS_OK)
        return http_error(400, "invalid_query",
                          "state: must be one of queued, running, succeeded, failed, cancelled",
                          json_pack("{ss}", "field", "state"));
    if (limit_q && ts_parse_int(limit_q, 1, 500, &limit) != TS_OK)
        return http_error(400, "invalid_query", "limit: must be an integer from 1 to 500",
                          json_pack("{ss}", "field", "limit"));
    if (cursor_q && !http_parse_id(cursor_q, &cursor))
        return http_error(400, "invalid_query",
                          "cursor: must be the next_cursor of a previous page",
                          json_pack("{ss}", "field", "cursor"));
    char err[TS_ERRLEN];
    /* The line's figures give queued rows their waiting reason. */
    store_queue_stats stats;
    bool have_stats = store_queue_stats_get(req->st, &stats, err, sizeof(err)) == TS_OK;
    /* Read before the page: a client streaming events since this seq
     * misses nothing that changed the page after it was read. */
    int64_t event_seq = 0;
    int rc = store_events_last_seq(req->st, &event_seq, err, sizeof(err));
    if (rc != TS_OK) return api_store_failed(rc, err);
    list_ctx lc = {req, json_array(), 0, have_stats ? &stats : NULL};
    /* One more than asked tells whether a next page exists. */
    rc = store_workflow_list(req->st, req->user, state_q ? (int)state : -1, cursor,
                             (size_t)limit + 1, list_cb, &lc, err, sizeof(err));
    if (rc != TS_OK) {
        json_decref(lc.arr);
        return api_store_failed(rc, err);
    }
    json_t *next = json_null();
    if (json_array_size(lc.arr) > (size_t)limit) {
        json_array_remove(lc.arr, (size_t)limit);
        json_t *last = json_array_get(lc.arr, (size_t)limit - 1);
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld",
                 (long long)json_integer_value(json_object_get(last, "id")));
        next = json_string(buf);
    }
    return http_json(200, json_pack("{so so sI}", "workflows", lc.arr, "next_cursor", next,
                                    "event_seq", (json_int_t)event_seq));
}

http_reply api_progress(http_request *req) {
    store_workflow *wf = NULL;
    http_reply fail;
    if (!api_load_workflow(req, &wf, &fail)) return fail;
    json_t *jobs = json_object();
    for (size_t i = 0; i < wf->n_jobs; i++) {
        double p = job_state_final(wf->jobs[i].state) ? 1.0 : wf->jobs[i].progress;
        json_object_set_new(jobs, wf->jobs[i].job_id,
                            json_pack("{ss sf}", "state", job_state_name(wf->jobs[i].state),
                                      "progress", p));
    }
    json_t *o = json_pack("{sI ss sf so}", "id", (json_int_t)wf->id, "state",
                          wf_state_name(wf->state), "progress", view_workflow_progress(wf),
                          "jobs", jobs);
    if (wf->state == WF_QUEUED)
        json_object_set_new(o, "queue_position", json_integer(wf->queue_position));
    store_workflow_free(wf);
    return http_json(200, o);
}

/* Queues a command for the scheduler and answers with the workflow as it
 * stands (the scheduler applies the command within moments). */
http_reply api_command(http_request *req, int32_t job_index, const char *kind) {
    store_workflow *wf = NULL;
    http_reply fail;
    if (!api_load_workflow(req, &wf, &fail)) return fail;
    char err[TS_ERRLEN];
    int64_t cmd_id;
    int rc = store_command_add(req->st, wf->id, job_index, kind, req->user, ts_now(), &cmd_id,
                               err, sizeof(err));
    int64_t id = wf->id;
    store_workflow_free(wf);
    wf = NULL;
    if (rc == STORE_NOTFOUND) return api_not_found("workflow", req->params[0]);
    if (rc != TS_OK) return api_store_failed(rc, err);
    http_ring_scheduler(req);
    json_t *v = NULL;
    if (api_load_workflow(req, &wf, &fail)) v = api_workflow_view(req, wf, &fail);
    store_workflow_free(wf);
    if (v == NULL) {
        json_decref(fail.json);
        v = acknowledged(id);
    }
    json_object_set_new(v, "command", json_pack("{ss sI}", "kind", kind, "id", (json_int_t)cmd_id));
    return http_json(202, v);
}

http_reply api_cancel(http_request *req) {
    return api_command(req, -1, "cancel");
}

http_reply api_delete(http_request *req) {
    int64_t id;
    if (!http_parse_id(req->params[0], &id)) return api_not_found("workflow", req->params[0]);
    char err[TS_ERRLEN];
    int rc = store_workflow_delete(req->st, id, req->user, err, sizeof(err));
    if (rc == STORE_NOTFOUND) return api_not_found("workflow", req->params[0]);
    if (rc == STORE_CONFLICT)
        return http_error(409, "workflow_active",
                          "the workflow has not finished; cancel it first, then delete it", NULL);
    if (rc != TS_OK) return api_store_failed(rc, err);
    layout_remove_workflow(req->ctx->cfg->state_dir, id);
    return http_json(200, json_pack("{sI sb}", "id", (json_int_t)id, "deleted", 1));
}
