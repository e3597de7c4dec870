/*
 * api_workflow_get.c - GET /api/workflows/{id} (DESIGN §4), whole, a page
 * of its jobs or the compact form, through the worker's cache of rendered
 * views (view_cache.h).
 *
 * Every request reads the workflow's stamp first: one indexed statement
 * that is also the owner check, so another user's workflow is answered
 * 404 exactly like a missing one before any cached byte is looked at. When
 * the cached entry's inputs are all unchanged its bytes are sent as they
 * are (no job row read, no JSON built, no copy); otherwise the view is
 * rendered from the store, sent, and kept. The compact form (?jobs=none)
 * is rendered from the workflow row and its job counts, never its jobs.
 *
 * The stamp is read before the rendering's own reads, so an entry is never
 * labelled newer than what it shows: a change that lands in between makes
 * the next request render again, never serve old bytes. Every reply
 * carries an ETag (a hash of its bytes); If-None-Match naming it is
 * answered 304 without a body, after the owner check.
 */
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/view_cache.h"
#include "util/util.h"
#include "view/view.h"

/* The jobs a GET asks for: ?jobs=none (the compact form), or a page by
 * ?jobs_offset=N (default 0) and ?jobs_limit=M (default all), so that a
 * 10,000-job workflow can be read in parts. False with a 400 naming the
 * field when a value is bad. */
static bool jobs_page_query(http_request *req, view_page *page, http_reply *fail) {
    const char *jobs = http_query(req, "jobs"), *off = http_query(req, "jobs_offset"),
               *lim = http_query(req, "jobs_limit");
    long offset = 0, limit = -1;
    *page = VIEW_ALL_JOBS;
    if (jobs && strcmp(jobs, "none") != 0 && strcmp(jobs, "all") != 0) {
        *fail = http_error(400, "invalid_query", "jobs: must be \"all\" or \"none\"",
                           json_pack("{ss}", "field", "jobs"));
        return false;
    }
    if (off && ts_parse_int(off, 0, 100000000, &offset) != TS_OK) {
        *fail = http_error(400, "invalid_query", "jobs_offset: must be an integer from 0",
                           json_pack("{ss}", "field", "jobs_offset"));
        return false;
    }
    if (lim && ts_parse_int(lim, 1, 100000, &limit) != TS_OK) {
        *fail = http_error(400, "invalid_query", "jobs_limit: must be an integer from 1 to 100000",
                           json_pack("{ss}", "field", "jobs_limit"));
        return false;
    }
    page->none = jobs && strcmp(jobs, "none") == 0;
    page->offset = (size_t)offset;
    if (limit > 0) page->limit = (size_t)limit;
    return true;
}

/* The reply of view bytes b (the reference is the reply's): 304 when the
 * request's If-None-Match names them, else the bytes, sent without a copy.
 * JSON replies are never stored by browsers (no-store); the ETag serves
 * clients that revalidate by themselves. */
static http_reply bytes_reply(http_request *req, view_bytes *b) {
    http_reply r;
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && http_etag_matches(inm, view_bytes_etag(b))) {
        r = http_bytes(304, NULL, NULL, 0);
        ts_strlcpy(r.etag, view_bytes_etag(b), sizeof(r.etag));
        view_bytes_release(b);
    } else {
        r = (http_reply){.status = 200, .kind = REPLY_TEXT, .fd = -1,
                         .content_type = "application/json",
                         .text = (char *)view_bytes_data(b), .text_len = view_bytes_len(b),
                         .release = view_bytes_release, .release_cls = b};
        ts_strlcpy(r.etag, view_bytes_etag(b), sizeof(r.etag));
    }
    ts_strlcpy(r.cache_control, "no-store", sizeof(r.cache_control));
    return r;
}

/* The view of the workflow as text, read under the caller's name: its
 * jobs (all or a page) with their attempts, written straight to text
 * (view_workflow_text), or for page.none only its row and job counts.
 * NULL with *fail (404, 503, 500). */
static char *read_view(http_request *req, int64_t id, view_page page,
                       const store_queue_stats *stats, double now, store_workflow **wf,
                       size_t *len, http_reply *fail) {
    char err[TS_ERRLEN];
    view_limits lim = {req->ctx->cfg->max_active_users, req->ctx->cfg->concurrency_limit};
    char *text = NULL;
    int rc;
    if (page.none) {
        size_t counts[JOB_STATE_COUNT];
        rc = store_workflow_summary(req->st, id, req->user, wf, counts, err, sizeof(err));
        json_t *v = rc == TS_OK ? view_workflow_counted(*wf, counts, stats, &lim, now) : NULL;
        text = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        *len = text ? strlen(text) : 0;
    } else {
        store_attempt *a = NULL;
        size_t n = 0;
        rc = store_workflow_get(req->st, id, req->user, wf, err, sizeof(err));
        if (rc == TS_OK) rc = store_attempts(req->st, id, -1, &a, &n, err, sizeof(err));
        if (rc == TS_OK) text = view_workflow_text(*wf, a, n, stats, &lim, now, page, len);
        free(a);
    }
    if (rc == TS_OK && text) return text;
    if (rc == TS_OK) *fail = http_error(500, "internal", "the reply could not be encoded", NULL);
    else if (rc == STORE_NOTFOUND) *fail = api_not_found("workflow", req->params[0]);
    else *fail = api_store_failed(rc, err);
    return NULL;
}

/* Renders the view as bytes with what they depend on (*deps, from the
 * stamp read before); *cacheable is false when the line's figures could
 * not be read (the view then lacks its waiting reasons' numbers). NULL
 * with *fail. */
static view_bytes *render(http_request *req, int64_t id, view_page page,
                          const store_workflow_stamp *stamp, view_deps *deps, bool *cacheable,
                          http_reply *fail) {
    char err[TS_ERRLEN];
    store_queue_stats stats;
    bool have_stats = store_queue_stats_get(req->st, &stats, err, sizeof(err)) == TS_OK;
    double now = ts_now();
    store_workflow *wf = NULL;
    size_t len = 0;
    char *text = read_view(req, id, page, have_stats ? &stats : NULL, now, &wf, &len, fail);
    if (!text) {
        store_workflow_free(wf);
        return NULL;
    }
    *deps = (view_deps){.state = stamp->state, .queue_position = stamp->queue_position,
                        .last_seq = stamp->last_seq, .batch_handles = stamp->batch_handles};
    view_depends(wf, have_stats ? &stats : NULL, now, &deps->want, &deps->valid_until);
    deps->running_cpus = have_stats ? stats.running_cpus : -1;
    deps->active_users = have_stats ? stats.active_users : -1;
    *cacheable = have_stats;
    store_workflow_free(wf);
    return view_bytes_new(text, len);
}

/* The cached entry for key when it is current: reads the stamp (the owner
 * check), true with *bytes to send; false with *stamp for a rendering, or
 * with *fail (404, 503) when *failed. */
static bool current_entry(http_request *req, int64_t id, const view_key *key,
                          store_workflow_stamp *stamp, view_bytes **bytes, bool *failed,
                          http_reply *fail) {
    view_cache *cache = req->ctx->views;
    view_deps deps;
    char err[TS_ERRLEN];
    *bytes = NULL;
    *failed = false;
    bool have = cache && view_cache_find(cache, key, bytes, &deps);
    int rc = store_workflow_stamp_get(req->st, id, req->user, have ? deps.want : 0, stamp, err,
                                      sizeof(err));
    if (rc == TS_OK && have && view_deps_current(&deps, stamp, ts_now())) return true;
    view_bytes_release(*bytes);
    *bytes = NULL;
    if (rc != TS_OK) {
        *failed = true;
        *fail = rc == STORE_NOTFOUND ? api_not_found("workflow", req->params[0])
                                     : api_store_failed(rc, err);
    }
    return false;
}

http_reply api_get(http_request *req) {
    http_reply fail;
    view_page page;
    int64_t id;
    if (!jobs_page_query(req, &page, &fail)) return fail;
    if (!http_parse_id(req->params[0], &id)) return api_not_found("workflow", req->params[0]);
    view_cache *cache = req->ctx->views;
    /* The compact form is one reply whatever the page says. */
    view_key key = {id, page.none ? 0 : page.offset, page.none ? 0 : page.limit, page.none};
    view_bytes *b = NULL;
    store_workflow_stamp stamp;
    bool failed = false, flying = false;
    /* A stale entry is rendered by one thread while the others wait for
     * it, then check again (at most twice: under constant change a waiter
     * renders for itself rather than wait behind every rendering). */
    for (int round = 0;; round++) {
        if (current_entry(req, id, &key, &stamp, &b, &failed, &fail)) {
            view_cache_count(cache, true);
            metrics_view_read(req->ctx->m, true);
            return bytes_reply(req, b);
        }
        if (failed) return fail;
        if (!cache || round == 2) break;
        if ((flying = view_cache_render_begin(cache, &key))) break;
    }
    view_deps deps;
    bool cacheable = false;
    b = render(req, id, page, &stamp, &deps, &cacheable, &fail);
    metrics_view_read(req->ctx->m, false);
    if (cache) {
        view_cache_count(cache, false);
        if (b && cacheable) view_cache_put(cache, &key, b, &deps);
        if (flying) view_cache_render_end(cache, &key);
    }
    return b ? bytes_reply(req, b) : fail;
}
